"""The MMU engine's lean batch path (mmucore/_mmu_lean.pxi) against its generic path and
the reference model.

Batches without per-record outputs take the lean path when every TLB structure and PSC
is LRU, FIFO or PLRU with at most 64 ways and a power-of-two set count and the hierarchy
is not exclusive, in any paging mode. These tests draw exactly such configurations
(including the 12- and 16-way sets of the presets' STLBs and the fully associative
32..64-entry L1 TLBs of the Zen and Cortex presets), replay random multi-CPU, multi-ASID
traces with control ops, page-crossing accesses, faults, demand paging and API calls
between chunks, and require identical counters from the lean path, the generic path
(``mmucore.mmu.set_lean(False)``) and tests/reference_mmu.py, plus identical page-table
entries (A/D bits) afterwards.

The 4K run (mmucore/_mmu_run4k.pxi: one CPU's memory ops over 4K pages, nibble-order
LRU/FIFO structures, any paging mode) is held to the lean path without it
(``mmucore.mmu.set_run4k(False)``) and to the reference model the same way.
"""
import numpy as np
import pytest
from hypothesis import event, given, note, strategies as st

import mmucore.mmu as engine
from pyapi.config import MMUConfig, TLBConfig
from pyapi.mmu import MMU
from reference_mmu import ReferenceMMU
from test_mmu_differential import (FLUSH, FLUSH_ASID, IFETCH, INVLPG, LOAD, MAP, MODIFY, STORE,
                                   SWITCH, UNMAP, api_call, api_calls, apply_premaps, configs,
                                   diff, draw_scenario, premaps, to_chunk, traces)

LEAN_MODES = ["x86_32", "pae", "x86_64", "la57"]
# (entries, ways): power-of-two set counts, 1..64 ways, the preset shapes among them
LEAN_GEOMS = [(1, 1), (2, 1), (2, 2), (4, 4), (8, 2), (8, 4), (16, 4), (12, 12), (24, 12),
              (16, 16), (32, 16), (8, 8), (6, 3), (10, 5), (24, 24), (48, 48), (64, 64),
              (40, 20)]


@pytest.fixture(autouse=True)
def _lean_on():
    old, old4k = engine.set_lean(True), engine.set_run4k(True)
    yield
    engine.set_lean(old)
    engine.set_run4k(old4k)


def lean_configs():
    """Random hierarchies that take the lean path (test_mmu_differential.configs with
    lean geometries, policies and inclusions)."""
    return configs(modes=LEAN_MODES, geoms=LEAN_GEOMS, policies=["lru", "lru", "fifo", "plru"],
                   psc_policies=["lru", "fifo", "plru"], inclusions=["inclusive", "non-inclusive"],
                   psc_shapes=[(1, 1), (2, 2), (4, 2), (8, 8), (4, 4)], max_cpus=3)


def run(cfg, kw, maps, recs, cuts, calls, lean, reference):
    """Replay recs cut at cuts (API calls between chunks) on the engine (and on the
    reference model when `reference`); the MMU and the reference (or None)."""
    engine.set_lean(lean)
    mmu = MMU(cfg, **kw)
    assert mmu.core.lean() == lean
    ref = ReferenceMMU(cfg, **kw)
    apply_premaps(mmu, ref, maps)
    bounds = [0] + sorted(set(cuts)) + [len(recs)]
    for ci, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        if ci < len(calls) and calls[ci] is not None:
            if reference:
                api_call(mmu, ref, calls[ci])
            else:                  # (the same on both paths: refused calls are refused)
                try:
                    getattr(mmu, calls[ci][0])(**calls[ci][1])
                except (ValueError, MemoryError):
                    pass
        if lo < hi:
            mmu.replay(to_chunk(recs[lo:hi]), progress=False)
            if reference:
                ref.access(to_chunk(recs[lo:hi]))
    return mmu, (ref if reference else None)


def tables(mmu):
    """Every ASID's page-table pages (entries with their A/D bits)."""
    return {a: {pa: words.tolist() for pa, words in mmu.page_table(a).table_pages().items()}
            for a in mmu.asids}


