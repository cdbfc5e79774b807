"""Cross-checks against independent simulators: pycachesim (set-associative LRU/FIFO
caches, fed byte addresses with 4 KiB lines = pages) and libCacheSim (fully associative
LRU/FIFO over page numbers, objects of size 1). Miss counts must be identical."""
import numpy as np
import pytest

from pyapi import TLB

cachesim = pytest.importorskip("cachesim")          # pycachesim
libcachesim = pytest.importorskip("libcachesim")

N = 40_000


def traces(seed):
    """Byte-address traces with different locality: uniform random over a footprint a
    few times the TLB reach, sequential sweeps (a loop larger than the TLB), a
    hot/cold mixture, and random strides with runs inside one page."""
    rng = np.random.default_rng(seed)
    out = {}
    out["random"] = lambda pages: (rng.integers(0, pages, N, dtype=np.uint64) << np.uint64(12)) \
        | rng.integers(0, 4096, N, dtype=np.uint64)
    out["sequential"] = lambda pages: (np.arange(N, dtype=np.uint64) * np.uint64(512)) \
        % np.uint64(pages << 12)
    out["hot_cold"] = lambda pages: np.where(
        rng.random(N) < 0.8, rng.integers(0, max(pages // 8, 1), N),
        rng.integers(0, pages * 4, N)).astype(np.uint64) << np.uint64(12)
    out["strided_runs"] = lambda pages: np.repeat(
        (rng.integers(0, pages, N // 4, dtype=np.uint64) * np.uint64(4096 * 3)), 4) \
        + np.tile(np.arange(0, 4096, 1024, dtype=np.uint64), N // 4)
    return out


def pycachesim_misses(va, sets, ways, policy):
    mem = cachesim.MainMemory()
    cache = cachesim.Cache("TLB", sets, ways, 4096, policy)
    mem.load_to(cache)
    mem.store_from(cache)
    sim = cachesim.CacheSimulator(first_level=cache, main_memory=mem)
    sim.load(va.tolist(), length=1)                  # iterload: one byte per address
    st = cache.stats()
    assert st["LOAD_count"] == len(va)
    return st["MISS_count"]


@pytest.mark.parametrize("policy", ["lru", "fifo"])
@pytest.mark.parametrize("sets, ways", [(16, 4), (12, 4), (128, 12), (1, 8), (64, 1),
                                        (5, 3), (2, 24), (1, 32), (2, 80), (1, 128)])
def test_pycachesim_set_associative(policy, sets, ways):
    for name, make in traces(sets * 1000 + ways).items():
        va = np.ascontiguousarray(make(3 * sets * ways), dtype=np.uint64)
        expected = pycachesim_misses(va, sets, ways, policy.upper())
        tlb = TLB(entries=sets * ways, ways=ways, page_size="4K", policy=policy)
        # split into a few calls: the engine must carry its state over
        misses = sum(tlb.access(chunk).misses for chunk in np.array_split(va, 3))
        assert misses == expected, f"{name}: {misses} != pycachesim {expected}"
        assert tlb.stats.misses == expected and tlb.stats.fills == expected
        # no invalidations: every set fills its ways once, every later miss evicts
        distinct = np.unique(va >> np.uint64(12))
        per_set = np.bincount((distinct % np.uint64(sets)).astype(np.int64), minlength=sets)
        assert tlb.stats.evictions == expected - int(np.minimum(per_set, ways).sum())


def libcachesim_misses(pages, entries, policy):
    cls = {"lru": libcachesim.LRU, "fifo": libcachesim.FIFO}[policy]
    cache = cls(cache_size=entries, hashpower=16)
    misses = 0
    req = libcachesim.Request()
    req.obj_size = 1
    for p in pages.tolist():
        req.obj_id = p
        if not cache.get(req):
            misses += 1
    assert cache.get_n_obj() == min(entries, len(set(pages.tolist())))
    return misses


@pytest.mark.parametrize("policy", ["lru", "fifo"])
@pytest.mark.parametrize("entries", [8, 16, 24, 64, 100, 256])
def test_libcachesim_fully_associative(policy, entries):
    for name, make in traces(entries).items():
        va = np.ascontiguousarray(make(2 * entries), dtype=np.uint64)[:25_000]
        pages = va >> np.uint64(12)
        expected = libcachesim_misses(pages, entries, policy)
        tlb = TLB(entries=entries, page_size="4K", policy=policy)
        assert tlb.access(va).misses == expected, f"{name} ({policy}, {entries} entries)"


def test_crosscheck_is_sensitive():
    """The comparison can fail: LRU and FIFO give different miss counts on these traces,
    so a policy mix-up in either simulator or the engine would show."""
    va = traces(1)["hot_cold"](96)
    assert pycachesim_misses(va, 16, 4, "LRU") != pycachesim_misses(va, 16, 4, "FIFO")
    assert TLB(64, 4, policy="lru").access(va).misses != TLB(64, 4, policy="fifo").access(va).misses
