"""Optimizers against their update rules, written out by hand in NumPy below.

Every optimizer runs several steps on the quadratic J(theta) = 1/2 theta^T A theta - b^T theta
(gradient A theta - b); each test re-derives the trajectory from the formula in the docstring and
compares step by step. Where torch is installed the same runs are compared with torch.optim.
"""

import math

import numpy as np
import pytest

from tinygrad_lite.errors import ShapeError
from tinygrad_lite.optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop

A = np.array([[3.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 2.0]])
B = np.array([1.0, -2.0, 0.5])
THETA0 = np.array([1.0, -0.5, 2.0])
STEPS = 6


def quad_grad(theta):
    return A @ theta - B


def run(cls, kwargs, make_param, set_grad, steps=STEPS, dtype=np.float64, theta0=THETA0):
    """Trajectory [theta_1, ..., theta_steps] of ``cls`` on the quadratic."""
    p = make_param(theta0, dtype)
    opt = cls([p], **kwargs)
    out = []
    for _ in range(steps):
        set_grad(p, quad_grad(p.data.astype(np.float64)))
        opt.step()
        out.append(p.data.copy())
    return out


# ---------------------------------------------------------------- the update rules, by hand ---


def ref_sgd(
    lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False, steps=STEPS
):
    theta, buf, out = THETA0.copy(), None, []
    for _ in range(steps):
        g = quad_grad(theta)
        if maximize:
            g = -g
        g = g + weight_decay * theta
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        theta = theta - lr * g
        out.append(theta)
    return out


def ref_adam(
    lr,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    decoupled=False,
    maximize=False,
    steps=STEPS,
):
    b1, b2 = betas
    theta, m, v, vmax, out = THETA0.copy(), 0.0, 0.0, 0.0, []
    for t in range(1, steps + 1):
        g = quad_grad(theta)
        if maximize:
            g = -g
        if decoupled:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - b1**t)
        v_hat = (vmax if amsgrad else v) / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta)
    return out


def ref_rmsprop(
    lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, steps=STEPS
):
    theta, v, gbar, buf, out = THETA0.copy(), 0.0, 0.0, 0.0, []
    for _ in range(steps):
        g = quad_grad(theta) + weight_decay * theta
        v = alpha * v + (1 - alpha) * g**2
        if centered:
            gbar = alpha * gbar + (1 - alpha) * g
            denom = np.sqrt(v - gbar**2) + eps
        else:
            denom = np.sqrt(v) + eps
        if momentum:
            buf = momentum * buf + g / denom
            theta = theta - lr * buf
        else:
            theta = theta - lr * g / denom
        out.append(theta)
    return out


def ref_adagrad(
    lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, steps=STEPS
):
    theta, s, out = THETA0.copy(), initial_accumulator_value, []
    for t in range(1, steps + 1):
        g = quad_grad(theta) + weight_decay * theta
        s = s + g**2
        theta = theta - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
        out.append(theta)
    return out


