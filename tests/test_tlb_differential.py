"""Differential tests: the Cython engine (through pyapi.TLB and TLBCore's single-access
shims) against the pure-Python reference of docs/tlb.md, on random geometries, policies,
page sizes, ASIDs, global flags, invalidations and flushes. Counters, per-access hit
arrays, return values and the final contents must be identical."""
import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from pyapi import TLB
from reference_tlb import ReferenceTLB

POLICIES = ["lru", "fifo", "random", "plru", "lfu", "srrip"]

# (entries, ways): direct mapped, small set-associative with power-of-two and other set
# counts (12, 3, 5 sets), non-power-of-two ways (3, 6), fully associative small and wide,
# and wide set-associative. The engine has three structure kinds, all covered: up to 16
# ways (tag scan, nibble-word LRU/FIFO order), 17..64 ways (vectorised scan, linked
# lists), more than 64 ways (hashed index; PLRU trees of more than 64 leaves).
GEOMETRIES = [
    (1, 1), (8, 1), (5, 1), (8, 2), (4, 4), (16, 4), (48, 4), (24, 2), (36, 3), (9, 3),
    (3, 3), (6, 6), (18, 6), (16, 16), (24, 24), (32, 32), (64, 64), (48, 24), (96, 32),
    (60, 20), (65, 65), (96, 96), (128, 128), (160, 80),
]
SIZE_SETS = [("4K",), ("2M",), ("4K", "2M"), ("4K", "4M"), ("4K", "1G"), ("2M", "1G")]
SHIFT = {"4K": 12, "2M": 21, "4M": 22, "1G": 30}
CODE = {"4K": 0, "2M": 1, "4M": 2, "1G": 3}      # the engine's page-size codes
NAME = {code: name for name, code in CODE.items()}
ASIDS = [0, 1, 2, 65535]
# 1G regions: small ones and huge ones (page numbers near 2**52 exercise the fastmod path)
REGIONS = [0, 1, 2, (1 << 33) + 5, (1 << 34) - 1]


def counters(tlb):
    return tlb.stats.to_dict()


def normalised_contents(c, with_way):
    """The valid entries as a sorted list of tuples; the ASID of a global entry and (for
    LRU/FIFO, where docs/tlb.md leaves it open) the way number are not compared."""
    rows = []
    for i in range(len(c["set"])):
        g = bool(c["global_"][i])
        rows.append((int(c["set"][i]), int(c["way"][i]) if with_way else -1,
                     int(c["vpn"][i]), int(c["page_size"][i]),
                     -1 if g else int(c["asid"][i]), g))
    return sorted(rows)


def check_invariants(tlb):
    """The engine's own consistency check (order permutations, valid/global counts,
    hashed index), where this build has it."""
    check = getattr(tlb.core, "_check_invariants", None)
    if check is not None:
        check()


def assert_same_contents(tlb, ref):
    with_way = ref.policy not in ("lru", "fifo")
    assert normalised_contents(tlb.contents(), with_way) == \
        normalised_contents(ref.contents(), with_way)


# ---------------------------------------------------------------------------- strategies
@st.composite
def configs(draw):
    entries, ways = draw(st.sampled_from(GEOMETRIES))
    return dict(entries=entries, ways=ways, policy=draw(st.sampled_from(POLICIES)),
                page_size=draw(st.sampled_from(SIZE_SETS)),
                seed=draw(st.integers(0, (1 << 64) - 1)))


