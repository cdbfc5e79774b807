"""The champsim-cloudsuite reader: ChampSim's 96-byte ``cloudsuite_instr`` records
(``-c`` option), against records packed field by field with ``struct`` (never with
pyapi.trace.CLOUDSUITE_DTYPE) and a pure-Python reference decoder (docs/traces.md,
"ChampSim CloudSuite records")."""
import bz2
import gzip
import json
import lzma
import random
import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import pyapi.trace as trace_mod
from pyapi.chunk import TraceChunk
from pyapi.ops import Op
from pyapi.trace import (CLOUDSUITE_DTYPE, FORMATS, Trace, TraceFormatError,
                         detect_format)

DATA = Path(__file__).parent / "data" / "traces"
L, S, I = int(Op.LOAD), int(Op.STORE), int(Op.IFETCH)

# struct cloudsuite_instr (ChampSim inc/trace_instruction.h), x86-64: ip; is_branch;
# branch_taken; destination_registers[4]; source_registers[4]; 6 bytes of padding;
# destination_memory[4]; source_memory[4]; asid[2]; 6 bytes of tail padding.
RECORD = "<QBB4B4B6x4Q4Q2B6x"
# The same fields in native alignment ('@'); "0Q" pads the end to the struct's alignment
# as a C compiler does.
NATIVE = "@QBB4B4B4Q4Q2B0Q"


def record(ip, dmem=(0, 0, 0, 0), smem=(0, 0, 0, 0), asid=(0, 0), is_branch=0, taken=0,
           dregs=(0, 0, 0, 0), sregs=(0, 0, 0, 0)):
    """One cloudsuite_instr record packed field by field."""
    return struct.pack(RECORD, ip, is_branch, taken, *dregs, *sregs, *dmem, *smem, *asid)


def reference(data: bytes):
    """(addr, op, task) of a byte string of whole records, one record at a time."""
    addr, op, task = [], [], []
    for off in range(0, len(data), 96):
        f = struct.unpack_from(RECORD, data, off)
        ip, dmem, smem, asid = f[0], f[11:15], f[15:19], f[19:21]
        addr.append(ip), op.append(I), task.append(asid[0])
        for a in smem:
            if a:
                addr.append(a), op.append(L), task.append(asid[1])
        for a in dmem:
            if a:
                addr.append(a), op.append(S), task.append(asid[1])
    return addr, op, task


RECORDS = [
    record(0x401000, sregs=(6, 0, 0, 0), asid=(1, 1)),                   # no memory
    record(0x401004, smem=(0x7fff0010, 0, 0x7fff0020, 0), asid=(1, 2)),   # 2 loads, gaps
    record(0x401008, dmem=(0, 0x601000, 0, 0), smem=(0x601000, 0, 0, 0),  # RMW
           asid=(7, 7)),
    record(0x40100c, dmem=(0x11, 0x22, 0x33, 0x44), asid=(0, 255)),       # 4 stores
    record(0xffffffffffff0000, dmem=(0, 0, 0, 0x50), smem=(0, 0, 0, 0x40),  # last slots
           is_branch=1, taken=1, dregs=(26, 6, 25, 0), sregs=(26, 6, 0, 0),
           asid=(255, 0)),
    record(0, smem=(0x60, 0x61, 0x62, 0x63), dmem=(0x70, 0x71, 0x72, 0x73),  # ip 0, all 8
           asid=(3, 4)),
]
EXPECTED = (
    [0x401000,
     0x401004, 0x7fff0010, 0x7fff0020,
     0x401008, 0x601000, 0x601000,
     0x40100c, 0x11, 0x22, 0x33, 0x44,
     0xffffffffffff0000, 0x40, 0x50,
     0, 0x60, 0x61, 0x62, 0x63, 0x70, 0x71, 0x72, 0x73],
    [I,
     I, L, L,
     I, L, S,
     I, S, S, S, S,
     I, L, S,
     I, L, L, L, L, S, S, S, S],
    [1,
     1, 2, 2,
     7, 7, 7,
     0, 255, 255, 255, 255,
     255, 0, 0,
     3, 4, 4, 4, 4, 4, 4, 4, 4])


def columns(chunk):
    return chunk.addr.tolist(), chunk.op.tolist(), chunk.task.tolist()


@contextmanager
def small_blocks(records=2, read_block=7):
    """Tiny read blocks: records straddle the blocks of the decompressed stream."""
    old = trace_mod._READ_BLOCK, trace_mod._CHAMPSIM_BLOCK
    trace_mod._READ_BLOCK, trace_mod._CHAMPSIM_BLOCK = read_block, records
    try:
        yield
    finally:
        trace_mod._READ_BLOCK, trace_mod._CHAMPSIM_BLOCK = old


