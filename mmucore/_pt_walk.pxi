# The page walk's hot internals, one source for every module that walks.
#
# `include`d by mmucore/pagetable.pyx (pt_walk, pt_walk_ext, pt_walk_batch, ...) and by
# mmucore/mmu.pyx (the per-access path), after _tlb_core.pxi (the PSC lookups and fills
# are its inline dispatchers). Each including module gets its own static copy, so GCC
# inlines the walk, the PSC probes and the entry reads into the caller's loop instead of
# calling pt_walk_ext/tlb_lookup/tlb_fill through Cython's cross-module capsule pointers.
# Not a cimport contract: the stable surface is pagetable.pxd.
#
# The including module must have cimported: from mmucore._types uint32_t, uint64_t,
# int64_t, vaddr_t, paddr_t, intp_t, asid_t, PS_4K, PS_4M; from mmucore.pagetable
# PTState, WalkOut, FAULT_*, ACC_*, PTE_P, PTE_A, PTE_D, PTE_PS, MODE_PAE,
# PT_MAX_LEVELS, pt_demand_fault; from mmucore.tlb TLBState, tlb_invalidate
# (pagetable.pyx gets the pagetable names from its own .pxd).

cdef enum:
    # outcome of one walk (_walk_w), turned into an x86 error code by _finish
    _OK = 0
    _NOT_PRESENT = 1
    _RESERVED = 2
    _PROTECTION = 3
    _OUTSIDE = 4
    _NO_LEAF = 255


# ----------------------------------------------------------------------------------------
# physical memory: reading the frame pool of page-table pages

cdef inline uint32_t _slot(PTState* s, uint64_t pfn) noexcept nogil:
    """Pool slot of a frame, 0 unless it is a page-table page (a two-level index, so a
    table at a high frame costs one 4 KiB chunk, not an array over all frames)."""
    if (pfn >> 10) >= s.dir_len:
        return 0
    return s.slot_dir[pfn >> 10][pfn & 1023]     # empty entries: the zero chunk


cdef inline uint64_t* _page(PTState* s, uint64_t pfn) noexcept nogil:
    return s.pool + ((<intp_t>_slot(s, pfn)) << 9)


cdef inline uint64_t _rd(PTState* s, paddr_t pa) noexcept nogil:
    cdef uint64_t* p = _page(s, pa >> 12)
    if s.esize == 8:
        return p[(pa >> 3) & 511]
    return (<uint32_t*>p)[(pa >> 2) & 1023]


# The walk is compiled once per entry width (4-byte entries of 32-bit paging, 8-byte
# entries otherwise), chosen once per call, so the loop has no width test per level.
ctypedef fused Ent:
    uint32_t
    uint64_t


