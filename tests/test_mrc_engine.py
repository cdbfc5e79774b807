"""Differential tests of the stack-distance engine (mmucore.stackdist) against the
pure-Python reference (tests/reference_mrc.py) and the TLB engine (pyapi.TLB).

* exact histograms == reference stack distances; misses at every size == a fully
  associative LRU pyapi.TLB of that size == the reference LRU simulation;
* set-associative histograms == per-set reference stacks; misses == pyapi.TLB with
  sets x ways (power-of-two and other set counts);
* SHARDS (fixed rate and fixed size) == the SHARDS reference with the same hash, exactly;
* feeding chunk by chunk == one feed over the concatenation; control ops are skipped.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import reference_mrc as ref
from mmucore.stackdist import MODES, StackDistCore, page_hashes
from pyapi import TLB, Op
from pyapi.mrc import miss_ratio_curve


@st.composite
def page_streams(draw, max_len=400, max_pages=64):
    """Page numbers with locality: random pages, immediate repeats and loops."""
    pages = draw(st.integers(1, max_pages))
    n = draw(st.integers(0, max_len))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    v = rng.integers(0, pages, n).astype(np.uint64)
    if n and draw(st.booleans()):
        v = np.where(rng.random(n) < 0.3, np.roll(v, 1), v).astype(np.uint64)
    if n and draw(st.booleans()):
        v = (np.arange(n, dtype=np.uint64) % np.uint64(pages))
    base = draw(st.sampled_from([0, 1 << 20, (1 << 52) - (1 << 10)]))
    return v + np.uint64(base)


def addresses(vpns, shift=12, seed=0):
    rng = np.random.default_rng(seed)
    off = rng.integers(0, 1 << shift, len(vpns), dtype=np.uint64)
    return (vpns << np.uint64(shift)) | off


def feed_split(core, addr, op=None, cuts=3):
    pieces = np.array_split(np.arange(len(addr)), cuts)
    for idx in pieces:
        core.feed(np.ascontiguousarray(addr[idx]), None if op is None else np.ascontiguousarray(op[idx]))


@given(page_streams(), st.integers(1, 6))
def test_exact_histogram_equals_reference(vpns, cuts):
    core = StackDistCore(MODES["exact"], 12)
    feed_split(core, addresses(vpns), cuts=cuts)
    hist, cold, beyond = ref.histogram(ref.stack_distances(vpns.tolist()))
    assert core.histogram().tolist() == hist
    assert (core.cold, core.beyond, core.accesses) == (cold, 0, len(vpns))
    assert core.distinct == len(set(vpns.tolist()))


@given(page_streams(), st.integers(1, 40))
def test_exact_max_distance_counts_beyond(vpns, max_distance):
    core = StackDistCore(MODES["exact"], 12, max_distance=max_distance)
    core.feed(addresses(vpns))
    hist, cold, beyond = ref.histogram(ref.stack_distances(vpns.tolist()), max_distance)
    assert core.histogram().tolist() == hist
    assert (core.cold, core.beyond) == (cold, beyond)


@given(page_streams(max_len=300, max_pages=40))
def test_exact_curve_equals_tlb_at_every_size(vpns):
    va = addresses(vpns)
    sizes = np.arange(1, 45)
    curve = miss_ratio_curve(va, sizes=sizes)
    assert curve.accesses == len(va)
    for size, misses in zip(curve.sizes.tolist(), curve.misses.tolist()):
        assert misses == TLB(entries=size, page_size="4K").access(va).misses, size
    for size in (1, 3, 8, 40):
        assert curve.misses_at(size) == ref.lru_misses(vpns.tolist(), size)


@given(page_streams(max_len=300, max_pages=60), st.integers(1, 12), st.integers(1, 9))
def test_sets_equal_reference_and_tlb(vpns, sets, ways):
    va = addresses(vpns)
    core = StackDistCore(MODES["sets"], 12, sets=sets, ways=ways)
    feed_split(core, va)
    hist, cold, _ = ref.histogram(ref.set_distances(vpns.tolist(), sets, ways))
    assert core.histogram().tolist() == hist
    assert core.beyond == cold
    curve = miss_ratio_curve(va, sets=sets, sizes=[sets * w for w in range(1, ways + 1)])
    for w, misses in zip(curve.ways.tolist(), curve.misses.tolist()):
        assert misses == TLB(entries=sets * w, ways=w, page_size="4K").access(va).misses, (sets, w)


@pytest.mark.parametrize("sets, ways", [(16, 4), (12, 4), (128, 12), (5, 3), (1, 64), (3, 17)])
def test_sets_match_tlb_on_random_traces(sets, ways):
    rng = np.random.default_rng(sets * 100 + ways)
    n = 30_000
    pages = 3 * sets * ways
    vpns = np.where(rng.random(n) < 0.7, rng.integers(0, pages // 4 + 1, n),
                    rng.integers(0, pages, n)).astype(np.uint64)
    va = addresses(vpns, seed=1)
    curve = miss_ratio_curve(va, sets=sets, sizes=[sets * w for w in range(1, ways + 1)],
                             chunk_size=7_777)
    for w in sorted({1, 2, ways // 2 or 1, ways}):
        assert curve.misses[w - 1] == TLB(entries=sets * w, ways=w).access(va).misses, w


@given(page_streams(), st.integers(0, 2**64 - 1), st.integers(0, 3), st.integers(1, 5))
def test_shards_rate_equals_reference(vpns, tmax, seed, cuts):
    core = StackDistCore(MODES["shards_rate"], 12, tmax=tmax, seed=seed)
    feed_split(core, addresses(vpns), cuts=cuts)
    hist, cold, sampled = ref.shards_rate(vpns.tolist(), tmax, seed)
    assert core.histogram().tolist() == hist
    assert (core.cold, core.sampled, core.accesses) == (cold, sampled, len(vpns))
    assert core.inv_rate == ref.inv_rate(tmax)


@given(page_streams(max_pages=200), st.integers(1, 40), st.integers(0, 3), st.integers(1, 5),
       st.sampled_from([2, 4, 16, 64]))
def test_shards_size_equals_reference(vpns, sample_size, seed, cuts, buckets):
    core = StackDistCore(MODES["shards_size"], 12, sample_size=sample_size, seed=seed,
                         whist_buckets=buckets)
    feed_split(core, addresses(vpns), cuts=cuts)
    r = ref.shards_size(vpns.tolist(), sample_size, seed, buckets=buckets)
    assert core.weighted_histogram().tolist() == r["whist"]
    assert (core.wshift, core.weight_sum, core.weight_cold, core.tmax) == \
        (r["wshift"], r["weight_sum"], r["wcold"], r["tmax"])
    assert (core.sampled, core.cold, core.evictions) == (r["sampled"], r["cold"], r["evictions"])
    assert core.distinct <= sample_size


def test_page_hash_is_the_reference_hash():
    v = np.array([0, 1, 2, 12345, (1 << 52) - 1], dtype=np.uint64)
    for seed in (0, 1, 99):
        assert page_hashes(v, seed).tolist() == [ref.page_hash(x, seed) for x in v.tolist()]


def test_compaction_keeps_distances_exact():
    """Many more accesses than the smallest time array: the positions are renumbered
    (compacted) many times, and the page map grows; distances stay exact."""
    rng = np.random.default_rng(5)
    vpns = rng.integers(0, 3000, 60_000).astype(np.uint64)
    core = StackDistCore(MODES["exact"], 0)
    core.feed(vpns)
    assert core.compactions > 5
    hist, cold, _ = ref.histogram(ref.stack_distances(vpns[:15_000].tolist()))
    small = StackDistCore(MODES["exact"], 0)
    small.feed(vpns[:15_000])
    assert small.histogram().tolist() == hist and small.cold == cold
    # whole trace: against the TLB at a few sizes
    curve = miss_ratio_curve(vpns << np.uint64(12), sizes=[1, 100, 1000, 2999, 3000])
    for size, misses in zip(curve.sizes.tolist(), curve.misses.tolist()):
        assert misses == TLB(entries=size).access(vpns << np.uint64(12)).misses


@given(page_streams(), st.integers(1, 50), st.lists(st.integers(1, 97), min_size=1, max_size=6))
def test_chunking_invariance(vpns, chunk_size, sizes):
    """Every method gives the same curve whatever the chunk size."""
    va = addresses(vpns)
    for kw in ({}, {"sets": 4}, {"method": "shards", "rate": 0.5},
               {"method": "shards", "sample_size": 8}):
        sz = [4 * s for s in sizes] if "sets" in kw else sizes
        whole = miss_ratio_curve(va, sizes=sz, chunk_size=1 << 20, **kw)
        parts = miss_ratio_curve(va, sizes=sz, chunk_size=chunk_size, **kw)
        assert whole.misses.tolist() == parts.misses.tolist(), kw
        assert whole.miss_ratio.tolist() == parts.miss_ratio.tolist(), kw


def test_control_ops_are_skipped():
    from pyapi import Trace
    rng = np.random.default_rng(3)
    n = 5_000
    addr = rng.integers(0, 64 << 12, n, dtype=np.uint64)
    op = rng.integers(0, 14, n).astype(np.uint8)
    t = Trace.from_arrays(addr=addr, op=op)
    mem = addr[op <= Op.MODIFY]
    curve = miss_ratio_curve(t, sizes=[1, 8, 32, 64])
    plain = miss_ratio_curve(mem, sizes=[1, 8, 32, 64])
    assert curve.accesses == len(mem)
    assert curve.misses.tolist() == plain.misses.tolist()
    for mode, kw in (("exact", {}), ("sets", dict(sets=4, ways=4)),
                     ("shards_rate", dict(tmax=2**63)),
                     ("shards_size", dict(sample_size=8, whist_buckets=64))):
        a, b = StackDistCore(MODES[mode], 12, **kw), StackDistCore(MODES[mode], 12, **kw)
        a.feed(addr, op)
        b.feed(mem)
        assert a.histogram().tolist() == b.histogram().tolist(), mode
        assert a.accesses == b.accesses == len(mem)


@pytest.mark.parametrize("page_size, shift", [("4K", 12), ("2M", 21), ("4M", 22), ("1G", 30)])
def test_page_sizes(page_size, shift):
    rng = np.random.default_rng(shift)
    va = rng.integers(0, 256 << shift, 20_000, dtype=np.uint64)
    curve = miss_ratio_curve(va, page_size=page_size, sizes=[1, 16, 64, 255])
    assert curve.page_size == 1 << shift
    for size, misses in zip(curve.sizes.tolist(), curve.misses.tolist()):
        assert misses == TLB(entries=size, page_size=page_size).access(va).misses


def test_engine_rejects_bad_geometry():
    with pytest.raises(ValueError):
        StackDistCore(MODES["sets"], 12, sets=0, ways=4)
    with pytest.raises(ValueError):
        StackDistCore(MODES["sets"], 12, sets=4, ways=5000)
    with pytest.raises(ValueError):
        StackDistCore(MODES["shards_size"], 12, sample_size=0, whist_buckets=16)
    with pytest.raises(ValueError):
        StackDistCore(MODES["shards_size"], 12, sample_size=4, whist_buckets=12)
    with pytest.raises(ValueError):
        StackDistCore(9, 12)
    with pytest.raises(ValueError):
        StackDistCore(MODES["exact"], 64)
    core = StackDistCore(MODES["exact"], 12)
    with pytest.raises(ValueError, match="op has"):
        core.feed(np.zeros(3, np.uint64), np.zeros(2, np.uint8))
