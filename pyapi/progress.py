"""The progress bars of long operations: tqdm on stderr, only when stderr is a terminal.

tqdm is an optional extra (``pip install "mmucore[progress]"``); without it, or when
stderr is a file or a pipe, :func:`progress_bar` returns ``None`` and callers go on
silently.

Callers update the bar once per chunk (never per access), so the bar is made to check
the clock on every update (``miniters=1``) and redraw at most every ``mininterval``
seconds. A terminal that reports no size (a pseudo-terminal whose window size was never
set: ``script ... /dev/null`` outside a terminal, ``docker run -t``, some CI runners and
IDE consoles report 0 columns and 0 rows) gets a default width and height: tqdm would
otherwise take its size as -1 x -1 and never draw anything.

>>> progress_bar(100, unit="acc", desc="replay", enabled=False) is None
True
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Tuple

__all__ = ["progress_bar"]

#: The width and height assumed when the terminal reports none (and COLUMNS/LINES are unset).
DEFAULT_SIZE = (80, 24)


def _env_size(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def _shape(stream) -> Tuple[Optional[int], Optional[int]]:
    """``(ncols, nrows)`` to give tqdm for ``stream``: ``None`` where the terminal reports a
    size (tqdm measures it itself), a default where it reports 0 (or cannot be asked)."""
    try:
        size = os.get_terminal_size(stream.fileno())
        cols, rows = size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        cols = rows = 0
    # tqdm uses one column and one row less than the terminal has (no line wrap)
    ncols = None if cols > 0 else _env_size("COLUMNS", DEFAULT_SIZE[0]) - 1
    nrows = None if rows > 0 else _env_size("LINES", DEFAULT_SIZE[1]) - 1
    return ncols, nrows


def progress_bar(total: Optional[int], *, unit: str, desc: str, enabled=True):
    """A ``tqdm`` bar of ``total`` ``unit``s on stderr, or ``None`` when ``enabled`` is
    false, stderr is not a terminal or tqdm is not installed."""
    stream = sys.stderr
    if enabled is not True or stream is None \
            or not getattr(stream, "isatty", lambda: False)():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    ncols, nrows = _shape(stream)
    return tqdm(total=total, unit=unit, unit_scale=unit == "acc", desc=desc,
                file=stream, leave=False, miniters=1, ncols=ncols, nrows=nrows)
