"""Property-based tests (hypothesis): fastce against a small float64 NumPy
reference written here, and invariants of the losses and their gradients
that hold for any input."""
from __future__ import annotations

import numpy as np
import pytest

import fastce

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])
DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]


# ------------------------------------------------------------ reference --

def ref_log_softmax(x, axis):
    """float64 log-softmax via max subtraction."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _div(a, b):
    return a / b if b != 0 else np.nan


def ref_cross_entropy(x, target, *, axis, weight=None, ignore_index=-100, eps=0.0,
                      reduction="mean", nll=False):
    """PyTorch's cross_entropy / nll_loss (SPEC §3.1-3.3) in float64.
    Returns (loss, mean denominator)."""
    x = np.asarray(x, dtype=np.float64)
    logp = np.moveaxis(x if nll else ref_log_softmax(x, axis), axis, -1)
    C = logp.shape[-1]
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    t = np.asarray(target)
    if t.dtype.kind == "f":
        y = np.moveaxis(t.astype(np.float64), axis, -1)
        y = (1 - eps) * y + eps / C
        per = -np.sum(w * y * logp, axis=-1)
        denominator = per.size
    else:
        valid = t != ignore_index
        tc = np.where(valid, t, 0)
        lp_t = np.take_along_axis(logp, tc[..., None], axis=-1)[..., 0]
        wt = w[tc]
        per = -wt * lp_t
        if eps:
            per = (1 - eps) * per + eps / C * -np.sum(w * logp, axis=-1)
        per = np.where(valid, per, 0.0)
        denominator = float(np.sum(np.where(valid, wt, 0.0)))
    if reduction == "none":
        return per, denominator
    if reduction == "sum":
        return per.sum(), denominator
    return _div(per.sum(), denominator), denominator


def ref_bce_with_logits(x, y, weight=None, pos_weight=None):
    """Per-element w * [pw * y * softplus(-x) + (1 - y) * softplus(x)] and its
    derivative w * ((pw * y + 1 - y) * sigmoid(x) - pw * y), in float64."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    loss = w * (pw * y * np.logaddexp(0.0, -x) + (1 - y) * np.logaddexp(0.0, x))
    sig = np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))),
                   np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))
    grad = w * ((pw * y + 1 - y) * sig - pw * y)
    return np.broadcast_to(loss, x.shape), np.broadcast_to(grad, x.shape)


def float_tol(dtype, scale=1.0):
    """(rtol, atol) for a float64-reference comparison; ``scale`` bounds
    the magnitude of the terms being summed."""
    if np.dtype(dtype) == np.float32:
        return 1e-5, 4e-6 * scale
    return 1e-10, 1e-12 * scale


# ------------------------------------------------------------ strategies --

def finite_arrays(dtype, shape, lo=-20.0, hi=20.0):
    width = 32 if np.dtype(dtype) == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=st.floats(lo, hi, width=width))


@st.composite
def class_problems(draw, *, targets=("index", "prob"), allow_weight=True,
                   allow_ignore=True, allow_smoothing=True, dtypes=DTYPES):
    """A random cross-entropy call: shape (1-4 dims, batch sizes may be 0),
    class axis (default / positive / negative), dtype, target, options."""
    ndim = draw(st.integers(1, 4))
    shape = list(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    how = draw(st.sampled_from(["default", "positive", "negative", "dim"]))
    if how == "default":
        cax = 0 if ndim == 1 else 1
        axis_kw = {}
    else:
        cax = draw(st.integers(0, ndim - 1))
        ax = cax - ndim if how == "negative" else cax
        axis_kw = {"dim": ax} if how == "dim" else {"axis": ax}
    shape[cax] = draw(st.integers(1, 9))
    shape = tuple(shape)
    C = shape[cax]
    batch = shape[:cax] + shape[cax + 1:]
    dtype = draw(st.sampled_from(dtypes))
    x = draw(finite_arrays(dtype, shape))
    kind = draw(st.sampled_from(targets))
    kw = dict(axis_kw)
    if allow_weight and draw(st.booleans()):
        kw["weight"] = draw(hnp.arrays(np.float64, (C,), elements=st.floats(0.0, 5.0)))
    if kind == "prob":
        p = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0)))
        target = p.astype(dtype)
    else:
        target = draw(hnp.arrays(np.int64, batch, elements=st.integers(0, C - 1)))
        if allow_ignore and draw(st.booleans()):
            ii = draw(st.sampled_from([-100, -1, 0, C - 1]))
            kw["ignore_index"] = ii
            mask = draw(hnp.arrays(np.bool_, batch))
            target = np.where(mask, ii, target)
    if allow_smoothing and draw(st.booleans()):
        kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])
                                     | st.floats(0.0, 1.0))
    return x, target, kw, cax


