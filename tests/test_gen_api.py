"""The workloads API: regions and footprints, exact access counts and mixes, specs,
argument errors, materialisation, and the engine module's checks."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from mmucore import gen
from pyapi import workloads as W
from pyapi.chunk import TraceChunk

SPECS = [
    "uniform:n=5000,footprint=3M,seed=1,align=64,store_fraction=0.5",
    "uniform:n=100,footprint=100,align=1,base=0",
    "stride:n=5000,footprint=1M,stride=4160",
    "zipf:n=5000,pages=777,alpha=0.7,page_size=2M,seed=2",
    "zipf:n=2000,pages=64,alpha=1.5,sampler=rejection-inversion",
    "pointer_chase:n=5000,nodes=1000,node_bytes=128,seed=3",
    "gups:n_updates=5000,table_bytes=1M,seed=4",
    "matmul:nsize=12",
    "matmul:nsize=12,block=4,elem_bytes=4",
    "matmul:nsize=4,a_base=0x1000000,b_base=0x2000000,c_base=0x800000",
    "bfs:vertices=700,avg_degree=5,seed=5",
    "bfs:vertices=50,avg_degree=0",
    "stream:n_elements=1000,kernel=copy",
    "stream:n_elements=1000,kernel=scale,iterations=3",
    "stream:n_elements=1000,kernel=add,elem_bytes=4",
    "stream:n_elements=1000,kernel=triad,iterations=2",
]
IDS = [s.split(",")[0].replace(":", "-") for s in SPECS]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_access_lies_inside_a_region(spec):
    w = W.from_spec(spec)
    c = w.to_chunk()
    assert len(c) == len(w) == w.n
    assert c.addr.dtype == np.uint64 and c.op.dtype == np.uint8 and c.size.dtype == np.uint16
    inside = np.zeros(len(c), bool)
    for start, nbytes in w.regions.values():
        inside |= (c.addr >= start) & (c.addr + c.size.astype(np.uint64) <= start + nbytes)
    assert inside.all(), "an access leaves its region"
    spans = sorted(w.regions.values())
    for (s0, n0), (s1, _) in zip(spans, spans[1:]):
        assert s0 + n0 <= s1, "regions overlap"
    assert w.footprint <= sum(n for _, n in w.regions.values())


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_mix_counts_the_stream(spec):
    w = W.from_spec(spec)
    ops = w.op
    counts = {name: int(np.count_nonzero(ops == code))
              for code, name in ((0, "load"), (1, "store"), (3, "modify"))}
    counts = {k: v for k, v in counts.items() if v}
    if w.name == "uniform" and 0 < w.params["store_fraction"] < 1:
        for k, v in w.mix.items():
            assert abs(counts[k] - v) < 5 * np.sqrt(len(w) / 4)
    else:
        assert counts == w.mix
    assert sum(w.mix.values()) == pytest.approx(len(w))


@pytest.mark.parametrize("nsize,block", [(1, None), (6, None), (6, 1), (6, 2), (6, 3),
                                         (6, 6), (32, 8)])
def test_matmul_counts(nsize, block):
    w = W.matmul(nsize, block=block)
    b = block or nsize
    assert len(w) == nsize ** 2 * (nsize // b) * (2 * b + 2)
    assert w.mix == {"load": nsize ** 2 * (nsize // b) * (2 * b + 1),
                     "store": nsize ** 2 * (nsize // b)}
    assert w.footprint == 3 * nsize * nsize * 8
    if block == nsize:
        assert w.spec == W.matmul(nsize).spec


def test_stream_and_bfs_footprints():
    assert W.stream(1000, kernel="copy").footprint == 2 * 8000
    assert W.stream(1000, kernel="triad").footprint == 3 * 8000
    w = W.bfs(100, avg_degree=3)
    assert w.footprint == 8 * 101 + 4 * 300 + 100 + 400
    assert len(w) == 6 * 100 + 2 * 300
    assert list(w.regions) == ["offsets", "edges", "visited", "queue"]
    assert all((start - W.DEFAULT_BASE) % W.REGION_ALIGN == 0
               for start, _ in w.regions.values())


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_spec_round_trip(spec):
    w = W.from_spec(spec)
    again = W.from_spec(w.spec)
    assert again.spec == w.spec and again == w and hash(again) == hash(w)
    assert np.array_equal(again.addr, w.addr)
    assert W.from_spec(w) is w
    assert w.spec in repr(w)


def test_spec_values_accept_numbers_and_sizes():
    w = W.from_spec(" zipf : n = 1e4 , pages=1_000, alpha=1, page_size=2M, base=0x40000000 ")
    assert (w.n, w.params["pages"], w.params["alpha"], w.params["page_size"],
            w.params["base"]) == (10000, 1000, 1.0, 2 << 20, 0x40000000)
    assert W.from_spec("uniform:n=10,footprint=1e6").footprint == 10**6
    assert W.from_spec("uniform:n=10,footprint=64KiB").footprint == 65536
    assert W.from_spec("gups:n_updates=2.5e3,table_bytes=4K").n == 2500


@pytest.mark.parametrize("spec,match", [
    ("nope:n=1", "unknown workload 'nope'; valid workloads: uniform, stride, zipf"),
    ("zipf:n=1,pages=10,color=red", "unknown key 'color'; valid keys: n, pages, alpha"),
    ("zipf:n=1", "missing pages"),
    ("zipf:n=1,pages=10,n=2", "given twice"),
    ("zipf:n=1,pages", "not key=value"),
    ("zipf:n=1.5,pages=10", "whole number"),
    ("zipf:n=1,pages=ten", "not a number"),
    ("uniform:n=-1,footprint=1M", r"n must be in \[0"),
    ("uniform:n=1,footprint=4,align=8", "at least align"),
    ("uniform:n=1,footprint=64,align=3", "power of two"),
    ("uniform:n=1,footprint=64,store_fraction=1.5", "store_fraction"),
    ("zipf:n=1,pages=10,alpha=0", "alpha must be > 0"),
    ("zipf:n=1,pages=10,alpha=-1", "alpha must be > 0"),
    ("zipf:n=1,pages=10,alpha=nan", "finite"),
    ("zipf:n=1,pages=0", "pages must be in"),
    ("zipf:n=1,pages=10,align=8K", "must not exceed page_size"),
    ("zipf:n=1,pages=10,sampler=magic", "sampler 'magic'"),
    ("zipf:n=1,pages=4294967296", "pages < 2\\*\\*32, got 4294967296; use sampler='rejection"),
    ("pointer_chase:n=1,nodes=0", "nodes must be in"),
    ("pointer_chase:n=1,nodes=4,node_bytes=4", "node_bytes"),
    ("gups:n_updates=1,table_bytes=12", "multiple of 8"),
    ("matmul:nsize=6,block=4", "block 4 does not divide nsize 6; use one of .1, 2, 3, 6"),
    ("matmul:nsize=0", "nsize must be in"),
    ("matmul:nsize=4,a_base=0,b_base=64", "overlap"),
    ("bfs:vertices=0", "vertices must be in"),
    ("bfs:vertices=10,avg_degree=-1", "avg_degree"),
    ("stream:n_elements=10,kernel=sum", "kernel 'sum' is not one of copy, scale, add, triad"),
    ("stride:n=1,footprint=0", "footprint must be in"),
    ("stride:n=1,footprint=64,stride=0", "stride must be in"),
    ("uniform:n=1,footprint=1M,base=0xffffffffffffff00", "do not fit below 2\\*\\*64"),
])
def test_errors_name_the_problem(spec, match):
    with pytest.raises(ValueError, match=match):
        W.from_spec(spec)


def test_type_errors():
    with pytest.raises(TypeError):
        W.from_spec(42)
    with pytest.raises(TypeError):
        W.uniform(True, 64)
    with pytest.raises(TypeError):
        W.uniform(10, [64])


def test_zero_accesses_and_materialisation_limit():
    w = W.uniform(0, 4096)
    assert list(w.chunks()) == [] and len(w.to_chunk()) == 0 and w.mix == {}
    w = W.stream(100, iterations=0)
    assert len(w) == 0 and list(w) == []
    with pytest.raises(ValueError, match="limit"):
        W.uniform(10**9, 4096).to_chunk()
    assert len(W.uniform(100, 4096).to_chunk(limit=100)) == 100
    with pytest.raises(ValueError, match="chunk_size"):
        next(W.uniform(10, 4096).chunks(0))


def test_chunks_are_trace_chunks_and_independent():
    w = W.zipf(2500, 100, seed=1)
    chunks = list(w.chunks(1000))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert all(isinstance(c, TraceChunk) for c in chunks)
    first = chunks[0].addr.copy()
    list(w.chunks(7))                                  # a second pass starts over
    assert np.array_equal(chunks[0].addr, first)
    assert np.array_equal(next(iter(w)).addr[:1000], first)


def test_seeds_matter_and_repeat():
    for make in (lambda s: W.uniform(1000, 1 << 30, seed=s),
                 lambda s: W.zipf(1000, 10**6, seed=s),
                 lambda s: W.gups(1000, 1 << 30, seed=s),
                 lambda s: W.pointer_chase(1000, 10**4, seed=s),
                 lambda s: W.bfs(300, seed=s)):
        assert np.array_equal(make(1).addr, make(1).addr)
        assert not np.array_equal(make(1).addr, make(2).addr)


def test_gups_and_uniform_streams_are_distinct():
    assert not np.array_equal(W.gups(100, 1 << 20, seed=0).addr - W.DEFAULT_BASE,
                              W.uniform(100, 1 << 20, seed=0).addr - W.DEFAULT_BASE)


def test_alpha_one_and_neighbours_agree_closely():
    def top(alpha):
        ranks = W.zipf(50_000, 1000, alpha=alpha, seed=1).addr
        return int(np.bincount(((ranks - W.DEFAULT_BASE) // 4096).astype(np.int64)).max())
    a, b, c = top(1 - 1e-12), top(1.0), top(1 + 1e-12)
    assert abs(a - b) < 200 and abs(b - c) < 200


# ---------------------------------------------------------------- the engine module
def test_engine_rejects_bad_buffers():
    core = W.uniform(10, 4096)._core()
    with pytest.raises(ValueError, match="same length"):
        core.fill(np.empty(4, np.uint64), np.empty(3, np.uint8), np.empty(4, np.uint16))
    with pytest.raises((ValueError, TypeError)):
        core.fill(np.empty(4, np.int64), np.empty(4, np.uint8), np.empty(4, np.uint16))
    ro = np.empty(4, np.uint64)
    ro.setflags(write=False)
    with pytest.raises((ValueError, TypeError)):
        core.fill(ro, np.empty(4, np.uint8), np.empty(4, np.uint16))
    assert core.fill(np.empty(0, np.uint64), np.empty(0, np.uint8), np.empty(0, np.uint16)) == 0


def test_engine_seek_limits():
    core = W.bfs(10)._core()
    with pytest.raises(ValueError, match="seek to 0"):
        core.seek(3)
    core = W.uniform(10, 4096)._core()
    with pytest.raises(ValueError, match="past the end"):
        core.seek(11)
    core.seek(10)
    assert core.fill(np.empty(4, np.uint64), np.empty(4, np.uint8), np.empty(4, np.uint16)) == 0


def test_engine_constructors_check_their_arrays(to_input):
    off = to_input(np.array([0, 2, 3, 3], np.uint64))
    edg = to_input(np.array([1, 2, 0], np.uint32))
    order = gen.bfs_order(off, edg)
    assert order.tolist() == [0, 1, 2]
    core = gen.GenCore.new_bfs(off, edg, to_input(order), 0, 1 << 20, 2 << 20, 3 << 20)
    assert core.n == 6 * 3 + 2 * 3
    nxt = to_input(gen.sattolo(5, 1))
    order = to_input(gen.cycle(nxt))
    assert sorted(np.asarray(order).tolist()) == [0, 1, 2, 3, 4]
    assert gen.GenCore.new_chase(3, 0, order, 64, 8).n == 3
    with pytest.raises(ValueError):
        gen.bfs_order(to_input(np.array([0, 1], np.uint64)), to_input(np.array([5], np.uint32)))
    with pytest.raises(ValueError):
        gen.bfs_order(to_input(np.array([0, 2, 1], np.uint64)),
                      to_input(np.array([0], np.uint32)))
    with pytest.raises(ValueError):
        gen.GenCore.new_chase(3, 0, to_input(np.array([0, 7], np.uint32)), 64, 8)
    table = to_input(W.zipf_table(100, 1.0))
    assert gen.GenCore.new_zipf(5, 0, 100, 4096, 8, 1.0, 0, 8, table).n == 5
    with pytest.raises(ValueError):
        gen.GenCore.new_zipf(5, 0, 50, 4096, 8, 1.0, 0, 8, table)   # ranks past pages


def test_engine_helpers():
    k = gen.key_of(3, gen.SALTS["uniform_slot"])
    d = gen.draws(k, 10, 5, 1000)
    import reference_gen as ref
    assert d.tolist() == [ref.mulhi(ref.draw(k, i), 1000) for i in range(10, 15)]
    assert gen.zipf_constants(1000, 1.0)[1] == ref.zipf_H(1000.5, 1.0)
    assert gen.STATE_SIZE > 0 and set(gen.KINDS) >= {"uniform", "zipf", "bfs"}


@given(pages=st.integers(1, (1 << 32) - 1), alpha=st.floats(0.05, 12))
def test_zipf_table_is_a_valid_alias_table(pages, alpha):
    t = W.zipf_table(pages, alpha)
    c = gen.ZIPF_TABLE_COLS
    lo, cnt = t[:, c["lo"]].astype(object), t[:, c["count"]].astype(object)
    assert t.dtype == np.uint32 and t.shape[1] == c["width"] == 8
    assert lo[0] == 1 and all(lo[1:] == lo[:-1] + cnt[:-1]) and lo[-1] + cnt[-1] == pages + 1
    assert len(t) <= 64 * 8 * 40 + 600


@pytest.mark.parametrize("pages,alpha", [(1, 1.0), (7, 0.5), (1000, 1.0), (10**6, 1.3),
                                         (2**32 - 1, 0.8)])
def test_zipf_table_probabilities_are_the_bin_weights(pages, alpha):
    t = W.zipf_table(pages, alpha).astype(np.uint64)
    c = gen.ZIPF_TABLE_COLS
    m = len(t)
    index = {int(lo): j for j, lo in enumerate(t[:, c["lo"]])}
    prob = np.zeros(m)
    for j in range(m):
        keep = (int(t[j, c["thresh_hi"]]) << 32 | int(t[j, c["thresh_lo"]])) / 2.0 ** 64
        a = index[int(t[j, c["alias_lo"]])]
        prob[j] += keep / m
        prob[a] += (1 - keep) / m
        assert t[j, c["alias_count"]] == t[a, c["count"]]
        assert t[j, c["alias_squeeze"]] == t[a, c["squeeze"]]
    lo = t[:, c["lo"]].astype(float)
    cnt = t[:, c["count"]].astype(float)
    w = cnt * lo ** -alpha
    assert np.allclose(prob, w / w.sum(), rtol=1e-9, atol=1e-15)
    multi = cnt > 1
    sq = t[multi, c["squeeze"]].astype(float) / 2.0 ** 32
    bound = (lo[multi] / (lo[multi] + cnt[multi] - 1)) ** alpha
    assert (sq <= bound).all() and (sq > 0.97 ** max(alpha, 1.0)).all()


@pytest.mark.parametrize("name", ["pyapi.workloads", "mmucore.gen"])
def test_docstring_examples(name):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_every_workload_documents_footprint_mix_and_an_example():
    for cls in W.WORKLOADS.values():
        doc = cls.__doc__
        assert "ootprint" in doc and ">>>" in doc, cls.__name__
        assert any(word in doc for word in ("loads", "load ", "modif", "stores")), cls.__name__
