"""The generator kernels touch no Python objects (what `cython -a` shows as yellow).

Translates mmucore/gen.pyx to C (tests/cython_c.py) and checks that the body of every
cdef function of the module (all of them are nogil kernels) is free of Python API calls.
"""
from cython_c import dirty, function_bodies, translate

KERNELS = {"uniform_fill", "stride_fill", "zipf_fill", "zipf_rank_table", "_zipf_rank_table",
           "zipf_rank_ri", "zipf_page", "zipf_perm_once", "chase_fill", "matmul_fill",
           "stream_fill", "bfs_fill", "gen_fill", "draws_below", "sattolo_cycle", "cycle_order",
           "csr_random", "bfs_visit_order", "gen_key", "counter_draw", "unit_double", "sub_draw"}


def test_kernels_have_no_python_interaction(tmp_path):
    c = translate(tmp_path, "gen", ("gen.pyx", "gen.pxd", "_types.pxd", "_rng.pxd"))
    kernels = function_bodies(c, "gen")
    assert set(kernels) == KERNELS, "kernels added or removed: update KERNELS"
    assert dirty(kernels) == []
