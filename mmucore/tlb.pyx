# The TLB engine: one structure of `sets` x `ways` entries holding one or more page
# sizes, tagged with ASIDs (and a global bit), with six replacement policies.
#
# Semantics (docs/tlb.md is the user-facing statement; tests/reference_tlb.py the oracle):
# * set index = page number modulo the set count, per page size; tag = (vpn << 2) | size;
# * a lookup probes the page sizes held, smallest first; within a set an entry matches
#   when its tag matches and its ASID equals the access's or it is global; when both an
#   ASID entry and a global entry match, the ASID entry is used;
# * a fill takes an invalid way when the set has one, else the policy's victim;
# * LRU/FIFO keep a recency/insertion order per set (invalid entries at its back);
#   PLRU a binary tree (non-power-of-two ways: a tree over the next power of two that
#   never points at a missing way); LFU counts (ties: lowest way); SRRIP 2-bit RRPVs
#   (fill 2, hit 0, victim = lowest way with 3 after ageing); RANDOM a seeded xorshift64*.
from libc.stdlib cimport calloc, free
from libc.string cimport memset, memcpy

from mmucore._types cimport (uint8_t, uint16_t, uint32_t, uint64_t, int32_t, vaddr_t,
                             asid_t, intp_t, POLICY_LRU, POLICY_FIFO, POLICY_RANDOM,
                             POLICY_PLRU, POLICY_LFU, POLICY_SRRIP, PS_COUNT, page_shift)
from mmucore._rng cimport rng_seed_state, rng_below

import numpy as np

# the hot internals (extern helpers, fused selectors, probe/fill/replacement state) and
# the single-translation dispatchers, shared with pagetable.pyx and mmu.pyx
include "_tlb_core.pxi"


#: The cimport contract's version (tlb.pxd); consumers compiled against another version
#: must be rebuilt. `abi_check(version, size)` lets them verify it at import time.
ABI_VERSION = TLB_ABI_VERSION
#: sizeof(TLBState) in this build.
STATE_SIZE = sizeof(TLBState)


def abi_check(int version, Py_ssize_t state_size):
    """Raise ImportError unless a consumer built against `version`/`state_size` matches."""
    if version != TLB_ABI_VERSION or state_size != <Py_ssize_t>sizeof(TLBState):
        raise ImportError(
            f"compiled against mmucore.tlb ABI {version} (TLBState {state_size} bytes) but "
            f"the installed engine is ABI {TLB_ABI_VERSION} ({sizeof(TLBState)} bytes): "
            f"rebuild the extension against the installed mmucore")


# ----------------------------------------------------------------------------------------
# public kernels (declared in tlb.pxd)

