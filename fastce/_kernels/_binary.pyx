# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Binary cross-entropy kernels, on logits and on probabilities.

Elementwise losses over an input seen as (rows, cols), cols its last axis.
weight / pos_weight / grad_output arrive as a base pointer, a row stride and
a column step of 0 or 1 (0: broadcast), so per-class pos_weight, per-row and
full weights need no expanded copy.  Work is cut into the fixed tiles of
_tiles.pxd's BinaryTiling (runs of rows, or column chunks of one long row),
each summing its losses in float64; tile sums are added in tile order, so
the total does not depend on the thread count.
"""
from cython.parallel cimport prange
from cpython.mem cimport PyMem_Free, PyMem_Malloc
cimport numpy as cnp

from fastce._kernels._runtime cimport (
    floating, simd_bce_logits, simd_bce_prob, simd_binary_grad_hess, simd_first_outside_unit,
    simd_sigmoid_focal)
from fastce._kernels._tiles cimport (
    BinaryTiling, binary_tile_span, make_binary_tiling, threads_for, tile_chunk)

cnp.import_array()

cdef enum Loss:
    # what a call computes on each tile
    BCE_LOGITS
    BCE_PROBS
    SIGMOID_FOCAL
    GRAD_HESS       # gradient and Hessian (boosting): BCE with logits, or focal
    CHECK_UNIT      # the first element of x outside [0, 1]


cdef struct Operand:
    const void *data      # NULL: absent (all ones)
    Py_ssize_t row_stride
    Py_ssize_t col_step   # 0 or 1


cdef struct BinaryArgs:
    bint flat             # every operand reads alike over whole rows as a span
    Operand weight, pos_weight, gout
    double gscale
    double alpha, gamma   # the sigmoid focal loss's
    bint focal            # GRAD_HESS of the sigmoid focal loss (else BCE with logits)
    double hess_scale, hess_floor
    void *hess            # OUT x's shape (GRAD_HESS), or NULL
    void *loss_out        # OUT x's shape, or NULL
    void *grad            # OUT x's shape (may be x), or NULL
    double *tile_loss     # OUT per tile
    Py_ssize_t *tile_bad  # OUT per tile (probability check)


cdef inline const floating *_at(const Operand *op, Py_ssize_t r, Py_ssize_t c,
                                const floating *dummy) noexcept nogil:
    if op.data == NULL:
        return NULL
    return (<const floating *> op.data) + r * op.row_stride + c * op.col_step


cdef inline bint _flat(const Operand *op, Py_ssize_t cols) noexcept nogil:
    """Whether the operand reads the same way over a run of whole rows seen
    as one flat span: absent, one broadcast value, or full (x's layout)."""
    return op.data == NULL or (op.col_step == 0 and op.row_stride == 0) or (
        op.col_step == 1 and op.row_stride == cols)


cdef void _tile(const floating *x, const floating *y, const BinaryArgs *pb,
                const BinaryTiling *bt, Loss loss, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t r0, r1, c0, c1, r, off, n
    cdef double total = 0.0
    cdef const floating *w
    cdef const floating *pw
    cdef const floating *go
    cdef floating *lo
    cdef floating *g
    cdef Py_ssize_t bad = -1, i
    cdef floating gscale = <floating> pb.gscale
    binary_tile_span(bt, k, &r0, &r1, &c0, &c1)
    n = c1 - c0
    if r1 - r0 > 1 and pb.flat:
        # one call over the tile's rows: short rows (100 columns, say) would
        # otherwise pay a call per row
        n = (r1 - r0) * bt.cols
        r1 = r0 + 1
    for r in range(r0, r1):
        off = r * bt.cols + c0
        if loss == CHECK_UNIT:
            i = simd_first_outside_unit(x + off, n)
            if i >= 0:
                bad = off + i
                break
            continue
        w = _at(&pb.weight, r, c0, x)
        pw = _at(&pb.pos_weight, r, c0, x)
        go = _at(&pb.gout, r, c0, x)
        lo = (<floating *> pb.loss_out) + off if pb.loss_out != NULL else NULL
        g = (<floating *> pb.grad) + off if pb.grad != NULL else NULL
        if loss == BCE_LOGITS:
            total += simd_bce_logits(x + off, y + off, n, w, pb.weight.col_step, pw,
                                     pb.pos_weight.col_step, lo, g, go, pb.gout.col_step,
                                     gscale)
        elif loss == GRAD_HESS:
            simd_binary_grad_hess(x + off, y + off, n, w, pb.weight.col_step, pw,
                                  pb.pos_weight.col_step, g,
                                  (<floating *> pb.hess) + off, pb.hess_scale,
                                  pb.hess_floor, pb.focal, pb.alpha, pb.gamma)
        elif loss == SIGMOID_FOCAL:
            total += simd_sigmoid_focal(x + off, y + off, n, w, pb.weight.col_step, lo, g,
                                        go, pb.gout.col_step, gscale, pb.alpha, pb.gamma)
        else:
            total += simd_bce_prob(x + off, y + off, n, w, pb.weight.col_step, lo, g, go,
                                   pb.gout.col_step, gscale)
    pb.tile_loss[k] = total
    pb.tile_bad[k] = bad


cdef void _run_tiles(const floating *x, const floating *y, const BinaryArgs *pb,
                     const BinaryTiling *bt, Loss loss, int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    for k in prange(bt.n_tiles, schedule='dynamic', num_threads=n_threads,
                    chunksize=tile_chunk(bt.n_tiles, n_threads)):
        _tile(x, y, pb, bt, loss, k)


cdef Operand _operand(object spec):
    """spec: None or (array, row_stride, col_step) in elements."""
    cdef Operand op
    if spec is None:
        op.data = NULL
        op.row_stride = 0
        op.col_step = 0
    else:
        op.data = cnp.PyArray_DATA(<cnp.ndarray> spec[0])
        op.row_stride = spec[1]
        op.col_step = spec[2]
    return op


cdef object _run(Loss loss, cnp.ndarray x, cnp.ndarray y, Py_ssize_t rows,
                 Py_ssize_t cols, object weight, object pos_weight, object gout,
                 double gscale, object loss_out, object grad, int n_threads,
                 double alpha=0.0, double gamma=0.0, object hess=None,
                 double hess_scale=1.0, double hess_floor=0.0, bint focal=False):
    """Tile the call, run it with at most one thread per tile; returns the
    float64 loss sum in tile order, or for CHECK_UNIT the first bad flat
    index (-1: none)."""
    cdef BinaryTiling bt = make_binary_tiling(rows, cols)
    cdef BinaryArgs pb
    pb.weight = _operand(weight)
    pb.pos_weight = _operand(pos_weight)
    pb.gout = _operand(gout)
    pb.flat = (_flat(&pb.weight, cols) and _flat(&pb.pos_weight, cols)
               and _flat(&pb.gout, cols))
    pb.gscale = gscale
    pb.alpha = alpha
    pb.gamma = gamma
    pb.focal = focal
    pb.hess_scale = hess_scale
    pb.hess_floor = hess_floor
    pb.hess = NULL if hess is None else cnp.PyArray_DATA(<cnp.ndarray> hess)
    pb.loss_out = NULL if loss_out is None else cnp.PyArray_DATA(<cnp.ndarray> loss_out)
    pb.grad = NULL if grad is None else cnp.PyArray_DATA(<cnp.ndarray> grad)
    cdef Py_ssize_t n = bt.n_tiles if bt.n_tiles > 0 else 1
    # per-tile loss sums and first-bad positions, in one allocation
    cdef void *block = PyMem_Malloc(n * (sizeof(double) + sizeof(Py_ssize_t)))
    if block == NULL:
        raise MemoryError()
    pb.tile_loss = <double *> block
    pb.tile_bad = <Py_ssize_t *> (pb.tile_loss + n)
    cdef Py_ssize_t k
    for k in range(n):
        pb.tile_loss[k] = 0.0
        pb.tile_bad[k] = -1
    n_threads = threads_for(n_threads, bt.n_tiles)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    cdef double total = 0.0
    try:
        with nogil:
            if f32:
                _run_tiles(<const float *> xp, <const float *> yp, &pb, &bt, loss, n_threads)
            else:
                _run_tiles(<const double *> xp, <const double *> yp, &pb, &bt, loss,
                           n_threads)
        if loss == CHECK_UNIT:
            for k in range(bt.n_tiles):
                if pb.tile_bad[k] >= 0:
                    return pb.tile_bad[k]
            return -1
        for k in range(bt.n_tiles):
            total += pb.tile_loss[k]
        return total
    finally:
        PyMem_Free(block)


def bce_logits(cnp.ndarray x, cnp.ndarray y, Py_ssize_t rows, Py_ssize_t cols, *,
               object weight=None, object pos_weight=None, object gout=None,
               double gscale=1.0, object loss_out=None, object grad=None, int n_threads=1):
    """Binary cross-entropy on logits over C-contiguous ``x`` and ``y`` (IN,
    same dtype, rows*cols elements).

    ``weight`` / ``pos_weight`` / ``gout`` (IN): None or (array of x's dtype,
    row stride, column step 0/1).  ``loss_out``, ``grad`` (OUT): x's shape
    and dtype, or None; grad may be x.  ``n_threads``: the most threads.

    Returns the float64 sum of the losses in tile order.
    """
    return _run(BCE_LOGITS, x, y, rows, cols, weight, pos_weight, gout, gscale, loss_out,
                grad, n_threads)


def bce_probs(cnp.ndarray x, cnp.ndarray y, Py_ssize_t rows, Py_ssize_t cols, *,
              object weight=None, object gout=None, double gscale=1.0,
              object loss_out=None, object grad=None, int n_threads=1):
    """Binary cross-entropy on probabilities ``x`` (checked to lie in
    [0, 1] first, `first_outside_unit`); arguments as in `bce_logits`."""
    return _run(BCE_PROBS, x, y, rows, cols, weight, None, gout, gscale, loss_out, grad,
                n_threads)


def sigmoid_focal(cnp.ndarray x, cnp.ndarray y, Py_ssize_t rows, Py_ssize_t cols, *,
                  double alpha, double gamma, object weight=None, object gout=None,
                  double gscale=1.0, object loss_out=None, object grad=None,
                  int n_threads=1):
    """torchvision's sigmoid focal loss on logits ``x`` against targets
    ``y`` (alpha < 0: no alpha factor); other arguments as in `bce_logits`."""
    return _run(SIGMOID_FOCAL, x, y, rows, cols, weight, None, gout, gscale, loss_out,
                grad, n_threads, alpha, gamma)


def grad_hess(cnp.ndarray x, cnp.ndarray y, Py_ssize_t rows, Py_ssize_t cols, *,
              cnp.ndarray grad, cnp.ndarray hess, double hess_scale, double hess_floor,
              object weight=None, object pos_weight=None, object focal=None,
              int n_threads=1):
    """Gradient and Hessian of the logistic objectives (boosting) into
    ``grad`` and ``hess`` (OUT, x's shape and dtype; grad may be x, hess not):
    BCE with logits (``weight``, ``pos_weight`` as in `bce_logits`), or with
    ``focal=(alpha, gamma)`` the sigmoid focal loss.  The Hessian is
    ``max(hess_scale * d2l/dx2, hess_floor)``."""
    cdef double alpha = 0.0, gamma = 0.0
    if focal is not None:
        alpha, gamma = focal
    _run(GRAD_HESS, x, y, rows, cols, weight, None if focal is not None else pos_weight,
         None, 1.0, None, grad, n_threads, alpha, gamma, hess, hess_scale, hess_floor,
         focal is not None)


def first_outside_unit(cnp.ndarray x, Py_ssize_t rows, Py_ssize_t cols, *,
                       int n_threads=1):
    """The flat index of the first element of ``x`` (IN, C-contiguous) outside
    [0, 1], NaN included, or -1."""
    return _run(CHECK_UNIT, x, x, rows, cols, None, None, None, 1.0, None, None, n_threads)
