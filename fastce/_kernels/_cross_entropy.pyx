# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Softmax cross-entropy kernels: class-index targets, probability targets, NLL.

One tile function per concept.  A tile (see _tiles.pxd) is visited once: the
SIMD primitives give each position's log-sum-exp and the class sums its loss
needs, the per-position losses are formed, and when a gradient is wanted it
is written over the same tile while it is still in cache.  Every variant's
gradient has the form

    g[p, c] = a_p * softmax[p, c] - w_c * (beta_p + gamma_p * y[p, c])

(minus a_target at the target entry for index targets), so one SIMD writer
serves them all; a_p, beta_p, gamma_p carry the upstream gradient and the
reduction's 1/denominator.  Per-tile loss and weight sums go to arrays that
are added in tile order: the same bits for any thread count.

Targets are checked inside the tile before they index anything; a bad one is
recorded (first flat position) and skipped, never read out of bounds.  The
gradient path validates all targets first (`check_targets`) because it may
write over the input.
"""
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset
cimport numpy as cnp
import numpy as np

from fastce._kernels._runtime cimport kernels_f32, kernels_f64
from fastce._kernels._tiles cimport Tiling, make_tiling, tile_start

cnp.import_array()

ctypedef fused floating:
    float
    double

ctypedef fused index_t:
    int32_t
    int64_t

cdef enum:
    TILE_MAX = 256


cdef struct Problem:
    const void *weight        # (C,) class weights or NULL
    double weight_total       # sum of the class weights (C without weight)
    long long ignore_index
    double eps                # label smoothing
    const void *soft_target   # probability targets, x's layout
    void *loss_out            # per-position loss (reduction="none") or NULL
    void *grad                # gradient in x's layout, or NULL
    const double *gout        # per-position upstream gradient, or NULL
    double gscale             # scalar factor of the gradient
    double *tile_loss         # OUT per tile: sum of losses
    double *tile_weight       # OUT per tile: sum of w[target], non-ignored
    Py_ssize_t *tile_bad      # OUT per tile: first invalid position or -1


cdef inline void _lse(const floating *x, Py_ssize_t n, const Tiling *tl,
                      double *lse) noexcept nogil:
    if floating is float:
        kernels_f32().tile_lse(x, n, tl.n_cls, tl.ps, tl.cs, lse)
    else:
        kernels_f64().tile_lse(x, n, tl.n_cls, tl.ps, tl.cs, lse)


cdef inline void _wdot(const floating *x, Py_ssize_t n, const Tiling *tl,
                       const floating *w, double *out) noexcept nogil:
    if floating is float:
        kernels_f32().tile_wdot(x, n, tl.n_cls, tl.ps, tl.cs, w, out)
    else:
        kernels_f64().tile_wdot(x, n, tl.n_cls, tl.ps, tl.cs, w, out)


cdef inline void _grad(const floating *x, floating *g, Py_ssize_t n, const Tiling *tl,
                       const double *lse, const double *a, const double *beta,
                       const floating *w, const floating *y,
                       const double *gamma) noexcept nogil:
    if floating is float:
        kernels_f32().tile_grad(x, g, n, tl.n_cls, tl.ps, tl.cs, lse, a, beta, w, y, gamma)
    else:
        kernels_f64().tile_grad(x, g, n, tl.n_cls, tl.ps, tl.cs, lse, a, beta, w, y, gamma)


cdef inline void _zero_position(floating *g, Py_ssize_t p, const Tiling *tl) noexcept nogil:
    cdef Py_ssize_t c
    if tl.cs == 1:
        memset(g + p * tl.ps, 0, tl.n_cls * sizeof(floating))
    else:
        for c in range(tl.n_cls):
            g[p * tl.ps + c * tl.cs] = 0


cdef inline bint _is_class(long long t, Py_ssize_t n_cls) noexcept nogil:
    return 0 <= t < n_cls


# ----------------------------------------------------------- index targets --

cdef void _index_tile(const floating *x, const index_t *target, const Problem *pb,
                      const Tiling *tl, Py_ssize_t k) noexcept nogil:
    cdef double lse[TILE_MAX]
    cdef double dot[TILE_MAX]
    cdef double a[TILE_MAX]
    cdef double beta[TILE_MAX]
    cdef Py_ssize_t first, n, p
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    cdef const floating *xt = x + base
    cdef const floating *w = <const floating *> pb.weight
    cdef floating *loss_out = <floating *> pb.loss_out
    cdef floating *grad = <floating *> pb.grad
    cdef floating *gt
    cdef Py_ssize_t C = tl.n_cls, ps = tl.ps, cs = tl.cs
    cdef double keep = 1.0 - pb.eps
    cdef double smooth = pb.eps / C if C > 0 else 0.0
    cdef bint smoothing = pb.eps > 0
    cdef double loss_sum = 0.0, weight_sum = 0.0, wt, l, s
    cdef Py_ssize_t bad = -1
    cdef long long t

    _lse(xt, n, tl, lse)
    if smoothing:
        _wdot(xt, n, tl, w, dot)
    for p in range(n):
        t = target[first + p]
        a[p] = 0.0
        beta[p] = 0.0
        if t == pb.ignore_index or not _is_class(t, C):
            if t != pb.ignore_index and bad < 0:
                bad = first + p
            if loss_out != NULL:
                loss_out[first + p] = 0
            continue
        wt = w[t] if w != NULL else 1.0
        # -w_t log p_t, and the smoothing term -(eps/C) sum_c w_c log p_c
        l = -keep * wt * (xt[p * ps + t * cs] - lse[p])
        if smoothing:
            l = l - smooth * (dot[p] - pb.weight_total * lse[p])
        loss_sum += l
        weight_sum += wt
        if loss_out != NULL:
            loss_out[first + p] = <floating> l
        if grad != NULL:
            s = pb.gscale * (pb.gout[first + p] if pb.gout != NULL else 1.0)
            a[p] = s * (keep * wt + smooth * pb.weight_total)
            beta[p] = s * smooth
    pb.tile_loss[k] = loss_sum
    pb.tile_weight[k] = weight_sum
    pb.tile_bad[k] = bad
    if grad == NULL:
        return

    gt = grad + base
    if smoothing:
        _grad(xt, gt, n, tl, lse, a, beta, w, <const floating *> NULL, NULL)
    else:
        _grad(xt, gt, n, tl, lse, a, NULL, <const floating *> NULL,
              <const floating *> NULL, NULL)
    for p in range(n):
        t = target[first + p]
        if t == pb.ignore_index or not _is_class(t, C):
            # exactly 0, even where the logits are NaN
            _zero_position(gt, p, tl)
            continue
        wt = w[t] if w != NULL else 1.0
        s = pb.gscale * (pb.gout[first + p] if pb.gout != NULL else 1.0)
        gt[p * ps + t * cs] = <floating> (gt[p * ps + t * cs] - s * keep * wt)


cdef void _nll_tile(const floating *x, const index_t *target, const Problem *pb,
                    const Tiling *tl, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t first, n, p, c
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    cdef const floating *xt = x + base
    cdef const floating *w = <const floating *> pb.weight
    cdef floating *loss_out = <floating *> pb.loss_out
    cdef floating *grad = <floating *> pb.grad
    cdef floating *gt
    cdef Py_ssize_t C = tl.n_cls, ps = tl.ps, cs = tl.cs
    cdef double loss_sum = 0.0, weight_sum = 0.0, wt, l
    cdef Py_ssize_t bad = -1
    cdef long long t

    for p in range(n):
        t = target[first + p]
        if t == pb.ignore_index or not _is_class(t, C):
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
    if grad == NULL:
        return

    # the losses above read the logits first, so grad may be x itself
    gt = grad + base
    if cs == 1:
        memset(gt, 0, n * C * sizeof(floating))
    else:
        for c in range(C):
            memset(gt + c * cs, 0, n * sizeof(floating))
    for p in range(n):
        t = target[first + p]
        if t == pb.ignore_index or not _is_class(t, C):
            continue
        wt = w[t] if w != NULL else 1.0
        gt[p * ps + t * cs] = <floating> (
            -pb.gscale * (pb.gout[first + p] if pb.gout != NULL else 1.0) * wt)


cdef void _targets_tile(const floating *x, const index_t *target, const Problem *pb,
                        const Tiling *tl, Py_ssize_t k) noexcept nogil:
    """Validate a tile's targets and sum their weights, in the same order as
    the loss tiles do (so forward and loss+grad agree to the bit)."""
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
        if not _is_class(t, tl.n_cls):
            if bad < 0:
                bad = first + p
            continue
        weight_sum += w[t] if w != NULL else 1.0
    pb.tile_weight[k] = weight_sum
    pb.tile_bad[k] = bad


cdef void _run_index(const floating *x, const index_t *target, const Problem *pb,
                     const Tiling *tl, int mode, int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    if mode == 0:
        for k in prange(tl.n_tiles, schedule='static', num_threads=n_threads):
            _index_tile(x, target, pb, tl, k)
    elif mode == 1:
        for k in prange(tl.n_tiles, schedule='static', num_threads=n_threads):
            _nll_tile(x, target, pb, tl, k)
    else:
        for k in prange(tl.n_tiles, schedule='static', num_threads=n_threads):
            _targets_tile(x, target, pb, tl, k)


# ----------------------------------------------------- probability targets --

cdef void _prob_tile(const floating *x, const floating *y, const Problem *pb,
                     const Tiling *tl, Py_ssize_t k) noexcept nogil:
    cdef double lse[TILE_MAX]
    cdef double dot[TILE_MAX]
    cdef double wyx[TILE_MAX]
    cdef double wy[TILE_MAX]
    cdef double a[TILE_MAX]
    cdef double beta[TILE_MAX]
    cdef double gamma[TILE_MAX]
    cdef Py_ssize_t first, n, p
    cdef Py_ssize_t base = tile_start(tl, k, &first, &n)
    cdef const floating *xt = x + base
    cdef const floating *yt = y + base
    cdef const floating *w = <const floating *> pb.weight
    cdef floating *loss_out = <floating *> pb.loss_out
    cdef floating *grad = <floating *> pb.grad
    cdef Py_ssize_t C = tl.n_cls
    cdef double keep = 1.0 - pb.eps
    cdef double smooth = pb.eps / C if C > 0 else 0.0
    cdef bint smoothing = pb.eps > 0
    cdef double loss_sum = 0.0, l, s

    _lse(xt, n, tl, lse)
    if floating is float:
        kernels_f32().tile_prob(xt, yt, n, C, tl.ps, tl.cs, w, wyx, wy)
    else:
        kernels_f64().tile_prob(xt, yt, n, C, tl.ps, tl.cs, w, wyx, wy)
    if smoothing:
        _wdot(xt, n, tl, w, dot)
    for p in range(n):
        # -sum_c w_c y'_c log p_c with y' = (1 - eps) y + eps / C
        l = -keep * (wyx[p] - lse[p] * wy[p])
        if smoothing:
            l = l - smooth * (dot[p] - pb.weight_total * lse[p])
        loss_sum += l
        if loss_out != NULL:
            loss_out[first + p] = <floating> l
        if grad != NULL:
            s = pb.gscale * (pb.gout[first + p] if pb.gout != NULL else 1.0)
            a[p] = s * (keep * wy[p] + smooth * pb.weight_total)
            beta[p] = s * smooth
            gamma[p] = s * keep
    pb.tile_loss[k] = loss_sum
    if grad != NULL:
        _grad(xt, grad + base, n, tl, lse, a, beta, w, yt, gamma)


cdef void _run_prob(const floating *x, const floating *y, const Problem *pb,
                    const Tiling *tl, int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    for k in prange(tl.n_tiles, schedule='static', num_threads=n_threads):
        _prob_tile(x, y, pb, tl, k)


# --------------------------------------------------------------- entries --

cdef inline void *_data(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray> a)


cdef Problem _problem(object weight, double weight_total, long long ignore_index,
                      double eps, object soft_target, object loss_out, object grad,
                      object gout, double gscale, double[::1] tile_loss,
                      double[::1] tile_weight, Py_ssize_t[::1] tile_bad):
    cdef Problem pb
    pb.weight = _data(weight)
    pb.weight_total = weight_total
    pb.ignore_index = ignore_index
    pb.eps = eps
    pb.soft_target = _data(soft_target)
    pb.loss_out = _data(loss_out)
    pb.grad = _data(grad)
    pb.gout = <const double *> _data(gout)
    pb.gscale = gscale
    pb.tile_loss = &tile_loss[0]
    pb.tile_weight = &tile_weight[0]
    pb.tile_bad = &tile_bad[0]
    return pb


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
    ``mode``: "cross_entropy", "nll" or "check" (validate targets, sum their
    weights, compute nothing else).

    Returns (sum of losses, sum of target weights, first invalid flat position
    or -1), the sums in float64 in tile order.
    """
    cdef Tiling tl = make_tiling(outer, n_cls, inner)
    cdef Py_ssize_t n_tiles = tl.n_tiles if tl.n_tiles > 0 else 1
    tile_loss = np.zeros(n_tiles, dtype=np.float64)
    tile_weight = np.zeros(n_tiles, dtype=np.float64)
    tile_bad = np.full(n_tiles, -1, dtype=np.intp)
    cdef Problem pb = _problem(weight, weight_total, ignore_index, label_smoothing,
                               None, loss_out, grad, gout, gscale,
                               tile_loss, tile_weight, tile_bad)
    cdef int m = 0 if mode == "cross_entropy" else (1 if mode == "nll" else 2)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *tp = cnp.PyArray_DATA(target)
    cdef bint f32 = x.dtype == np.float32
    cdef bint i32 = target.dtype == np.int32
    with nogil:
        if f32 and i32:
            _run_index(<const float *> xp, <const int32_t *> tp, &pb, &tl, m, n_threads)
        elif f32:
            _run_index(<const float *> xp, <const int64_t *> tp, &pb, &tl, m, n_threads)
        elif i32:
            _run_index(<const double *> xp, <const int32_t *> tp, &pb, &tl, m, n_threads)
        else:
            _run_index(<const double *> xp, <const int64_t *> tp, &pb, &tl, m, n_threads)
    return _ordered_sums(tile_loss, tile_weight, tile_bad, tl.n_tiles)


