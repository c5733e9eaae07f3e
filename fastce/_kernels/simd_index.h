/*
 * Class-index targets: the per-position loss and gradient coefficients,
 * the target-entry fix of the gradient, and loss + gradient tiles that keep
 * their exponentials.
 *
 * Part of the SIMD primitives: included by simd_impl.h once per (dtype T,
 * instruction set), so it has no include guard; see simd_impl.h for the
 * conventions (FN names, T, FCE_F64, the *_impl + dispatch idiom).
 */

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
