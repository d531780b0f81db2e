"""Keras-named layers over the core engine, with lazy input shapes.

``Dense(10)`` does not need to know its input width: the first batch (or ``model.build``) fixes
it. Defaults follow Keras: weights ``glorot_uniform``, biases ``zeros``, ``Conv2D`` and pooling take
**channels_last** (N, H, W, C) tensors and convert to the core's NCHW at their boundary.

Weight layouts: ``Dense.kernel`` is (in, units) as Keras, so ``y = x @ kernel + bias`` is the
seed's ``h = xW + b``; ``Conv2D.kernel`` is the core's (filters, in, kh, kw).

Every layer has ``get_config()``; ``from_config`` rebuilds only the classes in ``LAYERS`` (the
allow-list a model file may name).

>>> from tinygrad_lite.layers import Dense
>>> layer = Dense(3, activation="relu")
>>> layer(Tensor(np.ones((2, 4), dtype=np.float32))).shape
(2, 3)
"""

import math

import numpy as np

from .errors import ModelFormatError, ShapeError
from .nn import functional as F
from .nn import init
from .nn.module import Module
from .nn.parameter import Parameter
from .tensor import Tensor

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Reshape",
           "Conv2D", "MaxPooling2D", "AveragePooling2D", "BatchNormalization", "Embedding",
           "SimpleRNN", "LSTM", "GRU", "LAYERS", "from_config", "get_activation", "L1L2"]


# ------------------------------------------------------------------ activations ---

def _linear(x):
    return x


ACTIVATIONS = {
    None: _linear, "linear": _linear, "relu": lambda x: x.relu(),
    "sigmoid": lambda x: x.sigmoid(), "tanh": lambda x: x.tanh(),
    "softmax": lambda x: x.softmax(axis=-1), "log_softmax": lambda x: x.log_softmax(axis=-1),
    "elu": lambda x: x.elu(), "gelu": lambda x: x.gelu(), "softplus": lambda x: x.softplus(),
    "leaky_relu": lambda x: x.leaky_relu(0.2),  # Keras' default negative slope
    "swish": lambda x: x * x.sigmoid(), "silu": lambda x: x * x.sigmoid(),
}


def get_activation(name, op="Activation"):
    if name not in ACTIVATIONS:
        raise ValueError(f"{op}: unknown activation, got {name!r}; use one of "
                         f"{sorted(k for k in ACTIVATIONS if k)}")
    return ACTIVATIONS[name]


# ------------------------------------------------------------------ initializers ---

def _fans(shape):
    if len(shape) == 2:                      # Dense kernel (in, units)
        return shape[0], shape[1]
    if len(shape) == 4:                      # conv kernel (out, in, kh, kw)
        rf = shape[2] * shape[3]
        return shape[1] * rf, shape[0] * rf
    n = int(np.prod(shape)) if shape else 1
    return n, n


_VARIANCE = {  # Keras variance-scaling initializers: Var(W) = scale / fan
    "glorot": lambda fi, fo: 2.0 / (fi + fo), "he": lambda fi, fo: 2.0 / fi,
    "lecun": lambda fi, fo: 1.0 / fi}


def initialize(name, shape, dtype=np.float32, fans=None):
    """Keras initializers by name, drawn with ``nn.init``. Glorot: U(-l, l) with
    l = sqrt(6 / (fan_in + fan_out)), so the variance of activations stays about the same forward
    and backward. Fans follow Keras' layouts (a Dense kernel is (in, units)), so they are computed
    here rather than by ``nn.init``'s PyTorch (out, in) convention."""
    p = Parameter(np.zeros(shape, dtype=dtype))
    fan_in, fan_out = fans or _fans(shape)
    family, _, dist = name.rpartition("_")
    if name in ("zeros", "ones"):
        init.constant_(p, 0.0 if name == "zeros" else 1.0)
    elif family in _VARIANCE and dist in ("uniform", "normal"):
        std = math.sqrt(_VARIANCE[family](fan_in, fan_out))
        if dist == "uniform":     # U(-b, b) has variance b^2 / 3
            init.uniform_(p, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)
        else:                     # Keras truncates at 2 sd; a plain normal is close enough
            init.normal_(p, 0.0, std)
    elif name in ("uniform", "random_uniform"):
        init.uniform_(p, -0.05, 0.05)
    elif name in ("normal", "random_normal"):
        init.normal_(p, 0.0, 0.05)
    elif name == "orthogonal":
        init.orthogonal_(p)
    else:
        raise ValueError(f"initializer: unknown name, got {name!r}; use glorot_uniform, "
                         "glorot_normal, he_uniform, he_normal, lecun_uniform, lecun_normal, "
                         "orthogonal, random_uniform, random_normal, zeros or ones")
    return p


# ------------------------------------------------------------------ regularizers ---

