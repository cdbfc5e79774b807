"""``pyapi.demo`` (``mmucore demo``) and ``pyapi.plots``: the quick demo runs, its numbers
agree with direct API calls, its outputs (text, JSON, CLI, PNG plots) are well formed, and
plotting without matplotlib fails with the install hint."""
import argparse
import doctest
import itertools
import json
import sys

import numpy as np
import pytest

from pyapi import MMU, open_bundled, workloads
from pyapi import demo as demo_mod
from pyapi import plots as plots_mod
from pyapi.chunk import TraceChunk
from pyapi.demo import DemoReport, add_arguments, cmd_demo, fold_to_32bit, run_demo
from pyapi.kmap import KmapPool, PerTaskKmapPool
from pyapi.kmap_workloads import page_cache
from pyapi.lowmem import NONPAE_LIMIT_BYTES, lowmem_budget

HINT = 'pip install "mmucore[plot]"'


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def plots_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("demo_plots")


@pytest.fixture(scope="module")
def report(plots_dir):
    """One quick run for the whole module (with plots when matplotlib is installed)."""
    return run_demo(quick=True, plots_dir=plots_dir if _has_matplotlib() else None, seed=0)


def _row(rows, **want):
    got = [r for r in rows if all(r.get(k) == v for k, v in want.items())]
    assert len(got) == 1, (want, len(got))
    return got[0]


# ------------------------------------------------------------------------- structure
def test_quick_report_has_every_section(report):
    assert isinstance(report, DemoReport)
    sources = list(dict.fromkeys(r["source"] for r in report.tlb_reach))
    assert sources[:2] == ["sort", "xz"] and len(sources) == 5
    assert len(report.tlb_reach) == 5 * 2 * 2          # sources x paging x page size
    assert {(r["paging"], r["page_size"]) for r in report.tlb_reach} == {
        ("x86_32", "4K"), ("x86_32", "4M"), ("pae", "4K"), ("pae", "2M")}
    assert len(report.lowmem) == 5 * 2 * 4             # RAM x PAE x kernel
    assert sorted({r["cpus"] for r in report.kmap}) == [1, 2, 4, 8, 16]
    assert set(report.takeaways) == {"tlb_reach", "lowmem", "kmap"}
    assert report.seconds["total"] < 60


def test_large_page_runs_really_map_large_pages(report):
    for r in report.tlb_reach:
        assert set(r["pages_mapped"]) == {r["page_size"]}, r
        assert r["huge_fallbacks"] == 0
        assert r["faults"] == 0                 # the traces were folded into 32 bits
    assert not [n for n in report.notes if n.startswith("UNEXPECTED")]


# ------------------------------------------------------------- section 1 vs the API
def _prefix(name, limit):
    out, total = [], 0
    for c in open_bundled(name).chunks(1 << 20):
        c = c[:limit - total]
        out.append(TraceChunk(fold_to_32bit(c.addr), op=c.op, size=c.size))
        total += len(c)
        if total >= limit:
            break
    return out


@pytest.mark.parametrize("paging,huge", list(itertools.product(("x86_32", "pae"),
                                                               ("never", "always"))))
def test_tlb_rows_equal_direct_replays(report, paging, huge):
    uni = _row(report.tlb_reach, source="uniform 64M", paging=paging, huge_pages=huge)
    s = MMU.from_preset("p6", paging=paging, huge_pages=huge).replay(
        workloads.from_spec(uni["what"]), progress=False)
    assert (uni["walks"], uni["walk_refs"], uni["tlb_misses"]) == \
        (s["cpu0.walks"], s["cpu0.walk_refs"], s["cpu0.l1_misses"])
    assert uni["dtlb_misses"] == s["cpu0.dtlb_4k.misses"] + s["cpu0.dtlb_2m.misses"]
    sort = _row(report.tlb_reach, source="sort", paging=paging, huge_pages=huge)
    s = MMU.from_preset("p6", paging=paging, huge_pages=huge).replay(
        _prefix("sort", sort["accesses"]), progress=False)
    assert sort["itlb_misses"] == s["cpu0.itlb_4k.misses"] + s["cpu0.itlb_2m.misses"]
    assert (sort["walks"], sort["walk_refs"], sort["psc_pde_hits"]) == \
        (s["cpu0.walks"], s["cpu0.walk_refs"], s["cpu0.psc_pde.hits"])


