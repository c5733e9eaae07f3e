"""Gradient-boosting objectives: the gradient and the diagonal of the Hessian
of the cross-entropy losses with respect to raw scores, as XGBoost, LightGBM
and scikit-learn's histogram gradient boosting consume them.

A boosting library fits each round's trees to a gradient ``g`` and Hessian
diagonal ``h`` of the loss per raw score.  For softmax cross-entropy,
``g = s * w[y] * (softmax(raw) - onehot(y))`` and, per entry,
``h = s * w[y] * p * (1 - p)``; the libraries differ in a factor on ``h``,
which the ``hessian`` argument names:

``"xgboost"``
    XGBoost's ``multi:softprob``: ``max(2 * h, 1e-16)``
    (``src/objective/multiclass_obj.cu``); for the logistic objectives its
    ``binary:logistic``: ``max(h, 1e-16)`` (``regression_loss.h``; XGBoost
    floors before multiplying the sample weight, fastce after).
``"exact_diagonal"``
    The diagonal itself, ``h``, as scikit-learn's ``HalfMultinomialLoss``
    (``sklearn/_loss/loss.py``) gives it.
``"lightgbm"``
    LightGBM's ``multiclass``: ``C / (C - 1) * h``
    (``src/objective/multiclass_objective.hpp``, ``factor_``); its
    ``binary`` objective uses ``h`` itself.

The softmax objectives run in the cross-entropy kernels: the tile's
log-sum-exp, then one write that forms both ``g`` and ``h`` from one
exponential per entry (``index_grad_hess`` in ``_kernels/simd_index.h``).
The logistic ones are an elementwise kernel beside the binary
cross-entropies (``binary_grad_hess`` in ``_kernels/simd_binary.h``).
Nothing here imports xgboost or lightgbm: the adapters only read the arrays
those libraries hand to a custom objective.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Literal, Optional

import numpy as np
from numpy.typing import ArrayLike

from fastce import _validation as v
from fastce import functional as F
from fastce._config import resolve_threads
from fastce._kernels import _binary
from fastce.functional import FloatArray

__all__ = ["softmax_grad_hess", "focal_grad_hess", "logistic_grad_hess",
           "sigmoid_focal_grad_hess", "xgboost_objective", "lightgbm_objective",
           "sklearn_objective"]

HessianRule = Literal["xgboost", "exact_diagonal", "lightgbm"]
GradHess = tuple[FloatArray, FloatArray]

#: XGBoost's lower bound of a Hessian entry (kRtEps-sized; 1e-16f in its source)
XGBOOST_MIN_HESSIAN = 1e-16


# ------------------------------------------------------------- validation --

def _hessian_rule(hessian, n_cls: int, *, softmax: bool) -> tuple[float, float]:
    """(factor, lower bound) of the Hessian for ``hessian``."""
    if hessian == "xgboost":
        return (2.0 if softmax else 1.0), XGBOOST_MIN_HESSIAN
    if hessian == "exact_diagonal":
        return 1.0, -math.inf
    if hessian == "lightgbm":
        if not softmax:
            return 1.0, -math.inf
        if n_cls < 2:
            raise ValueError(f"hessian='lightgbm' needs at least 2 classes (its factor "
                             f"is C / (C - 1)), got {n_cls}")
        return n_cls / (n_cls - 1.0), -math.inf
    raise ValueError(f"hessian must be 'xgboost', 'exact_diagonal' or 'lightgbm', "
                     f"got {hessian!r}")


def _raw_scores(raw, *, two_d: bool) -> np.ndarray:
    arr = raw if isinstance(raw, np.ndarray) else np.asarray(raw)
    if two_d and arr.ndim != 2:
        raise ValueError(f"raw scores must be a 2-D array (n_samples, n_classes), got "
                         f"shape {arr.shape}")
    if not two_d and arr.ndim not in (1, 2):
        raise ValueError(f"raw scores must be a 1-D (n_samples,) or 2-D (n_samples, "
                         f"n_outputs) array, got shape {arr.shape}")
    return arr


def _class_labels(y, n_samples: int, n_cls: int) -> np.ndarray:
    """Class labels as int64 (n_samples,): integers, or the whole-number
    floats boosting libraries store labels as; IndexError outside [0, C)."""
    t = np.asarray(y)
    if t.shape != (n_samples,):
        raise ValueError(f"labels must have shape ({n_samples},), one class per row "
                         f"of the raw scores, got shape {t.shape}")
    if t.dtype.kind == "f":
        whole = np.isfinite(t) & (t == np.round(t))
        if not whole.all():
            i = int(np.argmin(whole))
            raise ValueError(f"labels must be whole class numbers, got {t[i]!r} at "
                             f"position {i}")
        t = t.astype(np.int64)
    elif t.dtype.kind not in "biu":
        raise TypeError(f"labels must be class numbers, got dtype {t.dtype}")
    t = v.c_aligned(t, np.int64)
    outside = (t < 0) | (t >= n_cls)
    if outside.any():
        i = int(np.argmax(outside))
        raise IndexError(f"label {int(t[i])} at position {i} is not a class index in "
                         f"[0, {n_cls})")
    return t


def _row_weights(sample_weight, raw: np.ndarray, *, per_output: bool):
    """``sample_weight`` (n_samples,), one per row, as the loss functions
    take it: per position for the softmax losses; ``per_output``: broadcast
    over the outputs of a 2-D logistic input."""
    if sample_weight is None:
        return None
    s = np.asarray(sample_weight)
    if s.shape != (raw.shape[0],):
        raise ValueError(f"sample_weight must have shape ({raw.shape[0]},), one weight "
                         f"per row of the raw scores, got shape {s.shape}")
    return s[:, None] if per_output and raw.ndim == 2 else s


def _split_out(out):
    if out is None:
        return None, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ValueError("out must be a tuple (grad, hess) of two arrays")
    return out


def _hess_buffer(hess_out, grad_out, raw, result_dtype, data, operands) -> np.ndarray:
    """Where the kernels write the Hessian (``hess_out`` itself when they
    can); it must not overlap the raw scores, the gradient or an operand."""
    h, is_raw = v.check_out(hess_out, raw, result_dtype, raw)
    if h is None:
        return np.empty(data.shape, dtype=data.dtype)
    if is_raw:
        raise ValueError("out: the Hessian's buffer must not be the raw scores")
    if grad_out is not None and np.may_share_memory(h, grad_out):
        raise ValueError("out: the gradient's and the Hessian's buffers overlap")
    v.check_out_disjoint(h, **operands)
    return v.grad_buffer(h, False, data)


# ----------------------------------------------------------------- softmax --

def _softmax_grad_hess(raw, y, *, weight, sample_weight, label_smoothing, focal,
                       hessian, out, n_threads) -> GradHess:
    arr = _raw_scores(raw, two_d=True)
    n, n_cls = arr.shape
    labels = _class_labels(y, n, n_cls)
    scale, floor = _hessian_rule(hessian, n_cls, softmax=True)
    grad_out, hess_out = _split_out(out)
    pb = v.prepare_class_loss(arr, labels, weight, None, -100, None, "sum",
                              label_smoothing, 1, None, nll=False, want_grad=True,
                              out=grad_out,
                              sample_weight=_row_weights(sample_weight, arr,
                                                         per_output=False),
                              focal=focal)
    pb.hess = _hess_buffer(hess_out, grad_out, raw, pb.result_dtype, pb.layout.data,
                           dict(weight=weight, target=y, sample_weight=sample_weight))
    pb.hess_scale, pb.hess_floor = scale, floor
    F._class_sums(pb, n_threads)
    grad = F._finish_grad(pb.grad, pb.out, pb.result_dtype, pb.input_shape)
    hess = F._finish_grad(pb.hess, hess_out, pb.result_dtype, pb.input_shape)
    return grad, hess


def softmax_grad_hess(raw: ArrayLike, y: ArrayLike, *, weight: ArrayLike | None = None,
                      sample_weight: ArrayLike | None = None,
                      label_smoothing: float = 0.0, hessian: HessianRule = "xgboost",
                      out: tuple[FloatArray, FloatArray] | None = None,
                      n_threads: int | None = None) -> GradHess:
    """Gradient and Hessian diagonal of softmax cross-entropy per raw score,
    from one pass over ``raw``.

    Per row ``i`` with label ``y[i]`` and ``p = softmax(raw[i])``::

        grad[i] = s[i] * (a * p - t)
        hess[i] = rule(s[i] * a * p * (1 - p))

    where ``t`` is the (smoothed, weighted) target distribution,
    ``t = (1 - eps) * w[y] * onehot(y) + eps / C * w``, ``a = sum(t)``, ``s`` is
    ``sample_weight`` and ``w`` the class ``weight`` (ones when absent): the
    gradient and exact diagonal Hessian of
    ``s * cross_entropy(raw, y, weight, label_smoothing=eps, reduction="none")``.
    With neither, ``grad = p - onehot(y)``.

    Parameters
    ----------
    raw : array_like, shape (n_samples, n_classes)
        Raw scores (margins), float32 or float64 (float16 is computed in
        float32).
    y : array_like, shape (n_samples,)
        Class labels in ``[0, n_classes)``: integers, or whole-number floats
        as XGBoost and LightGBM store them.
    weight : array_like, shape (n_classes,), optional
        Per-class weights, as in `fastce.cross_entropy`.
    sample_weight : array_like, shape (n_samples,), optional
        Per-row weights (non-negative, finite).
    label_smoothing : float, default 0.0
        As in `fastce.cross_entropy`.
    hessian : {"xgboost", "exact_diagonal", "lightgbm"}, default "xgboost"
        ``rule``: ``max(2 h, 1e-16)`` as XGBoost's ``multi:softprob``,
        ``h`` as scikit-learn's ``HalfMultinomialLoss``, or
        ``C / (C - 1) * h`` as LightGBM's ``multiclass`` (see the module
        docstring for the sources).
    out : tuple of two ndarrays, optional
        Preallocated ``(grad, hess)`` of raw's shape and dtype, C-contiguous;
        ``grad`` may be ``raw`` itself (overwritten), ``hess`` may not.
    n_threads : int, optional
        Threads to use (default: `fastce.get_num_threads`).

    Returns
    -------
    grad, hess : ndarray, shape (n_samples, n_classes)
        In raw's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce.boosting import softmax_grad_hess
    >>> g, h = softmax_grad_hess(np.zeros((1, 2)), [1])
    >>> g
    array([[ 0.5, -0.5]])
    >>> h
    array([[0.5, 0.5]])
    >>> softmax_grad_hess(np.zeros((1, 2)), [1], hessian="exact_diagonal")[1]
    array([[0.25, 0.25]])
    """
    return _softmax_grad_hess(raw, y, weight=weight, sample_weight=sample_weight,
                              label_smoothing=label_smoothing, focal=None,
                              hessian=hessian, out=out, n_threads=n_threads)


def focal_grad_hess(raw: ArrayLike, y: ArrayLike, *, gamma: float = 2.0,
                    alpha: ArrayLike | None = None, weight: ArrayLike | None = None,
                    sample_weight: ArrayLike | None = None,
                    hessian: HessianRule = "xgboost",
                    out: tuple[FloatArray, FloatArray] | None = None,
                    n_threads: int | None = None) -> GradHess:
    """Gradient and Hessian diagonal of the softmax focal loss per raw score,
    ``-s alpha[y] w[y] (1 - p_y)**gamma log p_y`` per row (`fastce.focal_loss`
    with ``reduction="none"``, times ``sample_weight``).

    The Hessian is the exact diagonal, the focal factor's own curvature
    included; ``gamma = 0`` gives `softmax_grad_hess`.  Unlike
    cross-entropy's, the focal loss is not convex: the diagonal is negative
    for rows whose label the model puts far below the others.  ``hessian``
    applies its rule to it, so ``"xgboost"`` raises such entries to 1e-16;
    with ``"exact_diagonal"`` or ``"lightgbm"`` they stay negative, which
    LightGBM's leaf values (``-G / H``) do not expect.

    Parameters
    ----------
    raw, y, weight, sample_weight, hessian, out, n_threads
        As in `softmax_grad_hess`.
    gamma : float, default 2.0
        Focusing exponent, >= 0.
    alpha : array_like, shape (n_classes,), optional
        Per-class factors (ones when absent).

    Returns
    -------
    grad, hess : ndarray, shape (n_samples, n_classes)

    Examples
    --------
    >>> import numpy as np
    >>> from fastce.boosting import focal_grad_hess, softmax_grad_hess
    >>> raw = np.array([[2.0, 0.0, -1.0]])
    >>> g, h = focal_grad_hess(raw, [0], gamma=2.0, hessian="exact_diagonal")
    >>> bool(np.abs(g).max() < np.abs(softmax_grad_hess(raw, [0])[0]).max())
    True
    >>> g0, _ = focal_grad_hess(raw, [0], gamma=0.0)
    >>> bool(np.allclose(g0, softmax_grad_hess(raw, [0])[0]))
    True
    """
    return _softmax_grad_hess(raw, y, weight=weight, sample_weight=sample_weight,
                              label_smoothing=0.0, focal=(gamma, alpha), hessian=hessian,
                              out=out, n_threads=n_threads)


# ---------------------------------------------------------------- logistic --

def _logistic_grad_hess(raw, y, *, weight, pos_weight, sample_weight, focal, hessian,
                        out, n_threads) -> GradHess:
    arr = _raw_scores(raw, two_d=False)
    t = np.asarray(y)
    if t.shape != arr.shape and t.size == arr.size:
        t = t.reshape(arr.shape)    # XGBoost hands multi-label labels flat
    if t.dtype.kind in "biu":
        t = t.astype(arr.dtype if arr.dtype.kind == "f" else np.float64)
    scale, floor = _hessian_rule(hessian, 1, softmax=False)
    grad_out, hess_out = _split_out(out)
    pb = v.prepare_binary_loss(arr, t, weight, None, None, "sum", pos_weight,
                               want_grad=True, out=grad_out,
                               sample_weight=_row_weights(sample_weight, arr,
                                                                        per_output=True))
    hess = _hess_buffer(hess_out, grad_out, raw, pb.result_dtype, pb.data,
                        dict(weight=weight, pos_weight=pos_weight, target=y,
                             sample_weight=sample_weight))
    focal_args = None if focal is None else v.sigmoid_focal_values(*focal)
    _binary.grad_hess(pb.data, pb.target, pb.rows, pb.cols, grad=pb.grad, hess=hess,
                      hess_scale=scale, hess_floor=floor, weight=pb.weight,
                      pos_weight=pb.pos_weight, focal=focal_args,
                      n_threads=resolve_threads(n_threads, pb.data.size))
    return (F._finish_grad(pb.grad, pb.out, pb.result_dtype, pb.shape),
            F._finish_grad(hess, hess_out, pb.result_dtype, pb.shape))


def logistic_grad_hess(raw: ArrayLike, y: ArrayLike, *, weight: ArrayLike | None = None,
                       pos_weight: ArrayLike | None = None,
                       sample_weight: ArrayLike | None = None,
                       hessian: HessianRule = "xgboost",
                       out: tuple[FloatArray, FloatArray] | None = None,
                       n_threads: int | None = None) -> GradHess:
    """Gradient and Hessian of binary cross-entropy on logits per raw score,
    for binary (``raw`` of shape (n_samples,)) and multi-label
    ((n_samples, n_labels)) boosting.

    With ``p = sigmoid(raw)`` and ``c = pos_weight * y + (1 - y)``::

        grad = s * w * (c * p - pos_weight * y)     # s * w * (p - y) without pos_weight
        hess = rule(s * w * c * p * (1 - p))

    the derivatives of
    ``s * binary_cross_entropy_with_logits(raw, y, w, pos_weight=pos_weight,
    reduction="none")``.  Entries are independent, so the Hessian is exactly
    diagonal.

    Parameters
    ----------
    raw : array_like, shape (n_samples,) or (n_samples, n_labels)
        Raw scores (logits).
    y : array_like
        Targets in [0, 1] of raw's shape (or its size: XGBoost passes
        multi-label labels flat); integers and booleans are taken as 0/1.
    weight : array_like, optional
        Element weights broadcastable to raw's shape, as in
        `fastce.binary_cross_entropy_with_logits`.
    pos_weight : array_like, optional
        Weight of the positive term, broadcastable to raw's shape (one per
        label, say); XGBoost's ``scale_pos_weight`` for 0/1 labels.
    sample_weight : array_like, shape (n_samples,), optional
        Per-row weights (non-negative, finite).
    hessian : {"xgboost", "exact_diagonal", "lightgbm"}, default "xgboost"
        ``rule``: ``max(h, 1e-16)`` as XGBoost's ``binary:logistic``, or
        ``h`` itself (LightGBM's ``binary`` and the exact value).
    out, n_threads
        As in `softmax_grad_hess`.

    Returns
    -------
    grad, hess : ndarray of raw's shape

    Examples
    --------
    >>> import numpy as np
    >>> from fastce.boosting import logistic_grad_hess
    >>> g, h = logistic_grad_hess(np.array([0.0, 0.0]), np.array([1.0, 0.0]))
    >>> g
    array([-0.5,  0.5])
    >>> h
    array([0.25, 0.25])
    """
    return _logistic_grad_hess(raw, y, weight=weight, pos_weight=pos_weight,
                               sample_weight=sample_weight, focal=None, hessian=hessian,
                               out=out, n_threads=n_threads)


def sigmoid_focal_grad_hess(raw: ArrayLike, y: ArrayLike, *, alpha: float = 0.25,
                            gamma: float = 2.0, weight: ArrayLike | None = None,
                            sample_weight: ArrayLike | None = None,
                            hessian: HessianRule = "xgboost",
                            out: tuple[FloatArray, FloatArray] | None = None,
                            n_threads: int | None = None) -> GradHess:
    """Gradient and Hessian of torchvision's sigmoid focal loss per raw score
    (`fastce.sigmoid_focal_loss` with ``reduction="none"``, times
    ``weight`` and ``sample_weight``).

    The Hessian is the exact second derivative, which is negative where the
    loss is concave (confidently wrong elements); ``"xgboost"`` raises those
    entries to 1e-16, the other rules keep them (see `focal_grad_hess`).

    Parameters
    ----------
    raw, y, weight, sample_weight, hessian, out, n_threads
        As in `logistic_grad_hess`.
    alpha : float, default 0.25
        Weight of the positive class (``1 - alpha`` of the negative); < 0
        disables it, as in torchvision.
    gamma : float, default 2.0
        Focusing exponent, >= 0.

    Returns
    -------
    grad, hess : ndarray of raw's shape

    Examples
    --------
    >>> import numpy as np
    >>> from fastce.boosting import logistic_grad_hess, sigmoid_focal_grad_hess
    >>> raw, y = np.array([3.0, -1.0]), np.array([1.0, 1.0])
    >>> g, h = sigmoid_focal_grad_hess(raw, y, alpha=-1, gamma=0.0)
    >>> bool(np.allclose(g, logistic_grad_hess(raw, y)[0]))
    True
    """
    return _logistic_grad_hess(raw, y, weight=weight, pos_weight=None,
                               sample_weight=sample_weight, focal=(alpha, gamma),
                               hessian=hessian, out=out, n_threads=n_threads)


# ---------------------------------------------------------------- adapters --

_OBJECTIVES: dict[str, Callable[..., GradHess]] = {
    "softmax": softmax_grad_hess,
    "focal": focal_grad_hess,
    "logistic": logistic_grad_hess,
    "sigmoid_focal": sigmoid_focal_grad_hess,
}
_CLASS_OBJECTIVES = ("softmax", "focal")


def _objective(loss: str) -> Callable[..., GradHess]:
    try:
        return _OBJECTIVES[loss]
    except (KeyError, TypeError):
        raise ValueError(f"loss must be one of {sorted(_OBJECTIVES)}, "
                         f"got {loss!r}") from None


def _call(loss: str, fn, preds, labels, sample_weight, options) -> GradHess:
    raw = np.asarray(preds)
    if loss in _CLASS_OBJECTIVES and raw.ndim == 1:
        # a flat (n_samples * n_classes) margin, row-major, from older callers
        labels = np.asarray(labels)
        if labels.size == 0 or raw.size % labels.size:
            raise ValueError(f"raw scores of size {raw.size} do not split into rows "
                             f"for {labels.size} labels")
        raw = raw.reshape(labels.size, -1)
    if sample_weight is not None and np.size(sample_weight) == 0:
        sample_weight = None   # XGBoost's "no weights"
    return fn(raw, labels, sample_weight=sample_weight, **options)


def _library_objective(loss: str, hessian, options) -> Callable[[Any, Any], GradHess]:
    """``objective(preds, data)`` reading labels and weights of a DMatrix /
    Dataset (both spell them ``get_label`` / ``get_weight``)."""
    fn = _objective(loss)
    options = dict(options, hessian=hessian)

    def objective(preds, data) -> GradHess:
        return _call(loss, fn, preds, data.get_label(), data.get_weight(), options)

    objective.__name__ = objective.__qualname__ = f"fastce_{loss}"
    return objective


def xgboost_objective(loss: str = "softmax", *, hessian: HessianRule = "xgboost",
                      **options: Any) -> Callable[[Any, Any], GradHess]:
    """A custom objective for ``xgboost.train(params, dtrain, obj=...)``.

    The returned ``obj(predt, dtrain)`` reads the labels and weights of
    ``dtrain`` (``get_label``, ``get_weight``) and returns ``(grad, hess)``
    in ``predt``'s shape: (n_samples, n_classes) for the softmax losses, as
    XGBoost >= 2.1 passes multi-class margins; (n_samples,) or
    (n_samples, n_targets) for the logistic ones.  Set ``num_class`` for
    the softmax losses, and ``disable_default_eval_metric`` or an explicit
    ``eval_metric``, as for any custom objective; XGBoost does not apply a
    softmax to ``predict`` then (use ``output_margin=True`` and
    `fastce.softmax`).

    Parameters
    ----------
    loss : {"softmax", "focal", "logistic", "sigmoid_focal"}, default "softmax"
        `softmax_grad_hess`, `focal_grad_hess`, `logistic_grad_hess` or
        `sigmoid_focal_grad_hess`.
    hessian : str, default "xgboost"
        The Hessian rule (`softmax_grad_hess`).
    **options
        Passed on to that function: ``weight``, ``label_smoothing``,
        ``gamma``, ``alpha``, ``pos_weight``, ``n_threads``.

    Returns
    -------
    callable
        ``obj(predt, dtrain) -> (grad, hess)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce.boosting import xgboost_objective
    >>> class Data:      # what obj reads of an xgboost.DMatrix
    ...     def get_label(self): return np.array([0.0, 2.0], dtype=np.float32)
    ...     def get_weight(self): return np.array([], dtype=np.float32)
    >>> obj = xgboost_objective("softmax", weight=[1.0, 1.0, 3.0])
    >>> grad, hess = obj(np.zeros((2, 3), dtype=np.float32), Data())
    >>> grad.round(3)
    array([[-0.667,  0.333,  0.333],
           [ 1.   ,  1.   , -2.   ]], dtype=float32)
    """
    return _library_objective(loss, hessian, options)


def lightgbm_objective(loss: str = "softmax", *, hessian: HessianRule = "lightgbm",
                       **options: Any) -> Callable[[Any, Any], GradHess]:
    """A custom objective for ``lightgbm.train(params, train_set)`` with
    ``params["objective"] = lightgbm_objective(...)`` (LightGBM 4.x).

    The returned ``fobj(preds, train_data)`` reads the labels and weights of
    the ``lightgbm.Dataset`` (``get_label``, ``get_weight``) and returns
    ``(grad, hess)`` in ``preds``' shape, (n_samples, n_classes) for the
    softmax losses as LightGBM 4 passes them.  Set ``num_class`` for those;
    ``predict`` then returns raw scores (apply `fastce.softmax`).

    Parameters
    ----------
    loss, **options
        As in `xgboost_objective`.
    hessian : str, default "lightgbm"
        The Hessian rule (`softmax_grad_hess`).

    Returns
    -------
    callable
        ``fobj(preds, train_data) -> (grad, hess)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce.boosting import lightgbm_objective
    >>> class Data:      # what fobj reads of a lightgbm.Dataset
    ...     def get_label(self): return np.array([1.0, 0.0])
    ...     def get_weight(self): return None
    >>> fobj = lightgbm_objective("softmax")
    >>> grad, hess = fobj(np.zeros((2, 2)), Data())
    >>> hess
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    return _library_objective(loss, hessian, options)


def sklearn_objective(loss: str = "softmax", *, hessian: HessianRule = "xgboost",
                      **options: Any) -> Callable[..., GradHess]:
    """A custom objective in the scikit-learn wrappers' form,
    ``objective(y_true, y_pred, sample_weight=None) -> (grad, hess)``, for
    ``xgboost.XGBClassifier(objective=...)`` and
    ``lightgbm.LGBMClassifier(objective=...)`` (each passes the sample
    weights given to ``fit``).

    Parameters
    ----------
    loss, **options
        As in `xgboost_objective`.
    hessian : str, default "xgboost"
        The Hessian rule (`softmax_grad_hess`); ``"lightgbm"`` matches
        LightGBM's built-in objective.

    Returns
    -------
    callable
        ``objective(y_true, y_pred, sample_weight=None) -> (grad, hess)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastce.boosting import sklearn_objective
    >>> objective = sklearn_objective("logistic", hessian="exact_diagonal")
    >>> grad, hess = objective(np.array([1, 0]), np.array([0.0, 0.0]))
    >>> grad
    array([-0.5,  0.5])
    """
    fn = _objective(loss)
    options = dict(options, hessian=hessian)

    def objective(y_true, y_pred, sample_weight: Optional[ArrayLike] = None) -> GradHess:
        return _call(loss, fn, y_pred, y_true, sample_weight, options)

    objective.__name__ = objective.__qualname__ = f"fastce_{loss}"
    return objective
