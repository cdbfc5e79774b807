# The 4K run of the batch loop (included by mmucore/mmu.pyx, after the lean path).
#
# The lean path (_mmu_lean.pxi) translates one memory op per call: it reads the
# configuration from the MMUState and the TLBStates and adds to a dozen counters in
# memory every time. Most of a replay, though, is one long stretch in which nothing
# about the configuration changes: one CPU's data loads and stores over 4 KiB pages,
# every TLB structure and PSC nibble-order LRU/FIFO (the _LeanScan copy: the Skylake,
# Nehalem and P6 presets), 8-byte entries in 4 or 5 levels. _run4k replays such a
# stretch in one call:
# * the L1 and L2 structure of the data side, the page table, the PSCs and the memo live
#   in locals for the whole run;
# * it counts only L1 hits, L2 hits, walks by the level of their PSC hit and
#   back-invalidations, and derives every counter the lean path would have added from
#   them when the run ends (_run4k_flush);
# * its walk is the lean walk for 8-byte entries and 4K leaves only.
# It stops, without having changed anything for that record, at the first record it does
# not handle: another CPU, an instruction fetch or control op, an access that crosses a
# 4 KiB page, or a walk that does not end in a present 4K leaf the access may use (a
# not-present entry: demand paging; a fault; a large page). The caller runs that record
# through the lean or generic path and calls _run4k again. tests/test_mmu_lean.py holds
# the replay with and without it (set_run4k) to identical counters, page-table bits and
# reference-model results.


cdef struct _Run4k:
    # what one run counted (the flush derives the counters from these)
    uint64_t ops                # memory ops translated
    uint64_t l1_hits            # including the memo's
    uint64_t l2_hits
    uint64_t hit_at[5]          # walks, by the level of their PSC hit (0: none)
    uint64_t back_inv


# Whether the batch loop may take the 4K run (tests switch it off to compare).
cdef bint _run4k_enabled = True
# Records translated by 4K runs since the module loaded (tests check it is taken).
cdef uint64_t _run4k_records = 0


def set_run4k(bint enabled):
    """Allow (default) or forbid the 4K run of the batch loop's lean path; returns the
    previous setting. Results are the same either way (for testing)."""
    global _run4k_enabled
    cdef bint old = _run4k_enabled
    _run4k_enabled = enabled
    return old


def run4k_records():
    """Records translated by 4K runs in this process so far (for tests)."""
    return _run4k_records


cdef inline bint _run4k_ok(MMUState* m, MMUCpu* c, _Lean* ln) noexcept nogil:
    # whether CPU c's data-side memory ops may take the 4K run now
    cdef PTState* s
    cdef int32_t s1, s2
    if not _run4k_enabled or not ln.scan_only or c.size_seen != (1u << PS_4K):
        return False
    if c != ln.cpu or c.size_seen != ln.seen:
        _lean_live(m, c, ln)
    s1 = ln.l1_one[SIDE_DATA]
    s2 = ln.l2_one[SIDE_DATA]
    if s1 < 0 or m.fill1[SIDE_DATA][<int>PS_4K] != s1 or m.fill1_code[SIDE_DATA][<int>PS_4K] != PS_4K:
        return False
    if s2 == -2:                        # no L2 structure holds anything (or there is none)
        if m.fill2[SIDE_DATA][<int>PS_4K] >= 0:
            return False
    elif s2 < 0 or m.fill2[SIDE_DATA][<int>PS_4K] != s2 \
            or m.fill2_code[SIDE_DATA][<int>PS_4K] != PS_4K:
        return False
    s = m.pt[c.asid]
    return s != NULL and s.esize == 8 and s.mode != MODE_PAE


