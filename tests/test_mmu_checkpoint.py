"""MMU checkpoints (issue 9): MMU.save/MMU.load round trips (the engine state byte for
byte, the counters, and what happens after), replay(checkpoint=, every=) with a replay
process killed midway and resumed, and the errors of bad files."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

from pyapi import Op, Trace
from pyapi.chunk import TraceChunk
from pyapi.config import MMUConfig, TLBConfig
from pyapi.mmu import MMU

K4 = 4096
M2 = 2 << 20


def make_trace(seed, n, cpus=1, asids=1, controls=True, x86_32=False):
    """Loads/stores/ifetches over a few regions (4K pages, 2M-aligned spans for THP),
    some page-crossing accesses, and (controls) every MMU control op."""
    rng = np.random.default_rng(seed)
    span = 64 << 20 if not x86_32 else 16 << 20
    hot = rng.integers(0, 256, n) * K4 + 0x400000
    cold = rng.integers(0, span, n)
    addr = np.where(rng.random(n) < 0.6, hot, cold).astype(np.uint64)
    if not x86_32:
        far = rng.integers(0, 4, n).astype(np.uint64) << np.uint64(39)
        addr = addr + np.where(rng.random(n) < 0.2, far, 0).astype(np.uint64)
    op = rng.choice(np.array([0, 1, 2, 3], np.uint8), n, p=[0.6, 0.25, 0.1, 0.05])
    size = np.where(rng.random(n) < 0.02, 16, 8).astype(np.uint16)
    addr[size == 16] |= np.uint64(0xFF8)                     # crosses into the next page
    cpu = rng.integers(0, cpus, n).astype(np.uint16)
    if controls:
        k = np.flatnonzero(rng.random(n) < 0.01)
        ctl = rng.choice(np.array([4, 5, 6, 7, 8, 9], np.uint8), len(k))
        op[k] = ctl
        args = addr[k].copy()
        sw = (ctl == Op.SWITCH) | (ctl == Op.FLUSH_ASID)
        args[sw] = rng.integers(0, asids, int(sw.sum())).astype(np.uint64)
        fl = ctl == Op.FLUSH
        args[fl] = rng.integers(0, 4, int(fl.sum())).astype(np.uint64)
        addr[k] = args
        size[k] = 1
    return TraceChunk(addr, op=op, size=size, cpu=cpu if cpus > 1 else None)


def tlb(name, level, side, entries, ways, sizes=("4K",), policy="lru"):
    return TLBConfig(name, level, side, entries, ways, tuple(sizes), policy=policy)


def config(policy="lru", l2_policy=None, **kw):
    tlbs = (tlb("itlb", 1, "instruction", 32, 4, policy=policy),
            tlb("dtlb", 1, "data", 64, 4, policy=policy),
            tlb("dtlb_2m", 1, "data", 16, 16, ("2M",), policy=policy),
            tlb("stlb", 2, "unified", 256, 8, ("4K", "2M"), policy=l2_policy or policy))
    kw.setdefault("psc", {"pde": (16, 4), "pdpte": (4, 4), "pml4e": (2, 2)})
    kw.setdefault("phys_mem", "1G")
    return MMUConfig("ckpt", tlbs=tlbs, **kw)


CONFIGS = {
    "lru-1cpu": (config(), dict()),
    "random-2cpu-pcid-thp": (config("random", cpus=2, pcid=True, huge_pages="thp"),
                             dict(cpus=2, asids=3)),
    "plru-exclusive": (config("plru", inclusion="exclusive", cpus=2), dict(cpus=2, asids=2)),
    "lfu-noninclusive-thp": (config("lfu", "srrip", inclusion="non-inclusive",
                                    huge_pages="thp", allocator="random"), dict(asids=4)),
    "srrip-fifo-4cpu": (config("srrip", "fifo", cpus=4, pcid=True, psc_policy="plru"),
                        dict(cpus=4, asids=5)),
    "x86_32": (config(paging="x86_32", psc={"pde": (8, 2)}, phys_mem="256M"),
               dict(asids=2, x86_32=True)),
    "pae-always": (config("plru", paging="pae", psc={"pde": (8, 8)}, huge_pages="always",
                          cpus=2), dict(cpus=2, asids=2, x86_32=True)),
    "wide-fifo": (MMUConfig("wide", tlbs=(tlb("dtlb", 1, "data", 128, 128, policy="fifo"),
                                          tlb("stlb", 2, "unified", 96, 96, policy="lru")),
                            phys_mem="1G"), dict()),
}


def engine_bytes(mmu):
    return mmu.core.dump(), {a: mmu.page_table(a).core.dump() for a in mmu.asids}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_save_load_round_trip_and_continuation(name, tmp_path):
    cfg, tkw = CONFIGS[name]
    tr = make_trace(zlib.crc32(name.encode()) & 0xFFFF, 24_000, **tkw)
    half = 11_111
    a = MMU(cfg)
    a.replay(tr[:half], chunk_size=4000, progress=False)
    p = tmp_path / "a.ckpt"
    a.save(p)
    b = MMU.load(p)
    assert b.position == a.position == half
    assert b.stats.to_dict() == a.stats.to_dict()
    assert b.asids == a.asids and len(a.asids) >= 1
    assert engine_bytes(b) == engine_bytes(a)
    assert [b.current_asid(k) for k in range(b.cpus)] == \
        [a.current_asid(k) for k in range(a.cpus)]
    # what happens next is the same, and the same as one uninterrupted replay
    sa = a.replay(tr, chunk_size=3000, progress=False, skip=half)
    sb = b.replay(tr, chunk_size=3000, progress=False, resume=True)
    whole = MMU(cfg).replay(tr, chunk_size=4000, progress=False)
    assert sb.to_dict() == sa.to_dict() == whole.to_dict()
    assert sb["total.accesses"] > 0 and b.position == len(tr)
    assert engine_bytes(b) == engine_bytes(a)


def test_explicit_mappings_and_global_pages_survive(tmp_path):
    mmu = MMU(config(cpus=2))
    mmu.map(0x200000, 4 * M2, page_size="2M", global_=True)
    mmu.map(0x10000, 0x4000, asid=7, pfn=0x900, writable=False)
    tr = make_trace(3, 5000, cpus=2, asids=8)
    mmu.replay(tr, progress=False)
    mmu.save(tmp_path / "m.ckpt")
    back = MMU.load(tmp_path / "m.ckpt")
    assert [(m.vaddr, m.size) for m in back.page_table(7).mappings()] == \
        [(m.vaddr, m.size) for m in mmu.page_table(7).mappings()]
    va = np.arange(0x200000, 0x200000 + 4 * M2, 0x40000, dtype=np.uint64)
    assert back.access(va).where.tolist() == mmu.access(va).where.tolist()
    assert back.stats.to_dict() == mmu.stats.to_dict()


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    mmu = MMU(config())
    p = tmp_path / "c.ckpt"
    mmu.replay(make_trace(1, 3000), progress=False, checkpoint=p, every=1000,
               chunk_size=500)
    assert sorted(os.listdir(tmp_path)) == ["c.ckpt"]
    assert MMU.load(p).position == 3000


def test_replay_checkpoints_every_n_records(tmp_path, monkeypatch):
    mmu = MMU(config())
    seen = []
    real = MMU.save
    monkeypatch.setattr(MMU, "save", lambda self, path: (seen.append(self.position),
                                                        real(self, path)))
    mmu.replay(make_trace(2, 10_000), chunk_size=1000, every=2500, progress=False,
               checkpoint=tmp_path / "e.ckpt")
    assert seen == [3000, 6000, 9000, 10_000]


def test_skip_works_for_every_kind_of_trace(tmp_path):
    tr = make_trace(4, 6000, controls=False)
    ref = MMU(config())
    ref.replay(tr, chunk_size=1000, progress=False)
    gens = {
        "array": lambda: tr.addr,
        "chunk": lambda: tr,
        "trace": lambda: Trace.from_arrays(tr.addr, op=tr.op, size=tr.size),
        "iterator": lambda: (tr[i:i + 700] for i in range(0, len(tr), 700)),
        "native": lambda: Trace.from_arrays(tr.addr, op=tr.op, size=tr.size).to_native(
            tmp_path / "native", overwrite=True),
        "native-path": lambda: str(tmp_path / "native"),
    }
    for kind, make in gens.items():
        a = MMU(config())
        a.replay(tr[:2345], progress=False)
        a.save(tmp_path / "s.ckpt")
        b = MMU.load(tmp_path / "s.ckpt")
        if kind == "array":         # addresses only: compare with an address-only run
            r = MMU(config())
            r.replay(tr[:2345], progress=False)
            r.replay(tr.addr[2345:], progress=False)
            want = r.stats.to_dict()
        else:
            want = ref.stats.to_dict()
        assert b.replay(make(), resume=True, chunk_size=1000,
                        progress=False).to_dict() == want, kind


_CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_mmu_checkpoint import make_trace, CONFIGS
    from pyapi.mmu import MMU
    cfg, tkw = CONFIGS[{name!r}]
    tr = make_trace(11, {n}, **tkw)
    def chunks():
        for i, start in enumerate(range(0, len(tr), {cs})):
            if i == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)
            yield tr[start:start + {cs}]
    MMU(cfg).replay(chunks(), chunk_size={cs}, progress=False,
                    checkpoint={path!r}, every={every})
    print("not killed")
""")


