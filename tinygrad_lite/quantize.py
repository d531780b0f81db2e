"""Post-training int8 quantization of Dense and Conv2D weights (inference only).

Weights: per output channel, symmetric, ``scale_j = max|w_j| / 127``, ``q = round(w / scale_j)``
in [-127, 127] (int8, no zero point). Activations: one symmetric scale per layer input,
``max|x| / 127`` over a calibration sample (``calibrate``), values beyond it clipped. The layer
then computes, for input row ``x`` and output channel ``j``::

    acc_j = sum_k int32(q_x[k]) * int32(q_w[j, k])          (int8 x int8 -> int32, exact)
    y_j   = acc_j * (scale_x * scale_j) + bias_j              (dequantized, float32)

The integer GEMM is ``kernels/cpu/quant.pxi`` (``_cpu.qgemm_s8s8s32``) when the Cython kernels are
loaded, else NumPy's integer matmul: both are exact, so their int32 results are identical (the
parity tests check it). A layer runs as one fused call (``_cpu.qlinear_f32``: quantize the rows,
int8 GEMM, dequantize + bias + ReLU) whose float32 steps are those of the NumPy fallback, so a
quantized model predicts bitwise the same with the kernels on or off. ``k`` is capped at
133,152 so the int32 sum cannot overflow.

>>> qmodel = quantize_model(model, x_train[:500])          # doctest: +SKIP
>>> qmodel.save("model-int8.safetensors")                   # int8 kernels + float32 scales
"""

import numpy as np

from .errors import ShapeError

QMAX = 127
MAX_K = 133_152          # 127 * 127 * MAX_K < 2**31: the int32 accumulator cannot overflow

__all__ = ["quantize_model", "quantize_per_channel", "quantize_activations", "qgemm",
           "qgemm_reference", "qlinear", "calibrate"]

_KERNELS = []          # [(qgemm_s8s8s32, qlinear_f32)] or [None] without the extension


def _kernels():
    if not _KERNELS:
        from .backends._ext import load_cpu_kernels

        mod, _ = load_cpu_kernels()
        _KERNELS.append((mod.qgemm_s8s8s32, mod.qlinear_f32)
                        if mod is not None and hasattr(mod, "qlinear_f32") else None)
    return _KERNELS[0]


def _kernel():
    k = _kernels()
    return None if k is None else k[0]


def _threads():
    from .backends import threads as _t

    return _t.get_num_threads()


def quantize_per_channel(w):
    """``(q, scale)``: int8 ``q`` (n, k) and float32 ``scale`` (n,) with ``w ~ q * scale[:, None]``
    for a float weight ``w`` (n, k), one output channel per row. All-zero rows get scale 1."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ShapeError(f"quantize_per_channel: expected a 2-D (out, in) weight, got shape "
                         f"{w.shape}")
    amax = np.abs(w).max(axis=1) if w.shape[1] else np.zeros(w.shape[0])
    scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None].astype(np.float64)), -QMAX, QMAX).astype(np.int8)
    return q, scale


def quantize_activations(x, scale):
    """int8 ``rint(x * (1/scale))`` (float32) clamped to [-127, 127] (symmetric, per tensor);
    NaN becomes 127 (``fmin`` first, as the kernel does)."""
    x = np.asarray(x, dtype=np.float32)
    v = np.rint(x * np.float32(1.0 / float(scale)))
    return np.fmax(np.fmin(v, np.float32(QMAX)), np.float32(-QMAX)).astype(np.int8)


def qgemm_reference(a, w):
    """The NumPy oracle: ``a @ w.T`` in int32 for int8 ``a`` (m, k) and ``w`` (n, k)."""
    return np.matmul(a.astype(np.int32), w.astype(np.int32).T)


def qgemm(a, w, threads=None):
    """``a @ w.T`` with int32 accumulation: the Cython kernel when loaded, else NumPy (exact)."""
    if a.dtype != np.int8 or w.dtype != np.int8:
        raise TypeError(f"qgemm: expected int8 operands, got {a.dtype} and {w.dtype}")
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[1]:
        raise ShapeError(f"qgemm: expected a (m, k) and w (n, k), got {a.shape} and {w.shape}")
    if a.shape[1] > MAX_K:
        raise ShapeError(f"qgemm: k = {a.shape[1]} could overflow the int32 accumulator, got it "
                         f"with a cap of {MAX_K}; split the layer")
    kern = _kernel()
    if kern is None:
        return qgemm_reference(a, w)
    out = np.empty((a.shape[0], w.shape[0]), dtype=np.int32)
    kern(np.ascontiguousarray(a), np.ascontiguousarray(w), out,
         int(_threads() if threads is None else threads))
    return out


def qlinear(x, input_scale, w_q, w_scale, bias=None, relu=False):
    """The int8 layer on float rows ``x`` (m, k): quantize with ``input_scale``, int8 GEMM with
    int32 sums against ``w_q`` (n, k), dequantize with ``input_scale * w_scale``, add ``bias``,
    optionally ReLU. One fused kernel call (``_cpu.qlinear_f32``) when the kernels are loaded,
    else the same float32 steps in NumPy (bitwise the same result)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != w_q.shape[1]:
        raise ShapeError(f"qlinear: expected x (m, {w_q.shape[1]}), got {x.shape}")
    if x.shape[1] > MAX_K:
        raise ShapeError(f"qlinear: k = {x.shape[1]} could overflow the int32 accumulator, got "
                         f"it with a cap of {MAX_K}; split the layer")
    scale = (np.float32(input_scale) * np.asarray(w_scale, dtype=np.float32)).astype(np.float32)
    kern = _kernels()
    if kern is not None:
        out = np.empty((x.shape[0], w_q.shape[0]), dtype=np.float32)
        kern[1](x, np.float32(1.0 / float(input_scale)), np.ascontiguousarray(w_q), scale,
                None if bias is None else np.ascontiguousarray(bias, dtype=np.float32), out,
                1 if relu else 0, int(_threads()))
        return out
    y = qgemm_reference(quantize_activations(x, input_scale), w_q).astype(np.float32) * scale
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float32)
    if relu:      # as the kernel: v if v > 0 or NaN, else +0.0
        y = np.where((y > 0) | np.isnan(y), y, np.float32(0))
    return y