def address_strategy(entries):
    """Addresses from a small pool of 4K pages (conflicts and evictions), spread over a
    few 2M and 1G regions so that the larger page sizes share pages too."""
    pages = min(511, entries + entries // 2 + 2)
    return st.builds(lambda r, m, p, off: (r << 30) | (m << 21) | (p << 12) | off,
                     st.sampled_from(REGIONS), st.integers(0, 3), st.integers(0, pages),
                     st.integers(0, 4095))


@st.composite
def traces(draw, entries, max_size=48):
    """A list of addresses in which many accesses repeat the previous page (same-page
    fast path), some with a different offset."""
    addr = address_strategy(entries)
    steps = draw(st.lists(st.tuples(st.integers(0, 2), addr, st.integers(0, 4095)),
                          max_size=max_size))
    out = []
    for kind, a, off in steps:
        if out and kind == 1:
            a = out[-1]                                      # the same address again
        elif out and kind == 2 and draw(st.booleans()):
            a = (out[-1] & ~0xFFF) | off                     # same 4K page, other offset
        out.append(a)
    return out


def per_access(draw, n, values, mode=None):
    """None, one scalar, or an array of n values drawn from ``values``."""
    mode = draw(st.sampled_from(["none", "scalar", "array"])) if mode is None else mode
    if mode == "none":
        return None
    if mode == "scalar":
        return draw(st.sampled_from(values))
    return [draw(st.sampled_from(values)) for _ in range(n)]


def draw_access(draw, cfg):
    va = draw(traces(cfg["entries"]))
    n = len(va)
    sizes = list(cfg["page_size"])
    asids = per_access(draw, n, ASIDS)
    ps = per_access(draw, n, sizes)
    if isinstance(ps, list):
        ps = np.array([1 << SHIFT[s] for s in ps], dtype=np.uint64)
    glob = per_access(draw, n, [False, False, True])
    if isinstance(asids, list):
        asids = np.array(asids, dtype=draw(st.sampled_from([np.uint16, np.int64])))
    if isinstance(glob, list):
        glob = np.array(glob, dtype=bool)
    return np.array(va, dtype=np.uint64), asids, ps, glob


@st.composite
def operations(draw, cfg, max_ops=14):
    ops = []
    for _ in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["access"] * 6 + ["invalidate", "invalidate_many",
                                                     "flush", "flush_asid"]))
        if kind == "access":
            ops.append(("access",) + draw_access(draw, cfg))
        elif kind == "invalidate":
            ops.append(("invalidate", draw(address_strategy(cfg["entries"])),
                        draw(st.sampled_from([None] + ASIDS))))
        elif kind == "invalidate_many":
            va = draw(st.lists(address_strategy(cfg["entries"]), max_size=6))
            ops.append(("invalidate", np.array(va, dtype=np.uint64),
                        draw(st.sampled_from([None] + ASIDS))))
        elif kind == "flush":
            ops.append(("flush", draw(st.booleans())))
        else:
            ops.append(("flush_asid", draw(st.sampled_from(ASIDS))))
    return ops


def run_op(tlb, op):
    kind = op[0]
    if kind == "access":
        _, va, asids, ps, glob = op
        r = tlb.access(va, asids, page_size=ps, global_=glob, return_hits=True)
        return (r.hits, r.misses, np.asarray(r.hit, dtype=bool).tolist())
    if kind == "invalidate":
        return tlb.invalidate(op[1], asid=op[2])
    if kind == "flush":
        return tlb.flush(keep_global=op[1])
    return tlb.flush_asid(op[1])


# ---------------------------------------------------------------------------- tests
def run_against_reference(cfg, ops):
    """Apply `ops` to the engine and the reference built from `cfg`: every return value,
    the counters after each op and the final contents must agree, and the engine's
    invariants must hold throughout."""
    tlb, ref = TLB(**cfg), ReferenceTLB(**cfg)
    for i, op in enumerate(ops):
        note(f"op {i}: {op[0]}")
        assert run_op(tlb, op) == run_op(ref, op), f"op {i} ({op[0]}) returned differently"
        assert counters(tlb) == ref.stats.to_dict(), f"counters differ after op {i}"
        check_invariants(tlb)
    assert_same_contents(tlb, ref)


@given(data=st.data())
def test_engine_matches_reference(data):
    cfg = data.draw(configs(), label="config")
    ops = data.draw(operations(cfg), label="ops")
    run_against_reference(cfg, ops)


