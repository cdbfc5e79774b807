"""Sweeps: one simulation per (trace, configuration) pair, on a process pool or a cluster.

:func:`sweep` replays every trace of a list through every configuration of a list (the
cross product, one task each) and returns a :class:`SweepResult` whose ``rows`` are
plain dicts in a fixed order: trace-major, the traces in the order given, and for each
trace the configurations in the order given. A row holds the configuration's columns,
the trace, ``seconds``, ``error`` and every counter of ``Stats.to_dict()``.
:func:`grid` expands a preset and lists of values into the configuration list.

* **Traces** are anything ``mmucore replay`` takes: a path (native folder or any trace
  file), the name of a bundled trace, a workload spec such as
  ``"zipf:n=1e7,pages=1e5,alpha=1.0,seed=1"``, a ``Trace``, or a ``Workload``.
* **Configurations** are a preset name (or ``.toml`` path), an ``MMUConfig``, or a dict
  ``{"preset": "skylake", "huge_pages": "thp", "tlbs": {"stlb": {"entries": 2048,
  "ways": 16}}, "label": "big"}`` (``tlbs.stlb.entries`` also works as one key).
* **Executors**: ``"local"`` (default), a process pool of ``workers`` processes
  (``os.cpu_count()`` by default; ``workers=1`` runs in this process, no pool);
  ``"dask"``, a Dask distributed cluster (``scheduler=`` address, else Dask's own
  configuration); a ``distributed.Client``; or any ``concurrent.futures.Executor``.
* **Output**: ``out=`` a ``.csv`` or ``.jsonl`` file gets each row as soon as its task
  ends; ``resume=True`` skips the tasks already in it. A failing task (missing file,
  malformed trace, invalid configuration) is a row with ``error`` set; the others go on.

``docs/sweeps.md`` gives the details.

>>> res = sweep(["stride:n=20000,footprint=64M,stride=4096"],
...             grid("skylake", huge_pages=["never", "thp"]), workers=1)
>>> [(r["label"], r["cpu0.walks"], r["error"]) for r in res.rows]
[('skylake huge_pages=never', 20000, None), ('skylake huge_pages=thp', 32, None)]
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np  # noqa: F401  (the examples use it)

from pyapi.progress import progress_bar

__all__ = ["sweep", "grid", "SweepResult", "load_spec", "clear_cache"]

#: Configuration columns every row has (before the dotted override columns).
CONFIG_COLUMNS = ("trace", "label", "preset", "paging", "huge_pages", "pcid", "cpus",
                  "inclusion")
#: Columns after the overrides, before the counters.
TASK_COLUMNS = ("config_hash", "seconds", "error", "ll_miss_ratio")
#: A ``Trace`` without a file is sent to the workers as its records when it is at most
#: this many bytes; a larger one must be written to a file first (``Trace.convert``).
INLINE_LIMIT = 64 << 20
#: Bytes of parsed (non-native) trace files each worker keeps in memory, so that a trace
#: shared by several tasks is parsed once per worker: ``MMUCORE_SWEEP_CACHE`` (``256M``,
#: ``1G``, ``0`` for none).
DEFAULT_CACHE = 256 << 20

_MMU_FIELDS = ("paging", "huge_pages", "pcid", "cpus", "inclusion", "seed", "phys_mem",
               "allocator", "maxphyaddr", "user", "psc", "psc_policy")
_TLB_FIELDS = ("entries", "ways", "policy", "page_sizes", "splinter", "level", "side")
_OUT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


# ------------------------------------------------------------------ configurations
def _flatten(spec: dict, where: str) -> Dict[str, object]:
    """A config dict as ``{dotted key: value}`` (``tlbs`` nested two levels)."""
    flat = {}
    for key, value in spec.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: key {key!r} is not a string")
        if key == "tlbs":
            if not isinstance(value, dict):
                raise ValueError(f"{where}: tlbs must be a table {{name: {{field: value}}}}, "
                                 f"not {value!r}")
            for name, fields in value.items():
                if not isinstance(fields, dict):
                    raise ValueError(f"{where}: tlbs.{name} must be a table {{field: value}}, "
                                     f"not {fields!r}")
                for f, v in fields.items():
                    flat[f"tlbs.{name}.{f}"] = v
        else:
            flat[key] = value
    return flat


def _check_key(key: str, where: str) -> None:
    if key in ("preset", "label"):
        return
    parts = key.split(".")
    if len(parts) == 1 and key in _MMU_FIELDS:
        return
    if len(parts) == 3 and parts[0] == "tlbs" and parts[1] and parts[2] in _TLB_FIELDS:
        return
    raise ValueError(f"{where}: unknown key {key!r}; use preset, label, "
                     f"{', '.join(_MMU_FIELDS)}, or tlbs.NAME.FIELD with FIELD one of "
                     f"{', '.join(_TLB_FIELDS)}")


def _default_label(preset: str, overrides: Dict[str, object]) -> str:
    parts = [str(preset)]
    for k, v in overrides.items():
        k = k[5:] if k.startswith("tlbs.") else k
        parts.append(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}")
    return " ".join(parts)


class _Config:
    """One configuration of a sweep: its label, columns, hash and the built MMUConfig
    (or the one-line error that building it raised)."""

    def __init__(self, spec, index: int):
        self.config = None
        self.error = None
        self.preset, self.overrides, self.label = "", {}, f"configs[{index}]"
        try:
            text = json.dumps(spec.to_dict() if hasattr(spec, "to_dict") else spec,
                              sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = repr(spec)
        self.hash = hashlib.sha1(text.encode()).hexdigest()[:12]
        try:
            self._build(spec, index)
        except (ValueError, TypeError, KeyError, OSError) as exc:
            self.error = _one_line(exc)

    def _build(self, spec, index: int) -> None:
        from pyapi.config import MMUConfig, load_preset

        where = f"configs[{index}]"
        if isinstance(spec, MMUConfig):
            self.preset, self.label = spec.name, spec.name
            canon = {"config": spec.to_dict()}
            base = spec
        elif isinstance(spec, (str, os.PathLike)):
            self.preset = self.label = os.fspath(spec)
            canon = {"preset": self.preset}
            base = None
        elif isinstance(spec, dict):
            flat = _flatten(spec, where)
            preset = flat.pop("preset", None)
            label = flat.pop("label", None)
            if isinstance(label, str):
                self.label = label
            if isinstance(preset, MMUConfig):
                base, canon = preset, {"config": preset.to_dict()}
                preset = preset.name
            elif isinstance(preset, (str, os.PathLike)):
                base, preset = None, os.fspath(preset)
                canon = {"preset": preset}
            else:
                raise ValueError(f"{where}: 'preset' must name a preset (e.g. \"skylake\"), "
                                 f"a .toml file or be an MMUConfig, not {preset!r}")
            self.preset, self.overrides = preset, flat
            if label is None:
                self.label = _default_label(preset, flat)
            for k in flat:
                _check_key(k, where)
            if label is not None and not isinstance(label, str):
                raise ValueError(f"{where}: 'label' must be a string, not {label!r}")
            canon.update(flat)
        else:
            raise TypeError(f"{where}: a configuration is a preset name, an MMUConfig or a "
                            f"dict with 'preset', not {type(spec).__name__}")
        # the key of resume: the configuration without its label
        text = json.dumps(canon, sort_keys=True, default=str)
        self.hash = hashlib.sha1(text.encode()).hexdigest()[:12]
        cfg = base if base is not None else load_preset(self.preset)
        top = {k: v for k, v in self.overrides.items() if "." not in k}
        if top:
            cfg = cfg.replace(**top)
        tlbs: Dict[str, dict] = {}
        for k, v in self.overrides.items():
            if "." in k:
                _, name, field = k.split(".")
                tlbs.setdefault(name, {})[field] = v
        for name, fields in tlbs.items():
            cfg = cfg.with_tlb(name, **fields)
        self.config = cfg

    def columns(self) -> dict:
        c = self.config
        cols = {"label": self.label, "preset": self.preset}
        for name in ("paging", "huge_pages", "pcid", "cpus", "inclusion"):
            cols[name] = getattr(c, name) if c is not None else self.overrides.get(name)
        for k, v in self.overrides.items():
            if k not in cols:
                cols[k] = json.dumps(v) if isinstance(v, (dict, list, tuple)) else v
        return cols


def grid(preset="skylake", **axes) -> List[dict]:
    """The configuration specs of a grid: ``preset`` (a name, or a list of names) with
    every combination of the values in ``axes``, as dicts for :func:`sweep`.

    Keys are ``MMUConfig`` fields (``huge_pages``, ``paging``, ``pcid``, ``cpus``,
    ``inclusion``, ...) or ``tlbs.NAME.FIELD`` (``tlbs.stlb.entries``, written
    ``**{"tlbs.stlb.entries": [...]}`` or ``tlbs={"stlb": {"entries": [...]}}``). A list
    (or tuple) is an axis; any other value is fixed (write a list value as ``[[...]]``).
    Order: ``itertools.product`` of ``preset`` then the axes in the order given, so the
    last axis varies fastest. Each dict's ``label`` is the preset followed by its values.

    >>> specs = grid("skylake", huge_pages=["never", "thp"],
    ...              **{"tlbs.stlb.entries": [1024, 2048], "tlbs.stlb.ways": 8})
    >>> [s["label"] for s in specs]      # doctest: +NORMALIZE_WHITESPACE
    ['skylake huge_pages=never stlb.entries=1024 stlb.ways=8',
     'skylake huge_pages=never stlb.entries=2048 stlb.ways=8',
     'skylake huge_pages=thp stlb.entries=1024 stlb.ways=8',
     'skylake huge_pages=thp stlb.entries=2048 stlb.ways=8']
    >>> specs[1]["tlbs"], specs[1]["huge_pages"]
    ({'stlb': {'entries': 2048, 'ways': 8}}, 'never')
    """
    flat = _flatten(axes, "grid")
    for k in flat:
        if k in ("preset", "label"):
            raise ValueError(f"grid: {k!r} cannot be an axis key here")
        _check_key(k, "grid")
    presets = list(preset) if isinstance(preset, (list, tuple)) else [preset]
    if not presets:
        raise ValueError("grid: preset is an empty list")
    keys = list(flat)
    values = []
    for k in keys:
        v = flat[k]
        if isinstance(v, (list, tuple)):
            if not v:
                raise ValueError(f"grid: {k} is an empty list (no configuration at all)")
            values.append(list(v))
        else:
            values.append([v])
    out = []
    for combo in itertools.product(presets, *values):
        p, vals = combo[0], combo[1:]
        spec: dict = {"preset": p}
        over = {}
        for k, v in zip(keys, vals):
            over[k] = v
            if k.startswith("tlbs."):
                _, name, field = k.split(".")
                spec.setdefault("tlbs", {}).setdefault(name, {})[field] = v
            else:
                spec[k] = v
        spec["label"] = _default_label(p.name if hasattr(p, "tlbs") else os.fspath(p), over)
        out.append(spec)
    return out


# ------------------------------------------------------------------ traces
def _trace_ref(obj, index: int) -> Tuple[str, tuple]:
    """(label, reference sent to the workers) of a trace argument."""
    from pyapi.trace import Trace, as_trace
    from pyapi.workloads import Workload

    if isinstance(obj, (str, os.PathLike)):
        text = os.fspath(obj)
        return text, ("text", text, None, "raise")
    if isinstance(obj, Workload):
        return obj.spec, ("spec", obj.spec)
    if isinstance(obj, Trace) and obj.path is not None:
        return str(obj.path), ("text", str(obj.path), obj.format, obj.errors)
    t = as_trace(obj)
    if t.path is not None:
        return str(t.path), ("text", str(t.path), t.format, t.errors)
    chunk = t.read()
    nbytes = sum(c.nbytes for c in (chunk.addr, chunk.op, chunk.size, chunk.cpu, chunk.task)
                 if c is not None)
    if nbytes > INLINE_LIMIT:
        raise ValueError(f"traces[{index}]: an in-memory trace of {nbytes:,} bytes is too "
                         f"big to send to every task (limit {INLINE_LIMIT:,}); write it to "
                         f"a native trace with Trace.convert(trace, PATH) and pass PATH")
    return f"<{t.format} trace {index}>", ("chunk", chunk)


# Worker-side cache: {key: Trace (native, memory-mapped) or TraceChunk (parsed file)}.
_CACHE: Dict[tuple, object] = {}
_CACHED_BYTES = [0]


def clear_cache() -> None:
    """Forget the traces this process keeps for the tasks of sweeps (memory-mapped
    native traces and parsed trace files; see ``docs/sweeps.md``).

    >>> clear_cache()
    """
    _CACHE.clear()
    _CACHED_BYTES[0] = 0


def _cache_budget() -> int:
    text = os.environ.get("MMUCORE_SWEEP_CACHE")
    if not text:
        return DEFAULT_CACHE
    from pyapi.units import parse_size
    try:
        return parse_size(text, what="MMUCORE_SWEEP_CACHE")
    except (ValueError, TypeError):
        return DEFAULT_CACHE


def _chunk_bytes(c) -> int:
    return sum(a.nbytes for a in (c.addr, c.op, c.size, c.cpu, c.task) if a is not None)


def _caching(trace, key, chunk_size: int, budget: int):
    """The chunks of ``trace``; once the whole trace has been read, and when it fits in
    ``budget`` bytes, it is kept in the cache for the next task."""
    from pyapi.chunk import TraceChunk

    kept, size = [], 0
    for c in trace.chunks(chunk_size):
        if kept is not None:
            size += _chunk_bytes(c)
            if size <= budget:
                kept.append(c)
            else:
                kept = None
        yield c
    if kept is not None:
        while _CACHE and _CACHED_BYTES[0] + size > budget:    # oldest first
            old = _CACHE.pop(next(iter(_CACHE)))
            if not hasattr(old, "chunks"):
                _CACHED_BYTES[0] -= _chunk_bytes(old)
        _CACHE[key] = TraceChunk.concat(kept)
        _CACHED_BYTES[0] += size


def _source(ref, chunk_size: int):
    """What a task replays: a cached trace when this process has one for ``ref``."""
    kind = ref[0]
    if kind == "chunk":
        return ref[1]
    if kind == "spec":
        from pyapi.workloads import from_spec
        return from_spec(ref[1])
    from pyapi.cli import resolve_trace
    from pyapi.trace import Trace, bundled_traces

    text, fmt, errors = ref[1], ref[2], ref[3]
    path = Path(text)
    if not path.exists() and fmt is None and ":" not in text:
        try:
            info = bundled_traces().get(text)
        except OSError:
            info = None
        if info is not None:
            path = Path(info["path"])
    key = None
    if path.exists():
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size, fmt, errors)
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
    src, _ = resolve_trace(text, fmt, errors=errors)
    if key is None or not isinstance(src, Trace):
        return src
    if src.format == "native":                  # memory-mapped: cheap to keep
        _CACHE[key] = src
        return src
    budget = _cache_budget()
    return _caching(src, key, chunk_size, budget) if budget > 0 else src


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class _Interrupted(Exception):
    """A replay in this process was stopped by Ctrl-C."""


def _ll_miss_ratio(cfg, counters: dict) -> Optional[float]:
    """Misses of the last TLB level per lookup at that level: L2 misses per L1 miss when
    the configuration has level-2 structures, else L1 misses per translation."""
    if any(t.level == 2 for t in cfg.tlbs):
        num, den = counters.get("total.l2_misses", 0), counters.get("total.l1_misses", 0)
    else:
        num, den = counters.get("total.l1_misses", 0), counters.get("total.translations", 0)
    return num / den if den else None


def _run_task(task) -> dict:
    """Run one task (in a worker or in this process) and return its row."""
    ref, cfg, columns, chunk_size = task
    row = dict(columns)
    t0 = time.perf_counter()
    try:
        from pyapi.mmu import MMU
        mmu = MMU(cfg)
        stats = mmu.replay(_source(ref, chunk_size), chunk_size=chunk_size, progress=False)
        if stats.interrupted:
            raise _Interrupted()
        counters = stats.to_dict()
        row.update(seconds=time.perf_counter() - t0, error=None,
                   ll_miss_ratio=_ll_miss_ratio(cfg, counters))
        row.update(counters)
    except (_Interrupted, KeyboardInterrupt):
        raise
    except Exception as exc:                    # noqa: BLE001 - reported in the row
        row.update(seconds=time.perf_counter() - t0, error=_one_line(exc),
                   ll_miss_ratio=None)
    return row


def _ignore_sigint():                           # pool workers: Ctrl-C is the parent's
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ------------------------------------------------------------------ output files
_STR_COLUMNS = {"trace", "label", "preset", "paging", "huge_pages", "inclusion",
                "config_hash", "error"}
_INT_RE = re.compile(r"^-?\d+$")


def _from_csv(row: dict) -> dict:
    """A CSV row with its types back; an empty cell of a counter or override column is a
    column the row does not have (another configuration's)."""
    out = {}
    for k, v in row.items():
        if v == "" or v is None:
            if k in CONFIG_COLUMNS or k in TASK_COLUMNS:
                out[k] = None
        elif k in _STR_COLUMNS:
            out[k] = v
        elif v in ("True", "False"):
            out[k] = v == "True"
        elif _INT_RE.match(v):
            out[k] = int(v)
        else:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def _out_kind(path: Path) -> str:
    kind = _OUT_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"out={str(path)!r}: name it .csv or .jsonl (JSON lines; rows are "
                         f"appended one by one, so .json is not accepted: "
                         f"SweepResult.to_json writes one JSON document)")
    return kind


