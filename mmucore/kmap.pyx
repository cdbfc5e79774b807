"""The Linux highmem kmap machinery as a trace-driven engine (specs/kmap.md; docs/kmap.md).

The global persistent pool (``kmap_high``/``kunmap_high``/``map_new_virtual``/
``flush_all_zero_pkmaps``), ``page_address()`` as the ``page->virtual`` field or the
128-bucket hash, ``kmap_atomic`` fixmap slots (per CPU and type) or the ``kmap_local``
per-task stack, tasks sleeping on a full pool with wake-all, and the per-task pool
what-if of the 2002 thread. Use it through ``pyapi.KmapPool``/``pyapi.PerTaskKmapPool``.

>>> import numpy as np
>>> core = KmapCore(nslots=8, highmem_start=100)
>>> op = np.array([10, 10, 11], dtype=np.uint8)       # KMAP, KMAP, KUNMAP
>>> core.run(np.array([200, 200, 200], dtype=np.uint64), op)
0
>>> c = core.counters(); c["hits"], c["new_mappings"], c["cursor_steps"]
(1, 1, 1)
"""
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memset, memcpy, memmove
from mmucore._types cimport (uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t,
                             pfn_t, vaddr_t, intp_t, PS_4K, OP_LOAD, OP_STORE, OP_IFETCH,
                             OP_MODIFY, OP_SWITCH, OP_KMAP, OP_KUNMAP, OP_KMAP_ATOMIC,
                             OP_KUNMAP_ATOMIC)
from mmucore.tlb cimport (TLBState, TLBCore, tlb_access, tlb_invalidate, tlb_flush)

import numpy as np

#: Version of KmapState and the kernel signatures in kmap.pxd (bumped with every change).
ABI_VERSION = KMAP_ABI_VERSION
#: sizeof(KmapState) in this build.
STATE_SIZE = sizeof(KmapState)
#: AtomicMode codes by name (KernelSpec.atomic).
ATOMIC_MODES = {"typed": ATOMIC_TYPED, "stack": ATOMIC_TASK_STACK}
#: Depth of a task's kmap_local stack (6.x KM_MAX_IDX).
KM_STACK_MAX_DEPTH = KM_STACK_MAX
#: KmapBug codes -> names.
BUG_NAMES = {KBUG_KUNMAP_UNMAPPED: "KUNMAP_UNMAPPED", KBUG_COUNT_ZERO: "COUNT_ZERO",
             KBUG_ATOMIC_BUSY: "ATOMIC_BUSY", KBUG_ATOMIC_UNMAPPED: "ATOMIC_UNMAPPED",
             KBUG_LOCAL_OVERFLOW: "LOCAL_OVERFLOW", KBUG_LOCAL_LIFO: "LOCAL_LIFO",
             KBUG_LOCAL_EMPTY: "LOCAL_EMPTY", KBUG_MIGRATE: "MIGRATE",
             KBUG_SCHED_ATOMIC: "SCHED_ATOMIC"}


def abi_check(int version, Py_ssize_t state_size):
    """Raise ImportError unless a consumer built against `version`/`state_size` matches."""
    if version != KMAP_ABI_VERSION or state_size != <Py_ssize_t>sizeof(KmapState):
        raise ImportError(
            f"compiled against mmucore.kmap ABI {version} (KmapState {state_size} bytes) "
            f"but the installed engine is ABI {KMAP_ABI_VERSION} ({sizeof(KmapState)} "
            f"bytes): rebuild the extension against the installed mmucore")


cdef uint64_t ID_NONE = <uint64_t>0xFFFFFFFFFFFFFFFF
cdef uint64_t SPACE_TASK = (<uint64_t>1) << 63     # CR3 identity of a per-task page table


# ------------------------------------------------------------------- pfn -> int32 table
# Open addressing, linear probing, at most half full; no deletion: a table loses keys
# only at a wrap, and is then rebuilt from the surviving slots.
cdef inline uint64_t _home(PfnTable* t, uint64_t key) noexcept nogil:
    return ((key * <uint64_t>0x9E3779B97F4A7C15) >> t.shift) & t.mask


cdef int _pt_init(PfnTable* t, intp_t min_cap) noexcept nogil:
    """Allocate an empty table for min_cap keys; -1 when out of memory (no exception)."""
    cdef intp_t cap = 8
    cdef uint32_t lg = 3
    cdef intp_t i
    while cap < 2 * min_cap:
        cap <<= 1
        lg += 1
    t.key = <uint64_t*>malloc(cap * sizeof(uint64_t))
    t.val = <int32_t*>malloc(cap * sizeof(int32_t))
    if t.key == NULL or t.val == NULL:
        free(t.key)
        free(t.val)
        t.key = NULL
        t.val = NULL
        return -1
    for i in range(cap):
        t.key[i] = PFN_NONE
    t.mask = <uint64_t>(cap - 1)
    t.shift = 64 - lg
    t.used = 0
    return 0


cdef void _pt_free(PfnTable* t) noexcept nogil:
    free(t.key)
    free(t.val)
    t.key = NULL
    t.val = NULL


cdef inline int32_t _pt_find(PfnTable* t, uint64_t key, uint64_t* probes) noexcept nogil:
    cdef uint64_t i = _home(t, key)
    cdef uint64_t k
    while True:
        probes[0] += 1
        k = t.key[i]
        if k == key:
            return t.val[i]
        if k == PFN_NONE:
            return -1
        i = (i + 1) & t.mask


cdef int _pt_grow(PfnTable* t) except -1 nogil:
    cdef PfnTable old = t[0]
    cdef uint64_t i
    if _pt_init(t, <intp_t>(old.mask + 1)) < 0:
        t[0] = old
        with gil:
            raise MemoryError("kmap: cannot grow a lookup table")
    for i in range(old.mask + 1):
        if old.key[i] != PFN_NONE:
            _pt_put(t, old.key[i], old.val[i])
    _pt_free(&old)
    return 0


cdef inline void _pt_put(PfnTable* t, uint64_t key, int32_t val) noexcept nogil:
    """Insert (key absent; the table is at most half full)."""
    cdef uint64_t i = _home(t, key)
    while t.key[i] != PFN_NONE:
        i = (i + 1) & t.mask
    t.key[i] = key
    t.val[i] = val
    t.used += 1


