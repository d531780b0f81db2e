"""The seed's formulas, reproduced with Tensor ops and pinned to hand-computed values."""

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import Tensor


def test_one_gradient_descent_step_matches_closed_form():
    """Linear model h(x) = X theta, J = 1/(2m) sum (h - y)^2, dJ/dtheta = 1/m X^T (X theta - y);
    one step theta <- theta - alpha * dJ/dtheta, computed by autograd and by hand."""
    X = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    y = np.array([3.0, 4.0, 7.0])
    theta0 = np.array([0.5, -0.25])
    alpha, m = 0.1, len(y)

    theta = Tensor(theta0.copy(), requires_grad=True)
    h = Tensor(X) @ theta
    J = ((h - Tensor(y)) ** 2).sum() * (1.0 / (2 * m))
    J.backward()
    with tl.no_grad():
        theta.data -= alpha * theta.grad.data

    grad_closed = X.T @ (X @ theta0 - y) / m
    np.testing.assert_allclose(J.item(), ((X @ theta0 - y) ** 2).sum() / (2 * m))
    np.testing.assert_allclose(theta.numpy(), theta0 - alpha * grad_closed, rtol=1e-12)
    # by hand: residuals X theta0 - y = [-3, -4.25, -7.75];
    # grad = [(-3 - 4.25 - 7.75) / 3, (2*-3 + 3*-4.25 + 5*-7.75) / 3] = [-5, -57.5/3]
    np.testing.assert_allclose(grad_closed, [-5.0, -57.5 / 3])
    np.testing.assert_allclose(theta.numpy(), [0.5 + 0.5, -0.25 + 5.75 / 3])


def test_mse_both_conventions():
    yhat, y = Tensor([1.0, 2.0, 3.0]), Tensor([0.0, 0.0, 0.0])
    sq = (yhat - y) ** 2
    np.testing.assert_allclose(sq.mean().item(), 14 / 3, rtol=1e-6)            # 4.6667
    np.testing.assert_allclose((sq.sum() * (1 / (2 * 3))).item(), 7 / 3, rtol=1e-6)  # 2.3333


def test_binary_cross_entropy_formula():
    """J = -1/m sum [y log h + (1 - y) log(1 - h)] for h = [0.9, 0.2, 0.6], y = [1, 0, 1]."""
    h = Tensor([0.9, 0.2, 0.6], dtype=np.float64, requires_grad=True)
    y = Tensor([1.0, 0.0, 1.0], dtype=np.float64)
    J = -(y * h.log() + (1 - y) * (1 - h).log()).mean()
    want = -(np.log(0.9) + np.log(0.8) + np.log(0.6)) / 3
    np.testing.assert_allclose(J.item(), want, rtol=1e-12)
    np.testing.assert_allclose(J.item(), 0.2797766, rtol=1e-6)   # (0.10536 + 0.22314 + 0.51083) / 3
    J.backward()
    # dJ/dh = -1/m (y/h - (1-y)/(1-h))
    np.testing.assert_allclose(h.grad.numpy(), -np.array([1 / 0.9, -1 / 0.8, 1 / 0.6]) / 3)


def test_softmax_cross_entropy_gradient_is_p_minus_y():
    logits = Tensor(np.array([[2.0, 1.0, 0.1]]), requires_grad=True)
    loss = -(logits.log_softmax(-1)[0, 0])
    loss.backward()
    p = np.exp([2.0, 1.0, 0.1]) / np.exp([2.0, 1.0, 0.1]).sum()
    np.testing.assert_allclose(logits.grad.numpy()[0], p - np.array([1, 0, 0]), rtol=1e-12)
