"""``mmucore demo``: the 2002 "virtual address space exhaustion" thread, answered with
numbers (issue 8; docs/demo.md).

Three experiments, each a table of measurements and a takeaway written from them:

1. **TLB reach.** The P6 TLBs the thread quotes (dTLB 64 x 4K + 8 large, iTLB 32 x 4K +
   2 large) replay the six bundled real traces and three generated workloads with 4K
   pages and with large pages (4M with 32-bit paging, 2M with PAE), demand-paged:
   TLB misses, page walks, and the page-table entries the walks read.
2. **Virtual address space.** ``mem_map`` against the 896 MB of lowmem for 4-64 GB of
   RAM, with and without PAE, for the ``struct page`` of 2.4.18, 2.4.22, 2.5.13 and
   2.6.12, and the most RAM that still boots.
3. **kmap.** The global pkmap pool against the per-task pool proposed in the thread, on a
   page-cache workload with 1-16 CPUs (and pool sizes): flushes, IPIs, the TLB misses
   the flushes cause, and the cost of looking a page's mapping up.

>>> report = run_demo(quick=True)
>>> [len(report.tlb_reach) > 0, len(report.lowmem) > 0, len(report.kmap) > 0]
[True, True, True]
>>> report.to_dict()["settings"]["quick"]
True
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["DemoReport", "run_demo", "add_arguments", "cmd_demo", "fold_to_32bit",
           "TRACE_ACCESS_LIMIT"]

#: Traces longer than this many records are cut to a prefix (the report says so). The
#: bundled traces have 3.0-4.4 M records: the full demo replays them whole.
TRACE_ACCESS_LIMIT = 5_000_000
_QUICK_TRACE_ACCESSES = 200_000
_QUICK_TRACES = ("sort", "xz")
_PRESET = "p6"
_LARGE = {"x86_32": "4M", "pae": "2M"}
_MRC_TRACE = "xz"
#: kmap experiment: the machine of bench/kmap_thread.py (2.4.18, PAE, a 64-entry 4-way
#: LRU dTLB per CPU, the P6 dTLB), one single-threaded process per CPU.
_KMAP_KERNEL = "2.4.18"
_KMAP_TLB = dict(entries=64, ways=4, policy="lru")
_KMAP_FILE_PAGES = 4096
_KMAP_HIT_RATE = 0.5
_CPU_COUNTS = (1, 2, 4, 8, 16)
_POOL_SIZES = (128, 512, 1024, 1800, 4096)
_QUICK_POOL_SIZES = (128, 512, 4096)
_LOWMEM_RAM_GIB = (4, 8, 16, 32, 64)
#: One kernel per sizeof(struct page) of pyapi.lowmem.KERNELS (2.4.15/2.4.16 = 2.4.18).
_LOWMEM_KERNELS = ("2.4.18", "2.4.22", "2.5.13", "2.6.12")
_MIB = 1 << 20
_GIB = 1 << 30


# =============================================================================== report
@dataclass
class DemoReport:
    """What :func:`run_demo` measured: the three sections' tables as lists of dicts (one
    dict per row, plain numbers, units in the key names), a takeaway per section written
    from those numbers, notes on what was adapted, the settings and the run time.

    ``str(report)`` is the printed report (aligned tables with units);
    ``report.to_dict()`` / ``report.to_json()`` everything.

    Tables:

    * ``tlb_reach``: one row per source (trace or workload) x paging mode x page size;
    * ``lowmem``: one row per RAM size x PAE x kernel; ``lowmem_max_ram``: per kernel
      and PAE mode, the most RAM that boots;
    * ``kmap``: one row per CPU count x pool; ``kmap_pool_sizes``: one row per pool size
      x pool on the largest machine; ``kmap_lookup``: the lookup cost per kernel/pool.
    """

    tlb_reach: List[dict] = field(default_factory=list)
    lowmem: List[dict] = field(default_factory=list)
    lowmem_max_ram: List[dict] = field(default_factory=list)
    kmap: List[dict] = field(default_factory=list)
    kmap_pool_sizes: List[dict] = field(default_factory=list)
    kmap_lookup: List[dict] = field(default_factory=list)
    takeaways: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    plots: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Every table, takeaway, note and setting as plain JSON-able data."""
        return asdict(self)

    def to_json(self, path=None, *, indent: int = 1) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def __str__(self) -> str:
        return _format_report(self)


# =============================================================================== helpers
def _compact(n) -> str:
    """A count in at most ~6 characters: exact below 10,000, then k / M / G."""
    n = float(n)
    a = abs(n)
    if a < 10_000:
        return f"{n:,.0f}"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            v = n / div
            return f"{v:.3g}{unit}" if abs(v) < 100 else f"{v:.0f}{unit}"
    return f"{n:,.0f}"  # pragma: no cover


def _ratio(a, b) -> float:
    return a / b if b else float("nan")


def _times(x: float) -> str:
    if x != x:
        return "-"
    return f"{x:.1f}x" if x < 100 else f"{x:,.0f}x"


def _table(columns, rows, groups=None) -> str:
    """Aligned text: ``columns`` are (header, align '<' or '>'); ``groups`` an optional
    list of (title, number of columns) printed centred above them."""
    widths = [len(h) for h, _ in columns]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    if groups:
        # widen the last column of a group whose title is wider than its columns
        i = 0
        for title, span in groups:
            room = sum(widths[i:i + span]) + 2 * (span - 1)
            if len(title) > room:
                widths[i + span - 1] += len(title) - room
            i += span
    out = []
    if groups:
        parts, i = [], 0
        for title, span in groups:
            room = sum(widths[i:i + span]) + 2 * (span - 1)
            parts.append(title.center(room) if title else " " * room)
            i += span
        out.append("  ".join(parts).rstrip())
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if a == "<" else c.rjust(w)
        for c, w, (_, a) in zip(cells, widths, columns)).rstrip()
    out.append(fmt([h for h, _ in columns]))
    out += [fmt(r) for r in rows]
    return "\n".join(out)


