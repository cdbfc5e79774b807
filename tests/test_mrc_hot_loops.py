"""The stack-distance kernels touch no Python objects (what `cython -a` shows as yellow).

Translates mmucore/stackdist.pyx to C (tests/cython_c.py) and checks that the body of
every cdef function is free of Python API calls, apart from the error exits of the
kernels that may raise (allocation failures, bad arguments): those functions are
checked with their error exit cut off (`strip_error_exit`), so the code that runs per
access is still required to be clean.
"""
from cython_c import dirty, function_bodies, translate

KERNELS = {"sd_hash", "_map_home", "_map_find", "_map_alloc", "_map_grow", "_map_delete",
           "_fen_add", "_ones_upto", "_clear_pos", "_set_pos", "_times_alloc", "_compact",
           "_touch", "_drop", "_hist_grow", "_hist_add", "_whist_add", "_heap_push",
           "_heap_pop", "sd_init", "sd_free", "_feed_exact", "_feed_sets", "_feed_rate",
           "_feed_size", "sd_feed"}
#: the kernels that raise (MemoryError/ValueError) inside a `with gil:` block
RAISING = {"_map_alloc", "_times_alloc", "_compact", "_hist_grow", "sd_init", "sd_feed"}
#: the kernels declared `except -1` (they propagate an error: Cython gives each an
#: error exit that takes the GIL and adds a traceback frame); the others are noexcept
PROPAGATING = RAISING | {"_map_grow", "_touch", "_hist_add", "_feed_exact", "_feed_sets",
                         "_feed_rate", "_feed_size"}


def _kernels(tmp_path, strip):
    c = translate(tmp_path, "stackdist", ("stackdist.pyx", "stackdist.pxd", "_types.pxd",
                                          "_rng.pxd"))
    return function_bodies(c, "stackdist", strip_error_exit=strip)


def test_kernels_have_no_python_interaction(tmp_path):
    """Up to their error exit, only the raising kernels touch Python (in their `raise`
    blocks); the per-access loops and everything they call are clean."""
    kernels = _kernels(tmp_path, strip=True)
    assert KERNELS <= set(kernels), f"kernels removed: {sorted(KERNELS - set(kernels))}"
    assert dirty({k: kernels[k] for k in KERNELS}, allowed=RAISING) == []
    for name in ("_feed_exact", "_feed_sets", "_feed_rate", "_feed_size", "_touch",
                 "_hist_add", "_map_grow"):
        assert dirty({name: kernels[name]}) == [], name


def test_noexcept_kernels_are_clean_entirely(tmp_path):
    kernels = _kernels(tmp_path, strip=False)
    assert dirty({k: kernels[k] for k in KERNELS - PROPAGATING}) == []
