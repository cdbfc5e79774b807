# The 4K run of the batch loop (included by mmucore/mmu.pyx, after the lean path).
#
# The lean path (_mmu_lean.pxi) translates one memory op per call: it reads the
# configuration from the MMUState and the TLBStates and adds to a dozen counters in
# memory every time. Most of a replay, though, is one long stretch in which nothing
# about the configuration changes: one CPU's loads, stores and instruction fetches over
# 4 KiB pages, in any configuration the lean path takes (every preset but Zen 4; it is
# compiled, like the lean path, once for nibble-order LRU/FIFO structures only, the
# _LeanScan copy: Skylake, Nehalem, P6, and once for the rest), any paging mode. _run4k
# replays such a stretch in one call:
# * each side's L1 and L2 structure and memo, the page table and the PSC levels live in
#   locals for the whole run;
# * it counts only L1 hits, L2 hits, walks by the level of their PSC hit and
#   back-invalidations, and derives every counter the lean path would have added from
#   them when the run ends (_run4k_flush);
# * its walk is the lean walk for 4K leaves only (compiled per entry width, as it is).
# It stops, without having changed anything for that record, at the first record it does
# not handle: another CPU, a control op, an access that crosses a 4 KiB page, an op of a
# side it does not take (one whose L1 structure is shared with the other side, or that
# has no single structure for 4K entries), or a walk that does not end in a present 4K
# leaf the access may use (a not-present entry: demand paging; a fault; a large page).
# The caller runs that record through the lean or generic path and calls _run4k again
# (after a short run, only R4_BACKOFF records later). tests/test_mmu_lean.py holds the
# replay with and without it (set_run4k) to identical counters, page-table bits and
# reference-model results.


cdef struct _Side4k:
    # one side (data, instruction) of a 4K run: its structures, its memo, its counts
    TLBState* t1                # the L1 structure holding its 4K entries (NULL: not taken)
    TLBState* t2                # the L2 structure holding them (NULL: none)
    int32_t si1
    uint64_t mask1
    uint64_t mask2
    bint lru1
    bint lru2
    uint64_t memo               # page number of the side's memo (TAG_INVALID: none)
    intp_t e1                   # its L1 entry (-1: none to write back)
    uint64_t ops                # memory ops translated
    uint64_t l1_hits            # including the memo's
    uint64_t l2_hits


cdef struct _Run4k:
    _Side4k side[2]
    uint64_t hit_at[5]          # walks, by the level of their PSC hit (0: none)
    uint64_t back_inv


cdef enum:
    R4_PATHS = 2048             # entries of the path cache (a power of two)


cdef struct _R4Path:
    # An entry of the 4K run's path cache: the descent from the root to the leaf table
    # of one region (va >> 21; >> 22 under 32-bit paging). A run changes no table but A
    # and D bits and no pool address, so within it the descent is the same every time
    # (and across runs, as long as nothing but demand paging happened between them: see
    # _run4k); a walk that finds its region here (and, after a PSC hit at level k, the
    # PSC's data equal to fill[k]: the same table below) reads the leaf entry alone.
    # Entries are valid while `stamp` is the cache's, and are made only for descents
    # whose entries above the leaf are present, have their A bit set (so the walk would
    # write none) and no reserved or PS bit.
    uint64_t stamp
    uint64_t region
    void* leaf                  # the leaf table, in the pool
    uint64_t fill[5]            # per level k = 1..top: the PSC data of its entry (the
                                # next table | the rights down to it), as the walk's fill


cdef struct _R4Cache:
    # MMUState.run_cache: the path cache, the stamp its valid entries carry (0 is none's),
    # and the table and frame pool they point into
    uint64_t stamp
    PTState* pt
    uint64_t* pool
    uint64_t large_faults       # the table's demand faults that mapped a large page
    _R4Path path[R4_PATHS]


