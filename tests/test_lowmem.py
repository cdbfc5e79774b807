"""pyapi.lowmem: the 32-bit kernel address space and the lowmem budget of issue 6.

Every figure of ``specs/kmap.md`` sections 4.1-4.4 is reproduced below, quoted with its
source; the invariants (areas add up to kernel space, lowmem = min(RAM, MAXMEM),
monotonic in RAM, the maximum bootable RAM is a real boundary) are property tests.
"""
import pytest
from hypothesis import given, strategies as st

from pyapi.lowmem import (KERNELS, SPLITS, STRUCT_PAGE_BYTES, LowmemBudget, lowmem_budget,
                          lowmem_grid, lowmem_sweep, max_direct_map_bytes, mem_map_bytes)

MB = 1 << 20
GB = 1 << 30
KB = 1 << 10
PAGE = 4096


# --- spec 4.1: constants (2002 kernels) -----------------------------------------------

def test_page_offset_and_vmalloc_reserve():
    # "__PAGE_OFFSET | 0xC0000000 (3G/1G split)" (include/asm-i386/page.h [2.4.16])
    # "VMALLOC_RESERVE | (128 << 20)" (arch/i386/kernel/setup.c [2.4.16])
    b = lowmem_budget("1G", pae=False)
    assert b.page_offset == 0xC0000000
    assert b.vmalloc_reserve_bytes == 128 << 20
    assert b.kernel_space_bytes == 1 * GB


def test_maxmem_is_896mb():
    # "MAXMEM | (unsigned long)(-PAGE_OFFSET-VMALLOC_RESERVE) = 0x38000000 = 896 MB" (setup.c)
    # "MAXMEM_PFN | PFN_DOWN(MAXMEM) = 229 376" (setup.c)
    assert max_direct_map_bytes("3G/1G") == 0x38000000 == 896 * MB
    b = lowmem_budget("4G", pae=False)
    assert b.max_direct_map_bytes == 0x38000000
    assert b.lowmem_bytes // PAGE == 229376


def test_max_nonpae_pfn_is_4gb():
    # "MAX_NONPAE_PFN | 1 << 20 (4 GB)" (setup.c [2.4.15])
    assert lowmem_budget("4G", pae=False).addressable_bytes == (1 << 20) * PAGE
    with pytest.raises(ValueError, match=r"4 GiB.*MAX_NONPAE_PFN"):
        lowmem_budget(4 * GB + PAGE, pae=False)
    with pytest.raises(ValueError, match=r"64 GiB"):
        lowmem_budget("65G", pae=True)
    assert lowmem_budget("64G", pae=True).addressable_bytes == 64 * GB


@pytest.mark.parametrize("ram", ["512M", "896M", "1G", "4G"])
def test_lowmem_highmem_split(ram):
    # "max_low_pfn = min(max_pfn, MAXMEM_PFN); if max_pfn > MAXMEM_PFN: highstart_pfn =
    #  MAXMEM_PFN, highend_pfn = max_pfn" (setup.c [2.4.15])
    b = lowmem_budget(ram, pae=False)
    pages = b.ram_bytes // PAGE
    assert b.lowmem_bytes // PAGE == min(pages, 229376)
    assert b.highmem_bytes // PAGE == max(0, pages - 229376)


def test_high_memory_and_vmalloc_macros():
    # "high_memory | __va(max_low_pfn * PAGE_SIZE) = 0xF8000000 when RAM >= 896 MB"
    # "VMALLOC_OFFSET | 8 MB"; "VMALLOC_START | ((unsigned long)high_memory +
    #  2*VMALLOC_OFFSET-1) & ~(VMALLOC_OFFSET-1)"; "VMALLOC_END | PKMAP_BASE - 2*PAGE_SIZE"
    # "PKMAP_BASE | 0xfe000000"; "FIXADDR_TOP | 0xffffe000 (2.4, 2.5.13)"
    b = lowmem_budget("2G", pae=False)
    assert b.high_memory == 0xF8000000
    assert b.vmalloc_start == (0xF8000000 + 2 * 8 * MB - 1) & ~(8 * MB - 1)
    assert b.pkmap_base == 0xFE000000
    assert b.vmalloc_end == 0xFE000000 - 2 * PAGE
    assert b.fixaddr_top == 0xFFFFE000
    small = lowmem_budget("100M", pae=False)
    assert small.high_memory == 0xC0000000 + 100 * MB
    assert small.vmalloc_start == (small.high_memory + 16 * MB - 1) & ~(8 * MB - 1)


