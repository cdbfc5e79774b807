# The TLB engine's hot internals, one source for every module that runs them.
#
# `include`d by mmucore/tlb.pyx (whose public kernels are thin wrappers over the
# `_tlb_*_i` dispatchers at the end) and by the modules whose per-access path probes,
# fills and updates TLB structures (mmucore/pagetable.pyx: the PSCs of the walk;
# mmucore/mmu.pyx: the whole translation path). Each including module gets its own static
# copy, so GCC can inline and specialise these functions into its loops instead of
# calling the kernels through Cython's cross-module capsule pointers. Not a cimport
# contract: the stable surface is tlb.pxd.
#
# The including module must have cimported: calloc/free are not needed; from
# mmucore._types uint32_t, uint64_t, int32_t, vaddr_t, asid_t, intp_t, POLICY_LRU,
# POLICY_FIFO, POLICY_RANDOM, POLICY_PLRU, POLICY_LFU, POLICY_SRRIP, PS_COUNT,
# page_shift; from mmucore._rng rng_below; from mmucore.tlb TLBState, TAG_INVALID,
# ASID_GLOBAL (tlb.pyx gets these from its own .pxd).

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__SIZEOF_INT128__)
    /* Lemire's fastmod: a % d with two multiplies, for a divisor fixed at construction. */
    static inline uint64_t mmucore_fastmod(uint64_t a, uint64_t m_lo, uint64_t m_hi, uint64_t d) {
        __uint128_t M = ((__uint128_t)m_hi << 64) | m_lo;
        __uint128_t low = M * a;
        __uint128_t bottom = ((low & UINT64_C(0xFFFFFFFFFFFFFFFF)) * d) >> 64;
        __uint128_t top = (low >> 64) * d;
        return (uint64_t)((bottom + top) >> 64);
    }
    static inline void mmucore_fastmod_init(uint64_t d, uint64_t* m_lo, uint64_t* m_hi) {
        __uint128_t M = (~(__uint128_t)0) / d + 1;
        *m_lo = (uint64_t)M; *m_hi = (uint64_t)(M >> 64);
    }
    #else
    static inline uint64_t mmucore_fastmod(uint64_t a, uint64_t m_lo, uint64_t m_hi, uint64_t d) {
        (void)m_lo; (void)m_hi; return a % d;
    }
    static inline void mmucore_fastmod_init(uint64_t d, uint64_t* m_lo, uint64_t* m_hi) {
        (void)d; *m_lo = 0; *m_hi = 0;
    }
    #endif
    static inline int mmucore_ctz64(uint64_t x) { return __builtin_ctzll(x); }
    #if defined(__GNUC__)
    __attribute__((noinline))
    #endif
    static uint64_t mmucore_set_mod(uint64_t a, uint64_t m_lo, uint64_t m_hi, uint64_t d) {
        return mmucore_fastmod(a, m_lo, m_hi, d);
    }
    /* Index of the first of n tags equal to tag, or -1. Blocks of 8 tags are compared
       as two 4-lane vectors (GCC/Clang vector extensions; on x86-64 Linux an AVX2 clone
       is picked at load time where the CPU has it, SSE2 otherwise); the block that
       matches is then searched one tag at a time. */
    #if defined(__GNUC__)
    typedef uint64_t mmucore_u64x4 __attribute__((vector_size(32)));
    typedef int64_t mmucore_i64x4 __attribute__((vector_size(32)));
    #if defined(__x86_64__) && !defined(__clang__) && defined(__linux__)
    __attribute__((target_clones("avx2", "default")))
    #endif
    static Py_ssize_t mmucore_find_eq(const uint64_t* tags, Py_ssize_t n, uint64_t tag) {
        Py_ssize_t i = 0;
        mmucore_u64x4 key = {tag, tag, tag, tag};
        mmucore_u64x4 a, b, c, d;
        mmucore_i64x4 m;
        for (; i + 16 <= n; i += 16) {      /* 16 tags per horizontal reduction */
            memcpy(&a, tags + i, sizeof a);
            memcpy(&b, tags + i + 4, sizeof b);
            memcpy(&c, tags + i + 8, sizeof c);
            memcpy(&d, tags + i + 12, sizeof d);
            m = ((a == key) | (b == key)) | ((c == key) | (d == key));
            if (m[0] | m[1] | m[2] | m[3]) break;
        }
        if (i + 8 <= n) {
            memcpy(&a, tags + i, sizeof a);
            memcpy(&b, tags + i + 4, sizeof b);
            m = (a == key) | (b == key);
            if (!(m[0] | m[1] | m[2] | m[3])) i += 8;
        }
        for (; i < n; i++)
            if (tags[i] == tag) return i;
        return -1;
    }
    #else
    static Py_ssize_t mmucore_find_eq(const uint64_t* tags, Py_ssize_t n, uint64_t tag) {
        Py_ssize_t i;
        for (i = 0; i < n; i++)
            if (tags[i] == tag) return i;
        return -1;
    }
    #endif
    /* Whether any of 12 / 16 tags equals tag: one OR of compares, no branch per way
       (the 12- and 16-way sets of the STLBs in the presets). */
    static inline int mmucore_any_eq12(const uint64_t* t, uint64_t x) {
        return ((t[0] == x) | (t[1] == x) | (t[2] == x) | (t[3] == x) | (t[4] == x)
                | (t[5] == x) | (t[6] == x) | (t[7] == x) | (t[8] == x) | (t[9] == x)
                | (t[10] == x) | (t[11] == x));
    }
    static inline int mmucore_any_eq16(const uint64_t* t, uint64_t x) {
        return mmucore_any_eq12(t, x) | (t[12] == x) | (t[13] == x) | (t[14] == x)
               | (t[15] == x);
    }
    /* The first of n tags equal to x, or -1, without a branch: a compare and a
       conditional move per tag (n a constant at each call: unrolled). */
    static inline Py_ssize_t mmucore_first_eq(const uint64_t* t, int n, uint64_t x) {
        Py_ssize_t w = -1;
        for (int i = n - 1; i >= 0; i--) w = (t[i] == x) ? i : w;
        return w;
    }
    #define MMUCORE_NIB_ONES UINT64_C(0x1111111111111111)
    #define MMUCORE_NIB_HIGH UINT64_C(0x8888888888888888)
    #define MMUCORE_HASH_MUL UINT64_C(0x9E3779B97F4A7C15)
    """
    uint64_t mmucore_fastmod(uint64_t a, uint64_t m_lo, uint64_t m_hi, uint64_t d) noexcept nogil
    void mmucore_fastmod_init(uint64_t d, uint64_t* m_lo, uint64_t* m_hi) noexcept nogil
    int mmucore_ctz64(uint64_t x) noexcept nogil
    uint64_t mmucore_set_mod(uint64_t a, uint64_t m_lo, uint64_t m_hi, uint64_t d) noexcept nogil
    intp_t mmucore_find_eq(const uint64_t* tags, intp_t n, uint64_t tag) noexcept nogil
    int mmucore_any_eq12(const uint64_t* tags, uint64_t tag) noexcept nogil
    int mmucore_any_eq16(const uint64_t* tags, uint64_t tag) noexcept nogil
    intp_t mmucore_first_eq(const uint64_t* tags, int n, uint64_t tag) noexcept nogil
    const uint64_t NIB_ONES "MMUCORE_NIB_ONES"
    const uint64_t NIB_HIGH "MMUCORE_NIB_HIGH"
    const uint64_t HASH_MUL "MMUCORE_HASH_MUL"

# Compile-time selectors: every hot function takes a (NULL) pointer of one policy type and
# one engine type, so Cython emits one specialised copy per (policy, engine) pair and
# `if Pol is _LRU:` branches vanish at compile time. The policy is chosen once, when the
# batch starts, never per access.
cdef struct _LRU:
    char unused
cdef struct _FIFO:
    char unused
cdef struct _RANDOM:
    char unused
cdef struct _PLRU:
    char unused
cdef struct _LFU:
    char unused
cdef struct _SRRIP:
    char unused
ctypedef fused Pol:
    _LRU
    _FIFO
    _RANDOM
    _PLRU
    _LFU
    _SRRIP

cdef struct _Scan:          # ways <= 16: tag scan, LRU/FIFO order in a nibble word
    char unused
cdef struct _Wide:          # 17..64 ways: tag scan, linked-list order
    char unused
cdef struct _Hashed:        # more ways: hashed index, linked-list order
    char unused
ctypedef fused Eng:
    _Scan
    _Wide
    _Hashed

cdef struct _OneSize:       # batch: one page size held, one ASID/fill size/global bit
    char unused
cdef struct _PerAccess:     # batch: per-access ASIDs, fill sizes or global bits
    char unused
ctypedef fused Shape:
    _OneSize
    _PerAccess

cdef enum:
    RRPV_MAX = 3            # SRRIP: 2-bit re-reference prediction values
cdef extern from *:
    """#define MMUCORE_COUNT_MAX UINT32_C(0xFFFFFFFF)"""
    const uint32_t COUNT_MAX "MMUCORE_COUNT_MAX"


