# The page-table engine: x86 page tables in their architectural formats inside a
# simulated physical memory, the page walk (A/D bits, access rights, #PF error codes,
# memory references per level), paging-structure caches and demand paging.
#
# Semantics (docs/pagetable.md is the user-facing statement with SDM section numbers;
# tests/reference_pagetable.py is the oracle):
# * levels are numbered from the leaf: 0 = PT, 1 = PD, 2 = PDPT, 3 = PML4, 4 = PML5;
# * a walk starts at CR3 (PAE: at the PDPTE register), or below the lowest level whose
#   PSC hits (PSCs are probed from level 1 upwards); it reads one entry per level, stops
#   at the first entry with P=0 (not present) or a reserved bit set (RSVD), and at a
#   leaf (level 0, or PS=1 where the level allows it) checks the access rights: U/S and
#   R/W are the AND over the levels, XD the OR (SDM 4.6);
# * every present, reserved-bit-free non-leaf entry read gets A=1; when the access
#   translates, each is filled into its level's PSC (SDM 4.10.3.1: PSC entries need A=1);
#   a page fault instead drops every PSC entry for the address (SDM 4.10.4.1: a #PF
#   invalidates the PSC entries that would be used for that linear address); the leaf
#   gets A=1 (and D=1 on a write) only when the access is allowed (SDM 4.8, 4.10.2.1);
# * map() builds missing tables with P|R/W|U/S (PAE PDPTEs: P), the leaf carries the
#   permissions; page-table pages come from the same physical allocator as data pages.
from libc.stdlib cimport calloc, realloc, free
from libc.string cimport memset, memcpy

from mmucore._types cimport (uint8_t, uint32_t, uint64_t, int32_t, int64_t, vaddr_t,
                             paddr_t, intp_t, asid_t, PS_4K, PS_2M, PS_4M, PS_1G, PS_COUNT,
                             OP_STORE, OP_IFETCH, OP_MODIFY, POLICY_LRU, POLICY_FIFO,
                             POLICY_RANDOM, POLICY_PLRU, POLICY_LFU, POLICY_SRRIP, page_shift)
from mmucore._rng cimport rng_seed_state, rng_below
from mmucore.tlb cimport (TLBState, TAG_INVALID, ASID_GLOBAL, tlb_init, tlb_free,
                          tlb_lookup, tlb_fill, tlb_invalidate, tlb_flush, tlb_reset_counters,
                          tlb_dump, tlb_restore)

import numpy as np

# the TLB kernels' hot internals: the walk's PSC lookups and fills inline them
include "_tlb_core.pxi"

cdef extern from *:
    """
    static inline int mmucore_pt_ctz64(uint64_t x) { return __builtin_ctzll(x); }
    """
    int ctz64 "mmucore_pt_ctz64"(uint64_t x) noexcept nogil

cdef enum:
    LOG_TABLE = 0x100       # log records: (pfn | LOG_FRAME, size code | LOG_TABLE),
    LOG_RUN = 0x200         # or (pfn | LOG_FRAME, (count << 16) | LOG_RUN): a reservation

cdef extern from *:
    """#define MMUCORE_LOG_FRAME ((uint64_t)1 << 63)"""
    const uint64_t LOG_FRAME "MMUCORE_LOG_FRAME"

#: The cimport contract's version (pagetable.pxd).
ABI_VERSION = PT_ABI_VERSION
#: sizeof(PTState) in this build.
STATE_SIZE = sizeof(PTState)
#: Sentinel of ``entry_paddrs`` slots a walk did not use.
ENTRY_PADDR_NONE = ENTRY_NONE
#: Error code given to addresses outside the mode's linear-address space (no walk).
FAULT_OUTSIDE = FAULT_GP
MODES = {"x86_32": MODE_X86_32, "pae": MODE_PAE, "x86_64": MODE_X86_64, "la57": MODE_LA57}
FAULT_BITS = {"P": FAULT_P, "W": FAULT_W, "U": FAULT_U, "RSVD": FAULT_RSVD, "I": FAULT_I,
              "PF": FAULT_PF, "GP": FAULT_GP}
ENTRY_BITS = {"P": PTE_P, "RW": PTE_RW, "US": PTE_US, "PWT": PTE_PWT, "PCD": PTE_PCD,
              "A": PTE_A, "D": PTE_D, "PS": PTE_PS, "G": PTE_G, "NX": PTE_NX}


def abi_check(int version, Py_ssize_t state_size):
    """Raise ImportError unless a consumer built against `version`/`state_size` matches."""
    if version != PT_ABI_VERSION or state_size != <Py_ssize_t>sizeof(PTState):
        raise ImportError(
            f"compiled against mmucore.pagetable ABI {version} (PTState {state_size} bytes) "
            f"but the installed engine is ABI {PT_ABI_VERSION} ({sizeof(PTState)} bytes): "
            f"rebuild the extension against the installed mmucore")


cdef inline uint64_t _bits(uint32_t hi, uint32_t lo) noexcept nogil:
    """Mask of bits hi..lo (inclusive); 0 when hi < lo."""
    if hi < lo:
        return 0
    if hi >= 63:
        return (~(<uint64_t>0)) << lo
    return (((<uint64_t>1) << (hi + 1)) - 1) & ((~(<uint64_t>0)) << lo)


# ----------------------------------------------------------------------------------------
# physical memory: the frame pool of page-table pages

# the pool readers (_slot, _page, _rd, _ent_ptr), the walk (_walk_w, _walk, _finish,
# _walk_demand) and its outcome codes, shared with mmu.pyx
include "_pt_walk.pxi"


cdef inline void _wr(PTState* s, paddr_t pa, uint64_t v) noexcept nogil:
    """Store an entry; pa is in a page-table page (never the zero page)."""
    cdef uint64_t* p = _page(s, pa >> 12)
    if s.esize == 8:
        p[(pa >> 3) & 511] = v
    else:
        (<uint32_t*>p)[(pa >> 2) & 1023] = <uint32_t>v


cdef inline void _or(PTState* s, paddr_t pa, uint64_t bits) noexcept nogil:
    _wr(s, pa, _rd(s, pa) | bits)


cdef intp_t _new_slot(PTState* s) except -1 nogil:
    cdef uint64_t* p
    cdef intp_t cap
    if s.pool_slots == s.pool_cap:
        cap = 2 * s.pool_cap
        p = <uint64_t*>realloc(s.pool, cap * 4096)
        if p == NULL:
            with gil:
                raise MemoryError(f"cannot grow the page-table frame pool to {cap} pages")
        s.pool = p
        s.pool_cap = cap
    s.pool_slots += 1
    return s.pool_slots - 1


cdef int _set_slot(PTState* s, uint64_t pfn, uint32_t slot) except -1 nogil:
    """Record a frame's pool slot (pfn < nframes), allocating its index chunk."""
    cdef uint32_t* chunk = s.slot_dir[pfn >> 10]
    if chunk == s.zero_chunk:
        chunk = <uint32_t*>calloc(1024, sizeof(uint32_t))
        if chunk == NULL:
            with gil:
                raise MemoryError("cannot grow the frame index")
        s.slot_dir[pfn >> 10] = chunk
    chunk[pfn & 1023] = slot
    return 0


# ----------------------------------------------------------------------------------------
# the physical allocator: a bitmap of frames plus per-2M and per-1G use counts

cdef inline void _mark(PTState* s, uint64_t f, uint64_t count, bint used) noexcept nogil:
    cdef uint64_t w, c
    if count == 1:
        if used:
            s.used[f >> 6] |= (<uint64_t>1) << (f & 63)
            s.used2m[f >> 9] += 1
            s.used1g[f >> 18] += 1
            s.nfree -= 1
        else:
            s.used[f >> 6] &= ~((<uint64_t>1) << (f & 63))
            s.used2m[f >> 9] -= 1
            s.used1g[f >> 18] -= 1
            s.nfree += 1
        return
    # an aligned run of whole 2M chunks (2M, 4M or 1G units)
    for w in range(f >> 6, (f + count) >> 6):
        s.used[w] = (~(<uint64_t>0)) if used else 0
    for c in range(f >> 9, (f + count) >> 9):
        s.used2m[c] = 512 if used else 0
    if used:
        s.used1g[f >> 18] += <uint32_t>count
        s.nfree -= count
    else:
        s.used1g[f >> 18] -= <uint32_t>count
        s.nfree += count


