"""pyapi.MMU: hand-computed scenarios for the rules of docs/mmu.md (L1/L2 hits, miss
attribution, splintering, inclusion, control ops, shootdowns, page-crossing accesses,
faults, chunking), the replay plumbing (arrays, traces, chunk iterators, Ctrl-C, kmap
op rejection), per-access outputs and a pycachesim cross-check."""
import numpy as np
import pytest

from pyapi import Op, Trace
from pyapi.chunk import TraceChunk
from pyapi.config import MMUConfig, TLBConfig
from pyapi.mmu import MMU
from pyapi.stats import Stats

K4 = 4096
M2 = 2 << 20


def cfg(*tlbs, **kw):
    return MMUConfig("test", tlbs=tuple(tlbs), **kw)


def dtlb(entries=16, ways=4, sizes=("4K",), name="dtlb", **kw):
    return TLBConfig(name, 1, "data", entries, ways, sizes, **kw)


def stlb(entries=64, ways=4, sizes=("4K",), name="stlb", side="unified", **kw):
    return TLBConfig(name, 2, side, entries, ways, sizes, **kw)


def u64(*xs):
    return np.array(xs, dtype=np.uint64)


def chunk(addr, op=None, cpu=None, size=None):
    return TraceChunk(u64(*addr), op=None if op is None else np.array(op, np.uint8),
                      cpu=None if cpu is None else np.array(cpu, np.uint16),
                      size=None if size is None else np.array(size, np.uint16))


def where(mmu, *addr, **kw):
    return mmu.access(chunk(addr, **kw)).where.tolist()


# ---------------------------------------------------------------- one access, L1 and L2

def test_l1_hit_and_miss_counters():
    mmu = MMU(cfg(dtlb()))
    assert where(mmu, 0x1000, 0x1008, 0x5000) == [2, 0, 2]
    s = mmu.stats
    assert (s["cpu0.dtlb.accesses"], s["cpu0.dtlb.hits"], s["cpu0.dtlb.misses"]) == (3, 1, 2)
    assert (s["cpu0.l1_hits"], s["cpu0.l1_misses"], s["cpu0.l2_misses"]) == (1, 2, 2)
    assert (s["cpu0.walks"], s["cpu0.demand_faults"], s["cpu0.translations"]) == (2, 2, 3)
    # first: PML4E not present (1) + retry (4); second: PTE not present (4) + retry (4)
    assert s["cpu0.walk_refs"] == (1 + 4) + (4 + 4)
    assert s["total.walks"] == 2 and s["asids"] == 1 and s["interrupted"] == 0


def test_l2_hit_fills_l1():
    mmu = MMU(cfg(dtlb(4, 4), stlb(64, 4)))
    pages = [i * K4 for i in range(5)]
    assert where(mmu, *pages) == [2] * 5
    assert where(mmu, 0) == [1]                          # LRU evicted page 0 from the dTLB
    assert where(mmu, 0) == [0]
    s = mmu.stats
    assert s["cpu0.stlb.hits"] == 1 and s["cpu0.stlb.misses"] == 5
    assert s["cpu0.dtlb.misses"] == 6 and s["cpu0.dtlb.hits"] == 1
    assert s["cpu0.l2_hits"] == 1 and s["cpu0.walks"] == 5


def test_miss_attribution_by_page_size():
    mmu = MMU(cfg(dtlb(name="dtlb_4k"), dtlb(8, 8, ("2M",), name="dtlb_2m")))
    mmu.map(0x40000000, M2, page_size="2M")
    assert where(mmu, 0x40000000, 0x40001000, 0x1000) == [2, 0, 2]
    s = mmu.stats
    assert (s["cpu0.dtlb_2m.misses"], s["cpu0.dtlb_2m.hits"]) == (1, 1)
    assert (s["cpu0.dtlb_4k.misses"], s["cpu0.dtlb_4k.accesses"]) == (1, 1)


def test_uncharged_miss_when_no_structure_takes_the_size():
    mmu = MMU(cfg(dtlb()))                               # 4K only
    mmu.map(0x40000000, M2, page_size="2M")
    assert where(mmu, 0x40000000, 0x40000008) == [2, 2]
    s = mmu.stats
    assert s["cpu0.dtlb.accesses"] == 0 and s["cpu0.l1_misses"] == 2 and s["cpu0.walks"] == 2


