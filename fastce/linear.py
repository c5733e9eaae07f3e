"""The fused output layer: a linear projection followed by softmax
cross-entropy, ``cross_entropy(input @ linear_weight.T + linear_bias, target)``,
as ``torch.nn.functional.linear_cross_entropy``, without ever materialising
the full (tokens x classes) logits.

The tokens are cut into chunks of ``chunk_size`` rows.  Each chunk's logits
are computed into one reusable buffer (a BLAS GEMM, `fastce._blas`), handed
to fastce's cross-entropy kernels, which write d(loss)/d(logits) over them
in place, and that gradient is projected back onto the input, the weight and
the bias before the next chunk reuses the buffer.  Peak extra memory is one
chunk of logits (two with ``softcap`` and a gradient), plus, without SciPy
and with more than one chunk, one scratch array of the weight's shape
(NumPy's GEMM cannot accumulate into its output; SciPy's can).  Given
``out=``, those buffers are kept per thread for the next call (see
`release_workspace`).

Everything is validated, class-index targets included, before anything is
written; the mean's denominator (sum of the target weights of the
non-ignored tokens) is computed over all tokens first, so the chunking does
not change the result beyond floating-point rounding of the GEMMs.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from fastce import _dask
from fastce import _validation as v
from fastce._buffers import ThreadBuffers
from fastce import functional as F
from fastce._blas import (accumulate_gram, blas_threads, has_inplace_gemm, input_grad_gemm,
                          logits_gemm)
from fastce._config import resolve_threads
from fastce.functional import FloatArray, LossValue, Reduction
from fastce.losses import _frozen, _Loss

__all__ = ["linear_cross_entropy", "linear_cross_entropy_and_grad",
           "LinearCrossEntropyLoss", "default_chunk_size", "release_workspace"]

#: The default chunk's logits buffer: about this many bytes.
_CHUNK_BYTES = 8 << 20


def default_chunk_size(n_classes: int, dtype: Any = np.float32, *,
                       in_features: int | None = None, n_tokens: int | None = None) -> int:
    """The default ``chunk_size``: token rows whose logits buffer takes at
    least about 8 MiB and at least the bytes of the weight,
    ``max(8 MiB // (n_classes * itemsize), in_features)``, never more than
    ``n_tokens`` (float16 computes, and counts, as float32).

    Why: every chunk costs about three passes over weight-sized data (the
    logits GEMM and ``G @ W`` read ``W``, ``grad_weight += G.T @ h`` reads
    and writes its accumulator), so chunks of few rows make a large head
    memory-bound.  Measured on (1024, 256) -> 131072 float32: in_features
    rows cost 1.12x the three GEMMs, in_features / 2 rows 1.16-1.33x, with
    the buffer as large as the weight gradient the call returns anyway.
    8 MiB keeps small heads in few chunks.

    Parameters
    ----------
    n_classes : int
        The number of classes V (rows of ``linear_weight``).
    dtype : dtype, default float32
        The input's dtype.
    in_features : int, optional
        D (columns of ``linear_weight``); without it only the 8 MiB rule.
    n_tokens : int, optional
        The tokens that count; the chunk never exceeds them.

    Returns
    -------
    int >= 1

    Examples
    --------
    >>> from fastce.linear import default_chunk_size
    >>> default_chunk_size(32000)            # float32: 65 rows x 32000 x 4 B = 8.3 MB
    65
    >>> default_chunk_size(32000, "float64")
    32
    >>> default_chunk_size(131072, in_features=256)   # 256 rows: 128 MiB, as W
    256
    >>> default_chunk_size(1000, in_features=128, n_tokens=500)
    500
    """
    dt = np.dtype(dtype)
    item = 4 if dt == np.float16 else dt.itemsize
    rows = max(1, _CHUNK_BYTES // max(1, int(n_classes) * item))
    if in_features is not None:
        rows = max(rows, int(in_features))
    if n_tokens is not None:
        rows = min(rows, max(1, int(n_tokens)))
    return rows


# ------------------------------------------------------------- the passes --

def _prepare(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
             label_smoothing, z_loss, softcap, chunk_size, *, want_grad: bool,
             grad_output=None, out=None, n_threads=None) -> v.LinearLossProblem:
    """`_validation.prepare_linear_loss`, then the chunk: the one asked for or
    `default_chunk_size`, never more rows than the tokens that count."""
    resolve_threads(n_threads, 0)   # validates n_threads before anything is written
    p = v.prepare_linear_loss(input, linear_weight, target, linear_bias, weight, reduction,
                              ignore_index, label_smoothing, z_loss, chunk_size,
                              softcap=softcap, want_grad=want_grad,
                              grad_output=grad_output, out=out)
    chunk = (p.chunk_size if p.chunk_size is not None
             else default_chunk_size(p.V, p.x.dtype, in_features=p.D))
    p.chunk = min(chunk, max(1, p.n_work))
    return p


#: fastce's kernel threads between the GEMMs (None: n_threads).  One: the
#: kernel runs on the calling thread, so it never competes with OpenBLAS's
#: workers, which keep spinning for a while after each GEMM.  Measured on 2
#: cores, (1024, 128) -> 20000 and (2048, 512) -> 32768 float32: a 2-thread
#: kernel made the whole call 1.05-1.7x slower.
_KERNEL_THREADS: int | None = 1


def _kernel_threads(n_threads):
    return n_threads if _KERNEL_THREADS is None else _KERNEL_THREADS


#: The buffers a call given ``out=`` leaves, per thread, for the next one: a
#: training loop that passes ``out=`` should allocate nothing of the chunk's
#: size per step (fresh memory made the (1024, 256) -> 131072 step 1.2x
#: slower on the benchmark VM when other work ran between steps).
_kept = ThreadBuffers()


def release_workspace() -> None:
    """Free the buffers that `linear_cross_entropy_and_grad` keeps, on the
    calling thread, after a call given ``out=``.

    With ``out=`` (the training-loop form) the chunk's logits buffer and the
    other scratch arrays are kept per thread for the next call instead of
    being freed and mapped again each step.  They take about
    ``chunk_size x V`` floats of the compute dtype (one more such buffer with
    ``softcap``), plus, when the ``out`` buffers are float16 or misaligned,
    float32 accumulators of the gradients' shapes, and without SciPy one of
    the weight's shape.  A buffer only grows: the largest call's sizes are
    kept.  Call this when the loop is done to give that memory back (each
    thread that called with ``out=`` keeps its own); the next call given
    ``out=`` allocates them again.  Calls without ``out=`` keep nothing.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce.linear import linear_cross_entropy_and_grad, release_workspace
    >>> h = np.ones((4, 3)); W = np.ones((5, 3)); t = np.array([0, 1, 2, 3])
    >>> bufs = (np.empty_like(h), np.empty_like(W), None)
    >>> for step in range(3):
    ...     loss, gh, gW, _ = linear_cross_entropy_and_grad(h, W, t, out=bufs)
    >>> release_workspace()
    >>> round(float(loss), 4)
    1.6094
    """
    _kept.clear()


def _scratch_array(keep: bool, role: str, shape, dtype) -> np.ndarray:
    """A scratch array: this thread's kept one for ``role`` when ``keep``,
    else a fresh one."""
    return _kept.array(role, shape, dtype) if keep else np.empty(shape, dtype=dtype)


def _chunks(p: v.LinearLossProblem):
    """(start, stop, token rows or None for the slice start:stop of the
    input) over the tokens that count."""
    for s in range(0, p.n_work, p.chunk):
        e = min(s + p.chunk, p.n_work)
        yield s, e, None if p.rows is None else p.rows[s:e]


class _Scratch:
    """The buffers reused by every chunk; ``keep``: over this thread's kept
    buffers (`_kept`), for a call given ``out=``."""

    def __init__(self, p: v.LinearLossProblem, *, want_grad: bool, keep: bool = False):
        kdt = p.x.dtype
        self.keep = keep
        self.logits = _scratch_array(keep, "logits", (p.chunk, p.V), kdt)
        # the capped logits must survive until the gradient is chained through the cap
        self.grad = (_scratch_array(keep, "grad", (p.chunk, p.V), kdt)
                     if want_grad and p.softcap is not None else self.logits)
        self.h = (None if p.rows is None
                  else _scratch_array(keep, "h", (p.chunk, p.D), kdt))
        # returned to the caller, so never kept
        self.per_token = np.zeros(p.N, dtype=kdt) if p.reduction == "none" else None


def _chunk_logits(p: v.LinearLossProblem, s, e, rows, buf: _Scratch):
    """The chunk's hidden states, its logits (in the reused buffer) and its
    targets."""
    n = e - s
    h = p.x[s:e] if rows is None else np.take(p.x, rows, axis=0, out=buf.h[:n])
    logits = buf.logits[:n]
    logits_gemm(h, p.W, logits)
    if p.b is not None:
        logits += p.b
    tgt = p.target[s:e] if rows is None else p.target[rows]
    return h, logits, tgt


def _chunk_loss(p: v.LinearLossProblem, logits, tgt, buf: _Scratch, s, e, rows, *,
                grad_output=None, want_grad: bool, n_threads) -> float:
    """fastce's cross-entropy over one chunk of logits, which it may
    overwrite (soft cap, or the gradient when ``want_grad``); returns the
    chunk's float64 loss sum, or stores its per-token losses."""
    red: Reduction = "none" if p.reduction == "none" else "sum"
    out = buf.grad[:e - s] if want_grad else None
    pb = v.prepare_class_loss(logits, tgt, p.weight, None, p.ignore, None, red, p.eps,
                              None, None, nll=False, want_grad=want_grad, z_loss=p.z,
                              softcap=p.softcap, grad_output=grad_output, out=out)
    total, _ = F._class_sums(pb, n_threads, overwrite_input=True)
    if buf.per_token is None:
        return total
    if rows is None:
        buf.per_token[s:e] = pb.loss_out
    else:
        buf.per_token[rows] = pb.loss_out
    return 0.0


def _loss_result(p: v.LinearLossProblem, total: float, per_token):
    if p.reduction == "none":
        return per_token.reshape(p.batch_shape).astype(p.result_dtype, copy=False)
    if p.reduction == "sum":
        return p.result_dtype.type(total)
    return p.result_dtype.type(total / p.denominator if p.denominator != 0 else math.nan)


def _forward(p: v.LinearLossProblem, n_threads):
    """(float64 loss sum, per-token losses or None) over every chunk."""
    buf = _Scratch(p, want_grad=False)
    total = 0.0
    with blas_threads(n_threads):
        for s, e, rows in _chunks(p):
            _, logits, tgt = _chunk_logits(p, s, e, rows, buf)
            total += _chunk_loss(p, logits, tgt, buf, s, e, rows, want_grad=False,
                                 n_threads=_kernel_threads(n_threads))
    return total, buf.per_token


def _target_buffer(out_buf, shape, kdt, role: str):
    """Where a gradient accumulates: the user's buffer when it has the
    compute dtype and is aligned, else a scratch copied into it at the end
    (kept for the next call when the user gave one, since it is not
    returned then)."""
    if out_buf is not None and out_buf.dtype == kdt and out_buf.flags.aligned:
        return out_buf
    return _scratch_array(out_buf is not None, role, shape, kdt)


def _backward(p: v.LinearLossProblem, n_threads):
    """(float64 loss sum, per-token losses or None, (grad_input, grad_weight,
    grad_bias)) over every chunk."""
    kdt = p.x.dtype
    keep = p.out is not None
    buf = _Scratch(p, want_grad=True, keep=keep)
    ogi, ogw, ogb = p.out if p.out is not None else (None, None, None)
    gi = _target_buffer(ogi, p.input_shape, kdt, "grad_input")
    gw = _target_buffer(ogw, p.W.shape, kdt, "grad_weight")
    gb = None if p.b is None else _target_buffer(ogb, p.b.shape, kdt, "grad_bias")
    gi2 = gi.reshape(p.N, p.D)
    if p.rows is not None:
        gi2.fill(0)          # ignored tokens get no gradient
        gibuf = _scratch_array(keep, "grad_input_rows", (p.chunk, p.D), kdt)
    if p.n_work == 0:
        gw.fill(0)
        if gb is not None:
            gb.fill(0)
    # without SciPy's GEMM, grad_weight accumulates through a scratch of its shape
    gw_tmp = (_scratch_array(keep, "grad_weight_part", gw.shape, kdt)
              if p.n_work > p.chunk and not has_inplace_gemm(kdt) else None)
    gb_tmp = (None if gb is None or p.n_work <= p.chunk
              else _scratch_array(keep, "grad_bias_part", gb.shape, kdt))
    if p.reduction == "mean":
        scale = p.go / p.denominator if p.denominator != 0 else math.nan
    else:
        scale = p.go
    total = 0.0
    with blas_threads(n_threads):
        for s, e, rows in _chunks(p):
            h, logits, tgt = _chunk_logits(p, s, e, rows, buf)
            if p.gout is not None:
                g_out = p.gout[s:e] if rows is None else p.gout[rows]
            else:
                g_out = scale
            total += _chunk_loss(p, logits, tgt, buf, s, e, rows, grad_output=g_out,
                                 want_grad=True, n_threads=_kernel_threads(n_threads))
            G = buf.grad[:e - s]
            if rows is None:
                input_grad_gemm(G, p.W, gi2[s:e])
            else:
                input_grad_gemm(G, p.W, gibuf[:e - s])
                gi2[rows] = gibuf[:e - s]
            accumulate_gram(gw, G, h, first=s == 0, scratch=gw_tmp)
            if gb is not None:
                if s == 0:
                    np.sum(G, axis=0, out=gb)
                else:
                    np.sum(G, axis=0, out=gb_tmp)
                    gb += gb_tmp
    grads: list[Optional[np.ndarray]] = []
    for acc, user in ((gi, ogi), (gw, ogw), (gb, ogb)):
        if acc is None:
            grads.append(None)
        elif user is not None:
            if acc is not user:
                np.copyto(user, acc, casting="unsafe")
            grads.append(user)
        else:
            grads.append(acc.astype(p.result_dtype, copy=False))
    return total, buf.per_token, tuple(grads)


# ------------------------------------------------------------- public API --

def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike,
                         *, linear_bias: ArrayLike | None = None,
                         weight: ArrayLike | None = None, reduction: Reduction = "mean",
                         ignore_index: int | None = None, label_smoothing: float = 0.0,
                         z_loss: float = 0.0, softcap: float | None = None,
                         chunk_size: int | None = None,
                         n_threads: int | None = None) -> LossValue:
    """Cross-entropy of a linear projection,
    ``cross_entropy(input @ linear_weight.T + linear_bias, target, ...)``,
    as ``torch.nn.functional.linear_cross_entropy``, computed chunk by chunk
    of tokens without materialising the full logits.

    Parameters
    ----------
    input : array_like, float32, float64 or float16
        Hidden states of shape (D,), (N, D) or (..., D) (any batch shape;
        torch accepts 1-D and 2-D only).  float16 is computed in float32.
    linear_weight : array_like of shape (V, D)
        The projection onto the V classes; the input's dtype.
    target : array_like
        Class indices of the input's batch shape (any integer dtype; values
        in [0, V) or ``ignore_index``), or class probabilities of shape
        (..., V) (floating).
    linear_bias : array_like of shape (V,), optional
        Added to the logits; the input's dtype.
    weight : array_like of shape (V,), optional
        Per-class weights, as in `fastce.cross_entropy`.
    reduction : {"mean", "sum", "none"}, default "mean"
        With class indices the mean divides by the sum of the target weights
        of the non-ignored tokens (over all tokens; NaN when that is empty);
        with probabilities by the number of tokens.
    ignore_index : int, optional
        None means -100 for class indices; it must stay None with
        probability targets (as in torch).
    label_smoothing : float in [0, 1], default 0
    z_loss : float >= 0, default 0
        PaLM's z-loss, as in `fastce.cross_entropy`.
    softcap : float > 0, optional
        Gemma 2's soft cap of the logits, ``softcap * tanh(logits /
        softcap)``, as in `fastce.cross_entropy`; applied to each chunk in
        its buffer (one more chunk-sized buffer with the gradient).
    chunk_size : int >= 1, optional
        Tokens per chunk.  Default `default_chunk_size`: a logits buffer of
        at least about 8 MiB and at least the weight's bytes,
        ``max(8 MiB // (V * itemsize), D)`` rows.  Ignored tokens are
        dropped before chunking.
    n_threads : int, optional
        Threads of the BLAS GEMMs, through threadpoolctl when it is
        installed (default: BLAS's own count).  fastce's loss kernel runs on
        the calling thread between the GEMMs: OpenBLAS's idle workers keep
        spinning for a while after each GEMM, and a parallel kernel
        competing with them made the call up to 1.7x slower (2 cores).
        Over Dask arrays: per block, default 1.

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray of the batch shape
        for reduction="none" (0 at ignored tokens)

    Notes
    -----
    Any operand may be a Dask array (the input chunked along its batch axes;
    a split feature axis is rechunked with a warning).  The results are then
    lazy Dask arrays, a 0-d one for "mean" and "sum"; each block of tokens
    runs this function's chunked pass, and the mean divides the global sum
    by the global denominator.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import linear_cross_entropy, cross_entropy
    >>> rng = np.random.default_rng(0)
    >>> h = rng.standard_normal((6, 4)); W = rng.standard_normal((5, 4))
    >>> t = np.array([0, 1, 2, 3, 4, -100])
    >>> loss = linear_cross_entropy(h, W, t, chunk_size=4)
    >>> bool(np.isclose(loss, cross_entropy(h @ W.T, t)))
    True
    >>> linear_cross_entropy(h, W, t, reduction="none", chunk_size=2).shape
    (6,)
    """
    if _dask.is_dask(input, linear_weight, target, linear_bias, weight):
        return _dask.linear_loss(input, linear_weight, target, linear_bias, weight,
                                 reduction, ignore_index, label_smoothing, z_loss, softcap,
                                 chunk_size, want_grad=False, grad_output=None, out=None,
                                 n_threads=n_threads)
    p = _prepare(input, linear_weight, target, linear_bias, weight, reduction,
                 ignore_index, label_smoothing, z_loss, softcap, chunk_size,
                 want_grad=False,
                 n_threads=n_threads)
    return _loss_result(p, *_forward(p, n_threads))


