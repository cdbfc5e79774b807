"""Explicit frames (``map(..., pfn=...)``) and the physical allocator (docs/pagetable.md,
"Physical memory and the allocator"): every explicit frame inside ``phys_mem`` is
reserved, so no page table, ``pfn=None`` map or demand fault is ever given it; a
page-table frame cannot be mapped as data; a failed map gives its reservations back."""
import time

import numpy as np
import pytest

from pyapi.pagetable import PageTable
from test_pagetable_differential import check_allocator

MODES = ["x86_32", "pae", "x86_64", "la57"]
BIG = {"x86_32": "4M", "pae": "2M", "x86_64": "2M", "la57": "2M"}


def used_frames(pt):
    words, _, _ = pt.core.allocator_state()
    bits = np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)
    return np.flatnonzero(bits[:pt.core.nframes]).tolist()


def state(pt):
    """Everything a map() may change: tables, leaves, allocator, counters."""
    words, c2m, c1g = pt.core.allocator_state()
    return ({k: v.tolist() for k, v in pt.table_pages().items()},
            [tuple(m) for m in pt.mappings(merge=False)], pt.free_frames,
            words.tolist(), c2m.tolist(), c1g.tolist(), pt.stats.to_dict())


def leaf_frames(pt):
    """{frame: vaddr} of every frame a leaf maps."""
    out = {}
    for m in pt.mappings(merge=False):
        for k in range(m.size >> 12):
            out.setdefault(m.pfn + k, m.vaddr + (k << 12))
    return out


@pytest.mark.parametrize("allocator", ["sequential", "random"])
@pytest.mark.parametrize("mode", MODES)
def test_explicit_frames_are_never_handed_out(mode, allocator):
    """Explicit frames cover a good part of a small phys_mem (4K runs, a large page, a
    range that runs past the end of phys_mem, a shared frame); then pfn=None maps and
    demand paging until the memory is exhausted. No table and no allocated page may land
    on an explicit frame, and in the end every frame is used exactly once."""
    nframes = 4096
    big = BIG[mode]
    unit = (4 << 20 if big == "4M" else 2 << 20) >> 12
    pt = PageTable(mode, phys_mem=nframes * 4096, allocator=allocator, seed=7,
                   demand=True, huge_pages="thp")
    free0 = pt.free_frames
    initial = len(pt.core.pool_pages())
    nxt = max(pt.core.pool_pages()) + 1     # where the sequential allocator goes next
    explicit = set()

    def clear(pfn, n, align=1):
        """The first pfn at or after `pfn` (aligned) whose n frames hold no table (the
        random allocator puts the tables anywhere)."""
        tables = set(pt.core.pool_pages())
        while tables & set(range(pfn, pfn + n)):
            pfn += align
        return pfn

    # the first range starts where this very call's tables would go: they must skip it;
    # frame 201 is mapped twice (shared)
    for va, pfn, n in [(0x100000, nxt, 40), (0x200000, 200, 3), (0x300000, 1500, 100),
                       (0x380000, 201, 1)]:
        pfn = clear(pfn, n)
        assert pt.map(va, n << 12, pfn=pfn) == n
        explicit.update(range(pfn, pfn + n))
    pfn = clear(unit, unit, unit)
    assert pt.map(0x40000000, unit << 12, page_size=big, pfn=pfn) == 1
    explicit.update(range(pfn, pfn + unit))
    # 6 pages from 4 frames before the end: the 4 inside are reserved, 2 are untracked
    assert clear(nframes - 4, 4) == nframes - 4
    assert pt.map(0x500000, 6 << 12, pfn=nframes - 4) == 6
    explicit.update(range(nframes - 4, nframes))
    tables_before = set(pt.core.pool_pages())
    assert not tables_before & explicit
    assert set(used_frames(pt)) == explicit | tables_before
    assert pt.free_frames == free0 - len(explicit) - (len(tables_before) - initial)
    check_allocator(pt, sorted(explicit | tables_before))
    # pfn=None maps and demand faults until nothing is left
    assert pt.map(0x800000, 16 << 12) == 16
    vas = np.arange(0x60000000, 0x60000000 + (nframes << 12), 4096, dtype=np.uint64)
    done = 0
    with pytest.raises(MemoryError):
        for k in range(0, len(vas), 64):
            pt.walk(vas[k:k + 64], op="store")
            done = k + 64
    assert done > 0
    tables = set(pt.core.pool_pages())
    assert not tables & explicit
    frames = leaf_frames(pt)
    allocated = {f for f, va in frames.items()
                 if not (0x100000 <= va < 0x600000 or 0x40000000 <= va < 0x40000000 + (unit << 12))}
    assert not allocated & explicit, sorted(allocated & explicit)[:5]
    assert not allocated & tables
    # nothing was lost: the allocator handed out exactly the frames the explicit ones
    # and the tables did not take, each once
    assert sorted(used_frames(pt)) == sorted(explicit | tables | allocated)
    assert len(explicit | tables | allocated) == len(explicit) + len(tables) + len(allocated)
    assert pt.free_frames < pt.levels       # at most a fault's tables short
    check_allocator(pt, used_frames(pt))