def write(path: Path, data: bytes) -> Path:
    suffix = path.suffix
    if suffix == ".gz":
        data = gzip.compress(data)
    elif suffix == ".bz2":
        data = bz2.compress(data)
    elif suffix == ".xz":
        data = lzma.compress(data)
    elif suffix == ".zst":
        zstandard = pytest.importorskip("zstandard")
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- layout
def test_dtype_is_the_96_byte_cloudsuite_instr():
    assert struct.calcsize(RECORD) == 96 == CLOUDSUITE_DTYPE.itemsize
    assert struct.calcsize(NATIVE) == 96                 # what a C compiler lays out
    offsets = {name: CLOUDSUITE_DTYPE.fields[name][1] for name in CLOUDSUITE_DTYPE.names}
    assert offsets == {"ip": 0, "is_branch": 8, "branch_taken": 9,
                       "destination_registers": 10, "source_registers": 14,
                       "destination_memory": 24, "source_memory": 56, "asid": 88}
    # every field of a packed record lands in its dtype field
    r = np.frombuffer(record(0x1122334455667788, dmem=(1, 2, 3, 4), smem=(5, 6, 7, 8),
                             asid=(9, 10), is_branch=1, taken=1, dregs=(11, 12, 13, 14),
                             sregs=(15, 16, 17, 18)), CLOUDSUITE_DTYPE)[0]
    assert r["ip"] == 0x1122334455667788 and r["is_branch"] == 1 and r["branch_taken"] == 1
    assert r["destination_registers"].tolist() == [11, 12, 13, 14]
    assert r["source_registers"].tolist() == [15, 16, 17, 18]
    assert r["destination_memory"].tolist() == [1, 2, 3, 4]
    assert r["source_memory"].tolist() == [5, 6, 7, 8]
    assert r["asid"].tolist() == [9, 10]


def test_format_is_listed():
    assert "champsim-cloudsuite" in FORMATS
    assert "champsim-cloudsuite" in trace_mod.BINARY_FORMATS


# ----------------------------------------------------------------------------- decoding
def test_every_decoding_rule(tmp_path):
    p = write(tmp_path / "t.cloudsuite", b"".join(RECORDS))
    t = Trace.open(p)
    assert t.format == "champsim-cloudsuite"
    assert t.columns == ("addr", "op", "task")
    assert len(t) == len(EXPECTED[0])                     # counted before reading
    c = t.read()
    assert c.size is None and c.cpu is None
    assert columns(c) == EXPECTED
    assert reference(b"".join(RECORDS)) == EXPECTED      # the reference agrees


def test_padding_and_branch_fields_are_ignored(tmp_path):
    # Non-zero bytes in both padding areas (a later ChampSim puts a load_type byte at
    # offset 90) and in the register/branch fields change nothing.
    raw = bytearray(b"".join(RECORDS))
    for k in range(len(RECORDS)):
        base = 96 * k
        raw[base + 18:base + 24] = b"\xaa" * 6
        raw[base + 90:base + 96] = b"\x55" * 6
        raw[base + 8:base + 18] = bytes(range(1, 11))
    p = write(tmp_path / "t.cloudsuite", bytes(raw))
    assert columns(Trace.open(p).read()) == EXPECTED


def test_zero_operands_give_only_ifetches(tmp_path):
    data = b"".join(record(0x1000 + 4 * k, asid=(k, 200 - k)) for k in range(50))
    p = write(tmp_path / "t.cloudsuite", data)
    t = Trace.open(p)
    assert len(t) == 50
    c = t.read()
    assert c.addr.tolist() == [0x1000 + 4 * k for k in range(50)]
    assert c.op.tolist() == [I] * 50
    assert c.task.tolist() == list(range(50))             # asid[0] of each IFETCH


def test_empty_file(tmp_path):
    p = write(tmp_path / "e.cloudsuite", b"")
    t = Trace.open(p)
    assert len(t) == 0 and list(t.chunks(5)) == [] and len(t.read()) == 0


def test_random_records_against_the_reference(tmp_path):
    rng = random.Random(11)

    def operand():
        return 0 if rng.random() < 0.6 else rng.choice(
            [rng.getrandbits(64) or 1, rng.getrandbits(48) or 1, 1, 0xffffffffffffffff])

    data = b"".join(
        record(rng.getrandbits(64), dmem=[operand() for _ in range(4)],
               smem=[operand() for _ in range(4)],
               asid=(rng.getrandbits(8), rng.getrandbits(8)),
               is_branch=rng.getrandbits(1), taken=rng.getrandbits(1),
               dregs=[rng.getrandbits(8) for _ in range(4)],
               sregs=[rng.getrandbits(8) for _ in range(4)])
        for _ in range(3000))
    want = reference(data)
    p = write(tmp_path / "r.cloudsuite", data)
    t = Trace.open(p)
    assert len(t) == len(want[0])
    assert columns(t.read()) == want
    with small_blocks(records=7, read_block=1000):
        assert columns(TraceChunk.concat(list(t.chunks(333)))) == want