@given(data=st.data())
def test_lean_path_matches_generic_path_and_reference(data):
    cfg, kw = data.draw(lean_configs(), label="config")
    maps, recs, cuts, calls = draw_scenario(data, kw, max_asids=3, max_cuts=2, max_calls=3)
    note(f"tlbs={cfg.tlbs} psc={cfg.psc} kw={kw}")
    event(f"mode {kw['paging']}, {kw['inclusion']}")
    # (the reference on one example in four: it is the slow part, and the generic path
    # is held to it on every example of tests/test_mmu_differential.py)
    reference = data.draw(st.integers(0, 3), label="with the reference") == 0
    lean, ref = run(cfg, kw, maps, recs, cuts, calls, True, reference)
    generic, _ = run(cfg, kw, maps, recs, cuts, calls, False, False)
    a, b = lean.stats.to_dict(), generic.stats.to_dict()
    assert not diff(a, b), f"lean vs generic (lean, generic): {diff(a, b)}"
    if ref is not None:
        assert not diff(a, ref.to_dict()), f"lean vs reference: {diff(a, ref.to_dict())}"
    assert tables(lean) == tables(generic)


@pytest.mark.parametrize("preset,paging", [("skylake", "x86_64"), ("p6", "pae"),
                                           ("skylake", "pae"), ("nehalem", "x86_64"),
                                           ("golden_cove", "x86_64"), ("zen2", "x86_64"),
                                           ("zen3", "pae"), ("cortex_a76", "x86_64"),
                                           ("pentium4", "x86_64"), ("p6", "x86_32"),
                                           ("pentium4", "x86_32")])
def test_presets_on_the_lean_path(preset, paging):
    """Preset hierarchies on a longer random stream (stores, instruction fetches, 2M
    pages under THP, a context switch): lean and generic give the same counters."""
    rng = np.random.default_rng(7)
    n = 60_000
    addr = (0x10000000 + rng.integers(0, 1 << 28, n, dtype=np.uint64) * 8).astype(np.uint64)
    op = rng.choice(np.array([0, 0, 0, 1, 2], np.uint8), n)
    op[n // 2] = 4                                      # SWITCH to ASID 1
    addr[n // 2] = 1
    size = np.full(n, 8, np.uint16)
    out = {}
    for lean in (True, False):
        engine.set_lean(lean)
        mmu = MMU.from_preset(preset, paging=paging, huge_pages="thp", cpus=1)
        assert mmu.core.lean() == lean
        from pyapi.chunk import TraceChunk
        mmu.replay(TraceChunk(addr, op, size, None), chunk_size=7_000, progress=False)
        out[lean] = (mmu.stats.to_dict(), tables(mmu))
    assert not diff(out[True][0], out[False][0])
    assert out[True][1] == out[False][1]


def test_which_configurations_take_the_lean_path():
    base = dict(paging="x86_64", huge_pages="never")
    assert MMU.from_preset("skylake", **base).core.lean()
    assert MMU.from_preset("p6", paging="pae").core.lean()
    assert MMU.from_preset("p6", paging="x86_32").core.lean()
    assert not MMU.from_preset("skylake", inclusion="exclusive", **base).core.lean()
    lfu = MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 16, 4, ("4K",), policy="lfu"),))
    assert not MMU(lfu, paging="x86_64").core.lean()
    wide = MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 128, 128, ("4K",)),))
    assert not MMU(wide, paging="x86_64").core.lean()                    # > 64 ways
    odd = MMUConfig("t", tlbs=(TLBConfig("dtlb", 1, "data", 48, 4, ("4K",)),))
    assert not MMU(odd, paging="x86_64").core.lean()                     # 12 sets
    for name in ("zen2", "zen3", "golden_cove", "cortex_a76", "pentium4"):
        assert MMU.from_preset(name, paging="x86_64").core.lean(), name
    assert not MMU.from_preset("zen4", paging="x86_64").core.lean()     # 72-way dTLB
    engine.set_lean(False)
    assert not MMU.from_preset("skylake", **base).core.lean()