def linear_cross_entropy_and_grad(
        input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
        linear_bias: ArrayLike | None = None, weight: ArrayLike | None = None,
        reduction: Reduction = "mean", ignore_index: int | None = None,
        label_smoothing: float = 0.0, z_loss: float = 0.0, softcap: float | None = None,
        chunk_size: int | None = None,
        n_threads: int | None = None, grad_output: ArrayLike | None = None,
        out: Sequence[Optional[FloatArray]] | None = None,
) -> tuple[LossValue, FloatArray, FloatArray, Optional[FloatArray]]:
    """`linear_cross_entropy` and its gradients with respect to the input,
    the linear weight and the bias, from one chunked pass.

    The gradients are what autograd leaves in ``input.grad``,
    ``linear_weight.grad`` and ``linear_bias.grad`` after
    ``loss.backward(grad_output)``.  Per chunk the logits' gradient ``G`` is
    written over the chunk's logits, then ``grad_input[rows] = G @ W``,
    ``grad_weight += G.T @ h`` and ``grad_bias += G.sum(0)``, accumulated in
    the compute dtype (float32 for float16 input); the result is
    deterministic for a given ``chunk_size`` and thread count.

    Parameters
    ----------
    input, linear_weight, target, linear_bias, weight, reduction, \
ignore_index, label_smoothing, z_loss, softcap, chunk_size, n_threads
        As in `linear_cross_entropy`.
    grad_output : float or array_like, optional
        The upstream gradient: a scalar (default 1), or for
        ``reduction="none"`` an array of the target's batch shape.
    out : tuple (grad_input, grad_weight, grad_bias), optional
        Preallocated C-contiguous, writeable arrays of the shapes and dtype
        of input, linear_weight and linear_bias (grad_bias None without a
        bias), filled and returned.  They are validated before anything is
        written.  A call given ``out`` also keeps its scratch buffers on
        the calling thread for the next call (see `release_workspace`), so
        a training loop allocates nothing of the logits' size per step
        (float16 operands are still converted to float32 copies per call).

    Returns
    -------
    loss : as `linear_cross_entropy`
    grad_input : ndarray of the input's shape (zero at ignored tokens)
    grad_weight : ndarray of linear_weight's shape
    grad_bias : ndarray of shape (V,), or None without linear_bias

    Notes
    -----
    Over Dask arrays (see `linear_cross_entropy`) all four results are lazy;
    ``dask.compute(*results)`` runs each block once, and grad_weight and
    grad_bias are Dask's tree sum of the blocks' parts (the same bits run to
    run for a given chunking).

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import linear_cross_entropy_and_grad, cross_entropy_and_grad
    >>> rng = np.random.default_rng(0)
    >>> h = rng.standard_normal((6, 4)); W = rng.standard_normal((5, 4))
    >>> b = np.zeros(5); t = np.array([0, 1, 2, 3, 4, 1])
    >>> loss, gh, gW, gb = linear_cross_entropy_and_grad(h, W, t, linear_bias=b,
    ...                                                  chunk_size=4)
    >>> _, G = cross_entropy_and_grad(h @ W.T + b, t)
    >>> bool(np.allclose(gh, G @ W) and np.allclose(gW, G.T @ h)
    ...      and np.allclose(gb, G.sum(0)))
    True
    >>> bufs = (np.empty_like(h), np.empty_like(W), np.empty_like(b))
    >>> _, gh2, _, _ = linear_cross_entropy_and_grad(h, W, t, linear_bias=b, out=bufs)
    >>> gh2 is bufs[0]
    True
    """
    if _dask.is_dask(input, linear_weight, target, linear_bias, weight, grad_output):
        return _dask.linear_loss(input, linear_weight, target, linear_bias, weight,
                                 reduction, ignore_index, label_smoothing, z_loss, softcap,
                                 chunk_size, want_grad=True, grad_output=grad_output,
                                 out=out, n_threads=n_threads)
    p = _prepare(input, linear_weight, target, linear_bias, weight, reduction,
                 ignore_index, label_smoothing, z_loss, softcap, chunk_size,
                 want_grad=True,
                 grad_output=grad_output, out=out, n_threads=n_threads)
    total, per_token, (gi, gw, gb) = _backward(p, n_threads)
    return _loss_result(p, total, per_token), gi, gw, gb


