"""pytest-benchmark suite: the standard workloads of ``python -m fastce``,
one benchmark group per workload, each timing

- fastce forward (the loss only),
- fastce loss + gradient (into a preallocated ``out=``: the kernel, not the
  allocator),
- the NumPy reference forward (`fastce._bench.numpy_cross_entropy` /
  `fastce._bench.numpy_binary_cross_entropy_with_logits`),
- PyTorch forward (``torch.no_grad()``) and forward + backward, skipped where
  PyTorch is not installed.

Run with ``pytest benchmarks/ --benchmark-only`` (options in conftest.py).
For a single side-by-side table with ratios and the machine floor, use
``python benchmarks/compare.py`` instead.
"""
from __future__ import annotations

import math

import numpy as np


def _bench(benchmark, workload, threads, fn):
    """Group by workload, warm up once (first-call set-up, page faults), then
    let pytest-benchmark time ``fn`` under its own round settings."""
    benchmark.group = f"{workload.label} | {threads} thread{'s' if threads > 1 else ''}"
    benchmark.extra_info.update(shape=list(workload.shape), dtype=workload.dtype,
                                threads=threads, input_mb=workload.input_bytes / 1e6)
    fn()
    return benchmark(fn)


def _finite(value):
    return math.isfinite(float(value))


def test_fastce_forward(benchmark, workload, fastce_threads):
    data = workload.arrays()
    loss_fn = workload.fastce_forward()
    kwargs = workload.fastce_kwargs()
    x, target = data["x"], data["target"]
    loss = _bench(benchmark, workload, fastce_threads,
                  lambda: loss_fn(x, target, n_threads=fastce_threads, **kwargs))
    assert _finite(loss)


def test_fastce_loss_and_grad(benchmark, workload, fastce_threads):
    data = workload.arrays()
    loss_and_grad = workload.fastce_loss_and_grad()
    kwargs = workload.fastce_kwargs()
    x, target = data["x"], data["target"]
    grad = np.empty_like(x)
    loss, _ = _bench(benchmark, workload, fastce_threads,
                     lambda: loss_and_grad(x, target, out=grad, n_threads=fastce_threads,
                                           **kwargs))
    assert _finite(loss)


def test_numpy_reference(benchmark, workload, fastce_threads):
    data = workload.arrays()
    reference = workload.numpy_forward()
    kwargs = workload.fastce_kwargs()
    x, target = data["x"], data["target"]
    loss = _bench(benchmark, workload, fastce_threads,
                  lambda: reference(x, target, **kwargs))
    assert _finite(loss)


def test_torch_forward(benchmark, workload, fastce_threads, torch):
    loss_fn = workload.torch_loss(torch)
    x = torch.from_numpy(workload.arrays()["x"])

    def forward():
        with torch.no_grad():
            return loss_fn(x)

    loss = _bench(benchmark, workload, fastce_threads, forward)
    assert _finite(loss)


def test_torch_forward_backward(benchmark, workload, fastce_threads, torch):
    loss_fn = workload.torch_loss(torch)
    x = torch.from_numpy(workload.arrays()["x"]).requires_grad_(True)

    def forward_backward():
        x.grad = None  # optimizer.zero_grad()'s default (set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        return loss.detach()

    loss = _bench(benchmark, workload, fastce_threads, forward_backward)
    assert _finite(loss)
