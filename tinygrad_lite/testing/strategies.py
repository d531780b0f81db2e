"""Hypothesis strategies for tensors: shapes, arrays in a domain, broadcastable shapes, matmul
pairs and conv geometries.

>>> from hypothesis import given
>>> from tinygrad_lite.testing import strategies as tst
>>> @given(tst.arrays(tst.shapes(), low=-2, high=2))
... def test_tanh_is_odd(a): ...
"""

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as e:  # pragma: no cover
    raise ImportError("tinygrad_lite.testing.strategies needs Hypothesis; "
                      "pip install tinygrad_lite[test]") from e

import numpy as np


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Array shapes; sides of 1 are common on purpose (broadcast dims)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def arrays(shape, low=-3.0, high=3.0, dtype=np.float64, away_from=(), margin=0.05):
    """Float arrays with elements in [low, high], at least ``margin`` away from each point in
    ``away_from`` (kinks and singularities: 0 for relu/abs, ...).

    ``shape`` may be a tuple or a strategy of tuples.
    """
    elems = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    if away_from:
        elems = elems.filter(lambda v: all(abs(v - p) >= margin for p in away_from))
    if isinstance(shape, tuple):
        return hnp.arrays(dtype, shape, elements=elems)
    return shape.flatmap(lambda s: hnp.arrays(dtype, s, elements=elems))


def distinct_arrays(shape, low=-3.0, high=3.0, dtype=np.float64, gap=1e-3):
    """Arrays whose elements are pairwise at least ``gap`` apart (for max/min/sort: no ties, so
    finite differences see a smooth function)."""

    def build(s):
        n = int(np.prod(s))
        return st.lists(st.floats(low, high, allow_nan=False, width=64), min_size=n, max_size=n,
                        unique_by=lambda v: round(v / gap)).filter(
            lambda vs: n < 2 or np.min(np.diff(np.sort(vs))) >= gap
        ).map(lambda vs: np.asarray(vs, dtype=dtype).reshape(s))

    if isinstance(shape, tuple):
        return build(shape)
    return shape.flatmap(build)


def broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4):
    """A tuple of ``num_shapes`` shapes that broadcast together (NumPy rules)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims,
                                             max_dims=max_dims, max_side=max_side).map(
        lambda r: r.input_shapes)


@st.composite
def matmul_shapes(draw, max_batch_dims=2, max_side=5):
    """(a_shape, b_shape) valid for a @ b: 1-D operands, 2-D, and broadcast batches."""
    m, k, n = (draw(st.integers(1, max_side)) for _ in range(3))
    kind = draw(st.sampled_from(["vv", "mv", "vm", "mm", "batched"]))
    if kind == "vv":
        return (k,), (k,)
    if kind == "mv":
        return (m, k), (k,)
    if kind == "vm":
        return (k,), (k, n)
    if kind == "mm":
        return (m, k), (k, n)
    ba, bb = draw(broadcastable_shapes(2, 1, max_batch_dims, 3))
    return tuple(ba) + (m, k), tuple(bb) + (k, n)


@st.composite
def conv_geometries(draw, max_batch=2, max_channels=3, max_hw=7, max_kernel=3, groups=True):
    """Valid conv2d arguments: dict(x_shape, w_shape, stride, padding, dilation, groups)."""
    g = draw(st.integers(1, 2)) if groups else 1
    cin = g * draw(st.integers(1, max_channels))
    cout = g * draw(st.integers(1, max_channels))
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    min_h = max(1, dh * (kh - 1) + 1 - 2 * ph)
    min_w = max(1, dw * (kw - 1) + 1 - 2 * pw)
    h = draw(st.integers(min_h, max(min_h, max_hw)))
    w = draw(st.integers(min_w, max(min_w, max_hw)))
    n = draw(st.integers(1, max_batch))
    return dict(x_shape=(n, cin, h, w), w_shape=(cout, cin // g, kh, kw), stride=(sh, sw),
                padding=(ph, pw), dilation=(dh, dw), groups=g)


@st.composite
def pool_geometries(draw, max_batch=2, max_channels=2, max_hw=7, max_kernel=3):
    """Valid pooling arguments: dict(x_shape, kernel_size, stride, padding)."""
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), max_hw))
    w = draw(st.integers(max(1, kw - 2 * pw), max_hw))
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    return dict(x_shape=(n, c, h, w), kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw))
