"""Speed of the text-trace parser (mmucore.parse) against the obvious pure-Python parser.

    OPENBLAS_NUM_THREADS=1 python bench/parse.py [--mb 150] [--repeat 5] [--python-mb 16]

Generates, in memory, ~MB megabytes of lackey text that looks like `valgrind
--tool=lackey --trace-mem=yes` output (55% `I` lines with 8-digit addresses, loads /
stores / modifies on a 10-digit stack and an 8-digit heap, decimal sizes), and the same
records as din, xdin and pinatrace text (pinatrace has no `I` lines: its ip is the
instruction's address). Each format is parsed by one `parse_text` call over the whole
buffer (outputs allocated and touched before the clock starts), `--repeat` times; a
second lackey row feeds the same text in 4 MiB pieces the way a streaming reader does
(carry the unconsumed tail into the next piece), copies included. The pure-Python row is the
obvious `for line in text.splitlines(): split, int(x, 16)` parser, on the first
`--python-mb` megabytes of the lackey text. Every run's records are checked against the
generated ones. The table shows best and median MB/s (MB = 10^6 bytes), by wall clock
and by the thread's CPU time (which leaves out time the thread spent descheduled on a
shared machine), and records/s.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

try:
    import mmucore.parse  # noqa: F401
except ImportError:  # not installed: the source tree (needs an in-place build)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmucore.parse import FORMATS, parse_text  # noqa: E402

LOAD, STORE, IFETCH, MODIFY = 0, 1, 2, 3
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_DEC = np.frombuffer(b"0123456789", np.uint8)
BLOCK = 1 << 19                 # lines assembled at a time (bounds the generator's memory)


def make_records(n, seed=0):
    """n lackey-like records: (addr uint64, op uint8, size uint16)."""
    rng = np.random.default_rng(seed)
    op = rng.choice(np.array([IFETCH, LOAD, STORE, MODIFY], np.uint8), n,
                    p=[0.55, 0.25, 0.12, 0.08])
    ins = op == IFETCH
    isz = rng.choice(np.array([1, 2, 3, 4, 5, 6, 7, 8, 10, 15], np.uint16), n)
    pc = 0x4000000 + np.cumsum(np.where(ins, isz, 0), dtype=np.uint64) % (1 << 22)
    stack = rng.random(n) < 0.5
    data = np.where(stack, 0x1FFEFFF000 - rng.integers(0, 1 << 16, n, dtype=np.uint64) * 8,
                    0x4A20000 + rng.integers(0, 1 << 20, n, dtype=np.uint64) * 4)
    dsz = rng.choice(np.array([1, 2, 4, 8, 8, 8, 16, 32], np.uint16), n)
    addr = np.where(ins, pc, data).astype(np.uint64)
    size = np.where(ins, isz, dsz).astype(np.uint16)
    return addr, op, size


def _ndigits(v, base_shift=4):
    nd = np.ones(len(v), np.int64)
    for k in range(1, 64 // base_shift):
        nd += (v >> np.uint64(base_shift * k)) != 0
    return nd


def _hex_field(v, minpad=1, prefix=b""):
    v = v.astype(np.uint64)
    nd = np.maximum(_ndigits(v), minpad)
    p = len(prefix)
    mat = np.zeros((len(v), p + 16), np.uint8)
    if p:
        mat[:, :p] = np.frombuffer(prefix, np.uint8)
    for j in range(16):
        k = nd - 1 - j
        ok = k >= 0
        digit = (v >> (np.uint64(4) * np.maximum(k, 0).astype(np.uint64))) & np.uint64(15)
        mat[ok, p + j] = _HEX[digit[ok]]
    return mat, nd + p


def _dec_field(v):
    v = v.astype(np.int64)
    nd = np.ones(len(v), np.int64)
    for k in range(1, 5):
        nd += v >= 10 ** k
    mat = np.zeros((len(v), 5), np.uint8)
    for j in range(5):
        k = nd - 1 - j
        ok = k >= 0
        mat[ok, j] = _DEC[(v[ok] // 10 ** k[ok]) % 10]
    return mat, nd


def _choice_field(strings, idx):
    w = max(len(s) for s in strings)
    table = np.zeros((len(strings), w), np.uint8)
    for i, s in enumerate(strings):
        table[i, :len(s)] = np.frombuffer(s, np.uint8)
    lens = np.array([len(s) for s in strings], np.int64)
    return table[idx], lens[idx]


def _const_field(s, n):
    return _choice_field([s], np.zeros(n, np.int64))


def _assemble(fields):
    lens = sum(f[1] for f in fields)
    line_off = np.concatenate([[0], np.cumsum(lens)[:-1]])
    out = np.empty(int(lens.sum()), np.uint8)
    off = line_off.copy()
    for mat, flen in fields:
        mask = np.arange(mat.shape[1]) < flen[:, None]
        dest = off[:, None] + np.arange(mat.shape[1])
        out[dest[mask]] = mat[mask]
        off += flen
    return out.tobytes()


def _lines(fmt, addr, op, size, ip):
    n = len(addr)
    nl = _const_field(b"\n", n)
    if fmt == "lackey":
        return [_choice_field([b" L ", b" S ", b"I  ", b" M "], op), _hex_field(addr, 8),
                _const_field(b",", n), _dec_field(size), nl]
    if fmt == "din":
        return [_choice_field([b"0 ", b"1 ", b"2 ", b"1 "], op), _hex_field(addr), nl]
    if fmt == "xdin":
        return [_choice_field([b"r ", b"w ", b"i ", b"w "], op), _hex_field(addr),
                _const_field(b" ", n), _hex_field(size), nl]
    # pinatrace: data records only
    return [_hex_field(ip, prefix=b"0x"), _choice_field([b": R 0x", b": W 0x"], op & 1),
            _hex_field(addr), nl]


def make_text(fmt, addr, op, size):
    """The records as `fmt` text (bytes)."""
    if fmt == "pinatrace":
        ins = op == IFETCH
        ip = np.maximum.accumulate(np.where(ins, np.arange(len(op)), 0))
        ip = addr[ip]
        keep = ~ins
        addr, op, size, ip = addr[keep], op[keep], size[keep], ip[keep]
    else:
        ip = None
    parts = []
    for s in range(0, len(addr), BLOCK):
        sl = slice(s, s + BLOCK)
        parts.append(_assemble(_lines(fmt, addr[sl], op[sl], size[sl],
                                      None if ip is None else ip[sl])))
    text = b"".join(parts)
    if fmt == "pinatrace":
        text += b"#eof\n"
    return text


def expected(fmt, addr, op, size):
    """The columns parse_text must produce from make_text(fmt, ...)."""
    if fmt == "lackey":
        return addr, op, size
    if fmt == "din":
        return (addr & ~np.uint64(3), np.array([0, 1, 2, 1], np.uint8)[op],
                np.full(len(addr), 4, np.uint16))
    if fmt == "xdin":
        return addr, np.array([0, 1, 2, 1], np.uint8)[op], size
    keep = op != IFETCH
    return addr[keep], (op[keep] & 1).astype(np.uint8), np.zeros(int(keep.sum()), np.uint16)


def parse_whole(fmt, text, cols):
    """One parse_text call over the whole text into `cols` (allocated and touched before
    the clock starts, so no page fault is timed). Returns (wall s, CPU s, result)."""
    addr, op, size = cols
    t0, c0 = time.perf_counter(), time.thread_time()
    r = parse_text(FORMATS[fmt], text, True, addr, op, size)
    return time.perf_counter() - t0, time.thread_time() - c0, r


def parse_streaming(fmt, text, n, piece=4 << 20, cap=1 << 18):
    """Feed `text` in `piece`-byte pieces as a streaming reader does, draining outputs of
    `cap` records into the result columns."""
    code = FORMATS[fmt]
    addr, op, size = np.empty(cap, np.uint64), np.empty(cap, np.uint8), np.empty(cap, np.uint16)
    out_a, out_o, out_s = np.empty(n, np.uint64), np.empty(n, np.uint8), np.empty(n, np.uint16)
    out_a.fill(0), out_o.fill(0), out_s.fill(0)
    view = memoryview(text)
    t0, c0 = time.perf_counter(), time.thread_time()
    carry, k = b"", 0
    for start in range(0, len(text), piece):
        buf = carry + view[start:start + piece] if carry else view[start:start + piece]
        final = start + piece >= len(text)
        while True:
            r = parse_text(code, buf, final, addr, op, size)
            m = r.n_records
            out_a[k:k + m], out_o[k:k + m], out_s[k:k + m] = addr[:m], op[:m], size[:m]
            k += m
            if r.err_offset >= 0:
                raise ValueError(f"malformed line at {r.err_offset}")
            buf = buf[r.consumed_bytes:]
            if m < cap or r.eof_seen:
                break
        carry = bytes(buf)
    return (time.perf_counter() - t0, time.thread_time() - c0,
            (out_a[:k], out_o[:k], out_s[:k]))


def python_lackey(text):
    """The obvious pure-Python lackey parser."""
    ops = {b"I": IFETCH, b"L": LOAD, b"S": STORE, b"M": MODIFY}
    addrs, kinds, sizes = [], [], []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ops:
            continue
        a, s = parts[1].split(b",")
        addrs.append(int(a, 16))
        kinds.append(ops[parts[0]])
        sizes.append(int(s))
    return (np.array(addrs, np.uint64), np.array(kinds, np.uint8),
            np.array(sizes, np.uint16))


def _check(name, got, want):
    for g, w, col in zip(got, want, ("addr", "op", "size")):
        if len(g) != len(w) or not np.array_equal(g, w):
            raise SystemExit(f"{name}: {col} column differs from the generated records")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=150, help="lackey text size (10^6 bytes)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--python-mb", type=float, default=16,
                    help="bytes of lackey text given to the pure-Python parser")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    n = int(args.mb * 1e6 / 15.6)
    t0 = time.perf_counter()
    rec = make_records(n, args.seed)
    texts = {fmt: make_text(fmt, *rec) for fmt in FORMATS}
    print(f"generated {n:,} records in {time.perf_counter() - t0:.1f} s; text sizes: "
          + ", ".join(f"{f} {len(t) / 1e6:.0f} MB" for f, t in texts.items()))

    cols = (np.empty(n, np.uint64), np.empty(n, np.uint8), np.empty(n, np.uint16))
    for c in cols:
        c.fill(0)
    rows = []
    for fmt, text in texts.items():
        want = expected(fmt, *rec)
        times = []
        for _ in range(args.repeat):
            wall, cpu, r = parse_whole(fmt, text, cols)
            m = r.n_records
            _check(fmt, (cols[0][:m], cols[1][:m], cols[2][:m]), want)
            times.append((wall, cpu))
        rows.append((fmt, len(text), len(want[0]), times))
    want = expected("lackey", *rec)
    times = []
    for _ in range(args.repeat):
        wall, cpu, got = parse_streaming("lackey", texts["lackey"], n)
        _check("lackey (4 MiB pieces)", got, want)
        times.append((wall, cpu))
    rows.append(("lackey, 4 MiB pieces", len(texts["lackey"]), n, times))

    lk = texts["lackey"]
    cut = lk.rfind(b"\n", 0, int(args.python_mb * 1e6)) + 1
    prefix = lk[:cut]
    times = []
    for _ in range(max(1, min(args.repeat, 3))):
        t0, c0 = time.perf_counter(), time.thread_time()
        got = python_lackey(prefix)
        times.append((time.perf_counter() - t0, time.thread_time() - c0))
        _check("pure Python", got, tuple(c[:len(got[0])] for c in want))
    py_row = ("pure Python (lackey)", len(prefix), len(got[0]), times)
    rows.append(py_row)

    def rate(nbytes, ts, which, stat):
        return nbytes / stat([t[which] for t in ts]) / 1e6

    print(f"\n{'':<24} {'':>6} {'':>12} {'MB/s, wall clock':>21} {'MB/s, CPU time':>21}"
          f" {'Mrec/s':>8}")
    print(f"{'parser':<24} {'MB':>6} {'records':>12} {'best':>10} {'median':>10} "
          f"{'best':>10} {'median':>10} {'best':>8}")
    for name, nbytes, nrec, ts in rows:
        print(f"{name:<24} {nbytes / 1e6:6.0f} {nrec:12,} "
              f"{rate(nbytes, ts, 0, min):10.1f} {rate(nbytes, ts, 0, statistics.median):10.1f} "
              f"{rate(nbytes, ts, 1, min):10.1f} {rate(nbytes, ts, 1, statistics.median):10.1f} "
              f"{rate(nrec, ts, 0, min) :8.2f}")
    lk_row = rows[0]
    ratios = [rate(lk_row[1], lk_row[3], w, st) / rate(py_row[1], py_row[3], w, st)
              for w in (0, 1) for st in (min, statistics.median)]
    print(f"\nmmucore lackey vs pure Python: {ratios[0]:.0f}x best / {ratios[1]:.0f}x median "
          f"(wall clock), {ratios[2]:.0f}x / {ratios[3]:.0f}x (CPU time)  [{args.repeat} "
          f"repeats; pure Python on the first {len(prefix) / 1e6:.0f} MB]")
    best = rate(lk_row[1], lk_row[3], 0, min)
    print(f"target >= 300 MB/s of lackey text on one core: "
          f"{'PASS' if best >= 300 else 'MISS'} ({best:.0f} MB/s best, wall clock)")


if __name__ == "__main__":
    main()
