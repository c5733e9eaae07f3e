"""Precision (SPEC §3.8): reductions accumulate in float64, so a float32
``sum`` over 10^8 elements stays within 1e-6 relative of the float64 result;
float16 inputs with logits up to +-60000 give finite results within 1e-3 of
float64.

The 10^8-element inputs repeat a random block (np.tile), so the float64
reference is exact and cheap: the block's float64 losses times the number of
repeats.  A float32 accumulator would be off by far more than 1e-6 at this
size.  These run in a few seconds (the inputs are 400 MB each), so they
are part of the default run."""
from __future__ import annotations

import numpy as np
import pytest

import fastce

N_BIG = 10**8
BLOCK = 1000
REPEATS = N_BIG // BLOCK


def _bce_logits_f64(x, y):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    return (1 - y) * np.logaddexp(0.0, x) + y * np.logaddexp(0.0, -x)


def _ce_f64(x, t, w=None, eps=0.0):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    logp = x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    C = x.shape[1]
    w = np.ones(C) if w is None else w.astype(np.float64)
    main = -w[t] * logp[np.arange(len(t)), t]
    smooth = -(w * logp).sum(axis=1)
    return (1 - eps) * main + eps / C * smooth, w[t]


def test_float32_sum_over_1e8_elements_is_within_1e_6_of_float64():
    rng = np.random.default_rng(0)
    x0 = (rng.normal(size=BLOCK) * 4).astype(np.float32)
    y0 = rng.random(size=BLOCK).astype(np.float32)
    x = np.tile(x0, REPEATS)
    y = np.tile(y0, REPEATS)
    assert x.size == N_BIG
    expected = REPEATS * np.sum(_bce_logits_f64(x0, y0))
    for n_threads in (1, 2):
        got = fastce.binary_cross_entropy_with_logits(x, y, reduction="sum",
                                                      n_threads=n_threads)
        assert got.dtype == np.float32
        assert abs(float(got) - expected) <= 1e-6 * abs(expected), (float(got), expected)
    got = fastce.binary_cross_entropy_with_logits(x, y, reduction="mean")
    assert abs(float(got) - expected / N_BIG) <= 1e-6 * abs(expected / N_BIG)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_float32_cross_entropy_sum_over_1e8_elements_is_within_1e_6_of_float64(smoothing):
    C = 10
    rows = BLOCK
    rng = np.random.default_rng(1)
    x0 = (rng.normal(size=(rows, C)) * 3).astype(np.float32)
    t0 = rng.integers(0, C, size=rows)
    w = rng.uniform(0.5, 2.0, size=C).astype(np.float32)
    reps = N_BIG // (rows * C)
    x = np.tile(x0, (reps, 1))
    t = np.tile(t0, reps)
    assert x.size == N_BIG
    l0, wt0 = _ce_f64(x0, t0, w, smoothing)
    expected_sum = reps * np.sum(l0)
    got = fastce.cross_entropy(x, t, weight=w, reduction="sum", label_smoothing=smoothing)
    assert got.dtype == np.float32
    assert abs(float(got) - expected_sum) <= 1e-6 * abs(expected_sum)
    expected_mean = expected_sum / (reps * np.sum(wt0))
    got = fastce.cross_entropy(x, t, weight=w, label_smoothing=smoothing)
    assert abs(float(got) - expected_mean) <= 1e-6 * abs(expected_mean)


# ------------------------------------------------------------- float16 --

def _f16_rows(rng, n, C):
    """float16 logits up to +-60000: rows in [-60000, 0], [0, 60000] and
    [-30000, 30000] (a row's span stays <= 60000, so every loss, log-prob and
    log-sum-exp is finite in float16), with the exact extremes present."""
    lo = np.resize(np.array([-60000.0, 0.0, -30000.0]), n)[:, None]   # by row % 3
    x = lo + rng.random(size=(n, C)) * 60000.0
    x[0::3, 0] = -60000.0
    x[1::3, 1] = 60000.0
    x[2::3, 2] = 30000.0
    return x.astype(np.float16)


def _rel_close(got, expected, what):
    got = np.asarray(got)
    assert got.dtype == np.float16, what
    g = got.astype(np.float64)
    assert np.all(np.isfinite(g)), f"{what}: non-finite float16 results"
    np.testing.assert_allclose(g, expected, rtol=1e-3, atol=1e-3, err_msg=what)


def test_float16_logits_up_to_60000_give_finite_results_within_1e_3():
    rng = np.random.default_rng(2)
    n, C = 300, 7
    x = _f16_rows(rng, n, C)
    assert np.abs(x.astype(np.float64)).max() == 60000.0
    x64 = x.astype(np.float64)
    m = x64.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(x64 - m).sum(axis=1))
    logp = x64 - lse[:, None]
    # targets: anywhere, so losses range from ~0 to ~60000
    t = rng.integers(0, C, size=n)
    loss_rows = -logp[np.arange(n), t]
    _rel_close(fastce.cross_entropy(x, t, reduction="none"), loss_rows, "cross_entropy none")
    _rel_close(fastce.cross_entropy(x, t), loss_rows.mean(), "cross_entropy mean")
    loss, grad = fastce.cross_entropy_and_grad(x, t, reduction="none")
    _rel_close(loss, loss_rows, "cross_entropy_and_grad loss")
    _rel_close(grad, np.exp(logp) - np.eye(C)[t], "cross_entropy grad")
    _rel_close(fastce.nll_loss(x, t, reduction="none"), -x64[np.arange(n), t], "nll_loss")
    _rel_close(fastce.log_softmax(x), logp, "log_softmax")
    _rel_close(fastce.softmax(x), np.exp(logp), "softmax")
    _rel_close(fastce.logsumexp(x), lse, "logsumexp")
    # label smoothing: the smoothing term averages log-probs down to -60000
    eps = 0.1
    smooth = (1 - eps) * loss_rows + eps / C * (-logp.sum(axis=1))
    _rel_close(fastce.cross_entropy(x, t, reduction="none", label_smoothing=eps), smooth,
               "cross_entropy smoothed")


