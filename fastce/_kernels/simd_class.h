/*
 * Class sums of a tile (weighted sums of log-probabilities, probability-target sums) and the writers of gradients and log_softmax.
 *
 * Part of the SIMD primitives: included by simd_impl.h once per (dtype T,
 * instruction set), so it has no include guard; see simd_impl.h for the
 * conventions (FN names, T, FCE_F64, the *_impl + dispatch idiom).
 */

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
 * converting every element to double made the forward of (8192, 1000)
 * with label smoothing about 8% slower. */
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

/* The gradient with the Hessian's diagonal, for boosting objectives:
 *   g[p, c] = a[p] q - w[c] beta[p],
 *   h[p, c] = max(hs (a[p] q (1 - q) + psi[p] q^2), floor)
 * with q = softmax[p, c].  The loss -sum_c t_c log softmax_c has the
 * diagonal (sum_c t_c) q (1 - q), and a carries sum_c t_c times the
 * upstream gradient, so a q (1 - q) serves every index-target variant;
 * psi (NULL: 0) adds the focal loss's curvature of its factor, whose
 * element (c != target) is psi q^2 (the target entry is fixed after this,
 * see index_grad_hess).  hs, floor: the objective's factor and lower bound.
 * One exponential per element for both outputs.  g may be x; h is not. */
static FCE_ALWAYS_INLINE void FN(tile_grad_hess_impl)(
    const T *x, T *g, T *h, npy_intp np_, npy_intp nc, npy_intp ps, npy_intp cs,
    const double *shift, const double *logsum, const double *a, const double *beta,
    const T *w, const double *psi, T hs, T floor_, const int has_beta, const int has_w,
    const int has_psi)
{
    T sh[FCE_TILE_MAX], ls[FCE_TILE_MAX], ap[FCE_TILE_MAX], bp[FCE_TILE_MAX];
    T cp[FCE_TILE_MAX];
    for (npy_intp p = 0; p < np_; p++) {
        sh[p] = (T)shift[p];
        ls[p] = (T)logsum[p];
        ap[p] = (T)a[p];
        bp[p] = has_beta ? (T)beta[p] : 0;
        cp[p] = has_psi ? (T)psi[p] : 0;
    }
    if (cs == 1 && ps != 1) {
        for (npy_intp p = 0; p < np_; p++) {
            const T *xr = x + p * ps;
            T *gr = g + p * ps, *hr = h + p * ps;
            const T s_ = sh[p], l_ = ls[p], a_ = ap[p], b_ = bp[p], c_ = cp[p];
#pragma omp simd
            for (npy_intp c = 0; c < nc; c++) {
                const T q = FN(exp_nonpos)((xr[c] - s_) - l_);
                T v = a_ * q;
                if (has_beta) v -= has_w ? w[c] * b_ : b_;
                T hv = a_ * q * ((T)1 - q);
                if (has_psi) hv += c_ * (q * q);
                hv = hs * hv;
                gr[c] = v;
                hr[c] = hv < floor_ ? floor_ : hv;   /* NaN stays NaN */
            }
        }
    } else {
        for (npy_intp c = 0; c < nc; c++) {
            const T *xc = x + c * cs;
            T *gc = g + c * cs, *hc = h + c * cs;
            const T wc = has_w ? w[c] : (T)1;
#pragma omp simd
            for (npy_intp p = 0; p < np_; p++) {
                const T q = FN(exp_nonpos)((xc[p * ps] - sh[p]) - ls[p]);
                T v = ap[p] * q;
                if (has_beta) v -= has_w ? wc * bp[p] : bp[p];
                T hv = ap[p] * q * ((T)1 - q);
                if (has_psi) hv += cp[p] * (q * q);
                hv = hs * hv;
                gc[p * ps] = v;
                hc[p * ps] = hv < floor_ ? floor_ : hv;
            }
        }
    }
}

#define FCE_GRAD_HESS_VARIANTS(X, G, H, PS, CS)                                       \
    do {                                                                             \
        if (!beta && !psi)                                                           \
            FN(tile_grad_hess_impl)(X, G, H, np_, nc, PS, CS, shift, logsum, a, beta, \
                                    w, psi, hs, floor_, 0, 0, 0);                    \
        else if (!beta)                                                              \
            FN(tile_grad_hess_impl)(X, G, H, np_, nc, PS, CS, shift, logsum, a, beta, \
                                    w, psi, hs, floor_, 0, 0, 1);                    \
        else if (!w)                                                                 \
            FN(tile_grad_hess_impl)(X, G, H, np_, nc, PS, CS, shift, logsum, a, beta, \
                                    w, psi, hs, floor_, 1, 0, 0);                    \
        else                                                                         \
            FN(tile_grad_hess_impl)(X, G, H, np_, nc, PS, CS, shift, logsum, a, beta, \
                                    w, psi, hs, floor_, 1, 1, 0);                    \
    } while (0)

/* beta (label smoothing) and psi (focal) never come together. */
static FCE_NOINLINE void FN(tile_grad_hess)(const T *x, T *g, T *h, npy_intp np_, npy_intp nc,
                                            npy_intp ps, npy_intp cs, const double *shift,
                                            const double *logsum, const double *a,
                                            const double *beta, const T *w,
                                            const double *psi, double hscale,
                                            double hfloor)
{
    const T hs = (T)hscale;
    const T floor_ = (T)hfloor;
    if (FCE_SHORT_ROWS(nc, ps, cs)) {
        /* transposed in, both outputs position-major in buffers, back out */
        T buf[FCE_TILE_MAX * FCE_ROWWISE_MIN_C], hbuf[FCE_TILE_MAX * FCE_ROWWISE_MIN_C];
        FN(transpose_in)(x, np_, nc, ps, buf);
        FCE_GRAD_HESS_VARIANTS(buf, buf, hbuf, 1, np_);
        FN(transpose_out)(buf, np_, nc, ps, g);
        FN(transpose_out)(hbuf, np_, nc, ps, h);
    } else if (ps == 1) {
        FCE_GRAD_HESS_VARIANTS(x, g, h, 1, cs);
    } else {
        FCE_GRAD_HESS_VARIANTS(x, g, h, ps, cs);
    }
}
#undef FCE_GRAD_HESS_VARIANTS

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
