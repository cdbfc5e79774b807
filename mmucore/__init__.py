"""mmucore: the Cython engine of the mmucore MMU simulator.

The Python API lives in :mod:`pyapi`; this package holds the compiled kernels and the
``.pxd`` files that other Cython code may ``cimport`` (see ``docs/cython_api.md``).
"""
__all__ = []
