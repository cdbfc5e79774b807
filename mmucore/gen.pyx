# Workload generators (issue 5): the nogil kernels behind pyapi.workloads.
#
# Every kernel fills caller-owned columns for a run of consecutive accesses and leaves
# its state ready for the next run, so a stream cut into chunks of any sizes is the same
# stream. Counter-based streams (uniform, gups, zipf) compute access i from (key, i)
# alone; the loop-nest streams (stride, matmul, stream) carry their loop counters; the
# data-structure streams (pointer_chase, bfs) carry their position in precomputed
# arrays. docs/workloads.md is the statement of each stream; tests/reference_gen.py
# the pure-Python oracle that must agree exactly.
#
# zipf has two exact samplers of the rank. The default ("table") is rejection from a
# step hat over ~64 ln(pages) rank bins whose bin is picked by Vose's alias method
# (M. D. Vose, IEEE TSE 17(9), 1991); pyapi.workloads.zipf_table builds the bins. The
# other is rejection-inversion (W. Hormann and G. Derflinger, "Rejection-inversion to
# generate variates from monotone discrete distributions", ACM TOMACS 6(3), 1996,
# 169-184) in the form of Apache Commons RNG's RejectionInversionZipfSampler, whose
# integral H(x) = (x**(1-a) - 1)/(1-a) (log x at a = 1) works for every a > 0: O(1)
# memory, a log1p and an exp per draw.
from mmucore._types cimport (uint8_t, uint16_t, uint32_t, uint64_t, vaddr_t, intp_t,
                             OP_LOAD, OP_STORE, OP_MODIFY)
from mmucore._rng cimport splitmix64

import numpy as np

cdef extern from *:
    """
    #include <math.h>
    /* The floating-point steps of the zipf sampler, kept free of fused multiply-adds
       (-march=native may otherwise contract them) so that they round exactly like the
       pure-Python reference in tests/reference_gen.py. */
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC push_options
    #pragma GCC optimize ("fp-contract=off")
    #endif
    #define MMUCORE_ZIPF_TAYLOR 1e-8
    /* log(1 + x) / x, Taylor series near 0 */
    static double mmucore_zipf_helper1(double x) {
        if (fabs(x) > MMUCORE_ZIPF_TAYLOR) return log1p(x) / x;
        return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
    }
    /* (exp(x) - 1) / x, Taylor series near 0 */
    static double mmucore_zipf_helper2(double x) {
        if (fabs(x) > MMUCORE_ZIPF_TAYLOR) return expm1(x) / x;
        return 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
    }
    /* H(x) = (x**(1-a) - 1) / (1 - a), log(x) when a = 1 */
    static double mmucore_zipf_H(double x, double a) {
        double lx = log(x);
        return mmucore_zipf_helper2((1.0 - a) * lx) * lx;
    }
    /* h(x) = x**-a */
    static double mmucore_zipf_h(double x, double a) {
        return exp(-a * log(x));
    }
    /* the inverse of H */
    static double mmucore_zipf_Hinv(double x, double a) {
        double t = x * (1.0 - a);
        if (t < -1.0) t = -1.0;
        return exp(mmucore_zipf_helper1(t) * x);
    }
    /* hxn + U * span: u uniform in (H(1.5) - 1, H(pages + 0.5)] */
    static double mmucore_zipf_u(double hxn, double span, double U) {
        double p = U * span;
        return hxn + p;
    }
    /* (lo / k)**a */
    static double mmucore_zipf_pow_ratio(double lo, double k, double a) {
        return exp(a * log(lo / k));
    }
    /* the acceptance bound H(k + 0.5) - h(k) */
    static double mmucore_zipf_bound(double k, double a) {
        return mmucore_zipf_H(k + 0.5, a) - mmucore_zipf_h(k, a);
    }
    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC pop_options
    #endif
    """
    double zipf_H "mmucore_zipf_H"(double x, double a) noexcept nogil
    double zipf_h "mmucore_zipf_h"(double x, double a) noexcept nogil
    double zipf_Hinv "mmucore_zipf_Hinv"(double x, double a) noexcept nogil
    double zipf_u "mmucore_zipf_u"(double hxn, double span, double U) noexcept nogil
    double zipf_bound "mmucore_zipf_bound"(double k, double a) noexcept nogil
    double zipf_pow_ratio "mmucore_zipf_pow_ratio"(double lo, double k, double a) noexcept nogil


# ---------------------------------------------------------------------------- kernels
cdef void uniform_fill(const UniformGen* g, uint64_t start, intp_t m, vaddr_t* addr,
                       uint8_t* op, uint16_t* size) noexcept nogil:
    cdef intp_t k
    cdef uint64_t i = start
    cdef uint64_t key = g.key, base = g.base, slots = g.slots, align = g.align
    cdef uint64_t thresh = g.store_thresh, okey = g.op_key
    cdef uint8_t op0 = g.op
    cdef uint16_t sz = g.size
    cdef uint8_t flip = op0 ^ OP_STORE, st
    if thresh == 0:
        for k in range(m):
            addr[k] = base + mulhi64(splitmix64(key + i * GEN_GOLDEN), slots) * align
            op[k] = op0
            size[k] = sz
            i += 1
    else:
        for k in range(m):
            addr[k] = base + mulhi64(splitmix64(key + i * GEN_GOLDEN), slots) * align
            # STORE when the draw is below the threshold; arithmetic, not a branch
            st = <uint8_t>((splitmix64(okey + i * GEN_GOLDEN) >> 11) < thresh)
            op[k] = op0 ^ (flip & (<uint8_t>0 - st))
            size[k] = sz
            i += 1


