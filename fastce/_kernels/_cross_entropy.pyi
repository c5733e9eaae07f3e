"""Type stub of the compiled ``fastce._kernels._cross_entropy`` (see
_cross_entropy.pyx): softmax cross-entropy / NLL over an (outer, C, inner)
C-contiguous float32 or float64 array."""
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

def index_targets(
    x: NDArray[np.floating[Any]],
    target: NDArray[np.int32] | NDArray[np.int64],
    weight: NDArray[np.floating[Any]] | None,
    weight_total: float,
    ignore_index: int,
    label_smoothing: float,
    outer: int,
    n_cls: int,
    inner: int,
    *,
    loss_out: NDArray[np.floating[Any]] | None = None,
    grad: NDArray[np.floating[Any]] | None = None,
    gout: NDArray[np.float64] | None = None,
    gscale: float = 1.0,
    n_threads: int = 1,
    mode: Literal["cross_entropy", "nll", "check"] = "cross_entropy",
) -> tuple[float, float, int]: ...
def prob_targets(
    x: NDArray[np.floating[Any]],
    y: NDArray[np.floating[Any]],
    weight: NDArray[np.floating[Any]] | None,
    weight_total: float,
    label_smoothing: float,
    outer: int,
    n_cls: int,
    inner: int,
    *,
    loss_out: NDArray[np.floating[Any]] | None = None,
    grad: NDArray[np.floating[Any]] | None = None,
    gout: NDArray[np.float64] | None = None,
    gscale: float = 1.0,
    n_threads: int = 1,
) -> float: ...
def n_units(outer: int, n_cls: int, inner: int) -> int: ...
