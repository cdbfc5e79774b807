"""The reference MMU (tests/reference_mmu.py) pinned to docs/mmu.md by hand-worked
scenarios: small configurations, counters counted by hand from the doc's rules.

These are the executable reading of docs/mmu.md. Where the doc can be read more than one
way the choice is marked ``# READING:``. The readings:

* R1 total.* sums the flat per-CPU counters only (not structures, not PSCs).
* R2 an L2 miss is charged to S2 (the L2 structure taking the size) in every inclusion
  mode, also exclusive where the walk does not fill S2.
* R3 back-invalidation drops the L1 entries with exactly the victim's tag (page number,
  page size, ASID or global); they count in back_invalidations and in the L1 structure's
  invalidations.
* R4 exclusive: an L2 hit whose size no S1 takes leaves the entry in L2.
* R5 a record's `fault` is the access's fault on whichever page; paddr/where/walk_entries
  are those of the first page.
* R6 a byte range past 2**64-1 (or past 2**32 in the 32-bit modes) makes one more
  translation that faults `outside` (a walk, no wrap to 0).
* R7 UNMAP invalidates on every CPU the entries overlapping the unmapped page (splintered
  pieces included); the issuer drops all PSC entries of the ASID (INVLPG), IPI'd CPUs the
  ASID's PSC entries whose region overlaps the page; CPUs outside the cpumask drop the
  ASID's (non-global) entries for the page and its PSC entries for the page; the issuer's
  INVLPG does not count in invlpgs.
* R8 FLUSH with bit 1 counts `flushes` on the issuing CPU only.
* R9 a MAP op is not a demand fault (demand_faults unchanged).
* R10 an address space is created by SWITCH, MAP/UNMAP, MMU.map/unmap/protect and by a
  walk in it; not by INVLPG/FLUSH_ASID; ASID 0 exists only once used.
* R11 a walk that faults drops the PSC entries of its address for the walking ASID only.
* R12 each ASID's page table has its own allocator over phys_mem, seeded alike.
* R13 PSC counters exist for every level in config.psc, even when the mode has no such
  level (then 0); walk_refs_{pte..pml5e} exist in every mode.
* R14 pdpte_loads is not a section-6 counter.
* R15 an address outside the linear space is a translation that reaches the walker:
  counts l1_misses, l2_misses and walks.
* R17 exclusive: a victim whose size the L2 structure only splinters goes in as the
  piece at the victim's base address.
* R18 a hit (L1 or L2) is on the first structure in configuration order that holds the
  translation.
* R16 MMU.unmap/MMU.protect "invalidate the range on every CPU" as INVLPG would for
  each page: the ASID's and global TLB entries overlapping the range and every PSC
  entry of the ASID, on every CPU; no IPIs or other counters.
"""
import numpy as np
import pytest
from types import SimpleNamespace

from pyapi.config import MMUConfig, TLBConfig
from reference_mmu import ReferenceMMU

L, S, I, M = 0, 1, 2, 3
SWITCH, INVLPG, FLUSH, FLUSH_ASID, MAP, UNMAP = 4, 5, 6, 7, 8, 9
PF, ERR_P, ERR_U = 0x40000000, 1, 4


def tlb(name, level, side, entries, ways=None, sizes=("4K",), policy="lru", splinter=None):
    return TLBConfig(name, level=level, side=side, entries=entries,
                     ways=entries if ways is None else ways, page_sizes=tuple(sizes),
                     policy=policy, splinter=dict(splinter or {}))


def config(*tlbs, **kw):
    return MMUConfig(name="t", tlbs=tuple(tlbs), **kw)


def chunk(records):
    """records: (addr, op[, size[, cpu]]) tuples."""
    rec = [tuple(r) + (0,) * (4 - len(r)) for r in records]
    return SimpleNamespace(addr=np.array([r[0] for r in rec], np.uint64),
                           op=np.array([r[1] for r in rec], np.uint8),
                           size=np.array([r[2] for r in rec], np.uint16),
                           cpu=np.array([r[3] for r in rec], np.uint16))


def run(mmu, records, record=False):
    return mmu.access(chunk(records), record=record)


def pick(d, prefix):
    return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)
            and "." not in k[len(prefix):]}


