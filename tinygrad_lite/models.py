"""Keras-style ``Sequential``: stack layers, ``compile``, ``fit``, ``evaluate``, ``predict``.

The seed's example runs with only the import line changed:

>>> from tinygrad_lite.models import Sequential
>>> from tinygrad_lite.layers import Dense
>>> model = Sequential([Dense(128, activation="relu", input_shape=(64,)),
...                     Dense(10, activation="softmax")])
>>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
>>> # model.fit(x_train, y_train, epochs=5, batch_size=64); model.evaluate(x_test, y_test)

What ``fit`` does per batch is the loop of every earlier chapter:
``loss = L(model(x), y)``; ``loss.backward()``; ``optimizer.step()``; ``optimizer.zero_grad()``.

A softmax last layer with a cross-entropy loss is *fused*: training computes
``-log_softmax(z)[y]`` from the logits ``z`` instead of ``-log(softmax(z)[y])``, which loses
every digit once a probability underflows. (Same for sigmoid + binary cross-entropy, via
``softplus(z) - y z``.) ``predict`` still returns probabilities.

Next: layers.py (the layers), callbacks.py (hooks into ``fit``).
"""

import math
import sys
import warnings
from collections import OrderedDict

import numpy as np

from . import layers as L
from . import autograd as _autograd
from . import plan as _plan
from .autograd import no_grad
from .callbacks import CallbackList, History, TerminateOnNaN, write_line
from .errors import LabelError, ModelFormatError, ShapeError, TinygradLiteError
from .nn.losses import softmax_cross_entropy
from .nn.module import Module
from .tensor import Tensor, default_generator, manual_seed, using_generator

__all__ = ["Sequential", "History", "NonFiniteLossError", "OPTIMIZERS", "LOSSES"]

MAX_SAMPLE_ELEMENTS = 2**26   # shape_plan: cap on one layer's per-sample output size


class NonFiniteLossError(TinygradLiteError, FloatingPointError):
    """The training loss became NaN or Inf."""


# ------------------------------------------------------------------ optimizers ---

def _keras_optimizer(name, params, lr=None):
    """Keras' defaults (its epsilon 1e-7, RMSprop rho 0.9) on our PyTorch-style optimizers."""
    from . import optim

    table = {
        "adam": lambda: optim.Adam(params, lr=lr or 1e-3, betas=(0.9, 0.999), eps=1e-7),
        "sgd": lambda: optim.SGD(params, lr=lr or 1e-2),
        "rmsprop": lambda: optim.RMSprop(params, lr=lr or 1e-3, alpha=0.9, eps=1e-7),
        "adagrad": lambda: optim.Adagrad(params, lr=lr or 1e-3, initial_accumulator_value=0.1,
                                         eps=1e-7),
        "adamw": lambda: optim.AdamW(params, lr=lr or 1e-3, weight_decay=0.004, eps=1e-7),
    }
    return table[name]()


OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad", "adamw")


# ------------------------------------------------------------------ losses ---
# Each returns the per-sample loss, shape (N,); fit averages it (weighted by class_weight).

_EPS = 1e-7  # Keras' epsilon: probabilities are clipped to [eps, 1 - eps] before the log


def _onehot(y, c, dtype, device="cpu"):
    if y.ndim == 2:      # already one-hot: a jitted fit step passes it in as an argument
        return _target(y, y)
    return Tensor(np.eye(c, dtype=dtype)[_host(y)], device=device)


def _host(y):
    return y if isinstance(y, np.ndarray) else np.asarray(y.get())


def _device_of(a):
    """"cpu" or "cuda" for a Tensor, a NumPy or a CuPy array."""
    if isinstance(a, Tensor):
        return a.device
    return "cpu" if isinstance(a, (np.ndarray, np.generic)) else "cuda"


def _target(y, out):
    """Labels as a constant Tensor of out's dtype and shape. No copy when they already fit, so a
    jitted fit step sees the very array it was given as an argument."""
    y = y.astype(out.dtype, copy=False)
    return Tensor(y if y.shape == out.shape else y.reshape(out.shape), device=_device_of(out))


def _sparse_ce(out, y, from_logits):
    oh = _onehot(y, out.shape[-1], out.dtype, out.device)
    logp = out.log_softmax(axis=-1) if from_logits else out.clip(_EPS, 1 - _EPS).log()
    return -(logp * oh).sum(axis=-1)


def _categorical_ce(out, y, from_logits):
    t = _target(y, out)
    logp = out.log_softmax(axis=-1) if from_logits else out.clip(_EPS, 1 - _EPS).log()
    return -(logp * t).sum(axis=-1)


def _binary_ce(out, y, from_logits):
    t = _target(y, out)
    if from_logits:   # -[t log s(z) + (1-t) log(1-s(z))] = softplus(z) - t z, stable for any z
        per = out.softplus() - t * out
    else:
        p = out.clip(_EPS, 1 - _EPS)
        per = -(t * p.log() + (1 - t) * (1 - p).log())
    return per.reshape(out.shape[0], -1).mean(axis=-1)


def _regression(kind):
    def loss(out, y, from_logits=False):
        e = out - _target(y, out)
        if kind == "mse":
            per = e * e
        elif kind == "mae":
            per = e.abs()
        else:   # huber, delta 1: quadratic near 0, linear beyond
            a = e.abs()
            q = a.clip(max=1.0)
            per = 0.5 * q * q + (a - q)
        return per.reshape(out.shape[0], -1).mean(axis=-1)
    return loss


LOSSES = {
    "sparse_categorical_crossentropy": ("sparse", _sparse_ce),
    "categorical_crossentropy": ("categorical", _categorical_ce),
    "binary_crossentropy": ("binary", _binary_ce),
    "mse": ("regression", _regression("mse")),
    "mae": ("regression", _regression("mae")),
    "huber": ("regression", _regression("huber")),
}
_ALIASES = {"mean_squared_error": "mse", "mean_absolute_error": "mae", "huber_loss": "huber"}


# ------------------------------------------------------------------ metrics ---

class _Metric:
    """Accumulates one metric over an epoch from (probabilities, labels) batches."""

    def __init__(self, name, kind, task):
        self.name, self.kind, self.task = name, kind, task
        self.reset()

    def reset(self):
        self.num = 0.0
        self.den = 0.0
        self.cm = None

    def _classes(self, p, y):
        if self.task == "binary" or (self.task == "regression" and p.shape[-1] == 1):
            return (p.reshape(len(p), -1)[:, 0] > 0.5).astype(np.int64), \
                (y.reshape(len(y), -1)[:, 0] > 0.5).astype(np.int64), 2
        true = y.argmax(-1) if self.task == "categorical" else y.reshape(-1).astype(np.int64)
        return p.argmax(-1), true, p.shape[-1]

    def update(self, p, y):
        if self.kind in ("mae", "mse"):
            e = p - y.reshape(p.shape)
            self.num += float(np.abs(e).sum() if self.kind == "mae" else (e * e).sum())
            self.den += e.size
            return
        pred, true, c = self._classes(p, y)
        if self.kind == "accuracy":
            self.num += float((pred == true).sum())
            self.den += len(true)
            return
        cm = np.bincount(true * c + pred, minlength=c * c).reshape(c, c)
        self.cm = cm if self.cm is None else self.cm + cm

    def result(self):
        if self.kind in ("accuracy", "mae", "mse"):
            return self.num / self.den if self.den else 0.0
        cm = self.cm if self.cm is not None else np.zeros((2, 2))
        tp = np.diag(cm).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
            rec = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
            f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
        vals = {"precision": prec, "recall": rec, "f1": f1}[self.kind]
        # binary: the positive class (Keras); multi-class: the macro average over classes
        return float(vals[1]) if cm.shape[0] == 2 and self.task in ("binary", "regression") \
            else float(vals.mean())


