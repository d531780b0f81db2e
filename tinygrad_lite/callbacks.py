"""Keras-style callbacks for ``models.Sequential.fit``.

A callback is an object with hooks that ``fit`` calls at fixed points; each gets the epoch (or
batch) index and ``logs``, the dict of numbers the progress bar shows (``loss``, ``accuracy``,
``val_loss``, ...). Setting ``model.stop_training = True`` ends training after the current epoch.

>>> from tinygrad_lite.callbacks import EarlyStopping, ModelCheckpoint
>>> cbs = [EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
...        ModelCheckpoint("best.safetensors", save_best_only=True)]
>>> # model.fit(x, y, validation_split=0.2, callbacks=cbs)
"""

import csv
import math
import os
import sys
import warnings

import numpy as np

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN",
           "LambdaCallback"]


def write_line(text, file=None):
    """Print one progress line (verbose output) without breaking an active tqdm bar.

    Library code never calls ``print``: progress goes through ``tqdm.write`` to stderr (or
    ``file``), which moves any bar out of the way first.
    """
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr if file is None else file)


class Callback:
    """Base class: override the hooks you need; fit sets ``self.model`` and ``self.params``."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def state_dict(self):
        """What a resumed run needs of this callback (None: it keeps no state across epochs)."""
        return None

    def load_state_dict(self, state):
        """Restore ``state_dict()`` at the next ``on_train_begin`` (``io.load_checkpoint``'s
        ``callbacks=``); a stateless callback accepts only None."""
        if state is not None:
            raise ValueError(f"{type(self).__name__}: keeps no state, got {str(state)[:60]}")

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...


class CallbackList:
    """Calls one hook on every callback in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: callbacks must be Callback instances, got "
                                f"{type(cb).__name__}; subclass callbacks.Callback or use "
                                "LambdaCallback")
            cb.set_model(model)
            cb.set_params(params)
            cb._peers = self.callbacks      # ModelCheckpoint saves its peers' states

    def on_epoch_end(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        for cb in self.callbacks:           # after every callback has updated its state
            after = getattr(cb, "_after_epoch_end", None)
            if after is not None:
                after(epoch)

    def __getattr__(self, hook):
        def call(*args):
            for cb in self.callbacks:
                getattr(cb, hook)(*args)
        return call


class History(Callback):
    """Records ``logs`` at the end of every epoch: ``history.history["val_loss"][e]``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class _Monitor(Callback):
    """Shared bookkeeping: which number to watch and whether it improved."""

    def __init__(self, monitor, mode, min_delta, op):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{op}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            up = ("acc", "accuracy", "precision", "recall", "f1", "auc")
            mode = "max" if any(monitor.endswith(s) for s in up) else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self._op = op
        self._warned = False
        self.best = math.inf if mode == "min" else -math.inf
        self._resume = None

    _STATE = ("best",)      # the attributes a resumed run restores (state_dict)

    def state_dict(self):
        return {k: getattr(self, k) for k in self._STATE}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or set(state) != set(self._STATE):
            raise ValueError(f"{self._op}: a state needs the keys {sorted(self._STATE)}, got "
                             f"{sorted(state) if isinstance(state, dict) else state!r}")
        self._resume = dict(state)

    def _apply_resume(self):
        """Called at the end of on_train_begin: a loaded state replaces the fresh one."""
        if self._resume is not None:
            for k, v in self._resume.items():
                setattr(self, k, v)
            self._resume = None

    def on_train_begin(self, logs=None):
        self._apply_resume()

    def _value(self, logs):
        v = (logs or {}).get(self.monitor)
        if v is None and not self._warned:
            self._warned = True
            warnings.warn(f"{self._op}: monitored value {self.monitor!r} is not in the logs, got "
                          f"keys {sorted(logs or {})}; pass validation data or monitor 'loss'",
                          RuntimeWarning, stacklevel=3)
        return v

    def _improved(self, v):
        if self.mode == "min":
            return v < self.best - self.min_delta
        return v > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights=True`` the model ends training with the weights of its best epoch
    (whether or not it stopped early).
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta, "EarlyStopping")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch

    _STATE = ("best", "wait", "best_epoch", "best_weights")

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, None
        self.best = math.inf if self.mode == "min" else -math.inf
        if self.baseline is not None:
            self.best = float(self.baseline)
        self.best_weights = None
        self._apply_resume()

    def on_epoch_end(self, epoch, logs=None):
        v = self._value(logs)
        if v is None or epoch < self.start_from_epoch:
            return
        if self._improved(v) or (self.best_epoch is None and self.baseline is None
                                 and not math.isfinite(self.best)):
            self.best, self.best_epoch, self.wait = v, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        if self.stopped_epoch and self.verbose:
            best = "" if self.best_epoch is None else \
                f" (best {self.monitor}={self.best:.4f} at epoch {self.best_epoch + 1})"
            write_line(f"Epoch {self.stopped_epoch + 1}: early stopping{best}")


class ModelCheckpoint(_Monitor):
    """Save the model after each epoch, or only when ``monitor`` improves (``save_best_only``).

    ``filepath`` may hold ``{epoch}`` and log keys: ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.
    Files go through ``io.save_model`` (atomic; safetensors or npz by the suffix), or with
    ``save_weights_only=True`` through ``io.save_weights`` (the weights alone: restore them into
    a model of the same architecture with ``model.load_weights(path)``). ``verbose=1`` prints
    one line per epoch saying whether (and where) it saved.

    ``include_optimizer=True`` (with ``save_weights_only=False``) also writes, beside each model
    file, a training checkpoint ``<name>.train.npz`` (``io.save_checkpoint``: optimizer state,
    finished epochs, the library's random state) from which a run resumes bitwise:
    ``ckpt = io.load_checkpoint(path, model)`` then ``model.fit(..., initial_epoch=ckpt["epoch"])``.
    ``train_states`` lists the ``(epoch, path)`` of those files. That file is written after
    every callback's ``on_epoch_end`` and holds the states of the stateful callbacks of the same
    ``fit`` (this one's ``best``, ReduceLROnPlateau's and EarlyStopping's counters); pass fresh
    ones as ``io.load_checkpoint(path, model, callbacks=[...])`` to resume those too.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", include_optimizer=False):
        super().__init__(monitor, mode, 0, "ModelCheckpoint")
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        if include_optimizer and save_weights_only:
            raise ValueError("ModelCheckpoint: include_optimizer=True needs a full save, got "
                             "save_weights_only=True; pass save_weights_only=False")
        self.include_optimizer = bool(include_optimizer)
        self.saved = []  # (epoch, path) of every file written
        self.train_states = []  # (epoch, path) of every training checkpoint written

    @staticmethod
    def train_state_path(path):
        """The training checkpoint written beside model file ``path``: ``<stem>.train.npz``."""
        return os.path.splitext(os.fspath(path))[0] + ".train.npz"

    def _after_epoch_end(self, epoch):
        """The training checkpoint, once every callback has finished this epoch (a later
        ReduceLROnPlateau may still change the learning rate in its on_epoch_end)."""
        path, self._train_state_due = getattr(self, "_train_state_due", None), None
        if path is None:
            return
        from .io.training import save_checkpoint

        state = save_checkpoint(self.train_state_path(path), self.model, epoch=epoch + 1,
                                callbacks=getattr(self, "_peers", [self]))
        self.train_states.append((epoch, state))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        note = ""
        if self.save_best_only:
            v = self._value(logs)
            if v is None:
                return
            if not self._improved(v):
                if self.verbose:
                    write_line(f"Epoch {epoch + 1}: {self.monitor} did not improve from "
                               f"{self.best:.5f}")
                return
            note = f"{self.monitor} improved from {self.best:.5f} to {v:.5f}, "
            self.best = v
        if self.save_weights_only:
            from .io import save_weights

            save_weights(self.model, path)
        else:
            self.model.save(path)
            if self.include_optimizer:
                self._train_state_due = path       # written in _after_epoch_end
        self.saved.append((epoch, path))
        if self.verbose:
            what = "weights" if self.save_weights_only else "model"
            write_line(f"Epoch {epoch + 1}: {note}saving {what} to {path}")


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement
    (Keras semantics; the rate never goes below ``min_lr``)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta, "ReduceLROnPlateau")
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        self.factor, self.patience, self.verbose = float(factor), patience, verbose
        self.cooldown, self.min_lr = cooldown, float(min_lr)

    _STATE = ("best", "wait", "cooldown_counter")

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter = 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self._apply_resume()

    def on_epoch_end(self, epoch, logs=None):
        v = self._value(logs)
        if v is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(v):
            self.best, self.wait = v, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old = float(self.model.optimizer.param_groups[0]["lr"])
            for g in self.model.optimizer.param_groups:
                g["lr"] = max(g["lr"] * self.factor, self.min_lr)
            new = float(self.model.optimizer.param_groups[0]["lr"])
            if self.verbose and new < old:
                write_line(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                           f"{new:.4g}.")
            self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start: ``lr = schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable (epoch, lr) -> lr, "
                            f"got {type(schedule).__name__}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        groups = self.model.optimizer.param_groups
        lr = float(self.schedule(epoch, float(groups[0]["lr"])))
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"LearningRateScheduler: schedule returned an invalid rate, got {lr} "
                             f"at epoch {epoch}")
        for g in groups:
            g["lr"] = lr


class CSVLogger(Callback):
    """Append one CSV row per epoch: ``epoch`` then the logs (columns fixed by the first epoch)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys = None

    def on_train_begin(self, logs=None):
        self.keys = None
        if not self.append and os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        new = not os.path.exists(self.filename) or os.path.getsize(self.filename) == 0
        if self.keys is None:
            self.keys = sorted(logs)
        with open(self.filename, "a", newline="") as f:
            w = csv.writer(f, delimiter=self.sep)
            if new:
                w.writerow(["epoch"] + self.keys)
            w.writerow([epoch] + [logs.get(k, "NA") for k in self.keys])


class TerminateOnNaN(Callback):
    """Stop training (with a warning instead of an error) when the loss becomes NaN or Inf.

    Epochs and batches are counted from 1 in the message, as in ``NonFiniteLossError``.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            where = f"epoch {getattr(self, '_epoch', 0) + 1}, batch {batch + 1}"
            warnings.warn(f"TerminateOnNaN: the loss became {loss} at {where}; terminating "
                          "training", RuntimeWarning, stacklevel=2)
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    _HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_train_batch_begin", "on_train_batch_end")

    def __init__(self, **hooks):
        super().__init__()
        bad = sorted(set(hooks) - set(self._HOOKS))
        if bad:
            raise TypeError(f"LambdaCallback: unknown hooks, got {bad}; use {list(self._HOOKS)}")
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)