cdef int tlb_init(TLBState* t, intp_t sets, intp_t ways, uint32_t policy,
                  uint32_t size_mask, uint64_t seed) except -1 nogil:
    cdef intp_t n = sets * ways
    cdef intp_t s, w, cap, node
    cdef uint32_t code
    memset(t, 0, sizeof(TLBState))
    if sets < 1 or ways < 1 or n > 0x40000000 or policy > POLICY_SRRIP \
            or size_mask == 0 or size_mask >= (1u << PS_COUNT):
        with gil:
            raise ValueError(f"invalid TLB geometry sets={sets} ways={ways} "
                             f"policy={policy} size_mask={size_mask}")
    t.sets = sets
    t.ways = ways
    t.entries = n
    t.policy = policy
    t.size_mask = size_mask
    for code in range(PS_COUNT):
        if (size_mask >> code) & 1:
            t.size_code[t.n_sizes] = code
            t.size_shift[t.n_sizes] = page_shift(code)
            t.n_sizes += 1
    t.sets_pow2 = (sets & (sets - 1)) == 0
    t.set_mask = <uint64_t>(sets - 1) if t.sets_pow2 else 0
    if not t.sets_pow2:
        mmucore_fastmod_init(<uint64_t>sets, &t.fm_lo, &t.fm_hi)
    t.nib_used = (~(<uint64_t>0)) if ways >= 16 else (((<uint64_t>1) << (4 * ways)) - 1)
    t.listed = ways > SCAN_MAX_WAYS
    t.indexed = ways > SCAN_WIDE_WAYS
    t.tag = <uint64_t*>calloc(n, sizeof(uint64_t))
    t.easid = <uint32_t*>calloc(n, sizeof(uint32_t))
    t.data = <uint64_t*>calloc(n, sizeof(uint64_t))
    t.nvalid = <uint32_t*>calloc(sets, sizeof(uint32_t))
    if t.tag == NULL or t.easid == NULL or t.data == NULL or t.nvalid == NULL:
        tlb_free(t)
        with gil:
            raise MemoryError("cannot allocate TLB entries")
    if policy == POLICY_LRU or policy == POLICY_FIFO:
        if t.listed:
            t.prev = <int32_t*>calloc(n, sizeof(int32_t))
            t.next = <int32_t*>calloc(n, sizeof(int32_t))
            t.head = <int32_t*>calloc(sets, sizeof(int32_t))
            t.tail = <int32_t*>calloc(sets, sizeof(int32_t))
            if t.prev == NULL or t.next == NULL or t.head == NULL or t.tail == NULL:
                tlb_free(t)
                with gil:
                    raise MemoryError("cannot allocate TLB replacement state")
        else:
            t.order = <uint64_t*>calloc(sets, sizeof(uint64_t))
            if t.order == NULL:
                tlb_free(t)
                with gil:
                    raise MemoryError("cannot allocate TLB replacement state")
    elif policy == POLICY_PLRU:
        t.plru_leaves = 1
        while t.plru_leaves < ways:
            t.plru_leaves *= 2
        t.plru_words = (t.plru_leaves + 63) // 64
        t.plru = <uint64_t*>calloc(sets * t.plru_words, sizeof(uint64_t))
        t.plru_path_mask = <uint64_t*>calloc(ways, sizeof(uint64_t))
        t.plru_path_bits = <uint64_t*>calloc(ways, sizeof(uint64_t))
        if t.plru == NULL or t.plru_path_mask == NULL or t.plru_path_bits == NULL:
            tlb_free(t)
            with gil:
                raise MemoryError("cannot allocate TLB replacement state")
        if t.plru_words == 1:
            for w in range(ways):
                node = w + t.plru_leaves
                while node > 1:
                    t.plru_path_mask[w] |= (<uint64_t>1) << (node >> 1)
                    if (node & 1) == 0:
                        t.plru_path_bits[w] |= (<uint64_t>1) << (node >> 1)
                    node >>= 1
    elif policy == POLICY_LFU or policy == POLICY_SRRIP:
        t.count = <uint32_t*>calloc(n, sizeof(uint32_t))
        if t.count == NULL:
            tlb_free(t)
            with gil:
                raise MemoryError("cannot allocate TLB replacement state")
    if t.indexed:
        cap = 16
        while cap < 2 * n:
            cap *= 2
        t.h_mask = <uint64_t>(cap - 1)
        t.h_shift = 64
        while (<uint64_t>1 << (64 - t.h_shift)) < <uint64_t>cap:
            t.h_shift -= 1
        t.h_tag = <uint64_t*>calloc(cap, sizeof(uint64_t))
        t.h_easid = <uint32_t*>calloc(cap, sizeof(uint32_t))
        t.h_ent = <int32_t*>calloc(cap, sizeof(int32_t))
        if t.h_tag == NULL or t.h_easid == NULL or t.h_ent == NULL:
            tlb_free(t)
            with gil:
                raise MemoryError("cannot allocate the TLB index")
    t.rng = rng_seed_state(seed)
    _reset_entries(t)
    return 0


cdef void _reset_entries(TLBState* t) noexcept nogil:
    """Every entry invalid, replacement state as after construction (PLRU bits and the
    random generator are left as they are: invalid ways are filled first anyway)."""
    cdef intp_t s, w, e
    for e in range(t.entries):
        t.tag[e] = TAG_INVALID
        t.easid[e] = 0
        t.data[e] = 0
    for s in range(t.sets):
        t.nvalid[s] = 0
    if t.order != NULL:
        for s in range(t.sets):
            t.order[s] = _nib_initial(t.ways)
    if t.head != NULL:
        for s in range(t.sets):
            t.head[s] = -1
            t.tail[s] = -1
            for w in range(t.ways):
                _ll_push_front(t, s, s * t.ways + w)
    if t.count != NULL:
        for e in range(t.entries):
            t.count[e] = RRPV_MAX if t.policy == POLICY_SRRIP else 0
    if t.h_ent != NULL:
        for e in range(<intp_t>t.h_mask + 1):
            t.h_ent[e] = -1
    t.n_global = 0
    _memo_clear(t)


