"""Differential tests: the Cython MMU (through pyapi.MMU) against the pure-Python
reference of tests/reference_mmu.py (written from docs/mmu.md alone), on random
multi-CPU, multi-ASID traces over random small TLB hierarchies in every paging mode.

The complete ``to_dict()`` must be identical after every chunk, and so must the
per-access outputs (paddr, where, fault, walk_entries). Replaying in other chunkings
must give the same counters. Deterministic replacement policies only: the doc does not
say how the engine seeds each structure's ``random`` generator; both seed every TLB
and PSC with the MMU's ``seed``, so ``random`` is included.
"""
import os

import numpy as np
import pytest
from hypothesis import event, given, note, strategies as st

from pyapi.config import MMUConfig, TLBConfig
from reference_mmu import ReferenceMMU

from pyapi.chunk import TraceChunk
from pyapi.mmu import MMU                # required: a missing engine is a failure, not a skip

POLICIES = ["lru", "fifo", "plru", "lfu", "srrip", "random"]
GEOMS = [(1, 1), (2, 1), (2, 2), (3, 3), (4, 1), (4, 2), (4, 4), (6, 3), (8, 2), (8, 4)]
MODES = ["x86_32", "pae", "x86_64", "la57"]
LARGE = {"x86_32": "4M", "pae": "2M", "x86_64": "2M", "la57": "2M"}
SHIFT = {"4K": 12, "2M": 21, "4M": 22, "1G": 30}
# 1G regions per mode (and one near the top of the space, so that page-crossing
# accesses run past it)
REGIONS = {"x86_32": [0, 1 << 30, 0xC0000000], "pae": [0, 1 << 30, 0xC0000000],
           "x86_64": [0, 1 << 30, 1 << 39, 0xFFFF800000000000, 0xFFFFFFFFC0000000],
           "la57": [0, 1 << 30, 1 << 48, 0xFF00000000000000, 0xFFFFFFFFC0000000]}
OUTSIDE = {"x86_32": 1 << 32, "pae": 1 << 33, "x86_64": 1 << 47, "la57": 1 << 56}
LOAD, STORE, IFETCH, MODIFY, SWITCH, INVLPG, FLUSH, FLUSH_ASID, MAP, UNMAP = range(10)
# Known, reported disagreements can be set aside while hunting for others:
# MMU_DIFF_IGNORE=fault_later_page,top64 (comma-separated). Empty by default: the tests
# demand the doc's reading (tests/test_mmu_reference.py, READING R5/R6 ...).
IGNORE = set(filter(None, os.environ.get("MMU_DIFF_IGNORE", "").split(",")))


# ---------------------------------------------------------------------------- configs
# PSC shapes (entries, ways): 1 or 2 ways, 1 or 2 sets
PSC_SHAPES = [(1, 1), (2, 1), (2, 2), (4, 2)]
INCLUSIONS = ["inclusive", "non-inclusive", "exclusive"]


