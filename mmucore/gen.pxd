# The workload generators' engine (issue 5): seeded, chunked, seekable address streams.
#
# A GenState holds one generator: its kind, its parameters, the number of accesses it
# makes (`n`) and where it is (`pos`). `gen_fill` writes the next accesses [pos, pos+m)
# into three caller-owned columns (addr, op, size) in one nogil call; the output for a
# seed is the same whatever the chunk sizes, because every kernel continues from the
# state the previous call left. `GenCore` (a cdef class) owns a GenState and the arrays
# its pointers refer to. docs/workloads.md states each stream exactly;
# tests/reference_gen.py is the pure-Python oracle.
#
# Random numbers are counter-based: draw i of a stream with key k is
# splitmix64(k + i * GOLDEN), i.e. the (i+1)-th output of SplitMix64 started at k
# (Steele, Lea & Flood, OOPSLA 2014), so any index is reached in O(1).
from mmucore._types cimport (uint8_t, uint16_t, uint32_t, uint64_t, vaddr_t, intp_t)
from mmucore._rng cimport splitmix64

cdef extern from *:
    """
    #include <stdint.h>
    #define MMUCORE_GEN_GOLDEN ((uint64_t)0x9E3779B97F4A7C15ULL)
    /* High 64 bits of a * b: a draw x scaled into [0, n) is mulhi(x, n). */
    #if defined(__SIZEOF_INT128__)
    static inline uint64_t mmucore_mulhi64(uint64_t a, uint64_t b) {
        return (uint64_t)(((__uint128_t)a * b) >> 64);
    }
    #else
    static inline uint64_t mmucore_mulhi64(uint64_t a, uint64_t b) {
        uint64_t al = a & 0xFFFFFFFFu, ah = a >> 32, bl = b & 0xFFFFFFFFu, bh = b >> 32;
        uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
        uint64_t mid = (ll >> 32) + (lh & 0xFFFFFFFFu) + (hl & 0xFFFFFFFFu);
        return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    }
    #endif
    /* Both halves of a * b: returns the low 64 bits, stores the high 64 in *hi. */
    #if defined(__SIZEOF_INT128__)
    static inline uint64_t mmucore_mul128(uint64_t a, uint64_t b, uint64_t* hi) {
        __uint128_t p = (__uint128_t)a * b;
        *hi = (uint64_t)(p >> 64);
        return (uint64_t)p;
    }
    #else
    static inline uint64_t mmucore_mul128(uint64_t a, uint64_t b, uint64_t* hi) {
        *hi = mmucore_mulhi64(a, b);
        return a * b;
    }
    #endif
    """
    const uint64_t GEN_GOLDEN "MMUCORE_GEN_GOLDEN"
    uint64_t mulhi64 "mmucore_mulhi64"(uint64_t a, uint64_t b) noexcept nogil
    uint64_t mul128 "mmucore_mul128"(uint64_t a, uint64_t b, uint64_t* hi) noexcept nogil

# Generator kinds (GenState.kind).
cdef enum GenKind:
    GEN_UNIFORM = 0         # uniform and gups
    GEN_STRIDE = 1
    GEN_ZIPF = 2
    GEN_CHASE = 3
    GEN_MATMUL = 4
    GEN_STREAM = 5
    GEN_BFS = 6

# Salts: each random stream of a generator has its own key gen_key(seed, salt).
cdef enum GenSalt:
    SALT_UNIFORM_SLOT = 1
    SALT_UNIFORM_OP = 2
    SALT_GUPS = 3
    SALT_ZIPF_DRAW = 4
    SALT_ZIPF_PERM = 5
    SALT_CHASE = 6
    SALT_BFS_SRC = 7
    SALT_BFS_DST = 8

# Columns of a zipf bin table row (pyapi.workloads builds the table): 8 uint32 words,
# 32 bytes, holding the bin and its alias bin side by side, so that the alias pick is a
# select (column + 0 or + 1), not a branch. Ranks fit in 32 bits (pages < 2**32).
cdef enum:
    ZCOL_THRESH_LO = 0              # keep the bin when the low word < THRESH (of 2**64)
    ZCOL_THRESH_HI = 1
    ZCOL_LO = 2                     # first rank of the bin; + 1: of the alias bin
    ZCOL_COUNT = 4                  # ranks in the bin; + 1: in the alias bin
    ZCOL_SQUEEZE = 6                # accept at once when (word >> 32) < SQUEEZE; + 1: alias
    ZIPF_COLS = 8

cdef enum:
    ZIPF_BLOCK = 512                # zipf_fill works in blocks of this many accesses
    ZIPF_HOT = 2048                 # pages of the hottest ranks kept in a table (16 KB)

