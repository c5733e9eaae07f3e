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

from fastce import _dask
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


def _mean(total, count):
    """The mean rule of every loss: a mean over nothing is NaN, as in PyTorch."""
    return total / count if count != 0 else math.nan


def _reduce(reduction, loss_sum, denominator, per_element, shape, dtype):
    """Apply ``reduction`` to a kernel's results: a float64 sum (and the mean's
    denominator) or the per-element losses."""
    if reduction == "none":
        return per_element.reshape(shape).astype(dtype, copy=False)
    if reduction == "sum":
        return dtype.type(loss_sum)
    return dtype.type(_mean(loss_sum, denominator))


def _grad_scale(grad_output, reduction, denominator) -> float:
    """The scalar factor of a gradient: the upstream gradient (1 when it comes
    per element instead), divided by the mean's denominator for "mean"."""
    if grad_output is None:
        return 1.0
    if reduction == "mean":
        return _mean(grad_output, denominator)
    return grad_output


def _finish_grad(grad, out, result_dtype, shape):
    grad = grad.reshape(shape)
    if out is not None:
        if grad is not out and grad.base is not out:
            np.copyto(out, grad, casting="unsafe")
        return out
    return grad.astype(result_dtype, copy=False)


# ------------------------------------------------------------ cross-entropy --

def _soft_cap(logits, cap, out):
    """``out = cap * tanh(logits / cap)``, Gemma 2's logit soft-capping, the
    way torch composes it (divide, tanh, multiply), with no temporary."""
    np.divide(logits, cap, out=out)
    np.tanh(out, out=out)
    np.multiply(out, cap, out=out)
    return out


def _soft_cap_backward(grad, capped, cap):
    """Chain ``grad`` (with respect to the capped logits) through the cap:
    ``grad *= 1 - (capped / cap)**2``; ``capped`` is overwritten."""
    np.divide(capped, cap, out=capped)
    np.square(capped, out=capped)
    np.subtract(1, capped, out=capped)
    np.multiply(grad, capped, out=grad)


def _sample_weighted_denominator(pb: v.ClassLossProblem, sw) -> float:
    """The mean's denominator with sample weights: sum of s * w[target] over
    the non-ignored positions (class indices, validated), or of s."""
    if not pb.index_targets:
        return float(sw.sum())
    keep = pb.target != pb.ignore_index
    if pb.weight is None:
        return float(sw[keep].sum())
    return float(np.dot(sw[keep], pb.weight[pb.target[keep]].astype(np.float64)))


