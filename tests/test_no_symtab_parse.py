"""
No code path parses a vmlinux symbol table with pyelftools: a distribution
vmlinux has ~190,000 symbols and building pyelftools' name map over them cost
95% of a report (issue: fast on a distribution kernel). drgn's own symbol
index, its module ranges and VMCOREINFO give everything the report needs.
"""

from __future__ import annotations

from typing import Any

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from drgn_crashhp import build_report, report_json
from tests.conftest import real_fixture, unpack


@pytest.mark.parametrize("name", ["file_memadd", "load_hotplug_memadd", "kdump_memadd"])
def test_full_report_never_opens_vmlinux_with_pyelftools(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prog, _ = real_fixture(name)
    vmlinux = str(unpack.vmlinux_path())
    opened = []
    real_init = ELFFile.__init__
    real_lookup = SymbolTableSection.get_symbol_by_name

    def guarded_init(self: ELFFile, stream: Any, *args: Any, **kwargs: Any) -> None:
        if getattr(stream, "name", None) == vmlinux:
            raise AssertionError("pyelftools opened the vmlinux")
        opened.append(stream)
        real_init(self, stream, *args, **kwargs)

    def guarded_lookup(self: SymbolTableSection, name: str) -> Any:
        # The purgatory blob has tens of symbols; a vmlinux has thousands.
        if self.num_symbols() > 1000:
            raise AssertionError(f"name map built over {self.num_symbols()} symbols")
        return real_lookup(self, name)

    monkeypatch.setattr(ELFFile, "__init__", guarded_init)
    monkeypatch.setattr(SymbolTableSection, "get_symbol_by_name", guarded_lookup)
    report = report_json(build_report(prog))
    assert report["findings"]
    # The guard is live: the purgatory blob of a file_load image does go
    # through pyelftools, so a vmlinux would have been caught too.
    if name == "file_memadd":
        assert opened