class L1L2:
    """Weight penalty added to the loss: ``l1 * sum|w| + l2 * sum w^2`` (Keras defaults 0.01)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w):
        out = 0.0
        if self.l1:
            out = out + self.l1 * w.abs().sum()
        if self.l2:
            out = out + self.l2 * (w * w).sum()
        return out

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


def _regularizer(spec, op):
    if spec is None or isinstance(spec, L1L2):
        return spec
    if spec == "l1":
        return L1L2(l1=0.01)
    if spec == "l2":
        return L1L2(l2=0.01)
    if spec == "l1_l2":
        return L1L2(0.01, 0.01)
    if isinstance(spec, dict) and set(spec) <= {"l1", "l2"}:
        return L1L2(**spec)
    raise ValueError(f"{op}: unknown regularizer, got {spec!r}; use 'l1', 'l2', 'l1_l2' or "
                     "layers.L1L2(l1, l2)")


# ------------------------------------------------------------------ base ---

def _shape_tuple(shape, op):
    if shape is None:
        return None
    if isinstance(shape, int):
        shape = (shape,)
    try:
        shape = tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: input_shape must be a tuple of ints, got {shape!r}") from None
    if any(d is not None and d < 1 for d in shape):
        raise ValueError(f"{op}: input_shape entries must be >= 1, got {shape}")
    return shape


class Layer(Module):
    """Base of the Keras-named layers: builds its weights on the first call.

    Subclasses implement ``build(input_shape)`` (shape without the batch axis), ``call(x)`` and
    ``get_config()``; ``weight_tensors()`` lists what a model file stores.
    """

    def __init__(self, input_shape=None, name=None):
        super().__init__()
        self.built = False
        self.input_shape = _shape_tuple(input_shape, type(self).__name__)
        self.name = name

    def build(self, input_shape):
        self.built = True

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, dtype=np.float32))
        if not self.built:
            self.build(tuple(x.shape[1:]))
            self.built = True
        return self.call(x)

    def call(self, x):
        raise NotImplementedError

    def weight_tensors(self):
        """``[(name, Tensor)]`` of parameters and state (buffers), in a fixed order."""
        return []

    def shape_plan(self, input_shape):
        """``([(name, shape)], output_shape)`` for per-sample ``input_shape``, without building.

        The names and shapes are exactly what ``build`` would create (``weight_tensors`` order);
        model loading compares them with a file's arrays before allocating anything.
        """
        return [], tuple(input_shape)

    def regularization_loss(self):
        return None

    def _base_config(self):
        cfg = {}
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        if self.name is not None:
            cfg["name"] = self.name
        return cfg

    def get_config(self):
        return self._base_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class InputLayer(Layer):
    """Declares the input shape (without the batch axis); identity otherwise."""

    def __init__(self, shape=None, input_shape=None, name=None):
        super().__init__(input_shape=shape if shape is not None else input_shape, name=name)
        if self.input_shape is None:
            raise ValueError("InputLayer: a shape is needed, got none; e.g. Input(shape=(64,))")

    def call(self, x):
        return x


def Input(shape, name=None):
    """``Input(shape=(64,))``: the first entry of a ``Sequential`` that fixes the input shape."""
    return InputLayer(shape=shape, name=name)


class Activation(Layer):
    def __init__(self, activation, input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.activation = activation
        self._act = get_activation(activation, "Activation")

    def call(self, x):
        return self._act(x)

    def get_config(self):
        return {"activation": self.activation, **self._base_config()}


class Dense(Layer):
    """Fully connected: ``y = activation(x @ kernel + bias)``, kernel (in, units).

    >>> Dense(10, activation="softmax", input_shape=(64,))   # doctest: +ELLIPSIS
    Dense(units=10, activation='softmax', ...)
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 input_shape=None, input_dim=None, name=None):
        if input_shape is None and input_dim is not None:
            input_shape = (input_dim,)
        super().__init__(input_shape, name)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense: units must be an int >= 1, got {units!r}")
        self.units = int(units)
        self.activation = activation
        self._act = get_activation(activation, "Dense")
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.kernel_regularizer = _regularizer(kernel_regularizer, "Dense")
        self.bias_regularizer = _regularizer(bias_regularizer, "Dense")
        self._reg_specs = (kernel_regularizer, bias_regularizer)
        initialize(kernel_initializer, (1, 1))  # validate the names now, not at the first batch
        self.kernel = None
        self.bias = None

    def build(self, input_shape):
        if not input_shape:
            raise ShapeError(f"Dense: input must have a feature axis, got per-sample shape "
                             f"{input_shape}; reshape x to (n_samples, n_features)")
        self.kernel = initialize(self.kernel_initializer, (input_shape[-1], self.units))
        if self.use_bias:
            self.bias = initialize(self.bias_initializer, (self.units,))
        self.built = True

    def shape_plan(self, input_shape):
        if not input_shape:
            raise ShapeError(f"Dense: input must have a feature axis, got per-sample shape "
                             f"{tuple(input_shape)}")
        w = [("kernel", (input_shape[-1], self.units))]
        w += [("bias", (self.units,))] if self.use_bias else []
        return w, tuple(input_shape[:-1]) + (self.units,)

    def logits(self, x):
        """The pre-activation ``x @ kernel + bias`` (used to fuse softmax into the loss)."""
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, dtype=np.float32))
        if not self.built:
            self.build(tuple(x.shape[1:]))
        if x.shape[-1] != self.kernel.shape[0]:
            raise ShapeError(f"Dense: expected {self.kernel.shape[0]} input features, got input "
                             f"shape {x.shape}")
        y = x @ self.kernel
        return y + self.bias if self.bias is not None else y

    def call(self, x):
        if (self.activation == "relu" and self.bias is not None and isinstance(x, Tensor)
                and x.ndim == 2 and self.built and x.shape[1] == self.kernel.shape[0]):
            return F.linear_relu(x, self.kernel, self.bias, keras_layout=True)  # one GEMM call
        return self._act(self.logits(x))

    def weight_tensors(self):
        return [("kernel", self.kernel)] + ([("bias", self.bias)] if self.use_bias else [])

    def regularization_loss(self):
        out = None
        for reg, w in ((self.kernel_regularizer, self.kernel), (self.bias_regularizer, self.bias)):
            if reg is not None and w is not None:
                r = reg(w)
                out = r if out is None else out + r
        return out

    def get_config(self):
        def reg(spec):
            return spec.get_config() if isinstance(spec, L1L2) else spec

        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer,
                "kernel_regularizer": reg(self._reg_specs[0]),
                "bias_regularizer": reg(self._reg_specs[1]), **self._base_config()}


