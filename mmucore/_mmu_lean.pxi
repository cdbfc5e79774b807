# The lean translation path of the batch loop (included by mmucore/mmu.pyx, after the
# generic path it falls back to).
#
# The generic path (_access -> _translate -> _mmu_walk) serves every configuration: it
# dispatches per structure on the replacement policy and the lookup engine at every
# call, records the victim of every fill for exclusive hierarchies, diffs the page
# table's counters around each walk and walks with any entry width. For the
# configurations of the CPU presets (every TLB structure and paging-structure cache LRU,
# FIFO or PLRU, found by a tag scan of its set: at most 64 ways, a power-of-two set
# count; an inclusive or non-inclusive hierarchy; any paging mode) this path does the
# same work with fewer choices made per access:
# * the probes, hit updates and fills call the engine/policy bodies of _tlb_core.pxi
#   directly (a structure's engine and policy picked by a predictable branch); each side
#   probes only the level-1 and level-2 structures that can hold an entry (the sizes the
#   CPU has filled), worked out again only when that set changes;
# * the walk first descends read-only (PSC probes without updates, entry reads, rights):
#   when the leaf is present and the access allowed (the steady state of a replay), it
#   then applies exactly the generic walk's effects (PSC counters and LRU updates, A/D
#   bits, PSC fills, reference counts), counting straight into the CPU's counters;
#   anything else (a not-present entry, which demand paging maps, a reserved bit, a
#   protection fault, an address outside the mode, a missing table) goes to the generic
#   _mmu_walk, which the read-only descent has left nothing to undo for.
# The counters, replacement state, table bits and memos it leaves are those of the generic
# path (tests/test_mmu_lean.py compares the two paths with each other and with the
# reference model; tests/test_mmu_differential.py the engine with the reference). Not
# touched here and so not kept in step: the TLBStates' own batch memo (memo_*: cleared once per chunk, only
# tlb.pyx's batch loop reads it) and the last-victim record of level-1 and PSC fills
# (only exclusive hierarchies read it; they run the generic path).


cdef struct _Lean:
    # per code: bit j set when level-1 structure j can hold entries of that size (the
    # structures an inclusive L2 victim of that size is back-invalidated in)
    uint32_t l1_with[4]
    bint scan_only              # every structure _lean_scan_ok: the _LeanScan copy runs
    # the structures a probe must look at, for CPU `cpu` with size_seen `seen` (a
    # structure none of whose sizes the CPU has filled yet holds nothing): per side, the
    # one level-1 / level-2 structure that may hold entries (-2: none, -1: several, then
    # the generic loops run) and the sizes to probe in it
    MMUCpu* cpu
    uint32_t seen
    int32_t l1_one[2]
    uint32_t l1_pm[2]
    int32_t l2_one[2]
    uint32_t l2_pm[2]
    # set when the tables may have changed otherwise than by demand paging or A/D bits
    # since the last 4K run (a new batch: API calls before it; a control op): the next
    # run starts its path cache afresh
    bint paths_stale


# Compile-time selector of the lean path's copy: _LeanScan when every structure uses the
# nibble-order engine (at most 16 ways) with LRU or FIFO (the Skylake, Nehalem and P6
# presets): no per-structure engine or policy test at all; _LeanAny otherwise (a
# predictable branch per structure picks its engine and policy).
cdef struct _LeanScan:
    char unused
cdef struct _LeanAny:
    char unused
ctypedef fused LeanKind:
    _LeanScan
    _LeanAny


cdef inline bint _lean_scan_ok(TLBState* t) noexcept nogil:
    return (not t.listed) and (t.policy == POLICY_LRU or t.policy == POLICY_FIFO)


cdef inline bint _lean_struct_ok(TLBState* t) noexcept nogil:
    return (not t.indexed) and t.sets_pow2 and \
        (t.policy == POLICY_LRU or t.policy == POLICY_FIFO or t.policy == POLICY_PLRU)


