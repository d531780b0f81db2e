"""``tinygrad-lite`` / ``python -m tinygrad_lite``: train, evaluate, predict, bench.

``tinygrad-lite train`` runs the whole pipeline on the embedded digits with no arguments:
clean -> MinMax scale -> stratified split -> MLP (or ``--model cnn``) -> Adam -> a progress bar per
epoch -> validation metrics and classification report -> an output folder with
``model.safetensors``, ``confusion_matrix.png``, ``curves.png`` and ``report.json``.

The outputs form one set: the run is written into a hidden staging folder beside ``--out`` and
renamed into place only when everything is written, so a failed run (a full disk, an error)
leaves nothing under ``--out``. Plots are optional: without matplotlib, or with a broken
matplotlib setup (e.g. a bad ``MPLBACKEND``), they are skipped with a warning, recorded in
``report.json`` under ``plots_skipped``.

    tinygrad-lite train --epochs 5 --out runs/demo
    tinygrad-lite evaluate runs/demo/model.safetensors
    tinygrad-lite predict runs/demo/model.safetensors samples.npy
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from .errors import TinygradLiteError

EXIT_USAGE = 2


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _write_json(path, obj):
    from .io import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(obj, indent=2, default=_json_default).encode("utf-8"))


# ------------------------------------------------------------------ data ---

def _load_dataset(name, data_dir):
    """(X flat float64, y int64, image_shape, label_names, test pair or None)."""
    from .data import load_digits, load_mnist

    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return X, y, (8, 8), [str(i) for i in range(10)], None
    if name == "mnist":
        if not data_dir:
            raise CLIError("--dataset mnist needs --data-dir pointing at the folder with "
                           "train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz)")
        images, labels = load_mnist(data_dir, kind="train")
        try:
            test = load_mnist(data_dir, kind="test")
            test = (test[0].reshape(len(test[0]), -1).astype(np.float64), test[1])
        except FileNotFoundError:
            test = None
        h, w = images.shape[1:]
        return (images.reshape(len(images), -1).astype(np.float64), labels, (h, w),
                [str(i) for i in range(10)], test)
    raise CLIError(f"unknown dataset {name!r}; use digits or mnist")


def _build_model(kind, n_features, image_shape, n_classes):
    from .layers import Conv2D, Dense, Flatten, MaxPooling2D, Reshape
    from .models import Sequential

    if kind == "mlp":   # the seed's network
        return Sequential([Dense(128, activation="relu", input_shape=(n_features,)),
                           Dense(n_classes, activation="softmax")])
    h, w = image_shape
    return Sequential([
        Reshape((h, w, 1), input_shape=(n_features,)),
        Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(),
        Conv2D(64, 3, padding="same", activation="relu"), MaxPooling2D(),
        Flatten(), Dense(64, activation="relu"), Dense(n_classes, activation="softmax")])


def _use_backend(name):
    if name:
        from . import backends

        backends.use(name)


# ------------------------------------------------------------------ train ---

def _default_out():
    base = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    out, k = base, 1
    while os.path.exists(out):
        k += 1
        out = f"{base}-{k}"
    return out


def cmd_train(args):
    from . import manual_seed

    t0 = time.perf_counter()
    _use_backend(args.backend)
    if args.device != "cpu":   # fail before loading data, saying what is missing
        from .cuda import unavailable_reason

        reason = unavailable_reason()
        if reason:
            raise CLIError(f"--device {args.device}: CUDA is not available: {reason}; "
                           "use --device cpu")
    epochs = args.epochs if args.epochs is not None else (20 if args.model == "mlp" else 8)
    for name, v in (("--epochs", epochs), ("--batch-size", args.batch_size)):
        if v < 1:
            raise CLIError(f"{name} must be >= 1, got {v}")
    if not 0 < args.val_size < 1:
        raise CLIError(f"--val-size must be in (0, 1), got {args.val_size}")
    if args.lr is not None and not args.lr > 0:
        raise CLIError(f"--lr must be > 0, got {args.lr}")
    main_rank, world = _distributed_rank()
    out = args.out or _default_out()
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out must be a folder (or a path that does not exist yet), got the "
                       f"file {out!r}")
    manual_seed(args.seed)

    X, y, image_shape, names, test = _load_dataset(args.dataset, args.data_dir)
    if not main_rank:   # under mpiexec only rank 0 writes; every rank trains its share
        return _train_into(args, out, None, t0, epochs, X, y, image_shape, names, test,
                           main_rank, world)
    # after the data loaded: a bad --data-dir leaves no folder. The run is written into a hidden
    # staging folder beside --out and moved into place at the end (see _publish), so --out never
    # holds a partial set of outputs.
    stage = _staging_folder(out)
    try:
        return _train_into(args, out, stage, t0, epochs, X, y, image_shape, names, test,
                           main_rank, world)
    except BaseException as e:
        import shutil

        shutil.rmtree(stage, ignore_errors=True)
        name = getattr(e, "filename", None)
        if isinstance(e, OSError) and isinstance(name, str) and name.startswith(stage):
            final = out + name[len(stage):]   # name the output the user asked for
            raise type(e)(e.errno, str(e.strerror or e).replace(name, final), final) from None
        raise


def _train_into(args, out, stage, t0, epochs, X, y, image_shape, names, test,
                main_rank=True, world=1):
    import warnings

    from .data import MinMaxScaler, clean, train_test_split
    from .metrics import classification_report, confusion_matrix
    from .models import LossExplosionWarning, _keras_optimizer

    X, y, cleaned = clean(X, y)
    x_tr, x_val, y_tr, y_val = train_test_split(X, y, test_size=args.val_size, stratify=y,
                                                seed=args.seed)
    scaler = MinMaxScaler().fit(x_tr)
    x_val_raw = x_val
    x_tr, x_val = scaler.transform(x_tr), scaler.transform(x_val)
    n_classes = int(y.max()) + 1
    model = _build_model(args.model, X.shape[1], image_shape, n_classes)
    model.build()
    if args.device != "cpu":
        model.to(args.device)            # before the optimizer: its state follows the weights
    optimizer = _keras_optimizer(args.optimizer, list(model.parameters()), args.lr)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    if not args.quiet and main_rank:
        model.summary(print_fn=lambda s: print(s, file=sys.stderr))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LossExplosionWarning)
        history = model.fit(x_tr, y_tr, epochs=epochs, batch_size=args.batch_size,
                            validation_data=(x_val, y_val), seed=args.seed,
                            verbose=0 if args.quiet else 1)
    run_warnings = []
    for w in caught:
        if issubclass(w.category, LossExplosionWarning):
            lr = model.optimizer.param_groups[0]["lr"]
            msg = str(w.message).replace("try a smaller one", f"try a smaller --lr (this run "
                                         f"used --lr {lr:g} with --optimizer {args.optimizer})")
            run_warnings.append(msg)
            print(f"tinygrad-lite train: warning: {msg}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not main_rank:   # the weights are rank 0's; evaluation, plots and files are its job
        return 0
    val_loss, val_acc = model.evaluate(x_val, y_val, verbose=0)
    y_pred = model.predict_classes(x_val)
    report_text = classification_report(y_val, y_pred, target_names=names[:n_classes], digits=4,
                                        zero_division=0)
    report_dict = classification_report(y_val, y_pred, target_names=names[:n_classes],
                                        output_dict=True, zero_division=0)
    cm = confusion_matrix(y_val, y_pred, labels=list(range(n_classes)))
    print(f"validation: loss={val_loss:.4f} accuracy={val_acc:.4f} ({len(y_val)} samples)")
    print(report_text)

    files = {}   # final paths under --out; written under the staging folder first
    model_name = f"model.{args.format}"
    extra = {"dataset": args.dataset, "val_size": args.val_size, "seed": args.seed,
             "model": args.model, "val_fingerprint": _fingerprint(x_val_raw, y_val)}
    model.save(os.path.join(stage, model_name), preprocessing=scaler,
               label_names=names[:n_classes], extra=extra)
    files["model"] = os.path.join(out, model_name)
    plots_skipped = None
    try:
        from .metrics import plot_confusion_matrix, plot_history, plot_misclassified

        raw_val = scaler.inverse_transform(x_val).reshape((-1,) + tuple(image_shape))
        for key, draw in (
                ("confusion_matrix", lambda p: plot_confusion_matrix(cm, names[:n_classes], p)),
                ("curves", lambda p: plot_history(history, p)),
                ("misclassified", lambda p: plot_misclassified(raw_val, y_val, y_pred, p))):
            draw(os.path.join(stage, f"{key}.png"))
            files[key] = os.path.join(out, f"{key}.png")
    except (ImportError, ValueError, RuntimeError) as e:   # no or a broken matplotlib setup
        plots_skipped = f"{type(e).__name__}: {str(e)[:200]}"
        for key in ("confusion_matrix", "curves", "misclassified"):
            files.pop(key, None)
            if os.path.exists(os.path.join(stage, f"{key}.png")):
                os.unlink(os.path.join(stage, f"{key}.png"))
        print(f"tinygrad-lite train: warning: plots skipped ({plots_skipped})", file=sys.stderr)
    test_metrics = None
    if test is not None:
        tl, ta = model.evaluate(scaler.transform(test[0]), test[1], verbose=0)
        test_metrics = {"loss": tl, "accuracy": ta, "samples": len(test[1])}
        print(f"test: loss={tl:.4f} accuracy={ta:.4f} ({len(test[1])} samples)")
    report = {
        "command": "train", "dataset": args.dataset, "model": args.model,
        "optimizer": args.optimizer, "lr": model.optimizer.param_groups[0]["lr"],
        "epochs": epochs, "epochs_run": len(history.epoch), "batch_size": args.batch_size,
        "seed": args.seed, "val_size": args.val_size, "world_size": world,
        "backend": _backend_name(), "n_train": len(y_tr), "n_val": len(y_val),
        "clean": cleaned.to_dict(), "history": history.history,
        "validation": {"loss": val_loss, "accuracy": val_acc},
        "test": test_metrics,
        "classification_report": report_dict, "confusion_matrix": cm.tolist(),
        "label_names": names[:n_classes], "files": files,
        "warnings": run_warnings, "plots_skipped": plots_skipped,
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }
    files["report"] = os.path.join(out, "report.json")
    _write_json(os.path.join(stage, "report.json"), report)
    _publish(stage, out)
    print(f"outputs in {out}/: " + ", ".join(os.path.basename(p) for p in files.values()))
    return 0


def _distributed_rank():
    """(is this the main rank, world size); joins the MPI group when launched by mpiexec."""
    from .distributed.comm import launched_with_mpi

    if not launched_with_mpi():
        return True, 1
    from . import distributed

    distributed.init()
    return distributed.is_main(), distributed.world_size()


def _abort_if_distributed(message):
    """A handled error on one rank of a multi-rank run must still stop the other ranks."""
    try:
        from .distributed import comm
    except ImportError:
        return
    if comm.is_initialized() and comm.world_size() > 1:
        comm.abort(message, EXIT_USAGE)


def _staging_folder(out):
    """A fresh hidden folder beside ``out`` (same file system, so the final rename is atomic);
    staging folders of runs that were killed are removed first."""
    import shutil
    import tempfile

    from .io.files import _pid_alive

    parent, name = os.path.split(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    prefix = f".{name}.partial-"
    for entry in os.listdir(parent):
        pid = entry[len(prefix):].split("-", 1)[0] if entry.startswith(prefix) else ""
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent)


def _publish(stage, out):
    """Move the finished run into place. A new (or empty) --out is one atomic rename; into an
    existing folder the files are moved one by one with report.json last, after the old
    report.json was removed, so a folder holding report.json always holds the complete run."""
    if os.path.isdir(out) and not os.listdir(out):
        os.rmdir(out)
    if not os.path.exists(out):
        os.rename(stage, out)
        return
    report = os.path.join(out, "report.json")
    if os.path.exists(report):
        os.unlink(report)
    names = sorted(os.listdir(stage), key=lambda n: n == "report.json")
    for n in names:
        os.replace(os.path.join(stage, n), os.path.join(out, n))
    os.rmdir(stage)


def _fingerprint(X, y):
    """Short SHA-256 of the held-out rows (raw features and labels): ``evaluate`` checks that it
    rebuilt exactly the rows training held out."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def _backend_name():
    try:
        from . import backends

        return backends.current().name
    except Exception:  # noqa: BLE001 - informational only
        return None


