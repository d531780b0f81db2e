"""Naive NumPy oracles written straight from the definitions (loops, no im2col), independent of
every backend."""

import numpy as np


def conv2d(x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow), dtype=np.result_type(x, w))
    for oc in range(o):
        g = oc // og
        for p in range(oh):
            for q in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, p * sh:p * sh + dh * (kh - 1) + 1:dh,
                           q * sw:q * sw + dw * (kw - 1) + 1:dw]
                y[:, oc, p, q] = (patch * w[oc]).sum(axis=(1, 2, 3))
    return y


def conv2d_backward_input(gy, w, x_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                          groups=1):
    n, c, h, wd = x_shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    gxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
    og = o // groups
    for oc in range(o):
        g = oc // og
        for p in range(gy.shape[2]):
            for q in range(gy.shape[3]):
                gxp[:, g * cg:(g + 1) * cg, p * sh:p * sh + dh * (kh - 1) + 1:dh,
                    q * sw:q * sw + dw * (kw - 1) + 1:dw] += \
                    gy[:, oc, p, q][:, None, None, None] * w[oc]
    return gxp[:, :, ph:ph + h, pw:pw + wd]


def conv2d_backward_weight(gy, x, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                           groups=1):
    o, cg, kh, kw = w_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    gw = np.zeros(w_shape, dtype=gy.dtype)
    og = o // groups
    for oc in range(o):
        g = oc // og
        for p in range(gy.shape[2]):
            for q in range(gy.shape[3]):
                patch = xp[:, g * cg:(g + 1) * cg, p * sh:p * sh + dh * (kh - 1) + 1:dh,
                           q * sw:q * sw + dw * (kw - 1) + 1:dw]
                gw[oc] += (gy[:, oc, p, q][:, None, None, None] * patch).sum(axis=0)
    return gw


def pool2d(x, kernel, stride, padding, kind):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for p in range(oh):
        for q in range(ow):
            win = xp[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw]
            y[:, :, p, q] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return y


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    gxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
    for p in range(gy.shape[2]):
        for q in range(gy.shape[3]):
            gxp[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw] += \
                gy[:, :, p, q][:, :, None, None] / (kh * kw)
    return gxp[:, :, ph:ph + h, pw:pw + w]


def max_pool2d_backward(gy, x, kernel, stride, padding):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    gxp = np.zeros(xp.shape, dtype=gy.dtype)
    for b in range(n):
        for ch in range(c):
            for p in range(gy.shape[2]):
                for q in range(gy.shape[3]):
                    win = xp[b, ch, p * sh:p * sh + kh, q * sw:q * sw + kw]
                    i, j = np.unravel_index(np.argmax(win), win.shape)
                    gxp[b, ch, p * sh + i, q * sw + j] += gy[b, ch, p, q]
    return gxp[:, :, ph:ph + h, pw:pw + w]


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def recurrent_sequence(kind, x, h0, c0, w_ih, w_hh, biases=(), layout="torch", gates=None,
                       reverse=False, nonlinearity="tanh"):
    """One recurrent layer in one direction, step by step in float64 -- the oracle of the fused
    ``lstm_sequence`` / ``gru_sequence`` / ``rnn_sequence`` Functions. Returns their packed
    output: h_1..h_T (T, B, H), plus the last c appended along time for LSTM."""
    def sig(v):
        return 1 / (1 + np.exp(-v))

    if layout == "torch":
        w_ih, w_hh = w_ih.T, w_hh.T                 # now (F, G*H) and (H, G*H)
    H = h0.shape[1]
    b_ih = biases[0] if len(biases) > 0 else 0.0
    b_hh = biases[1] if len(biases) > 1 else 0.0
    order = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])

    def block(a, letter):
        k = gates.index(letter) * H
        return a[:, k:k + H]

    h, c = h0, c0
    out = [None] * x.shape[0]
    for t in order:
        xa, ha = x[t] @ w_ih + b_ih, h @ w_hh + b_hh
        if kind == "rnn":
            a = xa + ha
            h = np.maximum(a, 0) if nonlinearity == "relu" else np.tanh(a)
        elif kind == "lstm":
            a = xa + ha
            i, f, o = sig(block(a, "i")), sig(block(a, "f")), sig(block(a, "o"))
            c = f * c + i * np.tanh(block(a, "g"))
            h = o * np.tanh(c)
        else:
            r = sig(block(xa, "r") + block(ha, "r"))
            z = sig(block(xa, "z") + block(ha, "z"))
            n = np.tanh(block(xa, "n") + r * block(ha, "n"))
            h = (1 - z) * n + z * h
        out[t] = h
    if kind == "lstm":
        out.append(c)
    return np.stack(out)
