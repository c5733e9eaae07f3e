"""Validation and normalisation of user input: the one place that turns
array-likes into what the kernels take (C-contiguous float32/float64 data,
int32/int64 targets, an (outer, C, inner) view of the class axis) and that
explains bad input.  Nothing here writes to a user's array.

Each loss family has one preparation step, `prepare_class_loss` (softmax
cross-entropy, NLL), `prepare_binary_loss` (the binary losses) and
`prepare_linear_loss` (the chunked linear + cross-entropy layer), which
returns everything its kernels need in one small dataclass; the functional
layer only dispatches to a kernel and reduces.  A new option of a loss is a
new argument and field here.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

REDUCTIONS = ("none", "mean", "sum")


def c_aligned(a, dtype=None) -> np.ndarray:
    """``a`` as a C-contiguous, *aligned* array of ``dtype`` (no copy when it
    already is one).  np.ascontiguousarray keeps an unaligned buffer (e.g.
    np.frombuffer at an odd offset) as it is, and a kernel reading floats or
    integers from it is undefined behaviour in C (UBSan: "load of misaligned
    address")."""
    if (type(a) is np.ndarray and (dtype is None or a.dtype == dtype)
            and a.flags.c_contiguous and a.flags.aligned):
        return a  # the common case, without np.require's Python-level work
    return np.require(a, dtype=dtype, requirements=["C", "A"])
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def legacy_reduction(size_average, reduce, reduction: str, *, stacklevel: int = 4) -> str:
    """Map the deprecated ``size_average`` / ``reduce`` pair onto ``reduction``
    exactly as PyTorch's ``_Reduction.legacy_get_string`` does.  ``stacklevel``
    points the DeprecationWarning at the user's call (frames between it and
    here: public function or loss object, its dispatch, ...)."""
    if size_average is None and reduce is None:
        return check_reduction(reduction)
    warnings.warn(
        "size_average and reduce args will be deprecated, please use "
        "reduction='none' / 'mean' / 'sum' instead.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        return "mean"
    if reduce:
        return "sum"
    return "none"


def check_reduction(reduction) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"{reduction!r} is not a valid value for reduction; "
            f"expected one of {', '.join(map(repr, REDUCTIONS))}")
    return reduction


def float_input(input, name: str = "input") -> tuple[np.ndarray, np.dtype]:
    """Return (array the kernels can read, result dtype).  float16 is
    computed in float32; any non-float dtype is a TypeError."""
    arr = np.asarray(input)
    dt = arr.dtype
    if dt.kind == "f" and not dt.isnative:
        # float data in the other byte order (e.g. read from a big-endian
        # file) is still float data: compute on a native copy, as NumPy's
        # ufuncs do, and return native results
        dt = dt.newbyteorder("=")
        arr = arr.astype(dt)
    if dt == np.float16:
        return arr.astype(np.float32), dt
    if dt not in _KERNEL_DTYPES:
        raise TypeError(
            f"{name} must be a float32, float64 or float16 array, got dtype {dt}")
    if not arr.flags.aligned:
        arr = np.array(arr, order="C")   # an aligned copy (see c_aligned)
    return arr, dt


def normalize_axis(axis, dim, ndim: int) -> int:
    """The class axis as a non-negative int.  ``None`` means 1, or 0 for 1-D
    (unbatched) input; an explicit axis must exist (0 or -1 for 1-D)."""
    if dim is not None:
        if axis is not None and axis != dim:
            raise ValueError(f"axis={axis!r} and dim={dim!r} disagree; give one")
        axis = dim
    if ndim == 0:
        raise ValueError("input must have at least 1 dimension (the class axis); "
                         "got a 0-d (scalar) array")
    if axis is None:
        return 0 if ndim == 1 else 1
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for input with {ndim} "
                         f"dimension{'s' if ndim > 1 else ''}"
                         + (" (1-D input is unbatched: its class axis is 0)"
                            if ndim == 1 else ""))
    return int(axis) % ndim


@dataclass
class ClassLayout:
    """An input seen as C-contiguous (outer, C, inner) with the class axis in
    the middle; ``batch_shape`` is the input's shape without the class axis."""

    data: np.ndarray          # C-contiguous float32/float64
    outer: int
    n_cls: int
    inner: int
    batch_shape: tuple
    axis: int

    @property
    def n_positions(self) -> int:
        return self.outer * self.inner


