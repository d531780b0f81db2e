"""Learning-rate schedules pinned to sequences computed by hand (and compared with torch's)."""

import math

import numpy as np
import pytest

from tinygrad_lite.optim import SGD, Adam
from tinygrad_lite.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    ReduceLROnPlateau,
    StepLR,
)


def lrs_over(sched, opt, epochs):
    """The lr in force during each epoch (read before the epoch's scheduler step), group 0."""
    out = []
    for _ in range(epochs):
        assert sched.get_last_lr()[0] == opt.param_groups[0]["lr"]
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.fixture
def opt(make_param):
    return SGD([make_param([1.0])], lr=1.0)


def test_step_lr(opt):
    s = StepLR(opt, step_size=3, gamma=0.5)
    assert lrs_over(s, opt, 8) == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_multistep_lr(opt):
    s = MultiStepLR(opt, milestones=[4, 2], gamma=0.1)  # order does not matter
    assert lrs_over(s, opt, 6) == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01], rel=1e-12)


def test_exponential_lr(opt):
    s = ExponentialLR(opt, gamma=0.9)
    assert lrs_over(s, opt, 4) == pytest.approx([1, 0.9, 0.81, 0.729], rel=1e-12)


def test_cosine_annealing_lr(make_param):
    opt = SGD([make_param([1.0])], lr=0.1)
    s = CosineAnnealingLR(opt, T_max=4, eta_min=0.02)
    # 0.02 + 0.08 * (1 + cos(pi e / 4)) / 2 for e = 0..4: 0.1, 0.02 + 0.04 (1 + 1/sqrt2), 0.06, ...
    r = 1 / math.sqrt(2)
    want = [0.1, 0.02 + 0.04 * (1 + r), 0.06, 0.02 + 0.04 * (1 - r), 0.02, 0.02 + 0.04 * (1 - r)]
    assert lrs_over(s, opt, 6) == pytest.approx(want, rel=1e-12)


def test_linear_lr_warmup(make_param):
    opt = SGD([make_param([1.0])], lr=0.05)
    s = LinearLR(opt, start_factor=0.5, total_iters=4)
    want = [0.025, 0.03125, 0.0375, 0.04375, 0.05, 0.05, 0.05]
    assert lrs_over(s, opt, 7) == pytest.approx(want, rel=1e-12)
    opt2 = SGD([make_param([1.0])], lr=1.0)
    s2 = LinearLR(opt2)  # PyTorch defaults: 1/3 -> 1 over 5 epochs
    assert lrs_over(s2, opt2, 7) == pytest.approx([1 / 3, 7 / 15, 9 / 15, 11 / 15, 13 / 15, 1, 1])


def test_schedules_apply_per_group(make_param):
    opt = SGD([{"params": [make_param([1.0])]}, {"params": [make_param([1.0])], "lr": 0.2}], lr=1.0)
    s = StepLR(opt, step_size=1, gamma=0.5)
    s.step()
    s.step()
    assert s.get_last_lr() == pytest.approx([0.25, 0.05])
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0, 0.2]


def test_scheduler_changes_the_step_the_optimizer_takes(make_param, set_grad):
    p = make_param([0.0])
    opt = SGD([p], lr=1.0)
    s = StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        set_grad(p, [1.0])
        opt.step()
        s.step()
    assert p.data[0] == pytest.approx(-(1 + 0.5 + 0.25))


def test_step_with_epoch_jumps_in_closed_form(opt):
    s = ExponentialLR(opt, gamma=0.5)
    s.step(3)
    assert s.get_last_lr() == [0.125] and s.last_epoch == 3


def test_scheduler_state_dict_resumes(make_param):
    def build():
        o = Adam([make_param([1.0])], lr=0.1)
        return o, CosineAnnealingLR(o, T_max=10, eta_min=0.001)

    o1, s1 = build()
    for _ in range(4):
        o1.step()
        s1.step()
    sd, osd = s1.state_dict(), o1.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 4
    o2, s2 = build()
    o2.load_state_dict(osd)
    s2.load_state_dict(sd)
    assert s2.get_last_lr() == s1.get_last_lr()
    assert lrs_over(s2, o2, 5) == lrs_over(s1, o1, 5)
    # resuming by last_epoch works from an optimizer that carries initial_lr
    o3 = Adam([make_param([1.0])], lr=0.5)
    o3.load_state_dict(osd)
    s3 = CosineAnnealingLR(o3, T_max=10, eta_min=0.001, last_epoch=3)
    assert s3.get_last_lr() == pytest.approx(sd["_last_lr"], rel=1e-12)


def test_resuming_without_initial_lr_raises(opt):
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(opt, step_size=2, last_epoch=5)


