"""The ``mmucore`` subcommands of issue 8: ``replay``, ``presets``, ``gen``, ``convert``,
``demo``; help with examples everywhere; and a bad-input table over every subcommand
(exit status 1 or 2, exactly one line on stderr naming the problem, no traceback)."""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pyapi
from pyapi import MMU, Trace, workloads
from pyapi.chunk import TraceChunk
from pyapi.cli import build_parser, main, resolve_trace
from pyapi.config import load_preset, preset_names

SPEC = "zipf:n=20000,pages=2000,alpha=1.0,seed=1"
COMMANDS = ("replay", "mrc", "kmap", "lowmem", "gen", "convert", "presets", "demo", "tlb",
            "bench")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def api_stats(trace, preset="skylake", **kw):
    return MMU.from_preset(preset, **kw).replay(trace, progress=False).to_dict()


@pytest.fixture
def files(tmp_path):
    """A native trace, a lackey trace, a malformed lackey file, a file of no known
    format and a kmap trace."""
    w = workloads.from_spec(SPEC)
    native = tmp_path / "z.trace"
    Trace.from_chunks(w).to_native(native)
    lackey = tmp_path / "run.lackey"
    lackey.write_text("==1== Lackey\nI  00400000,4\n L 7ff000010,8\n S 00601040,4\n"
                      " M 00601048,8\n")
    bad = tmp_path / "bad.lackey"
    bad.write_text("I  00400000,4\n L 7ff000010,8\nthis is not lackey\n S 00601040,4\n")
    unknown = tmp_path / "notes.txt"
    unknown.write_text("hello, this is not a trace\nat all\n")
    from pyapi import kmap_workloads
    c = kmap_workloads.page_cache(500, tasks=2, cpus=2, seed=0)
    kmap = tmp_path / "k.trace"
    Trace.from_arrays(c.addr, op=c.op, cpu=c.cpu, task=c.task).to_native(kmap)
    toml = tmp_path / "mine.toml"
    toml.write_text(load_preset("nehalem").with_tlb("stlb", entries=1024).to_toml())
    return dict(native=native, lackey=lackey, bad=bad, unknown=unknown, kmap=kmap,
                toml=toml, dir=tmp_path)


# --------------------------------------------------------------------------- replay
def test_replay_json_equals_the_api(capsys):
    code, out, err = run(capsys, "replay", SPEC, "--json", "-", "--cpus", "2",
                         "--huge-pages", "thp", "--no-progress")
    assert code == 0, err
    doc = json.loads(out)                  # stdout holds only the JSON document
    assert doc["command"] == "replay" and doc["interrupted"] is False
    assert doc["config"] == {**doc["config"], "preset": "skylake", "paging": "x86_64",
                             "huge_pages": "thp", "pcid": False, "cpus": 2}
    assert doc["config"]["trace"].startswith("workload zipf:n=20000")
    assert doc["stats"] == api_stats(workloads.from_spec(SPEC), huge_pages="thp", cpus=2)
    assert doc["position"] == doc["stats"]["total.accesses"] == 20000


def test_replay_table_of_a_trace_file(capsys, files):
    code, out, err = run(capsys, "replay", files["native"], "--preset", "zen2", "--paging",
                         "pae", "--huge-pages", "always")
    assert code == 0, err
    d = api_stats(Trace.open(files["native"]), "zen2", paging="pae", huge_pages="always")
    lines = out.splitlines()
    assert "zen2, pae paging, huge pages always" in out
    head = next(i for i, ln in enumerate(lines) if ln.startswith("cpu  structure"))
    for word in ("accesses", "hit rate", "misses", "evictions"):
        assert word in lines[head]
    rows = {ln.split()[1]: ln.split() for ln in lines[head + 2:] if ln.startswith("0 ")}
    dtlb = rows["dtlb"]
    assert int(dtlb[2].replace(",", "")) == d["cpu0.dtlb.accesses"] == 20000
    assert dtlb[3] == f"{100 * d['cpu0.dtlb.hits'] / 20000:.2f}%"
    assert int(dtlb[4].replace(",", "")) == d["cpu0.dtlb.misses"]
    cpu_head = next(i for i, ln in enumerate(lines) if ln.startswith("cpu  accesses"))
    for word in ("walks", "refs/walk", "faults", "flushes"):
        assert word in lines[cpu_head]
    row = lines[cpu_head + 2].split()
    assert int(row[2].replace(",", "")) == d["cpu0.walks"]
    assert row[3] == f"{d['cpu0.walk_refs'] / d['cpu0.walks']:.2f}"