def fold_to_32bit(addr: np.ndarray) -> np.ndarray:
    """Move the addresses of a 64-bit user-space trace into a 32-bit address space:
    the low 32 bits, and anything that then lands at or above 3 GiB (the kernel half
    of the i386 3G/1G split) 1 GiB lower, where an i386 stack lives. Offsets are
    multiples of 4 MiB, so pages and 4M/2M regions keep their alignment; callers check
    that no two regions collide. Addresses below 3 GiB are unchanged.

    >>> [hex(int(a)) for a in fold_to_32bit(np.array([0x108000, 0x1FFEFFF340], np.uint64))]
    ['0x108000', '0xbefff340']
    """
    addr = np.asarray(addr, dtype=np.uint64)
    high = addr >= np.uint64(1 << 32)
    if not high.any():
        return addr
    out = addr & np.uint64(0xFFFFFFFF)
    kernel_half = high & (out >= np.uint64(0xC0000000))
    out[kernel_half] -= np.uint64(0x40000000)
    return out


def _trace_chunks(name: str, limit: int):
    """The bundled trace ``name`` (at most ``limit`` records) folded into 32 bits, as a
    list of TraceChunk, and facts about it."""
    from pyapi.chunk import TraceChunk
    from pyapi.trace import open_bundled
    chunks, total, moved, truncated = [], 0, 0, False
    regions_before, regions_after = [], []
    for c in open_bundled(name).chunks(1 << 20):
        if total + len(c) > limit:
            c = c[:limit - total]
            truncated = True
        addr = fold_to_32bit(c.addr)
        moved += int(np.count_nonzero(c.addr != addr))
        regions_before.append(np.unique(c.addr >> np.uint64(22)))
        regions_after.append(np.unique(addr >> np.uint64(22)))
        chunks.append(TraceChunk(addr, op=c.op, size=c.size, cpu=c.cpu))
        total += len(c)
        if truncated:
            break
    before = len(np.unique(np.concatenate(regions_before)))
    after = len(np.unique(np.concatenate(regions_after)))
    if before != after:        # pragma: no cover - not the case for the bundled traces
        raise RuntimeError(f"trace {name}: folding into 32 bits merges 4M regions "
                           f"({before} -> {after})")
    return chunks, dict(records=total, moved=moved, truncated=truncated,
                        regions_4m=after)


def _structure_misses(stats, config, side: str) -> int:
    return sum(stats[f"cpu0.{t.name}.misses"] for t in config.tlbs if t.side == side)


def _replay_row(source: str, kind: str, what: str, trace, paging: str, huge: str,
                seed: int) -> dict:
    from pyapi.mmu import MMU
    mmu = MMU.from_preset(_PRESET, paging=paging, huge_pages=huge, seed=seed)
    s = mmu.replay(trace, progress=False)
    cfg = mmu.config
    pages: Dict[str, int] = {}
    fallbacks = 0
    for asid in mmu.asids:
        pt = mmu.page_table(asid)
        for m in pt.mappings():
            name = _size_name(m.page_size)
            pages[name] = pages.get(name, 0) + m.size // m.page_size
        fallbacks += pt.stats.huge_fallbacks
    walks, refs = s["cpu0.walks"], s["cpu0.walk_refs"]
    psc_hits = s.get("cpu0.psc_pde.hits", 0)
    acc = s["cpu0.accesses"]
    d, i = _structure_misses(s, cfg, "data"), _structure_misses(s, cfg, "instruction")
    return dict(
        source=source, kind=kind, what=what, preset=_PRESET, paging=paging,
        huge_pages=huge, page_size=_LARGE[paging] if huge == "always" else "4K",
        accesses=acc, translations=s["cpu0.translations"],
        dtlb_misses=d, itlb_misses=i, tlb_misses=s["cpu0.l1_misses"],
        miss_rate=_ratio(s["cpu0.l1_misses"], s["cpu0.translations"]),
        walks=walks, walks_per_kilo_access=1000.0 * _ratio(walks, acc),
        walk_refs=refs, walk_refs_pte=s["cpu0.walk_refs_pte"],
        walk_refs_pde=s["cpu0.walk_refs_pde"], psc_pde_hits=psc_hits,
        refs_per_walk=_ratio(refs, walks),
        refs_without_psc=refs + psc_hits,
        refs_per_walk_without_psc=_ratio(refs + psc_hits, walks),
        demand_faults=s["cpu0.demand_faults"], faults=s["cpu0.faults"],
        pages_mapped=pages, huge_fallbacks=fallbacks)


def _size_name(nbytes: int) -> str:
    from pyapi.units import page_size_name
    return page_size_name(nbytes)


def _workloads(quick: bool, seed: int):
    from pyapi import workloads
    n = 200_000 if quick else 1_000_000
    return [
        ("uniform 64M", workloads.uniform(n, footprint="64M", seed=seed)),
        ("zipf 64M", workloads.zipf(n, pages=16384, alpha=1.0, seed=seed)),
        ("stream triad", workloads.stream((1 << 17) if quick else (1 << 20), kernel="triad")),
    ]


