"""Losses: values pinned to hand-computed numbers, gradchecks, torch agreement, and the errors
(shape mismatch, bad labels) that keep silent bugs out."""

import math

import numpy as np
import pytest
from nn_helpers import dbl, rng

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.errors import ShapeError
from tinygrad_lite.nn import functional as F
from tinygrad_lite.testing import gradcheck

H = tl.Tensor([1.0, 2.0, 3.0])
Y0 = tl.Tensor([0.0, 0.0, 0.0])


def close(t, v, tol=1e-5):
    assert abs(float(t.item()) - v) < tol, (float(t.item()), v)


# ------------------------------------------------------------------ pinned values ---


def test_mse_both_conventions_pinned():
    close(F.mse_loss(H, Y0), 14 / 3)  # mean: 4.6667
    close(F.mse_loss(H, Y0, half=True), 7 / 3)  # the seed's 1/(2m): 2.3333
    close(F.half_mse(H, 0.0), 2.3333333)  # scalar target is allowed
    close(F.mse_loss(H, Y0, reduction="sum"), 14.0)
    np.testing.assert_allclose(F.mse_loss(H, Y0, reduction="none").numpy(), [1, 4, 9])
    close(nn.MSELoss()(H, Y0), 4.6666667)
    close(nn.MSELoss(half=True)(H, Y0), 2.3333333)


def test_seed_gradient_of_half_mse_is_mean_error():
    h = dbl([1.0, 2.0, 3.0])
    F.half_mse(h, np.zeros(3)).backward()
    np.testing.assert_allclose(h.grad.numpy(), np.array([1, 2, 3]) / 3)  # (h - y) / m


def test_l1_huber_smooth_l1_pinned():
    close(F.l1_loss(H, Y0), 2.0)
    close(F.mae(H, Y0), 2.0)
    d = tl.Tensor([0.5, 2.0, -3.0])
    close(F.huber_loss(d, tl.zeros(3)), (0.125 + 1.5 + 2.5) / 3)
    close(F.huber_loss(d, tl.zeros(3), delta=2.0), (0.125 + 2.0 + 4.0) / 3)
    close(F.smooth_l1_loss(d, tl.zeros(3), beta=2.0), (0.125 + 2.0 + 4.0) / 6)


def test_binary_cross_entropy_pinned_and_clipped():
    close(
        F.binary_cross_entropy(tl.Tensor([0.9, 0.2]), tl.Tensor([1.0, 0.0])),
        -(math.log(0.9) + math.log(0.8)) / 2,
    )
    # h = 0 for y = 1 would be infinite; clipped to 1e-7 it costs -log(1e-7) = 16.118
    close(F.binary_cross_entropy(dbl([0.0, 1.0]), dbl([1.0, 0.0])), -math.log(1e-7), 1e-4)
    close(
        F.binary_cross_entropy_with_logits(tl.Tensor([0.0, 2.0]), tl.Tensor([1.0, 0.0])),
        (math.log(2) + math.log1p(math.exp(2))) / 2,
    )
    close(
        F.binary_cross_entropy_with_logits(tl.Tensor([0.0]), tl.Tensor([1.0]), pos_weight=3.0),
        3 * math.log(2),
    )
    big = F.binary_cross_entropy_with_logits(dbl([1000.0, -1000.0]), dbl([0.0, 1.0]))
    close(big, 1000.0)  # stable: no inf, no nan


def test_cross_entropy_pinned():
    close(
        F.cross_entropy(tl.Tensor([[2.0, 0.0, 0.0]]), [0]), -math.log(math.e**2 / (math.e**2 + 2))
    )
    z = tl.Tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    lse = math.log(math.e + math.e**2 + math.e**3)
    l_2, l_0 = lse - 3, lse - 1  # 0.4076, 2.4076
    close(F.cross_entropy(z, [2, 0]), (l_2 + l_0) / 2)
    close(F.cross_entropy(z, [2, 0], reduction="sum"), l_2 + l_0)
    np.testing.assert_allclose(
        F.cross_entropy(z, [2, 0], reduction="none").numpy(), [l_2, l_0], rtol=1e-6
    )
    close(F.cross_entropy(z, [2, 0], weight=[2.0, 1.0, 1.0]), (l_2 + 2 * l_0) / 3)
    mean_all = (3 * lse - 6) / 3
    close(F.cross_entropy(z[:1], [2], label_smoothing=0.1), 0.9 * l_2 + 0.1 * mean_all)
    close(F.cross_entropy(z, [2, -100]), l_2)  # ignore_index
    probs = tl.Tensor([[0.0, 0.0, 1.0], [0.5, 0.0, 0.5]])
    close(F.cross_entropy(z, probs), (l_2 + 0.5 * l_0 + 0.5 * l_2) / 2)
    close(nn.CrossEntropyLoss()(z, tl.Tensor(np.array([2, 0]))), (l_2 + l_0) / 2)


