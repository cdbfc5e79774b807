"""x86 page tables in their architectural formats, the page walk, paging-structure
caches and demand paging.

The engine behind it is ``mmucore.pagetable`` (typed Cython); this module validates
arguments once per call (the table is unchanged when anything is wrong), converts units
and hands whole arrays to one ``nogil`` call. ``docs/pagetable.md`` states the semantics
with the Intel SDM sections they come from.

>>> import numpy as np
>>> pt = PageTable("x86_64")
>>> pt.map(0x400000, 8192)
2
>>> r = pt.walk(np.array([0x400010, 0x402000], dtype=np.uint64))
>>> [hex(f) for f in r.fault], r.refs.tolist()      # a user read of a missing page
(['0x0', '0x40000004'], [4, 4])
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, NamedTuple, Optional

import numpy as np

from mmucore._types import OPS, POLICIES
from mmucore.pagetable import (ENTRY_BITS, ENTRY_PADDR_NONE, FAULT_BITS, FAULT_OUTSIDE,
                               MODES, PageTableCore)
from pyapi.units import PAGE_SIZES, page_size_code, page_size_name, parse_size

__all__ = ["PageTable", "PageTableStats", "WalkResult", "Mapping", "MODE_NAMES",
           "FAULT_P", "FAULT_W", "FAULT_U", "FAULT_RSVD", "FAULT_I", "FAULT_PF",
           "FAULT_OUTSIDE",
           "ENTRY_PADDR_NONE", "decode_entry"]

#: Paging modes.
MODE_NAMES = tuple(MODES)
#: Page-fault error-code bits (SDM 4.7); ``FAULT_OUTSIDE`` marks an address outside the
#: mode's linear-address space (a #GP, not a #PF: no walk happens).
FAULT_P, FAULT_W, FAULT_U = FAULT_BITS["P"], FAULT_BITS["W"], FAULT_BITS["U"]
FAULT_RSVD, FAULT_I = FAULT_BITS["RSVD"], FAULT_BITS["I"]
#: Not architectural: set in every page-fault result, so that a fault is never 0 (the
#: architectural code of a supervisor read of a not-present page is 0). For a result
#: with ``fault & FAULT_PF``, ``fault & 0xFFFF`` is the SDM error code; ``FAULT_OUTSIDE``
#: results are not page faults (their low bits are 0: test ``fault != 0`` for "faulted").
FAULT_PF = FAULT_BITS["PF"]

_P, _RW, _US, _PWT, _PCD = (ENTRY_BITS[k] for k in ("P", "RW", "US", "PWT", "PCD"))
_A, _D, _PS, _G, _NX = (ENTRY_BITS[k] for k in ("A", "D", "PS", "G", "NX"))
_CODE_BYTES = {page_size_code(n): b for n, b in PAGE_SIZES.items()}
_SIZES_OF_MODE = {"x86_32": ("4K", "4M"), "pae": ("4K", "2M"), "x86_64": ("4K", "2M", "1G"),
                  "la57": ("4K", "2M", "1G")}
_DEFAULT_MAXPHYADDR = {"x86_32": 32, "pae": 36, "x86_64": 52, "la57": 52}
_LEVEL_NAMES = {"x86_32": ("PTE", "PDE"), "pae": ("PTE", "PDE", "PDPTE"),
                "x86_64": ("PTE", "PDE", "PDPTE", "PML4E"),
                "la57": ("PTE", "PDE", "PDPTE", "PML4E", "PML5E")}
#: ChampSim's default PSC geometry (entries, ways) by level: PDE 4x8, PDPTE 2x4,
#: PML4E 1x4, PML5E 1x2 (specs/hardware.md: no CPU documents its PSC sizes).
PSC_DEFAULT = {1: (32, 8), 2: (8, 4), 3: (4, 4), 4: (2, 2)}
_OPS = {"load": OPS["LOAD"], "store": OPS["STORE"], "ifetch": OPS["IFETCH"],
        "modify": OPS["MODIFY"]}
_ACCESS = {"load": 0, "store": FAULT_BITS["W"], "modify": FAULT_BITS["W"],
           "ifetch": FAULT_BITS["I"]}
_HUGE = {"never": 0, "thp": 1, "always": 2}
_ALLOCATORS = {"sequential": 0, "random": 1}
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class PageTableStats:
    """Cumulative counters. Lists are indexed by level (0 = PTE, 1 = PDE, ...) or, for
    ``translations``/``minor_faults``, by page size (``"4K"``, ``"2M"``, ``"4M"``,
    ``"1G"`` keys).

    ``accesses`` walk requests; ``walks`` page walks done (a demand fault walks twice);
    ``refs`` entries read per level; ``psc_hits``/``psc_misses`` per cached level;
    faults by kind; ``minor_faults`` demand-paging faults handled, by size mapped;
    ``huge_fallbacks`` demand faults that got a smaller page than the policy wanted
    (no free 2M/1G frame); ``pdpte_loads`` PAE PDPTE-register loads (4 reads each);
    ``tables`` page-table pages allocated; ``frames_allocated`` 4K frames handed out.

    >>> import numpy as np
    >>> pt = PageTable("x86_64")
    >>> _ = pt.map(0x200000, 2 << 20, page_size="2M")
    >>> _ = pt.walk(np.array([0x200123, 0x800000], dtype=np.uint64))
    >>> s = pt.stats
    >>> s.walks, s.translations, s.faults_not_present, s.refs
    (2, {'2M': 1}, 1, [0, 2, 2, 2])
    """

    accesses: int = 0
    walks: int = 0
    refs: List[int] = field(default_factory=list)
    psc_hits: List[int] = field(default_factory=list)
    psc_misses: List[int] = field(default_factory=list)
    translations: dict = field(default_factory=dict)
    faults_not_present: int = 0
    faults_protection: int = 0
    faults_reserved: int = 0
    faults_outside: int = 0
    minor_faults: dict = field(default_factory=dict)
    huge_fallbacks: int = 0
    pdpte_loads: int = 0
    tables: int = 0
    frames_allocated: int = 0

    @property
    def walk_refs(self) -> int:
        """Memory references of all walks."""
        return sum(self.refs)

    @property
    def faults(self) -> int:
        return (self.faults_not_present + self.faults_protection + self.faults_reserved
                + self.faults_outside)

    def to_dict(self) -> dict:
        return asdict(self)


class WalkResult(NamedTuple):
    """Per-access outputs of ``PageTable.walk``: ``paddr`` (uint64, 0 on a fault),
    ``fault`` (uint32, 0 = translated; a page fault is ``FAULT_PF`` (0x40000000, not
    architectural) | the SDM 4.7 error code in the low bits, so a supervisor read of a
    not-present page is ``0x40000000``, not 0; ``FAULT_OUTSIDE`` (0x80000000) is an
    address outside the linear-address space, a #GP), ``refs`` (uint8 entries read,
    both walks of a demand fault), ``page_size`` (uint64 bytes, 0 on a fault) and, with
    ``record=True``, ``entry_paddrs`` (n x levels uint64, physical address of each entry
    the last walk read, top-down, padded with ``ENTRY_PADDR_NONE``).

    >>> import numpy as np
    >>> pt = PageTable("x86_64")
    >>> _ = pt.map(0x200000, 2 << 20, page_size="2M")
    >>> r = pt.walk(np.array([0x200123, 0x800000], dtype=np.uint64))
    >>> [hex(p) for p in r.paddr], r.fault & 0xFFFF, r.refs, r.page_size
    (['0x200123', '0x0'], array([0, 4], dtype=uint32), array([3, 3], dtype=uint8), array([2097152,       0], dtype=uint64))
    """

    paddr: np.ndarray
    fault: np.ndarray
    refs: np.ndarray
    page_size: np.ndarray
    entry_paddrs: Optional[np.ndarray] = None


class Mapping(NamedTuple):
    """A mapped range: pages of one size with consecutive frames and the same flags.

    >>> pt = PageTable("x86_64")
    >>> _ = pt.map(0x200000, 2 << 20, page_size="2M")
    >>> m = pt.mappings()[0]
    >>> hex(m.vaddr), m.size, m.page_size, m.pfn, m.flags["writable"]
    ('0x200000', 2097152, 2097152, 512, True)
    """

    vaddr: int
    size: int
    page_size: int
    pfn: int
    flags: dict


def decode_entry(value: int, mode: str, level: int) -> dict:
    """The fields of a raw entry of ``mode`` at ``level`` (0 = PTE), by name.

    ``frame`` is the physical address the entry points at (page or table).

    >>> d = decode_entry(0x80000000_12345067, "x86_64", 0)
    >>> d["present"], d["writable"], d["user"], d["accessed"], d["dirty"], d["nx"]
    (True, True, True, True, True, True)
    >>> hex(d["frame"])
    '0x12345000'
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODE_NAMES)}")
    value = int(value)
    leaf_levels = {"x86_32": (1,), "pae": (1,)}.get(mode, (1, 2))
    pdpte_reg = mode == "pae" and level == 2
    large = level in leaf_levels and bool(value & _PS)
    leaf = level == 0 or large
    maxphy = 40 if mode == "x86_32" else 52
    if mode == "x86_32":
        if large:
            frame = (value & 0xFFC00000) | (((value >> 13) & 0xFF) << 32)
        else:
            frame = value & 0xFFFFF000
    else:
        mask = ((1 << maxphy) - 1) & ~0xFFF
        frame = value & mask
        if large:
            frame &= ~((1 << (12 + 9 * level)) - 1)
    out = {"present": bool(value & _P), "pwt": bool(value & _PWT), "pcd": bool(value & _PCD),
           "frame": frame, "leaf": leaf, "page_size": 0}
    if not pdpte_reg:
        out.update(writable=bool(value & _RW), user=bool(value & _US),
                   accessed=bool(value & _A))
    if leaf:
        out.update(dirty=bool(value & _D), global_=bool(value & _G))
        out["page_size"] = 1 << (12 + (10 if mode == "x86_32" else 9) * level)
    if mode != "x86_32" and not pdpte_reg:
        out["nx"] = bool(value >> 63)
    return out


