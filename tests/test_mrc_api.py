"""pyapi.miss_ratio_curve and MissRatioCurve: cross-checks against libcachesim and the
TLB engine on the bundled real traces, SHARDS accuracy, validation, outputs, plots."""
import json

import numpy as np
import pytest

from pyapi import TLB, MissRatioCurve, miss_ratio_curve, open_bundled, workloads
from pyapi.mrc import RESOLUTION_FACTOR, default_sizes, plot_reach


# ---------------------------------------------------------------------- cross-checks
def test_equals_libcachesim_lru():
    libcachesim = pytest.importorskip("libcachesim")
    rng = np.random.default_rng(7)
    n = 20_000
    pages = np.where(rng.random(n) < 0.8, rng.integers(0, 40, n),
                     rng.integers(0, 600, n)).astype(np.uint64)
    va = pages << np.uint64(12)
    sizes = [8, 16, 24, 64, 100, 256]
    curve = miss_ratio_curve(va, sizes=sizes)
    for size, misses in zip(sizes, curve.misses.tolist()):
        cache = libcachesim.LRU(cache_size=size, hashpower=16)
        req = libcachesim.Request()
        req.obj_size = 1
        expected = 0
        for p in pages.tolist():
            req.obj_id = p
            if not cache.get(req):
                expected += 1
        assert misses == expected, size


@pytest.fixture(scope="module")
def bundled():
    return {name: open_bundled(name).read() for name in ("sort", "xz")}


@pytest.mark.parametrize("name", ["sort", "xz"])
def test_bundled_traces_equal_tlb(bundled, name):
    chunk = bundled[name]
    va = chunk.addr[chunk.op <= 3]
    curves = miss_ratio_curve(chunk, page_size=["4K", "2M"])
    c4 = curves["4K"]
    assert c4.accesses == len(va)
    for size in (1, 4, 16, 32, 64):
        assert c4.misses_at(size) == TLB(entries=size, page_size="4K").access(va).misses
    assert curves["2M"].misses_at(1) == TLB(entries=1, page_size="2M").access(va).misses
    # the last size is the distinct page count: only first touches miss
    assert c4.sizes[-1] == c4.distinct_pages and c4.misses[-1] == c4.cold_misses
    s = miss_ratio_curve(chunk, sets=16, sizes=[16, 64])
    assert s.misses.tolist() == [TLB(entries=16 * w, ways=w).access(va).misses for w in (1, 4)]


# ------------------------------------------------------------------------ SHARDS
@pytest.fixture(scope="module")
def zipf_exact():
    w = workloads.zipf(1_000_000, 100_000, alpha=1.0, seed=1)
    return w, miss_ratio_curve(w, sizes=np.arange(1, 100_001))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shards_accuracy_fixed_rate(zipf_exact, seed):
    """Rate 0.1 on a 10^6-access Zipf(1.0) trace over 10^5 pages (hot pages included):
    mean absolute error of the miss ratio < 0.01 over every size from 5/rate entries to
    the number of distinct pages. (bench/mrc.py checks 10^7 accesses and rate 0.01.)"""
    w, exact = zipf_exact
    rate = 0.1
    sizes = np.arange(int(RESOLUTION_FACTOR / rate), exact.distinct_pages + 1)
    s = miss_ratio_curve(w, method="shards", rate=rate, sizes=sizes, seed=seed)
    assert abs(s.rate - rate) < 1e-12
    assert s.min_resolved_size == 50
    mae = np.abs(s.miss_ratio - exact.miss_ratio[sizes - 1]).mean()
    assert mae < 0.01, mae
    assert abs(s.distinct_pages - exact.distinct_pages) < 0.1 * exact.distinct_pages


def test_shards_accuracy_fixed_size(zipf_exact):
    w, exact = zipf_exact
    s = miss_ratio_curve(w, method="shards", sample_size=4096, seed=0,
                         sizes=np.arange(1, 100_001))
    assert s.sample_size == 4096 and 0 < s.rate < 1
    assert s.extra["sampled_pages"] <= 4096
    lo = s.min_resolved_size
    assert lo >= RESOLUTION_FACTOR / s.rate - 1
    m = slice(lo - 1, exact.distinct_pages)
    assert np.abs(s.miss_ratio[m] - exact.miss_ratio[m]).mean() < 0.01


def test_shards_at_rate_one_is_exact():
    rng = np.random.default_rng(2)
    va = rng.integers(0, 300 << 12, 20_000, dtype=np.uint64)
    e = miss_ratio_curve(va, sizes=[1, 10, 100, 299])
    s = miss_ratio_curve(va, method="shards", rate=1.0, sizes=[1, 10, 100, 299])
    assert s.misses.tolist() == e.misses.tolist()
    assert s.min_resolved_size == RESOLUTION_FACTOR