cdef inline Ent* _ent_ptr(PTState* s, paddr_t pa, Ent* width) noexcept nogil:
    return (<Ent*>_page(s, pa >> 12)) + ((pa & 4095) // sizeof(Ent))


# ----------------------------------------------------------------------------------------
# the walk

cdef inline uint32_t _walk_w(PTState* s, vaddr_t va, uint32_t acc, WalkOut* o,
                             TLBState* psc, uint32_t psc_mask, asid_t asid,
                             Ent* width) noexcept nogil:
    """One page walk; returns _OK/_NOT_PRESENT/_RESERVED/_PROTECTION/_OUTSIDE and fills
    o.paddr/o.size_code/o.level/o.refs/o.entry_paddr. Counts refs and PSC hits.
    `psc` is an array of 5 PSCs indexed by level (bit L of `psc_mask`: level L's is on),
    whose entries are tagged `asid`: the table's own (asid 0) or a CPU's (mmu.pyx)."""
    cdef int L, k, start
    cdef paddr_t table, pa
    cdef uint64_t e, d, key, vmask, sz
    cdef uint64_t rw = 1, us = 1, xd = 0
    cdef uint32_t kind = _OK
    cdef intp_t refs = 0, hit
    cdef uint32_t sh
    cdef Ent* ep
    cdef Ent* leaf_p = NULL
    cdef Ent* path_p[5]
    cdef uint64_t path_e[5]
    cdef uint64_t path_perm[5]
    cdef bint prot
    o.refs = 0
    o.n_entries = 0
    if s.va_bits == 32:
        if va >> 32:
            return _OUTSIDE
    else:
        sh = 64 - s.va_bits
        if <uint64_t>((<int64_t>(va << sh)) >> sh) != va:
            return _OUTSIDE
    s.st.walks += 1
    vmask = ((<uint64_t>1) << s.va_bits) - 1
    L = s.top
    table = s.cr3
    if s.mode == MODE_PAE:
        e = s.pdpte[(va >> 30) & 3]
        if not (e & PTE_P):
            o.level = 2
            return _NOT_PRESENT
        table = e & s.addr_mask
        L = 1
    start = L
    if psc_mask:
        for k in range(1, L + 1):
            if (psc_mask >> k) & 1:
                key = (va & vmask) >> s.shift[k]
                hit = _tlb_lookup_i(&psc[k], key << 12, asid)
                if hit >= 0:
                    d = psc[k].data[hit]
                    table = d & s.addr_mask
                    rw = (d >> 1) & 1
                    us = (d >> 2) & 1
                    xd = d >> 63
                    s.st.psc_hits[k] += 1
                    start = k - 1
                    break
                s.st.psc_misses[k] += 1
    L = start
    while True:
        pa = table + ((va >> s.shift[L]) & s.idx_mask[L]) * sizeof(Ent)
        ep = _ent_ptr(s, pa, width)
        e = ep[0]
        s.st.refs[L] += 1
        o.entry_paddr[refs] = pa
        refs += 1
        if not (e & PTE_P):
            kind = _NOT_PRESENT
            break
        if e & s.rsvd[2 * L + ((e >> 7) & 1)]:
            kind = _RESERVED
            break
        rw &= e >> 1
        us &= e >> 2
        xd |= e >> 63
        if L == 0 or (e & PTE_PS):
            leaf_p = ep
            break
        path_p[L] = ep
        path_e[L] = e
        path_perm[L] = ((rw & 1) << 1) | ((us & 1) << 2) | ((xd & 1) << 63)
        table = e & s.addr_mask
        L -= 1
    o.refs = <uint32_t>refs
    o.n_entries = refs
    o.level = L
    # the valid non-leaf entries read: A=1 (SDM 4.8)
    for k in range(start, L, -1):
        if not (path_e[k] & PTE_A):
            path_p[k][0] = <Ent>(path_e[k] | PTE_A)
    if kind == _OK:
        # access rights (SDM 4.6): U/S and R/W are ANDed over the levels, XD ORed
        rw &= 1
        us &= 1
        xd &= 1
        if acc & ACC_USER:
            prot = (not us) or ((acc & ACC_WRITE) and not rw) or ((acc & ACC_IFETCH) and xd)
        else:
            prot = ((acc & ACC_WRITE) and not rw and s.wp) or \
                   ((acc & ACC_IFETCH) and (xd or (s.smep and us))) or \
                   (s.smap and us and not (acc & ACC_IFETCH))
        if prot:
            kind = _PROTECTION
    if kind != _OK:
        # a page fault invalidates every PSC entry that would be used for va (SDM
        # 4.10.4.1), so the walk leaves none behind: it fills nothing, drops the rest
        # (the entries of this ASID: the PSCs of one table hold asid 0 only)
        if psc_mask:
            for k in range(1, s.levels):
                if (psc_mask >> k) & 1:
                    tlb_invalidate(&psc[k], ((va & vmask) >> s.shift[k]) << 12, asid, False)
        return kind
    # the valid non-leaf entries read go into their PSCs (SDM 4.10.3.1). Every level
    # below `start` was probed above and missed (and nothing filled it since), so the
    # fill needs no search for a present entry
    for k in range(start, L, -1):
        if (psc_mask >> k) & 1:
            _tlb_fill_absent_i(&psc[k], ((va & vmask) >> s.shift[k]) << 12, asid, PS_4K, False,
                     (path_e[k] & s.addr_mask) | path_perm[k])
    d = PTE_A | (PTE_D if acc & ACC_WRITE else 0)
    if (e & d) != d:
        leaf_p[0] = <Ent>(leaf_p[0] | d)     # re-read: a non-leaf A write may alias it
    sz = (<uint64_t>1) << s.shift[L]
    if L == 0:
        o.size_code = PS_4K
        o.paddr = (e & s.addr_mask) | (va & 4095)
    elif Ent is uint32_t:
        o.size_code = PS_4M
        o.paddr = (e & <uint64_t>0xFFC00000) | \
            (((e >> 13) & ((((<uint64_t>1) << (s.maxphyaddr - 32))) - 1)) << 32) | \
            (va & (sz - 1))
    else:
        o.size_code = s.leaf_code[L]
        o.paddr = (e & s.addr_mask & ~(sz - 1)) | (va & (sz - 1))
    return _OK


cdef inline uint32_t _walk(PTState* s, vaddr_t va, uint32_t acc, WalkOut* o,
                           TLBState* psc, uint32_t psc_mask, asid_t asid) noexcept nogil:
    if s.esize == 8:
        return _walk_w(s, va, acc, o, psc, psc_mask, asid, <uint64_t*>NULL)
    return _walk_w(s, va, acc, o, psc, psc_mask, asid, <uint32_t*>NULL)


cdef inline uint32_t _own_psc_mask(PTState* s) noexcept nogil:
    cdef uint32_t L, m = 0
    if s.any_psc:
        for L in range(1, PT_MAX_LEVELS):
            if s.psc_on[L]:
                m |= 1u << L
    return m


cdef inline uint32_t _finish(PTState* s, uint32_t kind, uint32_t acc, WalkOut* o) noexcept nogil:
    """The x86 error code of a walk's outcome (SDM 4.7), and the outcome counters."""
    cdef uint32_t f
    if kind == _OK:
        s.st.translations[o.size_code] += 1
        o.fault = 0
        return 0
    if kind == _OUTSIDE:
        s.st.faults_outside += 1
        o.fault = FAULT_GP
        o.paddr = 0
        return FAULT_GP
    f = FAULT_PF | (acc & (FAULT_W | FAULT_U))
    if (acc & ACC_IFETCH) and s.id_bit:
        f |= FAULT_I
    if kind == _NOT_PRESENT:
        s.st.faults_not_present += 1
    elif kind == _RESERVED:
        f |= FAULT_P | FAULT_RSVD
        s.st.faults_reserved += 1
    else:
        f |= FAULT_P
        s.st.faults_protection += 1
    o.fault = f
    o.paddr = 0
    return f


cdef inline int64_t _walk_demand(PTState* s, vaddr_t va, uint32_t acc, WalkOut* o,
                                 TLBState* psc, uint32_t psc_mask, asid_t asid) except -1 nogil:
    cdef uint32_t kind
    cdef uint32_t refs0
    s.st.accesses += 1
    kind = _walk(s, va, acc, o, psc, psc_mask, asid)
    if kind == _NOT_PRESENT and s.demand:
        refs0 = o.refs
        if pt_demand_fault(s, va, o.level) == 0:
            kind = _walk(s, va, acc, o, psc, psc_mask, asid)
            o.refs += refs0
    return _finish(s, kind, acc, o)
