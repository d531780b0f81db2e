"""Learning-rate schedules: change each param group's ``lr`` as training goes on (PyTorch's API).

Call ``scheduler.step()`` once per epoch, after ``optimizer.step()``. Each scheduler here computes
the learning rate in closed form from the epoch counter and the group's starting rate
(``initial_lr``), so ``step(epoch)`` can jump anywhere and a restored scheduler picks up exactly
where it stopped. ``ReduceLROnPlateau`` instead watches a metric: ``step(val_loss)``.

>>> import numpy as np
>>> from tinygrad_lite.optim import SGD
>>> class P:
...     def __init__(self): self.data, self.grad = np.zeros(1), None
>>> opt = SGD([P()], lr=1.0)
>>> sched = StepLR(opt, step_size=2, gamma=0.5)
>>> lrs = []
>>> for epoch in range(5):
...     lrs.append(sched.get_last_lr()[0]); opt.step(); sched.step()
>>> lrs
[1.0, 1.0, 0.5, 0.5, 0.25]

Next: ../nn/utils.py, gradient clipping.
"""

import math
import numbers
from bisect import bisect_right

__all__ = [
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "MultiStepLR",
    "ReduceLROnPlateau",
    "StepLR",
]


class LRScheduler:
    """Base class: each ``step()`` sets ``group['lr'] = _lr_at(last_epoch, group['initial_lr'])``.

    Building a scheduler records ``initial_lr`` in every group (when ``last_epoch=-1``) and takes
    the first step, so epoch 0's rate is in place before training starts.
    """

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        name = type(self).__name__
        if not isinstance(last_epoch, int) or last_epoch < -1:
            raise ValueError(f"{name}: last_epoch must be an int >= -1, got {last_epoch!r}")
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(
                    f"{name}: param_groups[{i}] has no 'initial_lr', got last_epoch={last_epoch}; "
                    "resume with last_epoch=-1 or from an optimizer that a scheduler already ran on"
                )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def _lr_at(self, epoch, base_lr):
        raise NotImplementedError

    def get_lr(self):
        """The learning rates for the current ``last_epoch``, one per param group."""
        return [self._lr_at(self.last_epoch, base) for base in self.base_lrs]

    def get_last_lr(self):
        """The learning rates set by the last ``step()``, one per param group."""
        return list(self._last_lr)

    def step(self, epoch=None):
        """Advance one epoch (or jump to ``epoch``) and write the new rates into the optimizer."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """Everything but the optimizer (which has its own ``state_dict``)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)


def _positive_int(name, key, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name}: {key} must be an int >= 1, got {key}={v!r}")


def _positive(name, key, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name}: {key} must be a finite number > 0, got {key}={v!r}")


class StepLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every ``step_size`` epochs:
    :math:`\alpha_e = \alpha_0 \gamma^{\lfloor e / \text{step\_size} \rfloor}`.

    >>> # lr=0.1, step_size=30, gamma=0.1: 0.1 for epochs 0-29, 0.01 for 30-59, ...
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _positive_int("StepLR", "step_size", step_size)
        _positive("StepLR", "gamma", gamma)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` at each milestone epoch:
    :math:`\alpha_e = \alpha_0 \gamma^{\#\{m \in \text{milestones} : m \le e\}}`.

    >>> # lr=0.1, milestones=[30, 80]: 0.1 until 29, 0.01 from 30 to 79, 0.001 from 80
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        milestones = list(milestones)
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 0 for m in milestones):
            raise ValueError(f"MultiStepLR: milestones must be ints >= 0, got {milestones!r}")
        _positive("MultiStepLR", "gamma", gamma)
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** bisect_right(self.milestones, epoch)


class ExponentialLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every epoch: :math:`\alpha_e = \alpha_0 \gamma^e`."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        _positive("ExponentialLR", "gamma", gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return base_lr * self.gamma**epoch


