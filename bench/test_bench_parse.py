"""pytest-benchmark suite of the text-trace parser (``pytest bench --benchmark-only``).

Texts are those of ``bench/parse.py`` (lackey-like records, and the same records as din,
xdin and pinatrace), generated once per session. Each benchmark parses the whole text in
one ``parse_text`` call into columns allocated outside the timing, and asserts a
checksum: the parsed columns equal the generated records. A pure-Python lackey parser
(the obvious ``splitlines`` / ``split`` / ``int(x, 16)`` loop) runs on the first tenth of
the lackey text, with the same check on that prefix.

Text size by ``MMUBENCH_PROFILE``: ``fast`` 10^5, ``regular`` 10^6 (default), ``large``
10^7 records (about 1.5, 15 and 150 MB of lackey text); ``MMUBENCH_N`` overrides it.
"""
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from _benchenv import REPO, profile  # noqa: E402,F401  (bench/_benchenv.py)

from mmucore.parse import FORMATS, parse_text  # noqa: E402

_spec = importlib.util.spec_from_file_location("mmucore_bench_parse",
                                               Path(__file__).with_name("parse.py"))
bp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bp)

PROFILE, N, ROUNDS = profile(rounds=5)


@pytest.fixture(scope="session")
def corpus():
    rec = bp.make_records(N, seed=0)
    return rec, {fmt: bp.make_text(fmt, *rec) for fmt in FORMATS}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_parse_text(benchmark, corpus, fmt):
    rec, texts = corpus
    text = texts[fmt]
    addr, op, size = np.empty(N, np.uint64), np.empty(N, np.uint8), np.empty(N, np.uint16)
    benchmark.extra_info["bytes"] = len(text)
    r = benchmark.pedantic(parse_text, args=(FORMATS[fmt], text, True, addr, op, size),
                           rounds=ROUNDS, iterations=1, warmup_rounds=1)
    want = bp.expected(fmt, *rec)
    n = r.n_records
    assert r.err_offset == -1 and r.consumed_bytes == len(text) and n == len(want[0])
    for got, w in zip((addr[:n], op[:n], size[:n]), want):
        assert np.array_equal(got, w)
    benchmark.extra_info["MB/s"] = len(text) / benchmark.stats.stats.min / 1e6


def test_pure_python_lackey(benchmark, corpus):
    rec, texts = corpus
    lk = texts["lackey"]
    prefix = lk[:lk.rfind(b"\n", 0, max(1, len(lk) // 10)) + 1]
    benchmark.extra_info["bytes"] = len(prefix)
    got = benchmark.pedantic(bp.python_lackey, args=(prefix,), rounds=min(ROUNDS, 3),
                             iterations=1)
    n = len(got[0])
    assert n > 0
    for g, w in zip(got, rec):
        assert np.array_equal(g, w[:n])
    benchmark.extra_info["MB/s"] = len(prefix) / benchmark.stats.stats.min / 1e6
