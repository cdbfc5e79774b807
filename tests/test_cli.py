"""The ``mmucore`` command line: output, JSON, exit codes and error messages."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pyapi
from pyapi import TLB
from pyapi.cli import generate, main, parse_count

POLICIES = ["lru", "fifo", "plru", "random", "lfu", "srrip"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tlb_table_has_a_row_per_policy(capsys):
    code, out, err = run(capsys, "tlb", "-n", "20000", "--policy", ",".join(POLICIES))
    assert code == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("policy"))
    for word in ("accesses", "hits", "misses", "miss ratio", "M acc/s"):
        assert word in lines[header]
    rows = [line.split() for line in lines[header + 2:] if line.strip()]
    assert [r[0] for r in rows] == POLICIES
    for r in rows:
        accesses, hits, misses = (int(x.replace(",", "")) for x in r[1:4])
        assert accesses == 20000 and hits + misses == accesses
        assert float(r[4]) == pytest.approx(misses / accesses, abs=1e-6)
    assert "64 entries, 4 ways (16 sets)" in out


def test_tlb_json_stdout_counters_match_the_api(capsys):
    code, out, err = run(capsys, "tlb", "-n", "20000", "--policy", "lru,fifo", "--json", "-",
                         "--seed", "3")
    assert code == 0, err
    doc = json.loads(out)                       # stdout holds only the JSON document
    assert doc["config"]["entries"] == 64 and doc["config"]["ways"] == 4
    assert doc["config"]["accesses"] == 20000
    assert [r["policy"] for r in doc["results"]] == ["lru", "fifo"]
    va = np.concatenate(list(generate("uniform", 20000, 64 << 20, seed=3)))
    for r in doc["results"]:
        assert r["hits"] + r["misses"] == r["accesses"] == 20000
        assert r["miss_ratio"] == pytest.approx(r["misses"] / 20000)
        assert r["fills"] == r["misses"]
        tlb = TLB(entries=64, ways=4, policy=r["policy"], seed=3)
        assert tlb.access(va).misses == r["misses"]


def test_tlb_json_file_and_table(capsys, tmp_path):
    path = tmp_path / "out.json"
    code, out, err = run(capsys, "tlb", "-n", "5000", "--workload", "sequential",
                         "--json", str(path))
    assert code == 0, err
    assert "lru" in out
    doc = json.loads(path.read_text())
    # a 64-byte stride touches each 4K page 64 times in a row: one miss per page
    assert doc["results"][0]["misses"] == -(-5000 * 64 // 4096)


@pytest.mark.parametrize("workload", ["uniform", "sequential", "zipf"])
def test_workloads_and_page_sizes(capsys, workload):
    code, out, err = run(capsys, "tlb", "-n", "3000", "--workload", workload,
                         "--entries", "48", "--ways", "4", "--page-size", "4K,2M",
                         "--footprint", "8M")
    assert code == 0, err
    assert "48 entries, 4 ways (12 sets), 4K+2M pages" in out


def test_zipf_is_skewed_and_bounded():
    va = np.concatenate(list(generate("zipf", 200_000, 1 << 24, seed=1, chunk=50_000)))
    pages = va >> np.uint64(12)
    assert va.max() < (1 << 24)
    counts = np.sort(np.bincount(pages.astype(np.int64)))[::-1]
    # P(rank 1) = 1 / H(4096) ~ 0.115 for exponent 1
    assert counts[0] / va.shape[0] == pytest.approx(1 / np.sum(1 / np.arange(1, 4097)), rel=0.05)
    assert counts[0] > 1.8 * counts[1] > 0


def test_sequential_wraps_at_the_footprint():
    va = np.concatenate(list(generate("sequential", 100, 1024, stride=64, chunk=7)))
    assert va.tolist() == [(i * 64) % 1024 for i in range(100)]


@pytest.mark.parametrize("text,value", [("20000", 20000), ("1e7", 10**7), ("10M", 10**7),
                                        ("10_000_000", 10**7), ("2.5K", 2500)])
def test_parse_count(text, value):
    assert parse_count(text) == value


def test_bad_geometry_is_an_input_error(capsys):
    code, out, err = run(capsys, "tlb", "-n", "1000", "--entries", "64", "--ways", "5")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mmucore: error: ")
    assert "entries=64 is not a multiple of ways=5" in lines[0]
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("argv,needle", [
    (["tlb", "--policy", "lru,bogus"], "policy 'bogus'"),
    (["tlb", "--page-size", "3K"], "page_size"),
    (["tlb", "--footprint", "lots"], "--footprint"),
    (["tlb", "--ways", "128"], "ways=128 is larger than entries=64"),
])
def test_other_input_errors(capsys, argv, needle):
    code, out, err = run(capsys, *argv, "-n", "100")
    assert code == 1
    assert err.startswith("mmucore: error: ") and needle in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="not a multiple"):
        main(["--debug", "tlb", "-n", "100", "--ways", "5"])
    with pytest.raises(ValueError, match="not a multiple"):
        main(["tlb", "-n", "100", "--ways", "5", "--debug"])


@pytest.mark.parametrize("argv", [["frobnicate"], [], ["tlb", "-n", "abc"],
                                  ["tlb", "--workload", "nope"]])
def test_usage_errors_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "usage:" in err


def test_help_exits_0(capsys):
    code, out, err = run(capsys, "tlb", "--help")
    assert code == 0 and "--entries" in out


def test_python_dash_m_pyapi(tmp_path):
    """``python -m pyapi`` runs the same entry point and returns its exit status."""
    env = dict(os.environ)
    # the pyapi this interpreter imports (installed, or a source tree built in place)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(pyapi.__file__).resolve().parents[1])]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    ok = subprocess.run([sys.executable, "-m", "pyapi", "tlb", "-n", "2000", "--json", "-"],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["results"][0]["accesses"] == 2000
    bad = subprocess.run([sys.executable, "-m", "pyapi", "nosuchcommand"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2


def test_bench_small_run_agrees(capsys):
    """``mmucore bench`` on a tiny trace: JSON on stdout, every simulator that is
    installed agrees with mmucore on the miss counts, targets are reported."""
    code, out, err = run(capsys, "bench", "--n", "4000", "--repeat", "1", "--json", "-")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n"] == 4000
    assert all(a["agree"] for a in doc["agreement"]), doc["agreement"]
    assert {r["simulator"] for r in doc["rows"]} >= {"mmucore", "pure Python (OrderedDict)"}
    assert len(doc["targets"]) == 5
    assert all(t["status"] in ("PASS", "MISS", "n/a") for t in doc["targets"])
    assert "targets (mmucore):" in err                # the table goes to stderr with --json -


# ------------------------------------------------------------------------------- lowmem
def test_lowmem_table_and_json_match_the_api(capsys):
    from pyapi import lowmem_budget
    code, out, _ = run(capsys, "lowmem", "--ram", "64G", "--pae", "--struct-page", "64")
    assert code == 0 and "NOT BOOTABLE" in out and "mem_map" in out
    code, out, _ = run(capsys, "lowmem", "--ram", "4G,64G", "--pae", "--kernel", "2.5.13",
                       "--json", "-")
    doc = json.loads(out)
    assert code == 0 and [d["ram_bytes"] for d in doc] == [4 << 30, 64 << 30]
    api = lowmem_budget("64G", pae=True, kernel="2.5.13")
    assert doc[1]["mem_map_bytes"] == api.mem_map_bytes
    assert doc[1]["lowmem_free_bytes"] == api.lowmem_free_bytes
    assert doc[1]["bootable"] is api.bootable is True


def test_lowmem_several_sizes_say_which_cannot_boot(capsys):
    code, out, _ = run(capsys, "lowmem", "--ram", "16G,64G", "--pae", "--kernel", "2.4.18")
    assert code == 0
    assert "64 GiB cannot boot" in out and "16 GiB cannot boot" not in out


@pytest.mark.parametrize("argv, needle", [
    (["lowmem", "--ram", "8G"], "without PAE"),
    (["lowmem", "--ram", "4G", "--kernel", "2.7"], "kernel"),
    (["lowmem", "--ram", "4G", "--split", "5G/1G"], "split"),
    (["lowmem", "--ram", "lots"], "lots"),
])
def test_lowmem_input_errors(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 1 and err.startswith("mmucore: error:") and needle in err
    assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------- kmap
def test_kmap_compares_the_pools_like_the_api(capsys):
    from pyapi import KmapPool, PerTaskKmapPool, kmap_workloads
    code, out, _ = run(capsys, "kmap", "--cpus", "4", "-n", "20K", "--pool", "both",
                       "--json", "-")
    doc = json.loads(out)
    assert code == 0 and set(doc["results"]) == {"global", "per-task"}
    trace = kmap_workloads.page_cache(20_000, tasks=4, cpus=4, hit_rate=0.5, seed=0)
    tlb = dict(entries=64, ways=4, policy="lru")
    g = KmapPool(cpus=4, tlb=tlb).run(trace).to_dict()
    t = PerTaskKmapPool(cpus=4, tlb=tlb).run(trace).to_dict()
    for key in ("global_flushes", "ipis", "hits", "kmap_tlb_misses", "user_tlb_misses"):
        assert doc["results"]["global"][key] == g[key]
        assert doc["results"]["per-task"][key] == t[key]
    assert g["ipis"] == 3 * g["global_flushes"] > 0 and t["ipis"] == 0


def test_kmap_table_and_a_trace_file(capsys, tmp_path):
    from pyapi import Trace, kmap_workloads
    c = kmap_workloads.page_cache(2000, tasks=2, cpus=2, seed=3)
    Trace.from_arrays(c.addr, op=c.op, cpu=c.cpu, task=c.task).to_native(tmp_path / "k")
    code, out, _ = run(capsys, "kmap", "--trace", str(tmp_path / "k"), "--cpus", "2",
                       "--pool", "global", "--tlb", "none")
    assert code == 0 and "global TLB flushes" in out and "per-task pool" not in out


@pytest.mark.parametrize("argv, needle", [
    (["kmap", "--kernel", "9.9"], "kernel"),
    (["kmap", "--tlb", "64y4"], "ENTRIESxWAYS"),
    (["kmap", "--trace", "/nonexistent/k"], "not found"),
    (["kmap", "--hit-rate", "1.5"], "hit_rate"),
])
def test_kmap_input_errors(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 1 and err.startswith("mmucore: error:") and needle in err