CASES = [
    # id, class, kwargs, reference trajectory
    ("sgd-plain", SGD, {"lr": 0.1}, lambda: ref_sgd(0.1)),
    ("sgd-momentum", SGD, {"lr": 0.05, "momentum": 0.9}, lambda: ref_sgd(0.05, 0.9)),
    (
        "sgd-dampening",
        SGD,
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
        lambda: ref_sgd(0.05, 0.9, dampening=0.3),
    ),
    (
        "sgd-nesterov",
        SGD,
        {"lr": 0.05, "momentum": 0.8, "nesterov": True},
        lambda: ref_sgd(0.05, 0.8, nesterov=True),
    ),
    (
        "sgd-weight-decay",
        SGD,
        {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1},
        lambda: ref_sgd(0.1, 0.5, weight_decay=0.1),
    ),
    ("sgd-maximize", SGD, {"lr": 0.01, "maximize": True}, lambda: ref_sgd(0.01, maximize=True)),
    ("adam", Adam, {"lr": 0.1}, lambda: ref_adam(0.1)),
    (
        "adam-betas-l2",
        Adam,
        {"lr": 0.05, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1},
        lambda: ref_adam(0.05, (0.8, 0.9), 1e-6, 0.1),
    ),
    (
        "adam-amsgrad",
        Adam,
        {"lr": 0.1, "betas": (0.5, 0.6), "amsgrad": True},
        lambda: ref_adam(0.1, (0.5, 0.6), amsgrad=True),
    ),
    ("adam-maximize", Adam, {"lr": 0.1, "maximize": True}, lambda: ref_adam(0.1, maximize=True)),
    (
        "adamw",
        AdamW,
        {"lr": 0.1, "weight_decay": 0.3},
        lambda: ref_adam(0.1, weight_decay=0.3, decoupled=True),
    ),
    (
        "adamw-amsgrad",
        AdamW,
        {"lr": 0.1, "weight_decay": 0.3, "betas": (0.5, 0.6), "amsgrad": True},
        lambda: ref_adam(0.1, (0.5, 0.6), weight_decay=0.3, amsgrad=True, decoupled=True),
    ),
    ("rmsprop", RMSprop, {"lr": 0.01}, lambda: ref_rmsprop(0.01)),
    (
        "rmsprop-momentum",
        RMSprop,
        {"lr": 0.01, "alpha": 0.9, "momentum": 0.7},
        lambda: ref_rmsprop(0.01, 0.9, momentum=0.7),
    ),
    (
        "rmsprop-centered",
        RMSprop,
        {"lr": 0.01, "alpha": 0.9, "centered": True, "weight_decay": 0.05},
        lambda: ref_rmsprop(0.01, 0.9, weight_decay=0.05, centered=True),
    ),
    (
        "rmsprop-centered-momentum",
        RMSprop,
        {"lr": 0.01, "momentum": 0.5, "centered": True},
        lambda: ref_rmsprop(0.01, momentum=0.5, centered=True),
    ),
    ("adagrad", Adagrad, {"lr": 0.5}, lambda: ref_adagrad(0.5)),
    (
        "adagrad-decay-init-wd",
        Adagrad,
        {"lr": 0.5, "lr_decay": 0.1, "initial_accumulator_value": 0.2, "weight_decay": 0.05},
        lambda: ref_adagrad(0.5, 0.1, 0.05, 0.2),
    ),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,cls,kwargs,ref", CASES, ids=IDS)
def test_trajectory_matches_the_update_rule(name, cls, kwargs, ref, make_param, set_grad):
    got = run(cls, kwargs, make_param, set_grad)
    want = ref()
    for t, (g, w) in enumerate(zip(got, want), 1):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14, err_msg=f"{name}, step {t}")
    assert not np.allclose(got[-1], THETA0)  # it moved


def test_plain_sgd_is_the_seed_rule_step_by_step(make_param, set_grad):
    """theta <- theta - alpha * grad J(theta), exactly, one step at a time."""
    p = make_param(THETA0)
    opt = SGD([p], lr=0.1)
    theta = THETA0.copy()
    for _ in range(5):
        set_grad(p, quad_grad(theta))
        opt.step()
        theta = theta - 0.1 * quad_grad(theta)
        np.testing.assert_array_equal(p.data, theta)
    assert opt.state_dict()["state"] == {}  # plain SGD keeps no state


@pytest.mark.filterwarnings("ignore:tinygrad_lite. Cython kernels not built:RuntimeWarning")
def test_seed_gradient_descent_through_autograd(make_param):
    """The seed's linear regression: J = 1/(2m) sum (X w - y)^2, dJ/dw = 1/m X^T (X w - y)."""
    from tinygrad_lite.tensor import Tensor

    X = np.array([[1.0, 0.5], [1.0, -1.0], [1.0, 2.0], [1.0, 0.0]])
    y = np.array([2.0, -1.0, 5.0, 1.0])
    m, alpha = len(y), 0.1
    w = make_param([0.0, 0.0])
    opt = SGD([w], lr=alpha)
    theta = np.zeros(2)
    for _ in range(5):
        opt.zero_grad()
        loss = ((Tensor(X) @ w - Tensor(y)) ** 2).sum() / (2 * m)
        loss.backward()
        opt.step()
        theta = theta - alpha * X.T @ (X @ theta - y) / m
        np.testing.assert_allclose(w.data, theta, rtol=1e-13)


