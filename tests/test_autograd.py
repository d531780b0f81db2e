"""Engine behaviour: accumulation, graph freeing, grad modes, deep graphs, higher order."""

import numpy as np
import pytest
from hypothesis import given

import tinygrad_lite as tl
from tinygrad_lite import GraphError, Tensor
from tinygrad_lite.nn import functional as F
from tinygrad_lite.testing import strategies as tst


def t64(a, rg=True):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=rg)


def test_gradients_accumulate_until_zeroed():
    x = t64([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3])


def test_second_backward_through_freed_graph_raises():
    x = t64([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(GraphError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = t64([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_non_scalar_backward_needs_gradient():
    x = t64([[1.0, 2.0]])
    y = x * 2
    with pytest.raises(GraphError, match=r"only for scalar outputs, got shape \(1, 2\)"):
        y.backward()
    y.backward(np.array([[1.0, 10.0]]))
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 20.0]])


def test_backward_gradient_shape_checked():
    x = t64([1.0, 2.0])
    with pytest.raises(tl.ShapeError, match="backward: gradient shape"):
        (x * 2).backward(np.ones(3))


def test_no_grad_and_enable_grad():
    x = t64([1.0])
    with tl.no_grad():
        y = x * 2
        with tl.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @tl.no_grad()
    def f(a):
        return a * a

    assert not f(x).requires_grad
    assert tl.is_grad_enabled()


def test_detach_cuts_the_graph():
    x = t64([2.0])
    y = x * x
    z = (y.detach() * x).sum()     # d/dx = y (constant) = 4, not 3x^2 = 12
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0])


def test_long_chain_does_not_overflow_the_stack():
    x = t64(1.0)
    y = x
    for _ in range(100_000):
        y = y + 1e-6
    y.backward()
    assert x.grad.item() == 1.0
    np.testing.assert_allclose(y.item(), 1.1, rtol=1e-9)


def test_diamond_graph_sums_both_paths():
    x = t64(3.0)
    a = x * 2
    b = a.exp()
    c = a * a
    (b + c).backward()
    # d/dx [e^(2x) + 4x^2] = 2 e^(2x) + 8x
    np.testing.assert_allclose(x.grad.item(), 2 * np.exp(6.0) + 24.0)


def test_tensor_used_twice_in_one_op():
    x = t64([1.5, -2.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -4.0])


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(tl.DTypeError, match="only floating-point tensors"):
        Tensor([1, 2, 3], requires_grad=True)


def test_grad_functional_does_not_touch_dot_grad():
    x = t64([1.0, 2.0])
    (g,) = tl.grad((x ** 3).sum(), x)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    assert x.grad is None


def test_grad_unused_input():
    x, y = t64([1.0]), t64([2.0])
    with pytest.raises(GraphError, match="not used"):
        tl.grad((x * 2).sum(), [x, y])
    gx, gy = tl.grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gy is None and gx.item() == 2.0


def test_retain_grad_on_intermediate():
    x = t64([1.0, 2.0])
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())


def test_broadcast_gradients_sum_back_to_input_shape():
    a = t64(np.ones((3, 1)))
    b = t64(np.arange(4.0))
    (a * b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), 6.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 3.0))


# ------------------------------------------------------------------ higher order ---


def _hvp_numeric(f_grad, x, v, eps=1e-6):
    """Finite-difference Hessian-vector product: (grad f(x+eps v) - grad f(x-eps v)) / 2eps."""
    return (f_grad(x + eps * v) - f_grad(x - eps * v)) / (2 * eps)


@given(tst.arrays((4,), low=-1.5, high=1.5), tst.arrays((4,), low=-1, high=1))
def test_hessian_vector_product_matches_finite_differences(xv, v):
    def f(x):
        return (x.tanh() * x.exp()).sum() + (x * x).sum() * x.sigmoid().sum()

    def f_grad(a):
        x = t64(a)
        (g,) = tl.grad(f(x), x)
        return g.numpy()

    x = t64(xv)
    (g,) = tl.grad(f(x), x, create_graph=True)
    (hv,) = tl.grad((g * Tensor(v)).sum(), x)
    np.testing.assert_allclose(hv.numpy(), _hvp_numeric(f_grad, xv, v), rtol=1e-5, atol=1e-6)


def test_third_derivative():
    x = t64(0.7)
    (g1,) = tl.grad(x ** 4, x, create_graph=True)
    (g2,) = tl.grad(g1, x, create_graph=True)
    (g3,) = tl.grad(g2, x)
    np.testing.assert_allclose(g3.item(), 24 * 0.7)


def _penalty(x, w, net):
    """A WGAN-GP style gradient penalty: (||d net(x) / dx|| - 1)^2, differentiated in w."""
    out = net(x, w)
    (gx,) = tl.grad(out.sum(), x, create_graph=True)
    return ((gx * gx).sum().sqrt() - 1) ** 2


@pytest.mark.parametrize("kind", ["matmul", "conv2d"])
def test_gradient_penalty_through_matmul_and_conv(kind, backend):
    rng = np.random.default_rng(0)
    if kind == "matmul":
        x0, w0 = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))

        def net(x, w):
            return (x @ w).tanh()
    else:
        x0, w0 = rng.normal(size=(2, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3))

        def net(x, w):
            return F.conv2d(x, w, padding=1).tanh()

    x, w = t64(x0), t64(w0)
    loss = _penalty(x, w, net)
    (gw,) = tl.grad(loss, w)
    # numeric d loss / d w by central differences, first-order autograd inside
    num = np.zeros_like(w0)
    eps = 1e-6
    for i in np.ndindex(w0.shape):
        vals = []
        for s in (eps, -eps):
            wp = w0.copy()
            wp[i] += s
            vals.append(_penalty(t64(x0), t64(wp), net).item())
        num[i] = (vals[0] - vals[1]) / (2 * eps)
    np.testing.assert_allclose(gw.numpy(), num, rtol=1e-4, atol=1e-7)


def test_backward_with_create_graph_leaves_differentiable_grad():
    x = t64([1.0, 2.0])
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad                      # 3 x^2, still attached
    assert g.requires_grad
    (h,) = tl.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), [6.0, 12.0])


@pytest.mark.parametrize("create_graph", [False, True], ids=["lean", "graph"])
def test_tensor_hooks_see_the_complete_gradient_and_may_replace_it(create_graph):
    """The hook contract of the backward walk: h(g) runs once per tensor with its summed
    gradient; a non-None result replaces g before it is accumulated or propagated."""
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3.0
    seen = []
    y._hooks = [lambda g: seen.append(g.numpy().copy())]
    x._hooks = [lambda g: g * 10.0]
    (y * y + y).sum().backward(create_graph=create_graph)   # dL/dy = 2y + 1, used twice
    np.testing.assert_array_equal(seen[0], 2 * y.numpy() + 1)
    assert len(seen) == 1
    np.testing.assert_array_equal(x.grad.numpy(), 10.0 * 3.0 * (2 * y.numpy() + 1))
