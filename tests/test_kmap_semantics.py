"""Kernel BUG() reports, sleeping and wake-all, kmap_atomic / kmap_local, the per-task
pool, the TLB coupling and input validation (docs/kmap.md)."""
import numpy as np
import pytest

from pyapi import Op, TLB
from pyapi.kmap import (KmapBugError, KmapDeadlockError, KmapPool, PerTaskKmapPool)
from reference_kmap import reference_like

H = 229376
K, U, KA, UA, SW, ST = Op.KMAP, Op.KUNMAP, Op.KMAP_ATOMIC, Op.KUNMAP_ATOMIC, Op.SWITCH, Op.STORE


def trace(*rows):
    """rows of (op, addr[, size[, cpu[, task]]])."""
    rows = [tuple(r) + (0,) * (5 - len(r)) for r in rows]
    op, addr, size, cpu, task = zip(*rows)
    return dict(addr=np.array(addr, np.uint64), op=np.array(op, np.uint8),
                size=np.array(size, np.uint16), cpu=np.array(cpu, np.uint16),
                task=np.array(task, np.uint32))


def check_reference(pool, tr, tlb=None):
    """The reference model agrees on the same (whole) trace."""
    ref = reference_like(pool, tlb)
    ref.run(tr["addr"], tr["op"], tr["size"], tr["cpu"], tr["task"])
    s = pool.stats.to_dict()
    s.pop("asleep"), s.pop("pending")
    assert s == ref.c
    return ref


# ------------------------------------------------------------------------ BUG()
BUG_CASES = [
    ("2.4.18", "KUNMAP_UNMAPPED", [(K, H + 1), (U, H + 1), (K, H + 2), (U, H + 3)], 3),
    ("2.6.12", "KUNMAP_UNMAPPED", [(U, H + 3)], 0),
    ("2.4.18", "COUNT_ZERO", [(K, H + 1), (U, H + 1), (U, H + 1)], 2),
    ("2.4.18", "ATOMIC_BUSY", [(KA, H + 1, 3), (KA, H + 2, 3)], 1),
    ("2.5.13", "ATOMIC_UNMAPPED", [(KA, H + 1, 3), (UA, H + 1, 4)], 1),
    ("2.4.18", "ATOMIC_UNMAPPED", [(KA, H + 1, 3, 0), (UA, H + 1, 3, 1)], 1),
    ("6.x", "LOCAL_LIFO", [(KA, H + 1), (KA, H + 2), (UA, H + 1)], 2),
    ("6.x", "LOCAL_EMPTY", [(K, H + 5), (UA, H + 1)], 1),
    ("6.x", "MIGRATE", [(KA, H + 1, 0, 0, 7), (K, H + 2, 0, 1, 7)], 1),
    ("6.x", "SCHED_ATOMIC", [(KA, H + 1, 1, 0, 7), (K, H + 2, 0, 0, 8)], 1),
]


@pytest.mark.parametrize("kernel,code,rows,index", BUG_CASES,
                         ids=[f"{c[1]}-{c[0]}" for c in BUG_CASES])
def test_bug_names_the_op_and_keeps_the_counters(kernel, code, rows, index):
    pool = KmapPool(kernel=kernel, cpus=2, slots=8)
    tr = trace(*rows)
    with pytest.raises(KmapBugError) as e:
        pool.run(tr)
    err = e.value
    assert err.index == index and err.code == code
    assert f"op {index} (" in str(err)
    assert isinstance(err, RuntimeError)
    assert err.stats == pool.stats and err.stats.ops == index
    ref = reference_like(pool)
    assert ref.run(tr["addr"], tr["op"], tr["size"], tr["cpu"], tr["task"])
    assert ref.bug[1] == index


def test_local_overflow():
    pool = KmapPool(kernel="6.x", km_type_nr=3)
    with pytest.raises(KmapBugError, match="op 2 .*KM_MAX_IDX") as e:
        pool.run(trace((KA, H + 1), (KA, H + 2), (KA, H + 3)))
    assert e.value.code == "LOCAL_OVERFLOW" and pool.stats.atomic_maps == 2