@given(data=st.data())
def test_fully_associative_wide_matches_reference(data):
    """Wide fully associative structures (the hashed path) under heavy reuse: traces
    with more distinct pages than entries and many ASIDs / global entries."""
    entries = data.draw(st.sampled_from([17, 24, 32, 64, 65, 100, 128]), label="entries")
    cfg = dict(entries=entries, ways=entries, policy=data.draw(st.sampled_from(POLICIES)),
               page_size=data.draw(st.sampled_from([("4K",), ("4K", "2M")])),
               seed=data.draw(st.integers(0, 1000)))
    run_against_reference(cfg, data.draw(operations(cfg, max_ops=8), label="ops"))


@given(data=st.data())
def test_split_batches_equal_one_batch(data):
    """The engine keeps its state (and its same-page memo) across calls: cutting a trace
    into several calls gives the hit array and counters of one call (and the reference's)."""
    cfg = data.draw(configs(), label="config")
    va, asids, ps, glob = draw_access(data.draw, cfg)
    # per-access arrays only, so that every chunk sees the same values
    n = len(va)
    asids = np.broadcast_to(np.asarray(0 if asids is None else asids, dtype=np.uint16), (n,)).copy()
    glob = np.broadcast_to(np.asarray(False if glob is None else glob, dtype=bool), (n,)).copy()
    if ps is None or np.ndim(ps) == 0:
        ps = np.full(n, 1 << SHIFT[ps if ps is not None else cfg["page_size"][0]], np.uint64)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=5), label="cuts"))
    whole, split, ref = TLB(**cfg), TLB(**cfg), ReferenceTLB(**cfg)
    expected = whole.access(va, asids, page_size=ps, global_=glob, return_hits=True).hit
    got = []
    for lo, hi in zip([0] + cuts, cuts + [n]):
        got.extend(split.access(va[lo:hi], asids[lo:hi], page_size=ps[lo:hi],
                                global_=glob[lo:hi], return_hits=True).hit.tolist())
    want = ref.access(va, asids, page_size=ps, global_=glob, return_hits=True).hit
    assert got == expected.tolist() == want.tolist()
    assert counters(split) == counters(whole) == ref.stats.to_dict()


def test_same_page_fast_path_counts_like_lookups():
    """A long run of one page: LFU counts every access of the run (fast path included),
    so a page hit 5 times outlives one hit 3 times; SRRIP re-zeroes on the fast path."""
    for policy in ("lfu", "srrip", "lru", "plru"):
        tlb, ref = TLB(2, 2, policy=policy), ReferenceTLB(2, 2, policy=policy)
        va = np.array([0x1000] * 6 + [0x2000] * 4 + [0x3000, 0x1000, 0x2000, 0x3000],
                      dtype=np.uint64)
        for chunk in (va[:3], va[3:7], va[7:]):     # runs cross call boundaries
            a = tlb.access(chunk, return_hits=True).hit.tolist()
            b = ref.access(chunk, return_hits=True).hit.tolist()
            assert a == b, policy
        assert counters(tlb) == ref.stats.to_dict(), policy


@pytest.mark.parametrize("ways", [1, 32, 128])
@pytest.mark.parametrize("op", ["invalidate", "invalidate_asid", "flush", "flush_keep_global",
                                "flush_asid", "py_fill", "py_access"])
