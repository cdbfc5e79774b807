"""The real Valgrind lackey traces bundled in pyapi/data/traces/ match their MANIFEST.json.

The files are recorded by bench/record_traces.sh and measured by bench/trace_summary.py.
Every file: present, size and sha256 as documented, an xz stream that starts with
valgrind's banner lines. The smallest file is decompressed in full and its line counts
by kind must equal the documented ones (all files: about 0.5 s each, so only on request
with MMUCORE_TEST_ALL_TRACES=1).
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
from pathlib import Path

import pytest

TRACE_DIR = Path(__file__).resolve().parent.parent / "pyapi" / "data" / "traces"
MANIFEST = TRACE_DIR / "MANIFEST.json"

BANNER = re.compile(rb"^==(\d+)== ")


def _manifest() -> dict:
    with open(MANIFEST) as f:
        return json.load(f)


def _entries():
    if not MANIFEST.exists():
        return []
    return _manifest()["traces"]


ENTRIES = _entries()
IDS = [t["name"] for t in ENTRIES]


def _count(path: Path) -> dict:
    """Lines by kind, the way the lackey format defines them (bytes.count: ~0.5 s a file)."""
    data = b"\n" + lzma.decompress(path.read_bytes())
    assert data.endswith(b"\n")
    n = {"lines": data.count(b"\n") - 1, "banner": data.count(b"\n==")}
    n["I"] = data.count(b"\nI  ")
    for k in "LSM":
        n[k] = data.count(b"\n " + k.encode() + b" ")
    n["other"] = n["lines"] - n["banner"] - sum(n[k] for k in "ILSM")
    return n


def test_manifest_lists_traces():
    assert MANIFEST.exists(), MANIFEST
    m = _manifest()
    assert len(m["traces"]) >= 4
    names = [t["name"] for t in m["traces"]]
    assert len(set(names)) == len(names)
    files = {p.name for p in TRACE_DIR.glob("*.xz")}
    assert files == {t["file"] for t in m["traces"]}, "every .xz is documented and vice versa"
    assert sum(t["compressed_bytes"] for t in m["traces"]) <= 5_500_000


def test_readme_quotes_every_trace():
    text = (TRACE_DIR / "README.md").read_text()
    for t in ENTRIES:
        assert t["file"] in text
        assert t["sha256"] in text
        assert f"{t['records']['I']:,}" in text


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_file_size_and_sha256(entry):
    path = TRACE_DIR / entry["file"]
    assert path.is_file(), path
    data = path.read_bytes()
    assert len(data) == entry["compressed_bytes"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert data[:6] == b"\xfd7zXZ\x00", "xz magic"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_starts_with_valgrind_banner(entry):
    with lzma.open(TRACE_DIR / entry["file"], "rb") as f:
        head = [f.readline() for _ in range(entry["leading_banner_lines"] + 1)]
    pids = {BANNER.match(line).group(1) for line in head[:-1]}
    assert len(pids) == 1, head
    assert head[0].endswith(b"Lackey, an example Valgrind tool\n")
    assert any(b"Using Valgrind-" in line for line in head)
    assert any(b"Command: " in line for line in head)
    assert not head[-1].startswith(b"=="), "the first record follows the banners"
    assert head[-1][:3] == b"I  ", "a trace starts with an instruction fetch"
    assert entry["valgrind"].encode() in b"".join(head).lower()


def _check_counts(entry):
    n = _count(TRACE_DIR / entry["file"])
    assert n["other"] == 0
    assert n["lines"] == entry["lines"]
    assert n["banner"] == entry["banner_lines"]
    for k in "ILSM":
        assert n[k] == entry["records"][k], k
    assert sum(entry["records"].values()) == entry["records_total"]


def test_line_counts_of_smallest():
    assert ENTRIES
    _check_counts(min(ENTRIES, key=lambda t: t["uncompressed_bytes"]))


@pytest.mark.skipif(not os.environ.get("MMUCORE_TEST_ALL_TRACES"),
                    reason="set MMUCORE_TEST_ALL_TRACES=1 to count every bundled trace")
@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_line_counts_all(entry):
    _check_counts(entry)
