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

Targets are range-checked in step 2 before they index anything; a bad one is
recorded (first flat position) and skipped.  The gradient path validates all
targets first (mode "check") because it may write over the input.
"""
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset
from cpython.mem cimport PyMem_Free, PyMem_Malloc
cimport numpy as cnp
from fastce._kernels._runtime cimport (
    FCE_KEEP_EXP_MAX, FCE_ROW_BLOCK, FCE_TILE_MAX, fce_index_args, kernels_f32, kernels_f64,
    usable_threads)
from fastce._kernels._tiles cimport (
    Split, Tiling, chunk_start, tile_chunk, combine_chunks, make_split, make_tiling, parallel_units,
    tile_start, use_split, SPLIT_MAX_ROWS)

cnp.import_array()

ctypedef fused floating:
    float
    double

ctypedef fused index_t:
    int32_t
    int64_t

cdef enum:
    TILE_MAX = 256
    CROSS_ENTROPY = 0
    NLL = 1
    CHECK = 2


cdef struct Problem:
    Py_ssize_t n_cls
    const void *weight        # (C,) class weights or NULL
    double weight_total       # sum of the class weights (C without weight)
    long long ignore_index
    double eps                # label smoothing
    const void *soft_target   # probability targets in x's layout, or NULL
    void *loss_out            # OUT per-position loss (reduction="none") or NULL
    void *grad                # OUT gradient in x's layout (may be x), or NULL
    const double *gout        # per-position upstream gradient, or NULL
    double gscale             # scalar factor of the gradient
    double *tile_loss         # OUT per tile: sum of losses
    double *tile_weight       # OUT per tile: sum of w[target], non-ignored
    Py_ssize_t *tile_bad      # OUT per tile: first invalid position or -1
    fce_index_args index      # the above for the index-target step 2 (in C)


# --------------------------------------------------------- SIMD wrappers --

cdef inline void _lse(const floating *x, Py_ssize_t n, Py_ssize_t nc, Py_ssize_t ps,
                      Py_ssize_t cs, double *shift, double *logsum) noexcept nogil:
    if floating is float:
        kernels_f32().tile_lse(x, n, nc, ps, cs, shift, logsum)
    else:
        kernels_f64().tile_lse(x, n, nc, ps, cs, shift, logsum)


cdef inline void _wdot(const floating *x, Py_ssize_t n, Py_ssize_t nc, Py_ssize_t ps,
                       Py_ssize_t cs, const floating *w, const double *shift,
                       double *out) noexcept nogil:
    if floating is float:
        kernels_f32().tile_wdot(x, n, nc, ps, cs, w, shift, out)
    else:
        kernels_f64().tile_wdot(x, n, nc, ps, cs, w, shift, out)


cdef inline void _prob(const floating *x, const floating *y, Py_ssize_t n, Py_ssize_t nc,
                       Py_ssize_t ps, Py_ssize_t cs, const floating *w,
                       const double *shift, double *wyx, double *wy) noexcept nogil:
    if floating is float:
        kernels_f32().tile_prob(x, y, n, nc, ps, cs, w, shift, wyx, wy)
    else:
        kernels_f64().tile_prob(x, y, n, nc, ps, cs, w, shift, wyx, wy)


cdef inline void _grad(const floating *x, floating *g, Py_ssize_t n, Py_ssize_t nc,
                       Py_ssize_t ps, Py_ssize_t cs, const double *shift,
                       const double *logsum, const double *a, const double *beta,
                       const floating *w, const floating *y,
                       const double *gamma) noexcept nogil:
    if floating is float:
        kernels_f32().tile_grad(x, g, n, nc, ps, cs, shift, logsum, a, beta, w, y, gamma)
    else:
        kernels_f64().tile_grad(x, g, n, nc, ps, cs, shift, logsum, a, beta, w, y, gamma)


cdef inline double _finish_index(const floating *x, Py_ssize_t n, Py_ssize_t ps,
                                 Py_ssize_t cs, const Problem *pb, Py_ssize_t first,
                                 const double *shift, const double *logsum,
                                 const double *dot, double *a, double *beta,
                                 double *weight_sum, Py_ssize_t *bad) noexcept nogil:
    """Step 2 of class-index targets: returns the positions' loss sum; bad:
    first out-of-range flat position or -1."""
    if floating is float:
        return kernels_f32().tile_index_finish(x, n, ps, cs, &pb.index, first, shift,
                                               logsum, dot, a, beta, weight_sum, bad)
    return kernels_f64().tile_index_finish(x, n, ps, cs, &pb.index, first, shift, logsum,
                                           dot, a, beta, weight_sum, bad)


cdef inline bint _keeps_exp(const Tiling *tl, Py_ssize_t n) noexcept nogil:
    """Whether a loss + gradient tile of n positions can keep its
    exponentials for the gradient (contiguous rows that fit the buffer)."""
    return (tl.cs == 1 and tl.ps == tl.n_cls and 1 < tl.n_cls <= FCE_ROW_BLOCK
            and n <= FCE_TILE_MAX and n * tl.n_cls <= FCE_KEEP_EXP_MAX)


cdef inline double _grad_kept(const floating *x, floating *g, Py_ssize_t n,
                              Py_ssize_t n_cls, const Problem *pb, Py_ssize_t first,
                              double *weight_sum, Py_ssize_t *bad) noexcept nogil:
    """Steps 1-3 of a tile of contiguous rows in one C call, each element
    exponentiated once.  Returns the loss sum; bad as in _finish_index."""
    if floating is float:
        return kernels_f32().tile_index_grad_kept(x, g, n, n_cls, &pb.index, first,
                                                  weight_sum, bad)
    return kernels_f64().tile_index_grad_kept(x, g, n, n_cls, &pb.index, first, weight_sum,
                                              bad)


cdef inline bint _ignored(long long t, const Problem *pb) noexcept nogil:
    return t == pb.ignore_index or t < 0 or t >= pb.n_cls


cdef inline double _upstream(const Problem *pb, Py_ssize_t pos) noexcept nogil:
    return pb.gscale * (pb.gout[pos] if pb.gout != NULL else 1.0)


# ------------------------------------------------- step 2: per position --

cdef inline void _fix_index_grad(floating *g, Py_ssize_t n, Py_ssize_t ps, Py_ssize_t cs,
                                 const Problem *pb, Py_ssize_t first) noexcept nogil:
    """Subtract the target term at each target entry; zero ignored positions
    exactly, even where their logits are NaN."""
    if floating is float:
        kernels_f32().tile_index_fix(g, n, ps, cs, &pb.index, first)
    else:
        kernels_f64().tile_index_fix(g, n, ps, cs, &pb.index, first)


cdef void _finish_prob(floating *loss_out, Py_ssize_t first, Py_ssize_t n,
                       const double *logsum, const double *dot, const double *wyx,
                       const double *wy, const Problem *pb, double *a, double *beta,
                       double *gamma, double *sums) noexcept nogil:
    """Losses of positions first..first+n; loss_out is pb.loss_out typed."""
    cdef double keep = 1.0 - pb.eps
    cdef double smooth = pb.eps / pb.n_cls if pb.n_cls > 0 else 0.0
    cdef double l, s
    cdef double loss_sum = 0.0   # a local: the compiler must assume a, beta, gamma alias sums
    cdef Py_ssize_t p
    for p in range(n):
        # -sum_c w_c y'_c log p_c with y' = (1 - eps) y + eps / C
        # an empty class axis sums to 0 (its logsum is -inf, and 0 * -inf
        # would be NaN); any other row keeps NaN log-probabilities NaN
        l = -keep * (wyx[p] - logsum[p] * wy[p]) if pb.n_cls > 0 else 0.0
        if pb.eps > 0 and pb.n_cls > 0:
            l = l - smooth * (dot[p] - pb.weight_total * logsum[p])
        loss_sum += l
        if loss_out != NULL:
            loss_out[first + p] = <floating> l
        if pb.grad != NULL:
            s = _upstream(pb, first + p)
            a[p] = s * (keep * wy[p] + smooth * pb.weight_total)
            beta[p] = s * smooth
            gamma[p] = s * keep
    sums[0] += loss_sum


# ------------------------------------------------------------- tiles --

cdef void _index_tile(const floating *x, const Problem *pb, const Tiling *tl,
                      Py_ssize_t k) noexcept nogil:
    """Cross-entropy of tile k; the targets are pb.index.target."""
    cdef double shift[TILE_MAX]
    cdef double logsum[TILE_MAX]
    cdef double dot[TILE_MAX]
    cdef double a[TILE_MAX]
    cdef double beta[TILE_MAX]
    cdef Py_ssize_t first, n, bad = -1
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    cdef const floating *xt = x + base
    cdef const floating *w = <const floating *> pb.weight
    cdef bint smoothing = pb.eps > 0

    if pb.grad != NULL and _keeps_exp(tl, n):
        pb.tile_loss[k] = _grad_kept(xt, (<floating *> pb.grad) + base, n, tl.n_cls, pb,
                                     first, &pb.tile_weight[k], &bad)
        pb.tile_bad[k] = bad
        return
    _lse(xt, n, tl.n_cls, tl.ps, tl.cs, shift, logsum)
    if smoothing:
        _wdot(xt, n, tl.n_cls, tl.ps, tl.cs, w, shift, dot)
    pb.tile_loss[k] = _finish_index(xt, n, tl.ps, tl.cs, pb, first, shift, logsum, dot, a,
                                    beta, &pb.tile_weight[k], &bad)
    pb.tile_bad[k] = bad
    if pb.grad == NULL:
        return
    cdef floating *gt = (<floating *> pb.grad) + base
    if smoothing:
        _grad(xt, gt, n, tl.n_cls, tl.ps, tl.cs, shift, logsum, a, beta, w,
              <const floating *> NULL, NULL)
    else:
        _grad(xt, gt, n, tl.n_cls, tl.ps, tl.cs, shift, logsum, a, NULL,
              <const floating *> NULL, <const floating *> NULL, NULL)
    _fix_index_grad(gt, n, tl.ps, tl.cs, pb, first)


cdef void _prob_tile(const floating *x, const floating *y, const Problem *pb,
                     const Tiling *tl, Py_ssize_t k) noexcept nogil:
    cdef double shift[TILE_MAX]
    cdef double logsum[TILE_MAX]
    cdef double dot[TILE_MAX]
    cdef double wyx[TILE_MAX]
    cdef double wy[TILE_MAX]
    cdef double a[TILE_MAX]
    cdef double beta[TILE_MAX]
    cdef double gamma[TILE_MAX]
    cdef double sums[2]
    cdef Py_ssize_t first, n
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    cdef const floating *xt = x + base
    cdef const floating *yt = y + base
    cdef const floating *w = <const floating *> pb.weight
    sums[0] = 0.0

    _lse(xt, n, tl.n_cls, tl.ps, tl.cs, shift, logsum)
    _prob(xt, yt, n, tl.n_cls, tl.ps, tl.cs, w, shift, wyx, wy)
    if pb.eps > 0:
        _wdot(xt, n, tl.n_cls, tl.ps, tl.cs, w, shift, dot)
    _finish_prob(<floating *> pb.loss_out, first, n, logsum, dot, wyx, wy, pb, a, beta,
                 gamma, sums)
    pb.tile_loss[k] = sums[0]
    if pb.grad != NULL:
        _grad(xt, (<floating *> pb.grad) + base, n, tl.n_cls, tl.ps, tl.cs, shift, logsum,
              a, beta, w, yt, gamma)


cdef void _nll_tile(const floating *x, const index_t *target, const Problem *pb,
                    const Tiling *tl, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t first, n, p, c
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    cdef const floating *xt = x + base
    cdef const floating *w = <const floating *> pb.weight
    cdef floating *loss_out = <floating *> pb.loss_out
    cdef floating *gt
    cdef Py_ssize_t ps = tl.ps, cs = tl.cs
    cdef double loss_sum = 0.0, weight_sum = 0.0, wt, l
    cdef Py_ssize_t bad = -1
    cdef long long t

    for p in range(n):
        t = target[first + p]
        if _ignored(t, pb):
            if t != pb.ignore_index and bad < 0:
                bad = first + p
            if loss_out != NULL:
                loss_out[first + p] = 0
            continue
        wt = w[t] if w != NULL else 1.0
        l = -wt * xt[p * ps + t * cs]
        loss_sum += l
        weight_sum += wt
        if loss_out != NULL:
            loss_out[first + p] = <floating> l
    pb.tile_loss[k] = loss_sum
    pb.tile_weight[k] = weight_sum
    pb.tile_bad[k] = bad
    if pb.grad == NULL:
        return

    # the losses above read the logits first, so grad may be x itself
    gt = (<floating *> pb.grad) + base
    if cs == 1:
        memset(gt, 0, n * tl.n_cls * sizeof(floating))
    else:
        for c in range(tl.n_cls):
            memset(gt + c * cs, 0, n * sizeof(floating))
    for p in range(n):
        t = target[first + p]
        if not _ignored(t, pb):
            wt = w[t] if w != NULL else 1.0
            gt[p * ps + t * cs] = <floating> (-_upstream(pb, first + p) * wt)


cdef void _check_tile(const floating *x, const index_t *target, const Problem *pb,
                      const Tiling *tl, Py_ssize_t k) noexcept nogil:
    """Validate a tile's targets and sum their weights, in the order the loss
    tiles use (so forward and loss + gradient agree to the bit)."""
    cdef const floating *w = <const floating *> pb.weight
    cdef Py_ssize_t first, n, p
    tile_start(tl, k, &first, &n)
    cdef double weight_sum = 0.0
    cdef Py_ssize_t bad = -1
    cdef long long t
    for p in range(n):
        t = target[first + p]
        if t == pb.ignore_index:
            continue
        if _ignored(t, pb):
            if bad < 0:
                bad = first + p
            continue
        weight_sum += w[t] if w != NULL else 1.0
    pb.tile_weight[k] = weight_sum
    pb.tile_bad[k] = bad


cdef void _run_tiles(const floating *x, const index_t *target, const Problem *pb,
                     const Tiling *tl, int mode, int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    if mode == CROSS_ENTROPY:
        for k in prange(tl.n_tiles, schedule='dynamic', num_threads=n_threads,
                       chunksize=tile_chunk(tl.n_tiles, n_threads)):
            _index_tile(x, pb, tl, k)
    elif mode == NLL:
        for k in prange(tl.n_tiles, schedule='dynamic', num_threads=n_threads,
                       chunksize=tile_chunk(tl.n_tiles, n_threads)):
            _nll_tile(x, target, pb, tl, k)
    else:
        for k in prange(tl.n_tiles, schedule='dynamic', num_threads=n_threads,
                       chunksize=tile_chunk(tl.n_tiles, n_threads)):
            _check_tile(x, target, pb, tl, k)


cdef void _run_prob_tiles(const floating *x, const floating *y, const Problem *pb,
                          const Tiling *tl, int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    for k in prange(tl.n_tiles, schedule='dynamic', num_threads=n_threads,
                       chunksize=tile_chunk(tl.n_tiles, n_threads)):
        _prob_tile(x, y, pb, tl, k)


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


cdef void _chunk_stats(const floating *x, const floating *y, const Problem *pb,
                       const Split *sp, Py_ssize_t k, double *scratch) noexcept nogil:
    """Step 1 on class chunk k (its own function: prange bodies must not
    assign locals through pointers, which Cython would leave shared)."""
    cdef const floating *w = <const floating *> pb.weight
    cdef Py_ssize_t r, c0, n, c
    cdef Py_ssize_t off = chunk_start(sp, k, &r, &c0, &n)
    cdef Py_ssize_t nk = sp.n_chunks
    cdef const floating *wc = (w + c0) if w != NULL else NULL
    cdef double wsum = 0.0
    _lse(x + off, 1, n, n, 1, &scratch[CHUNK_SHIFT * nk + k], &scratch[CHUNK_LOGSUM * nk + k])
    scratch[CHUNK_DOT * nk + k] = 0.0
    scratch[CHUNK_WYX * nk + k] = 0.0
    scratch[CHUNK_WY * nk + k] = 0.0
    if pb.eps > 0:
        _wdot(x + off, 1, n, n, 1, wc, &scratch[CHUNK_SHIFT * nk + k],
              &scratch[CHUNK_DOT * nk + k])
        if wc != NULL:
            for c in range(n):
                wsum += wc[c]
        else:
            wsum = <double> n
    scratch[CHUNK_WEIGHT * nk + k] = wsum
    if y != NULL:
        _prob(x + off, y + off, 1, n, n, 1, wc, &scratch[CHUNK_SHIFT * nk + k],
              &scratch[CHUNK_WYX * nk + k], &scratch[CHUNK_WY * nk + k])


cdef void _split_stats(const floating *x, const floating *y, const Problem *pb,
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


cdef void _chunk_write(const floating *x, const floating *y, const Problem *pb,
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
        _grad(x + off, g + off, 1, n, n, 1, &shift[r], &logsum[r], &a[r], &beta[r], wc,
              y + off, &gamma[r])
    elif pb.eps > 0:
        _grad(x + off, g + off, 1, n, n, 1, &shift[r], &logsum[r], &a[r], &beta[r], wc,
              <const floating *> NULL, NULL)
    else:
        _grad(x + off, g + off, 1, n, n, 1, &shift[r], &logsum[r], &a[r], NULL,
              <const floating *> NULL, <const floating *> NULL, NULL)


cdef void _split_write(const floating *x, const floating *y, const Problem *pb,
                       const Split *sp, const double *shift, const double *logsum,
                       const double *a, const double *beta, const double *gamma,
                       int n_threads) noexcept nogil:
    """Step 3 on every class chunk in parallel."""
    cdef Py_ssize_t k
    for k in prange(sp.n_chunks, schedule='dynamic', num_threads=n_threads):
        _chunk_write(x, y, pb, sp, k, shift, logsum, a, beta, gamma)


cdef void _run_split(const floating *x, const floating *y,
                     const Problem *pb, const Split *sp, double *scratch,
                     int n_threads) noexcept nogil:
    """Index targets (y == NULL) or probability targets over a few huge rows.
    scratch: CHUNK_STATS * n_chunks doubles."""
    cdef double shift[SPLIT_MAX_ROWS]
    cdef double logsum[SPLIT_MAX_ROWS]
    cdef double dot[SPLIT_MAX_ROWS]
    cdef double wyx[SPLIT_MAX_ROWS]
    cdef double wy[SPLIT_MAX_ROWS]
    cdef double a[SPLIT_MAX_ROWS]
    cdef double beta[SPLIT_MAX_ROWS]
    cdef double gamma[SPLIT_MAX_ROWS]
    cdef double sums[2]
    cdef Py_ssize_t bad = -1
    sums[0] = 0.0
    sums[1] = 0.0
    _split_stats(x, y, pb, sp, scratch, n_threads)
    _split_combine(sp, scratch, shift, logsum, dot, wyx, wy)
    if y == NULL:
        sums[0] = _finish_index(x, sp.rows, sp.n_cls, 1, pb, 0, shift, logsum, dot, a, beta,
                                &sums[1], &bad)
    else:
        _finish_prob(<floating *> pb.loss_out, 0, sp.rows, logsum, dot, wyx, wy, pb, a,
                     beta, gamma, sums)
    pb.tile_loss[0] = sums[0]
    pb.tile_weight[0] = sums[1]
    pb.tile_bad[0] = bad
    if pb.grad == NULL:
        return
    _split_write(x, y, pb, sp, shift, logsum, a, beta, gamma, n_threads)
    if y == NULL:
        _fix_index_grad(<floating *> pb.grad, sp.rows, sp.n_cls, 1, pb, 0)


# --------------------------------------------------------------- entries --

cdef inline void *_data(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray> a)


cdef struct TileSums:
    # one allocation per call: n per-tile loss and weight sums, n first-bad
    # positions, and the split path's chunk statistics
    void *block
    double *loss
    double *weight
    Py_ssize_t *bad
    double *scratch


cdef TileSums _tile_sums(Py_ssize_t n_tiles, Py_ssize_t n_scratch) except *:
    cdef TileSums ts
    cdef Py_ssize_t k
    ts.block = PyMem_Malloc((2 * n_tiles + n_scratch) * sizeof(double)
                            + n_tiles * sizeof(Py_ssize_t))
    if ts.block == NULL:
        raise MemoryError()
    ts.loss = <double *> ts.block
    ts.weight = ts.loss + n_tiles
    ts.scratch = ts.weight + n_tiles
    ts.bad = <Py_ssize_t *> (ts.scratch + n_scratch)
    for k in range(n_tiles):
        ts.loss[k] = 0.0
        ts.weight[k] = 0.0
        ts.bad[k] = -1
    return ts


def index_targets(cnp.ndarray x, cnp.ndarray target, object weight, double weight_total,
                  long long ignore_index, double label_smoothing,
                  Py_ssize_t outer, Py_ssize_t n_cls, Py_ssize_t inner, *,
                  object loss_out=None, object grad=None, object gout=None,
                  double gscale=1.0, int n_threads=1, str mode="cross_entropy"):
    """Cross-entropy / NLL with class-index targets over an (outer, C, inner)
    C-contiguous ``x`` (IN) and ``target`` (IN, int32/int64, outer*inner).

    ``weight`` (IN): (C,) of x's dtype or None.  ``loss_out`` (OUT): x's dtype,
    one per position, or None.  ``grad`` (OUT): x's shape and dtype (may be x)
    or None.  ``gout`` (IN): float64 per-position upstream gradient or None.
    ``mode``: "cross_entropy", "nll" or "check" (validate targets and sum
    their weights only).

    Returns (sum of losses, sum of target weights, first invalid flat
    position or -1); the sums are float64, added in tile order.
    """
    cdef int m = CROSS_ENTROPY if mode == "cross_entropy" else (
        NLL if mode == "nll" else CHECK)
    cdef bint split = m == CROSS_ENTROPY and use_split(outer, n_cls, inner)
    cdef Tiling tl = make_tiling(outer, n_cls, inner)
    cdef Split sp = make_split(outer, n_cls)
    cdef Py_ssize_t n_tiles = 1 if split else max(tl.n_tiles, 1)
    cdef Problem pb
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *tp = cnp.PyArray_DATA(target)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    # int32 or int64 (index_target): the item size tells them apart on every
    # platform, where the type number of a 32-bit int may be NPY_INT or NPY_LONG
    cdef bint i32 = cnp.PyArray_ITEMSIZE(target) == 4
    n_threads = usable_threads(n_threads)
    cdef TileSums ts = _tile_sums(n_tiles, CHUNK_STATS * sp.n_chunks if split else 0)
    try:
        pb = _problem(n_cls, weight, weight_total, ignore_index, label_smoothing,
                      None, loss_out, grad, gout, gscale, &ts)
        pb.index.target = tp
        pb.index.target_is_64 = not i32
        with nogil:
            if split:
                if f32:
                    _run_split(<const float *> xp, <const float *> NULL, &pb, &sp,
                               ts.scratch, n_threads)
                else:
                    _run_split(<const double *> xp, <const double *> NULL, &pb, &sp,
                               ts.scratch, n_threads)
            elif f32 and i32:
                _run_tiles(<const float *> xp, <const int32_t *> tp, &pb, &tl, m, n_threads)
            elif f32:
                _run_tiles(<const float *> xp, <const int64_t *> tp, &pb, &tl, m, n_threads)
            elif i32:
                _run_tiles(<const double *> xp, <const int32_t *> tp, &pb, &tl, m, n_threads)
            else:
                _run_tiles(<const double *> xp, <const int64_t *> tp, &pb, &tl, m, n_threads)
        return _ordered_sums(&ts, 1 if split else tl.n_tiles)
    finally:
        PyMem_Free(ts.block)


def prob_targets(cnp.ndarray x, cnp.ndarray y, object weight, double weight_total,
                 double label_smoothing, Py_ssize_t outer, Py_ssize_t n_cls,
                 Py_ssize_t inner, *, object loss_out=None, object grad=None,
                 object gout=None, double gscale=1.0, int n_threads=1):
    """Cross-entropy with probability targets ``y`` (IN, x's shape and dtype,
    C-contiguous).  Other arguments as in `index_targets`.  Returns the sum
    of the losses (float64, tile order)."""
    cdef bint split = use_split(outer, n_cls, inner)
    cdef Tiling tl = make_tiling(outer, n_cls, inner)
    cdef Split sp = make_split(outer, n_cls)
    cdef Py_ssize_t n_tiles = 1 if split else max(tl.n_tiles, 1)
    cdef Problem pb
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    n_threads = usable_threads(n_threads)
    cdef TileSums ts = _tile_sums(n_tiles, CHUNK_STATS * sp.n_chunks if split else 0)
    try:
        pb = _problem(n_cls, weight, weight_total, -100, label_smoothing, y,
                      loss_out, grad, gout, gscale, &ts)
        with nogil:
            if split and f32:
                _run_split(<const float *> xp, <const float *> yp,
                           &pb, &sp, ts.scratch, n_threads)
            elif split:
                _run_split(<const double *> xp, <const double *> yp,
                           &pb, &sp, ts.scratch, n_threads)
            elif f32:
                _run_prob_tiles(<const float *> xp, <const float *> yp, &pb, &tl, n_threads)
            else:
                _run_prob_tiles(<const double *> xp, <const double *> yp, &pb, &tl,
                                n_threads)
        return _ordered_sums(&ts, 1 if split else tl.n_tiles)[0]
    finally:
        PyMem_Free(ts.block)


cdef Problem _problem(Py_ssize_t n_cls, object weight, double weight_total,
                      long long ignore_index, double eps, object soft_target,
                      object loss_out, object grad, object gout, double gscale,
                      const TileSums *ts):
    cdef Problem pb
    pb.n_cls = n_cls
    pb.weight = _data(weight)
    pb.weight_total = weight_total
    pb.ignore_index = ignore_index
    pb.eps = eps
    pb.soft_target = _data(soft_target)
    pb.loss_out = _data(loss_out)
    pb.grad = _data(grad)
    pb.gout = <const double *> _data(gout)
    pb.gscale = gscale
    pb.tile_loss = ts.loss
    pb.tile_weight = ts.weight
    pb.tile_bad = ts.bad
    pb.index.target = NULL
    pb.index.target_is_64 = 1
    pb.index.n_cls = n_cls
    pb.index.ignore_index = ignore_index
    pb.index.weight = pb.weight
    pb.index.weight_total = weight_total
    pb.index.eps = eps
    pb.index.loss_out = pb.loss_out
    pb.index.want_grad = pb.grad != NULL
    pb.index.gout = pb.gout
    pb.index.gscale = gscale
    return pb


cdef tuple _ordered_sums(const TileSums *ts, Py_ssize_t n_tiles):
    cdef double loss = 0.0, weight = 0.0
    cdef Py_ssize_t k, bad = -1
    for k in range(n_tiles):
        loss += ts.loss[k]
        weight += ts.weight[k]
        if bad < 0 and ts.bad[k] >= 0:
            bad = ts.bad[k]
    return loss, weight, bad


def n_units(Py_ssize_t outer, Py_ssize_t n_cls, Py_ssize_t inner):
    """Number of independent work units (tiles or class chunks) of a shape:
    the most threads a call on it can use."""
    return parallel_units(outer, n_cls, inner)
