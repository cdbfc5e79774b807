#!/usr/bin/env python3
"""One long replay: 10^9 accesses through the Skylake preset, in bounded memory (issue 9).

    OPENBLAS_NUM_THREADS=1 python bench/scale.py [--n 1e9] [--only uniform,zipf,native]
                                                 [--chunk-size 1M] [--native-n 1e8] [--json FILE]
                                                 [--ceiling-n 2e7]

Rows, each run in a fresh subprocess so that its peak RSS is its own:

* ``uniform``: ``workloads.uniform(n, footprint="4G")`` (8-byte accesses at random over
  4 GiB: almost every access misses the STLB and walks), generated chunk by chunk inside
  the replay, so generation is part of the time;
* ``zipf``: ``workloads.zipf(n, pages=2**20, alpha=1.0)`` (4 GiB of 4K pages, hot pages
  included), generated inside the replay too;
* ``native``: a native trace on disk (``Trace.convert`` of a uniform 4 GiB workload of
  ``--native-n`` accesses, written before the clock starts), replayed from its
  memory-mapped columns.

MMU: ``MMU.from_preset("skylake", paging="x86_64", huge_pages="never", phys_mem="8G")``
(4 GiB of data pages need more than the default 4 GiB of simulated memory), one CPU.
Reported: wall time of ``mmu.replay(..., chunk_size=...)``, accesses per second, walks,
and the peak RSS of the subprocess (``ru_maxrss``) minus its RSS before the replay (the
interpreter and the modules). Targets of issue 9: zipf <= 20 s, uniform <= 40 s,
RSS <= 300 MB.

Ceiling (``--ceiling-n``, default 2*10^7; 0 skips it): the first ``--ceiling-n``
accesses of the uniform and zipf streams, replayed with the 4 GiB region pre-mapped by
mmucore and by the hand-tuned C loop of ``bench/ceiling_skylake.c`` (``cc -O3``, and
``-O3 -mavx2`` where the CPU has AVX2; see bench/mmu.py), counters checked identical.
Each rate is shown with the time it would take for 10^9 accesses, replay only (no
generation, no demand paging): what a loop written for this one configuration does on
this machine, against the targets.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
try:
    import pyapi  # noqa: F401
except ImportError:  # not installed: the source tree (needs an in-place build)
    sys.path.insert(0, str(REPO))

TARGET_S = {"uniform": 40.0, "zipf": 20.0}
RSS_TARGET_MB = 300


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, n: int, chunk: int, path: str) -> dict:
    """Runs in the subprocess: one replay, its time, counters and memory."""
    from pyapi import MMU, Trace, workloads
    if kind == "uniform":
        trace = workloads.uniform(n, footprint="4G", seed=1)
    elif kind == "zipf":
        trace = workloads.zipf(n, pages=1 << 20, alpha=1.0, seed=1)
    else:
        trace = Trace.open(path)
    mmu = MMU.from_preset("skylake", paging="x86_64", huge_pages="never", phys_mem="8G")
    before = _rss_mb()
    t0 = time.perf_counter()
    stats = mmu.replay(trace, chunk_size=chunk, progress=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"kind": kind, "accesses": int(stats["cpu0.accesses"]), "seconds": seconds,
            "rate": stats["cpu0.accesses"] / seconds, "walks": int(stats["cpu0.walks"]),
            "rss_before_mb": before, "peak_rss_mb": peak, "added_mb": peak - before}


def _run(kind: str, n: int, chunk: int, path: str = "") -> dict:
    code = ("import json, sys; sys.path[:0] = [%r, %r]; import scale; "
            "print(json.dumps(scale._child(%r, %d, %d, %r)))"
            % (str(REPO), str(REPO / "bench"), kind, n, chunk, path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"scale.py: the {kind} replay failed: {last}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ceiling_row(kind: str, n: int) -> dict:
    """mmucore and the hand-tuned C loop on the first n accesses of a row's stream, the
    4 GiB region pre-mapped (bench/mmu.py's ceiling_on), printed and returned."""
    import importlib.util
    from pyapi import workloads
    spec = importlib.util.spec_from_file_location("bench_mmu", REPO / "bench" / "mmu.py")
    bench_mmu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_mmu)
    trace = (workloads.uniform(n, footprint="4G", seed=1) if kind == "uniform" else
             workloads.zipf(n, pages=1 << 20, alpha=1.0, seed=1)).to_chunk(limit=n)
    with tempfile.TemporaryDirectory(prefix="mmucore-ceiling-") as tmp:
        out = bench_mmu.ceiling_on(trace.addr, workloads.DEFAULT_BASE, 4 << 30, 1, tmp,
                                   phys_mem="8G")
    if out is None:
        print(f"ceiling {kind}: no C compiler (cc/gcc); skipped")
        return {"kind": kind, "n": n, "mmucore_rate": None, "c": []}
    m_rate, builds = out
    print(f"ceiling {kind:8} {n:,} accesses pre-mapped: mmucore {m_rate / 1e6:.1f} M/s "
          f"(10^9 in {1e9 / m_rate:.1f} s)", flush=True)
    for flags, c_rate, same in builds:
        print(f"  cc {flags:<12} {c_rate / 1e6:6.1f} M/s (10^9 in {1e9 / c_rate:5.1f} s)  "
              f"mmucore = {m_rate / c_rate:.2f} x C  counters "
              f"{'identical' if same else 'DIFFER'}", flush=True)
    return {"kind": kind, "n": n, "mmucore_rate": m_rate,
            "c": [dict(flags=f, c_rate=r, counters_identical=same) for f, r, same in builds]}


