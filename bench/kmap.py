"""kmap/kunmap operations per second of the kmap engine on page-cache workloads.

    OPENBLAS_NUM_THREADS=1 python bench/kmap.py [--n 4000000] [--repeat 5] [--kernel 2.4.18 ...]

Workload: ``pyapi.kmap_workloads.page_cache`` with 4 tasks on 4 CPUs reading files of
16384 pages (larger than the pool) page by page, ``kmap; kunmap`` per copy, at a 90% and a
10% kmap hit rate (seed 0; no user accesses, no TLB model: the pool alone). Pools: the
global pool (``KmapPool``) and the per-task pool (``PerTaskKmapPool``, default window),
for each kernel asked (default 2.4.18 = page->virtual field, 2.6.12 = hashed
page_address, 6.x).

Rates count kmap + kunmap ops (the few SWITCH ops of the trace are not counted but are
timed). Each repeat runs a fresh pool on the same trace; the best repeat is shown, by
wall clock and by process CPU time. On a machine shared with other jobs the wall-clock
rate is what this process got; the CPU-time rate is what the engine does per second of
a core. The pure-Python reference (tests/reference_kmap.py) runs on a prefix of the same
trace in the same run; its counters must equal the engine's on that prefix (the script
exits with status 1 otherwise).
"""
import argparse
import importlib.util
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import pyapi  # noqa: F401
except ImportError:  # not installed: the source tree (needs an in-place build)
    sys.path.insert(0, str(REPO))


from pyapi import Op  # noqa: E402
from pyapi.kmap import KmapPool, PerTaskKmapPool  # noqa: E402
from pyapi.kmap_workloads import page_cache  # noqa: E402

POOLS = {"global": KmapPool, "per-task": PerTaskKmapPool}


def load_reference():
    tests = REPO / "tests"
    if not (tests / "reference_kmap.py").exists():
        return None
    sys.path.insert(0, str(tests))
    spec = importlib.util.spec_from_file_location("reference_kmap", tests / "reference_kmap.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["reference_kmap"] = mod
    spec.loader.exec_module(mod)
    return mod


def workload(n, hit_rate, seed=0):
    return page_cache(n, file_pages=16384, tasks=4, cpus=4, hit_rate=hit_rate,
                      user_accesses=0, seed=seed)


def time_engine(cls, kernel, trace, repeat):
    walls, cpus = [], []
    stats = None
    for _ in range(repeat):
        pool = cls(kernel=kernel, cpus=4)
        w0, c0 = time.perf_counter(), time.process_time()
        s = pool.run(trace, check_input=False)
        c1, w1 = time.process_time(), time.perf_counter()
        walls.append(w1 - w0)
        cpus.append(c1 - c0)
        assert stats is None or s == stats, "repeats disagree"
        stats = s
    return min(walls), min(cpus), stats


def time_reference(ref_mod, cls, kernel, trace, m):
    pool = cls(kernel=kernel, cpus=4)
    ref = ref_mod.reference_like(pool)
    cols = [trace.addr[:m], trace.op[:m], None, trace.cpu[:m], trace.task[:m]]
    w0, c0 = time.perf_counter(), time.process_time()
    ref.run(*cols)
    c1, w1 = time.process_time(), time.perf_counter()
    s = pool.run(trace[:m]).to_dict()
    s.pop("asleep"), s.pop("pending")
    return w1 - w0, c1 - c0, s == ref.c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=float, default=4e6, help="page copies (kmap+kunmap pairs)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--kernel", nargs="+", default=["2.4.18", "2.6.12", "6.x"])
    ap.add_argument("--reference-ops", type=int, default=60000,
                    help="trace ops the pure-Python reference runs")
    args = ap.parse_args(argv)
    n = int(args.n)
    ref_mod = load_reference()
    ok = True
    print(f"page_cache: {n} copies (= {2 * n} kmap+kunmap ops), 4 tasks on 4 CPUs, "
          f"best of {args.repeat}")
    print(f"{'kernel':8} {'pool':9} {'hit':>5} {'wall M ops/s':>13} {'CPU M ops/s':>12} "
          f"{'hit ratio':>9} {'flushes':>8} {'ref ops/s':>10} {'ref==engine':>11}")
    for hit in (0.9, 0.1):
        trace = workload(n, hit)
        kops = int(((trace.op == Op.KMAP) | (trace.op == Op.KUNMAP)).sum())
        for kernel in args.kernel:
            for name, cls in POOLS.items():
                wall, cpu, s = time_engine(cls, kernel, trace, args.repeat)
                ref_rate, agree = "-", "-"
                if ref_mod is not None:
                    m = min(args.reference_ops, len(trace))
                    rw, rc, same = time_reference(ref_mod, cls, kernel, trace, m)
                    mk = int(((trace.op[:m] == Op.KMAP) | (trace.op[:m] == Op.KUNMAP)).sum())
                    ref_rate = f"{mk / rc / 1e3:.0f} K" if rc > 0 else "-"
                    agree = "agree" if same else "DISAGREE"
                    ok &= same
                flushes = s.global_flushes + s.task_flushes
                print(f"{kernel:8} {name:9} {hit:5.0%} {kops / wall / 1e6:13.1f} "
                      f"{kops / cpu / 1e6:12.1f} {s.hit_ratio:9.3f} {flushes:8d} "
                      f"{ref_rate:>10} {agree:>11}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
