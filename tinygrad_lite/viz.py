"""Pictures and tables of a computation: the autograd graph as Graphviz DOT, and a per-layer
profile (parameters, FLOPs, activation memory, time).

    >>> dot = viz.to_dot(loss, params=model)           # DOT text: ops, shapes, parameter names
    >>> viz.render(loss, "graph.svg", params=model)    # needs the `dot` program (apt graphviz)
    >>> viz.profile(model, x)                          # prints the per-layer table

The graph is read from what autograd recorded (``tensor._node``: the Function and its input
tensors), so it works before or after ``backward()``. For module clusters, record the forward
with ``flops.Recorder(model)`` and pass it as ``modules=``; a graph with more op nodes than
``max_nodes`` then collapses each module into one box.

Next: explain.py (gradients with respect to the input, as pictures).
"""

import os
import shutil
import subprocess

from . import flops as _flops
from .tracing import fmt_array

INSTALL_HINT = ("install Graphviz's `dot` program (Debian/Ubuntu: apt-get install graphviz; "
                "macOS: brew install graphviz) and the Python package (pip install graphviz)")


def _shape(s):
    return "(" + ", ".join(str(d) for d in s) + ("," if len(s) == 1 else "") + ")"


def _esc(s):
    return str(s).replace("\\", "\\\\").replace('"', '\\"')


def _names(params):
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        params = dict(params.named_parameters())
    return {id(t): n for n, t in params.items()}


def _walk(root):
    """(ops, leaves, edges): tensors with a node in forward (topological) order, leaf tensors,
    and (parent tensor, child tensor) pairs. The order is the backward walk's, reversed."""
    from .autograd import _topo_order

    ops = list(reversed(_topo_order([root])))
    leaves, edges, seen = [], [], set()
    if root._node is None:
        return [], [root], []
    for t in ops:
        for p in t._node.parents:
            edges.append((p, t))
            if p._node is None and id(p) not in seen:
                seen.add(id(p))
                leaves.append(p)
    return ops, leaves, edges


def to_dot(tensor, params=None, values=False, modules=None, max_nodes=80, name="tinygrad_lite"):
    """Graphviz DOT text of the graph that produced ``tensor``.

    Parameters
    ----------
    tensor : the output (e.g. the loss); its graph must have been recorded (requires_grad)
    params : a Module (its ``named_parameters()``) or a dict name -> Tensor, to name leaves
    values : also print each tensor's value and, where present, its ``.grad`` (small arrays in
        full, large ones summarized)
    modules : a ``flops.Recorder`` that recorded the forward: ops are grouped in one cluster
        per module, and when the graph has more than ``max_nodes`` op nodes each module is
        drawn as a single box (a large model stays readable)

    Nodes: ``op<i>`` boxes (op name and output shape), ``leaf<i>`` ellipses (parameter name
    or ``leaf``/``data``, shape); edges run from inputs to the op that used them.
    """
    names = _names(params)
    ops, leaves, edges = _walk(tensor)
    node_module = dict(modules.node_module) if modules is not None else {}
    mtypes = modules.module_types if modules is not None else {}
    collapse = bool(node_module) and len(ops) > max_nodes
    ids = {}
    for i, t in enumerate(ops):
        ids[id(t)] = f"op{i}"
    for i, t in enumerate(leaves):
        ids[id(t)] = f"leaf{i}"

    def module_of(t):
        if t._node is not None:
            return node_module.get(id(t._node), "")
        return node_module.get(id(t)) or _param_module(names.get(id(t), ""), node_module)

    def label(t):
        if t._node is not None:
            text = f"{t._node.fn.op_name}\\n{_shape(t.shape)}"
        else:
            who = names.get(id(t)) or ("leaf" if t.requires_grad else
                                        f"const {float(t.data):.4g}" if t.data.size == 1
                                        else "data")
            text = f"{_esc(who)}\\n{_shape(t.shape)}"
        if values:
            text += f"\\nvalue {_esc(fmt_array(t.data, 4))}"
            if t.grad is not None:
                text += f"\\ngrad {_esc(fmt_array(t.grad.data, 4))}"
        return text

    out = [f'digraph "{_esc(name)}" {{', "  rankdir=LR;",
           '  node [fontname="Helvetica", fontsize=10];']
    if collapse:
        used = {m for m in (module_of(t) for t in ops) if m}
        order = [m for m in mtypes if m in used] + sorted(used - set(mtypes))
        boxes = {m: f"mod{i}" for i, m in enumerate(order)}   # module name -> dot id
        consumers = {}
        for p, c in edges:
            consumers.setdefault(id(p), set()).add(module_of(c))
        for t in leaves:                 # a scalar constant used inside one module is hidden
            if t._node is None and not t.requires_grad and t.data.size == 1:
                (only,) = consumers[id(t)] if len(consumers[id(t)]) == 1 else (None,)
                if only:
                    node_module[id(t)] = only
        for m, key in boxes.items():
            inside = [t for t in ops if module_of(t) == m]
            n_params = sum(t.data.size for t in leaves if t.requires_grad and module_of(t) == m)
            last = inside[-1]
            out.append(f'  {key} [shape=box3d, label="{_esc(m)} ({mtypes.get(m, "")})\\n'
                       f'{len(inside)} op{"s" if len(inside) > 1 else ""}, {n_params} params\\n'
                       f'out {_shape(last.shape)}"];')

        def key_of(t):
            m = module_of(t)
            return boxes[m] if m in boxes else ids[id(t)]

        shown = set()
        for t in ops + leaves:
            k = key_of(t)
            if k == ids[id(t)] and (t._node is not None or not module_of(t)):
                shape = "box" if t._node is not None else "ellipse"
                out.append(f'  {k} [shape={shape}, label="{label(t)}"];')
        for p, c in edges:
            a, b = key_of(p), key_of(c)
            if a != b and (a, b) not in shown:
                shown.add((a, b))
                out.append(f"  {a} -> {b};")
        out.append("}")
        return "\n".join(out)
    clusters = {}
    for t in ops + leaves:
        clusters.setdefault(module_of(t), []).append(t)
    for ci, (m, members) in enumerate(clusters.items()):
        indent = "  "
        if m:
            out.append(f"  subgraph cluster_{ci} {{")
            out.append(f'    label="{_esc(m)} ({mtypes.get(m, "")})"; style=rounded; '
                       "color=gray;")
            indent = "    "
        for t in members:
            if t._node is not None:
                extra = ", peripheries=2" if t is tensor else ""
                out.append(f'{indent}{ids[id(t)]} [shape=box, style=filled, fillcolor=white, '
                           f'label="{label(t)}"{extra}];')
            else:
                color = "lightblue" if t.requires_grad else "lightgray"
                out.append(f'{indent}{ids[id(t)]} [shape=ellipse, style=filled, '
                           f'fillcolor={color}, label="{label(t)}"];')
        if m:
            out.append("  }")
    for p, c in edges:
        out.append(f"  {ids[id(p)]} -> {ids[id(c)]};")
    out.append("}")
    return "\n".join(out)


