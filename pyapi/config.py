"""Configuration of an MMU as plain data: dataclasses, loaded from TOML presets.

An :class:`MMUConfig` describes one CPU's translation hardware (its TLB structures,
paging-structure caches and inclusion policy) and how the MMU runs (paging mode,
huge-page policy, PCID, CPU count, physical memory). ``docs/mmu.md`` section 1 gives
the rules; ``pyapi/presets/*.toml`` hold the CPUs of ``specs/hardware.md`` and
``docs/presets.md`` describes them and the file schema.

Both dataclasses check themselves when built, so a config that exists is valid:

>>> cfg = MMUConfig(name="tiny", tlbs=(
...     TLBConfig("dtlb_4k", level=1, side="data", entries=64, ways=4, page_sizes=("4K",)),))
>>> cfg.tlbs[0].sets, cfg.paging
(16, 'x86_64')
>>> cfg.replace(cpus=65)
Traceback (most recent call last):
...
pyapi.config.ConfigError: cpus=65 is outside 1..64 (the engine keeps each address space's CPU set in one 64-bit word)
>>> sky = load_preset("skylake")
>>> sky.tlb("stlb").entries, sky.tlb("stlb").ways, sky.tlb("stlb").sets
(1536, 12, 128)
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from typing import Dict, List, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:                                           # pragma: no cover - Python < 3.11
    import tomli as tomllib

from pyapi.pagetable import MODE_NAMES
from pyapi.tlb import POLICY_NAMES
from pyapi.units import PAGE_SIZES, page_size_code, page_size_name, parse_size

__all__ = ["TLBConfig", "MMUConfig", "ConfigError", "SIDES", "INCLUSIONS", "PSC_LEVELS",
           "HUGE_PAGE_POLICIES", "ALLOCATORS", "MAX_CPUS", "PSC_LEVELS_OF_MODE",
           "preset_names", "load_preset", "load_config", "presets_table"]

#: Sides a TLB structure serves.
SIDES = ("instruction", "data", "unified")
#: Inclusion policies between level 1 and level 2 (``docs/mmu.md`` section 4).
INCLUSIONS = ("inclusive", "non-inclusive", "exclusive")
#: Paging-structure-cache levels by name -> level number of the cached entries.
PSC_LEVELS = {"pde": 1, "pdpte": 2, "pml4e": 3, "pml5e": 4}
#: The PSC levels each paging mode has. PAE's four PDPTEs are registers loaded at a CR3
#: write, so PAE (like 32-bit paging) has a PDE cache only (SDM 4.10.3).
PSC_LEVELS_OF_MODE = {"x86_32": ("pde",), "pae": ("pde",),
                      "x86_64": ("pde", "pdpte", "pml4e"),
                      "la57": ("pde", "pdpte", "pml4e", "pml5e")}
#: Demand-paging huge-page policies (``pyapi.PageTable``).
HUGE_PAGE_POLICIES = ("never", "thp", "always")
#: Physical frame allocators (``pyapi.PageTable``).
ALLOCATORS = ("sequential", "random")
#: Most CPUs an MMU may have: the engine keeps the set of CPUs an address space is
#: current on (its ``cpumask``, used by shootdowns) in one 64-bit word.
MAX_CPUS = 64
#: Paging modes with PCIDs: CR4.PCIDE can be set only in IA-32e mode (SDM 4.10.1).
PCID_MODES = ("x86_64", "la57")

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_ENTRIES = 1 << 30
_U64 = (1 << 64) - 1
_MAXPHYADDR_RANGE = {"x86_32": (32, 40), "pae": (32, 52), "x86_64": (32, 52), "la57": (32, 52)}


class ConfigError(ValueError, TypeError):
    """A configuration (a dataclass, a preset or a user's TOML file) is invalid.

    It is both a ``ValueError`` and a ``TypeError`` (wrong values and wrong types are
    reported alike); the message names the file when one was loaded, the structure and
    the field.

    >>> try:
    ...     TLBConfig(name="x", level=1, side="data", entries=6, ways=4, page_sizes=["4K"])
    ... except ConfigError as e:
    ...     print(e)
    tlb 'x': ways=4 does not divide entries=6 (sets must be whole); ways that divide it: 1, 2, 3, 6
    """


def _err(msg: str) -> ConfigError:
    return ConfigError(msg)


def _check_int(value, what: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if (hasattr(value, "__index__") and not isinstance(value, (bool, str, bytes, float))
                and type(value).__name__ != "bool_"):
            value = int(value.__index__())
        else:
            raise _err(f"{what} must be an integer, not {type(value).__name__} {value!r}")
    if lo is not None and value < lo:
        raise _err(f"{what}={value} must be >= {lo}")
    if hi is not None and value > hi:
        raise _err(f"{what}={value} must be <= {hi}")
    return int(value)


def _check_str(value, what: str, choices=None) -> str:
    if not isinstance(value, str):
        raise _err(f"{what} must be a string, not {type(value).__name__} {value!r}")
    if choices is not None and value not in choices:
        raise _err(f"{what}={value!r} is not one of {', '.join(choices)}")
    return value


def _check_bool(value, what: str) -> bool:
    if not isinstance(value, bool):
        raise _err(f"{what} must be true or false, not {type(value).__name__} {value!r}")
    return value


def _page_size(value, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _err(f"{what}: {value!r} is not a page size; use one of {', '.join(PAGE_SIZES)}")
    try:
        return page_size_name(_CODE_BYTES[page_size_code(value, what=what)])
    except (ValueError, TypeError) as exc:
        raise _err(f"{what}: {value!r} is not a page size; use one of "
                   f"{', '.join(PAGE_SIZES)}") from exc


_CODE_BYTES = {page_size_code(n): b for n, b in PAGE_SIZES.items()}


def _str_tuple(value, what: str) -> tuple:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _err(f"{what} must be a list of strings, not {type(value).__name__} {value!r}")
    for i, v in enumerate(value):
        _check_str(v, f"{what}[{i}]")
    return tuple(value)


@dataclass(frozen=True)
class TLBConfig:
    """One TLB structure of a CPU.

    ``entries`` and ``ways`` give the geometry (``ways == entries``: fully
    associative; ``ways`` must divide ``entries``); ``page_sizes`` the sizes it holds;
    ``splinter`` maps a translation size it does not hold to a smaller entry size it
    does (``{"1G": "2M"}``). ``level`` is 1 or 2; level-1 structures serve the
    ``"instruction"`` or ``"data"`` side, level-2 ones may also be ``"unified"``.
    ``policy`` is one of ``pyapi.POLICY_NAMES``. ``source`` and ``caveat`` are free
    text (where the numbers come from, what is uncertain). Page sizes are normalized
    to their names (``"2m"`` or ``2097152`` become ``"2M"``), lists to tuples.

    >>> TLBConfig("stlb", level=2, side="unified", entries=1536, ways=12,
    ...           page_sizes=("4K", "2M")).sets
    128
    >>> TLBConfig("stlb", level=2, side="unified", entries=1536, ways=10,
    ...           page_sizes=("4K",))
    Traceback (most recent call last):
    ...
    pyapi.config.ConfigError: tlb 'stlb': ways=10 does not divide entries=1536 (sets must be whole); ways that divide it: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64
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

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise _err(f"tlb name {self.name!r} must be an identifier (letters, digits, "
                       f"'_'; it becomes part of counter names such as cpu0.NAME.misses)")
        w = f"tlb {self.name!r}"
        level = _check_int(self.level, f"{w}: level")
        if level not in (1, 2):
            raise _err(f"{w}: level={level} must be 1 or 2")
        side = _check_str(self.side, f"{w}: side", SIDES)
        if level == 1 and side == "unified":
            raise _err(f"{w}: side='unified' is for level-2 structures; a level-1 "
                       f"structure is side 'instruction' or 'data'")
        entries = _check_int(self.entries, f"{w}: entries", 1, _MAX_ENTRIES)
        ways = _check_int(self.ways, f"{w}: ways", 1)
        if ways > entries:
            raise _err(f"{w}: ways={ways} is larger than entries={entries} "
                       f"(ways == entries is fully associative)")
        if entries % ways:
            fits = ", ".join(str(x) for x in range(1, min(entries, 64) + 1) if entries % x == 0)
            raise _err(f"{w}: ways={ways} does not divide entries={entries} (sets must be "
                       f"whole); ways that divide it: {fits}")
        if isinstance(self.page_sizes, (str, int)) or not isinstance(self.page_sizes, (list, tuple)):
            raise _err(f"{w}: page_sizes must be a list such as [\"4K\", \"2M\"], "
                       f"not {self.page_sizes!r}")
        sizes = tuple(_page_size(s, f"{w}: page_sizes") for s in self.page_sizes)
        if not sizes:
            raise _err(f"{w}: page_sizes is empty; name at least one of {', '.join(PAGE_SIZES)}")
        if len(set(sizes)) != len(sizes):
            raise _err(f"{w}: page_sizes {list(sizes)} names a size twice")
        policy = _check_str(self.policy, f"{w}: policy")
        if policy.lower() not in POLICY_NAMES:
            raise _err(f"{w}: policy={policy!r} is not one of {', '.join(POLICY_NAMES)}")
        if not isinstance(self.splinter, dict):
            raise _err(f"{w}: splinter must be a table {{size = size}}, not {self.splinter!r}")
        splinter = {}
        for k, v in self.splinter.items():
            ks = _page_size(k, f"{w}: splinter key")
            vs = _page_size(v, f"{w}: splinter[{k!r}]")
            if ks in sizes:
                raise _err(f"{w}: splinter[{ks!r}]: the structure holds {ks} pages itself; "
                           f"splinter only sizes it does not hold")
            if vs not in sizes:
                raise _err(f"{w}: splinter[{ks!r}] = {vs!r} is not a size the structure "
                           f"holds ({', '.join(sizes)})")
            if PAGE_SIZES[vs] >= PAGE_SIZES[ks]:
                raise _err(f"{w}: splinter[{ks!r}] = {vs!r} must be a smaller size than {ks}")
            if ks in splinter:
                raise _err(f"{w}: splinter names {ks} twice")
            splinter[ks] = vs
        _check_str(self.source, f"{w}: source")
        _check_str(self.caveat, f"{w}: caveat")
        order = list(PAGE_SIZES)
        for name, value in (("level", level), ("entries", entries), ("ways", ways),
                            ("page_sizes", tuple(sorted(sizes, key=order.index))),
                            ("policy", policy.lower()), ("splinter", splinter)):
            object.__setattr__(self, name, value)

    @property
    def sets(self) -> int:
        """Number of sets (``entries // ways``)."""
        return self.entries // self.ways

    @property
    def fully_associative(self) -> bool:
        """True when ``ways == entries`` (one set)."""
        return self.ways == self.entries

    @property
    def takes(self) -> Tuple[str, ...]:
        """The translation sizes it can hold: ``page_sizes`` plus the splintered ones.

        >>> TLBConfig("l2_dtlb", 2, "data", 2048, 8, ("4K", "2M"), splinter={"1G": "2M"}).takes
        ('4K', '2M', '1G')
        """
        order = list(PAGE_SIZES)
        return tuple(sorted(set(self.page_sizes) | set(self.splinter), key=order.index))

    def replace(self, **changes) -> "TLBConfig":
        """A validated copy with ``changes`` applied.

        >>> TLBConfig("stlb", 2, "unified", 1536, 12, ("4K", "2M")).replace(entries=2048, ways=16).sets
        128
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The structure as a ``[[tlb]]`` table of a preset file (plain types; empty
        ``splinter``/``source``/``caveat`` left out).

        >>> TLBConfig("dtlb_4k", 1, "data", 64, 4, ("4K",)).to_dict()
        {'name': 'dtlb_4k', 'level': 1, 'side': 'data', 'entries': 64, 'ways': 4, 'page_sizes': ['4K'], 'policy': 'lru'}
        """
        d = {"name": self.name, "level": self.level, "side": self.side,
             "entries": self.entries, "ways": self.ways, "page_sizes": list(self.page_sizes),
             "policy": self.policy}
        if self.splinter:
            d["splinter"] = dict(self.splinter)
        if self.source:
            d["source"] = self.source
        if self.caveat:
            d["caveat"] = self.caveat
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "tlb") -> "TLBConfig":
        """Build from a ``[[tlb]]`` table; unknown or missing keys are errors naming them.

        >>> TLBConfig.from_dict({"name": "itlb", "level": 1, "side": "instruction",
        ...                      "entries": 48, "ways": 48, "page_sizes": ["4K", "2M"]}).sets
        1
        """
        if not isinstance(d, dict):
            raise _err(f"{where} must be a table, not {type(d).__name__}")
        label = f"{where} {d['name']!r}" if isinstance(d.get("name"), str) else where
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in fields]
        if unknown:
            raise _err(f"{label}: unknown key {unknown[0]!r}; allowed keys: {', '.join(fields)}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise _err(f"{label}: missing key {missing[0]!r} (required: {', '.join(required)})")
        return cls(**d)


@dataclass(frozen=True)
class MMUConfig:
    """One CPU's translation hardware and how the MMU runs.

    ``psc`` maps PSC level names (``"pde"``, ``"pdpte"``, ``"pml4e"``, ``"pml5e"``) to
    ``(entries, ways)``: the CPU's caches. A level the paging mode lacks is kept but
    unused (a Skylake config run in ``pae`` has only its PDE cache); :meth:`active_psc`
    gives the levels of the current mode. ``paging_modes`` lists the modes the CPU
    supports; ``paging`` is the one used. ``walkers`` is documented, not modelled
    (walks are serial). ``cpus`` is 1..64; ``pcid`` needs ``x86_64`` or ``la57``.

    >>> cfg = load_preset("skylake", paging="pae")
    >>> sorted(cfg.psc), cfg.active_psc()
    (['pde', 'pdpte', 'pml4e'], {1: (32, 8)})
    >>> cfg.replace(pcid=True)
    Traceback (most recent call last):
    ...
    pyapi.config.ConfigError: pcid=True needs paging x86_64 or la57 (CR4.PCIDE exists only in IA-32e mode), not 'pae'
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

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise _err(f"name must be a non-empty string, not {self.name!r}")
        # structures
        if isinstance(self.tlbs, (str, dict)) or not isinstance(self.tlbs, (list, tuple)):
            raise _err(f"tlbs must be a list of TLBConfig, not {type(self.tlbs).__name__}")
        tlbs = []
        for i, t in enumerate(self.tlbs):
            if isinstance(t, dict):
                t = TLBConfig.from_dict(t, f"tlb[{i}]")
            elif not isinstance(t, TLBConfig):
                raise _err(f"tlbs[{i}] must be a TLBConfig, not {type(t).__name__}")
            tlbs.append(t)
        seen = {}
        for t in tlbs:
            if t.name in seen:
                raise _err(f"tlb {t.name!r}: the name is used twice (names are unique per CPU)")
            seen[t.name] = t
        # within one (level, side-group) a page size goes to one structure at most
        for i, a in enumerate(tlbs):
            for b in tlbs[i + 1:]:
                if a.level != b.level:
                    continue
                if a.side != b.side and "unified" not in (a.side, b.side):
                    continue
                both = [s for s in a.takes if s in b.takes]
                if both:
                    group = (f"level {a.level} {a.side}" if a.side == b.side
                             else f"level {a.level} (a unified structure serves both sides)")
                    raise _err(f"tlb {b.name!r}: page_sizes: {both[0]} pages are taken by "
                               f"{a.name!r} too; within {group} one structure at most "
                               f"holds or splinters a page size")
        # paging
        paging = _check_str(self.paging, "paging", MODE_NAMES)
        modes = _str_tuple(self.paging_modes, "paging_modes")
        if not modes:
            raise _err("paging_modes is empty; list the modes the CPU supports")
        for m in modes:
            _check_str(m, "paging_modes", MODE_NAMES)
        if len(set(modes)) != len(modes):
            raise _err(f"paging_modes {list(modes)} names a mode twice")
        if paging not in modes:
            raise _err(f"paging={paging!r} is not in paging_modes ({', '.join(modes)}) of "
                       f"{self.name!r}")
        # paging-structure caches
        if not isinstance(self.psc, dict):
            raise _err(f"psc must be a table {{level = [entries, ways]}}, not {self.psc!r}")
        psc = {}
        by_number = {v: k for k, v in PSC_LEVELS.items()}
        for key, geo in self.psc.items():
            if isinstance(key, int) and not isinstance(key, bool) and key in by_number:
                lvl = by_number[key]
            elif isinstance(key, str) and key.lower() in PSC_LEVELS:
                lvl = key.lower()
            else:
                raise _err(f"psc: unknown level {key!r}; use {', '.join(PSC_LEVELS)}")
            if isinstance(geo, dict):
                extra = [k for k in geo if k not in ("entries", "ways")]
                if extra or "entries" not in geo:
                    raise _err(f"psc.{lvl}: give {{entries = N, ways = W}} or [N, W], not {geo!r}")
                geo = (geo["entries"], geo.get("ways", geo["entries"]))
            if isinstance(geo, str) or not isinstance(geo, (list, tuple)) or len(geo) != 2:
                raise _err(f"psc.{lvl}: give {{entries = N, ways = W}} or [N, W], not {geo!r}")
            e = _check_int(geo[0], f"psc.{lvl}: entries", 1, _MAX_ENTRIES)
            w = _check_int(geo[1], f"psc.{lvl}: ways", 1)
            if w > e or e % w:
                raise _err(f"psc.{lvl}: ways={w} does not divide entries={e} (sets must be whole)")
            if lvl in psc:
                raise _err(f"psc: level {lvl} is given twice")
            psc[lvl] = (e, w)
        psc = {k: psc[k] for k in PSC_LEVELS if k in psc}
        psc_policy = _check_str(self.psc_policy, "psc_policy").lower()
        if psc_policy not in POLICY_NAMES:
            raise _err(f"psc_policy={self.psc_policy!r} is not one of {', '.join(POLICY_NAMES)}")
        # run options
        _check_str(self.inclusion, "inclusion", INCLUSIONS)
        _check_str(self.huge_pages, "huge_pages", HUGE_PAGE_POLICIES)
        _check_str(self.allocator, "allocator", ALLOCATORS)
        pcid = _check_bool(self.pcid, "pcid")
        if pcid and paging not in PCID_MODES:
            raise _err(f"pcid=True needs paging x86_64 or la57 (CR4.PCIDE exists only in "
                       f"IA-32e mode), not {paging!r}")
        if isinstance(self.cpus, bool) or not isinstance(self.cpus, int):
            raise _err(f"cpus must be an integer, not {type(self.cpus).__name__} {self.cpus!r}")
        if not 1 <= self.cpus <= MAX_CPUS:
            raise _err(f"cpus={self.cpus} is outside 1..{MAX_CPUS} (the engine keeps each "
                       f"address space's CPU set in one 64-bit word)")
        phys = self.phys_mem
        if phys is not None:
            try:
                nbytes = parse_size(phys, what="phys_mem")
            except (ValueError, TypeError) as exc:
                raise _err(str(exc)) from exc
            if nbytes < 4096 or nbytes % 4096:
                raise _err(f"phys_mem={phys!r} must be a positive multiple of 4K")
        if self.maxphyaddr is not None:
            lo, hi = _MAXPHYADDR_RANGE[paging]
            _check_int(self.maxphyaddr, f"maxphyaddr (for {paging}, {lo}..{hi})", lo, hi)
        _check_bool(self.user, "user")
        seed = _check_int(self.seed, "seed", 0, _U64)
        walkers = None if self.walkers is None else _check_int(self.walkers, "walkers", 1)
        _check_str(self.description, "description")
        _check_str(self.source, "source")
        caveats = _str_tuple(self.caveats, "caveats")
        for name, value in (("tlbs", tuple(tlbs)), ("psc", psc), ("psc_policy", psc_policy),
                            ("paging_modes", modes), ("seed", seed), ("walkers", walkers),
                            ("caveats", caveats)):
            object.__setattr__(self, name, value)

    # -- access -------------------------------------------------------------------
    def tlb(self, name: str) -> TLBConfig:
        """The structure called ``name``; ``KeyError`` listing the names otherwise.

        >>> load_preset("zen2").tlb("l2_dtlb").splinter
        {'4M': '2M', '1G': '2M'}
        """
        for t in self.tlbs:
            if t.name == name:
                return t
        raise KeyError(f"{self.name!r} has no TLB structure {name!r}; it has "
                       f"{', '.join(t.name for t in self.tlbs) or 'none'}")

    def active_psc(self) -> Dict[int, Tuple[int, int]]:
        """The PSCs of the current paging mode, ``{level: (entries, ways)}`` with level
        1 = PDE cache ... 4 = PML5E (the form ``pyapi.PageTable(psc=...)`` takes).
        Levels the mode lacks are left out: PAE and 32-bit paging have a PDE cache
        only, ``x86_64`` no PML5E cache.

        >>> load_preset("skylake").active_psc()
        {1: (32, 8), 2: (8, 4), 3: (4, 4)}
        """
        return {PSC_LEVELS[k]: v for k, v in self.psc.items()
                if k in PSC_LEVELS_OF_MODE[self.paging]}

    # -- copies ---------------------------------------------------------------------
    def replace(self, **overrides) -> "MMUConfig":
        """A validated copy with fields replaced (``paging``, ``huge_pages``, ``pcid``,
        ``cpus``, ``inclusion``, ``psc``, ``tlbs``, ...). Unknown names are errors.

        >>> cfg = load_preset("skylake").replace(paging="x86_64", pcid=True, cpus=4)
        >>> cfg.pcid, cfg.cpus
        (True, 4)
        """
        names = [f.name for f in dataclasses.fields(self)]
        unknown = [k for k in overrides if k not in names]
        if unknown:
            raise _err(f"unknown MMUConfig field {unknown[0]!r}; fields: {', '.join(names)}")
        return dataclasses.replace(self, **overrides)

    def with_tlb(self, name: str, **changes) -> "MMUConfig":
        """A validated copy whose structure ``name`` has ``changes`` applied
        (``entries``, ``ways``, ``policy``, ``page_sizes``, ...).

        >>> load_preset("skylake").with_tlb("stlb", entries=2048, ways=16).tlb("stlb").sets
        128
        """
        self.tlb(name)
        fields = [f.name for f in dataclasses.fields(TLBConfig)]
        unknown = [k for k in changes if k not in fields]
        if unknown:
            raise _err(f"tlb {name!r}: unknown field {unknown[0]!r}; fields: {', '.join(fields)}")
        return self.replace(tlbs=tuple(t.replace(**changes) if t.name == name else t
                                       for t in self.tlbs))

    def without_tlb(self, name: str) -> "MMUConfig":
        """A copy without the structure ``name`` (e.g. a CPU without its STLB).

        >>> [t.name for t in load_preset("nehalem").without_tlb("stlb").tlbs if t.level == 2]
        []
        """
        self.tlb(name)
        return self.replace(tlbs=tuple(t for t in self.tlbs if t.name != name))

    # -- serialization --------------------------------------------------------------
    def to_dict(self) -> dict:
        """The config in the preset-file schema: plain types, structures under
        ``"tlb"``, PSCs as ``{level: {"entries": N, "ways": W}}``, ``None`` fields left
        out. ``MMUConfig.from_dict(cfg.to_dict()) == cfg``.

        >>> d = load_preset("p6").to_dict()
        >>> d["paging"], d["tlb"][0]["name"], d["psc"]
        ('x86_32', 'itlb_4k', {'pde': {'entries': 32, 'ways': 8}})
        """
        d = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "tlbs":
                d["tlb"] = [t.to_dict() for t in v]
            elif f.name == "psc":
                d["psc"] = {k: {"entries": e, "ways": w} for k, (e, w) in v.items()}
            elif v is None:
                continue
            elif isinstance(v, tuple):
                d[f.name] = list(v)
            else:
                d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MMUConfig":
        """Build from the preset-file schema (what :meth:`to_dict` gives). Unknown keys
        are errors that list the allowed ones.

        >>> MMUConfig.from_dict({"name": "x", "tlb": [], "cpu": 2})
        Traceback (most recent call last):
        ...
        pyapi.config.ConfigError: unknown key 'cpu'; allowed keys: name, tlb, psc, psc_policy, inclusion, paging, paging_modes, huge_pages, pcid, cpus, phys_mem, allocator, maxphyaddr, user, seed, walkers, description, source, caveats
        """
        if not isinstance(d, dict):
            raise _err(f"a config must be a table, not {type(d).__name__}")
        keys = ["tlb" if f.name == "tlbs" else f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in keys]
        if unknown:
            raise _err(f"unknown key {unknown[0]!r}; allowed keys: {', '.join(keys)}")
        if "name" not in d:
            raise _err("missing key 'name'")
        kw = dict(d)
        tlbs = kw.pop("tlb", [])
        if not isinstance(tlbs, list):
            raise _err("tlb must be an array of tables ([[tlb]] sections)")
        kw["tlbs"] = tuple(TLBConfig.from_dict(t, f"tlb[{i}]") for i, t in enumerate(tlbs))
        return cls(**kw)

    def to_toml(self) -> str:
        """The config as a TOML document in the preset schema; :func:`load_config` (or
        ``tomllib`` + :meth:`from_dict`) of it gives an equal config.

        >>> cfg = load_preset("zen2", cpus=2)
        >>> MMUConfig.from_dict(tomllib.loads(cfg.to_toml())) == cfg
        True
        >>> print(cfg.to_toml().splitlines()[0])
        name = "zen2"
        """
        d = self.to_dict()
        tlbs = d.pop("tlb")
        psc = d.pop("psc")
        lines = [f"{k} = {_toml_value(v)}" for k, v in d.items()]
        lines += ["", "[psc]"] + [f"{k} = {_toml_value(v)}" for k, v in psc.items()]
        for t in tlbs:
            lines += ["", "[[tlb]]"] + [f"{k} = {_toml_value(v)}" for k, v in t.items()]
        return "\n".join(lines) + "\n"


def _toml_str(s: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes; TOML also wants DEL escaped
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(k: str) -> str:
    return k if re.match(r"^[A-Za-z0-9_-]+$", k) else _toml_str(k)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, str) for x in v) and sum(len(x) for x in v) > 60:
            return "[\n" + "".join(f"    {_toml_value(x)},\n" for x in v) + "]"
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(x)}"
                                for k, x in v.items()) + " }" if v else "{}"
    raise _err(f"cannot write {v!r} as TOML")


# -- presets and files ------------------------------------------------------------------

def _preset_dir():
    return resources.files("pyapi").joinpath("presets")


def preset_names() -> List[str]:
    """The names of the bundled CPU presets, sorted.

    >>> "skylake" in preset_names(), "zen2" in preset_names()
    (True, True)
    """
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".toml"))


def _from_toml_text(text: str, label: str) -> MMUConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    try:
        return MMUConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def load_config(path, **overrides) -> MMUConfig:
    """Load a user's TOML file (the preset schema, ``docs/presets.md``); ``overrides``
    are applied with :meth:`MMUConfig.replace`. Errors name the file, the structure and
    the key.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "mine.toml")
    >>> with open(p, "w") as f:
    ...     _ = f.write(load_preset("nehalem").with_tlb("stlb", entries=1024).to_toml())
    >>> load_config(p).tlb("stlb").sets
    256
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    cfg = _from_toml_text(text, path)
    if overrides:
        try:
            cfg = cfg.replace(**overrides)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return cfg


