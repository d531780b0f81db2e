"""Keras-named layers: lazy shapes, Keras defaults, channels_last conv against NumPy loops."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor
from tinygrad_lite.errors import ModelFormatError, ShapeError
from tinygrad_lite.layers import (
    GRU,
    LSTM,
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Input,
    MaxPooling2D,
    SimpleRNN,
    from_config,
)
from tinygrad_lite.models import Sequential

rng = np.random.default_rng(0)


def T(a):
    return Tensor(np.asarray(a, dtype=np.float32))


def test_dense_lazy_shape_and_math():
    d = Dense(3, activation="relu")
    assert d.kernel is None
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = d(T(x)).numpy()
    assert d.kernel.shape == (4, 3) and d.bias.shape == (3,)
    np.testing.assert_allclose(y, np.maximum(x @ d.kernel.numpy() + d.bias.numpy(), 0),
                               rtol=1e-5, atol=1e-6)
    limit = np.sqrt(6 / (4 + 3))          # glorot_uniform
    assert np.abs(d.kernel.numpy()).max() <= limit and not d.bias.numpy().any()


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="units must be an int >= 1"):
        Dense(0)
    with pytest.raises(ValueError, match="unknown activation"):
        Dense(3, activation="relu6x")
    with pytest.raises(ValueError, match="initializer: unknown name"):
        Dense(3, kernel_initializer="magic")
    with pytest.raises(ValueError, match="rate must be in"):
        Dropout(1.0)


def conv_ref(x, w, b, stride, pad):
    """NHWC input, (out, in, kh, kw) weight: the direct loop."""
    x = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    n, h, wd, c = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,ochw->no", patch, w) + b
    return out


@pytest.mark.parametrize("padding, stride, size", [("valid", 1, 6), ("same", 1, 6),
                                                   ("same", 2, 7), ("valid", 2, 7)])
def test_conv2d_channels_last_matches_loop(padding, stride, size):
    x = rng.standard_normal((2, size, size, 3)).astype(np.float32)
    c = Conv2D(4, 3, strides=stride, padding=padding, bias_initializer="ones")
    y = c(T(x)).numpy()
    total = max((-(-size // stride) - 1) * stride + 3 - size, 0) if padding == "same" else 0
    pad = ((total // 2, total - total // 2),) * 2
    ref = conv_ref(x, c.kernel.numpy(), c.bias.numpy(), stride, pad)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_conv2d_needs_4d_input_with_hint():
    with pytest.raises(ShapeError, match=r"add a channel axis, e.g. x.reshape\(-1, 8, 8, 1\)"):
        Conv2D(2, 3)(T(np.zeros((2, 8, 8))))


def test_pooling_channels_last():
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    ref = x.reshape(2, 2, 2, 2, 2, 3)
    np.testing.assert_allclose(MaxPooling2D()(T(x)).numpy(), ref.max(axis=(2, 4)))
    np.testing.assert_allclose(AveragePooling2D()(T(x)).numpy(), ref.mean(axis=(2, 4)),
                               rtol=1e-6)
    assert MaxPooling2D(3, strides=2, padding="same")(T(x)).shape == (2, 2, 2, 3)
    # 'same' average pooling divides by the real pixels only (TensorFlow)
    ones = np.ones((1, 3, 3, 1), np.float32)
    np.testing.assert_allclose(AveragePooling2D(2, padding="same")(T(ones)).numpy(), 1.0)


def test_batchnorm_train_and_eval():
    bn = BatchNormalization()
    x = (rng.standard_normal((64, 3)) * 5 + 2).astype(np.float32)
    y = bn(T(x)).numpy()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-2)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.01 * x.mean(0), rtol=1e-4)
    bn.eval()
    y2 = bn(T(x)).numpy()
    mm, mv = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    np.testing.assert_allclose(y2, (x - mm) / np.sqrt(mv + 1e-3), rtol=1e-4, atol=1e-4)


def sig(z):
    return 1 / (1 + np.exp(-z))


def test_recurrent_layers_match_numpy():
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    for cls in (SimpleRNN, LSTM, GRU):
        layer = cls(5, return_sequences=True)
        y = layer(T(x)).numpy()
        W, U = layer.kernel.numpy(), layer.recurrent_kernel.numpy()
        b = layer.bias.numpy()
        h = np.zeros((2, 5))
        c = np.zeros((2, 5))
        for t in range(4):
            if cls is SimpleRNN:
                h = np.tanh(x[:, t] @ W + b + h @ U)
            elif cls is LSTM:
                z = x[:, t] @ W + b + h @ U
                i, f, g, o = np.split(z, 4, axis=1)
                c = sig(f) * c + sig(i) * np.tanh(g)
                h = sig(o) * np.tanh(c)
            else:
                xz, xr, xh = np.split(x[:, t] @ W + b[0], 3, axis=1)
                hz, hr, hh = np.split(h @ U + b[1], 3, axis=1)
                z, r = sig(xz + hz), sig(xr + hr)
                h = z * h + (1 - z) * np.tanh(xh + r * hh)
            np.testing.assert_allclose(y[:, t], h, rtol=1e-4, atol=1e-5, err_msg=cls.__name__)
        assert cls(5)(T(x)).shape == (2, 5)
    lstm = LSTM(2)
    lstm(T(x))
    np.testing.assert_array_equal(lstm.bias.numpy()[2:4], 1.0)   # unit_forget_bias


def test_embedding_and_activation():
    e = Embedding(10, 4)
    out = e(T([[1, 2], [3, 1]])).numpy()
    np.testing.assert_array_equal(out[0, 0], out[1, 1])
    assert out.shape == (2, 2, 4) and np.abs(e.embeddings.numpy()).max() <= 0.05
    np.testing.assert_allclose(Activation("softmax")(T([[0.0, 0.0]])).numpy(), [[0.5, 0.5]])


def test_dropout_only_while_training():
    d = Dropout(0.5, seed=0)
    x = T(np.ones((100, 10)))
    assert (d(x).numpy() == 0).mean() > 0.3
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), 1.0)


def test_input_layer_and_flatten_in_sequential():
    m = Sequential([Input(shape=(4, 4, 2)), Conv2D(3, 3, padding="same"), Flatten(), Dense(2)])
    assert m.input_shape == (None, 4, 4, 2) and m.output_shape == (None, 2)
    assert m.count_params() == 3 * 2 * 9 + 3 + 48 * 2 + 2


def test_from_config_round_trip_and_allow_list():
    tl.manual_seed(0)
    for layer in (Dense(3, activation="relu", kernel_regularizer="l2"),
                  Conv2D(2, (3, 1), strides=2, padding="same"), LSTM(4, return_sequences=True),
                  BatchNormalization(momentum=0.9), Embedding(5, 2), MaxPooling2D(3)):
        entry = {"class_name": type(layer).__name__, "config": layer.get_config()}
        assert from_config(entry).get_config() == layer.get_config()
    with pytest.raises(ModelFormatError, match="allow-list"):
        from_config({"class_name": "Lambda", "config": {}})
    with pytest.raises(ModelFormatError, match="non-plain"):
        from_config({"class_name": "Dense", "config": {"units": 2, "activation": {"x": 1}}})


def test_regularizer_adds_to_the_training_loss():
    x = rng.random((16, 4)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    losses = []
    for reg in (None, "l2"):
        tl.manual_seed(0)
        m = Sequential([Dense(2, activation="softmax", input_shape=(4,),
                              kernel_regularizer=reg)])
        m.compile("sgd", "sparse_categorical_crossentropy")
        w = m.layers[0].kernel.numpy().copy()
        losses.append(m.fit(x, y, epochs=1, batch_size=16, verbose=0).history["loss"][0])
    assert losses[1] - losses[0] == pytest.approx(0.01 * (w ** 2).sum(), rel=1e-3)


def test_batchnorm_delegates_to_nn_batch_norm(monkeypatch):
    """Keras BatchNormalization is the core batch_norm with the channel axis last and momentum
    1 - m; its moving variance uses the biased batch variance (Keras), the core's the unbiased."""
    from tinygrad_lite.nn import BatchNorm1d
    from tinygrad_lite.nn import normalization as N

    x = (rng.standard_normal((16, 3)) * 3 + 1).astype(np.float32)
    keras_bn = BatchNormalization(momentum=0.9, epsilon=1e-5)
    torch_bn = BatchNorm1d(3, eps=1e-5, momentum=0.1)
    calls = []
    real = N.batch_norm
    monkeypatch.setattr(N, "batch_norm", lambda *a, **k: (calls.append(k), real(*a, **k))[1])
    yk = keras_bn(T(x)).numpy()
    assert calls and calls[0]["axis"] == -1 and calls[0]["momentum"] == pytest.approx(0.1)
    yt = torch_bn(Tensor(x)).numpy()
    np.testing.assert_allclose(yk, yt, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(keras_bn.moving_mean.numpy(), torch_bn.running_mean.numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(keras_bn.moving_variance.numpy(), 0.9 + 0.1 * x.var(0), rtol=1e-5)
    np.testing.assert_allclose(torch_bn.running_var.numpy(), 0.9 + 0.1 * x.var(0, ddof=1),
                               rtol=1e-5)
    # channels-last 4-D input: statistics over N, H, W per channel
    x4 = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    bn4 = BatchNormalization()
    y4 = bn4(T(x4)).numpy()
    ref = (x4 - x4.mean((0, 1, 2))) / np.sqrt(x4.var((0, 1, 2)) + 1e-3)
    np.testing.assert_allclose(y4, ref, rtol=1e-4, atol=1e-4)
    assert [n for n, _ in bn4.weight_tensors()] == ["gamma", "beta", "moving_mean",
                                                     "moving_variance"]
