"""Seeded workload generators (issue 5): address streams made chunk by chunk.

Each generator is a :class:`Workload`: ``len(w)`` accesses, ``w.footprint`` bytes,
``w.regions`` (where each simulated array lives), and ``w.chunks(chunk_size)`` yielding
:class:`pyapi.chunk.TraceChunk` columns (``addr`` uint64, ``op`` uint8, ``size`` uint16 =
bytes of the access). A 10**9-access stream never exists as a whole: the engine
(``mmucore.gen``) writes each chunk in one nogil call, continuing where the last chunk
ended, so **the stream for a seed is the same whatever the chunk size**.

============== ======================================================================
workload        stream
============== ======================================================================
uniform         addresses uniform over ``[base, base + footprint)``, ``align``-aligned
stride          ``base + (i * stride) % footprint``: a sweep that wraps
zipf            pages of Zipf(alpha)-distributed rank, scattered over the footprint
pointer_chase   loads along one random cycle through all nodes (Sattolo)
gups            random 8-byte read-modify-writes of a table (HPCC RandomAccess style)
matmul          C += A.B over row-major matrices, naive ijk or blocked
bfs             breadth-first search of a random graph stored in CSR
stream          the STREAM kernels copy / scale / add / triad
============== ======================================================================

Addresses are user-space: ``base`` defaults to ``DEFAULT_BASE`` (0x10000000, 256 MiB).
A workload with several arrays lays them out from ``base`` in order, each starting at
the first 2 MiB boundary (relative to ``base``) at or after the end of the previous one.

Workloads are also written as spec strings, ``name:key=value,...`` (``from_spec``);
``w.spec`` gives the canonical string back:

>>> w = from_spec("zipf:n=1e4,pages=1000,alpha=1.0,seed=1")
>>> w.spec
'zipf:n=10000,pages=1000,alpha=1.0,page_size=4K,seed=1,base=0x10000000,align=8,sampler=table'
>>> len(w), w.footprint, from_spec(w.spec).addr[:3].tolist() == w.addr[:3].tolist()
(10000, 4096000, True)
"""
from __future__ import annotations

import functools
import math
import re
from typing import Dict, Iterator, Tuple

import numpy as np

from mmucore import gen as _gen
from mmucore._types import OPS
from pyapi.chunk import TraceChunk
from pyapi.units import parse_size

__all__ = ["Workload", "Uniform", "Stride", "Zipf", "PointerChase", "Gups", "Matmul",
           "Bfs", "Stream", "uniform", "stride", "zipf", "pointer_chase", "gups",
           "matmul", "bfs", "stream", "from_spec", "zipf_table", "WORKLOADS",
           "DEFAULT_BASE", "REGION_ALIGN", "CHUNK"]

#: Default first address of every workload (user space, 256 MiB).
DEFAULT_BASE = 0x10000000
#: Arrays of a workload start on this boundary (relative to ``base``).
REGION_ALIGN = 2 << 20
#: Default chunk size of ``Workload.chunks``.
CHUNK = 1 << 20
#: ``to_chunk`` refuses to materialise more accesses than this unless told.
MATERIALISE_LIMIT = 1 << 27

_U64 = (1 << 64) - 1
_LOAD, _STORE, _MODIFY = OPS["LOAD"], OPS["STORE"], OPS["MODIFY"]
_OP_NAMES = {_LOAD: "load", _STORE: "store", _MODIFY: "modify"}


# ---------------------------------------------------------------------------- validation
def _count(value, what: str, *, low: int = 0, high: int = _U64) -> int:
    """A whole number: int, or a float / string such as ``1e7`` with an integral value."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a whole number, not {value!r}")
    if isinstance(value, str):
        value = _parse_number(value, what)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{what} must be a whole number, got {value!r}")
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a whole number, not {type(value).__name__}")
    value = int(value)
    if value < low or value > high:
        hi = "2**64 - 1" if high == _U64 else str(high)
        raise ValueError(f"{what} must be in [{low}, {hi}], got {value}")
    return value


def _size(value, what: str, *, low: int = 0, high: int = _U64) -> int:
    """Bytes: an int, ``"64M"``-style sizes (binary units), ``0x...`` or ``1e6``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = parse_size(text, what=what)
        except ValueError:
            value = _parse_number(text, what)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = int(value)
    return _count(value, what, low=low, high=high)


def _parse_number(text: str, what: str):
    t = text.strip().replace("_", "")
    try:
        return int(t, 0)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None


def _real(value, what: str) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number, not {value!r}")
    if isinstance(value, str):
        value = _parse_number(value, what)
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


def _pow2(value: int, what: str) -> int:
    if value < 1 or value & (value - 1):
        raise ValueError(f"{what} must be a power of two, got {value}")
    return value


