/* A hand-tuned C loop of one fixed MMU configuration: what this machine does when
 * nothing is configurable. bench/mmu.py compiles it (cc -O3, and again with -mavx2
 * where the CPU has AVX2), runs it on the same address stream as mmucore and checks
 * that it reports the same counters, so the rates compare the same work.
 *
 * Configuration (mmucore's Skylake preset, paging="x86_64", 4K pages, one CPU, data
 * loads only, the region pre-mapped so that no walk faults):
 *   dtlb_4k 16 sets x 4 ways, itlb_4k 16 x 8 (never filled here, but an inclusive STLB
 *   victim is still looked up in it), stlb 128 x 12 (inclusive), PSCs PDE 4 x 8,
 *   PDPTE 2 x 4, PML4E 1 x 4; every structure LRU. The semantics are docs/mmu.md's:
 *   L1, then STLB, then a walk that probes the PSCs from the PDE cache up, reads the
 *   levels below the first hit, sets A bits, fills the PSCs of the levels it read above
 *   the leaf, fills the STLB (its victim back-invalidated in both L1 TLBs) and the L1.
 *
 * Specialised as far as it goes: every geometry a constant, each structure a static
 * array of sets, LRU order a nibble word per set, a per-set count of valid entries (an
 * empty set is not searched), the walk unrolled by level, counters in registers, the
 * page tables as 4 KiB frames of one array indexed by frame number (no ASIDs, no global
 * entries, no rights or reserved-bit checks beyond Present, no per-structure counters).
 * A set is searched with one OR of compares (with AVX2: 4 tags per instruction), and
 * by way only when that says it holds the tag.
 *
 * Usage: ceiling_skylake ADDR_FILE BASE SIZE   (ADDR_FILE: raw little-endian uint64 virtual
 * addresses; [BASE, BASE + SIZE) is mapped with 4K pages). Prints one line of
 * key=value: seconds, accesses, l1_hits, l2_hits, walks, walk_refs, psc hits per level,
 * simd (1 with the AVX2 compares).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define INV UINT64_C(0xFFFFFFFFFFFFFFFF)
#define NIB1 UINT64_C(0x1111111111111111)
#define NIB8 UINT64_C(0x8888888888888888)
#define PTE_P UINT64_C(1)
#define PTE_A UINT64_C(0x20)
#define ADDR UINT64_C(0x000FFFFFFFFFF000)
#define INLINE __attribute__((always_inline)) static inline

/* a structure: tags, payloads, LRU order (most recent way in the low nibble), valid count */
#define STRUCTURE(name, S, W)                                                        \
    static uint64_t name##_tag[S][W] __attribute__((aligned(64)));                   \
    static uint64_t name##_data[S][W] __attribute__((unused));                       \
    static uint64_t name##_ord[S];                                                   \
    static int name##_nv[S];
STRUCTURE(l1, 16, 4)
STRUCTURE(l1i, 16, 8)
STRUCTURE(l2, 128, 12)
STRUCTURE(pde, 4, 8)
STRUCTURE(pdp, 2, 4)
STRUCTURE(pml, 1, 4)

/* whether any of W tags equals t */
INLINE int any_eq(const uint64_t *g, int W, uint64_t t) {
#ifdef __AVX2__
    if (W % 4 == 0) {
        __m256i key = _mm256_set1_epi64x((long long)t), m = _mm256_setzero_si256();
        for (int w = 0; w < W; w += 4)
            m = _mm256_or_si256(m, _mm256_cmpeq_epi64(_mm256_loadu_si256((const __m256i *)(g + w)), key));
        return !_mm256_testz_si256(m, m);
    }
#endif
    int a = 0;
    for (int w = 0; w < W; w++) a |= (g[w] == t);
    return a;
}

/* the way holding t, or -1 */
INLINE int find(const uint64_t *g, int W, uint64_t t) {
    if (__builtin_expect(!any_eq(g, W, t), 1)) return -1;
    for (int w = 0; w < W; w++)
        if (g[w] == t) return w;
    return -1;
}

INLINE int nib_pos(uint64_t o, uint64_t w) {
    uint64_t x = o ^ (w * NIB1);
    return __builtin_ctzll((x - NIB1) & ~x & NIB8) >> 2;
}

/* way w becomes the most recent */
INLINE uint64_t to_front(uint64_t o, uint64_t w) {
    uint64_t low = (UINT64_C(1) << (4 * nib_pos(o, w))) - 1, keep = ~((low << 4) | 0xF);
    return (o & keep) | ((o & low) << 4) | w;
}