class PageTable:
    """One address space's page tables in a real x86 format.

    Parameters
    ----------
    mode : {"x86_32", "pae", "x86_64", "la57"}
        Paging mode: 2 levels of 4-byte entries with 4K/4M pages (CR4.PSE=1), PAE (3
        levels, 4K/2M), 4-level (4K/2M/1G) or 5-level paging.
    maxphyaddr : int, optional
        Physical-address width (default 32 for x86_32, 36 for pae, 52 otherwise).
        Entry bits at and above it (up to bit 51, or 62 in PAE) are reserved.
    phys_mem : int or str, default "4G"
        Simulated physical memory (``"4G"``, bytes...): frames for page tables and, with
        ``pfn=None``/demand paging, data pages; explicit ``map(pfn=...)`` frames inside
        it are reserved. Running out raises ``MemoryError``.
        In ``x86_32`` page tables and 4K pages come from frames below 4 GiB (32-bit
        entries), so more than 4 GiB only serves 4M pages (PSE-36).
    allocator : {"sequential", "random"}
        How frames are chosen (``docs/pagetable.md``); ``seed`` seeds ``random``.
    demand : bool
        Demand paging: an access to an unmapped page maps one (a minor fault) and
        walks again. ``huge_pages`` picks its size: ``"never"`` (4K), ``"thp"`` (2M, or
        4M in x86_32, when the aligned region has no page table yet), ``"always"``
        (the largest such size, 1G included). Demand-mapped pages are user, writable,
        executable unless ``demand_user``/``demand_writable``/``demand_nx`` say otherwise.
    nx : bool, optional
        IA32_EFER.NXE (default True for pae/x86_64/la57; x86_32 has no XD bit).
    wp, smep, smap : bool
        CR0.WP (default True), CR4.SMEP and CR4.SMAP (default False).
    psc : None, "default" or dict
        Paging-structure caches: ``None`` (none), ``"default"`` (``PSC_DEFAULT`` for the
        levels the mode has), or ``{level: (entries, ways)}`` with level 1 = PDE cache,
        2 = PDPTE, 3 = PML4E, 4 = PML5E (also by name: ``"pde"`` ...). PAE's PDPTEs are
        registers, so PAE and x86_32 have a PDE cache only.
    psc_policy : str
        Replacement policy of the PSCs (those of ``pyapi.TLB``).

    Examples
    --------
    >>> import numpy as np
    >>> pt = PageTable("x86_64", psc="default")
    >>> pt.map(0x40000000, 1 << 30, page_size="1G")
    1
    >>> pt.map(0x200000, 0x200000, page_size="2M", writable=False)
    1
    >>> r = pt.walk(np.array([0x40001234, 0x200000], dtype=np.uint64), op="store")
    >>> (r.fault & 0xFFFF).tolist(), r.page_size.tolist()   # a write to read-only: P|W|U
    ([0, 7], [1073741824, 0])
    """

    def __init__(self, mode: str = "x86_64", *, maxphyaddr: Optional[int] = None,
                 phys_mem="4G", allocator: str = "sequential", seed: int = 0,
                 demand: bool = False, huge_pages: str = "never",
                 demand_user: bool = True, demand_writable: bool = True,
                 demand_nx: bool = False, nx: Optional[bool] = None, wp: bool = True,
                 smep: bool = False, smap: bool = False, psc=None, psc_policy: str = "lru"):
        if not isinstance(mode, str) or mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(MODE_NAMES)}")
        self._mode = mode
        if maxphyaddr is None:
            maxphyaddr = _DEFAULT_MAXPHYADDR[mode]
        if isinstance(maxphyaddr, bool) or not isinstance(maxphyaddr, (int, np.integer)):
            raise TypeError(f"maxphyaddr must be an integer, got {maxphyaddr!r}")
        lo, hi = (32, 40) if mode == "x86_32" else (32, 52)
        if not lo <= maxphyaddr <= hi:
            raise ValueError(f"maxphyaddr={maxphyaddr} is outside {lo}..{hi} for {mode}")
        nbytes = parse_size(phys_mem, what="phys_mem")
        if nbytes < 4096 or nbytes % 4096:
            raise ValueError(f"phys_mem={phys_mem!r} must be a positive multiple of 4K")
        if nbytes > (1 << maxphyaddr) or nbytes >= (1 << 44):
            raise ValueError(f"phys_mem={phys_mem!r} is larger than 2**{maxphyaddr} bytes "
                             f"(MAXPHYADDR) or than the model's 16T limit")
        if allocator not in _ALLOCATORS:
            raise ValueError(f"allocator {allocator!r} is not one of "
                             f"{', '.join(_ALLOCATORS)}")
        if huge_pages not in _HUGE:
            raise ValueError(f"huge_pages {huge_pages!r} is not one of {', '.join(_HUGE)}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if nx is None:
            nx = mode != "x86_32"
        if nx and mode == "x86_32":
            raise ValueError("nx=True needs PAE or IA-32e paging: 32-bit paging has no XD bit")
        if demand_nx and not nx:
            raise ValueError("demand_nx=True needs nx=True (IA32_EFER.NXE)")
        if psc_policy not in POLICIES:
            raise ValueError(f"psc_policy {psc_policy!r} is not one of {', '.join(POLICIES)}")
        pscs = self._psc_levels(psc, mode)
        if nbytes // 4096 < 5:
            raise ValueError(f"phys_mem={phys_mem!r} has no room for the root tables")
        self._core = PageTableCore(MODES[mode], int(maxphyaddr), nbytes // 4096,
                                   _ALLOCATORS[allocator], int(seed) & _U64, bool(nx),
                                   bool(wp), bool(smep), bool(smap))
        for level, (entries, ways) in sorted(pscs.items()):
            self._core.psc_init(level, entries // ways, ways, POLICIES[psc_policy],
                                int(seed) & _U64)
        self._psc = pscs
        flags = _P | (_RW if demand_writable else 0) | (_US if demand_user else 0) \
            | (_NX if demand_nx else 0)
        self._core.set_demand(bool(demand), _HUGE[huge_pages], flags)
        self._demand = bool(demand)
        self._huge = huge_pages
        self._allocator = allocator
        self._phys = nbytes
        self._sizes = {page_size_code(s): s for s in _SIZES_OF_MODE[mode]}
        self._leaf_level = self._core.leaf_levels()

    @staticmethod
    def _psc_levels(psc, mode) -> dict:
        levels = len(_LEVEL_NAMES[mode])
        allowed = [1] if mode in ("x86_32", "pae") else list(range(1, levels))
        if psc is None or psc is False:
            return {}
        if isinstance(psc, str):
            if psc != "default":
                raise ValueError(f"psc={psc!r}: use None, 'default' or {{level: (entries, ways)}}")
            return {L: PSC_DEFAULT[L] for L in allowed}
        if not isinstance(psc, dict):
            raise TypeError(f"psc must be None, 'default' or a dict, not {type(psc).__name__}")
        names = {"pde": 1, "pdpte": 2, "pml4e": 3, "pml5e": 4}
        out = {}
        for key, geo in psc.items():
            level = names.get(key.lower(), key) if isinstance(key, str) else key
            if level not in allowed:
                raise ValueError(f"psc level {key!r} does not exist in {mode} "
                                 f"(levels with a cache: {allowed})")
            try:
                entries, ways = (int(geo), int(geo)) if np.ndim(geo) == 0 else map(int, geo)
            except (TypeError, ValueError):
                raise ValueError(f"psc[{key!r}] = {geo!r}: give (entries, ways)") from None
            if entries < 1 or ways < 1 or entries % ways:
                raise ValueError(f"psc[{key!r}] = {geo!r}: entries must be a positive "
                                 f"multiple of ways")
            out[level] = (entries, ways)
        return out

    # ------------------------------------------------------------------ properties
    @property
    def mode(self) -> str:
        return self._mode

    @property
    def levels(self) -> int:
        """Paging-structure levels (PAE: 3, with the PDPTEs in registers)."""
        return self._core.levels

    @property
    def level_names(self) -> tuple:
        """Entry names by level, 0 first: ("PTE", "PDE", ...)."""
        return _LEVEL_NAMES[self._mode]

    @property
    def page_sizes(self) -> tuple:
        """Page sizes the mode maps, in bytes."""
        return tuple(_CODE_BYTES[c] for c in sorted(self._sizes))

    @property
    def maxphyaddr(self) -> int:
        return self._core.maxphyaddr

    @property
    def cr3(self) -> int:
        """Physical address of the root table (the PDPT in PAE)."""
        return self._core.cr3

    @property
    def pdpte(self) -> list:
        """PAE: the four PDPTE registers (as loaded at the last CR3 load)."""
        return self._core.pdpte

    @property
    def phys_mem(self) -> int:
        return self._phys

    @property
    def free_frames(self) -> int:
        return self._core.free_frames

    @property
    def psc(self) -> dict:
        """{level: (entries, ways)} of the paging-structure caches."""
        return dict(self._psc)

    @property
    def core(self) -> PageTableCore:
        """The engine object (``mmucore.pagetable.PageTableCore``) for Cython consumers."""
        return self._core

    @property
    def stats(self) -> PageTableStats:
        """Cumulative counters since construction or ``reset_stats()``."""
        c = self._core.counters()
        names = {code: page_size_name(b) for code, b in _CODE_BYTES.items()}
        c["translations"] = {names[i]: v for i, v in enumerate(c["translations"]) if v}
        c["minor_faults"] = {names[i]: v for i, v in enumerate(c["minor_faults"]) if v}
        return PageTableStats(**c)

    def psc_stats(self) -> dict:
        """{level name: counters of that PSC} (hits, misses, fills, evictions, ...)."""
        return {self.level_names[L]: self._core.psc_counters(L) for L in sorted(self._psc)}

    def reset_stats(self) -> None:
        self._core.reset_counters()

    def __repr__(self) -> str:
        return (f"PageTable({self._mode!r}, maxphyaddr={self.maxphyaddr}, "
                f"phys_mem={self._phys}, demand={self._demand})")

    # ------------------------------------------------------------------ validation helpers
    def _size_code(self, page_size) -> int:
        code = page_size_code(page_size)
        if code not in self._sizes:
            raise ValueError(f"page_size {page_size!r} is not supported by {self._mode} "
                             f"(it maps {', '.join(self._sizes.values())})")
        return code

    def _va_ok(self, va: int) -> bool:
        bits = self._core.va_bits
        if bits == 32:
            return 0 <= va < (1 << 32)
        top = va >> (bits - 1)
        return top == 0 or top == (1 << (65 - bits)) - 1

    @staticmethod
    def _u64(x, name) -> np.ndarray:
        """An int, a sequence of ints or a 1-D integer array -> a uint64 array."""
        if isinstance(x, str):
            x = parse_size(x, what=name)
        if isinstance(x, (bool, np.bool_)):
            raise TypeError(f"{name} must be an integer, not {x!r}")
        if isinstance(x, np.ndarray):
            if x.ndim != 1 or x.dtype.kind not in "ui":
                raise TypeError(f"{name} must be an integer or a 1-D integer array, "
                                f"got {x.dtype} of shape {x.shape}")
            if x.dtype.kind == "i" and x.size and x.min() < 0:
                i = int(np.argmin(x))
                raise ValueError(f"{name}[{i}] = {x[i]} is outside 0..2**64-1")
            return np.ascontiguousarray(x, dtype=np.uint64)
        vals = [x] if isinstance(x, (int, np.integer)) else list(x)
        for i, v in enumerate(vals):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name}[{i}] = {v!r} is not an integer")
            if not 0 <= int(v) <= _U64:
                raise ValueError(f"{name}[{i}] = {v} is outside 0..2**64-1")
        return np.array([int(v) for v in vals], dtype=np.uint64)

    def _ranges(self, vaddr, size, align: int, what: str):
        """(starts, sizes) as uint64 arrays after checking sizes, alignment, the
        linear-address space and overlaps between the ranges (vectorised)."""
        starts = self._u64(vaddr, "vaddr")
        sizes = self._u64(size, "size")
        if sizes.size == 1 and starts.size != 1:
            sizes = np.full(starts.size, sizes[0], dtype=np.uint64)
        if sizes.size != starts.size:
            raise ValueError(f"{starts.size} addresses but {sizes.size} sizes")
        if starts.size == 0:
            return starts, sizes
        bad = np.flatnonzero(sizes == 0)
        if bad.size:
            raise ValueError(f"size[{int(bad[0])}] = 0: {what} needs a positive size")
        mask = np.uint64(align - 1)
        bad = np.flatnonzero(((starts | sizes) & mask) != 0)
        if bad.size:
            i = int(bad[0])
            name = page_size_name(align) if align in _CODE_BYTES.values() else align
            raise ValueError(f"range {i} ({int(starts[i]):#x}, size {int(sizes[i]):#x}) "
                             f"is not aligned to {name}")
        lasts = starts + (sizes - np.uint64(1))
        bits = self._core.va_bits
        if bits == 32:
            ok = lasts < np.uint64(1 << 32)
        else:
            sign = np.uint64(bits - 1)
            high = np.uint64((1 << (65 - bits)) - 1)
            top_s, top_l = starts >> sign, lasts >> sign
            ok = ((top_s == 0) | (top_s == high)) & ((top_l == 0) | (top_l == high))
            ok &= (starts >> np.uint64(63)) == (lasts >> np.uint64(63))
        ok &= lasts >= starts                        # no wrap past 2**64
        bad = np.flatnonzero(~ok)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"range {i} ({int(starts[i]):#x}..{int(starts[i]) + int(sizes[i]) - 1:#x}) "
                             f"is outside the {bits}-bit linear-address space of "
                             f"{self._mode}" + ("" if bits == 32 else " (or not canonical)"))
        order = np.argsort(starts, kind="stable")
        clash = np.flatnonzero(starts[order][1:] <= lasts[order][:-1])
        if clash.size:
            a, b = int(order[clash[0]]), int(order[clash[0] + 1])
            raise ValueError(f"ranges {a} and {b} overlap ({int(starts[a]):#x} and "
                             f"{int(starts[b]):#x})")
        return starts, sizes

    # ------------------------------------------------------------------ mapping
    def map(self, vaddr, size, page_size="4K", pfn=None, writable: bool = True,
            user: bool = True, nx: bool = False, global_: bool = False,
            pwt: bool = False, pcd: bool = False) -> int:
        """Map ``[vaddr, vaddr + size)`` with pages of ``page_size``.

        ``vaddr`` and ``size`` may be arrays (one range each; a scalar size applies to
        all). ``pfn`` is the first frame of each range (an int or an array), its pages
        taking consecutive frames; ``None`` takes frames from the allocator. Explicit
        frames inside ``phys_mem`` are reserved in the allocator (before any table is
        allocated), so no page table, ``pfn=None`` map or demand fault is given them;
        frames mapped already (shared memory) are allowed, frames beyond ``phys_mem``
        are not tracked, a frame holding a page table is refused. Every range must be
        aligned to the page size, inside the mode's linear-address space, and free (no
        page mapped in it); otherwise ``ValueError``, and nothing changes. When the
        tables do not fit, ``MemoryError`` and nothing changes (reservations included).
        Returns the number of pages mapped.

        >>> pt = PageTable("pae")
        >>> pt.map([0x1000, 0x400000], 0x2000, pfn=[0x100, 0x200])
        4
        >>> pt.map(0x2000, 0x1000)
        Traceback (most recent call last):
        ...
        ValueError: range 0 (0x2000) overlaps an existing mapping at 0x2000
        """
        code = self._size_code(page_size)
        psize = _CODE_BYTES[code]
        starts, sizes = self._ranges(vaddr, size, psize, "map")
        if self._mode == "x86_32" and nx:
            raise ValueError("nx=True: 32-bit paging has no XD bit")
        if nx and not self._core.nxe:
            raise ValueError("nx=True needs IA32_EFER.NXE (construct with nx=True)")
        npg = sizes // np.uint64(psize)
        frames = psize >> 12
        if pfn is None:
            pfns = np.zeros(starts.size, dtype=np.uint64)
        else:
            pfns = self._u64(pfn, "pfn")
            if pfns.size != starts.size:
                raise ValueError(f"{starts.size} ranges but {pfns.size} pfns (give one "
                                 f"first frame per range)")
            limit = 1 << (self.maxphyaddr - 12)
            if self._mode == "x86_32" and code == 0:
                limit = 1 << 20            # a 4K PTE holds 20 address bits
            bad = np.flatnonzero(pfns % np.uint64(frames) != 0)
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"pfn[{i}] = {int(pfns[i]):#x} is not a multiple of "
                                 f"{frames} frames ({page_size_name(psize)} pages)")
            bad = np.flatnonzero((pfns >= np.uint64(limit)) |
                                 (npg * np.uint64(frames) > np.uint64(limit) - pfns))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"pfn[{i}] = {int(pfns[i]):#x}: its {int(npg[i])} pages "
                                 f"end beyond the {limit:#x} frames that MAXPHYADDR="
                                 f"{self.maxphyaddr} allows")
        bad_i, bad_va = self._core.check_map(starts, npg, code)
        if bad_i >= 0:
            raise ValueError(f"range {bad_i} ({int(starts[bad_i]):#x}) overlaps an existing "
                             f"mapping at {bad_va:#x}")
        flags = _P | (_RW if writable else 0) | (_US if user else 0) | (_NX if nx else 0) \
            | (_G if global_ else 0) | (_PWT if pwt else 0) | (_PCD if pcd else 0)
        status = self._core.map(starts, npg, pfns, code, pfn is None, flags)
        total = int(npg.sum())
        if status != 0:
            low = ("; in x86_32, page tables and 4K pages must lie below 4 GiB (32-bit "
                   "entries)" if self._mode == "x86_32" and self._phys > (1 << 32) else "")
            if pfn is None:
                need = (f"mapping {total} {page_size_name(psize)} pages needs more than "
                        f"the {self.free_frames} free frames allow")
            else:
                need = (f"the page tables for {total} {page_size_name(psize)} pages on "
                        f"explicit frames need more frames than are free once those "
                        f"frames are reserved ({self.free_frames} free before the call)")
            raise MemoryError(f"physical memory exhausted: {need}{low}; nothing was "
                              f"mapped")
        return total

    def _range_op(self, vaddr, size, op, set_bits=0, clear_bits=0) -> int:
        starts, sizes = self._ranges(vaddr, size, 4096, "unmap" if op == 1 else "protect")
        starts, sizes = starts.tolist(), sizes.tolist()
        for i, (s, n) in enumerate(zip(starts, sizes)):
            _, bad = self._core.range_op(s, s + n - 1, 0)
            if bad >= 0:
                raise ValueError(f"range {i} ({s:#x}..{s + n - 1:#x}) cuts the large page "
                                 f"at {bad:#x}; cover it whole")
        return sum(self._core.range_op(s, s + n - 1, op, set_bits, clear_bits)[0]
                   for s, n in zip(starts, sizes))

    def unmap(self, vaddr, size) -> int:
        """Clear every page in ``[vaddr, vaddr + size)`` (arrays: several ranges);
        returns the number of pages unmapped. Large pages must be covered whole. Page
        tables and frames stay allocated; PSCs are not touched (only leaves change)."""
        return self._range_op(vaddr, size, 1)

    def protect(self, vaddr, size, writable: Optional[bool] = None,
                user: Optional[bool] = None, nx: Optional[bool] = None) -> int:
        """Change R/W, U/S and XD of every page in the range(s) (``None`` keeps a bit);
        A/D bits and frames stay. Returns the number of pages changed.

        >>> pt = PageTable("x86_64"); pt.map(0, 0x4000)
        4
        >>> pt.protect(0, 0x2000, writable=False)
        2
        """
        if nx and not self._core.nxe:
            raise ValueError("nx=True needs PAE/IA-32e paging with IA32_EFER.NXE")
        set_bits = clear = 0
        for flag, bit in ((writable, _RW), (user, _US), (nx, _NX)):
            if flag is None:
                continue
            if flag:
                set_bits |= bit
            else:
                clear |= bit
        return self._range_op(vaddr, size, 2, set_bits, clear)

    # ------------------------------------------------------------------ walks
    def walk(self, vaddrs, op="load", user: bool = True, record: bool = False,
             check_input: bool = True) -> WalkResult:
        """Walk the page tables for each address (one nogil call).

        ``op`` is ``"load"``, ``"store"``, ``"ifetch"``, ``"modify"`` or a uint8 array of
        trace op codes (0..3); ``user`` says whether the accesses are user-mode. Faults
        are results, not exceptions (except ``MemoryError`` when demand paging runs out
        of frames: the accesses before it have taken effect). ``r.fault`` is 0 for a
        translation, ``FAULT_PF | error code`` for a page fault (``fault & 0xFFFF`` is the
        SDM 4.7 code, which may itself be 0) and ``FAULT_OUTSIDE`` for a non-canonical
        or out-of-width address; below, ``1073741828`` = ``FAULT_PF | FAULT_U``.

        >>> import numpy as np
        >>> pt = PageTable("x86_32"); pt.map(0x400000, 0x400000, page_size="4M")
        1
        >>> r = pt.walk(np.array([0x400123, 0x8000000], dtype=np.uint64), record=True)
        >>> r.refs.tolist(), r.fault.tolist(), r.entry_paddrs[0].tolist()
        ([1, 1], [0, 1073741828], [4, 18446744073709551615])
        """
        if check_input:
            va = np.asarray(vaddrs)
            if va.ndim == 0:
                va = va.reshape(1)
            if va.ndim != 1:
                raise ValueError(f"vaddrs must be 1-D, got shape {va.shape}")
            if va.dtype.kind not in "ui" and not (va.size == 0):
                raise TypeError(f"vaddrs must hold unsigned integers (uint64), got {va.dtype}")
            if va.dtype.kind == "i" and va.size and va.min() < 0:
                raise ValueError(f"vaddrs[{int(np.argmin(va))}] = {va.min()} is negative")
            va = np.ascontiguousarray(va, dtype=np.uint64)
        else:
            va = vaddrs
        n = va.shape[0]
        ops = None
        access = 0
        if isinstance(op, str):
            if op not in _ACCESS:
                raise ValueError(f"op {op!r} is not one of {', '.join(_ACCESS)}")
            access = _ACCESS[op]
        else:
            ops = np.asarray(op)
            if ops.shape != (n,) or ops.dtype.kind not in "ui":
                raise ValueError(f"op must be a name or an integer array of {n} op codes")
            if n and (ops.min() < 0 or ops.max() > 3):
                i = int(np.flatnonzero((ops < 0) | (ops > 3))[0])
                raise ValueError(f"op[{i}] = {ops[i]} is not a memory op code (0..3)")
            ops = np.ascontiguousarray(ops, dtype=np.uint8)
        paddr = np.empty(n, dtype=np.uint64)
        fault = np.empty(n, dtype=np.uint32)
        refs = np.empty(n, dtype=np.uint8)
        codes = np.empty(n, dtype=np.uint8)
        cols = self._core.record_columns
        entries = np.empty(n * cols, dtype=np.uint64) if record else None
        self._core.walk(va, ops=ops, access=access, user=bool(user), paddr=paddr,
                        fault=fault, refs=refs, size_code=codes, entries=entries)
        table = np.zeros(256, dtype=np.uint64)
        for c, b in _CODE_BYTES.items():
            table[c] = b
        return WalkResult(paddr, fault, refs, table[codes],
                          entries.reshape(n, cols) if record else None)

    def translate(self, vaddrs, op="load", user: bool = True) -> np.ndarray:
        """Physical addresses (uint64); raises ``ValueError`` naming the first faulting
        address and its error code if any access faults."""
        r = self.walk(vaddrs, op=op, user=user)
        if r.fault.any():
            i = int(np.flatnonzero(r.fault)[0])
            raise ValueError(f"vaddrs[{i}] = {int(np.asarray(vaddrs).reshape(-1)[i]):#x} "
                             f"faults with error code {int(r.fault[i]):#x}")
        return r.paddr

    # ------------------------------------------------------------------ entries, CR3, PSCs
    def read_entry(self, paddr: int) -> int:
        """The raw entry at a physical address (0 outside page-table pages)."""
        return self._core.read_entry(int(paddr))

    def reserve_frames(self, pfn, npages=1) -> None:
        """Mark frames as in use, so that page tables, ``map(pfn=None)`` and demand
        paging never take them: the runs ``[pfn[i], pfn[i] + npages[i])`` (scalars or
        arrays). ``map`` with explicit frames reserves its own frames; call this first
        when several ``map`` calls will use frames known in advance (the frames of a real
        process, say), so that the tables of an early call cannot land on the frames of
        a later one. Frames outside ``phys_mem`` are ignored; frames already in use stay
        so.

        >>> pt = PageTable("x86_64", phys_mem="1M")
        >>> before = pt.free_frames
        >>> pt.reserve_frames([0x10, 0x80], [4, 16])
        >>> before - pt.free_frames
        20
        """
        first = self._u64(pfn, "pfn")
        count = self._u64(npages, "npages")
        if len(count) == 1 and len(first) != 1:
            count = np.full(len(first), count[0], dtype=np.uint64)
        if len(count) != len(first):
            raise ValueError(f"{len(first)} runs but {len(count)} page counts")
        self._core.reserve(first, count)

    def table_pages(self) -> dict:
        """Every page-table page of the simulated physical memory: ``{physical address:
        array of its entries}`` (copies; 1024 uint32 entries per page in ``x86_32``, 512
        uint64 in the other modes), for inspection and for memory models that need the
        tables' contents.

        >>> pt = PageTable("x86_32")
        >>> _ = pt.map(0x400000, 0x1000, pfn=0x1234)
        >>> pages = pt.table_pages()
        >>> len(pages), pages[pt.cr3].dtype.name, len(pages[pt.cr3])   # page directory + 1 page table
        (2, 'uint32', 1024)
        >>> int(pages[pt.cr3][1]) & ~0xFFF in pages        # PDE 1 points at the page table
        True
        """
        dtype = np.uint32 if self._mode == "x86_32" else np.uint64
        return {pfn << 12: words.view(dtype) for pfn, words in
                sorted(self._core.pool_pages().items())}

    def write_entry(self, paddr: int, value: int) -> None:
        """Store a raw entry in a page-table page (no PSC invalidation: call
        ``invalidate``/``flush_psc`` as software would; PAE PDPTEs need ``load_cr3``)."""
        if not self._core.is_table_frame(int(paddr) >> 12):
            raise ValueError(f"{int(paddr):#x} is not in a page-table page")
        self._core.write_entry(int(paddr), int(value) & _U64)

    def load_cr3(self) -> None:
        """MOV to CR3 with the same root: flushes the PSCs and, in PAE, reloads the
        PDPTE registers (``ValueError`` if one has reserved bits set: a #GP)."""
        self._core.load_cr3()

    def invalidate(self, vaddr, all_psc: bool = True) -> int:
        """INVLPG each address. Architecturally it drops every PSC entry (SDM 4.10.4.1);
        ``all_psc=False`` drops only entries whose region holds the address. Returns the
        number of PSC entries dropped."""
        va = np.ascontiguousarray(np.atleast_1d(np.asarray(vaddr)), dtype=np.uint64)
        return self._core.invalidate(va, bool(all_psc))

    def flush_psc(self) -> int:
        """Empty every paging-structure cache; returns the entries dropped."""
        return self._core.flush_psc()

    def mappings(self, merge: bool = True) -> List[Mapping]:
        """The mapped pages as ranges (address order). With ``merge``, consecutive pages
        of one size with consecutive frames and equal flags form one range.

        >>> pt = PageTable("x86_64"); pt.map(0x1000, 0x3000, pfn=0x80)
        3
        >>> m = pt.mappings()[0]
        >>> hex(m.vaddr), m.size, m.page_size, hex(m.pfn), m.flags["writable"]
        ('0x1000', 12288, 4096, '0x80', True)
        """
        rows = self._core.leaves()
        if not rows:
            return []
        va = np.array([r[0] for r in rows], dtype=np.uint64)
        level = np.array([r[1] for r in rows], dtype=np.int64)
        e = np.array([r[2] for r in rows], dtype=np.uint64)
        shifts = np.array([self._core.level_shift(L) for L in range(self.levels)],
                          dtype=np.uint64)
        psize = np.uint64(1) << shifts[level]
        if self._mode == "x86_32":
            big = level == 1
            frame = np.where(big, (e & np.uint64(0xFFC00000)) |
                             (((e >> np.uint64(13)) & np.uint64(0xFF)) << np.uint64(32)),
                             e & np.uint64(0xFFFFF000))
            nx = np.zeros(e.size, dtype=bool)
        else:
            frame = e & np.uint64(((1 << 52) - 1) & ~0xFFF) & ~(psize - np.uint64(1))
            nx = (e >> np.uint64(63)) == 1
        pfn = frame >> np.uint64(12)
        fbits = (e & np.uint64(_RW | _US | _PWT | _PCD | _G)) | (nx.astype(np.uint64) << np.uint64(12))
        start = np.ones(e.size, dtype=bool)
        if merge and e.size > 1:
            start[1:] = ((psize[1:] != psize[:-1]) | (va[1:] != va[:-1] + psize[:-1])
                         | (pfn[1:] != pfn[:-1] + (psize[:-1] >> np.uint64(12)))
                         | (fbits[1:] != fbits[:-1]))
        first = np.flatnonzero(start)
        sizes = np.add.reduceat(psize, first)
        out = []
        has_nx = self._mode != "x86_32"
        for i, total in zip(first.tolist(), sizes.tolist()):
            f = int(fbits[i])
            flags = {"writable": bool(f & _RW), "user": bool(f & _US)}
            if has_nx:
                flags["nx"] = bool(f >> 12)
            flags.update(global_=bool(f & _G), pwt=bool(f & _PWT), pcd=bool(f & _PCD))
            out.append(Mapping(int(va[i]), int(total), int(psize[i]), int(pfn[i]), flags))
        return out

    def entry_paddr(self, vaddr: int, level: int) -> int:
        """Physical address of the entry at ``level`` that translates ``vaddr`` (without
        walking: no A bits, no counters), or ``ENTRY_PADDR_NONE`` if no table exists."""
        va = int(vaddr)
        if not self._va_ok(va):
            raise ValueError(f"vaddr {va:#x} is outside the linear-address space")
        core = self._core
        L = core.levels - 1
        table = core.cr3
        esize = core.entry_size
        if self._mode == "pae":
            e = core.pdpte[(va >> 30) & 3]
            if level == 2:
                return table + 8 * ((va >> 30) & 3)
            if not e & _P:
                return ENTRY_PADDR_NONE
            table = e & (((1 << self.maxphyaddr) - 1) & ~0xFFF)
            L = 1
        while True:
            idx_bits = 10 if self._mode == "x86_32" else 9
            pa = table + ((va >> core.level_shift(L)) & ((1 << idx_bits) - 1)) * esize
            if L == level:
                return pa
            e = core.read_entry(pa)
            if not e & _P or (L > 0 and e & _PS):
                return ENTRY_PADDR_NONE
            table = decode_entry(e, self._mode, L)["frame"]
            L -= 1