# ============================================================================ section 1
def _section_tlb(report: DemoReport, quick: bool, seed: int, plots: bool):
    from pyapi.trace import bundled_traces
    names = sorted(bundled_traces())
    if quick:
        names = [n for n in _QUICK_TRACES if n in names]
    limit = _QUICK_TRACE_ACCESSES if quick else TRACE_ACCESS_LIMIT
    mrc_curves = None
    sources = []
    for name in names:
        chunks, facts = _trace_chunks(name, limit)
        what = f"lackey trace, {facts['records']:,} records"
        if facts["truncated"]:
            what += " (prefix)"
            report.notes.append(f"trace {name}: only its first {facts['records']:,} "
                                f"records were replayed")
        if facts["moved"]:
            what += f", {facts['moved']:,} folded"
        sources.append((name, "trace", what, chunks, facts))
        if plots and name == _MRC_TRACE:
            from pyapi.mrc import miss_ratio_curve
            mrc_curves = (name, miss_ratio_curve(chunks, page_size=["4K", "2M", "4M"]))
    moved = sum(f["moved"] for *_, f in sources)
    total = sum(f["records"] for *_, f in sources)
    if moved:
        report.notes.append(
            f"The bundled traces are 64-bit (x86_64 user space): {moved:,} of their "
            f"{total:,} accesses (the stack, just below 0x2000000000) lie above 4 GiB and "
            f"would fault as outside the 32-bit address space. They were moved just below "
            f"0xc0000000, where an i386 stack lives (fold_to_32bit: the low 32 bits, minus "
            f"1 GiB at or above 3 GiB), which keeps every page and 4M region distinct.")
    for label, w in _workloads(quick, seed):
        sources.append((label, "workload", w.spec, w, None))
    unexpected = 0
    for name, kind, what, trace, _ in sources:
        for paging in ("x86_32", "pae"):
            for huge in ("never", "always"):
                row = _replay_row(name, kind, what, trace, paging, huge, seed)
                report.tlb_reach.append(row)
                want = row["page_size"]
                if set(row["pages_mapped"]) - {want} or row["huge_fallbacks"]:
                    unexpected += 1
                    report.notes.append(
                        f"UNEXPECTED: {name} {paging} huge_pages={huge} mapped "
                        f"{row['pages_mapped']} ({row['huge_fallbacks']} huge fallbacks), "
                        f"not only {want} pages")
    if not unexpected:
        large = [r for r in report.tlb_reach if r["huge_pages"] == "always"]
        counts = {p: sum(r["pages_mapped"].get(p, 0) for r in large if r["paging"] == m)
                  for m, p in _LARGE.items()}
        report.notes.append(
            "Checked in the page tables: the huge_pages='always' runs mapped only large "
            "pages (" + ", ".join(f"{n:,} {p} pages with {m}" for (m, p), n in
                                  zip(_LARGE.items(), counts.values()))
            + ", no fallback to 4K), the 'never' runs only 4K pages.")
    return mrc_curves


def _pairs(rows, paging):
    """(4K row, large-page row) per source for one paging mode, in source order."""
    out = {}
    for r in rows:
        if r["paging"] == paging:
            out.setdefault(r["source"], [None, None])[r["huge_pages"] == "always"] = r
    return [(src, a, b) for src, (a, b) in out.items() if a and b]


def _takeaway_tlb(rows) -> str:
    parts = []
    for paging in ("x86_32", "pae"):
        pairs = _pairs(rows, paging)
        traces = [(src, a, b) for src, a, b in pairs if a["kind"] == "trace"]
        large = _LARGE[paging]
        if not traces:
            continue
        w4 = sum(a["walks"] for _, a, _ in traces)
        wl = sum(b["walks"] for _, _, b in traces)
        per = [_ratio(a["walks"], b["walks"]) for _, a, b in traces]
        text = (f"with {large} pages ({paging}) the P6 TLBs walk "
                f"{_times(_ratio(w4, wl)) + ' fewer' if wl <= w4 else _times(_ratio(wl, w4)) + ' more'}"
                f" times on the {len(traces)} real traces ({_compact(w4)} -> {_compact(wl)} "
                f"walks; per trace {_times(min(per))} to {_times(max(per))})")
        worse = [(src, a, b) for src, a, b in traces if b["walks"] > a["walks"]]
        for src, a, b in worse:
            n = b["pages_mapped"].get(large, 0)
            text += (f", but {src} walks {_times(_ratio(b['walks'], a['walks']))} more: it "
                     f"touches {n} {large} pages, more than the 8 large-page dTLB entries "
                     f"(2 sets x 4 ways) hold, while the 64 4K entries stand idle (Andrea: "
                     f"'we basically would waste the 4k tlb slots')")
        parts.append(text)
    by_src = {src: (a, b) for src, a, b in _pairs(rows, "x86_32")}
    pae_src = {src: (a, b) for src, a, b in _pairs(rows, "pae")}
    code = [(pae_src[src][1]["itlb_misses"], by_src[src][1]["itlb_misses"], src)
            for src in by_src if src in pae_src and by_src[src][0]["kind"] == "trace"]
    if code:
        i2m, i4m, src = max(code)
        if i2m > 10 * max(i4m, 1):
            parts.append(
                f"the 2 large iTLB entries reach 8 MiB of code with 4M pages but 4 MiB with "
                f"2M pages (Andrea's '4M of instructions with PAE'): {src} misses the iTLB "
                f"{i4m:,} times with 4M pages and {i2m:,} times with 2M pages")
    uni = by_src.get("uniform 64M")
    if uni and "uniform 64M" in pae_src:
        a, b = uni
        c = pae_src["uniform 64M"][1]
        parts.append(
            f"on uniform accesses over 64 MiB the 8 large dTLB entries cover 32 MiB with 4M "
            f"pages and 16 MiB with 2M pages (Andrea's '16M data with PAE'): TLB misses fall "
            f"from {100 * a['miss_rate']:.1f}% of accesses to {100 * b['miss_rate']:.1f}% (4M) "
            f"and {100 * c['miss_rate']:.1f}% (2M)")
    small = [a for a, _ in by_src.values()]
    large_rows = [b for _, b in by_src.values()]
    if small and large_rows:
        pte4 = sum(a["walk_refs_pte"] for a in small)
        w4 = sum(a["walks"] for a in small)
        pteL = sum(b["walk_refs_pte"] for b in large_rows)
        wL = sum(b["walks"] for b in large_rows)
        nopsc4 = _ratio(sum(a["refs_without_psc"] for a in small), w4)
        nopscL = _ratio(sum(b["refs_without_psc"] for b in large_rows), wL)
        psc_hits = sum(a["psc_pde_hits"] for a in small)
        r4 = _ratio(sum(a["walk_refs"] for a in small), w4)
        rL = _ratio(sum(b["walk_refs"] for b in large_rows), wL)
        parts.append(
            f"a 4M walk stops at the PDE ({pteL:,} PTE reads in {_compact(wL)} walks), a 4K "
            f"walk reads the PTE too ({_compact(pte4)} PTE reads in {_compact(w4)} walks): "
            f"{nopscL:.2f} against {nopsc4:.2f} entries per walk without a PDE cache, one "
            f"level fewer (above 1 and 2 only by the retry walks of demand faults). With the "
            f"preset's 32-entry PDE cache (a stand-in: P6 documents none) {psc_hits:,} of "
            f"the {w4:,} 4K walks find their PDE cached, so the measured refs/walk is {r4:.2f} against "
            f"{rL:.2f}: large pages save walks far more than they shorten them")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


