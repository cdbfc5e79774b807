"""Traces: open, detect, read in chunks, convert and write (DESIGN section 3).

A :class:`Trace` is a re-readable source of :class:`~pyapi.chunk.TraceChunk` objects. It
never holds a whole file in memory: ``Trace.chunks(n)`` reads (and decompresses) the file
block by block and yields chunks of exactly ``n`` accesses (the last one shorter).

Formats (``docs/traces.md`` gives each one's layout and source):

=================== ============================================================ =========
name                what                                                         columns
=================== ============================================================ =========
native              folder of ``.npy`` columns + ``meta.json`` (memory-mapped)   all
raw                 little-endian uint64 addresses (``.bin``, ``.raw``)          addr
lackey              Valgrind ``--tool=lackey --trace-mem=yes`` text              addr op size
din                 Dinero IV classic din text (``label address``)               addr op size
xdin                Dinero IV extended din text (``r|w|i|m|c|v address size``)   addr op size
pinatrace           Pin ``pinatrace.out`` text (``ip: R|W ea``, ``#eof``)        addr op size
champsim            ChampSim binary, 64-byte ``input_instr`` records             addr op
champsim-cloudsuite ChampSim binary, 96-byte ``cloudsuite_instr`` records        addr op task
                    (ChampSim's ``-c``; ``.cloudsuite``, or "cloudsuite" in the
                    name of a ChampSim-named or binary file)
=================== ============================================================ =========

Text and binary files may be compressed: ``.gz``, ``.bz2``, ``.xz``/``.lzma`` (standard
library) and ``.zst`` (``pip install "mmucore[zstd]"``) are decompressed as streams.

>>> import numpy as np
>>> t = Trace.from_arrays(np.array([0x1000, 0x2008, 0x1010], dtype=np.uint64),
...                       op=np.array([Op.IFETCH, Op.LOAD, Op.STORE], dtype=np.uint8))
>>> len(t), [len(c) for c in t.chunks(2)]
(3, [2, 1])
>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> _ = t.to_lackey(os.path.join(d, "run.lackey"))
>>> print(open(os.path.join(d, "run.lackey")).read(), end="")
I  00001000,0
 L 00002008,0
 S 00001010,0
>>> native = Trace.convert(t, os.path.join(d, "run.trace"))
>>> native.format, len(native), native.read().addr.tolist() == t.read().addr.tolist()
('native', 3, True)
"""
from __future__ import annotations

import bz2
import datetime
import errno
import gzip
import inspect
import json
import lzma
import mmap
import os
import re
import shutil
import struct
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
from numpy.lib import format as npy_format

from pyapi.chunk import COLUMN_DTYPES, TraceChunk
from pyapi.ops import Op

__all__ = ["Trace", "TraceFormatError", "as_trace", "detect_format", "bundled_traces",
           "open_bundled", "FORMATS", "CHAMPSIM_DTYPE", "CLOUDSUITE_DTYPE",
           "NATIVE_FORMAT", "NATIVE_VERSION", "DEFAULT_CHUNK"]

#: Names accepted by ``Trace.open(path, format=...)``.
FORMATS = ("native", "raw", "lackey", "din", "xdin", "pinatrace", "champsim",
           "champsim-cloudsuite")
TEXT_FORMATS = ("lackey", "din", "xdin", "pinatrace")
BINARY_FORMATS = ("raw", "champsim", "champsim-cloudsuite")

#: Default number of accesses per chunk.
DEFAULT_CHUNK = 1 << 20

#: ``meta.json`` ``"format"`` value and version of the native on-disk form.
NATIVE_FORMAT = "mmucore-trace"
NATIVE_VERSION = 1

#: One ChampSim ``input_instr`` record (``inc/trace_instruction.h`` of ChampSim/ChampSim:
#: ``unsigned long long ip; unsigned char is_branch, branch_taken,
#: destination_registers[2], source_registers[4]; unsigned long long
#: destination_memory[2], source_memory[4];`` = 64 bytes, x86-64 little-endian).
CHAMPSIM_DTYPE = np.dtype([
    ("ip", "<u8"),
    ("is_branch", "u1"),
    ("branch_taken", "u1"),
    ("destination_registers", "u1", (2,)),
    ("source_registers", "u1", (4,)),
    ("destination_memory", "<u8", (2,)),
    ("source_memory", "<u8", (4,)),
])
assert CHAMPSIM_DTYPE.itemsize == 64

#: One ChampSim ``cloudsuite_instr`` record (the ``-c`` option; same header file:
#: ``unsigned long long ip; unsigned char is_branch, branch_taken,
#: destination_registers[4], source_registers[4]; unsigned long long
#: destination_memory[4], source_memory[4]; unsigned char asid[2];``). x86-64
#: alignment puts 6 padding bytes before ``destination_memory`` (offset 24) and 6 after
#: ``asid`` (the struct is 8-aligned): 96 bytes.
CLOUDSUITE_DTYPE = np.dtype({
    "names": ["ip", "is_branch", "branch_taken", "destination_registers",
              "source_registers", "destination_memory", "source_memory", "asid"],
    "formats": ["<u8", "u1", "u1", ("u1", (4,)), ("u1", (4,)), ("<u8", (4,)), ("<u8", (4,)),
                ("u1", (2,))],
    "offsets": [0, 8, 9, 10, 14, 24, 56, 88],
    "itemsize": 96,
})
assert CLOUDSUITE_DTYPE.itemsize == 96

# Record dtype of each record-based binary format.
_RECORD_DTYPES = {"champsim": CHAMPSIM_DTYPE, "champsim-cloudsuite": CLOUDSUITE_DTYPE}

_READ_BLOCK = 4 << 20          # bytes read from a (decompressed) stream at a time
_PIECE = 1 << 20               # accesses parsed into one set of output arrays
_MAX_LINE = 1 << 20            # a text line longer than this is an error
_SNIFF = 64 << 10              # bytes looked at to detect a format
_DAMAGE_STEP = 64 << 10        # bytes decompressed per stream read (see _Input.read)
_CHAMPSIM_BLOCK = 1 << 16      # records decoded at a time
_NPY_HEADER = 128              # bytes reserved for a streamed .npy header
_COLUMNS = ("addr", "op", "size", "cpu", "task")
_OPTIONAL = ("size", "cpu", "task")

_COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".xz": "xz",
                         ".lzma": "xz", ".zst": "zstd", ".zstd": "zstd"}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"),
          (b"\x28\xb5\x2f\xfd", "zstd"))
_SUFFIX_FORMATS = {".lackey": "lackey", ".din": "din", ".xdin": "xdin",
                   ".pinatrace": "pinatrace", ".bin": "raw", ".raw": "raw",
                   ".champsim": "champsim", ".champsimtrace": "champsim",
                   ".cloudsuite": "champsim-cloudsuite"}
_FORMAT_COLUMNS = {"raw": ("addr",), "lackey": ("addr", "op", "size"),
                   "din": ("addr", "op", "size"), "xdin": ("addr", "op", "size"),
                   "pinatrace": ("addr", "op", "size"), "champsim": ("addr", "op"),
                   "champsim-cloudsuite": ("addr", "op", "task")}

