"""Per-thread scratch buffers reused from call to call.

Memory mapped afresh is not free (page faults; on the benchmark VMs a freed
128 MiB buffer took 260-315 ms to fault in again after two idle seconds), so
the places that would allocate the same large scratch on every call keep it
instead: the Dask path's realigned copies of misaligned blocks, and the
linear layer's chunk buffers when the caller passes ``out=``.
"""
from __future__ import annotations

import math
import threading

import numpy as np


class ThreadBuffers:
    """One grow-only byte buffer per thread and role, handed out as arrays.

    An array from `array` is only valid until the same thread asks for the
    same role again; callers never return it (or a view of it) to the user.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def array(self, role: str, shape, dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``
        over this thread's buffer for ``role``, replaced when too small."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        buffers = self.buffers
        buf = buffers.get(role)
        if buf is None or buf.nbytes < nbytes:
            buf = None
            buffers.pop(role, None)        # free the old buffer before its successor
            buf = buffers[role] = np.empty(max(nbytes, 1), dtype=np.uint8)
        return buf[:nbytes].view(dtype).reshape(shape)

    @property
    def buffers(self) -> dict:
        """This thread's buffers, by role (for inspection)."""
        return self._local.__dict__

    def clear(self) -> None:
        """Free this thread's buffers."""
        self.buffers.clear()