cdef void _mark_run(PTState* s, uint64_t f, uint64_t count, bint used) noexcept nogil:
    """Mark the frames [f, f + count) (all inside phys_mem, all now in the other state)
    used or free: single frames at the ends, whole 2M chunks (8 bitmap words and the
    chunk's count) in between, so a run of 262144 frames costs 512 steps."""
    cdef uint64_t end = f + count
    cdef uint64_t w
    while f < end:
        if (f & 511) == 0 and end - f >= 512:
            for w in range(f >> 6, (f >> 6) + 8):
                s.used[w] = (~(<uint64_t>0)) if used else 0
            s.used2m[f >> 9] = 512 if used else 0
            if used:
                s.used1g[f >> 18] += 512
                s.nfree -= 512
            else:
                s.used1g[f >> 18] -= 512
                s.nfree += 512
            f += 512
        else:
            _mark(s, f, 1, used)
            f += 1


cdef inline bint _unit_free(PTState* s, uint64_t u, uint32_t code) noexcept nogil:
    if code == PS_2M:
        return s.used2m[u] == 0
    if code == PS_4M:
        return s.used2m[2 * u] == 0 and s.used2m[2 * u + 1] == 0
    return s.used1g[u] == 0


cdef inline uint64_t _low_frames(PTState* s) noexcept nogil:
    """Frames below 4 GiB: all that a 32-bit entry (a 20-bit frame number) or a 32-bit
    CR3 can point at (SDM 4.3 tables 4-4 .. 4-6; PAE's CR3, SDM 4.4.1)."""
    return s.nframes if s.nframes < ((<uint64_t>1) << 20) else ((<uint64_t>1) << 20)


cdef int pt_alloc(PTState* s, uint32_t size_code, uint64_t* pfn) noexcept nogil:
    # x86_32: page tables and 4K pages are reached through 32-bit entries; only 4M pages
    # (PSE-36) may lie above 4 GiB
    if s.mode == MODE_X86_32 and size_code == PS_4K:
        return _alloc_below(s, size_code, _low_frames(s), pfn)
    return _alloc_below(s, size_code, s.nframes, pfn)


cdef int _alloc_below(PTState* s, uint32_t size_code, uint64_t limit,
                      uint64_t* pfn) noexcept nogil:
    """A free unit of `size_code` among frames [0, limit) (limit <= nframes): 0, or 1."""
    cdef uint32_t lg = page_shift(size_code) - 12
    cdef uint64_t fr = (<uint64_t>1) << lg
    cdef uint64_t nunits = limit >> lg
    cdef uint64_t nw = (limit + 63) >> 6
    cdef uint64_t last = ((((<uint64_t>1) << (limit & 63)) - 1) if (limit & 63)
                          else ~(<uint64_t>0))
    cdef uint64_t start, u, w, bits, i
    cdef int64_t found = -1
    if nunits == 0 or s.nfree < fr:
        return 1
    if s.alloc_kind == ALLOC_SEQUENTIAL:
        start = (s.cursor + fr - 1) >> lg
        if start >= nunits:
            start = 0
    else:
        start = rng_below(&s.rng, nunits)
    if size_code == PS_4K:
        w = start >> 6
        bits = ~s.used[w] & ((~(<uint64_t>0)) << (start & 63))
        for i in range(nw + 1):
            if w == nw - 1:
                bits &= last
            if bits:
                found = <int64_t>(w * 64 + <uint64_t>ctz64(bits))
                break
            w += 1
            if w == nw:
                w = 0
            bits = ~s.used[w]
    else:
        u = start
        for i in range(nunits):
            if _unit_free(s, u, size_code):
                found = <int64_t>(u * fr)
                break
            u += 1
            if u == nunits:
                u = 0
    if found < 0:
        return 1
    _mark(s, <uint64_t>found, fr, True)
    if s.alloc_kind == ALLOC_SEQUENTIAL:
        s.cursor = <uint64_t>found + fr
        if s.cursor >= s.nframes:
            s.cursor = 0
    s.st.frames_allocated += fr
    pfn[0] = <uint64_t>found
    return 0


# ----------------------------------------------------------------------------------------
# transactions: map() and demand faults either complete or change nothing

cdef int _log(PTState* s, uint64_t a, uint64_t b) except -1 nogil:
    cdef uint64_t* p
    cdef intp_t cap
    if s.log_len + 2 > s.log_cap:
        cap = 2 * s.log_cap if s.log_cap else 256
        p = <uint64_t*>realloc(s.log, cap * sizeof(uint64_t))
        if p == NULL:
            with gil:
                raise MemoryError("cannot grow the map() undo log")
        s.log = p
        s.log_cap = cap
    s.log[s.log_len] = a
    s.log[s.log_len + 1] = b
    s.log_len += 2
    return 0


cdef inline void _tx_begin(PTState* s, PTStats* saved) noexcept nogil:
    s.tx = True
    s.log_len = 0
    s.tx_cursor = s.cursor
    s.tx_rng = s.rng
    saved[0] = s.st


cdef void _tx_rollback(PTState* s, PTStats* saved) noexcept nogil:
    cdef intp_t i = s.log_len - 2
    cdef uint64_t a, b
    while i >= 0:
        a = s.log[i]
        b = s.log[i + 1]
        if a & LOG_FRAME and b & LOG_RUN:
            _mark_run(s, a & ~LOG_FRAME, b >> 16, False)     # an explicit-frame reservation
        elif a & LOG_FRAME:
            _mark(s, a & ~LOG_FRAME, (<uint64_t>1) << (page_shift(<uint32_t>(b & 0xFF)) - 12),
                  False)
            if b & LOG_TABLE:
                # no longer a page-table page (its pool slot stays allocated, unused)
                s.slot_dir[(a & ~LOG_FRAME) >> 10][(a & ~LOG_FRAME) & 1023] = 0
        else:
            _wr(s, a, b)
        i -= 2
    s.cursor = s.tx_cursor
    s.rng = s.tx_rng
    s.st = saved[0]
    s.tx = False
    s.log_len = 0


cdef inline void _tx_commit(PTState* s) noexcept nogil:
    s.tx = False
    s.log_len = 0


cdef int _alloc_logged(PTState* s, uint32_t code, uint64_t* pfn) except -1 nogil:
    """pt_alloc, recorded in the transaction log: 0 or 1 (no free unit)."""
    if pt_alloc(s, code, pfn):
        return 1
    if s.tx:
        _log(s, pfn[0] | LOG_FRAME, code)
    return 0


cdef int _reserve_run(PTState* s, uint64_t f, uint64_t count) except -1 nogil:
    """Mark a run of free frames allocated, recorded in the transaction log."""
    _mark_run(s, f, count, True)
    if s.tx:
        _log(s, f | LOG_FRAME, (count << 16) | LOG_RUN)
    return 0


cdef inline uint64_t _clip_end(PTState* s, uint64_t first, uint64_t count) noexcept nogil:
    """The end of [first, first + count) clipped to phys_mem (first < nframes)."""
    return s.nframes if count > s.nframes - first else first + count


