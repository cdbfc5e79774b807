"""Differential tests of the engine's global kmap pool against tests/oracle_kmap.py, an
oracle transcribed from the kernel sources (mm/highmem.c of 2.4.18, 2.6.12 and 6.x),
independent of the engine and of tests/reference_kmap.py.

Traces are well-formed (every KUNMAP matches a still-held KMAP of the same pfn) and
never hold more distinct highmem pages at once than the pool has slots, so no task
ever sleeps.  Counters, ``pool.state()`` (pkmap_count, cursor, slot_pfn), the hash
chains and ``pool.page_address()`` must all agree.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from pyapi import KmapPool, Op
from pyapi.chunk import TraceChunk

from oracle_kmap import MAXMEM_PFN, OracleKmap, OracleWouldSleep

KERNELS = ["2.4.18", "2.5.13", "2.6.12", "6.x"]
HI = MAXMEM_PFN            # first highmem pfn (default highmem_start_pfn)

# Counters the oracle models; every other pool counter must stay 0 on these traces
# (no sleeping, no atomic kmaps, no per-task pool).
MODELLED = ["ops", "kmaps", "kunmaps", "lowmem", "lookups", "hash_probes", "hits",
            "new_mappings", "cursor_steps", "wraps", "slots_reclaimed",
            "global_flushes", "ipis", "context_switches"]
MUST_BE_ZERO = ["sleeps", "wakeups", "deferred", "atomic_maps", "atomic_unmaps",
                "invlpgs", "local_reinstalls", "asleep", "pending", "task_lookups",
                "task_probes", "task_hits", "task_new_mappings", "task_cursor_steps",
                "task_wraps", "task_reclaimed", "task_flushes", "task_shootdowns",
                "task_ipis", "task_fallbacks", "cross_task"]


def engine_counters(pool):
    d = pool.stats.to_dict()
    return {k: d[k] for k in MODELLED}


def make_chunk(ops, pfns, cpus, with_task=True):
    ops = np.asarray(ops, np.uint8)
    pfns = np.asarray(pfns, np.uint64)
    cpus = np.asarray(cpus, np.uint16)
    task = cpus.astype(np.uint32) if with_task else None
    return TraceChunk(addr=pfns, op=ops, cpu=cpus, task=task)


def same_bucket_pfns(oracle, base, k):
    """k highmem pfns >= base hashing to the bucket of ``base`` (hashed kernels)."""
    want = oracle.page_slot(base)
    out = [base]
    pfn = base + 1
    while len(out) < k:
        if oracle.page_slot(pfn) == want:
            out.append(pfn)
        pfn += 1
    return out


def compare_state(pool, oracle, universe):
    hi = oracle.highmem_start_pfn
    st_ = pool.state()
    assert list(map(int, st_["pkmap_count"])) == oracle.pkmap_count
    assert int(st_["cursor"]) == oracle.last_pkmap_nr
    assert list(map(int, st_["slot_pfn"])) == oracle.slot_pfn()
    if oracle.v.hashed:
        assert [list(map(int, ch)) for ch in pool.core.chains()] == oracle.chains()
    # page_address() of every highmem pfn the trace used (and some it did not):
    # values, and the lookups / hash_probes the calls add, must agree.
    for pfn in universe:
        if pfn < hi:
            continue
        assert pool.page_address(pfn) == oracle.page_address(pfn), hex(pfn)
    assert engine_counters(pool) == oracle.c.as_dict()


@st.composite
def scenarios(draw):
    kernel = draw(st.sampled_from(KERNELS))
    pae = draw(st.booleans())
    slots = draw(st.one_of(st.integers(1, 4), st.integers(1, 16), st.integers(1, 16),
                          st.none()))
    cpus = draw(st.integers(1, 4))
    nslots = slots if slots is not None else (512 if pae else 1024)
    # pfn universe: a few lowmem pfns, highmem pfns just above the boundary, a random
    # highmem range and (hashed kernels) pfns forced into one hash bucket
    mem_map = draw(st.sampled_from([0xC1000000, 0xC0100000, 0xC2345000,
                                    0xC0000000 + 64 * draw(st.integers(0, 1 << 20))]))
    HI = draw(st.sampled_from([MAXMEM_PFN, MAXMEM_PFN, 0x1000, 0x3FFFF]))
    probe = OracleKmap(kernel=kernel, pae=pae, slots=slots, highmem_start_pfn=HI,
                       mem_map=mem_map)
    base = draw(st.integers(HI, HI + 1_000_000))
    width = draw(st.integers(1, 3 * min(nslots, 16) + 2))
    universe = [draw(st.integers(0, HI - 1)) for _ in range(draw(st.integers(0, 2)))]
    universe += [HI + i for i in range(draw(st.integers(0, 3)))]
    universe += [base + i for i in range(width)]
    if probe.v.hashed and draw(st.booleans()):
        universe += same_bucket_pfns(probe, base + width, draw(st.integers(2, 5)))
    universe = sorted(set(universe))
    max_held = draw(st.integers(1, min(nslots, 16)))
    n = draw(st.integers(1, 160))
    ops, pfns, cpu_col = [], [], []
    held = {}                                   # pfn -> nesting depth
    for _ in range(n):
        distinct_high = sum(1 for p in held if p >= HI)
        can_kunmap = bool(held)
        do_kunmap = can_kunmap and draw(st.integers(0, 99)) < 45
        if do_kunmap:
            pfn = draw(st.sampled_from(sorted(held)))
            held[pfn] -= 1
            if not held[pfn]:
                del held[pfn]
            ops.append(Op.KUNMAP)
        else:
            pfn = draw(st.sampled_from(universe))
            if pfn >= HI and pfn not in held and distinct_high >= max_held:
                if not held:
                    continue
                pfn = draw(st.sampled_from(sorted(held)))   # nest instead
            held[pfn] = held.get(pfn, 0) + 1
            ops.append(Op.KMAP)
        pfns.append(pfn)
        cpu_col.append(draw(st.integers(0, cpus - 1)))
    if draw(st.booleans()):                     # release everything at the end
        for pfn in sorted(held):
            for _ in range(held[pfn]):
                ops.append(Op.KUNMAP)
                pfns.append(pfn)
                cpu_col.append(draw(st.integers(0, cpus - 1)))
    split = draw(st.integers(0, len(ops)))
    with_task = draw(st.booleans())
    return dict(kernel=kernel, pae=pae, slots=slots, cpus=cpus, ops=ops, pfns=pfns,
                mem_map=mem_map, hi=HI,
                cpu=cpu_col, split=split, with_task=with_task, universe=universe)


@given(scenarios())
def test_engine_matches_kernel_oracle(sc):
    kw = dict(kernel=sc["kernel"], pae=sc["pae"], slots=sc["slots"], cpus=sc["cpus"],
              highmem_start_pfn=sc["hi"], mem_map=sc["mem_map"])
    pool = KmapPool(**kw)
    oracle = OracleKmap(**kw)
    assert pool.slots == oracle.LAST_PKMAP
    ops, pfns, cpus, k = sc["ops"], sc["pfns"], sc["cpu"], sc["split"]
    try:
        oracle.run(ops, pfns, cpus)
    except OracleWouldSleep:                    # cannot happen for these traces
        raise AssertionError("generator produced a sleeping trace")
    # the same trace, in two run() calls (the state carries over)
    for lo, hi in ((0, k), (k, len(ops))):
        if hi > lo:
            pool.run(make_chunk(ops[lo:hi], pfns[lo:hi], cpus[lo:hi], sc["with_task"]))
    assert engine_counters(pool) == oracle.c.as_dict()
    d = pool.stats.to_dict()
    assert {k_: d[k_] for k_ in MUST_BE_ZERO} == dict.fromkeys(MUST_BE_ZERO, 0)
    compare_state(pool, oracle, sc["universe"])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("pae", [False, True])
def test_full_pool_cycles_match(kernel, pae):
    """Default pool size: 3 * LAST_PKMAP + 5 distinct kmap/kunmap pairs (several
    wraps of the real 512/1024-slot pool), plus pages held across the wraps."""
    oracle = OracleKmap(kernel=kernel, pae=pae, cpus=3)
    pool = KmapPool(kernel=kernel, pae=pae, cpus=3)
    n = 3 * oracle.LAST_PKMAP + 5
    pinned = [HI + 10_000_000 + i for i in range(7)]
    ops = [Op.KMAP] * len(pinned)
    pfns = list(pinned)
    for i in range(n):
        pfn = HI + 123 + (i % (oracle.LAST_PKMAP + 3))
        ops += [Op.KMAP, Op.KUNMAP]
        pfns += [pfn, pfn]
    cpus = [i % 3 for i in range(len(ops))]
    oracle.run(ops, pfns, cpus)
    pool.run(make_chunk(ops, pfns, cpus))
    assert engine_counters(pool) == oracle.c.as_dict()
    compare_state(pool, oracle, pinned + [HI + 123, HI + 124, HI + 122])


# ---------------------------------------------------------------------------------
# Hand-computed golden cases (independent of both the oracle and the engine).
A, B, C = HI + 70_000, HI + 70_001, HI + 70_002


def run_both(kernel, ops, pfns, cpus=None, n_cpus=1, slots=2):
    cpus = cpus if cpus is not None else [0] * len(ops)
    pool = KmapPool(kernel=kernel, slots=slots, cpus=n_cpus)
    pool.run(make_chunk(ops, pfns, cpus))
    oracle = OracleKmap(kernel=kernel, slots=slots, cpus=n_cpus)
    oracle.run(ops, pfns, cpus)
    return pool, oracle


@pytest.mark.parametrize("kernel", KERNELS)
def test_golden_slots2_eight_ops(kernel):
    """slots=2, cpus=2, all ops on CPU 0.  Worked by hand from mm/highmem.c:

    1 kmap A    lookup miss; map_new_virtual: cursor 0->1 (step 1), count[1]==0:
                slot 1 = A, count[1] = 1, kmap_high ++ -> 2              new 1
    2 kunmap A  lookup; count[1] 2->1
    3 kmap B    lookup miss; cursor 1->0 (step 2) = wrap: flush_all_zero_pkmaps
                reclaims slot 1 (A): reclaimed 1, flush 1, IPI 1; count[0]==0:
                slot 0 = B, count[0] = 2                                  new 2
    4 kmap A    lookup miss (A was reclaimed); cursor 0->1 (step 3), count[1]==0:
                slot 1 = A, count[1] = 2                                  new 3
    5 kmap B    lookup hit; count[0] 2->3                                 hit 1
    6 kunmap B  count[0] 3->2
    7 kunmap A  count[1] 2->1
    8 kmap C    lookup miss; cursor 1->0 (step 4) = wrap: slot 0 held (2),
                slot 1 (A) reclaimed: reclaimed 2, flush 2, IPI 2; count[0]=2 != 0,
                budget 2->1; cursor 0->1 (step 5), count[1]==0: slot 1 = C   new 4
    Every wrap reclaimed a slot, so 6.x flushes exactly as 2.4/2.6 here.
    Final: pkmap_count [2, 2], cursor 1, slot_pfn [B, C]; A unmapped.
    """
    ops = [Op.KMAP, Op.KUNMAP, Op.KMAP, Op.KMAP, Op.KMAP, Op.KUNMAP, Op.KUNMAP, Op.KMAP]
    pfns = [A, A, B, A, B, B, A, C]
    pool, oracle = run_both(kernel, ops, pfns, n_cpus=2)
    expect = dict(ops=8, kmaps=5, kunmaps=3, lowmem=0, lookups=8, hits=1,
                  new_mappings=4, cursor_steps=5, wraps=2, slots_reclaimed=2,
                  global_flushes=2, ipis=2, context_switches=1)
    got = engine_counters(pool)
    assert {k: got[k] for k in expect} == expect
    assert {k: oracle.c.as_dict()[k] for k in expect} == expect
    st_ = pool.state()
    assert list(st_["pkmap_count"]) == [2, 2] and int(st_["cursor"]) == 1
    assert list(st_["slot_pfn"]) == [B, C]
    base = oracle.v.pkmap_base
    assert pool.page_address(A) is None
    assert pool.page_address(B) == base and pool.page_address(C) == base + 4096
    if not oracle.v.hashed:
        assert got["hash_probes"] == 0


@pytest.mark.parametrize("kernel,flushes", [("2.4.18", 2), ("2.5.13", 2),
                                            ("2.6.12", 2), ("6.x", 1)])
def test_golden_wrap_without_reclaim(kernel, flushes):
    """slots=2, cpus=4: the first wrap finds nothing to reclaim.

    1 kmap A    cursor 0->1 (step 1): slot 1 = A (count 2)                 new 1
    2 kmap B    cursor 1->0 (step 2) wrap: slot 1 is held -> nothing reclaimed;
                2.4/2.5/2.6.12 flush anyway, 6.x does not (need_flush == 0);
                slot 0 = B (count 2)                                      new 2
    3 kunmap A  count[1] -> 1      4 kunmap B  count[0] -> 1
    5 kmap A    hit (page_address still set), count[1] -> 2               hit 1
    6 kunmap A  count[1] -> 1
    7 kmap C    cursor 0->1 (step 3): count[1]=1, budget 2->1; cursor 1->0
                (step 4) wrap: reclaims slots 0 (B) and 1 (A): reclaimed 2,
                flush; slot 0 = C                                         new 3
    8 kunmap C  count[0] -> 1
    Final: pkmap_count [1, 0], cursor 0, slot_pfn [C, -1].
    Hash probes (hashed kernels, A, B, C in three different buckets): a lookup finds
    its page first in its chain (1 probe) or an empty chain (0): ops 3,4,5,6,8 -> 5.
    """
    ops = [Op.KMAP, Op.KMAP, Op.KUNMAP, Op.KUNMAP, Op.KMAP, Op.KUNMAP, Op.KMAP, Op.KUNMAP]
    pfns = [A, B, A, B, A, A, C, C]
    pool, oracle = run_both(kernel, ops, pfns, n_cpus=4)
    expect = dict(ops=8, kmaps=4, kunmaps=4, lookups=8, hits=1, new_mappings=3,
                  cursor_steps=4, wraps=2, slots_reclaimed=2, global_flushes=flushes,
                  ipis=3 * flushes)
    if oracle.v.hashed:
        assert len({oracle.page_slot(p) for p in (A, B, C)}) == 3
        expect["hash_probes"] = 5
    else:
        expect["hash_probes"] = 0
    got = engine_counters(pool)
    assert {k: got[k] for k in expect} == expect
    assert {k: oracle.c.as_dict()[k] for k in expect} == expect
    st_ = pool.state()
    assert list(st_["pkmap_count"]) == [1, 0] and int(st_["cursor"]) == 0
    assert list(st_["slot_pfn"]) == [C, -1]


@pytest.mark.parametrize("kernel", ["2.6.12", "6.x"])
def test_golden_hash_chain_order(kernel):
    """X, Y, Z hash to one bucket.  kmap X, Y, Z (chain X->Y->Z, list_add_tail);
    kunmap Z (3 probes), kunmap X (1), kunmap Y (2); kmap Y: hit (2 probes);
    page_address(W) for a W of the same bucket that is not mapped: 3 probes.
    The three kmaps miss: X in an empty chain (0 probes), Y in [X] (1), Z in [X, Y]
    (2); total 0+1+2 + 3+1+2 + 2 = 11, then 14 after page_address(W)."""
    probe = OracleKmap(kernel=kernel, slots=8)
    X, Y, Z, W = same_bucket_pfns(probe, HI + 5000, 4)
    ops = [Op.KMAP, Op.KMAP, Op.KMAP, Op.KUNMAP, Op.KUNMAP, Op.KUNMAP, Op.KMAP]
    pfns = [X, Y, Z, Z, X, Y, Y]
    pool, oracle = run_both(kernel, ops, pfns, slots=8)
    assert engine_counters(pool)["hash_probes"] == 3 + 3 + 1 + 2 + 2 == 11
    assert oracle.c.hash_probes == 11
    assert pool.core.chains()[probe.page_slot(X)] == [1, 2, 3]   # slots of X, Y, Z
    assert pool.page_address(W) is None
    assert pool.stats.hash_probes == 14 and pool.stats.lookups == 8


@pytest.mark.parametrize("kernel", KERNELS)
def test_golden_slots1(kernel):
    """slots=1: LAST_PKMAP_MASK = 0, every cursor advance lands on 0 and wraps.
    kmap A (wrap, nothing to reclaim; slot 0 = A), kunmap A, kmap A (hit), kunmap A,
    kmap B (wrap reclaims A; slot 0 = B), kunmap B:
    steps 2, wraps 2, reclaimed 1, flushes 2 (6.x: 1), new 2, hits 1."""
    ops = [Op.KMAP, Op.KUNMAP, Op.KMAP, Op.KUNMAP, Op.KMAP, Op.KUNMAP]
    pfns = [A, A, A, A, B, B]
    pool, oracle = run_both(kernel, ops, pfns, slots=1)
    got = engine_counters(pool)
    flushes = 1 if kernel == "6.x" else 2
    expect = dict(cursor_steps=2, wraps=2, slots_reclaimed=1, global_flushes=flushes,
                  new_mappings=2, hits=1, lookups=6)
    assert {k: got[k] for k in expect} == expect
    assert {k: oracle.c.as_dict()[k] for k in expect} == expect
    assert list(pool.state()["slot_pfn"]) == [B]


@pytest.mark.parametrize("kernel", KERNELS)
def test_lowmem_bypass(kernel):
    """kmap/kunmap of a lowmem pfn: no lookup, no slot, no cursor step, the permanent
    address.  ``lowmem`` here counts both the kmap and the kunmap (the oracle's reading
    of "lowmem (bypasses)"; see the report on its ambiguity)."""
    pool, oracle = run_both(kernel, [Op.KMAP, Op.KUNMAP], [5, 5])
    got = engine_counters(pool)
    assert got == oracle.c.as_dict()
    assert got["lookups"] == 0 and got["cursor_steps"] == 0
    assert pool.page_address(5) == 0xC0000000 + 5 * 4096


def test_docstring_example_by_hand():
    """help(KmapPool) example: 2.6.12, PAE (512 slots), 1024 distinct pages, each
    kmap+kunmap.  By hand: pages 0..510 take slots 1..511; page 511 wraps (reclaims
    the 511 idle slots) and takes slot 0; pages 512..1022 take slots 1..511; page 1023
    wraps again and reclaims all 512.  wraps 2, flushes 2, IPIs 2*3, reclaimed 1023,
    cursor steps 1024 (one per new mapping, no slot ever skipped)."""
    pfns = [300000 + i for i in range(1024) for _ in (0, 1)]
    ops = [Op.KMAP, Op.KUNMAP] * 1024
    cpus = [0] * len(ops)
    oracle = OracleKmap(kernel="2.6.12", pae=True, cpus=4)
    oracle.run(ops, pfns, cpus)
    pool = KmapPool(kernel="2.6.12", pae=True, cpus=4)
    pool.run(make_chunk(ops, pfns, cpus))
    c = oracle.c
    assert (c.wraps, c.global_flushes, c.ipis, c.slots_reclaimed, c.cursor_steps) == \
        (2, 2, 6, 1023, 1024)
    assert engine_counters(pool) == c.as_dict()
    compare_state(pool, oracle, [300000, 301022, 301023])