# ----------------------------------------------------------------------------------------
# set index and hashed index

cdef inline intp_t _set_of(TLBState* t, uint64_t vpn) noexcept nogil:
    if t.sets_pow2:
        return <intp_t>(vpn & t.set_mask)
    return <intp_t>mmucore_set_mod(vpn, t.fm_lo, t.fm_hi, <uint64_t>t.sets)


cdef inline uint64_t _hslot(TLBState* t, uint64_t tag, uint32_t ea) noexcept nogil:
    # Fibonacci hashing: the high bits of one multiply (tags are page numbers, so the
    # low bits alone would cluster)
    return ((tag ^ (<uint64_t>ea << 47)) * HASH_MUL) >> t.h_shift


cdef inline intp_t _hfind(TLBState* t, uint64_t tag, uint32_t ea) noexcept nogil:
    cdef uint64_t i = _hslot(t, tag, ea)
    cdef int32_t e
    while True:
        e = t.h_ent[i]
        if e < 0:
            return -1
        if t.h_tag[i] == tag and t.h_easid[i] == ea:
            return e
        i = (i + 1) & t.h_mask


cdef inline void _hinsert(TLBState* t, uint64_t tag, uint32_t ea, intp_t e) noexcept nogil:
    cdef uint64_t i = _hslot(t, tag, ea)
    while t.h_ent[i] >= 0:
        i = (i + 1) & t.h_mask
    t.h_tag[i] = tag
    t.h_easid[i] = ea
    t.h_ent[i] = <int32_t>e


