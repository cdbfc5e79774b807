"""The ``mmucore`` command line (also ``python -m pyapi``): every main job from the shell.

    mmucore replay TRACE [--preset NAME | --config FILE] [--paging x86_32|pae|x86_64|la57]
                   [--huge-pages never|thp|always] [--pcid] [--cpus N] [--inclusion MODE]
                   [--seed S] [--phys-mem SIZE] [--map ADDR:SIZE[:PAGE]]... [--format FMT]
                   [--chunk-size N] [--checkpoint FILE [--every N] [--resume]]
                   [--no-progress] [--json FILE|-] [--csv FILE|-]
    mmucore mrc TRACE [--page-size 4K[,2M...]] [--method exact|shards] [--rate R]
                [--sample-size N] [--sets N] [--sizes 16,32,64] [--seed 0] [--format FMT]
                [--plot FILE] [--json FILE|-]
    mmucore kmap [--workload page_cache|pte_highmem|bounce_io] [--trace DIR]
                 [--pool global|per-task|both] [--kernel 2.4.18] [--pae] [--cpus 4]
                 [--tasks N] [-n 100K] [--hit-rate 0.5] [--slots N] [--tlb 64x4] [--json FILE|-]
    mmucore lowmem --ram 64G[,32G...] [--pae] [--kernel 2.4.18] [--struct-page 64]
                   [--split 3G/1G] [--json FILE|-]
    mmucore gen WORKLOAD [-n N] -o OUT [--format native|lackey|raw] [--seed S] [--force]
                [--footprint SIZE] [--pages N] [--alpha X] [--stride SIZE] ...
    mmucore convert IN OUT [--from FMT] [--to native|lackey|raw] [--force] [--skip-malformed]
    mmucore presets [NAME] [--toml] [--json FILE|-]
    mmucore sweep SPEC.toml [--workers N] [--scheduler tcp://HOST:PORT] [--out FILE]
                  [--resume] [--force] [--json FILE|-] [--csv FILE|-]
    mmucore demo [...]                       (arguments from pyapi.demo)
    mmucore tlb [--entries 64] [--ways 4] [--page-size 4K[,2M...]] [--policy lru[,fifo...]]
                [--workload uniform|sequential|zipf] [--footprint 64M] [-n 10M] [--seed 0]
                [--zipf-exponent 1.0] [--stride 64] [--json FILE|-]
    mmucore bench [--n 10M] [--repeat 3] [--stat median|best] [--json FILE|-]

``replay`` runs a trace through the MMU of a CPU preset (``pyapi.MMU``) and prints per
CPU and structure accesses, hit rate and misses, then per CPU walks, references per
walk, faults and flushes; ``mrc`` prints the LRU miss-ratio curve of a trace for every
TLB size at once (``pyapi.miss_ratio_curve``); ``kmap`` runs a kmap workload or trace
through the global pkmap pool and/or the per-task pool of the 2002 thread
(``pyapi.KmapPool``); ``lowmem`` prints the 32-bit kernel address-space budget for a RAM
size (``pyapi.lowmem_budget``); ``gen`` writes a generated workload
(``pyapi.workloads``) to a trace file and ``convert`` converts a trace (``Trace.convert``);
``presets`` lists the CPU presets or shows one; ``sweep`` runs every trace of a sweep
file through every configuration (``pyapi.sweep``); ``demo`` is the guided tour of
``pyapi.demo``; ``tlb`` simulates one TLB per policy on a generated workload; ``bench``
compares mmucore with pycachesim, libcachesim and pure Python.

TRACE (and IN) is a trace file or native folder (format detected, or ``--format``), the
name of a bundled trace (``sort``, ``xz``, ...), or a workload spec such as
``zipf:n=1e7,pages=1e5,alpha=1.0,seed=1`` (:func:`resolve_trace`). Sizes take binary
units (``64G``, ``2M``), counts decimal ones (``10M``, ``1e7``). ``--json -`` (and
``--csv -``) put only the machine-readable document on stdout; progress bars go to
stderr, and only when it is a terminal.

Exit status: 0 success; 2 usage errors (bad or conflicting options, reported by argparse
or after parsing); 1 input errors (missing or malformed files, unknown presets, bad
sizes, option values the model rejects); 130 interrupted (``replay`` prints the counters
so far first). Errors are one line on stderr, ``mmucore: error: ...`` (``--debug`` shows
the traceback instead).

>>> status = main(["lowmem", "--ram", "64G", "--pae", "--json", "-"])
[...]
>>> status
0
"""
from __future__ import annotations

import argparse
import os
import json
import re
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

CHUNK = 1 << 20
WORKLOADS = ("uniform", "sequential", "zipf")
_COUNT_RE = re.compile(r"^\s*(\d+(?:\.\d*)?(?:[eE]\d+)?)\s*([kKmMgGtT]?)\s*$")
_COUNT_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_count(text: str) -> int:
    """A number of accesses: ``20000``, ``10_000_000``, ``1e7``, ``10M``, ``2.5K``
    (decimal units: K = 1000, M = 10**6, G = 10**9).

    >>> parse_count("10M"), parse_count("1e7"), parse_count("2.5K")
    (10000000, 10000000, 2500)
    """
    m = _COUNT_RE.match(str(text).replace("_", ""))
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a count; write e.g. 20000, 1e7 or 10M")
    value = float(m.group(1)) * _COUNT_UNITS[m.group(2).upper()]
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(value)


