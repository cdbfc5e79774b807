"""pyapi.config: the presets (their numbers against specs/hardware.md), loading user
TOML files, validation errors, copies with overrides, and the TOML round trip."""
import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from pyapi.config import (MAX_CPUS, PSC_LEVELS, ConfigError, MMUConfig, PSC_LEVELS_OF_MODE, TLBConfig,
                          load_config, load_preset, preset_names, presets_table)

if sys.version_info >= (3, 11):
    import tomllib
else:                                                 # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_PRESETS = {"p6", "pentium4", "nehalem", "skylake", "golden_cove", "zen2",
                    "cortex_a76", "zen3", "zen4"}

# (preset, structure) -> (entries, ways, page sizes) from specs/hardware.md. "V" rows are
# verified numbers; "C"/"U" rows are the documented choices of the preset's caveats.
HARDWARE = {
    ("p6", "itlb_4k"): (32, 4, ("4K",), "V"),
    ("p6", "itlb_2m"): (2, 2, ("2M", "4M"), "V"),
    ("p6", "dtlb_4k"): (64, 4, ("4K",), "V"),
    ("p6", "dtlb_2m"): (8, 4, ("2M", "4M"), "V"),
    ("pentium4", "itlb_4k"): (128, 4, ("4K",), "C"),
    ("pentium4", "dtlb"): (64, 64, ("4K", "2M", "4M"), "V"),
    ("nehalem", "itlb_4k"): (128, 4, ("4K",), "V"),
    ("nehalem", "itlb_2m"): (7, 7, ("2M", "4M"), "V"),
    ("nehalem", "dtlb_4k"): (64, 4, ("4K",), "V"),
    ("nehalem", "dtlb_2m"): (32, 4, ("2M", "4M"), "V"),
    ("nehalem", "stlb"): (512, 4, ("4K",), "V"),
    ("skylake", "itlb_4k"): (128, 8, ("4K",), "C"),
    ("skylake", "itlb_2m"): (8, 8, ("2M", "4M"), "V"),
    ("skylake", "dtlb_4k"): (64, 4, ("4K",), "V"),
    ("skylake", "dtlb_2m"): (32, 4, ("2M", "4M"), "V"),
    ("skylake", "dtlb_1g"): (4, 4, ("1G",), "V"),
    ("skylake", "stlb"): (1536, 12, ("4K", "2M"), "C"),
    ("skylake", "stlb_1g"): (16, 4, ("1G",), "V"),
    ("golden_cove", "itlb_4k"): (256, 8, ("4K",), "V"),
    ("golden_cove", "itlb_2m"): (32, 8, ("2M", "4M"), "V"),
    ("golden_cove", "dtlb_4k"): (96, 6, ("4K",), "C"),
    ("golden_cove", "dtlb_2m"): (32, 4, ("2M", "4M"), "V"),
    ("golden_cove", "dtlb_1g"): (8, 8, ("1G",), "V"),
    ("golden_cove", "stlb"): (2048, 16, ("4K", "2M"), "C"),
    ("golden_cove", "stlb_1g"): (1024, 8, ("1G",), "C"),
    ("zen2", "itlb"): (64, 64, ("4K", "2M", "1G"), "V"),
    ("zen2", "dtlb"): (64, 64, ("4K", "2M", "1G"), "V"),
    ("zen2", "l2_itlb"): (512, 8, ("4K", "2M"), "C"),
    ("zen2", "l2_dtlb"): (2048, 8, ("4K", "2M"), "C"),
    ("zen3", "itlb"): (64, 64, ("4K", "2M", "1G"), "V"),
    ("zen3", "dtlb"): (64, 64, ("4K", "2M", "1G"), "V"),
    ("zen3", "l2_itlb"): (512, 4, ("4K", "2M"), "U"),
    ("zen3", "l2_dtlb"): (2048, 8, ("4K", "2M"), "U"),
    ("zen3", "l2_dtlb_1g"): (64, 64, ("1G",), "V"),
    ("zen4", "itlb"): (64, 64, ("4K", "2M", "1G"), "V"),
    ("zen4", "dtlb"): (72, 72, ("4K", "2M", "1G"), "V"),
    ("zen4", "l2_itlb"): (512, 4, ("4K", "2M"), "U"),
    ("zen4", "l2_dtlb"): (3072, 8, ("4K", "2M"), "U"),
    ("zen4", "l2_dtlb_1g"): (64, 64, ("1G",), "V"),
    ("cortex_a76", "itlb"): (48, 48, ("4K", "2M"), "V"),
    ("cortex_a76", "dtlb"): (48, 48, ("4K", "2M"), "V"),
    ("cortex_a76", "stlb"): (1280, 5, ("4K", "2M", "1G"), "V"),
}
WALKERS = {"skylake": 2, "golden_cove": 4, "zen2": 2, "zen3": 6}
SPLINTER = {("pentium4", "itlb_4k"): {"2M": "4K", "4M": "4K"},
            ("zen2", "l2_dtlb"): {"4M": "2M", "1G": "2M"},
            ("zen2", "l2_itlb"): {"4M": "2M", "1G": "2M"}}
