"""pyapi.PageTable: validation (errors name the problem and leave the table unchanged),
demand paging and its allocator, paging-structure caches, mappings(), counters."""
import numpy as np
import pytest

from mmucore.pagetable import PageTableCore
from pyapi.pagetable import FAULT_PF, PageTable, PSC_DEFAULT

G1, M2, M4, K4 = 1 << 30, 1 << 21, 1 << 22, 1 << 12


def snapshot(pt):
    pages = {k: v.tobytes() for k, v in pt.core.pool_pages().items()}
    return pages, pt.stats.to_dict(), pt.free_frames, pt.pdpte


def walk(pt, vas, op="load", user=True):
    return pt.walk(np.asarray(vas, dtype=np.uint64), op=op, user=user)


# ---------------------------------------------------------------------- validation
BAD_MAPS = [
    ("pae", dict(vaddr=0, size=G1, page_size="1G"), "not supported by pae"),
    ("x86_32", dict(vaddr=0, size=M2, page_size="2M"), "not supported by x86_32"),
    ("x86_64", dict(vaddr=0, size=M4, page_size="4M"), "not supported by x86_64"),
    ("x86_64", dict(vaddr=0x1800, size=K4), "not aligned"),
    ("x86_64", dict(vaddr=M2 + K4, size=M2, page_size="2M"), "not aligned"),
    ("x86_64", dict(vaddr=0, size=K4 + 1), "not aligned"),
    ("x86_64", dict(vaddr=0, size=0), "positive size"),
    ("x86_64", dict(vaddr=0x00007FFFFFFFF000, size=0x2000), "outside"),
    ("x86_64", dict(vaddr=0x0000800000000000, size=K4), "outside"),
    ("pae", dict(vaddr=0xFFFFF000, size=0x2000), "outside"),
    ("x86_64", dict(vaddr=[0, 0x1000], size=0x2000), "overlap"),
    ("x86_64", dict(vaddr=0, size=M2, page_size="2M", pfn=3), "not a multiple of 512"),
    ("x86_64", dict(vaddr=0, size=K4, pfn=1 << 40), "MAXPHYADDR"),
    ("x86_32", dict(vaddr=0, size=K4, pfn=1 << 20), "MAXPHYADDR"),
    ("x86_32", dict(vaddr=0, size=K4, nx=True), "no XD"),
    ("x86_64", dict(vaddr=[0, M2], size=K4, pfn=[1]), "pfns"),
    ("x86_64", dict(vaddr=-4096, size=K4), "outside 0..2"),
    ("x86_64", dict(vaddr=np.zeros((2, 2), dtype=np.uint64), size=K4), "1-D"),
]


@pytest.mark.parametrize("mode,kwargs,message", BAD_MAPS)
def test_bad_maps_raise_and_change_nothing(mode, kwargs, message):
    pt = PageTable(mode, phys_mem="64M")
    pt.map(0x10000000, 0x3000)
    before = snapshot(pt)
    with pytest.raises((ValueError, TypeError), match=message):
        pt.map(**kwargs)
    assert snapshot(pt) == before


def test_overlap_with_existing_mappings_changes_nothing():
    pt = PageTable("x86_64", phys_mem="64M")
    pt.map(0x200000, 0x1000)
    pt.map(0x40000000, M2, page_size="2M")
    before = snapshot(pt)
    cases = [dict(vaddr=[0x600000, 0x200000], size=0x1000),      # 2nd range: taken page
             dict(vaddr=0x200000, size=M2, page_size="2M"),      # a 4K page inside
             dict(vaddr=0x40001000, size=0x1000),                # inside a 2M page
             dict(vaddr=0, size=G1, page_size="1G")]             # tables with pages
    for kw in cases:
        with pytest.raises(ValueError, match="overlaps an existing mapping"):
            pt.map(**kw)
        assert snapshot(pt) == before
    with pytest.raises(ValueError, match="range 1 .* at 0x200000"):
        pt.map([0x600000, 0x200000], 0x1000)


def test_empty_table_may_be_replaced_by_a_large_page():
    pt = PageTable("x86_64", psc="default")
    pt.map(0x200000, 0x1000)
    walk(pt, [0x200000])                    # caches the PDE
    assert pt.unmap(0x200000, 0x1000) == 1
    assert pt.map(0x200000, M2, page_size="2M", pfn=0x800) == 1
    r = walk(pt, [0x212345])
    assert (int(r.fault[0]), int(r.paddr[0]), int(r.page_size[0])) == (0, 0x812345, M2)