cdef void _run4k_flush(MMUState* m, MMUCpu* c, PTState* s, TLBState* t1, TLBState* t2,
                       _Run4k* r) noexcept nogil:
    # add what the lean path would have added, access by access, for the run's counts
    cdef uint64_t walks = r.ops - r.l1_hits - r.l2_hits, w
    cdef uint32_t pmask = m.psc_mask
    cdef int h, k, last
    c.c[C_ACCESSES] += r.ops
    c.c[C_TRANSLATIONS] += r.ops
    c.c[C_L1_HITS] += r.l1_hits
    c.c[C_L1_MISSES] += r.ops - r.l1_hits
    c.c[C_L2_HITS] += r.l2_hits
    c.c[C_L2_MISSES] += walks
    c.c[C_WALKS] += walks
    c.c[C_BACK_INVALIDATIONS] += r.back_inv
    t1.accesses += r.ops
    t1.hits += r.l1_hits
    t1.misses += r.ops - r.l1_hits
    if t2 != NULL:
        t2.accesses += r.ops - r.l1_hits
        t2.hits += r.l2_hits
        t2.misses += walks
    s.st.accesses += walks
    s.st.walks += walks
    s.st.translations[<int>PS_4K] += walks
    for h in range(<int>s.top + 1):
        w = r.hit_at[h]
        if w == 0:
            continue
        # the PSCs probed (PDE cache up to the one that hit, or all) and the levels read
        last = h if h else <int>s.top
        for k in range(1, last + 1):
            if (pmask >> k) & 1:
                c.psc[k].accesses += w
                if k == h:
                    c.psc[k].hits += w
                    s.st.psc_hits[k] += w
                else:
                    c.psc[k].misses += w
                    s.st.psc_misses[k] += w
        last = h - 1 if h else <int>s.top
        for k in range(last + 1):
            s.st.refs[k] += w
            c.c[C_WALK_REFS_PTE + k] += w
        c.c[C_WALK_REFS] += w * <uint64_t>(last + 1)


cdef inline void _l1_first(MMUCpu* c, uint32_t d, int32_t si) noexcept nogil:
    # an L1 hit in structure si: it goes first in the side's probe order
    cdef int32_t k = 1, j
    while c.l1_order[d][k] != si:
        k += 1
    for j in range(k, 0, -1):
        c.l1_order[d][j] = c.l1_order[d][j - 1]
    c.l1_order[d][0] = si