def class_layout(arr: np.ndarray, axis: int) -> ClassLayout:
    shape = arr.shape
    data = np.ascontiguousarray(arr)
    outer = math.prod(shape[:axis])
    inner = math.prod(shape[axis + 1:])
    return ClassLayout(data, outer, shape[axis], inner,
                       shape[:axis] + shape[axis + 1:], axis)


def class_weight(weight, n_cls: int, dtype: np.dtype):
    """(C,) weights cast to the kernels' dtype, and their float64 sum."""
    if weight is None:
        return None, float(n_cls)
    w = np.asarray(weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"weight must be a real numeric array, got dtype {w.dtype}")
    if w.shape != (n_cls,):
        raise ValueError(
            f"weight should be a 1D array of shape ({n_cls},) (one per class), "
            f"got shape {w.shape}")
    w = c_aligned(w, dtype)
    return w, float(np.sum(w, dtype=np.float64))


def sigmoid_focal_values(alpha, gamma) -> tuple[float, float]:
    """(alpha, gamma) of the sigmoid focal loss: alpha a finite float (< 0
    turns the alpha factor off, as in torchvision), gamma as `focal_gamma_value`."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a float, got {alpha!r}") from None
    if not math.isfinite(a):
        raise ValueError(f"alpha must be finite, got {a}")
    return a, focal_gamma_value(gamma)


def focal_alpha_values(alpha, n_cls: int, dtype: np.dtype) -> Optional[np.ndarray]:
    """The focal loss's per-class factors: None, or (C,) finite, cast to the
    kernels' dtype."""
    if alpha is None:
        return None
    a = np.asarray(alpha)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"alpha must be a real numeric array, got dtype {a.dtype}")
    if a.shape != (n_cls,):
        raise ValueError(f"alpha should be a 1D array of shape ({n_cls},) (one per "
                         f"class), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("alpha must be finite")
    return c_aligned(a, dtype)


def label_smoothing_value(label_smoothing) -> float:
    try:
        eps = float(label_smoothing)
    except (TypeError, ValueError):
        raise ValueError(f"label_smoothing must be a float in [0, 1], got "
                         f"{label_smoothing!r}") from None
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {eps}")
    return eps


def _nonnegative_float(value, name: str) -> float:
    """``value`` as a finite float >= 0, else ValueError naming ``name``."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a float >= 0, got {value!r}") from None
    if not (math.isfinite(f) and f >= 0.0):
        raise ValueError(f"{name} must be a finite float >= 0, got {f}")
    return f


def z_loss_value(z_loss) -> float:
    """The z-loss coefficient: a finite float >= 0."""
    return _nonnegative_float(z_loss, "z_loss")


def focal_gamma_value(gamma) -> float:
    """The focal loss's focusing exponent: a finite float >= 0."""
    return _nonnegative_float(gamma, "gamma")


def softcap_value(softcap) -> Optional[float]:
    """The soft-capping scale: None (off) or a finite float > 0."""
    if softcap is None:
        return None
    try:
        s = float(softcap)
    except (TypeError, ValueError):
        raise ValueError(f"softcap must be a float > 0 or None, got {softcap!r}") from None
    if not (math.isfinite(s) and s > 0.0):
        raise ValueError(f"softcap must be a finite float > 0 or None, got {s}")
    return s


def sample_weight_values(sample_weight, shape: tuple, what: str) -> np.ndarray:
    """``sample_weight`` as float64, checked: real, finite and >= 0, and
    broadcastable to ``shape`` (``what`` names that shape in the error)."""
    s = np.asarray(sample_weight)
    if s.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be real numbers, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    try:
        fits = np.broadcast_shapes(s.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"sample_weight of shape {s.shape} cannot be broadcast to "
                         f"{what} {tuple(shape)}")
    bad = ~(np.isfinite(s) & (s >= 0))
    if bad.any():
        pos = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), s.shape))
        raise ValueError(f"sample_weight must be finite and >= 0; found "
                         f"{float(s[pos])} at position {pos}")
    return s


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def ignore_index_value(ignore_index) -> int:
    # type(...) is int first: the ABC check below costs more than the rest
    # of a small call's validation
    if type(ignore_index) is not int and (
            isinstance(ignore_index, (bool, np.bool_))
            or not isinstance(ignore_index, numbers.Integral)):
        raise TypeError(f"ignore_index must be an integer, got {ignore_index!r}")
    value = int(ignore_index)
    if not _INT64_MIN <= value <= _INT64_MAX:
        # the kernels compare it with 64-bit targets
        raise ValueError(f"ignore_index={value} is outside the 64-bit integer range "
                         f"[{_INT64_MIN}, {_INT64_MAX}]")
    return value