# ------------------------------------------------------------------ evaluate / predict ---

def _read_features(path):
    """Raw features from .npy, .npz (X[, y]) or .csv (numbers; ``--labels-last`` splits y)."""
    ext = os.path.splitext(path)[1].lower()
    if not os.path.exists(path):
        raise CLIError(f"input file not found: {path}")
    if ext == ".npy":
        return np.load(path, allow_pickle=False), None
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as f:
            key = "X" if "X" in f.files else "x" if "x" in f.files else f.files[0]
            ykey = "y" if "y" in f.files else None
            return f[key], (f[ykey] if ykey else None)
    if ext in (".csv", ".txt"):
        return np.loadtxt(path, delimiter="," if ext == ".csv" else None, ndmin=2), None
    raise CLIError(f"unsupported input type {ext!r}; use .npy, .npz (X, y) or .csv")


def _prepare(model, X):
    X = np.asarray(X, dtype=np.float64)
    want = model.input_shape[1:] if model.input_shape else None
    if want and X.ndim >= 2 and X.shape[1:] != want and int(np.prod(X.shape[1:])) == int(
            np.prod(want)):
        X = X.reshape((len(X),) + tuple(want))
    if model.preprocessing is not None:
        X = model.preprocessing.transform(X)
    return X


def cmd_evaluate(args):
    from .models import load_model
    from .metrics import classification_report, confusion_matrix

    _use_backend(args.backend)
    model = load_model(args.model)
    extra = (getattr(model, "file_metadata", {}) or {}).get("extra") or {}
    if args.data:
        X, y = _read_features(args.data)
        if y is None:
            raise CLIError(f"{args.data} has no labels; evaluate needs an .npz with X and y")
    else:
        from .data import clean, train_test_split

        dataset = args.dataset or extra.get("dataset", "digits")
        X, y, _, _, test = _load_dataset(dataset, args.data_dir)
        if test is not None:
            X, y = test
        else:   # the held-out split of training: same clean(), saved seed and size, verified
            seed, val = extra.get("seed", 0), extra.get("val_size", 0.2)
            X, y, _ = clean(X, y)
            _, X, _, y = train_test_split(X, y, test_size=val, stratify=y, seed=seed)
            want = extra.get("val_fingerprint")
            if want is not None and _fingerprint(X, y) != want:
                raise CLIError(f"could not rebuild the held-out rows that training used for "
                               f"{args.model} (the {dataset} data changed?); pass --data with "
                               "an .npz of X and y")
    if model._compiled is None:
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    Xp = _prepare(model, X)
    loss, acc = model.evaluate(Xp, y, verbose=0)
    y_pred = model.predict_classes(Xp)
    names = model.label_names
    # every class the model can output, present in y or not (as train does)
    labels = list(range(model.output_shape[-1] if model.output_shape[-1] > 1 else 2))
    print(f"evaluate: loss={loss:.4f} accuracy={acc:.4f} ({len(y)} samples)")
    print(classification_report(y, y_pred, labels=labels, target_names=names, digits=4,
                                zero_division=0))
    if args.json:
        cm = confusion_matrix(y, y_pred, labels=labels)
        _write_json(args.json, {"loss": loss, "accuracy": acc, "samples": len(y),
                                "confusion_matrix": cm.tolist()})
    return 0