def test_l1_hits_misses_lru_and_demand_walk_refs():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 2)))
    run(mmu, [(0x1000, L), (0x1008, L), (0x2000, L), (0x1000, L), (0x3000, L), (0x2000, L)])
    d = mmu.to_dict()
    # 0x1000: PML4E not present (1 ref), demand 4K, retry 4 refs; 0x2000/0x3000: the PTE
    # is not present (4 refs) + retry 4; 0x2000 again: mapped, 4 refs
    assert pick(d, "cpu0.dtlb.") == dict(accesses=6, hits=2, misses=4, fills=4,
                                         evictions=2, invalidations=0)
    c = pick(d, "cpu0.")
    assert (c["accesses"], c["translations"], c["l1_hits"], c["l1_misses"], c["l2_hits"],
            c["l2_misses"], c["walks"], c["walk_refs"], c["demand_faults"]) == \
        (6, 6, 2, 4, 0, 4, 4, 25, 3)
    assert (c["walk_refs_pml4e"], c["walk_refs_pdpte"], c["walk_refs_pde"],
            c["walk_refs_pte"], c["walk_refs_pml5e"]) == (7, 6, 6, 6, 0)
    assert d["total.walk_refs"] == 25 and d["asids"] == 1 and d["interrupted"] == 0


def test_counter_names_are_the_flat_section6_names():
    cfg = config(tlb("itlb", 1, "instruction", 2), tlb("dtlb", 1, "data", 2),
                 tlb("stlb", 2, "unified", 4, sizes=("4K", "2M")),
                 psc={"pde": (4, 4), "pdpte": (2, 2)})
    d = ReferenceMMU(cfg, cpus=2).to_dict()
    per_cpu = ["accesses", "translations", "split_accesses", "l1_hits", "l1_misses",
               "l2_hits", "l2_misses", "walks", "walk_refs", "walk_refs_pte",
               "walk_refs_pde", "walk_refs_pdpte", "walk_refs_pml4e", "walk_refs_pml5e",
               "faults", "faults_not_present", "faults_protection", "faults_reserved",
               "faults_outside", "demand_faults", "switches", "invlpgs", "flushes",
               "flush_asids", "maps", "unmaps", "shootdowns", "ipis_sent", "ipis_received",
               "back_invalidations"]
    want = {"asids", "interrupted"} | {f"total.{k}" for k in per_cpu}
    for n in range(2):
        want |= {f"cpu{n}.{k}" for k in per_cpu}
        for s in ("itlb", "dtlb", "stlb"):
            want |= {f"cpu{n}.{s}.{k}" for k in ("accesses", "hits", "misses", "evictions",
                                                  "fills", "invalidations")}
        for p in ("psc_pde", "psc_pdpte"):
            want |= {f"cpu{n}.{p}.{k}" for k in ("accesses", "hits", "misses")}
    # READING: R1 (total.* is per-CPU counters only), R13, R14
    assert set(d) == want
    # READING: R10: no address space exists before anything used one
    assert d["asids"] == 0


def two_level(l1, l2, inclusion):
    return ReferenceMMU(config(tlb("dtlb", 1, "data", l1), tlb("stlb", 2, "unified", l2)),
                        inclusion=inclusion)


A, B, C = 0x1000, 0x2000, 0x3000


def test_inclusive_back_invalidation():
    mmu = two_level(2, 2, "inclusive")
    run(mmu, [(A, L), (B, L), (A, L), (C, L), (A, L)])
    d = mmu.to_dict()
    # C's L2 fill evicts A (LRU of L2) -> A leaves L1; A's walk then evicts B from L2 -> B
    # leaves L1. READING: R3 (counted in dtlb.invalidations too)
    assert pick(d, "cpu0.dtlb.") == dict(accesses=5, hits=1, misses=4, fills=4,
                                         evictions=0, invalidations=2)
    assert pick(d, "cpu0.stlb.") == dict(accesses=4, hits=0, misses=4, fills=4,
                                         evictions=2, invalidations=0)
    assert d["cpu0.back_invalidations"] == 2 and d["cpu0.walks"] == 4


def test_non_inclusive_keeps_l1_entries():
    mmu = two_level(2, 2, "non-inclusive")
    run(mmu, [(A, L), (B, L), (A, L), (C, L), (A, L)])
    d = mmu.to_dict()
    assert pick(d, "cpu0.dtlb.") == dict(accesses=5, hits=2, misses=3, fills=3,
                                         evictions=1, invalidations=0)
    assert pick(d, "cpu0.stlb.") == dict(accesses=3, hits=0, misses=3, fills=3,
                                         evictions=1, invalidations=0)
    assert d["cpu0.back_invalidations"] == 0 and d["cpu0.walks"] == 3