def test_fixaddr_start_formula():
    # "FIXADDR_START | FIXADDR_TOP - (__end_of_fixed_addresses << PAGE_SHIFT)";
    # "__fix_to_virt(x) | FIXADDR_TOP - ((x) << PAGE_SHIFT)"; "MAX_IO_APICS | 8"
    # (fixmap.h, apicdef.h); __end_of_fixed_addresses = 1 (APIC) + 8 (IO-APICs) + KM*NR_CPUS
    for km, cpus in [(5, 32), (7, 32), (8, 4), (13, 1)]:
        b = lowmem_budget("1G", km_type_nr=km, nr_cpus=cpus)
        assert b.fixaddr_start == 0xFFFFE000 - ((1 + 8 + km * cpus) << 12)
        assert b.fixmap_bytes == (1 + 8 + km * cpus) * PAGE


# --- spec 4.2: the worked 2.4.18 map (SMP, LOCAL_APIC+IO_APIC, NR_CPUS=32, >= 896 MB) ----

def worked(pae=False, km=5):
    return lowmem_budget("1G", pae=pae, kernel="2.4.18", km_type_nr=km, nr_cpus=32)


def test_worked_map_top_pages():
    # "0xFFFFF000-0xFFFFFFFF  one empty page above FIXADDR_TOP"
    # "0xFFFFE000  FIXADDR_TOP;  idx0 FIX_APIC_BASE=0xFFFFE000, FIX_IO_APIC_BASE_0..7 = idx1..8"
    b = worked()
    assert b.fixaddr_top == 0xFFFFE000
    assert b.fixaddr_top_gap_bytes == 2 * PAGE        # slot 0 at 0xFFFFE000 + the empty page
    assert (1 << 32) - (b.fixaddr_top + PAGE) == PAGE


def test_worked_map_fixmap_km5():
    # "KM_TYPE_NR=5 (2.4.15 list): FIX_KMAP_END=168, FIXADDR_START=0xFFF55000"
    # "kmap_atomic(cpu0, KM_USER0=3) -> 0xFFFF2000 ; last slot (cpu31) -> 0xFFF56000"
    b = worked(km=5)
    assert b.km_type_nr == 5 and KERNELS["2.4.18"].km_type_nr == 5
    assert b.fixmap_bytes // PAGE - 1 == 168            # FIX_KMAP_END
    assert b.fixaddr_start == 0xFFF55000
    assert b.kmap_atomic_address(0, 3) == 0xFFFF2000
    assert b.kmap_atomic_address(31, 4) == 0xFFF56000
    with pytest.raises(ValueError):
        b.kmap_atomic_address(32, 0)


def test_worked_map_fixmap_km7():
    # "KM_TYPE_NR=7 (RH 2.4.18 list): FIX_KMAP_END=232, FIXADDR_START=0xFFF15000"
    b = worked(km=7)
    assert b.fixmap_bytes // PAGE - 1 == 232
    assert b.fixaddr_start == 0xFFF15000


def test_worked_map_unused_gap():
    # "0xFE400000 .. FIXADDR_START   unused (~27 MB; 'around 28 MB are reserved for kmap',
    #  Manfred Spraul, BK 648778fd25)"
    b = worked(km=5)
    assert b.pkmap_base + b.pkmap_bytes == 0xFE400000
    assert b.pkmap_fixmap_gap_bytes == 0xFFF55000 - 0xFE400000
    assert 27 * MB < b.pkmap_fixmap_gap_bytes < 28 * MB


