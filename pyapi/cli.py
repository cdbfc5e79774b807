"""The ``mmucore`` command line (also ``python -m pyapi``).

    mmucore tlb [--entries 64] [--ways 4] [--page-size 4K[,2M...]] [--policy lru[,fifo...]]
                [--workload uniform|sequential|zipf] [--footprint 64M] [-n 10M] [--seed 0]
                [--zipf-exponent 1.0] [--stride 64] [--json FILE|-]
    mmucore bench [--n 10000000] [--repeat 3] [--stat median|best] [--json FILE|-]
    mmucore lowmem --ram 64G[,32G...] [--pae] [--kernel 2.4.18] [--struct-page 64]
                   [--split 3G/1G] [--json FILE|-]
    mmucore kmap [--workload page_cache|pte_highmem|bounce_io] [--trace DIR]
                 [--pool global|per-task|both] [--kernel 2.4.18] [--pae] [--cpus 4]
                 [--tasks N] [-n 100K] [--hit-rate 0.5] [--slots N] [--tlb 64x4] [--json FILE|-]
    mmucore mrc TRACE [--page-size 4K[,2M...]] [--method exact|shards] [--rate R]
                [--sample-size N] [--sets N] [--sizes 16,32,64] [--seed 0] [--format FMT]
                [--plot FILE] [--json FILE|-]

``tlb`` simulates one TLB structure per policy on a generated workload and prints a
table of accesses, hits, misses, miss ratio and millions of accesses per second.
``bench`` runs the comparison of ``bench/compare_tlb.py`` (mmucore against pycachesim,
libcachesim and pure Python). ``lowmem`` prints the 32-bit kernel address-space budget
for a RAM size (``pyapi.lowmem_budget``); ``kmap`` runs a kmap workload or trace through
the global pkmap pool and/or the per-task pool of the 2002 thread (``pyapi.KmapPool``);
``mrc`` prints the LRU miss-ratio curve of a trace or workload for every TLB size at once
(``pyapi.miss_ratio_curve``).

Exit status: 0 success; 2 usage errors (reported by argparse); 1 input errors, reported
as one line ``mmucore: error: ...`` (``--debug`` shows the traceback instead).
"""
from __future__ import annotations

