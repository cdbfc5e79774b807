"""CPU presets: one TOML file per CPU in this folder, loaded as :class:`pyapi.config.MMUConfig`.

``names()`` lists them, ``load(name, **overrides)`` reads one (a path to a user's own
TOML file works too), ``table()`` gives the markdown table of ``docs/presets.md``.

>>> from pyapi import presets
>>> "p6" in presets.names() and "skylake" in presets.names()
True
>>> [t.name for t in presets.load("p6").tlbs]
['itlb_4k', 'itlb_2m', 'dtlb_4k', 'dtlb_2m']
>>> presets.load("skylake", cpus=2).cpus
2
"""
from pyapi.config import load_preset as load
from pyapi.config import preset_names as names
from pyapi.config import presets_table as table

__all__ = ["names", "load", "table"]