# ============================================================================ section 2
def _section_lowmem(report: DemoReport):
    from pyapi.lowmem import NONPAE_LIMIT_BYTES, STRUCT_PAGE_BYTES, lowmem_budget
    budgets_for_plot = []
    for ram_gib in _LOWMEM_RAM_GIB:
        ram = ram_gib * _GIB
        for pae in (False, True):
            for kernel in _LOWMEM_KERNELS:
                base = dict(ram_gib=ram_gib, ram_bytes=ram, pae=pae, kernel=kernel,
                            struct_page_bytes=STRUCT_PAGE_BYTES[kernel])
                if not pae and ram > NONPAE_LIMIT_BYTES:
                    base.update(addressable=False, bootable=False,
                                reason=f"a kernel without PAE addresses "
                                       f"{NONPAE_LIMIT_BYTES >> 30} GiB (MAX_NONPAE_PFN); "
                                       f"2.4 warns 'Use a PAE enabled kernel' and uses 4 GB")
                    report.lowmem.append(base)
                    continue
                b = lowmem_budget(ram, pae=pae, kernel=kernel)
                base.update(
                    addressable=True, bootable=b.bootable, reason=b.reason,
                    lowmem_bytes=b.lowmem_bytes, mem_map_bytes=b.mem_map_bytes,
                    boot_pagetable_bytes=b.boot_pagetable_bytes,
                    lowmem_free_bytes=b.lowmem_free_bytes, highmem_bytes=b.highmem_bytes,
                    lowmem_mib=b.lowmem_bytes / _MIB, mem_map_mib=b.mem_map_bytes / _MIB,
                    lowmem_free_mib=b.lowmem_free_bytes / _MIB,
                    mem_map_share=b.mem_map_share,
                    max_bootable_ram_bytes=b.max_bootable_ram_bytes)
                report.lowmem.append(base)
                if pae and kernel in ("2.4.18", "2.6.12"):
                    budgets_for_plot.append(b)
    for kernel in _LOWMEM_KERNELS:
        for pae in (False, True):
            b = lowmem_budget("1G", pae=pae, kernel=kernel)
            report.lowmem_max_ram.append(dict(
                kernel=kernel, pae=pae, struct_page_bytes=b.struct_page_bytes,
                max_bootable_ram_bytes=b.max_bootable_ram_bytes,
                max_bootable_ram_uncapped_bytes=b.max_bootable_ram_uncapped_bytes,
                addressable_bytes=b.addressable_bytes,
                limited_by=("lowmem" if b.max_bootable_ram_uncapped_bytes
                            < b.addressable_bytes else "addressing")))
    return budgets_for_plot


def _takeaway_lowmem(rows, max_rows) -> str:
    ok = [r for r in rows if r["addressable"]]
    fails = [r for r in ok if not r["bootable"]]
    parts = []
    big = [r for r in ok if r["pae"] and r["ram_gib"] == max(_LOWMEM_RAM_GIB)]
    if big:
        worst = max(big, key=lambda r: r["mem_map_bytes"])
        best = min(big, key=lambda r: r["mem_map_bytes"])
        parts.append(
            f"mem_map takes RAM x sizeof(struct page) / 4 KiB out of "
            f"{worst['lowmem_mib']:,.0f} MiB of lowmem: at {worst['ram_gib']} GiB that is "
            f"{worst['mem_map_mib']:,.0f} MiB with {worst['kernel']}'s "
            f"{worst['struct_page_bytes']}-byte page ({100 * worst['mem_map_share']:.0f}% "
            f"of lowmem) and {best['mem_map_mib']:,.0f} MiB with {best['kernel']}'s "
            f"{best['struct_page_bytes']} bytes")
    if fails:
        f = ", ".join(f"{r['ram_gib']} GiB with {r['kernel']} "
                      f"({r['struct_page_bytes']} B, short by "
                      f"{-r['lowmem_free_mib']:,.0f} MiB)" for r in fails)
        parts.append(f"only {f} cannot boot")
    else:
        parts.append("every addressable configuration boots")
    tight = [r for r in ok if r["bootable"] and r["lowmem_free_mib"] < 200]
    if tight:
        t = min(tight, key=lambda r: r["lowmem_free_mib"])
        parts.append(f"{t['ram_gib']} GiB with {t['kernel']} boots with "
                     f"{t['lowmem_free_mib']:,.0f} MiB of lowmem left for page tables, "
                     f"buffer heads, inodes and kernel stacks")
    lim = [m for m in max_rows if m["pae"] and m["limited_by"] == "lowmem"]
    if lim:
        parts.append("the most RAM that boots with PAE is " + ", ".join(
            f"{m['max_bootable_ram_bytes'] / _GIB:.1f} GiB for {m['kernel']}" for m in lim)
            + "; the other kernels reach the 64 GiB PAE limit")
    nonpae = sorted({r["ram_gib"] for r in rows if not r["addressable"]})
    if nonpae:
        parts.append(f"without PAE nothing above 4 GiB is addressable "
                     f"({', '.join(map(str, nonpae))} GiB need PAE)")
    return "; ".join(parts) + "."


