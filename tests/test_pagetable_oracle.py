"""The engine's walk (``pyapi.PageTable.walk``, no paging-structure caches) against the
independent SDM oracle of ``tests/oracle_walk.py``.

Random page tables are built through the public API only (``map`` with mixed page sizes,
explicit and allocated frames and random permissions, ``protect``, ``unmap``) and then
damaged with raw ``write_entry`` edits (reserved bits, P cleared, XD with NXE off, PS in
a PML4E/PML5E, random bit flips, entries redirected to other page-table pages, PAE
PDPTEs reloaded with ``load_cr3``). For addresses that are mapped, unmapped, on page
and region boundaries and outside the linear-address space, and for every kind of access
(load, store, modify, ifetch) in user and supervisor mode, the oracle runs first, then
the engine's walk, and they must agree on: translated or not, the physical address, the
error code (``FAULT_PF | code`` for a #PF, ``FAULT_OUTSIDE`` for a #GP), ``refs``,
``page_size`` and the recorded entry addresses. After each walk the A/D bits are checked
against SDM 4.8 (and the documented choices of docs/pagetable.md where the SDM is silent).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings, strategies as st

from pyapi.pagetable import (ENTRY_PADDR_NONE, FAULT_OUTSIDE, FAULT_PF, PageTable)
from oracle_walk import GP_OUTSIDE, PF_P, PF_RSVD, mask, pdpte_register_reserved, sdm_walk

MODES = ("x86_32", "pae", "x86_64", "la57")
OPS = ("load", "store", "modify", "ifetch")
OP_CODE = {"load": 0, "store": 1, "ifetch": 2, "modify": 3}
SIZE = {"4K": 1 << 12, "2M": 1 << 21, "4M": 1 << 22, "1G": 1 << 30}
MODE_SIZES = {"x86_32": ("4K", "4M"), "pae": ("4K", "2M"),
              "x86_64": ("4K", "2M", "1G"), "la57": ("4K", "2M", "1G")}
ENTRY_BITS = {"x86_32": 32, "pae": 64, "x86_64": 64, "la57": 64}
LEVELS = {"x86_32": 2, "pae": 3, "x86_64": 4, "la57": 5}
A_BIT, D_BIT = 1 << 5, 1 << 6
U64 = (1 << 64) - 1

# Region anchors per mode: maps land at anchor + k * page_size (k may be negative, which
# wraps to the top of the address space), so tables are shared, large and small pages
# meet, and the ends of the linear-address space and of the canonical halves are used.
ANCHORS = {
    "x86_32": (0, 0x00400000, 0x7FC00000, 0xC0000000, 0xFFC00000),
    "pae": (0, 0x3FE00000, 0x40000000, 0xBFE00000, 0xC0000000),
    "x86_64": (0, 0x40000000, 0x8000000000, 0x00007FFFC0000000, 0xFFFF800000000000,
               0xFFFFFFFFC0000000),
    "la57": (0, 0x40000000, 1 << 48, 0x00FFFFFFC0000000, 0xFF00000000000000,
             0xFFFFFFFFC0000000),
}
# Addresses around the edges of each linear-address space (inside and outside).
EDGES = {
    "x86_32": (0, 0xFFFFFFFF, 1 << 32, (1 << 32) + 0x400123, 1 << 63, U64),
    "pae": (0, 0x3FFFFFFF, 0x40000000, 0xFFFFFFFF, 1 << 32, 1 << 63, U64),
    "x86_64": ((1 << 47) - 1, 1 << 47, 0xFFFF7FFFFFFFFFFF, 0xFFFF800000000000, 1 << 63,
               U64, 1 << 48, 0x0000FFFFFFFFFFFF, 0x00FF800000000000),
    "la57": ((1 << 56) - 1, 1 << 56, 0xFEFFFFFFFFFFFFFF, 0xFF00000000000000, 1 << 63,
             U64, (1 << 47), 0xFFFF7FFFFFFFFFFF, 1 << 57),
}
MAXPHYADDR = {"x86_32": (32, 40), "pae": (32, 52), "x86_64": (32, 52), "la57": (32, 52)}


# ------------------------------------------------------------------------ harness
class Machine:
    """A PageTable plus the architectural state the oracle needs: CR3, the PAE PDPTE
    registers (tracked here from memory at each successful MOV to CR3, SDM 4.4.1, not
    taken from the engine) and the paging-mode modifiers."""

    def __init__(self, mode, maxphyaddr, nx, wp, smep, smap, phys_mem="4G"):
        kw = dict(maxphyaddr=maxphyaddr, wp=wp, smep=smep, smap=smap, phys_mem=phys_mem)
        if mode != "x86_32":
            kw["nx"] = nx
        self.pt = PageTable(mode, **kw)
        self.mode = mode
        self.m = maxphyaddr
        self.nxe = bool(nx) and mode != "x86_32"
        self.wp, self.smep, self.smap = wp, smep, smap
        self.pdptes = None
        if mode == "pae":
            # construction loads CR3 once (docs: stats.pdpte_loads == 1)
            self.pdptes = [self.pt.read_entry(self.pt.cr3 + 8 * i) for i in range(4)]
            assert list(self.pt.pdpte) == self.pdptes

    def load_cr3(self):
        """MOV to CR3: PAE reloads the PDPTE registers, or #GP(0) (ValueError) and loads
        nothing when a present PDPTE sets a reserved bit (SDM 4.4.1, table 4-8)."""
        if self.mode != "pae":
            self.pt.load_cr3()
            return True
        mem = [self.pt.read_entry(self.pt.cr3 + 8 * i) for i in range(4)]
        gp = any((v & 1) and pdpte_register_reserved(v, self.m) for v in mem)
        if gp:
            with pytest.raises(ValueError):
                self.pt.load_cr3()
        else:
            self.pt.load_cr3()
            self.pdptes = mem
        assert list(self.pt.pdpte) == self.pdptes
        return not gp

    def oracle(self, va, op, user):
        return sdm_walk(self.pt.read_entry, self.mode, self.pt.cr3, self.pdptes, va, op,
                        user, self.nxe, self.wp, self.smep, self.smap, self.m)


def expected_fault(code):
    if code is None:
        return 0
    if code == GP_OUTSIDE:
        return FAULT_OUTSIDE
    return FAULT_PF | code


kinds = set()     # outcome classes seen by the current example (hypothesis events)


def check_access(mc, va, op, user, check_ad=True):
    """Oracle first, then the engine's walk of the same access; compare; then A/D."""
    pt = mc.pt
    o_pa, o_fault, o_refs, o_size, used = mc.oracle(va, op, user)
    kinds.add(classify(o_fault, o_size, used))
    before = {e.paddr: pt.read_entry(e.paddr) for e in used}
    r = pt.walk(np.array([va], dtype=np.uint64), op=op, user=user, record=True)
    got = (int(r.paddr[0]), int(r.fault[0]), int(r.refs[0]), int(r.page_size[0]))
    want = (o_pa or 0, expected_fault(o_fault), o_refs, o_size or 0)
    ctx = (f"{mc.mode} M={mc.m} nxe={mc.nxe} wp={mc.wp} smep={mc.smep} smap={mc.smap} "
           f"va={va:#x} op={op} user={user} entries="
           f"{[(e.level, hex(e.paddr), hex(e.value), e.kind) for e in used]}")
    assert got == want, f"engine {got} != oracle {want}: {ctx}"
    rec = [int(x) for x in r.entry_paddrs[0] if int(x) != ENTRY_PADDR_NONE]
    assert rec == [e.paddr for e in used], f"entry_paddrs {list(map(hex, rec))}: {ctx}"
    if check_ad:
        check_accessed_dirty(mc, used, before, o_fault, op, ctx)
    return o_fault, used


