#!/usr/bin/env python3
"""Replay speed of the MMU engine (pyapi.MMU) on the issue-4 workloads.

    OPENBLAS_NUM_THREADS=1 python bench/mmu.py [--n 100000000 | --quick] [--repeat 3]
                                               [--only NAME,...(streams, presets, ceiling)] [--no-rss | --rss-only] [--json FILE]

Rows (one MMU configuration on one stream each):

* Skylake preset, ``paging="x86_64"``, ``huge_pages="never"`` (4K pages only):
  ``uniform`` (``workloads.uniform``: random 8-byte accesses over 1 GiB, every access
  misses the STLB and walks), ``stride`` (``workloads.stride``: 8-byte accesses every 64
  bytes over 1 GiB, wrapping), ``bare-seq`` (a bare uint64 array of 64-byte-stride byte
  loads over 1 GiB: no op/size columns), ``zipf`` (``workloads.zipf``, alpha 1.0 over
  262144 pages of 4 KiB = 1 GiB);
* P6 preset in ``pae`` and ``x86_32``, on the same uniform and stride streams, with 4K
  pages (``huge_pages="never"``) and with 2M (PAE) / 4M (32-bit) pages
  (``huge_pages="always"``): the walk reads one level fewer.

Each stream is generated before the clock starts (not timed). A repeat builds a fresh
MMU (outside the timed region) and times ``mmu.replay(trace, progress=False)``: the
whole replay of the materialised trace, demand paging of the footprint included. The
rate shown is the best of the repeats (the VM is shared: note the load average printed
first). ``tlb x`` is the MMU's rate divided by the rate of ``pyapi.TLB(entries=64,
ways=4)`` (16 sets x 4 ways LRU, 4K pages; what ``bench/compare_tlb.py`` times) on the
same address column in the same run. ``refs/walk`` = ``walk_refs / walks``.

Ceiling: ``bench/ceiling_skylake.c``, a C loop hand-tuned for this one configuration
(Skylake, x86_64, 4K pages, LRU everywhere; geometry as constants, no ASIDs or rights
checks), compiled with ``cc -O3`` (portable x86-64, as mmucore's wheels) and, where the
CPU has AVX2, again with ``-O3 -mavx2`` (4 tags per compare), and run on the uniform
stream with the 1 GiB region pre-mapped; mmucore replays the same addresses on a
pre-mapped MMU, and each must report identical counters (L1 and STLB hits, walks, walk
references, PSC hits per level): the ratios say how close the configurable engine comes
to a specialised loop doing the same work on this machine. Skipped without a C compiler
(``--no-ceiling`` skips it).

Other presets (``presets``): the uniform stream through every other preset (x86_64, 4K
pages, a fresh MMU per repeat as above), with the lean path's 4K run and without it
(``mmucore.mmu.set_run4k(False)``: the lean path alone; Zen 4 runs the generic path
either way), and the counters of the two replays compared.

Peak RSS: a subprocess builds the uniform 1 GiB trace of ``--n`` accesses chunk by chunk
into preallocated arrays, then replays it on the Skylake configuration; the figure is
the peak RSS during the replay minus the RSS once the trace exists (what the replay adds
beyond the trace): VmHWM after resetting it through ``/proc/self/clear_refs`` once the
trace exists, else ``ru_maxrss`` after the replay minus ``ru_maxrss`` before it (which
reads 0 when building the trace peaked higher than the replay).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
try:
    import pyapi  # noqa: F401
except ImportError:  # not installed: the source tree (needs an in-place build)
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from pyapi import MMU, workloads  # noqa: E402
from pyapi.tlb import TLB  # noqa: E402

GIB = 1 << 30
BASE = workloads.DEFAULT_BASE
TARGETS = {"uniform": 50e6, "stride": 300e6, "bare-seq": 300e6}
RSS_TARGET_MB = 300


def stream(name, n):
    """The materialised trace of one stream (a TraceChunk, or a bare uint64 array)."""
    if name == "uniform":
        return workloads.uniform(n, footprint="1G", seed=0).to_chunk(limit=n)
    if name == "stride":
        return workloads.stride(n, footprint="1G", stride=64).to_chunk(limit=n)
    if name == "bare-seq":
        return (np.arange(n, dtype=np.uint64) * np.uint64(64)) % np.uint64(GIB) + np.uint64(BASE)
    if name == "zipf":
        return workloads.zipf(n, pages=GIB // 4096, alpha=1.0, seed=0).to_chunk(limit=n)
    raise ValueError(name)


# (row label, preset, paging, huge_pages, stream)
ROWS = [
    ("skylake x86_64 4K", "skylake", "x86_64", "never", "uniform"),
    ("skylake x86_64 4K", "skylake", "x86_64", "never", "stride"),
    ("skylake x86_64 4K", "skylake", "x86_64", "never", "bare-seq"),
    ("skylake x86_64 4K", "skylake", "x86_64", "never", "zipf"),
    ("p6 pae 4K", "p6", "pae", "never", "uniform"),
    ("p6 pae 2M", "p6", "pae", "always", "uniform"),
    ("p6 x86_32 4K", "p6", "x86_32", "never", "uniform"),
    ("p6 x86_32 4M", "p6", "x86_32", "always", "uniform"),
    ("p6 pae 4K", "p6", "pae", "never", "stride"),
    ("p6 pae 2M", "p6", "pae", "always", "stride"),
    ("p6 x86_32 4K", "p6", "x86_32", "never", "stride"),
    ("p6 x86_32 4M", "p6", "x86_32", "always", "stride"),
]


def _addr(trace):
    return trace if isinstance(trace, np.ndarray) else trace.addr


def time_mmu(preset, paging, huge, trace, repeat):
    best, stats = float("inf"), None
    for _ in range(repeat):
        mmu = MMU.from_preset(preset, paging=paging, huge_pages=huge)
        t0 = time.perf_counter()
        stats = mmu.replay(trace, progress=False)
        best = min(best, time.perf_counter() - t0)
    return best, stats.to_dict()


def time_tlb(addr, repeat):
    best = float("inf")
    for _ in range(repeat):
        tlb = TLB(entries=64, ways=4)
        t0 = time.perf_counter()
        tlb.access(addr)
        best = min(best, time.perf_counter() - t0)
    return best


RSS_CHILD = r"""
import resource, sys, numpy as np
sys.path.insert(0, sys.argv[2])
from pyapi import MMU, workloads
from pyapi.trace import TraceChunk
n = int(sys.argv[1])
w = workloads.uniform(n, footprint="1G", seed=0)
addr = np.empty(n, np.uint64); op = np.empty(n, np.uint8); size = np.empty(n, np.uint16)
i = 0
for c in w.chunks(1 << 20):
    k = len(c); addr[i:i + k] = c.addr; op[i:i + k] = c.op; size[i:i + k] = c.size; i += k
