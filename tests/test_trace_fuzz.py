"""Hypothesis fuzzing of the trace readers: no crash on any input, only the documented
errors; generated lines read back as written; chunked reading equals whole reading
whatever the block and chunk sizes."""
import os
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import pyapi.trace as trace_mod
from pyapi.ops import Op
from pyapi.trace import FORMATS, Trace, TraceFormatError, detect_format

TEXT = ("lackey", "din", "xdin", "pinatrace")
L, S, I, M = int(Op.LOAD), int(Op.STORE), int(Op.IFETCH), int(Op.MODIFY)


@contextmanager
def file_with(data: bytes, name: str):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        yield p


@contextmanager
def blocks(read_block, piece):
    old = trace_mod._READ_BLOCK, trace_mod._PIECE, trace_mod._CHAMPSIM_BLOCK
    trace_mod._READ_BLOCK, trace_mod._PIECE = read_block, piece
    trace_mod._CHAMPSIM_BLOCK = max(1, read_block // 64)
    try:
        yield
    finally:
        trace_mod._READ_BLOCK, trace_mod._PIECE, trace_mod._CHAMPSIM_BLOCK = old


def read_all(t: Trace, n: int):
    chunks = list(t.chunks(n))
    assert all(len(c) == n for c in chunks[:-1])
    return trace_mod._concat(chunks, t.columns)


# lines built from fragments of every format, plus junk, so inputs are near-misses
FRAGMENTS = [b"I  ", b" L ", b" S ", b" M ", b"SB ", b"==12== ", b"0x", b"0X", b"ff", b"FF",
             b"1", b"0", b"9", b",", b"8", b"65536", b"ffffffffffffffffff", b" ", b"\t",
             b"\r", b"\n", b"\r\n", b": R ", b": W ", b"#eof", b"#", b"r ", b"w ", b"c ",
             b"2 ", b"5 ", b"(nil)", b"\x00", b"\xff", b"-", b"x"]
fuzz_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(FRAGMENTS), max_size=80).map(b"".join))


@given(data=fuzz_bytes, fmt=st.sampled_from(TEXT), skip=st.booleans(),
       read_block=st.integers(1, 64), n=st.integers(1, 9))
