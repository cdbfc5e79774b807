"""A pure-Python reference MMU: docs/mmu.md written out as plainly as possible.

It is the oracle of ``tests/test_mmu_differential.py`` and was written from the doc
alone (not from ``mmucore/mmu.pyx`` or ``pyapi/mmu.py``). It is built from the other two
reference models and nothing else of the product:

* every TLB structure and every paging-structure cache is a ``ReferenceTLB``
  (``tests/reference_tlb.py``), driven through its internal single-entry operations
  (``_lookup``, ``_on_hit``, ``_fill``, ``_drop``) so that the MMU decides what is
  counted where;
* every address space is a ``ReferencePageTable`` (``tests/reference_pagetable.py``)
  with demand paging on; the walker is given the walking CPU's PSCs through a thin view
  that tags every PSC entry with the current ASID (the reference page table itself is
  unchanged: it sees a dict of PSCs whose lookups/fills/invalidations are redirected).

Slow and simple: plain lists and dicts, one record at a time, no same-page memo (the
doc promises the memo is invisible in counters).

Choices where docs/mmu.md can be read more than one way are marked ``READING:``; the
same list is in ``tests/test_mmu_reference.py``.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Dict, List, Optional

import numpy as np

from reference_pagetable import (ERR_OUTSIDE, G, P, PS, ReferencePageTable, SIZE_BYTES,
                                 bits)
from reference_tlb import ReferenceTLB, SHIFTS

MASK64 = (1 << 64) - 1
ENTRY_NONE = MASK64                      # padding of walk_entries
LOAD, STORE, IFETCH, MODIFY = 0, 1, 2, 3
SWITCH, INVLPG, FLUSH, FLUSH_ASID, MAP, UNMAP = 4, 5, 6, 7, 8, 9
KMAP_OPS = (10, 11, 12, 13)
OP_NAME = {LOAD: "load", STORE: "store", IFETCH: "ifetch", MODIFY: "modify"}
LEVEL_NAMES = ["pte", "pde", "pdpte", "pml4e", "pml5e"]
PSC_LEVELS = {"pde": 1, "pdpte": 2, "pml4e": 3, "pml5e": 4}
WHERE_L1, WHERE_L2, WHERE_WALK, WHERE_FAULT, WHERE_CONTROL = 0, 1, 2, 3, 255

CPU_COUNTERS = (
    "accesses", "translations", "split_accesses", "l1_hits", "l1_misses", "l2_hits",
    "l2_misses", "walks", "walk_refs", "walk_refs_pte", "walk_refs_pde",
    "walk_refs_pdpte", "walk_refs_pml4e", "walk_refs_pml5e", "faults",
    "faults_not_present", "faults_protection", "faults_reserved", "faults_outside",
    "demand_faults", "switches", "invlpgs", "flushes", "flush_asids", "maps", "unmaps",
    "shootdowns", "ipis_sent", "ipis_received", "back_invalidations")
STRUCT_COUNTERS = ("accesses", "hits", "misses", "evictions", "fills", "invalidations")
PSC_COUNTERS = ("accesses", "hits", "misses")

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size_bytes(value) -> int:
    """Bytes of 4096 / "4K" / "64G" (binary units)."""
    if isinstance(value, str):
        v = value.strip().upper().replace("IB", "").replace("B", "")
        unit = v[-1] if v and v[-1] in _UNITS and not v[-1].isdigit() else ""
        return int(v[:len(v) - len(unit)]) * _UNITS[unit]
    return int(value)


def shift_of(size) -> int:
    if isinstance(size, str):
        return SHIFTS[size.upper()]
    return int(size).bit_length() - 1


# ---------------------------------------------------------------------------- structures
class Structure:
    """One TLB structure of one CPU: a ReferenceTLB plus a payload per (set, way) (the
    physical base of the entry's page, for paddr) and its splinter rule."""

    def __init__(self, cfg, seed):
        self.cfg = cfg
        self.name, self.level, self.side = cfg.name, cfg.level, cfg.side
        self.held = sorted({shift_of(s) for s in cfg.page_sizes})
        self.splinter = {shift_of(k): shift_of(v) for k, v in dict(cfg.splinter or {}).items()}
        self.tlb = ReferenceTLB(cfg.entries, cfg.ways, list(cfg.page_sizes), cfg.policy, seed)
        self.payload = {}
        # the MMU's per-structure counters (fills/evictions/invalidations are kept by the
        # ReferenceTLB's own stats; accesses/hits/misses are charged by the MMU)
        self.accesses = self.hits = self.misses = 0

    def serves(self, side):
        return self.side == side or (self.level == 2 and self.side == "unified")

    def entry_shift(self, shift) -> Optional[int]:
        """The entry size this structure stores a translation of size `shift` as: the size
        itself when held, else its splinter size when that is held, else None."""
        if shift in self.held:
            return shift
        piece = self.splinter.get(shift)
        if piece is not None and piece in self.held:
            return piece
        return None

    def probe(self, va, asid):
        """(set, way) of the entry translating va for asid (tlb_probe), or None."""
        return self.tlb._lookup(va, asid)

    def entry(self, s, w):
        return self.tlb.table[s][w]

    def fill(self, va, asid, shift, glob, base):
        """tlb_fill of docs/tlb.md / mmucore.tlb: install the `shift`-sized entry of the
        page holding va with payload `base` (physical base of that page). A present
        entry with the same tag and the same ASID-or-global is refreshed in place (the
        policy's hit update, no fill counted); a present twin with the other global bit
        is dropped without counting an invalidation and the entry is filled anew.
        Returns the displaced valid entry as (vpn, shift, asid, glob, payload) or None."""
        t = self.tlb
        vpn = va >> shift
        s = vpn % t.sets
        same = other = None
        for w, e in enumerate(t.table[s]):
            if e is None or e.vpn != vpn or e.shift != shift:
                continue
            if (e.glob and glob) or (not e.glob and not glob and e.asid == asid):
                same = w
                break
            if other is None and ((e.glob and not glob) or (glob and not e.glob and e.asid == asid)):
                other = w
        if same is not None:
            self.payload[(s, same)] = base
            t._on_hit(s, same)
            return None
        if other is not None:
            t._drop(s, other)
            t.stats.invalidations -= 1
        before = list(t.table[s])
        old_payload = [self.payload.get((s, w)) for w in range(t.ways)]
        s, w = t._fill(va, asid, shift, glob)
        self.payload[(s, w)] = base
        victim = before[w]
        if victim is None:
            return None
        return (victim.vpn, victim.shift, victim.asid, victim.glob, old_payload[w])

    def remove(self, s, w):
        """Drop an entry without counting an invalidation (exclusive L2 hit)."""
        self.tlb._drop(s, w)
        self.tlb.stats.invalidations -= 1

    def drop_where(self, pred):
        """Drop (counted as invalidations) every valid entry e with pred(e); returns how
        many."""
        n = 0
        for s in range(self.tlb.sets):
            for w, e in enumerate(self.tlb.table[s]):
                if e is not None and pred(e):
                    self.tlb._drop(s, w)
                    n += 1
        return n

    def counters(self):
        st = self.tlb.stats
        return {"accesses": self.accesses, "hits": self.hits, "misses": self.misses,
                "evictions": st.evictions, "fills": st.fills,
                "invalidations": st.invalidations}

    def reset(self):
        self.accesses = self.hits = self.misses = 0
        st = self.tlb.stats
        st.fills = st.evictions = st.invalidations = st.flushes = 0
        st.accesses = st.hits = st.misses = 0


class PSCView:
    """What the reference walker sees as one PSC: the CPU's ReferenceTLB with every
    lookup, fill and invalidation tagged with the walking ASID."""

    def __init__(self, tlb, owner):
        self.tlb = tlb
        self.owner = owner              # the MMU (for flush_psc from a page table)
        self.asid = 0

    @property
    def stats(self):
        return self.tlb.stats

    def _lookup(self, key, asid):
        return self.tlb._lookup(key, self.asid)

    def _on_hit(self, s, w):
        self.tlb._on_hit(s, w)

    def _fill(self, key, asid, shift, glob):
        return self.tlb._fill(key, self.asid, shift, glob)

    def invalidate(self, key, asid=None):
        # a page fault drops the PSC entries of its address: of the walking ASID
        # READING: "would be used for that linear address" = this ASID's entries only
        return self.tlb.invalidate(key, self.asid)

    def flush(self):
        self.owner._pt_flushed_psc = True


class _FlushHook:
    """A stand-in PSC set for a page table outside a walk: records flush_psc()."""

    def __init__(self, owner):
        self.owner = owner

    def flush(self):
        self.owner._pt_flushed_psc = True


class CPU:
    def __init__(self, n, config, seed, owner):
        self.n = n
        self.structs: List[Structure] = [Structure(c, seed) for c in config.tlbs]
        self.psc: Dict[int, tuple] = {}          # level -> (ReferenceTLB, payload dict)
        self.psc_names: Dict[int, str] = {}
        for name, (entries, ways) in dict(config.psc or {}).items():
            level = PSC_LEVELS[name]
            self.psc[level] = (ReferenceTLB(entries, ways, "4K", config.psc_policy, seed), {})
            self.psc_names[level] = name
        self.views = {lv: (PSCView(t, owner), payload) for lv, (t, payload) in self.psc.items()}
        self.asid = 0
        self.c = dict.fromkeys(CPU_COUNTERS, 0)

    def level(self, level, side):
        return [s for s in self.structs if s.level == level and s.serves(side)]

    def taker(self, level, side, shift):
        """(structure, entry shift) of the level's structure of `side` that takes a
        translation of size `shift` (holding it, else splintering it), or (None, None)."""
        for s in self.level(level, side):
            if shift in s.held:
                return s, shift
        for s in self.level(level, side):
            e = s.entry_shift(shift)
            if e is not None:
                return s, e
        return None, None

    def psc_drop_asid(self, asid):
        for tlb, _ in self.psc.values():
            for s in range(tlb.sets):
                for w, e in enumerate(tlb.table[s]):
                    if e is not None and e.asid == asid:
                        tlb._drop(s, w)

    def psc_flush(self):
        for tlb, _ in self.psc.values():
            tlb.flush()


class RefStats:
    def __init__(self, d):
        self._d = dict(d)

    def to_dict(self):
        return dict(self._d)

    def __getitem__(self, k):
        return self._d[k]


# ---------------------------------------------------------------------------- the MMU
class ReferenceMMU:
    def __init__(self, config, paging=None, huge_pages=None, pcid=None, cpus=None,
                 inclusion=None, seed=None):
        self.config = config
        self.paging = paging if paging is not None else config.paging
        self.huge_pages = huge_pages if huge_pages is not None else config.huge_pages
        self.pcid = bool(pcid if pcid is not None else config.pcid)
        self.ncpus = int(cpus if cpus is not None else config.cpus)
        self.inclusion = inclusion if inclusion is not None else config.inclusion
        self.seed = int(seed if seed is not None else config.seed)
        assert self.inclusion in ("inclusive", "non-inclusive", "exclusive")
        self.user = bool(config.user)
        phys = config.phys_mem if config.phys_mem is not None else "4G"
        self.nframes = size_bytes(phys) >> 12
        self._check_config()
        self.cpus = [CPU(n, config, self.seed, self) for n in range(self.ncpus)]
        self.pts: Dict[int, ReferencePageTable] = {}
        self._pt_flushed_psc = False
        self.interrupted = 0

    def _check_config(self):
        names = [t.name for t in self.config.tlbs]
        assert len(set(names)) == len(names), "structure names must be unique"
        for t in self.config.tlbs:
            assert t.level in (1, 2)
            assert t.side in (("instruction", "data") if t.level == 1 else
                              ("instruction", "data", "unified"))

    # ------------------------------------------------------------------ address spaces
    def pt(self, asid) -> ReferencePageTable:
        if asid not in self.pts:
            self.pts[asid] = ReferencePageTable(
                self.paging, maxphyaddr=self.config.maxphyaddr, nframes=self.nframes,
                allocator=self.config.allocator, seed=self.seed, demand=True,
                huge_pages=self.huge_pages)
            # READING: every ASID's page table has its own allocator over its own
            # physical memory, seeded alike ("a PageTable of the configured mode ...,
            # allocator and physical memory", docs/mmu.md section 2)
        return self.pts[asid]

    def cpumask(self, asid):
        return [c.n for c in self.cpus if c.asid == asid]

    def map(self, vaddr, size, page_size="4K", asid=0, pfn=None, writable=True, user=True,
            global_=False):
        pt = self.pt(asid)
        self._pt_flushed_psc = False
        pt.psc = {1: (_FlushHook(self), None)}
        try:
            ok = pt.map(int(vaddr), size_bytes(size), page_size, pfn,
                        writable=writable, user=user, global_=global_)
        finally:
            pt.psc = {}
        if ok is not True:
            raise ValueError(f"map({vaddr:#x}, {size}) refused: {ok}")
        if self._pt_flushed_psc:
            # PageTable.map flushes "the PSCs" when a large page replaces a non-leaf
            # entry; READING: in the MMU those are every CPU's PSC entries of this ASID
            for c in self.cpus:
                c.psc_drop_asid(asid)
        return size_bytes(size) // SIZE_BYTES[page_size]

    def _range_op(self, vaddr, size, asid, fn):
        pt = self.pt(asid)
        n = fn(pt)
        if n is None:
            raise ValueError(f"range {vaddr:#x}+{size:#x} cuts a large page or is outside")
        lo, hi = int(vaddr), int(vaddr) + size_bytes(size)
        # "MMU.protect and MMU.unmap invalidate the range on every CPU"
        # READING: as INVLPG does for each page of the range (section 5), on every CPU:
        # the TLB entries of that ASID and global ones overlapping the range, and every
        # PSC entry of that ASID; no IPI is counted (this is not a trace op)
        for c in self.cpus:
            for s in c.structs:
                s.drop_where(lambda e: _overlaps(e, lo, hi) and (e.glob or e.asid == asid))
            c.psc_drop_asid(asid)
        return n

    def unmap(self, vaddr, size, asid=0):
        return self._range_op(vaddr, size, asid, lambda pt: pt.unmap(int(vaddr), size_bytes(size)))

    def protect(self, vaddr, size, asid=0, writable=None, user=None, nx=None):
        return self._range_op(vaddr, size, asid, lambda pt: pt.protect(
            int(vaddr), size_bytes(size), writable=writable, user=user, nx=nx))

    # ------------------------------------------------------------------ the leaf of va
    def find_leaf(self, pt, va):
        """('leaf', level, entry address, entry) / ('np', level) / ('outside',) /
        ('rsvd', level): a side-effect-free look at the page table."""
        m = pt.m
        if va > MASK64 or not m.canonical(va):
            return ("outside",)
        lv, table = m.levels - 1, pt.cr3
        if m.name == "pae":
            e = pt.pdpte[(va >> 30) & 3]
            if not e & P:
                return ("np", 2)
            lv, table = 1, e & bits(m.M - 1, 12)
        while True:
            pa = table + m.index(va, lv) * m.entry_bytes
            e = pt.read(pa)
            if not e & P:
                return ("np", lv)
            if m.reserved(e, lv):
                return ("rsvd", lv)
            if lv == 0 or e & PS:
                return ("leaf", lv, pa, e)
            table = m.frame_of(e, lv)
            lv -= 1

    # ------------------------------------------------------------------ one translation
    def _walk(self, cpu, va, op):
        """Walk on `cpu` in its ASID. Returns (fault code, paddr, page shift, global,
        entries) and counts walk counters on the CPU."""
        c = cpu.c
        c["walks"] += 1
        if va > MASK64:
            # READING: a byte range running past 2**64 - 1 makes a translation of the
            # next page that is outside the linear space (no wrap to 0)
            c["faults"] += 1
            c["faults_outside"] += 1
            return ERR_OUTSIDE, 0, None, False, []
        pt = self.pt(cpu.asid)
        for view, _ in cpu.views.values():
            view.asid = cpu.asid
        pt.psc = cpu.views
        before = (list(pt.stats["refs"]), dict(pt.stats["minor"]),
                  {k: pt.stats[k] for k in ("faults_not_present", "faults_protection",
                                            "faults_reserved", "faults_outside")})
        try:
            code, paddr, refs, size, entries = pt.access(va, OP_NAME[op], self.user)
        finally:
            pt.psc = {}
        after_refs = pt.stats["refs"]
        for lv in range(len(after_refs)):
            d = after_refs[lv] - before[0][lv]
            c["walk_refs_" + LEVEL_NAMES[lv]] += d
            c["walk_refs"] += d
        assert sum(after_refs) - sum(before[0]) == refs
        c["demand_faults"] += sum(pt.stats["minor"].values()) - sum(before[1].values())
        if code != 0:
            c["faults"] += 1
            for k in before[2]:
                c[k] += pt.stats[k] - before[2][k]
            return code, 0, None, False, entries
        shift = SHIFTS[size]
        leaf = self.find_leaf(pt, va)
        assert leaf[0] == "leaf"
        return 0, paddr, shift, bool(leaf[3] & G), entries

    def _fill_l1(self, cpu, side, va, asid, shift, glob, page_base):
        """Fill S1 (the L1 structure of `side` taking `shift`); exclusive: its victim goes
        to the L2 structure taking the victim's size."""
        s1, eshift = cpu.taker(1, side, shift)
        if s1 is None:
            return
        piece = va & ~((1 << eshift) - 1)
        base = page_base + (piece - (va & ~((1 << shift) - 1)))
        victim = s1.fill(va, asid, eshift, glob, base)
        if victim is not None and self.inclusion == "exclusive":
            vpn, vshift, vasid, vglob, vbase = victim
            s2, v2shift = cpu.taker(2, side, vshift)
            if s2 is not None:
                vva = vpn << vshift
                # READING: a victim of a size the L2 structure only splinters goes in as
                # the piece at the victim's base
                s2.fill(vva, vasid, v2shift, vglob, vbase)

    def _fill_l2(self, cpu, side, va, asid, shift, glob, page_base):
        s2, eshift = cpu.taker(2, side, shift)
        if s2 is None:
            return
        piece = va & ~((1 << eshift) - 1)
        base = page_base + (piece - (va & ~((1 << shift) - 1)))
        victim = s2.fill(va, asid, eshift, glob, base)
        if victim is not None and self.inclusion == "inclusive":
            vpn, vshift, vasid, vglob, _ = victim
            # READING: back-invalidation drops the L1 entries with exactly the victim's
            # tag: same page number and size, same ASID (or global if it was global)
            n = 0
            for s in cpu.level(1, "instruction") + cpu.level(1, "data"):
                n += s.drop_where(lambda e: e.vpn == vpn and e.shift == vshift
                                  and e.glob == vglob and (vglob or e.asid == vasid))
            cpu.c["back_invalidations"] += n

    def translate_one(self, cpu, va, op):
        """One translation. Returns (where, fault, paddr, page shift, walk entries)."""
        side = "instruction" if op == IFETCH else "data"
        asid = cpu.asid
        c = cpu.c
        c["translations"] += 1
        # 1. L1: every level-1 structure of the side, in configuration order
        for s in cpu.level(1, side):
            found = s.probe(va, asid) if va <= MASK64 else None
            if found is not None:
                e = s.entry(*found)
                s.tlb._on_hit(*found)
                s.accesses += 1
                s.hits += 1
                c["l1_hits"] += 1
                base = s.payload[found]
                return WHERE_L1, 0, base + (va & ((1 << e.shift) - 1)), e.shift, []
        c["l1_misses"] += 1
        # 2. L2: every level-2 structure of the side or unified
        for s in cpu.level(2, side):
            found = s.probe(va, asid) if va <= MASK64 else None
            if found is not None:
                e = s.entry(*found)
                shift, glob, base = e.shift, e.glob, s.payload[found]
                s.tlb._on_hit(*found)
                s.accesses += 1
                s.hits += 1
                c["l2_hits"] += 1
                s1, _ = cpu.taker(1, side, shift)
                if s1 is not None:
                    s1.accesses += 1
                    s1.misses += 1
                if self.inclusion == "exclusive" and s1 is not None:
                    # READING: with no S1 for the size the entry stays in L2 (the doc's
                    # removal goes with the S1 fill)
                    s.remove(*found)
                page_va = va & ~((1 << shift) - 1)
                self._fill_l1(cpu, side, va, asid, shift, glob, base)
                return WHERE_L2, 0, base + (va - page_va), shift, []
        c["l2_misses"] += 1
        # 3. the walk
        code, paddr, shift, glob, entries = self._walk(cpu, va, op)
        if code != 0:
            return WHERE_FAULT, code, 0, None, entries
        s1, _ = cpu.taker(1, side, shift)
        s2, _ = cpu.taker(2, side, shift)
        if s1 is not None:
            s1.accesses += 1
            s1.misses += 1
        if s2 is not None:
            # READING: charged to S2 in every inclusion mode (also exclusive, where the
            # walk does not fill it): "the one holding the translation's page size"
            s2.accesses += 1
            s2.misses += 1
        page_base = paddr - (va & ((1 << shift) - 1))
        if self.inclusion == "exclusive":
            if s1 is not None:
                self._fill_l1(cpu, side, va, asid, shift, glob, page_base)
            else:
                self._fill_l2(cpu, side, va, asid, shift, glob, page_base)
        else:
            self._fill_l2(cpu, side, va, asid, shift, glob, page_base)
            self._fill_l1(cpu, side, va, asid, shift, glob, page_base)
        return WHERE_WALK, 0, paddr, shift, entries

    def memory_access(self, cpu, va, op, size):
        """One memory op. Returns (paddr, where, fault, walk entries) of the record."""
        cpu.c["accesses"] += 1
        last = va + max(size, 1) - 1
        first = None
        fault = 0
        n = 0
        cur = va
        while True:
            where, code, paddr, shift, entries = self.translate_one(cpu, cur, op)
            n += 1
            if first is None:
                first = (paddr, where, entries)
            if code != 0:
                # READING: the record's `fault` is the first fault of the access, whichever
                # page it is on; paddr/where/walk_entries are those of the first page
                fault = code
                break
            nxt = (cur & ~((1 << shift) - 1)) + (1 << shift)
            if nxt > last:
                break
            cur = nxt
        cpu.c["split_accesses"] += n > 1
        return first[0], first[1], fault, first[2]

    # ------------------------------------------------------------------ control ops
    def _invalidate_page(self, cpu, lo, hi, asid, with_global, psc="page"):
        """Drop the TLB entries of `asid` (and global ones when with_global) overlapping
        [lo, hi) and the PSC entries of `asid`: all of them (psc="all", INVLPG) or those
        whose region overlaps the range (psc="page")."""
        for s in cpu.structs:
            s.drop_where(lambda e: _overlaps(e, lo, hi)
                         and ((e.glob and with_global) or (not e.glob and e.asid == asid)))
        if psc == "all":
            cpu.psc_drop_asid(asid)
            return
        pt = self.pt(asid)
        wmask = (1 << pt.m.width) - 1
        mlo, mhi = lo & wmask, ((hi - 1) & wmask) + 1
        for level, (tlb, _) in cpu.psc.items():
            if level >= pt.m.levels:
                continue
            sh = pt.m.shift(level)
            for s in range(tlb.sets):
                for w, e in enumerate(tlb.table[s]):
                    if e is None or e.asid != asid:
                        continue
                    rlo = e.vpn << sh
                    if rlo < mhi and rlo + (1 << sh) > mlo:
                        tlb._drop(s, w)

    def control(self, cpu, op, arg):
        c = cpu.c
        if op == SWITCH:
            c["switches"] += 1
            cpu.asid = arg
            self.pt(arg)
            if not self.pcid:
                for s in cpu.structs:
                    s.tlb.flush(keep_global=True)
                cpu.psc_flush()
            # PAE: the new ASID's PDPTE registers are loaded; the reference page table's
            # registers never change (docs/pagetable.md), so nothing else happens here.
            # READING: pdpte_loads is not one of the section-6 counters.
        elif op == INVLPG:
            c["invlpgs"] += 1
            for s in cpu.structs:
                if arg <= MASK64:
                    s.tlb.invalidate(arg, cpu.asid)      # that ASID's and global ones
            cpu.psc_drop_asid(cpu.asid)
        elif op == FLUSH:
            c["flushes"] += 1
            keep_global = not (arg & 1)
            targets = self.cpus if arg & 2 else [cpu]
            for t in targets:
                for s in t.structs:
                    s.tlb.flush(keep_global=keep_global)
                t.psc_flush()
            if arg & 2:
                others = [t for t in self.cpus if t is not cpu]
                for t in others:
                    t.c["ipis_received"] += 1
                c["ipis_sent"] += len(others)
                c["shootdowns"] += bool(others)
        elif op == FLUSH_ASID:
            c["flush_asids"] += 1
            for s in cpu.structs:
                s.tlb.flush_asid(arg)
            cpu.psc_drop_asid(arg)
        elif op == MAP:
            c["maps"] += 1
            pt = self.pt(cpu.asid)
            leaf = self.find_leaf(pt, arg)
            if leaf[0] == "np":
                saved = dict(pt.stats["minor"]), pt.stats["huge_fallbacks"]
                pt.psc = {1: (_FlushHook(self), None)}
                try:
                    pt.demand_fault(arg, leaf[1])
                finally:
                    pt.psc = {}
                # READING: a MAP is not a demand fault (no access faulted)
                pt.stats["minor"], pt.stats["huge_fallbacks"] = saved
        elif op == UNMAP:
            c["unmaps"] += 1
            asid = cpu.asid
            pt = self.pt(asid)
            leaf = self.find_leaf(pt, arg)
            if leaf[0] != "leaf":
                return
            _, level, pa, entry = leaf
            size = 1 << pt.m.shift(level)
            lo = arg & ~(size - 1)
            hi = lo + size
            glob = bool(entry & G)
            pt.write(pa, 0)
            # this CPU: an INVLPG of the page (READING: every entry overlapping the page,
            # so splintered pieces of a huge page go too; all PSC entries of the ASID)
            self._invalidate_page(cpu, lo, hi, asid, True, psc="all")
            mask = set(self.cpumask(asid))
            ipis = 0
            for t in self.cpus:
                if t is cpu:
                    continue
                if glob or t.n in mask:
                    t.c["ipis_received"] += 1
                    ipis += 1
                    # READING: "its PSC entries of that ASID" = the PSC entries whose
                    # region overlaps the page
                    self._invalidate_page(t, lo, hi, asid, True, psc="page")
                else:
                    # READING: deferred, no IPI: the ASID's TLB entries for the page (not
                    # global ones) and its PSC entries for the page
                    self._invalidate_page(t, lo, hi, asid, False, psc="page")
            c["ipis_sent"] += ipis
            c["shootdowns"] += ipis > 0

    # ------------------------------------------------------------------ chunks
    def _columns(self, chunk):
        if isinstance(chunk, np.ndarray) or isinstance(chunk, (list, tuple)):
            addr = [int(a) for a in np.asarray(chunk, dtype=np.uint64).tolist()]
            return addr, [0] * len(addr), [0] * len(addr), [0] * len(addr)
        addr = [int(a) for a in np.asarray(chunk.addr).tolist()]
        n = len(addr)

        def col(name):
            v = getattr(chunk, name, None)
            return [0] * n if v is None else [int(x) for x in np.asarray(v).tolist()]
        return addr, col("op"), col("size"), col("cpu")

    def _check(self, addr, op, cpu):
        for i, (a, o, c) in enumerate(zip(addr, op, cpu)):
            if o in KMAP_OPS:
                raise ValueError(f"record {i}: op {o} is a kmap op, not an MMU op")
            if o > 13:
                raise ValueError(f"record {i}: unknown op {o}")
            if c >= self.ncpus:
                raise ValueError(f"record {i}: cpu {c} >= cpus={self.ncpus}")
            if o in (SWITCH, FLUSH_ASID) and a > 4095:
                # "ASIDs are 0..4095 (12-bit PCIDs)" (section 2)
                raise ValueError(f"record {i}: ASID {a} of op {o} is outside 0..4095")

    def access(self, chunk, record=False):
        addr, op, size, cpu = self._columns(chunk)
        self._check(addr, op, cpu)
        n = len(addr)
        levels = self._levels()
        paddr = [0] * n
        where = [WHERE_CONTROL] * n
        fault = [0] * n
        entries = [[ENTRY_NONE] * levels for _ in range(n)]
        for i in range(n):
            c = self.cpus[cpu[i]]
            if op[i] <= MODIFY:
                pa, wh, ft, ents = self.memory_access(c, addr[i], op[i], size[i])
                paddr[i], where[i], fault[i] = pa, wh, ft
                entries[i] = list(ents) + [ENTRY_NONE] * (levels - len(ents))
            else:
                self.control(c, op[i], addr[i])
        if not record:
            return None
        return SimpleNamespace(paddr=np.array(paddr, dtype=np.uint64),
                               where=np.array(where, dtype=np.uint8),
                               fault=np.array(fault, dtype=np.uint32),
                               walk_entries=np.array(entries, dtype=np.uint64).reshape(n, levels))

    def _levels(self):
        return {"x86_32": 2, "pae": 2, "x86_64": 4, "la57": 5}[self.paging]

    def replay(self, trace, chunk_size=None, progress=False):
        if hasattr(trace, "chunks"):
            chunks = trace.chunks(chunk_size) if chunk_size else trace.chunks()
        elif isinstance(trace, (list, tuple)) and trace and not isinstance(trace[0], int):
            chunks = trace
        else:
            chunks = [trace]
        for ch in chunks:
            self.access(ch)
        return self.stats

    def translate(self, vaddrs):
        va = np.asarray(vaddrs, dtype=np.uint64)
        return self.access(SimpleNamespace(addr=va, op=None, size=None, cpu=None),
                           record=True).paddr

    # ------------------------------------------------------------------ results
    def to_dict(self):
        d = {}
        total = dict.fromkeys(CPU_COUNTERS, 0)
        for cpu in self.cpus:
            p = f"cpu{cpu.n}."
            for s in cpu.structs:
                for k, v in s.counters().items():
                    d[p + s.name + "." + k] = v
            for level, (tlb, _) in cpu.psc.items():
                st = tlb.stats
                name = "psc_" + cpu.psc_names[level]
                for k in PSC_COUNTERS:
                    d[p + name + "." + k] = getattr(st, k)
            for k in CPU_COUNTERS:
                d[p + k] = cpu.c[k]
                total[k] += cpu.c[k]
        # READING: total.* sums the flat per-CPU counters only (not structures or PSCs)
        for k, v in total.items():
            d["total." + k] = v
        d["asids"] = len(self.pts)
        d["interrupted"] = self.interrupted
        return d

    @property
    def stats(self):
        return RefStats(self.to_dict())

    def reset_stats(self):
        for cpu in self.cpus:
            cpu.c = dict.fromkeys(CPU_COUNTERS, 0)
            for s in cpu.structs:
                s.reset()
            for tlb, _ in cpu.psc.values():
                tlb.reset_stats()


def _overlaps(e, lo, hi):
    rlo = e.vpn << e.shift
    return rlo < hi and rlo + (1 << e.shift) > lo
