/*
 * simd_impl.h compiled twice, for float and for double, with the names
 * suffixed by FCE_ISA (which simd.c defines around each `#pragma GCC
 * target` region).  Included once per instruction set, so no include guard.
 */
#define T float
#define FCE_F64 0
#define FCE_DT f32
#define SUF FCE_SUF3(f32, FCE_ISA)
#include "simd_impl.h"
#undef T
#undef FCE_F64
#undef FCE_DT
#undef SUF

#define T double
#define FCE_F64 1
#define FCE_DT f64
#define SUF FCE_SUF3(f64, FCE_ISA)
#include "simd_impl.h"
#undef T
#undef FCE_F64
#undef FCE_DT
#undef SUF
