"""Golden tests: hand-written raw entries decoded by the walk, per mode, against values
worked out by hand from the Intel SDM vol. 3A chapter 4 tables; walk-reference counts
against specs/hardware.md; access rights (4.6), error codes (4.7), A/D bits (4.8)."""
import numpy as np
import pytest

from pyapi.pagetable import (ENTRY_PADDR_NONE, FAULT_OUTSIDE, FAULT_PF, PageTable,
                             decode_entry)

P, W, U, RSVD, I = 1, 2, 4, 8, 16
A_BIT, D_BIT = 0x20, 0x40


def walk1(pt, va, op="load", user=True):
    r = pt.walk(np.array([va], dtype=np.uint64), op=op, user=user, record=True)
    return int(r.paddr[0]), int(r.fault[0]), int(r.refs[0]), int(r.page_size[0])


# ---------------------------------------------------------------------- specs/hardware.md
# "x86_32 4K=2, 4M=1; PAE 4K reads PDE+PTE = 2, 2M = 1; x86_64 4K=4, 2M=3, 1G=2; la57 one
# more each"
HARDWARE_MD_REFS = {("x86_32", "4K"): 2, ("x86_32", "4M"): 1, ("pae", "4K"): 2,
                    ("pae", "2M"): 1, ("x86_64", "4K"): 4, ("x86_64", "2M"): 3,
                    ("x86_64", "1G"): 2, ("la57", "4K"): 5, ("la57", "2M"): 4,
                    ("la57", "1G"): 3}


@pytest.mark.parametrize("mode,size", sorted(HARDWARE_MD_REFS))
def test_walk_references_match_hardware_md(mode, size):
    pt = PageTable(mode, phys_mem="2G")
    nbytes = {"4K": 1 << 12, "2M": 1 << 21, "4M": 1 << 22, "1G": 1 << 30}[size]
    base = 8 * nbytes               # identity-mapped, above the first page-table frames
    pt.map(base, nbytes, page_size=size, pfn=base >> 12)
    pa, fault, refs, psize = walk1(pt, base + 0x123)
    assert (fault, pa, psize) == (0, base + 0x123, nbytes)
    assert refs == HARDWARE_MD_REFS[(mode, size)]
    assert pt.stats.walk_refs == refs
    # PAE: the PDPTEs were read once, when CR3 was loaded (SDM 4.4.1)
    assert pt.stats.pdpte_loads == (1 if mode == "pae" else 0)


# ---------------------------------------------------------------------- IA-32e (4-level)
def test_x86_64_raw_pte_with_xd():
    pt = PageTable("x86_64", maxphyaddr=40)
    pt.map(0x200000, 0x1000)
    pte = pt.entry_paddr(0x200000, 0)
    # XD | frame 0x12345000 | D | A | U/S | R/W | P   (SDM table 4-19)
    pt.write_entry(pte, 0x8000000012345067)
    assert walk1(pt, 0x200ABC) == (0x12345ABC, 0, 4, 4096)
    assert walk1(pt, 0x200ABC, "ifetch")[1] == FAULT_PF | P | U | I
    d = decode_entry(pt.read_entry(pte), "x86_64", 0)
    assert (d["present"], d["writable"], d["user"], d["accessed"], d["dirty"], d["nx"],
            d["frame"]) == (True, True, True, True, True, True, 0x12345000)


def test_x86_64_reserved_and_ignored_high_bits():
    pt = PageTable("x86_64", maxphyaddr=40)
    pt.map(0x200000, 0x1000)
    pte = pt.entry_paddr(0x200000, 0)
    pt.write_entry(pte, (1 << 40) | 0x1007)         # bit 40 >= MAXPHYADDR: reserved
    assert walk1(pt, 0x200010)[1:3] == (FAULT_PF | P | U | RSVD, 4)
    pt.write_entry(pte, (1 << 52) | 0x1007)         # bits 62:52 are ignored in IA-32e
    assert walk1(pt, 0x200010) == (0x1010, 0, 4, 4096)


