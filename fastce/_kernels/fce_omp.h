/* OpenMP runtime queries that also compile in the serial build. */
#ifndef FASTCE_OMP_H
#define FASTCE_OMP_H
#ifdef _OPENMP
#include <omp.h>
#define FCE_HAVE_OPENMP 1
#define FCE_OPENMP_VERSION _OPENMP
#else
#define FCE_HAVE_OPENMP 0
#define FCE_OPENMP_VERSION 0
static inline int omp_get_max_threads(void) { return 1; }
static inline void omp_set_num_threads(int n) { (void)n; }
static inline int omp_get_num_procs(void) { return 1; }
#endif
#ifdef __VERSION__
#define FCE_COMPILER_VERSION __VERSION__
#else
#define FCE_COMPILER_VERSION "unknown"
#endif
#ifndef FCE_CFLAGS
#define FCE_CFLAGS "unknown"
#endif
#endif
