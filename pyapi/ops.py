"""Trace operation codes (the ``op`` column of a trace, DESIGN section 3).

>>> Op.LOAD, int(Op.KMAP)
(<Op.LOAD: 0>, 10)
"""
import enum

from mmucore._types import OPS

Op = enum.IntEnum("Op", OPS, module=__name__)
Op.__doc__ = """Operation codes of the trace ``op`` column (uint8).

>>> Op.LOAD, int(Op.STORE), Op(4), Op["INVLPG"].value
(<Op.LOAD: 0>, 1, <Op.SWITCH: 4>, 5)
"""
