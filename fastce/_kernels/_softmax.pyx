# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""log-sum-exp, log_softmax and softmax along the class axis.

Same tiling as the cross-entropy kernels: per tile one log-sum-exp pass
(the input read once from memory), then the output written while the tile
is in cache.  softmax is the cross-entropy gradient writer with a = 1.
"""
from cython.parallel cimport prange
cimport numpy as cnp
import numpy as np

from fastce._kernels._runtime cimport kernels_f32, kernels_f64
from fastce._kernels._tiles cimport Tiling, make_tiling, tile_start

cnp.import_array()

ctypedef fused floating:
    float
    double

cdef enum:
    TILE_MAX = 256
    LOGSUMEXP = 0
    LOG_SOFTMAX = 1
    SOFTMAX = 2


cdef void _tile(const floating *x, floating *out, const Tiling *tl, int what,
                Py_ssize_t k) noexcept nogil:
    cdef double lse[TILE_MAX]
    cdef double ones[TILE_MAX]
    cdef Py_ssize_t first, n, p
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    if floating is float:
        kernels_f32().tile_lse(x + base, n, tl.n_cls, tl.ps, tl.cs, lse)
    else:
        kernels_f64().tile_lse(x + base, n, tl.n_cls, tl.ps, tl.cs, lse)
    if what == LOGSUMEXP:
        for p in range(n):
            out[first + p] = <floating> lse[p]
    elif what == LOG_SOFTMAX:
        if floating is float:
            kernels_f32().tile_sub_lse(x + base, out + base, n, tl.n_cls, tl.ps, tl.cs, lse)
        else:
            kernels_f64().tile_sub_lse(x + base, out + base, n, tl.n_cls, tl.ps, tl.cs, lse)
    else:
        for p in range(n):
            ones[p] = 1.0
        if floating is float:
            kernels_f32().tile_grad(x + base, out + base, n, tl.n_cls, tl.ps, tl.cs,
                                    lse, ones, NULL, NULL, NULL, NULL)
        else:
            kernels_f64().tile_grad(x + base, out + base, n, tl.n_cls, tl.ps, tl.cs,
                                    lse, ones, NULL, NULL, NULL, NULL)


cdef void _run(const floating *x, floating *out, const Tiling *tl, int what,
               int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    for k in prange(tl.n_tiles, schedule='static', num_threads=n_threads):
        _tile(x, out, tl, what, k)


def softmax_family(cnp.ndarray x, cnp.ndarray out, str what, Py_ssize_t outer,
                   Py_ssize_t n_cls, Py_ssize_t inner, int n_threads=1):
    """Fill ``out`` (OUT) from the (outer, C, inner) C-contiguous ``x`` (IN).

    ``what``: "logsumexp" (out has outer*inner elements), "log_softmax" or
    "softmax" (out has x's shape).  Both arrays float32 or float64, same dtype.
    """
    cdef Tiling tl = make_tiling(outer, n_cls, inner)
    cdef int w = LOGSUMEXP if what == "logsumexp" else (
        LOG_SOFTMAX if what == "log_softmax" else SOFTMAX)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *op = cnp.PyArray_DATA(out)
    cdef bint f32 = x.dtype == np.float32
    with nogil:
        if f32:
            _run(<const float *> xp, <float *> op, &tl, w, n_threads)
        else:
            _run(<const double *> xp, <double *> op, &tl, w, n_threads)
