"""``Module.summary``: run the model once and tabulate each leaf layer's output shape,
parameter count and forward FLOPs per sample (Keras' ``model.summary()``; FLOPs from flops.py)."""

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor


def summarize(model, input_shape, dtype=np.float32, batch_size=2):
    """The table behind ``Module.summary`` (a string)."""
    rows, handles = [], []
    for name, m in model.named_modules():
        if m is model and any(True for _ in model.children()):
            continue
        if any(True for _ in m.children()) and m._parameters == {}:
            continue

        def hook(mod, _inp, out, name=name):
            own = sum(p.size for p in mod.parameters())
            rows.append((name or type(mod).__name__, type(mod).__name__, _shape_of(out), own))

        handles.append(m.register_forward_hook(hook))
    from ..flops import Recorder

    was_training = model.training
    model.eval()
    rec = Recorder(model)
    try:
        x = Tensor(np.zeros((batch_size,) + tuple(input_shape), dtype=dtype))
        with no_grad(), rec:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    total = model.num_parameters()
    trainable = model.num_parameters(trainable_only=True)
    fl = {}
    for r in rec.ops:                 # forward FLOPs of the ops each module ran (innermost)
        fl[r.module] = fl.get(r.module, 0) + r.fwd
    header = ("Layer", "Type", "Output shape", "Param #", "FLOPs")
    table = [header] + [(n, t, s, f"{c:,}", f"{_flops_of(fl, n) // batch_size:,}")
                        for n, t, s, c in rows]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:3]) + "".join(
        f"  {{:>{w}}}" for w in widths[3:])
    sep = "-" * (sum(widths) + 8)
    lines = (
        [fmt.format(*header), sep]
        + [fmt.format(*r) for r in table[1:]]
        + [
            sep,
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            f"Forward FLOPs per sample: {rec.forward_flops // batch_size:,}",
        ]
    )
    return "\n".join(lines)


def _flops_of(fl, name):
    """FLOPs of module ``name``: its own ops and those of modules nested in it."""
    return sum(v for m, v in fl.items() if m == name or (name and m.startswith(name + ".")))


def _shape_of(out):
    if isinstance(out, Tensor):
        return str((-1,) + tuple(out.shape[1:]))
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_shape_of(o) for o in out) + "]"
    return type(out).__name__
