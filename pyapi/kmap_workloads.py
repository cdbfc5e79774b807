"""Seeded generators of kmap traces (vectorised numpy; each returns one ``TraceChunk``).

* ``page_cache``: N tasks on C CPUs read (or write) files page by page the 2.4 way,
  ``kmap(page); copy_to_user; kunmap(page)`` (``generic_file_read`` / ``file_read_actor``),
  with a chosen share of copies that find their page still kmapped (small records: several
  copies per page) and user-buffer accesses that feel the TLB flushes.
* ``pte_highmem``: page tables in highmem, kmapped on every fault while a data page is
  kmapped too (Andrea's pte-highmem through the persistent pool, or 2.5 highpte through
  ``kmap_atomic(KM_PTE0)``).
* ``bounce_io``: block I/O to a device that cannot reach highmem: every highmem page is
  copied to/from a lowmem bounce page under ``kmap_atomic`` (``KM_BOUNCE_READ`` on read
  completion, ``KM_USER0`` on write submission).

Every task runs on CPU ``task % cpus``; tasks sharing a CPU take turns in time slices, and
a ``SWITCH`` op (``addr`` = the task's mm) starts every slice. Highmem pfns are drawn from
a seeded permutation above ``highmem_start``.

>>> from pyapi.kmap import KmapPool
>>> t = page_cache(1000, file_pages=4096, tasks=4, cpus=2, hit_rate=0.9, seed=1)
>>> s = KmapPool(cpus=2).run(t)
>>> s.kmaps, round(s.hit_ratio, 2)
(1000, 0.89)
"""
from __future__ import annotations

import numpy as np

from pyapi.chunk import TraceChunk
from pyapi.kmap import MAXMEM_PFN, _kernel
from pyapi.ops import Op

__all__ = ["page_cache", "pte_highmem", "bounce_io"]

_USER_BASE = 0x08048000          # the i386 ELF text start: user buffers live above it
_KM_BOUNCE_READ, _KM_USER0 = 0, 3                 # the same in 2.4.15, 2.5.13, 2.6.12
#: KM_PTE0 by version: 2.5.13 (BOUNCE_READ, SKB_DATA, SKB_DATA_SOFTIRQ, USER0, USER1,
#: BIO_IRQ, PTE0) and 2.6.12 (... USER1, BIO_SRC_IRQ, BIO_DST_IRQ, PTE0; include/asm-i386/
#: kmap_types.h at 1da177e4); 2.4 has no KM_PTE0 (specs/kmap.md 3.2).
_KM_PTE0 = {"2.5.13": 6, "2.6.12": 7}


def _check(n, tasks, cpus, slice_steps):
    for name, v in (("n", n), ("tasks", tasks), ("cpus", cpus), ("slice_steps", slice_steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "n" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'n' else 'positive'} "
                             f"integer, got {v!r}")


