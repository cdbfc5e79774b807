"""Accesses per second of every workload generator (pyapi.workloads), with the obvious
numpy equivalent in the same run where there is one.

    OPENBLAS_NUM_THREADS=1 python bench/gen.py [--scale 1.0] [--repeat 3] [--chunk 1048576]
                                               [--only uniform,zipf] [--json FILE|-]

Each row streams the whole workload through ``Workload.chunks(chunk)`` (TraceChunk
construction and its validation included, as a consumer sees it) and reports the
median and best of ``--repeat`` runs, as wall-clock and as CPU time of this process
(``time.process_time``; on a shared machine the CPU-time rate is the steadier one).
One-off construction (the zipf bin table, the Sattolo cycle, the BFS graph and order)
is timed separately in the ``setup s`` column.

Checks (exit status 1 on any failure): every repeat gives the same checksum (the sum
of addresses and of op codes modulo 2**64), a run with a prime chunk size (65521) gives
it too (chunking does not change the stream), and the first 2000 accesses equal the
pure-Python reference of tests/reference_gen.py.

numpy rows: ``uniform``/``gups``: ``rng.integers`` per chunk (+ scaling, + an op
column); ``stride``: ``np.arange`` index arithmetic; ``zipf``: the obvious numpy inverse-CDF
generator (a float64 CDF table of all pages + ``np.searchsorted`` per chunk, O(pages)
memory; what pyapi/cli.py used before pyapi.workloads existed) and ``rng.zipf`` (unbounded support, a > 1 only:
not the same distribution, shown for scale); ``stream``: ``np.arange`` arithmetic.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
try:
    import pyapi  # noqa: F401
except ImportError:  # not installed: the source tree (needs an in-place build)
    sys.path.insert(0, str(REPO))

from pyapi import workloads as W  # noqa: E402

M64 = (1 << 64) - 1

#: name, spec at scale 1 (10**8 accesses for the cheap generators)
CASES = [
    ("uniform", "uniform:n=1e8,footprint=1G,seed=1"),
    ("uniform+stores", "uniform:n=1e8,footprint=1G,seed=1,store_fraction=0.3"),
    ("stride", "stride:n=1e8,footprint=1G,stride=64"),
    ("zipf a=1.0", "zipf:n=1e8,pages=1e7,alpha=1.0,seed=1"),
    ("zipf a=0.8", "zipf:n=1e8,pages=1e7,alpha=0.8,seed=1"),
    ("zipf a=1.2", "zipf:n=1e8,pages=1e7,alpha=1.2,seed=1"),
    ("zipf a=1.0 rej-inv", "zipf:n=2e7,pages=1e7,alpha=1.0,seed=1,sampler=rejection-inversion"),
    ("gups", "gups:n_updates=1e8,table_bytes=1G,seed=1"),
    ("pointer_chase", "pointer_chase:n=2e7,nodes=1e6,seed=1"),
    ("matmul naive", "matmul:nsize=256"),
    ("matmul block=32", "matmul:nsize=256,block=32"),
    ("bfs", "bfs:vertices=1e6,avg_degree=8,seed=1"),
    ("stream triad", "stream:n_elements=1e7,kernel=triad,iterations=2"),
]


def scaled(spec: str, scale: float) -> str:
    """The spec with its size parameters multiplied by ``scale`` (counts only)."""
    if scale == 1:
        return spec
    name, _, rest = spec.partition(":")
    keys = {"n", "n_updates", "n_elements", "vertices"}
    parts = []
    for item in rest.split(","):
        k, _, v = item.partition("=")
        if k in keys:
            v = str(max(1, int(float(v) * scale)))
        elif k == "nsize":
            v = str(max(32, int(int(v) * scale ** (1 / 3)) // 32 * 32))
        parts.append(f"{k}={v}")
    return f"{name}:{','.join(parts)}"


def consume(chunks) -> tuple[int, int, int]:
    """Accesses, and the checksum (sum of addr, sum of op, mod 2**64)."""
    n = sa = so = 0
    for c in chunks:
        n += len(c)
        sa += int(c.addr.sum(dtype=np.uint64))
        so += int(c.op.sum(dtype=np.uint64))
    return n, sa & M64, so & M64


def consume_fast(chunks) -> int:
    """Accesses only (the timed loop: the consumer does nothing per chunk)."""
    n = 0
    for c in chunks:
        n += len(c)
    return n


def timed(fn, repeat):
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return result, walls, cpus


# ---------------------------------------------------------------------------- numpy
def np_uniform(n, footprint, align, base, chunk, seed=1):
    rng = np.random.default_rng(seed)
    slots = footprint // align
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        a = rng.integers(0, slots, m, dtype=np.uint64)
        a *= np.uint64(align)
        a += np.uint64(base)
        yield a, np.zeros(m, np.uint8)


def np_stride(n, footprint, stride, base, chunk):
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        a = np.arange(start, start + m, dtype=np.uint64)
        a *= np.uint64(stride)
        a %= np.uint64(footprint)
        a += np.uint64(base)
        yield a, np.zeros(m, np.uint8)


def np_zipf_cdf(n, pages, alpha, chunk, seed=1):
    """Bounded zipf in numpy: a CDF table over all pages, ``searchsorted`` per chunk,
    ranks scattered by a random permutation, uniform byte offset in the page."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(np.arange(1, pages + 1, dtype=np.float64) ** -float(alpha))
    cdf /= cdf[-1]
    perm = rng.permutation(pages).astype(np.uint64)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        rank = np.searchsorted(cdf, rng.random(m), side="right")
        np.minimum(rank, pages - 1, out=rank)
        offset = rng.integers(0, 4096, m, dtype=np.uint64)
        yield perm[rank] * np.uint64(4096) + offset, np.zeros(m, np.uint8)


