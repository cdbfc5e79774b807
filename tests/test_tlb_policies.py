"""Hand-checked golden sequences per replacement policy, and the documented behaviour of
ASIDs, global entries, invalidation, multiple page sizes, set indexing, counters, input
kinds and error messages (docs/tlb.md). Each golden sequence was worked out by hand from
docs/tlb.md (the derivation is in the comments); the pure-Python reference must agree
with it too."""
import numpy as np
import pytest

from pyapi import TLB
from reference_tlb import ReferenceTLB

F, T = False, True


def va_of(pages, offset=0x123):
    return np.array([(p << 12) | offset for p in pages], dtype=np.uint64)


def hits_of(tlb, pages, **kw):
    return tlb.access(va_of(pages), return_hits=True, **kw).hit.tolist()


def set0_pages(tlb):
    """Page number held by each way of set 0 (None = invalid)."""
    c = tlb.contents()
    out = [None] * tlb.ways
    for s, w, v in zip(c["set"], c["way"], c["vpn"]):
        if s == 0:
            out[int(w)] = int(v)
    return out


def golden(policy, pages, expected, ways_after=None, entries=4, seed=0):
    """Run ``pages`` on a 1-set TLB of ``entries`` ways: engine and reference must both
    give ``expected`` (and, if given, hold ``ways_after`` in ways 0, 1, ...)."""
    tlb = TLB(entries, entries, policy=policy, seed=seed)
    ref = ReferenceTLB(entries, entries, policy=policy, seed=seed)
    assert hits_of(ref, pages) == expected, "the reference disagrees with the hand derivation"
    assert hits_of(tlb, pages) == expected
    if ways_after is not None:
        assert set0_pages(tlb) == ways_after
    assert tlb.stats.hits == sum(expected) and tlb.stats.misses == len(expected) - sum(expected)
    return tlb


# ------------------------------------------------------------------------ golden sequences
def test_lru_golden():
    # MRU first: 1 2 3 4 -> [4 3 2 1]; 1 hit -> [1 4 3 2]; 5 evicts 2 -> [5 1 4 3];
    # 2 evicts 3 -> [2 5 1 4]; 3 evicts 4 -> [3 2 5 1]; 4 evicts 1 -> [4 3 2 5];
    # 1 evicts 5 -> [1 4 3 2]; 5 evicts 2 -> [5 1 4 3]; 3 hit.
    tlb = golden("lru", [1, 2, 3, 4, 1, 5, 2, 3, 4, 1, 5, 3],
                 [F, F, F, F, T, F, F, F, F, F, F, T])
    assert tlb.stats.evictions == 6


def test_fifo_golden():
    # newest first: 1 2 3 4 -> [4 3 2 1]; 1 hit (no change); 5 evicts 1 -> [5 4 3 2];
    # 2, 3, 4 hit; 1 evicts 2 -> [1 5 4 3]; 5 hit; 3 hit.
    tlb = golden("fifo", [1, 2, 3, 4, 1, 5, 2, 3, 4, 1, 5, 3],
                 [F, F, F, F, T, F, T, T, T, F, T, T])
    assert tlb.stats.evictions == 2


def test_random_golden_seed_42():
    # splitmix64(42) = 0xbdd732262feb6e95; the xorshift64* victims ((x>>32)*4)>>32 are
    # 0 2 1 1 3 2 1 3 3 ...  Fills of invalid ways draw nothing.
    # 1 2 3 4 -> ways [1 2 3 4]; 5 -> way 0 [5 2 3 4]; 1 -> way 2 [5 2 1 4];
    # 3 -> way 1 [5 3 1 4]; 4 hit; 5 hit; 2 -> way 1 [5 2 1 4]; 3 -> way 3 [5 2 1 3];
    # 4 -> way 2 [5 2 4 3]; 1 -> way 1 [5 1 4 3]; 5 hit.
    pages = [1, 2, 3, 4, 5, 1, 3, 4, 5, 2, 3, 4, 1, 5]
    tlb = golden("random", pages, [F, F, F, F, F, F, F, T, T, F, F, F, F, T],
                 ways_after=[5, 1, 4, 3], seed=42)
    # a flush keeps the generator where it is; refilling the empty set draws nothing:
    # 1 2 3 4 -> [1 2 3 4]; 6 -> way 3 [1 2 3 6]; 4 -> way 3 [1 2 3 4]; 6 -> way 2 [1 2 6 4]
    tlb.flush()
    assert hits_of(tlb, [1, 2, 3, 4, 6, 4, 6]) == [F] * 7
    assert set0_pages(tlb) == [1, 2, 6, 4]
    # another seed gives another victim sequence (splitmix64(7): victims 0 1 1 2 ...)
    other = TLB(4, 4, policy="random", seed=7)
    hits_of(other, pages)
    assert set0_pages(other) != [5, 1, 4, 3]