cdef bint _lean_setup(MMUState* m, _Lean* ln) noexcept nogil:
    """Whether every CPU's structures allow the lean path; prepares `ln` and clears the
    TLBStates' batch memos (which the lean path does not keep) when they do."""
    cdef intp_t k, j
    cdef uint32_t L, code
    cdef MMUCpu* c
    ln.paths_stale = True
    if m.inclusion == INCL_EXCLUSIVE:
        return False
    ln.scan_only = True
    for k in range(m.cpus):
        c = &m.cpu[k]
        for j in range(m.n_tlbs):
            if not _lean_struct_ok(&c.tlb[j]):
                return False
            ln.scan_only = ln.scan_only and _lean_scan_ok(&c.tlb[j])
        for L in range(1, PT_MAX_LEVELS):
            if (m.psc_mask >> L) & 1:
                if not _lean_struct_ok(&c.psc[L]):
                    return False
                ln.scan_only = ln.scan_only and _lean_scan_ok(&c.psc[L])
    for code in range(4):
        ln.l1_with[code] = 0
        for j in range(m.n_tlbs):
            if m.level[j] == 1 and (m.cpu[0].tlb[j].size_mask >> code) & 1:
                ln.l1_with[code] |= 1u << j
    ln.cpu = NULL
    for k in range(m.cpus):
        c = &m.cpu[k]
        for j in range(m.n_tlbs):
            _memo_clear(&c.tlb[j])
        for L in range(1, PT_MAX_LEVELS):
            if (m.psc_mask >> L) & 1:
                _memo_clear(&c.psc[L])
    return True


# ----------------------------------------------------------------------------------------
# structures (lean: a tag scan of the set, _Scan or _Wide engine; LRU, FIFO or PLRU)

cdef inline intp_t _lean_find(TLBState* t, intp_t s, uint64_t tag, uint32_t asid,
                             LeanKind* kd) noexcept nogil:
    # the entry of tag for asid (or a global one) in set s, or -1
    if LeanKind is _LeanAny and t.listed:
        return _find_scan(t, s * t.ways, tag, asid, <_Wide*>NULL)
    return _find_scan(t, s * t.ways, tag, asid, <_Scan*>NULL)


cdef inline intp_t _lean_probe(TLBState* t, vaddr_t va, uint32_t asid, uint32_t pm,
                               intp_t* s, LeanKind* kd) noexcept nogil:
    # the entry of va (sizes in pm only: the others cannot be present) or -1; *s its set
    cdef uint64_t vpn
    cdef uint32_t code
    if t.n_sizes == 1:                  # (pm is then the one size)
        vpn = va >> t.size_shift[0]
        s[0] = <intp_t>(vpn & t.set_mask)
        return _lean_find(t, s[0], (vpn << 2) | t.size_code[0], asid, kd)
    if (pm & (pm - 1)) == 0:            # one size seen (an STLB of 4K and 2M, 4K so far)
        code = <uint32_t>mmucore_ctz64(pm)
        vpn = va >> page_shift(code)
        s[0] = <intp_t>(vpn & t.set_mask)
        return _lean_find(t, s[0], (vpn << 2) | code, asid, kd)
    if LeanKind is _LeanAny and t.listed:
        return _probe_sizes(t, va, asid, pm, s, <_Wide*>NULL)
    return _probe_sizes(t, va, asid, pm, s, <_Scan*>NULL)


cdef inline void _lean_touch(TLBState* t, intp_t s, intp_t e, LeanKind* kd) noexcept nogil:
    # a hit's replacement update (FIFO: none)
    if LeanKind is _LeanScan:
        if t.policy == POLICY_LRU:
            _order_front(t, s, e, <_Scan*>NULL)
    elif t.policy == POLICY_LRU:
        if t.listed:
            _order_front(t, s, e, <_Wide*>NULL)
        else:
            _order_front(t, s, e, <_Scan*>NULL)
    elif t.policy == POLICY_PLRU:
        _plru_touch(t, s, e - s * t.ways)