import argparse
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
    (decimal units: K = 1000, M = 10**6, G = 10**9)."""
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


def _table(cols, rows) -> str:
    widths = [max(len(str(x[i])) for x in [cols] + list(rows)) for i in range(len(cols))]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

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
def _mrc_source(text: str, fmt: Optional[str]):
    """TRACE of ``mmucore mrc``: a trace file, a bundled trace's name, or a workload spec
    such as ``zipf:n=1e6,pages=1e4``. Returns (object for miss_ratio_curve, description)."""
    from pyapi.trace import Trace, bundled_traces, open_bundled
    from pyapi import workloads

    path = Path(text)
    if path.exists():
        return Trace.open(path, format=fmt), f"trace {text}"
    if fmt is not None:
        raise ValueError(f"{text}: no such trace file")
    try:
        bundled = bundled_traces()
    except OSError:
        bundled = {}
    if text in bundled:
        return open_bundled(text), f"bundled trace {text}"
    if ":" in text:
        w = workloads.from_spec(text)
        return w, f"workload {w.spec}"
    raise ValueError(f"{text}: no such trace file, bundled trace ({', '.join(sorted(bundled))}) "
                     f"or workload spec (e.g. zipf:n=1e6,pages=1e4)")


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
    source, what = _mrc_source(args.trace, args.format)
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


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmucore",
        description="mmucore: a fast memory-management-unit simulator.",
        epilog="Exit status: 0 ok, 1 input error, 2 usage error.")
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

    t = sub.add_parser(
        "tlb", help="simulate a TLB on a generated workload",
        description="Simulate one TLB structure per policy on a generated address stream "
                    "(made in chunks of 2**20 accesses) and print accesses, hits, misses, "
                    "miss ratio and millions of accesses per second.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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

    b = sub.add_parser(
        "bench", help="compare mmucore with pycachesim, libcachesim and pure Python",
        description="Accesses per second of mmucore's TLB vs pycachesim, libcachesim and "
                    "pure Python on uniform and sequential traces, with a miss-count "
                    "cross-check (the logic of bench/compare_tlb.py).")
    from pyapi._bench import build_parser as bench_parser
    bench_parser(b)
    add_debug(b)
    b.set_defaults(func=cmd_bench)
    lm = sub.add_parser(
        "lowmem", help="the 32-bit kernel address-space budget for a RAM size",
        description="How the 1 GiB (3G/1G split) of 32-bit x86 kernel virtual address "
                    "space is spent, and how much of lowmem mem_map eats, for a RAM size; "
                    "says when the machine cannot boot.",
        epilog="examples:\n  mmucore lowmem --ram 64G --pae --struct-page 64\n"
               "  mmucore lowmem --ram 4G,16G,32G,64G --pae --kernel 2.4.18\n"
               "  mmucore lowmem --ram 16G --pae --split 2G/2G --json -",
        formatter_class=argparse.RawDescriptionHelpFormatter)
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

    k = sub.add_parser(
        "kmap", help="the kmap pool: global pkmap pool vs per-task pools",
        description="Run a kmap workload (or a kmap trace: ops KMAP/KUNMAP/KMAP_ATOMIC/"
                    "KUNMAP_ATOMIC/SWITCH, addr = pfn, with cpu and task columns) through "
                    "the global pkmap pool and/or the per-task pool of the 2002 thread, "
                    "with a dTLB per CPU, and print flushes, IPIs, lookups and TLB misses.",
        epilog="examples:\n  mmucore kmap --cpus 16 --pool both\n"
               "  mmucore kmap --workload pte_highmem --kernel 2.5.13 --cpus 4\n"
               "  mmucore kmap --kernel 2.6.12 --pae --slots 128 -n 1M --json out.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    k.add_argument("--workload", choices=("page_cache", "pte_highmem", "bounce_io"),
                   default="page_cache", help="generated workload (default page_cache)")
    k.add_argument("--trace", metavar="PATH", help="a kmap trace instead of a workload")
    k.add_argument("--pool", choices=("global", "per-task", "both"), default="both")
    k.add_argument("--kernel", default="2.4.18", help="2.4.18, 2.5.13, 2.6.12 or 6.x")
    k.add_argument("--pae", action="store_true", help="PAE kernel (512 pkmap slots)")
    k.add_argument("--cpus", type=int, default=4, help="online CPUs (default 4)")
    k.add_argument("--tasks", type=int, default=None, help="tasks (default: one per CPU)")
    k.add_argument("-n", "--accesses", type=parse_count, default=100_000,
                   help="workload steps (page copies, faults or requests; default 100K)")
    k.add_argument("--hit-rate", type=float, default=0.5,
                   help="page_cache: share of kmaps finding the page mapped (default 0.5)")
    k.add_argument("--slots", type=int, default=None,
                   help="pkmap slots (default LAST_PKMAP: 1024, 512 with PAE)")
    k.add_argument("--tlb", default="64x4",
                   help="dTLB per CPU as ENTRIESxWAYS, or none (default 64x4)")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--json", metavar="FILE",
                   help="also write the results as JSON to FILE ('-': only JSON)")
    add_debug(k)
    k.set_defaults(func=cmd_kmap)

    m = sub.add_parser(
        "mrc", help="LRU miss-ratio curve of a trace: misses for every TLB size at once",
        description="One pass over a trace (or a generated workload) gives the misses of "
                    "an LRU TLB of every size (exact stack distances, or SHARDS sampling "
                    "for huge traces), per page size: how many entries, and which page "
                    "size, a workload needs. Only memory accesses count.",
        epilog="TRACE is a trace file (format detected, or --format), the name of a "
               "bundled trace (sort, xz, ...), or a workload spec.\n"
               "examples:\n  mmucore mrc sort --page-size 4K,2M --plot mrc.png\n"
               "  mmucore mrc zipf:n=1e7,pages=1e6,alpha=1.0 --method shards --rate 0.01\n"
               "  mmucore mrc run.lackey --sets 16 --sizes 16,32,64,128 --json -",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("trace", metavar="TRACE", help="trace file, bundled trace name or workload spec")
    m.add_argument("--page-size", default="4K",
                   help="page size(s), comma-separated: 4K, 2M, 4M, 1G (one curve each; default 4K)")
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
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``mmucore`` command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:          # usage errors (2), --help / --version (0)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError, MemoryError, RuntimeError) as exc:
        if args.debug:
            raise
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"mmucore: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmucore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