cdef int _reserve(PTState* s, uint64_t first, uint64_t count) except -1 nogil:
    """Mark the free frames of [first, first + count) inside phys_mem allocated (the
    explicit frames of a map()), so the allocator never hands them out; frames already
    allocated (another mapping's) stay as they are, frames outside phys_mem are not
    tracked. Whole free or whole used 1G/2M chunks are recognised by their counts, so a
    1G page costs O(1) on a fresh region and at most 512 chunk steps otherwise."""
    cdef uint64_t f = first, end, start = 0, n = 0, step
    cdef bint free_
    if first >= s.nframes or count == 0:
        return 0
    end = _clip_end(s, first, count)
    while f < end:
        if (f & 262143) == 0 and end - f >= 262144 and \
                (s.used1g[f >> 18] == 0 or s.used1g[f >> 18] == 262144):
            step = 262144
            free_ = s.used1g[f >> 18] == 0
        elif (f & 511) == 0 and end - f >= 512 and \
                (s.used2m[f >> 9] == 0 or s.used2m[f >> 9] == 512):
            step = 512
            free_ = s.used2m[f >> 9] == 0
        else:
            step = 1
            free_ = not ((s.used[f >> 6] >> (f & 63)) & 1)
        if free_:
            if n == 0:
                start = f
            n += step
        elif n:
            _reserve_run(s, start, n)
            n = 0
        f += step
    if n:
        _reserve_run(s, start, n)
    return 0


cdef int64_t _table_frame_in(PTState* s, uint64_t first, uint64_t count) noexcept nogil:
    """The first page-table frame in [first, first + count), or -1 (index chunks
    without tables are skipped whole)."""
    cdef uint64_t f = first, end
    cdef uint32_t* chunk
    if first >= s.nframes or count == 0:
        return -1                 # page-table pages lie inside phys_mem
    end = _clip_end(s, first, count)
    while f < end:
        chunk = s.slot_dir[f >> 10]
        if chunk == s.zero_chunk:
            f = ((f >> 10) + 1) << 10
            continue
        if chunk[f & 1023]:
            return <int64_t>f
        f += 1
    return -1


cdef int _set(PTState* s, paddr_t pa, uint64_t v) except -1 nogil:
    """Store an entry, recorded in the transaction log."""
    if s.tx:
        _log(s, pa, _rd(s, pa))
    _wr(s, pa, v)
    return 0


cdef int _new_table(PTState* s, paddr_t* out, bint low) except -1 nogil:
    """A zeroed page-table page from the allocator (below 4 GiB when `low`, or in
    x86_32): 0, or 1 when no frame is free."""
    cdef uint64_t pfn
    cdef intp_t slot
    if low:
        if _alloc_below(s, PS_4K, _low_frames(s), &pfn):
            return 1
        if s.tx:
            _log(s, pfn | LOG_FRAME, PS_4K)
    elif _alloc_logged(s, PS_4K, &pfn):
        return 1
    if s.tx:
        s.log[s.log_len - 1] |= LOG_TABLE     # the frame just logged is a table
    slot = _slot(s, pfn)
    if slot == 0:
        slot = _new_slot(s)
        _set_slot(s, pfn, <uint32_t>slot)
    memset(s.pool + (slot << 9), 0, 4096)
    s.st.tables += 1
    out[0] = pfn << 12
    return 0


# ----------------------------------------------------------------------------------------
# life cycle

cdef int pt_init(PTState* s, uint32_t mode, uint32_t maxphyaddr, uint64_t nframes,
                 uint32_t alloc_kind, uint64_t seed, bint nxe, bint wp, bint smep,
                 bint smap) except -1 nogil:
    cdef uint32_t L, lo_m
    cdef uint64_t base, k
    cdef paddr_t t
    memset(s, 0, sizeof(PTState))
    if mode > MODE_LA57 or alloc_kind > ALLOC_RANDOM:
        with gil:
            raise ValueError(f"invalid paging mode {mode} or allocator {alloc_kind}")
    lo_m = 32
    if (mode == MODE_X86_32 and (maxphyaddr < 32 or maxphyaddr > 40)) or \
            (mode != MODE_X86_32 and (maxphyaddr < lo_m or maxphyaddr > 52)):
        with gil:
            raise ValueError(f"MAXPHYADDR {maxphyaddr} is outside the range of this mode "
                             f"(32..40 for x86_32, 32..52 otherwise)")
    if nframes < 1 or nframes >= ((<uint64_t>1) << 32) or \
            nframes > ((<uint64_t>1) << (maxphyaddr - 12)):
        with gil:
            raise ValueError(f"{nframes} physical frames do not fit MAXPHYADDR "
                             f"{maxphyaddr} (or 2**32 frames)")
    s.mode = mode
    s.maxphyaddr = maxphyaddr
    s.wp = wp
    s.smep = smep
    s.smap = smap
    for L in range(PT_MAX_LEVELS):
        s.leaf_code[L] = _NO_LEAF
    s.leaf_code[0] = PS_4K
    if mode == MODE_X86_32:
        s.levels = 2
        s.esize = 4
        s.va_bits = 32
        s.shift[0] = 12
        s.shift[1] = 22
        s.idx_mask[0] = 1023
        s.idx_mask[1] = 1023
        s.leaf_code[1] = PS_4M
        s.nxe = False                     # 32-bit paging has no XD bit (SDM 4.3)
        s.addr_mask = _bits(31, 12)
        # SDM table 4-4: a 4-MByte PDE has bits 21:(M-19) reserved (PSE-36, M <= 40)
        s.rsvd[3] = _bits(21, maxphyaddr - 19)
    else:
        s.esize = 8
        s.nxe = nxe
        s.addr_mask = _bits(maxphyaddr - 1, 12)
        if mode == MODE_PAE:
            s.levels = 3
            s.va_bits = 32
            s.leaf_code[1] = PS_2M
            base = _bits(62, maxphyaddr)          # SDM tables 4-8 .. 4-11: 62:M reserved
        else:
            s.levels = 4 if mode == MODE_X86_64 else 5
            s.va_bits = 48 if mode == MODE_X86_64 else 57
            s.leaf_code[1] = PS_2M
            s.leaf_code[2] = PS_1G
            base = _bits(51, maxphyaddr)          # SDM tables 4-14 .. 4-19: 51:M reserved
        if not nxe:
            base |= PTE_NX                        # XD is reserved when EFER.NXE = 0
        for L in range(s.levels):
            s.shift[L] = 12 + 9 * L
            s.idx_mask[L] = 511
            s.rsvd[2 * L] = base
            if L == 0:
                s.rsvd[1] = base                  # bit 7 of a PTE is PAT
            elif s.leaf_code[L] != _NO_LEAF:
                s.rsvd[2 * L + 1] = base | _bits(s.shift[L] - 1, 13)
            else:
                s.rsvd[2 * L + 1] = base | PTE_PS  # PS must be 0 (e.g. in a PML4E)
        if mode == MODE_PAE:
            s.idx_mask[2] = 3
    s.top = s.levels - 1
    s.nonleaf_flags = PTE_P | PTE_RW | PTE_US
    s.id_bit = smep or (mode != MODE_X86_32 and s.nxe)
    # allocator
    s.alloc_kind = alloc_kind
    s.nframes = nframes
    s.nfree = nframes
    s.rng = rng_seed_state(seed)
    s.nwords = (nframes + 63) >> 6
    s.used = <uint64_t*>calloc(s.nwords, sizeof(uint64_t))
    s.used2m = <uint32_t*>calloc((nframes + 511) >> 9, sizeof(uint32_t))
    s.used1g = <uint32_t*>calloc((nframes + 262143) >> 18, sizeof(uint32_t))
    s.dir_len = (nframes + 1023) >> 10
    s.slot_dir = <uint32_t**>calloc(s.dir_len, sizeof(uint32_t*))
    s.zero_chunk = <uint32_t*>calloc(1024, sizeof(uint32_t))
    if s.slot_dir != NULL and s.zero_chunk != NULL:
        for k in range(s.dir_len):
            s.slot_dir[k] = s.zero_chunk
    s.pool_cap = 16
    s.pool = <uint64_t*>calloc(s.pool_cap * 512, sizeof(uint64_t))
    s.pool_slots = 1                      # slot 0: the page every other frame reads as
    if s.used == NULL or s.used2m == NULL or s.used1g == NULL or s.pool == NULL or \
            s.slot_dir == NULL or s.zero_chunk == NULL:
        pt_free(s)
        with gil:
            raise MemoryError("cannot allocate the physical memory model")
    if nframes & 63:
        s.used[s.nwords - 1] = (~(<uint64_t>0)) << (nframes & 63)
    # the root: PAE's PDPT is addressed by the 32-bit CR3 (SDM 4.4.1); x86_32's tables
    # are below 4 GiB anyway (pt_alloc)
    if _new_table(s, &t, mode == MODE_PAE):
        pt_free(s)
        with gil:
            raise ValueError("physical memory has no frame for the root table")
    s.cr3 = t
    if mode == MODE_PAE:
        # the four page directories exist from the start (as Linux preallocates them),
        # so the PDPTE registers are loaded once (SDM 4.4.1)
        for k in range(4):
            if _new_table(s, &t, False):
                pt_free(s)
                with gil:
                    raise ValueError("physical memory has no frames for the page directories")
            _wr(s, s.cr3 + 8 * k, t | PTE_P)
        pt_load_cr3(s)
    return 0


