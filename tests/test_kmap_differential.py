"""Differential tests: the Cython kmap engine (through pyapi.KmapPool/PerTaskKmapPool)
against the pure-Python reference (tests/reference_kmap.py) on random kmap traces, for
every kernel version, PAE or not, pool sizes, CPU counts, pool kinds and with or without
per-CPU TLBs. Counters, BUG() reports and the final state must be identical."""
import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from pyapi import Op
from pyapi.kmap import (KERNELS, KmapBugError, KmapPool, PerTaskKmapPool)
from reference_kmap import reference_like

HIGH = 229376                   # first highmem pfn (the default)
TLB_CONFIGS = [None, dict(entries=4, ways=2), dict(entries=8, ways=8, policy="fifo"),
               dict(entries=16, ways=4, policy="plru")]


@st.composite
def pools(draw):
    kernel = draw(st.sampled_from(sorted(KERNELS)))
    pae = draw(st.booleans())
    slots = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 13, 16, None]))
    cpus = draw(st.integers(1, 4))
    tlb = draw(st.sampled_from(TLB_CONFIGS))
    kw = dict(kernel=kernel, pae=pae, slots=slots, cpus=cpus, tlb=tlb)
    if KERNELS[kernel].atomic == "typed":
        kw["atomic_flush"] = draw(st.sampled_from(["map", "unmap"]))
        kw["km_type_nr"] = draw(st.integers(1, 4))
    else:
        kw["km_type_nr"] = draw(st.integers(1, 16))
    if draw(st.booleans()):
        kw.update(window_slots=draw(st.integers(1, 6)), share=draw(st.sampled_from(["task", "mm"])),
                  lazy_switch=draw(st.booleans()))
        return PerTaskKmapPool(**kw), tlb
    return KmapPool(**kw), tlb


@st.composite
def traces(draw, pool):
    """Mostly well-formed traces (kunmaps of pages the task holds, atomic unmaps of the
    slot it mapped, no migration or preemption of a task holding local/atomic kmaps);
    with ``bad`` some ops are wrong on purpose (the BUG() paths)."""
    n = draw(st.integers(0, 150))
    ntasks = draw(st.integers(1, 5))
    npages = draw(st.integers(1, 3 * (pool.slots if pool.slots <= 16 else 8) + 2))
    bad = draw(st.booleans()) and draw(st.booleans())
    typed = pool.kernel.atomic == "typed"
    held = {t: [] for t in range(ntasks)}
    atomic = {t: [] for t in range(ntasks)}        # [(pfn, size, cpu)]
    busy = set()                                    # typed: (cpu, type) in use
    running = [None] * pool.cpus
    cols = {k: [] for k in ("addr", "op", "size", "cpu", "task")}
    kinds = ["kmap"] * 4 + ["kunmap"] * 4 + ["atomic"] * 2 + ["unatomic"] * 2 + \
        ["switch", "user", "lowmem"] + (["bad"] if bad else [])
    for _ in range(n):
        t = draw(st.integers(0, ntasks - 1))
        cpu = draw(st.integers(0, pool.cpus - 1))
        kind = draw(st.sampled_from(kinds))
        if not typed and atomic[t] and not bad:
            cpu = atomic[t][-1][2]                  # migration is disabled
        holder = running[cpu]
        if holder is not None and holder != t and not typed and not bad and \
                any(a for _, a, _ in atomic[holder]):
            t = holder                              # preemption is disabled
            if atomic[t]:
                cpu = atomic[t][-1][2]
        pfn = HIGH + draw(st.integers(0, npages - 1))
        size = 0
        if kind == "kunmap" and not held[t]:
            kind = "kmap"
        if kind == "unatomic" and not atomic[t]:
            kind = "atomic"
        if kind == "atomic" and typed:
            free = [k for k in range(pool.kernel.km_type_nr) if (cpu, k) not in busy]
            if not free:
                kind = "unatomic" if atomic[t] else "user"
        if kind == "atomic" and not typed and len(atomic[t]) >= pool.kernel.km_type_nr:
            kind = "unatomic"
        if kind == "kmap":
            op = Op.KMAP
            size = draw(st.sampled_from([0, 0, 0, 1]))
            held[t].append((pfn, size))
        elif kind == "kunmap":
            op = Op.KUNMAP
            pfn, size = held[t].pop(draw(st.integers(0, len(held[t]) - 1)))
        elif kind == "atomic":
            op = Op.KMAP_ATOMIC
            if typed:
                size = draw(st.sampled_from(free))
                busy.add((cpu, size))
            else:
                size = draw(st.sampled_from([0, 0, 1]))
            atomic[t].append((pfn, size, cpu))
        elif kind == "unatomic":
            op = Op.KUNMAP_ATOMIC
            i = draw(st.integers(0, len(atomic[t]) - 1)) if typed else -1
            pfn, size, cpu = atomic[t].pop(i)
            busy.discard((cpu, size))
            if not typed:
                size = 0
        elif kind == "switch":
            op, pfn = Op.SWITCH, draw(st.integers(0, ntasks))
        elif kind == "user":
            op = draw(st.sampled_from([Op.LOAD, Op.STORE, Op.IFETCH, Op.MODIFY]))
            pfn = draw(st.integers(0, 40)) << 12
        elif kind == "lowmem":
            op = draw(st.sampled_from([Op.KMAP, Op.KUNMAP, Op.KMAP_ATOMIC, Op.KUNMAP_ATOMIC]))
            pfn = draw(st.integers(0, HIGH - 1))
        else:
            op = draw(st.sampled_from([Op.KUNMAP, Op.KUNMAP_ATOMIC, Op.KMAP_ATOMIC]))
            size = draw(st.integers(0, pool.kernel.km_type_nr - 1)) if typed else 0
        for c in range(pool.cpus):
            if running[c] == t:
                running[c] = None
        running[cpu] = t
        for k, v in zip(cols, (pfn, op, size, cpu, t)):
            cols[k].append(int(v))
    dt = dict(addr=np.uint64, op=np.uint8, size=np.uint16, cpu=np.uint16, task=np.uint32)
    return {k: np.array(v, dtype=dt[k]) for k, v in cols.items()}