def test_float16_bce_with_logits_up_to_60000_is_finite_and_within_1e_3():
    rng = np.random.default_rng(3)
    x = np.concatenate([np.array([-60000.0, 60000.0, -59999.0, 0.0]),
                        rng.uniform(-60000, 60000, size=996)]).astype(np.float16)
    y = rng.random(size=x.shape).astype(np.float16)
    y[:4] = [1.0, 0.0, 0.5, 0.25]
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    expected = (1 - y64) * np.logaddexp(0, x64) + y64 * np.logaddexp(0, -x64)
    _rel_close(fastce.binary_cross_entropy_with_logits(x, y, reduction="none"), expected,
               "bce_with_logits none")
    _rel_close(fastce.binary_cross_entropy_with_logits(x, y), expected.mean(),
               "bce_with_logits mean")
    loss, grad = fastce.binary_cross_entropy_with_logits_and_grad(x, y, reduction="none")
    sig = 0.5 * (1 + np.tanh(x64 / 2))
    _rel_close(loss, expected, "bce_with_logits loss")
    _rel_close(grad, sig - y64, "bce_with_logits grad")


@pytest.mark.parametrize("fn", ["binary_cross_entropy_with_logits",
                                "binary_cross_entropy_with_logits_and_grad"])
def test_float32_bce_mean_of_losses_near_the_float32_max_is_finite(fn):
    # each loss is about 3e38: their float32 sum would overflow, the float64
    # one (SPEC §3.8) does not, and the mean fits in float32
    x = np.full(300, -3e38, dtype=np.float32)
    y = np.ones(300, dtype=np.float32)
    result = getattr(fastce, fn)(x, y)
    loss = result[0] if isinstance(result, tuple) else result
    assert np.isfinite(loss)
    np.testing.assert_allclose(float(loss), 3e38, rtol=1e-6)


@pytest.mark.parametrize("fn", ["binary_cross_entropy_with_logits",
                                "binary_cross_entropy_with_logits_and_grad"])
@pytest.mark.parametrize("target, pos_weight", [(1.0, 10.0), (-3.0, None)])
def test_float32_bce_weighted_loss_is_finite_when_the_unweighted_one_overflows(
        fn, target, pos_weight):
    # pos_weight 10 (or a target outside [0, 1]) times a softplus of 1e38 is
    # beyond float32, the loss after the weight 0.05 is not: the weight must
    # scale the coefficients before the product, not the overflowed product
    # (found by the fuzz tests with fresh random examples)
    x = np.array([-1e38 if target == 1.0 else 1e38], dtype=np.float32)
    y = np.array([target], dtype=np.float32)
    kwargs = {"weight": np.array([0.05], dtype=np.float32), "reduction": "none"}
    if pos_weight is not None:
        kwargs["pos_weight"] = np.array([pos_weight], dtype=np.float32)
    coefficient = pos_weight if pos_weight is not None else 1.0 - target
    expected = 0.05 * coefficient * 1e38
    result = getattr(fastce, fn)(x, y, **kwargs)
    loss = result[0] if isinstance(result, tuple) else result
    assert np.isfinite(loss[0])
    np.testing.assert_allclose(float(loss[0]), expected, rtol=1e-6)


@pytest.mark.parametrize("fn", ["cross_entropy", "cross_entropy_and_grad"])
def test_float32_label_smoothing_of_logits_spanning_beyond_the_float32_range(fn):
    # x - max reaches -6e38, beyond float32: the smoothing sum must still
    # give the finite loss 0.1 / 3 * 9e38 = 3e37 (found by the fuzz tests
    # when the class sums first ran in float)
    x = np.array([[3e38, -3e38, 0.0]], dtype=np.float32)
    t = np.array([0])
    result = getattr(fastce, fn)(x, t, label_smoothing=0.1)
    loss = result[0] if isinstance(result, tuple) else result
    assert np.isfinite(loss)
    np.testing.assert_allclose(float(loss), 0.1 / 3 * 9e38, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_large_or_infinite_weights_give_weight_times_loss(dtype):
    # the weight scales the coefficients only when the unweighted loss
    # overflowed; otherwise w * l, as PyTorch forms it: a zero loss times a
    # huge weight stays 0 (not inf * 0), an infinite weight gives inf
    big = np.finfo(dtype).max / 2
    x = np.array([800.0, -100.0, 3.0, 5.0], dtype=dtype)
    y = np.array([1.0, 0.3, 1.0, 0.5], dtype=dtype)
    w = np.array([big, np.inf, np.inf, np.nan], dtype=dtype)
    pw = np.array([10.0, 1.0, 0.0, 1.0], dtype=dtype)
    loss = fastce.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw,
                                                   reduction="none")
    assert loss[0] == 0.0             # y = 1 with softplus(-800) = 0 exactly
    assert loss[1] == np.inf          # 0.3 * 100 times an infinite weight
    assert np.isnan(loss[2])          # both coefficients 0: inf * 0, as torch
    assert np.isnan(loss[3])          # a NaN weight stays NaN
