"""Build script for mmucore's Cython engine.

All Cython compiler directives live here, and only here (no ``# cython:`` file headers),
so that one switch turns the checked build on:

* ``MMUCORE_DEBUG=1``    bounds and initialisation checks on, ``-O0 -g`` (the test suite runs
  once against such a build in CI);
* ``MMUCORE_ANNOTATE=1`` writes ``cython -a`` HTML next to each ``.pyx`` (look for yellow
  lines inside hot loops);
* ``MMUCORE_NATIVE=1``   adds ``-march=native`` (off by default so wheels stay portable);
* ``MMUCORE_MODULES=a,b`` builds only those modules (a developer working on one engine
  module need not rebuild, or be broken by, the others).

Every ``mmucore/*.pyx`` is an extension module of the same name.
"""
import glob
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("MMUCORE_DEBUG", "0") not in ("", "0")
ANNOTATE = os.environ.get("MMUCORE_ANNOTATE", "0") not in ("", "0")
NATIVE = os.environ.get("MMUCORE_NATIVE", "0") not in ("", "0")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "cdivision": True,
    "embedsignature": True,
}

if sys.platform == "win32":
    CFLAGS = ["/Od", "/Zi"] if DEBUG else ["/O2"]
else:
    CFLAGS = ["-O0", "-g"] if DEBUG else ["-O3"]
    if NATIVE:
        CFLAGS.append("-march=native")

MODULES = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "mmucore", "*.pyx")))
_ONLY = [m.strip() for m in os.environ.get("MMUCORE_MODULES", "").split(",") if m.strip()]
if _ONLY:
    _unknown = sorted(set(_ONLY) - set(MODULES))
    if _unknown:
        sys.exit(f"MMUCORE_MODULES names modules with no mmucore/<name>.pyx: {_unknown}")
    MODULES = [m for m in MODULES if m in _ONLY]

# The MMU's per-access path is one compilation unit (mmu.pyx includes the TLB and walk
# internals, _tlb_core.pxi and _pt_walk.pxi). GCC's size heuristics still leave the
# probe, fill, walk and PSC kernels out of line there; in mmu.c every `cdef inline`
# function is forced inline instead (Cython emits them as `static CYTHON_INLINE`, a macro
# it defines only when unset). Measured with callgrind on the Skylake uniform replay:
# 2,005 -> 1,913 instructions per access.
_FORCE_INLINE = {} if (DEBUG or sys.platform == "win32") else {
    "mmu": [("CYTHON_INLINE", "inline __attribute__((always_inline))")],
}

extensions = [
    Extension(
        f"mmucore.{name}",
        [f"mmucore/{name}.pyx"],
        include_dirs=[numpy.get_include(), "mmucore"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("MMUCORE_DEBUG_BUILD", "1" if DEBUG else "0")]
        + _FORCE_INLINE.get(name, []),
        extra_compile_args=CFLAGS,
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=DIRECTIVES,
        annotate=ANNOTATE,
    ),
    zip_safe=False,
)
