"""Speed of reading traces through ``pyapi.Trace.chunks`` (file to TraceChunks), per format.

    OPENBLAS_NUM_THREADS=1 python bench/trace_io.py [--n 4000000] [--repeat 3]
                                                    [--chunk 1048576] [--json FILE|-]

Writes, in a temporary folder before any clock starts, one trace of ``--n`` lackey-like
accesses (55% instruction fetches on an 8-digit text segment, loads/stores/modifies on a
10-digit stack and an 8-digit heap, sizes 1..8) in several forms:

* ``lackey`` (``Trace.to_lackey``), ``lackey.gz`` (gzip level 6) and ``lackey.xz``
  (xz preset 1);
* ``native`` (``Trace.to_native``: memory-mapped ``.npy`` columns);
* ``raw`` (uint64 addresses);
* ``champsim`` (64-byte ``input_instr`` records: one per instruction fetch with its
  following loads/stores as memory operands) and ``champsim.xz``.

Each is read ``--repeat`` times with ``for c in Trace.open(path).chunks(chunk)``,
touching every chunk's ``addr`` column (a sum) so lazily mapped files are really read
(the page cache is warm after writing). The table shows the best and median rate in
input MB/s (MB = 10^6 bytes of the file as stored, compressed where it is) and in
millions of accesses per second. The writers are timed once each as well. Every read's
access count and address checksum are checked against the generated trace.
"""
import argparse
import json
import lzma
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import pyapi.trace  # noqa: F401
except ImportError:  # not installed: the source tree (needs an in-place build)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyapi.trace import CHAMPSIM_DTYPE, Trace  # noqa: E402

LOAD, STORE, IFETCH, MODIFY = 0, 1, 2, 3


def make_trace(n, seed=0):
    """n lackey-like accesses: (addr, op, size) arrays."""
    rng = np.random.default_rng(seed)
    op = rng.choice(np.array([IFETCH, LOAD, STORE, MODIFY], np.uint8), n,
                    p=[0.55, 0.25, 0.15, 0.05])
    op[0] = IFETCH
    text = 0x400000 + np.cumsum(rng.integers(1, 8, n)).astype(np.uint64)
    stack = np.uint64(0x1ffefff000) - rng.integers(0, 1 << 14, n).astype(np.uint64)
    heap = np.uint64(0x4a00000) + rng.integers(0, 1 << 24, n).astype(np.uint64)
    addr = np.where(op == IFETCH, text, np.where(rng.random(n) < 0.6, stack, heap))
    size = rng.integers(1, 9, n).astype(np.uint16)
    return addr.astype(np.uint64), op, size


def champsim_bytes(addr, op):
    """ChampSim records for the trace: each IFETCH starts a record; up to 4 following
    loads and 2 stores become its memory operands (more are dropped; MODIFY counts as a
    load and a store). Returns (bytes, expected access count, expected address sum)."""
    starts = np.flatnonzero(op == IFETCH)
    rec = np.zeros(len(starts), CHAMPSIM_DTYPE)
    rec["ip"] = addr[starts]
    owner = np.cumsum(op == IFETCH) - 1                  # record of each access
    rank_l = np.zeros(len(op), np.int64)
    rank_s = np.zeros(len(op), np.int64)
    is_l = (op == LOAD) | (op == MODIFY)
    is_s = (op == STORE) | (op == MODIFY)
    for mask, rank in ((is_l, rank_l), (is_s, rank_s)):
        c = np.cumsum(mask)
        base = c[starts][owner]                          # count at the record's IFETCH
        rank[:] = c - base - 1
    sel = is_l & (rank_l < 4)
    rec["source_memory"][owner[sel], rank_l[sel]] = addr[sel]
    sel = is_s & (rank_s < 2)
    rec["destination_memory"][owner[sel], rank_s[sel]] = addr[sel]
    mem = np.concatenate([rec["ip"], rec["source_memory"].ravel(),
                          rec["destination_memory"].ravel()])
    nz = mem[mem != 0]
    return rec.tobytes(), len(nz), int(nz.sum(dtype=np.uint64))


def read_rate(path, fmt, chunk, repeat, expect_n, expect_sum):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        n, s = 0, np.uint64(0)
        for c in Trace.open(path, format=fmt).chunks(chunk):
            n += len(c)
            s += c.addr.sum(dtype=np.uint64)
        times.append(time.perf_counter() - t0)
        if n != expect_n or int(s) != expect_sum:
            raise SystemExit(f"{path}: read {n} accesses (sum {int(s):#x}), expected "
                             f"{expect_n} (sum {expect_sum:#x})")
    return times


def size_of(path):
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.iterdir())
    return p.stat().st_size


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    addr, op, size = make_trace(args.n)
    trace = Trace.from_arrays(addr, op=op, size=size)
    total = int(addr.sum(dtype=np.uint64))
    rows, writes = [], {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t0 = time.perf_counter()
        trace.to_lackey(d / "t.lackey")
        writes["lackey"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        trace.to_lackey(d / "t.lackey.gz")
        writes["lackey.gz"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        trace.to_lackey(d / "t.lackey.xz")
        writes["lackey.xz"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        trace.to_native(d / "t.native")
        writes["native"] = time.perf_counter() - t0
        addr.astype("<u8").tofile(d / "t.bin")
        data, cs_n, cs_sum = champsim_bytes(addr, op)
        (d / "t.champsim").write_bytes(data)
        (d / "t.champsim.xz").write_bytes(lzma.compress(data, preset=1))

        cases = [("lackey", "t.lackey", "lackey", args.n, total),
                 ("lackey.gz", "t.lackey.gz", "lackey", args.n, total),
                 ("lackey.xz", "t.lackey.xz", "lackey", args.n, total),
                 ("native", "t.native", "native", args.n, total),
                 ("raw", "t.bin", "raw", args.n, total),
                 ("champsim", "t.champsim", "champsim", cs_n, cs_sum),
                 ("champsim.xz", "t.champsim.xz", "champsim", cs_n, cs_sum)]
        for name, file, fmt, n, s in cases:
            path = d / file
            times = read_rate(path, fmt, args.chunk, args.repeat, n, s)
            mb = size_of(path) / 1e6
            rows.append({"input": name, "bytes": size_of(path), "accesses": n,
                         "seconds": times,
                         "mb_s_best": mb / min(times),
                         "mb_s_median": mb / statistics.median(times),
                         "macc_s_best": n / min(times) / 1e6,
                         "macc_s_median": n / statistics.median(times) / 1e6})

    print(f"reading {args.n:,} accesses through Trace.chunks({args.chunk}), "
          f"best/median of {args.repeat}")
    print(f"{'input':<12} {'MB':>8} {'MB/s best':>10} {'MB/s med':>9} {'Macc/s best':>12} "
          f"{'Macc/s med':>11}")
    for r in rows:
        print(f"{r['input']:<12} {r['bytes'] / 1e6:>8.1f} {r['mb_s_best']:>10.1f} "
              f"{r['mb_s_median']:>9.1f} {r['macc_s_best']:>12.1f} {r['macc_s_median']:>11.1f}")
    print("writing (once): " + ", ".join(
        f"{k} {args.n / v / 1e6:.1f} Macc/s" for k, v in writes.items()))
    if args.json:
        out = json.dumps({"n": args.n, "chunk": args.chunk, "reads": rows,
                          "write_seconds": writes}, indent=1)
        if args.json == "-":
            print(out)
        else:
            Path(args.json).write_text(out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