def test_plru_golden_4_ways():
    # nodes: 1 root, 2 = ways {0,1}, 3 = ways {2,3}; bits (b1 b2 b3), 1 = victim goes right
    # fills 1 2 3 4 take ways 0 1 2 3: bits 110, 100, 001, 000
    # 1 hit (w0): 110.  5: root 1 -> node 3, b3 0 -> way 2 (page 3); touch w2: 011
    # 2 hit (w1): 101.  6: root 1 -> node 3, b3 1 -> way 3 (page 4); touch w3: 000
    # 3: root 0 -> node 2, b2 0 -> way 0 (page 1); touch w0: 110
    # 1: root 1 -> node 3, b3 0 -> way 2 (page 5); touch w2: 011
    # 2 hit (w1): 101.  6 hit (w3): 000.  4: way 0 (page 3).
    golden("plru", [1, 2, 3, 4, 1, 5, 2, 6, 3, 1, 2, 6, 4],
           [F, F, F, F, T, F, T, F, F, F, T, T, F], ways_after=[4, 2, 1, 6])


def test_plru_golden_3_ways():
    # leaves = 4 but way 3 does not exist: node 3 covers way 2 only, so going right
    # always ends at way 2. fills 1 2 3 -> ways 0 1 2, bits (b1 b2 b3) = 001
    # 4: root 0 -> node 2, b2 0 -> way 0 (page 1); touch w0: 111
    # 5: root 1 -> right (way 2 exists), b3 1 but way 3 missing -> way 2 (page 3): 011
    # 2 hit (w1): 101.  6: way 2 (page 5): 001.  4 hit (w0): 111.
    # 1: way 2 (page 6): 011.  2 hit: 101.  5: way 2 (page 1): 001.  4 hit: 111.
    golden("plru", [1, 2, 3, 4, 5, 2, 6, 4, 1, 2, 5, 4],
           [F, F, F, F, F, T, F, T, F, T, F, T], ways_after=[4, 2, 5], entries=3)


def test_plru_6_ways_never_picks_a_missing_way():
    # 6 ways, leaves 8: nodes 1; 2 (ways 0-3), 3 (ways 4-7); 4 (0,1) 5 (2,3) 6 (4,5) 7 (6,7)
    # fills 1..6 take ways 0..5; after them b1=0 b2=0 b3=1 b4=0 b5=0 b6=0
    # 7: root 0 -> node 2 -> b2 0 -> node 4 -> b4 0 -> way 0 (page 1); touch: b1 b2 b4 = 1
    # 8: root 1 and ways 4.. exist -> node 3; b3 1 but ways 6, 7 do not exist -> node 6;
    #    b6 0 -> way 4 (page 5); touch: b6=1, b3=1, b1=0
    # 9: root 0 -> node 2; b2 1 -> node 5; b5 0 -> way 2 (page 3); touch: b5=1 b2=0 b1=1
    # 6 2 4 hit.
    golden("plru", [1, 2, 3, 4, 5, 6, 7, 8, 9, 6, 2, 4],
           [F, F, F, F, F, F, F, F, F, T, T, T], ways_after=[7, 2, 9, 4, 8, 6], entries=6)


