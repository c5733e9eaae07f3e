/*
 * Vectorised building blocks of fastce's kernels, written once and compiled
 * once per (dtype, instruction set).  simd.c includes this file with
 *   T          float or double
 *   FCE_F64    1 when T is double
 *   SUF        a name suffix such as f32_avx2
 * defined, inside a `#pragma GCC target` region for the instruction set.
 *
 * Contents (each part is included below, in this order; later parts use
 * earlier ones):
 *   simd_math.h    scalar math: exp of x <= 0, log1p on [0, 1], the log of
 *                  a sum of exponentials -- algorithms and measured ulp
 *   simd_stream.h  streaming-store copy of a gradient block out of cache
 *   simd_lse.h     log-sum-exp of a tile: rows, position-major lanes, short
 *                  rows transposed in and out
 *   simd_class.h   class sums (label smoothing, probability targets) and the
 *                  writers of the gradient (with or without the Hessian's
 *                  diagonal) and of log_softmax
 *   simd_index.h   class-index targets: decode once, losses and gradient
 *                  coefficients, target-entry fix, NLL, the focal Hessian's
 *                  per-position terms, a tile's steps
 *   simd_binary.h  binary cross-entropy on logits and on probabilities,
 *                  and the gradient + Hessian of the logistic objectives
 *   then the table of this (dtype, ISA) pair's entry points (simd.h).
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
 *
 * The *_impl + dispatch idiom.  gcc vectorises a loop only when its body is
 * straight-line code, and an optional operand (weights, an upstream
 * gradient, a kept exponential) tested inside the loop is a branch.  So the
 * loop lives in an always-inlined FN(name_impl)(..., const int has_x, ...)
 * whose flags are literal constants at every call site, and the entry point
 * FN(name) tests each pointer once and calls the _impl with 0 or 1 -- one
 * specialised copy of the loop per combination, each without the test.  A
 * FCE_*_VARIANTS / *_BY_* macro only spells out those combinations.
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

#include "simd_math.h"
#include "simd_stream.h"
#include "simd_lse.h"
#include "simd_class.h"
#include "simd_index.h"
#include "simd_binary.h"


/* The table of this (dtype, ISA) pair's entry points. */
static const FCE_CAT(fce_kernels, FCE_DT) FN(table) = {
    FN(tile_lse), FN(tile_wdot), FN(tile_prob), FN(tile_grad), FN(tile_log_softmax),
    FN(index_decode), FN(index_finish), FN(index_fix), FN(tile_index), FN(tile_nll),
    FN(bce_logits), FN(bce_prob), FN(sigmoid_focal), FN(binary_grad_hess),
    FN(first_outside_unit),
};

#undef FN
#undef FCE_FMA
#undef FCE_FMA_D