def test_local_stack_holds_km_max_idx_minus_one():
    """6.x kmap_local_idx_push: ``idx += KM_INCR; BUG_ON(idx >= KM_MAX_IDX)`` checks the
    index after the increment: with KM_MAX_IDX 16 the 15th local map is the last one,
    the 16th is the BUG (mm/highmem.c, 6.x)."""
    pool = KmapPool(kernel="6.x")
    rows = [(KA, H + i) for i in range(16)]
    pool.run(trace(*rows[:15]))
    assert len(pool.state()["tasks"][0]["local"]) == 15
    with pytest.raises(KmapBugError) as e:
        pool.run(trace(rows[15]))
    assert e.value.code == "LOCAL_OVERFLOW" and e.value.index == 15
    assert pool.stats.atomic_maps == 15
    ref = reference_like(pool)
    tr = trace(*rows)
    assert ref.run(tr["addr"], tr["op"], tr["size"], tr["cpu"], tr["task"]) == 5
    assert ref.bug[1] == 15 and ref.c["atomic_maps"] == 15


def test_bug_in_a_later_chunk_counts_the_whole_trace():
    pool = KmapPool(slots=8)
    pool.run(trace(*[(K, H + i) for i in range(5)]))
    with pytest.raises(KmapBugError) as e:
        pool.run(trace((U, H + 1), (U, H + 1), (U, H + 1)))
    assert e.value.index == 6 and pool.stats.kunmaps == 1


# ------------------------------------------------------------------------ sleeping
def full_pool_rows():
    """slots=2: task 1 pins H and H+1 (slots 1 and 0), the pool is full."""
    return [(K, H, 0, 0, 1), (K, H + 1, 0, 0, 1)]


def test_sleeper_is_deferred_then_resumes_after_a_kunmap():
    pool = KmapPool(slots=2, cpus=2)
    tr = trace(*full_pool_rows(),
               (K, H + 2, 0, 1, 2),          # task 2 sleeps (op 2)
               (U, H + 2, 0, 1, 2),          # its next op waits behind it (op 3)
               (U, H, 0, 0, 1))              # count of H drops to 1: wake-all
    s = pool.run(tr)
    assert s.sleeps == 1 and s.wakeups == 1 and s.deferred == 1
    assert s.asleep == 0 and s.pending == 0
    st = pool.state()
    # task 2's retry wrapped (reclaiming H's idle slot 1), mapped H+2 there, then unmapped
    assert st["slot_pfn"].tolist() == [H + 1, H + 2]
    assert st["pkmap_count"].tolist() == [2, 1]
    assert s.ops == 5 and s.kmaps == 3 and s.kunmaps == 2
    check_reference(pool, tr)


def test_wake_all_retries_every_sleeper_in_sleep_order():
    """Every sleeper is woken (non-exclusive wait queue); the first takes the freed slot
    and the second sleeps again; two sleepers waiting for the same page: the second
    finds it mapped after the wake-up (the page_address re-check)."""
    pool = KmapPool(slots=2, cpus=4)
    tr = trace(*full_pool_rows(),
               (K, H + 2, 0, 1, 2), (K, H + 3, 0, 2, 3), (U, H, 0, 0, 1))
    s = pool.run(tr, on_sleepers="report")
    assert s.sleeps == 3 and s.wakeups == 1 and s.asleep == 1
    assert pool.state()["waitq"] == [3]
    check_reference(pool, tr)

    pool = KmapPool(slots=2, cpus=4)
    tr = trace(*full_pool_rows(),
               (K, H + 2, 0, 1, 2), (K, H + 2, 0, 2, 3), (U, H, 0, 0, 1))
    s = pool.run(tr)
    assert s.sleeps == 2 and s.asleep == 0
    assert s.hits == 1                                 # task 3 found H+2 mapped by task 2
    assert pool.state()["pkmap_count"].tolist() == [2, 3]
    check_reference(pool, tr)