class Dropout(Layer):
    """Inverted dropout at rate ``rate`` while training; identity in evaluate/predict."""

    def __init__(self, rate, input_shape=None, name=None, seed=None):
        super().__init__(input_shape, name)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def call(self, x):
        return F.dropout(x, self.rate, training=self.training, generator=self._rng)

    def get_config(self):
        return {"rate": self.rate, "seed": self.seed, **self._base_config()}


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), in channels_last order as Keras."""

    def call(self, x):
        return x.reshape(x.shape[0], -1)

    def shape_plan(self, input_shape):
        return [], (math.prod(input_shape),)


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (the batch axis is kept), e.g. (64,) -> (8, 8, 1)."""

    def __init__(self, target_shape, input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, x):
        per = int(np.prod(x.shape[1:]))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        if (-1 not in self.target_shape and per != known) or (known and per % known):
            raise ShapeError(f"Reshape: cannot reshape samples of shape {x.shape[1:]} to "
                             f"{self.target_shape}")
        return x.reshape((x.shape[0],) + self.target_shape)

    def shape_plan(self, input_shape):
        per = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if self.target_shape.count(-1) > 1 or any(d < 1 and d != -1 for d in self.target_shape) \
                or (-1 not in self.target_shape and per != known) or (known and per % known) \
                or not known:
            raise ShapeError(f"Reshape: cannot reshape samples of shape {tuple(input_shape)} to "
                             f"{self.target_shape}")
        return [], tuple(per // known if d == -1 else d for d in self.target_shape)

    def get_config(self):
        return {"target_shape": list(self.target_shape), **self._base_config()}


# ------------------------------------------------------------------ convolution ---

def _pair(v, name, op):
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    v = tuple(int(a) for a in v)
    if len(v) != 2 or min(v) < 1:
        raise ValueError(f"{op}: {name} must be a positive int or a pair, got {v!r}")
    return v


def _same_pads(size, k, s, d):
    """TensorFlow's 'same': output ceil(size / s); the odd pixel of padding goes bottom/right."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _check_4d(x, op):
    if x.ndim != 4:
        hint = (f"; add a channel axis, e.g. x.reshape(-1, {x.shape[1]}, {x.shape[2]}, 1)"
                if x.ndim == 3 else "")
        raise ShapeError(f"{op}: expected a 4-D (batch, height, width, channels) input, got shape "
                         f"{x.shape}{hint}")


class _Spatial(Layer):
    def __init__(self, padding, data_format, input_shape, name):
        super().__init__(input_shape, name)
        if padding not in ("valid", "same"):
            raise ValueError(f"{type(self).__name__}: padding must be 'valid' or 'same', got "
                             f"{padding!r}")
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"{type(self).__name__}: data_format must be 'channels_last' or "
                             f"'channels_first', got {data_format!r}")
        self.padding, self.data_format = padding, data_format

    def _to_nchw(self, x):
        _check_4d(x, type(self).__name__)
        return x.permute(0, 3, 1, 2) if self.data_format == "channels_last" else x

    def _from_nchw(self, y):
        return y.permute(0, 2, 3, 1) if self.data_format == "channels_last" else y

    def _out_hw(self, input_shape, k, s, d=(1, 1)):
        """(channels, out_h, out_w) of a window op on per-sample ``input_shape`` (no building)."""
        op = type(self).__name__
        if len(input_shape) != 3:
            raise ShapeError(f"{op}: expected per-sample shape (height, width, channels), got "
                             f"{tuple(input_shape)}")
        if self.data_format == "channels_last":
            h, w, c = input_shape
        else:
            c, h, w = input_shape
        out = []
        for size, kk, ss, dd in ((h, k[0], s[0], d[0]), (w, k[1], s[1], d[1])):
            o = -(-size // ss) if self.padding == "same" else (size - dd * (kk - 1) - 1) // ss + 1
            if o < 1:
                raise ShapeError(f"{op}: window {k} (dilation {d}) does not fit the input "
                                 f"{tuple(input_shape)}")
            out.append(o)
        return c, out[0], out[1]

    def _spatial_out(self, c, oh, ow):
        return (oh, ow, c) if self.data_format == "channels_last" else (c, oh, ow)

    def _pad(self, x, k, s, d=(1, 1), value=0.0):
        """Explicit padding of an NCHW tensor for 'same' (may be asymmetric, as TensorFlow)."""
        if self.padding == "valid":
            return x
        ph = _same_pads(x.shape[2], k[0], s[0], d[0])
        pw = _same_pads(x.shape[3], k[1], s[1], d[1])
        if ph == (0, 0) and pw == (0, 0):
            return x
        return x.pad(((0, 0), (0, 0), ph, pw), value=value)


class Conv2D(_Spatial):
    """2-D convolution on channels_last input (N, H, W, C); kernel stored as (filters, C, kh, kw).

    >>> Conv2D(8, 3, activation="relu", input_shape=(8, 8, 1))   # doctest: +ELLIPSIS
    Conv2D(filters=8, kernel_size=[3, 3], ...)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format="channels_last", dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, input_shape=None, name=None):
        super().__init__(padding, data_format, input_shape, name)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"Conv2D: filters must be an int >= 1, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = _pair(strides, "strides", "Conv2D")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate", "Conv2D")
        self.activation = activation
        self._act = get_activation(activation, "Conv2D")
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self._reg_spec = kernel_regularizer
        self.kernel_regularizer = _regularizer(kernel_regularizer, "Conv2D")
        initialize(kernel_initializer, (1, 1))
        self.kernel = self.bias = None

    def build(self, input_shape):
        if len(input_shape) != 3:
            hint = (f"add a channel axis, e.g. x.reshape(-1, {input_shape[0]}, {input_shape[1]}, 1)"
                    if len(input_shape) == 2 else "reshape x to (n, h, w, c)")
            raise ShapeError(f"Conv2D: expected per-sample shape (height, width, channels), got "
                             f"{input_shape}; {hint}")
        c = input_shape[-1] if self.data_format == "channels_last" else input_shape[0]
        kh, kw = self.kernel_size
        self.kernel = initialize(self.kernel_initializer, (self.filters, c, kh, kw))
        if self.use_bias:
            self.bias = initialize(self.bias_initializer, (self.filters,))
        self.built = True

    def call(self, x):
        x = self._to_nchw(x)
        if x.shape[1] != self.kernel.shape[1]:
            raise ShapeError(f"Conv2D: expected {self.kernel.shape[1]} input channels, got input "
                             f"shape {x.shape} (NCHW)")
        x = self._pad(x, self.kernel_size, self.strides, self.dilation_rate)
        y = F.conv2d(x, self.kernel, self.bias, stride=self.strides, padding=0,
                     dilation=self.dilation_rate)
        return self._from_nchw(self._act(y))

    def weight_tensors(self):
        return [("kernel", self.kernel)] + ([("bias", self.bias)] if self.use_bias else [])

    def shape_plan(self, input_shape):
        c, oh, ow = self._out_hw(input_shape, self.kernel_size, self.strides, self.dilation_rate)
        w = [("kernel", (self.filters, c) + self.kernel_size)]
        w += [("bias", (self.filters,))] if self.use_bias else []
        return w, self._spatial_out(self.filters, oh, ow)

    def regularization_loss(self):
        return None if self.kernel_regularizer is None else self.kernel_regularizer(self.kernel)

    def get_config(self):
        reg = self._reg_spec.get_config() if isinstance(self._reg_spec, L1L2) else self._reg_spec
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
                "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer, "kernel_regularizer": reg,
                **self._base_config()}


