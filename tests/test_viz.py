"""viz.py and flops.py: DOT structure (parsed), rendering with `dot`, the module collapse, the
profile table, and FLOP counts equal to their closed forms."""

import re
import shutil

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import flops, nn, viz

NODE = re.compile(r'^\s*(\w+) \[(.*)\];$')
EDGE = re.compile(r'^\s*(\w+) -> (\w+)(?: \[.*\])?;$')


def parse_dot(text):
    """A small parser for the DOT subset viz writes: returns ({id: label}, [(a, b)],
    [cluster labels]); any other line that is not structure fails the test."""
    lines = text.strip().splitlines()
    assert re.match(r'^digraph "[^"]+" \{$', lines[0]) and lines[-1] == "}"
    nodes, edges, clusters = {}, [], []
    for line in lines[1:-1]:
        s = line.strip()
        if s.startswith("node [") or s == "rankdir=LR;":
            continue
        if m := EDGE.match(line):
            edges.append(m.groups())
        elif m := NODE.match(line):
            lab = re.search(r'label="((?:[^"\\]|\\.)*)"', m.group(2))
            assert lab, line
            nodes[m.group(1)] = lab.group(1)
        elif s.startswith("subgraph cluster_"):
            continue
        elif s.startswith("label="):
            clusters.append(re.match(r'label="([^"]*)"', s).group(1))
        elif s == "}":
            continue
        else:
            raise AssertionError(f"unexpected DOT line: {line!r}")
    for a, b in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges, clusters


def _mlp():
    tl.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x = tl.Tensor(np.random.default_rng(0).random((4, 6)).astype("f"))
    y = tl.Tensor(np.array([0, 1, 2, 1]))
    with flops.Recorder(m) as rec:
        loss = nn.functional.cross_entropy(m(x), y)
    return m, loss, rec


def test_dot_structure_of_a_small_graph():
    a = tl.Tensor([1.0, 2.0], requires_grad=True)
    b = tl.Tensor([3.0, 4.0], requires_grad=True)
    loss = (a * b + a).sum()
    nodes, edges, _ = parse_dot(viz.to_dot(loss, params={"a": a, "b": b}))
    ops = sorted(v.split("\\n")[0] for k, v in nodes.items() if k.startswith("op"))
    assert ops == ["add", "mul", "sum"]
    by = {v.split("\\n")[0]: k for k, v in nodes.items()}
    assert sorted(edges) == sorted([(by["a"], by["mul"]), (by["b"], by["mul"]),
                                    (by["mul"], by["add"]), (by["a"], by["add"]),
                                    (by["add"], by["sum"])])
    assert nodes[by["a"]] == "a\\n(2,)"
    loss.backward()
    vals = viz.to_dot(loss, params={"a": a, "b": b}, values=True)
    assert "grad [4., 5.]" in vals and "value [1., 2.]" in vals


def test_dot_clusters_per_module_and_collapse():
    m, loss, rec = _mlp()
    nodes, edges, clusters = parse_dot(viz.to_dot(loss, params=m, modules=rec))
    assert clusters == ["0 (Linear)", "1 (ReLU)", "2 (Linear)"]
    assert {"0.weight\\n(5, 6)", "2.bias\\n(3,)"} <= set(nodes.values())
    nodes, edges, _ = parse_dot(viz.to_dot(loss, params=m, modules=rec, max_nodes=2))
    boxes = {k: v for k, v in nodes.items() if k.startswith("mod")}
    assert [v.split("\\n")[0] for v in boxes.values()] == ["0 (Linear)", "1 (ReLU)",
                                                          "2 (Linear)"]
    assert "30 params" in boxes["mod0"] or "35 params" in boxes["mod0"]
    assert ("mod0", "mod1") in edges and ("mod1", "mod2") in edges


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz `dot` is not installed (apt-get install graphviz)")
def test_render_svg_and_png(tmp_path):
    m, loss, rec = _mlp()
    svg = viz.render(loss, tmp_path / "g.svg", params=m, modules=rec)
    text = open(svg).read()
    assert "<svg" in text and "0.weight" in text
    png = viz.render(loss, tmp_path / "g.png", params=m)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_render_without_dot_writes_the_dot_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    _, loss, _ = _mlp()
    out = viz.render(loss, tmp_path / "g.svg")
    assert out.endswith("g.dot") and open(out).read().startswith("digraph")
    assert "apt-get install graphviz" in capsys.readouterr().out


