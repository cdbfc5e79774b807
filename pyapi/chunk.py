"""The unit of data flow: one columnar chunk of a trace (DESIGN section 3).

Every trace source (files of any format, workload generators, arrays) yields
``TraceChunk`` objects, and every engine consumes them. Columns are numpy arrays of equal
length with fixed dtypes; optional columns are ``None`` when the source has no such
information (then the defaults apply: size unknown, CPU 0, task 0).

>>> import numpy as np
>>> c = TraceChunk(np.array([0x1000, 0x2008], dtype=np.uint64))
>>> len(c), c.op.tolist(), c.size is None
(2, [0, 0], True)
>>> TraceChunk(np.zeros(2, np.uint64), op=np.array([0, 99], np.uint8))
Traceback (most recent call last):
...
ValueError: op column: unknown operation code 99 at index 1 (known codes: 0..13)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mmucore._types import OPS

__all__ = ["TraceChunk", "COLUMN_DTYPES", "as_column"]

#: The dtype of each column of a trace.
COLUMN_DTYPES = {
    "addr": np.dtype(np.uint64),
    "op": np.dtype(np.uint8),
    "size": np.dtype(np.uint16),
    "cpu": np.dtype(np.uint16),
    "task": np.dtype(np.uint32),
}
_MAX_OP = max(OPS.values())


def as_column(name: str, values, n: Optional[int] = None) -> np.ndarray:
    """``values`` as a contiguous array of column ``name``'s dtype.

    Integer arrays of another dtype are converted when every value fits; a value that
    does not fit, a non-integer array, or a length other than ``n`` is a ``ValueError``
    naming the column.

    >>> import numpy as np
    >>> as_column("size", [1, 2, 3], 3)
    array([1, 2, 3], dtype=uint16)
    >>> as_column("cpu", np.array([1, -1]), 2)
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    dtype = COLUMN_DTYPES[name]
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} column: expected a 1-D array, got shape {arr.shape}")
    if arr.dtype != dtype:
        if arr.size and arr.dtype.kind not in "iub":
            raise ValueError(f"{name} column: expected integers ({dtype}), got {arr.dtype}")
        if arr.size and arr.dtype.kind == "i" and int(arr.min()) < 0:
            i = int(np.argmax(arr < 0))
            raise ValueError(f"{name} column: negative value {int(arr[i])} at index {i}")
        if arr.size and arr.dtype.kind in "iu" and int(arr.max()) > np.iinfo(dtype).max:
            i = int(np.argmax(arr > np.iinfo(dtype).max))
            raise ValueError(f"{name} column: value {int(arr[i])} at index {i} does not fit "
                             f"in {dtype}")
        arr = arr.astype(dtype)
    arr = np.ascontiguousarray(arr)
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} column: length {len(arr)}, but addr has {n}")
    return arr


@dataclass(frozen=True, eq=False)
class TraceChunk:
    """One chunk of a trace: ``addr`` (uint64) and the optional columns ``op`` (uint8,
    ``pyapi.Op`` codes; missing means all loads), ``size`` (uint16 bytes; 0 or missing
    means unknown), ``cpu`` (uint16) and ``task`` (uint32).

    The constructor validates once (dtypes, equal lengths, known op codes); engines then
    trust the columns.

    >>> import numpy as np
    >>> c = TraceChunk(addr=np.array([0x1000, 0x2000], dtype=np.uint64))
    >>> len(c), c.op, c.size is None
    (2, array([0, 0], dtype=uint8), True)
    """

    addr: np.ndarray
    op: Optional[np.ndarray] = None
    size: Optional[np.ndarray] = None
    cpu: Optional[np.ndarray] = None
    task: Optional[np.ndarray] = None

    def __post_init__(self):
        addr = as_column("addr", self.addr)
        n = len(addr)
        object.__setattr__(self, "addr", addr)
        op = self.op
        if op is None:
            op = np.zeros(n, dtype=np.uint8)
        op = as_column("op", op, n)
        if n and int(op.max()) > _MAX_OP:
            i = int(np.argmax(op > _MAX_OP))
            raise ValueError(f"op column: unknown operation code {int(op[i])} at index {i} "
                             f"(known codes: 0..{_MAX_OP})")
        object.__setattr__(self, "op", op)
        for name in ("size", "cpu", "task"):
            col = getattr(self, name)
            if col is not None:
                object.__setattr__(self, name, as_column(name, col, n))

    def __len__(self) -> int:
        return len(self.addr)

    def __getitem__(self, sl: slice) -> "TraceChunk":
        """A slice of the chunk (views, no copy)."""
        if not isinstance(sl, slice):
            raise TypeError("TraceChunk supports slices only")
        return TraceChunk(self.addr[sl], self.op[sl],
                          *(None if c is None else c[sl] for c in (self.size, self.cpu, self.task)))

    @staticmethod
    def concat(chunks) -> "TraceChunk":
        """One chunk holding ``chunks`` in order (a column missing in any chunk but present
        in another is filled with its default, 0)."""
        chunks = list(chunks)
        if not chunks:
            return TraceChunk(np.zeros(0, np.uint64))
        cols = {}
        for name in ("size", "cpu", "task"):
            if any(getattr(c, name) is not None for c in chunks):
                cols[name] = np.concatenate([
                    getattr(c, name) if getattr(c, name) is not None
                    else np.zeros(len(c), COLUMN_DTYPES[name]) for c in chunks])
        return TraceChunk(np.concatenate([c.addr for c in chunks]),
                          np.concatenate([c.op for c in chunks]), **cols)