cdef inline void _hremove(TLBState* t, uint64_t tag, uint32_t ea) noexcept nogil:
    # Linear probing with backward-shift deletion (no tombstones).
    cdef uint64_t i = _hslot(t, tag, ea)
    cdef uint64_t j, k
    while t.h_ent[i] >= 0:
        if t.h_tag[i] == tag and t.h_easid[i] == ea:
            break
        i = (i + 1) & t.h_mask
    if t.h_ent[i] < 0:
        return
    j = i
    while True:
        j = (j + 1) & t.h_mask
        if t.h_ent[j] < 0:
            break
        k = _hslot(t, t.h_tag[j], t.h_easid[j])
        # entry j may stay if its home k lies cyclically in (i, j]
        if i <= j:
            if i < k and k <= j:
                continue
        elif i < k or k <= j:
            continue
        t.h_tag[i] = t.h_tag[j]
        t.h_easid[i] = t.h_easid[j]
        t.h_ent[i] = t.h_ent[j]
        i = j
    t.h_ent[i] = -1


# ----------------------------------------------------------------------------------------
# replacement state

cdef inline intp_t _nib_pos(uint64_t order, uint64_t way) noexcept nogil:
    cdef uint64_t x = order ^ (way * NIB_ONES)
    return mmucore_ctz64((x - NIB_ONES) & ~x & NIB_HIGH) >> 2


cdef inline uint64_t _nib_to_front(uint64_t order, intp_t pos, uint64_t way) noexcept nogil:
    cdef uint64_t low = ((<uint64_t>1) << (4 * pos)) - 1
    cdef uint64_t keep = ~((low << 4) | 0xF)
    return (order & keep) | ((order & low) << 4) | way


cdef inline uint64_t _nib_to_back(uint64_t order, intp_t pos, uint64_t way,
                                  intp_t ways) noexcept nogil:
    cdef uint64_t low = ((<uint64_t>1) << (4 * pos)) - 1
    cdef uint64_t used = (~(<uint64_t>0)) if ways == 16 else (((<uint64_t>1) << (4 * ways)) - 1)
    cdef uint64_t mid = order & used & ~((low << 4) | 0xF)
    return (order & low) | (mid >> 4) | (way << (4 * (ways - 1))) | (order & ~used)


cdef inline uint64_t _nib_initial(intp_t ways) noexcept nogil:
    # position i holds way (ways - 1 - i): way 0 is the first victim; unused positions 0xF
    cdef uint64_t order = ~(<uint64_t>0)
    cdef intp_t i
    for i in range(ways):
        order &= ~((<uint64_t>0xF) << (4 * i))
        order |= (<uint64_t>(ways - 1 - i)) << (4 * i)
    return order


cdef inline void _ll_unlink(TLBState* t, intp_t s, intp_t e) noexcept nogil:
    cdef int32_t p = t.prev[e]
    cdef int32_t n = t.next[e]
    if p >= 0:
        t.next[p] = n
    else:
        t.head[s] = n
    if n >= 0:
        t.prev[n] = p
    else:
        t.tail[s] = p


cdef inline void _ll_push_front(TLBState* t, intp_t s, intp_t e) noexcept nogil:
    cdef int32_t h = t.head[s]
    t.prev[e] = -1
    t.next[e] = h
    if h >= 0:
        t.prev[h] = <int32_t>e
    else:
        t.tail[s] = <int32_t>e
    t.head[s] = <int32_t>e