def _read_out(path: Path) -> Tuple[List[dict], List[str]]:
    """The complete rows of an output file and its CSV header. A last line without its
    newline (a write cut short) is dropped and cut from the file."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        data = data[:cut]
        with open(path, "r+b") as f:
            f.truncate(cut)
    text = data.decode("utf-8")
    if _out_kind(path) == "jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise ValueError(f"{path}: line {n} is not JSON; is it a sweep output "
                                 f"file?") from None
            if isinstance(row, dict):
                rows.append(row)
        return rows, []
    reader = csv.DictReader(io.StringIO(text))
    fields = list(reader.fieldnames or [])
    if fields and not {"trace", "config_hash"} <= set(fields):
        raise ValueError(f"{path}: the CSV header has no trace and config_hash columns; is "
                         f"it a sweep output file?")
    rows = [_from_csv(r) for r in reader if None not in r.values() and None not in r]
    return rows, fields


class _Out:
    """Appends rows to a CSV or JSON-lines file, flushed per row. A CSV row with a
    column the header lacks rewrites the file (header + every row so far) atomically."""

    def __init__(self, path: Path, rows: List[dict], fields: List[str]):
        self.path = path
        self.kind = _out_kind(path)
        self.rows = list(rows)
        self.fields = list(fields)
        self.f = open(path, "a", newline="", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.rows.append(row)
        if self.kind == "jsonl":
            self.f.write(json.dumps(row) + "\n")
        elif all(k in self.fields for k in row):
            csv.DictWriter(self.f, self.fields, restval="").writerow(row)
        else:
            self.fields += [k for k in row if k not in self.fields]
            self.f.close()
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", newline="", encoding="utf-8") as g:
                w = csv.DictWriter(g, self.fields, restval="")
                w.writeheader()
                w.writerows(self.rows)
            os.replace(tmp, self.path)
            self.f = open(self.path, "a", newline="", encoding="utf-8")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


# ------------------------------------------------------------------ the result
def _columns_of(rows: Iterable[dict]) -> List[str]:
    seen: Dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


class SweepResult:
    """The rows of a sweep, in the sweep's order (trace-major), whatever the order in
    which the tasks finished.

    ``rows`` is a list of dicts; ``errors`` the rows whose task failed; ``interrupted``
    is true when Ctrl-C stopped the sweep (``rows`` then holds the tasks that finished);
    ``resumed`` counts the rows taken from ``out`` by ``resume=True`` and ``ran`` the
    tasks run; ``seconds`` is the wall time. ``to_csv(path=None)`` and
    ``to_json(path=None)`` return the text and write it when ``path`` is given;
    ``table()`` is the summary ``mmucore sweep`` prints.

    >>> res = sweep(["uniform:n=5000,footprint=16M,seed=1", "no/such/trace"], ["p6"],
    ...             workers=1)
    >>> len(res), res.ran, [r["trace"] for r in res.errors]
    (2, 2, ['no/such/trace'])
    >>> print(res.to_csv().splitlines()[0][:44])
    trace,label,preset,paging,huge_pages,pcid,cp
    """

    def __init__(self, rows: List[dict], *, interrupted: bool = False, seconds: float = 0.0,
                 ran: int = 0, resumed: int = 0):
        self.rows = rows
        self.interrupted = interrupted
        self.seconds = seconds
        self.ran = ran
        self.resumed = resumed

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __repr__(self) -> str:
        return (f"SweepResult({len(self.rows)} rows, {len(self.errors)} errors, "
                f"interrupted={self.interrupted})")

    @property
    def errors(self) -> List[dict]:
        """The rows whose task failed (``error`` set)."""
        return [r for r in self.rows if r.get("error")]

    @property
    def columns(self) -> List[str]:
        """Every column, in first-seen order (config columns, then counters)."""
        return _columns_of(self.rows)

    def to_csv(self, path=None) -> str:
        """The rows as CSV text (a header of every column; a cell a row lacks is empty).

        >>> res = sweep([np.zeros(4, np.uint64)], ["p6"], workers=1)
        >>> res.to_csv().splitlines()[1].split(",")[:3]
        ['<arrays trace 0>', 'p6', 'p6']
        """
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.columns, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_json(self, path=None, *, indent: Optional[int] = 1) -> str:
        """The rows as a JSON array of objects.

        >>> res = sweep([np.zeros(4, np.uint64)], ["p6"], workers=1)
        >>> json.loads(res.to_json())[0]["cpu0.accesses"]
        4
        """
        text = json.dumps(self.rows, indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def table(self) -> str:
        """A compact table: trace, configuration label, accesses, walks, miss ratio of
        the last TLB level (``ll_miss_ratio``), seconds and error.

        >>> res = sweep([np.zeros(4, np.uint64)], ["p6"], workers=1)
        >>> print(res.table().splitlines()[2].split()[:4])
        ['<arrays', 'trace', '0>', 'p6']
        """
        from pyapi.cli import _table

        rows = []
        for r in self.rows:
            ratio = r.get("ll_miss_ratio")
            secs = r.get("seconds")
            err = r.get("error")
            if err and len(err) > 100:
                err = err[:99] + "…"
            rows.append((r.get("trace", ""), r.get("label", ""),
                         "" if err else f"{r.get('total.accesses', 0):,}",
                         "" if err else f"{r.get('total.walks', 0):,}",
                         "" if ratio is None else f"{ratio:.4f}",
                         "" if secs is None else f"{secs:.2f}", err or ""))
        return _table(("trace", "config", "accesses", "walks", "LL miss ratio", "seconds",
                       "error"), rows, "llrrrrl")


# ------------------------------------------------------------------ executors
def _dask_client(executor, scheduler):
    try:
        import distributed
    except ImportError:
        raise ImportError('executor="dask" needs Dask distributed: '
                          'pip install "mmucore[dask]"') from None
    if isinstance(executor, distributed.Client):
        return executor, False
    return distributed.Client(scheduler) if scheduler else distributed.Client(), True


def _is_dask_client(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "distributed" and hasattr(obj, "gather")


def _progress_bar(total: int, enabled):
    if total == 0:
        return None
    return progress_bar(total, unit="task", desc="sweep", enabled=enabled)


def sweep(traces, configs, executor="local", workers: Optional[int] = None, out=None,
          resume: bool = False, chunk_size: int = 1 << 20, progress=True, *,
          scheduler: Optional[str] = None, overwrite: bool = False) -> SweepResult:
    """Replay every trace through every configuration, one task per pair.

    Parameters
    ----------
    traces : list
        Paths, bundled trace names, workload specs (``"zipf:n=1e7,alpha=1.0,seed=1"``),
        ``Trace`` or ``Workload`` objects (one item alone is a list of one). Each is
        resolved in the task, so a missing file is an error row, not an exception.
    configs : list
        Preset names, ``MMUConfig`` objects or dicts (``{"preset": ..., "label": ...,
        "huge_pages": ..., "tlbs": {"stlb": {"entries": 2048}}}``); :func:`grid` makes
        them. An invalid one gives an error row per trace.
    executor : "local", "dask", a distributed.Client or a concurrent.futures.Executor
        ``"local"``: a pool of ``workers`` processes (default ``os.cpu_count()``;
        ``workers=1`` runs the tasks in this process, in order). The pool's processes
        import a script's main module again: call ``sweep`` from a script under
        ``if __name__ == "__main__":``. ``"dask"``: a
        ``distributed.Client(scheduler)`` (Dask's configuration, e.g.
        ``DASK_SCHEDULER_ADDRESS``, when ``scheduler`` is None), closed at the end. A
        ``Client`` or an ``Executor`` passed in is used and left open.
    out : str or os.PathLike, optional
        A ``.csv`` or ``.jsonl`` file that gets each row as its task finishes (flushed).
        An existing file needs ``resume=True`` (continue it) or ``overwrite=True``.
    resume : bool
        Read ``out`` and skip the tasks whose (trace, config_hash) has a row there
        without an error; failed tasks run again (their new row follows the old one).
    chunk_size : int
        Accesses per engine call (``MMU.replay``).
    progress : bool or callable
        True: a tqdm bar of tasks on stderr when it is a terminal. A callable is called
        as ``progress(done, total, row)`` after each task.

    Returns
    -------
    SweepResult
        Its ``rows`` in trace-major order. Ctrl-C cancels the pending tasks, stops the
        pool's workers and returns the rows done so far with ``interrupted=True`` (they
        are in ``out`` already).

    Examples
    --------
    >>> res = sweep("stride:n=10000,footprint=8M,stride=4096",
    ...             [{"preset": "skylake", "tlbs": {"stlb": {"entries": 512, "ways": 4}}},
    ...              {"preset": "skylake", "label": "bad", "tlbs": {"stlb": {"ways": 7}}}],
    ...             workers=1)
    >>> [(r["label"], r["tlbs.stlb.ways"], r["error"] is None) for r in res.rows]
    [('skylake stlb.entries=512 stlb.ways=4', 4, True), ('bad', 7, False)]
    """
    from pyapi.config import MMUConfig
    from pyapi.trace import Trace
    from pyapi.workloads import Workload

    t_start = time.perf_counter()
    single = (str, os.PathLike, Trace, Workload)
    if isinstance(traces, single) or hasattr(traces, "__array__"):
        traces = [traces]
    if isinstance(configs, (str, os.PathLike, MMUConfig, dict)):
        configs = [configs]
    traces, configs = list(traces), list(configs)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if resume and out is None:
        raise ValueError("resume=True needs out= (the file of the sweep to continue)")

    refs = [_trace_ref(t, i) for i, t in enumerate(traces)]
    cfgs = [_Config(c, j) for j, c in enumerate(configs)]
    for kind, labels in (("trace", [r[0] for r in refs]), ("configuration",
                                                             [c.hash for c in cfgs])):
        dup = next((x for i, x in enumerate(labels) if x in labels[:i]), None)
        if dup is not None:
            what = dup if kind == "trace" else \
                next(c.label for c in cfgs if c.hash == dup)
            raise ValueError(f"the {kind} {what!r} is listed twice")
    keys = [(label, c.hash) for label, _ in refs for c in cfgs]
    order = {k: i for i, k in enumerate(keys)}

    # the output file and the rows it already has
    done: Dict[tuple, dict] = {}
    writer = None
    if out is not None:
        path = Path(out)
        _out_kind(path)
        if not path.resolve().parent.is_dir():
            raise ValueError(f"out={str(path)!r}: directory {str(path.parent)!r} does not exist")
        old_rows, fields = [], []
        if path.exists() and path.stat().st_size and not resume:
            if not overwrite:
                raise ValueError(f"out={str(path)!r} exists; resume=True (mmucore sweep "
                                 f"--resume) continues that sweep, overwrite=True (--force) "
                                 f"replaces it")
            path.unlink()
        if path.exists() and resume:
            old_rows, fields = _read_out(path)
            for r in old_rows:
                k = (r.get("trace"), r.get("config_hash"))
                if k in order:
                    if r.get("error"):
                        done.pop(k, None)
                    else:
                        done[k] = r
        writer = _Out(path, old_rows, fields)

    # the tasks to run: (position, task); configuration errors need no worker
    results: Dict[int, dict] = {order[k]: r for k, r in done.items()}
    todo = []
    immediate = []
    for i, (label, ref) in enumerate(refs):
        for j, c in enumerate(cfgs):
            pos = i * len(cfgs) + j
            if keys[pos] in done:
                continue
            columns = {"trace": label, **c.columns(), "config_hash": c.hash}
            if c.error is not None:
                immediate.append((pos, dict(columns, seconds=None, error=c.error,
                                            ll_miss_ratio=None)))
            else:
                todo.append((pos, (ref, c.config, columns, chunk_size)))
    total = len(todo) + len(immediate)
    bar = _progress_bar(total, progress)
    count = [0]

    def finish(pos: int, row: dict) -> None:
        results[pos] = row
        if writer is not None:
            writer.write(row)
        count[0] += 1
        if bar is not None:
            bar.update(1)
        if callable(progress):
            progress(count[0], total, row)

    interrupted = False
    try:
        for pos, row in immediate:
            finish(pos, row)
        if todo:
            interrupted = _execute(todo, finish, executor, workers, scheduler)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    rows = [results[p] for p in sorted(results)]
    return SweepResult(rows, interrupted=interrupted,
                       seconds=time.perf_counter() - t_start, ran=count[0],
                       resumed=len(done))



def _drain(completed, futures, failed, finish):
    """Hand each finished future's row (or its error as a failed row) to ``finish``."""
    for fut in completed:
        pos, task = futures.pop(fut)
        try:
            row = fut.result()
        except KeyboardInterrupt:
            raise
        except Exception as exc:            # noqa: BLE001
            row = failed(task, exc)
        finish(pos, row)