def test_state_changes_between_calls_end_the_same_page_run(op, ways):
    """The batch loop remembers the last page across calls; every call that can drop or
    replace that entry must make the next access to the page a real lookup (a miss)."""
    tlb = TLB(ways, ways, policy="lru")
    core = tlb.core
    page = np.array([0x7000], np.uint64)
    assert tlb.access(page).misses == 1
    if op == "invalidate":
        tlb.invalidate(0x7000)
    elif op == "invalidate_asid":
        tlb.invalidate(0x7fff, asid=0)
    elif op == "flush":
        tlb.flush()
    elif op == "flush_keep_global":
        tlb.flush(keep_global=True)
    elif op == "flush_asid":
        tlb.flush_asid(0)
    else:                                   # evict it through the single-access kernels
        for k in range(ways):
            if op == "py_fill":
                core._py_fill(0x100000 + (k << 12), 0, 0, False, 0)
            else:
                core._py_access(0x100000 + (k << 12), 0, 0, False)
    assert tlb.access(page, return_hits=True).hit.tolist() == [False], op
    assert tlb.access(page, return_hits=True).hit.tolist() == [True], op


# ---------------------------------------------------------------------------- kernel shims
def entry_tag(vpn, code):
    return (vpn << 2) | code


@given(data=st.data())
def test_kernel_shims_agree_with_batch(data):
    """TLBCore's single-translation kernels against the batch path and the reference:
    * ``_py_probe`` answers hit/miss without changing anything and names the entry the
      reference would use (same tag and ASID; same (set, way) for policies that fix it);
    * ``_py_access`` per access == one batch call == ``_py_lookup`` + ``_py_fill`` on a miss;
    * batch calls and shim calls interleaved on one structure (memo invalidation)."""
    cfg = data.draw(configs(), label="config")
    n_ops = data.draw(st.integers(1, 4), label="chunks")
    chunks = [draw_access(data.draw, cfg) for _ in range(n_ops)]
    by_access, by_lookup_fill, batch, mixed = (TLB(**cfg) for _ in range(4))
    ref = ReferenceTLB(**cfg)
    fixed_way = cfg["policy"] not in ("lru", "fifo")
    smallest = min(CODE[s] for s in cfg["page_size"])     # codes grow with the size
    for ci, (va, asids, ps, glob) in enumerate(chunks):
        n = len(va)
        a_l = np.broadcast_to(np.asarray(0 if asids is None else asids), (n,)).astype(int)
        g_l = np.broadcast_to(np.asarray(False if glob is None else glob), (n,)).astype(bool)
        if ps is None:
            c_l = [smallest] * n
        elif np.ndim(ps) == 0:
            c_l = [CODE[ps]] * n
        else:
            c_l = [{1 << SHIFT[k]: CODE[k] for k in CODE}[int(x)] for x in ps]
        want = []
        got_access, got_lf = [], []
        use_shims = data.draw(st.booleans(), label=f"mixed chunk {ci} via shims")
        for i in range(n):
            v, a, c, g = int(va[i]), int(a_l[i]), int(c_l[i]), bool(g_l[i])
            found = ref._lookup(v, a)
            before = counters(by_access)
            e = by_access.core._py_probe(v, a)
            assert e == by_access.core._py_probe(v, a)
            assert counters(by_access) == before, "probe changed counters"
            assert (e >= 0) == (found is not None), f"probe disagrees at access {i}"
            if found is not None:
                s, w = found
                ent = ref.table[s][w]
                tag = by_access.core.contents()["tag"].ravel()[e]
                easid = by_access.core.contents()["easid"].ravel()[e]
                code = next(CODE[k] for k in SHIFT if SHIFT[k] == ent.shift)
                assert tag == entry_tag(ent.vpn, code)
                assert easid == (0x10000 if ent.glob else ent.asid)
                if fixed_way:
                    assert e == s * cfg["ways"] + w
            got_access.append(bool(by_access.core._py_access(v, a, c, g)))
            e = by_lookup_fill.core._py_lookup(v, a)
            if e < 0:
                e = by_lookup_fill.core._py_fill(v, a, c, g, 1000 + i)
                assert e >= 0
                assert by_lookup_fill.core._py_data(e) == 1000 + i
                got_lf.append(False)
            else:
                got_lf.append(True)
            want.append(bool(ref.access([v], a, page_size=NAME[c], global_=g).hits))
            if use_shims:
                mixed.core._py_access(v, a, c, g)
        got_batch = batch.access(va, asids, page_size=ps, global_=glob, return_hits=True).hit
        if not use_shims:
            mixed.access(va, asids, page_size=ps, global_=glob)
        assert got_access == want, f"_py_access differs in chunk {ci}"
        assert got_lf == want, f"_py_lookup/_py_fill differ in chunk {ci}"
        assert got_batch.tolist() == want, f"batch differs in chunk {ci}"
        for t in (by_access, by_lookup_fill, batch, mixed):
            assert counters(t) == ref.stats.to_dict()
    for t in (by_access, by_lookup_fill, batch, mixed):
        assert_same_contents(t, ref)
        check_invariants(t)