def test_replay_lackey_csv_and_json_files(capsys, files):
    j, c = files["dir"] / "r.json", files["dir"] / "r.csv"
    code, out, err = run(capsys, "replay", files["lackey"], "--preset", "p6", "--json", j,
                         "--csv", c, "--seed", "3")
    assert code == 0, err and "cpu  structure" in out
    doc = json.loads(j.read_text())
    assert doc["config"]["paging"] == "x86_32" and doc["config"]["seed"] == 3
    rows = list(csv.reader(io.StringIO(c.read_text())))
    assert len(rows) == 2 and rows[0][:3] == ["preset", "paging", "huge_pages"]
    row = dict(zip(*rows))
    assert row["preset"] == "p6" and row["cpus"] == "1"
    for key, value in doc["stats"].items():
        assert int(row[key]) == value
    assert doc["stats"]["cpu0.accesses"] == 4 == api_stats(files["lackey"], "p6", seed=3)[
        "cpu0.accesses"]


def test_replay_csv_on_stdout(capsys):
    code, out, err = run(capsys, "replay", "stride:n=1000,footprint=64K", "--csv", "-")
    assert code == 0, err
    header, row = csv.reader(io.StringIO(out))       # the spec's commas are quoted
    assert dict(zip(header, row))["total.accesses"] == "1000"
    assert dict(zip(header, row))["trace"].startswith("workload stride:n=1000,")


def test_replay_config_file_and_pcid(capsys, files):
    code, out, err = run(capsys, "replay", SPEC, "--config", files["toml"], "--pcid",
                         "--json", "-")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["config"]["pcid"] is True and doc["config"]["preset"] == str(files["toml"])
    assert "cpu0.stlb.accesses" in doc["stats"]


def test_replay_map_1g_pages(capsys):
    """--map pre-maps with a fixed page size: 1G pages in x86_64 make every access of a
    1 GiB footprint hit one 1G entry after the first walk."""
    code, out, err = run(capsys, "replay", "uniform:n=5000,footprint=1G,base=0x40000000",
                         "--map", "0x40000000:1G:1G", "--json", "-")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["config"]["maps"] == ["0x40000000:1G:1G"]
    assert doc["stats"]["cpu0.walks"] == 1 and doc["stats"]["cpu0.faults"] == 0
    assert doc["stats"]["cpu0.dtlb_1g.hits"] == 4999


def test_replay_interrupted_prints_partial_stats_and_exits_130(capsys, monkeypatch):
    def chunks():
        yield TraceChunk(np.arange(0, 300 << 12, 4096, dtype=np.uint64))
        raise KeyboardInterrupt

    monkeypatch.setattr("pyapi.cli.resolve_trace", lambda text, fmt: (chunks(), "test"))
    code, out, err = run(capsys, "replay", "whatever", "--no-progress")
    assert code == 130
    assert "300 accesses" in out and "cpu  structure" in out
    assert "interrupted after 300 records" in err


def test_replay_progress_is_off_when_stderr_is_not_a_terminal(capsys):
    code, out, err = run(capsys, "replay", SPEC)
    assert code == 0 and err == ""


