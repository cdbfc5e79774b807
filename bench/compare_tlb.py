#!/usr/bin/env python3
"""Accesses per second of mmucore's TLB against pycachesim, libcachesim and pure Python.

    python bench/compare_tlb.py [--n 10000000] [--repeat 3] [--stat median|best] [--json FILE]

Workloads: 10M uniform random addresses over 64 MiB, and a sequential trace with a
64-byte stride. Structures: 16 sets x 4 ways LRU and fully associative 64-entry LRU,
4 KiB pages. Prints a table (workload, structure, simulator, accesses/s, ratio to
mmucore, misses), whether the simulators agree on the miss counts, and the performance
targets of shared/specs/perf.md with PASS/MISS. Exit status 1 if miss counts disagree.
Peers that are not installed are listed as "not installed". The logic lives in
``pyapi/_bench.py`` (also behind ``mmucore bench``).
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]

try:
    from pyapi._bench import main
except ImportError:  # not installed: use the source tree (needs an in-place build)
    sys.path.insert(0, str(REPO))
    from pyapi._bench import main

if __name__ == "__main__":
    sys.exit(main(reference_dirs=[REPO / "tests"]))