def _execute(todo, finish: Callable, executor, workers, scheduler) -> bool:
    """Run ``todo`` [(position, task)] on ``executor``; ``finish(position, row)`` as each
    ends. Returns True when Ctrl-C stopped it."""
    import concurrent.futures as cf

    def failed(task, exc) -> dict:          # the executor itself failed (a dead worker)
        return dict(task[2], seconds=None, error=_one_line(exc), ll_miss_ratio=None)

    if executor == "local" and (workers or os.cpu_count() or 1) == 1:
        try:
            for pos, task in todo:
                try:
                    row = _run_task(task)
                except _Interrupted:
                    return True
                finish(pos, row)
        finally:
            clear_cache()                   # the caller's process: free parsed traces
        return False

    if executor == "dask" or _is_dask_client(executor):
        client, own = _dask_client(executor, scheduler)
        futures = {}
        try:
            for pos, task in todo:
                fut = client.submit(_run_task, task, pure=False)
                futures[fut] = (pos, task)
            from distributed import as_completed
            _drain(as_completed(list(futures)), futures, failed, finish)
        except KeyboardInterrupt:
            client.cancel(list(futures))
            return True
        finally:
            if own:
                client.close()
        return False

    if executor == "local":
        import multiprocessing as mp
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        pool = cf.ProcessPoolExecutor(max_workers=min(workers or os.cpu_count() or 1,
                                                      len(todo)),
                                      mp_context=ctx, initializer=_ignore_sigint)
        own = True
    elif isinstance(executor, cf.Executor):
        pool, own = executor, False
    else:
        raise ValueError(f"executor must be 'local', 'dask', a distributed.Client or a "
                         f"concurrent.futures.Executor, not {executor!r}")
    futures = {}
    try:
        for pos, task in todo:
            futures[pool.submit(_run_task, task)] = (pos, task)
        _drain(cf.as_completed(list(futures)), futures, failed, finish)
    except KeyboardInterrupt:
        for fut in futures:
            fut.cancel()
        if own:                             # running tasks are lost: stop their workers
            for p in list(getattr(pool, "_processes", {}).values()):
                p.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            own = False
        return True
    finally:
        if own:
            pool.shutdown(wait=True)
    return False


