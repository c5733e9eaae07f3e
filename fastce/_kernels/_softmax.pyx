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

from fastce._kernels._runtime cimport (
    FCE_TILE_MAX, floating, simd_tile_grad, simd_tile_log_softmax, simd_tile_lse)
from fastce._kernels._tiles cimport (
    Split, Tiling, chunk_start, tile_chunk, combine_chunks, make_split, make_tiling,
    threads_for, tile_start, use_split)

cnp.import_array()

cdef enum Output:
    LOGSUMEXP
    LOG_SOFTMAX
    SOFTMAX


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
                        const double *logsum, Output what) noexcept nogil:
    """log_softmax or softmax of n positions; logsumexp is shift + logsum,
    +inf for a row holding +inf (as torch.logsumexp; log_softmax is NaN)."""
    cdef double ones[FCE_TILE_MAX]
    cdef Py_ssize_t p
    if what == LOGSUMEXP:
        for p in range(n):
            if shift[p] == INFINITY:
                out[p] = <floating> _inf_row_logsumexp(x, p, nc, ps, cs)
            else:
                out[p] = <floating> (shift[p] + logsum[p])
    elif what == LOG_SOFTMAX:
        simd_tile_log_softmax(x, out, n, nc, ps, cs, shift, logsum)
    else:
        for p in range(n):
            ones[p] = 1.0
        simd_tile_grad(x, out, n, nc, ps, cs, shift, logsum, ones, NULL,
                       <const floating *> NULL, <const floating *> NULL, NULL)


cdef void _tile(const floating *x, floating *out, const Tiling *tl, Output what,
                Py_ssize_t k) noexcept nogil:
    cdef double shift[FCE_TILE_MAX]
    cdef double logsum[FCE_TILE_MAX]
    cdef Py_ssize_t first, n
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    simd_tile_lse(x + base, n, tl.n_cls, tl.ps, tl.cs, shift, logsum)
    if what == LOGSUMEXP:
        _write(x + base, out + first, n, tl.n_cls, tl.ps, tl.cs, shift, logsum, what)
    else:
        _write(x + base, out + base, n, tl.n_cls, tl.ps, tl.cs, shift, logsum, what)


cdef void _run_tiles(const floating *x, floating *out, const Tiling *tl, Output what,
                     int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    for k in prange(tl.n_tiles, schedule='dynamic', num_threads=n_threads,
                       chunksize=tile_chunk(tl.n_tiles, n_threads)):
        _tile(x, out, tl, what, k)


cdef void _chunk(const floating *x, floating *out, const Split *sp, Output what,
                 Py_ssize_t k, double *chunk_stats, const double *row_stats) noexcept nogil:
    """Chunk k: its (shift, logsum) (row_stats == NULL) or its outputs.  Its
    own function: prange bodies must not assign locals through pointers,
    which Cython would leave shared."""
    cdef Py_ssize_t r, c0, n
    cdef Py_ssize_t off = chunk_start(sp, k, &r, &c0, &n)
    if row_stats == NULL:
        simd_tile_lse(x + off, 1, n, n, 1, &chunk_stats[k], &chunk_stats[sp.n_chunks + k])
    else:
        _write(x + off, out + off, 1, n, n, 1, &row_stats[r], &row_stats[sp.rows + r], what)


cdef void _run_split(const floating *x, floating *out, const Split *sp, Output what,
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


cdef _run(cnp.ndarray x, cnp.ndarray out, Output what, Py_ssize_t outer,
          Py_ssize_t n_cls, Py_ssize_t inner, int n_threads):
    """Fill ``out`` from the (outer, C, inner) C-contiguous ``x``, at most one
    thread per tile (or class chunk of a split row)."""
    cdef bint split = use_split(outer, n_cls, inner)
    cdef Tiling tl = make_tiling(outer, n_cls, inner)
    cdef Split sp = make_split(outer, n_cls)
    cdef double[::1] scratch = np.empty(2 * (sp.n_chunks + outer) if split else 1,
                                        dtype=np.float64)
    n_threads = threads_for(n_threads, sp.n_chunks if split else tl.n_tiles)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *op = cnp.PyArray_DATA(out)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    with nogil:
        if split and f32:
            _run_split(<const float *> xp, <float *> op, &sp, what, &scratch[0],
                       &scratch[2 * sp.n_chunks], n_threads)
        elif split:
            _run_split(<const double *> xp, <double *> op, &sp, what, &scratch[0],
                       &scratch[2 * sp.n_chunks], n_threads)
        elif f32:
            _run_tiles(<const float *> xp, <float *> op, &tl, what, n_threads)
        else:
            _run_tiles(<const double *> xp, <double *> op, &tl, what, n_threads)


def logsumexp(cnp.ndarray x, cnp.ndarray out, Py_ssize_t outer, Py_ssize_t n_cls,
              Py_ssize_t inner, int n_threads=1):
    """``out`` (OUT, outer*inner elements) = log-sum-exp along the class axis
    of the (outer, C, inner) C-contiguous ``x`` (IN); same dtype, float32 or
    float64.  ``n_threads``: the most threads to use."""
    _run(x, out, LOGSUMEXP, outer, n_cls, inner, n_threads)


def log_softmax(cnp.ndarray x, cnp.ndarray out, Py_ssize_t outer, Py_ssize_t n_cls,
                Py_ssize_t inner, int n_threads=1):
    """``out`` (OUT, x's shape) = log_softmax of ``x``; as `logsumexp`."""
    _run(x, out, LOG_SOFTMAX, outer, n_cls, inner, n_threads)


def softmax(cnp.ndarray x, cnp.ndarray out, Py_ssize_t outer, Py_ssize_t n_cls,
            Py_ssize_t inner, int n_threads=1):
    """``out`` (OUT, x's shape) = softmax of ``x``; as `logsumexp`."""
    _run(x, out, SOFTMAX, outer, n_cls, inner, n_threads)
