"""
Hostile BTF: mutated real and synthetic blobs end in values or BTFError,
quickly (a fixed, derandomized subset of tests/fuzz/fuzz_btf.py; target in
tests/support/btffuzz.py).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from drgn_crashhp.debuginfo.btf import BTF
from tests.support import btffuzz
from tests.support.fuzzing import outcome

PROFILE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    max_examples=1000,
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
)


def test_seeds_are_valid_btf() -> None:
    # Mutations start from blobs that open and convert cleanly.
    assert len(btffuzz.seeds()) >= 2
    for seed in btffuzz.seeds():
        assert len(BTF(seed)) > 10
        assert "converted" in btffuzz.run_btf(seed)


@PROFILE
@given(btffuzz.btf_input())
def test_btf_fuzz(data: bytes) -> None:
    outcome(btffuzz.TARGET, data)
