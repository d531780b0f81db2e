"""nn.init: each initializer's distribution (bounds, standard deviation), seeding, orthogonality."""

import math

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import init


def big(shape=(256, 128, 3, 3)):
    return nn.Parameter(np.zeros(shape, dtype=np.float32))


def test_constant_fills():
    t = big((3, 4))
    assert np.all(init.ones_(t).numpy() == 1) and t.dtype == np.float32
    assert np.all(init.zeros_(t).numpy() == 0)
    assert np.all(init.constant_(t, 0.5).numpy() == 0.5)


@pytest.mark.parametrize(
    "fn,std,bound",
    [
        (lambda t: init.uniform_(t, -0.3, 0.3), 0.3 / math.sqrt(3), 0.3),
        (lambda t: init.normal_(t, 0.0, 0.02), 0.02, None),
        (
            lambda t: init.xavier_uniform_(t),
            math.sqrt(2 / (128 * 9 + 256 * 9)),
            math.sqrt(6 / (128 * 9 + 256 * 9)),
        ),
        (lambda t: init.xavier_normal_(t, gain=2.0), 2 * math.sqrt(2 / (128 * 9 + 256 * 9)), None),
        (
            lambda t: init.kaiming_uniform_(t, nonlinearity="relu"),
            math.sqrt(2 / (128 * 9)),
            math.sqrt(6 / (128 * 9)),
        ),
        (
            lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
            math.sqrt(2 / (256 * 9)),
            None,
        ),
        (lambda t: init.he_normal_(t), math.sqrt(2 / (128 * 9)), None),
        (lambda t: init.glorot_uniform_(t), math.sqrt(2 / (128 * 9 + 256 * 9)), None),
        (
            lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)),
            1 / math.sqrt(128 * 9) / math.sqrt(3),
            1 / math.sqrt(128 * 9),
        ),  # PyTorch's Linear/Conv default
    ],
)
def test_distribution_std_and_bounds(fn, std, bound):
    tl.manual_seed(0)
    t = fn(big())
    a = t.numpy()
    assert a.dtype == np.float32 and a.shape == (256, 128, 3, 3)
    assert abs(a.std() - std) / std < 0.02 and abs(a.mean()) < 0.02 * std + 1e-4
    if bound is not None:
        assert np.abs(a).max() <= bound * (1 + 1e-6) and np.abs(a).max() > 0.99 * bound


def test_seeded_reproducibility():
    tl.manual_seed(42)
    a = nn.Linear(5, 4).weight.numpy().copy()
    tl.manual_seed(42)
    b = nn.Linear(5, 4).weight.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, nn.Linear(5, 4).weight.numpy())


@pytest.mark.parametrize("shape", [(4, 9), (9, 4), (6, 2, 3, 3)])
def test_orthogonal(shape):
    tl.manual_seed(1)
    w = init.orthogonal_(big(shape), gain=2.0).numpy().reshape(shape[0], -1).astype(np.float64)
    small = min(w.shape)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    np.testing.assert_allclose(gram, 4 * np.eye(small), atol=1e-5)


def test_gains_fans_and_errors():
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_fan_in_and_fan_out(big((8, 4, 3, 3))) == (36, 72)
    with pytest.raises(ValueError, match="at least 2"):
        init.xavier_uniform_(big((5,)))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_normal_(big((3, 3)), mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain("swish")


def test_reinitialize_with_apply():
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def reinit(m):
        if isinstance(m, nn.Linear):
            init.zeros_(m.bias)
            init.xavier_uniform_(m.weight)

    model.apply(reinit)
    assert all(np.all(m.bias.numpy() == 0) for m in model if isinstance(m, nn.Linear))
