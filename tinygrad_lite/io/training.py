"""Training checkpoints: everything a run needs to continue bitwise where it stopped.

``save_checkpoint(path, model, optimizer, scheduler, epoch, rng)`` writes one ``.npz`` file through
``tl.save`` (atomic, no pickle): the model's weights (a ``models.Sequential``'s ``weights_dict()``
or an ``nn.Module``'s ``state_dict()``, buffers such as BatchNorm's running statistics included),
the optimizer's ``state_dict()`` (moments, step counts, learning rates), the scheduler's
``state_dict()``, the number of finished epochs and the state of the random generator(s) that
draw dropout masks and shuffle the data.

``load_checkpoint(path, model, optimizer, scheduler, rng)`` checks every weight's name, shape and
dtype against the model before it changes anything, then restores all of it and returns
``{"epoch": ..., "extra": ...}``. Continue with ``model.fit(..., initial_epoch=ckpt["epoch"])``
or your own loop from that epoch.

The random state: ``rng=None`` (the default) saves and restores the library's generator
(``tl.default_generator()``, the one ``tl.manual_seed`` seeds and dropout, weight init and
``fit``'s shuffling draw from); pass a ``numpy.random.Generator`` (or a list of them) to save
yours too, or ``rng=False`` to store none. A resumed ``fit`` is bitwise identical to an
uninterrupted one when the run draws from the library's generator (seed it with
``tl.manual_seed`` rather than ``fit(seed=)``, which makes a fresh generator on every call).

>>> io.save_checkpoint("run/ckpt.npz", model, opt, sched, epoch=3)      # doctest: +SKIP
>>> ckpt = io.load_checkpoint("run/ckpt.npz", model, opt, sched)       # doctest: +SKIP
>>> model.fit(x, y, epochs=10, initial_epoch=ckpt["epoch"])            # doctest: +SKIP
"""

import os

import numpy as np

from ..errors import ModelFormatError
from . import checkpoint, files

TRAINING_FORMAT = "tinygrad_lite.training_checkpoint"
TRAINING_VERSION = 1

__all__ = ["save_checkpoint", "load_checkpoint"]


def _generators(rng):
    from ..tensor import default_generator

    if rng is False:
        return []
    if rng is None:
        return [default_generator()]
    gens = list(rng) if isinstance(rng, (list, tuple)) else [rng]
    for g in gens:
        if not isinstance(g, np.random.Generator):
            raise TypeError(f"save_checkpoint: rng must be a numpy.random.Generator, a list of "
                            f"them, None (the library's generator) or False, got "
                            f"{type(g).__name__}")
    return gens


def _optimizer_of(model, optimizer):
    return optimizer if optimizer is not None else getattr(model, "optimizer", None)


def _callback_states(callbacks):
    """``[[class name, state], ...]`` of the callbacks that keep state (``state_dict()``)."""
    out = []
    for cb in callbacks or []:
        if not hasattr(cb, "state_dict"):
            raise TypeError(f"save_checkpoint: callbacks must be callbacks.Callback instances, "
                            f"got {type(cb).__name__}")
        if getattr(cb, "_STATE", None):
            out.append([type(cb).__name__, cb.state_dict()])
    return out


def save_checkpoint(path, model, optimizer=None, scheduler=None, epoch=0, rng=None, extra=None,
                    callbacks=None):
    """Save a resumable training state to ``path`` (``*.npz``), atomically.

    Parameters
    ----------
    path : str or PathLike ending in ``.npz``
    model : models.Sequential (built) or nn.Module
    optimizer : optim.Optimizer, default ``model.optimizer`` (a compiled Sequential's)
    scheduler : optim.lr_scheduler.LRScheduler or None
    epoch : int >= 0, the number of finished epochs (the epoch to resume at)
    rng : None (the library's generator), a numpy Generator or a list of them, or False
    extra : JSON-able data stored as-is (numbers, strings, lists, dicts)
    callbacks : fit callbacks whose state a resumed run needs (EarlyStopping, ReduceLROnPlateau,
        ModelCheckpoint: their counters and best values); ModelCheckpoint passes its peers
    """
    if os.path.splitext(os.fspath(path))[1].lower() != ".npz":
        raise ValueError(f"save_checkpoint: a training checkpoint is a .npz file, got "
                         f"{os.fspath(path)!r}; e.g. 'ckpt.npz'")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"save_checkpoint: epoch must be an int >= 0, got epoch={epoch!r}")
    optimizer = _optimizer_of(model, optimizer)
    state = {
        "format": TRAINING_FORMAT, "format_version": TRAINING_VERSION,
        "model_class": type(model).__name__,
        "model": files._state_arrays(model),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "optimizer_class": None if optimizer is None else type(optimizer).__name__,
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "epoch": int(epoch),
        "rng": [g.bit_generator.state for g in _generators(rng)],
        "extra": extra,
        "callbacks": _callback_states(callbacks),
    }
    return checkpoint.save(state, path)


