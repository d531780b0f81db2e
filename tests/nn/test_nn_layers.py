"""Layers: forward against NumPy references written here, float64 gradchecks of inputs and
parameters on Hypothesis-chosen shapes, double backward through Linear and Conv2d."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nn_helpers import SMALL, dbl, rng

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.errors import ShapeError
from tinygrad_lite.testing import gradcheck, gradgradcheck


def check_module(m, x, second_order=False):
    """Gradcheck a float64 module w.r.t. its input and every parameter."""
    m.double()
    params = list(m.parameters())

    def fn(x, *ps):
        return m(x)

    gradcheck(fn, [x] + params, op=type(m).__name__)
    if second_order:
        gradgradcheck(fn, [x] + params, op=type(m).__name__)


# ------------------------------------------------------------------ NumPy references ---


def conv2d_ref(x, w, b, stride, pad, dil, groups):
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for p in range(oh):
            for q in range(ow):
                for i in range(kh):
                    for j in range(kw):
                        patch = xp[
                            :,
                            g * cg : (g + 1) * cg,
                            p * stride[0] + i * dil[0],
                            q * stride[1] + j * dil[1],
                        ]
                        y[:, oc, p, q] += patch @ w[oc, :, i, j]
    return y if b is None else y + b[None, :, None, None]


def conv_transpose2d_ref(x, w, b, stride, pad, out_pad):
    n, _, h, wd = x.shape
    _, o, kh, kw = w.shape
    full_h = (h - 1) * stride + kh + out_pad
    full_w = (wd - 1) * stride + kw + out_pad
    y = np.zeros((n, o, full_h, full_w))
    for p in range(h):
        for q in range(wd):
            y[:, :, p * stride : p * stride + kh, q * stride : q * stride + kw] += np.einsum(
                "nc,coij->noij", x[:, :, p, q], w
            )
    y = y[:, :, pad : full_h - pad, pad : full_w - pad]
    return y + b[None, :, None, None]


def pool_ref(x, k, s, reduce):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    y = np.zeros((n, c, oh, ow))
    for p in range(oh):
        for q in range(ow):
            y[:, :, p, q] = reduce(x[:, :, p * s : p * s + k, q * s : q * s + k], axis=(2, 3))
    return y


# ------------------------------------------------------------------ Linear ---


@SMALL
@given(n=st.integers(1, 3), fin=st.integers(1, 4), fout=st.integers(1, 3), bias=st.booleans())
def test_linear_forward_and_gradcheck(n, fin, fout, bias):
    tl.manual_seed(n * 10 + fin)
    m = nn.Linear(fin, fout, bias=bias).double()
    x = dbl(rng(fin).standard_normal((n, fin)))
    ref = x.numpy() @ m.weight.numpy().T + (m.bias.numpy() if bias else 0)
    np.testing.assert_allclose(m(x).numpy(), ref, rtol=1e-12)
    check_module(m, x)


def test_linear_double_backward():
    tl.manual_seed(0)
    m = nn.Linear(3, 2)
    x = dbl(rng().standard_normal((2, 3)))
    check_module(m, x, second_order=True)
    # a nonlinearity after it makes the second derivative non-trivial
    m2 = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    gradgradcheck(lambda x, *ps: m2(x), [x] + list(m2.parameters()))


def test_linear_default_init_bounds_and_layout():
    tl.manual_seed(1)
    m = nn.Linear(100, 50)
    assert m.weight.shape == (50, 100) and m.bias.shape == (50,)
    assert m.weight.dtype == np.float32
    b = 1 / np.sqrt(100)
    assert np.abs(m.weight.numpy()).max() <= b and np.abs(m.weight.numpy()).max() > 0.9 * b
    assert abs(m.weight.numpy().std() - b / np.sqrt(3)) < 0.01


def test_linear_wrong_input_raises_naming_shapes():
    with pytest.raises(ShapeError, match=r"\(2, 5\).*\(3, 4\)"):
        nn.Linear(4, 3)(tl.zeros(2, 5))


# ------------------------------------------------------------------ Conv2d ---


@SMALL
@given(
    n=st.integers(1, 2),
    cin=st.integers(1, 2),
    cout=st.integers(1, 2),
    hw=st.integers(3, 5),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    pad=st.integers(0, 1),
    dil=st.integers(1, 2),
    bias=st.booleans(),
)
def test_conv2d_forward_and_gradcheck(n, cin, cout, hw, k, stride, pad, dil, bias):
    if dil * (k - 1) + 1 > hw + 2 * pad:
        return
    tl.manual_seed(hw + k)
    m = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil, bias=bias).double()
    x = dbl(rng(k).standard_normal((n, cin, hw, hw)))
    ref = conv2d_ref(
        x.numpy(),
        m.weight.numpy(),
        m.bias.numpy() if bias else None,
        (stride, stride),
        (pad, pad),
        (dil, dil),
        1,
    )
    np.testing.assert_allclose(m(x).numpy(), ref, rtol=1e-10, atol=1e-12)
    check_module(m, x)


def test_conv2d_groups_forward_and_gradcheck():
    tl.manual_seed(2)
    m = nn.Conv2d(4, 2, 3, padding=1, groups=2).double()
    assert m.weight.shape == (2, 2, 3, 3)
    x = dbl(rng().standard_normal((1, 4, 4, 4)))
    ref = conv2d_ref(x.numpy(), m.weight.numpy(), m.bias.numpy(), (1, 1), (1, 1), (1, 1), 2)
    np.testing.assert_allclose(m(x).numpy(), ref, rtol=1e-10, atol=1e-12)
    check_module(m, x)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_conv2d_same_padding_keeps_size(k):
    tl.manual_seed(3)
    m = nn.Conv2d(2, 3, k, padding="same").double()
    x = dbl(rng().standard_normal((1, 2, 5, 6)))
    y = m(x)
    assert y.shape == (1, 3, 5, 6)
    total = k - 1  # PyTorch puts the odd extra pixel at the bottom/right
    xp = np.pad(
        x.numpy(),
        ((0, 0), (0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2)),
    )
    ref = conv2d_ref(xp, m.weight.numpy(), m.bias.numpy(), (1, 1), (0, 0), (1, 1), 1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-12)
    if k == 2:
        check_module(m, dbl(rng(1).standard_normal((1, 2, 3, 3))))


def test_conv2d_double_backward():
    tl.manual_seed(4)
    m = nn.Conv2d(2, 2, 2, stride=1, padding=1)
    x = dbl(rng().standard_normal((1, 2, 3, 3)))
    check_module(m, x, second_order=True)


def test_conv2d_same_with_stride_raises():
    with pytest.raises(ValueError, match="stride"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")


# ------------------------------------------------------------------ ConvTranspose2d ---


@SMALL
@given(
    cin=st.integers(1, 2),
    cout=st.integers(1, 2),
    hw=st.integers(2, 3),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    pad=st.integers(0, 1),
    out_pad=st.integers(0, 1),
)
def test_conv_transpose2d_forward_and_gradcheck(cin, cout, hw, k, stride, pad, out_pad):
    if out_pad >= stride or (hw - 1) * stride - 2 * pad + k + out_pad < 1:
        return
    tl.manual_seed(k)
    m = nn.ConvTranspose2d(
        cin, cout, k, stride=stride, padding=pad, output_padding=out_pad
    ).double()
    assert m.weight.shape == (cin, cout, k, k)
    x = dbl(rng(k).standard_normal((2, cin, hw, hw)))
    ref = conv_transpose2d_ref(x.numpy(), m.weight.numpy(), m.bias.numpy(), stride, pad, out_pad)
    np.testing.assert_allclose(m(x).numpy(), ref, rtol=1e-10, atol=1e-12)
    check_module(m, x)


# ------------------------------------------------------------------ pooling ---


@SMALL
@given(hw=st.integers(2, 5), k=st.integers(1, 2), s=st.integers(1, 2))
def test_pooling_forward_and_gradcheck(hw, k, s):
    x = dbl(rng(hw).permutation(2 * 2 * hw * hw).reshape(2, 2, hw, hw) * 0.1)  # no ties
    mp, ap = nn.MaxPool2d(k, s), nn.AvgPool2d(k, s)
    np.testing.assert_allclose(mp(x).numpy(), pool_ref(x.numpy(), k, s, np.max))
    np.testing.assert_allclose(ap(x).numpy(), pool_ref(x.numpy(), k, s, np.mean), rtol=1e-12)
    gradcheck(mp, [x])
    gradcheck(ap, [x])


def test_adaptive_avg_pool_global_and_divisible():
    x = dbl(rng().standard_normal((2, 3, 4, 6)))
    g = nn.AdaptiveAvgPool2d(1)(x)
    np.testing.assert_allclose(g.numpy(), x.numpy().mean(axis=(2, 3), keepdims=True))
    y = nn.AdaptiveAvgPool2d((2, 3))(x)
    ref = x.numpy().reshape(2, 3, 2, 2, 3, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12)
    gradcheck(nn.AdaptiveAvgPool2d(1), [x])


# ------------------------------------------------------------------ BatchNorm ---


def bn_ref(x, gamma, beta, eps, axes):
    shape = [1] * x.ndim
    shape[1] = -1
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)


@SMALL
@given(n=st.integers(2, 4), c=st.integers(1, 3), extra=st.sampled_from([(), (3,), (2, 2)]))
def test_batchnorm_forward_running_stats_and_gradcheck(n, c, extra):
    cls = nn.BatchNorm2d if len(extra) == 2 else nn.BatchNorm1d
    bn = cls(c, momentum=0.3).double()
    r = rng(n)
    bn.weight.data[...] = r.standard_normal(c)
    bn.bias.data[...] = r.standard_normal(c)
    x = dbl(r.standard_normal((n, c) + extra) * 2 + 1)
    axes = (0,) + tuple(range(2, x.ndim))
    y = bn(x)
    np.testing.assert_allclose(
        y.numpy(),
        bn_ref(x.numpy(), bn.weight.numpy(), bn.bias.numpy(), 1e-5, axes),
        rtol=1e-10,
        atol=1e-12,
    )
    m = x.numpy().size // c
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.3 * x.numpy().mean(axis=axes))
    np.testing.assert_allclose(
        bn.running_var.numpy(), 0.7 + 0.3 * x.numpy().var(axis=axes) * m / (m - 1)
    )
    assert int(bn.num_batches_tracked.item()) == 1
    # eval mode: running statistics, a per-sample affine map
    bn.eval()
    ye = bn(x).numpy()
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    shape = (1, c) + (1,) * len(extra)
    ref = (x.numpy() - rm.reshape(shape)) / np.sqrt(
        rv.reshape(shape) + 1e-5
    ) * bn.weight.numpy().reshape(shape) + bn.bias.numpy().reshape(shape)
    np.testing.assert_allclose(ye, ref, rtol=1e-10)
    bn.train()
    check_module(bn, x)  # batch statistics are differentiated through
    bn.eval()
    check_module(bn, x)


def test_batchnorm_cumulative_momentum_none_and_errors():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    xs = [rng(i).standard_normal((5, 2)) for i in range(3)]
    for x in xs:
        bn(dbl(x))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], axis=0))
    with pytest.raises(ShapeError, match="more than 1 value"):
        bn(dbl(np.zeros((1, 2))))
    with pytest.raises(ShapeError, match="channels"):
        bn(dbl(np.zeros((4, 3))))


# ------------------------------------------------------------------ LayerNorm ---


@SMALL
@given(n=st.integers(1, 3), shape=st.sampled_from([(3,), (2, 3), (4,)]))
def test_layernorm_forward_and_gradcheck(n, shape):
    ln = nn.LayerNorm(shape).double()
    r = rng(n)
    ln.weight.data[...] = r.standard_normal(shape)
    ln.bias.data[...] = r.standard_normal(shape)
    x = dbl(r.standard_normal((n,) + shape))
    axes = tuple(range(1, x.ndim))
    mean, var = x.numpy().mean(axes, keepdims=True), x.numpy().var(axes, keepdims=True)
    ref = (x.numpy() - mean) / np.sqrt(var + 1e-5) * ln.weight.numpy() + ln.bias.numpy()
    np.testing.assert_allclose(ln(x).numpy(), ref, rtol=1e-10, atol=1e-12)
    check_module(ln, x)


# ------------------------------------------------------------------ Embedding, misc ---


def test_embedding_forward_gradient_and_padding_idx():
    tl.manual_seed(5)
    emb = nn.Embedding(5, 3, padding_idx=0).double()
    assert np.all(emb.weight.numpy()[0] == 0)
    idx = np.array([[1, 0, 1], [4, 2, 0]])
    out = emb(tl.Tensor(idx))
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[idx])
    gradcheck(lambda w: emb(tl.Tensor(idx)), [emb.weight])
    out.sum().backward()
    g = emb.weight.grad.numpy()
    np.testing.assert_array_equal(g[:, 0], [0, 2, 1, 0, 1])  # row 1 used twice, pad row 0
    with pytest.raises(ShapeError, match=r"\[0, 5\)"):
        emb(tl.Tensor(np.array([5])))


@pytest.mark.parametrize(
    "layer,ref",
    [
        (nn.ReLU(), lambda x: np.maximum(x, 0)),
        (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
        (nn.ELU(0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
        (nn.GELU(), None),
        (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
        (nn.Tanh(), np.tanh),
        (nn.Softplus(beta=2.0), lambda x: np.log1p(np.exp(2 * x)) / 2),
        (nn.Softmax(dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
        (nn.LogSoftmax(dim=1), lambda x: x - np.log(np.exp(x).sum(1, keepdims=True))),
    ],
)
def test_activation_modules(layer, ref):
    x = dbl(rng().standard_normal((3, 4)) + 0.05)  # keep away from the kinks at 0
    if ref is not None:
        np.testing.assert_allclose(layer(x).numpy(), ref(x.numpy()), rtol=1e-10, atol=1e-12)
    gradcheck(layer, [x])


def test_flatten_dropout_identity():
    x = dbl(rng().standard_normal((2, 3, 4)))
    assert nn.Flatten()(x).shape == (2, 12)
    assert nn.Flatten(0, 1)(x).shape == (6, 4)
    assert nn.Identity()(x) is x
    d = nn.Dropout(0.5)
    tl.manual_seed(0)
    y = d(tl.ones(1000, dtype=np.float64)).numpy()
    assert set(np.unique(y)) == {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    d.eval()
    assert np.all(d(tl.ones(10)).numpy() == 1)
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_residual_and_basic_block_shapes_and_gradcheck():
    tl.manual_seed(6)
    res = nn.Residual(nn.Linear(3, 3))
    x = dbl(rng().standard_normal((2, 3)))
    np.testing.assert_allclose(res.double()(x).numpy(), res.module(x).numpy() + x.numpy())
    check_module(res, x)
    block = nn.BasicBlock(2, 3, stride=2).double()
    assert [k for k in block.state_dict() if "downsample" in k][:2] == [
        "downsample.0.weight",
        "downsample.1.weight",
    ]
    xb = dbl(rng().standard_normal((2, 2, 4, 4)))
    assert block(xb).shape == (2, 3, 2, 2)
    block.eval()
    gradcheck(lambda x: block(x), [xb])