def classify(o_fault, o_size, used):
    if o_fault is None:
        return f"translated {o_size}"
    if o_fault == GP_OUTSIDE:
        return "outside"
    where = f" at level {used[-1].level}" if used else " at PDPTE register"
    if o_fault & PF_RSVD:
        return "rsvd" + where
    if o_fault & PF_P:
        return "protection"
    return "not present" + where


def check_accessed_dirty(mc, used, before, o_fault, op, ctx):
    """SDM 4.8: an entry used for a translation gets A=1; the entry that identifies the
    final physical address gets D=1 on a write; the flags are sticky and nothing else in
    an entry changes. Where the SDM is silent (walks that fault), docs/pagetable.md
    decides: present, reserved-free non-leaf entries read get A=1; the leaf gets A (and
    D) only when the access is allowed."""
    pt = mc.pt
    after = {p: pt.read_entry(p) for p in before}
    is_write = op in ("store", "modify")
    must_a, must_d = set(), set()
    for e in used:
        if e.kind == "table":
            must_a.add(e.paddr)
        elif e.kind == "leaf" and o_fault is None:
            must_a.add(e.paddr)
            if is_write:
                must_d.add(e.paddr)
    for p, old in before.items():
        new = after[p]
        assert new & ~(A_BIT | D_BIT) == old & ~(A_BIT | D_BIT), f"{p:#x} {old:#x}->{new:#x}: {ctx}"
        assert new & old == old, f"A/D cleared at {p:#x}: {ctx}"      # sticky
        if p in must_a:
            assert new & A_BIT, f"A not set at {p:#x}: {ctx}"
        else:
            assert new & A_BIT == old & A_BIT, f"A set at {p:#x} (not used): {ctx}"
        if p in must_d:
            assert new & D_BIT, f"D not set at {p:#x}: {ctx}"
        else:
            assert new & D_BIT == old & D_BIT, f"D set at {p:#x}: {ctx}"


