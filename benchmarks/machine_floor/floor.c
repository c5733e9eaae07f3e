/*
 * The machine floor of the benchmark workloads: kernels that do only the work
 * no implementation of these losses can avoid, as fast as we can write it.
 *
 *   rows:    per row, max then sum of exp(x - max) (B, C, F and B64; long
 *            rows in 2048-element chunks, the sum rescaled when the max grows)
 *   columns: the same over a strided class axis, lanes across positions (D)
 *   small:   rows of at most 16 classes, a 16-row block transposed in
 *            registers so the lanes run across rows (A)
 *   bce:     one exp and one log per element, summed (E)
 * each with an optional gradient: the softmax (or sigmoid - y) written once
 * per element, with non-temporal stores for gradients of 8 MiB or more
 * (fastce's threshold).  Nothing a loss needs beyond that:
 * no target gather, no weights, no checks.  The exp is a 32-entry table
 * (two registers) with a degree-2 polynomial, not fastce's 1.3-ulp
 * polynomial; floor_exp_f32 / floor_log_f32 expose it so the benchmark can
 * print its error.  Plus streaming read and copy bandwidth, and an in-cache
 * exp loop per thread (the benchmark's busy-core probe).
 *
 * Not part of the package: benchmarks/machine_floor/__init__.py compiles this file with the
 * compiler and flags of fastce's own build, for the instruction set fastce
 * picked, and calls it through ctypes.  Every function returns a sum (so
 * nothing is optimised away) and takes n_threads.  Without AVX-512 the
 * kernels are plain loops (`omp simd`) and the floor is only indicative.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__)
#include <immintrin.h>
#define FLOOR_AVX512 1
#else
#define FLOOR_AVX512 0
#endif

typedef ptrdiff_t intp;

#define CHUNK 2048          /* elements of a long row handled per max pass */
#define COL_BLOCK 64        /* positions of a column block (4 vectors) */
#ifndef NT_MIN_BYTES
/* smaller gradients get plain stores: fastce's FCE_STREAM_MIN_BYTES */
#define NT_MIN_BYTES (8L << 20)
#endif

#ifdef _OPENMP
#define OMP_THREADS(n) num_threads(n)
#else
#define OMP_THREADS(n)
#endif

const char *floor_isa(void) { return FLOOR_AVX512 ? "avx512" : "portable"; }

/* The threads a parallel region of n_threads gets here (1 without OpenMP). */
int floor_team(int n_threads)
{
    int team = 1;
    #pragma omp parallel OMP_THREADS(n_threads)
    {
#ifdef _OPENMP
        #pragma omp single
        team = omp_get_num_threads();
#endif
    }
    (void)n_threads;
    return team;
}

#if FLOOR_AVX512
/* ------------------------------------------------------------ AVX-512 --- */

typedef struct { __m512 lo, hi; } table32;

/* 2^(j/32), j = 0..31, in two registers for vpermt2ps */
static table32 exp_table(void)
{
    float t[32];
    for (int j = 0; j < 32; j++) t[j] = (float)exp2((double)j / 32.0);
    table32 r = {_mm512_loadu_ps(t), _mm512_loadu_ps(t + 16)};
    return r;
}

/* exp(x), x <= 0 (clamped at -87): x = (32k + j) ln2/32 + r, |r| <= ln2/64;
 * 2^(j/32) from the table, (1 + r + r^2/2), 2^k added to the exponent bits. */
static inline __m512 exp_ps(__m512 x, table32 t)
{
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 kf = _mm512_fmadd_ps(x, _mm512_set1_ps(46.16624130844683f), magic);
    __m512 n = _mm512_sub_ps(kf, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.021660804748535156f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(4.464396313466929e-08f), r);
    __m512i ki = _mm512_castps_si512(kf);
    __m512 tab = _mm512_permutex2var_ps(t.lo, ki, t.hi);
    __m512 p = _mm512_fmadd_ps(r, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_mul_ps(p, tab);
    __m512i e = _mm512_slli_epi32(_mm512_srli_epi32(ki, 5), 23);
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), e));
}

typedef struct { __m512 inv_lo, inv_hi, log_lo, log_hi; } log_tables;

/* for the mantissa interval j: 1 / c_j and log(c_j), c_j its midpoint */
static log_tables log_table(void)
{
    float inv[32], lg[32];
    for (int j = 0; j < 32; j++) {
        double c = 1.0 + (j + 0.5) / 32.0;
        inv[j] = (float)(1.0 / c);
        lg[j] = (float)log(c);
    }
    log_tables r = {_mm512_loadu_ps(inv), _mm512_loadu_ps(inv + 16),
                    _mm512_loadu_ps(lg), _mm512_loadu_ps(lg + 16)};
    return r;
}

/* log(v), v positive and normal: exponent from the bits, the mantissa's top
 * five bits pick c_j, log(1 + r) with r = m / c_j - 1, |r| <= 1/64, to r^4. */