def test_lfu_golden():
    # counts per way; fill = 1, hit += 1 (also on the same-page fast path: "1 1")
    # 1 2 3 4 -> [1 1 1 1]; 1 1 2 hits -> [3 2 1 1]; 5: lowest 1 at ways 2,3 -> way 2
    # (page 3), [3 2 1 1]; 3: way 2 (page 5); 4 hit -> [3 2 1 2]; 5: way 2 (page 3);
    # 3: way 2 (page 5); 4 hit -> [3 2 1 3]; 1 hit -> [4 2 1 3]; 6: way 2 (page 3); 2 hit
    golden("lfu", [1, 2, 3, 4, 1, 1, 2, 5, 3, 4, 5, 3, 4, 1, 6, 2],
           [F, F, F, F, T, T, T, F, F, T, F, F, T, T, F, T], ways_after=[1, 2, 6, 4])


def test_srrip_golden():
    # RRPVs per way; fill 2, hit 0; victim: lowest way with 3 after ageing the set.
    # 1 2 3 4 -> [2 2 2 2]; 1 hit -> [0 2 2 2]; 5: age -> [1 3 3 3], way 1 (page 2)
    # -> [1 2 3 3]; 2: the lowest way with 3 is way 2 (page 3) -> pages [1 5 2 4],
    # [1 2 2 3]; 4 hit -> [1 2 2 0]; 3: age -> [2 3 3 1], way 1 (page 5) -> [2 2 3 1];
    # 1 hit -> [0 2 3 1]; 5: way 2 (page 2) -> [0 2 2 1]; 6: age -> [1 3 3 2], way 1
    # (page 3) -> [1 2 3 2]; 4 hit -> [1 2 3 0]; 3: way 2 (page 5) -> [1 2 2 0]; 1 hit.
    golden("srrip", [1, 2, 3, 4, 1, 5, 2, 4, 3, 1, 5, 6, 4, 3, 1],
           [F, F, F, F, T, F, F, T, F, T, F, F, T, F, T], ways_after=[1, 6, 3, 4])


def test_invalid_way_filled_before_any_victim():
    # a full set with one invalidated entry: the next fill never evicts (every policy)
    for policy in ("lru", "fifo", "random", "plru", "lfu", "srrip"):
        tlb = TLB(4, 4, policy=policy, seed=3)
        hits_of(tlb, [1, 2, 3, 4, 1, 3])
        assert tlb.invalidate(2 << 12) == 1
        assert hits_of(tlb, [9]) == [F]
        assert tlb.stats.evictions == 0, policy
        assert set0_pages(tlb)[1] == 9, policy            # the only invalid way


# ------------------------------------------------------------------------ ASIDs and globals
def test_asid_isolation():
    tlb = TLB(8, 8)
    va = va_of([7])
    assert tlb.access(va, 1, return_hits=True).hit.tolist() == [F]
    assert tlb.access(va, 2, return_hits=True).hit.tolist() == [F]   # other ASID: a miss
    assert tlb.access(va, 1, return_hits=True).hit.tolist() == [T]
    assert tlb.access(va, 2, return_hits=True).hit.tolist() == [T]
    assert tlb.access(va, 3, return_hits=True).hit.tolist() == [F]
    c = tlb.contents()
    assert sorted(c["asid"].tolist()) == [1, 2, 3] and not c["global_"].any()
    # per-access ASID array, with the same page alternating ASIDs (no fast path across ASIDs)
    t2 = TLB(8, 2)
    hit = t2.access(va_of([7] * 4), np.array([4, 5, 4, 5], np.uint16), return_hits=True).hit
    assert hit.tolist() == [F, F, T, T]


def test_global_entries_match_every_asid_and_survive_flushes():
    tlb = TLB(16, 4)
    tlb.access(va_of([1]), 1, global_=True)          # P global
    tlb.access(va_of([2]), 1)                        # Q, ASID 1
    tlb.access(va_of([3]), 2)                        # R, ASID 2
    assert tlb.access(va_of([1]), 9, return_hits=True).hit.tolist() == [T]
    assert tlb.flush_asid(1) == 1                    # Q only
    assert hits_of(tlb, [1], asids=5) == [T]
    assert hits_of(tlb, [3], asids=2) == [T]
    assert tlb.flush(keep_global=True) == 1          # R
    assert hits_of(tlb, [1], asids=7) == [T]
    assert hits_of(tlb, [3], asids=2) == [F]         # refilled (non-global, ASID 2)
    assert tlb.flush() == 2                          # P and the refilled R
    assert hits_of(tlb, [1], asids=1) == [F]
    s = tlb.stats
    assert (s.flushes, s.invalidations) == (3, 4)


