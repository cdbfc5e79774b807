"""The engine's hot kernels touch no Python objects (what `cython -a` shows as yellow).

Translates mmucore/tlb.pyx to C in a temporary folder and checks that the body of every
nogil kernel, and of each of its fused specialisations, is free of Python API calls.
Only `tlb_init` may touch Python: it raises MemoryError/ValueError on its error path.
"""
import pathlib
import re
import shutil

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "mmucore"
PY_API = re.compile(r"Py_INCREF|Py_DECREF|Py_XDECREF|PyObject_|__Pyx_Raise|PyGILState_|"
                    r"__Pyx_GetModuleGlobal|__Pyx_PyObject")
ALLOWED = {"__pyx_f_7mmucore_3tlb_tlb_init"}


def _function_bodies(c_source):
    head = re.compile(r"^(?:static )?[^\n;]*?\b((?:__pyx_fuse_\w+)?__pyx_f_7mmucore_3tlb_\w+)"
                      r"\([^)]*\)\s*\{", re.M)
    for m in head.finditer(c_source):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(c_source[i], 0)
            i += 1
        yield m.group(1), c_source[m.end():i]


def test_kernels_have_no_python_interaction(tmp_path):
    cython = pytest.importorskip("Cython.Compiler.Main")
    if not (SRC / "tlb.pyx").exists():
        pytest.skip("the engine sources are not next to the tests (installed-only run)")
    for name in ("tlb.pyx", "tlb.pxd", "_types.pxd", "_rng.pxd"):
        shutil.copy(SRC / name, tmp_path / name)
    pkg = tmp_path / "mmucore"
    pkg.mkdir()
    for name in ("tlb.pyx", "tlb.pxd", "_types.pxd", "_rng.pxd"):
        shutil.move(str(tmp_path / name), pkg / name)
    (pkg / "__init__.py").write_text("")
    options = cython.CompilationOptions(
        language_level=3, include_path=[str(tmp_path)],
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False})
    result = cython.compile(str(pkg / "tlb.pyx"), options, full_module_name="mmucore.tlb")
    assert result.num_errors == 0
    c_source = (pkg / "tlb.c").read_text()
    kernels = dict(_function_bodies(c_source))
    # the batch loop exists in one specialisation per (policy, engine, batch shape)
    assert sum(1 for k in kernels if k.endswith("__batch")) == 6 * 3
    assert sum(1 for k in kernels if k.endswith("__batch_run")) == 6 * 3 * 2
    dirty = sorted(k for k, body in kernels.items() if PY_API.search(body) and k not in ALLOWED)
    assert dirty == [], f"kernels with Python interaction: {dirty}"