def test_nll_and_keras_losses_pinned():
    p = tl.Tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
    want = -(math.log(0.5) + math.log(0.8)) / 2
    close(F.nll_loss(p.log(), [0, 1]), want)
    close(F.sparse_categorical_crossentropy([0, 1], p), want)
    close(F.sparse_categorical_crossentropy(np.array([[0.0], [1.0]]), p), want)  # (N, 1) floats
    close(F.categorical_crossentropy(np.eye(3)[[0, 1]], p), want)
    z = tl.Tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 2.0]])
    close(
        F.sparse_categorical_crossentropy([2, 0], z, from_logits=True),
        F.cross_entropy(z, [2, 0]).item(),
    )
    close(
        F.categorical_crossentropy(np.eye(3)[[2, 0]], z, from_logits=True),
        F.cross_entropy(z, [2, 0]).item(),
    )
    # Keras renormalizes probabilities that do not sum to 1
    close(F.sparse_categorical_crossentropy([0], tl.Tensor([[1.0, 1.0]])), math.log(2))
    close(
        F.binary_crossentropy(tl.Tensor([1.0, 0.0]), tl.Tensor([0.9, 0.2])),
        -(math.log(0.9) + math.log(0.8)) / 2,
    )


def test_regularization_helpers_pinned():
    lin = nn.Linear(2, 1)
    lin.load_state_dict({"weight": np.array([[1.0, -2.0]]), "bias": np.array([3.0])})
    close(F.l1_penalty(lin, 0.1), 0.6)
    close(F.l2_penalty(lin, 0.1), 1.4)
    close(F.l2_penalty([lin.weight], 0.1, half=True), 0.25)
    F.l2_penalty([lin.weight], 0.1, half=True).backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), [[0.1, -0.2]], rtol=1e-6)  # lam * w


# ------------------------------------------------------------------ gradients ---

R = rng(7)
PRED = R.standard_normal((4, 3))
TARGET = R.standard_normal((4, 3))
PROBS = R.uniform(0.1, 0.9, (4, 3))
BIN = (R.random((4, 3)) > 0.5).astype(float)
LABELS = np.array([0, 2, 1, 2])
SOFT = R.dirichlet(np.ones(3), 4)


@pytest.mark.parametrize(
    "name,fn,x",
    [
        ("mse", lambda h: F.mse_loss(h, TARGET), PRED),
        ("half_mse", lambda h: F.half_mse(h, TARGET), PRED),
        ("l1", lambda h: F.l1_loss(h, TARGET), PRED),
        ("huber", lambda h: F.huber_loss(h, TARGET, reduction="none", delta=0.7), PRED),
        ("bce", lambda h: F.binary_cross_entropy(h, BIN), PROBS),
        ("bce_logits", lambda z: F.binary_cross_entropy_with_logits(z, BIN, pos_weight=2.0), PRED),
        (
            "ce",
            lambda z: F.cross_entropy(z, LABELS, weight=[1.0, 2.0, 0.5], label_smoothing=0.2),
            PRED,
        ),
        ("ce_none", lambda z: F.cross_entropy(z, LABELS, reduction="none"), PRED),
        ("ce_soft", lambda z: F.cross_entropy(z, SOFT, label_smoothing=0.1), PRED),
        ("nll", lambda z: F.nll_loss(z.log_softmax(1), LABELS), PRED),
        ("sparse_cce", lambda p: F.sparse_categorical_crossentropy(LABELS, p), PROBS),
        ("sparse_cce_logits", lambda z: F.sparse_categorical_crossentropy(LABELS, z, True), PRED),
        ("cce", lambda p: F.categorical_crossentropy(SOFT, p), PROBS),
        ("l2", lambda w: F.l2_penalty([w], 0.3), PRED),
    ],
)
def test_loss_gradcheck(name, fn, x):
    gradcheck(fn, [dbl(x)], op=name)


