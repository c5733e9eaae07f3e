"""The linear + cross-entropy workloads and the implementations timed on them,
shared by ``linear_compare.py`` (one interleaved run with ratios and peak
memory) and ``test_linear_benchmarks.py`` (pytest-benchmark).

Workloads (float32, class-index targets, no bias, as an LM head):

- L1: N=8192 tokens, D=128, V=1000 (a classifier head);
- L2: N=2048, D=512, V=32768;
- L3: N=1024, D=256, V=131072 (a large vocabulary).

Implementations, each computing the mean loss and the gradients with respect
to the input and the weight:

- ``fastce``: `fastce.linear_cross_entropy_and_grad` with its default chunk;
- ``fastce_out``: the same with ``out=`` buffers, as a training loop calls
  it: nothing of the logits' size is allocated after the first call, like
  the floor, whose outputs are preallocated;
- ``torch_ref``: ``torch.nn.functional.linear_cross_entropy`` (reference
  path: the full logits) forward + backward;
- ``torch_chunked``: the same with ``options=LinearCrossEntropyOptions(...)``
  (torch's chunked path), at the ``batch_chunk_size`` that `best_torch_chunk`
  found fastest;
- ``floor``: three NumPy matmuls of the same shapes into preallocated
  outputs, ``logits = h @ W.T``, ``h_grad = logits @ W``,
  ``W_grad = logits.T @ h``: the GEMMs every implementation must do.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np

import fastce

WORKLOADS = {"L1": (8192, 128, 1000), "L2": (2048, 512, 32768), "L3": (1024, 256, 131072)}
#: torch batch_chunk_size candidates scanned by `best_torch_chunk`
TORCH_CHUNKS = (128, 256, 512, 1024, 2048)


@dataclass
class LinearWorkload:
    name: str
    N: int
    D: int
    V: int

    @property
    def label(self) -> str:
        return f"{self.name} ({self.N}, {self.D}) -> {self.V}"

    def arrays(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.N, self.D), dtype=np.float32)
        W = rng.standard_normal((self.V, self.D), dtype=np.float32)
        W *= np.float32(1.0 / np.sqrt(self.D))
        t = rng.integers(0, self.V, self.N)
        return x, W, t


def get_workloads(names=None) -> list[LinearWorkload]:
    names = list(WORKLOADS) if names is None else [n.strip().upper() for n in names]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    return [LinearWorkload(n, *WORKLOADS[n]) for n in names]


def blas_limit(n_threads: int):
    """NumPy's / SciPy's BLAS at ``n_threads`` (threadpoolctl), for the floor."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n_threads, "blas")


def fastce_call(x, W, t, n_threads: int, chunk_size=None):
    def run():
        return fastce.linear_cross_entropy_and_grad(x, W, t, n_threads=n_threads,
                                                    chunk_size=chunk_size)
    return run


def fastce_out_call(x, W, t, n_threads: int, chunk_size=None):
    """fastce as a training loop calls it: the gradients into preallocated
    buffers (``out=``), so the chunk buffers are kept from call to call."""
    outs = (np.empty_like(x), np.empty_like(W), None)
    for buf in outs[:2]:
        buf.fill(0)       # resident, as a training loop's buffers are after its first step

    def run():
        return fastce.linear_cross_entropy_and_grad(x, W, t, n_threads=n_threads,
                                                    chunk_size=chunk_size, out=outs)
    return run


def floor_call(x, W, t, n_threads: int):
    logits = np.empty((x.shape[0], W.shape[0]), dtype=x.dtype)
    gi, gw = np.empty_like(x), np.empty_like(W)

    def run():
        with blas_limit(n_threads):
            np.matmul(x, W.T, out=logits)
            np.matmul(logits, W, out=gi)
            np.matmul(logits.T, x, out=gw)
        return gi, gw
    return run


def torch_call(torch, x, W, t, *, chunk=None):
    """Forward + backward through ``F.linear_cross_entropy``: the reference
    path (``chunk=None``) or the chunked one at ``batch_chunk_size=chunk``."""
    X = torch.from_numpy(x).requires_grad_(True)
    Wt = torch.from_numpy(W).requires_grad_(True)
    T = torch.from_numpy(t)
    opts = (None if chunk is None else
            torch.nn.LinearCrossEntropyOptions(chunking_method=None,
                                               batch_chunk_size=int(chunk)))

    def run():
        X.grad = None
        Wt.grad = None
        loss = torch.nn.functional.linear_cross_entropy(X, Wt, T, options=opts)
        loss.backward()
        return loss.detach()
    return run


def best_torch_chunk(torch, x, W, t, candidates=TORCH_CHUNKS):
    """The fastest ``batch_chunk_size`` of torch's chunked path among
    ``candidates`` (one call each after a warm-up), and the times seen."""
    seen = {}
    for c in candidates:
        if c > x.shape[0]:
            continue
        run = torch_call(torch, x, W, t, chunk=c)
        run()
        t0 = time.perf_counter()
        run()
        seen[c] = time.perf_counter() - t0
    return min(seen, key=seen.get), seen


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch
