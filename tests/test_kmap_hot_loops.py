"""The kmap engine's nogil kernels touch no Python objects (no `cython -a` yellow).

Translates mmucore/kmap.pyx to C in a temporary folder and checks that the body of every
nogil kernel is free of Python API calls. Only the allocation paths may touch Python:
they raise MemoryError/ValueError (each under `with gil`, on its error branch only).
"""
from cython_c import PY_API, dirty, function_bodies, translate

# the kernels that allocate, or reject a CPU / km_type outside the engine's arrays
# (_bad_op): they may raise (MemoryError/ValueError) on their error path
ALLOCATING = {"kmap_init", "_pt_grow", "_grow", "_task_index", "_defer", "_sleep",
              "_window_new", "_reserve_bucket", "_bad_op"}
# the kernels that must exist and be clean (the hot loop and everything it inlines)
HOT = {"kmap_run", "_run[__pyx_fuse_0]", "_run[__pyx_fuse_1]", "_op", "kmap_op", "kmap_settle",
       "_map_new_virtual", "_kmap_miss", "_task_kmap_miss", "_requeue",
       "_flush_all_zero_pkmaps", "_task_kunmap", "_window_wrap", "_window_map_new",
       "_kmap_atomic", "_kunmap_atomic", "_switch_to", "_load_space", "_space_left",
       "_global_flush", "kmap_page_address", "kmap_bucket", "_replay_backlog"}


def test_kernels_have_no_python_interaction(tmp_path):
    c = translate(tmp_path, "kmap", ("kmap.pyx", "kmap.pxd", "tlb.pxd", "_types.pxd"))
    kernels = function_bodies(c, "kmap", strip_error_exit=True)
    assert HOT <= set(kernels), f"missing kernels: {sorted(HOT - set(kernels))}"
    assert dirty(kernels, allowed=ALLOCATING) == []
    # the allocating kernels touch Python only to raise, under `with gil`
    for k in ALLOCATING & set(kernels):
        body = kernels[k]
        for m in PY_API.finditer(body):
            assert "PyGILState_Ensure" in body[:m.start()] or m.group(0).startswith("PyGILState"), k