class CosineAnnealingLR(LRScheduler):
    r"""Half a cosine from the starting rate down to ``eta_min`` over ``T_max`` epochs (SGDR's
    schedule without restarts), in closed form:

    .. math:: \alpha_e = \eta_{min} + \tfrac12 (\alpha_0 - \eta_{min})(1 + \cos(\pi e / T_{max}))

    Past ``T_max`` the cosine continues, so the rate climbs back up (as in PyTorch).
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _positive_int("CosineAnnealingLR", "T_max", T_max)
        if isinstance(eta_min, bool) or not isinstance(eta_min, numbers.Real) or eta_min < 0:
            raise ValueError(
                f"CosineAnnealingLR: eta_min must be a number >= 0, got eta_min={eta_min!r}"
            )
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        return (
            self.eta_min
            + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        )


class LinearLR(LRScheduler):
    r"""Linear warm-up (or cool-down) of the rate's factor over ``total_iters`` epochs:

    .. math:: \alpha_e = \alpha_0 \left(f_s + (f_e - f_s) \frac{\min(e, T)}{T}\right)

    with :math:`f_s` = ``start_factor``, :math:`f_e` = ``end_factor``, :math:`T` = ``total_iters``.

    >>> # lr=0.05, start_factor=0.5, total_iters=4: 0.025, 0.03125, 0.0375, 0.04375, 0.05, 0.05, ...
    """

    def __init__(
        self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1
    ):
        if not isinstance(start_factor, numbers.Real) or not 0 < start_factor <= 1:
            raise ValueError(
                f"LinearLR: start_factor must lie in (0, 1], got start_factor={start_factor!r}"
            )
        if not isinstance(end_factor, numbers.Real) or not 0 <= end_factor <= 1:
            raise ValueError(
                f"LinearLR: end_factor must lie in [0, 1], got end_factor={end_factor!r}"
            )
        _positive_int("LinearLR", "total_iters", total_iters)
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch, base_lr):
        frac = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class ReduceLROnPlateau(LRScheduler):
    r"""Cut the rate by ``factor`` when a watched metric stops improving (PyTorch's rules).

    Each ``step(metric)``: the metric *improves* on the best so far when

    ====== ================================= ===============================
    mode   threshold_mode='rel'              threshold_mode='abs'
    ====== ================================= ===============================
    min    :math:`m < best\,(1 - \tau)`      :math:`m < best - \tau`
    max    :math:`m > best\,(1 + \tau)`      :math:`m > best + \tau`
    ====== ================================= ===============================

    with :math:`\tau` = ``threshold``.

    After more than ``patience`` epochs in a row without improvement every group's rate becomes
    :math:`\max(\alpha \cdot \text{factor}, \text{min\_lr})` (changes smaller than ``eps`` are
    skipped), then ``cooldown`` epochs pass in which bad epochs are not counted.

    >>> # sched = ReduceLROnPlateau(opt, patience=2); each epoch: sched.step(val_loss)
    """

    def __init__(
        self,
        optimizer,
        mode="min",
        factor=0.1,
        patience=10,
        threshold=1e-4,
        threshold_mode="rel",
        cooldown=0,
        min_lr=0,
        eps=1e-8,
    ):
        name = "ReduceLROnPlateau"
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: mode must be 'min' or 'max', got mode={mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"{name}: threshold_mode must be 'rel' or 'abs', "
                f"got threshold_mode={threshold_mode!r}"
            )
        if not isinstance(factor, numbers.Real) or not 0 < factor < 1:
            raise ValueError(f"{name}: factor must lie in (0, 1), got factor={factor!r}")
        for key, v in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: {key} must be an int >= 0, got {key}={v!r}")
        for key, v in (("threshold", threshold), ("eps", eps)):
            if not isinstance(v, numbers.Real) or v < 0:
                raise ValueError(f"{name}: {key} must be a number >= 0, got {key}={v!r}")
        n = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        if len(min_lrs) != n:
            raise ValueError(
                f"{name}: expected {n} min_lrs (one per param group), got {len(min_lrs)}"
            )
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_lrs, self.eps = cooldown, min_lrs, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def _is_better(self, a, best):
        t = self.threshold
        if self.mode == "min":
            return a < (best * (1 - t) if self.threshold_mode == "rel" else best - t)
        return a > (best * (1 + t) if self.threshold_mode == "rel" else best + t)

    def step(self, metrics, epoch=None):
        """Record this epoch's metric (e.g. validation loss) and cut the rate if it plateaued."""
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, floor)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0