cdef void pt_free(PTState* s) noexcept nogil:
    cdef uint32_t L
    for L in range(PT_MAX_LEVELS):
        if s.psc_on[L]:
            tlb_free(&s.psc[L])
            s.psc_on[L] = False
    s.any_psc = False
    cdef uint64_t d
    if s.slot_dir != NULL:
        for d in range(s.dir_len):
            if s.slot_dir[d] != s.zero_chunk:
                free(s.slot_dir[d])
    free(s.zero_chunk)
    s.zero_chunk = NULL
    free(s.slot_dir); free(s.pool); free(s.used); free(s.used2m); free(s.used1g)
    free(s.log)
    s.pool = NULL; s.slot_dir = NULL; s.used = NULL; s.used2m = NULL; s.used1g = NULL
    s.log = NULL
    s.dir_len = 0
    s.pool_slots = 0
    s.pool_cap = 0


cdef int pt_psc_init(PTState* s, uint32_t level, intp_t sets, intp_t ways,
                     uint32_t policy, uint64_t seed) except -1 nogil:
    if level < 1 or level > s.top or (s.mode == MODE_PAE and level == 2):
        with gil:
            raise ValueError(f"level {level} has no paging-structure cache in this mode")
    if s.psc_on[level]:
        tlb_free(&s.psc[level])
        s.psc_on[level] = False
    tlb_init(&s.psc[level], sets, ways, policy, 1 << PS_4K, seed)
    s.psc_on[level] = True
    s.any_psc = True
    return 0


cdef void pt_reset_counters(PTState* s) noexcept nogil:
    cdef uint32_t L
    memset(&s.st, 0, sizeof(PTStats))
    for L in range(PT_MAX_LEVELS):
        if s.psc_on[L]:
            tlb_reset_counters(&s.psc[L])


# ----------------------------------------------------------------------------------------
# checkpoints: the state as bytes and back

cdef inline size_t _n2m(PTState* s) noexcept nogil:
    return <size_t>((s.nframes + 511) >> 9)


cdef inline size_t _n1g(PTState* s) noexcept nogil:
    return <size_t>((s.nframes + 262143) >> 18)


cdef bytes pt_dump(PTState* s):
    cdef uint64_t d, nchunks = 0
    cdef uint32_t L
    cdef bytes t
    if s.log_len != 0:
        raise ValueError("cannot checkpoint a page table inside a map transaction")
    cdef PTState c
    memcpy(&c, s, sizeof(PTState))         # the scalars, without addresses
    c.pool = NULL; c.slot_dir = NULL; c.zero_chunk = NULL; c.used = NULL
    c.used2m = NULL; c.used1g = NULL; c.log = NULL; c.log_cap = 0
    for L in range(PT_MAX_LEVELS):
        memset(&c.psc[L], 0, sizeof(TLBState))     # dumped by tlb_dump below
    parts = [(<char*>&c)[:sizeof(PTState)],
             (<char*>s.pool)[:<size_t>s.pool_slots * 4096]]
    chunks = []
    for d in range(s.dir_len):
        if s.slot_dir[d] != s.zero_chunk:
            chunks.append((<char*>&d)[:8])
            chunks.append((<char*>s.slot_dir[d])[:4096])
            nchunks += 1
    parts.append((<char*>&nchunks)[:8])
    parts.extend(chunks)
    parts.append((<char*>s.used)[:<size_t>s.nwords * 8])
    parts.append((<char*>s.used2m)[:_n2m(s) * 4])
    parts.append((<char*>s.used1g)[:_n1g(s) * 4])
    for L in range(PT_MAX_LEVELS):
        if s.psc_on[L]:
            t = tlb_dump(&s.psc[L])
            d = len(t)
            parts.append((<char*>&d)[:8])
            parts.append(t)
    return b"".join(parts)


cdef int pt_restore(PTState* s, bytes buf) except -1:
    cdef const char* p = buf
    cdef size_t blen = <size_t>len(buf), off = 0, need
    cdef PTState keep
    cdef PTState* h
    cdef uint64_t d, k, nchunks, tl
    cdef uint64_t* pool
    cdef uint32_t* chunk
    cdef uint32_t L
    if blen < sizeof(PTState):
        raise ValueError(f"page-table state of {blen} bytes: too short")
    h = <PTState*>calloc(1, sizeof(PTState))
    if h == NULL:
        raise MemoryError()
    try:
        memcpy(h, p, sizeof(PTState))
        if h.mode != s.mode or h.maxphyaddr != s.maxphyaddr or h.nframes != s.nframes \
                or h.dir_len != s.dir_len or h.nwords != s.nwords:
            raise ValueError(f"page-table state of mode {h.mode}, {h.nframes} frames does "
                             f"not fit a table of mode {s.mode}, {s.nframes} frames")
        for L in range(PT_MAX_LEVELS):
            if h.psc_on[L] != s.psc_on[L]:
                raise ValueError(f"page-table state has PSC level {L} "
                                 f"{'on' if h.psc_on[L] else 'off'}, the table not")
        if h.pool_slots < 1 or h.pool_cap < h.pool_slots:
            raise ValueError("page-table state: bad pool size")
        off = sizeof(PTState)
        need = off + <size_t>h.pool_slots * 4096 + 8
        if blen < need:
            raise ValueError("page-table state: truncated pool")
        memcpy(&nchunks, p + off + <size_t>h.pool_slots * 4096, 8)
        if nchunks > h.dir_len:
            raise ValueError("page-table state: bad slot directory")
        need += <size_t>nchunks * (8 + 4096) + <size_t>h.nwords * 8 + _n2m(h) * 4 + _n1g(h) * 4
        if blen < need:
            raise ValueError("page-table state: truncated")
        # the pool, at the saved capacity
        if h.pool_cap != s.pool_cap:
            pool = <uint64_t*>realloc(s.pool, <size_t>h.pool_cap * 4096)
            if pool == NULL:
                raise MemoryError("cannot allocate the page-table frame pool")
            s.pool = pool
            s.pool_cap = h.pool_cap
        memset(s.pool, 0, <size_t>s.pool_cap * 4096)
        memcpy(s.pool, p + off, <size_t>h.pool_slots * 4096)
        off += <size_t>h.pool_slots * 4096 + 8
        # the slot directory: drop the fresh table's chunks, then the saved ones
        for d in range(s.dir_len):
            if s.slot_dir[d] != s.zero_chunk:
                free(s.slot_dir[d])
                s.slot_dir[d] = s.zero_chunk
        for k in range(nchunks):
            memcpy(&d, p + off, 8)
            if d >= s.dir_len or s.slot_dir[d] != s.zero_chunk:
                raise ValueError("page-table state: bad slot directory")
            chunk = <uint32_t*>calloc(1024, sizeof(uint32_t))
            if chunk == NULL:
                raise MemoryError("cannot allocate the slot directory")
            memcpy(chunk, p + off + 8, 4096)
            s.slot_dir[d] = chunk
            off += 8 + 4096
        memcpy(s.used, p + off, <size_t>s.nwords * 8)
        off += <size_t>s.nwords * 8
        memcpy(s.used2m, p + off, _n2m(s) * 4)
        off += _n2m(s) * 4
        memcpy(s.used1g, p + off, _n1g(s) * 4)
        off += _n1g(s) * 4
        # the scalars, keeping this state's arrays and PSC structures
        memcpy(&keep, s, sizeof(PTState))
        memcpy(s, h, sizeof(PTState))
        s.pool = keep.pool
        s.pool_cap = keep.pool_cap
        s.slot_dir = keep.slot_dir
        s.zero_chunk = keep.zero_chunk
        s.used = keep.used
        s.used2m = keep.used2m
        s.used1g = keep.used1g
        s.log = keep.log
        s.log_cap = keep.log_cap
        s.log_len = 0
        s.tx = False
        for L in range(PT_MAX_LEVELS):
            memcpy(&s.psc[L], &keep.psc[L], sizeof(TLBState))
        for L in range(PT_MAX_LEVELS):
            if s.psc_on[L]:
                if blen < off + 8:
                    raise ValueError("page-table state: truncated PSCs")
                memcpy(&tl, p + off, 8)
                if blen < off + 8 + tl:
                    raise ValueError("page-table state: truncated PSCs")
                tlb_restore(&s.psc[L], buf[off + 8:off + 8 + tl])
                off += 8 + tl
        if off != blen:
            raise ValueError(f"page-table state of {blen} bytes, expected {off}")
    finally:
        free(h)
    return 0


