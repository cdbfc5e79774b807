"""The workload generators of pyapi.workloads as trace sources (what the engines get
through as_trace). pyapi.trace's docstring examples run in tests/test_docstrings.py."""
from pyapi.trace import Trace, as_trace


def test_workload_generators_are_traces(tmp_path):
    from pyapi import workloads
    w = workloads.from_spec("uniform:n=1000,footprint=1M,seed=3")
    t = as_trace(w)
    assert len(t) == 1000
    chunks = list(t.chunks(300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    whole = t.read()
    native = Trace.convert(w, tmp_path / "w")
    assert native.read().addr.tolist() == whole.addr.tolist()
    assert native.read().op.tolist() == whole.op.tolist()
