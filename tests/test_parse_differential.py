"""mmucore.parse against the pure-Python reference (tests/reference_parse.py) on random
inputs: near-valid lines of every format, random garbage, buffers cut into random
pieces, read-only buffers, and buffers that end at an unreadable page (any read past the
end would crash the test process)."""
import ctypes
import mmap
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mmucore.parse import parse_text

import reference_parse as ref

WS = st.sampled_from([b" ", b"  ", b"\t", b" \t "])
OWS = st.sampled_from([b"", b"", b" ", b"\t", b"  "])
EOL = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b" \n", b"\t\r\n", b"\r\r\n"])
HEXDIGITS = b"0123456789abcdefABCDEF"


@st.composite
def hexnum(draw, max_digits=18):
    n = draw(st.integers(1, max_digits))
    digits = bytes(draw(st.lists(st.sampled_from(HEXDIGITS), min_size=n, max_size=n)))
    if draw(st.integers(0, 4)) == 0:
        digits = b"0" * draw(st.integers(1, 6)) + digits
    prefix = draw(st.sampled_from([b"", b"", b"0x", b"0X"]))
    return prefix + digits


@st.composite
def smallhex(draw):
    return draw(st.sampled_from([b"", b"0x", b"0X"])) + b"%x" % draw(
        st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8, 16, 0xFFFF, 0x10000, 0x123456]))


DEC = st.one_of(st.integers(0, 70000).map(lambda v: b"%d" % v),
                st.sampled_from([b"007", b"65535", b"65536", b"", b"x"]))
GARBAGE = st.binary(max_size=12)


@st.composite
def lackey_line(draw):
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        letter = draw(st.sampled_from([b"I", b"L", b"S", b"M", b"I", b"L", b"l", b"X"]))
        return (draw(OWS) + letter + draw(WS) + draw(hexnum()) + draw(OWS) + b","
                + draw(OWS) + draw(DEC) + draw(OWS) + draw(EOL))
    if kind == 6:
        return draw(OWS) + b"SB" + draw(WS) + draw(hexnum()) + draw(OWS) + draw(EOL)
    if kind == 7:
        c = draw(st.sampled_from(b"=-+*?>#"))
        return (b">" * draw(st.integers(0, 2)) + bytes([c]) * draw(st.integers(1, 2))
                + b"12345== Lackey" + draw(EOL))
    if kind == 8:
        return draw(OWS) + draw(EOL)
    return draw(GARBAGE) + draw(EOL)


@st.composite
def din_line(draw):
    kind = draw(st.integers(0, 5))
    if kind <= 3:
        rest = draw(st.sampled_from([b"", b"", b" comment", b"\tx y", b"junk"]))
        return (draw(OWS) + draw(smallhex()) + draw(WS) + draw(hexnum()) + rest + draw(EOL))
    if kind == 4:
        return draw(OWS) + draw(EOL)
    return draw(GARBAGE) + draw(EOL)


@st.composite
def xdin_line(draw):
    kind = draw(st.integers(0, 5))
    if kind <= 3:
        letter = draw(st.sampled_from(list(b"rwimcvRWIMCVxq0")))
        rest = draw(st.sampled_from([b"", b"", b" comment", b"\tx", b"junk"]))
        return (draw(OWS) + bytes([letter]) + draw(WS) + draw(hexnum()) + draw(WS)
                + draw(smallhex()) + rest + draw(EOL))
    if kind == 4:
        return draw(OWS) + draw(EOL)
    return draw(GARBAGE) + draw(EOL)


PTRS = st.one_of(hexnum(), st.sampled_from([b"(nil)", b"(nil", b"(nul)"]))


@st.composite
def pin_line(draw):
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        tail = b""
        t = draw(st.integers(0, 3))
        if t >= 1:
            tail = draw(WS) + draw(DEC)
        if t >= 2:
            tail += draw(WS) + draw(st.sampled_from([b"0x1234", b"", b"1 2 3"]))
        return (draw(OWS) + draw(PTRS) + draw(OWS) + b":" + draw(OWS)
                + draw(st.sampled_from([b"R", b"W", b"R", b"W", b"r", b"P"])) + draw(WS)
                + draw(PTRS) + tail + draw(OWS) + draw(EOL))
    if kind == 6:
        return draw(OWS) + draw(st.sampled_from([b"#eof", b"#eof", b"#eofx", b"#", b"# x"])) \
            + draw(OWS) + draw(EOL)
    if kind == 7:
        return draw(OWS) + draw(EOL)
    return draw(GARBAGE) + draw(EOL)


