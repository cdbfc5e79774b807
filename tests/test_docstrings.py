"""The runnable examples in the public docstrings run and give what they say."""
import doctest
import importlib

import pytest

MODULES = ["pyapi", "pyapi.tlb", "pyapi.units", "pyapi.ops", "pyapi.chunk", "pyapi.lowmem", "pyapi.procmap", "pyapi.trace", "pyapi.workloads", "pyapi.pagetable", "pyapi.kmap",
           "pyapi.kmap_workloads", "pyapi.config", "pyapi.mrc", "pyapi.mmu", "pyapi.stats", "pyapi.cli", "pyapi.demo", "pyapi.plots", "pyapi.presets", "pyapi.progress",
           "pyapi.sweeps",
           "mmucore.tlb", "mmucore.parse", "mmucore.gen", "mmucore.pagetable", "mmucore.kmap", "mmucore.stackdist"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