# ----------------------------------------------------------------------------------------
# raw entries and CR3

cdef uint64_t pt_read_entry(PTState* s, paddr_t pa) noexcept nogil:
    return _rd(s, pa)


cdef int pt_write_entry(PTState* s, paddr_t pa, uint64_t value) noexcept nogil:
    if _slot(s, pa >> 12) == 0:
        return -1
    if s.esize == 4 and value >> 32:
        return -1
    _wr(s, pa & ~(<uint64_t>(s.esize - 1)), value)
    return 0


cdef int pt_load_cr3(PTState* s) noexcept nogil:
    cdef uint64_t e[4]
    cdef uint64_t rsvd
    cdef int i
    if s.mode == MODE_PAE:
        # SDM 4.4.1 / table 4-8: bits 2:1, 8:5 and 63:M of a present PDPTE are reserved
        rsvd = _bits(2, 1) | _bits(8, 5) | _bits(63, s.maxphyaddr)
        for i in range(4):
            e[i] = _rd(s, s.cr3 + 8 * i)
            if (e[i] & PTE_P) and (e[i] & rsvd):
                return -1
        for i in range(4):
            s.pdpte[i] = e[i]
        s.st.pdpte_loads += 1
    pt_flush_psc(s)
    return 0


# ----------------------------------------------------------------------------------------
# the walk

cdef uint32_t pt_walk_nodemand(PTState* s, vaddr_t va, uint32_t access,
                               WalkOut* out) noexcept nogil:
    s.st.accesses += 1
    return _finish(s, _walk(s, va, access, out, s.psc, _own_psc_mask(s), 0), access, out)


# ----------------------------------------------------------------------------------------
# mapping

cdef inline uint64_t _leaf_entry(PTState* s, uint64_t pfn, uint32_t code,
                                 uint64_t flags) noexcept nogil:
    cdef uint64_t pa = pfn << 12
    if code == PS_4K:
        return pa | flags
    if s.esize == 4:
        return (pa & <uint64_t>0xFFC00000) | ((pa >> 32) << 13) | flags | PTE_PS
    return pa | flags | PTE_PS


cdef inline uint32_t _level_of(PTState* s, uint32_t code) noexcept nogil:
    cdef uint32_t L
    for L in range(s.levels):
        if s.leaf_code[L] == code:
            return L
    return 0


cdef int _map_page(PTState* s, vaddr_t va, uint32_t Lt, uint64_t pfn, bint alloc,
                   uint64_t flags) except -1 nogil:
    """Map one page at level Lt (the caller checked that nothing is in the way): its
    frame first (when alloc), then the missing tables top-down. 0, or 1 = no memory."""
    cdef int L
    cdef paddr_t table, pa, t
    cdef uint64_t e
    cdef uint32_t code = PS_4K if Lt == 0 else s.leaf_code[Lt]
    if alloc:
        if _alloc_logged(s, code, &pfn):
            return 1
    L = s.top
    table = s.cr3
    if s.mode == MODE_PAE:
        table = s.pdpte[(va >> 30) & 3] & s.addr_mask
        L = 1
    while L > <int>Lt:
        pa = table + ((va >> s.shift[L]) & s.idx_mask[L]) * s.esize
        e = _rd(s, pa)
        if not (e & PTE_P):
            if _new_table(s, &t, False):
                return 1
            _set(s, pa, t | s.nonleaf_flags)
            table = t
        else:
            table = e & s.addr_mask
        L -= 1
    pa = table + ((va >> s.shift[L]) & s.idx_mask[L]) * s.esize
    if _rd(s, pa) & PTE_P:
        # an empty table is replaced by a large page: cached entries for it are stale
        pt_flush_psc(s)
    _set(s, pa, _leaf_entry(s, pfn, code, flags))
    return 0


cdef inline bint _is_table(PTState* s, paddr_t pa) noexcept nogil:
    return _slot(s, pa >> 12) != 0


cdef bint _subtree_has_leaf(PTState* s, paddr_t table, int L) noexcept nogil:
    cdef uint64_t i, e
    for i in range(s.idx_mask[L] + 1):
        e = _rd(s, table + i * s.esize)
        if e & PTE_P:
            if L == 0 or (e & PTE_PS):
                return True
            if _subtree_has_leaf(s, e & s.addr_mask, L - 1):
                return True
    return False


cdef bint _page_conflicts(PTState* s, vaddr_t va, uint32_t Lt) noexcept nogil:
    cdef int L = s.top
    cdef paddr_t table = s.cr3
    cdef uint64_t e
    if s.mode == MODE_PAE:
        e = s.pdpte[(va >> 30) & 3]
        if not (e & PTE_P):
            return True           # no page directory: reload CR3 with a present PDPTE
        table = e & s.addr_mask
        if not _is_table(s, table):
            return True
        L = 1
    while L > <int>Lt:
        e = _rd(s, table + ((va >> s.shift[L]) & s.idx_mask[L]) * s.esize)
        if not (e & PTE_P):
            return False
        if e & PTE_PS:
            return True           # a large page covers it
        table = e & s.addr_mask
        if not _is_table(s, table):
            return True           # a corrupt entry: map() will not write through it
        L -= 1
    e = _rd(s, table + ((va >> s.shift[L]) & s.idx_mask[L]) * s.esize)
    if not (e & PTE_P):
        return False
    if L == 0 or (e & PTE_PS):
        return True
    if not _is_table(s, e & s.addr_mask):
        return True
    return _subtree_has_leaf(s, e & s.addr_mask, L - 1)


cdef int pt_check_map(PTState* s, const vaddr_t* va, const uint64_t* npages, intp_t n,
                      uint32_t size_code, intp_t* bad_index, vaddr_t* bad) noexcept nogil:
    cdef uint32_t Lt = _level_of(s, size_code)
    cdef uint64_t size = (<uint64_t>1) << s.shift[Lt]
    cdef intp_t i
    cdef uint64_t j, v
    for i in range(n):
        for j in range(npages[i]):
            v = va[i] + j * size
            if _page_conflicts(s, v, Lt):
                bad_index[0] = i
                bad[0] = v
                return PT_CONFLICT
    return PT_OK


cdef int _raise_table_frame(intp_t i, uint64_t pfn, uint64_t frame) except -1 nogil:
    """The error path of a map() whose explicit frames include a page-table page."""
    with gil:
        raise ValueError(f"pfn[{i}] = {pfn:#x}: frame {frame:#x} of its pages is a "
                         f"page-table page; mapping it as data would alias the table "
                         f"(nothing was mapped)")


cdef inline uint64_t _frames_of(uint64_t npages, uint64_t frames) noexcept nogil:
    """npages * frames, saturated (the ranges are clipped to phys_mem anyway)."""
    if npages > (~(<uint64_t>0)) // frames:
        return ~(<uint64_t>0)
    return npages * frames


