"""The fused optimizer kernels (tinygrad_lite._cpu.adam_step / sgd_step) against the NumPy path.

Every case runs the same optimizer twice from the same start, once under
``backends.use("numpy")`` (the NumPy reference in ``_update``) and once under
``backends.use("cython")`` (the fused kernel), feeds both the same gradients for a few steps and
compares parameters and state. The fused kernels do the same float operations in the same order,
so the results agree to a few ulp (bit for bit on x86-64, where no FMA is contracted).

Sizes 1, 7, 257 exercise the SIMD tails; 70000 crosses the OpenMP threshold (1 << 16).
"""

import numpy as np
import pytest

from tinygrad_lite import backends
from tinygrad_lite.optim import SGD, Adam, AdamW
from tinygrad_lite.optim import _fused

if not _fused._cpu:
    pytest.skip("Cython kernels not built (or hidden by TINYGRAD_LITE_DISABLE_KERNELS=1)",
                allow_module_level=True)
_cpu = _fused._cpu

SIZES = [1, 7, 257, 70000]
DTYPES = [np.float32, np.float64]
STEPS = 4


class P:
    """A bare parameter (the optimizer contract: .data and .grad.data)."""

    def __init__(self, data):
        self.data, self.grad = data, None


class G:
    def __init__(self, data):
        self.data = data


def _tol(dtype):
    # a few ulp: the paths do the same operations; only an FMA contraction could differ
    return {"rtol": 1e-12, "atol": 1e-300} if dtype == np.float64 else {"rtol": 4e-6, "atol": 1e-30}


def _grads(n, dtype, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype) for _ in range(steps)]


def _run(backend, make_opt, x0, grads, shape=None, grad_view=None):
    """Parameter and optimizer after ``len(grads)`` steps with ``backend`` active."""
    p = P(x0.copy() if shape is None else x0.copy().reshape(shape))
    opt = make_opt([p])
    with backends.use(backend):
        for g in grads:
            g = g.reshape(p.data.shape) if shape is not None else g
            p.grad = G(grad_view(g) if grad_view else g.copy())
            opt.step()
    return p, opt


def _assert_same(ref, got, dtype):
    (p_ref, o_ref), (p_got, o_got) = ref, got
    assert p_got.data.dtype == dtype
    np.testing.assert_allclose(p_got.data, p_ref.data, **_tol(dtype))
    s_ref, s_got = o_ref.state_dict()["state"], o_got.state_dict()["state"]
    assert s_ref.keys() == s_got.keys()
    for i in s_ref:
        assert s_ref[i].keys() == s_got[i].keys()
        for k, v in s_ref[i].items():
            if isinstance(v, np.ndarray):
                np.testing.assert_allclose(s_got[i][k], v, **_tol(dtype), err_msg=k)
            else:
                assert s_got[i][k] == v, k


@pytest.fixture(autouse=True)
def _count_fused(monkeypatch):
    """Count fused-kernel calls (one per param group and dtype), so a test can check the fused
    path really ran."""
    calls = {"n": 0}
    real = _fused.call

    def counting(name, *args):
        calls["n"] += 1
        return real(name, *args)

    monkeypatch.setattr(_fused, "call", counting)
    return calls