# ----------------------------------------------------------------------------- streams
@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz", ".zst"])
def test_compression_round_trips(tmp_path, suffix):
    p = write(tmp_path / ("t.cloudsuite" + suffix), b"".join(RECORDS))
    assert detect_format(p) == "champsim-cloudsuite"
    t = Trace.open(p)
    if suffix:
        assert t.length is None and t.compression is not None
    else:
        assert len(t) == len(EXPECTED[0])
    assert columns(t.read()) == EXPECTED
    assert len(t) == len(EXPECTED[0])                     # known after one pass
    # forced format, same result
    assert columns(Trace.open(p, format="champsim-cloudsuite").read()) == EXPECTED


@pytest.mark.parametrize("suffix", ["", ".xz", ".gz"])
@pytest.mark.parametrize("records", [1, 2, 5])
def test_chunked_equals_whole(tmp_path, suffix, records):
    p = write(tmp_path / ("t.cloudsuite" + suffix), b"".join(RECORDS) * 3)
    whole = columns(Trace.open(p).read())
    assert whole == tuple(col * 3 for col in EXPECTED)
    for n in (1, 2, 3, 7, 24, 1000):
        with small_blocks(records=records):
            chunks = list(Trace.open(p).chunks(n))
        assert all(len(c) == n for c in chunks[:-1]) and 0 < len(chunks[-1]) <= n
        assert columns(TraceChunk.concat(chunks)) == whole


def test_compressed_without_suffix_is_not_decompressed_by_magic(tmp_path):
    # Binary formats trust the suffix only: their first bytes are data (an ip whose
    # low bytes look like a gzip magic number must not be taken for one).
    data = record(0x8b1f, smem=(0x10, 0, 0, 0), asid=(2, 3))
    p = write(tmp_path / "t.cloudsuite", data)
    assert columns(Trace.open(p).read()) == ([0x8b1f, 0x10], [I, L], [2, 3])


# ----------------------------------------------------------------------------- detection
@pytest.mark.parametrize("name, fmt", [
    ("t.cloudsuite", "champsim-cloudsuite"),
    ("t.cloudsuite.xz", "champsim-cloudsuite"),
    ("T.CLOUDSUITE.GZ", "champsim-cloudsuite"),
    ("cloudsuite_cassandra.champsimtrace.xz", "champsim-cloudsuite"),
    ("nutch.CloudSuite.champsim", "champsim-cloudsuite"),
    ("cloudsuite_cassandra_phase0_core0.trace.xz", "champsim-cloudsuite"),
    ("cloudsuite-web", "champsim-cloudsuite"),            # binary content, no suffix
    ("cassandra_phase0_core0.trace.xz", "champsim"),      # no name rule: 64-byte default
    ("t.champsimtrace.xz", "champsim"),
    ("cloudsuite.bin", "raw"),                            # .bin names raw
])
def test_detection_by_name(tmp_path, name, fmt):
    p = write(tmp_path / name, b"".join(RECORDS))
    assert detect_format(p) == fmt


def test_text_content_wins_over_a_cloudsuite_name(tmp_path):
    text = (DATA / "sample.lackey").read_bytes()
    for name in ("cloudsuite_run.txt", "cloudsuite.trace", "cloudsuite_run.lackey"):
        p = write(tmp_path / name, text)
        assert detect_format(p) == "lackey"


def test_error_messages_list_the_format(tmp_path):
    with pytest.raises(ValueError, match="unknown trace format 'cloudsuite'.*"
                                         "champsim-cloudsuite"):
        Trace.open(DATA / "sample.lackey", format="cloudsuite")
    p = write(tmp_path / "blob.dat", bytes(range(256)) * 4)
    with pytest.raises(TraceFormatError) as e:
        Trace.open(p)
    assert "champsim-cloudsuite" in str(e.value) and ".cloudsuite" in str(e.value)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("suffix", ["", ".xz"])
