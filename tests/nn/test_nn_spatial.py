"""1-D/3-D convolution and pooling, pooling options, pad modes, interpolate, normalize,
cosine_similarity, pairwise_distance and group_norm against PyTorch (values and gradients in
float64, on every CPU backend), plus NumPy references for the new paths. PyTorch comparisons
skip without torch."""

import numpy as np
import pytest
from nn_helpers import dbl, rng

import tinygrad_lite as tl
from tinygrad_lite.errors import ShapeError
from tinygrad_lite.nn import functional as F
from tinygrad_lite.testing import gradcheck, gradgradcheck


def _w(shape, seed=1):
    return rng(seed).standard_normal(shape) * 0.5


# (id, our fn, torch fn name, input shapes, kwargs, distinct) -- inputs are drawn N(0, 1);
# `distinct` = max pooling: ties would make the argmax arbitrary
CASES = [
    ("conv1d", F.conv1d, "conv1d", [(2, 4, 9), (6, 2, 3), (6,)],
     dict(stride=2, padding=1, dilation=2, groups=2)),
    ("conv1d_same", F.conv1d, "conv1d", [(1, 2, 7), (3, 2, 4)], dict(padding="same")),
    ("conv3d", F.conv3d, "conv3d", [(2, 2, 5, 4, 6), (4, 1, 3, 2, 3), (4,)],
     dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1), groups=2)),
    ("conv3d_same", F.conv3d, "conv3d", [(1, 2, 4, 5, 4), (2, 2, 2, 3, 2)], dict(padding="same")),
    ("conv_transpose1d", F.conv_transpose1d, "conv_transpose1d", [(2, 4, 5), (4, 3, 3), (6,)],
     dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)),
    ("max_pool1d", F.max_pool1d, "max_pool1d", [(2, 3, 9)], dict(kernel_size=3, stride=2,
                                                                  padding=1)),
    ("max_pool1d_opts", F.max_pool1d, "max_pool1d", [(2, 3, 10)],
     dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    ("max_pool2d_dil_ceil", F.max_pool2d, "max_pool2d", [(2, 2, 7, 8)],
     dict(kernel_size=(3, 2), stride=2, padding=1, dilation=(2, 1), ceil_mode=True)),
    ("max_pool2d_ceil", F.max_pool2d, "max_pool2d", [(1, 2, 6, 6)],
     dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("max_pool3d", F.max_pool3d, "max_pool3d", [(2, 2, 5, 6, 5)],
     dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0))),
    ("max_pool3d_opts", F.max_pool3d, "max_pool3d", [(1, 2, 6, 5, 7)],
     dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2, 1), ceil_mode=True)),
    ("avg_pool1d", F.avg_pool1d, "avg_pool1d", [(2, 3, 9)], dict(kernel_size=3, stride=2,
                                                                  padding=1)),
    ("avg_pool1d_opts", F.avg_pool1d, "avg_pool1d", [(2, 3, 10)],
     dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d_no_pad_count", F.avg_pool2d, "avg_pool2d", [(2, 2, 7, 6)],
     dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg_pool2d_ceil", F.avg_pool2d, "avg_pool2d", [(2, 2, 7, 6)],
     dict(kernel_size=(3, 2), stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d_divisor", F.avg_pool2d, "avg_pool2d", [(1, 2, 6, 6)],
     dict(kernel_size=3, stride=2, padding=1, divisor_override=4)),
    ("avg_pool3d", F.avg_pool3d, "avg_pool3d", [(2, 2, 5, 6, 4)],
     dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0))),
    ("avg_pool3d_opts", F.avg_pool3d, "avg_pool3d", [(1, 2, 6, 5, 7)],
     dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("pad_constant_asym", F.pad, "pad", [(2, 3, 4, 5)], dict(pad=(1, 2, 0, 3), value=0.5)),
    ("pad_reflect", F.pad, "pad", [(2, 3, 4, 5)], dict(pad=(3, 1, 2, 3), mode="reflect")),
    ("pad_reflect_1d", F.pad, "pad", [(2, 3, 5)], dict(pad=(4, 2), mode="reflect")),
    ("pad_replicate", F.pad, "pad", [(2, 3, 4, 5)], dict(pad=(3, 1, 2, 4), mode="replicate")),
    ("pad_replicate_3d", F.pad, "pad", [(1, 2, 3, 4, 2)], dict(pad=(1, 2, 0, 1, 2, 1),
                                                              mode="replicate")),
    ("pad_circular", F.pad, "pad", [(2, 3, 4, 5)], dict(pad=(2, 5, 4, 1), mode="circular")),
    ("pad_negative_crops", F.pad, "pad", [(2, 3, 4, 5)], dict(pad=(-1, 2, 1, -2), value=0.3)),
    ("interp_nearest", F.interpolate, "interpolate", [(2, 3, 4, 5)],
     dict(size=(7, 3), mode="nearest")),
    ("interp_nearest_scale", F.interpolate, "interpolate", [(2, 3, 4, 5)],
     dict(scale_factor=2, mode="nearest")),
    ("interp_nearest_1d", F.interpolate, "interpolate", [(2, 3, 5)],
     dict(size=8, mode="nearest")),
    ("interp_nearest_exact", F.interpolate, "interpolate", [(2, 3, 5, 4)],
     dict(size=(3, 7), mode="nearest-exact")),
    ("interp_bilinear", F.interpolate, "interpolate", [(2, 3, 4, 5)],
     dict(size=(7, 3), mode="bilinear", align_corners=False)),
    ("interp_bilinear_ac", F.interpolate, "interpolate", [(2, 3, 4, 5)],
     dict(size=(7, 9), mode="bilinear", align_corners=True)),
    ("interp_bilinear_scale", F.interpolate, "interpolate", [(1, 2, 3, 4)],
     dict(scale_factor=(2.5, 1.5), mode="bilinear")),
    ("interp_recompute_scale", F.interpolate, "interpolate", [(1, 2, 3, 4)],
     dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)),
    ("interp_linear_ac", F.interpolate, "interpolate", [(2, 3, 5)],
     dict(size=9, mode="linear", align_corners=True)),
    ("interp_trilinear", F.interpolate, "interpolate", [(1, 2, 3, 4, 2)],
     dict(size=(5, 3, 4), mode="trilinear", align_corners=False)),
    ("normalize", F.normalize, "normalize", [(3, 4, 2)], dict(dim=1)),
    ("normalize_p1", F.normalize, "normalize", [(3, 4)], dict(p=1, dim=-1)),
    ("normalize_p3", F.normalize, "normalize", [(3, 4)], dict(p=3, dim=0)),
    ("cosine_similarity", F.cosine_similarity, "cosine_similarity", [(3, 4, 2), (3, 4, 2)],
     dict(dim=1)),
    ("cosine_similarity_bcast", F.cosine_similarity, "cosine_similarity", [(3, 4), (1, 4)],
     dict(dim=-1)),
    ("pairwise_distance", F.pairwise_distance, "pairwise_distance", [(3, 5), (3, 5)], {}),
    ("pairwise_distance_p1", F.pairwise_distance, "pairwise_distance", [(3, 5), (3, 5)],
     dict(p=1.0, keepdim=True)),
    ("group_norm", lambda x, w, b, **k: F.group_norm(x, 2, w, b, **k), "group_norm",
     [(3, 4, 5, 2), (4,), (4,)], dict(eps=1e-5)),
    ("group_norm_1d", lambda x, **k: F.group_norm(x, 3, **k), "group_norm", [(2, 6, 4)], {}),
]


