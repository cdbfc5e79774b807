"""The Linux highmem kmap machinery: the global pkmap pool and Bligh's per-task pool.

The engine is ``mmucore.kmap`` (typed Cython); this module holds the kernel version
table, validates traces once per chunk and turns the engine's counters and BUG()
reports into ``KmapStats`` and ``KmapBugError``. The semantics, with the kernel source of
every rule, are in ``docs/kmap.md`` (from ``specs/kmap.md``).

A kmap trace is the columnar trace of DESIGN section 3: ``op`` from ``pyapi.Op``
(``KMAP``, ``KUNMAP``, ``KMAP_ATOMIC``, ``KUNMAP_ATOMIC``, ``SWITCH``, and the user
accesses ``LOAD``/``STORE``/``IFETCH``/``MODIFY``), ``addr`` the pfn (the mm id for
``SWITCH``, the virtual address for user accesses), ``cpu``, ``task``, and ``size`` as the
op's argument (the ``km_type`` of a typed ``kmap_atomic``; 1 = ``kmap_atomic`` rather than
``kmap_local_page`` on 6.x; 1 = cross-task access for ``KMAP``/``KUNMAP`` of the per-task
pool). A missing ``task`` column means one task per CPU (task = cpu).

>>> import numpy as np
>>> from pyapi import Op
>>> pool = KmapPool(kernel="2.4.18", slots=8)
>>> pfns = np.arange(300000, 300020, dtype=np.uint64)      # 20 highmem pages
>>> trace = {"addr": np.repeat(pfns, 2), "op": np.tile([Op.KMAP, Op.KUNMAP], 20)}
>>> s = pool.run(trace)
>>> s.new_mappings, s.wraps, s.global_flushes       # one flush per 8 cursor steps
(20, 2, 2)
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from mmucore.kmap import ATOMIC_MODES, BUG_NAMES, KM_STACK_MAX_DEPTH, KmapCore
from pyapi.chunk import TraceChunk
from pyapi.ops import Op

__all__ = ["KmapPool", "PerTaskKmapPool", "KmapStats", "KmapBugError",
           "KmapDeadlockError", "KERNELS", "KernelSpec"]

#: pfn of the first highmem page: MAXMEM_PFN = 896 MB / 4 KB (specs/kmap.md 4.1).
MAXMEM_PFN = 229376


@dataclass(frozen=True)
class KernelSpec:
    """What differs between kernel versions (specs/kmap.md 1.1, 1.4, 2, 3; 6.1).

    ``hashed``: page_address() is the 128-bucket hash (2.5.41+) instead of the
    ``page->virtual`` field; ``hash_mult``: the 32-bit multiplier of ``hash_ptr``;
    ``flush_if_needed``: 6.x flushes on wrap only if a slot was reclaimed;
    ``atomic``: ``"typed"`` (slot = type + KM_TYPE_NR*cpu) or ``"stack"`` (6.x per-task
    kmap_local stack); ``atomic_flush``: ``"map"`` (invlpg when mapping, 2.4-2.6.12) or
    ``"unmap"``; ``km_type_nr``: KM_TYPE_NR, or KM_MAX_IDX for the stack;
    ``page_struct``: sizeof(struct page) (the hash key is its address in mem_map).

    >>> k = KERNELS["2.6.12"]
    >>> k.hashed, k.atomic_flush, k.page_struct
    (True, 'map', 32)
    """

    name: str
    hashed: bool
    hash_mult: int
    flush_if_needed: bool
    atomic: str
    atomic_flush: str
    km_type_nr: int
    pkmap_base: int
    fixaddr_top: int
    page_struct: int


#: The kernel versions of specs/kmap.md 6.1. PKMAP_BASE of 2.6.12 and 6.x is computed at
#: build time in those kernels; the values here are representative (they only place the
#: slots in TLB sets). 2.4.18's KM_TYPE_NR is the 2.4.15 list (specs/kmap.md 8.1).
KERNELS = {
    "2.4.18": KernelSpec("2.4.18", False, 0, False, "typed", "map", 5,
                         0xFE000000, 0xFFFFE000, 64),
    "2.5.13": KernelSpec("2.5.13", False, 0, False, "typed", "map", 8,
                         0xFE000000, 0xFFFFE000, 40),
    "2.6.12": KernelSpec("2.6.12", True, 0x9E370001, False, "typed", "map", 13,
                         0xFF800000, 0xFFFFF000, 32),
    "6.x": KernelSpec("6.x", True, 0x61C88647, True, "stack", "unmap", 16,
                      0xFF600000, 0xFFFFF000, 32),
}
_ALIASES = {"2.4": "2.4.18", "2.5": "2.5.13", "2.6": "2.6.12", "6": "6.x"}

_KMAP_OPS = (Op.KMAP, Op.KUNMAP, Op.KMAP_ATOMIC, Op.KUNMAP_ATOMIC)
_ALLOWED_OPS = frozenset(int(o) for o in (Op.LOAD, Op.STORE, Op.IFETCH, Op.MODIFY,
                                          Op.SWITCH) + _KMAP_OPS)
_PFN_MAX = (1 << 52) - 1
_MM_MAX = (1 << 63) - 1

_BUGS = {
    1: "kunmap of a page that is not kmapped (kunmap_high: BUG() on !vaddr)",
    2: "kunmap would drop pkmap_count to 0: the page has no user left "
       "(kunmap_high: BUG() on case 0)",
    3: "kmap_atomic into a fixmap slot that is already mapped (BUG() on !pte_none)",
    4: "kunmap_atomic of a slot that does not map this page (BUG() on the slot address)",
    5: "kmap_local stack overflow (BUG_ON(idx >= KM_MAX_IDX))",
    6: "kunmap_local out of LIFO order (WARN_ON_ONCE(addr != fix_to_virt(idx)))",
    7: "kunmap_local with no local kmap held (BUG_ON(idx < 0))",
    8: "a task with live kmap_local mappings runs on another CPU (migration is disabled)",
    9: "context switch while a kmap_atomic is live (scheduling while atomic)",
}


@dataclass(frozen=True)
class KmapStats:
    """Cumulative counters of a pool (specs/kmap.md 6.3).

    Global pool: ``kmaps``/``kunmaps`` (completed calls, lowmem included), ``lowmem``
    (bypasses), ``lookups`` (page_address() calls), ``hash_probes`` (chain entries
    compared, hashed kernels), ``hits`` (page already mapped), ``new_mappings``,
    ``cursor_steps``, ``wraps`` (flush_all_zero_pkmaps calls), ``slots_reclaimed``,
    ``global_flushes``, ``ipis`` (flushes x other online CPUs), ``sleeps``, ``wakeups``
    (wake-all calls), ``deferred`` (ops of sleeping tasks that waited), ``atomic_maps``,
    ``atomic_unmaps``, ``invlpgs``, ``local_reinstalls`` (kmap_local PTEs set again at
    sched_in), ``context_switches``, ``cr3_loads``, ``user_accesses``.
    Per-task pool: ``task_lookups``, ``task_probes``, ``task_hits``, ``task_new_mappings``,
    ``task_cursor_steps``, ``task_wraps``, ``task_reclaimed``, ``task_flushes`` (local
    flushes), ``task_shootdowns`` and ``task_ipis``, ``task_fallbacks`` (window full: global
    pool), ``cross_task`` (cross-task kmaps: global pool).
    TLB: ``kmap_tlb_accesses`` (kmapped addresses handed out and accessed: counted with or
    without a TLB), and with ``tlb=`` ``kmap_tlb_misses``, ``user_tlb_misses``,
    ``tlb_entries_flushed``; ``tlb_misses`` is their sum of misses.
    ``asleep``: tasks still asleep; ``pending``: ops not run because of them.

    Examples
    --------
    >>> import numpy as np
    >>> from pyapi import Op
    >>> s = KmapPool(slots=4).run({"addr": np.array([300000, 300000], np.uint64),
    ...                            "op": np.array([Op.KMAP, Op.KUNMAP], np.uint8)})
    >>> s.new_mappings, s.lookups, s.hit_ratio, s.to_dict()["kunmaps"]
    (1, 2, 0.0, 1)
    """

    ops: int = 0
    kmaps: int = 0
    kunmaps: int = 0
    lowmem: int = 0
    lookups: int = 0
    hash_probes: int = 0
    hits: int = 0
    new_mappings: int = 0
    cursor_steps: int = 0
    wraps: int = 0
    slots_reclaimed: int = 0
    global_flushes: int = 0
    ipis: int = 0
    sleeps: int = 0
    wakeups: int = 0
    deferred: int = 0
    atomic_maps: int = 0
    atomic_unmaps: int = 0
    invlpgs: int = 0
    local_reinstalls: int = 0
    context_switches: int = 0
    cr3_loads: int = 0
    user_accesses: int = 0
    task_lookups: int = 0
    task_probes: int = 0
    task_hits: int = 0
    task_new_mappings: int = 0
    task_cursor_steps: int = 0
    task_wraps: int = 0
    task_reclaimed: int = 0
    task_flushes: int = 0
    task_shootdowns: int = 0
    task_ipis: int = 0
    task_fallbacks: int = 0
    cross_task: int = 0
    kmap_tlb_accesses: int = 0
    kmap_tlb_misses: int = 0
    user_tlb_misses: int = 0
    tlb_entries_flushed: int = 0
    asleep: int = 0
    pending: int = 0

    @property
    def tlb_misses(self) -> int:
        """TLB misses of kmapped addresses and of user accesses."""
        return self.kmap_tlb_misses + self.user_tlb_misses

    @property
    def hit_ratio(self) -> float:
        """Share of highmem kmaps that found the page mapped (global + per-task)."""
        n = self.hits + self.new_mappings + self.task_hits + self.task_new_mappings
        return (self.hits + self.task_hits) / n if n else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class KmapBugError(RuntimeError):
    """A kernel BUG() condition in the trace (specs/kmap.md 6.4).

    ``index`` is the op's index in the trace, ``code`` its name (``"COUNT_ZERO"``, ...),
    ``pfn``/``task``/``cpu`` the op's; ``stats`` the counters of every op before it (also
    in ``pool.stats``). The op itself changed nothing, except the context switch to its
    task when it was the first op of that task on the CPU.

    Examples
    --------
    >>> import numpy as np
    >>> from pyapi import Op
    >>> pool = KmapPool()
    >>> try:
    ...     pool.run({"addr": np.array([300000, 300000, 300000], np.uint64),
    ...               "op": np.array([Op.KMAP, Op.KUNMAP, Op.KUNMAP], np.uint8)})
    ... except KmapBugError as e:
    ...     print(e.index, e.code, e.stats.kunmaps)
    2 COUNT_ZERO 1
    """

    def __init__(self, message, index, code, pfn, task, cpu, stats):
        super().__init__(message)
        self.index, self.code, self.pfn, self.task, self.cpu = index, code, pfn, task, cpu
        self.stats = stats


class KmapDeadlockError(RuntimeError):
    """The trace ended with tasks asleep on a full pool (``deadlock``: every task seen is
    asleep, so none could ever free a slot). ``stats`` has the counters.

    Examples
    --------
    >>> import numpy as np
    >>> from pyapi import Op
    >>> trace = {"addr": np.arange(300000, 300003, dtype=np.uint64),
    ...          "op": np.full(3, Op.KMAP, np.uint8)}     # 3 pins, 2 slots
    >>> try:
    ...     KmapPool(slots=2).run(trace)
    ... except KmapDeadlockError as e:
    ...     print(e.asleep, e.deadlock, e.stats.sleeps)
    [0] True 1
    """

    def __init__(self, message, asleep, deadlock, stats):
        super().__init__(message)
        self.asleep, self.deadlock, self.stats = asleep, deadlock, stats


def _kernel(kernel) -> KernelSpec:
    if isinstance(kernel, KernelSpec):
        return kernel
    name = _ALIASES.get(str(kernel), str(kernel))
    if name not in KERNELS:
        raise ValueError(f"kernel {kernel!r} is not one of {', '.join(KERNELS)} "
                         f"(or {', '.join(_ALIASES)})")
    return KERNELS[name]


def _count(value, name, lo=1, hi=1 << 31):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} is outside {lo}..{hi}")
    return int(value)


def _as_chunks(trace, chunk_size) -> Iterable[TraceChunk]:
    """TraceChunk / dict of columns / folder of .npy columns / object with .chunks() /
    iterable of any of these."""
    if isinstance(trace, TraceChunk):
        yield trace
    elif isinstance(trace, dict):
        yield TraceChunk(**trace)
    elif isinstance(trace, np.ndarray):
        raise TypeError("a bare array is a trace of loads (DESIGN section 3); a kmap trace "
                        "needs an op column: pass a dict such as {'addr': pfns, 'op': ops} "
                        "or a TraceChunk")
    elif isinstance(trace, (str, os.PathLike)):
        folder = Path(trace)
        if not (folder / "addr.npy").exists():
            raise ValueError(f"{folder}: not a native trace folder (no addr.npy)")
        cols = {name: np.load(folder / f"{name}.npy", mmap_mode="r")
                for name in ("addr", "op", "size", "cpu", "task")
                if (folder / f"{name}.npy").exists()}
        n = len(cols["addr"])
        for start in range(0, n, chunk_size):
            yield TraceChunk(**{k: v[start:start + chunk_size] for k, v in cols.items()})
    elif hasattr(trace, "chunks"):
        yield from trace.chunks(chunk_size)
    else:
        try:
            items = iter(trace)
        except TypeError:
            raise TypeError(f"cannot read a kmap trace from {type(trace).__name__}: pass a "
                            f"TraceChunk, a dict of columns, a folder of .npy columns or "
                            f"an iterable of chunks") from None
        for item in items:
            yield from _as_chunks(item, chunk_size)


class KmapPool:
    """The global persistent kmap pool of one machine, with kmap_atomic/kmap_local slots.

    Parameters
    ----------
    kernel : {"2.4.18", "2.5.13", "2.6.12", "6.x"} or KernelSpec
        Version semantics (``KERNELS``; aliases "2.4", "2.5", "2.6", "6").
    pae : bool
        ``LAST_PKMAP`` is 512 with PAE, 1024 without (specs/kmap.md 1.1).
    slots : int, optional
        Override ``LAST_PKMAP`` (Hugh Dickins' 1800, Andrea's 128, Keith's 4096); any
        size, power of two or not (the cursor wraps by compare, as in Hugh's patch).
    cpus : int
        Online CPUs: each global flush costs ``cpus - 1`` IPIs.
    tlb : dict or list of pyapi.TLB, optional
        A dTLB per CPU: ``dict(entries=64, ways=4, policy="lru")`` builds one per CPU, or
        pass ``cpus`` ``pyapi.TLB`` objects. Kmapped addresses are accessed through it.
    highmem_start_pfn : int
        First highmem pfn; lower pfns bypass the pool (default 896 MB: 229376).
    km_type_nr, atomic_flush, mem_map, page_struct :
        Override the version's KM_TYPE_NR / KM_MAX_IDX, ``"map"``/``"unmap"`` invlpg of
        typed kmap_atomic, the mem_map address (hash key base, default 0xC1000000) and
        sizeof(struct page).

    Examples
    --------
    >>> import numpy as np
    >>> from pyapi import Op
    >>> pool = KmapPool(kernel="2.6.12", pae=True, cpus=4)
    >>> pool.slots, pool.kernel.hashed
    (512, True)
    >>> pfns = np.repeat(np.arange(300000, 301024, dtype=np.uint64), 2)
    >>> ops = np.tile(np.array([Op.KMAP, Op.KUNMAP], np.uint8), 1024)
    >>> s = pool.run({"addr": pfns, "op": ops})
    >>> s.wraps, s.global_flushes, s.ipis, s.slots_reclaimed
    (2, 2, 6, 1023)
    """

    _per_task = False

    def __init__(self, kernel="2.4.18", pae: bool = False, slots: Optional[int] = None,
                 cpus: int = 1, tlb=None, highmem_start_pfn: int = MAXMEM_PFN,
                 km_type_nr: Optional[int] = None, atomic_flush: Optional[str] = None,
                 mem_map: int = 0xC1000000, page_struct: Optional[int] = None,
                 _window=None):
        spec = _kernel(kernel)
        if km_type_nr is not None:
            hi = KM_STACK_MAX_DEPTH if spec.atomic == "stack" else 1 << 15
            spec = replace(spec, km_type_nr=_count(km_type_nr, "km_type_nr", 1, hi))
        if atomic_flush is not None:
            if atomic_flush not in ("map", "unmap"):
                raise ValueError(f"atomic_flush must be 'map' or 'unmap', got {atomic_flush!r}")
            if spec.atomic != "typed":
                raise ValueError("atomic_flush applies to typed kmap_atomic slots "
                                 "(2.4 .. 2.6); 6.x kmap_local always invlpgs at unmap")
            spec = replace(spec, atomic_flush=atomic_flush)
        if page_struct is not None:
            spec = replace(spec, page_struct=_count(page_struct, "page_struct", 1, 4096))
        self.kernel = spec
        self.pae = bool(pae)
        self.slots = _count(slots, "slots", 1, 1 << 20) if slots is not None else \
            (512 if self.pae else 1024)
        self.cpus = _count(cpus, "cpus", 1, 4096)
        self.highmem_start_pfn = _count(highmem_start_pfn, "highmem_start_pfn", 0, _PFN_MAX)
        self.mem_map = _count(mem_map, "mem_map", 0, (1 << 32) - 1)
        self.tlbs = self._make_tlbs(tlb)
        w = _window or {}
        self._core = KmapCore(
            self.slots, self.cpus, self.highmem_start_pfn, spec.hashed, spec.hash_mult,
            self.mem_map, spec.page_struct, spec.flush_if_needed,
            ATOMIC_MODES[spec.atomic],
            spec.atomic_flush == "map", spec.km_type_nr, spec.pkmap_base, spec.fixaddr_top,
            9, self._per_task, w.get("share") == "mm", w.get("lazy_switch", True),
            w.get("slots", 1), w.get("base", 0xBF800000),
            None if self.tlbs is None else [t.core for t in self.tlbs])
        self._done = 0

    def _make_tlbs(self, tlb):
        if tlb is None:
            return None
        from pyapi.tlb import TLB
        if isinstance(tlb, dict):
            tlbs = [TLB(**tlb) for _ in range(self.cpus)]
        else:
            tlbs = list(tlb)
        if len(tlbs) != self.cpus or not all(isinstance(t, TLB) for t in tlbs):
            raise ValueError(f"tlb must be a dict of TLB arguments or a list of {self.cpus} "
                             f"pyapi.TLB objects (one per CPU)")
        if any(4096 not in t.page_sizes for t in tlbs):
            raise ValueError("the TLBs must hold 4K pages (kmap slots are 4K pages)")
        return tlbs

    @property
    def core(self) -> KmapCore:
        """The engine object (``mmucore.kmap.KmapCore``) for Cython consumers."""
        return self._core

    @property
    def stats(self) -> KmapStats:
        """Cumulative counters of every op run so far."""
        return KmapStats(**self._core.counters(), asleep=self._core.sleeping,
                         pending=self._core.pending)

    def state(self) -> dict:
        """The pool state: ``pkmap_count``, ``cursor``, ``slot_pfn`` (-1 = pte_none),
        tasks, windows, atomic slots, wait queue and deferred ops."""
        return self._core.snapshot()

    def page_address(self, pfn: int) -> Optional[int]:
        """The kmap virtual address of a highmem pfn in the global pool, or None; a
        lowmem pfn's permanent address ``PAGE_OFFSET + pfn*4096``. Counted as a lookup."""
        pfn = _count(pfn, "pfn", 0, _PFN_MAX)
        if pfn < self.highmem_start_pfn:
            return 0xC0000000 + (pfn << 12)
        slot = self._core.page_address(pfn)
        return None if slot < 0 else self.kernel.pkmap_base + (slot << 12)

    def __repr__(self):
        return (f"{type(self).__name__}(kernel={self.kernel.name!r}, pae={self.pae}, "
                f"slots={self.slots}, cpus={self.cpus})")

    # ------------------------------------------------------------------ running
    def _check(self, c: TraceChunk, base: int) -> None:
        op = c.op
        n = len(c)
        if not n:
            return
        bad = ~np.isin(op, np.fromiter(_ALLOWED_OPS, np.uint8))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"op {base + i}: {Op(int(op[i])).name} is not a kmap trace op "
                             f"(use KMAP, KUNMAP, KMAP_ATOMIC, KUNMAP_ATOMIC, SWITCH or "
                             f"user accesses LOAD/STORE/IFETCH/MODIFY)")
        if c.cpu is not None and int(c.cpu.max()) >= self.cpus:
            i = int(np.argmax(c.cpu >= self.cpus))
            raise ValueError(f"op {base + i}: cpu {int(c.cpu[i])} is not online "
                             f"(cpus={self.cpus})")
        kmapish = np.isin(op, np.array(_KMAP_OPS, np.uint8))
        if kmapish.any() and int(c.addr[kmapish].max()) > _PFN_MAX:
            i = int(np.argmax(kmapish & (c.addr > _PFN_MAX)))
            raise ValueError(f"op {base + i}: pfn {int(c.addr[i]):#x} is larger than "
                             f"2**52 - 1")
        sw = op == Op.SWITCH
        if sw.any() and int(c.addr[sw].max()) > _MM_MAX:
            i = int(np.argmax(sw & (c.addr > _MM_MAX)))
            raise ValueError(f"op {base + i}: SWITCH mm id {int(c.addr[i]):#x} must be < 2**63")
        if self.kernel.atomic == "typed" and c.size is not None:
            at = (op == Op.KMAP_ATOMIC) | (op == Op.KUNMAP_ATOMIC)
            if at.any() and int(c.size[at].max()) >= self.kernel.km_type_nr:
                i = int(np.argmax(at & (c.size >= self.kernel.km_type_nr)))
                raise ValueError(f"op {base + i}: km_type {int(c.size[i])} >= KM_TYPE_NR="
                                 f"{self.kernel.km_type_nr} (the size column of an atomic "
                                 f"op is its km_type)")

    def run(self, trace, *, chunk_size: int = 1 << 20, on_sleepers: str = "raise",
            check_input: bool = True) -> KmapStats:
        """Run a kmap trace; the state carries over between calls. Returns the counters.

        ``trace``: a ``TraceChunk``, a dict of columns, a folder of ``.npy`` columns, an
        object with ``.chunks(n)`` or an iterable of these. Each chunk is checked once,
        then run in one nogil call. A BUG() raises ``KmapBugError`` (counters kept).
        If tasks are still asleep at the end, ``on_sleepers="raise"`` raises
        ``KmapDeadlockError``; ``"report"`` returns (``stats.asleep``/``stats.pending``);
        a later ``run`` may wake them.
        """
        if on_sleepers not in ("raise", "report"):
            raise ValueError(f"on_sleepers must be 'raise' or 'report', got {on_sleepers!r}")
        chunk_size = _count(chunk_size, "chunk_size", 1, 1 << 40)
        for c in _as_chunks(trace, chunk_size):
            if len(c) <= chunk_size:
                self._run_chunk(c, check_input)
                continue
            for start in range(0, len(c), chunk_size):
                self._run_chunk(c[start:start + chunk_size], check_input)
        stats = self.stats
        if stats.asleep and on_sleepers == "raise":
            st = self.state()
            asleep = sorted(t for t, d in st["tasks"].items() if d["asleep"])
            deadlock = len(asleep) == len(st["tasks"])
            at = ", ".join(f"task {t} at op {st['tasks'][t]['blocked']}" for t in asleep[:8])
            raise KmapDeadlockError(
                f"the trace ended with {len(asleep)} task(s) asleep in kmap waiting for a "
                f"free pkmap slot ({at}{', ...' if len(asleep) > 8 else ''}); "
                f"{stats.pending} op(s) not run"
                + ("; every task is asleep: deadlock" if deadlock else ""),
                asleep, deadlock, stats)
        return stats

    def _run_chunk(self, c: TraceChunk, check_input: bool) -> None:
        base = self._done
        if check_input:
            self._check(c, base)
        code = self._core.run(c.addr, c.op, c.size, c.cpu, c.task, base)
        self._done += len(c)
        if code:
            b = self._core.bug()
            stats = self.stats
            i = b["index"]
            what = (f"{Op(b['op']).name} of pfn {b['pfn']:#x}" if b["pfn"] is not None
                    else Op(b["op"]).name)
            raise KmapBugError(f"op {i} ({what} by task {b['task']} on CPU {b['cpu']}): "
                               f"{_BUGS[code]}", i, BUG_NAMES[code], b["pfn"], b["task"],
                               b["cpu"], stats)


class PerTaskKmapPool(KmapPool):
    """Bligh's per-task kmap pool (specs/kmap.md 6.6: a what-if, not kernel code), over
    the global pool of ``kernel`` for cross-task access and overflow.

    Each task (or, with ``share="mm"``, each process: threads share it) owns a window of
    ``window_slots`` non-global slots with its own pfn -> slot table and the pkmap
    0 / 1 / n counts and cursor. A kmap looks the pfn up in the window; a miss takes the
    next free slot; when the window's cursor wraps, its idle slots are reclaimed and, if
    any of them may still be in a TLB, this CPU's non-global entries are flushed and the
    other CPUs with the same page table loaded get a shootdown IPI. With
    ``lazy_switch=True`` a CR3 reload that unloaded the window everywhere (a context
    switch) counts as that flush. A full window falls back to the global pool; a
    ``KMAP``/``KUNMAP`` with ``size=1`` is a cross-task access (global pool).

    The parameters below are those it adds to ``KmapPool``'s.

    Parameters
    ----------
    window_slots : int, optional
        Slots per window; default one page table page: 1024 (512 with PAE).
    share : {"task", "mm"}
        Per-task windows (each task has its own page table: every task switch reloads
        CR3) or one window per mm shared by its threads (switches between threads of one
        mm keep CR3; wraps shoot down the other CPUs running the mm).
    lazy_switch : bool
        Whether context switches make wrap flushes unnecessary (default True).
    window_base : int
        Virtual address of slot 0 of every window (default 0xBF800000, below
        PAGE_OFFSET as in the UKVA patch).

    Examples
    --------
    >>> import numpy as np
    >>> from pyapi import Op
    >>> pool = PerTaskKmapPool(kernel="2.4.18", window_slots=4, cpus=2)
    >>> pfns = np.repeat(np.arange(300000, 300012, dtype=np.uint64), 2)
    >>> ops = np.tile(np.array([Op.KMAP, Op.KUNMAP], np.uint8), 12)
    >>> s = pool.run({"addr": pfns, "op": ops})
    >>> s.task_new_mappings, s.task_wraps, s.task_flushes, s.global_flushes
    (12, 3, 3, 0)
    """

    _per_task = True

    def __init__(self, kernel="2.4.18", pae: bool = False, slots: Optional[int] = None,
                 cpus: int = 1, tlb=None, window_slots: Optional[int] = None,
                 share: str = "task", lazy_switch: bool = True,
                 window_base: int = 0xBF800000, **kw):
        if share not in ("task", "mm"):
            raise ValueError(f"share must be 'task' or 'mm', got {share!r}")
        ws = (512 if pae else 1024) if window_slots is None else \
            _count(window_slots, "window_slots", 1, 1 << 20)
        self.window_slots, self.share, self.lazy_switch = ws, share, bool(lazy_switch)
        self.window_base = _count(window_base, "window_base", 0, (1 << 32) - 1)
        super().__init__(kernel, pae, slots, cpus, tlb,
                         _window=dict(slots=ws, share=share, lazy_switch=bool(lazy_switch),
                                      base=self.window_base), **kw)

    def __repr__(self):
        return (f"PerTaskKmapPool(kernel={self.kernel.name!r}, pae={self.pae}, "
                f"slots={self.slots}, cpus={self.cpus}, window_slots={self.window_slots}, "
                f"share={self.share!r})")

