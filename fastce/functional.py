"""The functional API: drop-ins for ``torch.nn.functional``'s cross-entropy
family on NumPy arrays, plus ``*_and_grad`` variants that return the loss and
d(loss)/d(input) from one pass over the input.

Each public function validates through `fastce._validation`, calls one
kernel, and hands the kernel's float64 sums to `_reduce`, the one place that
applies a reduction.

Typing: a loss is a NumPy scalar for ``reduction="mean"`` / ``"sum"`` and an
ndarray for ``"none"``; ``typing.overload`` tells type checkers which one a
call returns when ``reduction`` is a literal.  The deprecated
``size_average`` / ``reduce`` can also select "none", so calls that pass
them (or a ``reduction`` not known statically) get the union `LossValue`.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Union, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastce import _validation as v
from fastce._config import resolve_threads
from fastce._kernels import _binary, _cross_entropy, _softmax

__all__ = [
    "cross_entropy", "cross_entropy_and_grad", "nll_loss", "nll_loss_and_grad",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_and_grad",
    "binary_cross_entropy", "binary_cross_entropy_and_grad",
    "log_softmax", "softmax", "logsumexp",
    "Reduction", "FloatArray", "LossValue",
]

#: The ``reduction`` argument of every loss.
Reduction = Literal["none", "mean", "sum"]
#: A floating-point ndarray (float16, float32 or float64).
FloatArray = NDArray[np.floating[Any]]
#: A loss whose reduction is not known statically: a NumPy floating scalar
#: (``"mean"``, ``"sum"``) or an ndarray (``"none"``).
LossValue = Union[np.floating[Any], FloatArray]


def _reduce(reduction, loss_sum, denominator, per_element, shape, dtype):
    """Apply ``reduction`` to a kernel's results: a float64 sum (and the mean's
    denominator) or the per-element losses."""
    if reduction == "none":
        return per_element.reshape(shape).astype(dtype, copy=False)
    if reduction == "sum":
        return dtype.type(loss_sum)
    return dtype.type(loss_sum / denominator if denominator != 0 else math.nan)


def _grad_buffer(out, original_input, data, result_dtype):
    """Where the kernel writes the gradient: ``data`` itself for out=input
    (an aligned copy when the input was unaligned), ``out`` when the kernel
    can write it directly, else a scratch that `_finish_grad` copies into
    ``out`` (float16, or an unaligned buffer the kernels must not write)."""
    if out is not None and out.dtype == data.dtype:
        if out is original_input or (
                out.__array_interface__["data"][0] == data.__array_interface__["data"][0]):
            return data
        if out.flags.aligned:
            return out
    return np.empty(data.shape, dtype=data.dtype)


def _finish_grad(grad, out, result_dtype, shape):
    grad = grad.reshape(shape)
    if out is not None:
        if grad is not out and grad.base is not out:
            np.copyto(out, grad, casting="unsafe")
        return out
    return grad.astype(result_dtype, copy=False)


# ------------------------------------------------------------ cross-entropy --

def _class_loss(input, target, weight, size_average, ignore_index, reduce, reduction,
                label_smoothing, axis, dim, *, nll, want_grad, grad_output=None,
                out=None, n_threads=None):
    reduction = v.legacy_reduction(size_average, reduce, reduction)
    x, result_dtype = v.float_input(input)
    ax = v.normalize_axis(axis, dim, x.ndim)
    t = np.asarray(target)
    kind = v.target_kind(t, x.shape, nll=nll)
    ignore = v.ignore_index_value(ignore_index)
    eps = 0.0 if nll else v.label_smoothing_value(label_smoothing)
    if kind == "prob" and ignore >= 0:
        raise ValueError(
            f"ignore_index={ignore} does not apply to probability targets "
            "(there is no class index to ignore); leave it at -100")
    layout = v.class_layout(x, ax)
    kdt = layout.data.dtype
    w, w_total = v.class_weight(weight, layout.n_cls, kdt)
    out = v.check_out(out, x, result_dtype, input) if want_grad else None
    v.check_out_disjoint(out, weight=weight, target=target)
    if kind == "index":
        t_flat = v.index_target(t, layout, nll=nll)
    else:
        y = v.probability_target(t, x.shape, kdt)
    go = v.grad_output_value(grad_output, layout.batch_shape if reduction == "none" else (),
                             reduction) if want_grad else 1.0

    n_threads = resolve_threads(n_threads, layout.data.size,
                                _cross_entropy.n_units(layout.outer, layout.n_cls,
                                                       layout.inner))
    shape3 = (layout.outer, layout.n_cls, layout.inner)
    per_element = (np.empty(layout.n_positions, dtype=kdt)
                   if reduction == "none" else None)
    grad = gout = None
    gscale = 1.0
    if want_grad:
        if kind == "index":
            # the denominator and target validation come before any write
            _, w_sum, bad = _cross_entropy.index_targets(
                layout.data, t_flat, w, w_total, ignore, eps, *shape3,
                n_threads=n_threads, mode="check")
            if bad >= 0:
                v.raise_bad_target(t_flat, bad, layout, ignore)
            denominator = w_sum
        else:
            denominator = layout.n_positions
        if isinstance(go, np.ndarray):
            gout = v.c_aligned(go, np.float64).reshape(-1)
        elif reduction == "mean":
            gscale = go / denominator if denominator != 0 else math.nan
        else:
            gscale = go
        grad = _grad_buffer(out, input, layout.data, result_dtype)

    kwargs = dict(loss_out=per_element, grad=grad, gout=gout, gscale=gscale,
                  n_threads=n_threads)
    if kind == "index":
        loss_sum, w_sum, bad = _cross_entropy.index_targets(
            layout.data, t_flat, w, w_total, ignore, eps, *shape3,
            mode="nll" if nll else "cross_entropy", **kwargs)
        if bad >= 0:
            v.raise_bad_target(t_flat, bad, layout, ignore)
        denominator = w_sum
    else:
        loss_sum = _cross_entropy.prob_targets(layout.data, y, w, w_total, eps, *shape3,
                                               **kwargs)
        denominator = layout.n_positions
    loss = _reduce(reduction, loss_sum, denominator, per_element, layout.batch_shape,
                   result_dtype)
    if not want_grad:
        return loss
    return loss, _finish_grad(grad, out, result_dtype, x.shape)


@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: None = ..., ignore_index: int = ..., reduce: None = ...,
                  reduction: Literal["mean", "sum"] = ..., label_smoothing: float = ...,
                  *, axis: int | None = ..., dim: int | None = ...,
                  n_threads: int | None = ...) -> np.floating[Any]: ...
@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: bool | None = ..., ignore_index: int = ...,
                  reduce: bool | None = ..., *, reduction: Literal["none"],
                  label_smoothing: float = ..., axis: int | None = ...,
                  dim: int | None = ..., n_threads: int | None = ...) -> FloatArray: ...
@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: bool | None = ..., ignore_index: int = ...,
                  reduce: bool | None = ..., reduction: Reduction = ...,
                  label_smoothing: float = ..., *, axis: int | None = ...,
                  dim: int | None = ..., n_threads: int | None = ...) -> LossValue: ...
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  size_average: bool | None = None, ignore_index: int = -100,
                  reduce: bool | None = None, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, *, axis: int | None = None,
                  dim: int | None = None, n_threads: int | None = None) -> LossValue:
    """Softmax cross-entropy between logits and targets, as
    ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    input : array_like, float32, float64 or float16
        Logits of shape (N, C), (N, C, d1, ..., dK) or unbatched (C,).
    target : array_like
        Class indices (integer, the input's shape without the class axis;
        values in [0, C) or ``ignore_index``) or class probabilities
        (floating, the input's shape).
    weight : array_like of shape (C,), optional
        Per-class weights.  The weighted mean divides by the sum of the
        target weights of the non-ignored elements.
    size_average, reduce : bool, optional
        Deprecated; mapped onto ``reduction`` as PyTorch does.
    ignore_index : int, default -100
        Index targets equal to it contribute nothing (not even to the mean's
        denominator).  Must stay negative with probability targets.
    reduction : {"mean", "sum", "none"}, default "mean"
    label_smoothing : float in [0, 1], default 0
        Mixes the target with the uniform distribution: (1 - eps) y + eps / C.
    axis, dim : int, optional
        The class axis (default 1; 0 for 1-D input).  ``dim`` is an alias.
    n_threads : int, optional
        Threads for this call only (default: `fastce.get_num_threads`).

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray for reduction="none"

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import cross_entropy
    >>> x = np.array([[1., 2., 3.], [1., 2., 3.]])
    >>> round(float(cross_entropy(x, [1, 2])), 4)
    0.9076
    >>> round(float(cross_entropy(x, [1, 2], weight=[1., 10., 1.])), 4)
    1.3167
    """
    return _class_loss(input, target, weight, size_average, ignore_index, reduce,
                       reduction, label_smoothing, axis, dim, nll=False, want_grad=False,
                       n_threads=n_threads)


@overload
def cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., ignore_index: int = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., label_smoothing: float = ..., *,
        axis: int | None = ..., dim: int | None = ..., grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., n_threads: int | None = ...,
) -> tuple[np.floating[Any], FloatArray]: ...
@overload
def cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., ignore_index: int = ...,
        reduce: bool | None = ..., *, reduction: Literal["none"],
        label_smoothing: float = ..., axis: int | None = ..., dim: int | None = ...,
        grad_output: ArrayLike | None = ..., out: FloatArray | None = ...,
        n_threads: int | None = ...,
) -> tuple[FloatArray, FloatArray]: ...
@overload
def cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., ignore_index: int = ...,
        reduce: bool | None = ..., reduction: Reduction = ...,
        label_smoothing: float = ..., *, axis: int | None = ..., dim: int | None = ...,
        grad_output: ArrayLike | None = ..., out: FloatArray | None = ...,
        n_threads: int | None = ...,
) -> tuple[LossValue, FloatArray]: ...
def cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, ignore_index: int = -100,
        reduce: bool | None = None, reduction: Reduction = "mean",
        label_smoothing: float = 0.0, *, axis: int | None = None, dim: int | None = None,
        grad_output: ArrayLike | None = None, out: FloatArray | None = None,
        n_threads: int | None = None,
) -> tuple[LossValue, FloatArray]:
    """`cross_entropy` and its gradient with respect to ``input``, from one
    pass over the input.

    ``grad`` is what PyTorch autograd leaves in ``input.grad`` after
    ``loss.backward(grad_output)``.

    Parameters
    ----------
    input, target, weight, size_average, ignore_index, reduce, reduction, \
label_smoothing, axis, dim, n_threads
        As in `cross_entropy`.
    grad_output : float or array_like, optional
        The upstream gradient: a scalar (default 1), or for
        ``reduction="none"`` an array of the loss's shape.
    out : ndarray, optional
        C-contiguous, writeable array of the input's shape and dtype that
        receives the gradient; ``out=input`` overwrites the logits.

    Returns
    -------
    loss : as `cross_entropy`
    grad : ndarray of the input's shape and dtype (``out`` when given)

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import cross_entropy_and_grad
    >>> x = np.array([[1., 2., 3.], [1., 2., 3.]])
    >>> loss, grad = cross_entropy_and_grad(x, [1, 2])
    >>> np.round(grad, 4)
    array([[ 0.045 , -0.3776,  0.3326],
           [ 0.045 ,  0.1224, -0.1674]])
    >>> _ = cross_entropy_and_grad(x, [1, 2], out=x)  # in place, no allocation
    """
    return _class_loss(input, target, weight, size_average, ignore_index, reduce,
                       reduction, label_smoothing, axis, dim, nll=False, want_grad=True,
                       grad_output=grad_output, out=out, n_threads=n_threads)


@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: None = ..., ignore_index: int = ..., reduce: None = ...,
             reduction: Literal["mean", "sum"] = ..., *, axis: int | None = ...,
             dim: int | None = ..., n_threads: int | None = ...) -> np.floating[Any]: ...
@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: bool | None = ..., ignore_index: int = ...,
             reduce: bool | None = ..., *, reduction: Literal["none"],
             axis: int | None = ..., dim: int | None = ...,
             n_threads: int | None = ...) -> FloatArray: ...
@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: bool | None = ..., ignore_index: int = ...,
             reduce: bool | None = ..., reduction: Reduction = ..., *,
             axis: int | None = ..., dim: int | None = ...,
             n_threads: int | None = ...) -> LossValue: ...
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
             size_average: bool | None = None, ignore_index: int = -100,
             reduce: bool | None = None, reduction: Reduction = "mean", *,
             axis: int | None = None, dim: int | None = None,
             n_threads: int | None = None) -> LossValue:
    """Negative log-likelihood of log-probabilities, as
    ``torch.nn.functional.nll_loss``: ``-weight[t] * input[t]`` per element.

    Parameters
    ----------
    input : array_like, float
        Log-probabilities, (N, C), (N, C, d1, ..., dK) or (C,).
    target : array_like of int
        Class indices, the input's shape without the class axis.
    weight, size_average, ignore_index, reduce, reduction, axis, dim, n_threads
        As in `cross_entropy`.

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray for reduction="none"

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import nll_loss, log_softmax
    >>> x = np.array([[1., 2., 3.], [1., 2., 3.]])
    >>> round(float(nll_loss(log_softmax(x), [1, 2])), 4)
    0.9076
    """
    return _class_loss(input, target, weight, size_average, ignore_index, reduce,
                       reduction, 0.0, axis, dim, nll=True, want_grad=False,
                       n_threads=n_threads)


@overload
def nll_loss_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., ignore_index: int = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., *, axis: int | None = ...,
        dim: int | None = ..., grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., n_threads: int | None = ...,
) -> tuple[np.floating[Any], FloatArray]: ...
@overload
def nll_loss_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., ignore_index: int = ...,
        reduce: bool | None = ..., *, reduction: Literal["none"],
        axis: int | None = ..., dim: int | None = ..., grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., n_threads: int | None = ...,
) -> tuple[FloatArray, FloatArray]: ...
@overload
def nll_loss_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., ignore_index: int = ...,
        reduce: bool | None = ..., reduction: Reduction = ..., *,
        axis: int | None = ..., dim: int | None = ..., grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., n_threads: int | None = ...,
) -> tuple[LossValue, FloatArray]: ...
def nll_loss_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, ignore_index: int = -100,
        reduce: bool | None = None, reduction: Reduction = "mean", *,
        axis: int | None = None, dim: int | None = None,
        grad_output: ArrayLike | None = None, out: FloatArray | None = None,
        n_threads: int | None = None,
) -> tuple[LossValue, FloatArray]:
    """`nll_loss` and its gradient with respect to ``input``.

    Parameters
    ----------
    input, target, weight, size_average, ignore_index, reduce, reduction, \
axis, dim, n_threads
        As in `nll_loss`.
    grad_output, out
        As in `cross_entropy_and_grad`.

    Returns
    -------
    loss : as `nll_loss`
    grad : ndarray of the input's shape and dtype (``out`` when given)

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import nll_loss_and_grad
    >>> loss, grad = nll_loss_and_grad(np.log([[0.25, 0.75]]), [1])
    >>> grad
    array([[ 0., -1.]])
    """
    return _class_loss(input, target, weight, size_average, ignore_index, reduce,
                       reduction, 0.0, axis, dim, nll=True, want_grad=True,
                       grad_output=grad_output, out=out, n_threads=n_threads)


# ------------------------------------------------------------------ binary --

def _operand(value, shape, rows, cols, dtype, name):
    """(array, row stride, column step) of ``value`` broadcast to ``shape`` and
    seen as (rows, cols), without expanding it when its strides allow."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = v.c_aligned(arr, dtype)  # keeps 0-d; kernels need aligned data
    try:
        b = np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {arr.shape} cannot be broadcast to the "
                         f"input's shape {shape}") from None
    b2 = b.reshape(rows, cols)
    item = b2.itemsize
    if b2.strides[1] not in (0, item) or b2.strides[0] % item or b2.strides[0] < 0:
        b2 = v.c_aligned(np.ascontiguousarray(b2))
    return b2, b2.strides[0] // item, b2.strides[1] // item