cdef void tlb_free(TLBState* t) noexcept nogil:
    free(t.tag); free(t.easid); free(t.data); free(t.nvalid)
    free(t.order); free(t.prev); free(t.next); free(t.head); free(t.tail)
    free(t.plru); free(t.plru_path_mask); free(t.plru_path_bits); free(t.count)
    free(t.h_tag); free(t.h_easid); free(t.h_ent)
    t.tag = NULL; t.easid = NULL; t.data = NULL; t.nvalid = NULL
    t.order = NULL; t.prev = NULL; t.next = NULL; t.head = NULL; t.tail = NULL
    t.plru = NULL; t.plru_path_mask = NULL; t.plru_path_bits = NULL; t.count = NULL
    t.h_tag = NULL; t.h_easid = NULL; t.h_ent = NULL


cdef void tlb_reset_counters(TLBState* t) noexcept nogil:
    t.accesses = 0
    t.hits = 0
    t.misses = 0
    t.fills = 0
    t.evictions = 0
    t.invalidations = 0
    t.flushes = 0


# ----------------------------------------------------------------------------------------
# checkpoints: the state as bytes and back

cdef enum:
    _TLB_NARRAYS = 16


cdef void _tlb_arrays(TLBState* t, void*** slot, size_t* nb) noexcept nogil:
    """The owned arrays in their fixed dump order: the address of each pointer field and
    the array's length in bytes."""
    cdef size_t n = <size_t>t.entries, s = <size_t>t.sets
    cdef size_t cap = <size_t>(t.h_mask + 1) if t.indexed else 0
    slot[0] = <void**>&t.tag; nb[0] = n * 8
    slot[1] = <void**>&t.easid; nb[1] = n * 4
    slot[2] = <void**>&t.data; nb[2] = n * 8
    slot[3] = <void**>&t.nvalid; nb[3] = s * 4
    slot[4] = <void**>&t.order; nb[4] = s * 8
    slot[5] = <void**>&t.prev; nb[5] = n * 4
    slot[6] = <void**>&t.next; nb[6] = n * 4
    slot[7] = <void**>&t.head; nb[7] = s * 4
    slot[8] = <void**>&t.tail; nb[8] = s * 4
    slot[9] = <void**>&t.plru; nb[9] = s * <size_t>t.plru_words * 8
    slot[10] = <void**>&t.plru_path_mask; nb[10] = <size_t>t.ways * 8
    slot[11] = <void**>&t.plru_path_bits; nb[11] = <size_t>t.ways * 8
    slot[12] = <void**>&t.count; nb[12] = n * 4
    slot[13] = <void**>&t.h_tag; nb[13] = cap * 8
    slot[14] = <void**>&t.h_easid; nb[14] = cap * 4
    slot[15] = <void**>&t.h_ent; nb[15] = cap * 4


cdef bytes tlb_dump(TLBState* t):
    cdef void** slot[_TLB_NARRAYS]
    cdef size_t nb[_TLB_NARRAYS]
    cdef int k
    cdef TLBState c
    memcpy(&c, t, sizeof(TLBState))
    _tlb_arrays(&c, slot, nb)
    parts = [None]
    for k in range(_TLB_NARRAYS):
        if slot[k][0] != NULL and nb[k]:
            parts.append((<char*>slot[k][0])[:nb[k]])
        slot[k][0] = NULL                   # no addresses in the bytes
    parts[0] = (<char*>&c)[:sizeof(TLBState)]
    return b"".join(parts)


cdef int tlb_restore(TLBState* t, bytes buf) except -1:
    cdef void** slot[_TLB_NARRAYS]
    cdef void* keep[_TLB_NARRAYS]
    cdef size_t nb[_TLB_NARRAYS]
    cdef size_t need = sizeof(TLBState), off
    cdef TLBState saved
    cdef const char* p = buf
    cdef Py_ssize_t blen = len(buf)
    cdef int k
    if blen < <Py_ssize_t>sizeof(TLBState):
        raise ValueError(f"TLB state of {blen} bytes: too short")
    memcpy(&saved, p, sizeof(TLBState))
    if saved.sets != t.sets or saved.ways != t.ways or saved.policy != t.policy or \
            saved.size_mask != t.size_mask or saved.plru_words != t.plru_words or \
            saved.indexed != t.indexed or saved.h_mask != t.h_mask:
        raise ValueError(f"TLB state of {saved.sets}x{saved.ways} policy {saved.policy} "
                         f"does not fit a {t.sets}x{t.ways} policy {t.policy} structure")
    _tlb_arrays(t, slot, nb)
    for k in range(_TLB_NARRAYS):
        keep[k] = slot[k][0]
        if keep[k] != NULL:
            need += nb[k]
    if <size_t>blen != need:
        raise ValueError(f"TLB state of {blen} bytes, expected {need}")
    memcpy(t, p, sizeof(TLBState))
    off = sizeof(TLBState)
    for k in range(_TLB_NARRAYS):
        slot[k][0] = keep[k]
        if keep[k] != NULL and nb[k]:
            memcpy(keep[k], p + off, nb[k])
            off += nb[k]
    return 0