def run4k_configs():
    """Random hierarchies whose 4K stretches take the 4K run (every one the lean path
    takes), every paging mode; one in three with nibble-order LRU/FIFO structures only
    (at most 16 ways: the run's _LeanScan copy), the others with PLRU and up to 64 ways
    too (mostly the _LeanAny copy)."""
    scan = configs(modes=LEAN_MODES, geoms=[g for g in LEAN_GEOMS if g[1] <= 16],
                   policies=["lru", "lru", "fifo"], psc_policies=["lru", "fifo"],
                   inclusions=["inclusive", "non-inclusive"],
                   psc_shapes=[(1, 1), (2, 2), (4, 2), (8, 8), (4, 4)], max_cpus=3)
    return st.one_of(scan, lean_configs(), lean_configs())


def run4k_traces(mode, cpus, nasids):
    """Traces made mostly of stretches the 4K run takes (one CPU's loads, stores,
    read-modify-writes and instruction fetches within a page), broken by everything that
    ends one: control ops, another CPU, page-crossing sizes, faulting addresses."""
    return traces(mode, cpus, nasids, n_max=150,
                  ops=[LOAD] * 12 + [STORE] * 4 + [MODIFY] * 2
                  + [IFETCH, SWITCH, INVLPG, FLUSH, FLUSH_ASID, MAP, UNMAP],
                  cpu_stay=16, same_page=3, steps=(0, 8, 64), sizes=(1, 8, 8, 8, 0, 64))


@given(data=st.data())
def test_run4k_matches_lean_path_and_reference(data):
    cfg, kw = data.draw(run4k_configs(), label="config")
    kw["huge_pages"] = data.draw(st.sampled_from(["never", "never", "thp"]), label="huge")
    nasids = data.draw(st.integers(1, 3), label="asids")
    maps = data.draw(premaps(kw["paging"], nasids), label="premaps")
    recs = data.draw(run4k_traces(kw["paging"], kw["cpus"], nasids), label="trace")
    cuts = data.draw(st.lists(st.integers(0, len(recs)), max_size=2), label="cuts")
    calls = data.draw(st.lists(st.none() | api_calls(kw["paging"], nasids), max_size=3),
                      label="api calls before chunks")
    note(f"tlbs={cfg.tlbs} psc={cfg.psc} kw={kw}")
    reference = data.draw(st.integers(0, 3), label="with the reference") == 0
    # (the fixture runs once for all examples; without the back-off after short runs,
    # most of these short traces' stretches take the 4K run)
    engine.set_run4k(True, backoff=data.draw(st.integers(0, 3), label="backoff") == 0)
    before = engine.run4k_records()
    fast, ref = run(cfg, kw, maps, recs, cuts, calls, True, reference)
    any_copy = any(t.policy == "plru" or t.ways > 16 for t in cfg.tlbs) or \
        (bool(cfg.psc) and cfg.psc_policy == "plru")
    event(("the 4K run took records" if engine.run4k_records() > before
           else "the 4K run took none") + (" (_LeanAny copy)" if any_copy else ""))
    engine.set_run4k(False)
    try:
        slow, _ = run(cfg, kw, maps, recs, cuts, calls, True, False)
    finally:
        engine.set_run4k(True)
    a, b = fast.stats.to_dict(), slow.stats.to_dict()
    assert not diff(a, b), f"4K run vs lean (with, without): {diff(a, b)}"
    if ref is not None:
        assert not diff(a, ref.to_dict()), f"4K run vs reference: {diff(a, ref.to_dict())}"
    assert tables(fast) == tables(slow)


@pytest.mark.parametrize("preset,paging,cpus,fetches", [
    ("skylake", "x86_64", 1, 0.001), ("skylake", "x86_64", 2, 0.001),
    ("skylake", "x86_64", 1, 0.6), ("nehalem", "x86_64", 1, 0.6), ("p6", "pae", 1, 0.001),
    ("p6", "pae", 1, 0.6), ("skylake", "pae", 2, 0.6), ("p6", "x86_32", 1, 0.6),
    ("skylake", "x86_32", 2, 0.001),
    # (the _LeanAny copy: PLRU; 48-, 64-way fully associative L1s; a unified 3-size STLB)
    ("golden_cove", "x86_64", 1, 0.6), ("golden_cove", "x86_32", 2, 0.001),
    ("zen2", "x86_64", 2, 0.6), ("zen3", "pae", 1, 0.001), ("cortex_a76", "x86_64", 1, 0.6),
    ("pentium4", "x86_32", 1, 0.6)])