# ------------------------------------------------------------------ SPEC.toml
def load_spec(path) -> Tuple[List[str], List[object], dict]:
    """``(traces, configs, options)`` of a sweep file (``mmucore sweep SPEC.toml``):
    ``traces = [...]`` (anything ``mmucore replay`` takes), ``[[configs]]`` tables
    and/or a ``[grid]`` table (or ``[[grid]]`` tables: ``preset`` and lists of values,
    expanded by :func:`grid`), and optionally ``chunk_size``. A relative path (a trace,
    or a preset ``.toml``) is taken relative to the file's folder when it exists there.
    Errors name the file and the key, on one line.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "s.toml")
    >>> with open(p, "w") as f:
    ...     _ = f.write('traces = ["sort"]\\n[grid]\\npreset = "skylake"\\n'
    ...                 'huge_pages = ["never", "thp"]\\n')
    >>> traces, configs, options = load_spec(p)
    >>> traces, [c["label"] for c in configs]
    (['sort'], ['skylake huge_pages=never', 'skylake huge_pages=thp'])
    """
    from pyapi.config import tomllib

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such sweep file")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML: {' '.join(str(exc).split())}") from None
    base = path.resolve().parent

    def rel(text: str) -> str:
        if os.path.isabs(text) or not (base / text).exists():
            return text
        return str(base / text)

    known = ("traces", "configs", "grid", "chunk_size")
    for k in doc:
        if k not in known:
            raise ValueError(f"{path}: unknown key {k!r}; a sweep file has "
                             f"{', '.join(known)}")
    traces = doc.get("traces")
    if not isinstance(traces, list) or not traces or \
            not all(isinstance(t, str) and t for t in traces):
        raise ValueError(f"{path}: key 'traces' must be a non-empty list of strings (trace "
                         f"files, bundled trace names or workload specs)")
    traces = [rel(t) for t in traces]
    configs: List[object] = []
    raw = doc.get("configs", [])
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise ValueError(f"{path}: key 'configs' must be [[configs]] tables")
    for n, c in enumerate(raw):
        where = f"{path}: configs[{n}]"
        try:
            flat = _flatten(c, where)
            for k in flat:
                _check_key(k, where)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(c.get("preset"), str):
            raise ValueError(f"{where}: key 'preset' must be a preset name or .toml file")
        configs.append(dict(c, preset=rel(c["preset"]) if c["preset"].endswith(".toml")
                            else c["preset"]))
    grids = doc.get("grid", [])
    grids = [grids] if isinstance(grids, dict) else grids
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise ValueError(f"{path}: key 'grid' must be a [grid] table or [[grid]] tables")
    for n, g in enumerate(grids):
        where = f"grid[{n}]" if len(grids) > 1 else "grid"
        g = dict(g)
        preset = g.pop("preset", None)
        if isinstance(preset, str):
            preset = rel(preset) if preset.endswith(".toml") else preset
        elif not (isinstance(preset, list) and preset and all(isinstance(p, str)
                                                              for p in preset)):
            raise ValueError(f"{path}: key '{where}.preset' must be a preset name or a list "
                             f"of them")
        try:
            configs.extend(grid(preset, **g))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {str(exc).replace('grid', where, 1)}") from None
    if not configs:
        raise ValueError(f"{path}: no configuration: add [[configs]] tables or a [grid] "
                         f"table")
    options = {}
    if "chunk_size" in doc:
        cs = doc["chunk_size"]
        if isinstance(cs, bool) or not isinstance(cs, int) or cs < 1:
            raise ValueError(f"{path}: key 'chunk_size' must be a positive integer")
        options["chunk_size"] = cs
    return traces, configs, options