PAGING = {"p6": ("x86_32", ("x86_32", "pae")),
          "pentium4": ("x86_32", ("x86_32", "pae", "x86_64")),
          "cortex_a76": ("x86_64", ("x86_64",))}


def test_every_expected_preset_exists():
    assert set(preset_names()) == EXPECTED_PRESETS


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_loads_in_every_mode_it_lists(name):
    cfg = load_preset(name)
    assert cfg.name == name
    for mode in cfg.paging_modes:
        c = cfg.replace(paging=mode)
        levels = {n: v for n, v in PSC_LEVELS.items() if n in PSC_LEVELS_OF_MODE[mode]}
        assert set(c.active_psc()) <= set(levels.values())
        if mode in ("x86_64", "la57"):
            c.replace(pcid=True, cpus=MAX_CPUS)


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_paging_modes(name):
    cfg = load_preset(name)
    default, modes = PAGING.get(name, ("x86_64", ("x86_32", "pae", "x86_64")))
    assert cfg.paging == default and cfg.paging_modes == modes
    assert "la57" not in cfg.paging_modes


@pytest.mark.parametrize("key", sorted(HARDWARE), ids=lambda k: "-".join(k) if isinstance(k, tuple) else str(k))
def test_preset_numbers_match_hardware_md(key):
    entries, ways, sizes, mark = HARDWARE[key]
    t = load_preset(key[0]).tlb(key[1])
    assert (t.entries, t.ways, t.page_sizes) == (entries, ways, sizes)
    assert t.entries % t.ways == 0
    assert t.source, f"{key}: no source"
    if mark != "V":
        assert t.caveat, f"{key} is {mark} in hardware.md but has no caveat"
    if key in SPLINTER:
        assert t.splinter == SPLINTER[key]


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_has_every_structure_of_the_table_and_nothing_else(name):
    cfg = load_preset(name)
    assert {t.name for t in cfg.tlbs} == {s for (p, s) in HARDWARE if p == name}


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_sources_and_caveats(name):
    cfg = load_preset(name)
    assert cfg.description and cfg.source
    text = " ".join(cfg.caveats).lower()
    assert "replacement policy" in text and "psc" in text and "walkers" in text
    if any(t.level == 2 for t in cfg.tlbs):
        assert "inclusion" in text
    assert cfg.walkers == WALKERS.get(name)
    for t in cfg.tlbs:
        assert t.source


def test_specific_choices():
    assert load_preset("skylake").tlb("stlb").sets == 128
    gc = load_preset("golden_cove")
    assert all(t.policy == "plru" for t in gc.tlbs)
    assert all(t.policy == "lru" for n in EXPECTED_PRESETS - {"golden_cove"}
               for t in load_preset(n).tlbs)
    a76 = load_preset("cortex_a76")
    assert "1G" not in a76.tlb("itlb").takes and "1G" not in a76.tlb("dtlb").takes
    assert "x86_64" in a76.description and "4-level" in a76.description
    assert load_preset("p6").psc == {"pde": (32, 8)}
    assert load_preset("skylake").psc == {"pde": (32, 8), "pdpte": (8, 4), "pml4e": (4, 4)}


def test_psc_levels_the_mode_lacks_are_unused():
    cfg = load_preset("skylake")
    assert cfg.active_psc() == {1: (32, 8), 2: (8, 4), 3: (4, 4)}
    assert cfg.replace(paging="pae").active_psc() == {1: (32, 8)}
    assert cfg.replace(paging="x86_32").active_psc() == {1: (32, 8)}
    la = cfg.replace(paging_modes=("x86_64", "la57"), paging="la57",
                     psc={**cfg.psc, "pml5e": (2, 2)})
    assert la.active_psc() == {1: (32, 8), 2: (8, 4), 3: (4, 4), 4: (2, 2)}
    assert cfg.replace(psc={1: [16, 4], "PDPTE": {"entries": 4, "ways": 4}}).psc == \
        {"pde": (16, 4), "pdpte": (4, 4)}


