"""conv2d with its bias in one Function (ops/nn.py Conv2d): the values of conv2d + bias, the
gradients of all three inputs against the NumPy reference, the input gradient skipped for a
first layer, and the old broadcast add kept for a bias of another dtype. On every CPU backend."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.backends.numpy_backend import NumpyBackend
from tinygrad_lite.nn import functional as F

REF = NumpyBackend()

# (x shape, w shape, stride, padding): the small CNN's first layer (the direct kernel on the
# cython backend), and a strided 16-output layer (the GEMM path there)
LAYERS = [((3, 1, 12, 11), (8, 1, 3, 3), 1, 1), ((2, 3, 9, 8), (16, 3, 3, 3), 2, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layer", LAYERS)
def test_conv_bias_values_and_gradients(backend, dtype, layer):
    xs, ws, s, p = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    tx, tw, tb = (tl.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(tx, tw, tb, stride=s, padding=p)
    # bit for bit the separate conv and add (as plan.py's compiled predict computes it)
    plain = F.conv2d(tl.Tensor(x), tl.Tensor(w), stride=s, padding=p).numpy()
    np.testing.assert_array_equal(y.numpy(), plain + b[None, :, None, None])
    geo = ((s, s), (p, p), (1, 1), 1)
    want = REF.conv2d(x.astype(np.float64), w.astype(np.float64), *geo) + b[None, :, None, None]
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y.numpy(), want, atol=tol)
    u = rng.standard_normal(y.shape).astype(dtype)         # a random upstream weighting
    (y * tl.Tensor(u)).sum().backward()
    u64 = u.astype(np.float64)
    np.testing.assert_allclose(tx.grad.numpy(), REF.conv2d_backward_input(
        u64, w.astype(np.float64), xs, *geo), atol=tol * 10)
    np.testing.assert_allclose(tw.grad.numpy(), REF.conv2d_backward_weight(
        u64, x.astype(np.float64), ws, *geo), atol=tol * 100)
    np.testing.assert_allclose(tb.grad.numpy(), u64.sum(axis=(0, 2, 3)), atol=tol * 100)
    assert tx.grad.dtype == tw.grad.dtype == tb.grad.dtype == dtype


def test_first_layer_skips_the_input_gradient(backend, monkeypatch):
    """x needs no gradient (the input batch): backward computes dw and db, never dx."""
    calls = []
    real = type(backend).conv2d_backward_input

    def counting(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(type(backend), "conv2d_backward_input", counting)
    conv = nn.Conv2d(1, 8, 3, padding=1)
    x = tl.Tensor(np.random.default_rng(1).standard_normal((2, 1, 6, 6)).astype(np.float32))
    conv(x).relu().sum().backward()
    assert calls == []
    assert conv.weight.grad is not None and conv.bias.grad is not None
    xg = tl.Tensor(x.numpy(), requires_grad=True)
    conv(xg).sum().backward()
    assert calls == [1] and xg.grad is not None


def test_bias_of_another_dtype_keeps_the_broadcast_add(backend):
    """A float64 bias on a float32 conv promotes the output, as before (no fused path)."""
    x = tl.Tensor(np.ones((1, 1, 4, 4), np.float32))
    w = tl.Tensor(np.ones((2, 1, 3, 3), np.float32))
    b = tl.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = F.conv2d(x, w, b, padding=1)
    assert y.dtype == np.float64
    y.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), [16.0, 16.0])
