"""Trace readers against hand-written samples: every format, detection, compression,
chunking, and the documented errors (pyapi/trace.py, docs/traces.md)."""
import bz2
import gzip
import lzma
import shutil
import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import pyapi.trace as trace_mod
from pyapi.chunk import TraceChunk
from pyapi.ops import Op
from pyapi.trace import (CHAMPSIM_DTYPE, FORMATS, Trace, TraceFormatError, as_trace,
                         detect_format)

DATA = Path(__file__).parent / "data" / "traces"
L, S, I, M = int(Op.LOAD), int(Op.STORE), int(Op.IFETCH), int(Op.MODIFY)

# The expected content of each sample: (addr, op, size).
EXPECTED = {
    "sample.lackey": ([0x4001d70, 0x1ffefffd78, 0x4001d73, 0x4022d98, 0x4023e08, 0x4001d78,
                       0x1ffefffd70],
                      [I, S, I, L, M, I, L], [3, 8, 5, 8, 4, 2, 8]),
    # upper-case hex, trailing spaces and tabs, CRLF, 0x prefix, the largest address,
    # a tab separator, a blank line, leading zeros beyond 16 digits, no final newline
    "edge.lackey": ([0x400d7d4, 0x7ff000008, 0xffffffffffffffff, 0xdeadbeef, 0x400, 1],
                    [I, L, S, M, I, L], [3, 8, 16, 1, 65535, 2]),
    # din: label 3 (misc) is a read; 4 and 5 are ignored; addresses are word-aligned,
    # size 4 (Dinero's tracein_din); extra words after the address are ignored
    "sample.din": ([0x400d7d4, 0x7ff000008, 0x7ff000010, 0x1000, 0xfffffffffffffffc],
                   [I, L, S, L, I], [4, 4, 4, 4, 4]),
    # xdin: sizes are hex; m = read; c and v ignored; upper-case letters accepted
    "sample.xdin": ([0x400d7d4, 0x7ff000008, 0x7ff000013, 0x1000, 0x10],
                    [I, L, S, L, L], [4, 8, 16, 2, 1]),
    # pinatrace: the effective address, R/W; no size (0); nothing after #eof
    "sample.pinatrace": ([0x7ffe2d3c4b18, 0x601040, 0x7ffe2d3c4b18, 0x7ffe2d3c4b18],
                         [S, L, L, S], [0, 0, 0, 0]),
}


def columns(chunk):
    return (chunk.addr.tolist(), chunk.op.tolist(),
            None if chunk.size is None else chunk.size.tolist())


@contextmanager
def small_blocks(read_block=7, piece=3):
    """Tiny read blocks and output pieces: every line straddles a block boundary."""
    old = trace_mod._READ_BLOCK, trace_mod._PIECE, trace_mod._CHAMPSIM_BLOCK
    trace_mod._READ_BLOCK, trace_mod._PIECE, trace_mod._CHAMPSIM_BLOCK = read_block, piece, 2
    try:
        yield
    finally:
        trace_mod._READ_BLOCK, trace_mod._PIECE, trace_mod._CHAMPSIM_BLOCK = old


