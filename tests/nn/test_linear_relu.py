"""The fused Linear+ReLU Function (ops/nn.py LinearReLU: the GEMM with a bias + ReLU epilogue)
against relu(linear(...)): the same bits forward and backward, both weight layouts, both dtypes,
odd shapes, non-contiguous input; Dense(relu) and nn.Sequential(Linear, ReLU) use it."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.errors import DTypeError
from tinygrad_lite.layers import Dense
from tinygrad_lite.nn import functional as F


def _pair(x0, w0, b0, keras, fused):
    x, w, b = (tl.Tensor(a, requires_grad=True) for a in (x0, w0, b0))
    if fused:
        y = F.linear_relu(x, w, b, keras_layout=keras)
    else:
        y = ((x @ w + b) if keras else F.linear(x, w, b)).relu()
    g = np.random.default_rng(9).standard_normal(y.shape).astype(y.dtype)
    y.backward(tl.Tensor(g))
    return y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keras", [False, True])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 784, 128), (7, 13, 5), (64, 128, 10),
                                   (97, 31, 257)])
def test_fused_is_bitwise_the_unfused_ops(backend, dtype, keras, m, k, n):
    rng = np.random.default_rng(m * k + n)
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((k, n) if keras else (n, k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    got = _pair(x, w, b, keras, True)
    want = _pair(x, w, b, keras, False)
    for name, a, e in zip(("y", "dx", "dW", "db"), got, want):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, e, err_msg=name)


def test_non_contiguous_input_and_graph_op(backend):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 6)).astype(np.float32).T        # (6, 10), F-order
    w = rng.standard_normal((4, 10)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y = F.linear_relu(tl.Tensor(x, requires_grad=True), tl.Tensor(w), tl.Tensor(b))
    assert y._node.fn.op_name == "linear_relu"
    np.testing.assert_allclose(y.numpy(), np.maximum(x @ w.T + b, 0), rtol=1e-5, atol=1e-6)


def test_mixed_dtypes_are_refused_like_linear():
    # issue 15: matmul/linear/conv take one float dtype (as PyTorch); the fused op agrees
    x = tl.Tensor(np.full((2, 3), 0.5, np.float64), requires_grad=True)
    w = tl.Tensor(np.ones((4, 3), np.float32))
    b = tl.Tensor(np.ones(4, np.float32))
    with pytest.raises(DTypeError, match="float64 and float32"):
        F.linear_relu(x, w, b)
    with pytest.raises(DTypeError, match="float64 and float32"):
        F.linear(x, w, b)


def test_dense_relu_and_nn_sequential_use_it():
    tl.manual_seed(0)
    d = Dense(5, activation="relu", input_shape=(3,))
    y = d(tl.Tensor(np.ones((2, 3), np.float32)))
    assert y._node.fn.op_name == "linear_relu"
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    z = net(tl.Tensor(np.ones((2, 3), np.float32), requires_grad=True))
    ops = []
    node = z._node
    while node is not None:
        ops.append(node.fn.op_name)
        parents = [p for p in node.parents if getattr(p, "_node", None) is not None]
        node = parents[0]._node if parents else None
    assert "linear_relu" in ops and "relu" not in ops
    seen = []
    net[1].register_forward_hook(lambda mod, inp, out: seen.append(1))
    net(tl.Tensor(np.ones((2, 3), np.float32)))
    assert seen == [1]                      # a hooked ReLU runs as its own module