def test_sgd_momentum_pinned_numbers(make_param, set_grad):
    # 1-D, J = x^2 / 2 (grad x), x0 = 1, lr 0.1, momentum 0.9:
    # b1 = 1, x1 = 0.9; b2 = 0.9 * 1 + 0.9 = 1.8, x2 = 0.9 - 0.18 = 0.72
    p = make_param([1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    for want in (0.9, 0.72):
        set_grad(p, p.data.copy())
        opt.step()
        assert p.data[0] == pytest.approx(want, abs=1e-15)
    # Nesterov from the same start: d1 = g + 0.9 * b1 = 1.9, x1 = 0.81
    q = make_param([1.0])
    set_grad(q, [1.0])
    SGD([q], lr=0.1, momentum=0.9, nesterov=True).step()
    assert q.data[0] == pytest.approx(0.81, abs=1e-15)


def test_adam_bias_correction_makes_first_step_lr_sized(make_param, set_grad):
    # m1 = (1-b1) g, v1 = (1-b2) g^2 -> m_hat / sqrt(v_hat) = sign(g): |step| = lr (up to eps)
    for g in (1e-3, 1.0, 250.0, -7.0):
        p = make_param([0.0])
        set_grad(p, [g])
        Adam([p], lr=0.01).step()
        assert p.data[0] == pytest.approx(-0.01 * math.copysign(1, g), rel=1e-5)


def test_adamw_decoupled_decay_differs_from_adam_l2(make_param, set_grad):
    lr, wd = 0.1, 0.5
    # With zero gradient AdamW shrinks theta by exactly (1 - lr*wd) per step ...
    p = make_param([2.0, -4.0])
    opt = AdamW([p], lr=lr, weight_decay=wd)
    for _ in range(3):
        set_grad(p, [0.0, 0.0])
        opt.step()
    np.testing.assert_allclose(p.data, np.array([2.0, -4.0]) * (1 - lr * wd) ** 3, rtol=1e-12)
    # ... while Adam+L2 feeds wd*theta through m/sqrt(v): the first step is lr-sized per coordinate.
    q = make_param([2.0, -4.0])
    set_grad(q, [0.0, 0.0])
    Adam([q], lr=lr, weight_decay=wd).step()
    np.testing.assert_allclose(q.data, [2.0 - lr, -4.0 + lr], rtol=1e-6)
    # On the quadratic the two trajectories differ, and AdamW(wd=0) is plain Adam.
    t_w = run(AdamW, {"lr": 0.1, "weight_decay": 0.3}, make_param, set_grad)
    t_l2 = run(Adam, {"lr": 0.1, "weight_decay": 0.3}, make_param, set_grad)
    assert np.abs(t_w[-1] - t_l2[-1]).max() > 1e-3
    np.testing.assert_array_equal(
        run(AdamW, {"lr": 0.1, "weight_decay": 0}, make_param, set_grad)[-1],
        run(Adam, {"lr": 0.1}, make_param, set_grad)[-1],
    )


def test_amsgrad_changes_the_path_when_v_shrinks(make_param, set_grad):
    # gradients 10 then 0.1: v shrinks, amsgrad keeps the max, so the later steps are smaller
    def go(amsgrad):
        p = make_param([0.0])
        opt = Adam([p], lr=0.1, betas=(0.0, 0.5), amsgrad=amsgrad)
        for g in (10.0, 0.1, 0.1):
            set_grad(p, [g])
            opt.step()
        return p.data[0]

    assert abs(go(True)) < abs(go(False))


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop, Adagrad])
def test_minimizes_the_quadratic(cls, make_param, set_grad):
    kwargs = {
        SGD: {"lr": 0.1, "momentum": 0.9},
        Adam: {"lr": 0.05},
        AdamW: {"lr": 0.05, "weight_decay": 0},
        RMSprop: {"lr": 0.01},
        Adagrad: {"lr": 0.5},
    }[cls]
    final = run(cls, kwargs, make_param, set_grad, steps=600)[-1]
    np.testing.assert_allclose(final, np.linalg.solve(A, B), atol=5e-3)