def test_invalidate_all_asids_vs_one_asid():
    tlb = TLB(8, 8)
    tlb.access(va_of([5]), 1)
    tlb.access(va_of([5]), 2)
    tlb.access(va_of([5]), 3, global_=True)          # ASID 3 misses: a global copy
    tlb.access(va_of([6]), 1)
    assert len(tlb.contents()["vpn"]) == 4
    # with an ASID: that ASID's entry and the global one go; ASID 2's stays
    assert tlb.invalidate(5 << 12, asid=1) == 2
    assert hits_of(tlb, [5], asids=2) == [T]
    assert hits_of(tlb, [6], asids=1) == [T]
    assert tlb.invalidate((5 << 12) + 0xfff, asid=4) == 0
    # asid=None: every ASID's entry for the page
    tlb.access(va_of([5]), 1)
    assert tlb.invalidate(5 << 12) == 2
    assert tlb.invalidate(np.array([5 << 12, 6 << 12], np.uint64)) == 1
    assert len(tlb.contents()["vpn"]) == 0
    assert tlb.stats.invalidations == 5


# ------------------------------------------------------------------------ page sizes and sets
def test_2m_fill_serves_every_4k_page_inside():
    tlb = TLB(entries=4, page_size=("4K", "2M"))
    base = 3 << 21
    assert tlb.access(np.array([base + 0x5123], np.uint64), page_size="2M").misses == 1
    inside = np.arange(base, base + (1 << 21), 4096, dtype=np.uint64)
    r = tlb.access(inside[::-1].copy(), return_hits=True)
    assert r.hits == 512 and r.hit.all()
    assert tlb.access(np.array([base + (1 << 21)], np.uint64)).misses == 1   # next 2M page
    c = tlb.contents()
    assert sorted(zip(c["vpn"].tolist(), c["page_size"].tolist())) == [(3, 1 << 21), (4 << 9, 4096)]
    # invalidate drops the page's entries of every size held
    assert tlb.invalidate(base + (1 << 21)) == 1
    assert tlb.invalidate(base + 0x7000) == 1
    assert len(tlb.contents()["vpn"]) == 0


def test_smallest_page_size_is_looked_up_first():
    # 2-entry LRU holding 4K and 2M. E4 = 4K entry of va, E2 = 2M entry of its 2M page.
    # A hit on va must use E4 (4K first), making E2 the LRU entry, so that a new page
    # evicts E2 and va2 (covered only by E2) misses.
    tlb = TLB(2, 2, page_size=("4K", "2M"), policy="lru")
    va, va2, other = 0x40_0000 + 0x3000, 0x40_0000 + 0x9000, 0x1000_0000
    assert hits_of(tlb, [va >> 12]) == [F]                          # E4
    assert tlb.access(np.array([va2], np.uint64), page_size="2M").misses == 1   # E2
    assert hits_of(tlb, [va >> 12, other >> 12, va2 >> 12]) == [T, F, F]


def test_non_power_of_two_sets_index_modulo():
    tlb = TLB(48, 4)
    assert tlb.sets == 12
    big = (1 << 40) + 7
    pages = list(range(48)) + [big]
    hits_of(tlb, pages)
    c = tlb.contents()
    for s, v in zip(c["set"].tolist(), c["vpn"].tolist()):
        assert s == v % 12
    assert big in c["vpn"].tolist()
    assert tlb.stats.evictions == 1                  # set big % 12 == 11 was full
    # 5 pages of one set in a 4-way set: the oldest goes
    t2 = TLB(48, 4)
    assert hits_of(t2, [5, 17, 29, 41, 53, 5, 17]) == [F, F, F, F, F, F, F]
    assert hits_of(t2, [53, 41, 17]) == [T, T, T]


