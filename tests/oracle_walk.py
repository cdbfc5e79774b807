"""An independent oracle of the x86 page walk, written from the Intel SDM vol. 3A
chapter 4 ("Paging") only, as mirrored in xem/minix86 ``manual/intel-x86-and-64-manual-vol3``
(the edition in which 4-level paging is "IA-32e paging", section 4.5), plus the 5-level
paging white paper (document 335252) for ``la57``. It does not share code or structure
with the engine (``mmucore/pagetable.pyx``) or its reference model
(``tests/reference_pagetable.py``), which were not read to write it.

``sdm_walk`` translates one linear address. It reads raw entries only through a callback
(``read_entry(paddr) -> int``; pass ``PageTable.read_entry``), sets nothing (A/D bits are
the caller's business) and returns ``(paddr, fault, refs, page_size, entries_used)``:

* ``paddr``: the physical address (``None`` on a fault);
* ``fault``: ``None`` for a translation, the architectural #PF error code of SDM 4.7
  (figure 4-12; an int in 0..31, possibly 0) for a page fault, or ``GP_OUTSIDE`` for a
  linear address outside the mode's linear-address space (non-canonical in IA-32e /
  5-level paging, >= 2**32 in 32-bit and PAE paging), which is a #GP and never walks;
* ``refs``: paging-structure entries read from memory (PAE PDPTE registers are not
  memory reads: SDM 4.4.2 footnote, "It does not access the PDPTEs in the
  page-directory-pointer table during linear-address translation");
* ``page_size``: bytes of the page that translated (``None`` on a fault);
* ``entries_used``: the entries read, top-down, as ``Entry(level, paddr, value, kind)``
  with ``kind`` one of ``"table"`` (present, no reserved bit, references the next
  structure), ``"leaf"`` (present, no reserved bit, maps the page), ``"not_present"``
  or ``"reserved"`` (the walk stopped there).

Architectural state modelled (all explicit arguments): ``nxe`` (IA32_EFER.NXE), ``wp``
(CR0.WP), ``smep``/``smap`` (CR4.SMEP/SMAP; EFLAGS.AC is taken as 0 and every access is
an explicit one), ``maxphyaddr``. Fixed: CR4.PSE = 1 and the PSE-36 mechanism (32-bit
paging), the PAT supported (so bit 7 of a PTE and bit 12 of a large leaf are PAT, never
reserved: SDM 4.9.2 / "The PAT is supported on all processors that support IA-32e
paging"), 1-GByte pages supported, CR4.PKE = 0 (no protection keys, SDM 4.6.2: "a
reference ... to a user-mode address with a protection key should be considered a
reference to any user-mode address"), CR4.PGE irrelevant to a walk.
"""
from collections import namedtuple

# --- #PF error code bits (SDM 4.7, figure 4-12) ------------------------------------
PF_P = 1 << 0      # 0: not present; 1: protection violation (or reserved bit)
PF_WR = 1 << 1     # the access was a write
PF_US = 1 << 2     # the access was a user-mode access
PF_RSVD = 1 << 3   # a reserved bit was set in some paging-structure entry
PF_ID = 1 << 4     # instruction fetch, when SMEP=1 or (CR4.PAE=1 and NXE=1)

# Not an SDM code: the result for a linear address outside the mode's address space (a
# #GP, no walk). Chosen equal to the documented ``FAULT_OUTSIDE`` of pyapi so that the
# caller can compare directly; it can never collide with a #PF code (< 2**16).
GP_OUTSIDE = 0x80000000

# --- entry bits common to every format (tables 4-4 .. 4-19) ------------------------
B_P, B_RW, B_US, B_A, B_D, B_PS = 0, 1, 2, 5, 6, 7
B_XD = 63

Entry = namedtuple("Entry", "level paddr value kind")

MODES = ("x86_32", "pae", "x86_64", "la57")
WRITE_ACCESSES = ("store", "modify", "write")
FETCH_ACCESSES = ("ifetch", "fetch")
READ_ACCESSES = ("load", "read")