def test_unmap_and_protect():
    pt = PageTable("x86_64")
    pt.map(0, M2, page_size="2M", pfn=0x200)   # not frame 0: the root table is there
    pt.map(M2, 0x4000, pfn=0x1000)
    before = snapshot(pt)
    with pytest.raises(ValueError, match="cuts the large page at 0x0"):
        pt.unmap([M2, 0x1000], 0x1000)      # the second range cuts the 2M page
    with pytest.raises(ValueError, match="cuts"):
        pt.protect(0, 0x1000, writable=False)
    assert snapshot(pt) == before
    assert pt.protect(0, M2 + 0x2000, writable=False, nx=True) == 3
    r = walk(pt, [0x10, M2, M2 + 0x2000], op="store")
    assert (r.fault & 0xFFFF).tolist() == [7, 7, 0]
    assert pt.unmap(0, 1 << 30) == 5
    assert pt.unmap(0, 1 << 30) == 0
    assert walk(pt, [0, M2]).fault.tolist() == [FAULT_PF | 4] * 2
    assert pt.mappings() == []


def test_walk_input_validation():
    pt = PageTable("x86_64")
    with pytest.raises(ValueError, match="not one of"):
        walk(pt, [0], op="write")
    with pytest.raises(ValueError, match=r"op\[1\] = 7"):
        pt.walk(np.zeros(2, dtype=np.uint64), op=np.array([0, 7], dtype=np.uint8))
    with pytest.raises(TypeError, match="uint64"):
        pt.walk(np.zeros(2, dtype=np.float64))
    with pytest.raises(ValueError, match="1-D"):
        pt.walk(np.zeros((2, 2), dtype=np.uint64))
    with pytest.raises(ValueError, match="negative"):
        pt.walk(np.array([-1], dtype=np.int64))
    r = pt.walk(np.zeros(0, dtype=np.uint64), record=True)
    assert r.paddr.shape == (0,) and r.entry_paddrs.shape == (0, 4)


