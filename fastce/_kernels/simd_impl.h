/*
 * Vectorised building blocks of fastce's kernels, written once and compiled
 * once per (dtype, instruction set).  simd.c includes this file with
 *   T          float or double
 *   FCE_F64    1 when T is double
 *   SUF        a name suffix such as f32_avx2
 * defined, inside a `#pragma GCC target` region for the instruction set.
 *
 * Why C and not Cython: gcc only vectorises a reduction or a loop holding a
 * polynomial exp when told that lanes are independent (`#pragma omp simd`),
 * which Cython cannot emit.  Everything here is a loop over a contiguous or
 * uniformly strided span of one tile (the per-position step of class-index
 * targets too: a scalar loop there cost a third of a small-C forward); the
 * Cython kernels own the tiling, the reductions across tiles and threads.
 *
 * A "tile" is n_pos positions (rows, or spatial positions of an (N, C, d...)
 * input) by n_cls classes; element (p, c) lives at x[p * ps + c * cs].  Rows
 * of a 2-D input have cs == 1; K-dim inputs have ps == 1 and cs = d1*...*dK.
 * Long contiguous rows are processed along the classes, everything else
 * along the positions, so the inner loop is always a SIMD loop.
 */

#define FCE_CAT_(a, b) a##_##b
#define FCE_CAT(a, b) FCE_CAT_(a, b)
#define FN(name) FCE_CAT(name, SUF)

/* Explicit fused multiply-adds where the target has them, plain a*b+c
 * otherwise.  The build uses -ffp-contract=off, so these are the only FMAs:
 * every specialisation of a formula rounds the same way, and the loss of a
 * forward call equals the loss of a loss + gradient call to the bit. */
#if defined(__FMA__) && FCE_F64
#define FCE_FMA(a, b, c) __builtin_fma((a), (b), (c))
#elif defined(__FMA__)
#define FCE_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define FCE_FMA(a, b, c) ((a) * (b) + (c))
#endif
/* the double-precision helpers below use this one in every instantiation */
#if defined(__FMA__)
#define FCE_FMA_D(a, b, c) __builtin_fma((a), (b), (c))
#else
#define FCE_FMA_D(a, b, c) ((a) * (b) + (c))
#endif

/* ---------------------------------------------------------------- exp --- */

/* exp(x) for x <= 0 (valid up to 88 / 709): every caller passes x - max or
 * -|x|.  Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then a
 * polynomial (Cephes minimax degree 5 for float, Taylor degree 13 for
 * double) scaled by 2^n built in the exponent bits; n is rounded with the
 * 1.5 * 2^mantissa trick, which needs no float->int conversion and so
 * vectorises on every ISA.  No overflow clamp: that alone makes it 1.7x
 * faster than a full-range version.  -inf gives exactly 0, NaN gives NaN,
 * x below -87.3 / -708.4 gives 0 (not a denormal).  Measured error: <= 1.3
 * ulp (float, every float in [-87, 0]), <= 0.9 ulp (double, 1e6 points in
 * [-700, 0]) against a long-double reference. */
static FCE_INLINE T FN(exp_nonpos)(T x)
{
#if FCE_F64
    const double lo = -708.3964185322641;
    const double magic = 6755399441055744.0;
    /* no clamp: lanes below lo compute garbage that the last select drops */
    double xc = x;
    double t = FCE_FMA(xc, 1.4426950408889634, magic);
    double n = t - magic;
    double r = FCE_FMA(-n, 6.93145751953125E-1, xc);
    r = FCE_FMA(-n, 1.42860682030941723212E-6, r);
    double p = 1.6059043836821613e-10;
    p = FCE_FMA(p, r, 2.08767569878681e-09);
    p = FCE_FMA(p, r, 2.505210838544172e-08);
    p = FCE_FMA(p, r, 2.755731922398589e-07);
    p = FCE_FMA(p, r, 2.7557319223985893e-06);
    p = FCE_FMA(p, r, 2.48015873015873e-05);
    p = FCE_FMA(p, r, 0.0001984126984126984);
    p = FCE_FMA(p, r, 0.001388888888888889);
    p = FCE_FMA(p, r, 0.008333333333333333);
    p = FCE_FMA(p, r, 0.041666666666666664);
    p = FCE_FMA(p, r, 0.16666666666666666);
    p = FCE_FMA(p, r, 0.5);
    p = FCE_FMA(p, r, 1.0);
    p = FCE_FMA(p, r, 1.0);
    uint64_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint64_t sb = (tb + 1023u) << 52;
    double scale;
    memcpy(&scale, &sb, sizeof scale);
    double y = p * scale;
    return x < lo ? 0.0 : y;
#else
    const float lo = -87.33654475f;
    const float magic = 12582912.0f;
    float xc = x;
    float t = FCE_FMA(xc, 1.44269504088896341f, magic);
    float n = t - magic;
    float r = FCE_FMA(-n, 0.693359375f, xc);
    r = FCE_FMA(-n, -2.12194440e-4f, r);
    float r2 = r * r;
    float p = 1.9875691500E-4f;
    p = FCE_FMA(p, r, 1.3981999507E-3f);
    p = FCE_FMA(p, r, 8.3334519073E-3f);
    p = FCE_FMA(p, r, 4.1665795894E-2f);
    p = FCE_FMA(p, r, 1.6666665459E-1f);
    p = FCE_FMA(p, r, 5.0000001201E-1f);
    p = FCE_FMA(p, r2, r + 1.0f);
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint32_t sb = (tb + 127u) << 23;
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    float y = p * scale;
    return x < lo ? 0.0f : y;
#endif
}