cdef inline _R4Path* _r4_path(PTState* s, _R4Path* paths, uint64_t stamp, vaddr_t va,
                              Ent* width) noexcept nogil:
    # va's path-cache entry, made by a read-only descent from the root if it is not there
    # (replacing the entry of another region); NULL when the descent does not qualify or
    # va is outside the mode's address space
    cdef uint64_t vm = va & ((((<uint64_t>1) << s.va_bits) - 1))
    cdef uint64_t region = _lean_key(s, vm, 1, width), e, rw = 1, us = 1, xd = 0
    cdef _R4Path* P = &paths[region & (R4_PATHS - 1)]
    cdef paddr_t table
    cdef int L
    cdef uint32_t canon
    if P.stamp == stamp and P.region == region:
        return P
    table = s.cr3
    L = _walk_top(s)
    canon = 64 - s.va_bits
    if s.va_bits == 32:
        if va >> 32:
            return NULL
    elif <uint64_t>((<int64_t>(va << canon)) >> canon) != va:
        return NULL
    P.stamp = 0                         # (invalid while it is rewritten)
    if s.mode == MODE_PAE:
        e = s.pdpte[(va >> 30) & 3]
        if not (e & PTE_P):
            return NULL
        table = e & s.addr_mask
    while L:
        e = _lean_ent_at(s, s.pool, s.slot_dir, s.dir_len, table, va, L, width)[0]
        if (e & (PTE_P | PTE_A | PTE_PS)) != (PTE_P | PTE_A) or (e & s.rsvd[2 * L]):
            return NULL
        rw &= e >> 1
        us &= e >> 2
        xd |= e >> 63
        table = e & s.addr_mask
        P.fill[L] = table | ((rw & 1) << 1) | ((us & 1) << 2) | ((xd & 1) << 63)
        L -= 1
    P.leaf = _lean_ent(s.pool, s.slot_dir, s.dir_len, table, width)
    P.region = region
    P.stamp = stamp
    return P


cdef inline bint _tlb_is_empty(TLBState* t) noexcept nogil:
    # whether no set of t holds a valid entry
    cdef intp_t k
    for k in range(t.sets):
        if t.nvalid[k]:
            return False
    return True


cdef enum:
    # A run that translated fewer than R4_SHORT records (a trace that interleaves CPUs
    # record by record, or breaks stretches otherwise) costs more to set up and flush
    # than it saves: the batch loop then leaves the next R4_BACKOFF records to the lean
    # path before it tries again.
    R4_SHORT = 16
    R4_BACKOFF = 64


# Whether the batch loop may take the 4K run (tests switch it off to compare), and
# whether it backs off after a short one (tests switch that off to run it more).
cdef bint _run4k_enabled = True
cdef bint _run4k_backoff = True


cdef inline intp_t _run4k_next(intp_t i, intp_t j) noexcept nogil:
    # the first record at which to try the 4K run again after one over records i..j-1
    return j + R4_BACKOFF if _run4k_backoff and j - i < R4_SHORT else j
# Records translated by 4K runs since the module loaded (tests check it is taken).
cdef uint64_t _run4k_records = 0


def set_run4k(bint enabled, bint backoff=True):
    """Allow (default) or forbid the 4K run of the batch loop's lean path, and its
    back-off after a short run (default on); returns the previous `enabled`. Results
    are the same either way (for testing)."""
    global _run4k_enabled, _run4k_backoff
    cdef bint old = _run4k_enabled
    _run4k_enabled = enabled
    _run4k_backoff = backoff
    return old


def run4k_records():
    """Records translated by 4K runs in this process so far (for tests)."""
    return _run4k_records


cdef inline bint _run4k_ok(MMUState* m, MMUCpu* c, _Lean* ln) noexcept nogil:
    # whether CPU c may take the 4K run now (_run4k_side then says which sides)
    cdef PTState* s
    if not _run4k_enabled or c.size_seen != (1u << PS_4K):
        return False
    if m.run_cache == NULL:             # (the path cache; without it, the lean path)
        m.run_cache = calloc(1, sizeof(_R4Cache))
        if m.run_cache == NULL:
            return False
    if c != ln.cpu or c.size_seen != ln.seen:
        _lean_live(m, c, ln)
    return m.pt[c.asid] != NULL