def test_splinter_stores_the_piece_holding_the_address():
    mmu = MMU(cfg(dtlb(splinter={"2M": "4K"})))
    mmu.map(0x40000000, M2, page_size="2M", pfn=0x80000)
    r = mmu.access(u64(0x40000010, 0x40001010, 0x40000020))
    assert r.where.tolist() == [2, 2, 0]
    assert r.paddr.tolist() == [0x80000010, 0x80001010, 0x80000020]
    assert mmu.stats["cpu0.dtlb.misses"] == 2


# ---------------------------------------------------------------- inclusion

def test_inclusive_back_invalidation():
    mmu = MMU(cfg(dtlb(16, 16), stlb(2, 2)))
    assert where(mmu, 0, K4, 2 * K4) == [2, 2, 2]        # page 2's L2 fill evicts page 0
    s = mmu.stats
    assert s["cpu0.back_invalidations"] == 1 and s["cpu0.stlb.evictions"] == 1
    assert s["cpu0.dtlb.invalidations"] == 1
    assert where(mmu, 0) == [2]


def test_non_inclusive_keeps_l1():
    mmu = MMU(cfg(dtlb(16, 16), stlb(2, 2), inclusion="non-inclusive"))
    assert where(mmu, 0, K4, 2 * K4, 0) == [2, 2, 2, 0]
    assert mmu.stats["cpu0.back_invalidations"] == 0


def test_exclusive_victims_move_to_l2():
    mmu = MMU(cfg(dtlb(2, 2), stlb(4, 4), inclusion="exclusive"))
    assert where(mmu, 0, K4) == [2, 2]
    assert mmu.core.contents(0, 1) == []                 # a walk fills L1 only
    assert where(mmu, 2 * K4) == [2]                     # evicts page 0 into L2
    assert [e[0] for e in mmu.core.contents(0, 1)] == [0]
    assert where(mmu, 0) == [1]                          # L2 hit: moved back; page 1 goes down
    assert [e[0] for e in mmu.core.contents(0, 1)] == [1]
    assert sorted(e[0] for e in mmu.core.contents(0, 0)) == [0, 2]
    s = mmu.stats
    assert s["cpu0.stlb.invalidations"] == 0 and s["cpu0.stlb.hits"] == 1
    assert s["cpu0.stlb.fills"] == 2


# ---------------------------------------------------------------- control ops

S, INV, FL, FA, MP, UM = (int(Op.SWITCH), int(Op.INVLPG), int(Op.FLUSH), int(Op.FLUSH_ASID),
                          int(Op.MAP), int(Op.UNMAP))


@pytest.mark.parametrize("pcid, expect", [(False, 2), (True, 0)])
def test_switch_flushes_without_pcid(pcid, expect):
    mmu = MMU(cfg(dtlb(), pcid=pcid))
    r = mmu.access(chunk([0x1000, 1, 0, 0x1000], op=[0, S, S, 0]))
    assert r.where.tolist() == [2, 255, 255, expect]
    s = mmu.stats
    assert s["cpu0.switches"] == 2 and s["asids"] == 2
    assert mmu.current_asid(0) == 0


def test_global_entries_survive_a_switch_and_match_any_asid():
    mmu = MMU(cfg(dtlb()))
    mmu.map(0x1000, K4, global_=True)
    r = mmu.access(chunk([0x1000, 5, 0x1000], op=[0, S, 0]))
    assert r.where.tolist() == [2, 255, 0]


def test_invlpg():
    mmu = MMU(cfg(dtlb(), stlb()))
    assert where(mmu, 0x1000, 0x1000, 0x2000, 0x1000, 0x2000,
                 op=[0, INV, 0, 0, 0]) == [2, 255, 2, 2, 0]
    s = mmu.stats
    assert s["cpu0.invlpgs"] == 1
    assert s["cpu0.dtlb.invalidations"] == 1 and s["cpu0.stlb.invalidations"] == 1