def _layout(base: int, sizes) -> Dict[str, Tuple[int, int]]:
    """``{name: (start, nbytes)}``: arrays in order from ``base``, each starting at the
    first ``REGION_ALIGN`` boundary (relative to base) at or after the previous end."""
    out, off = {}, 0
    for name, nbytes in sizes:
        off = -(-off // REGION_ALIGN) * REGION_ALIGN
        out[name] = (base + off, nbytes)
        off += nbytes
    if base + off > _U64 + 1:
        raise ValueError(f"the arrays ({off} bytes from base {base:#x}) do not fit below 2**64")
    return out


def _fmt_size(nbytes: int) -> str:
    for shift, unit in ((40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift}{unit}"
    return str(nbytes)


# Parameter kinds: how a spec value is parsed and how it is written back.
_PARSE = {
    "count": lambda v, w: _count(v, w),
    "size": lambda v, w: _size(v, w),
    "addr": lambda v, w: _size(v, w),
    "real": lambda v, w: _real(v, w),
    "str": lambda v, w: str(v).strip(),
}
_FORMAT = {
    "count": str,
    "size": _fmt_size,
    "addr": lambda v: f"{v:#x}",
    "real": repr,
    "str": str,
}


# ---------------------------------------------------------------------------- base class
class Workload:
    """A seeded, chunked address stream (see the module docstring).

    Attributes: ``n`` (accesses; also ``len(w)``), ``footprint`` (bytes of the arrays the
    stream touches), ``regions`` (``{name: (start, nbytes)}``), ``spec`` (canonical spec
    string), ``params`` (the arguments, normalised), ``mix`` (accesses per op name).

    >>> w = stride(4, footprint="1K", stride=256)
    >>> isinstance(w, Workload), w.n, w.footprint, w.mix
    (True, 4, 1024, {'load': 4})
    >>> [hex(a) for a in w.to_chunk().addr]
    ['0x10000000', '0x10000100', '0x10000200', '0x10000300']
    """

    name: str = ""
    #: (parameter, kind, default); REQUIRED marks a parameter without a default.
    _PARAMS: Tuple[Tuple[str, str, object], ...] = ()
    REQUIRED = object()

    n: int
    footprint: int
    regions: Dict[str, Tuple[int, int]]

    def __len__(self) -> int:
        return self.n

    def _core(self):                               # a fresh engine state at access 0
        raise NotImplementedError

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[TraceChunk]:
        """The stream as ``TraceChunk``s of ``chunk_size`` accesses (the last shorter).

        Each call starts again at access 0; the concatenation is the same for every
        ``chunk_size``. Each chunk is freshly allocated (the caller may keep it).
        """
        chunk_size = _count(chunk_size, "chunk_size", low=1, high=1 << 40)
        core = self._core()
        left = self.n
        while left:
            m = min(chunk_size, left)
            addr = np.empty(m, dtype=np.uint64)
            op = np.empty(m, dtype=np.uint8)
            size = np.empty(m, dtype=np.uint16)
            done = core.fill(addr, op, size)
            if done != m:                          # pragma: no cover - engine invariant
                raise RuntimeError(f"{self.name}: engine made {done} accesses, not {m}")
            left -= m
            yield TraceChunk(addr, op, size)

    def __iter__(self) -> Iterator[TraceChunk]:
        return self.chunks()

    def to_chunk(self, limit: int = MATERIALISE_LIMIT) -> TraceChunk:
        """The whole stream as one ``TraceChunk`` (refused above ``limit`` accesses)."""
        if self.n > limit:
            raise ValueError(f"{self.name}: {self.n} accesses is more than limit={limit}; "
                             f"use .chunks() or pass a larger limit")
        if self.n == 0:
            return TraceChunk(np.zeros(0, np.uint64), np.zeros(0, np.uint8),
                              np.zeros(0, np.uint16))
        return next(self.chunks(self.n))

    @property
    def addr(self) -> np.ndarray:
        """All addresses (uint64), materialised (small workloads only)."""
        return self.to_chunk().addr

    @property
    def op(self) -> np.ndarray:
        """All op codes (uint8), materialised (small workloads only)."""
        return self.to_chunk().op

    @property
    def params(self) -> dict:
        """The arguments, normalised (ints, floats, strings; ``None`` = derived)."""
        return dict(self._params)

    @property
    def spec(self) -> str:
        """The canonical spec string: ``from_spec(w.spec)`` makes the same stream."""
        parts = []
        for key, kind, _ in self._PARAMS:
            value = self._params[key]
            if value is not None:
                parts.append(f"{key}={_FORMAT[kind](value)}")
        return f"{self.name}:{','.join(parts)}"

    @property
    def mix(self) -> Dict[str, float]:
        """Accesses per op name (``load``/``store``/``modify``) over the whole stream;
        exact counts, except for ``uniform`` with ``0 < store_fraction < 1`` (expected)."""
        return {k: v for k, v in self._mix().items() if v}

    def _mix(self) -> Dict[str, float]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<workload {self.spec} ({self.n:,} accesses)>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Workload) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    def _set_params(self, **values) -> None:
        self._params = values


# ---------------------------------------------------------------------------- generators
class Uniform(Workload):
    """``uniform(n, footprint, seed=0, base=DEFAULT_BASE, align=8, store_fraction=0.0)``

    Access ``i`` is at ``base + align * s_i`` with ``s_i`` uniform in
    ``[0, footprint // align)`` (``s_i = mulhi(d_i, footprint // align)``, ``d_i`` draw
    ``i`` of a SplitMix64 counter stream): independent of every other access and of the
    chunking. Each access is ``align`` bytes (``size`` column); it is a STORE with
    probability ``store_fraction`` (an independent draw), else a LOAD.

    Footprint: ``footprint`` bytes, region ``data = [base, base + footprint)`` (the
    last ``footprint % align`` bytes are never touched). Mix per access:
    ``1 - store_fraction`` loads, ``store_fraction`` stores.

    >>> w = uniform(1000, "64K", seed=1)
    >>> w.footprint, bool(((w.addr >= 0x10000000) & (w.addr < 0x10010000)).all())
    (65536, True)
    >>> bool((w.addr % 8 == 0).all()), w.mix
    (True, {'load': 1000})
    """

    name = "uniform"
    _PARAMS = (("n", "count", Workload.REQUIRED), ("footprint", "size", Workload.REQUIRED),
               ("seed", "count", 0), ("base", "addr", DEFAULT_BASE), ("align", "size", 8),
               ("store_fraction", "real", 0.0))

    def __init__(self, n, footprint, seed=0, base=DEFAULT_BASE, align=8, store_fraction=0.0):
        self.n = _count(n, "n")
        align = _pow2(_size(align, "align", low=1, high=1 << 15), "align")
        self.footprint = _size(footprint, "footprint", low=1)
        if self.footprint < align:
            raise ValueError(f"footprint ({self.footprint} bytes) must be at least align "
                             f"({align} bytes)")
        seed = _count(seed, "seed")
        base = _size(base, "base")
        sf = _real(store_fraction, "store_fraction")
        if not 0.0 <= sf <= 1.0:
            raise ValueError(f"store_fraction must be in [0, 1], got {sf}")
        self.regions = _layout(base, [("data", self.footprint)])
        self._thresh = int(round(sf * (1 << 53)))
        self._set_params(n=self.n, footprint=self.footprint, seed=seed, base=base,
                         align=align, store_fraction=sf)

    def _core(self):
        p = self._params
        return _gen.GenCore.new_uniform(self.n, p["base"], self.footprint // p["align"],
                                        p["align"], p["seed"], self._thresh, _LOAD,
                                        p["align"])

    def _mix(self):
        f = self._thresh / (1 << 53)
        if f in (0.0, 1.0):
            return {"load": self.n if f == 0 else 0, "store": self.n if f == 1 else 0}
        return {"load": self.n * (1 - f), "store": self.n * f}


class Stride(Workload):
    """``stride(n, footprint, stride=64, base=DEFAULT_BASE, elem_bytes=8)``

    Access ``i`` loads ``elem_bytes`` bytes at ``base + (i * stride) % footprint``: a
    sequential sweep that wraps around at ``footprint`` (when ``footprint`` is not a
    multiple of ``stride``, later sweeps are shifted by the remainder, exactly as the
    formula says). Footprint: ``footprint`` bytes (region ``data``); mix: all loads.

    >>> [hex(a) for a in stride(5, 256, stride=64, base=0x1000).addr]
    ['0x1000', '0x1040', '0x1080', '0x10c0', '0x1000']
    """

    name = "stride"
    _PARAMS = (("n", "count", Workload.REQUIRED), ("footprint", "size", Workload.REQUIRED),
               ("stride", "size", 64), ("base", "addr", DEFAULT_BASE),
               ("elem_bytes", "size", 8))

    def __init__(self, n, footprint, stride=64, base=DEFAULT_BASE, elem_bytes=8):
        self.n = _count(n, "n")
        self.footprint = _size(footprint, "footprint", low=1)
        stride_ = _size(stride, "stride", low=1)
        base = _size(base, "base")
        elem = _size(elem_bytes, "elem_bytes", low=1, high=65535)
        self.regions = _layout(base, [("data", self.footprint)])
        self._set_params(n=self.n, footprint=self.footprint, stride=stride_, base=base,
                         elem_bytes=elem)

    def _core(self):
        p = self._params
        return _gen.GenCore.new_stride(self.n, p["base"], self.footprint, p["stride"],
                                       p["elem_bytes"])

    def _mix(self):
        return {"load": self.n}


@functools.lru_cache(maxsize=16)
def _zipf_table_cached(pages: int, alpha: float) -> np.ndarray:
    q = 1.0 / (64.0 * min(max(alpha, 1.0), 8.0))
    bins = []
    lo = 1
    while lo <= pages:
        cnt = min(max(1, int(lo * q)), pages + 1 - lo)
        bins.append((lo, cnt))
        lo += cnt
    m = len(bins)
    weight = [cnt * float(lo) ** -alpha for lo, cnt in bins]
    total = math.fsum(weight)
    p = [w * m / total for w in weight]
    prob = [1.0] * m
    alias = list(range(m))
    small = [j for j in range(m) if p[j] < 1.0]
    large = [j for j in range(m) if p[j] >= 1.0]
    while small and large:                         # Vose's alias method
        s, big = small.pop(), large.pop()
        prob[s], alias[s] = p[s], big
        p[big] = (p[big] + p[s]) - 1.0
        (small if p[big] < 1.0 else large).append(big)
    cols = _gen.ZIPF_TABLE_COLS
    squeeze = []
    for lo, cnt in bins:
        c = 1.0 if cnt == 1 else (lo / (lo + cnt - 1)) ** alpha
        squeeze.append(0xFFFFFFFF if cnt == 1 else int(c * (1.0 - 1e-9) * 2.0 ** 32))
    table = np.zeros((m, cols["width"]), dtype=np.uint32)
    for j, (lo, cnt) in enumerate(bins):
        a = alias[j]
        thresh = min(int(prob[j] * 2.0 ** 64), _U64)
        table[j, cols["thresh_lo"]], table[j, cols["thresh_hi"]] = thresh & 0xFFFFFFFF, thresh >> 32
        table[j, cols["lo"]], table[j, cols["count"]] = lo, cnt
        table[j, cols["alias_lo"]], table[j, cols["alias_count"]] = bins[a]
        table[j, cols["squeeze"]], table[j, cols["alias_squeeze"]] = squeeze[j], squeeze[a]
    table.setflags(write=False)
    return table


def zipf_table(pages: int, alpha: float) -> np.ndarray:
    """The bin table of the ``sampler="table"`` zipf sampler over ranks ``1..pages``.

    Ranks are grouped into bins ``[lo, lo + count)``: single ranks while
    ``lo < 1/q``, then ``count = floor(lo * q)`` with ``q = 1 / (64 * min(max(alpha, 1),
    8))``, so the pmf varies by at most a factor ``(1 + q)**alpha`` inside a bin
    (about ``64 * ln(pages)`` bins: 830 for 10**7 pages, 40 KB). A step hat of height
    ``lo**-alpha`` over each bin is sampled with Vose's alias method over bins (weights
    ``count * lo**-alpha``), then a rank uniformly inside the bin, accepted with
    probability ``(lo / k)**alpha`` (rejection from a step hat; the squeeze column
    accepts without a pow when the draw is below ``((lo / (lo + count - 1))**alpha``).
    The accepted ranks have exactly the Zipf pmf ``k**-alpha / H(pages, alpha)`` (to the
    precision of the double-precision weights). Rows: 8 uint32 words (32 bytes):
    the alias threshold (of 2**64, two words), then ``lo``, ``count`` and the squeeze
    (of 2**32) each for the bin and for its alias bin side by side
    (``mmucore.gen.ZIPF_TABLE_COLS``), so the alias pick is a select. Ranks must fit in
    32 bits: ``pages < 2**32``. Read-only; cached.

    >>> t = zipf_table(100, 1.0); t.shape, t.dtype.name, int(t[:, 4].sum())
    ((100, 8), 'uint32', 100)
    """
    pages = _count(pages, "pages", low=1, high=(1 << 32) - 1)
    alpha = _real(alpha, "alpha")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    return _zipf_table_cached(pages, alpha)


class Zipf(Workload):
    """``zipf(n, pages, alpha=1.0, page_size=4096, seed=0, base=DEFAULT_BASE, align=8,
    sampler="table")``

    Access ``i`` loads ``align`` bytes in the page of rank ``k`` (1-based), drawn with
    probability ``k**-alpha / H(pages, alpha)`` (a bounded Zipf; any ``alpha > 0``,
    ``alpha = 1`` included). Rank ``k`` is page ``P(k - 1)`` of the footprint, where
    ``P`` is a seeded bijection of ``[0, pages)`` (two add-multiply-xorshift rounds on
    ``ceil(log2 pages)`` bits, cycle-walking back into range), so rank order is not
    address order and no permutation table is stored. The offset inside the page is
    uniform over ``align``-aligned offsets. Address:
    ``base + P(k - 1) * page_size + offset``.

    Per access ``i``, a sub-stream ``sub = d_i`` (draw ``i`` of the zipf key; its draws
    ``t >= 1`` are wyrand outputs from state ``sub``) feeds the offset (its draw 1) and
    the rank (draw 0 and draws 2, 3, ...), so accesses are independent and the stream
    does not depend on the chunking.

    Samplers (both exact, O(1) expected time): ``"table"`` (default, fast): Vose alias
    table over ~``64 ln(pages)`` rank bins + rejection from the step hat (see
    ``zipf_table``; 32 bytes per bin: 26 KB for 10**7 pages; ``pages < 2**32``).
    ``"rejection-inversion"``: W. Hormann and G. Derflinger, *Rejection-inversion to
    generate variates from monotone discrete distributions*, ACM TOMACS 6(3):169-184,
    1996, in the form of Apache Commons RNG's ``RejectionInversionZipfSampler`` (O(1)
    memory, ``pages <= 2**52``; a log1p and an exp per draw, about half as fast). The
    pages of the 2048 hottest ranks are kept in a 16 KB table (the same bijection).

    Footprint: ``pages * page_size`` bytes (region ``data``); mix: all loads.

    >>> w = zipf(20000, pages=1000, alpha=1.2, seed=3)
    >>> pages = (w.addr - 0x10000000) // 4096
    >>> top = int(np.bincount(pages.astype(np.int64)).max()) / len(w)  # 1/H(1000, 1.2)
    >>> 0.22 < top < 0.25, int(pages.max()) < 1000
    (True, True)
    """

    name = "zipf"
    SAMPLERS = ("table", "rejection-inversion")
    _PARAMS = (("n", "count", Workload.REQUIRED), ("pages", "count", Workload.REQUIRED),
               ("alpha", "real", 1.0), ("page_size", "size", 4096), ("seed", "count", 0),
               ("base", "addr", DEFAULT_BASE), ("align", "size", 8),
               ("sampler", "str", "table"))

    def __init__(self, n, pages, alpha=1.0, page_size=4096, seed=0, base=DEFAULT_BASE,
                 align=8, sampler="table"):
        self.n = _count(n, "n")
        pages = _count(pages, "pages", low=1, high=1 << 52)
        alpha = _real(alpha, "alpha")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        page_size = _pow2(_size(page_size, "page_size", low=1), "page_size")
        align = _pow2(_size(align, "align", low=1, high=1 << 15), "align")
        if align > page_size:
            raise ValueError(f"align ({align}) must not exceed page_size ({page_size})")
        if sampler not in self.SAMPLERS:
            raise ValueError(f"sampler {sampler!r} is not one of {', '.join(self.SAMPLERS)}")
        if sampler == "table" and pages >= 1 << 32:
            raise ValueError(f"the table sampler takes pages < 2**32, got {pages}; "
                             f"use sampler='rejection-inversion'")
        seed = _count(seed, "seed")
        base = _size(base, "base")
        self.footprint = pages * page_size
        self.regions = _layout(base, [("data", self.footprint)])
        self._set_params(n=self.n, pages=pages, alpha=alpha, page_size=page_size, seed=seed,
                         base=base, align=align, sampler=sampler)

    def _core(self):
        p = self._params
        table = zipf_table(p["pages"], p["alpha"]) if p["sampler"] == "table" else None
        return _gen.GenCore.new_zipf(self.n, p["base"], p["pages"], p["page_size"],
                                     p["align"], p["alpha"], p["seed"], p["align"], table)

    def _mix(self):
        return {"load": self.n}


class PointerChase(Workload):
    """``pointer_chase(n, nodes, node_bytes=64, seed=0, base=DEFAULT_BASE)``

    ``nodes`` nodes of ``node_bytes`` bytes form ONE random cycle (Sattolo's algorithm:
    a uniformly random cyclic permutation ``next``). Access ``i`` loads the 8-byte
    pointer at the start of node ``c_i``: ``c_0 = 0``, ``c_{i+1} = next[c_i]``, so the
    first ``nodes`` accesses visit every node once, then the cycle repeats. Address:
    ``base + c_i * node_bytes``.

    Footprint: ``nodes * node_bytes`` bytes (region ``nodes``); mix: all loads. Memory:
    8 bytes per node, built on first use: ``next`` (uint32, Sattolo) and the cycle
    walked once from node 0, ``order`` (uint32, ``c_i = order[i % nodes]``), which the
    chunks read sequentially (so the stream is seekable and fast; the simulated program
    is the one that chases pointers).

    >>> w = pointer_chase(8, nodes=8, seed=2)
    >>> sorted(((w.addr - 0x10000000) // 64).tolist())
    [0, 1, 2, 3, 4, 5, 6, 7]
    """

    name = "pointer_chase"
    _PARAMS = (("n", "count", Workload.REQUIRED), ("nodes", "count", Workload.REQUIRED),
               ("node_bytes", "size", 64), ("seed", "count", 0),
               ("base", "addr", DEFAULT_BASE))

    def __init__(self, n, nodes, node_bytes=64, seed=0, base=DEFAULT_BASE):
        self.n = _count(n, "n")
        nodes = _count(nodes, "nodes", low=1, high=1 << 32)
        node_bytes = _size(node_bytes, "node_bytes", low=8)
        seed = _count(seed, "seed")
        base = _size(base, "base")
        self.footprint = nodes * node_bytes
        self.regions = _layout(base, [("nodes", self.footprint)])
        self._next = None
        self._order = None
        self._set_params(n=self.n, nodes=nodes, node_bytes=node_bytes, seed=seed, base=base)

    @property
    def next(self) -> np.ndarray:
        """The cycle: ``next[node]`` (uint32, read-only; built on first use)."""
        if self._next is None:
            nxt = _gen.sattolo(self._params["nodes"], self._params["seed"])
            nxt.setflags(write=False)
            self._next = nxt
        return self._next

    @property
    def order(self) -> np.ndarray:
        """The nodes in visiting order from node 0 (uint32, read-only; built on first
        use)."""
        if self._order is None:
            order = _gen.cycle(self.next)
            order.setflags(write=False)
            self._order = order
        return self._order

    def _core(self):
        p = self._params
        return _gen.GenCore.new_chase(self.n, p["base"], self.order, p["node_bytes"], 8)

    def _mix(self):
        return {"load": self.n}


class Gups(Workload):
    """``gups(n_updates, table_bytes, seed=0, base=DEFAULT_BASE)``

    HPCC RandomAccess style: update ``i`` is a read-modify-write (``Table[j] ^= r``) of
    the 8-byte word ``j`` uniform in ``[0, table_bytes // 8)``: ONE access with op
    MODIFY (a load and a store of the same word) and size 8, at ``base + 8 * j``. The
    indices come from the same counter-based SplitMix64 construction as ``uniform``
    (with their own key), not from HPCC's LFSR.

    Footprint: ``table_bytes`` bytes (region ``table``); mix: all modifies.

    >>> w = gups(4, "1M", seed=5)
    >>> w.op.tolist(), w.mix
    ([3, 3, 3, 3], {'modify': 4})
    """

    name = "gups"
    _PARAMS = (("n_updates", "count", Workload.REQUIRED),
               ("table_bytes", "size", Workload.REQUIRED), ("seed", "count", 0),
               ("base", "addr", DEFAULT_BASE))

    def __init__(self, n_updates, table_bytes, seed=0, base=DEFAULT_BASE):
        self.n = _count(n_updates, "n_updates")
        table_bytes = _size(table_bytes, "table_bytes", low=8)
        if table_bytes % 8:
            raise ValueError(f"table_bytes must be a multiple of 8, got {table_bytes}")
        seed = _count(seed, "seed")
        base = _size(base, "base")
        self.footprint = table_bytes
        self.regions = _layout(base, [("table", table_bytes)])
        self._set_params(n_updates=self.n, table_bytes=table_bytes, seed=seed, base=base)

    def _core(self):
        p = self._params
        return _gen.GenCore.new_uniform(self.n, p["base"], p["table_bytes"] // 8, 8,
                                        p["seed"], 0, _MODIFY, 8, True)

    def _mix(self):
        return {"modify": self.n}


class Matmul(Workload):
    """``matmul(nsize, block=None, elem_bytes=8, base=DEFAULT_BASE, a_base=None,
    b_base=None, c_base=None)``

    ``C += A . B`` over row-major ``nsize x nsize`` matrices of ``elem_bytes`` elements
    (``X[r][c]`` at ``X_base + (r * nsize + c) * elem_bytes``). Naive (``block=None``,
    the same as ``block=nsize``), the ijk order::

        for i: for j:
            load C[i][j]
            for k: load A[i][k]; load B[k][j]
            store C[i][j]

    Blocked (``block=b``, which must divide ``nsize``)::

        for ii, jj, kk in tiles (ii outermost, kk innermost, steps of b):
            for i in ii..ii+b-1: for j in jj..jj+b-1:
                load C[i][j]
                for k in kk..kk+b-1: load A[i][k]; load B[k][j]
                store C[i][j]

    Accesses: ``n = nsize**2 * (nsize / b) * (2 b + 2)`` (naive: ``nsize**2 (2 nsize +
    2)``); loads ``nsize**2 (nsize / b)(2 b + 1)``, stores ``nsize**2 nsize / b``. The
    stream is generated from loop counters (``seek`` decodes them from an index).
    Footprint: ``3 nsize**2 elem_bytes`` (regions ``A``, ``B``, ``C``; laid out from
    ``base`` unless ``a_base``/``b_base``/``c_base`` are given).

    >>> w = matmul(2, base=0)
    >>> len(w), [hex(a) for a in w.addr[:6]], w.op[:6].tolist()
    (24, ['0x400000', '0x0', '0x200000', '0x8', '0x200010', '0x400000'], [0, 0, 0, 0, 0, 1])
    """

    name = "matmul"
    _PARAMS = (("nsize", "count", Workload.REQUIRED), ("block", "count", None),
               ("elem_bytes", "size", 8), ("base", "addr", DEFAULT_BASE),
               ("a_base", "addr", None), ("b_base", "addr", None), ("c_base", "addr", None))

    def __init__(self, nsize, block=None, elem_bytes=8, base=DEFAULT_BASE, a_base=None,
                 b_base=None, c_base=None):
        nsize = _count(nsize, "nsize", low=1, high=1 << 20)
        if block is not None:
            block = _count(block, "block", low=1)
            if nsize % block:
                divisors = [d for d in range(1, min(nsize, 4096) + 1) if nsize % d == 0]
                raise ValueError(f"block {block} does not divide nsize {nsize}; use one of "
                                 f"{divisors[:20]}{' ...' if len(divisors) > 20 else ''}")
            if block == nsize:
                block = None
        elem = _size(elem_bytes, "elem_bytes", low=1, high=65535)
        base = _size(base, "base")
        nbytes = nsize * nsize * elem
        layout = _layout(base, [("A", nbytes), ("B", nbytes), ("C", nbytes)])
        given = {"A": a_base, "B": b_base, "C": c_base}
        self.regions = {}
        for name, value in given.items():
            start = layout[name][0] if value is None else _size(value, f"{name.lower()}_base")
            if start + nbytes > _U64 + 1:
                raise ValueError(f"matrix {name} at {start:#x} does not fit below 2**64")
            self.regions[name] = (start, nbytes)
        spans = sorted(self.regions.values())
        for (s0, n0), (s1, _) in zip(spans, spans[1:]):
            if s0 + n0 > s1:
                raise ValueError("the matrices A, B and C overlap; give separate bases")
        b = nsize if block is None else block
        self.n = nsize * nsize * (nsize // b) * (2 * b + 2)
        if self.n > _U64:
            raise ValueError(f"matmul of size {nsize} makes more than 2**64 accesses")
        self.footprint = 3 * nbytes
        self._set_params(nsize=nsize, block=block, elem_bytes=elem, base=base,
                         a_base=None if a_base is None else self.regions["A"][0],
                         b_base=None if b_base is None else self.regions["B"][0],
                         c_base=None if c_base is None else self.regions["C"][0])

    def _core(self):
        p = self._params
        b = p["block"] or p["nsize"]
        return _gen.GenCore.new_matmul(p["nsize"], b, p["elem_bytes"], self.regions["A"][0],
                                       self.regions["B"][0], self.regions["C"][0])

    def _mix(self):
        p = self._params
        b = p["block"] or p["nsize"]
        groups = p["nsize"] ** 2 * (p["nsize"] // b)
        return {"load": groups * (2 * b + 1), "store": groups}


class Bfs(Workload):
    """``bfs(vertices, avg_degree=8.0, seed=0, base=DEFAULT_BASE)``

    A random directed multigraph with ``V = vertices`` vertices and
    ``E = round(V * avg_degree)`` edges (edge ``e`` from vertex ``s_e`` to ``t_e``, both
    uniform; self-loops and repeated edges kept), stored in CSR: ``offsets`` (V + 1
    uint64, 8 B each) and ``edges`` (E uint32 targets, 4 B each; a vertex's edges in
    generation order). BFS from vertex 0, then from every still-unvisited vertex in
    increasing order, over ``visited`` (V uint8) and ``queue`` (V uint32; each vertex is
    pushed once, so the queue never wraps). The exact access stream::

        for r in 0 .. V-1:
            load visited[r]                                  (1 B)
            if not visited[r]:
                store visited[r]; store queue[tail++] = r    (1 B, 4 B)
                while head < tail:
                    load queue[head++] -> v                  (4 B)
                    load offsets[v]; load offsets[v+1]       (8 B each)
                    for e in offsets[v] .. offsets[v+1]-1:
                        load edges[e] -> u                   (4 B)
                        load visited[u]                      (1 B)
                        if not visited[u]:
                            store visited[u]; store queue[tail++] = u

    ``n = 6 V + 2 E`` accesses: ``4 V + 2 E`` loads, ``2 V`` stores. Regions, in order
    from ``base``: ``offsets``, ``edges``, ``visited``, ``queue``; footprint
    ``8 (V + 1) + 4 E + V + 4 V`` bytes. Memory: the graph (``8 V + 4 E`` bytes) and the
    BFS order (``4 V``) are built with the engine on first use; the stream is then made
    chunk by chunk from that order (the state between chunks is a few counters).

    >>> w = bfs(100, avg_degree=4, seed=1)
    >>> len(w), w.mix
    (1400, {'load': 1200, 'store': 200})
    """

    name = "bfs"
    _PARAMS = (("vertices", "count", Workload.REQUIRED), ("avg_degree", "real", 8.0),
               ("seed", "count", 0), ("base", "addr", DEFAULT_BASE))

    def __init__(self, vertices, avg_degree=8.0, seed=0, base=DEFAULT_BASE):
        v = _count(vertices, "vertices", low=1, high=1 << 32)
        d = _real(avg_degree, "avg_degree")
        if d < 0:
            raise ValueError(f"avg_degree must be >= 0, got {d}")
        self.edges_count = int(round(v * d))
        if self.edges_count > 1 << 40:
            raise ValueError(f"{self.edges_count} edges is too many (at most 2**40)")
        seed = _count(seed, "seed")
        base = _size(base, "base")
        e = self.edges_count
        self.regions = _layout(base, [("offsets", 8 * (v + 1)), ("edges", 4 * e),
                                      ("visited", v), ("queue", 4 * v)])
        self.footprint = 8 * (v + 1) + 4 * e + v + 4 * v
        self.n = 6 * v + 2 * e
        self._graph = None
        self._order = None
        self._set_params(vertices=v, avg_degree=d, seed=seed, base=base)

    @property
    def graph(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(offsets, edges)`` of the CSR graph (read-only; built on first use)."""
        if self._graph is None:
            off, edg = _gen.random_csr(self._params["vertices"], self.edges_count,
                                       self._params["seed"])
            off.setflags(write=False)
            edg.setflags(write=False)
            self._graph = (off, edg)
        return self._graph

    @property
    def order(self) -> np.ndarray:
        """The BFS visit (= queue) order, uint32 (read-only; built on first use)."""
        if self._order is None:
            order = _gen.bfs_order(*self.graph)
            order.setflags(write=False)
            self._order = order
        return self._order

    def _core(self):
        off, edg = self.graph
        r = self.regions
        return _gen.GenCore.new_bfs(off, edg, self.order, r["offsets"][0], r["edges"][0],
                                    r["visited"][0], r["queue"][0])

    def _mix(self):
        v, e = self._params["vertices"], self.edges_count
        return {"load": 4 * v + 2 * e, "store": 2 * v}


class Stream(Workload):
    """``stream(n_elements, kernel="triad", elem_bytes=8, iterations=1,
    base=DEFAULT_BASE)``

    The STREAM kernels (J. McCalpin) over arrays ``a``, ``b``, ``c`` of ``n_elements``
    elements, element ``i`` of each in turn, ``iterations`` times; per element, in this
    order:

    ======== ========================== =================================
    kernel   statement                  accesses
    ======== ========================== =================================
    copy     ``c[i] = a[i]``            load a[i], store c[i]
    scale    ``b[i] = q * c[i]``        load c[i], store b[i]
    add      ``c[i] = a[i] + b[i]``     load a[i], load b[i], store c[i]
    triad    ``a[i] = b[i] + q c[i]``   load b[i], load c[i], store a[i]
    ======== ========================== =================================

    ``n = iterations * n_elements * (2 or 3)``. Regions ``a``, ``b``, ``c`` (each
    ``n_elements * elem_bytes``) are all laid out from ``base``; the footprint counts
    the arrays the kernel touches (2 for copy/scale, 3 for add/triad).

    >>> w = stream(4, kernel="copy", base=0)
    >>> [hex(a) for a in w.addr[:4]], w.op[:4].tolist(), w.mix
    (['0x0', '0x400000', '0x8', '0x400008'], [0, 1, 0, 1], {'load': 4, 'store': 4})
    """

    name = "stream"
    KERNELS = {"copy": (("a", _LOAD), ("c", _STORE)),
               "scale": (("c", _LOAD), ("b", _STORE)),
               "add": (("a", _LOAD), ("b", _LOAD), ("c", _STORE)),
               "triad": (("b", _LOAD), ("c", _LOAD), ("a", _STORE))}
    _PARAMS = (("n_elements", "count", Workload.REQUIRED), ("kernel", "str", "triad"),
               ("elem_bytes", "size", 8), ("iterations", "count", 1),
               ("base", "addr", DEFAULT_BASE))

    def __init__(self, n_elements, kernel="triad", elem_bytes=8, iterations=1,
                 base=DEFAULT_BASE):
        ne = _count(n_elements, "n_elements", low=1)
        if kernel not in self.KERNELS:
            raise ValueError(f"kernel {kernel!r} is not one of {', '.join(self.KERNELS)}")
        elem = _size(elem_bytes, "elem_bytes", low=1, high=65535)
        iterations = _count(iterations, "iterations")
        base = _size(base, "base")
        nbytes = ne * elem
        self.regions = _layout(base, [("a", nbytes), ("b", nbytes), ("c", nbytes)])
        steps = self.KERNELS[kernel]
        self.n = iterations * ne * len(steps)
        if self.n > _U64:
            raise ValueError("more than 2**64 accesses")
        self.footprint = len({arr for arr, _ in steps}) * nbytes
        self._set_params(n_elements=ne, kernel=kernel, elem_bytes=elem,
                         iterations=iterations, base=base)

    def _core(self):
        p = self._params
        steps = self.KERNELS[p["kernel"]]
        return _gen.GenCore.new_stream(p["n_elements"], p["iterations"], p["elem_bytes"],
                                       [self.regions[arr][0] for arr, _ in steps],
                                       [op for _, op in steps])

    def _mix(self):
        p = self._params
        per = p["iterations"] * p["n_elements"]
        steps = self.KERNELS[p["kernel"]]
        return {"load": per * sum(op == _LOAD for _, op in steps),
                "store": per * sum(op == _STORE for _, op in steps)}


uniform = Uniform
stride = Stride
zipf = Zipf
pointer_chase = PointerChase
gups = Gups
matmul = Matmul
bfs = Bfs
stream = Stream

#: Workload name -> class.
WORKLOADS = {cls.name: cls for cls in (Uniform, Stride, Zipf, PointerChase, Gups, Matmul,
                                       Bfs, Stream)}

_KEY_RE = re.compile(r"^[A-Za-z_]\w*$")


def from_spec(spec) -> Workload:
    """The workload written ``name:key=value,...`` (a ``Workload`` passes through).

    Numbers may be written ``1e7``, ``10_000`` or ``0x1000``; byte arguments (footprint,
    sizes, bases) also ``64M``/``4K`` (binary units). An unknown name or key, a missing
    required key or a bad value is a ``ValueError`` that lists the valid ones.

    >>> from_spec("stride:n=4,footprint=1K,stride=256").spec
    'stride:n=4,footprint=1K,stride=256,base=0x10000000,elem_bytes=8'
    >>> from_spec("zipf:n=10,page=4")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: zipf: unknown key 'page'; valid keys: n, pages, alpha, page_size, seed, ...
    """
    if isinstance(spec, Workload):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a workload spec is a string such as 'zipf:n=1e7,pages=1e5', "
                        f"not {type(spec).__name__}")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    cls = WORKLOADS.get(name)
    if cls is None:
        raise ValueError(f"unknown workload {name!r}; valid workloads: {', '.join(WORKLOADS)}")
    kinds = {key: kind for key, kind, _ in cls._PARAMS}
    kwargs = {}
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not _KEY_RE.match(key):
            raise ValueError(f"{name}: {item!r} is not key=value")
        if key not in kinds:
            raise ValueError(f"{name}: unknown key {key!r}; valid keys: {', '.join(kinds)}")
        if key in kwargs:
            raise ValueError(f"{name}: key {key!r} given twice")
        kwargs[key] = _PARSE[kinds[key]](value, f"{name}: {key}")
    missing = [key for key, _, default in cls._PARAMS
               if default is Workload.REQUIRED and key not in kwargs]
    if missing:
        raise ValueError(f"{name}: missing {', '.join(missing)} (required: "
                         f"{', '.join(k for k, _, d in cls._PARAMS if d is Workload.REQUIRED)})")
    return cls(**kwargs)
