"""A narrated backward trace: what ``backward()`` did, node by node, and why.

    >>> with tl.trace() as t:             # or: t = loss.backward(trace=True)
    ...     loss.backward()
    >>> print(t)                          # a terminal table; t.markdown(), t.to_dot()

For every node the walk visits, in the order it visits them, the trace records the op, its input
and output shapes, the op's local derivative rule (read from the Function's docstring, or its
``rule`` attribute, so it cannot drift from the code), the incoming gradient dL/d(output), the
gradient it sent to each parent (after broadcasting is undone: what the parent really receives),
and, for a tensor with several consumers, which contributions were summed into its gradient.

How it hooks in: like anomaly mode. ``autograd._tracer`` is None when no trace is on, and the
walk reads it once per node (``run_backward``); on, the walk calls ``begin`` once and ``visit``
after each node's backward. The values it records are copies of the very arrays the walk used,
so the trace's leaf gradients equal ``.grad`` (tests check this).

Limits: the hook is process-wide (like anomaly mode), so a backward run by another thread inside
the block is recorded too; leaf gradients are recorded before any ``register_hook`` hook edits
them; a backward inside a ``tl.jit`` capture is refused (trace the step eagerly).

Next: viz.py (the graph drawn as DOT), flops.py (what each op costs).
"""

import inspect
import re

import numpy as np

from . import autograd

FULL_MAX = 12           # arrays up to this many elements are shown in full, larger summarized
KEEP_MAX = 1 << 16      # intermediate gradients larger than this are kept only as a Summary


# ------------------------------------------------------------------ rules ---