def run_both(pool, tlb, trace, chunks=None):
    ref = reference_like(pool, tlb)
    n = len(trace["addr"])
    code = ref.run(trace["addr"], trace["op"], trace["size"], trace["cpu"], trace["task"])
    err = None
    try:
        if chunks:
            cuts = sorted(set([0, n] + [c % (n + 1) for c in chunks]))
            for a, b in zip(cuts, cuts[1:]):
                pool.run({k: v[a:b] for k, v in trace.items()}, on_sleepers="report")
        else:
            pool.run(trace, on_sleepers="report")
    except KmapBugError as e:
        err = e
    return ref, code, err


def assert_same(pool, ref, code, err, tlb):
    s = pool.stats.to_dict()
    asleep, pending = s.pop("asleep"), s.pop("pending")
    assert s == ref.c
    assert asleep == ref.sleeping and pending == ref.pending
    if code:
        assert err is not None, f"the reference hit BUG {ref.bug}, the engine did not"
        b = ref.bug
        assert (err.index, err.pfn, err.task, err.cpu) == (b[1], b[2], b[3], b[4])
        assert pool.core.bug()["code"] == b[0] and pool.core.bug()["value"] == b[5]
        assert err.stats.to_dict() == pool.stats.to_dict()
    else:
        assert err is None, f"engine BUG {err} the reference did not hit"
    pool.core._check_invariants()
    mine, theirs = pool.state(), ref.snapshot()
    assert mine["pkmap_count"].tolist() == theirs["pkmap_count"]
    assert mine["slot_pfn"].tolist() == theirs["slot_pfn"]
    for key in ("cursor", "running", "waitq", "deferred", "tasks", "windows", "atomic"):
        assert mine[key] == theirs[key], key
    if tlb is not None:
        for t, r in zip(pool.tlbs, ref.tlbs):
            assert t.stats.to_dict() == r.stats.to_dict()


@given(st.data())
def test_random_traces_match_reference(data):
    pool, tlb = data.draw(pools())
    trace = data.draw(traces(pool))
    note(repr(pool))
    ref, code, err = run_both(pool, tlb, trace)
    assert_same(pool, ref, code, err, tlb)


@given(st.data())
def test_chunked_runs_match_reference(data):
    """Cutting the trace into chunks (run calls) changes nothing, sleepers included."""
    pool, tlb = data.draw(pools())
    trace = data.draw(traces(pool))
    chunks = data.draw(st.lists(st.integers(0, 200), max_size=4))
    ref, code, err = run_both(pool, tlb, trace, chunks)
    assert_same(pool, ref, code, err, tlb)


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("pae", [False, True])
def test_full_size_pools_match_reference(kernel, pae):
    """Real pool sizes (1024 / 512) on a page-cache-like stream with pins and sleeps."""
    rng = np.random.default_rng(7)
    pool = KmapPool(kernel=kernel, pae=pae, cpus=4, tlb=dict(entries=16, ways=4))
    n = 3000
    pfn = HIGH + rng.integers(0, 3 * pool.slots, n).astype(np.uint64)
    addr = np.repeat(pfn, 2)
    op = np.tile(np.array([Op.KMAP, Op.KUNMAP], np.uint8), n)
    cpu = np.repeat(rng.integers(0, 4, n), 2).astype(np.uint16)
    trace = dict(addr=addr, op=op, size=np.zeros(2 * n, np.uint16), cpu=cpu, task=cpu.astype(np.uint32))
    ref, code, err = run_both(pool, dict(entries=16, ways=4), trace)
    assert code == 0 and err is None
    assert_same(pool, ref, code, err, dict(entries=16, ways=4))
    assert pool.stats.hash_probes > 0 if KERNELS[kernel].hashed else pool.stats.hash_probes == 0
