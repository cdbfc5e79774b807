# The TLB engine's public cimport surface.
#
# A TLBState is one TLB structure (an L1 dTLB for 4K pages, a unified STLB, ...):
# `sets` x `ways` entries, one or more page sizes, one replacement policy. Kernels take a
# TLBState* and never touch Python objects; `TLBCore` (a cdef class) owns the state and
# its memory. See docs/tlb.md for the exact semantics every kernel implements.
from mmucore._types cimport (uint8_t, uint32_t, uint64_t, int32_t, vaddr_t, asid_t, intp_t)

# An empty entry's tag. Real tags are (vpn << 2) | page-size code < 2**54.
cdef extern from *:
    """
    #define MMUCORE_TAG_INVALID ((uint64_t)0xFFFFFFFFFFFFFFFFULL)
    """
    const uint64_t TAG_INVALID "MMUCORE_TAG_INVALID"

cdef enum:
    TLB_ABI_VERSION = 1         # bumped with every change of TLBState or a kernel signature
    SCAN_MAX_WAYS = 16          # ways above this keep LRU/FIFO order in linked lists
    SCAN_WIDE_WAYS = 64         # ways above this find entries through a hashed index
    ASID_GLOBAL = 0x10000       # easid of a global entry: matches every ASID

cdef struct TLBState:
    # geometry
    intp_t sets
    intp_t ways
    intp_t entries
    uint32_t policy                 # a Policy value
    uint32_t n_sizes                # page sizes held, ascending
    uint32_t size_code[4]
    uint32_t size_shift[4]
    uint32_t size_mask              # bit (1 << code) for each size held
    uint64_t set_mask               # sets - 1 when sets is a power of two
    bint sets_pow2
    uint64_t fm_lo                  # 128-bit fastmod multiplier for other set counts
    uint64_t fm_hi
    bint listed                     # ways > SCAN_MAX_WAYS: linked-list order
    bint indexed                    # ways > SCAN_WIDE_WAYS: hashed index
    # entries, structure of arrays, index = set * ways + way
    uint64_t* tag                   # (vpn << 2) | size code, or TAG_INVALID
    uint32_t* easid                 # ASID, or ASID_GLOBAL
    uint64_t* data                  # payload of the translation (e.g. pfn | permissions)
    uint32_t* nvalid                # per set
    # replacement state
    uint64_t* order                 # LRU/FIFO, ways <= 16: per set, way per nibble, MRU first
    uint64_t nib_used               # the nibbles of `order` that hold ways
    int32_t* prev                   # LRU/FIFO, ways > 16: per-entry links of a per-set list
    int32_t* next
    int32_t* head                   # per set: MRU / newest entry
    int32_t* tail                   # per set: LRU / oldest entry (the victim)
    uint64_t* plru                  # PLRU: tree bits, plru_words per set, node k at bit k
    intp_t plru_words
    uint64_t* plru_path_mask        # PLRU, up to 64 leaves: per way, the bits on its path
    uint64_t* plru_path_bits        # ... and their values after an access to that way
    intp_t plru_leaves
    uint32_t* count                 # LFU frequency / SRRIP re-reference prediction value
    uint64_t rng                    # RANDOM: xorshift64* state
    # hashed index (indexed structures only): open addressing, linear probing
    uint64_t* h_tag
    uint32_t* h_easid
    int32_t* h_ent                  # entry index, -1 = empty slot
    uint64_t h_mask
    uint32_t h_shift                # 64 - log2(capacity)
    intp_t n_global                 # valid global entries
    # same-page memo of the batch loop (cleared by every other state change)
    uint64_t memo_key
    uint32_t memo_asid
    intp_t memo_entry
    # counters (cumulative)
    uint64_t accesses
    uint64_t hits
    uint64_t misses
    uint64_t fills
    uint64_t evictions
    uint64_t invalidations          # entries invalidated by invalidate/flush/flush_asid
    uint64_t flushes                # flush and flush_asid calls
    # the entry displaced by the last tlb_fill (for exclusive hierarchies; the batch
    # loop does not update it)
    bint victim_valid
    uint64_t victim_tag
    uint32_t victim_easid
    uint64_t victim_data

# Life cycle. tlb_init allocates (raises MemoryError/ValueError); tlb_free releases.
cdef int tlb_init(TLBState* t, intp_t sets, intp_t ways, uint32_t policy,
                  uint32_t size_mask, uint64_t seed) except -1 nogil