static inline __m512 log_ps(__m512 v, log_tables t)
{
    __m512i b = _mm512_castps_si512(v);
    __m512 e = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(b, 23),
                                                   _mm512_set1_epi32(127)));
    __m512 m = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_and_si512(b, _mm512_set1_epi32(0x007FFFFF)), _mm512_set1_epi32(0x3F800000)));
    __m512i j = _mm512_srli_epi32(b, 18);
    __m512 inv = _mm512_permutex2var_ps(t.inv_lo, j, t.inv_hi);
    __m512 lc = _mm512_permutex2var_ps(t.log_lo, j, t.log_hi);
    __m512 r = _mm512_fmsub_ps(m, inv, _mm512_set1_ps(1.0f));
    __m512 q = _mm512_fmadd_ps(r, _mm512_set1_ps(-0.25f), _mm512_set1_ps(1.0f / 3));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(-0.5f));
    q = _mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r);
    return _mm512_add_ps(_mm512_fmadd_ps(e, _mm512_set1_ps(0.6931471805599453f), lc), q);
}

static inline __mmask16 tail_mask(intp left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* store 16 floats: streamed when the address is aligned and asked for */
static inline void put_ps(float *p, __m512 v, __mmask16 k, int nt)
{
    if (nt && k == 0xFFFF && ((uintptr_t)p & 63) == 0) _mm512_stream_ps(p, v);
    else _mm512_mask_storeu_ps(p, k, v);
}

/* dst[k] = src[k] * f for k < len; with nt, a masked head up to the next
 * 64-byte boundary, then non-temporal stores */
static inline void scale_store_ps(float *dst, const float *src, intp len, __m512 f, int nt)
{
    intp k = 0;
    if (nt) {
        intp head = (intp)(((64 - ((uintptr_t)dst & 63)) & 63) / sizeof(float));
        head = head < len ? head : len;
        if (head) {
            __mmask16 km = tail_mask(head);
            _mm512_mask_storeu_ps(dst, km, _mm512_mul_ps(_mm512_maskz_loadu_ps(km, src), f));
        }
        for (k = head; k + 16 <= len; k += 16)
            _mm512_stream_ps(dst + k, _mm512_mul_ps(_mm512_loadu_ps(src + k), f));
    }
    for (; k < len; k += 16) {
        __mmask16 km = tail_mask(len - k);
        _mm512_mask_storeu_ps(dst + k, km, _mm512_mul_ps(_mm512_maskz_loadu_ps(km, src + k), f));
    }
}

/* ---- rows (B, C, F) ---- */

static double row_f32(const float *x, intp c, float *grad, float *kept, int nt,
                      table32 t)
{
    float chunk_max[c / CHUNK + 1];
    double m = -INFINITY, s = 0.0;
    for (intp k0 = 0, ci = 0; k0 < c; k0 += CHUNK, ci++) {
        intp len = c - k0 < CHUNK ? c - k0 : CHUNK;
        const float *xc = x + k0;
        __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
        intp k = 0;
        for (; k + 32 <= len; k += 32) {
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(xc + k));
            m1 = _mm512_max_ps(m1, _mm512_loadu_ps(xc + k + 16));
        }
        for (; k < len; k += 16)
            m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(m0, tail_mask(len - k), xc + k));
        float cm = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
        if (cm > m) {
            s *= exp(m - cm);
            m = cm;
        }
        chunk_max[ci] = (float)m;
        __m512 mv = _mm512_set1_ps((float)m), s0 = _mm512_setzero_ps(), s1 = s0;
        float *kc = kept ? kept + k0 : NULL;
        for (k = 0; k + 32 <= len; k += 32) {
            /* the next len elements (next chunk or next row) are read while
             * this chunk is exponentiated out of L1 */
            _mm_prefetch((const char *)(xc + len + k), _MM_HINT_T0);
            _mm_prefetch((const char *)(xc + len + k + 16), _MM_HINT_T0);
            __m512 e0 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(xc + k), mv), t);
            __m512 e1 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(xc + k + 16), mv), t);
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
            if (kc) {
                _mm512_storeu_ps(kc + k, e0);
                _mm512_storeu_ps(kc + k + 16, e1);
            }
        }
        for (; k < len; k += 16) {
            __mmask16 km = tail_mask(len - k);
            __m512 e = _mm512_maskz_mov_ps(km, exp_ps(_mm512_sub_ps(
                _mm512_maskz_loadu_ps(km, xc + k), mv), t));
            s0 = _mm512_add_ps(s0, e);
            if (kc) _mm512_mask_storeu_ps(kc + k, km, e);
        }
        s += _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    }
    double lse = m + log(s);
    if (grad) {
        for (intp k0 = 0, ci = 0; k0 < c; k0 += CHUNK, ci++) {
            intp len = c - k0 < CHUNK ? c - k0 : CHUNK;
            scale_store_ps(grad + k0, kept + k0, len,
                           _mm512_set1_ps((float)exp(chunk_max[ci] - lse)), nt);
        }
    }
    return lse;
}

