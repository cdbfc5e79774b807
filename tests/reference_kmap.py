"""A pure-Python reference of the kmap machinery: specs/kmap.md 1.4-1.7, 2, 3 and 6.6 and
the modelling rules of docs/kmap.md, written out as plainly as possible.

It is the oracle of the differential tests: slow, obvious data structures (lists and
dicts), no shared code with ``mmucore``/``pyapi``. The TLBs are ``ReferenceTLB``s. The
only engine detail it mirrors on purpose is the per-task lookup table (open addressing
with linear probing, whose probe count is the modelled lookup cost), see ``ProbeTable``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

MASK64 = (1 << 64) - 1
SPACE_TASK = 1 << 63
KM_STACK_MAX = 16
LOWMEM = object()

OP_LOAD, OP_STORE, OP_IFETCH, OP_MODIFY, OP_SWITCH = 0, 1, 2, 3, 4
OP_KMAP, OP_KUNMAP, OP_KMAP_ATOMIC, OP_KUNMAP_ATOMIC = 10, 11, 12, 13

BUG_CODES = {"KUNMAP_UNMAPPED": 1, "COUNT_ZERO": 2, "ATOMIC_BUSY": 3, "ATOMIC_UNMAPPED": 4,
             "LOCAL_OVERFLOW": 5, "LOCAL_LIFO": 6, "LOCAL_EMPTY": 7, "MIGRATE": 8,
             "SCHED_ATOMIC": 9}

COUNTERS = [
    "ops", "kmaps", "kunmaps", "lowmem", "lookups", "hash_probes", "hits", "new_mappings",
    "cursor_steps", "wraps", "slots_reclaimed", "global_flushes", "ipis", "sleeps",
    "wakeups", "deferred", "atomic_maps", "atomic_unmaps", "invlpgs", "local_reinstalls",
    "context_switches", "cr3_loads", "user_accesses", "task_lookups", "task_probes",
    "task_hits", "task_new_mappings", "task_cursor_steps", "task_wraps", "task_reclaimed",
    "task_flushes", "task_shootdowns", "task_ipis", "task_fallbacks", "cross_task",
    "kmap_tlb_accesses", "kmap_tlb_misses", "user_tlb_misses", "tlb_entries_flushed"]


class Bug(Exception):
    def __init__(self, code, pfn, value):
        super().__init__(code)
        self.code, self.pfn, self.value = code, pfn, value


class Sleep(Exception):
    """map_new_virtual found no free slot in a full circle: the task sleeps."""


class ProbeTable:
    """pfn -> slot, open addressing: home = (pfn * 0x9E3779B97F4A7C15 mod 2**64) >> (64 -
    log2 capacity), linear probing, capacity the smallest power of two >= max(8, 2*keys), no
    deletion: at a window wrap it is rebuilt from the surviving slots in slot order.
    ``find`` returns (value or None, probes)."""

    def __init__(self, keys):
        cap = 8
        while cap < 2 * keys:
            cap *= 2
        self.cap, self.shift = cap, 64 - (cap.bit_length() - 1)
        self.keys: List[Optional[int]] = [None] * cap
        self.vals = [0] * cap

    def home(self, k):
        return ((k * 0x9E3779B97F4A7C15) & MASK64) >> self.shift

    def find(self, k):
        i, probes = self.home(k), 0
        while True:
            probes += 1
            if self.keys[i] == k:
                return self.vals[i], probes
            if self.keys[i] is None:
                return None, probes
            i = (i + 1) % self.cap

    def put(self, k, v):
        i = self.home(k)
        while self.keys[i] is not None:
            i = (i + 1) % self.cap
        self.keys[i], self.vals[i] = k, v

    def items(self):
        return {k: v for k, v in zip(self.keys, self.vals) if k is not None}


@dataclass
class Task:
    id: int
    mm: int
    cpu: Optional[int] = None
    window: Optional[int] = None          # owner key of its window
    local: list = field(default_factory=list)     # [(pfn, atomic)]
    asleep: bool = False
    blocked: Optional[tuple] = None       # (op, addr, arg, cpu, index)
    backlog: int = 0

    @property
    def natomic(self):
        return sum(a for _, a in self.local)


@dataclass
class Window:
    count: list
    pfn: list
    table: ProbeTable
    cursor: int = 0
    dirty: bool = False


class ReferenceKmap:
    def __init__(self, nslots, ncpus=1, highmem_start=229376, hashed=False, hash_mult=0,
                 mem_map=0xC1000000, page_struct=64, flush_if_needed=False, atomic="typed",
                 atomic_flush_on_map=True, km_type_nr=5, pkmap_base=0xFE000000,
                 fixaddr_top=0xFFFFE000, fix_kmap_begin=9, per_task=False, share_mm=False,
                 lazy_switch=True, wslots=1024, window_base=0xBF800000, tlbs=None):
        self.n, self.ncpus, self.highmem_start = nslots, ncpus, highmem_start
        self.hashed, self.hash_mult = hashed, hash_mult
        self.mem_map, self.page_struct = mem_map, page_struct
        self.flush_if_needed = flush_if_needed
        self.atomic, self.flush_on_map, self.km = atomic, atomic_flush_on_map, km_type_nr
        self.pkmap_base, self.fixaddr_top, self.fix_begin = pkmap_base, fixaddr_top, fix_kmap_begin
        self.per_task, self.share_mm, self.lazy = per_task, share_mm, lazy_switch
        self.wslots, self.window_base = wslots, window_base
        self.tlbs = tlbs
        # the global pool (specs/kmap.md 1.2)
        self.count = [0] * nslots
        self.pte: List[Optional[int]] = [None] * nslots
        self.cursor = 0
        self.virtual = {}                                 # page->virtual: pfn -> slot
        self.buckets = [[] for _ in range(128)]           # hashed: [(pfn, slot)], tail last
        self.apfn = {}                                    # typed atomic: (cpu, type) -> pfn
        self.cur: List[Optional[Task]] = [None] * ncpus
        self.cur_space: List[Optional[int]] = [None] * ncpus
        self.tasks = {}
        self.windows = {}
        self.waitq: List[Task] = []
        self.pending_wake = False
        self.deferred = []                                # [(task, (op, addr, arg, cpu, index))]
        self.c = {k: 0 for k in COUNTERS}
        self.bug = None

    # ------------------------------------------------------------------ TLB
    def tlb_use(self, cpu, va, glob):
        self.c["kmap_tlb_accesses"] += 1
        if self.tlbs is not None:
            if self.tlbs[cpu].access([va], asids=0, global_=glob).misses:
                self.c["kmap_tlb_misses"] += 1

    def invlpg(self, cpu, va):
        self.c["invlpgs"] += 1
        if self.tlbs is not None:
            self.tlbs[cpu].invalidate(va, asid=0)

    def cpu_flush(self, cpu, keep_global):
        if self.tlbs is not None:
            self.c["tlb_entries_flushed"] += self.tlbs[cpu].flush(keep_global=keep_global)

    def fix(self, idx):
        return self.fixaddr_top - ((self.fix_begin + idx) << 12)

    # ------------------------------------------------------------------ page_address
    def bucket(self, pfn):
        page = (self.mem_map + pfn * self.page_struct) & 0xFFFFFFFF
        return ((page * self.hash_mult) & 0xFFFFFFFF) >> 25

    def page_address(self, pfn):
        self.c["lookups"] += 1
        if not self.hashed:
            return self.virtual.get(pfn)
        for p, slot in self.buckets[self.bucket(pfn)]:
            self.c["hash_probes"] += 1
            if p == pfn:
                return slot
        return None

    def set_page_address(self, pfn, slot):
        if self.hashed:
            chain = self.buckets[self.bucket(pfn)]
            if slot is None:
                chain[:] = [e for e in chain if e[0] != pfn]
            else:
                chain.append((pfn, slot))
        elif slot is None:
            del self.virtual[pfn]
        else:
            self.virtual[pfn] = slot

    # ------------------------------------------------------------------ global pool
    def flush_all_zero_pkmaps(self):
        self.c["wraps"] += 1
        reclaimed = 0
        for i in range(self.n):
            if self.count[i] != 1:
                continue
            self.count[i] = 0
            self.set_page_address(self.pte[i], None)
            self.pte[i] = None
            reclaimed += 1
        self.c["slots_reclaimed"] += reclaimed
        if reclaimed or not self.flush_if_needed:
            self.c["global_flushes"] += 1
            self.c["ipis"] += self.ncpus - 1
            for cpu in range(self.ncpus):
                self.cpu_flush(cpu, False)

    def map_new_virtual(self, pfn):
        count = self.n
        while True:
            self.cursor = (self.cursor + 1) % self.n
            self.c["cursor_steps"] += 1
            if self.cursor == 0:
                self.flush_all_zero_pkmaps()
                count = self.n
            if self.count[self.cursor] == 0:
                break
            count -= 1
            if count == 0:
                raise Sleep()
        slot = self.cursor
        self.count[slot] = 1
        self.pte[slot] = pfn
        self.set_page_address(pfn, slot)
        self.c["new_mappings"] += 1
        return slot

    def kmap_high(self, cpu, pfn):
        slot = self.page_address(pfn)
        if slot is not None:
            self.c["hits"] += 1
        else:
            slot = self.map_new_virtual(pfn)
        self.count[slot] += 1
        self.tlb_use(cpu, self.pkmap_base + (slot << 12), True)

    def kunmap_high(self, pfn, slot=None):
        if slot is None:
            slot = self.page_address(pfn)
        if slot is None:
            raise Bug("KUNMAP_UNMAPPED", pfn, 0)
        if self.count[slot] - 1 == 0:
            raise Bug("COUNT_ZERO", pfn, slot)
        self.count[slot] -= 1
        if self.count[slot] == 1 and self.waitq:
            self.c["wakeups"] += 1
            self.pending_wake = True

    # ------------------------------------------------------------------ tasks
    def task(self, tid):
        if tid not in self.tasks:
            self.tasks[tid] = Task(tid, tid)
        return self.tasks[tid]

    def space(self, t):
        return (SPACE_TASK | t.id) if (self.per_task and not self.share_mm) else t.mm

    def load_space(self, cpu, space):
        old = self.cur_space[cpu]
        if space == old:
            return
        self.c["cr3_loads"] += 1
        self.cpu_flush(cpu, True)
        self.cur_space[cpu] = space
        if self.per_task and old is not None and old not in self.cur_space:
            owner = old & ~SPACE_TASK
            if owner in self.windows:
                self.windows[owner].dirty = False

    def switch(self, cpu, t, mm):
        if t.local and t.cpu != cpu:
            raise Bug("MIGRATE", None, t.cpu)
        prev = self.cur[cpu]
        if prev is not None and prev.natomic:
            raise Bug("SCHED_ATOMIC", None, prev.id)
        self.c["context_switches"] += 1
        if t.cpu is not None and t.cpu != cpu and self.cur[t.cpu] is t:
            self.cur[t.cpu] = None
        if prev is not None:
            for i in range(len(prev.local)):
                self.invlpg(cpu, self.fix(i + KM_STACK_MAX * cpu))
        self.cur[cpu] = t
        t.cpu = cpu
        if mm is not None and mm != t.mm:
            t.mm = mm
            if self.share_mm:
                t.window = None
        self.c["local_reinstalls"] += len(t.local)
        self.load_space(cpu, self.space(t))

    # ------------------------------------------------------------------ per-task windows
    def window_of(self, t):
        if t.window is None:
            owner = t.mm if self.share_mm else t.id
            if owner not in self.windows:
                self.windows[owner] = Window([0] * self.wslots, [None] * self.wslots,
                                             ProbeTable(self.wslots))
            t.window = owner
        return self.windows[t.window]

    def window_wrap(self, w, cpu, t):
        self.c["task_wraps"] += 1
        reclaimed = 0
        for i in range(self.wslots):
            if w.count[i] == 1:
                w.count[i] = 0
                w.pfn[i] = None
                reclaimed += 1
        self.c["task_reclaimed"] += reclaimed
        if reclaimed:
            w.table = ProbeTable(self.wslots)
            for i, p in enumerate(w.pfn):
                if p is not None:
                    w.table.put(p, i)
        if not reclaimed or not (w.dirty or not self.lazy):
            return
        self.c["task_flushes"] += 1
        self.cpu_flush(cpu, True)
        others = [c for c in range(self.ncpus) if c != cpu and self.cur_space[c] == self.space(t)]
        for c in others:
            self.cpu_flush(c, True)
        if others:
            self.c["task_shootdowns"] += 1
            self.c["task_ipis"] += len(others)
        w.dirty = False

    def window_map_new(self, w, pfn, cpu, t):
        count = self.wslots
        while True:
            w.cursor = (w.cursor + 1) % self.wslots
            self.c["task_cursor_steps"] += 1
            if w.cursor == 0:
                self.window_wrap(w, cpu, t)
                count = self.wslots
            if w.count[w.cursor] == 0:
                break
            count -= 1
            if count == 0:
                return None
        slot = w.cursor
        w.count[slot] = 1
        w.pfn[slot] = pfn
        w.table.put(pfn, slot)
        self.c["task_new_mappings"] += 1
        return slot

    def task_kmap(self, cpu, t, pfn):
        w = self.window_of(t)
        self.c["task_lookups"] += 1
        slot, probes = w.table.find(pfn)
        self.c["task_probes"] += probes
        if slot is not None:
            self.c["task_hits"] += 1
        else:
            slot = self.window_map_new(w, pfn, cpu, t)
            if slot is None:
                self.c["task_fallbacks"] += 1
                return self.kmap_high(cpu, pfn)
        w.count[slot] += 1
        w.dirty = True
        self.tlb_use(cpu, self.window_base + (slot << 12), False)

    def task_kunmap(self, t, pfn):
        w = self.window_of(t)
        self.c["task_lookups"] += 1
        slot, probes = w.table.find(pfn)
        self.c["task_probes"] += probes
        if slot is None:
            return self.kunmap_high(pfn)
        if w.count[slot] - 1 == 0:
            # no user in the window: drop the task's global-pool reference (taken while
            # the window was full), if the global pool has the page
            g = self.page_address(pfn)
            if g is not None:
                return self.kunmap_high(pfn, g)
            raise Bug("COUNT_ZERO", pfn, slot)
        w.count[slot] -= 1

    # ------------------------------------------------------------------ atomic / local
    def kmap_atomic(self, cpu, t, pfn, arg):
        if self.atomic == "typed":
            idx = arg + self.km * cpu
            if (cpu, arg) in self.apfn:
                raise Bug("ATOMIC_BUSY", pfn, arg)
            self.apfn[(cpu, arg)] = pfn
            va = self.fix(idx)
            if self.flush_on_map:
                self.invlpg(cpu, va)
        else:
            # kmap_local_idx_push (6.x): idx += 1; BUG_ON(idx >= KM_MAX_IDX)
            if len(t.local) + 1 >= self.km:
                raise Bug("LOCAL_OVERFLOW", pfn, len(t.local) + 1)
            va = self.fix(len(t.local) + KM_STACK_MAX * cpu)
            t.local.append((pfn, arg & 1))
        self.c["atomic_maps"] += 1
        self.tlb_use(cpu, va, True)

    def kunmap_atomic(self, cpu, t, pfn, arg):
        if self.atomic == "typed":
            if self.apfn.get((cpu, arg)) != pfn:
                raise Bug("ATOMIC_UNMAPPED", pfn, arg)
            del self.apfn[(cpu, arg)]
            if not self.flush_on_map:
                self.invlpg(cpu, self.fix(arg + self.km * cpu))
        else:
            if not t.local:
                raise Bug("LOCAL_EMPTY", pfn, 0)
            if t.local[-1][0] != pfn:
                raise Bug("LOCAL_LIFO", pfn, t.local[-1][0])
            t.local.pop()
            self.invlpg(cpu, self.fix(len(t.local) + KM_STACK_MAX * cpu))
        self.c["atomic_unmaps"] += 1

    # ------------------------------------------------------------------ one op
    def op(self, op, addr, arg, cpu, tid, index):
        """'done', 'slept', 'deferred' or 'bug' (then self.bug is set)."""
        t = self.task(tid)
        if t.asleep:
            self.deferred.append((t, (op, addr, arg, cpu, index)))
            t.backlog += 1
            self.c["deferred"] += 1
            return "deferred"
        try:
            if self.cur[cpu] is not t:
                self.switch(cpu, t, addr if op == OP_SWITCH else None)
            high = addr >= self.highmem_start
            if op == OP_KMAP:
                if not high:
                    self.c["lowmem"] += 1
                elif self.per_task and not arg & 1:
                    self.task_kmap(cpu, t, addr)
                else:
                    self.c["cross_task"] += int(self.per_task)
                    self.kmap_high(cpu, addr)
                self.c["kmaps"] += 1
            elif op == OP_KUNMAP:
                if not high:
                    self.c["lowmem"] += 1
                elif self.per_task and not arg & 1:
                    self.task_kunmap(t, addr)
                else:
                    self.kunmap_high(addr)
                self.c["kunmaps"] += 1
            elif op == OP_KMAP_ATOMIC:
                if not high:
                    self.c["lowmem"] += 1
                else:
                    self.kmap_atomic(cpu, t, addr, arg)
            elif op == OP_KUNMAP_ATOMIC:
                if not high:
                    self.c["lowmem"] += 1
                else:
                    self.kunmap_atomic(cpu, t, addr, arg)
            elif op == OP_SWITCH:
                if t.mm != addr:
                    t.mm = addr
                    if self.share_mm:
                        t.window = None
                    self.load_space(cpu, self.space(t))
            elif op <= OP_MODIFY:
                self.c["user_accesses"] += 1
                if self.tlbs is not None:
                    if self.tlbs[cpu].access([addr], asids=0, global_=False).misses:
                        self.c["user_tlb_misses"] += 1
        except Sleep:
            t.asleep = True
            t.blocked = (op, addr, arg, cpu, index)
            self.waitq.append(t)
            self.c["sleeps"] += 1
            return "slept"
        except Bug as b:
            self.bug = (BUG_CODES[b.code], index, b.pfn, tid, cpu, b.value)
            return "bug"
        self.c["ops"] += 1
        return "done"

    def settle(self):
        """Wake-all: every sleeper, in the order they went to sleep, retries its op and
        then runs the ops it had deferred, until no wake-up is pending. A BUG stops the
        round: the woken tasks not run yet go back to the head of the wait queue and the
        wake-up stays pending for them (the failing op stays blocked or deferred)."""
        while self.pending_wake:
            self.pending_wake = False
            woken, self.waitq = self.waitq, []
            for i, t in enumerate(woken):
                t.asleep = False
                if self.op(*t.blocked[:3], t.blocked[3], t.id, t.blocked[4]) == "bug":
                    t.asleep = True
                    self.waitq = woken[i:] + self.waitq
                    self.pending_wake = True
                    return "bug"
                if t.asleep:
                    continue
                t.blocked = None
                for entry in list(self.deferred):
                    if t.asleep or not t.backlog:
                        break
                    if entry[0] is not t:
                        continue
                    at = self.deferred.index(entry)
                    del self.deferred[at]
                    t.backlog -= 1
                    op, addr, arg, cpu, index = entry[1]
                    if self.op(op, addr, arg, cpu, t.id, index) == "bug":
                        self.deferred.insert(at, entry)
                        t.backlog += 1
                        self.waitq = woken[i + 1:] + self.waitq
                        self.pending_wake = bool(woken[i + 1:])
                        return "bug"
        return "done"

    def run(self, addr, op, size=None, cpu=None, task=None, base=0):
        """Returns 0, or the BUG code (details in self.bug)."""
        n = len(addr)
        for i in range(n):
            c = int(cpu[i]) if cpu is not None else 0
            a = int(size[i]) if size is not None else 0
            tk = int(task[i]) if task is not None else c
            if self.op(int(op[i]), int(addr[i]), a, c, tk, base + i) == "bug":
                return self.bug[0]
            if self.pending_wake and self.settle() == "bug":
                return self.bug[0]
        return 0

    # ------------------------------------------------------------------ inspection
    @property
    def sleeping(self):
        return sum(t.asleep for t in self.tasks.values())

    @property
    def pending(self):
        return self.sleeping + len(self.deferred)

    def snapshot(self):
        return dict(
            pkmap_count=list(self.count), cursor=self.cursor,
            slot_pfn=[-1 if p is None else p for p in self.pte],
            running=[None if t is None else t.id for t in self.cur],
            waitq=[t.id for t in self.waitq],
            deferred=[(t.id, e[4]) for t, e in self.deferred],
            tasks={t.id: dict(mm=t.mm, cpu=-1 if t.cpu is None else t.cpu, asleep=t.asleep,
                              local=[p for p, _ in t.local], backlog=t.backlog,
                              blocked=t.blocked[4] if t.asleep else None)
                   for t in self.tasks.values()},
            windows={o: dict(count=list(w.count), pfn=[-1 if p is None else p for p in w.pfn],
                             cursor=w.cursor, dirty=w.dirty)
                     for o, w in self.windows.items()},
            atomic=dict(self.apfn))


def reference_like(pool, tlb=None):
    """A ReferenceKmap configured like ``pool`` (a pyapi KmapPool/PerTaskKmapPool), with
    one ReferenceTLB per CPU built from the dict ``tlb`` (or none)."""
    from reference_tlb import ReferenceTLB
    k = pool.kernel
    per_task = getattr(pool, "window_slots", None) is not None
    return ReferenceKmap(
        pool.slots, pool.cpus, pool.highmem_start_pfn, k.hashed, k.hash_mult, pool.mem_map,
        k.page_struct, k.flush_if_needed, k.atomic, k.atomic_flush == "map", k.km_type_nr,
        k.pkmap_base, k.fixaddr_top, 9, per_task,
        per_task and pool.share == "mm", getattr(pool, "lazy_switch", True),
        getattr(pool, "window_slots", 1) or 1, getattr(pool, "window_base", 0xBF800000),
        None if tlb is None else [ReferenceTLB(**tlb) for _ in range(pool.cpus)])
