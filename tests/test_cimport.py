"""The cimport contract (modelled on numpy's tests/test_extending.py).

``docs/examples/cython/consumer.pyx`` is a third-party Cython module that cimports
``TLBCore``, ``TLBState`` and the kernels ``tlb_lookup``/``tlb_fill``/``tlb_probe`` from
``mmucore.tlb`` and its types from ``mmucore._types``. It is compiled here, in a
temporary directory, against the ``.pxd`` files of the mmucore that this interpreter
imports (the installed package when the suite runs against an install), imported, and
its results are checked against ``pyapi.TLB``.
"""
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import mmucore
from pyapi import TLB

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "cython"
MMUCORE_DIR = Path(mmucore.__file__).resolve().parent
INCLUDE = MMUCORE_DIR.parent


def _c_compiler():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    exe = shlex.split(cc)[0] if cc.strip() else "cc"
    return shutil.which(exe)


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    if _c_compiler() is None:
        pytest.skip("no C compiler available to build the example cimport consumer")
    for pxd in ("tlb.pxd", "_types.pxd"):
        assert (MMUCORE_DIR / pxd).is_file(), \
            f"{pxd} is not installed beside {MMUCORE_DIR / '__init__.py'}: the package " \
            f"must ship its .pxd files (package_data) for cimport users"
    build = tmp_path_factory.mktemp("consumer")
    for name in ("consumer.pyx", "setup.py"):
        shutil.copy(EXAMPLE / name, build / name)
    env = dict(os.environ)
    env["MMUCORE_INCLUDE"] = str(INCLUDE)
    # an unoptimised build: this checks the contract, not speed, and -O0 compiles fastest
    env["CFLAGS"] = (env.get("CFLAGS", "") + " -O0 -g0").strip()
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                          cwd=build, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        pytest.fail("building docs/examples/cython/consumer.pyx against "
                    f"{INCLUDE} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    built = sorted(build.glob("consumer*" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")))
    assert built, f"no extension module was built in {build}: {os.listdir(build)}"
    spec = importlib.util.spec_from_file_location("consumer", built[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trace(n, seed, footprint=1 << 24):
    return np.random.default_rng(seed).integers(0, footprint, n, dtype=np.uint64)


@pytest.mark.parametrize("entries,ways,policy", [
    (64, 4, "lru"), (64, 64, "lru"), (48, 4, "plru"), (1536, 12, "srrip"),
    (32, 32, "fifo"), (64, 4, "random"), (24, 24, "lfu"),
])
def test_count_hits_matches_pyapi(consumer, entries, ways, policy):
    va = _trace(50_000, seed=entries + ways)
    va[1::3] = va[0::3][: va[1::3].shape[0]]       # some same-page repeats
    a = TLB(entries=entries, ways=ways, policy=policy, seed=5)
    b = TLB(entries=entries, ways=ways, policy=policy, seed=5)
    hits = consumer.count_hits(a.core, va)
    r = b.access(va)
    assert hits == r.hits
    assert a.stats == b.stats       # the kernels keep the same counters as the batch loop
    assert a.stats.accesses == va.shape[0]


def test_probe_and_payload(consumer):
    tlb = TLB(entries=64, ways=4)
    va = _trace(10_000, seed=3)
    consumer.count_hits(tlb.core, va)
    before = tlb.stats
    entries = consumer.probe_many(tlb.core, va)
    assert entries.dtype == np.int64 and entries.shape == va.shape
    assert tlb.stats == before                  # probing changes nothing
    assert entries[-1] >= 0                     # the last page is present
    present = entries >= 0
    assert int(present.sum()) >= 1
    # the consumer stored the page number as the payload of each fill
    for e, v in zip(entries[present][-20:], va[present][-20:]):
        assert consumer.payload(tlb.core, int(e)) == int(v) >> 12
    # presence agrees with a TLB that saw the same stream through pyapi
    ref = TLB(entries=64, ways=4)
    ref.access(va)
    assert np.array_equal(consumer.probe_many(ref.core, va) >= 0, present)
    # 2M pages, struct fields read directly
    big = TLB(entries=8, ways=2, page_size=("4K", "2M"), policy="lru")
    assert consumer.geometry(big.core) == (4, 2, 8, 0)
    assert consumer.count_hits(big.core, np.array([0, 0x1000, 0x1FF000], dtype=np.uint64),
                               size_code=1) == 2
    with pytest.raises(ValueError):
        consumer.count_hits(TLB(entries=8).core, va[:4], size_code=1)


def test_readonly_input(consumer, tmp_path):
    va = _trace(5_000, seed=9)
    path = tmp_path / "va.bin"
    va.tofile(path)
    mm = np.memmap(path, dtype=np.uint64, mode="r")
    assert not mm.flags.writeable
    a, b = TLB(entries=16, ways=4), TLB(entries=16, ways=4)
    assert consumer.count_hits(a.core, mm) == b.access(va).hits
    assert consumer.count_hits(a.core, va[:0]) == 0