class LinearCrossEntropyLoss(_Loss):
    """Cross-entropy of a linear projection, as
    ``torch.nn.LinearCrossEntropyLoss``, holding configuration only: the
    linear weight (and bias) are passed to each call instead of living in
    the object (torch's ``in_features``, ``num_classes``, ``out_features``,
    ``bias``, ``device``, ``dtype`` and ``options`` have no counterpart).

    Parameters
    ----------
    weight, reduction, ignore_index, label_smoothing, z_loss, softcap, chunk_size
        As in `linear_cross_entropy`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import LinearCrossEntropyLoss
    >>> loss_fn = LinearCrossEntropyLoss(label_smoothing=0.1, chunk_size=2)
    >>> h = np.ones((3, 2)); W = np.array([[1., 0.], [0., 2.]])
    >>> round(float(loss_fn(h, W, [0, 1, 1])), 4)
    0.6633
    >>> loss, gh, gW, gb = loss_fn.loss_and_grad(h, W, [0, 1, 1])
    >>> gh.shape, gW.shape, gb is None
    ((3, 2), (2, 2), True)
    """

    _fields = ("weight", "reduction", "ignore_index", "label_smoothing", "z_loss",
               "softcap", "chunk_size")

    def __init__(self, *, weight: ArrayLike | None = None, reduction: Reduction = "mean",
                 ignore_index: int | None = None, label_smoothing: float = 0.0,
                 z_loss: float = 0.0, softcap: float | None = None,
                 chunk_size: int | None = None) -> None:
        super().__init__(None, None, reduction)
        self.weight = _frozen(weight)
        self.ignore_index: int | None = (None if ignore_index is None
                                         else v.ignore_index_value(ignore_index))
        self.label_smoothing: float = v.label_smoothing_value(label_smoothing)
        self.z_loss: float = v.z_loss_value(z_loss)
        self.softcap: float | None = v.softcap_value(softcap)
        self.chunk_size: int | None = v.chunk_size_value(chunk_size)

    def _kwargs(self) -> dict:
        return dict(weight=self.weight, reduction=self.reduction,
                    ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                    z_loss=self.z_loss, softcap=self.softcap, chunk_size=self.chunk_size)

    def __call__(self, input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike,
                 linear_bias: ArrayLike | None = None, *,
                 n_threads: int | None = None) -> LossValue:
        """The loss, as `fastce.linear_cross_entropy`."""
        return linear_cross_entropy(input, linear_weight, target, linear_bias=linear_bias,
                                    n_threads=n_threads, **self._kwargs())

    def loss_and_grad(self, input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike,
                      linear_bias: ArrayLike | None = None,
                      grad_output: ArrayLike | None = None,
                      out: Sequence[Optional[FloatArray]] | None = None, *,
                      n_threads: int | None = None,
                      ) -> tuple[LossValue, FloatArray, FloatArray, Optional[FloatArray]]:
        """Loss and gradients, as `fastce.linear_cross_entropy_and_grad`."""
        return linear_cross_entropy_and_grad(input, linear_weight, target,
                                             linear_bias=linear_bias,
                                             grad_output=grad_output, out=out,
                                             n_threads=n_threads, **self._kwargs())
