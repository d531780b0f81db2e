"""The fused softmax cross-entropy (ops/nn.py SoftmaxCrossEntropy): the Cython kernel and the
NumPy formula against the unfused log_softmax + nll path, on odd shapes, both dtypes,
non-contiguous logits and bad labels."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.errors import LabelError
from tinygrad_lite.nn import functional as F
from tinygrad_lite.nn.losses import _nll, softmax_cross_entropy


def _unfused(z, y):
    t = tl.Tensor(z, requires_grad=True)
    loss = _nll("ref", t.log_softmax(axis=1), y, None, None, "mean")
    loss.backward()
    return loss.item(), t.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(1, 1), (1, 7), (13, 1), (13, 11), (64, 10), (3, 257)])
def test_fused_equals_unfused(backend, dtype, n, c):
    rng = np.random.default_rng(n * c)
    z = (rng.standard_normal((n, c)) * 5).astype(dtype)
    y = rng.integers(0, c, n)
    want_loss, want_grad = _unfused(z, y)
    t = tl.Tensor(z, requires_grad=True)
    loss = F.cross_entropy(t, y)
    assert loss._node.fn.op_name == "softmax_cross_entropy"
    assert loss.dtype == dtype
    loss.backward()
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(loss.item(), want_loss, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(t.grad.numpy(), want_grad, rtol=tol * 10, atol=tol)


def test_non_contiguous_logits_and_upstream_weight(backend):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((10, 6)).astype(np.float32)
    z = base.T                          # (6, 10), F-order
    y = rng.integers(0, 10, 6)
    want_loss, want_grad = _unfused(np.ascontiguousarray(z), y)
    t = tl.Tensor(z, requires_grad=True)
    loss = softmax_cross_entropy(t, y)
    (loss * 3.0).backward()
    np.testing.assert_allclose(loss.item(), want_loss, rtol=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), 3.0 * want_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bad", [-1, 5])
def test_labels_out_of_range_raise(backend, bad):
    z = tl.Tensor(np.zeros((3, 5), np.float32))
    with pytest.raises(LabelError, match=r"softmax_cross_entropy: class labels must be in"):
        softmax_cross_entropy(z, np.array([0, bad, 1]))
    with pytest.raises(LabelError):
        F.cross_entropy(z, np.array([0, bad, 1]))


def test_ignore_index_weight_and_smoothing_keep_the_general_path():
    z = tl.Tensor(np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32))
    for kw in (dict(ignore_index=2), dict(weight=np.ones(3, np.float32)),
               dict(label_smoothing=0.1), dict(reduction="sum")):
        y = np.array([0, 2, 1, 2])
        loss = F.cross_entropy(z, y, **kw)
        assert loss._node is None or loss._node.fn.op_name != "softmax_cross_entropy"


def test_matches_torch(torch):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((17, 5)).astype(np.float32)
    y = rng.integers(0, 5, 17)
    t = tl.Tensor(z, requires_grad=True)
    loss = F.cross_entropy(t, y)
    loss.backward()
    tz = torch.tensor(z, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tz, torch.tensor(y))
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), tz.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_double_backward_goes_through_softmax():
    rng = np.random.default_rng(3)
    z = tl.Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    y = np.array([0, 1, 2, 1])
    (g,) = tl.autograd.grad(softmax_cross_entropy(z, y), [z], create_graph=True)
    (g * g).sum().backward()
    # d/dz sum (p - onehot)^2 / N^2, by finite differences
    def f(a):
        p = np.exp(a - a.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(4), y] -= 1
        return (p ** 2).sum() / 16
    a, eps, num = z.numpy().copy(), 1e-6, np.zeros((4, 3))
    for i in np.ndindex(4, 3):
        a[i] += eps
        hi = f(a)
        a[i] -= 2 * eps
        num[i] = (hi - f(a)) / (2 * eps)
        a[i] += eps
    np.testing.assert_allclose(z.grad.numpy(), num, rtol=1e-5, atol=1e-8)