def test_active_psc_is_what_pagetable_takes():
    from pyapi.pagetable import PageTable
    for name in preset_names():
        cfg = load_preset(name)
        for mode in cfg.paging_modes:
            c = cfg.replace(paging=mode)
            PageTable(mode, psc=c.active_psc(), psc_policy=c.psc_policy)


def test_structures_build_as_engine_tlbs():
    from pyapi.tlb import TLB
    for name in preset_names():
        for t in load_preset(name).tlbs:
            tl = TLB(entries=t.entries, ways=t.ways, page_size=t.page_sizes, policy=t.policy)
            assert tl.sets == t.sets


# -- replace / with_tlb ---------------------------------------------------------------

def test_replace_and_with_tlb():
    cfg = load_preset("skylake")
    c = cfg.replace(paging="pae", huge_pages="thp", cpus=8, inclusion="exclusive",
                    psc={}, seed=3, phys_mem="8G", allocator="random")
    assert (c.paging, c.huge_pages, c.cpus, c.inclusion, c.psc, c.seed) == \
        ("pae", "thp", 8, "exclusive", {}, 3)
    assert cfg.paging == "x86_64"                        # the original is unchanged
    s = cfg.with_tlb("stlb", entries=2048, ways=16, policy="srrip").tlb("stlb")
    assert (s.entries, s.ways, s.sets, s.policy) == (2048, 16, 128, "srrip")
    assert cfg.without_tlb("stlb_1g").tlbs == tuple(t for t in cfg.tlbs if t.name != "stlb_1g")
    with pytest.raises(KeyError, match="no TLB structure 'l3'.*stlb"):
        cfg.with_tlb("l3", entries=4)
    with pytest.raises(ConfigError, match="unknown field 'entires'"):
        cfg.with_tlb("stlb", entires=4)
    with pytest.raises(ConfigError, match="unknown MMUConfig field 'paging_mode'"):
        cfg.replace(paging_mode="pae")
    with pytest.raises(ConfigError, match="tlb 'stlb': ways=7 does not divide entries=1536"):
        cfg.with_tlb("stlb", ways=7)
    assert load_preset("nehalem", cpus=2, huge_pages="always").cpus == 2


# -- validation ------------------------------------------------------------------------

def T(**kw):
    d = dict(name="dtlb_4k", level=1, side="data", entries=64, ways=4, page_sizes=("4K",))
    d.update(kw)
    return TLBConfig(**d)


def M(*tlbs, **kw):
    return MMUConfig(name="t", tlbs=tlbs or (T(),), **kw)


