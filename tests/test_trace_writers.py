"""Trace writers and converters: native and lackey output, round trips, and failures that
leave no output posing as complete (pyapi/trace.py)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

import pyapi.trace as trace_mod
from pyapi.chunk import TraceChunk
from pyapi.ops import Op
from pyapi.trace import NATIVE_FORMAT, Trace, TraceFormatError

DATA = Path(__file__).parent / "data" / "traces"


def same(a: TraceChunk, b: TraceChunk, columns=("addr", "op", "size", "cpu", "task")):
    for name in columns:
        x, y = getattr(a, name), getattr(b, name)
        x = np.zeros(len(a), np.uint8) if x is None else x
        y = np.zeros(len(b), np.uint8) if y is None else y
        assert x.tolist() == y.tolist(), name
    return True


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def random_access_trace(n, seed=0, cpu=False):
    rng = np.random.default_rng(seed)
    addr = rng.integers(0, 1 << 64, n, dtype=np.uint64, endpoint=False)
    addr[: n // 4] >>= np.uint64(40)                     # some short addresses too
    op = rng.integers(0, 4, n).astype(np.uint8)
    size = rng.integers(0, 1 << 16, n).astype(np.uint16)
    kw = {"cpu": rng.integers(0, 4, n).astype(np.uint16)} if cpu else {}
    return Trace.from_arrays(addr, op=op, size=size, **kw)


# ----------------------------------------------------------------------------- native
def test_native_layout_and_meta(tmp_path):
    t = random_access_trace(1000, cpu=True)
    out = t.to_native(tmp_path / "n", chunk=300)
    files = sorted(os.listdir(tmp_path / "n"))
    assert files == ["addr.npy", "cpu.npy", "meta.json", "op.npy", "size.npy"]
    meta = json.loads((tmp_path / "n" / "meta.json").read_text())
    assert meta["format"] == NATIVE_FORMAT and meta["version"] == 1
    assert meta["length"] == 1000
    assert meta["columns"] == {"addr": "<u8", "op": "|u1", "size": "<u2", "cpu": "<u2"}
    assert meta["source"]["format"] == "arrays"
    for name in ("addr", "op", "size", "cpu"):           # plain .npy files numpy reads
        arr = np.load(tmp_path / "n" / f"{name}.npy")
        assert arr.tolist() == getattr(t.read(), name).tolist()
    assert out.format == "native" and len(out) == 1000
    assert same(out.read(), t.read())
    assert leftovers(tmp_path) == []


def test_native_columns_only_when_present(tmp_path):
    out = Trace.from_arrays(np.arange(10, dtype=np.uint64)).to_native(tmp_path / "a")
    assert sorted(os.listdir(tmp_path / "a")) == ["addr.npy", "meta.json"]
    assert out.columns == ("addr",)
    # a column that appears in a later chunk is back-filled with its default (0)
    parts = [TraceChunk(np.arange(3, dtype=np.uint64)),
             TraceChunk(np.arange(3, 5, dtype=np.uint64), op=np.array([1, 2], np.uint8),
                        task=np.array([7, 8], np.uint32))]
    out = Trace.from_chunks(parts).to_native(tmp_path / "b", chunk=2)
    c = out.read()
    assert c.op.tolist() == [0, 0, 0, 1, 2] and c.task.tolist() == [0, 0, 0, 7, 8]
    assert c.size is None and c.cpu is None


def test_native_empty_trace(tmp_path):
    out = Trace.from_arrays(np.zeros(0, np.uint64)).to_native(tmp_path / "e")
    assert len(out) == 0 and list(out.chunks(4)) == []
    assert np.load(tmp_path / "e" / "addr.npy").shape == (0,)


def test_native_is_memmapped_and_chunked_without_copies(tmp_path):
    out = random_access_trace(100).to_native(tmp_path / "n")
    chunks = list(out.chunks(40))
    assert [len(c) for c in chunks] == [40, 40, 20]
    assert all(np.shares_memory(c.addr, out.arrays["addr"]) for c in chunks)
    assert not chunks[0].addr.flags.writeable


def test_native_existing_output_and_overwrite(tmp_path):
    dst = tmp_path / "n"
    Trace.from_arrays([1, 2]).to_native(dst)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        Trace.from_arrays([3]).to_native(dst)
    assert Trace.open(dst).read().addr.tolist() == [1, 2]
    Trace.from_arrays([3]).to_native(dst, overwrite=True)
    assert Trace.open(dst).read().addr.tolist() == [3]
    assert leftovers(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="folder of the output"):
        Trace.from_arrays([3]).to_native(tmp_path / "no" / "such" / "dir")


def test_failed_conversion_leaves_no_output(tmp_path):
    # the malformed line comes after more than one chunk has been written
    good = "".join(f"I  {0x400000 + i:08x},4\n" for i in range(50))
    src = tmp_path / "run.lackey"
    src.write_text(good + "I  zzzz,4\n" + good)
    with pytest.raises(TraceFormatError, match=r"run.lackey:51: malformed lackey line"):
        Trace.convert(src, tmp_path / "out", chunk=8)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []
    # an existing output survives a failed overwrite untouched
    Trace.from_arrays([9]).to_native(tmp_path / "out")
    with pytest.raises(TraceFormatError):
        Trace.convert(src, tmp_path / "out", chunk=8, overwrite=True)
    assert Trace.open(tmp_path / "out").read().addr.tolist() == [9]
    assert leftovers(tmp_path) == []
    # the same file with errors="skip" converts, and meta.json records the skipped line
    out = Trace.convert(src, tmp_path / "skipped", errors="skip", chunk=8)
    assert len(out) == 100 and out.meta["skipped"] == 1


def test_interrupted_conversion_leaves_no_output(tmp_path):
    def pieces(n):
        yield TraceChunk(np.arange(10, dtype=np.uint64))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trace(pieces, format="custom").to_native(tmp_path / "k")
    assert not (tmp_path / "k").exists() and leftovers(tmp_path) == []


def test_convert_from_every_format(tmp_path):
    for name in ("sample.lackey", "edge.lackey", "sample.din", "sample.xdin",
                 "sample.pinatrace"):
        src = Trace.open(DATA / name)
        out = Trace.convert(DATA / name, tmp_path / name)
        assert same(out.read(), src.read())
        assert out.meta["source"]["format"] == src.format
        assert out.meta["source"]["path"] == str(DATA / name)


# ----------------------------------------------------------------------------- lackey
def test_lackey_writer_matches_lackey_printf(tmp_path):
    t = Trace.from_arrays(
        np.array([0x4001d70, 0x1ffefffd78, 0, 0xffffffffffffffff, 0x12345678], np.uint64),
        op=np.array([Op.IFETCH, Op.STORE, Op.LOAD, Op.MODIFY, Op.LOAD], np.uint8),
        size=np.array([3, 8, 65535, 0, 10], np.uint16))
    p = t.to_lackey(tmp_path / "w.lackey")
    assert p.read_text() == ("I  04001d70,3\n"
                             " S 1ffefffd78,8\n"
                             " L 00000000,65535\n"
                             " M ffffffffffffffff,0\n"
                             " L 12345678,10\n")


def test_lackey_writer_agrees_with_python_formatting(tmp_path):
    t = random_access_trace(3000, seed=3)
    c = t.read()
    prefix = {0: " L", 1: " S", 2: "I ", 3: " M"}
    # a per-access reference formatting, in the test only
    expect = "".join(f"{prefix[int(o)]} {int(a):08x},{int(s)}\n"
                     for a, o, s in zip(c.addr, c.op, c.size))
    assert t.to_lackey(tmp_path / "r.lackey", chunk=700).read_text() == expect


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz", ".bz2", ".zst"])
def test_round_trip_native_lackey_native(tmp_path, suffix):
    if suffix == ".zst":
        pytest.importorskip("zstandard")
    t = random_access_trace(2500, seed=1)
    n1 = t.to_native(tmp_path / "n1", chunk=1000)
    lk = n1.to_lackey(tmp_path / ("x.lackey" + suffix), chunk=999)
    back = Trace.convert(lk, tmp_path / "n2", chunk=777)
    assert back.columns == ("addr", "op", "size")
    assert same(back.read(), t.read())
    # and lackey -> native -> lackey gives the same bytes
    again = back.to_lackey(tmp_path / ("y.lackey" + suffix))
    assert Trace.open(again).read().addr.tolist() == t.read().addr.tolist()
    if suffix == "":
        assert again.read_bytes() == lk.read_bytes()


def test_round_trip_of_real_lackey_sample(tmp_path):
    src = Trace.open(DATA / "sample.lackey")
    n = src.to_native(tmp_path / "n")
    p = n.to_lackey(tmp_path / "back.lackey")
    lines = [ln for ln in (DATA / "sample.lackey").read_text().splitlines()
             if not ln.startswith("==")]
    assert p.read_text().splitlines() == lines


def test_lackey_cannot_express(tmp_path):
    p = tmp_path / "x.lackey"
    with pytest.raises(ValueError, match="access 3: operation INVLPG"):
        Trace.from_arrays([1, 2, 3, 4], op=[0, 1, 2, Op.INVLPG]).to_lackey(p, chunk=2)
    with pytest.raises(ValueError, match="access 1: cpu 2"):
        Trace.from_arrays([1, 2], cpu=[0, 2]).to_lackey(p)
    with pytest.raises(ValueError, match="access 0: task 5"):
        Trace.from_arrays([1], task=[5]).to_lackey(p)
    assert not p.exists() and leftovers(tmp_path) == []
    # a failed overwrite keeps the old file
    Trace.from_arrays([1]).to_lackey(p)
    before = p.read_bytes()
    with pytest.raises(ValueError):
        Trace.from_arrays([1], op=[Op.FLUSH]).to_lackey(p, overwrite=True)
    assert p.read_bytes() == before and leftovers(tmp_path) == []
    with pytest.raises(FileExistsError):
        Trace.from_arrays([1]).to_lackey(p, overwrite=False)


def test_convert_to_lackey_and_bad_target(tmp_path):
    out = Trace.convert(DATA / "sample.xdin", tmp_path / "x.lackey", to="lackey")
    assert out.format == "lackey"
    assert same(out.read(), Trace.open(DATA / "sample.xdin").read())
    with pytest.raises(FileExistsError):
        Trace.convert(DATA / "sample.xdin", tmp_path / "x.lackey", to="lackey")
    with pytest.raises(ValueError, match='to must be "native" or "lackey"'):
        Trace.convert(DATA / "sample.xdin", tmp_path / "y", to="csv")


def test_npy_header_is_fixed_size():
    for dtype in (np.uint64, np.uint8, np.uint16, np.uint32):
        for n in (0, 1, 12345, (1 << 63) - 1):
            assert len(trace_mod._npy_header(np.dtype(dtype), n)) == trace_mod._NPY_HEADER
