"""Module machinery: registration, traversal, state_dict round trips, strict loading errors,
modes, dtype/device moves, repr and summary."""

import numpy as np
import pytest
from nn_helpers import dbl, rng

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.errors import ShapeError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Linear(8, 4), nn.Linear(4, 3)])
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.register_buffer("steps", tl.zeros(1))
        self.register_buffer("cache", tl.zeros(2), persistent=False)

    def forward(self, x):
        x = self.features(x).flatten(1)
        for b in self.blocks:
            x = b(x)
        return x * self.scale


def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "scale",
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "blocks.1.bias",
    ]
    assert [n for n, _ in net.named_children()] == ["features", "blocks"]
    assert len(list(net.modules())) == 8
    assert [n for n, _ in net.named_buffers()] == [
        "steps",
        "cache",
        "features.1.running_mean",
        "features.1.running_var",
        "features.1.num_batches_tracked",
    ]
    assert net.num_parameters() == 1 + 20 + 4 + 36 + 15
    # reassigning replaces, deleting removes, plain attributes are not registered
    net.scale = nn.Parameter(np.zeros(2, dtype=np.float32))
    assert net.scale.shape == (2,)
    net.note = "hello"
    assert "note" not in dict(net.named_parameters())
    del net.scale
    assert "scale" not in dict(net.named_parameters())


def test_shared_parameter_counted_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2


def test_missing_super_init_is_explained():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Bad()


def test_state_dict_keys_values_and_round_trip():
    tl.manual_seed(0)
    net = Net()
    sd = net.state_dict()
    assert "cache" not in sd and "steps" in sd
    assert list(sd)[-3:] == ["blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]
    assert sd["features.1.num_batches_tracked"].dtype == np.int64
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["blocks.0.weight"][...] = 0  # a copy: editing it leaves the model alone
    assert np.any(net.blocks[0].weight.numpy() != 0)
    tl.manual_seed(1)
    other = Net()
    res = other.load_state_dict(net.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []
    x = tl.randn(2, 1, 4, 4)
    net.eval(), other.eval()
    np.testing.assert_array_equal(net(x).numpy(), other(x).numpy())


def test_load_state_dict_strict_errors_name_keys():
    net = Net()
    sd = net.state_dict()
    del sd["blocks.1.bias"]
    sd["extra.weight"] = np.zeros(3)
    with pytest.raises(KeyError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert "missing keys ['blocks.1.bias']" in msg and "unexpected keys ['extra.weight']" in msg
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["blocks.1.bias"] and res.unexpected_keys == ["extra.weight"]
    sd = net.state_dict()
    sd["blocks.0.weight"] = np.zeros((5, 8))
    with pytest.raises(ShapeError, match=r"blocks.0.weight: checkpoint \(5, 8\) vs model \(4, 8\)"):
        net.load_state_dict(sd, strict=False)


def test_load_keeps_parameter_identity_and_dtype():
    lin = nn.Linear(2, 2)
    w = lin.weight
    lin.load_state_dict({"weight": np.ones((2, 2)), "bias": [1.0, 2.0]})
    assert lin.weight is w and w.dtype == np.float32
    np.testing.assert_array_equal(lin.bias.numpy(), [1, 2])


LAYERS = [
    lambda: nn.Linear(3, 2),
    lambda: nn.Conv2d(2, 3, 3, groups=1),
    lambda: nn.ConvTranspose2d(2, 3, 2, stride=2),
    lambda: nn.BatchNorm1d(3),
    lambda: nn.BatchNorm2d(2),
    lambda: nn.LayerNorm((2, 3)),
    lambda: nn.Embedding(4, 3),
    lambda: nn.RNN(2, 3, num_layers=2),
    lambda: nn.LSTM(2, 3, bidirectional=True),
    lambda: nn.GRU(2, 3, batch_first=True),
    lambda: nn.BasicBlock(2, 4, stride=2),
    lambda: nn.Residual(nn.Linear(2, 2)),
    lambda: nn.Sequential(nn.Linear(2, 2), nn.Dropout(), nn.ReLU()),
]


@pytest.mark.parametrize("make", LAYERS)
def test_state_dict_round_trip_every_layer(make):
    tl.manual_seed(1)
    a = make()
    tl.manual_seed(2)
    b = make()
    a.load_state_dict(b.state_dict())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    with pytest.raises(KeyError):
        a.load_state_dict({})


def test_train_eval_propagates():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_and_requires_grad():
    lin = nn.Linear(2, 1)
    lin(tl.ones(3, 2)).sum().backward()
    assert lin.weight.grad is not None
    lin.zero_grad(set_to_none=False)
    assert np.all(lin.weight.grad.numpy() == 0)
    lin.zero_grad()
    assert lin.weight.grad is None
    lin.requires_grad_(False)
    assert not any(p.requires_grad for p in lin.parameters())
    assert lin.num_parameters(trainable_only=True) == 0


def test_to_dtype_in_place_keeps_objects_and_int_buffers():
    net = Net()
    params = list(net.parameters())
    net.double()
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.features[1].running_mean.dtype == np.float64
    assert net.features[1].num_batches_tracked.dtype == np.int64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net.to("cpu") is net
    with pytest.raises(TypeError):
        net.to(np.int32)


def test_forward_hook_and_call():
    lin = nn.Linear(2, 2)
    seen = []
    h = lin.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    lin(tl.ones(3, 2))
    h.remove()
    lin(tl.ones(3, 2))
    assert seen == [(3, 2)]


def test_repr_is_readable():
    r = repr(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Conv2d(1, 2, 3, padding=1)))
    assert r.splitlines()[0] == "Sequential("
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in r
    assert "(2): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in r


def test_summary_shapes_and_counts():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
    model.train()
    text = model.summary((1, 8, 8))
    lines = text.splitlines()
    # the last column: forward FLOPs per sample, 2 * 4*8*8 outputs * 9 taps + 256 bias adds
    assert lines[2].split() == ["0", "Conv2d", "(-1,", "4,", "8,", "8)", "40", "4,864"]
    assert lines[5].split()[:2] == ["3", "MaxPool2d"] and "(-1, 4, 4, 4)" in lines[5]
    assert "(-1, 10)" in lines[7] and lines[7].split()[-2:] == ["650", "1,290"]
    assert "Total params: 698" in text and "Trainable params: 698" in text
    assert model.training  # restored
    assert int(model[1].num_batches_tracked.item()) == 0  # summary ran in eval mode


def test_sequential_and_modulelist_indexing():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and isinstance(seq[-1], nn.Linear)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and head(tl.ones(1, 2)).shape == (1, 3)
    seq.append(nn.Sigmoid())
    assert len(seq) == 4
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.Linear(1, 2))
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    assert list(md.state_dict()) == ["a.weight", "a.bias"]


def test_float64_model_gradients_are_float64():
    tl.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    m(dbl(rng().standard_normal((2, 3)), False)).sum().backward()
    assert all(p.grad.dtype == np.float64 for p in m.parameters())