def test_large_pages_walk_less_and_one_level_less(report):
    for paging in ("x86_32", "pae"):
        for src in {r["source"] for r in report.tlb_reach}:
            small = _row(report.tlb_reach, source=src, paging=paging, huge_pages="never")
            large = _row(report.tlb_reach, source=src, paging=paging, huge_pages="always")
            assert large["walks"] < small["walks"], (src, paging)
            assert large["walk_refs"] < small["walk_refs"]
            # the large-page walk ends at the PDE; the 4K walk reaches the PTE, and its PDE
            # is read unless the PDE cache holds it
            assert large["walk_refs_pte"] == 0 and large["walk_refs"] == large["walk_refs_pde"]
            assert small["walk_refs_pte"] >= small["walks"]
            assert small["walk_refs_pde"] + small["psc_pde_hits"] >= small["walks"]


def test_refs_without_psc_equal_a_run_without_psc(report):
    for huge in ("never", "always"):
        row = _row(report.tlb_reach, source="zipf 64M", paging="x86_32", huge_pages=huge)
        s = MMU.from_preset("p6", paging="x86_32", huge_pages=huge, psc={}).replay(
            workloads.from_spec(row["what"]), progress=False)
        assert s["cpu0.walks"] == row["walks"]
        assert s["cpu0.walk_refs"] == row["refs_without_psc"]


def test_p6_x86_32_walk_is_two_refs_and_one_with_4m_pages():
    """Without a PDE cache and once demand paging is done: 4K walk = PDE + PTE = 2 refs,
    4M walk = the PDE = 1 ref, exactly."""
    w = workloads.uniform(50_000, footprint="64M", seed=3)
    per_walk = {}
    for huge in ("never", "always"):
        mmu = MMU.from_preset("p6", paging="x86_32", huge_pages=huge, psc={})
        first = mmu.replay(w, progress=False)
        second = mmu.replay(w, progress=False) - first
        assert second["cpu0.demand_faults"] == 0 and second["cpu0.walks"] > 0
        assert second["cpu0.walk_refs"] % second["cpu0.walks"] == 0
        per_walk[huge] = second["cpu0.walk_refs"] // second["cpu0.walks"]
    assert per_walk == {"never": 2, "always": 1}


# --------------------------------------------------------------------- section 2
def test_lowmem_rows_equal_lowmem_budget(report):
    for r in report.lowmem:
        if not r["addressable"]:
            assert not r["pae"] and r["ram_bytes"] > NONPAE_LIMIT_BYTES
            with pytest.raises(ValueError, match="without PAE"):
                lowmem_budget(r["ram_bytes"], pae=False, kernel=r["kernel"])
            continue
        b = lowmem_budget(r["ram_bytes"], pae=r["pae"], kernel=r["kernel"])
        for key in ("mem_map_bytes", "lowmem_bytes", "lowmem_free_bytes", "bootable",
                    "struct_page_bytes", "max_bootable_ram_bytes"):
            assert r[key] == getattr(b, key), (r["ram_gib"], r["kernel"], key)
    fails = [(r["ram_gib"], r["kernel"]) for r in report.lowmem
             if r["addressable"] and not r["bootable"]]
    assert fails == [(64, "2.4.18")]
    m = _row(report.lowmem_max_ram, kernel="2.4.18", pae=True)
    assert m["max_bootable_ram_bytes"] == lowmem_budget("64G", kernel="2.4.18") \
        .max_bootable_ram_bytes < 64 << 30


