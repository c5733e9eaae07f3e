"""Threads and build information.

The kernels run ``prange`` loops with an explicit thread count chosen here:
a per-call ``n_threads`` wins, then `set_num_threads`, then OpenMP's own
default (``OMP_NUM_THREADS``, else all cores) as seen by
``omp_get_max_threads()`` at call time, which is what
``threadpoolctl.threadpool_limits(n, user_api="openmp")`` changes.  Inputs
below `SERIAL_THRESHOLD` elements run on one thread: starting a team costs
more than the work.
"""
from __future__ import annotations

import operator
import sys
import threading
from typing import IO

from fastce._kernels import _runtime

__all__ = ["get_num_threads", "set_num_threads", "show_config"]

#: Inputs with fewer elements than this run on one thread.
SERIAL_THRESHOLD = 1 << 15
_MAX_THREADS = (1 << 31) - 1

_lock = threading.Lock()
_num_threads: int | None = None


def _positive_int(n: object, name: str) -> int:
    if isinstance(n, bool):
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    try:
        value = operator.index(n)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {n!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return value


def get_num_threads() -> int:
    """Return the number of OpenMP threads the kernels use by default.

    Returns
    -------
    n : int
        The `set_num_threads` value when one is set, else OpenMP's default
        (``OMP_NUM_THREADS``, else all cores).

    Examples
    --------
    >>> import fastce
    >>> fastce.get_num_threads() >= 1
    True
    """
    if _num_threads is not None:
        return _num_threads
    return max(1, _runtime.openmp_max_threads())


def set_num_threads(n: int | None) -> None:
    """Set the default number of threads of every kernel (``None``: back to
    OpenMP's default).  A per-call ``n_threads=`` still overrides it.

    Parameters
    ----------
    n : int >= 1 or None
        A value that is not a positive integer raises ValueError.

    Examples
    --------
    >>> import fastce
    >>> fastce.set_num_threads(1)
    >>> fastce.get_num_threads()
    1
    >>> fastce.set_num_threads(None)
    """
    global _num_threads
    with _lock:
        _num_threads = None if n is None else _positive_int(n, "n_threads")


def resolve_threads(n_threads: object, work: int) -> int:
    """The most threads one kernel call on ``work`` elements may use; the
    kernel itself never starts more than the tiles it cuts the work into."""
    if n_threads is None:
        n = get_num_threads()
    else:
        n = _positive_int(n_threads, "n_threads")
    if work < SERIAL_THRESHOLD:
        return 1
    # the kernels take a C int; no call has more tiles than that anyway
    return min(n, _MAX_THREADS)


def show_config(file: IO[str] | None = None) -> None:
    """Print fastce's version, OpenMP support, thread count, compiler, flags
    and the SIMD variant in use.

    Parameters
    ----------
    file : text stream, optional
        Where to print (default: ``sys.stdout``).

    Examples
    --------
    >>> import fastce, io
    >>> buf = io.StringIO()
    >>> fastce.show_config(file=buf)
    >>> "OpenMP" in buf.getvalue()
    True
    """
    from fastce import __version__

    info = _runtime.build_info()
    lines = [
        f"fastce {__version__}",
        f"  OpenMP:        {'on' if info['openmp'] else 'off (serial build)'}"
        + (f" (version {info['openmp_version']})" if info["openmp"] else ""),
        f"  threads:       {get_num_threads()} (cores: {_runtime.num_procs()})",
        f"  compiler:      {info['compiler']}",
        f"  flags:         {info['cflags']}",
        f"  SIMD built:    {info['simd_built']}",
        f"  SIMD in use:   {_runtime.arch_name()} (FASTCE_ARCH overrides)",
    ]
    print("\n".join(lines), file=file if file is not None else sys.stdout)
