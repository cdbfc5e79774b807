"""Speed, memory and accuracy of the one-pass miss-ratio curves (pyapi.miss_ratio_curve).

    OPENBLAS_NUM_THREADS=1 python bench/mrc.py [--n-exact 1e8] [--n-shards 1e9]
                                               [--n-accuracy 1e7] [--pages 1e6] [--json FILE|-]

Rows (one core; each trace is a seeded workload generated chunk by chunk while it is
consumed, generation included in every time):

* ``exact``: the exact fully associative curve (every size) of a Zipf(1.0) trace of
  ``--n-exact`` accesses over ``--pages`` 4 KiB pages, and, on the same chunks, ten
  fully associative LRU ``pyapi.TLB``s (16 .. 8192 entries, one pass each over every
  chunk): what the curve replaces. The misses of the ten TLBs must equal the curve's.
* ``shards 1%``: fixed-rate SHARDS at rate 0.01 over ``--n-shards`` generated accesses
  (Zipf(1.0) and uniform), each in a fresh subprocess (python + numpy + pyapi + the
  run) that reports its own peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``;
  RUSAGE_CHILDREN of the parent would count the parent's pages at fork time).
* accuracy: SHARDS at rates 0.1 and 0.01 (seeds 0..4) against the exact curve of a
  ``--n-accuracy``-access Zipf(1.0) trace over ``--pages`` pages: mean absolute error of
  the miss ratio over every size from 5/rate entries to the distinct page count, and
  over a log-spaced grid of those sizes (8 per doubling: weighs small sizes more).

Exit status 1 when a check fails (TLB misses differ from the curve). Targets (issue 7):
exact 10^8 <= 30 s; SHARDS 1% over 10^9 <= 15 s and < 100 MB peak RSS; MAE < 0.01 at 0.1.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
try:
    import pyapi  # noqa: F401
except ImportError:  # not installed: the source tree (needs an in-place build)
    sys.path.insert(0, str(REPO))

from pyapi import TLB, miss_ratio_curve, workloads  # noqa: E402
from pyapi.mrc import default_sizes  # noqa: E402

TLB_SIZES = [16 << k for k in range(10)]          # 16 .. 8192 entries
CHUNK = 1 << 18                 # pyapi.mrc.DEFAULT_CHUNK

_SHARDS_CHILD = r"""
import resource, sys, time, json
sys.path.insert(0, {repo!r})
from pyapi import miss_ratio_curve, workloads
w = workloads.from_spec({spec!r})
t0 = time.perf_counter()
c = miss_ratio_curve(w, method="shards", rate={rate!r}, chunk_size={chunk})
dt = time.perf_counter() - t0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": dt, "peak_rss_mb": rss_mb, "accesses": c.accesses, "sampled": c.sampled_accesses,
                  "distinct_estimate": c.distinct_pages, "rate": c.rate,
                  "min_resolved_size": c.min_resolved_size}}))