cdef inline void _ll_push_back(TLBState* t, intp_t s, intp_t e) noexcept nogil:
    cdef int32_t tl = t.tail[s]
    t.next[e] = -1
    t.prev[e] = tl
    if tl >= 0:
        t.next[tl] = <int32_t>e
    else:
        t.head[s] = <int32_t>e
    t.tail[s] = <int32_t>e


cdef inline void _order_front(TLBState* t, intp_t s, intp_t e, Eng* g) noexcept nogil:
    cdef uint64_t w
    if Eng is _Wide or Eng is _Hashed:
        if t.head[s] != e:
            _ll_unlink(t, s, e)
            _ll_push_front(t, s, e)
    else:
        w = <uint64_t>(e - s * t.ways)
        t.order[s] = _nib_to_front(t.order[s], _nib_pos(t.order[s], w), w)


cdef inline void _order_back(TLBState* t, intp_t s, intp_t e) noexcept nogil:
    cdef uint64_t w
    if t.listed:
        if t.tail[s] != e:
            _ll_unlink(t, s, e)
            _ll_push_back(t, s, e)
    else:
        w = <uint64_t>(e - s * t.ways)
        t.order[s] = _nib_to_back(t.order[s], _nib_pos(t.order[s], w), w, t.ways)


cdef inline void _plru_touch(TLBState* t, intp_t s, intp_t way) noexcept nogil:
    # Set the bits on the path to `way` to point away from it. For trees of up to 64
    # leaves the path's bits and values are precomputed per way: one masked store.
    cdef uint64_t* bits
    cdef intp_t node, parent
    if t.plru_words == 1:
        t.plru[s] = (t.plru[s] & ~t.plru_path_mask[way]) | t.plru_path_bits[way]
        return
    bits = t.plru + s * t.plru_words
    node = way + t.plru_leaves
    while node > 1:
        parent = node >> 1
        if (node & 1) == 0:     # came from the left: point the victim search right
            bits[parent >> 6] |= (<uint64_t>1) << (parent & 63)
        else:
            bits[parent >> 6] &= ~((<uint64_t>1) << (parent & 63))
        node = parent


cdef inline intp_t _plru_victim(TLBState* t, intp_t s) noexcept nogil:
    # Go right when the bit says so and the right subtree holds an existing way. With
    # many sets the bits met are close to random and a branch per level would mispredict
    # half the time, so the descent is branch-free; a single set (fully associative)
    # cycles through a regular victim pattern that the branch predictor learns, and the
    # branchy descent, which does not wait for each level's bit, is faster there.
    cdef uint64_t* bits = t.plru + s * t.plru_words
    cdef intp_t node = 1
    cdef intp_t lo = 0
    cdef intp_t span = t.plru_leaves
    cdef intp_t right
    cdef uint64_t b
    if t.plru_words == 1 and span == t.ways and t.sets > 1:
        # a full tree in one word (2..64 ways, a power of two): every subtree holds
        # ways, so the descent is the node's bit, level by level; leaf `leaves + w` is
        # way w
        b = bits[0]
        while node < span:
            node = 2 * node + <intp_t>((b >> node) & 1)
        return node - span
    if t.sets == 1:
        while span > 1:
            span >>= 1
            if ((bits[node >> 6] >> (node & 63)) & 1) and lo + span < t.ways:
                node = 2 * node + 1
                lo += span
            else:
                node = 2 * node
        return lo
    while span > 1:
        span >>= 1
        right = <intp_t>(((bits[node >> 6] >> (node & 63)) & 1)
                         & <uint64_t>(lo + span < t.ways))
        node = 2 * node + right
        lo += span * right
    return lo


cdef inline void _on_hit(TLBState* t, intp_t s, intp_t e, Pol* p, Eng* g) noexcept nogil:
    if Pol is _LRU:
        _order_front(t, s, e, g)
    elif Pol is _PLRU:
        _plru_touch(t, s, e - s * t.ways)
    elif Pol is _LFU:
        if t.count[e] != COUNT_MAX:
            t.count[e] += 1
    elif Pol is _SRRIP:
        t.count[e] = 0


cdef inline void _on_fill(TLBState* t, intp_t s, intp_t e, Pol* p, Eng* g) noexcept nogil:
    if Pol is _LRU or Pol is _FIFO:
        _order_front(t, s, e, g)
    elif Pol is _PLRU:
        _plru_touch(t, s, e - s * t.ways)
    elif Pol is _LFU:
        t.count[e] = 1
    elif Pol is _SRRIP:
        t.count[e] = RRPV_MAX - 1


