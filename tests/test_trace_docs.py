"""pyapi.trace: the runnable examples of its docstrings, and the workload generators of
pyapi.workloads as trace sources (what the engines get through as_trace)."""
import doctest

import pytest

import pyapi.trace
from pyapi.trace import Trace, as_trace


def test_docstring_examples():
    result = doctest.testmod(pyapi.trace, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_workload_generators_are_traces(tmp_path):
    workloads = pytest.importorskip("pyapi.workloads")
    w = workloads.from_spec("uniform:n=1000,footprint=1M,seed=3") \
        if hasattr(workloads, "from_spec") else None
    if w is None:
        pytest.skip("pyapi.workloads has no from_spec")
    t = as_trace(w)
    assert len(t) == 1000
    chunks = list(t.chunks(300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    whole = t.read()
    native = Trace.convert(w, tmp_path / "w")
    assert native.read().addr.tolist() == whole.addr.tolist()
    assert native.read().op.tolist() == whole.op.tolist()
