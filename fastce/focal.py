"""Focal losses: cross-entropy that down-weights the examples a model already
gets right, so training attends to the hard and the rare ones (Lin et al.,
"Focal Loss for Dense Object Detection", 2017).

The softmax focal loss runs in the cross-entropy kernels themselves: it needs
each position's log-sum-exp and target logit, which they compute anyway, and
its gradient is cross-entropy's with a per-position factor (see
``focal_losses`` in ``_kernels/simd_index.h``), so loss and gradient come from
one pass over the input, as for `fastce.cross_entropy_and_grad`.
"""
from __future__ import annotations

from typing import Optional

from numpy.typing import ArrayLike

from fastce import _validation as v
from fastce import functional as F
from fastce.functional import FloatArray, LossValue, Reduction
from fastce.losses import _frozen, _Loss

__all__ = ["focal_loss", "focal_loss_and_grad", "FocalLoss"]


def focal_loss(input: ArrayLike, target: ArrayLike, gamma: float = 2.0,
               alpha: ArrayLike | None = None, weight: ArrayLike | None = None,
               ignore_index: int = -100, reduction: Reduction = "mean", *,
               axis: int | None = None, dim: int | None = None,
               sample_weight: ArrayLike | None = None,
               n_threads: int | None = None) -> LossValue:
    """Softmax focal loss with class-index targets,
    ``-alpha[y] * weight[y] * (1 - p_y)**gamma * log p_y`` per position,
    ``p = softmax(input)`` along the class axis.

    ``gamma = 0`` (and no ``alpha``) is `fastce.cross_entropy`.  The mean
    divides the sum over the non-ignored positions by their count, or, with
    ``weight``, by the sum of their ``weight[y]``, as cross_entropy does;
    ``alpha`` is not in the denominator.  (kornia's ``focal_loss`` instead
    takes a scalar alpha and averages over every position, ignored ones
    included; torchvision has only the sigmoid form.)  ``1 - p_y`` is
    computed as ``-expm1(log p_y)``, exact as ``p_y -> 1``, and the gradient
    has no ``0 * inf`` for ``gamma < 1``.

    Parameters
    ----------
    input : array_like, float32, float64 or float16
        Logits of shape (N, C), (N, C, d1, ..., dK) or unbatched (C,).
    target : array_like of int
        Class indices, the input's shape without the class axis.
    gamma : float >= 0, default 2
        The focusing exponent.
    alpha : array_like of shape (C,), optional
        Per-class factors (finite), e.g. inverse class frequencies.
    weight, ignore_index, reduction, axis, dim, sample_weight, n_threads
        As in `fastce.cross_entropy`.

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray for reduction="none"

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import focal_loss, cross_entropy
    >>> x = np.array([[1., 2., 3.], [1., 2., 3.]])
    >>> round(float(focal_loss(x, [1, 2])), 4)     # the confident row counts less
    0.4243
    >>> bool(np.isclose(focal_loss(x, [1, 2], gamma=0.0), cross_entropy(x, [1, 2])))
    True
    """
    return F._class_loss(input, target, weight, None, ignore_index, None, reduction, 0.0,
                         axis, dim, nll=False, want_grad=False,
                         sample_weight=sample_weight, focal=(gamma, alpha),
                         n_threads=n_threads)


def focal_loss_and_grad(input: ArrayLike, target: ArrayLike, gamma: float = 2.0,
                        alpha: ArrayLike | None = None, weight: ArrayLike | None = None,
                        ignore_index: int = -100, reduction: Reduction = "mean", *,
                        axis: int | None = None, dim: int | None = None,
                        sample_weight: ArrayLike | None = None,
                        grad_output: ArrayLike | None = None,
                        out: FloatArray | None = None,
                        n_threads: int | None = None) -> tuple[LossValue, FloatArray]:
    """`focal_loss` and its gradient with respect to ``input``, from one pass.

    The gradient at a position is ``k * (softmax - onehot(y))`` with
    ``k = alpha[y] weight[y] (1 - p_y)**gamma (1 + gamma p_y (-log p_y) /
    (1 - p_y))``: cross-entropy's, reweighted.

    Parameters
    ----------
    input, target, gamma, alpha, weight, ignore_index, reduction, axis, dim, \
sample_weight, n_threads
        As in `focal_loss`.
    grad_output, out
        As in `fastce.cross_entropy_and_grad` (``out=input`` works in place).

    Returns
    -------
    loss : as `focal_loss`
    grad : ndarray of the input's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import focal_loss_and_grad
    >>> x = np.array([[1., 2., 3.], [1., 2., 3.]])
    >>> loss, grad = focal_loss_and_grad(x, [1, 2], gamma=2.0)
    >>> np.round(grad, 4)
    array([[ 0.0491, -0.4119,  0.3628],
           [ 0.0132,  0.0359, -0.0491]])
    """
    return F._class_loss(input, target, weight, None, ignore_index, None, reduction, 0.0,
                         axis, dim, nll=False, want_grad=True, grad_output=grad_output,
                         out=out, sample_weight=sample_weight, focal=(gamma, alpha),
                         n_threads=n_threads)


class FocalLoss(_Loss):
    """Softmax focal loss as a loss object (configuration only; it pickles).

    Parameters are those of `fastce.focal_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import FocalLoss
    >>> loss_fn = FocalLoss(gamma=2.0, alpha=[1.0, 2.0, 1.0])
    >>> x = np.array([[1., 2., 3.], [1., 2., 3.]])
    >>> loss, grad = loss_fn.loss_and_grad(x, [1, 2])
    >>> grad.shape
    (2, 3)
    """

    _fields = ("gamma", "alpha", "weight", "ignore_index", "reduction", "axis")

    def __init__(self, gamma: float = 2.0, alpha: ArrayLike | None = None,
                 weight: ArrayLike | None = None, ignore_index: int = -100,
                 reduction: Reduction = "mean", *, axis: int | None = None,
                 dim: int | None = None) -> None:
        super().__init__(None, None, reduction)
        self.gamma: float = v.focal_gamma_value(gamma)
        self.alpha = _frozen(alpha)
        self.weight = _frozen(weight)
        self.ignore_index: int = v.ignore_index_value(ignore_index)
        self.axis = dim if axis is None else axis

    def _kwargs(self) -> dict:
        return dict(gamma=self.gamma, alpha=self.alpha, weight=self.weight,
                    ignore_index=self.ignore_index, reduction=self.reduction,
                    axis=self.axis)

    def __call__(self, input: ArrayLike, target: ArrayLike, *,
                 sample_weight: ArrayLike | None = None,
                 n_threads: int | None = None) -> LossValue:
        """The loss, as `fastce.focal_loss`."""
        return focal_loss(input, target, sample_weight=sample_weight, n_threads=n_threads,
                          **self._kwargs())

    def loss_and_grad(self, input: ArrayLike, target: ArrayLike,
                      grad_output: ArrayLike | None = None,
                      out: Optional[FloatArray] = None, *,
                      sample_weight: ArrayLike | None = None,
                      n_threads: int | None = None) -> tuple[LossValue, FloatArray]:
        """Loss and gradient, as `fastce.focal_loss_and_grad`."""
        return focal_loss_and_grad(input, target, grad_output=grad_output, out=out,
                                   sample_weight=sample_weight, n_threads=n_threads,
                                   **self._kwargs())
