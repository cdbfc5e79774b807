"""A tiny, obviously-correct model of x86 paging, written from the Intel SDM vol. 3A
chapter 4 (section numbers in the comments), for differential tests of mmucore.pagetable.

Physical memory is a dict {physical address of an entry: value} plus the set of frames
that hold page tables; every other frame reads as zeros. Nothing here is fast. The
parts that are design decisions rather than architecture (the frame allocator, the
order of allocations in map(), which A bits a faulting walk sets, demand paging) follow
docs/pagetable.md.
"""
import copy

from reference_tlb import ReferenceTLB, XorShift64Star

P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 16, 32, 64, 128, 256
XD = 1 << 63
ERR_P, ERR_W, ERR_U, ERR_RSVD, ERR_I = 1, 2, 4, 8, 16
ERR_OUTSIDE = 0x80000000
ERR_PF = 0x40000000          # docs/pagetable.md: marks every #PF (its code may be 0)
SIZE_BYTES = {"4K": 1 << 12, "2M": 1 << 21, "4M": 1 << 22, "1G": 1 << 30}


def bits(hi, lo):
    """The mask of bits hi..lo inclusive (empty when hi < lo)."""
    return sum(1 << b for b in range(lo, hi + 1))


class Mode:
    """The geometry of one paging mode, level 0 = the page table."""

    def __init__(self, name, maxphyaddr, nxe):
        self.name = name
        self.M = maxphyaddr
        if name == "x86_32":                     # SDM 4.3: 2 levels of 1024 4-byte entries
            self.entry_bytes = 4
            self.index_bits = [10, 10]
            self.leaf_sizes = {0: "4K", 1: "4M"}
            self.width = 32
            self.nxe = False
        elif name == "pae":                      # SDM 4.4: PDPT (4 entries), PD, PT
            self.entry_bytes = 8
            self.index_bits = [9, 9, 2]
            self.leaf_sizes = {0: "4K", 1: "2M"}
            self.width = 32
            self.nxe = nxe
        else:                                    # SDM 4.5 (and 5-level paging)
            self.entry_bytes = 8
            self.index_bits = [9, 9, 9, 9] + ([9] if name == "la57" else [])
            self.leaf_sizes = {0: "4K", 1: "2M", 2: "1G"}
            self.width = 48 if name == "x86_64" else 57
            self.nxe = nxe
        self.levels = len(self.index_bits)

    def shift(self, level):
        return 12 + sum(self.index_bits[:level])

    def index(self, va, level):
        return (va >> self.shift(level)) & ((1 << self.index_bits[level]) - 1)

    def canonical(self, va):
        if self.width == 32:
            return va < (1 << 32)
        top = va >> (self.width - 1)
        return top == 0 or top == (1 << (65 - self.width)) - 1

    def reserved(self, entry, level):
        """Whether a present entry at `level` has a reserved bit set (SDM 4.7 RSVD and
        the entry-format tables 4-4..4-11 and 4-14..4-19)."""
        ps = bool(entry & PS)
        if self.name == "x86_32":
            if level == 1 and ps:                # 4-MByte page with PSE-36
                return bool(entry & bits(21, self.M - 19))
            return False
        hi = 62 if self.name == "pae" else 51
        rsv = bits(hi, self.M)
        if not self.nxe:
            rsv |= XD
        if level > 0 and ps:
            if level not in self.leaf_sizes:     # PS must be 0 in a PML4E/PML5E
                return True
            rsv |= bits(self.shift(level) - 1, 13)
        return bool(entry & rsv)

    def frame_of(self, entry, level):
        """Physical address a present entry points at (table or page base)."""
        if level > 0 and entry & PS:
            size = 1 << self.shift(level)
            if self.name == "x86_32":
                return (entry & 0xFFC00000) | (((entry >> 13) & ((1 << (self.M - 32)) - 1)) << 32)
            return entry & bits(self.M - 1, 12) & ~(size - 1)
        if self.name == "x86_32":
            return entry & 0xFFFFF000
        return entry & bits(self.M - 1, 12)