def test_x86_64_raw_2m_and_1g_leaves():
    pt = PageTable("x86_64")
    pt.map(0x200000, 0x1000)
    pde, pdpte = pt.entry_paddr(0x200000, 1), pt.entry_paddr(0x200000, 2)
    pt.write_entry(pde, 0x402000E7)                  # 2M page at 0x40200000, PS|D|A|U|W|P
    assert walk1(pt, 0x212345) == (0x40212345, 0, 3, 1 << 21)
    pt.write_entry(pde, 0x402010E7)                  # bit 12 is PAT, not an address bit
    assert walk1(pt, 0x212345) == (0x40212345, 0, 3, 1 << 21)
    pt.write_entry(pde, 0x402020E7)                  # bit 13 of a 2M PDE is reserved
    assert walk1(pt, 0x212345)[1] == FAULT_PF | P | U | RSVD
    pt.write_entry(pdpte, 0x1400000E7)               # 1G page at 0x140000000
    assert walk1(pt, 0x12345678) == (0x152345678, 0, 2, 1 << 30)
    pt.write_entry(pdpte, 0x1400200E7)               # bit 17 of a 1G PDPTE is reserved
    assert walk1(pt, 0x12345678)[1:3] == (FAULT_PF | P | U | RSVD, 2)
    d = decode_entry(0x1400000E7, "x86_64", 2)
    assert (d["leaf"], d["page_size"], d["frame"]) == (True, 1 << 30, 0x140000000)


def test_ps_in_pml4e_and_pml5e_is_reserved():
    for mode, top in (("x86_64", 3), ("la57", 4)):
        pt = PageTable(mode)
        pt.map(0x1000, 0x1000)
        root = pt.entry_paddr(0x1000, top)
        pt.write_entry(root, pt.read_entry(root) | 0x80)
        assert walk1(pt, 0x1000)[1:3] == (FAULT_PF | P | U | RSVD, 1), mode


def test_xd_is_reserved_without_nxe():
    pt = PageTable("x86_64", nx=False)
    pt.map(0x1000, 0x1000)
    pte = pt.entry_paddr(0x1000, 0)
    pt.write_entry(pte, pt.read_entry(pte) | (1 << 63))
    assert walk1(pt, 0x1000)[1] == FAULT_PF | P | U | RSVD
    # and without NXE an instruction-fetch fault has no I/D bit (SDM 4.7)
    assert walk1(pt, 0x5000, "ifetch")[1] == FAULT_PF | U


def test_non_canonical_addresses_are_outside():
    pt = PageTable("x86_64")
    assert walk1(pt, 0x0000800000000000) == (0, FAULT_OUTSIDE, 0, 0)
    assert walk1(pt, 0xFFFF7FFFFFFFFFFF)[1] == FAULT_OUTSIDE
    assert walk1(pt, 0xFFFF800000000000)[1] == FAULT_PF | U          # canonical, unmapped
    pt57 = PageTable("la57")
    assert walk1(pt57, 0x0100000000000000)[1] == FAULT_OUTSIDE
    assert walk1(pt57, 0x00FFFFFFFFFFF000)[1:3] == (FAULT_PF | U, 1)
    assert walk1(PageTable("pae"), 1 << 32)[1] == FAULT_OUTSIDE
    assert pt.stats.faults_outside == 2 and pt.stats.walks == 1


# ---------------------------------------------------------------------- 32-bit paging
def test_x86_32_4m_pde_with_pse36():
    pt = PageTable("x86_32", maxphyaddr=36)
    pt.map(0x400000, 0x1000)
    pde = pt.entry_paddr(0x400000, 1)
    # 4M page: bits 31:22 = 0x001 (0x400000), bits 16:13 = address bits 35:32 = 3,
    # PS | U/S | R/W | P  (SDM table 4-4)
    pt.write_entry(pde, 0x00406087)
    assert walk1(pt, 0x4ABCDE) == (0x3004ABCDE, 0, 1, 1 << 22)
    d = decode_entry(0x00406087, "x86_32", 1)
    assert (d["frame"], d["page_size"], d["user"]) == (0x300400000, 1 << 22, True)
    narrow = PageTable("x86_32", maxphyaddr=32)      # bits 21:13 reserved
    narrow.map(0x400000, 0x1000)
    narrow.write_entry(narrow.entry_paddr(0x400000, 1), 0x00406087)
    assert walk1(narrow, 0x4ABCDE)[1] == FAULT_PF | P | U | RSVD


