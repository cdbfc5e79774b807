"""A pure-Python reference TLB: docs/tlb.md written out as plainly as possible.

It is the oracle of the differential tests. It is deliberately slow and simple: every
set is a Python list of ways (``None`` = invalid), every lookup scans, and there is no
same-page fast path (the doc promises that the fast path changes nothing observable).
It shares no code with ``mmucore``/``pyapi``; it only mirrors the API of ``pyapi.TLB``
(constructor, ``access``, ``invalidate``, ``flush``, ``flush_asid``, ``stats``,
``reset_stats``, ``contents``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, NamedTuple, Optional

import numpy as np

MASK64 = (1 << 64) - 1
SHIFTS = {"4K": 12, "2M": 21, "4M": 22, "1G": 30}      # page size name -> page shift
COUNT_MAX = (1 << 32) - 1                               # LFU saturation


def page_shift(size) -> int:
    """Page shift of ``"4K"``/``"2M"``/``"4M"``/``"1G"`` or of a size in bytes."""
    if isinstance(size, str):
        return SHIFTS[size.upper()]
    size = int(size)
    for shift in SHIFTS.values():
        if size == 1 << shift:
            return shift
    raise ValueError(f"{size} is not a page size")


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


class XorShift64Star:
    """The random policy's generator: state = splitmix64(seed) (0 replaced by a constant)."""

    def __init__(self, seed: int):
        self.state = splitmix64(seed & MASK64) or 0x9E3779B97F4A7C15

    def next(self) -> int:
        x = self.state
        x ^= x >> 12
        x = (x ^ (x << 25)) & MASK64
        x ^= x >> 27
        self.state = x
        return (x * 0x2545F4914F6CDD1D) & MASK64

    def below(self, n: int) -> int:
        return ((self.next() >> 32) * n) >> 32


@dataclass
class Entry:
    vpn: int
    shift: int          # page shift: the page size is part of the tag
    asid: int
    glob: bool


@dataclass
class RefStats:
    accesses: int = 0
    hits: int = 0
    misses: int = 0
    fills: int = 0
    evictions: int = 0
    invalidations: int = 0
    flushes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class RefResult(NamedTuple):
    hits: int
    misses: int
    hit: Optional[np.ndarray]


def _per_access(value, n, convert, default):
    """A scalar, None or a sequence -> a list of n converted values."""
    if value is None:
        return [default] * n
    if np.ndim(value) == 0:
        return [convert(value)] * n
    out = [convert(v) for v in np.asarray(value).tolist()]
    assert len(out) == n, "per-access argument of the wrong length"
    return out