def load_preset(name: str, **overrides) -> MMUConfig:
    """The bundled preset ``name`` (see :func:`preset_names`), with ``overrides`` applied
    by :meth:`MMUConfig.replace`. A name ending in ``.toml``, or the path of an existing
    file, loads that file (:func:`load_config`). An unknown name raises ``ValueError``
    listing the presets.

    >>> load_preset("golden_cove", huge_pages="thp").tlb("dtlb_4k").ways
    6
    >>> load_preset("k6")
    Traceback (most recent call last):
    ...
    pyapi.config.ConfigError: no preset 'k6'; presets: cortex_a76, golden_cove, nehalem, p6, pentium4, skylake, zen2, zen3, zen4
    """
    if not isinstance(name, (str, os.PathLike)):
        raise ConfigError(f"preset name must be a string, not {type(name).__name__}")
    sname = os.fspath(name)
    if sname.endswith(".toml") or os.path.isfile(sname):
        return load_config(sname, **overrides)
    names = preset_names()
    if sname not in names:
        raise ConfigError(f"no preset {sname!r}; presets: {', '.join(names)}")
    label = f"preset {sname} ({sname}.toml)"
    cfg = _from_toml_text(_preset_dir().joinpath(f"{sname}.toml").read_text("utf-8"), label)
    if overrides:
        cfg = cfg.replace(**overrides)
    return cfg