cdef void tlb_free(TLBState* t) noexcept nogil
cdef void tlb_reset_counters(TLBState* t) noexcept nogil
# Checkpoints (with the GIL). tlb_dump: the whole state as bytes (the struct's scalar
# fields, then every allocated array with its length, in a fixed order). tlb_restore:
# into a state tlb_init'ed with the same geometry, policy and page sizes (its arrays are
# kept and overwritten); ValueError when the bytes do not fit it.
cdef bytes tlb_dump(TLBState* t)
cdef int tlb_restore(TLBState* t, bytes buf) except -1

# Single-translation kernels (for the MMU and cimport users).
# tlb_probe: entry index of the translation of `va` for `asid`, or -1; changes nothing.
cdef intp_t tlb_probe(TLBState* t, vaddr_t va, asid_t asid) noexcept nogil
# tlb_probe_sizes: tlb_probe over the page sizes whose code bit is set in `code_mask`
# only (the caller knows the structure holds no entry of the others: same result).
cdef intp_t tlb_probe_sizes(TLBState* t, vaddr_t va, asid_t asid,
                            uint32_t code_mask) noexcept nogil
# tlb_lookup: probe + replacement update on a hit + counters (accesses/hits/misses).
cdef intp_t tlb_lookup(TLBState* t, vaddr_t va, asid_t asid) noexcept nogil
# tlb_fill: install the translation of `va` (page size `size_code`); returns its entry.
# If it is already present it is refreshed in place. Counts fills and evictions.
cdef intp_t tlb_fill(TLBState* t, vaddr_t va, asid_t asid, uint32_t size_code,
                     bint is_global, uint64_t data) noexcept nogil
# tlb_fill_absent: tlb_fill for a caller that has just probed the structure for `va`
# and `asid` and missed (so neither an entry of this ASID nor a global one of the page
# is present): the same effect without the search for a present entry.
cdef intp_t tlb_fill_absent(TLBState* t, vaddr_t va, asid_t asid, uint32_t size_code,
                            bint is_global, uint64_t data) noexcept nogil
# Lookup, and fill on a miss: returns 1 on a hit, 0 on a miss.
cdef int tlb_access(TLBState* t, vaddr_t va, asid_t asid, uint32_t size_code,
                    bint is_global) noexcept nogil
# The batch loop: n accesses, one call. asids/size_codes/globals may be NULL (then the
# scalar applies to every access); hit_out may be NULL. Returns the number of hits.
cdef intp_t tlb_access_batch(TLBState* t, const vaddr_t* va, intp_t n,
                             const asid_t* asids, asid_t asid,
                             const uint8_t* size_codes, uint32_t size_code,
                             const uint8_t* globals_, bint is_global,
                             uint8_t* hit_out) noexcept nogil
# Invalidation. Each returns the number of entries invalidated.
# tlb_invalidate: every page size's entry for the page holding `va`; all_asids=1 drops
# every ASID's, otherwise `asid`'s and global ones (INVLPG).
cdef intp_t tlb_invalidate(TLBState* t, vaddr_t va, asid_t asid, bint all_asids) noexcept nogil
# tlb_flush: everything, or (keep_global) every non-global entry (CR3 write, no PCID).
cdef intp_t tlb_flush(TLBState* t, bint keep_global) noexcept nogil
# tlb_flush_asid: the non-global entries of one ASID (INVPCID single-context).
cdef intp_t tlb_flush_asid(TLBState* t, asid_t asid) noexcept nogil

# For hierarchies (mmucore.mmu). tlb_touch: the policy's hit update of `entry` (as a
# lookup that hits it does; no counters). tlb_remove: drop `entry` without counting it
# as an invalidation (an exclusive L2 hit moves the entry to L1). tlb_remove_match: drop
# the entry with exactly this tag ((vpn << 2) | size code) and easid (ASID or
# ASID_GLOBAL), counted in `invalidations`; returns 1 if there was one.
# tlb_invalidate_range: drop every entry whose page overlaps [first, last] and that
# belongs to `asid` (or is global, with_global; any ASID with all_asids); returns the
# count (`invalidations`).
cdef void tlb_touch(TLBState* t, intp_t entry) noexcept nogil
cdef void tlb_remove(TLBState* t, intp_t entry) noexcept nogil
cdef intp_t tlb_remove_match(TLBState* t, uint64_t tag, uint32_t easid) noexcept nogil
cdef intp_t tlb_invalidate_range(TLBState* t, vaddr_t first, vaddr_t last, asid_t asid,
                                 bint with_global, bint all_asids) noexcept nogil


cdef class TLBCore:
    """Owns one TLBState (the engine object behind pyapi.TLB)."""
    cdef TLBState st
    cdef TLBState* state(self) noexcept
