"""pytest-benchmark suite for the linear + cross-entropy output layer: the
L1-L3 workloads of `linear_workloads`, one group per workload, timing
fastce's `linear_cross_entropy_and_grad` (allocating its gradients, and with
``out=``), the three-GEMM floor, and torch's
reference and chunked paths (skipped without torch).

    pytest benchmarks/test_linear_benchmarks.py --benchmark-only
    pytest benchmarks/test_linear_benchmarks.py --benchmark-only --fastce-threads 2 \\
        --fastce-linear L1

Each call takes seconds on L2 and L3, so rounds are few; for medians with
ratios and peak memory in one run, use ``python benchmarks/linear_compare.py``.
"""
from __future__ import annotations

import math

import pytest

import linear_workloads as lw

ROUNDS = dict(rounds=3, iterations=1, warmup_rounds=1)


def pytest_generate_tests(metafunc):
    if "linear_workload" in metafunc.fixturenames:
        option = metafunc.config.getoption("--fastce-linear", default=None)
        names = [n.strip().upper() for n in option.split(",")] if option else list(lw.WORKLOADS)
        metafunc.parametrize("linear_workload", names, indirect=True, ids=names,
                             scope="module")


@pytest.fixture(scope="module")
def linear_workload(request):
    w = lw.get_workloads([request.param])[0]
    return w, w.arrays()


def _bench(benchmark, w, threads, fn):
    benchmark.group = f"{w.label} | {threads} thread{'s' if threads > 1 else ''}"
    benchmark.extra_info.update(N=w.N, D=w.D, V=w.V, threads=threads)
    return benchmark.pedantic(fn, **ROUNDS)


def test_fastce(benchmark, linear_workload, fastce_threads):
    w, (x, W, t) = linear_workload
    loss, gi, gw, _ = _bench(benchmark, w, fastce_threads,
                             lw.fastce_call(x, W, t, fastce_threads))
    assert math.isfinite(float(loss)) and gi.shape == x.shape and gw.shape == W.shape


def test_fastce_out(benchmark, linear_workload, fastce_threads):
    w, (x, W, t) = linear_workload
    loss, gi, gw, _ = _bench(benchmark, w, fastce_threads,
                             lw.fastce_out_call(x, W, t, fastce_threads))
    assert math.isfinite(float(loss)) and gi.shape == x.shape and gw.shape == W.shape


def test_floor_three_gemms(benchmark, linear_workload, fastce_threads):
    w, (x, W, t) = linear_workload
    _bench(benchmark, w, fastce_threads, lw.floor_call(x, W, t, fastce_threads))


def test_torch_reference(benchmark, linear_workload, fastce_threads, torch):
    w, (x, W, t) = linear_workload
    loss = _bench(benchmark, w, fastce_threads, lw.torch_call(torch, x, W, t))
    assert math.isfinite(float(loss))


def test_torch_chunked(benchmark, linear_workload, fastce_threads, torch):
    w, (x, W, t) = linear_workload
    chunk, _ = lw.best_torch_chunk(torch, x, W, t)
    benchmark.extra_info["batch_chunk_size"] = chunk
    loss = _bench(benchmark, w, fastce_threads, lw.torch_call(torch, x, W, t, chunk=chunk))
    assert math.isfinite(float(loss))