cdef inline intp_t _lean_fill(TLBState* t, vaddr_t va, uint32_t ea, uint32_t code,
                              uint64_t data, bint record, LeanKind* kd) noexcept nogil:
    # tlb_fill_absent (the caller probed and missed)
    cdef uint64_t vpn = va >> page_shift(code)
    return _lean_fill_set(t, vpn, <intp_t>(vpn & t.set_mask), ea, code, data, record, kd)


cdef inline intp_t _lean_fill_set(TLBState* t, uint64_t vpn, intp_t s, uint32_t ea, uint32_t code,
                                  uint64_t data, bint record, LeanKind* kd) noexcept nogil:
    # _lean_fill of page number vpn, whose set s the caller has; LRU and FIFO fill alike;
    # `record`: keep the victim's tag and ASID (for back-invalidation)
    cdef int rec = RECORD_TAG if record else RECORD_NONE
    if LeanKind is _LeanAny:
        if t.policy == POLICY_PLRU:
            if t.listed:
                return _fill_new(t, vpn, s, code, ea, data, <_PLRU*>NULL, <_Wide*>NULL, rec)
            return _fill_new(t, vpn, s, code, ea, data, <_PLRU*>NULL, <_Scan*>NULL, rec)
        if t.listed:
            return _fill_new(t, vpn, s, code, ea, data, <_LRU*>NULL, <_Wide*>NULL, rec)
    return _fill_new(t, vpn, s, code, ea, data, <_LRU*>NULL, <_Scan*>NULL, rec)


cdef inline intp_t _lean_remove_match(TLBState* t, uint64_t tag, uint32_t easid,
                                     LeanKind* kd) noexcept nogil:
    # _tlb_remove_match_i for a structure that holds tag's size
    cdef intp_t s = <intp_t>((tag >> 2) & t.set_mask)
    cdef intp_t base = s * t.ways, w
    if t.nvalid[s] == 0:
        return 0                        # (an empty set: the iTLB of a data-only trace)
    if LeanKind is _LeanAny and t.listed:
        if mmucore_find_eq(t.tag + base, t.ways, tag) < 0:
            return 0
    elif not _scan_any(t, t.tag + base, tag):
        return 0                        # (the usual case)
    for w in range(t.ways):
        if t.tag[base + w] == tag and t.easid[base + w] == easid:
            _drop(t, s, base + w)
            return 1
    return 0


cdef inline void _lean_fill_l1(MMUCpu* c, uint32_t d, int32_t si, uint32_t ecode, vaddr_t va,
                               uint32_t ea, uint64_t pa, LeanKind* kd) noexcept nogil:
    # _fill_l1 of a non-exclusive hierarchy
    cdef uint64_t base = pa & ~((((<uint64_t>1) << page_shift(ecode))) - 1)
    cdef intp_t e
    c.size_seen |= 1u << ecode
    e = _lean_fill(&c.tlb[si], va, ea, ecode, base >> 12, False, kd)
    _memo_set(c, d, si, e, ecode, base)


cdef inline void _lean_fill_l2(MMUState* m, MMUCpu* c, _Lean* ln, int32_t si, uint32_t ecode,
                               vaddr_t va, uint32_t ea, uint64_t pa, LeanKind* kd) noexcept nogil:
    # _fill_l2: inclusive hierarchies back-invalidate the victim in level 1
    cdef TLBState* t = &c.tlb[si]
    cdef uint32_t bits, vbit, j
    cdef intp_t n = 0
    c.size_seen |= 1u << ecode
    if m.inclusion != INCL_INCLUSIVE:
        _lean_fill(t, va, ea, ecode, _entry_data(pa, ecode), False, kd)
        return
    _lean_fill(t, va, ea, ecode, _entry_data(pa, ecode), True, kd)
    if t.victim_valid:
        t.victim_valid = 0
        vbit = 1u << (t.victim_tag & 3)
        bits = ln.l1_with[t.victim_tag & 3]
        while bits:
            j = <uint32_t>mmucore_ctz64(bits)
            bits &= bits - 1
            if c.size_seen & vbit:
                n += _lean_remove_match(&c.tlb[j], t.victim_tag, t.victim_easid, kd)
        if n:
            c.c[C_BACK_INVALIDATIONS] += <uint64_t>n
            _cpu_memo_clear(c)