class _Pool(_Spatial):
    _fn = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid",
                 data_format="channels_last", input_shape=None, name=None):
        super().__init__(padding, data_format, input_shape, name)
        self.pool_size = _pair(pool_size, "pool_size", type(self).__name__)
        self.strides = self.pool_size if strides is None else _pair(strides, "strides",
                                                                    type(self).__name__)

    def call(self, x):
        x = self._to_nchw(x)
        if self.padding == "same" and type(self) is AveragePooling2D:
            # TF averages only over real pixels at the border: divide by a pooled ones-mask
            ones = Tensor(np.ones((1, 1) + x.shape[2:], dtype=x.dtype))
            num = F.avg_pool2d(self._pad(x, self.pool_size, self.strides), self.pool_size,
                               self.strides)
            den = F.avg_pool2d(self._pad(ones, self.pool_size, self.strides), self.pool_size,
                               self.strides)
            return self._from_nchw(num / den)
        x = self._pad(x, self.pool_size, self.strides, value=-np.inf if self._max else 0.0)
        y = (F.max_pool2d if self._max else F.avg_pool2d)(x, self.pool_size, self.strides)
        return self._from_nchw(y)

    def shape_plan(self, input_shape):
        c, oh, ow = self._out_hw(input_shape, self.pool_size, self.strides)
        return [], self._spatial_out(c, oh, ow)

    def get_config(self):
        return {"pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format, **self._base_config()}


class MaxPooling2D(_Pool):
    """Max over ``pool_size`` windows (stride defaults to the pool size), channels_last."""
    _max = True


class AveragePooling2D(_Pool):
    """Mean over ``pool_size`` windows (stride defaults to the pool size), channels_last."""
    _max = False


# ------------------------------------------------------------------ normalization ---

class BatchNormalization(Layer):
    """Normalize each feature (the last axis) by the batch mean and variance while training,
    by the moving averages otherwise: ``y = gamma (x - mean) / sqrt(var + eps) + beta``.
    Moving averages follow Keras: ``moving = momentum * moving + (1 - momentum) * batch`` (the
    biased batch variance).

    The math is ``nn.normalization.batch_norm`` (the core BatchNorm's), called with the channel
    axis last and PyTorch's momentum convention: Keras' ``momentum=m`` is PyTorch's ``1 - m``.
    Note the different default epsilon: Keras 1e-3, PyTorch 1e-5.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 input_shape=None, name=None):
        super().__init__(input_shape, name)
        if axis != -1:
            raise ValueError(f"BatchNormalization: only axis=-1 (channels_last) is supported, "
                             f"got axis={axis!r}")
        if not 0.0 <= momentum <= 1.0 or epsilon <= 0:
            raise ValueError(f"BatchNormalization: need 0 <= momentum <= 1 and epsilon > 0, got "
                             f"momentum={momentum}, epsilon={epsilon}")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.gamma = self.beta = None

    def build(self, input_shape):
        c = input_shape[-1]
        self.gamma = Parameter(np.ones(c, np.float32)) if self.scale else None
        self.beta = Parameter(np.zeros(c, np.float32)) if self.center else None
        self.register_buffer("moving_mean", Tensor(np.zeros(c, np.float32)))
        self.register_buffer("moving_variance", Tensor(np.ones(c, np.float32)))
        self.built = True

    def call(self, x):
        from .nn.normalization import batch_norm

        return batch_norm(x, self.moving_mean, self.moving_variance, self.gamma, self.beta,
                          training=self.training, momentum=1.0 - self.momentum,
                          eps=self.epsilon, axis=-1, unbiased_running_var=False)

    def weight_tensors(self):
        out = [("gamma", self.gamma)] if self.scale else []
        out += [("beta", self.beta)] if self.center else []
        return out + [("moving_mean", self.moving_mean), ("moving_variance", self.moving_variance)]

    def shape_plan(self, input_shape):
        if not input_shape:
            raise ShapeError("BatchNormalization: input must have a feature axis, got per-sample "
                             "shape ()")
        c = (input_shape[-1],)
        names = ["gamma"] * self.scale + ["beta"] * self.center + ["moving_mean",
                                                                   "moving_variance"]
        return [(n, c) for n in names], tuple(input_shape)

    def get_config(self):
        return {"axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, **self._base_config()}


# ------------------------------------------------------------------ embedding ---

class Embedding(Layer):
    """Integer ids (N, T) -> vectors (N, T, output_dim): row ``i`` of ``embeddings`` for id i."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", input_shape=None,
                 input_length=None, name=None):
        if input_shape is None and input_length is not None:
            input_shape = (input_length,)
        super().__init__(input_shape, name)
        if int(input_dim) < 1 or int(output_dim) < 1:
            raise ValueError(f"Embedding: input_dim and output_dim must be >= 1, got "
                             f"{input_dim}, {output_dim}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = embeddings_initializer
        self.embeddings = None

    def build(self, input_shape):
        self.embeddings = initialize(self.embeddings_initializer,
                                     (self.input_dim, self.output_dim))
        self.built = True

    def call(self, x):
        ids = x.data
        if ids.dtype.kind == "f":
            if ids.size and not np.all(ids == np.round(ids)):
                raise ShapeError("Embedding: ids must be whole numbers, got fractional values")
            ids = ids.astype(np.int64)
        return F.embedding(ids, self.embeddings)

    def weight_tensors(self):
        return [("embeddings", self.embeddings)]

    def shape_plan(self, input_shape):
        return [("embeddings", (self.input_dim, self.output_dim))], \
            tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {"input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": self.embeddings_initializer, **self._base_config()}


# ------------------------------------------------------------------ recurrent ---

class _Recurrent(Layer):
    """SimpleRNN/LSTM/GRU over (N, T, F) input through ``nn.functional``'s recurrent core (one
    fused Function when ``activation`` is tanh, or relu for SimpleRNN), Keras weight layout:
    ``kernel`` (F, g*units), ``recurrent_kernel`` (units, g*units), ``bias`` (g*units)."""

    _gates = 1

    def __init__(self, units, activation="tanh", return_sequences=False, use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", input_shape=None, name=None):
        super().__init__(input_shape, name)
        if int(units) < 1:
            raise ValueError(f"{type(self).__name__}: units must be >= 1, got {units!r}")
        self.units, self.activation = int(units), activation
        self._act = get_activation(activation, type(self).__name__)
        self.return_sequences, self.use_bias = bool(return_sequences), bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.kernel = self.recurrent_kernel = self.bias = None

    def _bias_shape(self):
        return (self._gates * self.units,)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"{type(self).__name__}: expected per-sample shape (timesteps, "
                             f"features), got {input_shape}; reshape x to (n, t, f)")
        g = self._gates * self.units
        self.kernel = initialize(self.kernel_initializer, (input_shape[-1], g))
        self.recurrent_kernel = initialize(self.recurrent_initializer, (self.units, g))
        if self.use_bias:
            self.bias = initialize(self.bias_initializer, self._bias_shape())
        self.built = True

    def call(self, x):
        if x.ndim != 3:
            raise ShapeError(f"{type(self).__name__}: expected a 3-D (batch, timesteps, features) "
                             f"input, got shape {x.shape}")
        from .nn._recurrent_core import FUSED_ACTIVATIONS, recurrent

        fused = self.activation in FUSED_ACTIVATIONS[self._kind]
        out, h_n = recurrent(self._kind, x, None, [self._core_weights()], batch_first=True,
                             layout="keras", act=None if fused else self._act,
                             **self._core_kwargs())
        if self.return_sequences:
            return out
        return (h_n[0] if self._kind == "lstm" else h_n)[0]      # the last step's h

    def _core_weights(self):
        """(w_ih, w_hh, b_ih, b_hh) for nn.functional's recurrent core, Keras layout."""
        return self.kernel, self.recurrent_kernel, self.bias if self.use_bias else None, None

    def _core_kwargs(self):      # other activations go through ``act`` (the reference path)
        return {"nonlinearity": self.activation if self.activation == "relu" else "tanh"}

    def weight_tensors(self):
        out = [("kernel", self.kernel), ("recurrent_kernel", self.recurrent_kernel)]
        return out + ([("bias", self.bias)] if self.use_bias else [])

    def shape_plan(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"{type(self).__name__}: expected per-sample shape (timesteps, "
                             f"features), got {tuple(input_shape)}")
        g = self._gates * self.units
        w = [("kernel", (input_shape[-1], g)), ("recurrent_kernel", (self.units, g))]
        w += [("bias", self._bias_shape())] if self.use_bias else []
        out = (input_shape[0], self.units) if self.return_sequences else (self.units,)
        return w, out

    def get_config(self):
        return {"units": self.units, "activation": self.activation,
                "return_sequences": self.return_sequences, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "recurrent_initializer": self.recurrent_initializer,
                "bias_initializer": self.bias_initializer, **self._base_config()}


class SimpleRNN(_Recurrent):
    """``h_t = activation(x_t W + h_{t-1} U + b)``; returns the last h (or all with
    ``return_sequences=True``). Runs ``nn.functional.rnn`` (Keras layout)."""

    _kind = "rnn"


class LSTM(_Recurrent):
    """Long short-term memory, Keras gate order (i, f, c, o):
    ``i, f, o = sigmoid(.)``, ``c_t = f c_{t-1} + i tanh(.)``, ``h_t = o tanh(c_t)``.
    The forget-gate bias starts at 1 (Keras' ``unit_forget_bias``)."""

    _gates = 4

    def build(self, input_shape):
        super().build(input_shape)
        if self.use_bias:
            self.bias.data[self.units:2 * self.units] = 1.0

    _kind = "lstm"

    def _core_kwargs(self):
        return {"gates": "ifgo"}      # Keras' (i, f, c, o) is PyTorch's (i, f, g, o)


class GRU(_Recurrent):
    """Gated recurrent unit, Keras ``reset_after=True`` form, gate order (z, r, h):
    ``z, r = sigmoid(.)``, ``h~ = tanh(x W_h + b_h + r (h U_h + b'_h))``, ``h_t = z h + (1-z) h~``.
    ``bias`` is (2, 3 units): input bias and recurrent bias."""

    _gates = 3

    def _bias_shape(self):
        return (2, 3 * self.units)

    _kind = "gru"

    def _core_weights(self):
        b = self.bias if self.use_bias else None
        return (self.kernel, self.recurrent_kernel, None if b is None else b[0],
                None if b is None else b[1])

    def _core_kwargs(self):
        return {"gates": "zrn"}


# ------------------------------------------------------------------ allow-list ---

LAYERS = {cls.__name__: cls for cls in (InputLayer, Dense, Activation, Dropout, Flatten, Reshape,
                                         Conv2D, MaxPooling2D, AveragePooling2D,
                                         BatchNormalization, Embedding, SimpleRNN, LSTM, GRU)}

_JSON_SCALARS = (str, int, float, bool, type(None))


def _json_only(v):
    if isinstance(v, _JSON_SCALARS):
        return True
    if isinstance(v, list):
        return len(v) <= 16 and all(isinstance(a, _JSON_SCALARS) for a in v)
    if isinstance(v, dict):
        return set(v) <= {"l1", "l2"} and all(isinstance(a, (int, float)) for a in v.values())
    return False


def from_config(entry):
    """Rebuild one layer from ``{"class_name": ..., "config": {...}}``; only ``LAYERS`` names and
    constructor keywords with plain JSON values are accepted."""
    import inspect

    if not isinstance(entry, dict) or set(entry) != {"class_name", "config"}:
        raise ModelFormatError(f"from_config: a layer entry must be {{'class_name', 'config'}}, "
                               f"got {str(entry)[:80]}")
    name, cfg = entry["class_name"], entry["config"]
    if name not in LAYERS:
        raise ModelFormatError(f"from_config: layer class {str(name)[:40]!r} is not in the "
                               f"allow-list {sorted(LAYERS)}")
    if not isinstance(cfg, dict):
        raise ModelFormatError(f"from_config: config of {name} must be an object, got "
                               f"{type(cfg).__name__}")
    allowed = set(inspect.signature(LAYERS[name].__init__).parameters) - {"self"}
    bad = [k for k in cfg if k not in allowed or not _json_only(cfg[k])]
    if bad:
        raise ModelFormatError(f"from_config: {name} got unknown or non-plain arguments {bad[:5]}")
    for k, v in cfg.items():   # by type, never by truthiness: return_sequences="relu" is refused
        want = _CONFIG_TYPES.get(k)
        if want is not None and not _config_type_ok(v, want):
            raise ModelFormatError(f"from_config: {name}.{k} must be {want}, got "
                                   f"{str(v)[:40]!r}")
    return LAYERS[name](**cfg)


_CONFIG_TYPES = {   # config keys -> the JSON type they must have ("?" allows null)
    "use_bias": "bool", "center": "bool", "scale": "bool", "return_sequences": "bool",
    "rate": "number", "momentum": "number", "epsilon": "number", "seed": "int?",
    "units": "int", "filters": "int", "input_dim": "int?", "output_dim": "int",
    "axis": "int|ints", "input_length": "int?", "name": "str?", "activation": "str?",
    "padding": "str", "data_format": "str", "kernel_initializer": "str",
    "bias_initializer": "str", "recurrent_initializer": "str", "embeddings_initializer": "str",
}


def _config_type_ok(v, want):
    if want.endswith("?"):
        if v is None:
            return True
        want = want[:-1]
    if want == "bool":
        return isinstance(v, bool)
    if want == "int|ints":   # LayerNormalization(axis=[1, 2])
        vs = v if isinstance(v, list) and v else [v]
        return all(isinstance(a, int) and not isinstance(a, bool) for a in vs)
    if want == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if want == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return isinstance(v, str)


# ------------------------------------------------------------------ Keras 3 layers (issue 9) ---
# Weight layouts are Keras's own, so ``get_weights``-style arrays from Keras load unchanged:
#   LayerNormalization: gamma, beta -- the shape of the normalized axes;
#   Conv1D: kernel (kernel_size, in_channels, filters), bias (filters,);
#   MultiHeadAttention (EinsumDense kernels): query/key kernel (dim, heads, key_dim),
#     value kernel (dim, heads, value_dim), their biases (heads, key_dim | value_dim),
#     attention_output kernel (heads, value_dim, output_dim), bias (output_dim,).


class LayerNormalization(Layer):
    """Normalize each sample over ``axis`` (default the last): y = gamma (x - mean) /
    sqrt(var + epsilon) + beta with the biased variance (Keras's defaults: epsilon=1e-3,
    gamma ones, beta zeros). ``gamma``/``beta`` have the shape of the normalized axes.

    >>> LayerNormalization()(Tensor(np.ones((2, 3, 4), "f"))).shape
    (2, 3, 4)
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, input_shape=None,
                 name=None):
        super().__init__(input_shape, name)
        if epsilon <= 0:
            raise ValueError(f"LayerNormalization: epsilon must be > 0, got {epsilon}")
        self.axis = [int(a) for a in axis] if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.gamma = self.beta = None

    def _axes(self, input_shape):
        rank = len(input_shape) + 1
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        out = sorted({a % rank for a in axes if -rank <= a < rank})
        if len(out) != len(axes) or 0 in out:
            raise ShapeError(f"LayerNormalization: axis must name non-batch axes of a rank-{rank} "
                             f"input, got axis={self.axis}")
        return out, tuple(input_shape[a - 1] for a in out)

    def build(self, input_shape):
        _, shape = self._axes(input_shape)
        self.gamma = Parameter(np.ones(shape, np.float32)) if self.scale else None
        self.beta = Parameter(np.zeros(shape, np.float32)) if self.center else None
        self.built = True

    def call(self, x):
        axes, shape = self._axes(x.shape[1:])
        if tuple(x.shape[a] for a in axes) != shape or \
                (self.gamma is not None and self.gamma.shape != shape):
            raise ShapeError(f"LayerNormalization: input axes {axes} do not match the weights, got "
                             f"input shape {x.shape}")
        bshape = [1] * x.ndim
        for a in axes:
            bshape[a] = x.shape[a]
        mean = x.mean(axis=tuple(axes), keepdims=True)
        var = x.var(axis=tuple(axes), keepdims=True, correction=0)
        y = (x - mean) / (var + self.epsilon).sqrt()
        if self.gamma is not None:
            y = y * self.gamma.reshape(bshape)
        if self.beta is not None:
            y = y + self.beta.reshape(bshape)
        return y

    def weight_tensors(self):
        return [("gamma", self.gamma)] * self.scale + [("beta", self.beta)] * self.center

    def shape_plan(self, input_shape):
        _, shape = self._axes(tuple(input_shape))
        return [(n, shape) for n in ["gamma"] * self.scale + ["beta"] * self.center], \
            tuple(input_shape)

    def get_config(self):
        return {"axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, **self._base_config()}


class Conv1D(Layer):
    """1-D convolution on (N, steps, channels) input (channels_last, Keras's default), kernel
    in Keras's layout (kernel_size, in_channels, filters):
    y[n, t, f] = bias[f] + sum_{j,c} x_pad[n, t*s + j*d, c] * kernel[j, c, f].
    ``padding``: 'valid', 'same' (TensorFlow's: output ceil(steps / s), the odd pad at the
    end) or 'causal' (d (k - 1) zeros in front: step t sees only steps <= t).

    >>> Conv1D(4, 3, padding="causal")(Tensor(np.ones((2, 7, 3), "f"))).shape
    (2, 7, 4)
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid",
                 data_format="channels_last", dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", input_shape=None,
                 name=None):
        super().__init__(input_shape, name)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"Conv1D: filters must be an int >= 1, got {filters!r}")
        if padding not in ("valid", "same", "causal"):
            raise ValueError(f"Conv1D: padding must be 'valid', 'same' or 'causal', got "
                             f"{padding!r}")
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"Conv1D: data_format must be 'channels_last' or 'channels_first', "
                             f"got {data_format!r}")

        def one(v, what):
            v = v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Conv1D: {what} must be a positive int, got {v!r}")
            return int(v)

        self.filters, self.kernel_size = int(filters), one(kernel_size, "kernel_size")
        self.strides, self.dilation_rate = one(strides, "strides"), one(dilation_rate,
                                                                         "dilation_rate")
        self.padding, self.data_format = padding, data_format
        self.activation = activation
        self._act = get_activation(activation, "Conv1D")
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        initialize(kernel_initializer, (1, 1))
        self.kernel = self.bias = None

    def _split(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"Conv1D: expected per-sample shape (steps, channels), got "
                             f"{tuple(input_shape)}; reshape x to (n, steps, channels)")
        return input_shape if self.data_format == "channels_last" else input_shape[::-1]

    def build(self, input_shape):
        _, c = self._split(input_shape)
        k = self.kernel_size
        self.kernel = initialize(self.kernel_initializer, (k, c, self.filters),
                                 fans=(k * c, k * self.filters))
        if self.use_bias:
            self.bias = initialize(self.bias_initializer, (self.filters,))
        self.built = True

    def _pads(self, steps):
        k, s, d = self.kernel_size, self.strides, self.dilation_rate
        if self.padding == "same":
            return _same_pads(steps, k, s, d)
        if self.padding == "causal":
            return d * (k - 1), 0
        return 0, 0

    def call(self, x):
        if x.ndim != 3:
            raise ShapeError(f"Conv1D: expected a 3-D (batch, steps, channels) input, got shape "
                             f"{x.shape}")
        x = x.swapaxes(1, 2) if self.data_format == "channels_last" else x     # (N, C, L)
        if x.shape[1] != self.kernel.shape[1]:
            raise ShapeError(f"Conv1D: expected {self.kernel.shape[1]} input channels, got input "
                             f"shape {x.shape} (N, C, L)")
        lo, hi = self._pads(x.shape[2])
        if lo or hi:
            x = x.pad(((0, 0), (0, 0), (lo, hi)))
        y = F.conv1d(x, self.kernel.permute(2, 1, 0), self.bias, stride=self.strides,
                     dilation=self.dilation_rate)
        y = self._act(y)
        return y.swapaxes(1, 2) if self.data_format == "channels_last" else y

    def weight_tensors(self):
        return [("kernel", self.kernel)] + ([("bias", self.bias)] if self.use_bias else [])

    def shape_plan(self, input_shape):
        steps, c = self._split(tuple(input_shape))
        lo, hi = self._pads(steps)
        out = (steps + lo + hi - self.dilation_rate * (self.kernel_size - 1) - 1) // \
            self.strides + 1
        if out < 1:
            raise ShapeError(f"Conv1D: kernel {self.kernel_size} (dilation {self.dilation_rate}) "
                             f"does not fit the input {tuple(input_shape)}")
        w = [("kernel", (self.kernel_size, c, self.filters))]
        w += [("bias", (self.filters,))] if self.use_bias else []
        return w, (out, self.filters) if self.data_format == "channels_last" else \
            (self.filters, out)

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer, **self._base_config()}