# --------------------------------------------------------------------- section 3
def test_kmap_per_task_flushes_less_on_16_cpus(report):
    g = _row(report.kmap, cpus=16, pool="global")
    p = _row(report.kmap, cpus=16, pool="per-task")
    assert p["flushes"] < g["flushes"]
    assert p["ipis"] == 0 and g["ipis"] == g["flushes"] * 15
    assert p["tlb_misses_caused"] < g["tlb_misses_caused"]
    one = (_row(report.kmap, cpus=1, pool="global"), _row(report.kmap, cpus=1, pool="per-task"))
    assert one[0]["flushes"] == one[1]["flushes"] and one[0]["ipis"] == 0
    assert _row(report.kmap_lookup, pool="global", kernel="2.4.18")["probes"] == 0


def test_kmap_rows_equal_direct_runs(report):
    copies = report.settings["kmap_copies_per_cpu"]
    trace = page_cache(copies * 4, file_pages=4096, tasks=4, cpus=4, hit_rate=0.5,
                       user_accesses=2, user_pages=16, seed=0)
    tlb = dict(entries=64, ways=4, policy="lru")
    g = KmapPool(kernel="2.4.18", pae=True, cpus=4, tlb=tlb).run(trace)
    p = PerTaskKmapPool(kernel="2.4.18", pae=True, cpus=4, tlb=tlb).run(trace)
    rg, rp = _row(report.kmap, cpus=4, pool="global"), _row(report.kmap, cpus=4, pool="per-task")
    assert (rg["flushes"], rg["ipis"], rg["tlb_misses"], rg["lookups"]) == \
        (g.global_flushes, g.ipis, g.tlb_misses, g.lookups)
    assert (rp["local_flushes"], rp["tlb_misses"], rp["probes"]) == \
        (p.task_flushes, p.tlb_misses, p.task_probes)


# ------------------------------------------------------------------- text and JSON
def test_printed_report_is_aligned_and_quotes_the_numbers(report):
    text = str(report)
    for head in ("1. TLB reach", "2. Virtual address space", "3. kmap"):
        assert head in text
    assert text.count("Takeaway:") == 3
    g16 = _row(report.kmap, cpus=16, pool="global")
    assert f"{g16['ipis']:,}" in text and "NO BOOT" in text
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("CPUs"))
    table = lines[start:start + 6]          # header + one row per CPU count
    assert len({len(ln) for ln in table}) == 1, table
    assert all(len(ln) <= 110 for ln in lines if not ln.startswith("Plots:"))


def test_json_round_trip(report):
    doc = json.loads(report.to_json())
    assert set(doc) >= {"tlb_reach", "lowmem", "kmap", "takeaways", "notes", "settings"}
    assert doc["tlb_reach"][0]["walks"] == report.tlb_reach[0]["walks"]


def _args(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cmd_demo_json_to_stdout(capsys):
    assert cmd_demo(_args(["--quick", "--no-plots", "--json", "-"])) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings"]["quick"] is True and doc["plots"] == []
    assert doc["kmap"] and doc["lowmem"] and doc["tlb_reach"]


def test_cmd_demo_plot_directory_choice(monkeypatch, capsys, report, tmp_path):
    seen = []

    def fake(quick=False, plots_dir=None, seed=0):
        seen.append((quick, plots_dir, seed))
        return report
    monkeypatch.setattr(demo_mod, "run_demo", fake)
    monkeypatch.setattr(demo_mod, "matplotlib_available", lambda: True)
    cmd_demo(_args([]))
    cmd_demo(_args(["--no-plots", "--seed", "7"]))
    cmd_demo(_args(["--plots", str(tmp_path / "p"), "--json", str(tmp_path / "r.json")]))
    assert seen == [(False, "mmucore-demo", 0), (False, None, 7),
                    (False, str(tmp_path / "p"), 0)]
    assert json.loads((tmp_path / "r.json").read_text())["lowmem"]
    assert "1. TLB reach" in capsys.readouterr().out
    monkeypatch.setattr(demo_mod, "matplotlib_available", lambda: False)
    seen.clear()
    cmd_demo(_args(["--quick"]))
    assert seen == [(True, None, 0)] and HINT in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="mmucore\\[plot\\]"):
        cmd_demo(_args(["--plots", str(tmp_path)]))
    with pytest.raises(SystemExit):
        _args(["--plots", "x", "--no-plots"])