def _split_top(text, sep=";"):
    """Split ``text`` at the first ``sep`` outside parentheses/brackets (None if there is none)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == sep and depth == 0:
            return text[:i].strip(), text[i + 1:].strip()
    return None


def rule_of(fn):
    """``(forward, derivative)``: the local rule of Function ``fn`` as text.

    A ``rule`` attribute (``"y = ...;  dy/dx = ..."``) wins; otherwise the docstring is read:
    its ``Forward:`` and ``Backward:`` sections when it has them (the fused RNN ops), else its
    first paragraph split at the first ``;`` outside brackets (the house style: formula, then
    derivative, e.g. ``y = a * b;  dy/da = b, dy/db = a.``). Raises ValueError for a Function
    whose docstring follows neither form, so a test over the registry catches an op with no
    readable rule.
    """
    doc = inspect.cleandoc(getattr(fn, "rule", None) or fn.__doc__ or "")
    m = re.search(r"Forward:(.*?)\nBackward[^:\n]*:(.*?)(?:\n\s*\n|\nWith grad mode|$)", doc, re.S)
    if m:
        fwd, bwd = (" ".join(s.split()) for s in m.groups())
        return fwd, bwd
    para = " ".join(doc.strip().split("\n\n")[0].split())
    parts = _split_top(para)
    if not parts or not parts[0] or not parts[1]:
        raise ValueError(f"trace: op {getattr(fn, 'op_name', fn)!r} has no readable rule, got "
                         f"docstring {para[:60]!r}; write it as 'y = f(x);  dy/dx = ...' or "
                         "set a rule attribute")
    return parts


# ------------------------------------------------------------------ formatting ---


def _np(a):
    a = a.data if isinstance(a, autograd._Tensor) else a
    if not isinstance(a, np.ndarray):
        a = a.get() if hasattr(a, "get") else np.asarray(a)      # CuPy -> host
    return np.array(a, copy=True)


class Summary:
    """What the trace keeps of a large intermediate gradient: its shape and statistics (the
    array itself is not copied). Leaf gradients are always kept in full."""

    __slots__ = ("shape", "text")

    def __init__(self, a):
        f = a.astype(np.float64)
        self.shape = a.shape
        self.text = (f"{a.shape} mean {f.mean():.4g} std {f.std():.4g} min {f.min():.4g} "
                     f"max {f.max():.4g} |g| {np.sqrt((f * f).sum()):.4g}")


def fmt_array(a, full_max=FULL_MAX):
    """An array as text: in full when small, else its shape and statistics."""
    if a is None:
        return "-"
    if isinstance(a, Summary):
        return a.text
    a = np.asarray(a)
    if a.size <= full_max:
        if a.ndim == 0:
            return f"{float(a):.4g}"
        return np.array2string(a, precision=4, separator=", ", suppress_small=False,
                               max_line_width=10_000, floatmode="maxprec").replace("\n", "")
    return Summary(a).text


def _shape(s):
    return "(" + ", ".join(str(d) for d in s) + ("," if len(s) == 1 else "") + ")"


# ------------------------------------------------------------------ the trace ---


class Step:
    """One visited node: ``index`` (1-based, visit order), ``op``, ``rule`` (forward,
    derivative), ``output`` (name), ``out_shape``, ``inputs`` ([(name, shape)]), ``grad_in``
    (dL/d(output), an array), ``sent`` ([(parent name, array or None)]) and ``summed`` (the
    (step index, op) of every contribution when the incoming gradient was a sum, else [])."""

    __slots__ = ("index", "op", "rule", "output", "out_shape", "inputs", "grad_in", "sent",
                 "summed")

    def __repr__(self):
        return f"<Step {self.index} {self.op} -> {self.output}>"


class Trace:
    """Records the backward walks run inside ``with Trace(): ...`` (``tl.trace()``).

    Parameters
    ----------
    names : dict name -> Tensor, or a Module (its ``named_parameters()``): how leaves are
        called. Unnamed leaves are ``leaf1, leaf2, ...``, unnamed data and constants (no
        gradient) ``c1, c2, ...``; computed tensors ``v1, v2, ...``
        numbered in forward order; the tensor backward starts from is ``out`` (unless named).
    full_max : arrays up to this many elements are shown in full.

    Attributes
    ----------
    steps : list of Step in visit order; ``leaf_grads``: name -> total gradient of each leaf
    (the sum of what it was sent: equals its ``.grad`` after a first backward).
    """

    def __init__(self, names=None, full_max=FULL_MAX):
        if names is not None and hasattr(names, "named_parameters"):
            names = dict(names.named_parameters())
        self.names = {id(t): n for n, t in (names or {}).items()}
        self._keep = list((names or {}).values())      # keep named tensors alive (ids stable)
        self.full_max = full_max
        self.steps = []
        self.leaf_grads = {}
        self.leaf_shapes = {}
        self._contrib = {}       # tensor id -> [(step index, op, array)]
        self._leaf_order = []    # [(id, name)] of leaves that require grad, first seen first
        self._leaf_ids = set()
        self._nv = self._nleaf = self._nconst = 0
        self._prev = None

    # ---- context manager -------------------------------------------------------------
    def __enter__(self):
        self._prev, autograd._tracer = autograd._tracer, self
        return self

    def __exit__(self, *exc):
        autograd._tracer = self._prev
        for k, name in self._leaf_order:
            parts = self._contrib.get(k)
            if parts:                                   # summed in the walk's order
                total = parts[0][2]
                for p in parts[1:]:
                    total = total + p[2]
                self.leaf_grads[name] = total
        return False

    # ---- hooks called by autograd.run_backward ------------------------------------------
    def begin(self, outputs, grad_outputs):
        """Name every tensor of the graph below ``outputs`` (forward order) and note the seed."""
        if autograd._tape is not None:
            from .errors import JitError

            raise JitError("trace: a backward inside a jitted step cannot be traced (the trace "
                           "would run Python on values a replay does not have); trace the step "
                           "eagerly, outside tl.jit")
        if len(outputs) == 1 and id(outputs[0]) not in self.names:
            self.names[id(outputs[0])] = "out"
        for t in reversed(autograd._topo_order(outputs)):   # forward order: inputs first
            self._keep.append(t)
            if id(t) not in self.names:
                self._nv += 1
                self.names[id(t)] = f"v{self._nv}"
            for p in t._node.parents:
                if p._node is None and not p._requires_grad and id(p) not in self.names:
                    self._nconst += 1                 # data and constants: c1, c2, ...
                    self.names[id(p)] = f"c{self._nconst}"
                    self._keep.append(p)
                if p._node is not None or not p._requires_grad or id(p) in self._leaf_ids:
                    continue
                if id(p) not in self.names:
                    self._nleaf += 1
                    self.names[id(p)] = f"leaf{self._nleaf}"
                self._leaf_ids.add(id(p))
                self._leaf_order.append((id(p), self.names[id(p)]))
                self.leaf_shapes[self.names[id(p)]] = tuple(p.shape)
                self._keep.append(p)
        for t, g in zip(outputs, grad_outputs):
            self._contrib.setdefault(id(t), []).append((0, "seed", None))

    def visit(self, t, node, g, in_grads):
        s = Step()
        s.index = len(self.steps) + 1
        s.op = node.fn.op_name or type(node.fn).__name__
        try:
            s.rule = rule_of(node.fn)
        except ValueError:
            s.rule = ((node.fn.__doc__ or "").strip().split("\n")[0] or "(no docstring)", "")
        s.output = self.names.get(id(t), "?")
        s.out_shape = tuple(t.shape)
        s.inputs = [(self.names.get(id(p), "const"), tuple(p.shape)) for p in node.parents]
        s.grad_in = self._keep_array(_np(g))
        parts = self._contrib.get(id(t), [])
        s.summed = [(i, op) for i, op, _ in parts] if len(parts) > 1 else []
        s.sent = []
        for p, gp in zip(node.parents, in_grads):
            name = self.names.get(id(p), "const")
            if gp is None or not p._requires_grad:
                s.sent.append((name, None))
                continue
            a = _np(gp)
            if a.shape != tuple(p.shape):                 # the walk's sum_to_shape, on a copy
                a = _np(autograd.sum_to_shape(a, tuple(p.shape)))
            leaf = id(p) in self._leaf_ids
            s.sent.append((name, a if leaf else self._keep_array(a)))
            self._contrib.setdefault(id(p), []).append((s.index, s.op, a if leaf else None))
        self._contrib.pop(id(t), None)                    # t's gradient is complete: drop it
        self.steps.append(s)

    def _keep_array(self, a):
        return a if a.size <= KEEP_MAX else Summary(a)

    # ---- questions -------------------------------------------------------------------
    def summed_leaves(self):
        """name -> [(step index, op)] for each leaf whose gradient was a sum of several."""
        out = {}
        for k, name in self._leaf_order:
            parts = self._contrib.get(k, [])
            if len(parts) > 1:
                out[name] = [(i, op) for i, op, _ in parts]
        return out

    # ---- renderings ------------------------------------------------------------------
    def _sum_note(self, parts):
        return "gradients summed: " + _parts(parts)

    def table(self, width=100):
        """The trace as a terminal table: one block per visited node, then the leaves."""
        f = lambda a: fmt_array(a, self.full_max)   # noqa: E731
        head = (f"{'#':>3}  {'op':<14} output (shape) = op(inputs), its rule, dL/d(output) in, "
                "dL/d(input) out")
        lines = [head, "-" * min(width, max(len(head), 72))]
        for s in self.steps:
            lines.append(f"{s.index:>3}  {s.op:<14} {_node_text(s)}")
            pad = " " * 5
            lines.append(f"{pad}rule:  {s.rule[0]}")
            if s.rule[1]:
                lines.append(f"{pad}       {s.rule[1]}")
            if s.summed:
                lines.append(f"{pad}sum:   dL/d{s.output} = " + _parts(s.summed))
            lines.append(f"{pad}in:    dL/d{s.output} = {f(s.grad_in)}")
            for name, a in s.sent:
                if a is None:
                    lines.append(f"{pad}out:   dL/d{name}: none (needs no grad)")
                else:
                    lines.append(f"{pad}out:   dL/d{name} = {f(a)}")
        lines.append("-" * min(width, max(len(head), 72)))
        summed = self.summed_leaves()
        for name, g in self.leaf_grads.items():
            note = f"   ({self._sum_note(summed[name])})" if name in summed else ""
            lines.append(f"leaf {name} {_shape(self.leaf_shapes[name])}: .grad = {f(g)}{note}")
        return "\n".join(lines)

    __str__ = table

    def markdown(self):
        """The trace as a Markdown table (one row per visited node) and a list of the leaves."""
        f = lambda a: fmt_array(a, self.full_max).replace("|", "\\|")   # noqa: E731

        def code(x):
            return "`" + x.replace("`", "'").replace("|", "\\|") + "`"

        rows = ["| # | node | rule | incoming dL/d(out) | sent to each input |",
                "|---|---|---|---|---|"]
        for s in self.steps:
            node = code(_node_text(s))
            rule = code(s.rule[0]) + ("<br>" + code(s.rule[1]) if s.rule[1] else "")
            gin = code(f(s.grad_in))
            if s.summed:
                gin += "<br>(" + self._sum_note(s.summed) + ")"
            sent = "<br>".join(
                f"{name}: " + ("none" if a is None else code(f(a)))
                for (name, _), (_, a) in zip(s.inputs, s.sent))
            rows.append(f"| {s.index} | {node} | {rule} | {gin} | {sent} |")
        summed = self.summed_leaves()
        rows.append("")
        for name, g in self.leaf_grads.items():
            note = f" ({self._sum_note(summed[name])})" if name in summed else ""
            rows.append(f"- `{name}.grad` = {code(f(g))}{note}")
        return "\n".join(rows)

    def to_dot(self):
        """The graph annotated with the walk: step numbers on ops, gradients on the edges
        (Graphviz DOT text; draw it with ``viz.render_dot``)."""
        f = lambda a: fmt_array(a, 4)   # noqa: E731
        out = ['digraph "trace" {', "  rankdir=BT;",
               '  node [fontname="Helvetica", fontsize=10];',
               '  edge [fontname="Helvetica", fontsize=9];']
        tensors = {}
        for s in self.steps:
            tensors[s.output] = s.out_shape
            for name, shape in s.inputs:
                tensors.setdefault(name, shape)
        for name, shape in tensors.items():
            color = "lightblue" if name in self.leaf_grads else "white"
            out.append(f'  "{_esc(name)}" [shape=ellipse, style=filled, fillcolor={color}, '
                       f'label="{_esc(name)} {_shape(shape)}"];')
        for s in self.steps:
            op = f"op{s.index}"
            label = f"{s.index}. {s.op}\\n{_esc(s.rule[1][:60])}"
            out.append(f'  {op} [shape=box, style=rounded, label="{label}"];')
            out.append(f'  {op} -> "{_esc(s.output)}" [label="dL/d{_esc(s.output)}\\n'
                       f'{_esc(f(s.grad_in))}", dir=back, color=red];')
            for (name, _), (_, a) in zip(s.inputs, s.sent):
                lab = "" if a is None else f' label="{_esc(f(a))}", color=red,'
                out.append(f'  "{_esc(name)}" -> {op} [{lab} dir=back];')
        out.append("}")
        return "\n".join(out)


def _node_text(s):
    ins = ", ".join(f"{n} {_shape(sh)}" for n, sh in s.inputs)
    return f"{s.output} {_shape(s.out_shape)} = {s.op}({ins})"


def _parts(parts):
    return " + ".join("seed" if i == 0 else f"from step {i} ({op})" for i, op in parts)


def _esc(s):
    return str(s).replace("\\", "\\\\").replace('"', '\\"')


def trace(names=None, full_max=FULL_MAX):
    """``with trace() as t: loss.backward()``: record a narrated backward trace (see Trace)."""
    return Trace(names, full_max)


# ------------------------------------------------------------------ built-in examples ---


def example_logistic():
    """One-neuron logistic regression on two samples, with the seed's cross-entropy written
    out: h = sigmoid(x w + b), J = -1/m sum [y log h + (1 - y) log(1 - h)]. Returns
    ``(loss, names)``; the graph is recorded, ready for ``loss.backward(trace=True)``."""
    from .tensor import Tensor

    x = Tensor([[1.0, 2.0], [-1.0, 0.5]], dtype="float64")
    y = Tensor([1.0, 0.0], dtype="float64")
    w = Tensor([0.5, -0.25], dtype="float64", requires_grad=True)
    b = Tensor(0.1, dtype="float64", requires_grad=True)
    h = (x @ w + b).sigmoid()
    m = x.shape[0]
    loss = -(y * h.log() + (1 - y) * (1 - h).log()).sum() / m
    return loss, {"x": x, "y": y, "w": w, "b": b, "h": h}


def example_mlp():
    """A 2-layer MLP (3 -> 4 -> 2, ReLU) on a batch of 3 with cross-entropy: one training
    step's backward. Returns ``(loss, model)``; name the leaves with ``names=model``."""
    from . import nn
    from .tensor import Tensor, manual_seed

    manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    x = Tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-1.0, 1.0, 0.25]], dtype="float64")
    labels = Tensor(np.array([0, 1, 1]))
    loss = nn.functional.cross_entropy(model(x), labels)
    return loss, model