# --------------------------------------------------------------------------- presets
def test_presets_list(capsys):
    code, out, err = run(capsys, "presets")
    assert code == 0, err
    names = [ln.split()[0] for ln in out.split("\n\n")[0].splitlines()[2:]]
    assert names == preset_names()
    assert "skylake      x86_32, pae, x86_64*  128 4K + 8 2M/4M" in out


def test_presets_show_one(capsys):
    code, out, err = run(capsys, "presets", "skylake")
    assert code == 0, err
    cfg = load_preset("skylake")
    for t in cfg.tlbs:
        row = next(ln.split() for ln in out.splitlines() if ln.startswith(t.name + " "))
        assert row[1:6] == [str(t.level), t.side, str(t.entries), str(t.sets), str(t.ways)]
    assert "caveats:" in out and "sources:" in out and "XOR-folded" in out


def test_presets_toml_and_json(capsys):
    from pyapi.config import MMUConfig
    import tomllib
    code, out, _ = run(capsys, "presets", "zen2", "--toml")
    assert code == 0 and MMUConfig.from_dict(tomllib.loads(out)) == load_preset("zen2")
    code, out, _ = run(capsys, "presets", "p6", "--json", "-")
    assert code == 0 and json.loads(out) == load_preset("p6").to_dict()
    code, out, _ = run(capsys, "presets", "--json", "-")
    assert [d["name"] for d in json.loads(out)] == preset_names()


# --------------------------------------------------------------------------- gen
def test_gen_native_equals_the_workload(capsys, tmp_path):
    out_path = tmp_path / "z.trace"
    code, out, err = run(capsys, "gen", "zipf", "-n", "20K", "--pages", "1e3", "--alpha",
                         "1.2", "--seed", "4", "-o", out_path)
    assert code == 0, err
    assert "wrote 20,000 accesses of zipf:n=20000,pages=1000,alpha=1.2" in out
    got = Trace.open(out_path).read()
    want = workloads.zipf(20000, 1000, alpha=1.2, seed=4).to_chunk()
    assert np.array_equal(got.addr, want.addr) and np.array_equal(got.op, want.op)


def test_gen_lackey_raw_sizes_and_cut(capsys, tmp_path):
    lk = tmp_path / "u.lackey"
    code, _, err = run(capsys, "gen", "uniform", "-n", "1e3", "--footprint", "1G",
                       "--store-fraction", "0.5", "-o", lk, "--format", "lackey")
    assert code == 0, err
    want = workloads.uniform(1000, "1G", store_fraction=0.5).to_chunk()
    got = Trace.open(lk).read()
    assert np.array_equal(got.addr, want.addr) and np.array_equal(got.op, want.op)
    raw = tmp_path / "m.bin"
    code, out, err = run(capsys, "gen", "matmul:nsize=16", "-n", "500", "-o", raw,
                         "--format", "raw")
    assert code == 0, err and "wrote 500 accesses" in out
    assert np.array_equal(np.fromfile(raw, "<u8"),
                          workloads.matmul(16).to_chunk().addr[:500])


def test_gen_refuses_to_overwrite_without_force(capsys, tmp_path):
    p = tmp_path / "s.trace"
    assert run(capsys, "gen", "stride", "-n", "100", "--footprint", "4K", "-o", p)[0] == 0
    code, _, err = run(capsys, "gen", "stride", "-n", "200", "--footprint", "4K", "-o", p)
    assert code == 1 and "exists; pass --force" in err and len(Trace.open(p)) == 100
    code, _, err = run(capsys, "gen", "stride", "-n", "200", "--footprint", "4K", "-o", p,
                       "--force")
    assert code == 0, err and len(Trace.open(p)) == 200