trace = TraceChunk(addr, op, size)
mmu = MMU.from_preset("skylake", paging="x86_64", huge_pages="never")
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1
try:                       # reset the peak (VmHWM) to the current RSS (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    hwm_reset = 1
except OSError:
    hwm_reset = 0
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss0 = status("VmRSS")
mmu.replay(trace, progress=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after, rss0, status("VmHWM") if hwm_reset else -1)
"""


def peak_rss(n):
    """(MB of the process once the trace exists, MB the replay adds at its peak). The
    peak is VmHWM after resetting it to the current RSS once the trace exists (so the
    transient peak of building the trace does not hide the replay's); where that reset
    is not available, ru_maxrss after the replay minus ru_maxrss before it."""
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(n), str(REPO)],
                         capture_output=True, text=True, check=True).stdout.split()
    before, after, rss0, hwm = (int(x) for x in out)          # KiB (Linux)
    if hwm >= 0:
        return rss0 / 1024, (hwm - rss0) / 1024
    return before / 1024, (after - before) / 1024


CEILING_C = REPO / "bench" / "ceiling_skylake.c"
CEILING_KEYS = {"l1_hits": "cpu0.dtlb_4k.hits", "l2_hits": "cpu0.stlb.hits",
                "walks": "cpu0.walks", "walk_refs": "cpu0.walk_refs",
                "psc_pde_hits": "cpu0.psc_pde.hits", "psc_pdpte_hits": "cpu0.psc_pdpte.hits",
                "psc_pml4e_hits": "cpu0.psc_pml4e.hits"}


def _has_avx2():
    """Whether this CPU runs AVX2 code (Linux: /proc/cpuinfo; elsewhere: not tried)."""
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


OTHER_PRESETS = ("nehalem", "pentium4", "golden_cove", "zen2", "zen3", "cortex_a76", "zen4")


def other_presets(n, repeat):
    """[(preset, rate with the 4K run, rate without it, counters equal)] on the uniform
    stream (x86_64, 4K pages)."""
    import mmucore.mmu as engine
    trace = stream("uniform", n)
    out = []
    for preset in OTHER_PRESETS:
        rates, dicts = [], []
        for run4k in (True, False):
            old = engine.set_run4k(run4k)
            try:
                dt, st = time_mmu(preset, "x86_64", "never", trace, repeat)
            finally:
                engine.set_run4k(old)
            rates.append(n / dt)
            dicts.append(st)
        out.append((preset, rates[0], rates[1], dicts[0] == dicts[1]))
    return out


def ceiling(n, repeat, workdir):
    """The hand-tuned C loop of bench/ceiling_skylake.c against mmucore on the same
    stream (uniform over 1 GiB, pre-mapped with 4K pages, bare 1-byte loads): (mmucore
    rate, [(C build flags, C rate, counters equal), ...]), or None without a C compiler.
    The C loop is built with ``-O3`` and, on a CPU with AVX2, with ``-O3 -mavx2``."""
    return ceiling_on(stream("uniform", n).addr, BASE, GIB, repeat, workdir)


def ceiling_on(addr, base, size, repeat, workdir, phys_mem=None):
    """ceiling() on any address column within [base, base + size) (pre-mapped with 4K
    pages in both; ``phys_mem`` for the MMU when size needs more than the default)."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    builds = [["-O3"]] + ([["-O3", "-mavx2"]] if _has_avx2() else [])
    addr = np.ascontiguousarray(addr, dtype=np.uint64)
    n = len(addr)
    path = Path(workdir) / "addr.bin"
    addr.astype("<u8").tofile(path)
    best, st = float("inf"), None
    for _ in range(repeat):
        kw = {} if phys_mem is None else {"phys_mem": phys_mem}
        mmu = MMU.from_preset("skylake", paging="x86_64", huge_pages="never", **kw)
        mmu.map(base, size)
        t0 = time.perf_counter()
        st = mmu.replay(addr, progress=False).to_dict()
        best = min(best, time.perf_counter() - t0)
    rows = []
    for flags in builds:
        exe = Path(workdir) / ("ceiling_skylake" + "".join(flags).replace("-", "_"))
        if not exe.exists():
            subprocess.run([cc, *flags, "-o", str(exe), str(CEILING_C)], check=True)
        best_c, counts = float("inf"), None
        for _ in range(repeat):
            out = subprocess.run([str(exe), str(path), str(base), str(size)],
                                 capture_output=True, text=True, check=True).stdout
            counts = dict(kv.split("=") for kv in out.split())
            best_c = min(best_c, float(counts["seconds"]))
        same = all(int(counts[k]) == st[v] for k, v in CEILING_KEYS.items())
        rows.append((" ".join(flags), n / best_c, same))
    path.unlink()
    return n / best, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=float, default=1e8, help="accesses per stream (1e8)")
    ap.add_argument("--quick", action="store_true", help="10^7 accesses")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated streams to run")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocess")
    ap.add_argument("--rss-only", action="store_true", help="only the peak-RSS subprocess")
    ap.add_argument("--json", default=None, help="write the rows as JSON to FILE")
    ap.add_argument("--no-ceiling", action="store_true",
                    help="skip the hand-written C loop (bench/ceiling_skylake.c)")
    a = ap.parse_args(argv)
    n = 10 ** 7 if a.quick else int(a.n)
    only = set(filter(None, a.only.split(",")))
    print(f"n = {n:,} accesses per stream, best of {a.repeat}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("trace generated before timing; each repeat replays it on a fresh MMU\n")
    hdr = (f"{'configuration':<20} {'stream':<9} {'M acc/s':>8} {'walks':>12} "
           f"{'refs/walk':>9} {'TLB M/s':>8} {'tlb x':>6}")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    streams = []
    for r in ROWS:
        if a.rss_only:
            break
        if r[4] not in streams and (not only or r[4] in only):
            streams.append(r[4])
    for s in streams:
        trace = stream(s, n)
        tlb_rate = n / time_tlb(_addr(trace), a.repeat)
        for label, preset, paging, huge, sname in ROWS:
            if sname != s:
                continue
            dt, st = time_mmu(preset, paging, huge, trace, a.repeat)
            rate = n / dt
            walks = st["cpu0.walks"]
            refs = st["cpu0.walk_refs"] / walks if walks else 0.0
            row = dict(config=label, stream=s, n=n, rate=rate, walks=walks,
                       refs_per_walk=refs, tlb_rate=tlb_rate, tlb_ratio=rate / tlb_rate,
                       seconds=dt)
            rows.append(row)
            print(f"{label:<20} {s:<9} {rate / 1e6:8.1f} {walks:12,d} {refs:9.2f} "
                  f"{tlb_rate / 1e6:8.1f} {rate / tlb_rate:6.3f}", flush=True)
        del trace
    ceil = None
    if not a.rss_only and not a.no_ceiling and (not only or "ceiling" in only):
        with tempfile.TemporaryDirectory() as tmp:
            ceil = ceiling(n, a.repeat, tmp)
        if ceil is None:
            print("\nceiling: no C compiler (cc/gcc); skipped")
        else:
            m_rate, builds = ceil
            print(f"\nceiling (uniform 1 GiB pre-mapped, Skylake 4K, bare loads): mmucore "
                  f"{m_rate / 1e6:.1f} M/s; hand-tuned C (bench/ceiling_skylake.c):")
            for flags, c_rate, same in builds:
                print(f"  cc {flags:<12} {c_rate / 1e6:6.1f} M/s   mmucore = "
                      f"{m_rate / c_rate:.2f} x C   counters {'identical' if same else 'DIFFER'}")
    others = None
    if not a.rss_only and (not only or "presets" in only):
        others = other_presets(n, a.repeat)
        print("\nother presets, uniform over 1 GiB (x86_64, 4K): M acc/s with the 4K run / "
              "the lean path alone")
        for preset, r4, lean, same in others:
            print(f"  {preset:<12} {r4 / 1e6:6.1f}  {lean / 1e6:6.1f}  ({r4 / lean:.2f}x; "
                  f"counters {'identical' if same else 'DIFFER'})", flush=True)
    rss = None
    if not a.no_rss:
        base, rss = peak_rss(n)
        print(f"\npeak RSS of a {n:,}-access uniform replay beyond the trace: {rss:.1f} MB "
              f"(trace and interpreter: {base:.0f} MB)")
    print("\ntargets (issue 4, Skylake x86_64 4K):")
    for r in rows:
        if r["config"].startswith("skylake") and r["stream"] in TARGETS:
            t = TARGETS[r["stream"]]
            print(f"  {r['stream']:<9} >= {t / 1e6:.0f} M/s: {r['rate'] / 1e6:.1f} M/s "
                  f"{'PASS' if r['rate'] >= t else 'MISS'}")
    if rss is not None:
        print(f"  peak RSS <= {RSS_TARGET_MB} MB beyond the trace: {rss:.1f} MB "
              f"{'PASS' if rss <= RSS_TARGET_MB else 'MISS'}")
    if a.json:
        data = dict(n=n, repeat=a.repeat, loadavg=os.getloadavg()[0], rows=rows,
                    rss_mb=rss, presets=None if others is None else [
                        dict(preset=p, rate_run4k=r, rate_lean=l, counters_identical=e)
                        for p, r, l, e in others],
                    ceiling=None if ceil is None else dict(
                        mmucore_rate=ceil[0], c=[dict(flags=f, c_rate=r, counters_identical=same)
                                                 for f, r, same in ceil[1]]))
        if a.json == "-":
            json.dump(data, sys.stdout, indent=1)
        else:
            Path(a.json).write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
