"""nn.utils.prune against torch.nn.utils.prune: same masks, same state_dict keys, masks that hold
through optimizer steps, and remove()."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn, optim
from tinygrad_lite.nn.utils import prune

torch = pytest.importorskip("torch")
tprune = pytest.importorskip("torch.nn.utils.prune")


def _pair(seed=0, sizes=(6, 9, 4)):
    """A tinygrad_lite MLP and a PyTorch one with the same weights (no ties in |w|)."""
    tl.manual_seed(seed)
    ours = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Linear(sizes[1], sizes[2]))
    theirs = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.ReLU(),
                                 torch.nn.Linear(sizes[1], sizes[2]))
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            ours.state_dict().items()})
    return ours, theirs


def _same_state(ours, theirs):
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), b[k].detach().numpy(), err_msg=k)


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.77, 1.0, 7, 0])
def test_l1_unstructured_matches_torch(amount):
    ours, theirs = _pair()
    prune.l1_unstructured(ours[0], "weight", amount)
    tprune.l1_unstructured(theirs[0], "weight", amount)
    _same_state(ours, theirs)                 # bias, weight_orig, weight_mask: keys and values
    np.testing.assert_array_equal(ours[0].weight.numpy(), theirs[0].weight.detach().numpy())
    x = np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(tl.Tensor(x)).numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_repeated_pruning_prunes_among_the_remaining_entries():
    ours, theirs = _pair(1)
    for amount in (0.5, 0.5, 3):
        prune.l1_unstructured(ours[2], "weight", amount)
        tprune.l1_unstructured(theirs[2], "weight", amount)
        _same_state(ours, theirs)
    # 36 -> 18 kept -> 9 kept -> 6 kept
    assert int(ours[2].weight_mask.numpy().sum()) == 6


def test_global_unstructured_matches_torch_including_a_prepruned_layer():
    ours, theirs = _pair(2)
    prune.l1_unstructured(ours[0], "weight", 0.4)
    tprune.l1_unstructured(theirs[0], "weight", 0.4)
    params = [(ours[0], "weight"), (ours[2], "weight"), (ours[2], "bias")]
    tparams = [(theirs[0], "weight"), (theirs[2], "weight"), (theirs[2], "bias")]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.6)
    tprune.global_unstructured(tparams, pruning_method=tprune.L1Unstructured, amount=0.6)
    _same_state(ours, theirs)
    sp = prune.sparsity(ours)
    assert set(sp) == {"0.weight", "2.weight", "2.bias"}
    for key, (m, name) in zip(["0.weight", "2.weight", "2.bias"], tparams):
        assert sp[key] == pytest.approx(float((getattr(m, name) == 0).float().mean()))
    n = 54 + 36 + 4
    assert prune.global_sparsity(ours) == pytest.approx(round(0.6 * (n - 22)) / n + 22 / n)


def test_custom_from_mask_identity_and_importance_scores_match_torch():
    ours, theirs = _pair(3)
    mask = (np.arange(54).reshape(9, 6) % 3 != 0).astype(np.float32)
    prune.custom_from_mask(ours[0], "weight", mask)
    tprune.custom_from_mask(theirs[0], "weight", torch.from_numpy(mask))
    prune.identity(ours[2], "weight")
    tprune.identity(theirs[2], "weight")
    scores = np.random.default_rng(4).random((4,)).astype(np.float32)
    prune.l1_unstructured(ours[2], "bias", 2, importance_scores=scores)
    tprune.l1_unstructured(theirs[2], "bias", 2, importance_scores=torch.from_numpy(scores))
    _same_state(ours, theirs)
    assert prune.is_pruned(ours) and prune.sparsity(ours)["2.weight"] == 0.0


def test_masked_weights_stay_zero_through_adam_steps_and_get_zero_gradients():
    ours, theirs = _pair(5)
    prune.l1_unstructured(ours[0], "weight", 0.5)
    tprune.l1_unstructured(theirs[0], "weight", 0.5)
    opt = optim.Adam(ours.parameters(), lr=0.05)
    topt = torch.optim.Adam(theirs.parameters(), lr=0.05)
    assert any(p is ours[0].weight_orig for p in ours.parameters())
    rng = np.random.default_rng(6)
    dead = ours[0].weight_mask.numpy() == 0
    for _ in range(4):
        x = rng.standard_normal((8, 6)).astype(np.float32)
        y = rng.integers(0, 4, 8)
        opt.zero_grad()
        nn.functional.cross_entropy(ours(tl.Tensor(x)), tl.Tensor(y)).backward()
        g = ours[0].weight_orig.grad
        assert np.all(np.asarray(g.numpy() if hasattr(g, "numpy") else g)[dead] == 0)
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)),
                                          torch.from_numpy(y)).backward()
        topt.step()
        ours(tl.Tensor(x))                   # the pre-hook recomputes the effective weight
        assert np.all(ours[0].weight.numpy()[dead] == 0)
    # nonzero Adam updates moved the live weights; the run tracks PyTorch's
    _same_state_close(ours, theirs)
    assert prune.sparsity(ours)["0.weight"] == 0.5


def _same_state_close(ours, theirs):
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_allclose(np.asarray(a[k]), b[k].detach().numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=k)


def test_remove_makes_it_permanent_like_torch():
    ours, theirs = _pair(7)
    prune.l1_unstructured(ours[0], "weight", 0.75)
    tprune.l1_unstructured(theirs[0], "weight", 0.75)
    prune.remove(ours[0], "weight")
    tprune.remove(theirs[0], "weight")
    _same_state(ours, theirs)
    assert list(ours.state_dict()) == ["0.bias", "0.weight", "2.weight", "2.bias"]  # as torch
    assert isinstance(ours[0].weight, nn.Parameter) and not prune.is_pruned(ours)
    assert prune.sparsity(ours) == {}
    # no mask any more: training revives the zeroed entries
    opt = optim.SGD(ours.parameters(), lr=0.5)
    x = np.random.default_rng(8).standard_normal((8, 6)).astype(np.float32)
    opt.zero_grad()
    ours(tl.Tensor(x)).sum().backward()
    opt.step()
    assert np.mean(ours[0].weight.numpy() == 0) < 0.75
    with pytest.raises(ValueError, match="not pruned"):
        prune.remove(ours[0], "weight")


def test_pruned_module_state_round_trips_through_tl_save(tmp_path):
    ours, _ = _pair(9)
    prune.l1_unstructured(ours[0], "weight", 0.5)
    tl.save(ours.state_dict(), tmp_path / "p.safetensors")
    fresh, _ = _pair(10)
    prune.identity(fresh[0], "weight")
    fresh.load_state_dict(tl.load(tmp_path / "p.safetensors"))
    x = tl.Tensor(np.ones((2, 6), dtype=np.float32))
    np.testing.assert_array_equal(fresh(x).numpy(), ours(x).numpy())


def test_bad_arguments():
    ours, _ = _pair()
    with pytest.raises(ValueError, match=r"no parameter 'kernel'"):
        prune.l1_unstructured(ours[0], "kernel", 0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        prune.l1_unstructured(ours[0], "weight", 1.5)
    with pytest.raises(ValueError, match=r"count in \[0, 54\]"):
        prune.l1_unstructured(ours[0], "weight", 55)
    with pytest.raises(TypeError, match="amount must be"):
        prune.l1_unstructured(ours[0], "weight", "half")
    with pytest.raises(TypeError, match="amount= is needed"):
        prune.global_unstructured([(ours[0], "weight")])
    with pytest.raises(ValueError, match="shape"):
        prune.l1_unstructured(ours[0], "weight", 0.5, importance_scores=np.ones(3))
    from tinygrad_lite.layers import Dense

    dense = Dense(3, input_shape=(4,))
    dense.build((4,))
    with pytest.raises(TypeError, match="Keras-style layers"):
        prune.l1_unstructured(dense, "kernel", 0.5)


def test_conv2d_weight_pruning_matches_torch():
    tl.manual_seed(11)
    ours = nn.Conv2d(2, 3, 3)
    theirs = torch.nn.Conv2d(2, 3, 3)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            ours.state_dict().items()})
    prune.l1_unstructured(ours, "weight", 0.6)
    tprune.l1_unstructured(theirs, "weight", 0.6)
    _same_state(ours, theirs)
    x = np.random.default_rng(11).standard_normal((2, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(tl.Tensor(x)).numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    assert prune.sparsity(ours) == {"weight": pytest.approx(round(0.6 * 54) / 54)}
