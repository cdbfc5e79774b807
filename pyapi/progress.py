"""The progress bars of long operations: tqdm on stderr, only when stderr is a terminal.

tqdm is an optional extra (``pip install "mmucore[progress]"``); without it, or when
stderr is a file or a pipe, :func:`progress_bar` returns ``None`` and callers go on
silently.

>>> progress_bar(100, unit="acc", desc="replay", enabled=False) is None
True
"""
from __future__ import annotations

import sys
from typing import Optional

__all__ = ["progress_bar"]


def progress_bar(total: Optional[int], *, unit: str, desc: str, enabled=True):
    """A ``tqdm`` bar of ``total`` ``unit``s on stderr, or ``None`` when ``enabled`` is
    false, stderr is not a terminal or tqdm is not installed."""
    if enabled is not True or sys.stderr is None \
            or not getattr(sys.stderr, "isatty", lambda: False)():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, unit_scale=unit == "acc", desc=desc,
                file=sys.stderr, leave=False)