cdef inline void _run4k_side(MMUState* m, MMUCpu* c, _Lean* ln, uint32_t d,
                             _Side4k* p) noexcept nogil:
    # set up side d of a run (p.t1 stays NULL when the run does not take that side): its
    # L1 structure is the one holding 4K entries, not shared with the other side, and it
    # takes 4K fills; its L2 structure likewise, or there is none
    cdef int32_t s1 = ln.l1_one[d], s2 = ln.l2_one[d]
    memset(p, 0, sizeof(_Side4k))
    p.memo = TAG_INVALID
    p.e1 = -1
    if s1 < 0 or s1 == ln.l1_one[1 - d] or m.fill1[d][<int>PS_4K] != s1 \
            or m.fill1_code[d][<int>PS_4K] != PS_4K:
        return
    if s2 == -2:                        # no L2 structure holds anything (or there is none)
        if m.fill2[d][<int>PS_4K] >= 0:
            return
    elif s2 < 0 or m.fill2[d][<int>PS_4K] != s2 or m.fill2_code[d][<int>PS_4K] != PS_4K:
        return
    p.t1 = &c.tlb[s1]
    p.si1 = s1
    p.mask1 = p.t1.set_mask
    p.lru1 = p.t1.policy == POLICY_LRU
    if s2 >= 0:
        p.t2 = &c.tlb[s2]
        p.mask2 = p.t2.set_mask
        p.lru2 = p.t2.policy == POLICY_LRU
    if c.memo_shift[d] == 12 and c.memo_tlb[d] == s1 and c.memo_vpn[d] != TAG_INVALID:
        p.memo = c.memo_vpn[d]
        p.e1 = c.memo_entry[d]


cdef void _run4k_flush(MMUState* m, MMUCpu* c, PTState* s, _Run4k* r) noexcept nogil:
    # add what the lean path would have added, access by access, for the run's counts;
    # write the memos back
    cdef uint64_t ops = 0, l1_hits = 0, l2_hits = 0, walks, w
    cdef uint32_t pmask = m.psc_mask, d
    cdef int h, k, last, top = _walk_top(s)
    cdef _Side4k* p
    for d in range(2):
        p = &r.side[d]
        if p.t1 == NULL:
            continue
        if p.ops:
            w = p.ops - p.l1_hits - p.l2_hits
            p.t1.accesses += p.ops
            p.t1.hits += p.l1_hits
            p.t1.misses += p.ops - p.l1_hits
            if p.t2 != NULL:
                p.t2.accesses += p.ops - p.l1_hits
                p.t2.hits += p.l2_hits
                p.t2.misses += w
            ops += p.ops
            l1_hits += p.l1_hits
            l2_hits += p.l2_hits
        if p.e1 >= 0:
            _memo_set(c, d, p.si1, p.e1, PS_4K, p.t1.data[p.e1] << 12)
    walks = ops - l1_hits - l2_hits
    c.c[C_ACCESSES] += ops
    c.c[C_TRANSLATIONS] += ops
    c.c[C_L1_HITS] += l1_hits
    c.c[C_L1_MISSES] += ops - l1_hits
    c.c[C_L2_HITS] += l2_hits
    c.c[C_L2_MISSES] += walks
    c.c[C_WALKS] += walks
    c.c[C_BACK_INVALIDATIONS] += r.back_inv
    s.st.accesses += walks
    s.st.walks += walks
    s.st.translations[<int>PS_4K] += walks
    for h in range(top + 1):
        w = r.hit_at[h]
        if w == 0:
            continue
        # the PSCs probed (PDE cache up to the one that hit, or all) and the levels read
        last = h if h else top
        for k in range(1, last + 1):
            if (pmask >> k) & 1:
                c.psc[k].accesses += w
                if k == h:
                    c.psc[k].hits += w
                    s.st.psc_hits[k] += w
                else:
                    c.psc[k].misses += w
                    s.st.psc_misses[k] += w
        last = h - 1 if h else top
        for k in range(last + 1):
            s.st.refs[k] += w
            c.c[C_WALK_REFS_PTE + k] += w
        c.c[C_WALK_REFS] += w * <uint64_t>(last + 1)