def test_l2_hit_fills_l1():
    mmu = two_level(1, 4, "inclusive")
    out = run(mmu, [(A, L), (B, L), (A, L), (A, L)], record=True)
    d = mmu.to_dict()
    assert out.where.tolist() == [2, 2, 1, 0]
    assert (d["cpu0.l1_hits"], d["cpu0.l1_misses"], d["cpu0.l2_hits"], d["cpu0.l2_misses"]) \
        == (1, 3, 1, 2)
    assert pick(d, "cpu0.stlb.") == dict(accesses=3, hits=1, misses=2, fills=2,
                                         evictions=0, invalidations=0)
    assert pick(d, "cpu0.dtlb.") == dict(accesses=4, hits=1, misses=3, fills=3,
                                         evictions=2, invalidations=0)


def test_exclusive_victims_move_to_l2():
    mmu = two_level(1, 2, "exclusive")
    out = run(mmu, [(A, L), (B, L), (A, L), (C, L), (B, L)], record=True)
    d = mmu.to_dict()
    assert out.where.tolist() == [2, 2, 1, 2, 1]
    assert pick(d, "cpu0.dtlb.") == dict(accesses=5, hits=0, misses=5, fills=5,
                                         evictions=4, invalidations=0)
    # READING: R2: the three walks' L2 misses are charged to stlb though it is not filled;
    # fills: victims A, B, A, C; the two hits remove their entry (not an invalidation)
    assert pick(d, "cpu0.stlb.") == dict(accesses=5, hits=2, misses=3, fills=4,
                                         evictions=0, invalidations=0)
    assert d["cpu0.walks"] == 3 and d["cpu0.l2_hits"] == 2


def test_exclusive_without_s1_fills_s2_and_keeps_it():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 2),
                              tlb("stlb", 2, "unified", 4, sizes=("4K", "2M"))),
                       inclusion="exclusive", huge_pages="thp")
    out = run(mmu, [(0x200000, L), (0x200040, L), (0x300000, L)], record=True)
    d = mmu.to_dict()
    # a 2M translation: no L1 structure takes 2M, so the walk fills stlb; READING: R4
    # the hits leave it there
    assert out.where.tolist() == [2, 1, 1]
    assert pick(d, "cpu0.stlb.") == dict(accesses=3, hits=2, misses=1, fills=1,
                                         evictions=0, invalidations=0)
    assert pick(d, "cpu0.dtlb.")["accesses"] == 0 and d["cpu0.l1_misses"] == 3


def test_splinter_and_translation_size_from_supplying_entry():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4, splinter={"2M": "4K"}),
                              tlb("stlb", 2, "unified", 4, sizes=("4K", "2M"))),
                       huge_pages="thp")
    out = run(mmu, [(0x200000, L), (0x201000, L), (0x200800, L), (0x200FFC, L, 8),
                    (0x3FFFFC, L, 8)], record=True)
    d = mmu.to_dict()
    # 0x200FFC+8: the L1 piece is 4K, so the access crosses into 0x201000 (another piece);
    # 0x3FFFFC+8: an L2 hit supplies 2M, then 0x400000 is a new 2M page (walk, demand)
    assert out.where.tolist() == [2, 1, 0, 0, 1]
    c = pick(d, "cpu0.")
    assert (c["accesses"], c["translations"], c["split_accesses"], c["l1_hits"],
            c["l1_misses"], c["l2_hits"], c["l2_misses"], c["walks"], c["walk_refs"],
            c["demand_faults"]) == (5, 7, 2, 3, 4, 2, 2, 2, 10, 2)
    assert pick(d, "cpu0.dtlb.") == dict(accesses=7, hits=3, misses=4, fills=4,
                                         evictions=0, invalidations=0)
    assert pick(d, "cpu0.stlb.") == dict(accesses=4, hits=2, misses=2, fills=2,
                                         evictions=0, invalidations=0)
    # paddr: the 2M page at 0x200000 took the first free 2M frame after the tables
    assert out.paddr[2] == out.paddr[0] + 0x800


