"""The text parser's kernels touch no Python objects (what `cython -a` shows as yellow).

Translates mmucore/parse.pyx to C in a temporary folder and checks that the body of every
nogil kernel, and of each of its fused specialisations (format x bounds mode), is free of
Python API calls. Only `_result` (which builds the ParseResult) may touch Python.
"""
import pathlib
import re
import shutil

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "mmucore"
PY_API = re.compile(r"Py_INCREF|Py_DECREF|Py_XDECREF|PyObject_|__Pyx_Raise|PyGILState_|"
                    r"__Pyx_GetModuleGlobal|__Pyx_PyObject|PyErr_|__Pyx_ErrFetch|"
                    r"__Pyx_AddTraceback|__Pyx_RefNanny(?!Declarations|SetupContext"
                    r"|FinishContext)")
ALLOWED = {"__pyx_f_7mmucore_5parse__result"}
SOURCES = ("parse.pyx", "parse.pxd", "_types.pxd")


def _function_bodies(c_source):
    head = re.compile(r"^(?:static )?[^\n;]*?\b((?:__pyx_fuse_\w+?)?__pyx_f_7mmucore_5parse_\w+)"
                      r"\([^)]*\)\s*\{", re.M)
    for m in head.finditer(c_source):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(c_source[i], 0)
            i += 1
        yield m.group(1), c_source[m.end():i]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    cython = pytest.importorskip("Cython.Compiler.Main")
    if not (SRC / "parse.pyx").exists():
        pytest.skip("the engine sources are not next to the tests (installed-only run)")
    tmp_path = tmp_path_factory.mktemp("parse_c")
    pkg = tmp_path / "mmucore"
    pkg.mkdir()
    for name in SOURCES:
        shutil.copy(SRC / name, pkg / name)
    (pkg / "__init__.py").write_text("")
    options = cython.CompilationOptions(
        language_level=3, include_path=[str(tmp_path)],
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False})
    result = cython.compile(str(pkg / "parse.pyx"), options, full_module_name="mmucore.parse")
    assert result.num_errors == 0
    return dict(_function_bodies((pkg / "parse.c").read_text()))


def test_every_specialisation_is_generated(kernels):
    # the line loop exists once per (format, bounds mode); each format's line parser once
    # per bounds mode; the entry point once
    assert sum(1 for k in kernels if k.endswith("__region")) == 4 * 2
    for fmt in ("lackey", "din", "xdin", "pin"):
        assert sum(1 for k in kernels if k.endswith(f"__line_{fmt}")) == 2
    assert "__pyx_f_7mmucore_5parse_parse_buffer" in kernels


def test_kernels_have_no_python_interaction(kernels):
    dirty = sorted(k for k, body in kernels.items() if PY_API.search(body) and k not in ALLOWED)
    assert dirty == [], f"kernels with Python interaction: {dirty}"