cdef intp_t tlb_probe(TLBState* t, vaddr_t va, asid_t asid) noexcept nogil:
    return _tlb_probe_i(t, va, asid)


cdef intp_t tlb_probe_sizes(TLBState* t, vaddr_t va, asid_t asid,
                            uint32_t code_mask) noexcept nogil:
    return _tlb_probe_sizes_i(t, va, asid, code_mask)


cdef intp_t tlb_lookup(TLBState* t, vaddr_t va, asid_t asid) noexcept nogil:
    return _tlb_lookup_i(t, va, asid)


cdef intp_t tlb_fill(TLBState* t, vaddr_t va, asid_t asid, uint32_t size_code,
                     bint is_global, uint64_t data) noexcept nogil:
    return _tlb_fill_i(t, va, asid, size_code, is_global, data)


cdef intp_t tlb_fill_absent(TLBState* t, vaddr_t va, asid_t asid, uint32_t size_code,
                            bint is_global, uint64_t data) noexcept nogil:
    return _tlb_fill_absent_i(t, va, asid, size_code, is_global, data)


cdef int tlb_access(TLBState* t, vaddr_t va, asid_t asid, uint32_t size_code,
                    bint is_global) noexcept nogil:
    if tlb_lookup(t, va, asid) >= 0:
        return 1
    tlb_fill(t, va, asid, size_code, is_global, 0)
    return 0


cdef intp_t tlb_access_batch(TLBState* t, const vaddr_t* va, intp_t n,
                             const asid_t* asids, asid_t asid,
                             const uint8_t* size_codes, uint32_t size_code,
                             const uint8_t* globals_, bint is_global,
                             uint8_t* hit_out) noexcept nogil:
    if t.indexed:
        return _batch_e(t, va, n, asids, asid, size_codes, size_code, globals_,
                        is_global, hit_out, <_Hashed*>NULL)
    if t.listed:
        return _batch_e(t, va, n, asids, asid, size_codes, size_code, globals_,
                        is_global, hit_out, <_Wide*>NULL)
    return _batch_e(t, va, n, asids, asid, size_codes, size_code, globals_,
                    is_global, hit_out, <_Scan*>NULL)


# The batch arguments travel down the dispatch one by one, not bundled in a struct: with
# a struct GCC stops inlining the probe and fill into the loop, the state copy in
# _batch_run can no longer live in registers, and the loop costs ~2x the instructions.
cdef inline intp_t _batch_e(TLBState* t, const vaddr_t* va, intp_t n,
                            const asid_t* asids, asid_t asid,
                            const uint8_t* size_codes, uint32_t size_code,
                            const uint8_t* globals_, bint is_global,
                            uint8_t* hit_out, Eng* g) noexcept nogil:
    cdef uint32_t pol = t.policy
    if pol == POLICY_LRU:
        return _batch(t, va, n, asids, asid, size_codes, size_code, globals_, is_global,
                      hit_out, <_LRU*>NULL, g)
    if pol == POLICY_FIFO:
        return _batch(t, va, n, asids, asid, size_codes, size_code, globals_, is_global,
                      hit_out, <_FIFO*>NULL, g)
    if pol == POLICY_RANDOM:
        return _batch(t, va, n, asids, asid, size_codes, size_code, globals_, is_global,
                      hit_out, <_RANDOM*>NULL, g)
    if pol == POLICY_PLRU:
        return _batch(t, va, n, asids, asid, size_codes, size_code, globals_, is_global,
                      hit_out, <_PLRU*>NULL, g)
    if pol == POLICY_LFU:
        return _batch(t, va, n, asids, asid, size_codes, size_code, globals_, is_global,
                      hit_out, <_LFU*>NULL, g)
    return _batch(t, va, n, asids, asid, size_codes, size_code, globals_, is_global,
                  hit_out, <_SRRIP*>NULL, g)