class ReferenceTLB:
    def __init__(self, entries, ways=None, page_size="4K", policy="lru", seed=0):
        self.entries = entries
        self.ways = entries if ways is None else ways
        assert entries % self.ways == 0
        self.sets = entries // self.ways
        sizes = [page_size] if isinstance(page_size, (str, int)) else list(page_size)
        self.shifts = sorted({page_shift(s) for s in sizes})     # smallest first
        self.policy = policy
        self.rng = XorShift64Star(seed)
        self.leaves = 1
        while self.leaves < self.ways:
            self.leaves *= 2
        # PLRU bits: node k at index k (1 .. leaves-1); never reset by flushes
        self.plru = [[0] * self.leaves for _ in range(self.sets)]
        self.stats = RefStats()
        self._clear_all()

    # ------------------------------------------------------------------ state
    def _clear_all(self):
        self.table: List[List[Optional[Entry]]] = [[None] * self.ways for _ in range(self.sets)]
        # LRU/FIFO: ways from most recent / newest to oldest; invalid ways at the old end,
        # way 0 last so that a fresh set fills way 0 first
        self.order = [list(range(self.ways - 1, -1, -1)) for _ in range(self.sets)]
        self.count = [[0] * self.ways for _ in range(self.sets)]       # LFU counts / RRPVs

    def reset_stats(self):
        self.stats = RefStats()

    # ------------------------------------------------------------------ policies
    def _plru_touch(self, s, way):
        bits, node = self.plru[s], self.leaves + way
        while node > 1:
            parent = node // 2
            bits[parent] = 1 if node == 2 * parent else 0    # 1: the path went left
            node = parent

    def _plru_victim(self, s):
        bits, node, lo, span = self.plru[s], 1, 0, self.leaves
        while span > 1:
            span //= 2
            if bits[node] == 1 and lo + span < self.ways:     # right subtree has a way
                node, lo = 2 * node + 1, lo + span
            else:
                node = 2 * node
        return lo

    def _on_hit(self, s, w):
        if self.policy == "lru":
            self.order[s].remove(w)
            self.order[s].insert(0, w)
        elif self.policy == "plru":
            self._plru_touch(s, w)
        elif self.policy == "lfu":
            self.count[s][w] = min(self.count[s][w] + 1, COUNT_MAX)
        elif self.policy == "srrip":
            self.count[s][w] = 0
        # fifo, random: nothing

    def _on_fill(self, s, w):
        if self.policy in ("lru", "fifo"):
            self.order[s].remove(w)
            self.order[s].insert(0, w)
        elif self.policy == "plru":
            self._plru_touch(s, w)
        elif self.policy == "lfu":
            self.count[s][w] = 1
        elif self.policy == "srrip":
            self.count[s][w] = 2

    def _victim(self, s):
        ways = self.table[s]
        invalid = [w for w in range(self.ways) if ways[w] is None]
        if self.policy in ("lru", "fifo"):
            w = self.order[s][-1]                   # the old end
            assert not invalid or ways[w] is None   # invalid ways sit at the old end
            return w
        if invalid:
            return invalid[0]                       # lowest-numbered invalid way
        if self.policy == "random":
            return self.rng.below(self.ways)
        if self.policy == "plru":
            return self._plru_victim(s)
        counts = self.count[s]
        if self.policy == "lfu":
            return counts.index(min(counts))        # lowest count, lowest way on ties
        while 3 not in counts:                      # srrip: age until some RRPV is 3
            for w in range(self.ways):
                counts[w] += 1
        return counts.index(3)

    # ------------------------------------------------------------------ lookups and fills
    def _lookup(self, va, asid):
        """(set, way) of the entry translating va for asid, or None."""
        for shift in self.shifts:
            vpn = va >> shift
            s = vpn % self.sets
            global_way = None
            for w, e in enumerate(self.table[s]):
                if e is None or e.vpn != vpn or e.shift != shift:
                    continue
                if not e.glob and e.asid == asid:
                    return s, w                     # an ASID entry wins over a global one
                if e.glob and global_way is None:
                    global_way = w
            if global_way is not None:
                return s, global_way
        return None

    def _fill(self, va, asid, shift, glob):
        vpn = va >> shift
        s = vpn % self.sets
        w = self._victim(s)
        if self.table[s][w] is not None:
            self.stats.evictions += 1
        self.table[s][w] = Entry(vpn, shift, 0 if glob else asid, glob)
        self._on_fill(s, w)
        self.stats.fills += 1
        return s, w

    def access(self, vaddrs, asids=None, page_size=None, global_=None, return_hits=False):
        va = [int(v) for v in np.atleast_1d(np.asarray(vaddrs)).tolist()]
        n = len(va)
        asid_l = _per_access(asids, n, int, 0)
        shift_l = _per_access(page_size, n, page_shift, self.shifts[0])
        glob_l = _per_access(global_, n, bool, False)
        hit = []
        for v, a, sh, g in zip(va, asid_l, shift_l, glob_l):
            assert sh in self.shifts, "page size not held"
            self.stats.accesses += 1
            found = self._lookup(v, a)
            if found is not None:
                self.stats.hits += 1
                self._on_hit(*found)
            else:
                self.stats.misses += 1
                self._fill(v, a, sh, g)
            hit.append(found is not None)
        hits = sum(hit)
        return RefResult(hits, n - hits, np.array(hit, dtype=bool) if return_hits else None)

    # ------------------------------------------------------------------ invalidation
    def _drop(self, s, w):
        self.table[s][w] = None
        self.stats.invalidations += 1
        if self.policy in ("lru", "fifo"):          # an invalid way goes to the old end
            self.order[s].remove(w)
            self.order[s].append(w)

    def invalidate(self, vaddr, asid=None):
        dropped = 0
        for va in np.atleast_1d(np.asarray(vaddr)).tolist():
            for shift in self.shifts:
                vpn = int(va) >> shift
                s = vpn % self.sets
                for w, e in enumerate(self.table[s]):
                    if e is None or e.vpn != vpn or e.shift != shift:
                        continue
                    if asid is None or e.glob or e.asid == asid:
                        self._drop(s, w)
                        dropped += 1
        return dropped

    def flush(self, keep_global=False):
        self.stats.flushes += 1
        dropped = 0
        if not keep_global:
            dropped = sum(e is not None for ways in self.table for e in ways)
            self.stats.invalidations += dropped
            self._clear_all()                       # PLRU bits and the generator stay
            return dropped
        for s in range(self.sets):
            for w, e in enumerate(self.table[s]):
                if e is not None and not e.glob:
                    self._drop(s, w)
                    dropped += 1
        return dropped

    def flush_asid(self, asid):
        self.stats.flushes += 1
        dropped = 0
        for s in range(self.sets):
            for w, e in enumerate(self.table[s]):
                if e is not None and not e.glob and e.asid == asid:
                    self._drop(s, w)
                    dropped += 1
        return dropped

    # ------------------------------------------------------------------ inspection
    def contents(self):
        rows = [(s, w, e) for s in range(self.sets) for w, e in enumerate(self.table[s])
                if e is not None]
        return {"set": np.array([r[0] for r in rows], dtype=np.int64),
                "way": np.array([r[1] for r in rows], dtype=np.int64),
                "vpn": np.array([r[2].vpn for r in rows], dtype=np.uint64),
                "page_size": np.array([1 << r[2].shift for r in rows], dtype=np.uint64),
                "asid": np.array([r[2].asid for r in rows], dtype=np.uint16),
                "global_": np.array([r[2].glob for r in rows], dtype=bool)}