def test_deadlock_is_reported():
    pool = KmapPool(slots=2)
    tr = trace(*full_pool_rows(), (K, H + 2, 0, 0, 1), (U, H, 0, 0, 1))
    with pytest.raises(KmapDeadlockError, match="deadlock") as e:
        pool.run(tr)
    assert e.value.deadlock and e.value.asleep == [1]
    assert e.value.stats.asleep == 1 and e.value.stats.pending == 2


def test_trace_ending_with_sleepers_reports_them_and_can_continue():
    pool = KmapPool(slots=2, cpus=2)
    first = trace(*full_pool_rows(), (K, H + 2, 0, 1, 2), (U, H + 2, 0, 1, 2))
    with pytest.raises(KmapDeadlockError) as e:
        KmapPool(slots=2, cpus=2).run(first)
    assert not e.value.deadlock and "task 2 at op 2" in str(e.value)
    s = pool.run(first, on_sleepers="report")
    assert s.asleep == 1 and s.pending == 2
    s = pool.run(trace((U, H, 0, 0, 1)))              # a later run wakes it
    assert s.asleep == 0 and s.pending == 0 and s.kunmaps == 2


# ------------------------------------------------------------------------ atomic / local
def test_typed_atomic_slot_address_and_invlpg_on_map():
    """2.4: slot = type + KM_TYPE_NR*cpu at FIXADDR_TOP - (FIX_KMAP_BEGIN+idx)*4K
    (cpu0 KM_USER0 -> 0xFFFF2000, specs/kmap.md 4.2); one invlpg per map, none on unmap;
    page->virtual is not set."""
    pool = KmapPool(kernel="2.4.18", cpus=2, tlb=dict(entries=16, ways=4))
    tr = trace((KA, H + 1, 3, 0), (UA, H + 1, 3, 0), (KA, H + 2, 3, 1))
    s = pool.run(tr)
    assert s.atomic_maps == 2 and s.atomic_unmaps == 1 and s.invlpgs == 2
    assert pool.tlbs[0].contents()["vpn"].tolist() == [0xFFFF2]
    assert pool.tlbs[1].contents()["vpn"].tolist() == [0xFFFF2 - 5]
    assert bool(pool.tlbs[0].contents()["global_"][0])
    assert pool.state()["atomic"] == {(1, 3): H + 2}
    check_reference(pool, tr, dict(entries=16, ways=4))
    assert pool.page_address(H + 1) is None and s.lookups == 0


def test_atomic_invlpg_on_unmap():
    pool = KmapPool(kernel="2.6.12", atomic_flush="unmap")
    s = pool.run(trace((KA, H + 1, 3), (UA, H + 1, 3)))
    assert s.invlpgs == 1 and pool.kernel.atomic_flush == "unmap"


def test_kmap_local_is_reinstalled_at_context_switch():
    """6.x: the per-task stack; no flush at map, invlpg at unmap; sched_out clears and
    invlpgs every live slot, sched_in sets the PTEs again (no flush)."""
    pool = KmapPool(kernel="6.x", tlb=dict(entries=16, ways=4))
    tr = trace((KA, H + 1, 0, 0, 1), (KA, H + 2, 0, 0, 1),    # task 1: two local kmaps
               (K, H + 9, 0, 0, 2),                            # preempted by task 2
               (UA, H + 2, 0, 0, 1), (UA, H + 1, 0, 0, 1))     # back: LIFO unmaps
    s = pool.run(tr)
    assert s.atomic_maps == 2 and s.local_reinstalls == 2
    assert s.invlpgs == 2 + 2                                  # sched_out + unmaps
    assert s.context_switches == 3
    assert pool.state()["tasks"][1]["local"] == []
    check_reference(pool, tr, dict(entries=16, ways=4))


def test_lowmem_atomic_and_local_bypass():
    for kernel in ("2.4.18", "6.x"):
        s = KmapPool(kernel=kernel).run(trace((KA, 5, 0), (UA, 5, 0), (K, 7), (U, 7)))
        assert s.lowmem == 4 and s.atomic_maps == 0 and s.invlpgs == 0


