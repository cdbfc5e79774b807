"""Streaming guarantees of pyapi.trace found in review: bounded memory when re-cutting
pieces, everything before damage in a compressed stream delivered, and sources that
cannot be read again reported instead of read as empty traces."""
import gzip
import lzma
import tracemalloc
import zlib

import numpy as np
import pytest

import pyapi.trace as trace_mod
from pyapi.chunk import TraceChunk
from pyapi.trace import CHAMPSIM_DTYPE, Trace, TraceFormatError, as_trace


def test_rechunking_slices_a_large_piece_instead_of_copying_it():
    # a small piece then a large one (a memory map in real use): re-cutting to n must
    # copy at most one chunk, never the large piece as a whole
    big = np.arange(10, 2_000_010, dtype=np.uint64)
    t = Trace.from_chunks([TraceChunk(np.arange(3, dtype=np.uint64)), TraceChunk(big)])
    n = 1000
    tracemalloc.start()
    try:
        chunks = []
        for c in t.chunks(n):
            chunks.append(c)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [len(c) for c in chunks[:-1]] == [n] * (len(chunks) - 1)
    got = np.concatenate([c.addr for c in chunks])
    assert got.tolist() == [0, 1, 2] + big.tolist()
    # after the first chunk (the one that joins the two pieces) every chunk is a view
    assert all(np.shares_memory(c.addr, big) for c in chunks[1:])
    assert peak < big.nbytes // 4


def _cut(data: bytes, frac: float) -> bytes:
    return data[: int(len(data) * frac)]


def _recoverable(compressed: bytes, wbits: int) -> bytes:
    return zlib.decompressobj(wbits).decompress(compressed)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(trace_mod, "_READ_BLOCK", 64 << 10)
    monkeypatch.setattr(trace_mod, "_DAMAGE_STEP", 4 << 10, raising=False)


def test_cut_gzip_text_delivers_every_line_before_the_damage(tmp_path, small_blocks):
    lines = b"".join(b"I  %08x,4\n L %08x,8\n" % (0x400000 + i, 0x7ff000 + i)
                     for i in range(40000))                  # ~800 KB of text
    p = tmp_path / "run.lackey.gz"
    packed = _cut(gzip.compress(lines, 1), 0.75)
    p.write_bytes(packed)
    clean = _recoverable(packed, 31)
    complete = clean.count(b"\n")
    got = 0
    with pytest.raises(TraceFormatError, match="corrupt or truncated gzip") as err:
        for c in Trace.open(p).chunks(1000):
            got += len(c)
    # every complete line decompressed before the damage, less one read step
    assert complete - (4 << 10) // 10 <= got <= complete
    # the offset named is where reading stopped, not the start of a 4 MiB block
    offset = int(str(err.value).split("after ")[1].split(" ")[0])
    assert len(clean) - (4 << 10) <= offset <= len(clean)


def test_cut_stream_ending_on_a_line_end_still_raises(tmp_path, small_blocks):
    # the short read before the damage must not be taken for the end of the file
    lines = b"".join(b" S %08x,8\n" % i for i in range(30000))
    p = tmp_path / "run.lackey.xz"
    p.write_bytes(_cut(lzma.compress(lines), 0.5))
    with pytest.raises(TraceFormatError, match="corrupt or truncated xz"):
        Trace.open(p).count()


@pytest.mark.parametrize("fmt", ["champsim", "raw"])
def test_cut_compressed_binary_delivers_whole_records_then_the_stream_error(
        tmp_path, small_blocks, fmt):
    if fmt == "champsim":
        r = np.zeros(20000, CHAMPSIM_DTYPE)
        r["ip"] = np.arange(1, 20001)
        data, per_record, accesses = r.tobytes(), 64, 1
    else:
        data, per_record, accesses = np.arange(1, 200001, dtype="<u8").tobytes(), 8, 1
    p = tmp_path / f"t.{fmt}.gz"
    packed = _cut(gzip.compress(data, 1), 0.6)
    p.write_bytes(packed)
    whole_records = len(_recoverable(packed, 31)) // per_record
    got = 0
    with pytest.raises(TraceFormatError, match="corrupt or truncated gzip"):
        for c in Trace.open(p).chunks(777):
            got += len(c)
    assert whole_records * accesses - (4 << 10) // per_record <= got
    assert got <= whole_records * accesses