def test_truncated_final_record(tmp_path, suffix):
    data = b"".join(RECORDS[:4]) + RECORDS[4][:40]
    p = write(tmp_path / ("t.cloudsuite" + suffix), data)
    got = []
    with pytest.raises(TraceFormatError) as e:
        for c in Trace.open(p).chunks(4):
            got.append(c)
    assert e.value.offset == 4 * 96
    msg = str(e.value)
    assert "truncated champsim-cloudsuite record: 40 of 96 bytes" in msg and str(p) in msg
    assert ("decompressed stream" if suffix else "end of the file") in msg
    assert "everything before it was read" in msg
    n = 12                                               # accesses of RECORDS[:4]
    assert columns(TraceChunk.concat(got)) == tuple(col[:n] for col in EXPECTED)
    t = Trace.open(p, errors="skip")
    assert columns(t.read()) == tuple(col[:n] for col in EXPECTED) and t.skipped == 1
    if not suffix:
        assert len(Trace.open(p)) == n                   # whole records only


def champsim64(ip, smem=0):
    """A 64-byte input_instr record (for the wrong-format tests)."""
    return struct.pack("<QBB2B4B2Q4Q", ip, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, smem, 0, 0, 0)


@pytest.mark.parametrize("suffix", ["", ".xz"])
def test_64_byte_trace_forced_as_cloudsuite(tmp_path, suffix):
    data = b"".join(champsim64(0x1000 + k, smem=0x2000 + k) for k in range(5))   # 320 B
    assert len(data) % 96 != 0
    p = write(tmp_path / ("t.champsimtrace" + suffix), data)
    assert detect_format(p) == "champsim"
    with pytest.raises(TraceFormatError) as e:
        Trace.open(p, format="champsim-cloudsuite").read()
    msg = str(e.value)
    assert "truncated champsim-cloudsuite record: 32 of 96 bytes" in msg
    assert "multiple of 64" in msg and 'format="champsim"' in msg
    assert e.value.offset == 288


def test_cloudsuite_trace_read_as_64_byte_records(tmp_path):
    p = write(tmp_path / "t.champsim", b"".join(RECORDS[:3]))        # 288 bytes
    with pytest.raises(TraceFormatError) as e:
        Trace.open(p).read()
    msg = str(e.value)
    assert "truncated champsim record: 32 of 64 bytes" in msg
    assert "multiple of 96" in msg and 'format="champsim-cloudsuite"' in msg


# ----------------------------------------------------------------------------- convert
@pytest.mark.parametrize("suffix", ["", ".xz"])
def test_convert_to_native(tmp_path, suffix):
    p = write(tmp_path / ("t.cloudsuite" + suffix), b"".join(RECORDS) * 2)
    with small_blocks():
        native = Trace.convert(p, tmp_path / "t.trace", chunk=5)
    assert native.format == "native"
    assert len(native) == 2 * len(EXPECTED[0])
    assert columns(native.read()) == tuple(col * 2 for col in EXPECTED)
    meta = json.loads((tmp_path / "t.trace" / "meta.json").read_text())
    assert set(meta["columns"]) == {"addr", "op", "task"}
    assert meta["source"]["format"] == "champsim-cloudsuite"
    assert np.load(tmp_path / "t.trace" / "task.npy").dtype == np.uint32


def test_lackey_cannot_hold_the_asid(tmp_path):
    p = write(tmp_path / "t.cloudsuite", b"".join(RECORDS))
    with pytest.raises(ValueError, match="task"):
        Trace.open(p).to_lackey(tmp_path / "t.lackey")
    assert not (tmp_path / "t.lackey").exists()


def test_random_bytes_decode_like_the_reference(tmp_path):
    # Any bytes are records: whole ones decode as the reference says, a partial last one
    # is the truncation error (or skipped), whatever the block size.
    rng = random.Random(5)
    for trial in range(40):
        n = rng.choice([0, 1, 95, 96, 97, 191, 192, 500, 960, 2000])
        data = bytes(rng.choice([0, 0, 0, rng.getrandbits(8)]) for _ in range(n))
        p = write(tmp_path / f"f{trial}.cloudsuite", data)
        whole = n // 96 * 96
        want = reference(data[:whole])
        with small_blocks(records=rng.choice([1, 2, 3, 64])):
            got = []
            t = Trace.open(p, errors=rng.choice(["raise", "skip"]))
            try:
                for c in t.chunks(rng.choice([1, 5, 1000])):
                    got.append(c)
                assert n % 96 == 0 or t.errors == "skip"
                assert t.skipped == (1 if n % 96 else 0)
            except TraceFormatError as e:
                assert n % 96 and t.errors == "raise" and e.offset == whole
        assert (columns(TraceChunk.concat(got)) if got else ([], [], [])) == want
        assert len(Trace.open(p)) == len(want[0])
