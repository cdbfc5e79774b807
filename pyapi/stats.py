"""Counters of an MMU replay (``docs/mmu.md`` section 6) as a read-only mapping.

A :class:`Stats` is a snapshot: later replays do not change it. Keys are flat strings:
``"cpu0.dtlb_4k.misses"``, ``"cpu0.psc_pde.hits"``, ``"cpu0.walks"``,
``"total.walks"``, ``"asids"``, ``"interrupted"``.

>>> s = Stats({"cpu0.accesses": 10, "cpu0.walks": 4, "total.accesses": 10,
...            "total.walks": 4, "asids": 1, "interrupted": 0})
>>> s["cpu0.walks"], len(s), s.interrupted
(4, 6, False)
>>> (s - s)["cpu0.walks"]
0
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Iterator, Optional

__all__ = ["Stats"]

_STRUCT_FIELDS = ("accesses", "hits", "misses", "evictions", "fills", "invalidations")


class Stats(Mapping):
    """A read-only mapping ``{counter name: int}`` over an MMU's cumulative counters.

    ``stats.to_dict()`` gives a plain dict, ``stats.to_json(path=None)`` JSON text (and
    writes it when ``path`` is given), ``a - b`` the counters accumulated between two
    snapshots, ``str(stats)`` an aligned table per CPU and structure. ``interrupted`` is
    true when the replay that produced it was stopped by Ctrl-C.

    >>> s = Stats({"cpu0.dtlb.accesses": 8, "cpu0.dtlb.hits": 6, "cpu0.dtlb.misses": 2,
    ...            "cpu0.dtlb.evictions": 0, "cpu0.accesses": 8, "cpu0.walks": 2,
    ...            "cpu0.walk_refs": 8, "total.accesses": 8, "asids": 1, "interrupted": 0})
    >>> s["cpu0.dtlb.hits"], s.get("cpu1.walks", 0)
    (6, 0)
    >>> print(s)                                   # doctest: +NORMALIZE_WHITESPACE
    cpu0  structure  accesses  hit rate  misses  evictions
          dtlb              8    75.00%       2          0
    cpu0  walks 2  refs/walk 4.00  faults 0  flushes 0  IPIs sent 0 received 0
    asids 1
    >>> s["cpu0.walks"] = 3
    Traceback (most recent call last):
    ...
    TypeError: 'Stats' object does not support item assignment
    """

    __slots__ = ("_d",)

    def __init__(self, counters: Mapping):
        self._d = {str(k): int(v) for k, v in counters.items()}

    # -- mapping --------------------------------------------------------------------
    def __getitem__(self, key: str) -> int:
        try:
            return self._d[key]
        except KeyError:
            raise KeyError(f"no counter {key!r}; counters look like 'cpu0.walks', "
                           f"'cpu0.<structure>.misses', 'total.walks'") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"Stats({len(self._d)} counters, interrupted={self.interrupted})"

    # -- views ----------------------------------------------------------------------
    @property
    def interrupted(self) -> bool:
        """True when the replay was interrupted (Ctrl-C) before the end of the trace."""
        return bool(self._d.get("interrupted", 0))

    @property
    def cpus(self) -> int:
        """Number of CPUs the counters cover."""
        return len({k.split(".", 1)[0] for k in self._d if k.startswith("cpu")})

    def to_dict(self) -> dict:
        """A plain ``dict`` copy of the counters."""
        return dict(self._d)

    def to_json(self, path=None, *, indent: int = 1) -> str:
        """The counters as JSON text; also written to ``path`` when it is given.

        >>> Stats({"cpu0.walks": 3, "interrupted": 0}).to_json(indent=None)
        '{"cpu0.walks": 3, "interrupted": 0}'
        """
        text = json.dumps(self._d, indent=indent)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    def __sub__(self, other: "Stats") -> "Stats":
        """Counters accumulated since ``other`` (keys of ``self``; ``interrupted`` is
        taken from ``self``, ``asids`` subtracted like the rest)."""
        if not isinstance(other, Mapping):
            return NotImplemented
        out = {k: v - int(other.get(k, 0)) for k, v in self._d.items()}
        if "interrupted" in self._d:
            out["interrupted"] = self._d["interrupted"]
        return Stats(out)

    # -- the table --------------------------------------------------------------------
    def __str__(self) -> str:
        d = self._d
        lines = []
        cpus = sorted({int(k[3:].split(".", 1)[0]) for k in d
                       if k.startswith("cpu") and k[3:].split(".", 1)[0].isdigit()})
        for n in cpus:
            p = f"cpu{n}."
            structs = []
            for k in d:
                if k.startswith(p) and k.endswith(".accesses") and k.count(".") == 2:
                    structs.append(k[len(p):-len(".accesses")])
            rows = []
            for s in structs:
                acc = d.get(f"{p}{s}.accesses", 0)
                hits = d.get(f"{p}{s}.hits", 0)
                rate = f"{100.0 * hits / acc:.2f}%" if acc else "-"
                rows.append((s, str(acc), rate, str(d.get(f"{p}{s}.misses", 0)),
                             str(d.get(f"{p}{s}.evictions", "-"))))
            head = ("structure", "accesses", "hit rate", "misses", "evictions")
            if rows:
                w = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
                lines.append(f"cpu{n}  " + "  ".join(
                    h.ljust(w[0]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(head)))
                for r in rows:
                    lines.append(" " * len(f"cpu{n}  ") + "  ".join(
                        c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
            walks = d.get(p + "walks", 0)
            refs = d.get(p + "walk_refs", 0)
            rpw = f"{refs / walks:.2f}" if walks else "-"
            lines.append(f"cpu{n}  walks {walks}  refs/walk {rpw}  faults "
                         f"{d.get(p + 'faults', 0)}  flushes {d.get(p + 'flushes', 0)}  "
                         f"IPIs sent {d.get(p + 'ipis_sent', 0)} received "
                         f"{d.get(p + 'ipis_received', 0)}")
        tail = f"asids {d.get('asids', 0)}"
        if self.interrupted:
            tail += "  (interrupted)"
        lines.append(tail)
        return "\n".join(lines)
