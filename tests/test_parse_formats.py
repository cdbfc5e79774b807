"""mmucore.parse on hand-written samples of every text format (docs/traces.md, "Text
formats: exact parsing rules"). Every case is also checked against the pure-Python
reference (tests/reference_parse.py), so the samples pin down both."""
import numpy as np
import pytest

from mmucore.parse import (FMT_DIN, FMT_LACKEY, FMT_PINATRACE, FMT_XDIN, FORMAT_NAMES,
                           FORMATS, ParseResult, parse_bytes, parse_text)

import reference_parse as ref  # noqa: E402  (tests/ is on sys.path under pytest)

LOAD, STORE, IFETCH, MODIFY = 0, 1, 2, 3


def run(fmt, text, final=True, cap=None, skip_errors=False):
    """parse_text on `text` with `cap` output slots; checks it against the reference and
    returns (records, result)."""
    cap = (text.count(b"\n") + 2) if cap is None else cap
    addr = np.full(cap, 0xAAAA, np.uint64)
    op = np.full(cap, 0xAA, np.uint8)
    size = np.full(cap, 0xAAAA, np.uint16)
    r = parse_text(fmt, text, final, addr, op, size, skip_errors)
    n = r.n_records
    recs = list(zip(addr[:n].tolist(), op[:n].tolist(), size[:n].tolist()))
    want_recs, want, eof, ignored = ref.parse_text(fmt, text, final, cap, skip_errors)
    assert (recs, tuple(r), r.eof_seen, r.ignored) == (want_recs, want, eof, ignored)
    # the contract's invariants
    assert 0 <= r.consumed_bytes <= len(text)
    assert r.consumed_bytes == 0 or r.consumed_bytes == len(text) \
        or text[r.consumed_bytes - 1:r.consumed_bytes] == b"\n"
    if r.err_offset >= 0:
        assert r.consumed_bytes == r.err_offset and not skip_errors
    return recs, r


def test_constants():
    assert (FMT_LACKEY, FMT_DIN, FMT_XDIN, FMT_PINATRACE) == (0, 1, 2, 3)
    assert FORMATS == {"lackey": 0, "din": 1, "xdin": 2, "pinatrace": 3}
    assert FORMAT_NAMES == ("lackey", "din", "xdin", "pinatrace")


def test_result_is_the_contract_5_tuple():
    a, o, s = np.zeros(4, np.uint64), np.zeros(4, np.uint8), np.zeros(4, np.uint16)
    r = parse_text(FMT_LACKEY, b"I  10,1\n", True, a, o, s)
    n, consumed, lines, skipped, err = r
    assert (n, consumed, lines, skipped, err) == (1, 8, 1, 0, -1)
    assert isinstance(r, ParseResult) and isinstance(r, tuple) and len(r) == 5
    assert r == (1, 8, 1, 0, -1) and r.eof_seen is False and r.ignored == 0
    assert "eof_seen=False" in repr(r)
    import pickle
    r2 = pickle.loads(pickle.dumps(r))
    assert r2 == r and r2.eof_seen == r.eof_seen and r2.ignored == r.ignored


# ---------------------------------------------------------------------------- lackey

LK_DOC = (b"I  0023C790,2\nI  0023C792,5\n S BE80199C,4\nI  0025242B,3\n L BE801950,4\n"
          b"I  0023D476,7\n M 0025747C,1\nI  0023DC20,2\n L 00254962,1\n L BE801FB3,1\n")


def test_lackey_sample_from_lk_main_header():
    recs, r = run(FMT_LACKEY, LK_DOC)
    assert recs[:5] == [(0x23C790, IFETCH, 2), (0x23C792, IFETCH, 5), (0xBE80199C, STORE, 4),
                        (0x25242B, IFETCH, 3), (0xBE801950, LOAD, 4)]
    assert recs[6] == (0x25747C, MODIFY, 1)
    assert tuple(r) == (10, len(LK_DOC), 10, 0, -1)


def test_lackey_banners_blank_and_superblock_lines():
    text = (b"==31337== Lackey, an example Valgrind tool\n"
            b"==31337== Command: ./a.out\n"
            b"--31337-- a debug message\n"
            b"**31337** a client message\n"
            b">==1== self-hosted\n"
            b"==00:00:00:01.234 31337== with --time-stamp=yes\n"
            b"\n   \t \n"
            b"SB 04014073\n"
            b"I  04014073,3\n"
            b"  L 7FEFFF7F8,8\n"
            b"==31337== \n")
    recs, r = run(FMT_LACKEY, text)
    assert recs == [(0x4014073, IFETCH, 3), (0x7FEFFF7F8, LOAD, 8)]
    assert tuple(r) == (2, len(text), 12, 0, -1) and r.ignored == 1


