"""An independent oracle for the global persistent kmap pool (kmap / kunmap).

Written only from the kernel sources and from the public docs of the engine (the
trace encoding and the names / definitions of the ``KmapStats`` counters in
docs/kmap.md and ``help(pyapi.KmapStats)``), NOT from the engine or from
tests/reference_kmap.py.  It is a line-by-line transcription of:

* Linux 2.4.18 (Red Hat 2.4.18 tree ``oct-month/linux-kernel-2.4.18`` @ 375b8653,
  ``mm/highmem.c``; vanilla 2.4.x wrapper ``include/asm-i386/highmem.h`` of 2.4.0,
  ``Robin329/Linux-2.4.0`` @ b787e46f):
  ``kmap()`` -> ``if (page < highmem_start_page) return page_address(page);``
  ``kmap_high()`` reads ``page->virtual`` directly; ``flush_all_zero_pkmaps()`` ends
  with an unconditional ``flush_tlb_all()``.
* Linux 2.6.12 (``torvalds/linux`` @ 1da177e4, ``mm/highmem.c``,
  ``arch/i386/mm/highmem.c``, ``include/linux/hash.h``): hashed ``page_address()``
  (``PA_HASH_ORDER 7``, ``list_add_tail`` on insert, chain walked from the head),
  ``hash_long(val, 7) = (val * 0x9e370001) mod 2**32 >> 25``;
  ``flush_tlb_kernel_range()`` unconditional (== ``flush_tlb_all()`` on i386).
* Linux 6.x (``Kingxukai/linux`` @ 0291023e, ``mm/highmem.c``,
  ``include/linux/hash.h``): ``get_next_pkmap_nr()`` / ``no_more_pkmaps()`` with
  colour 0 (the same cursor), ``flush_all_zero_pkmaps()`` flushes only
  ``if (need_flush)``, ``hash_32(val, 7) = (val * 0x61C88647) mod 2**32 >> 25``,
  ``set_page_address()`` add = ``list_add_tail``, remove = ``list_del``.
* 2.5.13 (field ``page->virtual``, unconditional flush) is modelled like 2.4.18
  (specs/kmap.md section 2.2); it was not re-read from source here.

A note on 2.6.12's ``flush_all_zero_pkmaps()``: it clears the PTE with
``pte_clear(&init_mm, (unsigned long)page_address(page), &pkmap_page_table[i])``,
i.e. the source text contains a ``page_address()`` call per reclaimed slot.  On i386
that argument is never evaluated: ``pte_clear(mm,addr,xp)`` is the macro
``set_pte_at(mm, addr, xp, __pte(0))`` (include/asm-i386/pgtable.h @ 1da177e4) and
``set_pte_at(mm,addr,ptep,pteval)`` is the macro ``set_pte(ptep,pteval)`` in both
pgtable-2level.h and pgtable-3level.h, so the preprocessor drops ``addr``.  The
oracle therefore counts no lookup there (``I386_PTE_CLEAR_EVALUATES_ADDR = False``).
6.x uses ``PKMAP_ADDR(i)`` instead.

Scope: kmap / kunmap only, no sleeping (a scan that would sleep raises
``OracleWouldSleep``), no kmap_atomic, no TLB model.  The cursor wraps by compare
(Hugh Dickins' 2002 form, ``if (++last_pkmap_nr >= LAST_PKMAP) last_pkmap_nr = 0``),
which is the kernel's ``(last_pkmap_nr + 1) & LAST_PKMAP_MASK`` for every power of
two and lets ``slots=`` be any size, as the engine's ``slots=`` documents.

Counter definitions used (docs/kmap.md "Counters", help(KmapStats)):
  ops            every op completed
  kmaps/kunmaps  completed calls, lowmem included
  lowmem         kmap or kunmap of a lowmem pfn (the bypass; see ``LOWMEM_KUNMAP_COUNTS``)
  lookups        page_address() calls: one in kmap_high, one in kunmap_high
                 (2.4/2.5: the read of page->virtual); none for lowmem ("no lookup")
  hash_probes    chain entries compared by page_address() (found at k: k; absent:
                 the chain length); set_page_address() removals are not counted
  hits           kmap_high found the page already mapped
  new_mappings   map_new_virtual() calls that installed a PTE
  cursor_steps   advances of last_pkmap_nr (one per iteration of the search loop)
  wraps          flush_all_zero_pkmaps() calls
  slots_reclaimed count-1 slots set to 0 by flush_all_zero_pkmaps()
  global_flushes flush_tlb_all() / flush_tlb_kernel_range() calls
  ipis           global_flushes * (cpus - 1)
  context_switches  first op of a task on a CPU, or an op of another task on a CPU
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

PAGE_SHIFT = 12
PAGE_OFFSET = 0xC0000000
PA_HASH_ORDER = 7
MAXMEM_PFN = 229376  # 896 MB: default first highmem pfn (docs/kmap.md)

# False on i386: see the module docstring (2.6.12 pte_clear macro drops its addr).
I386_PTE_CLEAR_EVALUATES_ADDR = False
# docs: "lowmem (bypasses)". kunmap() of a lowmem page also bypasses the pool
# (``if (!PageHighMem(page)) return;``), so it is counted too.  (Ambiguous: see report.)
LOWMEM_KUNMAP_COUNTS = True


@dataclass(frozen=True)
class Version:
    name: str
    hashed: bool          # page_address() is the hash (2.5.41+) or page->virtual
    golden: int           # multiplier of hash_ptr on 32-bit
    flush_if_needed: bool  # 6.x: flush only if a slot was reclaimed
    page_struct: int      # sizeof(struct page): the hash key is &mem_map[pfn]
    pkmap_base: int       # docs/kmap.md table (places the slots; build-time in 2.6/6.x)


VERSIONS = {
    "2.4.18": Version("2.4.18", False, 0, False, 64, 0xFE000000),
    "2.5.13": Version("2.5.13", False, 0, False, 40, 0xFE000000),
    "2.6.12": Version("2.6.12", True, 0x9E370001, False, 32, 0xFF800000),
    "6.x": Version("6.x", True, 0x61C88647, True, 32, 0xFF600000),
}
ALIASES = {"2.4": "2.4.18", "2.5": "2.5.13", "2.6": "2.6.12", "6": "6.x"}


class OracleWouldSleep(Exception):
    """map_new_virtual() ran out of its budget: the kernel would sleep (out of scope)."""


class OracleBug(Exception):
    """A kernel BUG() / BUG_ON() condition."""


@dataclass
class Counters:
    ops: int = 0
    kmaps: int = 0
    kunmaps: int = 0
    lowmem: int = 0
    lookups: int = 0
    hash_probes: int = 0
    hits: int = 0
    new_mappings: int = 0
    cursor_steps: int = 0
    wraps: int = 0
    slots_reclaimed: int = 0
    global_flushes: int = 0
    ipis: int = 0
    context_switches: int = 0

    def as_dict(self) -> Dict[str, int]:
        return dict(self.__dict__)


class OracleKmap:
    """The global pool of one machine: pkmap_count[], last_pkmap_nr, the pkmap PTEs
    (slot -> pfn) and page -> virtual (the field, or the 128 hash chains)."""

    def __init__(self, kernel: str = "2.4.18", pae: bool = False,
                 slots: Optional[int] = None, cpus: int = 1,
                 highmem_start_pfn: int = MAXMEM_PFN, mem_map: int = 0xC1000000):
        self.v = VERSIONS[ALIASES.get(kernel, kernel)]
        # include/asm-i386/highmem.h: LAST_PKMAP 512 with CONFIG_X86_PAE, else 1024
        self.LAST_PKMAP = slots if slots is not None else (512 if pae else 1024)
        self.cpus = cpus
        self.highmem_start_pfn = highmem_start_pfn
        self.mem_map = mem_map
        # static int pkmap_count[LAST_PKMAP]; static unsigned int last_pkmap_nr;
        self.pkmap_count: List[int] = [0] * self.LAST_PKMAP
        self.last_pkmap_nr = 0
        self.pkmap_page_table: List[Optional[int]] = [None] * self.LAST_PKMAP  # pfn or pte_none
        # page->virtual (2.4/2.5): pfn -> vaddr; absent = NULL
        self.virtual: Dict[int, int] = {}
        # page_address_htable[128]: each chain a list of (pfn, vaddr), head first
        self.htable: List[List[tuple]] = [[] for _ in range(1 << PA_HASH_ORDER)]
        self.c = Counters()
        self.running: Dict[int, int] = {}  # cpu -> task (for context_switches)

    # ---- addresses ---------------------------------------------------------------
    def PKMAP_ADDR(self, nr: int) -> int:
        return self.v.pkmap_base + (nr << PAGE_SHIFT)

    def PKMAP_NR(self, vaddr: int) -> int:
        return (vaddr - self.v.pkmap_base) >> PAGE_SHIFT

    def is_highmem(self, pfn: int) -> bool:
        return pfn >= self.highmem_start_pfn

    def lowmem_page_address(self, pfn: int) -> int:
        return PAGE_OFFSET + (pfn << PAGE_SHIFT)

    # ---- page_address / set_page_address -----------------------------------------
    def page_slot(self, pfn: int) -> int:
        """hash_ptr(page, PA_HASH_ORDER) with page = &mem_map[pfn] (32-bit multiply)."""
        page = (self.mem_map + pfn * self.v.page_struct) & 0xFFFFFFFF
        return ((page * self.v.golden) & 0xFFFFFFFF) >> (32 - PA_HASH_ORDER)

    def page_address(self, pfn: int) -> Optional[int]:
        """page_address() of a highmem page, as called under kmap_lock (counted)."""
        self.c.lookups += 1
        if not self.v.hashed:
            return self.virtual.get(pfn)          # (page)->virtual
        for pfn_, vaddr in self.htable[self.page_slot(pfn)]:   # list_for_each_entry
            self.c.hash_probes += 1
            if pfn_ == pfn:
                return vaddr
        return None

    def set_page_address(self, pfn: int, vaddr: Optional[int]) -> None:
        if not self.v.hashed:
            if vaddr is None:
                del self.virtual[pfn]
            else:
                self.virtual[pfn] = vaddr
            return
        chain = self.htable[self.page_slot(pfn)]
        if vaddr is not None:                     # Add: list_add_tail
            chain.append((pfn, vaddr))
        else:                                     # Remove: walk, list_del (not counted)
            for i, (pfn_, _) in enumerate(chain):
                if pfn_ == pfn:
                    del chain[i]
                    break

    # ---- mm/highmem.c -------------------------------------------------------------
    def flush_all_zero_pkmaps(self) -> None:
        self.c.wraps += 1
        need_flush = 0
        for i in range(self.LAST_PKMAP):
            if self.pkmap_count[i] != 1:
                continue
            self.pkmap_count[i] = 0
            if self.pkmap_page_table[i] is None:    # sanity check
                raise OracleBug("flush: pte_none on a count-1 slot")
            page = self.pkmap_page_table[i]
            if I386_PTE_CLEAR_EVALUATES_ADDR and self.v.name == "2.6.12":
                self.page_address(page)
            self.pkmap_page_table[i] = None         # pte_clear
            self.set_page_address(page, None)
            need_flush = 1
            self.c.slots_reclaimed += 1
        if need_flush or not self.v.flush_if_needed:
            self.c.global_flushes += 1              # flush_tlb_all(): IPI every other CPU
            self.c.ipis += self.cpus - 1

    def map_new_virtual(self, pfn: int) -> int:
        count = self.LAST_PKMAP
        while True:
            # last_pkmap_nr = (last_pkmap_nr + 1) & LAST_PKMAP_MASK;
            self.last_pkmap_nr += 1
            if self.last_pkmap_nr >= self.LAST_PKMAP:
                self.last_pkmap_nr = 0
            self.c.cursor_steps += 1
            if self.last_pkmap_nr == 0:
                self.flush_all_zero_pkmaps()
                count = self.LAST_PKMAP
            if not self.pkmap_count[self.last_pkmap_nr]:
                break                               # Found a usable entry
            count -= 1
            if count:
                continue
            raise OracleWouldSleep(pfn)
        vaddr = self.PKMAP_ADDR(self.last_pkmap_nr)
        self.pkmap_page_table[self.last_pkmap_nr] = pfn   # set_pte(mk_pte(page, kmap_prot))
        self.pkmap_count[self.last_pkmap_nr] = 1
        self.set_page_address(pfn, vaddr)
        self.c.new_mappings += 1
        return vaddr

    def kmap_high(self, pfn: int) -> int:
        vaddr = self.page_address(pfn)
        if not vaddr:
            vaddr = self.map_new_virtual(pfn)
        else:
            self.c.hits += 1
        nr = self.PKMAP_NR(vaddr)
        self.pkmap_count[nr] += 1
        if self.pkmap_count[nr] < 2:
            raise OracleBug("kmap_high: count < 2")
        return vaddr

    def kunmap_high(self, pfn: int) -> None:
        vaddr = self.page_address(pfn)
        if not vaddr:
            raise OracleBug("kunmap_high: page not mapped")
        nr = self.PKMAP_NR(vaddr)
        self.pkmap_count[nr] -= 1
        if self.pkmap_count[nr] == 0:
            raise OracleBug("kunmap_high: count dropped to 0")
        # case 1: need_wakeup = waitqueue_active(); never true here (no sleepers)

    # ---- kmap / kunmap (include/asm-i386/highmem.h, arch/i386/mm/highmem.c) -------
    def _switch(self, cpu: int, task: int) -> None:
        if self.running.get(cpu) != task:
            self.running[cpu] = task
            self.c.context_switches += 1

    def kmap(self, pfn: int, cpu: int = 0, task: Optional[int] = None) -> int:
        self._switch(cpu, cpu if task is None else task)
        if not self.is_highmem(pfn):
            addr = self.lowmem_page_address(pfn)
            self.c.lowmem += 1
        else:
            addr = self.kmap_high(pfn)
        self.c.kmaps += 1
        self.c.ops += 1
        return addr

    def kunmap(self, pfn: int, cpu: int = 0, task: Optional[int] = None) -> None:
        self._switch(cpu, cpu if task is None else task)
        if not self.is_highmem(pfn):
            if LOWMEM_KUNMAP_COUNTS:
                self.c.lowmem += 1
        else:
            self.kunmap_high(pfn)
        self.c.kunmaps += 1
        self.c.ops += 1

    def run(self, ops, pfns, cpus=None, tasks=None, kmap_op=10, kunmap_op=11) -> Counters:
        for i, (op, pfn) in enumerate(zip(ops, pfns)):
            cpu = 0 if cpus is None else int(cpus[i])
            task = None if tasks is None else int(tasks[i])
            if int(op) == kmap_op:
                self.kmap(int(pfn), cpu, task)
            elif int(op) == kunmap_op:
                self.kunmap(int(pfn), cpu, task)
            else:
                raise ValueError(f"op {i}: only KMAP/KUNMAP are modelled")
        return self.c

    # ---- observable state ----------------------------------------------------------
    def peek_address(self, pfn: int) -> Optional[int]:
        """page_address() without counting (for comparisons)."""
        if not self.is_highmem(pfn):
            return self.lowmem_page_address(pfn)
        if not self.v.hashed:
            return self.virtual.get(pfn)
        for pfn_, vaddr in self.htable[self.page_slot(pfn)]:
            if pfn_ == pfn:
                return vaddr
        return None

    def slot_pfn(self) -> List[int]:
        return [-1 if p is None else p for p in self.pkmap_page_table]

    def chains(self) -> List[List[int]]:
        """The hash chains as lists of pkmap slot numbers, head first."""
        return [[self.PKMAP_NR(v) for _, v in ch] for ch in self.htable]
