/*
 * Log-sum-exp of a tile (row-wise, position-major, and short rows transposed in and out).
 *
 * Part of the SIMD primitives: included by simd_impl.h once per (dtype T,
 * instruction set), so it has no include guard; see simd_impl.h for the
 * conventions (FN names, T, FCE_F64, the *_impl + dispatch idiom).
 */

/* --------------------------------------------------- log-sum-exp ------- */

/* A log-sum-exp is kept as (shift, logsum): shift is the max (exact, a T
 * value) and logsum = log(sum exp(x - shift)), so log p = (x - shift) -
 * logsum has no cancellation even with logits of 1e4 (as PyTorch forms it).
 * An all -inf max shifts by 0 (terms exp(-inf) = 0, logsum -inf); a +inf max
 * stays and turns its row into NaN, as in PyTorch. */
#define FCE_SHIFT(m) ((m) == -(T)INFINITY ? (T)0 : (m))

/* Sum of exp(x[i] - shift) over a contiguous span; x[i] - shift <= 0.
 * keep_exp: also store each term in e. */
static FCE_ALWAYS_INLINE double FN(span_sum_exp_impl)(const T *x, npy_intp n, T shift, T *e,
                                                      const int keep_exp)
{
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (npy_intp i = 0; i < n; i++) {
        T v = FN(exp_nonpos)(x[i] - shift);
        if (keep_exp) e[i] = v;
        s += v;
    }
    return (double)s;
}

static FCE_INLINE double FN(span_sum_exp)(const T *x, npy_intp n, T shift)
{
    return FN(span_sum_exp_impl)(x, n, shift, NULL, 0);
}

