"""Parity checks: run one primitive, forward and backward, on every backend against numpy.

The numpy backend is the oracle. For each other backend the same random inputs (and a random
upstream gradient -- never all ones, which would hide a backward that forgets to multiply by it)
go through the primitive and its backward passes; the table reports, per output, the largest
absolute error and the largest error relative to the reference's largest magnitude.
"""

import numpy as np

from ..errors import ShapeError

_TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


class ParityTable(list):
    """A list of row dicts (op, backend, output, dtype, max_abs, max_rel, ok) that prints as a
    table."""

    @property
    def ok(self):
        return all(r["ok"] for r in self)

    def __str__(self):
        head = f"{'op':<12} {'backend':<8} {'output':<8} {'dtype':<8} {'max_abs':>10} " \
               f"{'max_rel':>10}  ok"
        lines = [head, "-" * len(head)]
        for r in self:
            ok = "yes" if r["ok"] else "NO"
            lines.append(f"{r['op']:<12} {r['backend']:<8} {r['output']:<8} {r['dtype']:<8} "
                         f"{r['max_abs']:>10.2e} {r['max_rel']:>10.2e}  {ok}")
        return "\n".join(lines)


def _run(backend, op, inputs, gy_of, kw):
    """{output name: array} for one op, forward then backward with upstream gradient gy_of(y)."""
    if op == "matmul":
        a, b = inputs
        y = backend.matmul(a, b)
        gy = gy_of(y)
        return {"y": y, "grad_a": backend.matmul(gy, b, trans_b=True),
                "grad_b": backend.matmul(a, gy, trans_a=True)}
    if op == "conv2d":
        x, w = inputs
        geo = (kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
        y = backend.conv2d(x, w, *geo)
        gy = gy_of(y)
        return {"y": y, "grad_x": backend.conv2d_backward_input(gy, w, x.shape, *geo),
                "grad_w": backend.conv2d_backward_weight(gy, x, w.shape, *geo)}
    if op in ("max_pool2d", "avg_pool2d"):
        (x,) = inputs
        geo = (kw["kernel"], kw["stride"], kw["padding"])
        if op == "max_pool2d":
            y, idx = backend.max_pool2d(x, *geo)
            gy = gy_of(y)
            return {"y": y, "grad_x": backend.max_pool2d_backward(gy, idx, x.shape, *geo)}
        y = backend.avg_pool2d(x, *geo)
        gy = gy_of(y)
        return {"y": y, "grad_x": backend.avg_pool2d_backward(gy, x.shape, *geo)}
    if op == "im2col":
        (x,) = inputs
        geo = (kw["kernel"], kw["stride"], kw["padding"], kw["dilation"])
        y = backend.im2col(x, *geo)
        return {"y": y, "grad_x": backend.col2im(gy_of(y), x.shape, *geo)}
    raise ShapeError(f"check_parity: unknown op, got {op!r}; choose one of matmul, conv2d, "
                     "max_pool2d, avg_pool2d, im2col")


def _pair(v):
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(i) for i in v)


def check_parity(op, shapes, dtype=np.float64, backends=None, seed=0, stride=1, padding=0,
                 dilation=1, groups=1, kernel=2):
    """Compare one primitive on every available backend with the numpy reference.

    Parameters
    ----------
    op : str
        ``"matmul"``, ``"conv2d"``, ``"max_pool2d"``, ``"avg_pool2d"`` or ``"im2col"``.
    shapes : tuple of shapes
        matmul: ``((m, k), (k, n))``; conv2d: ``(x_shape, w_shape)``; pooling and im2col:
        ``(x_shape,)``.
    dtype : numpy dtype, default float64
    backends : list of str, optional
        Backend names to check (default: every available one except numpy).
    stride, padding, dilation, groups, kernel : geometry (an int or a pair).

    Returns
    -------
    ParityTable
        One row per (backend, output); ``table.ok`` is True when every error is within tolerance
        (1e-4 relative for float32, 1e-10 for float64).

    Examples
    --------
    >>> from tinygrad_lite import backends
    >>> print(backends.check_parity("matmul", ((3, 4), (4, 5))))  # doctest: +SKIP
    """
    from . import available, get

    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    inputs = [rng.standard_normal(tuple(s)).astype(dtype) for s in shapes]
    kw = {"stride": _pair(stride), "padding": _pair(padding), "dilation": _pair(dilation),
          "groups": int(groups), "kernel": _pair(kernel)}
    upstream = {}

    def gy_of(y):        # one random upstream gradient per output shape, shared by all backends
        if y.shape not in upstream:
            upstream[y.shape] = rng.standard_normal(y.shape).astype(dtype)
        return upstream[y.shape]

    ref = _run(get("numpy"), op, inputs, gy_of, kw)
    if backends is None:
        backends = [n for n, (ok, _) in available().items() if ok and n != "numpy"]
    table = ParityTable()
    for name in backends:
        backend = get(name)
        xp = backend.xp
        args = [xp.asarray(a) for a in inputs]
        got = _run(backend, op, args, lambda y: xp.asarray(gy_of(y)), kw)
        for key, r in ref.items():
            g = _host(got[key])
            err = float(np.abs(g.astype(np.float64) - r).max()) if r.size else 0.0
            scale = float(np.abs(r).max()) if r.size else 0.0
            rel = err / scale if scale > 0 else err
            table.append({"op": op, "backend": name, "output": key, "dtype": dtype.name,
                          "max_abs": err, "max_rel": rel,
                          "ok": g.shape == r.shape and rel <= _TOL.get(dtype, 1e-4)})
    return table


def _host(a):
    """A NumPy copy of a NumPy or CuPy array."""
    return a.get() if hasattr(a, "get") else np.asarray(a)