def mask(hi, lo):
    """Bits hi..lo inclusive (the SDM's "hi:lo"); 0 when hi < lo (an empty range)."""
    if hi < lo:
        return 0
    return ((1 << (hi - lo + 1)) - 1) << lo


def bit(value, n):
    return (value >> n) & 1


def linear_width(mode):
    return {"x86_32": 32, "pae": 32, "x86_64": 48, "la57": 57}[mode]


def inside_linear_space(mode, va):
    """32-bit and PAE paging: linear addresses are limited to 32 bits (SDM 4.3, 4.4).
    IA-32e paging: 48-bit linear addresses (4.5) which must be canonical, bits 63:47
    all equal (SDM vol. 1 3.3.7.1, vol. 3A 3.3.7.1 "Canonical Addressing"); 5-level
    paging: 57-bit, bits 63:56 all equal (white paper 335252)."""
    if va < 0 or va >= 1 << 64:
        return False
    w = linear_width(mode)
    if mode in ("x86_32", "pae"):
        return va < 1 << 32
    top = va >> (w - 1)                     # bits 63:(w-1)
    return top == 0 or top == (1 << (64 - w + 1)) - 1


def pdpte_register_reserved(value, maxphyaddr):
    """Reserved bits of a PAE PDPTE (table 4-8): 2:1, 8:5 and 63:M. A MOV to CR3 whose
    PDPT holds a present PDPTE with one of them set is a #GP(0) and loads nothing
    (SDM 4.4.1)."""
    return value & (mask(2, 1) | mask(8, 5) | mask(63, maxphyaddr))


def _reserved_32bit(value, level, maxphyaddr):
    """Reserved bits of a present 32-bit paging entry (SDM 4.3, CR4.PSE=1, PAT and
    PSE-36 supported): only a PDE with PS=1 has any, bits 21:(M-19) with M the minimum
    of 40 and MAXPHYADDR (table 4-4)."""
    if level == 1 and bit(value, B_PS):
        m = min(40, maxphyaddr)
        return value & mask(21, m - 19)
    return 0


def _reserved_pae(value, level, maxphyaddr, nxe):
    """Reserved bits of a present PAE PDE or PTE (SDM 4.4.2, tables 4-9 .. 4-11):
    62:M; bit 63 (XD) when IA32_EFER.NXE = 0; 20:13 in a PDE with PS=1."""
    r = mask(62, maxphyaddr)
    if not nxe:
        r |= 1 << B_XD
    if level == 1 and bit(value, B_PS):
        r |= mask(20, 13)
    return value & r


def _reserved_ia32e(value, level, maxphyaddr, nxe):
    """Reserved bits of a present IA-32e (or 5-level) paging entry (SDM 4.5, tables
    4-14 .. 4-19; the PML5E has the PML4E format): 51:M always (62:52 are ignored);
    XD when NXE = 0; PS in a PML4E (and PML5E); 29:13 in a PDPTE with PS=1 (1-GByte
    page); 20:13 in a PDE with PS=1 (2-MByte page)."""
    r = mask(51, maxphyaddr)
    if not nxe:
        r |= 1 << B_XD
    if level >= 3:
        r |= 1 << B_PS
    elif level == 2 and bit(value, B_PS):
        r |= mask(29, 13)
    elif level == 1 and bit(value, B_PS):
        r |= mask(20, 13)
    return value & r