# Compile-time selector of _run4k's copy: _R4Loads for a batch of loads without op
# column (the side is a constant: data), _R4Ops for one with it (both sides).
cdef struct _R4Loads:
    char unused
cdef struct _R4Ops:
    char unused
ctypedef fused R4Kind:
    _R4Loads
    _R4Ops


cdef intp_t _run4k_go(MMUState* m, MMUCpu* c, _Lean* ln, const vaddr_t* addr,
                      const uint8_t* op, const uint16_t* size, const uint16_t* cpu, intp_t i,
                      intp_t n) noexcept nogil:
    # _run4k's copy for this batch (op column or not), structures (the lean path's copy)
    # and entry width
    if ln.scan_only:
        if m.mode == MODE_X86_32:
            if op == NULL:
                return _run4k(m, c, ln, addr, op, size, cpu, i, n, <_R4Loads*>NULL,
                              <_LeanScan*>NULL, <uint32_t*>NULL)
            return _run4k(m, c, ln, addr, op, size, cpu, i, n, <_R4Ops*>NULL, <_LeanScan*>NULL,
                          <uint32_t*>NULL)
        if op == NULL:
            return _run4k(m, c, ln, addr, op, size, cpu, i, n, <_R4Loads*>NULL, <_LeanScan*>NULL,
                          <uint64_t*>NULL)
        return _run4k(m, c, ln, addr, op, size, cpu, i, n, <_R4Ops*>NULL, <_LeanScan*>NULL,
                      <uint64_t*>NULL)
    if m.mode == MODE_X86_32:
        if op == NULL:
            return _run4k(m, c, ln, addr, op, size, cpu, i, n, <_R4Loads*>NULL, <_LeanAny*>NULL,
                          <uint32_t*>NULL)
        return _run4k(m, c, ln, addr, op, size, cpu, i, n, <_R4Ops*>NULL, <_LeanAny*>NULL,
                      <uint32_t*>NULL)
    if op == NULL:
        return _run4k(m, c, ln, addr, op, size, cpu, i, n, <_R4Loads*>NULL, <_LeanAny*>NULL,
                      <uint64_t*>NULL)
    return _run4k(m, c, ln, addr, op, size, cpu, i, n, <_R4Ops*>NULL, <_LeanAny*>NULL,
                  <uint64_t*>NULL)


