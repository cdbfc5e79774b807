# The MMU engine: per-CPU TLB hierarchies, per-CPU paging-structure caches tagged by
# ASID, one page table per address space, and the batch replay loop.
#
# Semantics: docs/mmu.md (tests/reference_mmu.py is the oracle). In short, per
# translation of va on CPU c, side d (instruction for IFETCH, data otherwise), ASID a:
# * the side's memo (the last translation of that side, held by an L1 entry) or a probe of
#   the side's L1 structures: an L1 hit (hits/accesses on that structure, hit update);
# * otherwise a probe of the level-2 structures of side d or unified: an L2 hit, then the
#   L1 fill; otherwise a walk of ASID a's table with CPU c's PSCs (_walk_demand of
#   _pt_walk.pxi: what pt_walk_ext runs, compiled into this module), then the fills
#   of the inclusion policy (inclusive: L2 then L1, L2 victims back-invalidated in
#   L1; non-inclusive: the same without back-invalidation; exclusive: L1 only, the L1
#   victim moves to L2, an L2 hit moves the entry to L1);
# * a miss at a level is charged to the structure of that level that takes the
#   translation's page size (holds it, else splinters it), once the size is known.
# Entries carry as payload the physical address of their page's first byte >> 12.
from libc.stdlib cimport calloc, free
from libc.string cimport memset, memcpy

from mmucore._types cimport (uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t,
                             vaddr_t, paddr_t, asid_t, intp_t, POLICY_LRU, POLICY_FIFO,
                             POLICY_RANDOM, POLICY_PLRU, POLICY_LFU, POLICY_SRRIP, PS_COUNT,
                             PS_4K, PS_2M, PS_4M, PS_1G, OP_LOAD, OP_STORE, OP_IFETCH, OP_MODIFY,
                             OP_SWITCH, OP_INVLPG, OP_FLUSH, OP_FLUSH_ASID, OP_MAP, OP_UNMAP,
                             page_shift)
from mmucore._rng cimport rng_below
from mmucore.tlb cimport (TLBState, TAG_INVALID, ASID_GLOBAL, tlb_init, tlb_free,
                          tlb_reset_counters, tlb_invalidate, tlb_invalidate_range,
                          tlb_flush, tlb_flush_asid, tlb_dump, tlb_restore)
from mmucore.pagetable cimport (PTState, WalkOut, PageTableCore, pt_load_cr3, pt_find_leaf,
                                pt_demand_map, pt_demand_fault, pt_range_op, ENTRY_NONE,
                                FAULT_GP, FAULT_PF, FAULT_P, FAULT_W, FAULT_U, FAULT_I,
                                FAULT_RSVD, ACC_WRITE, ACC_USER, ACC_IFETCH, PTE_G, PTE_A,
                                PTE_D, MODE_PAE, MODE_X86_32, PT_MAX_LEVELS, PTE_P, PTE_PS)

# The per-access path is one compilation unit: the TLB kernels' internals (probe, fill,
# touch, remove; policy and engine specialised) and the page walk (PSC lookups, entry
# reads) are compiled into this module from the same sources as tlb.pyx and
# pagetable.pyx, so GCC inlines them here instead of calling through capsule pointers.
include "_tlb_core.pxi"
include "_pt_walk.pxi"

cdef extern from *:
    """#define MMUCORE_U64_MAX ((uint64_t)0xFFFFFFFFFFFFFFFFULL)"""
    const uint64_t U64_MAX "MMUCORE_U64_MAX"

#: The cimport contract's version (mmu.pxd).
ABI_VERSION = MMU_ABI_VERSION
#: sizeof(MMUState) in this build.
STATE_SIZE = sizeof(MMUState)
#: Names of the per-CPU counters, in the order of MMUCpu.c.
COUNTER_NAMES = ("accesses", "translations", "split_accesses", "l1_hits", "l1_misses",
                 "l2_hits", "l2_misses", "walks", "walk_refs", "walk_refs_pte",
                 "walk_refs_pde", "walk_refs_pdpte", "walk_refs_pml4e", "walk_refs_pml5e",
                 "faults", "faults_not_present", "faults_protection", "faults_reserved",
                 "faults_outside", "demand_faults", "switches", "invlpgs", "flushes",
                 "flush_asids", "maps", "unmaps", "shootdowns", "ipis_sent",
                 "ipis_received", "back_invalidations")
#: Codes of the per-record `where` output.
WHERE = {"l1": WHERE_L1, "l2": WHERE_L2, "walk": WHERE_WALK, "fault": WHERE_FAULT,
         "control": WHERE_CONTROL}
SIDES = {"data": SIDE_DATA, "instruction": SIDE_INSTRUCTION, "unified": SIDE_UNIFIED}
INCLUSIONS = {"inclusive": INCL_INCLUSIVE, "non-inclusive": INCL_NON_INCLUSIVE,
              "exclusive": INCL_EXCLUSIVE}
MAX_ASIDS = MMU_MAX_ASIDS
MAX_CPUS = MMU_MAX_CPUS
MAX_TLBS = MMU_MAX_TLBS


def abi_check(int version, Py_ssize_t state_size):
    """Raise ImportError unless a consumer built against `version`/`state_size` matches."""
    if version != MMU_ABI_VERSION or state_size != <Py_ssize_t>sizeof(MMUState):
        raise ImportError(
            f"compiled against mmucore.mmu ABI {version} (MMUState {state_size} bytes) but "
            f"the installed engine is ABI {MMU_ABI_VERSION} ({sizeof(MMUState)} bytes): "
            f"rebuild the extension against the installed mmucore")


cdef struct _Tr:                 # one translation's outcome
    uint64_t paddr
    uint32_t code                # page-size code of the translation
    uint32_t where
    uint32_t fault
    WalkOut* walk                # filled when the walker ran (where 2/3), else untouched


# ----------------------------------------------------------------------------------------
# memos

cdef inline void _cpu_memo_clear(MMUCpu* c) noexcept nogil:
    # (a shift of 63 leaves page numbers 0/1, which never equal TAG_INVALID)
    c.memo_vpn[0] = TAG_INVALID
    c.memo_vpn[1] = TAG_INVALID
    c.memo_shift[0] = 63
    c.memo_shift[1] = 63


cdef inline void _l1_to_front(MMUCpu* c, uint32_t d, int32_t k) noexcept nogil:
    # an L1 hit in the structure at position k of side d's probe order: it goes first
    cdef int32_t si = c.l1_order[d][k], j
    for j in range(k, 0, -1):
        c.l1_order[d][j] = c.l1_order[d][j - 1]
    c.l1_order[d][0] = si


cdef inline void _l1_first(MMUCpu* c, uint32_t d, int32_t si) noexcept nogil:
    # the same for structure si, wherever it is in the order
    cdef int32_t k = 0
    while c.l1_order[d][k] != si:
        k += 1
    if k:
        _l1_to_front(c, d, k)


cdef inline void _memo_set(MMUCpu* c, uint32_t d, int32_t si, intp_t e, uint32_t code,
                           uint64_t pa_base) noexcept nogil:
    cdef uint32_t sh = page_shift(code)
    c.memo_tlb[d] = si
    c.memo_entry[d] = e
    c.memo_code[d] = code
    c.memo_shift[d] = sh
    c.memo_vpn[d] = (c.tlb[si].tag[e] >> 2)
    c.memo_pa[d] = pa_base


