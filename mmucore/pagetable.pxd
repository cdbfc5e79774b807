# The page-table engine's public cimport surface.
#
# A PTState is one address space: page-table pages in the architectural x86 formats
# (x86_32, PAE, 4-level, 5-level) inside a simulated physical memory, a physical frame
# allocator, optional paging-structure caches (PSCs, one TLBState per level) and
# counters. Kernels take a PTState* and never touch Python objects except on their
# documented error paths; `PageTableCore` (a cdef class) owns the state and its memory.
# docs/pagetable.md states the semantics (with Intel SDM vol. 3A section numbers).
from mmucore._types cimport (uint8_t, uint32_t, uint64_t, int64_t, vaddr_t, paddr_t,
                             intp_t, asid_t)
from mmucore.tlb cimport TLBState

cdef extern from *:
    """
    #define MMUCORE_PTE_NX ((uint64_t)1 << 63)
    #define MMUCORE_ENTRY_NONE ((uint64_t)0xFFFFFFFFFFFFFFFFULL)
    #define MMUCORE_FAULT_GP ((uint32_t)0x80000000u)
    #define MMUCORE_FAULT_PF ((uint32_t)0x40000000u)
    """
    const uint64_t PTE_NX "MMUCORE_PTE_NX"            # XD, bit 63 (PAE and IA-32e)
    const uint64_t ENTRY_NONE "MMUCORE_ENTRY_NONE"    # padding of recorded entry addresses
    const uint32_t FAULT_GP "MMUCORE_FAULT_GP"        # not a #PF: address outside the mode
    const uint32_t FAULT_PF "MMUCORE_FAULT_PF"        # set in every #PF result: an error
                                                      # code can be 0 (supervisor read, P=0)

cdef enum:
    PT_ABI_VERSION = 1          # bumped with every change of PTState or a kernel signature
    PT_MAX_LEVELS = 5
    # paging modes
    MODE_X86_32 = 0
    MODE_PAE = 1
    MODE_X86_64 = 2
    MODE_LA57 = 3
    # page-fault error-code bits (SDM 4.7); an access's flags use the same bit positions
    FAULT_P = 1                 # 0: not present; 1: protection violation (or reserved bit)
    FAULT_W = 2                 # the access was a write
    FAULT_U = 4                 # the access was a user-mode access
    FAULT_RSVD = 8              # a reserved bit was set in a paging-structure entry
    FAULT_I = 16                # instruction fetch (only with NXE in PAE/IA-32e, or SMEP)
    ACC_WRITE = 2
    ACC_USER = 4
    ACC_IFETCH = 16
    # entry bits (SDM tables 4-4 .. 4-19)
    PTE_P = 0x1
    PTE_RW = 0x2
    PTE_US = 0x4
    PTE_PWT = 0x8
    PTE_PCD = 0x10
    PTE_A = 0x20
    PTE_D = 0x40
    PTE_PS = 0x80
    PTE_G = 0x100
    # physical allocator kinds and huge-page policies of demand paging
    ALLOC_SEQUENTIAL = 0
    ALLOC_RANDOM = 1
    HUGE_NEVER = 0
    HUGE_THP = 1
    HUGE_ALWAYS = 2
    # map/unmap/protect results
    PT_OK = 0
    PT_NO_MEMORY = 1            # the allocator has no free frame of the size needed
    PT_CONFLICT = 2             # an existing mapping overlaps / a huge page is cut

cdef struct WalkOut:
    paddr_t paddr               # the translation (valid when fault == 0)
    uint32_t fault              # x86 error code, 0 = translated, FAULT_GP = outside
    uint32_t refs               # memory references (entries read) by this access
    uint32_t size_code          # PS_4K .. PS_1G of the translation
    int64_t level               # level of the leaf, or of the entry that faulted
    intp_t n_entries            # entries recorded in entry_paddr (last walk)
    paddr_t entry_paddr[5]      # physical address of each entry read, top-down

cdef struct PTStats:
    uint64_t accesses           # walk requests (pt_walk calls)
    uint64_t walks              # walks performed (a demand fault's retry is a second walk)
    uint64_t refs[5]            # entries read, by level (0 = PTE, 1 = PDE, ...)
    uint64_t psc_hits[5]        # PSC hits, by level of the cached entry
    uint64_t psc_misses[5]
    uint64_t translations[4]    # successful accesses, by page-size code
    uint64_t faults_not_present
    uint64_t faults_protection
    uint64_t faults_reserved
    uint64_t faults_outside     # FAULT_GP: address outside the mode's linear space
    uint64_t minor_faults[4]    # demand-paging faults handled, by page-size code mapped
    uint64_t huge_fallbacks     # demand faults that wanted a larger page than they got
    uint64_t pdpte_loads        # PAE: loads of the 4 PDPTE registers (MOV to CR3)
    uint64_t tables             # page-table pages allocated
    uint64_t frames_allocated   # frames handed out by the allocator (tables and data)