def cmd_predict(args):
    from .models import load_model

    _use_backend(args.backend)
    model = load_model(args.model)
    X, _ = _read_features(args.input)
    probs = model.predict(_prepare(model, X))
    idx = probs.argmax(-1) if probs.shape[-1] > 1 else (probs[:, 0] > 0.5).astype(int)
    names = model.label_names
    labels = [names[i] if names else str(i) for i in idx]
    conf = probs.max(-1) if probs.shape[-1] > 1 else np.where(idx == 1, probs[:, 0],
                                                              1 - probs[:, 0])
    lines = ["index,label,probability"] + [f"{i},{lab},{p:.6f}"
                                           for i, (lab, p) in enumerate(zip(labels, conf))]
    if args.out:
        from .io import atomic_write_bytes

        atomic_write_bytes(args.out, ("\n".join(lines) + "\n").encode())
        print(f"wrote {len(labels)} predictions to {args.out}")
    else:
        print("\n".join(lines))
    return 0


def cmd_export(args):
    from .io import export_onnx
    from .models import load_model

    model = load_model(args.model)
    out = args.out or os.path.splitext(args.model)[0] + ".onnx"
    try:
        export_onnx(model, out, label_names=getattr(model, "label_names", None),
                    preprocessing=getattr(model, "preprocessing", None))
    except (TypeError, ImportError) as e:    # an unsupported layer, or no onnx package
        raise CLIError(str(e)) from None
    print(f"wrote {out} (ONNX opset 17, dynamic batch; preprocessing and label names are in the "
          "file's metadata for runtime.py, not part of the graph)")
    return 0