def test_text_parsers_never_crash(data, fmt, skip, read_block, n):
    with file_with(data, "f.txt") as p:
        t = Trace.open(p, format=fmt, errors="skip" if skip else "raise")
        try:
            with blocks(read_block, max(1, n // 2)):
                got = read_all(t, n)
        except TraceFormatError as e:
            assert e.path == str(p)
            if "corrupt or truncated" in str(e):     # began with a compression magic
                return
            assert not skip
            assert e.line is not None and e.line >= 1
            assert e.line <= data.count(b"\n") + 1
            return
        whole = Trace.open(p, format=fmt, errors="skip" if skip else "raise").read()
        assert got.addr.tolist() == whole.addr.tolist()
        assert got.op.tolist() == whole.op.tolist()
        assert got.size.tolist() == whole.size.tolist()
        assert len(got) <= data.count(b"\n") + 1


@given(data=fuzz_bytes)
def test_detection_never_crashes(data):
    with file_with(data, "unknown") as p:
        try:
            fmt = detect_format(p)
        except TraceFormatError as e:
            assert "cannot detect" in str(e) or "corrupt" in str(e)
            return
        assert fmt in FORMATS


hexnum = st.integers(0, (1 << 64) - 1)
spaces = st.sampled_from([" ", "  ", "\t", " \t"])
trail = st.sampled_from(["", " ", "\t", "  "])
eol = st.sampled_from(["\n", "\r\n"])


@st.composite
def hex_text(draw, value):
    digits = f"{value:x}"
    digits = digits.zfill(draw(st.integers(len(digits), 18)))
    if draw(st.booleans()):
        digits = digits.upper()
    return draw(st.sampled_from(["", "0x", "0X"])) + digits


@st.composite
def lackey_line(draw):
    op = draw(st.sampled_from([I, L, S, M]))
    addr, size = draw(hexnum), draw(st.integers(0, 65535))
    head = {I: "I" + draw(st.sampled_from(["  ", " ", "\t"])),
            L: " L" + draw(spaces), S: " S" + draw(spaces), M: " M" + draw(spaces)}[op]
    text = f"{head}{draw(hex_text(addr))},{size}{draw(trail)}{draw(eol)}"
    return text, (addr, op, size)


@st.composite
def din_line(draw):
    label = draw(st.integers(0, 3))
    addr = draw(hexnum)
    text = f"{label}{draw(spaces)}{draw(hex_text(addr))}{draw(eol)}"
    return text, (addr & ~3, {0: L, 1: S, 2: I, 3: L}[label], 4)


@st.composite
def xdin_line(draw):
    kind = draw(st.sampled_from("rwim"))
    addr, size = draw(hexnum), draw(st.integers(0, 65535))
    if draw(st.booleans()):
        kind = kind.upper()
    text = (f"{kind}{draw(spaces)}{draw(hex_text(addr))}{draw(spaces)}"
            f"{draw(hex_text(size))}{draw(eol)}")
    return text, (addr, {"r": L, "w": S, "i": I, "m": L}[kind.lower()], size)


@st.composite
def pin_line(draw):
    ip, addr = draw(hexnum), draw(hexnum)
    rw = draw(st.sampled_from("RW"))
    text = f"0x{ip:x}: {rw} 0x{addr:x}{draw(eol)}"
    return text, (addr, L if rw == "R" else S, 0)


LINES = {"lackey": lackey_line(), "din": din_line(), "xdin": xdin_line(),
         "pinatrace": pin_line()}


@given(data=st.data(), fmt=st.sampled_from(TEXT), read_block=st.integers(1, 200),
       n=st.integers(1, 20), final_newline=st.booleans(), banner=st.booleans())
def test_generated_lines_read_back(data, fmt, read_block, n, final_newline, banner):
    lines = data.draw(st.lists(LINES[fmt], max_size=40))
    text = "".join(t for t, _ in lines)
    if banner and fmt == "lackey":
        text = "==4242== Lackey\n" + text + "==4242== \n"
    if not final_newline:
        text = text.rstrip("\r\n")
    expect = [r for _, r in lines]
    with file_with(text.encode(), f"t.{fmt}") as p:
        with blocks(read_block, max(1, n - 1)):
            got = read_all(Trace.open(p), n)
    assert list(zip(got.addr.tolist(), got.op.tolist(), got.size.tolist())) == expect


@given(data=st.binary(max_size=64 * 5 + 63), read_block=st.integers(1, 300),
       n=st.integers(1, 12), skip=st.booleans())
def test_champsim_reader_never_crashes(data, read_block, n, skip):
    with file_with(data, "t.champsim") as p:
        t = Trace.open(p, errors="skip" if skip else "raise")
        records = len(data) // 64
        try:
            with blocks(read_block, n):
                got = read_all(t, n)
        except TraceFormatError as e:
            assert not skip and len(data) % 64
            assert e.offset == records * 64
            return
        assert len(data) % 64 == 0 or skip
        fields = [struct.unpack_from("<Q8x2Q4Q", data, 64 * k) for k in range(records)]
        expect = []
        for ip, d0, d1, s0, s1, s2, s3 in fields:
            expect.append((ip, I))
            expect += [(a, L) for a in (s0, s1, s2, s3) if a]
            expect += [(a, S) for a in (d0, d1) if a]
        assert list(zip(got.addr.tolist(), got.op.tolist())) == expect


@given(data=st.binary(max_size=100), read_block=st.integers(1, 40), n=st.integers(1, 5))
def test_raw_reader(data, read_block, n):
    with file_with(data, "t.raw") as p:
        expect = np.frombuffer(data[: len(data) // 8 * 8], "<u8").tolist()
        try:
            with blocks(read_block, n):
                got = read_all(Trace.open(p), n)
        except TraceFormatError as e:
            assert len(data) % 8 and e.offset == len(data) // 8 * 8
            return
        assert got.addr.tolist() == expect


@given(addr=st.lists(hexnum, max_size=60), data=st.data(), n=st.integers(1, 17))
def test_lackey_writer_round_trip(addr, data, n):
    k = len(addr)
    op = data.draw(st.lists(st.sampled_from([L, S, I, M]), min_size=k, max_size=k))
    size = data.draw(st.lists(st.integers(0, 65535), min_size=k, max_size=k))
    t = Trace.from_arrays(np.array(addr, np.uint64), op=np.array(op, np.uint8),
                          size=np.array(size, np.uint16))
    with tempfile.TemporaryDirectory() as d:
        p = t.to_lackey(os.path.join(d, "x.lackey"), chunk=n)
        back = read_all(Trace.open(p), n)
        native = Trace.convert(p, os.path.join(d, "n"), chunk=n).read()
    for got in (back, native):
        assert got.addr.tolist() == addr and got.op.tolist() == op
        assert got.size.tolist() == size
