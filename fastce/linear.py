"""The fused output layer: a linear projection followed by softmax
cross-entropy, ``cross_entropy(input @ linear_weight.T + linear_bias, target)``,
as ``torch.nn.functional.linear_cross_entropy``, without ever materialising
the full (tokens x classes) logits.

The tokens are cut into chunks of ``chunk_size`` rows.  Each chunk's logits
are computed into one reusable buffer (a BLAS GEMM), handed to
`fastce.cross_entropy_and_grad`, which writes d(loss)/d(logits) over them in
place, and that gradient is projected back onto the input, the weight and
the bias before the next chunk reuses the buffer.  Peak extra memory is one
chunk of logits plus, with more than one chunk, one scratch array of the
weight's shape (numpy's GEMM cannot accumulate into its output).

Everything is validated, class-index targets included, before anything is
written; the mean's denominator (sum of the target weights of the
non-ignored tokens) is computed over all tokens first, so the chunking does
not change the result beyond floating-point rounding of the GEMMs.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence, cast

import numpy as np
from numpy.typing import ArrayLike

from fastce import _validation as v
from fastce import functional as F
from fastce._config import resolve_threads
from fastce.functional import FloatArray, LossValue, Reduction
from fastce.losses import _frozen, _Loss

__all__ = ["linear_cross_entropy", "linear_cross_entropy_and_grad",
           "LinearCrossEntropyLoss", "default_chunk_size"]

#: The default chunk's logits buffer: about this many bytes.
_CHUNK_BYTES = 8 << 20


def default_chunk_size(n_classes: int, dtype: Any = np.float32) -> int:
    """The default ``chunk_size``: as many token rows as make a logits buffer
    of about 8 MiB, ``max(1, 8 MiB // (n_classes * itemsize))`` where
    ``itemsize`` is that of the compute dtype (float16 computes in float32).

    Parameters
    ----------
    n_classes : int
        The number of classes V (rows of ``linear_weight``).
    dtype : dtype, default float32
        The input's dtype.

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
    >>> default_chunk_size(10**7)
    1
    """
    dt = np.dtype(dtype)
    item = 4 if dt == np.float16 else dt.itemsize
    return max(1, _CHUNK_BYTES // max(1, int(n_classes) * item))


# ------------------------------------------------------------- validation --

class _Problem:
    """A validated linear_cross_entropy call."""

    x: np.ndarray                   # the input as (N, D), C-contiguous, compute dtype
    W: np.ndarray                   # (V, D)
    b: Optional[np.ndarray]         # (V,) or None
    result_dtype: np.dtype          # float16 stays float16
    input_shape: tuple[int, ...]
    batch_shape: tuple[int, ...]
    N: int
    D: int
    V: int
    reduction: Reduction
    index: bool                     # class indices (else probabilities)
    target: np.ndarray              # flat int64 indices, or (N, V) probabilities
    weight: Optional[np.ndarray]    # (V,) class weights in the compute dtype
    ignore: int
    eps: float
    z: float
    chunk: int
    rows: Optional[np.ndarray]      # the non-ignored tokens; None: all of them
    denominator: float              # the mean's, over all tokens
    go: float                       # scalar upstream gradient
    gout: Optional[np.ndarray]      # per-token float64 upstream gradient
    out: Optional[tuple[Any, Any, Any]]


def _float_operand(value, name: str, input_dtype: np.dtype):
    arr, dt = v.float_input(value, name)
    if dt != input_dtype:
        raise ValueError(f"{name} has dtype {dt} but input has dtype {input_dtype}; "
                         f"input, linear_weight and linear_bias must share one dtype")
    return arr


def _chunk_value(chunk_size) -> Optional[int]:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size,
                                                                  numbers.Integral):
        raise ValueError(f"chunk_size must be a positive integer or None, got "
                        f"{chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return int(chunk_size)


def _check_buffer(buf, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    if not isinstance(buf, np.ndarray):
        raise ValueError(f"out: {name} must be a numpy.ndarray, got {type(buf).__name__}")
    if buf.shape != shape:
        raise ValueError(f"out: {name} has shape {buf.shape}, expected {shape}")
    if buf.dtype != dtype:
        raise ValueError(f"out: {name} has dtype {buf.dtype}, expected {dtype}")
    if not buf.flags.c_contiguous:
        raise ValueError(f"out: {name} must be C-contiguous")
    if not buf.flags.writeable:
        raise ValueError(f"out: {name} must be writeable")
    return buf


def _check_out(out, p: _Problem, operands: dict) -> Optional[tuple]:
    if out is None:
        return None
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise ValueError("out must be a tuple (grad_input, grad_weight, grad_bias) "
                         "(grad_bias None without linear_bias)")
    gi, gw, gb = out
    gi = _check_buffer(gi, "grad_input", p.input_shape, p.result_dtype)
    gw = _check_buffer(gw, "grad_weight", p.W.shape, p.result_dtype)
    if p.b is None:
        if gb is not None:
            raise ValueError("out: grad_bias must be None when there is no linear_bias")
    else:
        gb = _check_buffer(gb, "grad_bias", p.b.shape, p.result_dtype)
    bufs = {"grad_input": gi, "grad_weight": gw, "grad_bias": gb}
    names = list(bufs)
    for i, a in enumerate(names):
        if bufs[a] is None:
            continue
        for b in names[i + 1:]:
            if bufs[b] is not None and np.may_share_memory(bufs[a], bufs[b]):
                raise ValueError(f"out: {a} and {b} share memory")
        for oname, arr in operands.items():
            if isinstance(arr, np.ndarray) and np.may_share_memory(bufs[a], arr):
                raise ValueError(f"out: {a} shares memory with {oname}; pass a "
                                 "separate array")
    return gi, gw, gb


def _prepare(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
             label_smoothing, z_loss, chunk_size, *, want_grad: bool, grad_output=None,
             out=None, n_threads=None) -> _Problem:
    p = _Problem()
    resolve_threads(n_threads, 0)   # validates n_threads before anything is written
    p.reduction = cast(Reduction, v.check_reduction(reduction))
    x, result_dtype = v.float_input(input, "input")
    W = _float_operand(linear_weight, "linear_weight", result_dtype)
    b = None if linear_bias is None else _float_operand(linear_bias, "linear_bias",
                                                         result_dtype)
    if x.ndim < 1:
        raise ValueError("input must have at least 1 dimension (the features); got a "
                         "0-d array")
    if W.ndim != 2:
        raise ValueError(f"linear_weight must be 2-D (num_classes, in_features), got "
                         f"shape {W.shape}")
    if x.shape[-1] != W.shape[1]:
        raise ValueError(f"input shape {x.shape} and linear_weight shape {W.shape} do "
                         f"not match: the input's last dimension (in_features) must "
                         f"equal linear_weight.shape[1]")
    V, D = W.shape
    if b is not None and b.shape != (V,):
        raise ValueError(f"linear_bias shape {b.shape} does not match linear_weight "
                         f"shape {W.shape}: expected ({V},)")
    p.result_dtype, p.input_shape = result_dtype, x.shape
    p.W, p.b = W, b
    p.batch_shape = x.shape[:-1]
    p.N, p.D, p.V = math.prod(p.batch_shape), D, V
    logits_shape = p.batch_shape + (V,)

    t = np.asarray(target)
    kind = t.dtype.kind
    if kind in "iu":
        if t.shape != p.batch_shape:
            raise ValueError(
                f"target shape {t.shape} does not match input shape {x.shape}: "
                f"class-index targets have the input's shape without the feature "
                f"axis, {p.batch_shape}"
                + (f"; probability targets (shape {logits_shape}) must be floating"
                   if t.shape == logits_shape else ""))
        p.index = True
    elif kind == "f":
        if t.shape != logits_shape:
            if t.shape == p.batch_shape:
                raise TypeError(f"class-index targets must be integers (got "
                                f"{t.dtype}); probability targets have shape "
                                f"{logits_shape}")
            raise ValueError(
                f"probability target shape {t.shape} does not match input shape "
                f"{x.shape} and linear_weight shape {W.shape}: expected the logits' "
                f"shape {logits_shape}")
        p.index = False
    else:
        raise TypeError(f"target must hold integer class indices or floating class "
                        f"probabilities, got dtype {t.dtype}")
    if ignore_index is None:
        p.ignore = -100
    else:
        if not p.index:
            raise ValueError("ignore_index cannot be specified when target contains "
                             "probabilities; leave it at None")
        p.ignore = v.ignore_index_value(ignore_index)
    p.eps = v.label_smoothing_value(label_smoothing)
    p.z = v.z_loss_value(z_loss)
    chunk = _chunk_value(chunk_size)
    kdt = x.dtype
    p.weight, _ = v.class_weight(weight, V, kdt)

    p.go, p.gout = 1.0, None
    if want_grad:
        go = v.grad_output_value(grad_output,
                                 p.batch_shape if p.reduction == "none" else (),
                                 p.reduction)
        if isinstance(go, np.ndarray):
            p.gout = np.ascontiguousarray(go, dtype=np.float64).reshape(-1)
        else:
            p.go = go
    p.out = _check_out(out, p, {"input": input, "linear_weight": linear_weight,
                                "linear_bias": linear_bias, "target": target,
                                "weight": weight}) if want_grad else None

    p.x = np.ascontiguousarray(x).reshape(p.N, D)
    if p.index:
        tf = t.reshape(-1)
        if tf.dtype.kind == "u" and tf.dtype.itemsize == 8 and tf.size \
                and tf.max() > np.iinfo(np.int64).max:
            pos = int(np.argmax(tf))
            v.raise_out_of_bounds(int(tf[pos]), pos, p.batch_shape, V, p.ignore)
        tf = tf.astype(np.int64)
        keep = tf != p.ignore
        bad = keep & ((tf < 0) | (tf >= V))
        if bad.any():
            pos = int(np.argmax(bad))
            v.raise_out_of_bounds(int(tf[pos]), pos, p.batch_shape, V, p.ignore)
        p.target = tf
        # None: every token counts (contiguous chunks, no gather)
        p.rows = None if keep.all() else np.flatnonzero(keep)
        tv = tf if p.rows is None else tf[p.rows]
        if p.weight is None:
            p.denominator = float(tv.size)
        else:
            p.denominator = float(np.sum(p.weight[tv], dtype=np.float64))
    else:
        p.target = np.ascontiguousarray(t, dtype=kdt).reshape(p.N, V)
        p.rows = None
        p.denominator = float(p.N)
    n_work = p.N if p.rows is None else p.rows.size
    p.chunk = min(chunk if chunk is not None else default_chunk_size(V, kdt),
                  max(1, n_work))
    return p


# ------------------------------------------------------------- the passes --

def _chunks(p: _Problem):
    """(start, stop, token rows or None for the slice start:stop of the
    input) over the tokens that count."""
    n_work = p.N if p.rows is None else p.rows.size
    for s in range(0, n_work, p.chunk):
        e = min(s + p.chunk, n_work)
        yield s, e, None if p.rows is None else p.rows[s:e]


def _logits_chunk(p: _Problem, s, e, rows, buf, hbuf):
    n = e - s
    if rows is None:
        h = p.x[s:e]
    else:
        h = np.take(p.x, rows, axis=0, out=hbuf[:n])
    logits = buf[:n]
    np.matmul(h, p.W.T, out=logits)
    if p.b is not None:
        logits += p.b
    tgt = p.target[s:e] if rows is None else p.target[rows]
    return h, logits, tgt


def _loss_result(p: _Problem, total: float, per_token):
    if p.reduction == "none":
        return per_token.reshape(p.batch_shape).astype(p.result_dtype, copy=False)
    if p.reduction == "sum":
        return p.result_dtype.type(total)
    return p.result_dtype.type(total / p.denominator if p.denominator != 0 else math.nan)


def _buffers(p: _Problem):
    kdt = p.x.dtype
    buf = np.empty((p.chunk, p.V), dtype=kdt)
    hbuf = None if p.rows is None else np.empty((p.chunk, p.D), dtype=kdt)
    per_token = (np.zeros(p.N, dtype=kdt) if p.reduction == "none" else None)
    return buf, hbuf, per_token


def _keep_chunk_loss(loss, per_token, s, e, rows) -> float:
    """Store a chunk's per-token losses (reduction "none") or return its sum
    to add to the float64 total."""
    if per_token is None:
        return float(loss)
    if rows is None:
        per_token[s:e] = loss
    else:
        per_token[rows] = loss
    return 0.0


def _forward(p: _Problem, n_threads):
    buf, hbuf, per_token = _buffers(p)
    total = 0.0
    red: Reduction = "none" if p.reduction == "none" else "sum"
    for s, e, rows in _chunks(p):
        _, logits, tgt = _logits_chunk(p, s, e, rows, buf, hbuf)
        loss = F.cross_entropy(logits, tgt, p.weight, ignore_index=p.ignore,
                               reduction=red, label_smoothing=p.eps, z_loss=p.z,
                               n_threads=n_threads)
        total += _keep_chunk_loss(loss, per_token, s, e, rows)
    return _loss_result(p, total, per_token)


def _target_buffer(out_buf, shape, kdt):
    """Where a gradient accumulates: the user's buffer when it has the
    compute dtype and is aligned, else a scratch copied into it at the end."""
    if out_buf is not None and out_buf.dtype == kdt and out_buf.flags.aligned:
        return out_buf
    return np.empty(shape, dtype=kdt)


def _backward(p: _Problem, n_threads):
    kdt = p.x.dtype
    buf, hbuf, per_token = _buffers(p)
    ogi, ogw, ogb = p.out if p.out is not None else (None, None, None)
    gi = _target_buffer(ogi, p.input_shape, kdt)
    gw = _target_buffer(ogw, p.W.shape, kdt)
    gb = None if p.b is None else _target_buffer(ogb, p.b.shape, kdt)
    gi2 = gi.reshape(p.N, p.D)
    if p.rows is not None:
        gi2.fill(0)          # ignored tokens get no gradient
        gibuf = np.empty((p.chunk, p.D), dtype=kdt)
    gw.fill(0)
    if gb is not None:
        gb.fill(0)
    gw_tmp = gb_tmp = None
    n_work = p.N if p.rows is None else p.rows.size
    if n_work > p.chunk:
        gw_tmp = np.empty(p.W.shape, dtype=kdt)
        gb_tmp = None if gb is None else np.empty(gb.shape, dtype=kdt)
    red: Reduction = "none" if p.reduction == "none" else "sum"
    if p.reduction == "mean":
        scale = p.go / p.denominator if p.denominator != 0 else math.nan
    else:
        scale = p.go
    total = 0.0
    first = True
    for s, e, rows in _chunks(p):
        h, logits, tgt = _logits_chunk(p, s, e, rows, buf, hbuf)
        if p.gout is not None:
            g_out = p.gout[s:e] if rows is None else p.gout[rows]
        else:
            g_out = scale
        loss, G = F.cross_entropy_and_grad(logits, tgt, p.weight, ignore_index=p.ignore,
                                           reduction=red, label_smoothing=p.eps,
                                           z_loss=p.z, grad_output=g_out, out=logits,
                                           n_threads=n_threads)
        total += _keep_chunk_loss(loss, per_token, s, e, rows)
        if rows is None:
            np.matmul(G, p.W, out=gi2[s:e])
        else:
            n = e - s
            np.matmul(G, p.W, out=gibuf[:n])
            gi2[rows] = gibuf[:n]
        if first:
            np.matmul(G.T, h, out=gw)
            if gb is not None:
                np.sum(G, axis=0, out=gb)
            first = False
        else:
            np.matmul(G.T, h, out=gw_tmp)
            gw += gw_tmp
            if gb is not None:
                np.sum(G, axis=0, out=gb_tmp)
                gb += gb_tmp
    loss = _loss_result(p, total, per_token)
    grads: list[Optional[np.ndarray]] = []
    for acc, user, dtype_shape in ((gi, ogi, p.input_shape), (gw, ogw, p.W.shape),
                                   (gb, ogb, None)):
        if acc is None:
            grads.append(None)
        elif user is not None:
            if acc is not user:
                np.copyto(user, acc, casting="unsafe")
            grads.append(user)
        else:
            grads.append(acc.astype(p.result_dtype, copy=False))
    return loss, tuple(grads)


# ------------------------------------------------------------- public API --

def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike,
                         *, linear_bias: ArrayLike | None = None,
                         weight: ArrayLike | None = None, reduction: Reduction = "mean",
                         ignore_index: int | None = None, label_smoothing: float = 0.0,
                         z_loss: float = 0.0, chunk_size: int | None = None,
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
    chunk_size : int >= 1, optional
        Tokens per chunk.  Default `default_chunk_size`: as many rows as
        make a logits buffer of about 8 MiB,
        ``max(1, 8 MiB // (V * itemsize))``.  Ignored tokens are dropped
        before chunking.
    n_threads : int, optional
        Threads for fastce's kernels (the GEMMs use NumPy's BLAS threads).

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray of the batch shape
        for reduction="none" (0 at ignored tokens)

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
    p = _prepare(input, linear_weight, target, linear_bias, weight, reduction,
                 ignore_index, label_smoothing, z_loss, chunk_size, want_grad=False,
                 n_threads=n_threads)
    return _forward(p, n_threads)


def linear_cross_entropy_and_grad(
        input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
        linear_bias: ArrayLike | None = None, weight: ArrayLike | None = None,
        reduction: Reduction = "mean", ignore_index: int | None = None,
        label_smoothing: float = 0.0, z_loss: float = 0.0, chunk_size: int | None = None,
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
ignore_index, label_smoothing, z_loss, chunk_size, n_threads
        As in `linear_cross_entropy`.
    grad_output : float or array_like, optional
        The upstream gradient: a scalar (default 1), or for
        ``reduction="none"`` an array of the target's batch shape.
    out : tuple (grad_input, grad_weight, grad_bias), optional
        Preallocated C-contiguous, writeable arrays of the shapes and dtype
        of input, linear_weight and linear_bias (grad_bias None without a
        bias), filled and returned.  They are validated before anything is
        written.

    Returns
    -------
    loss : as `linear_cross_entropy`
    grad_input : ndarray of the input's shape (zero at ignored tokens)
    grad_weight : ndarray of linear_weight's shape
    grad_bias : ndarray of shape (V,), or None without linear_bias

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
    p = _prepare(input, linear_weight, target, linear_bias, weight, reduction,
                 ignore_index, label_smoothing, z_loss, chunk_size, want_grad=True,
                 grad_output=grad_output, out=out, n_threads=n_threads)
    loss, (gi, gw, gb) = _backward(p, n_threads)
    return loss, gi, gw, gb


class LinearCrossEntropyLoss(_Loss):
    """Cross-entropy of a linear projection, as
    ``torch.nn.LinearCrossEntropyLoss``, holding configuration only: the
    linear weight (and bias) are passed to each call instead of living in
    the object (torch's ``in_features``, ``num_classes``, ``out_features``,
    ``bias``, ``device``, ``dtype`` and ``options`` have no counterpart).

    Parameters
    ----------
    weight, reduction, ignore_index, label_smoothing, z_loss, chunk_size
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
               "chunk_size")

    def __init__(self, *, weight: ArrayLike | None = None, reduction: Reduction = "mean",
                 ignore_index: int | None = None, label_smoothing: float = 0.0,
                 z_loss: float = 0.0, chunk_size: int | None = None) -> None:
        super().__init__(None, None, reduction)
        self.weight = _frozen(weight)
        self.ignore_index: int | None = (None if ignore_index is None
                                         else v.ignore_index_value(ignore_index))
        self.label_smoothing: float = v.label_smoothing_value(label_smoothing)
        self.z_loss: float = v.z_loss_value(z_loss)
        self.chunk_size: int | None = _chunk_value(chunk_size)

    def _kwargs(self) -> dict:
        return dict(weight=self.weight, reduction=self.reduction,
                    ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                    z_loss=self.z_loss, chunk_size=self.chunk_size)

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
