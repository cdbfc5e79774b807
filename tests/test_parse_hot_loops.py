"""The text parser's kernels touch no Python objects (what `cython -a` shows as yellow).

Translates mmucore/parse.pyx to C in a temporary folder and checks that the body of every
nogil kernel, and of each of its fused specialisations (format x bounds mode), is free of
Python API calls. Only `_result` (which builds the ParseResult) may touch Python.
"""
import pytest

from cython_c import dirty, function_bodies, translate

ALLOWED = {"_result"}
SOURCES = ("parse.pyx", "parse.pxd", "_types.pxd")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    c = translate(tmp_path_factory.mktemp("parse_c"), "parse", SOURCES)
    return function_bodies(c, "parse")


def test_every_specialisation_is_generated(kernels):
    # the line loop exists once per (format, bounds mode); each format's line parser once
    # per bounds mode; the entry point once
    assert sum(1 for k in kernels if k.startswith("_region[")) == 4 * 2
    for fmt in ("lackey", "din", "xdin", "pin"):
        assert sum(1 for k in kernels if k.startswith(f"_line_{fmt}[")) == 2
    assert "parse_buffer" in kernels


def test_kernels_have_no_python_interaction(kernels):
    assert dirty(kernels, allowed=ALLOWED) == []
