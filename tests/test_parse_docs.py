"""mmucore.parse: the runnable examples of its docstrings, and its .pyi stub against the
compiled module (the same checks tests/test_docstrings.py and tests/test_abi.py make for
the other engine modules)."""
import ast
import doctest
import pathlib

import mmucore.parse as parse


def test_docstring_examples():
    result = doctest.testmod(parse, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_stub_matches_the_compiled_module():
    stub = pathlib.Path(parse.__file__).with_name("parse.pyi")
    tree = ast.parse(stub.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            assert hasattr(parse, node.name), f"parse.pyi: {node.name} not in mmucore.parse"
    for name in names:
        assert hasattr(parse, name), f"parse.pyi: {name} not in mmucore.parse"
    public = {n for n in vars(parse) if not n.startswith("_") and n not in ("np", "numpy")}
    assert public <= names, f"public names without a stub: {sorted(public - names)}"


def test_abi_version():
    assert parse.ABI_VERSION == 1
