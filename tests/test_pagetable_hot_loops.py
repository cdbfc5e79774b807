"""The page-table engine's nogil kernels touch no Python objects (cython -a "yellow").

Translates mmucore/pagetable.pyx to C in a temporary folder (modelled on
tests/test_hot_loops.py) and checks the body of every cdef function of the module.
Functions declared ``except -1`` end with Cython's error exit (``__pyx_L1_error``: take
the GIL, add a traceback frame), which runs only after an exception: that block is cut
off before the check. Only the documented raising paths may touch Python: ``pt_init``
and ``pt_psc_init`` (ValueError/MemoryError), the growth of the frame pool, frame index
and undo log (MemoryError), ``_raise_no_memory`` (demand paging out of frames),
``_raise_table_frame`` (a map of explicit frames that include a page-table page) and
``_collect`` (builds the Python list of ``leaves()``; not a kernel), and the checkpoint
functions ``pt_dump``/``pt_restore`` (with the GIL, bytes in and out; not kernels).
"""
from cython_c import PY_API, dirty, function_bodies, translate

ALLOWED = {"pt_init", "pt_psc_init", "_new_slot", "_set_slot", "_log", "_raise_no_memory",
           "_raise_table_frame", "_collect", "pt_dump", "pt_restore"}
KERNELS = ["pt_walk", "pt_walk_nodemand", "pt_walk_batch", "_walk", "_walk_demand",
           "_finish", "pt_map", "_map_page", "pt_check_map", "pt_range_op", "pt_alloc",
           "_demand", "pt_invalidate", "pt_flush_psc", "pt_read_entry", "pt_write_entry",
           "pt_load_cr3", "_new_table", "_tx_rollback", "_walk_w[__pyx_fuse_0]",
           "_walk_w[__pyx_fuse_1]", "_reserve", "_reserve_run", "_mark_run",
           "_table_frame_in"]


def test_kernels_have_no_python_interaction(tmp_path):
    c = translate(tmp_path, "pagetable",
                  ("pagetable.pyx", "pagetable.pxd", "tlb.pxd", "_types.pxd", "_rng.pxd",
                   "_tlb_core.pxi", "_pt_walk.pxi"))
    kernels = function_bodies(c, "pagetable", strip_error_exit=True)
    missing = [k for k in KERNELS if k not in kernels]
    assert missing == [], f"kernels not found in the generated C: {missing}"
    assert dirty(kernels, allowed=ALLOWED) == []
    # the checker itself sees Python calls where they are
    assert PY_API.search(kernels["_raise_no_memory"])
