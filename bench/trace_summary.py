"""Measure Valgrind lackey traces and keep pyapi/data/traces/MANIFEST.json + README.md.

Used by bench/record_traces.sh; stdlib only, so it runs under any Python 3.9+.

    python bench/trace_summary.py stats FILE [FILE...]      # print the measurements as JSON
    python bench/trace_summary.py add --manifest M --name N ... --raw T --xz T.xz -- ARGV...
    python bench/trace_summary.py readme --manifest M --out README.md

What is measured, per file (the uncompressed text):

* ``lines``: all lines; ``banner_lines``: lines starting ``==`` (valgrind's ``==pid==``);
* ``records``: lines per kind, ``I`` (instruction fetch), ``L``, ``S``, ``M`` (data load,
  store, modify); every other line is an error here;
* ``pages_4k`` / ``regions_2m``: distinct 4 KiB pages / 2 MiB-aligned regions touched, for
  all records, for ``I`` records and for data (``L/S/M``) records. A record touches every
  page from ``addr`` to ``addr + size - 1``;
* ``straddling_4k``: records whose bytes lie in two 4 KiB pages;
* ``address_span``: lowest and highest byte address touched, as hex strings.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import re
import sys

KINDS = ("I", "L", "S", "M")


def _open(path):
    return lzma.open(path, "rb") if path.endswith(".xz") else open(path, "rb")


def measure(path: str) -> dict:
    counts = dict.fromkeys(KINDS, 0)
    pages = {"I": set(), "D": set()}
    banner = 0
    lines = 0
    straddle = 0
    lo, hi = None, 0
    first_banner_run = 0
    in_head = True
    with _open(path) as f:
        for line in f:
            lines += 1
            if line.startswith(b"=="):
                banner += 1
                if in_head:
                    first_banner_run += 1
                continue
            in_head = False
            c0 = line[:1]
            if c0 == b"I" and line[1:3] == b"  ":
                kind, grp = "I", "I"
                body = line[3:]
            elif c0 == b" " and line[1:2] in (b"L", b"S", b"M") and line[2:3] == b" ":
                kind, grp = line[1:2].decode(), "D"
                body = line[3:]
            else:
                raise ValueError(f"{path}:{lines}: not a lackey record: {line[:80]!r}")
            a, _, s = body.partition(b",")
            addr = int(a, 16)
            last = addr + int(s) - 1
            counts[kind] += 1
            p0, p1 = addr >> 12, last >> 12
            pg = pages[grp]
            pg.add(p0)
            if p1 != p0:
                straddle += 1
                pg.update(range(p0 + 1, p1 + 1))
            if lo is None or addr < lo:
                lo = addr
            if last > hi:
                hi = last
    allp = pages["I"] | pages["D"]
    reg = lambda ps: len({p >> 9 for p in ps})  # noqa: E731  (512 x 4K = 2M)
    return {
        "lines": lines,
        "banner_lines": banner,
        "leading_banner_lines": first_banner_run,
        "records": counts,
        "records_total": sum(counts.values()),
        "pages_4k": {"all": len(allp), "I": len(pages["I"]), "data": len(pages["D"])},
        "regions_2m": {"all": reg(allp), "I": reg(pages["I"]), "data": reg(pages["D"])},
        "straddling_4k": straddle,
        "address_span": [hex(lo or 0), hex(hi)],
    }


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def _load(manifest: str) -> dict:
    if os.path.exists(manifest):
        with open(manifest) as f:
            return json.load(f)
    return {
        "format": "valgrind lackey --trace-mem=yes (valgrind log stream, banners kept), xz -9e",
        "recorded_by": "bench/record_traces.sh",
        "measured_by": "bench/trace_summary.py",
        "definitions": {
            "records": "lines per kind: I = instruction fetch, L = load, S = store, M = modify (load+store)",
            "pages_4k": "distinct 4 KiB pages touched (a record touches addr .. addr+size-1), all / I / data (L,S,M)",
            "regions_2m": "distinct 2 MiB-aligned regions touched, all / I / data",
            "window": "full = the whole run; syscall:NAME = start-up dropped, records from the first syscall naming NAME (valgrind --trace-syscalls=yes) to the exit",
        },
        "traces": [],
    }


def _save(manifest: str, data: dict) -> None:
    data["traces"].sort(key=lambda t: t["name"])
    tmp = manifest + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, manifest)


def cmd_add(ns) -> None:
    data = _load(ns.manifest)
    entry = {
        "name": ns.name,
        "file": os.path.basename(ns.xz),
        "program": ns.program,
        "command": ns.argv,
        "input": ns.input,
        "window": ns.window,
        "valgrind": ns.valgrind,
    }
    entry.update(measure(ns.raw))
    entry["uncompressed_bytes"] = os.path.getsize(ns.raw)
    entry["compressed_bytes"] = os.path.getsize(ns.xz)
    entry["sha256_uncompressed"] = sha256(ns.raw)
    entry["sha256"] = sha256(ns.xz)
    data["traces"] = [t for t in data["traces"] if t["name"] != ns.name] + [entry]
    _save(ns.manifest, data)


def _fmt(n: int) -> str:
    return f"{n:,}"


def cmd_readme(ns) -> None:
    data = _load(ns.manifest)
    if ns.host:
        data["host"] = ns.host
        _save(ns.manifest, data)
    tr = data["traces"]
    out = []
    w = out.append
    w("# Bundled Valgrind lackey traces\n")
    w("Small traces of real programs, recorded with `valgrind --tool=lackey --trace-mem=yes` by")
    w("`bench/record_traces.sh` and measured by `bench/trace_summary.py`. Every number below")
    w("is generated from `MANIFEST.json`, which those scripts write; do not edit by hand.\n")
    w("Each file is valgrind's log stream as lackey wrote it, `xz -9e` compressed: the")
    w("`==pid==` banner lines first, then one line per event (`I  addr,size` for an")
    w("instruction fetch, ` L`/` S`/` M addr,size` for a load, store or modify), then the")
    w("exit summary banners. The programs ran in a fresh PID namespace (hence `==2==`)")
    w("with an empty environment plus")
    w("`LC_ALL=C TZ=UTC PATH=/usr/bin:/bin HOME=/nonexistent PYTHONHASHSEED=0`, on inputs")
    w("the script generates from fixed seeds. User space only: no kernel, no physical")
    w("addresses.\n")
    if data.get("host"):
        w(f"Recorded on {data['host']}.\n")
    w("## Traces\n")
    w("| file | program | window | I | L | S | M | 4K pages (all / I / data) | 2M regions (all / I / data) | xz bytes | text bytes |")
    w("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for t in tr:
        r, p, g = t["records"], t["pages_4k"], t["regions_2m"]
        w(f"| `{t['file']}` | {t['program']} | {t['window']} | {_fmt(r['I'])} | {_fmt(r['L'])} | "
          f"{_fmt(r['S'])} | {_fmt(r['M'])} | {_fmt(p['all'])} / {_fmt(p['I'])} / {_fmt(p['data'])} | "
          f"{g['all']} / {g['I']} / {g['data']} | {_fmt(t['compressed_bytes'])} | {_fmt(t['uncompressed_bytes'])} |")
    tot_c = sum(t["compressed_bytes"] for t in tr)
    tot_u = sum(t["uncompressed_bytes"] for t in tr)
    tot_r = sum(t["records_total"] for t in tr)
    w(f"\nTotal: {len(tr)} files, {_fmt(tot_r)} records, {_fmt(tot_c)} bytes compressed, "
      f"{_fmt(tot_u)} bytes of text.\n")
    w("Windows: `full` is the whole run, from the dynamic loader's first instruction to the")
    w("exit. `syscall:NAME` drops the program's start-up: the recording also ran with")
    w("`--trace-syscalls=yes`, and a filter kept the leading banner lines, skipped everything")
    w("up to the first syscall line naming NAME (the Python workload `stat()`s")
    w("`/mmucore-trace-start` first; the sqlite3 shell opens `queries.sql`), then kept every")
    w("record and banner line to the end; the syscall lines are dropped. The exit banners")
    w("then still report the whole run's instruction count.\n")
    w("Distinct pages and regions count every page a record's bytes touch (`addr` to")
    w("`addr + size - 1`), instruction fetches and data separately and together.\n")
    w("They ship inside the `pyapi` package:\n")
    w("```python")
    w("from importlib.resources import files")
    w("path = files(\"pyapi\") / \"data\" / \"traces\" / \"sort.lackey.xz\"")
    w("import lzma; lzma.open(path, \"rt\").readline()   # '==2== Lackey, an example Valgrind tool'")
    w("```\n")
    w("## Per file\n")
    for t in tr:
        w(f"### `{t['file']}`\n")
        w(f"* program: {t['program']}")
        w(f"* command: `{' '.join(_shq(a) for a in t['command'])}`")
        w(f"* input: {t['input']}")
        w(f"* window: {t['window']}; {t['valgrind']}")
        w(f"* lines: {_fmt(t['lines'])} = {_fmt(t['records_total'])} records + "
          f"{t['banner_lines']} banner lines ({t['leading_banner_lines']} leading)")
        r = t["records"]
        w(f"* records: I {_fmt(r['I'])}, L {_fmt(r['L'])}, S {_fmt(r['S'])}, M {_fmt(r['M'])}")
        p, g = t["pages_4k"], t["regions_2m"]
        w(f"* distinct 4K pages: {_fmt(p['all'])} (I {_fmt(p['I'])}, data {_fmt(p['data'])}); "
          f"distinct 2M regions: {g['all']} (I {g['I']}, data {g['data']}); "
          f"records straddling a 4K boundary: {_fmt(t['straddling_4k'])}")
        w(f"* addresses: {t['address_span'][0]} .. {t['address_span'][1]}")
        w(f"* size: {_fmt(t['compressed_bytes'])} bytes xz, {_fmt(t['uncompressed_bytes'])} bytes text")
        w(f"* sha256 (xz): `{t['sha256']}`")
        w(f"* sha256 (text): `{t['sha256_uncompressed']}`\n")
    w("## Re-recording\n")
    w("```")
    w("bench/record_traces.sh            # all traces; rewrites MANIFEST.json and this README")
    w("bench/record_traces.sh sort gzip  # only these")
    w("```\n")
    w("Needs valgrind, xz, mawk, file and the traced programs; `PYTHON=` picks the")
    w("interpreter (resolved to its real ELF binary, never a shim). About 14 minutes on two")
    w("busy cores, most of it `xz -9e` and the 37 M lines of CPython start-up that the")
    w("python window skips. On the same machine a re-run repeats the windowed traces")
    w("byte for byte; a full run can differ in a few load addresses inside ld.so (a re-run")
    w("of sort: 2 of 3.1 M lines), never in counts. Other binaries give other traces, and")
    w("the manifest records the new facts. `tests/test_bundled_traces.py` checks the files")
    w("against `MANIFEST.json`.")
    with open(ns.out, "w") as f:
        f.write("\n".join(out) + "\n")


def _shq(a: str) -> str:
    if a and re.fullmatch(r"[A-Za-z0-9_./:=+-]+", a):
        return a
    return "'" + a.replace("'", "'\\''") + "'"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stats")
    s.add_argument("files", nargs="+")
    a = sub.add_parser("add")
    for opt in ("manifest", "name", "program", "input", "window", "valgrind", "raw", "xz"):
        a.add_argument("--" + opt, required=True)
    a.add_argument("argv", nargs="+")
    r = sub.add_parser("readme")
    r.add_argument("--manifest", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--host", help="the recording machine, kept in the manifest")
    ns = ap.parse_args(argv)
    if ns.cmd == "stats":
        json.dump({f: measure(f) for f in ns.files}, sys.stdout, indent=2)
        print()
    elif ns.cmd == "add":
        cmd_add(ns)
    else:
        cmd_readme(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