# ============================================================================ section 3
def _kmap_row(sweep, pool_name, stats, baseline, cpus, slots, trace_ops) -> dict:
    lookups = stats.lookups + stats.task_lookups
    probes = stats.hash_probes + stats.task_probes
    flushes = stats.global_flushes + stats.task_flushes
    return dict(
        sweep=sweep, pool=pool_name, kernel=_KMAP_KERNEL, pae=True, cpus=cpus, slots=slots,
        ops=trace_ops, kmaps=stats.kmaps, new_mappings=stats.new_mappings
        + stats.task_new_mappings, global_flushes=stats.global_flushes,
        local_flushes=stats.task_flushes, flushes=flushes,
        ipis=stats.ipis + stats.task_ipis, tlb_misses=stats.tlb_misses,
        tlb_misses_without_flushes=baseline.tlb_misses,
        tlb_misses_caused=stats.tlb_misses - baseline.tlb_misses,
        tlb_entries_flushed=stats.tlb_entries_flushed, lookups=lookups, probes=probes,
        probes_per_lookup=_ratio(probes, lookups), sleeps=stats.sleeps,
        fallbacks=stats.task_fallbacks)


def _page_cache(copies_per_cpu, cpus, seed):
    from pyapi.kmap_workloads import page_cache
    return page_cache(copies_per_cpu * cpus, file_pages=_KMAP_FILE_PAGES, tasks=cpus,
                      cpus=cpus, hit_rate=_KMAP_HIT_RATE, user_accesses=2, user_pages=16,
                      seed=seed)


def _section_kmap(report: DemoReport, quick: bool, seed: int):
    from pyapi.kmap import KmapPool, PerTaskKmapPool
    copies = 5_000 if quick else 40_000
    report.settings["kmap_copies_per_cpu"] = copies
    top = max(_CPU_COUNTS)
    trace_top = None
    for cpus in _CPU_COUNTS:
        trace = _page_cache(copies, cpus, seed)
        if cpus == top:
            trace_top = trace
        # a global pool that never wraps: the TLB misses with no kmap flush at all
        base = KmapPool(kernel=_KMAP_KERNEL, pae=True, cpus=cpus, tlb=_KMAP_TLB,
                        slots=cpus * _KMAP_FILE_PAGES + 1).run(trace)
        g = KmapPool(kernel=_KMAP_KERNEL, pae=True, cpus=cpus, tlb=_KMAP_TLB)
        p = PerTaskKmapPool(kernel=_KMAP_KERNEL, pae=True, cpus=cpus, tlb=_KMAP_TLB)
        report.kmap.append(_kmap_row("cpus", "global", g.run(trace), base, cpus, g.slots,
                                     len(trace)))
        report.kmap.append(_kmap_row("cpus", "per-task", p.run(trace), base, cpus,
                                     p.window_slots, len(trace)))
        if cpus == top:
            base_top = base
    for slots in (_QUICK_POOL_SIZES if quick else _POOL_SIZES):
        g = KmapPool(kernel=_KMAP_KERNEL, pae=True, cpus=top, tlb=_KMAP_TLB, slots=slots)
        p = PerTaskKmapPool(kernel=_KMAP_KERNEL, pae=True, cpus=top, tlb=_KMAP_TLB,
                            window_slots=slots)
        report.kmap_pool_sizes.append(_kmap_row("pool_size", "global", g.run(trace_top),
                                                base_top, top, slots, len(trace_top)))
        report.kmap_pool_sizes.append(_kmap_row("pool_size", "per-task", p.run(trace_top),
                                                base_top, top, slots, len(trace_top)))
    # the lookup side (Andrea): page->virtual (2.4), the hashed page_address of 2.5.41+,
    # and the per-task pool's own pfn -> slot table, on the largest machine
    for kernel, cls, how in (("2.4.18", KmapPool, "page->virtual field"),
                             ("2.6.12", KmapPool, "hashed page_address (128 buckets)"),
                             ("2.4.18", PerTaskKmapPool, "per-task pfn -> slot table")):
        s = cls(kernel=kernel, pae=True, cpus=top, tlb=_KMAP_TLB).run(trace_top)
        n, pr = s.lookups + s.task_lookups, s.hash_probes + s.task_probes
        report.kmap_lookup.append(dict(
            kernel=kernel, pool="per-task" if cls is PerTaskKmapPool else "global",
            lookup=how, cpus=top, lookups=n, probes=pr, probes_per_lookup=_ratio(pr, n)))


