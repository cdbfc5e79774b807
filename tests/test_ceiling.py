"""bench/ceiling_skylake.c, the hand-tuned C loop that bench/mmu.py's ceiling row times,
does the same work as the engine: on a uniform stream over a pre-mapped 1 GiB (Skylake,
x86_64, 4K pages) each of its builds (``-O3``, and ``-O3 -mavx2`` on a CPU with AVX2)
reports exactly mmucore's L1 and STLB hits, walks, walk references and PSC hits per level.
A ceiling that counted differently would make its rate meaningless."""
import importlib.util
import shutil
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "mmu.py"


@pytest.mark.skipif(not BENCH.exists(), reason="bench/ is not in this tree")
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="no C compiler")
def test_ceiling_loop_counts_what_the_engine_counts(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_mmu", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    mmucore_rate, builds = bench.ceiling(20_000, 1, tmp_path)
    assert mmucore_rate > 0
    assert [flags for flags, _, _ in builds][0] == "-O3"
    for flags, rate, same in builds:
        assert same, f"cc {flags}: counters differ from mmucore's"
        assert rate > 0


@pytest.mark.skipif(not BENCH.exists(), reason="bench/ is not in this tree")
def test_other_presets_rows_compare_equal_replays():
    """bench/mmu.py's other-preset rows time each preset with the 4K run and without it;
    both replays report the same counters (else the rates compare different work)."""
    spec = importlib.util.spec_from_file_location("bench_mmu", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.other_presets(20_000, 1)
    assert [p for p, _, _, _ in rows] == list(bench.OTHER_PRESETS)
    for preset, with_run, without, same in rows:
        assert same, preset
        assert with_run > 0 and without > 0


SCALE = BENCH.parent / "scale.py"


@pytest.mark.skipif(not SCALE.exists(), reason="bench/ is not in this tree")
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="no C compiler")
@pytest.mark.parametrize("kind", ["uniform", "zipf"])
def test_scale_ceiling_rows_count_what_the_engine_counts(kind):
    """bench/scale.py's ceiling rows run the C loop on a prefix of the 4 GiB uniform and
    zipf streams (pre-mapped); it reports mmucore's counters there too."""
    spec = importlib.util.spec_from_file_location("bench_scale", SCALE)
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    row = scale.ceiling_row(kind, 20_000)
    assert row["kind"] == kind and row["mmucore_rate"] > 0
    assert [c["flags"] for c in row["c"]][0] == "-O3"
    for c in row["c"]:
        assert c["counters_identical"], f"cc {c['flags']}: counters differ from mmucore's"
        assert c["c_rate"] > 0