# Content sniffing: one regex per text format, tried on the first non-blank lines.
_HEXNUM = rb"(?:0[xX])?[0-9a-fA-F]+"
_SNIFF_RES = {
    "lackey": re.compile(rb"^[ \t]*[ILSM][ \t]+" + _HEXNUM + rb"[ \t]*,[ \t]*\d+[ \t]*$"),
    "pinatrace": re.compile(rb"^[ \t]*(?:0[xX][0-9a-fA-F]+|\(nil\))[ \t]*:[ \t]*[RW][ \t]+"
                            rb"(?:0[xX][0-9a-fA-F]+|\(nil\))(?:[ \t].*)?$"),
    "din": re.compile(rb"^[ \t]*[0-5][ \t]+" + _HEXNUM + rb"(?:[ \t].*)?$"),
    "xdin": re.compile(rb"^[ \t]*[rwimcvRWIMCV][ \t]+" + _HEXNUM + rb"[ \t]+" + _HEXNUM
                       + rb"(?:[ \t].*)?$"),
}
# Lines that say nothing about which text format it is: blank lines, comments, lackey
# "SB" lines and Valgrind messages ("==pid== ...", "--pid-- ...", "**pid** ...").
_NEUTRAL_RE = re.compile(rb"^[ \t]*$|^#|^SB[ \t]|^>*(?:==|--|\+\+|\*\*|\?\?)")
_BANNER_RE = re.compile(rb"^>*(?:==|--|\+\+|\*\*|\?\?)")

# ChampSim record -> accesses: column 0 is the ip (IFETCH), 1..4 source_memory (LOAD),
# 5..6 destination_memory (STORE).
_CHAMPSIM_OPS = np.array([Op.IFETCH] + [Op.LOAD] * 4 + [Op.STORE] * 2, dtype=np.uint8)
# cloudsuite_instr record -> accesses: the same with 4 destination_memory (columns 5..8).
_CLOUDSUITE_OPS = np.array([Op.IFETCH] + [Op.LOAD] * 4 + [Op.STORE] * 4, dtype=np.uint8)

# Lackey line prefixes by op code (LOAD, STORE, IFETCH, MODIFY).
_LACKEY_PREFIX = np.frombuffer(b" L  S I   M ", dtype=np.uint8).reshape(4, 3)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_THRESHOLDS = np.array([1 << (4 * k) for k in range(1, 16)], dtype=np.uint64)
_LACKEY_WIDTH = 3 + 16 + 1 + 5 + 1          # prefix, hex, comma, size, newline
_LACKEY_BLOCK = 1 << 16