double floor_rows_f32(const float *x, intp n, intp c, float *grad, int n_threads)
{
    table32 t = exp_table();
    int nt = grad && (intp)(n * c * sizeof(float)) >= NT_MIN_BYTES;
    double total = 0.0;
    int failed = 0;
    #pragma omp parallel OMP_THREADS(n_threads) reduction(+:total) reduction(|:failed)
    {
        float *kept = grad ? aligned_alloc(64, ((c * sizeof(float) + 63) / 64) * 64) : NULL;
        failed = grad && !kept;
        #pragma omp for schedule(static)
        for (intp i = 0; i < n; i++)
            if (!failed) total += row_f32(x + i * c, c, grad ? grad + i * c : NULL, kept, nt, t);
        free(kept);
        _mm_sfence();  /* this thread's streaming stores */
    }
    return failed ? NAN : total;
}

/* ---- float64 rows (B64): 16-entry table, degree-6 polynomial ---- */

static inline __m512d exp_pd(__m512d x, __m512d tlo, __m512d thi)
{
    const __m512d magic = _mm512_set1_pd(6755399441055744.0);
    x = _mm512_max_pd(x, _mm512_set1_pd(-708.0));
    __m512d kf = _mm512_fmadd_pd(x, _mm512_set1_pd(23.083120654223414), magic);
    __m512d n = _mm512_sub_pd(kf, magic);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(0.0433216094970703125), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(8.92879262693385770e-08), r);
    __m512i ki = _mm512_castpd_si512(kf);
    __m512d tab = _mm512_permutex2var_pd(tlo, ki, thi);
    __m512d p = _mm512_set1_pd(1.0 / 720);
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_mul_pd(p, tab);
    __m512i e = _mm512_slli_epi64(_mm512_srli_epi64(ki, 4), 52);
    return _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(p), e));
}

static inline __mmask8 tail_mask8(intp left)
{
    return left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1u);
}

static inline void scale_store_pd(double *dst, const double *src, intp len, __m512d f,
                                  int nt)
{
    intp k = 0;
    if (nt) {
        intp head = (intp)(((64 - ((uintptr_t)dst & 63)) & 63) / sizeof(double));
        head = head < len ? head : len;
        if (head) {
            __mmask8 km = tail_mask8(head);
            _mm512_mask_storeu_pd(dst, km, _mm512_mul_pd(_mm512_maskz_loadu_pd(km, src), f));
        }
        for (k = head; k + 8 <= len; k += 8)
            _mm512_stream_pd(dst + k, _mm512_mul_pd(_mm512_loadu_pd(src + k), f));
    }
    for (; k < len; k += 8) {
        __mmask8 km = tail_mask8(len - k);
        _mm512_mask_storeu_pd(dst + k, km, _mm512_mul_pd(_mm512_maskz_loadu_pd(km, src + k), f));
    }
}

static double row_f64(const double *x, intp c, double *grad, double *kept, int nt,
                      __m512d tlo, __m512d thi)
{
    double chunk_max[c / CHUNK + 1];
    double m = -INFINITY, s = 0.0;
    for (intp k0 = 0, ci = 0; k0 < c; k0 += CHUNK, ci++) {
        intp len = c - k0 < CHUNK ? c - k0 : CHUNK;
        const double *xc = x + k0;
        __m512d m0 = _mm512_set1_pd(-INFINITY), m1 = m0;
        intp k = 0;
        for (; k + 16 <= len; k += 16) {
            m0 = _mm512_max_pd(m0, _mm512_loadu_pd(xc + k));
            m1 = _mm512_max_pd(m1, _mm512_loadu_pd(xc + k + 8));
        }
        for (; k < len; k += 8)
            m0 = _mm512_max_pd(m0, _mm512_mask_loadu_pd(m0, tail_mask8(len - k), xc + k));
        double cm = _mm512_reduce_max_pd(_mm512_max_pd(m0, m1));
        if (cm > m) {
            s *= exp(m - cm);
            m = cm;
        }
        chunk_max[ci] = m;
        __m512d mv = _mm512_set1_pd(m), s0 = _mm512_setzero_pd(), s1 = s0;
        double *kc = kept ? kept + k0 : NULL;
        for (k = 0; k + 16 <= len; k += 16) {
            _mm_prefetch((const char *)(xc + len + k), _MM_HINT_T0);
            _mm_prefetch((const char *)(xc + len + k + 8), _MM_HINT_T0);
            __m512d e0 = exp_pd(_mm512_sub_pd(_mm512_loadu_pd(xc + k), mv), tlo, thi);
            __m512d e1 = exp_pd(_mm512_sub_pd(_mm512_loadu_pd(xc + k + 8), mv), tlo, thi);
            s0 = _mm512_add_pd(s0, e0);
            s1 = _mm512_add_pd(s1, e1);
            if (kc) {
                _mm512_storeu_pd(kc + k, e0);
                _mm512_storeu_pd(kc + k + 8, e1);
            }
        }
        for (; k < len; k += 8) {
            __mmask8 km = tail_mask8(len - k);
            __m512d e = _mm512_maskz_mov_pd(km, exp_pd(_mm512_sub_pd(
                _mm512_maskz_loadu_pd(km, xc + k), mv), tlo, thi));
            s0 = _mm512_add_pd(s0, e);
            if (kc) _mm512_mask_storeu_pd(kc + k, km, e);
        }
        s += _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    }
    double lse = m + log(s);
    if (grad) {
        for (intp k0 = 0, ci = 0; k0 < c; k0 += CHUNK, ci++) {
            intp len = c - k0 < CHUNK ? c - k0 : CHUNK;
            scale_store_pd(grad + k0, kept + k0, len, _mm512_set1_pd(exp(chunk_max[ci] - lse)),
                           nt);
        }
    }
    return lse;
}