cdef void stride_fill(StrideGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                      uint16_t* size) noexcept nogil:
    cdef intp_t k
    cdef uint64_t off = g.off, fp = g.footprint, step = g.step, base = g.base
    cdef uint16_t sz = g.size
    for k in range(m):
        addr[k] = base + off
        op[k] = OP_LOAD
        size[k] = sz
        # off + step < 2 * footprint <= 2**64 is not guaranteed: compare before adding
        if off >= fp - step:
            off = off - (fp - step)
        else:
            off = off + step
    g.off = off


cdef uint64_t zipf_rank_ri(const ZipfGen* g, uint64_t sub) noexcept nogil:
    # rejection-inversion, attempt r uses draw r + 2 of the sub-stream
    cdef uint64_t t = 1, k
    cdef double u, x, kd
    while True:
        u = zipf_u(g.hxn, g.span, unit_double(sub_draw(sub, t + 1)))
        t += 1
        x = zipf_Hinv(u, g.alpha)
        kd = x + 0.5
        if kd < 1.0:
            k = 1
        elif kd >= g.pages_d:
            k = g.pages
        else:
            k = <uint64_t>kd
        if <double>k - x <= g.s or u >= zipf_bound(<double>k, g.alpha):
            return k


cdef uint64_t zipf_rank_table(const ZipfGen* g, uint64_t sub) noexcept nogil:
    # Rejection from a step hat: bin j holds ranks [lo, lo + count) with hat weight
    # count * lo**-alpha. Pick a bin by the alias table (draw b: row mulhi(b, bins); the
    # row's own bin when the low word b * bins < THRESH, else its alias bin), a rank
    # k = lo + mulhi(x, count) inside it (draw x), and accept k with probability
    # (lo / k)**alpha, tested with the low word f = x * count: at once when
    # (f >> 32) < SQUEEZE, else exactly, (f >> 11) * 2**-53 < (lo / k)**alpha.
    # Attempt 0 uses b = draw 0 (= sub) and x = draw 2; attempt r >= 1 uses draws
    # 2r + 1 and 2r + 2.
    cdef uint64_t r = 0, b = sub, x, lo, cnt, k, frac, j, thresh
    cdef uint64_t sel
    cdef const uint32_t* row
    while True:
        frac = mul128(b, g.nbins, &j)
        row = g.table + j * ZIPF_COLS
        thresh = (<uint64_t>row[ZCOL_THRESH_HI] << 32) | row[ZCOL_THRESH_LO]
        sel = <uint64_t>(frac >= thresh)
        lo = row[ZCOL_LO + sel]
        cnt = row[ZCOL_COUNT + sel]
        x = sub_draw(sub, 2 * r + 2)
        frac = mul128(x, cnt, &k)
        k += lo
        if (frac >> 32) < row[ZCOL_SQUEEZE + sel] or k == lo:
            return k
        if unit_double(frac) < zipf_pow_ratio(<double>lo, <double>k, g.alpha):
            return k
        r += 1
        b = sub_draw(sub, 2 * r + 1)


cdef inline uint64_t _zipf_rank_table(const ZipfGen* g, uint64_t sub) noexcept nogil:
    # zipf_rank_table's first attempt, inlined into the fill loop; the rare draws that
    # the squeeze does not accept at once go through the full loop (which repeats
    # attempt 0 exactly, then goes on)
    cdef uint64_t x, lo, cnt, k, frac, j, thresh, sel
    cdef const uint32_t* row
    frac = mul128(sub, g.nbins, &j)
    row = g.table + j * ZIPF_COLS
    thresh = (<uint64_t>row[ZCOL_THRESH_HI] << 32) | row[ZCOL_THRESH_LO]
    sel = <uint64_t>(frac >= thresh)
    lo = row[ZCOL_LO + sel]
    cnt = row[ZCOL_COUNT + sel]
    x = sub_draw(sub, 2)
    frac = mul128(x, cnt, &k)
    k += lo
    if (frac >> 32) < row[ZCOL_SQUEEZE + sel] or k == lo:
        return k
    return zipf_rank_table(g, sub)


cdef inline uint64_t zipf_perm_once(const ZipfGen* g, uint64_t x) noexcept nogil:
    # one application of the bijection of [0, 2**bits): two add-multiply-xorshift rounds
    # (each step is a bijection of b-bit words: adding a key, multiplying by an odd
    # constant, x ^ (x >> sh) with sh >= 1)
    cdef uint64_t mask = g.perm_mask
    cdef uint32_t sh = g.perm_shift
    x = ((x + g.perm_k[0]) * <uint64_t>0xBF58476D1CE4E5B9) & mask
    x ^= x >> sh
    x = ((x + g.perm_k[1]) * <uint64_t>0x94D049BB133111EB) & mask
    x ^= x >> sh
    return x


cdef uint64_t zipf_page(const ZipfGen* g, uint64_t rank) noexcept nogil:
    # cycle walking: apply the bijection until the value is back in [0, pages)
    cdef uint64_t x = zipf_perm_once(g, rank - 1)
    while x >= g.pages:
        x = zipf_perm_once(g, x)
    return x