# ----------------------------------------------------------------------------------------
# page tables (created through the owner, with the GIL: at most 4096 times)

cdef int _create_pt(MMUState* m, uint32_t asid) except -1 nogil:
    with gil:
        (<MMUCore>m.owner)._create(asid)
    return 0


cdef inline PTState* _pt(MMUState* m, uint32_t asid) except NULL nogil:
    if m.pt[asid] == NULL:
        _create_pt(m, asid)
    return m.pt[asid]


# ----------------------------------------------------------------------------------------
# fills

cdef inline uint64_t _entry_data(uint64_t pa, uint32_t code) noexcept nogil:
    # payload of an entry of size `code` holding the byte at physical address pa
    return (pa & ~((((<uint64_t>1) << page_shift(code))) - 1)) >> 12


cdef void _fill_l2(MMUState* m, MMUCpu* c, int32_t si, uint32_t ecode, vaddr_t va,
                   uint32_t asid, bint glob, uint64_t pa) noexcept nogil:
    """Fill L2 structure si with the piece of size ecode holding va (pa: its physical
    address); inclusive: back-invalidate the victim in every L1 structure. Callers have
    just probed si for va/asid and missed (tlb_fill_absent's precondition)."""
    cdef TLBState* t = &c.tlb[si]
    cdef intp_t j, n = 0
    cdef uint32_t vbit
    t.victim_valid = 0
    c.size_seen |= 1u << ecode
    _tlb_fill_absent_i(t, va, <asid_t>asid, ecode, glob, _entry_data(pa, ecode))
    if m.inclusion == INCL_INCLUSIVE and t.victim_valid:
        vbit = 1u << (t.victim_tag & 3)
        for j in range(m.n_tlbs):
            # (a structure that never held the victim's size has nothing to remove)
            if m.level[j] == 1 and (c.tlb[j].size_mask & c.size_seen & vbit):
                n += _tlb_remove_match_i(&c.tlb[j], t.victim_tag, t.victim_easid)
        if n:
            c.c[C_BACK_INVALIDATIONS] += <uint64_t>n
            _cpu_memo_clear(c)


cdef void _victim_to_l2(MMUState* m, MMUCpu* c, uint32_t d, TLBState* t1) noexcept nogil:
    """Exclusive: the entry the last fill of t1 displaced goes to the L2 structure that
    takes its size, with its tag, ASID/global bit and payload."""
    cdef uint32_t vcode = <uint32_t>(t1.victim_tag & 3)
    cdef uint32_t sh = page_shift(vcode)
    cdef vaddr_t base = (t1.victim_tag >> 2) << sh
    cdef int32_t s2 = m.fill2[d][vcode]
    cdef bint glob = t1.victim_easid == ASID_GLOBAL
    cdef TLBState* t2
    t1.victim_valid = 0
    if s2 < 0:
        return
    t2 = &c.tlb[s2]
    t2.victim_valid = 0
    c.size_seen |= 1u << m.fill2_code[d][vcode]
    _tlb_fill_i(t2, base, <asid_t>(0 if glob else t1.victim_easid), m.fill2_code[d][vcode],
             glob, t1.victim_data)


cdef void _fill_l1(MMUState* m, MMUCpu* c, uint32_t d, int32_t si, uint32_t ecode,
                   vaddr_t va, uint32_t asid, bint glob, uint64_t pa) noexcept nogil:
    cdef TLBState* t = &c.tlb[si]
    cdef intp_t e
    t.victim_valid = 0
    c.size_seen |= 1u << ecode
    e = _tlb_fill_absent_i(t, va, <asid_t>asid, ecode, glob, _entry_data(pa, ecode))
    if m.inclusion == INCL_EXCLUSIVE and t.victim_valid:
        _victim_to_l2(m, c, d, t)
    _memo_set(c, d, si, e, ecode, pa & ~((((<uint64_t>1) << page_shift(ecode))) - 1))


# ----------------------------------------------------------------------------------------
# one translation

cdef inline void _charge_miss(TLBState* t) noexcept nogil:
    t.accesses += 1
    t.misses += 1


cdef int _mmu_walk(MMUState* m, MMUCpu* c, uint32_t d, vaddr_t va, uint32_t acc,
               uint32_t asid, _Tr* tr) except -1 nogil:
    cdef PTState* pt = _pt(m, asid)
    cdef uint64_t refs0[5]
    cdef uint64_t walks0 = pt.st.walks
    cdef uint64_t dr, total = 0
    cdef uint32_t L, code, f, ecode
    cdef int32_t s1, s2
    cdef bint glob
    cdef uint64_t pa
    for L in range(m.levels):
        refs0[L] = pt.st.refs[L]
    c.c[C_WALKS] += 1
    f = <uint32_t>_walk_demand(pt, va, acc, tr.walk, c.psc, m.psc_mask, <asid_t>asid)
    for L in range(m.levels):
        dr = pt.st.refs[L] - refs0[L]
        c.c[C_WALK_REFS_PTE + L] += dr
        total += dr
    c.c[C_WALK_REFS] += total
    if pt.st.walks - walks0 == 2:
        c.c[C_DEMAND_FAULTS] += 1
    if f:
        c.c[C_FAULTS] += 1
        if f == FAULT_GP:
            c.c[C_FAULTS_OUTSIDE] += 1
        elif f & FAULT_RSVD:
            c.c[C_FAULTS_RESERVED] += 1
        elif f & FAULT_P:
            c.c[C_FAULTS_PROTECTION] += 1
        else:
            c.c[C_FAULTS_NOT_PRESENT] += 1
        tr.where = WHERE_FAULT
        tr.fault = f
        tr.paddr = 0
        return 0
    code = tr.walk.size_code
    pa = tr.walk.paddr
    glob = (_rd(pt, tr.walk.entry_paddr[tr.walk.n_entries - 1]) & PTE_G) != 0
    s1 = m.fill1[d][code]
    s2 = m.fill2[d][code]
    if s1 >= 0:
        _charge_miss(&c.tlb[s1])
    if s2 >= 0:
        _charge_miss(&c.tlb[s2])
    if m.inclusion == INCL_EXCLUSIVE and s1 >= 0:
        _fill_l1(m, c, d, s1, m.fill1_code[d][code], va, asid, glob, pa)
    else:
        if s2 >= 0:
            _fill_l2(m, c, s2, m.fill2_code[d][code], va, asid, glob, pa)
        if s1 >= 0:
            _fill_l1(m, c, d, s1, m.fill1_code[d][code], va, asid, glob, pa)
        else:
            c.memo_vpn[d] = TAG_INVALID
    tr.where = WHERE_WALK
    tr.fault = 0
    tr.code = code
    tr.paddr = pa
    return 0