# ------------------------------------------------------------------------ dtypes and skips ---


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,cls,kwargs,ref", CASES, ids=IDS)
def test_dtype_is_kept(dtype, name, cls, kwargs, ref, make_param, set_grad):
    p = make_param(THETA0, dtype)
    data_before = p.data
    opt = cls([p], **kwargs)
    for _ in range(3):
        set_grad(p, quad_grad(p.data.astype(np.float64)))
        opt.step()
    assert p.data is data_before  # updated in place
    assert p.data.dtype == dtype
    for key, v in opt.state[p].items():
        if isinstance(v, np.ndarray):
            assert v.dtype == dtype, key
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p.data, ref()[2], rtol=tol, atol=tol)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop, Adagrad])
def test_params_without_grad_are_skipped(cls, make_param, set_grad):
    p, q = make_param([1.0, 2.0]), make_param([3.0])
    opt = cls([p, q], lr=0.1)
    set_grad(p, [1.0, 1.0])
    opt.step()
    assert q.data[0] == 3.0 and q not in opt.state
    assert not np.array_equal(p.data, [1.0, 2.0])


def test_zero_grad(make_param, set_grad):
    p = make_param([1.0, 2.0])
    opt = SGD([p], lr=0.1)
    set_grad(p, [3.0, 4.0])
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and np.array_equal(p.grad.data, [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None
    opt.zero_grad()  # no gradient: nothing to do


def test_step_calls_the_closure_and_returns_its_loss(make_param, set_grad):
    p = make_param([2.0])
    opt = SGD([p], lr=0.25)

    def closure():
        set_grad(p, 2 * p.data)  # J = x^2
        return float(p.data[0] ** 2)

    assert opt.step(closure) == 4.0
    assert p.data[0] == 1.0
    assert opt.step() is None


def test_wrong_gradient_shape_raises(make_param, set_grad):
    p = make_param([1.0, 2.0])
    set_grad(p, [1.0, 2.0, 3.0])
    with pytest.raises(ShapeError, match=r"SGD.step: gradient shape .*\(3,\).*\(2,\)"):
        SGD([p], lr=0.1).step()


# ------------------------------------------------------------------------------ param groups ---


def test_param_groups_have_their_own_lr(make_param, set_grad):
    p, q = make_param([1.0]), make_param([1.0])
    opt = SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.0  # filled from the defaults
    set_grad(p, [1.0])
    set_grad(q, [1.0])
    opt.step()
    assert p.data[0] == pytest.approx(0.9) and q.data[0] == pytest.approx(0.5)


def test_param_group_hyperparameters_are_used_per_group(make_param, set_grad):
    # momentum only in the second group; compare each with a single-group optimizer
    p, q = make_param(THETA0), make_param(THETA0)
    opt = SGD([{"params": p}, {"params": [q], "momentum": 0.9, "nesterov": True}], lr=0.05)
    for _ in range(STEPS):
        set_grad(p, quad_grad(p.data))
        set_grad(q, quad_grad(q.data))
        opt.step()
    np.testing.assert_allclose(p.data, ref_sgd(0.05)[-1], rtol=1e-12)
    np.testing.assert_allclose(q.data, ref_sgd(0.05, 0.9, nesterov=True)[-1], rtol=1e-12)


def test_add_param_group(make_param, set_grad):
    p, q = make_param([1.0]), make_param([1.0])
    opt = Adam([p], lr=0.1)
    opt.add_param_group({"params": [q], "lr": 0.01, "betas": (0.5, 0.5)})
    assert opt.param_groups[1]["eps"] == 1e-8 and opt.param_groups[1]["betas"] == (0.5, 0.5)
    set_grad(p, [1.0])
    set_grad(q, [1.0])
    opt.step()
    assert p.data[0] == pytest.approx(0.9, rel=1e-6) and q.data[0] == pytest.approx(0.99, rel=1e-6)
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [p]})
    with pytest.raises(ValueError, match="'params'"):
        opt.add_param_group({"lr": 0.1})
    with pytest.raises(ValueError, match="Adam: invalid lr"):
        opt.add_param_group({"params": [make_param([0.0])], "lr": -1.0})
    assert len(opt.param_groups) == 2