#define USED(W) ((W) == 16 ? ~UINT64_C(0) : ((UINT64_C(1) << (4 * (W))) - 1))

/* way w (just invalidated) becomes the least recent */
INLINE uint64_t to_back(uint64_t o, int W, uint64_t w) {
    uint64_t low = (UINT64_C(1) << (4 * nib_pos(o, w))) - 1;
    uint64_t mid = o & USED(W) & ~((low << 4) | 0xF);
    return (o & low) | (mid >> 4) | (w << (4 * (W - 1))) | (o & ~USED(W));
}

/* fill the least recent way of set s with (tg, dt); old: the tag it held */
#define FILL(name, W, s, tg, dt, old)                                                \
    do {                                                                             \
        uint64_t o_ = name##_ord[s];                                                 \
        int w_ = (int)((o_ >> (4 * ((W) - 1))) & 0xF);                               \
        old = name##_tag[s][w_];                                                     \
        name##_tag[s][w_] = (tg);                                                    \
        name##_data[s][w_] = (dt);                                                   \
        name##_nv[s] += (old == INV);                                                \
        name##_ord[s] = ((o_ << 4) & USED(W)) | (uint64_t)w_ | (o_ & ~USED(W));      \
    } while (0)

/* invalidate tag tg if the structure holds it */
#define REMOVE(name, W, S, tg)                                                       \
    do {                                                                             \
        int s_ = (int)(((tg) >> 2) & ((S) - 1));                                     \
        if (name##_nv[s_]) {                                                         \
            int w_ = find(name##_tag[s_], W, tg);                                    \
            if (w_ >= 0) {                                                           \
                name##_tag[s_][w_] = INV;                                            \
                name##_nv[s_]--;                                                     \
                name##_ord[s_] = to_back(name##_ord[s_], W, (uint64_t)w_);           \
            }                                                                        \
        }                                                                            \
    } while (0)

static uint64_t *mem;            /* physical memory of page tables: frame f at mem + 512 f */
static uint64_t next_frame = 1;  /* frame 0: the PML4 */

INLINE uint64_t *frame(uint64_t f) { return mem + 512 * f; }

static void map4k(uint64_t va, uint64_t pfn) {
    uint64_t table = 0;
    for (int L = 3; L >= 1; L--) {
        uint64_t *e = frame(table) + ((va >> (12 + 9 * L)) & 511);
        if (!(*e & PTE_P)) *e = ((next_frame++) << 12) | 7;   /* P, RW, US */
        table = (*e & ADDR) >> 12;
    }
    frame(table)[(va >> 12) & 511] = (pfn << 12) | 7;
}

static void init_order(uint64_t *ord, int S, int W) {
    for (int s = 0; s < S; s++) {
        uint64_t o = ~UINT64_C(0);
        for (int i = 0; i < W; i++) {
            o &= ~(UINT64_C(0xF) << (4 * i));
            o |= (uint64_t)(W - 1 - i) << (4 * i);
        }
        ord[s] = o;
    }
}

/* read a level's entry, set its A bit; exits on a not-present entry (never here) */
#define READ(table, shift, ep, e)                                                     \
    do {                                                                             \
        ep = frame(table) + ((va >> (shift)) & 511);                                 \
        e = *ep;                                                                     \
        refs++;                                                                      \
        if (!(e & PTE_P)) {                                                          \
            fprintf(stderr, "unmapped %llx\n", (unsigned long long)va);              \
            return 1;                                                                \
        }                                                                            \
        if (!(e & PTE_A)) *ep = e | PTE_A;                                           \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s ADDR_FILE BASE SIZE\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f) / 8;
    fseek(f, 0, SEEK_SET);
    uint64_t *addr = malloc(8 * (size_t)n);
    if (fread(addr, 8, (size_t)n, f) != (size_t)n) { perror("read"); return 2; }
    fclose(f);
    uint64_t base = strtoull(argv[2], NULL, 0), size = strtoull(argv[3], NULL, 0);
    uint64_t pages = size >> 12;
    mem = calloc((size_t)(pages / 512 + 64) * 512, 8);
    for (uint64_t p = 0; p < pages; p++) map4k(base + (p << 12), 0x100000 + p);
    memset(l1_tag, 0xFF, sizeof l1_tag);
    memset(l1i_tag, 0xFF, sizeof l1i_tag);
    memset(l2_tag, 0xFF, sizeof l2_tag);
    memset(pde_tag, 0xFF, sizeof pde_tag);
    memset(pdp_tag, 0xFF, sizeof pdp_tag);
    memset(pml_tag, 0xFF, sizeof pml_tag);
    init_order(l1_ord, 16, 4);
    init_order(l1i_ord, 16, 8);
    init_order(l2_ord, 128, 12);
    init_order(pde_ord, 4, 8);
    init_order(pdp_ord, 2, 4);
    init_order(pml_ord, 1, 4);

    uint64_t l1h = 0, l2h = 0, walks = 0, refs = 0, ph1 = 0, ph2 = 0, ph3 = 0, old;
    uint64_t pd_key = INV, pd_table = 0;     /* the prefetch's page directory per 1 GiB */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        uint64_t va = addr[i], vpn = va >> 12, tag = vpn << 2;
        if (i + 4 < n) {                          /* prefetch the leaf entry 4 ahead */
            uint64_t v = addr[i + 4], t;
            if ((v >> 30) == pd_key) {
                t = pd_table;
            } else {
                t = (frame(0)[(v >> 39) & 511] & ADDR) >> 12;
                t = (frame(t)[(v >> 30) & 511] & ADDR) >> 12;
                pd_key = v >> 30;
                pd_table = t;
            }
            t = (frame(t)[(v >> 21) & 511] & ADDR) >> 12;
            __builtin_prefetch(frame(t) + ((v >> 12) & 511));
        }
        int s1 = (int)(vpn & 15), w = find(l1_tag[s1], 4, tag);
        if (w >= 0) {
            l1h++;
            l1_ord[s1] = to_front(l1_ord[s1], (uint64_t)w);
            continue;
        }
        int s2 = (int)(vpn & 127);
        w = find(l2_tag[s2], 12, tag);
        if (w >= 0) {
            l2h++;
            l2_ord[s2] = to_front(l2_ord[s2], (uint64_t)w);
            FILL(l1, 4, s1, tag, l2_data[s2][w], old);
            continue;
        }
        walks++;
        /* the PSCs from the PDE cache up; the first hit gives the table below it */
        uint64_t vm = va & UINT64_C(0xFFFFFFFFFFFF), table, e, *ep;
        uint64_t k1 = vm >> 21, k2 = vm >> 30, k3 = vm >> 39;
        int sp = (int)(k1 & 3), sq = (int)(k2 & 1);
        w = find(pde_tag[sp], 8, k1 << 2);
        if (w >= 0) {
            ph1++;
            pde_ord[sp] = to_front(pde_ord[sp], (uint64_t)w);
            table = pde_data[sp][w];
            goto level0;
        }
        w = find(pdp_tag[sq], 4, k2 << 2);
        if (w >= 0) {
            ph2++;
            pdp_ord[sq] = to_front(pdp_ord[sq], (uint64_t)w);
            table = pdp_data[sq][w];
            goto level1;
        }
        w = find(pml_tag[0], 4, k3 << 2);
        if (w >= 0) {
            ph3++;
            pml_ord[0] = to_front(pml_ord[0], (uint64_t)w);
            table = pml_data[0][w];
            goto level2;
        }
        READ(0, 39, ep, e);
        table = (e & ADDR) >> 12;
        FILL(pml, 4, 0, k3 << 2, table, old);
    level2:
        READ(table, 30, ep, e);
        table = (e & ADDR) >> 12;
        FILL(pdp, 4, sq, k2 << 2, table, old);
    level1:
        READ(table, 21, ep, e);
        table = (e & ADDR) >> 12;
        FILL(pde, 8, sp, k1 << 2, table, old);
    level0:
        READ(table, 12, ep, e);
        uint64_t pfn = (e & ADDR) >> 12;
        FILL(l2, 12, s2, tag, pfn, old);
        if (old != INV) {                         /* inclusive: out of both L1 TLBs */
            REMOVE(l1, 4, 16, old);
            REMOVE(l1i, 8, 16, old);
        }
        FILL(l1, 4, s1, tag, pfn, old);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
#ifdef __AVX2__
    int simd = 1;
#else
    int simd = 0;
#endif
    printf("seconds=%.6f accesses=%ld l1_hits=%llu l2_hits=%llu walks=%llu walk_refs=%llu "
           "psc_pde_hits=%llu psc_pdpte_hits=%llu psc_pml4e_hits=%llu simd=%d\n", dt, n,
           (unsigned long long)l1h, (unsigned long long)l2h, (unsigned long long)walks,
           (unsigned long long)refs, (unsigned long long)ph1, (unsigned long long)ph2,
           (unsigned long long)ph3, simd);
    return 0;
}
