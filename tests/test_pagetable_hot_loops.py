"""The page-table engine's nogil kernels touch no Python objects (cython -a "yellow").

Translates mmucore/pagetable.pyx to C in a temporary folder (modelled on
tests/test_hot_loops.py) and checks the body of every cdef function of the module.
Functions declared ``except -1`` end with Cython's error exit (``__pyx_L1_error``: take
the GIL, add a traceback frame), which runs only after an exception: that block is cut
off before the check. Only the documented raising paths may touch Python: ``pt_init``
and ``pt_psc_init`` (ValueError/MemoryError), the growth of the frame pool, frame index
and undo log (MemoryError), ``_raise_no_memory`` (demand paging out of frames) and
``_collect`` (builds the Python list of ``leaves()``; not a kernel).
"""
import pathlib
import re
import shutil

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "mmucore"
PY_API = re.compile(r"Py_INCREF|Py_DECREF|Py_XDECREF|PyObject_|__Pyx_Raise|PyGILState_|"
                    r"__Pyx_GetModuleGlobal|__Pyx_PyObject|PyList_|__Pyx_AddTraceback")
PREFIX = "__pyx_f_7mmucore_9pagetable_"
ALLOWED = {PREFIX + name for name in ("pt_init", "pt_psc_init", "_new_slot",
                                      "_set_slot", "_log", "_raise_no_memory",
                                      "_collect")}
KERNELS = ["pt_walk", "pt_walk_nodemand", "pt_walk_batch", "_walk", "_walk_demand",
           "_finish", "pt_map", "_map_page", "pt_check_map", "pt_range_op", "pt_alloc",
           "_demand", "pt_invalidate", "pt_flush_psc", "pt_read_entry", "pt_write_entry",
           "pt_load_cr3", "_new_table", "_tx_rollback", "_walk_w[__pyx_fuse_0]",
           "_walk_w[__pyx_fuse_1]"]
ERROR_EXIT = re.compile(r"__pyx_L1_error:;.*?__pyx_L0:;", re.S)


def _function_bodies(c_source):
    head = re.compile(r"^(?:static )?[^\n;]*?\b((?:__pyx_fuse_\d+)?" + PREFIX + r"\w+)"
                      r"\([^)]*\)\s*\{", re.M)
    for m in head.finditer(c_source):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(c_source[i], 0)
            i += 1
        body = c_source[m.end():i]
        body = ERROR_EXIT.sub("", body)
        body = re.sub(r"PyGILState_STATE __pyx_gilstate_save;", "", body)
        name = m.group(1)
        fuse = re.match(r"__pyx_fuse_\d+", name)
        base = PREFIX + name.split(PREFIX, 1)[1]
        yield (f"{base}[{fuse.group(0)}]" if fuse else base), body


def test_kernels_have_no_python_interaction(tmp_path):
    cython = pytest.importorskip("Cython.Compiler.Main")
    if not (SRC / "pagetable.pyx").exists():
        pytest.skip("the engine sources are not next to the tests (installed-only run)")
    pkg = tmp_path / "mmucore"
    pkg.mkdir()
    for name in ("pagetable.pyx", "pagetable.pxd", "tlb.pxd", "_types.pxd", "_rng.pxd"):
        shutil.copy(SRC / name, pkg / name)
    (pkg / "__init__.py").write_text("")
    options = cython.CompilationOptions(
        language_level=3, include_path=[str(tmp_path)],
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False})
    result = cython.compile(str(pkg / "pagetable.pyx"), options,
                            full_module_name="mmucore.pagetable")
    assert result.num_errors == 0
    kernels = dict(_function_bodies((pkg / "pagetable.c").read_text()))
    missing = [k for k in KERNELS if PREFIX + k not in kernels]
    assert missing == [], f"kernels not found in the generated C: {missing}"
    dirty = sorted(k for k, body in kernels.items() if PY_API.search(body) and k not in ALLOWED)
    assert dirty == [], f"kernels with Python interaction: {dirty}"
    # the checker itself sees Python calls where they are
    assert PY_API.search(kernels[PREFIX + "_raise_no_memory"])