def _binary_loss(kind, input, target, weight, size_average, reduce, reduction,
                 pos_weight=None, *, want_grad, grad_output=None, out=None,
                 n_threads=None):
    reduction = v.legacy_reduction(size_average, reduce, reduction)
    x, result_dtype = v.float_input(input)
    t = np.asarray(target)
    if t.dtype.kind != "f":
        raise TypeError(f"target must hold floating probabilities in [0, 1], got "
                        f"dtype {t.dtype}")
    if t.shape != x.shape:
        raise ValueError(f"Target size {t.shape} must be the same as input size "
                         f"{x.shape}")
    out = v.check_out(out, x, result_dtype, input) if want_grad else None
    v.check_out_disjoint(out, weight=weight, pos_weight=pos_weight, target=target)
    data = np.ascontiguousarray(x)
    kdt = data.dtype
    y = v.c_aligned(t, kdt)
    shape = x.shape
    cols = shape[-1] if x.ndim else 1
    rows = (data.size // cols) if cols else math.prod(shape[:-1])
    w = None if weight is None else _operand(weight, shape, rows, cols, kdt, "weight")
    pw = None if pos_weight is None else _operand(pos_weight, shape, rows, cols, kdt,
                                                  "pos_weight")
    go = v.grad_output_value(grad_output, shape if reduction == "none" else (),
                             reduction) if want_grad else 1.0
    n_threads = resolve_threads(n_threads, data.size, max(1, data.size // 16384))
    if kind == "probs":
        for arr, what in ((data, "input"), (y, "target")):
            bad = _binary.binary("check_probs", arr, arr, rows, cols, n_threads=n_threads)
            if bad >= 0:
                pos = tuple(int(i) for i in np.unravel_index(bad, shape)) if shape else ()
                raise ValueError(
                    f"all elements of {what} should be between 0 and 1; found "
                    f"{arr.reshape(-1)[bad]!r} at position {pos}")

    per_element = np.empty(shape, dtype=kdt) if reduction == "none" else None
    grad = gout = None
    gscale = 1.0
    if want_grad:
        if isinstance(go, np.ndarray):
            gout = (v.c_aligned(go, kdt).reshape(rows, cols), cols, 1)
        else:
            if reduction == "mean":
                gscale = go / data.size if data.size else math.nan
            else:
                gscale = go
            gout = (np.ones(1, dtype=kdt), 0, 0)
        grad = _grad_buffer(out, input, data, result_dtype)
    loss_sum = _binary.binary(kind, data, y, rows, cols, weight=w, pos_weight=pw,
                              gout=gout, gscale=gscale, loss_out=per_element, grad=grad,
                              n_threads=n_threads)
    loss = _reduce(reduction, loss_sum, data.size, per_element, shape, result_dtype)
    if not want_grad:
        return loss
    return loss, _finish_grad(grad, out, result_dtype, shape)


@overload
def binary_cross_entropy_with_logits(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., pos_weight: ArrayLike | None = ..., *,
        n_threads: int | None = ...,
) -> np.floating[Any]: ...
@overload
def binary_cross_entropy_with_logits(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ..., *,
        reduction: Literal["none"], pos_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> FloatArray: ...
@overload
def binary_cross_entropy_with_logits(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ...,
        reduction: Reduction = ..., pos_weight: ArrayLike | None = ..., *,
        n_threads: int | None = ...,
) -> LossValue: ...
def binary_cross_entropy_with_logits(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, reduce: bool | None = None,
        reduction: Reduction = "mean", pos_weight: ArrayLike | None = None, *,
        n_threads: int | None = None,
) -> LossValue:
    """Binary cross-entropy on logits, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``l = -weight * [pos_weight * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x))]``
    computed without overflow for any finite ``x``; at ``x = +-inf`` the
    mathematical limit (PyTorch gives NaN there).

    Parameters
    ----------
    input : array_like, float
        Logits, any shape (0-d included).
    target : array_like, float
        Probabilities in [0, 1] (multi-label targets), the input's shape.
    weight : array_like, optional
        Broadcasts to the input.
    size_average, reduce : bool, optional
        Deprecated; mapped onto ``reduction``.
    reduction : {"mean", "sum", "none"}, default "mean"
        The mean divides by the number of elements.
    pos_weight : array_like, optional
        Weight of the positive term, broadcast along the last axis (shape
        (C,) for (N, C) input).
    n_threads : int, optional
        Threads for this call only (default: `fastce.get_num_threads`).

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray of the input's
        shape for reduction="none"

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import binary_cross_entropy_with_logits
    >>> x = np.array([[2.0, -1.0]]); y = np.array([[1.0, 0.0]])
    >>> round(float(binary_cross_entropy_with_logits(x, y)), 4)
    0.2201
    >>> round(float(binary_cross_entropy_with_logits(x, y, pos_weight=[3.0, 1.0])), 4)
    0.347
    """
    return _binary_loss("logits", input, target, weight, size_average, reduce, reduction,
                        pos_weight, want_grad=False, n_threads=n_threads)


@overload
def binary_cross_entropy_with_logits_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., pos_weight: ArrayLike | None = ..., *,
        grad_output: ArrayLike | None = ..., out: FloatArray | None = ...,
        n_threads: int | None = ...,
) -> tuple[np.floating[Any], FloatArray]: ...
@overload
def binary_cross_entropy_with_logits_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ..., *,
        reduction: Literal["none"], pos_weight: ArrayLike | None = ...,
        grad_output: ArrayLike | None = ..., out: FloatArray | None = ...,
        n_threads: int | None = ...,
) -> tuple[FloatArray, FloatArray]: ...
@overload
def binary_cross_entropy_with_logits_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ...,
        reduction: Reduction = ..., pos_weight: ArrayLike | None = ..., *,
        grad_output: ArrayLike | None = ..., out: FloatArray | None = ...,
        n_threads: int | None = ...,
) -> tuple[LossValue, FloatArray]: ...
def binary_cross_entropy_with_logits_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, reduce: bool | None = None,
        reduction: Reduction = "mean", pos_weight: ArrayLike | None = None, *,
        grad_output: ArrayLike | None = None, out: FloatArray | None = None,
        n_threads: int | None = None,
) -> tuple[LossValue, FloatArray]:
    """`binary_cross_entropy_with_logits` and its gradient with respect to
    ``input``: ``weight * (pos_weight * y + 1 - y) * (sigmoid(x) - p)`` per
    element, scaled by ``grad_output`` and the reduction, where
    ``p = pos_weight * y / (pos_weight * y + 1 - y)``.

    Parameters
    ----------
    input, target, weight, size_average, reduce, reduction, pos_weight, \
n_threads
        As in `binary_cross_entropy_with_logits`.
    grad_output, out
        As in `cross_entropy_and_grad`.

    Returns
    -------
    loss : as `binary_cross_entropy_with_logits`
    grad : ndarray of the input's shape and dtype (``out`` when given)

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import binary_cross_entropy_with_logits_and_grad
    >>> loss, grad = binary_cross_entropy_with_logits_and_grad([0.0, 0.0], [1.0, 0.0])
    >>> grad
    array([-0.25,  0.25])
    """
    return _binary_loss("logits", input, target, weight, size_average, reduce, reduction,
                        pos_weight, want_grad=True, grad_output=grad_output, out=out,
                        n_threads=n_threads)


