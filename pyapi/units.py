"""Sizes with units: ``"4K"``, ``"2M"``, ``"64G"``, ``"4KiB"``, ``"2MB"`` or plain integers (bytes).

>>> parse_size("2M")
2097152
>>> page_size_name(1 << 30)
'1G'
>>> PAGE_SIZES
{'4K': 4096, '2M': 2097152, '4M': 4194304, '1G': 1073741824}
"""
from __future__ import annotations

import re

from mmucore._types import PAGE_SHIFTS, PAGE_SIZE_CODES

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGTP]?)(?:I?B)?\s*$", re.IGNORECASE)

#: Page sizes the engine models, name -> bytes.
PAGE_SIZES = {name: 1 << PAGE_SHIFTS[code] for name, code in PAGE_SIZE_CODES.items()}
_CODE_OF_BYTES = {1 << PAGE_SHIFTS[code]: code for code in PAGE_SIZE_CODES.values()}


def parse_size(value, *, what: str = "size") -> int:
    """Bytes in ``value``: an int, or a string such as ``"4K"``, ``"2MiB"``, ``"64G"``.

    Units are binary (K = 1024). Raises ``ValueError`` naming ``what`` on anything else.

    >>> parse_size("64K"), parse_size(4096)
    (65536, 4096)
    """
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a size such as 4096 or '4K', not {value!r}")
    if isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, str)):
        n = int(value)
        if n < 0:
            raise ValueError(f"{what} must not be negative, got {n}")
        return n
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            return int(m.group(1)) * _UNITS[m.group(2).upper()]
        raise ValueError(f"{what} {value!r} is not a size; write bytes or a number with "
                         f"K/M/G/T (e.g. '4K', '2M', '64G')")
    raise TypeError(f"{what} must be a size such as 4096 or '4K', not {type(value).__name__}")


def page_size_code(value, *, what: str = "page_size") -> int:
    """Engine code of a page size given as ``"4K"``/``"2M"``/``"4M"``/``"1G"`` or bytes.

    >>> page_size_code("2M"), page_size_code(1 << 30)
    (1, 3)
    """
    nbytes = parse_size(value, what=what)
    if nbytes not in _CODE_OF_BYTES:
        raise ValueError(f"{what} {value!r} is not a page size the engine models; "
                         f"use one of {', '.join(PAGE_SIZES)}")
    return _CODE_OF_BYTES[nbytes]


def page_size_name(nbytes: int) -> str:
    """``"4K"``, ``"2M"``, ``"4M"`` or ``"1G"`` for a page size in bytes.

    >>> page_size_name(4096), page_size_name(2 << 20)
    ('4K', '2M')
    """
    for name, size in PAGE_SIZES.items():
        if size == nbytes:
            return name
    raise ValueError(f"{nbytes} bytes is not a page size the engine models")
