"""Run every ```python block of every course chapter (docs/course/*.md), in order, one namespace
per file, in a fresh temporary working directory (figures and model files land there).

A chapter whose code no longer runs fails here, so what the course says stays true. The GPT
chapter reads TL_COURSE_GPT_STEPS (default: a short run) so this stays cheap in CI; the full
training to the loss bound is ``tests/test_gpt.py::test_gpt_reaches_its_loss_bound`` (``full``).

Regenerate the committed figures from real runs (full GPT training, a few minutes)::

    python tests/test_course.py --figures [08_tiny_gpt.md ...]   # writes docs/images/course/
"""

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "docs" / "course"
CHAPTERS = sorted(COURSE.glob("*.md"))
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def run_chapter(path):
    """Execute the chapter's python blocks in order in one namespace; returns the namespace.

    Ops a chapter registers (chapter 4 writes its own) are unregistered afterwards, so the op
    table's guard test in tests/test_ops.py never sees them.
    """
    from tinygrad_lite.autograd import REGISTRY

    blocks = BLOCK.findall(path.read_text())
    namespace = {"__name__": f"course_{path.stem}"}
    before = set(REGISTRY)
    try:
        for i, code in enumerate(blocks):
            try:
                exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"{path.name}: code block {i} failed: {e!r}\n{code}") from e
    finally:
        for name in set(REGISTRY) - before:
            del REGISTRY[name]
    return namespace


@pytest.fixture
def restore_threads():
    """Chapter 7 runs our benchmark, which sets the thread counts of our kernels, BLAS and
    torch for its candidates; put them back so later tests run as configured."""
    import numpy  # noqa: F401  (loads BLAS, so its controller is listed)
    from threadpoolctl import ThreadpoolController

    from tinygrad_lite.backends import threads

    ours = threads.get_num_threads()
    blas = [(c, c.num_threads) for c in ThreadpoolController().lib_controllers]
    try:                      # chapter 7 imports torch when installed: note its setting first
        import torch
    except ImportError:
        torch = None
    torch_threads = torch.get_num_threads() if torch else None
    yield
    threads.set_num_threads(ours)
    for c, n in blas:
        c.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(torch_threads)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_course_chapter_runs(path, tmp_path, monkeypatch, restore_threads):
    if path.name[:2].isdigit():
        assert BLOCK.search(path.read_text()), f"{path.name} has no python blocks"
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))       # chapter 7 imports benchmarks/ (repo root)
    run_chapter(path)


def test_course_index_lists_every_chapter():
    index = (COURSE / "README.md").read_text()
    for name in ["01_core_concepts.md"] + [p.name for p in CHAPTERS if p.name[:2].isdigit()]:
        assert f"]({name})" in index, f"docs/course/README.md does not link {name}"
    readme = (ROOT / "README.md").read_text()
    assert "](docs/course/README.md)" in readme, "README does not link the course"


def test_course_figures_are_committed():
    """Every image a chapter shows exists under docs/images/ (they come from real runs)."""
    for path in CHAPTERS:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name}: missing {target}"


def _make_figures():
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TL_COURSE_GPT_STEPS", "600")
    sys.path.insert(0, str(ROOT))
    out = ROOT / "docs" / "images" / "course"
    out.mkdir(parents=True, exist_ok=True)
    only = sys.argv[2:]                  # optional chapter file names
    for path in CHAPTERS:
        shown = re.findall(r"\(\.\./images/course/([^)]+\.png)\)", path.read_text())
        if not shown or (only and path.name not in only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            print(f"running {path.name}", flush=True)
            run_chapter(path)
            for name in shown:              # only the figures the chapter shows
                shutil.copy(Path(tmp) / name, out / name)
                print(f"  wrote {out / name}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--figures"]:
        sys.exit("usage: python tests/test_course.py --figures [CHAPTER.md ...]")
    _make_figures()
