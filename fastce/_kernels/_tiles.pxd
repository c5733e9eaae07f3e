# Tiling shared by every kernel module: the softmax and cross-entropy
# kernels (class tiles and split rows) and the binary losses (element tiles).
# Each kernel entry builds its tiling here and takes its thread count from
# it (`threads_for`): never more threads than tiles.
#
# An input is seen as a C-contiguous (outer, C, inner) block, the class axis in
# the middle.  With inner == 1 (class axis last) positions are rows and a tile
# is a run of rows; otherwise positions are the inner (spatial) indices of one
# outer slice and a tile is a run of them, read class by class so every load
# is contiguous: no transpose, no copy.  Tiles are fixed by the shape alone,
# so per-tile partial sums added in tile order give the same bits whatever
# the thread count -- and whichever thread ran a tile, which is why the
# kernels can schedule tiles dynamically: a thread whose core is taken by
# another process then holds up one tile, not a fixed half of the work.
from libc.math cimport INFINITY, exp, log
from fastce._kernels._runtime cimport FCE_TILE_MAX, usable_threads

cdef struct Tiling:
    Py_ssize_t n_outer       # outer slices (1 when positions are rows)
    Py_ssize_t n_pos         # positions per outer slice
    Py_ssize_t n_cls
    Py_ssize_t ps            # element stride between positions
    Py_ssize_t cs            # element stride between classes
    Py_ssize_t outer_stride  # elements between outer slices
    Py_ssize_t tile          # positions per tile
    Py_ssize_t tiles_per_outer
    Py_ssize_t n_tiles

cdef enum:
    # elements a class tile aims for: small enough that it is still in L1/L2
    # when a second pass (the gradient write) comes back to it
    CLASS_TILE_ELEMENTS = 8192
    # elements a binary-loss tile aims for (one pass, no second visit)
    BINARY_TILE_ELEMENTS = 16384


