"""Validation and normalisation of user input: the one place that turns
array-likes into what the kernels take (C-contiguous float32/float64 data,
int32/int64 targets, an (outer, C, inner) view of the class axis) and that
explains bad input.  Nothing here writes to a user's array.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

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


def legacy_reduction(size_average, reduce, reduction: str) -> str:
    """Map the deprecated ``size_average`` / ``reduce`` pair onto ``reduction``
    exactly as PyTorch's ``_Reduction.legacy_get_string`` does."""
    if size_average is None and reduce is None:
        return check_reduction(reduction)
    warnings.warn(
        "size_average and reduce args will be deprecated, please use "
        "reduction='none' / 'mean' / 'sum' instead.",
        DeprecationWarning,
        stacklevel=4,
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


def label_smoothing_value(label_smoothing) -> float:
    try:
        eps = float(label_smoothing)
    except (TypeError, ValueError):
        raise ValueError(f"label_smoothing must be a float in [0, 1], got "
                         f"{label_smoothing!r}") from None
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {eps}")
    return eps


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
            _raise_out_of_bounds(int(target.reshape(-1)[pos]), pos, target.shape,
                                 layout.n_cls, None)
    else:
        t = np.ascontiguousarray(target, dtype=np.int32)
    return t.reshape(-1)


def target_kind(target: np.ndarray, input_shape: tuple, *, nll: bool) -> str:
    """'index' or 'prob'; TypeError for dtypes no target can have."""
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
        return "prob"
    if kind == "f":
        raise TypeError(f"nll_loss expects integer class-index targets, got dtype "
                        f"{target.dtype}")
    raise TypeError(
        f"target must hold integer class indices"
        + ("" if nll else " or floating class probabilities")
        + f", got dtype {target.dtype}")


def _raise_out_of_bounds(value, flat_pos, shape, n_cls, ignore_index):
    pos = np.unravel_index(flat_pos, shape) if shape else ()
    pos = tuple(int(i) for i in pos)
    where = f"at position {pos}" if shape else "(the only target)"
    extra = "" if ignore_index is None else f", or ignore_index={ignore_index}"
    raise IndexError(
        f"Target {value} is out of bounds. The target {where} must be a class "
        f"index in [0, {n_cls}){extra}.")


def raise_bad_target(target_flat: np.ndarray, flat_pos: int, layout: ClassLayout,
                     ignore_index: int):
    _raise_out_of_bounds(int(target_flat[flat_pos]), flat_pos, layout.batch_shape,
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
    dtype, and either the input itself or not overlapping it."""
    if out is None:
        return None
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
    if isinstance(original_input, np.ndarray) and out is not original_input and \
            np.shares_memory(out, original_input):
        same = (out.__array_interface__["data"][0]
                == original_input.__array_interface__["data"][0]
                and out.strides == original_input.strides)
        if not same:
            raise ValueError("out overlaps the input without being the input itself")
    return out


def check_out_disjoint(out, **operands) -> None:
    """Refuse an ``out=`` that shares memory with a weight or target: the
    kernels read those after they start writing the gradient."""
    if out is None:
        return
    for name, value in operands.items():
        if isinstance(value, np.ndarray) and np.may_share_memory(out, value):
            raise ValueError(f"out shares memory with {name}; pass a separate array")