@st.composite
def configs(draw, modes=MODES, geoms=GEOMS, policies=POLICIES, psc_policies=POLICIES,
            psc_shapes=PSC_SHAPES, inclusions=INCLUSIONS, max_cpus=4):
    """(MMUConfig, MMU keyword arguments): a random hierarchy of the given geometries
    and policies in one of `modes` (tests/test_mmu_lean.py narrows them to the lean
    path's configurations)."""
    def geometry():
        e, w = draw(st.sampled_from(geoms))
        return dict(entries=e, ways=w, policy=draw(st.sampled_from(policies)))

    mode = draw(st.sampled_from(modes))
    large = LARGE[mode]
    gig = mode in ("x86_64", "la57")
    tlbs = []
    for side, prefix in (("data", "d"), ("instruction", "i")):
        layout = draw(st.sampled_from(["per_size", "shared", "4k_only", "splinter", "none"]
                                      if side == "instruction" else
                                      ["per_size", "shared", "4k_only", "splinter"]))
        if layout == "per_size":
            tlbs.append(TLBConfig(f"{prefix}tlb_4k", 1, side, page_sizes=("4K",),
                                  **geometry()))
            gig_here = gig and draw(st.sampled_from(["none", "with_large", "own"]))
            big = (large, "1G") if gig_here == "with_large" else (large,)
            tlbs.append(TLBConfig(f"{prefix}tlb_large", 1, side, page_sizes=big,
                                  **geometry()))
            if gig_here == "own":
                tlbs.append(TLBConfig(f"{prefix}tlb_1g", 1, side, page_sizes=("1G",),
                                      **geometry()))
        elif layout == "shared":
            sizes = ("4K", large) + (("1G",) if gig and draw(st.booleans()) else ())
            tlbs.append(TLBConfig(f"{prefix}tlb", 1, side, page_sizes=sizes, **geometry()))
        elif layout == "4k_only":
            tlbs.append(TLBConfig(f"{prefix}tlb_4k", 1, side, page_sizes=("4K",),
                                  **geometry()))
        elif layout == "splinter":
            # large pages in 4K pieces (Pentium 4 ITLB); 1G in 2M pieces (Zen 2)
            if gig and draw(st.booleans()):
                tlbs.append(TLBConfig(f"{prefix}tlb_4k", 1, side, page_sizes=("4K",),
                                      **geometry()))
                tlbs.append(TLBConfig(f"{prefix}tlb_2m", 1, side, page_sizes=("2M",),
                                      splinter={"1G": "2M"}, **geometry()))
            else:
                splinter = {large: "4K", "1G": "4K"} if gig else {large: "4K"}
                tlbs.append(TLBConfig(f"{prefix}tlb_4k", 1, side, page_sizes=("4K",),
                                      splinter=splinter, **geometry()))
    l2 = draw(st.sampled_from(["none", "unified", "split", "unified_splinter", "skylake"]))
    if l2 == "unified":
        tlbs.append(TLBConfig("stlb", 2, "unified", page_sizes=("4K", large), **geometry()))
    elif l2 == "unified_splinter":
        tlbs.append(TLBConfig("stlb", 2, "unified", page_sizes=("4K", large),
                              splinter={"1G": large} if gig else {}, **geometry()))
    elif l2 == "split":
        tlbs.append(TLBConfig("l2_d", 2, "data", page_sizes=("4K", large), **geometry()))
        tlbs.append(TLBConfig("l2_i", 2, "instruction", page_sizes=("4K",), **geometry()))
    elif l2 == "skylake":                     # 4K/large STLB plus a separate 1G one
        tlbs.append(TLBConfig("stlb", 2, "unified", page_sizes=("4K", large), **geometry()))
        if gig:
            tlbs.append(TLBConfig("stlb_1g", 2, "unified", page_sizes=("1G",), **geometry()))
    psc = {}
    if draw(st.booleans()):
        for name in ("pde", "pdpte", "pml4e", "pml5e"):
            if draw(st.booleans()):
                psc[name] = draw(st.sampled_from(psc_shapes))
    cfg = MMUConfig(name="random", tlbs=tuple(tlbs[:8]), psc=psc,
                    user=draw(st.sampled_from([True, True, True, False])),
                    psc_policy=draw(st.sampled_from(psc_policies)),
                    phys_mem="4G" if mode == "x86_32" else "16G",
                    allocator=draw(st.sampled_from(["sequential", "sequential", "random"])))
    kw = dict(paging=mode, huge_pages=draw(st.sampled_from(["never", "thp", "always"])),
              pcid=gig and draw(st.booleans()), cpus=draw(st.integers(1, max_cpus)),
              inclusion=draw(st.sampled_from(inclusions)), seed=draw(st.integers(0, 1000)))
    return cfg, kw


# ---------------------------------------------------------------------------- traces
def address(draw, mode):
    kind = draw(st.sampled_from(["pool"] * 18 + ["outside", "top"]))
    if kind == "outside":
        return OUTSIDE[mode] + draw(st.integers(0, 1 << 14))
    if kind == "top":                       # the last 4K of the linear space
        if mode not in ("x86_32", "pae") and "top64" in IGNORE:
            return draw(st.sampled_from(REGIONS[mode]))
        top = (1 << 32) if mode in ("x86_32", "pae") else (1 << 64)
        return top - 1 - draw(st.integers(0, 4095))
    base = draw(st.sampled_from(REGIONS[mode]))
    return base + draw(st.integers(0, 3)) * (1 << 21) + draw(st.integers(0, 7)) * 4096 \
        + draw(st.sampled_from([0, 8, 0x800, 0xFF8, 0xFFC, 0xFFF]))


OPS = ([LOAD] * 8 + [STORE] * 3 + [IFETCH] * 3 + [MODIFY] + [SWITCH] * 2
       + [INVLPG, FLUSH, FLUSH_ASID, MAP, UNMAP])


