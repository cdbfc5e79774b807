"""pytest-benchmark suite of the kmap engine (``pytest bench/test_bench_kmap.py
--benchmark-only``).

The workload of ``bench/kmap.py``: ``page_cache`` with 4 tasks on 4 CPUs, files of 16384
pages, ``kmap; kunmap`` per copy, at 90% and 10% kmap hit rates; the global and the
per-task pool of kernels 2.4.18 (page->virtual field) and 2.6.12 (hashed page_address).
Each round runs a fresh pool (built in the untimed setup). Every benchmark asserts its
checksum: the counters of every round equal those of an untimed run whose prefix was
checked against the pure-Python reference (tests/reference_kmap.py).

Copies by ``MMUBENCH_PROFILE``: ``fast`` 10^5, ``regular`` 10^6 (default), ``large`` 10^7;
``MMUBENCH_N`` overrides it.
"""
import os
import sys
from pathlib import Path

import pytest

from _benchenv import REPO, profile  # noqa: E402,F401  (bench/_benchenv.py)

from kmap import POOLS, load_reference, workload  # noqa: E402

PROFILE, N, ROUNDS = profile(rounds=5)
ORACLE_OPS = 20_000

_traces = {}
_expected = {}


def trace_for(hit):
    if hit not in _traces:
        _traces[hit] = workload(N, hit)
    return _traces[hit]


def expected(kernel, pool, hit):
    key = (kernel, pool, hit)
    if key not in _expected:
        t = trace_for(hit)
        ref_mod = load_reference()
        if ref_mod is not None:
            p = POOLS[pool](kernel=kernel, cpus=4)
            ref = ref_mod.reference_like(p)
            ref.run(t.addr[:ORACLE_OPS], t.op[:ORACLE_OPS], None, t.cpu[:ORACLE_OPS],
                    t.task[:ORACLE_OPS])
            s = p.run(t[:ORACLE_OPS]).to_dict()
            s.pop("asleep"), s.pop("pending")
            assert s == ref.c, "engine and tests/reference_kmap.py disagree"
        _expected[key] = POOLS[pool](kernel=kernel, cpus=4).run(t)
    return _expected[key]


@pytest.mark.parametrize("hit", [0.9, 0.1], ids=["hit90", "hit10"])
@pytest.mark.parametrize("pool", list(POOLS))
@pytest.mark.parametrize("kernel", ["2.4.18", "2.6.12"])
def test_kmap_page_cache(benchmark, kernel, pool, hit):
    benchmark.group = f"kmap page_cache {int(hit * 100)}% hits"
    t = trace_for(hit)
    want = expected(kernel, pool, hit)
    results = []

    def target(p):
        results.append(p.run(t, check_input=False))

    benchmark.pedantic(target, setup=lambda: ((POOLS[pool](kernel=kernel, cpus=4),), {}),
                       rounds=ROUNDS, warmup_rounds=1, iterations=1)
    assert all(r == want for r in results)
    benchmark.extra_info["kmap_kunmap_ops"] = 2 * N
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["M_ops_per_s_best"] = round(2 * N / stats.stats.min / 1e6, 2)