cdef inline Tiling make_tiling(Py_ssize_t outer, Py_ssize_t n_cls,
                               Py_ssize_t inner) noexcept nogil:
    cdef Tiling t
    cdef Py_ssize_t c = n_cls if n_cls > 0 else 1
    t.n_cls = n_cls
    if inner == 1:
        t.n_outer = 1
        t.n_pos = outer
        t.ps = n_cls
        t.cs = 1
        t.outer_stride = 0
        t.tile = CLASS_TILE_ELEMENTS // c
        if t.tile < 1:
            t.tile = 1
    else:
        t.n_outer = outer
        t.n_pos = inner
        t.ps = 1
        t.cs = inner
        t.outer_stride = n_cls * inner
        t.tile = (CLASS_TILE_ELEMENTS // c) // 16 * 16
        if t.tile < 16:
            t.tile = 16
    if t.tile > FCE_TILE_MAX:
        t.tile = FCE_TILE_MAX
    t.tiles_per_outer = (t.n_pos + t.tile - 1) // t.tile
    t.n_tiles = t.n_outer * t.tiles_per_outer
    return t


cdef inline Py_ssize_t tile_start(const Tiling *t, Py_ssize_t k,
                                  Py_ssize_t *first_pos,
                                  Py_ssize_t *count) noexcept nogil:
    """Element offset of tile k's (first position, class 0); sets the flat
    index of its first position and its number of positions."""
    cdef Py_ssize_t o = k // t.tiles_per_outer
    cdef Py_ssize_t p0 = (k - o * t.tiles_per_outer) * t.tile
    first_pos[0] = o * t.n_pos + p0
    count[0] = t.n_pos - p0 if t.n_pos - p0 < t.tile else t.tile
    return o * t.outer_stride + p0 * t.ps


# A few very long rows (class axis last) are cut into fixed chunks of classes
# instead, so one huge row still spreads over all threads: chunk statistics
# in parallel, combined per row in chunk order, gradient chunks in parallel.
cdef enum:
    SPLIT_MIN_CLASSES = 65536
    SPLIT_MAX_ROWS = 16      # at most FCE_TILE_MAX: the rows are decoded as one tile
    SPLIT_CHUNK = 16384


cdef struct Split:
    Py_ssize_t rows
    Py_ssize_t n_cls
    Py_ssize_t chunks_per_row
    Py_ssize_t n_chunks


cdef inline bint use_split(Py_ssize_t outer, Py_ssize_t n_cls,
                           Py_ssize_t inner) noexcept nogil:
    return inner == 1 and n_cls >= SPLIT_MIN_CLASSES and outer <= SPLIT_MAX_ROWS


cdef inline Split make_split(Py_ssize_t rows, Py_ssize_t n_cls) noexcept nogil:
    cdef Split s
    s.rows = rows
    s.n_cls = n_cls
    s.chunks_per_row = (n_cls + SPLIT_CHUNK - 1) // SPLIT_CHUNK
    s.n_chunks = rows * s.chunks_per_row
    return s


cdef inline Py_ssize_t chunk_start(const Split *s, Py_ssize_t k, Py_ssize_t *row,
                                   Py_ssize_t *first_cls,
                                   Py_ssize_t *count) noexcept nogil:
    """Element offset of chunk k; sets its row, first class and length."""
    row[0] = k // s.chunks_per_row
    first_cls[0] = (k - row[0] * s.chunks_per_row) * SPLIT_CHUNK
    count[0] = s.n_cls - first_cls[0]
    if count[0] > SPLIT_CHUNK:
        count[0] = SPLIT_CHUNK
    return row[0] * s.n_cls + first_cls[0]


cdef inline void combine_chunks(const double *shift, const double *logsum,
                                Py_ssize_t n, double *row_shift,
                                double *row_logsum) noexcept nogil:
    """Merge the (shift, logsum) of a row's n chunks, in chunk order: the row
    shift is the largest shift of a chunk that holds a finite term."""
    cdef double m = -INFINITY, s = 0.0
    cdef Py_ssize_t k
    for k in range(n):
        if logsum[k] != -INFINITY and shift[k] > m:
            m = shift[k]
    if m == -INFINITY:
        m = 0.0
    for k in range(n):
        s += exp((shift[k] - m) + logsum[k])
    row_shift[0] = m
    row_logsum[0] = log(s)


cdef inline int threads_for(int n_threads, Py_ssize_t n_units) noexcept nogil:
    """The team for a call of n_units independent tiles or chunks: the
    requested n_threads, never more than the units, and 1 in a child forked
    after a parallel region (see fce_omp.h)."""
    if n_units < n_threads:
        n_threads = <int> (n_units if n_units > 1 else 1)
    return usable_threads(n_threads)


# Binary losses: an input seen as (rows, cols), cols its last axis, cut into
# fixed tiles of about BINARY_TILE_ELEMENTS -- runs of whole rows, or column
# chunks of one long row.
cdef struct BinaryTiling:
    Py_ssize_t rows
    Py_ssize_t cols
    Py_ssize_t rows_per_tile
    Py_ssize_t chunks_per_row
    Py_ssize_t chunk
    Py_ssize_t n_tiles


cdef inline BinaryTiling make_binary_tiling(Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    cdef BinaryTiling t
    t.rows = rows
    t.cols = cols
    if cols >= BINARY_TILE_ELEMENTS:
        t.chunk = BINARY_TILE_ELEMENTS
        t.chunks_per_row = (cols + BINARY_TILE_ELEMENTS - 1) // BINARY_TILE_ELEMENTS
        t.rows_per_tile = 1
        t.n_tiles = rows * t.chunks_per_row
    else:
        t.chunk = cols
        t.chunks_per_row = 1
        t.rows_per_tile = BINARY_TILE_ELEMENTS // cols if cols > 0 else rows
        if t.rows_per_tile < 1:
            t.rows_per_tile = 1
        t.n_tiles = (rows + t.rows_per_tile - 1) // t.rows_per_tile if rows > 0 else 0
    return t


cdef inline void binary_tile_span(const BinaryTiling *t, Py_ssize_t k, Py_ssize_t *r0,
                                  Py_ssize_t *r1, Py_ssize_t *c0,
                                  Py_ssize_t *c1) noexcept nogil:
    """Tile k covers rows r0..r1 and, of each, columns c0..c1."""
    if t.chunks_per_row > 1:
        r0[0] = k // t.chunks_per_row
        r1[0] = r0[0] + 1
        c0[0] = (k - r0[0] * t.chunks_per_row) * t.chunk
        c1[0] = c0[0] + t.chunk if c0[0] + t.chunk < t.cols else t.cols
    else:
        r0[0] = k * t.rows_per_tile
        r1[0] = r0[0] + t.rows_per_tile if r0[0] + t.rows_per_tile < t.rows else t.rows
        c0[0] = 0
        c1[0] = t.cols


cdef inline Py_ssize_t tile_chunk(Py_ssize_t n_tiles, int n_threads) noexcept nogil:
    """Tiles a thread takes at a time from the dynamic schedule: enough that
    neighbouring tiles (whose partial sums share cache lines) mostly go to
    one thread, few enough that every thread still gets ~8 turns."""
    cdef Py_ssize_t chunk = n_tiles // (8 * (n_threads if n_threads > 0 else 1))
    if chunk > 16:
        chunk = 16
    return chunk if chunk > 0 else 1
