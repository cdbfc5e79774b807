"""Snapshot a real Linux process's address space into an ``x86_64`` page table.

Three files of procfs describe what the kernel has mapped for a process
(``Documentation/admin-guide/mm/pagemap.rst``, ``proc_pid_maps(5)``, ``proc_pid_smaps(5)``):

* ``/proc/PID/maps``: the virtual memory areas (VMAs), their range and protection;
* ``/proc/PID/smaps``: per VMA, among others ``AnonHugePages`` (bytes of it that the kernel
  maps with 2 MiB transparent huge pages) and ``KernelPageSize`` (2048 kB for hugetlbfs);
* ``/proc/PID/pagemap``: one 64-bit word per virtual page: bit 63 present, bit 62 swapped,
  bits 0-54 the page frame number. Since Linux 4.2 the frame numbers read as zero without
  ``CAP_SYS_ADMIN``.

With ``CAP_SYS_ADMIN`` (root) the snapshot uses the real frame numbers, and
``/proc/kpageflags`` (one word per frame; ``KPF_COMPOUND_HEAD`` = bit 15, ``KPF_THP`` =
bit 22, ``include/uapi/linux/kernel-page-flags.h``) tells which present pages belong to
transparent huge pages: a 2 MiB-aligned virtual region whose 512 pages are present, map
512 consecutive frames starting at a 2 MiB-aligned compound head flagged THP is mapped
as one 2 MiB page. Without it, present pages get frames from the page table's allocator
and huge pages are *inferred*: in a VMA with ``AnonHugePages = k * 2 MiB``, the first
``k`` fully present, aligned 2 MiB regions (when the frames are real but
``/proc/kpageflags`` is unreadable, only regions whose 512 frames are consecutive from a
2 MiB-aligned frame qualify). ``ProcessSnapshot.pfns_are_real`` and
``huge_pages_inferred`` say which happened.

Permissions come from the VMA (``w`` -> writable, no ``x`` -> NX), not from the PTE, which
procfs does not expose: a private page that was never written is read-only in the real
PTE (copy on write) but writable here. Only present pages are mapped (the kernel keeps
no valid PTE for the others); pages of ``PROT_NONE`` VMAs are left out even though
pagemap reports them present, because their PTEs have P=0 (``_PAGE_PROTNONE``) and the
MMU faults on them (``skipped`` lists them). The ``[vsyscall]`` page lies in the kernel half and is left
out.

>>> snap = read_process("self")
>>> snap.pages > 0 and any(v.path == "[stack]" for v in snap.vmas)
True
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import List, Optional, Union

import numpy as np

__all__ = ["Vma", "ProcessSnapshot", "read_process", "snapshot_page_table"]

PAGE_SHIFT = 12
HUGE_SHIFT = 21
PAGES_PER_HUGE = 1 << (HUGE_SHIFT - PAGE_SHIFT)
PM_PRESENT = np.uint64(1 << 63)
PM_PFN_MASK = np.uint64((1 << 55) - 1)
KPF_COMPOUND_HEAD = 15
KPF_THP = 22
USER_LIMIT = 1 << 47          # x86_64 4-level user half: [0, 2**47)

_MAPS_LINE = re.compile(
    r"^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) (\S+) (\d+)\s*(.*)$")


@dataclass
class Vma:
    """One virtual memory area of ``/proc/PID/maps`` (addresses in bytes, ``end``
    exclusive), with what ``smaps`` and ``pagemap`` add: ``anon_huge_bytes``,
    ``kernel_page_bytes``, and the present pages: ``present_vpn`` (virtual page numbers)
    and ``present_pfn`` (frames; zeros when the frames are hidden).

    >>> v = read_process("self").vmas[0]
    >>> v.end > v.start, v.size == v.end - v.start
    (True, True)
    """

    start: int
    end: int
    read: bool
    write: bool
    execute: bool
    shared: bool
    offset: int
    path: str
    anon_huge_bytes: int = 0
    kernel_page_bytes: int = 4096
    present_vpn: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    present_pfn: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    huge_vpn: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass
class ProcessSnapshot:
    """What ``read_process`` found: the VMAs (user half only), whether the frame numbers
    are the kernel's (``pfns_are_real``), and whether the 2 MiB mappings were read from
    ``/proc/kpageflags`` or inferred from ``AnonHugePages`` (``huge_pages_inferred``).

    >>> snap = read_process("self")
    >>> isinstance(snap.pfns_are_real, bool), all(v.start < v.end for v in snap.vmas)
    (True, True)
    """

    pid: Union[int, str]
    vmas: List[Vma]
    pfns_are_real: bool
    huge_pages_inferred: bool
    skipped: List[str]

    @property
    def pages(self) -> int:
        """Present 4 KiB pages (those inside 2 MiB mappings included)."""
        return sum(len(v.present_vpn) for v in self.vmas)

    @property
    def huge_regions(self) -> int:
        """2 MiB regions mapped as huge pages."""
        return sum(len(v.huge_vpn) for v in self.vmas)


def _parse_maps(pid) -> List[Vma]:
    path = f"/proc/{pid}/maps"
    vmas = []
    try:
        f = open(path)
    except FileNotFoundError:
        raise ProcessLookupError(f"no process {pid}: {path} does not exist (and this needs "
                                 "Linux procfs)") from None
    with f:
        for lineno, line in enumerate(f, 1):
            m = _MAPS_LINE.match(line.rstrip("\n"))
            if not m:
                raise ValueError(f"{path}:{lineno}: unexpected line: {line.rstrip()!r}")
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            vmas.append(Vma(start, end, m.group(3) == "r", m.group(4) == "w",
                            m.group(5) == "x", m.group(6) == "s", int(m.group(7), 16),
                            m.group(10)))
    return vmas


def _parse_smaps(pid, vmas: List[Vma]) -> None:
    by_start = {v.start: v for v in vmas}
    current = None
    path = f"/proc/{pid}/smaps"
    try:
        f = open(path)
    except OSError:
        return                      # smaps is optional (CONFIG_PROC_PAGE_MONITOR)
    with f:
        for line in f:
            m = _MAPS_LINE.match(line.rstrip("\n"))
            if m:
                current = by_start.get(int(m.group(1), 16))
                continue
            if current is None:
                continue
            key, _, rest = line.partition(":")
            if key == "AnonHugePages":
                current.anon_huge_bytes = int(rest.split()[0]) * 1024
            elif key == "KernelPageSize":
                current.kernel_page_bytes = int(rest.split()[0]) * 1024


def _read_words(fd: int, first: int, count: int) -> np.ndarray:
    """``count`` 64-bit words at word index ``first`` of a procfs file."""
    want = count * 8
    buf = bytearray()
    pos = first * 8
    while len(buf) < want:
        chunk = os.pread(fd, min(want - len(buf), 1 << 24), pos + len(buf))
        if not chunk:
            break
        buf += chunk
    words = np.frombuffer(bytes(buf[: len(buf) // 8 * 8]), dtype="<u8").astype(np.uint64)
    if len(words) < count:          # a VMA that vanished while we read: pad as absent
        words = np.concatenate([words, np.zeros(count - len(words), np.uint64)])
    return words


def read_process(pid: Union[int, str] = "self", use_pfns: Optional[bool] = None,
                 max_vma_bytes: int = 1 << 40) -> ProcessSnapshot:
    """Read the address space of process ``pid`` (``"self"`` is the calling process).

    ``use_pfns=None`` uses the kernel's frame numbers when they are readable (root),
    ``False`` ignores them even then (what an unprivileged user gets), ``True`` requires
    them (``PermissionError`` otherwise). VMAs larger than ``max_vma_bytes`` (address
    space reservations) are skipped and listed in ``skipped``.

    >>> snap = read_process("self", use_pfns=False)
    >>> snap.pfns_are_real, int(snap.vmas[0].present_pfn.max(initial=0))
    (False, 0)
    """
    all_vmas = _parse_maps(pid)
    vmas = [v for v in all_vmas if v.end <= USER_LIMIT]
    skipped = [f"{v.start:#x}-{v.end:#x} {v.path or '[anon]'}: kernel half"
               for v in all_vmas if v.end > USER_LIMIT]
    _parse_smaps(pid, vmas)
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        for v in vmas:
            if v.size > max_vma_bytes:
                skipped.append(f"{v.start:#x}-{v.end:#x} {v.path or '[anon]'}: "
                               f"{v.size} bytes > max_vma_bytes")
                continue
            first = v.start >> PAGE_SHIFT
            words = _read_words(fd, first, v.size >> PAGE_SHIFT)
            present = (words & PM_PRESENT) != 0
            if not (v.read or v.write or v.execute):
                # PROT_NONE: pagemap reports the pages present (pte_present()), but the
                # PTE has P=0 (_PAGE_PROTNONE), so the MMU faults on them: map nothing
                n = int(present.sum())
                if n:
                    skipped.append(f"{v.start:#x}-{v.end:#x} {v.path or '[anon]'}: "
                                   f"PROT_NONE, {n} pages with P=0 left unmapped")
                continue
            idx = np.flatnonzero(present).astype(np.uint64)
            v.present_vpn = idx + np.uint64(first)
            v.present_pfn = words[present] & PM_PFN_MASK
    finally:
        os.close(fd)
    vmas = [v for v in vmas if v.size <= max_vma_bytes]
    have_pfns = any(len(v.present_pfn) and int(v.present_pfn.max()) for v in vmas)
    if use_pfns and not have_pfns:
        raise PermissionError(f"/proc/{pid}/pagemap shows no frame numbers: reading them "
                              "needs CAP_SYS_ADMIN (run as root), or pass use_pfns=False")
    real = have_pfns if use_pfns is None else bool(use_pfns)
    if not real:
        for v in vmas:
            v.present_pfn = np.zeros(len(v.present_vpn), np.uint64)
    inferred = not (real and os.access("/proc/kpageflags", os.R_OK))
    for v in vmas:
        v.huge_vpn = _huge_regions(v, real=real, kpageflags=real and not inferred)
    return ProcessSnapshot(pid, vmas, real, inferred, skipped)


def _full_aligned_regions(v: Vma) -> np.ndarray:
    """First vpn of each 2 MiB-aligned region of ``v`` whose 512 pages are all present."""
    if len(v.present_vpn) < PAGES_PER_HUGE:
        return np.zeros(0, np.uint64)
    region = v.present_vpn >> np.uint64(HUGE_SHIFT - PAGE_SHIFT)
    uniq, counts = np.unique(region, return_counts=True)
    full = uniq[counts == PAGES_PER_HUGE]
    return full << np.uint64(HUGE_SHIFT - PAGE_SHIFT)


def _huge_regions(v: Vma, real: bool, kpageflags: bool) -> np.ndarray:
    """First vpn of each 2 MiB region of ``v`` to map as a 2 MiB page. With real frame
    numbers (``real``) a region qualifies only if its 512 frames are consecutive and
    start 2 MiB-aligned, as a huge page's must; ``kpageflags`` then also requires a THP
    compound head. Without ``kpageflags`` the first ``AnonHugePages / 2 MiB`` of the
    qualifying regions are taken (an inference)."""
    if v.kernel_page_bytes == 1 << HUGE_SHIFT:       # hugetlbfs: every present region
        return _full_aligned_regions(v)
    if v.anon_huge_bytes == 0 and not kpageflags:
        return np.zeros(0, np.uint64)
    cand = _full_aligned_regions(v)
    if not len(cand):
        return cand
    if real:
        # the 512 frames must be consecutive and start at a 2 MiB-aligned frame
        pos = np.searchsorted(v.present_vpn, cand)
        first_pfn = v.present_pfn[pos]
        last_pfn = v.present_pfn[pos + PAGES_PER_HUGE - 1]
        ok = (last_pfn - first_pfn == PAGES_PER_HUGE - 1) & \
             (first_pfn % PAGES_PER_HUGE == 0)
        cand, first_pfn = cand[ok], first_pfn[ok]
    if not kpageflags:
        return cand[: v.anon_huge_bytes >> HUGE_SHIFT]
    if not len(cand):
        return cand
    flags = _kpageflags(first_pfn)
    thp = ((flags >> np.uint64(KPF_THP)) & np.uint64(1)).astype(bool) & \
          ((flags >> np.uint64(KPF_COMPOUND_HEAD)) & np.uint64(1)).astype(bool)
    return cand[thp]


def _kpageflags(pfns: np.ndarray) -> np.ndarray:
    out = np.zeros(len(pfns), np.uint64)
    fd = os.open("/proc/kpageflags", os.O_RDONLY)
    try:
        for i, pfn in enumerate(pfns.tolist()):     # one read per 2 MiB candidate
            out[i] = _read_words(fd, pfn, 1)[0]
    finally:
        os.close(fd)
    return out


def snapshot_page_table(pid: Union[int, str] = "self", use_pfns: Optional[bool] = None,
                        **page_table_options):
    """Build an ``x86_64`` ``PageTable`` holding the present pages of process ``pid``.

    Returns ``(page_table, snapshot)``; ``snapshot`` (a ``ProcessSnapshot``) says whether
    the frames are real and whether huge pages were read or inferred. Extra keyword
    arguments go to ``PageTable`` (e.g. ``phys_mem``).

    >>> pt, snap = snapshot_page_table("self")          # this process (Linux)
    >>> pt.mode in ("x86_64", "la57") or pt.mode, len(snap.vmas) > 0
    (True, True)
    """
    from pyapi.pagetable import PageTable

    snap = read_process(pid, use_pfns=use_pfns)
    pt = PageTable("x86_64", **page_table_options)
    _map_snapshot(pt, snap)
    return pt, snap


def _runs(vpn: np.ndarray, pfn: np.ndarray, real: bool):
    """Split sorted present pages into runs of consecutive pages (and, with real frames,
    consecutive frames): (first vpn, pages, first pfn) arrays."""
    if not len(vpn):
        z = np.zeros(0, np.uint64)
        return z, z, z
    brk = np.diff(vpn.astype(np.int64)) != 1
    if real:
        brk |= np.diff(pfn.astype(np.int64)) != 1
    starts = np.concatenate([[0], np.flatnonzero(brk) + 1])
    lengths = np.diff(np.concatenate([starts, [len(vpn)]]))
    return vpn[starts], lengths.astype(np.uint64), pfn[starts]


def _map_snapshot(pt, snap: ProcessSnapshot) -> None:
    """Map every present page of ``snap`` into ``pt``: 2 MiB pages for the huge regions,
    4 KiB pages (in runs, one ``map`` call per VMA and page size) for the rest."""
    shift4k = np.uint64(PAGE_SHIFT)
    if snap.pfns_are_real:
        # reserve every real frame first: the tables of an early map() call must not
        # land on a frame that a later call maps
        runs = [_runs(v.present_vpn, v.present_pfn, True) for v in snap.vmas]
        first = np.concatenate([r[2] for r in runs] + [np.zeros(0, np.uint64)])
        count = np.concatenate([r[1] for r in runs] + [np.zeros(0, np.uint64)])
        if len(first):
            pt.reserve_frames(first, count)
    for v in snap.vmas:
        if not len(v.present_vpn):
            continue
        perms = dict(writable=v.write, user=True, nx=not v.execute)
        vpn, pfn = v.present_vpn, v.present_pfn
        if len(v.huge_vpn):
            pos = np.searchsorted(vpn, v.huge_vpn)
            pt.map(v.huge_vpn << shift4k, 1 << HUGE_SHIFT, page_size="2M",
                   pfn=pfn[pos] if snap.pfns_are_real else None, **perms)
            in_huge = np.isin(vpn >> np.uint64(HUGE_SHIFT - PAGE_SHIFT),
                              v.huge_vpn >> np.uint64(HUGE_SHIFT - PAGE_SHIFT))
            vpn, pfn = vpn[~in_huge], pfn[~in_huge]
        first, pages, first_pfn = _runs(vpn, pfn, snap.pfns_are_real)
        if len(first):
            pt.map(first << shift4k, pages << shift4k, page_size="4K",
                   pfn=first_pfn if snap.pfns_are_real else None, **perms)