def in_table_page(pt, pa):
    """entry_paddr follows possibly corrupted entries: only table pages are writable."""
    return pa != ENTRY_PADDR_NONE and (pa & ~0xFFF) in pt.table_pages()


def snapshot(pt):
    return {pa: arr.copy() for pa, arr in pt.table_pages().items()}


def check_only_used_changed(mc, snap_before, touched):
    """A walk writes nothing but the entries it read (their A/D bits)."""
    esize = 4 if mc.mode == "x86_32" else 8
    after = mc.pt.table_pages()
    assert set(after) == set(snap_before)
    for pa, arr in after.items():
        diff = np.nonzero(arr != snap_before[pa])[0]
        for i in diff:
            assert pa + esize * int(i) in touched, \
                f"walk changed untouched entry {pa + esize * int(i):#x}"


# ------------------------------------------------------------------------ programs
@st.composite
def machines(draw, mode):
    lo, hi = MAXPHYADDR[mode]
    m = draw(st.one_of(st.sampled_from(sorted({lo, hi, 36, 40} & set(range(lo, hi + 1)))),
                       st.integers(lo, hi)))
    nx = draw(st.booleans()) if mode != "x86_32" else False
    return dict(mode=mode, maxphyaddr=m, nx=nx, wp=draw(st.booleans()),
                smep=draw(st.booleans()), smap=draw(st.booleans()))


def wrap(mode, va):
    return va % (1 << 32) if mode in ("x86_32", "pae") else va % (1 << 64)


@st.composite
def map_ops(draw, mode, m):
    size = draw(st.sampled_from(MODE_SIZES[mode]))
    sz = SIZE[size]
    va = wrap(mode, draw(st.sampled_from(ANCHORS[mode])) + draw(st.integers(-3, 4)) * sz)
    n = draw(st.integers(1, 3))
    # frames: allocated (4K/2M only, to keep within phys_mem) or explicit, aligned and
    # inside MAXPHYADDR (20-bit frames for 32-bit 4K pages), biased to the edges
    pmax = (1 << (m - 12)) if not (mode == "x86_32" and size == "4K") else 1 << 20
    align = sz >> 12
    if size in ("4K", "2M") and draw(st.booleans()):
        pfn = None
    else:
        slots = pmax // align - n
        k = draw(st.one_of(st.integers(0, 8), st.integers(max(0, slots - 8), slots),
                           st.integers(0, slots)))
        pfn = k * align
    perms = dict(writable=draw(st.booleans()), user=draw(st.booleans()))
    return ("map", va, n * sz, size, pfn, perms)


@st.composite
def range_ops(draw, mode, kind):
    size = draw(st.sampled_from(MODE_SIZES[mode]))
    sz = SIZE[size]
    va = wrap(mode, draw(st.sampled_from(ANCHORS[mode])) + draw(st.integers(-3, 4)) * sz)
    n = draw(st.integers(1, 2))
    perms = {}
    if kind == "protect":
        perms = dict(writable=draw(st.one_of(st.none(), st.booleans())),
                     user=draw(st.one_of(st.none(), st.booleans())))
    return (kind, va, n * sz, None, None, perms)


CORRUPTIONS = ("flip", "rsvd", "clear_p", "set_xd", "toggle_ps", "redirect", "random",
               "perm")


@st.composite
def corrupt_ops(draw, mode, m):
    kind = draw(st.sampled_from(CORRUPTIONS))
    level = draw(st.integers(0, LEVELS[mode] - 1))
    target = draw(st.integers(0, 63))          # which known address (mod count)
    nbits = ENTRY_BITS[mode]
    # candidate reserved bits: which of them are reserved in the entry hit is the
    # oracle's business (tables 4-4 .. 4-19)
    rsvd_candidates = sorted({b for b in (m, m + 1, 51, 52, 58, 62, 63, 13, 17, 20, 21,
                                          29, 7, 12, m - 19, m - 20, 1, 2, 5, 8)
                              if 0 <= b < nbits})
    arg = draw(st.one_of(st.integers(0, nbits - 1), st.sampled_from(rsvd_candidates)))
    rnd = draw(st.integers(0, (1 << nbits) - 1))
    for b in draw(st.lists(st.integers(0, nbits - 1), max_size=4)):
        rnd |= 1 << b           # hypothesis favours small integers: add high bits
    return ("corrupt", kind, level, target, arg, rnd)


@st.composite
def programs(draw, mode):
    cfg = draw(machines(mode))
    m = cfg["maxphyaddr"]
    ops = draw(st.lists(st.one_of(map_ops(mode, m), map_ops(mode, m),
                                  range_ops(mode, "unmap"), range_ops(mode, "protect"),
                                  corrupt_ops(mode, m), corrupt_ops(mode, m)),
                        min_size=1, max_size=14))
    extra = draw(st.lists(st.integers(0, U64), max_size=6))
    return cfg, ops, extra