def test_probe_prefers_asid_entry_over_global():
    """Both an ASID entry and a global entry for one page: probe/lookup return the ASID
    entry for its ASID and the global one for any other ASID (scan and hashed paths)."""
    for ways in (4, 32, 128):
        tlb = TLB(ways, ways, policy="plru")
        core = tlb.core
        tlb.access(np.array([0x5000, 0x9000], dtype=np.uint64), asids=1)    # ways 0, 1
        assert tlb.invalidate(0x5000) == 1                                   # way 0 free
        tlb.access(np.array([0x9000], dtype=np.uint64), asids=2, global_=True)  # way 0
        c = tlb.contents()
        assert c["way"].tolist() == [0, 1] and c["global_"].tolist() == [True, False]
        assert core._py_probe(0x9abc, 1) == 1
        assert core._py_probe(0x9abc, 2) == 0
        assert core._py_probe(0x9abc, 7) == 0
        assert core._py_lookup(0x9000, 1) == 1
        assert core._py_probe(0xa000, 1) == -1


def test_fill_refreshes_asid_entry_when_global_also_present():
    """_py_fill of a translation present both as an ASID entry and a global one, for
    that ASID and not global: the ASID entry is refreshed in place (ASID over global);
    nothing is dropped or duplicated (regression: the scan path used to drop the global
    entry and install a second copy of the ASID entry)."""
    for ways in (4, 32, 128):
        tlb = TLB(ways, ways, policy="plru")
        core = tlb.core
        tlb.access(np.array([0x5000, 0x9000], dtype=np.uint64), asids=1)
        tlb.invalidate(0x5000)
        tlb.access(np.array([0x9000], dtype=np.uint64), asids=2, global_=True)
        before = normalised_contents(tlb.contents(), True)
        fills = tlb.stats.fills
        assert core._py_fill(0x9000, 1, 0, False, 77) == 1, f"ways={ways}"
        assert core._py_data(1) == 77
        assert normalised_contents(tlb.contents(), True) == before, f"ways={ways}"
        assert tlb.stats.fills == fills and tlb.stats.invalidations == 1
        check_invariants(tlb)


@pytest.mark.parametrize("ways", [4, 32, 128])
def test_global_fill_never_duplicates_a_global_entry(ways):
    # a global fill refreshes the page's global entry; the ASID entry stays as it is
    tlb = TLB(ways, ways, policy="lru")
    core = tlb.core
    tlb.access(np.array([0x9000], np.uint64), asids=1)                 # P, ASID 1
    tlb.access(np.array([0x9000], np.uint64), asids=2, global_=True)   # P, global
    core._py_fill(0x9000, 1, 0, True, 5)                               # P global again
    c = tlb.contents()
    keys = [(v, ps, -1 if g else a) for v, ps, a, g in
            zip(c["vpn"].tolist(), c["page_size"].tolist(), c["asid"].tolist(),
                c["global_"].tolist())]
    assert sorted(keys).count((9, 4096, -1)) == 1, f"duplicate global entries: {keys}"
    check_invariants(tlb)
    tlb.invalidate(0x9000, asid=3)
    assert core._py_probe(0x9000, 3) == -1, "a translation survived invalidate"