def _takeaway_kmap(rows, lookup_rows) -> str:
    by = {(r["cpus"], r["pool"]): r for r in rows}
    cpus = sorted({r["cpus"] for r in rows})
    lo, hi = cpus[0], cpus[-1]
    parts = []
    g1, p1 = by[(lo, "global")], by[(lo, "per-task")]
    gh, ph = by[(hi, "global")], by[(hi, "per-task")]
    same = g1["flushes"] == p1["flushes"]
    parts.append(
        f"on {lo} CPU the per-task pool flushes {p1['flushes']:,} times against the global "
        f"pool's {g1['flushes']:,}" + (" (a global flush on a uniprocessor is a local one: "
                                       "nothing gained)" if same else ""))
    growth = _ratio(gh["tlb_misses_caused"], max(g1["tlb_misses_caused"], 1))
    parts.append(
        f"on {hi} CPUs the global pool flushes every CPU {gh['flushes']:,} times with "
        f"{gh['ipis']:,} IPIs, and its flushes cause {gh['tlb_misses_caused']:,} TLB misses "
        f"({_times(growth)} the {lo}-CPU figure for {hi // lo}x the CPUs: the cost grows "
        f"with CPUs x flushes); the per-task pool flushes only the CPU whose window wraps, "
        f"{ph['flushes']:,} times, with {ph['ipis']:,} IPIs, and causes "
        f"{ph['tlb_misses_caused']:,} misses "
        f"({_times(_ratio(gh['tlb_misses_caused'], max(ph['tlb_misses_caused'], 1)))} fewer)")
    field_ = next((r for r in lookup_rows if "field" in r["lookup"]), None)
    hashed = next((r for r in lookup_rows if "hashed" in r["lookup"]), None)
    table = next((r for r in lookup_rows if "per-task" in r["lookup"]), None)
    if field_ and table:
        s = (f"the price is Andrea's lookup: where 2.4 reads page->virtual "
             f"({field_['probes_per_lookup']:.2f} entries compared per lookup), the "
             f"per-task table compares {table['probes_per_lookup']:.2f}")
        if hashed:
            s += (f", less than the hashed page_address of later kernels "
                  f"({hashed['probes_per_lookup']:.2f})" if table["probes_per_lookup"]
                  <= hashed["probes_per_lookup"] else
                  f", more than the hashed page_address of later kernels "
                  f"({hashed['probes_per_lookup']:.2f})")
        parts.append(s)
    return "; ".join(parts) + "."


