# fused.pxi -- kernels that fuse what the profile showed as many small calls (included by _cpu.pyx):
#
#   gemm_bias_act        the GEMM with a bias + ReLU epilogue (Dense/Linear, the predict plan)
#   softmax_rows         a row-wise softmax (the predict plan's last layer; float32 exp vectorized, vexp.h)
#   softmax_xent         softmax cross-entropy: the mean loss and its gradient in one pass
#   adam_step_many       one Adam/AdamW step over a list of parameters in one call
#   sgd_step_many        one SGD step over a list of parameters in one call
#
# Like every kernel here: the Python caller checks dtypes, shapes and layouts; the wrappers only
# make O(1) checks that keep the cores in bounds.

from libc.math cimport exp, expf, log


# ------------------------------------------------------------------ GEMM epilogue ---

cdef void _bias_act_rows(floating* c, Py_ssize_t m, Py_ssize_t n, const floating* b,
                         int act) noexcept nogil:
    """for each row i: c[i, :] = act(c[i, :] + b)   (b may be NULL; act 1 = ReLU).

    ReLU as numpy.maximum(v, 0): v when v > 0 or v is NaN, else +0.0 (-0.0 becomes +0.0 too),
    so the result is bitwise the eager ``maximum(x @ W + b, 0)``."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef floating* row
    for i in range(m):
        row = c + i * n
        if b != NULL and act == 1:
            for j in range(n):
                v = row[j] + b[j]
                row[j] = v if (v > 0 or v != v) else <floating>0
        elif b != NULL:
            for j in range(n):
                row[j] = row[j] + b[j]
        elif act == 1:
            for j in range(n):
                v = row[j]
                row[j] = v if (v > 0 or v != v) else <floating>0


def gemm_bias_act(const floating[:, ::1] A, const floating[:, ::1] B, bint trans_a, bint trans_b,
                  const floating[::1] bias, floating[:, ::1] out, int act=0, int threads=1):
    """out = act(op(A) @ op(B) + bias): ``gemm`` with a fused epilogue.

    ``bias`` (n,) or None; ``act`` 0 = none, 1 = ReLU. Same contract as ``gemm`` otherwise. The
    GEMM runs exactly as ``gemm`` (same blocking, same bits); the epilogue then passes over C
    in the same nogil call, while C is still in cache, instead of two more NumPy passes
    (``+ b`` and ``maximum``) that each read and write all of C.
    """
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    cdef ptrdiff_t rsa, csa, rsb, csb
    cdef const floating* pa = &A[0, 0] if A.shape[0] * A.shape[1] else NULL
    cdef const floating* pb = &B[0, 0] if B.shape[0] * B.shape[1] else NULL
    cdef floating* po = &out[0, 0] if m * n else NULL
    cdef const floating* pbias = NULL
    _gemm_check("gemm_bias_act", A.shape[0], A.shape[1], B.shape[0], B.shape[1], m, n, trans_a,
                trans_b, pa, pb, po, sizeof(floating))
    if bias is not None:
        if bias.shape[0] != n:
            raise ValueError(f"gemm_bias_act: bias must have {n} entries, got {bias.shape[0]}")
        if n:
            pbias = &bias[0]
    if act not in (0, 1):
        raise ValueError(f"gemm_bias_act: act must be 0 (none) or 1 (relu), got {act}")
    cdef tgl_kernel_info K = _K
    _strides(trans_a, A.shape[1], &rsa, &csa)
    _strides(trans_b, B.shape[1], &rsb, &csb)
    if m == 0 or n == 0:
        return
    if k == 0 or m * n * k < SMALL_GEMM:
        threads = 1
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(gemm_workspace_bytes(sizeof(floating), m, n, k, threads))
        with nogil:
            gemm_core(m, n, k, pa, rsa, csa, pb, rsb, csb, po, n, False, threads, buf, &K)
            if pbias != NULL or act != 0:
                _bias_act_rows(po, m, n, pbias, act)
    finally:
        _ws_release(ws)
    return


# ------------------------------------------------------------------ softmax ---

cdef extern from "vexp.h" nogil:
    void tgl_softmax_rows_f32(int isa, float* x, ptrdiff_t m, ptrdiff_t n)

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


def softmax_rows(floating[:, ::1] x):
    """In place, per row: x = e / sum(e), e = exp(x - max(x))  (the Softmax op's formula)."""
    cdef Py_ssize_t m = x.shape[0], n = x.shape[1], i, j
    cdef floating mx, s
    cdef floating* row
    if m == 0 or n == 0:
        return
    cdef int isa = _K.isa
    if floating is float:           # vexp.h: the exp pass vectorized across all rows
        with nogil:
            tgl_softmax_rows_f32(isa, &x[0, 0], m, n)
        return
    with nogil:
        for i in range(m):
            row = &x[i, 0]
            mx = row[0]
            for j in range(1, n):
                if row[j] > mx or row[j] != row[j]:
                    mx = row[j]
            s = 0
            for j in range(n):
                row[j] = _exp(row[j] - mx)
                s = s + row[j]
            for j in range(n):
                row[j] = row[j] / s


def softmax_xent(const floating[:, ::1] z, const int64_t[::1] labels, floating[:, ::1] dz):
    """Softmax cross-entropy of logits z (N, C) and labels (N,), forward and backward in one pass.

    Per row i, with m = max_j z_ij, s = sum_j exp(z_ij - m):
        loss_i = log(s) - (z_i,y_i - m)                 (= -log softmax(z_i)[y_i])
        dz_ij  = (exp(z_ij - m) / s - [j == y_i]) / N   (= d mean_i loss_i / d z_ij)
    Returns sum_i loss_i / N (a double: the loss is summed in double), or -1.0 (nothing
    written) when a label lies outside [0, C).
    """
    cdef Py_ssize_t n = z.shape[0], c = z.shape[1], i, j
    cdef double total = 0.0, s
    cdef floating mx, inv_n, e
    cdef const floating* row
    cdef floating* drow
    if dz.shape[0] != n or dz.shape[1] != c or labels.shape[0] != n:
        raise ValueError(f"softmax_xent: shapes do not fit, got z {(n, c)}, labels "
                         f"{(labels.shape[0],)}, dz {(dz.shape[0], dz.shape[1])}")
    if n == 0 or c == 0:
        return 0.0
    for i in range(n):
        if labels[i] < 0 or labels[i] >= c:
            return -1.0        # a label out of range: the caller raises (a loss is never < 0)
    inv_n = <floating>(1.0 / n)
    with nogil:
        for i in range(n):
            row = &z[i, 0]
            drow = &dz[i, 0]
            mx = row[0]
            for j in range(1, c):
                if row[j] > mx:
                    mx = row[j]
            s = 0.0
            for j in range(c):
                e = _exp(row[j] - mx)
                drow[j] = e
                s += e
            total += log(s) - <double>(row[labels[i]] - mx)
            for j in range(c):
                drow[j] = <floating>(drow[j] / s) * inv_n
            drow[labels[i]] = drow[labels[i]] - inv_n
    return total / n


# ------------------------------------------------------------------ optimizers, all at once ---

cdef int _adam_many(floating tag, list params, list grads, list exp_avgs, list exp_avg_sqs,
                    list max_exp_avg_sqs, double lr, double beta1, double beta2, double eps,
                    list bc1, list bc2, double wd, bint amsgrad, int threads) except -1:
    cdef Py_ssize_t i, n
    cdef floating[::1] p, m, v, vm
    cdef const floating[::1] g
    cdef floating* pvm
    for i in range(len(params)):
        p = params[i]
        g = grads[i]
        m = exp_avgs[i]
        v = exp_avg_sqs[i]
        n = p.shape[0]
        if g.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
            raise ValueError(f"adam_step_many: parameter {i}: arrays of different lengths")
        if n == 0:
            continue
        pvm = NULL
        if amsgrad:
            vm = max_exp_avg_sqs[i]
            if vm.shape[0] != n:
                raise ValueError(f"adam_step_many: parameter {i}: arrays of different lengths")
            pvm = &vm[0]
        _adam_core(&p[0], &g[0], &m[0], &v[0], pvm, n, lr, beta1, beta2, eps, <double>bc1[i],
                   <double>bc2[i], wd, threads)
    return 0


def adam_step_many(list params, list grads, list exp_avgs, list exp_avg_sqs, list max_exp_avg_sqs,
                   double lr, double beta1, double beta2, double eps, list bias_corrections1,
                   list bias_corrections2_sqrt, double weight_decay_decoupled, bint amsgrad,
                   bint double_precision, int threads=1):
    """``adam_step`` on every parameter of a list in one call (bit for bit the same steps).

    Lists of 1-D C-contiguous arrays, all float64 when ``double_precision`` else all float32,
    one entry per parameter; the per-parameter bias corrections (1 - beta1^t, sqrt(1 - beta2^t))
    in ``bias_corrections*``, since each parameter keeps its own step count.
    ``max_exp_avg_sqs`` entries are None without amsgrad.
    """
    cdef Py_ssize_t count = len(params)
    if not (len(grads) == len(exp_avgs) == len(exp_avg_sqs) == len(max_exp_avg_sqs)
            == len(bias_corrections1) == len(bias_corrections2_sqrt) == count):
        raise ValueError("adam_step_many: the lists must have one entry per parameter")
    if double_precision:
        _adam_many[double](0.0, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1,
                           beta2, eps, bias_corrections1, bias_corrections2_sqrt,
                           weight_decay_decoupled, amsgrad, threads)
    else:
        _adam_many[float](0.0, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1,
                          beta2, eps, bias_corrections1, bias_corrections2_sqrt,
                          weight_decay_decoupled, amsgrad, threads)


cdef int _sgd_many(floating tag, list params, list grads, list bufs, double lr, double momentum,
                   double dampening, bint nesterov, list first_steps, int threads) except -1:
    cdef Py_ssize_t i, n
    cdef floating[::1] p, b
    cdef const floating[::1] g
    cdef floating* pb
    for i in range(len(params)):
        p = params[i]
        g = grads[i]
        n = p.shape[0]
        if g.shape[0] != n:
            raise ValueError(f"sgd_step_many: parameter {i}: arrays of different lengths")
        pb = NULL
        if bufs[i] is not None:
            b = bufs[i]
            if b.shape[0] != n:
                raise ValueError(f"sgd_step_many: parameter {i}: arrays of different lengths")
            if n:
                pb = &b[0]
        if n == 0:
            continue
        _sgd_core(&p[0], &g[0], pb, n, lr, momentum, dampening, nesterov, <bint>first_steps[i],
                  threads)
    return 0


def sgd_step_many(list params, list grads, list momentum_bufs, double lr, double momentum,
                  double dampening, bint nesterov, list first_steps, bint double_precision,
                  int threads=1):
    """``sgd_step`` on every parameter of a list in one call (bit for bit the same steps);
    ``momentum_bufs`` entries None without momentum, ``first_steps`` one bool per parameter."""
    cdef Py_ssize_t count = len(params)
    if not (len(grads) == len(momentum_bufs) == len(first_steps) == count):
        raise ValueError("sgd_step_many: the lists must have one entry per parameter")
    if double_precision:
        _sgd_many[double](0.0, params, grads, momentum_bufs, lr, momentum, dampening, nesterov,
                          first_steps, threads)
    else:
        _sgd_many[float](0.0, params, grads, momentum_bufs, lr, momentum, dampening, nesterov,
                         first_steps, threads)