@st.composite
def traces(draw, mode, cpus, nasids, n_max=120, ops=OPS, cpu_stay=0, same_page=4,
           steps=(0,), sizes=(0, 1, 4, 8, 8, 64, 4096)):
    """Trace records (addr, op, size, cpu): ops drawn from `ops`; every record's CPU drawn
    afresh (cpu_stay 0) or kept and redrawn with chance 1/cpu_stay; one memory op in
    `same_page` at the previous address plus one of `steps` (runs of the same page)."""
    asids = [0, 1, 2, 4095][:nasids]
    recs, cpu = [], 0
    for _ in range(draw(st.integers(1, n_max))):
        op = draw(st.sampled_from(ops))
        if cpu_stay == 0 or draw(st.integers(0, cpu_stay - 1)) == 0:
            cpu = draw(st.integers(0, cpus - 1))
        if op == SWITCH or op == FLUSH_ASID:
            addr = draw(st.sampled_from(asids))
        elif op == FLUSH:
            addr = draw(st.integers(0, 3))
        elif recs and op <= MODIFY and draw(st.integers(0, same_page - 1)) == 0:
            step = draw(st.sampled_from(steps)) if len(steps) > 1 else steps[0]
            addr = (recs[-1][0] + step) % (1 << 64)
        else:
            addr = address(draw, mode)
        size = draw(st.sampled_from(sizes)) if op <= MODIFY else 0
        recs.append((addr, op, size, cpu))
    return recs


@st.composite
def premaps(draw, mode, nasids):
    """MMU.map calls before the trace: pages of the address pool, some global, some
    kernel-only or read-only, some large."""
    out = []
    for _ in range(draw(st.integers(0, 5))):
        size = draw(st.sampled_from(["4K", "4K", LARGE[mode]] +
                                    (["1G"] if mode in ("x86_64", "la57") else [])))
        base = draw(st.sampled_from(REGIONS[mode]))
        if size == "1G":
            va = base
        else:
            va = base + draw(st.integers(0, 3)) * (1 << 21)
            if size == "4K":
                va += draw(st.integers(0, 7)) * 4096
            else:
                va &= ~((1 << SHIFT[size]) - 1)
        out.append(dict(vaddr=va, size=size, page_size=size,
                        asid=draw(st.sampled_from([0, 1, 2, 4095][:nasids])),
                        writable=draw(st.sampled_from([True, True, False])),
                        user=draw(st.sampled_from([True, True, False])),
                        global_=draw(st.sampled_from([False, False, True]))))
    return out


# ---------------------------------------------------------------------------- running
def to_chunk(recs):
    return TraceChunk(np.array([r[0] for r in recs], np.uint64),
                      np.array([r[1] for r in recs], np.uint8),
                      np.array([r[2] for r in recs], np.uint16),
                      np.array([r[3] for r in recs], np.uint16))


def outputs(r):
    get = (lambda k: r[k]) if isinstance(r, dict) else (lambda k: getattr(r, k))
    return {k: np.asarray(get(k)).tolist() for k in ("paddr", "where", "fault", "walk_entries")}


def apply_premaps(eng, ref, maps):
    for m in maps:
        try:
            ref.map(m["vaddr"], m["size"], page_size=m["page_size"], asid=m["asid"],
                    writable=m["writable"], user=m["user"], global_=m["global_"])
        except (ValueError, MemoryError):
            continue                           # overlaps an earlier one: skipped by both
        eng.map(m["vaddr"], m["size"], page_size=m["page_size"], asid=m["asid"],
                writable=m["writable"], user=m["user"], global_=m["global_"])


@st.composite
def api_calls(draw, mode, nasids):
    """MMU.map/unmap/protect between chunks (the same pages as the trace's)."""
    kind = draw(st.sampled_from(["unmap", "protect", "map"]))
    m = draw(premaps(mode, nasids).filter(bool))[0]
    size = 1 << SHIFT[m["size"]]
    if kind == "map":
        return kind, m
    args = dict(vaddr=m["vaddr"], size=size * draw(st.sampled_from([1, 1, 2])), asid=m["asid"])
    if kind == "protect":
        args.update(writable=draw(st.sampled_from([None, True, False])),
                    user=draw(st.sampled_from([None, True, False])))
    return kind, args