@overload
def binary_cross_entropy(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., *, n_threads: int | None = ...,
) -> np.floating[Any]: ...
@overload
def binary_cross_entropy(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ..., *,
        reduction: Literal["none"], n_threads: int | None = ...,
) -> FloatArray: ...
@overload
def binary_cross_entropy(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ...,
        reduction: Reduction = ..., *, n_threads: int | None = ...,
) -> LossValue: ...
def binary_cross_entropy(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, reduce: bool | None = None,
        reduction: Reduction = "mean", *, n_threads: int | None = None,
) -> LossValue:
    """Binary cross-entropy on probabilities, as
    ``torch.nn.functional.binary_cross_entropy``; each log is clamped at
    >= -100.  An input or target outside [0, 1] (NaN included) raises
    ValueError.

    Parameters
    ----------
    input : array_like, float
        Probabilities in [0, 1], any shape.
    target : array_like, float
        Probabilities in [0, 1], the input's shape.
    weight, size_average, reduce, reduction, n_threads
        As in `binary_cross_entropy_with_logits`.

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray of the input's
        shape for reduction="none"

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import binary_cross_entropy
    >>> round(float(binary_cross_entropy([0.9, 0.2], [1.0, 0.0])), 4)
    0.1643
    """
    return _binary_loss("probs", input, target, weight, size_average, reduce, reduction,
                        want_grad=False, n_threads=n_threads)