# --------------------------------------------------------------------------- convert
def test_convert_round_trip(capsys, files):
    d = files["dir"]
    code, out, err = run(capsys, "convert", files["lackey"], d / "l.trace")
    assert code == 0, err and "(native): 4 accesses" in out
    code, out, err = run(capsys, "convert", d / "l.trace", d / "back.lackey.gz")
    assert code == 0, err and "(lackey)" in out
    a, b = Trace.open(files["lackey"]).read(), Trace.open(d / "back.lackey.gz").read()
    assert a.addr.tolist() == b.addr.tolist() and a.op.tolist() == b.op.tolist()
    code, out, err = run(capsys, "convert", files["native"], d / "z.raw")
    assert code == 0, err
    assert np.array_equal(np.fromfile(d / "z.raw", "<u8"), Trace.open(files["native"]).read().addr)


def test_convert_skip_malformed_and_forced_format(capsys, files):
    d = files["dir"]
    code, out, err = run(capsys, "convert", files["bad"], d / "ok.trace", "--skip-malformed")
    assert code == 0, err and "3 accesses" in out and "1 malformed line(s) skipped" in out
    code, out, err = run(capsys, "convert", files["lackey"], d / "x.out", "--from", "lackey",
                         "--to", "lackey")
    assert code == 0, err and (d / "x.out").read_text().startswith("I  00400000,4")


# --------------------------------------------------------------------------- demo, help
def _demo_available():
    from pyapi.cli import _load_demo
    try:
        return _load_demo() is not None
    except Exception:
        return False


def test_demo_is_a_subcommand(capsys):
    code, out, _ = run(capsys, "demo", "--help")
    assert code == 0 and "usage: mmucore demo" in out
    if not _demo_available():
        code, out, err = run(capsys, "demo")
        assert code == 1 and out == ""
        assert err == "mmucore: error: mmucore demo is not available in this build\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help_with_examples(capsys, command):
    code, out, err = run(capsys, command, "--help")
    assert code == 0, err
    assert f"usage: mmucore {command}" in out
    assert "examples:\n  mmucore " + command in out


def test_top_level_help_lists_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert f"    {command} " in out


@pytest.mark.parametrize("argv, accesses", [
    (["tlb", "-n", "1e4", "--footprint", "1G"], 10_000),
    (["tlb", "-n", "10K", "--footprint", "2M", "--page-size", "2M"], 10_000),
])
def test_counts_and_sizes_with_units(capsys, argv, accesses):
    code, out, err = run(capsys, *argv, "--json", "-")
    assert code == 0, err and json.loads(out)["config"]["accesses"] == accesses


def test_replay_sizes_with_units(capsys):
    code, out, err = run(capsys, "replay", "uniform:n=2000,footprint=16M", "--phys-mem",
                         "64G", "--chunk-size", "1K", "--json", "-")
    assert code == 0, err and json.loads(out)["config"]["phys_mem"] == 64 << 30


def test_resolver_is_shared(files):
    t, what = resolve_trace(str(files["lackey"]))
    assert t.format == "lackey" and what == f"trace {files['lackey']} (lackey)"
    w, what = resolve_trace(SPEC)
    assert len(w) == 20000 and what.startswith("workload zipf:")


