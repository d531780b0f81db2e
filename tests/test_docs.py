"""Run the Python code blocks of the README and the tutorials, in order, one namespace per file.

A tutorial whose code no longer runs fails here, so what people read stays true.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_markdown_code_blocks_run(path, capsys):
    blocks = BLOCK.findall(path.read_text())
    assert blocks, f"{path.name} has no python blocks"
    namespace = {"__name__": f"doc_{path.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"{path.name}: code block {i} failed: {e!r}\n{code}") from e