cdef inline int _translate(MMUState* m, MMUCpu* c, uint32_t d, vaddr_t va, uint32_t acc,
                           uint32_t asid, _Tr* tr) except -1 nogil:
    cdef int32_t k, j, si, s1
    cdef TLBState* t
    cdef intp_t e
    cdef uint32_t code, pm
    cdef uint64_t pa
    cdef bint glob
    # the same-page memo: an L1 hit on the entry of the side's last translation
    if (va >> c.memo_shift[d]) == c.memo_vpn[d]:
        si = c.memo_tlb[d]
        t = &c.tlb[si]
        t.accesses += 1
        t.hits += 1
        if m.touch_on_hit[si]:
            _tlb_touch_i(t, c.memo_entry[d])
        c.c[C_L1_HITS] += 1
        tr.where = WHERE_L1
        tr.code = c.memo_code[d]
        tr.paddr = c.memo_pa[d] | (va & ((((<uint64_t>1) << c.memo_shift[d])) - 1))
        tr.fault = 0
        return 0
    # level 1, last-hit structure first
    for k in range(m.n_l1[d]):
        si = c.l1_order[d][k]
        t = &c.tlb[si]
        pm = t.size_mask & c.size_seen
        if pm == 0:
            continue
        e = (_tlb_probe_i(t, va, <asid_t>asid) if pm == t.size_mask
             else _tlb_probe_sizes_i(t, va, <asid_t>asid, pm))
        if e >= 0:
            t.accesses += 1
            t.hits += 1
            _tlb_touch_i(t, e)
            if k:
                _l1_to_front(c, d, k)
            c.c[C_L1_HITS] += 1
            code = <uint32_t>(t.tag[e] & 3)
            pa = t.data[e] << 12
            _memo_set(c, d, si, e, code, pa)
            tr.where = WHERE_L1
            tr.code = code
            tr.paddr = pa | (va & ((((<uint64_t>1) << page_shift(code))) - 1))
            tr.fault = 0
            return 0
    c.c[C_L1_MISSES] += 1
    # level 2
    for k in range(m.n_l2[d]):
        si = m.l2[d][k]
        t = &c.tlb[si]
        pm = t.size_mask & c.size_seen
        if pm == 0:
            continue
        e = (_tlb_probe_i(t, va, <asid_t>asid) if pm == t.size_mask
             else _tlb_probe_sizes_i(t, va, <asid_t>asid, pm))
        if e >= 0:
            t.accesses += 1
            t.hits += 1
            _tlb_touch_i(t, e)
            c.c[C_L2_HITS] += 1
            code = <uint32_t>(t.tag[e] & 3)
            glob = t.easid[e] == ASID_GLOBAL
            pa = (t.data[e] << 12) | (va & ((((<uint64_t>1) << page_shift(code))) - 1))
            s1 = m.fill1[d][code]
            if s1 >= 0:
                _charge_miss(&c.tlb[s1])
                if m.inclusion == INCL_EXCLUSIVE:
                    _tlb_remove_i(t, e)
                _fill_l1(m, c, d, s1, m.fill1_code[d][code], va, asid, glob, pa)
            else:
                c.memo_vpn[d] = TAG_INVALID
            tr.where = WHERE_L2
            tr.code = code
            tr.paddr = pa
            tr.fault = 0
            return 0
    c.c[C_L2_MISSES] += 1
    return _mmu_walk(m, c, d, va, acc, asid, tr)


cdef int _access(MMUState* m, MMUCpu* c, vaddr_t va, uint32_t op, uint32_t size,
                 MMUOut* out, intp_t i) except -1 nogil:
    """One memory op: its translations, counters and (optionally) outputs."""
    cdef uint32_t d = SIDE_INSTRUCTION if op == OP_IFETCH else SIDE_DATA
    cdef uint32_t acc = m.user_flag
    cdef _Tr tr
    cdef WalkOut w
    cdef uint64_t last, page_last
    cdef bint wrap
    cdef uint64_t ntr = 1
    cdef intp_t k
    if op == OP_STORE or op == OP_MODIFY:
        acc |= ACC_WRITE
    elif op == OP_IFETCH:
        acc |= ACC_IFETCH
    w.n_entries = 0
    tr.walk = &w
    c.c[C_ACCESSES] += 1
    _translate(m, c, d, va, acc, c.asid, &tr)
    if out != NULL:
        if out.paddr != NULL:
            out.paddr[i] = tr.paddr
        if out.where != NULL:
            out.where[i] = <uint8_t>tr.where
        if out.fault != NULL:
            out.fault[i] = tr.fault
        if out.entries != NULL:
            for k in range(out.cols):
                out.entries[i * out.cols + k] = (
                    w.entry_paddr[k] if tr.where >= WHERE_WALK and k < w.n_entries
                    else ENTRY_NONE)
    if size > 1:
        wrap = va > U64_MAX - (size - 1)
        last = va + (size - 1)
        while tr.fault == 0:
            page_last = va | ((((<uint64_t>1) << page_shift(tr.code))) - 1)
            if not wrap and last <= page_last:
                break
            ntr += 1
            if page_last == U64_MAX:
                # the range runs past 2**64 - 1: the next page is outside the linear
                # space (no wrap to 0); it misses both levels and its walk faults
                c.c[C_L1_MISSES] += 1
                c.c[C_L2_MISSES] += 1
                c.c[C_WALKS] += 1
                c.c[C_FAULTS] += 1
                c.c[C_FAULTS_OUTSIDE] += 1
                tr.fault = FAULT_GP
                break
            va = page_last + 1
            _translate(m, c, d, va, acc, c.asid, &tr)
        if out != NULL and out.fault != NULL:
            out.fault[i] = tr.fault         # the access's first fault, on any page
    c.c[C_TRANSLATIONS] += ntr
    if ntr > 1:
        c.c[C_SPLIT_ACCESSES] += 1
    return 0


# ----------------------------------------------------------------------------------------
# control ops

cdef void _flush_cpu(MMUState* m, MMUCpu* c, bint keep_global) noexcept nogil:
    cdef intp_t j
    cdef uint32_t L
    for j in range(m.n_tlbs):
        tlb_flush(&c.tlb[j], keep_global)
    for L in range(1, PT_MAX_LEVELS):
        if (m.psc_mask >> L) & 1:
            tlb_flush(&c.psc[L], False)
    _cpu_memo_clear(c)


cdef void _flush_psc_asid(MMUState* m, MMUCpu* c, uint32_t asid) noexcept nogil:
    cdef uint32_t L
    for L in range(1, PT_MAX_LEVELS):
        if (m.psc_mask >> L) & 1:
            tlb_flush_asid(&c.psc[L], <asid_t>asid)


cdef void _invalidate_range_cpu(MMUState* m, MMUCpu* c, uint32_t asid, vaddr_t first,
                                vaddr_t last, bint with_global, bint psc_all) noexcept nogil:
    # TLB entries of `asid` (and global ones) overlapping [first, last]; PSC entries of
    # `asid`: all of them (psc_all, as INVLPG) or those whose region overlaps the range
    cdef intp_t j
    cdef uint32_t L
    cdef PTState* pt = m.pt[asid]
    cdef uint64_t vmask
    for j in range(m.n_tlbs):
        tlb_invalidate_range(&c.tlb[j], first, last, <asid_t>asid, with_global, False)
    if psc_all or pt == NULL:
        _flush_psc_asid(m, c, asid)
    else:
        vmask = ((<uint64_t>1) << pt.va_bits) - 1
        for L in range(1, PT_MAX_LEVELS):
            if (m.psc_mask >> L) & 1:
                tlb_invalidate_range(&c.psc[L], ((first & vmask) >> pt.shift[L]) << 12,
                                     (((last & vmask) >> pt.shift[L]) << 12) | 4095,
                                     <asid_t>asid, False, False)
    _cpu_memo_clear(c)