def index_target(target: np.ndarray, layout: ClassLayout, *, nll: bool) -> np.ndarray:
    """Class-index targets as a flat C-contiguous int32/int64 array (no copy
    for contiguous int32/int64 input)."""
    if target.shape != layout.batch_shape:
        input_shape = (layout.batch_shape[:layout.axis] + (layout.n_cls,)
                       + layout.batch_shape[layout.axis:])
        raise ValueError(
            f"target shape {target.shape} does not match input shape {input_shape}: "
            f"class-index targets have the input's shape without the class axis, "
            f"{layout.batch_shape}"
            + ("" if nll else "; probability targets have the input's shape and a "
               "floating dtype"))
    kind, size = target.dtype.kind, target.dtype.itemsize
    if target.dtype in (np.int32, np.int64):
        t = c_aligned(target)
    elif kind == "i" and size == 8:
        # int64 in the other byte order: to native int64 (never through int32)
        t = np.ascontiguousarray(target, dtype=np.int64)
    elif kind == "u" and size >= 4:
        t = np.ascontiguousarray(target, dtype=np.int64)
        if target.dtype.itemsize == 8 and target.size and target.max() > np.iinfo(np.int64).max:
            pos = int(np.argmax(target))
            raise_out_of_bounds(int(target.reshape(-1)[pos]), pos, target.shape,
                                 layout.n_cls, None)
    else:
        t = np.ascontiguousarray(target, dtype=np.int32)
    return t.reshape(-1)


def target_kind(target: np.ndarray, input_shape: tuple, batch_shape: tuple, *,
                nll: bool) -> str:
    """'index' or 'prob'; TypeError for dtypes no target can have, and for
    floating targets of the batch shape (class indices of the wrong dtype,
    e.g. float labels from a data frame)."""
    kind = target.dtype.kind
    if kind in "iu":
        if not nll and target.shape == input_shape:
            raise TypeError(
                f"target has the input's shape {input_shape}, so it reads as "
                f"probability targets, but its dtype is {target.dtype}; "
                "probability targets must be floating (class-index targets have "
                "the input's shape without the class axis)")
        return "index"
    if kind == "f" and not nll:
        if target.shape != input_shape and target.shape == batch_shape:
            raise TypeError(
                f"class-index targets must be integers (got {target.dtype}); for "
                f"probability targets pass an array of the input's shape {input_shape}")
        return "prob"
    if kind == "f":
        raise TypeError(f"nll_loss expects integer class-index targets, got dtype "
                        f"{target.dtype}")
    raise TypeError(
        f"target must hold integer class indices"
        + ("" if nll else " or floating class probabilities")
        + f", got dtype {target.dtype}")


def integer_target(target, *, allow_bool: bool = False) -> np.ndarray:
    """``target`` as an ndarray of integer class indices; TypeError otherwise
    (`class_weights` also counts booleans as classes 0 and 1)."""
    t = np.asarray(target)
    if t.dtype.kind not in ("biu" if allow_bool else "iu"):
        raise TypeError(f"target must hold integer class indices, got dtype {t.dtype}")
    return t


def raise_out_of_bounds(value, flat_pos, shape, n_cls, ignore_index):
    """IndexError for the class index ``value`` at flat position ``flat_pos``
    of a target of ``shape``, outside [0, n_cls) and not ignore_index."""
    pos = np.unravel_index(flat_pos, shape) if shape else ()
    pos = tuple(int(i) for i in pos)
    where = f"at position {pos}" if shape else "(the only target)"
    extra = "" if ignore_index is None else f", or ignore_index={ignore_index}"
    raise IndexError(
        f"Target {value} is out of bounds. The target {where} must be a class "
        f"index in [0, {n_cls}){extra}.")