LINES = {0: lackey_line(), 1: din_line(), 2: xdin_line(), 3: pin_line()}


@st.composite
def text_of(draw, fmt):
    lines = draw(st.lists(LINES[fmt], max_size=25))
    text = b"".join(lines)
    if text and draw(st.booleans()):                # often: a last line without '\n'
        text = text[:len(text) - draw(st.integers(1, min(len(text), 8)))]
    return text


def check(fmt, buf, final, cap, skip_errors):
    addr = np.zeros(cap, np.uint64)
    op = np.zeros(cap, np.uint8)
    size = np.zeros(cap, np.uint16)
    r = parse_text(fmt, buf, final, addr, op, size, skip_errors)
    n = r.n_records
    got = (list(zip(addr[:n].tolist(), op[:n].tolist(), size[:n].tolist())), tuple(r),
           r.eof_seen, r.ignored)
    want = ref.parse_text(fmt, bytes(buf), final, cap, skip_errors)
    assert got == want
    return r


@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["lackey", "din", "xdin", "pinatrace"])
@given(data=st.data())
def test_random_lines_match_the_reference(fmt, data):
    text = data.draw(text_of(fmt))
    final = data.draw(st.booleans())
    cap = data.draw(st.one_of(st.just(64), st.integers(0, 30)))
    skip = data.draw(st.booleans())
    check(fmt, text, final, cap, skip)


ALPHABET = st.sampled_from(list(b"0123456789abcdefxX ILSMBRWrwimcv:,#eo(nil)=-*>\t\r\n\n\n"
                                b"\x00\xff"))


@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["lackey", "din", "xdin", "pinatrace"])
@given(garbage=st.one_of(st.binary(max_size=300),
                         st.lists(ALPHABET, max_size=300).map(bytes)),
       final=st.booleans(), skip=st.booleans(), cap=st.integers(0, 40))
def test_random_garbage_matches_the_reference(fmt, garbage, final, skip, cap):
    r = check(fmt, garbage, final, cap, skip)
    assert 0 <= r.consumed_bytes <= len(garbage)
    if r.err_offset >= 0:
        assert r.err_offset == r.consumed_bytes and not skip


def parse_in_pieces(fmt, text, cuts, cap, skip_errors):
    """Drive parse_text as a streaming reader does: feed the text in pieces cut at
    `cuts`, carry the unconsumed tail into the next buffer, drain full outputs.
    Returns (records, lines, skipped, absolute err offset or -1, eof_seen, ignored)."""
    bounds = [0] + sorted(cuts) + [len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    carry, base = b"", 0
    records, lines, skipped, ignored = [], 0, 0, 0
    addr = np.zeros(cap, np.uint64)
    op = np.zeros(cap, np.uint8)
    size = np.zeros(cap, np.uint16)
    for i, piece in enumerate(pieces):
        buf = carry + piece
        final = i == len(pieces) - 1
        while True:
            r = parse_text(fmt, buf, final, addr, op, size, skip_errors)
            n = r.n_records
            records += zip(addr[:n].tolist(), op[:n].tolist(), size[:n].tolist())
            lines += r.lines
            skipped += r.skipped
            ignored += r.ignored
            if r.err_offset >= 0:
                return records, lines, skipped, base + r.err_offset, False, ignored
            if r.eof_seen:
                return records, lines, skipped, -1, True, ignored
            buf = buf[r.consumed_bytes:]
            base += r.consumed_bytes
            if n < cap:                 # not stopped by full outputs: needs more input
                break
        carry = buf
    assert carry == b"" or not final
    return records, lines, skipped, -1, False, ignored


@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["lackey", "din", "xdin", "pinatrace"])
@given(data=st.data())
def test_parsing_in_pieces_equals_parsing_at_once(fmt, data):
    text = data.draw(text_of(fmt))
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=6))
    cap = data.draw(st.integers(1, 8))
    skip = data.draw(st.booleans())
    once_recs, once, eof, ignored = ref.parse_text(fmt, text, True, 10**6, skip)
    got = parse_in_pieces(fmt, text, cuts, cap, skip)
    assert got == (once_recs, once[2], once[3], once[4], eof, ignored)