def _ref_kwargs(kw, cax):
    return dict(axis=cax, weight=kw.get("weight"),
                ignore_index=kw.get("ignore_index", -100),
                eps=kw.get("label_smoothing", 0.0))


def _assert_loss_close(got, expected, dtype, scale, what="loss"):
    rtol, atol = float_tol(dtype, scale)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected,
                               rtol=rtol, atol=atol, err_msg=what)


def _term_scale(x, kw, count):
    """Bound on |terms| summed into one loss value, for the tolerance."""
    wmax = float(np.max(kw["weight"])) if kw.get("weight") is not None and \
        np.size(kw["weight"]) else 1.0
    return (1.0 + wmax) * max(1, count)


# ------------------------------------------------------------ properties --

@SETTINGS
@given(problem=class_problems(), reduction=st.sampled_from(REDUCTIONS))
def test_cross_entropy_equals_float64_reference(problem, reduction):
    x, target, kw, cax = problem
    got = fastce.cross_entropy(x, target, reduction=reduction, **kw)
    expected, denom = ref_cross_entropy(x, target, reduction=reduction,
                                        **_ref_kwargs(kw, cax))
    n = int(np.prod(np.shape(expected))) if reduction == "none" else \
        max(1, x.size // x.shape[cax])
    scale = _term_scale(x, kw, 1 if reduction == "none" else n)
    if reduction == "mean" and denom:
        scale /= denom
    if reduction == "none":
        assert np.shape(got) == np.shape(expected)
    else:
        assert isinstance(got, np.generic)
    assert np.asarray(got).dtype == x.dtype
    _assert_loss_close(got, expected, x.dtype, scale)


@SETTINGS
@given(problem=class_problems(targets=("index",), allow_smoothing=False),
       reduction=st.sampled_from(REDUCTIONS))
def test_nll_loss_equals_float64_reference(problem, reduction):
    x, target, kw, cax = problem
    got = fastce.nll_loss(x, target, reduction=reduction, **kw)
    expected, denom = ref_cross_entropy(x, target, reduction=reduction, nll=True,
                                        **_ref_kwargs(kw, cax))
    n = max(1, x.size // x.shape[cax])
    scale = 20 * _term_scale(x, kw, 1 if reduction == "none" else n)
    if reduction == "mean" and denom:
        scale /= denom
    _assert_loss_close(got, expected, x.dtype, scale)


@SETTINGS
@given(problem=class_problems(dtypes=[np.float64]),
       shift=st.floats(-100.0, 100.0), data=st.data())
def test_loss_and_grad_are_invariant_to_a_constant_added_per_row(problem, shift, data):
    x, target, kw, cax = problem
    batch = x.shape[:cax] + (1,) + x.shape[cax + 1:]
    c = data.draw(hnp.arrays(np.float64, batch, elements=st.floats(-100.0, 100.0)))
    loss0, grad0 = fastce.cross_entropy_and_grad(x, target, reduction="none", **kw)
    loss1, grad1 = fastce.cross_entropy_and_grad(x + c + shift, target, reduction="none",
                                                 **kw)
    wmax = float(np.max(kw["weight"])) if kw.get("weight") is not None else 1.0
    np.testing.assert_allclose(loss1, loss0, rtol=1e-9, atol=1e-9 * (1 + wmax))
    np.testing.assert_allclose(grad1, grad0, rtol=1e-9, atol=1e-9 * (1 + wmax))


@SETTINGS
@given(problem=class_problems(targets=("index",), allow_weight=False))
def test_softmax_rows_sum_to_one(problem):
    x, _, kw, cax = problem
    s = fastce.softmax(x, **{k: v for k, v in kw.items() if k in ("axis", "dim")})
    assert s.shape == x.shape and s.dtype == x.dtype
    assert np.all(s >= 0) and np.all(s <= 1)
    tol = 1e-6 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.sum(s, axis=cax, dtype=np.float64), 1.0, rtol=0,
                               atol=tol * x.shape[cax])
    np.testing.assert_allclose(s, np.exp(ref_log_softmax(x, cax)), rtol=1e-5 if
                               x.dtype == np.float32 else 1e-11, atol=1e-7 if
                               x.dtype == np.float32 else 1e-15)


@SETTINGS
@given(problem=class_problems(allow_weight=False))
def test_gradient_rows_of_unweighted_mean_cross_entropy_sum_to_zero(problem):
    """softmax - (smoothed) target: each row sums to 0 when the target row
    sums to 1 (index targets, or normalised probability targets)."""
    x, target, kw, cax = problem
    if target.dtype.kind == "f":
        s = np.sum(target, axis=cax, keepdims=True, dtype=np.float64)
        target = np.where(s > 0, target / np.where(s > 0, s, 1), 1.0 / x.shape[cax])
        target = target.astype(x.dtype)
    _, grad = fastce.cross_entropy_and_grad(x, target, **kw)
    assert grad.shape == x.shape
    assert np.all(np.isfinite(grad))
    rows = np.sum(grad, axis=cax, dtype=np.float64)
    tol = 2e-6 if x.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(rows, 0.0, rtol=0, atol=tol * x.shape[cax])


@SETTINGS
@given(problem=class_problems(targets=("index",), allow_ignore=False),
       reduction=st.sampled_from(REDUCTIONS))
def test_one_hot_probability_targets_equal_index_targets(problem, reduction):
    x, target, kw, cax = problem
    if reduction == "mean":
        kw.pop("weight", None)          # the two means divide by different sums
    C = x.shape[cax]
    onehot = np.moveaxis(np.eye(C, dtype=x.dtype)[target], -1, cax)
    li, gi = fastce.cross_entropy_and_grad(x, target, reduction=reduction, **kw)
    lp, gp = fastce.cross_entropy_and_grad(x, onehot, reduction=reduction, **kw)
    rtol, atol = (1e-5, 1e-5) if x.dtype == np.float32 else (1e-12, 1e-12)
    wmax = float(np.max(kw["weight"])) if kw.get("weight") is not None else 1.0
    scale = (1 + wmax) * (max(1, target.size) if reduction == "sum" else 1)
    np.testing.assert_allclose(np.asarray(lp, dtype=np.float64),
                               np.asarray(li, dtype=np.float64),
                               rtol=rtol, atol=atol * scale)
    np.testing.assert_allclose(gp, gi, rtol=rtol, atol=atol * (1 + wmax))


@SETTINGS
@given(data=st.data(), dtype=st.sampled_from(DTYPES),
       reduction=st.sampled_from(REDUCTIONS))
def test_bce_with_logits_equals_reference_formula(data, dtype, reduction):
    shape = tuple(data.draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    width = 32 if dtype == np.float32 else 64
    big = st.sampled_from([-1e4, 1e4, -100.0, 100.0, 0.0])
    x = data.draw(hnp.arrays(dtype, shape, elements=st.floats(-30, 30, width=width) | big))
    y = data.draw(hnp.arrays(dtype, shape, elements=st.floats(0.0, 1.0, width=width)))
    kw = {}
    if shape and data.draw(st.booleans()):
        wshape = data.draw(st.sampled_from([(), shape[-1:], shape[:-1] + (1,), shape]))
        kw["weight"] = data.draw(hnp.arrays(np.float64, wshape,
                                            elements=st.floats(0.0, 4.0)))
    if shape and data.draw(st.booleans()):
        kw["pos_weight"] = data.draw(hnp.arrays(np.float64, shape[-1:],
                                                elements=st.floats(0.0, 4.0)))
    loss, grad = fastce.binary_cross_entropy_with_logits_and_grad(
        x, y, reduction=reduction, **kw)
    ref_l, ref_g = ref_bce_with_logits(x, y, kw.get("weight"), kw.get("pos_weight"))
    n = max(1, x.size)
    if reduction == "sum":
        ref_loss, gscale = ref_l.sum(), 1.0
    elif reduction == "mean":
        ref_loss, gscale = (ref_l.sum() / x.size if x.size else np.nan), 1.0 / n
    else:
        ref_loss, gscale = ref_l, 1.0
    # terms are up to |x| * weight * pos_weight in size
    term = (1 + np.max(np.abs(x), initial=0.0)) * 25.0
    scale = term * (n if reduction == "sum" else 1)
    _assert_loss_close(loss, ref_loss, dtype, scale)
    rtol, atol = float_tol(dtype, 25.0)
    np.testing.assert_allclose(np.asarray(grad, dtype=np.float64), ref_g * gscale,
                               rtol=rtol, atol=atol * gscale)
    np.testing.assert_array_equal(
        loss, fastce.binary_cross_entropy_with_logits(x, y, reduction=reduction, **kw))


@SETTINGS
@given(problem=class_problems(targets=("index",)), factor=st.floats(1e-3, 1e3),
       nll=st.booleans())
def test_mean_is_unchanged_when_weight_is_scaled_by_a_constant(problem, factor, nll):
    x, target, kw, cax = problem
    C = x.shape[cax]
    w = kw.pop("weight", None)
    if w is None:
        w = np.linspace(0.5, 2.0, C)
    if nll:
        kw.pop("label_smoothing", None)
    f = fastce.nll_loss_and_grad if nll else fastce.cross_entropy_and_grad
    l1, g1 = f(x, target, weight=w, **kw)
    l2, g2 = f(x, target, weight=w * factor, **kw)
    rtol, atol = (2e-5, 1e-6) if x.dtype == np.float32 else (1e-12, 1e-13)
    scale = 20.0 if nll else 1.0
    np.testing.assert_allclose(np.float64(l2), np.float64(l1), rtol=rtol, atol=atol * scale)
    np.testing.assert_allclose(g2, g1, rtol=rtol, atol=atol)
