/* A hand-written C loop of one fixed MMU configuration: what this machine does when
 * nothing is configurable. bench/mmu.py compiles it (cc -O3), runs it on the same
 * address stream as mmucore and checks that both report the same counters, so the two
 * rates compare the same work.
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
 * Deliberately specialised: geometry as constants, tags in one array per structure,
 * LRU order a nibble word per set, page tables as 4 KiB frames of one array indexed by
 * physical frame number (no ASIDs, no global entries, no rights or reserved-bit checks
 * beyond Present, no size masks, no counters beyond the ones printed).
 *
 * Usage: ceiling_skylake ADDR_FILE BASE SIZE   (ADDR_FILE: raw little-endian uint64 virtual
 * addresses; [BASE, BASE + SIZE) is mapped with 4K pages). Prints one line of
 * key=value: seconds, accesses, l1_hits, l2_hits, walks, walk_refs, psc hits per level.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INV UINT64_C(0xFFFFFFFFFFFFFFFF)
#define NIB1 UINT64_C(0x1111111111111111)
#define NIB8 UINT64_C(0x8888888888888888)

typedef struct {
    uint64_t *tag, *data, *order, used;
} tlb_t;

static void tlb_init(tlb_t *t, int sets, int ways) {
    t->tag = malloc(8 * (size_t)sets * ways);
    t->data = calloc((size_t)sets * ways, 8);
    t->order = malloc(8 * (size_t)sets);
    memset(t->tag, 0xFF, 8 * (size_t)sets * ways);
    t->used = ways == 16 ? ~UINT64_C(0) : ((UINT64_C(1) << (4 * ways)) - 1);
    for (int s = 0; s < sets; s++) {
        uint64_t o = ~UINT64_C(0);
        for (int i = 0; i < ways; i++) {
            o &= ~(UINT64_C(0xF) << (4 * i));
            o |= (uint64_t)(ways - 1 - i) << (4 * i);
        }
        t->order[s] = o;
    }
}

/* way of tag in set s, or -1 (W a constant at each call) */
static inline int find(const tlb_t *t, int W, int s, uint64_t tag) {
    const uint64_t *g = t->tag + (size_t)s * W;
    uint64_t m = 0;
    for (int w = 0; w < W; w++) m |= (uint64_t)(g[w] == tag) << w;
    return m ? __builtin_ctzll(m) : -1;
}

static inline int nib_pos(uint64_t o, uint64_t w) {
    uint64_t x = o ^ (w * NIB1);
    return __builtin_ctzll((x - NIB1) & ~x & NIB8) >> 2;
}

static inline void to_front(tlb_t *t, int s, uint64_t w) {
    uint64_t o = t->order[s];
    int pos = nib_pos(o, w);
    uint64_t low = (UINT64_C(1) << (4 * pos)) - 1, keep = ~((low << 4) | 0xF);
    t->order[s] = (o & keep) | ((o & low) << 4) | w;
}

static inline void to_back(tlb_t *t, int W, int s, uint64_t w) {
    uint64_t o = t->order[s];
    int pos = nib_pos(o, w);
    uint64_t low = (UINT64_C(1) << (4 * pos)) - 1;
    uint64_t mid = o & t->used & ~((low << 4) | 0xF);
    t->order[s] = (o & low) | (mid >> 4) | (w << (4 * (W - 1))) | (o & ~t->used);
}

/* fill the LRU way of set s; returns the displaced tag (INV if none) */
static inline uint64_t fill(tlb_t *t, int W, int s, uint64_t tag, uint64_t data) {
    uint64_t o = t->order[s];
    int w = (int)((o >> (4 * (W - 1))) & 0xF);
    size_t e = (size_t)s * W + w;
    uint64_t old = t->tag[e];
    t->tag[e] = tag;
    t->data[e] = data;
    t->order[s] = ((o << 4) & t->used) | (uint64_t)w | (o & ~t->used);
    return old;
}

static inline void remove_tag(tlb_t *t, int W, int sets, uint64_t tag) {
    int s = (int)((tag >> 2) & (uint64_t)(sets - 1));
    int w = find(t, W, s, tag);
    if (w >= 0) {
        t->tag[(size_t)s * W + w] = INV;
        to_back(t, W, s, (uint64_t)w);
    }
}

#define PTE_P 1u
#define PTE_RW 2u
#define PTE_US 4u
#define PTE_A 0x20u
#define ADDR UINT64_C(0x000FFFFFFFFFF000)

static uint64_t *mem;            /* physical memory of page tables: frame f at mem + 512 f */
static uint64_t next_frame = 1;  /* frame 0: the PML4 */

