"""Build the example consumer of mmucore's cimport contract:

    python setup.py build_ext --inplace

It compiles against the ``.pxd`` files of the mmucore that Python imports (an installed
package ships them: ``mmucore/tlb.pxd``, ``mmucore/_types.pxd``, ``mmucore/_rng.pxd``).
Set ``MMUCORE_INCLUDE`` to the directory that *contains* the ``mmucore`` package to
build against another copy. The kernels are reached at run time through
``mmucore.tlb``'s exported C API, so nothing links against mmucore.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup


def mmucore_include() -> str:
    path = os.environ.get("MMUCORE_INCLUDE")
    if path:
        return path
    import mmucore
    return os.path.dirname(os.path.dirname(os.path.abspath(mmucore.__file__)))


setup(
    name="mmucore-consumer-example",
    ext_modules=cythonize(
        [Extension("consumer", ["consumer.pyx"])],
        include_path=[mmucore_include()],
        compiler_directives={"language_level": 3, "boundscheck": False,
                             "wraparound": False},
    ),
    zip_safe=False,
)