@pytest.mark.parametrize("mode", ["x86_64", "la57"])
def test_explicit_1g_page_reserves_its_frames_quickly(mode):
    """A 1G page's 262144 frames are reserved through the per-2M/1G counts: a fresh 1G
    chunk in O(1), a partly used one chunk by chunk; both in well under a second."""
    pt = PageTable(mode, phys_mem="5G", demand=True, huge_pages="always")
    free0 = pt.free_frames
    t0 = time.perf_counter()
    assert pt.map(1 << 30, 1 << 30, page_size="1G", pfn=1 << 18) == 1
    assert pt.free_frames == free0 - (1 << 18) - (len(pt.core.pool_pages()) - 1)
    # a 1G chunk with a few explicit 4K and 2M frames inside it already
    pt.map(0x10000000, 5 << 12, pfn=(2 << 18) + 700)
    pt.map(0x20000000, 2 << 20, page_size="2M", pfn=(2 << 18) + 4096)
    pt.map(2 << 30, 1 << 30, page_size="1G", pfn=2 << 18)
    # one past the end of phys_mem: 4G..5G is inside, 5G..6G is not tracked
    pt.map(3 << 30, 2 << 30, page_size="1G", pfn=4 << 18)
    assert time.perf_counter() - t0 < 0.5
    tables = set(pt.core.pool_pages())
    assert pt.free_frames == free0 - 3 * (1 << 18) - (len(tables) - 1)
    check_allocator(pt, sorted(tables | set(range(1 << 18, 3 << 18))
                               | set(range(4 << 18, 5 << 18))))
    # demand faults with huge_pages="always": the one free 1G chunk is chunk 3; then no
    # 1G unit is left (chunk 0 holds the tables, 1, 2 and 4 are reserved): a 2M page
    r = pt.walk(np.array([0x7000000000, 0x7040000000], dtype=np.uint64), op="store")
    assert r.fault.tolist() == [0, 0]
    assert r.page_size.tolist() == [1 << 30, 2 << 20]
    assert r.paddr[0] >> np.uint64(30) == 3 and r.paddr[1] >> np.uint64(30) == 0
    # mapping the same 1G frames again (shared memory): only its new tables are taken
    free1, ntables = pt.free_frames, len(pt.core.pool_pages())
    pt.map(0x8000000000, 1 << 30, page_size="1G", pfn=1 << 18)
    assert free1 - pt.free_frames == len(pt.core.pool_pages()) - ntables


