"""The kmap engine's Python surface: the ABI check works, and the example of docs/kmap.md
runs (tests/test_abi.py checks the shipped stub against the compiled module)."""
import pathlib
import re

import pytest

import mmucore.kmap as kmap

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "kmap.md"


def test_abi_check():
    assert kmap.ABI_VERSION == 1 and kmap.STATE_SIZE > 0
    kmap.abi_check(kmap.ABI_VERSION, kmap.STATE_SIZE)
    with pytest.raises(ImportError, match="rebuild"):
        kmap.abi_check(kmap.ABI_VERSION + 1, kmap.STATE_SIZE)


def test_docs_example_runs():
    if not DOCS.exists():
        pytest.skip("docs are not next to the tests")
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
    code = code.replace("1_000_000", "20_000")
    exec(compile(code, str(DOCS), "exec"), {})