def test_eviction_and_fill_counters():
    tlb = TLB(4, 4)
    hits_of(tlb, [1, 2, 3, 4, 5, 6, 5, 6])
    s = tlb.stats
    assert (s.accesses, s.hits, s.misses, s.fills, s.evictions) == (8, 2, 6, 6, 2)
    assert tlb.flush() == 4
    hits_of(tlb, [1, 2])
    s = tlb.stats
    assert (s.fills, s.evictions, s.invalidations, s.flushes) == (8, 2, 4, 1)
    assert s.hit_ratio == pytest.approx(2 / 10)
    tlb.reset_stats()
    assert tlb.stats.accesses == 0 and hits_of(tlb, [1]) == [T]


# ------------------------------------------------------------------------ inputs
def test_empty_input():
    tlb = TLB(16, 4, page_size=("4K", "2M"))
    empty = np.array([], dtype=np.uint64)
    r = tlb.access(empty, np.array([], np.uint16), page_size=np.array([], np.uint64),
                   global_=np.array([], bool), return_hits=True)
    assert (r.hits, r.misses, r.hit.shape) == (0, 0, (0,))
    assert tlb.access([]).accesses == 0
    assert tlb.invalidate(empty) == 0
    assert tlb.stats.accesses == 0
    hits_of(tlb, [1])
    assert tlb.access(empty).hits == 0 and hits_of(tlb, [1]) == [T]


@pytest.mark.parametrize("kind", ["memmap", "readonly"])
def test_readonly_and_memmap_input(to_input, writable, kind):
    rng = np.random.default_rng(5)
    n = 3000
    va = ((rng.integers(0, 200, n) << 12) | rng.integers(0, 4096, n)).astype(np.uint64)
    asids = rng.integers(0, 3, n).astype(np.uint16)
    ps = np.where(rng.random(n) < 0.2, 1 << 21, 4096).astype(np.uint64)
    glob = rng.random(n) < 0.1
    args = [to_input(x, kind) for x in (va, asids, ps, glob)]
    assert all(a.flags.writeable == writable for a in args)
    tlb = TLB(64, 4, page_size=("4K", "2M"), policy="srrip")
    got = tlb.access(args[0], args[1], page_size=args[2], global_=args[3], return_hits=True)
    ref = ReferenceTLB(64, 4, page_size=("4K", "2M"), policy="srrip")
    want = ref.access(va, asids, page_size=ps, global_=glob, return_hits=True)
    assert got.hit.tolist() == want.hit.tolist()
    assert tlb.invalidate(to_input(va[:50], kind)) == ref.invalidate(va[:50])
    assert tlb.stats.to_dict() == ref.stats.to_dict()
    # the inputs are untouched
    assert np.array_equal(np.asarray(args[0]), va)


# ------------------------------------------------------------------------ errors
def _msg(excinfo):
    return str(excinfo.value)


def test_error_entries_not_multiple_of_ways():
    with pytest.raises(ValueError) as e:
        TLB(entries=2048, ways=12)
    m = _msg(e)
    assert "entries=2048" in m and "ways=12" in m
    assert "2040" in m and "2052" in m                   # entry counts that fit 12 ways
    assert "16" in m and "32" in m                       # way counts that fit 2048