static uint64_t *frame(uint64_t f) { return mem + 512 * f; }

static void map4k(uint64_t va, uint64_t pfn) {
    uint64_t table = 0;
    for (int L = 3; L >= 1; L--) {
        uint64_t *e = frame(table) + ((va >> (12 + 9 * L)) & 511);
        if (!(*e & PTE_P)) *e = ((next_frame++) << 12) | PTE_P | PTE_RW | PTE_US;
        table = (*e & ADDR) >> 12;
    }
    frame(table)[(va >> 12) & 511] = (pfn << 12) | PTE_P | PTE_RW | PTE_US;
}

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

    tlb_t l1, l1i, l2, pde, pdpte, pml4e;
    tlb_init(&l1, 16, 4); tlb_init(&l1i, 16, 8); tlb_init(&l2, 128, 12);
    tlb_init(&pde, 4, 8); tlb_init(&pdpte, 2, 4); tlb_init(&pml4e, 1, 4);
    uint64_t l1h = 0, l2h = 0, walks = 0, refs = 0, ph[4] = {0, 0, 0, 0};

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        uint64_t va = addr[i], vpn = va >> 12, tag = vpn << 2;
        if (i + 4 < n) {                          /* prefetch the leaf entry ahead */
            uint64_t v = addr[i + 4], t = 0;
            for (int L = 3; L >= 1; L--) t = (frame(t)[(v >> (12 + 9 * L)) & 511] & ADDR) >> 12;
            __builtin_prefetch(frame(t) + ((v >> 12) & 511));
        }
        int s1 = (int)(vpn & 15), w = find(&l1, 4, s1, tag);
        if (w >= 0) { l1h++; to_front(&l1, s1, (uint64_t)w); continue; }
        int s2 = (int)(vpn & 127);
        w = find(&l2, 12, s2, tag);
        if (w >= 0) {
            l2h++;
            to_front(&l2, s2, (uint64_t)w);
            fill(&l1, 4, s1, tag, l2.data[(size_t)s2 * 12 + w]);
            continue;
        }
        walks++;
        /* PSCs, PDE cache first: the first hit gives the table of the level below */
        tlb_t *psc[4] = {NULL, &pde, &pdpte, &pml4e};
        const int pw[4] = {0, 8, 4, 4}, ps[4] = {0, 4, 2, 1};
        int start = 3;
        uint64_t table = 0;                       /* the PML4's frame */
        for (int k = 1; k <= 3; k++) {
            uint64_t key = (va & UINT64_C(0xFFFFFFFFFFFF)) >> (12 + 9 * k);
            int s = (int)(key & (uint64_t)(ps[k] - 1));
            int h = find(psc[k], pw[k], s, key << 2);
            if (h >= 0) {
                ph[k]++;
                to_front(psc[k], s, (uint64_t)h);
                table = psc[k]->data[(size_t)s * pw[k] + h];
                start = k - 1;
                break;
            }
        }
        uint64_t e = 0;
        for (int L = start; L >= 0; L--) {
            uint64_t *ep = frame(table) + ((va >> (12 + 9 * L)) & 511);
            e = *ep;
            refs++;
            if (!(e & PTE_P)) { fprintf(stderr, "unmapped %llx\n", (unsigned long long)va); return 1; }
            if (!(e & PTE_A)) *ep = e | PTE_A;
            if (L > 0) {
                uint64_t key = (va & UINT64_C(0xFFFFFFFFFFFF)) >> (12 + 9 * L);
                fill(psc[L], pw[L], (int)(key & (uint64_t)(ps[L] - 1)), key << 2, (e & ADDR) >> 12);
                table = (e & ADDR) >> 12;
            }
        }
        uint64_t pfn = (e & ADDR) >> 12;
        uint64_t victim = fill(&l2, 12, s2, tag, pfn);
        if (victim != INV) {                      /* inclusive: out of both L1 TLBs */
            remove_tag(&l1, 4, 16, victim);
            remove_tag(&l1i, 8, 16, victim);
        }
        fill(&l1, 4, s1, tag, pfn);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("seconds=%.6f accesses=%ld l1_hits=%llu l2_hits=%llu walks=%llu walk_refs=%llu "
           "psc_pde_hits=%llu psc_pdpte_hits=%llu psc_pml4e_hits=%llu\n", dt, n,
           (unsigned long long)l1h, (unsigned long long)l2h, (unsigned long long)walks,
           (unsigned long long)refs, (unsigned long long)ph[1], (unsigned long long)ph[2],
           (unsigned long long)ph[3]);
    return 0;
}