# Phases of the BFS state machine (docs/workloads.md lists the stream they make).
cdef enum BfsPhase:
    BFS_SCAN = 0
    BFS_ROOT_MARK = 1
    BFS_ROOT_PUSH = 2
    BFS_POP = 3
    BFS_OFF0 = 4
    BFS_OFF1 = 5
    BFS_EDGE = 6
    BFS_VISIT = 7
    BFS_MARK = 8
    BFS_PUSH = 9


cdef inline uint64_t gen_key(uint64_t seed, uint64_t salt) noexcept nogil:
    """The key of random stream `salt` of a generator seeded with `seed`."""
    return splitmix64(splitmix64(seed) ^ salt)

cdef inline uint64_t counter_draw(uint64_t key, uint64_t i) noexcept nogil:
    """Draw `i` (0-based) of the counter-based stream `key`: O(1) for any i."""
    return splitmix64(key + i * GEN_GOLDEN)

cdef inline uint64_t sub_draw(uint64_t sub, uint64_t t) noexcept nogil:
    """Draw t >= 1 of the per-access sub-stream `sub` (draw 0 is `sub` itself): the
    t-th output of wyrand (Wang Yi's wyhash PRNG) started at state `sub`:
    a = sub + t * 0xA0761D6478BD642F; the high 64 bits of a * (a ^ 0xE7037ED1A0B428DB)
    xor the low 64 bits. One 64x64->128 multiply: cheaper than a splitmix64."""
    cdef uint64_t a = sub + t * <uint64_t>0xA0761D6478BD642F, hi
    cdef uint64_t lo = mul128(a, a ^ <uint64_t>0xE7037ED1A0B428DB, &hi)
    return hi ^ lo

cdef inline double unit_double(uint64_t x) noexcept nogil:
    """A draw as a double in [0, 1): its top 53 bits times 2**-53."""
    return <double>(x >> 11) * (1.0 / 9007199254740992.0)


cdef struct UniformGen:             # uniform, gups
    uint64_t key                    # stream of the slot draws
    uint64_t op_key                 # stream of the store decisions
    uint64_t base
    uint64_t slots                  # footprint // align
    uint64_t align
    uint64_t store_thresh           # STORE when (draw >> 11) < store_thresh (of 2**53)
    uint8_t op                      # op of the other accesses (LOAD, or MODIFY for gups)
    uint16_t size

cdef struct StrideGen:
    uint64_t base
    uint64_t footprint
    uint64_t step                   # stride % footprint
    uint64_t off                    # offset of the next access, < footprint
    uint16_t size

cdef enum ZipfMethod:
    ZIPF_TABLE = 0                  # alias table over rank bins + rejection (default)
    ZIPF_REJECTION_INVERSION = 1    # Hormann & Derflinger: O(1) memory, slower

cdef struct ZipfGen:
    uint32_t method                 # a ZipfMethod
    const uint32_t* table           # ZIPF_TABLE: nbins rows of ZIPF_COLS uint32 words
    uint64_t nbins
    uint64_t key                    # per-access sub-stream seeds
    uint64_t base
    uint64_t pages
    uint64_t page_size
    uint64_t align
    uint64_t offset_slots           # page_size // align
    uint32_t page_shift             # log2(page_size)
    uint32_t align_shift            # log2(align)
    double alpha
    double pages_d                  # pages as a double
    double hx1                      # H(1.5) - 1
    double hxn                      # H(pages + 0.5)
    double span                     # hx1 - hxn
    double s                        # the squeeze 2 - H^-1(H(2.5) - h(2))
    const uint64_t* hot             # pages of ranks 1 .. nhot (the bijection, precomputed)
    uint64_t nhot
    uint64_t perm_mask              # 2**bits - 1 >= pages - 1
    uint32_t perm_shift
    uint64_t perm_k[2]
    uint16_t size

cdef struct ChaseGen:
    const uint32_t* order           # the cycle from node 0: order[t] = node of step t
    uint64_t nodes
    uint64_t t                      # step of the next access, < nodes
    uint64_t base
    uint64_t node_bytes
    uint16_t size

cdef struct MatmulGen:
    uint64_t nsize
    uint64_t block                  # = nsize for the naive order
    uint64_t ntiles                 # nsize // block
    uint64_t elem
    uint64_t base_a
    uint64_t base_b
    uint64_t base_c
    # loop counters of the next access: tiles (ti, tj, tk), inside (i, j), step r
    uint64_t ti
    uint64_t tj
    uint64_t tk
    uint64_t i
    uint64_t j
    uint64_t r                      # 0: load C; 1..2*block: A/B loads; 2*block+1: store C
    uint16_t size