def test_flush_flags_and_all_cpu_flush():
    mmu = MMU(cfg(dtlb(), cpus=2))
    mmu.map(0x1000, K4, global_=True)
    mmu.map(0x2000, K4)
    # FLUSH 0 keeps the global entry, FLUSH 1 drops it
    assert where(mmu, 0x1000, 0x2000, 0, 0x1000, 0x2000, 1, 0x1000,
                 op=[0, 0, FL, 0, 0, FL, 0]) == [2, 2, 255, 0, 2, 255, 2]
    # FLUSH 2 on cpu0: an IPI to cpu1, which loses its entries
    r = mmu.access(chunk([0x2000, 2, 0x2000], op=[0, FL, 0], cpu=[1, 0, 1]))
    assert r.where.tolist() == [2, 255, 2]
    s = mmu.stats
    assert (s["cpu0.flushes"], s["cpu0.shootdowns"], s["cpu0.ipis_sent"]) == (3, 1, 1)
    assert (s["cpu1.ipis_received"], s["cpu1.flushes"]) == (1, 0)
    assert s["total.flushes"] == 3


def test_flush_asid_drops_one_asids_entries():
    mmu = MMU(cfg(dtlb(), pcid=True))
    ops = [0, S, 0, S, FA, 0, S, 0]
    addr = [0x1000, 1, 0x1000, 0, 1, 0x1000, 1, 0x1000]
    assert where(mmu, *addr, op=ops) == [2, 255, 2, 255, 255, 0, 255, 2]
    assert mmu.stats["cpu0.flush_asids"] == 1


def test_map_op_maps_without_tlb_effect():
    mmu = MMU(cfg(dtlb()))
    assert where(mmu, 0x7000, 0x7000, 0x7000, op=[MP, MP, 0]) == [255, 255, 2]
    s = mmu.stats
    assert s["cpu0.maps"] == 2 and s["cpu0.demand_faults"] == 0
    assert len(mmu.page_table(0).mappings()) == 1


def test_unmap_shootdown_to_cpumask_cpus():
    mmu = MMU(cfg(dtlb(), cpus=3, pcid=True))
    # cpu0, cpu1 run ASID 0 and cache page A; cpu2 runs ASID 1 (and cached A in ASID 0
    # before switching: a deferred invalidation, no IPI)
    A = 0x5000
    c = chunk([A, A, A, 1, A], op=[0, 0, 0, S, UM], cpu=[0, 1, 2, 2, 0])
    mmu.access(c)
    s = mmu.stats
    assert (s["cpu0.unmaps"], s["cpu0.shootdowns"], s["cpu0.ipis_sent"]) == (1, 1, 1)
    assert (s["cpu1.ipis_received"], s["cpu2.ipis_received"]) == (1, 0)
    assert [s[f"cpu{k}.dtlb.invalidations"] for k in range(3)] == [1, 1, 1]
    assert mmu.page_table(0).mappings() == []
    assert mmu.cpumask(0) == [0, 1] and mmu.cpumask(1) == [2]
    # a new access demand-maps it again
    assert where(mmu, A, cpu=[1]) == [2]
    assert mmu.stats["cpu1.demand_faults"] == 1
    # UNMAP of an unmapped address counts, changes nothing
    mmu.access(chunk([0x900000], op=[UM]))
    assert mmu.stats["cpu0.unmaps"] == 2 and mmu.stats["cpu0.ipis_sent"] == 1


def test_unmap_of_global_leaf_interrupts_every_cpu():
    mmu = MMU(cfg(dtlb(), cpus=3))
    mmu.map(0x1000, K4, global_=True)
    mmu.access(chunk([7, 0x1000], op=[S, UM], cpu=[2, 0]))
    s = mmu.stats
    assert s["cpu0.ipis_sent"] == 2 and s["cpu2.ipis_received"] == 1


def test_api_unmap_and_protect_invalidate_every_cpu():
    mmu = MMU(cfg(dtlb(), cpus=2))
    mmu.map(0x1000, K4)
    mmu.access(chunk([0x1000, 0x1000], cpu=[0, 1]))
    mmu.protect(0x1000, K4, writable=False)
    r = mmu.access(chunk([0x1000, 0x1000], op=[1, 0], cpu=[0, 1]))
    assert r.where.tolist() == [3, 2]
    assert r.fault[0] & 0xFFFF == 7                      # P | W | U
    assert mmu.stats["cpu0.faults_protection"] == 1


# ---------------------------------------------------------------- accesses and faults