@pytest.mark.parametrize("mode", MODES)
def test_shared_and_untracked_explicit_frames_leave_the_allocator_alone(mode):
    pt = PageTable(mode, phys_mem=1024 * 4096)
    pt.map(0x400000, 4 << 12, pfn=100)
    free = pt.free_frames
    used = used_frames(pt)
    pt.map(0x401000 + (4 << 12), 2 << 12, pfn=101)      # frames 101, 102 again: shared
    pt.map(0x410000, 3 << 12, pfn=5000)                  # outside phys_mem: not tracked
    assert pt.free_frames == free and used_frames(pt) == used
    assert pt.walk(np.array([0x401000 + (4 << 12)], dtype=np.uint64)).paddr[0] == 101 << 12


@pytest.mark.parametrize("mode", MODES)
def test_mapping_a_page_table_frame_as_data_is_refused(mode):
    """A frame that holds a page table cannot be mapped as data (4K or inside a large
    page, in any range of the call): ValueError naming the frame, nothing changed."""
    pt = PageTable(mode, phys_mem=8192 * 4096, demand=True)
    pt.map(0x400000, 8 << 12)
    pt.walk(np.array([0x40000000, 0x80000000], dtype=np.uint64))
    tables = sorted(pt.core.pool_pages())
    assert len(tables) >= 3
    before = state(pt)
    t = tables[-1]
    with pytest.raises(ValueError, match=rf"pfn\[1\] = {t:#x}: frame {t:#x} of its pages "
                                         rf"is a page-table page"):
        pt.map([0x1000000, 0x2000000], 0x2000, pfn=[3000, t])
    assert state(pt) == before
    big = BIG[mode]
    unit = (4 << 20 if big == "4M" else 2 << 20) >> 12
    with pytest.raises(ValueError, match=r"pfn\[0\] = 0x0: frame 0x[0-9a-f]+ of its pages is "
                                         r"a page-table page"):
        pt.map(0x0C000000, unit << 12, page_size=big, pfn=0)
    assert state(pt) == before
    with pytest.raises(ValueError, match=rf"frame {pt.cr3 >> 12:#x}"):
        pt.map(0x3000000, 0x1000, pfn=pt.cr3 >> 12)
    assert state(pt) == before
    # the demand-mapped data frames are not tables: mapping them again is shared memory
    data = pt.translate(np.array([0x40000000], dtype=np.uint64))[0] >> 12
    assert pt.map(0x3000000, 0x1000, pfn=int(data)) == 1


@pytest.mark.parametrize("allocator", ["sequential", "random"])
@pytest.mark.parametrize("mode", MODES)
def test_failed_map_gives_its_reservations_back(mode, allocator):
    """A map whose tables do not fit fails with MemoryError after reserving its explicit
    frames: the reservations are undone with everything else, so the allocator's state
    and its later choices are those of a twin that never tried."""
    def make():
        pt = PageTable(mode, phys_mem=64 * 4096, allocator=allocator, seed=3, demand=True)
        pt.map(0x400000, 4 << 12)
        return pt
    pt, twin = make(), make()
    before = state(pt)
    free = pt.free_frames
    # explicit frames take all but 2 free frames; the ranges need more than 2 tables
    spread = [0x400000 + (1 << 22) * k for k in range(1, 4)] if mode == "x86_32" else \
        [0x400000 + (1 << 30) * k for k in range(1, 4)]
    wanted = sorted(set(range(64)) - set(used_frames(pt)))[:free - 2]
    vas = spread + [0x50000000 + (k << 12) for k in range(len(wanted) - len(spread))]
    with pytest.raises(MemoryError, match="page tables for .* explicit frames .* nothing "
                                          "was mapped"):
        pt.map(vas, 0x1000, pfn=wanted)
    assert state(pt) == before
    # the same later choices as the twin
    vas = np.arange(0x20000000, 0x20000000 + (70 << 12), 4096, dtype=np.uint64)
    outs = []
    for p in (pt, twin):
        try:
            p.walk(vas, op="store")
        except MemoryError:
            pass
        outs.append((state(p), leaf_frames(p)))
    assert outs[0] == outs[1]


