"""Differential tests: mmucore.pagetable (through pyapi.PageTable) against the pure-Python
reference of tests/reference_pagetable.py, on random programs of map/unmap/protect,
raw entry edits (reserved bits), PSC invalidations and walks, in every mode, with and
without paging-structure caches and demand paging. Translations, fault codes, reference
counts, page sizes, recorded entry addresses, every page-table page's contents (A/D bits
included), the allocator's choices and the counters must be identical."""
import numpy as np
import pytest
from hypothesis import event, given, note, strategies as st

from mmucore._types import POLICIES
from pyapi.pagetable import PageTable
from pyapi.pagetable import ENTRY_PADDR_NONE
from reference_pagetable import ReferencePageTable, SIZE_BYTES, bits

MODES = ["x86_32", "pae", "x86_64", "la57"]
SIZES = {"x86_32": ["4K", "4M"], "pae": ["4K", "2M"], "x86_64": ["4K", "2M", "1G"],
         "la57": ["4K", "2M", "1G"]}
# a few 1G regions per mode (shared tables, conflicts, high canonical halves)
REGIONS = {"x86_32": [0, 1 << 30, 3 << 30], "pae": [0, 1 << 30, 3 << 30],
           "x86_64": [0, 1 << 30, 1 << 39, 0xFFFF800000000000, 0xFFFFFFFFC0000000],
           "la57": [0, 1 << 30, 1 << 48, 0xFF00000000000000, 0xFFFFFFFFC0000000]}
OPS = ["load", "store", "ifetch", "modify"]
OP_CODE = {"load": 0, "store": 1, "ifetch": 2, "modify": 3}


def table_pages(pt):
    """{pfn: tuple of entries} of the engine's page-table pages."""
    esize = pt.core.entry_size
    out = {}
    for pfn, words in pt.core.pool_pages().items():
        vals = words.view(np.uint32) if esize == 4 else words
        out[pfn] = tuple(int(v) for v in vals)
    return out