def test_page_crossing_access_translates_both_pages():
    mmu = MMU(cfg(dtlb()))
    r = mmu.access(chunk([0x1FFC, 0x3000], size=[8, 4]))
    s = mmu.stats
    assert (s["cpu0.accesses"], s["cpu0.translations"], s["cpu0.split_accesses"]) == (2, 3, 1)
    assert r.where.tolist() == [2, 2] and s["cpu0.walks"] == 3


def test_faults_by_kind():
    mmu = MMU(cfg(dtlb()))
    mmu.map(0x1000, K4, writable=False)
    r = mmu.access(chunk([0x1000, 1 << 47, 0x1000], op=[1, 0, 0]))
    assert r.where.tolist() == [3, 3, 2]
    assert r.fault[1] == 0x80000000 and r.paddr[0] == 0
    s = mmu.stats
    assert (s["cpu0.faults"], s["cpu0.faults_protection"], s["cpu0.faults_outside"]) == (2, 1, 1)
    assert s["cpu0.walks"] == 3 and s["cpu0.dtlb.accesses"] == 1


def test_reserved_bit_fault():
    mmu = MMU(cfg(dtlb(), maxphyaddr=40))
    mmu.map(0x1000, K4)
    pt = mmu.page_table(0)
    pa = pt.entry_paddr(0x1000, 0)
    pt.write_entry(pa, pt.read_entry(pa) | (1 << 51))
    assert where(mmu, 0x1000) == [3]
    assert mmu.stats["cpu0.faults_reserved"] == 1


def test_outputs_and_walk_entries():
    mmu = MMU(cfg(dtlb()))
    mmu.map(0x1000, K4, pfn=0x42)
    r = mmu.access(chunk([0x1234, 0x1238, 0, 0x1234], op=[0, 0, FL, 2]), record=True)
    assert r.paddr.tolist() == [0x42234, 0x42238, 0, 0x42234]
    assert r.where.tolist() == [2, 0, 255, 2]            # ifetch: the instruction side
    assert r.walk_entries.shape == (4, 4)
    assert (r.walk_entries[0] != 2**64 - 1).all()
    assert (r.walk_entries[1] == 2**64 - 1).all()
    pt = mmu.page_table(0)
    assert int(r.walk_entries[0][3]) == pt.entry_paddr(0x1234, 0)


def test_translate():
    mmu = MMU(cfg(dtlb()))
    mmu.map(0x1000, K4, pfn=7)
    assert mmu.translate([0x1010]).tolist() == [0x7010]


# ---------------------------------------------------------------- replay plumbing

def _mixed_trace(n=3000, seed=1, cpus=2):
    rng = np.random.default_rng(seed)
    addr = rng.integers(0, 1 << 26, n, dtype=np.uint64)
    op = rng.choice([0, 0, 0, 1, 2, 3, S, INV, FL, FA, MP, UM], n).astype(np.uint8)
    asid_ops = (op == S) | (op == FA)
    addr[asid_ops] = rng.integers(0, 3, int(asid_ops.sum()))
    addr[op == FL] = rng.integers(0, 4, int((op == FL).sum()))
    return Trace.from_arrays(addr, op=op, cpu=rng.integers(0, cpus, n).astype(np.uint16),
                             size=rng.integers(0, 16, n).astype(np.uint16))


@pytest.mark.parametrize("inclusion", ["inclusive", "non-inclusive", "exclusive"])
def test_chunking_invariance(inclusion):
    c = cfg(dtlb(8, 4), stlb(16, 4, ("4K", "2M")), cpus=2, pcid=True, huge_pages="thp",
            inclusion=inclusion, psc={"pde": (4, 2)})
    t = _mixed_trace()
    whole = MMU(c).replay(t, chunk_size=1 << 20, progress=False)
    pieces = MMU(c).replay(t, chunk_size=97, progress=False)
    assert whole.to_dict() == pieces.to_dict()
    assert whole["total.accesses"] > 0 and whole["cpu1.psc_pde.accesses"] > 0


