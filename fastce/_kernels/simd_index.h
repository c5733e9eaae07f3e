/*
 * Class-index targets: their decoding, the per-position loss and gradient
 * coefficients, the target-entry fix of the gradient, NLL, and the order of
 * a cross-entropy tile's steps (tile_index) -- the one place that order is
 * written.
 *
 * Part of the SIMD primitives: included by simd_impl.h once per (dtype T,
 * instruction set), so it has no include guard; see simd_impl.h for the
 * conventions (FN names, T, FCE_F64, the *_impl + dispatch idiom).
 *
 * A tile's targets are decoded once (index_decode): class or -1, target
 * weight, the tile's weight sum and first out-of-range position.  Every
 * step after it -- gradient coefficients, target-entry fix, NLL, the
 * validation pass, the weight sum and the bad-position report -- reads the
 * decoded arrays.  Only the loss loop reads the raw targets again, through
 * the same rule (see index_loss_impl for why).  The weight sum runs in
 * position order, so forward and loss + gradient divide by the same bits.
 */

/* ---------------------------------------------------------- decoding --- */

#define FCE_TARGET(p)                                                             \
    (is64 ? (long long)((const int64_t *)target)[p]                              \
          : (long long)((const int32_t *)target)[p])
#define FCE_TARGET_VALID(t) ((t) != ign && (t) >= 0 && (t) < nc)

/* A tile's totals from its raw targets: the sum of the valid targets'
 * weights in position order (when weight_sum is given) and the first
 * out-of-range position, relative, only scanned for when n_bad says there
 * is one.  The decoder and the forward loss loop both finish with it. */
