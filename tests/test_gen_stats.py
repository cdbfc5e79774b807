"""Statistical checks of the generators with fixed seeds (deterministic: each either
always passes or always fails). Thresholds are chi-square quantiles at p = 1e-4
(Wilson-Hilferty) or 5 standard deviations."""
import math

import numpy as np
import pytest

import reference_gen as ref
from pyapi import workloads as W


def chi2_crit(df, z=3.719):                 # upper 1e-4 quantile, Wilson-Hilferty
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi2(counts, expected):
    counts = np.asarray(counts, float)
    expected = np.asarray(expected, float)
    return float(((counts - expected) ** 2 / expected).sum())


def zipf_ranks(w):
    """The rank (1-based) of every access of a zipf workload."""
    p = w.params
    page_of_rank = ref.zipf_perm(p["pages"], p["seed"])
    rank_of_page = np.empty(p["pages"], np.int64)
    for k in range(1, p["pages"] + 1):
        rank_of_page[page_of_rank(k - 1)] = k
    pages = ((w.addr - p["base"]) // p["page_size"]).astype(np.int64)
    return rank_of_page[pages]


@pytest.mark.parametrize("sampler", W.Zipf.SAMPLERS)
@pytest.mark.parametrize("pages,alpha", [(1, 1.0), (2, 0.5), (10, 0.5), (10, 1.0),
                                         (10, 1.7), (50, 1.0), (50, 1 - 1e-9),
                                         (50, 1 + 1e-9), (200, 0.8), (200, 3.0)])
def test_zipf_matches_the_exact_pmf(sampler, pages, alpha):
    n = 200_000
    w = W.zipf(n, pages, alpha=alpha, seed=11, sampler=sampler)
    ranks = zipf_ranks(w)
    counts = np.bincount(ranks, minlength=pages + 1)[1:]
    pmf = np.arange(1, pages + 1, dtype=float) ** -alpha
    pmf /= pmf.sum()
    if pages == 1:
        assert counts[0] == n
        return
    # pool the tail so every expected count is at least 5
    exp_ = n * pmf
    keep = exp_ >= 5
    c = list(counts[keep]) + ([counts[~keep].sum()] if (~keep).any() else [])
    e = list(exp_[keep]) + ([exp_[~keep].sum()] if (~keep).any() else [])
    assert chi2(c, e) < chi2_crit(len(c) - 1)


@pytest.mark.parametrize("sampler", W.Zipf.SAMPLERS)
@pytest.mark.parametrize("alpha", [0.7, 1.0, 1.2])
def test_zipf_top_ranks_on_a_large_support(sampler, alpha):
    pages, n = 10**7, 200_000
    w = W.zipf(n, pages, alpha=alpha, seed=5, sampler=sampler)
    page_of_rank = ref.zipf_perm(pages, 5)
    pg = ((w.addr - w.params["base"]) // 4096).astype(np.int64)
    # H(pages, alpha) by Euler-Maclaurin after an exact head
    head = 10**5
    H = math.fsum(k ** -alpha for k in range(1, head))
    a = alpha
    if a == 1:
        tail_int = math.log(pages / head)
    else:
        tail_int = (pages ** (1 - a) - head ** (1 - a)) / (1 - a)
    H += tail_int + (head ** -a + pages ** -a) / 2 + a / 12 * (head ** (-a - 1) - pages ** (-a - 1))
    for k in (1, 2, 3, 10, 100):
        p = k ** -alpha / H
        f = np.count_nonzero(pg == page_of_rank(k - 1)) / n
        assert abs(f - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12, (k, f, p)
    assert 0 <= pg.min() and pg.max() < pages


def test_zipf_scatters_hot_pages():
    w = W.zipf(1, 2**20, seed=0)
    page_of_rank = ref.zipf_perm(2**20, 0)
    hot = [page_of_rank(k) for k in range(64)]
    assert hot != sorted(hot)
    assert max(hot) - min(hot) > 2**18             # spread over the footprint
    assert len(set(hot)) == 64
    # and the engine uses the same bijection
    core = w._core()
    assert [core._py_zipf_page(k + 1) for k in range(64)] == hot


def test_zipf_offsets_are_uniform_inside_the_page():
    w = W.zipf(100_000, 1000, alpha=1.0, seed=2, align=64)
    off = (w.addr - w.params["base"]) % 4096
    assert (off % 64 == 0).all()
    counts = np.bincount((off // 64).astype(np.int64), minlength=64)
    assert chi2(counts, [len(w) / 64] * 64) < chi2_crit(63)


def test_uniform_is_uniform_and_store_fraction_holds():
    w = W.uniform(200_000, 1 << 20, seed=4, align=8, store_fraction=0.3)
    slot = ((w.addr - w.params["base"]) // (1 << 14)).astype(np.int64)
    counts = np.bincount(slot, minlength=64)
    assert len(counts) == 64
    assert chi2(counts, [len(w) / 64] * 64) < chi2_crit(63)
    f = np.count_nonzero(w.op == 1) / len(w)
    assert abs(f - 0.3) < 5 * math.sqrt(0.3 * 0.7 / len(w))
    assert set(np.unique(w.op).tolist()) == {0, 1}


def test_gups_is_uniform_over_the_table():
    w = W.gups(100_000, 8 * 1000, seed=9)
    counts = np.bincount(((w.addr - w.params["base"]) // 8).astype(np.int64), minlength=1000)
    assert len(counts) == 1000
    assert chi2(counts, [100.0] * 1000) < chi2_crit(999)


def test_sattolo_is_uniform_over_cyclic_permutations():
    # 4 nodes: (4 - 1)! = 6 cycles, each equally likely over seeds
    seen = {}
    for seed in range(6000):
        nxt = tuple(W.pointer_chase(1, 4, seed=seed).next.tolist())
        seen[nxt] = seen.get(nxt, 0) + 1
    assert len(seen) == 6
    assert chi2(list(seen.values()), [1000] * 6) < chi2_crit(5)


@pytest.mark.parametrize("nodes", [1, 2, 3, 1000, 65537])
def test_pointer_chase_is_one_cycle(nodes):
    w = W.pointer_chase(2 * nodes + 3, nodes, seed=nodes)
    node = ((w.addr - w.params["base"]) // 64).astype(np.int64)
    assert node[0] == 0
    assert sorted(node[:nodes].tolist()) == list(range(nodes))
    assert np.array_equal(node[nodes:2 * nodes], node[:nodes])
    nxt = w.next
    assert np.array_equal(nxt[node[:-1]], node[1:])


def test_bfs_graph_and_order_match_a_python_bfs():
    w = W.bfs(3000, avg_degree=1.5, seed=3)
    off, edg = w.graph
    r_off, r_edg = ref.random_graph(3000, 4500, 3)
    assert off.tolist() == r_off and edg.tolist() == r_edg
    seen, order = [False] * 3000, []
    for root in range(3000):
        if seen[root]:
            continue
        seen[root] = True
        order.append(root)
        head = len(order) - 1
        while head < len(order):
            v = order[head]
            head += 1
            for u in r_edg[r_off[v]:r_off[v + 1]]:
                if not seen[u]:
                    seen[u] = True
                    order.append(u)
    assert w.order.tolist() == order
    # out-degrees: E edges from uniform sources (mean 1.5 per vertex)
    deg = np.diff(off.astype(np.int64))
    assert deg.sum() == w.edges_count == 4500 and abs(deg.mean() - 1.5) < 1e-9