class TraceFormatError(ValueError):
    """A trace file is malformed, truncated, or of an unknown format.

    Attributes ``path`` (the file), ``line`` (1-based line number, text formats),
    ``offset`` (byte offset, binary formats; in the decompressed stream for compressed
    files) and ``text`` (the offending line) are set where they apply, else ``None``.

    >>> e = TraceFormatError("malformed lackey line", path="run.lackey", line=3, text="X 12,4")
    >>> str(e)
    "run.lackey:3: malformed lackey line: 'X 12,4'"
    >>> isinstance(e, ValueError), e.line
    (True, 3)
    """

    def __init__(self, message: str, *, path=None, line: Optional[int] = None,
                 offset: Optional[int] = None, text: Optional[str] = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.offset = offset
        self.text = text
        where = self.path or "<trace>"
        if line is not None:
            where = f"{where}:{line}"
        if offset is not None:
            where = f"{where}: byte offset {offset}"
        msg = f"{where}: {message}"
        if text is not None:
            msg = f"{msg}: {text!r}"
        super().__init__(msg)


# ================================================================================ streams
def _compression_of(path: Path, head: bytes = b"", trust_magic: bool = True) -> Optional[str]:
    """The compression of ``path``: from its suffix, else (``trust_magic``) from the first
    bytes (gzip/bzip2/xz/zstd magic numbers)."""
    comp = _COMPRESSION_SUFFIXES.get(path.suffix.lower())
    if comp is None and trust_magic:
        for magic, name in _MAGIC:
            if head.startswith(magic):
                return name
    return comp


def _zstd_reader(raw):
    try:                                   # Python 3.14+
        from compression import zstd       # type: ignore[import-not-found]
    except ImportError:
        zstd = None
    if zstd is not None:
        return zstd.ZstdFile(raw, "rb")
    try:
        import zstandard
    except ImportError:
        raise ModuleNotFoundError(
            'reading .zst traces needs the zstandard package: pip install "mmucore[zstd]" '
            '(or pip install zstandard)', name="zstandard") from None
    return _ZstdReader(raw, zstandard.ZstdDecompressor())


class _ZstdReader:
    """A read-only stream of the frames of a Zstandard file (``zstandard`` package).

    ``ZstdDecompressor.stream_reader`` reports a file cut inside a frame as a clean end
    of the data, so a truncated trace would read as a shorter one. This reader feeds the
    frames through decompression objects; when the file ends inside a frame, it returns
    what was decoded, then raises ``EOFError`` (which the readers turn into a
    :class:`TraceFormatError`)."""

    _RAW_STEP = 64 << 10              # compressed bytes fed at a time (bounds the output)
    defers_errors = True              # decoded data is returned before the error

    def __init__(self, raw, dctx):
        self.raw = raw
        self.dctx = dctx
        self.dobj = None              # the frame being decoded, None between frames
        self.blocks = []              # decoded, not yet read (blocks[0] from self.pos)
        self.pos = 0
        self.have = 0                 # bytes in blocks, less pos
        self.done = False
        self.error = None

    def _fill(self, n: int) -> None:
        while (n < 0 or self.have < n) and not self.done:
            data = self.raw.read(self._RAW_STEP)
            if not data:
                self.done = True
                if self.dobj is not None:
                    self.error = EOFError("Compressed file ended before the end of a "
                                          "Zstandard frame was reached")
                return
            while data:
                if self.dobj is None:
                    self.dobj = self.dctx.decompressobj()
                try:
                    out = self.dobj.decompress(data)
                except Exception as exc:  # corrupt data: raised after what came before
                    self.done, self.error = True, exc
                    return
                if out:
                    self.blocks.append(out)
                    self.have += len(out)
                if self.dobj.eof:
                    data = self.dobj.unused_data
                    self.dobj = None
                else:
                    data = b""

    def read(self, n: int = -1) -> bytes:
        self._fill(n)
        if not self.have and self.error is not None:
            raise self.error
        want = self.have if n < 0 else min(n, self.have)
        parts = []
        while want:
            block = self.blocks[0]
            k = min(want, len(block) - self.pos)
            parts.append(block if (self.pos == 0 and k == len(block))
                         else block[self.pos:self.pos + k])
            self.pos += k
            self.have -= k
            want -= k
            if self.pos == len(block):
                self.blocks.pop(0)
                self.pos = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self.raw.close()


def _open_stream(path: Path, compression: Optional[str]):
    """A binary stream of ``path``'s (decompressed) content."""
    if compression is None:
        return open(path, "rb", buffering=0)
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    if compression == "zstd":
        raw = open(path, "rb")
        try:
            return _zstd_reader(raw)
        except BaseException:
            raw.close()
            raise
    raise ValueError(f"unknown compression {compression!r}")


def _open_write_stream(path: Path):
    """A binary stream writing ``path``, compressed according to its suffix."""
    comp = _COMPRESSION_SUFFIXES.get(path.suffix.lower())
    if comp is None:
        return open(path, "wb")
    if comp == "gzip":
        return gzip.open(path, "wb", compresslevel=6)
    if comp == "bz2":
        return bz2.open(path, "wb")
    if comp == "xz":
        return lzma.open(path, "wb", preset=1)
    try:
        import zstandard
    except ImportError:
        raise ModuleNotFoundError(
            'writing .zst traces needs the zstandard package: pip install "mmucore[zstd]"',
            name="zstandard") from None
    return zstandard.ZstdCompressor(level=3).stream_writer(open(path, "wb"), closefd=True)


class _Input:
    """Reads a (decompressed) file in blocks; a corrupt or cut compressed stream becomes
    a :class:`TraceFormatError` naming the file and the offset in the decompressed data.

    The data decompressed before the damage is returned first (a short read); the error
    is raised by the next call, so readers deliver everything before it."""

    def __init__(self, path: Path, compression: Optional[str]):
        self.path = path
        self.compression = compression
        self.offset = 0
        self.error: Optional[TraceFormatError] = None
        self.stream = _open_stream(path, compression)

    def _damage(self, exc) -> Optional[TraceFormatError]:
        if self.compression is None or not isinstance(
                exc, (EOFError, OSError, lzma.LZMAError, ValueError)) \
                and type(exc).__name__ != "ZstdError":
            return None
        return TraceFormatError(
            f"corrupt or truncated {self.compression} stream after {self.offset} "
            f"decompressed bytes: {exc}", path=self.path)

    def read(self, nbytes: int) -> bytes:
        if self.error is not None:
            raise self.error
        parts, got = [], 0
        # compressed streams in small steps: a step that fails loses what it had
        # decompressed, so at most _DAMAGE_STEP bytes before the damage go unread
        step = (nbytes if self.compression is None
                or getattr(self.stream, "defers_errors", False) else _DAMAGE_STEP)
        while got < nbytes:
            try:
                data = self.stream.read(min(step, nbytes - got))
            except Exception as exc:
                self.offset += got
                err = self._damage(exc)
                if err is None:
                    raise
                if not got:
                    raise err from None
                self.error = err               # raised by the next read
                return b"".join(parts)
            if not data:
                break
            parts.append(data)
            got += len(data)
        self.offset += got
        return b"".join(parts)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()


def _base_suffix(path: Path) -> str:
    """The suffix of ``path`` once a compression suffix is removed (``.lackey`` for
    ``run.lackey.xz``)."""
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix in _COMPRESSION_SUFFIXES:
        name = name[: -len(suffix)]
    return os.path.splitext(name)[1]


def _missing(path: Path):
    return FileNotFoundError(errno.ENOENT, "trace file not found", str(path))


# ============================================================================= detection
def _sniff_text(sample: bytes) -> Optional[str]:
    """The text format every meaningful line of ``sample`` matches, or None."""
    lines = sample.split(b"\n")
    if len(sample) >= _SNIFF and len(lines) > 1:
        lines = lines[:-1]                       # the last line may be cut
    votes = dict.fromkeys(_SNIFF_RES, 0)
    seen = 0
    banner = False
    for line in lines[:400]:
        line = line.rstrip(b"\r")
        if _NEUTRAL_RE.match(line):
            banner = banner or bool(_BANNER_RE.match(line))
            continue
        seen += 1
        for name, rx in _SNIFF_RES.items():
            if rx.match(line):
                votes[name] += 1
    if seen == 0:
        return "lackey" if banner else None
    best = max(votes, key=votes.get)
    # Decisive: the best format explains most lines and clearly more than any other.
    if votes[best] * 10 >= seen * 9 and sorted(votes.values())[-2] < votes[best]:
        return best
    return None


def _looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    text = sum(1 for b in sample[:4096] if 32 <= b < 127 or b in (9, 10, 13))
    return text < 0.95 * min(len(sample), 4096)


def _names_cloudsuite(path: Path) -> bool:
    """Whether the file name contains ``cloudsuite`` (any case)."""
    return "cloudsuite" in path.name.lower()


def detect_format(path) -> str:
    """The format of the trace at ``path``, from its suffix and content.

    Rules, in order:

    1. a directory (or a ``meta.json`` file) is ``native``;
    2. after removing a compression suffix (``.gz .bz2 .xz .lzma .zst``): ``.bin``/``.raw``
       is ``raw``, ``.cloudsuite`` is ``champsim-cloudsuite``, and
       ``.champsim``/``.champsimtrace`` is ``champsim``, or ``champsim-cloudsuite`` when
       the file name contains ``cloudsuite`` (any case);
    3. otherwise the first 64 KiB (decompressed) are sniffed: text whose lines match one
       text format (lackey ``I  ``/`` L ``, pinatrace ``0x..: R 0x..``, din ``2 4a0``,
       xdin ``r 4a0 4``; ``==pid==`` banners, ``#`` comments and blank lines are neutral)
       is that format; binary content whose name contains ``cloudsuite`` (and whose
       suffix names no other format) is ``champsim-cloudsuite``, else binary content
       with a ``.trace`` suffix is ``champsim``;
    4. text the sniffer cannot decide (e.g. an empty file) takes the format its suffix
       names (``.lackey .din .xdin .pinatrace``, or the name ``pinatrace.out``);
    5. anything else is a :class:`TraceFormatError` listing the formats.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "run.txt")
    >>> _ = open(p, "w").write("==12== Lackey\\nI  04001000,3\\n L 7ff000008,8\\n")
    >>> detect_format(p)
    'lackey'
    """
    path = Path(path)
    if path.is_dir() or path.name == "meta.json":
        return "native"
    if not path.exists():
        raise _missing(path)
    base = _base_suffix(path)
    by_suffix = _SUFFIX_FORMATS.get(base)
    if by_suffix == "champsim" and _names_cloudsuite(path):
        return "champsim-cloudsuite"
    if by_suffix in BINARY_FORMATS:
        return by_suffix
    with open(path, "rb") as f:
        head = f.read(16)
    comp = _compression_of(path, head)
    with _Input(path, comp) as stream:
        sample = stream.read(_SNIFF)
    if path.name.lower().startswith("pinatrace") and by_suffix is None:
        by_suffix = "pinatrace"
    if _looks_binary(sample):
        if by_suffix is not None:
            return by_suffix
        if _names_cloudsuite(path):
            return "champsim-cloudsuite"
        if base == ".trace":
            return "champsim"
        raise _undetectable(path, "binary content with no suffix naming a binary format")
    found = _sniff_text(sample)
    if found is not None:
        return found
    if by_suffix is not None:
        return by_suffix
    what = "an empty file" if not sample.strip() else "text matching no known format"
    raise _undetectable(path, what)


def _undetectable(path, what):
    return TraceFormatError(
        f"cannot detect the trace format ({what}); known formats: {', '.join(FORMATS)}. "
        f"Force one with Trace.open(path, format=\"lackey\") (or raw/champsim/"
        f"champsim-cloudsuite/...), or name the file with a suffix such as .lackey, .din, "
        f".xdin, .pinatrace, .bin, .champsim, .cloudsuite", path=path)


# ================================================================================ pieces
def _rechunk(pieces: Iterable[TraceChunk], n: int) -> Iterator[TraceChunk]:
    """Chunks of exactly ``n`` accesses (the last shorter) from pieces of any size.
    Pieces that already line up are passed on (or sliced) without copying. When the
    source fails (a malformed line, a truncated record), what it delivered before is
    yielded first, then the error is raised."""
    pending, have = [], 0
    it = iter(pieces)
    while True:
        try:
            piece = next(it)
        except StopIteration:
            break
        except Exception:
            if have:
                yield pending[0] if len(pending) == 1 else TraceChunk.concat(pending)
            raise
        if not len(piece):
            continue
        start = 0
        if pending:
            # complete the pending chunk with only what it needs from this piece: a huge
            # piece (a memory map) is then sliced, never copied as a whole
            need = n - have
            if len(piece) < need:
                pending.append(piece)
                have += len(piece)
                continue
            pending.append(piece[:need])
            yield TraceChunk.concat(pending)
            pending, have = [], 0
            start = need
        while len(piece) - start >= n:
            yield piece[start:start + n]
            start += n
        if start < len(piece):
            pending, have = [piece[start:]], len(piece) - start
    if have:
        yield pending[0] if len(pending) == 1 else TraceChunk.concat(pending)


def _concat(chunks, columns) -> TraceChunk:
    """``TraceChunk.concat``, except that an empty trace still has the optional
    ``columns`` its source declares (as empty arrays)."""
    if chunks:
        return TraceChunk.concat(chunks)
    return TraceChunk(np.zeros(0, np.uint64), **{
        c: np.zeros(0, COLUMN_DTYPES[c]) for c in _OPTIONAL if c in columns})


def _as_piece(item, index: int) -> TraceChunk:
    if isinstance(item, TraceChunk):
        return item
    if isinstance(item, np.ndarray):
        return TraceChunk(item)
    raise TypeError(f"chunk {index} is a {type(item).__name__}; a trace source must yield "
                    f"TraceChunk objects (or 1-D uint64 address arrays)")


class _Counter:
    """Counts the accesses of one pass and what it skipped."""

    __slots__ = ("records", "skipped", "ignored")

    def __init__(self):
        self.records = 0
        self.skipped = 0
        self.ignored = 0


# =============================================================================== readers
def _parse_module():
    try:
        from mmucore import parse
    except ImportError as exc:
        raise ImportError(
            "text traces need the engine module mmucore.parse, which is not built; build "
            "it with: MMUCORE_MODULES=parse python setup.py build_ext --inplace "
            f"({exc})") from None
    return parse


def _line_text(buf: np.ndarray, start: int) -> str:
    end = start
    nl = np.flatnonzero(buf[start:start + 4096] == 10)
    end = start + (int(nl[0]) if nl.size else min(len(buf) - start, 4096))
    text = bytes(buf[start:end]).rstrip(b"\r").decode("utf-8", "backslashreplace")
    return text if len(text) <= 200 else text[:200] + "..."


def _text_pieces(path: Path, fmt: str, compression, errors: str, n: int,
                 counter: _Counter) -> Iterator[TraceChunk]:
    parse = _parse_module()
    code = parse.FORMATS[fmt]
    skip = errors == "skip"
    cap = max(1, _PIECE)                         # independent of n: chunks(1) stays fast
    addr = np.empty(cap, np.uint64)
    op = np.empty(cap, np.uint8)
    size = np.empty(cap, np.uint16)
    fill = 0
    buf = np.zeros(0, np.uint8)
    pos = 0
    eof = False
    need_more = True
    line_no = 0                                  # lines consumed so far

    def piece(k):
        return TraceChunk(addr[:k], op[:k], size[:k])

    with _Input(path, compression) as stream:
        while True:
            if not eof and (need_more or len(buf) - pos < _READ_BLOCK // 2):
                try:
                    data = stream.read(_READ_BLOCK)
                except TraceFormatError:           # damaged compressed data
                    if fill:
                        yield piece(fill)
                    raise
                if len(data) < _READ_BLOCK and stream.error is None:
                    eof = True
                if data:
                    rest = buf[pos:]
                    buf = np.empty(len(rest) + len(data), np.uint8)
                    buf[:len(rest)] = rest
                    buf[len(rest):] = np.frombuffer(data, np.uint8)
                    pos = 0
            view = buf[pos:]
            res = parse.parse_text(code, view, eof, addr[fill:], op[fill:], size[fill:], skip)
            nrec, consumed, lines, skipped, err = (int(x) for x in res[:5])
            ended = bool(getattr(res, "eof_seen", False))
            counter.ignored += int(getattr(res, "ignored", 0))
            if err >= 0 and not skip:
                fill += nrec
                counter.records += nrec
                if fill:
                    yield piece(fill)
                line = line_no + int(np.count_nonzero(view[:err] == 10)) + 1
                raise TraceFormatError(f"malformed {fmt} line", path=path, line=line,
                                       text=_line_text(view, err))
            fill += nrec
            counter.records += nrec
            counter.skipped += skipped
            line_no += lines
            pos += consumed
            if fill == cap:
                yield piece(fill)
                addr = np.empty(cap, np.uint64)
                op = np.empty(cap, np.uint8)
                size = np.empty(cap, np.uint16)
                fill = 0
            if ended or (eof and pos >= len(buf)):
                break
            need_more = consumed == 0 and nrec == 0
            if need_more:
                if eof:
                    raise TraceFormatError(
                        f"the {fmt} parser stopped without progress", path=path,
                        line=line_no + 1, text=_line_text(buf, pos))
                if len(buf) - pos > _MAX_LINE:
                    raise TraceFormatError(
                        f"no line end within {_MAX_LINE} bytes: not a {fmt} text trace "
                        f"(binary data?)", path=path, line=line_no + 1)
    if fill:
        yield piece(fill)


def _decode_champsim(records: np.ndarray) -> TraceChunk:
    """Accesses of ChampSim records: per record the IFETCH of ``ip``, then a LOAD for
    each non-zero ``source_memory`` and a STORE for each non-zero ``destination_memory``,
    each in array order (the order in which ChampSim's ``ooo_model_instr`` keeps them)."""
    k = len(records)
    m = np.empty((k, 7), np.uint64)
    m[:, 0] = records["ip"]
    m[:, 1:5] = records["source_memory"]
    m[:, 5:7] = records["destination_memory"]
    keep = m != 0
    keep[:, 0] = True
    return TraceChunk(m[keep], np.broadcast_to(_CHAMPSIM_OPS, (k, 7))[keep])


def _decode_cloudsuite(records: np.ndarray) -> TraceChunk:
    """Accesses of ``cloudsuite_instr`` records: the rule of :func:`_decode_champsim` with
    4 destination operands; ``task`` is ``asid[0]`` for the IFETCH and ``asid[1]`` for
    the loads and stores (how ChampSim tagged instruction and data translations of
    CloudSuite traces: ``docs/traces.md``)."""
    k = len(records)
    m = np.empty((k, 9), np.uint64)
    m[:, 0] = records["ip"]
    m[:, 1:5] = records["source_memory"]
    m[:, 5:9] = records["destination_memory"]
    keep = m != 0
    keep[:, 0] = True
    idx = np.flatnonzero(keep)                 # row-major: record order, then column
    rec, col = np.divmod(idx, 9)
    task = records["asid"].astype(np.uint32)[rec, (col != 0).astype(np.intp)]
    return TraceChunk(m.ravel()[idx], _CLOUDSUITE_OPS[col], task=task)


_DECODERS = {"champsim": _decode_champsim, "champsim-cloudsuite": _decode_cloudsuite}


def _truncated_hint(fmt: str, total: int) -> str:
    """A hint for a truncated ``fmt`` record when the stream's ``total`` length fits the
    other ChampSim record size (a trace of the other kind read with the wrong format)."""
    for other, dtype in _RECORD_DTYPES.items():
        if other != fmt and fmt in _RECORD_DTYPES and total % dtype.itemsize == 0:
            return (f"; the length, {total} bytes, is a multiple of {dtype.itemsize}: is it "
                    f"a {other} trace? open it with format=\"{other}\"")
    return ""


def _binary_pieces(path: Path, fmt: str, compression, errors: str,
                   counter: _Counter) -> Iterator[TraceChunk]:
    """Pieces of a raw (uint64) or ChampSim (64- or 96-byte records) file, read as a
    stream."""
    if fmt == "raw":
        itemsize, block, dtype, decode = 8, _READ_BLOCK, None, None
    else:
        dtype, decode = _RECORD_DTYPES[fmt], _DECODERS[fmt]
        itemsize = dtype.itemsize
        block = _CHAMPSIM_BLOCK * itemsize
    done = 0                                       # whole records consumed (bytes)
    rest = b""
    with _Input(path, compression) as stream:
        while True:
            data = stream.read(block)
            eof = len(data) < block and stream.error is None
            if rest:
                data = rest + data
            whole = len(data) // itemsize * itemsize
            if whole:
                if fmt == "raw":
                    values = np.frombuffer(data, "<u8", whole // 8)
                    piece = TraceChunk(values.astype(np.uint64, copy=False))
                else:
                    piece = decode(np.frombuffer(data, dtype, whole // itemsize))
                counter.records += len(piece)
                yield piece
                done += whole
            rest = data[whole:]
            if eof:
                break
    if rest:
        where = "the decompressed stream" if compression else "the file"
        if errors == "skip":
            counter.skipped += 1
            return
        raise TraceFormatError(
            f"truncated {fmt} record: {len(rest)} of {itemsize} bytes at the end of "
            f"{where} (everything before it was read)"
            + _truncated_hint(fmt, done + len(rest)), path=path, offset=done)


def _forget_pages(arr, start: int, stop: int) -> None:
    """Drop this process's mapping of the whole pages of ``arr[start:stop]`` when ``arr``
    is a read-only memory map (``madvise(MADV_DONTNEED)``): the records were consumed, so
    a long replay's resident memory stays at about a chunk, not the trace. The file's
    pages stay in the page cache, and a later access to them simply maps them again, so
    views still held by a caller keep reading the same data."""
    mm = getattr(arr, "_mmap", None)
    advise = getattr(mm, "madvise", None)
    if advise is None or stop <= start or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    except (TypeError, ValueError, BufferError):
        return
    item = arr.dtype.itemsize
    lo = arr.ctypes.data + start * item - base
    hi = arr.ctypes.data + stop * item - base
    lo += -lo % mmap.PAGESIZE                # whole pages only
    hi -= hi % mmap.PAGESIZE
    if hi > lo:
        try:
            advise(mmap.MADV_DONTNEED, lo, hi - lo)
        except (OSError, ValueError):
            pass


def _raw_memmap_pieces(p: Path, n: int, errors: str, counter: _Counter):
    """Pieces of an uncompressed raw file: views of a read-only memory map."""
    arr = _memmap_raw(p)
    for start in range(0, len(arr), n):
        piece = TraceChunk(arr[start:start + n])
        counter.records += len(piece)
        yield piece
        _forget_pages(arr, start, start + n)
    tail = p.stat().st_size % 8
    if tail:
        if errors == "skip":
            counter.skipped += 1
            return
        raise TraceFormatError(
            f"truncated raw record: {tail} of 8 bytes at the end of the file "
            f"(everything before it was read)", path=p, offset=len(arr) * 8)


def _memmap_raw(path: Path) -> np.ndarray:
    n = path.stat().st_size // 8
    if n == 0:
        return np.zeros(0, np.uint64)
    return np.memmap(path, dtype="<u8", mode="r", shape=(n,))


def _champsim_length(path: Path, fmt: str = "champsim") -> int:
    """Accesses in an uncompressed ChampSim file of ``fmt`` records (one vectorised pass,
    memory-mapped)."""
    dtype = _RECORD_DTYPES[fmt]
    k = path.stat().st_size // dtype.itemsize
    if k == 0:
        return 0
    recs = np.memmap(path, dtype=dtype, mode="r", shape=(k,))
    total = k
    for start in range(0, k, 1 << 20):
        block = recs[start:start + (1 << 20)]
        total += int(np.count_nonzero(block["source_memory"]))
        total += int(np.count_nonzero(block["destination_memory"]))
    return total


def _load_native(path: Path):
    """``(meta, {column: memmap})`` of a native trace folder, validated."""
    meta_path = path / "meta.json"
    if not path.is_dir():
        if not path.exists():
            raise _missing(path)
        raise TraceFormatError("a native trace is a folder with meta.json and .npy columns",
                               path=path)
    if not meta_path.exists():
        raise TraceFormatError("not a native trace folder: meta.json is missing (an "
                               "interrupted conversion leaves no meta.json)", path=path)
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise TraceFormatError(f"meta.json is not valid JSON: {exc}", path=meta_path) from None
    if not isinstance(meta, dict) or meta.get("format") != NATIVE_FORMAT:
        raise TraceFormatError(f"meta.json does not describe a {NATIVE_FORMAT} folder",
                               path=meta_path)
    if meta.get("version") != NATIVE_VERSION:
        raise TraceFormatError(f"native trace version {meta.get('version')!r} is not "
                               f"supported (this mmucore reads version {NATIVE_VERSION})",
                               path=meta_path)
    length = meta.get("length")
    columns = meta.get("columns")
    if not isinstance(length, int) or length < 0 or not isinstance(columns, dict) \
            or "addr" not in columns:
        raise TraceFormatError("meta.json needs an integer 'length' and a 'columns' "
                               "mapping that includes 'addr'", path=meta_path)
    arrays = {}
    for name in columns:
        if name not in COLUMN_DTYPES:
            raise TraceFormatError(f"unknown column {name!r} in meta.json", path=meta_path)
        file = path / f"{name}.npy"
        if not file.exists():
            raise TraceFormatError(f"column file {name}.npy is missing", path=path)
        try:
            arr = np.load(file, mmap_mode="r" if length else None, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise TraceFormatError(f"cannot read column {name}: {exc}", path=file) from None
        if arr.shape != (length,) or arr.dtype != COLUMN_DTYPES[name]:
            raise TraceFormatError(
                f"column {name} has shape {arr.shape} and dtype {arr.dtype}; meta.json "
                f"says ({length},) of {COLUMN_DTYPES[name]}", path=file)
        arrays[name] = arr
    return meta, arrays


# ================================================================================= Trace
class Trace:
    """A trace: a re-readable source of columnar :class:`~pyapi.chunk.TraceChunk` objects.

    Make one with :meth:`Trace.open` (a file or native folder), :meth:`Trace.from_arrays`,
    :meth:`Trace.from_chunks` or :func:`as_trace`. The constructor is the low-level hook
    for custom sources: ``pieces(n)`` must return an iterable of ``TraceChunk`` (of any
    size; ``n`` is a hint), and may be called once per pass.

    Attributes
    ----------
    format : str
        ``"native"``, ``"raw"``, ``"lackey"``, ``"din"``, ``"xdin"``, ``"pinatrace"``,
        ``"champsim"``, ``"champsim-cloudsuite"``, ``"arrays"`` or ``"chunks"``.
    path : pathlib.Path or None
        The file or folder read.
    length : int or None
        Number of accesses where it is known without reading the trace (native, raw
        uncompressed, arrays; ChampSim uncompressed, either record size, after one
        vectorised count), or after
        one complete pass; ``None`` otherwise. ``len(trace)`` raises ``TypeError`` while
        it is ``None``.
    columns : tuple of str
        Columns the source provides (``addr`` always; ``op`` defaults to LOAD).
    skipped : int
        Malformed lines (or a truncated final record) skipped by the most recent pass
        with ``errors="skip"``.
    ignored : int
        Well-formed text lines of the most recent pass that are not accesses (lackey
        ``SB``, din labels 4/5, xdin ``c``/``v``).

    Examples
    --------
    >>> import numpy as np
    >>> t = Trace.from_arrays(np.arange(5, dtype=np.uint64) * 4096)
    >>> [c.addr.tolist() for c in t.chunks(2)]
    [[0, 4096], [8192, 12288], [16384]]
    """

    def __init__(self, pieces: Optional[Callable[[int], Iterable[TraceChunk]]], *, format: str,
                 path=None, length: Optional[int] = None, columns=("addr", "op"),
                 description: str = "", errors: str = "raise"):
        self.format = format
        self.path = None if path is None else Path(path)
        self.length = length
        self.columns = tuple(columns)
        self.description = description
        self.errors = errors
        self.skipped = 0
        self.ignored = 0
        self.compression: Optional[str] = None
        self._length_fn: Optional[Callable[[], int]] = None
        # Internal sources also get the pass's counter of records and skipped input.
        self._source = None if pieces is None else (lambda n, counter: pieces(n))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def open(cls, path, format: Optional[str] = None, *, errors: str = "raise") -> "Trace":
        """Open the trace at ``path`` (a file, or a native folder).

        Nothing is read until :meth:`chunks` is called, except what detection sniffs.

        Parameters
        ----------
        path : str or os.PathLike
            The file (possibly ``.gz``/``.bz2``/``.xz``/``.zst`` compressed) or native
            trace folder.
        format : str, optional
            One of :data:`FORMATS`; default: detected (:func:`detect_format`).
        errors : {"raise", "skip"}
            What a malformed text line does: raise :class:`TraceFormatError` naming the
            file, line number and text (after the chunks before it were yielded), or be
            skipped and counted in :attr:`skipped`. ``"skip"`` also drops a truncated
            final binary record.

        Examples
        --------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "addrs.bin")
        >>> np.array([0x1000, 0xffffffffffffffff], "<u8").tofile(p)
        >>> t = Trace.open(p)
        >>> t.format, len(t), [hex(a) for a in t.read().addr]
        ('raw', 2, ['0x1000', '0xffffffffffffffff'])
        """
        if errors not in ("raise", "skip"):
            raise ValueError(f'errors must be "raise" or "skip", not {errors!r}')
        p = Path(os.fspath(path))
        if p.name == "meta.json" and (format in (None, "native")):
            p = p.parent
        if format is None:
            format = detect_format(p)
        elif format not in FORMATS:
            raise ValueError(f"unknown trace format {format!r}; known formats: "
                             f"{', '.join(FORMATS)}")
        if format == "native":
            return cls._open_native(p)
        if p.is_dir():
            raise TraceFormatError(f"a folder can only be a native trace, not {format}",
                                   path=p)
        if not p.exists():
            raise _missing(p)
        with open(p, "rb") as f:
            head = f.read(16)
        binary = format in BINARY_FORMATS
        comp = _compression_of(p, head, trust_magic=not binary)
        length = None
        length_fn = None
        if format == "raw" and comp is None:
            length = p.stat().st_size // 8
        elif format in _RECORD_DTYPES and comp is None:
            length_fn = lambda: _champsim_length(p, format)   # noqa: E731

        trace = cls(None, format=format, path=p, length=length,
                    columns=_FORMAT_COLUMNS[format],
                    description=f"{format} file {p.name}"
                                + (f" ({comp}-compressed)" if comp else ""),
                    errors=errors)
        trace.compression = comp
        trace._length_fn = length_fn

        def source(n, counter):
            if format == "raw" and comp is None:
                return _raw_memmap_pieces(p, n, errors, counter)
            if format in BINARY_FORMATS:
                return _binary_pieces(p, format, comp, errors, counter)
            return _text_pieces(p, format, comp, errors, n, counter)

        trace._source = source
        return trace

    @classmethod
    def _open_native(cls, p: Path) -> "Trace":
        meta, arrays = _load_native(p)
        length = meta["length"]

        def pieces(n):
            cols = {name: arrays.get(name) for name in _COLUMNS}
            for start in range(0, length, n):
                stop = start + n
                try:
                    chunk = TraceChunk(**{k: None if v is None else v[start:stop]
                                          for k, v in cols.items()})
                except ValueError as exc:     # e.g. an unknown op code in op.npy
                    raise TraceFormatError(f"{exc} (of the chunk starting at access "
                                           f"{start})", path=p) from None
                yield chunk
                for v in cols.values():
                    if v is not None:
                        _forget_pages(v, start, stop)

        src = meta.get("source") or {}
        desc = src.get("description", "") if isinstance(src, dict) else str(src)
        trace = cls(pieces, format="native", path=p, length=length,
                    columns=tuple(c for c in _COLUMNS if c in arrays), description=desc)
        trace.meta = meta
        trace.arrays = arrays
        return trace

    @classmethod
    def from_arrays(cls, addr, op=None, size=None, cpu=None, task=None) -> "Trace":
        """A trace of numpy columns, validated once (dtypes, equal lengths, known op
        codes) and then sliced without copying (read-only arrays and memmaps are fine).

        Examples
        --------
        >>> t = Trace.from_arrays([0x1000, 0x2000], op=[Op.STORE, Op.LOAD], cpu=[0, 1])
        >>> c = t.read()
        >>> c.op.tolist(), c.cpu.tolist(), c.size is None, t.columns
        ([1, 0], [0, 1], True, ('addr', 'op', 'cpu'))
        >>> Trace.from_arrays([1, 2], op=[0])
        Traceback (most recent call last):
        ...
        ValueError: op column: length 1, but addr has 2
        """
        whole = TraceChunk(addr, op, size, cpu, task)
        given = {"op": op, "size": size, "cpu": cpu, "task": task}
        return cls._from_chunk(whole, columns=("addr",) + tuple(
            k for k, v in given.items() if v is not None))

    @classmethod
    def _from_chunk(cls, whole: TraceChunk, columns=None) -> "Trace":
        n_total = len(whole)

        def pieces(n):
            for start in range(0, n_total, n):
                yield whole[start:start + n]

        if columns is None:
            columns = ("addr", "op") + tuple(c for c in _OPTIONAL
                                             if getattr(whole, c) is not None)
        trace = cls(pieces, format="arrays", length=n_total, columns=columns,
                    description=f"{n_total} accesses from arrays")
        trace._whole = whole
        return trace

    @classmethod
    def from_chunks(cls, source, length: Optional[int] = None) -> "Trace":
        """A trace of ``source``: an object with a ``chunks(n)`` method (a workload
        generator, another trace), a callable ``f(n)`` returning chunks, or an iterable
        of ``TraceChunk`` (a list can be read many times, an iterator or generator only
        once). Chunks of any size are re-cut to the size asked.

        Examples
        --------
        >>> parts = [TraceChunk(np.arange(3, dtype=np.uint64)),
        ...          TraceChunk(np.arange(3, 5, dtype=np.uint64))]
        >>> t = Trace.from_chunks(parts)
        >>> len(t), [c.addr.tolist() for c in t.chunks(4)]
        (5, [[0, 1, 2, 3], [4]])
        """
        if hasattr(source, "chunks") and callable(source.chunks):
            if length is None:
                try:
                    length = len(source)
                except TypeError:
                    length = None
            src = source

            def pieces(n):
                return src.chunks(n)
            spec = getattr(source, "spec", None)
            desc = f"{type(source).__name__}" + (f" {spec}" if isinstance(spec, str) else "")
        elif callable(source):
            pieces = source
            desc = f"chunks of {getattr(source, '__name__', type(source).__name__)}"
        elif isinstance(source, (list, tuple)):
            items = [_as_piece(c, i) for i, c in enumerate(source)]
            if length is None:
                length = sum(len(c) for c in items)

            def pieces(n):
                return iter(items)
            desc = f"{len(items)} chunks"
        elif hasattr(source, "__iter__"):
            it = iter(source)
            used = [False]

            def pieces(n):
                if used[0]:
                    raise RuntimeError("this trace wraps an iterator of chunks, which can "
                                       "be read only once; pass a list, or an object "
                                       "with a chunks(n) method, to read it again")
                if inspect.isgenerator(it) and \
                        inspect.getgeneratorstate(it) == inspect.GEN_CLOSED:
                    # not an empty trace: its chunks were consumed elsewhere
                    raise RuntimeError("this trace wraps a generator that is already "
                                       "exhausted (read before, e.g. through another "
                                       "as_trace of it); pass a list, or an object with "
                                       "a chunks(n) method, to read it again")
                used[0] = True
                return it
            desc = "an iterator of chunks"
        else:
            raise TypeError(f"cannot make a trace of a {type(source).__name__}")
        return cls(pieces, format="chunks", length=length, description=desc)

    # ------------------------------------------------------------------ reading
    def chunks(self, n: int = DEFAULT_CHUNK) -> Iterator[TraceChunk]:
        """Yield the trace as ``TraceChunk`` objects of exactly ``n`` accesses (the last
        one shorter), reading the file block by block.

        A malformed line or truncated record raises :class:`TraceFormatError` after the
        chunk holding everything before it was yielded.

        Examples
        --------
        >>> t = Trace.from_arrays(np.arange(10, dtype=np.uint64))
        >>> [len(c) for c in t.chunks(4)]
        [4, 4, 2]
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"chunk size must be a positive integer, got {n!r}")
        n = int(n)
        counter = _Counter()
        self.skipped = self.ignored = 0
        source = (_as_piece(c, i) for i, c in enumerate(self._source(n, counter)))
        total = 0
        try:
            for chunk in _rechunk(source, n):
                total += len(chunk)
                self.skipped, self.ignored = counter.skipped, counter.ignored
                yield chunk
        finally:
            self.skipped, self.ignored = counter.skipped, counter.ignored
        self.length = total

    def __iter__(self) -> Iterator[TraceChunk]:
        """Iterating a trace yields its chunks of :data:`DEFAULT_CHUNK` accesses."""
        return self.chunks()

    def read(self) -> TraceChunk:
        """The whole trace as one ``TraceChunk`` (it must fit in memory).

        >>> Trace.from_arrays([5, 6, 7]).read().addr.tolist()
        [5, 6, 7]
        """
        if getattr(self, "_whole", None) is not None:
            return self._whole
        return _concat(list(self.chunks()), self.columns)

    def count(self) -> int:
        """The number of accesses, reading the trace if it is not known yet.

        >>> Trace.from_arrays([1, 2, 3]).count()
        3
        """
        if self.length is None and self._length_fn is not None:
            self.length = self._length_fn()
        if self.length is None:
            self.length = sum(len(c) for c in self.chunks())
        return self.length

    def __len__(self) -> int:
        if self.length is None and self._length_fn is not None:
            self.length = self._length_fn()
        if self.length is None:
            raise TypeError(f"the length of this {self.format} trace is not known without "
                            f"reading it; use trace.length (None when unknown) or "
                            f"trace.count() (reads it once)")
        return self.length

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        where = f" {str(self.path)!r}" if self.path is not None else ""
        n = "?" if self.length is None else self.length
        return f"<Trace {self.format}{where} accesses={n} columns={','.join(self.columns)}>"

    # ------------------------------------------------------------------ writing
    def to_native(self, dst, *, chunk: int = DEFAULT_CHUNK, overwrite: bool = False) -> "Trace":
        """Write the trace as a native folder ``dst`` and return it opened.

        The columns are streamed chunk by chunk into a temporary sibling folder
        (``.NAME.partial-*``) that is renamed to ``dst`` only when everything was written;
        on any error it is removed, so a failed conversion leaves nothing that looks
        complete. ``addr.npy`` is always written, ``op.npy`` when some access is not a
        load, and ``size``/``cpu``/``task`` when the source provides them.

        Examples
        --------
        >>> import tempfile, os
        >>> d = os.path.join(tempfile.mkdtemp(), "t")
        >>> t = Trace.from_arrays([1, 2, 3], op=[0, 1, 0]).to_native(d)
        >>> sorted(os.listdir(d)), t.length
        (['addr.npy', 'meta.json', 'op.npy'], 3)
        """
        return _write_native(self, Path(os.fspath(dst)), chunk, overwrite)

    def to_lackey(self, path, *, chunk: int = DEFAULT_CHUNK, overwrite: bool = False) -> Path:
        """Write the trace as Valgrind lackey text (``.gz``/``.bz2``/``.xz``/``.zst``
        suffixes compress it) and return the path.

        Lines are written as lackey writes them: ``I  %08lx,%lu`` for IFETCH and
        `` L``/`` S``/`` M %08lx,%lu`` for LOAD/STORE/MODIFY. An unknown size (0 or no size
        column) is written as ``0``. Control operations, and CPU or task numbers other than
        0, cannot be expressed in lackey and raise ``ValueError`` naming the first one.
        The file appears only when complete (written to a temporary sibling, then renamed);
        an existing file is replaced only with ``overwrite=True`` (as in ``to_native``).

        Examples
        --------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.lackey")
        >>> _ = Trace.from_arrays([0x400000], op=[Op.MODIFY], size=[8]).to_lackey(p)
        >>> open(p).read()
        ' M 00400000,8\\n'
        >>> Trace.from_arrays([0], op=[Op.FLUSH]).to_lackey(p, overwrite=True)
        Traceback (most recent call last):
        ...
        ValueError: lackey cannot express access 0: operation FLUSH (only LOAD, STORE, ...)
        """
        path = Path(os.fspath(path))
        if path.exists() and not overwrite:
            raise FileExistsError(errno.EEXIST, "output exists (pass overwrite=True)", str(path))
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                             f"{path.suffix}")
        try:
            with _open_write_stream(tmp) as out:
                done = 0
                for c in self.chunks(chunk):
                    _check_lackey(c, done)
                    for start in range(0, len(c), _LACKEY_BLOCK):
                        out.write(_lackey_lines(c[start:start + _LACKEY_BLOCK]))
                    done += len(c)
            os.replace(tmp, path)
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise
        return path

    @staticmethod
    def convert(src, dst, *, format: Optional[str] = None, errors: str = "raise",
                to: str = "native", chunk: int = DEFAULT_CHUNK,
                overwrite: bool = False) -> "Trace":
        """Convert ``src`` (a path, or anything :func:`as_trace` takes) to ``dst`` and
        return the written trace opened.

        ``to="native"`` (default) writes a native folder (see :meth:`to_native`),
        ``to="lackey"`` a lackey text file. ``format``/``errors`` are passed to
        :meth:`Trace.open` when ``src`` is a path. A conversion that fails leaves no
        output: neither a half-written folder nor a file that looks complete.

        Examples
        --------
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> p = os.path.join(d, "a.pinatrace")
        >>> _ = open(p, "w").write("0x40051e: W 0x7ffe1234\\n0x400522: R 0x601040\\n#eof\\n")
        >>> t = Trace.convert(p, os.path.join(d, "a.native"))
        >>> [hex(a) for a in t.read().addr], t.read().op.tolist()
        (['0x7ffe1234', '0x601040'], [1, 0])
        """
        if isinstance(src, (str, os.PathLike)):
            trace = Trace.open(src, format=format, errors=errors)
        else:
            trace = as_trace(src)
        if to == "native":
            return trace.to_native(dst, chunk=chunk, overwrite=overwrite)
        if to == "lackey":
            p = Path(os.fspath(dst))
            if p.exists() and not overwrite:
                raise FileExistsError(errno.EEXIST, "output exists (pass overwrite=True)",
                                      str(p))
            return Trace.open(trace.to_lackey(p, chunk=chunk, overwrite=overwrite),
                              format="lackey")
        raise ValueError(f'to must be "native" or "lackey", not {to!r}')


def as_trace(obj) -> Trace:
    """``obj`` as a :class:`Trace`, for the engines: a Trace (returned as is), a path
    (opened, format detected), a ``TraceChunk``, a 1-D integer array (addresses of loads
    on CPU 0), an object with a ``chunks(n)`` method (workload generators), or an
    iterable of ``TraceChunk``.

    >>> t = as_trace(np.array([4096, 8192], dtype=np.uint64))
    >>> t.format, len(t), as_trace(t) is t
    ('arrays', 2, True)
    >>> as_trace(3.5)
    Traceback (most recent call last):
    ...
    TypeError: cannot use a float as a trace; pass a Trace, a path, a TraceChunk, ...
    """
    if isinstance(obj, Trace):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return Trace.open(obj)
    if isinstance(obj, TraceChunk):
        return Trace._from_chunk(obj)
    if isinstance(obj, np.ndarray):
        if obj.ndim != 1:
            raise ValueError(f"an address array must be 1-D, got shape {obj.shape}")
        return Trace.from_arrays(obj)
    if hasattr(obj, "chunks") and callable(obj.chunks):
        return Trace.from_chunks(obj)
    if hasattr(obj, "__iter__") and not isinstance(obj, (bytes, bytearray, dict)):
        return Trace.from_chunks(obj)
    raise TypeError(f"cannot use a {type(obj).__name__} as a trace; pass a Trace, a path, "
                    f"a TraceChunk, a 1-D uint64 array, an object with chunks(n), or an "
                    f"iterable of TraceChunk")


def _bundled_dir() -> Path:
    return Path(__file__).resolve().parent / "data" / "traces"


def bundled_traces() -> dict:
    """The real traces shipped with the package, by name: a dict of the manifest entries
    of ``pyapi/data/traces/MANIFEST.json`` (program, command, records by kind, pages
    touched, ...), each with its ``path`` added. They were recorded with Valgrind lackey
    by ``bench/record_traces.sh``.

    >>> info = bundled_traces()
    >>> sorted(info)[:3], info["sort"]["records"]["I"] > 10**6
    (['awk', 'gzip', 'python'], True)
    """
    import json
    manifest = _bundled_dir() / "MANIFEST.json"
    if not manifest.exists():
        raise FileNotFoundError(errno.ENOENT, "the bundled traces are missing (a source "
                                "checkout without pyapi/data/traces?)", str(manifest))
    out = {}
    for entry in json.loads(manifest.read_text())["traces"]:
        entry = dict(entry)
        entry["path"] = _bundled_dir() / entry["file"]
        out[entry["name"]] = entry
    return out


def open_bundled(name: str, **options) -> "Trace":
    """Open the bundled real trace ``name`` (see :func:`bundled_traces`).

    >>> t = open_bundled("sort")
    >>> t.format, t.compression
    ('lackey', 'xz')
    >>> open_bundled("doom")
    Traceback (most recent call last):
    ...
    ValueError: no bundled trace 'doom'; there are: awk, gzip, python, sort, sqlite3, xz
    """
    known = bundled_traces()
    if name not in known:
        raise ValueError(f"no bundled trace {name!r}; there are: {', '.join(sorted(known))}")
    return Trace.open(known[name]["path"], format="lackey", **options)


# =============================================================================== writers
def _npy_header(dtype: np.dtype, n: int) -> bytes:
    """A version 1.0 ``.npy`` header for a 1-D array of ``n`` ``dtype``, padded to exactly
    :data:`_NPY_HEADER` bytes (so it can be written after the data, in place)."""
    d = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (
        npy_format.dtype_to_descr(dtype), n)
    body_len = _NPY_HEADER - 10
    if len(d) + 1 > body_len:
        raise OverflowError("npy header does not fit")          # n < 2**64 always fits
    body = d.ljust(body_len - 1) + "\n"
    return npy_format.magic(1, 0) + struct.pack("<H", body_len) + body.encode("latin1")


class _ColumnWriter:
    """Streams one column into ``NAME.npy``: a placeholder header, the data, then the
    real header once the length is known."""

    def __init__(self, folder: Path, name: str, zeros_before: int):
        self.name = name
        self.dtype = COLUMN_DTYPES[name]
        self.file = open(folder / f"{name}.npy", "wb")
        self.file.write(_npy_header(self.dtype, 0))
        self.count = 0
        if zeros_before:
            block = np.zeros(min(zeros_before, 1 << 20), self.dtype)
            left = zeros_before
            while left:
                k = min(left, len(block))
                self.write(block[:k])
                left -= k

    def write(self, values: np.ndarray):
        self.file.write(np.ascontiguousarray(values, dtype=self.dtype.newbyteorder("<")).data)
        self.count += len(values)

    def finish(self):
        self.file.seek(0)
        self.file.write(_npy_header(self.dtype.newbyteorder("<"), self.count))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def close(self):
        self.file.close()


def _write_native(trace: Trace, dst: Path, chunk: int, overwrite: bool) -> Trace:
    if dst.exists() and not overwrite:
        raise FileExistsError(errno.EEXIST, "output exists (pass overwrite=True)", str(dst))
    if not dst.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "folder of the output does not exist",
                                str(dst.parent))
    tmp = dst.parent / f".{dst.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    writers = {}
    total = 0
    try:
        writers["addr"] = _ColumnWriter(tmp, "addr", 0)
        for c in trace.chunks(chunk):
            for name in _COLUMNS:
                col = getattr(c, name)
                if name not in writers:
                    present = col is not None and (name != "op" or bool(col.any()))
                    if not present:
                        continue
                    writers[name] = _ColumnWriter(tmp, name, total)
                w = writers[name]
                if col is None:
                    w.write(np.zeros(len(c), w.dtype))
                else:
                    w.write(col)
            total += len(c)
        if total == 0:                  # an empty trace keeps the columns of its source
            for name in _OPTIONAL:
                if name in trace.columns and name not in writers:
                    writers[name] = _ColumnWriter(tmp, name, 0)
        for w in writers.values():
            w.finish()
        meta = {
            "format": NATIVE_FORMAT,
            "version": NATIVE_VERSION,
            "length": total,
            "columns": {name: npy_format.dtype_to_descr(COLUMN_DTYPES[name].newbyteorder("<"))
                        for name in _COLUMNS if name in writers},
            "source": {"format": trace.format,
                       "path": None if trace.path is None else str(trace.path),
                       "description": trace.description},
            "skipped": trace.skipped,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
        }
        with open(tmp / "meta.json", "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        if dst.exists():
            old = dst.parent / f".{dst.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(dst, old)
            os.rename(tmp, dst)
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            os.rename(tmp, dst)
    except BaseException:
        for w in writers.values():
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Trace.open(dst, format="native")


def _check_lackey(c: TraceChunk, done: int) -> None:
    if len(c) and int(c.op.max()) > Op.MODIFY:
        i = int(np.argmax(c.op > Op.MODIFY))
        raise ValueError(f"lackey cannot express access {done + i}: operation "
                         f"{Op(int(c.op[i])).name} (only LOAD, STORE, IFETCH, MODIFY)")
    for name in ("cpu", "task"):
        col = getattr(c, name)
        if col is not None and len(col) and col.any():
            i = int(np.argmax(col != 0))
            raise ValueError(f"lackey cannot express access {done + i}: {name} "
                             f"{int(col[i])} (lackey traces have one CPU and one task)")


def _lackey_lines(c: TraceChunk) -> bytes:
    """Lackey text of ``c``'s accesses, formatted with numpy (no per-access Python)."""
    n = len(c)
    if n == 0:
        return b""
    addr = c.addr
    rows = np.empty((n, _LACKEY_WIDTH), np.uint8)
    keep = np.ones((n, _LACKEY_WIDTH), bool)
    rows[:, 0:3] = _LACKEY_PREFIX[c.op]
    ndig = np.searchsorted(_HEX_THRESHOLDS, addr, side="right") + 1   # significant digits
    width = np.maximum(ndig, 8)
    for j in range(16):                            # j = 0 is the most significant nibble
        shift = np.uint64(4 * (15 - j))
        rows[:, 3 + j] = _HEX_DIGITS[(addr >> shift) & np.uint64(15)]
        keep[:, 3 + j] = width >= 16 - j
    rows[:, 19] = ord(",")
    size = (np.zeros(n, np.uint32) if c.size is None else c.size.astype(np.uint32))
    for k in range(5):                              # k = 0 is the ten-thousands digit
        p = 10 ** (4 - k)
        rows[:, 20 + k] = 48 + (size // p) % 10
        if k < 4:
            keep[:, 20 + k] = size >= p
    rows[:, 25] = 10
    return rows[keep].tobytes()