cdef inline intp_t _victim_way(TLBState* t, intp_t s, Pol* p, Eng* g) noexcept nogil:
    cdef intp_t base = s * t.ways
    cdef intp_t w, best
    cdef uint32_t c, cbest
    if Pol is _LRU or Pol is _FIFO:
        # invalid entries sit at the old end of the order, so this covers them too
        if Eng is _Wide or Eng is _Hashed:
            return t.tail[s] - base
        else:
            return <intp_t>((t.order[s] >> (4 * (t.ways - 1))) & 0xF)
    else:
        if t.nvalid[s] < <uint32_t>t.ways:
            for w in range(t.ways):
                if t.tag[base + w] == TAG_INVALID:
                    return w
        if Pol is _RANDOM:
            return <intp_t>rng_below(&t.rng, <uint64_t>t.ways)
        elif Pol is _PLRU:
            return _plru_victim(t, s)
        elif Pol is _LFU:
            # lowest count, lowest way on ties (conditional moves, no data branches)
            best = 0
            cbest = t.count[base]
            for w in range(1, t.ways):
                c = t.count[base + w]
                best = w if c < cbest else best
                cbest = c if c < cbest else cbest
            return best
        else:
            # SRRIP: the lowest way with the largest RRPV; age the set until it is 3
            best = 0
            cbest = t.count[base]
            for w in range(1, t.ways):
                c = t.count[base + w]
                best = w if c > cbest else best
                cbest = c if c > cbest else cbest
            if cbest < RRPV_MAX:
                c = RRPV_MAX - cbest
                for w in range(t.ways):
                    t.count[base + w] += c
            return best


# ----------------------------------------------------------------------------------------
# lookup, fill, invalidate (internal: no memo handling, no access counters)

cdef inline bint _scan_any(TLBState* t, const uint64_t* tags, uint64_t tag) noexcept nogil:
    # whether any of a set's tags (ways <= 16) equals tag
    cdef intp_t w
    cdef uint64_t anym = 0
    if t.ways == 4:
        return ((tags[0] == tag) | (tags[1] == tag) | (tags[2] == tag) | (tags[3] == tag))
    if t.ways == 8:
        return ((tags[0] == tag) | (tags[1] == tag) | (tags[2] == tag) | (tags[3] == tag)
                | (tags[4] == tag) | (tags[5] == tag) | (tags[6] == tag) | (tags[7] == tag))
    if t.ways == 12:
        return mmucore_any_eq12(tags, tag)
    if t.ways == 16:
        return mmucore_any_eq16(tags, tag)
    for w in range(t.ways):
        anym |= <uint64_t>(tags[w] == tag)
    return anym != 0


cdef inline intp_t _find_scan(TLBState* t, intp_t base, uint64_t tag,
                              uint32_t asid, Eng* g) noexcept nogil:
    # First a branch-free pass over the set's tags that gives the first way holding the
    # tag (a compare and a conditional move per way, unrolled for 4, 8, 12 and 16 ways; a
    # match mask for the other counts up to 16; vectorised in blocks of 8 above that):
    # most lookups miss and stop after it, and a hit costs no branch per way before it
    # (one whose outcome, the way of the hit, no predictor knows). Its ASID is then
    # checked; only when it is not the caller's do the ways after it follow (an ASID
    # entry wins over a global one).
    cdef const uint64_t* tags = t.tag + base
    cdef uint64_t anym = 0
    cdef intp_t w, first = 0, gl = -1
    cdef uint32_t ea
    if Eng is _Scan and t.ways <= 16:
        if t.ways == 4:
            first = mmucore_first_eq(tags, 4, tag)
        elif t.ways == 8:
            first = mmucore_first_eq(tags, 8, tag)
        elif t.ways == 12:
            first = mmucore_first_eq(tags, 12, tag)
        elif t.ways == 16:
            first = mmucore_first_eq(tags, 16, tag)
        else:
            for w in range(t.ways):
                anym |= (<uint64_t>(tags[w] == tag)) << w
            first = mmucore_ctz64(anym) if anym else -1
        if first < 0:
            return -1
        if t.easid[base + first] == asid:
            return base + first
    else:
        first = mmucore_find_eq(tags, t.ways, tag)
        if first < 0:
            return -1
    for w in range(first, t.ways):
        if tags[w] == tag:
            ea = t.easid[base + w]
            if ea == asid:
                return base + w
            if ea == ASID_GLOBAL and gl < 0:
                gl = base + w
    return gl


cdef inline intp_t _probe(TLBState* t, vaddr_t va, uint32_t asid, intp_t* set_out,
                         Eng* g, bint one_size=False) noexcept nogil:
    # `one_size`: the caller knows the structure holds a single page size (a constant
    # after inlining, so the loop disappears)
    cdef uint32_t i
    cdef uint64_t vpn, tag
    cdef intp_t e, s
    for i in range(1 if one_size else t.n_sizes):
        vpn = va >> t.size_shift[i]
        tag = (vpn << 2) | t.size_code[i]
        s = _set_of(t, vpn)
        if Eng is _Hashed:
            e = _hfind(t, tag, asid)
            if e < 0 and t.n_global > 0:
                e = _hfind(t, tag, ASID_GLOBAL)
        else:
            e = _find_scan(t, s * t.ways, tag, asid, g)
        if e >= 0:
            set_out[0] = s
            return e
    return -1


