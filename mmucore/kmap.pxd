# The kmap engine's public cimport surface (specs/kmap.md; docs/kmap.md says which
# kernel source each rule comes from).
#
# One KmapState holds the whole highmem machinery of one simulated machine: the global
# persistent pool (pkmap_count, cursor, per-slot PTE, page -> slot lookup as the
# page->virtual field or the 128-bucket hash), the fixmap slots of kmap_atomic (per CPU
# and type) or kmap_local (per task stack), the tasks (who runs where, who sleeps on
# the pool) and, optionally, the per-task pools of the 2002 thread. Kernels take a
# KmapState* and never touch Python objects; KmapCore (a cdef class) owns the state.
#
# The TLB hook: `tlb` is an array of `ncpus` TLBState pointers (NULL = no TLB model).
# Every kmapped address is accessed through tlb[cpu] when it is handed out, invlpg is
# tlb_invalidate on the local CPU, a global flush is tlb_flush(t, 0) on every CPU and a
# CR3 reload is tlb_flush(t, 1). KmapCore points it at per-CPU TLBCores; an MMU that
# owns per-CPU dTLBs sets the same pointers (kmap_attach_tlbs) and calls kmap_op for
# the kmap control ops of its trace.
from mmucore._types cimport (uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t,
                             pfn_t, vaddr_t, intp_t)
from mmucore.tlb cimport TLBState

cdef extern from *:
    """
    #define MMUCORE_PFN_NONE ((uint64_t)0xFFFFFFFFFFFFFFFFULL)
    """
    const uint64_t PFN_NONE "MMUCORE_PFN_NONE"

cdef enum:
    KMAP_ABI_VERSION = 1
    PA_HASH_ORDER = 7               # 2.5.41+: 1 << 7 = 128 page_address buckets
    PA_HASH_BUCKETS = 128
    KM_STACK_MAX = 16               # 6.x KM_MAX_IDX: depth of a task's kmap_local stack
    TASK_NONE = -1                  # dense task index of "no task" (an idle CPU)

# Why a run stopped: the kernel's BUG() conditions (specs/kmap.md 6.4).
cdef enum KmapBug:
    KBUG_NONE = 0
    KBUG_KUNMAP_UNMAPPED = 1        # kunmap_high: page has no pkmap address
    KBUG_COUNT_ZERO = 2             # kunmap_high: pkmap_count would reach 0
    KBUG_ATOMIC_BUSY = 3            # kmap_atomic: the (cpu, type) fixmap PTE is not empty
    KBUG_ATOMIC_UNMAPPED = 4        # kunmap_atomic: the (cpu, type) slot does not map the page
    KBUG_LOCAL_OVERFLOW = 5         # kmap_local: idx >= KM_MAX_IDX after the push (15 live max)
    KBUG_LOCAL_LIFO = 6             # kunmap_local: not the most recent mapping
    KBUG_LOCAL_EMPTY = 7            # kunmap_local: the task holds no local kmap
    KBUG_MIGRATE = 8                # a task with live kmap_local entries runs on another CPU
    KBUG_SCHED_ATOMIC = 9           # context switch while a kmap_atomic (preempt off) is live

# Where the kmap_atomic fixmap slots live and when they are invlpg'd (specs/kmap.md 3).
cdef enum AtomicMode:
    ATOMIC_TYPED = 0                # slot = type + KM_TYPE_NR*cpu (2.4 .. 2.6.36)
    ATOMIC_TASK_STACK = 1           # per-task kmap_ctrl stack, slot = idx + KM_MAX_IDX*cpu (5.11+)

# Results of one op.
cdef enum:
    KOP_DONE = 0
    KOP_SLEPT = 1                   # the task sleeps on pkmap_map_wait (op kept for retry)
    KOP_DEFERRED = 2                # the task is asleep: the op waits behind its blocked op
    KOP_BUG = 3                     # a BUG() condition: details in KmapState.bug*