def load_checkpoint(path, model, optimizer=None, scheduler=None, rng=None,
                    max_bytes=files.MAX_FILE_BYTES, callbacks=None):
    """Restore what ``save_checkpoint`` wrote into ``model`` (and optimizer, scheduler, rng).

    Every weight's name, shape and dtype is checked before anything is assigned, so a wrong file
    raises ``ModelFormatError`` and leaves the model as it was. Returns ``{"epoch", "extra"}``.
    ``rng`` names the generator(s) to restore, as in ``save_checkpoint``. ``callbacks``: fresh
    callbacks of the same classes, in the same order, as the saved run's stateful ones; each gets
    its state back at the next ``fit``'s ``on_train_begin``.
    """
    def fail(problem):
        return ModelFormatError(f"load_checkpoint: {problem}, got file {os.fspath(path)!r}")

    state = checkpoint.load(path, max_bytes)
    if not isinstance(state, dict) or state.get("format") != TRAINING_FORMAT:
        raise fail(f"not a training checkpoint (format is not {TRAINING_FORMAT!r}; a tl.save "
                   "file? use tl.load)")
    version = state.get("format_version")
    if type(version) is not int or not 1 <= version <= TRAINING_VERSION:
        raise fail(f"unsupported format_version {version!r}")
    weights = state.get("model")
    if not (isinstance(weights, dict)
            and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in weights.items())):
        raise fail("the model weights are malformed")
    epoch = state.get("epoch")
    if type(epoch) is not int or epoch < 0:
        raise fail(f"invalid epoch {epoch!r}")
    optimizer = _optimizer_of(model, optimizer)
    if optimizer is None and hasattr(model, "_compiled") and model._compiled is not None \
            and state.get("optimizer") is not None:
        model._make_optimizer()            # a compiled Sequential builds its optimizer lazily
        optimizer = model.optimizer
    if state.get("optimizer") is not None and optimizer is not None \
            and state.get("optimizer_class") != type(optimizer).__name__:
        raise fail(f"the checkpoint holds a {state.get('optimizer_class')} state, the optimizer "
                   f"is a {type(optimizer).__name__}")
    if (scheduler is not None) and state.get("scheduler") is None:
        raise fail("a scheduler was passed but the checkpoint holds no scheduler state")
    saved_rng = state.get("rng")
    gens = _generators(rng)
    if not isinstance(saved_rng, list) or len(gens) > len(saved_rng):
        raise fail(f"{len(gens)} generator(s) to restore, the checkpoint holds "
                   f"{len(saved_rng) if isinstance(saved_rng, list) else 'none'}")
    for g, s in zip(gens, saved_rng):
        if not isinstance(s, dict) or s.get("bit_generator") != type(g.bit_generator).__name__:
            raise fail(f"a saved generator state is not a {type(g.bit_generator).__name__} state")
    cb_pairs = _match_callbacks(fail, state.get("callbacks", []), callbacks)
    files._check_weights(path, model, weights)       # nothing changes before this passes
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])  # checks its layout before assigning
    files._assign(model, weights)
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    for g, s in zip(gens, saved_rng):
        try:
            g.bit_generator.state = s
        except (TypeError, ValueError, KeyError) as e:
            raise fail(f"a saved generator state is invalid ({str(e)[:80]})") from None
    for cb, st in cb_pairs:
        cb.load_state_dict(st)
    return {"epoch": epoch, "extra": state.get("extra")}


def _match_callbacks(fail, saved, callbacks):
    """Pair the given stateful callbacks with the saved states (class names, order, keys), all
    checked before anything is restored."""
    if callbacks is None:
        return []
    if not isinstance(saved, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) for e in saved):
        raise fail("the callback states are malformed")
    mine = [cb for cb in callbacks if getattr(cb, "_STATE", None)]   # the stateful ones
    pairs, j = [], 0
    for name, st in saved:          # each given callback takes the next saved state of its class
        if j < len(mine) and type(mine[j]).__name__ == name:
            pairs.append((mine[j], st))
            j += 1
    if j < len(mine):
        raise fail(f"the checkpoint holds callback states for {[e[0] for e in saved]}, got "
                   f"callbacks {[type(cb).__name__ for cb in mine]}; pass fresh callbacks of "
                   "those classes in that order (any of them may be left out)")
    for cb, st in pairs:
        keys = set(cb._STATE)
        if not isinstance(st, dict) or set(st) != keys:
            raise fail(f"the saved {type(cb).__name__} callback state has keys "
                       f"{sorted(st) if isinstance(st, dict) else st!r}, need {sorted(keys)}")
    return pairs