cdef int pt_map(PTState* s, const vaddr_t* va, const uint64_t* npages,
                const uint64_t* pfn, intp_t n, uint32_t size_code, bint alloc,
                uint64_t flags) except -1 nogil:
    cdef uint32_t Lt = _level_of(s, size_code)
    cdef uint64_t size = (<uint64_t>1) << s.shift[Lt]
    cdef uint64_t frames = size >> 12
    cdef intp_t i
    cdef uint64_t j, p = 0, nfr
    cdef int64_t tf
    cdef PTStats saved
    if not alloc:
        # explicit frames: none may be a page-table page (checked before any change)
        for i in range(n):
            nfr = _frames_of(npages[i], frames)
            tf = _table_frame_in(s, pfn[i], nfr)
            if tf >= 0:
                _raise_table_frame(i, pfn[i], <uint64_t>tf)
    _tx_begin(s, &saved)
    if not alloc:
        # reserve every explicit frame inside phys_mem before any table is allocated,
        # so the tables of this very call cannot land on them; undone with the rest
        for i in range(n):
            _reserve(s, pfn[i], _frames_of(npages[i], frames))
    for i in range(n):
        for j in range(npages[i]):
            if not alloc:
                p = pfn[i] + j * frames
            if _map_page(s, va[i] + j * size, Lt, p, alloc, flags):
                _tx_rollback(s, &saved)
                return PT_NO_MEMORY
    _tx_commit(s)
    return PT_OK


cdef intp_t pt_range_op(PTState* s, vaddr_t first, vaddr_t last, uint32_t op,
                        uint64_t set_bits, uint64_t clear_bits, vaddr_t* bad) noexcept nogil:
    cdef vaddr_t va = first, base, nva
    cdef int L
    cdef paddr_t table, pa
    cdef uint64_t e, region
    cdef intp_t count = 0
    while True:
        L = s.top
        table = s.cr3
        region = 0
        if s.mode == MODE_PAE:
            e = s.pdpte[(va >> 30) & 3]
            if not (e & PTE_P):
                region = (<uint64_t>1) << 30
            table = e & s.addr_mask
            L = 1
        while region == 0:
            pa = table + ((va >> s.shift[L]) & s.idx_mask[L]) * s.esize
            e = _rd(s, pa)
            if not (e & PTE_P) or (e & s.rsvd[2 * L + ((e >> 7) & 1)]):
                # not present, or not a translation (a reserved bit): left alone
                region = (<uint64_t>1) << s.shift[L]
                break
            if L == 0 or (e & PTE_PS):
                region = (<uint64_t>1) << s.shift[L]
                base = va & ~(region - 1)
                if base < first or base + (region - 1) > last:
                    bad[0] = base
                    return -1
                if op == 1:
                    _wr(s, pa, 0)
                elif op == 2:
                    _wr(s, pa, (e & ~clear_bits) | set_bits)
                count += 1
                break
            table = e & s.addr_mask
            L -= 1
        nva = (va & ~(region - 1)) + region
        if nva == 0 or nva - 1 >= last:
            break
        va = nva
    return count


# ----------------------------------------------------------------------------------------
# demand paging

cdef int _demand(PTState* s, vaddr_t va, int64_t level) except -1 nogil:
    """Map the page holding va after a not-present fault found at `level`: the largest
    size the huge-page policy allows whose region has no table yet and whose frame can
    be allocated. 0 = mapped, 1 = no memory, 2 = cannot (PAE PDPTE not present, or a
    corrupt table pointer on the way)."""
    cdef uint32_t cand[3]
    cdef int nc = 0, i
    cdef uint32_t Lt
    cdef PTStats saved
    cdef bint tried = False
    if s.mode == MODE_PAE and level == 2:
        return 2
    if s.huge == HUGE_ALWAYS and level >= 2 and s.leaf_code[2] == PS_1G:
        cand[nc] = 2
        nc += 1
    if s.huge != HUGE_NEVER and level >= 1:
        cand[nc] = 1
        nc += 1
    cand[nc] = 0
    nc += 1
    for i in range(nc):
        Lt = cand[i]
        if _page_conflicts(s, va, Lt):
            continue              # a corrupt table pointer on the way: not mapped
        tried = True
        _tx_begin(s, &saved)
        if _map_page(s, va & ~((((<uint64_t>1) << s.shift[Lt])) - 1), Lt, 0, True,
                     s.demand_flags):
            _tx_rollback(s, &saved)
            continue
        _tx_commit(s)
        s.st.minor_faults[PS_4K if Lt == 0 else s.leaf_code[Lt]] += 1
        if i > 0:
            s.st.huge_fallbacks += 1
        return 0
    return 1 if tried else 2


cdef int _raise_no_memory(PTState* s, vaddr_t va) except -1 nogil:
    """The error path of a demand fault that finds no free frame (kept out of the loop)."""
    with gil:
        low = ("; x86_32 page tables and 4K pages must lie below 4 GiB"
               if s.mode == MODE_X86_32 and s.nframes > _low_frames(s) else "")
        raise MemoryError(
            f"physical memory exhausted: no free frame for a demand fault at {va:#x} "
            f"({s.nframes} frames of 4 KiB, {s.nfree} free{low}); the accesses before "
            f"it have taken effect")


cdef int64_t pt_walk(PTState* s, vaddr_t va, uint32_t access, WalkOut* out) except -1 nogil:
    return _walk_demand(s, va, access, out, s.psc, _own_psc_mask(s), 0)


cdef int64_t pt_walk_ext(PTState* s, vaddr_t va, uint32_t access, WalkOut* out,
                         TLBState* psc, uint32_t psc_mask, asid_t asid) except -1 nogil:
    return _walk_demand(s, va, access, out, psc, psc_mask, asid)


cdef intp_t pt_psc_invalidate_ext(PTState* s, vaddr_t va, TLBState* psc, uint32_t psc_mask,
                                  asid_t asid) noexcept nogil:
    cdef uint32_t L
    cdef intp_t n = 0
    cdef uint64_t vmask = ((<uint64_t>1) << s.va_bits) - 1
    for L in range(1, s.levels):
        if (psc_mask >> L) & 1:
            n += tlb_invalidate(&psc[L], ((va & vmask) >> s.shift[L]) << 12, asid, False)
    return n


cdef int pt_find_leaf(PTState* s, vaddr_t va, int64_t* level, uint64_t* entry) noexcept nogil:
    # Read-only descent (no A bits, no counters): 1 with the present leaf holding va,
    # 0 with *level = the level of the first not-present entry, -1 when va is outside the
    # linear space or the path holds an entry with a reserved bit set.
    cdef int L = s.top
    cdef paddr_t table = s.cr3
    cdef uint64_t e
    cdef uint32_t sh
    if s.va_bits == 32:
        if va >> 32:
            return -1
    else:
        sh = 64 - s.va_bits
        if <uint64_t>((<int64_t>(va << sh)) >> sh) != va:
            return -1
    if s.mode == MODE_PAE:
        e = s.pdpte[(va >> 30) & 3]
        if not (e & PTE_P):
            level[0] = 2
            return 0
        table = e & s.addr_mask
        L = 1
    while True:
        e = _rd(s, table + ((va >> s.shift[L]) & s.idx_mask[L]) * s.esize)
        if not (e & PTE_P):
            level[0] = L
            return 0
        if e & s.rsvd[2 * L + ((e >> 7) & 1)]:
            return -1
        if L == 0 or (e & PTE_PS):
            level[0] = L
            entry[0] = e
            return 1
        table = e & s.addr_mask
        L -= 1


cdef int pt_demand_fault(PTState* s, vaddr_t va, int64_t level) except -1 nogil:
    """After a walk's not-present fault at `level`: map the page as demand paging does.
    0 = mapped, 1 = cannot (the walk's fault stands); MemoryError when frames run out."""
    cdef int r = _demand(s, va, level)
    if r == 1:
        _raise_no_memory(s, va)
    return 0 if r == 0 else 1


