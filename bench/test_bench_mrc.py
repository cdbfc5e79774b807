"""pytest-benchmark suite of the miss-ratio curves (``pytest bench --benchmark-only``).

The exact fully associative curve, the set-associative curve (16 sets, 1..64 ways) and
fixed-rate (1%) and fixed-size (4096 pages) SHARDS over a Zipf(1.0) trace over 10^5 pages
of 4 KiB, against ten fully associative LRU ``pyapi.TLB``s (16 .. 8192 entries), the
work a curve replaces. Every benchmark asserts a checksum: the exact curve's misses at
the ten sizes equal the ten TLBs' (computed once outside the timing); SHARDS runs must
give the same estimate every round.

Trace length by ``MMUBENCH_PROFILE``: ``fast`` 10^5, ``regular`` 10^6 (default),
``large`` 10^7 accesses; ``MMUBENCH_N`` overrides it. bench/mrc.py prints the 10^8 /
10^9 figures of bench/README.md.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from _benchenv import REPO, profile  # noqa: E402,F401  (bench/_benchenv.py)

from pyapi import TLB, miss_ratio_curve, workloads  # noqa: E402

PROFILE, N, ROUNDS = profile(rounds=5)
SIZES = [16 << k for k in range(10)]


@pytest.fixture(scope="module")
def trace():
    w = workloads.zipf(N, 100_000, alpha=1.0, seed=1)
    return np.concatenate([c.addr for c in w.chunks(1 << 20)])


@pytest.fixture(scope="module")
def tlb_misses(trace):
    return [TLB(entries=s).access(trace).misses for s in SIZES]


def test_exact_curve(benchmark, trace, tlb_misses):
    curve = benchmark.pedantic(miss_ratio_curve, args=(trace,), rounds=ROUNDS, iterations=1)
    at = miss_ratio_curve(trace, sizes=SIZES)
    assert at.misses.tolist() == tlb_misses
    assert curve.accesses == N


def test_ten_tlbs(benchmark, trace, tlb_misses):
    def run():
        return [TLB(entries=s).access(trace).misses for s in SIZES]
    assert benchmark.pedantic(run, rounds=ROUNDS, iterations=1) == tlb_misses


def test_set_associative_curve(benchmark, trace):
    curve = benchmark.pedantic(miss_ratio_curve, args=(trace,), kwargs=dict(sets=16),
                               rounds=ROUNDS, iterations=1)
    assert curve.misses[3] == TLB(entries=64, ways=4).access(trace).misses


@pytest.mark.parametrize("kwargs", [dict(rate=0.01), dict(sample_size=4096)],
                         ids=["rate-1pct", "size-4096"])
def test_shards(benchmark, trace, kwargs):
    first = miss_ratio_curve(trace, method="shards", **kwargs)
    curve = benchmark.pedantic(miss_ratio_curve, args=(trace,),
                               kwargs=dict(method="shards", **kwargs), rounds=ROUNDS,
                               iterations=1)
    assert curve.misses.tolist() == first.misses.tolist()
