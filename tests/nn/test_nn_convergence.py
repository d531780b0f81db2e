"""Convergence: small models learn small problems end to end (Module + losses + optim), with
fixed seeds and asserted final numbers."""

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn, optim
from tinygrad_lite.nn import functional as F


def fit(model, loss_fn, steps, lr, batches):
    """Adam for ``steps`` steps over ``batches()`` (a generator of (x, y)); returns last loss."""
    opt = optim.Adam(model.parameters(), lr=lr)
    it = batches()
    for _ in range(steps):
        x, y = next(it)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    return float(loss.item())


def full_batch(x, y):
    def gen():
        while True:
            yield x, y

    return gen


def accuracy_binary(model, x, y):
    model.eval()
    with tl.no_grad():
        return float(((model(x).numpy() > 0) == (y.numpy() > 0.5)).mean())


def test_mlp_learns_xor():
    tl.manual_seed(0)
    x = tl.Tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = tl.Tensor([[0.0], [1.0], [1.0], [0.0]])
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    loss = fit(model, F.binary_cross_entropy_with_logits, 300, 0.05, full_batch(x, y))
    assert loss < 0.02
    assert accuracy_binary(model, x, y) == 1.0


def two_spirals(n, seed):
    r = np.random.default_rng(seed)
    t = np.sqrt(r.random(n)) * 3 * np.pi  # angle, denser near the centre
    arm = np.stack([t * np.cos(t), t * np.sin(t)], 1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + r.normal(0, 0.01, (2 * n, 2))
    y = np.concatenate([np.zeros(n), np.ones(n)])[:, None]
    return tl.Tensor(x.astype(np.float32)), tl.Tensor(y.astype(np.float32))


def test_mlp_learns_two_spirals():
    tl.manual_seed(0)
    x, y = two_spirals(60, seed=0)
    model = nn.Sequential(
        nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)
    )
    loss = fit(model, F.binary_cross_entropy_with_logits, 500, 0.01, full_batch(x, y))
    assert loss < 0.1
    assert accuracy_binary(model, x, y) >= 0.98
    xt, yt = two_spirals(60, seed=1)  # it learned the spiral, not the points
    assert accuracy_binary(model, xt, yt) >= 0.9


def test_small_cnn_overfits_tiny_image_set():
    from tinygrad_lite.data.datasets import load_digits

    X, Y = load_digits(return_X_y=True)
    x = tl.Tensor((X[:64] / 16.0).reshape(64, 1, 8, 8).astype(np.float32))
    y = Y[:64].astype(np.int64)
    tl.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding="same"),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    loss = fit(model, F.cross_entropy, 80, 0.03, full_batch(x, y))
    assert loss < 0.1
    model.eval()
    with tl.no_grad():
        acc = (model(x).numpy().argmax(1) == y).mean()
    assert acc == 1.0


class Adder(nn.Module):
    """LSTM reads (value, marker) pairs; a linear head reads the last hidden state."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, 16, batch_first=True)
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def adding_batch(r, batch, steps):
    """The adding problem: the target is the sum of the two values whose marker is 1."""
    vals = r.random((batch, steps))
    marks = np.zeros((batch, steps))
    for i in range(batch):
        marks[i, r.choice(steps, 2, replace=False)] = 1
    x = np.stack([vals, marks], axis=2).astype(np.float32)
    y = (vals * marks).sum(1, keepdims=True).astype(np.float32)
    return tl.Tensor(x), tl.Tensor(y)


def test_lstm_learns_to_add_two_numbers_of_a_sequence():
    tl.manual_seed(0)
    r = np.random.default_rng(0)
    model = Adder()

    def batches():
        while True:
            yield adding_batch(r, 32, 6)

    fit(model, F.mse_loss, 350, 0.01, batches)
    xt, yt = adding_batch(np.random.default_rng(1), 256, 6)
    with tl.no_grad():
        mse = F.mse_loss(model(xt), yt).item()
    baseline = float(yt.numpy().var())  # predicting the mean: ~1/6
    assert baseline > 0.1
    assert mse < 0.015, (mse, baseline)  # > 10x better than the mean
