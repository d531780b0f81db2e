"""docs/porting.md: its table names exist on both sides, the ported script differs from the
PyTorch original only in import lines and table names, and (with torch) both lose the same."""

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "porting.md").read_text()
NAME = re.compile(r"^(torch|tl|nn|F|optim|lr_scheduler|data|x|model|opt)\.[A-Za-z_][\w.]*")


def _blocks(tag):
    return re.findall(rf"```{tag}\n(.*?)```", GUIDE, re.S)


def _table():
    """(pytorch spans, tinygrad_lite spans) for every row of the names table."""
    section = GUIDE.split("## Names")[1].split("\n## ")[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and "`" in cells[0]:
            rows.append((re.findall(r"`([^`]+)`", cells[0]), re.findall(r"`([^`]+)`", cells[1])))
    return rows


def _namespaces(lib):
    if lib == "torch":
        import torch
        from torch import nn, optim
        from torch.nn import functional as F
        from torch.optim import lr_scheduler
        from torch.utils import data

        x = torch.ones(2, 2, requires_grad=True)
        top = torch
    else:
        import tinygrad_lite as tl
        from tinygrad_lite import data, nn, optim
        from tinygrad_lite.nn import functional as F
        from tinygrad_lite.optim import lr_scheduler

        x = tl.ones(2, 2, requires_grad=True)
        top = tl
    model = nn.Linear(2, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    return {"torch": top, "tl": top, "nn": nn, "F": F, "optim": optim,
            "lr_scheduler": lr_scheduler, "data": data, "x": x, "model": model, "opt": opt}


def _missing(spans, ns):
    out = []
    for span in spans:
        m = NAME.match(span)
        if not m:
            continue
        head, *rest = m.group(0).split(".")
        obj = ns[head]
        try:
            for part in rest:
                obj = getattr(obj, part)
        except AttributeError:
            out.append(span)
    return out


def test_every_tinygrad_lite_name_in_the_table_exists():
    rows = _table()
    assert len(rows) > 30
    ns = _namespaces("tl")
    missing = [s for _, ours in rows for s in _missing(ours, ns)]
    assert not missing, f"porting table lists names we do not have: {missing}"


def test_every_pytorch_name_in_the_table_exists():
    pytest.importorskip("torch")
    ns = _namespaces("torch")
    missing = [s for theirs, _ in _table() for s in _missing(theirs, ns)]
    assert not missing, f"porting table lists names PyTorch does not have: {missing}"


def _renames():
    """{pytorch name: [our names]} for the rows that rename one thing."""
    out = {}
    for theirs, ours in _table():
        if len(theirs) == 1 and len(ours) == 1 and theirs[0] != ours[0]:
            out.setdefault(theirs[0], []).append(ours[0])
    return out


def _ported(line, renames):
    """Every way the table's renames can turn a PyTorch line into ours."""
    keys = sorted(renames, key=len, reverse=True)
    outs = {line}
    for k in keys:
        nxt = set()
        for s in outs:
            if k not in s:
                nxt.add(s)
                continue
            for v in renames[k]:
                # replace longest names first; protect an already-ported span from shorter keys
                nxt.add(s.replace(k, v.replace(".", "\0")))
        outs = nxt
    return {s.replace("\0", ".") for s in outs}


def _is_import(line):
    return line.startswith(("import ", "from "))


def test_the_port_changes_only_imports_and_table_names():
    (original,) = _blocks("python torch")
    ported = [b for b in _blocks("python") if "import tinygrad_lite as tl" in b]
    assert len(ported) == 1
    renames = _renames()
    a = [ln for ln in original.splitlines() if not _is_import(ln)]
    b = [ln for ln in ported[0].splitlines() if not _is_import(ln)]
    assert len(a) == len(b)
    changed = 0
    for la, lb in zip(a, b):
        if la != lb:
            changed += 1
            assert lb in _ported(la, renames), f"not a table rename:\n  {la}\n  {lb}"
    assert changed > 0
    assert sum(map(_is_import, original.splitlines())) == sum(map(_is_import,
                                                                  ported[0].splitlines()))


def _run(code):
    ns = {"__name__": "porting_guide"}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(code, "porting.md", "exec"), ns)
    return ns["losses"], out.getvalue()


def test_the_port_matches_pytorch_step_for_step():
    pytest.importorskip("torch")
    (original,) = _blocks("python torch")
    (ported,) = [b for b in _blocks("python") if "import tinygrad_lite as tl" in b]
    theirs, their_out = _run(original)
    ours, our_out = _run(ported)
    assert set(ours) == {"mlp", "cnn"} and len(ours["mlp"]) == len(ours["cnn"]) == 12
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=2e-5, atol=1e-6,
                                   err_msg=name)
    assert ours["mlp"][-1] < ours["mlp"][0]                 # it learns
    # the printed accuracies and learning rates agree too (4 decimals)
    strip = [re.sub(r"loss \d+\.\d+", "", s) for s in (our_out, their_out)]
    assert strip[0] == strip[1]