double floor_rows_f64(const double *x, intp n, intp c, double *grad, int n_threads)
{
    double t[16];
    for (int j = 0; j < 16; j++) t[j] = exp2((double)j / 16.0);
    __m512d tlo = _mm512_loadu_pd(t), thi = _mm512_loadu_pd(t + 8);
    int nt = grad && (intp)(n * c * sizeof(double)) >= NT_MIN_BYTES;
    double total = 0.0;
    int failed = 0;
    #pragma omp parallel OMP_THREADS(n_threads) reduction(+:total) reduction(|:failed)
    {
        double *kept = grad ? aligned_alloc(64, ((c * sizeof(double) + 63) / 64) * 64) : NULL;
        failed = grad && !kept;
        #pragma omp for schedule(static)
        for (intp i = 0; i < n; i++)
            if (!failed)
                total += row_f64(x + i * c, c, grad ? grad + i * c : NULL, kept, nt, tlo, thi);
        free(kept);
        _mm_sfence();
    }
    return failed ? NAN : total;
}

/* ---- a block of positions across a strided class axis (D, and A's
 * transposed blocks): max over classes, exp-sum, one log per position;
 * with grad, the kept exps times 1/sum.  nvec vectors of 16 positions. ---- */

#define COL_VECS (COL_BLOCK / 16)

static inline __m512 col_block(const float *x, intp c, intp stride, float *grad,
                               intp gstride, float *kept, int nt, table32 t, log_tables lt)
{
    __m512 m[COL_VECS], s[COL_VECS], lse = _mm512_setzero_ps();
    for (int v = 0; v < COL_VECS; v++) {
        m[v] = _mm512_loadu_ps(x + 16 * v);
        s[v] = _mm512_setzero_ps();
    }
    for (intp j = 1; j < c; j++)
        for (int v = 0; v < COL_VECS; v++)
            m[v] = _mm512_max_ps(m[v], _mm512_loadu_ps(x + j * stride + 16 * v));
    for (intp j = 0; j < c; j++)
        for (int v = 0; v < COL_VECS; v++) {
            _mm_prefetch((const char *)(x + j * stride + COL_BLOCK + 16 * v), _MM_HINT_T0);
            __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j * stride + 16 * v), m[v]), t);
            s[v] = _mm512_add_ps(s[v], e);
            if (kept) _mm512_store_ps(kept + j * COL_BLOCK + 16 * v, e);
        }
    for (int v = 0; v < COL_VECS; v++)
        lse = _mm512_add_ps(lse, _mm512_add_ps(m[v], log_ps(s[v], lt)));
    if (grad) {
        __m512 inv[COL_VECS];
        for (int v = 0; v < COL_VECS; v++) inv[v] = _mm512_div_ps(_mm512_set1_ps(1.0f), s[v]);
        for (intp j = 0; j < c; j++)
            for (int v = 0; v < COL_VECS; v++)
                put_ps(grad + j * gstride + 16 * v,
                       _mm512_mul_ps(_mm512_load_ps(kept + j * COL_BLOCK + 16 * v), inv[v]),
                       0xFFFF, nt);
    }
    return lse;
}

