/*
 * fastce's SIMD primitives: one table of entry points per dtype, filled at
 * import with the variant built for the best instruction set this CPU has
 * (baseline x86-64 / SSE2, AVX2 + FMA, AVX-512), or the one FASTCE_ARCH names.
 * The implementations live in simd_impl.h; simd.c compiles them per ISA.
 */
#ifndef FASTCE_SIMD_H
#define FASTCE_SIMD_H

#include <stddef.h>
#include <stdint.h>

typedef ptrdiff_t fce_intp;

/* Positions per tile in position-major mode (stack buffers are this long). */
#define FCE_TILE_MAX 256
/* Contiguous rows shorter than this vectorise across rows (transposed). */
#define FCE_ROWWISE_MIN_C 32
/* Online log-sum-exp block of a long row (8 KB in float). */
#define FCE_ROW_BLOCK 2048
/* Most elements a tile keeps the exponentials of for its gradient. */
#define FCE_KEEP_EXP_MAX 8192
/* A gradient at least this big is written with streaming stores where
 * that measured faster (simd_stream.h): it does not fit the caches, so
 * nothing is gained by reading its lines before writing them. */
#define FCE_STREAM_MIN_BYTES (8 << 20)

/* One softmax cross-entropy call (index or probability targets, NLL): what
 * the kernels read, and the per-tile sums they leave for the reduction.
 * Arrays are C-contiguous; weight, soft_target, loss_out and grad are in
 * the kernel's dtype. */
typedef struct {
    fce_intp n_cls;
    const void *target;       /* flat class indices, int64 or int32, or NULL */
    int target_is_64;
    long long ignore_index;
    const void *soft_target;  /* probability targets in x's layout, or NULL */
    const void *weight;       /* (C,) class weights, or NULL */
    double weight_total;      /* sum of the class weights (C without them) */
    double eps;               /* label smoothing */
    double z_loss;            /* z-loss coefficient: + z_loss w lse^2 per position */
    int focal;                /* softmax focal loss (index targets; eps and z_loss 0) */
    double focal_gamma;       /* its focusing exponent, >= 0 */
    const void *focal_alpha;  /* its (C,) class factors alpha, or NULL */
    void *loss_out;           /* per-position loss, or NULL */
    void *grad;               /* gradient in x's layout (may be x), or NULL */
    int stream_grad;          /* write it with streaming stores (>= FCE_STREAM_MIN_BYTES) */
    void *hess;               /* with grad: the Hessian's diagonal in x's layout, or NULL */
    double hess_scale;        /* its factor (2: XGBoost's, C / (C - 1): LightGBM's) */
    double hess_floor;        /* its lower bound after the factor (-inf: none) */
    const double *gout;       /* per-position upstream gradient, or NULL */
    double gscale;            /* scalar factor of the gradient */
    double *tile_loss;        /* per tile: sum of its losses */
    double *tile_weight;      /* per tile: sum of its target weights */
    fce_intp *tile_bad;       /* per tile: first out-of-range flat position, or -1 */
} fce_class_args;

/* The class-index targets of one tile (at most FCE_TILE_MAX positions),
 * decoded once: every later step reads these, never the raw targets (but
 * the loss loop, see simd_index.h). */
typedef struct {
    fce_intp cls[FCE_TILE_MAX];  /* target class; -1: ignored or out of range */
    double wt[FCE_TILE_MAX];     /* its class weight (1 without weights); 0 at -1 */
    double weight_sum;           /* sum of wt over valid positions, in position order */
    fce_intp bad;                /* first out-of-range flat position, or -1 */
} fce_targets;

#define FCE_DECLARE_TABLE(T, DT)                                                  \
    typedef struct {                                                              \
        void (*tile_lse)(const T *x, fce_intp np_, fce_intp nc, fce_intp ps,     \
                         fce_intp cs, double *shift, double *logsum);            \
        void (*tile_wdot)(const T *x, fce_intp np_, fce_intp nc, fce_intp ps,    \
                          fce_intp cs, const T *w, const double *shift,          \
                          double *out);                                          \
        void (*tile_prob)(const T *x, const T *y, fce_intp np_, fce_intp nc,     \
                          fce_intp ps, fce_intp cs, const T *w,                  \
                          const double *shift, double *wyx, double *wy);         \
        void (*tile_grad)(const T *x, T *g, fce_intp np_, fce_intp nc,           \
                          fce_intp ps, fce_intp cs, const double *shift,         \
                          const double *logsum, const double *a,                 \
                          const double *beta, const T *w, const T *y,            \
                          const double *gamma);                                  \
        void (*tile_log_softmax)(const T *x, T *out, fce_intp np_, fce_intp nc,  \
                                 fce_intp ps, fce_intp cs, const double *shift,  \
                                 const double *logsum);                          \
        void (*index_decode)(const fce_class_args *a, fce_intp first, fce_intp np_,   \
                             fce_targets *d);                                    \
        double (*index_finish)(const T *x, fce_intp np_, fce_intp ps, fce_intp cs, \
                               const fce_class_args *a, fce_intp first,           \
                               fce_targets *d, const double *shift,              \
                               const double *logsum, const double *dot,          \
                               double *coef, double *beta);                      \
        void (*index_fix)(T *g, fce_intp np_, fce_intp ps, fce_intp cs,            \
                          const fce_class_args *a, fce_intp first,                \
                          const fce_targets *d);                                  \
        double (*tile_index)(const T *x, T *g, fce_intp np_, fce_intp nc,          \
                             fce_intp ps, fce_intp cs, const fce_class_args *a,    \
                             fce_intp first, double *weight_sum, fce_intp *bad);   \
        double (*tile_nll)(const T *x, T *g, fce_intp np_, fce_intp nc,            \
                           fce_intp ps, fce_intp cs, const fce_class_args *a,      \
                           fce_intp first, double *weight_sum, fce_intp *bad);     \
        double (*bce_logits)(const T *x, const T *y, fce_intp n, const T *w,     \
                             fce_intp ws, const T *pw, fce_intp pws,             \
                             T *loss_out, T *grad, const T *gout, fce_intp gos,  \
                             T gscale);                                          \
        double (*bce_prob)(const T *p, const T *y, fce_intp n, const T *w,       \
                           fce_intp ws, T *loss_out, T *grad, const T *gout,     \
                           fce_intp gos, T gscale);                              \
        double (*sigmoid_focal)(const T *x, const T *y, fce_intp n, const T *w,  \
                                fce_intp ws, T *loss_out, T *grad,               \
                                const T *gout, fce_intp gos, T gscale,           \
                                double alpha, double gamma);                     \
        void (*binary_grad_hess)(const T *x, const T *y, fce_intp n, const T *w, \
                                 fce_intp ws, const T *pw, fce_intp pws,         \
                                 T *grad, T *hess, double hscale, double hfloor, \
                                 int focal, double alpha, double gamma);         \
        fce_intp (*first_outside_unit)(const T *v, fce_intp n);                  \
    } fce_kernels_##DT;

FCE_DECLARE_TABLE(float, f32)
FCE_DECLARE_TABLE(double, f64)

/* Pick the variant: name is "auto" / NULL (best supported), "baseline",
 * "avx2" or "avx512".  Returns the name chosen, or NULL when the named one
 * is not built or not supported by this CPU (the table is then unchanged). */
const char *fce_select_arch(const char *name);
const char *fce_arch_name(void);
/* Space-separated list of the variants this build holds. */
const char *fce_built_archs(void);
int fce_cpu_supports(const char *name);

extern const fce_kernels_f32 *fce_f32;
extern const fce_kernels_f64 *fce_f64;

#endif