def test_cross_entropy_spatial_matches_flattened():
    z = dbl(rng().standard_normal((2, 3, 2, 2)))
    y = rng().integers(0, 3, (2, 2, 2))
    flat = F.cross_entropy(z.permute(0, 2, 3, 1).reshape(-1, 3), y.reshape(-1))
    close(F.cross_entropy(z, y), flat.item(), 1e-12)
    gradcheck(lambda z: F.cross_entropy(z, y, reduction="none"), [z])


# ------------------------------------------------------------------ errors ---


def test_shape_mismatch_raises_instead_of_broadcasting():
    with pytest.raises(ShapeError, match=r"\(4, 1\).*\(4,\).*reshape"):
        F.mse_loss(tl.zeros(4, 1), tl.zeros(4))
    with pytest.raises(ShapeError):
        F.binary_cross_entropy(tl.full((3, 1), 0.5), tl.zeros(3))
    with pytest.raises(ShapeError, match="class axis"):
        F.cross_entropy(tl.zeros(4, 3), [0, 1])
    with pytest.raises(ShapeError):
        F.sparse_categorical_crossentropy([0, 1, 2], tl.full((2, 3), 1 / 3))


def test_bad_labels_raise_with_values():
    z = tl.zeros(3, 3)
    with pytest.raises(ValueError, match=r"\[0, 3\), got \[3, 7\]"):
        F.cross_entropy(z, [7, 3, 0])
    with pytest.raises(ValueError, match=r"got \[-1\]"):
        F.nll_loss(z, [0, -1, 1])
    with pytest.raises(ValueError, match=r"integers, got \[0.5\]"):
        F.cross_entropy(z, np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="integers"):
        F.sparse_categorical_crossentropy(np.array([0.2, 1.0, 2.0]), tl.full((3, 3), 1 / 3))


def test_logits_passed_as_probabilities_are_caught():
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits"):
        F.binary_cross_entropy(tl.Tensor([2.0, -1.0]), tl.Tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="from_logits=True"):
        F.sparse_categorical_crossentropy([0], tl.Tensor([[3.0, -1.0]]))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(H, Y0, reduction="avg")


# ------------------------------------------------------------------ PyTorch agreement ---


def test_losses_match_torch(torch):
    tF = torch.nn.functional
    z, y = PRED, LABELS
    tz = torch.tensor(z)
    w = [1.0, 2.0, 0.5]
    yi = np.array([0, 2, -100, 1])
    cases = [
        (
            F.cross_entropy(dbl(z), y, weight=w, label_smoothing=0.2),
            tF.cross_entropy(
                tz,
                torch.tensor(y),
                weight=torch.tensor(w, dtype=torch.float64),
                label_smoothing=0.2,
            ),
        ),
        (
            F.cross_entropy(dbl(z), yi, weight=w, label_smoothing=0.1),
            tF.cross_entropy(
                tz,
                torch.tensor(yi),
                weight=torch.tensor(w, dtype=torch.float64),
                label_smoothing=0.1,
            ),
        ),
        (
            F.cross_entropy(dbl(z), SOFT, weight=w, label_smoothing=0.3),
            tF.cross_entropy(
                tz,
                torch.tensor(SOFT),
                weight=torch.tensor(w, dtype=torch.float64),
                label_smoothing=0.3,
            ),
        ),
        (F.nll_loss(dbl(z), y, reduction="sum"), tF.nll_loss(tz, torch.tensor(y), reduction="sum")),
        (
            F.binary_cross_entropy_with_logits(dbl(z), BIN, pos_weight=[1.0, 2.0, 3.0]),
            tF.binary_cross_entropy_with_logits(
                tz, torch.tensor(BIN), pos_weight=torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
            ),
        ),
        (
            F.binary_cross_entropy(dbl(PROBS), BIN),
            tF.binary_cross_entropy(torch.tensor(PROBS), torch.tensor(BIN)),
        ),
        (
            F.huber_loss(dbl(z), TARGET, delta=0.5),
            tF.huber_loss(tz, torch.tensor(TARGET), delta=0.5),
        ),
        (
            F.smooth_l1_loss(dbl(z), TARGET, beta=0.5),
            tF.smooth_l1_loss(tz, torch.tensor(TARGET), beta=0.5),
        ),
    ]
    for ours, theirs in cases:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10)