cdef struct PTState:
    # mode
    uint32_t mode
    uint32_t levels
    uint32_t top                # levels - 1
    uint32_t esize              # entry bytes: 4 or 8
    uint32_t maxphyaddr
    uint32_t va_bits            # 32, 32, 48, 57
    uint32_t shift[5]           # index shift of each level
    uint64_t idx_mask[5]
    uint32_t leaf_code[5]       # page-size code a PS=1 entry maps at this level, 255 = none
    uint64_t rsvd[10]           # reserved bits, index 2 * level + PS bit (SDM 4.7 RSVD)
    uint64_t addr_mask          # bits MAXPHYADDR-1:12 of an entry
    uint64_t nonleaf_flags      # flags of table entries created by map()
    bint nxe
    bint wp
    bint smep
    bint smap
    bint id_bit                 # whether an ifetch fault sets error-code bit 4
    paddr_t cr3
    uint64_t pdpte[4]           # PAE: the PDPTE registers
    # the frame pool: page-table pages, 512 words each; slot 0 is an all-zero page
    uint64_t* pool
    intp_t pool_slots
    intp_t pool_cap
    uint32_t** slot_dir         # pfn >> 10 -> 1024 pool slots (NULL: no table there);
    uint64_t dir_len            # a slot of 0 means "not a page-table page"
    uint32_t* zero_chunk        # shared all-zero chunk of the directory's empty entries
    # the physical allocator
    uint32_t alloc_kind
    uint64_t nframes
    uint64_t cursor
    uint64_t rng
    uint64_t* used              # bitmap, 1 = allocated (tail bits past nframes set)
    uint64_t nwords
    uint32_t* used2m            # allocated frames per 2M chunk
    uint32_t* used1g            # allocated frames per 1G chunk
    uint64_t nfree
    # demand paging
    bint demand
    uint32_t huge
    uint64_t demand_flags       # leaf flags of demand-mapped pages (P, RW, US, ...)
    # paging-structure caches, by level (1 = PDE cache ... 4 = PML5E cache)
    TLBState psc[5]
    bint psc_on[5]
    bint any_psc
    # transaction log (map): entry writes and frames, undone when a map runs out of frames
    bint tx
    uint64_t* log
    intp_t log_len
    intp_t log_cap
    uint64_t tx_cursor
    uint64_t tx_rng
    PTStats st

# Life cycle. pt_init allocates the root table(s) and raises ValueError/MemoryError.
cdef int pt_init(PTState* s, uint32_t mode, uint32_t maxphyaddr, uint64_t nframes,
                 uint32_t alloc_kind, uint64_t seed, bint nxe, bint wp, bint smep,
                 bint smap) except -1 nogil
cdef void pt_free(PTState* s) noexcept nogil
# A PSC of `sets` x `ways` for the entries of `level` (1..top; not PAE's PDPTEs).
cdef int pt_psc_init(PTState* s, uint32_t level, intp_t sets, intp_t ways,
                     uint32_t policy, uint64_t seed) except -1 nogil

# Raw entries (page-table pages only; other physical addresses read as 0).
cdef uint64_t pt_read_entry(PTState* s, paddr_t pa) noexcept nogil
cdef int pt_write_entry(PTState* s, paddr_t pa, uint64_t value) noexcept nogil
# PAE: reload the PDPTE registers (MOV to CR3); -1 if a present PDPTE has reserved bits
# set (#GP, registers unchanged). Every mode: flushes the PSCs.
cdef int pt_load_cr3(PTState* s) noexcept nogil

# One translation without demand paging (never allocates).
cdef uint32_t pt_walk_nodemand(PTState* s, vaddr_t va, uint32_t access,
                               WalkOut* out) noexcept nogil
# One translation; with demand paging a not-present fault maps a page and walks again.
# Returns the error code (0 = translated); -1 with MemoryError when frames run out.
cdef int64_t pt_walk(PTState* s, vaddr_t va, uint32_t access, WalkOut* out) except -1 nogil
# pt_walk with external paging-structure caches: `psc` points to 5 TLBStates indexed by
# level (1 = PDE cache ... 4 = PML5E cache; index 0 unused), bit L of `psc_mask` says
# level L's is on, and their entries are tagged `asid` (a CPU's PSCs shared by the
# address spaces it runs: mmucore.mmu). pt_walk(s, ...) == pt_walk_ext(s, ..., s.psc,
# <mask of s.psc_on>, 0). The table's own PSCs are not touched.
cdef int64_t pt_walk_ext(PTState* s, vaddr_t va, uint32_t access, WalkOut* out,
                         TLBState* psc, uint32_t psc_mask, asid_t asid) except -1 nogil
