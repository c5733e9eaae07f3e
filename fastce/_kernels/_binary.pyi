"""Type stub of the compiled ``fastce._kernels._binary`` (see _binary.pyx):
binary cross-entropy on logits or probabilities over (rows, cols)
C-contiguous arrays."""
from typing import Any

import numpy as np
from numpy.typing import NDArray

_Floats = NDArray[np.floating[Any]]
# (array of x's dtype, row stride, column step 0 or 1), in elements
_Operand = tuple[_Floats, int, int]

# each returns the float64 sum of the losses
def bce_logits(
    x: _Floats, y: _Floats, rows: int, cols: int, *, weight: _Operand | None = None,
    pos_weight: _Operand | None = None, gout: _Operand | None = None,
    gscale: float = 1.0, loss_out: _Floats | None = None, grad: _Floats | None = None,
    n_threads: int = 1,
) -> float: ...
def bce_probs(
    x: _Floats, y: _Floats, rows: int, cols: int, *, weight: _Operand | None = None,
    gout: _Operand | None = None, gscale: float = 1.0, loss_out: _Floats | None = None,
    grad: _Floats | None = None, n_threads: int = 1,
) -> float: ...
def sigmoid_focal(
    x: _Floats, y: _Floats, rows: int, cols: int, *, alpha: float, gamma: float,
    weight: _Operand | None = None, gout: _Operand | None = None, gscale: float = 1.0,
    loss_out: _Floats | None = None, grad: _Floats | None = None, n_threads: int = 1,
) -> float: ...
# the flat index of the first element of x outside [0, 1] (-1: none)
def grad_hess(
    x: _Floats, y: _Floats, rows: int, cols: int, *, grad: _Floats, hess: _Floats,
    hess_scale: float, hess_floor: float, weight: _Operand | None = None,
    pos_weight: _Operand | None = None, focal: tuple[float, float] | None = None,
    n_threads: int = 1,
) -> None: ...
def first_outside_unit(x: _Floats, rows: int, cols: int, *, n_threads: int = 1) -> int: ...