"""


def parse_n(text) -> int:
    return int(float(str(text).replace("_", "")))


def bench_exact(n, pages):
    w = workloads.zipf(n, pages, alpha=1.0, seed=1)
    t0 = time.perf_counter()
    curve = miss_ratio_curve(w, chunk_size=CHUNK)
    t_curve = time.perf_counter() - t0
    # ten TLBs over the same stream (generation counted once, as for the curve)
    tlbs = [TLB(entries=s, page_size="4K", policy="lru") for s in TLB_SIZES]
    t0 = time.perf_counter()
    for chunk in w.chunks(CHUNK):
        for t in tlbs:
            t.access(chunk.addr, check_input=False)
    t_tlb = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in w.chunks(CHUNK):
        pass
    t_gen = time.perf_counter() - t0
    # the curve at exactly the ten sizes (same stream, a second pass; not timed)
    at = miss_ratio_curve(w, sizes=TLB_SIZES, chunk_size=CHUNK)
    agree = all(int(m) == t.stats.misses for m, t in zip(at.misses, tlbs))
    return {"accesses": n, "pages": pages, "curve_seconds": t_curve, "tlb10_seconds": t_tlb,
            "generation_seconds": t_gen, "distinct_pages": curve.distinct_pages,
            "sizes_in_curve": len(curve.sizes), "agree": agree,
            "tlb_misses": {s: t.stats.misses for s, t in zip(TLB_SIZES, tlbs)}}


def bench_shards(n, spec_kind, rate=0.01):
    spec = (f"zipf:n={n},pages=1e6,alpha=1.0,seed=1" if spec_kind == "zipf"
            else f"uniform:n={n},footprint=64G,seed=1")
    code = _SHARDS_CHILD.format(repo=str(REPO), spec=spec, rate=rate, chunk=CHUNK)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if out.returncode:
        raise RuntimeError(out.stderr)
    doc = json.loads(out.stdout)
    doc.update(workload=spec)
    return doc


def bench_accuracy(n, pages, seeds=range(5)):
    w = workloads.zipf(n, pages, alpha=1.0, seed=1)
    exact = miss_ratio_curve(w, sizes=np.arange(1, pages + 1))
    rows = []
    for rate in (0.1, 0.01):
        lo = int(np.ceil(5 / rate))
        every = np.arange(lo, exact.distinct_pages + 1)
        grid = default_sizes(exact.distinct_pages)
        grid = grid[grid >= lo]
        for seed in seeds:
            s = miss_ratio_curve(w, method="shards", rate=rate, sizes=every, seed=seed)
            err = np.abs(s.miss_ratio - exact.miss_ratio[every - 1])
            on_grid = np.isin(every, grid)
            rows.append({"rate": rate, "seed": seed, "mae_every_size": float(err.mean()),
                         "mae_log_grid": float(err[on_grid].mean()),
                         "max_error": float(err.max())})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-exact", type=parse_n, default=10**8)
    ap.add_argument("--n-shards", type=parse_n, default=10**9)
    ap.add_argument("--n-accuracy", type=parse_n, default=10**7)
    ap.add_argument("--pages", type=parse_n, default=10**6)
    ap.add_argument("--only", default="exact,shards,accuracy",
                    help="comma list of parts to run: exact, shards, accuracy")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    parts = set(args.only.split(","))
    doc = {}
    ok = True
    if "exact" not in parts:
        args.n_exact = 0
    if args.n_exact:
        ok &= _exact_part(args, doc)
    if "shards" in parts:
        _shards_part(args, doc)
    if "accuracy" in parts:
        _accuracy_part(args, doc)
    if args.json:
        text = json.dumps(doc, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0 if ok else 1


def _exact_part(args, doc) -> bool:
    print(f"exact curve vs 10 TLBs: Zipf(1.0), {args.n_exact:,} accesses over "
          f"{args.pages:,} pages of 4 KiB")
    e = bench_exact(args.n_exact, args.pages)
    doc["exact"] = e
    print(f"  curve (every size, {e['sizes_in_curve']} reported)  {e['curve_seconds']:8.2f} s"
          f"  ({e['accesses'] / e['curve_seconds'] / 1e6:.1f} M acc/s; {e['distinct_pages']:,} distinct pages)")
    print(f"  10 x pyapi.TLB (16..8192 entries)   {e['tlb10_seconds']:8.2f} s"
          f"  ratio TLBs / curve = {e['tlb10_seconds'] / e['curve_seconds']:.2f}x;"
          f" misses {'agree' if e['agree'] else 'DISAGREE'}")
    print(f"  (workload generation alone          {e['generation_seconds']:8.2f} s)")
    return e["agree"]


def _shards_part(args, doc) -> None:
    doc["shards"] = []
    for kind in ("zipf", "uniform"):
        s = bench_shards(args.n_shards, kind)
        doc["shards"].append(s)
        print(f"SHARDS 1% over {s['accesses']:,} generated accesses ({s['workload']}):"
              f" {s['seconds']:.2f} s, peak RSS {s['peak_rss_mb']:.0f} MB,"
              f" {s['sampled']:,} sampled, ~{s['distinct_estimate']:,} distinct pages")


def _accuracy_part(args, doc) -> None:
    print(f"SHARDS accuracy: Zipf(1.0), {args.n_accuracy:,} accesses over {args.pages:,} pages")
    rows = bench_accuracy(args.n_accuracy, args.pages)
    doc["accuracy"] = rows
    print(f"  {'rate':>5} {'seed':>4}  {'MAE every size':>14}  {'MAE log grid':>12}  {'max error':>9}")
    for r in rows:
        print(f"  {r['rate']:5g} {r['seed']:4d}  {r['mae_every_size']:14.5f}  "
              f"{r['mae_log_grid']:12.5f}  {r['max_error']:9.4f}")
    for rate in (0.1, 0.01):
        m = [r["mae_every_size"] for r in rows if r["rate"] == rate]
        print(f"  rate {rate:g}: mean MAE (every size >= {int(5 / rate)}) over seeds {np.mean(m):.5f}")


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
