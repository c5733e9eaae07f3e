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
/* Fork safety.  GNU libgomp's thread pool does not survive fork(): in a
 * child of a process that has run a parallel region, the next team of more
 * than one thread waits forever for threads that do not exist.  So the
 * kernels ask fce_usable_threads() for their team size: it notes when a
 * team of several threads is first used, and in a child forked after that
 * it answers 1 (serial, which libgomp runs without the pool). */
static int fce_pool_started = 0;
static int fce_forked_serial = 0;

#if defined(_OPENMP) && !defined(_WIN32)
#include <pthread.h>
static void fce_after_fork_in_child(void)
{
    if (fce_pool_started) fce_forked_serial = 1;
}
static void fce_install_fork_handler(void)
{
    pthread_atfork(NULL, NULL, fce_after_fork_in_child);
}
#else
static void fce_install_fork_handler(void) {}
#endif

static int fce_usable_threads(int n)
{
    if (n <= 1 || fce_forked_serial) return 1;
    fce_pool_started = 1;
    return n;
}

#ifdef __VERSION__
#define FCE_COMPILER_VERSION __VERSION__
#else
#define FCE_COMPILER_VERSION "unknown"
#endif
#ifndef FCE_CFLAGS
#define FCE_CFLAGS "unknown"
#endif
#endif
