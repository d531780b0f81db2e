"""The seed's three FAQ problems, measured: overfitting (dropout and L2 shrink the gap), vanishing
gradients in deep stacks (residual + BatchNorm keep them alive), exploding gradients in an RNN
(clipping tames them)."""

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn, optim
from tinygrad_lite.nn import functional as F
from tinygrad_lite.nn.utils import clip_grad_norm_

# ------------------------------------------------------------------ 1. overfitting ---


def regression_data(n, seed, d=20):
    """Few samples, many inputs: y depends on 2 of 20 features, plus noise -- easy to memorize."""
    r = np.random.default_rng(seed)
    x = r.normal(0, 1, (n, d))
    y = x[:, :1] + 0.5 * np.tanh(x[:, 1:2]) + r.normal(0, 0.3, (n, 1))
    return tl.Tensor(x.astype(np.float32)), tl.Tensor(y.astype(np.float32))


def overfit_gap(p=0.0, lam=0.0, steps=300):
    """Validation MSE minus training MSE (eval mode) after training a 20-64-1 MLP on 24 points."""
    xtr, ytr = regression_data(24, 0)
    xva, yva = regression_data(300, 1)
    tl.manual_seed(0)
    layers = [nn.Linear(20, 64), nn.ReLU()] + ([nn.Dropout(p)] if p else []) + [nn.Linear(64, 1)]
    model = nn.Sequential(*layers)
    opt = optim.Adam(model.parameters(), lr=0.01)
    weights = [w for name, w in model.named_parameters() if name.endswith("weight")]
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model(xtr), ytr)
        if lam:
            loss = loss + F.l2_penalty(weights, lam)
        loss.backward()
        opt.step()
    model.eval()
    with tl.no_grad():
        return F.mse_loss(model(xva), yva).item() - F.mse_loss(model(xtr), ytr).item()


def test_dropout_and_l2_reduce_the_overfitting_gap():
    plain = overfit_gap()
    dropout = overfit_gap(p=0.5)
    l2 = overfit_gap(lam=3e-3)
    assert plain > 0.6  # it memorized: train ~0, validation ~0.78
    assert dropout < 0.85 * plain, (plain, dropout)
    assert l2 < 0.7 * plain, (plain, l2)


# ------------------------------------------------------------------ 2. vanishing gradients ---


def first_layer_grad_norm(residual, depth=30):
    tl.manual_seed(0)
    if residual:
        blocks = [
            nn.Residual(nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.Sigmoid()))
            for _ in range(depth)
        ]
    else:
        blocks = [nn.Sequential(nn.Linear(16, 16), nn.Sigmoid()) for _ in range(depth)]
    model = nn.Sequential(*blocks, nn.Linear(16, 1))
    x, y = tl.randn(32, 16), tl.randn(32, 1)
    F.mse_loss(model(x), y).backward()
    first = next(iter(model.parameters()))  # blocks.0's first Linear weight
    return float(np.linalg.norm(first.grad.numpy()))


def test_residual_and_batchnorm_keep_first_layer_gradient_alive():
    # plain: each sigmoid layer multiplies the gradient by sigma' <= 1/4 times a small W
    plain = first_layer_grad_norm(residual=False)
    # residual: dy/dx = I + d block/dx, an identity path straight back to layer 1
    res = first_layer_grad_norm(residual=True)
    assert plain < 1e-10, plain
    assert res > 1e-2, res


# ------------------------------------------------------------------ 3. exploding gradients ---


def train_rnn(clip, steps, lr=0.05, T=20):
    """A ReLU RNN with recurrent weight 1.3 I: the state (and the gradient) grows like 1.3^T."""
    tl.manual_seed(0)
    r = np.random.default_rng(0)
    rnn = nn.RNN(1, 8, nonlinearity="relu", batch_first=True)
    head = nn.Linear(8, 1)
    rnn.weight_hh_l0.data[...] = 1.3 * np.eye(8)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = optim.SGD(params, lr=lr)
    x = tl.Tensor(r.uniform(0, 1, (16, T, 1)).astype(np.float32))
    y = tl.Tensor(x.numpy().mean(axis=1))
    losses, norms = [], []
    with np.errstate(all="ignore"):  # the unclipped run overflows on purpose
        for _ in range(steps):
            opt.zero_grad()
            out, _ = rnn(x)
            loss = F.mse_loss(head(out[:, -1]), y)
            loss.backward()
            norms.append(float(clip_grad_norm_(params, 1.0 if clip else float("inf"))))
            losses.append(loss.item())
            opt.step()
    return losses, norms


def test_gradient_clipping_tames_an_exploding_rnn():
    losses, norms = train_rnn(clip=False, steps=30)
    assert norms[0] > 1e5  # the gradient explodes
    assert not np.isfinite(losses[-1]) or losses[-1] > losses[0]  # and training diverges
    losses, norms = train_rnn(clip=True, steps=100)
    assert norms[0] > 1e5  # same explosion before clipping...
    assert np.all(np.isfinite(losses))
    assert losses[0] > 1e4 and losses[-1] < 1.0  # ...but bounded steps reach a small loss