def _split(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# ---------------------------------------------------------------------------- workloads
def generate(workload: str, n: int, footprint: int, *, seed: int = 0, page_size: int = 4096,
             zipf_exponent: float = 1.0, stride: int = 64,
             chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Chunks (``chunk`` accesses each, the last shorter) of a generated address stream,
    made by ``pyapi.workloads`` (docs/workloads.md) with ``base=0``:

    * ``uniform``: byte addresses uniformly random in ``[0, footprint)``
      (``workloads.uniform(..., align=1)``);
    * ``sequential``: ``0, stride, 2*stride, ...`` wrapping around at ``footprint``
      (``workloads.stride``);
    * ``zipf``: a bounded Zipf over the ``footprint // page_size`` pages: the page of
      rank ``r`` (1-based) is drawn with probability proportional to ``1 / r**a``
      (``a = zipf_exponent`` > 0, default 1.0; exact sampler, O(1) memory per draw),
      ranks scattered over the pages by a seeded bijection, uniform byte offset
      (``workloads.zipf(..., align=1)``).

    The same ``seed`` gives the same stream whatever ``chunk`` is.
    """
    from pyapi import workloads

    if footprint < 1:
        raise ValueError(f"footprint must be at least 1 byte, got {footprint}")
    if workload == "uniform":
        w = workloads.uniform(n, footprint, seed=seed, base=0, align=1)
    elif workload == "sequential":
        w = workloads.stride(n, footprint, stride=stride, base=0, elem_bytes=1)
    elif workload == "zipf":
        pages = footprint // page_size
        if pages < 1:
            raise ValueError(f"footprint {footprint} bytes holds no whole {page_size}-byte page")
        w = workloads.zipf(n, pages, alpha=zipf_exponent, page_size=page_size, seed=seed,
                           base=0, align=1)
    else:
        raise ValueError(f"workload {workload!r} is not one of {', '.join(WORKLOADS)}")
    for c in w.chunks(chunk):
        yield c.addr


# ---------------------------------------------------------------------------- commands
def cmd_tlb(args) -> int:
    from pyapi.tlb import TLB
    from pyapi.units import page_size_name, parse_size

    policies = _split(args.policy)
    if not policies:
        raise ValueError("--policy names no policy")
    sizes = _split(args.page_size)
    if not sizes:
        raise ValueError("--page-size names no page size")
    footprint = parse_size(args.footprint, what="--footprint")
    if footprint < 1:
        raise ValueError("--footprint must be at least 1 byte")
    _check_json_target(args.json)
    # build every structure first: bad geometry or names fail before any work is done
    tlbs = [TLB(entries=args.entries, ways=args.ways, page_size=tuple(sizes), policy=p,
                seed=args.seed) for p in policies]
    page_size = tlbs[0].page_sizes[0]
    seconds = [0.0] * len(tlbs)
    n = args.accesses
    for chunk in generate(args.workload, n, footprint, seed=args.seed, page_size=page_size,
                          zipf_exponent=args.zipf_exponent, stride=args.stride):
        for i, tlb in enumerate(tlbs):
            t0 = time.perf_counter()
            tlb.access(chunk, check_input=False)
            seconds[i] += time.perf_counter() - t0

    t0 = tlbs[0]
    config = {"entries": t0.entries, "ways": t0.ways, "sets": t0.sets,
              "page_sizes": [page_size_name(b) for b in t0.page_sizes],
              "workload": args.workload, "footprint": footprint, "accesses": n,
              "seed": args.seed}
    if args.workload == "zipf":
        config["zipf_exponent"] = args.zipf_exponent
    if args.workload == "sequential":
        config["stride"] = args.stride
    results = []
    for tlb, sec in zip(tlbs, seconds):
        st = tlb.stats
        results.append({"policy": tlb.policy, "accesses": st.accesses, "hits": st.hits,
                        "misses": st.misses, "miss_ratio": st.miss_ratio,
                        "fills": st.fills, "evictions": st.evictions, "seconds": sec,
                        "maccesses_per_s": (st.accesses / sec / 1e6) if sec > 0 else None})
    doc = {"command": "tlb", "config": config, "results": results}

    if args.json == "-":
        _emit_json(doc, "-")
        return 0
    print(_tlb_table(config, results))
    if args.json:
        _emit_json(doc, args.json)
    return 0


def _tlb_table(config, results) -> str:
    wl = config["workload"]
    if wl == "zipf":
        wl += f" (exponent {config['zipf_exponent']:g})"
    elif wl == "sequential":
        wl += f" (stride {config['stride']} B)"
    fp = config["footprint"]
    fp_txt = next((f"{fp >> s}{u}" for s, u in ((40, "T"), (30, "G"), (20, "M"), (10, "K"))
                   if fp >= 1 << s and fp % (1 << s) == 0), f"{fp} B")
    head = [f"TLB: {config['entries']} entries, {config['ways']} ways ({config['sets']} sets), "
            f"{'+'.join(config['page_sizes'])} pages; workload: {wl} over {fp_txt}, "
            f"{config['accesses']:,} accesses, seed {config['seed']}", ""]
    cols = ("policy", "accesses", "hits", "misses", "miss ratio", "M acc/s")
    rows = [(r["policy"], f"{r['accesses']:,}", f"{r['hits']:,}", f"{r['misses']:,}",
             f"{r['miss_ratio']:.6f}",
             "-" if r["maccesses_per_s"] is None else f"{r['maccesses_per_s']:,.1f}")
            for r in results]
    return "\n".join(head + [_table(cols, rows)])


def cmd_bench(args) -> int:
    from pyapi import _bench

    # tests/reference_tlb.py of a source checkout in the working directory, if any
    dirs = [Path.cwd() / "tests", Path(__file__).resolve().parents[1] / "tests"]
    return _bench.run_from_args(args, reference_dirs=dirs)


def _emit_json(doc, target) -> None:
    text = json.dumps(doc, indent=2) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text)


def _check_json_target(target) -> None:
    if target not in (None, "-") and not Path(target).resolve().parent.is_dir():
        raise ValueError(f"--json {target}: directory {Path(target).parent} does not exist")


def cmd_lowmem(args) -> int:
    from pyapi.lowmem import lowmem_budget

    _check_json_target(args.json)
    rams = _split(args.ram)
    if not rams:
        raise ValueError("--ram names no size")
    budgets = [lowmem_budget(ram=r, pae=args.pae, struct_page_bytes=args.struct_page,
                             kernel=args.kernel, split=args.split, nr_cpus=args.nr_cpus)
               for r in rams]
    if args.json == "-":
        _emit_json([b.to_dict() for b in budgets], "-")
        return 0
    if len(budgets) == 1:
        print(budgets[0].table())
    else:
        b0 = budgets[0]
        print(f"32-bit x86 kernel address space: {b0.split} split, "
              f"{'PAE' if b0.pae else 'no PAE'}, struct page {b0.struct_page_bytes} B\n")
        cols = ("RAM", "lowmem MiB", "mem_map MiB", "mem_map share", "free lowmem MiB",
                "boots")
        rows = [(f"{b.ram_bytes / 2**30:g} GiB", f"{b.lowmem_bytes / 2**20:,.0f}",
                 f"{b.mem_map_bytes / 2**20:,.0f}", f"{b.mem_map_share:.1%}",
                 f"{b.lowmem_free_bytes / 2**20:,.0f}", "yes" if b.bootable else "NO")
                for b in budgets]
        print(_table(cols, rows))
        for b in budgets:
            if not b.bootable:
                print(f"\n{b.ram_bytes / 2**30:g} GiB cannot boot: {b.reason}")
    if args.json:
        _emit_json([b.to_dict() for b in budgets], args.json)
    return 0


def _table(cols, rows, align: Optional[str] = None) -> str:
    """An aligned text table: a header, a rule, the rows. ``align`` has one letter per
    column, ``l`` or ``r`` (default: the first column left, the others right)."""
    rows = [list(r) for r in rows]
    widths = [max(len(str(x[i])) for x in [cols] + rows) for i in range(len(cols))]
    align = align or "l" + "r" * (len(cols) - 1)

    def line(cells):
        return "  ".join(str(c).ljust(w) if a == "l" else str(c).rjust(w)
                         for c, w, a in zip(cells, widths, align)).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in rows])


_KMAP_ROWS = (("kmaps", "kmap calls"), ("hits", "global pool hits"),
              ("new_mappings", "global pool new mappings"), ("wraps", "global pool wraps"),
              ("global_flushes", "global TLB flushes"), ("ipis", "IPIs"),
              ("sleeps", "sleeps (pool full)"), ("task_hits", "per-task window hits"),
              ("task_flushes", "per-task local flushes"),
              ("task_shootdowns", "per-task shootdowns"), ("task_ipis", "per-task IPIs"),
              ("task_fallbacks", "fallbacks to the global pool"),
              ("invlpgs", "invlpg (atomic/local slots)"), ("lookups", "page_address lookups"),
              ("hash_probes", "hash chain probes"), ("task_probes", "per-task table probes"),
              ("kmap_tlb_misses", "dTLB misses on kmapped pages"),
              ("user_tlb_misses", "dTLB misses on user pages"))


def _tlb_geometry(text):
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if text in (None, "", "none"):
        return None
    if not m:
        raise ValueError(f"--tlb {text!r}: write ENTRIESxWAYS, e.g. 64x4, or none")
    return dict(entries=int(m.group(1)), ways=int(m.group(2)), policy="lru")


def cmd_kmap(args) -> int:
    from pyapi import kmap_workloads
    from pyapi.kmap import KmapPool, PerTaskKmapPool

    _check_json_target(args.json)
    tlb = _tlb_geometry(args.tlb)
    pools = {"global": ["global"], "per-task": ["per-task"],
             "both": ["global", "per-task"]}[args.pool]
    tasks = args.tasks if args.tasks is not None else args.cpus
    if args.trace:
        from pyapi.trace import Trace
        source = f"trace {args.trace}"

        def make_trace():
            return Trace.open(args.trace)
    else:
        gen = getattr(kmap_workloads, args.workload)
        if args.workload == "page_cache":
            kw = dict(tasks=tasks, cpus=args.cpus, hit_rate=args.hit_rate, seed=args.seed)
        elif args.workload == "pte_highmem":
            kw = dict(tasks=tasks, cpus=args.cpus, kernel=args.kernel, seed=args.seed)
        else:
            kw = dict(cpus=args.cpus, kernel=args.kernel, seed=args.seed)
        chunk = gen(args.accesses, **kw)
        source = (f"workload {args.workload} ({args.accesses:,} steps, {tasks} tasks"
                  if args.workload != "bounce_io" else
                  f"workload bounce_io ({args.accesses:,} requests") + f", seed {args.seed})"

        def make_trace():
            return chunk
    results = {}
    for name in pools:
        cls = KmapPool if name == "global" else PerTaskKmapPool
        pool = cls(kernel=args.kernel, pae=args.pae, slots=args.slots, cpus=args.cpus,
                   tlb=tlb)
        t0 = time.perf_counter()
        stats = pool.run(make_trace())
        results[name] = dict(stats.to_dict(), seconds=time.perf_counter() - t0)
    doc = {"command": "kmap", "source": source, "kernel": args.kernel, "pae": args.pae,
           "cpus": args.cpus, "slots": args.slots, "tlb": tlb, "results": results}
    if args.json == "-":
        _emit_json(doc, "-")
        return 0
    print(f"kmap: kernel {args.kernel}, {'PAE' if args.pae else 'no PAE'}, {args.cpus} CPUs, "
          f"{'default' if args.slots is None else args.slots} pkmap slots, "
          f"dTLB {args.tlb or 'none'}; {source}\n")
    rows = [(label, *(f"{results[p][key]:,}" for p in pools))
            for key, label in _KMAP_ROWS
            if any(results[p].get(key) for p in pools) or key in ("global_flushes", "ipis")]
    rows.append(("simulation seconds", *(f"{results[p]['seconds']:.3f}" for p in pools)))
    print(_table(("counter", *(f"{p} pool" for p in pools)), rows))
    if args.json:
        _emit_json(doc, args.json)
    return 0


# ---------------------------------------------------------------------------- mrc
def resolve_trace(text: str, fmt: Optional[str] = None, *, errors: str = "raise",
                  fmt_option: str = "--format"):
    """The TRACE argument of ``replay``, ``mrc`` and ``convert``: a trace file or native
    folder (format detected, or ``fmt``), the name of a bundled trace, or a workload spec
    such as ``zipf:n=1e6,pages=1e4``. Returns ``(source, description)``: a ``Trace`` or a
    ``Workload`` (both have ``chunks(n)``), and a phrase for tables and JSON."""
    from pyapi.trace import Trace, bundled_traces, open_bundled
    from pyapi import workloads

    from pyapi.trace import FORMATS, TraceFormatError

    path = Path(text)
    if path.exists():
        try:
            t = Trace.open(path, format=fmt, errors=errors)
        except TraceFormatError as exc:
            if not exc.message.startswith("cannot detect"):
                raise
            what = exc.message.split(";")[0]
            raise ValueError(f"{text}: {what}; name it with {fmt_option} FMT ({', '.join(FORMATS)}) "
                             f"or a suffix such as .lackey, .din, .pinatrace, .bin") from None
        return t, f"trace {text} ({t.format})"
    if fmt is not None:
        raise ValueError(f"{text}: no such trace file")
    try:
        bundled = bundled_traces()
    except OSError:
        bundled = {}
    if text in bundled:
        return open_bundled(text, errors=errors), f"bundled trace {text}"
    if ":" in text:
        w = workloads.from_spec(text)
        return w, f"workload {w.spec}"
    raise ValueError(f"{text}: no such trace file, bundled trace ({', '.join(sorted(bundled))}) "
                     f"or workload spec (e.g. zipf:n=1e6,pages=1e4)")


_mrc_source = resolve_trace          # its name before replay and convert shared it


def _fmt_bytes(n: int) -> str:
    for shift, unit in ((50, "P"), (40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if n >= 1 << shift:
            v = n / (1 << shift)
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:.1f}{unit}"
    return f"{n}B"


def cmd_mrc(args) -> int:
    from pyapi.mrc import miss_ratio_curve, plot_reach

    _check_json_target(args.json)
    if args.plot and not Path(args.plot).resolve().parent.is_dir():
        raise ValueError(f"--plot {args.plot}: directory {Path(args.plot).parent} does not exist")
    page_sizes = _split(args.page_size)
    if not page_sizes:
        raise ValueError("--page-size names no page size")
    sizes = None
    if args.sizes is not None:
        try:
            sizes = [parse_count(x) for x in _split(args.sizes)]
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"--sizes: {exc}") from None
        if not sizes:
            raise ValueError("--sizes names no size")
    if args.method == "exact" and (args.rate is not None or args.sample_size is not None):
        raise ValueError("--rate and --sample-size apply to --method shards only")
    source, what = resolve_trace(args.trace, args.format)
    t0 = time.perf_counter()
    curves = miss_ratio_curve(source, page_size=page_sizes, sizes=sizes, method=args.method,
                              sets=args.sets, rate=args.rate, sample_size=args.sample_size,
                              seed=args.seed)
    seconds = time.perf_counter() - t0
    doc = {"command": "mrc", "source": what, "seconds": seconds,
           "curves": {name: c.to_dict() for name, c in curves.items()}}
    if args.plot:
        try:
            if len(curves) == 1:
                fig = next(iter(curves.values())).plot()
            else:
                fig = plot_reach(curves)
        except ImportError as exc:
            raise RuntimeError(str(exc)) from None
        fig.savefig(args.plot, dpi=120)
    if args.json == "-":
        _emit_json(doc, "-")
        return 0
    for k, (name, c) in enumerate(curves.items()):
        kind = (f"{c.sets} sets, 1..{int(c.ways[-1])} ways" if c.sets else "fully associative")
        head = (f"LRU miss-ratio curve: {what}; {name} pages, {kind}, {c.method}"
                + (f" (rate {c.rate:.4g}, resolves >= {c.min_resolved_size} entries)"
                   if c.method == "shards" else "")
                + f"; {c.accesses:,} accesses, "
                + (f"{c.distinct_pages:,} distinct pages" if c.distinct_pages is not None
                   else "") + f"; {seconds:.2f} s")
        cols = ("entries", "ways", "reach", "misses", "miss ratio") if c.sets else \
            ("entries", "reach", "misses", "miss ratio")
        rows = []
        for i, size in enumerate(c.sizes.tolist()):
            mark = "*" if c.method == "shards" and size < c.min_resolved_size else ""
            row = [f"{size:,}{mark}"]
            if c.sets:
                row.append(str(int(c.ways[i])))
            row += [_fmt_bytes(size * c.page_size), f"{int(c.misses[i]):,}",
                    f"{c.miss_ratio[i]:.6f}"]
            rows.append(row)
        print(("\n" if k else "") + head.rstrip("; ") + "\n")
        print(_table(cols, rows))
        if c.method == "shards" and c.sizes[0] < c.min_resolved_size:
            print(f"(* below the {c.min_resolved_size}-entry resolution of the sample)")
    if args.plot:
        print(f"\nplot written to {args.plot}")
    if args.json:
        _emit_json(doc, args.json)
    return 0


# ---------------------------------------------------------------------------- errors
class UsageError(Exception):
    """Options that cannot go together (found after parsing): exit status 2, one line."""


def _out_target(target: Optional[str], option: str) -> None:
    """Fail early (before any work) when an output file cannot be written."""
    if target not in (None, "-") and not Path(target).resolve().parent.is_dir():
        raise ValueError(f"{option} {target}: directory {Path(target).parent} does not exist")


def _size_arg(text, option: str) -> int:
    from pyapi.units import parse_size
    try:
        return parse_size(text, what=option)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def _progress(chunks, total, desc: str, enabled: bool):
    """``chunks`` passed through, with a tqdm bar on stderr when it is a terminal."""
    from pyapi.progress import progress_bar
    bar = progress_bar(total, unit="acc", desc=desc, enabled=bool(enabled))
    if bar is None:
        yield from chunks
        return
    with bar:
        for c in chunks:
            yield c
            bar.update(len(c))


def _length(source) -> Optional[int]:
    try:
        n = len(source)
    except TypeError:
        return None
    return n if isinstance(n, int) else None


# ---------------------------------------------------------------------------- replay
def _parse_map(text: str, paging: str):
    """``--map ADDR:SIZE[:PAGE]`` -> (vaddr, size, page size name), checked against the
    paging mode (1G pages exist in x86_64 and la57 only, 2M not in x86_32, ...)."""
    from pyapi.pagetable import _SIZES_OF_MODE
    from pyapi.units import PAGE_SIZES, page_size_name, parse_size

    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
        raise ValueError(f"--map {text!r}: write ADDR:SIZE[:PAGE], e.g. 0x40000000:1G:2M")
    addr_txt = parts[0].strip()
    try:
        vaddr = int(addr_txt.replace("_", ""), 0)
    except ValueError:
        vaddr = _size_arg(addr_txt, f"--map {text!r}: address")
    size = _size_arg(parts[1].strip(), f"--map {text!r}: size")
    page = parts[2].strip() if len(parts) == 3 else "4K"
    try:
        page = page_size_name(parse_size(page, what="page size"))
    except (ValueError, TypeError):
        raise ValueError(f"--map {text!r}: page size {page!r} is not one of "
                         f"{', '.join(PAGE_SIZES)}") from None
    sizes = _SIZES_OF_MODE[paging]
    if page not in sizes:
        need = [m for m, s in _SIZES_OF_MODE.items() if page in s]
        raise ValueError(f"--map {text!r}: {page} pages need --paging {' or '.join(need)}; "
                         f"{paging} maps {' and '.join(sizes)} pages")
    nbytes = PAGE_SIZES[page]
    if vaddr % nbytes or size % nbytes or size == 0:
        raise ValueError(f"--map {text!r}: address and size must be non-zero multiples of "
                         f"the {page} page size")
    return vaddr, size, page


def _replay_config(args):
    """The MMUConfig of a replay, with every option conflict reported as one line."""
    from pyapi.config import load_config, load_preset

    if args.config is not None:
        if not Path(args.config).is_file():
            raise ValueError(f"--config {args.config}: no such file")
        cfg, label = load_config(args.config), args.config
    else:
        cfg, label = load_preset(args.preset), args.preset
    paging = args.paging or cfg.paging
    if paging not in cfg.paging_modes:
        raise ValueError(f"--paging {paging}: {'preset ' if args.config is None else ''}"
                         f"{label} supports {', '.join(cfg.paging_modes)}")
    if args.pcid and paging not in ("x86_64", "la57"):
        raise ValueError(f"--pcid needs --paging x86_64 or la57 (CR4.PCIDE exists only in "
                         f"IA-32e mode); this run uses {paging}"
                         + ("" if args.paging else f", the default of {label}"))
    over = {"paging": paging}
    for name in ("huge_pages", "cpus", "inclusion", "seed"):
        value = getattr(args, name)
        if value is not None:
            over[name] = value
    if args.pcid:
        over["pcid"] = True
    if args.phys_mem is not None:
        over["phys_mem"] = _size_arg(args.phys_mem, "--phys-mem")
    return cfg.replace(**over), label


def _replay_tables(d: dict) -> str:
    """Two aligned tables from ``Stats.to_dict()``: one row per CPU and structure that
    saw accesses (TLBs and PSCs), and one row per CPU (plus all CPUs) with accesses,
    walks, references per walk, faults and flushes (columns of other events appear when
    one happened)."""
    cpus = sorted({int(k[3:].split(".", 1)[0]) for k in d
                   if k.startswith("cpu") and k[3:].split(".", 1)[0].isdigit()})
    rows, hidden = [], 0
    for n in cpus:
        p = f"cpu{n}."
        for k in d:
            if not (k.startswith(p) and k.endswith(".accesses") and k.count(".") == 2):
                continue
            s = k[len(p):-len(".accesses")]
            acc = d[k]
            if not acc:
                hidden += 1
                continue
            hits = d.get(f"{p}{s}.hits", 0)
            ev = d.get(f"{p}{s}.evictions")
            rows.append((str(n), s, f"{acc:,}", f"{100.0 * hits / acc:.2f}%",
                         f"{d.get(f'{p}{s}.misses', 0):,}", "-" if ev is None else f"{ev:,}"))
    out = []
    if rows:
        out.append(_table(("cpu", "structure", "accesses", "hit rate", "misses", "evictions"),
                          rows, "llrrrr"))
    if hidden:
        out.append(f"({hidden} structure(s) with no accesses not shown)")
    fixed = (("accesses", "accesses"), ("walks", "walks"), (None, "refs/walk"),
             ("faults", "faults"), ("flushes", "flushes"))
    optional = (("demand_faults", "demand faults"), ("split_accesses", "split"),
                ("switches", "switches"), ("invlpgs", "invlpgs"), ("flush_asids", "flush asid"),
                ("maps", "maps"), ("unmaps", "unmaps"), ("shootdowns", "shootdowns"),
                ("ipis_sent", "IPIs sent"), ("ipis_received", "IPIs received"))
    keys = [(n, f"cpu{n}.") for n in cpus]
    if len(cpus) > 1:
        keys.append(("all", "total."))
    extra = [(k, h) for k, h in optional if any(d.get(p + k, 0) for _, p in keys)]
    cols = ("cpu",) + tuple(h for _, h in fixed) + tuple(h for _, h in extra)
    crow = []
    for n, p in keys:
        walks, refs = d.get(p + "walks", 0), d.get(p + "walk_refs", 0)
        r = [str(n)]
        for k, _ in fixed:
            r.append((f"{refs / walks:.2f}" if walks else "-") if k is None
                     else f"{d.get(p + k, 0):,}")
        r += [f"{d.get(p + k, 0):,}" for k, _ in extra]
        crow.append(r)
    out.append("")
    out.append(_table(cols, crow))
    out.append(f"address spaces: {d.get('asids', 0)}")
    return "\n".join(out)


_CSV_CONFIG = ("preset", "paging", "huge_pages", "pcid", "cpus", "inclusion", "seed",
               "phys_mem", "trace", "maps", "seconds")


def cmd_replay(args) -> int:
    from pyapi.mmu import MMU

    if args.json == "-" and args.csv == "-":
        raise UsageError("--json - and --csv - both want stdout; send one to a file")
    _out_target(args.json, "--json")
    _out_target(args.csv, "--csv")
    ck = args.checkpoint
    if (args.resume or args.every is not None) and not ck:
        raise UsageError("--resume and --every need --checkpoint FILE")
    resumed = bool(ck and args.resume and os.path.exists(ck))
    if ck and not args.resume and os.path.exists(ck):
        raise ValueError(f"{ck}: a checkpoint already exists; add --resume to continue "
                         f"from it, or remove it")
    source, what = resolve_trace(args.trace, args.format)
    if resumed:
        # the configuration, mappings and counters come from the checkpoint
        mmu = MMU.load(ck)
        cfg, label = mmu.config, mmu.config.name
        maps = []
        print(f"resuming from {ck} at record {mmu.position:,}", file=sys.stderr)
    else:
        cfg, label = _replay_config(args)
        maps = [_parse_map(m, cfg.paging) for m in (args.map or [])]
        mmu = MMU(cfg)
        for vaddr, size, page in maps:
            mmu.map(vaddr, size, page_size=page)
    t0 = time.perf_counter()
    try:
        stats = mmu.replay(source, chunk_size=args.chunk_size, progress=not args.no_progress,
                           checkpoint=ck, every=args.every, resume=resumed)
    except ValueError as exc:
        if "pyapi.KmapPool" not in str(exc):
            raise
        raise ValueError(str(exc).replace("replay it with pyapi.KmapPool",
                                          "run it with mmucore kmap --trace")) from None
    seconds = time.perf_counter() - t0
    config = {"preset": label, "paging": cfg.paging, "huge_pages": cfg.huge_pages,
              "pcid": cfg.pcid, "cpus": cfg.cpus, "inclusion": cfg.inclusion,
              "seed": cfg.seed, "phys_mem": cfg.phys_mem, "trace": what,
              "maps": [f"{v:#x}:{_fmt_bytes(s)}:{p}" for v, s, p in maps]}
    counters = stats.to_dict()
    doc = {"command": "replay", "config": config, "seconds": seconds,
           "position": mmu.position, "interrupted": stats.interrupted, "stats": counters}
    if args.csv:
        _write_csv(args.csv, dict(config, maps=" ".join(config["maps"]), seconds=seconds),
                   counters)
    if args.json:
        _emit_json(doc, args.json)
    if args.json != "-" and args.csv != "-":
        acc = counters.get("total.accesses", 0)
        print(f"replay: {what}\n"
              f"MMU: {label}, {cfg.paging} paging, huge pages {cfg.huge_pages}, "
              f"{'PCID' if cfg.pcid else 'no PCID'}, {cfg.cpus} CPU(s), {cfg.inclusion}"
              + "".join(f"; map {m}" for m in config["maps"])
              + f"\n{acc:,} accesses ({mmu.position:,} records) in {seconds:.2f} s\n")
        print(_replay_tables(counters))
    if stats.interrupted:
        print(f"mmucore: interrupted after {mmu.position:,} records; the counters above "
              f"cover them only", file=sys.stderr)
        return 130
    return 0


def _write_csv(target: str, config: dict, counters: dict) -> None:
    import csv
    import io

    buf = io.StringIO()
    row = {k: ("" if config.get(k) is None else config[k]) for k in _CSV_CONFIG}
    row.update(counters)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(row))
    w.writerow(list(row.values()))
    if target == "-":
        sys.stdout.write(buf.getvalue())
    else:
        Path(target).write_text(buf.getvalue())


# ---------------------------------------------------------------------------- sweep
def cmd_sweep(args) -> int:
    from pyapi.sweeps import load_spec, sweep

    if args.json == "-" and args.csv == "-":
        raise UsageError("--json - and --csv - both want stdout; send one to a file")
    if args.resume and not args.out:
        raise UsageError("--resume continues the sweep in --out FILE; name it")
    if args.scheduler and args.workers is not None:
        raise UsageError("--workers sizes the local pool; with --scheduler the cluster's "
                         "workers run the tasks")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: give 1 or more")
    for target, option in ((args.json, "--json"), (args.csv, "--csv"), (args.out, "--out")):
        _out_target(target, option)
    traces, configs, options = load_spec(args.spec)
    if args.chunk_size is not None:
        options["chunk_size"] = args.chunk_size
    quiet = "-" in (args.json, args.csv)
    try:
        res = sweep(traces, configs, executor="dask" if args.scheduler else "local",
                    workers=args.workers, out=args.out, resume=args.resume,
                    progress=not args.no_progress, scheduler=args.scheduler,
                    overwrite=args.force, **options)
    except ImportError as exc:
        raise RuntimeError(str(exc)) from None
    if args.json:
        _emit_json(res.rows, args.json)
    if args.csv == "-":
        sys.stdout.write(res.to_csv())
    elif args.csv:
        res.to_csv(args.csv)
    if not quiet:
        where = f"dask scheduler {args.scheduler}" if args.scheduler else \
            ("1 process" if args.workers == 1 else f"{args.workers or os.cpu_count()} processes")
        print(f"sweep: {len(traces)} trace(s) x {len(configs)} configuration(s) on {where}; "
              f"{res.ran} task(s) run, {res.resumed} taken from {args.out or '-'}, "
              f"{res.seconds:.2f} s\n")
        print(res.table())
    if res.interrupted:
        print(f"mmucore: interrupted; {len(res.rows)} of {len(traces) * len(configs)} tasks "
              f"done" + (f" (in {args.out}; --resume continues)" if args.out else ""),
              file=sys.stderr)
        return 130
    if res.errors:
        print(f"mmucore: error: {len(res.errors)} of {len(res.rows)} tasks failed (the error "
              f"column says why)", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------- presets
def _structures_cell(tlbs) -> str:
    return " + ".join(f"{t.entries} {'/'.join(t.takes)}" for t in tlbs) or "-"


def cmd_presets(args) -> int:
    import textwrap
    from pyapi.config import load_preset, preset_names

    _out_target(args.json, "--json")
    if args.name is None:
        if args.toml:
            raise UsageError("--toml prints one preset; name it (mmucore presets NAME --toml)")
        cfgs = [load_preset(n) for n in preset_names()]
        if args.json:
            _emit_json([c.to_dict() for c in cfgs], args.json)
            if args.json == "-":
                return 0
        rows = []
        for c in cfgs:
            modes = ", ".join(m + ("*" if m == c.paging else "") for m in c.paging_modes)
            l1i = [t for t in c.tlbs if t.level == 1 and t.side == "instruction"]
            l1d = [t for t in c.tlbs if t.level == 1 and t.side == "data"]
            l2 = [t for t in c.tlbs if t.level == 2]
            rows.append((c.name, modes, _structures_cell(l1i), _structures_cell(l1d),
                         _structures_cell(l2)))
        print(_table(("preset", "paging (* default)", "L1 iTLB entries", "L1 dTLB entries",
                      "L2 TLB entries"), rows, "lllll"))
        print()
        for c in cfgs:
            print(textwrap.fill(f"{c.name}: {c.description}", 100, subsequent_indent="  "))
        print("\nmmucore presets NAME shows one (structures, sources, caveats); "
              "--toml prints its file.")
        return 0
    c = load_preset(args.name)
    if args.toml:
        sys.stdout.write(c.to_toml())
        return 0
    if args.json:
        _emit_json(c.to_dict(), args.json)
        if args.json == "-":
            return 0
    wrap = dict(width=100, subsequent_indent="    ")
    print(f"{c.name}: {c.description}" if c.description else c.name)
    print(f"paging modes: {', '.join(c.paging_modes)} (default {c.paging}); inclusion "
          f"{c.inclusion}; walkers {c.walkers if c.walkers is not None else 'unknown'}; "
          f"defaults: huge pages {c.huge_pages}, {'PCID' if c.pcid else 'no PCID'}, "
          f"{c.cpus} CPU(s)")
    psc = ", ".join(f"{k} {e} ({e // w}x{w})" for k, (e, w) in c.psc.items()) or "none"
    print(f"paging-structure caches: {psc}, {c.psc_policy}\n")
    rows = [(t.name, str(t.level), t.side, str(t.entries), str(t.sets), str(t.ways),
             "/".join(t.page_sizes),
             ", ".join(f"{k}->{v}" for k, v in t.splinter.items()) or "-", t.policy)
            for t in c.tlbs]
    print(_table(("structure", "level", "side", "entries", "sets", "ways", "page sizes",
                  "splinter", "policy"), rows, "lrlrrrlll"))
    srcs = [(t.name, t.source) for t in c.tlbs if t.source]
    if c.source or srcs:
        print("\nsources:")
        if c.source:
            print(textwrap.fill(c.source, initial_indent="  ", **wrap))
        for name, src in srcs:
            print(textwrap.fill(f"{name}: {src}", initial_indent="  ", **wrap))
    cav = list(c.caveats) + [f"{t.name}: {t.caveat}" for t in c.tlbs if t.caveat]
    if cav:
        print("\ncaveats:")
        for i, text in enumerate(cav, 1):
            print(textwrap.fill(text, initial_indent=f"  {i}. ", **wrap))
    return 0


# ---------------------------------------------------------------------------- gen, convert
OUT_FORMATS = ("native", "lackey", "raw")


def _gen_params():
    """{key: (kind, [workloads taking it])} over every workload's parameters, except
    the access count (``-n``) and ``seed`` (``--seed``)."""
    from pyapi.workloads import WORKLOADS

    out = {}
    for wname, cls in WORKLOADS.items():
        for key, kind, _ in cls._PARAMS:
            if key in ("n", "n_updates", "seed"):
                continue
            out.setdefault(key, (kind, []))[1].append(wname)
    return out


def _count_key(cls) -> Optional[str]:
    keys = [k for k, _, _ in cls._PARAMS]
    return next((k for k in ("n", "n_updates") if k in keys), None)


def _gen_workload(args):
    """The workload of ``mmucore gen`` and the number of accesses to write."""
    from pyapi import workloads
    from pyapi.workloads import WORKLOADS, from_spec

    params = _gen_params()
    name, _, rest = args.workload.partition(":")
    name = name.strip()
    cls = WORKLOADS.get(name)
    if cls is None:
        raise ValueError(f"unknown workload {name!r}; workloads: {', '.join(WORKLOADS)}")
    keys = [k for k, _, _ in cls._PARAMS]
    given = {}
    for item in (x.strip() for x in rest.split(",")):
        if item:
            k, _, v = item.partition("=")
            given[k.strip()] = v.strip()
    opts = {}
    for key in params:
        value = getattr(args, "wp_" + key)
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if key not in keys:
            raise ValueError(f"{flag}: workload {name} takes no {key} (its parameters: "
                             f"{', '.join(keys)})")
        if "," in value or "=" in value:
            raise ValueError(f"{flag} {value!r}: a value has no ',' or '='")
        workloads._PARSE[params[key][0]](value, flag)
        opts[key] = value
    if args.seed is not None:
        if "seed" not in keys:
            raise ValueError(f"--seed: workload {name} is not random (its parameters: "
                             f"{', '.join(keys)})")
        opts["seed"] = str(args.seed)
    count = _count_key(cls)
    limit = None
    if args.accesses is not None:
        if count is not None:
            opts[count] = str(args.accesses)
        else:
            limit = args.accesses              # matmul, bfs, stream: cut the stream
    both = sorted(set(opts) & set(given))
    if both:
        flag = "-n" if both[0] == count else "--" + both[0].replace("_", "-")
        raise ValueError(f"{flag} and the spec {args.workload!r} both give {both[0]}")
    if count is not None and count not in opts and count not in given:
        raise ValueError(f"workload {name} needs -n N (the number of accesses)")
    spec = name + ":" + ",".join(f"{k}={v}" for k, v in {**given, **opts}.items())
    w = from_spec(spec)
    n = len(w) if limit is None else min(limit, len(w))
    return w, n


def _limited(source, n: int):
    """A Trace of the first ``n`` accesses of ``source``."""
    from pyapi.trace import Trace

    def pieces(size):
        left = n
        for c in source.chunks(size):
            if left <= 0:
                break
            yield c if len(c) <= left else c[:left]
            left -= len(c)

    t = Trace.from_chunks(pieces)
    t.length = n
    return t


def _write_raw(trace, dst: Path, force: bool) -> None:
    import os
    import uuid
    from pyapi.ops import Op

    if dst.exists() and not force:
        raise FileExistsError(f"{dst} exists; pass --force to replace it")
    tmp = dst.with_name(f".{dst.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            done = 0
            for c in trace.chunks(CHUNK):
                if c.op is not None and len(c) and int(c.op.max()) > int(Op.MODIFY):
                    i = int(np.argmax(c.op > int(Op.MODIFY)))
                    raise ValueError(f"raw holds addresses only and cannot express record "
                                     f"{done + i}: control op {int(c.op[i])}")
                c.addr.astype("<u8", copy=False).tofile(f)
                done += len(c)
        os.replace(tmp, dst)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _write_trace(trace, out: str, fmt: str, force: bool, progress: bool, total):
    """Write ``trace`` to ``out`` in ``fmt``; returns the accesses written."""
    import shutil
    from pyapi.trace import Trace

    dst = Path(out)
    if dst.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    if not dst.resolve().parent.is_dir():
        raise FileNotFoundError(f"{out}: directory {dst.parent} does not exist")
    if dst.exists() and force and fmt == "native" and not dst.is_dir():
        dst.unlink()                         # a file where the folder goes
    elif dst.is_dir() and force and fmt != "native":
        if not (dst / "meta.json").exists():
            raise FileExistsError(f"{out} is a folder that is not a native trace; "
                                  f"not replacing it")
        shutil.rmtree(dst)
    shown = Trace.from_chunks(lambda n: _progress(trace.chunks(n), total, "write", progress))
    if fmt == "native":
        written = shown.to_native(dst, overwrite=force)
        return len(written)
    if fmt == "lackey":
        shown.to_lackey(dst, overwrite=force)
    else:
        _write_raw(shown, dst, force)
    return None


def cmd_gen(args) -> int:
    w, n = _gen_workload(args)
    trace = w if n == len(w) else _limited(w, n)
    _write_trace(trace, args.output, args.format, args.force, not args.no_progress, n)
    print(f"wrote {n:,} accesses of {w.spec} to {args.output} ({args.format})")
    return 0


def _format_of_output(out: str) -> str:
    name = out.lower()
    for suffix in (".gz", ".bz2", ".xz", ".lzma", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".lackey"):
        return "lackey"
    if name.endswith((".bin", ".raw")):
        return "raw"
    return "native"


def cmd_convert(args) -> int:
    to = args.to or _format_of_output(args.output)
    if Path(args.output).exists() and not args.force:
        raise FileExistsError(f"{args.output} exists; pass --force to replace it")
    if Path(args.input).resolve() == Path(args.output).resolve():
        raise ValueError(f"{args.input}: input and output are the same file")
    source, what = resolve_trace(args.input, args.from_format, fmt_option="--from",
                                 errors="skip" if args.skip_malformed else "raise")
    n = _write_trace(source, args.output, to, args.force, not args.no_progress,
                     _length(source))
    if n is None:
        n = _length(source)
    skipped = getattr(source, "skipped", 0)
    print(f"converted {what} to {args.output} ({to})"
          + (f": {n:,} accesses" if n is not None else "")
          + (f"; {skipped:,} malformed line(s) skipped" if skipped else ""))
    return 0


# ---------------------------------------------------------------------------- demo
_DEMO_MISSING = "mmucore demo is not available in this build"


def _load_demo():
    """``pyapi.demo`` if this build has it (with ``add_arguments`` and ``cmd_demo``),
    else None."""
    import importlib
    try:
        mod = importlib.import_module("pyapi.demo")
    except ModuleNotFoundError as exc:
        if exc.name in ("pyapi.demo",):
            return None
        raise
    if not (callable(getattr(mod, "add_arguments", None)) and
            callable(getattr(mod, "cmd_demo", None))):
        return None
    return mod


def cmd_demo_missing(args) -> int:
    raise RuntimeError(_DEMO_MISSING)


# ---------------------------------------------------------------------------- parser
class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Wraps prose but keeps indented lines (the examples of an epilog) as written, and
    shows a default only when there is one worth showing."""

    def _fill_text(self, text, width, indent):
        import textwrap
        out = []
        for line in text.splitlines():
            if line[:1].isspace() or not line.strip():
                out.append(indent + line)
            else:
                out.append(textwrap.fill(line, width, initial_indent=indent,
                                         subsequent_indent=indent))
        return "\n".join(out)

    def _get_help_string(self, action):
        h = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in h \
                or not action.option_strings:
            return h
        return h + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit status 2)."""

    def error(self, message):
        msg = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {msg} (usage: {self.prog} --help)\n")


def _examples(*lines: str, note: str = "") -> str:
    return (note + "\n\n" if note else "") + "examples:\n" + "\n".join("  " + x for x in lines)


_TRACE_NOTE = ("TRACE is a trace file or native folder (format detected, or --format), the "
               "name of a bundled trace (awk, gzip, python, sort, sqlite3, xz), or a "
               "workload spec NAME:key=value,... (docs/workloads.md).")


def build_parser(load_demo: bool = True) -> argparse.ArgumentParser:
    """The ``mmucore`` argument parser. ``load_demo=False`` leaves ``pyapi.demo``
    unimported (``main`` loads it only when the command is ``demo``)."""
    parser = _Parser(
        prog="mmucore",
        description="mmucore: a fast memory-management-unit simulator.",
        epilog="Exit status: 0 ok, 1 input error, 2 usage error, 130 interrupted. "
               "Every command has --help with examples.",
        formatter_class=_HelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show a traceback instead of a one-line error")
    try:
        from pyapi import __version__
    except Exception:  # pragma: no cover
        __version__ = "?"
    parser.add_argument("--version", action="version", version=f"mmucore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add_debug(p):
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show a traceback instead of a one-line error")

    def command(name, help, description, examples, **kw):
        return sub.add_parser(name, help=help, description=description, epilog=examples,
                              formatter_class=_HelpFormatter, **kw)

    # ------------------------------------------------------------------ replay
    r = command(
        "replay", "replay a trace through a CPU's TLBs, caches and page tables",
        "Replay a trace (or a generated workload) through the MMU of a CPU preset or "
        "config file: per CPU, L1 and L2 TLBs, paging-structure caches and the page walker "
        "over demand-paged page tables. Prints per CPU and structure accesses, hit rate "
        "and misses, then walks, memory references per walk, faults and flushes. Ctrl-C "
        "stops the replay and prints the counters so far (exit status 130).",
        _examples("mmucore replay sort --preset skylake",
                  "mmucore replay zipf:n=1e7,pages=1e5,alpha=1.0,seed=1 --huge-pages thp",
                  "mmucore replay run.lackey --preset zen2 --paging pae --json stats.json",
                  "mmucore replay trace_dir --cpus 4 --pcid --csv run.csv",
                  "mmucore replay uniform:n=1M,footprint=1G --map 0x10000000:1G:1G",
                  "mmucore replay big.native --checkpoint big.ck --every 100M --resume",
                  note=_TRACE_NOTE + " --map pre-maps a range with a fixed page size "
                  "(like hugetlbfs); 1G pages need --paging x86_64 or la57, 2M pages "
                  "pae/x86_64/la57, 4M pages x86_32."))
    r.add_argument("trace", metavar="TRACE", help="trace file, bundled trace or workload spec")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--preset", default="skylake",
                   help="CPU preset (mmucore presets lists them)")
    g.add_argument("--config", metavar="FILE", help="a TOML file of the preset schema")
    r.add_argument("--paging", choices=("x86_32", "pae", "x86_64", "la57"),
                   help="paging mode (default: the preset's)")
    r.add_argument("--huge-pages", dest="huge_pages", choices=("never", "thp", "always"),
                   help="demand-paging huge-page policy (default: the preset's, never)")
    r.add_argument("--pcid", action="store_true",
                   help="tag TLB entries with PCIDs: no flush on a switch (x86_64, la57)")
    r.add_argument("--cpus", type=int, help="number of CPUs, 1..64 (default: 1)")
    r.add_argument("--inclusion", choices=("inclusive", "non-inclusive", "exclusive"),
                   help="L1/L2 inclusion (default: the preset's)")
    r.add_argument("--seed", type=int, help="seed of random replacement and allocation")
    r.add_argument("--phys-mem", dest="phys_mem", metavar="SIZE",
                   help="physical memory of the frame allocator, e.g. 64G")
    r.add_argument("--map", action="append", metavar="ADDR:SIZE[:PAGE]",
                   help="map a range before the replay with one page size, e.g. "
                        "0x40000000:1G:1G (repeatable)")
    r.add_argument("--format", default=None, help="trace format: lackey, din, xdin, "
                   "pinatrace, champsim, champsim-cloudsuite, raw, native")
    r.add_argument("--chunk-size", dest="chunk_size", type=parse_count, default=CHUNK,
                   metavar="N", help="accesses per engine call (1M, 65536, ...)")
    r.add_argument("--checkpoint", metavar="FILE",
                   help="save the complete MMU state to FILE (atomically) as the replay "
                        "goes, and at its end or on Ctrl-C")
    r.add_argument("--every", type=parse_count, default=None, metavar="N",
                   help="with --checkpoint: save after at least N records (default: "
                        "every chunk)")
    r.add_argument("--resume", action="store_true",
                   help="with --checkpoint: if FILE exists, load it (configuration, "
                        "tables, counters) and continue the trace where it stopped")
    r.add_argument("--no-progress", dest="no_progress", action="store_true",
                   help="no progress bar (shown on stderr only when it is a terminal)")
    r.add_argument("--json", metavar="FILE",
                   help="also write config and counters as JSON ('-': only JSON, on stdout)")
    r.add_argument("--csv", metavar="FILE",
                   help="also write one CSV row (header included): config columns, then "
                        "every counter ('-': only CSV, on stdout)")
    add_debug(r)
    r.set_defaults(func=cmd_replay)

    # ------------------------------------------------------------------ mrc
    m = command(
        "mrc", "LRU miss-ratio curve of a trace: misses for every TLB size at once",
        "One pass over a trace (or a generated workload) gives the misses of an LRU TLB of "
        "every size (exact stack distances, or SHARDS sampling for huge traces), per page "
        "size: how many entries, and which page size, a workload needs. Only memory "
        "accesses count.",
        _examples("mmucore mrc sort --page-size 4K,2M --plot mrc.png",
                  "mmucore mrc zipf:n=1e7,pages=1e6,alpha=1.0 --method shards --rate 0.01",
                  "mmucore mrc run.lackey --sets 16 --sizes 16,32,64,128 --json -",
                  "mmucore mrc gups:n_updates=1M,table_bytes=4G --page-size 4K,2M,1G",
                  note=_TRACE_NOTE))
    m.add_argument("trace", metavar="TRACE", help="trace file, bundled trace name or workload spec")
    m.add_argument("--page-size", default="4K",
                   help="page size(s), comma-separated: 4K, 2M, 4M, 1G (one curve each)")
    m.add_argument("--method", choices=("exact", "shards"), default="exact")
    m.add_argument("--rate", type=float, default=None,
                   help="SHARDS sampling rate in (0, 1] (default 0.01)")
    m.add_argument("--sample-size", type=parse_count, default=None, metavar="N",
                   help="fixed-size SHARDS: at most N sampled pages")
    m.add_argument("--sets", type=int, default=None,
                   help="set-associative TLB with this many sets (page number %% sets)")
    m.add_argument("--sizes", default=None,
                   help="entry counts to report, comma-separated (default: 1..64, then 8 "
                        "per doubling up to the distinct pages)")
    m.add_argument("--seed", type=int, default=0, help="seed of the SHARDS hash")
    m.add_argument("--format", default=None,
                   help="trace format: lackey, din, xdin, pinatrace, champsim, native")
    m.add_argument("--plot", metavar="FILE", help="write a plot (PNG, PDF, SVG; needs matplotlib)")
    m.add_argument("--json", metavar="FILE",
                   help="also write the curves as JSON to FILE ('-': only JSON, on stdout)")
    add_debug(m)
    m.set_defaults(func=cmd_mrc)

    # ------------------------------------------------------------------ kmap
    k = command(
        "kmap", "the kmap pool: global pkmap pool vs per-task pools",
        "Run a kmap workload (or a kmap trace: ops KMAP/KUNMAP/KMAP_ATOMIC/KUNMAP_ATOMIC/"
        "SWITCH, addr = pfn, with cpu and task columns) through the global pkmap pool "
        "and/or the per-task pool of the 2002 thread, with a dTLB per CPU, and print "
        "flushes, IPIs, lookups and TLB misses.",
        _examples("mmucore kmap --cpus 16 --pool both",
                  "mmucore kmap --workload pte_highmem --kernel 2.5.13 --cpus 4",
                  "mmucore kmap --kernel 2.6.12 --pae --slots 128 -n 1M --json out.json"))
    k.add_argument("--workload", choices=("page_cache", "pte_highmem", "bounce_io"),
                   default="page_cache", help="generated workload")
    k.add_argument("--trace", metavar="PATH", help="a kmap trace instead of a workload")
    k.add_argument("--pool", choices=("global", "per-task", "both"), default="both",
                   help="which pool(s) to run, side by side")
    k.add_argument("--kernel", default="2.4.18", help="2.4.18, 2.5.13, 2.6.12 or 6.x")
    k.add_argument("--pae", action="store_true", help="PAE kernel (512 pkmap slots)")
    k.add_argument("--cpus", type=int, default=4, help="online CPUs")
    k.add_argument("--tasks", type=int, default=None, help="tasks (default: one per CPU)")
    k.add_argument("-n", "--accesses", type=parse_count, default=100_000,
                   help="workload steps (page copies, faults or requests; 100K, 1e6)")
    k.add_argument("--hit-rate", type=float, default=0.5,
                   help="page_cache: share of kmaps finding the page mapped")
    k.add_argument("--slots", type=int, default=None,
                   help="pkmap slots (default LAST_PKMAP: 1024, 512 with PAE)")
    k.add_argument("--tlb", default="64x4", help="dTLB per CPU as ENTRIESxWAYS, or none")
    k.add_argument("--seed", type=int, default=0, help="seed of the workload")
    k.add_argument("--json", metavar="FILE",
                   help="also write the results as JSON to FILE ('-': only JSON)")
    add_debug(k)
    k.set_defaults(func=cmd_kmap)

    # ------------------------------------------------------------------ lowmem
    lm = command(
        "lowmem", "the 32-bit kernel address-space budget for a RAM size",
        "How the 1 GiB (3G/1G split) of 32-bit x86 kernel virtual address space is spent, "
        "and how much of lowmem mem_map eats, for a RAM size; says when the machine "
        "cannot boot.",
        _examples("mmucore lowmem --ram 64G --pae --struct-page 64",
                  "mmucore lowmem --ram 4G,16G,32G,64G --pae --kernel 2.4.18",
                  "mmucore lowmem --ram 16G --pae --split 2G/2G --json -"))
    lm.add_argument("--ram", required=True,
                    help="RAM size(s), comma-separated: 4G, 16G, 64G (binary units)")
    lm.add_argument("--pae", action="store_true", help="PAE kernel (up to 64 GiB)")
    lm.add_argument("--kernel", default=None,
                    help="kernel version for sizeof(struct page): 2.4.15, 2.4.16, 2.4.18, "
                         "2.4.22, 2.5.13, 2.6.12")
    lm.add_argument("--struct-page", type=int, default=None, metavar="BYTES",
                    help="sizeof(struct page) in bytes (overrides --kernel)")
    lm.add_argument("--split", default="3G/1G",
                    help="user/kernel split: 3.5G/0.5G, 3G/1G, 2G/2G, 1G/3G, 4G/4G")
    lm.add_argument("--nr-cpus", type=int, default=32, help="NR_CPUS (fixmap size)")
    lm.add_argument("--json", metavar="FILE",
                    help="also write the budget(s) as JSON to FILE ('-': only JSON)")
    add_debug(lm)
    lm.set_defaults(func=cmd_lowmem)

    # ------------------------------------------------------------------ gen
    params = _gen_params()
    ge = command(
        "gen", "write a generated workload to a trace file",
        "Write the access stream of a seeded workload generator (docs/workloads.md) to a "
        "trace: native folder (default), Valgrind lackey text (.gz/.xz/.bz2 suffixes "
        "compress it) or raw little-endian uint64 addresses (addresses only). WORKLOAD "
        "is a name (uniform, stride, zipf, pointer_chase, gups, matmul, bfs, stream) or a "
        "spec NAME:key=value,...; the options below set the parameters (sizes take "
        "K/M/G/T, binary units). -n is the number of accesses; matmul, bfs and stream "
        "have a length of their own, which -n cuts.",
        _examples("mmucore gen uniform -n 10M --footprint 1G -o uniform.trace",
                  "mmucore gen zipf -n 1e7 --pages 1e6 --alpha 1.2 --seed 1 -o zipf.trace",
                  "mmucore gen zipf:n=1M,pages=1e4 -o zipf.lackey.gz --format lackey",
                  "mmucore gen matmul --nsize 256 --block 32 -n 1M -o mm.bin --format raw"))
    ge.add_argument("workload", metavar="WORKLOAD", help="workload name or spec")
    ge.add_argument("-n", "--accesses", type=parse_count, default=None, metavar="N",
                    help="number of accesses (10M, 1e7, 20000; decimal units)")
    ge.add_argument("-o", "--output", required=True, metavar="OUT", help="output path")
    ge.add_argument("--format", choices=OUT_FORMATS, default="native",
                    help="output format")
    ge.add_argument("--seed", type=int, default=None, help="seed of a random workload")
    ge.add_argument("--force", action="store_true", help="replace an existing OUT")
    ge.add_argument("--no-progress", dest="no_progress", action="store_true",
                    help="no progress bar (shown on stderr only when it is a terminal)")
    for key, (kind, takers) in params.items():
        meta = {"size": "SIZE", "addr": "ADDR", "count": "N", "real": "X", "str": "NAME"}[kind]
        ge.add_argument("--" + key.replace("_", "-"), dest="wp_" + key, metavar=meta,
                        help=f"{key} of {', '.join(takers)}")
    add_debug(ge)
    ge.set_defaults(func=cmd_gen)

    # ------------------------------------------------------------------ convert
    cv = command(
        "convert", "convert a trace between formats",
        "Convert a trace file (any format mmucore reads, detected or --from) to a native "
        "folder, lackey text or raw addresses. The output format follows --to, else the "
        "suffix of OUT (.lackey[.gz|.xz|.bz2|.zst]: lackey, .bin/.raw: raw, anything else: "
        "native). A failed conversion leaves no output. IN may also be a bundled trace's "
        "name or a workload spec.",
        _examples("mmucore convert run.lackey.xz run.trace",
                  "mmucore convert pinatrace.out run.lackey --to lackey",
                  "mmucore convert trace.champsim.xz out.trace --from champsim",
                  "mmucore convert messy.din clean.trace --skip-malformed"))
    cv.add_argument("input", metavar="IN", help="input trace")
    cv.add_argument("output", metavar="OUT", help="output path")
    cv.add_argument("--from", dest="from_format", metavar="FMT", default=None,
                    help="input format: lackey, din, xdin, pinatrace, champsim, "
                         "champsim-cloudsuite, raw, native (default: detected)")
    cv.add_argument("--to", choices=OUT_FORMATS, default=None,
                    help="output format (default: from the suffix of OUT)")
    cv.add_argument("--force", action="store_true", help="replace an existing OUT")
    cv.add_argument("--skip-malformed", dest="skip_malformed", action="store_true",
                    help="skip malformed lines (counted) instead of stopping at the first")
    cv.add_argument("--no-progress", dest="no_progress", action="store_true",
                    help="no progress bar (shown on stderr only when it is a terminal)")
    add_debug(cv)
    cv.set_defaults(func=cmd_convert)

    # ------------------------------------------------------------------ sweep
    sw = command(
        "sweep", "run every trace through every configuration (a process pool or Dask)",
        "Replay each trace of SPEC.toml through each configuration (the cross product, one "
        "task each) on a local process pool, or on a Dask cluster with --scheduler, and "
        "print one row per task: accesses, walks, miss ratio of the last TLB level, "
        "seconds, error. SPEC.toml has traces = [...] (files, bundled names, workload "
        "specs) and [[configs]] tables and/or a [grid] table of lists (docs/sweeps.md). "
        "--out gets each row as its task ends; --resume skips the tasks already there. A "
        "failing task is a row with its error (exit status 1 at the end); Ctrl-C keeps "
        "the rows done (exit status 130).",
        _examples("mmucore sweep stlb.toml",
                  "mmucore sweep stlb.toml --workers 2 --out rows.csv",
                  "mmucore sweep stlb.toml --out rows.csv --resume --json -",
                  "mmucore sweep stlb.toml --scheduler tcp://10.0.0.5:8786 --csv all.csv",
                  note="stlb.toml:\n"
                       "    traces = [\"zipf:n=1e6,pages=1e5,alpha=1.0,seed=1\", \"sort\"]\n"
                       "    [grid]\n"
                       "    preset = \"skylake\"\n"
                       "    huge_pages = [\"never\", \"thp\"]\n"
                       "    tlbs.stlb.entries = [1024, 1536, 2048]"))
    sw.add_argument("spec", metavar="SPEC.toml", help="the sweep file")
    sw.add_argument("--workers", type=int, default=None, metavar="N",
                    help="processes of the local pool (default: every core; 1: no pool)")
    sw.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                    help="run on this Dask scheduler (needs pip install \"mmucore[dask]\")")
    sw.add_argument("--out", metavar="FILE",
                    help="append each row to FILE (.csv or .jsonl) as its task ends")
    sw.add_argument("--resume", action="store_true",
                    help="skip the tasks that already have a row (without error) in --out")
    sw.add_argument("--force", action="store_true",
                    help="replace an existing --out file (instead of --resume)")
    sw.add_argument("--chunk-size", dest="chunk_size", type=parse_count, default=None,
                    metavar="N", help="accesses per engine call (default: the file's, else 1M)")
    sw.add_argument("--no-progress", dest="no_progress", action="store_true",
                    help="no progress bar (shown on stderr only when it is a terminal)")
    sw.add_argument("--json", metavar="FILE",
                    help="also write the rows as a JSON array ('-': only JSON, on stdout)")
    sw.add_argument("--csv", metavar="FILE",
                    help="also write the rows as CSV ('-': only CSV, on stdout)")
    add_debug(sw)
    sw.set_defaults(func=cmd_sweep)

    # ------------------------------------------------------------------ presets
    pr = command(
        "presets", "list the CPU presets, or show one",
        "Without NAME: every bundled CPU preset with its paging modes and TLB entries per "
        "level. With NAME (a preset or a .toml file of the preset schema): every structure "
        "with geometry, page sizes, splintering and policy, the paging-structure caches, "
        "sources and caveats.",
        _examples("mmucore presets", "mmucore presets skylake",
                  "mmucore presets zen2 --toml > mine.toml", "mmucore presets p6 --json -"))
    pr.add_argument("name", metavar="NAME", nargs="?", help="preset name or .toml file")
    pr.add_argument("--toml", action="store_true", help="print the preset's TOML file")
    pr.add_argument("--json", metavar="FILE",
                    help="also write the preset(s) as JSON ('-': only JSON, on stdout)")
    add_debug(pr)
    pr.set_defaults(func=cmd_presets)

    # ------------------------------------------------------------------ demo
    demo = _load_demo() if load_demo else None
    d = command(
        "demo", "a guided tour: run the main experiments and plot them",
        " ".join((getattr(demo, "__doc__", None) or "").strip().split("\n\n")[0].split())
        .replace("``", "") or "A guided tour of mmucore's main experiments.",
        _examples("mmucore demo", "mmucore demo --help"))
    if demo is not None:
        demo.add_arguments(d)
        d.set_defaults(func=demo.cmd_demo)
    else:
        d.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        d.set_defaults(func=cmd_demo_missing)
    add_debug(d)

    # ------------------------------------------------------------------ tlb
    t = command(
        "tlb", "simulate a TLB on a generated workload",
        "Simulate one TLB structure per policy on a generated address stream (made in "
        "chunks of 2**20 accesses) and print accesses, hits, misses, miss ratio and "
        "millions of accesses per second.",
        _examples("mmucore tlb --entries 64 --ways 4 --policy lru,fifo,plru,random",
                  "mmucore tlb --workload zipf --footprint 1G -n 1e7 --zipf-exponent 1.2",
                  "mmucore tlb --entries 1536 --ways 12 --page-size 4K,2M --json -"))
    t.add_argument("--entries", type=int, default=64, help="TLB entries")
    t.add_argument("--ways", type=int, default=4,
                   help="associativity (ways == entries: fully associative)")
    t.add_argument("--page-size", default="4K",
                   help="page size(s) held, comma-separated: 4K, 2M, 4M, 1G (misses fill "
                        "the smallest)")
    t.add_argument("--policy", default="lru",
                   help="replacement policy, or a comma list (one row each): lru, fifo, "
                        "random, plru, lfu, srrip")
    t.add_argument("--workload", choices=WORKLOADS, default="uniform",
                   help="uniform random bytes; sequential stride; bounded Zipf over pages")
    t.add_argument("--footprint", default="64M",
                   help="bytes the workload touches (K/M/G/T binary units)")
    t.add_argument("-n", "--accesses", type=parse_count, default=10_000_000,
                   help="number of accesses (20000, 1e7, 10M; decimal units)")
    t.add_argument("--seed", type=int, default=0, help="seed of the workload and of random")
    t.add_argument("--zipf-exponent", type=float, default=1.0,
                   help="exponent a > 0 of the zipf workload (P(rank r) ~ 1/r**a)")
    t.add_argument("--stride", type=int, default=64, help="bytes between sequential accesses")
    t.add_argument("--json", metavar="FILE",
                   help="also write the results as JSON to FILE ('-': only JSON, on stdout)")
    add_debug(t)
    t.set_defaults(func=cmd_tlb)

    # ------------------------------------------------------------------ bench
    b = command(
        "bench", "compare mmucore with pycachesim, libcachesim and pure Python",
        "Accesses per second of mmucore's TLB vs pycachesim, libcachesim and pure Python "
        "on uniform and sequential traces, with a miss-count cross-check (the logic of "
        "bench/compare_tlb.py). Simulators that are not installed are skipped.",
        _examples("mmucore bench", "mmucore bench --n 1000000 --repeat 1",
                  "mmucore bench --stat best --json bench.json"))
    from pyapi._bench import build_parser as bench_parser
    bench_parser(b)
    for action in b._actions:          # counts take 10M / 1e7 here as everywhere
        if action.dest == "n":
            action.type = parse_count
            action.help = "accesses per run (10M, 1e6, 20000; default 10M)"
    add_debug(b)
    b.set_defaults(func=cmd_bench)
    return parser


def _command_of(argv: List[str]) -> Optional[str]:
    """The subcommand word of ``argv`` (the first word that is not an option)."""
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``mmucore`` command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if _command_of(argv) == "demo" and not {"-h", "--help"} & set(argv):
        try:
            missing = _load_demo() is None
        except Exception as exc:       # pyapi.demo exists but fails to import
            if debug:
                raise
            print(f"mmucore: error: mmucore demo cannot start: "
                  f"{' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
            return 1
        if missing:
            print(f"mmucore: error: {_DEMO_MISSING}", file=sys.stderr)
            return 1
    try:
        parser = build_parser(load_demo=_command_of(argv) == "demo")
    except Exception as exc:           # pyapi.demo failed to import
        if debug:
            raise
        print(f"mmucore: error: mmucore demo cannot start: "
              f"{' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
        return 1
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:          # usage errors (2), --help / --version (0)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        if args.debug:
            raise
        prog = f"mmucore {args.command}"
        print(f"{prog}: error: {exc} (usage: {prog} --help)", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`mmucore ... --json - | head`): not an input error;
        # point stdout at devnull so the interpreter's final flush stays quiet
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except (ValueError, TypeError, OSError, MemoryError, RuntimeError, LookupError) as exc:
        if args.debug:
            raise
        if isinstance(exc, KeyError) and exc.args:
            msg = str(exc.args[0])
        elif isinstance(exc, OSError) and exc.strerror and exc.filename:
            msg = f"{exc.filename}: {exc.strerror}"
        else:
            msg = str(exc)
        msg = " ".join(msg.split()) or type(exc).__name__
        print(f"mmucore: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("mmucore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