_METRIC_KINDS = {"accuracy": "accuracy", "acc": "accuracy", "sparse_categorical_accuracy":
                 "accuracy", "categorical_accuracy": "accuracy", "binary_accuracy": "accuracy",
                 "precision": "precision", "recall": "recall", "f1": "f1", "f1_score": "f1",
                 "mae": "mae", "mse": "mse", "mean_absolute_error": "mae",
                 "mean_squared_error": "mse"}


def _softmax_np(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


# ------------------------------------------------------------------ input checks ---

def _as_array(a, name, op):
    if isinstance(a, Tensor):
        a = a.numpy()
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise ShapeError(f"{op}: {name} is not a rectangular array, got {type(a).__name__} "
                         f"({e}); pass a NumPy array") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{op}: {name} must be numeric, got dtype {arr.dtype}; convert strings "
                        "and objects first (e.g. data.LabelEncoder for labels)")
    return arr


_BLAS_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _check_finite(arr, name, op):
    if arr.dtype.kind != "f":
        return
    if _plan._cpu is not None:
        # The extension reads the exponent bits in one pass (kernels/cpu/check.pxi): at the
        # speed of reading x once, about half the BLAS x.x below, and 0.3 us for one row.
        # None: not a contiguous float32/float64 array, check it below.
        ok = _plan._cpu.all_finite(arr)
        if ok:
            return
        if ok is False:
            _raise_nonfinite(arr, name, op)
    if arr.size >= 4096 and arr.dtype in _BLAS_FLOATS and arr.flags.c_contiguous:
        # The common case in one BLAS pass with no temporary: a NaN or an Inf anywhere makes
        # the dot product x.x NaN or Inf, so a finite x.x proves every value finite. (Only a
        # sum of squares that overflows, |x| ~ 1e17 and up in float32, takes the exact pass.)
        r = arr.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            ss = np.dot(r, r)
        if np.isfinite(ss):
            return
    if np.isfinite(arr).all():                          # small arrays: one cheap pass
        return
    _raise_nonfinite(arr, name, op)


def _raise_nonfinite(arr, name, op):
    bad = ~np.isfinite(arr)
    n = int(bad.sum())
    if n:
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        first = first[0] if len(first) == 1 else first
        raise ValueError(f"{op}: {name} contains {n} NaN/Inf value{'s' * (n > 1)}, got the first "
                         f"at index {first}; drop or impute them first, e.g. "
                         f"tinygrad_lite.data.clean(X, y) or data.SimpleImputer")


class LossExplosionWarning(UserWarning):
    """The training loss grew by more than ``LOSS_EXPLOSION_FACTOR`` over a ``fit``."""


LOSS_EXPLOSION_FACTOR = 1e6


def _check_pos_int(v, name, op):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{op}: {name} must be an int >= 1, got {name}={v!r}")
    return int(v)


# ------------------------------------------------------------------ the model ---