@overload
def binary_cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., *, grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., n_threads: int | None = ...,
) -> tuple[np.floating[Any], FloatArray]: ...
@overload
def binary_cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ..., *,
        reduction: Literal["none"], grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., n_threads: int | None = ...,
) -> tuple[FloatArray, FloatArray]: ...
@overload
def binary_cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ...,
        reduction: Reduction = ..., *, grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., n_threads: int | None = ...,
) -> tuple[LossValue, FloatArray]: ...
def binary_cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, reduce: bool | None = None,
        reduction: Reduction = "mean", *, grad_output: ArrayLike | None = None,
        out: FloatArray | None = None, n_threads: int | None = None,
) -> tuple[LossValue, FloatArray]:
    """`binary_cross_entropy` and its gradient with respect to ``input``
    (PyTorch's: ``w * g * (p - y) / max((1 - p) * p, 1e-12)``).

    Parameters
    ----------
    input, target, weight, size_average, reduce, reduction, n_threads
        As in `binary_cross_entropy`.
    grad_output, out
        As in `cross_entropy_and_grad`.

    Returns
    -------
    loss : as `binary_cross_entropy`
    grad : ndarray of the input's shape and dtype (``out`` when given)

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import binary_cross_entropy_and_grad
    >>> loss, grad = binary_cross_entropy_and_grad([0.5], [1.0], reduction="sum")
    >>> grad
    array([-2.])
    """
    return _binary_loss("probs", input, target, weight, size_average, reduce, reduction,
                        want_grad=True, grad_output=grad_output, out=out,
                        n_threads=n_threads)


