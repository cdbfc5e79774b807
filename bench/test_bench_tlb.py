"""pytest-benchmark suite of the TLB engine and its peers (``pytest bench --benchmark-only``).

Configurations are those of ``bench/compare_tlb.py``: uniform random addresses over
64 MiB and a sequential 64-byte stride, through a 16 sets x 4 ways LRU TLB and a fully
associative 64-entry LRU TLB (4 KiB pages), for mmucore, pycachesim (numpy array and
list input) and libcachesim (fully associative only); plus every replacement policy of
mmucore on 16x4 random. Every benchmark asserts a checksum: the miss count of each run
equals a value computed once, outside the timing, by the OrderedDict LRU model (LRU) or
by a second engine instance that was itself checked against ``tests/reference_tlb.py``
on a prefix of the trace (other policies).

Trace length by ``MMUBENCH_PROFILE``: ``fast`` 10^5, ``regular`` 10^6 (default),
``large`` 10^7 accesses; ``MMUBENCH_N`` overrides it. Each round uses a fresh structure
(built in the untimed setup).
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from _benchenv import REPO, profile  # noqa: E402,F401  (bench/_benchenv.py)

from pyapi import TLB, POLICY_NAMES  # noqa: E402
from pyapi._bench import (PAGE_SHIFT, STRUCTURES, WORKLOADS,  # noqa: E402
                          load_reference_module, make_workload, python_lru_misses)

PROFILE, N, ROUNDS = profile(rounds=5)
ORACLE_PREFIX = 20_000          # accesses checked against tests/reference_tlb.py

GEOMETRY = {name: (sets, ways) for name, sets, ways in STRUCTURES}
CASES = [(wl, name) for wl in WORKLOADS for name in GEOMETRY]
CASE_IDS = [f"{wl}-{name.split()[0]}" for wl, name in CASES]


@pytest.fixture(scope="session")
def traces():
    return {wl: make_workload(wl, N, seed=0) for wl in WORKLOADS}


_lru_expected = {}


def lru_misses(traces, wl, structure):
    """Misses of LRU on the whole trace by the pure-Python OrderedDict model (once)."""
    key = (wl, structure)
    if key not in _lru_expected:
        sets, ways = GEOMETRY[structure]
        _lru_expected[key] = python_lru_misses(traces[wl].tolist(), sets, ways)
    return _lru_expected[key]


def run_rounds(benchmark, setup, run):
    """Time ``run(*setup())`` ROUNDS times, each on a fresh structure; returns the
    miss counts of every round."""
    results = []

    def target(*args):
        results.append(run(*args))

    benchmark.pedantic(target, setup=lambda: (setup(), {}), rounds=ROUNDS,
                       warmup_rounds=1, iterations=1)
    benchmark.extra_info["accesses"] = N
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["M_accesses_per_s_best"] = round(N / stats.stats.min / 1e6, 2)
    return results


# ---------------------------------------------------------------------------- mmucore
@pytest.mark.parametrize("wl,structure", CASES, ids=CASE_IDS)
def test_mmucore_lru(benchmark, traces, wl, structure):
    benchmark.group = f"{wl} {structure}"
    sets, ways = GEOMETRY[structure]
    va = traces[wl]
    expected = lru_misses(traces, wl, structure)
    misses = run_rounds(
        benchmark,
        lambda: (TLB(entries=sets * ways, ways=ways, page_size="4K", policy="lru"),),
        lambda tlb: tlb.access(va).misses)
    assert set(misses) == {expected}


_policy_expected = {}


def policy_misses(traces, policy):
    """Misses of ``policy`` on 16x4 uniform: a second engine instance on the whole trace,
    after checking the engine against the pure-Python oracle on a prefix."""
    if policy not in _policy_expected:
        va = traces["uniform"]
        ref_mod, _ = load_reference_module([REPO / "tests"])
        if ref_mod is not None:
            prefix = va[:ORACLE_PREFIX]
            ref = ref_mod.ReferenceTLB(entries=64, ways=4, page_size="4K", policy=policy)
            eng = TLB(entries=64, ways=4, page_size="4K", policy=policy)
            assert eng.access(prefix).misses == ref.access(prefix.tolist()).misses, \
                f"engine and tests/reference_tlb.py disagree on {policy}"
        _policy_expected[policy] = TLB(entries=64, ways=4, page_size="4K",
                                       policy=policy).access(va).misses
    return _policy_expected[policy]


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_mmucore_policy_16x4_uniform(benchmark, traces, policy):
    benchmark.group = "uniform 16x4 by policy"
    va = traces["uniform"]
    expected = policy_misses(traces, policy)
    misses = run_rounds(
        benchmark,
        lambda: (TLB(entries=64, ways=4, page_size="4K", policy=policy),),
        lambda tlb: tlb.access(va).misses)
    assert set(misses) == {expected}


# ---------------------------------------------------------------------------- pycachesim
def _pycachesim_setup(sets, ways):
    cachesim = pytest.importorskip("cachesim", reason="pycachesim is not installed")

    def setup():
        mem = cachesim.MainMemory()
        tlb = cachesim.Cache("TLB", sets, ways, 1 << PAGE_SHIFT, "LRU")
        mem.load_to(tlb)
        mem.store_from(tlb)
        return (cachesim.CacheSimulator(tlb, mem), tlb)
    return setup


def _pycachesim_run(addrs):
    def run(sim, tlb):
        sim.load(addrs)
        return int(tlb.backend.MISS_count)
    return run


@pytest.mark.parametrize("wl,structure", CASES, ids=CASE_IDS)
def test_pycachesim_ndarray(benchmark, traces, wl, structure):
    benchmark.group = f"{wl} {structure}"
    setup = _pycachesim_setup(*GEOMETRY[structure])
    misses = run_rounds(benchmark, setup, _pycachesim_run(traces[wl]))
    assert set(misses) == {lru_misses(traces, wl, structure)}


_lists = {}


@pytest.mark.parametrize("wl,structure", CASES, ids=CASE_IDS)
def test_pycachesim_list(benchmark, traces, wl, structure):
    """The same addresses as a Python list (``tolist()`` is not timed): pycachesim's
    fastest input."""
    benchmark.group = f"{wl} {structure}"
    setup = _pycachesim_setup(*GEOMETRY[structure])
    if wl not in _lists:
        _lists.clear()
        _lists[wl] = traces[wl].tolist()
    misses = run_rounds(benchmark, setup, _pycachesim_run(_lists[wl]))
    assert set(misses) == {lru_misses(traces, wl, structure)}


# ---------------------------------------------------------------------------- libcachesim
@pytest.fixture(scope="session")
def oracle_general_files(traces):
    """The page numbers of each trace as libcachesim oracleGeneral files (size 1 each)."""
    with tempfile.TemporaryDirectory(prefix="mmucore-bench-") as tmp:
        paths = {}
        for wl, va in traces.items():
            rec = np.zeros(va.shape[0], dtype=np.dtype(
                [("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")]))
            rec["id"] = va >> np.uint64(PAGE_SHIFT)
            rec["size"] = 1
            rec["next"] = -1
            paths[wl] = os.path.join(tmp, f"{wl}.oracleGeneral.bin")
            rec.tofile(paths[wl])
        yield paths


@pytest.mark.parametrize("wl", WORKLOADS)
def test_libcachesim_fa64(benchmark, traces, oracle_general_files, wl):
    lcs = pytest.importorskip("libcachesim", reason="libcachesim is not installed")
    benchmark.group = f"{wl} FA-64 LRU"
    path = oracle_general_files[wl]

    def setup():
        return (lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE),
                lcs.LRU(64, hashpower=10))

    def run(reader, cache):
        miss_ratio, _ = cache.process_trace(reader)
        return int(round(miss_ratio * N))

    misses = run_rounds(benchmark, setup, run)
    assert set(misses) == {lru_misses(traces, wl, "FA-64 LRU")}
