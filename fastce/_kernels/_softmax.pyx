# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""log-sum-exp, log_softmax and softmax along the class axis.

Same tiling as the cross-entropy kernels: per tile one log-sum-exp pass
(the input read once from memory), then the output written while the tile
is in cache; softmax is the cross-entropy gradient writer with a = 1.  A few
huge rows take the split path (chunk log-sum-exps in parallel, combined per
row in chunk order, outputs written per chunk in parallel).
"""
from cython.parallel cimport prange
from libc.math cimport INFINITY, NAN
cimport numpy as cnp
import numpy as np

from fastce._kernels._runtime cimport kernels_f32, kernels_f64, usable_threads
from fastce._kernels._tiles cimport (
    Split, Tiling, chunk_start, tile_chunk, combine_chunks, make_split, make_tiling, tile_start,
    use_split)

cnp.import_array()

ctypedef fused floating:
    float
    double

cdef enum:
    TILE_MAX = 256
    LOGSUMEXP = 0
    LOG_SOFTMAX = 1
    SOFTMAX = 2


cdef inline double _inf_row_logsumexp(const floating *x, Py_ssize_t p, Py_ssize_t nc,
                                      Py_ssize_t ps, Py_ssize_t cs) noexcept nogil:
    """log-sum-exp of a row holding +inf: +inf, or NaN if it holds a NaN too
    (its logsum is NaN either way, from inf - inf)."""
    cdef Py_ssize_t c
    for c in range(nc):
        if x[p * ps + c * cs] != x[p * ps + c * cs]:
            return NAN
    return INFINITY


cdef inline void _write(const floating *x, floating *out, Py_ssize_t n, Py_ssize_t nc,
                        Py_ssize_t ps, Py_ssize_t cs, const double *shift,
                        const double *logsum, int what) noexcept nogil:
    """log_softmax or softmax of n positions; logsumexp is shift + logsum,
    +inf for a row holding +inf (as torch.logsumexp; log_softmax is NaN)."""
    cdef double ones[TILE_MAX]
    cdef Py_ssize_t p
    if what == LOGSUMEXP:
        for p in range(n):
            if shift[p] == INFINITY:
                out[p] = <floating> _inf_row_logsumexp(x, p, nc, ps, cs)
            else:
                out[p] = <floating> (shift[p] + logsum[p])
    elif what == LOG_SOFTMAX:
        if floating is float:
            kernels_f32().tile_log_softmax(x, out, n, nc, ps, cs, shift, logsum)
        else:
            kernels_f64().tile_log_softmax(x, out, n, nc, ps, cs, shift, logsum)
    else:
        for p in range(n):
            ones[p] = 1.0
        if floating is float:
            kernels_f32().tile_grad(x, out, n, nc, ps, cs, shift, logsum, ones, NULL, NULL,
                                    NULL, NULL)
        else:
            kernels_f64().tile_grad(x, out, n, nc, ps, cs, shift, logsum, ones, NULL, NULL,
                                    NULL, NULL)


cdef inline void _lse(const floating *x, Py_ssize_t n, Py_ssize_t nc, Py_ssize_t ps,
                      Py_ssize_t cs, double *shift, double *logsum) noexcept nogil:
    if floating is float:
        kernels_f32().tile_lse(x, n, nc, ps, cs, shift, logsum)
    else:
        kernels_f64().tile_lse(x, n, nc, ps, cs, shift, logsum)


cdef void _tile(const floating *x, floating *out, const Tiling *tl, int what,
                Py_ssize_t k) noexcept nogil:
    cdef double shift[TILE_MAX]
    cdef double logsum[TILE_MAX]
    cdef Py_ssize_t first, n
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    _lse(x + base, n, tl.n_cls, tl.ps, tl.cs, shift, logsum)
    if what == LOGSUMEXP:
        _write(x + base, out + first, n, tl.n_cls, tl.ps, tl.cs, shift, logsum, what)
    else:
        _write(x + base, out + base, n, tl.n_cls, tl.ps, tl.cs, shift, logsum, what)


cdef void _run_tiles(const floating *x, floating *out, const Tiling *tl, int what,
                     int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    for k in prange(tl.n_tiles, schedule='dynamic', num_threads=n_threads,
                       chunksize=tile_chunk(tl.n_tiles, n_threads)):
        _tile(x, out, tl, what, k)


cdef void _chunk(const floating *x, floating *out, const Split *sp, int what,
                 Py_ssize_t k, double *chunk_stats, const double *row_stats) noexcept nogil:
    """Chunk k: its (shift, logsum) (row_stats == NULL) or its outputs.  Its
    own function: prange bodies must not assign locals through pointers,
    which Cython would leave shared."""
    cdef Py_ssize_t r, c0, n
    cdef Py_ssize_t off = chunk_start(sp, k, &r, &c0, &n)
    if row_stats == NULL:
        _lse(x + off, 1, n, n, 1, &chunk_stats[k], &chunk_stats[sp.n_chunks + k])
    else:
        _write(x + off, out + off, 1, n, n, 1, &row_stats[r], &row_stats[sp.rows + r], what)


cdef void _run_split(const floating *x, floating *out, const Split *sp, int what,
                     double *chunk_stats, double *row_stats, int n_threads) noexcept nogil:
    """chunk_stats: shifts then logsums of the chunks; row_stats: of the rows."""
    cdef Py_ssize_t k, r
    for k in prange(sp.n_chunks, schedule='dynamic', num_threads=n_threads):
        _chunk(x, out, sp, what, k, chunk_stats, NULL)
    for r in range(sp.rows):
        combine_chunks(&chunk_stats[r * sp.chunks_per_row],
                       &chunk_stats[sp.n_chunks + r * sp.chunks_per_row],
                       sp.chunks_per_row, &row_stats[r], &row_stats[sp.rows + r])
    if what == LOGSUMEXP:
        _write(x, out, sp.rows, sp.n_cls, sp.n_cls, 1, row_stats, &row_stats[sp.rows], what)
        return
    for k in prange(sp.n_chunks, schedule='dynamic', num_threads=n_threads):
        _chunk(x, out, sp, what, k, chunk_stats, row_stats)


def softmax_family(cnp.ndarray x, cnp.ndarray out, str what, Py_ssize_t outer,
                   Py_ssize_t n_cls, Py_ssize_t inner, int n_threads=1):
    """Fill ``out`` (OUT) from the (outer, C, inner) C-contiguous ``x`` (IN).

    ``what``: "logsumexp" (out has outer*inner elements), "log_softmax" or
    "softmax" (out has x's shape).  Both arrays float32 or float64, same dtype.
    """
    cdef int w = LOGSUMEXP if what == "logsumexp" else (
        LOG_SOFTMAX if what == "log_softmax" else SOFTMAX)
    cdef bint split = use_split(outer, n_cls, inner)
    cdef Tiling tl = make_tiling(outer, n_cls, inner)
    cdef Split sp = make_split(outer, n_cls)
    cdef double[::1] scratch = np.empty(2 * (sp.n_chunks + outer) if split else 1,
                                        dtype=np.float64)
    n_threads = usable_threads(n_threads)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *op = cnp.PyArray_DATA(out)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    with nogil:
        if split and f32:
            _run_split(<const float *> xp, <float *> op, &sp, w, &scratch[0],
                       &scratch[2 * sp.n_chunks], n_threads)
        elif split:
            _run_split(<const double *> xp, <double *> op, &sp, w, &scratch[0],
                       &scratch[2 * sp.n_chunks], n_threads)
        elif f32:
            _run_tiles(<const float *> xp, <float *> op, &tl, w, n_threads)
        else:
            _run_tiles(<const double *> xp, <double *> op, &tl, w, n_threads)