cdef void zipf_fill(const ZipfGen* g, uint64_t start, intp_t m, vaddr_t* addr,
                    uint8_t* op, uint16_t* size) noexcept nogil:
    # Blocks of ZIPF_BLOCK accesses in three passes, so that no branch depends on a
    # random value (a mispredicted branch per access would cost more than the work):
    # 1. ranks (minus 1) into addr, offsets into offs; 2. pages: the hottest ranks from
    # the `hot` table, the others through the bijection, applied to a list of those
    # still >= pages until none is left (the same pages as zipf_page's cycle walk);
    # 3. the addresses.
    cdef uint64_t offs[ZIPF_BLOCK]
    cdef uint32_t redo[ZIPF_BLOCK]
    cdef intp_t done = 0, bm, k, t, nre, n2
    cdef uint64_t i = start, sub, y, pages = g.pages, base = g.base
    cdef uint64_t nhot = g.nhot, cold, hot_page
    cdef const uint64_t* hot = g.hot
    cdef uint32_t shift = g.page_shift
    cdef uint64_t* out
    cdef uint16_t sz = g.size
    while done < m:
        bm = m - done
        if bm > ZIPF_BLOCK:
            bm = ZIPF_BLOCK
        out = addr + done
        if g.method == ZIPF_TABLE:
            for k in range(bm):
                sub = splitmix64(g.key + i * GEN_GOLDEN)
                offs[k] = mulhi64(sub_draw(sub, 1), g.offset_slots) << g.align_shift
                out[k] = _zipf_rank_table(g, sub) - 1
                i += 1
        else:
            for k in range(bm):
                sub = splitmix64(g.key + i * GEN_GOLDEN)
                offs[k] = mulhi64(sub_draw(sub, 1), g.offset_slots) << g.align_shift
                out[k] = zipf_rank_ri(g, sub) - 1
                i += 1
        # ranks below nhot: the precomputed page; the others go to the walk list
        nre = 0
        for k in range(bm):
            y = out[k]
            cold = <uint64_t>(y >= nhot)
            hot_page = hot[y & (cold - 1)]          # y if hot, else 0 (a valid index)
            out[k] = (y & (<uint64_t>0 - cold)) | (hot_page & (cold - 1))
            redo[nre] = <uint32_t>k
            nre += <intp_t>cold
        while nre > 0:
            n2 = 0
            for t in range(nre):
                k = redo[t]
                y = zipf_perm_once(g, out[k])
                out[k] = y
                redo[n2] = <uint32_t>k
                n2 += <intp_t>(y >= pages)
            nre = n2
        for k in range(bm):
            out[k] = base + (out[k] << shift) + offs[k]
        done += bm
    for k in range(m):
        op[k] = OP_LOAD
    for k in range(m):
        size[k] = sz


cdef void chase_fill(ChaseGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                     uint16_t* size) noexcept nogil:
    # The cycle was walked once at construction (cycle_order), so the stream reads
    # `order` sequentially instead of chasing `next` (whose random loads would make the
    # generator as slow as the pointer chase it models).
    cdef intp_t k
    cdef uint64_t t = g.t, nodes = g.nodes, base = g.base, nb = g.node_bytes
    cdef const uint32_t* order = g.order
    cdef uint16_t sz = g.size
    for k in range(m):
        addr[k] = base + order[t] * nb
        op[k] = OP_LOAD
        size[k] = sz
        t += 1
        if t == nodes:
            t = 0
    g.t = t


cdef void matmul_fill(MatmulGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                      uint16_t* size) noexcept nogil:
    cdef intp_t k
    cdef uint64_t n = g.nsize, b = g.block, nt = g.ntiles, el = g.elem
    cdef uint64_t last = 2 * b + 1
    cdef uint64_t ti = g.ti, tj = g.tj, tk = g.tk, i = g.i, j = g.j, r = g.r
    cdef uint64_t row, col, kk
    cdef uint16_t sz = g.size
    for k in range(m):
        row = ti * b + i
        col = tj * b + j
        size[k] = sz
        if r == 0:
            addr[k] = g.base_c + (row * n + col) * el
            op[k] = OP_LOAD
        elif r == last:
            addr[k] = g.base_c + (row * n + col) * el
            op[k] = OP_STORE
        else:
            kk = tk * b + ((r - 1) >> 1)
            if (r & 1) == 1:
                addr[k] = g.base_a + (row * n + kk) * el
            else:
                addr[k] = g.base_b + (kk * n + col) * el
            op[k] = OP_LOAD
        # advance: r, then j, i inside the tile, then tiles tk, tj, ti
        r += 1
        if r > last:
            r = 0
            j += 1
            if j == b:
                j = 0
                i += 1
                if i == b:
                    i = 0
                    tk += 1
                    if tk == nt:
                        tk = 0
                        tj += 1
                        if tj == nt:
                            tj = 0
                            ti += 1
    g.ti = ti
    g.tj = tj
    g.tk = tk
    g.i = i
    g.j = j
    g.r = r


cdef void stream_fill(StreamGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                      uint16_t* size) noexcept nogil:
    cdef intp_t k
    cdef uint64_t i = g.i, ne = g.n_elements, el = g.elem
    cdef uint32_t r = g.r, per = g.per
    cdef uint16_t sz = g.size
    for k in range(m):
        addr[k] = g.step_base[r] + i * el
        op[k] = g.step_op[r]
        size[k] = sz
        r += 1
        if r == per:
            r = 0
            i += 1
            if i == ne:
                i = 0
    g.i = i
    g.r = r