cdef struct KmapCounters:
    uint64_t ops
    uint64_t kmaps                  # kmap calls (lowmem included)
    uint64_t kunmaps
    uint64_t lowmem                 # kmap/kunmap/kmap_atomic/kunmap_atomic of lowmem pfns (bypass)
    uint64_t lookups                # page_address() calls on highmem pages (global pool)
    uint64_t hash_probes            # chain entries compared by hashed page_address()
    uint64_t hits                   # kmap_high found the page mapped (no scan)
    uint64_t new_mappings           # map_new_virtual installs
    uint64_t cursor_steps           # cursor increments
    uint64_t wraps                  # cursor wraps = flush_all_zero_pkmaps calls
    uint64_t slots_reclaimed        # count 1 -> 0 inside flush_all_zero_pkmaps
    uint64_t global_flushes         # flush_tlb_all
    uint64_t ipis                   # global flushes x (online CPUs - 1)
    uint64_t sleeps                 # a task went to sleep in map_new_virtual
    uint64_t wakeups                # wake_up(&pkmap_map_wait) calls (wake-all)
    uint64_t deferred               # ops of sleeping tasks that had to wait
    uint64_t atomic_maps            # kmap_atomic / kmap_local of highmem pfns
    uint64_t atomic_unmaps
    uint64_t invlpgs                # local invlpg (atomic map/unmap, kmap_local sched_out)
    uint64_t local_reinstalls       # kmap_local PTEs re-installed at sched_in
    uint64_t context_switches
    uint64_t cr3_loads              # context switches that load another page table
    uint64_t user_accesses          # LOAD/STORE/IFETCH/MODIFY ops
    # per-task pool (specs/kmap.md 6.6)
    uint64_t task_lookups
    uint64_t task_probes            # table slots compared by the per-task lookups
    uint64_t task_hits
    uint64_t task_new_mappings
    uint64_t task_cursor_steps
    uint64_t task_wraps
    uint64_t task_reclaimed
    uint64_t task_flushes           # local non-global flushes at a window wrap
    uint64_t task_shootdowns        # wraps of a shared window that had to IPI other CPUs
    uint64_t task_ipis
    uint64_t task_fallbacks         # window full: the kmap went to the global pool
    uint64_t cross_task             # kmaps flagged cross-task: the global pool
    # TLB coupling
    uint64_t kmap_tlb_accesses      # kmapped addresses handed out and accessed
    uint64_t kmap_tlb_misses
    uint64_t user_tlb_misses
    uint64_t tlb_entries_flushed    # entries dropped by the pool's flushes (global + per-task)

# An open-addressing table pfn (or id) -> int32, linear probing, no deletion (rebuilt).
cdef struct PfnTable:
    uint64_t* key                   # PFN_NONE = empty
    int32_t* val
    uint64_t mask
    uint32_t shift                  # 64 - log2(capacity)
    intp_t used

cdef struct KTask:
    uint32_t id
    uint64_t mm
    int32_t cpu                     # CPU it last ran on, -1 = never ran
    int32_t window                  # its per-task window (per-task pool), -1 = none yet
    int32_t lidx                    # kmap_local stack depth
    int32_t natomic                 # of which kmap_atomic (preemption off)
    pfn_t lpfn[16]                  # KM_STACK_MAX
    uint8_t latomic[16]
    bint asleep
    intp_t nbacklog                 # its ops waiting in the deferred list
    # the op it sleeps in (retried on wake-up)
    uint8_t b_op
    uint16_t b_arg
    uint16_t b_cpu
    pfn_t b_pfn
    int64_t b_index

cdef struct KDeferred:              # an op of a sleeping task, in trace order
    int64_t index
    pfn_t pfn
    int32_t task                    # dense index, -1 = done
    uint16_t arg
    uint16_t cpu
    uint8_t op

cdef struct KWindow:                # one per-task (or per-mm) kmap window
    uint64_t owner                  # task id or mm id
    int32_t* count                  # pkmap_count semantics: 0 / 1 / n
    pfn_t* pfn
    intp_t cursor
    bint dirty                      # mapped or used since the last flush / CR3 reload
    PfnTable tab