cdef void mmu_invalidate_range(MMUState* m, asid_t asid, vaddr_t first,
                               vaddr_t last) noexcept nogil:
    cdef intp_t k
    for k in range(m.cpus):
        _invalidate_range_cpu(m, &m.cpu[k], asid, first, last, True, True)


cdef int _control(MMUState* m, intp_t ci, uint32_t op, uint64_t arg) except -1 nogil:
    cdef MMUCpu* c = &m.cpu[ci]
    cdef MMUCpu* o
    cdef PTState* pt
    cdef intp_t j, k, ipis = 0
    cdef int64_t level = 0
    cdef uint64_t entry = 0, size, first
    cdef vaddr_t bad = 0
    cdef bint glob
    if op == OP_SWITCH:
        c.c[C_SWITCHES] += 1
        c.asid = <uint32_t>arg
        pt = _pt(m, c.asid)
        if not m.pcid:
            _flush_cpu(m, c, True)
        if m.mode == MODE_PAE:
            pt_load_cr3(pt)
        _cpu_memo_clear(c)
    elif op == OP_INVLPG:
        c.c[C_INVLPGS] += 1
        for j in range(m.n_tlbs):
            tlb_invalidate(&c.tlb[j], arg, <asid_t>c.asid, False)
        _flush_psc_asid(m, c, c.asid)
        _cpu_memo_clear(c)
    elif op == OP_FLUSH:
        c.c[C_FLUSHES] += 1
        _flush_cpu(m, c, not (arg & 1))
        if arg & 2:
            for k in range(m.cpus):
                if k != ci:
                    _flush_cpu(m, &m.cpu[k], not (arg & 1))
                    m.cpu[k].c[C_IPIS_RECEIVED] += 1
                    ipis += 1
            if ipis:
                c.c[C_IPIS_SENT] += <uint64_t>ipis
                c.c[C_SHOOTDOWNS] += 1
    elif op == OP_FLUSH_ASID:
        c.c[C_FLUSH_ASIDS] += 1
        for j in range(m.n_tlbs):
            tlb_flush_asid(&c.tlb[j], <asid_t>arg)
        _flush_psc_asid(m, c, <uint32_t>arg)
        _cpu_memo_clear(c)
    elif op == OP_MAP:
        c.c[C_MAPS] += 1
        pt_demand_map(_pt(m, c.asid), arg)
    elif op == OP_UNMAP:
        c.c[C_UNMAPS] += 1
        pt = _pt(m, c.asid)
        if pt_find_leaf(pt, arg, &level, &entry) != 1:
            return 0
        glob = (entry & PTE_G) != 0
        size = (<uint64_t>1) << pt.shift[level]
        first = arg & ~(size - 1)
        pt_range_op(pt, first, first + (size - 1), 1, 0, 0, &bad)
        for k in range(m.cpus):
            o = &m.cpu[k]
            if k == ci:
                _invalidate_range_cpu(m, o, c.asid, first, first + (size - 1), True, True)
            elif glob or o.asid == c.asid:
                o.c[C_IPIS_RECEIVED] += 1
                ipis += 1
                _invalidate_range_cpu(m, o, c.asid, first, first + (size - 1), True, False)
            else:                          # deferred (no IPI): the ASID's entries only
                _invalidate_range_cpu(m, o, c.asid, first, first + (size - 1), False, False)
        if ipis:
            c.c[C_IPIS_SENT] += <uint64_t>ipis
            c.c[C_SHOOTDOWNS] += 1
    return 0


# ----------------------------------------------------------------------------------------
# software prefetch of the leaf entry a coming walk will read (no semantic effect)

cdef extern from *:
    """
    /* A volatile asm on x86-64: GCC's pure/const analysis ignores __builtin_prefetch,
       so a void function whose only effect is a prefetch is deleted at its call. */
    #if defined(__GNUC__) && defined(__x86_64__)
    #define MMUCORE_PREFETCH(p) __asm__ __volatile__("prefetcht0 %0" : : "m"(*(const char*)(p)))
    #elif defined(__GNUC__)
    #define MMUCORE_PREFETCH(p) __builtin_prefetch((const void*)(p), 0, 3)
    #else
    #define MMUCORE_PREFETCH(p) ((void)(p))
    #endif
    """
    void _prefetch "MMUCORE_PREFETCH"(const void* p) noexcept nogil

cdef enum:
    PREFETCH_ON = 1
    PREFETCH_AHEAD = 4          # records between the prefetch and the walk it serves


cdef paddr_t _prefetch_leaf(PTState* s, vaddr_t va, bint slot_only) noexcept nogil:
    """Descend the table of va without side effects (no A bits, no counters, no PSCs)
    and prefetch the host cache line of the entry the walk will read last. The upper
    levels are hot in the host caches; the leaf entries are not, nor the pool-slot
    words of the leaf tables (one 4 KiB directory chunk per 4 MiB of physical memory).
    `slot_only`: stop one level higher and prefetch the leaf table's slot word instead
    (issued further ahead, so that the later full descent finds it cached); returns the
    leaf table's physical address then (ENTRY_NONE when the descent stopped above)."""
    cdef uint32_t L = s.top
    cdef paddr_t table = s.cr3, pa
    cdef uint64_t e, pfn
    cdef const uint64_t* page
    if s.mode == MODE_PAE:
        e = s.pdpte[(va >> 30) & 3]
        if not (e & PTE_P):
            return ENTRY_NONE
        table = e & s.addr_mask
        L = 1
    while True:
        pa = table + ((va >> s.shift[L]) & s.idx_mask[L]) * s.esize
        page = _page(s, pa >> 12)   # (_pt_walk.pxi: read-only here)
        if L == 0:
            _prefetch(<const char*>page + (pa & 4095))
            return ENTRY_NONE
        if s.esize == 8:
            e = page[(pa >> 3) & 511]
        else:
            e = (<const uint32_t*>page)[(pa >> 2) & 1023]
        if not (e & PTE_P) or (e & PTE_PS):
            if not slot_only:
                _prefetch(<const char*>page + (pa & 4095))
            return ENTRY_NONE
        table = e & s.addr_mask
        L -= 1
        if slot_only and L == 0:
            pfn = table >> 12
            if (pfn >> 10) < s.dir_len:
                _prefetch(&s.slot_dir[pfn >> 10][pfn & 1023])
            return table


cdef struct _Ahead:
    # the leaf tables the slot-word prefetches found, by record (slot k & 7): the leaf
    # prefetch of that record, PREFETCH_AHEAD records later, starts from there instead
    # of descending the upper levels again
    intp_t rec[8]
    paddr_t table[8]
    # 8-byte entries, 4 or 5 levels: the page directory the last descent found for the
    # 1 GiB region va >> 30 of table `pd_pt` (a stale one only makes a useless prefetch)
    PTState* pd_pt
    uint64_t pd_key
    paddr_t pd_table