cdef intp_t _run4k(MMUState* m, MMUCpu* c, _Lean* ln, const vaddr_t* addr,
                   const uint8_t* op, const uint16_t* size, const uint16_t* cpu, intp_t i,
                   intp_t n, R4Kind* kind, LeanKind* kd, Ent* width) noexcept nogil:
    """Records i.. of CPU c (cpu[i] is c's, when cpu is given) while they are memory ops
    that the 4K run translates (_run4k_ok holds); returns the first record it did not
    translate (n at the end). op is NULL in the _R4Loads copy; `kd` is the lean path's
    copy (_LeanScan: nibble-order LRU/FIFO structures only); `width` is the table's entry
    type (uint32_t: 32-bit paging)."""
    global _run4k_records
    cdef TLBState* psc = c.psc
    cdef PTState* s = m.pt[c.asid]
    cdef uint32_t asid = c.asid, pmask = m.psc_mask, acc, d
    cdef uint32_t acc0 = m.user_flag
    cdef uint32_t ci = cpu[i] if cpu != NULL else 0
    cdef uint32_t canon = 64 - s.va_bits, l1_with = ln.l1_with[<int>PS_4K], bits, j32, o
    cdef uint64_t addr_mask = s.addr_mask
    cdef uint64_t vmask = ((<uint64_t>1) << s.va_bits) - 1
    cdef uint64_t* pool = s.pool
    cdef uint32_t** slot_dir = s.slot_dir
    cdef uint64_t dir_len = s.dir_len
    cdef bint inclusive = m.inclusion == INCL_INCLUSIVE
    cdef bint walked = False, prot
    cdef intp_t j, e, s1, s2, he = -1, hs = 0, nb
    cdef uint64_t va, va2, vpn, tag, vm, key, dd, ent, flags, pfn, vtag
    cdef _R4Path* paths
    cdef _R4Path* P
    cdef uint64_t stamp, lf
    cdef _R4Cache* rc
    cdef uint64_t rw, us, xd
    cdef paddr_t table
    cdef uint32_t ea
    cdef int L, k, hitk, start, q, n_lv = 0, top = _walk_top(s)
    cdef bint pae = s.mode == MODE_PAE, va32 = s.va_bits == 32
    cdef int lv[4]                      # the levels with a PSC, PDE cache first
    cdef TLBState* bi[MMU_MAX_TLBS]
    cdef TLBState* pend[2]
    cdef int n_bi = 0
    cdef uint32_t ea2
    cdef Ent* ep
    cdef Ent* path_p[5]
    cdef uint64_t path_e[5]
    cdef uint64_t path_perm[5]
    cdef _Run4k r
    cdef _Side4k* p
    cdef _Side4k* other
    memset(&r, 0, sizeof(r))
    # Between two runs of a batch, records of the lean and generic paths may have
    # changed the tables only by A/D bits and by demand paging, unless they include
    # a control op. A 4K demand fault writes tables and entries below a not-present
    # one, and the leaf; a cached path has no not-present entry above its leaf
    # table, whose entries every walk reads afresh. A demand fault of a large page,
    # though, may replace a present entry that points to an empty table (found not
    # present through a PSC entry the tables no longer match). So the cache carries
    # over unless a control op came (or a new batch began), a large page was
    # demand-mapped, the run is on another table, or the frame pool moved.
    rc = <_R4Cache*>m.run_cache
    lf = s.st.minor_faults[<int>PS_2M] + s.st.minor_faults[<int>PS_4M] + \
        s.st.minor_faults[<int>PS_1G]
    if ln.paths_stale or rc.pt != s or rc.pool != s.pool or rc.large_faults != lf:
        rc.stamp += 1
        rc.pt = s
        rc.pool = s.pool
        rc.large_faults = lf
        ln.paths_stale = False
    stamp = rc.stamp
    paths = &rc.path[0]
    _run4k_side(m, c, ln, SIDE_DATA, &r.side[SIDE_DATA])
    _run4k_side(m, c, ln, SIDE_INSTRUCTION, &r.side[SIDE_INSTRUCTION])
    for k in range(1, top + 1):
        if (pmask >> k) & 1:
            lv[n_lv] = k
            n_lv += 1
    # the level-1 structures an L2 victim may be in: those holding 4K entries, but for
    # empty ones (a data-only trace's iTLB): one that this run cannot fill is left out,
    # and a side's L1 structure joins the list at its first fill (pend[d])
    pend[0] = NULL
    pend[1] = NULL
    bits = l1_with
    while bits:
        j32 = <uint32_t>mmucore_ctz64(bits)
        bits &= bits - 1
        if _tlb_is_empty(&c.tlb[j32]):
            for d in range(2):
                if &c.tlb[j32] == r.side[d].t1 and (R4Kind is _R4Ops or d == SIDE_DATA):
                    pend[d] = &c.tlb[j32]
            continue
        bi[n_bi] = &c.tlb[j32]
        n_bi += 1
    while i < n:
        # (1) a memory op of this CPU, of a side the run takes, within one 4 KiB page
        if cpu != NULL and cpu[i] != ci:
            break
        if R4Kind is _R4Loads:
            d = SIDE_DATA
            p = &r.side[SIDE_DATA]
            if p.t1 == NULL:
                break
            acc = acc0
        else:
            o = op[i]
            if o >= OP_SWITCH:
                break
            d = SIDE_INSTRUCTION if o == OP_IFETCH else SIDE_DATA
            p = &r.side[d]
            if p.t1 == NULL:
                break
            acc = acc0
            if o == OP_STORE or o == OP_MODIFY:
                acc = acc0 | ACC_WRITE
            elif o == OP_IFETCH:
                acc = acc0 | ACC_IFETCH
        va = addr[i]
        if size != NULL and ((va ^ _last_byte(va, size[i])) >> 12) != 0:
            break
        vpn = va >> 12
        if vpn == p.memo:
            # the memo: L1 hits on the MRU entry of its set (no state changes), the whole
            # run of them
            j = _memo_run_end(addr, op, size, cpu, i + 1, n, ci, d, 12, vpn)
            p.ops += <uint64_t>(j - i)
            p.l1_hits += <uint64_t>(j - i)
            walked = False
            i = j
            continue
        if PREFETCH_ON and walked and i + PREFETCH_AHEAD < n:
            # the leaf entry of the record PREFETCH_AHEAD on (its path-cache entry made
            # if need be: the walk of that record then reads the leaf entry alone)
            va2 = addr[i + PREFETCH_AHEAD]
            P = _r4_path(s, paths, stamp, va2, width)
            if P != NULL:
                _prefetch((<Ent*>P.leaf) + _lean_idx(s, va2, 0, width))
        walked = False
        # (2) the side's L1 structure, then its L2 structure (4K entries only)
        tag = (vpn << 2) | PS_4K
        s1 = <intp_t>(vpn & p.mask1)
        e = _lean_find(p.t1, s1, tag, asid, kd)
        if e >= 0:
            if LeanKind is _LeanAny:
                _lean_touch(p.t1, s1, e, kd)
            elif p.lru1:
                _order_front(p.t1, s1, e, <_Scan*>NULL)
            if c.l1_order[d][0] != p.si1:
                _l1_first(c, d, p.si1)
            p.ops += 1
            p.l1_hits += 1
            p.memo = vpn
            p.e1 = e
            i += 1
            continue
        s2 = <intp_t>(vpn & p.mask2)
        e = _lean_find(p.t2, s2, tag, asid, kd) if p.t2 != NULL else -1
        if e >= 0:
            if LeanKind is _LeanAny:
                _lean_touch(p.t2, s2, e, kd)
            elif p.lru2:
                _order_front(p.t2, s2, e, <_Scan*>NULL)
            if pend[d] != NULL:
                bi[n_bi] = pend[d]
                n_bi += 1
                pend[d] = NULL
            p.e1 = _lean_fill_set(p.t1, vpn, s1, p.t2.easid[e], PS_4K, p.t2.data[e], False, kd)
            p.ops += 1
            p.l2_hits += 1
            p.memo = vpn
            i += 1
            continue
        # (3) the walk, read-only first (as _lean_walk): the canonical check, the PSCs
        # from the PDE cache up, the entries below the first hit, the access rights
        if va32:
            if va >> 32:
                break
        elif <uint64_t>((<int64_t>(va << canon)) >> canon) != va:
            break
        table = s.cr3
        if pae:
            ent = s.pdpte[(va >> 30) & 3]
            if not (ent & PTE_P):
                break
            table = ent & addr_mask
        vm = va & vmask
        rw = 1
        us = 1
        xd = 0
        hitk = 0
        start = top
        for q in range(n_lv):
            k = lv[q]
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
        key = _lean_key(s, vm, 1, width)
        P = &paths[key & (R4_PATHS - 1)]
        if P.stamp != stamp or P.region != key or (hitk and dd != P.fill[hitk]):
            P = NULL
        if P != NULL:
            # the path cache: the same descent to the same leaf table, every entry above
            # it with its A bit set (PSC fills below take their data from the entry)
            ep = (<Ent*>P.leaf) + _lean_idx(s, va, 0, width)
            ent = ep[0]
            if not (ent & PTE_P) or (ent & s.rsvd[(ent >> 7) & 1]):
                break
            dd = P.fill[1]
            rw = (dd >> 1) & (ent >> 1) & 1
            us = (dd >> 2) & (ent >> 2) & 1
            xd = ((dd >> 63) | (ent >> 63)) & 1
        L = 0 if P != NULL else start
        while P == NULL:
            ep = _lean_ent_at(s, pool, slot_dir, dir_len, table, va, L, width)
            ent = ep[0]
            if not (ent & PTE_P) or (ent & s.rsvd[2 * L + ((ent >> 7) & 1)]):
                L = -1                  # (not present, reserved bits: the generic walk)
                break
            rw &= ent >> 1
            us &= ent >> 2
            xd |= ent >> 63
            if L == 0 or (ent & PTE_PS):
                break                   # (a PS entry above level 0: a large page)
            path_p[L] = ep
            path_e[L] = ent
            path_perm[L] = ((rw & 1) << 1) | ((us & 1) << 2) | ((xd & 1) << 63)
            table = ent & addr_mask
            L -= 1
        if L != 0:
            break
        rw &= 1
        us &= 1
        xd &= 1
        if acc & ACC_USER:              # (as _lean_walk)
            prot = ((us ^ 1) | (((acc >> 1) & 1) & (rw ^ 1)) | (((acc >> 4) & 1) & xd)) != 0
        else:
            prot = ((acc & ACC_WRITE) and not rw and s.wp) or \
                   ((acc & ACC_IFETCH) and (xd or (s.smep and us))) or \
                   (s.smap and us and not (acc & ACC_IFETCH))
        if prot:
            break
        # (4) the walk's effects, in _lean_walk's order (its counters: at the flush)
        r.hit_at[hitk] += 1
        if hitk:
            _lean_touch(&psc[hitk], hs, he, kd)
        for k in range(start, 0, -1):
            if P != NULL:
                dd = P.fill[k]
            else:
                if not (path_e[k] & PTE_A):
                    path_p[k][0] = <Ent>(path_e[k] | PTE_A)
                dd = (path_e[k] & addr_mask) | path_perm[k]
            if (pmask >> k) & 1:
                key = _lean_key(s, vm, k, width)
                _lean_fill_set(&psc[k], key, <intp_t>(key & psc[k].set_mask), asid, PS_4K, dd,
                               False, kd)
        flags = PTE_A | (PTE_D if acc & ACC_WRITE else 0)
        if (ent & flags) != flags:
            ep[0] = <Ent>(ep[0] | flags)   # re-read: a non-leaf A write may alias it
        pfn = (ent & addr_mask) >> 12
        ea = <uint32_t>ASID_GLOBAL if (ent & PTE_G) else asid
        if p.t2 != NULL:
            _lean_fill_set(p.t2, vpn, s2, ea, PS_4K, pfn, inclusive, kd)
            if inclusive and p.t2.victim_valid:
                p.t2.victim_valid = 0
                nb = 0
                vtag = p.t2.victim_tag
                ea2 = p.t2.victim_easid
                for q in range(n_bi):
                    nb += _lean_remove_match(bi[q], vtag, ea2, kd)
                if nb:
                    # (the lean path clears both memos; this side's is set again below)
                    r.back_inv += <uint64_t>nb
                    _cpu_memo_clear(c)
                    other = &r.side[1 - d]
                    other.memo = TAG_INVALID
                    other.e1 = -1
        if pend[d] != NULL:
            bi[n_bi] = pend[d]
            n_bi += 1
            pend[d] = NULL
        p.e1 = _lean_fill_set(p.t1, vpn, s1, ea, PS_4K, pfn, False, kd)
        p.ops += 1
        p.memo = vpn
        walked = True
        i += 1
    _run4k_flush(m, c, s, &r)
    _run4k_records += r.side[0].ops + r.side[1].ops
    return i
