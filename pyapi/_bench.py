"""Throughput comparison of mmucore's TLB engine with other simulators, measured in one run.

This is the logic behind ``bench/compare_tlb.py`` and ``mmucore bench``. For each
workload (uniform random addresses over 64 MiB; a sequential trace with a 64-byte
stride) and each structure (16 sets x 4 ways LRU; fully associative 64-entry LRU, both
with 4 KiB pages) it times:

* ``mmucore``: :class:`pyapi.TLB` ``access`` on the whole uint64 array (one nogil call);
* ``pycachesim``: ``Cache("TLB", sets, ways, 4096, "LRU")`` in a ``CacheSimulator``,
  fed through ``CacheSimulator.load(iterable)`` (its only bulk path, ``iterload``): once
  with the numpy array itself and once with a Python list (``tolist()`` done before the
  clock starts; pycachesim iterates lists faster than arrays);
* ``libcachesim``: fully associative LRU over page numbers (``LRU(64)`` with objects of
  size 1), bulk ``process_trace`` on a C ``TraceReader`` over an oracleGeneral binary
  file written before the clock starts (its ``SyntheticReader`` is a Python-level
  reader, much slower); set-associative structures are not modelled by libcachesim;
* ``pure Python``: an OrderedDict-per-set LRU defined here (the classic pure-Python
  model), and the project's oracle ``tests/reference_tlb.py`` (``ReferenceTLB``, which
  models every policy, ASIDs and page sizes, so it is slower) when it can be imported;
  they run on the first tenth (the oracle: hundredth, once) of the trace and their
  rates are extrapolated (marked in the table).

Every simulator's miss count is checked against mmucore's on the same addresses
(the pure-Python model against mmucore run on the same slice). Construction of each
simulator is outside the timed region; each repeat uses a fresh, empty structure.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

PAGE_SHIFT = 12
FOOTPRINT = 64 << 20
STRIDE = 64

#: (name, sets, ways)
STRUCTURES = (("16x4 LRU", 16, 4), ("FA-64 LRU", 1, 64))
WORKLOADS = ("uniform", "sequential")

#: (description, workload, structure, kind, threshold); kind "rate" = mmucore M acc/s,
#: kind "vs-pycachesim" = mmucore rate / pycachesim's rate on the same numpy array (the
#: comparison issue 2 asks for; its list input, converted outside the clock, is shown in
#: the table too).
TARGETS = (
    (">= 150 M/s, 16x4 random", "uniform", "16x4 LRU", "rate", 150.0),
    (">= 500 M/s, 16x4 sequential", "sequential", "16x4 LRU", "rate", 500.0),
    (">= 5x pycachesim (ndarray), 16x4 random", "uniform", "16x4 LRU", "vs-pycachesim", 5.0),
    (">= 5x pycachesim (ndarray), 16x4 seq.", "sequential", "16x4 LRU", "vs-pycachesim", 5.0),
    (">= 60 M/s, FA-64 random", "uniform", "FA-64 LRU", "rate", 60.0),
)


class NotInstalled(Exception):
    """A peer simulator is not importable."""


class NotModelled(Exception):
    """A peer does not model this structure."""


@dataclass
class Row:
    workload: str
    structure: str
    simulator: str
    status: str = "ok"                  # ok | not installed | not modelled | error: ...
    accesses: int = 0                   # accesses timed per repeat
    seconds: List[float] = field(default_factory=list)
    rate: Optional[float] = None        # accesses/s by the chosen statistic
    misses: Optional[int] = None
    check_misses: Optional[int] = None  # mmucore's misses on the same addresses
    note: str = ""


# ------------------------------------------------------------------------------ workloads
def make_workload(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """The benchmark traces: ``uniform`` random byte addresses over 64 MiB, or
    ``sequential`` addresses ``0, 64, 128, ...`` (a 64-byte stride)."""
    if kind == "uniform":
        return np.random.default_rng(seed).integers(0, FOOTPRINT, n, dtype=np.uint64)
    if kind == "sequential":
        return np.arange(n, dtype=np.uint64) * np.uint64(STRIDE)
    raise ValueError(f"unknown workload {kind!r}")


def _pick(seconds: List[float], stat: str) -> float:
    return min(seconds) if stat == "best" else statistics.median(seconds)


# ------------------------------------------------------------------------------ runners
# Each runner returns (seconds per repeat, misses of the last repeat).
def run_mmucore(va: np.ndarray, sets: int, ways: int, repeat: int):
    from pyapi import TLB

    seconds, misses = [], None
    for _ in range(repeat):
        tlb = TLB(entries=sets * ways, ways=ways, page_size="4K", policy="lru")
        t0 = time.perf_counter()
        r = tlb.access(va)
        seconds.append(time.perf_counter() - t0)
        misses = r.misses
    return seconds, misses


def _cachesim():
    try:
        from cachesim import Cache, CacheSimulator, MainMemory
    except ImportError as exc:
        raise NotInstalled(str(exc)) from None
    return Cache, CacheSimulator, MainMemory


def run_pycachesim(addrs, sets: int, ways: int, repeat: int):
    """``addrs``: the numpy array itself, or a list made from it beforehand."""
    Cache, CacheSimulator, MainMemory = _cachesim()
    seconds, misses = [], None
    for _ in range(repeat):
        mem = MainMemory()
        tlb = Cache("TLB", sets, ways, 1 << PAGE_SHIFT, "LRU")
        mem.load_to(tlb)
        mem.store_from(tlb)
        sim = CacheSimulator(tlb, mem)
        t0 = time.perf_counter()
        sim.load(addrs)
        seconds.append(time.perf_counter() - t0)
        misses = int(tlb.backend.MISS_count)
    return seconds, misses


def run_libcachesim(va: np.ndarray, sets: int, ways: int, repeat: int, tmpdir: str):
    try:
        import libcachesim as lcs
    except ImportError as exc:
        raise NotInstalled(str(exc)) from None
    if sets != 1:
        raise NotModelled("libcachesim models fully associative caches only")
    # oracleGeneral records: uint32 time, uint64 obj_id, uint32 size, int64 next access
    rec = np.zeros(va.shape[0], dtype=np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"),
                                                ("next", "<i8")]))
    rec["id"] = va >> np.uint64(PAGE_SHIFT)
    rec["size"] = 1
    rec["next"] = -1
    path = os.path.join(tmpdir, "pages.oracleGeneral.bin")
    rec.tofile(path)
    del rec
    n = va.shape[0]
    seconds, misses = [], None
    for _ in range(repeat):
        reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
        cache = lcs.LRU(ways, hashpower=max(8, int(ways).bit_length() + 2))
        t0 = time.perf_counter()
        miss_ratio, _ = cache.process_trace(reader)
        seconds.append(time.perf_counter() - t0)
        misses = int(round(miss_ratio * n))
    return seconds, misses


def python_lru_misses(addrs: list, sets: int, ways: int, page_shift: int = PAGE_SHIFT) -> int:
    """Misses of an LRU TLB of ``sets`` x ``ways`` entries: one OrderedDict per set (the
    obviously-correct model; set = page number modulo the set count)."""
    table = [OrderedDict() for _ in range(sets)]
    misses = 0
    for a in addrs:
        vpn = a >> page_shift
        d = table[vpn % sets]
        if vpn in d:
            d.move_to_end(vpn)
        else:
            misses += 1
            if len(d) >= ways:
                d.popitem(last=False)
            d[vpn] = None
    return misses


def load_reference_module(dirs):
    """``(module, why)``: ``tests/reference_tlb.py`` from the first of ``dirs`` holding
    it (imported under a private name), or ``(None, reason)``."""
    for d in dirs or ():
        path = Path(d) / "reference_tlb.py"
        if not path.is_file():
            continue
        name = "_mmucore_bench_reference_tlb"
        if name in sys.modules:
            return sys.modules[name], ""
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod          # dataclasses look their module up here
            spec.loader.exec_module(mod)
        except Exception as exc:  # a broken reference must not stop the benchmark
            sys.modules.pop(name, None)
            return None, f"{path.name} does not import: {exc!r}"
        if not hasattr(mod, "ReferenceTLB"):
            return None, f"{path.name} has no ReferenceTLB"
        return mod, ""
    return None, "tests/reference_tlb.py not found"


def load_reference(dirs):
    """``(function(addrs_list, sets, ways) -> misses, description)`` for the LRU model of
    ``tests/reference_tlb.py`` when one of ``dirs`` holds it and its API is recognised
    (checked on a small trace against :func:`python_lru_misses`), else ``(None, why)``."""
    mod, why = load_reference_module(dirs)
    if mod is None:
        return None, why
    cls = mod.ReferenceTLB

    def run(addrs, sets, ways):
        return int(cls(entries=sets * ways, ways=ways, page_size="4K",
                       policy="lru").access(addrs).misses)

    probe = [int(x) for x in make_workload("uniform", 3000, seed=7) % np.uint64(1 << 20)]
    try:
        ok = all(run(probe, s, w) == python_lru_misses(probe, s, w) for _, s, w in STRUCTURES)
    except Exception as exc:
        return None, f"reference_tlb.py: ReferenceTLB API not recognised ({exc!r})"
    if not ok:
        return None, "reference_tlb.py: ReferenceTLB disagrees with the OrderedDict model"
    return run, "tests/reference_tlb.py ReferenceTLB"


def run_reference(addrs: list, sets: int, ways: int, repeat: int, fn: Callable):
    seconds, misses = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        misses = fn(addrs, sets, ways)
        seconds.append(time.perf_counter() - t0)
    return seconds, misses


# ------------------------------------------------------------------------------ driver
def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__,
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "(unset)")}
    for dist in ("mmucore", "pycachesim", "libcachesim"):
        try:
            from importlib.metadata import version
            info[dist] = version(dist)
        except Exception:
            info[dist] = "not installed" if dist != "mmucore" else "(source tree)"
    return info


def compare(n: int = 10_000_000, repeat: int = 3, stat: str = "median", seed: int = 0,
            reference_dirs=None, ref_fraction: int = 10, out=sys.stdout) -> dict:
    """Run every simulator on every workload and structure; returns the result dict
    (rows, agreement, targets, machine) and prints progress to ``out`` (None: silent)."""
    ref_fn, ref_desc = load_reference(reference_dirs)
    n_ref = max(1, n // ref_fraction)
    n_oracle = max(1, n_ref // 10)
    rows: List[Row] = []

    def log(msg):
        if out is not None:
            print(msg, file=out, flush=True)

    with tempfile.TemporaryDirectory(prefix="mmucore-bench-") as tmp:
        for wl in WORKLOADS:
            va = make_workload(wl, n, seed)
            va_list = None
            for sname, sets, ways in STRUCTURES:
                log(f"  {wl:<10} {sname:<9} ...")

                def add(sim, fn, accesses, note=""):
                    row = Row(wl, sname, sim, accesses=accesses, note=note)
                    try:
                        row.seconds, row.misses = fn()
                        row.rate = accesses / _pick(row.seconds, stat)
                    except NotInstalled:
                        row.status = "not installed"
                        row.note = ""
                    except NotModelled as exc:
                        row.status = "not modelled"
                        row.note = str(exc)
                    except Exception as exc:  # report, do not abort the whole comparison
                        row.status = f"error: {exc!r}"
                    rows.append(row)
                    return row

                mm = add("mmucore", lambda: run_mmucore(va, sets, ways, repeat), n)
                add("pycachesim (ndarray)", lambda: run_pycachesim(va, sets, ways, repeat), n)
                try:
                    _cachesim()
                    if va_list is None:
                        va_list = va.tolist()
                    add("pycachesim (list)",
                        lambda: run_pycachesim(va_list, sets, ways, repeat), n,
                        "tolist() not timed")
                except NotInstalled:
                    rows.append(Row(wl, sname, "pycachesim (list)", status="not installed"))
                add("libcachesim", lambda: run_libcachesim(va, sets, ways, repeat, tmp), n,
                    "process_trace, C reader; file written before timing")
                ref_addrs = va[:n_ref].tolist() if va_list is None else va_list[:n_ref]
                refs = [add("pure Python (OrderedDict)",
                            lambda: run_reference(ref_addrs, sets, ways, repeat,
                                                  python_lru_misses),
                            n_ref, f"OrderedDict per set; first {n_ref:,} accesses, "
                                   f"rate extrapolated")]
                if ref_fn is not None:
                    # the oracle models every policy, ASIDs and page sizes: 10x slower
                    # again, so it gets a 10x smaller slice and one repeat
                    refs.append(add("pure Python (reference)",
                                    lambda: run_reference(ref_addrs[:n_oracle], sets, ways, 1,
                                                          ref_fn),
                                    n_oracle, f"{ref_desc}; first {n_oracle:,} accesses, "
                                              f"1 run, rate extrapolated"))
                else:
                    rows.append(Row(wl, sname, "pure Python (reference)",
                                    status="not available", note=ref_desc))
                # the pure-Python models ran on a slice: check them against mmucore on it
                for ref in refs:
                    if ref.status == "ok" and mm.status == "ok":
                        ref.check_misses = run_mmucore(va[:ref.accesses], sets, ways, 1)[1]
                for row in rows:
                    if (row.workload, row.structure) == (wl, sname) and row.status == "ok" \
                            and all(row is not r for r in refs):
                        row.check_misses = mm.misses
            va = va_list = None      # free 80 MB + the list before the next workload

    agreement = []
    for wl in WORKLOADS:
        for sname, _, _ in STRUCTURES:
            group = [r for r in rows if (r.workload, r.structure) == (wl, sname)
                     and r.status == "ok"]
            bad = [r for r in group if r.check_misses is not None and r.misses != r.check_misses]
            reason = "" if any(r.simulator == "mmucore" for r in group) else \
                "mmucore gave no result to check against"
            agreement.append({
                "workload": wl, "structure": sname,
                "simulators": [r.simulator for r in group],
                "agree": not bad and not reason, "reason": reason,
                "disagreeing": [{"simulator": r.simulator, "misses": r.misses,
                                 "mmucore": r.check_misses} for r in bad]})

    def rate_of(wl, sname, sim_prefix):
        rs = [r.rate for r in rows if (r.workload, r.structure) == (wl, sname)
              and r.simulator.startswith(sim_prefix) and r.rate]
        return max(rs) if rs else None

    targets = []
    for desc, wl, sname, kind, thr in TARGETS:
        mm = rate_of(wl, sname, "mmucore")
        if kind == "rate":
            value = mm / 1e6 if mm else None
        else:
            pc = rate_of(wl, sname, "pycachesim (ndarray)")
            value = mm / pc if (mm and pc) else None
        targets.append({"target": desc, "value": value, "threshold": thr, "kind": kind,
                        "status": "n/a" if value is None else
                        ("PASS" if value >= thr else "MISS")})

    return {"n": n, "repeat": repeat, "stat": stat, "seed": seed, "reference_slice": n_ref,
            "machine": machine_info(), "rows": [asdict(r) for r in rows],
            "agreement": agreement, "targets": targets}


# ------------------------------------------------------------------------------ output
def _count(v):
    return "?" if v is None else f"{v:,}"


def _fmt_rate(rate):
    return f"{rate / 1e6:,.1f} M/s" if rate else "-"


def format_report(res: dict) -> str:
    """The comparison as aligned text: the table, the miss-count agreement and the targets."""
    rows = res["rows"]
    mm_rate = {(r["workload"], r["structure"]): r["rate"] for r in rows
               if r["simulator"] == "mmucore" and r["rate"]}
    head = ("workload", "structure", "simulator", "accesses/s", "vs mmucore", "misses", "note")
    table = []
    for r in rows:
        key = (r["workload"], r["structure"])
        if r["status"] != "ok":
            table.append((r["workload"], r["structure"], r["simulator"], r["status"], "", "",
                          r["note"]))
            continue
        ratio = f"{r['rate'] / mm_rate[key]:.3f}x" if key in mm_rate else "-"
        misses = f"{r['misses']:,}"
        rate = _fmt_rate(r["rate"])
        if r["accesses"] != res["n"]:
            rate += " *"
        table.append((r["workload"], r["structure"], r["simulator"], rate, ratio, misses,
                      r["note"]))
    widths = [max(len(str(x[i])) for x in [head] + table) for i in range(len(head))]
    right = {3, 4, 5}

    def line(cells):
        return "  ".join((str(c).rjust(w) if i in right else str(c).ljust(w))
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    m = res["machine"]
    out = [f"mmucore TLB throughput: {res['n']:,} accesses per run, {res['stat']} of "
           f"{res['repeat']} repeats, 4 KiB pages, uniform = random over 64 MiB, "
           f"sequential = 64-byte stride",
           f"machine: {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
           f"numpy {m['numpy']}, pycachesim {m['pycachesim']}, libcachesim {m['libcachesim']}, "
           f"OPENBLAS_NUM_THREADS={m['OPENBLAS_NUM_THREADS']}",
           "", line(head), line(["-" * w for w in widths])]
    out += [line(t) for t in table]
    out.append("* rate measured on the first accesses only (see note) and extrapolated; "
               "misses are that slice's, checked against mmucore on the same slice")
    out.append("")
    out.append("miss counts:")
    for a in res["agreement"]:
        if a["agree"]:
            out.append(f"  {a['workload']:<10} {a['structure']:<9} agree "
                       f"({', '.join(a['simulators'])})")
        else:
            bad = a.get("reason") or "; ".join(
                f"{d['simulator']}={_count(d['misses'])} vs mmucore={_count(d['mmucore'])}"
                for d in a["disagreeing"])
            out.append(f"  {a['workload']:<10} {a['structure']:<9} DISAGREE: {bad}")
    out.append("")
    out.append("targets (mmucore):")
    for t in res["targets"]:
        if t["value"] is None:
            val = "n/a"
        elif t["kind"] == "rate":
            val = f"{t['value']:,.1f} M/s"
        else:
            val = f"{t['value']:.2f}x"
        out.append(f"  {t['target']:<34} {val:>12}  {t['status']}")
    return "\n".join(out)


def build_parser(parser=None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="compare_tlb.py",
        description="Accesses per second of mmucore's TLB vs pycachesim, libcachesim and "
                    "pure Python, with a miss-count cross-check.")
    p.add_argument("--n", type=int, default=10_000_000, help="accesses per run (default 10M)")
    p.add_argument("--repeat", type=int, default=3, help="repeats per measurement (default 3)")
    p.add_argument("--stat", choices=("median", "best"), default="median",
                   help="statistic of the repeats reported (default median)")
    p.add_argument("--seed", type=int, default=0, help="seed of the uniform workload")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-': stdout)")
    return p


def run_from_args(args, reference_dirs=None) -> int:
    if args.n < 1 or args.repeat < 1:
        raise ValueError("--n and --repeat must be at least 1")
    to_stdout = args.json == "-"
    log = sys.stderr if to_stdout else sys.stdout
    print("measuring ...", file=log)
    res = compare(n=args.n, repeat=args.repeat, stat=args.stat, seed=args.seed,
                  reference_dirs=reference_dirs, out=log)
    report = format_report(res)
    print(report, file=log)
    if args.json:
        text = json.dumps(res, indent=2)
        if to_stdout:
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0 if all(a["agree"] for a in res["agreement"]) else 1


def main(argv=None, reference_dirs=None) -> int:
    args = build_parser().parse_args(argv)
    return run_from_args(args, reference_dirs)
