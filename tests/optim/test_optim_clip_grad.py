"""Gradient clipping (tinygrad_lite.nn.utils): total norm, scaling, inf norm, non-finite errors."""

import math

import numpy as np
import pytest

from tinygrad_lite.nn.utils import clip_grad_norm_, clip_grad_value_

G1 = np.array([[3.0, -4.0], [0.0, 12.0]])  # sum of squares 169
G2 = np.array([-84.0])  # sum of squares 7056; total 2-norm sqrt(7225) = 85


@pytest.fixture
def params(make_param, set_grad):
    p, q, r = make_param(np.zeros((2, 2))), make_param(np.zeros(1)), make_param(np.zeros(3))
    set_grad(p, G1)
    set_grad(q, G2)
    return [p, q, r]  # r has no gradient: skipped


def test_total_norm_and_scaling(params):
    p, q, _ = params
    total = clip_grad_norm_(params, max_norm=17.0)
    assert isinstance(total, float) and total == pytest.approx(85.0, rel=1e-14)
    c = 17.0 / (85.0 + 1e-6)
    np.testing.assert_allclose(p.grad.data, G1 * c, rtol=1e-14)
    np.testing.assert_allclose(q.grad.data, G2 * c, rtol=1e-14)
    new_norm = math.sqrt((p.grad.data**2).sum() + (q.grad.data**2).sum())
    assert new_norm == pytest.approx(17.0, rel=1e-6)  # direction kept, length max_norm


def test_no_change_below_max_norm(params):
    p, q, _ = params
    assert clip_grad_norm_(params, max_norm=100.0) == pytest.approx(85.0)
    np.testing.assert_array_equal(p.grad.data, G1)
    np.testing.assert_array_equal(q.grad.data, G2)


def test_inf_norm_and_p_norms(params):
    p, q, _ = params
    assert clip_grad_norm_(params, 168.0, norm_type=float("inf")) == 84.0
    np.testing.assert_array_equal(q.grad.data, G2)
    assert clip_grad_norm_(params, 42.0, norm_type="inf") == 84.0
    np.testing.assert_allclose(q.grad.data, G2 * 42.0 / (84.0 + 1e-6), rtol=1e-14)
    q.grad.data[...] = G2
    p.grad.data[...] = G1
    assert clip_grad_norm_(params, 1e9, norm_type=1) == pytest.approx(3 + 4 + 12 + 84)
    want3 = (27 + 64 + 1728 + 84**3) ** (1 / 3)
    assert clip_grad_norm_(params, 1e9, norm_type=3.0) == pytest.approx(want3, rel=1e-13)


def test_single_parameter_and_no_grads(make_param, set_grad):
    p = make_param([0.0, 0.0])
    assert clip_grad_norm_([p], 1.0) == 0.0  # no gradient anywhere
    set_grad(p, [6.0, 8.0])
    assert clip_grad_norm_(p, 5.0) == pytest.approx(10.0)  # a bare parameter works too
    np.testing.assert_allclose(p.grad.data, [3.0, 4.0], rtol=1e-6)


def test_nonfinite_norm(make_param, set_grad):
    p = make_param([0.0, 0.0])
    set_grad(p, [np.inf, 1.0])
    with pytest.raises(
        RuntimeError, match=r"clip_grad_norm_: the total norm of order 2.0 .* non-finite, got inf"
    ):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad.data, [np.inf, 1.0])  # untouched on error
    total = clip_grad_norm_([p], 1.0)  # default: scale anyway (PyTorch), no warning escapes
    assert total == math.inf and np.isnan(p.grad.data[0]) and p.grad.data[1] == 0.0
    set_grad(p, [np.nan, 1.0])
    with pytest.raises(RuntimeError, match="non-finite, got nan"):
        clip_grad_norm_([p], 1.0, norm_type="inf", error_if_nonfinite=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_and_float32_does_not_overflow(dtype, make_param, set_grad):
    p = make_param([0.0, 0.0], dtype)
    set_grad(p, [3e20, 4e20])  # squares overflow float32; the norm is taken in float64
    g = p.grad.data
    total = clip_grad_norm_([p], 1.0)
    assert total == pytest.approx(5e20, rel=1e-6)
    assert p.grad.data is g and g.dtype == dtype
    np.testing.assert_allclose(g, [0.6, 0.8], rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (
            {"max_norm": 1.0, "norm_type": 0},
            "norm_type must be a number > 0 or inf, got norm_type=0",
        ),
        ({"max_norm": 1.0, "norm_type": "l2"}, "norm_type must be"),
        ({"max_norm": float("nan")}, "max_norm must be a number"),
    ],
)
def test_clip_norm_invalid_arguments(params, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        clip_grad_norm_(params, **kwargs)


def test_clip_value(params, make_param):
    p, q, r = params
    assert clip_grad_value_(params, 5.0) is None
    np.testing.assert_array_equal(p.grad.data, [[3.0, -4.0], [0.0, 5.0]])
    np.testing.assert_array_equal(q.grad.data, [-5.0])
    assert r.grad is None
    with pytest.raises(ValueError, match="clip_value must be a number >= 0, got clip_value=-1"):
        clip_grad_value_(params, -1)


def test_clipping_matches_torch(torch, make_param, set_grad):
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=s) * 10 for s in [(3, 4), (5,), (2, 2, 2)]]
    for norm_type in (2.0, 1.0, 3.5, float("inf")):
        ps = [make_param(np.zeros_like(g)) for g in grads]
        for p, g in zip(ps, grads):
            set_grad(p, g)
        ws = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for w, g in zip(ws, grads):
            w.grad = torch.tensor(g)
        ours = clip_grad_norm_(ps, 2.0, norm_type=norm_type)
        theirs = torch.nn.utils.clip_grad_norm_(ws, 2.0, norm_type=norm_type)
        assert ours == pytest.approx(float(theirs), rel=1e-12)
        for p, w in zip(ps, ws):
            np.testing.assert_allclose(p.grad.data, w.grad.numpy(), rtol=1e-12)
    torch.nn.utils.clip_grad_value_(ws, 0.3)
    clip_grad_value_(ps, 0.3)
    for p, w in zip(ps, ws):
        np.testing.assert_array_equal(p.grad.data, w.grad.numpy())
