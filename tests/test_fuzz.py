"""
Hostile bytes: every decoder of target-controlled bytes ends in a value or a
documented error, quickly. A fixed, derandomized subset of the long run in
tests/fuzz/fuzz_long.py (targets in tests/support/fuzzing.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from drgn_crashhp.facts import Role
from tests.support import fuzzing
from tests.support.fuzzing import TARGETS, Target, outcome
from tests.support.helpers import read_purgatory_full

settings.register_profile(
    "crashhp-ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=(
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ),
)

#: Examples per target in CI: enough to pass every structural branch of the
#: decoders, small enough that the whole file runs in seconds.
EXAMPLES = {"build_report(hostile kimage)": 150}


def _fuzz(target: Target) -> None:
    @settings(
        settings.get_profile("crashhp-ci"), max_examples=EXAMPLES.get(target.name, 400)
    )
    @given(target.strategy)
    def run(value: Any) -> None:
        outcome(target, value)

    run()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz(name: str) -> None:
    _fuzz(TARGETS[name])


def test_seeds_reach_the_decoded_path() -> None:
    """Unmutated seeds decode fully, so mutations start from deep inside the
    decoders rather than at their first check."""
    for data in fuzzing.ELFCOREHDR_SEEDS:
        assert fuzzing.run_decode_elfcorehdr((data, None, 62)).startswith("value")
    assert fuzzing.FLATTENED_SEEDS
    for data in fuzzing.FLATTENED_SEEDS:
        assert fuzzing.run_flattened(data).startswith(
            "makedumpfile: makedumpfile flattened format (-F): kdump-compressed"
        )
    for image, program in (
        (
            fuzzing.FILE_IMAGE,
            fuzzing.purgatory_blob_program(
                (
                    fuzzing.BLOB_SEEDS[0],
                    None,
                    fuzzing._segment_bytes(fuzzing.FILE_IMAGE, Role.PURGATORY)[1],
                    fuzzing.FILE_IMAGE,
                )
            ),
        ),
        (
            fuzzing.LOAD_IMAGE,
            fuzzing.kexec_load_program(
                (
                    fuzzing._segment_bytes(fuzzing.LOAD_IMAGE, Role.PURGATORY)[1],
                    fuzzing.LOAD_IMAGE,
                )
            ),
        ),
    ):
        prog, _ = program
        p = read_purgatory_full(prog, image)
        assert p.unread is None, p.unread
        assert p.regions and p.regs is not None
        assert p.cmdline is not None and p.cmdline.elfcorehdr is not None
        assert p.cmdline.elfcorehdr == image.elfcorehdr.mem  # type: ignore[union-attr]
