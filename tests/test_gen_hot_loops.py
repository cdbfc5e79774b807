"""The generator kernels touch no Python objects (what `cython -a` shows as yellow).

Translates mmucore/gen.pyx to C in a temporary folder and checks that the body of every
cdef function of the module (all of them are nogil kernels) is free of Python API calls.
"""
import pathlib
import re
import shutil

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "mmucore"
PY_API = re.compile(r"Py_INCREF|Py_DECREF|Py_XDECREF|PyObject_|__Pyx_Raise|PyGILState_|"
                    r"__Pyx_GetModuleGlobal|__Pyx_PyObject|__Pyx_PyInt|PyErr_")
KERNELS = {"uniform_fill", "stride_fill", "zipf_fill", "zipf_rank_table", "_zipf_rank_table",
           "zipf_rank_ri", "zipf_page", "zipf_perm_once", "chase_fill", "matmul_fill",
           "stream_fill", "bfs_fill", "gen_fill", "draws_below", "sattolo_cycle", "cycle_order",
           "csr_random", "bfs_visit_order", "gen_key", "counter_draw", "unit_double", "sub_draw"}


def _function_bodies(c_source):
    head = re.compile(r"^(?:static )?[^\n;]*?\b__pyx_f_7mmucore_3gen_(\w+)\([^)]*\)\s*\{", re.M)
    for m in head.finditer(c_source):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(c_source[i], 0)
            i += 1
        yield m.group(1), c_source[m.end():i]


def test_kernels_have_no_python_interaction(tmp_path):
    cython = pytest.importorskip("Cython.Compiler.Main")
    if not (SRC / "gen.pyx").exists():
        pytest.skip("the engine sources are not next to the tests (installed-only run)")
    pkg = tmp_path / "mmucore"
    pkg.mkdir()
    for name in ("gen.pyx", "gen.pxd", "_types.pxd", "_rng.pxd"):
        shutil.copy(SRC / name, pkg / name)
    (pkg / "__init__.py").write_text("")
    options = cython.CompilationOptions(
        language_level=3, include_path=[str(tmp_path)],
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False})
    result = cython.compile(str(pkg / "gen.pyx"), options, full_module_name="mmucore.gen")
    assert result.num_errors == 0
    kernels = dict(_function_bodies((pkg / "gen.c").read_text()))
    assert set(kernels) == KERNELS, "kernels added or removed: update KERNELS"
    dirty = sorted(k for k, body in kernels.items() if PY_API.search(body))
    assert dirty == [], f"kernels with Python interaction: {dirty}"
