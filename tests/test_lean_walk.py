"""The fast paths of ``backward()`` (autograd._lean_walk): the chain walk, the graph walk and the
copy-free hand-over of fresh gradients must give what the plain graph walk gives, bit for bit."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lite as tl
from tinygrad_lite import GraphError, Tensor, autograd


def _leaves(rng, shapes, dtype=np.float64):
    return [Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


# (name, leaf shapes, loss builder, whether the graph below the loss is a chain)
GRAPHS = [
    ("mul_sum", [(3, 3), (3, 3)], lambda a, b: (a * b).sum(), True),
    ("leaf_twice_in_one_op", [(4,)], lambda a: (a * a).sum(), True),
    ("leaf_in_two_ops", [(2, 3), (2, 3)], lambda a, b: (a * b * a).sum(), True),
    ("nonleaf_twice_in_one_op", [(5,), (5,)], lambda a, b: ((a - b) * (a - b)).mean(), False),
    ("square_of_nonleaf", [(5,)], lambda a: (lambda y: (y * y).sum())(a.tanh()), True),
    ("broadcast_bias", [(4, 3), (3,)], lambda x, c: ((x * 2 + c).relu() * x).sum(), True),
    ("broadcast_graph", [(4, 3), (3,)], lambda x, c: (x * c + x.relu() * c).sum(), False),
    ("broadcast_chain", [(3, 1), (1, 4)], lambda a, b: (a * b).exp().sum(), True),
    ("unary_chain", [(6,)], lambda a: (a.sigmoid() * 3).tanh().sum(), True),
    ("keepdims_sum", [(2, 3)], lambda a: (lambda s: (s * a).sum())(a.sum(1, keepdims=True)),
     True),
    ("partial_sum", [(2, 3, 4)], lambda a: (a.sum(axis=(0, 2)) ** 2).sum(), True),
    ("big_sum", [(70, 70)], lambda a: (a * a).sum(), True),     # beyond movement._FILL_MAX
    ("diamond", [(3,), (3,)], lambda a, b: ((a * b).exp() + (a * b) * a).sum(), False),
    ("matmul_graph", [(4, 3), (3, 2)], lambda x, w: (x @ w).relu().sum(), True),
    ("scalar", [()], lambda a: a * a * 3.0, True),
]


def _reference(build, leaves):
    """The plain graph walk (create_graph=True), which never takes the fast paths."""
    out = build(*leaves)
    return [g.numpy() for g in tl.grad(out, leaves, create_graph=True, allow_unused=True)]


@pytest.mark.parametrize("name,shapes,build,chain", GRAPHS, ids=[g[0] for g in GRAPHS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_equals_the_graph_walk(name, shapes, build, chain, dtype):
    leaves = _leaves(np.random.default_rng(len(name)), shapes, dtype)
    want = _reference(build, leaves)
    loss = build(*leaves)
    assert (autograd._chain(loss) is not None) == chain, "the graph is not the kind named"
    loss.backward()
    for t, w in zip(leaves, want):
        assert t.grad.dtype == t.dtype and t.grad.shape == t.shape
        np.testing.assert_array_equal(t.grad.numpy(), w, err_msg=name)
    # .grad arrays are the leaves' own: writeable, sharing memory with no input or other .grad
    arrays = [t.data for t in leaves] + [t.grad.data for t in leaves]
    for i, t in enumerate(leaves):
        g = t.grad.data
        assert g.flags.writeable
        assert not any(np.shares_memory(g, a) for j, a in enumerate(arrays)
                       if j != len(leaves) + i)


@pytest.mark.parametrize("name,shapes,build,chain", GRAPHS, ids=[g[0] for g in GRAPHS])
def test_retain_graph_accumulates_and_a_freed_graph_raises(name, shapes, build, chain):
    leaves = _leaves(np.random.default_rng(1), shapes)
    want = _reference(build, leaves)
    loss = build(*leaves)
    loss.backward(retain_graph=True)
    first = [t.grad.numpy().copy() for t in leaves]
    for t in leaves:
        t.grad.data *= 1.0           # in-place edits of .grad (optimizers) touch nothing else
    loss.backward()
    for t, f, w in zip(leaves, first, want):
        np.testing.assert_array_equal(f, w)
        np.testing.assert_array_equal(t.grad.numpy(), w + w)
    with pytest.raises(GraphError, match="second time"):
        loss.backward()


def test_chain_walk_runs_hooks_retains_grad_and_stops_where_no_gradient_flows():
    a, b = _leaves(np.random.default_rng(2), [(3,), (3,)])
    y = (a * b).retain_grad()
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 2)
    loss = (y * 3.0).sum()
    assert autograd._chain(loss) is not None
    loss.backward()
    np.testing.assert_array_equal(seen[0], np.full(3, 3.0))
    np.testing.assert_array_equal(y.grad.numpy(), np.full(3, 6.0))   # after the hook
    np.testing.assert_array_equal(a.grad.numpy(), 6.0 * b.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), 6.0 * a.numpy())
    # a leaf without requires_grad, and a chain cut by detach: nothing flows below the cut
    c = Tensor(np.ones(3))
    z = (a * c).detach().requires_grad_() * a
    a.grad = None
    z.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), a.numpy())


def test_hooks_and_tensor_rules_on_the_chain_walk_run_in_no_grad_mode():
    modes = []

    class Probe(autograd.Function):                # a rule written on Tensors (not array_backward)
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, g):
            modes.append(("rule", tl.is_grad_enabled(), type(g) is Tensor))
            return (g * 2.0,)

    a = Tensor(np.array([-1.0, 0.5, 2.0]), requires_grad=True)
    y = Probe.apply(a.elu())                       # ELU's rule is written on Tensors too
    y.register_hook(lambda g: modes.append(("hook", tl.is_grad_enabled(), type(g) is Tensor)))
    loss = (y * 3.0).sum()
    assert autograd._chain(loss) is not None
    loss.backward()
    assert modes == [("hook", False, True), ("rule", False, True)] and tl.is_grad_enabled()
    assert not a.grad.requires_grad and a.grad._node is None
    (g,) = tl.grad((Probe.apply(a.elu()) * 3.0).sum(), a, create_graph=True)
    np.testing.assert_array_equal(a.grad.numpy(), g.numpy())


def test_a_leaf_hook_takes_the_graph_walk_and_sees_its_complete_gradient():
    a, b = _leaves(np.random.default_rng(3), [(4,), (4,)])
    seen = []
    a.register_hook(lambda g: seen.append(g.numpy().copy()))
    loss = (a * b * a).sum()
    assert autograd._chain(loss) is None          # leaf hooks: the order of hand-over matters
    loss.backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], a.grad.numpy())
    np.testing.assert_allclose(a.grad.numpy(), 2 * a.numpy() * b.numpy())


def test_a_fresh_gradient_is_handed_over_only_to_an_empty_grad():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    before = a.grad = Tensor(np.array([10.0, 20.0]))
    (a * 3.0).sum().backward()
    assert a.grad is before                       # accumulated into the existing .grad
    np.testing.assert_array_equal(a.grad.numpy(), [13.0, 23.0])


@given(shapes=st.sampled_from([((3,), (3,)), ((2, 3), (3,)), ((4, 1), (1, 5)), ((), (2,))]),
       ops=st.lists(st.sampled_from(["mul", "add", "sub", "tanh", "exp_small", "square",
                                     "relu", "mul_b"]), min_size=1, max_size=5),
       seed=st.integers(0, 2 ** 16), reduce=st.sampled_from(["sum", "mean", "sum0"]))
def test_random_graphs_backward_equals_the_graph_walk(shapes, ops, seed, reduce):
    """Random short graphs over two leaves (broadcasting, leaves reused, chains and not)."""
    rng = np.random.default_rng(seed)
    leaves = _leaves(rng, shapes)

    def build(a, b):
        y = a * b
        for op in ops:
            y = {"mul": lambda y: y * a, "add": lambda y: y + b, "sub": lambda y: b - y,
                 "tanh": lambda y: y.tanh(), "exp_small": lambda y: (y * 0.1).exp(),
                 "square": lambda y: y * y, "relu": lambda y: y.relu(),
                 "mul_b": lambda y: (y * 2.0) * b}[op](y)
        if reduce == "sum0" and y.ndim:
            y = y.sum(0)
        return y.mean() if reduce == "mean" else y.sum()

    want = _reference(build, leaves)
    build(*leaves).backward()
    for t, w in zip(leaves, want):
        np.testing.assert_array_equal(t.grad.numpy(), w)


def test_apply_runs_each_op_on_its_own_threads_backend():
    """apply reads the CPU backend from one global (autograd._cpu_fixed) that backends keeps only
    while no thread has chosen its own: per-thread ``use`` and ``set_default`` stay exact."""
    import threading

    from tinygrad_lite import backends

    mine = backends.current().name      # (a session fixture may hold a `use` in this thread)
    other = "numpy" if mine != "numpy" else "cython"
    if other not in backends.names():
        pytest.skip(f"only one CPU backend is available: {backends.names()}")

    class Which(autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return np.asarray(ctx.backend.name)

    def which():
        return str(Which.apply(Tensor(np.zeros(2))).data)

    def in_thread(f):
        out = []
        t = threading.Thread(target=lambda: out.append(f()))
        t.start()
        t.join()
        return out[0]

    inside, outside = [], []
    entered, done = threading.Event(), threading.Event()

    def worker():
        with backends.use(other):
            entered.set()
            inside.extend(which() for _ in range(50))
            done.wait(10)
        inside.append(which())

    t = threading.Thread(target=worker)
    t.start()
    entered.wait(10)
    outside.extend(which() for _ in range(50))
    done.set()
    t.join()
    default = backends.get_default()
    assert inside == [other] * 50 + [default] and outside == [mine] * 50
    assert autograd._cpu_fixed is (None if backends._cpu_overrides else backends.get(default))
    try:
        backends.set_default(other)
        assert in_thread(which) == other

        def nested():
            with backends.use(default):
                return which(), autograd._cpu_fixed
        assert in_thread(nested) == (default, None)
        assert in_thread(which) == other
    finally:
        backends.set_default(default)
    assert in_thread(which) == default and which() == mine