cdef enum:
    # what _fill_new keeps of the entry it displaces
    RECORD_NONE = 0
    RECORD_ALL = 1
    RECORD_TAG = 2


cdef inline intp_t _fill_new(TLBState* t, uint64_t vpn, intp_t s, uint32_t code, uint32_t ea,
                             uint64_t data, Pol* p, Eng* g, int record=RECORD_ALL) noexcept nogil:
    # `s` is the set of `vpn` (callers have it already). `record`: keep the displaced
    # entry in t.victim_* (RECORD_ALL: the single-fill kernel does, for exclusive
    # hierarchies; RECORD_TAG: its tag and ASID only, all an inclusive hierarchy's
    # back-invalidation needs: the lean path, which so reads no payload it then
    # overwrites; RECORD_NONE: the batch loop, whose callers cannot see it per access)
    cdef intp_t w = _victim_way(t, s, p, g)
    cdef intp_t e = s * t.ways + w
    cdef uint64_t old = t.tag[e]
    if old != TAG_INVALID:
        t.evictions += 1
        if record:
            t.victim_valid = 1
            t.victim_tag = old
            t.victim_easid = t.easid[e]
            if record == RECORD_ALL:
                t.victim_data = t.data[e]
        if Eng is _Hashed:
            _hremove(t, old, t.easid[e])
        if t.easid[e] == ASID_GLOBAL:
            t.n_global -= 1
    else:
        if record:
            t.victim_valid = 0
        t.nvalid[s] += 1
    t.tag[e] = (vpn << 2) | code
    t.easid[e] = ea
    t.data[e] = data
    if ea == ASID_GLOBAL:
        t.n_global += 1
    if Eng is _Hashed:
        _hinsert(t, t.tag[e], ea, e)
    if (Pol is _LRU or Pol is _FIFO) and Eng is _Scan:
        # the victim was the oldest nibble: shift it out and put the way in front
        t.order[s] = ((t.order[s] << 4) & t.nib_used) | <uint64_t>w | (t.order[s] & ~t.nib_used)
    else:
        _on_fill(t, s, e, p, g)
    t.fills += 1
    return e


cdef inline void _drop(TLBState* t, intp_t s, intp_t e) noexcept nogil:
    if t.indexed:
        _hremove(t, t.tag[e], t.easid[e])
    if t.easid[e] == ASID_GLOBAL:
        t.n_global -= 1
    t.tag[e] = TAG_INVALID
    t.easid[e] = 0
    t.nvalid[s] -= 1
    t.invalidations += 1
    if t.policy == POLICY_LRU or t.policy == POLICY_FIFO:
        _order_back(t, s, e)
    elif t.policy == POLICY_LFU:
        t.count[e] = 0
    elif t.policy == POLICY_SRRIP:
        t.count[e] = RRPV_MAX


cdef inline void _memo_clear(TLBState* t) noexcept nogil:
    t.memo_key = TAG_INVALID
    t.memo_asid = 0
    t.memo_entry = -1


cdef inline intp_t _probe_sizes(TLBState* t, vaddr_t va, uint32_t asid, uint32_t code_mask,
                                intp_t* set_out, Eng* g) noexcept nogil:
    # _probe, skipping the sizes not in code_mask (same order: smallest first)
    cdef uint32_t i
    cdef uint64_t vpn, tag
    cdef intp_t e, s
    for i in range(t.n_sizes):
        if not ((code_mask >> t.size_code[i]) & 1):
            continue
        vpn = va >> t.size_shift[i]
        tag = (vpn << 2) | t.size_code[i]
        s = _set_of(t, vpn)
        if Eng is _Hashed:
            e = _hfind(t, tag, asid)
            if e < 0 and t.n_global > 0:
                e = _hfind(t, tag, ASID_GLOBAL)
        else:
            e = _find_scan(t, s * t.ways, tag, asid, g)
        if e >= 0:
            set_out[0] = s
            return e
    return -1


# Each public kernel dispatches once, on (engine, policy), to its specialised body.