def test_profile_table_rows_add_up():
    m = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x = np.random.default_rng(0).random((4, 6)).astype("f")
    p = viz.profile(m, x, np.array([0, 1, 2, 1]), steps=2, print_fn=None)
    rows = {r["layer"]: r for r in p.rows}
    assert rows["0"]["fwd_flops"] == 2 * 4 * 6 * 5 + 4 * 5 and rows["0"]["params"] == 35
    assert rows["2"]["bwd_flops"] == 2 * (2 * 4 * 5 * 3) + 2 * 4 * 3
    assert rows["1"]["saved_bytes"] == 4 * 5               # ReLU keeps a boolean mask
    assert 0 < sum(r["share"] for r in p.rows) <= 1.0
    assert "Fwd FLOPs" in p.table() and "(engine + profiler overhead)" in p.table()


def test_every_registered_op_has_a_flop_rule():
    import tinygrad_lite.distributed.sync_batchnorm  # noqa: F401  (registers all_reduce_sum)
    import tinygrad_lite.nn  # noqa: F401  (the fused recurrent ops)

    assert flops.missing() == []


def test_matmul_and_conv2d_flops_equal_closed_forms():
    m, k, n = 7, 5, 3
    with flops.Recorder() as rec:
        a = tl.Tensor(np.ones((m, k), "f"), requires_grad=True)
        b = tl.Tensor(np.ones((k, n), "f"), requires_grad=True)
        a @ b
    (r,) = rec.ops
    assert (r.fwd, r.bwd) == (2 * m * n * k, 4 * m * n * k)
    N, C, H, W, O, kh, kw = 2, 3, 9, 7, 4, 3, 2
    conv = nn.Conv2d(C, O, (kh, kw), stride=2, padding=1, bias=False)
    with flops.Recorder() as rec:
        y = conv(tl.Tensor(np.ones((N, C, H, W), "f")))
    (r,) = [r for r in rec.ops if r.op == "conv2d"]
    P, Q = (H + 2 - kh) // 2 + 1, (W + 2 - kw) // 2 + 1
    assert y.shape == (N, O, P, Q)
    assert (r.fwd, r.bwd) == (2 * N * O * P * Q * C * kh * kw, 4 * N * O * P * Q * C * kh * kw)


def test_dense_and_lstm_flops_equal_closed_forms():
    from tinygrad_lite.layers import LSTM, Dense
    from tinygrad_lite.models import Sequential

    B, F, U = 5, 6, 4
    dense = Dense(U, input_shape=(F,))
    x = tl.Tensor(np.ones((B, F), "f"))
    dense(x)
    with flops.Recorder() as rec:
        dense(x)
    assert rec.forward_flops == 2 * B * F * U + B * U       # x W + b
    T, H = 7, 3
    model = Sequential([LSTM(H, input_shape=(T, F))])
    with flops.Recorder() as rec:
        model(tl.Tensor(np.ones((B, T, F), "f")))
    (r,) = [r for r in rec.ops if r.op == "lstm_sequence"]
    G = 4
    gemm = 2 * T * B * F * G * H + 2 * T * B * H * G * H
    assert r.fwd == gemm + T * B * G * H + 9 * T * B * H    # Keras LSTM: one bias
    assert r.bwd == 2 * gemm + 2 * 9 * T * B * H + T * B * G * H
    lstm = nn.LSTM(F, H)                                     # PyTorch-style: two biases
    with flops.Recorder() as rec:
        lstm(tl.Tensor(np.ones((T, B, F), "f")))
    (r,) = [r for r in rec.ops if r.op == "lstm_sequence"]
    assert r.fwd == gemm + 2 * T * B * G * H + 9 * T * B * H


def test_conv1d_gru_rnn_flops_equal_closed_forms():
    N, C, L, O, k = 2, 3, 11, 4, 5
    with flops.Recorder() as rec:
        y = nn.Conv1d(C, O, k, bias=False)(tl.Tensor(np.ones((N, C, L), "f")))
    assert rec.forward_flops == 2 * N * O * y.shape[-1] * C * k     # conv1d runs as a conv2d
    T, B, F, H = 5, 2, 4, 3
    for cls, G, p in ((nn.GRU, 3, 9), (nn.RNN, 1, 1)):
        with flops.Recorder() as rec:
            cls(F, H)(tl.Tensor(np.ones((T, B, F), "f")))
        (r,) = [r for r in rec.ops if r.op.endswith("_sequence")]
        gemm = 2 * T * B * F * G * H + 2 * T * B * H * G * H
        assert r.fwd == gemm + 2 * T * B * G * H + p * T * B * H, cls


def test_saved_bytes_measures_what_forward_kept():
    x = tl.Tensor(np.ones((10, 3), "float64"), requires_grad=True)
    with flops.Recorder() as rec:
        x.tanh()                     # keeps y: 10 * 3 * 8 bytes
        x.sum()                      # keeps nothing
    assert [r.saved for r in rec.ops] == [240, 0]