def _class_sums(pb: v.ClassLossProblem, n_threads, *, overwrite_input=False):
    """Run the kernels of a validated cross-entropy / NLL call: (float64 loss
    sum, the mean's denominator); per-position losses go to ``pb.loss_out``
    and the gradient to ``pb.grad`` (the Hessian's diagonal to ``pb.hess``,
    class-index targets only).  ``overwrite_input`` lets a soft cap
    reuse the input's buffer (the linear layer's scratch logits).

    Sample weights ride on the kernels' per-position gradient factor and
    their per-position losses: the sum is ``s . losses`` and the mean's
    denominator ``sum(s * w[target])``, passes over the positions only."""
    layout = pb.layout
    want_grad = pb.grad is not None
    sw = pb.sample_weight
    n_threads = resolve_threads(n_threads, layout.data.size)
    data = layout.data
    if pb.softcap is not None:
        reuse = overwrite_input and not (want_grad and np.shares_memory(pb.grad, data))
        data = _soft_cap(data, pb.softcap, data if reuse else np.empty_like(data))
    gout = pb.gout
    if want_grad and sw is not None:
        gout = sw if gout is None else sw * gout
    gscale = 1.0
    sw_denominator = None     # the mean's with sample weights, once targets are valid
    if pb.index_targets:
        if want_grad:
            # the denominator and target validation come before any write
            denominator, bad = _cross_entropy.check_index_targets(
                data, pb.target, pb.weight, pb.ignore_index, *pb.shape3,
                n_threads=n_threads)
            if bad >= 0:
                v.raise_bad_target(pb.target, bad, layout, pb.ignore_index)
            if sw is not None:
                denominator = sw_denominator = _sample_weighted_denominator(pb, sw)
            gscale = _grad_scale(pb.grad_output, pb.reduction, denominator)
        kwargs = dict(loss_out=pb.loss_out, grad=pb.grad, gout=gout, gscale=gscale,
                      n_threads=n_threads)
        if pb.nll:
            loss_sum, denominator, bad = _cross_entropy.nll(
                data, pb.target, pb.weight, pb.ignore_index, *pb.shape3, **kwargs)
        else:
            if pb.hess is not None:
                kwargs.update(hess=pb.hess, hess_scale=pb.hess_scale,
                              hess_floor=pb.hess_floor)
            loss_sum, denominator, bad = _cross_entropy.cross_entropy_index(
                data, pb.target, pb.weight, pb.weight_total, pb.ignore_index,
                pb.label_smoothing, *pb.shape3, z_loss=pb.z_loss,
                focal_gamma=pb.focal_gamma, focal_alpha=pb.focal_alpha, **kwargs)
        if bad >= 0:
            v.raise_bad_target(pb.target, bad, layout, pb.ignore_index)
    else:
        denominator = layout.n_positions if sw is None else float(sw.sum())
        sw_denominator = denominator
        if want_grad:
            gscale = _grad_scale(pb.grad_output, pb.reduction, denominator)
        loss_sum = _cross_entropy.cross_entropy_prob(
            data, pb.target, pb.weight, pb.weight_total, pb.label_smoothing, *pb.shape3,
            z_loss=pb.z_loss, loss_out=pb.loss_out, grad=pb.grad, gout=gout,
            gscale=gscale, n_threads=n_threads)
    if want_grad and pb.softcap is not None:
        _soft_cap_backward(pb.grad, data, pb.softcap)
    if sw is not None:
        denominator = (sw_denominator if sw_denominator is not None
                       else _sample_weighted_denominator(pb, sw))
        loss_sum = float(np.dot(sw, pb.loss_out.astype(np.float64)))
        if pb.reduction == "none":
            np.multiply(pb.loss_out, sw, out=pb.loss_out, casting="unsafe")
    return loss_sum, denominator


def _class_loss(input, target, weight, size_average, ignore_index, reduce, reduction,
                label_smoothing, axis, dim, *, nll, want_grad, z_loss=0.0, softcap=None,
                grad_output=None, out=None, sample_weight=None, focal=None,
                n_threads=None):
    if _dask.is_dask(input, target, weight, sample_weight, grad_output):
        reduction = v.legacy_reduction(size_average, reduce, reduction, stacklevel=4)
        if dim is not None:
            axis = v.normalize_axis(axis, dim, np.ndim(input))
        return _dask.class_loss(input, target, weight, ignore_index, reduction,
                                label_smoothing, axis, nll=nll, want_grad=want_grad,
                                z_loss=z_loss, softcap=softcap, grad_output=grad_output,
                                out=out, sample_weight=sample_weight, focal=focal,
                                n_threads=n_threads)
    pb = v.prepare_class_loss(input, target, weight, size_average, ignore_index, reduce,
                              reduction, label_smoothing, axis, dim, nll=nll,
                              want_grad=want_grad, z_loss=z_loss, softcap=softcap,
                              grad_output=grad_output, out=out,
                              sample_weight=sample_weight, focal=focal)
    loss_sum, denominator = _class_sums(pb, n_threads)
    loss = _reduce(pb.reduction, loss_sum, denominator, pb.loss_out,
                   pb.layout.batch_shape, pb.result_dtype)
    if not want_grad:
        return loss
    return loss, _finish_grad(pb.grad, pb.out, pb.result_dtype, pb.input_shape)


@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: None = ..., ignore_index: int = ..., reduce: None = ...,
                  reduction: Literal["mean", "sum"] = ..., label_smoothing: float = ...,
                  *, axis: int | None = ..., dim: int | None = ..., z_loss: float = ...,
                  softcap: float | None = ...,
                  sample_weight: ArrayLike | None = ...,
                  n_threads: int | None = ...) -> np.floating[Any]: ...
@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: bool | None = ..., ignore_index: int = ...,
                  reduce: bool | None = ..., *, reduction: Literal["none"],
                  label_smoothing: float = ..., axis: int | None = ...,
                  dim: int | None = ..., z_loss: float = ..., softcap: float | None = ...,
                  sample_weight: ArrayLike | None = ...,
                  n_threads: int | None = ...) -> FloatArray: ...