/* 1 + s2/3 + s2^2/5 + ... + s2^10/21: atanh(s) / s for |s| <= 0.172, in
 * double (the log-sum's and double log1p's series). */
static FCE_INLINE double FN(atanh_series)(double s2)
{
    double q = 1.0 / 21;
    q = FCE_FMA_D(q, s2, 1.0 / 19);
    q = FCE_FMA_D(q, s2, 1.0 / 17);
    q = FCE_FMA_D(q, s2, 1.0 / 15);
    q = FCE_FMA_D(q, s2, 1.0 / 13);
    q = FCE_FMA_D(q, s2, 1.0 / 11);
    q = FCE_FMA_D(q, s2, 1.0 / 9);
    q = FCE_FMA_D(q, s2, 1.0 / 7);
    q = FCE_FMA_D(q, s2, 1.0 / 5);
    q = FCE_FMA_D(q, s2, 1.0 / 3);
    return FCE_FMA_D(q, s2, 1.0);
}

/* log(1 + u) for u in [0, 1] (u = exp(-|x|) in the binary losses).
 * float: u * P(2u - 1) with P the degree-9 Chebyshev interpolant of
 * log1p(u)/u on [0, 1] (truncation 5e-9): no branch, no division, exact
 * ratio near u = 0.  Max error 1.85 ulp, checked on every float in [0, 1].
 * double: the atanh series in s = (f - 1) / (f + 1), |s| <= 0.172, with the
 * rounding error of 1 + u added back; <= 3.2 ulp measured. */
static FCE_INLINE T FN(log1p_unit)(T u)
{
#if FCE_F64
    T w = (T)1 + u;
    T c = (u - (w - (T)1)) / w;
    int big = w > (T)1.4142135623730951;
    T f = big ? w * (T)0.5 : w;
    T k = big ? (T)1 : (T)0;
    T s = (f - (T)1) / (f + (T)1);
    T s2 = s * s;
    T q = FN(atanh_series)(s2);
    return k * 0.6931471805599453 + ((T)2 * s * q + c);
#else
    float t = FCE_FMA(2.0f, u, -1.0f);
    float p = -6.2032363447746344e-06f;
    p = FCE_FMA(p, t, 2.0508869827609009e-05f);
    p = FCE_FMA(p, t, -5.3031382479756682e-05f);
    p = FCE_FMA(p, t, 0.00018090133099191966f);
    p = FCE_FMA(p, t, -0.00064259945097225508f);
    p = FCE_FMA(p, t, 0.0022897021353853919f);
    p = FCE_FMA(p, t, -0.0084610237067595517f);
    p = FCE_FMA(p, t, 0.033152253944299007f);
    p = FCE_FMA(p, t, -0.14426355068598878f);
    p = FCE_FMA(p, t, 0.81093021991324243f);
    return u * p;
#endif
}

/* log(v) in double for v = 0, a normal positive number, +inf or NaN (the
 * sums of exponentials whose log gives a log-sum-exp).  Same atanh series,
 * exponent read from the bits.  Error <= 2.7 ulp measured on [1, 1e6]. */
