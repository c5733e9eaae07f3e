"""Type stub of the compiled ``fastce._kernels._softmax`` (see _softmax.pyx):
log-softmax, softmax and logsumexp over an (outer, C, inner) C-contiguous
array."""
from typing import Any

import numpy as np
from numpy.typing import NDArray

_Floats = NDArray[np.floating[Any]]

def logsumexp(x: _Floats, out: _Floats, outer: int, n_cls: int, inner: int,
              n_threads: int = 1) -> None: ...
def log_softmax(x: _Floats, out: _Floats, outer: int, n_cls: int, inner: int,
                n_threads: int = 1) -> None: ...
def softmax(x: _Floats, out: _Floats, outer: int, n_cls: int, inner: int,
            n_threads: int = 1) -> None: ...