def test_accepts_any_iterable_of_parameters(make_param, set_grad):
    ps = [make_param([1.0]), make_param([2.0])]
    opt = SGD((p for p in ps), lr=0.5)  # a generator, like module.parameters()
    assert len(opt.param_groups[0]["params"]) == 2
    for p in ps:
        set_grad(p, [1.0])
    opt.step()
    assert [p.data[0] for p in ps] == [0.5, 1.5]


def test_bad_param_collections(make_param):
    p = make_param([1.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="set"):
        SGD({p}, lr=0.1)
    with pytest.raises(TypeError, match="wrap it in a list"):
        SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="got ndarray"):
        SGD([np.zeros(2)], lr=0.1)


# ------------------------------------------------------------------------------ state_dict ---


@pytest.mark.parametrize("name,cls,kwargs,ref", CASES, ids=IDS)
def test_state_dict_round_trip_resumes_identically(name, cls, kwargs, ref, make_param, set_grad):
    def two_groups():
        p, q = make_param(THETA0), make_param(THETA0[:2] * 2)
        return p, q, cls([{"params": [p]}, {"params": [q], "lr": kwargs["lr"] / 2}], **kwargs)

    def steps(opt, p, q, n):
        for _ in range(n):
            set_grad(p, quad_grad(p.data))
            set_grad(q, 2 * q.data - 1)
            opt.step()

    p, q, opt = two_groups()
    steps(opt, p, q, 3)
    sd = opt.state_dict()
    # plain data: indices as keys, NumPy copies, param indices in the groups
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert set(sd["state"]) <= {0, 1}
    for st in sd["state"].values():
        for key, v in st.items():
            assert isinstance(v, (np.ndarray, int, float)), (key, type(v))
            if isinstance(v, np.ndarray):
                assert all(v is not w for w in opt.state[p].values())

    p2, q2, opt2 = two_groups()
    p2.data[...] = p.data
    q2.data[...] = q.data
    opt2.param_groups[1]["lr"] = 123.0  # restored from the checkpoint
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == kwargs["lr"] / 2
    steps(opt, p, q, 3)
    steps(opt2, p2, q2, 3)
    np.testing.assert_array_equal(p2.data, p.data)
    np.testing.assert_array_equal(q2.data, q.data)
    # the checkpoint was a copy: the live optimizers did not write into it
    p3, q3, opt3 = two_groups()
    opt3.load_state_dict(sd)
    for idx, st in sd["state"].items():
        for key, v in opt3.state[[p3, q3][idx]].items():
            if isinstance(v, np.ndarray):
                assert v is not st[key]


