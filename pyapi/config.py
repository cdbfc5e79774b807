"""Configuration of an MMU as plain data: dataclasses, loaded from TOML presets.

An :class:`MMUConfig` describes one CPU's translation hardware (its TLB structures,
paging-structure caches and inclusion policy) and how the MMU runs (paging mode,
huge-page policy, PCID, CPU count, physical memory). ``docs/mmu.md`` section 1 gives
the rules; ``pyapi/presets/*.toml`` hold the CPUs of ``specs/hardware.md``.

>>> cfg = MMUConfig(name="tiny", tlbs=(
...     TLBConfig("dtlb_4k", level=1, side="data", entries=64, ways=4, page_sizes=("4K",)),))
>>> cfg.tlbs[0].sets, cfg.paging
(16, 'x86_64')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

__all__ = ["TLBConfig", "MMUConfig", "SIDES", "INCLUSIONS", "PSC_LEVELS"]

#: Sides a TLB structure serves.
SIDES = ("instruction", "data", "unified")
#: Inclusion policies between level 1 and level 2 (``docs/mmu.md`` section 4).
INCLUSIONS = ("inclusive", "non-inclusive", "exclusive")
#: Paging-structure-cache levels by name -> level number of the cached entries.
PSC_LEVELS = {"pde": 1, "pdpte": 2, "pml4e": 3, "pml5e": 4}


@dataclass(frozen=True)
class TLBConfig:
    """One TLB structure of a CPU.

    ``entries`` and ``ways`` give the geometry (``ways == entries``: fully
    associative); ``page_sizes`` the sizes it holds; ``splinter`` maps a translation
    size it does not hold to a smaller entry size it does (``{"1G": "2M"}``).

    >>> TLBConfig("stlb", level=2, side="unified", entries=1536, ways=12,
    ...           page_sizes=("4K", "2M")).sets
    128
    """
    name: str
    level: int
    side: str
    entries: int
    ways: int
    page_sizes: Tuple[str, ...]
    policy: str = "lru"
    splinter: Dict[str, str] = field(default_factory=dict)
    source: str = ""
    caveat: str = ""

    @property
    def sets(self) -> int:
        """Number of sets (``entries // ways``)."""
        return self.entries // self.ways


@dataclass(frozen=True)
class MMUConfig:
    """One CPU's translation hardware and how the MMU runs.

    ``psc`` maps PSC level names (``"pde"``, ``"pdpte"``, ``"pml4e"``, ``"pml5e"``) to
    ``(entries, ways)``. ``paging_modes`` lists the modes the CPU supports; ``paging``
    is the one used. ``walkers`` is documented, not modelled (walks are serial).
    """
    name: str
    tlbs: Tuple[TLBConfig, ...]
    psc: Dict[str, Tuple[int, int]] = field(default_factory=dict)
    psc_policy: str = "lru"
    inclusion: str = "inclusive"
    paging: str = "x86_64"
    paging_modes: Tuple[str, ...] = ("x86_32", "pae", "x86_64", "la57")
    huge_pages: str = "never"
    pcid: bool = False
    cpus: int = 1
    phys_mem: Optional[object] = None      # bytes or "64G"; None: PageTable's default
    allocator: str = "sequential"
    maxphyaddr: Optional[int] = None
    user: bool = True
    seed: int = 0
    walkers: Optional[int] = None
    description: str = ""
    source: str = ""
    caveats: Tuple[str, ...] = ()