# ------------------------------------------------------------------------ per-task pool
def test_window_wrap_flushes_locally_and_shoots_down_threads():
    """share="mm": tasks 0 and 1 are threads of mm 5 on CPUs 0 and 1; a wrap of the
    shared window flushes CPU 0 and IPIs CPU 1 (the only CPU with that mm loaded)."""
    pool = PerTaskKmapPool(window_slots=2, share="mm", cpus=3, tlb=dict(entries=8))
    rows = [(SW, 5, 0, 0, 0), (SW, 5, 0, 1, 1), (SW, 9, 0, 2, 2)]
    rows += [(K, H + i, 0, 0, 0) for i in range(2)] + [(U, H + i, 0, 0, 0) for i in range(2)]
    rows += [(K, H + 2, 0, 0, 0)]                 # the second wrap reclaims both slots
    tr = trace(*rows)
    s = pool.run(tr)
    assert s.task_wraps == 2 and s.task_reclaimed == 2 and s.task_flushes == 1
    assert s.task_shootdowns == 1 and s.task_ipis == 1 and s.global_flushes == 0
    assert pool.tlbs[2].stats.flushes == 1                      # only its own CR3 load
    check_reference(pool, tr, dict(entries=8))


def test_lazy_switch_makes_wrap_flushes_free():
    """A CR3 reload since the last flush means no TLB holds the window: no flush."""
    rows = [(K, H, 0, 0, 1), (U, H, 0, 0, 1), (K, H + 1, 0, 0, 2),   # task 2 runs
            (K, H + 2, 0, 0, 1), (U, H + 2, 0, 0, 1), (K, H + 3, 0, 0, 1)]
    for lazy, flushes in ((True, 0), (False, 1)):
        pool = PerTaskKmapPool(window_slots=2, lazy_switch=lazy)
        s = pool.run(trace(*rows))
        assert s.task_wraps == 1 and s.task_reclaimed == 1 and s.task_flushes == flushes
        check_reference(pool, trace(*rows))


def test_full_window_and_cross_task_use_the_global_pool():
    pool = PerTaskKmapPool(window_slots=2, slots=8)
    tr = trace((K, H), (K, H + 1), (K, H + 2),            # third: window full
               (K, H + 7, 1), (U, H + 7, 1),              # a cross-task access
               (U, H + 2), (U, H + 1), (U, H))
    s = pool.run(tr)
    assert s.task_fallbacks == 1 and s.cross_task == 1 and s.new_mappings == 2
    assert s.task_new_mappings == 2 and s.kunmaps == 4
    check_reference(pool, tr)


def test_nested_kmap_across_a_full_window_releases_both_references():
    """A page kmapped through the global pool while the task's window was full, then
    kmapped again once it fits in the window (a nested kmap of the same page): its two
    kunmaps drop the window reference and then the global one (no false COUNT_ZERO,
    no leaked pkmap slot)."""
    A, B, P = H + 1, H + 2, H + 3
    pool = PerTaskKmapPool(window_slots=2, slots=8)
    tr = trace((K, A), (K, B), (K, P),                    # P: window full -> global pool
               (U, A),                                    # a window slot goes idle
               (K, P),                                    # P again: now in the window
               (U, P), (U, P), (U, B))
    s = pool.run(tr)
    assert s.task_fallbacks == 1 and s.kunmaps == 4
    st_ = pool.state()
    assert st_["pkmap_count"][st_["slot_pfn"].tolist().index(P)] == 1   # no user left
    assert st_["windows"][0]["count"] == [1, 1]
    check_reference(pool, tr)
    with pytest.raises(KmapBugError) as e:                # a third kunmap is a BUG
        pool.run(trace((U, P)))
    assert e.value.code == "COUNT_ZERO"


def test_window_entries_are_non_global():
    """Window entries go with a CR3 reload; pkmap entries (global) stay."""
    pool = PerTaskKmapPool(window_slots=4, tlb=dict(entries=16, ways=4))
    pool.run(trace((K, H, 0, 0, 1), (K, H + 1, 1, 0, 1)))   # window slot, then global
    g = pool.tlbs[0].contents()["global_"].tolist()
    assert sorted(g) == [False, True]
    pool.run(trace((K, H + 5, 0, 0, 2)))                    # another task: CR3 reload
    c = pool.tlbs[0].contents()
    assert c["global_"].tolist().count(True) == 1
    assert (c["vpn"] == (pool.kernel.pkmap_base >> 12) + 1).any()