cdef inline void _ahead_init(_Ahead* r) noexcept nogil:
    cdef int k
    for k in range(8):
        r.rec[k] = -1
        r.table[k] = ENTRY_NONE
    r.pd_pt = NULL


cdef inline void _prefetch_leaf8(PTState* s, vaddr_t va, _Ahead* r) noexcept nogil:
    # 8-byte entries: descend read-only to va's leaf table and prefetch the leaf entry
    if r.pd_pt != s:
        r.pd_pt = s
        r.pd_key = TAG_INVALID
    _prefetch_leaf_ent(s, va, &r.pd_key, &r.pd_table, <uint64_t*>NULL)


cdef inline void _prefetch_ahead(PTState* s, const vaddr_t* addr, intp_t i,
                                 _Ahead* r) noexcept nogil:
    """8-byte entries: prefetch the leaf entry of record i + PREFETCH_AHEAD (one
    descent; as fast as the two stages below on the Skylake uniform replay, in fewer
    instructions). 4-byte entries: prefetch the slot word of record i + 2 *
    PREFETCH_AHEAD's leaf table and the leaf entry of record i + PREFETCH_AHEAD. No
    semantic effect: a stale table, after a control op, only makes a useless prefetch;
    _page checks the frame number."""
    cdef intp_t k = i + 2 * PREFETCH_AHEAD
    cdef paddr_t pa
    if s.esize == 8:
        _prefetch_leaf8(s, addr[i + PREFETCH_AHEAD], r)
        return
    r.table[k & 7] = _prefetch_leaf(s, addr[k], True)
    r.rec[k & 7] = k
    k = i + PREFETCH_AHEAD
    if r.rec[k & 7] == k and r.table[k & 7] != ENTRY_NONE:
        pa = r.table[k & 7] + ((addr[k] >> s.shift[0]) & s.idx_mask[0]) * s.esize
        _prefetch(<const char*>_page(s, pa >> 12) + (pa & 4095))
    else:
        _prefetch_leaf(s, addr[k], False)


# ----------------------------------------------------------------------------------------
# the lean path of the batch loop (LRU/FIFO/PLRU tag-scanned structures)

include "_mmu_lean.pxi"
include "_mmu_run4k.pxi"

# Whether mmu_run may take the lean path (tests switch it off to compare the two paths).
cdef bint _lean_enabled = True


def set_lean(bint enabled):
    """Allow (default) or forbid the lean path of the batch loop; returns the previous
    setting. The lean path gives the generic path's results exactly (for testing)."""
    global _lean_enabled
    cdef bint old = _lean_enabled
    _lean_enabled = enabled
    return old


# ----------------------------------------------------------------------------------------
# the batch

cdef intp_t mmu_run(MMUState* m, const vaddr_t* addr, const uint8_t* op,
                    const uint16_t* size, const uint16_t* cpu, intp_t n,
                    MMUOut* out) except -1 nogil:
    cdef _Lean ln
    cdef _Lean* lp = NULL
    if out == NULL:
        if _lean_enabled and _lean_setup(m, &ln):
            lp = &ln
        if cpu == NULL and op == NULL and size == NULL:
            return _run_loads(m, addr, n, lp)
        return _run_fast(m, addr, op, size, cpu, n, lp)
    return _run(m, addr, op, size, cpu, n, out)


cdef inline int _lean_op(MMUState* m, MMUCpu* c, _Lean* ln, vaddr_t va,
                         uint32_t op) except -1 nogil:
    # one memory op through the lean path's copy for this configuration
    if ln.scan_only:
        return _lean_access(m, c, ln, va, op, <_LeanScan*>NULL)
    return _lean_access(m, c, ln, va, op, <_LeanAny*>NULL)


cdef inline void _count_memo_hits(MMUCpu* c, uint32_t d, uint64_t run) noexcept nogil:
    # `run` memory ops of side d on the memo page: L1 hits that change no state
    cdef TLBState* t = &c.tlb[c.memo_tlb[d]]
    t.accesses += run
    t.hits += run
    c.c[C_ACCESSES] += run
    c.c[C_TRANSLATIONS] += run
    c.c[C_L1_HITS] += run


cdef inline uint64_t _last_byte(vaddr_t va, uint32_t sz) noexcept nogil:
    # the last byte of an access of sz bytes (0 means 1); wraps past 2**64 - 1
    return va + sz - (sz != 0)


cdef inline intp_t _memo_run4(const vaddr_t* addr, const uint16_t* size, intp_t j,
                             intp_t n, uint32_t sh, uint64_t vpn) noexcept nogil:
    # Skip whole blocks of 4 records whose bytes all lie in page vpn (one branch per
    # block); returns the first record of the first block that has one outside (or of
    # the last partial block): the caller's scalar loop finds the exact end of the run.
    cdef uint64_t bad
    if size != NULL:
        while j + 4 <= n:
            bad = (((addr[j] >> sh) ^ vpn) | ((_last_byte(addr[j], size[j]) >> sh) ^ vpn)
                   | ((addr[j + 1] >> sh) ^ vpn)
                   | ((_last_byte(addr[j + 1], size[j + 1]) >> sh) ^ vpn)
                   | ((addr[j + 2] >> sh) ^ vpn)
                   | ((_last_byte(addr[j + 2], size[j + 2]) >> sh) ^ vpn)
                   | ((addr[j + 3] >> sh) ^ vpn)
                   | ((_last_byte(addr[j + 3], size[j + 3]) >> sh) ^ vpn))
            if bad:
                break
            j += 4
    else:
        while j + 4 <= n:
            bad = (((addr[j] >> sh) ^ vpn) | ((addr[j + 1] >> sh) ^ vpn)
                   | ((addr[j + 2] >> sh) ^ vpn) | ((addr[j + 3] >> sh) ^ vpn))
            if bad:
                break
            j += 4
    return j


cdef inline bint _same_side(const uint8_t* op, intp_t j, uint32_t d) noexcept nogil:
    # whether record j is a memory op of side d
    cdef uint8_t o = op[j]
    if d == SIDE_INSTRUCTION:
        return o == OP_IFETCH
    return o == OP_LOAD or o == OP_STORE or o == OP_MODIFY


cdef inline intp_t _memo_run_end(const vaddr_t* addr, const uint8_t* op, const uint16_t* size,
                                 const uint16_t* cpu, intp_t j, intp_t n, uint32_t ci,
                                 uint32_t d, uint32_t sh, uint64_t vpn) noexcept nogil:
    # the first record from j on that is not a memory op of CPU ci (cpu NULL: all are)
    # and side d (op NULL: all loads) with all its bytes in page vpn (va >> sh): the end
    # of a run of memo hits
    cdef vaddr_t va
    if op == NULL and cpu == NULL:
        j = _memo_run4(addr, size, j, n, sh, vpn)
    while j < n:
        if cpu != NULL and cpu[j] != ci:
            break
        if op != NULL and not _same_side(op, j, d):
            break
        va = addr[j]
        if (va >> sh) != vpn:
            break
        if size != NULL and (_last_byte(va, size[j]) >> sh) != vpn:
            break
        j += 1
    return j