def _count(text: str) -> int:
    from pyapi.cli import parse_count
    return parse_count(text)


def _count_or_zero(text: str) -> int:
    """_count, or 0 (a row turned off)."""
    return 0 if text.strip() == "0" else _count(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=_count, default=10**9, help="accesses per generated run")
    ap.add_argument("--native-n", type=_count, default=10**8,
                    help="accesses of the on-disk native trace (its columns take 10 bytes "
                         "an access)")
    ap.add_argument("--chunk-size", type=_count, default=1 << 20)
    ap.add_argument("--only", default="uniform,zipf,native")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--ceiling-n", type=_count_or_zero, default=2 * 10**7,
                    help="accesses of the ceiling rows (0: skip them)")
    args = ap.parse_args(argv)
    print(f"load average: {os.getloadavg()[0]:.2f}; chunk {args.chunk_size:,} accesses",
          flush=True)
    rows = []
    kinds = args.only.split(",")
    with tempfile.TemporaryDirectory(prefix="mmucore-scale-") as tmp:
        for kind in kinds:
            path = ""
            if kind == "native":
                from pyapi import Trace, workloads
                path = str(Path(tmp) / "uniform.native")
                Trace.convert(workloads.uniform(args.native_n, footprint="4G", seed=1), path)
            n = args.native_n if kind == "native" else args.n
            row = _run(kind, n, args.chunk_size, path)
            rows.append(row)
            target = TARGET_S.get(kind)
            verdict = "" if target is None or row["accesses"] != 10**9 else \
                (" (target <= %.0f s: %s)" % (target, "met" if row["seconds"] <= target
                                              else "MISSED"))
            print(f"{kind:8} {row['accesses']:>14,} accesses  {row['seconds']:8.1f} s  "
                  f"{row['rate'] / 1e6:7.1f} M/s  {row['walks']:>14,} walks  "
                  f"+{row['added_mb']:6.1f} MB RSS (peak {row['peak_rss_mb']:.0f} MB)"
                  f"{verdict}", flush=True)
    ceil = []
    if args.ceiling_n:
        for kind in kinds:
            if kind in TARGET_S:
                ceil.append(ceiling_row(kind, args.ceiling_n))
    worst = max(r["added_mb"] for r in rows)
    print(f"largest RSS added by a replay: {worst:.1f} MB (target <= {RSS_TARGET_MB} MB: "
          f"{'met' if worst <= RSS_TARGET_MB else 'MISSED'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "ceiling": ceil}, indent=2)
                                   + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