/* x of shape (outer, c, inner), inner a multiple of COL_BLOCK */
double floor_cols_f32(const float *x, intp outer, intp c, intp inner, float *grad,
                      int n_threads)
{
    if (inner % COL_BLOCK) return NAN;
    table32 t = exp_table();
    log_tables lt = log_table();
    int nt = grad && (intp)(outer * c * inner * sizeof(float)) >= NT_MIN_BYTES;
    intp blocks = inner / COL_BLOCK, total_blocks = outer * blocks;
    double total = 0.0;
    int failed = 0;
    #pragma omp parallel OMP_THREADS(n_threads) reduction(+:total) reduction(|:failed)
    {
        float *kept = grad ? aligned_alloc(64, c * COL_BLOCK * sizeof(float)) : NULL;
        failed = grad && !kept;
        #pragma omp for schedule(static)
        for (intp b = 0; b < total_blocks; b++) {
            if (failed) continue;
            intp o = b / blocks, p = (b % blocks) * COL_BLOCK;
            intp at = o * c * inner + p;
            __m512 lse = col_block(x + at, c, inner, grad ? grad + at : NULL, inner, kept,
                                   nt, t, lt);
            total += _mm512_reduce_add_ps(lse);
        }
        free(kept);
        _mm_sfence();
    }
    return failed ? NAN : total;
}

/* ---- small rows (A): 16 rows x c classes (c <= 16) are c vectors; a
 * permute network (one vpermt2ps per pair of source vectors, merged under
 * masks) turns them into c class vectors across rows, and back. ---- */

typedef struct {
    __m512i idx[16][8];      /* [output][pair of source vectors] */
    __mmask16 mask[16][8];   /* the output lanes that pair supplies */
} permute_plan;

/* out[o] lane l = in[src[o][l] / 16] lane src[o][l] % 16, o < c */
static void plan_permute(permute_plan *plan, int c, int src[16][16])
{
    for (int o = 0; o < c; o++)
        for (int q = 0; q < 8; q++) {
            int lanes[16];
            __mmask16 k = 0;
            for (int l = 0; l < 16; l++) {
                int v = src[o][l] / 16 - 2 * q;
                int mine = v >= 0 && v < 2;
                lanes[l] = mine ? v * 16 + src[o][l] % 16 : 0;
                if (mine) k |= (__mmask16)(1u << l);
            }
            plan->idx[o][q] = _mm512_loadu_si512(lanes);
            plan->mask[o][q] = k;
        }
}

/* C a constant at every call: the loops unroll and in/out stay in registers */
static inline __attribute__((always_inline)) void
apply_permute(const permute_plan *plan, const __m512 *in, __m512 *out, const int C)
{
    for (int o = 0; o < C; o++) {
        __m512 r = _mm512_setzero_ps();
        for (int q = 0; q < (C + 1) / 2; q++)
            r = _mm512_mask_mov_ps(r, plan->mask[o][q],
                                   _mm512_permutex2var_ps(in[2 * q], plan->idx[o][q],
                                                          in[2 * q + 1]));
        out[o] = r;
    }
}

/* one block of 16 rows of C classes at xb: the sum of its log-sum-exps;
 * with gb, its softmax written there */
static inline __attribute__((always_inline)) double
small_block(const float *xb, float *gb, const int C, const permute_plan *to_cols,
            const permute_plan *to_rows, int nt, table32 t, log_tables lt)
{
    __m512 in[16], col[16];
    for (int k = 0; k < 16; k++) in[k] = col[k] = _mm512_setzero_ps();
    for (int k = 0; k < C; k++) in[k] = _mm512_loadu_ps(xb + 16 * k);
    apply_permute(to_cols, in, col, C);
    __m512 m = col[0], s = _mm512_setzero_ps();
    for (int j = 1; j < C; j++) m = _mm512_max_ps(m, col[j]);
    for (int j = 0; j < C; j++) {
        col[j] = exp_ps(_mm512_sub_ps(col[j], m), t);
        s = _mm512_add_ps(s, col[j]);
    }
    double lse = _mm512_reduce_add_ps(_mm512_add_ps(m, log_ps(s, lt)));
    if (gb) {
        __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), s);
        for (int j = 0; j < C; j++) col[j] = _mm512_mul_ps(col[j], inv);
        apply_permute(to_rows, col, in, C);
        for (int k = 0; k < C; k++) put_ps(gb + 16 * k, in[k], 0xFFFF, nt);
    }
    return lse;
}

#define SMALL_CASES(G)                                                                  \
    switch (c) {                                                                        \
    case 1: total += small_block(xb, G, 1, &to_cols, &to_rows, nt, t, lt); break;      \
    case 2: total += small_block(xb, G, 2, &to_cols, &to_rows, nt, t, lt); break;      \
    case 3: total += small_block(xb, G, 3, &to_cols, &to_rows, nt, t, lt); break;      \
    case 4: total += small_block(xb, G, 4, &to_cols, &to_rows, nt, t, lt); break;      \
    case 5: total += small_block(xb, G, 5, &to_cols, &to_rows, nt, t, lt); break;      \
    case 6: total += small_block(xb, G, 6, &to_cols, &to_rows, nt, t, lt); break;      \
    case 7: total += small_block(xb, G, 7, &to_cols, &to_rows, nt, t, lt); break;      \
    case 8: total += small_block(xb, G, 8, &to_cols, &to_rows, nt, t, lt); break;      \
    case 9: total += small_block(xb, G, 9, &to_cols, &to_rows, nt, t, lt); break;      \
    case 10: total += small_block(xb, G, 10, &to_cols, &to_rows, nt, t, lt); break;    \
    case 11: total += small_block(xb, G, 11, &to_cols, &to_rows, nt, t, lt); break;    \
    case 12: total += small_block(xb, G, 12, &to_cols, &to_rows, nt, t, lt); break;    \
    case 13: total += small_block(xb, G, 13, &to_cols, &to_rows, nt, t, lt); break;    \
    case 14: total += small_block(xb, G, 14, &to_cols, &to_rows, nt, t, lt); break;    \
    case 15: total += small_block(xb, G, 15, &to_cols, &to_rows, nt, t, lt); break;    \
    default: total += small_block(xb, G, 16, &to_cols, &to_rows, nt, t, lt); break;    \
    }

