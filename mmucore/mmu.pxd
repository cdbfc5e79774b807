# The MMU engine's public cimport surface.
#
# An MMUState is a whole translation machine: per CPU, its TLB structures (TLBStates of
# tlb.pxd: L1 instruction/data, L2), its paging-structure caches (one TLBState per level,
# entries tagged by ASID), its current ASID, two same-page memos and its counters; per
# ASID, a page table (a PTState of pagetable.pxd, created on first use). docs/mmu.md is
# the contract; `MMUCore` (a cdef class) owns the state and sits behind `pyapi.MMU`.
from mmucore._types cimport (uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t,
                             vaddr_t, paddr_t, asid_t, intp_t)
from mmucore.tlb cimport TLBState
from mmucore.pagetable cimport PTState

cdef enum:
    MMU_ABI_VERSION = 3         # bumped with every change of MMUState/MMUCpu or a kernel
    MMU_MAX_TLBS = 8            # TLB structures per CPU
    MMU_MAX_ASIDS = 4096        # ASIDs 0..4095 (12-bit PCIDs)
    MMU_MAX_CPUS = 1024
    # sides
    SIDE_DATA = 0
    SIDE_INSTRUCTION = 1
    SIDE_UNIFIED = 2
    # inclusion between level 1 and level 2
    INCL_INCLUSIVE = 0
    INCL_NON_INCLUSIVE = 1
    INCL_EXCLUSIVE = 2
    # per-access `where` output
    WHERE_L1 = 0
    WHERE_L2 = 1
    WHERE_WALK = 2
    WHERE_FAULT = 3
    WHERE_CONTROL = 255
    # per-CPU counters: indices into MMUCpu.c (names in mmucore.mmu.COUNTER_NAMES)
    C_ACCESSES = 0
    C_TRANSLATIONS = 1
    C_SPLIT_ACCESSES = 2
    C_L1_HITS = 3
    C_L1_MISSES = 4
    C_L2_HITS = 5
    C_L2_MISSES = 6
    C_WALKS = 7
    C_WALK_REFS = 8
    C_WALK_REFS_PTE = 9         # + level: PTE, PDE, PDPTE, PML4E, PML5E
    C_FAULTS = 14
    C_FAULTS_NOT_PRESENT = 15
    C_FAULTS_PROTECTION = 16
    C_FAULTS_RESERVED = 17
    C_FAULTS_OUTSIDE = 18
    C_DEMAND_FAULTS = 19
    C_SWITCHES = 20
    C_INVLPGS = 21
    C_FLUSHES = 22
    C_FLUSH_ASIDS = 23
    C_MAPS = 24
    C_UNMAPS = 25
    C_SHOOTDOWNS = 26
    C_IPIS_SENT = 27
    C_IPIS_RECEIVED = 28
    C_BACK_INVALIDATIONS = 29
    MMU_NCOUNTERS = 30

cdef struct MMUCpu:
    TLBState* tlb               # MMUState.n_tlbs structures
    TLBState psc[5]             # PSCs by level (1 = PDE ... 4 = PML5E), entries tagged by ASID
    uint32_t asid               # current ASID (CR3)
    int32_t l1_order[2][8]      # per side: L1 structures in probe order (last hit first)
    # same-page memo per side: the last translation, held by L1 entry memo_entry of
    # structure memo_tlb, page number va >> memo_shift (TAG_INVALID: empty)
    uint64_t memo_vpn[2]
    uint32_t memo_shift[2]
    uint32_t memo_code[2]
    int32_t memo_tlb[2]
    intp_t memo_entry[2]
    uint64_t memo_pa[2]         # physical address of the memo page's first byte
    # bit (1 << code) for every entry size ever filled into one of the CPU's TLB
    # structures: a structure is probed only for its sizes in this mask (the others
    # cannot hold an entry; with 4K pages only, the 2M/4M/1G probes are skipped)
    uint32_t size_seen
    uint64_t c[30]              # counters (C_*)

cdef struct MMUOut:             # optional per-record outputs (any pointer may be NULL)
    paddr_t* paddr
    uint8_t* where
    uint32_t* fault
    paddr_t* entries            # n x cols
    intp_t cols

cdef struct MMUState:
    intp_t cpus
    intp_t n_tlbs
    uint32_t level[8]           # per structure: 1 or 2
    uint32_t side[8]            # SIDE_*
    bint touch_on_hit[8]        # the policy changes state on a repeated hit (LFU, SRRIP)
    int32_t n_l1[2]
    int32_t n_l2[2]
    int32_t l2[2][8]            # per side: level-2 structures of that side or unified
    int32_t fill1[2][4]         # per side and translation size: the L1 structure taking it
    uint32_t fill1_code[2][4]   # ... and the entry size it stores (splinter), or -1 / 255
    int32_t fill2[2][4]
    uint32_t fill2_code[2][4]
    uint32_t inclusion          # INCL_*
    uint32_t psc_mask           # bit L: PSC of level L on
    bint pcid
    uint32_t mode               # pagetable MODE_*
    uint32_t user_flag          # ACC_USER or 0
    uint32_t levels
    MMUCpu* cpu
    PTState* pt[4096]           # per ASID; NULL until created
    uint64_t asids              # address spaces created
    uint64_t position           # records processed (cumulative)
    void* owner                 # the MMUCore (creates page tables, with the GIL)
    void* run_cache             # scratch of the batch loop's 4K run (its path cache):
                                # allocated by the first run, freed by the MMUCore

# Run n trace records (one chunk) in one call. op/size/cpu may be NULL (all loads, size
# 1, CPU 0); the caller has validated cpu < cpus, op codes 0..9 and control arguments.
# Returns n, or -1 with MemoryError (physical memory exhausted in a demand fault;
# m.position tells the record) or an error of the page-table factory.
cdef intp_t mmu_run(MMUState* m, const vaddr_t* addr, const uint8_t* op,
                    const uint16_t* size, const uint16_t* cpu, intp_t n,
                    MMUOut* out) except -1 nogil
# Invalidate [first, last] of `asid` (and global entries) in every CPU's TLBs and drop
# the ASID's PSC entries (what MMU.unmap/protect do after changing the table).
cdef void mmu_invalidate_range(MMUState* m, asid_t asid, vaddr_t first,
                               vaddr_t last) noexcept nogil
cdef void mmu_reset_counters(MMUState* m) noexcept nogil
# Checkpoints (with the GIL). mmu_dump: the MMUState's and every MMUCpu's scalars (ASIDs,
# probe orders, memos, size_seen, counters, position, ...) and every CPU's TLB structures
# and PSCs (tlb_dump); the page tables are dumped per ASID with pt_dump. mmu_restore:
# into a state built from the same configuration whose page tables exist for exactly the
# saved ASIDs (restored separately); ValueError when the bytes do not fit it.
cdef bytes mmu_dump(MMUState* m)
cdef int mmu_restore(MMUState* m, bytes buf) except -1


cdef class MMUCore:
    """Owns one MMUState (the engine object behind pyapi.MMU)."""
    cdef MMUState st
    cdef list _tables           # PageTableCore per ASID (keeps the PTStates alive)
    cdef object _factory
    cdef MMUState* state(self) noexcept
    cdef int _create(self, uint32_t asid) except -1