def test_exhausted_generator_is_not_an_empty_trace():
    def gen():
        yield TraceChunk(np.arange(5, dtype=np.uint64))

    g = gen()
    first = as_trace(g)
    second = as_trace(g)                 # the same generator, wrapped twice
    assert len(first.read()) == 5
    with pytest.raises(RuntimeError, match="already exhausted"):
        second.read()
    # an empty generator is an empty trace
    def empty():
        return
        yield

    assert len(as_trace(empty()).read()) == 0


def test_native_column_with_unknown_op_codes_names_the_trace(tmp_path):
    d = tmp_path / "t.trace"
    Trace.from_arrays(np.arange(10, dtype=np.uint64), op=np.ones(10, np.uint8)).to_native(d)
    op = np.ones(10, np.uint8)
    op[7] = 200
    np.save(d / "op.npy", op)
    with pytest.raises(TraceFormatError, match=r"t.trace: op column: unknown operation "
                                               r"code 200 at index 3 .*access 4\)"):
        list(Trace.open(d).chunks(4))


@pytest.mark.parametrize("frac", [0.3, 0.8, 0.999])
def test_cut_zstd_file_is_an_error_not_a_shorter_trace(tmp_path, frac):
    zstandard = pytest.importorskip("zstandard")
    # two frames of whole lines; the file is cut inside the second: zstandard's
    # stream_reader takes that for the end of the data (no error)
    c = zstandard.ZstdCompressor(level=3)
    part = [b"".join(b"I  %08x,4\n L %08x,8\n" % (i, i) for i in range(k, k + 50000))
            for k in (0, 50000)]
    first = c.compress(part[0])
    second = c.compress(part[1])
    p = tmp_path / "run.lackey.zst"
    p.write_bytes(first + second[: int(len(second) * frac)])
    got = 0
    with pytest.raises(TraceFormatError, match="corrupt or truncated zstd"):
        for ch in Trace.open(p).chunks(4096):
            got += len(ch)
    assert 100000 <= got < 200000           # the whole first frame was delivered
    # an intact multi-frame file reads whole
    p.write_bytes(first + second)
    assert Trace.open(p).count() == 200000


def test_corrupt_zstd_data_delivers_what_came_before(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    c = zstandard.ZstdCompressor(level=3)
    text = b"".join(b" S %08x,8\n" % i for i in range(100000))
    # a frame, 64 bytes of garbage, a frame; the first frame ends inside line 35715
    packed = c.compress(text[:500000]) + b"\x00" * 64 + c.compress(text[500000:])
    p = tmp_path / "bad.lackey.zst"
    p.write_bytes(packed)
    got = 0
    with pytest.raises(TraceFormatError, match="zstd"):
        for ch in Trace.open(p).chunks(1000):
            got += len(ch)
    assert got == 500000 // 14


def test_consumed_native_pages_are_released_but_views_stay_valid(tmp_path):
    """Chunks of a memory-mapped native or raw trace give their pages back once the next
    chunk is asked for (bounded RSS on long replays); chunks a caller kept still read the
    right records (the kernel maps the file pages again)."""
    from pyapi.trace import Trace
    rng = np.random.default_rng(5)
    addr = rng.integers(0, 1 << 40, 300_000, dtype=np.uint64)
    op = rng.integers(0, 4, addr.size).astype(np.uint8)
    native = Trace.from_arrays(addr, op=op).to_native(tmp_path / "t.native")
    raw = tmp_path / "t.raw"
    addr.tofile(raw)
    for trace in (Trace.open(native.path), Trace.open(raw, format="raw")):
        kept = list(trace.chunks(10_000))        # every chunk's pages were released
        assert np.array_equal(np.concatenate([c.addr for c in kept]), addr)
        if trace.format == "native":
            assert np.array_equal(np.concatenate([c.op for c in kept]), op)