cdef intp_t _batch(TLBState* state, const vaddr_t* va, intp_t n,
                   const asid_t* asids, asid_t asid,
                   const uint8_t* size_codes, uint32_t size_code,
                   const uint8_t* globals_, bint is_global,
                   uint8_t* hit_out, Pol* p, Eng* g) noexcept nogil:
    # The common case (one page size, one ASID, one fill size and global bit for the
    # whole batch) gets its own copy of the loop, with the per-access choices folded away.
    if asids == NULL and size_codes == NULL and globals_ == NULL and state.n_sizes == 1:
        return _batch_run(state, va, n, NULL, asid, NULL, size_code, NULL, is_global,
                          hit_out, p, g, <_OneSize*>NULL)
    return _batch_run(state, va, n, asids, asid, size_codes, size_code, globals_, is_global,
                      hit_out, p, g, <_PerAccess*>NULL)


cdef intp_t _batch_run(TLBState* state, const vaddr_t* va, intp_t n,
                       const asid_t* asids, asid_t asid,
                       const uint8_t* size_codes, uint32_t size_code,
                       const uint8_t* globals_, bint is_global,
                       uint8_t* hit_out, Pol* p, Eng* g, Shape* shape) noexcept nogil:
    cdef bint simple = Shape is _OneSize
    # Work on a local copy of the state: once the helpers are inlined the compiler can
    # keep its fields in registers (stores into the entry arrays cannot alias them).
    cdef TLBState local = state[0]
    cdef TLBState* t = &local
    cdef intp_t i, e, s
    cdef intp_t hits = 0
    cdef uint64_t v, key, vpn
    cdef uint32_t a, code
    cdef bint glob
    cdef uint32_t shift0 = t.size_shift[0]
    cdef uint64_t memo_key = t.memo_key
    cdef uint32_t memo_asid = t.memo_asid
    cdef intp_t memo_e = t.memo_entry
    cdef intp_t j, run
    i = 0
    while i < n:
        v = va[i]
        a = asid if simple or asids == NULL else asids[i]
        key = v >> shift0
        if key == memo_key and a == memo_asid:
            # A run of accesses to the page of the previous access: hits that, for
            # LRU/FIFO/PLRU/RANDOM, change no replacement state; LFU counts them, SRRIP
            # re-zeroes the RRPV. A tight inner loop finds the run's end.
            j = i + 1
            while j < n and (va[j] >> shift0) == memo_key and (
                    simple or asids == NULL or asids[j] == memo_asid):
                j += 1
            run = j - i
            hits += run
            if Pol is _LFU:
                if COUNT_MAX - t.count[memo_e] < <uint64_t>run:
                    t.count[memo_e] = COUNT_MAX
                else:
                    t.count[memo_e] += <uint32_t>run
            elif Pol is _SRRIP:
                t.count[memo_e] = 0
            if hit_out != NULL:
                memset(hit_out + i, 1, run)
            i = j
            continue
        e = _probe(t, v, a, &s, g, simple)
        if e >= 0:
            hits += 1
            _on_hit(t, s, e, p, g)
            if hit_out != NULL:
                hit_out[i] = 1
        else:
            code = size_code if simple or size_codes == NULL else size_codes[i]
            glob = is_global if simple or globals_ == NULL else globals_[i] != 0
            if simple or code == t.size_code[0]:
                vpn = key
            else:
                vpn = v >> page_shift(code)
            e = _fill_new(t, vpn, _set_of(t, vpn), code,
                          <uint32_t>ASID_GLOBAL if glob else a, 0, p, g, False)
            if hit_out != NULL:
                hit_out[i] = 0
        memo_key = key
        memo_asid = a
        memo_e = e
        i += 1
    t.accesses += <uint64_t>n
    t.hits += <uint64_t>hits
    t.misses += <uint64_t>(n - hits)
    t.memo_key = memo_key
    t.memo_asid = memo_asid
    t.memo_entry = memo_e
    state[0] = local
    return hits


