# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Binary cross-entropy kernels, on logits and on probabilities.

Elementwise losses over an input seen as (rows, cols), cols its last axis.
weight / pos_weight / grad_output arrive as a base pointer, a row stride and
a column step of 0 or 1 (0: broadcast), so per-class pos_weight, per-row and
full weights need no expanded copy.  Work is cut into fixed tiles of about
TILE_ELEMENTS (runs of rows, or column chunks of one long row), each summing
its losses in float64; tile sums are added in tile order, so the total does
not depend on the thread count.
"""
from cython.parallel cimport prange
from cpython.mem cimport PyMem_Free, PyMem_Malloc
cimport numpy as cnp

from fastce._kernels._runtime cimport kernels_f32, kernels_f64, usable_threads
from fastce._kernels._tiles cimport tile_chunk

cnp.import_array()

ctypedef fused floating:
    float
    double

cdef enum:
    TILE_ELEMENTS = 16384


cdef struct Operand:
    const void *data      # NULL: absent (all ones)
    Py_ssize_t row_stride
    Py_ssize_t col_step   # 0 or 1


cdef struct Problem:
    Py_ssize_t rows, cols
    bint flat             # every operand reads alike over whole rows as a span
    Py_ssize_t rows_per_tile, chunks_per_row, chunk, n_tiles
    Operand weight, pos_weight, gout
    double gscale
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


cdef void _tile(const floating *x, const floating *y, const Problem *pb, bint logits,
                bint check, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t r0, r1, c0, c1, r, off, n
    cdef double total = 0.0
    cdef const floating *w
    cdef const floating *pw
    cdef const floating *go
    cdef floating *lo
    cdef floating *g
    cdef Py_ssize_t bad = -1, i
    cdef floating gscale = <floating> pb.gscale
    if pb.chunks_per_row > 1:
        r0 = k // pb.chunks_per_row
        r1 = r0 + 1
        c0 = (k - r0 * pb.chunks_per_row) * pb.chunk
        c1 = c0 + pb.chunk if c0 + pb.chunk < pb.cols else pb.cols
    else:
        r0 = k * pb.rows_per_tile
        r1 = r0 + pb.rows_per_tile if r0 + pb.rows_per_tile < pb.rows else pb.rows
        c0 = 0
        c1 = pb.cols
    n = c1 - c0
    if r1 - r0 > 1 and pb.flat:
        # one call over the tile's rows: short rows (E: 100 columns) would
        # otherwise pay a call per row
        n = (r1 - r0) * pb.cols
        r1 = r0 + 1
    for r in range(r0, r1):
        off = r * pb.cols + c0
        if check:
            if floating is float:
                i = kernels_f32().first_outside_unit(x + off, n)
            else:
                i = kernels_f64().first_outside_unit(x + off, n)
            if i >= 0:
                bad = off + i
                break
            continue
        w = _at(&pb.weight, r, c0, x)
        pw = _at(&pb.pos_weight, r, c0, x)
        go = _at(&pb.gout, r, c0, x)
        lo = (<floating *> pb.loss_out) + off if pb.loss_out != NULL else NULL
        g = (<floating *> pb.grad) + off if pb.grad != NULL else NULL
        if logits:
            if floating is float:
                total += kernels_f32().bce_logits(x + off, y + off, n, w, pb.weight.col_step,
                                                  pw, pb.pos_weight.col_step, lo, g, go,
                                                  pb.gout.col_step, gscale)
            else:
                total += kernels_f64().bce_logits(x + off, y + off, n, w, pb.weight.col_step,
                                                  pw, pb.pos_weight.col_step, lo, g, go,
                                                  pb.gout.col_step, gscale)
        else:
            if floating is float:
                total += kernels_f32().bce_prob(x + off, y + off, n, w, pb.weight.col_step,
                                                lo, g, go, pb.gout.col_step, gscale)
            else:
                total += kernels_f64().bce_prob(x + off, y + off, n, w, pb.weight.col_step,
                                                lo, g, go, pb.gout.col_step, gscale)
    pb.tile_loss[k] = total
    pb.tile_bad[k] = bad


cdef void _run(const floating *x, const floating *y, const Problem *pb, bint logits,
               bint check, int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    for k in prange(pb.n_tiles, schedule='dynamic', num_threads=n_threads,
                   chunksize=tile_chunk(pb.n_tiles, n_threads)):
        _tile(x, y, pb, logits, check, k)


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


def binary(str kind, cnp.ndarray x, cnp.ndarray y, Py_ssize_t rows, Py_ssize_t cols, *,
           object weight=None, object pos_weight=None, object gout=None,
           double gscale=1.0, object loss_out=None, object grad=None, int n_threads=1):
    """Binary cross-entropy over C-contiguous ``x`` and ``y`` (IN, same dtype,
    rows*cols elements).

    ``kind``: "logits", "probs", or "check_probs" (find the first element of
    x outside [0, 1], NaN included; y is not read).  ``weight`` / ``pos_weight`` / ``gout`` (IN):
    None or (array of x's dtype, row stride, column step 0/1).  ``loss_out``,
    ``grad`` (OUT): x's shape and dtype, or None; grad may be x.

    Returns the float64 sum of the losses in tile order; for "check_probs"
    the flat index of the first bad element, or -1.
    """
    cdef Problem pb
    pb.rows = rows
    pb.cols = cols
    if cols >= TILE_ELEMENTS:
        pb.chunk = TILE_ELEMENTS
        pb.chunks_per_row = (cols + TILE_ELEMENTS - 1) // TILE_ELEMENTS
        pb.rows_per_tile = 1
        pb.n_tiles = rows * pb.chunks_per_row
    else:
        pb.chunk = cols
        pb.chunks_per_row = 1
        pb.rows_per_tile = TILE_ELEMENTS // cols if cols > 0 else rows
        if pb.rows_per_tile < 1:
            pb.rows_per_tile = 1
        pb.n_tiles = (rows + pb.rows_per_tile - 1) // pb.rows_per_tile if rows > 0 else 0
    pb.weight = _operand(weight)
    pb.pos_weight = _operand(pos_weight)
    pb.gout = _operand(gout)
    pb.flat = (_flat(&pb.weight, cols) and _flat(&pb.pos_weight, cols)
               and _flat(&pb.gout, cols))
    pb.gscale = gscale
    pb.loss_out = NULL if loss_out is None else cnp.PyArray_DATA(<cnp.ndarray> loss_out)
    pb.grad = NULL if grad is None else cnp.PyArray_DATA(<cnp.ndarray> grad)
    cdef Py_ssize_t n = pb.n_tiles if pb.n_tiles > 0 else 1
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
    cdef bint logits = kind == "logits"
    cdef bint check = kind == "check_probs"
    n_threads = usable_threads(n_threads)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    cdef double total = 0.0
    try:
        with nogil:
            if f32:
                _run(<const float *> xp, <const float *> yp, &pb, logits, check, n_threads)
            else:
                _run(<const double *> xp, <const double *> yp, &pb, logits, check, n_threads)
        if check:
            for k in range(pb.n_tiles):
                if pb.tile_bad[k] >= 0:
                    return pb.tile_bad[k]
            return -1
        for k in range(pb.n_tiles):
            total += pb.tile_loss[k]
        return total
    finally:
        PyMem_Free(block)