def _geometry(t: TLBConfig) -> str:
    geo = f"{t.entries} FA" if t.fully_associative else f"{t.entries} = {t.sets}×{t.ways}"
    sizes = "/".join(t.page_sizes)
    extra = "".join(f", {k}→{v}" for k, v in t.splinter.items())
    pol = "" if t.policy == "lru" else f", {t.policy}"
    return f"`{t.name}` {geo} ({sizes}{extra}{pol})"


def presets_table() -> str:
    """A markdown table of every bundled preset: structures with geometry, page sizes
    and splintering (``1G→2M``: 1G pages held as 2M entries), paging modes (the
    default in bold), PSCs, walkers and inclusion. ``docs/presets.md`` holds its output.

    >>> presets_table().splitlines()[0]
    '| preset | L1 instruction | L1 data | L2 | paging modes | PSCs | walkers | inclusion |'
    """
    head = ["| preset | L1 instruction | L1 data | L2 | paging modes | PSCs "
            "| walkers | inclusion |", "|---|---|---|---|---|---|---|---|"]
    rows = []
    for name in preset_names():
        c = load_preset(name)
        cols = [
            [t for t in c.tlbs if t.level == 1 and t.side == "instruction"],
            [t for t in c.tlbs if t.level == 1 and t.side == "data"],
            [t for t in c.tlbs if t.level == 2]]
        cells = ["<br>".join((f"{t.side}: " if t.level == 2 and t.side != "unified" else "")
                             + _geometry(t) for t in col) or "none" for col in cols]
        modes = ", ".join(f"**{m}**" if m == c.paging else m for m in c.paging_modes)
        psc = ", ".join(f"{k} {e} FA" if e == w else f"{k} {e} = {e // w}×{w}"
                        for k, (e, w) in c.psc.items()) or "none"
        rows.append(f"| `{name}` | " + " | ".join(cells) + f" | {modes} | {psc} | "
                    f"{c.walkers if c.walkers is not None else 'unknown'} | {c.inclusion} |")
    return "\n".join(head + rows) + "\n"