cdef int pt_demand_map(PTState* s, vaddr_t va) except -1 nogil:
    cdef int64_t level = 0
    cdef uint64_t e = 0
    cdef int r = pt_find_leaf(s, va, &level, &e)
    if r != 0:
        return 1
    r = _demand(s, va, level)
    if r == 1:
        _raise_no_memory(s, va)
    return 0 if r == 0 else 1


cdef intp_t pt_walk_batch(PTState* s, const vaddr_t* va, intp_t n, const uint8_t* ops,
                          uint32_t access, bint user, paddr_t* paddr, uint32_t* fault,
                          uint8_t* refs, uint8_t* size_code,
                          paddr_t* entries) except -1 nogil:
    cdef WalkOut o
    cdef intp_t i, k, faults = 0
    cdef intp_t cols = 2 if s.mode == MODE_PAE else s.levels
    cdef uint32_t acc_of[256]
    cdef uint32_t ub = ACC_USER if user else 0
    cdef uint32_t acc = access | ub
    cdef int64_t f
    cdef uint32_t psc_mask = _own_psc_mask(s)
    if ops != NULL:
        for k in range(256):
            acc_of[k] = ub
        acc_of[<int>OP_STORE] = ACC_WRITE | ub
        acc_of[<int>OP_MODIFY] = ACC_WRITE | ub
        acc_of[<int>OP_IFETCH] = ACC_IFETCH | ub
    for i in range(n):
        if ops != NULL:
            acc = acc_of[ops[i]]
        f = _walk_demand(s, va[i], acc, &o, s.psc, psc_mask, 0)
        paddr[i] = o.paddr
        fault[i] = <uint32_t>f
        if f:
            faults += 1
        if refs != NULL:
            refs[i] = <uint8_t>o.refs
        if size_code != NULL:
            size_code[i] = <uint8_t>(o.size_code if f == 0 else 255)
        if entries != NULL:
            for k in range(cols):
                entries[i * cols + k] = o.entry_paddr[k] if k < o.n_entries else ENTRY_NONE
    return faults


# ----------------------------------------------------------------------------------------
# PSC maintenance

cdef intp_t pt_invalidate(PTState* s, vaddr_t va, bint all_psc) noexcept nogil:
    cdef uint32_t L
    cdef intp_t n = 0
    cdef uint64_t vmask = ((<uint64_t>1) << s.va_bits) - 1
    if all_psc:
        return pt_flush_psc(s)
    for L in range(1, s.levels):
        if s.psc_on[L]:
            n += tlb_invalidate(&s.psc[L], ((va & vmask) >> s.shift[L]) << 12, 0, True)
    return n


cdef intp_t pt_flush_psc(PTState* s) noexcept nogil:
    cdef uint32_t L
    cdef intp_t n = 0
    for L in range(1, s.levels):
        if s.psc_on[L]:
            n += tlb_flush(&s.psc[L], False)
    return n


cdef _collect(PTState* s, paddr_t table, int L, uint64_t prefix, list out):
    """Append the present, reserved-bit-free leaves under `table` (level L) to out."""
    cdef uint64_t i, e, va
    cdef uint32_t sh
    for i in range(s.idx_mask[L] + 1):
        e = _rd(s, table + i * s.esize)
        if not (e & PTE_P):
            continue
        va = prefix | (i << s.shift[L])
        if (e & s.rsvd[2 * L + ((e >> 7) & 1)]) != 0:
            continue
        if L == 0 or (e & PTE_PS):
            if s.va_bits > 32:
                sh = 64 - s.va_bits
                va = <uint64_t>((<int64_t>(va << sh)) >> sh)
            out.append((va, L, e, table + i * s.esize))
        else:
            _collect(s, e & s.addr_mask, L - 1, va, out)


# ----------------------------------------------------------------------------------------
# the owning class: thin checked wrappers, one nogil call each

