"""Type stub of the compiled ``fastce._kernels._binary`` (see _binary.pyx):
binary cross-entropy on logits or probabilities over (rows, cols)
C-contiguous arrays."""
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import NDArray

# (array of x's dtype, row stride, column step 0 or 1), in elements
_Operand = tuple[NDArray[np.floating[Any]], int, int]

# returns the float64 sum of the losses, or for "check_probs" the flat index
# of the first element of x outside [0, 1] (-1: none)
@overload
def binary(
    kind: Literal["logits", "probs"],
    x: NDArray[np.floating[Any]],
    y: NDArray[np.floating[Any]],
    rows: int,
    cols: int,
    *,
    weight: _Operand | None = None,
    pos_weight: _Operand | None = None,
    gout: _Operand | None = None,
    gscale: float = 1.0,
    loss_out: NDArray[np.floating[Any]] | None = None,
    grad: NDArray[np.floating[Any]] | None = None,
    n_threads: int = 1,
) -> float: ...
@overload
def binary(
    kind: Literal["check_probs"],
    x: NDArray[np.floating[Any]],
    y: NDArray[np.floating[Any]],
    rows: int,
    cols: int,
    *,
    n_threads: int = 1,
) -> int: ...