def cmd_bench(args):
    import importlib

    # the suites ship with the package (tinygrad_lite/bench/): they run from any install
    bench = importlib.import_module(f"tinygrad_lite.bench.{args.suite}")
    return bench.main(args.rest) or 0


def cmd_gpt(args):
    from .examples import gpt

    return gpt.run(args)


# ------------------------------------------------------------------ parser ---

# ------------------------------------------------------------------ learning aids ---

def cmd_trace(args):
    """Print the narrated backward trace of a built-in example (tracing.py)."""
    from . import tracing

    chosen = ["logistic", "mlp"] if args.example == "all" else [args.example]
    parts = []
    for ex in chosen:
        if ex == "logistic":
            loss, names = tracing.example_logistic()
            title = ("One-neuron logistic regression, h = sigmoid(x w + b), "
                     "J = -1/m sum [y log h + (1 - y) log(1 - h)]")
        else:
            loss, names = tracing.example_mlp()
            title = "A 2-layer MLP (3 -> 4 -> 2, ReLU), cross-entropy, one SGD step"
        with tracing.Trace(names=names) as t:
            loss.backward()
        body = {"table": t.table, "markdown": t.markdown, "dot": t.to_dot}[args.format]()
        text = body if args.format == "dot" else f"{title}\nloss = {loss.item():.6g}\n\n{body}"
        if ex == "mlp" and args.format != "dot":
            lr, lines = 0.1, []
            for name, p in names.named_parameters():
                new = p.data - lr * p.grad.data
                lines.append(f"  {name}: {tracing.fmt_array(p.data)} -> {tracing.fmt_array(new)}")
            text += f"\n\nSGD step, theta <- theta - {lr} * grad:\n" + "\n".join(lines)
        parts.append(text)
    out = "\n\n".join(parts) + "\n"
    if args.out:
        from .io import atomic_write_bytes

        atomic_write_bytes(args.out, out.encode("utf-8"))
        print(f"wrote the trace to {args.out}")
    else:
        print(out, end="")
    return 0


def cmd_explain(args):
    """Saliency, integrated gradients and SmoothGrad of one digits sample, as a picture."""
    from . import explain
    from .models import load_model

    model = load_model(args.model)
    extra = (getattr(model, "file_metadata", {}) or {}).get("extra") or {}
    X, y, image_shape, names, _ = _load_dataset(args.dataset or extra.get("dataset", "digits"),
                                                args.data_dir)
    if not 0 <= args.index < len(X):
        raise CLIError(f"--index must lie in [0, {len(X)}), got {args.index}")
    if args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    x = _prepare(model, X[args.index:args.index + 1]).astype(np.float32)
    sal = explain.saliency(model, x)
    ig, check = explain.integrated_gradients(model, x, steps=args.steps, return_check=True)
    sg = explain.smoothgrad(model, x)
    pred = int(np.asarray(model.predict(x)).argmax(-1)[0])
    label = names[int(y[args.index])] if names else str(int(y[args.index]))
    out = args.out or f"explain_{args.index}.png"
    maps = {"saliency |df/dx|": sal, "integrated gradients": ig, "SmoothGrad": sg}
    explain.plot_digits(X[args.index:args.index + 1], maps, out, shape=image_shape,
                        titles=[f"label {label}, predicted {names[pred] if names else pred}"])
    print(f"explain: sample {args.index}: label {label}, predicted "
          f"{names[pred] if names else pred}")
    print(f"integrated gradients completeness: sum of attributions {check['total'][0]:.6f}, "
          f"f(x) - f(baseline) {check['delta'][0]:.6f}, gap {check['gap'][0]:.2e}")
    print(f"wrote {out}")
    return 0