# ------------------------------------------------------------------- life cycle
cdef int kmap_init(KmapState* s, intp_t nslots, intp_t ncpus, pfn_t highmem_start,
                   bint hashed, uint32_t hash_mult, uint32_t mem_map, uint32_t page_struct,
                   bint flush_if_needed, uint32_t atomic_mode, bint atomic_flush_on_map,
                   intp_t km_type_nr, vaddr_t pkmap_base, vaddr_t fixaddr_top,
                   intp_t fix_kmap_begin, bint per_task, bint share_mm, bint lazy_switch,
                   intp_t wslots, vaddr_t window_base) except -1 nogil:
    cdef intp_t i
    if nslots < 1 or ncpus < 1 or km_type_nr < 1 or (per_task and wslots < 1):
        with gil:
            raise ValueError("kmap: slots, cpus, km types and window slots must be >= 1")
    memset(s, 0, sizeof(KmapState))
    s.nslots = nslots
    s.ncpus = ncpus
    s.highmem_start = highmem_start
    s.hashed = hashed
    s.hash_mult = hash_mult
    s.mem_map = mem_map
    s.page_struct = page_struct
    s.flush_if_needed = flush_if_needed
    s.atomic_mode = atomic_mode
    s.atomic_flush_on_map = atomic_flush_on_map
    s.km_type_nr = km_type_nr
    s.pkmap_base = pkmap_base
    s.fixaddr_top = fixaddr_top
    s.fix_kmap_begin = fix_kmap_begin
    s.per_task = per_task
    s.share_mm = share_mm
    s.lazy_switch = lazy_switch
    s.wslots = wslots
    s.window_base = window_base
    s.pkmap_count = <int32_t*>calloc(nslots, sizeof(int32_t))
    s.slot_pfn = <pfn_t*>malloc(nslots * sizeof(pfn_t))
    s.apfn = <pfn_t*>malloc(ncpus * km_type_nr * sizeof(pfn_t))
    s.cur = <int32_t*>malloc(ncpus * sizeof(int32_t))
    s.cur_id = <uint64_t*>malloc(ncpus * sizeof(uint64_t))
    s.cur_space = <uint64_t*>malloc(ncpus * sizeof(uint64_t))
    if (s.pkmap_count == NULL or s.slot_pfn == NULL or s.apfn == NULL or s.cur == NULL or s.cur_id == NULL
            or s.cur_space == NULL):
        kmap_free(s)
        with gil:
            raise MemoryError("kmap: cannot allocate the pool")
    for i in range(nslots):
        s.slot_pfn[i] = PFN_NONE
    for i in range(ncpus * km_type_nr):
        s.apfn[i] = PFN_NONE
    for i in range(ncpus):
        s.cur[i] = TASK_NONE
        s.cur_id[i] = ID_NONE
        s.cur_space[i] = ID_NONE
    s.cursor = 0
    if hashed:
        for i in range(PA_HASH_BUCKETS):
            s.bk_cap[i] = <int32_t>(2 * nslots // PA_HASH_BUCKETS + 8)
            s.bk_pfn[i] = <pfn_t*>malloc(s.bk_cap[i] * sizeof(pfn_t))
            s.bk_slot[i] = <int32_t*>malloc(s.bk_cap[i] * sizeof(int32_t))
            if s.bk_pfn[i] == NULL or s.bk_slot[i] == NULL:
                kmap_free(s)
                with gil:
                    raise MemoryError("kmap: cannot allocate the page_address hash")
    if (_pt_init(&s.gtab, 0 if hashed else nslots) < 0 or _pt_init(&s.task_tab, 16) < 0
            or _pt_init(&s.window_tab, 16) < 0):
        kmap_free(s)
        with gil:
            raise MemoryError("kmap: cannot allocate the lookup tables")
    return 0


cdef void kmap_free(KmapState* s) noexcept nogil:
    cdef intp_t i
    free(s.pkmap_count)
    free(s.slot_pfn)
    for i in range(PA_HASH_BUCKETS):
        free(s.bk_pfn[i])
        free(s.bk_slot[i])
        s.bk_pfn[i] = NULL
        s.bk_slot[i] = NULL
    free(s.apfn)
    free(s.cur)
    free(s.cur_id)
    free(s.cur_space)
    free(s.tasks)
    for i in range(s.nwindows):
        free(s.windows[i].count)
        free(s.windows[i].pfn)
        _pt_free(&s.windows[i].tab)
    free(s.windows)
    free(s.waitq)
    free(s.wakebuf)
    free(s.deferred)
    _pt_free(&s.gtab)
    _pt_free(&s.task_tab)
    _pt_free(&s.window_tab)
    s.pkmap_count = NULL
    s.slot_pfn = NULL
    s.apfn = NULL
    s.cur = NULL
    s.cur_id = NULL
    s.cur_space = NULL
    s.tasks = NULL
    s.windows = NULL
    s.nwindows = 0
    s.ntasks = 0
    s.waitq = NULL
    s.wakebuf = NULL
    s.deferred = NULL


cdef void kmap_attach_tlbs(KmapState* s, TLBState** tlbs) noexcept nogil:
    s.tlb = tlbs


# ------------------------------------------------------------------- TLB hooks
cdef inline void _tlb_use(KmapState* s, intp_t cpu, vaddr_t va, bint is_global) noexcept nogil:
    s.c.kmap_tlb_accesses += 1
    if s.tlb != NULL and s.tlb[cpu] != NULL:
        if not tlb_access(s.tlb[cpu], va, 0, PS_4K, is_global):
            s.c.kmap_tlb_misses += 1


cdef inline void _invlpg(KmapState* s, intp_t cpu, vaddr_t va) noexcept nogil:
    s.c.invlpgs += 1
    if s.tlb != NULL and s.tlb[cpu] != NULL:
        tlb_invalidate(s.tlb[cpu], va, 0, 0)


cdef inline void _cpu_flush(KmapState* s, intp_t cpu, bint keep_global) noexcept nogil:
    if s.tlb != NULL and s.tlb[cpu] != NULL:
        s.c.tlb_entries_flushed += <uint64_t>tlb_flush(s.tlb[cpu], keep_global)


cdef void _global_flush(KmapState* s) noexcept nogil:
    """flush_tlb_all(): IPI every other online CPU; every CPU drops every entry (CR4.PGE
    toggle), global ones included (specs/kmap.md 1.5)."""
    cdef intp_t c
    s.c.global_flushes += 1
    s.c.ipis += <uint64_t>(s.ncpus - 1)
    if s.tlb != NULL:
        for c in range(s.ncpus):
            if s.tlb[c] != NULL:
                s.c.tlb_entries_flushed += <uint64_t>tlb_flush(s.tlb[c], 0)


cdef inline vaddr_t _fix_addr(KmapState* s, intp_t idx) noexcept nogil:
    return s.fixaddr_top - (<vaddr_t>(s.fix_kmap_begin + idx) << 12)


# ------------------------------------------------------------------- page_address
cdef uint32_t kmap_bucket(KmapState* s, pfn_t pfn) noexcept nogil:
    cdef uint32_t page = s.mem_map + <uint32_t>pfn * s.page_struct
    return (page * s.hash_mult) >> (32 - PA_HASH_ORDER)


cdef inline intp_t _page_address(KmapState* s, pfn_t pfn) noexcept nogil:
    """page_address() of a highmem pfn: its slot or -1 (counted)."""
    cdef uint64_t dummy = 0
    cdef uint32_t b
    cdef int32_t k, n
    cdef const pfn_t* chain
    s.c.lookups += 1
    if not s.hashed:
        return _pt_find(&s.gtab, pfn, &dummy)
    b = kmap_bucket(s, pfn)
    chain = s.bk_pfn[b]
    n = s.bk_len[b]
    for k in range(n):
        if chain[k] == pfn:
            s.c.hash_probes += <uint64_t>(k + 1)
            return s.bk_slot[b][k]
    s.c.hash_probes += <uint64_t>n
    return -1


cdef intp_t kmap_page_address(KmapState* s, pfn_t pfn) noexcept nogil:
    if pfn < s.highmem_start:
        return -1
    return _page_address(s, pfn)


cdef int _reserve_bucket(KmapState* s, pfn_t pfn) except -1 nogil:
    """Room for one more entry in pfn's bucket (hashed mode; the rare growth path)."""
    cdef uint32_t b = kmap_bucket(s, pfn)
    cdef int32_t cap
    cdef void* p
    cdef void* q
    if s.bk_len[b] < s.bk_cap[b]:
        return 0
    cap = 2 * s.bk_cap[b]
    p = realloc(s.bk_pfn[b], cap * sizeof(pfn_t))
    if p != NULL:
        s.bk_pfn[b] = <pfn_t*>p
    q = realloc(s.bk_slot[b], cap * sizeof(int32_t))
    if q != NULL:
        s.bk_slot[b] = <int32_t*>q
    if p == NULL or q == NULL:
        with gil:
            raise MemoryError("kmap: cannot grow a page_address hash chain")
    s.bk_cap[b] = cap
    return 0


cdef inline void _set_page_address(KmapState* s, pfn_t pfn, intp_t slot) noexcept nogil:
    """Add: the page's address is the slot (field write, or list_add_tail to the bucket's
    chain; _reserve_bucket made room)."""
    cdef uint32_t b
    if not s.hashed:
        _pt_put(&s.gtab, pfn, <int32_t>slot)
        return
    b = kmap_bucket(s, pfn)
    s.bk_pfn[b][s.bk_len[b]] = pfn
    s.bk_slot[b][s.bk_len[b]] = <int32_t>slot
    s.bk_len[b] += 1


# ------------------------------------------------------------------- the global pool
cdef void _flush_all_zero_pkmaps(KmapState* s) noexcept nogil:
    """Reclaim every slot at count 1 (PTE cleared, page address removed), then the global
    flush: always in 2.4 .. 2.6, only if something was reclaimed in 6.x (specs/kmap.md
    1.4). The page -> slot lookup is rebuilt once instead of erasing entry by entry: the
    field table from the surviving slots, each hash chain by a stable compaction (the
    order of a chain is list_add_tail order, which the probe counts depend on)."""
    cdef intp_t i
    cdef uint64_t reclaimed = 0
    cdef int32_t b, k, j
    s.c.wraps += 1
    for i in range(s.nslots):
        if s.pkmap_count[i] != 1:
            continue
        s.pkmap_count[i] = 0
        s.slot_pfn[i] = PFN_NONE
        reclaimed += 1
    s.c.slots_reclaimed += reclaimed
    if reclaimed:
        if not s.hashed:
            for i in range(<intp_t>(s.gtab.mask + 1)):
                s.gtab.key[i] = PFN_NONE
            s.gtab.used = 0
            for i in range(s.nslots):
                if s.slot_pfn[i] != PFN_NONE:
                    _pt_put(&s.gtab, s.slot_pfn[i], <int32_t>i)
        else:
            for b in range(PA_HASH_BUCKETS):
                j = 0
                for k in range(s.bk_len[b]):
                    if s.slot_pfn[s.bk_slot[b][k]] != PFN_NONE:
                        s.bk_pfn[b][j] = s.bk_pfn[b][k]
                        s.bk_slot[b][j] = s.bk_slot[b][k]
                        j += 1
                s.bk_len[b] = j
    if reclaimed or not s.flush_if_needed:
        _global_flush(s)


cdef intp_t _map_new_virtual(KmapState* s, pfn_t pfn) noexcept nogil:
    """A free slot for pfn (count 1), or -1: a full circle found none (the caller sleeps)."""
    cdef intp_t count = s.nslots
    cdef intp_t nr = s.cursor
    while True:
        nr += 1
        if nr == s.nslots:
            nr = 0
        s.cursor = nr
        s.c.cursor_steps += 1
        if nr == 0:
            _flush_all_zero_pkmaps(s)
            count = s.nslots
        if s.pkmap_count[nr] == 0:
            break
        count -= 1
        if count == 0:
            return -1
    s.pkmap_count[nr] = 1
    s.slot_pfn[nr] = pfn
    _set_page_address(s, pfn, nr)
    s.c.new_mappings += 1
    return nr


cdef intp_t _kmap_miss(KmapState* s, pfn_t pfn) except -2 nogil:
    """kmap_high's slow path: map_new_virtual (slot, or -1: the task sleeps)."""
    if s.hashed:
        _reserve_bucket(s, pfn)
    return _map_new_virtual(s, pfn)


cdef inline int _kmap_high(KmapState* s, intp_t cpu, pfn_t pfn) except -1 nogil:
    cdef intp_t slot = _page_address(s, pfn)
    if slot >= 0:
        s.c.hits += 1
    else:
        slot = _kmap_miss(s, pfn)
        if slot < 0:
            return KOP_SLEPT
    s.pkmap_count[slot] += 1
    _tlb_use(s, cpu, s.pkmap_base + (<vaddr_t>slot << 12), 1)
    return KOP_DONE


cdef inline void _set_bug(KmapState* s, int32_t bug, pfn_t pfn, int64_t value) noexcept nogil:
    s.bug = bug
    s.bug_pfn = pfn
    s.bug_value = value


cdef inline int _kunmap_high(KmapState* s, pfn_t pfn) noexcept nogil:
    cdef intp_t slot = _page_address(s, pfn)
    if slot < 0:
        _set_bug(s, KBUG_KUNMAP_UNMAPPED, pfn, 0)
        return KOP_BUG
    return _kunmap_slot(s, pfn, slot)


cdef inline int _kunmap_slot(KmapState* s, pfn_t pfn, intp_t slot) noexcept nogil:
    """kunmap_high once page_address() found the page in `slot`."""
    cdef int32_t n = s.pkmap_count[slot] - 1
    if n == 0:
        _set_bug(s, KBUG_COUNT_ZERO, pfn, slot)
        return KOP_BUG
    s.pkmap_count[slot] = n
    if n == 1 and s.nwait:
        s.c.wakeups += 1
        s.pending_wake = 1
    return KOP_DONE


# ------------------------------------------------------------------- tasks
cdef int _grow(void** p, intp_t* cap, intp_t need, size_t item) except -1 nogil:
    cdef intp_t n = cap[0] if cap[0] else 8
    cdef void* q
    while n < need:
        n *= 2
    q = realloc(p[0], n * item)
    if q == NULL:
        with gil:
            raise MemoryError("kmap: out of memory")
    p[0] = q
    cap[0] = n
    return 0


cdef int32_t _task_index(KmapState* s, uint32_t tid) except -2 nogil:
    cdef uint64_t dummy = 0
    cdef int32_t ti = _pt_find(&s.task_tab, tid, &dummy)
    cdef KTask* t
    if ti >= 0:
        return ti
    if s.ntasks + 1 > s.tasks_cap:
        _grow(<void**>&s.tasks, &s.tasks_cap, s.ntasks + 1, sizeof(KTask))
    if 2 * (s.task_tab.used + 1) > <intp_t>(s.task_tab.mask + 1):
        _pt_grow(&s.task_tab)
    ti = <int32_t>s.ntasks
    s.ntasks += 1
    t = &s.tasks[ti]
    memset(t, 0, sizeof(KTask))
    t.id = tid
    t.mm = tid
    t.cpu = -1
    t.window = -1
    _pt_put(&s.task_tab, tid, ti)
    return ti


cdef inline uint64_t _space_of(KmapState* s, KTask* t) noexcept nogil:
    if s.per_task and not s.share_mm:
        return SPACE_TASK | t.id
    return t.mm


cdef void _space_left(KmapState* s, uint64_t space) noexcept nogil:
    """A CR3 reload replaced `space`: when no CPU has it loaded any more, no TLB can
    hold its window's entries, so its next wrap needs no flush (specs/kmap.md 6.6:
    Bligh's lazy TLB flushing at context switch)."""
    cdef intp_t c
    cdef uint64_t dummy = 0
    cdef int32_t w
    for c in range(s.ncpus):
        if s.cur_space[c] == space:
            return
    w = _pt_find(&s.window_tab, space & ~SPACE_TASK, &dummy)
    if w >= 0:
        s.windows[w].dirty = 0


cdef void _load_space(KmapState* s, intp_t cpu, uint64_t space) noexcept nogil:
    """Load the page table `space` on cpu: a CR3 write drops the non-global entries."""
    cdef uint64_t old = s.cur_space[cpu]
    if space == old:
        return
    s.c.cr3_loads += 1
    _cpu_flush(s, cpu, 1)
    s.cur_space[cpu] = space
    if s.per_task and old != ID_NONE:
        _space_left(s, old)


cdef int _switch_to(KmapState* s, intp_t cpu, int32_t ti, uint64_t mm) noexcept nogil:
    """Make task ti the one running on cpu (an explicit SWITCH, which also gives its mm,
    or the first op of another task there: mm = ID_NONE keeps the task's). Checks
    first, so a BUG leaves the state untouched."""
    cdef KTask* t = &s.tasks[ti]
    cdef KTask* p
    cdef int32_t prev = s.cur[cpu]
    cdef intp_t i
    if t.lidx and t.cpu != cpu:
        _set_bug(s, KBUG_MIGRATE, PFN_NONE, t.cpu)
        return KOP_BUG
    if prev != TASK_NONE and s.tasks[prev].natomic:
        _set_bug(s, KBUG_SCHED_ATOMIC, PFN_NONE, s.tasks[prev].id)
        return KOP_BUG
    s.c.context_switches += 1
    if t.cpu >= 0 and t.cpu != cpu and s.cur[t.cpu] == ti:
        s.cur[t.cpu] = TASK_NONE                # it left that CPU, which idles (lazy TLB:
        s.cur_id[t.cpu] = ID_NONE               # its page table stays loaded there)
    if prev != TASK_NONE:
        p = &s.tasks[prev]
        for i in range(p.lidx):                 # kmap_local_sched_out: clear + invlpg
            _invlpg(s, cpu, _fix_addr(s, i + KM_STACK_MAX * cpu))
    s.cur[cpu] = ti
    s.cur_id[cpu] = t.id
    t.cpu = <int32_t>cpu
    if mm != ID_NONE and mm != t.mm:
        t.mm = mm
        if s.share_mm:
            t.window = -1
    s.c.local_reinstalls += <uint64_t>t.lidx    # kmap_local_sched_in: set_pte, no flush
    _load_space(s, cpu, _space_of(s, t))
    return KOP_DONE


cdef int _defer(KmapState* s, int32_t ti, uint8_t op, uint64_t addr, uint16_t arg,
                uint16_t cpu, int64_t index) except -1 nogil:
    cdef KDeferred* d
    if s.ndeferred + 1 > s.deferred_cap:
        _grow(<void**>&s.deferred, &s.deferred_cap, s.ndeferred + 1, sizeof(KDeferred))
    d = &s.deferred[s.ndeferred]
    s.ndeferred += 1
    s.deferred_live += 1
    d.index = index
    d.pfn = addr
    d.task = ti
    d.arg = arg
    d.cpu = cpu
    d.op = op
    s.tasks[ti].nbacklog += 1
    s.c.deferred += 1
    return 0


cdef int _sleep(KmapState* s, int32_t ti, uint8_t op, uint64_t addr, uint16_t arg,
                uint16_t cpu, int64_t index) except -1 nogil:
    cdef KTask* t
    cdef void* buf
    if s.nwait + 1 > s.waitq_cap:
        buf = realloc(s.wakebuf, 2 * (s.nwait + 8) * sizeof(int32_t))
        if buf == NULL:
            with gil:
                raise MemoryError("kmap: out of memory")
        s.wakebuf = <int32_t*>buf
        _grow(<void**>&s.waitq, &s.waitq_cap, s.nwait + 1, sizeof(int32_t))
    t = &s.tasks[ti]
    t.asleep = 1
    t.b_op = op
    t.b_pfn = addr
    t.b_arg = arg
    t.b_cpu = cpu
    t.b_index = index
    s.waitq[s.nwait] = ti
    s.nwait += 1
    s.nsleeping += 1
    s.c.sleeps += 1
    return 0


# ------------------------------------------------------------------- per-task windows
cdef inline int32_t _window_of(KmapState* s, KTask* t) except -2 nogil:
    if t.window >= 0:
        return t.window
    return _window_new(s, t)


cdef int32_t _window_new(KmapState* s, KTask* t) except -2 nogil:
    """The window of t's owner (task, or mm when shared), created on first use."""
    cdef uint64_t owner = t.mm if s.share_mm else t.id
    cdef uint64_t dummy = 0
    cdef intp_t i
    cdef int32_t w
    cdef KWindow* win
    w = _pt_find(&s.window_tab, owner, &dummy)
    if w < 0:
        if s.nwindows + 1 > s.windows_cap:
            _grow(<void**>&s.windows, &s.windows_cap, s.nwindows + 1, sizeof(KWindow))
        if 2 * (s.window_tab.used + 1) > <intp_t>(s.window_tab.mask + 1):
            _pt_grow(&s.window_tab)
        w = <int32_t>s.nwindows
        win = &s.windows[w]
        memset(win, 0, sizeof(KWindow))
        win.owner = owner
        win.count = <int32_t*>calloc(s.wslots, sizeof(int32_t))
        win.pfn = <pfn_t*>malloc(s.wslots * sizeof(pfn_t))
        if win.count == NULL or win.pfn == NULL or _pt_init(&win.tab, s.wslots) < 0:
            free(win.count)
            free(win.pfn)
            with gil:
                raise MemoryError("kmap: cannot allocate a per-task window")
        for i in range(s.wslots):
            win.pfn[i] = PFN_NONE
        s.nwindows += 1
        _pt_put(&s.window_tab, owner, w)
    t.window = w
    return w


cdef void _window_wrap(KmapState* s, KWindow* w, intp_t cpu, KTask* t) noexcept nogil:
    """The window's cursor wrapped: reclaim its idle slots; if any of them may still be
    in a TLB (mapped or used since the last flush or CR3 reload), flush this CPU's
    non-global entries, and shoot down the other CPUs running the same mm when the
    window is shared by threads (specs/kmap.md 6.6)."""
    cdef intp_t i, c
    cdef uint64_t reclaimed = 0, others = 0, space
    s.c.task_wraps += 1
    for i in range(s.wslots):
        if w.count[i] != 1:
            continue
        w.count[i] = 0
        w.pfn[i] = PFN_NONE
        reclaimed += 1
    s.c.task_reclaimed += reclaimed
    if reclaimed:                               # rebuild the lookup from the survivors
        for i in range(<intp_t>(w.tab.mask + 1)):
            w.tab.key[i] = PFN_NONE
        w.tab.used = 0
        for i in range(s.wslots):
            if w.pfn[i] != PFN_NONE:
                _pt_put(&w.tab, w.pfn[i], <int32_t>i)
    if not reclaimed or not (w.dirty or not s.lazy_switch):
        return
    s.c.task_flushes += 1
    _cpu_flush(s, cpu, 1)
    space = _space_of(s, t)
    for c in range(s.ncpus):                    # other CPUs with this page table loaded
        if c != cpu and s.cur_space[c] == space:
            others += 1
            _cpu_flush(s, c, 1)
    if others:
        s.c.task_shootdowns += 1
        s.c.task_ipis += others
    w.dirty = 0


cdef intp_t _window_map_new(KmapState* s, KWindow* w, pfn_t pfn, intp_t cpu,
                            KTask* t) noexcept nogil:
    cdef intp_t count = s.wslots
    cdef intp_t nr = w.cursor
    while True:
        nr += 1
        if nr == s.wslots:
            nr = 0
        w.cursor = nr
        s.c.task_cursor_steps += 1
        if nr == 0:
            _window_wrap(s, w, cpu, t)
            count = s.wslots
        if w.count[nr] == 0:
            break
        count -= 1
        if count == 0:
            return -1
    w.count[nr] = 1
    w.pfn[nr] = pfn
    _pt_put(&w.tab, pfn, <int32_t>nr)
    s.c.task_new_mappings += 1
    return nr


cdef int _task_kmap_miss(KmapState* s, intp_t cpu, KTask* t, KWindow* w,
                         pfn_t pfn) except -1 nogil:
    """The per-task kmap's slow path: a new window slot, or the global pool when the
    window is full."""
    cdef intp_t slot = _window_map_new(s, w, pfn, cpu, t)
    if slot < 0:
        s.c.task_fallbacks += 1
        return _kmap_high(s, cpu, pfn)
    w.count[slot] += 1
    w.dirty = 1
    _tlb_use(s, cpu, s.window_base + (<vaddr_t>slot << 12), 0)
    return KOP_DONE


cdef inline int _task_kmap(KmapState* s, intp_t cpu, int32_t ti, pfn_t pfn) except -1 nogil:
    cdef KTask* t = &s.tasks[ti]
    cdef KWindow* w = &s.windows[_window_of(s, t)]
    cdef intp_t slot
    s.c.task_lookups += 1
    slot = _pt_find(&w.tab, pfn, &s.c.task_probes)
    if slot < 0:
        return _task_kmap_miss(s, cpu, t, w, pfn)
    s.c.task_hits += 1
    w.count[slot] += 1
    w.dirty = 1
    _tlb_use(s, cpu, s.window_base + (<vaddr_t>slot << 12), 0)
    return KOP_DONE


cdef inline int _task_kunmap(KmapState* s, int32_t ti, pfn_t pfn) except -1 nogil:
    cdef KTask* t = &s.tasks[ti]
    cdef KWindow* w = &s.windows[_window_of(s, t)]
    cdef intp_t slot
    cdef int32_t n
    s.c.task_lookups += 1
    slot = _pt_find(&w.tab, pfn, &s.c.task_probes)
    if slot < 0:
        return _kunmap_high(s, pfn)             # it was a fallback to the global pool
    n = w.count[slot] - 1
    if n == 0:
        return _task_kunmap_idle(s, pfn, slot)
    w.count[slot] = n
    return KOP_DONE


cdef int _task_kunmap_idle(KmapState* s, pfn_t pfn, intp_t slot) noexcept nogil:
    """A per-task kunmap whose window slot has no user left: the reference being dropped
    is one the task took through the global pool while its window was full (the page
    entered the window later), if the global pool has the page; else COUNT_ZERO."""
    cdef intp_t g = _page_address(s, pfn)
    if g >= 0:
        return _kunmap_slot(s, pfn, g)
    _set_bug(s, KBUG_COUNT_ZERO, pfn, slot)
    return KOP_BUG


# ------------------------------------------------------------------- atomic / local
cdef int _kmap_atomic(KmapState* s, intp_t cpu, int32_t ti, pfn_t pfn, uint16_t arg) noexcept nogil:
    cdef intp_t idx
    cdef KTask* t
    cdef vaddr_t va
    if s.atomic_mode == ATOMIC_TYPED:
        idx = arg + s.km_type_nr * cpu
        if s.apfn[idx] != PFN_NONE:
            _set_bug(s, KBUG_ATOMIC_BUSY, pfn, arg)
            return KOP_BUG
        s.apfn[idx] = pfn
        va = _fix_addr(s, idx)
        if s.atomic_flush_on_map:
            _invlpg(s, cpu, va)
    else:
        t = &s.tasks[ti]
        # 6.x kmap_local_idx_push: idx += KM_INCR; BUG_ON(idx >= KM_MAX_IDX) tests the
        # index *after* the increment, so a task holds at most KM_MAX_IDX - 1 local maps
        if t.lidx + 1 >= s.km_type_nr:
            _set_bug(s, KBUG_LOCAL_OVERFLOW, pfn, t.lidx + 1)
            return KOP_BUG
        t.lpfn[t.lidx] = pfn
        t.latomic[t.lidx] = arg & 1
        t.natomic += arg & 1
        va = _fix_addr(s, t.lidx + KM_STACK_MAX * cpu)
        t.lidx += 1
    s.c.atomic_maps += 1
    _tlb_use(s, cpu, va, 1)
    return KOP_DONE


cdef int _kunmap_atomic(KmapState* s, intp_t cpu, int32_t ti, pfn_t pfn, uint16_t arg) noexcept nogil:
    cdef intp_t idx
    cdef KTask* t
    if s.atomic_mode == ATOMIC_TYPED:
        idx = arg + s.km_type_nr * cpu
        if s.apfn[idx] != pfn:
            _set_bug(s, KBUG_ATOMIC_UNMAPPED, pfn, arg)
            return KOP_BUG
        s.apfn[idx] = PFN_NONE
        if not s.atomic_flush_on_map:
            _invlpg(s, cpu, _fix_addr(s, idx))
    else:
        t = &s.tasks[ti]
        if t.lidx == 0:
            _set_bug(s, KBUG_LOCAL_EMPTY, pfn, 0)
            return KOP_BUG
        if t.lpfn[t.lidx - 1] != pfn:
            _set_bug(s, KBUG_LOCAL_LIFO, pfn, <int64_t>t.lpfn[t.lidx - 1])
            return KOP_BUG
        t.lidx -= 1
        t.natomic -= t.latomic[t.lidx]
        t.lpfn[t.lidx] = PFN_NONE
        _invlpg(s, cpu, _fix_addr(s, t.lidx + KM_STACK_MAX * cpu))
    s.c.atomic_unmaps += 1
    return KOP_DONE


# ------------------------------------------------------------------- one op
cdef int _bad_op(KmapState* s, uint8_t op, uint16_t arg, uint16_t cpu,
                 int64_t index) except -1 nogil:
    """The engine's cheap re-check of what pyapi validates (a CPU index or a typed
    km_type outside the arrays it indexes): ValueError, never an out-of-bounds access."""
    with gil:
        if cpu >= s.ncpus:
            raise ValueError(f"op {index}: cpu {cpu} is not online (cpus={s.ncpus})")
        raise ValueError(f"op {index}: km_type {arg} >= KM_TYPE_NR={s.km_type_nr} (the "
                         f"size column of an atomic op is its km_type)")


cdef int kmap_op(KmapState* s, uint8_t op, uint64_t addr, uint16_t arg, uint16_t cpu,
                 uint32_t task, int64_t index) except -1 nogil:
    return _op(s, op, addr, arg, cpu, task, index)


cdef inline int _op(KmapState* s, uint8_t op, uint64_t addr, uint16_t arg, uint16_t cpu,
                    uint32_t task, int64_t index) except -1 nogil:
    cdef int32_t ti
    cdef KTask* t
    cdef int r = KOP_DONE
    if cpu >= s.ncpus or ((op == OP_KMAP_ATOMIC or op == OP_KUNMAP_ATOMIC)
                          and s.atomic_mode == ATOMIC_TYPED and arg >= s.km_type_nr):
        _bad_op(s, op, arg, cpu, index)
    if s.cur_id[cpu] == task:
        ti = s.cur[cpu]
    else:
        ti = _task_index(s, task)
    if s.nsleeping and s.tasks[ti].asleep:
        _defer(s, ti, op, addr, arg, cpu, index)
        return KOP_DEFERRED
    if s.cur[cpu] != ti:
        r = _switch_to(s, cpu, ti, addr if op == OP_SWITCH else ID_NONE)
    if r == KOP_DONE:
        if op == OP_KMAP:
            if addr < s.highmem_start:
                s.c.lowmem += 1
            elif s.per_task and not (arg & 1):
                r = _task_kmap(s, cpu, ti, addr)
            else:
                s.c.cross_task += s.per_task
                r = _kmap_high(s, cpu, addr)
            s.c.kmaps += r == KOP_DONE
        elif op == OP_KUNMAP:
            if addr < s.highmem_start:
                s.c.lowmem += 1
            elif s.per_task and not (arg & 1):
                r = _task_kunmap(s, ti, addr)
            else:
                r = _kunmap_high(s, addr)
            s.c.kunmaps += r == KOP_DONE
        elif op == OP_KMAP_ATOMIC:
            if addr < s.highmem_start:
                s.c.lowmem += 1
            else:
                r = _kmap_atomic(s, cpu, ti, addr, arg)
        elif op == OP_KUNMAP_ATOMIC:
            if addr < s.highmem_start:
                s.c.lowmem += 1
            else:
                r = _kunmap_atomic(s, cpu, ti, addr, arg)
        elif op == OP_SWITCH:
            t = &s.tasks[ti]
            if t.mm != addr:                    # the running task changes mm (exec)
                t.mm = addr
                if s.share_mm:
                    t.window = -1
                _load_space(s, cpu, _space_of(s, t))
        elif op <= OP_MODIFY:
            s.c.user_accesses += 1
            if s.tlb != NULL and s.tlb[cpu] != NULL:
                if not tlb_access(s.tlb[cpu], addr, 0, PS_4K, 0):
                    s.c.user_tlb_misses += 1
    if r == KOP_DONE:
        s.c.ops += 1
    elif r == KOP_SLEPT:
        _sleep(s, ti, op, addr, arg, cpu, index)
    else:
        s.bug_index = index
        s.bug_op = op
        s.bug_task = task
        s.bug_cpu = cpu
    return r


cdef int _replay_backlog(KmapState* s, int32_t ti) except -1 nogil:
    cdef intp_t k
    cdef KDeferred d
    cdef int r
    for k in range(s.ndeferred):
        if s.tasks[ti].nbacklog == 0 or s.tasks[ti].asleep:
            break
        if s.deferred[k].task != ti:
            continue
        d = s.deferred[k]
        s.deferred[k].task = -1
        s.deferred_live -= 1
        s.tasks[ti].nbacklog -= 1
        r = _op(s, d.op, d.pfn, d.arg, d.cpu, s.tasks[ti].id, d.index)
        if r == KOP_BUG:                        # the op stays deferred
            s.deferred[k].task = ti
            s.deferred_live += 1
            s.tasks[ti].nbacklog += 1
            return r
    return KOP_DONE


cdef void _requeue(KmapState* s, intp_t first, intp_t n) noexcept nogil:
    """A BUG stopped a wake-up round: the woken tasks from wakebuf[first] on, not run
    yet, go back to the head of the wait queue, and the wake-up stays pending for them."""
    cdef intp_t m = n - first
    memmove(&s.waitq[m], &s.waitq[0], s.nwait * sizeof(int32_t))
    memcpy(&s.waitq[0], &s.wakebuf[first], m * sizeof(int32_t))
    s.nwait += m
    s.pending_wake = m > 0


cdef int kmap_settle(KmapState* s) except -1 nogil:
    cdef intp_t k, n, j
    cdef int32_t ti
    cdef KTask* t
    cdef int r
    while s.pending_wake:
        s.pending_wake = 0
        n = s.nwait
        memcpy(s.wakebuf, s.waitq, n * sizeof(int32_t))
        s.nwait = 0
        for k in range(n):
            ti = s.wakebuf[k]
            t = &s.tasks[ti]
            t.asleep = 0
            s.nsleeping -= 1
            r = _op(s, t.b_op, t.b_pfn, t.b_arg, t.b_cpu, t.id, t.b_index)
            if r == KOP_BUG:                    # it still sleeps in its op
                s.tasks[ti].asleep = 1
                s.nsleeping += 1
                _requeue(s, k, n)
                return r
            if r == KOP_DONE:
                r = _replay_backlog(s, ti)
                if r == KOP_BUG:
                    _requeue(s, k + 1, n)
                    return r
        # drop the deferred entries that ran
        j = 0
        for k in range(s.ndeferred):
            if s.deferred[k].task >= 0:
                s.deferred[j] = s.deferred[k]
                j += 1
        s.ndeferred = j
    return KOP_DONE


cdef struct _Global:            # the batch loop of a pool without per-task windows
    char unused
cdef struct _PerTask:           # ... and with them
    char unused
ctypedef fused PoolKind:
    _Global
    _PerTask


cdef int kmap_run(KmapState* s, const uint64_t* addr, const uint8_t* op,
                  const uint16_t* size, const uint16_t* cpu, const uint32_t* task,
                  intp_t n, int64_t base) except -1 nogil:
    cdef intp_t i
    cdef uint16_t top = 0
    if cpu != NULL:                             # never index past the per-CPU arrays:
        for i in range(n):                      # one vectorisable pass, then no check
            if cpu[i] > top:                    # in the loop
                top = cpu[i]
        if top >= s.ncpus:
            for i in range(n):
                if cpu[i] >= s.ncpus:
                    _bad_op(s, op[i], 0, cpu[i], base + i)
    # one loop per pool kind: the global pool's loop carries no per-task code
    if s.per_task:
        return _run(s, addr, op, size, cpu, task, n, base, <_PerTask*>NULL)
    return _run(s, addr, op, size, cpu, task, n, base, <_Global*>NULL)


cdef int _run(KmapState* s, const uint64_t* addr, const uint8_t* op,
              const uint16_t* size, const uint16_t* cpu, const uint32_t* task,
              intp_t n, int64_t base, PoolKind* kind) except -1 nogil:
    cdef intp_t i
    cdef uint16_t c, a
    cdef uint32_t tk
    cdef uint8_t o
    cdef pfn_t pfn
    cdef int r
    for i in range(n):
        c = cpu[i] if cpu != NULL else 0
        a = size[i] if size != NULL else 0
        tk = task[i] if task != NULL else c
        o = op[i]
        pfn = addr[i]
        # fast path: kmap/kunmap of a highmem page by the task running on that CPU, no
        # sleeper anywhere: exactly what _op does for this case, without its dispatch
        if (s.cur_id[c] == tk and s.nsleeping == 0 and pfn >= s.highmem_start
                and (o == OP_KMAP or o == OP_KUNMAP)
                and (PoolKind is _Global or not (a & 1))):
            if o == OP_KMAP:
                if PoolKind is _PerTask:
                    r = _task_kmap(s, c, s.cur[c], pfn)
                else:
                    r = _kmap_high(s, c, pfn)
                if r == KOP_DONE:
                    s.c.kmaps += 1
                    s.c.ops += 1
                else:
                    _sleep(s, s.cur[c], o, pfn, a, c, base + i)
                continue
            if PoolKind is _PerTask:
                r = _task_kunmap(s, s.cur[c], pfn)
            else:
                r = _kunmap_high(s, pfn)
            if r == KOP_BUG:
                s.bug_index = base + i
                s.bug_op = o
                s.bug_task = tk
                s.bug_cpu = c
                return r
            s.c.kunmaps += 1
            s.c.ops += 1
        else:
            r = _op(s, o, pfn, a, c, tk, base + i)
            if r == KOP_BUG:
                return r
        if s.pending_wake:
            r = kmap_settle(s)
            if r == KOP_BUG:
                return r
    return KOP_DONE


# ------------------------------------------------------------------- the owner object
cdef class KmapCore:
    """One simulated machine's kmap state (engine object; use ``pyapi.KmapPool``).

    Arguments are the fields of ``KmapState`` (see kmap.pxd); ``tlbs`` is ``None`` or a
    list of ``ncpus`` ``mmucore.tlb.TLBCore`` objects (one dTLB per CPU).
    """

    def __cinit__(self, intp_t nslots, intp_t ncpus=1, pfn_t highmem_start=229376,
                  bint hashed=False, uint32_t hash_mult=0x9e370001,
                  uint32_t mem_map=0xC1000000, uint32_t page_struct=64,
                  bint flush_if_needed=False, uint32_t atomic_mode=ATOMIC_TYPED,
                  bint atomic_flush_on_map=True, intp_t km_type_nr=5,
                  vaddr_t pkmap_base=0xFE000000, vaddr_t fixaddr_top=0xFFFFE000,
                  intp_t fix_kmap_begin=9, bint per_task=False, bint share_mm=False,
                  bint lazy_switch=True, intp_t wslots=1024,
                  vaddr_t window_base=0xBF800000, tlbs=None):
        memset(&self.st, 0, sizeof(KmapState))
        if atomic_mode == ATOMIC_TASK_STACK and km_type_nr > KM_STACK_MAX:
            raise ValueError(f"kmap_local stacks hold at most {KM_STACK_MAX} entries")
        kmap_init(&self.st, nslots, ncpus, highmem_start, hashed, hash_mult, mem_map,
                  page_struct, flush_if_needed, atomic_mode, atomic_flush_on_map,
                  km_type_nr, pkmap_base, fixaddr_top, fix_kmap_begin, per_task, share_mm,
                  lazy_switch, wslots, window_base)
        self._tlbs = None
        if tlbs is not None:
            self._attach(list(tlbs))

    def _attach(self, list tlbs):
        cdef TLBState** arr
        cdef intp_t c
        if len(tlbs) != self.st.ncpus:
            raise ValueError(f"{len(tlbs)} TLBs for {self.st.ncpus} CPUs")
        for t in tlbs:
            if not isinstance(t, TLBCore):
                raise TypeError("tlbs must be mmucore.tlb.TLBCore objects")
        arr = <TLBState**>malloc(self.st.ncpus * sizeof(TLBState*))
        if arr == NULL:
            raise MemoryError()
        for c in range(self.st.ncpus):
            arr[c] = (<TLBCore>tlbs[c]).state()
        self._tlbs = tlbs
        kmap_attach_tlbs(&self.st, arr)

    def __dealloc__(self):
        if self.st.tlb != NULL:
            free(self.st.tlb)
            self.st.tlb = NULL
        kmap_free(&self.st)

    cdef KmapState* state(self) noexcept:
        return &self.st

    @property
    def nslots(self):
        return self.st.nslots

    @property
    def ncpus(self):
        return self.st.ncpus

    @property
    def sleeping(self):
        """Tasks asleep on pkmap_map_wait."""
        return self.st.nsleeping

    @property
    def pending(self):
        """Ops of sleeping tasks not run yet (their blocked ops and deferred later ones)."""
        return self.st.nsleeping + self.st.deferred_live

    @property
    def ntasks(self):
        """Tasks seen so far."""
        return self.st.ntasks

    def run(self, const uint64_t[::1] addr not None, const uint8_t[::1] op not None,
            const uint16_t[::1] size=None, const uint16_t[::1] cpu=None,
            const uint32_t[::1] task=None, int64_t base=0):
        """Run the ops in one nogil call. Returns 0, or the KmapBug code that stopped the
        run (``bug()`` has the details; the counters include every op before it)."""
        cdef intp_t n = addr.shape[0]
        cdef const uint16_t* ps = NULL
        cdef const uint16_t* pc = NULL
        cdef const uint32_t* pt = NULL
        cdef int r
        if op.shape[0] != n:
            raise ValueError(f"op has {op.shape[0]} values for {n} ops")
        for name, col in (("size", size), ("cpu", cpu), ("task", task)):
            if col is not None and col.shape[0] != n:
                raise ValueError(f"{name} has {col.shape[0]} values for {n} ops")
        if n == 0:
            return 0
        if size is not None:
            ps = &size[0]
        if cpu is not None:
            pc = &cpu[0]
        if task is not None:
            pt = &task[0]
        self.st.bug = KBUG_NONE
        with nogil:
            r = kmap_run(&self.st, &addr[0], &op[0], ps, pc, pt, n, base)
        return self.st.bug if r == KOP_BUG else 0

    def bug(self):
        """The last BUG: dict(code, index, op, pfn, task, cpu, value)."""
        return dict(code=self.st.bug, index=self.st.bug_index, op=self.st.bug_op,
                    pfn=None if self.st.bug_pfn == PFN_NONE else self.st.bug_pfn,
                    task=self.st.bug_task, cpu=self.st.bug_cpu, value=self.st.bug_value)

    def counters(self):
        """The cumulative counters (KmapCounters) as a dict."""
        return dict(self.st.c)

    def page_address(self, pfn_t pfn):
        """page_address(): the pool slot of pfn or -1 (counted like the kernel's call)."""
        return kmap_page_address(&self.st, pfn)

    def bucket(self, pfn_t pfn):
        """The page_address hash bucket of pfn (hashed kernels)."""
        return kmap_bucket(&self.st, pfn)

    def chains(self):
        """The hashed page_address chains: a list of 128 lists of slots, head first."""
        return [[int(self.st.bk_slot[b][k]) for k in range(self.st.bk_len[b])]
                if self.st.hashed else [] for b in range(PA_HASH_BUCKETS)]

    def _check_invariants(self):
        """Raise AssertionError unless the state is consistent: counts and PTEs agree, the
        page -> slot lookup holds exactly the mapped slots, the windows likewise, and the
        sleeper and deferred-op bookkeeping adds up (for tests)."""
        cdef KmapState* s = &self.st
        cdef intp_t i, k, mapped = 0, chained = 0, asleep = 0, backlog = 0, live = 0
        cdef uint64_t dummy = 0
        cdef KWindow* w
        for i in range(s.nslots):
            assert (s.pkmap_count[i] == 0) == (s.slot_pfn[i] == PFN_NONE), f"slot {i}"
            assert s.pkmap_count[i] >= 0, f"slot {i} count {s.pkmap_count[i]}"
            if s.slot_pfn[i] != PFN_NONE:
                mapped += 1
                if s.hashed:
                    b = kmap_bucket(s, s.slot_pfn[i])
                    found = [s.bk_slot[b][k] for k in range(s.bk_len[b])
                             if s.bk_pfn[b][k] == s.slot_pfn[i]]
                    assert found == [i], f"slot {i} in its chain: {found}"
                else:
                    assert _pt_find(&s.gtab, s.slot_pfn[i], &dummy) == i, f"slot {i} lookup"
        if s.hashed:
            for b in range(PA_HASH_BUCKETS):
                chained += s.bk_len[b]
                for k in range(s.bk_len[b]):
                    assert kmap_bucket(s, s.bk_pfn[b][k]) == b
            assert chained == mapped, f"{chained} chained, {mapped} mapped"
        else:
            assert s.gtab.used == mapped, f"{s.gtab.used} in the table, {mapped} mapped"
        for i in range(s.nwindows):
            w = &s.windows[i]
            mapped = 0
            for k in range(s.wslots):
                assert (w.count[k] == 0) == (w.pfn[k] == PFN_NONE), f"window {i} slot {k}"
                if w.pfn[k] != PFN_NONE:
                    mapped += 1
                    assert _pt_find(&w.tab, w.pfn[k], &dummy) == k, f"window {i} slot {k}"
            assert w.tab.used == mapped, f"window {i}: {w.tab.used} in the table, {mapped} mapped"
        for i in range(s.ntasks):
            asleep += s.tasks[i].asleep
            backlog += s.tasks[i].nbacklog
            assert 0 <= s.tasks[i].natomic <= s.tasks[i].lidx <= KM_STACK_MAX
        for i in range(s.ndeferred):
            live += s.deferred[i].task >= 0
        assert asleep == s.nsleeping == s.nwait, (asleep, s.nsleeping, s.nwait)
        assert backlog == s.deferred_live == live, (backlog, s.deferred_live, live)
        assert not s.pending_wake or s.nwait, "a wake-up pending with nobody asleep"

    def snapshot(self):
        """The whole state as plain Python/numpy values (for tests and reports)."""
        cdef intp_t i, k
        cdef KTask* t
        cdef KWindow* w
        none = -1

        def pf(pfn_t x):
            return none if x == PFN_NONE else int(x)
        count = np.array(<int32_t[:self.st.nslots]>self.st.pkmap_count, dtype=np.int64)
        slot_pfn = np.array([pf(self.st.slot_pfn[i]) for i in range(self.st.nslots)],
                            dtype=np.int64)
        tasks = {}
        for i in range(self.st.ntasks):
            t = &self.st.tasks[i]
            tasks[int(t.id)] = dict(
                mm=int(t.mm), cpu=int(t.cpu), asleep=bool(t.asleep),
                local=[int(t.lpfn[k]) for k in range(t.lidx)],
                backlog=int(t.nbacklog),
                blocked=int(t.b_index) if t.asleep else None)
        windows = {}
        for i in range(self.st.nwindows):
            w = &self.st.windows[i]
            windows[int(w.owner)] = dict(
                count=[int(w.count[k]) for k in range(self.st.wslots)],
                pfn=[pf(w.pfn[k]) for k in range(self.st.wslots)],
                cursor=int(w.cursor), dirty=bool(w.dirty))
        atomic = {}
        if self.st.atomic_mode == ATOMIC_TYPED:
            for i in range(self.st.ncpus * self.st.km_type_nr):
                if self.st.apfn[i] != PFN_NONE:
                    atomic[(int(i // self.st.km_type_nr), int(i % self.st.km_type_nr))] = \
                        int(self.st.apfn[i])
        return dict(
            pkmap_count=count, slot_pfn=slot_pfn, cursor=int(self.st.cursor),
            running=[None if self.st.cur[i] == TASK_NONE
                     else int(self.st.tasks[self.st.cur[i]].id) for i in range(self.st.ncpus)],
            waitq=[int(self.st.tasks[self.st.waitq[i]].id) for i in range(self.st.nwait)],
            deferred=[(int(self.st.tasks[self.st.deferred[i].task].id),
                       int(self.st.deferred[i].index))
                      for i in range(self.st.ndeferred) if self.st.deferred[i].task >= 0],
            tasks=tasks, windows=windows, atomic=atomic)
