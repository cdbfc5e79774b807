"""Shared fixtures and hypothesis profiles of the mmucore tests.

Hypothesis profiles: "default" (60 examples per test, fast; used unless told otherwise),
"ci" (400) and "deep" (5000, minutes: for hunting engine bugs). Pick one with
``HYPOTHESIS_PROFILE=ci`` or ``pytest --hypothesis-profile=ci``. No deadlines: the
pure-Python reference is slow on wide structures.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, max_examples=60, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "ci", deadline=None, max_examples=400, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "deep", deadline=None, max_examples=5000, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def make_input(array, writable, tmp_path, name="arr", kind="memmap"):
    """``array`` as the tests want to pass it: a writable ndarray when ``writable``, else
    a read-only copy (``kind="readonly"``) or a read-only ``np.memmap`` of a file in
    ``tmp_path`` (``kind="memmap"``; zero-length arrays cannot be memory-mapped, so they
    become read-only copies)."""
    array = np.ascontiguousarray(array)
    if writable:
        return array.copy()
    if kind == "memmap" and array.size:
        path = tmp_path / f"{name}.bin"
        array.tofile(path)
        mm = np.memmap(path, dtype=array.dtype, mode="r", shape=array.shape)
        assert not mm.flags.writeable
        return mm
    out = array.copy()
    out.setflags(write=False)
    return out


@pytest.fixture(params=[True, False], ids=["writable", "readonly"])
def writable(request):
    """True: tests pass ordinary arrays; False: read-only copies / read-only memmaps."""
    return request.param


@pytest.fixture
def to_input(writable, tmp_path):
    """``to_input(array, kind="memmap"|"readonly")``: ``make_input`` bound to this test's
    ``writable`` parameter and ``tmp_path``."""
    counter = iter(range(1 << 30))

    def convert(array, kind="memmap"):
        return make_input(array, writable, tmp_path, name=f"arr{next(counter)}", kind=kind)
    return convert