def test_x86_32_pte_and_id_bit():
    pt = PageTable("x86_32")
    pt.map(0x1000, 0x2000)
    pt.write_entry(pt.entry_paddr(0x1000, 0), 0x12345067)
    assert walk1(pt, 0x1ABC) == (0x12345ABC, 0, 2, 4096)
    pt.write_entry(pt.entry_paddr(0x2000, 0), 0)
    assert walk1(pt, 0x2000, "ifetch")[1] == FAULT_PF | U            # no XD, no SMEP: I=0
    smep = PageTable("x86_32", smep=True)
    assert walk1(smep, 0x2000, "ifetch")[1] == FAULT_PF | U | I
    with pytest.raises(ValueError, match="no XD"):
        PageTable("x86_32", nx=True)
    with pytest.raises(ValueError):
        pt.write_entry(pt.entry_paddr(0x1000, 0), 1 << 32)           # 4-byte entries


# ---------------------------------------------------------------------- PAE
def test_pae_raw_entries():
    pt = PageTable("pae")                            # MAXPHYADDR 36
    pt.map(0x200000, 0x1000)
    pde = pt.entry_paddr(0x200000, 1)
    pt.write_entry(pde, 0x80000000006000E5)          # XD, 2M at 0x600000, PS|D|A|U|P, R/O
    assert walk1(pt, 0x2ABCDE) == (0x6ABCDE, 0, 1, 1 << 21)
    assert walk1(pt, 0x2ABCDE, "store")[1] == FAULT_PF | P | W | U
    assert walk1(pt, 0x2ABCDE, "ifetch")[1] == FAULT_PF | P | U | I
    pt.write_entry(pde, 0x4000000000600087)          # bit 62 is reserved in PAE
    assert walk1(pt, 0x2ABCDE)[1] == FAULT_PF | P | U | RSVD
    d = decode_entry(pt.read_entry(pt.cr3), "pae", 2)
    assert d["present"] and "writable" not in d      # PDPTEs have no R/W, U/S, A


def test_pae_pdpte_registers():
    pt = PageTable("pae")
    before = pt.pdpte
    assert all(e & 1 for e in before) and pt.stats.pdpte_loads == 1
    pt.write_entry(pt.cr3, before[0] | 2)            # R/W is reserved in a PDPTE
    with pytest.raises(ValueError, match="#GP"):
        pt.load_cr3()
    assert pt.pdpte == before and pt.stats.pdpte_loads == 1
    pt.write_entry(pt.cr3, 0)                        # not present: only after a reload
    assert walk1(pt, 0x1000)[2] == 1                 # still the old register (PDE read)
    pt.load_cr3()
    assert walk1(pt, 0x1000) == (0, FAULT_PF | U, 0, 0)
    assert pt.stats.pdpte_loads == 2
    with pytest.raises(ValueError, match="overlaps"):
        pt.map(0x1000, 0x1000)                       # no page directory to map into


# ---------------------------------------------------------------------- rights, A/D
def test_rights_are_anded_over_levels():
    pt = PageTable("x86_64")
    pt.map(0x1000, 0x1000)
    pde = pt.entry_paddr(0x1000, 1)
    pt.write_entry(pde, pt.read_entry(pde) & ~4)    # U/S=0 in the PDE only
    assert walk1(pt, 0x1000)[1] == FAULT_PF | P | U
    assert walk1(pt, 0x1000, user=False)[1] == 0
    pt.write_entry(pde, (pt.read_entry(pde) | 4) & ~2)  # R/W=0 in the PDE only
    assert walk1(pt, 0x1000, "store")[1] == FAULT_PF | P | W | U
    assert walk1(pt, 0x1000, "store", user=False)[1] == FAULT_PF | P | W   # CR0.WP=1
    nowp = PageTable("x86_64", wp=False)
    nowp.map(0x1000, 0x1000, writable=False)
    assert walk1(nowp, 0x1000, "store", user=False)[1] == 0
    assert walk1(nowp, 0x1000, "store")[1] == FAULT_PF | P | W | U