def test_load_state_dict_mismatch_errors(make_param, set_grad):
    p, q = make_param([1.0, 2.0]), make_param([3.0])
    opt = Adam([p, q], lr=0.1)
    set_grad(p, [1.0, 1.0])
    set_grad(q, [1.0])
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="number of param groups differs, got 1 saved and 2 here"):
        Adam([{"params": [p]}, {"params": [q]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="param group 0 has a different size, got 2 saved"):
        Adam([p], lr=0.1).load_state_dict(sd)
    with pytest.raises(
        ShapeError, match=r"state 'exp_avg' does not fit .*got \(2,\).*shape \(1,\)"
    ):
        Adam([q, p], lr=0.1).load_state_dict(sd)


def test_load_state_dict_casts_to_param_dtype(make_param, set_grad):
    p = make_param([1.0, 2.0], np.float64)
    opt = RMSprop([p], lr=0.1, momentum=0.5)
    set_grad(p, [1.0, 1.0])
    opt.step()
    p32 = make_param([1.0, 2.0], np.float32)
    opt32 = RMSprop([p32], lr=0.1, momentum=0.5)
    opt32.load_state_dict(opt.state_dict())
    assert all(
        v.dtype == np.float32 for v in opt32.state[p32].values() if isinstance(v, np.ndarray)
    )
    assert opt32.state[p32]["step"] == 1


# ------------------------------------------------------------------------------ validation ---

BAD = [
    (SGD, {"lr": 0.0}, "SGD: invalid lr, got lr=0.0"),
    (SGD, {"lr": -0.1}, "SGD: invalid lr, got lr=-0.1"),
    (SGD, {"lr": float("nan")}, "SGD: invalid lr, got lr=nan"),
    (SGD, {"lr": float("inf")}, "SGD: invalid lr, got lr=inf"),
    (SGD, {"lr": "0.1"}, "SGD: invalid lr, got lr='0.1'"),
    (SGD, {"lr": 0.1, "momentum": -0.5}, "SGD: invalid momentum, got momentum=-0.5"),
    (SGD, {"lr": 0.1, "weight_decay": -1}, "SGD: invalid weight_decay, got weight_decay=-1"),
    (SGD, {"lr": 0.1, "nesterov": True}, "SGD: invalid nesterov.*momentum > 0 and dampening = 0"),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, "dampening=0.1"),
    (Adam, {"lr": 0.1, "betas": (1.0, 0.999)}, r"Adam: invalid betas\[0\], got betas\[0\]=1.0"),
    (Adam, {"lr": 0.1, "betas": (0.9, -0.1)}, r"Adam: invalid betas\[1\], got betas\[1\]=-0.1"),
    (Adam, {"lr": 0.1, "betas": 0.9}, "Adam: invalid betas"),
    (Adam, {"lr": 0.1, "eps": -1e-8}, "Adam: invalid eps, got eps=-1e-08"),
    (AdamW, {"lr": 0.1, "weight_decay": -0.01}, "AdamW: invalid weight_decay"),
    (AdamW, {"lr": -1.0}, "AdamW: invalid lr"),
    (RMSprop, {"lr": 0.1, "alpha": 1.5}, "RMSprop: invalid alpha, got alpha=1.5"),
    (RMSprop, {"lr": 0.1, "momentum": -1}, "RMSprop: invalid momentum"),
    (RMSprop, {"lr": 0.1, "eps": -1}, "RMSprop: invalid eps"),
    (Adagrad, {"lr": 0.1, "lr_decay": -1}, "Adagrad: invalid lr_decay"),
    (
        Adagrad,
        {"lr": 0.1, "initial_accumulator_value": -1},
        "Adagrad: invalid initial_accumulator_value",
    ),
    (Adagrad, {"lr": 0.1, "eps": -1.0}, "Adagrad: invalid eps"),
]


@pytest.mark.parametrize(
    "cls,kwargs,msg", BAD, ids=[m.split(",")[0] + f"-{i}" for i, (_, _, m) in enumerate(BAD)]
)
def test_invalid_hyperparameters_raise(cls, kwargs, msg, make_param):
    with pytest.raises(ValueError, match=msg):
        cls([make_param([1.0])], **kwargs)


def test_defaults_match_pytorch(make_param):
    p = [make_param([1.0])]
    assert SGD(p).defaults == {
        "lr": 1e-3,
        "momentum": 0,
        "dampening": 0,
        "weight_decay": 0,
        "nesterov": False,
        "maximize": False,
    }
    d = Adam(p).defaults
    assert (d["lr"], d["betas"], d["eps"], d["weight_decay"], d["amsgrad"]) == (
        1e-3,
        (0.9, 0.999),
        1e-8,
        0,
        False,
    )
    assert AdamW(p).defaults["weight_decay"] == 1e-2
    d = RMSprop(p).defaults
    assert (d["lr"], d["alpha"], d["eps"], d["momentum"], d["centered"]) == (
        1e-2,
        0.99,
        1e-8,
        0,
        False,
    )
    d = Adagrad(p).defaults
    assert (d["lr"], d["lr_decay"], d["initial_accumulator_value"], d["eps"]) == (1e-2, 0, 0, 1e-10)
    assert isinstance(SGD(p), Optimizer) and "lr: 0.001" in repr(SGD(p))


# --------------------------------------------------------------------------- against torch ---

TORCH_NAMES = {SGD: "SGD", Adam: "Adam", AdamW: "AdamW", RMSprop: "RMSprop", Adagrad: "Adagrad"}


@pytest.mark.parametrize("name,cls,kwargs,ref", CASES, ids=IDS)
def test_matches_torch(name, cls, kwargs, ref, make_param, set_grad, torch):
    steps = 10
    got = run(cls, kwargs, make_param, set_grad, steps=steps)
    w = torch.tensor(THETA0.copy(), dtype=torch.float64, requires_grad=True)
    opt = getattr(torch.optim, TORCH_NAMES[cls])([w], **kwargs)
    At, Bt = torch.tensor(A), torch.tensor(B)
    for t in range(steps):
        opt.zero_grad()
        w.grad = At @ w.detach() - Bt
        opt.step()
        np.testing.assert_allclose(
            got[t], w.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{name}, step {t + 1}"
        )


@pytest.mark.parametrize("name,cls,kwargs,ref", CASES[::3], ids=IDS[::3])
def test_state_dict_loads_into_torch_shape(name, cls, kwargs, ref, make_param, set_grad, torch):
    """Our checkpoint has torch's layout: torch accepts its state after converting the arrays."""
    p = make_param(THETA0)
    opt = cls([p], **kwargs)
    for _ in range(2):
        set_grad(p, quad_grad(p.data))
        opt.step()
    sd = opt.state_dict()
    w = torch.tensor(p.data.copy(), requires_grad=True)
    topt = getattr(torch.optim, TORCH_NAMES[cls])([w], **kwargs)
    tsd = {
        "state": {i: {k: torch.tensor(v) for k, v in st.items()} for i, st in sd["state"].items()},
        "param_groups": [
            dict(topt.state_dict()["param_groups"][0], **{k: v for k, v in g.items()})
            for g in sd["param_groups"]
        ],
    }
    topt.load_state_dict(tsd)
    for _ in range(3):
        set_grad(p, quad_grad(p.data))
        opt.step()
        w.grad = torch.tensor(quad_grad(w.detach().numpy()))
        topt.step()
    np.testing.assert_allclose(p.data, w.detach().numpy(), rtol=1e-10)


@pytest.mark.gpu
def test_cupy_arrays_are_updated_on_the_device(make_param):
    cp = pytest.importorskip("cupy", reason="CuPy is not installed")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no CUDA device: {e}")
    from tinygrad_lite.nn.utils import clip_grad_norm_, clip_grad_value_
    from tinygrad_lite.tensor import Tensor

    for name, cls, kwargs, ref in CASES:
        p = make_param(THETA0)
        p.data = cp.asarray(THETA0)  # the engine contract: .data is the (device) array
        opt = cls([p], **kwargs)
        for _ in range(STEPS):
            p.grad = Tensor(cp.asarray(A) @ p.data - cp.asarray(B), device="cuda")
            opt.step()
        assert isinstance(p.data, cp.ndarray), name
        assert all(isinstance(v, cp.ndarray) for v in opt.state[p].values() if hasattr(v, "shape"))
        np.testing.assert_allclose(cp.asnumpy(p.data), ref()[-1], rtol=1e-10, err_msg=name)
        sd = opt.state_dict()  # checkpoints hold NumPy arrays, loading moves them back
        assert all(
            isinstance(v, np.ndarray)
            for st in sd["state"].values()
            for v in st.values()
            if hasattr(v, "shape")
        )
        opt.load_state_dict(sd)
        assert all(isinstance(v, cp.ndarray) for v in opt.state[p].values() if hasattr(v, "shape"))
    p.grad = Tensor(cp.asarray([3.0, -4.0, 0.0]), device="cuda")
    assert clip_grad_norm_([p], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(cp.asnumpy(p.grad.data), [0.6, -0.8, 0.0], rtol=1e-6)
    clip_grad_value_([p], 0.7)
    np.testing.assert_allclose(cp.asnumpy(p.grad.data), [0.6, -0.7, 0.0], rtol=1e-6)
