"""Differential tests: every generator equals the pure-Python reference (tests/
reference_gen.py) access by access, and its stream does not depend on the chunk size."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import reference_gen as ref
from pyapi import workloads as W
from pyapi.chunk import TraceChunk

seeds = st.integers(0, 2**64 - 1)
small_n = st.integers(0, 300)
chunk = st.integers(1, 97)


def engine(w, chunk_size):
    chunks = list(w.chunks(chunk_size))
    assert all(len(c) == min(chunk_size, len(w) - i * chunk_size)
               for i, c in enumerate(chunks))
    if not chunks:
        return [], [], []
    c = TraceChunk.concat(chunks)
    return c.addr.tolist(), c.op.tolist(), c.size.tolist()


def check(w, chunk_size):
    got = engine(w, chunk_size)
    want = ref.reference(w)
    assert len(got[0]) == len(w) == len(want[0])
    assert got[0] == want[0], "addresses differ"
    assert got[1] == want[1], "ops differ"
    assert got[2] == want[2], "sizes differ"


@given(n=small_n, fp=st.integers(1, 1 << 40), seed=seeds, align_log=st.integers(0, 12),
       sf=st.sampled_from([0.0, 0.25, 0.5, 1.0]), base=st.integers(0, 1 << 47), cs=chunk)
def test_uniform(n, fp, seed, align_log, sf, base, cs):
    align = 1 << align_log
    fp = max(fp, align)
    check(W.uniform(n, fp, seed=seed, base=base, align=align, store_fraction=sf), cs)


@given(n=small_n, words=st.integers(1, 1 << 30), seed=seeds, cs=chunk)
def test_gups(n, words, seed, cs):
    check(W.gups(n, 8 * words, seed=seed), cs)


@given(n=small_n, fp=st.integers(1, 1 << 20), strd=st.integers(1, 1 << 21),
       elem=st.integers(1, 64), cs=chunk)
def test_stride(n, fp, strd, elem, cs):
    check(W.stride(n, fp, stride=strd, elem_bytes=elem), cs)


def test_stride_huge_values_do_not_overflow():
    w = W.stride(5, (1 << 63) + 5, stride=(1 << 63) + 3, base=0)
    check(w, 2)


@given(n=st.integers(0, 150), pages=st.integers(1, 5000),
       alpha=st.sampled_from([0.3, 0.8, 0.999999, 1.0, 1.0000001, 1.3, 2.5, 9.0]),
       seed=seeds, page_log=st.integers(3, 21), sampler=st.sampled_from(W.Zipf.SAMPLERS),
       cs=chunk)
def test_zipf(n, pages, alpha, seed, page_log, sampler, cs):
    check(W.zipf(n, pages, alpha=alpha, page_size=1 << page_log, seed=seed,
                 sampler=sampler), cs)


@given(n=small_n, nodes=st.integers(1, 200), node_bytes=st.integers(8, 4096), seed=seeds,
       cs=chunk)
def test_pointer_chase(n, nodes, node_bytes, seed, cs):
    check(W.pointer_chase(n, nodes, node_bytes=node_bytes, seed=seed), cs)


@st.composite
def matmul_args(draw):
    nsize = draw(st.integers(1, 8))
    divisors = [d for d in range(1, nsize + 1) if nsize % d == 0]
    block = draw(st.sampled_from([None] + divisors))
    return nsize, block


@given(args=matmul_args(), elem=st.sampled_from([1, 4, 8, 16]), cs=chunk)
def test_matmul(args, elem, cs):
    nsize, block = args
    check(W.matmul(nsize, block=block, elem_bytes=elem), cs)


@given(ne=st.integers(1, 60), kernel=st.sampled_from(sorted(W.Stream.KERNELS)),
       elem=st.sampled_from([4, 8]), it=st.integers(0, 3), cs=chunk)
def test_stream(ne, kernel, elem, it, cs):
    check(W.stream(ne, kernel=kernel, elem_bytes=elem, iterations=it), cs)


@given(v=st.integers(1, 60), deg=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.7]), seed=seeds,
       cs=chunk)
def test_bfs(v, deg, seed, cs):
    check(W.bfs(v, avg_degree=deg, seed=seed), cs)


# ---------------------------------------------------------------- chunk-size independence
BIG = [
    "uniform:n=20000,footprint=1G,seed=7,store_fraction=0.3",
    "gups:n_updates=20000,table_bytes=64M,seed=7",
    "stride:n=20000,footprint=100000,stride=192",
    "zipf:n=20000,pages=100000,alpha=0.9,seed=7",
    "zipf:n=5000,pages=1e7,alpha=1.0,seed=7,sampler=rejection-inversion",
    "pointer_chase:n=20000,nodes=3000,seed=7",
    "matmul:nsize=16,block=4",
    "stream:n_elements=3000,kernel=add,iterations=2",
    "bfs:vertices=2000,avg_degree=3,seed=7",
]


@pytest.mark.parametrize("spec", BIG, ids=[s.split(":")[0] for s in BIG])
@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=8))
def test_chunking_does_not_change_the_stream(spec, sizes):
    w = W.from_spec(spec)
    whole = w.to_chunk()
    size = sizes[0]
    parts = list(w.chunks(size))
    joined = TraceChunk.concat(parts)
    assert np.array_equal(joined.addr, whole.addr)
    assert np.array_equal(joined.op, whole.op)
    assert np.array_equal(joined.size, whole.size)
    # uneven chunk sizes through the engine object directly
    core = w._core()
    got, i = [], 0
    while True:
        m = sizes[i % len(sizes)]
        i += 1
        a, o, s = (np.empty(m, np.uint64), np.empty(m, np.uint8), np.empty(m, np.uint16))
        k = core.fill(a, o, s)
        if not k:
            break
        got.append(a[:k].copy())
    assert np.array_equal(np.concatenate(got), whole.addr)


@pytest.mark.parametrize("spec", [s for s in BIG if not s.startswith("bfs")],
                         ids=lambda s: s.split(":")[0])
@given(data=st.data())
def test_seek_continues_the_stream(spec, data):
    w = W.from_spec(spec)
    whole = w.to_chunk().addr
    pos = data.draw(st.integers(0, len(w)))
    core = w._core()
    core.seek(pos)
    m = len(w) - pos
    a, o, s = np.empty(m, np.uint64), np.empty(m, np.uint8), np.empty(m, np.uint16)
    assert core.fill(a, o, s) == m
    assert np.array_equal(a, whole[pos:])