@pytest.mark.parametrize("line,rec", [
    (b"I  0x0400d7d4,3", (0x400d7d4, IFETCH, 3)),
    (b"I  0X0400D7D4,3", (0x400d7d4, IFETCH, 3)),
    (b" L 1ffefffd68,8 \t ", (0x1ffefffd68, LOAD, 8)),
    (b"\t S\t04 , 16", (4, STORE, 16)),
    (b" M ffffffffffffffff,65535", (2**64 - 1, MODIFY, 65535)),
    (b" M 0000ffffffffffffffff,00001", (2**64 - 1, MODIFY, 1)),
    (b" L 0,0", (0, LOAD, 0)),
])
def test_lackey_accepted_variants(line, rec):
    for end in (b"\n", b"\r\n", b""):
        recs, r = run(FMT_LACKEY, line + end)
        assert recs == [rec] and r.consumed_bytes == len(line + end)


@pytest.mark.parametrize("line", [
    b"I  0400d7d4", b"I  0400d7d4 3", b"I 0400d7d4,", b"I  ,3", b"I0400d7d4,3",
    b"l 10,4", b"X 10,4", b"I  0x,3", b"I  0xx1,3", b"I  00x1,3", b"I  10g,3",
    b" L 10000000000000000,8",                 # 17 significant digits: > 64 bits
    b" L 10,65536", b" L 10,99999999999999999999", b" L 10,-1", b" L 10,4,",
    b" L 10,4 x", b"SB", b"SB 12 13", b"SBx 10", b"=", b"=-1=", b"> ==",
    b"I  10,3\r\r", b"\x00", b"I  10\x00,3", b"\r \r", b"\xff\xfe",
])
def test_lackey_malformed_lines(line):
    text = b"I  10,1\n" + line + b"\nI  20,1\n"
    recs, r = run(FMT_LACKEY, text)
    assert recs == [(0x10, IFETCH, 1)]
    assert tuple(r) == (1, 8, 1, 0, 8)
    recs, r = run(FMT_LACKEY, text, skip_errors=True)
    assert recs == [(0x10, IFETCH, 1), (0x20, IFETCH, 1)]
    assert tuple(r) == (2, len(text), 3, 1, -1)


def test_empty_input_and_no_complete_line():
    for fmt in range(4):
        assert tuple(run(fmt, b"")[1]) == (0, 0, 0, 0, -1)
        assert tuple(run(fmt, b"I  10,1", final=False)[1]) == (0, 0, 0, 0, -1)
        assert tuple(run(fmt, b"\n", final=False)[1]) == (0, 1, 1, 0, -1)


def test_a_line_split_across_two_buffers():
    text = b"I  0400d7d4,3\n L 1ffefffd68,8\n"
    first, second = text[:20], text[20:]
    recs1, r1 = run(FMT_LACKEY, first, final=False)
    assert recs1 == [(0x400d7d4, IFETCH, 3)] and tuple(r1) == (1, 14, 1, 0, -1)
    rest = first[r1.consumed_bytes:] + second
    recs2, r2 = run(FMT_LACKEY, rest, final=True)
    assert recs2 == [(0x1ffefffd68, LOAD, 8)] and r2.consumed_bytes == len(rest)
    # the final flag decides whether a last line without '\n' is parsed
    assert tuple(run(FMT_LACKEY, b"I  10,1\nI  20,1", final=False)[1]) == (1, 8, 1, 0, -1)
    assert tuple(run(FMT_LACKEY, b"I  10,1\nI  20,1", final=True)[1]) == (2, 15, 2, 0, -1)
    # an incomplete bad line is not an error yet; a final one is
    assert tuple(run(FMT_LACKEY, b"I  10,1\nI  2x", final=False)[1]) == (1, 8, 1, 0, -1)
    assert tuple(run(FMT_LACKEY, b"I  10,1\nI  2x", final=True)[1]) == (1, 8, 1, 0, 8)