def np_zipf_unbounded(n, alpha, chunk, seed=1):
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        yield rng.zipf(alpha, m).astype(np.uint64), np.zeros(m, np.uint8)


def np_triad(n_elements, iterations, elem, bases, chunk):
    per = 3
    total = n_elements * iterations * per
    offs = np.array(bases, dtype=np.uint64)
    ops = np.array([0, 0, 1], np.uint8)
    for start in range(0, total, chunk):
        m = min(chunk, total - start)
        t = np.arange(start, start + m, dtype=np.uint64)
        i = (t // np.uint64(per)) % np.uint64(n_elements)
        r = (t % np.uint64(per)).astype(np.intp)
        yield offs[r] + i * np.uint64(elem), ops[r]


def numpy_rows(name, w, chunk):
    p = w.params
    if name == "uniform":
        yield "numpy rng.integers", lambda: np_uniform(w.n, w.footprint, p["align"],
                                                       p["base"], chunk)
    elif name == "gups":
        yield "numpy rng.integers", lambda: np_uniform(w.n, p["table_bytes"], 8, p["base"], chunk)
    elif name == "stride":
        yield "numpy arange", lambda: np_stride(w.n, w.footprint, p["stride"], p["base"], chunk)
    elif name.startswith("zipf") and p["sampler"] == "table":
        n = min(w.n, 10**7)
        yield (f"numpy CDF+searchsorted, n={n:.0e}",
               lambda: np_zipf_cdf(n, p["pages"], p["alpha"], chunk))
        if p["alpha"] > 1:
            yield "numpy rng.zipf (unbounded!)", lambda: np_zipf_unbounded(w.n, p["alpha"], chunk)
    elif name.startswith("stream"):
        bases = [w.regions[a][0] for a, _ in W.Stream.KERNELS[p["kernel"]]]
        yield "numpy arange", lambda: np_triad(p["n_elements"], p["iterations"],
                                               p["elem_bytes"], bases, chunk)


# ---------------------------------------------------------------------------- checks
def reference_prefix_ok(w, k=2000) -> bool:
    sys.path.insert(0, str(REPO / "tests"))
    import reference_gen as ref
    p = w.params
    if w.name in ("bfs", "pointer_chase", "matmul", "stream"):
        # the reference makes the whole stream: check a small instance of the same kind
        if w.name == "bfs":
            small = W.bfs(300, p["avg_degree"], seed=p["seed"])
        elif w.name == "pointer_chase":
            small = W.pointer_chase(k, 500, seed=p["seed"])
        elif w.name == "matmul":
            small = W.matmul(8, block=(4 if p["block"] else None))
        else:
            small = W.stream(300, kernel=p["kernel"], iterations=2)
        return ref.reference(small)[0] == small.addr.tolist()
    cls = type(w)
    args = dict(p)
    if "n" in args:
        args["n"] = min(k, w.n)
    else:
        args["n_updates"] = min(k, w.n)
    head = cls(**args)
    return ref.reference(head)[0] == head.addr.tolist()


def run(args) -> int:
    chunk = args.chunk
    only = set(args.only.split(",")) if args.only else None
    rows, failures = [], []
    for name, spec in CASES:
        if only and not any(name.startswith(o) for o in only):
            continue
        spec = scaled(spec, args.scale)
        w = W.from_spec(spec)
        t0 = time.perf_counter()
        w._core()                      # builds (and caches) tables, cycles, graphs
        setup = time.perf_counter() - t0
        n, walls, cpus = timed(lambda: consume_fast(w.chunks(chunk)), args.repeat)
        sums = {consume(w.chunks(chunk)), consume(w.chunks(chunk))}
        prime = consume(w.chunks(65521))
        ok_chunks = len(sums) == 1 and prime in sums
        ok_ref = reference_prefix_ok(w)
        if not (ok_chunks and ok_ref):
            failures.append(name)
        rows.append({"generator": name, "spec": spec, "accesses": n, "setup_s": setup,
                     "wall_s": walls, "cpu_s": cpus, "checks": ok_chunks and ok_ref})
        for label, make in numpy_rows(name, w, chunk):
            def go(make=make):
                m = 0
                for a, _ in make():
                    m += len(a)
                return m
            m, walls2, cpus2 = timed(go, args.repeat)
            rows.append({"generator": f"  {label}", "spec": "", "accesses": m,
                         "setup_s": None, "wall_s": walls2, "cpu_s": cpus2, "checks": None})
        if args.progress:
            print(f"done: {name}", file=sys.stderr, flush=True)
    if args.json == "-":
        print(json.dumps({"chunk": chunk, "repeat": args.repeat, "rows": rows}, indent=2))
    else:
        print(_table(rows, chunk, args.repeat))
        if args.json:
            Path(args.json).write_text(json.dumps({"chunk": chunk, "repeat": args.repeat,
                                                   "rows": rows}, indent=2) + "\n")
        print()
        target = [r for r in rows if r["generator"] in ("uniform", "stride", "zipf a=1.0")]
        for r in target:
            rate = r["accesses"] / min(r["cpu_s"]) / 1e6
            print(f"target uniform/stride/zipf >= 100 M/s (best CPU time): {r['generator']:>10} "
                  f"{rate:8.1f} M/s  {'PASS' if rate >= 100 else 'MISS'}")
        print("checks:", "all agree" if not failures else f"FAILED: {', '.join(failures)}")
    return 1 if failures else 0


def _table(rows, chunk, repeat) -> str:
    head = (f"workload generators: chunk {chunk}, {repeat} repeats; M acc/s = accesses / "
            f"time (median, best); wall clock and CPU time of this process")
    cols = ("generator", "accesses", "setup s", "wall med", "wall best", "cpu med",
            "cpu best", "checks")
    out = []
    for r in rows:
        n = r["accesses"]
        rate = lambda t: f"{n / t / 1e6:,.1f}" if t > 0 else "-"  # noqa: E731
        out.append((r["generator"], f"{n:,}",
                    "" if r["setup_s"] is None else f"{r['setup_s']:.2f}",
                    rate(statistics.median(r["wall_s"])), rate(min(r["wall_s"])),
                    rate(statistics.median(r["cpu_s"])), rate(min(r["cpu_s"])),
                    "" if r["checks"] is None else ("ok" if r["checks"] else "FAIL")))
    widths = [max(len(x[i]) for x in [cols] + out) for i in range(len(cols))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([head, "", line(cols), line(["-" * w for w in widths])]
                     + [line(o) for o in out])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the access counts (0.01 for a quick look)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    ap.add_argument("--only", help="comma list of generator name prefixes")
    ap.add_argument("--json", metavar="FILE", help="also write JSON ('-': only JSON)")
    ap.add_argument("--progress", action="store_true", help="say on stderr when each row is done")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