cdef struct KmapState:
    # configuration
    intp_t nslots                   # LAST_PKMAP
    intp_t ncpus
    pfn_t highmem_start             # first highmem pfn
    bint hashed                     # page_address: 128-bucket hash (2.5.41+) or field
    uint32_t hash_mult              # 0x9e370001 (2.5.41 .. 2.6) / 0x61C88647 (6.x)
    uint32_t mem_map                # kernel virtual address of mem_map (32-bit)
    uint32_t page_struct            # sizeof(struct page)
    bint flush_if_needed            # 6.x: flush only when a slot was reclaimed
    uint32_t atomic_mode            # AtomicMode
    bint atomic_flush_on_map        # 2.4 .. 2.6.12: invlpg at map; later: at unmap
    intp_t km_type_nr               # typed slots per CPU, or the stack depth
    vaddr_t pkmap_base
    vaddr_t fixaddr_top
    intp_t fix_kmap_begin
    bint per_task                   # per-task pool on
    bint share_mm                   # windows per mm (threads share) instead of per task
    bint lazy_switch                # a CR3 reload since the last flush makes a wrap flush free
    intp_t wslots                   # slots per window (M)
    vaddr_t window_base
    # global pool
    int32_t* pkmap_count
    pfn_t* slot_pfn                 # the slot's PTE: pfn mapped, PFN_NONE = pte_none
    intp_t cursor                   # last_pkmap_nr
    PfnTable gtab                   # page->virtual (field mode): pfn -> slot
    pfn_t* bk_pfn[128]              # hashed mode: each bucket's chain, head first, as
    int32_t* bk_slot[128]           # contiguous arrays (pfn, slot) of bk_len entries
    int32_t bk_len[128]
    int32_t bk_cap[128]
    # atomic slots, typed mode: ncpus * km_type_nr pfns (PFN_NONE = empty)
    pfn_t* apfn
    # CPUs
    int32_t* cur                    # dense index of the running task, TASK_NONE = idle
    uint64_t* cur_id                # its id (UINT64 max when idle)
    uint64_t* cur_space             # page-table identity loaded in CR3 (mm, or task)
    TLBState** tlb                  # per CPU, or NULL
    # tasks
    KTask* tasks
    intp_t ntasks
    intp_t tasks_cap
    PfnTable task_tab               # task id -> dense index
    # per-task windows
    KWindow* windows
    intp_t nwindows
    intp_t windows_cap
    PfnTable window_tab             # owner (task or mm id) -> window index
    # sleepers
    int32_t* waitq                  # dense task indices, in sleep order
    intp_t nwait
    intp_t waitq_cap
    int32_t* wakebuf
    intp_t nsleeping
    bint pending_wake
    KDeferred* deferred
    intp_t ndeferred                # entries (done ones included until compaction)
    intp_t deferred_live
    intp_t deferred_cap
    # counters
    KmapCounters c
    # the BUG that stopped the run
    int32_t bug
    int64_t bug_index
    uint8_t bug_op
    pfn_t bug_pfn
    uint32_t bug_task
    uint16_t bug_cpu
    int64_t bug_value

# Life cycle: kmap_init allocates (MemoryError/ValueError); kmap_free releases.
cdef int kmap_init(KmapState* s, intp_t nslots, intp_t ncpus, pfn_t highmem_start,
                   bint hashed, uint32_t hash_mult, uint32_t mem_map, uint32_t page_struct,
                   bint flush_if_needed, uint32_t atomic_mode, bint atomic_flush_on_map,
                   intp_t km_type_nr, vaddr_t pkmap_base, vaddr_t fixaddr_top,
                   intp_t fix_kmap_begin, bint per_task, bint share_mm, bint lazy_switch,
                   intp_t wslots, vaddr_t window_base) except -1 nogil
cdef void kmap_free(KmapState* s) noexcept nogil
cdef void kmap_attach_tlbs(KmapState* s, TLBState** tlbs) noexcept nogil

# page_address(): the slot holding `pfn` in the global pool, or -1. Counts the lookup
# (and the hash probes when hashed). Lowmem pfns are not in the pool (-1, not counted).
cdef intp_t kmap_page_address(KmapState* s, pfn_t pfn) noexcept nogil
# The page_address hash bucket of a pfn: hash_ptr of its struct page (hashed kernels).
cdef uint32_t kmap_bucket(KmapState* s, pfn_t pfn) noexcept nogil

# One trace op (op codes of _types.OpCode; `arg` is the size column: the km_type of a
# typed kmap_atomic, 1 = kmap_atomic (not kmap_local) on task-stack kernels, 1 =
# cross-task for KMAP/KUNMAP of the per-task pool). Returns a KOP_* value; KOP_BUG
# leaves the state as it was before the op and the details in s.bug*. Wake-ups that
# the op triggers are run by kmap_settle. Allocates on rare paths (tasks, windows,
# deferred ops): -1 with MemoryError.
cdef int kmap_op(KmapState* s, uint8_t op, uint64_t addr, uint16_t arg, uint16_t cpu,
                 uint32_t task, int64_t index) except -1 nogil
# Run the sleepers woken by kunmaps (wake-all, in sleep order) and the ops they had
# deferred, until no wake-up is pending. Returns KOP_DONE or KOP_BUG.
cdef int kmap_settle(KmapState* s) except -1 nogil
# The batch loop: n ops, one call. size/cpu/task may be NULL (0, 0 and "task = cpu").
# `base` is the index of op 0 in the whole trace. Returns KOP_DONE or KOP_BUG; -1 with
# ValueError for a cpu >= ncpus (before any op runs) or, in kmap_op too, a typed km_type
# >= KM_TYPE_NR.
cdef int kmap_run(KmapState* s, const uint64_t* addr, const uint8_t* op,
                  const uint16_t* size, const uint16_t* cpu, const uint32_t* task,
                  intp_t n, int64_t base) except -1 nogil


cdef class KmapCore:
    """Owns one KmapState (the engine object behind pyapi.KmapPool)."""
    cdef KmapState st
    cdef object _tlbs
    cdef KmapState* state(self) noexcept
