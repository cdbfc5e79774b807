"""Pins the values and sizes that are part of mmucore's contract.

Op codes are the ``op`` column of traces on disk (DESIGN.md section 3); policy and
page-size codes are what Cython consumers pass to the kernels of ``mmucore/tlb.pxd``;
``vaddr_t``/``asid_t`` widths are the types of the kernels' arguments and of the trace
columns. Changing any of them is a versioned, changelogged event (STYLE.md rule 9), so a
change must show up here as a failing test first.
"""
import pytest
import numpy as np

from mmucore import _types
from pyapi import Op


def test_memory_op_codes():
    """DESIGN section 3: LOAD=0, STORE=1, IFETCH=2, MODIFY=3 (load+store)."""
    ops = _types.OPS
    assert (ops["LOAD"], ops["STORE"], ops["IFETCH"], ops["MODIFY"]) == (0, 1, 2, 3)


def test_control_op_codes_follow_in_design_order():
    """Then the control ops, in the order DESIGN section 3 lists them, from 4 upwards."""
    control = ["SWITCH", "INVLPG", "FLUSH", "FLUSH_ASID", "MAP", "UNMAP", "KMAP", "KUNMAP",
               "KMAP_ATOMIC", "KUNMAP_ATOMIC"]
    assert [_types.OPS[name] for name in control] == list(range(4, 4 + len(control)))


def test_op_codes_complete_and_fit_uint8():
    ops = _types.OPS
    assert sorted(ops.values()) == list(range(len(ops)))      # dense, no duplicates
    assert len(ops) == 14
    assert max(ops.values()) <= np.iinfo(np.uint8).max         # the op column is uint8


def test_pyapi_op_enum_mirrors_the_codes():
    assert {op.name: int(op) for op in Op} == _types.OPS
    assert Op.LOAD == 0 and Op.KUNMAP_ATOMIC == 13


def test_policy_codes():
    assert _types.POLICIES == {"lru": 0, "fifo": 1, "random": 2, "plru": 3, "lfu": 4,
                               "srrip": 5}


def test_page_size_codes_and_shifts():
    assert _types.PAGE_SIZE_CODES == {"4K": 0, "2M": 1, "4M": 2, "1G": 3}
    assert _types.PAGE_SHIFTS == {0: 12, 1: 21, 2: 22, 3: 30}
    # an entry's tag is (vpn << 2) | code: every code must fit in two bits
    assert max(_types.PAGE_SIZE_CODES.values()) < 4


def test_type_sizes():
    assert _types.SIZEOF["vaddr_t"] == 8
    assert _types.SIZEOF["asid_t"] == 2
    assert _types.SIZEOF == {"vaddr_t": 8, "asid_t": 2}


def test_column_dtypes():
    assert _types.VADDR_DTYPE == np.dtype(np.uint64)
    assert _types.ASID_DTYPE == np.dtype(np.uint16)
    assert _types.VADDR_DTYPE.itemsize == _types.SIZEOF["vaddr_t"]
    assert _types.ASID_DTYPE.itemsize == _types.SIZEOF["asid_t"]


def test_tlbcore_accepts_the_codes():
    """The engine object takes the pinned codes: a 16x4 LRU TLB holding 4K and 2M pages."""
    from mmucore.tlb import TLBCore

    core = TLBCore(16, 4, _types.POLICIES["lru"],
                   (1 << _types.PAGE_SIZE_CODES["4K"]) | (1 << _types.PAGE_SIZE_CODES["2M"]), 0)
    assert (core.sets, core.ways, core.entries, core.policy, core.size_mask) == (16, 4, 64, 0, 3)