cdef inline intp_t _lookup_e(TLBState* t, vaddr_t va, asid_t asid, Eng* g) noexcept nogil:
    cdef uint32_t pol = t.policy
    if pol == POLICY_LRU:
        return _lookup(t, va, asid, <_LRU*>NULL, g)
    if pol == POLICY_FIFO:
        return _lookup(t, va, asid, <_FIFO*>NULL, g)
    if pol == POLICY_RANDOM:
        return _lookup(t, va, asid, <_RANDOM*>NULL, g)
    if pol == POLICY_PLRU:
        return _lookup(t, va, asid, <_PLRU*>NULL, g)
    if pol == POLICY_LFU:
        return _lookup(t, va, asid, <_LFU*>NULL, g)
    return _lookup(t, va, asid, <_SRRIP*>NULL, g)


cdef inline intp_t _lookup(TLBState* t, vaddr_t va, asid_t asid, Pol* p, Eng* g) noexcept nogil:
    cdef intp_t s
    cdef intp_t e = _probe(t, va, asid, &s, g)
    _memo_clear(t)
    t.accesses += 1
    if e >= 0:
        t.hits += 1
        _on_hit(t, s, e, p, g)
    else:
        t.misses += 1
    return e


cdef inline intp_t _fill_e(TLBState* t, vaddr_t va, asid_t asid, uint32_t code,
                           bint is_global, uint64_t data, Eng* g) noexcept nogil:
    cdef uint32_t pol = t.policy
    if pol == POLICY_LRU:
        return _fill(t, va, asid, code, is_global, data, <_LRU*>NULL, g)
    if pol == POLICY_FIFO:
        return _fill(t, va, asid, code, is_global, data, <_FIFO*>NULL, g)
    if pol == POLICY_RANDOM:
        return _fill(t, va, asid, code, is_global, data, <_RANDOM*>NULL, g)
    if pol == POLICY_PLRU:
        return _fill(t, va, asid, code, is_global, data, <_PLRU*>NULL, g)
    if pol == POLICY_LFU:
        return _fill(t, va, asid, code, is_global, data, <_LFU*>NULL, g)
    return _fill(t, va, asid, code, is_global, data, <_SRRIP*>NULL, g)


cdef inline intp_t _fill(TLBState* t, vaddr_t va, asid_t asid, uint32_t code,
                         bint is_global, uint64_t data, Pol* p, Eng* g) noexcept nogil:
    cdef uint64_t vpn = va >> page_shift(code)
    cdef uint64_t tag = (vpn << 2) | code
    cdef intp_t s = _set_of(t, vpn)
    cdef intp_t e
    cdef uint32_t ea = <uint32_t>ASID_GLOBAL if is_global else <uint32_t>asid
    # the other kind of entry that would serve this ASID: its global twin, or its ASID one
    cdef uint32_t other_ea = <uint32_t>asid if is_global else <uint32_t>ASID_GLOBAL
    cdef intp_t other = -1
    cdef intp_t w
    if Eng is _Hashed:
        e = _hfind(t, tag, ea)
        if e < 0:
            other = _hfind(t, tag, other_ea)
    else:
        e = -1
        for w in range(t.ways):
            if t.tag[s * t.ways + w] == tag:
                if t.easid[s * t.ways + w] == ea:
                    e = s * t.ways + w
                    break
                if t.easid[s * t.ways + w] == other_ea and other < 0:
                    other = s * t.ways + w
    if e >= 0:                          # already present: refresh it in place
        t.data[e] = data
        _on_hit(t, s, e, p, g)
        return e
    if other >= 0:                      # present with the other global bit: re-tag it
        _drop(t, s, other)
        t.invalidations -= 1
    return _fill_new(t, vpn, s, code, ea, data, p, g)


cdef inline intp_t _fill_absent_e(TLBState* t, vaddr_t va, asid_t asid, uint32_t code,
                                  bint is_global, uint64_t data, Eng* g) noexcept nogil:
    cdef uint64_t vpn = va >> page_shift(code)
    cdef intp_t s = _set_of(t, vpn)
    cdef uint32_t ea = <uint32_t>ASID_GLOBAL if is_global else <uint32_t>asid
    cdef uint32_t pol = t.policy
    if pol == POLICY_LRU:
        return _fill_new(t, vpn, s, code, ea, data, <_LRU*>NULL, g)
    if pol == POLICY_FIFO:
        return _fill_new(t, vpn, s, code, ea, data, <_FIFO*>NULL, g)
    if pol == POLICY_RANDOM:
        return _fill_new(t, vpn, s, code, ea, data, <_RANDOM*>NULL, g)
    if pol == POLICY_PLRU:
        return _fill_new(t, vpn, s, code, ea, data, <_PLRU*>NULL, g)
    if pol == POLICY_LFU:
        return _fill_new(t, vpn, s, code, ea, data, <_LFU*>NULL, g)
    return _fill_new(t, vpn, s, code, ea, data, <_SRRIP*>NULL, g)


