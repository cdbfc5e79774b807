"""pytest-benchmark suite of the MMU engine (``pytest bench/test_bench_mmu.py
--benchmark-only``): the streams of ``bench/mmu.py`` (uniform random over 1 GiB, 64-byte
stride workload, bare 64-byte-stride array, zipf) on the Skylake preset (x86_64, 4K
pages), and the uniform stream on the P6 preset in PAE and 32-bit paging with 4K and
with 2M/4M pages.

Each round replays the pre-generated trace on a fresh MMU built in the untimed setup.
Every round must give the same counters as an untimed replay made once beforehand
(the engine is deterministic), and simple invariants hold: every access is counted,
a stream of 8-byte aligned accesses splits none, the sequential streams walk once per
page touched. Trace length by ``MMUBENCH_PROFILE``: ``fast`` 10^5, ``regular`` 10^6
(default), ``large`` 10^7 accesses; ``MMUBENCH_N`` overrides it.
"""
import os
import sys
from pathlib import Path

import pytest

from _benchenv import REPO, profile  # noqa: E402,F401  (bench/_benchenv.py)

from mmu import stream  # noqa: E402  (bench/mmu.py)
from pyapi import MMU  # noqa: E402

PROFILE, N, ROUNDS = profile(rounds=5)

CASES = [
    ("skylake", "x86_64", "never", "uniform"),
    ("skylake", "x86_64", "never", "stride"),
    ("skylake", "x86_64", "never", "bare-seq"),
    ("skylake", "x86_64", "never", "zipf"),
    ("p6", "pae", "never", "uniform"),
    ("p6", "pae", "always", "uniform"),
    ("p6", "x86_32", "never", "uniform"),
    ("p6", "x86_32", "always", "uniform"),
]
_traces = {}


def _trace(name):
    if name not in _traces:
        _traces[name] = stream(name, N)
    return _traces[name]


@pytest.mark.parametrize("preset,paging,huge,name", CASES,
                         ids=[f"{p}-{m}-{h}-{s}" for p, m, h, s in CASES])
def test_replay(benchmark, preset, paging, huge, name):
    benchmark.group = f"mmu replay {name}"
    trace = _trace(name)
    expected = MMU.from_preset(preset, paging=paging, huge_pages=huge).replay(
        trace, progress=False).to_dict()
    assert expected["cpu0.accesses"] == N
    assert expected["cpu0.split_accesses"] == 0
    assert expected["cpu0.faults"] == 0
    if name in ("stride", "bare-seq") and huge == "never" and N * 64 <= 1 << 30:
        assert expected["cpu0.walks"] == -(-N * 64 // 4096)
    results = []

    def setup():
        return (MMU.from_preset(preset, paging=paging, huge_pages=huge),), {}

    def run(mmu):
        results.append(mmu.replay(trace, progress=False).to_dict())

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, warmup_rounds=0, iterations=1)
    benchmark.extra_info["accesses"] = N
    benchmark.extra_info["walks"] = expected["cpu0.walks"]
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["M_accesses_per_s_best"] = round(N / stats.stats.min / 1e6, 2)
    assert all(r == expected for r in results)
