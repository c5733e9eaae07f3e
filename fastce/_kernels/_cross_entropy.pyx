# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Softmax cross-entropy kernels: class-index targets, probability targets, NLL.

Each group of positions (a tile, see _tiles.pxd) goes through three steps:

1. statistics -- the SIMD primitives of simd.h give each position's
   log-sum-exp, kept as (shift = max, logsum) so log p = (x - shift) - logsum
   never cancels, and the class sums its loss needs, reading the tile once;
2. finish -- per position: the loss, and the gradient coefficients (for
   class-index targets in C, vectorised across positions);
3. write (loss + gradient only) -- over the same tile, still in cache:

       g[p, c] = a_p * softmax[p, c] - w_c * (beta_p + gamma_p * y[p, c])

   then a_target is subtracted at the target entry of index targets and
   ignored positions are zeroed.  a, beta, gamma carry the upstream gradient
   and the reduction's 1/denominator, so one SIMD writer serves every variant.

With class-index targets, a loss + gradient tile of contiguous rows of up to
FCE_ROW_BLOCK classes runs the three steps in one C call that keeps step 1's
exponentials for step 3 (softmax = exp(x - shift) / sum), so each element is
exponentiated once; its statistics are step 1's, so the loss keeps the
forward's bits.

A few huge rows instead take the split path: step 1 runs on fixed class
chunks in parallel, the chunk statistics are combined per row in chunk
order, step 3 runs on the chunks in parallel.  Per-tile loss and weight sums
are added in tile order, so results are the same bits for any thread count.