cdef inline void _touch_e(TLBState* t, intp_t e, Eng* g) noexcept nogil:
    cdef intp_t s = e // t.ways
    cdef uint32_t pol = t.policy
    if pol == POLICY_LRU:
        _on_hit(t, s, e, <_LRU*>NULL, g)
    elif pol == POLICY_PLRU:
        _on_hit(t, s, e, <_PLRU*>NULL, g)
    elif pol == POLICY_LFU:
        _on_hit(t, s, e, <_LFU*>NULL, g)
    elif pol == POLICY_SRRIP:
        _on_hit(t, s, e, <_SRRIP*>NULL, g)


# ----------------------------------------------------------------------------------------
# dispatchers: one call per kernel, on (engine, policy), to the specialised bodies. The
# public kernels of tlb.pyx are these; other modules inline them.

cdef inline intp_t _tlb_probe_i(TLBState* t, vaddr_t va, asid_t asid) noexcept nogil:
    cdef intp_t s
    if t.indexed:
        return _probe(t, va, asid, &s, <_Hashed*>NULL)
    if t.listed:
        return _probe(t, va, asid, &s, <_Wide*>NULL)
    return _probe(t, va, asid, &s, <_Scan*>NULL)


cdef inline intp_t _tlb_probe_sizes_i(TLBState* t, vaddr_t va, asid_t asid,
                                      uint32_t code_mask) noexcept nogil:
    cdef intp_t s
    if t.indexed:
        return _probe_sizes(t, va, asid, code_mask, &s, <_Hashed*>NULL)
    if t.listed:
        return _probe_sizes(t, va, asid, code_mask, &s, <_Wide*>NULL)
    return _probe_sizes(t, va, asid, code_mask, &s, <_Scan*>NULL)


cdef inline intp_t _tlb_lookup_i(TLBState* t, vaddr_t va, asid_t asid) noexcept nogil:
    if t.indexed:
        return _lookup_e(t, va, asid, <_Hashed*>NULL)
    if t.listed:
        return _lookup_e(t, va, asid, <_Wide*>NULL)
    return _lookup_e(t, va, asid, <_Scan*>NULL)


cdef inline intp_t _tlb_fill_i(TLBState* t, vaddr_t va, asid_t asid, uint32_t size_code,
                               bint is_global, uint64_t data) noexcept nogil:
    if size_code >= PS_COUNT or not ((t.size_mask >> size_code) & 1):
        return -1
    _memo_clear(t)
    if t.indexed:
        return _fill_e(t, va, asid, size_code, is_global, data, <_Hashed*>NULL)
    if t.listed:
        return _fill_e(t, va, asid, size_code, is_global, data, <_Wide*>NULL)
    return _fill_e(t, va, asid, size_code, is_global, data, <_Scan*>NULL)


cdef inline intp_t _tlb_fill_absent_i(TLBState* t, vaddr_t va, asid_t asid,
                                      uint32_t size_code, bint is_global,
                                      uint64_t data) noexcept nogil:
    if size_code >= PS_COUNT or not ((t.size_mask >> size_code) & 1):
        return -1
    _memo_clear(t)
    if t.indexed:
        return _fill_absent_e(t, va, asid, size_code, is_global, data, <_Hashed*>NULL)
    if t.listed:
        return _fill_absent_e(t, va, asid, size_code, is_global, data, <_Wide*>NULL)
    return _fill_absent_e(t, va, asid, size_code, is_global, data, <_Scan*>NULL)


cdef inline void _tlb_touch_i(TLBState* t, intp_t entry) noexcept nogil:
    _memo_clear(t)
    if t.indexed:
        _touch_e(t, entry, <_Hashed*>NULL)
    elif t.listed:
        _touch_e(t, entry, <_Wide*>NULL)
    else:
        _touch_e(t, entry, <_Scan*>NULL)


cdef inline void _tlb_remove_i(TLBState* t, intp_t entry) noexcept nogil:
    _memo_clear(t)
    if t.tag[entry] == TAG_INVALID:
        return
    _drop(t, entry // t.ways, entry)
    t.invalidations -= 1


cdef inline intp_t _tlb_remove_match_i(TLBState* t, uint64_t tag, uint32_t easid) noexcept nogil:
    cdef uint32_t code = <uint32_t>(tag & 3)
    cdef intp_t s, w, e
    if not ((t.size_mask >> code) & 1):
        return 0
    _memo_clear(t)
    s = _set_of(t, tag >> 2)
    if t.indexed:
        e = _hfind(t, tag, easid)
        if e >= 0:
            _drop(t, s, e)
            return 1
        return 0
    if not t.listed and not _scan_any(t, t.tag + s * t.ways, tag):
        return 0                        # (the usual case: a quick miss)
    for w in range(t.ways):
        e = s * t.ways + w
        if t.tag[e] == tag and t.easid[e] == easid:
            _drop(t, s, e)
            return 1
    return 0
