"""Sweeps (issue 9): pyapi.sweep over (trace x config) in-process, on a process pool and on
a Dask LocalCluster, with the same rows; grid expansion order; output files appended per
task, resume, failing tasks as rows; ``mmucore sweep SPEC.toml``."""
import csv
import json
import sys

import numpy as np
import pytest

import pyapi
from pyapi import MMU, Trace, workloads
from pyapi.cli import main
from pyapi.config import load_preset
from pyapi import sweep as _sweep_fn
from pyapi.sweeps import SweepResult, grid, load_spec, sweep
import pyapi.sweeps

SW = pyapi.sweeps                        # the module (pyapi.sweep is the function)
SPEC = "zipf:n=20000,pages=3000,alpha=1.0,seed=1"
STRIDE = "stride:n=15000,footprint=32M,stride=4096"


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture
def files(tmp_path):
    native = tmp_path / "z.trace"
    Trace.from_chunks(workloads.from_spec(SPEC)).to_native(native)
    lackey = tmp_path / "run.lackey"
    lackey.write_text("I  00400000,4\n L 7ff000010,8\n S 00601040,4\n M 00601048,8\n" * 50)
    bad = tmp_path / "bad.lackey"
    bad.write_text("I  00400000,4\n L 7ff000010,8\nthis is not lackey\n S 00601040,4\n")
    return dict(native=native, lackey=lackey, bad=bad, dir=tmp_path)


def _configs():
    return ["skylake",
            load_preset("p6"),
            {"preset": "skylake", "huge_pages": "thp",
             "tlbs": {"stlb": {"entries": 512, "ways": 8, "policy": "srrip"}}},
            {"preset": "zen2", "label": "zen2 4 cpus?", "tlbs.l2_dtlb.entries": 1024}]


# ---------------------------------------------------------------------------- grid
def test_grid_order_is_product_of_axes_in_order():
    specs = grid(["skylake", "zen2"], huge_pages=["never", "thp"],
                 **{"tlbs.stlb.entries": [1024, 2048], "cpus": 2})
    assert len(specs) == 8
    keys = [(s["preset"], s["huge_pages"], s["tlbs"]["stlb"]["entries"]) for s in specs]
    assert keys == [(p, h, e) for p in ("skylake", "zen2") for h in ("never", "thp")
                    for e in (1024, 2048)]
    assert all(s["cpus"] == 2 for s in specs)
    assert specs[0]["label"] == "skylake huge_pages=never stlb.entries=1024 cpus=2"
    assert grid("p6") == [{"preset": "p6", "label": "p6"}]
    nested = grid("skylake", tlbs={"stlb": {"entries": [1024, 2048], "ways": 8}})
    assert nested == grid("skylake", **{"tlbs.stlb.entries": [1024, 2048],
                                        "tlbs.stlb.ways": 8})


@pytest.mark.parametrize("axes, match", [
    ({"huge_pages": []}, "empty list"),
    ({"hugepages": ["thp"]}, "unknown key 'hugepages'"),
    ({"tlbs.stlb.size": [1]}, "unknown key 'tlbs.stlb.size'"),
    ({"label": ["a"]}, "cannot be an axis"),
])
def test_grid_errors(axes, match):
    with pytest.raises(ValueError, match=match):
        grid("skylake", **axes)


def test_pyapi_sweep_is_the_function_with_the_module_names():
    assert pyapi.sweep is sweep is _sweep_fn
    assert pyapi.sweeps.sweep is sweep and pyapi.SweepResult is SweepResult
    assert "sweep" in pyapi.__all__ and "SweepResult" in pyapi.__all__