def _layer_inputs(model, x, batch_size):
    """max|input| of every layer of a built Sequential over ``x`` (float forward, eval mode)."""
    from .autograd import no_grad
    from .tensor import Tensor

    amax = [0.0] * len(model.layers)
    was = model.training
    model.eval()
    try:
        with no_grad():
            for s in range(0, len(x), batch_size):
                h = Tensor(np.asarray(x[s:s + batch_size], dtype=np.float32))
                for i, layer in enumerate(model.layers):
                    amax[i] = max(amax[i], float(np.abs(h.numpy()).max()) if h.size else 0.0)
                    h = layer(h)
    finally:
        model.train(was)
    return amax


def calibrate(model, x, batch_size=256):
    """Per-layer activation scales ``max|input| / 127`` from a calibration sample ``x``."""
    return [a / QMAX if a > 0 else 1.0 for a in _layer_inputs(model, x, batch_size)]


def quantize_model(model, calibration_x, batch_size=256):
    """A new ``Sequential`` whose Dense and Conv2D layers are int8 (``QuantizedDense``,
    ``QuantizedConv2D``); every other layer is copied unchanged. ``calibration_x`` is a sample
    of training inputs (a few hundred rows), after the model's preprocessing.

    The result predicts (inference only; it cannot be trained) and saves/loads through every
    model format like any Sequential. Pruned layers: call ``nn.utils.prune.remove`` first.
    """
    from . import layers as L
    from .models import Sequential

    if not isinstance(model, Sequential) or model._input_shape is None:
        raise TypeError(f"quantize_model: expected a built models.Sequential, got "
                        f"{type(model).__name__}")
    scales = calibrate(model, calibration_x, batch_size)
    cfg = model.get_config()
    weights = model.weights_dict()
    new_w = {}
    for i, (layer, entry) in enumerate(zip(model.layers, cfg["layers"])):
        c = entry["config"]
        if type(layer) is L.Dense:
            w2 = layer.kernel.numpy().T                   # (units, in)
            keep = {k: c[k] for k in ("units", "activation", "use_bias", "input_shape", "name")
                    if k in c}
            entry.update(class_name="QuantizedDense", config=keep)
        elif type(layer) is L.Conv2D:
            w2 = layer.kernel.numpy().reshape(layer.filters, -1)    # (F, C*kh*kw)
            keep = {k: c[k] for k in ("filters", "kernel_size", "strides", "padding",
                                      "data_format", "dilation_rate", "activation", "use_bias",
                                      "input_shape", "name") if k in c}
            entry.update(class_name="QuantizedConv2D", config=keep)
        else:
            for k, v in weights.items():
                if k.startswith(f"layers.{i}."):
                    new_w[k] = v
            continue
        q, s = quantize_per_channel(w2)
        new_w[f"layers.{i}.kernel_q"] = q
        new_w[f"layers.{i}.kernel_scale"] = s
        new_w[f"layers.{i}.input_scale"] = np.array([scales[i]], dtype=np.float32)
        if layer.use_bias:
            new_w[f"layers.{i}.bias"] = layer.bias.numpy().astype(np.float32)
    q_model = Sequential.from_config(cfg)
    q_model.set_weights_dict(new_w)
    q_model.eval()
    for attr in ("preprocessing", "label_names"):
        if getattr(model, attr, None) is not None:
            setattr(q_model, attr, getattr(model, attr))
    return q_model