def _torch_call(torch, name, tensors, kw):
    tf = torch.nn.functional
    if name == "group_norm":
        groups = tensors[0].shape[1] // 2 if len(tensors) == 3 else 3
        return tf.group_norm(tensors[0], groups, *tensors[1:], **kw)
    return getattr(tf, name)(*tensors, **kw)


def _draw(shapes, distinct):
    out = []
    for i, s in enumerate(shapes):
        if distinct and i == 0:
            n = int(np.prod(s))
            out.append(rng(i).permutation(n).reshape(s) / n * 4 - 2)
        else:
            out.append(rng(i).standard_normal(s))
    return out


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("cid,fn,tname,shapes,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_values_and_grads(torch, backend, cid, fn, tname, shapes, kw):
    arrays = _draw(shapes, cid.startswith("max_pool"))
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours = [dbl(a) for a in arrays]
    ty = _torch_call(torch, tname, tt, kw)
    oy = fn(*ours, **kw)
    assert oy.shape == tuple(ty.shape), cid
    np.testing.assert_allclose(oy.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = _w(ty.shape, 9)
    (ty * torch.tensor(w)).sum().backward()
    (oy * tl.Tensor(w)).sum().backward()
    for o, t in zip(ours, tt):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=cid)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_return_indices_and_unpool_match_torch(torch, backend, nd):
    shape = (2, 3) + (7, 6, 5)[:nd]
    x = _draw([shape], True)[0]
    kw = dict(kernel_size=3, stride=2, padding=1)
    fn = getattr(F, f"max_pool{nd}d")
    tfn = getattr(torch.nn.functional, f"max_pool{nd}d")
    y, idx = fn(dbl(x), return_indices=True, **kw)
    ty, tidx = tfn(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    np.testing.assert_allclose(y.numpy(), ty.numpy())
    assert idx.dtype == np.int64 and not idx.requires_grad
    # unpool back: values and gradients
    yy = dbl(y.numpy())
    ty2 = torch.tensor(y.numpy(), requires_grad=True)
    name = f"max_unpool{nd}d"
    u = getattr(F, name)(yy, idx, 3, 2, 1, output_size=x.shape[-nd:])
    tu = getattr(torch.nn.functional, name)(ty2, tidx, 3, 2, 1, output_size=x.shape[-nd:])
    np.testing.assert_allclose(u.numpy(), tu.detach().numpy())
    w = _w(tu.shape)
    (tu * torch.tensor(w)).sum().backward()
    (u * tl.Tensor(w)).sum().backward()
    np.testing.assert_allclose(yy.grad.numpy(), ty2.grad.numpy())


def test_max_unpool_overlapping_windows_keeps_one_copy(torch):
    """kernel 3, stride 1: one maximum wins several windows; unpool writes it once."""
    x = np.array([[[0.0, 5.0, 1.0, 2.0]]])
    y, idx = F.max_pool1d(dbl(x), 3, 1, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), [[[1, 1]]])
    u = F.max_unpool1d(y, idx, 3, 1)
    tu = torch.nn.functional.max_unpool1d(torch.tensor(y.numpy()), torch.tensor(idx.numpy()), 3,
                                          1)
    np.testing.assert_array_equal(u.numpy(), tu.numpy())
    np.testing.assert_array_equal(u.numpy(), [[[0.0, 5.0, 0.0, 0.0]]])


def _np_conv3d(x, w, stride, padding):
    n, c, d, h, wd = x.shape
    o, _, kd, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in padding))
    out = [(xp.shape[2 + a] - w.shape[2 + a]) // stride[a] + 1 for a in range(3)]
    y = np.zeros((n, o, *out))
    for i, j, k in np.ndindex(*out):
        patch = xp[:, :, i * stride[0]:i * stride[0] + kd, j * stride[1]:j * stride[1] + kh,
                   k * stride[2]:k * stride[2] + kw]
        y[:, :, i, j, k] = np.einsum("ncdhw,ocdhw->no", patch, w)
    return y


def test_conv3d_matches_loop_reference(backend):
    x, w = rng().standard_normal((2, 3, 4, 5, 3)), rng(1).standard_normal((2, 3, 2, 3, 2))
    got = F.conv3d(dbl(x), dbl(w), stride=(1, 2, 1), padding=(1, 0, 1))
    np.testing.assert_allclose(got.numpy(), _np_conv3d(x, w, (1, 2, 1), (1, 0, 1)), rtol=1e-12)


def test_pool_and_pad_numpy_references(backend):
    x = rng().standard_normal((2, 3, 6))
    np.testing.assert_allclose(F.pad(dbl(x), (2, 3), mode="reflect").numpy(),
                               np.pad(x, ((0, 0), (0, 0), (2, 3)), mode="reflect"))
    np.testing.assert_allclose(F.pad(dbl(x), (2, 3), mode="replicate").numpy(),
                               np.pad(x, ((0, 0), (0, 0), (2, 3)), mode="edge"))
    np.testing.assert_allclose(F.pad(dbl(x), (2, 3), mode="circular").numpy(),
                               np.pad(x, ((0, 0), (0, 0), (2, 3)), mode="wrap"))
    # avg_pool1d, count_include_pad=False: mean of the real cells of each window
    y = F.avg_pool1d(dbl(x), 3, 2, 1, count_include_pad=False).numpy()
    want = np.stack([x[..., max(0, o * 2 - 1):o * 2 + 2].mean(-1) for o in range(3)], -1)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    # max_pool1d, dilation 2: max of x[o*s + 2j]
    y = F.max_pool1d(dbl(x), 2, 1, dilation=2).numpy()
    np.testing.assert_allclose(y, np.maximum(x[..., :-2], x[..., 2:]))


@pytest.mark.parametrize("name,call", [
    ("conv3d", lambda a, b: F.conv3d(a, b, stride=(2, 1, 1), padding=1)),
    ("conv1d", lambda a, b: F.conv1d(a, b, padding=1, dilation=2)),
    ("max_pool3d", lambda a, b: F.max_pool3d(a * b.sum(), 2, 1, ceil_mode=True)),
    ("avg_pool3d", lambda a, b: F.avg_pool3d(a * b.sum(), 2, 2, 1, ceil_mode=True,
                                             count_include_pad=False)),
])
def test_double_backward_3d(backend, name, call):
    if name == "conv1d":
        a, b = dbl(rng().standard_normal((1, 2, 5))), dbl(rng(1).standard_normal((2, 2, 2)))
    elif name == "conv3d":
        a = dbl(rng().standard_normal((1, 2, 3, 3, 2)))
        b = dbl(rng(1).standard_normal((2, 2, 2, 2, 1)))
    else:
        a = dbl(_draw([(1, 1, 3, 3, 3)], True)[0])
        b = dbl(np.array([0.7]))
    gradcheck(call, [a, b], seed=3)
    gradgradcheck(call, [a, b], seed=4)


def test_errors():
    x = tl.zeros(1, 2, 4)
    with pytest.raises(ShapeError, match="reflect padding must be smaller"):
        F.pad(x, (4, 0), mode="reflect")
    with pytest.raises(ValueError, match="mode must be"):
        F.pad(x, (1, 1), mode="wrap")
    with pytest.raises(ShapeError, match="conv3d: input must be 5-D"):
        F.conv3d(x, tl.zeros(1, 2, 1, 1, 1))
    with pytest.raises(ShapeError, match="padding must be between 0 and half"):
        F.max_pool1d(x, 2, padding=2)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(x, mode="linear")
    with pytest.raises(ShapeError, match="mode 'bilinear' needs 4-D"):
        F.interpolate(x, size=3, mode="bilinear")
    with pytest.raises(ShapeError, match="max_unpool2d: indices must be in"):
        F.max_unpool2d(tl.zeros(1, 1, 2, 2), np.full((1, 1, 2, 2), 99), 2)
    with pytest.raises(ShapeError, match="group_norm: channels"):
        F.group_norm(tl.zeros(2, 3, 4), 2)


@pytest.mark.parametrize("nd,kw", [(1, dict(kernel_size=3, stride=1, ceil_mode=True)),
                                   (2, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
                                   (3, dict(kernel_size=(2, 3, 2), stride=1, padding=(1, 1, 0))),
                                   (3, dict(kernel_size=2, dilation=(1, 2, 1)))])
def test_max_pool_ties_route_the_gradient_like_torch(torch, backend, nd, kw):
    """Many ties (values in {0, 1, 2}): the gradient goes to the first maximum in window order."""
    x = rng(2).integers(0, 3, size=(2, 2) + (5, 6, 5)[:nd]).astype(np.float64)
    ox, tx = dbl(x), torch.tensor(x, requires_grad=True)
    oy = getattr(F, f"max_pool{nd}d")(ox, **kw)
    ty = getattr(torch.nn.functional, f"max_pool{nd}d")(tx, **kw)
    w = _w(ty.shape)
    (oy * tl.Tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(oy.numpy(), ty.detach().numpy())
    np.testing.assert_allclose(ox.grad.numpy(), tx.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("kw", [dict(size=(7, 3), mode="bilinear", align_corners=False),
                                dict(size=(5, 9), mode="bilinear", align_corners=True),
                                dict(size=(7, 3), mode="nearest"),
                                dict(size=(3, 8), mode="nearest-exact")])
def test_interpolate_gather_path_matches_matrix_path(torch, monkeypatch, kw):
    """Large axes use two gathers instead of the dense interpolation matrix: same values and
    gradients (the threshold is lowered here so that small inputs take that path)."""
    from tinygrad_lite.nn import spatial

    x = rng().standard_normal((2, 3, 4, 5))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.interpolate(tx, **kw)
    w = _w(ty.shape)
    (ty * torch.tensor(w)).sum().backward()
    for limit in (0, 1 << 18):
        monkeypatch.setattr(spatial, "_MATMUL_RESIZE_MAX", limit)
        ox = dbl(x)
        oy = F.interpolate(ox, **kw)
        (oy * tl.Tensor(w)).sum().backward()
        np.testing.assert_allclose(oy.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ox.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