# ---------------------------------------------------------------------------- equality
def test_in_process_equals_direct_replay(files):
    w = workloads.from_spec(STRIDE)
    arrays = Trace.from_arrays(np.arange(0, 1 << 22, 4096, dtype=np.uint64))
    traces = [SPEC, str(files["native"]), Trace.open(files["lackey"]), w, arrays, "sort"]
    res = sweep(traces, _configs(), workers=1, chunk_size=4096)
    assert isinstance(res, SweepResult) and not res.interrupted and not res.errors
    assert len(res) == len(traces) * 4 and res.ran == len(res)
    labels = [r["trace"] for r in res.rows[::4]]
    assert labels == [SPEC, str(files["native"]), str(files["lackey"]), w.spec,
                      "<arrays trace 4>", "sort"]
    cfgs = [SW._Config(c, j).config for j, c in enumerate(_configs())]
    sources = [workloads.from_spec(SPEC), Trace.open(files["native"]),
               Trace.open(files["lackey"]), w, arrays, pyapi.open_bundled("sort")]
    for i, src in enumerate(sources[:5]):           # "sort" once, below (3M records)
        for j, cfg in enumerate(cfgs):
            row = res.rows[i * 4 + j]
            direct = MMU(cfg).replay(src, chunk_size=4096, progress=False).to_dict()
            assert {k: row[k] for k in direct} == direct, (i, j)
    direct = MMU(cfgs[0]).replay(sources[5], progress=False).to_dict()
    assert {k: res.rows[20][k] for k in direct} == direct
    row = res.rows[2]
    assert (row["label"], row["preset"], row["huge_pages"], row["tlbs.stlb.entries"],
            row["tlbs.stlb.policy"], row["paging"], row["cpus"]) == \
        ("skylake huge_pages=thp stlb.entries=512 stlb.ways=8 stlb.policy=srrip", "skylake",
         "thp", 512, "srrip", "x86_64", 1)
    assert res.rows[1]["label"] == "p6" and res.rows[1]["paging"] == "x86_32"
    assert res.rows[3]["label"] == "zen2 4 cpus?" and res.rows[3]["tlbs.l2_dtlb.entries"] == 1024
    r = res.rows[0]
    assert r["ll_miss_ratio"] == pytest.approx(r["total.l2_misses"] / r["total.l1_misses"])
    p6 = res.rows[1]                                 # no level 2: L1 misses per translation
    assert p6["ll_miss_ratio"] == pytest.approx(p6["total.l1_misses"] / p6["total.translations"])


def test_process_pool_equals_in_process(files):
    traces = [SPEC, str(files["native"]), str(files["bad"]), STRIDE]
    one = sweep(traces, _configs(), workers=1)
    two = sweep(traces, _configs(), workers=2)
    assert _strip(two.rows) == _strip(one.rows)
    assert len(one.errors) == 4                      # bad.lackey, once per config


def test_local_cluster_equals_local_pool(files):
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    traces = [SPEC, str(files["native"]), str(files["bad"])]
    cfgs = _configs()[:3]
    ref = sweep(traces, cfgs, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        res = sweep(traces, cfgs, executor=client)
        assert client.status == "running"               # a Client passed in stays open
        res2 = sweep(traces[:1], cfgs[:1], executor="dask", scheduler=cluster.scheduler_address)
    assert _strip(res.rows) == _strip(ref.rows)
    assert _strip(res2.rows) == _strip(ref.rows[:1])


def test_dask_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "mmucore\[dask\]"'):
        sweep([SPEC], ["p6"], executor="dask")


def test_any_concurrent_futures_executor():
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as ex:
        res = sweep([SPEC, STRIDE], ["p6", "skylake"], executor=ex)
    assert _strip(res.rows) == _strip(sweep([SPEC, STRIDE], ["p6", "skylake"], workers=1).rows)


# ---------------------------------------------------------------------------- traces
def test_a_shared_trace_is_opened_once_per_process(files, monkeypatch):
    import pyapi.cli
    calls = []
    real = pyapi.cli.resolve_trace

    def counting(text, fmt=None, **kw):
        calls.append(text)
        return real(text, fmt, **kw)

    monkeypatch.setattr(pyapi.cli, "resolve_trace", counting)
    SW.clear_cache()
    res = sweep([str(files["native"]), str(files["lackey"])], _configs()[:3], workers=1)
    assert not res.errors
    assert calls == [str(files["native"]), str(files["lackey"])]   # not once per task
    SW.clear_cache()


def test_big_in_memory_trace_is_refused(monkeypatch):
    monkeypatch.setattr(SW, "INLINE_LIMIT", 1000)
    with pytest.raises(ValueError, match="Trace.convert"):
        sweep([np.zeros(1000, np.uint64)], ["p6"], workers=1)


def test_duplicates_are_refused():
    with pytest.raises(ValueError, match="listed twice"):
        sweep([SPEC, SPEC], ["p6"], workers=1)
    with pytest.raises(ValueError, match="listed twice"):
        sweep([SPEC], ["p6", {"preset": "p6", "label": "again"}], workers=1)


# ---------------------------------------------------------------------------- failures
def test_failing_tasks_are_rows_and_the_others_finish(files):
    cfgs = ["skylake", {"preset": "skylake", "tlbs": {"stlb": {"ways": 7}}},
            {"preset": "k6"}, {"preset": "skylake", "hugepages": "thp"}]
    traces = [SPEC, str(files["dir"] / "missing.trace"), str(files["bad"])]
    res = sweep(traces, cfgs, workers=1)
    assert len(res) == 12
    errors = {(r["trace"].rsplit("/", 1)[-1], r["label"]): r["error"] for r in res.errors}
    assert res.rows[0]["error"] is None and res.rows[0]["total.accesses"] == 20000
    assert "ways=7 does not divide entries=1536" in errors[(SPEC, "skylake stlb.ways=7")]
    assert "no preset 'k6'" in errors[(SPEC, "k6")]
    assert "unknown key 'hugepages'" in errors[(SPEC, "skylake hugepages=thp")]
    assert "missing.trace" in errors[("missing.trace", "skylake")]
    assert "bad.lackey:3: malformed lackey line" in errors[("bad.lackey", "skylake")]
    assert len(errors) == 11 and all("\n" not in e for e in errors.values())
    assert "ConfigError" in res.table() and "k6" in res.table()


# ---------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_out_file_gets_every_row_and_resume_runs_only_the_missing(tmp_path, suffix,
                                                                  monkeypatch):
    out = tmp_path / f"rows{suffix}"
    traces = [SPEC, STRIDE]
    cfgs = ["skylake", "zen2", {"preset": "skylake", "huge_pages": "thp"}]
    full = sweep(traces, cfgs, workers=1)
    part = sweep(traces, cfgs[:2], workers=1, out=out)        # 4 of the 6 tasks
    assert len(part) == 4
    with pytest.raises(ValueError, match="resume=True"):
        sweep(traces, cfgs, workers=1, out=out)
    ran = []
    real = SW._run_task
    monkeypatch.setattr(SW, "_run_task", lambda task: ran.append(task[2]["label"]) or real(task))
    res = sweep(traces, cfgs, workers=1, out=out, resume=True)
    assert ran == ["skylake huge_pages=thp"] * 2                # only the missing tasks
    assert res.ran == 2 and res.resumed == 4
    assert _strip(res.rows) == _strip(full.rows)
    ran.clear()
    again = sweep(traces, cfgs, workers=1, out=out, resume=True)
    assert ran == [] and _strip(again.rows) == _strip(full.rows)
    rows, _ = SW._read_out(out)
    assert len(rows) == 6 and _strip(sorted(rows, key=lambda r: (r["trace"], r["label"]))) \
        == _strip(sorted(full.rows, key=lambda r: (r["trace"], r["label"])))
    fresh = sweep(traces, cfgs[:1], workers=1, out=out, overwrite=True)
    assert len(SW._read_out(out)[0]) == len(fresh) == 2