def test_uncharged_misses_no_structure_for_size_and_faults():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)), huge_pages="thp")
    run(mmu, [(0x200000, L), (0x800000000000, L)])
    d = mmu.to_dict()
    # the 2M translation has no L1 taker; the non-canonical address faults (READING: R15)
    assert pick(d, "cpu0.dtlb.")["accesses"] == 0
    c = pick(d, "cpu0.")
    assert (c["l1_misses"], c["l2_misses"], c["walks"], c["faults"], c["faults_outside"],
            c["translations"]) == (2, 2, 2, 1, 1, 2)


def test_protection_fault_first_and_second_page():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)))
    mmu.map(0x5000, "4K", user=False)          # frame 1, tables 2 (PDPT), 3 (PD), 4 (PT)
    mmu.map(0x6000, "4K")                      # frame 5
    mmu.map(0x7000, "4K", user=False)          # frame 6
    out = run(mmu, [(0x5FFC, L, 8), (0x6FFC, L, 8)], record=True)
    d = mmu.to_dict()
    assert out.where.tolist() == [3, 2]
    # READING: R5: the second record's fault is its second page's
    assert out.fault.tolist() == [PF | ERR_P | ERR_U, PF | ERR_P | ERR_U]
    assert out.paddr.tolist() == [0, 0x5FFC]
    assert out.walk_entries[0].tolist() == [0x0, 0x2000, 0x3000, 0x4000 + 5 * 8]
    c = pick(d, "cpu0.")
    assert (c["translations"], c["split_accesses"], c["faults"], c["faults_protection"],
            c["walks"], c["walk_refs"]) == (3, 1, 2, 2, 3, 12)
    assert pick(d, "cpu0.dtlb.") == dict(accesses=1, hits=0, misses=1, fills=1,
                                         evictions=0, invalidations=0)


def test_crossing_the_top_of_the_64bit_space():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)))
    mmu.map(0xFFFFFFFFFFFFF000, "4K")
    out = run(mmu, [(0xFFFFFFFFFFFFFFFE, L, 4)], record=True)
    c = pick(mmu.to_dict(), "cpu0.")
    # READING: R6: the byte range runs past 2**64 - 1: a second, faulting translation
    assert (c["translations"], c["split_accesses"], c["walks"], c["faults_outside"]) == \
        (2, 1, 2, 1)
    assert out.where.tolist() == [2] and out.fault.tolist() == [0x80000000]


def test_api_unmap_and_protect_invalidate_on_every_cpu():
    cfg = config(tlb("dtlb", 1, "data", 4), psc={"pde": (4, 4)})
    for op in ("unmap", "protect"):
        mmu = ReferenceMMU(cfg, cpus=2)
        run(mmu, [(0x1000, L, 0, 0), (0x1000, L, 0, 1), (0x40000000, L, 0, 1)])
        if op == "unmap":
            assert mmu.unmap(0x1000, "4K") == 1
        else:
            assert mmu.protect(0x1000, "4K", writable=False) == 1
        before = mmu.to_dict()
        out = run(mmu, [(0x40000000, L, 0, 1), (0x1000, S, 0, 1)], record=True)
        d = mmu.to_dict()
        # READING: R16: cpu1 lost its 0x1000 entry and every PSC entry of ASID 0, so
        # 0x40000000 (still in its TLB) hits and 0x1000 walks from the root
        assert d["cpu0.dtlb.invalidations"] == 1 and d["cpu1.dtlb.invalidations"] == 1
        assert out.where.tolist() == [0, 2 if op == "unmap" else 3]
        assert d["cpu1.psc_pde.hits"] == before["cpu1.psc_pde.hits"]
        assert d["cpu1.ipis_received"] == 0 and d["cpu0.shootdowns"] == 0


def test_crossing_the_top_of_the_32bit_space():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)), paging="x86_32")
    out = run(mmu, [(0xFFFFFFFE, S, 4)], record=True)
    c = pick(mmu.to_dict(), "cpu0.")
    # READING: R6: the second page is outside the space; the access stops there
    assert (c["translations"], c["split_accesses"], c["walks"], c["faults_outside"],
            c["walk_refs"]) == (2, 1, 2, 1, 3)
    assert out.where.tolist() == [2] and out.fault.tolist() == [0x80000000]


