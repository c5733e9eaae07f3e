/*
 * Binary cross-entropy on logits and on probabilities, and the [0, 1] check of probabilities.
 *
 * Part of the SIMD primitives: included by simd_impl.h once per (dtype T,
 * instruction set), so it has no include guard; see simd_impl.h for the
 * conventions (FN names, T, FCE_F64, the *_impl + dispatch idiom).
 */

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

/* The sigmoid focal loss of torchvision.ops.sigmoid_focal_loss (Lin et al.
 * 2017), per element with p = sigmoid(x):
 *   l = w a_t m^gamma ce,  ce = BCE-with-logits(x, y),
 *   m = 1 - p_t = (1 - y) p + y (1 - p),  a_t = alpha y + (1 - alpha)(1 - y)
 * (a_t = 1 when alpha < 0).  Its gradient:
 *   dl/dx = w a_t m^gamma [(p - y) + gamma ce (1 - 2 y) p (1 - p) / m]
 * where p (1 - p) / m lies in [0, 1] (m is a mean of p and 1 - p), so
 * gamma < 1 meets no 0 * inf; it is 0 where m is 0 (there ce is 0 too).
 * sigmoid(+-x) and softplus come from exp(-|x|), as in bce_logits; a zero
 * coefficient drops its softplus term, so x = +-inf gives the limits.
 * A scalar loop: pow per element. */
static double FN(sigmoid_focal)(const T *x, const T *y, npy_intp n, const T *w,
                                npy_intp ws, T *loss_out, T *grad, const T *gout,
                                npy_intp gos, T gscale, double alpha, double gamma)
{
    double total = 0.0;
    for (npy_intp i = 0; i < n; i++) {
        const double xi = (double)x[i], yi = (double)y[i];
        const double wi = w ? (double)w[i * ws] : 1.0;
        const double ax = fabs(xi), e = exp(-ax), l1p = log1p(e);
        const double inv = 1.0 / (1.0 + e);
        const double p = xi >= 0 ? inv : e * inv, q = xi >= 0 ? e * inv : inv;
        const double c_neg = 1.0 - yi, c_pos = yi;
        const double t_neg = c_neg == 0 ? 0.0 : c_neg * ((xi > 0 ? xi : 0.0) + l1p);
        const double t_pos = c_pos == 0 ? 0.0 : c_pos * ((xi < 0 ? ax : 0.0) + l1p);
        const double ce = xi != xi ? xi : t_neg + t_pos;
        const double m = c_neg * p + c_pos * q;
        const double mod = gamma == 0.0 ? 1.0 : pow(m, gamma);
        const double at = alpha >= 0 ? alpha * yi + (1.0 - alpha) * (1.0 - yi) : 1.0;
        const double l = wi * at * mod * ce;
        if (loss_out) loss_out[i] = (T)l;
        total += (double)(T)l;
        if (grad) {
            const double r = m > 0 ? p * q / m : 0.0;
            const double d = (c_neg * p - c_pos * q) + gamma * ce * (1.0 - 2.0 * yi) * r;
            grad[i] = (T)((double)gscale * (double)gout[i * gos] * wi * at * mod * d);
        }
    }
    return total;
}

/* Gradient and Hessian of the logistic objectives (boosting), per element:
 * BCE with logits, l = w [(1 - y) softplus(x) + pw y softplus(-x)], has
 *   g = w [(1 - y) sigmoid(x) - pw y sigmoid(-x)],
 *   h = w [(1 - y) + pw y] sigmoid(x) sigmoid(-x);
 * the sigmoid focal loss l = w a_t m^gamma ce (sigmoid_focal) has
 *   g = w a_t m^gamma D,  D = (p - y) + gamma ce (1 - 2y) r,
 *   h = w a_t m^gamma [p (1 - p) + 2 gamma (1 - 2y) r (p - y)
 *       + gamma (gamma - 1) (1 - 2y)^2 r^2 ce + gamma (1 - 2y)(1 - 2p) r ce]
 * with r = p (1 - p) / m in [0, 1] (0 where m is 0, where m^gamma or gamma
 * zeroes every term it enters), so gamma < 1 meets no 0 * inf.  The focal
 * h is negative where the loss is concave (confidently wrong elements).
 * h is then scaled by hscale and bounded below by hfloor (-inf: none).
 * The plain loop is vectorised; the focal one is scalar (pow). */
