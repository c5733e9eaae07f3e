"""Focal losses: cross-entropy that down-weights the examples a model already
gets right, so training attends to the hard and the rare ones (Lin et al.,
"Focal Loss for Dense Object Detection", 2017).

The softmax focal loss runs in the cross-entropy kernels themselves: it needs
each position's log-sum-exp and target logit, which they compute anyway, and
its gradient is cross-entropy's with a per-position factor (see
``focal_losses`` in ``_kernels/simd_index.h``), so loss and gradient come from
one pass over the input, as for `fastce.cross_entropy_and_grad`.  The sigmoid
focal loss (torchvision's) is its own elementwise kernel beside the binary
cross-entropies (``sigmoid_focal`` in ``_kernels/simd_binary.h``).
"""
from __future__ import annotations

from typing import Optional

from numpy.typing import ArrayLike

from fastce import _validation as v
from fastce import functional as F
from fastce.functional import FloatArray, LossValue, Reduction
from fastce.losses import _frozen, _Loss

__all__ = ["focal_loss", "focal_loss_and_grad", "FocalLoss", "sigmoid_focal_loss",
           "sigmoid_focal_loss_and_grad", "SigmoidFocalLoss"]


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


def sigmoid_focal_loss(input: ArrayLike, target: ArrayLike, alpha: float = 0.25,
                       gamma: float = 2.0, reduction: Reduction = "none", *,
                       weight: ArrayLike | None = None,
                       sample_weight: ArrayLike | None = None,
                       n_threads: int | None = None) -> LossValue:
    """The sigmoid focal loss of RetinaNet, as
    ``torchvision.ops.sigmoid_focal_loss``: per element, with
    ``p = sigmoid(input)``,
    ``ce * (1 - p_t)**gamma * alpha_t``, where ``ce`` is
    `fastce.binary_cross_entropy_with_logits`'s loss,
    ``p_t = p y + (1 - p)(1 - y)`` and ``alpha_t = alpha y + (1 - alpha)(1 - y)``.

    Parameters
    ----------
    input : array_like, float
        Logits, any shape.
    target : array_like, float
        Targets of the input's shape (0 / 1 labels, or soft targets in [0, 1]).
    alpha : float, default 0.25
        Weight of the positives (1 - alpha for the negatives); a negative
        value turns the factor off, as in torchvision.
    gamma : float >= 0, default 2
        The focusing exponent; 0 with ``alpha < 0`` is BCE-with-logits.
    reduction : {"none", "mean", "sum"}, default "none" (torchvision's)
        The mean divides by the number of elements (by ``sum(s)`` with
        ``sample_weight``).
    weight : array_like, optional
        Broadcasts to the input, multiplied in (not in torchvision).
    sample_weight, n_threads
        As in `fastce.binary_cross_entropy_with_logits`.

    Returns
    -------
    loss : ndarray of the input's shape for reduction="none", else a numpy
        scalar of the input's dtype

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import sigmoid_focal_loss
    >>> x = np.array([[2.0, -1.0], [0.5, 3.0]])
    >>> y = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> np.round(sigmoid_focal_loss(x, y), 4).tolist()
    [[0.0005, 0.017], [0.2831, 0.0]]
    """
    return F._binary_loss(True, input, target, weight, None, None, reduction,
                          want_grad=False, sample_weight=sample_weight,
                          focal=(alpha, gamma), n_threads=n_threads)


def sigmoid_focal_loss_and_grad(input: ArrayLike, target: ArrayLike, alpha: float = 0.25,
                                gamma: float = 2.0, reduction: Reduction = "none", *,
                                weight: ArrayLike | None = None,
                                sample_weight: ArrayLike | None = None,
                                grad_output: ArrayLike | None = None,
                                out: FloatArray | None = None,
                                n_threads: int | None = None,
                                ) -> tuple[LossValue, FloatArray]:
    """`sigmoid_focal_loss` and its gradient with respect to ``input``, from
    one pass: ``w alpha_t m**gamma [(p - y) + gamma ce (1 - 2y) p (1 - p) / m]``
    per element with ``m = 1 - p_t``.

    Parameters
    ----------
    input, target, alpha, gamma, reduction, weight, sample_weight, n_threads
        As in `sigmoid_focal_loss`.
    grad_output, out
        As in `fastce.binary_cross_entropy_with_logits_and_grad`.

    Returns
    -------
    loss : as `sigmoid_focal_loss`
    grad : ndarray of the input's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import sigmoid_focal_loss_and_grad
    >>> x = np.array([[2.0, -1.0], [0.5, 3.0]])
    >>> y = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, grad = sigmoid_focal_loss_and_grad(x, y, reduction="sum")
    >>> np.round(grad, 4).tolist()
    [[-0.0012, 0.0394], [0.3946, -0.0001]]
    """
    return F._binary_loss(True, input, target, weight, None, None, reduction,
                          want_grad=True, grad_output=grad_output, out=out,
                          sample_weight=sample_weight, focal=(alpha, gamma),
                          n_threads=n_threads)


class SigmoidFocalLoss(_Loss):
    """The sigmoid focal loss as a loss object (configuration only; it
    pickles).  Parameters are those of `fastce.sigmoid_focal_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import SigmoidFocalLoss
    >>> loss_fn = SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="mean")
    >>> x = np.array([[2.0, -1.0], [0.5, 3.0]])
    >>> y = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> round(float(loss_fn(x, y)), 4)
    0.0751
    """

    _fields = ("alpha", "gamma", "reduction", "weight")

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0,
                 reduction: Reduction = "none", *,
                 weight: ArrayLike | None = None) -> None:
        super().__init__(None, None, reduction)
        self.alpha, self.gamma = v.sigmoid_focal_values(alpha, gamma)
        self.weight = _frozen(weight)

    def _kwargs(self) -> dict:
        return dict(alpha=self.alpha, gamma=self.gamma, reduction=self.reduction,
                    weight=self.weight)

    def __call__(self, input: ArrayLike, target: ArrayLike, *,
                 sample_weight: ArrayLike | None = None,
                 n_threads: int | None = None) -> LossValue:
        """The loss, as `fastce.sigmoid_focal_loss`."""
        return sigmoid_focal_loss(input, target, sample_weight=sample_weight,
                                  n_threads=n_threads, **self._kwargs())

    def loss_and_grad(self, input: ArrayLike, target: ArrayLike,
                      grad_output: ArrayLike | None = None,
                      out: Optional[FloatArray] = None, *,
                      sample_weight: ArrayLike | None = None,
                      n_threads: int | None = None) -> tuple[LossValue, FloatArray]:
        """Loss and gradient, as `fastce.sigmoid_focal_loss_and_grad`."""
        return sigmoid_focal_loss_and_grad(input, target, grad_output=grad_output,
                                           out=out, sample_weight=sample_weight,
                                           n_threads=n_threads, **self._kwargs())