def test_outputs_filling_up_exactly():
    text = b"I  10,1\n\nI  20,1\nI  30,1\n"
    recs, r = run(FMT_LACKEY, text, cap=2)
    assert recs == [(0x10, IFETCH, 1), (0x20, IFETCH, 1)] and tuple(r) == (2, 17, 3, 0, -1)
    recs, r = run(FMT_LACKEY, text[r.consumed_bytes:], cap=2)
    assert recs == [(0x30, IFETCH, 1)] and tuple(r) == (1, 8, 1, 0, -1)
    # full before a blank line: parsing stops there, even though it needs no slot
    assert tuple(run(FMT_LACKEY, b"I  10,1\n\n", cap=1)[1]) == (1, 8, 1, 0, -1)
    assert tuple(run(FMT_LACKEY, text, cap=0)[1]) == (0, 0, 0, 0, -1)
    # exactly as many slots as records
    assert tuple(run(FMT_LACKEY, text, cap=3)[1]) == (3, len(text), 4, 0, -1)


def test_columns_of_different_lengths_use_the_shortest():
    a, o, s = np.zeros(5, np.uint64), np.zeros(2, np.uint8), np.zeros(9, np.uint16)
    assert parse_text(FMT_LACKEY, b"I  1,1\nI  2,1\nI  3,1\n", True, a, o, s)[:2] == (2, 14)


def test_bad_arguments():
    a, o, s = np.zeros(2, np.uint64), np.zeros(2, np.uint8), np.zeros(2, np.uint16)
    with pytest.raises(ValueError, match="unknown text format code 4"):
        parse_text(4, b"", True, a, o, s)
    with pytest.raises(ValueError):
        parse_text(FMT_LACKEY, b"", True, a.astype(np.int64), o, s)
    with pytest.raises(ValueError):
        parse_text(FMT_LACKEY, np.zeros(4, np.uint16), True, a, o, s)
    with pytest.raises(ValueError, match="unknown text format 'dinero'"):
        parse_bytes("dinero", b"")


# ---------------------------------------------------------------------------- din

def test_din():
    text = (b"0 1000\n1 0x2003\n2 ABCD comment, ignored\n3 7ffd\n4 10\n5 0\n"
            b"  0x2 \t 0X12345678 more\r\n0 ffffffffffffffff\n")
    recs, r = run(FMT_DIN, text)
    assert recs == [(0x1000, LOAD, 4), (0x2000, STORE, 4), (0xABCC, IFETCH, 4),
                    (0x7FFC, LOAD, 4), (0x12345678, IFETCH, 4), (2**64 - 4, LOAD, 4)]
    assert tuple(r) == (6, len(text), 8, 0, -1) and r.ignored == 2


@pytest.mark.parametrize("line", [b"6 1000", b"10 1000", b"0 1000junk", b"0", b"0 ",
                                  b"0 0x", b"x 10", b"0,1000", b"r 1000", b"# c",
                                  b"0 10000000000000000"])
def test_din_malformed(line):
    recs, r = run(FMT_DIN, b"0 10\n" + line + b"\n0 20\n", skip_errors=True)
    assert recs == [(0x10, LOAD, 4), (0x20, LOAD, 4)] and r.skipped == 1


# ---------------------------------------------------------------------------- xdin

def test_xdin():
    text = (b"r 1000 4\nW 0x2003 0x8\ni abcd 2 comment\nm 10 1\nc 0 0\nV 20 40\n"
            b"\tR\t0X10\t0xffff\r\n")
    recs, r = run(FMT_XDIN, text)
    assert recs == [(0x1000, LOAD, 4), (0x2003, STORE, 8), (0xABCD, IFETCH, 2),
                    (0x10, LOAD, 1), (0x10, LOAD, 0xFFFF)]
    assert tuple(r) == (5, len(text), 7, 0, -1) and r.ignored == 2


@pytest.mark.parametrize("line", [b"r 1000", b"r 1000 ", b"rw 10 4", b"x 10 4", b"0 10 4",
                                  b"r 10 10000", b"r 10,4", b"r 10 4x", b"r10 4"])
def test_xdin_malformed(line):
    recs, r = run(FMT_XDIN, b"r 10 4\n" + line + b"\nw 20 4\n", skip_errors=True)
    assert recs == [(0x10, LOAD, 4), (0x20, STORE, 4)] and r.skipped == 1


# ---------------------------------------------------------------------------- pinatrace

def test_pinatrace_manual_examples():
    text = (b"0x7f3c7c1e2a93: W 0x7ffd7b0f3a68\n0x7f3c7c1e2a97: R 0x7f3c7c20ce70\n"
            b"#eof\n")
    recs, r = run(FMT_PINATRACE, text)
    assert recs == [(0x7ffd7b0f3a68, STORE, 0), (0x7f3c7c20ce70, LOAD, 0)]
    assert tuple(r) == (2, len(text), 3, 0, -1) and r.eof_seen


