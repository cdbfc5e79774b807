"""The kmap cimport contract, and the hook an MMU will use: a third-party Cython module
cimports ``mmucore.kmap``, drives a ``KmapCore``'s state one op at a time with
``kmap_op`` + ``kmap_settle`` (as an MMU's replay loop would for the kmap ops of its
trace), and must get exactly what ``KmapPool.run`` gets."""
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
from pyapi.kmap import KmapPool, PerTaskKmapPool
from pyapi.kmap_workloads import page_cache

INCLUDE = Path(mmucore.__file__).resolve().parent.parent

CONSUMER = '''
from mmucore.kmap cimport (KmapCore, KmapState, kmap_op, kmap_settle, KOP_BUG,
                           KOP_DONE)
from mmucore._types cimport uint8_t, uint16_t, uint32_t, uint64_t, intp_t

def replay(KmapCore core, const uint64_t[::1] addr, const uint8_t[::1] op,
           const uint16_t[::1] cpu, const uint32_t[::1] task):
    cdef KmapState* s = core.state()
    cdef intp_t i
    cdef int r
    with nogil:
        for i in range(addr.shape[0]):
            r = kmap_op(s, op[i], addr[i], 0, cpu[i], task[i], i)
            if r == KOP_BUG:
                break
            if s.pending_wake and kmap_settle(s) == KOP_BUG:
                break
    return s.c.ops
'''

SETUP = '''
import os
from setuptools import setup, Extension
from Cython.Build import cythonize
setup(ext_modules=cythonize([Extension("kmap_consumer", ["kmap_consumer.pyx"])],
                            include_path=[os.environ["MMUCORE_INCLUDE"]],
                            compiler_directives={"language_level": 3}))
'''


def _c_compiler():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    exe = shlex.split(cc)[0] if cc.strip() else "cc"
    return shutil.which(exe)


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    if _c_compiler() is None:
        pytest.skip("no C compiler available")
    pytest.importorskip("Cython")
    build = tmp_path_factory.mktemp("kmap_consumer")
    (build / "kmap_consumer.pyx").write_text(CONSUMER)
    (build / "setup.py").write_text(SETUP)
    env = dict(os.environ, MMUCORE_INCLUDE=str(INCLUDE))
    env["CFLAGS"] = (env.get("CFLAGS", "") + " -O0 -g0").strip()
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=build,
                          env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        pytest.fail(f"building the kmap consumer failed:\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")
    built = sorted(build.glob("kmap_consumer*" + sysconfig.get_config_var("EXT_SUFFIX")))
    spec = importlib.util.spec_from_file_location("kmap_consumer", built[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cls,kernel", [(KmapPool, "2.4.18"), (KmapPool, "6.x"),
                                        (PerTaskKmapPool, "2.6.12")])
def test_op_by_op_hook_matches_the_batch_loop(consumer, cls, kernel):
    t = page_cache(20000, file_pages=2048, tasks=6, cpus=3, hit_rate=0.6, user_accesses=1,
                   seed=4)
    a = cls(kernel=kernel, cpus=3, tlb=dict(entries=16, ways=4))
    b = cls(kernel=kernel, cpus=3, tlb=dict(entries=16, ways=4))
    ops = consumer.replay(a.core, t.addr, t.op, t.cpu, t.task)
    s = b.run(t)
    assert ops == s.ops and a.stats == s
    assert [x.stats for x in a.tlbs] == [x.stats for x in b.tlbs]
    assert np.array_equal(a.state()["pkmap_count"], b.state()["pkmap_count"])
