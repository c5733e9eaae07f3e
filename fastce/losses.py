"""Loss objects mirroring ``torch.nn``: they hold configuration only (weights
converted to arrays once), keep no state between calls, and pickle."""
from __future__ import annotations

from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastce import functional as F
from fastce import _validation as v
from fastce.functional import FloatArray, LossValue, Reduction

__all__ = ["CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss"]


def _frozen(value: ArrayLike | None) -> NDArray[Any] | None:
    if value is None:
        return None
    arr = np.array(value, dtype=np.float64 if np.asarray(value).dtype.kind in "biu"
                   else None, copy=True)
    arr.setflags(write=False)
    return arr


class _Loss:
    _fields: tuple[str, ...] = ()

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: Reduction = "mean") -> None:
        # legacy_reduction validates: the result is one of the three literals
        self.reduction = cast(Reduction,
                              v.legacy_reduction(size_average, reduce, reduction))

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields
                         if getattr(self, f) is not None)
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(_same(getattr(self, f), getattr(other, f)) for f in self._fields)

    __hash__ = None  # type: ignore[assignment]  # configuration objects compare by value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and bool(np.array_equal(a, b))
    return bool(a == b)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy, as ``torch.nn.CrossEntropyLoss``.

    Parameters are those of `fastce.cross_entropy`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import CrossEntropyLoss
    >>> loss_fn = CrossEntropyLoss(weight=[1., 10., 1.])
    >>> x = np.array([[1., 2., 3.], [1., 2., 3.]])
    >>> round(float(loss_fn(x, [1, 2])), 4)
    1.3167
    >>> loss, grad = loss_fn.loss_and_grad(x, [1, 2])
    >>> grad.shape
    (2, 3)
    >>> CrossEntropyLoss(z_loss=1e-4, softcap=30.0)
    CrossEntropyLoss(ignore_index=-100, reduction='mean', label_smoothing=0.0, z_loss=0.0001, softcap=30.0)
    """

    _fields = ("weight", "ignore_index", "reduction", "label_smoothing", "axis", "z_loss",
               "softcap")

    def __init__(self, weight: ArrayLike | None = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None,
                 reduction: Reduction = "mean", label_smoothing: float = 0.0, *,
                 axis: int | None = None, dim: int | None = None,
                 z_loss: float = 0.0, softcap: float | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = _frozen(weight)
        self.ignore_index: int = v.ignore_index_value(ignore_index)
        self.label_smoothing: float = v.label_smoothing_value(label_smoothing)
        self.axis = dim if axis is None else axis
        self.z_loss: float = v.z_loss_value(z_loss)
        self.softcap: float | None = v.softcap_value(softcap)

    def __call__(self, input: ArrayLike, target: ArrayLike, *,
                 sample_weight: ArrayLike | None = None,
                 n_threads: int | None = None) -> LossValue:
        """The loss, as `fastce.cross_entropy`."""
        return F.cross_entropy(input, target, self.weight, None, self.ignore_index, None,
                               self.reduction, self.label_smoothing, axis=self.axis,
                               z_loss=self.z_loss, softcap=self.softcap,
                               sample_weight=sample_weight, n_threads=n_threads)

    def loss_and_grad(self, input: ArrayLike, target: ArrayLike,
                      grad_output: ArrayLike | None = None, out: FloatArray | None = None,
                      *, sample_weight: ArrayLike | None = None,
                      n_threads: int | None = None) -> tuple[LossValue, FloatArray]:
        """Loss and gradient, as `fastce.cross_entropy_and_grad`."""
        return F.cross_entropy_and_grad(input, target, self.weight, None,
                                        self.ignore_index, None, self.reduction,
                                        self.label_smoothing, axis=self.axis,
                                        z_loss=self.z_loss, softcap=self.softcap,
                                        grad_output=grad_output, out=out,
                                        sample_weight=sample_weight, n_threads=n_threads)


class NLLLoss(_Loss):
    """Negative log-likelihood, as ``torch.nn.NLLLoss``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import NLLLoss
    >>> round(float(NLLLoss()(np.log([[0.5, 0.5]]), [0])), 4)
    0.6931
    """

    _fields = ("weight", "ignore_index", "reduction", "axis")

    def __init__(self, weight: ArrayLike | None = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None,
                 reduction: Reduction = "mean", *, axis: int | None = None,
                 dim: int | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = _frozen(weight)
        self.ignore_index: int = v.ignore_index_value(ignore_index)
        self.axis = dim if axis is None else axis

    def __call__(self, input: ArrayLike, target: ArrayLike, *,
                 sample_weight: ArrayLike | None = None,
                 n_threads: int | None = None) -> LossValue:
        """The loss, as `fastce.nll_loss`."""
        return F.nll_loss(input, target, self.weight, None, self.ignore_index, None,
                          self.reduction, axis=self.axis,
                          sample_weight=sample_weight, n_threads=n_threads)

    def loss_and_grad(self, input: ArrayLike, target: ArrayLike,
                      grad_output: ArrayLike | None = None, out: FloatArray | None = None,
                      *, sample_weight: ArrayLike | None = None,
                      n_threads: int | None = None) -> tuple[LossValue, FloatArray]:
        """Loss and gradient, as `fastce.nll_loss_and_grad`."""
        return F.nll_loss_and_grad(input, target, self.weight, None, self.ignore_index,
                                   None, self.reduction, axis=self.axis,
                                   grad_output=grad_output, out=out,
                                   sample_weight=sample_weight, n_threads=n_threads)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, as ``torch.nn.BCEWithLogitsLoss``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce import BCEWithLogitsLoss
    >>> loss_fn = BCEWithLogitsLoss(pos_weight=[3.0, 1.0])
    >>> round(float(loss_fn(np.array([[2.0, -1.0]]), np.array([[1.0, 0.0]]))), 4)
    0.347
    """

    _fields = ("weight", "reduction", "pos_weight")

    def __init__(self, weight: ArrayLike | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: Reduction = "mean",
                 pos_weight: ArrayLike | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = _frozen(weight)
        self.pos_weight = _frozen(pos_weight)

    def __call__(self, input: ArrayLike, target: ArrayLike, *,
                 sample_weight: ArrayLike | None = None,
                 n_threads: int | None = None) -> LossValue:
        """The loss, as `fastce.binary_cross_entropy_with_logits`."""
        return F.binary_cross_entropy_with_logits(input, target, self.weight, None, None,
                                                  self.reduction, self.pos_weight,
                                                  sample_weight=sample_weight,
                                                  n_threads=n_threads)

    def loss_and_grad(self, input: ArrayLike, target: ArrayLike,
                      grad_output: ArrayLike | None = None, out: FloatArray | None = None,
                      *, sample_weight: ArrayLike | None = None,
                      n_threads: int | None = None) -> tuple[LossValue, FloatArray]:
        """Loss and gradient, as `fastce.binary_cross_entropy_with_logits_and_grad`."""
        return F.binary_cross_entropy_with_logits_and_grad(
            input, target, self.weight, None, None, self.reduction, self.pos_weight,
            grad_output=grad_output, out=out,
            sample_weight=sample_weight, n_threads=n_threads)


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities, as ``torch.nn.BCELoss``.

    Examples
    --------
    >>> from fastce import BCELoss
    >>> round(float(BCELoss()([0.9, 0.2], [1.0, 0.0])), 4)
    0.1643
    """

    _fields = ("weight", "reduction")

    def __init__(self, weight: ArrayLike | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: Reduction = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = _frozen(weight)

    def __call__(self, input: ArrayLike, target: ArrayLike, *,
                 sample_weight: ArrayLike | None = None,
                 n_threads: int | None = None) -> LossValue:
        """The loss, as `fastce.binary_cross_entropy`."""
        return F.binary_cross_entropy(input, target, self.weight, None, None,
                                      self.reduction,
                                      sample_weight=sample_weight, n_threads=n_threads)

    def loss_and_grad(self, input: ArrayLike, target: ArrayLike,
                      grad_output: ArrayLike | None = None, out: FloatArray | None = None,
                      *, sample_weight: ArrayLike | None = None,
                      n_threads: int | None = None) -> tuple[LossValue, FloatArray]:
        """Loss and gradient, as `fastce.binary_cross_entropy_and_grad`."""
        return F.binary_cross_entropy_and_grad(input, target, self.weight, None, None,
                                               self.reduction, grad_output=grad_output,
                                               out=out, sample_weight=sample_weight,
                                               n_threads=n_threads)