def test_worked_map_pkmap():
    # "0xFE000000-0xFE3FFFFF  PKMAP area, 1024 slots (non-PAE) | PAE: 0xFE000000-0xFE1FFFFF,
    #  512 slots"
    b, p = worked(pae=False), worked(pae=True)
    assert (b.last_pkmap, b.pkmap_base, b.pkmap_base + b.pkmap_bytes - 1) == \
        (1024, 0xFE000000, 0xFE3FFFFF)
    assert (p.last_pkmap, p.pkmap_base, p.pkmap_base + p.pkmap_bytes - 1) == \
        (512, 0xFE000000, 0xFE1FFFFF)


def test_worked_map_vmalloc():
    # "0xFDFFE000  VMALLOC_END (PKMAP_BASE - 2 pages)"
    # "0xF8800000  VMALLOC_START -> vmalloc area = 0x057FE000 = ~88 MB (not 128 MB: the 128 MB
    #  reserve also pays for the 8-16 MB guard hole and the top 32 MB)"
    # "0xF8000000  high_memory (end of the 896 MB direct map)"
    b = worked()
    assert b.vmalloc_end == 0xFDFFE000 and b.vmalloc_end_guard_bytes == 2 * PAGE
    assert b.vmalloc_start == 0xF8800000
    assert b.vmalloc_bytes == 0x057FE000
    assert round(b.vmalloc_bytes / MB) == 88
    assert b.vmalloc_guard_bytes == 8 * MB
    assert b.high_memory == 0xF8000000
    top32 = (b.pkmap_bytes + b.pkmap_fixmap_gap_bytes + b.fixmap_bytes
             + b.fixaddr_top_gap_bytes)
    assert top32 == 32 * MB == (1 << 32) - 0xFE000000
    assert (b.vmalloc_guard_bytes + b.vmalloc_bytes + b.vmalloc_end_guard_bytes + top32
            == b.vmalloc_reserve_bytes == 128 * MB)


def test_worked_map_user_and_direct_map():
    # "0xC0000000  PAGE_OFFSET: lowmem direct map, virt = phys + 0xC0000000, phys 0 .. 896 MB"
    # "0x00000000-0xBFFFFFFF  user (3 GB)"
    b = worked()
    assert b.page_offset == 0xC0000000 == 3 * GB
    assert b.high_memory - b.page_offset == b.lowmem_bytes == 896 * MB


# --- spec 4.3: sizeof(struct page) and the mem_map table ------------------------------

def test_struct_page_sizes_by_version():
    # "[2.4.15]/[2.4.16] ... 64 (SMP)"; "[2.4.22] ... 48 HIGHMEM"; "[2.5.13] ... 40";
    # "[2.6.12] ... 32"; "vanilla 2.4.18 is taken to be 64 bytes"
    assert STRUCT_PAGE_BYTES == {"2.4.15": 64, "2.4.16": 64, "2.4.18": 64, "2.4.22": 48,
                                 "2.5.13": 40, "2.6.12": 32}
    for k, s in STRUCT_PAGE_BYTES.items():
        assert lowmem_budget("1G", kernel=k).struct_page_bytes == s
    # 2.4.16 field by field: list 8, mapping 4, index 4, next_hash 4, count 4, flags 4,
    # lru 8, wait 12, pprev_hash 4, buffers 4, virtual 4, zone 4
    assert 8 + 4 + 4 + 4 + 4 + 4 + 8 + 12 + 4 + 4 + 4 + 4 == 64
    # 2.5.13: list 8, mapping 4, index 4, count 4, flags 4, lru 8, private 4, virtual 4
    assert 8 + 4 + 4 + 4 + 4 + 8 + 4 + 4 == 40
    # 2.6.12: flags 4, _count 4, _mapcount 4, private 4, mapping 4, index 4, lru 8
    assert 4 + 4 + 4 + 4 + 4 + 4 + 8 == 32


