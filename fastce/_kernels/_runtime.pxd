# The SIMD dispatch tables of simd.h, shared by every kernel module.
cdef extern from "simd.h" nogil:
    ctypedef Py_ssize_t fce_intp

    ctypedef struct fce_index_args:
        const void *target
        int target_is_64
        fce_intp n_cls
        long long ignore_index
        const void *weight
        double weight_total
        double eps
        void *loss_out
        int want_grad
        const double *gout
        double gscale

    ctypedef struct fce_kernels_f32:
        void tile_lse(const float *x, fce_intp np_, fce_intp nc, fce_intp ps,
                      fce_intp cs, double *shift, double *logsum) noexcept nogil
        void tile_wdot(const float *x, fce_intp np_, fce_intp nc, fce_intp ps,
                       fce_intp cs, const float *w, const double *shift,
                       double *out) noexcept nogil
        void tile_prob(const float *x, const float *y, fce_intp np_, fce_intp nc,
                       fce_intp ps, fce_intp cs, const float *w, const double *shift,
                       double *wyx, double *wy) noexcept nogil
        void tile_grad(const float *x, float *g, fce_intp np_, fce_intp nc,
                       fce_intp ps, fce_intp cs, const double *shift,
                       const double *logsum, const double *a, const double *beta,
                       const float *w, const float *y, const double *gamma) noexcept nogil
        void tile_log_softmax(const float *x, float *out, fce_intp np_, fce_intp nc,
                              fce_intp ps, fce_intp cs, const double *shift,
                              const double *logsum) noexcept nogil
        double tile_index_finish(const float *x, fce_intp np_, fce_intp ps, fce_intp cs,
                                 const fce_index_args *ia, fce_intp first,
                                 const double *shift, const double *logsum,
                                 const double *dot, double *a, double *beta,
                                 double *weight_sum, fce_intp *bad) noexcept nogil
        void tile_index_fix(float *g, fce_intp np_, fce_intp ps, fce_intp cs,
                            const fce_index_args *ia, fce_intp first) noexcept nogil
        double tile_index_grad_kept(const float *x, float *g, fce_intp np_, fce_intp nc,
                                    const fce_index_args *ia, fce_intp first,
                                    double *weight_sum, fce_intp *bad) noexcept nogil
        double bce_logits(const float *x, const float *y, fce_intp n, const float *w,
                          fce_intp ws, const float *pw, fce_intp pws, float *loss_out,
                          float *grad, const float *gout, fce_intp gos,
                          float gscale) noexcept nogil
        double bce_prob(const float *p, const float *y, fce_intp n, const float *w,
                        fce_intp ws, float *loss_out, float *grad, const float *gout,
                        fce_intp gos, float gscale) noexcept nogil
        fce_intp first_outside_unit(const float *v, fce_intp n) noexcept nogil

    ctypedef struct fce_kernels_f64:
        void tile_lse(const double *x, fce_intp np_, fce_intp nc, fce_intp ps,
                      fce_intp cs, double *shift, double *logsum) noexcept nogil
        void tile_wdot(const double *x, fce_intp np_, fce_intp nc, fce_intp ps,
                       fce_intp cs, const double *w, const double *shift,
                       double *out) noexcept nogil
        void tile_prob(const double *x, const double *y, fce_intp np_, fce_intp nc,
                       fce_intp ps, fce_intp cs, const double *w, const double *shift,
                       double *wyx, double *wy) noexcept nogil
        void tile_grad(const double *x, double *g, fce_intp np_, fce_intp nc,
                       fce_intp ps, fce_intp cs, const double *shift,
                       const double *logsum, const double *a, const double *beta,
                       const double *w, const double *y, const double *gamma) noexcept nogil
        void tile_log_softmax(const double *x, double *out, fce_intp np_, fce_intp nc,
                              fce_intp ps, fce_intp cs, const double *shift,
                              const double *logsum) noexcept nogil
        double tile_index_finish(const double *x, fce_intp np_, fce_intp ps, fce_intp cs,
                                 const fce_index_args *ia, fce_intp first,
                                 const double *shift, const double *logsum,
                                 const double *dot, double *a, double *beta,
                                 double *weight_sum, fce_intp *bad) noexcept nogil
        void tile_index_fix(double *g, fce_intp np_, fce_intp ps, fce_intp cs,
                            const fce_index_args *ia, fce_intp first) noexcept nogil
        double tile_index_grad_kept(const double *x, double *g, fce_intp np_, fce_intp nc,
                                    const fce_index_args *ia, fce_intp first,
                                    double *weight_sum, fce_intp *bad) noexcept nogil
        double bce_logits(const double *x, const double *y, fce_intp n, const double *w,
                          fce_intp ws, const double *pw, fce_intp pws, double *loss_out,
                          double *grad, const double *gout, fce_intp gos,
                          double gscale) noexcept nogil
        double bce_prob(const double *p, const double *y, fce_intp n, const double *w,
                        fce_intp ws, double *loss_out, double *grad, const double *gout,
                        fce_intp gos, double gscale) noexcept nogil
        fce_intp first_outside_unit(const double *v, fce_intp n) noexcept nogil

    int FCE_TILE_MAX
    int FCE_ROW_BLOCK
    int FCE_KEEP_EXP_MAX


cdef const fce_kernels_f32 *kernels_f32() noexcept nogil
cdef int usable_threads(int n_threads) noexcept nogil
cdef const fce_kernels_f64 *kernels_f64() noexcept nogil