@pytest.mark.parametrize("kw, pattern", [
    (dict(entries=0), r"tlb 'dtlb_4k': entries=0 must be >= 1"),
    (dict(entries=-4), r"entries=-4"),
    (dict(ways=0), r"tlb 'dtlb_4k': ways=0 must be >= 1"),
    (dict(ways=5), r"tlb 'dtlb_4k': ways=5 does not divide entries=64"),
    (dict(ways=128), r"ways=128 is larger than entries=64"),
    (dict(entries="64"), r"tlb 'dtlb_4k': entries must be an integer, not str"),
    (dict(entries=64.0), r"entries must be an integer"),
    (dict(ways=True), r"ways must be an integer"),
    (dict(level=3), r"tlb 'dtlb_4k': level=3 must be 1 or 2"),
    (dict(level=0), r"level=0 must be 1 or 2"),
    (dict(side="both"), r"tlb 'dtlb_4k': side='both' is not one of instruction, data, unified"),
    (dict(side="unified"), r"side='unified' is for level-2 structures"),
    (dict(page_sizes=("8K",)), r"tlb 'dtlb_4k': page_sizes: '8K' is not a page size"),
    (dict(page_sizes=()), r"page_sizes is empty"),
    (dict(page_sizes="4K"), r"page_sizes must be a list"),
    (dict(page_sizes=("4K", "4k")), r"page_sizes .* names a size twice"),
    (dict(policy="mru"), r"tlb 'dtlb_4k': policy='mru' is not one of lru"),
    (dict(splinter={"2M": "1G"}), r"splinter\['2M'\] = '1G' is not a size the structure holds"),
    (dict(page_sizes=("4K", "1G"), splinter={"2M": "1G"}), r"must be a smaller size than 2M"),
    (dict(splinter={"4K": "4K"}), r"holds 4K pages itself"),
    (dict(splinter={"3M": "4K"}), r"splinter key: '3M' is not a page size"),
    (dict(splinter=[("2M", "4K")]), r"splinter must be a table"),
    (dict(name="dtlb.4k"), r"tlb name 'dtlb.4k' must be an identifier"),
    (dict(name=""), r"must be an identifier"),
    (dict(source=3), r"tlb 'dtlb_4k': source must be a string"),
])
def test_tlb_validation(kw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        T(**kw)


def test_tlb_normalization():
    t = T(page_sizes=["2m", 4096], policy="LRU", splinter={"1g": 2 << 20})
    assert t.page_sizes == ("4K", "2M") and t.policy == "lru" and t.splinter == {"1G": "2M"}
    assert t.takes == ("4K", "2M", "1G")
    assert isinstance(ConfigError("x"), ValueError) and isinstance(ConfigError("x"), TypeError)


@pytest.mark.parametrize("kw, pattern", [
    (dict(paging="x86"), r"paging='x86' is not one of x86_32, pae, x86_64, la57"),
    (dict(paging="la57", paging_modes=("x86_64",)), r"paging='la57' is not in paging_modes"),
    (dict(paging_modes=()), r"paging_modes is empty"),
    (dict(paging_modes=("x86_64", "x86_64")), r"names a mode twice"),
    (dict(paging_modes=("x86_64", "ia64")), r"paging_modes='ia64' is not one of"),
    (dict(paging_modes="x86_64"), r"paging_modes must be a list"),
    (dict(huge_pages="sometimes"), r"huge_pages='sometimes' is not one of never, thp, always"),
    (dict(allocator="buddy"), r"allocator='buddy' is not one of sequential, random"),
    (dict(inclusion="mostly"), r"inclusion='mostly' is not one of inclusive, non-inclusive, exclusive"),
    (dict(pcid=True, paging="pae"), r"pcid=True needs paging x86_64 or la57"),
    (dict(pcid=True, paging="x86_32"), r"pcid=True needs paging x86_64 or la57"),
    (dict(pcid=1), r"pcid must be true or false"),
    (dict(cpus=0), r"cpus=0 is outside 1..64 .*64-bit word"),
    (dict(cpus=65), r"cpus=65 is outside 1..64"),
    (dict(cpus="2"), r"cpus must be an integer"),
    (dict(seed=-1), r"seed=-1 must be >= 0"),
    (dict(seed=1 << 64), r"seed=.* must be <="),
    (dict(walkers=0), r"walkers=0 must be >= 1"),
    (dict(psc={"pte": (4, 4)}), r"psc: unknown level 'pte'; use pde, pdpte, pml4e, pml5e"),
    (dict(psc={"pde": (30, 8)}), r"psc.pde: ways=8 does not divide entries=30"),
    (dict(psc={"pde": (0, 1)}), r"psc.pde: entries=0 must be >= 1"),
    (dict(psc={"pde": 32}), r"psc.pde: give \{entries = N, ways = W\}"),
    (dict(psc={"pde": {"entries": 32, "way": 8}}), r"psc.pde: give"),
    (dict(psc=[("pde", 32, 8)]), r"psc must be a table"),
    (dict(psc_policy="mru"), r"psc_policy='mru' is not one of"),
    (dict(phys_mem="lots"), r"phys_mem 'lots' is not a size"),
    (dict(phys_mem=5000), r"phys_mem=5000 must be a positive multiple of 4K"),
    (dict(maxphyaddr=60), r"maxphyaddr \(for x86_64, 32..52\)=60 must be <= 52"),
    (dict(user="yes"), r"user must be true or false"),
    (dict(caveats="one"), r"caveats must be a list of strings"),
    (dict(caveats=("a", 2)), r"caveats\[1\] must be a string"),
])
def test_mmu_validation(kw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        M(**kw)


def test_mmu_validation_structures():
    with pytest.raises(ConfigError, match="tlb 'dtlb_4k': the name is used twice"):
        M(T(), T())
    with pytest.raises(ConfigError, match=r"tlb 'big': page_sizes: 4K pages are taken by "
                                          r"'dtlb_4k' too; within level 1 data"):
        M(T(), T(name="big", entries=8, ways=8, page_sizes=("4K", "2M")))
    # a splintered size counts as taken
    with pytest.raises(ConfigError, match=r"tlb 'l2b': page_sizes: 1G pages are taken by 'l2a'"):
        M(T(name="l2a", level=2, page_sizes=("2M",), splinter={"1G": "2M"}),
          T(name="l2b", level=2, page_sizes=("1G",)))
    # level 2: unified serves both sides
    with pytest.raises(ConfigError, match=r"unified structure serves both sides"):
        M(T(name="stlb", level=2, side="unified", page_sizes=("4K",)),
          T(name="l2_itlb", level=2, side="instruction", page_sizes=("4K",)))
    # these are fine: I and D at level 2, same size at different levels or sides
    M(T(name="l2_itlb", level=2, side="instruction"), T(name="l2_dtlb", level=2),
      T(name="itlb", side="instruction"), T())
    # a structure holding 4M is harmless in x86_64, and 1G with a mode without 1G is fine
    M(T(page_sizes=("4K", "4M")), paging="x86_64")
    M(T(page_sizes=("4K", "1G")), paging="pae", paging_modes=("pae",), huge_pages="always")
    with pytest.raises(ConfigError, match=r"tlbs\[0\] must be a TLBConfig"):
        M("dtlb")
    with pytest.raises(ConfigError, match="name must be a non-empty string"):
        MMUConfig(name="", tlbs=())


# -- files ---------------------------------------------------------------------------

def test_unknown_preset_lists_the_names():
    with pytest.raises(ValueError) as e:
        load_preset("k6")
    for n in EXPECTED_PRESETS:
        assert n in str(e.value)


def test_load_preset_by_path(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(load_preset("p6").replace(name="mine").to_toml())
    assert load_preset(str(p)).name == "mine"
    assert load_preset(p).name == "mine"
    q = tmp_path / "noext"
    q.write_text(load_preset("p6").to_toml())
    assert load_preset(str(q)) == load_preset("p6")
    with pytest.raises(FileNotFoundError):
        load_preset(str(tmp_path / "missing.toml"))


def _write(tmp_path, text, name="user.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_user_file_errors_name_file_structure_and_key(tmp_path):
    base = load_preset("skylake").to_toml()
    p = _write(tmp_path, base.replace("walkers = 2", "walker = 2"))
    with pytest.raises(ConfigError, match=re.escape(str(p)) + r": unknown key 'walker'; "
                                          r"allowed keys: name, tlb, psc"):
        load_config(p)
    p = _write(tmp_path, base.replace('name = "stlb"\n', 'name = "stlb"\nsize = 3\n'))
    with pytest.raises(ConfigError, match=re.escape(str(p)) + r": tlb\[5\] 'stlb': unknown "
                                          r"key 'size'; allowed keys: name, level"):
        load_config(p)
    p = _write(tmp_path, base.replace("entries = 1536", "entries = 1537"))
    with pytest.raises(ConfigError, match=re.escape(str(p)) + r": tlb 'stlb': ways=12 does not "
                                          r"divide entries=1537"):
        load_config(p)
    p = _write(tmp_path, base.replace("entries = 1536\n", ""))
    with pytest.raises(ConfigError, match=r"tlb\[5\] 'stlb': missing key 'entries'"):
        load_config(p)
    p = _write(tmp_path, base.replace('paging = "x86_64"', 'paging = "x86_64'))
    with pytest.raises(ConfigError, match=re.escape(str(p)) + ": not valid TOML"):
        load_config(p)
    p = _write(tmp_path, base.replace("cpus = 1", "cpus = 2"))
    with pytest.raises(ConfigError, match=re.escape(str(p)) + r": pcid=True needs"):
        load_config(p, paging="pae", pcid=True)
    assert load_config(p).cpus == 2


def test_minimal_user_file(tmp_path):
    p = _write(tmp_path, '''
name = "mine"
paging = "pae"
paging_modes = ["x86_32", "pae"]

[psc]
pde = [16, 4]

[[tlb]]
name = "dtlb_4k"
level = 1
side = "data"
entries = 64
ways = 4
page_sizes = ["4K"]
''')
    cfg = load_config(p)
    assert cfg.psc == {"pde": (16, 4)} and cfg.tlbs[0].sets == 16 and cfg.huge_pages == "never"
    assert cfg.active_psc() == {1: (16, 4)}


# -- round trip ----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_round_trip(name, tmp_path):
    cfg = load_preset(name, cpus=3, phys_mem="8G", maxphyaddr=40)
    p = _write(tmp_path, cfg.to_toml())
    assert load_config(p) == cfg
    assert MMUConfig.from_dict(cfg.to_dict()) == cfg


_text = st.text(max_size=20)
_sizes = ["4K", "2M", "4M", "1G"]


@st.composite
def configs(draw):
    tlbs = []
    for i in range(draw(st.integers(0, 5))):
        level = draw(st.sampled_from([1, 2]))
        side = draw(st.sampled_from(["instruction", "data"] + (["unified"] if level == 2 else [])))
        conflicting = [t for t in tlbs if t.level == level and
                       (t.side == side or "unified" in (t.side, side))]
        free = [s for s in _sizes if all(s not in t.takes for t in conflicting)]
        if not free:
            continue
        held = draw(st.lists(st.sampled_from(free), min_size=1, unique=True))
        rest = [s for s in free if s not in held and any(_sizes.index(h) < _sizes.index(s)
                                                         for h in held)]
        splinter = {}
        for s in draw(st.lists(st.sampled_from(rest), unique=True)) if rest else []:
            smaller = [h for h in held if _sizes.index(h) < _sizes.index(s)]
            splinter[s] = draw(st.sampled_from(smaller))
        ways = draw(st.integers(1, 16))
        tlbs.append(TLBConfig(f"t{i}", level, side, ways * draw(st.integers(1, 64)), ways,
                              tuple(held), draw(st.sampled_from(["lru", "fifo", "plru",
                                                                 "random", "lfu", "srrip"])),
                              splinter, draw(_text), draw(_text)))
    modes = draw(st.lists(st.sampled_from(["x86_32", "pae", "x86_64", "la57"]), min_size=1,
                          unique=True))
    paging = draw(st.sampled_from(modes))
    psc = {lvl: (w * draw(st.integers(1, 8)), w) for lvl in
           draw(st.lists(st.sampled_from(["pde", "pdpte", "pml4e", "pml5e"]), unique=True))
           for w in [draw(st.integers(1, 8))]}
    return MMUConfig(
        name=draw(st.text(min_size=1, max_size=10)), tlbs=tuple(tlbs), psc=psc,
        psc_policy=draw(st.sampled_from(["lru", "fifo"])),
        inclusion=draw(st.sampled_from(["inclusive", "non-inclusive", "exclusive"])),
        paging=paging, paging_modes=tuple(modes),
        huge_pages=draw(st.sampled_from(["never", "thp", "always"])),
        pcid=draw(st.booleans()) if paging in ("x86_64", "la57") else False,
        cpus=draw(st.integers(1, 64)),
        phys_mem=draw(st.one_of(st.none(), st.sampled_from(["4G", "64M", 1 << 20]))),
        allocator=draw(st.sampled_from(["sequential", "random"])),
        maxphyaddr=draw(st.one_of(st.none(), st.integers(32, 40))),
        user=draw(st.booleans()), seed=draw(st.integers(0, (1 << 64) - 1)),
        walkers=draw(st.one_of(st.none(), st.integers(1, 8))),
        description=draw(_text), source=draw(_text),
        caveats=tuple(draw(st.lists(_text, max_size=3))))


@given(configs())
def test_round_trip_of_random_configs(cfg):
    text = cfg.to_toml()
    assert MMUConfig.from_dict(tomllib.loads(text)) == cfg
    assert MMUConfig.from_dict(cfg.to_dict()) == cfg


# -- docs ----------------------------------------------------------------------------

def test_docs_presets_md_holds_the_current_table():
    doc = (ROOT / "docs" / "presets.md").read_text(encoding="utf-8")
    assert presets_table() in doc, ("docs/presets.md is stale: paste the output of "
                                    "pyapi.config.presets_table() into it")
    for name in EXPECTED_PRESETS:
        assert f"`{name}`" in doc


def test_docs_example_user_file_loads(tmp_path):
    doc = (ROOT / "docs" / "presets.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    assert blocks
    for i, b in enumerate(blocks):
        load_config(_write(tmp_path, b, f"b{i}.toml"))


def test_index_links_presets():
    assert "presets.md" in (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
