/*
 * Compiles simd_impl.h once per (dtype, instruction set) and picks a variant
 * at run time.  `#pragma GCC target` lets one translation unit hold all the
 * variants, so the build needs no per-file flags and a wheel built anywhere
 * runs on any x86-64 CPU.  Other compilers / CPUs get the baseline only.
 */
#include <float.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include "simd.h"
#if defined(__SSE2__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>  /* streaming stores (simd_stream.h); each variant's own */
#endif

typedef fce_intp npy_intp;

#define FCE_INLINE inline __attribute__((always_inline))
#define FCE_ALWAYS_INLINE inline __attribute__((always_inline))
#define FCE_NOINLINE __attribute__((noinline))
#define FCE_CLASS_CHUNK 256   /* classes summed in T before adding to double */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FCE_MULTI_ARCH 1
#else
#define FCE_MULTI_ARCH 0
#endif

/* Permute plans of the AVX-512 short-row transposes (simd_lse.h).  A block
 * of 16 rows of nc <= 16 contiguous floats is nc vectors; its nc class
 * vectors (lane r: row r) draw each lane from one of them.  Output o takes
 * lane l from source vector idx[o][q][l] / 16 of pair q (vectors 2q, 2q+1)
 * where bit l of mask[o][q] is set: one vpermt2ps per pair, merged under
 * masks.  `in` turns rows into class vectors, `out` back.  ISA-independent
 * data, filled once (fce_select_arch, at import). */
typedef struct {
    int32_t idx[16][8][16];
    uint16_t mask[16][8];
} fce_transpose_plan;
static fce_transpose_plan fce_tr_in[17], fce_tr_out[17];

/* out[o] lane l is source lane src[o][l] (vector src / 16, lane src % 16) */
static void fce_plan_fill(fce_transpose_plan *plan, int n_out, int src[16][16])
{
    for (int o = 0; o < n_out; o++)
        for (int q = 0; q < 8; q++) {
            plan->mask[o][q] = 0;
            for (int l = 0; l < 16; l++) {
                const int v = src[o][l] / 16 - 2 * q;
                const int mine = v == 0 || v == 1;
                plan->idx[o][q][l] = mine ? v * 16 + src[o][l] % 16 : 0;
                if (mine) plan->mask[o][q] |= (uint16_t)(1u << l);
            }
        }
}

static void fce_transpose_plans_init(void)
{
    static int ready = 0;
    int src[16][16];
    if (ready) return;
    for (int nc = 2; nc <= 16; nc++) {
        for (int c = 0; c < nc; c++)          /* class c of row r: flat r nc + c */
            for (int r = 0; r < 16; r++) src[c][r] = r * nc + c;
        fce_plan_fill(&fce_tr_in[nc], nc, src);
        for (int k = 0; k < nc; k++)          /* flat 16k + l: row f / nc, class f % nc */
            for (int l = 0; l < 16; l++) {
                const int f = 16 * k + l;
                src[k][l] = (f % nc) * 16 + f / nc;
            }
        fce_plan_fill(&fce_tr_out[nc], nc, src);
    }
    ready = 1;
}

/* simd_impl.h for float and for double under the instruction set named by
 * FCE_ISA (the suffix of every name, e.g. tile_lse_f32_avx2) */
#define FCE_SUF3_(dt, isa) dt##_##isa
#define FCE_SUF3(dt, isa) FCE_SUF3_(dt, isa)
#define FCE_INSTANCE "simd_instance.h"

/* ---- baseline: whatever the compiler targets by default ---- */
#define FCE_ISA baseline
#include FCE_INSTANCE
#undef FCE_ISA

#if FCE_MULTI_ARCH
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FCE_ISA avx2
#include FCE_INSTANCE
#undef FCE_ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,prefer-vector-width=512")
#define FCE_ISA avx512
#include FCE_INSTANCE
#undef FCE_ISA
#pragma GCC pop_options
#endif

const fce_kernels_f32 *fce_f32 = &table_f32_baseline;
const fce_kernels_f64 *fce_f64 = &table_f64_baseline;
static const char *fce_current = "baseline";

int fce_cpu_supports(const char *name)
{
    if (strcmp(name, "baseline") == 0) return 1;
#if FCE_MULTI_ARCH
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
               && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
    return 0;
}

const char *fce_built_archs(void)
{
#if FCE_MULTI_ARCH
    return "baseline avx2 avx512";
#else
    return "baseline";
#endif
}

const char *fce_select_arch(const char *name)
{
    fce_transpose_plans_init();
    if (name == NULL || name[0] == '\0' || strcmp(name, "auto") == 0) {
        name = fce_cpu_supports("avx512") ? "avx512"
               : fce_cpu_supports("avx2") ? "avx2" : "baseline";
    }
    if (!fce_cpu_supports(name)) return NULL;
    if (strcmp(name, "baseline") == 0) {
        fce_f32 = &table_f32_baseline;
        fce_f64 = &table_f64_baseline;
        fce_current = "baseline";
    }
#if FCE_MULTI_ARCH
    else if (strcmp(name, "avx2") == 0) {
        fce_f32 = &table_f32_avx2;
        fce_f64 = &table_f64_avx2;
        fce_current = "avx2";
    } else if (strcmp(name, "avx512") == 0) {
        fce_f32 = &table_f32_avx512;
        fce_f64 = &table_f64_avx512;
        fce_current = "avx512";
    }
#endif
    else return NULL;
    return fce_current;
}

const char *fce_arch_name(void) { return fce_current; }
