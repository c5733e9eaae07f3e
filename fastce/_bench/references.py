"""What fastce is compared against: NumPy references and, optionally, PyTorch.

The NumPy functions are what a careful NumPy user writes (max-subtracted
log-softmax, the overflow-free BCE form) with PyTorch's semantics; the
benchmark times them beside fastce and the self-check compares them with
fastce, so a fast kernel is never measured against a wrong reference.
PyTorch is optional everywhere: `import_torch` returns None without it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["IGNORE_INDEX", "numpy_cross_entropy",
           "numpy_binary_cross_entropy_with_logits", "import_torch"]

IGNORE_INDEX = -100


def import_torch(use_torch: bool = True):
    """PyTorch, or None when it is not wanted or not importable."""
    if not use_torch:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def numpy_cross_entropy(input, target, weight=None, ignore_index=IGNORE_INDEX,
                        reduction="mean", label_smoothing=0.0, axis=1):
    """Softmax cross-entropy with class-index targets, written in plain NumPy.

    The reference the benchmark compares against: what a careful NumPy user
    writes (max-subtracted log-softmax, ``take_along_axis`` gather), with
    PyTorch's semantics for ``weight``, ``ignore_index``, ``label_smoothing``
    and the reductions (README.md, "Semantics worth knowing").

    Parameters
    ----------
    input : ndarray of shape (N, C) or (N, C, d1, ..., dK)
        Logits; the class axis is ``axis``.
    target : ndarray of int
        Class indices, the input's shape without the class axis.
    weight : ndarray of shape (C,), optional
        Per-class weights.
    ignore_index : int, default -100
        Targets equal to it contribute nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
    label_smoothing : float, default 0
    axis : int, default 1

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray for ``"none"``

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1., 2., 3.], [1., 2., 3.]])
    >>> round(float(numpy_cross_entropy(x, np.array([1, 2]))), 4)
    0.9076
    """
    x = np.asarray(input)
    target = np.asarray(target)
    n_cls = x.shape[axis]
    # log-softmax = shifted - log(sum(exp(shifted))): subtracting the max keeps
    # exp from overflowing.
    shifted = x - x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    ignored = target == ignore_index
    safe_target = np.where(ignored, 0, target)  # a valid index to gather with
    picked = np.take_along_axis(shifted, np.expand_dims(safe_target, axis), axis=axis)
    nll = np.squeeze(lse - picked, axis=axis)  # -logp[target]
    if weight is None:
        target_weight = np.ones(target.shape, dtype=x.dtype)
    else:
        weight = np.asarray(weight, dtype=x.dtype)
        target_weight = weight[safe_target]
    target_weight = np.where(ignored, 0, target_weight).astype(x.dtype, copy=False)
    loss = target_weight * nll
    if label_smoothing:
        # -sum_c w_c logp_c = (sum_c w_c) * lse - sum_c w_c * shifted_c
        if weight is None:
            weighted_shifted = shifted.sum(axis=axis)
            weight_total = n_cls
        else:
            bshape = [1] * x.ndim
            bshape[axis] = n_cls
            weighted_shifted = (shifted * weight.reshape(bshape)).sum(axis=axis)
            weight_total = weight.sum()
        smooth = np.squeeze(lse, axis=axis) * weight_total - weighted_shifted
        smooth = np.where(ignored, 0, smooth)
        loss = (1 - label_smoothing) * loss + (label_smoothing / n_cls) * smooth
    if reduction == "none":
        return loss.astype(x.dtype, copy=False)
    if reduction == "sum":
        return x.dtype.type(loss.sum())
    return x.dtype.type(loss.sum() / target_weight.sum())


def numpy_binary_cross_entropy_with_logits(input, target, weight=None,
                                           reduction="mean", pos_weight=None):
    """Binary cross-entropy on logits, written in plain NumPy.

    Uses the overflow-free form ``max(x, 0) - x*y + log1p(exp(-|x|))``
    (and its ``pos_weight`` variant), as a careful NumPy user would.

    Parameters
    ----------
    input, target : ndarray of the same shape
        Logits and probabilities in [0, 1].
    weight : array_like, optional
        Broadcasts to the input.
    reduction : {"mean", "sum", "none"}, default "mean"
    pos_weight : array_like, optional
        Weight of the positive term, broadcast along the last axis.

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray for ``"none"``

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[2.0, -1.0]]); y = np.array([[1.0, 0.0]])
    >>> round(float(numpy_binary_cross_entropy_with_logits(x, y)), 4)
    0.2201
    """
    x = np.asarray(input)
    y = np.asarray(target, dtype=x.dtype)
    # log(1 + exp(-|x|)) never overflows; -log(sigmoid(x)) = softplus(-x)
    softplus_neg = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)
    if pos_weight is None:
        loss = (1 - y) * x + softplus_neg
    else:
        pw = np.asarray(pos_weight, dtype=x.dtype)
        loss = (1 - y) * x + (1 + (pw - 1) * y) * softplus_neg
    if weight is not None:
        loss = loss * np.asarray(weight, dtype=x.dtype)
    if reduction == "none":
        return loss.astype(x.dtype, copy=False)
    if reduction == "sum":
        return x.dtype.type(loss.sum())
    return x.dtype.type(loss.mean())