cdef intp_t _run_fast(MMUState* m, const vaddr_t* addr, const uint8_t* op,
                      const uint16_t* size, const uint16_t* cpu, intp_t n,
                      _Lean* ln) except -1 nogil:
    # No per-record outputs: runs of memory ops of one CPU and side whose bytes all lie
    # in that side's memo page are L1 hits counted in bulk (exactly what _access would
    # count: accesses, translations, l1_hits, the memo structure's accesses/hits), unless
    # the memo structure's policy changes state on a hit (LFU, SRRIP). Everything else
    # (other pages, page-crossing accesses, control ops) goes through _access/_control.
    cdef intp_t i = 0, j, ci = 0
    cdef uint64_t pos0 = m.position
    cdef MMUCpu* c
    cdef uint32_t o = OP_LOAD, d, sh, sz = 1
    cdef uint64_t vpn, va, last, ptes0
    # the last record whose walk read a PTE: prefetch when it is the previous record (a
    # walk-heavy stream over 4K pages; huge-page walks end in a few hot directories)
    cdef intp_t walked = -2, r4_next = 0
    cdef _Ahead ahead
    if cpu != NULL and n > 0:
        ci = cpu[0]
    c = &m.cpu[ci]
    _ahead_init(&ahead)
    while i < n:
        if cpu != NULL and cpu[i] != ci:
            ci = cpu[i]
            c = &m.cpu[ci]
        if ln != NULL and i >= r4_next and _run4k_ok(m, c, ln):
            j = _run4k_go(m, c, ln, addr, op, size, cpu, i, n)
            r4_next = _run4k_next(i, j)
            i = j
            if i == n:
                break
            if cpu != NULL and cpu[i] != ci:
                ci = cpu[i]
                c = &m.cpu[ci]
        if op != NULL:
            o = op[i]
        if o >= OP_SWITCH:
            m.position = pos0 + <uint64_t>i
            _control(m, ci, o, addr[i])
            if ln != NULL:
                ln.paths_stale = True
            i += 1
            continue
        d = SIDE_INSTRUCTION if o == OP_IFETCH else SIDE_DATA
        va = addr[i]
        if size != NULL:
            sz = size[i]
        last = _last_byte(va, sz)
        sh = c.memo_shift[d]
        vpn = c.memo_vpn[d]
        # (both ends in the memo page: no wrap past 2**64 - 1, which would put the last
        # byte in page 0.., never in the page of a va that close to 2**64)
        if (va >> sh) == vpn and (last >> sh) == vpn and not m.touch_on_hit[c.memo_tlb[d]]:
            j = _memo_run_end(addr, op, size, cpu, i + 1, n, ci, d, sh, vpn)
            _count_memo_hits(c, d, <uint64_t>(j - i))
            i = j
            continue
        m.position = pos0 + <uint64_t>i
        if PREFETCH_ON and walked == i - 1 and i + 2 * PREFETCH_AHEAD < n and m.pt[c.asid] != NULL:
            _prefetch_ahead(m.pt[c.asid], addr, i, &ahead)
        ptes0 = c.c[C_WALK_REFS_PTE]
        if ln != NULL and ((va ^ last) >> 12) == 0:
            _lean_op(m, c, ln, va, o)
        else:
            _access(m, c, va, o, sz, NULL, i)
        if c.c[C_WALK_REFS_PTE] != ptes0:
            walked = i
        i += 1
    m.position = pos0 + <uint64_t>n
    return n


cdef intp_t _run(MMUState* m, const vaddr_t* addr, const uint8_t* op,
                 const uint16_t* size, const uint16_t* cpu, intp_t n,
                 MMUOut* out) except -1 nogil:
    cdef intp_t i, ci = 0, k
    cdef uint32_t o = OP_LOAD, sz = 1
    cdef MMUCpu* c = &m.cpu[0]
    for i in range(n):
        if cpu != NULL:
            ci = cpu[i]
            c = &m.cpu[ci]
        if op != NULL:
            o = op[i]
        if o >= OP_SWITCH:
            _control(m, ci, o, addr[i])
            if out != NULL:
                if out.paddr != NULL:
                    out.paddr[i] = 0
                if out.where != NULL:
                    out.where[i] = WHERE_CONTROL
                if out.fault != NULL:
                    out.fault[i] = 0
                if out.entries != NULL:
                    for k in range(out.cols):
                        out.entries[i * out.cols + k] = ENTRY_NONE
        else:
            if size != NULL:
                sz = size[i]
            _access(m, c, addr[i], o, sz, out, i)
        m.position += 1
    return n


cdef intp_t _run_loads(MMUState* m, const vaddr_t* addr, intp_t n,
                       _Lean* ln) except -1 nogil:
    # one CPU's loads of one byte: runs of memo hits are counted in a tight loop
    cdef MMUCpu* c = &m.cpu[0]
    cdef intp_t i = 0, j
    cdef uint32_t sh
    cdef uint64_t vpn, ptes0
    cdef intp_t walked = -2, r4_next = 0
    cdef _Ahead ahead
    _ahead_init(&ahead)
    while i < n:
        if ln != NULL and i >= r4_next and _run4k_ok(m, c, ln):
            j = _run4k_go(m, c, ln, addr, NULL, NULL, NULL, i, n)
            m.position += <uint64_t>(j - i)
            r4_next = _run4k_next(i, j)
            i = j
            if i == n:
                break
        sh = c.memo_shift[SIDE_DATA]
        vpn = c.memo_vpn[SIDE_DATA]
        if (addr[i] >> sh) == vpn and not m.touch_on_hit[c.memo_tlb[SIDE_DATA]]:
            j = _memo_run_end(addr, NULL, NULL, NULL, i + 1, n, 0, SIDE_DATA, sh, vpn)
            _count_memo_hits(c, SIDE_DATA, <uint64_t>(j - i))
            m.position += <uint64_t>(j - i)
            i = j
            continue
        if PREFETCH_ON and walked == i - 1 and i + 2 * PREFETCH_AHEAD < n and m.pt[c.asid] != NULL:
            _prefetch_ahead(m.pt[c.asid], addr, i, &ahead)
        ptes0 = c.c[C_WALK_REFS_PTE]
        if ln != NULL:
            _lean_op(m, c, ln, addr[i], OP_LOAD)
        else:
            _access(m, c, addr[i], OP_LOAD, 1, NULL, i)
        if c.c[C_WALK_REFS_PTE] != ptes0:
            walked = i
        m.position += 1
        i += 1
    return n


cdef void mmu_reset_counters(MMUState* m) noexcept nogil:
    cdef intp_t k, j
    cdef uint32_t L
    cdef MMUCpu* c
    for k in range(m.cpus):
        c = &m.cpu[k]
        memset(c.c, 0, sizeof(c.c))
        for j in range(m.n_tlbs):
            tlb_reset_counters(&c.tlb[j])
        for L in range(1, PT_MAX_LEVELS):
            if (m.psc_mask >> L) & 1:
                tlb_reset_counters(&c.psc[L])


# ----------------------------------------------------------------------------------------
# the owning class

# ----------------------------------------------------------------------------------------
# checkpoints: the state as bytes and back

