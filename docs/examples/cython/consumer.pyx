"""A third-party Cython module built on mmucore's cimport contract.

It drives a TLB owned by ``pyapi.TLB`` (``tlb.core`` is the ``TLBCore``) through the
single-translation kernels of ``mmucore/tlb.pxd``, with the GIL released: the pattern an
MMU model, a cache hierarchy or a replay loop of another package would use. Built and
checked against ``pyapi.TLB`` by ``tests/test_cimport.py``; see ``docs/cython_api.md``.

No compiler directives here: they belong to the build (``setup.py`` beside this file).
"""
from mmucore._types cimport (uint32_t, uint64_t, int64_t, vaddr_t, asid_t, intp_t, PS_4K,
                             PS_COUNT, page_shift)
from mmucore.tlb cimport (TLBCore, TLBState, tlb_lookup, tlb_fill, tlb_probe,
                          TLB_ABI_VERSION)

import numpy as np       # Python-level only: the cimport surface needs no numpy headers
import mmucore.tlb

# Refuse to run against an engine whose TLBState differs from the one compiled in here.
mmucore.tlb.abi_check(TLB_ABI_VERSION, sizeof(TLBState))


cdef intp_t _count_hits(TLBState* t, const uint64_t* va, intp_t n, asid_t asid,
                        uint32_t size_code) noexcept nogil:
    cdef intp_t i, hits = 0
    cdef vaddr_t v
    for i in range(n):
        v = va[i]
        if tlb_lookup(t, v, asid) >= 0:
            hits += 1
        else:
            # the payload of the translation: here the page number, as a pfn would be
            tlb_fill(t, v, asid, size_code, False, v >> page_shift(size_code))
    return hits


def count_hits(TLBCore core not None, const uint64_t[::1] vaddrs not None,
               asid_t asid=0, uint32_t size_code=PS_4K):
    """Look up each address; on a miss fill its translation. Returns the number of hits
    (the TLB's own counters are updated by the kernels as well)."""
    cdef TLBState* t = core.state()
    cdef intp_t n = vaddrs.shape[0]
    cdef intp_t hits = 0
    if size_code >= PS_COUNT or not ((t.size_mask >> size_code) & 1):
        raise ValueError(f"page-size code {size_code} is not held by this TLB")
    if n == 0:
        return 0
    with nogil:
        hits = _count_hits(t, &vaddrs[0], n, asid, size_code)
    return hits


def probe_many(TLBCore core not None, const uint64_t[::1] vaddrs not None, asid_t asid=0):
    """Entry index of each address's translation, or -1 (``tlb_probe`` changes nothing),
    as an int64 array."""
    cdef TLBState* t = core.state()
    cdef intp_t i, n = vaddrs.shape[0]
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] res = out
    with nogil:
        for i in range(n):
            res[i] = tlb_probe(t, vaddrs[i], asid)
    return out


def payload(TLBCore core not None, intp_t entry):
    """The ``data`` word of an entry (what ``tlb_fill`` stored), read from the state struct."""
    cdef TLBState* t = core.state()
    if entry < 0 or entry >= t.entries:
        raise IndexError(f"entry {entry} outside 0..{t.entries - 1}")
    return t.data[entry]


def geometry(TLBCore core not None):
    """(sets, ways, entries, policy) read straight from the struct."""
    cdef TLBState* t = core.state()
    return (t.sets, t.ways, t.entries, t.policy)