static FCE_ALWAYS_INLINE void FN(logistic_grad_hess_impl)(
    const T *x, const T *y, npy_intp n, const T *w, npy_intp ws, const T *pw,
    npy_intp pws, T *grad, T *hess, T hs, T floor_, const int has_w, const int has_pw)
{
#pragma omp simd
    for (npy_intp i = 0; i < n; i++) {
        const T xi = x[i], yi = y[i];
        const T wi = has_w ? w[i * ws] : (T)1;
        const T pwi = has_pw ? pw[i * pws] : (T)1;
        const T e = FN(exp_nonpos)(xi >= 0 ? -xi : xi);
        const T inv = (T)1 / ((T)1 + e);
        const T sig_x = xi >= 0 ? inv : e * inv;
        const T sig_negx = xi >= 0 ? e * inv : inv;
        const T c_neg = (T)1 - yi, c_pos = pwi * yi;
        const T d = c_neg * sig_x - c_pos * sig_negx;
        T hv = (c_neg + c_pos) * (sig_x * sig_negx);
        if (has_w) hv = wi * hv;
        hv = hs * hv;
        grad[i] = has_w ? wi * d : d;
        hess[i] = hv < floor_ ? floor_ : hv;   /* NaN stays NaN */
    }
}

static FCE_ALWAYS_INLINE void FN(sigmoid_focal_grad_hess)(
    const T *x, const T *y, npy_intp n, const T *w, npy_intp ws, T *grad, T *hess,
    double hscale, double hfloor, double alpha, double gamma)
{
    for (npy_intp i = 0; i < n; i++) {
        const double xi = (double)x[i], yi = (double)y[i];
        const double wi = w ? (double)w[i * ws] : 1.0;
        const double ax = fabs(xi), e = exp(-ax), l1p = log1p(e);
        const double inv = 1.0 / (1.0 + e);
        const double p = xi >= 0 ? inv : e * inv, q = xi >= 0 ? e * inv : inv;
        const double c_neg = 1.0 - yi, c_pos = yi;
        const double t_neg = c_neg == 0 ? 0.0 : c_neg * ((xi > 0 ? xi : 0.0) + l1p);
        const double t_pos = c_pos == 0 ? 0.0 : c_pos * ((xi < 0 ? ax : 0.0) + l1p);
        const double ce = xi != xi ? xi : t_neg + t_pos;
        const double m = c_neg * p + c_pos * q;
        const double mod = gamma == 0.0 ? 1.0 : pow(m, gamma);
        const double at = alpha >= 0 ? alpha * yi + (1.0 - alpha) * (1.0 - yi) : 1.0;
        const double r = m > 0 ? p * q / m : 0.0;
        const double s = 1.0 - 2.0 * yi, pq = p * q;
        const double d = (c_neg * p - c_pos * q) + gamma * ce * s * r;
        const double curv = pq + 2.0 * gamma * s * r * (c_neg * p - c_pos * q)
                            + gamma * (gamma - 1.0) * (s * s) * (r * r) * ce
                            + gamma * s * (q - p) * r * ce;
        const double hv = hscale * (wi * at * mod * curv);
        grad[i] = (T)(wi * at * mod * d);
        hess[i] = (T)(hv < hfloor ? hfloor : hv);
    }
}

/* x, y, w (step ws, 0: broadcast), pw (step pws) as in bce_logits; writes
 * grad and hess (x's layout).  focal: the sigmoid focal loss with alpha,
 * gamma (pw unused); else BCE with logits. */
static void FN(binary_grad_hess)(const T *x, const T *y, npy_intp n, const T *w,
                                 npy_intp ws, const T *pw, npy_intp pws, T *grad, T *hess,
                                 double hscale, double hfloor, int focal, double alpha,
                                 double gamma)
{
    const T hs = (T)hscale, floor_ = (T)hfloor;
    if (focal)
        FN(sigmoid_focal_grad_hess)(x, y, n, w, ws, grad, hess, hscale, hfloor, alpha,
                                    gamma);
    else if (w && pw)
        FN(logistic_grad_hess_impl)(x, y, n, w, ws, pw, pws, grad, hess, hs, floor_, 1, 1);
    else if (w)
        FN(logistic_grad_hess_impl)(x, y, n, w, ws, pw, pws, grad, hess, hs, floor_, 1, 0);
    else if (pw)
        FN(logistic_grad_hess_impl)(x, y, n, w, ws, pw, pws, grad, hess, hs, floor_, 0, 1);
    else
        FN(logistic_grad_hess_impl)(x, y, n, w, ws, pw, pws, grad, hess, hs, floor_, 0, 0);
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
