"""The narrated backward trace (tracing.py): a golden text of a small fixed graph, gradients
equal to .grad, every op's rule readable, the renderings, and backward(trace=True)."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import autograd, tracing

GOLDEN = """\
  #  op             output (shape) = op(inputs), its rule, dL/d(output) in, dL/d(input) out
-------------------------------------------------------------------------------------------
  1  add            out () = add(v5 (), v3 ())
     rule:  y = a + b
            dy/da = 1, dy/db = 1.
     in:    dL/dout = 1
     out:   dL/dv5 = 1
     out:   dL/dv3 = 1
  2  sum            v5 () = sum(v4 (2,))
     rule:  y = sum_{i in axes} x_i
            dy/dx_i = 1: the gradient is broadcast back over the axes.
     in:    dL/dv5 = 1
     out:   dL/dv4 = [1., 1.]
  3  mul            v4 (2,) = mul(u (2,), u (2,))
     rule:  y = a * b
            dy/da = b, dy/db = a.
     in:    dL/dv4 = [1., 1.]
     out:   dL/du = [ 1., -3.]
     out:   dL/du = [ 1., -3.]
  4  sum            v3 () = sum(v2 (2,))
     rule:  y = sum_{i in axes} x_i
            dy/dx_i = 1: the gradient is broadcast back over the axes.
     in:    dL/dv3 = 1
     out:   dL/dv2 = [1., 1.]
  5  tanh           v2 (2,) = tanh(v1 (2,))
     rule:  y = tanh(x)
            dy/dx = 1 - y^2 (keep y, not x: the derivative needs only the output).
     in:    dL/dv2 = [1., 1.]
     out:   dL/dv1 = [0.2804, 0.0162]
  6  add            v1 (2,) = add(u (2,), b ())
     rule:  y = a + b
            dy/da = 1, dy/db = 1.
     in:    dL/dv1 = [0.2804, 0.0162]
     out:   dL/du = [0.2804, 0.0162]
     out:   dL/db = 0.2966
  7  mul            u (2,) = mul(w (2,), x (2,))
     rule:  y = a * b
            dy/da = b, dy/db = a.
     sum:   dL/du = from step 3 (mul) + from step 3 (mul) + from step 6 (add)
     in:    dL/du = [ 2.2804, -5.9838]
     out:   dL/dw = [  4.5608, -17.9514]
     out:   dL/dx: none (needs no grad)