def test_switch_without_and_with_pcid_and_global_entries():
    for pcid, hits, inval in ((False, 1, 2), (True, 2, 0)):
        mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)), pcid=pcid)
        mmu.map(0x10000, "4K", asid=0, global_=True)
        out = run(mmu, [(0x10000, L), (0x20000, L), (1, SWITCH), (0x10000, L),
                        (0x20000, L), (0, SWITCH), (0x20000, L)], record=True)
        d = mmu.to_dict()
        # the global entry hits in ASID 1 (whose page table does not even map it)
        assert out.where.tolist()[3] == 0
        assert d["cpu0.l1_hits"] == hits and d["cpu0.dtlb.invalidations"] == inval
        assert d["cpu0.switches"] == 2 and d["asids"] == 2
        assert out.where.tolist()[:3] == [2, 2, 255]


def test_switch_to_the_current_asid_flushes_tlb_and_psc_without_pcid():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4), psc={"pde": (4, 4)}))
    run(mmu, [(0x1000, L), (0, SWITCH), (0x1000, L), (0x2000, L)])
    d = mmu.to_dict()
    # 0x1000: 2 PDE-cache probes (fault + retry) miss; after the switch the TLB and the
    # PDE cache are empty: 0x1000 misses both (1 probe), 0x2000 then hits the PDE cache
    assert pick(d, "cpu0.psc_pde.") == dict(accesses=5, hits=1, misses=4)
    assert d["cpu0.dtlb.invalidations"] == 1 and d["cpu0.l1_hits"] == 0


def test_psc_entries_are_tagged_with_the_asid():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4), psc={"pde": (4, 4)}), pcid=True)
    mmu.map(0x1000, "4K", asid=0)
    mmu.map(0x1000, "4K", asid=1)
    run(mmu, [(0x1000, L), (1, SWITCH), (0x1008, L), (0, SWITCH), (0x1000, L),
              (0x3000, L)])
    d = mmu.to_dict()
    # ASID 1 cannot use ASID 0's PDE entry; 0x1000 in ASID 0 hits the TLB; 0x3000's walk
    # hits ASID 0's PDE entry, faults on the PTE (READING: R11 drops ASID 0's entry), and
    # the retry misses
    assert pick(d, "cpu0.psc_pde.") == dict(accesses=4, hits=1, misses=3)
    assert d["cpu0.walks"] == 3 and d["cpu0.walk_refs"] == 4 + 4 + 1 + 4


def test_invlpg_this_asid_and_global_and_psc():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4), psc={"pde": (4, 4)}), pcid=True)
    out = run(mmu, [(0x1000, L), (1, SWITCH), (0x1000, L), (0x1000, INVLPG), (0, SWITCH),
                    (0x1000, L), (0x2000, L), (1, SWITCH), (0x1000, L)], record=True)
    d = mmu.to_dict()
    assert out.where.tolist() == [2, 255, 2, 255, 255, 0, 2, 255, 2]
    assert pick(d, "cpu0.dtlb.") == dict(accesses=5, hits=1, misses=4, fills=4,
                                         evictions=0, invalidations=1)
    assert pick(d, "cpu0.psc_pde.") == dict(accesses=7, hits=1, misses=6)
    assert (d["cpu0.walks"], d["cpu0.walk_refs"], d["cpu0.demand_faults"],
            d["cpu0.invlpgs"]) == (4, 19, 3, 1)

    # INVLPG drops a global entry and every page size of the address
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4, sizes=("4K", "2M"))),
                       huge_pages="thp")
    mmu.map(0x1000, "4K", global_=True)
    run(mmu, [(0x1000, L), (0x400000, L), (0x1000, INVLPG), (0x400123, INVLPG)])
    assert mmu.to_dict()["cpu0.dtlb.invalidations"] == 2


def test_flush_flags_and_all_cpu_flush_ipis():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)), cpus=2)
    mmu.map(0x10000, "4K", global_=True)
    run(mmu, [(0x10000, L, 0, 0), (0x20000, L, 0, 0), (0x10000, L, 0, 1), (0x20000, L, 0, 1),
              (0, FLUSH, 0, 0), (1, FLUSH, 0, 1), (3, FLUSH, 0, 0)])
    d = mmu.to_dict()
    assert d["cpu0.dtlb.invalidations"] == 2 and d["cpu1.dtlb.invalidations"] == 2
    # READING: R8
    assert (d["cpu0.flushes"], d["cpu1.flushes"]) == (2, 1)
    assert (d["cpu0.shootdowns"], d["cpu0.ipis_sent"], d["cpu1.ipis_received"]) == (1, 1, 1)
    assert d["total.ipis_sent"] == d["total.ipis_received"] == 1

    one = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)), cpus=1)
    run(one, [(2, FLUSH)])
    assert (one.to_dict()["cpu0.shootdowns"], one.to_dict()["cpu0.ipis_sent"]) == (0, 0)