cdef class PageTableCore:
    """One address space's page tables (engine object; use ``pyapi.PageTable``).

    ``mode`` is a code from ``MODES``; ``nframes`` the physical memory in 4 KiB frames;
    ``alloc_kind`` 0 = sequential, 1 = random.

    >>> core = PageTableCore(MODES["x86_64"], 52, 1024, 0, 0)
    >>> core.levels, hex(core.cr3)
    (4, '0x0')
    """

    def __cinit__(self, uint32_t mode, uint32_t maxphyaddr, uint64_t nframes,
                  uint32_t alloc_kind=0, uint64_t seed=0, bint nxe=True, bint wp=True,
                  bint smep=False, bint smap=False):
        memset(&self.st, 0, sizeof(PTState))
        pt_init(&self.st, mode, maxphyaddr, nframes, alloc_kind, seed, nxe, wp, smep, smap)

    def __dealloc__(self):
        pt_free(&self.st)

    cdef PTState* state(self) noexcept:
        return &self.st

    @property
    def mode(self):
        return self.st.mode

    @property
    def levels(self):
        return self.st.levels

    @property
    def entry_size(self):
        return self.st.esize

    @property
    def maxphyaddr(self):
        return self.st.maxphyaddr

    @property
    def va_bits(self):
        return self.st.va_bits

    @property
    def cr3(self):
        return self.st.cr3

    @property
    def nframes(self):
        return self.st.nframes

    @property
    def free_frames(self):
        return self.st.nfree

    @property
    def record_columns(self):
        return 2 if self.st.mode == MODE_PAE else self.st.levels

    @property
    def pdpte(self):
        return [self.st.pdpte[i] for i in range(4)]

    @property
    def nxe(self):
        return bool(self.st.nxe)

    def leaf_levels(self):
        """{page-size code: level} of the leaves this mode has."""
        return {self.st.leaf_code[L]: L for L in range(self.st.levels)
                if self.st.leaf_code[L] != _NO_LEAF}

    def level_shift(self, uint32_t level):
        return self.st.shift[level]

    def psc_init(self, uint32_t level, intp_t sets, intp_t ways, uint32_t policy,
                 uint64_t seed=0):
        pt_psc_init(&self.st, level, sets, ways, policy, seed)

    def psc_levels(self):
        return [L for L in range(PT_MAX_LEVELS) if self.st.psc_on[L]]

    def set_demand(self, bint on, uint32_t huge=HUGE_NEVER, uint64_t flags=0):
        self.st.demand = on
        self.st.huge = huge
        self.st.demand_flags = flags

    def read_entry(self, uint64_t pa):
        return pt_read_entry(&self.st, pa)

    def write_entry(self, uint64_t pa, uint64_t value):
        if pt_write_entry(&self.st, pa, value):
            raise ValueError(f"{pa:#x} is not in a page-table page (or the value does not "
                             f"fit a {self.st.esize}-byte entry)")

    def is_table_frame(self, uint64_t pfn):
        return _slot(&self.st, pfn) != 0

    def load_cr3(self):
        if pt_load_cr3(&self.st):
            raise ValueError("a present PDPTE has reserved bits set: MOV to CR3 would "
                             "#GP (SDM 4.4.1); the PDPTE registers are unchanged")

    def walk(self, const uint64_t[::1] vaddrs not None, const uint8_t[::1] ops=None,
             uint32_t access=0, bint user=True, uint64_t[::1] paddr=None,
             uint32_t[::1] fault=None, uint8_t[::1] refs=None, uint8_t[::1] size_code=None,
             uint64_t[::1] entries=None):
        """Walk every address in one nogil call; returns the number of faults."""
        cdef intp_t n = vaddrs.shape[0]
        cdef const uint8_t* po = NULL
        cdef uint8_t* pr = NULL
        cdef uint8_t* ps = NULL
        cdef uint64_t* pe = NULL
        cdef intp_t cols = self.record_columns
        cdef intp_t faults
        if paddr is None or paddr.shape[0] != n or fault is None or fault.shape[0] != n:
            raise ValueError("paddr and fault must have one slot per address")
        if ops is not None:
            if ops.shape[0] != n:
                raise ValueError(f"ops has {ops.shape[0]} values for {n} addresses")
            if n:
                po = &ops[0]
        if refs is not None:
            if refs.shape[0] != n:
                raise ValueError(f"refs has {refs.shape[0]} slots for {n} addresses")
            if n:
                pr = &refs[0]
        if size_code is not None:
            if size_code.shape[0] != n:
                raise ValueError(f"size_code has {size_code.shape[0]} slots for {n} addresses")
            if n:
                ps = &size_code[0]
        if entries is not None:
            if entries.shape[0] != n * cols:
                raise ValueError(f"entries has {entries.shape[0]} slots for {n} x {cols}")
            if n:
                pe = &entries[0]
        if n == 0:
            return 0
        with nogil:
            faults = pt_walk_batch(&self.st, &vaddrs[0], n, po, access, user, &paddr[0],
                                   &fault[0], pr, ps, pe)
        return faults

    def check_map(self, const uint64_t[::1] vaddrs not None,
                  const uint64_t[::1] npages not None, uint32_t size_code):
        """(-1, 0) when the ranges can be mapped, else (range index, conflicting vaddr)."""
        cdef intp_t bi = -1
        cdef vaddr_t bad = 0
        cdef int r
        if npages.shape[0] != vaddrs.shape[0]:
            raise ValueError("npages must have one value per range")
        if vaddrs.shape[0] == 0:
            return (-1, 0)
        with nogil:
            r = pt_check_map(&self.st, &vaddrs[0], &npages[0], vaddrs.shape[0], size_code,
                             &bi, &bad)
        if r == PT_OK:
            return (-1, 0)
        return (bi, bad)

    def map(self, const uint64_t[::1] vaddrs not None, const uint64_t[::1] npages not None,
            const uint64_t[::1] pfns not None, uint32_t size_code, bint alloc,
            uint64_t flags):
        """Map checked ranges as one transaction: PT_OK (0) or PT_NO_MEMORY (1)."""
        cdef int r
        cdef intp_t n = vaddrs.shape[0]
        if npages.shape[0] != n or pfns.shape[0] != n:
            raise ValueError("npages and pfns must have one value per range")
        if n == 0:
            return PT_OK
        with nogil:
            r = pt_map(&self.st, &vaddrs[0], &npages[0], &pfns[0], n, size_code, alloc,
                       flags)
        return r

    def range_op(self, uint64_t first, uint64_t last, uint32_t op, uint64_t set_bits=0,
                 uint64_t clear_bits=0):
        """(leaves changed, -1) or (-1, base of a huge page the range cuts)."""
        cdef vaddr_t bad = 0
        cdef intp_t r
        with nogil:
            r = pt_range_op(&self.st, first, last, op, set_bits, clear_bits, &bad)
        if r >= 0:
            return (r, -1)
        return (-1, bad)

    def invalidate(self, const uint64_t[::1] vaddrs not None, bint all_psc=True):
        cdef intp_t i, n = vaddrs.shape[0]
        cdef intp_t dropped = 0
        with nogil:
            for i in range(n):
                dropped += pt_invalidate(&self.st, vaddrs[i], all_psc)
        return dropped

    def flush_psc(self):
        return pt_flush_psc(&self.st)

    def allocator_state(self):
        """Copies of the allocator's bitmap (uint64 words, bit f = frame f allocated;
        tail bits past nframes set) and its per-2M and per-1G counts (for tests)."""
        return (np.asarray(<uint64_t[:self.st.nwords]>self.st.used).copy(),
                np.asarray(<uint32_t[:(self.st.nframes + 511) >> 9]>self.st.used2m).copy(),
                np.asarray(<uint32_t[:(self.st.nframes + 262143) >> 18]>self.st.used1g).copy())

    def reserve(self, const uint64_t[::1] first, const uint64_t[::1] count):
        """Mark the frames of the runs [first[i], first[i] + count[i]) inside phys_mem
        allocated (as map() does with explicit frames), outside any transaction."""
        cdef intp_t i
        if first.shape[0] != count.shape[0]:
            raise ValueError("first and count differ in length")
        with nogil:
            for i in range(first.shape[0]):
                _reserve(&self.st, first[i], count[i])

    def alloc(self, uint32_t size_code):
        """A frame from the allocator (for tests): its pfn, or -1 when none is free."""
        cdef uint64_t pfn = 0
        if pt_alloc(&self.st, size_code, &pfn):
            return -1
        return pfn

    def counters(self):
        cdef PTStats* t = &self.st.st
        return {"accesses": t.accesses, "walks": t.walks,
                "refs": [t.refs[i] for i in range(self.st.levels)],
                "psc_hits": [t.psc_hits[i] for i in range(self.st.levels)],
                "psc_misses": [t.psc_misses[i] for i in range(self.st.levels)],
                "translations": [t.translations[i] for i in range(4)],
                "faults_not_present": t.faults_not_present,
                "faults_protection": t.faults_protection,
                "faults_reserved": t.faults_reserved, "faults_outside": t.faults_outside,
                "minor_faults": [t.minor_faults[i] for i in range(4)],
                "huge_fallbacks": t.huge_fallbacks, "pdpte_loads": t.pdpte_loads,
                "tables": t.tables, "frames_allocated": t.frames_allocated}

    def psc_counters(self, uint32_t level):
        cdef TLBState* t
        if level >= PT_MAX_LEVELS or not self.st.psc_on[level]:
            raise ValueError(f"level {level} has no paging-structure cache")
        t = &self.st.psc[level]
        return {"entries": t.entries, "ways": t.ways, "accesses": t.accesses,
                "hits": t.hits, "misses": t.misses, "fills": t.fills,
                "evictions": t.evictions, "invalidations": t.invalidations,
                "flushes": t.flushes}

    def reset_counters(self):
        pt_reset_counters(&self.st)

    def dump(self):
        """The complete state (tables, allocator, PSCs, counters) as bytes, for
        :meth:`restore` into a table of the same mode and physical memory.

        >>> a = PageTableCore(MODES["x86_64"], 52, 1024, 0, 0)
        >>> a.set_demand(True, 0, 7)
        >>> _ = a._py_walk(0x1234)
        >>> b = PageTableCore(MODES["x86_64"], 52, 1024, 0, 0)
        >>> b.restore(a.dump())
        >>> b.dump() == a.dump(), b._py_walk(0x1234)[0]
        (True, 0)
        """
        return pt_dump(&self.st)

    def restore(self, bytes state not None):
        """Restore a state from :meth:`dump` (``ValueError`` if it does not fit)."""
        pt_restore(&self.st, state)

    def leaves(self):
        """Every present leaf as (vaddr, level, entry, entry paddr), in address order."""
        out = []
        cdef int i
        if self.st.mode == MODE_PAE:
            for i in range(4):
                if self.st.pdpte[i] & PTE_P:
                    _collect(&self.st, self.st.pdpte[i] & self.st.addr_mask, 1,
                             (<uint64_t>i) << 30, out)
        else:
            _collect(&self.st, self.st.cr3, self.st.top, 0, out)
        return out

    def pool_pages(self):
        """{pfn: copy of the page-table page's words} (for inspection and tests)."""
        cdef uint64_t pfn
        pages = {}
        cdef uint32_t slot
        for pfn in range(self.st.dir_len << 10):
            if self.st.slot_dir[pfn >> 10] == self.st.zero_chunk:
                continue
            slot = _slot(&self.st, pfn)
            if slot:
                pages[pfn] = np.asarray(<uint64_t[:512]>(self.st.pool + (<intp_t>slot << 9))).copy()
        return pages

    def _py_walk(self, uint64_t va, uint32_t access=ACC_USER):
        """One pt_walk: (fault, paddr, refs, size_code, level, entry paddrs)."""
        cdef WalkOut o
        cdef int64_t f
        f = pt_walk(&self.st, va, access, &o)
        return (f, o.paddr, o.refs, o.size_code if f == 0 else 255, o.level,
                [o.entry_paddr[i] for i in range(o.n_entries)])