@pytest.mark.parametrize("kwargs,message", [
    (dict(mode="x86_16"), "mode"), (dict(maxphyaddr=60), "maxphyaddr"),
    (dict(phys_mem="1K"), "multiple of 4K"), (dict(allocator="buddy"), "allocator"),
    (dict(huge_pages="sometimes"), "huge_pages"), (dict(psc={"pml5e": 4}), "does not exist"),
    (dict(psc={1: (6, 4)}), "multiple of ways"), (dict(psc="big"), "psc"),
    (dict(psc_policy="mru"), "psc_policy"), (dict(seed=-1), "seed"),
    (dict(mode="pae", psc={"pdpte": 4}), "does not exist"),
    (dict(phys_mem="8K"), "root tables"), (dict(maxphyaddr=36, phys_mem="128G"), "larger"),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        PageTable(**kwargs)


# ---------------------------------------------------------------------- demand paging
def test_demand_thp_policy():
    pt = PageTable("x86_64", demand=True, huge_pages="thp", phys_mem="256M")
    r = walk(pt, [0x40000123, 0x40100000, 0x1000])
    assert r.fault.tolist() == [0, 0, 0]
    assert r.page_size.tolist() == [M2, M2, M2]
    # the faulting walk stops at the first missing entry, then the retry reads 3
    assert r.refs.tolist() == [1 + 3, 3, 2 + 3]
    pt2 = PageTable("x86_64", demand=True, huge_pages="thp", phys_mem="256M")
    pt2.map(0x200000, 0x1000)                        # the 2M region has a page table
    assert walk(pt2, [0x300000]).page_size.tolist() == [K4]
    assert pt2.stats.minor_faults == {"4K": 1}
    assert pt.stats.minor_faults == {"2M": 2}


def test_demand_always_and_never_and_x86_32():
    pt = PageTable("x86_64", demand=True, huge_pages="always", phys_mem="4G")
    assert walk(pt, [0x40000000 + 5]).page_size.tolist() == [G1]
    assert walk(pt, [0x1000]).page_size.tolist() == [G1]
    never = PageTable("la57", demand=True)
    assert walk(never, [0x1000, 0x1FFF, 0x2000]).page_size.tolist() == [K4] * 3
    assert never.stats.minor_faults == {"4K": 2}
    assert never.stats.tables == 5                   # root + 4 levels below it
    x32 = PageTable("x86_32", demand=True, huge_pages="thp", phys_mem="64M")
    assert walk(x32, [0x400000]).page_size.tolist() == [M4]


def test_demand_falls_back_when_no_large_frame_is_free():
    pt = PageTable("x86_64", demand=True, huge_pages="always", phys_mem="8M",
                   allocator="random", seed=5)
    r = walk(pt, [0x200000, 0x400000, 0x600000, 0x800000, 0x40000000])
    assert r.fault.tolist() == [0] * 5
    s = pt.stats
    assert s.huge_fallbacks >= 1 and sum(s.minor_faults.values()) == 5
    assert "1G" not in s.minor_faults


def test_demand_exhaustion_is_a_clear_error():
    pt = PageTable("x86_64", demand=True, phys_mem=16 * K4)
    vas = np.arange(0, 64 * K4, K4, dtype=np.uint64)
    with pytest.raises(MemoryError, match="physical memory exhausted"):
        pt.walk(vas)
    s = pt.stats
    assert pt.free_frames == 0 or s.minor_faults["4K"] + s.tables == 16
    done = s.minor_faults["4K"]
    before = snapshot(pt)
    with pytest.raises(MemoryError):
        pt.walk(vas[done:done + 1])
    after = snapshot(pt)
    assert after[0] == before[0] and after[2] == before[2]   # tables and frames unchanged
    with pytest.raises(MemoryError, match="nothing was mapped"):
        PageTable("x86_64", phys_mem=16 * K4).map(0, 64 * K4)


def test_map_out_of_memory_changes_nothing():
    pt = PageTable("x86_64", phys_mem="8M", allocator="random", seed=1)
    pt.map(0x100000, 0x3000)
    before = snapshot(pt)
    with pytest.raises(MemoryError):
        pt.map(G1, 8 << 20)
    assert snapshot(pt) == before
    assert pt.map(G1, 0x1000) == 1                   # and it still works


def test_x86_32_tables_and_4k_frames_stay_below_4g():
    # a 32-bit PDE or PTE holds a 20-bit frame number and CR3 a 32-bit address (SDM 4.3,
    # tables 4-4 .. 4-6); PAE's CR3 holds the PDPT's address in bits 31:5 (SDM 4.4.1).
    # With PSE-36 and more than 4 GiB of memory only 4M pages may lie above 4 GiB
    vas = np.arange(64, dtype=np.uint64) * np.uint64(M4)
    for seed in range(4):
        pt = PageTable("x86_32", maxphyaddr=40, phys_mem="64G", allocator="random",
                       seed=seed)
        assert pt.cr3 < 1 << 32
        assert pt.map(vas, K4) == 64
        r = walk(pt, vas + np.uint64(0x123))
        assert (r.fault == 0).all() and (r.paddr < (1 << 32)).all()
        assert [m.vaddr for m in pt.mappings(merge=False)] == vas.tolist()
        assert all(pfn < 1 << 20 for pfn in pt.core.pool_pages())
        d = PageTable("x86_32", maxphyaddr=40, phys_mem="64G", allocator="random",
                      seed=seed, demand=True)
        r = walk(d, vas + np.uint64(0x1123))
        assert (r.fault == 0).all() and (r.paddr < (1 << 32)).all()
        assert PageTable("pae", phys_mem="64G", allocator="random", seed=seed).cr3 < 1 << 32
    # 2**20 4K pages and their tables do not fit below 4 GiB (8 GiB of memory or not);
    # 4M pages are not confined: frames above 4 GiB are used when the low ones are taken
    pt = PageTable("x86_32", maxphyaddr=40, phys_mem="8G")
    with pytest.raises(MemoryError, match="below 4 GiB"):
        pt.map(0, 1 << 32)
    assert pt.map(0, 1 << 32, page_size="4M") == 1024
    assert max(m.pfn for m in pt.mappings(merge=False)) >= 1 << 20


def test_allocators():
    seq = PageTable("x86_64", phys_mem="64M")
    seq.map(0x1000, 0x3000)
    pfns = [m.pfn for m in seq.mappings(merge=False)]
    assert pfns == [1, 5, 6]        # frame 0: PML4; data first, then the missing tables
    a = PageTable("x86_64", phys_mem="64M", allocator="random", seed=7)
    b = PageTable("x86_64", phys_mem="64M", allocator="random", seed=7)
    c = PageTable("x86_64", phys_mem="64M", allocator="random", seed=8)
    for pt in (a, b, c):
        pt.map(0x1000, 0x10000)
    assert a.mappings(merge=False) == b.mappings(merge=False)
    assert a.mappings(merge=False) != c.mappings(merge=False)
    core = PageTableCore(2, 52, 4096, 0, 0)          # 16M: 8 2M units, frame 0 taken
    assert core.alloc(1) == 512
    assert core.alloc(3) == -1                       # no 1G unit in 16M
    assert core.free_frames == 4096 - 1 - 512


def test_populating_many_pages_counts_faults():
    pt = PageTable("x86_64", demand=True, phys_mem="1G", allocator="random", seed=0)
    vas = np.arange(0, 20000 * K4, K4, dtype=np.uint64)
    r = pt.walk(vas, op="store")
    assert not r.fault.any()
    s = pt.stats
    assert s.minor_faults == {"4K": 20000} and s.translations == {"4K": 20000}
    assert s.frames_allocated == 20000 + s.tables
    assert len({int(p) >> 12 for p in r.paddr}) == 20000          # distinct frames
    again = pt.walk(vas)
    assert (again.paddr == r.paddr).all() and pt.stats.minor_faults == {"4K": 20000}


# ---------------------------------------------------------------------- PSCs
def test_psc_lets_walks_start_below_the_root():
    pt = PageTable("x86_64", psc="default")
    assert pt.psc == {L: PSC_DEFAULT[L] for L in (1, 2, 3)}
    pt.map(0x200000, 0x2000)
    pt.map(0x40000000, 0x1000)
    pt.map(1 << 39, 0x1000)
    r = walk(pt, [0x200000, 0x201000, 0x40000000, 1 << 39])
    assert r.refs.tolist() == [4, 1, 3, 4]          # cold; PDE hit; PML4E hit; cold
    st = pt.stats
    assert st.psc_hits == [0, 1, 0, 1] and st.refs == [4, 3, 3, 2]
    assert pt.invalidate(0x200000, all_psc=False) == 3          # PDE, PDPTE, PML4E
    assert walk(pt, [0x201000]).refs.tolist() == [4]
    assert pt.invalidate(0x5000) > 0                # INVLPG drops every PSC entry
    assert walk(pt, [0x40000000]).refs.tolist() == [4]
    assert pt.flush_psc() == 3
    ps = pt.psc_stats()
    assert set(ps) == {"PDE", "PDPTE", "PML4E"} and ps["PDE"]["hits"] == 1


def test_psc_caches_permissions_and_keeps_stale_entries_until_invalidated():
    pt = PageTable("x86_64", psc={"pde": (4, 4)})
    pt.map(0x1000, 0x2000)
    walk(pt, [0x1000])
    pde = pt.entry_paddr(0x1000, 1)
    pt.write_entry(pde, pt.read_entry(pde) & ~4)    # U/S=0 in memory, cached PDE: U/S=1
    assert walk(pt, [0x2000]).fault.tolist() == [0]                 # SDM 4.10.3.3
    pt.invalidate(0x2000)
    assert walk(pt, [0x2000]).fault.tolist() == [FAULT_PF | 1 | 4]


def test_a_page_fault_invalidates_the_psc_entries_of_its_address():
    # SDM 4.10.4.1: "a page-fault exception ... also invalidates all entries in the
    # paging-structure caches that would be used for that linear address", so a fault
    # caused by a stale PSC entry does not recur once the walk reads memory again
    pt = PageTable("x86_64", psc="default")
    pt.map(0x200000, 0x1000, pfn=0x100)                 # page table T1 (one PTE)
    pt.map(0x600000, 0x2000, pfn=0x300)                 # page table T3 (two PTEs)
    assert walk(pt, [0x200000]).refs.tolist() == [4]    # PDE of 0x200000 now cached
    pde = pt.entry_paddr(0x200000, 1)
    pt.write_entry(pde, pt.read_entry(pt.entry_paddr(0x600000, 1)))   # PDE -> T3
    r = walk(pt, [0x200000, 0x201000])                  # stale PDE-cache entry: T1
    assert r.paddr.tolist()[0] == 0x100000 and r.refs.tolist() == [1, 1]
    assert r.fault.tolist()[1] == FAULT_PF | 4          # T1 has no PTE 1
    r = walk(pt, [0x201000])                            # the fault dropped the entry
    assert r.fault.tolist() == [0] and r.paddr.tolist() == [0x301000]
    assert r.refs.tolist() == [4]
    # a fault leaves no PSC entry for its address (nothing filled, the rest dropped)
    pt = PageTable("x86_64", psc="default")
    pt.map(0x200000, 0x1000)
    walk(pt, [0x201000])                                # not present: PTE
    assert walk(pt, [0x200000]).refs.tolist() == [4]
    walk(pt, [0x200000], op="store", user=False)        # translated: fills
    pt.protect(0x200000, 0x1000, writable=False)
    assert walk(pt, [0x200000], op="store").fault.tolist() == [FAULT_PF | 7]
    assert walk(pt, [0x200000]).refs.tolist() == [4]    # protection fault dropped it too
    # demand paging: the fault's retry walk starts at the root
    pt = PageTable("x86_64", psc="default", demand=True)
    pt.map(0x200000, 0x1000)
    walk(pt, [0x200000])
    assert walk(pt, [0x201000]).refs.tolist() == [1 + 4]


def test_pae_and_x86_32_have_a_pde_cache_only():
    for mode in ("pae", "x86_32"):
        pt = PageTable(mode, psc="default")
        assert list(pt.psc) == [1]
        pt.map(0x1000, 0x2000)
        assert walk(pt, [0x1000, 0x2000]).refs.tolist() == [2, 1]


# ---------------------------------------------------------------------- inspection
def test_mappings_and_stats():
    pt = PageTable("x86_64")
    pt.map(0x1000, 0x3000, pfn=0x100)
    pt.map(0x4000, 0x1000, pfn=0x103, writable=False)
    pt.map(0xFFFF800000000000, M2, page_size="2M", pfn=0x200, global_=True, user=False)
    m = pt.mappings()
    assert [(x.vaddr, x.size, x.page_size, x.pfn) for x in m] == [
        (0x1000, 0x3000, K4, 0x100), (0x4000, 0x1000, K4, 0x103),
        (0xFFFF800000000000, M2, M2, 0x200)]
    assert m[2].flags == {"writable": True, "user": False, "nx": False, "global_": True,
                          "pwt": False, "pcd": False}
    assert len(pt.mappings(merge=False)) == 5
    r = walk(pt, [0xFFFF800000000123], user=False)
    assert int(r.paddr[0]) == 0x200123
    d = pt.stats.to_dict()
    assert d["translations"] == {"2M": 1} and pt.stats.faults == 0
    pt.reset_stats()
    assert pt.stats.walks == 0
    assert "x86_64" in repr(pt) and pt.level_names[3] == "PML4E"
    assert pt.page_sizes == (K4, M2, G1)
    with pytest.raises(ValueError, match="not in a page-table page"):
        pt.write_entry(0x100000, 0)


def test_translate_raises_on_faults():
    pt = PageTable("x86_64")
    pt.map(0x1000, 0x1000, pfn=9)
    assert pt.translate(np.array([0x1010], dtype=np.uint64)).tolist() == [0x9010]
    with pytest.raises(ValueError, match=r"vaddrs\[1\] = 0x2000 faults"):
        pt.translate(np.array([0x1010, 0x2000], dtype=np.uint64))


@pytest.mark.parametrize("mode", ["x86_32", "pae", "x86_64", "la57"])
def test_table_pages_hold_what_read_entry_reads(mode):
    pt = PageTable(mode)
    pt.map(0x400000, 0x3000, pfn=0x1234)
    pages = pt.table_pages()
    levels = {"x86_32": 2, "pae": 2 + 4, "x86_64": 4, "la57": 5}[mode]   # pae: PDPT + 4 PDs + PT
    assert len(pages) == levels and pt.cr3 in pages
    for pa, words in pages.items():
        assert len(words) * words.itemsize == 4096
        for i in np.flatnonzero(words).tolist() + [0, len(words) - 1]:
            assert int(words[i]) == pt.read_entry(pa + i * words.itemsize)
    # copies: changing them changes nothing
    next(iter(pages.values()))[:] = 0
    assert pt.walk(np.array([0x401000], np.uint64)).fault[0] == 0