cdef void bfs_fill(BfsGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                   uint16_t* size) noexcept nogil:
    cdef intp_t k = 0
    cdef uint64_t V = g.vertices, u
    cdef uint32_t ph = g.phase
    cdef uint64_t r = g.r, head = g.head, tail = g.tail, v = g.v, e = g.e, eend = g.eend
    while k < m:
        if ph == BFS_SCAN:
            if r >= V:                      # the stream is over (n was reached)
                break
            addr[k] = g.base_visited + r
            op[k] = OP_LOAD
            size[k] = 1
            k += 1
            if tail < V and g.order[tail] == r:
                ph = BFS_ROOT_MARK
            else:
                r += 1
        elif ph == BFS_ROOT_MARK:
            addr[k] = g.base_visited + r
            op[k] = OP_STORE
            size[k] = 1
            k += 1
            ph = BFS_ROOT_PUSH
        elif ph == BFS_ROOT_PUSH:
            addr[k] = g.base_queue + tail * 4
            op[k] = OP_STORE
            size[k] = 4
            k += 1
            tail += 1
            r += 1
            ph = BFS_POP
        elif ph == BFS_POP:
            if head == tail:
                ph = BFS_SCAN
                continue
            addr[k] = g.base_queue + head * 4
            op[k] = OP_LOAD
            size[k] = 4
            k += 1
            v = g.order[head]
            head += 1
            ph = BFS_OFF0
        elif ph == BFS_OFF0:
            addr[k] = g.base_offsets + v * 8
            op[k] = OP_LOAD
            size[k] = 8
            k += 1
            ph = BFS_OFF1
        elif ph == BFS_OFF1:
            addr[k] = g.base_offsets + (v + 1) * 8
            op[k] = OP_LOAD
            size[k] = 8
            k += 1
            e = g.offsets[v]
            eend = g.offsets[v + 1]
            ph = BFS_EDGE
        elif ph == BFS_EDGE:
            if e == eend:
                ph = BFS_POP
                continue
            addr[k] = g.base_edges + e * 4
            op[k] = OP_LOAD
            size[k] = 4
            k += 1
            ph = BFS_VISIT
        elif ph == BFS_VISIT:
            u = g.edges[e]
            addr[k] = g.base_visited + u
            op[k] = OP_LOAD
            size[k] = 1
            k += 1
            # u is newly visited exactly when it is the next vertex of the BFS order
            if tail < V and g.order[tail] == u:
                ph = BFS_MARK
            else:
                e += 1
                ph = BFS_EDGE
        elif ph == BFS_MARK:
            addr[k] = g.base_visited + g.edges[e]
            op[k] = OP_STORE
            size[k] = 1
            k += 1
            ph = BFS_PUSH
        else:                               # BFS_PUSH
            addr[k] = g.base_queue + tail * 4
            op[k] = OP_STORE
            size[k] = 4
            k += 1
            tail += 1
            e += 1
            ph = BFS_EDGE
    g.phase = ph
    g.r = r
    g.head = head
    g.tail = tail
    g.v = v
    g.e = e
    g.eend = eend


cdef intp_t gen_fill(GenState* st, intp_t m, vaddr_t* addr, uint8_t* op,
                     uint16_t* size) noexcept nogil:
    cdef uint64_t left = st.n - st.pos
    if <uint64_t>m > left:
        m = <intp_t>left
    if m <= 0:
        return 0
    if st.kind == GEN_UNIFORM:
        uniform_fill(&st.uni, st.pos, m, addr, op, size)
    elif st.kind == GEN_STRIDE:
        stride_fill(&st.stri, m, addr, op, size)
    elif st.kind == GEN_ZIPF:
        zipf_fill(&st.zipf, st.pos, m, addr, op, size)
    elif st.kind == GEN_CHASE:
        chase_fill(&st.chase, m, addr, op, size)
    elif st.kind == GEN_MATMUL:
        matmul_fill(&st.mm, m, addr, op, size)
    elif st.kind == GEN_STREAM:
        stream_fill(&st.stream, m, addr, op, size)
    else:
        bfs_fill(&st.bfs, m, addr, op, size)
    st.pos += <uint64_t>m
    return m


cdef void draws_below(uint64_t key, uint64_t start, intp_t m, uint64_t bound,
                      uint64_t* out) noexcept nogil:
    cdef intp_t k
    for k in range(m):
        out[k] = mulhi64(splitmix64(key + (start + <uint64_t>k) * GEN_GOLDEN), bound)


cdef void sattolo_cycle(uint32_t* next, uint64_t nodes, uint64_t key) noexcept nogil:
    # perm[] starts as the identity; for i = nodes-1 .. 1 swap perm[i] with perm[j],
    # j = draw i scaled below i (never i itself: that makes one cycle). next[perm[k]] =
    # perm[k+1] closes the cycle; it is built in place in `next` at the end.
    cdef uint64_t i, j, t
    cdef uint32_t* perm
    if nodes == 0:
        return
    perm = next
    for i in range(nodes):
        perm[i] = <uint32_t>i
    i = nodes - 1
    while i >= 1:
        j = mulhi64(splitmix64(key + i * GEN_GOLDEN), i)
        t = perm[i]
        perm[i] = perm[j]
        perm[j] = <uint32_t>t
        i -= 1
    # Sattolo's array a satisfies: the cycle is 0 -> a[0] -> a[a[0]] -> ...; i.e. it
    # already is the successor function (a random cyclic permutation read as next[]).


cdef void cycle_order(const uint32_t* next, uint64_t nodes, uint32_t* order) noexcept nogil:
    cdef uint64_t t, cur = 0
    for t in range(nodes):
        order[t] = <uint32_t>cur
        cur = next[cur]