@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: bool | None = ..., ignore_index: int = ...,
                  reduce: bool | None = ..., reduction: Reduction = ...,
                  label_smoothing: float = ..., *, axis: int | None = ...,
                  dim: int | None = ..., z_loss: float = ..., softcap: float | None = ...,
                  sample_weight: ArrayLike | None = ...,
                  n_threads: int | None = ...) -> LossValue: ...
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  size_average: bool | None = None, ignore_index: int = -100,
                  reduce: bool | None = None, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, *, axis: int | None = None,
                  dim: int | None = None, z_loss: float = 0.0,
                  softcap: float | None = None,
                  sample_weight: ArrayLike | None = None,
                  n_threads: int | None = None) -> LossValue:
    """Softmax cross-entropy between logits and targets, as
    ``torch.nn.functional.cross_entropy``, optionally with PaLM's z-loss.

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
    z_loss : float >= 0, default 0
        PaLM's auxiliary z-loss: adds ``z_loss * lse**2`` per position, where
        ``lse`` is the log-sum-exp of its logits, which keeps the softmax
        normaliser near 1.  With class-index targets the term is weighted by
        the target's class weight and skipped for ignored positions, so the
        mean divides it like the cross-entropy term; with probability
        targets it is unweighted and the mean is over positions.
    softcap : float > 0, optional
        Gemma 2's logit soft-capping: the logits ``z`` are replaced by
        ``softcap * tanh(z / softcap)`` (smoothly bounded to
        (-softcap, softcap)) before everything else, z-loss included; the
        gradient is chained through the cap, ``* (1 - tanh(z / softcap)**2)``.
        It costs a few extra passes (NumPy's ``tanh``) and one temporary of
        the input's size.  None (default) leaves the logits as they are.
    sample_weight : array_like, optional
        Per-sample weights ``s`` (finite, >= 0), of the target's batch shape
        (or broadcastable to it), multiplied into each position's loss.  The
        mean becomes ``sum(s * w[y] * l) / sum(s * w[y])`` over the
        non-ignored positions (``sum(s * l) / sum(s)`` for probability
        targets), which without class weights is ``np.average(l,
        weights=s)``, as scikit-learn's ``log_loss(..., sample_weight=s)``.
        The kernels apply ``s`` through their per-position gradient factor
        and losses: no extra pass over the input.
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
    >>> round(float(cross_entropy(x, [1, 2], z_loss=1e-4)), 4)   # + 1e-4 * 3.4076**2
    0.9088
    >>> round(float(cross_entropy(x, [1, 2], sample_weight=[3., 1.])), 4)
    1.1576
    >>> capped = 2.0 * np.tanh(x / 2.0)
    >>> bool(cross_entropy(x, [1, 2], softcap=2.0) == cross_entropy(capped, [1, 2]))
    True
    """
    return _class_loss(input, target, weight, size_average, ignore_index, reduce,
                       reduction, label_smoothing, axis, dim, nll=False, want_grad=False,
                       z_loss=z_loss, softcap=softcap, sample_weight=sample_weight,
                       n_threads=n_threads)


@overload
def cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., ignore_index: int = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., label_smoothing: float = ..., *,
        axis: int | None = ..., dim: int | None = ..., z_loss: float = ...,
        softcap: float | None = ...,
        grad_output: ArrayLike | None = ..., out: FloatArray | None = ...,
        sample_weight: ArrayLike | None = ..., n_threads: int | None = ...,
) -> tuple[np.floating[Any], FloatArray]: ...
@overload
def cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., ignore_index: int = ...,
        reduce: bool | None = ..., *, reduction: Literal["none"],
        label_smoothing: float = ..., axis: int | None = ..., dim: int | None = ...,
        z_loss: float = ..., softcap: float | None = ...,
        grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> tuple[FloatArray, FloatArray]: ...
@overload
def cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., ignore_index: int = ...,
        reduce: bool | None = ..., reduction: Reduction = ...,
        label_smoothing: float = ..., *, axis: int | None = ..., dim: int | None = ...,
        z_loss: float = ..., softcap: float | None = ...,
        grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> tuple[LossValue, FloatArray]: ...
def cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, ignore_index: int = -100,
        reduce: bool | None = None, reduction: Reduction = "mean",
        label_smoothing: float = 0.0, *, axis: int | None = None, dim: int | None = None,
        z_loss: float = 0.0, softcap: float | None = None,
        grad_output: ArrayLike | None = None, out: FloatArray | None = None,
        sample_weight: ArrayLike | None = None, n_threads: int | None = None,
) -> tuple[LossValue, FloatArray]:
    """`cross_entropy` and its gradient with respect to ``input``, from one
    pass over the input.

    ``grad`` is what PyTorch autograd leaves in ``input.grad`` after
    ``loss.backward(grad_output)``.

    Parameters
    ----------
    input, target, weight, size_average, ignore_index, reduce, reduction, \
label_smoothing, axis, dim, z_loss, softcap, sample_weight, n_threads
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
                       z_loss=z_loss, softcap=softcap, grad_output=grad_output, out=out,
                       sample_weight=sample_weight,
                       n_threads=n_threads)


@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: None = ..., ignore_index: int = ..., reduce: None = ...,
             reduction: Literal["mean", "sum"] = ..., *, axis: int | None = ...,
             dim: int | None = ..., sample_weight: ArrayLike | None = ...,
             n_threads: int | None = ...) -> np.floating[Any]: ...
@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: bool | None = ..., ignore_index: int = ...,
             reduce: bool | None = ..., *, reduction: Literal["none"],
             axis: int | None = ..., dim: int | None = ...,
             sample_weight: ArrayLike | None = ...,
             n_threads: int | None = ...) -> FloatArray: ...
@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: bool | None = ..., ignore_index: int = ...,
             reduce: bool | None = ..., reduction: Reduction = ..., *,
             axis: int | None = ..., dim: int | None = ...,
             sample_weight: ArrayLike | None = ...,
             n_threads: int | None = ...) -> LossValue: ...
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
             size_average: bool | None = None, ignore_index: int = -100,
             reduce: bool | None = None, reduction: Reduction = "mean", *,
             axis: int | None = None, dim: int | None = None,
             sample_weight: ArrayLike | None = None,
             n_threads: int | None = None) -> LossValue:
    """Negative log-likelihood of log-probabilities, as
    ``torch.nn.functional.nll_loss``: ``-weight[t] * input[t]`` per element.

    Parameters
    ----------
    input : array_like, float
        Log-probabilities, (N, C), (N, C, d1, ..., dK) or (C,).
    target : array_like of int
        Class indices, the input's shape without the class axis.
    weight, size_average, ignore_index, reduce, reduction, axis, dim, \
sample_weight, n_threads
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
                       sample_weight=sample_weight,
                       n_threads=n_threads)


@overload
def nll_loss_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., ignore_index: int = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., *, axis: int | None = ...,
        dim: int | None = ..., grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> tuple[np.floating[Any], FloatArray]: ...
@overload
def nll_loss_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., ignore_index: int = ...,
        reduce: bool | None = ..., *, reduction: Literal["none"],
        axis: int | None = ..., dim: int | None = ..., grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> tuple[FloatArray, FloatArray]: ...
@overload
def nll_loss_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., ignore_index: int = ...,
        reduce: bool | None = ..., reduction: Reduction = ..., *,
        axis: int | None = ..., dim: int | None = ..., grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> tuple[LossValue, FloatArray]: ...
