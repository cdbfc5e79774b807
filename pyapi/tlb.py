"""One TLB structure: geometry, page sizes, replacement policy, ASIDs and global entries.

The engine behind it is ``mmucore.tlb`` (typed Cython); this module validates arguments,
sets defaults and converts units, then hands whole arrays to one ``nogil`` call.

>>> import numpy as np
>>> from pyapi.tlb import TLB, POLICY_NAMES
>>> POLICY_NAMES
('lru', 'fifo', 'random', 'plru', 'lfu', 'srrip')
>>> TLB(entries=64, ways=4, policy="srrip").access(np.zeros(4, dtype=np.uint64)).misses
1
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Union

import numpy as np

from mmucore._types import POLICIES
from mmucore.tlb import TLBCore
from pyapi.units import PAGE_SIZES, page_size_code, page_size_name

__all__ = ["TLB", "TLBStats", "AccessResult", "POLICY_NAMES"]

#: Replacement policies the engine implements.
POLICY_NAMES = tuple(POLICIES)

_MAX_ENTRIES = 1 << 30
_CODE_BYTES = {page_size_code(n): b for n, b in PAGE_SIZES.items()}
_ASID_MAX = 0xFFFF


@dataclass(frozen=True)
class TLBStats:
    """Cumulative counters of one TLB structure (all in accesses or entries).

    ``accesses = hits + misses``; ``fills`` counts translations installed (one per miss
    in ``TLB.access``); ``evictions`` the fills that displaced a valid entry;
    ``invalidations`` the entries dropped by ``invalidate``/``flush``/``flush_asid``;
    ``flushes`` the calls of ``flush`` and ``flush_asid``.

    >>> import numpy as np
    >>> t = TLB(entries=4, ways=4)
    >>> _ = t.access(np.array([0, 4096, 0], dtype=np.uint64))
    >>> t.stats
    TLBStats(accesses=3, hits=1, misses=2, fills=2, evictions=0, invalidations=0, flushes=0)
    >>> round(t.stats.miss_ratio, 3)
    0.667
    """

    accesses: int = 0
    hits: int = 0
    misses: int = 0
    fills: int = 0
    evictions: int = 0
    invalidations: int = 0
    flushes: int = 0

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.accesses if self.accesses else 0.0

    @property
    def miss_ratio(self) -> float:
        return self.misses / self.accesses if self.accesses else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AccessResult:
    """What one ``TLB.access`` call did: ``hits`` and ``misses`` (accesses), and, when
    asked with ``return_hits=True``, ``hit``: one bool per access.

    >>> import numpy as np
    >>> r = TLB(entries=4, ways=4).access(np.array([0, 4096, 0], dtype=np.uint64),
    ...                                   return_hits=True)
    >>> r.hits, r.misses, r.hit
    (1, 2, array([False, False,  True]))
    """

    hits: int
    misses: int
    hit: Optional[np.ndarray] = None

    @property
    def accesses(self) -> int:
        return self.hits + self.misses


def _ways_that_divide(entries: int) -> list:
    return [w for w in range(1, min(entries, 64) + 1) if entries % w == 0]


class TLB:
    """A TLB structure of ``entries`` translations in ``entries // ways`` sets.

    Parameters
    ----------
    entries : int
        Number of entries (translations).
    ways : int, optional
        Associativity; ``ways == entries`` (the default) is fully associative. The set
        count ``entries // ways`` need not be a power of two (1536 entries, 12 ways =
        128 sets; 48 entries, 4 ways = 12 sets).
    page_size : str or int or sequence, default "4K"
        Page size(s) held: ``"4K"``, ``"2M"``, ``"4M"``, ``"1G"`` (or bytes). A sequence
        such as ``("4K", "2M")`` makes a structure shared by several sizes (an STLB); each
        size is looked up with its own page number and set index.
    policy : {"lru", "fifo", "random", "plru", "lfu", "srrip"}, default "lru"
        Replacement policy (``docs/tlb.md`` gives each one's exact rule).
    seed : int, default 0
        Seed of the ``random`` policy's generator (runs are reproducible).

    Examples
    --------
    >>> import numpy as np
    >>> from pyapi import TLB
    >>> tlb = TLB(entries=64, ways=4, page_size="4K", policy="lru")
    >>> vaddrs = np.arange(0, 128 << 12, 4096, dtype=np.uint64)   # 128 distinct pages
    >>> r = tlb.access(vaddrs)
    >>> r.hits, r.misses
    (0, 128)
    >>> tlb.access(vaddrs[-64:]).hits       # the last 64 pages are still held
    64
    >>> tlb.stats.misses, tlb.sets
    (128, 16)
    """

    def __init__(self, entries: int, ways: Optional[int] = None,
                 page_size: Union[str, int, Sequence] = "4K", policy: str = "lru",
                 seed: int = 0):
        entries = self._positive_int(entries, "entries")
        if entries > _MAX_ENTRIES:
            raise ValueError(f"entries={entries} is larger than the engine's limit {_MAX_ENTRIES}")
        ways = entries if ways is None else self._positive_int(ways, "ways")
        if ways > entries:
            raise ValueError(f"ways={ways} is larger than entries={entries}; "
                             f"use ways <= entries (ways == entries is fully associative)")
        if entries % ways:
            lower, upper = entries - entries % ways, entries - entries % ways + ways
            fits = ", ".join(map(str, _ways_that_divide(entries)))
            raise ValueError(
                f"entries={entries} is not a multiple of ways={ways}, so the sets would not "
                f"be whole; with ways={ways} use entries={lower} or {upper}, or with "
                f"entries={entries} use ways in {{{fits}}}")
        if not isinstance(policy, str) or policy.lower() not in POLICIES:
            raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICY_NAMES)}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        sizes = [page_size] if isinstance(page_size, (str, int, np.integer)) else list(page_size)
        if not sizes:
            raise ValueError("page_size must name at least one page size")
        codes = sorted({page_size_code(s) for s in sizes})
        self._codes = codes
        self._policy = policy.lower()
        self._seed = int(seed)
        self._core = TLBCore(entries // ways, ways, POLICIES[self._policy],
                             sum(1 << c for c in codes), int(seed) & ((1 << 64) - 1))

    # ------------------------------------------------------------------ properties
    @property
    def entries(self) -> int:
        """Number of entries."""
        return self._core.entries

    @property
    def ways(self) -> int:
        """Associativity."""
        return self._core.ways

    @property
    def sets(self) -> int:
        """Number of sets (``entries // ways``)."""
        return self._core.sets

    @property
    def page_sizes(self) -> tuple:
        """Page sizes held, in bytes, smallest first."""
        return tuple(_CODE_BYTES[c] for c in self._codes)

    @property
    def policy(self) -> str:
        return self._policy

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def core(self) -> TLBCore:
        """The engine object (``mmucore.tlb.TLBCore``) for Cython consumers."""
        return self._core

    @property
    def stats(self) -> TLBStats:
        """Cumulative counters since construction or ``reset_stats()``."""
        return TLBStats(**self._core.counters())

    def reset_stats(self) -> None:
        """Zero the counters (the entries stay)."""
        self._core.reset_counters()

    def __repr__(self) -> str:
        sizes = "+".join(page_size_name(b) for b in self.page_sizes)
        return (f"TLB(entries={self.entries}, ways={self.ways}, sets={self.sets}, "
                f"page_size={sizes!r}, policy={self.policy!r})")

    # ------------------------------------------------------------------ operations
    def access(self, vaddrs, asids=None, *, page_size=None, global_=None,
               return_hits: bool = False, check_input: bool = True) -> AccessResult:
        """Look up each virtual address; on a miss, fill its translation.

        Parameters
        ----------
        vaddrs : 1-D array of uint64
            Virtual addresses (bytes), any length including 0; read-only arrays and
            memmaps are fine (nothing is copied when the array is already uint64 and
            contiguous).
        asids : int or 1-D array of uint16, optional
            Address-space id of each access (default 0).
        page_size : str or int or 1-D array, optional
            Page size of the translation filled on a miss (default: the smallest size
            held). An array gives one size in bytes per access.
        global_ : bool or 1-D array of bool, optional
            Whether a filled translation is global (matches every ASID).
        return_hits : bool
            Also return ``hit``, one bool per access.
        check_input : bool
            ``False`` skips the dtype conversion for trusted callers that already pass
            contiguous uint64 (and uint16/uint8) arrays.

        Examples
        --------
        >>> import numpy as np
        >>> tlb = TLB(entries=4, page_size=("4K", "2M"))
        >>> va = np.array([0x200000, 0x201000, 0x3ff000], dtype=np.uint64)
        >>> tlb.access(va, page_size="2M", return_hits=True).hit.tolist()
        [False, True, True]
        """
        va = self._as_1d(vaddrs, np.uint64, "vaddrs", check_input)
        n = va.shape[0]
        kw = {}
        if asids is not None:
            if np.ndim(asids) == 0:
                kw["asid"] = self._asid(asids)
            else:
                a = self._as_1d(asids, None, "asids", check_input, n)
                if check_input:
                    if a.dtype.kind not in "ui":
                        raise TypeError(f"asids must hold integers (uint16), got dtype {a.dtype}")
                    bad = np.flatnonzero((a < 0) | (a > _ASID_MAX)) if a.size else a[:0]
                    if bad.size:
                        raise ValueError(f"asids[{int(bad[0])}] = {a[bad[0]]} is outside "
                                         f"0..{_ASID_MAX}")
                kw["asids"] = np.ascontiguousarray(a, dtype=np.uint16)
        if page_size is None:
            kw["size_code"] = self._codes[0]
        elif isinstance(page_size, (str, int, np.integer)):
            kw["size_code"] = self._held_code(page_size)
        else:
            ps = self._as_1d(page_size, np.uint64, "page_size", check_input, n)
            codes = np.full(n, 255, dtype=np.uint8)
            for c in self._codes:
                codes[ps == _CODE_BYTES[c]] = c
            if n and (codes == 255).any():
                bad = int(ps[np.argmax(codes == 255)])
                raise ValueError(f"page_size[{int(np.argmax(codes == 255))}] = {bad} bytes "
                                 f"is not held by this TLB (it holds "
                                 f"{[page_size_name(b) for b in self.page_sizes]})")
            kw["size_codes"] = codes
        if global_ is not None:
            if np.ndim(global_) == 0:
                kw["is_global"] = bool(global_)
            else:
                g = self._as_1d(global_, None, "global_", check_input, n)
                if check_input and g.dtype.kind not in "bui":
                    raise TypeError(f"global_ must hold booleans, got dtype {g.dtype}")
                kw["globals_"] = np.ascontiguousarray(g, dtype=bool).view(np.uint8)
        hit = np.empty(n, dtype=np.uint8) if return_hits else None
        hits = self._core.access(va, hit_out=hit, **kw)
        return AccessResult(hits, n - hits, hit.view(bool) if return_hits else None)

    def invalidate(self, vaddr, asid: Optional[int] = None) -> int:
        """INVLPG: drop the entries translating ``vaddr`` (an address or an array of them),
        every page size held. ``asid=None`` drops them in every address space; an ASID
        drops that space's entries and global ones. Returns the number dropped."""
        va = self._as_1d(np.atleast_1d(vaddr), np.uint64, "vaddr", True)
        return self._core.invalidate(va, -1 if asid is None else self._asid(asid))

    def flush(self, keep_global: bool = False) -> int:
        """Drop every entry, or with ``keep_global=True`` every non-global one (a CR3
        write without PCID). Returns the number dropped."""
        return self._core.flush(bool(keep_global))

    def flush_asid(self, asid: int) -> int:
        """Drop the non-global entries of one address space (INVPCID single-context).
        Returns the number dropped."""
        return self._core.flush_asid(self._asid(asid))

    def contents(self) -> dict:
        """The valid entries as arrays ``set``, ``way``, ``vpn``, ``page_size`` (bytes),
        ``asid`` and ``global_``, for inspection and tests."""
        c = self._core.contents()
        sets, ways = np.nonzero(c["valid"])
        tag = c["tag"][sets, ways]
        code = (tag & np.uint64(3)).astype(np.uint8)
        easid = c["easid"][sets, ways]
        return {"set": sets, "way": ways, "vpn": tag >> np.uint64(2),
                "page_size": np.array([_CODE_BYTES[int(x)] for x in code], dtype=np.uint64),
                "asid": (easid & 0xFFFF).astype(np.uint16), "global_": easid == 0x10000}

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _positive_int(value, name):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
        return int(value)

    @staticmethod
    def _asid(asid) -> int:
        if isinstance(asid, bool) or not isinstance(asid, (int, np.integer)):
            raise TypeError(f"asid must be an integer, got {type(asid).__name__}")
        if not 0 <= asid <= _ASID_MAX:
            raise ValueError(f"asid={asid} is outside 0..{_ASID_MAX}")
        return int(asid)

    def _held_code(self, page_size) -> int:
        code = page_size_code(page_size)
        if code not in self._codes:
            raise ValueError(f"page_size {page_size!r} is not held by this TLB (it holds "
                             f"{[page_size_name(b) for b in self.page_sizes]})")
        return code

    @staticmethod
    def _as_1d(x, dtype, name, check, n=None):
        if not check:
            return x
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except Exception as exc:  # pragma: no cover - numpy's message is kept
                raise TypeError(f"{name} must be a 1-D numpy array: {exc}") from None
        if x.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got an array of shape {x.shape}")
        if dtype is not None:
            if x.dtype.kind not in "ui" and not (x.size == 0 and x.dtype.kind == "f"):
                raise TypeError(f"{name} must hold unsigned integers (uint64), got dtype {x.dtype}")
            if x.dtype.kind == "i" and x.size and x.min() < 0:
                raise ValueError(f"{name} holds negative values (e.g. {x[np.argmin(x)]} at "
                                 f"index {int(np.argmin(x))})")
            x = np.ascontiguousarray(x, dtype=dtype)
        if n is not None and x.shape[0] != n:
            raise ValueError(f"{name} has {x.shape[0]} values for {n} accesses")
        return x
