"""pytest-benchmark suite of the workload generators (``pytest bench/test_bench_gen.py
--benchmark-only``).

Each benchmark streams a whole workload through ``Workload.chunks(2**20)`` (the
TraceChunk construction included, as consumers see it) and sums the addresses of every
chunk (so the timed region also reads each chunk once, as a consumer would); the sum
(mod 2**64) must equal a checksum computed once, outside the timing, with another
chunk size (65521), so a benchmark that passed measured the right stream.
The numpy rows (``rng.integers`` for uniform, ``np.arange`` for stride) make the same
amount of data per chunk for comparison; their results are not the same stream.

Accesses per benchmark by ``MMUBENCH_PROFILE``: ``fast`` 10^6, ``regular`` 10^7
(default), ``large`` 10^8; ``MMUBENCH_N`` overrides it. BFS and matmul use the
nearest sizes of their own shapes.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from _benchenv import REPO, profile  # noqa: E402,F401  (bench/_benchenv.py)

from pyapi import workloads as W  # noqa: E402

PROFILE, N, ROUNDS = profile({"fast": 10**6, "regular": 10**7, "large": 10**8}, rounds=3)
CHUNK = 1 << 20
M64 = (1 << 64) - 1


def _nsize(n):                          # matmul size with about n accesses (naive)
    return max(8, int(round((n / 2) ** (1 / 3))) // 8 * 8)


CASES = {
    "uniform": f"uniform:n={N},footprint=1G,seed=1",
    "stride": f"stride:n={N},footprint=1G",
    "zipf": f"zipf:n={N},pages=1e7,alpha=1.0,seed=1",
    "zipf-rejection-inversion": f"zipf:n={N // 4},pages=1e7,alpha=1.0,seed=1,"
                                f"sampler=rejection-inversion",
    "gups": f"gups:n_updates={N},table_bytes=1G,seed=1",
    "pointer_chase": f"pointer_chase:n={N},nodes=1e6,seed=1",
    "matmul": f"matmul:nsize={_nsize(N)}",
    "matmul-blocked": f"matmul:nsize={_nsize(N)},block=8",
    "bfs": f"bfs:vertices={max(1, N // 22)},avg_degree=8,seed=1",
    "stream-triad": f"stream:n_elements={max(1, N // 3)},kernel=triad",
}


def checksum(chunks):
    total = 0
    for c in chunks:
        total += int(c.addr.sum(dtype=np.uint64))
    return total & M64


@pytest.mark.parametrize("name", list(CASES))
def test_generator(benchmark, name):
    w = W.from_spec(CASES[name])
    w._core()                                   # tables, cycles, graphs: built untimed
    expected = checksum(w.chunks(65521))
    benchmark.extra_info["accesses"] = len(w)
    got = benchmark.pedantic(lambda: checksum(w.chunks(CHUNK)), rounds=ROUNDS, iterations=1)
    assert got == expected


def _np_uniform():
    rng = np.random.default_rng(1)
    total = 0
    for start in range(0, N, CHUNK):
        m = min(CHUNK, N - start)
        a = rng.integers(0, (1 << 30) // 8, m, dtype=np.uint64) * np.uint64(8)
        a += np.uint64(W.DEFAULT_BASE)
        np.zeros(m, np.uint8)
        total += int(a.sum(dtype=np.uint64))
    return total & M64


def _np_stride():
    total = 0
    for start in range(0, N, CHUNK):
        m = min(CHUNK, N - start)
        a = (np.arange(start, start + m, dtype=np.uint64) * np.uint64(64)) % np.uint64(1 << 30)
        a += np.uint64(W.DEFAULT_BASE)
        np.zeros(m, np.uint8)
        total += int(a.sum(dtype=np.uint64))
    return total & M64


def test_numpy_uniform(benchmark):
    benchmark.extra_info["accesses"] = N
    benchmark.pedantic(_np_uniform, rounds=ROUNDS, iterations=1)


def test_numpy_stride(benchmark):
    benchmark.extra_info["accesses"] = N
    got = benchmark.pedantic(_np_stride, rounds=ROUNDS, iterations=1)
    assert got == checksum(W.stride(N, 1 << 30).chunks(65521))   # the same stream