-------------------------------------------------------------------------------------------
leaf w (2,): .grad = [  4.5608, -17.9514]
leaf b (): .grad = 0.2966"""


def _graph():
    w = tl.Tensor([0.5, -1.0], dtype="float64", requires_grad=True)
    b = tl.Tensor(0.25, dtype="float64", requires_grad=True)
    x = tl.Tensor([2.0, 3.0], dtype="float64")
    u = w * x                                   # u has two consumers: its gradients are summed
    loss = (u * u).sum() + (u + b).tanh().sum()
    return loss, {"w": w, "b": b, "x": x, "u": u}


def test_golden_trace_of_a_small_graph():
    loss, names = _graph()
    with tl.trace(names=names) as t:
        loss.backward()
    assert t.table() == GOLDEN
    assert [s.op for s in t.steps] == ["add", "sum", "mul", "sum", "tanh", "add", "mul"]
    assert t.steps[-1].summed == [(3, "mul"), (3, "mul"), (6, "add")]


def test_trace_gradients_equal_grad_and_the_math():
    loss, names = _graph()
    w, b, x = names["w"], names["b"], names["x"]
    t = loss.backward(trace=names)
    np.testing.assert_array_equal(t.leaf_grads["w"], w.grad.numpy())
    np.testing.assert_array_equal(t.leaf_grads["b"], b.grad.numpy())
    u = w.numpy() * x.numpy()
    s = 1 - np.tanh(u + b.numpy()) ** 2
    np.testing.assert_allclose(w.grad.numpy(), (2 * u + s) * x.numpy(), rtol=1e-12)
    # the incoming gradient of u is the sum of what its three uses sent
    step_u = t.steps[-1]
    np.testing.assert_allclose(step_u.grad_in, 2 * u + s, rtol=1e-12)
    assert autograd._tracer is None             # the hook is off again


def test_trace_of_the_examples_matches_grad():
    loss, model = tracing.example_mlp()
    with tl.trace(names=model) as t:
        loss.backward()
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(t.leaf_grads[name], p.grad.numpy())
    loss, names = tracing.example_logistic()
    t = loss.backward(trace=names)
    h, y, x = names["h"].numpy(), names["y"].numpy(), names["x"].numpy()
    np.testing.assert_allclose(t.leaf_grads["w"], x.T @ (h - y) / len(y), rtol=1e-12)
    np.testing.assert_allclose(t.leaf_grads["b"], (h - y).mean(), rtol=1e-12)


def test_large_arrays_are_summarized_and_graph_walk_is_traced(monkeypatch):
    w = tl.Tensor(np.linspace(-1, 1, 40).reshape(8, 5), requires_grad=True)
    loss = (w * w).sum()
    t = loss.backward(trace=True, create_graph=True)
    text = t.table()
    assert "(8, 5) mean " in text and "std 1.184 min -2 max 2 |g| 7.488" in text
    np.testing.assert_allclose(t.leaf_grads["leaf1"], w.grad.numpy())
    monkeypatch.setattr(tracing, "KEEP_MAX", 10)     # large intermediates: statistics only
    x = tl.Tensor(np.ones((4, 5)), requires_grad=True)
    t = (x.exp() * 2).sum().backward(trace=True)
    assert isinstance(t.steps[1].grad_in, tracing.Summary)
    assert t.steps[1].grad_in.text.startswith("(4, 5) mean 1 std 0")
    np.testing.assert_array_equal(t.leaf_grads["leaf1"], x.grad.numpy())   # leaves in full


def test_every_registered_op_has_a_readable_rule():
    import tinygrad_lite.distributed.sync_batchnorm  # noqa: F401  (registers all_reduce_sum)
    import tinygrad_lite.nn  # noqa: F401  (registers the fused recurrent ops)

    for name, fn in autograd.REGISTRY.items():
        fwd, bwd = tracing.rule_of(fn)
        assert fwd and bwd, name
    assert tracing.rule_of(autograd.REGISTRY["mul"]) == ("y = a * b", "dy/da = b, dy/db = a.")
    assert tracing.rule_of(autograd.REGISTRY["lstm_sequence"])[1].startswith("dh += dY_t")

    class NoRule(autograd.Function):
        """Does something."""

    with pytest.raises(ValueError, match="no readable rule"):
        tracing.rule_of(NoRule)
    NoRule.rule = "y = f(x);  dy/dx = f'(x)"
    assert tracing.rule_of(NoRule) == ("y = f(x)", "dy/dx = f'(x)")


def test_markdown_and_dot_renderings():
    loss, names = _graph()
    t = loss.backward(trace=names)
    md = t.markdown().splitlines()
    assert md[0].startswith("| # | node | rule |") and len(md) == 2 + 7 + 1 + 2
    assert "gradients summed: from step 3 (mul) + from step 3 (mul) + from step 6 (add)" in \
        t.markdown()
    dot = t.to_dot()
    assert dot.startswith('digraph "trace" {') and dot.rstrip().endswith("}")
    assert dot.count("[shape=box") == 7


def test_tracing_off_costs_no_hook_and_jit_still_works():
    assert autograd._tracer is None
    x = tl.Tensor(np.ones((4, 3), "f"))
    w = tl.Tensor(np.ones((3, 2), "f"), requires_grad=True)

    @tl.jit
    def step(x):
        loss = (x @ w).sum()
        loss.backward()
        return loss

    for _ in range(3):
        w.grad = None
        step(x)
    np.testing.assert_allclose(w.grad.numpy(), np.full((3, 2), 4.0))

    @tl.jit
    def step2(x):
        loss = (x @ w).sum()
        loss.backward(trace=True)
        return loss

    with pytest.raises(tl.JitError, match="trace the step eagerly"):
        step2(x)
    assert autograd._tracer is None and autograd._tape is None


def test_course_chapter_1_blocks_run(tmp_path, monkeypatch, capsys):
    """Every ```python block of docs/course/01_core_concepts.md runs, in order, in one
    namespace (the course's generic runner supersedes this)."""
    import re
    from pathlib import Path

    monkeypatch.chdir(tmp_path)                 # nothing may be written outside a temp dir
    path = Path(__file__).resolve().parents[1] / "docs" / "course" / "01_core_concepts.md"
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    assert len(blocks) >= 8
    ns = {"__name__": "doc_course_01"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{path.name}[block {i}]", "exec"), ns)
    out = capsys.readouterr().out
    assert "sum:   dL/dh = from step 6 (log) + from step 9 (sub)" in out
    assert "loss 0.5546 -> 0.4144" in out
    assert list(tmp_path.iterdir()) == []


def test_learning_aids_load_lazily():
    import subprocess
    import sys

    code = ("import sys, tinygrad_lite as tl; "
            "print(sorted(m for m in sys.modules if m.split('.')[-1] in "
            "('tracing', 'viz', 'flops', 'explain', 'graphviz', 'matplotlib'))); "
            "t = tl.trace(); print(type(t).__module__, 'tinygrad_lite.viz' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["[]", "tinygrad_lite.tracing False"]