cdef intp_t _run4k(MMUState* m, MMUCpu* c, _Lean* ln, const vaddr_t* addr,
                   const uint8_t* op, const uint16_t* size, const uint16_t* cpu, intp_t i,
                   intp_t n) noexcept nogil:
    """Records i.. of CPU c (cpu[i] is c's, when cpu is given) while they are data-side
    memory ops that the 4K run translates (_run4k_ok holds); returns the first record it
    did not translate (n at the end)."""
    global _run4k_records
    cdef int32_t si1 = ln.l1_one[SIDE_DATA], si2 = ln.l2_one[SIDE_DATA]
    cdef TLBState* t1 = &c.tlb[si1]
    cdef TLBState* t2 = &c.tlb[si2] if si2 >= 0 else NULL
    cdef TLBState* psc = c.psc
    cdef PTState* s = m.pt[c.asid]
    cdef uint32_t asid = c.asid, pmask = m.psc_mask, acc
    cdef uint32_t acc0 = m.user_flag
    cdef uint32_t ci = cpu[i] if cpu != NULL else 0
    cdef uint32_t canon = 64 - s.va_bits, l1_with = ln.l1_with[<int>PS_4K], bits, j32, o
    cdef uint64_t mask1 = t1.set_mask, mask2 = t2.set_mask if si2 >= 0 else 0
    cdef uint64_t addr_mask = s.addr_mask
    cdef uint64_t vmask = ((<uint64_t>1) << s.va_bits) - 1
    cdef uint64_t* pool = s.pool
    cdef uint32_t** slot_dir = s.slot_dir
    cdef uint64_t dir_len = s.dir_len
    cdef bint inclusive = m.inclusion == INCL_INCLUSIVE
    cdef bint lru1 = t1.policy == POLICY_LRU, lru2 = si2 >= 0 and t2.policy == POLICY_LRU
    cdef bint walked = False, prot
    cdef intp_t i0 = i, j, e, e1 = -1, s1, s2, he = -1, hs = 0, nb
    cdef uint64_t va, vpn, tag, memo = TAG_INVALID, vm, key, dd, ent, flags, pfn
    cdef uint64_t pd_key = TAG_INVALID  # the prefetch's page directory of 1 GiB va >> 30
    cdef paddr_t pd_table = 0
    cdef uint64_t rw, us, xd
    cdef paddr_t table
    cdef uint32_t ea
    cdef int L, k, hitk, start, q, n_lv = 0, top = <int>s.top
    cdef int lv[4]                      # the levels with a PSC, PDE cache first
    cdef uint64_t* ep
    cdef uint64_t* path_p[5]
    cdef uint64_t path_e[5]
    cdef uint64_t path_perm[5]
    cdef _Run4k r
    memset(&r, 0, sizeof(r))
    for k in range(1, top + 1):
        if (pmask >> k) & 1:
            lv[n_lv] = k
            n_lv += 1
    if c.memo_shift[SIDE_DATA] == 12 and c.memo_tlb[SIDE_DATA] == si1:
        memo = c.memo_vpn[SIDE_DATA]
        e1 = c.memo_entry[SIDE_DATA]
    while i < n:
        # (1) a data-side memory op of this CPU within one 4 KiB page
        if cpu != NULL and cpu[i] != ci:
            break
        acc = acc0
        if op != NULL:
            o = op[i]
            if o == OP_STORE or o == OP_MODIFY:
                acc = acc0 | ACC_WRITE
            elif o != OP_LOAD:
                break
        va = addr[i]
        if size != NULL and ((va ^ _last_byte(va, size[i])) >> 12) != 0:
            break
        vpn = va >> 12
        if vpn == memo:
            # the memo: L1 hits on the MRU entry of its set (no state changes), the whole
            # run of them
            j = i + 1
            if op == NULL and cpu == NULL:
                j = _memo_run4(addr, size, j, n, 12, vpn)
            while j < n:
                if cpu != NULL and cpu[j] != ci:
                    break
                if op != NULL and op[j] != OP_LOAD and op[j] != OP_STORE and op[j] != OP_MODIFY:
                    break
                va = addr[j]
                if (va >> 12) != vpn:
                    break
                if size != NULL and (_last_byte(va, size[j]) >> 12) != vpn:
                    break
                j += 1
            r.ops += <uint64_t>(j - i)
            r.l1_hits += <uint64_t>(j - i)
            walked = False
            i = j
            continue
        if PREFETCH_ON and walked and i + PREFETCH_AHEAD < n:
            # the leaf entry of the record PREFETCH_AHEAD on (as _prefetch_leaf8, with
            # the table's fields in registers)
            va = addr[i + PREFETCH_AHEAD]
            L = top
            table = s.cr3
            if pd_key == (va >> 30):
                table = pd_table
                L = 1
            while L:
                if L == 1:
                    pd_key = va >> 30
                    pd_table = table
                ent = _lean_ent(pool, slot_dir, dir_len, table + ((va >> (12 + 9 * L)) & 511) * 8,
                                <uint64_t*>NULL)[0]
                if (ent & (PTE_P | PTE_PS)) != PTE_P:
                    break
                table = ent & addr_mask
                L -= 1
            if L == 0:
                _prefetch(_lean_ent(pool, slot_dir, dir_len, table + ((va >> 12) & 511) * 8,
                                    <uint64_t*>NULL))
            va = addr[i]
        walked = False
        # (2) the L1 structure, then the L2 structure (4K entries only)
        tag = (vpn << 2) | PS_4K
        s1 = <intp_t>(vpn & mask1)
        e = _find_scan(t1, s1 * t1.ways, tag, asid, <_Scan*>NULL)
        if e >= 0:
            if lru1:
                _order_front(t1, s1, e, <_Scan*>NULL)
            if c.l1_order[SIDE_DATA][0] != si1:
                _l1_first(c, SIDE_DATA, si1)
            r.ops += 1
            r.l1_hits += 1
            memo = vpn
            e1 = e
            i += 1
            continue
        s2 = <intp_t>(vpn & mask2)
        e = _find_scan(t2, s2 * t2.ways, tag, asid, <_Scan*>NULL) if si2 >= 0 else -1
        if e >= 0:
            if lru2:
                _order_front(t2, s2, e, <_Scan*>NULL)
            e1 = _fill_new(t1, vpn, s1, PS_4K, t2.easid[e], t2.data[e], <_LRU*>NULL,
                           <_Scan*>NULL, False)
            r.ops += 1
            r.l2_hits += 1
            memo = vpn
            i += 1
            continue
        # (3) the walk, read-only first (as _lean_walk): the canonical check, the PSCs
        # from the PDE cache up, the entries below the first hit, the access rights
        if <uint64_t>((<int64_t>(va << canon)) >> canon) != va:
            break
        vm = va & vmask
        table = s.cr3
        rw = 1
        us = 1
        xd = 0
        hitk = 0
        start = top
        for q in range(n_lv):
            k = lv[q]
            key = vm >> (12 + 9 * k)
            hs = <intp_t>(key & psc[k].set_mask)
            he = _find_scan(&psc[k], hs * psc[k].ways, key << 2, asid, <_Scan*>NULL)
            if he >= 0:
                dd = psc[k].data[he]
                table = dd & addr_mask
                rw = (dd >> 1) & 1
                us = (dd >> 2) & 1
                xd = dd >> 63
                hitk = k
                start = k - 1
                break
        L = start
        while True:
            ep = _lean_ent(pool, slot_dir, dir_len, table + ((va >> (12 + 9 * L)) & 511) * 8,
                           <uint64_t*>NULL)
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
        if acc & ACC_USER:
            prot = ((us ^ 1) | (((acc >> 1) & 1) & (rw ^ 1))) != 0
        else:
            prot = ((acc & ACC_WRITE) and not rw and s.wp) or (s.smap and us)
        if prot:
            break
        # (4) the walk's effects, in _lean_walk's order (its counters: at the flush)
        r.hit_at[hitk] += 1
        if hitk and psc[hitk].policy == POLICY_LRU:
            _order_front(&psc[hitk], hs, he, <_Scan*>NULL)
        for k in range(start, 0, -1):
            if not (path_e[k] & PTE_A):
                path_p[k][0] = path_e[k] | PTE_A
            if (pmask >> k) & 1:
                key = vm >> (12 + 9 * k)
                _fill_new(&psc[k], key, <intp_t>(key & psc[k].set_mask), PS_4K, asid,
                          (path_e[k] & addr_mask) | path_perm[k], <_LRU*>NULL, <_Scan*>NULL,
                          False)
        flags = PTE_A | (PTE_D if acc & ACC_WRITE else 0)
        if (ent & flags) != flags:
            ep[0] = ep[0] | flags       # re-read: a non-leaf A write may alias it
        pfn = (ent & addr_mask) >> 12
        ea = <uint32_t>ASID_GLOBAL if (ent & PTE_G) else asid
        if si2 >= 0:
            _fill_new(t2, vpn, s2, PS_4K, ea, pfn, <_LRU*>NULL, <_Scan*>NULL, inclusive)
        if si2 >= 0 and inclusive and t2.victim_valid:
            t2.victim_valid = 0
            nb = 0
            bits = l1_with
            while bits:
                j32 = <uint32_t>mmucore_ctz64(bits)
                bits &= bits - 1
                nb += _lean_remove_match(&c.tlb[j32], t2.victim_tag, t2.victim_easid,
                                         <_LeanScan*>NULL)
            if nb:
                r.back_inv += <uint64_t>nb
                _cpu_memo_clear(c)
        e1 = _fill_new(t1, vpn, s1, PS_4K, ea, pfn, <_LRU*>NULL, <_Scan*>NULL, False)
        r.ops += 1
        memo = vpn
        walked = True
        i += 1
    if r.ops:
        _run4k_flush(m, c, s, t1, t2, &r)
        _memo_set(c, SIDE_DATA, si1, e1, PS_4K, t1.data[e1] << 12)
        _run4k_records += r.ops
    return i