def raise_bad_target(target_flat: np.ndarray, flat_pos: int, layout: ClassLayout,
                     ignore_index: int):
    raise_out_of_bounds(int(target_flat[flat_pos]), flat_pos, layout.batch_shape,
                         layout.n_cls, ignore_index)


def probability_target(target: np.ndarray, input_shape: tuple, dtype) -> np.ndarray:
    if target.shape != input_shape:
        raise ValueError(
            f"probability target shape {target.shape} does not match input shape "
            f"{input_shape}")
    return c_aligned(target, dtype)


def grad_output_value(grad_output, loss_shape: tuple, reduction: str):
    """None (1), a Python float, or a float64 array of the loss's shape."""
    if grad_output is None:
        return 1.0
    g = np.asarray(grad_output)
    if g.dtype.kind not in "biuf":
        raise TypeError(f"grad_output must be real numbers, got dtype {g.dtype}")
    if g.ndim == 0:
        return float(g)
    if reduction != "none" or g.shape != loss_shape:
        raise ValueError(
            f"grad_output must be a scalar or have the loss's shape {loss_shape}, "
            f"got shape {g.shape}")
    return c_aligned(g)


def check_out(out, input_arr: np.ndarray, result_dtype: np.dtype, original_input):
    """Validate ``out=``: C-contiguous, writeable, the input's shape and
    dtype, and either the input itself or not overlapping it.  Returns
    (out, whether out is the input: the same array, or a view of the same
    memory with the same strides)."""
    if out is None:
        return None, False
    if not isinstance(out, np.ndarray):
        raise ValueError("out must be a numpy.ndarray")
    if out.shape != input_arr.shape:
        raise ValueError(f"out has shape {out.shape}, expected the input's shape "
                         f"{input_arr.shape}")
    if out.dtype != result_dtype:
        raise ValueError(f"out has dtype {out.dtype}, expected the input's dtype "
                         f"{result_dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous"
                         + (" (out=input needs a C-contiguous input)"
                            if out is original_input else ""))
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    if out is original_input:
        return out, True
    if isinstance(original_input, np.ndarray) and np.shares_memory(out, original_input):
        same = (out.__array_interface__["data"][0]
                == original_input.__array_interface__["data"][0]
                and out.strides == original_input.strides)
        if not same:
            raise ValueError("out overlaps the input without being the input itself")
        return out, True
    return out, False


def check_out_disjoint(out, **operands) -> None:
    """Refuse an ``out=`` that shares memory with a weight or target: the
    kernels read those after they start writing the gradient."""
    if out is None:
        return
    for name, value in operands.items():
        if isinstance(value, np.ndarray) and np.may_share_memory(out, value):
            raise ValueError(f"out shares memory with {name}; pass a separate array")


def grad_buffer(out, out_is_input: bool, data: np.ndarray) -> np.ndarray:
    """Where the kernel writes the gradient: ``data`` itself for out=input
    (an aligned copy when the input was unaligned), ``out`` when the kernel
    can write it directly, else a scratch that the caller copies into
    ``out`` (float16, or an unaligned buffer the kernels must not write)."""
    if out is not None and out.dtype == data.dtype:
        if out_is_input:
            return data
        if out.flags.aligned:
            return out
    return np.empty(data.shape, dtype=data.dtype)


def _upstream(grad_output, loss_shape: tuple, reduction: str, dtype):
    """(scalar upstream gradient or None, per-element array of ``dtype`` or
    None): a scalar when grad_output is None or 0-d."""
    go = grad_output_value(grad_output, loss_shape if reduction == "none" else (),
                           reduction)
    if isinstance(go, np.ndarray):
        return None, c_aligned(go, dtype)
    return go, None


# ------------------------------------------------------ preparation steps --

