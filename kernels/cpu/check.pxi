# check.pxi -- input checks at the speed of one read (included by _cpu.pyx).
#
# all_finite(x) answers "is every value finite?" for a C- or F-contiguous float32/float64
# ndarray in one pass with no temporary (check_kernels.h). model.predict runs it on every input
# batch, where NumPy's isfinite(x).all() costs a boolean array and a second pass: at 256 x 784
# float32 that was 3 % of the whole prediction. Anything else returns None and the caller uses
# NumPy.

cdef extern from "check_kernels.h" nogil:
    int tgl_any_nonfinite(int isa, const void* data, ptrdiff_t n, int dsize)


def all_finite(x):
    """True when every value of ``x`` is finite, False when one is NaN or +-Inf; None when
    ``x`` is not a contiguous float32/float64 ndarray (check it with NumPy instead)."""
    if type(x) is not _ndarray:
        return None
    cdef object dt = x.dtype
    cdef int dsize
    if dt is _DT_F32 or dt == _DT_F32:
        dsize = 4
    elif dt is _DT_F64 or dt == _DT_F64:
        dsize = 8
    else:
        return None
    if not (x.flags.c_contiguous or x.flags.f_contiguous):
        return None
    cdef Py_buffer view
    PyObject_GetBuffer(x, &view, PyBUF_RECORDS_RO)
    cdef ptrdiff_t n = view.len // dsize
    cdef int isa = _K.isa
    cdef int bad
    try:
        if n > (1 << 20):
            with nogil:
                bad = tgl_any_nonfinite(isa, view.buf, n, dsize)
        else:
            bad = tgl_any_nonfinite(isa, view.buf, n, dsize)
    finally:
        PyBuffer_Release(&view)
    return not bad