# ================================================================================ plots
def _write_plots(report: DemoReport, plots_dir: Path, mrc, budgets) -> None:
    from pyapi import plots
    plt = plots.require_matplotlib()
    plots_dir.mkdir(parents=True, exist_ok=True)
    figs = [
        ("tlb_page_sizes.png", lambda: plots.plot_page_size_misses(
            report.tlb_reach, title="P6 TLBs: misses and walks with 4K, 4M (x86_32) and "
                                    "2M (PAE) pages")),
        ("lowmem_budget.png", lambda: plots.plot_lowmem_budget(budgets)),
        ("kmap_flushes.png", lambda: plots.plot_kmap_flushes(
            report.kmap + report.kmap_pool_sizes,
            title=f"kmap on {_KMAP_KERNEL} with PAE: global pool vs per-task pool "
                  f"(page-cache workload)")),
    ]
    if mrc is not None:
        from pyapi.mrc import plot_reach
        name, curves = mrc

        def _mrc_fig():
            fig = plot_reach(curves)
            ax = fig.axes[0]
            ax.set_title(f"TLB reach: LRU miss ratio of the {name} trace by page size "
                         f"({next(iter(curves.values())).accesses:,} accesses)",
                         fontsize="medium")
            # the reach of the P6 dTLB: 64 x 4K, 8 x 2M (PAE), 8 x 4M (x86_32)
            for k, (reach, what) in enumerate(((64 << 12, "P6 dTLB reach, 64 x 4K"),
                                               (8 << 21, "8 x 2M"), (8 << 22, "8 x 4M"))):
                ax.axvline(reach, color=f"C{k}", linestyle=":", linewidth=1, label=what)
            ax.legend(loc="upper right", fontsize="small")
            return fig
        figs.append((f"mrc_{name}.png", _mrc_fig))
    for fname, make in figs:
        fig = make()
        path = plots_dir / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        report.plots.append(str(path))


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (plots are optional)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# =============================================================================== driver
def run_demo(quick: bool = False, plots_dir=None, seed: int = 0) -> DemoReport:
    """Run the three experiments of the seed thread and return a :class:`DemoReport`.

    Parameters
    ----------
    quick : bool
        A small version for tests (two traces cut to 200,000 records, smaller
        workloads and kmap traces, three pool sizes): a few seconds instead of ~30.
    plots_dir : str or Path, optional
        Write PNG plots there (created if needed; needs matplotlib, else ImportError
        naming ``pip install "mmucore[plot]"``). ``None``: no plots.
    seed : int
        Seeds the generated workloads and the kmap trace.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if plots_dir is not None:
        from pyapi.plots import require_matplotlib
        require_matplotlib()
        plots_dir = Path(plots_dir)
    report = DemoReport(settings=dict(quick=bool(quick), seed=seed, preset=_PRESET,
                                      plots_dir=None if plots_dir is None else str(plots_dir),
                                      kmap_kernel=_KMAP_KERNEL, kmap_pae=True,
                                      kmap_tlb=dict(_KMAP_TLB)))
    t_all = time.perf_counter()
    t = time.perf_counter()
    mrc = _section_tlb(report, bool(quick), seed, plots_dir is not None)
    report.seconds["tlb_reach"] = time.perf_counter() - t
    t = time.perf_counter()
    budgets = _section_lowmem(report)
    report.seconds["lowmem"] = time.perf_counter() - t
    t = time.perf_counter()
    _section_kmap(report, bool(quick), seed)
    report.seconds["kmap"] = time.perf_counter() - t
    report.takeaways = dict(
        tlb_reach=_takeaway_tlb(report.tlb_reach),
        lowmem=_takeaway_lowmem(report.lowmem, report.lowmem_max_ram),
        kmap=_takeaway_kmap(report.kmap, report.kmap_lookup))
    if plots_dir is not None:
        t = time.perf_counter()
        _write_plots(report, plots_dir, mrc, budgets)
        report.seconds["plots"] = time.perf_counter() - t
    report.seconds["total"] = time.perf_counter() - t_all
    return report


# ============================================================================ formatting
def _wrap(text: str, width: int = 92, indent: str = "   ") -> str:
    import textwrap
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent=indent)


def _format_tlb(report: DemoReport) -> List[str]:
    out = []
    for paging in ("x86_32", "pae"):
        large = _LARGE[paging]
        pairs = _pairs(report.tlb_reach, paging)
        if not pairs:
            continue
        levels = "PDE, PTE" if paging == "x86_32" else "PDE, PTE; PDPTEs are registers"
        out.append(f"   {paging}: 4K pages (2 levels read: {levels}) vs {large} pages "
                   f"(the walk ends at the PDE)")
        cols = [("source", "<"), ("accesses", ">"), ("4K", ">"), (large, ">"), ("4K", ">"),
                (large, ">"), ("4K", ">"), (large, ">"), ("fewer", ">"), ("4K", ">"),
                (large, ">"), ("4K", ">"), (large, ">")]
        groups = [("", 2), ("dTLB misses", 2), ("iTLB misses", 2), ("page walks", 3),
                  ("walk refs", 2), ("refs/walk", 2)]
        rows = []
        for src, a, b in pairs:
            rows.append([src, _compact(a["accesses"]), _compact(a["dtlb_misses"]),
                         _compact(b["dtlb_misses"]), _compact(a["itlb_misses"]),
                         _compact(b["itlb_misses"]), _compact(a["walks"]),
                         _compact(b["walks"]), _times(_ratio(a["walks"], b["walks"])),
                         _compact(a["walk_refs"]), _compact(b["walk_refs"]),
                         f"{a['refs_per_walk']:.2f}", f"{b['refs_per_walk']:.2f}"])
        out += ["   " + line for line in _table(cols, rows, groups).splitlines()]
        out.append("")
    return out


def _format_lowmem(report: DemoReport) -> List[str]:
    rows_in = report.lowmem
    kernels = list(dict.fromkeys(r["kernel"] for r in rows_in))
    size = {r["kernel"]: r["struct_page_bytes"] for r in rows_in}
    cols = [("RAM", "<"), ("PAE", "<"), ("lowmem", ">")] + \
        [(f"{k} ({size[k]} B)", ">") for k in kernels]
    groups = [("", 3), ("mem_map MiB / free lowmem MiB, by kernel (struct page)",
                        len(kernels))]
    rows, skipped = [], []
    for ram in _LOWMEM_RAM_GIB:
        for pae in (False, True):
            sel = {r["kernel"]: r for r in rows_in if r["ram_gib"] == ram and r["pae"] == pae}
            if not sel:
                continue
            if not any(r["addressable"] for r in sel.values()):
                skipped.append(ram)
                continue
            lm = next(r["lowmem_mib"] for r in sel.values())
            cells = []
            for k in kernels:
                r = sel[k]
                c = f"{r['mem_map_mib']:,.0f} / {r['lowmem_free_mib']:,.0f}"
                cells.append(c + ("  NO BOOT" if not r["bootable"] else ""))
            rows.append([f"{ram} GiB", "yes" if pae else "no", f"{lm:,.0f} MiB"] + cells)
    out = ["   " + line for line in _table(cols, rows, groups).splitlines()]
    if skipped:
        out.append(_wrap(f"without PAE: {', '.join(map(str, skipped))} GiB cannot be "
                         f"addressed (MAX_NONPAE_PFN = 4 GiB; 2.4 warns 'Use a PAE enabled "
                         f"kernel')"))
    cells = []
    for m in report.lowmem_max_ram:
        if m["pae"]:
            cap = " (the PAE limit)" if m["limited_by"] == "addressing" else \
                " (lowmem full)"
            cells.append(f"{m['kernel']} {m['max_bootable_ram_bytes'] / _GIB:,.1f} GiB{cap}")
    out.append(_wrap("most RAM that boots with PAE: " + "; ".join(cells)))
    return out


def _format_kmap(report: DemoReport) -> List[str]:
    rows_in = report.kmap
    by = {(r["cpus"], r["pool"]): r for r in rows_in}
    cpus = sorted({r["cpus"] for r in rows_in})
    g0 = next(r for r in rows_in if r["pool"] == "global")
    p0 = next(r for r in rows_in if r["pool"] == "per-task")
    cols = [("CPUs", ">"), ("kmaps", ">"), ("flushes", ">"), ("IPIs", ">"),
            ("TLB misses", ">"), ("caused", ">"), ("flushes", ">"), ("IPIs", ">"),
            ("TLB misses", ">"), ("caused", ">"), ("probes/lookup", ">")]
    groups = [("", 2), (f"global pool ({g0['slots']} slots)", 4),
              (f"per-task pool ({p0['slots']}-slot window)", 5)]
    rows = []
    for c in cpus:
        g, p = by[(c, "global")], by[(c, "per-task")]
        rows.append([str(c), _compact(g["kmaps"]), f"{g['flushes']:,}", f"{g['ipis']:,}",
                     _compact(g["tlb_misses"]), _compact(g["tlb_misses_caused"]),
                     f"{p['flushes']:,}", f"{p['ipis']:,}", _compact(p["tlb_misses"]),
                     _compact(p["tlb_misses_caused"]), f"{p['probes_per_lookup']:.2f}"])
    out = ["   " + line for line in _table(cols, rows, groups).splitlines()]
    if report.kmap_pool_sizes:
        ps = report.kmap_pool_sizes
        top = ps[0]["cpus"]
        by2 = {(r["slots"], r["pool"]): r for r in ps}
        cols2 = [("slots", ">"), ("flushes", ">"), ("IPIs", ">"), ("caused", ">"),
                 ("flushes", ">"), ("IPIs", ">"), ("caused", ">")]
        groups2 = [("", 1), ("global pool", 3), ("per-task pool", 3)]
        rows2 = []
        for s in sorted({r["slots"] for r in ps}):
            g, p = by2[(s, "global")], by2[(s, "per-task")]
            rows2.append([f"{s:,}", f"{g['flushes']:,}", f"{g['ipis']:,}",
                          _compact(g["tlb_misses_caused"]), f"{p['flushes']:,}",
                          f"{p['ipis']:,}", _compact(p["tlb_misses_caused"])])
        out.append("")
        out.append(f"   by pool size on {top} CPUs (LAST_PKMAP, or window slots per task):")
        out += ["   " + line for line in _table(cols2, rows2, groups2).splitlines()]
    if report.kmap_lookup:
        cells = [f"{r['lookup']} ({r['kernel']}) {r['probes_per_lookup']:.2f}"
                 for r in report.kmap_lookup]
        out.append("")
        out.append(_wrap(f"lookup cost on {report.kmap_lookup[0]['cpus']} CPUs, entries "
                         f"compared per kmap/kunmap lookup: " + "; ".join(cells)))
    return out


def _format_report(report: DemoReport) -> str:
    st = report.settings
    total = report.seconds.get("total", 0.0)
    out = [f"mmucore demo: the May 2002 LKML thread 'Virtual address space exhaustion', "
           f"answered with numbers",
           f"({'quick run, ' if st.get('quick') else ''}seed {st.get('seed', 0)}, "
           f"{total:.1f} s)", ""]
    if report.tlb_reach:
        out.append(_wrap("1. TLB reach: the P6 TLBs of the thread (dTLB 64 x 4K + 8 x 4M/2M, "
                         "iTLB 32 x 4K + 2 x 4M/2M, LRU), demand paging, one CPU. Counts "
                         "per run; k = 10^3, M = 10^6. Walk refs are the page-table entries "
                         "read: PDEs found in the 32-entry PDE cache are not read, and a "
                         "first touch walks twice (fault, then retry: stream triad's walks "
                         "are all first touches).", indent="").replace("\n", "\n   "))
        out.append("")
        out += _format_tlb(report)
        out.append(_wrap("Takeaway: " + report.takeaways.get("tlb_reach", "")))
        out.append("")
    if report.lowmem:
        out.append(_wrap("2. Virtual address space: mem_map (RAM / 4 KiB x sizeof(struct "
                         "page)) in the 896 MiB of lowmem of the 3G/1G split, in MiB; free = "
                         "lowmem - mem_map - boot page tables.", indent="")
                   .replace("\n", "\n   "))
        out.append("")
        out += _format_lowmem(report)
        out.append("")
        out.append(_wrap("Takeaway: " + report.takeaways.get("lowmem", "")))
        out.append("")
    if report.kmap:
        out.append(_wrap(
            f"3. kmap: kernel {st.get('kmap_kernel')} with PAE; page-cache workload: one "
            f"process per CPU reads its own {_KMAP_FILE_PAGES}-page file (kmap, 2 user "
            f"accesses, kunmap), {st.get('kmap_copies_per_cpu', 0):,} copies per CPU, half "
            f"of them re-reading their page; a 64-entry 4-way dTLB per CPU. 'caused' = TLB "
            f"misses minus those of a pool too large to ever wrap (for the per-task pool it "
            f"also holds the effect of its non-global window entries, so it can dip below "
            f"0).", indent="")
            .replace("\n", "\n   "))
        out.append("")
        out += _format_kmap(report)
        out.append("")
        out.append(_wrap("Takeaway: " + report.takeaways.get("kmap", "")))
        out.append("")
    if report.notes:
        out.append("Notes:")
        out += [_wrap("- " + n, indent="   ").replace("   - ", " - ", 1) for n in report.notes]
        out.append("")
    if report.plots:
        out.append("Plots: " + ", ".join(report.plots))
    return "\n".join(out).rstrip() + "\n"


# ================================================================================== CLI
DEFAULT_PLOTS_DIR = "mmucore-demo"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``mmucore demo`` options to ``parser`` (an argparse (sub)parser)."""
    parser.add_argument("--quick", action="store_true",
                        help="a small run of a few seconds (two trace prefixes, smaller "
                             "workloads)")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--plots", metavar="DIR", default=None,
                   help=f"write PNG plots to DIR (default: ./{DEFAULT_PLOTS_DIR}/ when "
                        f"matplotlib is installed)")
    g.add_argument("--no-plots", action="store_true", help="write no plots")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the report as JSON to FILE ('-': only JSON, on "
                             "stdout)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the generated workloads and kmap traces (default 0)")
    return parser


