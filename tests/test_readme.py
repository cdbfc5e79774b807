"""The Python examples of README.md run as written."""
import lzma
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    if not README.exists():
        pytest.skip("README.md is not next to the tests (installed-only run)")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    # the tour opens "run.lackey.xz" from the working directory: give it a small one
    lines = "".join(f"I  {0x400000 + 4 * i:08x},4\n L {0x7ff000000 + 8 * i:09x},8\n"
                    for i in range(2000))
    (tmp_path / "run.lackey.xz").write_bytes(lzma.compress(lines.encode()))
    monkeypatch.chdir(tmp_path)
    exec(compile("\n".join(blocks), str(README), "exec"), {"__name__": "readme"})
    assert (tmp_path / "run.native" / "meta.json").exists()
