"""Type stubs of mmucore._types: the codes of the type vocabulary, for Python code."""
import numpy
OPS: dict[str, int]
POLICIES: dict[str, int]
PAGE_SIZE_CODES: dict[str, int]
PAGE_SHIFTS: dict[int, int]
SIZEOF: dict[str, int]
DEBUG: bool
VADDR_DTYPE: numpy.dtype
ASID_DTYPE: numpy.dtype