def test_resume_drops_a_cut_last_line_and_reruns_failed_tasks(tmp_path, files):
    out = tmp_path / "rows.jsonl"
    traces = [SPEC, str(files["dir"] / "later.lackey")]
    first = sweep(traces, ["p6"], workers=1, out=out)
    assert [r["error"] is None for r in first.rows] == [True, False]
    with open(out, "a") as f:
        f.write('{"trace": "cut sh')                      # a write cut by a crash
    (files["dir"] / "later.lackey").write_text(files["lackey"].read_text())
    res = sweep(traces, ["p6"], workers=1, out=out, resume=True)
    assert res.ran == 1 and res.resumed == 1 and not res.errors
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(x) for x in lines)


def test_csv_header_grows_with_new_structures(tmp_path):
    out = tmp_path / "rows.csv"
    res = sweep([SPEC], [{"preset": "k6"}, "p6", "zen2"], workers=1, out=out)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == ["k6", "p6", "zen2"]
    assert rows[2]["cpu0.l2_dtlb.misses"] == str(res.rows[2]["cpu0.l2_dtlb.misses"])
    assert rows[1]["cpu0.l2_dtlb.misses"] == "" and rows[0]["error"].startswith("ConfigError")
    back, _ = SW._read_out(out)
    assert _strip(back) == _strip(res.rows)


