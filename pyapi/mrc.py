"""One-pass miss-ratio curves and TLB reach (issue 7).

``miss_ratio_curve(trace)`` gives the misses of a fully associative LRU TLB of *every*
size from one pass over the trace, using LRU stack distances (Mattson et al. 1970: an
LRU structure of C entries holds the C most recently used pages, so an access hits iff
fewer than C other pages were touched since the previous access to its page). With
``sets=S`` it gives the misses of an S-set LRU TLB of every associativity; with
``method="shards"`` an estimate from a spatially hashed sample of the pages (SHARDS,
Waldspurger et al., FAST 2015) in bounded memory, for traces of billions of accesses.
``page_size=["4K", "2M", "1G"]`` computes one curve per page size in the same pass:
comparing them by reach (entries x page size) shows what huge pages buy.

Only memory accesses count (``Op.LOAD``, ``STORE``, ``IFETCH``, ``MODIFY``); control ops
in a trace are skipped. docs/mrc.md is the user guide.

>>> import numpy as np
>>> va = np.array([0, 4096, 8192, 0, 4096, 8192], dtype=np.uint64)   # a loop over 3 pages
>>> c = miss_ratio_curve(va, sizes=[1, 2, 3, 4])
>>> c.misses.tolist(), c.accesses
([6, 6, 3, 3], 6)
>>> c.reach_bytes.tolist()
[4096, 8192, 12288, 16384]
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Union

import numpy as np

from pyapi.progress import progress_bar
from pyapi.units import PAGE_SIZES, page_size_code, page_size_name

__all__ = ["MissRatioCurve", "miss_ratio_curve", "plot_reach", "default_sizes", "METHODS",
           "DEFAULT_MAX_WAYS", "RESOLUTION_FACTOR"]

#: Methods of miss_ratio_curve.
METHODS = ("exact", "shards")
#: Set-associative curves without ``sizes``: associativities 1 .. this many.
DEFAULT_MAX_WAYS = 64
#: SHARDS resolves sizes of at least this many times 1/rate entries (min_resolved_size).
RESOLUTION_FACTOR = 5
#: Fixed-size SHARDS: buckets of the scaled-distance histogram per sampled page.
_BUCKETS_PER_SAMPLE = 4
DEFAULT_RATE = 0.01
DEFAULT_CHUNK = 1 << 18          # accesses per engine call (bounded memory)


def _engine():
    from mmucore import stackdist
    return stackdist


def default_sizes(top: int) -> np.ndarray:
    """The sizes a curve is evaluated at when none are given: every size from 1 to 64
    entries, then 8 sizes per doubling, up to ``top`` (included).

    >>> default_sizes(200).tolist()[60:]
    [61, 62, 63, 64, 70, 76, 83, 91, 99, 108, 117, 128, 140, 152, 166, 181, 197, 200]
    """
    top = max(int(top), 1)
    small = np.arange(1, min(top, 64) + 1, dtype=np.int64)
    if top <= 64:
        return small
    k = np.arange(1, 8 * (math.ceil(math.log2(top / 64)) + 1) + 1)
    big = np.unique(np.rint(64 * 2.0 ** (k / 8)).astype(np.int64))
    big = big[big < top]
    return np.concatenate([small, big, np.array([top], dtype=np.int64)])


@dataclass(frozen=True, eq=False)
class MissRatioCurve:
    """Misses of an LRU TLB at each size, from one pass over a trace.

    * ``sizes``: TLB entries (int64, increasing); ``reach_bytes`` = sizes x page size;
    * ``misses``: misses at each size (int64; SHARDS: the estimate, rounded);
    * ``miss_ratio``: misses / accesses (float64);
    * ``accesses``: memory accesses in the trace (control ops are not counted);
    * ``page_size``: bytes; ``method``: ``"exact"`` or ``"shards"``;
    * ``rate``: SHARDS sampling rate (the final one for a fixed sample size), else None;
    * ``min_resolved_size``: the smallest size the curve resolves (1 when exact;
      ``RESOLUTION_FACTOR / rate`` for SHARDS: below it the estimate is coarse);
    * ``sets`` and ``ways`` (int64 array, sizes // sets) for a set-associative curve;
    * ``cold_misses``: first touches (fully associative; SHARDS: estimate);
    * ``distinct_pages``: pages touched (SHARDS: estimate);
    * ``sample_size``, ``sampled_accesses``: SHARDS only.

    >>> import numpy as np
    >>> c = miss_ratio_curve(np.array([0, 4096, 0, 8192, 0], dtype=np.uint64), sizes=[1, 2, 3])
    >>> c
    MissRatioCurve(exact, fully associative, 4K pages, 5 accesses, 3 sizes 1..3)
    >>> c.misses, c.miss_ratio, c.cold_misses, c.reach_bytes
    (array([5, 3, 3]), array([1. , 0.6, 0.6]), 3, array([ 4096,  8192, 12288]))
    """

    sizes: np.ndarray
    misses: np.ndarray
    miss_ratio: np.ndarray
    accesses: int
    page_size: int
    method: str = "exact"
    rate: Optional[float] = None
    min_resolved_size: int = 1
    sets: Optional[int] = None
    ways: Optional[np.ndarray] = None
    cold_misses: Optional[int] = None
    distinct_pages: Optional[int] = None
    sample_size: Optional[int] = None
    sampled_accesses: Optional[int] = None
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def reach_bytes(self) -> np.ndarray:
        """Bytes of address space the TLB maps at each size (entries x page size)."""
        return self.sizes * np.int64(self.page_size)

    @property
    def hits(self) -> np.ndarray:
        return self.accesses - self.misses

    def misses_at(self, entries: int) -> int:
        """Misses at one of the curve's sizes (KeyError if it is not one of them)."""
        i = np.searchsorted(self.sizes, entries)
        if i >= len(self.sizes) or self.sizes[i] != entries:
            raise KeyError(f"{entries} entries is not one of the curve's sizes")
        return int(self.misses[i])

    def __repr__(self) -> str:
        kind = (f"{self.sets} sets x 1..{int(self.ways[-1])} ways" if self.sets
                else "fully associative")
        extra = f", rate {self.rate:.4g}" if self.rate is not None else ""
        return (f"MissRatioCurve({self.method}, {kind}, {page_size_name(self.page_size)} pages, "
                f"{self.accesses:,} accesses, {len(self.sizes)} sizes "
                f"{int(self.sizes[0]) if len(self.sizes) else 0}..{int(self.sizes[-1]) if len(self.sizes) else 0}"
                f"{extra})")

    def to_dict(self) -> dict:
        """Plain Python types (lists for the arrays), ready for JSON."""
        d = {"method": self.method, "page_size": self.page_size,
             "page_size_name": page_size_name(self.page_size), "accesses": int(self.accesses),
             "sizes": self.sizes.tolist(), "reach_bytes": self.reach_bytes.tolist(),
             "misses": self.misses.tolist(), "miss_ratio": self.miss_ratio.tolist(),
             "rate": self.rate, "min_resolved_size": int(self.min_resolved_size),
             "sets": self.sets, "ways": None if self.ways is None else self.ways.tolist(),
             "cold_misses": self.cold_misses, "distinct_pages": self.distinct_pages,
             "sample_size": self.sample_size, "sampled_accesses": self.sampled_accesses}
        return d

    def to_json(self, path=None, **kwargs) -> str:
        """The curve as JSON text (``to_dict``); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), **({"indent": 2} | kwargs))
        if path is not None:
            from pathlib import Path
            Path(path).write_text(text + "\n")
        return text

    def plot(self, ax=None, *, x: str = "entries", label: Optional[str] = None):
        """A matplotlib Figure of the curve: miss ratio against TLB entries (log scale,
        with the reach in bytes on a secondary axis at the top), or against the reach
        in bytes with ``x="bytes"``. Draws into ``ax`` when given. SHARDS curves shade
        the sizes below ``min_resolved_size``. Needs matplotlib
        (``pip install "mmucore[plot]"``)."""
        plt, ticker = _pyplot()
        if x not in ("entries", "bytes"):
            raise ValueError(f"x must be 'entries' or 'bytes', not {x!r}")
        if ax is None:
            fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
        else:
            fig = ax.figure
        ps = self.page_size
        scale = 1 if x == "entries" else ps
        xs = self.sizes * scale
        if label is None:
            label = f"{page_size_name(ps)} pages"
            if self.sets:
                label += f", {self.sets} sets"
            if self.method == "shards":
                label += f", SHARDS rate {self.rate:.3g}"
        ax.plot(xs, self.miss_ratio, drawstyle="steps-post" if len(xs) < 80 else "default",
                marker="." if len(xs) <= 64 else None, label=label)
        ax.set_xscale("log", base=2)
        ax.set_ylabel("miss ratio (misses / accesses)")
        ax.set_ylim(0, max(1e-3, float(self.miss_ratio.max()) * 1.05 if len(xs) else 1))
        if self.method == "shards" and len(xs) and self.min_resolved_size > self.sizes[0]:
            ax.axvspan(xs[0], self.min_resolved_size * scale, color="0.85", alpha=0.5, lw=0)
        if x == "entries":
            ax.set_xlabel("TLB entries" + (" (sets x ways)" if self.sets else ""))
            sec = ax.secondary_xaxis("top", functions=(lambda e: e * ps, lambda b: b / ps))
            sec.set_xlabel(f"reach (bytes, {page_size_name(ps)} pages)")
            sec.xaxis.set_major_formatter(ticker.FuncFormatter(_bytes_label))
        else:
            ax.set_xlabel("TLB reach (entries x page size, bytes)")
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(_bytes_label))
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
        if not ax.get_title():
            what = f"{self.sets}-set" if self.sets else "fully associative"
            ax.set_title(f"LRU miss-ratio curve ({what}, {self.accesses:,} accesses)",
                         fontsize="medium")
        return fig


def _bytes_label(value, _pos=None) -> str:
    if value <= 0:
        return ""
    for shift, unit in ((50, "P"), (40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if value >= 1 << shift:
            v = value / (1 << shift)
            return f"{v:.0f}{unit}" if abs(v - round(v)) < 1e-9 else f"{v:.3g}{unit}"
    return f"{value:.0f}B"


def _pyplot():
    try:
        import matplotlib
        if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo") \
                and not _interactive():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError as exc:
        raise ImportError('plotting needs matplotlib: pip install "mmucore[plot]"') from exc
    return plt, ticker


def _interactive() -> bool:
    import sys
    return hasattr(sys, "ps1") or "IPython" in sys.modules


def plot_reach(curves, ax=None):
    """One figure with several curves (e.g. the dict of ``miss_ratio_curve(trace,
    page_size=["4K", "2M", "1G"])``) against TLB reach in bytes, so that page sizes
    compare: the same miss ratio further left means fewer bytes of reach needed.

    >>> import numpy as np, matplotlib
    >>> matplotlib.use("Agg")
    >>> va = np.arange(0, 1 << 24, 4096, dtype=np.uint64)
    >>> fig = plot_reach(miss_ratio_curve(va, page_size=["4K", "2M"], sizes=[1, 4]))
    >>> type(fig).__name__
    'Figure'
    """
    plt, _ = _pyplot()
    items = list(curves.values()) if isinstance(curves, dict) else list(curves)
    if not items:
        raise ValueError("plot_reach: no curves")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    else:
        fig = ax.figure
    for c in items:
        c.plot(ax=ax, x="bytes")
    ax.set_ylim(0, max(1e-3, max(float(c.miss_ratio.max()) for c in items) * 1.05))
    ax.set_title(f"LRU miss ratio by TLB reach ({items[0].accesses:,} accesses)",
                 fontsize="medium")
    return fig


# ---------------------------------------------------------------------------- validation
def _check_sizes(sizes, what="sizes") -> Optional[np.ndarray]:
    if sizes is None:
        return None
    arr = np.asarray(sizes)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence of entry counts")
    if arr.dtype.kind == "f" and np.all(arr == np.floor(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must be whole numbers of entries, got dtype {arr.dtype}")
    if np.any(arr < 1):
        raise ValueError(f"{what} must be positive, got {int(arr.min())}")
    return np.unique(arr.astype(np.int64))


def _positive_int(value, what) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be positive, got {value}")
    return int(value)


def _tmax_of(rate: float) -> int:
    return max(0, min((1 << 64) - 1, int(round(rate * 2.0 ** 64)) - 1))


def miss_ratio_curve(trace, page_size: Union[str, int, Sequence] = "4K", sizes=None,
                     method: str = "exact", sets: Optional[int] = None,
                     rate: Optional[float] = None, sample_size: Optional[int] = None,
                     seed: int = 0, chunk_size: int = DEFAULT_CHUNK, adjust: bool = True,
                     progress=None):
    """LRU misses of a TLB at every size from one pass over ``trace``.

    * ``trace``: anything :func:`pyapi.as_trace` takes (array of byte addresses, Trace,
      path, chunks, a workload); only memory ops count.
    * ``page_size``: ``"4K"``, ``"2M"``, ``"4M"``, ``"1G"`` or bytes; a list or tuple of
      them gives a dict ``{name: MissRatioCurve}`` computed in the same pass.
    * ``sizes``: entry counts to report (default: 1..64, then 8 per doubling up to the
      number of distinct pages, or ``sets`` x 1..64 ways).
    * ``method``: ``"exact"`` (stack distances of every page) or ``"shards"``
      (sampled; ``rate`` in (0, 1], default 0.01, or ``sample_size`` pages at most,
      with the SHARDS-adj correction unless ``adjust=False``; ``seed`` picks the hash).
    * ``sets``: a set-associative TLB of ``sets`` sets (page number % sets, as
      ``pyapi.TLB``); ``sizes`` must then be multiples of ``sets`` (ways = sizes / sets,
      at most ``mmucore.stackdist.MAX_WAYS``). Exact only.

    >>> from pyapi import workloads
    >>> w = workloads.zipf(100_000, 2_000, alpha=1.0, seed=1)
    >>> c = miss_ratio_curve(w, sizes=[64, 256, 1024])
    >>> c.misses.tolist(), c.accesses, c.distinct_pages
    ([56149, 34705, 12106], 100000, 1999)
    >>> s = miss_ratio_curve(w, sizes=[64, 256], sets=16)       # 16 sets x 4 and 16 ways
    >>> s.ways.tolist(), s.misses.tolist()
    ([4, 16], [57760, 35056])
    >>> curves = miss_ratio_curve(w, page_size=["4K", "2M"], sizes=[16])
    >>> {k: v.misses.tolist() for k, v in curves.items()}
    {'4K': [76101], '2M': [4]}
    """
    if isinstance(page_size, (list, tuple)):
        if not page_size:
            raise ValueError("page_size: the list names no page size")
        names = [page_size_name(_page_bytes(p)) for p in page_size]
        if len(set(names)) != len(names):
            raise ValueError(f"page_size lists a page size twice: {list(page_size)}")
        builders = [_Builder(p, sizes, method, sets, rate, sample_size, seed, adjust)
                    for p in page_size]
        _run(trace, builders, chunk_size, progress)
        return {name: b.result() for name, b in zip(names, builders)}
    b = _Builder(page_size, sizes, method, sets, rate, sample_size, seed, adjust)
    _run(trace, [b], chunk_size, progress)
    return b.result()


def _page_bytes(p) -> int:
    return 1 << _shift_of(p)


def _shift_of(p) -> int:
    from mmucore._types import PAGE_SHIFTS
    return PAGE_SHIFTS[page_size_code(p)]


def _run(trace, builders, chunk_size, progress) -> None:
    from pyapi.trace import as_trace
    chunk_size = _positive_int(chunk_size, "chunk_size")
    t = as_trace(trace)
    chunks = t.chunks(chunk_size)
    bar = progress_bar(None, unit="acc", desc="mrc", enabled=bool(progress))
    try:
        for chunk in chunks:
            addr = np.ascontiguousarray(chunk.addr, dtype=np.uint64)
            op = np.ascontiguousarray(chunk.op, dtype=np.uint8)
            for b in builders:
                b.core.feed(addr, op)
            if bar is not None:
                bar.update(len(addr))
    finally:
        if bar is not None:
            bar.close()


class _Builder:
    """Validated parameters and the engine state of one curve."""

    def __init__(self, page_size, sizes, method, sets, rate, sample_size, seed, adjust):
        sd = _engine()
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
        self.shift = _shift_of(page_size)
        self.page_size = 1 << self.shift
        self.sizes = _check_sizes(sizes)
        self.method = method
        self.adjust = bool(adjust)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.sets = None if sets is None else _positive_int(sets, "sets")
        if method == "exact":
            if rate is not None or sample_size is not None:
                raise ValueError("rate and sample_size apply to method='shards' only")
            if self.sets is not None:
                if self.sizes is not None:
                    bad = self.sizes[self.sizes % self.sets != 0]
                    if bad.size:
                        raise ValueError(f"sizes must be multiples of sets={self.sets} "
                                         f"(ways = sizes / sets), got {int(bad[0])}")
                    max_ways = int(self.sizes[-1] // self.sets)
                else:
                    max_ways = DEFAULT_MAX_WAYS
                if max_ways > sd.MAX_WAYS:
                    raise ValueError(f"set-associative curves resolve up to {sd.MAX_WAYS} "
                                     f"ways; sizes ask for {max_ways}")
                self.core = sd.StackDistCore(sd.MODES["sets"], self.shift, sets=self.sets,
                                             ways=max_ways)
            else:
                top = 0 if self.sizes is None else int(self.sizes[-1])
                self.core = sd.StackDistCore(sd.MODES["exact"], self.shift, max_distance=top)
            return
        if self.sets is not None:
            raise ValueError("sets (set-associative curves) is supported with method='exact' only")
        if rate is not None and sample_size is not None:
            raise ValueError("give rate or sample_size, not both")
        if sample_size is not None:
            self.sample_size = _positive_int(sample_size, "sample_size")
            buckets = 1 << max(4, math.ceil(math.log2(self.sample_size * _BUCKETS_PER_SAMPLE)))
            self.core = sd.StackDistCore(sd.MODES["shards_size"], self.shift,
                                         sample_size=self.sample_size, seed=int(seed),
                                         whist_buckets=buckets)
            return
        self.sample_size = None
        if rate is None:
            rate = DEFAULT_RATE
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
            raise TypeError(f"rate must be a number in (0, 1], not {rate!r}")
        if not (0 < float(rate) <= 1) or math.isnan(float(rate)):
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        tmax = _tmax_of(float(rate))
        self.core = sd.StackDistCore(sd.MODES["shards_rate"], self.shift, tmax=tmax,
                                     seed=int(seed))

    # ------------------------------------------------------------------------ results
    def result(self) -> MissRatioCurve:
        core = self.core
        n = int(core.accesses)
        if self.method == "exact" and self.sets is not None:
            return self._sets_result(n)
        if self.method == "exact":
            hist = core.histogram()
            cum = np.cumsum(hist)
            sizes = self.sizes if self.sizes is not None else default_sizes(int(core.distinct))
            hits = cum[np.minimum(sizes, len(cum) - 1)]
            misses = (n - hits).astype(np.int64)
            return MissRatioCurve(sizes=sizes, misses=misses, miss_ratio=_ratio(misses, n),
                                  accesses=n, page_size=self.page_size, method="exact",
                                  cold_misses=int(core.cold), distinct_pages=int(core.distinct))
        inv = float(core.inv_rate)
        rate = 1.0 / inv
        if self.sample_size is None:
            hist = core.histogram().astype(np.float64)
            d = np.arange(len(hist), dtype=np.float64)
            scaled = 1.0 + (d[1:] - 1.0) * inv            # scaled distance of d = 1, 2, ...
            cum = np.concatenate([[0.0], np.cumsum(hist[1:])]) * inv
            total = float(core.sampled) * inv
            cold = float(core.cold) * inv
            resolve = lambda s: cum[np.searchsorted(scaled, s, side="right")]  # noqa: E731
        else:
            w = core.weighted_histogram()
            width = 1 << int(core.wshift)
            cum = np.concatenate([[0.0], np.cumsum(w)])
            total = float(core.weight_sum)
            cold = float(core.weight_cold)
            # bucket b (floors of scaled distances in [b*width, (b+1)*width)) hits at
            # size s when (b + 1) * width - 1 <= s
            resolve = lambda s: cum[np.minimum((s + 1) // width, len(w))]  # noqa: E731
        distinct = int(round(cold))
        sizes = self.sizes if self.sizes is not None else default_sizes(max(distinct, 1))
        hits = resolve(sizes)
        denom = float(n) if self.adjust else total
        ratio = np.clip((total - hits) / denom, 0.0, 1.0) if denom > 0 \
            else np.zeros(len(sizes))
        misses = np.rint(ratio * n).astype(np.int64)
        min_res = int(math.ceil(RESOLUTION_FACTOR * inv - 1e-9))
        if self.sample_size is not None:
            min_res = max(min_res, 1 << int(core.wshift))
        return MissRatioCurve(sizes=sizes, misses=misses, miss_ratio=ratio, accesses=n,
                              page_size=self.page_size, method="shards", rate=rate,
                              min_resolved_size=min_res, cold_misses=distinct,
                              distinct_pages=distinct, sample_size=self.sample_size,
                              sampled_accesses=int(core.sampled),
                              extra={"sampled_pages": int(core.distinct),
                                     "adjusted": self.adjust})

    def _sets_result(self, n: int) -> MissRatioCurve:
        core = self.core
        hist = core.histogram()
        cum = np.cumsum(hist)
        if self.sizes is None:
            ways = np.arange(1, core.ways + 1, dtype=np.int64)
        else:
            ways = self.sizes // self.sets
        hits = cum[np.minimum(ways, len(cum) - 1)]
        misses = (n - hits).astype(np.int64)
        return MissRatioCurve(sizes=ways * self.sets, misses=misses,
                              miss_ratio=_ratio(misses, n), accesses=n,
                              page_size=self.page_size, method="exact", sets=self.sets,
                              ways=ways)


def _ratio(misses, n) -> np.ndarray:
    return misses / n if n else np.zeros(len(misses))