def nll_loss_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, ignore_index: int = -100,
        reduce: bool | None = None, reduction: Reduction = "mean", *,
        axis: int | None = None, dim: int | None = None,
        grad_output: ArrayLike | None = None, out: FloatArray | None = None,
        sample_weight: ArrayLike | None = None, n_threads: int | None = None,
) -> tuple[LossValue, FloatArray]:
    """`nll_loss` and its gradient with respect to ``input``.

    Parameters
    ----------
    input, target, weight, size_average, ignore_index, reduce, reduction, \
axis, dim, sample_weight, n_threads
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
                       grad_output=grad_output, out=out, sample_weight=sample_weight,
                       n_threads=n_threads)


# ------------------------------------------------------------------ binary --

def _binary_sums(pb: v.BinaryLossProblem, logits, focal, n_threads) -> float:
    """Run the kernels of a validated binary call: the float64 loss sum;
    per-element losses go to ``pb.loss_out`` and the gradient to ``pb.grad``."""
    n_threads = resolve_threads(n_threads, pb.data.size)
    kwargs = dict(weight=pb.weight, gout=pb.gout,
                  gscale=_grad_scale(pb.grad_output, pb.reduction, pb.denominator),
                  loss_out=pb.loss_out, grad=pb.grad, n_threads=n_threads)
    if focal is not None:       # the sigmoid focal loss, on logits
        alpha, gamma = v.sigmoid_focal_values(*focal)
        return _binary.sigmoid_focal(pb.data, pb.target, pb.rows, pb.cols,
                                     alpha=alpha, gamma=gamma, **kwargs)
    if logits:
        return _binary.bce_logits(pb.data, pb.target, pb.rows, pb.cols,
                                  pos_weight=pb.pos_weight, **kwargs)
    for arr, what in ((pb.data, "input"), (pb.target, "target")):
        bad = _binary.first_outside_unit(arr, pb.rows, pb.cols, n_threads=n_threads)
        if bad >= 0:
            v.raise_outside_unit(arr, bad, pb.shape, what)
    return _binary.bce_probs(pb.data, pb.target, pb.rows, pb.cols, **kwargs)


def _binary_loss(logits, input, target, weight, size_average, reduce, reduction,
                 pos_weight=None, *, want_grad, grad_output=None, out=None,
                 sample_weight=None, focal=None, n_threads=None):
    if _dask.is_dask(input, target, weight, pos_weight, sample_weight, grad_output):
        reduction = v.legacy_reduction(size_average, reduce, reduction, stacklevel=4)
        return _dask.binary_loss(logits, input, target, weight, reduction, pos_weight,
                                 want_grad=want_grad, grad_output=grad_output, out=out,
                                 sample_weight=sample_weight, focal=focal,
                                 n_threads=n_threads)
    pb = v.prepare_binary_loss(input, target, weight, size_average, reduce, reduction,
                               pos_weight, want_grad=want_grad, grad_output=grad_output,
                               out=out, sample_weight=sample_weight)
    loss_sum = _binary_sums(pb, logits, focal, n_threads)
    loss = _reduce(pb.reduction, loss_sum, pb.denominator, pb.loss_out, pb.shape,
                   pb.result_dtype)
    if not want_grad:
        return loss
    return loss, _finish_grad(pb.grad, pb.out, pb.result_dtype, pb.shape)


@overload
def binary_cross_entropy_with_logits(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., pos_weight: ArrayLike | None = ..., *,
        sample_weight: ArrayLike | None = ..., n_threads: int | None = ...,
) -> np.floating[Any]: ...
@overload
def binary_cross_entropy_with_logits(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ..., *,
        reduction: Literal["none"], pos_weight: ArrayLike | None = ...,
        sample_weight: ArrayLike | None = ..., n_threads: int | None = ...,
) -> FloatArray: ...
@overload
def binary_cross_entropy_with_logits(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ...,
        reduction: Reduction = ..., pos_weight: ArrayLike | None = ..., *,
        sample_weight: ArrayLike | None = ..., n_threads: int | None = ...,
) -> LossValue: ...
def binary_cross_entropy_with_logits(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, reduce: bool | None = None,
        reduction: Reduction = "mean", pos_weight: ArrayLike | None = None, *,
        sample_weight: ArrayLike | None = None, n_threads: int | None = None,
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
    sample_weight : array_like, optional
        Per-sample weights ``s`` (finite, >= 0) broadcastable to the input,
        multiplied into each element's loss like ``weight``; the mean becomes
        ``sum(s * l) / sum(s)`` with ``s`` broadcast to the input's shape
        (``(N, 1)`` weighs whole rows, ``(N, C)`` single labels).
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
    return _binary_loss(True, input, target, weight, size_average, reduce, reduction,
                        pos_weight, want_grad=False, sample_weight=sample_weight,
                        n_threads=n_threads)


@overload
def binary_cross_entropy_with_logits_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., pos_weight: ArrayLike | None = ..., *,
        grad_output: ArrayLike | None = ..., out: FloatArray | None = ...,
        sample_weight: ArrayLike | None = ..., n_threads: int | None = ...,
) -> tuple[np.floating[Any], FloatArray]: ...
@overload
def binary_cross_entropy_with_logits_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ..., *,
        reduction: Literal["none"], pos_weight: ArrayLike | None = ...,
        grad_output: ArrayLike | None = ..., out: FloatArray | None = ...,
        sample_weight: ArrayLike | None = ..., n_threads: int | None = ...,
) -> tuple[FloatArray, FloatArray]: ...
@overload
def binary_cross_entropy_with_logits_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ...,
        reduction: Reduction = ..., pos_weight: ArrayLike | None = ..., *,
        grad_output: ArrayLike | None = ..., out: FloatArray | None = ...,
        sample_weight: ArrayLike | None = ..., n_threads: int | None = ...,
) -> tuple[LossValue, FloatArray]: ...
def binary_cross_entropy_with_logits_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, reduce: bool | None = None,
        reduction: Reduction = "mean", pos_weight: ArrayLike | None = None, *,
        grad_output: ArrayLike | None = None, out: FloatArray | None = None,
        sample_weight: ArrayLike | None = None, n_threads: int | None = None,
) -> tuple[LossValue, FloatArray]:
    """`binary_cross_entropy_with_logits` and its gradient with respect to
    ``input``: ``weight * (pos_weight * y + 1 - y) * (sigmoid(x) - p)`` per
    element, scaled by ``grad_output`` and the reduction, where
    ``p = pos_weight * y / (pos_weight * y + 1 - y)``.

    Parameters
    ----------
    input, target, weight, size_average, reduce, reduction, pos_weight, \