cdef void csr_random(uint64_t vertices, uint64_t n_edges, uint64_t key_src,
                     uint64_t key_dst, uint64_t* offsets, uint32_t* edges,
                     uint64_t* cursor) noexcept nogil:
    cdef uint64_t e, v, s
    for v in range(vertices + 1):
        offsets[v] = 0
    for e in range(n_edges):
        s = mulhi64(splitmix64(key_src + e * GEN_GOLDEN), vertices)
        offsets[s + 1] += 1
    for v in range(vertices):
        offsets[v + 1] += offsets[v]
        cursor[v] = offsets[v]
    for e in range(n_edges):
        s = mulhi64(splitmix64(key_src + e * GEN_GOLDEN), vertices)
        edges[cursor[s]] = <uint32_t>mulhi64(splitmix64(key_dst + e * GEN_GOLDEN), vertices)
        cursor[s] += 1


cdef void bfs_visit_order(const uint64_t* offsets, const uint32_t* edges,
                          uint64_t vertices, uint32_t* order, uint8_t* visited) noexcept nogil:
    cdef uint64_t root, head = 0, tail = 0, v, e, u
    for root in range(vertices):
        if visited[root]:
            continue
        visited[root] = 1
        order[tail] = <uint32_t>root
        tail += 1
        while head < tail:
            v = order[head]
            head += 1
            for e in range(offsets[v], offsets[v + 1]):
                u = edges[e]
                if not visited[u]:
                    visited[u] = 1
                    order[tail] = <uint32_t>u
                    tail += 1


# ---------------------------------------------------------------------------- Python
#: Generator kinds, name -> GenState.kind.
KINDS = {"uniform": GEN_UNIFORM, "stride": GEN_STRIDE, "zipf": GEN_ZIPF,
         "pointer_chase": GEN_CHASE, "matmul": GEN_MATMUL, "stream": GEN_STREAM,
         "bfs": GEN_BFS}
#: Salts of the random streams, name -> salt (tests/reference_gen.py uses the same).
SALTS = {"uniform_slot": SALT_UNIFORM_SLOT, "uniform_op": SALT_UNIFORM_OP,
         "gups": SALT_GUPS, "zipf_draw": SALT_ZIPF_DRAW, "zipf_perm": SALT_ZIPF_PERM,
         "chase": SALT_CHASE, "bfs_src": SALT_BFS_SRC, "bfs_dst": SALT_BFS_DST}
#: Words per row of a zipf bin table, and the column of each field.
ZIPF_TABLE_COLS = {"thresh_lo": ZCOL_THRESH_LO, "thresh_hi": ZCOL_THRESH_HI,
                   "lo": ZCOL_LO, "alias_lo": ZCOL_LO + 1, "count": ZCOL_COUNT,
                   "alias_count": ZCOL_COUNT + 1, "squeeze": ZCOL_SQUEEZE,
                   "alias_squeeze": ZCOL_SQUEEZE + 1, "width": ZIPF_COLS}
#: sizeof(GenState) in bytes.
STATE_SIZE = sizeof(GenState)


def key_of(uint64_t seed, uint64_t salt):
    """The key of random stream ``salt`` of a generator seeded with ``seed``.

    >>> key_of(0, 1) == key_of(0, 1) != key_of(1, 1)
    True
    """
    return gen_key(seed, salt)