def test_pinatrace_simple_examples_with_sizes_and_header():
    text = (b"#\n# Memory Access Trace Generated By Pin\n#\n"
            b"0x7f3c7c1e2a93: W     0x7ffd7b0f3a68  8     0x7f3c7c1e2a98\n"
            b"0x400500: R           0x601040 16 0x00000102030405060708090a0b0c0d0e\n"
            b"0x400504: R           0x601040  8 \n"
            b"0x400508: R           0x601050  0\n"
            b"#eof\n")
    recs, r = run(FMT_PINATRACE, text)
    assert recs == [(0x7ffd7b0f3a68, STORE, 8), (0x601040, LOAD, 16), (0x601040, LOAD, 8),
                    (0x601050, LOAD, 0)]
    assert r.eof_seen and r.lines == 8


def test_pinatrace_eof_stops_and_the_rest_is_ignored():
    text = b"0x1: R 0x10\n  #eof \r\n0x2: W 0x20\ngarbage\n"
    recs, r = run(FMT_PINATRACE, text)
    assert recs == [(0x10, LOAD, 0)] and tuple(r) == (1, 21, 2, 0, -1) and r.eof_seen
    # a final '#eof' without '\n'
    recs, r = run(FMT_PINATRACE, b"0x1: R 0x10\n#eof")
    assert r.eof_seen and r.consumed_bytes == 16
    # not final: the '#eof' line is not complete yet
    recs, r = run(FMT_PINATRACE, b"0x1: R 0x10\n#eof", final=False)
    assert not r.eof_seen and r.consumed_bytes == 12
    # '#eofx' and '# eof' are comments
    recs, r = run(FMT_PINATRACE, b"#eofx\n# eof\n0x1: W 0x10\n")
    assert recs == [(0x10, STORE, 0)] and not r.eof_seen


def test_pinatrace_nil_windows_and_spacing():
    text = (b"0x400500: R (nil)\n(nil) : W 0x10\n00007FF6A1B21000: R 000000C4F2AFF7A8\n"
            b"0x1:R 0x2\n0x1: R0x2\n")
    recs, r = run(FMT_PINATRACE, text, skip_errors=True)
    assert recs == [(0, LOAD, 0), (0x10, STORE, 0), (0xC4F2AFF7A8, LOAD, 0), (2, LOAD, 0)]
    assert r.skipped == 1                        # "R" must be followed by a blank


@pytest.mark.parametrize("line", [b"0x1: X 0x10", b"0x1 R 0x10", b"0x1: R", b"0x1: R 0x10 x",
                                  b"0x1: R 0x10 8x", b"0x1: R 0x10 65536", b"(nul): R 0x1",
                                  b"0x1: r 0x10", b": R 0x10", b"0x1: R (nil)8"])
def test_pinatrace_malformed(line):
    recs, r = run(FMT_PINATRACE, b"0x1: R 0x10\n" + line + b"\n0x2: W 0x20\n",
                  skip_errors=True)
    assert recs == [(0x10, LOAD, 0), (0x20, STORE, 0)] and r.skipped == 1


# ---------------------------------------------------------------------------- parse_bytes

def test_parse_bytes():
    addr, op, size, r = parse_bytes("lackey", LK_DOC)
    assert addr.dtype == np.uint64 and op.dtype == np.uint8 and size.dtype == np.uint16
    assert len(addr) == 10 and addr[0] == 0x23C790 and r.consumed_bytes == len(LK_DOC)
    addr, op, size, r = parse_bytes(FMT_DIN, bytearray(b"0 10\n1 20"))
    assert addr.tolist() == [0x10, 0x20] and op.tolist() == [0, 1]
    addr, op, size, r = parse_bytes("din", b"")
    assert len(addr) == 0 and tuple(r) == (0, 0, 0, 0, -1)
    with pytest.raises(ValueError, match=r"line 3: malformed din line: b'9 10'"):
        parse_bytes("din", b"0 10\n\n9 10\r\n0 20\n")
    addr, op, size, r = parse_bytes("din", b"0 10\n\n9 10\r\n0 20\n", skip_errors=True)
    assert addr.tolist() == [0x10, 0x20] and r.skipped == 1
    addr, op, size, r = parse_bytes("pinatrace", b"0x1: R 0x10\n#eof\n0x1: R 0x20\n")
    assert addr.tolist() == [0x10] and r.eof_seen and r.consumed_bytes == 17