def test_presets_with_and_without_the_4k_run(preset, paging, cpus, fetches):
    """Longer streams over 4K pages (loads, stores, read-modify-writes, instruction
    fetches over code pages, rarely or as in a lackey trace, page-crossing accesses, a
    context switch, an INVLPG, two CPUs): the 4K run, the lean path without it and the
    generic path give the same counters and tables; the 4K run takes most records."""
    from pyapi.chunk import TraceChunk
    rng = np.random.default_rng(11)
    n = 60_000
    # (8 MiB: 2,048 pages, more than the STLBs hold, each demand-mapped once)
    addr = (0x10000000 + rng.integers(0, 1 << 20, n, dtype=np.uint64) * 8).astype(np.uint64)
    addr[::7] = 0x10000000 + (np.arange(0, n, 7, dtype=np.uint64) * 64) % (1 << 22)
    op = rng.choice(np.array([0, 0, 0, 0, 1, 3], np.uint8), n)
    fetch = rng.random(n) < fetches                     # instruction fetches, 64 code pages
    op[fetch] = 2
    addr[fetch] = 0x400000 + rng.integers(0, 1 << 18, int(fetch.sum()), dtype=np.uint64)
    size = np.full(n, 8, np.uint16)
    addr[5::1009] |= np.uint64(0xFFC)                   # 8 bytes across a page boundary
    op[n // 2], addr[n // 2] = 4, 1                     # SWITCH to ASID 1
    op[n // 3], addr[n // 3] = 5, addr[n // 3 - 1]      # INVLPG
    cpu = None
    if cpus > 1:                                        # stretches of 1..400 records per CPU
        cpu = np.repeat(np.arange(n) % 2, rng.integers(1, 400, n))[:n].astype(np.uint16)
    out = {}
    for mode in ("run4k", "lean", "generic"):
        engine.set_run4k(mode == "run4k")
        engine.set_lean(mode != "generic")
        mmu = MMU.from_preset(preset, paging=paging, huge_pages="never", cpus=cpus)
        before = engine.run4k_records()
        mmu.replay(TraceChunk(addr, op, size, cpu), chunk_size=7_000, progress=False)
        took = engine.run4k_records() - before
        out[mode] = (mmu.stats.to_dict(), tables(mmu))
        if mode == "run4k":
            assert took > n // 2, took
        else:
            assert took == 0
    assert not diff(out["run4k"][0], out["lean"][0])
    assert not diff(out["run4k"][0], out["generic"][0])
    assert out["run4k"][1] == out["lean"][1] == out["generic"][1]


def test_bundled_lackey_traces_with_and_without_the_4k_run():
    """Real traces (the bundled valgrind lackey traces: 60-75 % instruction fetches,
    some accesses straddling pages) through the Skylake preset: identical counters with
    the 4K run and without it, and the 4K run takes most records."""
    from pyapi.trace import Trace, bundled_traces
    for name, info in sorted(bundled_traces().items())[:3]:
        chunk = Trace.open(info["path"]).read()
        out = {}
        for run4k in (True, False):
            engine.set_run4k(run4k)
            mmu = MMU.from_preset("skylake", paging="x86_64", huge_pages="never")
            before = engine.run4k_records()
            mmu.replay(chunk, chunk_size=1 << 20, progress=False)
            took = engine.run4k_records() - before
            assert (took > 0.9 * len(chunk.addr)) if run4k else took == 0, (name, took)
            out[run4k] = mmu.stats.to_dict()
        assert not diff(out[True], out[False]), name


@pytest.mark.parametrize("preset,paging", [("skylake", "x86_64"), ("p6", "pae"),
                                           ("p6", "x86_32")])
def test_path_cache_follows_table_writes_between_chunks(preset, paging):
    """The 4K run's path cache (one descent to a leaf table per region, valid for one
    run) against tables written behind the MMU's back between chunks: a pre-mapped
    region whose upper entries start without A bits (the first walks set them, so the
    cache may not be built from them), two page-directory entries swapped without
    invalidation (the PDE cache then holds the old tables, which the walk must follow),
    and A bits cleared again. Tables are compared after every chunk (a later walk may
    set a missed A bit). Walk-heavy random loads and stores; the 4K run, the lean path
    without it and the generic path give the same counters and tables."""
    from pyapi.chunk import TraceChunk
    base, span = 0x10000000, 16 << 20                   # 8 (x86_32: 4) leaf tables
    rng = np.random.default_rng(5)
    n, chunks = 40_000, 8
    addr = (base + rng.integers(0, span >> 3, n, dtype=np.uint64) * 8).astype(np.uint64)
    op = rng.choice(np.array([0, 0, 0, 1], np.uint8), n)
    region = 1 << (22 if paging == "x86_32" else 21)
    out = {}
    for mode in ("run4k", "lean", "generic"):
        engine.set_run4k(mode == "run4k")
        engine.set_lean(mode != "generic")
        mmu = MMU.from_preset(preset, paging=paging, huge_pages="never")
        mmu.map(base, span)
        pt = mmu.page_table(0)
        upper = sorted({pt.entry_paddr(va, L) for va in range(base, base + span, region)
                        for L in range(1, pt.levels) if not (paging == "pae" and L == 2)})
        pde = [pt.entry_paddr(base + k * region, 1) for k in (1, 2)]
        before = engine.run4k_records()
        snaps = []                                      # (later walks may hide an A bit)
        for k, (lo, hi) in enumerate(zip(range(0, n, n // chunks),
                                         range(n // chunks, n + 1, n // chunks))):
            mmu.replay(TraceChunk(addr[lo:hi], op[lo:hi]), progress=False)
            snaps.append(tables(mmu))
            if k == 2:                                  # two PDEs swapped, PSCs not told
                a, b = pt.read_entry(pde[0]), pt.read_entry(pde[1])
                pt.write_entry(pde[0], b)
                pt.write_entry(pde[1], a)
            if k == 5:                                  # A bits of the upper entries cleared
                for p in upper:
                    pt.write_entry(p, pt.read_entry(p) & ~0x20)
        took = engine.run4k_records() - before
        assert (took > n // 2) if mode == "run4k" else took == 0, (mode, took)
        out[mode] = (mmu.stats.to_dict(), snaps)
    assert not diff(out["run4k"][0], out["lean"][0])
    assert not diff(out["run4k"][0], out["generic"][0])
    for k in range(chunks):
        assert out["run4k"][1][k] == out["lean"][1][k] == out["generic"][1][k], k


def test_path_cache_after_a_large_page_replaces_a_table():
    """A demand fault of a large page ("thp" policy) may map a 2M page over a present
    entry that points to an empty table (the walk found it not present through a PSC
    entry the tables no longer match): a path cached for that region before must not
    serve the next stretch. Built by writing the tables behind the PSCs' back: CPU 1's PDPTE
    cache keeps a 1 GiB region's old page directory while the tables point it at a new
    one, whose two PDEs share one empty leaf table. CPU 0's stretches cache that table's
    path, CPU 1's fault replaces one PDE with a 2M page, and CPU 0 then reads the other
    region's and the replaced region's page: the 4K run, the lean path and the generic
    path agree (the 2M page, not the old table)."""
    from pyapi.chunk import TraceChunk
    m2, g1 = 1 << 21, 1 << 30
    r0, g, g2 = 0x10000000, g1, 2 * g1
    r1, r2, off = g + m2, g + 2 * m2, 0x5000

    def chunk(addrs, cpus):
        return TraceChunk(addr=np.array(addrs, np.uint64), cpu=np.array(cpus, np.uint16))

    out = {}
    for mode in ("run4k", "lean", "generic"):
        engine.set_run4k(mode == "run4k", backoff=False)
        engine.set_lean(mode != "generic")
        mmu = MMU.from_preset("skylake", cpus=2, huge_pages="thp")
        mmu.map(r0, m2)
        mmu.replay(chunk([g + 3 * m2], [1]), progress=False)   # CPU 1's PDPTE cache: G
        pt = mmu.page_table(0)
        mmu.map(g2 + m2, 4096)                                  # a new PD and leaf table
        pt.unmap(g2 + m2, 4096)                                 # ... left empty
        pdpte_g, pdpte_g2 = pt.entry_paddr(g, 2), pt.entry_paddr(g2, 2)
        pt.write_entry(pdpte_g2, pt.read_entry(pdpte_g2) | 0x20)
        pde1 = pt.entry_paddr(g2 + m2, 1)
        pt.write_entry(pde1, pt.read_entry(pde1) | 0x20)
        pt.write_entry(pde1 + 8, pt.read_entry(pde1))           # PDE 2: the same table
        pt.write_entry(pdpte_g, pt.read_entry(pdpte_g2))        # G -> the new PD
        addrs = [r0 + k * 4096 for k in range(40)] + [r1 + off, r2 + off, r1 + off]
        mmu.replay(chunk(addrs, [0] * 40 + [1, 0, 0]), progress=False)
        out[mode] = (mmu.stats.to_dict(), tables(mmu), pt.translate([r1 + off]).tolist())
    assert out["run4k"][0]["cpu0.dtlb_2m.fills"] == 1           # (the scenario happened)
    assert not diff(out["run4k"][0], out["lean"][0])
    assert not diff(out["run4k"][0], out["generic"][0])
    assert out["run4k"][1:] == out["lean"][1:] == out["generic"][1:]


@pytest.mark.parametrize("preset", ["skylake", "golden_cove"])
@pytest.mark.parametrize("batches", ["fetches, then bare loads", "one batch, fetches midway"])
def test_run4k_back_invalidates_an_itlb_filled_later(preset, batches):
    """The 4K run leaves an empty L1 structure out of its back-invalidation list (a
    data-only trace's iTLB: nothing there to invalidate) while it stays empty: one the
    run cannot fill (the instruction side's in a batch of bare loads, the loads-only
    copy) is left out; one it can fill joins the list at its first fill. Either way the
    STLB victims of later loads are invalidated in an iTLB that fetches filled (by an
    earlier batch, or midway through the same batch) as on the lean and generic paths."""
    from pyapi.chunk import TraceChunk
    base = 0x10000000
    rng = np.random.default_rng(5)
    code = base + np.arange(64, dtype=np.uint64) * np.uint64(4096)
    fetch_addr = np.repeat(code, 2)
    fetch_op = np.tile(np.array([IFETCH, LOAD], np.uint8), 64)

    def data(n):
        return base + (rng.integers(0, 1 << 14, n, dtype=np.uint64) << np.uint64(12))

    if batches == "fetches, then bare loads":
        chunks = [TraceChunk(addr=fetch_addr, op=fetch_op), data(30_000)]
    else:
        first, last = data(5_000), data(30_000)
        chunks = [TraceChunk(
            addr=np.concatenate([first, fetch_addr, last]),
            op=np.concatenate([rng.choice(np.array([LOAD, STORE], np.uint8), 5_000), fetch_op,
                               np.full(30_000, LOAD, np.uint8)]))]
    out = {}
    for mode in ("run4k", "lean", "generic"):
        engine.set_run4k(mode == "run4k", backoff=False)
        engine.set_lean(mode != "generic")
        mmu = MMU.from_preset(preset, huge_pages="never")
        mmu.map(base, 1 << 26)
        for chunk in chunks:
            mmu.replay(chunk, progress=False)
        out[mode] = mmu.stats.to_dict()
    assert out["run4k"]["cpu0.itlb_4k.invalidations"] > 0      # (the scenario happened)
    assert not diff(out["run4k"], out["lean"])
    assert not diff(out["run4k"], out["generic"])