# "mem_map_bytes(N GB) = N * 2^30 / 4096 * sizeof(struct page)":
# | RAM | pages | 64 B | 48 B | 40 B | 32 B | % of 896 MB at 64 B / 32 B |
SPEC_43 = [
    (1, 262144, 16, 12, 10, 8, 1.8, 0.9),
    (4, 1048576, 64, 48, 40, 32, 7.1, 3.6),
    (8, 2097152, 128, 96, 80, 64, 14.3, 7.1),
    (16, 4194304, 256, 192, 160, 128, 28.6, 14.3),
    (32, 8388608, 512, 384, 320, 256, 57.1, 28.6),
    (64, 16777216, 1024, 768, 640, 512, 114.3, 57.1),
]


@pytest.mark.parametrize("row", SPEC_43, ids=[f"{r[0]}G" for r in SPEC_43])
def test_spec_43_mem_map_table(row):
    gb, pages, m64, m48, m40, m32, pct64, pct32 = row
    for s, mb in [(64, m64), (48, m48), (40, m40), (32, m32)]:
        b = lowmem_budget(f"{gb}G", pae=True, struct_page_bytes=s)
        assert b.pages == pages
        assert b.mem_map_bytes == mb * MB == mem_map_bytes(f"{gb}G", s)
        assert b.lowmem_bytes == 896 * MB
    assert round(100 * lowmem_budget(f"{gb}G", struct_page_bytes=64).mem_map_share, 1) == pct64
    assert round(100 * lowmem_budget(f"{gb}G", struct_page_bytes=32).mem_map_share, 1) == pct32
    if gb <= 4:          # the non-PAE kernel gives the same mem_map and share
        assert lowmem_budget(f"{gb}G", pae=False, struct_page_bytes=64).mem_map_bytes == m64 * MB


def test_spec_43_64gb_64b_cannot_boot():
    # "64 GB | 16 777 216 | 1024 MB (> 896 MB: cannot boot)"
    b = lowmem_budget("64G", pae=True, kernel="2.4.18")
    assert b.mem_map_bytes == 1024 * MB > b.lowmem_bytes == 896 * MB
    assert not b.bootable
    assert b.lowmem_free_bytes < 0
    assert "mem_map needs 1,024.00 MiB" in b.reason and "896.00 MiB" in b.reason
    assert "bootmem alloc of" in b.reason
    # every other cell of the 64 GB row fits
    for s in (48, 40, 32):
        assert lowmem_budget("64G", pae=True, struct_page_bytes=s).bootable


def test_spec_43_map_size_has_one_more_entry():
    # "map_size = (totalpages + 1)*sizeof(struct page)" (free_area_init_core [2.4.15]):
    # the failing allocation the reason quotes is one struct page longer than mem_map_bytes
    b = lowmem_budget("64G", struct_page_bytes=64)
    assert f"bootmem alloc of {b.mem_map_bytes + 64} bytes failed!" in b.reason


# --- spec 4.4: real figures quoted on LKML ------------------------------------------------

def test_ingo_32gb_half_gb_lowmem_left():
    # Ingo Molnar, LKML 9 Jul 2003: "With 32 GB of RAM the remaining 0.5 GB lowmem area is
    # quite limited and only represents 1.5% of all RAM"
    b48 = lowmem_budget("32G", pae=True, struct_page_bytes=48)
    assert b48.lowmem_bytes - b48.mem_map_bytes == 512 * MB            # exactly 0.5 GB
    assert 100 * (b48.lowmem_bytes - b48.mem_map_bytes) / b48.ram_bytes == 1.5625
    for s in (40, 44, 48):       # the 2.5.x struct page sizes all leave "0.5 GB", ~1.5%
        b = lowmem_budget("32G", pae=True, struct_page_bytes=s)
        assert 0.5 * GB <= b.lowmem_free_bytes + b.boot_pagetable_bytes < 0.6 * GB
        assert 1.5 <= 100 * b.lowmem_free_bytes / b.ram_bytes < 1.8