class Sequential(Module):
    """A stack of layers applied in order, with the Keras training API.

    Parameters
    ----------
    layers : list of layers (``tinygrad_lite.layers``), optional; more with ``add``.
    name : str, optional

    Examples
    --------
    >>> model = Sequential()
    >>> model.add(Dense(16, activation="relu", input_shape=(4,)))
    >>> model.add(Dense(3, activation="softmax"))
    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> model.predict(np.zeros((2, 4), dtype=np.float32)).shape
    (2, 3)
    """

    def __init__(self, layers=None, name=None):
        super().__init__()
        self.layers = []
        self.name = name
        self.stop_training = False
        self.history = None
        self.preprocessing = None
        self.label_names = None
        self._input_shape = None
        self._compiled = None
        self.optimizer = None
        for layer in layers or []:
            self.add(layer)

    # ---- structure -------------------------------------------------------------------
    def add(self, layer):
        """Append a layer; the first one may fix the input shape (``input_shape=``/``Input``)."""
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.add: expected a layer, got {type(layer).__name__}; use "
                            "tinygrad_lite.layers (Dense, Conv2D, ...)")
        if not self.layers and getattr(layer, "input_shape", None) is not None:
            self._input_shape = tuple(layer.input_shape)
        self.add_module(str(len(self.layers)), layer)
        self.layers.append(layer)
        if self._input_shape is not None and len(self.layers) > 1 and self.built:
            self._build_layers()

    def pop(self):
        layer = self.layers.pop()
        delattr(self, str(len(self.layers)))
        return layer

    @property
    def built(self):
        return self._input_shape is not None and all(
            getattr(m, "built", True) for m in self.layers)

    def build(self, input_shape=None):
        """Create every layer's weights for per-sample ``input_shape`` (without the batch axis)."""
        if input_shape is not None:
            input_shape = tuple(int(d) for d in input_shape)
            if self._input_shape is not None and input_shape != self._input_shape:
                raise ShapeError(f"build: the model was declared for input shape "
                                 f"{self._input_shape}, got {input_shape}")
            self._input_shape = input_shape
        if self._input_shape is None:
            raise ValueError("build: the input shape is unknown, got none; pass input_shape= to "
                             "the first layer, call build((n_features,)), or fit() first")
        self._build_layers()
        return self

    def _build_layers(self):
        was = self.training
        self.eval()
        with no_grad():
            self._forward(Tensor(np.zeros((1,) + self._input_shape, dtype=np.float32)))
        self.train(was)

    @property
    def output_shape(self):
        """(None, ...): the shape one forward pass gives, found by running one zero sample and
        remembered for this chain of layers and input shape (fit asks for it on every call)."""
        self._require_built("output_shape")
        key = (tuple(self.layers), self._input_shape)
        cached = self.__dict__.get("_out_shape")
        if cached is not None and cached[0] == key:
            return cached[1]
        with no_grad():
            was = self.training
            self.eval()
            out = self._forward(Tensor(np.zeros((1,) + self._input_shape, dtype=np.float32)))
            self.train(was)
        shape = (None,) + tuple(out.shape[1:])
        self.__dict__["_out_shape"] = (key, shape)
        return shape

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + self._input_shape

    def _require_built(self, op):
        if self._input_shape is None:
            raise ValueError(f"{op}: the model is not built yet, got no input shape; pass "
                             "input_shape= to the first layer, call build(), or fit() first")
        if not self.built:
            self._build_layers()

    # ---- forward ---------------------------------------------------------------------
    def _fusable(self):
        """'softmax'/'sigmoid' if the last layer ends in that activation and can give logits."""
        if not self.layers:
            return None
        last = self.layers[-1]
        act = getattr(last, "activation", None)
        if act in ("softmax", "sigmoid") and isinstance(last, (L.Dense, L.Activation)):
            return act
        return None

    def _device(self):
        """Where the weights are ("cpu" or "cuda"; "cpu" before they exist)."""
        for p in self.parameters():
            return p.device
        return "cpu"

    def _forward(self, x, logits=False):
        if not self.layers:
            raise ValueError("Sequential: the model has no layers; add some with model.add()")
        # fit/predict on a GPU: the batch follows the weights (the check costs one global read
        # until this process has made a CUDA tensor)
        if _autograd._cuda_seen and (type(x.data) is not np.ndarray or self._device() != "cpu"):
            x = x.to(self._device())
        if not logits:
            for layer in self.layers:
                x = layer(x)
            return x
        for layer in self.layers[:-1]:
            x = layer(x)
        last = self.layers[-1]
        return x if isinstance(last, L.Activation) else last.logits(x)

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, dtype=np.float32))
        return self._forward(x)

    # ---- weights ---------------------------------------------------------------------
    def _weight_tensors(self):
        if self._input_shape is not None and not self.built:
            self._build_layers()
        out = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, L.Layer):
                named = layer.weight_tensors()
            else:
                named = list(layer.named_parameters()) + list(layer.named_buffers())
            out += [(f"layers.{i}.{n}", t) for n, t in named if t is not None]
        return out

    def weights_dict(self):
        """``{"layers.<i>.<name>": ndarray}``: every weight and state array (no copies)."""
        return OrderedDict((k, t.numpy()) for k, t in self._weight_tensors())

    def set_weights_dict(self, arrays):
        """Assign arrays by name, in place (optimizers keep their references); checked first."""
        tensors = OrderedDict(self._weight_tensors())
        if set(arrays) != set(tensors):
            raise ShapeError(f"set_weights_dict: names differ, got missing "
                             f"{sorted(set(tensors) - set(arrays))[:5]}, unexpected "
                             f"{sorted(set(arrays) - set(tensors))[:5]}")
        for k, t in tensors.items():
            if np.shape(arrays[k]) != t.shape:
                raise ShapeError(f"set_weights_dict: {k} needs shape {t.shape}, got "
                                 f"{np.shape(arrays[k])}")
        for k, t in tensors.items():
            t.data[...] = t.xp.asarray(np.asarray(arrays[k], dtype=t.dtype))

    def get_weights(self):
        """Copies of every weight array, in layer order (Keras' ``get_weights``)."""
        return [t.numpy().copy() for _, t in self._weight_tensors()]

    def set_weights(self, weights):
        """Inverse of ``get_weights``: a list of arrays of the same shapes, checked first."""
        named = self._weight_tensors()
        weights = list(weights)
        if len(weights) != len(named):
            raise ShapeError(f"set_weights: the model has {len(named)} weight arrays, got "
                             f"{len(weights)}")
        self.set_weights_dict({k: w for (k, _), w in zip(named, weights)})

    def count_params(self):
        return int(sum(t.size for _, t in self._weight_tensors() if t.requires_grad))

    # ---- compile ---------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                from_logits=False):
        """Choose the optimizer, loss and metrics.

        Parameters
        ----------
        optimizer : 'adam' | 'sgd' | 'rmsprop' | 'adagrad' | 'adamw' (Keras defaults, e.g. Adam
            lr=0.001), an ``optim.Optimizer`` built on ``model.parameters()``, or a callable
            ``params -> Optimizer`` (used when the model is built lazily).
        loss : 'sparse_categorical_crossentropy' | 'categorical_crossentropy' |
            'binary_crossentropy' | 'mse' | 'mae' | 'huber', or a callable
            ``loss(y_true, y_pred) -> Tensor`` (per-sample or scalar).
        metrics : list of 'accuracy', 'precision', 'recall', 'f1', 'mae', 'mse'.
        from_logits : the model outputs logits (no softmax/sigmoid); string losses then use the
            stable log-softmax / softplus forms.
        """
        from .optim import Optimizer

        if loss is None:
            raise ValueError("compile: a loss is needed, got loss=None; e.g. "
                             "loss='sparse_categorical_crossentropy'")
        if isinstance(loss, str):
            key = _ALIASES.get(loss.lower(), loss.lower())
            if key not in LOSSES:
                raise ValueError(f"compile: unknown loss, got {loss!r}; use one of "
                                 f"{sorted(LOSSES)} or a callable")
            task, fn = LOSSES[key]
            loss_name = key
        elif callable(loss):
            task, fn, loss_name = "custom", loss, getattr(loss, "__name__", "custom")
        else:
            raise TypeError(f"compile: loss must be a string or a callable, got "
                            f"{type(loss).__name__}")
        if isinstance(optimizer, str):
            if optimizer.lower() not in OPTIMIZERS:
                raise ValueError(f"compile: unknown optimizer, got {optimizer!r}; use one of "
                                 f"{list(OPTIMIZERS)} or an optim.Optimizer")
            optimizer = optimizer.lower()
        elif not (isinstance(optimizer, Optimizer) or callable(optimizer)):
            raise TypeError(f"compile: optimizer must be a name, an Optimizer or a callable, got "
                            f"{type(optimizer).__name__}")
        mets = []
        for m in metrics or []:
            if not isinstance(m, str) or m.lower() not in _METRIC_KINDS:
                raise ValueError(f"compile: unknown metric, got {m!r}; use one of "
                                 f"{sorted(_METRIC_KINDS)}")
            mets.append(m)
        self._compiled = dict(loss_name=loss_name, loss_fn=fn, task=task, metrics=mets,
                              from_logits=bool(from_logits), optimizer_spec=optimizer)
        self.optimizer = optimizer if isinstance(optimizer, Optimizer) else None
        if self.optimizer is None and self._input_shape is not None:
            self._make_optimizer()

    def _make_optimizer(self):
        spec = self._compiled["optimizer_spec"]
        self._require_built("compile")
        params = list(self.parameters())
        self.optimizer = (_keras_optimizer(spec, params) if isinstance(spec, str)
                          else spec(params))

    def compile_config(self):
        if self._compiled is None:
            return None
        spec = self._compiled["optimizer_spec"]
        return {"optimizer": spec if isinstance(spec, str) else type(spec).__name__,
                "loss": self._compiled["loss_name"] if self._compiled["task"] != "custom"
                else None, "metrics": list(self._compiled["metrics"]),
                "from_logits": self._compiled["from_logits"]}

    def _compile_from_config(self, cfg):
        """Compile from ``compile_config()``; returns None, or what is wrong with ``cfg``.

        A custom (callable) loss is stored as ``loss: None`` and leaves the model uncompiled
        without complaint; anything else unusable is reported so the loader can warn.
        """
        opt, loss = cfg.get("optimizer"), cfg.get("loss")
        mets = cfg.get("metrics") or []
        if loss is None:
            return None
        # an Optimizer instance is stored by class name ("Adam", "RMSprop"): Keras defaults
        opt = opt.lower() if isinstance(opt, str) else opt
        if opt not in OPTIMIZERS:
            return f"unknown optimizer {str(opt)[:40]!r}"
        if not isinstance(loss, str) or loss not in LOSSES:
            return f"unknown loss {str(loss)[:40]!r}"
        if not (isinstance(mets, list) and all(isinstance(m, str) and m.lower() in _METRIC_KINDS
                                               for m in mets)):
            return f"unknown metrics {str(mets)[:60]}"
        from_logits = cfg.get("from_logits", False)
        if not isinstance(from_logits, bool):   # by type: "no" is not True
            return f"from_logits must be true or false, got {str(from_logits)[:20]!r}"
        self.compile(opt, loss, metrics=mets, from_logits=from_logits)
        return None

    def _require_compiled(self, op):
        if self._compiled is None:
            raise RuntimeError(f"{op}: the model is not compiled; call model.compile(optimizer="
                               "'adam', loss='sparse_categorical_crossentropy', metrics="
                               "['accuracy']) first")

    # ---- data checks -----------------------------------------------------------------
    def _check_x(self, x, op):
        x = _as_array(x, "x", op)
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"{op}: x is empty, got shape {x.shape}; pass at least one sample "
                             "(shape (n_samples, ...))")
        _check_finite(x, "x", op)
        if self._input_shape is not None:
            want = self._input_shape
            if x.shape == want and x.ndim >= 1:
                raise ShapeError(f"{op}: got a single sample of shape {x.shape} without a batch "
                                 f"axis; add one: x[None] or x.reshape(1, *{x.shape})")
            if x.shape[1:] != want:
                what = (f"{want[0]} features" if len(want) == 1 else f"samples of shape {want}")
                raise ShapeError(f"{op}: the model expects {what} (input shape (None, "
                                 f"{', '.join(map(str, want))})), got x of shape {x.shape}; "
                                 "apply the same preprocessing/reshape as in training")
        return x.astype(np.float32, copy=False) if x.dtype != np.float32 else x

    def _check_y(self, y, n, op, name="y"):
        y = _as_array(y, name, op)
        if y.ndim == 0:
            raise ShapeError(f"{op}: {name} must have one entry per sample, got a scalar")
        if len(y) != n:
            raise ShapeError(f"{op}: x and {name} have different lengths, got len(x)={n} and "
                             f"len({name})={len(y)}; pass one label per sample")
        _check_finite(y, name, op)
        return y

    def _check_labels(self, y, out_shape, op):
        """Labels against the model's output: range for class indices, shape otherwise."""
        task = self._compiled["task"]
        c = out_shape[-1]
        if task == "sparse":
            y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
            if y.ndim != 1:
                raise ShapeError(f"{op}: sparse_categorical_crossentropy needs integer labels of "
                                 f"shape (n,), got {y.shape}; for one-hot labels use "
                                 "loss='categorical_crossentropy'")
            if y.dtype.kind == "f" and not np.all(y == np.round(y)):
                raise LabelError(f"{op}: labels must be whole numbers for "
                                 "sparse_categorical_crossentropy, got fractional values")
            lo, hi = (int(y.min()), int(y.max()))
            if lo < 0 or hi >= c:
                raise LabelError(f"{op}: labels must be in [0, {c}) for a model with {c} "
                                 f"outputs, got min {lo} and max {hi}; encode labels as 0..k-1 "
                                 "(data.LabelEncoder) or give the last layer more units")
            return y.astype(np.int64)
        if task == "categorical" and y.shape[1:] != tuple(out_shape[1:]):
            raise ShapeError(f"{op}: categorical_crossentropy needs one-hot labels of shape "
                             f"(n, {c}), got {y.shape}; for integer labels use "
                             "loss='sparse_categorical_crossentropy'")
        if task in ("binary", "regression"):
            per = int(np.prod(out_shape[1:]))
            if int(np.prod(y.shape[1:])) != per:
                raise ShapeError(f"{op}: labels must have {per} value(s) per sample to match the "
                                 f"output shape {tuple(out_shape)}, got y of shape {y.shape}")
            if task == "binary" and (y.min() < 0 or y.max() > 1):
                raise LabelError(f"{op}: binary_crossentropy needs labels in [0, 1], got min "
                                 f"{y.min()} and max {y.max()}")
        return y

    # ---- loss ------------------------------------------------------------------------
    def _loss(self, xb, yb, wb, probs=True):
        """(scalar loss Tensor, numpy probabilities) for one batch; with ``probs=False``
        (scalar loss Tensor, output Tensor), reading nothing back (a jitted step)."""
        c = self._compiled
        fused = (not c["from_logits"] and self._fusable() is not None and
                 ((c["task"] in ("sparse", "categorical") and self._fusable() == "softmax") or
                  (c["task"] == "binary" and self._fusable() == "sigmoid")))
        out = self._forward(xb, logits=fused)
        if c["task"] == "custom":
            per = c["loss_fn"](Tensor(yb, device=out.device), out)
            per = per if isinstance(per, Tensor) else Tensor(per, dtype=np.float32,
                                                             device=out.device)
            if per.ndim > 1:
                per = per.reshape(per.shape[0], -1).mean(axis=-1)
        elif (c["task"] == "sparse" and (fused or c["from_logits"]) and wb is None
              and out.ndim == 2 and len(yb)):
            # mean of -log softmax(z)[y] as one fused Function (forward and backward in one pass)
            lab = yb if (isinstance(yb, np.ndarray) and yb.dtype == np.int64 and yb.ndim == 1
                         ) else np.asarray(yb).reshape(-1).astype(np.int64)
            per = softmax_cross_entropy(out, lab)
        else:
            per = c["loss_fn"](out, yb, fused or c["from_logits"])
        if per.ndim == 0:
            loss = per
        elif wb is None:
            loss = per.mean()
        else:   # Keras' sum_over_batch_size: sum(w_i l_i) / n
            loss = (per * Tensor(wb.astype(per.dtype, copy=False), device=per.device)).sum() \
                / per.shape[0]
        return (loss, self._probs(out)) if probs else (loss, out)

    def _probs(self, out):
        c = self._compiled
        fused = (not c["from_logits"] and self._fusable() is not None and
                 ((c["task"] in ("sparse", "categorical") and self._fusable() == "softmax") or
                  (c["task"] == "binary" and self._fusable() == "sigmoid")))
        probs = out.numpy()
        if fused or c["from_logits"]:
            logits_task = c["task"] in ("sparse", "categorical") or (
                c["task"] == "binary" and not fused and self._fusable() != "softmax")
            if c["task"] == "binary":
                probs = 1.0 / (1.0 + np.exp(-probs))
            elif logits_task:
                probs = _softmax_np(probs)
        return probs

    def _reg_loss(self):
        total = None
        for layer in self.layers:
            r = layer.regularization_loss() if isinstance(layer, L.Layer) else None
            if r is not None:
                total = r if total is None else total + r
        return total

    def _metrics(self):
        return [_Metric(m, _METRIC_KINDS[m.lower()], self._compiled["task"])
                for m in self._compiled["metrics"]]

    # ---- fit -------------------------------------------------------------------------
    def _fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
             validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
             sample_weight=None, initial_epoch=0, seed=None, distributed=None, jit="auto"):
        """Train for ``epochs`` passes over (x, y); returns a ``History``.

        Parameters
        ----------
        x, y : arrays, one row / label per sample
        batch_size : int >= 1, default 32
        epochs : int >= 1
        verbose : 0 silent, 1 (or 'auto') a tqdm bar per epoch on stderr, 2 one line per epoch
        callbacks : list of ``callbacks.Callback``
        validation_split : fraction in [0, 1) held out from the *end* of x, y (before shuffling)
        validation_data : (x_val, y_val) or (x_val, y_val, val_sample_weight), used instead of
            validation_split; the weights weight ``val_loss`` (as ``sample_weight`` weights the
            training loss), the other validation metrics stay unweighted
        shuffle : bool, reshuffle the training samples every epoch
        class_weight : {class: weight} multiplying each sample's loss; every class present in
            y needs an entry (as Keras)
        seed : seeds weight init (for a model built here), dropout and shuffling; these draws
            come from this call's own generator (``Dropout(seed=...)`` layers keep theirs), so
            seeded trainings in parallel threads equal the same trainings run in sequence
        distributed : data-parallel over MPI ranks (see ``tinygrad_lite.distributed.fit``):
            None (default) when launched by ``mpiexec`` with several ranks, True, or False.
            ``batch_size`` stays the global batch; each rank computes its share; rank 0 alone
            prints and runs the callbacks; the History is the one-process run's
        jit : "auto" (default), True or False. The forward pass, the loss and the backward
            pass of each batch are captured with ``tinygrad_lite.jit``: the first two batches of
            each shape run eagerly and record, later ones replay the recorded kernel calls,
            bitwise equal to eager (the optimizer update runs after the loss is checked, as in
            eager, so a non-finite loss stops training before its update either way). "auto"
            captures a model of built-in layers with a built-in loss and falls back to eager,
            silently and for good, for a step it cannot capture (e.g. Dropout, whose random mask
            differs per batch; BatchNormalization in training; a custom loss or layer; a
            distributed run); ``history.params["jit"]`` says which ran and why. True raises
            ``JitError`` instead of falling back; False always runs eagerly

        Returns
        -------
        History, whose ``.history`` holds, per epoch, exactly the numbers the bar printed.
        """
        op = "fit"
        self._require_compiled(op)
        batch_size = 32 if batch_size is None else _check_pos_int(batch_size, "batch_size", op)
        epochs = _check_pos_int(epochs, "epochs", op)
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"{op}: validation_split must be in [0, 1), got "
                             f"validation_split={validation_split!r}; e.g. 0.2 holds out 20%")
        if verbose == "auto":
            verbose = 1
        if verbose not in (0, 1, 2):
            raise ValueError(f"{op}: verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"{op}: shuffle must be True or False, got shuffle={shuffle!r}")
        if x is None or y is None:
            raise ValueError(f"{op}: x and y are needed, got x={type(x).__name__}, "
                             f"y={type(y).__name__}")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
                or not 0 <= initial_epoch < epochs:
            raise ValueError(f"{op}: initial_epoch must be an int in [0, epochs), got "
                             f"initial_epoch={initial_epoch!r} with epochs={epochs}; epochs is "
                             "the index of the last epoch (Keras), so resuming after 3 of 10 "
                             "epochs is initial_epoch=3, epochs=10")
        if seed is not None:
            manual_seed(seed)   # as before, for code that draws after fit; fit's own draws come
            # from its thread's generator (see fit below)
        x = self._check_x(x, op)
        y = self._check_y(y, len(x), op)
        sw = None if sample_weight is None else self._check_y(sample_weight, len(x), op,
                                                                "sample_weight")
        if sw is not None and (sw.ndim != 1 or not np.isfinite(sw).all() or (sw < 0).any()):
            raise ValueError(f"{op}: sample_weight must be 1-D, finite and >= 0, got shape "
                             f"{sw.shape} and min {np.min(sw) if sw.size else None}")
        swv = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError(f"{op}: validation_data must be (x_val, y_val[, "
                                 "val_sample_weight]), got "
                                 f"{type(validation_data).__name__}")
            xv = self._check_x(validation_data[0], op + " (validation_data)")
            yv = self._check_y(validation_data[1], len(xv), op + " (validation_data)")
            if len(validation_data) == 3 and validation_data[2] is not None:
                swv = self._check_y(validation_data[2], len(xv), op + " (validation_data)",
                                    "val_sample_weight")
                if swv.ndim != 1 or (swv < 0).any():
                    raise ValueError(f"{op}: val_sample_weight must be 1-D and >= 0, got shape "
                                     f"{swv.shape} and min {swv.min()}")
        elif validation_split > 0:
            split_at = int(len(x) * (1.0 - validation_split))
            if split_at < 1 or split_at >= len(x):
                raise ValueError(f"{op}: validation_split={validation_split} leaves an empty "
                                 f"{'training' if split_at < 1 else 'validation'} set for "
                                 f"{len(x)} samples; pick a split that keeps both non-empty")
            x, xv, y, yv = x[:split_at], x[split_at:], y[:split_at], y[split_at:]
            sw = None if sw is None else sw[:split_at]
        else:
            xv = yv = None
        if self._input_shape is None:
            self.build(x.shape[1:])
        self._require_built(op)
        if self.optimizer is None:
            self._make_optimizer()
        out_shape = (None,) + self.output_shape[1:]
        y = self._check_labels(y, out_shape, op)
        if xv is not None:
            yv = self._check_labels(yv, out_shape, op + " (validation)")
        if class_weight is not None:
            sw = self._class_weights(class_weight, y, sw, op)
        rng = np.random.default_rng(seed) if seed is not None else default_generator()
        dsync = self._fit_distributed(distributed)
        if dsync is not None:
            rng = dsync.rng(rng, seed)
            verbose = verbose if dsync.main else 0
            classes = self.output_shape[-1] if self.output_shape[-1] > 1 else 2

        history = History()
        cbs = list(callbacks or [])
        stopper = any(isinstance(cb, TerminateOnNaN) for cb in cbs)
        if dsync is not None and not dsync.main:   # rank 0 decides; see sync_decisions
            cbs = []
        n, steps = len(x), -(-len(x) // batch_size)
        params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "samples": n,
                  "verbose": verbose}
        cb = CallbackList([history] + cbs, self, params)
        self.stop_training = False
        self.history = history
        tqdm = None
        if verbose == 1:
            from tqdm import tqdm
        if not (jit is True or jit is False or jit == "auto"):
            raise ValueError(f"{op}: jit must be 'auto', True or False, got jit={jit!r}")
        if jit is True and dsync is not None:
            raise ValueError("fit: jit=True and data-parallel training cannot be combined yet, "
                             "got jit=True under a distributed run; pass jit=False")
        why_eager = ("jit=False" if jit is False else
                     "a distributed run" if dsync is not None else
                     None if jit is True else self._jit_unsafe())
        jit_step = self._cached_jit_step(strict=jit is True) if why_eager is None else None
        target = None if jit_step is None else self._jit_targets(out_shape, sw is not None)
        # without shuffling (and not distributed) a batch of C-ordered x is a slice: a view
        # that is C-contiguous itself, no gather
        slices = not shuffle and dsync is None and x.flags.c_contiguous
        cb.on_train_begin({})
        # per-batch hooks and logs only when something reads them (a bar, a callback that
        # overrides a batch hook); otherwise the epoch's logs are made once, at its end
        hook_begin, hook_end = (_overrides(cb.callbacks, "on_train_batch_begin"),
                                _overrides(cb.callbacks, "on_train_batch_end"))
        first_loss = None
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch, {})
            if dsync is not None:
                dsync.sync_decisions(self)
            self.train()
            order = rng.permutation(n) if shuffle else np.arange(n)
            mets = self._metrics()
            loss_sum, seen = 0.0, 0
            bar = None
            if tqdm is not None:
                bar = tqdm(total=steps, desc=f"Epoch {epoch + 1}/{epochs}", file=sys.stderr,
                           unit="batch", dynamic_ncols=True, leave=True)
            logs = {}
            batch_logs = bar is not None or hook_end
            for step in range(steps):
                lo = step * batch_size
                if slices:
                    idx = slice(lo, lo + batch_size)
                    n_step = min(batch_size, n - lo)
                else:
                    idx = order[lo:lo + batch_size]
                    n_step = len(idx)
                if dsync is not None:
                    idx = dsync.shard(idx)
                if hook_begin:
                    cb.on_train_batch_begin(step, {"batch": step, "size": n_step if dsync is None
                                                   else len(idx)})
                if dsync is not None and len(idx) == 0:   # fewer samples than ranks
                    value = dsync.idle_value(n_step)
                elif jit_step is not None:    # forward, backward and step, captured
                    total, out = jit_step(x[idx], target(y[idx]),
                                          None if sw is None else sw[idx].astype(np.float32))
                    value = float(total.item())
                    probs = self._probs(out) if mets else None   # only metrics read them
                    total = out = None        # let the replay reuse the output buffers
                else:
                    loss, probs = self._loss(Tensor(x[idx]), y[idx],
                                             None if sw is None else sw[idx], probs=bool(mets))
                    reg = self._reg_loss()
                    total = loss if reg is None else loss + reg
                    if dsync is None:
                        value = float(total.item())
                    else:
                        total, value = dsync.global_loss(loss, reg, len(idx), n_step)
                if not math.isfinite(value):
                    if bar is not None:
                        bar.close()
                    if stopper:
                        cb.on_train_batch_end(step, {"loss": value})
                        if dsync is not None:   # every rank saw the same global value
                            self.stop_training = True
                        break
                    raise NonFiniteLossError(
                        f"fit: the loss became {value} at epoch {epoch + 1}, batch {step + 1}; "
                        "lower the learning rate, scale the inputs (e.g. MinMaxScaler), check "
                        "the labels, or pass callbacks=[TerminateOnNaN()] to stop quietly")
                if first_loss is None:
                    first_loss = value
                if dsync is not None and len(idx) == 0:
                    dsync.idle_backward(self)
                else:
                    if jit_step is None:
                        self.optimizer.zero_grad()
                        total.backward()
                    self.optimizer.step()       # (a jitted step ran zero_grad and backward)
                    for m in mets:
                        m.update(probs, y[idx])
                loss_sum += value * n_step
                seen += n_step
                if batch_logs:
                    logs = {"loss": loss_sum / seen, **{m.name: m.result() for m in mets}}
                    if bar is not None:
                        bar.set_postfix_str(_fmt(logs), refresh=False)
                        bar.update(1)
                    if hook_end:
                        cb.on_train_batch_end(step, dict(logs))
            if not batch_logs and seen:     # the same numbers, made once
                logs = {"loss": loss_sum / seen, **{m.name: m.result() for m in mets}}
            if dsync is not None and seen:    # epoch numbers over every rank's samples
                dsync.reduce_metrics(mets, classes)
                logs = {"loss": loss_sum / seen, **{m.name: m.result() for m in mets}}
                dsync.sync_buffers(self)
            if self.stop_training and seen < n:   # TerminateOnNaN inside the epoch
                if bar is not None and not bar.disable:
                    bar.close()
                break
            if xv is not None and dsync is not None:
                xs, ys, ws = dsync.eval_shard(xv, yv, swv)
                val = self._evaluate_arrays(xs, ys, batch_size, ws,
                                            reduce=dsync.reduce_eval(classes))
                logs.update({f"val_{k}": v for k, v in val.items()})
            elif xv is not None:
                val = self._evaluate_arrays(xv, yv, batch_size, swv)
                logs.update({f"val_{k}": v for k, v in val.items()})
            if bar is not None:
                bar.set_postfix_str(_fmt(logs), refresh=True)
                bar.close()
            elif verbose == 2:
                write_line(f"Epoch {epoch + 1}/{epochs}: {_fmt(logs)}")
            cb.on_epoch_end(epoch, logs)
            if dsync is not None:
                dsync.sync_decisions(self)
            if self.stop_training:
                break
        params["jit"] = (f"eager: {why_eager}" if jit_step is None else
                         "captured" if not jit_step.fallbacks else
                         "eager: " + "; ".join(sorted(set(jit_step.fallbacks.values()))))
        cb.on_train_end({})
        if dsync is not None:
            dsync.close(self)
        self.eval()
        peak = max(history.history.get("loss") or [0.0], key=abs)
        if first_loss and abs(peak) > LOSS_EXPLOSION_FACTOR * abs(first_loss):
            warnings.warn(f"fit: the training loss grew {abs(peak / first_loss):.1e}x, from "
                          f"{first_loss:.4g} (first batch) to {peak:.4g} (an epoch's mean); the "
                          "learning rate is probably too large, try a smaller one",
                          LossExplosionWarning, stacklevel=3)
        return history

    def _jit_step(self, strict):
        """fit's forward, loss and backward as a ``tinygrad_lite.jit`` step: the same calls as
        the eager loop. The optimizer update stays outside, after fit has checked the loss."""
        from .jit import JitFunction

        def step(xb, yb, wb):
            loss, out = self._loss(Tensor(xb), yb, wb, probs=False)
            reg = self._reg_loss()
            total = loss if reg is None else loss + reg
            self.optimizer.zero_grad()
            total.backward()
            return total, out

        return JitFunction(step, modules=[self], fallback=not strict, fixed_tree=True)

    def _cached_jit_step(self, strict):
        """The model's captured step, kept between fit calls (``for ...: model.fit(x, y,
        epochs=1)`` records once, not twice per call) for as long as what it recorded stands:
        the same compile (loss, task), optimizer and layers, the same parameters requiring grad.
        A replaced weight array (set_weights, load_weights) is caught by the step itself,
        which records again; so is a change of batch shape, dtype, backend or mode."""
        same = (self._compiled, self.optimizer)           # compared by identity
        equal = (strict, tuple(self.layers), tuple(p.requires_grad for p in self.parameters()))
        cached = self.__dict__.get("_jit_cache")
        if cached is not None and all(a is b for a, b in zip(cached[0], same)) \
                and cached[1] == equal:
            return cached[2]
        step = self._jit_step(strict)
        self.__dict__["_jit_cache"] = (same, equal, step)
        return step

    def _jit_unsafe(self):
        """Why fit(jit="auto") runs eagerly from the start, or None. Two recordings that agree
        prove a step replayable only when no Python code of the user's can branch on the data
        unseen: so only built-in layers (and sub-modules) and a built-in loss are captured."""
        if self._compiled["task"] == "custom":
            return "a custom loss function"
        for layer in self.layers:
            subs = layer.modules() if hasattr(layer, "modules") else [layer]
            for m in subs:
                if not type(m).__module__.startswith("tinygrad_lite."):
                    return f"a layer defined outside tinygrad_lite ({type(m).__name__})"
        return None

    def _jit_target(self, yb, out_shape, weighted=False):
        """Labels in the form the loss uses them, made outside the step so a replay sees them
        as an argument: int64 labels for the fused sparse loss, one-hot rows for the other
        sparse losses, float32 otherwise."""
        return self._jit_targets(out_shape, weighted)(yb)

    def _jit_targets(self, out_shape, weighted=False):
        """``_jit_target`` as a function of the labels, decided once per fit."""
        c = self._compiled
        task = c["task"]
        dt = next((t.dtype for _, t in self._weight_tensors() if t.dtype.kind == "f"),
                  np.dtype(np.float32))
        if task == "sparse":
            fused = c["from_logits"] or self._fusable() == "softmax"   # as _loss decides
            if fused and not weighted and len(out_shape) == 2:
                i64, contiguous = np.int64, np.ascontiguousarray
                return lambda yb: contiguous(yb.reshape(-1), dtype=i64)   # the fused loss
            eye = np.eye(out_shape[-1], dtype=dt)
            return lambda yb: eye[yb]
        if task in ("binary", "regression"):
            tail = tuple(out_shape[1:])
            return lambda yb: yb.astype(dt).reshape((len(yb),) + tail)
        if task == "categorical":
            return lambda yb: yb.astype(dt, copy=False)
        return lambda yb: yb

    def fit(self, *args, **kwargs):
        seed = kwargs["seed"] if "seed" in kwargs else args[12] if len(args) > 12 else None
        with using_generator(None if seed is None else np.random.default_rng(seed)):
            return self._fit(*args, **kwargs)

    fit.__doc__, fit.__wrapped__ = _fit.__doc__, _fit   # help() and inspect show _fit's

    def _class_weights(self, class_weight, y, sw, op):
        if not isinstance(class_weight, dict):
            raise TypeError(f"{op}: class_weight must be a dict {{class: weight}}, got "
                            f"{type(class_weight).__name__}")
        cls = (y if y.ndim == 1 else y.argmax(-1) if y.shape[-1] > 1 else
               (y.reshape(-1) > 0.5)).astype(np.int64)
        lut = {}
        for k, v in class_weight.items():
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{op}: class weights must be finite and >= 0, got {k}: {v}")
            lut[int(k)] = float(v)
        missing = sorted(set(np.unique(cls).tolist()) - set(lut))
        if missing:
            raise ValueError(f"{op}: class_weight must contain every class in the data, got no "
                             f"weight for class(es) {missing[:10]}; add them (e.g. weight 1.0)")
        w = np.array([lut[int(c)] for c in cls], dtype=np.float32)
        return w if sw is None else w * sw.astype(np.float32)

    # ---- evaluate / predict -----------------------------------------------------------
    def _fit_distributed(self, distributed):
        """A ``distributed.fit.FitSync`` when this fit runs data-parallel, else None."""
        if distributed is None:
            from .distributed.comm import launched_with_mpi

            distributed = launched_with_mpi()
        if not distributed:
            return None
        from .distributed.fit import FitSync

        return FitSync(self)

    def _evaluate_arrays(self, x, y, batch_size, sw=None, reduce=None):
        """Mean loss (``sum(w_i l_i) / n`` with weights) and metrics over (x, y), in batches."""
        self.eval()
        mets = self._metrics()
        total, n = 0.0, 0
        with no_grad():
            for s in range(0, len(x), batch_size):
                wb = None if sw is None else sw[s:s + batch_size]
                loss, probs = self._loss(Tensor(x[s:s + batch_size]), y[s:s + batch_size], wb)
                total += float(loss.item()) * len(probs)
                n += len(probs)
                for m in mets:
                    m.update(probs, y[s:s + batch_size])
        if reduce is not None:   # distributed: sums over every rank's share
            total, n = reduce(total, n, mets)
        return {"loss": total / n, **{m.name: m.result() for m in mets}}

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False):
        """Loss and metrics on (x, y): ``loss`` alone, ``[loss, *metrics]``, or a dict."""
        op = "evaluate"
        self._require_compiled(op)
        batch_size = 32 if batch_size is None else _check_pos_int(batch_size, "batch_size", op)
        x = self._check_x(x, op)
        y = self._check_y(y, len(x), op)
        if self._input_shape is None:
            self.build(x.shape[1:])
        y = self._check_labels(y, self.output_shape, op)
        res = self._evaluate_arrays(x, y, batch_size)
        if verbose in (1, "auto", 2):
            write_line(f"evaluate: {_fmt(res)}")
        if return_dict:
            return res
        vals = list(res.values())
        return vals[0] if len(vals) == 1 else vals

    def predict(self, x, batch_size=None, verbose=0):
        """Outputs (probabilities for a softmax/sigmoid last layer) for x, in batches, as NumPy."""
        op = "predict"
        batch_size = 32 if batch_size is None else _check_pos_int(batch_size, "batch_size", op)
        x = self._check_x(x, op)
        if self._input_shape is None:
            self.build(x.shape[1:])
        self._require_built(op)
        if self.training or any(layer.training for layer in self.layers):
            self.eval()
        on_cpu = not _autograd._cuda_seen or self._device() == "cpu"   # plan.py is NumPy-only
        if len(x) <= batch_size and self.layers and on_cpu:   # one batch: straight to the plan
            y = _plan.run(self, self.layers, x)
            if y is not None:
                return y
        outs = []
        with no_grad():
            for s in range(0, len(x), batch_size):
                xb = x[s:s + batch_size]
                # The compiled path (plan.py): kernel calls on preallocated buffers, no Tensors.
                y = _plan.run(self, self.layers, xb) if self.layers and on_cpu else None
                if y is None:                    # not plannable: the eager layers, all in eval
                    self.eval()
                    y = self._forward(Tensor(xb)).numpy()
                outs.append(y)
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def predict_classes(self, x, batch_size=None):
        """Class indices: argmax of the outputs (or output > 0.5 for a single unit)."""
        p = self.predict(x, batch_size)
        if p.ndim == 2 and p.shape[1] == 1:
            return (p[:, 0] > 0.5).astype(np.int64)
        return p.argmax(axis=-1)

    def predict_proba(self, x, batch_size=None):
        return self.predict(x, batch_size)

    def predict_labels(self, x, batch_size=None):
        """Class names (``label_names``) of the predicted classes, or the indices without them."""
        idx = self.predict_classes(x, batch_size)
        if self.label_names is None:
            return idx
        return np.asarray(self.label_names)[idx]

    # ---- summary ---------------------------------------------------------------------
    def summary(self, print_fn=None):
        """Print one row per layer (type, output shape, parameters) and the totals."""
        self._require_built("summary")
        rows = []
        was = self.training
        self.eval()
        x = Tensor(np.zeros((1,) + self._input_shape, dtype=np.float32))
        from .flops import Recorder

        flops = 0
        with no_grad():
            for i, layer in enumerate(self.layers):
                with Recorder() as rec:           # the forward FLOPs of this layer, batch 1
                    x = layer(x)
                flops += rec.forward_flops
                n = sum(t.size for _, t in (layer.weight_tensors() if isinstance(layer, L.Layer)
                                            else layer.named_parameters()) if t is not None)
                rows.append((f"{type(layer).__name__} ({i})", str((None,) + tuple(x.shape[1:])),
                             str(n), f"{rec.forward_flops:,}"))
        self.train(was)
        total = sum(t.size for _, t in self._weight_tensors())
        trainable = self.count_params()
        head = ("Layer (type)", "Output Shape", "Param #", "FLOPs")
        w = [max(len(r[k]) for r in rows + [head]) + 2 for k in range(4)]
        line = "-" * sum(w)
        out = [f'Model: "{self.name or "sequential"}"', line,
               "".join(h.ljust(w[k]) for k, h in enumerate(head[:3])) + head[3], "=" * sum(w)]
        out += [a.ljust(w[0]) + b.ljust(w[1]) + c.ljust(w[2]) + f for a, b, c, f in rows]
        out += ["=" * sum(w), f"Total params: {total}", f"Trainable params: {trainable}",
                f"Non-trainable params: {total - trainable}",
                f"Forward FLOPs per sample: {flops:,}", line]
        text = "\n".join(out)
        (print_fn or print)(text)
        return text

    # ---- config and files ---------------------------------------------------------------
    def get_config(self):
        if self._input_shape is None:
            raise ValueError("get_config: the model is not built yet, got no input shape; pass "
                             "input_shape= to the first layer or fit() before saving")
        arch = []
        for layer in self.layers:
            if type(layer).__name__ not in L.LAYERS or type(layer) is not L.LAYERS[
                    type(layer).__name__]:
                raise TypeError(f"get_config: layer {type(layer).__name__} cannot be saved, got "
                                f"it at position {len(arch)}; model files hold only "
                                f"{sorted(L.LAYERS)}")
            arch.append({"class_name": type(layer).__name__, "config": layer.get_config()})
        return {"class_name": "Sequential", "name": self.name, "layers": arch,
                "input_shape": None if self._input_shape is None else list(self._input_shape)}

    def shape_plan(self, input_shape=None):
        """``{"layers.<i>.<name>": shape}`` of every weight ``build`` would create, computed from
        the layer configs alone (nothing is allocated), in ``weights_dict`` order.

        Model loading checks a file's arrays against this plan before building, so an absurd
        config (``Dense(units=10**12)``) is refused without allocating it. Each layer's
        per-sample output is capped at ``MAX_SAMPLE_ELEMENTS`` values.
        """
        shape = tuple(input_shape) if input_shape is not None else self._input_shape
        if shape is None:
            raise ValueError("shape_plan: the input shape is unknown, got none; pass "
                             "input_shape= to the first layer or to shape_plan")
        plan = OrderedDict()
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, L.Layer):
                raise TypeError(f"shape_plan: layer {i} ({type(layer).__name__}) is not a "
                                "tinygrad_lite.layers layer, got it in the model")
            named, shape = layer.shape_plan(shape)
            shape = tuple(int(d) for d in shape)
            if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
                raise ShapeError(f"shape_plan: layer {i} ({type(layer).__name__}) outputs "
                                 f"{math.prod(shape)} values per sample, over the cap of "
                                 f"{MAX_SAMPLE_ELEMENTS}, got output shape {shape}")
            for n, w in named:
                plan[f"layers.{i}.{n}"] = tuple(int(d) for d in w)
        return plan

    @classmethod
    def from_config(cls, config, build=True):
        """Rebuild from ``get_config()``; ``build=False`` leaves the weights unallocated
        (``model._input_shape`` set, ``shape_plan()`` usable) until ``build()``."""
        if not isinstance(config, dict) or config.get("class_name") != "Sequential":
            raise ModelFormatError("from_config: architecture must be a Sequential config, got "
                                   f"{str(config)[:80]}")
        entries = config.get("layers")
        if not isinstance(entries, list) or not entries or len(entries) > 1000:
            raise ModelFormatError("from_config: 'layers' must be a list of 1..1000 layer configs")
        name = config.get("name")
        model = cls([L.from_config(e) for e in entries],
                    name=name if isinstance(name, str) else None)
        shape = config.get("input_shape")
        if shape is not None:
            if (not isinstance(shape, list) or not 1 <= len(shape) <= 4
                    or not all(type(d) is int and 1 <= d <= 2**20 for d in shape)):
                raise ModelFormatError(f"from_config: invalid input_shape {str(shape)[:60]}")
            if int(np.prod(shape)) > 2**24:
                raise ModelFormatError(f"from_config: input_shape {shape} is too large")
            model._input_shape = tuple(shape)
            if build:
                model._input_shape = None
                model.build(tuple(shape))
        return model

    def save(self, path, preprocessing=None, label_names=None, extra=None,
             allow_nonfinite=False, sparse=False):
        """Save architecture + weights (``io.save_model``): ``.safetensors``, ``.npz`` or
        ``.h5``; ``sparse=True`` stores pruned weights compactly (see ``io.save_model``)."""
        from .io import save_model

        return save_model(self, path, preprocessing=preprocessing,
                          label_names=label_names if label_names is not None else
                          self.label_names, extra=extra, allow_nonfinite=allow_nonfinite,
                          sparse=sparse)

    def save_weights(self, path):
        """Save the weights alone (``io.save_weights``); restore with ``load_weights``."""
        from .io import save_weights

        return save_weights(self, path)

    def load_weights(self, path):
        """Load weights saved from a model of the same architecture; nothing changes on error."""
        from .io import load_weights

        return load_weights(self, path)


def _overrides(callbacks, hook):
    """True when a callback does something in ``hook`` (the base Callback's is a no-op)."""
    from .callbacks import Callback

    base = getattr(Callback, hook)
    return any(getattr(type(c), hook, base) is not base or hook in vars(c) for c in callbacks)


def _fmt(logs):
    return ", ".join(f"{k}={v:.4f}" for k, v in logs.items())


def load_model(path, **kwargs):
    """``io.load_model``: rebuild a saved model (architecture from an allow-list, weights)."""
    from .io import load_model as _load

    return _load(path, **kwargs)


# io rebuilds saved models through this registration; it never imports this module (no cycle).
from .io.files import register_architecture as _register_architecture  # noqa: E402

_register_architecture("Sequential", Sequential.from_config)