static FCE_ALWAYS_INLINE void FN(target_totals)(const void *target, const int is64,
                                               npy_intp np_, npy_intp nc, long long ign,
                                               const T *w, const int has_w,
                                               npy_intp n_valid, npy_intp n_bad,
                                               double *weight_sum, npy_intp *bad)
{
    if (weight_sum && has_w) {
        double ws = 0.0;
        for (npy_intp p = 0; p < np_; p++) {
            const long long t = FCE_TARGET(p);
            if (FCE_TARGET_VALID(t)) ws += (double)w[t];
        }
        *weight_sum = ws;
    } else if (weight_sum) {
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
}

/* sum_weights: also d->weight_sum (the loss loop gives it otherwise). */
static FCE_ALWAYS_INLINE void FN(index_decode_impl)(const void *target, const int is64,
                                                   npy_intp np_, npy_intp nc,
                                                   long long ign, const T *w,
                                                   const int has_w, const int sum_weights,
                                                   fce_targets *d)
{
    npy_intp n_valid = 0, n_bad = 0;
    if (nc <= 0) {
        /* no class (w may be empty): every target is ignored or out of range */
        for (npy_intp p = 0; p < np_; p++) {
            d->cls[p] = -1;
            d->wt[p] = 0.0;
            n_bad += FCE_TARGET(p) != ign;
        }
    } else {
        /* no branch in this loop: gcc vectorises only straight-line bodies */
#pragma omp simd reduction(+ : n_valid, n_bad)
        for (npy_intp p = 0; p < np_; p++) {
            const long long t = FCE_TARGET(p);
            const int valid = FCE_TARGET_VALID(t);
            const double wt = has_w ? (double)w[valid ? t : 0] : 1.0;
            d->cls[p] = valid ? (npy_intp)t : -1;
            d->wt[p] = valid ? wt : 0.0;
            n_valid += valid;
            n_bad += t != ign && !valid;
        }
    }
    d->weight_sum = 0.0;
    FN(target_totals)(target, is64, np_, nc, ign, w, has_w, n_valid, n_bad,
                      sum_weights ? &d->weight_sum : NULL, &d->bad);
}

static FCE_ALWAYS_INLINE void FN(decode_targets)(const fce_class_args *a, npy_intp first,
                                                npy_intp np_, fce_targets *d,
                                                const int sum_weights)
{
    const T *w = (const T *)a->weight;
    const npy_intp nc = a->n_cls;
    const long long ign = a->ignore_index;
    if (a->target_is_64) {
        const void *t = (const int64_t *)a->target + first;
        if (w) FN(index_decode_impl)(t, 1, np_, nc, ign, w, 1, sum_weights, d);
        else FN(index_decode_impl)(t, 1, np_, nc, ign, w, 0, sum_weights, d);
    } else {
        const void *t = (const int32_t *)a->target + first;
        if (w) FN(index_decode_impl)(t, 0, np_, nc, ign, w, 1, sum_weights, d);
        else FN(index_decode_impl)(t, 0, np_, nc, ign, w, 0, sum_weights, d);
    }
    if (d->bad >= 0) d->bad += first;
}

/* Decode targets first..first+np_ (np_ <= FCE_TILE_MAX); d->bad is a flat
 * position. */
static void FN(index_decode)(const fce_class_args *a, npy_intp first, npy_intp np_,
                             fce_targets *d)
{
    FN(decode_targets)(a, first, np_, d, 1);
}

/* ------------------------------------------------ loss, coefficients --- */

/* Gradient coefficients: a = s ((1 - eps) w_t + (eps / C) W + 2 z w_t lse),
 * beta = s eps / C, 0 for ignored positions; s is the upstream gradient and
 * z the z-loss coefficient (its term z w_t lse^2 has gradient
 * 2 z w_t lse softmax, so it only adds to a). */
static FCE_ALWAYS_INLINE void FN(index_coef_impl)(
    npy_intp np_, const fce_targets *d, const double *gout, const int has_gout,
    double gscale, double keep, double smooth, double wtotal, const int has_z,
    double z_loss, const double *shift, const double *logsum, double *coef, double *beta)
{
#pragma omp simd
    for (npy_intp p = 0; p < np_; p++) {
        const int valid = d->cls[p] >= 0;
        const double s = gscale * (has_gout ? gout[p] : 1.0);
        double amount = keep * d->wt[p] + smooth * wtotal;
        if (has_z) amount = amount + 2.0 * z_loss * d->wt[p] * (shift[p] + logsum[p]);
        coef[p] = valid ? s * amount : 0.0;
        beta[p] = valid ? s * smooth : 0.0;
    }
}

/* Per position the loss
 *   l = -(1 - eps) w_t log p_t - (eps / C) sum_c w_c log p_c + z w_t lse^2
 * (0 for ignored or out-of-range targets; z the z-loss coefficient, lse the
 * position's log-sum-exp), vectorised across positions:
 * the lanes take the target's logit with a gather.  This loop reads the
 * raw targets, exactly as it always has, rather than the decoded ones:
 * whether gcc vectorises it, and how (it versions the loop for rows, where
 * the class stride is 1; AVX2 has no 64-bit multiply, SSE2 no gather),
 * follows from its body, and the lanes fix the order of the loss sum, so
 * any other body moves some sums by an ulp (decoding in this loop did).
 * The rule is the decoder's (FCE_TARGET_VALID).  With totals (a forward
 * tile, which needs no decoded arrays) it also gives the tile's weight sum
 * and first bad position, counted here as the loss loop always has: a
 * separate decoding pass cost short rows (C = 4) 25% of their forward.
 * Returns the loss sum.  np_ <= FCE_TILE_MAX. */
static FCE_ALWAYS_INLINE double FN(index_loss_impl)(
    const T *x, npy_intp np_, npy_intp ps, npy_intp cs, const void *target,
    const int is64, npy_intp nc, long long ign, const T *w, const int has_w, double eps,
    double wtotal, const int smoothing, const int has_z, double z_loss, T *loss_out,
    const double *shift, const double *logsum, const double *dot, fce_targets *totals)
{
    const double keep = 1.0 - eps;
    const double smooth = nc > 0 ? eps / (double)nc : 0.0;
    double losses[FCE_TILE_MAX];
    double loss_sum = 0.0;
    npy_intp n_valid = 0, n_bad = 0;
    if (nc <= 0) {
        /* no class to gather from (x and w may be empty): every loss is 0 */
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
            if (has_z) {
                const double lse = shift[p] + logsum[p];
                l = l + z_loss * wt * (lse * lse);
            }
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
    /* the tile's weight sum and first bad position, counted here as the
     * loss loop always has */
    FN(target_totals)(target, is64, np_, nc, ign, w, has_w, n_valid, n_bad,
                      &totals->weight_sum, &totals->bad);
    return loss_sum;
}


/* The softmax focal loss (Lin et al. 2017) of positions first..first+np_:
 *   f = -alpha_t w_t (1 - p_t)^gamma log p_t,  with u = -log p_t = lse - x_t,
 * 1 - p_t = -expm1(-u) (exact as p_t -> 1) and 0 at ignored positions.
 * Its gradient is k (softmax - onehot) with
 *   k = alpha_t w_t (1 - p_t)^gamma (1 + gamma p_t u / (1 - p_t)),
 * cross-entropy's with w_t replaced by k: so, with a gradient, d->wt takes k
 * and the usual coefficient and target fix write it.  u / (1 - p_t) -> 1 as
 * p_t -> 1, so gamma < 1 meets no 0 * inf.  One scalar loop per position
 * (the elements' work is the log-sum-exp's, shared with cross-entropy).
 * Returns the loss sum; d's weight sum (of w_t) and first bad position as
 * the decoder gives them. */
static double FN(focal_losses)(const T *x, npy_intp np_, npy_intp ps, npy_intp cs,
                               const fce_class_args *a, npy_intp first, fce_targets *d,
                               const double *shift, const double *logsum)
{
    T *loss_out = a->loss_out ? (T *)a->loss_out + first : NULL;
    const T *alpha = (const T *)a->focal_alpha;
    const double gamma = a->focal_gamma;
    double loss_sum = 0.0;
    FN(decode_targets)(a, first, np_, d, 1);
    for (npy_intp p = 0; p < np_; p++) {
        const npy_intp c = d->cls[p];
        if (c < 0) {
            if (loss_out) loss_out[p] = 0;
            continue;
        }
        double u = logsum[p] - ((double)x[p * ps + c * cs] - shift[p]);
        if (u < 0.0) u = 0.0;          /* p_t rounded above 1 */
        const double q = -expm1(-u), pt = exp(-u);
        const double mod = gamma == 0.0 ? 1.0 : pow(q, gamma);
        const double at = alpha ? (double)alpha[c] : 1.0;
        const double f = d->wt[p] * at * mod * u;
        loss_sum += f;
        if (loss_out) loss_out[p] = (T)f;
        if (a->grad) {
            const double ratio = q > 0.0 ? u / q : 1.0;
            d->wt[p] = d->wt[p] * at * mod * (1.0 + gamma * pt * ratio);
        }
    }
    return loss_sum;
}

/* The losses of positions first..first+np_ (into a->loss_out when given)
 * and d's weight sum and first bad position (flat); when the call has a
 * gradient, the targets decoded into d and the coefficients read from them.  Returns the loss sum.  x,
 * shift, logsum, dot are the tile's.  Never inlined: every caller (forward,
 * kept exponentials, split rows) runs the one compiled copy, so the loss
 * sum's order cannot depend on the caller and a loss + gradient call keeps
 * the forward's bits. */
static FCE_NOINLINE double FN(index_finish)(const T *x, npy_intp np_, npy_intp ps, npy_intp cs,
                               const fce_class_args *a, npy_intp first, fce_targets *d,
                               const double *shift, const double *logsum,
                               const double *dot, double *coef, double *beta)
{
    const npy_intp nc = a->n_cls;
    const long long ign = a->ignore_index;
    const T *w = (const T *)a->weight;
    T *loss_out = a->loss_out ? (T *)a->loss_out + first : NULL;
    const double *gout = a->gout ? a->gout + first : NULL;
    const double keep = 1.0 - a->eps;
    const double smooth = nc > 0 ? a->eps / (double)nc : 0.0;
    const void *target = a->target_is_64
        ? (const void *)((const int64_t *)a->target + first)
        : (const void *)((const int32_t *)a->target + first);
#define FCE_LOSS(is64, hw, sm, hz)                                                  \
    FN(index_loss_impl)(x, np_, ps, cs, target, is64, nc, ign, w, hw, a->eps,        \
                        a->weight_total, sm, hz, a->z_loss, loss_out, shift, logsum, \
                        dot, d)
#define FCE_LOSS_BY_TARGET(hw, sm, hz) \
    (a->target_is_64 ? FCE_LOSS(1, hw, sm, hz) : FCE_LOSS(0, hw, sm, hz))
#define FCE_LOSS_BY_Z(hw, sm) \
    (a->z_loss != 0 ? FCE_LOSS_BY_TARGET(hw, sm, 1) : FCE_LOSS_BY_TARGET(hw, sm, 0))
#define FCE_COEF(hg, hz)                                                            \
    FN(index_coef_impl)(np_, d, gout, hg, a->gscale, keep, smooth, a->weight_total, \
                        hz, a->z_loss, shift, logsum, coef, beta)
    double loss;
    if (a->focal) {
        loss = FN(focal_losses)(x, np_, ps, cs, a, first, d, shift, logsum);
    } else {
        /* the loss loop gives the weight sum: the decoder need not */
        if (a->grad) FN(decode_targets)(a, first, np_, d, 0);
        if (w) loss = a->eps > 0 ? FCE_LOSS_BY_Z(1, 1) : FCE_LOSS_BY_Z(1, 0);
        else loss = a->eps > 0 ? FCE_LOSS_BY_Z(0, 1) : FCE_LOSS_BY_Z(0, 0);
        if (d->bad >= 0) d->bad += first;
    }
    if (a->grad) {
        if (a->z_loss != 0) {
            if (gout) FCE_COEF(1, 1); else FCE_COEF(0, 1);
        } else {
            if (gout) FCE_COEF(1, 0); else FCE_COEF(0, 0);
        }
    }
    return loss;
#undef FCE_COEF
#undef FCE_LOSS_BY_Z
#undef FCE_LOSS_BY_TARGET
#undef FCE_LOSS
}

/* ----------------------------------------------------- gradient fix ---- */

/* The index-target part of the gradient, after tile_grad: subtract
 * s (1 - eps) w_t at each target entry, and zero ignored positions exactly
 * (their logits may be NaN). */
static FCE_ALWAYS_INLINE void FN(index_fix_impl)(T *g, npy_intp np_, npy_intp ps,
                                                npy_intp cs, npy_intp nc, double keep,
                                                double gscale, const fce_targets *d,
                                                const double *gout, const int has_gout)
{
    double fix[FCE_TILE_MAX];
    /* the amounts first, without a branch, so the scattered updates below
     * are a short loop */
#pragma omp simd
    for (npy_intp p = 0; p < np_; p++) {
        const double s = gscale * (has_gout ? gout[p] : 1.0);
        fix[p] = s * keep * d->wt[p];
    }
    for (npy_intp p = 0; p < np_; p++) {
        const npy_intp c = d->cls[p];
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

/* Positions first..first+np_ of the flat gout; g is the tile's. */
static void FN(index_fix)(T *g, npy_intp np_, npy_intp ps, npy_intp cs,
                          const fce_class_args *a, npy_intp first, const fce_targets *d)
{
    const double *gout = a->gout ? a->gout + first : NULL;
    if (a->n_cls <= 0) return;  /* no gradient entry */
    if (gout)
        FN(index_fix_impl)(g, np_, ps, cs, a->n_cls, 1.0 - a->eps, a->gscale, d, gout, 1);
    else
        FN(index_fix_impl)(g, np_, ps, cs, a->n_cls, 1.0 - a->eps, a->gscale, d, gout, 0);
}

/* ------------------------------------------------- Hessian diagonal --- */

/* The focal loss's extra curvature, per position (boosting objectives).
 * With k = alpha_t w_t phi(p_t) its gradient factor (focal_losses),
 *   d2f/dz_c^2 = k p_c (1 - p_c) - s alpha_t w_t phi'(p_t) p_t (delta_ct - p_c)^2,
 *   phi'(p) = gamma q^(gamma-1) (u - 2 - (gamma - 1) p u / q),
 * q = 1 - p_t = -expm1(-u), u = -log p_t, s the upstream factor.  psi[p] is
 * the factor of p_c^2 (c != t); the target entry's whole diagonal goes to
 * h_target (its (delta - p)^2 is q^2, taken into q^(gamma+1) so that no
 * q^(gamma-1) is formed there).  psi is 0 where q is 0: p_c <= q for every
 * other class, so the term is below q^(gamma+1) there, and it saturates at
 * T's largest value (times a p_c^2 of 0 it gives 0, not NaN). */
static void FN(focal_curvature)(const T *x, npy_intp np_, npy_intp ps, npy_intp cs,
                                const fce_class_args *a, npy_intp first,
                                const fce_targets *d, const double *shift,
                                const double *logsum, const double *coef, double *psi,
                                double *h_target)
{
    const T *w = (const T *)a->weight;
    const T *alpha = (const T *)a->focal_alpha;
    const double *gout = a->gout ? a->gout + first : NULL;
    const double gamma = a->focal_gamma;
#if FCE_F64
    const double big = DBL_MAX;
#else
    const double big = FLT_MAX;
#endif
    for (npy_intp p = 0; p < np_; p++) {
        const npy_intp c = d->cls[p];
        psi[p] = 0.0;
        h_target[p] = 0.0;
        if (c < 0) continue;
        double u = logsum[p] - ((double)x[p * ps + c * cs] - shift[p]);
        if (u < 0.0) u = 0.0;
        const double q = -expm1(-u), pt = exp(-u);
        const double ratio = q > 0.0 ? u / q : 1.0;
        const double s = a->gscale * (gout ? gout[p] : 1.0);
        const double f = s * (w ? (double)w[c] : 1.0) * (alpha ? (double)alpha[c] : 1.0)
                         * gamma * pt * (u - 2.0 - (gamma - 1.0) * pt * ratio);
        if (q > 0.0) {
            const double v = -f * pow(q, gamma - 1.0);
            psi[p] = v > big ? big : (v < -big ? -big : v);
        }
        const double diag = coef[p] * pt * q - f * pow(q, gamma + 1.0);
        const double hv = a->hess_scale * diag;
        h_target[p] = hv < a->hess_floor ? a->hess_floor : hv;
    }
}

/* The Hessian's entries the writer does not know: the focal target
 * entries' own diagonal (h_target, NULL: none) and 0 at ignored positions,
 * like the gradient's. */
static void FN(hess_fix)(T *h, npy_intp np_, npy_intp nc, npy_intp ps, npy_intp cs,
                         const fce_targets *d, const double *h_target)
{
    for (npy_intp p = 0; p < np_; p++) {
        const npy_intp c = d->cls[p];
        if (c >= 0) {
            if (h_target) h[p * ps + c * cs] = (T)h_target[p];
        } else {
            for (npy_intp k = 0; k < nc; k++) h[p * ps + k * cs] = 0;
        }
    }
}

/* Gradient and Hessian diagonal of an index-target tile whose statistics,
 * decoded targets and coefficients are ready (tile_index): the writer
 * computes both per element, then the gradient's target entries are fixed
 * as cross-entropy's are, the focal loss's target entries of h take their
 * own diagonal, and ignored positions get h = 0 like g. */
static FCE_NOINLINE void FN(index_grad_hess)(const T *x, T *g, T *h, npy_intp np_,
                                             npy_intp nc, npy_intp ps, npy_intp cs,
                                             const fce_class_args *a, npy_intp first,
                                             const fce_targets *d, const double *shift,
                                             const double *logsum, const double *coef,
                                             const double *beta)
{
    double psi[FCE_TILE_MAX], h_target[FCE_TILE_MAX];
    const int curved = a->focal && a->focal_gamma != 0.0;
    /* before the writer: g may be x */
    if (curved) FN(focal_curvature)(x, np_, ps, cs, a, first, d, shift, logsum, coef, psi,
                                    h_target);
    FN(tile_grad_hess)(x, g, h, np_, nc, ps, cs, shift, logsum, coef,
                       a->eps > 0 ? beta : NULL, (const T *)a->weight,
                       curved ? psi : NULL, a->hess_scale, a->hess_floor);
    FN(index_fix)(g, np_, ps, cs, a, first, d);
    FN(hess_fix)(h, np_, nc, ps, cs, d, curved ? h_target : NULL);
}

/* ------------------------------------------ the steps of a tile -------- */

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

/* Whether a loss + gradient tile can keep its exponentials for the
 * gradient: contiguous rows that fit the buffer. */
#define FCE_KEEPS_EXP(np_, nc, ps, cs) \
    ((cs) == 1 && (ps) == (nc) && 1 < (nc) && (nc) <= FCE_ROW_BLOCK \
     && (np_) <= FCE_TILE_MAX && (np_) * (nc) <= FCE_KEEP_EXP_MAX)

/* Loss + gradient of a tile of contiguous rows (FCE_KEEPS_EXP) in one
 * pass: the log-sum-exp keeps its exponentials in a buffer and they become
 * the softmax of the gradient, so each element is exponentiated once.
 * Short rows are transposed in once and out once.  The statistics are those
 * of tile_lse (row_lse is one block here), so the loss has the forward's
 * bits.  g may be x: x is last read before g is written.  Never inlined:
 * its buffer in tile_index's frame put the forward's statistics 50 KB down
 * the stack, out of L1, and cost short rows 12% of their forward. */
/* its np_ positions' statistics are all set before index_finish reads
 * them; gcc cannot see that np_ > 0 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
static FCE_NOINLINE double FN(index_tile_kept)(const T *x, T *g, npy_intp np_, npy_intp nc,
                                  const fce_class_args *a, npy_intp first, fce_targets *d)
{
    T buf[FCE_KEEP_EXP_MAX];
    double shift[FCE_TILE_MAX], logsum[FCE_TILE_MAX], sum[FCE_TILE_MAX], dot[FCE_TILE_MAX];
    double coef[FCE_TILE_MAX], beta[FCE_TILE_MAX];
    const T *w = (const T *)a->weight;
    const int smoothing = a->eps > 0;
    const int short_rows = nc < FCE_ROWWISE_MIN_C;
    if (short_rows) {
        FN(transpose_in)(x, np_, nc, nc, buf);
        FN(tile_lse_pm_impl)(buf, np_, nc, np_, shift, logsum, buf, sum, 1);
    } else {
        for (npy_intp p = 0; p < np_; p++) {
            const T *xr = x + p * nc;
            FN(prefetch_span)(xr + nc, nc / 2);  /* in two halves: see row_lse */
            const T m = FCE_SHIFT(FN(span_max)(xr, nc));
            FN(prefetch_span)(xr + nc + nc / 2, nc - nc / 2);
            sum[p] = FN(span_sum_exp_impl)(xr, nc, m, buf + p * nc, 1);
            shift[p] = (double)m;
            logsum[p] = log(sum[p]);
        }
    }
    /* the class sums and the target gather read x, as the forward does */
    if (smoothing) FN(tile_wdot)(x, np_, nc, nc, 1, w, shift, dot);
    double loss = FN(index_finish)(x, np_, nc, 1, a, first, d, shift, logsum,
                                   smoothing ? dot : NULL, coef, beta);
    /* short rows: the gradient is formed in the buffer, then transposed out;
     * a streamed gradient is formed there too, then copied out */
    const int stream = a->stream_grad && !short_rows;
    T *gk = short_rows || stream ? buf : g;
    const npy_intp ps = short_rows ? 1 : nc, cs = short_rows ? np_ : 1;
    if (!smoothing)
        FN(kept_grad_impl)(buf, gk, np_, nc, ps, cs, sum, coef, beta, w, 0, 0);
    else if (w)
        FN(kept_grad_impl)(buf, gk, np_, nc, ps, cs, sum, coef, beta, w, 1, 1);
    else
        FN(kept_grad_impl)(buf, gk, np_, nc, ps, cs, sum, coef, beta, w, 1, 0);
    FN(index_fix)(gk, np_, ps, cs, a, first, d);
    if (short_rows) {
        FN(transpose_out)(buf, np_, nc, nc, g);
    } else if (stream) {
        FN(stream_copy)(buf, g, np_ * nc);
        FN(stream_fence)();
    }
    return loss;
}
#pragma GCC diagnostic pop

/* kept_grad_impl with the Hessian's diagonal (tile_grad_hess's formula):
 * q = e / sum, g = a q - w beta, h = max(hs (a q (1 - q) + psi q^2), floor).
 * Layouts as kept_grad_impl; h is never e. */
static FCE_ALWAYS_INLINE void FN(kept_grad_hess_impl)(
    const T *e, T *g, T *h, npy_intp np_, npy_intp nc, npy_intp ps, npy_intp cs,
    const double *sum, const double *a, const double *beta, const T *w,
    const double *psi, T hs, T floor_, const int has_beta, const int has_w,
    const int has_psi)
{
    T inv[FCE_TILE_MAX], ap[FCE_TILE_MAX], bp[FCE_TILE_MAX], cp[FCE_TILE_MAX];
    for (npy_intp p = 0; p < np_; p++) {
        inv[p] = (T)(1.0 / sum[p]);
        ap[p] = (T)a[p];
        bp[p] = has_beta ? (T)beta[p] : 0;
        cp[p] = has_psi ? (T)psi[p] : 0;
    }
    if (cs == 1) {
#define FCE_GH_ENTRY                                                                 \
    do {                                                                             \
        const T q = er[c] * i_;                                                      \
        T v = a_ * q;                                                                \
        if (has_beta) v -= has_w ? w[c] * b_ : b_;                                   \
        T hv = a_ * q * ((T)1 - q);                                                  \
        if (has_psi) hv += c_ * (q * q);                                             \
        hv = hs * hv;                                                                \
        gr[c] = v;                                                                   \
        hr[c] = hv < floor_ ? floor_ : hv;   /* NaN stays NaN */                     \
    } while (0)
        for (npy_intp p = 0; p < np_; p++) {
            const T *er = e + p * ps;
            T *gr = g + p * ps, *hr = h + p * ps;
            const T i_ = inv[p], a_ = ap[p], b_ = bp[p], c_ = cp[p];
            /* the first entries one by one up to a 64-byte boundary of g (h
             * usually shares its offset): a row whose vector stores straddle
             * cache lines took 1.3x as long (rows of 112 floats) */
            npy_intp head = (npy_intp)((64 - ((uintptr_t)gr & 63)) & 63) / (npy_intp)sizeof(T);
            if (head > nc || ((uintptr_t)gr % sizeof(T))) head = nc < 16 ? nc : 0;
            npy_intp c = 0;
            for (; c < head; c++) FCE_GH_ENTRY;
#pragma omp simd
            for (c = head; c < nc; c++) FCE_GH_ENTRY;
        }
#undef FCE_GH_ENTRY
    } else {
        for (npy_intp c = 0; c < nc; c++) {
            const T *ec = e + c * cs;
            T *gc = g + c * cs, *hc = h + c * cs;
            const T wc = has_w ? w[c] : (T)1;
#pragma omp simd
            for (npy_intp p = 0; p < np_; p++) {
                const T q = ec[p] * inv[p];
                T v = ap[p] * q;
                if (has_beta) v -= has_w ? wc * bp[p] : bp[p];
                T hv = ap[p] * q * ((T)1 - q);
                if (has_psi) hv += cp[p] * (q * q);
                hv = hs * hv;
                gc[p] = v;
                hc[p] = hv < floor_ ? floor_ : hv;
            }
        }
    }
}

/* index_tile_kept with the Hessian (boosting objectives): the kept
 * exponentials give g and h, one exponential per element.  A function of
 * its own so that the Hessian's buffer stays out of index_tile_kept's
 * frame.  g may be x; h is not.  (Measured and dropped: rows of 100
 * classes run position-major, transposed in and out, were 1.5x slower; a
 * padded 16-lane block for a row's last nc % 16 classes gained nothing.) */
#define FCE_HESS_FLAT_MAX_C 512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
static FCE_NOINLINE double FN(index_tile_kept_hess)(const T *x, T *g, T *h, npy_intp np_,
                                                    npy_intp nc, const fce_class_args *a,
                                                    npy_intp first, fce_targets *d)
{
    T buf[FCE_KEEP_EXP_MAX], hbuf_rows[FCE_KEEP_EXP_MAX];
    T *hbuf = hbuf_rows;   /* short rows: the transposed Hessian */
    double shift[FCE_TILE_MAX], logsum[FCE_TILE_MAX], sum[FCE_TILE_MAX], dot[FCE_TILE_MAX];
    double coef[FCE_TILE_MAX], beta[FCE_TILE_MAX], psi[FCE_TILE_MAX];
    double h_target[FCE_TILE_MAX];
    const T *w = (const T *)a->weight;
    const int smoothing = a->eps > 0;
    const int curved = a->focal && a->focal_gamma != 0.0;
    const int short_rows = nc < FCE_ROWWISE_MIN_C;
    if (short_rows) {
        FN(transpose_in)(x, np_, nc, nc, buf);
        FN(tile_lse_pm_impl)(buf, np_, nc, np_, shift, logsum, buf, sum, 1);
    } else if (nc < FCE_HESS_FLAT_MAX_C) {
        /* the exponentials in one flat loop over the tile, each row's max
         * spread over its entries first: a row-by-row loop pays a scalar
         * tail of exponentials per row (4 of 100 classes cost a third of
         * the row; rows of 50 took 1.25x as long) */
        T *shifts = hbuf_rows;
        for (npy_intp p = 0; p < np_; p++) {
            const T *xr = x + p * nc;
            const T m = FCE_SHIFT(FN(span_max)(xr, nc));
            shift[p] = (double)m;
            T *sr = shifts + p * nc;
#pragma omp simd
            for (npy_intp c = 0; c < nc; c++) sr[c] = m;
        }
        const npy_intp n_el = np_ * nc;
#pragma omp simd
        for (npy_intp k = 0; k < n_el; k++) buf[k] = FN(exp_nonpos)(x[k] - shifts[k]);
        for (npy_intp p = 0; p < np_; p++) {
            const T *er = buf + p * nc;
            T s_ = 0;
#pragma omp simd reduction(+ : s_)
            for (npy_intp c = 0; c < nc; c++) s_ += er[c];
            sum[p] = (double)s_;
            logsum[p] = log(sum[p]);
        }
    } else {
        /* long rows: few per tile, their tails matter less than a second
         * pass over the tile */
        for (npy_intp p = 0; p < np_; p++) {
            const T *xr = x + p * nc;
            FN(prefetch_span)(xr + nc, nc / 2);  /* in two halves: see row_lse */
            const T m = FCE_SHIFT(FN(span_max)(xr, nc));
            FN(prefetch_span)(xr + nc + nc / 2, nc - nc / 2);
            sum[p] = FN(span_sum_exp_impl)(xr, nc, m, buf + p * nc, 1);
            shift[p] = (double)m;
            logsum[p] = log(sum[p]);
        }
    }
    if (smoothing) FN(tile_wdot)(x, np_, nc, nc, 1, w, shift, dot);
    double loss = FN(index_finish)(x, np_, nc, 1, a, first, d, shift, logsum,
                                   smoothing ? dot : NULL, coef, beta);
    if (curved) FN(focal_curvature)(x, np_, nc, 1, a, first, d, shift, logsum, coef, psi,
                                    h_target);
    /* streamed outputs are formed and fixed in the buffers, then copied
     * out, as in index_tile_kept (the shifts' scratch is free by now) */
    const int stream = a->stream_grad && !short_rows;
    T *gk = short_rows || stream ? buf : g, *hk = short_rows || stream ? hbuf : h;
    const npy_intp ps = short_rows ? 1 : nc, cs = short_rows ? np_ : 1;
    const T hs = (T)a->hess_scale, floor_ = (T)a->hess_floor;
#define FCE_KEPT_HESS(hb, hw, hp)                                                    \
    FN(kept_grad_hess_impl)(buf, gk, hk, np_, nc, ps, cs, sum, coef, beta, w, psi, hs, \
                            floor_, hb, hw, hp)
    if (curved) FCE_KEPT_HESS(0, 0, 1);
    else if (!smoothing) FCE_KEPT_HESS(0, 0, 0);
    else if (w) FCE_KEPT_HESS(1, 1, 0);
    else FCE_KEPT_HESS(1, 0, 0);
#undef FCE_KEPT_HESS
    FN(index_fix)(gk, np_, ps, cs, a, first, d);
    FN(hess_fix)(hk, np_, nc, ps, cs, d, curved ? h_target : NULL);
    if (short_rows) {
        FN(transpose_out)(buf, np_, nc, nc, g);
        FN(transpose_out)(hbuf, np_, nc, nc, h);
    } else if (stream) {
        FN(stream_copy)(buf, g, np_ * nc);
        FN(stream_copy)(hbuf, h, np_ * nc);
        FN(stream_fence)();
    }
    return loss;
}
#pragma GCC diagnostic pop

/* Cross-entropy of one tile with class-index targets, the steps in order:
 * the log-sum-exp (and the class sums of label smoothing); the targets
 * decoded with the losses, and the gradient coefficients; with g, the
 * gradient write g = a softmax - w beta and the target-entry fix (with
 * a->hess, the Hessian's diagonal written with it, index_grad_hess).  Positions are
 * first..first+np_ of the flat targets; g (NULL: forward only) may be x.
 * Returns the loss sum; *weight_sum and *bad as in fce_targets. */
static double FN(tile_index)(const T *x, T *g, npy_intp np_, npy_intp nc, npy_intp ps,
                             npy_intp cs, const fce_class_args *a, npy_intp first,
                             double *weight_sum, npy_intp *bad)
{
    fce_targets d;
    double shift[FCE_TILE_MAX], logsum[FCE_TILE_MAX], dot[FCE_TILE_MAX];
    double coef[FCE_TILE_MAX], beta[FCE_TILE_MAX];
    const T *w = (const T *)a->weight;
    const int smoothing = a->eps > 0;
    double loss;
    /* the Hessian lies at g's offset in its own buffer */
    T *h = a->hess && g ? (T *)a->hess + (g - (T *)a->grad) : NULL;
    if (g && FCE_KEEPS_EXP(np_, nc, ps, cs)) {
        loss = h ? FN(index_tile_kept_hess)(x, g, h, np_, nc, a, first, &d)
                 : FN(index_tile_kept)(x, g, np_, nc, a, first, &d);
    } else {
        FN(tile_lse)(x, np_, nc, ps, cs, shift, logsum);
        if (smoothing) FN(tile_wdot)(x, np_, nc, ps, cs, w, shift, dot);
        loss = FN(index_finish)(x, np_, ps, cs, a, first, &d, shift, logsum,
                                smoothing ? dot : NULL, coef, beta);
        if (h) {
            FN(index_grad_hess)(x, g, h, np_, nc, ps, cs, a, first, &d, shift, logsum,
                                coef, beta);
        } else if (g) {
            if (smoothing)
                FN(tile_grad)(x, g, np_, nc, ps, cs, shift, logsum, coef, beta, w, NULL,
                              NULL);
            else
                FN(tile_grad)(x, g, np_, nc, ps, cs, shift, logsum, coef, NULL, NULL, NULL,
                              NULL);
            FN(index_fix)(g, np_, ps, cs, a, first, &d);
        }
    }
    *weight_sum = d.weight_sum;
    *bad = d.bad;
    return loss;
}

#undef FCE_KEEPS_EXP

/* NLL of positions first..first+np_: one scalar loop decodes each target
 * (into d, for the gradient) and adds its loss and weight in position
 * order, as NLL always has; a separate decoding pass made the weighted
 * forward of short rows 1.9x slower. */
static FCE_ALWAYS_INLINE double FN(nll_impl)(const T *x, npy_intp np_, npy_intp ps,
                                            npy_intp cs, const void *target, const int is64,
                                            npy_intp nc, long long ign, const T *w,
                                            const int has_w, T *loss_out, fce_targets *d)
{
    double loss_sum = 0.0, ws = 0.0;
    d->bad = -1;
    for (npy_intp p = 0; p < np_; p++) {
        const long long t = FCE_TARGET(p);
        if (!FCE_TARGET_VALID(t)) {
            if (t != ign && d->bad < 0) d->bad = p;
            if (loss_out) loss_out[p] = 0;
            d->cls[p] = -1;
            continue;
        }
        const double wt = has_w ? (double)w[t] : 1.0;
        const double l = -wt * (double)x[p * ps + t * cs];
        loss_sum += l;
        ws += wt;
        if (loss_out) loss_out[p] = (T)l;
        d->cls[p] = (npy_intp)t;
        d->wt[p] = wt;
    }
    d->weight_sum = ws;
    return loss_sum;
}

/* NLL of one tile: l = -w_t x_t (0 where ignored); the gradient is
 * -s w_t at the target entry and 0 elsewhere.  Arguments as tile_index. */
static double FN(tile_nll)(const T *x, T *g, npy_intp np_, npy_intp nc, npy_intp ps,
                           npy_intp cs, const fce_class_args *a, npy_intp first,
                           double *weight_sum, npy_intp *bad)
{
    fce_targets d;
    const T *w = (const T *)a->weight;
    const long long ign = a->ignore_index;
    T *loss_out = a->loss_out ? (T *)a->loss_out + first : NULL;
    const double *gout = a->gout ? a->gout + first : NULL;
    const void *target = a->target_is_64
        ? (const void *)((const int64_t *)a->target + first)
        : (const void *)((const int32_t *)a->target + first);
    double loss_sum;
#define FCE_NLL(is64, hw) \
    FN(nll_impl)(x, np_, ps, cs, target, is64, nc, ign, w, hw, loss_out, &d)
    if (a->target_is_64) loss_sum = w ? FCE_NLL(1, 1) : FCE_NLL(1, 0);
    else loss_sum = w ? FCE_NLL(0, 1) : FCE_NLL(0, 0);
#undef FCE_NLL
    *weight_sum = d.weight_sum;
    *bad = d.bad >= 0 ? first + d.bad : -1;
    if (!g) return loss_sum;
    /* the losses above read the logits first, so g may be x itself */
    if (cs == 1) {
        memset(g, 0, (size_t)(np_ * nc) * sizeof(T));
    } else {
        for (npy_intp c = 0; c < nc; c++) memset(g + c * cs, 0, (size_t)np_ * sizeof(T));
    }
    for (npy_intp p = 0; p < np_; p++) {
        const npy_intp c = d.cls[p];
        if (c >= 0) {
            const double s = a->gscale * (gout ? gout[p] : 1.0);
            g[p * ps + c * cs] = (T)(-s * d.wt[p]);
        }
    }
    return loss_sum;
}

#undef FCE_TARGET
#undef FCE_TARGET_VALID
