"""The 32-bit x86 kernel virtual address space, and how much of lowmem ``mem_map`` eats.

A 32-bit Linux kernel maps physical RAM directly only up to ``MAXMEM`` (896 MB with the
3G/1G split); everything above is highmem and must be kmapped. ``mem_map``, one
``struct page`` per physical page *including highmem*, is allocated at boot out of that
direct-mapped lowmem. This module lays out the kernel's part of the 4 GB address space
(direct map, vmalloc guard hole, vmalloc area, pkmap area, fixmap area) for a given RAM
size and says how much lowmem is left once ``mem_map`` and the boot-time page tables
are paid for, or that the machine cannot boot at all.

Every constant is the 2.4 / 2.5.13 i386 kernel's (``specs/kmap.md`` section 4, checked
against ``include/asm-i386/fixmap.h``, ``pgtable.h``, ``arch/i386/kernel/setup.c`` and
``arch/i386/mm/init.c`` of 2.4.16); ``docs/lowmem.md`` gives the source of each area.

>>> b = lowmem_budget("64G", pae=True, struct_page_bytes=64)
>>> b.bootable, b.mem_map_bytes >> 20, b.lowmem_bytes >> 20
(False, 1024, 896)
>>> lowmem_budget("64G", pae=True, struct_page_bytes=48).lowmem_free_bytes >> 20
127
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Iterable, List, Optional, Sequence, Tuple

from pyapi.units import parse_size

__all__ = ["LowmemBudget", "lowmem_budget", "lowmem_sweep", "lowmem_grid", "max_ram_grid",
           "mem_map_bytes", "max_direct_map_bytes", "SPLITS", "KERNELS",
           "STRUCT_PAGE_BYTES"]

# --- constants (i386, 2.4.x / 2.5.13) ------------------------------------------------

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
_ADDRESS_SPACE = 1 << 32                #: 32-bit virtual address space
#: ``VMALLOC_RESERVE`` / ``__VMALLOC_RESERVE``: 128 MB kept above the direct map.
VMALLOC_RESERVE = 128 << 20
#: ``VMALLOC_OFFSET`` (include/asm-i386/pgtable.h): 8 MB; the hole after the direct map.
VMALLOC_OFFSET = 8 << 20
#: ``PKMAP_BASE`` of 2.4.x and 2.5.0-2.5.54 (include/asm-i386/highmem.h).
PKMAP_BASE = 0xFE000000
#: ``FIXADDR_TOP`` of 2.4.x and 2.5.13 (include/asm-i386/fixmap.h).
FIXADDR_TOP = 0xFFFFE000
#: ``MAX_IO_APICS`` (include/asm-i386/apicdef.h): fixmap slots FIX_IO_APIC_BASE_0..7.
MAX_IO_APICS = 8
#: First kmap_atomic fixmap index: after FIX_APIC_BASE and FIX_IO_APIC_BASE_0..7 (SMP
#: build with CONFIG_X86_LOCAL_APIC and CONFIG_X86_IO_APIC).
FIX_KMAP_BEGIN = 1 + MAX_IO_APICS
#: RAM a kernel without PAE can use: ``MAX_NONPAE_PFN = 1 << 20`` pages (setup.c).
NONPAE_LIMIT_BYTES = (1 << 20) << PAGE_SHIFT
#: RAM a PAE (CONFIG_HIGHMEM64G) kernel can use: 36-bit physical addresses.
PAE_LIMIT_BYTES = 64 << 30

#: User/kernel splits -> ``__PAGE_OFFSET``. 3G/1G is mainline; the others are the
#: CONFIG_05GB/2GB/3GB options of the -aa/-mjb trees and CONFIG_X86_4G_VM_LAYOUT of the
#: 4G/4G patch (include/asm-i386/page.h as quoted by M. Bligh, LKML 4 Aug 2004,
#: <210450000.1091647829@flay>). The 3.5G/0.5G split "depends on !HIGHMEM64G".
SPLITS = {
    "3.5G/0.5G": 0xE0000000,
    "3G/1G": 0xC0000000,
    "2G/2G": 0x80000000,
    "1G/3G": 0x40000000,
    "4G/4G": 0x02000000,
}
_NO_PAE_SPLITS = ("3.5G/0.5G",)


@dataclass(frozen=True)
class _Kernel:
    struct_page_bytes: int
    km_type_nr: int
    source: str


#: Kernel versions -> ``sizeof(struct page)`` on SMP i386 with HIGHMEM and
#: ``KM_TYPE_NR`` (``specs/kmap.md`` sections 4.3 and 3.2).
KERNELS = {
    "2.4.15": _Kernel(64, 5, "include/linux/mm.h, include/asm-i386/kmap_types.h [2.4.15]"),
    "2.4.16": _Kernel(64, 5, "include/linux/mm.h [2.4.16]; KM_TYPE_NR of 2.4.15"),
    "2.4.18": _Kernel(64, 5, "inferred: 2.4.16 layout, struct page shrink postdates 2.4.18"),
    "2.4.22": _Kernel(48, 9, "include/linux/mm.h [2.4.22]; KM_TYPE_NR of the 2.4.22-xfs tree"),
    "2.5.13": _Kernel(40, 8, "include/linux/mm.h, include/asm-i386/kmap_types.h [2.5.13]"),
    "2.6.12": _Kernel(32, 13, "include/linux/mm.h, include/asm-i386/kmap_types.h [2.6.12]"),
}
#: ``sizeof(struct page)`` by kernel version (bytes).
STRUCT_PAGE_BYTES = {name: k.struct_page_bytes for name, k in KERNELS.items()}
#: Without ``kernel=``: the tree of the seed thread (2.5.13, May 2002).
_DEFAULT_KERNEL = "2.5.13"
#: ``NR_CPUS`` of an SMP build in 2.4 / 2.5 (include/linux/threads.h).
_DEFAULT_NR_CPUS = 32

_MIB = 1 << 20


def _mib(n: int) -> str:
    return f"{n / _MIB:,.2f}"


def _hex(a: int) -> str:
    return f"0x{a:08X}"


def _split_offset(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return SPLITS[split]


def max_direct_map_bytes(split: str = "3G/1G") -> int:
    """``MAXMEM``: the most RAM the kernel maps directly (lowmem) with this split.

    ``MAXMEM = -PAGE_OFFSET - VMALLOC_RESERVE`` (arch/i386/kernel/setup.c, 2.4).

    >>> max_direct_map_bytes() >> 20, max_direct_map_bytes("4G/4G") >> 20
    (896, 3936)
    """
    return _ADDRESS_SPACE - _split_offset(split) - VMALLOC_RESERVE


def mem_map_bytes(ram, struct_page_bytes: int) -> int:
    """Bytes of ``mem_map`` for ``ram``: one ``struct page`` per 4 KB page frame.

    The formula of ``specs/kmap.md`` 4.3 (``pages * sizeof(struct page)``); the kernel
    asks ``alloc_bootmem_node`` for one entry more (``(totalpages + 1) * sizeof``).
    No addressing limit is applied here.

    >>> mem_map_bytes("64G", 64) >> 20, mem_map_bytes("1G", 32) >> 20
    (1024, 8)
    """
    pages = parse_size(ram, what="ram") >> PAGE_SHIFT
    s = _check_positive_int(struct_page_bytes, "struct_page_bytes")
    return pages * s


def _check_positive_int(value, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return value


def _boot_pagetable_pages(page_offset: int, high_memory: int, pae: bool, pse: bool,
                          fixmap_low: int, pkmap_base: int, pkmap_end: int) -> int:
    """Page-table pages ``pagetable_init()`` takes from bootmem (arch/i386/mm/init.c, 2.4).

    PAE: one pmd page per 1 GB pgd entry the direct map touches; without PSE one PTE page
    per pmd (4 MB, or 2 MB with PAE) of the direct map; then ``fixrange_init`` for the
    fixmap (from the pmd holding the lowest fixmap slot to the top) and for the pkmap
    area allocates the pmd/PTE pages still missing. ``swapper_pg_dir`` is static.
    """
    pgdir_size = (1 << 30) if pae else (4 << 20)
    pmd_size = (2 << 20) if pae else (4 << 20)
    pmd_pages = set()           # pgd indices given a pmd page (PAE only)
    pmds_set = set()            # pmd indices (address // pmd_size) already populated
    pte_pages = 0
    for pmd in range(page_offset // pmd_size, -(-high_memory // pmd_size)):
        if pae:
            pmd_pages.add(pmd * pmd_size // pgdir_size)
        pmds_set.add(pmd)
        if not pse:
            pte_pages += 1

    def fixrange(start: int, end: int) -> int:
        n = 0
        for pmd in range(start // pmd_size, -(-end // pmd_size)):
            if pae:
                pmd_pages.add(pmd * pmd_size // pgdir_size)
            if pmd not in pmds_set:
                pmds_set.add(pmd)
                n += 1
        return n

    pte_pages += fixrange(fixmap_low & ~(pmd_size - 1), _ADDRESS_SPACE)
    pte_pages += fixrange(pkmap_base, pkmap_end)
    return len(pmd_pages) + pte_pages


@dataclass(frozen=True)
class LowmemBudget:
    """The kernel virtual address space of one configuration, every area in bytes.

    Kernel space (``kernel_space_bytes = 4 GB - page_offset``) is, from ``page_offset``
    up: ``lowmem_bytes`` (direct map of RAM, ``min(RAM, MAXMEM)``),
    ``vmalloc_guard_bytes`` (``VMALLOC_OFFSET`` hole, 8-16 MB), ``vmalloc_bytes``,
    ``vmalloc_end_guard_bytes`` (2 pages), ``pkmap_bytes`` (``LAST_PKMAP`` pages),
    ``pkmap_fixmap_gap_bytes`` (unused), ``fixmap_bytes`` (``FIXADDR_SIZE``) and
    ``fixaddr_top_gap_bytes`` (``4 GB - FIXADDR_TOP``: fixmap slot 0 and one empty page).
    Lowmem in turn holds ``mem_map_bytes``, ``boot_pagetable_bytes``, ``reserved_bytes``
    (caller-supplied) and ``lowmem_free_bytes``, which is negative when they do not fit:
    then ``bootable`` is False and ``reason`` says why. ``max_bootable_ram_bytes`` is the
    most RAM (whole pages) this configuration boots with, at most ``addressable_bytes``;
    ``max_bootable_ram_uncapped_bytes`` the same without that cap (where mem_map alone
    would exhaust lowmem); 0 when no RAM size boots. ``vmalloc_reserve_bytes`` is the
    128 MB the kernel subtracts to get ``MAXMEM``; all areas above lowmem add up to it
    plus whatever part of ``MAXMEM`` the RAM does not fill.

    >>> b = lowmem_budget("1G", pae=False, kernel="2.4.18")
    >>> b.lowmem_bytes >> 20, b.highmem_bytes >> 20, b.mem_map_bytes >> 20
    (896, 128, 16)
    >>> round(100 * b.mem_map_share, 1), b.bootable
    (1.8, True)
    >>> sum(size for _, size in b.areas()) == b.kernel_space_bytes
    True
    """

    # configuration
    ram_bytes: int
    pages: int
    pae: bool
    split: str
    kernel: Optional[str]
    struct_page_bytes: int
    nr_cpus: int
    km_type_nr: int
    last_pkmap: int
    pse: bool
    # addresses
    page_offset: int
    high_memory: int
    vmalloc_start: int
    vmalloc_end: int
    pkmap_base: int
    fixaddr_start: int
    fixaddr_top: int
    # limits
    addressable_bytes: int
    max_direct_map_bytes: int
    vmalloc_reserve_bytes: int
    # areas of kernel space, bottom-up
    kernel_space_bytes: int
    lowmem_bytes: int
    vmalloc_guard_bytes: int
    vmalloc_bytes: int
    vmalloc_end_guard_bytes: int
    pkmap_bytes: int
    pkmap_fixmap_gap_bytes: int
    fixmap_bytes: int
    fixaddr_top_gap_bytes: int
    # what lowmem holds
    mem_map_bytes: int
    boot_pagetable_bytes: int
    reserved_bytes: int
    lowmem_free_bytes: int
    highmem_bytes: int
    bootable: bool
    reason: str
    max_bootable_ram_bytes: int
    max_bootable_ram_uncapped_bytes: int

    @property
    def mem_map_share(self) -> float:
        """``mem_map_bytes / lowmem_bytes`` (above 1.0 when mem_map cannot fit)."""
        return self.mem_map_bytes / self.lowmem_bytes

    @property
    def lowmem_free_share(self) -> float:
        """``lowmem_free_bytes / lowmem_bytes`` (negative when it does not boot)."""
        return self.lowmem_free_bytes / self.lowmem_bytes

    def kmap_atomic_address(self, cpu: int, km_type: int) -> int:
        """Virtual address of the fixmap slot ``kmap_atomic(page, km_type)`` uses on
        ``cpu``: ``__fix_to_virt(FIX_KMAP_BEGIN + km_type + KM_TYPE_NR * cpu)``.

        >>> hex(lowmem_budget("1G", kernel="2.4.18").kmap_atomic_address(0, 3))
        '0xffff2000'
        """
        cpu = _check_positive_int(cpu, "cpu", 0)
        km_type = _check_positive_int(km_type, "km_type", 0)
        if cpu >= self.nr_cpus or km_type >= self.km_type_nr:
            raise ValueError(f"slot (cpu {cpu}, km_type {km_type}) outside NR_CPUS="
                             f"{self.nr_cpus} x KM_TYPE_NR={self.km_type_nr}")
        idx = FIX_KMAP_BEGIN + km_type + self.km_type_nr * cpu
        return self.fixaddr_top - (idx << PAGE_SHIFT)

    def areas(self) -> List[Tuple[str, int]]:
        """``(name, bytes)`` of the areas of kernel space from ``page_offset`` up; they
        add up to ``kernel_space_bytes``.

        >>> [n for n, _ in lowmem_budget("4G").areas()][:3]
        ['lowmem (direct map)', 'vmalloc guard hole', 'vmalloc']
        """
        return [
            ("lowmem (direct map)", self.lowmem_bytes),
            ("vmalloc guard hole", self.vmalloc_guard_bytes),
            ("vmalloc", self.vmalloc_bytes),
            ("vmalloc end guard", self.vmalloc_end_guard_bytes),
            ("pkmap", self.pkmap_bytes),
            ("pkmap-fixmap gap", self.pkmap_fixmap_gap_bytes),
            ("fixmap", self.fixmap_bytes),
            ("above FIXADDR_TOP", self.fixaddr_top_gap_bytes),
        ]

    def lowmem_areas(self) -> List[Tuple[str, int]]:
        """``(name, bytes)`` of what lowmem holds; they add up to ``lowmem_bytes``
        (the free part is negative when the machine cannot boot).

        >>> [n for n, _ in lowmem_budget("4G").lowmem_areas()]
        ['mem_map', 'boot page tables', 'reserved', 'free']
        """
        return [
            ("mem_map", self.mem_map_bytes),
            ("boot page tables", self.boot_pagetable_bytes),
            ("reserved", self.reserved_bytes),
            ("free", self.lowmem_free_bytes),
        ]

    def to_dict(self) -> dict:
        """Flat dict of every field plus ``mem_map_share`` and ``lowmem_free_share``.

        >>> d = lowmem_budget("8G").to_dict()
        >>> d["mem_map_bytes"] >> 20, d["bootable"]
        (80, True)
        """
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["mem_map_share"] = self.mem_map_share
        out["lowmem_free_share"] = self.lowmem_free_share
        return out

    def table(self) -> str:
        """A readable, aligned text table: each area's bytes, MiB and share (of kernel
        space for the address-space areas, of lowmem for what lowmem holds).

        >>> print(lowmem_budget("64G", struct_page_bytes=64).table())  # doctest: +ELLIPSIS
        32-bit x86 kernel address space: RAM 64 GiB, 3G/1G split, PAE, struct page 64 B, ...
        <BLANKLINE>
        area                           bytes        MiB   share
        -------------------------------------------------------
        lowmem (direct map)      939,524,096     896.00   87.5%
        vmalloc guard hole         8,388,608       8.00    0.8%
        vmalloc                   92,266,496      87.99    8.6%
        ...
        = kernel space         1,073,741,824   1,024.00  100.0%
        <BLANKLINE>
        in lowmem                      bytes        MiB   share
        -------------------------------------------------------
        mem_map                1,073,741,824   1,024.00  114.3%
        ...
        NOT BOOTABLE: mem_map needs 1,024.00 MiB (16,777,216 pages x 64 B) ...
        """
        head = (f"32-bit x86 kernel address space: RAM {_ram_name(self.ram_bytes)}, "
                f"{self.split} split, {'PAE' if self.pae else 'no PAE'}, "
                f"struct page {self.struct_page_bytes} B, "
                f"{'kernel ' + self.kernel + ', ' if self.kernel else ''}"
                f"NR_CPUS {self.nr_cpus} x KM_TYPE_NR {self.km_type_nr}, "
                f"LAST_PKMAP {self.last_pkmap}, {'PSE' if self.pse else 'no PSE'}")
        rows = [(n, b, b / self.kernel_space_bytes) for n, b in self.areas()]
        rows.append(("= kernel space", self.kernel_space_bytes, 1.0))
        low = [(n, b, b / self.lowmem_bytes) for n, b in self.lowmem_areas()]
        low.append(("= lowmem", self.lowmem_bytes, 1.0))
        w = max(len(n) for n, _, _ in rows + low) + 2
        wb = max(len(f"{b:,}") for _, b, _ in rows + low) + 2
        hdr = f"{'area':<{w}}{'bytes':>{wb}}{'MiB':>11}{'share':>8}"
        rule = "-" * len(hdr)

        def fmt(n, b, s):
            return f"{n:<{w}}{b:>{wb},}{_mib(b):>11}{100 * s:>7.1f}%"
        lines = [head, "", hdr, rule] + [fmt(*r) for r in rows]
        lines += ["", f"{'in lowmem':<{w}}{'bytes':>{wb}}{'MiB':>11}{'share':>8}", rule]
        lines += [fmt(*r) for r in low]
        lines += ["", f"highmem: {_mib(self.highmem_bytes)} MiB; "
                  f"max RAM that boots with this configuration: "
                  f"{_mib(self.max_bootable_ram_bytes)} MiB"
                  + (f" ({_mib(self.max_bootable_ram_uncapped_bytes)} MiB without the "
                     f"{_ram_name(self.addressable_bytes)} addressing limit)"
                     if self.max_bootable_ram_uncapped_bytes > self.max_bootable_ram_bytes
                     else "")]
        lines.append("bootable" if self.bootable else "NOT BOOTABLE: " + self.reason)
        return "\n".join(lines)


def _ram_name(n: int) -> str:
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n:,} B"


def _layout(pages: int, pae: bool, split: str, s: int, nr_cpus: int, km: int,
            pse: bool, reserved: int) -> dict:
    """Every number of the budget for ``pages`` page frames (no limit checks)."""
    page_offset = SPLITS[split]
    kernel_space = _ADDRESS_SPACE - page_offset
    maxmem = kernel_space - VMALLOC_RESERVE
    max_low_pfn = min(pages, maxmem >> PAGE_SHIFT)
    lowmem = max_low_pfn << PAGE_SHIFT
    high_memory = page_offset + lowmem
    vmalloc_start = (high_memory + 2 * VMALLOC_OFFSET - 1) & ~(VMALLOC_OFFSET - 1)
    last_pkmap = 512 if pae else 1024
    pkmap_end = PKMAP_BASE + last_pkmap * PAGE_SIZE
    vmalloc_end = PKMAP_BASE - 2 * PAGE_SIZE
    end_of_fixed = FIX_KMAP_BEGIN + km * nr_cpus       # __end_of_fixed_addresses
    fixaddr_start = FIXADDR_TOP - (end_of_fixed << PAGE_SHIFT)
    if fixaddr_start < pkmap_end:
        raise ValueError(
            f"fixmap ({end_of_fixed} slots for NR_CPUS={nr_cpus} x KM_TYPE_NR={km}) "
            f"would reach down to {_hex(fixaddr_start)}, into the pkmap area ending at "
            f"{_hex(pkmap_end)}; at most {(FIXADDR_TOP - pkmap_end) // PAGE_SIZE} slots fit")
    lowest_slot = FIXADDR_TOP - ((end_of_fixed - 1) << PAGE_SHIFT)
    pt = _boot_pagetable_pages(page_offset, high_memory, pae, pse, lowest_slot,
                               PKMAP_BASE, pkmap_end) * PAGE_SIZE
    mem_map = pages * s
    free = lowmem - mem_map - pt - reserved
    return dict(
        page_offset=page_offset, high_memory=high_memory, vmalloc_start=vmalloc_start,
        vmalloc_end=vmalloc_end, pkmap_base=PKMAP_BASE, fixaddr_start=fixaddr_start,
        fixaddr_top=FIXADDR_TOP, max_direct_map_bytes=maxmem,
        vmalloc_reserve_bytes=VMALLOC_RESERVE, kernel_space_bytes=kernel_space,
        lowmem_bytes=lowmem, vmalloc_guard_bytes=vmalloc_start - high_memory,
        vmalloc_bytes=vmalloc_end - vmalloc_start,
        vmalloc_end_guard_bytes=PKMAP_BASE - vmalloc_end,
        pkmap_bytes=last_pkmap * PAGE_SIZE, pkmap_fixmap_gap_bytes=fixaddr_start - pkmap_end,
        fixmap_bytes=end_of_fixed << PAGE_SHIFT,
        fixaddr_top_gap_bytes=_ADDRESS_SPACE - FIXADDR_TOP, last_pkmap=last_pkmap,
        mem_map_bytes=mem_map, boot_pagetable_bytes=pt, reserved_bytes=reserved,
        lowmem_free_bytes=free, highmem_bytes=(pages - max_low_pfn) << PAGE_SHIFT,
        bootable=free > 0)


def _max_bootable(pae: bool, split: str, s: int, nr_cpus: int, km: int, pse: bool,
                  reserved: int) -> int:
    """Largest RAM (whole pages) that boots, ignoring what the mode can address. Free
    lowmem rises with RAM up to MAXMEM (each page adds 4096 - s bytes) and falls after
    (each page costs s), so it is largest at RAM = MAXMEM: if nothing boots there,
    nothing boots at all (0)."""
    maxmem_pages = max_direct_map_bytes(split) >> PAGE_SHIFT
    at = _layout(maxmem_pages, pae, split, s, nr_cpus, km, pse, reserved)
    if not at["bootable"]:
        return 0
    room = at["lowmem_bytes"] - at["boot_pagetable_bytes"] - reserved
    return ((room - 1) // s) << PAGE_SHIFT


def _reason(lay: dict, pages: int, s: int, split: str) -> str:
    """Why a layout does not boot, in numbers."""
    parts = [f"mem_map needs {_mib(lay['mem_map_bytes'])} MiB ({pages:,} pages x {s} B)"]
    if lay["boot_pagetable_bytes"]:
        parts.append(f"boot page tables {_mib(lay['boot_pagetable_bytes'])} MiB")
    if lay["reserved_bytes"]:
        parts.append(f"reserved {_mib(lay['reserved_bytes'])} MiB")
    need = lay["mem_map_bytes"] + lay["boot_pagetable_bytes"] + lay["reserved_bytes"]
    return (" + ".join(parts)
            + f" = {_mib(need)} MiB, but lowmem (the {split} direct map) is only "
            f"{_mib(lay['lowmem_bytes'])} MiB: short by {_mib(-lay['lowmem_free_bytes'])} MiB, "
            f"so alloc_bootmem_node() of mem_map fails at boot (\"bootmem alloc of "
            f"{(pages + 1) * s} bytes failed!\", panic \"Out of memory\")")


def lowmem_budget(ram="64G", pae: bool = True, struct_page_bytes: Optional[int] = None,
                  kernel: Optional[str] = None, split: str = "3G/1G", *,
                  nr_cpus: int = _DEFAULT_NR_CPUS, km_type_nr: Optional[int] = None,
                  pse: bool = True, reserved=0) -> LowmemBudget:
    """Lay out the 32-bit kernel address space for ``ram`` and budget its lowmem.

    Parameters
    ----------
    ram : int or str
        Physical RAM, ``"64G"`` or bytes (``pyapi.units.parse_size``); whole 4 KB pages
        count (``PFN_DOWN``). At most 4 GB without PAE, 64 GB with (ValueError above).
    pae : bool
        CONFIG_HIGHMEM64G (PAE, ``LAST_PKMAP`` 512) or CONFIG_HIGHMEM4G (1024).
    struct_page_bytes : int, optional
        ``sizeof(struct page)``; overrides the kernel's. Default: the ``kernel``'s,
        else 40 (2.5.13).
    kernel : str, optional
        One of ``KERNELS`` ("2.4.15", "2.4.16", "2.4.18", "2.4.22", "2.5.13",
        "2.6.12"): picks ``sizeof(struct page)`` and ``KM_TYPE_NR``. Without it, 2.5.13's
        values are used. The address layout above lowmem is 2.4's for every version.
    split : str
        One of ``SPLITS``: "3G/1G" (mainline), "3.5G/0.5G" (no PAE), "2G/2G", "1G/3G",
        "4G/4G" (``PAGE_OFFSET`` 0x02000000).
    nr_cpus, km_type_nr : int
        Size of the kmap_atomic part of the fixmap (``KM_TYPE_NR * NR_CPUS`` slots).
    pse : bool
        Direct map with 4 MB / 2 MB pages (no PTE pages for lowmem) as every PSE CPU does.
    reserved : int or str
        Other lowmem set aside (kernel image, NUMA KVA remap, ...); default 0.

    Raises ValueError for an unknown kernel or split (listing the valid ones), RAM beyond
    what the mode addresses, or a fixmap that would overlap the pkmap area.

    >>> b = lowmem_budget("32G", pae=True, kernel="2.4.22")
    >>> b.struct_page_bytes, b.mem_map_bytes >> 20, b.lowmem_free_bytes >> 20
    (48, 384, 511)
    >>> b.max_bootable_ram_bytes >> 30
    64
    >>> lowmem_budget("8G", pae=False)
    Traceback (most recent call last):
    ...
    ValueError: ram 8 GiB is more than a kernel without PAE can address: 4 GiB (MAX_NONPAE_PFN = 1 << 20 pages); use pae=True
    """
    if kernel is not None and kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; valid kernels: {', '.join(KERNELS)}")
    _split_offset(split)
    if not isinstance(pae, bool):
        raise TypeError(f"pae must be True or False, not {pae!r}")
    if not isinstance(pse, bool):
        raise TypeError(f"pse must be True or False, not {pse!r}")
    if pae and split in _NO_PAE_SPLITS:
        raise ValueError(f"split {split!r} is not available with PAE "
                         f"(CONFIG_05GB depends on !HIGHMEM64G); use pae=False")
    facts = KERNELS[kernel if kernel is not None else _DEFAULT_KERNEL]
    s = facts.struct_page_bytes if struct_page_bytes is None else struct_page_bytes
    s = _check_positive_int(s, "struct_page_bytes")
    km = facts.km_type_nr if km_type_nr is None else km_type_nr
    km = _check_positive_int(km, "km_type_nr", 0)
    nr_cpus = _check_positive_int(nr_cpus, "nr_cpus")
    ram_bytes = parse_size(ram, what="ram")
    reserved = parse_size(reserved, what="reserved")
    pages = ram_bytes >> PAGE_SHIFT
    if pages == 0:
        raise ValueError(f"ram must be at least one page ({PAGE_SIZE} bytes), got {ram_bytes}")
    limit = PAE_LIMIT_BYTES if pae else NONPAE_LIMIT_BYTES
    if ram_bytes > limit:
        if pae:
            raise ValueError(f"ram {_ram_name(ram_bytes)} is more than a PAE kernel can "
                             f"address: {_ram_name(limit)} (36-bit physical addresses)")
        raise ValueError(f"ram {_ram_name(ram_bytes)} is more than a kernel without PAE can "
                         f"address: {_ram_name(limit)} (MAX_NONPAE_PFN = 1 << 20 pages); "
                         f"use pae=True")
    lay = _layout(pages, pae, split, s, nr_cpus, km, pse, reserved)
    uncapped = _max_bootable(pae, split, s, nr_cpus, km, pse, reserved)
    reason = "" if lay["bootable"] else _reason(lay, pages, s, split)
    return LowmemBudget(
        ram_bytes=ram_bytes, pages=pages, pae=pae, split=split, kernel=kernel,
        struct_page_bytes=s, nr_cpus=nr_cpus, km_type_nr=km, pse=pse,
        addressable_bytes=limit, reason=reason,
        max_bootable_ram_bytes=min(uncapped, limit), max_bootable_ram_uncapped_bytes=uncapped,
        **lay)


def lowmem_sweep(rams: Iterable, pae: bool = True, struct_page_bytes: Optional[int] = None,
                 **kwargs) -> List[LowmemBudget]:
    """One ``lowmem_budget`` per RAM size (other arguments as ``lowmem_budget``).

    >>> budgets = lowmem_sweep(["16G", "32G", "64G"], struct_page_bytes=64)
    >>> [b.lowmem_free_bytes >> 20 for b in budgets], [b.bootable for b in budgets]
    ([639, 383, -129], [True, True, False])
    """
    return [lowmem_budget(r, pae=pae, struct_page_bytes=struct_page_bytes, **kwargs)
            for r in rams]


def lowmem_grid(rams: Sequence = ("1G", "4G", "8G", "16G", "32G", "64G"),
                pae_modes: Sequence[bool] = (False, True),
                struct_page_sizes: Sequence[int] = (64, 48, 40, 32),
                split: str = "3G/1G", **kwargs) -> str:
    """A Markdown table of budgets over RAM x PAE x ``sizeof(struct page)``; rows whose
    RAM the mode cannot address say so instead of failing.

    >>> print(lowmem_grid(["64G"], [True], [64]))  # doctest: +NORMALIZE_WHITESPACE
    | RAM | PAE | struct page | lowmem MiB | mem_map MiB | mem_map share | boot PT KiB | free lowmem MiB | highmem MiB | boots |
    |---|---|---|---|---|---|---|---|---|---|
    | 64 GiB | yes | 64 B | 896 | 1,024 | 114.3% | 12 | -128.0 | 64,640 | **no** (boots up to 57,343 MiB) |
    """
    head = ("| RAM | PAE | struct page | lowmem MiB | mem_map MiB | mem_map share | "
            "boot PT KiB | free lowmem MiB | highmem MiB | boots |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for ram in rams:
        for pae in pae_modes:
            for s in struct_page_sizes:
                ram_b = parse_size(ram, what="ram")
                label = f"| {_ram_name(ram_b)} | {'yes' if pae else 'no'} | {s} B |"
                limit = PAE_LIMIT_BYTES if pae else NONPAE_LIMIT_BYTES
                if ram_b > limit:
                    lines.append(f"{label} — | — | — | — | — | — | n/a: above the "
                                 f"{_ram_name(limit)} a non-PAE kernel addresses |")
                    continue
                b = lowmem_budget(ram_b, pae=pae, struct_page_bytes=s, split=split, **kwargs)
                boots = ("yes" if b.bootable else
                         f"**no** (boots up to {b.max_bootable_ram_bytes >> 20:,} MiB)")
                lines.append(
                    f"{label} {b.lowmem_bytes >> 20:,} | {b.mem_map_bytes / _MIB:,.0f} | "
                    f"{100 * b.mem_map_share:.1f}% | {b.boot_pagetable_bytes >> 10:,} | "
                    f"{b.lowmem_free_bytes / _MIB:,.1f} | {b.highmem_bytes / _MIB:,.0f} | "
                    f"{boots} |")
    return "\n".join(lines)


def max_ram_grid(struct_page_sizes: Sequence[int] = (64, 48, 40, 32), **kwargs) -> str:
    """A Markdown table, per split and PAE mode, of the most RAM whose ``mem_map`` still
    leaves free lowmem (``max_bootable_ram_uncapped_bytes``), with the mode's addressing
    limit noted where it is lower. Other arguments as ``lowmem_budget``.

    >>> print(max_ram_grid([64, 48]).splitlines()[4])
    | 3G/1G | yes | 0xC0000000 | 896 | 57,343 MiB | 76,457 MiB (capped: 64 GiB) |
    """
    head = ("| split | PAE | PAGE_OFFSET | MAXMEM MiB | "
            + " | ".join(f"{s} B struct page" for s in struct_page_sizes) + " |")
    lines = [head, "|---|---|---|---|" + "---|" * len(struct_page_sizes)]
    for split in SPLITS:
        for pae in (False, True):
            if pae and split in _NO_PAE_SPLITS:
                continue
            cells = []
            for s in struct_page_sizes:
                b = lowmem_budget(PAGE_SIZE, pae=pae, split=split, struct_page_bytes=s,
                                  **kwargs)
                u = b.max_bootable_ram_uncapped_bytes
                cell = f"{u >> 20:,} MiB"
                if b.max_bootable_ram_bytes < u:
                    cell += f" (capped: {_ram_name(b.max_bootable_ram_bytes)})"
                cells.append(cell)
            lines.append(f"| {split} | {'yes' if pae else 'no'} | {_hex(SPLITS[split])} | "
                         f"{max_direct_map_bytes(split) >> 20:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