class Allocator:
    """docs/pagetable.md "Physical memory": units of 1, 512, 1024 or 262144 frames; start
    at the cursor (sequential, rounded up to the unit) or at a random unit (random);
    take the first unit at or after it, wrapping, whose frames are all free."""

    def __init__(self, nframes, kind, seed):
        self.nframes = nframes
        self.kind = kind
        self.used = set()
        self.cursor = 0
        self.rng = XorShift64Star(seed)
        self.allocated = 0

    def alloc(self, size, below=None):
        """A free unit's first frame, or None; `below`: only frames [0, below)."""
        fr = SIZE_BYTES[size] >> 12
        nunits = min(self.nframes, below or self.nframes) // fr
        if nunits == 0 or self.nframes - len(self.used) < fr:
            return None
        if self.kind == "sequential":
            start = -(-self.cursor // fr)
            if start >= nunits:
                start = 0
        else:
            start = self.rng.below(nunits)
        for i in range(nunits):
            u = (start + i) % nunits
            frames = range(u * fr, (u + 1) * fr)
            if not any(f in self.used for f in frames):
                self.used.update(frames)
                if self.kind == "sequential":
                    self.cursor = (u + 1) * fr if (u + 1) * fr < self.nframes else 0
                self.allocated += fr
                return u * fr
        return None

    def reserve(self, frames):
        """docs/pagetable.md: the explicit frames of a map() that lie inside phys_mem are
        marked allocated (those already allocated stay so); the cursor, the random
        state and the count of frames handed out do not change."""
        self.used.update(f for f in frames if 0 <= f < self.nframes)


class Result:
    def __init__(self):
        self.paddr, self.fault, self.refs, self.size, self.entries = [], [], [], [], []


class ReferencePageTable:
    def __init__(self, mode="x86_64", maxphyaddr=None, nframes=1 << 16,
                 allocator="sequential", seed=0, nxe=True, wp=True, smep=False, smap=False,
                 psc=None, demand=False, huge_pages="never", demand_flags=P | RW | US):
        if maxphyaddr is None:
            maxphyaddr = {"x86_32": 32, "pae": 36}.get(mode, 52)
        self.m = Mode(mode, maxphyaddr, nxe)
        self.wp, self.smep, self.smap = wp, smep, smap
        self.mem = {}                 # entry address -> value (absent = 0)
        self.tables = set()           # pfns of page-table pages
        self.alloc = Allocator(nframes, allocator, seed)
        self.demand, self.huge, self.demand_flags = demand, huge_pages, demand_flags
        self.stats = {"walks": 0, "refs": [0] * self.m.levels, "psc_hits": [0] * self.m.levels,
                      "psc_misses": [0] * self.m.levels, "faults_not_present": 0,
                      "faults_protection": 0, "faults_reserved": 0, "faults_outside": 0,
                      "minor": {}, "huge_fallbacks": 0, "tables": 0}
        # psc: {level: (entries, ways, policy)}, seeded with `seed`; the payload of an
        # entry is kept beside the reference TLB, keyed by (set, way)
        self.psc = {}
        for level, (entries, ways, policy) in (psc or {}).items():
            self.psc[level] = (ReferenceTLB(entries, ways, "4K", policy, seed), {})
        self.cr3 = self.new_table(low=mode == "pae")
        self.pdpte = [0, 0, 0, 0]
        if mode == "pae":             # the four page directories exist from the start
            for i in range(4):
                self.write(self.cr3 + 8 * i, self.new_table() | P)
            self.pdpte = [self.read(self.cr3 + 8 * i) for i in range(4)]

    # ------------------------------------------------------------------ memory
    def read(self, pa):
        return self.mem.get(pa, 0) if (pa >> 12) in self.tables else 0

    def write(self, pa, value):
        assert (pa >> 12) in self.tables
        self.mem[pa] = value

    def frame_limit(self, size):
        """SDM 4.3: 32-bit entries hold 20-bit frame numbers, so x86_32's tables and 4K
        pages lie below 4 GiB (4M pages, PSE-36, may not)."""
        return 1 << 20 if self.m.name == "x86_32" and size == "4K" else None

    def new_table(self, low=False):
        # low: PAE's root (the PDPT), addressed by the 32-bit CR3 (SDM 4.4.1)
        pfn = self.alloc.alloc("4K", 1 << 20 if low else self.frame_limit("4K"))
        if pfn is None:
            raise MemoryError("no frame for a page table")
        self.tables.add(pfn)
        for i in range(4096 // self.m.entry_bytes):
            self.mem.pop((pfn << 12) + i * self.m.entry_bytes, None)
        self.stats["tables"] += 1
        return pfn << 12

    # ------------------------------------------------------------------ walk
    def _psc_key(self, va, level):
        return ((va & ((1 << self.m.width) - 1)) >> self.m.shift(level)) << 12

    def walk_one(self, va, write=False, user=True, ifetch=False):
        """(fault, paddr, refs, size, entry addresses, level reached)."""
        m = self.m
        if not m.canonical(va):
            return ERR_OUTSIDE, 0, 0, None, [], None
        self.stats["walks"] += 1
        rw_ok, us_ok, xd = 1, 1, 0
        level = m.levels - 1
        table = self.cr3
        if m.name == "pae":           # SDM 4.4.1: the PDPTE comes from its register
            e = self.pdpte[(va >> 30) & 3]
            if not e & P:
                return "np", 0, 0, None, [], 2
            table = e & bits(m.M - 1, 12)
            level = 1
        # the PSCs, lowest level first (SDM 4.10.3.2)
        for k in range(1, level + 1):
            if k not in self.psc:
                continue
            tlb, payload = self.psc[k]
            key = self._psc_key(va, k)
            found = tlb._lookup(key, 0)
            tlb.stats.accesses += 1
            if found is not None:
                tlb.stats.hits += 1
                tlb._on_hit(*found)
                table, rw_ok, us_ok, xd = payload[found]
                self.stats["psc_hits"][k] += 1
                level = k - 1
                break
            tlb.stats.misses += 1
            self.stats["psc_misses"][k] += 1
        used, refs = [], []           # (level, address, rw, us, xd) of valid non-leaf entries
        outcome = None
        while True:
            pa = table + m.index(va, level) * m.entry_bytes
            e = self.read(pa)
            self.stats["refs"][level] += 1
            refs.append(pa)
            if not e & P:
                outcome = "np"
                break
            if m.reserved(e, level):
                outcome = "rsvd"
                break
            rw_ok &= (e >> 1) & 1
            us_ok &= (e >> 2) & 1
            if m.nxe:
                xd |= (e >> 63) & 1
            if level == 0 or e & PS:
                break
            used.append((level, pa, rw_ok, us_ok, xd))
            table = m.frame_of(e, level)
            level -= 1
        for k, upa, r, u, x in used:  # A=1 in valid non-leaf entries (SDM 4.8)
            self.write(upa, self.read(upa) | A)
        if not outcome:               # access rights, SDM 4.6.1
            if user:
                ok = us_ok and (rw_ok or not write) and not (ifetch and xd)
            else:
                ok = (rw_ok or not write or not self.wp) and not (ifetch and xd) \
                    and not (ifetch and self.smep and us_ok) \
                    and not (self.smap and us_ok and not ifetch)
            if not ok:
                outcome = "prot"
        if outcome:                   # SDM 4.10.4.1: a #PF invalidates the PSC entries
            for k, (tlb, _) in self.psc.items():     # that would be used for va
                tlb.invalidate(self._psc_key(va, k), None)
            return outcome, 0, len(refs), None, refs, level
        for k, upa, r, u, x in used:  # a translation: fill the PSCs (SDM 4.10.3.1)
            if k in self.psc:
                tlb, payload = self.psc[k]
                where = tlb._fill(self._psc_key(va, k), 0, 12, False)
                payload[where] = (m.frame_of(self.read(upa), k), r, u, x)
        self.write(pa, self.read(pa) | A | (D if write else 0))       # SDM 4.8
        size = m.leaf_sizes[level]
        off = va & (SIZE_BYTES[size] - 1)
        return 0, m.frame_of(e, level) + off, len(refs), size, refs, level

    def error_code(self, outcome, write, user, ifetch):
        """SDM 4.7."""
        if outcome == 0 or outcome == ERR_OUTSIDE:
            return outcome
        code = ERR_PF | (ERR_W if write else 0) | (ERR_U if user else 0)
        if ifetch and (self.smep or (self.m.name != "x86_32" and self.m.nxe)):
            code |= ERR_I
        if outcome == "rsvd":
            code |= ERR_P | ERR_RSVD
        elif outcome == "prot":
            code |= ERR_P
        return code

    def access(self, va, op="load", user=True):
        write, ifetch = op in ("store", "modify"), op == "ifetch"
        out = self.walk_one(va, write, user, ifetch)
        total_refs = out[2]
        if out[0] == "np" and self.demand and self.demand_fault(va, out[5]):
            out = self.walk_one(va, write, user, ifetch)
            total_refs += out[2]
        outcome = out[0]
        code = self.error_code(outcome, write, user, ifetch)
        key = {"np": "faults_not_present", "rsvd": "faults_reserved",
               "prot": "faults_protection"}.get(outcome)
        if key:
            self.stats[key] += 1
        elif outcome == ERR_OUTSIDE:
            self.stats["faults_outside"] += 1
        return code, out[1], total_refs, out[3], out[4]

    def walk(self, vaddrs, op="load", user=True):
        r = Result()
        ops = op if isinstance(op, (list, tuple)) else [op] * len(vaddrs)
        for va, o in zip(vaddrs, ops):
            code, pa, refs, size, entries = self.access(int(va), o, user)
            r.fault.append(code)
            r.paddr.append(pa)
            r.refs.append(refs)
            r.size.append(SIZE_BYTES[size] if size else 0)
            r.entries.append(entries)
        return r

    # ------------------------------------------------------------------ mapping
    def _leaf_level(self, size):
        return {v: k for k, v in self.m.leaf_sizes.items()}[size]

    def occupied(self, va, level):
        """Whether mapping a page at `level` over va would overlap a mapping."""
        m = self.m
        lv, table = m.levels - 1, self.cr3
        if m.name == "pae":
            e = self.pdpte[(va >> 30) & 3]
            if not e & P:
                return True
            lv, table = 1, e & bits(m.M - 1, 12)
            if table >> 12 not in self.tables:
                return True
        while True:
            e = self.read(table + m.index(va, lv) * m.entry_bytes)
            if not e & P:
                return False
            if lv == 0 or e & PS:
                return True
            if m.frame_of(e, lv) >> 12 not in self.tables:
                return True          # a corrupt pointer: nothing is written through it
            if lv == level:
                return self._has_leaf(m.frame_of(e, lv), lv - 1)
            table = m.frame_of(e, lv)
            lv -= 1

    def _has_leaf(self, table, level):
        for i in range(1 << self.m.index_bits[level]):
            e = self.read(table + i * self.m.entry_bytes)
            if e & P and (level == 0 or e & PS or self._has_leaf(self.m.frame_of(e, level), level - 1)):
                return True
        return False

    def leaf_value(self, pa, size, flags):
        if size == "4K":
            return pa | flags
        if self.m.name == "x86_32":
            return (pa & 0xFFC00000) | ((pa >> 32) << 13) | flags | PS
        return pa | flags | PS

    def map_page(self, va, size, pfn, flags):
        """Frame first (pfn None: allocate), then missing tables top-down."""
        m = self.m
        target = self._leaf_level(size)
        if pfn is None:
            pfn = self.alloc.alloc(size, self.frame_limit(size))
            if pfn is None:
                raise MemoryError("no frame")
        lv, table = m.levels - 1, self.cr3
        if m.name == "pae":
            lv, table = 1, self.pdpte[(va >> 30) & 3] & bits(m.M - 1, 12)
        while lv > target:
            pa = table + m.index(va, lv) * m.entry_bytes
            e = self.read(pa)
            if not e & P:
                t = self.new_table()
                self.write(pa, t | P | RW | US)
                table = t
            else:
                table = m.frame_of(e, lv)
            lv -= 1
        pa = table + m.index(va, lv) * m.entry_bytes
        if self.read(pa) & P:
            self.flush_psc()
        self.write(pa, self.leaf_value(pfn << 12, size, flags))

    def _transaction(self, fn):
        """Run fn; on MemoryError restore everything as it was and re-raise."""
        alloc = copy.copy(self.alloc)
        alloc.used, alloc.rng = set(self.alloc.used), copy.deepcopy(self.alloc.rng)
        saved = (dict(self.mem), set(self.tables), alloc, copy.deepcopy(self.stats))
        try:
            fn()
        except MemoryError:
            self.mem, self.tables, self.alloc, self.stats = saved
            raise

    def flags(self, writable=True, user=True, nx=False, global_=False):
        return P | (RW if writable else 0) | (US if user else 0) | (G if global_ else 0) \
            | (XD if nx else 0)

    def in_space(self, vaddr, size):
        """The whole range is canonical (in one half) and inside the mode's width."""
        last = vaddr + size - 1
        return last < (1 << 64) and self.m.canonical(vaddr) and self.m.canonical(last) \
            and (vaddr >> 63) == (last >> 63)

    def map(self, vaddr, size, page_size="4K", pfn=None, **kw):
        """Returns False (and changes nothing) when an existing mapping is in the way or
        the range is outside the linear-address space, "table-frame" (nothing changed)
        when one of the explicit frames is a page-table page. Explicit frames inside
        phys_mem are reserved in the allocator first, before any table is allocated."""
        step = SIZE_BYTES[page_size]
        if isinstance(vaddr, (list, tuple)):     # several ranges (not overlapping), one call
            ranges = list(zip(vaddr, size, pfn if pfn is not None else [None] * len(vaddr)))
        else:
            ranges = [(vaddr, size, pfn)]
        if not all(self.in_space(v, n) for v, n, _ in ranges):
            return False
        pages = [(v + i * step, None if p is None else p + i * (step >> 12))
                 for v, n, p in ranges for i in range(n // step)]
        if any(self.occupied(v, self._leaf_level(page_size)) for v, _ in pages):
            return False
        frames = [range(p, p + (n // step) * (step >> 12)) for _, n, p in ranges
                  if p is not None]
        # explicit frames must fit the entry: MAXPHYADDR, and 20 bits in a 32-bit PTE
        limit = 1 << 20 if self.m.name == "x86_32" and page_size == "4K" else 1 << (self.m.M - 12)
        if any(r.stop > limit for r in frames):
            return False
        # only the table set is consulted: a 1G range is not enumerated here
        if any(t in r for r in frames for t in self.tables):
            return "table-frame"
        flags = self.flags(**kw)

        def run():
            # every explicit frame of the call first, then the pages and their tables
            for r in frames:
                self.alloc.reserve(range(r.start, min(r.stop, self.alloc.nframes)))
            for v, p in pages:
                self.map_page(v, page_size, p, flags)
        self._transaction(run)
        return True

    def leaves(self):
        """{vaddr (sign-extended): (level, entry address)} of every valid leaf."""
        out = {}
        m = self.m

        def visit(table, level, prefix):
            for i in range(1 << m.index_bits[level]):
                pa = table + i * m.entry_bytes
                e = self.read(pa)
                if not e & P or m.reserved(e, level):
                    continue
                va = prefix | (i << m.shift(level))
                if level == 0 or e & PS:
                    if m.width > 32 and va >> (m.width - 1):
                        va |= ((1 << 64) - 1) ^ ((1 << m.width) - 1)
                    out[va] = (level, pa)
                else:
                    visit(m.frame_of(e, level), level - 1, va)
        if m.name == "pae":
            for i in range(4):
                if self.pdpte[i] & P:
                    visit(self.pdpte[i] & bits(m.M - 1, 12), 1, i << 30)
        else:
            visit(self.cr3, m.levels - 1, 0)
        return out

    def _range_leaves(self, vaddr, size):
        last = vaddr + size - 1
        hits = []
        for va, (level, pa) in sorted(self.leaves().items()):
            span = 1 << self.m.shift(level)
            if va + span - 1 < vaddr or va > last:
                continue
            if va < vaddr or va + span - 1 > last:
                return None              # a large page is cut
            hits.append(pa)
        return hits

    def unmap(self, vaddr, size):
        if not self.in_space(vaddr, size):
            return None
        hits = self._range_leaves(vaddr, size)
        if hits is None:
            return None
        for pa in hits:
            self.write(pa, 0)
        return len(hits)

    def protect(self, vaddr, size, writable=None, user=None, nx=None):
        if not self.in_space(vaddr, size):
            return None
        hits = self._range_leaves(vaddr, size)
        if hits is None:
            return None
        for pa in hits:
            e = self.read(pa)
            for flag, bit in ((writable, RW), (user, US), (nx, XD)):
                if flag is not None:
                    e = (e | bit) if flag else (e & ~bit)
            self.write(pa, e)
        return len(hits)

    # ------------------------------------------------------------------ PSCs, demand
    def flush_psc(self):
        for tlb, _ in self.psc.values():
            tlb.flush()

    def invalidate(self, va, all_psc=True):
        if all_psc:                      # SDM 4.10.4.1: INVLPG drops every PSC entry
            self.flush_psc()
            return
        for k, (tlb, _) in self.psc.items():
            tlb.invalidate(self._psc_key(va, k), None)

    def demand_fault(self, va, level):
        """Map the page holding va: the largest size the policy allows whose region has
        no table yet (the not-present entry was at or above its level) and whose frame
        can be allocated, else smaller; False when nothing can be mapped."""
        m = self.m
        if m.name == "pae" and level == 2:
            return False
        sizes = []
        if self.huge == "always" and level >= 2 and 2 in m.leaf_sizes:
            sizes.append(m.leaf_sizes[2])
        if self.huge != "never" and level >= 1:
            sizes.append(m.leaf_sizes[1])
        sizes.append("4K")
        tried = False
        for i, size in enumerate(sizes):
            base = va & ~(SIZE_BYTES[size] - 1)
            if self.occupied(base, self._leaf_level(size)):
                continue                 # a corrupt table pointer on the way
            tried = True
            try:
                self._transaction(lambda: self.map_page(base, size, None, self.demand_flags))
            except MemoryError:
                continue
            self.stats["minor"][size] = self.stats["minor"].get(size, 0) + 1
            if i > 0:
                self.stats["huge_fallbacks"] += 1
            return True
        if not tried:
            return False
        raise MemoryError("physical memory exhausted")
