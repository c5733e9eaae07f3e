"""pytest-benchmark suite for the boosting objectives: one group per shape,
timing fastce's `softmax_grad_hess` / `logistic_grad_hess` against the NumPy
formula a custom objective is usually written with.

    pytest benchmarks/test_boosting_benchmarks.py --benchmark-only
    pytest benchmarks/test_boosting_benchmarks.py --benchmark-only --fastce-threads 2

For interleaved medians with ratios, and XGBoost training with fastce's
objective against its built-in one, use ``python benchmarks/boosting_compare.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

import boosting_compare as bc
from fastce.boosting import logistic_grad_hess, softmax_grad_hess

SHAPES = [("softmax", n, c) for kind, n, c in bc.OBJECTIVE_WORKLOADS if kind == "softmax"]
SHAPES += [("logistic", n, c) for kind, n, c in bc.OBJECTIVE_WORKLOADS if kind == "logistic"]


@pytest.fixture(scope="module", params=SHAPES, ids=[f"{k}-{n}x{c}" for k, n, c in SHAPES])
def problem(request):
    kind, n, c = request.param
    rng = np.random.default_rng(0)
    if kind == "softmax":
        return kind, rng.normal(size=(n, c)).astype(np.float32), rng.integers(0, c, n)
    return kind, rng.normal(size=n).astype(np.float32), rng.integers(0, 2, n).astype(
        np.float32)


def _group(benchmark, kind, raw, threads):
    benchmark.group = f"{kind} {raw.shape} | {threads} thread{'s' if threads > 1 else ''}"


def test_fastce(benchmark, problem, fastce_threads):
    kind, raw, y = problem
    _group(benchmark, kind, raw, fastce_threads)
    fn = softmax_grad_hess if kind == "softmax" else logistic_grad_hess
    g, h = benchmark(fn, raw, y, n_threads=fastce_threads)
    assert g.shape == raw.shape and np.isfinite(h).all()


def test_numpy_formula(benchmark, problem, fastce_threads):
    kind, raw, y = problem
    _group(benchmark, kind, raw, fastce_threads)
    fn = bc.numpy_softmax_grad_hess if kind == "softmax" else bc.numpy_logistic_grad_hess
    g, _ = benchmark(fn, raw, y)
    assert g.shape == raw.shape
