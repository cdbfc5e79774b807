# The public cimport surface of mmucore in one place:
#     cimport mmucore            # then mmucore.TLBState, mmucore.tlb_lookup, ...
#     from mmucore cimport TLBCore, tlb_access_batch, vaddr_t
# See docs/cython_api.md for the exception specifications and GIL rules.
from mmucore._types cimport *
from mmucore.tlb cimport *
from mmucore.pagetable cimport *
from mmucore.parse cimport *
from mmucore.kmap cimport *