ADAM_CASES = {
    "plain": {"lr": 1e-2},
    "amsgrad": {"lr": 1e-2, "amsgrad": True},
    "adamw": {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
    "adamw_amsgrad": {"lr": 3e-3, "weight_decay": 0.05, "amsgrad": True,
                      "decoupled_weight_decay": True},
    "maximize": {"lr": 1e-2, "maximize": True},
    "coupled_wd": {"lr": 1e-2, "weight_decay": 0.1, "betas": (0.8, 0.99), "eps": 1e-6},
}

SGD_CASES = {
    "plain": {"lr": 0.1},
    "momentum": {"lr": 0.1, "momentum": 0.9},
    "dampening": {"lr": 0.1, "momentum": 0.9, "dampening": 0.3},
    "nesterov": {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    "weight_decay": {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01},
    "maximize": {"lr": 0.05, "momentum": 0.9, "maximize": True, "weight_decay": 0.01},
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", ADAM_CASES, ids=list(ADAM_CASES))
def test_adam_fused_matches_numpy(case, dtype, n, _count_fused):
    x0 = np.random.default_rng(1).standard_normal(n).astype(dtype)
    grads = _grads(n, dtype, STEPS)

    def make(params):
        return Adam(params, **ADAM_CASES[case])

    ref = _run("numpy", make, x0, grads)
    assert _count_fused["n"] == 0
    got = _run("cython", make, x0, grads)
    assert _count_fused["n"] == STEPS
    _assert_same(ref, got, dtype)
    assert not np.array_equal(got[0].data, x0)  # the step did something


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", SGD_CASES, ids=list(SGD_CASES))
def test_sgd_fused_matches_numpy(case, dtype, n, _count_fused):
    x0 = np.random.default_rng(2).standard_normal(n).astype(dtype)
    grads = _grads(n, dtype, STEPS, seed=3)

    def make(params):
        return SGD(params, **SGD_CASES[case])

    ref = _run("numpy", make, x0, grads)
    got = _run("cython", make, x0, grads)
    assert _count_fused["n"] == STEPS
    _assert_same(ref, got, dtype)


def test_adam_fused_2d_parameter_and_adamw_class(_count_fused):
    x0 = np.random.default_rng(4).standard_normal(128 * 784).astype(np.float32)
    grads = _grads(x0.size, np.float32, 3, seed=5)

    def make(params):
        return AdamW(params, lr=1e-3)

    ref = _run("numpy", make, x0, grads, shape=(128, 784))
    got = _run("cython", make, x0, grads, shape=(128, 784))
    assert _count_fused["n"] == 3
    assert got[0].data.shape == (128, 784)
    _assert_same(ref, got, np.float32)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("isa", _cpu.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_adam_every_isa_matches_numpy(isa, dtype):
    """The AVX-512, AVX2 and plain loops (forced with set_isa), with NaN/inf in the gradient."""
    n = 1000 + 13
    x0 = np.random.default_rng(6).standard_normal(n).astype(dtype)
    grads = _grads(n, dtype, 3, seed=7)
    grads[1][5], grads[1][6] = np.nan, np.inf

    def make(params):
        return Adam(params, lr=1e-2, amsgrad=True, weight_decay=0.01,
                    decoupled_weight_decay=True)

    ref = _run("numpy", make, x0, grads)
    prev = _cpu.set_isa(isa)
    try:
        got = _run("cython", make, x0, grads)
    finally:
        _cpu.set_isa(prev)
    np.testing.assert_array_equal(np.isnan(got[0].data), np.isnan(ref[0].data))
    np.testing.assert_allclose(got[0].data, ref[0].data, **_tol(dtype))
    vmax_ref = ref[1].state_dict()["state"][0]["max_exp_avg_sq"]
    vmax_got = got[1].state_dict()["state"][0]["max_exp_avg_sq"]
    np.testing.assert_array_equal(np.isnan(vmax_got), np.isnan(vmax_ref))
    np.testing.assert_allclose(vmax_got, vmax_ref, **_tol(dtype))


@pytest.mark.parametrize("opt", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_non_contiguous_grad(opt, dtype, _count_fused):
    """A strided gradient view is copied before the kernel reads it (the fused path still runs)."""
    n = 257
    x0 = np.random.default_rng(8).standard_normal(n).astype(dtype)
    grads = _grads(2 * n, dtype, STEPS, seed=9)

    def make(params):
        if opt == "adam":
            return Adam(params, lr=1e-2, amsgrad=True)
        return SGD(params, lr=0.1, momentum=0.9, nesterov=True)

    def view(g):
        v = g[::2]
        assert not v.flags.c_contiguous
        return v

    ref = _run("numpy", make, x0, [g[::2].copy() for g in grads])
    got = _run("cython", make, x0, grads, grad_view=view)   # every other element, no copy
    assert _count_fused["n"] == STEPS
    _assert_same(ref, got, dtype)
    for g, g0 in zip(grads, _grads(2 * n, dtype, STEPS, seed=9)):  # only read
        np.testing.assert_array_equal(g, g0)


def test_fortran_order_parameter_falls_back(_count_fused):
    """A non-C-contiguous parameter takes the NumPy path (the kernels need one flat view)."""
    rng = np.random.default_rng(10)
    x0 = np.asfortranarray(rng.standard_normal((5, 7)))
    grads = [rng.standard_normal((5, 7)) for _ in range(3)]
    out = {}
    for b in ("numpy", "cython"):
        p = P(x0.copy(order="F"))
        opt = Adam([p], lr=1e-2)
        with backends.use(b):
            for g in grads:
                p.grad = G(g)
                opt.step()
        out[b] = p.data
    assert _count_fused["n"] == 0
    np.testing.assert_array_equal(out["cython"], out["numpy"])


def test_mixed_dtype_grad_falls_back(_count_fused):
    p = P(np.ones(10, dtype=np.float32))
    p.grad = G(np.full(10, 0.5, dtype=np.float64))
    with backends.use("cython"):
        SGD([p], lr=0.1).step()
    assert _count_fused["n"] == 0
    np.testing.assert_allclose(p.data, 0.95)


def test_numpy_backend_never_calls_the_kernel(_count_fused):
    p = P(np.ones(100))
    opt = Adam([p], lr=1e-2)
    with backends.use("numpy"):
        for _ in range(3):
            p.grad = G(np.ones(100))
            opt.step()
    assert _count_fused["n"] == 0


@pytest.mark.parametrize("first,second", [("numpy", "cython"), ("cython", "numpy")])
@pytest.mark.parametrize("opt", ["adam_amsgrad", "adamw", "sgd_nesterov"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_state_dict_round_trip_across_paths(first, second, opt, dtype):
    """Run 3 steps on one path, checkpoint, load into a fresh optimizer, run 3 more on the other
    path: the same as 6 steps on the NumPy path alone."""
    n = 70000
    x0 = np.random.default_rng(11).standard_normal(n).astype(dtype)
    grads = _grads(n, dtype, 6, seed=12)

    def make(params):
        if opt == "adam_amsgrad":
            return Adam(params, lr=1e-2, amsgrad=True, weight_decay=0.01)
        if opt == "adamw":
            return AdamW(params, lr=1e-2, weight_decay=0.1)
        return SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)

    ref_p, _ = _run("numpy", make, x0, grads)

    p, o1 = _run(first, make, x0, grads[:3])
    sd = o1.state_dict()
    q = P(p.data.copy())
    o2 = make([q])
    o2.load_state_dict(sd)
    with backends.use(second):
        for g in grads[3:]:
            q.grad = G(g.copy())
            o2.step()
    np.testing.assert_allclose(q.data, ref_p.data, **_tol(dtype))
    if opt != "sgd_nesterov":
        assert o2.state_dict()["state"][0]["step"] == 6


def test_amsgrad_switched_on_mid_run():
    """amsgrad turned on in the param group after some steps: both paths start max(v) at v_t."""
    n = 300
    x0 = np.random.default_rng(13).standard_normal(n)
    grads = _grads(n, np.float64, 5, seed=14)
    out = {}
    for b in ("numpy", "cython"):
        p = P(x0.copy())
        opt = Adam([p], lr=1e-2)
        with backends.use(b):
            for i, g in enumerate(grads):
                if i == 2:
                    opt.param_groups[0]["amsgrad"] = True
                p.grad = G(g.copy())
                opt.step()
        out[b] = (p.data, opt.state[p]["max_exp_avg_sq"])
    np.testing.assert_allclose(out["cython"][0], out["numpy"][0], rtol=1e-12)
    np.testing.assert_allclose(out["cython"][1], out["numpy"][1], rtol=1e-12)


def test_kernel_threshold_and_threads():
    """The OpenMP split gives the same result as one thread (blocks are independent)."""
    n = _cpu.optim_parallel_threshold() + 17
    rng = np.random.default_rng(15)
    x0, g = rng.standard_normal(n), rng.standard_normal(n)
    outs = []
    for threads in (1, 2, 3):
        p, m, v = x0.copy(), np.zeros(n), np.zeros(n)
        for _ in range(2):
            _cpu.adam_step(p, g, m, v, None, 1e-2, 0.9, 0.999, 1e-8, 0.1, 0.0447, 0.0, False,
                           threads)
        outs.append(p)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


# ------------------------------------------------------------------ one call per group ---

def _group(dtypes=(np.float32,), shapes=((1,), (7,), (13, 5), (128, 31), (257,)), seed=20):
    rng = np.random.default_rng(seed)
    return [P(rng.standard_normal(s).astype(dt)) for dt in dtypes for s in shapes]


def _step_group(params, opt, grads_per_step, backend):
    with backends.use(backend):
        for grads in grads_per_step:
            for p, g in zip(params, grads):
                p.grad = G(g.copy())
            opt.step()


@pytest.mark.parametrize("case", ["adam", "adamw_amsgrad", "sgd_momentum", "sgd_plain"])
def test_one_call_per_group_is_bitwise_the_per_parameter_kernels(case, _count_fused):
    """The group call (adam/sgd_step_many) against one adam_step/sgd_step call per parameter,
    and against the NumPy path: the same bits."""
    dtypes = (np.float32, np.float64)
    base = _group(dtypes)
    rng = np.random.default_rng(21)
    grads = [[rng.standard_normal(p.data.shape).astype(p.data.dtype) for p in base]
             for _ in range(STEPS)]

    def make(params):
        if case == "adam":
            return Adam(params, lr=1e-2, weight_decay=0.01)
        if case == "adamw_amsgrad":
            return AdamW(params, lr=1e-2, amsgrad=True)
        if case == "sgd_momentum":
            return SGD(params, lr=0.1, momentum=0.9, nesterov=True)
        return SGD(params, lr=0.1)

    fused = [P(p.data.copy()) for p in base]
    _step_group(fused, make(fused), grads, "cython")
    assert _count_fused["n"] == 2 * STEPS          # one call per dtype per step
    ref = [P(p.data.copy()) for p in base]
    _step_group(ref, make(ref), grads, "numpy")
    for a, b in zip(fused, ref):
        np.testing.assert_array_equal(a.data, b.data)
    # the single-parameter kernels, called by hand, one per parameter
    for i, p0 in enumerate(base):
        x = p0.data.copy().reshape(-1)
        m, v, vm = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
        for t in range(1, STEPS + 1):
            g = grads[t - 1][i].reshape(-1)
            if case == "adam":
                g = g + 0.01 * x
                _cpu.adam_step(x, g, m, v, None, 1e-2, 0.9, 0.999, 1e-8, 1 - 0.9**t,
                               np.sqrt(1 - 0.999**t), 0.0, False, 1)
            elif case == "adamw_amsgrad":
                _cpu.adam_step(x, g, m, v, vm, 1e-2, 0.9, 0.999, 1e-8, 1 - 0.9**t,
                               np.sqrt(1 - 0.999**t), 1e-2, True, 1)
            elif case == "sgd_momentum":
                _cpu.sgd_step(x, g, m, 0.1, 0.9, 0.0, True, t == 1, 1)
            else:
                _cpu.sgd_step(x, g, None, 0.1, 0.0, 0.0, False, False, 1)
        np.testing.assert_array_equal(fused[i].data.reshape(-1), x)


def test_group_with_a_misfit_parameter_runs_it_on_numpy(_count_fused):
    """An F-order parameter and a float64-grad-on-float32 parameter leave the group call; the
    others still go through it, and every result equals the NumPy path."""
    rng = np.random.default_rng(22)
    shapes = [(5, 7), (5, 7), (9,)]
    x0 = [rng.standard_normal(s) for s in shapes]
    x0[0] = np.asfortranarray(x0[0])
    x0[2] = x0[2].astype(np.float32)
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(3)]
    out = {}
    for b in ("numpy", "cython"):
        ps = [P(a.copy(order="K")) for a in x0]
        opt = Adam(ps, lr=1e-2)
        _step_group(ps, opt, grads, b)    # the float32 param gets float64 grads: NumPy path
        out[b] = (ps, opt)
    assert _count_fused["n"] == 3          # only parameter 1 was fused, once per step
    for a, b in zip(out["cython"][0], out["numpy"][0]):
        np.testing.assert_array_equal(a.data, b.data)
    assert [out["cython"][1].state[p]["step"] for p in out["cython"][0]] == [3, 3, 3]


def test_replaced_parameter_array_is_seen_by_the_cached_views():
    """load_state_dict-style replacement of p.data: the cached flat views are rebuilt."""
    p = P(np.ones(10, np.float32))
    opt = SGD([p], lr=0.5)
    with backends.use("cython"):
        p.grad = G(np.ones(10, np.float32))
        opt.step()
        np.testing.assert_array_equal(p.data, 0.5)
        p.data = np.full(10, 4.0, np.float32)
        opt.step()
        np.testing.assert_array_equal(p.data, 3.5)


def test_adam_group_cache_follows_every_change_of_the_group(_count_fused, monkeypatch):
    """From the second step the fused Adam reuses the group's flat views (_fused._AdamGroup),
    checked by identity per step: a replaced parameter array, a parameter without a gradient
    for a step, a new learning rate, a reloaded state and amsgrad switched on must each give
    what the NumPy path gives (same sequence under both backends)."""
    rng = np.random.default_rng(7)
    shapes = [(5, 3), (3,), (257,)]
    x0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    gs = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(9)]

    def run(backend):
        ps = [P(x.copy()) for x in x0]
        opt = Adam(ps, lr=1e-2)
        with backends.use(backend):
            for t, grads in enumerate(gs):
                for p, g in zip(ps, grads):
                    p.grad = G(g.copy())
                if t == 2:
                    ps[0].data = ps[0].data.copy()          # a new array object
                if t == 3:
                    ps[1].grad = None                        # skipped this step
                if t == 4:
                    opt.param_groups[0]["lr"] = 3e-3
                if t == 5:
                    opt.load_state_dict(opt.state_dict())   # new state dicts and arrays
                if t == 6:
                    opt.param_groups[0]["amsgrad"] = True
                opt.step()
        return ps, opt

    hits = []
    real_cached = _fused._adam_cached
    monkeypatch.setattr(_fused, "_adam_cached", lambda *a: hits.append(real_cached(*a)) or
                        hits[-1])
    ref_ps, ref_opt = run("numpy")
    before = _count_fused["n"]
    got_ps, got_opt = run("cython")
    assert _count_fused["n"] - before == len(gs)              # one fused call per step
    for a, b in zip(got_ps, ref_ps):
        np.testing.assert_array_equal(a.data, b.data)
    s_ref, s_got = ref_opt.state_dict()["state"], got_opt.state_dict()["state"]
    for i in s_ref:
        for k, v in s_ref[i].items():
            np.testing.assert_array_equal(s_got[i][k], v, err_msg=k)
    # steps 2, 8 and 9 reuse the views; 1 (none yet), 3-7 (each change) rebuild them
    assert hits == [False, True, False, False, False, False, False, True, True]