# ----------------------------------------------------------------- softmax --

def _softmax_family(what, input, axis, dim, n_threads):
    x, result_dtype = v.float_input(input)
    ax = v.normalize_axis(axis, dim, x.ndim)
    layout = v.class_layout(x, ax)
    shape3 = (layout.outer, layout.n_cls, layout.inner)
    n_threads = resolve_threads(n_threads, layout.data.size,
                                _cross_entropy.n_units(*shape3))
    if what == "logsumexp":
        out = np.empty(layout.n_positions, dtype=layout.data.dtype)
    else:
        out = np.empty(x.shape, dtype=layout.data.dtype)
    _softmax.softmax_family(layout.data, out, what, *shape3, n_threads=n_threads)
    if what == "logsumexp":
        out = out.reshape(layout.batch_shape)
        return out.astype(result_dtype, copy=False)[()]
    return out.astype(result_dtype, copy=False)


def log_softmax(input: ArrayLike, axis: int | None = None, *, dim: int | None = None,
                n_threads: int | None = None) -> FloatArray:
    """log(softmax(input)) along ``axis`` (default 1; 0 for 1-D input),
    computed as ``x - logsumexp(x)`` without overflow.

    Parameters
    ----------
    input : array_like, float
        Any shape with at least one axis.
    axis, dim : int, optional
        The class axis; ``dim`` is an alias.
    n_threads : int, optional
        Threads for this call only.

    Returns
    -------
    ndarray of the input's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import log_softmax
    >>> np.round(log_softmax(np.array([[1., 2., 3.]])), 4)
    array([[-2.4076, -1.4076, -0.4076]])
    """
    return _softmax_family("log_softmax", input, axis, dim, n_threads)