double floor_small_f32(const float *x, intp n, intp c, float *grad, int n_threads)
{
    if (c < 1 || c > 16 || n % 16) return NAN;
    table32 t = exp_table();
    log_tables lt = log_table();
    permute_plan to_cols, to_rows;
    int src[16][16];
    for (int j = 0; j < c; j++)          /* class j of row r: flat r*c + j */
        for (int r = 0; r < 16; r++) src[j][r] = r * (int)c + j;
    plan_permute(&to_cols, (int)c, src);
    for (int k = 0; k < c; k++)          /* flat 16k + l: class (16k+l) % c of row / c */
        for (int l = 0; l < 16; l++) {
            int f = 16 * k + l;
            src[k][l] = (f % (int)c) * 16 + f / (int)c;
        }
    plan_permute(&to_rows, (int)c, src);
    int nt = grad && (intp)(n * c * sizeof(float)) >= NT_MIN_BYTES;
    double total = 0.0;
    #pragma omp parallel OMP_THREADS(n_threads) reduction(+:total)
    {
        #pragma omp for schedule(static)
        for (intp b = 0; b < n / 16; b++) {
            const float *xb = x + b * 16 * c;
            if (grad) {
                float *gb = grad + b * 16 * c;
                SMALL_CASES(gb)
            } else {
                SMALL_CASES(NULL)
            }
        }
        _mm_sfence();
    }
    return total;
}
#undef SMALL_CASES

/* ---- BCE with logits (E): max(x, 0) - x y + log(1 + exp(-|x|));
 * gradient sigmoid(x) - y, 1 / (1 + u) by rcp14 and one Newton step ---- */

/* one vector of logits x and targets y; with_grad: 0 none, 1 plain stores,
 * 2 non-temporal stores (the address is aligned in the unmasked loop) */
static inline __attribute__((always_inline)) __m512
bce_vec(const float *x, const float *y, float *grad, __mmask16 km, int with_grad,
        table32 t, log_tables lt)
{
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    __m512 xv = _mm512_maskz_loadu_ps(km, x), yv = _mm512_maskz_loadu_ps(km, y);
    __m512 u = exp_ps(_mm512_sub_ps(zero, _mm512_abs_ps(xv)), t);
    __m512 w = _mm512_add_ps(one, u);
    __m512 l = _mm512_add_ps(_mm512_fnmadd_ps(xv, yv, _mm512_max_ps(xv, zero)), log_ps(w, lt));
    if (with_grad) {
        __m512 r = _mm512_rcp14_ps(w);
        r = _mm512_mul_ps(r, _mm512_fnmadd_ps(w, r, _mm512_set1_ps(2.0f)));
        __m512 sig = _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask(xv, zero, _CMP_LT_OQ), r, u);
        __m512 g = _mm512_sub_ps(sig, yv);
        if (with_grad == 2 && km == 0xFFFF) _mm512_stream_ps(grad, g);
        else _mm512_mask_storeu_ps(grad, km, g);
    }
    return km == 0xFFFF ? l : _mm512_maskz_mov_ps(km, l);
}

