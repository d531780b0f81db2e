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


def _section(text, title):
    start = text.index(title)
    nxt = text.find("\n## ", start + len(title))
    return text[start:] if nxt < 0 else text[start:nxt]


def test_every_tutorial_is_linked_from_the_readme_and_the_reading_order():
    readme = (ROOT / "README.md").read_text()
    order = _section(readme, "## How to read this code")
    for doc in sorted((ROOT / "docs").glob("*.md")):
        link = f"](docs/{doc.name})"
        assert link in readme, f"README does not link docs/{doc.name}"
        if doc.name[:2].isdigit():          # numbered tutorials are part of the reading order
            assert link in order, f"'How to read this code' does not link docs/{doc.name}"
