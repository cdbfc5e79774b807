#!/usr/bin/env python3
"""Wall time of a sweep (pyapi.sweep): 3 workloads x 24 configurations, one task each,
with 1 worker, with 2, and on a 2-worker Dask LocalCluster.

    OPENBLAS_NUM_THREADS=1 python bench/sweep.py [--n 10000000 | --quick] [--workers 2]
                                                 [--no-dask] [--json FILE]

Workloads (spec strings, so each task generates its stream itself, chunk by chunk,
inside the timed replay; nothing is shared between tasks but the spec):

* ``uniform``: random 8-byte loads over 1 GiB (``uniform:n=N,footprint=1G,seed=1``);
* ``zipf``: Zipf(1.0) over 262,144 pages of 4 KiB = 1 GiB (``zipf:n=N,pages=262144,...``);
* ``stride``: 8-byte accesses every 64 bytes over 1 GiB, wrapping (``stride:...``).

Configurations: the Skylake preset with STLB entries {1024, 1536, 2048} x ways {8, 16}
x huge_pages {never, thp} x STLB policy {lru, srrip} = 24 (``pyapi.sweeps.grid``).

Runs, each timed from the call of ``sweep`` to its return (so the local pool's start,
forkserver and imports included, is in the figure; the LocalCluster is started before
the clock and its start-up is printed apart): ``workers=1`` (in-process, no pool),
``workers=2`` (a process pool), and ``executor=Client(LocalCluster(n_workers=2,
threads_per_worker=1, processes=True))`` on 127.0.0.1. The rows of the three runs must
be equal (``seconds`` aside); the script exits with status 1 otherwise. ``--quick``
is 10^6 accesses per task.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
try:
    import pyapi  # noqa: F401
except ImportError:  # not installed: the source tree (needs an in-place build)
    sys.path.insert(0, str(REPO))
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")

from pyapi.sweeps import grid, sweep  # noqa: E402


def workloads(n: int):
    return [f"uniform:n={n},footprint=1G,seed=1",
            f"zipf:n={n},pages=262144,alpha=1.0,seed=1",
            f"stride:n={n},footprint=1G,stride=64"]


def configs():
    return grid("skylake", **{"tlbs.stlb.entries": [1024, 1536, 2048],
                              "tlbs.stlb.ways": [8, 16],
                              "huge_pages": ["never", "thp"],
                              "tlbs.stlb.policy": ["lru", "srrip"]})


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=float, default=1e7, help="accesses per task")
    ap.add_argument("--quick", action="store_true", help="10^6 accesses per task")
    ap.add_argument("--workers", type=int, default=2, help="workers of the parallel runs")
    ap.add_argument("--no-dask", dest="no_dask", action="store_true",
                    help="skip the LocalCluster run")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = ap.parse_args(argv)
    n = 10**6 if args.quick else int(args.n)
    traces, cfgs = workloads(n), configs()
    tasks = len(traces) * len(cfgs)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; {len(traces)} workloads x {len(cfgs)} configs = {tasks} "
          f"tasks of {n:,} accesses")
    runs = []

    def run(name, **kw):
        res = sweep(traces, cfgs, progress=False, **kw)
        if res.errors:
            print(f"{name}: {len(res.errors)} failed tasks: {res.errors[0]['error']}")
            sys.exit(1)
        busy = sum(r["seconds"] for r in res.rows)
        runs.append({"run": name, "wall": res.seconds, "task_seconds": busy, "rows": res.rows})
        print(f"  {name}: {res.seconds:.1f} s wall, {busy:.1f} s in tasks", flush=True)
        return res

    base = run("1 worker (in-process)", workers=1)
    run(f"{args.workers} workers (process pool)", workers=args.workers)
    startup = None
    if not args.no_dask:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            print('  LocalCluster: skipped (pip install "mmucore[dask]")')
        else:
            t0 = time.perf_counter()
            with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster, \
                    Client(cluster) as client:
                startup = time.perf_counter() - t0
                run(f"{args.workers}-worker LocalCluster", executor=client)
    same = all(_strip(r["rows"]) == _strip(base.rows) for r in runs)
    t1 = runs[0]["wall"]
    print()
    print(f"{'run':<32} {'wall s':>8} {'speed-up':>9} {'tasks/s':>8} {'Macc/s':>8}")
    for r in runs:
        print(f"{r['run']:<32} {r['wall']:8.1f} {t1 / r['wall']:8.2f}x "
              f"{tasks / r['wall']:8.2f} {tasks * n / r['wall'] / 1e6:8.1f}")
    if startup is not None:
        print(f"(LocalCluster start-up, not in the figure: {startup:.1f} s)")
    per = {}
    for r in base.rows:
        per.setdefault(r["trace"].split(":")[0], []).append(r["seconds"])
    print("task seconds in the 1-worker run, by workload: " + ", ".join(
        f"{k} {min(v):.2f}..{max(v):.2f}" for k, v in per.items()))
    print(f"rows of every run equal: {'yes' if same else 'NO'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        doc = {"n": n, "tasks": tasks, "cpus": os.cpu_count(), "cluster_startup": startup,
               "equal": same, "date": time.strftime("%Y-%m-%d"),
               "runs": [{k: v for k, v in r.items() if k != "rows"} for r in runs]}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