def test_procmap_snapshot_with_real_frames_then_demand_paging_does_not_alias():
    """A synthetic /proc snapshot with real frames (4K pages on scattered frames and a
    2M page) inside a small phys_mem, then demand paging until the memory is exhausted:
    no table and no demand-paged page shares a frame with the snapshot's pages."""
    from pyapi import procmap
    base = 0x7F0000000000
    vpn4k = np.arange(base >> 12, (base >> 12) + 300, dtype=np.uint64)
    pfn4k = np.arange(300, dtype=np.uint64) * np.uint64(5) + np.uint64(3)
    vma4k = procmap.Vma(base, base + (300 << 12), True, True, False, False, 0, "",
                        present_vpn=vpn4k, present_pfn=pfn4k)
    hbase = 0x40000000
    vpn2m = np.arange(hbase >> 12, (hbase >> 12) + 512, dtype=np.uint64)
    pfn2m = np.arange(1024, 1024 + 512, dtype=np.uint64)
    vma2m = procmap.Vma(hbase, hbase + (2 << 20), True, True, False, False, 0, "",
                        anon_huge_bytes=2 << 20, present_vpn=vpn2m, present_pfn=pfn2m)
    vma2m.huge_vpn = procmap._huge_regions(vma2m, real=True, kpageflags=False)
    snap = procmap.ProcessSnapshot("synthetic", [vma2m, vma4k], True, True, [])
    pt = PageTable("x86_64", phys_mem=4096 * 4096, demand=True, huge_pages="thp")
    procmap._map_snapshot(pt, snap)
    real = set(pfn4k.tolist()) | set(pfn2m.tolist())
    r = pt.walk(np.concatenate([vpn4k, vpn2m]) << np.uint64(12))
    assert (r.fault == 0).all()
    assert ((r.paddr >> np.uint64(12)) == np.concatenate([pfn4k, pfn2m])).all()
    vas = np.arange(0x10000000, 0x10000000 + (4096 << 12), 4096, dtype=np.uint64)
    with pytest.raises(MemoryError):
        for k in range(0, len(vas), 256):
            pt.walk(vas[k:k + 256], op="store")
    tables = set(pt.core.pool_pages())
    demand = {f for f, va in leaf_frames(pt).items() if 0x10000000 <= va < 0x11000000}
    assert demand and not tables & real and not demand & real and not demand & tables
    assert set(used_frames(pt)) == real | tables | demand and pt.free_frames < 3


@pytest.mark.parametrize("allocator", ["sequential", "random"])
def test_reserved_frames_are_never_handed_out(allocator):
    pt = PageTable("x86_64", phys_mem="2M", allocator=allocator, seed=7, demand=True)
    free = pt.free_frames
    tables_before = {pa >> 12 for pa in pt.table_pages()}     # a random root may sit there
    reserved = ({0x20 + i for i in range(40)} | {0x100 + i for i in range(64)}) - tables_before
    pt.reserve_frames([0x20, 0x100, 0x10000], [40, 64, 8])      # the last run: outside
    assert free - pt.free_frames == len(reserved)
    pt.reserve_frames(0x20, 4)                                  # again: no change
    assert free - pt.free_frames == len(reserved)
    va = np.arange(0, 1 << 30, 4096, dtype=np.uint64)
    with pytest.raises(MemoryError):
        pt.walk(va)                                             # demand-page until full
    frames = {pfn << 12 for pfn in reserved}
    assert not frames & set(pt.table_pages())
    got = {m.pfn + i for m in pt.mappings(merge=False) for i in range(m.size >> 12)}
    assert not got & reserved and got


def test_reserve_frames_errors():
    pt = PageTable("x86_64", phys_mem="1M")
    with pytest.raises(ValueError, match="2 runs but 3"):
        pt.reserve_frames([1, 2], [1, 1, 1])
    with pytest.raises(ValueError, match="pfn"):
        pt.reserve_frames([-1])