# ------------------------------------------------------------------------ outputs
def test_result_fields_and_json(tmp_path):
    va = np.arange(0, 100 << 12, 1 << 12, dtype=np.uint64).repeat(2)
    c = miss_ratio_curve(np.tile(va, 3), page_size="4K")
    assert isinstance(c, MissRatioCurve)
    assert c.sizes.dtype == np.int64 and c.misses.dtype == np.int64
    assert c.miss_ratio.dtype == np.float64
    assert c.sizes.tolist() == list(range(1, 65)) + default_sizes(100).tolist()[64:]
    assert c.reach_bytes.tolist() == (c.sizes * 4096).tolist()
    assert np.all(np.diff(c.misses) <= 0)              # inclusion: more entries, fewer misses
    assert c.misses_at(100) == 100 and c.misses_at(99) == 300     # 3 sweeps of 100 pages
    with pytest.raises(KeyError):
        c.misses_at(101)
    d = json.loads(c.to_json(tmp_path / "c.json"))
    assert d == json.loads((tmp_path / "c.json").read_text())
    assert d["page_size_name"] == "4K" and d["accesses"] == 600 and d["method"] == "exact"
    assert d["misses"] == c.misses.tolist() and d["reach_bytes"][0] == 4096
    assert "exact" in repr(c)


def test_inputs_workloads_chunks_and_traces():
    w = workloads.uniform(10_000, 1 << 22, seed=3)
    chunks = list(w.chunks(1000))
    a = miss_ratio_curve(w, sizes=[8, 64])
    b = miss_ratio_curve(iter(chunks), sizes=[8, 64])
    c = miss_ratio_curve(np.concatenate([ch.addr for ch in chunks]), sizes=[8, 64])
    assert a.misses.tolist() == b.misses.tolist() == c.misses.tolist()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(method="opt"), ValueError, "method"),
    (dict(method="shards", rate=0.0), ValueError, "rate"),
    (dict(method="shards", rate=1.5), ValueError, "rate"),
    (dict(method="shards", rate=float("nan")), ValueError, "rate"),
    (dict(method="shards", rate="x"), TypeError, "rate"),
    (dict(method="shards", rate=0.1, sample_size=10), ValueError, "not both"),
    (dict(method="shards", sample_size=0), ValueError, "sample_size"),
    (dict(method="shards", sets=4), ValueError, "method='exact' only"),
    (dict(rate=0.1), ValueError, "shards"),
    (dict(sizes=[0, 4]), ValueError, "positive"),
    (dict(sizes=[-3]), ValueError, "positive"),
    (dict(sizes=[]), ValueError, "non-empty"),
    (dict(sizes=[1.5]), TypeError, "whole"),
    (dict(sets=0), ValueError, "sets"),
    (dict(sets=4, sizes=[6]), ValueError, "multiples"),
    (dict(sets=1, sizes=[5000]), ValueError, "ways"),
    (dict(page_size="8K"), ValueError, "page size"),
    (dict(page_size=[]), ValueError, "page size"),
    (dict(page_size=["4K", 4096]), ValueError, "twice"),
    (dict(chunk_size=0), ValueError, "chunk_size"),
    (dict(seed=-1), ValueError, "seed"),
])
def test_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        miss_ratio_curve(np.zeros(4, np.uint64), **kwargs)


def test_empty_trace():
    c = miss_ratio_curve(np.zeros(0, np.uint64), sizes=[1, 2])
    assert c.accesses == 0 and c.misses.tolist() == [0, 0] and c.miss_ratio.tolist() == [0, 0]


# -------------------------------------------------------------------------- plots
def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    w = workloads.zipf(50_000, 5_000, alpha=1.0, seed=2)
    c = miss_ratio_curve(w)
    fig = c.plot()
    ax = fig.axes[0]
    assert "entries" in ax.get_xlabel() and "miss ratio" in ax.get_ylabel()
    assert any("reach" in a.get_xlabel() for a in ax.child_axes)      # secondary axis
    fig.savefig(tmp_path / "mrc.png")
    assert (tmp_path / "mrc.png").stat().st_size > 1000
    s = miss_ratio_curve(w, method="shards", rate=0.1)
    fig2 = s.plot(ax=ax)
    assert fig2 is fig
    curves = miss_ratio_curve(w, page_size=["4K", "2M"])
    fig3 = plot_reach(curves)
    assert "reach" in fig3.axes[0].get_xlabel()
    import matplotlib.pyplot as plt
    plt.close("all")


def test_plot_without_matplotlib(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    c = miss_ratio_curve(np.zeros(4, np.uint64), sizes=[1])
    with pytest.raises(ImportError, match=r'pip install "mmucore\[plot\]"'):
        c.plot()
