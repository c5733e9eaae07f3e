/*
 * Scalar math: exp of non-positive arguments, log1p on [0, 1], the log of a sum of exponentials; each with its algorithm and measured error bound.
 *
 * Part of the SIMD primitives: included by simd_impl.h once per (dtype T,
 * instruction set), so it has no include guard; see simd_impl.h for the
 * conventions (FN names, T, FCE_F64, the *_impl + dispatch idiom).
 */

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
