"""Weights move between tinygrad_lite and PyTorch with a plain dict of arrays: same keys, same
shapes, same outputs and gradients (float64). Skipped when torch is not installed."""

import numpy as np
import pytest
from nn_helpers import rng

import tinygrad_lite as tl
from tinygrad_lite import nn

CASES = [
    ("Linear", lambda t: t.Linear(4, 3), lambda: nn.Linear(4, 3), (2, 4)),
    (
        "Conv2d",
        lambda t: t.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2),
        lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        (2, 4, 6, 6),
    ),
    (
        "Conv2d_same_even",
        lambda t: t.Conv2d(2, 3, 4, padding="same", dilation=1),
        lambda: nn.Conv2d(2, 3, 4, padding="same"),
        (1, 2, 5, 5),
    ),
    (
        "Conv2d_dilated",
        lambda t: t.Conv2d(2, 3, 3, dilation=2, bias=False),
        lambda: nn.Conv2d(2, 3, 3, dilation=2, bias=False),
        (1, 2, 7, 7),
    ),
    (
        "ConvTranspose2d",
        lambda t: t.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2),
        lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2),
        (2, 4, 3, 3),
    ),
    ("BatchNorm1d", lambda t: t.BatchNorm1d(3), lambda: nn.BatchNorm1d(3), (5, 3, 2)),
    (
        "BatchNorm2d",
        lambda t: t.BatchNorm2d(3, momentum=0.2),
        lambda: nn.BatchNorm2d(3, momentum=0.2),
        (4, 3, 2, 2),
    ),
    ("LayerNorm", lambda t: t.LayerNorm((3, 2)), lambda: nn.LayerNorm((3, 2)), (4, 3, 2)),
    ("MaxPool2d", lambda t: t.MaxPool2d(3, 2, 1), lambda: nn.MaxPool2d(3, 2, 1), (1, 2, 5, 5)),
    ("AvgPool2d", lambda t: t.AvgPool2d(2), lambda: nn.AvgPool2d(2), (1, 2, 4, 4)),
    ("GELU_tanh", lambda t: t.GELU("tanh"), lambda: nn.GELU("tanh"), (3, 4)),
    ("ELU", lambda t: t.ELU(0.7), lambda: nn.ELU(0.7), (3, 4)),
    ("Softplus", lambda t: t.Softplus(2.0), lambda: nn.Softplus(2.0), (3, 4)),
    (
        "Conv1d",
        lambda t: t.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
        lambda: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
        (2, 4, 9),
    ),
    (
        "Conv1d_reflect_same",
        lambda t: t.Conv1d(2, 3, 4, padding="same", padding_mode="reflect"),
        lambda: nn.Conv1d(2, 3, 4, padding="same", padding_mode="reflect"),
        (2, 2, 7),
    ),
    (
        "Conv2d_circular",
        lambda t: t.Conv2d(2, 3, 3, padding=(2, 1), padding_mode="circular"),
        lambda: nn.Conv2d(2, 3, 3, padding=(2, 1), padding_mode="circular"),
        (1, 2, 5, 4),
    ),
    (
        "Conv3d",
        lambda t: t.Conv3d(2, 4, (2, 3, 2), stride=(1, 2, 1), padding=1, groups=2),
        lambda: nn.Conv3d(2, 4, (2, 3, 2), stride=(1, 2, 1), padding=1, groups=2),
        (2, 2, 4, 5, 3),
    ),
    (
        "Conv3d_replicate",
        lambda t: t.Conv3d(1, 2, 3, padding=1, padding_mode="replicate", bias=False),
        lambda: nn.Conv3d(1, 2, 3, padding=1, padding_mode="replicate", bias=False),
        (1, 1, 3, 4, 3),
    ),
    (
        "ConvTranspose1d",
        lambda t: t.ConvTranspose1d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2),
        lambda: nn.ConvTranspose1d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2),
        (2, 4, 5),
    ),
    ("GroupNorm", lambda t: t.GroupNorm(2, 4), lambda: nn.GroupNorm(2, 4), (3, 4, 3, 2)),
    ("GroupNorm_noaffine", lambda t: t.GroupNorm(3, 6, affine=False),
     lambda: nn.GroupNorm(3, 6, affine=False), (2, 6, 5)),
    ("MaxPool1d", lambda t: t.MaxPool1d(3, 2, 1, ceil_mode=True),
     lambda: nn.MaxPool1d(3, 2, 1, ceil_mode=True), (2, 3, 8)),
    ("MaxPool3d", lambda t: t.MaxPool3d(2, dilation=(1, 2, 1)),
     lambda: nn.MaxPool3d(2, dilation=(1, 2, 1)), (1, 2, 4, 6, 4)),
    ("AvgPool1d", lambda t: t.AvgPool1d(3, 2, 1), lambda: nn.AvgPool1d(3, 2, 1), (2, 3, 8)),
    ("AvgPool3d", lambda t: t.AvgPool3d(3, 2, 1, ceil_mode=True, count_include_pad=False),
     lambda: nn.AvgPool3d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 5, 6, 4)),
    ("Upsample_bilinear", lambda t: t.Upsample(scale_factor=2, mode="bilinear",
                                               align_corners=True),
     lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), (1, 2, 3, 4)),
    ("Upsample_nearest", lambda t: t.Upsample(size=(5, 7)), lambda: nn.Upsample(size=(5, 7)),
     (1, 2, 3, 4)),
    ("ZeroPad2d", lambda t: t.ZeroPad2d((1, 0, 2, 3)), lambda: nn.ZeroPad2d((1, 0, 2, 3)),
     (1, 2, 3, 4)),
    ("ConstantPad1d", lambda t: t.ConstantPad1d(2, 0.5), lambda: nn.ConstantPad1d(2, 0.5),
     (1, 2, 3)),
    ("ReflectionPad2d", lambda t: t.ReflectionPad2d((2, 1, 0, 2)),
     lambda: nn.ReflectionPad2d((2, 1, 0, 2)), (1, 2, 3, 4)),
    ("ReplicationPad3d", lambda t: t.ReplicationPad3d(1), lambda: nn.ReplicationPad3d(1),
     (1, 1, 2, 3, 2)),
    ("CircularPad1d", lambda t: t.CircularPad1d((3, 1)), lambda: nn.CircularPad1d((3, 1)),
     (2, 2, 4)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name,make_t,make_ours,shape", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_torch_after_weight_transfer(torch, name, make_t, make_ours, shape):
    torch.manual_seed(0)
    tm = make_t(torch.nn).double()
    ours = make_ours().double()
    assert list(ours.state_dict()) == list(tm.state_dict())
    ours.load_state_dict(tm.state_dict())  # torch tensors go straight in
    x = rng().standard_normal(shape)
    tx = torch.tensor(x, requires_grad=True)
    ox = tl.Tensor(x, requires_grad=True)
    ty, oy = tm(tx), ours(ox)
    w = rng(1).standard_normal(ty.shape)
    np.testing.assert_allclose(oy.numpy(), ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    (ty * torch.tensor(w)).sum().backward()
    (oy * tl.Tensor(w)).sum().backward()
    np.testing.assert_allclose(ox.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-12)
    for (k, p), (_, tp) in zip(ours.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(
            p.grad.numpy(), tp.grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=k
        )
    # buffers (BatchNorm running statistics) evolve the same; and back into torch
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-12, err_msg=k)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    if name.startswith("BatchNorm"):
        tm.eval(), ours.eval()
        np.testing.assert_allclose(ours(ox).numpy(), tm(tx).detach().numpy(), rtol=1e-9)


def test_max_unpool2d_module_matches_torch(torch):
    x = rng().permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) / 10.0
    tp, tu = torch.nn.MaxPool2d(2, return_indices=True), torch.nn.MaxUnpool2d(2)
    op, ou = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    ty, ti = tp(torch.tensor(x))
    oy, oi = op(tl.Tensor(x))
    np.testing.assert_array_equal(oi.numpy(), ti.numpy())
    np.testing.assert_array_equal(ou(oy, oi).numpy(), tu(ty, ti).numpy())
    assert ou.state_dict() == {} and list(tu.state_dict()) == []


def test_embedding_matches_torch(torch):
    te = torch.nn.Embedding(6, 3, padding_idx=1).double()
    emb = nn.Embedding(6, 3, padding_idx=1).double()
    emb.load_state_dict(te.state_dict())
    idx = np.array([[0, 1, 5], [1, 2, 2]])
    te(torch.tensor(idx)).sum().backward()
    out = emb(tl.Tensor(idx))
    out.sum().backward()
    np.testing.assert_allclose(out.numpy(), te(torch.tensor(idx)).detach().numpy())
    np.testing.assert_allclose(emb.weight.grad.numpy(), te.weight.grad.numpy())


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_recurrent_matches_torch(torch, kind):
    torch.manual_seed(0)
    kw = {"num_layers": 2, "batch_first": True, "bidirectional": True}
    tm = getattr(torch.nn, kind)(3, 4, **kw).double()
    ours = getattr(nn, kind)(3, 4, **kw).double()
    assert list(ours.state_dict()) == list(tm.state_dict())
    ours.load_state_dict(tm.state_dict())
    x = rng().standard_normal((2, 5, 3))
    tx, ox = torch.tensor(x, requires_grad=True), tl.Tensor(x, requires_grad=True)
    (to, ts), (oo, os_) = tm(tx), ours(ox)
    np.testing.assert_allclose(oo.numpy(), to.detach().numpy(), rtol=1e-9, atol=1e-12)
    ts = ts if isinstance(ts, tuple) else (ts,)
    os_ = os_ if isinstance(os_, tuple) else (os_,)
    for a, b in zip(os_, ts):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)
    w = rng(1).standard_normal(to.shape)
    ((to * torch.tensor(w)).sum() + ts[-1].sum()).backward()
    ((oo * tl.Tensor(w)).sum() + os_[-1].sum()).backward()
    np.testing.assert_allclose(ox.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-12)
    for (k, p), (_, tp) in zip(ours.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(
            p.grad.numpy(), tp.grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=k
        )


def test_basic_block_matches_torch_composition(torch):
    tnn = torch.nn

    class TorchBlock(tnn.Module):  # torchvision's BasicBlock, written out
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(2, 4, 3, 2, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(4)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(4, 4, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(4)
            self.downsample = tnn.Sequential(tnn.Conv2d(2, 4, 1, 2, bias=False), tnn.BatchNorm2d(4))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + self.downsample(x))

    torch.manual_seed(0)
    tb = TorchBlock().double()
    ob = nn.BasicBlock(2, 4, stride=2).double()
    assert list(ob.state_dict()) == list(tb.state_dict())
    ob.load_state_dict(tb.state_dict())
    x = rng().standard_normal((3, 2, 6, 6))
    np.testing.assert_allclose(
        ob(tl.Tensor(x)).numpy(), tb(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-12
    )


def test_default_init_distributions_match_torch_bounds(torch):
    """Same families and scales as PyTorch's defaults (values differ: different generators)."""
    tl.manual_seed(0)
    torch.manual_seed(0)
    for ours, theirs in [
        (nn.Linear(50, 64), torch.nn.Linear(50, 64)),
        (nn.Conv2d(6, 64, 3, groups=2), torch.nn.Conv2d(6, 64, 3, groups=2)),
        (nn.ConvTranspose2d(6, 64, 3, groups=2), torch.nn.ConvTranspose2d(6, 64, 3, groups=2)),
        (nn.LSTM(5, 16), torch.nn.LSTM(5, 16)),
    ]:
        for (k, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            a, b = np.abs(p.numpy()).max(), np.abs(tp.detach().numpy()).max()
            assert 0.85 < a / b < 1.15, (type(ours).__name__, k, a, b)
