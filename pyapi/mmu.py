"""The MMU: per-CPU TLB hierarchies, paging-structure caches and page tables, replaying
traces chunk by chunk (``docs/mmu.md`` is the contract).

The engine is ``mmucore.mmu`` (typed Cython); this module validates each chunk once
(vectorised) and makes one ``nogil`` call per chunk.

>>> import numpy as np
>>> from pyapi import MMU, workloads
>>> mmu = MMU.from_preset("skylake", paging="x86_64", huge_pages="never", cpus=1)
>>> stats = mmu.replay(workloads.uniform(10**5, footprint="64M", seed=0), progress=False)
>>> stats["cpu0.accesses"], stats["cpu0.walks"] == stats["cpu0.l2_misses"]
(100000, True)
>>> mmu.translate(np.array([0x1234], dtype=np.uint64)) & 0xFFF
array([564], dtype=uint64)
"""
from __future__ import annotations

import json
import os
import sys
import zipfile
from typing import NamedTuple, Optional

import numpy as np

from mmucore._types import OPS, PAGE_SIZE_CODES, POLICIES
from mmucore.mmu import (COUNTER_NAMES, INCLUSIONS, MAX_ASIDS, MMUCore, SIDES, WHERE)
from mmucore.pagetable import MODES
from pyapi.chunk import TraceChunk
from pyapi.config import MMUConfig, TLBConfig
from pyapi.pagetable import PageTable
from pyapi.progress import progress_bar
from pyapi.stats import Stats
from pyapi.trace import as_trace
from pyapi.units import parse_size

__all__ = ["MMU", "MMUAccessResult", "WHERE", "CHECKPOINT_FORMAT"]

_LEVELS = {"x86_32": 2, "pae": 3, "x86_64": 4, "la57": 5}
_PSC_NAMES = {1: "pde", 2: "pdpte", 3: "pml4e", 4: "pml5e"}
_KMAP_OPS = (OPS["KMAP"], OPS["KUNMAP"], OPS["KMAP_ATOMIC"], OPS["KUNMAP_ATOMIC"])
_MAX_MMU_OP = OPS["UNMAP"]
_U64 = (1 << 64) - 1
#: Version of the checkpoint file layout written by :meth:`MMU.save`.
CHECKPOINT_FORMAT = 1
_CHECKPOINT_KIND = "mmucore-mmu-checkpoint"


class MMUAccessResult(NamedTuple):
    """Per-record outputs of :meth:`MMU.access`: ``paddr`` (uint64, 0 on a fault or for
    a control op), ``where`` (uint8: 0 L1 hit, 1 L2 hit, 2 walk, 3 fault, 255 control
    op; first page of the access), ``fault`` (uint32 x86 error code with ``FAULT_PF``,
    0 if none) and ``walk_entries`` (n x levels uint64 entry addresses of the first
    page's walk, padded with 2**64-1; ``None`` unless ``record=True``).

    >>> from pyapi import MMU
    >>> mmu = MMU.from_preset("p6", paging="pae")
    >>> r = mmu.access(np.array([0x1000, 0x1008], dtype=np.uint64), record=True)
    >>> r.where.tolist(), r.walk_entries.shape      # a walk (PDE, PTE), then an L1 hit
    ([2, 0], (2, 2))
    """
    paddr: np.ndarray
    where: np.ndarray
    fault: np.ndarray
    walk_entries: Optional[np.ndarray]


def _fill_table(cfg: MMUConfig) -> dict:
    """{(level, side code, size code): (structure index, entry size code)}."""
    out = {}
    for level in (1, 2):
        for side in ("data", "instruction"):
            sides = (side,) if level == 1 else (side, "unified")
            for j, t in enumerate(cfg.tlbs):
                if t.level != level or t.side not in sides:
                    continue
                for name, code in PAGE_SIZE_CODES.items():
                    key = (level, SIDES[side], code)
                    if name in t.page_sizes:
                        out[key] = (j, code)
                    elif name in t.splinter and t.splinter[name] in t.page_sizes \
                            and key not in out:
                        out[key] = (j, PAGE_SIZE_CODES[t.splinter[name]])
    return out