def test_replay_inputs_agree():
    va = np.random.default_rng(0).integers(0, 1 << 24, 5000, dtype=np.uint64)
    ref = MMU(cfg(dtlb())).replay(va, progress=False).to_dict()
    assert MMU(cfg(dtlb())).replay(Trace.from_arrays(va), progress=False).to_dict() == ref
    chunks = [TraceChunk(va[i:i + 700]) for i in range(0, len(va), 700)]
    assert MMU(cfg(dtlb())).replay(iter(chunks), progress=False).to_dict() == ref
    mmu = MMU(cfg(dtlb()))
    mmu.replay(va[:1000], progress=False)
    assert mmu.replay(va[1000:], progress=False).to_dict() == ref
    assert mmu.position == 5000


def test_ctrl_c_returns_partial_stats():
    def chunks():
        yield TraceChunk(np.arange(0, 100 * K4, K4, dtype=np.uint64))
        yield TraceChunk(np.arange(0, 50 * K4, K4, dtype=np.uint64))
        raise KeyboardInterrupt

    mmu = MMU(cfg(dtlb()))
    s = mmu.replay(chunks(), progress=False)
    assert s.interrupted and s["interrupted"] == 1
    assert s["cpu0.accesses"] == 150 and mmu.position == 150


def test_kmap_ops_are_rejected_naming_the_record():
    mmu = MMU(cfg(dtlb()))
    good = TraceChunk(np.arange(10, dtype=np.uint64))
    bad = TraceChunk(np.arange(10, dtype=np.uint64), op=np.array([0] * 5 + [10] + [0] * 4,
                                                                  np.uint8))
    with pytest.raises(ValueError, match="record 15.*kmap"):
        mmu.replay([good, bad], progress=False)
    assert mmu.stats["cpu0.accesses"] == 10 and mmu.position == 10


def test_input_errors():
    mmu = MMU(cfg(dtlb(), cpus=2))
    with pytest.raises(ValueError, match="record 1: cpu 2"):
        mmu.access(chunk([0, 0], cpu=[0, 2]))
    with pytest.raises(ValueError, match="ASID 4096"):
        mmu.access(chunk([4096], op=[S]))
    with pytest.raises(TypeError):
        mmu.access(np.zeros(3, np.float64))


def test_memory_error_names_the_record():
    mmu = MMU(cfg(dtlb(), phys_mem=64 * K4))
    va = np.arange(0, 200 * K4, K4, dtype=np.uint64)
    with pytest.raises(MemoryError, match="trace record"):
        mmu.replay(va, progress=False)
    assert 0 < mmu.position < 200


def test_stats_object():
    mmu = MMU(cfg(dtlb(), stlb(), psc={"pde": (4, 4)}))
    a = mmu.replay(np.arange(0, 64 * K4, K4, dtype=np.uint64), progress=False)
    b = mmu.replay(np.arange(0, 64 * K4, K4, dtype=np.uint64), progress=False)
    assert isinstance(a, Stats) and (b - a)["cpu0.accesses"] == 64
    assert "cpu0.psc_pde.hits" in a and "cpu0.psc_pdpte.hits" not in a
    text = str(b)
    assert "dtlb" in text and "refs/walk" in text
    assert a.to_dict()["cpu0.walks"] == a["cpu0.walks"]
    mmu.reset_stats()
    assert mmu.stats["cpu0.accesses"] == 0


def test_from_preset_and_overrides():
    mmu = MMU.from_preset("skylake", paging="x86_64", cpus=2, pcid=True)
    assert mmu.cpus == 2 and mmu.config.pcid
    s = mmu.replay(np.arange(0, 1 << 22, 64, dtype=np.uint64), progress=False)
    assert s["cpu0.dtlb_4k.misses"] == 1024
    assert MMU.from_preset(mmu.config).cpus == 2


# ---------------------------------------------------------------- cross-check

def test_pycachesim_one_level_dtlb():
    cachesim = pytest.importorskip("cachesim")
    va = np.random.default_rng(3).integers(0, 1 << 24, 20000, dtype=np.uint64)
    mmu = MMU(cfg(dtlb(64, 4)))
    s = mmu.replay(va, progress=False)
    mem = cachesim.MainMemory()
    cache = cachesim.Cache("TLB", 16, 4, 4096, "LRU")
    mem.load_to(cache)
    mem.store_from(cache)
    sim = cachesim.CacheSimulator(first_level=cache, main_memory=mem)
    sim.load(va.tolist(), length=1)
    assert s["cpu0.dtlb.misses"] == cache.stats()["MISS_count"]
