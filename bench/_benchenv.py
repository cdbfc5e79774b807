"""Set-up shared by the pytest-benchmark files ``bench/test_bench_*.py``.

Importing it makes ``pyapi`` importable (the installed package, else the source tree,
which then needs an in-place build) and puts ``bench/`` and ``tests/`` on the path (the
benchmark scripts and the reference models). :func:`profile` reads the size of a run from
the environment: ``MMUBENCH_PROFILE`` = fast, regular (default) or large,
``MMUBENCH_N`` (overrides the profile's count) and ``MMUBENCH_ROUNDS``.
"""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import pyapi  # noqa: F401
except ImportError:  # not installed: the source tree
    sys.path.insert(0, str(REPO))
for _folder in (REPO / "tests", REPO / "bench"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

DEFAULT_SIZES = {"fast": 100_000, "regular": 1_000_000, "large": 10_000_000}


def profile(sizes=None, rounds=5):
    """(profile name, accesses, rounds) of this run; ``sizes`` maps profile -> accesses."""
    sizes = DEFAULT_SIZES if sizes is None else sizes
    name = os.environ.get("MMUBENCH_PROFILE", "regular")
    if name not in sizes:
        raise ValueError(f"MMUBENCH_PROFILE={name!r}: use one of {', '.join(sizes)}")
    n = int(float(os.environ.get("MMUBENCH_N", sizes[name])))
    return name, n, int(os.environ.get("MMUBENCH_ROUNDS", rounds))
