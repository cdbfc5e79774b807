"""The kmap engine's nogil kernels touch no Python objects (no `cython -a` yellow).

Translates mmucore/kmap.pyx to C in a temporary folder and checks that the body of every
nogil kernel is free of Python API calls. Only the allocation paths may touch Python:
they raise MemoryError/ValueError (each under `with gil`, on its error branch only).
"""
import pathlib
import re
import shutil

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "mmucore"
PY_API = re.compile(r"Py_INCREF|Py_DECREF|Py_XDECREF|PyObject_|__Pyx_Raise|PyGILState_|"
                    r"__Pyx_GetModuleGlobal|__Pyx_PyObject")
PREFIX = "__pyx_f_7mmucore_4kmap_"
# the kernels that allocate: they may raise (MemoryError/ValueError) on their error path
ALLOCATING = {"kmap_init", "_pt_grow", "_grow", "_task_index", "_defer", "_sleep",
              "_window_new", "_reserve_bucket"}
# the kernels that must exist and be clean (the hot loop and everything it inlines)
HOT = {"kmap_run", "__pyx_fuse_0_run", "__pyx_fuse_1_run", "_op", "kmap_op", "kmap_settle",
       "_map_new_virtual", "_kmap_miss", "_task_kmap_miss", "_requeue",
       "_flush_all_zero_pkmaps", "_task_kunmap", "_window_wrap", "_window_map_new",
       "_kmap_atomic", "_kunmap_atomic", "_switch_to", "_load_space", "_space_left",
       "_global_flush", "kmap_page_address", "kmap_bucket", "_replay_backlog"}


def _function_bodies(c_source):
    """(name, body) of every C function of the module; a fused specialisation is named
    by its short name with its specialisation prefix (``__pyx_fuse_0_run``)."""
    head = re.compile(r"^(?:static )?[^\n;]*?\b((?:__pyx_fuse_\d+)?" + PREFIX +
                      r"\w+)\([^)]*\)\s*\{", re.M)
    for m in head.finditer(c_source):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(c_source[i], 0)
            i += 1
        yield m.group(1).replace(PREFIX, ""), c_source[m.end():i]


def _strip_error_paths(body):
    """Drop the code after the function's error label (the traceback/raise path that
    Cython emits for `except -1` kernels, run only when an exception is set)."""
    body = body.split("__pyx_L1_error:")[0]
    # the declaration of the GIL-state variable that the error path would use
    return re.sub(r"PyGILState_STATE __pyx_gilstate_save;", "", body)


def test_kernels_have_no_python_interaction(tmp_path):
    cython = pytest.importorskip("Cython.Compiler.Main")
    if not (SRC / "kmap.pyx").exists():
        pytest.skip("the engine sources are not next to the tests (installed-only run)")
    pkg = tmp_path / "mmucore"
    pkg.mkdir()
    for name in ("kmap.pyx", "kmap.pxd", "tlb.pxd", "_types.pxd"):
        shutil.copy(SRC / name, pkg / name)
    (pkg / "__init__.py").write_text("")
    options = cython.CompilationOptions(
        language_level=3, include_path=[str(tmp_path)],
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False})
    result = cython.compile(str(pkg / "kmap.pyx"), options, full_module_name="mmucore.kmap")
    assert result.num_errors == 0
    kernels = dict(_function_bodies((pkg / "kmap.c").read_text()))
    assert HOT <= set(kernels), f"missing kernels: {sorted(HOT - set(kernels))}"
    dirty = sorted(k for k, body in kernels.items()
                   if PY_API.search(_strip_error_paths(body)) and k not in ALLOCATING)
    assert dirty == [], f"kernels with Python interaction: {dirty}"
    # the allocating kernels touch Python only to raise, under `with gil`
    for k in ALLOCATING & set(kernels):
        body = _strip_error_paths(kernels[k])
        for m in PY_API.finditer(body):
            assert "PyGILState_Ensure" in body[:m.start()] or m.group(0).startswith("PyGILState"), k
