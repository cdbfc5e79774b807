"""The engine's own invariants, checked after every operation of random op sequences.

`TLBCore._check_invariants()` verifies per-set valid counts, the global-entry count, the
LRU/FIFO order (a permutation with invalid ways at the old end), the per-set linked lists
and the hashed index. These tests drive every engine variant (scan <= 16 ways, wide scan
17..64 ways, hashed index > 64 ways) through accesses, invalidations and flushes, and
compare every step's counters with the pure-Python reference. CI runs them once more
against a build with bounds checks (MMUCORE_DEBUG=1).
"""
import numpy as np
from hypothesis import given, settings, strategies as st

from pyapi import TLB
from reference_tlb import ReferenceTLB

POLICIES = ["lru", "fifo", "random", "plru", "lfu", "srrip"]
# scan engine, wide scan (17..64 ways), hashed index (> 64 ways), with odd set counts
GEOMETRIES = [(12, 4), (16, 16), (48, 24), (64, 64), (96, 96), (130, 65), (256, 128)]

op = st.one_of(
    st.tuples(st.just("access"), st.lists(st.integers(0, 47), min_size=1, max_size=60),
              st.integers(0, 2), st.booleans(), st.booleans()),
    st.tuples(st.just("invalidate"), st.integers(0, 47), st.one_of(st.none(), st.integers(0, 2))),
    st.tuples(st.just("flush"), st.booleans()),
    st.tuples(st.just("flush_asid"), st.integers(0, 2)),
)


@settings(deadline=None)
@given(geometry=st.sampled_from(GEOMETRIES), policy=st.sampled_from(POLICIES),
       seed=st.integers(0, 2**32), ops=st.lists(op, min_size=1, max_size=25))
def test_invariants_hold_and_counters_match(geometry, policy, seed, ops):
    entries, ways = geometry
    kw = dict(entries=entries, ways=ways, page_size=("4K", "2M"), policy=policy, seed=seed)
    fast, ref = TLB(**kw), ReferenceTLB(**kw)
    for o in ops:
        if o[0] == "access":
            _, pages, asid, glob, big = o
            # 48 pages spread over a few 2M regions, so 2M fills overlap 4K pages
            va = np.array([(p % 6) * (2 << 20) + (p // 6) * 4096 for p in pages], np.uint64)
            size = "2M" if big else "4K"
            a = fast.access(va, asids=asid, global_=glob, page_size=size, return_hits=True)
            b = ref.access(va, asids=asid, global_=glob, page_size=size, return_hits=True)
            assert a.hit.tolist() == list(b.hit)
        elif o[0] == "invalidate":
            va = (o[1] % 6) * (2 << 20) + (o[1] // 6) * 4096
            assert fast.invalidate(va, asid=o[2]) == ref.invalidate(va, asid=o[2])
        elif o[0] == "flush":
            assert fast.flush(keep_global=o[1]) == ref.flush(keep_global=o[1])
        else:
            assert fast.flush_asid(o[1]) == ref.flush_asid(o[1])
        assert fast.core._check_invariants()
        assert fast.stats.to_dict() == ref.stats.to_dict()


def test_invariant_checker_detects_corruption():
    tlb = TLB(entries=8, ways=4, policy="lru")
    tlb.access(np.arange(8, dtype=np.uint64) << np.uint64(12))
    assert tlb.core._check_invariants()
    tlb.core._corrupt_for_tests()
    try:
        tlb.core._check_invariants()
    except AssertionError as exc:
        assert "nvalid" in str(exc)
    else:
        raise AssertionError("a corrupted valid count went unnoticed")
