"""The MMU engine's nogil kernels touch no Python objects (cython -a "yellow").

Translates mmucore/mmu.pyx to C (tests/cython_c.py) and checks the body of every cdef
function. Only the creation of an address space's page table (``_create_pt``, which
takes the GIL to call the owner's factory at most 4096 times per MMU, and the owner's
``_create`` method) may touch Python; functions declared ``except -1`` have their error
exit cut off before the check. The checkpoint functions (``mmu_dump``, ``mmu_restore``
and its helper ``_take``) run with the GIL on Python bytes by design; they are not
kernels.
"""
from cython_c import PY_API, dirty, function_bodies, translate

ALLOWED = {"_create_pt", "7MMUCore__create", "mmu_dump", "mmu_restore", "_take"}
KERNELS = ["mmu_run", "_run", "_run_loads", "_run_fast", "_prefetch_leaf", "_access",
           "_translate", "_mmu_walk", "_fill_l1", "_fill_l2", "_victim_to_l2", "_control",
           "_flush_cpu", "_flush_psc_asid", "_invalidate_range_cpu", "mmu_invalidate_range",
           "mmu_reset_counters",
           # the TLB and walk internals compiled into this module (_tlb_core.pxi,
           # _pt_walk.pxi): the per-access path inlines them
           "_tlb_probe_i", "_tlb_probe_sizes_i", "_tlb_lookup_i", "_tlb_fill_i",
           "_tlb_fill_absent_i", "_tlb_touch_i", "_tlb_remove_i", "_tlb_remove_match_i",
           "_walk_w[__pyx_fuse_0]", "_walk_w[__pyx_fuse_1]", "_walk_demand", "_finish", "_rd",
           # the lean path (_mmu_lean.pxi; both copies, _LeanScan and _LeanAny) and its
           # prefetch
           "_lean_setup", "_lean_live", "_lean_walk_generic", "_lean_op",
           "_count_memo_hits", "_memo_run_end",
           "_prefetch_leaf8", "_prefetch_ahead",
           # the 4K run (_mmu_run4k.pxi)
           "_run4k_ok", "_run4k_side", "_run4k_flush", "_l1_first", "_l1_to_front", "_same_side",
           "_run4k_go",
           "_lean_ent_at[__pyx_fuse_0]", "_lean_ent_at[__pyx_fuse_1]",
           "_lean_key[__pyx_fuse_0]", "_lean_key[__pyx_fuse_1]", "_walk_top",
           "_lean_idx[__pyx_fuse_0]", "_lean_idx[__pyx_fuse_1]",
           "_r4_path[__pyx_fuse_0]", "_r4_path[__pyx_fuse_1]",
           "_prefetch_leaf_ent[__pyx_fuse_1]"] + [
           f"_run4k[__pyx_fuse_{k}_{c}_{w}]" for k in (0, 1) for c in (0, 1) for w in (0, 1)] + [
           f"{name}[__pyx_fuse_{k}]" for k in (0, 1)
           for name in ("_lean_find", "_lean_probe", "_lean_touch", "_lean_fill",
                        "_lean_remove_match", "_lean_fill_l1", "_lean_fill_l2", "_lean_fill_set",
                        "_lean_l2_hit", "_lean_access", "_lean_ent")] + [
           f"_lean_walk[__pyx_fuse_{k}_{w}]" for k in (0, 1) for w in (0, 1)]


def test_kernels_have_no_python_interaction(tmp_path):
    c = translate(tmp_path, "mmu", ("mmu.pyx", "mmu.pxd", "pagetable.pxd", "tlb.pxd",
                                    "_tlb_core.pxi", "_pt_walk.pxi", "_mmu_lean.pxi", "_mmu_run4k.pxi",
                                    "_rng.pxd",
                                    "_types.pxd"))
    kernels = function_bodies(c, "mmu", strip_error_exit=True)
    missing = [k for k in KERNELS if k not in kernels]
    assert missing == [], f"kernels not found in the generated C: {missing}"
    assert dirty(kernels, allowed=ALLOWED) == []
    # the checker itself sees Python calls where they are
    assert PY_API.search(kernels["_create_pt"])
