# LRU stack distances and miss-ratio curves (issue 7): the nogil kernels behind
# pyapi.miss_ratio_curve. stackdist.pxd describes the state and the four modes;
# docs/mrc.md the semantics; tests/reference_mrc.py is the pure-Python oracle that
# must agree exactly.
#
# Exact distances: Mattson's stack algorithm made O(log M) per access with a Fenwick
# tree (binary indexed tree, P. M. Fenwick, Software: Practice and Experience 24(3),
# 1994) over "time positions": position t holds 1 when the access made at time t is
# still the latest access of its page. The distance of an access to a page last seen at
# p is the number of ones after p, plus one. The tree is rebuilt over renumbered
# positions (0 .. live-1, in time order) when it is full, so it stays within 2x to 4x
# the number of live pages.
#
# SHARDS (C. A. Waldspurger, N. Park, A. Garthwaite, I. Ahmad, "Efficient MRC
# Construction with SHARDS", FAST 2015): a page is sampled when hash(page) <= tmax,
# i.e. with rate R = (tmax + 1) / 2**64, spatially (every access of a sampled page is
# seen). A sampled distance d stands for 1 + (d - 1) / R pages. The fixed-size variant
# lowers tmax to keep at most s_max pages; instead of rescaling the histogram at every
# change of rate, each sampled access is weighted by 1/R of its time (the histogram the
# paper keeps is this one times the final rate).
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memset, memmove, memcpy
from mmucore._types cimport uint8_t, uint32_t, uint64_t, int32_t, int64_t, intp_t, OP_MODIFY
from mmucore._rng cimport splitmix64

import numpy as np

cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__SIZEOF_INT128__)
    /* Lemire's fastmod (as in tlb.pyx): a % d with two multiplies. */
    static inline uint64_t mmucore_sd_fastmod(uint64_t a, uint64_t m_lo, uint64_t m_hi, uint64_t d) {
        __uint128_t M = ((__uint128_t)m_hi << 64) | m_lo;
        __uint128_t low = M * a;
        __uint128_t bottom = ((low & UINT64_C(0xFFFFFFFFFFFFFFFF)) * d) >> 64;
        __uint128_t top = (low >> 64) * d;
        return (uint64_t)((bottom + top) >> 64);
    }
    static inline void mmucore_sd_fastmod_init(uint64_t d, uint64_t* m_lo, uint64_t* m_hi) {
        __uint128_t M = (~(__uint128_t)0) / d + 1;
        *m_lo = (uint64_t)M; *m_hi = (uint64_t)(M >> 64);
    }
    #else
    static inline uint64_t mmucore_sd_fastmod(uint64_t a, uint64_t m_lo, uint64_t m_hi, uint64_t d) {
        (void)m_lo; (void)m_hi; return a % d;
    }
    static inline void mmucore_sd_fastmod_init(uint64_t d, uint64_t* m_lo, uint64_t* m_hi) {
        (void)d; *m_lo = 0; *m_hi = 0;
    }
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    static inline Py_ssize_t mmucore_sd_popcount(uint64_t x) { return (Py_ssize_t)__builtin_popcountll(x); }
    #else
    static inline Py_ssize_t mmucore_sd_popcount(uint64_t x) {
        x = x - ((x >> 1) & UINT64_C(0x5555555555555555));
        x = (x & UINT64_C(0x3333333333333333)) + ((x >> 2) & UINT64_C(0x3333333333333333));
        x = (x + (x >> 4)) & UINT64_C(0x0F0F0F0F0F0F0F0F);
        return (Py_ssize_t)((x * UINT64_C(0x0101010101010101)) >> 56);
    }
    #endif
    /* The floating-point steps of SHARDS, free of fused multiply-adds (-march=native
       may otherwise contract them) so that they round like tests/reference_mrc.py. */
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC push_options
    #pragma GCC optimize ("fp-contract=off")
    #endif
    /* the scaled distance 1 + (d - 1) / R of a sampled distance d */
    static double mmucore_sd_scaled(uint64_t d, double inv_rate) {
        double x = (double)(d - 1) * inv_rate;
        return 1.0 + x;
    }
    /* 1 / R = 2**64 / (tmax + 1) */
    static double mmucore_sd_inv_rate(uint64_t tmax) {
        double t = (double)tmax;
        return 18446744073709551616.0 / (t + 1.0);
    }
    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC pop_options
    #endif
    """
    uint64_t sd_fastmod "mmucore_sd_fastmod"(uint64_t a, uint64_t m_lo, uint64_t m_hi, uint64_t d) noexcept nogil
    void sd_fastmod_init "mmucore_sd_fastmod_init"(uint64_t d, uint64_t* m_lo, uint64_t* m_hi) noexcept nogil
    double sd_scaled "mmucore_sd_scaled"(uint64_t d, double inv_rate) noexcept nogil
    double sd_inv_rate "mmucore_sd_inv_rate"(uint64_t tmax) noexcept nogil
    intp_t sd_popcount "mmucore_sd_popcount"(uint64_t x) noexcept nogil

#: Version of SDState and the kernel signatures in stackdist.pxd (bumped with every change).
ABI_VERSION = SD_ABI_VERSION
#: sizeof(SDState) in this build.
STATE_SIZE = sizeof(SDState)
#: SDMode codes by name.
MODES = {"exact": SD_EXACT, "sets": SD_SETS, "shards_rate": SD_SHARDS_RATE,
         "shards_size": SD_SHARDS_SIZE}
#: The largest associativity a set-associative state resolves.
MAX_WAYS = SD_MAX_WAYS

cdef uint64_t FIB_MUL = <uint64_t>0x9E3779B97F4A7C15
cdef double MAX_SCALED = 9.0e18      # scaled distances are clamped below 2**63


def abi_check(int version, Py_ssize_t state_size):
    """Raise ImportError unless a consumer built against `version`/`state_size` matches."""
    if version != SD_ABI_VERSION or state_size != <Py_ssize_t>sizeof(SDState):
        raise ImportError(
            f"compiled against mmucore.stackdist ABI {version} (SDState {state_size} bytes) "
            f"but the installed engine is ABI {SD_ABI_VERSION} ({sizeof(SDState)} bytes): "
            f"rebuild the extension against the installed mmucore")


# ------------------------------------------------------------------------------ hashing
cdef uint64_t sd_hash(uint64_t vpn, uint64_t key) noexcept nogil:
    # murmur3's 64-bit finalizer: a bijection, so distinct pages have distinct hashes
    cdef uint64_t x = vpn ^ key
    x ^= x >> 33
    x *= <uint64_t>0xFF51AFD7ED558CCD
    x ^= x >> 33
    x *= <uint64_t>0xC4CEB9FE1A85EC53
    x ^= x >> 33
    return x


# ----------------------------------------------------------------------------- page map
cdef inline intp_t _map_home(const SDState* st, uint64_t vpn) noexcept nogil:
    return <intp_t>((vpn * FIB_MUL) >> st.map_shift)


cdef inline intp_t _map_find(const SDState* st, uint64_t vpn) noexcept nogil:
    """Slot of `vpn`, or -1 - (the free slot where it would go)."""
    cdef intp_t mask = st.map_cap - 1
    cdef intp_t i = _map_home(st, vpn)
    cdef uint64_t k
    while True:
        k = st.slots[i].vpn
        if k == vpn:
            return i
        if k == SD_EMPTY:
            return -1 - i
        i = (i + 1) & mask


cdef int _map_alloc(SDState* st, intp_t cap) except -1 nogil:
    cdef intp_t i
    cdef uint32_t bits = 0
    st.slots = <SDSlot*>malloc(cap * sizeof(SDSlot))
    if st.slots == NULL:
        with gil:
            raise MemoryError(f"stackdist: cannot allocate a page map of {cap} slots")
    for i in range(cap):
        st.slots[i].vpn = SD_EMPTY
        st.slots[i].time = 0
    while ((<intp_t>1) << bits) < cap:
        bits += 1
    st.map_cap = cap
    st.map_shift = 64 - bits
    return 0


cdef int _map_grow(SDState* st) except -1 nogil:
    cdef SDSlot* old = st.slots
    cdef intp_t old_cap = st.map_cap, i, j
    if _map_alloc(st, old_cap * 2) < 0:
        st.slots = old
        st.map_cap = old_cap
        return -1
    for i in range(old_cap):
        if old[i].vpn != SD_EMPTY:
            j = -1 - _map_find(st, old[i].vpn)
            st.slots[j] = old[i]
    free(old)
    return 0


cdef void _map_delete(SDState* st, intp_t i) noexcept nogil:
    """Empty slot i (backward-shift deletion: later entries of the probe run move up)."""
    cdef intp_t mask = st.map_cap - 1, j = i, h
    cdef uint64_t k
    while True:
        j = (j + 1) & mask
        k = st.slots[j].vpn
        if k == SD_EMPTY:
            break
        h = _map_home(st, k)
        # the entry at j may move to i unless its home lies cyclically in (i, j]
        if i <= j:
            if i < h and h <= j:
                continue
        elif h > i or h <= j:
            continue
        st.slots[i] = st.slots[j]
        i = j
    st.slots[i].vpn = SD_EMPTY
    st.map_count -= 1


# ------------------------------------------------------------------ time positions
# Position t is bit (t & 63) of word t >> 6; the Fenwick tree counts ones per word, so
# both stay small (cap/8 + cap/16 bytes: in L2 for a million live pages).
cdef inline void _fen_add(int32_t* fen, intp_t nwords, intp_t w, int32_t delta) noexcept nogil:
    w += 1
    while w <= nwords:
        fen[w] += delta
        w += w & (-w)


cdef inline intp_t _ones_upto(const SDState* st, intp_t p) noexcept nogil:
    """Ones at positions <= p."""
    cdef intp_t w = p >> 6, s = 0
    cdef uint64_t mask = (~(<uint64_t>0)) >> (63 - (p & 63))
    s = sd_popcount(st.bits[w] & mask)
    while w > 0:
        s += st.fen[w]
        w &= w - 1
    return s


cdef inline void _clear_pos(SDState* st, intp_t p) noexcept nogil:
    st.bits[p >> 6] &= ~((<uint64_t>1) << (p & 63))
    _fen_add(st.fen, st.fen_cap >> 6, p >> 6, -1)


cdef inline void _set_pos(SDState* st, intp_t p) noexcept nogil:
    st.bits[p >> 6] |= (<uint64_t>1) << (p & 63)
    _fen_add(st.fen, st.fen_cap >> 6, p >> 6, 1)


cdef int _times_alloc(SDState* st, intp_t cap, intp_t live) except -1 nogil:
    """New position arrays of `cap` positions whose first `live` positions are ones."""
    cdef intp_t nwords = cap >> 6, w, parent
    cdef uint64_t* bits = <uint64_t*>calloc(nwords, sizeof(uint64_t))
    cdef int32_t* fen = <int32_t*>calloc(nwords + 1, sizeof(int32_t))
    if bits == NULL or fen == NULL:
        free(bits)
        free(fen)
        with gil:
            raise MemoryError(f"stackdist: cannot allocate {cap} time positions")
    for w in range(live >> 6):
        bits[w] = ~(<uint64_t>0)
        fen[w + 1] = 64
    if live & 63:
        bits[live >> 6] = ((<uint64_t>1) << (live & 63)) - 1
        fen[(live >> 6) + 1] = <int32_t>(live & 63)
    for w in range(1, nwords + 1):          # linear Fenwick build
        parent = w + (w & (-w))
        if parent <= nwords:
            fen[parent] += fen[w]
    free(st.bits)
    free(st.fen)
    st.bits = bits
    st.fen = fen
    st.fen_cap = cap
    st.now = live
    return 0


cdef int _compact(SDState* st) except -1 nogil:
    """Renumber the live time positions 0 .. live-1 (in time order) in
    max(SD_MIN_TIMES, the power of two >= 2 * live) positions."""
    cdef intp_t live = st.map_count, cap = SD_MIN_TIMES, w, i, t
    cdef intp_t nwords = st.fen_cap >> 6
    cdef int64_t run = 0
    cdef int64_t* rank = <int64_t*>malloc(nwords * sizeof(int64_t))
    if rank == NULL:
        with gil:
            raise MemoryError("stackdist: cannot compact the time positions")
    for w in range(nwords):
        rank[w] = run
        run += sd_popcount(st.bits[w])
    # new time = ones before the old time
    for i in range(st.map_cap):
        if st.slots[i].vpn != SD_EMPTY:
            t = <intp_t>st.slots[i].time
            st.slots[i].time = <uint64_t>(rank[t >> 6] + sd_popcount(
                st.bits[t >> 6] & (((<uint64_t>1) << (t & 63)) - 1)))
    free(rank)
    while cap < 2 * live:
        cap *= 2
    _times_alloc(st, cap, live)
    st.compactions += 1
    return 0


cdef inline intp_t _touch(SDState* st, uint64_t vpn) except -1 nogil:
    """Access `vpn` in the fully associative stack: its distance, 0 on a first touch."""
    cdef intp_t i, p, d, t
    if st.now == st.fen_cap:
        _compact(st)
    t = st.now
    i = _map_find(st, vpn)
    if i >= 0:
        p = <intp_t>st.slots[i].time
        d = st.map_count - _ones_upto(st, p) + 1
        _clear_pos(st, p)
        st.slots[i].time = <uint64_t>t
    else:
        if 2 * (st.map_count + 1) > st.map_cap:
            _map_grow(st)
            i = _map_find(st, vpn)
        i = -1 - i
        st.slots[i].vpn = vpn
        st.slots[i].time = <uint64_t>t
        st.map_count += 1
        d = 0
    _set_pos(st, t)
    st.now = t + 1
    return d


cdef void _drop(SDState* st, uint64_t vpn) noexcept nogil:
    """Remove a live page from the stack (SHARDS fixed size)."""
    cdef intp_t i = _map_find(st, vpn)
    if i < 0:
        return
    _clear_pos(st, <intp_t>st.slots[i].time)
    _map_delete(st, i)


# ---------------------------------------------------------------------------- histograms
cdef int _hist_grow(SDState* st, intp_t d) except -1 nogil:
    cdef intp_t cap = st.hist_cap
    cdef int64_t* h
    while cap <= d:
        cap *= 2
    if st.max_distance and cap > st.max_distance + 1:
        cap = st.max_distance + 1
    h = <int64_t*>realloc(st.hist, cap * sizeof(int64_t))
    if h == NULL:
        with gil:
            raise MemoryError(f"stackdist: cannot grow the histogram to {cap} distances")
    memset(h + st.hist_cap, 0, (cap - st.hist_cap) * sizeof(int64_t))
    st.hist = h
    st.hist_cap = cap
    return 0


cdef inline int _hist_add(SDState* st, intp_t d) except -1 nogil:
    if d >= st.hist_cap:
        if st.max_distance and d > st.max_distance:
            st.beyond += 1
            return 0
        _hist_grow(st, d)
    st.hist[d] += 1
    if d >= st.hist_len:
        st.hist_len = d + 1
    return 0


cdef void _whist_add(SDState* st, double sd, double w) noexcept nogil:
    cdef uint64_t b
    cdef intp_t j, half
    if sd > MAX_SCALED:
        sd = MAX_SCALED
    b = (<uint64_t>sd) >> st.wshift
    while b >= <uint64_t>st.whist_cap:
        # twice as wide buckets: merge neighbours
        half = st.whist_cap // 2
        for j in range(half):
            st.whist[j] = st.whist[2 * j] + st.whist[2 * j + 1]
        for j in range(half, st.whist_cap):
            st.whist[j] = 0.0
        st.wshift += 1
        st.whist_len = (st.whist_len + 1) // 2
        b >>= 1
    st.whist[b] += w
    if <intp_t>b >= st.whist_len:
        st.whist_len = <intp_t>b + 1


# --------------------------------------------------------------------------------- heap
cdef void _heap_push(SDState* st, uint64_t h, uint64_t vpn) noexcept nogil:
    cdef intp_t i = st.heap_n, parent
    st.heap_n += 1
    while i > 0:
        parent = (i - 1) >> 1
        if st.heap_hash[parent] >= h:
            break
        st.heap_hash[i] = st.heap_hash[parent]
        st.heap_vpn[i] = st.heap_vpn[parent]
        i = parent
    st.heap_hash[i] = h
    st.heap_vpn[i] = vpn


cdef void _heap_pop(SDState* st) noexcept nogil:
    """Remove the top (largest hash)."""
    cdef intp_t n = st.heap_n - 1, i = 0, c
    cdef uint64_t h = st.heap_hash[n], vpn = st.heap_vpn[n]
    st.heap_n = n
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and st.heap_hash[c + 1] > st.heap_hash[c]:
            c += 1
        if st.heap_hash[c] <= h:
            break
        st.heap_hash[i] = st.heap_hash[c]
        st.heap_vpn[i] = st.heap_vpn[c]
        i = c
    if n > 0:
        st.heap_hash[i] = h
        st.heap_vpn[i] = vpn


# ------------------------------------------------------------------------------ kernels
cdef int sd_init(SDState* st, uint32_t mode, uint32_t shift, intp_t max_distance,
                 intp_t sets, intp_t ways, uint64_t tmax, intp_t sample_size,
                 uint64_t seed, intp_t whist_buckets) except -1 nogil:
    cdef intp_t i
    memset(st, 0, sizeof(SDState))
    if mode > SD_SHARDS_SIZE:
        with gil:
            raise ValueError(f"stackdist: unknown mode {mode}")
    if shift > 63:
        with gil:
            raise ValueError(f"stackdist: page shift {shift} is not below 64")
    if max_distance < 0:
        with gil:
            raise ValueError("stackdist: max_distance must be >= 0 (0: unbounded)")
    if mode == SD_SETS and (sets < 1 or ways < 1 or ways > SD_MAX_WAYS):
        with gil:
            raise ValueError(f"stackdist: sets must be >= 1 and ways in 1..{SD_MAX_WAYS}, "
                             f"got {sets} sets, {ways} ways")
    if mode == SD_SHARDS_SIZE and (sample_size < 1 or whist_buckets < 2
                                   or (whist_buckets & (whist_buckets - 1)) != 0):
        with gil:
            raise ValueError("stackdist: fixed-size SHARDS needs sample_size >= 1 and a "
                             "power-of-two number (>= 2) of histogram buckets")
    st.mode = mode
    st.shift = shift
    st.max_distance = max_distance
    st.last_vpn = SD_EMPTY
    st.hash_key = splitmix64(seed)
    st.tmax = tmax if (mode == SD_SHARDS_RATE) else (~(<uint64_t>0))
    st.inv_rate = sd_inv_rate(st.tmax)
    if mode == SD_SETS:
        st.sets = sets
        st.ways = ways
        st.max_distance = ways
        st.hist_cap = ways + 1
        st.sets_pow2 = (sets & (sets - 1)) == 0
        st.set_mask = <uint64_t>(sets - 1) if st.sets_pow2 else 0
        if not st.sets_pow2:
            sd_fastmod_init(<uint64_t>sets, &st.fm_lo, &st.fm_hi)
        st.stack = <uint64_t*>malloc(sets * ways * sizeof(uint64_t))
        st.depth = <uint32_t*>calloc(sets, sizeof(uint32_t))
        if st.stack == NULL or st.depth == NULL:
            sd_free(st)
            with gil:
                raise MemoryError(f"stackdist: cannot allocate {sets} x {ways} stacks")
        for i in range(sets * ways):
            st.stack[i] = SD_EMPTY
    else:
        st.hist_cap = 1024
        if max_distance and st.hist_cap > max_distance + 1:
            st.hist_cap = max_distance + 1
        if st.hist_cap < 2:
            st.hist_cap = 2
        if _map_alloc(st, 16) < 0:
            sd_free(st)
            return -1
        if _times_alloc(st, SD_MIN_TIMES, 0) < 0:
            sd_free(st)
            return -1
    if mode == SD_SHARDS_SIZE:
        st.sample_size = sample_size
        st.heap_hash = <uint64_t*>malloc((sample_size + 1) * sizeof(uint64_t))
        st.heap_vpn = <uint64_t*>malloc((sample_size + 1) * sizeof(uint64_t))
        st.whist = <double*>calloc(whist_buckets, sizeof(double))
        st.whist_cap = whist_buckets
        if st.heap_hash == NULL or st.heap_vpn == NULL or st.whist == NULL:
            sd_free(st)
            with gil:
                raise MemoryError("stackdist: cannot allocate the SHARDS sample")
    st.hist = <int64_t*>calloc(st.hist_cap, sizeof(int64_t))
    if st.hist == NULL:
        sd_free(st)
        with gil:
            raise MemoryError("stackdist: cannot allocate the histogram")
    st.hist_len = 1
    return 0


cdef void sd_free(SDState* st) noexcept nogil:
    free(st.hist)
    free(st.slots)
    free(st.fen)
    free(st.bits)
    free(st.stack)
    free(st.depth)
    free(st.heap_hash)
    free(st.heap_vpn)
    free(st.whist)
    st.hist = NULL
    st.slots = NULL
    st.fen = NULL
    st.bits = NULL
    st.stack = NULL
    st.depth = NULL
    st.heap_hash = NULL
    st.heap_vpn = NULL
    st.whist = NULL
    st.hist_cap = 0
    st.map_cap = 0
    st.fen_cap = 0
    st.whist_cap = 0


cdef int _feed_exact(SDState* st, const uint64_t* addr, const uint8_t* op,
                     intp_t n) except -1 nogil:
    cdef intp_t i, d
    cdef uint64_t vpn, last = st.last_vpn
    cdef uint32_t shift = st.shift
    cdef bint valid = st.last_valid
    cdef uint64_t acc = 0, repeats = 0
    for i in range(n):
        if op != NULL and op[i] > OP_MODIFY:
            continue
        acc += 1
        vpn = addr[i] >> shift
        if valid and vpn == last:
            repeats += 1                # distance 1: the page is on top of the stack
            continue
        last = vpn
        valid = True
        d = _touch(st, vpn)
        if d == 0:
            st.cold += 1
        else:
            _hist_add(st, d)
    st.hist[1] += <int64_t>repeats
    if repeats and st.hist_len < 2:
        st.hist_len = 2
    st.accesses += acc
    st.sampled += acc
    st.last_vpn = last
    st.last_valid = valid
    return 0


cdef int _feed_sets(SDState* st, const uint64_t* addr, const uint8_t* op,
                    intp_t n) except -1 nogil:
    cdef intp_t i, k, depth, ways = st.ways
    cdef uint64_t vpn, last = st.last_vpn, s
    cdef uint64_t* base
    cdef uint32_t shift = st.shift
    cdef bint valid = st.last_valid
    cdef uint64_t acc = 0
    cdef int64_t* hist = st.hist
    for i in range(n):
        if op != NULL and op[i] > OP_MODIFY:
            continue
        acc += 1
        vpn = addr[i] >> shift
        if valid and vpn == last:
            hist[1] += 1
            continue
        last = vpn
        valid = True
        if st.sets_pow2:
            s = vpn & st.set_mask
        else:
            s = sd_fastmod(vpn, st.fm_lo, st.fm_hi, <uint64_t>st.sets)
        base = st.stack + s * <uint64_t>ways
        depth = st.depth[s]
        k = 0
        while k < depth and base[k] != vpn:
            k += 1
        if k < depth:
            hist[k + 1] += 1
            if k + 1 >= st.hist_len:
                st.hist_len = k + 2
        else:
            st.beyond += 1
            if depth < ways:
                st.depth[s] = <uint32_t>(depth + 1)
            else:
                k = ways - 1            # the least recent page leaves
        memmove(base + 1, base, k * sizeof(uint64_t))
        base[0] = vpn
    if st.hist[1] and st.hist_len < 2:
        st.hist_len = 2
    st.accesses += acc
    st.sampled += acc
    st.last_vpn = last
    st.last_valid = valid
    return 0


cdef int _feed_rate(SDState* st, const uint64_t* addr, const uint8_t* op,
                    intp_t n) except -1 nogil:
    cdef intp_t i, d
    cdef uint64_t vpn, last = st.last_vpn, key = st.hash_key, tmax = st.tmax
    cdef uint32_t shift = st.shift
    cdef bint valid = st.last_valid, sampled = st.last_sampled
    cdef uint64_t acc = 0, nsampled = 0, repeats = 0
    for i in range(n):
        if op != NULL and op[i] > OP_MODIFY:
            continue
        acc += 1
        vpn = addr[i] >> shift
        if valid and vpn == last:
            if sampled:
                repeats += 1
            continue
        last = vpn
        valid = True
        sampled = sd_hash(vpn, key) <= tmax
        if not sampled:
            continue
        nsampled += 1
        d = _touch(st, vpn)
        if d == 0:
            st.cold += 1
        else:
            _hist_add(st, d)
    st.hist[1] += <int64_t>repeats
    if repeats and st.hist_len < 2:
        st.hist_len = 2
    st.accesses += acc
    st.sampled += nsampled + repeats
    st.last_vpn = last
    st.last_valid = valid
    st.last_sampled = sampled
    return 0


cdef int _feed_size(SDState* st, const uint64_t* addr, const uint8_t* op,
                    intp_t n) except -1 nogil:
    cdef intp_t i, d
    cdef uint64_t vpn, h, last = st.last_vpn, key = st.hash_key, top_vpn
    cdef uint32_t shift = st.shift
    cdef bint valid = st.last_valid, sampled = st.last_sampled
    cdef uint64_t acc = 0
    for i in range(n):
        if op != NULL and op[i] > OP_MODIFY:
            continue
        acc += 1
        vpn = addr[i] >> shift
        if valid and vpn == last:
            if sampled:
                st.sampled += 1
                st.weight_sum += st.inv_rate
                _whist_add(st, 1.0, st.inv_rate)
            continue
        last = vpn
        valid = True
        h = sd_hash(vpn, key)
        sampled = h <= st.tmax
        if not sampled:
            continue
        st.sampled += 1
        st.weight_sum += st.inv_rate
        d = _touch(st, vpn)
        if d != 0:
            _whist_add(st, sd_scaled(<uint64_t>d, st.inv_rate), st.inv_rate)
            continue
        st.cold += 1
        st.wcold += st.inv_rate
        _heap_push(st, h, vpn)
        if st.map_count > st.sample_size:
            # the page of the largest hash leaves; the threshold drops below its hash
            top_vpn = st.heap_vpn[0]
            st.tmax = st.heap_hash[0] - 1
            _heap_pop(st)
            _drop(st, top_vpn)
            st.inv_rate = sd_inv_rate(st.tmax)
            st.evictions += 1
            if top_vpn == vpn:
                sampled = False
    st.accesses += acc
    st.last_vpn = last
    st.last_valid = valid
    st.last_sampled = sampled
    return 0


cdef int sd_feed(SDState* st, const uint64_t* addr, const uint8_t* op, intp_t n) except -1 nogil:
    if n <= 0:
        return 0
    if st.hist == NULL:
        with gil:
            raise ValueError("stackdist: the state is not initialised")
    if st.mode == SD_EXACT:
        return _feed_exact(st, addr, op, n)
    if st.mode == SD_SETS:
        return _feed_sets(st, addr, op, n)
    if st.mode == SD_SHARDS_RATE:
        return _feed_rate(st, addr, op, n)
    return _feed_size(st, addr, op, n)


# ---------------------------------------------------------------------- Python surface
def page_hashes(const uint64_t[::1] vpns not None, uint64_t seed=0):
    """The SHARDS hashes of page numbers for `seed` (what decides which are sampled).

    >>> import numpy as np
    >>> h = page_hashes(np.arange(4, dtype=np.uint64), seed=1)
    >>> h.dtype, len(set(h.tolist()))
    (dtype('uint64'), 4)
    """
    cdef intp_t i, n = vpns.shape[0]
    cdef uint64_t key = splitmix64(seed)
    out = np.empty(n, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    with nogil:
        for i in range(n):
            o[i] = sd_hash(vpns[i], key)
    return out


cdef class StackDistCore:
    """One stack-distance state: feed address chunks, read the histograms.

    ``mode`` is a code of ``MODES``; ``shift`` the page shift. ``max_distance`` bounds the
    histogram of the exact and fixed-rate modes (0: unbounded); ``sets``/``ways`` the
    set-associative mode; ``tmax`` the fixed-rate threshold (a page is sampled when its
    hash is <= tmax); ``sample_size`` and ``whist_buckets`` the fixed-size mode.

    >>> import numpy as np
    >>> core = StackDistCore(MODES["exact"], 12)
    >>> core.feed(np.array([0, 4096, 0, 8192, 4096], dtype=np.uint64))
    >>> core.histogram().tolist(), core.cold     # distances 2 (page 0) and 3 (page 1)
    ([0, 0, 1, 1], 3)
    """

    def __cinit__(self, uint32_t mode, uint32_t shift, intp_t max_distance=0, intp_t sets=1,
                  intp_t ways=1, uint64_t tmax=0xFFFFFFFFFFFFFFFF, intp_t sample_size=0,
                  uint64_t seed=0, intp_t whist_buckets=0):
        sd_init(&self.st, mode, shift, max_distance, sets, ways, tmax, sample_size, seed,
                whist_buckets)

    def __dealloc__(self):
        sd_free(&self.st)

    cdef SDState* state(self) noexcept:
        return &self.st

    def feed(self, const uint64_t[::1] addr not None, const uint8_t[::1] op=None):
        """Feed one chunk of byte addresses (``op``: the op codes; None: all loads)."""
        cdef intp_t n = addr.shape[0]
        cdef const uint8_t* ops = NULL
        if op is not None:
            if op.shape[0] != n:
                raise ValueError(f"op has {op.shape[0]} entries for {n} addresses")
            if n:
                ops = &op[0]
        if n == 0:
            return
        with nogil:
            sd_feed(&self.st, &addr[0], ops, n)

    def histogram(self):
        """int64 array: entry d (>= 1) counts the accesses of stack distance d (sampled
        distance in the fixed-rate mode, associativity in the set-associative mode)."""
        cdef intp_t i, n = self.st.hist_len
        out = np.zeros(n, dtype=np.int64)
        cdef int64_t[::1] o = out
        for i in range(n):
            o[i] = self.st.hist[i]
        return out

    def weighted_histogram(self):
        """float64 array (fixed-size SHARDS): bucket b sums 1/rate over the sampled
        accesses whose scaled distance has floor in [b << wshift, (b + 1) << wshift)."""
        cdef intp_t i, n = self.st.whist_len if self.st.whist != NULL else 0
        out = np.zeros(n, dtype=np.float64)
        cdef double[::1] o = out
        for i in range(n):
            o[i] = self.st.whist[i]
        return out

    def nbytes(self):
        """Bytes of memory the state holds."""
        cdef SDState* s = &self.st
        return int(s.hist_cap * 8 + s.map_cap * sizeof(SDSlot) + s.fen_cap // 8 + s.fen_cap // 16 + 4
                   + s.sets * s.ways * 8 + s.sets * 4 + s.whist_cap * 8
                   + (s.sample_size + 1) * 16 * (s.heap_hash != NULL))

    @property
    def mode(self): return self.st.mode
    @property
    def shift(self): return self.st.shift
    @property
    def accesses(self): return self.st.accesses
    @property
    def cold(self): return self.st.cold
    @property
    def beyond(self): return self.st.beyond
    @property
    def sampled(self): return self.st.sampled
    @property
    def distinct(self):
        """Pages held: distinct pages (exact), sampled pages (SHARDS)."""
        return self.st.map_count
    @property
    def sets(self): return self.st.sets
    @property
    def ways(self): return self.st.ways
    @property
    def max_distance(self): return self.st.max_distance
    @property
    def tmax(self): return self.st.tmax
    @property
    def inv_rate(self): return self.st.inv_rate
    @property
    def weight_sum(self): return self.st.weight_sum
    @property
    def weight_cold(self): return self.st.wcold
    @property
    def wshift(self): return self.st.wshift
    @property
    def evictions(self): return self.st.evictions
    @property
    def compactions(self): return self.st.compactions
    @property
    def sample_size(self): return self.st.sample_size