# ----------------------------------------------------------------------------------------
# the walk

cdef int _lean_walk_generic(MMUState* m, MMUCpu* c, uint32_t d, vaddr_t va, uint32_t acc,
                            uint32_t asid) except -1 nogil:
    # the generic walk and fills (what _translate runs after an L2 miss)
    cdef _Tr tr
    cdef WalkOut w
    w.n_entries = 0
    tr.walk = &w
    return _mmu_walk(m, c, d, va, acc, asid, &tr)


cdef inline Ent* _lean_ent(uint64_t* pool, uint32_t** slot_dir, uint64_t dir_len, paddr_t pa,
                           Ent* width) noexcept nogil:
    # _ent_ptr (the entry at pa, of either width), with the pool's fields in registers
    cdef uint64_t pfn = pa >> 12
    cdef intp_t slot = 0
    if (pfn >> 10) < dir_len:
        slot = slot_dir[pfn >> 10][pfn & 1023]
    return (<Ent*>(pool + (slot << 9))) + ((pa & 4095) // sizeof(Ent))


cdef inline uint64_t _lean_idx(PTState* s, vaddr_t va, int L, Ent* width) noexcept nogil:
    # the index of va's entry in its level-L table (8-byte entries: 9 bits a level)
    if Ent is uint32_t:
        return (va >> s.shift[L]) & s.idx_mask[L]
    return (va >> (12 + 9 * L)) & 511


cdef inline Ent* _lean_ent_at(PTState* s, uint64_t* pool, uint32_t** slot_dir, uint64_t dir_len,
                             paddr_t table, vaddr_t va, int L, Ent* width) noexcept nogil:
    # the level-L entry of va in the table at `table`
    return _lean_ent(pool, slot_dir, dir_len, table + _lean_idx(s, va, L, width) * sizeof(Ent),
                     width)


cdef inline uint64_t _lean_key(PTState* s, uint64_t vm, int k, Ent* width) noexcept nogil:
    # the PSC key of level k (va's bits above the level's index)
    if Ent is uint32_t:
        return vm >> s.shift[k]
    return vm >> (12 + 9 * k)


cdef inline int _walk_top(PTState* s) noexcept nogil:
    # the level a walk starts at: below PAE's PDPTE registers, else the root
    return 1 if s.mode == MODE_PAE else <int>s.top


cdef inline void _prefetch_leaf_ent(PTState* s, vaddr_t va, uint64_t* pd_key,
                                    paddr_t* pd_table, Ent* width) noexcept nogil:
    # Descend read-only to va's leaf table and prefetch the leaf entry (no semantic
    # effect). *pd_key/*pd_table: the page directory the last descent found for the
    # 1 GiB region va >> 30 (4 and 5 levels), where the next descent in that region
    # starts (a stale one only makes a useless prefetch).
    cdef int L = _walk_top(s)
    cdef paddr_t table = s.cr3
    cdef uint64_t e
    if s.mode == MODE_PAE:
        e = s.pdpte[(va >> 30) & 3]
        if not (e & PTE_P):
            return
        table = e & s.addr_mask
    elif pd_key[0] == (va >> 30):
        table = pd_table[0]
        L = 1
    while L:
        if L == 1:
            pd_key[0] = va >> 30
            pd_table[0] = table
        e = _lean_ent_at(s, s.pool, s.slot_dir, s.dir_len, table, va, L, width)[0]
        if (e & (PTE_P | PTE_PS)) != PTE_P:
            return
        table = e & s.addr_mask
        L -= 1
    _prefetch(_lean_ent_at(s, s.pool, s.slot_dir, s.dir_len, table, va, 0, width))


cdef inline int _lean_walk(MMUState* m, MMUCpu* c, _Lean* ln, uint32_t d, vaddr_t va,
                           uint32_t acc, uint32_t asid, LeanKind* kd,
                           Ent* width) except -1 nogil:
    """_mmu_walk for a walk that translates without a fault: a read-only descent
    first, then the walk's effects; otherwise the generic walk. 8-byte entries: the
    index of level L is bits 12 + 9L .. 20 + 9L of va (constants); 4-byte entries
    (32-bit paging): the table's shifts and masks."""
    cdef PTState* s = m.pt[asid]
    cdef TLBState* psc = c.psc
    cdef uint32_t pmask = m.psc_mask, missed = 0
    cdef int L, k, start, hitk = 0, leaf
    cdef intp_t he = -1, hs = 0
    cdef paddr_t table, pa
    cdef uint64_t e, dd, vmask, sz, paddr, flags, addr_mask, vm, key
    cdef uint64_t rw = 1, us = 1, xd = 0
    cdef uint32_t sh, code
    cdef Ent* ep
    cdef uint64_t* pool
    cdef uint32_t** slot_dir
    cdef uint64_t dir_len
    cdef Ent* path_p[5]
    cdef uint64_t path_e[5]
    cdef uint64_t path_perm[5]
    cdef bint prot, glob
    cdef int32_t s1, s2
    if s == NULL:
        return _lean_walk_generic(m, c, d, va, acc, asid)
    # (1) read-only: the mode's linear space, the PSCs, the entries, the access rights
    if s.va_bits == 32:
        if va >> 32:
            return _lean_walk_generic(m, c, d, va, acc, asid)
    else:
        sh = 64 - s.va_bits
        if <uint64_t>((<int64_t>(va << sh)) >> sh) != va:
            return _lean_walk_generic(m, c, d, va, acc, asid)
    addr_mask = s.addr_mask
    pool = s.pool
    slot_dir = s.slot_dir
    dir_len = s.dir_len
    vmask = ((<uint64_t>1) << s.va_bits) - 1
    vm = va & vmask
    L = s.top
    table = s.cr3
    if s.mode == MODE_PAE:
        e = s.pdpte[(va >> 30) & 3]
        if not (e & PTE_P):
            return _lean_walk_generic(m, c, d, va, acc, asid)
        table = e & addr_mask
        L = 1
    start = L
    if pmask:
        for k in range(1, L + 1):
            if (pmask >> k) & 1:
                key = _lean_key(s, vm, k, width)
                hs = <intp_t>(key & psc[k].set_mask)
                he = _lean_find(&psc[k], hs, key << 2, asid, kd)
                if he >= 0:
                    dd = psc[k].data[he]
                    table = dd & addr_mask
                    rw = (dd >> 1) & 1
                    us = (dd >> 2) & 1
                    xd = dd >> 63
                    hitk = k
                    start = k - 1
                    break
                missed |= 1u << k
    L = start
    while True:
        ep = _lean_ent_at(s, pool, slot_dir, dir_len, table, va, L, width)
        e = ep[0]
        if not (e & PTE_P) or (e & s.rsvd[2 * L + ((e >> 7) & 1)]):
            return _lean_walk_generic(m, c, d, va, acc, asid)
        rw &= e >> 1
        us &= e >> 2
        xd |= e >> 63
        if L == 0 or (e & PTE_PS):
            break
        path_p[L] = ep
        path_e[L] = e
        path_perm[L] = ((rw & 1) << 1) | ((us & 1) << 2) | ((xd & 1) << 63)
        table = e & addr_mask
        L -= 1
    leaf = L
    rw &= 1
    us &= 1
    xd &= 1
    if acc & ACC_USER:              # (rw, us, xd are 0/1: one test, no branch per term)
        prot = ((us ^ 1) | (((acc >> 1) & 1) & (rw ^ 1)) | (((acc >> 4) & 1) & xd)) != 0
    else:
        prot = ((acc & ACC_WRITE) and not rw and s.wp) or \
               ((acc & ACC_IFETCH) and (xd or (s.smep and us))) or \
               (s.smap and us and not (acc & ACC_IFETCH))
    if prot:
        return _lean_walk_generic(m, c, d, va, acc, asid)
    # (2) the walk's effects, in the generic walk's order
    c.c[C_WALKS] += 1
    s.st.accesses += 1
    s.st.walks += 1
    while missed:
        k = mmucore_ctz64(missed)
        missed &= missed - 1
        psc[k].accesses += 1
        psc[k].misses += 1
        s.st.psc_misses[k] += 1
    if hitk:
        psc[hitk].accesses += 1
        psc[hitk].hits += 1
        _lean_touch(&psc[hitk], hs, he, kd)
        s.st.psc_hits[hitk] += 1
    for k in range(leaf, start + 1):
        s.st.refs[k] += 1
        c.c[C_WALK_REFS_PTE + k] += 1
    c.c[C_WALK_REFS] += <uint64_t>(start - leaf + 1)
    for k in range(start, leaf, -1):
        if not (path_e[k] & PTE_A):
            path_p[k][0] = <Ent>(path_e[k] | PTE_A)
        if (pmask >> k) & 1:
            _lean_fill(&psc[k], _lean_key(s, vm, k, width) << 12,
                       asid, PS_4K,
                       (path_e[k] & addr_mask) | path_perm[k], False, kd)
    flags = PTE_A | (PTE_D if acc & ACC_WRITE else 0)
    if (e & flags) != flags:
        ep[0] = <Ent>(ep[0] | flags)   # re-read: a non-leaf A write may alias it
    if leaf == 0:
        code = PS_4K
        paddr = (e & addr_mask) | (va & 4095)
    elif Ent is uint32_t:               # a 4M page, PSE-36 bits 20:13 -> address 39:32
        sz = (<uint64_t>1) << s.shift[leaf]
        code = PS_4M
        paddr = (e & <uint64_t>0xFFC00000) | \
            (((e >> 13) & ((((<uint64_t>1) << (s.maxphyaddr - 32))) - 1)) << 32) | (va & (sz - 1))
    else:
        sz = (<uint64_t>1) << (12 + 9 * leaf)
        code = s.leaf_code[leaf]
        paddr = (e & addr_mask & ~(sz - 1)) | (va & (sz - 1))
    s.st.translations[code] += 1
    # (3) the fills (_mmu_walk's, non-exclusive)
    glob = (e & PTE_G) != 0
    s1 = m.fill1[d][code]
    s2 = m.fill2[d][code]
    if s1 >= 0:
        _charge_miss(&c.tlb[s1])
    if s2 >= 0:
        _charge_miss(&c.tlb[s2])
        _lean_fill_l2(m, c, ln, s2, m.fill2_code[d][code], va,
                      <uint32_t>ASID_GLOBAL if glob else asid, paddr, kd)
    if s1 >= 0:
        _lean_fill_l1(c, d, s1, m.fill1_code[d][code], va,
                      <uint32_t>ASID_GLOBAL if glob else asid, paddr, kd)
    else:
        c.memo_vpn[d] = TAG_INVALID
    return 0


# ----------------------------------------------------------------------------------------
# one memory op that stays within one 4 KiB page (so within one page of any size)

cdef void _lean_live(MMUState* m, MMUCpu* c, _Lean* ln) noexcept nogil:
    # _Lean.l1_one/l2_one for CPU c as it is now
    cdef uint32_t d, pm
    cdef int32_t k, si
    ln.cpu = c
    ln.seen = c.size_seen
    for d in range(2):
        ln.l1_one[d] = -2
        for k in range(m.n_l1[d]):
            si = c.l1_order[d][k]
            pm = c.tlb[si].size_mask & c.size_seen
            if pm:
                ln.l1_one[d] = si if ln.l1_one[d] == -2 else -1
                ln.l1_pm[d] = pm
        ln.l2_one[d] = -2
        for k in range(m.n_l2[d]):
            si = m.l2[d][k]
            pm = c.tlb[si].size_mask & c.size_seen
            if pm:
                ln.l2_one[d] = si if ln.l2_one[d] == -2 else -1
                ln.l2_pm[d] = pm


cdef inline void _lean_l2_hit(MMUState* m, MMUCpu* c, uint32_t d, TLBState* t, intp_t st,
                              intp_t e, vaddr_t va, LeanKind* kd) noexcept nogil:
    # an L2 hit on entry e (set st) of t: its counters and update, then the L1 fill
    cdef uint32_t code = <uint32_t>(t.tag[e] & 3)
    cdef uint64_t pa = (t.data[e] << 12) | (va & ((((<uint64_t>1) << page_shift(code))) - 1))
    cdef int32_t s1 = m.fill1[d][code]
    t.accesses += 1
    t.hits += 1
    _lean_touch(t, st, e, kd)
    c.c[C_L2_HITS] += 1
    if s1 >= 0:
        _charge_miss(&c.tlb[s1])
        _lean_fill_l1(c, d, s1, m.fill1_code[d][code], va, t.easid[e], pa, kd)
    else:
        c.memo_vpn[d] = TAG_INVALID


cdef inline int _lean_access(MMUState* m, MMUCpu* c, _Lean* ln, vaddr_t va,
                             uint32_t op, LeanKind* kd) except -1 nogil:
    """_access for a memory op whose bytes lie in one 4 KiB page and that is not a hit on
    the side's memo (the batch loop counts those)."""
    cdef uint32_t d = SIDE_INSTRUCTION if op == OP_IFETCH else SIDE_DATA
    cdef uint32_t acc = m.user_flag
    cdef uint32_t asid = c.asid
    cdef int32_t k, si
    cdef TLBState* t
    cdef intp_t e, st
    cdef uint32_t pm
    if op == OP_STORE or op == OP_MODIFY:
        acc |= ACC_WRITE
    elif op == OP_IFETCH:
        acc |= ACC_IFETCH
    c.c[C_ACCESSES] += 1
    c.c[C_TRANSLATIONS] += 1
    if c != ln.cpu or c.size_seen != ln.seen:
        _lean_live(m, c, ln)
    # level 1: the one structure that may hold va, else each, last-hit structure first
    si = ln.l1_one[d]
    if si >= 0:
        t = &c.tlb[si]
        e = _lean_probe(t, va, asid, ln.l1_pm[d], &st, kd)
        if e >= 0:
            t.accesses += 1
            t.hits += 1
            _lean_touch(t, st, e, kd)
            if c.l1_order[d][0] != si:
                _l1_first(c, d, si)
            c.c[C_L1_HITS] += 1
            _memo_set(c, d, si, e, <uint32_t>(t.tag[e] & 3), t.data[e] << 12)
            return 0
    for k in range(m.n_l1[d] if si == -1 else 0):
        si = c.l1_order[d][k]
        t = &c.tlb[si]
        pm = t.size_mask & c.size_seen
        if pm == 0:
            continue
        e = _lean_probe(t, va, asid, pm, &st, kd)
        if e >= 0:
            t.accesses += 1
            t.hits += 1
            _lean_touch(t, st, e, kd)
            if k:
                _l1_to_front(c, d, k)
            c.c[C_L1_HITS] += 1
            _memo_set(c, d, si, e, <uint32_t>(t.tag[e] & 3), t.data[e] << 12)
            return 0
    c.c[C_L1_MISSES] += 1
    # level 2: the same
    si = ln.l2_one[d]
    if si >= 0:
        t = &c.tlb[si]
        e = _lean_probe(t, va, asid, ln.l2_pm[d], &st, kd)
        if e >= 0:
            _lean_l2_hit(m, c, d, t, st, e, va, kd)
            return 0
    elif si == -1:
        for k in range(m.n_l2[d]):
            si = m.l2[d][k]
            t = &c.tlb[si]
            pm = t.size_mask & c.size_seen
            if pm == 0:
                continue
            e = _lean_probe(t, va, asid, pm, &st, kd)
            if e >= 0:
                _lean_l2_hit(m, c, d, t, st, e, va, kd)
                return 0
    c.c[C_L2_MISSES] += 1
    if m.mode == MODE_X86_32:
        return _lean_walk(m, c, ln, d, va, acc, asid, kd, <uint32_t*>NULL)
    return _lean_walk(m, c, ln, d, va, acc, asid, kd, <uint64_t*>NULL)