Class-index targets are decoded once per tile in C (class, validity, target
weight; see simd_index.h, whose loss loop alone reads them raw) before they
index anything; a bad one is recorded (first flat position) and skipped.  The order of an index tile's steps is written once,
in C (tile_index in simd_index.h); this module owns the tiling, the threads
and the ordered sums.  The gradient path validates all targets first
(`check_index_targets`) because it may write over the input.
"""
from cython.parallel cimport prange
from cpython.mem cimport PyMem_Free, PyMem_Malloc
cimport numpy as cnp
from fastce._kernels._runtime cimport (
    FCE_STREAM_MIN_BYTES, FCE_TILE_MAX, fce_class_args, fce_targets, floating,
    simd_index_decode,
    simd_index_finish, simd_index_fix, simd_tile_grad, simd_tile_index, simd_tile_lse,
    simd_tile_nll, simd_tile_prob, simd_tile_wdot)
from libc.math cimport INFINITY
from fastce._kernels._tiles cimport (
    Split, Tiling, chunk_start, tile_chunk, combine_chunks, make_split, make_tiling,
    threads_for, tile_start, use_split, SPLIT_MAX_ROWS)

cnp.import_array()

# the split path decodes its rows as one tile (fce_targets holds FCE_TILE_MAX)
assert SPLIT_MAX_ROWS <= FCE_TILE_MAX

cdef enum TileStep:
    # what a call does to each tile
    CROSS_ENTROPY_INDEX   # index targets: loss (+ gradient)
    NLL                   # log-probability input: loss (+ gradient)
    CHECK_TARGETS         # validate the targets and sum their weights only
    CROSS_ENTROPY_PROB    # probability targets: loss (+ gradient)


cdef inline double _upstream(const fce_class_args *pb, Py_ssize_t pos) noexcept nogil:
    return pb.gscale * (pb.gout[pos] if pb.gout != NULL else 1.0)


# ------------------------------------------------ probability targets --

cdef void _finish_prob(floating *loss_out, Py_ssize_t first, Py_ssize_t n,
                       const double *shift, const double *logsum, const double *dot,
                       const double *wyx, const double *wy, const fce_class_args *pb,
                       double *a, double *beta, double *gamma, double *sums) noexcept nogil:
    """Losses of positions first..first+n; loss_out is pb.loss_out typed."""
    cdef double keep = 1.0 - pb.eps
    cdef double smooth = pb.eps / pb.n_cls if pb.n_cls > 0 else 0.0
    cdef bint z = pb.z_loss != 0 and pb.n_cls > 0
    cdef double l, s, lse
    cdef double loss_sum = 0.0   # a local: the compiler must assume a, beta, gamma alias sums
    cdef Py_ssize_t p
    for p in range(n):
        # -sum_c w_c y'_c log p_c with y' = (1 - eps) y + eps / C
        # an empty class axis sums to 0 (its logsum is -inf, and 0 * -inf
        # would be NaN); any other row keeps NaN log-probabilities NaN
        l = -keep * (wyx[p] - logsum[p] * wy[p]) if pb.n_cls > 0 else 0.0
        if pb.eps > 0 and pb.n_cls > 0:
            l = l - smooth * (dot[p] - pb.weight_total * logsum[p])
        if z:
            # the z-loss of a probability target: z lse^2, unweighted (the
            # position has no single class weight), averaged like its loss
            lse = shift[p] + logsum[p]
            l = l + pb.z_loss * (lse * lse)
        loss_sum += l
        if loss_out != NULL:
            loss_out[first + p] = <floating> l
        if pb.grad != NULL:
            s = _upstream(pb, first + p)
            if z:
                a[p] = s * ((keep * wy[p] + smooth * pb.weight_total)
                            + 2.0 * pb.z_loss * (shift[p] + logsum[p]))
            else:
                a[p] = s * (keep * wy[p] + smooth * pb.weight_total)
            beta[p] = s * smooth
            gamma[p] = s * keep
    sums[0] += loss_sum


cdef void _prob_tile(const floating *x, const fce_class_args *pb, const Tiling *tl,
                     Py_ssize_t k) noexcept nogil:
    """Probability targets: statistics, losses and coefficients, gradient."""
    cdef double shift[FCE_TILE_MAX]
    cdef double logsum[FCE_TILE_MAX]
    cdef double dot[FCE_TILE_MAX]
    cdef double wyx[FCE_TILE_MAX]
    cdef double wy[FCE_TILE_MAX]
    cdef double a[FCE_TILE_MAX]
    cdef double beta[FCE_TILE_MAX]
    cdef double gamma[FCE_TILE_MAX]
    cdef double sums[2]
    cdef Py_ssize_t first, n
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    cdef const floating *xt = x + base
    cdef const floating *yt = (<const floating *> pb.soft_target) + base
    cdef const floating *w = <const floating *> pb.weight
    sums[0] = 0.0

    simd_tile_lse(xt, n, tl.n_cls, tl.ps, tl.cs, shift, logsum)
    simd_tile_prob(xt, yt, n, tl.n_cls, tl.ps, tl.cs, w, shift, wyx, wy)
    if pb.eps > 0:
        simd_tile_wdot(xt, n, tl.n_cls, tl.ps, tl.cs, w, shift, dot)
    _finish_prob(<floating *> pb.loss_out, first, n, shift, logsum, dot, wyx, wy, pb, a,
                 beta, gamma, sums)
    pb.tile_loss[k] = sums[0]
    if pb.grad != NULL:
        simd_tile_grad(xt, (<floating *> pb.grad) + base, n, tl.n_cls, tl.ps, tl.cs, shift,
                       logsum, a, beta, w, yt, gamma)


# ------------------------------------------------------------- tiles --

cdef void _tile(const floating *x, const fce_class_args *pb, const Tiling *tl,
                TileStep step, Py_ssize_t k) noexcept nogil:
    """Tile k of the call; its sums go to pb.tile_*[k]."""
    cdef fce_targets decoded
    cdef Py_ssize_t first, n
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    cdef floating *g = (<floating *> pb.grad) + base if pb.grad != NULL else NULL
    if step == CROSS_ENTROPY_INDEX:
        pb.tile_loss[k] = simd_tile_index(x + base, g, n, tl.n_cls, tl.ps, tl.cs, pb, first,
                                          &pb.tile_weight[k], &pb.tile_bad[k])
    elif step == NLL:
        pb.tile_loss[k] = simd_tile_nll(x + base, g, n, tl.n_cls, tl.ps, tl.cs, pb, first,
                                        &pb.tile_weight[k], &pb.tile_bad[k])
    elif step == CHECK_TARGETS:
        simd_index_decode(x, pb, first, n, &decoded)
        pb.tile_weight[k] = decoded.weight_sum
        pb.tile_bad[k] = decoded.bad
    else:
        _prob_tile(x, pb, tl, k)


cdef void _run_tiles(const floating *x, const fce_class_args *pb, const Tiling *tl,
                     TileStep step, int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    for k in prange(tl.n_tiles, schedule='dynamic', num_threads=n_threads,
                    chunksize=tile_chunk(tl.n_tiles, n_threads)):
        _tile(x, pb, tl, step, k)


# ------------------------------------------------- split rows (huge C) --

cdef enum:
    # per-chunk statistics kept in the split path's scratch, n_chunks each
    CHUNK_SHIFT = 0
    CHUNK_LOGSUM = 1
    CHUNK_DOT = 2
    CHUNK_WEIGHT = 3
    CHUNK_WYX = 4
    CHUNK_WY = 5
    CHUNK_STATS = 6


cdef void _chunk_stats(const floating *x, const floating *y, const fce_class_args *pb,
                       const Split *sp, Py_ssize_t k, double *scratch) noexcept nogil:
    """Step 1 on class chunk k (its own function: prange bodies must not
    assign locals through pointers, which Cython would leave shared)."""
    cdef const floating *w = <const floating *> pb.weight
    cdef Py_ssize_t r, c0, n, c
    cdef Py_ssize_t off = chunk_start(sp, k, &r, &c0, &n)
    cdef Py_ssize_t nk = sp.n_chunks
    cdef const floating *wc = (w + c0) if w != NULL else NULL
    cdef double wsum = 0.0
    simd_tile_lse(x + off, 1, n, n, 1, &scratch[CHUNK_SHIFT * nk + k],
                  &scratch[CHUNK_LOGSUM * nk + k])
    scratch[CHUNK_DOT * nk + k] = 0.0
    scratch[CHUNK_WYX * nk + k] = 0.0
    scratch[CHUNK_WY * nk + k] = 0.0
    if pb.eps > 0:
        simd_tile_wdot(x + off, 1, n, n, 1, wc, &scratch[CHUNK_SHIFT * nk + k],
                       &scratch[CHUNK_DOT * nk + k])
        if wc != NULL:
            for c in range(n):
                wsum += wc[c]
        else:
            wsum = <double> n
    scratch[CHUNK_WEIGHT * nk + k] = wsum
    if y != NULL:
        simd_tile_prob(x + off, y + off, 1, n, n, 1, wc, &scratch[CHUNK_SHIFT * nk + k],
                       &scratch[CHUNK_WYX * nk + k], &scratch[CHUNK_WY * nk + k])


cdef void _split_stats(const floating *x, const floating *y, const fce_class_args *pb,
                       const Split *sp, double *scratch, int n_threads) noexcept nogil:
    """Step 1 on every class chunk in parallel."""
    cdef Py_ssize_t k
    for k in prange(sp.n_chunks, schedule='dynamic', num_threads=n_threads):
        _chunk_stats(x, y, pb, sp, k, scratch)


cdef void _split_combine(const Split *sp, const double *scratch, double *shift,
                         double *logsum, double *dot, double *wyx,
                         double *wy) noexcept nogil:
    """Per row, in chunk order: merged (shift, logsum), and the class sums
    moved from each chunk's shift to the row's."""
    cdef Py_ssize_t r, k, j
    cdef Py_ssize_t nk = sp.n_chunks
    cdef double moved
    for r in range(sp.rows):
        j = r * sp.chunks_per_row
        combine_chunks(&scratch[CHUNK_SHIFT * nk + j], &scratch[CHUNK_LOGSUM * nk + j],
                       sp.chunks_per_row, &shift[r], &logsum[r])
        dot[r] = 0.0
        wyx[r] = 0.0
        wy[r] = 0.0
        for k in range(j, j + sp.chunks_per_row):
            moved = scratch[CHUNK_SHIFT * nk + k] - shift[r]
            dot[r] += scratch[CHUNK_DOT * nk + k] + moved * scratch[CHUNK_WEIGHT * nk + k]
            wyx[r] += scratch[CHUNK_WYX * nk + k] + moved * scratch[CHUNK_WY * nk + k]
            wy[r] += scratch[CHUNK_WY * nk + k]


cdef void _chunk_write(const floating *x, const floating *y, const fce_class_args *pb,
                       const Split *sp, Py_ssize_t k, const double *shift,
                       const double *logsum, const double *a, const double *beta,
                       const double *gamma) noexcept nogil:
    """Step 3 on class chunk k."""
    cdef const floating *w = <const floating *> pb.weight
    cdef floating *g = <floating *> pb.grad
    cdef Py_ssize_t r, c0, n
    cdef Py_ssize_t off = chunk_start(sp, k, &r, &c0, &n)
    cdef const floating *wc = (w + c0) if w != NULL else NULL
    if y != NULL:
        simd_tile_grad(x + off, g + off, 1, n, n, 1, &shift[r], &logsum[r], &a[r], &beta[r],
                       wc, y + off, &gamma[r])
    elif pb.eps > 0:
        simd_tile_grad(x + off, g + off, 1, n, n, 1, &shift[r], &logsum[r], &a[r], &beta[r],
                       wc, <const floating *> NULL, NULL)
    else:
        simd_tile_grad(x + off, g + off, 1, n, n, 1, &shift[r], &logsum[r], &a[r], NULL,
                       <const floating *> NULL, <const floating *> NULL, NULL)


cdef void _split_write(const floating *x, const floating *y, const fce_class_args *pb,
                       const Split *sp, const double *shift, const double *logsum,
                       const double *a, const double *beta, const double *gamma,
                       int n_threads) noexcept nogil:
    """Step 3 on every class chunk in parallel."""
    cdef Py_ssize_t k
    for k in prange(sp.n_chunks, schedule='dynamic', num_threads=n_threads):
        _chunk_write(x, y, pb, sp, k, shift, logsum, a, beta, gamma)


cdef void _run_split(const floating *x, const fce_class_args *pb, const Split *sp,
                     double *scratch, int n_threads) noexcept nogil:
    """Index targets (pb.soft_target NULL) or probability targets over a few
    huge rows.  scratch: CHUNK_STATS * n_chunks doubles."""
    cdef double shift[SPLIT_MAX_ROWS]
    cdef double logsum[SPLIT_MAX_ROWS]
    cdef double dot[SPLIT_MAX_ROWS]
    cdef double wyx[SPLIT_MAX_ROWS]
    cdef double wy[SPLIT_MAX_ROWS]
    cdef double a[SPLIT_MAX_ROWS]
    cdef double beta[SPLIT_MAX_ROWS]
    cdef double gamma[SPLIT_MAX_ROWS]
    cdef double sums[2]
    cdef fce_targets decoded
    cdef const floating *y = <const floating *> pb.soft_target
    sums[0] = 0.0
    sums[1] = 0.0
    _split_stats(x, y, pb, sp, scratch, n_threads)
    _split_combine(sp, scratch, shift, logsum, dot, wyx, wy)
    if y == NULL:
        sums[0] = simd_index_finish(x, sp.rows, sp.n_cls, 1, pb, 0, &decoded, shift, logsum,
                                    dot, a, beta)
        sums[1] = decoded.weight_sum
        pb.tile_bad[0] = decoded.bad
    else:
        _finish_prob(<floating *> pb.loss_out, 0, sp.rows, shift, logsum, dot, wyx, wy, pb,
                     a, beta, gamma, sums)
        pb.tile_bad[0] = -1
    pb.tile_loss[0] = sums[0]
    pb.tile_weight[0] = sums[1]
    if pb.grad == NULL:
        return
    _split_write(x, y, pb, sp, shift, logsum, a, beta, gamma, n_threads)
    if y == NULL:
        simd_index_fix(<floating *> pb.grad, sp.rows, sp.n_cls, 1, pb, 0, &decoded)


# --------------------------------------------------------------- entries --

cdef inline const void *_data(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray> a)


cdef struct TileSums:
    # one allocation per call: n per-tile loss and weight sums, n first-bad
    # positions, and the split path's chunk statistics
    void *block
    double *scratch


cdef TileSums _tile_sums(fce_class_args *pb, Py_ssize_t n_tiles,
                         Py_ssize_t n_scratch) except *:
    cdef TileSums ts
    cdef Py_ssize_t k
    ts.block = PyMem_Malloc((2 * n_tiles + n_scratch) * sizeof(double)
                            + n_tiles * sizeof(Py_ssize_t))
    if ts.block == NULL:
        raise MemoryError()
    pb.tile_loss = <double *> ts.block
    pb.tile_weight = pb.tile_loss + n_tiles
    ts.scratch = pb.tile_weight + n_tiles
    pb.tile_bad = <Py_ssize_t *> (ts.scratch + n_scratch)
    for k in range(n_tiles):
        pb.tile_loss[k] = 0.0
        pb.tile_weight[k] = 0.0
        pb.tile_bad[k] = -1
    return ts


# Outputs of at least this many bytes are written with streaming stores
# (simd_stream.h); FCE_STREAM_MIN_BYTES unless a test moves it.
cdef Py_ssize_t _stream_min_bytes = FCE_STREAM_MIN_BYTES


def _set_stream_min_bytes(Py_ssize_t n):
    """Test hook: stream outputs of at least ``n`` bytes (0: all of them) and
    return the previous threshold.  Streaming never changes a result, so
    tests force it on small inputs to check that, path by path."""
    global _stream_min_bytes
    previous = _stream_min_bytes
    _stream_min_bytes = n
    return previous


cdef fce_class_args _class_args(Py_ssize_t n_cls, object target, object soft_target,
                                object weight, double weight_total,
                                long long ignore_index, double eps, double z_loss,
                                object loss_out, object grad, object gout, double gscale):
    cdef fce_class_args pb
    pb.n_cls = n_cls
    pb.target = _data(target)
    # int32 or int64 (index_target): the item size tells them apart on every
    # platform, where the type number of a 32-bit int may be NPY_INT or NPY_LONG
    pb.target_is_64 = target is not None and cnp.PyArray_ITEMSIZE(<cnp.ndarray> target) == 8
    pb.ignore_index = ignore_index
    pb.soft_target = _data(soft_target)
    pb.weight = _data(weight)
    pb.weight_total = weight_total
    pb.eps = eps
    pb.z_loss = z_loss
    pb.focal = 0
    pb.focal_gamma = 0.0
    pb.focal_alpha = NULL
    pb.loss_out = <void *> _data(loss_out)
    pb.grad = <void *> _data(grad)
    pb.stream_grad = (grad is not None
                      and cnp.PyArray_NBYTES(<cnp.ndarray> grad) >= _stream_min_bytes)
    pb.hess = NULL
    pb.hess_scale = 1.0
    pb.hess_floor = -INFINITY
    pb.gout = <const double *> _data(gout)
    pb.gscale = gscale
    pb.tile_loss = NULL
    pb.tile_weight = NULL
    pb.tile_bad = NULL
    return pb


cdef tuple _run(cnp.ndarray x, fce_class_args *pb, Py_ssize_t outer, Py_ssize_t n_cls,
                Py_ssize_t inner, TileStep step, int n_threads):
    """Tile the (outer, C, inner) call, run ``step`` on every tile with at
    most one thread per tile, and return the per-tile sums added in tile
    order: (loss sum, target-weight sum, first bad flat position or -1)."""
    cdef bint split = ((step == CROSS_ENTROPY_INDEX or step == CROSS_ENTROPY_PROB)
                       and pb.hess == NULL and use_split(outer, n_cls, inner))
    cdef Tiling tl = make_tiling(outer, n_cls, inner)
    cdef Split sp = make_split(outer, n_cls)
    cdef Py_ssize_t n_tiles = 1 if split else max(tl.n_tiles, 1)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    cdef TileSums ts = _tile_sums(pb, n_tiles, CHUNK_STATS * sp.n_chunks if split else 0)
    n_threads = threads_for(n_threads, sp.n_chunks if split else tl.n_tiles)
    cdef double loss = 0.0, weight = 0.0
    cdef Py_ssize_t k, bad = -1
    try:
        with nogil:
            if split and f32:
                _run_split(<const float *> xp, pb, &sp, ts.scratch, n_threads)
            elif split:
                _run_split(<const double *> xp, pb, &sp, ts.scratch, n_threads)
            elif f32:
                _run_tiles(<const float *> xp, pb, &tl, step, n_threads)
            else:
                _run_tiles(<const double *> xp, pb, &tl, step, n_threads)
        for k in range(1 if split else tl.n_tiles):
            loss += pb.tile_loss[k]
            weight += pb.tile_weight[k]
            if bad < 0 and pb.tile_bad[k] >= 0:
                bad = pb.tile_bad[k]
        return loss, weight, bad
    finally:
        PyMem_Free(ts.block)


def cross_entropy_index(cnp.ndarray x, cnp.ndarray target, object weight,
                        double weight_total, long long ignore_index, double label_smoothing,
                        Py_ssize_t outer, Py_ssize_t n_cls, Py_ssize_t inner, *,
                        double z_loss=0.0, object focal_gamma=None, object focal_alpha=None,
                        object loss_out=None, object grad=None, object hess=None,
                        double hess_scale=1.0, double hess_floor=-INFINITY,
                        object gout=None, double gscale=1.0, int n_threads=1):
    """Cross-entropy with class-index targets over an (outer, C, inner)
    C-contiguous ``x`` (IN) and ``target`` (IN, int32/int64, outer*inner).

    ``weight`` (IN): (C,) of x's dtype or None.  ``loss_out`` (OUT): x's dtype,
    one per position, or None.  ``grad`` (OUT): x's shape and dtype (may be x)
    or None.  ``gout`` (IN): float64 per-position upstream gradient or None.
    ``z_loss``: adds z_loss * w[target] * lse^2 per position.
    ``focal_gamma`` (a float >= 0, or None): the softmax focal loss instead,
    -alpha[t] w[t] (1 - p_t)^gamma log p_t per position, with ``focal_alpha``
    (IN): (C,) of x's dtype or None (label_smoothing and z_loss must be 0).
    ``hess`` (OUT, with ``grad``; z_loss 0): x's shape and dtype, not x --
    the Hessian's diagonal, ``max(hess_scale * d2l/dx2, hess_floor)``.
    ``n_threads``: the most threads to use (never more than the tiles).

    Returns (sum of losses, sum of target weights, first invalid flat
    position or -1); the sums are float64, added in tile order.
    """
    cdef fce_class_args pb = _class_args(n_cls, target, None, weight, weight_total,
                                         ignore_index, label_smoothing, z_loss, loss_out,
                                         grad, gout, gscale)
    if focal_gamma is not None:
        pb.focal = 1
        pb.focal_gamma = focal_gamma
        pb.focal_alpha = _data(focal_alpha)
    if hess is not None:
        pb.hess = <void *> _data(hess)
        pb.hess_scale = hess_scale
        pb.hess_floor = hess_floor
        # the two outputs are written together: their sum decides streaming
        pb.stream_grad = (grad is not None
                          and cnp.PyArray_NBYTES(<cnp.ndarray> grad)
                          + cnp.PyArray_NBYTES(<cnp.ndarray> hess) >= _stream_min_bytes)
    return _run(x, &pb, outer, n_cls, inner, CROSS_ENTROPY_INDEX, n_threads)


def nll(cnp.ndarray x, cnp.ndarray target, object weight, long long ignore_index,
        Py_ssize_t outer, Py_ssize_t n_cls, Py_ssize_t inner, *, object loss_out=None,
        object grad=None, object gout=None, double gscale=1.0, int n_threads=1):
    """Negative log-likelihood of log-probabilities ``x``; arguments and
    result as in `cross_entropy_index`."""
    cdef fce_class_args pb = _class_args(n_cls, target, None, weight, 0.0, ignore_index,
                                         0.0, 0.0, loss_out, grad, gout, gscale)
    return _run(x, &pb, outer, n_cls, inner, NLL, n_threads)


def check_index_targets(cnp.ndarray x, cnp.ndarray target, object weight,
                        long long ignore_index, Py_ssize_t outer, Py_ssize_t n_cls,
                        Py_ssize_t inner, *, int n_threads=1):
    """Validate class-index targets and sum their weights, in the order the
    loss tiles use (so forward and loss + gradient agree to the bit); ``x``
    is not read, only its dtype (the weights') and tiling.

    Returns (sum of target weights, first invalid flat position or -1).
    """
    cdef fce_class_args pb = _class_args(n_cls, target, None, weight, 0.0, ignore_index,
                                         0.0, 0.0, None, None, None, 1.0)
    _, weight_sum, bad = _run(x, &pb, outer, n_cls, inner, CHECK_TARGETS, n_threads)
    return weight_sum, bad


def cross_entropy_prob(cnp.ndarray x, cnp.ndarray y, object weight, double weight_total,
                       double label_smoothing, Py_ssize_t outer, Py_ssize_t n_cls,
                       Py_ssize_t inner, *, double z_loss=0.0, object loss_out=None,
                       object grad=None, object gout=None, double gscale=1.0,
                       int n_threads=1):
    """Cross-entropy with probability targets ``y`` (IN, x's shape and dtype,
    C-contiguous); ``z_loss`` adds z_loss * lse^2 per position.  Other
    arguments as in `cross_entropy_index`.  Returns the sum of the losses
    (float64, tile order)."""
    cdef fce_class_args pb = _class_args(n_cls, None, y, weight, weight_total, -100,
                                         label_smoothing, z_loss, loss_out, grad, gout,
                                         gscale)
    return _run(x, &pb, outer, n_cls, inner, CROSS_ENTROPY_PROB, n_threads)[0]