class MMU:
    """A simulated MMU: ``config.cpus`` CPUs, each with the TLB structures and PSCs of
    ``config``, over address spaces (ASIDs 0..4095) with demand-paged page tables.

    Keyword arguments override fields of ``config`` (``paging``, ``huge_pages``,
    ``pcid``, ``cpus``, ``inclusion``, ``seed``, ``phys_mem``, ``allocator``, ...).

    >>> from pyapi.config import MMUConfig, TLBConfig
    >>> cfg = MMUConfig("tiny", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",)),))
    >>> mmu = MMU(cfg)
    >>> mmu.map(0x400000, 2 << 20, page_size="2M")
    1
    >>> r = mmu.access(np.array([0x400010, 0x400020, 0x5000], dtype=np.uint64))
    >>> r.where.tolist(), mmu.stats["cpu0.dtlb.misses"]
    ([2, 2, 2], 1)
    """

    def __init__(self, config: MMUConfig, *, paging=None, huge_pages=None, pcid=None,
                 cpus=None, inclusion=None, seed=None, **overrides):
        if not isinstance(config, MMUConfig):
            raise TypeError(f"config must be an MMUConfig (or use MMU.from_preset), not "
                            f"{type(config).__name__}")
        for name, value in (("paging", paging), ("huge_pages", huge_pages), ("pcid", pcid),
                            ("cpus", cpus), ("inclusion", inclusion), ("seed", seed)):
            if value is not None:
                overrides[name] = value
        if overrides:
            config = config.replace(**overrides) if hasattr(config, "replace") else \
                __import__("dataclasses").replace(config, **overrides)
        self._cfg = config
        mode = config.paging
        self._levels = _LEVELS[mode]
        self._tables = {}
        self._names = [t.name for t in config.tlbs]
        psc = config.active_psc() if hasattr(config, "active_psc") else {}
        self._psc_levels = sorted(psc)
        specs = [(t.level, SIDES[t.side], t.entries // t.ways, t.ways, POLICIES[t.policy],
                  sum(1 << PAGE_SIZE_CODES[s] for s in t.page_sizes)) for t in config.tlbs]
        self._core = MMUCore(int(config.cpus), specs, _fill_table(config),
                             {L: (e // w, w) for L, (e, w) in psc.items()},
                             POLICIES[config.psc_policy], INCLUSIONS[config.inclusion],
                             bool(config.pcid), MODES[mode], self._levels, bool(config.user),
                             int(config.seed) & _U64, self._new_table)
        self._interrupted = False

    def _new_table(self, asid: int):
        cfg = self._cfg
        kw = {}
        if cfg.phys_mem is not None:
            kw["phys_mem"] = cfg.phys_mem
        if cfg.maxphyaddr is not None:
            kw["maxphyaddr"] = cfg.maxphyaddr
        pt = PageTable(cfg.paging, allocator=cfg.allocator, seed=int(cfg.seed), demand=True,
                       huge_pages=cfg.huge_pages, psc=None, **kw)
        self._tables[asid] = pt
        return pt.core

    @classmethod
    def from_preset(cls, name, *, paging=None, huge_pages=None, pcid=None, cpus=None,
                    **overrides) -> "MMU":
        """An MMU of a bundled CPU preset (``pyapi.config.preset_names()``), a path to a
        ``.toml`` file of the preset schema, or an ``MMUConfig``; keyword arguments
        override its fields.

        >>> MMU.from_preset("skylake", cpus=2).config.cpus
        2
        """
        if isinstance(name, MMUConfig):
            cfg = name
        else:
            from pyapi import config as _config
            if not hasattr(_config, "load_preset"):
                raise RuntimeError("pyapi.config has no preset loader in this build")
            cfg = _config.load_preset(name)
        return cls(cfg, paging=paging, huge_pages=huge_pages, pcid=pcid, cpus=cpus,
                   **overrides)

    # -- properties -----------------------------------------------------------------
    @property
    def config(self) -> MMUConfig:
        """The configuration (with the overrides applied)."""
        return self._cfg

    @property
    def cpus(self) -> int:
        """Number of CPUs."""
        return self._core.cpus

    @property
    def position(self) -> int:
        """Trace records processed so far (where an interrupted replay stopped)."""
        return self._core.position

    @property
    def core(self) -> MMUCore:
        """The engine object (``mmucore.mmu.MMUCore``)."""
        return self._core

    @property
    def asids(self) -> list:
        """The address spaces created so far, ascending."""
        return sorted(self._tables)

    def current_asid(self, cpu: int = 0) -> int:
        """The ASID CPU ``cpu`` runs (its CR3)."""
        self._check_cpu(cpu)
        return self._core.current_asid(cpu)

    def cpumask(self, asid: int) -> list:
        """The CPUs on which ``asid`` is current."""
        return self._core.cpumask(self._check_asid(asid))

    def __repr__(self) -> str:
        c = self._cfg
        return (f"MMU({c.name!r}, paging={c.paging!r}, cpus={c.cpus}, pcid={c.pcid}, "
                f"inclusion={c.inclusion!r}, huge_pages={c.huge_pages!r})")

    # -- address spaces -------------------------------------------------------------
    def _check_cpu(self, cpu):
        if isinstance(cpu, bool) or not isinstance(cpu, (int, np.integer)) or \
                not 0 <= cpu < self.cpus:
            raise ValueError(f"cpu {cpu!r} is outside 0..{self.cpus - 1}")
        return int(cpu)

    @staticmethod
    def _check_asid(asid):
        if isinstance(asid, bool) or not isinstance(asid, (int, np.integer)) or \
                not 0 <= asid < MAX_ASIDS:
            raise ValueError(f"asid {asid!r} is outside 0..{MAX_ASIDS - 1}")
        return int(asid)

    def _table(self, asid) -> PageTable:
        asid = self._check_asid(asid)
        self._core.ensure(asid)
        return self._tables[asid]

    def page_table(self, asid: int = 0) -> PageTable:
        """ASID ``asid``'s page table (a live ``pyapi.PageTable``: ``mappings()``,
        ``stats``, ``read_entry`` ...). ``KeyError`` if the address space does not exist.

        >>> from pyapi.config import MMUConfig, TLBConfig
        >>> mmu = MMU(MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",)),)))
        >>> _ = mmu.map(0x1000, 0x2000, asid=3)
        >>> [(hex(m.vaddr), m.size) for m in mmu.page_table(3).mappings()]
        [('0x1000', 4096), ('0x2000', 4096)]
        """
        asid = self._check_asid(asid)
        if asid not in self._tables:
            raise KeyError(f"address space {asid} does not exist yet (existing: "
                           f"{sorted(self._tables)})")
        return self._tables[asid]

    def map(self, vaddr, size, page_size="4K", asid: int = 0, pfn=None,
            writable: bool = True, user: bool = True, global_: bool = False) -> int:
        """Map ``[vaddr, vaddr + size)`` in ``asid`` (created if new) as
        ``PageTable.map`` does; no TLB effect. Returns the pages mapped.

        >>> from pyapi.config import MMUConfig, TLBConfig
        >>> mmu = MMU(MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",)),)))
        >>> mmu.map(0x200000, 0x200000, page_size="2M", global_=True)
        1
        """
        return self._table(asid).map(vaddr, size, page_size=page_size, pfn=pfn,
                                     writable=writable, user=user, global_=global_)

    def unmap(self, vaddr, size, asid: int = 0) -> int:
        """Unmap ``[vaddr, vaddr + size)`` in ``asid`` and invalidate the range (that
        ASID's and global entries, and the ASID's PSC entries) on every CPU. Returns the
        leaves removed.

        >>> from pyapi.config import MMUConfig, TLBConfig
        >>> mmu = MMU(MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",)),)))
        >>> _ = mmu.map(0x1000, 0x1000)
        >>> mmu.unmap(0x1000, 0x1000)
        1
        """
        pt = self._table(asid)
        n = pt.unmap(vaddr, size)
        self._invalidate(asid, vaddr, size)
        return n

    def protect(self, vaddr, size, asid: int = 0, writable: Optional[bool] = None,
                user: Optional[bool] = None, nx: Optional[bool] = None) -> int:
        """Change the rights of the leaves in ``[vaddr, vaddr + size)`` of ``asid``
        (``PageTable.protect``) and invalidate the range on every CPU.

        >>> from pyapi.config import MMUConfig, TLBConfig
        >>> mmu = MMU(MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",)),)))
        >>> _ = mmu.map(0x1000, 0x1000)
        >>> mmu.protect(0x1000, 0x1000, writable=False)
        1
        """
        pt = self._table(asid)
        n = pt.protect(vaddr, size, writable=writable, user=user, nx=nx)
        self._invalidate(asid, vaddr, size)
        return n

    def _invalidate(self, asid, vaddr, size):
        for v, s in np.broadcast(np.asarray(vaddr, dtype=object), np.asarray(size, dtype=object)):
            v, s = int(v), parse_size(s)
            if s:
                self._core.invalidate_range(int(asid), v & _U64, (v + s - 1) & _U64)

    # -- running ----------------------------------------------------------------------
    def _columns(self, chunk: TraceChunk, base: int):
        """Validated engine arguments of one chunk (vectorised checks)."""
        n = len(chunk)
        op = chunk.op
        opmax = int(op.max()) if n else 0
        if opmax > _MAX_MMU_OP:
            bad = np.flatnonzero(op > _MAX_MMU_OP)
            i = int(bad[0])
            code = int(op[i])
            what = ("a kmap op (KMAP/KUNMAP/KMAP_ATOMIC/KUNMAP_ATOMIC); replay it with "
                    "pyapi.KmapPool" if code in _KMAP_OPS else "not an MMU op")
            raise ValueError(f"trace record {base + i}: op {code} is {what}; the MMU "
                             f"takes ops 0..{_MAX_MMU_OP}")
        cpu = chunk.cpu
        if cpu is not None and n:
            cmax = int(cpu.max())
            if cmax >= self.cpus:
                i = int(np.argmax(cpu >= self.cpus))
                raise ValueError(f"trace record {base + i}: cpu {int(cpu[i])} but the MMU "
                                 f"has {self.cpus} CPU(s) (0..{self.cpus - 1})")
            if cmax == 0:
                cpu = None
        if opmax >= OPS["SWITCH"]:
            arg_ops = (op == OPS["SWITCH"]) | (op == OPS["FLUSH_ASID"])
            bad = np.flatnonzero(arg_ops & (chunk.addr >= MAX_ASIDS))
            if len(bad):
                i = int(bad[0])
                raise ValueError(f"trace record {base + i}: ASID {int(chunk.addr[i])} of a "
                                 f"{'SWITCH' if op[i] == OPS['SWITCH'] else 'FLUSH_ASID'} "
                                 f"is outside 0..{MAX_ASIDS - 1}")
        size = chunk.size
        if size is not None and n and int(size.max()) <= 1:
            size = None
        return chunk.addr, (op if opmax else None), size, cpu

    def _run(self, chunk: TraceChunk, outputs=None):
        base = self._core.position
        addr, op, size, cpu = self._columns(chunk, base)
        try:
            if outputs is None:
                self._core.run(addr, op, size, cpu)
            else:
                self._core.run(addr, op, size, cpu, *outputs)
        except MemoryError as exc:
            raise MemoryError(f"trace record {self._core.position}: {exc}") from exc

    @staticmethod
    def _chunk(obj) -> TraceChunk:
        if isinstance(obj, TraceChunk):
            return obj
        if isinstance(obj, np.ndarray):
            if obj.ndim != 1:
                raise ValueError(f"an address array must be 1-D, got shape {obj.shape}")
            if obj.dtype != np.uint64:
                raise TypeError(f"addresses must be a uint64 array, got {obj.dtype}")
            return TraceChunk(obj)
        raise TypeError(f"access() takes a TraceChunk or a uint64 array, not "
                        f"{type(obj).__name__}")

    def access(self, chunk, record: bool = False) -> MMUAccessResult:
        """Run one chunk (a ``TraceChunk`` or a uint64 address array of loads on CPU 0)
        and return its per-record outputs (:class:`MMUAccessResult`); with
        ``record=True`` also the entries each first-page walk read.

        >>> from pyapi.config import MMUConfig, TLBConfig
        >>> mmu = MMU(MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",)),)))
        >>> r = mmu.access(np.array([0x1000, 0x1008], dtype=np.uint64), record=True)
        >>> r.where.tolist(), r.walk_entries.shape
        ([2, 0], (2, 4))
        """
        chunk = self._chunk(chunk)
        n = len(chunk)
        paddr = np.zeros(n, np.uint64)
        where = np.zeros(n, np.uint8)
        fault = np.zeros(n, np.uint32)
        cols = 2 if self._cfg.paging == "pae" else self._levels
        entries = np.full(n * cols, _U64, np.uint64) if record else None
        self._run(chunk, (paddr, where, fault, entries))
        return MMUAccessResult(paddr, where, fault,
                               entries.reshape(n, cols) if record else None)

    def translate(self, vaddrs) -> np.ndarray:
        """Physical addresses of loads of ``vaddrs`` on CPU 0 (0 where one faults); the
        translations go through the TLBs and count like any access.

        >>> from pyapi.config import MMUConfig, TLBConfig
        >>> mmu = MMU(MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",)),)))
        >>> _ = mmu.map(0x1000, 0x1000, pfn=0x77)
        >>> hex(int(mmu.translate(np.array([0x1234], dtype=np.uint64))[0]))
        '0x77234'
        """
        va = np.ascontiguousarray(np.asarray(vaddrs))
        if va.dtype.kind not in "iu":
            raise TypeError(f"vaddrs must be integers, got {va.dtype}")
        if va.dtype.kind == "i" and va.size and int(va.min()) < 0:
            raise ValueError("vaddrs must not be negative")
        return self.access(np.ascontiguousarray(va.astype(np.uint64).ravel())).paddr

    def replay(self, trace, chunk_size: int = 1 << 20, progress: bool = True, *,
               checkpoint=None, every: Optional[int] = None, resume: bool = False,
               skip: int = 0) -> Stats:
        """Replay ``trace`` (a uint64 array, a ``Trace``, a path, a workload or an
        iterable of ``TraceChunk``) chunk by chunk with bounded memory and return the
        cumulative :class:`~pyapi.stats.Stats`. Ctrl-C stops the replay after the chunk
        that is running and returns the stats so far with ``interrupted`` set
        (``position`` says where it stopped). With ``progress`` and ``tqdm`` installed, a
        progress bar goes to stderr when stderr is a terminal.

        Checkpoints (``docs/mmu.md``, "Checkpoints"): with ``checkpoint=path`` the MMU is
        saved (:meth:`save`, atomically) after each chunk once at least ``every``
        records (default: ``chunk_size``) ran since the last save, and at the end.
        ``skip=n`` drops the first ``n`` records of ``trace`` (array, in-memory and
        native traces are sliced; other sources are read and the records dropped);
        ``resume=True`` is ``skip=self.position``: after ``MMU.load(path)``, replaying
        the same trace with ``resume=True`` continues where the checkpoint was taken.

        >>> from pyapi.config import MMUConfig, TLBConfig
        >>> mmu = MMU(MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",)),)))
        >>> s = mmu.replay(np.arange(0, 1 << 20, 64, dtype=np.uint64), progress=False)
        >>> s["cpu0.accesses"], s["cpu0.dtlb.misses"], s.interrupted
        (16384, 256, False)
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
                or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if every is None:
            every = int(chunk_size)
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if isinstance(skip, bool) or not isinstance(skip, (int, np.integer)) or skip < 0:
            raise ValueError(f"skip must be a non-negative integer, got {skip!r}")
        if resume:
            if skip:
                raise ValueError("give resume=True or skip=, not both")
            skip = self.position
        if skip:
            trace = self._skipped(trace, int(skip), int(chunk_size))
        chunks = self._chunks(trace, int(chunk_size))
        saved_at = self.position
        t = trace
        try:
            total = len(t)
        except TypeError:
            total = None
        bar = progress_bar(total if isinstance(total, int) else None, unit="acc",
                           desc="replay", enabled=bool(progress))
        self._interrupted = False
        try:
            for chunk in chunks:
                self._run(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                if checkpoint is not None and self.position - saved_at >= every:
                    self.save(checkpoint)
                    saved_at = self.position
        except KeyboardInterrupt:
            self._interrupted = True
        finally:
            if bar is not None:
                bar.close()
        if checkpoint is not None and (self.position != saved_at
                                       or not os.path.exists(checkpoint)):
            self.save(checkpoint)
        return self.stats

    @staticmethod
    def _skipped(trace, skip: int, chunk_size: int):
        """``trace`` without its first ``skip`` records: arrays, in-memory traces and
        native (memmapped) traces are sliced; anything else is read and dropped."""
        if isinstance(trace, np.ndarray):
            return trace[skip:]
        if isinstance(trace, TraceChunk):
            return trace[skip:]
        if isinstance(trace, (str, os.PathLike)) or hasattr(trace, "chunks"):
            t = as_trace(trace)
            whole = getattr(t, "_whole", None)
            if whole is not None:
                return whole[skip:]
            arrays = getattr(t, "arrays", None)
            if t.format == "native" and arrays is not None:
                length = t.length

                def native():
                    cols = {k: arrays.get(k) for k in ("addr", "op", "size", "cpu", "task")}
                    for start in range(skip, length, chunk_size):
                        yield TraceChunk(**{k: None if v is None else v[start:start + chunk_size]
                                     for k, v in cols.items()})
                return native()
            source = t.chunks(chunk_size)
        else:
            source = iter(trace)

        def dropped():
            left = skip
            for c in source:
                if left >= len(c):
                    left -= len(c)
                    continue
                yield c[left:] if left else c
                left = 0
        return dropped()

    # -- checkpoints --------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the complete state (TLBs with their replacement state, PSCs, page
        tables, counters, ``position``) to ``path``, atomically: a temporary file next to
        it is written, flushed and renamed over it. :meth:`load` reads it back.

        >>> import os, tempfile
        >>> from pyapi.config import MMUConfig, TLBConfig
        >>> mmu = MMU(MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",)),)))
        >>> _ = mmu.replay(np.arange(0, 1 << 16, 64, dtype=np.uint64), progress=False)
        >>> p = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
        >>> mmu.save(p)
        >>> MMU.load(p).stats.to_dict() == mmu.stats.to_dict()
        True
        """
        from mmucore import mmu as _mmu, pagetable as _pt, tlb as _tlb
        from pyapi import __version__
        path = os.fspath(path)
        header = {"kind": _CHECKPOINT_KIND, "format": CHECKPOINT_FORMAT,
                  "mmucore": __version__,
                  "abi": [_tlb.ABI_VERSION, _pt.ABI_VERSION, _mmu.ABI_VERSION],
                  "state_size": [_tlb.STATE_SIZE, _pt.STATE_SIZE, _mmu.STATE_SIZE],
                  "byteorder": sys.byteorder,
                  "config": self._cfg.to_dict(), "position": int(self.position),
                  "asids": sorted(self._tables), "interrupted": bool(self._interrupted)}
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), np.uint8),
                  "mmu": np.frombuffer(self._core.dump(), np.uint8)}
        for asid in sorted(self._tables):
            arrays[f"pt{asid}"] = np.frombuffer(self._tables[asid].core.dump(), np.uint8)
        d, base = os.path.split(os.path.abspath(path))
        tmp = os.path.join(d, f".{base}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @classmethod
    def load(cls, path) -> "MMU":
        """An MMU in the state saved by :meth:`save` at ``path`` (rebuilt from the saved
        configuration). ``ValueError`` naming the file if it is not a checkpoint, is
        corrupt, or was written by another checkpoint format or engine layout.

        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "bad.npz")
        >>> _ = open(p, "wb").write(b"not a checkpoint")
        >>> MMU.load(p)
        Traceback (most recent call last):
        ...
        ValueError: ...bad.npz: not an MMU checkpoint (...)
        """
        from mmucore import mmu as _mmu, pagetable as _pt, tlb as _tlb
        path = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            header = json.loads(bytes(data.pop("header")).decode())
            if not isinstance(header, dict):
                raise ValueError("the header is not a table")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
                UnicodeDecodeError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"{path}: not an MMU checkpoint ({exc})") from None
        if header.get("kind") != _CHECKPOINT_KIND:
            raise ValueError(f"{path}: not an MMU checkpoint (kind {header.get('kind')!r})")
        if header.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: checkpoint format {header.get('format')!r}, this "
                             f"mmucore reads format {CHECKPOINT_FORMAT}")
        here = {"abi": [_tlb.ABI_VERSION, _pt.ABI_VERSION, _mmu.ABI_VERSION],
                "state_size": [_tlb.STATE_SIZE, _pt.STATE_SIZE, _mmu.STATE_SIZE],
                "byteorder": sys.byteorder}
        for key, value in here.items():
            if header.get(key) != value:
                raise ValueError(f"{path}: written by an engine with {key} "
                                 f"{header.get(key)!r}, this one has {value!r} (mmucore "
                                 f"{header.get('mmucore')})")
        try:
            mmu = cls(MMUConfig.from_dict(header["config"]))
            for asid in header["asids"]:
                mmu._core.ensure(int(asid))
                mmu._tables[int(asid)].core.restore(data[f"pt{asid}"].tobytes())
            mmu._core.restore(data["mmu"].tobytes())
            mmu._interrupted = bool(header.get("interrupted", False))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: corrupt MMU checkpoint ({exc})") from None
        if mmu.position != header.get("position"):
            raise ValueError(f"{path}: corrupt MMU checkpoint (position {mmu.position} "
                             f"!= {header.get('position')})")
        return mmu

    @staticmethod
    def _chunks(trace, chunk_size):
        """The chunks to run: an iterator of TraceChunk is consumed as it comes (split
        when longer than chunk_size, never buffered, so an interruption loses nothing
        that was yielded before it); anything else goes through ``as_trace``."""
        if isinstance(trace, TraceChunk):
            trace = [trace]
        if not isinstance(trace, (np.ndarray, str, os.PathLike)) and \
                not hasattr(trace, "chunks") and hasattr(trace, "__iter__") and \
                not isinstance(trace, (bytes, bytearray, dict)):
            def gen():
                for c in trace:
                    if not isinstance(c, TraceChunk):
                        raise TypeError(f"a trace given as an iterable must yield "
                                        f"TraceChunk objects, not {type(c).__name__}")
                    for i in range(0, len(c), chunk_size):
                        yield c if len(c) <= chunk_size else c[i:i + chunk_size]
            return gen()
        return as_trace(trace).chunks(chunk_size)

    # -- counters -----------------------------------------------------------------------
    @property
    def stats(self) -> Stats:
        """A snapshot of the cumulative counters (``docs/mmu.md`` section 6)."""
        out = {}
        totals = [0] * len(COUNTER_NAMES)
        for k, (counters, structs, pscs) in enumerate(self._core.counters()):
            p = f"cpu{k}."
            for name, vals in zip(self._names, structs):
                for field, v in zip(("accesses", "hits", "misses", "evictions", "fills",
                                     "invalidations"), vals):
                    out[f"{p}{name}.{field}"] = v
            for name in self._cfg.psc:         # every configured level (0 if the mode lacks it)
                L = {v: k for k, v in _PSC_NAMES.items()}[name]
                for field, v in zip(("accesses", "hits", "misses"), pscs.get(L, (0, 0, 0))):
                    out[f"{p}psc_{name}.{field}"] = v
            for i, (name, v) in enumerate(zip(COUNTER_NAMES, counters)):
                out[p + name] = v
                totals[i] += v
        for name, v in zip(COUNTER_NAMES, totals):
            out["total." + name] = v
        out["asids"] = self._core.asids
        out["interrupted"] = int(self._interrupted)
        return Stats(out)

    def reset_stats(self) -> None:
        """Zero every counter (TLB state, page tables and ASIDs stay)."""
        self._core.reset_counters()
        self._interrupted = False
