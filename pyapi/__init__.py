"""mmucore's Python API: thin, validating wrappers over the Cython engine.

>>> import numpy as np
>>> from pyapi import TLB
>>> TLB(entries=64, ways=4).access(np.zeros(10, dtype=np.uint64)).hits
9
"""
from pyapi import kmap_workloads, presets, workloads
from pyapi.kmap import KmapBugError, KmapDeadlockError, KmapPool, KmapStats, PerTaskKmapPool
from pyapi.config import MMUConfig, TLBConfig
from pyapi.mmu import MMU
from pyapi.stats import Stats
from pyapi.sweeps import SweepResult, sweep
from pyapi.lowmem import LowmemBudget, lowmem_budget, lowmem_sweep
from pyapi.mrc import MissRatioCurve, miss_ratio_curve
from pyapi.ops import Op
from pyapi.pagetable import Mapping, PageTable, PageTableStats, WalkResult, decode_entry
from pyapi.procmap import snapshot_page_table
from pyapi.trace import (Trace, TraceFormatError, as_trace, bundled_traces, detect_format,
                         open_bundled)
from pyapi.tlb import TLB, AccessResult, TLBStats, POLICY_NAMES
from pyapi.units import PAGE_SIZES, parse_size

__version__ = "0.1.0"
__all__ = ["TLB", "TLBStats", "AccessResult", "POLICY_NAMES", "Op", "PAGE_SIZES",
           "parse_size", "PageTable", "PageTableStats", "WalkResult", "Mapping",
           "decode_entry", "snapshot_page_table", "Trace", "TraceFormatError", "as_trace", "detect_format",
           "bundled_traces", "open_bundled",
           "workloads", "presets", "KmapPool", "PerTaskKmapPool", "KmapStats", "KmapBugError",
           "KmapDeadlockError", "kmap_workloads", "LowmemBudget", "lowmem_budget", "lowmem_sweep",
           "miss_ratio_curve", "MissRatioCurve", "MMU", "Stats", "MMUConfig", "TLBConfig",
           "sweep", "SweepResult", "__version__"]