def ref_pages(ref):
    esize = ref.m.entry_bytes
    out = {}
    for pfn in ref.tables:
        out[pfn] = tuple(ref.read((pfn << 12) + i * esize) for i in range(4096 // esize))
    return out


def compare_state(pt, ref, psc_levels):
    assert table_pages(pt) == ref_pages(ref)
    leaves = sorted(ref.leaves().items())
    assert [(m.vaddr, m.page_size, m.pfn) for m in pt.mappings(merge=False)] == \
        [(va, 1 << ref.m.shift(level), ref.m.frame_of(ref.read(pa), level) >> 12)
         for va, (level, pa) in leaves]
    s = pt.stats
    r = ref.stats
    assert s.walks == r["walks"]
    assert s.refs == r["refs"]
    assert s.psc_hits == r["psc_hits"]
    assert s.psc_misses == r["psc_misses"]
    for key in ("faults_not_present", "faults_protection", "faults_reserved",
                "faults_outside", "huge_fallbacks", "tables"):
        assert getattr(s, key) == r[key], key
    assert s.minor_faults == r["minor"]
    assert s.frames_allocated == ref.alloc.allocated
    assert pt.free_frames == ref.alloc.nframes - len(ref.alloc.used)
    check_allocator(pt, sorted(ref.alloc.used))
    for level in psc_levels:
        eng = pt.core.psc_counters(level)
        rs = ref.psc[level][0].stats
        assert (eng["hits"], eng["misses"], eng["fills"], eng["evictions"]) == \
            (rs.hits, rs.misses, rs.fills, rs.evictions), level


def check_allocator(pt, used):
    """The engine's bitmap holds exactly the frames `used` (plus the tail bits past
    phys_mem) and its per-2M/1G counts agree with it."""
    words, c2m, c1g = pt.core.allocator_state()
    n = pt.core.nframes
    bitmap = np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)
    assert bitmap[n:].all()
    assert np.flatnonzero(bitmap[:n]).tolist() == used
    frames = np.array(used, dtype=np.int64)
    assert c2m.tolist() == np.bincount(frames >> 9, minlength=len(c2m)).tolist()
    assert c1g.tolist() == np.bincount(frames >> 18, minlength=len(c1g)).tolist()


OUTSIDE = {"x86_32": [1 << 32], "pae": [1 << 32, 1 << 40],
           "x86_64": [1 << 47, 0xFFFF7FFFFFFFF000], "la57": [1 << 56, 0xFEFFFFFFFFFFF000]}


def address(draw, mode, region_pool, mapped=()):
    """Mostly addresses near the mapped pages (4K pages are mapped at region + k*2M +
    j*4K) or in a range mapped earlier, sometimes one outside the linear-address space."""
    where = draw(st.sampled_from(["near"] * 4 + ["mapped"] * 5 + ["outside"]))
    if where == "outside":
        return draw(st.sampled_from(OUTSIDE[mode])) + draw(st.integers(0, 4095))
    if where == "mapped" and mapped:
        va, size = draw(st.sampled_from(mapped))
        return va + draw(st.integers(0, size - 1))
    base = draw(st.sampled_from(region_pool))
    return base + draw(st.integers(0, 7)) * (1 << 21) + draw(st.integers(0, 7)) * 4096 \
        + draw(st.integers(0, 4095))


@st.composite
def programs(draw):
    mode = draw(st.sampled_from(MODES))
    maxphy = draw(st.sampled_from({"x86_32": [32, 36, 40], "pae": [36, 40, 52]}.get(
        mode, [40, 46, 52])))
    big = draw(st.booleans()) and mode not in ("x86_32", "pae")
    nframes = (1 << 19) if big else draw(st.sampled_from([1200, 4096, 1 << 14]))
    if mode == "x86_32" and maxphy == 32:
        nframes = min(nframes, 1 << 20)
    cfg = dict(mode=mode, maxphy=maxphy, nframes=nframes,
               allocator=draw(st.sampled_from(["sequential", "random"])),
               seed=draw(st.integers(0, 2 ** 32)),
               nx=mode != "x86_32" and draw(st.booleans()),
               wp=draw(st.booleans()), smep=draw(st.booleans()), smap=draw(st.booleans()),
               demand=draw(st.booleans()),
               huge=draw(st.sampled_from(["never", "thp", "always"])))
    levels = [1] if mode in ("x86_32", "pae") else list(range(1, 4 if mode == "x86_64" else 5))
    psc = {}
    if draw(st.booleans()):
        for L in levels:
            if draw(st.booleans()):
                ways = draw(st.sampled_from([1, 2, 4]))
                psc[L] = (ways * draw(st.sampled_from([1, 2, 3])), ways,
                          draw(st.sampled_from(["lru", "fifo", "plru", "random"])))
    cfg["psc"] = psc
    regions = REGIONS[mode]
    steps = []
    mapped = []
    explicit = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["map", "map", "map", "walk", "walk", "unmap",
                                     "protect", "poke", "poke", "invlpg", "fill"]))
        if kind == "fill":
            # explicit frames: every free frame but `keep` (resolved when it runs, see
            # fill_step), so the map's own tables, or the allocations after it, run out
            va = draw(st.sampled_from(regions)) + (64 << 20) + draw(st.integers(0, 3)) * (1 << 21)
            steps.append(("fill", va, draw(st.integers(0, 4)),
                          dict(writable=True, user=True, nx=False, global_=False)))
            mapped.append((va, 1 << 21))
        elif kind == "map":
            size = draw(st.sampled_from(SIZES[mode]))
            if size == "1G" and not big:
                size = "2M"
            step = SIZE_BYTES[size]
            va = draw(st.sampled_from(regions)) + draw(st.integers(0, 3)) * \
                (step if step >= (1 << 21) else (1 << 21)) + \
                (draw(st.integers(0, 3)) * step if step < (1 << 21) else 0)
            va &= ~(step - 1)
            n = draw(st.integers(1, 3)) if step < (1 << 30) else 1
            # explicit frames: often inside phys_mem (reserved in the allocator, so later
            # tables, pfn=None maps and demand faults must avoid them), sometimes low
            # (where the first tables are: a page-table frame is refused), sometimes a
            # frame given before (shared), else anywhere below MAXPHYADDR (untracked)
            where = draw(st.sampled_from(["alloc", "alloc", "inside", "inside", "low",
                                          "shared", "anywhere"]))
            unit = step >> 12
            if where == "alloc":
                pfn = None
            elif where == "inside":
                pfn = draw(st.integers(0, nframes - 1)) & ~(unit - 1)
                if size == "4K" and draw(st.integers(0, 3)) == 0:
                    # a long run: most of a small phys_mem reserved at once, so this
                    # map's tables or the next allocations run out (rollback paths)
                    n = draw(st.integers(200, 1100))
            elif where == "low":
                pfn = draw(st.integers(0, 40)) & ~(unit - 1)
            elif where == "shared" and explicit:
                pfn = draw(st.sampled_from(explicit)) & ~(unit - 1)
            else:
                pfn = draw(st.integers(0, (1 << (min(maxphy, 32 if size == "4K" and mode == "x86_32"
                                                     else maxphy) - 12)) // 4)) & ~(unit - 1)
            if pfn is not None:
                explicit.append(pfn)
            if va + n * step <= 1 << 64:
                mapped.append((va, n * step))
            steps.append(("map", va, n * step, size, pfn,
                          dict(writable=draw(st.booleans()), user=draw(st.booleans()),
                               nx=cfg["nx"] and draw(st.booleans()),
                               global_=draw(st.booleans()))))
        elif kind == "walk":
            vas = [address(draw, mode, regions, mapped)
                   for _ in range(draw(st.integers(1, 12)))]
            ops = [draw(st.sampled_from(OPS)) for _ in vas]
            steps.append(("walk", vas, ops, draw(st.booleans())))
        elif kind in ("unmap", "protect"):
            size = draw(st.sampled_from([0x1000, 0x3000, 1 << 21, 1 << 22]))
            va = draw(st.sampled_from(regions)) + draw(st.integers(0, 3)) * (1 << 21)
            if size < (1 << 21):
                va += draw(st.integers(0, 3)) * 4096
            if mapped and draw(st.booleans()):
                va = draw(st.sampled_from(mapped))[0]
            flags = dict(writable=draw(st.sampled_from([None, True, False])),
                         user=draw(st.sampled_from([None, True, False])),
                         nx=draw(st.sampled_from([None, False] + ([True] if cfg["nx"] else []))))
            steps.append((kind, va, size, flags))
        elif kind == "poke":
            # reserved-bit candidates (PS, bits 13/20/21/29 of large leaves, MAXPHYADDR..51,
            # 62, XD), ignored bits (52..58), address bits, or any bit
            bit = draw(st.one_of(st.sampled_from([7, 13, 17, 20, 21, 29, 62, 63, 52, 58]),
                                 st.integers(min(maxphy, 51), 51), st.integers(12, 35),
                                 st.integers(0, 63)))
            steps.append(("poke", draw(st.integers(0, 10 ** 6)), bit, draw(st.booleans())))
        else:
            steps.append(("invlpg", address(draw, mode, regions, mapped), draw(st.booleans())))
    steps.append(("walk", [address(draw, mode, regions, mapped) for _ in range(8)],
                  [draw(st.sampled_from(OPS)) for _ in range(8)], True))
    return cfg, steps


def build(cfg):
    pt = PageTable(cfg["mode"], maxphyaddr=cfg["maxphy"], phys_mem=cfg["nframes"] * 4096,
                   allocator=cfg["allocator"], seed=cfg["seed"], nx=cfg["nx"], wp=cfg["wp"],
                   smep=cfg["smep"], smap=cfg["smap"], demand=cfg["demand"],
                   huge_pages=cfg["huge"], psc=None)
    # pyapi gives every PSC one policy; here each level draws its own
    for L, (e, w, policy) in cfg["psc"].items():
        pt.core.psc_init(L, e // w, w, POLICIES[policy], cfg["seed"])
    ref = ReferencePageTable(cfg["mode"], cfg["maxphy"], cfg["nframes"], cfg["allocator"],
                             cfg["seed"], nxe=cfg["nx"], wp=cfg["wp"], smep=cfg["smep"],
                             smap=cfg["smap"], demand=cfg["demand"], huge_pages=cfg["huge"],
                             psc={L: (e, w, p) for L, (e, w, p) in cfg["psc"].items()})
    return pt, ref


def run_walk(pt, ref, vas, ops, user, to_input=None):
    arr = np.array(vas, dtype=np.uint64)
    opa = np.array([OP_CODE[o] for o in ops], dtype=np.uint8)
    if to_input is not None:
        arr, opa = to_input(arr), to_input(opa, kind="readonly")
    try:
        r = pt.walk(arr, op=opa, user=user, record=True)
        eng_err = None
    except MemoryError:
        eng_err = MemoryError
    try:
        rr = ref.walk(vas, list(ops), user)
        ref_err = None
    except MemoryError:
        ref_err = MemoryError
    assert eng_err == ref_err
    if eng_err:
        return False
    assert r.fault.tolist() == rr.fault
    assert r.paddr.tolist() == rr.paddr
    assert r.refs.tolist() == rr.refs
    assert r.page_size.tolist() == rr.size
    cols = r.entry_paddrs.shape[1]
    assert r.entry_paddrs.tolist() == [e + [ENTRY_PADDR_NONE] * (cols - len(e))
                                       for e in rr.entries]
    return True


def poke(pt, ref, pick, bit, table_entry):
    """Set one bit of an existing entry (a leaf, or a table entry) in both models."""
    leaves = sorted(ref.leaves().items())
    if not leaves:
        return
    va, (level, pa) = leaves[pick % len(leaves)]
    if table_entry and level + 1 < ref.m.levels and not (ref.m.name == "pae" and level + 1 == 2):
        pa = pt.entry_paddr(va, level + 1)
    width = ref.m.entry_bytes * 8
    value = ref.read(pa) ^ (1 << (bit % width))
    value |= 1                      # stay present: exercise reserved bits, not P
    ref.write(pa, value)
    pt.write_entry(pa, value)


def fill_step(pt, va, keep, flags, most=4096):
    """One map of 4K pages on every free frame (at most `most`) but the last `keep`:
    one range per run of free frames, at consecutive virtual pages from va. Nearly all
    of a small phys_mem is reserved at once, so the map's own tables, or the
    allocations after it, run out."""
    words, _, _ = pt.core.allocator_state()
    free = ~np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)[:pt.core.nframes]
    frames = np.flatnonzero(free)[:most]
    frames = frames[:max(len(frames) - keep, 0)]
    if not len(frames):
        return ("walk", [], [], True)
    brk = np.flatnonzero(np.diff(frames) != 1) + 1
    starts = np.concatenate([[0], brk])
    lengths = np.diff(np.concatenate([starts, [len(frames)]]))
    vas = [va + (int(s) << 12) for s in starts]
    return ("map", vas, [int(n) << 12 for n in lengths], "4K",
            [int(frames[s]) for s in starts], flags)


@given(programs())
def test_programs_match_reference(program):
    cfg, steps = program
    note(repr(cfg))
    pt, ref = build(cfg)
    for step in steps:
        note(repr(step))
        kind = step[0]
        if kind == "fill":
            # a larger phys_mem cannot be filled in reasonable time: a long run then
            step = fill_step(pt, *step[1:], most=4096 if cfg["nframes"] <= 4096 else 600)
            note(f"  = {step!r}")
            kind = step[0]
            event(f"fill: {kind}")
        if kind == "map":
            _, va, size, psize, pfn, flags = step
            ok_ref = None
            try:
                ok_ref = ref.map(va, size, psize, pfn, **flags)
            except MemoryError:
                ok_ref = "oom"
            try:
                pt.map(va, size, page_size=psize, pfn=pfn, **flags)
                ok_eng = True
            except ValueError as e:
                ok_eng = "table-frame" if "page-table page" in str(e) else False
            except MemoryError:
                ok_eng = "oom"
            assert ok_eng == ok_ref
            inside = pfn is not None and min(np.atleast_1d(pfn)) < cfg["nframes"]
            event(f"map {'explicit inside phys_mem' if inside else 'other'}: {ok_eng}")
        elif kind == "walk":
            if not run_walk(pt, ref, step[1], step[2], step[3]):
                break
        elif kind in ("unmap", "protect"):
            _, va, size, flags = step
            if kind == "unmap":
                n_ref = ref.unmap(va, size)
            else:
                n_ref = ref.protect(va, size, **flags)
            try:
                n_eng = pt.unmap(va, size) if kind == "unmap" else pt.protect(va, size, **flags)
            except ValueError:
                n_eng = None
            assert n_eng == n_ref
        elif kind == "poke":
            poke(pt, ref, *step[1:])
        else:
            _, va, all_psc = step
            ref.invalidate(va, all_psc)
            pt.invalidate(va, all_psc=all_psc)
        compare_state(pt, ref, cfg["psc"])


@pytest.mark.parametrize("mode", MODES)
def test_read_only_inputs(mode, to_input):
    """The walk takes read-only arrays and memmaps and gives the reference's answers."""
    cfg = dict(mode=mode, maxphy={"x86_32": 32, "pae": 36}.get(mode, 52), nframes=4096,
               allocator="random", seed=3, nx=mode != "x86_32", wp=True, smep=False,
               smap=False, demand=True, huge="thp", psc={1: (4, 2, "lru")})
    pt, ref = build(cfg)
    rng = np.random.default_rng(1)
    vas = [int(x) for x in rng.integers(0, 1 << 26, 300)]
    ops = [OPS[int(i)] for i in rng.integers(0, 4, 300)]
    assert run_walk(pt, ref, vas, ops, True, to_input)
    compare_state(pt, ref, cfg["psc"])


def test_reserved_bit_helper_is_the_sdm_mask():
    """bits(hi, lo) is the SDM's notation hi:lo (the reference builds every mask with it)."""
    assert bits(51, 40) == 0x000FFF0000000000
    assert bits(21, 13) == 0x3FE000
    assert bits(3, 4) == 0


@pytest.mark.parametrize("mode,seed", [("x86_32", 1), ("x86_32", 2), ("pae", 1), ("pae", 2)])
def test_more_than_4g_of_memory_matches_reference(mode, seed):
    """x86_32 (PSE-36) and PAE with 64 GiB: 32-bit entries and CR3 only reach frames below
    4 GiB, so x86_32's tables and 4K pages and PAE's root come from there (SDM 4.3,
    4.4.1); both models place every frame alike and every page translates."""
    cfg = dict(mode=mode, maxphy=40 if mode == "x86_32" else 36, nframes=1 << 24,
               allocator="random", seed=seed, nx=mode != "x86_32", wp=True, smep=False,
               smap=False, demand=True, huge="thp", psc={1: (4, 2, "lru")})
    pt, ref = build(cfg)
    big = "4M" if mode == "x86_32" else "2M"
    step = 1 << (22 if mode == "x86_32" else 21)
    for i in range(6):
        assert pt.map(i * 4 * step, 0x3000) == 3
        assert ref.map(i * 4 * step, 0x3000)
        assert pt.map((i * 4 + 2) * step, step, page_size=big) == 1
        assert ref.map((i * 4 + 2) * step, step, big)
    rng = np.random.default_rng(seed)
    vas = [int(x) for x in rng.integers(0, 1 << 31, 200)]
    ops = [OPS[int(i)] for i in rng.integers(0, 4, 200)]
    assert run_walk(pt, ref, vas, ops, True)
    compare_state(pt, ref, cfg["psc"])
    r = pt.walk(np.array(vas, dtype=np.uint64))
    assert (r.fault == 0).all()
    if mode == "x86_32":
        assert all(m.pfn < 1 << 20 for m in pt.mappings(merge=False) if m.page_size == 4096)
    assert pt.cr3 < 1 << 32 and max(pt.core.pool_pages()) < 1 << (20 if mode == "x86_32" else 24)
