# LRU stack distances and miss-ratio curves (issue 7): the cimport surface.
#
# One SDState turns a stream of byte addresses into a histogram of LRU stack distances
# (Mattson et al., IBM Systems Journal 9(2), 1970): the stack distance of an access is
# 1 + the number of distinct pages touched since the previous access to its page, and
# an LRU structure of C entries hits exactly the accesses of distance <= C (the
# inclusion property), so one pass gives the misses of every size at once.
#
# Four modes, chosen once per state:
#   SD_EXACT        fully associative, every page: a hash map vpn -> last-access time and
#                   a bitmap of time positions (1 = the latest access of a live page)
#                   with a Fenwick tree over its words; distance = live pages accessed
#                   after that time + 1. Times are
#                   renumbered (compacted) when the tree is full, so memory is
#                   O(distinct pages), not O(accesses).
#   SD_SETS         set-associative: page number mod `sets` picks a set (the TLB engine's
#                   index); each set keeps an LRU stack of its `ways` most recent pages;
#                   distance = position in that stack (ways + 1 and more: a miss at every
#                   associativity the state resolves).
#   SD_SHARDS_RATE  SHARDS (Waldspurger et al., FAST 2015), fixed rate: only pages whose
#                   hash is <= tmax go through the exact machinery.
#   SD_SHARDS_SIZE  SHARDS fixed size: at most `sample_size` sampled pages; when one more
#                   arrives, the page of the largest hash leaves and tmax drops below it.
#
# Only memory accesses count (op codes 0..3: LOAD, STORE, IFETCH, MODIFY); control ops
# are skipped. Feeding a trace chunk by chunk gives exactly the state of one feed over
# the concatenation. docs/mrc.md states the semantics; tests/reference_mrc.py is the
# pure-Python oracle.
from mmucore._types cimport uint8_t, uint32_t, uint64_t, int32_t, int64_t, intp_t

cdef enum:
    SD_ABI_VERSION = 1              # bumped with every change of SDState or a kernel signature

cdef enum SDMode:
    SD_EXACT = 0
    SD_SETS = 1
    SD_SHARDS_RATE = 2
    SD_SHARDS_SIZE = 3

cdef enum:
    SD_MAX_WAYS = 4096              # SD_SETS: the largest associativity resolved
    SD_MIN_TIMES = 1024             # smallest Fenwick tree (time positions)

cdef extern from *:
    """
    #define MMUCORE_SD_EMPTY ((uint64_t)0xFFFFFFFFFFFFFFFFULL)
    """
    # an empty map slot / time position / stack way (never a page number: pages are
    # addresses shifted right by at least 12 bits)
    const uint64_t SD_EMPTY "MMUCORE_SD_EMPTY"

cdef struct SDSlot:                 # one slot of the page map
    uint64_t vpn                    # SD_EMPTY: free
    uint64_t time                   # time position of the page's latest access

cdef struct SDState:
    uint32_t mode                   # an SDMode
    uint32_t shift                  # page shift (12, 21, 22, 30)
    uint64_t accesses               # memory accesses fed
    uint64_t cold                   # first touches (SHARDS: sampled first touches)
    uint64_t beyond                 # distance > max_distance (SD_SETS: > ways, or first touch)
    uint64_t sampled                # SHARDS: sampled accesses (EXACT/SETS: = accesses)
    # the same-page fast path: the page of the previous memory access
    uint64_t last_vpn
    uint32_t last_valid
    uint32_t last_sampled
    # histogram of distances: hist[d], d = 1 .. hist_len - 1 (hist[0] unused)
    int64_t* hist
    intp_t hist_cap
    intp_t hist_len                 # 1 + the largest distance recorded
    intp_t max_distance             # 0: unbounded (grows with the distinct pages)
    # page map (open addressing, linear probing, at most half full, backward-shift delete)
    SDSlot* slots
    intp_t map_cap                  # power of two
    intp_t map_count                # live pages
    uint32_t map_shift              # 64 - log2(map_cap)
    # time positions 0 .. fen_cap-1: a bitmap (1 = the latest access of a live page) and
    # a Fenwick tree over its 64-bit words (node w counts the ones of words in
    # (w - lowbit(w), w], 1-based)
    uint64_t* bits
    int32_t* fen
    intp_t fen_cap                  # positions: a power of two >= SD_MIN_TIMES
    intp_t now                      # next time position (0-based)
    uint64_t compactions
    # SD_SETS
    intp_t sets
    intp_t ways
    uint64_t* stack                 # sets * ways page numbers, most recent first
    uint32_t* depth                 # pages held per set
    uint32_t sets_pow2
    uint64_t set_mask
    uint64_t fm_lo
    uint64_t fm_hi
    # SHARDS
    uint64_t hash_key               # splitmix64(seed): page hash = fmix64(vpn ^ hash_key)
    uint64_t tmax                   # a page is sampled when its hash <= tmax
    double inv_rate                 # 2**64 / (tmax + 1)
    intp_t sample_size              # SD_SHARDS_SIZE: most sampled pages held
    uint64_t* heap_hash             # max-heap of the sampled pages' hashes
    uint64_t* heap_vpn
    intp_t heap_n
    uint64_t evictions              # SD_SHARDS_SIZE: pages dropped from the sample
    double weight_sum               # SD_SHARDS_SIZE: sum of 1/rate over sampled accesses
    double wcold                    # ... of the sampled first touches
    double* whist                   # weighted histogram of scaled distances, buckets of
    intp_t whist_cap                # 2**wshift entries: bucket = floor(sd) >> wshift
    intp_t whist_len
    uint32_t wshift

# Kernels. sd_init and sd_feed raise (MemoryError, ValueError) holding the GIL only on
# that path; the others never raise.
cdef int sd_init(SDState* st, uint32_t mode, uint32_t shift, intp_t max_distance,
                 intp_t sets, intp_t ways, uint64_t tmax, intp_t sample_size,
                 uint64_t seed, intp_t whist_buckets) except -1 nogil
cdef void sd_free(SDState* st) noexcept nogil
# Feed n addresses (op NULL: all loads); op codes above 3 are skipped.
cdef int sd_feed(SDState* st, const uint64_t* addr, const uint8_t* op, intp_t n) except -1 nogil
# The SHARDS hash of a page number (a bijection of uint64: murmur3's fmix64).
cdef uint64_t sd_hash(uint64_t vpn, uint64_t key) noexcept nogil


cdef class StackDistCore:
    """Owns one SDState (the engine object behind pyapi.miss_ratio_curve)."""
    cdef SDState st
    cdef SDState* state(self) noexcept
