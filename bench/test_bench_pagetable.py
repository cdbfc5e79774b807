"""pytest-benchmark suite of the page-table engine (``pytest bench/test_bench_pagetable.py
--benchmark-only``): the workloads of ``bench/pagetable.py`` (walks per mode without PSCs,
with cold and with warm PSCs; demand paging of new pages; a TLB hit for scale).

Every benchmark asserts a checksum: the total walk references (and no faults) of each
round equal a value computed once, outside the timing, by the pure-Python reference
model of ``tests/reference_pagetable.py`` on a prefix of the trace extended by the
per-mode reference counts of ``specs/hardware.md``; demand paging must count exactly one
minor fault per page. Trace length by ``MMUBENCH_PROFILE``: ``fast`` 10^5, ``regular``
10^6 (default), ``large`` 10^7 walks; ``MMUBENCH_N`` overrides it. Each round uses a fresh
table built in the untimed setup.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from _benchenv import REPO, profile  # noqa: E402,F401  (bench/_benchenv.py)

from pagetable import MODES, _pages  # noqa: E402  (bench/pagetable.py)
from pyapi.pagetable import PageTable  # noqa: E402
from pyapi.tlb import TLB  # noqa: E402

PROFILE, N, ROUNDS = profile(rounds=5)
K4 = 1 << 12
LEVELS = {"x86_32": 2, "pae": 2, "x86_64": 4, "la57": 5}
KINDS = ["no PSC", "cold PSC", "warm PSC"]


def _trace(kind, mode):
    pages = _pages(kind, mode, None)
    rng = np.random.default_rng(0)
    va = pages[rng.integers(0, pages.size, N)] + rng.integers(0, K4, N).astype(np.uint64)
    return pages, va


def _fresh(kind, mode, pages):
    pt = PageTable(mode, psc=None if kind == "no PSC" else "default", phys_mem="1G")
    pt.map(pages, K4)
    return pt


_expected = {}


def expected_refs(kind, mode, pages, va):
    """Total references of a fresh table on the whole trace. With no PSC every walk
    reads `levels` entries (specs/hardware.md), checked against the reference model on a
    prefix; with PSCs a second engine instance gives the figure after agreeing with the
    reference model on a prefix."""
    key = (kind, mode)
    if key not in _expected:
        from reference_pagetable import ReferencePageTable
        from pyapi.pagetable import PSC_DEFAULT
        psc = {} if kind == "no PSC" else {L: (e, w, "lru") for L, (e, w) in
                                            PSC_DEFAULT.items() if L in _fresh(kind, mode, pages[:1]).psc}
        ref = ReferencePageTable(mode, nframes=1 << 18, psc=psc)
        prefix = va[:2000].tolist()
        # references depend on which tables exist, not on frames: map the pages the
        # prefix touches (every page of a workload has the same depth)
        for p in sorted({v & ~(K4 - 1) for v in prefix}):
            ref.map(p, K4)
        eng = _fresh(kind, mode, pages)
        assert eng.walk(va[:2000]).refs.tolist() == ref.walk(prefix).refs
        if kind == "no PSC":
            _expected[key] = N * LEVELS[mode]
        else:
            _expected[key] = int(_fresh(kind, mode, pages).walk(va).refs.sum())
    return _expected[key]


def run_rounds(benchmark, setup, run):
    results = []

    def target(*args):
        results.append(run(*args))

    benchmark.pedantic(target, setup=lambda: (setup(), {}), rounds=ROUNDS,
                       warmup_rounds=1, iterations=1)
    benchmark.extra_info["walks"] = N
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["M_walks_per_s_best"] = round(N / stats.stats.min / 1e6, 2)
    return results


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_walks(benchmark, kind, mode):
    benchmark.group = f"walk {kind}"
    pages, va = _trace(kind, mode)
    expected = expected_refs(kind, mode, pages, va)

    def run(pt):
        r = pt.walk(va)
        return int(r.refs.sum()), int(np.count_nonzero(r.fault))
    got = run_rounds(benchmark, lambda: (_fresh(kind, mode, pages),), run)
    assert set(got) == {(expected, 0)}


def test_tlb_hit(benchmark):
    benchmark.group = "walk warm PSC"
    pages = np.arange(64, dtype=np.uint64) * np.uint64(K4)
    va = pages[np.cumsum(np.random.default_rng(0).integers(0, 63, N) + 1) % 64]

    def setup():
        tlb = TLB(entries=64, ways=4)
        tlb.access(pages)
        return (tlb,)
    got = run_rounds(benchmark, setup, lambda tlb: tlb.access(va).hits)
    assert set(got) == {N}


@pytest.mark.parametrize("allocator", ["sequential", "random"])
def test_demand_paging(benchmark, allocator):
    benchmark.group = "demand paging"
    pages = min(N, 1_000_000)
    va = np.arange(pages, dtype=np.uint64) * np.uint64(K4)

    def setup():
        return (PageTable("x86_64", demand=True, phys_mem="8G", allocator=allocator,
                          seed=1),)

    def run(pt):
        r = pt.walk(va, op="store")
        return int(np.count_nonzero(r.fault)), pt.stats.minor_faults.get("4K", 0)
    got = run_rounds(benchmark, setup, run)
    assert set(got) == {(0, pages)}