@pytest.mark.parametrize("call, exc, words", [
    (lambda t: t.access(np.array([4096.0, 8192.0])), TypeError, ["vaddrs", "float64"]),
    (lambda t: t.access(np.array(["a"])), TypeError, ["vaddrs"]),
    (lambda t: t.access(np.zeros((2, 3), np.uint64)), ValueError, ["vaddrs", "(2, 3)"]),
    (lambda t: t.access(np.array([4096, -8192], np.int64)), ValueError, ["vaddrs", "-8192"]),
    (lambda t: t.access(np.zeros(2, np.uint64), asids=70000), ValueError, ["asid", "70000"]),
    (lambda t: t.access(np.zeros(2, np.uint64), asids=-1), ValueError, ["asid", "-1"]),
    (lambda t: t.access(np.zeros(2, np.uint64), asids=np.array([1, 70000])), ValueError,
     ["asids"]),
    (lambda t: t.flush_asid(65536), ValueError, ["asid", "65536"]),
    (lambda t: t.invalidate(0, asid=-3), ValueError, ["asid", "-3"]),
    (lambda t: t.access(np.zeros(2, np.uint64), page_size="1G"), ValueError,
     ["page_size", "1G"]),
    (lambda t: t.access(np.zeros(2, np.uint64), page_size=np.array([4096, 1 << 30], np.uint64)),
     ValueError, ["page_size", str(1 << 30)]),
    (lambda t: t.access(np.zeros(2, np.uint64), page_size="3K"), ValueError,
     ["page_size", "3K"]),
    (lambda t: t.access(np.zeros(3, np.uint64), asids=np.zeros(2, np.uint16)), ValueError,
     ["asids", "2", "3"]),
    (lambda t: t.access(np.zeros(3, np.uint64), page_size=np.full(4, 4096, np.uint64)),
     ValueError, ["page_size", "4", "3"]),
    (lambda t: t.access(np.zeros(3, np.uint64), global_=np.zeros(1, bool)), ValueError,
     ["global_", "1", "3"]),
    (lambda t: t.access(np.zeros(3, np.uint64), asids=np.zeros((3, 1), np.uint16)), ValueError,
     ["asids"]),
    (lambda t: t.invalidate(-4096), ValueError, ["vaddr", "-4096"]),
], ids=["float", "str", "2d", "negative", "asid-big", "asid-neg", "asids-big",
        "flush-asid", "invalidate-asid", "size-not-held", "size-array-not-held",
        "size-unknown", "len-asids", "len-page-size", "len-global", "asids-2d",
        "invalidate-neg"])
def test_error_messages_name_the_argument(call, exc, words):
    tlb = TLB(16, 4, page_size=("4K", "2M"))
    before = tlb.stats
    with pytest.raises(exc) as e:
        call(tlb)
    for w in words:
        assert w in _msg(e), f"{w!r} not in {_msg(e)!r}"
    assert tlb.stats == before                          # nothing ran


def test_error_unknown_policy_and_bad_geometry():
    with pytest.raises(ValueError, match=r"policy 'mru'"):
        TLB(8, policy="mru")
    with pytest.raises(ValueError, match=r"ways=16.*entries=8"):
        TLB(8, 16)
    with pytest.raises((TypeError, ValueError), match="entries"):
        TLB(0)
    with pytest.raises(TypeError, match="entries"):
        TLB(8.0)
    with pytest.raises(ValueError, match="page_size"):
        TLB(8, page_size="8K")


@pytest.mark.parametrize("kw", [
    {"asids": np.array([1.5, 2.0])},
    {"asids": np.array(["1", "2"])},
    {"global_": np.array(["no", "no"])},
    {"global_": np.array([0.5, 0.0])},
], ids=["asids-float", "asids-str", "global-str", "global-float"])
def test_error_wrong_dtype_of_asids_and_global(kw):
    # regression: these arrays once skipped the dtype check (1.5 was truncated to 1,
    # strings were taken as true)
    tlb = TLB(16, 4)
    with pytest.raises(TypeError) as e:
        tlb.access(np.array([0x1000, 0x2000], np.uint64), **kw)
    assert next(iter(kw)) in _msg(e)


def test_error_asids_array_out_of_range_names_value():
    # docs/tlb.md: errors name the argument and the value (regression: the value was missing)
    with pytest.raises(ValueError, match="asids.*70000"):
        TLB(16, 4).access(np.zeros(2, np.uint64), asids=np.array([1, 70000]))


def test_single_fill_records_the_displaced_entry():
    """tlb_fill keeps the entry it displaced (tag, ASID, payload) for exclusive
    hierarchies; a fill into an invalid way records that nothing was displaced."""
    tlb = TLB(entries=2, ways=2, policy="lru")
    core = tlb.core
    core._py_fill(0x1000, 3, 0, False, 111)
    assert core._py_victim()[0] is False
    core._py_fill(0x2000, 3, 0, True, 222)
    core._py_fill(0x3000, 4, 0, False, 333)           # evicts page 1 (LRU), ASID 3
    valid, tag, easid, data = core._py_victim()
    assert (valid, tag >> 2, tag & 3, easid, data) == (True, 1, 0, 3, 111)
    core._py_fill(0x4000, 4, 0, False, 444)           # evicts page 2, a global entry
    valid, tag, easid, data = core._py_victim()
    assert (valid, tag >> 2, easid, data) == (True, 2, 0x10000, 222)
