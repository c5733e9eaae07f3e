"""The linear layer's BLAS side: its GEMMs and the BLAS thread count.

Two of the three GEMMs go through SciPy's BLAS wrappers when SciPy is
installed.  The logits ``h @ W.T``: NumPy hands OpenBLAS the product in the
orientation that runs about 1.4x slower for a wide ``W`` (measured at
(256, 256) x (256, 131072), float32, one thread); SciPy lets us ask for
``W @ h.T`` into the Fortran view of the same buffer.  And NumPy's ``matmul``
cannot add into its output, so accumulating
``grad_weight += G.T @ h`` over token chunks with it needs a scratch array
of the weight's shape (128 MiB for a 131072 x 256 float32 head) and one more
pass over it per chunk.  SciPy's BLAS wrappers expose GEMM's ``beta``: with
SciPy installed the accumulation happens inside the GEMM, in place.  Both
SciPy and threadpoolctl are optional; fastce's core needs NumPy alone.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np

_gemm_by_dtype = None          # {dtype: scipy ?gemm} once looked up; {} without SciPy
_controller = None             # threadpoolctl.ThreadpoolController, or False without it


def _scipy_gemms() -> dict:
    global _gemm_by_dtype
    if _gemm_by_dtype is None:
        try:
            from scipy.linalg import blas
        except ImportError:
            _gemm_by_dtype = {}
        else:
            _gemm_by_dtype = {np.dtype(np.float32): blas.sgemm,
                              np.dtype(np.float64): blas.dgemm}
    return _gemm_by_dtype


def has_inplace_gemm(dtype) -> bool:
    """Whether `accumulate_gram` can add into its output without a scratch."""
    return np.dtype(dtype) in _scipy_gemms()


def _gemm_into(gemm, out: np.ndarray, a: np.ndarray, b: np.ndarray, **kw) -> None:
    """SciPy's ``gemm`` into ``out.T``, the Fortran view of C-ordered ``out``,
    in place; should f2py have copied, the result is kept anyway."""
    res = gemm(1.0, a, b, c=out.T, overwrite_c=1, **kw)
    if not np.shares_memory(res, out):
        out[...] = res.T


def logits_gemm(h: np.ndarray, W: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = h @ W.T`` for C-contiguous ``h`` (n, D), ``W`` (V, D) and
    ``out`` (n, V) of one dtype; returns ``out``."""
    gemm = _scipy_gemms().get(out.dtype)
    if gemm is None or h.size == 0 or W.size == 0:   # SciPy's wrappers reject empty sizes
        return np.matmul(h, W.T, out=out)
    # Fortran's view: out.T (V, n) = W (V, D) @ h.T (D, n), W passed as W.T with trans_a
    _gemm_into(gemm, out, W.T, h.T, trans_a=1)
    return out


def input_grad_gemm(G: np.ndarray, W: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = G @ W`` for C-contiguous ``G`` (n, V), ``W`` (V, D) and
    ``out`` (n, D); returns ``out``.  Through SciPy when the other two GEMMs
    are: NumPy and SciPy each load their own OpenBLAS, and alternating
    between the two leaves one's worker threads spinning while the other's
    run (measured: 2 threads no faster than 1 on a (2048, 512) x 32768 head)."""
    gemm = _scipy_gemms().get(out.dtype)
    if gemm is None or G.size == 0 or W.size == 0:
        return np.matmul(G, W, out=out)
    # Fortran's view: out.T (D, n) = W.T (D, V) @ G.T (V, n)
    _gemm_into(gemm, out, W.T, G.T)
    return out


def accumulate_gram(acc: np.ndarray, G: np.ndarray, h: np.ndarray, *, first: bool,
                    scratch: np.ndarray | None = None) -> None:
    """``acc = G.T @ h`` when ``first``, else ``acc += G.T @ h``.

    ``acc`` (V, D), ``G`` (n, V) and ``h`` (n, D) are C-contiguous arrays of
    one dtype.  Without SciPy, ``scratch`` (acc's shape and dtype) takes the
    product before it is added."""
    gemm = _scipy_gemms().get(acc.dtype)
    if gemm is not None and acc.size and G.size and h.size:
        # Fortran's view of the C-ordered arrays: acc.T (D, V) = h.T (D, n) @ G (n, V),
        # with G passed as the Fortran matrix G.T (V, n) and trans_b.
        _gemm_into(gemm, acc, h.T, G.T, beta=0.0 if first else 1.0, trans_b=1)
        return
    if first:
        np.matmul(G.T, h, out=acc)
        return
    if scratch is None:
        scratch = np.empty_like(acc)
    np.matmul(G.T, h, out=scratch)
    acc += scratch


def _threadpool_controller():
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
            warnings.warn(
                "n_threads limits fastce's own kernels only: install threadpoolctl "
                "(pip install threadpoolctl) to limit the BLAS GEMMs of the linear "
                "layer to the same count", RuntimeWarning, stacklevel=4)
        else:
            _controller = ThreadpoolController()
    return _controller


def blas_threads(n_threads: int | None):
    """A context in which the BLAS libraries NumPy and SciPy load use at most
    ``n_threads`` threads (nothing changes for None, or without
    threadpoolctl, which is then named in a one-time warning)."""
    if n_threads is None:
        return contextlib.nullcontext()
    _scipy_gemms()       # loads SciPy's BLAS first, so that the controller sees it
    controller = _threadpool_controller()
    if not controller:
        return contextlib.nullcontext()
    return controller.limit(limits=int(n_threads), user_api="blas")