def test_flush_empties_the_psc_of_each_flushed_cpu():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4), psc={"pde": (4, 4)}), cpus=2)
    run(mmu, [(0x1000, L, 0, 0), (0x1000, L, 0, 1), (2, FLUSH, 0, 1), (0x2000, L, 0, 0),
              (0x2000, L, 0, 1)])
    d = mmu.to_dict()
    # cpu0: fault probe + retry miss, then 0x2000: miss (flushed) + retry miss -> 4, 0 hits
    # cpu1: 0x1000 is mapped: 1 miss; 0x2000 mapped by cpu0 already: 1 miss
    assert pick(d, "cpu0.psc_pde.") == dict(accesses=4, hits=0, misses=4)
    assert pick(d, "cpu1.psc_pde.") == dict(accesses=2, hits=0, misses=2)


def test_flush_asid():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)), pcid=True)
    mmu.map(0x10000, "4K", global_=True)
    run(mmu, [(0x1000, L), (0x10000, L), (1, SWITCH), (0x1000, L), (0, FLUSH_ASID),
              (0, SWITCH), (0x1000, L), (0x10000, L)])
    d = mmu.to_dict()
    # ASID 0's 0x1000 goes; the global entry and ASID 1's entry stay
    assert d["cpu0.dtlb.invalidations"] == 1 and d["cpu0.flush_asids"] == 1
    assert d["cpu0.l1_hits"] == 1 and d["cpu0.walks"] == 4


def test_map_op():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)))
    out = run(mmu, [(0x5000, MAP), (0x5000, L), (0x5123, MAP), (0x6000, L)], record=True)
    d = mmu.to_dict()
    assert out.where.tolist() == [255, 2, 255, 2]
    # READING: R9: the MAP is no demand fault; 0x5000 walks 4 refs; 0x6000 1+... no: PTE
    # not present (4) + retry (4)
    assert (d["cpu0.maps"], d["cpu0.demand_faults"], d["cpu0.walk_refs"]) == (2, 1, 12)
    assert d["cpu0.dtlb.fills"] == 2

    thp = ReferenceMMU(config(tlb("dtlb", 1, "data", 4, sizes=("4K", "2M"))),
                       huge_pages="thp")
    run(thp, [(0x200000, MAP), (0x3FF000, L)])
    # a 2M page: a 3-reference walk
    assert (thp.to_dict()["cpu0.walk_refs"], thp.to_dict()["cpu0.demand_faults"]) == (3, 0)


def test_unmap_shootdowns_cpumask_deferred_and_global():
    cfg = config(tlb("dtlb", 1, "data", 4))
    mmu = ReferenceMMU(cfg, cpus=3, pcid=True)
    run(mmu, [(0x1000, L, 0, 0), (0x1000, L, 0, 1), (0x1000, L, 0, 2), (1, SWITCH, 0, 2),
              (0x1000, UNMAP, 0, 0)])
    d = mmu.to_dict()
    assert [d[f"cpu{n}.dtlb.invalidations"] for n in range(3)] == [1, 1, 1]
    assert (d["cpu0.unmaps"], d["cpu0.shootdowns"], d["cpu0.ipis_sent"]) == (1, 1, 1)
    assert [d[f"cpu{n}.ipis_received"] for n in range(3)] == [0, 1, 0]
    assert d["cpu0.invlpgs"] == 0                           # READING: R7
    run(mmu, [(0, SWITCH, 0, 2), (0x1000, L, 0, 2), (0x999000, UNMAP, 0, 0)])
    d = mmu.to_dict()
    # the page is gone: cpu2 misses and demand-faults it back; an UNMAP of an unmapped
    # address counts and does nothing
    assert d["cpu2.demand_faults"] == 1 and d["cpu2.l1_hits"] == 0
    assert (d["cpu0.unmaps"], d["cpu0.shootdowns"], d["cpu0.ipis_sent"]) == (2, 1, 1)

    # a global leaf: an IPI to every other CPU, whatever its ASID
    mmu = ReferenceMMU(cfg, cpus=3, pcid=True)
    mmu.map(0x40000, "4K", global_=True)
    run(mmu, [(0x40000, L, 0, 0), (0x40000, L, 0, 2), (1, SWITCH, 0, 2), (0x40000, L, 0, 2),
              (0x40000, UNMAP, 0, 0)])
    d = mmu.to_dict()
    assert d["cpu2.l1_hits"] == 1
    assert (d["cpu0.shootdowns"], d["cpu0.ipis_sent"]) == (1, 2)
    assert [d[f"cpu{n}.ipis_received"] for n in range(3)] == [0, 1, 1]
    assert [d[f"cpu{n}.dtlb.invalidations"] for n in range(3)] == [1, 0, 1]


