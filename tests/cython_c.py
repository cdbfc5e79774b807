"""Shared by the hot-loop tests: translate one engine module to C, as the release build
does, and cut the generated C into its functions, to check that nogil kernels touch no
Python objects (what `cython -a` shows as yellow lines).

Function names are short: ``tlb_init`` for ``__pyx_f_7mmucore_3tlb_tlb_init``, and
``_batch[__pyx_fuse_0_1_0]`` for a fused specialisation.
"""
import pathlib
import re
import shutil

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "mmucore"

#: C that means "touches the Python runtime" (reference counts, objects, exceptions, the
#: GIL, module globals, tracebacks). RefNanny bookkeeping macros compile to nothing.
PY_API = re.compile(r"Py_INCREF|Py_DECREF|Py_XDECREF|PyObject_|__Pyx_Raise|PyGILState_|"
                    r"__Pyx_GetModuleGlobal|__Pyx_PyObject|__Pyx_PyInt|PyErr_|"
                    r"__Pyx_ErrFetch|__Pyx_AddTraceback|PyList_|"
                    r"__Pyx_RefNanny(?!Declarations|SetupContext|FinishContext)")


def translate(tmp_path, module, sources):
    """The C text of ``mmucore/<module>.pyx`` translated with the release directives;
    ``sources`` are the files (the .pyx and every .pxd it cimports) copied into a
    temporary package. Skips when Cython or the sources are not available."""
    cython = pytest.importorskip("Cython.Compiler.Main")
    if not (SRC / f"{module}.pyx").exists():
        pytest.skip("the engine sources are not next to the tests (installed-only run)")
    pkg = tmp_path / "mmucore"
    pkg.mkdir()
    for name in sources:
        shutil.copy(SRC / name, pkg / name)
    (pkg / "__init__.py").write_text("")
    options = cython.CompilationOptions(
        language_level=3, include_path=[str(tmp_path)],
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False})
    result = cython.compile(str(pkg / f"{module}.pyx"), options,
                            full_module_name=f"mmucore.{module}")
    assert result.num_errors == 0
    return (pkg / f"{module}.c").read_text()


def function_bodies(c_source, module, strip_error_exit=False):
    """{short name: body} of every C function of ``mmucore.<module>``.

    With ``strip_error_exit`` the code from Cython's error label (``__pyx_L1_error``: take
    the GIL, add a traceback frame; it runs only once an exception is set, i.e. on the
    raising path of an ``except -1`` kernel) to the end is cut off, together with the
    declaration of the GIL-state variable it uses."""
    prefix = f"__pyx_f_7mmucore_{len(module)}{module}_"
    head = re.compile(r"^(?:static )?[^\n;]*?\b((?:__pyx_fuse_[0-9_]+?)?" + prefix +
                      r"\w+)\([^)]*\)\s*\{", re.M)
    out = {}
    for m in head.finditer(c_source):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(c_source[i], 0)
            i += 1
        body = c_source[m.end():i]
        if strip_error_exit:
            body = body.split("__pyx_L1_error:")[0]
            body = body.replace("PyGILState_STATE __pyx_gilstate_save;", "")
        fuse, _, name = m.group(1).partition(prefix)
        out[f"{name}[{fuse.rstrip('_')}]" if fuse else name] = body
    return out


def dirty(kernels, allowed=()):
    """The functions, other than ``allowed``, whose body touches Python."""
    return sorted(k for k, body in kernels.items() if PY_API.search(body) and k not in allowed)
