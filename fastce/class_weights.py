"""Per-class weights for imbalanced data, ready for ``weight=``.

The loss functions weight each element by ``weight[target]``; this module
turns a set of class-index targets into such a vector.  All methods weight a
class by how rare it is (the design notes: total / count of that class) and
differ only in scale and damping:

- ``"inverse_frequency"``: ``N / n_c``.
- ``"balanced"``: ``N / (C * n_c)``, scikit-learn's
  ``compute_class_weight("balanced")``; with it the weighted mean loss is
  the average over classes of each class's mean loss.
- ``"effective_number"``: ``(1 - beta) / (1 - beta**n_c)`` (Cui et al.,
  "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019),
  normalised to sum to C.  It saturates for large classes instead of
  growing without bound as ``1 / n_c`` does.
- ``"median_frequency"``: ``median(freq) / freq_c`` over the classes present
  (Eigen & Fergus 2015, as used by SegNet): the median class gets weight 1.

``N`` counts the non-ignored targets, ``n_c`` those of class ``c`` and ``C``
is ``num_classes``.  The weighted *mean* losses divide by the sum of the
target weights, so a constant factor between two methods (inverse frequency
and balanced) changes ``reduction="sum"`` but not ``reduction="mean"``.
"""
from __future__ import annotations

import numbers
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastce import _validation as v

__all__ = ["class_weights", "ClassWeightMethod"]

ClassWeightMethod = Literal["inverse_frequency", "balanced", "effective_number",
                            "median_frequency"]
_METHODS: tuple[str, ...] = get_args(ClassWeightMethod)


def class_weights(target: ArrayLike, num_classes: int | None = None, *,
                  method: ClassWeightMethod = "inverse_frequency",
                  ignore_index: int = -100, beta: float = 0.999) -> NDArray[np.float64]:
    """Weights that make rare classes count as much as frequent ones.

    Parameters
    ----------
    target : array_like of int, any shape
        Class indices in ``[0, num_classes)`` or ``ignore_index``: labels of
        shape (N,), segmentation masks of shape (N, H, W), ...
    num_classes : int, optional
        C, the length of the result.  Default: the largest non-ignored
        target + 1.  Pass it whenever a class may be missing from ``target``.
    method : {"inverse_frequency", "balanced", "effective_number", \
"median_frequency"}, default "inverse_frequency"
        See the module documentation for the formulas.
    ignore_index : int, default -100
        Targets equal to it are not counted (use the value you pass to the
        loss, e.g. 255 for segmentation masks).
    beta : float in [0, 1), default 0.999
        The ``"effective_number"`` parameter; ignored by the other methods.
        0 gives equal weights; close to 1, weights approach inverse frequency.

    Returns
    -------
    weight : ndarray of float64, shape (C,)
        Pass it as ``weight=`` to `fastce.cross_entropy` and friends.

    Raises
    ------
    TypeError
        ``target`` does not hold integers (or booleans).
    IndexError
        A target outside ``[0, num_classes)`` that is not ``ignore_index``.
    ValueError
        Unknown ``method``; ``num_classes`` < 1; ``beta`` outside [0, 1);
        no target left once ``ignore_index`` is removed.

    Notes
    -----
    **Classes absent from** ``target`` **get weight 0.**  Every method divides
    by the class count, so an absent class has no finite weight; 0 is the
    value that changes nothing where the weights are used: with index
    targets an absent class never is a target, so its weight never enters
    the loss.  (With ``label_smoothing`` > 0 a zero weight also drops that
    class's smoothing term; compute the weights on the full training set
    rather than on one batch if that matters.)  The median of
    ``"median_frequency"`` and the normalisation of ``"effective_number"``
    run over the classes present.  A target with no counted element at all
    raises ValueError rather than returning all zeros, which would make
    every weighted mean 0 / 0.

    Examples
    --------
    >>> import numpy as np
    >>> import fastce
    >>> y = np.array([0, 0, 0, 1, 2, 2])
    >>> fastce.class_weights(y)
    array([2., 6., 3.])
    >>> fastce.class_weights(y, method="balanced")
    array([0.66666667, 2.        , 1.        ])
    >>> fastce.class_weights(y, method="median_frequency")
    array([0.66666667, 2.        , 1.        ])
    >>> w = fastce.class_weights(y, method="effective_number")
    >>> round(float(w.sum()), 12)
    3.0

    Class 3 never occurs, so it gets weight 0; 255 marks pixels to ignore:

    >>> mask = np.array([[0, 0, 255], [1, 255, 0]])
    >>> fastce.class_weights(mask, 4, method="balanced", ignore_index=255)
    array([0.33333333, 1.        , 0.        , 0.        ])

    The result plugs straight into a loss:

    >>> logits = np.zeros((6, 3))
    >>> float(fastce.cross_entropy(logits, y, weight=fastce.class_weights(y)))
    1.0986122886681098
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}; "
                         f"got {method!r}")
    ignore_index = v.ignore_index_value(ignore_index)
    beta = float(beta)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")

    from fastce import _dask
    if _dask.is_dask(target):
        # lazily: per-block counts, added, then the same formulas
        return _dask.class_weights(target, num_classes, method, ignore_index, beta,
                                   lambda counts: _weights_from_counts(counts, method,
                                                                       beta))
    return _weights_from_counts(_class_counts(target, num_classes, ignore_index), method,
                                beta)


def _weights_from_counts(counts, method, beta) -> NDArray[np.float64]:
    if counts.sum() == 0:
        raise ValueError("cannot compute class weights: target has no element other "
                         "than ignore_index")
    present = counts > 0
    total = float(counts.sum())
    weight = np.zeros(counts.size, dtype=np.float64)
    n = counts[present].astype(np.float64)
    if method == "inverse_frequency":
        weight[present] = total / n
    elif method == "balanced":
        weight[present] = total / (counts.size * n)
    elif method == "median_frequency":
        frequency = n / total
        weight[present] = np.median(frequency) / frequency
    else:  # effective_number
        # 1 - beta**n as -expm1(n log beta): exact for small n and beta near 1,
        # where 1 - beta**n would cancel
        raw = (1.0 - beta) / -np.expm1(n * np.log(beta)) if beta > 0 else np.ones_like(n)
        weight[present] = raw * (counts.size / raw.sum())
    return weight


def _class_counts(target: ArrayLike, num_classes: int | None,
                  ignore_index: int) -> NDArray[np.intp]:
    """Occurrences of each class among the non-ignored targets, shape (C,)."""
    t = v.integer_target(target, allow_bool=True)
    if num_classes is not None:
        if isinstance(num_classes, (bool, np.bool_)) or not isinstance(
                num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got "
                             f"{num_classes!r}")
        num_classes = int(num_classes)
    flat = t.reshape(-1)
    kept = flat[flat != ignore_index]
    if kept.size == 0:
        raise ValueError("cannot compute class weights: target has no element "
                         f"other than ignore_index={ignore_index}")
    limit = int(kept.max()) + 1 if num_classes is None else num_classes
    if kept.min() < 0 or kept.max() >= limit:
        # the error path may scan again: report the first bad position
        bad = (flat != ignore_index) & ((flat < 0) | (flat >= limit))
        flat_pos = int(np.argmax(bad))
        v.raise_out_of_bounds(int(flat[flat_pos]), flat_pos, t.shape, limit, ignore_index)
    return np.bincount(kept.astype(np.intp, copy=False), minlength=limit)