static FCE_INLINE T FN(span_max)(const T *x, npy_intp n)
{
    T m = -(T)INFINITY;
#pragma omp simd reduction(max : m)
    for (npy_intp i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static FCE_INLINE void FN(prefetch_span)(const T *x, npy_intp n)
{
    const char *b = (const char *)x, *e = (const char *)(x + n);
    for (; b < e; b += 64) __builtin_prefetch(b, 0, 3);
}

/* log-sum-exp of one contiguous row, read once from memory: blocks of
 * FCE_ROW_BLOCK elements (L1-resident) get their max, the running sum is
 * rescaled when the max grows, then the block's exponentials are summed
 * (in T within the block, in double across blocks). */
static FCE_INLINE void FN(row_lse)(const T *x, npy_intp n, double *shift, double *logsum)
{
    T m_run = -(T)INFINITY;
    double s_run = 0.0;
    for (npy_intp b = 0; b < n; b += FCE_ROW_BLOCK) {
        npy_intp len = n - b < FCE_ROW_BLOCK ? n - b : FCE_ROW_BLOCK;
        /* ask for as much as this block of what follows it (the next block,
         * or the next row of a tile; a prefetch never faults) so its loads
         * overlap this block's exps instead of stalling the next max pass.
         * No further: a short row asking a whole FCE_ROW_BLOCK ahead
         * prefetched each line about twice, and those prefetch instructions
         * cost B's forward ~15% (none at all cost it ~20%).  In two halves,
         * before the max pass and before the exps: one burst of a block's
         * worth of prefetches waited for free line-fill buffers (a third of
         * B64's forward profile), and the halves made B, B64 and F's
         * forward 1.10-1.30x faster. */
        FN(prefetch_span)(x + b + len, len / 2);
        T bm = FN(span_max)(x + b, len);
        if (bm > m_run) {
            /* nothing to rescale while every term so far was exp(-inf) */
            if (m_run != -(T)INFINITY) s_run *= exp((double)m_run - (double)bm);
            m_run = bm;
        }
        FN(prefetch_span)(x + b + len + len / 2, len - len / 2);
        s_run += FN(span_sum_exp)(x + b, len, FCE_SHIFT(m_run));
    }
    *shift = (double)FCE_SHIFT(m_run);
    *logsum = log(s_run);
}

/* Position-major log-sum-exp: lanes are positions, the loop runs over
 * classes, loads are contiguous (ps == 1).  keep_exp: also store each
 * exp(x - shift) in e (same layout as x; e may be x) and each position's
 * sum of them in sum. */
static FCE_ALWAYS_INLINE void FN(tile_lse_pm_impl)(const T *x, npy_intp np_, npy_intp nc,
                                                   npy_intp cs, double *shift,
                                                   double *logsum, T *e, double *sum,
                                                   const int keep_exp)
{
    T m[FCE_TILE_MAX], s[FCE_TILE_MAX];
    double sd[FCE_TILE_MAX];
    for (npy_intp p = 0; p < np_; p++) { m[p] = -(T)INFINITY; sd[p] = 0.0; }
    for (npy_intp c = 0; c < nc; c++) {
        const T *xc = x + c * cs;
#pragma omp simd
        for (npy_intp p = 0; p < np_; p++) m[p] = xc[p] > m[p] ? xc[p] : m[p];
    }
#pragma omp simd
    for (npy_intp p = 0; p < np_; p++) m[p] = FCE_SHIFT(m[p]);
    for (npy_intp cb = 0; cb < nc; cb += FCE_CLASS_CHUNK) {
        npy_intp ce = nc - cb < FCE_CLASS_CHUNK ? nc : cb + FCE_CLASS_CHUNK;
        for (npy_intp p = 0; p < np_; p++) s[p] = 0;
        for (npy_intp c = cb; c < ce; c++) {
            const T *xc = x + c * cs;
            T *ec = keep_exp ? e + c * cs : NULL;
#pragma omp simd
            for (npy_intp p = 0; p < np_; p++) {
                T v = FN(exp_nonpos)(xc[p] - m[p]);
                if (keep_exp) ec[p] = v;
                s[p] += v;
            }
        }
        for (npy_intp p = 0; p < np_; p++) sd[p] += (double)s[p];
    }
#pragma omp simd
    for (npy_intp p = 0; p < np_; p++) {
        shift[p] = (double)m[p];
        logsum[p] = FN(log_sum)(sd[p]);
        if (keep_exp) sum[p] = sd[p];
    }
}

static FCE_ALWAYS_INLINE void FN(tile_lse_pm)(const T *x, npy_intp np_, npy_intp nc,
                                              npy_intp cs, double *shift, double *logsum)
{
    FN(tile_lse_pm_impl)(x, np_, nc, cs, shift, logsum, NULL, NULL, 0);
}

/* Rows shorter than FCE_ROWWISE_MIN_C are too short for a SIMD loop along
 * them and strided (gather) loads are slow: copy the tile transposed into a
 * buffer (class-major, position stride 1) and run the position-major code. */
#define FCE_SHORT_ROWS(nc, ps, cs) ((cs) == 1 && (ps) != 1 && (nc) < FCE_ROWWISE_MIN_C)
#define FCE_ROWWISE(nc, cs) ((cs) == 1 && (nc) >= FCE_ROWWISE_MIN_C)

#if defined(__AVX512F__) && !FCE_F64
/* nc vectors of 16 floats, vector k at src + k * src_step, through a
 * transpose plan (simd.c) to nc vectors, vector o at dst + o * dst_step:
 * nc (nc + 1) / 2 vpermt2ps, in registers once nc is a constant.  Data
 * movement only: the transposed values are the inputs' bits. */
static FCE_ALWAYS_INLINE void FN(permute_vectors)(const float *src, npy_intp src_step,
                                                 float *dst, npy_intp dst_step,
                                                 const fce_transpose_plan *plan,
                                                 const npy_intp nc)
{
    __m512 in[17];
#pragma GCC unroll 16
    for (npy_intp k = 0; k < nc; k++) in[k] = _mm512_loadu_ps(src + k * src_step);
    in[nc] = _mm512_setzero_ps();  /* the odd partner of an odd nc's last pair */
#pragma GCC unroll 16
    for (npy_intp o = 0; o < nc; o++) {
        __m512 r = _mm512_setzero_ps();
#pragma GCC unroll 8
        for (npy_intp q = 0; q < (nc + 1) / 2; q++)
            r = _mm512_mask_mov_ps(r, (__mmask16)plan->mask[o][q],
                                   _mm512_permutex2var_ps(
                                       in[2 * q], _mm512_loadu_si512(plan->idx[o][q]),
                                       in[2 * q + 1]));
        _mm512_storeu_ps(dst + o * dst_step, r);
    }
}
#define FCE_PERMUTE_TRANSPOSE(nc, ps) ((nc) >= 2 && (nc) <= 16 && (ps) == (nc))
#endif

static FCE_ALWAYS_INLINE void FN(transpose_in_impl)(const T *x, npy_intp np_,
                                                   npy_intp nc, npy_intp ps, T *buf)
{
    npy_intp p0 = 0;
#if defined(__AVX512F__) && !FCE_F64
    /* blocks of 16 rows through the permute network (2x faster than the
     * copy loop below, which gcc leaves scalar); the rest element by element */
    if (FCE_PERMUTE_TRANSPOSE(nc, ps)) {
        for (; p0 + 16 <= np_; p0 += 16)
            FN(permute_vectors)(x + p0 * nc, 16, buf + p0, np_, &fce_tr_in[nc], nc);
    }
#endif
    for (npy_intp c = 0; c < nc; c++)
        for (npy_intp p = p0; p < np_; p++) buf[c * np_ + p] = x[p * ps + c];
}

static FCE_ALWAYS_INLINE void FN(transpose_out_impl)(const T *buf, npy_intp np_,
                                                    npy_intp nc, npy_intp ps, T *g)
{
    npy_intp p0 = 0;
#if defined(__AVX512F__) && !FCE_F64
    if (FCE_PERMUTE_TRANSPOSE(nc, ps)) {
        for (; p0 + 16 <= np_; p0 += 16)
            FN(permute_vectors)(buf + p0, np_, g + p0 * nc, 16, &fce_tr_out[nc], nc);
    }
#endif
    for (npy_intp p = p0; p < np_; p++)
        for (npy_intp c = 0; c < nc; c++) g[p * ps + c] = buf[c * np_ + p];
}
#ifdef FCE_PERMUTE_TRANSPOSE
#undef FCE_PERMUTE_TRANSPOSE
#endif

/* The class count as a compile-time constant makes these copies 2x faster
 * (gcc unrolls the class loop); rows of a short-row tile are contiguous, so
 * ps == nc there. */
#define FCE_TR_CASES(F, A, B)                                                        \
    switch (ps == nc ? nc : 0) {                                                     \
    case 1: F(A, np_, 1, 1, B); break;     case 2: F(A, np_, 2, 2, B); break;         \
    case 3: F(A, np_, 3, 3, B); break;     case 4: F(A, np_, 4, 4, B); break;         \
    case 5: F(A, np_, 5, 5, B); break;     case 6: F(A, np_, 6, 6, B); break;         \
    case 7: F(A, np_, 7, 7, B); break;     case 8: F(A, np_, 8, 8, B); break;         \
    case 9: F(A, np_, 9, 9, B); break;     case 10: F(A, np_, 10, 10, B); break;      \
    case 11: F(A, np_, 11, 11, B); break;  case 12: F(A, np_, 12, 12, B); break;      \
    case 13: F(A, np_, 13, 13, B); break;  case 14: F(A, np_, 14, 14, B); break;      \
    case 15: F(A, np_, 15, 15, B); break;  case 16: F(A, np_, 16, 16, B); break;      \
    default: F(A, np_, nc, ps, B); break;                                            \
    }

static void FN(transpose_in)(const T *x, npy_intp np_, npy_intp nc, npy_intp ps, T *buf)
{
    FCE_TR_CASES(FN(transpose_in_impl), x, buf)
}

static void FN(transpose_out)(const T *buf, npy_intp np_, npy_intp nc, npy_intp ps, T *g)
{
    FCE_TR_CASES(FN(transpose_out_impl), buf, g)
}
#undef FCE_TR_CASES

/* (shift, logsum) of every position of a tile (at most FCE_TILE_MAX
 * positions unless rows are long).  Tiles have ps == 1 or cs == 1. */
static void FN(tile_lse)(const T *x, npy_intp np_, npy_intp nc, npy_intp ps,
                         npy_intp cs, double *shift, double *logsum)
{
    if (FCE_ROWWISE(nc, cs)) {
        for (npy_intp p = 0; p < np_; p++)
            FN(row_lse)(x + p * ps, nc, &shift[p], &logsum[p]);
    } else if (FCE_SHORT_ROWS(nc, ps, cs)) {
        T buf[FCE_TILE_MAX * FCE_ROWWISE_MIN_C];
        FN(transpose_in)(x, np_, nc, ps, buf);
        FN(tile_lse_pm)(buf, np_, nc, np_, shift, logsum);
    } else {
        FN(tile_lse_pm)(x, np_, nc, cs, shift, logsum);
    }
}