cdef struct StreamGen:
    uint64_t n_elements
    uint64_t elem
    uint32_t per                    # accesses per element (2 or 3)
    uint64_t step_base[3]           # array of each step
    uint8_t step_op[3]
    uint64_t i                      # element of the next access
    uint32_t r                      # step of the next access
    uint16_t size

cdef struct BfsGen:
    const uint64_t* offsets         # CSR: V + 1 offsets into edges
    const uint32_t* edges
    const uint32_t* order           # BFS visit (= queue) order, precomputed
    uint64_t vertices
    uint64_t base_offsets
    uint64_t base_edges
    uint64_t base_visited
    uint64_t base_queue
    uint64_t r                      # scan position of the outer loop
    uint64_t head
    uint64_t tail
    uint64_t v
    uint64_t e
    uint64_t eend
    uint32_t phase

cdef struct GenState:
    uint32_t kind                   # a GenKind
    uint64_t n                      # accesses in the whole stream
    uint64_t pos                    # accesses made so far
    UniformGen uni
    StrideGen stri
    ZipfGen zipf
    ChaseGen chase
    MatmulGen mm
    StreamGen stream
    BfsGen bfs


# Kernels. Each writes accesses [start, start + m) (or the next m) of its stream.
cdef void uniform_fill(const UniformGen* g, uint64_t start, intp_t m, vaddr_t* addr,
                       uint8_t* op, uint16_t* size) noexcept nogil
cdef void stride_fill(StrideGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                      uint16_t* size) noexcept nogil
cdef void zipf_fill(const ZipfGen* g, uint64_t start, intp_t m, vaddr_t* addr,
                    uint8_t* op, uint16_t* size) noexcept nogil
# One zipf rank in [1, pages] from the sub-stream `sub` of an access (draw 0 of it is
# `sub` itself, draw t >= 1 is sub_draw(sub, t); draw 1 is the offset's).
cdef uint64_t zipf_rank_table(const ZipfGen* g, uint64_t sub) noexcept nogil
cdef uint64_t zipf_rank_ri(const ZipfGen* g, uint64_t sub) noexcept nogil
# The page of rank `rank` (a seeded bijection of [0, pages), by cycle walking).
cdef uint64_t zipf_page(const ZipfGen* g, uint64_t rank) noexcept nogil
cdef void chase_fill(ChaseGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                     uint16_t* size) noexcept nogil
cdef void matmul_fill(MatmulGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                      uint16_t* size) noexcept nogil
cdef void stream_fill(StreamGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                      uint16_t* size) noexcept nogil
cdef void bfs_fill(BfsGen* g, intp_t m, vaddr_t* addr, uint8_t* op,
                   uint16_t* size) noexcept nogil
# Dispatch once per call: the next min(m, n - pos) accesses; returns how many.
cdef intp_t gen_fill(GenState* st, intp_t m, vaddr_t* addr, uint8_t* op,
                     uint16_t* size) noexcept nogil

# Construction-time kernels.
# Draws [start, start + m) of stream `key`, scaled into [0, bound).
cdef void draws_below(uint64_t key, uint64_t start, intp_t m, uint64_t bound,
                      uint64_t* out) noexcept nogil
# Sattolo's algorithm: next[] becomes one random cycle through all `nodes` nodes.
cdef void sattolo_cycle(uint32_t* next, uint64_t nodes, uint64_t key) noexcept nogil
# The nodes of the cycle `next` in the order they are visited from node 0.
cdef void cycle_order(const uint32_t* next, uint64_t nodes, uint32_t* order) noexcept nogil
# A random directed multigraph in CSR: edge e goes from draw e of key_src to draw e of
# key_dst (both below `vertices`); edges of a vertex keep their generation order.
# `cursor` is scratch space of `vertices` entries.
cdef void csr_random(uint64_t vertices, uint64_t n_edges, uint64_t key_src,
                     uint64_t key_dst, uint64_t* offsets, uint32_t* edges,
                     uint64_t* cursor) noexcept nogil
# BFS from vertex 0, then from each unvisited vertex in increasing order: the order in
# which vertices are enqueued. `visited` is zeroed scratch space of `vertices` bytes.
cdef void bfs_visit_order(const uint64_t* offsets, const uint32_t* edges,
                          uint64_t vertices, uint32_t* order, uint8_t* visited) noexcept nogil


cdef class GenCore:
    """Owns one GenState (the engine object behind pyapi.workloads.Workload)."""
    cdef GenState st
    cdef object _keep               # arrays the state's pointers refer to