@dataclass
class ClassLossProblem:
    """A softmax cross-entropy / NLL call, validated and laid out for the
    kernels of `fastce._kernels._cross_entropy`."""

    layout: ClassLayout           # the input as (outer, C, inner), C-contiguous
    result_dtype: np.dtype        # the dtype of the results (float16 stays float16)
    input_shape: tuple
    reduction: str
    nll: bool                     # nll_loss (the input holds log-probabilities)
    index_targets: bool           # class indices (else probabilities)
    target: np.ndarray            # flat int32/int64 indices, or probabilities in x's layout
    weight: Optional[np.ndarray]  # (C,) in the kernels' dtype, or None
    weight_total: float           # float64 sum of the class weights (C without)
    ignore_index: int
    label_smoothing: float
    z_loss: float                 # + z_loss * w[target] * lse^2 per position
    softcap: Optional[float]      # logits -> softcap * tanh(logits / softcap) first
    sample_weight: Optional[np.ndarray]  # float64 per position (flat), or None
    focal_gamma: Optional[float]         # softmax focal loss instead of CE, or None
    focal_alpha: Optional[np.ndarray]    # its (C,) class factors, kernels' dtype
    loss_out: Optional[np.ndarray]    # per-position losses (reduction="none")
    # with a gradient only:
    grad_output: Optional[float]      # scalar upstream gradient (None: per position)
    gout: Optional[np.ndarray]        # float64 per-position upstream gradient
    grad: Optional[np.ndarray]        # where the kernel writes the gradient
    out: Optional[np.ndarray]         # the user's out= (validated), or None
    # with a Hessian too (fastce.boosting): its diagonal is written here,
    # max(hess_scale * d2l/dx2, hess_floor)
    hess: Optional[np.ndarray] = None
    hess_scale: float = 1.0
    hess_floor: float = -math.inf

    @property
    def shape3(self) -> tuple:
        return self.layout.outer, self.layout.n_cls, self.layout.inner


def prepare_class_loss(input, target, weight, size_average, ignore_index, reduce,
                       reduction, label_smoothing, axis, dim, *, nll: bool,
                       want_grad: bool, z_loss=0.0, softcap=None, grad_output=None,
                       out=None, sample_weight=None, focal=None) -> ClassLossProblem:
    """Validate and normalise the arguments of cross_entropy / nll_loss and
    their ``_and_grad`` variants; every error is raised before anything is
    written."""
    # user -> public function -> dispatch -> here -> legacy_reduction
    reduction = legacy_reduction(size_average, reduce, reduction, stacklevel=5)
    x, result_dtype = float_input(input)
    ax = normalize_axis(axis, dim, x.ndim)
    t = np.asarray(target)
    kind = target_kind(t, x.shape, x.shape[:ax] + x.shape[ax + 1:], nll=nll)
    ignore = ignore_index_value(ignore_index)
    eps = 0.0 if nll else label_smoothing_value(label_smoothing)
    z = 0.0 if nll else z_loss_value(z_loss)
    cap = None if nll else softcap_value(softcap)
    if focal is not None and kind != "index":
        raise TypeError(f"focal_loss takes class-index targets (integers of the input's "
                        f"shape without the class axis), got a target of dtype "
                        f"{t.dtype} and shape {t.shape}")
    gamma = None if focal is None else focal_gamma_value(focal[0])
    if kind == "prob" and ignore >= 0:
        raise ValueError(
            f"ignore_index={ignore} does not apply to probability targets "
            "(there is no class index to ignore); leave it at -100")
    layout = class_layout(x, ax)
    kdt = layout.data.dtype
    w, w_total = class_weight(weight, layout.n_cls, kdt)
    out, out_is_input = check_out(out, x, result_dtype, input) if want_grad else (None,
                                                                                  False)
    check_out_disjoint(out, weight=weight, target=target, sample_weight=sample_weight)
    if kind == "index":
        t_kernel = index_target(t, layout, nll=nll)
    else:
        t_kernel = probability_target(t, x.shape, kdt)
    go, gout = (_upstream(grad_output, layout.batch_shape, reduction, np.float64)
                if want_grad else (1.0, None))
    sw = None
    if sample_weight is not None:
        sw = np.ascontiguousarray(np.broadcast_to(
            sample_weight_values(sample_weight, layout.batch_shape, "the target's shape"),
            layout.batch_shape)).reshape(-1)
    return ClassLossProblem(
        layout=layout, result_dtype=result_dtype, input_shape=x.shape,
        reduction=reduction, nll=nll, index_targets=kind == "index", target=t_kernel,
        weight=w,
        weight_total=w_total, ignore_index=ignore, label_smoothing=eps, z_loss=z,
        softcap=cap, sample_weight=sw, focal_gamma=gamma,
        focal_alpha=None if focal is None else focal_alpha_values(focal[1], layout.n_cls,
                                                                  kdt),
        loss_out=(np.empty(layout.n_positions, dtype=kdt)
                  if reduction == "none" or sw is not None else None),
        grad_output=go, gout=None if gout is None else gout.reshape(-1),
        grad=grad_buffer(out, out_is_input, layout.data) if want_grad else None,
        out=out)