cdef intp_t tlb_invalidate(TLBState* t, vaddr_t va, asid_t asid, bint all_asids) noexcept nogil:
    cdef uint32_t i
    cdef uint64_t vpn, tag
    cdef intp_t s, w, e
    cdef intp_t dropped = 0
    cdef uint32_t ea
    _memo_clear(t)
    for i in range(t.n_sizes):
        vpn = va >> t.size_shift[i]
        tag = (vpn << 2) | t.size_code[i]
        s = _set_of(t, vpn)
        if t.indexed and not all_asids:
            e = _hfind(t, tag, asid)
            if e >= 0:
                _drop(t, s, e)
                dropped += 1
            e = _hfind(t, tag, ASID_GLOBAL)
            if e >= 0:
                _drop(t, s, e)
                dropped += 1
            continue
        for w in range(t.ways):
            e = s * t.ways + w
            ea = t.easid[e]
            if t.tag[e] == tag and (all_asids or ea == asid or ea == ASID_GLOBAL):
                _drop(t, s, e)
                dropped += 1
    return dropped


cdef intp_t tlb_flush(TLBState* t, bint keep_global) noexcept nogil:
    cdef intp_t e, dropped = 0
    _memo_clear(t)
    t.flushes += 1
    if not keep_global:
        for e in range(t.entries):
            if t.tag[e] != TAG_INVALID:
                dropped += 1
        _reset_entries(t)
        t.invalidations += <uint64_t>dropped
        return dropped
    for e in range(t.entries):
        if t.tag[e] != TAG_INVALID and t.easid[e] != ASID_GLOBAL:
            _drop(t, e // t.ways, e)
            dropped += 1
    return dropped


cdef intp_t tlb_flush_asid(TLBState* t, asid_t asid) noexcept nogil:
    cdef intp_t e, dropped = 0
    _memo_clear(t)
    t.flushes += 1
    for e in range(t.entries):
        if t.tag[e] != TAG_INVALID and t.easid[e] == asid:
            _drop(t, e // t.ways, e)
            dropped += 1
    return dropped


cdef void tlb_touch(TLBState* t, intp_t entry) noexcept nogil:
    _tlb_touch_i(t, entry)


cdef void tlb_remove(TLBState* t, intp_t entry) noexcept nogil:
    _tlb_remove_i(t, entry)


cdef intp_t tlb_remove_match(TLBState* t, uint64_t tag, uint32_t easid) noexcept nogil:
    return _tlb_remove_match_i(t, tag, easid)


cdef intp_t tlb_invalidate_range(TLBState* t, vaddr_t first, vaddr_t last, asid_t asid,
                                 bint with_global, bint all_asids) noexcept nogil:
    cdef intp_t e, dropped = 0
    cdef uint64_t tag, base, end
    cdef uint32_t sh, ea
    _memo_clear(t)
    for e in range(t.entries):
        tag = t.tag[e]
        if tag == TAG_INVALID:
            continue
        ea = t.easid[e]
        if not (all_asids or ea == asid or (with_global and ea == ASID_GLOBAL)):
            continue
        sh = page_shift(<uint32_t>(tag & 3))
        base = (tag >> 2) << sh
        end = base + (((<uint64_t>1) << sh) - 1)
        if base <= last and end >= first:
            _drop(t, e // t.ways, e)
            dropped += 1
    return dropped


# ----------------------------------------------------------------------------------------
# the owning class: thin checked wrappers, one nogil call each

cdef class TLBCore:
    """One TLB structure of ``sets`` x ``ways`` entries (engine object; use ``pyapi.TLB``).

    ``policy`` is a code from ``mmucore._types.POLICIES``; ``size_mask`` has bit ``1 << code`` for each
    page-size code held (0 = 4K, 1 = 2M, 2 = 4M, 3 = 1G).

    >>> from mmucore._types import POLICIES
    >>> core = TLBCore(16, 4, POLICIES["lru"], 1, 0)
    >>> import numpy as np
    >>> core.access(np.arange(0, 8 << 12, 4096, dtype=np.uint64))
    0
    """

    def __cinit__(self, intp_t sets, intp_t ways, uint32_t policy, uint32_t size_mask,
                  uint64_t seed=0):
        memset(&self.st, 0, sizeof(TLBState))
        tlb_init(&self.st, sets, ways, policy, size_mask, seed)

    def __dealloc__(self):
        tlb_free(&self.st)

    cdef TLBState* state(self) noexcept:
        return &self.st

    @property
    def sets(self):
        return self.st.sets

    @property
    def ways(self):
        return self.st.ways

    @property
    def entries(self):
        return self.st.entries

    @property
    def policy(self):
        return self.st.policy

    @property
    def size_mask(self):
        return self.st.size_mask

    @property
    def indexed(self):
        return bool(self.st.indexed)

    def access(self, const uint64_t[::1] vaddrs not None, const uint16_t[::1] asids=None,
               uint16_t asid=0, const uint8_t[::1] size_codes=None, uint32_t size_code=0,
               const uint8_t[::1] globals_=None, bint is_global=False,
               uint8_t[::1] hit_out=None):
        """Run ``len(vaddrs)`` accesses in one nogil call; returns the number of hits."""
        cdef intp_t n = vaddrs.shape[0]
        cdef const uint16_t* pa = NULL
        cdef const uint8_t* ps = NULL
        cdef const uint8_t* pg = NULL
        cdef uint8_t* ph = NULL
        cdef intp_t hits
        if asids is not None:
            if asids.shape[0] != n:
                raise ValueError(f"asids has {asids.shape[0]} values for {n} accesses")
            if n:
                pa = &asids[0]
        if size_codes is not None:
            if size_codes.shape[0] != n:
                raise ValueError(f"page sizes have {size_codes.shape[0]} values for {n} accesses")
            if n:
                ps = &size_codes[0]
        elif size_code >= PS_COUNT or not ((self.st.size_mask >> size_code) & 1):
            raise ValueError(f"page-size code {size_code} is not held by this TLB")
        if globals_ is not None:
            if globals_.shape[0] != n:
                raise ValueError(f"global flags have {globals_.shape[0]} values for {n} accesses")
            if n:
                pg = &globals_[0]
        if hit_out is not None:
            if hit_out.shape[0] != n:
                raise ValueError(f"hit_out has {hit_out.shape[0]} slots for {n} accesses")
            if n:
                ph = &hit_out[0]
        if n == 0:
            return 0
        with nogil:
            hits = tlb_access_batch(&self.st, &vaddrs[0], n, pa, asid, ps, size_code,
                                    pg, is_global, ph)
        return hits

    def invalidate(self, const uint64_t[::1] vaddrs not None, int asid=-1):
        """INVLPG each address (asid=-1: in every ASID). Returns entries invalidated."""
        cdef intp_t i, n = vaddrs.shape[0]
        cdef intp_t dropped = 0
        cdef bint all_asids = asid < 0
        cdef asid_t a = <asid_t>(asid if asid >= 0 else 0)
        with nogil:
            for i in range(n):
                dropped += tlb_invalidate(&self.st, vaddrs[i], a, all_asids)
        return dropped

    def flush(self, bint keep_global=False):
        return tlb_flush(&self.st, keep_global)

    def flush_asid(self, asid_t asid):
        return tlb_flush_asid(&self.st, asid)

    def counters(self):
        return {"accesses": self.st.accesses, "hits": self.st.hits,
                "misses": self.st.misses, "fills": self.st.fills,
                "evictions": self.st.evictions, "invalidations": self.st.invalidations,
                "flushes": self.st.flushes}

    def dump(self):
        """The complete state (entries, replacement state, counters) as bytes, for
        :meth:`restore` into a structure of the same geometry and policy.

        >>> from mmucore._types import POLICIES
        >>> import numpy as np
        >>> a = TLBCore(4, 2, POLICIES["plru"], 1, 0)
        >>> _ = a.access(np.arange(0, 16 << 12, 4096, dtype=np.uint64))
        >>> b = TLBCore(4, 2, POLICIES["plru"], 1, 0)
        >>> b.restore(a.dump())
        >>> b.dump() == a.dump()
        True
        """
        return tlb_dump(&self.st)

    def restore(self, bytes state not None):
        """Restore a state from :meth:`dump` (``ValueError`` if it does not fit)."""
        tlb_restore(&self.st, state)

    def reset_counters(self):
        tlb_reset_counters(&self.st)

    def contents(self):
        """Copies of the entry arrays (valid, tag, easid, data), shaped (sets, ways)."""
        n = self.st.entries
        tags = np.asarray(<uint64_t[:n]>self.st.tag).copy().reshape(self.st.sets, self.st.ways)
        easid = np.asarray(<uint32_t[:n]>self.st.easid).copy().reshape(self.st.sets, self.st.ways)
        data = np.asarray(<uint64_t[:n]>self.st.data).copy().reshape(self.st.sets, self.st.ways)
        return {"valid": tags != np.uint64(TAG_INVALID), "tag": tags, "easid": easid,
                "data": data}

    def _check_invariants(self):
        """Raise AssertionError if the internal state is inconsistent (for tests):
        per-set valid counts, the global count, the LRU/FIFO order (a permutation with
        invalid ways at the old end), the linked lists and the hashed index."""
        cdef TLBState* t = &self.st
        cdef intp_t s, w, e, pos, k
        cdef uint64_t order
        nglobal = 0
        for s in range(t.sets):
            valid = [t.tag[s * t.ways + w] != TAG_INVALID for w in range(t.ways)]
            if sum(valid) != t.nvalid[s]:
                raise AssertionError(f"set {s}: nvalid={t.nvalid[s]} but {sum(valid)} valid ways")
            nglobal += sum(1 for w in range(t.ways)
                           if valid[w] and t.easid[s * t.ways + w] == ASID_GLOBAL)
            if t.order != NULL:
                order = t.order[s]
                ways_in_order = [(order >> (4 * pos)) & 0xF for pos in range(t.ways)]
                if sorted(ways_in_order) != list(range(t.ways)):
                    raise AssertionError(f"set {s}: order {order:#x} is not a permutation")
                if t.ways < 16 and (order | t.nib_used) != ~(<uint64_t>0):
                    raise AssertionError(f"set {s}: unused nibbles of {order:#x} are not 0xF")
                flags = [valid[w] for w in ways_in_order]
                if flags != sorted(flags, reverse=True):
                    raise AssertionError(f"set {s}: an invalid way is not at the old end")
            if t.head != NULL:
                seen = []
                k = t.head[s]
                while k >= 0 and len(seen) <= t.ways:
                    seen.append(k - s * t.ways)
                    k = t.next[k]
                if sorted(seen) != list(range(t.ways)):
                    raise AssertionError(f"set {s}: list {seen} is not a permutation")
                if t.tail[s] - s * t.ways != seen[len(seen) - 1]:
                    raise AssertionError(f"set {s}: tail is not the list's last entry")
                flags = [valid[w] for w in seen]
                if flags != sorted(flags, reverse=True):
                    raise AssertionError(f"set {s}: an invalid way is not at the list's end")
        if nglobal != t.n_global:
            raise AssertionError(f"n_global={t.n_global} but {nglobal} global entries")
        if t.h_ent != NULL:
            live = 0
            for k in range(<intp_t>t.h_mask + 1):
                e = t.h_ent[k]
                if e < 0:
                    continue
                live += 1
                if t.tag[e] != t.h_tag[k] or t.easid[e] != t.h_easid[k]:
                    raise AssertionError(f"index slot {k} points at entry {e} with another key")
                if _hfind(t, t.h_tag[k], t.h_easid[k]) != e:
                    raise AssertionError(f"index slot {k} is not reachable from its home")
            if live != sum(t.nvalid[s] for s in range(t.sets)):
                raise AssertionError(f"index holds {live} keys for "
                                     f"{sum(t.nvalid[s] for s in range(t.sets))} valid entries")
        return True

    def _corrupt_for_tests(self):
        """Break one invariant on purpose (the checker's own test uses it)."""
        self.st.nvalid[0] += 1

    # test shims for the single-translation kernels
    def _py_probe(self, uint64_t va, asid_t asid=0):
        return tlb_probe(&self.st, va, asid)

    def _py_lookup(self, uint64_t va, asid_t asid=0):
        return tlb_lookup(&self.st, va, asid)

    def _py_fill(self, uint64_t va, asid_t asid=0, uint32_t size_code=0,
                 bint is_global=False, uint64_t data=0):
        return tlb_fill(&self.st, va, asid, size_code, is_global, data)

    def _py_access(self, uint64_t va, asid_t asid=0, uint32_t size_code=0,
                   bint is_global=False):
        return tlb_access(&self.st, va, asid, size_code, is_global)

    def _py_data(self, intp_t entry):
        if entry < 0 or entry >= self.st.entries:
            raise IndexError(f"entry {entry} outside 0..{self.st.entries - 1}")
        return self.st.data[entry]

    def _py_victim(self):
        """(valid, tag, easid, data) of the entry displaced by the last fill."""
        return (bool(self.st.victim_valid), self.st.victim_tag, self.st.victim_easid,
                self.st.victim_data)
