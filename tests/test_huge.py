"""More than 2^31 elements (SPEC §3.8: 64-bit indexing throughout).

Slow and memory-hungry (one 8.6 GB float32 array; the machine needs about
10 GB free), so it runs only on demand:

    FASTCE_RUN_SLOW=1 pytest tests/test_huge.py -m slow

(``-m slow`` alone is not enough: without FASTCE_RUN_SLOW=1 the tests skip,
so a plain ``pytest`` never allocates 8.6 GB.)

The input is (2^21 + 3, 1024) float32 = 2^31 + 3072 elements.  Row i has
logit v_i = i % 4 at its target t_i = (7 i) % 1024 and 0 elsewhere, so

    loss_i = log(1 + (C - 1) e^{-v_i}),   softmax_i = e^{x}/(e^{v_i} + C - 1),

in closed form, and a row read through a wrapped 32-bit offset (a different
row's target, or out of bounds) gives a different number.  The rows past
element 2^31 are checked one by one.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

import fastce

N = 2**21 + 3
C = 1024
NEEDED_BYTES = N * C * 4 + (1 << 30)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("FASTCE_RUN_SLOW") != "1",
                       reason="huge-array test: set FASTCE_RUN_SLOW=1 to run it"),
]


def _available_memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _row_values(rows):
    return (rows % 4).astype(np.float64)


def _targets():
    return (7 * np.arange(N, dtype=np.int64)) % C


def _row_loss(v):
    return np.log1p((C - 1) * np.exp(-v))


@pytest.fixture(scope="module")
def huge():
    if _available_memory() < NEEDED_BYTES:
        pytest.skip(f"needs about {NEEDED_BYTES / 2**30:.1f} GiB of free memory")
    t0 = time.perf_counter()
    x = np.zeros((N, C), dtype=np.float32)
    t = _targets()
    rows = np.arange(N)
    x[rows, t] = _row_values(rows)
    assert x.size > 2**31
    print(f"\nbuilt the {x.nbytes / 1e9:.2f} GB input in {time.perf_counter() - t0:.1f} s")
    yield x, t
    del x


def _timed(what, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{what}: {time.perf_counter() - t0:.2f} s")
    return out


def test_cross_entropy_over_more_than_2_31_elements_has_the_closed_form_loss(huge):
    x, t = huge
    rows = np.arange(N)
    expected_rows = _row_loss(_row_values(rows))
    per_row = _timed("cross_entropy none", lambda: fastce.cross_entropy(
        x, t, reduction="none"))
    assert per_row.shape == (N,) and per_row.dtype == np.float32
    np.testing.assert_allclose(per_row, expected_rows, rtol=1e-5)
    # the rows whose elements lie past 2^31 (and the ones around it)
    tail = slice(2**31 // C - 2, N)
    np.testing.assert_allclose(per_row[tail], expected_rows[tail], rtol=1e-5)
    mean = _timed("cross_entropy mean", lambda: fastce.cross_entropy(x, t))
    assert math.isclose(float(mean), expected_rows.mean(), rel_tol=1e-6)
    smoothed = _timed("cross_entropy label_smoothing", lambda: fastce.cross_entropy(
        x, t, label_smoothing=0.1, reduction="sum"))
    # smoothing term: -(1/C) sum_c log p_c = lse - v/C
    lse = np.log(np.exp(_row_values(rows)) + C - 1)
    expected_smoothed = np.sum(0.9 * expected_rows + 0.1 * (lse - _row_values(rows) / C))
    assert math.isclose(float(smoothed), expected_smoothed, rel_tol=1e-6)


def test_nll_logsumexp_and_bce_over_more_than_2_31_elements(huge):
    x, t = huge
    rows = np.arange(N)
    v = _row_values(rows)
    nll = _timed("nll_loss none", lambda: fastce.nll_loss(x, t, reduction="none"))
    np.testing.assert_array_equal(nll, -v.astype(np.float32))
    lse = _timed("logsumexp", lambda: fastce.logsumexp(x))
    np.testing.assert_allclose(lse, np.log(np.exp(v) + C - 1), rtol=1e-6)
    # target = the input itself (no second 8.6 GB array): elementwise
    # l = (1 - x) softplus(x) + x softplus(-x), summed over every element
    bce = _timed("bce_with_logits sum", lambda: fastce.binary_cross_entropy_with_logits(
        x, x, reduction="sum"))
    counts = np.bincount((rows % 4), minlength=4).astype(np.float64)
    per_value = np.array([(1 - a) * np.logaddexp(0, a) + a * np.logaddexp(0, -a)
                          for a in range(4)])
    zeros = N * (C - 1)
    expected = zeros * math.log(2) + float(np.sum(counts * per_value))
    assert math.isclose(float(bce), expected, rel_tol=1e-6)


def test_gradient_over_more_than_2_31_elements_written_over_the_input(huge):
    """Last: out=input turns the logits into their gradient."""
    x, t = huge
    rows = np.arange(N)
    v = _row_values(rows)
    expected_loss = _row_loss(v).sum()
    loss, grad = _timed("cross_entropy_and_grad sum, out=input",
                        lambda: fastce.cross_entropy_and_grad(x, t, reduction="sum", out=x))
    assert grad is x
    assert math.isclose(float(loss), expected_loss, rel_tol=1e-6)
    # softmax - onehot, checked on a sample of rows plus every row past 2^31
    check = np.unique(np.concatenate([
        np.arange(8), np.arange(2**31 // C - 8, N),
        np.random.default_rng(0).integers(0, N, size=4096)]))
    vv = v[check]
    den = np.exp(vv) + C - 1
    expected = np.broadcast_to((1 / den)[:, None], (len(check), C)).copy()
    expected[np.arange(len(check)), t[check]] = np.exp(vv) / den - 1
    np.testing.assert_allclose(grad[check], expected, rtol=1e-5, atol=1e-6)
    # every row of a softmax-minus-onehot gradient sums to 0
    sums = _timed("row sums", lambda: np.add.reduce(grad, axis=1, dtype=np.float64))
    np.testing.assert_allclose(sums, 0.0, atol=1e-5)
