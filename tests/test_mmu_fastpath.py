"""The replay fast path (mmucore/mmu.pyx `_run_fast`/`_run_loads`: memo runs counted in
bulk, blocks of 4, leaf-entry prefetch, probes limited to the page sizes filled, fills
without the search for a present entry) must count exactly what the per-record path
(`_run`, taken when outputs are recorded) counts, on long traces with long same-page
runs, page-crossing and zero sizes, instruction fetches, control ops, several CPUs and
policies whose hits change state (LFU, SRRIP)."""
import numpy as np
import pytest

from pyapi import MMU
from pyapi.config import load_preset
from pyapi.trace import TraceChunk

OPS = dict(LOAD=0, STORE=1, IFETCH=2, MODIFY=3, SWITCH=4, INVLPG=5, FLUSH=6, MAP=8,
           UNMAP=9)


def _trace(n, seed, cpus, control, huge):
    rng = np.random.default_rng(seed)
    pages = rng.integers(0, 3000 if not huge else 40, n // 16 + 1)
    # runs of 1..40 accesses in one page, and some accesses that cross into the next
    runs = rng.integers(1, 40, pages.size)
    page = np.repeat(pages, runs)[:n]
    shift = 21 if huge else 12
    off = rng.integers(0, 1 << shift, page.size)
    addr = (np.uint64(0x40000000) + (page.astype(np.uint64) << np.uint64(shift))
            + off.astype(np.uint64))
    m = addr.size
    op = rng.choice([0, 0, 0, 1, 3, 2], m).astype(np.uint8)
    size = rng.choice([0, 1, 4, 8, 8, 8, 64, 4096], m).astype(np.uint16)
    cpu = (rng.integers(0, cpus, m) if cpus > 1 else np.zeros(m)).astype(np.uint16)
    if cpus > 1:                      # long single-CPU stretches, as traces have
        cpu = np.repeat(cpu[::50], 50)[:m]
    if control:
        k = rng.choice(m, m // 500, replace=False)
        op[k] = rng.choice([OPS["INVLPG"], OPS["FLUSH"], OPS["SWITCH"], OPS["MAP"],
                            OPS["UNMAP"]], k.size)
        size[k] = 0
        sw = op == OPS["SWITCH"]
        addr[sw] = rng.integers(0, 3, int(sw.sum())).astype(np.uint64)
        addr[op == OPS["FLUSH"]] = 0
    return TraceChunk(addr, op, size, cpu if cpus > 1 else None)


def _cfg(policy, inclusion, cpus, huge):
    cfg = load_preset("skylake").replace(paging="x86_64", cpus=cpus, inclusion=inclusion,
                                         huge_pages="always" if huge else "never")
    for t in cfg.tlbs:
        cfg = cfg.with_tlb(t.name, policy=policy)
    return cfg


@pytest.mark.parametrize("policy", ["lru", "lfu", "srrip", "plru"])
@pytest.mark.parametrize("inclusion", ["inclusive", "exclusive"])
@pytest.mark.parametrize("cpus,control,huge", [(1, False, False), (2, True, False),
                                               (1, True, True)])
def test_fast_path_counts_like_the_per_record_path(policy, inclusion, cpus, control, huge):
    trace = _trace(60_000, seed=len(policy) + 7 * cpus, cpus=cpus, control=control,
                   huge=huge)
    fast = MMU(_cfg(policy, inclusion, cpus, huge))
    slow = MMU(_cfg(policy, inclusion, cpus, huge))
    fast.replay(trace, chunk_size=7_000, progress=False)        # no outputs: fast path
    for lo in range(0, len(trace), 7_000):                        # outputs: _run
        slow.access(trace[lo:lo + 7_000], record=True)
    a, b = fast.stats.to_dict(), slow.stats.to_dict()
    assert a == b, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert a["total.accesses"] > 0 and a["total.walks"] > 0


def test_bare_loads_count_like_the_per_record_path():
    rng = np.random.default_rng(3)
    addr = (np.uint64(1 << 30) + np.repeat(rng.integers(0, 5000, 4000), 13).astype(np.uint64)
            * np.uint64(4096) + rng.integers(0, 4096, 52000).astype(np.uint64))
    fast = MMU.from_preset("skylake", paging="x86_64", huge_pages="never")
    slow = MMU.from_preset("skylake", paging="x86_64", huge_pages="never")
    fast.replay(addr, progress=False)
    slow.access(addr, record=True)
    assert fast.stats.to_dict() == slow.stats.to_dict()
