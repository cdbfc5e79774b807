"""The kmap engine's Python surface: the shipped stub matches the compiled module, the
ABI check works, and the example of docs/kmap.md runs."""
import ast
import pathlib
import re

import pytest

import mmucore.kmap as kmap

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "kmap.md"


def test_stub_matches_the_compiled_module():
    stub = pathlib.Path(kmap.__file__).with_name("kmap.pyi")
    tree = ast.parse(stub.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            for item in getattr(node, "body", []):
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                    assert hasattr(getattr(kmap, node.name), item.name), item.name
    assert all(hasattr(kmap, n) for n in names)
    public = {n for n in vars(kmap) if not n.startswith("_") and n not in ("np", "numpy")}
    assert public <= names, f"public names without a stub: {sorted(public - names)}"


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