def apply_program(mc, ops):
    """Run the program on the engine; returns the addresses worth probing."""
    pt, mode = mc.pt, mc.mode
    probes = set(EDGES[mode])
    probes.update(ANCHORS[mode])
    known = []                  # addresses mapped so far (targets of corruptions)
    for op in ops:
        if op[0] == "map":
            _, va, size, psize, pfn, perms = op
            nx = False
            if mc.nxe:
                nx = bool(va >> 12 & 1) ^ perms["user"]     # varied, deterministic
            try:
                pt.map(va, size, page_size=psize, pfn=pfn, nx=nx, **perms)
            except (ValueError, MemoryError):
                continue
            known.append(va)
            end = wrap(mode, va + size)
            probes.update({va, wrap(mode, va + size - 1), wrap(mode, va - 1), end,
                           wrap(mode, va + (size // 2) + 0xABC)})
        elif op[0] in ("unmap", "protect"):
            _, va, size, _, _, perms = op
            try:
                if op[0] == "unmap":
                    pt.unmap(va, size)
                else:
                    if mc.nxe:
                        perms = dict(perms, nx=bool(va >> 13 & 1))
                    pt.protect(va, size, **perms)
            except ValueError:
                continue
            probes.update({va, wrap(mode, va + size - 1)})
        else:
            corrupt(mc, op, known, probes)
    return sorted(probes)


def corrupt(mc, op, known, probes):
    _, kind, level, target, arg, rnd = op
    pt, mode = mc.pt, mc.mode
    if not known:
        return
    va = known[-1 - target % len(known)]      # shrinks towards the latest map
    # the entry at the drawn level, else the nearest level that has one (a large page
    # has no entries below it; an earlier corruption may have cut the path)
    levels = LEVELS[mode]
    order = [level] + [(level + d) % levels for d in range(1, levels)]
    pa = next((p for p in (pt.entry_paddr(va, lv) for lv in order)
               if in_table_page(pt, p)), None)
    if pa is None:
        return
    level = order[[pt.entry_paddr(va, lv) for lv in order].index(pa)]
    nbits = ENTRY_BITS[mode]
    full = (1 << nbits) - 1
    old = pt.read_entry(pa)
    if kind == "flip":
        new = old ^ (1 << arg)
    elif kind == "rsvd":
        new = old | (1 << arg)
    elif kind == "clear_p":
        new = old & ~1
    elif kind == "set_xd":
        new = old | (1 << (nbits - 1))      # XD in 64-bit entries; bit 31 in x86_32
    elif kind == "toggle_ps":
        new = old ^ (1 << 7)
    elif kind == "redirect":
        tables = sorted(pt.table_pages())
        dest = tables[rnd % len(tables)]
        new = (old & ~mask(nbits - 1, 12) & full) | dest | (old & (1 << 63) & full)
    elif kind == "random":
        new = rnd | 1
    else:  # perm
        new = old ^ (1 << (1 + arg % 2))
    new &= full
    pt.write_entry(pa, new)
    probes.update({va, wrap(mode, va + (rnd & 0x3FFFFFFF)),
                   wrap(mode, va + (rnd & 0x1FFFFF))})
    if mode == "pae" and level == 2:
        mc.load_cr3()       # PDPTEs are registers: they change only at MOV to CR3


def run_program(mode, cfg, ops, extra):
    mc = Machine(**cfg)
    probes = apply_program(mc, ops)
    probes = sorted(set(probes) | set(extra))
    note(f"cfg={cfg} ops={ops} probes={list(map(hex, probes))}")
    for va in probes:
        snap = snapshot(mc.pt)
        touched = set()
        for op in OPS:
            for user in (True, False):
                _, used = check_access(mc, va, op, user)
                touched.update(e.paddr for e in used)
        check_only_used_changed(mc, snap, touched)
    # the same accesses as one batch with an array of op codes (the nogil batch path)
    for user in (True, False):
        vas = [va for va in probes for _ in OPS]
        opl = [op for _ in probes for op in OPS]
        want = [mc.oracle(va, op, user)[:4] for va, op in zip(vas, opl)]
        r = mc.pt.walk(np.array(vas, dtype=np.uint64),
                       op=np.array([OP_CODE[o] for o in opl], dtype=np.uint8), user=user)
        for i, (pa, fault, refs, size) in enumerate(want):
            got = (int(r.paddr[i]), int(r.fault[i]), int(r.refs[i]), int(r.page_size[i]))
            assert got == (pa or 0, expected_fault(fault), refs, size or 0), \
                f"batch: va={vas[i]:#x} op={opl[i]} user={user}: {got}"


@pytest.mark.parametrize("mode", MODES)
@given(data=st.data())
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
def test_walk_matches_sdm_oracle(mode, data):
    cfg, ops, extra = data.draw(programs(mode))
    kinds.clear()
    run_program(mode, cfg, ops, extra)
    for k in sorted(kinds):
        event(k)


# -------------------------------------------------- targeted random corruptions
@pytest.mark.parametrize("mode", MODES)
@given(data=st.data())
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_random_entry_values_match_oracle(mode, data):
    """One fully mapped path per page size, then every level's entry replaced by a
    random value (P mostly set): exercises every reserved-bit range and the address
    extraction of every entry format at every MAXPHYADDR."""
    cfg = data.draw(machines(mode))
    mc = Machine(**cfg)
    pt = mc.pt
    size = data.draw(st.sampled_from(MODE_SIZES[mode]))
    va = wrap(mode, data.draw(st.sampled_from(ANCHORS[mode]))
              + data.draw(st.integers(-1, 1)) * SIZE[size])
    # frame 0x40000 (1 GiB): aligned for every page size, below 2**20 for 32-bit PTEs,
    # and away from the page-table pages (allocated from frame 0 up)
    try:
        pt.map(va, SIZE[size], page_size=size, pfn=0x40000)
    except ValueError:          # past the end of the (canonical half of the) space
        assume(False)
    levels = LEVELS[mode]
    nbits = ENTRY_BITS[mode]
    for level in data.draw(st.lists(st.integers(0, levels - 1), min_size=1, max_size=3)):
        pa = pt.entry_paddr(va, level)
        if not in_table_page(pt, pa):
            continue
        old = pt.read_entry(pa)
        style = data.draw(st.sampled_from(("random", "keep_addr", "one_bit", "xd_ps")))
        if style == "random":
            new = data.draw(st.integers(0, (1 << nbits) - 1)) | 1
            for b in data.draw(st.lists(st.integers(0, nbits - 1), max_size=6)):
                new |= 1 << b           # hypothesis favours small integers: add high bits
        elif style == "keep_addr":
            # keep the address, randomise the flags and the high bits
            lowflags = data.draw(st.integers(0, 0xFFF)) | 1
            high = 0
            if nbits == 64:
                for b in data.draw(st.lists(st.integers(32, 63), max_size=4)):
                    high |= 1 << b
            new = (old & mask(31, 12)) | lowflags | high
        elif style == "one_bit":
            new = old | (1 << data.draw(st.integers(0, nbits - 1)))
        else:   # XD (bit 31, an address bit, in x86_32) and/or PS
            new = old | (1 << (nbits - 1)) if data.draw(st.booleans()) else old ^ 0x80
        pt.write_entry(pa, new)
        if mode == "pae" and level == 2:
            mc.load_cr3()
    offs = data.draw(st.lists(st.integers(0, SIZE[size] - 1), min_size=1, max_size=4))
    kinds.clear()
    for off in offs:
        for op in OPS:
            for user in (True, False):
                check_access(mc, wrap(mode, va + off), op, user)
    for k in sorted(kinds):
        event(k)


# -------------------------------------------- access rights combined over the levels
@pytest.mark.parametrize("mode", MODES)
@given(data=st.data())
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_rights_combined_over_levels_match_oracle(mode, data):
    """SDM 4.6.1: R/W and U/S are the AND over every paging-structure entry controlling
    the translation, XD the OR (PAE PDPTEs excluded: "With PAE paging, the PDPTEs do not
    determine access rights"). Each entry on one path gets random R/W, U/S and (with
    NXE) XD bits; every access kind and mode is compared, for random WP/SMEP/SMAP."""
    cfg = data.draw(machines(mode))
    mc = Machine(**cfg)
    pt = mc.pt
    size = data.draw(st.sampled_from(MODE_SIZES[mode]))
    va = ANCHORS[mode][1]
    pt.map(va, SIZE[size], page_size=size, pfn=0x40000)
    for level in range(LEVELS[mode]):
        if mode == "pae" and level == 2:
            continue
        pa = pt.entry_paddr(va, level)
        if not in_table_page(pt, pa):
            continue                # below a large page
        old = pt.read_entry(pa)
        new = old & ~0b110
        new |= data.draw(st.integers(0, 3)) << 1
        if mc.nxe and data.draw(st.booleans()):
            new |= 1 << 63
        pt.write_entry(pa, new)
    kinds.clear()
    for op in OPS:
        for user in (True, False):
            check_access(mc, va + 0x123, op, user)
    for k in sorted(kinds):
        event(k)


# ------------------------------------------------------------------------ golden cases
def engine1(pt, va, op="load", user=True):
    r = pt.walk(np.array([va], dtype=np.uint64), op=op, user=user)
    return int(r.paddr[0]), int(r.fault[0]), int(r.refs[0]), int(r.page_size[0])


def both(mc, va, op="load", user=True):
    """(paddr, fault, refs, page_size) from the oracle (fault as the engine encodes it),
    after asserting that the engine gives the same."""
    o = mc.oracle(va, op, user)
    want = (o[0] or 0, expected_fault(o[1]), o[2], o[3] or 0)
    assert engine1(mc.pt, va, op, user) == want
    return want


PF = FAULT_PF


def test_golden_x86_32():
    mc = Machine("x86_32", maxphyaddr=36, nx=False, wp=True, smep=False, smap=False)
    pt = mc.pt
    pt.map(0x00400000, 0x1000, pfn=0x1234)
    # va 0x00400ABC: PDE index 0x00400ABC >> 22 = 1, PTE index (va >> 12) & 0x3FF = 0,
    # PTE frame 0x1234 -> PA 0x1234000 | 0xABC = 0x1234ABC; PDE + PTE = 2 refs (4.3)
    assert both(mc, 0x00400ABC) == (0x1234ABC, 0, 2, 4096)
    pde = pt.cr3 + 4                       # PDE 1: bits 11:2 of its address = 1
    # 4M page (table 4-4), M = 36: PA 35:32 = PDE bits 16:13; PA 31:22 = PDE 31:22.
    # PDE = 0x80400000 | (0x9 << 13) | PS|D|A|U/S|R/W|P (0xE7) = 0x804120E7
    # -> page base 0x9_80400000; va 0x00512345 - 0x00400000 = 0x112345
    # -> PA 0x9_80512345, 1 ref, 4 MiB
    pt.write_entry(pde, 0x804120E7)
    assert both(mc, 0x00512345) == (0x980512345, 0, 1, 1 << 22)
    # bit 12 is PAT (supported), not an address or reserved bit
    pt.write_entry(pde, 0x804130E7)
    assert both(mc, 0x00512345) == (0x980512345, 0, 1, 1 << 22)
    # bit 17 = M-19: reserved (21:17) -> #PF P|U/S|RSVD = 1|4|8 = 13 on a user read
    pt.write_entry(pde, 0x804120E7 | (1 << 17))
    assert both(mc, 0x00512345) == (0, PF | 13, 1, 0)
    # R/W = 0: supervisor store with CR0.WP=1 -> P|W = 3; supervisor load fine
    pt.write_entry(pde, 0x804120E5)
    assert both(mc, 0x00512345, "store", user=False) == (0, PF | 3, 1, 0)
    assert both(mc, 0x00512345, "load", user=False)[1] == 0
    # no XD in 32-bit paging: a user fetch from a user page is allowed; bit 31 is an
    # address bit
    assert both(mc, 0x00512345, "ifetch")[1] == 0
    # PDE 2 is empty: not present -> #PF U/S|W = 6 for a user store, 1 ref
    assert both(mc, 0x00800000, "store") == (0, PF | 6, 1, 0)
    # 2**32 is outside the 32-bit linear-address space: #GP, no walk
    assert both(mc, 1 << 32) == (0, FAULT_OUTSIDE, 0, 0)
    # M = 32: bits 21:13 reserved (no PSE-36 bits); M = 40: only bit 21
    mc32 = Machine("x86_32", maxphyaddr=32, nx=False, wp=True, smep=False, smap=False)
    mc32.pt.map(0x00400000, 0x1000, pfn=1)
    mc32.pt.write_entry(mc32.pt.cr3 + 4, 0x804020E7)      # bit 13 set
    assert both(mc32, 0x00400000)[1] == PF | 13
    mc40 = Machine("x86_32", maxphyaddr=40, nx=False, wp=True, smep=True, smap=False)
    mc40.pt.map(0x00400000, 0x1000, pfn=1)
    # bits 20:13 = 0xFF -> PA 39:32 = 0xFF: PA 0xFF_80400000 + 0x10
    mc40.pt.write_entry(mc40.pt.cr3 + 4, 0x805FE0E7)
    assert both(mc40, 0x00400010) == (0xFF80400010, 0, 1, 1 << 22)
    mc40.pt.write_entry(mc40.pt.cr3 + 4, 0x805FE0E7 | (1 << 21))
    assert both(mc40, 0x00400010)[1] == PF | 13
    # SMEP=1: supervisor fetch from a user page -> P|I/D = 17 (I/D set because SMEP=1,
    # even in 32-bit paging, SDM 4.7)
    mc40.pt.write_entry(mc40.pt.cr3 + 4, 0x805FE0E7)
    assert both(mc40, 0x00400010, "ifetch", user=False) == (0, PF | 17, 1, 0)


def test_golden_pae():
    mc = Machine("pae", maxphyaddr=36, nx=True, wp=True, smep=False, smap=False)
    pt = mc.pt
    pdpte1 = mc.pdptes[1]
    assert pdpte1 & 1
    pde = (pdpte1 & mask(35, 12)) + 1 * 8      # va 0x40200000: PDPTE 1, PDE index 1
    # 2M page (table 4-9): XD | PA 0xF_FFE00000 | PS|D|A|U/S|R/W|P
    # va 0x40212345 -> offset 0x12345 -> PA 0xF_FFE12345; the PDPTE is a register:
    # only the PDE is read (1 ref)
    pt.write_entry(pde, 0x8000000FFFE000E7)
    assert both(mc, 0x40212345) == (0xFFFE12345, 0, 1, 1 << 21)
    # XD: a user fetch -> P|U/S|I/D = 1|4|16 = 21
    assert both(mc, 0x40212345, "ifetch") == (0, PF | 21, 1, 0)
    # bit 36 >= MAXPHYADDR: reserved (62:M) -> P|U/S|RSVD = 13
    pt.write_entry(pde, 0x8000000FFFE000E7 | (1 << 36))
    assert both(mc, 0x40212345)[1] == PF | 13
    # bit 62 is reserved in PAE (unlike IA-32e)
    pt.write_entry(pde, 0x000000000FE000E7 | (1 << 62))
    assert both(mc, 0x40212345)[1] == PF | 13
    # bit 13 of a 2M PDE: reserved (20:13)
    pt.write_entry(pde, 0x00000000FFE020E7)
    assert both(mc, 0x40212345, "store", user=False)[1] == PF | 1 | 2 | 8
    # PDPTE 3 cleared in memory: nothing changes until MOV to CR3 (registers)
    before = both(mc, 0xC0000000)
    pt.write_entry(pt.cr3 + 24, 0)
    assert both(mc, 0xC0000000) == before
    assert mc.load_cr3()
    # now PDPTE3.P = 0: #PF with no memory reference; user load -> U/S = 4
    assert both(mc, 0xC0000000) == (0, PF | 4, 0, 0)
    # a present PDPTE with bit 1 (reserved, table 4-8) set: MOV to CR3 #GP(0), the
    # registers keep their values
    pt.write_entry(pt.cr3 + 8, pdpte1 | 2)
    assert not mc.load_cr3()
    assert list(pt.pdpte) == mc.pdptes and mc.pdptes[1] == pdpte1
    assert both(mc, 0x40212345, "store", user=False)[1] == PF | 1 | 2 | 8   # old PDPTE1
    # reserved bits in a PDPTE with P = 0 are not checked (SDM 4.4.1 checks "both the P
    # flag and any reserved bit"; its footnote's "some processors" check them anyway:
    # model-specific, docs/pagetable.md says present PDPTEs only)
    pt.write_entry(pt.cr3 + 8, pdpte1)
    pt.write_entry(pt.cr3 + 24, 0x6 | (1 << 63))
    assert mc.load_cr3()
    assert both(mc, 0xC0001000, "ifetch", user=False) == (0, PF | 16, 0, 0)
    # bits 11:9 of a PDPTE are ignored, bits 4:3 (PWT/PCD) are not reserved
    pt.write_entry(pt.cr3 + 8, pdpte1 | 0xE18)
    assert mc.load_cr3()
    pt.write_entry(pde, 0x00000000FFE000E7)
    assert both(mc, 0x40212345) == (0xFFE12345, 0, 1, 1 << 21)
    # NXE = 0: bit 63 of a PDE/PTE is reserved (tables 4-9 .. 4-11), and a fetch fault
    # has no I/D bit (SMEP=0): user fetch -> P|U/S|RSVD = 13
    mc2 = Machine("pae", maxphyaddr=36, nx=False, wp=True, smep=False, smap=False)
    mc2.pt.map(0x1000, 0x1000, pfn=0x40000)
    pte = mc2.pt.entry_paddr(0x1000, 0)
    mc2.pt.write_entry(pte, mc2.pt.read_entry(pte) | (1 << 63))
    assert both(mc2, 0x1000, "ifetch") == (0, PF | 13, 2, 0)


def test_golden_x86_64():
    mc = Machine("x86_64", maxphyaddr=52, nx=True, wp=True, smep=False, smap=False)
    pt = mc.pt
    pt.map(0x40000000, 0x1000, pfn=0x777)
    # 1G page in PDPTE 1 (table 4-15): PA 0xF_C0000000 | PS|D|A|U/S|R/W|P
    # va 0x4ABCDEF0 -> offset 0x0ABCDEF0 -> PA 0xF_CABCDEF0; PML4E + PDPTE = 2 refs
    pdpte = pt.entry_paddr(0x40000000, 2)
    pt.write_entry(pdpte, 0xFC00000E7)
    assert both(mc, 0x4ABCDEF0) == (0xFCABCDEF0, 0, 2, 1 << 30)
    # bits 62:52 are ignored in IA-32e entries
    pt.write_entry(pdpte, 0xFC00000E7 | (0x7FF << 52))
    assert both(mc, 0x4ABCDEF0) == (0xFCABCDEF0, 0, 2, 1 << 30)
    # bit 13 of a 1G PDPTE (29:13) is reserved -> supervisor store: P|W|RSVD = 11
    pt.write_entry(pdpte, 0xFC00020E7)
    assert both(mc, 0x4ABCDEF0, "store", user=False) == (0, PF | 11, 2, 0)
    # PS in a PML4E is reserved: faults at the first reference
    pml4e = pt.entry_paddr(0x40000000, 3)
    pt.write_entry(pml4e, pt.read_entry(pml4e) | 0x80)
    assert both(mc, 0x4ABCDEF0, "modify", user=True) == (0, PF | 15, 1, 0)
    # non-canonical: #GP, no walk
    assert both(mc, 1 << 47) == (0, FAULT_OUTSIDE, 0, 0)
    assert both(mc, 0xFFFF7FFFFFFFFFFF) == (0, FAULT_OUTSIDE, 0, 0)
    # canonical upper half, nothing mapped: PML4E 256 not present, 1 ref
    assert both(mc, 0xFFFF800000000000, "ifetch", user=False) == (0, PF | 16, 1, 0)
    # NXE = 0: XD is reserved; a user fetch -> P|U/S|RSVD (no I/D: NXE=0, SMEP=0)
    mc2 = Machine("x86_64", maxphyaddr=46, nx=False, wp=True, smep=False, smap=False)
    mc2.pt.map(0x1000, 0x1000, pfn=0x1234)
    pte = mc2.pt.entry_paddr(0x1000, 0)
    mc2.pt.write_entry(pte, mc2.pt.read_entry(pte) | (1 << 63))
    assert both(mc2, 0x1008, "ifetch") == (0, PF | 13, 4, 0)
    # bit 46 = MAXPHYADDR: reserved
    mc2.pt.write_entry(pte, 0x1234007 | (1 << 46))
    assert both(mc2, 0x1008) == (0, PF | 13, 4, 0)
    mc2.pt.write_entry(pte, 0x1234007 | (1 << 45))   # an address bit
    assert both(mc2, 0x1008) == ((1 << 45) | 0x1234008, 0, 4, 4096)
    # SMAP: supervisor read of a user page -> P = 1; SMEP: supervisor fetch -> P|I/D
    mc3 = Machine("x86_64", maxphyaddr=52, nx=True, wp=False, smep=True, smap=True)
    mc3.pt.map(0x1000, 0x1000, pfn=0x1234, writable=False)
    assert both(mc3, 0x1000, "load", user=False) == (0, PF | 1, 4, 0)
    assert both(mc3, 0x1000, "ifetch", user=False) == (0, PF | 17, 4, 0)
    assert both(mc3, 0x1000, "store", user=True) == (0, PF | 7, 4, 0)
    # WP=0, supervisor write to a read-only supervisor page: allowed
    mc3.pt.map(0x2000, 0x1000, pfn=0x99, writable=False, user=False)
    assert both(mc3, 0x2010, "store", user=False) == (0x99010, 0, 4, 4096)


def test_golden_la57():
    mc = Machine("la57", maxphyaddr=52, nx=True, wp=True, smep=False, smap=False)
    pt = mc.pt
    va = 0x0001000000001000                 # PML5 index 1 (bits 56:48)
    pt.map(va, 0x1000, pfn=0x12345)
    pt.map(0x1000, 0x1000, pfn=0x99999)
    # PML5E, PML4E, PDPTE, PDE, PTE = 5 refs; PA 0x12345000 | 0xABC
    assert both(mc, va + 0xABC) == (0x12345ABC, 0, 5, 4096)
    # bit 56 without the sign extension: not canonical with 57-bit addresses
    assert both(mc, 1 << 56) == (0, FAULT_OUTSIDE, 0, 0)
    # 1 << 47 is canonical under 5-level paging: PML5E 0 present, PML4E 256 not: 2 refs
    assert both(mc, 1 << 47) == (0, PF | 4, 2, 0)
    # upper half: PML5E 0x100 (bits 56:48 of 0xFF00...) not present: 1 ref
    assert both(mc, 0xFF00000000000000, "store") == (0, PF | 6, 1, 0)
    # PS in a PML5E is reserved (it has the PML4E format)
    pml5e = pt.entry_paddr(va, 4)
    pt.write_entry(pml5e, pt.read_entry(pml5e) | 0x80)
    assert both(mc, va, "ifetch") == (0, PF | 1 | 4 | 8 | 16, 1, 0)