def prob_targets(cnp.ndarray x, cnp.ndarray y, object weight, double weight_total,
                 double label_smoothing, Py_ssize_t outer, Py_ssize_t n_cls,
                 Py_ssize_t inner, *, object loss_out=None, object grad=None,
                 object gout=None, double gscale=1.0, int n_threads=1):
    """Cross-entropy with probability targets ``y`` (IN, x's shape and dtype,
    C-contiguous).  Other arguments as in `index_targets`.  Returns the sum
    of the losses (float64, tile order)."""
    cdef Tiling tl = make_tiling(outer, n_cls, inner)
    cdef Py_ssize_t n_tiles = tl.n_tiles if tl.n_tiles > 0 else 1
    tile_loss = np.zeros(n_tiles, dtype=np.float64)
    tile_weight = np.zeros(n_tiles, dtype=np.float64)
    tile_bad = np.full(n_tiles, -1, dtype=np.intp)
    cdef Problem pb = _problem(weight, weight_total, -100, label_smoothing, y,
                               loss_out, grad, gout, gscale,
                               tile_loss, tile_weight, tile_bad)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef bint f32 = x.dtype == np.float32
    with nogil:
        if f32:
            _run_prob(<const float *> xp, <const float *> yp, &pb, &tl, n_threads)
        else:
            _run_prob(<const double *> xp, <const double *> yp, &pb, &tl, n_threads)
    return _ordered_sums(tile_loss, tile_weight, tile_bad, tl.n_tiles)[0]


cdef tuple _ordered_sums(double[::1] tile_loss, double[::1] tile_weight,
                         Py_ssize_t[::1] tile_bad, Py_ssize_t n_tiles):
    cdef double loss = 0.0, weight = 0.0
    cdef Py_ssize_t k, bad = -1
    for k in range(n_tiles):
        loss += tile_loss[k]
        weight += tile_weight[k]
        if bad < 0 and tile_bad[k] >= 0:
            bad = tile_bad[k]
    return loss, weight, bad


def n_tiles(Py_ssize_t outer, Py_ssize_t n_cls, Py_ssize_t inner):
    """Number of tiles the kernels split this shape into (parallel units)."""
    return make_tiling(outer, n_cls, inner).n_tiles
