# The one type vocabulary of mmucore. Every C type used by the engine comes from here.
# Part of the public cimport contract (see docs/cython_api.md): change only with a
# version bump and a changelog entry.
from libc.stdint cimport (uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t)

ctypedef uint64_t vaddr_t      # virtual address (bytes)
ctypedef uint64_t paddr_t      # physical address (bytes)
ctypedef uint64_t pfn_t        # physical frame number
ctypedef uint64_t vpn_t        # virtual page number (address >> page shift)
ctypedef uint16_t asid_t       # address-space id (PCID on x86 uses 12 bits)
ctypedef Py_ssize_t intp_t     # indices and counts

# Replacement policies (values are part of the ABI).
cdef enum Policy:
    POLICY_LRU = 0
    POLICY_FIFO = 1
    POLICY_RANDOM = 2
    POLICY_PLRU = 3
    POLICY_LFU = 4
    POLICY_SRRIP = 5

# Page-size codes. A structure holds a bit mask of these (1 << code).
cdef enum PageSizeCode:
    PS_4K = 0
    PS_2M = 1
    PS_4M = 2
    PS_1G = 3
    PS_COUNT = 4

# Trace operation codes (DESIGN section 3). Values are part of the trace format.
cdef enum OpCode:
    OP_LOAD = 0
    OP_STORE = 1
    OP_IFETCH = 2
    OP_MODIFY = 3
    OP_SWITCH = 4
    OP_INVLPG = 5
    OP_FLUSH = 6
    OP_FLUSH_ASID = 7
    OP_MAP = 8
    OP_UNMAP = 9
    OP_KMAP = 10
    OP_KUNMAP = 11
    OP_KMAP_ATOMIC = 12
    OP_KUNMAP_ATOMIC = 13

# Page shift of each page-size code.
cdef inline uint32_t page_shift(uint32_t code) noexcept nogil:
    if code == PS_4K:
        return 12
    if code == PS_2M:
        return 21
    if code == PS_4M:
        return 22
    return 30
