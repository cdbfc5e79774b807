"""Snapshots of a real process (this one) into an x86_64 page table."""
import mmap
import os
import re
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux")
                                or not os.path.exists("/proc/self/pagemap"),
                                reason="needs Linux procfs with pagemap")

from pyapi.procmap import HUGE_SHIFT, read_process, snapshot_page_table  # noqa: E402

MB = 1 << 20


def _anon(size, advice=None):
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if advice is not None:
        m.madvise(advice)
    for i in range(0, size, 4096):      # touch every page: present from now on
        m[i] = 1
    return m


def _address(m):
    import ctypes
    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def _translations(pt, snap):
    """Walk an address inside every present page of the snapshot."""
    vpn = np.concatenate([v.present_vpn for v in snap.vmas])
    pfn = np.concatenate([v.present_pfn for v in snap.vmas])
    va = (vpn << np.uint64(12)) | np.uint64(0x123)
    return vpn, pfn, pt.walk(va, op="load", user=True)


def test_every_present_page_translates_to_its_frame():
    keep = _anon(4 * MB)
    pt, snap = snapshot_page_table("self", phys_mem="64G")
    vpn, pfn, r = _translations(pt, snap)
    assert snap.pages == len(vpn) > 100
    assert (r.fault == 0).all()
    if snap.pfns_are_real:
        assert ((r.paddr >> np.uint64(12)) == pfn).all()
        assert ((r.paddr & np.uint64(0xFFF)) == 0x123).all()
    # the touched mapping is in the snapshot
    base = _address(keep) >> 12
    assert np.isin(np.arange(base, base + 1024, dtype=np.uint64), vpn).all()
    del keep


def test_without_frame_numbers_the_layout_is_kept_and_frames_come_from_the_allocator():
    pt, snap = snapshot_page_table("self", use_pfns=False, phys_mem="4G")
    assert not snap.pfns_are_real and snap.huge_pages_inferred
    vpn, _, r = _translations(pt, snap)
    assert (r.fault == 0).all()
    # allocator frames: distinct per page, inside the simulated physical memory
    frames = np.unique(r.paddr >> np.uint64(12))
    assert frames.max() < (4 << 30) >> 12
    small = r.page_size == 4096
    assert len(np.unique(r.paddr[small] >> np.uint64(12))) == small.sum()


def test_permissions_come_from_the_vma():
    ro = mmap.mmap(-1, 8 * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                   prot=mmap.PROT_READ)
    _ = [ro[i] for i in range(0, 8 * 4096, 4096)]      # read: present (zero page)
    va = _address_ro(ro)
    pt, snap = snapshot_page_table("self", phys_mem="64G")
    vma = next(v for v in snap.vmas if v.start <= va < v.end)
    assert not vma.write and not vma.execute
    present = vma.present_vpn[(vma.present_vpn >= va >> 12)
                              & (vma.present_vpn < (va >> 12) + 8)]
    if not len(present):
        pytest.skip("the kernel mapped no page for reads of a read-only anonymous mapping")
    addrs = present << np.uint64(12)
    assert (pt.walk(addrs, op="load").fault == 0).all()
    w = pt.walk(addrs, op="store")
    assert ((w.fault & 0xFFFF) == 0b111).all()   # present | write | user: protection
    x = pt.walk(addrs, op="ifetch")
    assert ((x.fault & 0xFFFF) == 0b10101).all()  # present | user | instruction fetch
    ro.close()


def test_prot_none_pages_are_not_mapped():
    # Linux keeps a PROT_NONE page's PTE with P=0 (_PAGE_PROTNONE), so the hardware walk
    # faults; pagemap still reports the page present, which must not make it readable
    import ctypes
    m = _anon(8 * 4096)
    va = _address(m)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(va, 8 * 4096, 0) == 0            # PROT_NONE
    for use_pfns in (None, False):
        pt, snap = snapshot_page_table("self", use_pfns=use_pfns, phys_mem="64G")
        vma = next(v for v in snap.vmas if v.start <= va < v.end)
        assert not (vma.read or vma.write or vma.execute)
        r = pt.walk(np.arange(va, va + 8 * 4096, 4096, dtype=np.uint64), op="load")
        assert (r.fault == (1 << 30) | 4).all()          # FAULT_PF | user, not present
        assert any("PROT_NONE" in s for s in snap.skipped)
    libc.mprotect(va, 8 * 4096, mmap.PROT_READ | mmap.PROT_WRITE)
    m.close()