def _schedule(rng, n, tasks, cpus, slice_steps):
    """cpu and task of each of n steps, and whether a new time slice starts there."""
    cpu = rng.integers(0, cpus, n).astype(np.uint16)
    order = np.argsort(cpu, kind="stable")
    starts = np.searchsorted(cpu[order], np.arange(cpus))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - starts[cpu[order]]
    per_cpu = np.array([len(range(c, tasks, cpus)) for c in range(cpus)])
    k = (rank // slice_steps) % np.maximum(per_cpu[cpu], 1)
    task = (cpu.astype(np.int64) + cpus * k).astype(np.uint32)
    new_slice = (rank % slice_steps) == 0
    return cpu, task, new_slice


def _per_task_count(task, flags):
    """Running count of flags per task (inclusive), in trace order."""
    order = np.argsort(task, kind="stable")
    f = flags[order].astype(np.int64)
    c = np.cumsum(f)
    t = task[order]
    first = np.r_[True, t[1:] != t[:-1]]
    base = np.maximum.accumulate(np.where(first, c - f, 0))
    out = np.empty(len(task), np.int64)
    out[order] = c - base
    return out


def _assemble(cols_per_step, keep):
    """(n, L) arrays per column -> 1-D trace columns, dropping entries where keep is False."""
    mask = keep.ravel()
    return {k: v.ravel()[mask] for k, v in cols_per_step.items()}


def _pfns(rng, count, highmem_start):
    return (highmem_start + rng.permutation(count)).astype(np.uint64)


def page_cache(n, file_pages=4096, tasks=4, cpus=1, hit_rate=0.5, write_fraction=0.0,
               shared_file=False, user_accesses=1, user_pages=16, threads_per_mm=1,
               slice_steps=64, highmem_start=MAXMEM_PFN, seed=0) -> TraceChunk:
    """``n`` page copies of file data: ``kmap(page)``, ``user_accesses`` user-buffer
    accesses (STORE for a read's copy_to_user, LOAD for a write's copy_from_user),
    ``kunmap(page)``.

    Each task streams through its own file of ``file_pages`` pages (one file for all
    with ``shared_file``); a copy moves to the next page with probability
    ``1 - hit_rate`` and otherwise copies from the same page again (the next record of a
    page read in small records), so about ``hit_rate`` of kmaps find the page mapped.
    Tasks ``t`` with equal ``t // threads_per_mm`` are threads of one mm.

    >>> from pyapi.kmap import KmapPool
    >>> t = page_cache(1000, file_pages=64, tasks=2, cpus=2, hit_rate=0.9, seed=0)
    >>> s = KmapPool(cpus=2).run(t)
    >>> s.kmaps == s.kunmaps == 1000
    True
    """
    _check(n, tasks, cpus, slice_steps)
    if not 0.0 <= hit_rate < 1.0:
        raise ValueError(f"hit_rate must be in [0, 1), got {hit_rate}")
    if file_pages < 1 or user_pages < 1 or user_accesses < 0 or threads_per_mm < 1:
        raise ValueError("file_pages, user_pages and threads_per_mm must be >= 1, "
                         "user_accesses >= 0")
    rng = np.random.default_rng(seed)
    cpu, task, new_slice = _schedule(rng, n, tasks, cpus, slice_steps)
    newpage = rng.random(n) >= hit_rate
    # the first copy of every task starts a page
    first = np.zeros(n, bool)
    first[np.unique(task, return_index=True)[1]] = True
    newpage |= first
    page = _per_task_count(task, newpage) - 1
    nfiles = 1 if shared_file else tasks
    pfn_of = _pfns(rng, nfiles * file_pages, highmem_start)
    file = np.zeros(n, np.int64) if shared_file else task.astype(np.int64)
    pfn = pfn_of[file * file_pages + page % file_pages]
    step = _per_task_count(task, np.ones(n, bool)) - 1
    write = rng.random(n) < write_fraction
    L = 3 + user_accesses
    addr = np.empty((n, L), np.uint64)
    op = np.empty((n, L), np.uint8)
    addr[:, 0] = task // threads_per_mm
    op[:, 0] = Op.SWITCH
    addr[:, 1] = pfn
    op[:, 1] = Op.KMAP
    for u in range(user_accesses):
        upage = (step * user_accesses + u) % user_pages
        addr[:, 2 + u] = (_USER_BASE + (upage << 12)).astype(np.uint64)
        op[:, 2 + u] = np.where(write, Op.LOAD, Op.STORE)
    addr[:, L - 1] = pfn
    op[:, L - 1] = Op.KUNMAP
    keep = np.ones((n, L), bool)
    keep[:, 0] = new_slice
    cols = _assemble(dict(addr=addr, op=op, cpu=np.repeat(cpu[:, None], L, 1),
                          task=np.repeat(task[:, None], L, 1)), keep)
    return TraceChunk(cols["addr"], cols["op"], cpu=cols["cpu"], task=cols["task"])


def pte_highmem(n, tasks=4, cpus=1, pte_pages=64, data_pages=4096, atomic=False,
                kernel="2.5.13", slice_steps=64, highmem_start=MAXMEM_PFN,
                seed=0) -> TraceChunk:
    """``n`` faults during file reads with page tables in highmem: ``kmap(data)``, then
    the fault maps the faulting task's PTE page (``kmap(pte)`` through the persistent
    pool as in the -aa pte-highmem, or ``kmap_atomic(pte, KM_PTE0)`` with
    ``atomic=True`` as in 2.5 highpte), touches it, unmaps it, and ``kunmap(data)``.

    Each task has ``pte_pages`` page-table pages (chosen with a Zipf-like skew: the stack
    and heap tables are hot) and streams through ``data_pages`` file pages. ``kernel``
    decides what the ``size`` column of an atomic op means (km_type or the 6.x atomic
    flag).

    >>> from pyapi.kmap import KmapPool
    >>> t = pte_highmem(100, seed=0)
    >>> s = KmapPool(kernel="2.5.13").run(t)
    >>> s.kmaps == s.kunmaps, s.hit_ratio
    (True, 0.37)
    """
    _check(n, tasks, cpus, slice_steps)
    spec = _kernel(kernel)
    rng = np.random.default_rng(seed)
    cpu, task, new_slice = _schedule(rng, n, tasks, cpus, slice_steps)
    pfns = _pfns(rng, tasks * (pte_pages + data_pages), highmem_start)
    t64 = task.astype(np.int64)
    pte_idx = np.minimum(rng.zipf(1.5, n) - 1, pte_pages - 1)
    pte = pfns[t64 * pte_pages + pte_idx]
    data_page = _per_task_count(task, np.ones(n, bool)) - 1
    data = pfns[tasks * pte_pages + t64 * data_pages + data_page % data_pages]
    L = 5
    addr = np.stack([t64.astype(np.uint64), data, pte, pte, data], 1)
    kmap_pte, kunmap_pte = (Op.KMAP_ATOMIC, Op.KUNMAP_ATOMIC) if atomic else (Op.KMAP, Op.KUNMAP)
    op = np.tile(np.array([Op.SWITCH, Op.KMAP, kmap_pte, kunmap_pte, Op.KUNMAP], np.uint8), (n, 1))
    size = np.zeros((n, L), np.uint16)
    if atomic:
        pte0 = _KM_PTE0.get(spec.name)
        if spec.atomic == "typed" and (pte0 is None or pte0 >= spec.km_type_nr):
            raise ValueError(f"kernel {spec.name} has no KM_PTE0 slot (KM_TYPE_NR="
                             f"{spec.km_type_nr}); use 2.5.13 or later")
        size[:, 2:4] = pte0 if spec.atomic == "typed" else 1
    keep = np.ones((n, L), bool)
    keep[:, 0] = new_slice
    cols = _assemble(dict(addr=addr, op=op, size=size, cpu=np.repeat(cpu[:, None], L, 1),
                          task=np.repeat(task[:, None], L, 1)), keep)
    return TraceChunk(cols["addr"], cols["op"], size=cols["size"], cpu=cols["cpu"],
                      task=cols["task"])


def bounce_io(n_requests, pages_per_request=8, cpus=1, read_fraction=0.5, data_pages=65536,
              bounce_pages=256, kernel="2.4.18", highmem_start=MAXMEM_PFN,
              seed=0) -> TraceChunk:
    """``n_requests`` block I/O requests of ``pages_per_request`` highmem pages through
    lowmem bounce buffers. A write copies each page at submission
    (``kmap_atomic(page, KM_USER0)``, the bounce page is lowmem: ``kmap`` bypasses the
    pool); a read copies each page back at completion, in interrupt context, with
    ``kmap_atomic(page, KM_BOUNCE_READ)``. Each request runs on a random CPU, and its
    copies are issued by the task of that CPU (task = cpu: no context switches).

    >>> from pyapi.kmap import KmapPool
    >>> s = KmapPool(cpus=2).run(bounce_io(10, cpus=2, seed=0))
    >>> s.atomic_maps, s.atomic_unmaps, s.global_flushes
    (80, 80, 0)
    """
    _check(n_requests, 1, cpus, 1)
    spec = _kernel(kernel)
    rng = np.random.default_rng(seed)
    P = pages_per_request
    n = n_requests * P
    cpu = np.repeat(rng.integers(0, cpus, n_requests), P).astype(np.uint16)
    task = cpu.astype(np.uint32)                 # the task running on that CPU
    read = np.repeat(rng.random(n_requests) < read_fraction, P)
    start = rng.integers(0, max(data_pages - P, 1), n_requests)
    data = (highmem_start + np.repeat(start, P) + np.tile(np.arange(P), n_requests)).astype(np.uint64)
    bounce = rng.integers(0, min(bounce_pages, highmem_start), n).astype(np.uint64)
    addr = np.stack([data, bounce, bounce, data], 1)
    op = np.tile(np.array([Op.KMAP_ATOMIC, Op.KMAP, Op.KUNMAP, Op.KUNMAP_ATOMIC], np.uint8), (n, 1))
    if spec.atomic == "typed":
        kt = np.where(read, _KM_BOUNCE_READ, _KM_USER0).astype(np.uint16)
    else:
        kt = np.ones(n, np.uint16)
    size = np.zeros((n, 4), np.uint16)
    size[:, 0] = kt
    size[:, 3] = kt
    L = 4
    return TraceChunk(addr.ravel(), op.ravel(), size=size.ravel(),
                      cpu=np.repeat(cpu, L), task=np.repeat(task, L))