/* elements [begin, end) of one block; begin a multiple of 16 */
static inline __attribute__((always_inline)) double
bce_block(const float *x, const float *y, float *grad, intp begin, intp end, int with_grad,
          table32 t, log_tables lt)
{
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    intp i = begin;
    for (; i + 32 <= end; i += 32) {
        acc0 = _mm512_add_ps(acc0, bce_vec(x + i, y + i, with_grad ? grad + i : NULL, 0xFFFF,
                                           with_grad, t, lt));
        acc1 = _mm512_add_ps(acc1, bce_vec(x + i + 16, y + i + 16, with_grad ? grad + i + 16 : NULL, 0xFFFF,
                                           with_grad, t, lt));
    }
    for (; i < end; i += 16)
        acc0 = _mm512_add_ps(acc0, bce_vec(x + i, y + i, with_grad ? grad + i : NULL, tail_mask(end - i),
                                           with_grad ? 1 : 0, t, lt));
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

double floor_bce_f32(const float *x, const float *y, intp n, float *grad, int n_threads)
{
    table32 t0 = exp_table();
    log_tables lt0 = log_table();
    /* blocks of 4096 from a 64-byte aligned gradient stay aligned */
    int mode = !grad ? 0 : (n * (intp)sizeof(float) >= NT_MIN_BYTES
                            && ((uintptr_t)grad & 63) == 0) ? 2 : 1;
    double total = 0.0;
    intp blocks = (n + 4095) / 4096;
    #pragma omp parallel OMP_THREADS(n_threads) reduction(+:total)
    {
        table32 t = t0;         /* private copies stay in registers */
        log_tables lt = lt0;
        #pragma omp for schedule(static)
        for (intp b = 0; b < blocks; b++) {
            intp begin = b * 4096, end = begin + 4096 < n ? begin + 4096 : n;
            if (mode == 0) total += bce_block(x, y, NULL, begin, end, 0, t, lt);
            else if (mode == 1) total += bce_block(x, y, grad, begin, end, 1, t, lt);
            else total += bce_block(x, y, grad, begin, end, 2, t, lt);
        }
        _mm_sfence();
    }
    return total;
}

/* ---- memory ---- */

double floor_read(const float *x, intp n, int n_threads)
{
    double total = 0.0;
    #pragma omp parallel for OMP_THREADS(n_threads) schedule(static) reduction(+:total)
    for (intp b = 0; b < n / 4096; b++) {
        const float *p = x + b * 4096;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < 4096; i += 64) {
            a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
            a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
            a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32));
            a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
        }
        total += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1),
                                                    _mm512_add_ps(a2, a3)));
    }
    return total;
}

double floor_copy(const float *x, float *y, intp n, int nt, int n_threads)
{
    #pragma omp parallel OMP_THREADS(n_threads)
    {
        #pragma omp for schedule(static)
        for (intp b = 0; b < n / 4096; b++)
            for (int i = 0; i < 4096; i += 16) {
                __m512 v = _mm512_loadu_ps(x + b * 4096 + i);
                put_ps(y + b * 4096 + i, v, 0xFFFF, nt);
            }
        _mm_sfence();
    }
    return (double)y[0];
}

/* ---- the exp and log themselves, element by element (for their error) ---- */

void floor_exp_f32(const float *x, float *out, intp n)
{
    table32 t = exp_table();
    for (intp i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(out + i, k, exp_ps(_mm512_maskz_loadu_ps(k, x + i), t));
    }
}

void floor_exp_f64(const double *x, double *out, intp n)
{
    double t[16];
    for (int j = 0; j < 16; j++) t[j] = exp2((double)j / 16.0);
    __m512d tlo = _mm512_loadu_pd(t), thi = _mm512_loadu_pd(t + 8);
    for (intp i = 0; i < n; i += 8) {
        __mmask8 k = tail_mask8(n - i);
        _mm512_mask_storeu_pd(out + i, k, exp_pd(_mm512_maskz_loadu_pd(k, x + i), tlo, thi));
    }
}

void floor_log_f32(const float *x, float *out, intp n)
{
    log_tables lt = log_table();
    for (intp i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(out + i, k, log_ps(_mm512_mask_loadu_ps(
            _mm512_set1_ps(1.0f), k, x + i), lt));
    }
}

/* Each thread sums exp over its own 16 KB block `reps` times: compute only,
 * no shared memory traffic, so n threads take as long as one unless the
 * cores are busy -- the benchmark's check that a second core is free. */
double floor_exp_cache(intp reps, int n_threads)
{
    table32 t = exp_table();
    double total = 0.0;
    #pragma omp parallel OMP_THREADS(n_threads) reduction(+:total)
    {
        float block[4096] __attribute__((aligned(64)));
        for (int i = 0; i < 4096; i++) block[i] = -(float)(i % 97) * 0.1f;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        #pragma omp for schedule(static)
        for (intp r = 0; r < reps; r++)
            for (int i = 0; i < 4096; i += 32) {
                s0 = _mm512_add_ps(s0, exp_ps(_mm512_load_ps(block + i), t));
                s1 = _mm512_add_ps(s1, exp_ps(_mm512_load_ps(block + i + 16), t));
            }
        total += _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    }
    return total;
}

#else
/* ----------------------------------------------------------- portable --- */

static inline float exp_scalar(float x)
{
    x = x < -87.0f ? -87.0f : x;
    float kf = x * 1.44269504088896341f + 12582912.0f;
    float n = kf - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    uint32_t b;
    memcpy(&b, &kf, sizeof b);
    b = (b + 127u) << 23;
    float sc;
    memcpy(&sc, &b, sizeof sc);
    return p * sc;
}