def test_smep_smap():
    pt = PageTable("x86_64", smep=True, smap=True)
    pt.map(0x1000, 0x1000)                                   # a user page
    pt.map(0x2000, 0x1000, user=False)                       # a supervisor page
    assert walk1(pt, 0x1000, "ifetch", user=False)[1] == FAULT_PF | P | I
    assert walk1(pt, 0x1000, "load", user=False)[1] == FAULT_PF | P
    assert walk1(pt, 0x2000, "load", user=False)[1] == 0
    assert walk1(pt, 0x2000, "load")[1] == FAULT_PF | P | U
    plain = PageTable("x86_64")
    plain.map(0x1000, 0x1000)
    assert walk1(plain, 0x1000, "load", user=False)[1] == 0   # no SMAP by default


def test_accessed_and_dirty_bits():
    pt = PageTable("x86_64")
    pt.map(0x1000, 0x1000, writable=False)
    pt.map(0x2000, 0x1000)
    entries = [pt.entry_paddr(0x1000, L) for L in range(4)]
    assert not any(pt.read_entry(e) & A_BIT for e in entries)
    walk1(pt, 0x1000, "store")                               # protection fault
    assert [bool(pt.read_entry(e) & A_BIT) for e in entries] == [False, True, True, True]
    walk1(pt, 0x1000, "load")
    assert all(pt.read_entry(e) & A_BIT for e in entries)
    assert not any(pt.read_entry(e) & D_BIT for e in entries)
    pte2 = pt.entry_paddr(0x2000, 0)
    walk1(pt, 0x2000, "modify")
    assert pt.read_entry(pte2) & (A_BIT | D_BIT) == A_BIT | D_BIT
    assert not any(pt.read_entry(e) & D_BIT for e in entries[1:])   # only the leaf


def test_entry_paddrs_recorded():
    pt = PageTable("x86_64")
    pt.map(0x200000, 0x200000, page_size="2M")
    r = pt.walk(np.array([0x200000, 0x400000], dtype=np.uint64), record=True)
    assert r.entry_paddrs[0].tolist() == [pt.entry_paddr(0x200000, L) for L in (3, 2, 1)] \
        + [ENTRY_PADDR_NONE]
    assert r.entry_paddrs[0][0] == pt.cr3                  # PML4 index 0
    assert r.entry_paddrs[1].tolist()[:3] == [pt.entry_paddr(0x400000, L) for L in (3, 2, 1)]
    assert pt.read_entry(0x7FFF000) == 0                   # not a page-table page


# ---------------------------------------------------------------------- 5-level
def test_la57_raw_entries():
    pt = PageTable("la57")
    va = 0x00AB_CDEF_4000_0000 & ~((1 << 30) - 1)     # bit 56 clear: canonical
    pt.map(va, 0x1000)
    assert walk1(pt, va + 0x10)[2:] == (5, 4096)
    pdpte = pt.entry_paddr(va, 2)
    pt.write_entry(pdpte, 0x8000000080000087)       # XD, 1G page at 0x80000000, PS|U|W|P
    assert walk1(pt, va + 0x1234567) == (0x81234567, 0, 3, 1 << 30)
    assert walk1(pt, va + 0x1234567, "ifetch")[1] == FAULT_PF | P | U | I
    # the PML5 index is bits 56:48; the PML5E of va is in the root table (CR3)
    assert pt.entry_paddr(va, 4) == pt.cr3 + 8 * ((va >> 48) & 511)