# ------------------------------------------------------------------------ TLB coupling
def test_global_flush_costs_user_tlb_misses():
    """A wrap flush empties every CPU's TLB, user entries included; the next user
    accesses miss (what the global pool costs beyond the IPIs)."""
    pool = KmapPool(slots=4, cpus=2, tlb=dict(entries=16, ways=4))
    user = [(ST, 0x08048000 + (i << 12), 0, 1, 1) for i in range(4)]
    tr = trace(*user, *user, *[(K, H + i, 0, 0, 0) for i in range(4)], *user)
    s = pool.run(tr)
    assert s.user_tlb_misses == 8 and s.global_flushes == 1
    assert s.tlb_entries_flushed >= 4
    check_reference(pool, tr, dict(entries=16, ways=4))


def test_tlb_list_of_pyapi_tlbs():
    tlbs = [TLB(entries=8), TLB(entries=8)]
    pool = KmapPool(cpus=2, tlb=tlbs)
    pool.run(trace((K, H)))
    assert pool.tlbs[0] is tlbs[0] and tlbs[0].stats.misses == 1
    with pytest.raises(ValueError, match="one per CPU"):
        KmapPool(cpus=3, tlb=tlbs)
    with pytest.raises(ValueError, match="4K"):
        KmapPool(cpus=1, tlb=[TLB(entries=8, page_size="2M")])


@pytest.mark.parametrize("rows,match", [
    ([(KA, H, 5, 0, 0), (KA, H + 1, 0, 1, 1)], "op 0: km_type 5 >= KM_TYPE_NR=5"),
    ([(K, H, 0, 0, 0), (K, H + 1, 0, 2, 2)], "op 1: cpu 2 is not online"),
])
def test_the_engine_rechecks_cpu_and_km_type_without_check_input(rows, match):
    """check_input=False skips pyapi's checks; the engine still refuses a km_type or a
    CPU outside the arrays it indexes (a km_type of 5 with KM_TYPE_NR 5 used to land in
    CPU 1's KM_BOUNCE_READ slot and report a false ATOMIC_BUSY at op 1)."""
    pool = KmapPool(kernel="2.4.18", cpus=2)
    with pytest.raises(ValueError, match=match):
        pool.run(trace(*rows), check_input=False)
    assert pool.state()["atomic"] == {}


# ------------------------------------------------------------------------ validation
@pytest.mark.parametrize("bad,match", [
    (dict(op=[Op.INVLPG]), "op 0: INVLPG is not a kmap trace op"),
    (dict(cpu=[2]), "op 0: cpu 2 is not online"),
    (dict(op=[KA], size=[5]), "op 0: km_type 5 >= KM_TYPE_NR=5"),
    (dict(op=[SW], addr=[1 << 63]), "must be < 2\\*\\*63"),
])
def test_bad_traces_are_rejected_with_the_op_index(bad, match):
    cols = dict(addr=[H], op=[K], cpu=[0], size=[0])
    cols.update(bad)
    cols = {k: np.array(v) for k, v in cols.items()}
    pool = KmapPool(cpus=2)
    with pytest.raises(ValueError, match=match):
        pool.run(cols)
    assert pool.stats.ops == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="kernel '2.2' is not one of"):
        KmapPool(kernel="2.2")
    with pytest.raises(ValueError, match="slots=0"):
        KmapPool(slots=0)
    with pytest.raises(ValueError, match="atomic_flush applies"):
        KmapPool(kernel="6.x", atomic_flush="map")
    with pytest.raises(ValueError, match="share"):
        PerTaskKmapPool(share="process")
    with pytest.raises(TypeError, match="cannot read a kmap trace"):
        KmapPool().run(3.5)
    with pytest.raises(TypeError, match="needs an op column"):
        KmapPool().run(np.arange(3, dtype=np.uint64))
    with pytest.raises(ValueError, match="4K"):
        KmapPool(tlb=dict(entries=8, page_size="2M"))
    with pytest.raises(ValueError, match="on_sleepers"):
        KmapPool().run(trace((K, H)), on_sleepers="ignore")