def test_ingo_64gb_cannot_boot():
    # "With 64 GB RAM, the mem_map[] alone takes up nearly 1 GB of RAM, making the kernel
    #  unable to boot."
    for s in (64, 60, 56):
        b = lowmem_budget("64G", pae=True, struct_page_bytes=s)
        assert 0.85 * GB < b.mem_map_bytes <= 1 * GB
        assert not b.bootable
    # ... while the 4G/4G split boots it
    assert lowmem_budget("64G", pae=True, struct_page_bytes=64, split="4G/4G").bootable


def test_ingo_4g4g_200gb():
    # "in theory, the 4G/4G patch could provide a mem_map[] for 200 GB (!) of physical RAM
    #  on x86, while still having 1 GB of lowmem left." 200 GB is beyond PAE's 64 GB, hence
    #  "in theory": the budget refuses it, the helpers show the arithmetic.
    with pytest.raises(ValueError, match="64 GiB"):
        lowmem_budget("200G", pae=True, split="4G/4G")
    for s in (32, 40, 44, 48, 56):
        b = lowmem_budget("64G", pae=True, struct_page_bytes=s, split="4G/4G")
        assert b.max_bootable_ram_uncapped_bytes > 200 * GB
        assert b.max_bootable_ram_bytes == 64 * GB
    direct = max_direct_map_bytes("4G/4G")
    for s in (32, 40, 44, 48, 56):
        assert direct - mem_map_bytes("200G", s) >= 1 * GB
    assert direct - mem_map_bytes("200G", 64) < 1 * GB


def test_ingo_4g4g_64gb_meminfo_consistent():
    # "With 4G/4G on 64 GB: LowTotal: 3137464 kB, HighTotal: 62914556 kB, MemTotal: 66052020 kB"
    # LowTotal counts the lowmem left after mem_map and the kernel; it must fit in the
    # model's 4G/4G direct map together with a 64 GB mem_map of a 2.5/2.6 struct page.
    low_total = 3137464 * KB
    assert 3137464 + 62914556 == 66052020
    for s in (32, 40, 44, 48):
        b = lowmem_budget("64G", pae=True, struct_page_bytes=s, split="4G/4G")
        assert b.lowmem_bytes == 3936 * MB
        assert low_total + b.mem_map_bytes < b.lowmem_bytes