double floor_rows_f32(const float *x, intp n, intp c, float *grad, int n_threads)
{
    double total = 0.0;
    #pragma omp parallel for OMP_THREADS(n_threads) schedule(static) reduction(+:total)
    for (intp i = 0; i < n; i++) {
        const float *row = x + i * c;
        float m = -INFINITY, s = 0.0f;
        #pragma omp simd reduction(max:m)
        for (intp k = 0; k < c; k++) m = row[k] > m ? row[k] : m;
        #pragma omp simd reduction(+:s)
        for (intp k = 0; k < c; k++) s += exp_scalar(row[k] - m);
        float lse = m + logf(s);
        total += lse;
        if (grad) {
            #pragma omp simd
            for (intp k = 0; k < c; k++) grad[i * c + k] = exp_scalar(row[k] - lse);
        }
    }
    return total;
}

double floor_rows_f64(const double *x, intp n, intp c, double *grad, int n_threads)
{
    double total = 0.0;
    #pragma omp parallel for OMP_THREADS(n_threads) schedule(static) reduction(+:total)
    for (intp i = 0; i < n; i++) {
        const double *row = x + i * c;
        double m = -INFINITY, s = 0.0;
        #pragma omp simd reduction(max:m)
        for (intp k = 0; k < c; k++) m = row[k] > m ? row[k] : m;
        #pragma omp simd reduction(+:s)
        for (intp k = 0; k < c; k++) s += exp(row[k] - m);
        double lse = m + log(s);
        total += lse;
        if (grad)
            for (intp k = 0; k < c; k++) grad[i * c + k] = exp(row[k] - lse);
    }
    return total;
}

double floor_cols_f32(const float *x, intp outer, intp c, intp inner, float *grad,
                      int n_threads)
{
    if (inner % COL_BLOCK) return NAN;
    double total = 0.0;
    #pragma omp parallel for OMP_THREADS(n_threads) schedule(static) reduction(+:total)
    for (intp o = 0; o < outer; o++)
        for (intp p = 0; p < inner; p++) {
            const float *col = x + o * c * inner + p;
            float m = -INFINITY, s = 0.0f;
            for (intp j = 0; j < c; j++) m = col[j * inner] > m ? col[j * inner] : m;
            for (intp j = 0; j < c; j++) s += exp_scalar(col[j * inner] - m);
            total += m + logf(s);
            if (grad)
                for (intp j = 0; j < c; j++)
                    grad[o * c * inner + j * inner + p] = exp_scalar(col[j * inner] - m) / s;
        }
    return total;
}

double floor_small_f32(const float *x, intp n, intp c, float *grad, int n_threads)
{
    if (c < 1 || c > 16 || n % 16) return NAN;  /* the AVX-512 version's contract */
    return floor_rows_f32(x, n, c, grad, n_threads);
}

double floor_bce_f32(const float *x, const float *y, intp n, float *grad, int n_threads)
{
    double total = 0.0;
    #pragma omp parallel for simd OMP_THREADS(n_threads) schedule(static) reduction(+:total)
    for (intp i = 0; i < n; i++) {
        float ax = x[i] < 0 ? -x[i] : x[i];
        float u = exp_scalar(-ax);
        total += (x[i] > 0 ? x[i] : 0.0f) - x[i] * y[i] + log1pf(u);
        if (grad) grad[i] = (x[i] < 0 ? u : 1.0f) / (1.0f + u) - y[i];
    }
    return total;
}

double floor_read(const float *x, intp n, int n_threads)
{
    double total = 0.0;
    #pragma omp parallel for simd OMP_THREADS(n_threads) schedule(static) reduction(+:total)
    for (intp i = 0; i < n; i++) total += x[i];
    return total;
}

double floor_copy(const float *x, float *y, intp n, int nt, int n_threads)
{
    (void)nt;
    #pragma omp parallel for simd OMP_THREADS(n_threads) schedule(static)
    for (intp i = 0; i < n; i++) y[i] = x[i];
    return (double)y[0];
}

void floor_exp_f32(const float *x, float *out, intp n)
{
    for (intp i = 0; i < n; i++) out[i] = exp_scalar(x[i]);
}

void floor_exp_f64(const double *x, double *out, intp n)
{
    for (intp i = 0; i < n; i++) out[i] = exp(x[i]);
}

void floor_log_f32(const float *x, float *out, intp n)
{
    for (intp i = 0; i < n; i++) out[i] = logf(x[i]);
}

double floor_exp_cache(intp reps, int n_threads)
{
    double total = 0.0;
    #pragma omp parallel OMP_THREADS(n_threads) reduction(+:total)
    {
        float block[4096];
        for (int i = 0; i < 4096; i++) block[i] = -(float)(i % 97) * 0.1f;
        float s = 0.0f;
        #pragma omp for schedule(static)
        for (intp r = 0; r < reps; r++) {
            #pragma omp simd reduction(+:s)
            for (int i = 0; i < 4096; i++) s += exp_scalar(block[i]);
        }
        total += s;
    }
    return total;
}
#endif