class MultiHeadAttention(Layer):
    """Keras's multi-head attention over (batch, steps, features) inputs.

    ``layer(query, value, key=None, attention_mask=None, return_attention_scores=False,
    use_causal_mask=False)``; key defaults to value. With Q_h = query kernel_h, ...:
    scores_h = (x_q Q_h + b) / sqrt(key_dim) . (x_k K_h + b)^T; where ``attention_mask``
    (batch, T, S) is False the score becomes -1e9 before the softmax over the keys and the
    weight 0 after it (Keras 3: a query whose keys are all masked gets zero weights); dropout
    on the weights while training; out = sum_h (weights_h V_h) O_h + b_o. The returned
    attention scores are the weights before dropout, as Keras. Weights in Keras's layout (see
    above); the output width is ``output_shape`` or the query's.

    >>> mha = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = Tensor(np.ones((3, 5, 8), "f"))
    >>> mha(x, x).shape
    (3, 5, 8)
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", name=None):
        super().__init__(None, name)
        for what, v in (("num_heads", num_heads), ("key_dim", key_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"MultiHeadAttention: {what} must be an int >= 1, got {v!r}")
        if attention_axes is not None:
            raise ValueError("MultiHeadAttention: only attention_axes=None (attend over the "
                             f"steps axis) is supported, got {attention_axes!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout!r}")
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.value_dim = int(value_dim) if value_dim is not None else self.key_dim
        self.dropout, self.use_bias = float(dropout), bool(use_bias)
        self.output_shape = None if output_shape is None else int(
            output_shape[-1] if isinstance(output_shape, (list, tuple)) else output_shape)
        self.attention_axes = None
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        initialize(kernel_initializer, (1, 1))
        self._names = ["query", "key", "value", "attention_output"]
        for n in self._names:
            setattr(self, f"{n}_kernel", None)
            setattr(self, f"{n}_bias", None)

    def _plan(self, dq, dk, dv):
        h, kd, vd = self.num_heads, self.key_dim, self.value_dim
        out = self.output_shape or dq
        shapes = {"query": ((dq, h, kd), (h, kd)), "key": ((dk, h, kd), (h, kd)),
                  "value": ((dv, h, vd), (h, vd)), "attention_output": ((h, vd, out), (out,))}
        w = []
        for n in self._names:
            w.append((f"{n}/kernel", shapes[n][0]))
            if self.use_bias:
                w.append((f"{n}/bias", shapes[n][1]))
        return w, out

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = value_shape or query_shape
        key_shape = key_shape or value_shape
        plan, _ = self._plan(query_shape[-1], key_shape[-1], value_shape[-1])
        for name, shape in plan:
            layer, kind = name.split("/")
            if kind == "kernel":
                # Keras's EinsumDense fans: input axes = fan_in, output axes = fan_out
                fan_in = shape[0] if layer != "attention_output" else shape[0] * shape[1]
                fan_out = int(np.prod(shape)) // fan_in
                p = initialize(self.kernel_initializer, shape, fans=(fan_in, fan_out))
            else:
                p = initialize(self.bias_initializer, shape)
            setattr(self, f"{layer}_{kind}", p)
        self.built = True

    def forward(self, query, value, key=None, attention_mask=None, return_attention_scores=False,
                use_causal_mask=False):
        def t(x):
            return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32))

        q, v = t(query), t(value)
        k = v if key is None else t(key)
        if q.ndim != 3 or k.ndim != 3 or v.ndim != 3 or k.shape[:2] != v.shape[:2] or \
                q.shape[0] != k.shape[0]:
            raise ShapeError(f"MultiHeadAttention: expected query (B, T, dim) and key/value "
                             f"(B, S, dim), got {q.shape}, {k.shape}, {v.shape}")
        if not self.built:
            self.build(q.shape[1:], v.shape[1:], k.shape[1:])
        B, T, S = q.shape[0], q.shape[1], k.shape[1]
        h = self.num_heads

        def project(x, name, width):            # (B, n, dim) -> (B, h, n, width)
            w = getattr(self, f"{name}_kernel")
            if x.shape[-1] != w.shape[0]:
                raise ShapeError(f"MultiHeadAttention: {name} input has {x.shape[-1]} features, "
                                 f"the kernel expects {w.shape[0]}")
            y = x @ w.reshape(w.shape[0], -1)
            if self.use_bias:
                y = y + getattr(self, f"{name}_bias").reshape(-1)
            return y.reshape(B, x.shape[1], h, width).permute(0, 2, 1, 3)

        qh = project(q, "query", self.key_dim) * (1.0 / math.sqrt(self.key_dim))
        kh, vh = project(k, "key", self.key_dim), project(v, "value", self.value_dim)
        scores = qh @ kh.swapaxes(-1, -2)                                  # (B, h, T, S)
        mask = None
        if attention_mask is not None:
            m = attention_mask.data if isinstance(attention_mask, Tensor) else \
                np.asarray(attention_mask)
            m = m if m.dtype == np.bool_ else m > 0.5          # Keras: keep where > 0.5
            mask = np.broadcast_to(m, (B, T, S))[:, None]
        if use_causal_mask:
            causal = np.tril(np.ones((T, S), dtype=bool))
            mask = causal if mask is None else mask & causal
        if mask is None:
            weights = scores.softmax(-1)
        else:
            keep = Tensor(np.broadcast_to(mask, scores.shape))
            weights = keep.where(keep.where(scores, -1e9).softmax(-1), 0.0)
        dropped = weights
        if self.training and self.dropout > 0.0:
            dropped = F.dropout(weights, self.dropout, training=True)
        o = (dropped @ vh).permute(0, 2, 1, 3).reshape(B, T, h * self.value_dim)
        wo = self.attention_output_kernel
        out = o @ wo.reshape(h * self.value_dim, wo.shape[-1])
        if self.use_bias:
            out = out + self.attention_output_bias
        return (out, weights) if return_attention_scores else out

    def weight_tensors(self):
        out = []
        for n in self._names:
            out.append((f"{n}/kernel", getattr(self, f"{n}_kernel")))
            if self.use_bias:
                out.append((f"{n}/bias", getattr(self, f"{n}_bias")))
        return out

    def shape_plan(self, input_shape):
        """For self-attention on per-sample ``input_shape`` (steps, dim)."""
        w, out = self._plan(input_shape[-1], input_shape[-1], input_shape[-1])
        return w, tuple(input_shape[:-1]) + (out,)

    def get_config(self):
        return {"num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self.output_shape, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer, **self._base_config()}


LAYERS.update({cls.__name__: cls for cls in (LayerNormalization, Conv1D)})
__all__ += ["LayerNormalization", "Conv1D", "MultiHeadAttention"]


# ------------------------------------------------------------------ int8 (quantize.py) ---

class _Quantized(Layer):
    """Shared part of the int8 layers: weights ``kernel_q`` (out, k) int8, ``kernel_scale``
    (out,) and ``input_scale`` (1,) float32, ``bias`` (out,) float32. Inference only: the
    output is a Tensor without a graph. Made by ``tinygrad_lite.quantize.quantize_model``."""

    def _alloc(self, n_out, k):
        self.kernel_q = Tensor(np.zeros((n_out, k), dtype=np.int8))
        self.kernel_scale = Tensor(np.ones(n_out, dtype=np.float32))
        self.input_scale = Tensor(np.ones(1, dtype=np.float32))
        self.bias = Tensor(np.zeros(n_out, dtype=np.float32)) if self.use_bias else None
        self.built = True

    def _plan(self, n_out, k):
        w = [("kernel_q", (n_out, k)), ("kernel_scale", (n_out,)), ("input_scale", (1,))]
        return w + ([("bias", (n_out,))] if self.use_bias else [])

    def weight_tensors(self):
        return [("kernel_q", self.kernel_q), ("kernel_scale", self.kernel_scale),
                ("input_scale", self.input_scale)] + ([("bias", self.bias)] if self.use_bias
                                                      else [])

    def _matmul(self, cols):
        """``act(dequant(q(cols) @ q(W).T) + b)`` for float rows ``cols`` (m, k): int8 GEMM,
        int32 sums; ReLU is fused, any other activation is applied by the caller."""
        from .quantize import qlinear

        return qlinear(cols, self.input_scale.numpy()[0], self.kernel_q.numpy(),
                       self.kernel_scale.numpy(), None if self.bias is None else
                       self.bias.numpy(), relu=self.activation == "relu")

    def _activate(self, y):
        return Tensor(y) if self.activation == "relu" else self._act(Tensor(y))


class QuantizedDense(_Quantized):
    """int8 Dense: ``activation(dequant(q(x) @ q(W).T) + bias)`` (see ``quantize.py``)."""

    def __init__(self, units, activation=None, use_bias=True, input_shape=None, name=None):
        super().__init__(input_shape, name)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"QuantizedDense: units must be an int >= 1, got {units!r}")
        self.units, self.activation, self.use_bias = int(units), activation, bool(use_bias)
        self._act = get_activation(activation, "QuantizedDense")
        self.kernel_q = self.kernel_scale = self.input_scale = self.bias = None

    def build(self, input_shape):
        if not input_shape:
            raise ShapeError(f"QuantizedDense: input must have a feature axis, got per-sample "
                             f"shape {input_shape}")
        self._alloc(self.units, input_shape[-1])

    def shape_plan(self, input_shape):
        if not input_shape:
            raise ShapeError(f"QuantizedDense: input must have a feature axis, got per-sample "
                             f"shape {tuple(input_shape)}")
        return self._plan(self.units, input_shape[-1]), tuple(input_shape[:-1]) + (self.units,)

    def call(self, x):
        x = x.numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.kernel_q.shape[1]:
            raise ShapeError(f"QuantizedDense: expected {self.kernel_q.shape[1]} input features, "
                             f"got input shape {x.shape}")
        y = self._matmul(x.reshape(-1, x.shape[-1])).reshape(x.shape[:-1] + (self.units,))
        return self._activate(y)

    def get_config(self):
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                **self._base_config()}


class QuantizedConv2D(_Quantized, _Spatial):
    """int8 Conv2D: im2col of the quantized input, then the int8 GEMM (see ``quantize.py``);
    ``kernel_q`` is (filters, C*kh*kw) in our (out, in, kh, kw) order."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format="channels_last", dilation_rate=(1, 1), activation=None,
                 use_bias=True, input_shape=None, name=None):
        _Spatial.__init__(self, padding, data_format, input_shape, name)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"QuantizedConv2D: filters must be an int >= 1, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size", "QuantizedConv2D")
        self.strides = _pair(strides, "strides", "QuantizedConv2D")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate", "QuantizedConv2D")
        self.activation, self.use_bias = activation, bool(use_bias)
        self._act = get_activation(activation, "QuantizedConv2D")
        self.kernel_q = self.kernel_scale = self.input_scale = self.bias = None

    def build(self, input_shape):
        c, _, _ = self._out_hw(input_shape, self.kernel_size, self.strides, self.dilation_rate)
        self._alloc(self.filters, c * self.kernel_size[0] * self.kernel_size[1])

    def shape_plan(self, input_shape):
        c, oh, ow = self._out_hw(input_shape, self.kernel_size, self.strides, self.dilation_rate)
        k = c * self.kernel_size[0] * self.kernel_size[1]
        return self._plan(self.filters, k), self._spatial_out(self.filters, oh, ow)

    def call(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, dtype=np.float32))
        x = self._pad(self._to_nchw(x), self.kernel_size, self.strides, self.dilation_rate)
        xs = x.numpy()                                           # (N, C, Hp, Wp)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        if xs.shape[1] * kh * kw != self.kernel_q.shape[1]:
            raise ShapeError(f"QuantizedConv2D: expected {self.kernel_q.shape[1] // (kh * kw)} "
                             f"input channels, got input shape {xs.shape} (NCHW)")
        win = np.lib.stride_tricks.sliding_window_view(
            xs, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
        n, _, oh, ow = win.shape[:4]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1)   # (N*OH*OW, C*kh*kw)
        y = self._matmul(cols).reshape(n, oh, ow, self.filters).transpose(0, 3, 1, 2)
        return self._from_nchw(self._activate(np.ascontiguousarray(y)))

    def get_config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
                "activation": self.activation, "use_bias": self.use_bias,
                **self._base_config()}


LAYERS.update({cls.__name__: cls for cls in (QuantizedDense, QuantizedConv2D)})
__all__ += ["QuantizedDense", "QuantizedConv2D"]
