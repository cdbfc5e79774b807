"""The properties of specs/kmap.md section 1.7 (and the version rules of 1.4/1.5/2), on the
engine and on the reference model alike."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from pyapi import Op
from pyapi.kmap import KERNELS, KmapPool
from reference_kmap import reference_like

H = 229376                       # first highmem pfn


def pairs(pfns):
    """kmap p; kunmap p for each pfn."""
    pfns = np.asarray(pfns, np.uint64)
    return dict(addr=np.repeat(pfns, 2),
                op=np.tile(np.array([Op.KMAP, Op.KUNMAP], np.uint8), len(pfns)))


def kmaps(pfns):
    return dict(addr=np.asarray(pfns, np.uint64), op=np.full(len(pfns), Op.KMAP, np.uint8))


def both(pool, trace, **kw):
    """Run on the engine and on a reference that follows the same pool from its start;
    check the counters agree and return them."""
    if not hasattr(pool, "_test_ref"):
        pool._test_ref = reference_like(pool)
    ref = pool._test_ref
    ref.run(trace["addr"], trace["op"], task=trace.get("task"))
    s = pool.run(trace, **kw).to_dict()
    s.pop("asleep"), s.pop("pending")
    assert s == ref.c
    return s


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_cursor_is_preincremented_and_slot0_follows_a_flush(kernel):
    """1.7.1: the first slot ever used is 1; slot 0 only right after the wrap flush."""
    pool = KmapPool(kernel=kernel, slots=8)
    both(pool, pairs(H + np.arange(7)))
    st_ = pool.state()
    assert st_["slot_pfn"].tolist() == [-1] + list(range(H, H + 7))
    assert st_["cursor"] == 7 and pool.stats.wraps == 0
    both(pool, pairs([H + 7]))
    st_ = pool.state()
    assert st_["cursor"] == 0 and pool.stats.wraps == 1
    assert st_["slot_pfn"].tolist() == [H + 7] + [-1] * 7      # the rest were reclaimed
    assert st_["pkmap_count"].tolist() == [1] + [0] * 7


@pytest.mark.parametrize("kernel,flushes", [("2.4.18", 1), ("2.5.13", 1), ("2.6.12", 1),
                                            ("6.x", 0)])
def test_flush_on_wrap_with_nothing_to_reclaim(kernel, flushes):
    """1.7.2: the wrap flushes unconditionally in 2.4/2.5/2.6, only if needed in 6.x."""
    pool = KmapPool(kernel=kernel, slots=4, cpus=4)
    s = both(pool, kmaps(H + np.arange(4)))        # slots 1, 2, 3 pinned, then wrap to 0
    assert s["wraps"] == 1 and s["slots_reclaimed"] == 0
    assert s["global_flushes"] == flushes and s["ipis"] == 3 * flushes


@given(st.sampled_from(sorted(KERNELS)), st.sampled_from([1, 2, 5, 8, 128, 1024]),
       st.integers(1, 6), st.integers(0, 5000))
def test_one_flush_per_pool_size_new_mappings(kernel, n, rounds, extra):
    """1.7.3: with no long-term pins, N distinct new mappings cost exactly one flush."""
    pool = KmapPool(kernel=kernel, slots=n)
    m = rounds * n + extra % n
    s = both(pool, pairs(H + np.arange(m)))
    assert s["new_mappings"] == m and s["cursor_steps"] == m
    assert s["wraps"] == m // n
    # (with one slot, the very first wrap finds nothing to reclaim: no 6.x flush)
    first_empty = KERNELS[kernel].flush_if_needed and n == 1 and m > 0
    assert s["global_flushes"] == m // n - first_empty


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_rekmap_of_a_mapped_page_costs_no_scan_and_no_flush(kernel):
    """1.7.3: a page that still has its address is a hit: no cursor step, no flush."""
    pool = KmapPool(kernel=kernel, slots=8)
    both(pool, pairs([H + 1, H + 2]))
    before = pool.stats
    s = both(pool, pairs([H + 1, H + 2] * 50))
    assert s["hits"] - before.hits == 100
    assert s["cursor_steps"] == before.cursor_steps and s["global_flushes"] == 0


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("cursor", [0, 3, 7])
def test_scan_length_before_sleeping(kernel, cursor):
    """1.7.4: up to (N-1-cursor) + N examinations before sleeping, one flush between
    (N = 8 and every slot pinned: 15 steps from cursor 0)."""
    pool = KmapPool(kernel=kernel, slots=8)
    # move the cursor, then pin all 8 slots
    both(pool, pairs(H + 100 + np.arange(cursor)))
    s0 = both(pool, kmaps(H + np.arange(8)))
    assert pool.state()["pkmap_count"].tolist() == [2] * 8
    at_entry = pool.state()["cursor"]
    trace = kmaps([H + 50])
    trace["task"] = np.array([9], np.uint32)       # another task: it goes to sleep
    s = both(pool, trace, on_sleepers="report")
    assert s["cursor_steps"] - s0["cursor_steps"] == (8 - 1 - at_entry) + 8
    assert s["wraps"] - s0["wraps"] == 1 and s["sleeps"] == 1
    assert pool.stats.asleep == 1


def test_kunmap_and_new_kmaps_never_touch_the_tlb():
    """1.7.5: kunmap never touches PTEs or the TLB; a new kmap never flushes; only the
    wrap flushes."""
    pool = KmapPool(slots=16, cpus=2, tlb=dict(entries=64, ways=4))
    pool.run(kmaps(H + np.arange(10)))
    before = [t.contents()["vpn"].tolist() for t in pool.tlbs]
    flushes = [t.stats.flushes for t in pool.tlbs]
    pool.run(dict(addr=np.arange(H, H + 10, dtype=np.uint64),
                  op=np.full(10, Op.KUNMAP, np.uint8)))
    assert [t.contents()["vpn"].tolist() for t in pool.tlbs] == before
    assert [t.stats.flushes for t in pool.tlbs] == flushes == [1, 0]   # CPU 0: its CR3 load
    assert pool.state()["slot_pfn"][1:11].tolist() == list(range(H, H + 10))   # PTEs kept
    pool.run(pairs(H + 100 + np.arange(5)))          # new kmaps, no wrap yet
    assert [t.stats.flushes for t in pool.tlbs] == [1, 0]
    pool.run(pairs(H + 200 + np.arange(2)))          # the wrap: every CPU flushes
    assert [t.stats.flushes for t in pool.tlbs] == [2, 1]
    assert [len(t.contents()["vpn"]) for t in pool.tlbs] == [2, 0]  # only the 2 new kmaps
    assert pool.stats.global_flushes == pool.stats.wraps == 1


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_lowmem_bypasses_the_pool(kernel):
    """1.7.6: lowmem pages: no slot, no lookup, no TLB operation; permanent address."""
    pool = KmapPool(kernel=kernel, slots=8, tlb=dict(entries=8))
    low = np.arange(0, H, H // 50, dtype=np.uint64)
    trace = dict(addr=np.repeat(low, 2),
                 op=np.tile(np.array([Op.KMAP, Op.KUNMAP], np.uint8), len(low)))
    s = both(pool, trace)
    assert s["lowmem"] == 2 * len(low) and s["lookups"] == 0 and s["cursor_steps"] == 0
    assert s["kmap_tlb_accesses"] == 0 and pool.tlbs[0].stats.accesses == 0
    assert pool.page_address(5) == 0xC0000000 + 5 * 4096
    assert pool.page_address(H) is None


@given(st.sampled_from([64, 128, 1024]), st.integers(0, 50), st.integers(1, 16))
def test_flush_rate_follows_the_free_pool_size(n, pinned, cpus):
    """1.7.7: with P maps held for good, flushes per new kmap = 1/(N - P) (Bligh's
    1 + (1+F)/N model); each flush costs cpus-1 IPIs (his O(N^2) remark)."""
    pinned = min(pinned, n - 2)
    pool = KmapPool(slots=n, cpus=cpus)
    pool.run(kmaps(H + 10**6 + np.arange(pinned)))
    base = pool.stats
    rounds = 5
    m = rounds * (n - 1 - pinned)
    s = pool.run(pairs(H + np.arange(m)))
    new = s.new_mappings - base.new_mappings
    flushes = s.global_flushes - base.global_flushes
    assert new == m
    # between two wraps the cursor passes N-1 slots plus slot 0; pinned ones are skipped
    assert abs(flushes - m / (n - pinned)) <= 1
    assert s.ipis == s.global_flushes * (cpus - 1)


@pytest.mark.parametrize("kernel,mult", [("2.6.12", 0x9E370001), ("6.x", 0x61C88647)])
def test_hashed_page_address_buckets_and_probes(kernel, mult):
    """2.3/2.4: bucket = top 7 bits of (struct page address * GOLDEN_RATIO) mod 2**32;
    chains are appended at the tail and walked from the head, one probe per entry."""
    pool = KmapPool(kernel=kernel, slots=1024, mem_map=0xC1000000)
    ps = KERNELS[kernel].page_struct
    pfns = H + np.arange(300)
    for p in (H, H + 1, H + 299):
        page = (0xC1000000 + p * ps) & 0xFFFFFFFF
        assert pool.core.bucket(p) == ((page * mult) & 0xFFFFFFFF) >> 25
    pool.run(kmaps(pfns))
    chains = pool.core.chains()
    assert sum(map(len, chains)) == 300 and len(chains) == 128
    slot_of = {int(p): i for i, p in enumerate(pool.state()["slot_pfn"]) if p >= 0}
    for p in (H + 5, H + 77):
        chain = chains[pool.core.bucket(p)]
        before = pool.stats.hash_probes
        assert pool.page_address(p) == KERNELS[kernel].pkmap_base + slot_of[p] * 4096
        assert pool.stats.hash_probes - before == chain.index(slot_of[p]) + 1
    absent = H + 5000
    before = pool.stats.hash_probes
    assert pool.page_address(absent) is None
    assert pool.stats.hash_probes - before == len(chains[pool.core.bucket(absent)])


def test_field_kernels_count_no_hash_probes():
    pool = KmapPool(kernel="2.4.18")
    s = pool.run(pairs(H + np.arange(5000) % 700))
    assert s.hash_probes == 0 and s.lookups == 10000


@pytest.mark.parametrize("pae,slots", [(False, 1024), (True, 512)])
def test_pool_size_per_pae(pae, slots):
    """1.1: LAST_PKMAP 1024 without PAE, 512 with; overridable (1800, 128, 4096)."""
    assert KmapPool(pae=pae).slots == slots
    for n in (128, 1800, 4096):
        pool = KmapPool(pae=pae, slots=n)
        s = pool.run(pairs(H + np.arange(3 * n)))
        assert pool.slots == n and s.global_flushes == 3
