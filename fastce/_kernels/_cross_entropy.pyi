"""Type stub of the compiled ``fastce._kernels._cross_entropy`` (see
_cross_entropy.pyx): softmax cross-entropy / NLL over an (outer, C, inner)
C-contiguous float32 or float64 array."""
from typing import Any

import numpy as np
from numpy.typing import NDArray

_Floats = NDArray[np.floating[Any]]
_Indices = NDArray[np.int32] | NDArray[np.int64]

# (sum of losses, sum of target weights, first invalid flat position or -1)
def cross_entropy_index(
    x: _Floats, target: _Indices, weight: _Floats | None, weight_total: float,
    ignore_index: int, label_smoothing: float, outer: int, n_cls: int, inner: int, *,
    z_loss: float = 0.0, focal_gamma: float | None = None,
    focal_alpha: _Floats | None = None, loss_out: _Floats | None = None,
    grad: _Floats | None = None, hess: _Floats | None = None, hess_scale: float = 1.0,
    hess_floor: float = ..., gout: NDArray[np.float64] | None = None,
    gscale: float = 1.0, n_threads: int = 1,
) -> tuple[float, float, int]: ...
def nll(
    x: _Floats, target: _Indices, weight: _Floats | None, ignore_index: int, outer: int,
    n_cls: int, inner: int, *, loss_out: _Floats | None = None,
    grad: _Floats | None = None, gout: NDArray[np.float64] | None = None,
    gscale: float = 1.0, n_threads: int = 1,
) -> tuple[float, float, int]: ...
# (sum of target weights, first invalid flat position or -1)
def check_index_targets(
    x: _Floats, target: _Indices, weight: _Floats | None, ignore_index: int, outer: int,
    n_cls: int, inner: int, *, n_threads: int = 1,
) -> tuple[float, int]: ...
def cross_entropy_prob(
    x: _Floats, y: _Floats, weight: _Floats | None, weight_total: float,
    label_smoothing: float, outer: int, n_cls: int, inner: int, *, z_loss: float = 0.0,
    loss_out: _Floats | None = None, grad: _Floats | None = None,
    gout: NDArray[np.float64] | None = None, gscale: float = 1.0, n_threads: int = 1,
) -> float: ...
# test hook: stream outputs of at least n bytes; returns the previous threshold
def _set_stream_min_bytes(n: int) -> int: ...
