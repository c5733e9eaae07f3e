# cython: language_level=3
"""Run-time state shared by the kernel modules.

The SIMD variant (baseline / AVX2 / AVX-512) is chosen once, here, at import;
the other kernel modules reach the chosen tables through ``kernels_f32`` /
``kernels_f64`` so switching variants (``FASTCE_ARCH``, ``select_arch``)
affects all of them at once.  The OpenMP queries live here too because this
is the one module that knows whether the build has OpenMP.
"""
import os

cdef extern from "simd.h" nogil:
    const char *fce_select_arch(const char *name)
    const char *fce_arch_name()
    const char *fce_built_archs()
    int fce_cpu_supports(const char *name)
    const fce_kernels_f32 *fce_f32
    const fce_kernels_f64 *fce_f64

cdef extern from "fce_omp.h" nogil:
    int omp_get_max_threads()
    int omp_get_num_procs()
    int FCE_HAVE_OPENMP
    int FCE_OPENMP_VERSION
    const char *FCE_COMPILER_VERSION
    const char *FCE_CFLAGS
    void fce_install_fork_handler()
    int fce_usable_threads(int n)
    int fce_forked_serial


cdef const fce_kernels_f32 *kernels_f32() noexcept nogil:
    return fce_f32


cdef const fce_kernels_f64 *kernels_f64() noexcept nogil:
    return fce_f64


cdef int usable_threads(int n_threads) noexcept nogil:
    """The team size a kernel may use: n_threads, or 1 in a child forked
    after a parallel region (see fce_omp.h)."""
    return fce_usable_threads(n_threads)


def forked_serial():
    """True in a child process forked after fastce ran threads: the OpenMP
    runtime cannot start threads there, so every kernel runs serial."""
    return bool(fce_forked_serial)


def select_arch(str name="auto"):
    """Switch every kernel to the SIMD variant ``name``; return its name.

    ``name`` is ``"auto"`` (the widest one this CPU supports), ``"baseline"``,
    ``"avx2"`` or ``"avx512"``.  Raises ValueError for a variant that is not
    built or that this CPU cannot run.
    """
    cdef bytes b = name.encode()
    cdef const char *chosen = fce_select_arch(b)
    if chosen == NULL:
        raise ValueError(
            f"SIMD variant {name!r} is not available here "
            f"(built: {built_archs()}; this CPU runs: "
            f"{', '.join(a for a in built_archs().split() if fce_cpu_supports(a.encode()))})")
    return chosen.decode()


def arch_name():
    """The SIMD variant the kernels currently use."""
    return fce_arch_name().decode()


def built_archs():
    """The SIMD variants compiled into this build, space separated."""
    return fce_built_archs().decode()


def openmp_max_threads():
    """omp_get_max_threads() of the calling thread (1 in a serial build)."""
    return omp_get_max_threads()


def num_procs():
    return omp_get_num_procs() if FCE_HAVE_OPENMP else (os.cpu_count() or 1)


def build_info():
    """What the compiled extension knows about its own build."""
    return {
        "openmp": bool(FCE_HAVE_OPENMP),
        "openmp_version": int(FCE_OPENMP_VERSION),
        "compiler": FCE_COMPILER_VERSION.decode(errors="replace"),
        "cflags": FCE_CFLAGS.decode(errors="replace"),
        "simd_built": built_archs(),
        # gradients at least this big are written with streaming stores
        "stream_min_bytes": int(FCE_STREAM_MIN_BYTES),
        "forked_serial": bool(fce_forked_serial),
    }


fce_install_fork_handler()

_requested = os.environ.get("FASTCE_ARCH", "auto").strip() or "auto"
try:
    select_arch(_requested)
except ValueError:
    import warnings
    warnings.warn(f"FASTCE_ARCH={_requested!r} is not available; using the best "
                  "supported SIMD variant", RuntimeWarning)
    select_arch("auto")