def softmax(input: ArrayLike, axis: int | None = None, *, dim: int | None = None,
            n_threads: int | None = None) -> FloatArray:
    """exp(input) normalised to sum to 1 along ``axis`` (default 1; 0 for 1-D).

    Parameters
    ----------
    input, axis, dim, n_threads
        As in `log_softmax`.

    Returns
    -------
    ndarray of the input's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import softmax
    >>> np.round(softmax(np.array([1., 2., 3.])), 4)
    array([0.09  , 0.2447, 0.6652])
    """
    return _softmax_family("softmax", input, axis, dim, n_threads)


def logsumexp(input: ArrayLike, axis: int | None = None, *, dim: int | None = None,
              n_threads: int | None = None) -> LossValue:
    """log(sum(exp(input))) along ``axis`` (default 1; 0 for 1-D), without
    overflow; an empty class axis gives -inf.

    Parameters
    ----------
    input, axis, dim, n_threads
        As in `log_softmax`.

    Returns
    -------
    ndarray of the input's shape without ``axis``, of its dtype; a NumPy
    scalar for 1-D input

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import logsumexp
    >>> round(float(logsumexp(np.array([1., 2., 3.]))), 4)
    3.4076
    """
    return _softmax_family("logsumexp", input, axis, dim, n_threads)