# --------------------------------------------------------------------------- bad input
BAD = [
    # replay
    ("replay-missing-file", ["replay", "{dir}/nope.lackey"], 1, "no such trace file"),
    ("replay-unknown-format", ["replay", "{unknown}"], 1, "cannot detect the trace format"),
    ("replay-forced-unknown-format", ["replay", "{lackey}", "--format", "bogus"], 1,
     "unknown trace format 'bogus'"),
    ("replay-malformed-line", ["replay", "{bad}"], 1, "bad.lackey:3: malformed"),
    ("replay-unknown-preset", ["replay", SPEC, "--preset", "k6"], 1, "no preset 'k6'"),
    ("replay-bad-config", ["replay", SPEC, "--config", "{unknown}"], 1, "not valid TOML"),
    ("replay-missing-config", ["replay", SPEC, "--config", "{dir}/no.toml"], 1, "no such file"),
    ("replay-bad-size", ["replay", SPEC, "--phys-mem", "lots"], 1, "--phys-mem 'lots'"),
    ("replay-preset-and-config", ["replay", SPEC, "--preset", "p6", "--config", "{toml}"], 2,
     "not allowed with argument --preset"),
    ("replay-1g-pages-with-pae", ["replay", SPEC, "--paging", "pae", "--map",
                                  "0x40000000:1G:1G"], 1, "1G pages need --paging x86_64 or la57"),
    ("replay-2m-pages-x86_32", ["replay", SPEC, "--paging", "x86_32", "--map",
                                "0:4M:2M"], 1, "2M pages need --paging"),
    ("replay-bad-map", ["replay", SPEC, "--map", "0x1000"], 1, "ADDR:SIZE[:PAGE]"),
    ("replay-pcid-pae", ["replay", SPEC, "--paging", "pae", "--pcid"], 1,
     "--pcid needs --paging x86_64 or la57"),
    ("replay-pcid-x86_32-default", ["replay", SPEC, "--preset", "p6", "--pcid"], 1,
     "the default of p6"),
    ("replay-paging-not-in-preset", ["replay", SPEC, "--preset", "p6", "--paging", "x86_64"], 1,
     "--paging x86_64: preset p6 supports x86_32, pae"),
    ("replay-unknown-paging", ["replay", SPEC, "--paging", "x86_16"], 2, "invalid choice"),
    ("replay-bad-cpus", ["replay", SPEC, "--cpus", "65"], 1, "cpus=65"),
    ("replay-bad-count", ["replay", SPEC, "--chunk-size", "lots"], 2, "'lots' is not a count"),
    ("replay-two-stdouts", ["replay", SPEC, "--json", "-", "--csv", "-"], 2, "both want stdout"),
    ("replay-bad-spec", ["replay", "zipf:n=10,bogus=1"], 1, "unknown key 'bogus'"),
    ("replay-cpu-column", ["replay", "{kmap}"], 1, "op "),
    ("replay-json-dir", ["replay", SPEC, "--json", "/no/such/dir/x.json"], 1, "does not exist"),
    # mrc
    ("mrc-missing-file", ["mrc", "{dir}/nope"], 1, "no such trace file"),
    ("mrc-unknown-format", ["mrc", "{unknown}"], 1, "cannot detect the trace format"),
    ("mrc-malformed-line", ["mrc", "{bad}"], 1, "bad.lackey:3: malformed"),
    ("mrc-bad-page-size", ["mrc", SPEC, "--page-size", "3K"], 1, "3K"),
    ("mrc-conflict", ["mrc", SPEC, "--rate", "0.1"], 1, "shards only"),
    ("mrc-bad-count", ["mrc", SPEC, "--sample-size", "x"], 2, "'x' is not a count"),
    ("mrc-1g-ok-but-bad-sizes", ["mrc", SPEC, "--page-size", "1G", "--sizes", "0"], 1, "--sizes"),
    # kmap
    ("kmap-missing-file", ["kmap", "--trace", "{dir}/nope"], 1, "not found"),
    ("kmap-malformed-line", ["kmap", "--trace", "{bad}"], 1, "bad.lackey:3: malformed"),
    ("kmap-unknown-workload", ["kmap", "--workload", "nope"], 2, "invalid choice"),
    ("kmap-unknown-kernel", ["kmap", "--kernel", "9.9"], 1, "kernel"),
    ("kmap-bad-count", ["kmap", "-n", "0"], 2, "not a positive whole number"),
    ("kmap-bad-tlb", ["kmap", "--tlb", "64y4"], 1, "ENTRIESxWAYS"),
    # lowmem
    ("lowmem-bad-size", ["lowmem", "--ram", "lots"], 1, "'lots' is not a size"),
    ("lowmem-conflict", ["lowmem", "--ram", "8G"], 1, "without PAE"),
    ("lowmem-missing-ram", ["lowmem"], 2, "--ram"),
    ("lowmem-bad-kernel", ["lowmem", "--ram", "4G", "--kernel", "2.7"], 1, "kernel"),
    # gen
    ("gen-unknown-workload", ["gen", "bogus", "-n", "10", "-o", "{dir}/o"], 1,
     "unknown workload 'bogus'"),
    ("gen-bad-size", ["gen", "uniform", "-n", "10", "--footprint", "lots", "-o", "{dir}/o"], 1,
     "--footprint: 'lots'"),
    ("gen-bad-count", ["gen", "uniform", "-n", "ten", "--footprint", "1M", "-o", "{dir}/o"], 2,
     "'ten' is not a count"),
    ("gen-needs-n", ["gen", "zipf", "--pages", "10", "-o", "{dir}/o"], 1, "needs -n N"),
    ("gen-foreign-param", ["gen", "uniform", "-n", "10", "--pages", "4", "-o", "{dir}/o"], 1,
     "uniform takes no pages"),
    ("gen-n-twice", ["gen", "zipf:n=5,pages=4", "-n", "10", "-o", "{dir}/o"], 1,
     "both give n"),
    ("gen-not-random", ["gen", "stride", "-n", "10", "--footprint", "4K", "--seed", "1",
                        "-o", "{dir}/o"], 1, "not random"),
    ("gen-unknown-format", ["gen", "uniform", "-n", "10", "--footprint", "1M", "-o", "{dir}/o",
                            "--format", "din"], 2, "invalid choice"),
    ("gen-exists", ["gen", "uniform", "-n", "10", "--footprint", "1M", "-o", "{native}"], 1,
     "exists; pass --force"),
    ("gen-no-dir", ["gen", "uniform", "-n", "10", "--footprint", "1M", "-o", "/no/dir/o"], 1,
     "does not exist"),
    ("gen-missing-output", ["gen", "uniform", "-n", "10"], 2, "-o/--output"),
    # convert
    ("convert-missing-file", ["convert", "{dir}/nope", "{dir}/o"], 1, "no such trace file"),
    ("convert-unknown-format", ["convert", "{unknown}", "{dir}/o"], 1,
     "name it with --from FMT"),
    ("convert-bad-from", ["convert", "{lackey}", "{dir}/o", "--from", "bogus"], 1,
     "unknown trace format 'bogus'"),
    ("convert-bad-to", ["convert", "{lackey}", "{dir}/o", "--to", "din"], 2, "invalid choice"),
    ("convert-malformed-line", ["convert", "{bad}", "{dir}/o.trace"], 1,
     "bad.lackey:3: malformed lackey line: 'this is not lackey'"),
    ("convert-exists", ["convert", "{lackey}", "{native}"], 1, "exists; pass --force"),
    ("convert-same-file", ["convert", "{lackey}", "{lackey}", "--force"], 1, "same file"),
    ("convert-control-ops-to-lackey", ["convert", "{kmap}", "{dir}/k.lackey"], 1,
     "lackey cannot express"),
    # presets
    ("presets-unknown", ["presets", "k6"], 1, "no preset 'k6'; presets: cortex_a76"),
    ("presets-toml-without-name", ["presets", "--toml"], 2, "name it"),
    ("presets-bad-file", ["presets", "{dir}/x.toml"], 1, "x.toml"),
    # tlb, bench
    ("tlb-bad-size", ["tlb", "-n", "100", "--footprint", "lots"], 1, "--footprint"),
    ("tlb-bad-count", ["tlb", "-n", "1.5"], 2, "not a positive whole number"),
    ("tlb-conflict", ["tlb", "-n", "100", "--ways", "128"], 1, "larger than entries"),
    ("bench-bad-count", ["bench", "--n", "lots"], 2, "'lots' is not a count"),
    ("bench-bad-repeat", ["bench", "--n", "10", "--repeat", "0"], 1, "--repeat"),
    # the command itself
    ("unknown-command", ["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ("no-command", [], 2, "required: COMMAND"),
]
if not _demo_available():
    BAD.append(("demo-missing", ["demo"], 1, "not available in this build"))


def _fill(argv, files):
    return [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]


@pytest.mark.parametrize("argv, status, needle", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_line(capsys, files, argv, status, needle):
    argv = _fill(argv, files)
    code, out, err = run(capsys, *argv)
    assert code == status, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("mmucore"), err
    assert needle in err, err
    assert "Traceback" not in err
    if code == 2:
        assert "error:" in err and "usage: mmucore" in err


def test_every_subcommand_is_in_the_bad_input_table():
    assert {b[1][0] for b in BAD if b[1]} >= set(COMMANDS) - {"demo"}


@pytest.mark.parametrize("argv", [
    ["replay", "{bad}", "--debug"],
    ["--debug", "replay", SPEC, "--paging", "pae", "--pcid"],
    ["convert", "{unknown}", "{dir}/o", "--debug"],
    ["presets", "k6", "--debug"],
])
def test_debug_shows_the_traceback(files, argv):
    with pytest.raises((ValueError, OSError)):
        main(_fill(argv, files))


# --------------------------------------------------------------------------- processes
def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(pyapi.__file__).resolve().parents[1])]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def test_python_dash_m_pyapi_help_and_errors(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "pyapi", "--help"], cwd=tmp_path, env=_env(),
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "replay" in ok.stdout and "presets" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "pyapi", "replay", SPEC, "--preset", "k6"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "no preset 'k6'" in bad.stderr


def test_console_script(tmp_path):
    exe = shutil.which("mmucore")
    if exe is None:
        pytest.skip("the mmucore console script is not installed")
    r = subprocess.run([exe, "presets", "p6", "--json", "-"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "p6"


def test_parser_builds_without_the_demo_module():
    assert build_parser(load_demo=False).parse_args(["demo"]).command == "demo"


def test_closed_pipe_is_not_an_error(tmp_path):
    """`mmucore ... --json - | head -1`: the reader leaves early; no error line, status 0."""
    proc = subprocess.Popen([sys.executable, "-m", "pyapi", "lowmem", "--ram",
                             ",".join(f"{g}G" for g in range(1, 65)), "--pae", "--json", "-"],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()                 # like `head -1` exiting
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "error" not in err and "Traceback" not in err, err


def test_replay_checkpoint_and_resume(tmp_path, capsys):
    """replay --checkpoint saves the state; a second run with --resume continues from it,
    and the counters end as those of one uninterrupted replay."""
    from pyapi import MMU, Trace
    from pyapi import workloads as wl
    trace = tmp_path / "t.native"
    Trace.convert(wl.zipf(60_000, pages=5_000, alpha=1.0, seed=3), trace)
    ck = tmp_path / "run.ck"
    whole = MMU.from_preset("p6").replay(Trace.open(trace), progress=False).to_dict()
    # a first run that stops after 20000 records: the CLI replays a prefix of the trace
    prefix = tmp_path / "prefix.native"
    t = Trace.open(trace)
    Trace.convert(next(iter(t.chunks(20_000))), prefix)
    assert main(["replay", str(prefix), "--preset", "p6", "--checkpoint", str(ck),
                 "--no-progress", "--json", str(tmp_path / "a.json")]) == 0
    assert ck.exists()
    # the same checkpoint without --resume is refused (nothing overwritten)
    assert main(["replay", str(trace), "--preset", "p6", "--checkpoint", str(ck),
                 "--no-progress"]) == 1
    assert "add --resume" in capsys.readouterr().err
    # resume over the whole trace: the first 20000 records are skipped
    out = tmp_path / "b.json"
    assert main(["replay", str(trace), "--checkpoint", str(ck), "--resume", "--no-progress",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["position"] == 60_000 and doc["stats"] == whole
    assert main(["replay", str(trace), "--resume", "--no-progress"]) == 2