def test_to_csv_and_to_json(tmp_path):
    res = sweep([SPEC], ["p6", "skylake"], workers=1)
    res.to_csv(tmp_path / "a.csv")
    res.to_json(tmp_path / "a.json")
    with open(tmp_path / "a.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["cpu0.walks"] for r in rows] == [str(r["cpu0.walks"]) for r in res.rows]
    assert rows[0]["cpu0.stlb.misses"] == ""                 # p6 has no STLB
    assert json.loads((tmp_path / "a.json").read_text()) == res.rows
    with pytest.raises(ValueError, match=".jsonl"):
        sweep([SPEC], ["p6"], workers=1, out=tmp_path / "x.json")


def test_ctrl_c_keeps_the_rows_done(tmp_path, monkeypatch):
    out = tmp_path / "rows.jsonl"
    real = SW._run_task
    calls = []

    def stop_at_third(task):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(SW, "_run_task", stop_at_third)
    res = sweep([SPEC, STRIDE], ["p6", "skylake"], workers=1, out=out)
    assert res.interrupted and len(res) == 2
    assert len(SW._read_out(out)[0]) == 2


def test_progress_callable():
    seen = []
    sweep([SPEC], ["p6", "skylake"], workers=1,
          progress=lambda done, total, row: seen.append((done, total, row["label"])))
    assert seen == [(1, 2, "p6"), (2, 2, "skylake")]


# ---------------------------------------------------------------------------- CLI
def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _spec(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_cli_sweep(tmp_path, capsys, files):
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "z.lackey").write_text(files["lackey"].read_text())
    spec = _spec(tmp_path, f'traces = ["{SPEC}", "traces/z.lackey"]\n'
                           '[[configs]]\npreset = "p6"\nlabel = "old"\n'
                           '[grid]\npreset = "skylake"\nhuge_pages = ["never", "thp"]\n'
                           'tlbs.stlb.entries = [1024, 2048]\ntlbs.stlb.ways = 8\n')
    traces, configs, _ = load_spec(spec)
    assert traces[1] == str(tmp_path / "traces" / "z.lackey")     # relative to the file
    assert [c["label"] for c in configs][:2] == [
        "old", "skylake huge_pages=never stlb.entries=1024 stlb.ways=8"]
    out = tmp_path / "rows.csv"
    code, text, err = _run(capsys, "sweep", spec, "--workers", "1", "--out", out)
    assert code == 0, err
    assert "2 trace(s) x 5 configuration(s)" in text and "LL miss ratio" in text
    assert text.count("skylake huge_pages=thp stlb.entries=2048 stlb.ways=8") == 2
    code, text, err = _run(capsys, "sweep", spec, "--workers", "1", "--out", out, "--resume",
                           "--json", "-")
    assert code == 0, err
    rows = json.loads(text)
    assert len(rows) == 10 and rows[0]["trace"] == SPEC and rows[0]["label"] == "old"
    direct = MMU.from_preset("p6").replay(workloads.from_spec(SPEC), progress=False)
    assert rows[0]["cpu0.walks"] == direct["cpu0.walks"]
    code, text, err = _run(capsys, "sweep", spec, "--workers", "1", "--csv", "-")
    assert code == 0 and text.startswith("trace,label,") and len(text.splitlines()) == 11


def test_cli_sweep_failing_task_exits_1_after_the_table(tmp_path, capsys):
    spec = _spec(tmp_path, f'traces = ["{SPEC}", "nosuch.trace"]\n[[configs]]\npreset = "p6"\n')
    code, out, err = _run(capsys, "sweep", spec, "--workers", "1")
    assert code == 1
    assert "nosuch.trace" in out and "no such trace file" in out
    assert err == "mmucore: error: 1 of 2 tasks failed (the error column says why)\n"


@pytest.mark.parametrize("text, message", [
    (None, "no such sweep file"),
    ("traces = [", "not valid TOML"),
    ('[[configs]]\npreset = "p6"\n', "key 'traces'"),
    ('traces = ["sort"]\n', "no configuration"),
    ('traces = ["sort"]\ntrace = 1\n[[configs]]\npreset = "p6"\n', "unknown key 'trace'"),
    ('traces = ["sort"]\n[[configs]]\nlabel = "x"\n', "configs[0]: key 'preset'"),
    ('traces = ["sort"]\n[[configs]]\npreset = "p6"\nhuge = "thp"\n',
     "configs[0]: unknown key 'huge'"),
    ('traces = ["sort"]\n[grid]\nhuge_pages = ["thp"]\n', "key 'grid.preset'"),
    ('traces = ["sort"]\n[grid]\npreset = "p6"\nhuge_pages = []\n', "grid: huge_pages is an empty list"),
    ('traces = ["sort"]\nchunk_size = 0\n[grid]\npreset = "p6"\n', "key 'chunk_size'"),
])
def test_cli_sweep_bad_spec(tmp_path, capsys, text, message):
    spec = tmp_path / "bad.toml"
    if text is not None:
        spec.write_text(text)
    code, out, err = _run(capsys, "sweep", spec)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("mmucore: error: ")
    assert str(spec) in err and message in err, err


@pytest.mark.parametrize("argv, message", [
    (["--resume"], "--resume continues"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers sizes"),
    (["--json", "-", "--csv", "-"], "both want stdout"),
    (["--workers", "0"], "--workers 0"),
])
def test_cli_sweep_usage_errors(tmp_path, capsys, argv, message):
    spec = _spec(tmp_path, 'traces = ["sort"]\n[grid]\npreset = "p6"\n')
    code, out, err = _run(capsys, "sweep", spec, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err


def test_cli_sweep_help_has_examples(capsys):
    code, out, _ = _run(capsys, "sweep", "--help")
    assert code == 0 and "examples:\n  mmucore sweep" in out and "[grid]" in out