def cmd_demo(args) -> int:
    """Run the demo from parsed ``args`` (see :func:`add_arguments`); print the report
    (or only JSON with ``--json -``). Returns the exit status (0). Input errors raise
    ``ValueError``/``RuntimeError`` for the command line to report."""
    json_target = getattr(args, "json", None)
    if json_target not in (None, "-") and not Path(json_target).resolve().parent.is_dir():
        raise ValueError(f"--json {json_target}: directory {Path(json_target).parent} "
                         f"does not exist")
    seed = getattr(args, "seed", 0)
    if seed is None or seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed}")
    plots_dir = getattr(args, "plots", None)
    note = None
    if getattr(args, "no_plots", False):
        plots_dir = None
    elif plots_dir is not None:
        if not matplotlib_available():
            raise RuntimeError('--plots needs matplotlib: pip install "mmucore[plot]"')
    elif matplotlib_available():
        plots_dir = DEFAULT_PLOTS_DIR
    else:
        note = ('no plots: matplotlib is not installed (pip install "mmucore[plot]"), '
                'or pass --no-plots')
    report = run_demo(quick=bool(getattr(args, "quick", False)), plots_dir=plots_dir,
                      seed=seed)
    if json_target == "-":
        sys.stdout.write(report.to_json() + "\n")
        return 0
    sys.stdout.write(str(report))
    if note:
        sys.stdout.write(note + "\n")
    if json_target:
        report.to_json(json_target)
        sys.stdout.write(f"JSON written to {json_target}\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m pyapi.demo [options]``: the demo without the ``mmucore`` command."""
    parser = argparse.ArgumentParser(prog="python -m pyapi.demo",
                                     description="The seed thread, answered with numbers.")
    add_arguments(parser)
    return cmd_demo(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