def broadcast_operand(value, shape, rows, cols, dtype, name):
    """(array, row stride, column step) of ``value`` broadcast to ``shape`` and
    seen as (rows, cols), without expanding it when its strides allow."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = c_aligned(arr, dtype)  # keeps 0-d; kernels need aligned data
    try:
        b = np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {arr.shape} cannot be broadcast to the "
                         f"input's shape {shape}") from None
    b2 = b.reshape(rows, cols)
    item = b2.itemsize
    if b2.strides[1] not in (0, item) or b2.strides[0] % item or b2.strides[0] < 0:
        b2 = c_aligned(np.ascontiguousarray(b2))
    return b2, b2.strides[0] // item, b2.strides[1] // item


Operand = Any   # (array of the kernels' dtype, row stride, column step 0 or 1)


@dataclass
class BinaryLossProblem:
    """A binary cross-entropy call, validated and seen as (rows, cols) for
    the kernels of `fastce._kernels._binary`."""

    data: np.ndarray              # the input, C-contiguous float32/float64
    target: np.ndarray            # the target, same layout and dtype
    result_dtype: np.dtype
    shape: tuple
    rows: int
    cols: int
    reduction: str
    weight: Optional[Operand]
    pos_weight: Optional[Operand]
    loss_out: Optional[np.ndarray]    # per-element losses (reduction="none")
    denominator: float                # the mean's: elements, or the sum of sample_weight
    # with a gradient only:
    grad_output: Optional[float]      # scalar upstream gradient (None: per element)
    gout: Optional[Operand]           # upstream gradient operand (ones for a scalar)
    grad: Optional[np.ndarray]
    out: Optional[np.ndarray]


def prepare_binary_loss(input, target, weight, size_average, reduce, reduction,
                        pos_weight=None, *, want_grad: bool, grad_output=None,
                        out=None, sample_weight=None) -> BinaryLossProblem:
    """Validate and normalise the arguments of the binary losses and their
    ``_and_grad`` variants (the [0, 1] range of probabilities is checked by
    a kernel, see `raise_outside_unit`)."""
    # user -> public function -> dispatch -> here -> legacy_reduction
    reduction = legacy_reduction(size_average, reduce, reduction, stacklevel=5)
    x, result_dtype = float_input(input)
    t = np.asarray(target)
    if t.dtype.kind != "f":
        raise TypeError(f"target must hold floating probabilities in [0, 1], got "
                        f"dtype {t.dtype}")
    if t.shape != x.shape:
        raise ValueError(f"Target size {t.shape} must be the same as input size "
                         f"{x.shape}")
    out, out_is_input = check_out(out, x, result_dtype, input) if want_grad else (None,
                                                                                  False)
    check_out_disjoint(out, weight=weight, pos_weight=pos_weight, target=target,
                       sample_weight=sample_weight)
    data = np.ascontiguousarray(x)
    kdt = data.dtype
    shape = x.shape
    cols = shape[-1] if x.ndim else 1
    rows = (data.size // cols) if cols else math.prod(shape[:-1])
    w = None if weight is None else broadcast_operand(weight, shape, rows, cols, kdt,
                                                      "weight")
    denominator = float(data.size)
    if sample_weight is not None:
        # multiplied into the element weight; the mean divides by its total
        s = sample_weight_values(sample_weight, shape, "the input's shape")
        denominator = float(s.sum()) * (data.size / s.size) if s.size else 0.0
        w_and_s = s if weight is None else np.multiply(np.asarray(weight, np.float64), s)
        w = broadcast_operand(w_and_s, shape, rows, cols, kdt, "sample_weight")
    pw = None if pos_weight is None else broadcast_operand(pos_weight, shape, rows, cols,
                                                           kdt, "pos_weight")
    go, gout = _upstream(grad_output, shape, reduction, kdt) if want_grad else (1.0, None)
    if want_grad:
        gout = ((gout.reshape(rows, cols), cols, 1) if gout is not None
                else (np.ones(1, dtype=kdt), 0, 0))
    return BinaryLossProblem(
        data=data, target=c_aligned(t, kdt), result_dtype=result_dtype, shape=shape,
        rows=rows, cols=cols, reduction=reduction, weight=w, pos_weight=pw,
        loss_out=np.empty(shape, dtype=kdt) if reduction == "none" else None,
        denominator=denominator, grad_output=go, gout=gout,
        grad=grad_buffer(out, out_is_input, data) if want_grad else None, out=out)


def raise_outside_unit(arr: np.ndarray, flat_pos: int, shape: tuple, what: str):
    """ValueError for a binary_cross_entropy input or target outside [0, 1]."""
    pos = tuple(int(i) for i in np.unravel_index(flat_pos, shape)) if shape else ()
    raise ValueError(
        f"all elements of {what} should be between 0 and 1; found "
        f"{arr.reshape(-1)[flat_pos]!r} at position {pos}")


# ------------------------------------------------ the linear output layer --

class LinearLossProblem:
    """A linear_cross_entropy call, validated for its chunked driver
    (`fastce.linear`)."""

    x: np.ndarray                   # the input as (N, D), C-contiguous, compute dtype
    W: np.ndarray                   # (V, D)
    b: Optional[np.ndarray]         # (V,) or None
    result_dtype: np.dtype          # float16 stays float16
    input_shape: tuple[int, ...]
    batch_shape: tuple[int, ...]
    N: int
    D: int
    V: int
    reduction: str
    index: bool                     # class indices (else probabilities)
    target: np.ndarray              # flat int64 indices, or (N, V) probabilities
    weight: Optional[np.ndarray]    # (V,) class weights in the compute dtype
    ignore: int
    eps: float
    z: float
    softcap: Optional[float]
    chunk_size: Optional[int]       # asked for (None: the driver picks)
    chunk: int                      # token rows per chunk (set by the driver)
    n_work: int                     # tokens that count (the rows, or all N)
    rows: Optional[np.ndarray]      # the non-ignored tokens; None: all of them
    denominator: float              # the mean's, over all tokens
    go: float                       # scalar upstream gradient
    gout: Optional[np.ndarray]      # per-token float64 upstream gradient
    out: Optional[tuple[Any, Any, Any]]


def _float_operand(value, name: str, input_dtype: np.dtype):
    arr, dt = float_input(value, name)
    if dt != input_dtype:
        raise ValueError(f"{name} has dtype {dt} but input has dtype {input_dtype}; "
                         f"input, linear_weight and linear_bias must share one dtype")
    return arr


def chunk_size_value(chunk_size) -> Optional[int]:
    """``chunk_size`` of the linear layer: a positive integer or None."""
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


def _check_linear_out(out, p: "LinearLossProblem", operands: dict) -> Optional[tuple]:
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


def linear_shapes(input_shape: tuple, weight_shape: tuple, bias_shape, target_shape: tuple,
                  target_dtype) -> bool:
    """Check the shapes of a linear_cross_entropy call (its input, linear
    weight, bias or None, and target, with the target's dtype); returns
    whether the targets are class indices (else probabilities)."""
    x_shape, W_shape = tuple(input_shape), tuple(weight_shape)
    if len(x_shape) < 1:
        raise ValueError("input must have at least 1 dimension (the features); got a "
                         "0-d array")
    if len(W_shape) != 2:
        raise ValueError(f"linear_weight must be 2-D (num_classes, in_features), got "
                         f"shape {W_shape}")
    if x_shape[-1] != W_shape[1]:
        raise ValueError(f"input shape {x_shape} and linear_weight shape {W_shape} do "
                         f"not match: the input's last dimension (in_features) must "
                         f"equal linear_weight.shape[1]")
    V = W_shape[0]
    if bias_shape is not None and tuple(bias_shape) != (V,):
        raise ValueError(f"linear_bias shape {tuple(bias_shape)} does not match "
                         f"linear_weight shape {W_shape}: expected ({V},)")
    batch_shape = x_shape[:-1]
    logits_shape = batch_shape + (V,)
    t_shape, t_dtype = tuple(target_shape), np.dtype(target_dtype)
    kind = t_dtype.kind
    if kind in "iu":
        if t_shape != batch_shape:
            raise ValueError(
                f"target shape {t_shape} does not match input shape {x_shape}: "
                f"class-index targets have the input's shape without the feature "
                f"axis, {batch_shape}"
                + (f"; probability targets (shape {logits_shape}) must be floating"
                   if t_shape == logits_shape else ""))
        return True
    if kind == "f":
        if t_shape != logits_shape:
            if t_shape == batch_shape:
                raise TypeError(f"class-index targets must be integers (got "
                                f"{t_dtype}); probability targets have shape "
                                f"{logits_shape}")
            raise ValueError(
                f"probability target shape {t_shape} does not match input shape "
                f"{x_shape} and linear_weight shape {W_shape}: expected the logits' "
                f"shape {logits_shape}")
        return False
    raise TypeError(f"target must hold integer class indices or floating class "
                    f"probabilities, got dtype {t_dtype}")


def prepare_linear_loss(input, linear_weight, target, linear_bias, weight, reduction,
                        ignore_index, label_smoothing, z_loss, chunk_size, *,
                        softcap=None, want_grad: bool, grad_output=None,
                        out=None) -> LinearLossProblem:
    """Validate and normalise the arguments of linear_cross_entropy and its
    ``_and_grad`` variant, class-index targets and ``out=`` included, before
    anything is written; the mean's denominator is over all tokens."""
    p = LinearLossProblem()
    p.reduction = check_reduction(reduction)
    x, result_dtype = float_input(input, "input")
    W = _float_operand(linear_weight, "linear_weight", result_dtype)
    b = None if linear_bias is None else _float_operand(linear_bias, "linear_bias",
                                                         result_dtype)
    t = np.asarray(target)
    p.index = linear_shapes(x.shape, W.shape, None if b is None else b.shape, t.shape,
                            t.dtype)
    V, D = W.shape
    p.result_dtype, p.input_shape = result_dtype, x.shape
    # the GEMMs read W in its C layout (SciPy would copy another one per chunk)
    p.W, p.b = np.ascontiguousarray(W), b
    p.batch_shape = x.shape[:-1]
    p.N, p.D, p.V = math.prod(p.batch_shape), D, V
    if ignore_index is None:
        p.ignore = -100
    else:
        if not p.index:
            raise ValueError("ignore_index cannot be specified when target contains "
                             "probabilities; leave it at None")
        p.ignore = ignore_index_value(ignore_index)
    p.eps = label_smoothing_value(label_smoothing)
    p.z = z_loss_value(z_loss)
    p.softcap = softcap_value(softcap)
    p.chunk_size = chunk_size_value(chunk_size)
    kdt = x.dtype
    p.weight, _ = class_weight(weight, V, kdt)

    p.go, p.gout = 1.0, None
    if want_grad:
        go = grad_output_value(grad_output,
                                 p.batch_shape if p.reduction == "none" else (),
                                 p.reduction)
        if isinstance(go, np.ndarray):
            p.gout = np.ascontiguousarray(go, dtype=np.float64).reshape(-1)
        else:
            p.go = go
    p.out = _check_linear_out(out, p, {"input": input, "linear_weight": linear_weight,
                                       "linear_bias": linear_bias, "target": target,
                                "weight": weight}) if want_grad else None

    p.x = np.ascontiguousarray(x).reshape(p.N, D)
    if p.index:
        tf = t.reshape(-1)
        if tf.dtype.kind == "u" and tf.dtype.itemsize == 8 and tf.size \
                and tf.max() > np.iinfo(np.int64).max:
            pos = int(np.argmax(tf))
            raise_out_of_bounds(int(tf[pos]), pos, p.batch_shape, V, p.ignore)
        tf = tf.astype(np.int64)
        keep = tf != p.ignore
        bad = keep & ((tf < 0) | (tf >= V))
        if bad.any():
            pos = int(np.argmax(bad))
            raise_out_of_bounds(int(tf[pos]), pos, p.batch_shape, V, p.ignore)
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
    p.n_work = p.N if p.rows is None else p.rows.size
    return p
