# small.pxi -- the small-GEMM entry (included by _cpu.pyx): from the Python call straight to the
# direct kernels of small_gemm.h, with nothing in between.
#
# For m*n*k <= DIRECT_MAX the FLOPs take 1-3 us, so what the general entry does around them
# (three typed-memoryview acquisitions, the workspace lock, the kernel-table copy, releasing the
# GIL) costs as much as the kernel. matmul_small instead reads the operands through the buffer
# protocol -- any strides, so transposed and non-contiguous views need no copy --, looks its
# plan up in a small per-shape cache (the direct form for this layout and ISA, and the output
# shape and dtype ready for numpy.empty), allocates the output and runs the kernel with the GIL
# held (a few microseconds at most; releasing and retaking it would cost a tenth of that).
# Anything else -- not two 2-D float32/float64 ndarrays of one dtype, inner sizes that differ,
# a larger problem, the generic ISA, a layout neither direct form reads -- returns None, and the
# caller takes the general path (which raises the op-named errors).

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_RECORDS_RO, PyBUF_RECORDS

import numpy as _np

cdef object _np_empty = _np.empty
cdef type _ndarray = _np.ndarray
cdef object _DT_F32 = _np.dtype(_np.float32)
cdef object _DT_F64 = _np.dtype(_np.float64)

cdef enum:
    _PLAN_SLOTS = 64


cdef class _SmallPlan:
    """One cached decision: for (m, n, k, layout code) the direct form, and numpy.empty's
    arguments for the output."""
    cdef Py_ssize_t m, n, k
    cdef int code, form
    cdef tuple shape
    cdef object dtype


cdef list _plans = [None] * _PLAN_SLOTS


cdef inline int _layout_code(int isa, int dsize, ptrdiff_t csa, ptrdiff_t rsb,
                             ptrdiff_t csb) noexcept:
    """What the form choice depends on besides (m, n, k): ISA, dtype and which strides are 1."""
    return ((csb == 1) | (csa == 1) << 1 | (rsb == 1) << 2 | dsize << 3 | isa << 8)


cdef _SmallPlan _plan(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, int code, int isa, int dsize,
                      ptrdiff_t csa, ptrdiff_t rsb, ptrdiff_t csb):
    """The cached plan for this shape and layout (a direct-mapped cache of _PLAN_SLOTS)."""
    cdef Py_ssize_t slot = <Py_ssize_t>((<size_t>m * 131 + <size_t>n * 31 + <size_t>k
                                         + <size_t>code * 7) % _PLAN_SLOTS)
    cdef _SmallPlan p = <_SmallPlan>_plans[slot]
    if p is not None and p.m == m and p.n == n and p.k == k and p.code == code:
        return p
    p = _SmallPlan.__new__(_SmallPlan)
    p.m, p.n, p.k, p.code = m, n, k, code
    p.form = tgl_small_form(isa, tgl_small_lanes(isa, dsize), <int>k, csa, rsb, csb)
    p.shape = (m, n)
    p.dtype = _DT_F32 if dsize == 4 else _DT_F64
    _plans[slot] = p
    return p


def small_plan_info(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, bint trans_a, bint trans_b,
                    dtype=_DT_F32):
    """Which direct form matmul_small would use for C-contiguous operands of these sizes on the
    current ISA: 'rows', 'dot' or None (the general, packed path). For tests and benchmarks."""
    cdef int dsize = 4 if _np.dtype(dtype) == _DT_F32 else 8
    cdef ptrdiff_t csa = m if trans_a else 1
    cdef ptrdiff_t rsb = 1 if trans_b else n
    cdef ptrdiff_t csb = k if trans_b else 1
    if m * n * k > DIRECT_MAX or m * n * k == 0:
        return None
    form = tgl_small_form(_K.isa, tgl_small_lanes(_K.isa, dsize), <int>k, csa, rsb, csb)
    return {TGL_SMALL_ROWS: "rows", TGL_SMALL_DOT: "dot"}.get(form)


def matmul_small(object a, object b, bint trans_a=False, bint trans_b=False):
    """op(a) @ op(b) as a new array through the direct small-GEMM kernels, or None (see above).

    a, b: 2-D numpy arrays of one dtype, float32 or float64, any strides (op = transpose when the
    flag is set). Returns a new C-contiguous (m, n) array when m*n*k <= 64**3 and a direct
    kernel reads this layout on the current ISA, else None.
    """
    if type(a) is not _ndarray or type(b) is not _ndarray:
        return None
    cdef Py_buffer va, vb, vo
    cdef Py_ssize_t m, n, k, k2, isz
    cdef ptrdiff_t rsa, csa, rsb, csb
    cdef int isa = _K.isa, dsize
    cdef char f
    cdef _SmallPlan plan
    if isa == TGL_ISA_GENERIC:
        return None
    PyObject_GetBuffer(a, &va, PyBUF_RECORDS_RO)
    try:
        PyObject_GetBuffer(b, &vb, PyBUF_RECORDS_RO)
        try:
            isz = va.itemsize
            if (va.ndim != 2 or vb.ndim != 2 or vb.itemsize != isz or va.format == NULL
                    or vb.format == NULL or va.format[1] != 0 or vb.format[1] != 0
                    or va.format[0] != vb.format[0]):
                return None
            f = va.format[0]
            if not ((f == b'f' and isz == 4) or (f == b'd' and isz == 8)):
                return None
            if (va.strides[0] % isz or va.strides[1] % isz or vb.strides[0] % isz
                    or vb.strides[1] % isz):
                return None
            dsize = <int>isz
            if trans_a:
                m, k = va.shape[1], va.shape[0]
                rsa, csa = va.strides[1] // isz, va.strides[0] // isz
            else:
                m, k = va.shape[0], va.shape[1]
                rsa, csa = va.strides[0] // isz, va.strides[1] // isz
            if trans_b:
                k2, n = vb.shape[1], vb.shape[0]
                rsb, csb = vb.strides[1] // isz, vb.strides[0] // isz
            else:
                k2, n = vb.shape[0], vb.shape[1]
                rsb, csb = vb.strides[0] // isz, vb.strides[1] // isz
            if k != k2 or m * n * k == 0 or m * n * k > DIRECT_MAX:
                return None
            plan = _plan(m, n, k, _layout_code(isa, dsize, csa, rsb, csb), isa, dsize, csa, rsb,
                         csb)
            if plan.form == TGL_SMALL_NONE:
                return None
            out = _np_empty(plan.shape, plan.dtype)
            PyObject_GetBuffer(out, &vo, PyBUF_RECORDS)
            if dsize == 4:
                tgl_small_run_f32(isa, plan.form, <int>m, <int>n, <int>k, <const float*>va.buf,
                                  rsa, csa, <const float*>vb.buf, rsb, csb, <float*>vo.buf, n, 0)
            else:
                tgl_small_run_f64(isa, plan.form, <int>m, <int>n, <int>k, <const double*>va.buf,
                                  rsa, csa, <const double*>vb.buf, rsb, csb, <double*>vo.buf, n,
                                  0)
            PyBuffer_Release(&vo)
            return out
        finally:
            PyBuffer_Release(&vb)
    finally:
        PyBuffer_Release(&va)