def draws(uint64_t key, uint64_t start, intp_t m, uint64_t bound):
    """Draws ``[start, start + m)`` of the counter-based stream ``key``, each scaled into
    ``[0, bound)`` (``mulhi(draw, bound)``), as a uint64 array.

    >>> a = draws(key_of(0, 1), 0, 5, 10)
    >>> a.dtype.name, bool((a < 10).all()), draws(key_of(0, 1), 3, 2, 10).tolist() == a[3:].tolist()
    ('uint64', True, True)
    """
    if m < 0:
        raise ValueError(f"m must be >= 0, got {m}")
    out = np.empty(m, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    if m:
        with nogil:
            draws_below(key, start, m, bound, &o[0])
    return out


def sattolo(uint64_t nodes, uint64_t seed):
    """``next`` of a random cyclic permutation of ``nodes`` nodes (Sattolo's algorithm,
    seeded): following ``next`` from any node visits every node once, then returns.

    >>> nxt = sattolo(5, 0); node, seen = 0, []
    >>> for _ in range(5): seen.append(node); node = int(nxt[node])
    >>> sorted(seen), node
    ([0, 1, 2, 3, 4], 0)
    """
    if nodes > (<uint64_t>1 << 32):
        raise ValueError(f"at most 2**32 nodes, got {nodes}")
    out = np.empty(nodes, dtype=np.uint32)
    cdef uint32_t[::1] o = out
    cdef uint64_t key = gen_key(seed, SALT_CHASE)
    if nodes:
        with nogil:
            sattolo_cycle(&o[0], nodes, key)
    return out


def cycle(const uint32_t[::1] next not None):
    """The nodes of the cycle ``next`` in visiting order from node 0 (uint32; as long as
    ``next``; only a single cycle through every node gives a permutation).

    >>> cycle(np.array([2, 0, 1], np.uint32)).tolist()
    [0, 2, 1]
    """
    cdef intp_t nodes = next.shape[0]
    if nodes and int(np.asarray(next).max()) >= nodes:
        raise ValueError("next points past the last node")
    out = np.empty(nodes, dtype=np.uint32)
    cdef uint32_t[::1] o = out
    if nodes:
        with nogil:
            cycle_order(&next[0], nodes, &o[0])
    return out


def random_csr(uint64_t vertices, uint64_t n_edges, uint64_t seed):
    """``(offsets, edges)``: a seeded random directed multigraph in CSR form. Edge ``e``
    goes from draw ``e`` of stream ``bfs_src`` to draw ``e`` of stream ``bfs_dst`` (both
    scaled below ``vertices``); the edges of a vertex keep their generation order.

    >>> off, edg = random_csr(4, 6, 0)
    >>> off.dtype.name, edg.dtype.name, int(off[0]), int(off[-1]), len(edg)
    ('uint64', 'uint32', 0, 6, 6)
    """
    if vertices < 1 or vertices > (<uint64_t>1 << 32):
        raise ValueError(f"vertices must be in [1, 2**32], got {vertices}")
    offsets = np.empty(vertices + 1, dtype=np.uint64)
    edges = np.empty(n_edges, dtype=np.uint32)
    cursor = np.empty(vertices, dtype=np.uint64)
    cdef uint64_t[::1] off = offsets
    cdef uint64_t[::1] cur = cursor
    cdef uint32_t[::1] edg = edges
    cdef uint32_t* ep = &edg[0] if n_edges else NULL
    cdef uint64_t ks = gen_key(seed, SALT_BFS_SRC), kd = gen_key(seed, SALT_BFS_DST)
    with nogil:
        csr_random(vertices, n_edges, ks, kd, &off[0], ep, &cur[0])
    return offsets, edges


def bfs_order(const uint64_t[::1] offsets not None, const uint32_t[::1] edges not None):
    """The order in which a BFS from vertex 0, restarted from each unvisited vertex in
    increasing order, enqueues the vertices of the CSR graph ``(offsets, edges)``.

    >>> bfs_order(np.array([0, 1, 1, 2], np.uint64), np.array([2, 1], np.uint32)).tolist()
    [0, 2, 1]
    """
    cdef intp_t nv = offsets.shape[0] - 1
    if nv < 1:
        raise ValueError("offsets must have at least 2 entries")
    if offsets[0] != 0 or offsets[nv] != <uint64_t>edges.shape[0]:
        raise ValueError("offsets must start at 0 and end at len(edges)")
    if edges.shape[0] and int(np.max(edges)) >= nv:
        raise ValueError("an edge points past the last vertex")
    if np.any(np.diff(np.asarray(offsets).view(np.int64)) < 0):
        raise ValueError("offsets must not decrease")
    order = np.empty(nv, dtype=np.uint32)
    visited = np.zeros(nv, dtype=np.uint8)
    cdef uint32_t[::1] o = order
    cdef uint8_t[::1] vis = visited
    cdef const uint32_t* ep = &edges[0] if edges.shape[0] else NULL
    with nogil:
        bfs_visit_order(&offsets[0], ep, nv, &o[0], &vis[0])
    return order


def zipf_constants(uint64_t pages, double alpha):
    """``(hx1, hxn, s)`` of the rejection-inversion sampler over ranks ``1..pages``:
    ``H(1.5) - 1``, ``H(pages + 0.5)`` and the squeeze ``2 - H^-1(H(2.5) - h(2))``.

    >>> hx1, hxn, s = zipf_constants(1000, 1.0)
    >>> round(hxn, 6) == round(__import__("math").log(1000.5), 6)
    True
    """
    return (zipf_H(1.5, alpha) - 1.0, zipf_H(<double>pages + 0.5, alpha),
            2.0 - zipf_Hinv(zipf_H(2.5, alpha) - zipf_h(2.0, alpha), alpha))


cdef class GenCore:
    """One generator's state; ``fill`` writes its next accesses in one nogil call.

    Made by the ``new_*`` class methods (``pyapi.workloads`` validates the arguments
    first; these only reject what would break the kernels).

    >>> g = GenCore.new_stride(n=5, base=0x1000, footprint=256, stride=64, size=8)
    >>> a = np.empty(8, np.uint64); o = np.empty(8, np.uint8); s = np.empty(8, np.uint16)
    >>> g.fill(a, o, s), [hex(x) for x in a[:5]], g.pos, g.fill(a, o, s)
    (5, ['0x1000', '0x1040', '0x1080', '0x10c0', '0x1000'], 5, 0)
    """

    def __cinit__(self):
        self._keep = None

    @staticmethod
    def new_uniform(uint64_t n, uint64_t base, uint64_t slots, uint64_t align,
                    uint64_t seed, uint64_t store_thresh=0, uint8_t op=OP_LOAD,
                    uint16_t size=0, bint gups=False):
        """Uniform slots ``base + align * [0, slots)``; STORE with probability
        ``store_thresh / 2**53``, else ``op``. ``gups`` selects gups' stream key."""
        if slots < 1:
            raise ValueError("slots must be >= 1")
        if store_thresh > (<uint64_t>1 << 53):
            raise ValueError("store_thresh must be <= 2**53")
        cdef GenCore g = GenCore()
        g.st.kind = GEN_UNIFORM
        g.st.n = n
        g.st.uni.key = gen_key(seed, SALT_GUPS if gups else SALT_UNIFORM_SLOT)
        g.st.uni.op_key = gen_key(seed, SALT_UNIFORM_OP)
        g.st.uni.base = base
        g.st.uni.slots = slots
        g.st.uni.align = align
        g.st.uni.store_thresh = store_thresh
        g.st.uni.op = op
        g.st.uni.size = size
        return g

    @staticmethod
    def new_stride(uint64_t n, uint64_t base, uint64_t footprint, uint64_t stride,
                   uint16_t size=0):
        """``base + (i * stride) % footprint`` for access ``i``."""
        if footprint < 1:
            raise ValueError("footprint must be >= 1")
        cdef GenCore g = GenCore()
        g.st.kind = GEN_STRIDE
        g.st.n = n
        g.st.stri.base = base
        g.st.stri.footprint = footprint
        g.st.stri.step = stride % footprint
        g.st.stri.off = 0
        g.st.stri.size = size
        return g

    @staticmethod
    def new_zipf(uint64_t n, uint64_t base, uint64_t pages, uint64_t page_size,
                 uint64_t align, double alpha, uint64_t seed, uint16_t size=0,
                 const uint32_t[:, ::1] table=None):
        """Zipf(alpha) page ranks over ``pages`` pages, scattered by a seeded bijection;
        uniform ``align``-aligned offsets inside the page. With ``table`` (rows of
        ``ZIPF_COLS`` uint32 words, ``pyapi.workloads.zipf_table``) ranks come from the bin
        table, else by rejection-inversion."""
        if pages < 1 or pages > (<uint64_t>1 << 52):
            raise ValueError("pages must be in [1, 2**52]")
        if not alpha > 0:
            raise ValueError("alpha must be > 0")
        if align < 1 or page_size < align or align & (align - 1) or page_size & (page_size - 1):
            raise ValueError("need powers of two 1 <= align <= page_size")
        cdef GenCore g = GenCore()
        cdef uint64_t pkey = gen_key(seed, SALT_ZIPF_PERM)
        cdef uint32_t bits = max(1, int(pages - 1).bit_length())
        cdef int r
        g.st.kind = GEN_ZIPF
        g.st.n = n
        g.st.zipf.key = gen_key(seed, SALT_ZIPF_DRAW)
        g.st.zipf.base = base
        g.st.zipf.pages = pages
        g.st.zipf.page_size = page_size
        g.st.zipf.align = align
        g.st.zipf.offset_slots = page_size // align
        g.st.zipf.page_shift = int(page_size).bit_length() - 1
        g.st.zipf.align_shift = int(align).bit_length() - 1
        g.st.zipf.alpha = alpha
        g.st.zipf.pages_d = <double>pages
        hx1, hxn, s = zipf_constants(pages, alpha)
        g.st.zipf.hx1 = hx1
        g.st.zipf.hxn = hxn
        g.st.zipf.span = hx1 - hxn
        g.st.zipf.s = s
        g.st.zipf.perm_mask = ((<uint64_t>1) << bits) - 1
        g.st.zipf.perm_shift = (bits + 1) // 2
        for r in range(2):
            g.st.zipf.perm_k[r] = counter_draw(pkey, r)
        g.st.zipf.size = size
        cdef uint64_t nhot = min(pages, <uint64_t>ZIPF_HOT), rk
        hot = np.empty(nhot, dtype=np.uint64)
        cdef uint64_t[::1] hv = hot
        for rk in range(nhot):
            hv[rk] = zipf_page(&g.st.zipf, rk + 1)
        g.st.zipf.hot = &hv[0]
        g.st.zipf.nhot = nhot
        g._keep = hot
        g.st.zipf.method = ZIPF_REJECTION_INVERSION
        if table is not None:
            if table.shape[0] < 1 or table.shape[1] != ZIPF_COLS:
                raise ValueError(f"table must have shape (bins, {ZIPF_COLS})")
            tab = np.asarray(table)
            for lo_col, cnt_col in ((ZCOL_LO, ZCOL_COUNT), (ZCOL_LO + 1, ZCOL_COUNT + 1)):
                if (int(tab[:, lo_col].min()) < 1 or int(tab[:, cnt_col].min()) < 1
                        or int((tab[:, lo_col].astype(np.uint64)
                                + tab[:, cnt_col]).max()) > pages + 1):
                    raise ValueError("table: bins must hold ranks in [1, pages]")
            g._keep = (hot, table)
            g.st.zipf.method = ZIPF_TABLE
            g.st.zipf.table = &table[0, 0]
            g.st.zipf.nbins = table.shape[0]
        return g

    @staticmethod
    def new_chase(uint64_t n, uint64_t base, const uint32_t[::1] order not None,
                  uint64_t node_bytes, uint16_t size=0):
        """Loads of ``base + order[i % nodes] * node_bytes``: ``order`` is the cycle as
        visited from node 0 (``cycle_order(next)``)."""
        if order.shape[0] < 1:
            raise ValueError("need at least one node")
        if int(np.asarray(order).max()) >= order.shape[0]:
            raise ValueError("order names a node past the last one")
        cdef GenCore g = GenCore()
        g._keep = order
        g.st.kind = GEN_CHASE
        g.st.n = n
        g.st.chase.order = &order[0]
        g.st.chase.nodes = order.shape[0]
        g.st.chase.t = 0
        g.st.chase.base = base
        g.st.chase.node_bytes = node_bytes
        g.st.chase.size = size
        return g

    @staticmethod
    def new_matmul(uint64_t nsize, uint64_t block, uint64_t elem, uint64_t base_a,
                   uint64_t base_b, uint64_t base_c):
        """C += A.B over row-major ``nsize`` x ``nsize`` matrices in ``block`` tiles."""
        if nsize < 1 or block < 1 or nsize % block:
            raise ValueError("need nsize >= 1 and block dividing nsize")
        cdef GenCore g = GenCore()
        g.st.kind = GEN_MATMUL
        g.st.n = nsize * nsize * (nsize // block) * (2 * block + 2)
        g.st.mm.nsize = nsize
        g.st.mm.block = block
        g.st.mm.ntiles = nsize // block
        g.st.mm.elem = elem
        g.st.mm.base_a = base_a
        g.st.mm.base_b = base_b
        g.st.mm.base_c = base_c
        g.st.mm.size = elem
        return g

    @staticmethod
    def new_stream(uint64_t n_elements, uint64_t iterations, uint64_t elem, bases,
                   ops):
        """One access per (element, step): step ``r`` touches ``bases[r] + i * elem``
        with op ``ops[r]`` (2 or 3 steps)."""
        if not 1 <= len(bases) <= 3 or len(ops) != len(bases) or n_elements < 1:
            raise ValueError("need 1 to 3 steps and n_elements >= 1")
        cdef GenCore g = GenCore()
        cdef int r
        g.st.kind = GEN_STREAM
        g.st.stream.per = len(bases)
        g.st.n = n_elements * iterations * g.st.stream.per
        g.st.stream.n_elements = n_elements
        g.st.stream.elem = elem
        for r in range(len(bases)):
            g.st.stream.step_base[r] = bases[r]
            g.st.stream.step_op[r] = ops[r]
        g.st.stream.size = elem
        return g

    @staticmethod
    def new_bfs(const uint64_t[::1] offsets not None, const uint32_t[::1] edges not None,
                const uint32_t[::1] order not None, uint64_t base_offsets,
                uint64_t base_edges, uint64_t base_visited, uint64_t base_queue):
        """The access stream of a BFS over CSR ``(offsets, edges)`` whose visit order is
        ``order`` (from ``bfs_order``): ``6 * V + 2 * E`` accesses."""
        cdef uint64_t nv = offsets.shape[0] - 1
        if offsets.shape[0] < 2 or order.shape[0] != <intp_t>nv:
            raise ValueError("need V >= 1 and len(order) == V == len(offsets) - 1")
        if offsets[nv] != <uint64_t>edges.shape[0]:
            raise ValueError("offsets must end at len(edges)")
        cdef GenCore g = GenCore()
        g._keep = (offsets, edges, order)
        g.st.kind = GEN_BFS
        g.st.n = 6 * nv + 2 * <uint64_t>edges.shape[0]
        g.st.bfs.offsets = &offsets[0]
        g.st.bfs.edges = &edges[0] if edges.shape[0] else NULL
        g.st.bfs.order = &order[0]
        g.st.bfs.vertices = nv
        g.st.bfs.base_offsets = base_offsets
        g.st.bfs.base_edges = base_edges
        g.st.bfs.base_visited = base_visited
        g.st.bfs.base_queue = base_queue
        g.st.bfs.phase = BFS_SCAN
        return g

    @property
    def kind(self):
        """The generator kind (a value of ``KINDS``)."""
        return self.st.kind

    @property
    def n(self):
        """Accesses in the whole stream."""
        return self.st.n

    @property
    def pos(self):
        """Accesses made so far."""
        return self.st.pos

    def fill(self, uint64_t[::1] addr not None, uint8_t[::1] op not None,
             uint16_t[::1] size not None):
        """Write the next ``min(len(addr), n - pos)`` accesses into the columns; return
        how many (0 at the end of the stream). One nogil call."""
        cdef intp_t m = addr.shape[0], done
        if op.shape[0] != m or size.shape[0] != m:
            raise ValueError("addr, op and size must have the same length")
        if m == 0 or self.st.pos == self.st.n:
            return 0
        with nogil:
            done = gen_fill(&self.st, m, &addr[0], &op[0], &size[0])
        return done

    def seek(self, uint64_t pos):
        """Continue from access ``pos`` (O(1); every kind but bfs, whose state machine
        can only restart at 0)."""
        if pos > self.st.n:
            raise ValueError(f"pos {pos} is past the end ({self.st.n})")
        cdef uint64_t k = self.st.kind, per, grp, b, nt, tile
        if k == GEN_STRIDE:
            self.st.stri.off = (pos * <object>self.st.stri.step) % self.st.stri.footprint
        elif k == GEN_MATMUL:
            b = self.st.mm.block
            nt = self.st.mm.ntiles
            per = 2 * b + 2
            grp = pos // per
            self.st.mm.r = pos % per
            self.st.mm.j = grp % b
            self.st.mm.i = (grp // b) % b
            tile = grp // (b * b)
            self.st.mm.tk = tile % nt
            self.st.mm.tj = (tile // nt) % nt
            self.st.mm.ti = tile // (nt * nt)
        elif k == GEN_STREAM:
            per = self.st.stream.per
            self.st.stream.r = pos % per
            self.st.stream.i = (pos // per) % self.st.stream.n_elements
        elif k == GEN_CHASE:
            self.st.chase.t = pos % self.st.chase.nodes
        elif k == GEN_BFS:
            if pos != 0:
                raise ValueError("bfs streams can only seek to 0")
            else:
                self.st.bfs.phase = BFS_SCAN
                self.st.bfs.r = self.st.bfs.head = self.st.bfs.tail = 0
                self.st.bfs.v = self.st.bfs.e = self.st.bfs.eend = 0
        self.st.pos = pos

    def _py_zipf_rank(self, uint64_t i):
        """The zipf rank (1-based) drawn for access ``i`` (test shim)."""
        if self.st.kind != GEN_ZIPF:
            raise ValueError("not a zipf generator")
        cdef uint64_t sub = splitmix64(self.st.zipf.key + i * GEN_GOLDEN)
        if self.st.zipf.method == ZIPF_TABLE:
            return zipf_rank_table(&self.st.zipf, sub)
        return zipf_rank_ri(&self.st.zipf, sub)

    def _py_zipf_page(self, uint64_t rank):
        """The page of zipf rank ``rank`` (test shim)."""
        if self.st.kind != GEN_ZIPF:
            raise ValueError("not a zipf generator")
        if rank < 1 or rank > self.st.zipf.pages:
            raise ValueError("rank out of range")
        return zipf_page(&self.st.zipf, rank)