def _access_allowed(is_write, is_fetch, user, us_all, rw_all, xd_any, wp, smep, smap):
    """SDM 4.6.1, with CR4.PKE = 0 and EFLAGS.AC = 0 (and only explicit accesses).
    ``us_all``: U/S = 1 in every entry controlling the translation (a user-mode
    address); ``rw_all``: R/W = 1 in every one; ``xd_any``: XD = 1 in at least one
    (already forced to False when XD does not apply: 32-bit paging or NXE = 0)."""
    if user:
        # user-mode accesses: never to a supervisor-mode address
        if not us_all:
            return False
        if is_write:
            return rw_all               # "R/W flag is 1 in every paging-structure entry"
        if is_fetch:
            return not xd_any           # "XD flag is 0 in every paging-structure entry"
        return True                     # data reads from any user-mode address
    # supervisor-mode accesses
    if is_fetch:
        if us_all and smep:             # "If CR4.SMEP = 1, instructions may not be
            return False                #  fetched from any user-mode address."
        return not xd_any               # same XD rule for supervisor / user addresses
    if is_write:
        if us_all:
            if smap:                    # SMAP, AC = 0: no data write to a user address
                return False
            return rw_all or not wp     # WP=0: any user-mode address (SMAP=0)
        return rw_all or not wp         # WP=0: any supervisor-mode address
    # data reads
    if us_all and smap:                 # SMAP, AC = 0: no data read from a user address
        return False
    return True


def _access_kind(access):
    if access in WRITE_ACCESSES:
        return True, False
    if access in FETCH_ACCESSES:
        return False, True
    if access in READ_ACCESSES:
        return False, False
    raise ValueError(f"unknown access {access!r}")