sample_weight, n_threads
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
    return _binary_loss(True, input, target, weight, size_average, reduce, reduction,
                        pos_weight, want_grad=True, grad_output=grad_output, out=out,
                        sample_weight=sample_weight,
                        n_threads=n_threads)


@overload
def binary_cross_entropy(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., *, sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> np.floating[Any]: ...
@overload
def binary_cross_entropy(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ..., *,
        reduction: Literal["none"], sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> FloatArray: ...
@overload
def binary_cross_entropy(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ...,
        reduction: Reduction = ..., *, sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> LossValue: ...
def binary_cross_entropy(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, reduce: bool | None = None,
        reduction: Reduction = "mean", *, sample_weight: ArrayLike | None = None,
        n_threads: int | None = None,
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
    weight, size_average, reduce, reduction, sample_weight, n_threads
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
    return _binary_loss(False, input, target, weight, size_average, reduce, reduction,
                        want_grad=False, sample_weight=sample_weight,
                        n_threads=n_threads)


@overload
def binary_cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: None = ..., reduce: None = ...,
        reduction: Literal["mean", "sum"] = ..., *, grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> tuple[np.floating[Any], FloatArray]: ...
@overload
def binary_cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ..., *,
        reduction: Literal["none"], grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> tuple[FloatArray, FloatArray]: ...
@overload
def binary_cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
        size_average: bool | None = ..., reduce: bool | None = ...,
        reduction: Reduction = ..., *, grad_output: ArrayLike | None = ...,
        out: FloatArray | None = ..., sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
) -> tuple[LossValue, FloatArray]: ...
def binary_cross_entropy_and_grad(
        input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
        size_average: bool | None = None, reduce: bool | None = None,
        reduction: Reduction = "mean", *, grad_output: ArrayLike | None = None,
        out: FloatArray | None = None, sample_weight: ArrayLike | None = None,
        n_threads: int | None = None,
) -> tuple[LossValue, FloatArray]:
    """`binary_cross_entropy` and its gradient with respect to ``input``
    (PyTorch's: ``w * g * (p - y) / max((1 - p) * p, 1e-12)``).

    Parameters
    ----------
    input, target, weight, size_average, reduce, reduction, sample_weight, n_threads
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
    return _binary_loss(False, input, target, weight, size_average, reduce, reduction,
                        want_grad=True, grad_output=grad_output, out=out,
                        sample_weight=sample_weight,
                        n_threads=n_threads)


# ----------------------------------------------------------------- softmax --

def _softmax_family(kernel, input, axis, dim, n_threads, *, reduces):
    """Run a `fastce._kernels._softmax` entry: ``reduces`` -- it gives one value
    per position (logsumexp), else an array of the input's shape."""
    x, result_dtype = v.float_input(input)
    ax = v.normalize_axis(axis, dim, x.ndim)
    layout = v.class_layout(x, ax)
    n_threads = resolve_threads(n_threads, layout.data.size)
    out = np.empty(layout.n_positions if reduces else x.shape, dtype=layout.data.dtype)
    kernel(layout.data, out, layout.outer, layout.n_cls, layout.inner, n_threads=n_threads)
    if reduces:
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
    return _softmax_family(_softmax.log_softmax, input, axis, dim, n_threads,
                           reduces=False)


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
    return _softmax_family(_softmax.softmax, input, axis, dim, n_threads, reduces=False)


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
    return _softmax_family(_softmax.logsumexp, input, axis, dim, n_threads, reduces=True)