def compress(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    suffix = dst.suffix
    if suffix == ".gz":
        dst.write_bytes(gzip.compress(data))
    elif suffix == ".bz2":
        dst.write_bytes(bz2.compress(data))
    elif suffix == ".xz":
        dst.write_bytes(lzma.compress(data))
    elif suffix == ".zst":
        zstandard = pytest.importorskip("zstandard")
        dst.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        dst.write_bytes(data)
    return dst


# ----------------------------------------------------------------------------- text
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_read_whole(name):
    t = Trace.open(DATA / name)
    assert t.format == name.split(".")[1]
    assert columns(t.read()) == EXPECTED[name]
    assert t.length == len(EXPECTED[name][0])       # known after one complete pass
    assert t.skipped == 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("n", [1, 2, 3, 5, 1000])
def test_sample_chunked_equals_whole(name, n):
    t = Trace.open(DATA / name)
    chunks = list(t.chunks(n))
    assert all(len(c) == n for c in chunks[:-1]) and 0 < len(chunks[-1]) <= n
    assert columns(TraceChunk.concat(chunks)) == EXPECTED[name]
    with small_blocks():
        assert columns(TraceChunk.concat(list(t.chunks(n)))) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zst"])
def test_compressed_streams(tmp_path, name, suffix):
    dst = compress(DATA / name, tmp_path / (name + suffix))
    assert detect_format(dst) == name.split(".")[1]
    t = Trace.open(dst)
    assert t.compression == {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}[suffix]
    assert t.length is None
    assert columns(t.read()) == EXPECTED[name]
    with small_blocks():
        assert columns(TraceChunk.concat(list(t.chunks(2)))) == EXPECTED[name]


def test_compression_found_by_magic_without_suffix(tmp_path):
    dst = tmp_path / "run"
    dst.write_bytes(gzip.compress((DATA / "sample.lackey").read_bytes()))
    assert detect_format(dst) == "lackey"
    assert columns(Trace.open(dst).read()) == EXPECTED["sample.lackey"]


def test_detection_by_content_ignores_misleading_suffix(tmp_path):
    p = shutil.copy(DATA / "sample.pinatrace", tmp_path / "out.din")
    assert detect_format(p) == "pinatrace"
    p = shutil.copy(DATA / "sample.xdin", tmp_path / "trace.txt")
    assert detect_format(p) == "xdin"
    p = shutil.copy(DATA / "sample.din", tmp_path / "pinatrace.out")
    assert detect_format(p) == "din"


def test_detection_of_pinatrace_out_and_banner_only(tmp_path):
    p = tmp_path / "pinatrace.out"
    p.write_text("#eof\n")
    assert detect_format(p) == "pinatrace"
    assert len(Trace.open(p).read()) == 0
    p = tmp_path / "only-banner.txt"
    p.write_text("==1== Lackey, an example Valgrind tool\n==1== \n")
    assert detect_format(p) == "lackey"


def test_format_forced(tmp_path):
    p = shutil.copy(DATA / "sample.xdin", tmp_path / "whatever.dat")
    assert columns(Trace.open(p, format="xdin").read()) == EXPECTED["sample.xdin"]
    with pytest.raises(TraceFormatError, match=r"whatever.dat:1: malformed lackey line: "
                                               r"'i 0x400d7d4 4'"):
        Trace.open(p, format="lackey").read()


@pytest.mark.parametrize("fmt", ["lackey", "din", "xdin", "pinatrace"])
def test_empty_text_file(tmp_path, fmt):
    p = tmp_path / f"empty.{fmt}"
    p.write_bytes(b"")
    t = Trace.open(p)
    assert t.format == fmt
    assert list(t.chunks(4)) == []
    assert len(t.read()) == 0 and t.length == 0
    p2 = tmp_path / "blank.txt"
    p2.write_bytes(b"\n\r\n  \n")
    assert len(Trace.open(p2, format=fmt).read()) == 0


def test_empty_file_without_suffix_is_undetectable(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    with pytest.raises(TraceFormatError, match="cannot detect the trace format .an empty file."):
        Trace.open(p)


def test_undetectable_lists_formats_and_how_to_force(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello world\nthis is not a trace\n")
    with pytest.raises(TraceFormatError) as e:
        Trace.open(p)
    msg = str(e.value)
    assert str(p) in msg and "format=" in msg
    for fmt in FORMATS:
        assert fmt in msg
    p = tmp_path / "blob.dat"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(TraceFormatError, match="binary content"):
        Trace.open(p)


def test_unknown_format_name_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown trace format 'gem5'.*lackey"):
        Trace.open(DATA / "sample.lackey", format="gem5")
    with pytest.raises(FileNotFoundError, match="trace file not found.*nope.lackey"):
        Trace.open(tmp_path / "nope.lackey")
    with pytest.raises(FileNotFoundError):
        Trace.open(tmp_path / "nope.lackey", format="lackey")
    with pytest.raises(FileNotFoundError):
        Trace.open(tmp_path / "nope.bin")
    with pytest.raises(FileNotFoundError):
        Trace.open(tmp_path / "nope", format="native")
    with pytest.raises(ValueError, match="errors must be"):
        Trace.open(DATA / "sample.lackey", errors="ignore")


def test_malformed_line_names_file_line_and_text():
    t = Trace.open(DATA / "bad.lackey")
    got = []
    with pytest.raises(TraceFormatError) as e:
        for c in t.chunks(10):
            got.append(c)
    err = e.value
    assert isinstance(err, ValueError)
    assert str(err) == f"{DATA / 'bad.lackey'}:3: malformed lackey line: ' S 1ffefffd78'"
    assert (err.path, err.line, err.text) == (str(DATA / "bad.lackey"), 3, " S 1ffefffd78")
    # the records before the bad line were delivered first
    assert TraceChunk.concat(got).addr.tolist() == [0x4001d70, 0x4022d98]


@pytest.mark.parametrize("block", [5, 13, 1 << 20])
def test_malformed_line_number_across_blocks(tmp_path, block):
    lines = [f"I  {0x1000 + 4 * i:08x},4\n" for i in range(40)]
    lines[33] = "I  00001084;4\n"
    p = tmp_path / "run.lackey"
    p.write_text("==7== banner\n" + "".join(lines))
    with small_blocks(read_block=block, piece=4):
        with pytest.raises(TraceFormatError, match=r"run.lackey:35: malformed lackey line: "
                                                   r"'I  00001084;4'"):
            list(Trace.open(p).chunks(3))


def test_errors_skip_counts_skipped_lines(tmp_path):
    t = Trace.open(DATA / "bad.lackey", errors="skip")
    c = t.read()
    assert c.addr.tolist() == [0x4001d70, 0x4022d98, 0x4023e08]
    assert t.skipped == 1
    p = tmp_path / "x.din"
    p.write_text("0 10\nnonsense\n1 20\n9 30\n\n2 40\n")
    t = Trace.open(p, errors="skip")
    assert t.read().addr.tolist() == [0x10, 0x20, 0x40] and t.skipped == 2


def test_pinatrace_eof_ends_the_trace_even_in_chunks():
    t = Trace.open(DATA / "sample.pinatrace")
    with small_blocks(read_block=3, piece=1):
        assert columns(TraceChunk.concat(list(t.chunks(1)))) == EXPECTED["sample.pinatrace"]


def test_ignored_lines_are_counted():
    t = Trace.open(DATA / "sample.din")
    t.read()
    assert t.ignored == 2


def test_binary_forced_as_text_is_a_clear_error(tmp_path):
    p = tmp_path / "x.lackey"
    p.write_bytes(b"\x01\x02" * 5000)
    with small_blocks(read_block=1 << 12):
        old = trace_mod._MAX_LINE
        trace_mod._MAX_LINE = 4096
        try:
            with pytest.raises(TraceFormatError, match="no line end within 4096 bytes"):
                Trace.open(p, format="lackey").read()
        finally:
            trace_mod._MAX_LINE = old
    with pytest.raises(TraceFormatError, match=r"x.lackey:1: malformed lackey line"):
        Trace.open(p, format="lackey").read()


def test_len_unknown_for_text_until_read():
    t = Trace.open(DATA / "sample.lackey")
    assert t.length is None and bool(t)
    with pytest.raises(TypeError, match="trace.length"):
        len(t)
    assert t.count() == 7 and len(t) == 7


def test_corrupt_compressed_stream(tmp_path):
    p = tmp_path / "x.lackey.gz"
    p.write_bytes(gzip.compress((DATA / "sample.lackey").read_bytes())[:-12])
    with pytest.raises(TraceFormatError, match=r"x.lackey.gz: corrupt or truncated gzip"):
        Trace.open(p)
    with pytest.raises(TraceFormatError, match=r"x.lackey.gz: corrupt or truncated gzip"):
        Trace.open(p, format="lackey").read()
    p = tmp_path / "y.champsim.xz"
    p.write_bytes(b"\xfd7zXZ\x00garbage")
    with pytest.raises(TraceFormatError, match=r"y.champsim.xz: corrupt or truncated xz"):
        Trace.open(p).read()


def test_zstd_missing_gives_install_hint(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name in ("zstandard", "compression"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    p = tmp_path / "x.lackey.zst"
    p.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'pip install "mmucore\[zstd\]"'):
        Trace.open(p, format="lackey").read()


# ----------------------------------------------------------------------------- raw
def test_raw_plain_memmapped(tmp_path):
    addrs = np.array([0, 0x1000, 0xffffffffffffffff, 0x7fff0000], dtype="<u8")
    p = tmp_path / "a.bin"
    addrs.tofile(p)
    t = Trace.open(p)
    assert (t.format, len(t), t.columns) == ("raw", 4, ("addr",))
    assert t.read().addr.tolist() == addrs.tolist()
    chunks = list(t.chunks(3))
    assert [len(c) for c in chunks] == [3, 1]
    assert not chunks[0].addr.flags.writeable          # a view of the read-only memmap
    assert (chunks[0].op == 0).all()


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz"])
def test_raw_truncated_record(tmp_path, suffix):
    src = tmp_path / "t.raw"
    src.write_bytes(np.arange(5, dtype="<u8").tobytes() + b"\x01\x02\x03")
    p = compress(src, tmp_path / ("u.raw" + suffix))
    got = []
    with small_blocks(read_block=16):
        with pytest.raises(TraceFormatError, match=r"byte offset 40: truncated raw record: "
                                                   r"3 of 8 bytes") as e:
            for c in Trace.open(p).chunks(2):
                got.append(c)
    assert e.value.offset == 40 and e.value.path == str(p)
    assert TraceChunk.concat(got).addr.tolist() == [0, 1, 2, 3, 4]
    t = Trace.open(p, errors="skip")
    assert t.read().addr.tolist() == [0, 1, 2, 3, 4] and t.skipped == 1


def test_raw_forced_and_empty(tmp_path):
    p = tmp_path / "addresses.dat"
    np.array([7, 8], "<u8").tofile(p)
    assert Trace.open(p, format="raw").read().addr.tolist() == [7, 8]
    e = tmp_path / "e.bin"
    e.write_bytes(b"")
    t = Trace.open(e)
    assert len(t) == 0 and list(t.chunks(5)) == []


# ----------------------------------------------------------------------------- champsim
def champsim_record(ip, dmem=(0, 0), smem=(0, 0, 0, 0), is_branch=0, taken=0,
                    dregs=(0, 0), sregs=(0, 0, 0, 0)):
    """One input_instr record packed field by field (independent of CHAMPSIM_DTYPE)."""
    return struct.pack("<QBB2B4B2Q4Q", ip, is_branch, taken, *dregs, *sregs, *dmem, *smem)


CHAMPSIM_RECORDS = [
    champsim_record(0x401000, sregs=(6, 0, 0, 0)),                        # no memory
    champsim_record(0x401004, smem=(0x7fff0010, 0, 0x7fff0020, 0)),       # 2 loads, a gap
    champsim_record(0x401008, dmem=(0, 0x601000), smem=(0x601000, 0, 0, 0)),  # RMW
    champsim_record(0xffffffffffff0000, dmem=(0x10, 0x20), is_branch=1, taken=1,
                    dregs=(26, 6), sregs=(26, 6, 0, 0)),
]
CHAMPSIM_EXPECTED = (
    [0x401000,
     0x401004, 0x7fff0010, 0x7fff0020,
     0x401008, 0x601000, 0x601000,
     0xffffffffffff0000, 0x10, 0x20],
    [I, I, L, L, I, L, S, I, S, S],
    None)


def test_champsim_dtype_is_the_64_byte_input_instr():
    assert CHAMPSIM_DTYPE.itemsize == 64 == struct.calcsize("<QBB2B4B2Q4Q")
    assert [CHAMPSIM_DTYPE.fields[f][1] for f in CHAMPSIM_DTYPE.names] == \
        [0, 8, 9, 10, 12, 16, 32]


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz", ".zst"])
@pytest.mark.parametrize("name", ["t.champsimtrace", "t.champsim", "t.trace"])
def test_champsim_decoding(tmp_path, suffix, name):
    src = tmp_path / "src.bin"
    src.write_bytes(b"".join(CHAMPSIM_RECORDS))
    p = compress(src, tmp_path / (name + suffix))
    assert detect_format(p) == "champsim"
    t = Trace.open(p)
    if suffix == "":
        assert len(t) == 10                          # counted with one vectorised pass
    else:
        assert t.length is None
    assert columns(t.read()) == CHAMPSIM_EXPECTED
    for n in (1, 3, 4, 100):
        with small_blocks():
            chunks = list(t.chunks(n))
        assert all(len(c) == n for c in chunks[:-1])
        assert columns(TraceChunk.concat(chunks)) == CHAMPSIM_EXPECTED


def test_champsim_truncated_final_record(tmp_path):
    p = tmp_path / "t.champsimtrace.xz"
    p.write_bytes(lzma.compress(b"".join(CHAMPSIM_RECORDS[:3]) + CHAMPSIM_RECORDS[3][:40]))
    got = []
    with pytest.raises(TraceFormatError) as e:
        for c in Trace.open(p).chunks(4):
            got.append(c)
    assert e.value.offset == 192
    assert "truncated champsim record: 40 of 64 bytes" in str(e.value)
    assert "decompressed" in str(e.value) and str(p) in str(e.value)
    assert TraceChunk.concat(got).addr.tolist() == CHAMPSIM_EXPECTED[0][:7]
    t = Trace.open(p, errors="skip")
    assert len(t.read()) == 7 and t.skipped == 1


def test_champsim_plain_trace_suffix_with_text_is_text(tmp_path):
    p = shutil.copy(DATA / "sample.lackey", tmp_path / "x.trace")
    assert detect_format(p) == "lackey"


def test_champsim_empty(tmp_path):
    p = tmp_path / "e.champsim"
    p.write_bytes(b"")
    t = Trace.open(p)
    assert len(t) == 0 and len(t.read()) == 0


# ----------------------------------------------------------------------------- native
def test_native_open_validates(tmp_path):
    d = tmp_path / "n"
    Trace.from_arrays([1, 2, 3], op=[0, 1, 2], size=[1, 2, 4]).to_native(d)
    t = Trace.open(d)
    assert (t.format, len(t), t.columns) == ("native", 3, ("addr", "op", "size"))
    assert isinstance(t.arrays["addr"], np.memmap)
    assert Trace.open(d / "meta.json").length == 3
    # a broken folder: a column of the wrong length
    np.save(d / "size.npy", np.zeros(2, np.uint16))
    with pytest.raises(TraceFormatError, match="column size has shape .2,."):
        Trace.open(d)
    (d / "meta.json").unlink()
    with pytest.raises(TraceFormatError, match="meta.json is missing"):
        Trace.open(d)
    with pytest.raises(TraceFormatError, match="meta.json is missing"):
        Trace.open(d, format="native")


def test_native_bad_meta(tmp_path):
    d = tmp_path / "n"
    d.mkdir()
    (d / "meta.json").write_text("{not json")
    with pytest.raises(TraceFormatError, match="not valid JSON"):
        Trace.open(d)
    (d / "meta.json").write_text('{"format": "mmucore-trace", "version": 99}')
    with pytest.raises(TraceFormatError, match="version 99"):
        Trace.open(d)
    (d / "meta.json").write_text('{"format": "mmucore-trace", "version": 1, "length": 1, '
                                 '"columns": {"addr": "<u8"}}')
    with pytest.raises(TraceFormatError, match="addr.npy is missing"):
        Trace.open(d)


def test_native_folder_cannot_be_forced_as_text(tmp_path):
    with pytest.raises(TraceFormatError, match="folder"):
        Trace.open(tmp_path, format="lackey")


# ----------------------------------------------------------------------------- arrays
def test_from_arrays_validates_once(to_input):
    addr = to_input(np.array([0x1000, 0x2000, 0x3000], np.uint64))
    op = to_input(np.array([0, 1, 2], np.uint8))
    t = Trace.from_arrays(addr, op=op)
    c = list(t.chunks(2))
    assert [x.addr.tolist() for x in c] == [[0x1000, 0x2000], [0x3000]]
    assert np.shares_memory(c[0].addr, addr)
    with pytest.raises(ValueError, match="unknown operation code 200"):
        Trace.from_arrays([1], op=[200])
    with pytest.raises(ValueError, match="size column: length 2, but addr has 1"):
        Trace.from_arrays([1], size=[1, 2])
    with pytest.raises(ValueError, match="addr column: expected integers"):
        Trace.from_arrays(np.array([1.5]))
    with pytest.raises(ValueError, match="negative"):
        Trace.from_arrays([-1])


def test_chunk_size_is_validated():
    t = Trace.from_arrays([1])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="chunk size"):
            list(t.chunks(bad))


def test_as_trace_accepts_every_documented_source(tmp_path):
    addrs = np.arange(7, dtype=np.uint64)
    ch = TraceChunk(addrs, size=np.full(7, 4, np.uint16))

    class Gen:                                       # a workload generator's shape
        def __len__(self):
            return 7

        def chunks(self, n):
            for start in range(0, 7, 3):             # ignores n: re-cut by Trace
                yield TraceChunk(addrs[start:start + 3])

    sources = [addrs, ch, [ch[0:2], ch[2:7]], iter([ch[0:4], ch[4:7]]), Gen(),
               Trace.from_arrays(addrs), str(DATA / "sample.lackey")]
    for src in sources:
        t = as_trace(src)
        assert isinstance(t, Trace)
        got = TraceChunk.concat(list(t.chunks(2)))
        if isinstance(src, str):
            assert columns(got) == EXPECTED["sample.lackey"]
        else:
            assert got.addr.tolist() == list(range(7))
            assert t.length == 7
    t = as_trace(Gen())
    assert len(t) == 7
    once = as_trace(iter([ch]))
    list(once.chunks(3))
    with pytest.raises(RuntimeError, match="only once"):
        list(once.chunks(3))
    with pytest.raises(TypeError, match="cannot use a int as a trace"):
        as_trace(5)
    with pytest.raises(ValueError, match="1-D"):
        as_trace(np.zeros((2, 2), np.uint64))
    with pytest.raises(TypeError, match="chunk 1 is a str"):
        list(as_trace([ch, "x"]).chunks(4))


def test_repr_and_iteration():
    t = Trace.open(DATA / "sample.din")
    assert "din" in repr(t) and "accesses=?" in repr(t)
    assert sum(len(c) for c in t) == 5
    assert "accesses=5" in repr(t)


@pytest.mark.parametrize("name", ["sample.lackey", "sample.din", "sample.xdin",
                                  "sample.pinatrace"])
def test_crlf_and_trailing_blanks_everywhere(tmp_path, name):
    lines = (DATA / name).read_bytes().split(b"\n")
    text = b"\r\n".join(ln + b" \t " if ln and not ln.startswith(b"==") else ln
                        for ln in lines)
    p = tmp_path / name
    p.write_bytes(text)
    assert detect_format(p) == name.split(".")[1]
    assert columns(Trace.open(p).read()) == EXPECTED[name]


@pytest.mark.parametrize("fmt, line", [
    ("lackey", b" L 1ffffffffffffffff,8"),
    ("din", b"0 10000000000000000"),
    ("xdin", b"r 0x1ffffffffffffffff 4"),
    ("pinatrace", b"0x400: R 0x10000000000000000"),
])
def test_addresses_beyond_64_bits_are_malformed(tmp_path, fmt, line):
    p = tmp_path / f"big.{fmt}"
    p.write_bytes(line + b"\n")
    with pytest.raises(TraceFormatError, match=rf"big.{fmt}:1: malformed {fmt} line"):
        Trace.open(p).read()


BUNDLED = Path(trace_mod.__file__).resolve().parent / "data" / "traces"   # as installed


def test_bundled_real_lackey_trace_reads_with_its_manifest_counts():
    """The smallest recorded Valgrind trace (pyapi/data/traces, when present) reads as
    lackey, its accesses per kind matching MANIFEST.json."""
    manifest = BUNDLED / "MANIFEST.json"
    import json
    entries = json.loads(manifest.read_text())["traces"]
    entry = min(entries, key=lambda t: t["compressed_bytes"])
    t = Trace.open(BUNDLED / entry["file"])
    assert t.format == "lackey" and t.compression == "xz"
    counts = np.zeros(4, np.int64)
    first = None
    for c in t.chunks(1 << 18):
        first = c.op[0] if first is None else first
        counts += np.bincount(c.op, minlength=4)[:4]
    assert first == I and t.skipped == 0
    assert dict(zip("LSIM", counts.tolist())) == {k: entry["records"][k] for k in "LSIM"}