cdef bytes mmu_dump(MMUState* m):
    cdef intp_t k, j
    cdef uint32_t L
    cdef uint64_t n
    cdef MMUCpu* c
    cdef bytes t
    cdef MMUCpu cc
    cdef MMUState* h = <MMUState*>calloc(1, sizeof(MMUState))
    if h == NULL:
        raise MemoryError()
    memcpy(h, m, sizeof(MMUState))         # the scalars, without addresses
    h.cpu = NULL
    h.owner = NULL
    h.run_cache = NULL
    for k in range(MMU_MAX_ASIDS):
        if h.pt[k] != NULL:
            h.pt[k] = <PTState*>1           # only whether the address space exists
    parts = [(<char*>h)[:sizeof(MMUState)]]
    free(h)
    for k in range(m.cpus):
        c = &m.cpu[k]
        memcpy(&cc, c, sizeof(MMUCpu))
        cc.tlb = NULL
        for L in range(PT_MAX_LEVELS):
            memset(&cc.psc[L], 0, sizeof(TLBState))
        parts.append((<char*>&cc)[:sizeof(MMUCpu)])
        for j in range(m.n_tlbs):
            t = tlb_dump(&c.tlb[j])
            n = len(t)
            parts.append((<char*>&n)[:8])
            parts.append(t)
        for L in range(1, PT_MAX_LEVELS):
            if c.psc[L].tag != NULL:
                t = tlb_dump(&c.psc[L])
                n = len(t)
                parts.append((<char*>&n)[:8])
                parts.append(t)
    return b"".join(parts)


cdef bytes _take(bytes buf, size_t* off):
    cdef uint64_t n
    cdef size_t blen = <size_t>len(buf)
    cdef const char* p = buf
    if blen < off[0] + 8:
        raise ValueError("MMU state: truncated")
    memcpy(&n, p + off[0], 8)
    if blen - off[0] - 8 < n:
        raise ValueError("MMU state: truncated")
    off[0] += 8 + n
    return buf[off[0] - n:off[0]]


cdef int mmu_restore(MMUState* m, bytes buf) except -1:
    cdef const char* p = buf
    cdef size_t blen = <size_t>len(buf), off
    cdef MMUState* h
    cdef MMUCpu tmp
    cdef MMUCpu* c
    cdef intp_t k, j, a
    cdef uint32_t L
    if blen < sizeof(MMUState):
        raise ValueError(f"MMU state of {blen} bytes: too short")
    h = <MMUState*>calloc(1, sizeof(MMUState))
    if h == NULL:
        raise MemoryError()
    try:
        memcpy(h, p, sizeof(MMUState))
        if h.cpus != m.cpus or h.n_tlbs != m.n_tlbs or h.psc_mask != m.psc_mask or \
                h.mode != m.mode or h.inclusion != m.inclusion or h.pcid != m.pcid:
            raise ValueError(f"MMU state of {h.cpus} CPU(s), {h.n_tlbs} structures does not "
                             f"fit this MMU ({m.cpus} CPU(s), {m.n_tlbs} structures)")
        for a in range(MMU_MAX_ASIDS):
            if (h.pt[a] != NULL) != (m.pt[a] != NULL):
                raise ValueError(f"MMU state: address space {a} "
                                 f"{'exists' if h.pt[a] != NULL else 'does not exist'} "
                                 f"in the checkpoint but not here")
        # parse and check everything before changing anything
        off = sizeof(MMUState)
        states = []
        cpu_off = []
        for k in range(m.cpus):
            if blen < off + sizeof(MMUCpu):
                raise ValueError("MMU state: truncated")
            cpu_off.append(off)
            off += sizeof(MMUCpu)
            for j in range(m.n_tlbs):
                states.append(_take(buf, &off))
            for L in range(1, PT_MAX_LEVELS):
                if m.cpu[k].psc[L].tag != NULL:
                    states.append(_take(buf, &off))
        if off != blen:
            raise ValueError(f"MMU state of {blen} bytes, expected {off}")
        off = sizeof(MMUState)
        i = 0
        for k in range(m.cpus):
            c = &m.cpu[k]
            off = cpu_off[k]
            memcpy(&tmp, p + off, sizeof(MMUCpu))
            tmp.tlb = c.tlb
            for L in range(PT_MAX_LEVELS):
                memcpy(&tmp.psc[L], &c.psc[L], sizeof(TLBState))
            memcpy(c, &tmp, sizeof(MMUCpu))
            for j in range(m.n_tlbs):
                tlb_restore(&c.tlb[j], states[i])
                i += 1
            for L in range(1, PT_MAX_LEVELS):
                if c.psc[L].tag != NULL:
                    tlb_restore(&c.psc[L], states[i])
                    i += 1
        h.cpu = m.cpu
        h.owner = m.owner
        h.run_cache = m.run_cache
        memcpy(h.pt, m.pt, MMU_MAX_ASIDS * sizeof(PTState*))
        memcpy(m, h, sizeof(MMUState))
    finally:
        free(h)
    return 0