def api_call(eng, ref, call):
    """Run one API call on both; a refused call must be refused by both."""
    kind, args = call
    try:
        want = getattr(ref, kind)(**args)
    except (ValueError, MemoryError) as exc:
        with pytest.raises(type(exc)):
            getattr(eng, kind)(**args)
        return
    assert getattr(eng, kind)(**args) == want, f"{kind}({args}) returned differently"


def diff(a, b):
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k, "<absent>"), b.get(k, "<absent>")) for k in keys
            if a.get(k, "<absent>") != b.get(k, "<absent>")}


def compare_run(cfg, kw, maps, recs, cuts, calls=()):
    """Replay `recs` cut at `cuts` on both; calls[i] (if any) runs before chunk i."""
    eng, ref = MMU(cfg, **kw), ReferenceMMU(cfg, **kw)
    apply_premaps(eng, ref, maps)
    bounds = [0] + sorted(set(cuts)) + [len(recs)]
    for ci, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        if ci < len(calls) and calls[ci] is not None:
            api_call(eng, ref, calls[ci])
        if lo == hi:
            continue
        piece = recs[lo:hi]
        got = outputs(eng.access(to_chunk(piece), record=True))
        want = outputs(ref.access(to_chunk(piece), record=True))
        if "fault_later_page" in IGNORE:       # compare `fault` of first-page faults only
            got["fault"] = [f if w == 3 else 0 for f, w in zip(got["fault"], want["where"])]
            want["fault"] = [f if w == 3 else 0 for f, w in zip(want["fault"], want["where"])]
        for k in want:
            if got[k] != want[k]:
                i = next(j for j, (x, y) in enumerate(zip(got[k], want[k])) if x != y)
                raise AssertionError(f"{k} differs at record {lo + i} {piece[i]}: "
                                     f"engine {got[k][i]}, reference {want[k][i]}")
        d = diff(eng.stats.to_dict(), ref.to_dict())
        if "inactive_psc_keys" in IGNORE:     # PSC levels the paging mode lacks
            d = {k: v for k, v in d.items() if not (".psc_" in k and v[0] == "<absent>"
                                                    and v[1] == 0)}
        assert not d, f"counters differ after records {lo}..{hi - 1}: (engine, reference) {d}"
    return eng, ref


def draw_scenario(data, kw, max_asids=4, max_cuts=3, max_calls=4):
    """(premaps, trace records, chunk cuts, API calls before chunks) for the configuration
    kw, over 1..max_asids address spaces."""
    nasids = data.draw(st.integers(1, max_asids), label="asids")
    maps = data.draw(premaps(kw["paging"], nasids), label="premaps")
    recs = data.draw(traces(kw["paging"], kw["cpus"], nasids), label="trace")
    cuts = data.draw(st.lists(st.integers(0, len(recs)), max_size=max_cuts), label="cuts")
    calls = data.draw(st.lists(st.none() | api_calls(kw["paging"], nasids),
                               max_size=max_calls), label="api calls before chunks")
    return maps, recs, cuts, calls


@given(data=st.data())
def test_engine_matches_reference(data):
    cfg, kw = data.draw(configs(), label="config")
    maps, recs, cuts, calls = draw_scenario(data, kw)
    note(f"tlbs={cfg.tlbs} psc={cfg.psc} psc_policy={cfg.psc_policy} "
         f"allocator={cfg.allocator} kw={kw}")
    event(f"mode {kw['paging']}")
    compare_run(cfg, kw, maps, recs, cuts, calls)


@given(data=st.data())
def test_chunking_invariance(data):
    """replay in pieces == replay whole == the reference, counters and outputs."""
    cfg, kw = data.draw(configs(), label="config")
    nasids = data.draw(st.integers(1, 4), label="asids")
    maps = data.draw(premaps(kw["paging"], nasids), label="premaps")
    recs = data.draw(traces(kw["paging"], kw["cpus"], nasids, n_max=80), label="trace")
    chunk_size = data.draw(st.integers(1, 40), label="chunk_size")
    from pyapi.trace import Trace
    arrays = dict(addr=np.array([r[0] for r in recs], np.uint64),
                  op=np.array([r[1] for r in recs], np.uint8),
                  size=np.array([r[2] for r in recs], np.uint16),
                  cpu=np.array([r[3] for r in recs], np.uint16))
    whole, pieces, ref = MMU(cfg, **kw), MMU(cfg, **kw), ReferenceMMU(cfg, **kw)
    apply_premaps(whole, ref, maps)
    for m in maps:
        try:
            pieces.map(m["vaddr"], m["size"], page_size=m["page_size"], asid=m["asid"],
                       writable=m["writable"], user=m["user"], global_=m["global_"])
        except ValueError:
            pass
    a = whole.replay(Trace.from_arrays(**arrays), chunk_size=len(recs) + 1, progress=False).to_dict()
    b = pieces.replay(Trace.from_arrays(**arrays), chunk_size=chunk_size, progress=False).to_dict()
    ref.access(to_chunk(recs))
    assert not diff(a, b), diff(a, b)
    assert not diff(a, ref.to_dict()), diff(a, ref.to_dict())