@pytest.mark.parametrize(
    "make,msg",
    [
        (
            lambda o: StepLR(o, step_size=0),
            "StepLR: step_size must be an int >= 1, got step_size=0",
        ),
        (lambda o: StepLR(o, step_size=2, gamma=-1), "StepLR: gamma must be a finite number > 0"),
        (lambda o: MultiStepLR(o, milestones=[2, -1]), "MultiStepLR: milestones must be ints >= 0"),
        (lambda o: ExponentialLR(o, gamma=0), "ExponentialLR: gamma must be a finite number > 0"),
        (lambda o: CosineAnnealingLR(o, T_max=0), "CosineAnnealingLR: T_max must be an int >= 1"),
        (lambda o: CosineAnnealingLR(o, T_max=3, eta_min=-1), "eta_min must be a number >= 0"),
        (lambda o: LinearLR(o, start_factor=0), r"LinearLR: start_factor must lie in \(0, 1\]"),
        (lambda o: LinearLR(o, end_factor=1.5), r"LinearLR: end_factor must lie in \[0, 1\]"),
        (lambda o: LinearLR(o, total_iters=0), "LinearLR: total_iters must be an int >= 1"),
        (lambda o: StepLR(o, step_size=1, last_epoch=-2), "last_epoch must be an int >= -1"),
        (
            lambda o: ReduceLROnPlateau(o, mode="best"),
            "mode must be 'min' or 'max', got mode='best'",
        ),
        (
            lambda o: ReduceLROnPlateau(o, factor=1.0),
            r"factor must lie in \(0, 1\), got factor=1.0",
        ),
        (
            lambda o: ReduceLROnPlateau(o, threshold_mode="x"),
            "threshold_mode must be 'rel' or 'abs'",
        ),
        (lambda o: ReduceLROnPlateau(o, patience=-1), "patience must be an int >= 0"),
        (lambda o: ReduceLROnPlateau(o, min_lr=[0, 0]), "expected 1 min_lrs"),
    ],
)
def test_invalid_scheduler_arguments(opt, make, msg):
    with pytest.raises(ValueError, match=msg):
        make(opt)


# --------------------------------------------------------------------- ReduceLROnPlateau ---


def plateau_lrs(opt, sched, metrics):
    out = []
    for m in metrics:
        sched.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_plateau_min_rel_with_patience(opt):
    s = ReduceLROnPlateau(opt, factor=0.5, patience=2)
    # best 1.0 at epoch 1; epochs 2, 3 bad (patience 2 tolerates them); epoch 4 bad -> cut
    lrs = plateau_lrs(opt, s, [1.0, 1.0, 0.99995, 1.2, 0.5, 0.6, 0.6, 0.6])
    assert lrs == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_plateau_max_abs_cooldown_and_min_lr(opt):
    s = ReduceLROnPlateau(
        opt,
        mode="max",
        factor=0.1,
        patience=0,
        threshold=0.1,
        threshold_mode="abs",
        cooldown=1,
        min_lr=0.005,
    )
    # improvements must beat best + 0.1. Epoch 2: 0.55 is bad -> cut to 0.1, cooldown 1;
    # epoch 3 bad but in cooldown; epoch 4 bad -> cut to 0.01; epoch 5 in cooldown;
    # epoch 6 bad -> max(0.001, 0.005) = 0.005; epoch 8 -> 0.0005 clamps to 0.005: no change.
    lrs = plateau_lrs(opt, s, [0.5, 0.55, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert lrs == pytest.approx([1, 0.1, 0.1, 0.01, 0.01, 0.005, 0.005, 0.005])
    assert s.get_last_lr() == pytest.approx([0.005])


def test_plateau_accepts_a_scalar_array_metric(opt):
    s = ReduceLROnPlateau(opt, patience=0)
    s.step(np.float32(1.0))
    s.step(np.array(2.0))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


# --------------------------------------------------------------------------- against torch ---

SCHEDULES = [
    ("StepLR", {"step_size": 3, "gamma": 0.3}),
    ("MultiStepLR", {"milestones": [2, 5, 5, 9], "gamma": 0.5}),
    ("ExponentialLR", {"gamma": 0.93}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.01}),
    ("CosineAnnealingLR", {"T_max": 10}),
    ("LinearLR", {"start_factor": 0.25, "end_factor": 0.9, "total_iters": 6}),
    ("LinearLR", {}),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULES)
def test_schedules_match_torch(name, kwargs, make_param, torch):
    import tinygrad_lite.optim.lr_scheduler as ours

    epochs = 30  # past T_max / total_iters too: the cosine climbs back up as in torch
    opt = SGD([make_param([1.0])], lr=0.3)
    s = getattr(ours, name)(opt, **kwargs)
    w = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([w], lr=0.3)
    ts = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    for e in range(epochs):
        assert s.get_last_lr()[0] == pytest.approx(ts.get_last_lr()[0], rel=1e-9, abs=1e-15), e
        opt.step()
        s.step()
        topt.step()
        ts.step()


def test_plateau_matches_torch(make_param, torch):
    rng = np.random.default_rng(0)
    metrics = np.cumsum(rng.normal(0.0, 1.0, 60)) / 5 + 10
    for kwargs in (
        {"factor": 0.5, "patience": 2, "cooldown": 1},
        {"mode": "max", "patience": 1, "threshold": 0.05, "threshold_mode": "abs", "min_lr": 0.01},
    ):
        opt = SGD([make_param([1.0])], lr=1.0)
        s = ReduceLROnPlateau(opt, **kwargs)
        w = torch.zeros(1, requires_grad=True)
        topt = torch.optim.SGD([w], lr=1.0)
        ts = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
        for m in metrics:
            s.step(m)
            ts.step(float(m))
            assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        assert opt.param_groups[0]["lr"] < 1.0  # the sequence exercised the cuts


def test_base_class_is_abstract(opt):
    with pytest.raises(NotImplementedError):
        LRScheduler(opt)