def _param_module(pname, node_module):
    """The module a parameter belongs to: the longest recorded module name prefixing it."""
    if not pname:
        return ""
    best = ""
    for m in set(node_module.values()):
        if m and pname.startswith(m + ".") and len(m) > len(best):
            best = m
    return best


def has_dot():
    """True when Graphviz's ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def render_dot(dot_text, path):
    """Write DOT text to ``path``: ``.svg``/``.png``/``.pdf`` through ``dot``, ``.dot`` as is.

    Without the ``dot`` program the ``.dot`` file is written next to ``path`` and a message
    says how to install Graphviz. Returns the path written."""
    base, ext = os.path.splitext(str(path))
    fmt = ext.lstrip(".").lower() or "svg"
    if fmt == "dot" or fmt == "gv":
        with open(path, "w") as f:
            f.write(dot_text)
        return str(path)
    if not has_dot():
        fallback = base + ".dot"
        with open(fallback, "w") as f:
            f.write(dot_text)
        print(f"viz.render: the `dot` program was not found, so wrote {fallback} instead of "
              f"{path}; {INSTALL_HINT}, then run: dot -T{fmt} {fallback} -o {path}")
        return fallback
    try:
        import graphviz
    except ImportError:
        graphviz = None
    if graphviz is not None:
        src = graphviz.Source(dot_text)
        data = src.pipe(format=fmt)
    else:                               # the program alone is enough
        data = subprocess.run(["dot", f"-T{fmt}"], input=dot_text.encode(), check=True,
                              capture_output=True).stdout
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def render(tensor, path, params=None, values=False, modules=None, max_nodes=80):
    """Draw the graph of ``tensor`` to ``path`` (see ``to_dot`` and ``render_dot``)."""
    return render_dot(to_dot(tensor, params, values, modules, max_nodes), path)


# ------------------------------------------------------------------ profile ---


class Profile:
    """The result of ``profile``: ``rows`` (one dict per layer), ``step_time`` (seconds, the
    mean forward + loss + backward wall time), ``table()`` (text)."""

    def __init__(self, rows, step_time, steps):
        self.rows, self.step_time, self.steps = rows, step_time, steps

    def table(self):
        head = ("Layer", "Type", "Params", "Fwd FLOPs", "Bwd FLOPs", "Act. memory", "Time ms",
                "Share")
        body = []
        for r in self.rows:
            body.append((r["layer"], r["type"], f"{r['params']:,}", f"{r['fwd_flops']:,}",
                         f"{r['bwd_flops']:,}", _bytes(r["saved_bytes"]),
                         f"{1e3 * r['time']:.3f}", f"{100 * r['share']:.1f}%"))
        other = self.step_time - sum(r["time"] for r in self.rows)
        tot = ("total", "", f"{sum(r['params'] for r in self.rows):,}",
               f"{sum(r['fwd_flops'] for r in self.rows):,}",
               f"{sum(r['bwd_flops'] for r in self.rows):,}",
               _bytes(sum(r["saved_bytes"] for r in self.rows)),
               f"{1e3 * self.step_time:.3f}", "100.0%")
        oth = ("(engine + profiler overhead)", "", "", "", "", "", f"{1e3 * max(other, 0):.3f}",
               f"{100 * max(other, 0) / self.step_time:.1f}%")
        table = [head] + body + [oth, tot]
        w = [max(len(r[i]) for r in table) for i in range(len(head))]

        def line(r):
            return "  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(r))

        sep = "-" * len(line(head))
        return "\n".join([line(head), sep] + [line(r) for r in body] + [line(oth), sep,
                                                                         line(tot)]) + \
            (f"\n(one step = forward + loss + backward, mean of {self.steps}; FLOPs per step; "
             "activation memory = bytes saved for backward, parameters excluded)")

    __str__ = table


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def profile(model, x, y=None, loss_fn=None, steps=3, print_fn=print):
    """Run ``steps`` training steps (forward, loss, backward; no optimizer update) of ``model``
    on ``x`` and tabulate, per leaf layer: parameters, forward and backward FLOPs, activation
    memory (bytes its ops saved for backward), measured time (forward + backward) and its share
    of the step. ``loss_fn(out, y)`` defaults to cross-entropy for integer ``y``, mean squared
    error for float ``y``, and ``out.sum()`` without ``y``. Returns a ``Profile``."""
    from time import perf_counter

    import numpy as np

    from .tensor import Tensor

    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x, dtype=np.float32))
    if loss_fn is None:
        loss_fn = _default_loss(y)
    if y is not None and not isinstance(y, Tensor):
        y = Tensor(np.asarray(y))
    for p in model.parameters():
        p.grad = None
    loss_fn(model(x), y).backward()            # build (Keras-style layers) and warm up
    recs, total = [], 0.0
    for _ in range(max(int(steps), 1)):
        for p in model.parameters():
            p.grad = None
        rec = _flops.Recorder(model)
        t0 = perf_counter()
        with rec:
            out = model(x)
            loss = loss_fn(out, y)
        with rec.backward_timer():
            loss.backward()
        total += perf_counter() - t0
        recs.append(rec)
    step = total / len(recs)
    rows = _layer_rows(model, recs, step)
    prof = Profile(rows, step, max(int(steps), 1))
    if print_fn is not None:
        print_fn(prof.table())
    return prof


def _layer_rows(model, recs, step_time):
    """One row per leaf module (plus one for ops outside layers, e.g. the loss): FLOPs and
    saved bytes of the last step, times averaged over the steps."""
    rows = {}
    for name, m in model.named_modules():
        if any(True for _ in m.children()):
            continue                             # containers: their leaves carry the numbers
        rows[name] = {"layer": name or type(m).__name__, "type": type(m).__name__,
                      "params": sum(p.size for p in m.parameters()), "fwd_flops": 0,
                      "bwd_flops": 0, "saved_bytes": 0, "time": 0.0}
    for k, rec in enumerate(recs):
        last = k == len(recs) - 1
        for r in rec.ops:
            name = r.module if r.module in rows else _owner(r.module, rows)
            if name not in rows:
                rows[name] = {"layer": name or "(outside layers: loss)", "type": "",
                              "params": 0, "fwd_flops": 0, "bwd_flops": 0, "saved_bytes": 0,
                              "time": 0.0}
            row = rows[name]
            if last:
                row["fwd_flops"] += r.fwd
                row["bwd_flops"] += r.bwd
                row["saved_bytes"] += r.saved
            row["time"] += (r.time + r.bwd_time) / len(recs)
    out = list(rows.values())
    for row in out:
        row["share"] = row["time"] / step_time if step_time else 0.0
    return out


def _owner(module, rows):
    """Ops run by a container's own forward (no leaf child) count toward the container."""
    best = None
    for name in rows:
        if name and module.startswith(name + ".") and (best is None or len(name) > len(best)):
            best = name
    return best if best is not None else module


def _default_loss(y):
    import numpy as np

    def loss(out, target):
        if target is None:
            return out.sum()
        if np.issubdtype(target.data.dtype, np.integer):
            from .nn import functional as F

            return F.cross_entropy(out, target)
        return ((out - target) ** 2).mean()

    return loss