def test_wli_numaq_32gb_boot_log():
    # William Lee Irwin III, LKML 9 Jul 2003, 2.5.74-mm2 + 4G/4G on a 32 GB NUMA-Q:
    # "Reserving 23040 pages of KVA for lmem_map of node 1" (same for 2, 3), "Reserving total
    # of 69120 pages for numa KVA remap", "28832MB HIGHMEM available. 3666MB LOWMEM available."
    remap = 69120 * PAGE
    assert 3 * 23040 == 69120 and 23040 * PAGE == 90 * MB
    b = lowmem_budget("32G", pae=True, split="4G/4G", reserved=remap, struct_page_bytes=44)
    assert b.lowmem_bytes == 3936 * MB                      # MAXMEM of the 4G/4G split
    assert (b.lowmem_bytes - b.reserved_bytes) // MB == 3666
    assert b.highmem_bytes // MB == 28832
    assert b.bootable
    # "i.e. 90 MB of KVA per 8 GB node (2 097 152 pages) for that node's mem_map (+pgdat),
    # rounded to 2 MB": of the plausible sizes only a 44-byte struct page gives 90 MB
    # (an inference about 2.5.74-mm2, not a figure of the spec).
    def remap_mb(s, pgdat=4096):
        size = (2097152 + 1) * s + pgdat
        return -(-size // (2 * MB)) * 2
    assert mem_map_bytes("8G", 1) == 2097152
    assert [s for s in range(32, 65, 4) if remap_mb(s) == 90] == [44]


def test_bligh_kva_hit_list():
    # Martin Bligh, LKML 22 May 2002: "1. PTEs (5000 tasks sharing a 2Gb SGA = 10GB of PTEs)
    # ... 2. rmap pte_chains ... twice as much space as the PTEs (ie 20Gb in the case above).
    # 3. buffer_heads: I have over 1Gb of bufferheads in (an enlarged) ZONE_NORMAL"
    ptes = 5000 * (2 * GB // PAGE) * 4                       # 4-byte PTEs, no PAE
    assert ptes == 10_000 * MB and 2 * ptes == 20_000 * MB   # "10GB", "20Gb"
    for split in SPLITS:
        if split == "3.5G/0.5G":
            continue
        assert lowmem_budget("16G", pae=True, split=split).lowmem_free_bytes < ptes
    # over 1 GB of buffer_heads only fits an enlarged ZONE_NORMAL
    assert lowmem_budget("16G", split="3G/1G").lowmem_bytes < 1 * GB
    assert lowmem_budget("16G", split="2G/2G").lowmem_free_bytes > 1 * GB


def test_andrea_64g_with_48_byte_struct_page():
    # Andrea Arcangeli, LKML 3 May 2002: "You can use 64G 'successfully' just now ... with
    # 2.4.19pre8" (consistent with a 48-byte struct page: 768 MB of mem_map)
    b = lowmem_budget("64G", pae=True, struct_page_bytes=48)
    assert b.mem_map_bytes == 768 * MB
    assert b.bootable
    assert 127 * MB < b.lowmem_free_bytes < 128 * MB


def test_gorman_44_bytes():
    # Mel Gorman, "Understanding the Linux VM" ch. 3.4: struct page "still requires 44 bytes
    # ... to describe 1GiB of memory, approximately 11MiB ... with 16GiB, 176MiB"
    assert lowmem_budget("1G", struct_page_bytes=44).mem_map_bytes / MB == 11
    assert lowmem_budget("16G", struct_page_bytes=44).mem_map_bytes / MB == 176


# --- splits, kernels, arguments --------------------------------------------------------

def test_splits():
    # page.h of the -mjb config_page_offset patch (Bligh, LKML 4 Aug 2004)
    assert {k: hex(v) for k, v in SPLITS.items()} == {
        "3.5G/0.5G": "0xe0000000", "3G/1G": "0xc0000000", "2G/2G": "0x80000000",
        "1G/3G": "0x40000000", "4G/4G": "0x2000000"}
    assert [max_direct_map_bytes(s) // MB for s in SPLITS] == [384, 896, 1920, 2944, 3936]
    with pytest.raises(ValueError, match="not available with PAE"):
        lowmem_budget("2G", pae=True, split="3.5G/0.5G")
    assert lowmem_budget("2G", pae=False, split="3.5G/0.5G").lowmem_bytes == 384 * MB


def test_unknown_kernel_and_split_list_valid_values():
    with pytest.raises(ValueError, match=r"2\.4\.18.*2\.5\.13.*2\.6\.12"):
        lowmem_budget("1G", kernel="2.4.99")
    with pytest.raises(ValueError, match=r"3G/1G, 2G/2G, 1G/3G, 4G/4G"):
        lowmem_budget("1G", split="3.2G/0.8G")
    with pytest.raises(ValueError, match="split"):
        max_direct_map_bytes("5G/5G")


def test_struct_page_bytes_overrides_kernel():
    b = lowmem_budget("8G", kernel="2.4.18", struct_page_bytes=32)
    assert (b.struct_page_bytes, b.km_type_nr, b.kernel) == (32, 5, "2.4.18")
    assert lowmem_budget("8G").struct_page_bytes == 40          # default: 2.5.13's


def test_sizes_as_strings_or_ints():
    assert lowmem_budget("16G") == lowmem_budget(16 * GB) == lowmem_budget("16GiB")
    assert lowmem_budget("1G", reserved="8M").reserved_bytes == 8 * MB
    with pytest.raises(ValueError):
        lowmem_budget("lots")
    with pytest.raises(ValueError, match="one page"):
        lowmem_budget(100)
    with pytest.raises(TypeError):
        lowmem_budget("1G", struct_page_bytes=40.0)
    with pytest.raises(ValueError):
        lowmem_budget("1G", struct_page_bytes=0)


def test_fixmap_must_not_reach_pkmap():
    with pytest.raises(ValueError, match="pkmap"):
        lowmem_budget("1G", nr_cpus=1024, km_type_nr=13)


def test_boot_page_tables():
    # pagetable_init(): PSE maps lowmem with large pages; PTE pages only for fixmap + pkmap
    # (+ one pmd page per 1 GB pgd entry with PAE); without PSE one PTE page per 4 MB / 2 MB
    assert lowmem_budget("1G", pae=False).boot_pagetable_bytes == 2 * PAGE
    assert lowmem_budget("1G", pae=True).boot_pagetable_bytes == 3 * PAGE
    assert lowmem_budget("1G", pae=False, pse=False).boot_pagetable_bytes == (224 + 2) * PAGE
    assert lowmem_budget("1G", pae=True, pse=False).boot_pagetable_bytes == (1 + 448 + 2) * PAGE


def test_frozen_dataclass_dict_and_table():
    b = lowmem_budget("64G", struct_page_bytes=64)
    assert isinstance(b, LowmemBudget)
    with pytest.raises(Exception):
        b.ram_bytes = 1
    d = b.to_dict()
    for key in ("lowmem_bytes", "mem_map_bytes", "lowmem_free_bytes", "bootable", "reason",
                "highmem_bytes", "mem_map_share", "max_bootable_ram_bytes", "pkmap_bytes",
                "fixmap_bytes", "vmalloc_bytes", "vmalloc_guard_bytes"):
        assert key in d
    assert all(not isinstance(v, (dict, list, tuple)) for v in d.values())
    text = b.table()
    assert "NOT BOOTABLE" in text and "mem_map" in text and "114.3%" in text
    lines = text.splitlines()
    rows = [ln for ln in lines if ln.startswith(("lowmem (direct map)", "vmalloc", "pkmap",
                                                "fixmap", "= kernel space"))]
    assert len({len(r) for r in rows}) == 1                   # aligned columns
    assert "bootable" == lowmem_budget("1G").table().splitlines()[-1]


def test_sweep_and_grid():
    rams = ["1G", "4G", "16G", "64G"]
    bs = lowmem_sweep(rams, pae=True, struct_page_bytes=64)
    assert [b.ram_bytes for b in bs] == [GB, 4 * GB, 16 * GB, 64 * GB]
    assert [b.bootable for b in bs] == [True, True, True, False]
    grid = lowmem_grid()
    assert grid.count("\n") == 1 + 6 * 2 * 4
    assert grid.count("n/a: above the 4 GiB") == 4 * 4         # 8..64 GB without PAE
    assert grid.count("**no**") == 1                            # 64 GB, PAE, 64 B


def test_max_bootable_ram_3g1g_64b():
    b = lowmem_budget("1G", pae=True, struct_page_bytes=64)
    room = 896 * MB - b.boot_pagetable_bytes
    assert b.max_bootable_ram_bytes == ((room - 1) // 64) * PAGE
    assert 55.9 * GB < b.max_bootable_ram_bytes < 56 * GB
    assert lowmem_budget("64G", pae=True, struct_page_bytes=48).max_bootable_ram_bytes == 64 * GB
    assert b.max_bootable_ram_uncapped_bytes == b.max_bootable_ram_bytes
    nonpae = lowmem_budget("1G", pae=False, struct_page_bytes=64)
    assert nonpae.max_bootable_ram_bytes == 4 * GB < nonpae.max_bootable_ram_uncapped_bytes


# --- invariants --------------------------------------------------------------------------

configs = st.fixed_dictionaries({
    "pae": st.booleans(),
    "split": st.sampled_from(sorted(SPLITS)),
    "struct_page_bytes": st.integers(1, 256),
    "nr_cpus": st.integers(1, 64),
    "km_type_nr": st.integers(0, 20),
    "pse": st.booleans(),
    "reserved": st.integers(0, 64 * MB),
}).filter(lambda c: not (c["pae"] and c["split"] == "3.5G/0.5G"))


def limit(cfg):
    return (64 * GB if cfg["pae"] else 4 * GB) // PAGE


@given(cfg=configs, data=st.data())
def test_invariants(cfg, data):
    pages = data.draw(st.integers(1, limit(cfg)))
    b = lowmem_budget(pages * PAGE, **cfg)
    assert sum(n for _, n in b.areas()) == b.kernel_space_bytes == (1 << 32) - b.page_offset
    assert sum(n for _, n in b.lowmem_areas()) == b.lowmem_bytes
    assert all(n >= 0 for name, n in b.areas())
    assert b.lowmem_bytes == min(pages * PAGE, max_direct_map_bytes(cfg["split"]))
    assert b.lowmem_bytes + b.highmem_bytes == pages * PAGE
    assert b.mem_map_bytes == pages * cfg["struct_page_bytes"]
    assert 8 * MB <= b.vmalloc_guard_bytes < 16 * MB
    above = b.kernel_space_bytes - b.lowmem_bytes
    assert above == b.vmalloc_reserve_bytes + b.max_direct_map_bytes - b.lowmem_bytes
    assert b.bootable == (b.lowmem_free_bytes > 0) == (b.reason == "")
    assert b.bootable == (b.ram_bytes <= b.max_bootable_ram_bytes) or \
        b.ram_bytes < b.max_direct_map_bytes      # below MAXMEM free lowmem grows with RAM


@given(cfg=configs, data=st.data())
def test_monotonic_in_ram(cfg, data):
    p1 = data.draw(st.integers(1, limit(cfg)))
    p2 = data.draw(st.integers(p1, limit(cfg)))
    a, b = lowmem_budget(p1 * PAGE, **cfg), lowmem_budget(p2 * PAGE, **cfg)
    assert a.mem_map_bytes <= b.mem_map_bytes
    assert a.lowmem_bytes <= b.lowmem_bytes
    assert a.highmem_bytes <= b.highmem_bytes
    assert a.mem_map_share <= b.mem_map_share + 1e-12
    if a.ram_bytes >= a.max_direct_map_bytes:
        assert a.lowmem_free_bytes >= b.lowmem_free_bytes
        assert a.bootable >= b.bootable


@given(cfg=configs)
def test_max_bootable_is_the_boundary(cfg):
    b = lowmem_budget("1M", **cfg)
    m = b.max_bootable_ram_bytes
    assert m == min(b.max_bootable_ram_uncapped_bytes, b.addressable_bytes)
    if m == 0:                 # nothing boots, not even RAM = MAXMEM where free lowmem peaks
        top = lowmem_budget(b.max_direct_map_bytes, **cfg)
        assert not top.bootable
        return
    assert m % PAGE == 0 and m <= b.addressable_bytes
    assert lowmem_budget(m, **cfg).bootable
    if m + PAGE <= b.addressable_bytes:
        assert not lowmem_budget(m + PAGE, **cfg).bootable


def test_docs_tables_are_the_code_output():
    # docs/lowmem.md pastes these outputs; regenerate the page if this fails
    import pathlib
    doc = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "lowmem.md").read_text()
    assert lowmem_grid() in doc
    from pyapi.lowmem import max_ram_grid
    assert max_ram_grid() in doc
    assert lowmem_budget("64G", pae=True, kernel="2.4.18").table() in doc