@pytest.mark.parametrize("name", ["random-2cpu-pcid-thp", "lfu-noninclusive-thp"])
def test_killed_replay_resumes_to_the_uninterrupted_counters(name, tmp_path):
    n, cs, every, kill_at = 40_000, 2000, 5000, 13      # saves after 6000, 12000, ...
    path = str(tmp_path / "run.ckpt")
    code = _CHILD.format(tests=os.path.dirname(__file__), name=name, n=n, cs=cs,
                         kill_at=kill_at, path=path, every=every)
    # the folder the tests imported pyapi from (the installed package in CI, the source
    # tree of an in-place build otherwise): never a checkout's uncompiled mmucore/
    import pyapi
    here = os.path.dirname(os.path.dirname(os.path.abspath(pyapi.__file__)))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([here] + [p for p in sys.path if p]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["run.ckpt"]
    cfg, tkw = CONFIGS[name]
    tr = make_trace(11, n, **tkw)
    mmu = MMU.load(path)
    assert mmu.position == 24_000                           # the save after chunk 12
    resumed = mmu.replay(tr, chunk_size=cs, progress=False, resume=True)
    whole = MMU(cfg).replay(tr, chunk_size=cs, progress=False)
    assert resumed.to_dict() == whole.to_dict()
    assert mmu.position == n


# ------------------------------------------------------------------ bad files

def _saved(tmp_path):
    mmu = MMU(config())
    mmu.replay(make_trace(5, 2000), progress=False)
    p = tmp_path / "ok.ckpt"
    mmu.save(p)
    return p


def _rewrite(src, dst, change):
    with np.load(src) as z:
        data = {k: z[k] for k in z.files}
    change(data)
    with open(dst, "wb") as f:
        np.savez(f, **data)


def test_corrupt_files_are_value_errors_naming_the_file(tmp_path):
    p = _saved(tmp_path)
    raw = p.read_bytes()
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ValueError, match="truncated.ckpt"):
        MMU.load(bad)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="junk.ckpt: not an MMU checkpoint"):
        MMU.load(junk)

    def cut_mmu(d):
        d["mmu"] = d["mmu"][:-5]
    _rewrite(p, tmp_path / "cut.ckpt", cut_mmu)
    with pytest.raises(ValueError, match="cut.ckpt: corrupt"):
        MMU.load(tmp_path / "cut.ckpt")

    def cut_pt(d):
        d["pt0"] = d["pt0"][:-4096]
    _rewrite(p, tmp_path / "cutpt.ckpt", cut_pt)
    with pytest.raises(ValueError, match="cutpt.ckpt: corrupt"):
        MMU.load(tmp_path / "cutpt.ckpt")


def test_format_version_and_engine_mismatches(tmp_path):
    p = _saved(tmp_path)

    def header(**kw):
        def change(d):
            h = json.loads(bytes(d["header"]).decode())
            h.update(kw)
            d["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
        return change
    _rewrite(p, tmp_path / "v2.ckpt", header(format=2))
    with pytest.raises(ValueError, match="v2.ckpt: checkpoint format 2"):
        MMU.load(tmp_path / "v2.ckpt")
    _rewrite(p, tmp_path / "abi.ckpt", header(state_size=[1, 2, 3]))
    with pytest.raises(ValueError, match="abi.ckpt: written by an engine"):
        MMU.load(tmp_path / "abi.ckpt")
    _rewrite(p, tmp_path / "cpus.ckpt", header(config=dict(config(cpus=2).to_dict())))
    with pytest.raises(ValueError, match="cpus.ckpt: corrupt MMU checkpoint"):
        MMU.load(tmp_path / "cpus.ckpt")
    with pytest.raises(FileNotFoundError):
        MMU.load(tmp_path / "missing.ckpt")
    assert zipfile.is_zipfile(p)