def test_readonly_and_memmap_inputs(to_input, tmp_path):
    rng = np.random.default_rng(3)
    n = 2000
    pfn = (H + rng.integers(0, 50, n)).astype(np.uint64)
    cols = dict(addr=np.repeat(pfn, 2), op=np.tile(np.array([K, U], np.uint8), n),
                cpu=np.repeat(rng.integers(0, 2, n), 2).astype(np.uint16))
    expected = KmapPool(cpus=2, slots=16).run(cols)
    got = KmapPool(cpus=2, slots=16).run({k: to_input(v) for k, v in cols.items()})
    assert got == expected
    folder = tmp_path / "trace"
    folder.mkdir()
    for k, v in cols.items():
        np.save(folder / f"{k}.npy", v)
    assert KmapPool(cpus=2, slots=16).run(folder, chunk_size=777) == expected


def test_bug_while_a_woken_task_retries_keeps_it_asleep():
    """6.x: task 2 sleeps on CPU 1; task 3 then holds a kmap_atomic there (preemption
    off); the wake-up makes task 2's retry switch CPU 1 away from task 3: a BUG naming
    task 2's blocked op. Task 2 stays asleep, first in the wait queue."""
    pool = KmapPool(kernel="6.x", slots=2, cpus=2)
    tr = trace(*full_pool_rows(), (K, H + 2, 0, 1, 2), (U, H + 2, 0, 1, 2),
               (KA, H + 9, 1, 1, 3), (U, H, 0, 0, 1))
    with pytest.raises(KmapBugError) as e:
        pool.run(tr)
    assert e.value.code == "SCHED_ATOMIC" and e.value.index == 2 and e.value.task == 2
    st = pool.state()
    assert st["waitq"] == [2] and st["deferred"] == [(2, 3)]
    assert pool.stats.asleep == 1 and pool.stats.kunmaps == 1
    pool.core._check_invariants()
    ref = reference_like(pool)
    assert ref.run(tr["addr"], tr["op"], tr["size"], tr["cpu"], tr["task"]) == 9
    theirs = ref.snapshot()
    assert (theirs["waitq"], theirs["deferred"]) == (st["waitq"], st["deferred"])
    s = pool.stats.to_dict()
    s.pop("asleep"), s.pop("pending")
    assert s == ref.c


def test_bug_in_a_deferred_op_after_the_wake_up():
    """Found by the deep hypothesis profile: the woken task's retry succeeds, then one of
    its deferred ops BUGs; that op stays deferred, no wake-up stays pending."""
    pool = KmapPool(kernel="6.x", slots=2)
    tr = trace((K, H, 0, 0, 0), (K, H + 1, 0, 0, 1), (K, H + 2, 0, 0, 0),
               (UA, H, 0, 0, 0), (K, H, 0, 0, 0), (U, H + 1, 0, 0, 1))
    with pytest.raises(KmapBugError) as e:
        pool.run(tr)
    assert e.value.code == "LOCAL_EMPTY" and e.value.index == 3
    assert pool.state()["deferred"] == [(0, 3), (0, 4)] and pool.stats.asleep == 0
    pool.core._check_invariants()
    check_reference(pool, tr)


def test_bug_in_an_op_deferred_from_an_earlier_chunk():
    """Found by the deep hypothesis profile: the failing op was deferred in an earlier
    run call; the error names it by its index in the whole trace."""
    pool = KmapPool(slots=2, cpus=2)
    pool.run(trace(*full_pool_rows(), (K, H + 2, 0, 1, 2), (U, H + 7, 0, 1, 2)),
             on_sleepers="report")
    with pytest.raises(KmapBugError, match=r"op 3 \(KUNMAP of pfn 0x38007 by task 2") as e:
        pool.run(trace((U, H, 0, 0, 1)))
    assert e.value.index == 3 and e.value.code == "KUNMAP_UNMAPPED"
    assert pool.state()["deferred"] == [(2, 3)]
