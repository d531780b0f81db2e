"""PyTorch-style calls get PyTorch's answers (issue: porting from PyTorch), and the public graph."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor
from tinygrad_lite.errors import AxisError, DTypeError, GraphError, ShapeError
from tinygrad_lite.returns import ValuesIndices

X = np.array([[0.3, 2.0, -1.0], [4.0, 0.5, 4.0]], dtype=np.float32)


# ------------------------------------------------------------------ max/min pairs ---

@pytest.mark.parametrize("name,argf", [("max", np.argmax), ("min", np.argmin)])
def test_max_min_with_dim_return_values_and_indices(name, argf):
    t = Tensor(X)
    ref = getattr(np, name)
    for call in (lambda: getattr(t, name)(1), lambda: getattr(t, name)(dim=1),
                 lambda: getattr(tl, name)(t, 1)):
        out = call()
        assert isinstance(out, ValuesIndices)
        v, i = out                                   # unpacks like a tuple
        np.testing.assert_array_equal(v.numpy(), ref(X, axis=1))
        np.testing.assert_array_equal(i.numpy(), argf(X, axis=1))   # first hit on ties (row 1)
        assert out[1] is out.indices and i.dtype == np.int64
    v, i = getattr(t, name)(0, True)
    assert v.shape == (1, 3) and i.shape == (1, 3)
    v, i = getattr(t, name)(dim=-1, keepdim=True)
    assert v.shape == (2, 1) and i.shape == (2, 1)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_with_axis_or_no_dim_return_values(name):
    t = Tensor(X)
    out = getattr(t, name)(axis=1)
    assert isinstance(out, Tensor)
    np.testing.assert_array_equal(out.numpy(), getattr(np, name)(X, axis=1))
    assert getattr(t, name)().item() == getattr(np, name)(X)
    assert getattr(t, name)(axis=(0, 1), keepdims=True).shape == (1, 1)
    other = Tensor(np.zeros_like(X))
    np.testing.assert_array_equal(getattr(t, name)(other).numpy(),
                                  getattr(np, name + "imum")(X, 0))
    with pytest.raises(TypeError, match=f"{name}: pass dim"):
        getattr(t, name)(1, axis=1)


def test_accuracy_idiom_counts_correct_predictions():
    """(out.max(1)[1] == y).sum(): silently 0 when max(1) returned values only."""
    logits = Tensor(np.array([[0.1, 2.0], [3.0, 0.0], [0.2, 0.1]], dtype=np.float32))
    y = Tensor(np.array([1, 0, 1]))
    assert (logits.max(1)[1] == y).sum().item() == 2
    _, pred = logits.max(1)
    np.testing.assert_array_equal(pred.numpy(), [1, 0, 0])


def test_max_with_dim_gradient_flows_to_the_values():
    t = Tensor(X, requires_grad=True)
    v, _ = t.max(1)
    v.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [[0, 1, 0], [0.5, 0, 0.5]])


def test_max_min_match_torch():
    torch = pytest.importorskip("torch")
    tt = torch.tensor(X)
    for name in ("max", "min"):
        v, i = getattr(Tensor(X), name)(1)
        tv, ti = getattr(tt, name)(1)
        np.testing.assert_array_equal(v.numpy(), tv.numpy())
        np.testing.assert_array_equal(i.numpy(), ti.numpy())


# ------------------------------------------------------------------ iteration and indexing ---

def test_iterating_a_tensor():
    t = Tensor(X)
    rows = list(t)
    assert len(rows) == 2 and all(isinstance(r, Tensor) for r in rows)
    np.testing.assert_array_equal(rows[1].numpy(), X[1])
    a, b = t
    np.testing.assert_array_equal(a.numpy(), X[0])
    assert [r.shape for r in Tensor(np.zeros((4, 2)))] == [(2,)] * 4
    with pytest.raises(TypeError, match="iter: iteration over a 0-d tensor"):
        iter(Tensor(1.0))


def test_iteration_keeps_the_graph():
    t = Tensor(X, requires_grad=True)
    sum((r * (k + 1)).sum() for k, r in enumerate(t)).backward()
    np.testing.assert_array_equal(t.grad.numpy(), [[1, 1, 1], [2, 2, 2]])


def test_out_of_range_index_is_an_index_error():
    t = Tensor(X)
    for bad in (lambda: t[2], lambda: t[0, 3], lambda: t.sum(axis=2)):
        with pytest.raises(IndexError):
            bad()
        with pytest.raises(AxisError):
            bad()
        with pytest.raises(ShapeError):      # still our ShapeError, as before
            bad()


# ------------------------------------------------------------------ var / std ---

def test_var_std_default_to_the_unbiased_estimate():
    x = np.array([0.1, 1.3, -0.4, 2.2, 0.9], dtype=np.float64)
    t = Tensor(x)
    np.testing.assert_allclose(t.var().item(), np.var(x, ddof=1))
    np.testing.assert_allclose(t.std().item(), np.std(x, ddof=1))
    np.testing.assert_allclose(t.var(ddof=0).item(), np.var(x))          # NumPy's meaning
    np.testing.assert_allclose(t.std(ddof=0).item(), np.std(x))
    np.testing.assert_allclose(t.var(correction=0).item(), np.var(x))
    np.testing.assert_allclose(t.reshape(1, 5).var(dim=1).numpy(), [np.var(x, ddof=1)])
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(t.std().item(), torch.tensor(x).std().item())
    np.testing.assert_allclose(t.var(dim=0).item(), torch.tensor(x).var(dim=0).item())


def test_normalization_layers_keep_the_biased_variance():
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float64)
    from tinygrad_lite import nn

    y = nn.LayerNorm(4, elementwise_affine=False)(Tensor(x)).numpy()
    ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------ mixed float dtypes ---

def test_matmul_linear_conv_refuse_mixed_float_dtypes():
    x64 = Tensor(np.ones((2, 3)))
    from tinygrad_lite import nn

    lin = nn.Linear(3, 4)
    with pytest.raises(DTypeError, match=r"linear: .*float64 and float32.*\.float\(\)"):
        lin(x64)
    with pytest.raises(DTypeError, match=r"matmul: .*float32 and float64.*\.double\(\)"):
        Tensor(np.ones((2, 3), np.float32)) @ Tensor(np.ones((3, 2)))
    conv = nn.Conv2d(1, 2, 3)
    with pytest.raises(DTypeError, match="conv2d: both operands must have the same dtype"):
        conv(Tensor(np.ones((1, 1, 5, 5))))
    assert lin(x64.float()).dtype == np.float32                     # the suggested fix works
    assert (Tensor(np.ones(2)) + Tensor(np.ones(2, np.float32))).dtype == np.float64  # promote


def test_keras_api_still_casts_inputs_to_the_model_dtype():
    from tinygrad_lite import layers, models

    m = models.Sequential([layers.Dense(3, input_shape=(4,))])
    m.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((8, 4))             # float64
    m.fit(x, np.zeros((8, 3)), epochs=1, batch_size=4, verbose=0)
    assert m.predict(x).dtype == np.float32


# ------------------------------------------------------------------ module-level names ---

def test_module_level_names():
    a = np.arange(6.0).reshape(2, 3)
    t = tl.from_numpy(a)
    assert t.dtype == np.float64
    a[0, 0] = 7.0
    assert t.numpy()[0, 0] == 7.0                     # shares memory, as torch.from_numpy
    with pytest.raises(TypeError, match="from_numpy"):
        tl.from_numpy([1.0])
    assert tl.device("cpu") == "cpu" and tl.device("cuda", 0).index == 0
    assert tl.device("cuda:1").type == "cuda"
    assert Tensor([1.0], device=tl.device("cpu")).device == "cpu"
    assert tl.cuda.is_available() is (tl.cuda.device_count() > 0)
    assert tl.flatten(Tensor(np.zeros((2, 3, 4))), 1).shape == (2, 12)
    np.testing.assert_allclose(tl.sum(t, 1).numpy(), a.sum(1))
    np.testing.assert_allclose(tl.mean(t).item(), a.mean())
    np.testing.assert_array_equal(tl.argmax(t, 1).numpy(), a.argmax(1))
    np.testing.assert_array_equal(tl.argmin(t, dim=0).numpy(), a.argmin(0))
    np.testing.assert_allclose(tl.exp(t).numpy(), np.exp(a))
    np.testing.assert_allclose(tl.log(t + 1).numpy(), np.log(a + 1))
    np.testing.assert_allclose(tl.relu(t - 3).numpy(), np.maximum(a - 3, 0))
    sm = np.exp(a) / np.exp(a).sum(1, keepdims=True)
    np.testing.assert_allclose(tl.softmax(t, dim=1).numpy(), sm)
    np.testing.assert_allclose(tl.log_softmax(t, dim=1).numpy(), np.log(sm))
    assert isinstance(tl.max(t, 1), ValuesIndices) and isinstance(tl.min(t, axis=1), Tensor)


def test_inference_mode():
    x = Tensor([1.0], requires_grad=True)
    with tl.inference_mode():
        assert not (x * 2).requires_grad
    with tl.inference_mode(False):
        assert (x * 2).requires_grad

    @tl.inference_mode()
    def f(v):
        return v * 2

    assert not f(x).requires_grad


def test_dtype_objects():
    assert tl.float32 == np.float32 and tl.float is tl.float32
    assert tl.float64 == np.float64 and tl.double is tl.float64
    assert tl.int64 == np.int64 and tl.long is tl.int64 and tl.bool == np.bool_
    assert tl.zeros(2, dtype=tl.float64).dtype == np.float64
    t = Tensor([1.5, 2.5])
    assert t.to(tl.long).dtype == np.int64 and t.to(tl.float64).dtype == np.float64
    assert t.to(dtype=tl.double, device="cpu").dtype == np.float64
    assert t.to(Tensor(np.zeros(1))).dtype == np.float64            # to(other): its dtype
    assert t.to() is t
    assert t.dtype == tl.float32


# ------------------------------------------------------------------ Tensor methods ---

def test_tensor_conversion_methods():
    t = Tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    assert t.dim() == 2 and t.numel() == 6 and t.size == 6       # .size stays NumPy's int
    assert t.float().dtype == np.float32 and t.double().dtype == np.float64
    assert t.long().dtype == np.int64 and t.int().dtype == np.int32
    assert t.bool().dtype == np.bool_
    assert t.type_as(Tensor(np.zeros(1))).dtype == np.float64
    assert t.contiguous() is t
    tt = t.T.contiguous()
    assert tt.data.flags.c_contiguous and tt.shape == (3, 2)
    np.testing.assert_array_equal(tt.numpy(), X.T * 0 + np.arange(6.0).reshape(2, 3).T)


# ------------------------------------------------------------------ public graph ---

def test_grad_fn_is_a_public_view_of_the_graph():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 4), np.float32), requires_grad=True)
    c = Tensor(np.ones(4, np.float32))
    y = ((x @ w) + c).relu().sum()
    fn = y.grad_fn
    assert fn.op == "sum" and fn.name() == "sum" and repr(fn) == "<GradFn sum>"
    (relu, idx), = fn.next_functions
    assert relu.op == "relu" and idx == 0
    (add, _), = relu.next_functions
    (mm, _), (const, _) = add.next_functions
    assert mm.op == "matmul" and const is None            # c needs no gradient
    assert mm.saved_shapes == ((2, 3), (3, 4))
    leaves = [f.variable for f, _ in mm.next_functions]
    assert leaves[0] is x and leaves[1] is w
    assert x.grad_fn is None and x.is_leaf
    y.backward()
    assert mm.saved_shapes == () and mm.freed              # freed after backward


def test_walk_the_graph_without_private_attributes():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x + x).sum()
    seen, stack, ops = set(), [y.grad_fn], []
    while stack:
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        ops.append(f.name())
        stack.extend(n for n, _ in f.next_functions)
    assert sorted(ops) == ["AccumulateGrad", "add", "mul", "sum"]


def test_register_hook_sees_and_replaces_the_complete_gradient():
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    h.register_hook(lambda g: g * 10)                       # replaces the gradient upstream
    (h * h).sum().backward()                                # h used twice: summed first
    np.testing.assert_allclose(seen[0], 2 * h.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 3 * 10 * 2 * h.numpy())
    x.grad = None
    handle = x.register_hook(lambda g: g * 0.5)
    (x * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.5])  # leaf hook before .grad
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])
    with pytest.raises(GraphError, match="register_hook"):
        Tensor([1.0]).register_hook(print)


def test_register_hook_with_retain_grad_and_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = (x * 2).retain_grad()
    h.register_hook(lambda g: g + 1)
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy() + 1)
    (gx,) = tl.grad((x * x).sum(), x)
    np.testing.assert_allclose(gx.numpy(), 2 * x.numpy())


def test_subpackages_are_reachable_from_the_top_level():
    import subprocess
    import sys

    code = ("import sys, tinygrad_lite as tl\n"
            "assert 'tinygrad_lite.optim' not in sys.modules   # not imported eagerly\n"
            "print(tl.nn.Linear.__name__, tl.optim.Adam.__name__, tl.data.DataLoader.__name__,\n"
            "      tl.nn.utils.clip_grad_norm_.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Linear", "Adam", "DataLoader", "clip_grad_norm_"]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        tl.nope
