#!/usr/bin/env python3
"""Page walks per second of mmucore's page-table engine, per paging mode, without
paging-structure caches, with cold and with warm ones, demand paging of 10^6 pages, and
the cost of a walk relative to a TLB hit measured in the same run.

    python bench/pagetable.py [--n 1000000] [--repeat 5] [--json FILE]

Workloads (uniformly random addresses, seeded):
* ``no PSC``: 16384 4K pages spread over 64 MiB, no PSCs: every walk starts at the root.
* ``cold PSC``: the PSCs of ``PSC_DEFAULT`` (PDE cache 32 entries), but one 4K page in
  each of 4096 2M regions (8 GiB), so nearly every PDE-cache lookup misses.
* ``warm PSC``: the same PSCs, 8192 pages in 16 2M regions: every walk hits the PDE
  cache after the first 16 and reads the PTE only.
* ``TLB hit``: ``pyapi.TLB`` (64 entries, 4 ways, LRU) on random accesses to 64 pages it
  already holds (every access hits; no two consecutive accesses to one page, so the
  same-page fast path is not what is measured).
* ``demand 10^6``: ``PageTable(demand=True)`` (4 GiB, sequential and random
  allocators) touching 10^6 new 4K pages once each (a minor fault and two walks each).

Each figure is the best of ``--repeat`` runs of one batch call through ``pyapi``; every
run's checksum (sum of refs, faults) is compared with the first run's.
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

import numpy as np  # noqa: E402

from pyapi.pagetable import PageTable, PSC_DEFAULT  # noqa: E402
from pyapi.tlb import TLB  # noqa: E402

MODES = ["x86_32", "pae", "x86_64", "la57"]
K4, M2 = 1 << 12, 1 << 21


def _pages(kind, mode, rng):
    """Page addresses of a workload (inside 4 GiB for the 32-bit modes)."""
    if kind == "no PSC":
        return np.arange(16384, dtype=np.uint64) * np.uint64(K4)
    if kind == "cold PSC":
        regions = 4096 if mode in ("x86_64", "la57") else 1024   # 8 GiB / 2 GiB
        step = M2 if mode != "x86_32" else 1 << 22
        return np.arange(regions, dtype=np.uint64) * np.uint64(step)
    return np.arange(8192, dtype=np.uint64) * np.uint64(K4)     # 16 2M regions


def build(kind, mode, rng):
    psc = None if kind == "no PSC" else "default"
    pt = PageTable(mode, psc=psc, phys_mem="1G")
    pages = _pages(kind, mode, rng)
    pt.map(pages, K4)
    return pt, pages


def timed(fn, repeat):
    best, check = float("inf"), None
    for _ in range(repeat):
        setup = fn()
        t0 = time.perf_counter()
        value = setup()
        dt = time.perf_counter() - t0
        if check is None:
            check = value
        assert value == check, f"checksum changed between runs: {value} != {check}"
        best = min(best, dt)
    return best, check


def walk_bench(kind, mode, n, repeat, seed=0):
    rng = np.random.default_rng(seed)
    state = {}

    def setup():
        pt, pages = build(kind, mode, rng)
        va = pages[np.random.default_rng(seed).integers(0, pages.size, n)] + \
            np.random.default_rng(seed + 1).integers(0, K4, n).astype(np.uint64)
        pt.walk(va[:1000])                 # warm the PSCs (and A bits) on a prefix
        pt.reset_stats()
        state["pt"] = pt

        def run():
            r = pt.walk(va)
            return int(r.refs.sum()), int(np.count_nonzero(r.fault))
        return run
    dt, (refs, faults) = timed(setup, repeat)
    assert faults == 0
    return {"walks_per_s": n / dt, "refs_per_walk": refs / n}


def tlb_hit_bench(n, repeat, seed=0):
    pages = np.arange(64, dtype=np.uint64) * np.uint64(K4)
    idx = np.random.default_rng(seed).integers(0, 63, n)
    idx = (np.cumsum(idx + 1) % 64)                # never the same page twice in a row
    va = pages[idx]

    def setup():
        tlb = TLB(entries=64, ways=4, page_size="4K", policy="lru")
        tlb.access(pages)

        def run():
            return tlb.access(va).hits
        return run
    dt, hits = timed(setup, repeat)
    assert hits == n
    return {"accesses_per_s": n / dt}


def demand_bench(pages, allocator, repeat):
    va = np.arange(pages, dtype=np.uint64) * np.uint64(K4)

    def setup():
        pt = PageTable("x86_64", demand=True, phys_mem="8G", allocator=allocator, seed=1)

        def run():
            r = pt.walk(va, op="store")
            return int(np.count_nonzero(r.fault)), pt.stats.minor_faults.get("4K", 0)
        return run
    dt, (faults, minor) = timed(setup, repeat)
    assert faults == 0 and minor == pages
    return {"pages_per_s": pages / dt, "seconds": dt}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=float, default=1e6, help="walks per measurement")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--demand-pages", type=float, default=1e6)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    n, repeat = int(args.n), args.repeat
    out = {"n": n, "tlb_hit": tlb_hit_bench(n, repeat)}
    hit_ns = 1e9 / out["tlb_hit"]["accesses_per_s"]
    print(f"TLB hit (64 entries, 4 ways, LRU): {out['tlb_hit']['accesses_per_s'] / 1e6:8.1f} "
          f"M accesses/s ({hit_ns:.2f} ns)")
    print()
    print(f"{'mode':8} {'workload':9} {'M walks/s':>10} {'ns/walk':>8} {'refs/walk':>9} "
          f"{'x TLB hit':>9}")
    out["walks"] = {}
    for mode in MODES:
        for kind in ("no PSC", "cold PSC", "warm PSC"):
            r = walk_bench(kind, mode, n, repeat)
            ns = 1e9 / r["walks_per_s"]
            r["ratio_to_tlb_hit"] = ns / hit_ns
            out["walks"][f"{mode} {kind}"] = r
            print(f"{mode:8} {kind:9} {r['walks_per_s'] / 1e6:10.1f} {ns:8.2f} "
                  f"{r['refs_per_walk']:9.2f} {r['ratio_to_tlb_hit']:9.2f}")
    print()
    pages = int(args.demand_pages)
    out["demand"] = {}
    for allocator in ("sequential", "random"):
        r = demand_bench(pages, allocator, max(1, min(repeat, 3)))
        out["demand"][allocator] = r
        print(f"demand paging x86_64, {pages} new 4K pages ({allocator:10}): "
              f"{r['seconds']:.3f} s = {r['pages_per_s'] / 1e6:.2f} M pages/s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