def test_tlb_state_layout_is_pinned():
    """TLBState is part of the cimport contract: a change of its size must come with a
    bump of TLB_ABI_VERSION (and a changelog entry); then update both numbers here."""
    import mmucore.tlb as tlb
    assert tlb.ABI_VERSION == 1
    assert tlb.STATE_SIZE == 408
    tlb.abi_check(tlb.ABI_VERSION, tlb.STATE_SIZE)
    with pytest.raises(ImportError, match="rebuild"):
        tlb.abi_check(tlb.ABI_VERSION + 1, tlb.STATE_SIZE)


def test_pagetable_layout_and_fault_bits_are_pinned():
    """PTState and the fault-code bits are part of the cimport contract too."""
    import mmucore.pagetable as pagetable
    assert pagetable.ABI_VERSION == 1
    assert pagetable.STATE_SIZE == 2784
    assert pagetable.FAULT_BITS == {'P': 1, 'W': 2, 'U': 4, 'RSVD': 8, 'I': 16, 'PF': 1073741824, 'GP': 2147483648}
    assert pagetable.FAULT_OUTSIDE == 0x80000000


def test_mmu_layout_is_pinned():
    """MMUState (mmucore/mmu.pxd) is part of the cimport contract: a change of its size
    must come with a bump of MMU_ABI_VERSION; then update both numbers here."""
    import mmucore.mmu as mmu
    assert mmu.ABI_VERSION == 3
    assert mmu.STATE_SIZE == 33152
    mmu.abi_check(mmu.ABI_VERSION, mmu.STATE_SIZE)
    with pytest.raises(ImportError, match="rebuild"):
        mmu.abi_check(mmu.ABI_VERSION + 1, mmu.STATE_SIZE)
    assert mmu.WHERE == {"l1": 0, "l2": 1, "walk": 2, "fault": 3, "control": 255}
    assert len(mmu.COUNTER_NAMES) == 30 and mmu.MAX_ASIDS == 4096


def test_parse_and_kmap_abi_versions():
    import mmucore.kmap as kmap
    import mmucore.parse as parse
    assert parse.ABI_VERSION == 1
    assert kmap.ABI_VERSION == 1


def test_build_kind_is_visible():
    import mmucore._types as types
    assert isinstance(types.DEBUG, bool)


def test_stackdist_layout_is_pinned():
    """SDState and the mode codes are part of the cimport contract too."""
    import mmucore.stackdist as stackdist
    assert stackdist.ABI_VERSION == 1
    assert stackdist.STATE_SIZE == 336
    assert stackdist.MODES == {"exact": 0, "sets": 1, "shards_rate": 2, "shards_size": 3}
    assert stackdist.MAX_WAYS == 4096
    stackdist.abi_check(stackdist.ABI_VERSION, stackdist.STATE_SIZE)
    with pytest.raises(ImportError, match="rebuild"):
        stackdist.abi_check(stackdist.ABI_VERSION + 1, stackdist.STATE_SIZE)


@pytest.mark.parametrize("module", ["mmucore.tlb", "mmucore._types", "mmucore.parse", "mmucore.gen",
                                    "mmucore.pagetable", "mmucore.kmap", "mmucore.stackdist",
                                    "mmucore.mmu"])
def test_stubs_match_the_compiled_module(module):
    """Every name of the shipped .pyi exists in the compiled module, and every public
    name of the module is in the stub."""
    import ast
    import importlib
    import pathlib

    mod = importlib.import_module(module)
    stub = pathlib.Path(mod.__file__).with_name(module.split(".")[1] + ".pyi")
    tree = ast.parse(stub.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            assert hasattr(mod, node.name), f"{stub.name}: {node.name} not in {module}"
            for item in getattr(node, "body", []):
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                    assert hasattr(getattr(mod, node.name), item.name), \
                        f"{stub.name}: {node.name}.{item.name} not in {module}"
    for name in names:
        assert hasattr(mod, name), f"{stub.name}: {name} not in {module}"
    public = {n for n in vars(mod) if not n.startswith("_") and n not in ("np", "numpy")}
    assert public <= names, f"public names without a stub: {sorted(public - names)}"
