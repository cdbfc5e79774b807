"""The TLB engine's hot kernels touch no Python objects (what `cython -a` shows as yellow).

Translates mmucore/tlb.pyx to C in a temporary folder and checks that the body of every
nogil kernel, and of each of its fused specialisations, is free of Python API calls.
Only `tlb_init` may touch Python: it raises MemoryError/ValueError on its error path.
The checkpoint functions `tlb_dump`/`tlb_restore` are not kernels: they run with the
GIL and build/read Python bytes by design (docs/cython_api.md).
(The other engine modules have their own tests/test_*_hot_loops.py, on tests/cython_c.py.)
"""
from cython_c import dirty, function_bodies, translate


def test_kernels_have_no_python_interaction(tmp_path):
    c = translate(tmp_path, "tlb", ("tlb.pyx", "tlb.pxd", "_tlb_core.pxi", "_types.pxd",
                                    "_rng.pxd"))
    kernels = function_bodies(c, "tlb")
    # the batch loop exists in one specialisation per (policy, engine, batch shape)
    assert sum(1 for k in kernels if k.startswith("_batch[")) == 6 * 3
    assert sum(1 for k in kernels if k.startswith("_batch_run[")) == 6 * 3 * 2
    assert dirty(kernels, allowed={"tlb_init", "tlb_dump", "tlb_restore"}) == []