cdef class MMUCore:
    """The MMU engine object (use ``pyapi.MMU``).

    ``tlbs``: one tuple per structure ``(level, side, sets, ways, policy, size_mask)``
    (side a code of ``SIDES``); ``fill``: ``{(level, side, size code): (structure index,
    entry size code)}`` for sides 0/1; ``psc``: ``{level: (sets, ways)}``; ``factory``:
    called as ``factory(asid)`` the first time an ASID is used, returns its
    ``PageTableCore`` (demand paging configured, no PSCs of its own).
    """

    def __cinit__(self, intp_t cpus, list tlbs, dict fill, dict psc, uint32_t psc_policy,
                  uint32_t inclusion, bint pcid, uint32_t mode, uint32_t levels,
                  bint user, uint64_t seed, object factory):
        cdef intp_t k, j, d
        cdef uint32_t L
        cdef MMUCpu* c
        cdef MMUState* st = &self.st
        memset(&self.st, 0, sizeof(MMUState))
        self._tables = [None] * MMU_MAX_ASIDS
        self._factory = factory
        if not 1 <= cpus <= MMU_MAX_CPUS:
            raise ValueError(f"cpus={cpus}: must be 1..{MMU_MAX_CPUS}")
        if len(tlbs) > MMU_MAX_TLBS:
            raise ValueError(f"{len(tlbs)} TLB structures per CPU: at most {MMU_MAX_TLBS}")
        if inclusion > INCL_EXCLUSIVE:
            raise ValueError(f"inclusion code {inclusion}")
        st.owner = <void*>self
        st.n_tlbs = len(tlbs)
        st.inclusion = inclusion
        st.pcid = pcid
        st.mode = mode
        st.levels = levels
        st.user_flag = ACC_USER if user else 0
        for d in range(2):
            for j in range(4):
                st.fill1[d][j] = -1
                st.fill2[d][j] = -1
                st.fill1_code[d][j] = 255
                st.fill2_code[d][j] = 255
        for j, spec in enumerate(tlbs):
            level, side, sets, ways, policy, mask = spec
            st.level[j] = level
            st.side[j] = side
            st.touch_on_hit[j] = policy == POLICY_LFU or policy == POLICY_SRRIP
            for d in range(2):
                if level == 1 and side == d:
                    st.n_l1[d] += 1
                elif level == 2 and (side == d or side == SIDE_UNIFIED):
                    st.l2[d][st.n_l2[d]] = j
                    st.n_l2[d] += 1
        for (level, d, code), (j, ecode) in fill.items():
            if level == 1:
                st.fill1[d][code] = j
                st.fill1_code[d][code] = ecode
            else:
                st.fill2[d][code] = j
                st.fill2_code[d][code] = ecode
        for L in psc:
            st.psc_mask |= 1u << L
        st.cpus = cpus
        st.cpu = <MMUCpu*>calloc(cpus, sizeof(MMUCpu))
        if st.cpu == NULL:
            raise MemoryError("cannot allocate the per-CPU state")
        for k in range(cpus):
            c = &st.cpu[k]
            _cpu_memo_clear(c)
            c.tlb = <TLBState*>calloc(max(st.n_tlbs, 1), sizeof(TLBState))
            if c.tlb == NULL:
                raise MemoryError("cannot allocate the TLB structures")
            for j, spec in enumerate(tlbs):
                level, side, sets, ways, policy, mask = spec
                tlb_init(&c.tlb[j], sets, ways, policy, mask, seed)
            for d in range(2):
                k2 = 0
                for j in range(st.n_tlbs):
                    if st.level[j] == 1 and st.side[j] == d:
                        c.l1_order[d][k2] = j
                        k2 += 1
            for L, (sets, ways) in psc.items():
                tlb_init(&c.psc[L], sets, ways, psc_policy, 1, seed)

    def __dealloc__(self):
        cdef intp_t k, j
        cdef uint32_t L
        free(self.st.run_cache)
        self.st.run_cache = NULL
        if self.st.cpu != NULL:
            for k in range(self.st.cpus):
                if self.st.cpu[k].tlb != NULL:
                    for j in range(self.st.n_tlbs):
                        if self.st.cpu[k].tlb[j].tag != NULL:
                            tlb_free(&self.st.cpu[k].tlb[j])
                    free(self.st.cpu[k].tlb)
                for L in range(1, PT_MAX_LEVELS):
                    if self.st.cpu[k].psc[L].tag != NULL:
                        tlb_free(&self.st.cpu[k].psc[L])
            free(self.st.cpu)
            self.st.cpu = NULL

    cdef MMUState* state(self) noexcept:
        return &self.st

    cdef int _create(self, uint32_t asid) except -1:
        cdef PageTableCore core = self._factory(asid)
        self._tables[asid] = core
        self.st.pt[asid] = core.state()
        self.st.asids += 1
        return 0

    def ensure(self, uint32_t asid):
        """Create ASID ``asid``'s page table if it does not exist yet; returns it."""
        if asid >= MMU_MAX_ASIDS:
            raise ValueError(f"ASID {asid} is outside 0..{MMU_MAX_ASIDS - 1}")
        if self.st.pt[asid] == NULL:
            self._create(asid)
        return self._tables[asid]

    def table(self, uint32_t asid):
        """ASID ``asid``'s PageTableCore, or None."""
        return self._tables[asid] if asid < MMU_MAX_ASIDS else None

    @property
    def cpus(self):
        return self.st.cpus

    @property
    def position(self):
        return self.st.position

    @property
    def asids(self):
        return self.st.asids

    def current_asid(self, intp_t cpu):
        return self.st.cpu[cpu].asid

    def cpumask(self, uint32_t asid):
        """The CPUs on which ASID ``asid`` is current."""
        return [k for k in range(self.st.cpus) if self.st.cpu[k].asid == asid]

    def run(self, const uint64_t[::1] addr not None, const uint8_t[::1] op=None,
            const uint16_t[::1] size=None, const uint16_t[::1] cpu=None,
            uint64_t[::1] paddr=None, uint8_t[::1] where=None, uint32_t[::1] fault=None,
            uint64_t[::1] entries=None):
        """Run one validated chunk in one nogil call; returns the records processed."""
        cdef intp_t n = addr.shape[0]
        cdef MMUOut o
        cdef MMUOut* po = NULL
        cdef const uint8_t* pop = NULL
        cdef const uint16_t* psz = NULL
        cdef const uint16_t* pcpu = NULL
        memset(&o, 0, sizeof(MMUOut))
        o.cols = 2 if self.st.mode == MODE_PAE else self.st.levels
        if n == 0:
            return 0
        for name, arr in (("op", op), ("size", size), ("cpu", cpu), ("paddr", paddr),
                          ("where", where), ("fault", fault)):
            if arr is not None and arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} values for {n} records")
        if entries is not None and entries.shape[0] != n * o.cols:
            raise ValueError(f"entries has {entries.shape[0]} slots for {n} x {o.cols}")
        if op is not None:
            pop = &op[0]
        if size is not None:
            psz = &size[0]
        if cpu is not None:
            pcpu = &cpu[0]
        if paddr is not None:
            o.paddr = &paddr[0]
            po = &o
        if where is not None:
            o.where = &where[0]
            po = &o
        if fault is not None:
            o.fault = &fault[0]
            po = &o
        if entries is not None:
            o.entries = &entries[0]
            po = &o
        with nogil:
            mmu_run(&self.st, &addr[0], pop, psz, pcpu, n, po)
        return n

    def lean(self):
        """Whether batches without per-record outputs take the lean path (every
        structure LRU, FIFO or PLRU with at most 64 ways and a power-of-two set count, a
        non-exclusive hierarchy) and it is enabled (set_lean)."""
        cdef _Lean ln
        return bool(_lean_enabled and _lean_setup(&self.st, &ln))

    def invalidate_range(self, uint32_t asid, uint64_t first, uint64_t last):
        mmu_invalidate_range(&self.st, <asid_t>asid, first, last)

    def counters(self):
        """Per CPU: (list of counters in COUNTER_NAMES order, [per structure (accesses,
        hits, misses, evictions, fills, invalidations)], {psc level: (accesses, hits,
        misses)})."""
        cdef intp_t k, j
        cdef MMUCpu* c
        cdef TLBState* t
        out = []
        for k in range(self.st.cpus):
            c = &self.st.cpu[k]
            tl = []
            for j in range(self.st.n_tlbs):
                t = &c.tlb[j]
                tl.append((t.accesses, t.hits, t.misses, t.evictions, t.fills,
                           t.invalidations))
            ps = {}
            for L in range(1, PT_MAX_LEVELS):
                if (self.st.psc_mask >> L) & 1:
                    ps[L] = (c.psc[L].accesses, c.psc[L].hits, c.psc[L].misses)
            out.append(([c.c[j] for j in range(MMU_NCOUNTERS)], tl, ps))
        return out

    def reset_counters(self):
        mmu_reset_counters(&self.st)

    def dump(self):
        """The MMU state without the page tables (``mmu_dump``) as bytes."""
        return mmu_dump(&self.st)

    def restore(self, bytes state not None):
        """Restore a state from :meth:`dump` (the page tables of the saved ASIDs must
        exist; ``ValueError`` if it does not fit)."""
        mmu_restore(&self.st, state)

    def contents(self, intp_t cpu, intp_t structure):
        """Valid entries of one structure: [(vpn, size code, easid, payload)] (tests)."""
        cdef TLBState* t = &self.st.cpu[cpu].tlb[structure]
        cdef intp_t e
        return [(t.tag[e] >> 2, t.tag[e] & 3, t.easid[e], t.data[e])
                for e in range(t.entries) if t.tag[e] != TAG_INVALID]