def sdm_walk(read_entry, mode, root, pdptes, va, access, user, nxe, wp, smep, smap,
             maxphyaddr):
    """Translate linear address ``va`` as the SDM's paging chapter says.

    ``root``: the physical address in CR3 (the page directory, the PDPT in PAE, the
    PML4 / PML5 table). ``pdptes``: PAE only, the four PDPTE registers (as loaded by the
    last MOV to CR3, SDM 4.4.1); ignored otherwise. ``access``: "load"/"read",
    "store"/"modify"/"write" or "ifetch"/"fetch". ``user``: a user-mode access (CPL 3).
    Returns ``(paddr, fault, refs, page_size, entries_used)``, see the module docstring.
    """
    if mode not in MODES:
        raise ValueError(mode)
    is_write, is_fetch = _access_kind(access)
    xd_applies = mode != "x86_32" and nxe      # XD exists only in PAE / IA-32e with NXE

    # The error-code bits that describe the access, not the entries (SDM 4.7): W/R is
    # the access being a write, U/S a user-mode access, I/D an instruction fetch when
    # CR4.SMEP = 1 or (CR4.PAE = 1, i.e. PAE / IA-32e paging, and NXE = 1).
    access_code = 0
    if is_write:
        access_code |= PF_WR
    if user:
        access_code |= PF_US
    if is_fetch and (smep or (mode != "x86_32" and nxe)):
        access_code |= PF_ID

    used = []

    def fault(code):
        return None, code, len(used), None, used

    if not inside_linear_space(mode, va):
        return None, GP_OUTSIDE, 0, None, used

    m = maxphyaddr
    us_all, rw_all, xd_any = True, True, False

    def combine(value):
        nonlocal us_all, rw_all, xd_any
        us_all = us_all and bool(bit(value, B_US))
        rw_all = rw_all and bool(bit(value, B_RW))
        if xd_applies:
            xd_any = xd_any or bool(bit(value, B_XD))

    def finish(page_base, page_size):
        if not _access_allowed(is_write, is_fetch, user, us_all, rw_all, xd_any,
                               wp, smep, smap):
            # a translation exists, its access rights forbid the access: P = 1
            return None, access_code | PF_P, len(used), None, used
        return page_base | (va & (page_size - 1)), None, len(used), page_size, used

    # ------------------------------------------------------------ 32-bit paging (4.3)
    if mode == "x86_32":
        # PDE: bits 39:32 = 0, 31:12 from CR3, 11:2 = linear 31:22, 1:0 = 0
        pde_addr = (root & mask(31, 12)) | (((va >> 22) & 0x3FF) << 2)
        pde = read_entry(pde_addr) & 0xFFFFFFFF
        if not bit(pde, B_P):
            used.append(Entry(1, pde_addr, pde, "not_present"))
            return fault(access_code)
        if _reserved_32bit(pde, 1, m):
            used.append(Entry(1, pde_addr, pde, "reserved"))
            return fault(access_code | PF_P | PF_RSVD)
        combine(pde)
        if bit(pde, B_PS):
            # 4-MByte page (table 4-4): PA 39:32 = PDE bits 20:13 (PSE-36, only
            # (M-1):32 of them, M = min(40, MAXPHYADDR)), PA 31:22 = PDE bits 31:22
            used.append(Entry(1, pde_addr, pde, "leaf"))
            mm = min(40, m)
            high = (pde >> 13) & mask(mm - 33, 0) if mm > 32 else 0
            base = (high << 32) | (pde & mask(31, 22))
            return finish(base, 1 << 22)
        used.append(Entry(1, pde_addr, pde, "table"))
        # PTE: bits 31:12 from the PDE, 11:2 = linear 21:12
        pte_addr = (pde & mask(31, 12)) | (((va >> 12) & 0x3FF) << 2)
        pte = read_entry(pte_addr) & 0xFFFFFFFF
        if not bit(pte, B_P):
            used.append(Entry(0, pte_addr, pte, "not_present"))
            return fault(access_code)
        # (no reserved bits in a 32-bit PTE when the PAT is supported)
        combine(pte)
        used.append(Entry(0, pte_addr, pte, "leaf"))
        return finish(pte & mask(31, 12), 1 << 12)

    # ------------------------------------------------------------ PAE paging (4.4)
    if mode == "pae":
        pdpte = pdptes[(va >> 30) & 3]
        if not bit(pdpte, B_P):
            # "If the P flag of PDPTEi is 0, the processor ignores bits 63:1, and there
            # is no mapping for the 1-GByte region": a #PF, no memory read.
            return fault(access_code)
        # a loaded PDPTE register never has reserved bits (the load would #GP)
        assert not pdpte_register_reserved(pdpte, m), hex(pdpte)
        # The PDPTEs do not determine access rights (4.6 footnote): no combine().
        table = pdpte & mask(m - 1, 12)
        for level in (1, 0):
            shift = 12 + 9 * level
            addr = table | (((va >> shift) & 0x1FF) << 3)
            e = read_entry(addr) & mask(63, 0)
            if not bit(e, B_P):
                used.append(Entry(level, addr, e, "not_present"))
                return fault(access_code)
            if _reserved_pae(e, level, m, nxe):
                used.append(Entry(level, addr, e, "reserved"))
                return fault(access_code | PF_P | PF_RSVD)
            combine(e)
            if level == 0 or bit(e, B_PS):
                used.append(Entry(level, addr, e, "leaf"))
                return finish(e & mask(m - 1, shift), 1 << shift)
            used.append(Entry(level, addr, e, "table"))
            table = e & mask(m - 1, 12)
        raise AssertionError("unreachable")

    # ------------------------------------------------- IA-32e (4.5) and 5-level paging
    top = 4 if mode == "x86_64" else 5
    table = root & mask(m - 1, 12)
    for level in range(top - 1, -1, -1):
        # entry index: linear bits (20 + 9*level):(12 + 9*level), entry address bits
        # 51:12 from the previous entry (or CR3), 11:3 the index, 2:0 = 0
        shift = 12 + 9 * level
        addr = table | (((va >> shift) & 0x1FF) << 3)
        e = read_entry(addr) & mask(63, 0)
        if not bit(e, B_P):
            used.append(Entry(level, addr, e, "not_present"))
            return fault(access_code)
        if _reserved_ia32e(e, level, m, nxe):
            used.append(Entry(level, addr, e, "reserved"))
            return fault(access_code | PF_P | PF_RSVD)
        combine(e)
        # a PTE always maps a page; a PDPTE or PDE maps one when PS = 1 (PS in a PML4E
        # or PML5E is reserved and was rejected above)
        if level == 0 or (level in (1, 2) and bit(e, B_PS)):
            used.append(Entry(level, addr, e, "leaf"))
            return finish(e & mask(m - 1, shift), 1 << shift)
        used.append(Entry(level, addr, e, "table"))
        table = e & mask(m - 1, 12)
    raise AssertionError("unreachable")