SAMPLES = {
    0: b"==1== Lackey\nI  0400d7d4,3\n L 1ffefffd68,8\n S 04,4\nSB 10\n M 0x10,2\nI  1,1",
    1: b"0 1000\n1 2003 c\n4 0\n2 ABCD\n3 10",
    2: b"r 1000 4\nw 2000 8\nc 0 0\ni 3000 2",
    3: b"#\n0x1: R 0x10\n0x2: W 0x20 8 0x1\n#eof\n",
}


@pytest.mark.parametrize("kind", ["memmap", "readonly"])
@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["lackey", "din", "xdin", "pinatrace"])
def test_read_only_and_memmapped_input(fmt, kind, to_input, writable):
    text = SAMPLES[fmt]
    buf = to_input(np.frombuffer(text, np.uint8), kind=kind)
    assert buf.flags.writeable == writable
    want = ref.parse_text(fmt, text, True, 16, False)
    addr, op, size = np.zeros(16, np.uint64), np.zeros(16, np.uint8), np.zeros(16, np.uint16)
    r = parse_text(fmt, buf, True, addr, op, size)
    n = r.n_records
    assert n > 0
    assert (list(zip(addr[:n].tolist(), op[:n].tolist(), size[:n].tolist())), tuple(r),
            r.eof_seen, r.ignored) == want
    # also bytes (read-only buffer protocol) and memoryview / bytearray
    for other in (text, memoryview(text), bytearray(text)):
        assert tuple(parse_text(fmt, other, True, addr, op, size)) == want[1]


@pytest.fixture(scope="module")
def guarded_page():
    """A readable page followed by an inaccessible one: `place(data)` returns a read-only
    uint8 array holding `data` that ends exactly at the inaccessible page."""
    if not sys.platform.startswith("linux"):
        pytest.skip("needs mprotect (Linux)")
    page = mmap.PAGESIZE
    mm = mmap.mmap(-1, 2 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(ctypes.c_void_p(base + page), page, 0) == 0   # PROT_NONE
    whole = np.frombuffer(mm, np.uint8)

    def place(data):
        assert len(data) <= page
        whole[page - len(data):page] = np.frombuffer(data, np.uint8)
        view = whole[page - len(data):page]
        view.flags.writeable = False
        return view

    yield place
    del whole
    # the mapping stays alive until the interpreter exits: the buffer exports above may
    # still be referenced by hypothesis' example database objects


@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["lackey", "din", "xdin", "pinatrace"])
@given(data=st.data())
def test_no_read_past_the_end_of_the_buffer(fmt, data, guarded_page):
    text = data.draw(st.one_of(text_of(fmt), st.lists(ALPHABET, max_size=200).map(bytes)))
    buf = guarded_page(text)
    for final in (False, True):
        for skip in (False, True):
            check(fmt, buf, final, 64, skip)


@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["lackey", "din", "xdin", "pinatrace"])
def test_tails_at_the_guard_page(fmt, guarded_page):
    """Every prefix of every sample, including ones that stop right after '0', '0x', '(',
    '#', 'S', '\\r' or inside a number, ends at the unreadable page."""
    tails = [b"0", b"0x", b"0X1", b"(", b"(ni", b"(nil", b"#", b"#e", b"#eo", b"#eof",
             b"S", b"SB", b"SB ", b"I  10,", b"I  10,6", b"=", b">", b"\r", b" \r",
             b"0 10", b"r 10 4", b"0x1: R 0x2 8", b"0x1: R 0x2 8 "]
    for text in [SAMPLES[fmt][:i] for i in range(len(SAMPLES[fmt]) + 1)] + tails:
        buf = guarded_page(text)
        for final in (False, True):
            for skip in (False, True):
                check(fmt, buf, final, 64, skip)


def test_huge_lines_and_nul_bytes():
    huge = b"I  " + b"0" * 100000 + b"1,4\n" + b"\x00" * 5000 + b"\n" + b"x" * 200000
    for fmt in range(4):
        for final in (False, True):
            check(fmt, huge, final, 8, True)
            check(fmt, huge, final, 8, False)
