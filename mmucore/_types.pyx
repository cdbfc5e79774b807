"""Constants of the type vocabulary (``_types.pxd``) for Python code: op codes, policy
codes, page-size codes and the dtypes of trace columns."""
from mmucore._types cimport (OP_LOAD, OP_STORE, OP_IFETCH, OP_MODIFY, OP_SWITCH, OP_INVLPG,
                             OP_FLUSH, OP_FLUSH_ASID, OP_MAP, OP_UNMAP, OP_KMAP, OP_KUNMAP,
                             OP_KMAP_ATOMIC, OP_KUNMAP_ATOMIC, POLICY_LRU, POLICY_FIFO,
                             POLICY_RANDOM, POLICY_PLRU, POLICY_LFU, POLICY_SRRIP,
                             PS_4K, PS_2M, PS_4M, PS_1G, page_shift, vaddr_t, asid_t)
import numpy as np

cdef extern from *:
    int MMUCORE_DEBUG_BUILD   # set by setup.py: 1 in the checked build (MMUCORE_DEBUG=1)

#: True when this copy of the engine was built with bounds checks (MMUCORE_DEBUG=1).
DEBUG = bool(MMUCORE_DEBUG_BUILD)

OPS = {"LOAD": OP_LOAD, "STORE": OP_STORE, "IFETCH": OP_IFETCH, "MODIFY": OP_MODIFY,
       "SWITCH": OP_SWITCH, "INVLPG": OP_INVLPG, "FLUSH": OP_FLUSH,
       "FLUSH_ASID": OP_FLUSH_ASID, "MAP": OP_MAP, "UNMAP": OP_UNMAP, "KMAP": OP_KMAP,
       "KUNMAP": OP_KUNMAP, "KMAP_ATOMIC": OP_KMAP_ATOMIC, "KUNMAP_ATOMIC": OP_KUNMAP_ATOMIC}

POLICIES = {"lru": POLICY_LRU, "fifo": POLICY_FIFO, "random": POLICY_RANDOM,
            "plru": POLICY_PLRU, "lfu": POLICY_LFU, "srrip": POLICY_SRRIP}

PAGE_SIZE_CODES = {"4K": PS_4K, "2M": PS_2M, "4M": PS_4M, "1G": PS_1G}
PAGE_SHIFTS = {code: page_shift(code) for code in (PS_4K, PS_2M, PS_4M, PS_1G)}

VADDR_DTYPE = np.dtype(np.uint64)
ASID_DTYPE = np.dtype(np.uint16)
SIZEOF = {"vaddr_t": sizeof(vaddr_t), "asid_t": sizeof(asid_t)}