def test_unmap_huge_page_drops_splintered_pieces():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4, splinter={"2M": "4K"})),
                       huge_pages="thp", cpus=2)
    run(mmu, [(0x200000, L, 0, 0), (0x201000, L, 0, 0), (0x203000, L, 0, 1),
              (0x200000, UNMAP, 0, 1)])
    d = mmu.to_dict()
    # READING: R7: every entry overlapping the unmapped 2M page goes
    assert (d["cpu0.dtlb.invalidations"], d["cpu1.dtlb.invalidations"]) == (2, 1)
    assert (d["cpu1.shootdowns"], d["cpu1.ipis_sent"], d["cpu0.ipis_received"]) == (1, 1, 1)


def test_ifetch_uses_the_instruction_side_and_unified_l2():
    mmu = ReferenceMMU(config(tlb("itlb", 1, "instruction", 2), tlb("dtlb", 1, "data", 2),
                              tlb("stlb", 2, "unified", 8)))
    out = run(mmu, [(0x1000, L), (0x1000, I), (0x1000, I), (0x1000, M)], record=True)
    d = mmu.to_dict()
    assert out.where.tolist() == [2, 1, 0, 0]
    assert pick(d, "cpu0.itlb.") == dict(accesses=2, hits=1, misses=1, fills=1,
                                         evictions=0, invalidations=0)
    assert pick(d, "cpu0.dtlb.")["hits"] == 1


def test_paging_modes_walk_references():
    for paging, huge, va, refs in (("x86_32", "never", 0x1000, 1 + 2),
                                   ("x86_32", "thp", 0x400000, 1 + 1),
                                   ("pae", "never", 0x1000, 1 + 2),
                                   ("pae", "thp", 0x200000, 1 + 1),
                                   ("x86_64", "always", 0x40000000, 1 + 2),
                                   ("la57", "never", 0x1000, 1 + 5)):
        mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)), paging=paging, huge_pages=huge)
        out = run(mmu, [(va, L)], record=True)
        d = mmu.to_dict()
        assert d["cpu0.walk_refs"] == refs, paging
        assert out.walk_entries.shape[1] == {"x86_32": 2, "pae": 2, "x86_64": 4,
                                             "la57": 5}[paging]


def test_kmap_ops_rejected_and_cpu_range():
    mmu = ReferenceMMU(config(tlb("dtlb", 1, "data", 4)), cpus=2)
    run(mmu, [(0x1000, L)])
    with pytest.raises(ValueError):
        run(mmu, [(0x2000, L), (5, 10)])
    assert mmu.to_dict()["cpu0.accesses"] == 1       # the rejected chunk did not run
    with pytest.raises(ValueError):
        run(mmu, [(0x2000, L, 0, 2)])


def test_reset_stats_and_chunking_invariance():
    rng = np.random.default_rng(1)
    recs = [(int(rng.integers(0, 16)) << 12 | int(rng.integers(0, 4096)),
             int(rng.choice([0, 1, 2, 3, 5, 6])), int(rng.integers(0, 9)), int(rng.integers(0, 2)))
            for _ in range(300)]
    cfg = config(tlb("dtlb", 1, "data", 4, 2), tlb("itlb", 1, "instruction", 2),
                 tlb("stlb", 2, "unified", 8, 2), psc={"pde": (2, 2)})
    whole, split = ReferenceMMU(cfg, cpus=2), ReferenceMMU(cfg, cpus=2)
    run(whole, recs)
    for lo in range(0, 300, 37):
        run(split, recs[lo:lo + 37])
    assert whole.to_dict() == split.to_dict()
    whole.reset_stats()
    assert all(v == 0 for k, v in whole.to_dict().items() if k != "asids")
