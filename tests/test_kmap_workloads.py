"""The kmap workload generators: seeded, well-formed (they run without a BUG and without
sleepers), and they have the properties they promise."""
import numpy as np
import pytest

from pyapi import Op
from pyapi.kmap import KmapPool, PerTaskKmapPool
from pyapi.kmap_workloads import bounce_io, page_cache, pte_highmem


def same(a, b):
    return all(np.array_equal(getattr(a, k), getattr(b, k)) if getattr(a, k) is not None
               else getattr(b, k) is None for k in ("addr", "op", "size", "cpu", "task"))


def test_seeded():
    assert same(page_cache(500, seed=3), page_cache(500, seed=3))
    assert not same(page_cache(500, seed=3), page_cache(500, seed=4))
    assert same(pte_highmem(300, seed=1), pte_highmem(300, seed=1))
    assert same(bounce_io(50, seed=2), bounce_io(50, seed=2))


@pytest.mark.parametrize("hit_rate", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("cpus,tasks", [(1, 1), (4, 4), (4, 16)])
def test_page_cache_hit_rate_and_shape(hit_rate, cpus, tasks):
    n = 20000
    t = page_cache(n, file_pages=4096, tasks=tasks, cpus=cpus, hit_rate=hit_rate,
                   user_accesses=2, seed=5)
    assert (t.op == Op.KMAP).sum() == n == (t.op == Op.KUNMAP).sum()
    assert (t.op == Op.STORE).sum() == 2 * n
    assert np.array_equal(t.task % cpus, t.cpu)          # task t runs on CPU t % cpus
    for pool in (KmapPool(cpus=cpus), PerTaskKmapPool(cpus=cpus)):
        s = pool.run(t)
        assert s.kmaps == n and s.asleep == 0
        assert abs(s.hit_ratio - hit_rate) < 0.03
    # tasks sharing a CPU take turns: a SWITCH starts every time slice
    if tasks > cpus:
        assert (t.op == Op.SWITCH).sum() > 0


def test_page_cache_files_larger_than_the_pool_flush():
    t = page_cache(10000, file_pages=8192, tasks=2, hit_rate=0.0, seed=1)
    s = KmapPool(pae=True).run(t)
    assert s.new_mappings == 10000 and s.global_flushes == 10000 // 512


def test_threads_share_an_mm():
    t = page_cache(2000, tasks=4, cpus=2, threads_per_mm=2, seed=1)
    sw = t.op == Op.SWITCH
    assert set(np.unique(t.addr[sw]).tolist()) <= {0, 1}
    s = PerTaskKmapPool(cpus=2, share="mm", window_slots=8).run(t)
    assert s.task_wraps > 0 and s.asleep == 0


@pytest.mark.parametrize("atomic,kernel", [(False, "2.4.18"), (True, "2.5.13"),
                                           (True, "2.6.12"), (True, "6.x")])
def test_pte_highmem(atomic, kernel):
    t = pte_highmem(3000, tasks=6, cpus=2, atomic=atomic, kernel=kernel, seed=2)
    s = KmapPool(kernel=kernel, cpus=2).run(t)
    if atomic:
        assert s.atomic_maps == s.atomic_unmaps == 3000 and s.kmaps == 3000
    else:
        assert s.kmaps == 6000 and s.hits > 0          # hot page tables stay mapped


@pytest.mark.parametrize("kernel,km_pte0", [("2.5.13", 6), ("2.6.12", 7)])
def test_pte_highmem_uses_the_versions_km_pte0(kernel, km_pte0):
    """KM_PTE0 is 6 in 2.5.13 but 7 in 2.6.12, where KM_BIO_IRQ became KM_BIO_SRC_IRQ
    and KM_BIO_DST_IRQ (include/asm-i386/kmap_types.h, specs/kmap.md 3.2)."""
    t = pte_highmem(200, tasks=2, atomic=True, kernel=kernel, seed=1)
    atomic = (t.op == Op.KMAP_ATOMIC) | (t.op == Op.KUNMAP_ATOMIC)
    assert atomic.sum() == 400 and set(t.size[atomic].tolist()) == {km_pte0}


def test_pte_highmem_needs_a_pte_slot():
    with pytest.raises(ValueError, match="KM_PTE0"):
        pte_highmem(10, atomic=True, kernel="2.4.18")


@pytest.mark.parametrize("kernel", ["2.4.18", "6.x"])
def test_bounce_io(kernel):
    t = bounce_io(200, pages_per_request=4, cpus=2, kernel=kernel, seed=3)
    s = KmapPool(kernel=kernel, cpus=2).run(t)
    assert s.atomic_maps == 800 and s.lowmem == 1600 and s.invlpgs == 800
    assert s.global_flushes == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="hit_rate"):
        page_cache(10, hit_rate=1.0)
    with pytest.raises(ValueError, match="tasks"):
        page_cache(10, tasks=0)
