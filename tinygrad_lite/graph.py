"""A read-only, public view of the recorded graph: ``tensor.grad_fn`` and ``next_functions``.

Every op on a tensor that requires grad records a node (autograd.Node: the Function, its saved
values, its input tensors). ``tensor.grad_fn`` wraps that node so a learner can walk the graph
without private attributes, as in PyTorch::

    >>> x = Tensor([1.0, 2.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.grad_fn
    <GradFn sum>
    >>> y.grad_fn.next_functions
    ((<GradFn mul>, 0),)
    >>> y.grad_fn.next_functions[0][0].next_functions
    ((<AccumulateGrad shape=(2,)>, 0), (<AccumulateGrad shape=(2,)>, 0))

``next_functions`` has one entry per input of the op: the input's own ``GradFn``, an
``AccumulateGrad`` for a leaf that requires grad (where its gradient ends up, in ``.grad``), or
None for an input that needs no gradient. The second item of each pair is the output index (always
0: our ops have one output), kept so code written for PyTorch unpacks it the same way.
"""


class GradFn:
    """The recorded op that produced a tensor.

    Attributes
    ----------
    op : str, the registered op name (``"matmul"``, ``"relu"``, ...)
    saved_shapes : tuple of shapes of what forward saved for backward (empty once the graph is
        freed by ``backward()``)
    next_functions : tuple of ``(GradFn | AccumulateGrad | None, 0)``, one per input
    """

    __slots__ = ("_node",)

    def __init__(self, node):
        self._node = node

    @property
    def op(self):
        return self._node.fn.op_name

    def name(self):
        """The op name (PyTorch's ``grad_fn.name()`` gives e.g. ``'MulBackward0'``)."""
        return self.op

    @property
    def function(self):
        """The Function class whose ``backward`` this node will run."""
        return self._node.fn

    @property
    def saved_shapes(self):
        return tuple(tuple(a.shape) for a in self._node.ctx._saved)   # raw arrays (autograd)

    @property
    def freed(self):
        return self._node.freed

    @property
    def next_functions(self):
        out = []
        for p in self._node.parents:
            if p._node is not None:
                out.append((GradFn(p._node), 0))
            elif p.requires_grad:
                out.append((AccumulateGrad(p), 0))
            else:
                out.append((None, 0))
        return tuple(out)

    def __eq__(self, other):
        return isinstance(other, GradFn) and other._node is self._node

    def __hash__(self):
        return id(self._node)

    def __repr__(self):
        return f"<GradFn {self.op}>"


class AccumulateGrad:
    """The end of a path: a leaf tensor whose ``.grad`` receives the gradient."""

    __slots__ = ("variable",)
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "AccumulateGrad"

    def __eq__(self, other):
        return isinstance(other, AccumulateGrad) and other.variable is self.variable

    def __hash__(self):
        return id(self.variable)

    def __repr__(self):
        return f"<AccumulateGrad shape={tuple(self.variable.shape)}>"


class RemovableHandle:
    """Returned by ``Tensor.register_hook``; ``handle.remove()`` takes the hook off again."""

    __slots__ = ("_tensor", "_hook")

    def __init__(self, tensor, hook):
        self._tensor, self._hook = tensor, hook

    def remove(self):
        hooks = self._tensor._hooks
        if hooks and self._hook in hooks:
            hooks.remove(self._hook)