static FCE_INLINE double FN(log_sum)(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    uint64_t eb = (b >> 52) & 0x7FFu;
    uint64_t mb = (b & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
    uint64_t kb = 0x4330000000000000ull | eb;
    double m, kd;
    memcpy(&m, &mb, sizeof m);
    memcpy(&kd, &kb, sizeof kd);
    kd = kd - 4503599627370496.0 - 1023.0;
    int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    kd = big ? kd + 1.0 : kd;
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double q = FN(atanh_series)(s2);
    double r = kd * 6.93147180369123816490e-01
               + (2.0 * s * q + kd * 1.90821492927058770002e-10);
    r = v == 0.0 ? -(double)INFINITY : r;
    r = v == (double)INFINITY ? v : r;
    r = v != v ? v : r;
    r = v < 0.0 ? (double)NAN : r;
    return r;
}

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
         * cost B's forward ~15% (none at all cost it ~20%). */
        FN(prefetch_span)(x + b + len, len);
        T bm = FN(span_max)(x + b, len);
        if (bm > m_run) {
            /* nothing to rescale while every term so far was exp(-inf) */
            if (m_run != -(T)INFINITY) s_run *= exp((double)m_run - (double)bm);
            m_run = bm;
        }
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

static FCE_ALWAYS_INLINE void FN(transpose_in_impl)(const T *x, npy_intp np_,
                                                   npy_intp nc, npy_intp ps, T *buf)
{
    for (npy_intp c = 0; c < nc; c++)
        for (npy_intp p = 0; p < np_; p++) buf[c * np_ + p] = x[p * ps + c];
}

static FCE_ALWAYS_INLINE void FN(transpose_out_impl)(const T *buf, npy_intp np_,
                                                    npy_intp nc, npy_intp ps, T *g)
{
    for (npy_intp p = 0; p < np_; p++)
        for (npy_intp c = 0; c < nc; c++) g[p * ps + c] = buf[c * np_ + p];
}

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

/* ------------------------------------------------------ class sums ----- */

/* sum over classes c0..c1 of a row of w[c] (x[c] - shift), in double */
static FCE_ALWAYS_INLINE double FN(wdot_span_double)(const T *xr, npy_intp c0, npy_intp c1,
                                                     const T *w, const int has_w,
                                                     double shift)
{
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (npy_intp c = c0; c < c1; c++)
        acc += (has_w ? (double)w[c] : 1.0) * ((double)xr[c] - shift);
    return acc;
}

/* out[p] = sum_c w[c] (x[p, c] - shift[p]) (w == NULL: weights 1), added
 * in double: the smoothing term sum_c w_c log p_c is out[p] - W logsum[p].
 * Along a row, float terms are summed in float within FCE_CLASS_CHUNK
 * classes first (a chunk that is not finite is summed again in double):
 * converting every element to double made F's forward (B with label
 * smoothing) about 8% slower. */
static FCE_ALWAYS_INLINE void FN(tile_wdot_impl)(const T *x, npy_intp np_, npy_intp nc,
                                                 npy_intp ps, npy_intp cs, const T *w,
                                                 const int has_w, const double *shift,
                                                 double *out)
{
    if (cs == 1) {
        for (npy_intp p = 0; p < np_; p++) {
            const T *xr = x + p * ps;
#if FCE_F64
            double acc = FN(wdot_span_double)(xr, 0, nc, w, has_w, shift[p]);
#else
            /* the shift is a row maximum, a float value: exact in float */
            const T sh = (T)shift[p];
            double acc = 0.0;
            for (npy_intp c0 = 0; c0 < nc; c0 += FCE_CLASS_CHUNK) {
                const npy_intp c1 = nc - c0 < FCE_CLASS_CHUNK ? nc : c0 + FCE_CLASS_CHUNK;
                T part = 0;
#pragma omp simd reduction(+ : part)
                for (npy_intp c = c0; c < c1; c++)
                    part += (has_w ? w[c] : (T)1) * (xr[c] - sh);
                if (!(part - part == 0)) {
                    /* inf or NaN: again in double, where logits spanning
                     * more than the float range, or a large weight, do not
                     * overflow (a NaN input stays NaN) */
                    acc += FN(wdot_span_double)(xr, c0, c1, w, has_w, shift[p]);
                } else {
                    acc += (double)part;
                }
            }
#endif
            out[p] = acc;
        }
    } else {
        for (npy_intp p = 0; p < np_; p++) out[p] = 0.0;
        for (npy_intp c = 0; c < nc; c++) {
            const T *xc = x + c * cs;
            double wc = has_w ? (double)w[c] : 1.0;
#pragma omp simd
            for (npy_intp p = 0; p < np_; p++) out[p] += wc * ((double)xc[p * ps] - shift[p]);
        }
    }
}

static void FN(tile_wdot)(const T *x, npy_intp np_, npy_intp nc, npy_intp ps,
                          npy_intp cs, const T *w, const double *shift, double *out)
{
    if (w) FN(tile_wdot_impl)(x, np_, nc, ps, cs, w, 1, shift, out);
    else FN(tile_wdot_impl)(x, np_, nc, ps, cs, w, 0, shift, out);
}

/* Probability targets: wyx[p] = sum_c w y (x - shift), wy[p] = sum_c w y.
 * A term with w y == 0 is 0 even where x = -inf (a masked class holds no
 * mass). */
static FCE_ALWAYS_INLINE void FN(tile_prob_impl)(const T *x, const T *y, npy_intp np_,
                                                 npy_intp nc, npy_intp ps, npy_intp cs,
                                                 const T *w, const int has_w,
                                                 const double *shift, double *wyx,
                                                 double *wy)
{
    if (cs == 1) {
        for (npy_intp p = 0; p < np_; p++) {
            const T *xr = x + p * ps, *yr = y + p * ps;
            const double sh = shift[p];
            double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
            for (npy_intp c = 0; c < nc; c++) {
                double wy_c = (has_w ? (double)w[c] : 1.0) * (double)yr[c];
                a += wy_c == 0.0 ? 0.0 : wy_c * ((double)xr[c] - sh);
                b += wy_c;
            }
            wyx[p] = a;
            wy[p] = b;
        }
    } else {
        for (npy_intp p = 0; p < np_; p++) { wyx[p] = 0.0; wy[p] = 0.0; }
        for (npy_intp c = 0; c < nc; c++) {
            const T *xc = x + c * cs, *yc = y + c * cs;
            double wc = has_w ? (double)w[c] : 1.0;
#pragma omp simd
            for (npy_intp p = 0; p < np_; p++) {
                double wy_c = wc * (double)yc[p * ps];
                wyx[p] += wy_c == 0.0 ? 0.0 : wy_c * ((double)xc[p * ps] - shift[p]);
                wy[p] += wy_c;
            }
        }
    }
}

static void FN(tile_prob)(const T *x, const T *y, npy_intp np_, npy_intp nc, npy_intp ps,
                          npy_intp cs, const T *w, const double *shift, double *wyx,
                          double *wy)
{
    if (w) FN(tile_prob_impl)(x, y, np_, nc, ps, cs, w, 1, shift, wyx, wy);
    else FN(tile_prob_impl)(x, y, np_, nc, ps, cs, w, 0, shift, wyx, wy);
}

/* ------------------------------------------------------- gradients ----- */

/* g[p, c] = a[p] softmax[p, c] - w[c] (beta[p] + gamma[p] y[p, c]) with
 * softmax = exp((x - shift) - logsum): scale * (softmax - target
 * distribution) for every cross-entropy variant (see _cross_entropy.pyx).
 * beta == NULL drops the w term, y == NULL the gamma term.  g may be x
 * itself: each element is read before it is written, lanes independent. */
static FCE_ALWAYS_INLINE void FN(tile_grad_impl)(
    const T *x, T *g, npy_intp np_, npy_intp nc, npy_intp ps, npy_intp cs,
    const double *shift, const double *logsum, const double *a, const double *beta,
    const T *w, const T *y, const double *gamma, const int has_beta, const int has_w,
    const int has_y)
{
    if (cs == 1 && ps != 1) {
        for (npy_intp p = 0; p < np_; p++) {
            const T *xr = x + p * ps;
            const T *yr = has_y ? y + p * ps : x;
            T *gr = g + p * ps;
            T sh = (T)shift[p], ls = (T)logsum[p], ap = (T)a[p];
            T bp = has_beta ? (T)beta[p] : 0, gp = has_y ? (T)gamma[p] : 0;
#pragma omp simd
            for (npy_intp c = 0; c < nc; c++) {
                T v = ap * FN(exp_nonpos)((xr[c] - sh) - ls);
                if (has_beta) {
                    T t = has_y ? bp + gp * yr[c] : bp;
                    v -= has_w ? w[c] * t : t;
                }
                gr[c] = v;
            }
        }
    } else {
        T sh[FCE_TILE_MAX], ls[FCE_TILE_MAX], ap[FCE_TILE_MAX], bp[FCE_TILE_MAX];
        T gp[FCE_TILE_MAX];
        for (npy_intp p = 0; p < np_; p++) {
            sh[p] = (T)shift[p];
            ls[p] = (T)logsum[p];
            ap[p] = (T)a[p];
            bp[p] = has_beta ? (T)beta[p] : 0;
            gp[p] = has_y ? (T)gamma[p] : 0;
        }
        for (npy_intp c = 0; c < nc; c++) {
            const T *xc = x + c * cs;
            const T *yc = has_y ? y + c * cs : x;
            T *gc = g + c * cs;
            T wc = has_w ? w[c] : (T)1;
#pragma omp simd
            for (npy_intp p = 0; p < np_; p++) {
                T v = ap[p] * FN(exp_nonpos)((xc[p * ps] - sh[p]) - ls[p]);
                if (has_beta) {
                    T t = has_y ? bp[p] + gp[p] * yc[p * ps] : bp[p];
                    v -= has_w ? wc * t : t;
                }
                gc[p * ps] = v;
            }
        }
    }
}

#define FCE_GRAD_VARIANTS(X, G, PS, CS, Y)                                            \
    do {                                                                             \
        if (!beta)                                                                   \
            FN(tile_grad_impl)(X, G, np_, nc, PS, CS, shift, logsum, a, beta, w, Y,  \
                               gamma, 0, 0, 0);                                      \
        else if (!Y && !w)                                                           \
            FN(tile_grad_impl)(X, G, np_, nc, PS, CS, shift, logsum, a, beta, w, Y,  \
                               gamma, 1, 0, 0);                                      \
        else if (!Y)                                                                 \
            FN(tile_grad_impl)(X, G, np_, nc, PS, CS, shift, logsum, a, beta, w, Y,  \
                               gamma, 1, 1, 0);                                      \
        else if (!w)                                                                 \
            FN(tile_grad_impl)(X, G, np_, nc, PS, CS, shift, logsum, a, beta, w, Y,  \
                               gamma, 1, 0, 1);                                      \
        else                                                                         \
            FN(tile_grad_impl)(X, G, np_, nc, PS, CS, shift, logsum, a, beta, w, Y,  \
                               gamma, 1, 1, 1);                                      \
    } while (0)

static void FN(tile_grad)(const T *x, T *g, npy_intp np_, npy_intp nc, npy_intp ps,
                          npy_intp cs, const double *shift, const double *logsum,
                          const double *a, const double *beta, const T *w, const T *y,
                          const double *gamma)
{
    if (FCE_SHORT_ROWS(nc, ps, cs) && !y) {
        /* transposed in, position-major in place in the buffer, back out */
        T buf[FCE_TILE_MAX * FCE_ROWWISE_MIN_C];
        FN(transpose_in)(x, np_, nc, ps, buf);
        FCE_GRAD_VARIANTS(buf, buf, 1, np_, y);
        FN(transpose_out)(buf, np_, nc, ps, g);
    } else if (ps == 1) {
        FCE_GRAD_VARIANTS(x, g, 1, cs, y);
    } else {
        FCE_GRAD_VARIANTS(x, g, ps, cs, y);
    }
}
#undef FCE_GRAD_VARIANTS

/* out[p, c] = (x[p, c] - shift[p]) - logsum[p] (log_softmax, x's layout). */
static void FN(tile_log_softmax)(const T *x, T *out, npy_intp np_, npy_intp nc,
                                 npy_intp ps, npy_intp cs, const double *shift,
                                 const double *logsum)
{
    if (cs == 1) {
        for (npy_intp p = 0; p < np_; p++) {
            const T *xr = x + p * ps;
            T *orow = out + p * ps;
            T sh = (T)shift[p], ls = (T)logsum[p];
#pragma omp simd
            for (npy_intp c = 0; c < nc; c++) orow[c] = (xr[c] - sh) - ls;
        }
    } else {
        T sh[FCE_TILE_MAX], ls[FCE_TILE_MAX];
        for (npy_intp p = 0; p < np_; p++) {
            sh[p] = (T)shift[p];
            ls[p] = (T)logsum[p];
        }
        for (npy_intp c = 0; c < nc; c++) {
            const T *xc = x + c * cs;
            T *oc = out + c * cs;
#pragma omp simd
            for (npy_intp p = 0; p < np_; p++) oc[p * ps] = (xc[p * ps] - sh[p]) - ls[p];
        }
    }
}

/* ------------------------------------------------ index targets ------- */

#define FCE_TARGET(p)                                                             \
    (is64 ? (long long)((const int64_t *)target)[p]                              \
          : (long long)((const int32_t *)target)[p])
#define FCE_TARGET_VALID(t) ((t) != ign && (t) >= 0 && (t) < nc)

/* Gradient coefficients of class-index targets (step 2, see below). */
static FCE_ALWAYS_INLINE void FN(index_coef_impl)(
    npy_intp np_, const void *target, const int is64, const npy_intp nc,
    const long long ign, const T *w, const int has_w, const double *gout,
    const int has_gout, double gscale, double keep, double smooth, double wtotal,
    double *a, double *beta)
{
#pragma omp simd
    for (npy_intp p = 0; p < np_; p++) {
        const long long t = FCE_TARGET(p);
        const int valid = FCE_TARGET_VALID(t);
        const double wt = has_w ? (double)w[valid ? t : 0] : 1.0;
        const double s = gscale * (has_gout ? gout[p] : 1.0);
        a[p] = valid ? s * (keep * wt + smooth * wtotal) : 0.0;
        beta[p] = valid ? s * smooth : 0.0;
    }
}

/* Step 2 of class-index targets for one tile, vectorised across positions:
 * per position the loss
 *   l = -(1 - eps) w_t log p_t - (eps / C) sum_c w_c log p_c
 * (0 for ignored or out-of-range targets) and, when asked, the gradient
 * coefficients a = s ((1 - eps) w_t + (eps / C) W), beta = s eps / C.  The
 * lanes take the target's logit with a gather and select 0 for targets
 * outside [0, C); the first out-of-range position is then found by a scalar
 * scan, only when there is one.  The target-weight sum runs in position
 * order, as the validation pass of the gradient path adds it, so forward
 * and loss + gradient divide by the same bits.  np_ <= FCE_TILE_MAX. */
static FCE_ALWAYS_INLINE double FN(index_finish_impl)(
    const T *x, npy_intp np_, npy_intp ps, npy_intp cs, const fce_index_args *ia,
    const void *target, const int is64, const T *w, const int has_w, const int smoothing,
    T *loss_out, const double *gout, const double *shift, const double *logsum,
    const double *dot, double *a, double *beta, double *weight_sum, npy_intp *bad)
{
    const npy_intp nc = ia->n_cls;
    const long long ign = ia->ignore_index;
    const double keep = 1.0 - ia->eps;
    const double smooth = nc > 0 ? ia->eps / (double)nc : 0.0;
    const double wtotal = ia->weight_total;
    double losses[FCE_TILE_MAX];
    double loss_sum = 0.0;
    npy_intp n_valid = 0, n_bad = 0;
    if (nc <= 0) {
        /* no class to gather from (x and w may be empty): every target is
         * ignored or out of range, every loss 0 */
        for (npy_intp p = 0; p < np_; p++) losses[p] = 0.0;
        for (npy_intp p = 0; p < np_; p++) n_bad += FCE_TARGET(p) != ign;
    } else {
        /* no branch in this loop: gcc vectorises only straight-line bodies */
#pragma omp simd reduction(+ : loss_sum, n_valid, n_bad)
        for (npy_intp p = 0; p < np_; p++) {
            const long long t = FCE_TARGET(p);
            const int valid = FCE_TARGET_VALID(t);
            const npy_intp tc = valid ? (npy_intp)t : 0;
            const double wt = has_w ? (double)w[tc] : 1.0;
            double l = -keep * wt * (((double)x[p * ps + tc * cs] - shift[p]) - logsum[p]);
            if (smoothing) l = l - smooth * (dot[p] - wtotal * logsum[p]);
            l = valid ? l : 0.0;
            losses[p] = l;
            loss_sum += l;
            n_valid += valid;
            n_bad += t != ign && !valid;
        }
    }
    if (loss_out) {
#pragma omp simd
        for (npy_intp p = 0; p < np_; p++) loss_out[p] = (T)losses[p];
    }
    if (ia->want_grad) {
        if (nc <= 0)
            for (npy_intp p = 0; p < np_; p++) a[p] = beta[p] = 0.0;
        else if (gout)
            FN(index_coef_impl)(np_, target, is64, nc, ign, w, has_w, gout, 1, ia->gscale,
                                keep, smooth, wtotal, a, beta);
        else
            FN(index_coef_impl)(np_, target, is64, nc, ign, w, has_w, gout, 0, ia->gscale,
                                keep, smooth, wtotal, a, beta);
    }
    if (has_w) {
        double ws = 0.0;
        for (npy_intp p = 0; p < np_; p++) {
            const long long t = FCE_TARGET(p);
            if (FCE_TARGET_VALID(t)) ws += (double)w[t];
        }
        *weight_sum = ws;
    } else {
        *weight_sum = (double)n_valid;
    }
    *bad = -1;
    if (n_bad)
        for (npy_intp p = 0; p < np_; p++) {
            const long long t = FCE_TARGET(p);
            if (t != ign && !FCE_TARGET_VALID(t)) {
                *bad = p;
                break;
            }
        }
    return loss_sum;
}
/* The index-target part of the gradient, after tile_grad: subtract
 * s (1 - eps) w_t at each target entry, and zero ignored positions exactly
 * (their logits may be NaN). */
static FCE_ALWAYS_INLINE void FN(index_fix_impl)(T *g, npy_intp np_, npy_intp ps,
                                                npy_intp cs, const fce_index_args *ia,
                                                const void *target, const int is64,
                                                const double *gout, const int has_w,
                                                const int has_gout)
{
    const npy_intp nc = ia->n_cls;
    const long long ign = ia->ignore_index;
    const T *w = (const T *)ia->weight;
    const double keep = 1.0 - ia->eps, gscale = ia->gscale;
    double fix[FCE_TILE_MAX];
    npy_intp cls[FCE_TILE_MAX];
    if (nc <= 0) return;  /* no gradient entry; w has no element to read */
    /* the amounts and target classes first, without a branch (-1: zero the
     * position), so the scattered updates below are a short loop */
#pragma omp simd
    for (npy_intp p = 0; p < np_; p++) {
        const long long t = FCE_TARGET(p);
        const int valid = FCE_TARGET_VALID(t);
        const double wt = has_w ? (double)w[valid ? t : 0] : 1.0;
        const double s = gscale * (has_gout ? gout[p] : 1.0);
        fix[p] = s * keep * wt;
        cls[p] = valid ? (npy_intp)t : -1;
    }
    for (npy_intp p = 0; p < np_; p++) {
        const npy_intp c = cls[p];
        T *gp = g + p * ps;
        if (c >= 0) {
            gp[c * cs] = (T)(gp[c * cs] - fix[p]);
        } else if (cs == 1) {
            memset(gp, 0, (size_t)nc * sizeof(T));
        } else {
            for (npy_intp k = 0; k < nc; k++) gp[k * cs] = 0;
        }
    }
}

#undef FCE_TARGET
#undef FCE_TARGET_VALID

/* Positions first..first+np_ of the flat target / gout. */
static void FN(tile_index_fix)(T *g, npy_intp np_, npy_intp ps, npy_intp cs,
                               const fce_index_args *ia, npy_intp first)
{
    const double *gout = ia->gout ? ia->gout + first : NULL;
#define FCE_FIX(is64, hw, hg)                                                         \
    FN(index_fix_impl)(g, np_, ps, cs, ia,                                           \
                       is64 ? (const void *)((const int64_t *)ia->target + first)    \
                            : (const void *)((const int32_t *)ia->target + first),   \
                       is64, gout, hw, hg)
#define FCE_FIX_BY_TARGET(hw, hg) \
    (ia->target_is_64 ? FCE_FIX(1, hw, hg) : FCE_FIX(0, hw, hg))
    if (ia->weight) {
        if (gout) FCE_FIX_BY_TARGET(1, 1); else FCE_FIX_BY_TARGET(1, 0);
    } else {
        if (gout) FCE_FIX_BY_TARGET(0, 1); else FCE_FIX_BY_TARGET(0, 0);
    }
#undef FCE_FIX_BY_TARGET
#undef FCE_FIX
}


/* Returns the tile's loss sum; *weight_sum gets the sum of its target
 * weights, *bad its first out-of-range flat position or -1.
 * Positions are first..first+np_ of the flat target / loss_out / gout. */
static double FN(tile_index_finish)(const T *x, npy_intp np_, npy_intp ps, npy_intp cs,
                                    const fce_index_args *ia, npy_intp first,
                                    const double *shift, const double *logsum,
                                    const double *dot, double *a, double *beta,
                                    double *weight_sum, npy_intp *bad)
{
    const T *w = (const T *)ia->weight;
    const int smoothing = ia->eps > 0;
    const void *target = ia->target_is_64 ? (const void *)((const int64_t *)ia->target + first)
                                          : (const void *)((const int32_t *)ia->target + first);
    T *loss_out = ia->loss_out ? (T *)ia->loss_out + first : NULL;
    const double *gout = ia->gout ? ia->gout + first : NULL;
#define FCE_FINISH(is64, hw, sm)                                                   \
    FN(index_finish_impl)(x, np_, ps, cs, ia, target, is64, w, hw, sm, loss_out, gout, \
                          shift, logsum, dot, a, beta, weight_sum, bad)
#define FCE_FINISH_BY_TARGET(hw, sm) \
    (ia->target_is_64 ? FCE_FINISH(1, hw, sm) : FCE_FINISH(0, hw, sm))
    double loss;
    if (w) loss = smoothing ? FCE_FINISH_BY_TARGET(1, 1) : FCE_FINISH_BY_TARGET(1, 0);
    else loss = smoothing ? FCE_FINISH_BY_TARGET(0, 1) : FCE_FINISH_BY_TARGET(0, 0);
    if (*bad >= 0) *bad += first;
    return loss;
#undef FCE_FINISH_BY_TARGET
#undef FCE_FINISH
}

/* g = a softmax - w beta from kept exponentials e = exp(x - shift):
 * softmax = e / sum, so the gradient pass needs no exp.  Element (p, c) of
 * e and g at p * ps + c * cs (g may be e).  A row of -inf has sum 0 and
 * gives NaN, as exp(x - logsum) does. */
static FCE_ALWAYS_INLINE void FN(kept_grad_impl)(const T *e, T *g, npy_intp np_, npy_intp nc,
                                                npy_intp ps, npy_intp cs, const double *sum,
                                                const double *a, const double *beta,
                                                const T *w, const int has_beta,
                                                const int has_w)
{
    T scale[FCE_TILE_MAX], bp[FCE_TILE_MAX];
#pragma omp simd
    for (npy_intp p = 0; p < np_; p++) {
        scale[p] = (T)(a[p] / sum[p]);
        bp[p] = has_beta ? (T)beta[p] : 0;
    }
    if (cs == 1) {
        for (npy_intp p = 0; p < np_; p++) {
            const T *er = e + p * ps;
            T *gr = g + p * ps;
            const T sp = scale[p], b = bp[p];
#pragma omp simd
            for (npy_intp c = 0; c < nc; c++) {
                T v = sp * er[c];
                if (has_beta) v -= has_w ? w[c] * b : b;
                gr[c] = v;
            }
        }
    } else {
        for (npy_intp c = 0; c < nc; c++) {
            const T *ec = e + c * cs;
            T *gc = g + c * cs;
            const T wc = has_w ? w[c] : (T)1;
#pragma omp simd
            for (npy_intp p = 0; p < np_; p++) {
                T v = scale[p] * ec[p];
                if (has_beta) v -= has_w ? wc * bp[p] : bp[p];
                gc[p] = v;
            }
        }
    }
}

/* Loss + gradient of a tile of contiguous rows (ps == nc, 1 < nc <=
 * FCE_ROW_BLOCK, np_ <= FCE_TILE_MAX, np_ * nc <= FCE_KEEP_EXP_MAX) with
 * class-index targets, in
 * one call: the log-sum-exp pass keeps its exponentials in a buffer and
 * they become the softmax of the gradient, so each element is exponentiated
 * once.  Short rows are transposed in once and out once.  The statistics
 * are those of tile_lse (row_lse is one block here), so the loss has the
 * forward's bits.  g may be x: x is last read before g is written.  Returns
 * the loss sum; weight_sum and bad as in tile_index_finish. */
static double FN(tile_index_grad_kept)(const T *x, T *g, npy_intp np_, npy_intp nc,
                                       const fce_index_args *ia, npy_intp first,
                                       double *weight_sum, npy_intp *bad)
{
    T buf[FCE_KEEP_EXP_MAX];
    double shift[FCE_TILE_MAX], logsum[FCE_TILE_MAX], sum[FCE_TILE_MAX], dot[FCE_TILE_MAX];
    double a[FCE_TILE_MAX], beta[FCE_TILE_MAX];
    const T *w = (const T *)ia->weight;
    const int smoothing = ia->eps > 0;
    const int short_rows = nc < FCE_ROWWISE_MIN_C;
    if (short_rows) {
        FN(transpose_in)(x, np_, nc, nc, buf);
        FN(tile_lse_pm_impl)(buf, np_, nc, np_, shift, logsum, buf, sum, 1);
    } else {
        for (npy_intp p = 0; p < np_; p++) {
            const T *xr = x + p * nc;
            FN(prefetch_span)(xr + nc, nc);
            const T m = FCE_SHIFT(FN(span_max)(xr, nc));
            sum[p] = FN(span_sum_exp_impl)(xr, nc, m, buf + p * nc, 1);
            shift[p] = (double)m;
            logsum[p] = log(sum[p]);
        }
    }
    /* the class sums and the target gather read x, as the forward does */
    if (smoothing) FN(tile_wdot)(x, np_, nc, nc, 1, w, shift, dot);
    double loss = FN(tile_index_finish)(x, np_, nc, 1, ia, first, shift, logsum, dot, a,
                                        beta, weight_sum, bad);
    /* short rows: the gradient is formed in the buffer, then transposed out */
    T *gk = short_rows ? buf : g;
    const npy_intp ps = short_rows ? 1 : nc, cs = short_rows ? np_ : 1;
    if (!smoothing)
        FN(kept_grad_impl)(buf, gk, np_, nc, ps, cs, sum, a, beta, w, 0, 0);
    else if (w)
        FN(kept_grad_impl)(buf, gk, np_, nc, ps, cs, sum, a, beta, w, 1, 1);
    else
        FN(kept_grad_impl)(buf, gk, np_, nc, ps, cs, sum, a, beta, w, 1, 0);
    FN(tile_index_fix)(gk, np_, ps, cs, ia, first);
    if (short_rows) FN(transpose_out)(buf, np_, nc, nc, g);
    return loss;
}

/* ---------------------------------------------------- binary losses ---- */

/* Binary cross-entropy on logits over a span, as
 *   l = w * [(1 - y) softplus(x) + pw y softplus(-x)]
 * which equals PyTorch's (1-y) x + (1 + (pw-1) y) softplus(-x) for finite x
 * and, because a zero coefficient drops its term, gives the limits at
 * x = +-inf (0, 0, +inf) where the other form gives inf - inf.
 * The gradient is w * g * [(1 - y) sigmoid(x) - pw y sigmoid(-x)].
 * Weight / pos_weight / grad_output are read with a step (0: broadcast). */
#if FCE_F64
#define FCE_ABS_T(v) fabs(v)
#else
#define FCE_ABS_T(v) fabsf(v)
#endif
static FCE_ALWAYS_INLINE double FN(bce_logits_impl)(
    const T *x, const T *y, npy_intp n, const T *w, npy_intp ws, const T *pw,
    npy_intp pws, T *loss_out, T *grad, const T *gout, npy_intp gos, T gscale,
    const int has_w, const int has_pw, const int want_loss, const int want_grad)
{
    double total = 0.0;
#pragma omp simd reduction(+ : total)
    for (npy_intp i = 0; i < n; i++) {
        T xi = x[i], yi = y[i];
        T wi = has_w ? w[i * ws] : (T)1;
        T pwi = has_pw ? pw[i * pws] : (T)1;
        T ax = FCE_ABS_T(xi);  /* one and-not; the select form took four instructions */
        T e = FN(exp_nonpos)(-ax);
        T l1p = FN(log1p_unit)(e);
        T sp_pos = (xi > 0 ? xi : (T)0) + l1p;
        T sp_neg = (xi < 0 ? ax : (T)0) + l1p;
        T c_neg = (T)1 - yi;
        T c_pos = pwi * yi;
        /* a zero coefficient drops its term, so 0 * inf gives the limit at
         * x = +-inf; a NaN x, whose terms may both be dropped, stays NaN */
        T t_neg = c_neg == 0 ? (T)0 : c_neg * sp_pos;
        T t_pos = c_pos == 0 ? (T)0 : c_pos * sp_neg;
        T l = xi != xi ? xi : t_neg + t_pos;
        if (has_w) {
            /* an unweighted loss that overflowed T may fit once weighted:
             * then the finite weight scales the coefficients instead (an
             * infinite or NaN weight keeps w * l, as PyTorch forms it) */
            T tw_neg = c_neg == 0 ? (T)0 : (wi * c_neg) * sp_pos;
            T tw_pos = c_pos == 0 ? (T)0 : (wi * c_pos) * sp_neg;
            T aw = FCE_ABS_T(wi), al = FCE_ABS_T(l);
            l = (al == (T)INFINITY && aw < (T)INFINITY) ? tw_neg + tw_pos : wi * l;
        }
        if (want_loss) loss_out[i] = l;
        total += (double)l;
        if (want_grad) {
            T inv = (T)1 / ((T)1 + e);
            T sig_x = xi >= 0 ? inv : e * inv;
            T sig_negx = xi >= 0 ? e * inv : inv;
            T d = c_neg * sig_x - c_pos * sig_negx;
            T s = gscale * gout[i * gos];
            grad[i] = has_w ? s * wi * d : s * d;
        }
    }
    return total;
}

#undef FCE_ABS_T

#define FCE_BCE_CALL(hw, hp, wl, wg) \
    FN(bce_logits_impl)(x, y, n, w, ws, pw, pws, loss_out, grad, gout, gos, gscale, hw, hp, wl, wg)
#define FCE_BCE_BY_WEIGHTS(wl, wg)                         \
    (w ? (pw ? FCE_BCE_CALL(1, 1, wl, wg) : FCE_BCE_CALL(1, 0, wl, wg)) \
       : (pw ? FCE_BCE_CALL(0, 1, wl, wg) : FCE_BCE_CALL(0, 0, wl, wg)))

static double FN(bce_logits)(const T *x, const T *y, npy_intp n, const T *w, npy_intp ws,
                             const T *pw, npy_intp pws, T *loss_out, T *grad,
                             const T *gout, npy_intp gos, T gscale)
{
    if (grad)
        return loss_out ? FCE_BCE_BY_WEIGHTS(1, 1) : FCE_BCE_BY_WEIGHTS(0, 1);
    return loss_out ? FCE_BCE_BY_WEIGHTS(1, 0) : FCE_BCE_BY_WEIGHTS(0, 0);
}
#undef FCE_BCE_BY_WEIGHTS
#undef FCE_BCE_CALL

/* Binary cross-entropy on probabilities, as PyTorch computes it:
 *   l = -w [y max(log p, -100) + (1 - y) max(log(1 - p), -100)]
 *   dl/dp = w g (p - y) / max((1 - p) p, 1e-12)
 * The inputs were checked to lie in [0, 1] before this runs. */
static double FN(bce_prob)(const T *p, const T *y, npy_intp n, const T *w, npy_intp ws,
                           T *loss_out, T *grad, const T *gout, npy_intp gos, T gscale)
{
    double total = 0.0;
    for (npy_intp i = 0; i < n; i++) {
        T pi = p[i], yi = y[i];
        T wi = w ? w[i * ws] : (T)1;
        /* log1p(-p), not PyTorch's log(1 - p): the same within rounding, but
         * exact for small p, where 1 - p drops p's digits */
#if FCE_F64
        T lp = log(pi), lq = log1p(-pi);
#else
        T lp = logf(pi), lq = log1pf(-pi);
#endif
        lp = lp < (T)-100 ? (T)-100 : lp;
        lq = lq < (T)-100 ? (T)-100 : lq;
        T l = (yi - (T)1) * lq - yi * lp;
        l = w ? wi * l : l;
        if (loss_out) loss_out[i] = l;
        total += (double)l;
        if (grad) {
            T den = ((T)1 - pi) * pi;
            den = den < (T)1e-12f ? (T)1e-12f : den;  /* PyTorch's EPSILON is float32 */
            T d = gscale * gout[i * gos] * (pi - yi) / den;
            grad[i] = w ? wi * d : d;
        }
    }
    return total;
}

/* Index of the first value outside [0, 1] (NaN included), or -1. */
static npy_intp FN(first_outside_unit)(const T *v, npy_intp n)
{
    for (npy_intp b = 0; b < n; b += 4096) {
        npy_intp e = n - b < 4096 ? n : b + 4096;
        int bad = 0;
#pragma omp simd reduction(| : bad)
        for (npy_intp i = b; i < e; i++) bad |= !(v[i] >= 0 && v[i] <= 1);
        if (bad)
            for (npy_intp i = b; i < e; i++)
                if (!(v[i] >= 0 && v[i] <= 1)) return i;
    }
    return -1;
}

/* The table of this (dtype, ISA) pair's entry points. */
static const FCE_CAT(fce_kernels, FCE_DT) FN(table) = {
    FN(tile_lse), FN(tile_wdot), FN(tile_prob), FN(tile_grad), FN(tile_log_softmax),
    FN(tile_index_finish), FN(tile_index_fix), FN(tile_index_grad_kept),
    FN(bce_logits), FN(bce_prob), FN(first_outside_unit),
};

#undef FN
#undef FCE_FMA
#undef FCE_FMA_D
