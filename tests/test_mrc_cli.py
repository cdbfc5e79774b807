"""``mmucore mrc``: tables, JSON, plots, workload specs and bundled traces, errors."""
import json

import numpy as np
import pytest

from pyapi import TLB, Trace
from pyapi.cli import main


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_table_for_a_trace_file(capsys, tmp_path):
    rng = np.random.default_rng(0)
    va = rng.integers(0, 200 << 12, 20_000, dtype=np.uint64)
    Trace.from_arrays(addr=va).to_native(tmp_path / "t")
    rc, out, err = run(capsys, "mrc", str(tmp_path / "t"), "--sizes", "16,64,128")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("LRU miss-ratio curve: trace")
    assert "entries" in lines[2] and "reach" in lines[2] and "miss ratio" in lines[2]
    rows = {ln.split()[0]: ln.split() for ln in lines[4:7]}
    assert rows["64"][1] == "256K"
    assert int(rows["64"][2].replace(",", "")) == TLB(64).access(va).misses


def test_json_and_workload_spec(capsys):
    rc, out, _ = run(capsys, "mrc", "zipf:n=20000,pages=500,seed=1", "--json", "-",
                     "--page-size", "4K,2M", "--sizes", "8,32")
    assert rc == 0
    doc = json.loads(out)
    assert doc["command"] == "mrc" and doc["source"].startswith("workload zipf:")
    assert set(doc["curves"]) == {"4K", "2M"}
    assert doc["curves"]["4K"]["sizes"] == [8, 32] and doc["curves"]["4K"]["accesses"] == 20_000


def test_shards_sets_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "mrc.png"
    rc, out, err = run(capsys, "mrc", "zipf:n=50000,pages=5000", "--method", "shards",
                       "--rate", "0.1", "--plot", str(png), "--json", str(tmp_path / "m.json"))
    assert rc == 0, err
    assert "rate 0.1" in out and "resolves >= 50 entries" in out and "*" in out
    assert png.stat().st_size > 1000
    assert json.loads((tmp_path / "m.json").read_text())["curves"]["4K"]["method"] == "shards"
    rc, out, err = run(capsys, "mrc", "stride:n=1000,footprint=64K,stride=4K", "--sets", "4",
                       "--sizes", "4,8,16")
    assert rc == 0, err
    assert "4 sets" in out and "ways" in out.splitlines()[2]


def test_bundled_trace_by_name(capsys):
    rc, out, err = run(capsys, "mrc", "xz", "--sizes", "64", "--page-size", "2M")
    assert rc == 0, err
    assert "bundled trace xz" in out and "2M pages" in out


@pytest.mark.parametrize("argv, match", [
    (["mrc", "/no/such/trace"], "no such trace"),
    (["mrc", "zipf:n=10,bogus=1"], "unknown key"),
    (["mrc", "zipf:n=100,pages=10", "--rate", "0.1"], "shards only"),
    (["mrc", "zipf:n=100,pages=10", "--method", "shards", "--rate", "2"], "rate"),
    (["mrc", "zipf:n=100,pages=10", "--sizes", "0,4"], "--sizes"),
    (["mrc", "zipf:n=100,pages=10", "--page-size", "8K"], "page size"),
    (["mrc", "zipf:n=100,pages=10", "--sets", "0"], "sets"),
    (["mrc", "zipf:n=100,pages=10", "--json", "/no/such/dir/x.json"], "does not exist"),
    (["mrc", "zipf:n=100,pages=10", "--plot", "/no/such/dir/x.png"], "does not exist"),
])
def test_input_errors_exit_1_with_one_line(capsys, argv, match):
    rc, out, err = run(capsys, *argv)
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("mmucore: error:") and match in err


@pytest.mark.parametrize("argv", [["mrc"], ["mrc", "x", "--method", "opt"],
                                  ["mrc", "x", "--rate", "abc"]])
def test_usage_errors_exit_2(capsys, argv):
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and "usage" in err
