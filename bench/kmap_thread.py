"""The 2002 thread's question with numbers: the global kmap pool against Bligh's per-task
pool on the same page-cache workloads, on 1, 4 and 16 CPUs (docs/kmap.md, worked example).

    OPENBLAS_NUM_THREADS=1 python bench/kmap_thread.py [--copies 40000] [--pae] [--kernel 2.4.18]

Machine: kernel 2.4.18 with PAE (LAST_PKMAP 512, a 2002 NUMA-Q with more than 4 GB),
one 64-entry 4-way LRU dTLB per CPU (the P6 data TLB Andrea quotes).
Workload (``pyapi.kmap_workloads.page_cache``, seed 0): every task reads its own file of
4096 pages (8x the pool) with ``kmap; copy_to_user; kunmap``, half of the copies finding
their page still mapped; each copy also touches the task's 16-page user buffer twice.
``--copies`` page copies per CPU. Scenarios:

* ``process/CPU``: one single-threaded process per CPU (no context switches);
* ``threads``: one task per CPU, all threads of one process (the per-task pool becomes a
  per-process window shared by the threads: share="mm");
* ``2 procs/CPU``: two processes per CPU taking turns in 64-copy time slices.

"TLB misses caused" = TLB misses of the run minus those of the same trace on a global
pool too large to ever wrap (no kmap flush at all). For the global pool that difference
is the cost of its flushes; for the per-task pool it also holds misses that are not
flush costs (its non-global window entries die at every CR3 write, and its addresses
fall in other TLB sets). docs/kmap.md defines it the same way.
"""
import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import pyapi  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO))

from pyapi.kmap import KmapPool, PerTaskKmapPool  # noqa: E402
from pyapi.kmap_workloads import page_cache  # noqa: E402

TLB = dict(entries=64, ways=4, policy="lru")
SCENARIOS = {
    "process/CPU": dict(per_cpu=1, threads=False),
    "threads": dict(per_cpu=1, threads=True),
    "2 procs/CPU": dict(per_cpu=2, threads=False),
}


def run(cls, trace, cpus, kernel, pae, **kw):
    return cls(kernel=kernel, pae=pae, cpus=cpus, tlb=TLB, **kw).run(trace)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=40000, help="page copies per CPU")
    ap.add_argument("--kernel", default="2.4.18")
    ap.add_argument("--no-pae", action="store_true")
    ap.add_argument("--cpus", type=int, nargs="+", default=[1, 4, 16])
    args = ap.parse_args(argv)
    pae = not args.no_pae
    print(f"kernel {args.kernel}, PAE={pae}, dTLB 64 entries 4-way LRU per CPU, "
          f"{args.copies} page copies per CPU, hit rate 0.5, seed 0\n")
    print("| scenario | CPUs | pool | new maps | global flushes | IPIs | local flushes "
          "| TLB misses | misses caused | lookups | probes |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, sc in SCENARIOS.items():
        for cpus in args.cpus:
            tasks = cpus * sc["per_cpu"]
            trace = page_cache(args.copies * cpus, file_pages=4096, tasks=tasks, cpus=cpus,
                               hit_rate=0.5, user_accesses=2, user_pages=16,
                               threads_per_mm=tasks if sc["threads"] else 1,
                               slice_steps=64, seed=0)
            base = run(KmapPool, trace, cpus, args.kernel, pae, slots=tasks * 4096 + 1)
            share = "mm" if sc["threads"] else "task"
            rows = [("global", run(KmapPool, trace, cpus, args.kernel, pae)),
                    (f"per-task ({share})", run(PerTaskKmapPool, trace, cpus, args.kernel,
                                                pae, share=share))]
            for pool, s in rows:
                ipis = s.ipis + s.task_ipis
                print(f"| {name} | {cpus} | {pool} | {s.new_mappings + s.task_new_mappings} "
                      f"| {s.global_flushes} | {ipis} | {s.task_flushes} | {s.tlb_misses} "
                      f"| {s.tlb_misses - base.tlb_misses} | {s.lookups + s.task_lookups} "
                      f"| {s.hash_probes + s.task_probes} |")
    # the lookup side of the argument: page->virtual (2.4), the hashed page_address
    # that replaced it (2.6.12, 6.x), and the per-task table, on the largest machine
    cpus = max(args.cpus)
    trace = page_cache(args.copies * cpus, file_pages=4096, tasks=cpus, cpus=cpus,
                       hit_rate=0.5, user_accesses=2, user_pages=16, seed=0)
    print(f"\nLookup cost, process/CPU on {cpus} CPUs (page_address() calls, or per-task "
          f"table lookups, and the entries they compare):\n")
    print("| kernel | pool | page_address | lookups | probes | probes per lookup |")
    print("|---|---|---|---:|---:|---:|")
    for kernel in ("2.4.18", "2.6.12", "6.x"):
        for pool, cls in (("global", KmapPool), ("per-task", PerTaskKmapPool)):
            s = run(cls, trace, cpus, kernel, pae)
            how = "hashed" if s.hash_probes else "field"
            n, p = s.lookups + s.task_lookups, s.hash_probes + s.task_probes
            kind = "per-task table" if pool == "per-task" else how
            print(f"| {kernel} | {pool} | {kind} | {n} | {p} | {p / n:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
