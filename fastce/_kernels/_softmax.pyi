"""Type stub of the compiled ``fastce._kernels._softmax`` (see _softmax.pyx):
log-softmax, softmax and logsumexp over an (outer, C, inner) C-contiguous
array."""
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

def softmax_family(
    x: NDArray[np.floating[Any]],
    out: NDArray[np.floating[Any]],
    what: Literal["logsumexp", "log_softmax", "softmax"],
    outer: int,
    n_cls: int,
    inner: int,
    n_threads: int = 1,
) -> None: ...