def _address_ro(m):
    """Start address of a read-only anonymous mapping, from /proc/self/maps (ctypes
    cannot take a buffer of a read-only mmap). Several may match: take the newest."""
    found = []
    for line in open("/proc/self/maps"):
        fields = line.split()
        a, b = (int(x, 16) for x in fields[0].split("-"))
        if b - a == len(m) and fields[1] == "r--p" and len(fields) == 5:
            found.append(a)
    if not found:
        pytest.skip("could not find the read-only mapping in /proc/self/maps")
    return min(found)       # mmap hands out addresses top-down


def _smaps_anon_huge(start):
    txt = open("/proc/self/smaps").read()
    for blk in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", txt):
        a, b = (int(x, 16) for x in blk.split()[0].split("-"))
        if a <= start < b:
            m = re.search(r"AnonHugePages:\s+(\d+) kB", blk)
            return int(m.group(1)) * 1024 if m else 0
    return 0


def test_transparent_huge_pages_become_2m_mappings():
    keep = _anon(16 * MB, getattr(mmap, "MADV_HUGEPAGE", None))
    start = _address(keep)
    huge_bytes = _smaps_anon_huge(start)
    if huge_bytes == 0:
        pytest.skip("the kernel gave this process no transparent huge pages")
    for use_pfns in (None, False):
        pt, snap = snapshot_page_table("self", use_pfns=use_pfns, phys_mem="64G")
        vma = next(v for v in snap.vmas if v.start <= start < v.end)
        assert len(vma.huge_vpn) == vma.anon_huge_bytes >> HUGE_SHIFT >= 1
        va = vma.huge_vpn << np.uint64(12)
        r = pt.walk(va + np.uint64(0x1234), op="load")
        assert (r.fault == 0).all() and (r.page_size == 2 << 20).all()
        assert (r.refs == 3).all()             # a 2M walk reads PML4E, PDPTE, PDE
        if snap.pfns_are_real and not snap.huge_pages_inferred:
            pos = np.searchsorted(vma.present_vpn, vma.huge_vpn)
            assert ((r.paddr - np.uint64(0x1234)) >> np.uint64(12)
                    == vma.present_pfn[pos]).all()
    del keep


def test_inferred_huge_pages_with_real_frames_need_consecutive_aligned_frames():
    # root without a readable /proc/kpageflags: real frames, inferred huge pages. The
    # first fully present 2M region is 4K pages on scattered frames; only the two
    # regions behind it are huge pages (AnonHugePages = 4M)
    from pyapi import procmap
    from pyapi.pagetable import PageTable
    base = 0x40000000
    vpn = np.arange(base >> 12, (base >> 12) + 3 * 512, dtype=np.uint64)
    pfn = np.concatenate([np.arange(512, dtype=np.uint64) * np.uint64(3) + np.uint64(7),
                          np.arange(0x10000, 0x10000 + 1024, dtype=np.uint64)])
    vma = procmap.Vma(base, base + (6 << 20), True, True, False, False, 0, "",
                      anon_huge_bytes=4 << 20, present_vpn=vpn, present_pfn=pfn)
    vma.huge_vpn = procmap._huge_regions(vma, real=True, kpageflags=False)
    assert (vma.huge_vpn << np.uint64(12)).tolist() == [base + (2 << 20), base + (4 << 20)]
    snap = procmap.ProcessSnapshot("synthetic", [vma], True, True, [])
    pt = PageTable("x86_64", phys_mem="1G")
    procmap._map_snapshot(pt, snap)                 # a misaligned 2M pfn raised here
    r = pt.walk(vpn << np.uint64(12))
    assert (r.fault == 0).all() and ((r.paddr >> np.uint64(12)) == pfn).all()
    assert r.page_size.tolist() == [4096] * 512 + [2 << 20] * 1024


def test_unknown_process_is_a_clear_error():
    with pytest.raises(ProcessLookupError, match="no process 999999999"):
        read_process(999999999)


def test_requiring_frames_without_them_is_a_clear_error(monkeypatch):
    import pyapi.procmap as pm
    monkeypatch.setattr(pm, "PM_PFN_MASK", np.uint64(0))     # as an unprivileged user sees
    with pytest.raises(PermissionError, match="CAP_SYS_ADMIN"):
        pm.read_process("self", use_pfns=True)
    snap = pm.read_process("self")
    assert not snap.pfns_are_real and snap.huge_pages_inferred