@pytest.mark.parametrize("paging", MODES)
def test_long_clustered_trace(paging):
    """Longer seeded traces per mode on a Skylake-like small hierarchy with PSCs, two
    CPUs and two ASIDs, under four (huge pages, inclusion, pcid, footprint) settings:
    2000 records each, compared after each of 8 chunks."""
    rng = np.random.default_rng(7)
    large = LARGE[paging]
    tlbs = (TLBConfig("itlb", 1, "instruction", 8, 4, ("4K",)),
            TLBConfig("dtlb", 1, "data", 8, 4, ("4K",)),
            TLBConfig("dtlb_large", 1, "data", 4, 4, (large,)),
            TLBConfig("stlb", 2, "unified", 24, 6, ("4K", large)))
    cfg = MMUConfig(name="small", tlbs=tlbs, psc={"pde": (4, 2), "pdpte": (2, 2)})
    pcid_ok = paging in ("x86_64", "la57")
    for huge, inclusion, pcid, pages in (("thp", "inclusive", pcid_ok, 24),
                                         ("never", "exclusive", False, 24),
                                         ("never", "inclusive", pcid_ok, 10),
                                         ("always", "non-inclusive", pcid_ok, 10)):
        kw = dict(paging=paging, huge_pages=huge, pcid=pcid, cpus=2, inclusion=inclusion, seed=3)
        recs = []
        regions = REGIONS[paging]
        for _ in range(2000):
            op = int(rng.choice([0] * 40 + [1] * 16 + [2] * 16 + [3, 4, 5, 6, 7, 8, 9]))
            cpu = int(rng.integers(0, 2))
            if op in (SWITCH, FLUSH_ASID):
                addr = int(rng.integers(0, 2))
            elif op == FLUSH:
                addr = int(rng.integers(0, 4))
            else:
                addr = regions[int(rng.integers(0, 2))] + int(rng.integers(0, 4)) * (1 << 21) \
                    + int(rng.integers(0, pages)) * 4096 + int(rng.integers(0, 4096))
            recs.append((addr, op, int(rng.choice([0, 4, 8, 64])) if op <= 3 else 0, cpu))
        compare_run(cfg, kw, [], recs, list(range(250, 2000, 250)))


def test_errors_and_translate_agree():
    """Kmap ops and CPUs out of range are rejected by both before the chunk runs (the
    chunks before stay); translate() gives the same physical addresses and counters."""
    cfg = MMUConfig(name="e", tlbs=(TLBConfig("dtlb", 1, "data", 4, 2, ("4K",)),
                                    TLBConfig("stlb", 2, "unified", 8, 4, ("4K", "2M"))),
                    psc={"pde": (2, 2)})
    eng, ref = MMU(cfg, cpus=2, huge_pages="thp"), ReferenceMMU(cfg, cpus=2, huge_pages="thp")
    good = [(0x1000, LOAD, 8, 0), (0x201000, STORE, 0, 1)]
    for m in (eng, ref):
        m.access(to_chunk(good))
    for bad in ([(0x2000, LOAD, 0, 0), (5, 10, 0, 0)], [(0x2000, LOAD, 0, 2)],
                [(0x2000, LOAD, 0, 0), (4096, SWITCH, 0, 0)],
                [(0x2000, LOAD, 0, 0), (5000, FLUSH_ASID, 0, 1)]):
        for m in (eng, ref):
            with pytest.raises(ValueError):
                m.access(to_chunk(bad))
        assert not diff(eng.stats.to_dict(), ref.to_dict())
    va = np.array([0x1234, 0x201234, 0x7FFFFFFFF000, 1 << 47, 0x400000], dtype=np.uint64)
    assert eng.translate(va).tolist() == ref.translate(va).tolist()
    assert not diff(eng.stats.to_dict(), ref.to_dict())