def build_parser():
    from .models import OPTIMIZERS

    p = argparse.ArgumentParser(prog="tinygrad-lite",
                                description="Train, evaluate and use small models on NumPy.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model end to end (defaults: MLP on digits)")
    t.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    t.add_argument("--data-dir", help="folder with the MNIST IDX files (for --dataset mnist)")
    t.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    t.add_argument("--epochs", type=int, default=None, help="default: 20 (mlp), 8 (cnn)")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=None, help="learning rate (Keras defaults)")
    t.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam")
    t.add_argument("--backend", help="kernel backend: numpy, cython, ... (default: best built)")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="train on the CPU or on a CUDA GPU (needs CuPy; the saved model loads "
                        "on either)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-size", type=float, default=0.2, help="validation fraction")
    t.add_argument("--format", choices=["safetensors", "npz"], default="safetensors")
    t.add_argument("--out", help="output folder (default runs/<timestamp>)")
    t.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a saved model")
    e.add_argument("model", help="model file (.safetensors or .npz)")
    e.add_argument("--data", help=".npz with X and y (raw features); default: the held-out split")
    e.add_argument("--dataset", choices=["digits", "mnist"])
    e.add_argument("--data-dir")
    e.add_argument("--backend")
    e.add_argument("--json", help="also write the metrics to this JSON file")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="predict labels for raw samples with a saved model")
    r.add_argument("model", help="model file (.safetensors or .npz)")
    r.add_argument("input", help=".npy, .npz (X) or .csv of raw feature rows")
    r.add_argument("--out", help="write CSV here instead of stdout")
    r.add_argument("--backend")
    r.set_defaults(func=cmd_predict)

    x = sub.add_parser("export", help="convert a saved model to another format (ONNX)")
    x.add_argument("model", help="model file (.safetensors or .npz)")
    x.add_argument("--format", choices=["onnx"], default="onnx")
    x.add_argument("--out", help="output file (default: the model's name with .onnx)")
    x.set_defaults(func=cmd_export)

    b = sub.add_parser("bench", help="run a benchmark suite, or compare two runs")
    b.add_argument("suite", choices=["kernels", "training", "compare"],
                   help="kernels: the kernel matrix; training: overhead, MLP fit, CNN step; "
                        "compare A.json B.json: two kernels runs, regressions flagged")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the suite")
    b.set_defaults(func=cmd_bench)
    tr = sub.add_parser("trace", help="print a narrated backward trace of a built-in example")
    tr.add_argument("--example", choices=["logistic", "mlp", "all"], default="all")
    tr.add_argument("--format", choices=["table", "markdown", "dot"], default="table")
    tr.add_argument("--out", help="write to this file instead of stdout")
    tr.set_defaults(func=cmd_trace)

    xp = sub.add_parser("explain", help="draw saliency / integrated gradients / SmoothGrad "
                                        "of one sample for a saved model")
    xp.add_argument("model", help="model file (.safetensors or .npz)")
    xp.add_argument("--index", type=int, default=0, help="sample index in the dataset")
    xp.add_argument("--dataset", choices=["digits", "mnist"])
    xp.add_argument("--data-dir")
    xp.add_argument("--steps", type=int, default=64, help="integrated-gradient steps")
    xp.add_argument("--out", help="PNG to write (default explain_<index>.png)")
    xp.set_defaults(func=cmd_explain)

    g = sub.add_parser("gpt", help="train the tiny character-level GPT of course chapter 8, "
                                   "then sample from it")
    from .examples.gpt import add_arguments as gpt_arguments

    gpt_arguments(g)
    g.set_defaults(func=cmd_gpt)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, TinygradLiteError, ValueError, KeyError) as e:
        print(f"tinygrad-lite {args.command}: error: {e}", file=sys.stderr)
        _abort_if_distributed(f"tinygrad-lite {args.command}: {type(e).__name__}: {e}")
        return EXIT_USAGE
    except OSError as e:   # a missing input, a read-only or full disk, --out on a file, ...
        where = f": {e.filename!r}" if getattr(e, "filename", None) else ""
        print(f"tinygrad-lite {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        _abort_if_distributed(f"tinygrad-lite {args.command}: {e.strerror or e}{where}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