# ------------------------------------------------------------------------- plots
def test_plots_written_with_labelled_axes(report, plots_dir):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    names = sorted(p.split("/")[-1] for p in report.plots)
    assert names == ["kmap_flushes.png", "lowmem_budget.png", "mrc_xz.png",
                     "tlb_page_sizes.png"]
    for name in names:
        data = (plots_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    fig = plots_mod.plot_page_size_misses(report.tlb_reach)
    top, bottom = fig.axes
    assert "%" in top.get_ylabel() and "1,000 accesses" in bottom.get_ylabel()
    assert bottom.get_xlabel() and top.get_title() and top.get_legend()
    plt.close(fig)
    fig = plots_mod.plot_kmap_flushes(report.kmap + report.kmap_pool_sizes)
    assert [ax.get_xlabel().split(" ")[0] for ax in fig.axes] == ["CPUs", "pool"]
    assert all(ax.get_ylabel() and ax.get_legend() and ax.get_title() for ax in fig.axes)
    plt.close(fig)
    budgets = [lowmem_budget(f"{g}G", pae=True, kernel="2.4.18") for g in (16, 64)]
    fig = plots_mod.plot_lowmem_budget(budgets)
    ax = fig.axes[0]
    assert "RAM" in ax.get_xlabel() and "MiB" in ax.get_ylabel() and ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("896 MiB" in t for t in labels) and any("cannot boot" in t for t in labels)
    plt.close(fig)


@pytest.mark.parametrize("call", [
    lambda: plots_mod.plot_page_size_misses([{"source": "s", "page_size": "4K",
                                              "miss_rate": 0.1, "walks_per_kilo_access": 1}]),
    lambda: plots_mod.plot_kmap_flushes([{"pool": "global", "cpus": 1, "slots": 512,
                                          "flushes": 1, "ipis": 0}]),
    lambda: plots_mod.plot_lowmem_budget([lowmem_budget("4G")]),
    lambda: plots_mod.require_matplotlib(),
])
def test_plots_without_matplotlib_name_the_extra(monkeypatch, call):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "mmucore\[plot\]"'):
        call()


def test_run_demo_with_plots_but_no_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert not demo_mod.matplotlib_available()
    with pytest.raises(ImportError, match=r"mmucore\[plot\]"):
        run_demo(quick=True, plots_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_plot_inputs_are_checked():
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="no rows"):
        plots_mod.plot_kmap_flushes([])
    with pytest.raises(ValueError, match="miss_rate"):
        plots_mod.plot_page_size_misses([{"source": "s", "page_size": "4K"}])


# ------------------------------------------------------------------------ helpers
def test_fold_to_32bit():
    low = np.array([0, 0x108000, 0x4000000, 0xBFFFFFFF], np.uint64)
    assert fold_to_32bit(low).tolist() == low.tolist()
    high = np.array([0x1FFEFFF000, 0x1FFF000123, 0x100000000], np.uint64)
    out = fold_to_32bit(high)
    assert out.tolist() == [0xBEFFF000, 0xBF000123, 0]
    assert ((high - out) % np.uint64(4 << 20) == 0).all()     # 4M alignment kept
    assert (out < np.uint64(0xC0000000)).all()


def test_seed_is_checked():
    with pytest.raises(ValueError, match="seed"):
        run_demo(quick=True, seed=-1)


@pytest.mark.parametrize("module", [demo_mod, plots_mod])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