# Drop the entries tagged `asid` of external PSCs whose region holds va; returns the count.
cdef intp_t pt_psc_invalidate_ext(PTState* s, vaddr_t va, TLBState* psc, uint32_t psc_mask,
                                  asid_t asid) noexcept nogil
# Read-only lookup (no A bits, no counters): 1 = a present leaf holds va (*level, *entry
# set), 0 = not mapped (*level = level of the first not-present entry), -1 = outside the
# linear space or a reserved bit on the path.
cdef int pt_find_leaf(PTState* s, vaddr_t va, int64_t* level, uint64_t* entry) noexcept nogil
# Map the page holding va as a demand fault would (same huge-page policy) unless it is
# mapped: 0 = mapped now, 1 = nothing done (mapped already, or cannot); MemoryError when
# the allocator has no frame.
cdef int pt_demand_map(PTState* s, vaddr_t va) except -1 nogil
# After a walk of va found a not-present entry at `level` (WalkOut.level): map the page
# as demand paging does (pt_walk's retry step). 0 = mapped (walk again), 1 = cannot (the
# fault stands); MemoryError when the allocator has no frame.
cdef int pt_demand_fault(PTState* s, vaddr_t va, int64_t level) except -1 nogil
# The batch: n accesses, one call. ops (trace op codes 0..3) may be NULL (then `access`
# applies to all); `user` adds ACC_USER. Output arrays may be NULL except paddr/fault;
# entries has n * levels slots (ENTRY_NONE padding). Returns the number of faults.
cdef intp_t pt_walk_batch(PTState* s, const vaddr_t* va, intp_t n, const uint8_t* ops,
                          uint32_t access, bint user, paddr_t* paddr, uint32_t* fault,
                          uint8_t* refs, uint8_t* size_code,
                          paddr_t* entries) except -1 nogil

# Mapping. pt_check_map: PT_OK or PT_CONFLICT (with *bad = first conflicting address) for
# n ranges of npages[i] pages of size `size_code` at va[i]. pt_map: the same ranges
# (pfn[i] first frame, or allocated when alloc) as one transaction: PT_OK, PT_NO_MEMORY
# (nothing changed) or -1 (Python error: ValueError, nothing changed, when an explicit
# frame is a page-table page). Explicit frames inside phys_mem are reserved in the
# allocator (before any table is allocated; undone with the rest). Callers check first.
cdef int pt_check_map(PTState* s, const vaddr_t* va, const uint64_t* npages, intp_t n,
                      uint32_t size_code, intp_t* bad_index, vaddr_t* bad) noexcept nogil
cdef int pt_map(PTState* s, const vaddr_t* va, const uint64_t* npages,
                const uint64_t* pfn, intp_t n, uint32_t size_code, bint alloc,
                uint64_t flags) except -1 nogil
# Unmap (op 1) or protect (op 2: entry = (entry & ~clear) | set) every leaf in
# [first, last] (inclusive); op 0 only checks. Returns leaves changed, or -1 with *bad =
# a huge page that the range cuts (nothing changed when called after op 0).
cdef intp_t pt_range_op(PTState* s, vaddr_t first, vaddr_t last, uint32_t op,
                        uint64_t set_bits, uint64_t clear_bits, vaddr_t* bad) noexcept nogil

# PSC maintenance (SDM 4.10.4.1). pt_invalidate: INVLPG; all_psc drops every PSC entry
# (the architectural rule), otherwise only those whose region holds va.
cdef intp_t pt_invalidate(PTState* s, vaddr_t va, bint all_psc) noexcept nogil
cdef intp_t pt_flush_psc(PTState* s) noexcept nogil
cdef void pt_reset_counters(PTState* s) noexcept nogil
# Checkpoints (with the GIL; between calls, so the transaction log is empty). pt_dump:
# the whole state as bytes (scalars, the used pool slots, the slot directory's chunks,
# the allocator bitmaps and counts, the table's own PSCs via tlb_dump). pt_restore: into
# a state pt_init'ed (and pt_psc_init'ed) with the same mode, MAXPHYADDR and physical
# memory; ValueError when the bytes do not fit it.
cdef bytes pt_dump(PTState* s)
cdef int pt_restore(PTState* s, bytes buf) except -1

# The physical allocator: a free unit of `size_code` (4K/2M/4M/1G) -> *pfn; 1 = none free.
# In x86_32 a 4K unit comes from below 4 GiB (32-bit entries hold 20-bit frame numbers).
cdef int pt_alloc(PTState* s, uint32_t size_code, uint64_t* pfn) noexcept nogil


cdef class PageTableCore:
    """Owns one PTState (the engine object behind pyapi.PageTable)."""
    cdef PTState st
    cdef PTState* state(self) noexcept
