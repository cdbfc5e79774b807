"""Type stubs of the engine module mmucore.parse (the Python-visible surface of parse.pyx)."""
from typing import NamedTuple, Union

import numpy as np
import numpy.typing as npt

FMT_LACKEY: int
FMT_DIN: int
FMT_XDIN: int
FMT_PINATRACE: int
FORMATS: dict[str, int]
FORMAT_NAMES: tuple[str, ...]
ABI_VERSION: int

class _ParseResultBase(NamedTuple):
    n_records: int
    consumed_bytes: int
    lines: int
    skipped: int
    err_offset: int

class ParseResult(_ParseResultBase):
    eof_seen: bool
    ignored: int
    def __new__(cls, n_records: int, consumed_bytes: int, lines: int, skipped: int,
                err_offset: int, eof_seen: bool = False, ignored: int = 0) -> "ParseResult": ...

_Buffer = Union[bytes, bytearray, memoryview, npt.NDArray[np.uint8]]

def parse_text(fmt: int, buf: _Buffer, final: bool, addr: npt.NDArray[np.uint64],
               op: npt.NDArray[np.uint8], size: npt.NDArray[np.uint16],
               skip_errors: bool = False) -> ParseResult: ...
def parse_bytes(fmt: Union[str, int], data: _Buffer, skip_errors: bool = False
                ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8],
                           npt.NDArray[np.uint16], ParseResult]: ...
