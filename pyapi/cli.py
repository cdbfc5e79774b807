"""The ``mmucore`` command line (also ``python -m pyapi``).

    mmucore tlb [--entries 64] [--ways 4] [--page-size 4K[,2M...]] [--policy lru[,fifo...]]
                [--workload uniform|sequential|zipf] [--footprint 64M] [-n 10M] [--seed 0]
                [--zipf-exponent 1.0] [--stride 64] [--json FILE|-]
    mmucore bench [--n 10000000] [--repeat 3] [--stat median|best] [--json FILE|-]

``tlb`` simulates one TLB structure per policy on a generated workload and prints a
table of accesses, hits, misses, miss ratio and millions of accesses per second.
``bench`` runs the comparison of ``bench/compare_tlb.py`` (mmucore against pycachesim,
libcachesim and pure Python).

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
    if args.json not in (None, "-") and not Path(args.json).resolve().parent.is_dir():
        raise ValueError(f"--json {args.json}: directory {Path(args.json).parent} does not exist")
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
        print(json.dumps(doc, indent=2))
        return 0
    print(_tlb_table(config, results))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
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
    widths = [max(len(x[i]) for x in [cols] + rows) for i in range(len(cols))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join(head + [line(cols), line(["-" * w for w in widths])]
                     + [line(r) for r in rows])


def cmd_bench(args) -> int:
    from pyapi import _bench

    # tests/reference_tlb.py of a source checkout in the working directory, if any
    dirs = [Path.cwd() / "tests", Path(__file__).resolve().parents[1] / "tests"]
    return _bench.run_from_args(args, reference_dirs=dirs)


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmucore",
        description="mmucore: a fast memory-management-unit simulator (TLB engine).",
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
    except (ValueError, TypeError, OSError, MemoryError) as exc:
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
