"""Plots of the demo's measurements (issue 8); matplotlib is an optional extra.

* :func:`plot_page_size_misses`: TLB miss rate and page walks per source, grouped bars by
  preset, paging mode and page size (4K against 4M / 2M pages);
* :func:`plot_kmap_flushes`: kmap TLB flushes and IPIs of the global and the per-task
  pool, against the CPU count and against the pool size;
* :func:`plot_lowmem_budget`: what lowmem holds (``mem_map``, boot page tables, reserved,
  free) per RAM size as stacked bars, with the line where the direct map ends.

Miss-ratio curves are drawn by :meth:`pyapi.mrc.MissRatioCurve.plot` and
:func:`pyapi.mrc.plot_reach`. Every function returns a matplotlib ``Figure`` with
labelled axes (with units), a title and a legend; without matplotlib it raises
``ImportError`` naming ``pip install "mmucore[plot]"``. Outside an interactive session
the non-interactive Agg backend is used.

The inputs are plain rows (dicts), as :func:`pyapi.demo.run_demo` produces them:

>>> rows = [{"source": "uniform", "preset": "p6", "paging": "x86_32", "page_size": p,
...          "miss_rate": r, "walks_per_kilo_access": 1000 * r}
...         for p, r in (("4K", 0.99), ("4M", 0.5))]
>>> fig = plot_page_size_misses(rows)                 # doctest: +SKIP
>>> fig.axes[0].get_ylabel()                          # doctest: +SKIP
'TLB miss rate (% of translations)'
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, List, Mapping, Sequence

from pyapi.mrc import _pyplot

__all__ = ["plot_page_size_misses", "plot_kmap_flushes", "plot_lowmem_budget",
           "require_matplotlib"]

_MIB = 1 << 20


def require_matplotlib():
    """Import matplotlib's pyplot (Agg outside interactive sessions) or raise
    ``ImportError: plotting needs matplotlib: pip install "mmucore[plot]"``."""
    plt, _ = _pyplot()
    return plt


def _rows(rows, what: str) -> List[Mapping]:
    rows = list(rows)
    if not rows:
        raise ValueError(f"{what}: no rows to plot")
    for r in rows:
        if not isinstance(r, Mapping):
            raise TypeError(f"{what}: rows must be dicts, not {type(r).__name__}")
    return rows


# ------------------------------------------------------------------ page-size misses
def plot_page_size_misses(rows: Iterable[Mapping], *, title: str = None):
    """Grouped bars, one group per ``source`` (trace or workload) and one bar per
    (``preset``, ``paging``, ``page_size``): the TLB miss rate in % of translations (top)
    and the page walks per 1,000 accesses (bottom), both on a log scale (a bar of 0 is
    not drawn). Rows need ``source``, ``page_size`` and ``miss_rate`` (0..1) and
    ``walks_per_kilo_access``; ``preset`` and ``paging`` are optional.

    Returns the matplotlib Figure.
    """
    rows = _rows(rows, "plot_page_size_misses")
    plt = require_matplotlib()
    for key in ("source", "page_size", "miss_rate", "walks_per_kilo_access"):
        missing = [i for i, r in enumerate(rows) if key not in r]
        if missing:
            raise ValueError(f"plot_page_size_misses: row {missing[0]} has no {key!r}")
    sources = list(OrderedDict.fromkeys(r["source"] for r in rows))
    series = list(OrderedDict.fromkeys(
        (r.get("preset", ""), r.get("paging", ""), r["page_size"]) for r in rows))
    values = {(r["source"], (r.get("preset", ""), r.get("paging", ""), r["page_size"])): r
              for r in rows}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(7.5, 0.9 * len(sources) + 3), 6.5),
                                      sharex=True, layout="constrained")
    width = 0.8 / max(len(series), 1)
    modes = list(OrderedDict.fromkeys(s[:2] for s in series))
    cmap = plt.get_cmap("tab20")
    for k, s in enumerate(series):
        label = " ".join(x for x in s if x)
        xs, rate, walks = [], [], []
        for i, src in enumerate(sources):
            r = values.get((src, s))
            if r is None:
                continue
            xs.append(i - 0.4 + width * (k + 0.5))
            rate.append(100.0 * r["miss_rate"] if r["miss_rate"] > 0 else float("nan"))
            walks.append(r["walks_per_kilo_access"] if r["walks_per_kilo_access"] > 0
                         else float("nan"))
        # one hue per (preset, paging): light for 4K pages, dark for large pages
        colour = cmap((2 * modes.index(s[:2]) + (1 if s[2] == "4K" else 0)) % 20)
        top.bar(xs, rate, width, label=label, color=colour, edgecolor="0.3", linewidth=0.4)
        bottom.bar(xs, walks, width, label=label, color=colour, edgecolor="0.3",
                   linewidth=0.4)
    top.set_yscale("log")
    bottom.set_yscale("log")
    top.set_ylabel("TLB miss rate (% of translations)")
    bottom.set_ylabel("page walks per 1,000 accesses")
    bottom.set_xlabel("trace or workload (source of the accesses)")
    bottom.set_xticks(range(len(sources)))
    bottom.set_xticklabels(sources, rotation=20, ha="right")
    for ax in (top, bottom):
        ax.grid(True, axis="y", which="major", alpha=0.3)
    top.legend(title="preset, paging, page size", fontsize="small", ncols=2)
    top.set_title(title or "TLB misses and page walks: 4K pages against large pages",
                  fontsize="medium")
    return fig


# ------------------------------------------------------------------------ kmap flushes
def plot_kmap_flushes(rows: Iterable[Mapping], *, title: str = None):
    """TLB flushes (solid) and IPIs (dashed) of each ``pool`` (``"global"``,
    ``"per-task"``), against the CPU count (left) and, for rows whose ``sweep`` is
    ``"pool_size"``, against the pool size in slots (right; both axes logarithmic, a
    count of 0 sits on the linear part of the symlog y axis). Rows need ``pool``,
    ``cpus``, ``slots``, ``flushes`` and ``ipis``. Returns the matplotlib Figure.
    """
    rows = _rows(rows, "plot_kmap_flushes")
    plt = require_matplotlib()
    for key in ("pool", "cpus", "slots", "flushes", "ipis"):
        missing = [i for i, r in enumerate(rows) if key not in r]
        if missing:
            raise ValueError(f"plot_kmap_flushes: row {missing[0]} has no {key!r}")
    by_cpus = [r for r in rows if r.get("sweep", "cpus") != "pool_size"]
    by_slots = [r for r in rows if r.get("sweep") == "pool_size"]
    panels = [(by_cpus, "cpus", "CPUs (one page-cache process per CPU)")] if by_cpus else []
    if by_slots:
        panels.append((by_slots, "slots",
                       "pool size (slots: LAST_PKMAP, or per-task window slots)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5),
                             layout="constrained", squeeze=False)
    colours = {}
    for ax, (group, xkey, xlabel) in zip(axes[0], panels):
        pools = list(OrderedDict.fromkeys(r["pool"] for r in group))
        for pool in pools:
            pts = sorted((r[xkey], r["flushes"], r["ipis"]) for r in group
                         if r["pool"] == pool)
            if not pts:
                continue
            colour = colours.setdefault(pool, f"C{len(colours)}")
            x = [p[0] for p in pts]
            ax.plot(x, [p[1] for p in pts], "-o", color=colour, label=f"{pool}: flushes")
            ax.plot(x, [p[2] for p in pts], "--s", color=colour, label=f"{pool}: IPIs",
                    markersize=4)
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=0)
        xs = sorted({r[xkey] for r in group})
        ax.set_xticks(xs)
        ax.set_xticklabels([str(v) for v in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count (TLB flushes, IPIs) per run")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
        if xkey == "cpus":
            ax.set_title("kmap TLB flushes and IPIs by CPU count", fontsize="medium")
        else:
            cpus = sorted({r["cpus"] for r in group})
            ax.set_title(f"by pool size ({', '.join(map(str, cpus))} CPUs)",
                         fontsize="medium")
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


# ------------------------------------------------------------------------ lowmem budget
def _budget_dict(b) -> Mapping:
    return b.to_dict() if hasattr(b, "to_dict") else b


def plot_lowmem_budget(budgets: Sequence, *, title: str = None):
    """One stacked bar per budget (``pyapi.lowmem.LowmemBudget`` or its ``to_dict()``):
    ``mem_map``, boot page tables, reserved (kernel image etc., when given) and free
    lowmem, in MiB, with a line at the size of lowmem (the 896 MiB direct map of the
    3G/1G split). A budget that does not boot has no free part: its ``mem_map`` bar
    crosses the line, and the excess is hatched. Returns the matplotlib Figure.
    """
    items = [_budget_dict(b) for b in budgets]
    if not items:
        raise ValueError("plot_lowmem_budget: no budgets to plot")
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(max(7.5, 0.75 * len(items) + 2.5), 4.8),
                           layout="constrained")
    xs = list(range(len(items)))
    parts = (("mem_map_bytes", "mem_map (struct page per 4K of RAM)", "C3"),
             ("boot_pagetable_bytes", "boot page tables", "C4"),
             ("reserved_bytes", "reserved (kernel image, ...)", "C7"),
             ("lowmem_free_bytes", "free lowmem", "C2"))
    bottom = [0.0] * len(items)
    for key, label, colour in parts:
        vals = [max(float(b[key]), 0.0) / _MIB for b in items]
        if key == "reserved_bytes" and not any(vals):
            continue
        ax.bar(xs, vals, 0.7, bottom=bottom, label=label, color=colour, edgecolor="0.3",
               linewidth=0.4)
        bottom = [a + v for a, v in zip(bottom, vals)]
    lowmem = [b["lowmem_bytes"] / _MIB for b in items]
    over = [(i, lowmem[i], bottom[i] - lowmem[i]) for i in xs if bottom[i] > lowmem[i]]
    if over:
        ax.bar([o[0] for o in over], [o[2] for o in over], 0.7,
               bottom=[o[1] for o in over], fill=False, hatch="///", edgecolor="k",
               linewidth=0.6, label="beyond lowmem: cannot boot")
        for i, top, excess in over:
            ax.annotate("no boot", (i, top + excess), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize="small")
    lines = sorted(set(lowmem))
    for k, lm in enumerate(lines):
        ax.axhline(lm, color="k", linestyle="--", linewidth=1,
                   label=f"lowmem (direct map): {lm:,.0f} MiB" if k == 0 else None)
    labels = []
    for b in items:
        ram = b["ram_bytes"]
        ram_s = f"{ram / (1 << 30):g} GiB" if ram >= 1 << 30 else f"{ram / _MIB:g} MiB"
        labels.append(f"{ram_s}\n{b['struct_page_bytes']} B"
                      + ("\nPAE" if b.get("pae") else ""))
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize="small")
    ax.set_xlabel("RAM, sizeof(struct page) (bytes)")
    ax.set_ylabel("lowmem (MiB)")
    ax.set_ylim(0, max(max(bottom), max(lowmem)) * 1.4)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", ncols=2)
    ax.set_title(title or "What mem_map leaves of lowmem (32-bit x86, "
                 f"{items[0].get('split', '3G/1G')} split)", fontsize="medium")
    return fig
