"""fastce.boosting: gradient + Hessian diagonal objectives for gradient
boosting, and their adapters for XGBoost, LightGBM and scikit-learn-style
wrappers.

Against closed-form NumPy float64 formulas and torch autograd's second
derivatives (the focal losses'), against central differences of the
gradient (torch-free), across every kernel path (short rows, kept
exponentials, long rows; float32, float64, float16), thread counts, ``out=``
and every error path; then with the real libraries: training with fastce's
plain objectives reproduces XGBoost's ``multi:softprob`` /
``binary:logistic`` and LightGBM's ``multiclass`` / ``binary``, and the
class-weighted, smoothed and focal objectives beat the plain one on an
imbalanced set.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastce
from fastce import boosting as B

RNG = np.random.default_rng(20261202)

# short rows (transposed), kept exponentials, a row too long to keep
CLASS_COUNTS = [2, 3, 10, 31, 40, 100, 300, 3000]


def _softmax64(raw):
    z = raw - raw.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _softmax_reference(raw, y, *, weight=None, sample_weight=None, eps=0.0):
    """g and exact diagonal h of s * CE(raw, y, weight, label_smoothing=eps)."""
    raw = np.asarray(raw, np.float64)
    n, c = raw.shape
    p = _softmax64(raw)
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    t = (eps / c) * np.broadcast_to(w, (n, c)).copy()
    t[np.arange(n), y] += (1 - eps) * w[y]
    a = t.sum(axis=1, keepdims=True)
    s = np.ones((n, 1)) if sample_weight is None else np.asarray(sample_weight)[:, None]
    return s * (a * p - t), s * a * p * (1 - p)


def _logistic_reference(raw, y, *, weight=None, pos_weight=None, sample_weight=None):
    raw = np.asarray(raw, np.float64)
    p = 1 / (1 + np.exp(-raw))
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
    c = pw * y + (1 - y)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    if sample_weight is not None:
        s = np.asarray(sample_weight, np.float64)
        w = w * (s[:, None] if raw.ndim == 2 else s)
    return w * (c * p - pw * y), w * c * p * (1 - p)


def _case(n, c, dtype=np.float64, scale=3.0):
    raw = (RNG.normal(size=(n, c)) * scale).astype(dtype)
    return raw, RNG.integers(0, c, n)


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5,
                                                                            atol=2e-6)


# ------------------------------------------------------------------ softmax --

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_cls", CLASS_COUNTS)
@pytest.mark.parametrize("options", [{}, {"weight": True}, {"eps": 0.1},
                                     {"weight": True, "eps": 0.2, "sw": True},
                                     {"sw": True}])
def test_softmax_matches_the_formula(n_cls, dtype, options):
    n = 37 if n_cls < 1000 else 5
    raw, y = _case(n, n_cls, dtype)
    w = RNG.uniform(0.5, 2.0, n_cls) if options.get("weight") else None
    s = RNG.uniform(0.0, 2.0, n) if options.get("sw") else None
    eps = options.get("eps", 0.0)
    g, h = B.softmax_grad_hess(raw, y, weight=w, sample_weight=s, label_smoothing=eps,
                               hessian="exact_diagonal")
    gr, hr = _softmax_reference(raw, y, weight=w, sample_weight=s, eps=eps)
    assert g.dtype == dtype and h.dtype == dtype and g.shape == raw.shape
    np.testing.assert_allclose(g, gr, **_tol(dtype))
    np.testing.assert_allclose(h, hr, **_tol(dtype))


@pytest.mark.parametrize("n_cls", [2, 7, 100])
def test_hessian_rules(n_cls):
    raw, y = _case(50, n_cls)
    raw[0] = 0.0
    raw[1, :] = -60.0
    raw[1, 0] = 60.0          # saturated: p (1 - p) underflows to ~0
    _, exact = B.softmax_grad_hess(raw, y, hessian="exact_diagonal")
    _, xgb = B.softmax_grad_hess(raw, y, hessian="xgboost")
    _, lgb = B.softmax_grad_hess(raw, y, hessian="lightgbm")
    np.testing.assert_allclose(xgb, np.maximum(2 * exact, 1e-16), rtol=1e-14, atol=0)
    np.testing.assert_allclose(lgb, n_cls / (n_cls - 1) * exact, rtol=1e-14, atol=0)
    assert (xgb[1] == 1e-16).sum() >= n_cls - 1
    _, lexact = B.logistic_grad_hess(raw, (raw > 0).astype(float),
                                     hessian="exact_diagonal")
    _, lxgb = B.logistic_grad_hess(raw, (raw > 0).astype(float), hessian="xgboost")
    _, llgb = B.logistic_grad_hess(raw, (raw > 0).astype(float), hessian="lightgbm")
    np.testing.assert_array_equal(lxgb, np.maximum(lexact, 1e-16))
    np.testing.assert_array_equal(llgb, lexact)


def test_default_gradient_is_p_minus_onehot():
    raw, y = _case(64, 5, np.float32)
    g, h = B.softmax_grad_hess(raw, y)
    p = _softmax64(raw)
    onehot = np.eye(5)[y]
    np.testing.assert_allclose(g, p - onehot, atol=1e-6)
    np.testing.assert_allclose(h, np.maximum(2 * p * (1 - p), 1e-16), atol=1e-6)


def test_float16_is_computed_in_float32():
    raw, y = _case(20, 6, np.float32)
    g32, h32 = B.softmax_grad_hess(raw.astype(np.float16).astype(np.float32), y)
    g16, h16 = B.softmax_grad_hess(raw.astype(np.float16), y)
    assert g16.dtype == np.float16 and h16.dtype == np.float16
    np.testing.assert_array_equal(g16, g32.astype(np.float16))
    np.testing.assert_array_equal(h16, h32.astype(np.float16))


@pytest.mark.parametrize("n_cls", [4, 100, 3000])
@pytest.mark.parametrize("fn", ["softmax", "focal", "logistic", "sigmoid_focal"])
def test_bit_identical_for_any_thread_count(fn, n_cls):
    raw, y = _case(3000 if n_cls < 1000 else 40, n_cls, np.float32)
    if fn in ("logistic", "sigmoid_focal"):
        y = (RNG.uniform(size=raw.shape) < 0.3).astype(np.float32)
    f = B._OBJECTIVES[fn]
    g1, h1 = f(raw, y, n_threads=1)
    g2, h2 = f(raw, y, n_threads=2)
    assert g1.tobytes() == g2.tobytes() and h1.tobytes() == h2.tobytes()


def test_confident_and_infinite_scores_stay_finite():
    raw = np.array([[40.0, -40.0, 0.0], [-np.inf, 0.0, 1.0], [1e4, 0.0, 0.0]])
    y = np.array([0, 2, 1])
    for fn, kw in ((B.softmax_grad_hess, {}), (B.focal_grad_hess, {"gamma": 0.5}),
                   (B.focal_grad_hess, {"gamma": 3.0})):
        for rule in ("xgboost", "exact_diagonal"):
            g, h = fn(raw, y, hessian=rule, **kw)
            assert np.isfinite(g).all() and np.isfinite(h).all(), (fn, kw, rule)
    g, _ = B.softmax_grad_hess(raw, y)
    np.testing.assert_allclose(g[2], [1.0, -1.0, 0.0], atol=1e-12)


# -------------------------------------------------------------------- focal --

def _torch_hessian_diagonal(loss_fn, raw):
    torch = pytest.importorskip("torch")
    x = torch.tensor(np.asarray(raw, np.float64), requires_grad=True)
    g, = torch.autograd.grad(loss_fn(torch, x), x, create_graph=True)
    h = np.zeros(raw.shape)
    flat = g.reshape(-1)
    for k in range(flat.numel()):
        hk, = torch.autograd.grad(flat[k], x, retain_graph=True)
        h.reshape(-1)[k] = hk.reshape(-1)[k].item()
    return g.detach().numpy(), h


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("n_cls", [3, 40])
def test_focal_against_torch_autograd(gamma, n_cls):
    raw, y = _case(12, n_cls)
    alpha = RNG.uniform(0.2, 1.0, n_cls)
    w = RNG.uniform(0.5, 2.0, n_cls)
    s = RNG.uniform(0.0, 2.0, 12)

    def loss(torch, x):
        lpt = torch.log_softmax(x, 1)[torch.arange(12), torch.tensor(y)]
        f = -(1 - lpt.exp()) ** gamma * lpt
        return (f * torch.tensor(alpha[y] * w[y] * s)).sum()

    gr, hr = _torch_hessian_diagonal(loss, raw)
    g, h = B.focal_grad_hess(raw, y, gamma=gamma, alpha=alpha, weight=w, sample_weight=s,
                             hessian="exact_diagonal")
    np.testing.assert_allclose(g, gr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, hr, rtol=1e-10, atol=1e-12)
    if gamma >= 1:
        assert (hr < 0).any()      # the case the Hessian rules must handle


@pytest.mark.parametrize("fn, kwargs, labels", [
    (B.focal_grad_hess, {"gamma": 2.0}, "class"),
    (B.focal_grad_hess, {"gamma": 0.5, "alpha": [0.3, 1.0, 0.7, 0.5]}, "class"),
    (B.softmax_grad_hess, {"label_smoothing": 0.2, "weight": [1.0, 2.0, 0.5, 1.5]},
     "class"),
    (B.sigmoid_focal_grad_hess, {"alpha": 0.25, "gamma": 2.0}, "binary"),
    (B.sigmoid_focal_grad_hess, {"alpha": -1.0, "gamma": 0.7}, "soft"),
    (B.logistic_grad_hess, {"pos_weight": 3.0}, "soft"),
])
def test_hessian_is_the_derivative_of_the_gradient(fn, kwargs, labels):
    # central differences of fastce's own gradient, entry by entry
    raw = RNG.normal(size=(6, 4)) * 2
    y = {"class": RNG.integers(0, 4, 6), "binary": (RNG.uniform(size=(6, 4)) < .4) * 1.0,
         "soft": RNG.uniform(size=(6, 4))}[labels]
    _, h = fn(raw, y, hessian="exact_diagonal", **kwargs)
    step = 1e-5
    for i, j in np.ndindex(raw.shape):
        up, down = raw.copy(), raw.copy()
        up[i, j] += step
        down[i, j] -= step
        fd = (fn(up, y, **kwargs)[0][i, j] - fn(down, y, **kwargs)[0][i, j]) / (2 * step)
        assert abs(h[i, j] - fd) <= 1e-6 + 1e-5 * abs(fd), (i, j, h[i, j], fd)


def test_focal_gamma_zero_is_softmax_and_alpha_weights():
    raw, y = _case(30, 6)
    for rule in ("xgboost", "exact_diagonal", "lightgbm"):
        g, h = B.focal_grad_hess(raw, y, gamma=0.0, hessian=rule)
        g0, h0 = B.softmax_grad_hess(raw, y, hessian=rule)
        np.testing.assert_allclose(g, g0, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(h, h0, rtol=1e-12, atol=1e-15)
    alpha = RNG.uniform(0.1, 1.0, 6)
    g, h = B.focal_grad_hess(raw, y, gamma=0.0, alpha=alpha, hessian="exact_diagonal")
    g0, h0 = B.softmax_grad_hess(raw, y, weight=alpha, hessian="exact_diagonal")
    np.testing.assert_allclose(g, g0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h, h0, rtol=1e-12, atol=1e-15)


def test_focal_gradient_matches_focal_loss_and_grad():
    raw, y = _case(25, 5)
    _, g_loss = fastce.focal_loss_and_grad(raw, y, gamma=2.0, reduction="sum")
    g, _ = B.focal_grad_hess(raw, y, gamma=2.0)
    np.testing.assert_allclose(g, g_loss, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------- logistic --

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1000,), (64, 5), (3, 40000)])
def test_logistic_matches_the_formula(shape, dtype):
    raw = (RNG.normal(size=shape) * 4).astype(dtype)
    y = (RNG.uniform(size=shape) < 0.3).astype(dtype)
    w = RNG.uniform(0.5, 2.0, shape[-1:])
    pw = RNG.uniform(0.5, 4.0, shape[-1:])
    s = RNG.uniform(0.0, 2.0, shape[0])
    for kwargs in ({}, {"weight": w, "pos_weight": pw, "sample_weight": s}):
        g, h = B.logistic_grad_hess(raw, y, hessian="exact_diagonal", **kwargs)
        gr, hr = _logistic_reference(raw, y, **kwargs)
        assert g.dtype == dtype and g.shape == shape
        np.testing.assert_allclose(g, gr, **_tol(dtype))
        np.testing.assert_allclose(h, hr, **_tol(dtype))


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 0.5), (0.6, 1.0), (0.3, 0.0)])
def test_sigmoid_focal_against_torch_autograd(alpha, gamma):
    raw = RNG.normal(size=(8, 3)) * 4
    y = np.where(RNG.uniform(size=(8, 3)) < 0.5, 1.0, RNG.uniform(size=(8, 3)))
    w = RNG.uniform(0.5, 2.0, 3)
    s = RNG.uniform(0.0, 2.0, 8)

    def loss(torch, x):
        yt = torch.tensor(y)
        p = torch.sigmoid(x)
        ce = torch.nn.functional.binary_cross_entropy_with_logits(x, yt, reduction="none")
        f = ce * (1 - (p * yt + (1 - p) * (1 - yt))) ** gamma
        if alpha >= 0:
            f = f * (alpha * yt + (1 - alpha) * (1 - yt))
        return (f * torch.tensor(w) * torch.tensor(s)[:, None]).sum()

    gr, hr = _torch_hessian_diagonal(loss, raw)
    g, h = B.sigmoid_focal_grad_hess(raw, y, alpha=alpha, gamma=gamma, weight=w,
                                     sample_weight=s, hessian="exact_diagonal")
    np.testing.assert_allclose(g, gr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, hr, rtol=1e-10, atol=1e-12)


def test_logistic_gradient_matches_bce_and_grad():
    raw = RNG.normal(size=(20, 4))
    y = RNG.uniform(size=(20, 4))
    _, g_loss = fastce.binary_cross_entropy_with_logits_and_grad(
        raw, y, pos_weight=np.array([1.0, 2.0, 3.0, 0.5]), reduction="sum")
    g, _ = B.logistic_grad_hess(raw, y, pos_weight=np.array([1.0, 2.0, 3.0, 0.5]))
    np.testing.assert_allclose(g, g_loss, rtol=1e-12, atol=1e-15)
    _, g_focal = fastce.sigmoid_focal_loss_and_grad(raw, y, reduction="sum")
    np.testing.assert_allclose(B.sigmoid_focal_grad_hess(raw, y)[0], g_focal,
                               rtol=1e-12, atol=1e-15)


def test_integer_and_flat_logistic_labels():
    raw = RNG.normal(size=(10, 3)).astype(np.float32)
    y = (RNG.uniform(size=(10, 3)) < 0.5)
    g_bool, _ = B.logistic_grad_hess(raw, y)
    g_int, _ = B.logistic_grad_hess(raw, y.astype(np.int64))
    g_flat, _ = B.logistic_grad_hess(raw, y.astype(np.float32).reshape(-1))
    g_float, _ = B.logistic_grad_hess(raw, y.astype(np.float32))
    for g in (g_bool, g_int, g_flat):
        np.testing.assert_array_equal(g, g_float)


# ---------------------------------------------------------------------- out --

def test_out_buffers_are_written_and_returned():
    raw, y = _case(50, 12, np.float32)
    expected = B.softmax_grad_hess(raw, y)
    g, h = np.full_like(raw, np.nan), np.full_like(raw, np.nan)
    rg, rh = B.softmax_grad_hess(raw, y, out=(g, h))
    assert rg is g and rh is h
    np.testing.assert_array_equal(g, expected[0])
    np.testing.assert_array_equal(h, expected[1])
    # the gradient may overwrite the raw scores
    work = raw.copy()
    rg, rh = B.softmax_grad_hess(work, y, out=(work, h))
    assert rg is work
    np.testing.assert_array_equal(work, expected[0])
    np.testing.assert_array_equal(rh, expected[1])
    # logistic: the same contract
    lraw = RNG.normal(size=(40,)).astype(np.float32)
    ly = (lraw > 0).astype(np.float32)
    lg, lh = np.empty_like(lraw), np.empty_like(lraw)
    exp_g, exp_h = B.logistic_grad_hess(lraw, ly)
    assert B.logistic_grad_hess(lraw, ly, out=(lg, lh))[1] is lh
    np.testing.assert_array_equal(lg, exp_g)
    np.testing.assert_array_equal(lh, exp_h)


def test_out_float16_gets_the_rounded_results():
    raw, y = _case(10, 5, np.float16)
    g, h = np.empty_like(raw), np.empty_like(raw)
    expected = B.softmax_grad_hess(raw, y)
    B.softmax_grad_hess(raw, y, out=(g, h))
    np.testing.assert_array_equal(g, expected[0])
    np.testing.assert_array_equal(h, expected[1])


@pytest.mark.parametrize("make_out, match", [
    (lambda r: (np.empty_like(r), r), "must not be the raw scores"),
    (lambda r: (np.empty_like(r),) * 2, "overlap"),
    (lambda r: (np.empty_like(r), np.empty(r.shape, np.float32)), "dtype"),
    (lambda r: (np.empty_like(r), np.empty((3, 3))), "shape"),
    (lambda r: [np.empty_like(r), np.empty_like(r)], "tuple"),
    (lambda r: (np.empty_like(r),), "tuple"),
    (lambda r: (np.empty_like(r), np.empty(r.shape[::-1]).T), "C-contiguous"),
])
def test_bad_out(make_out, match):
    raw, y = _case(8, 4)
    out = make_out(raw)
    with pytest.raises(ValueError, match=match):
        B.softmax_grad_hess(raw, y, out=out)


def test_nothing_is_written_before_an_error():
    raw, y = _case(8, 4)
    y[5] = 4
    g, h = np.zeros_like(raw), np.zeros_like(raw)
    with pytest.raises(IndexError):
        B.softmax_grad_hess(raw, y, out=(g, h))
    assert not g.any() and not h.any()


# ------------------------------------------------------------------- errors --

@pytest.mark.parametrize("call, exc, match", [
    (lambda: B.softmax_grad_hess(np.zeros(4), [0, 1, 0, 1]), ValueError, "2-D"),
    (lambda: B.softmax_grad_hess(np.zeros((4, 3)), [0, 1]), ValueError, r"shape \(4,\)"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 3)), [0.0, 1.5]), ValueError, "whole"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 3)), [0.0, np.nan]), ValueError, "whole"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 3)), [0, 3]), IndexError,
     r"label 3 at position 1 .*\[0, 3\)"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 3)), [-100, 0]), IndexError, "-100"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 3)), ["a", "b"]), TypeError, "dtype"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 3)), [0, 1], hessian="newton"), ValueError,
     "hessian must be"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 1)), [0, 0], hessian="lightgbm"),
     ValueError, "at least 2 classes"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 3)), [0, 1], sample_weight=[1.0]),
     ValueError, "sample_weight"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 3)), [0, 1], sample_weight=[1.0, -1.0]),
     ValueError, "sample_weight"),
    (lambda: B.softmax_grad_hess(np.zeros((2, 3)), [0, 1], weight=[1.0, 2.0]),
     ValueError, "weight"),
    (lambda: B.focal_grad_hess(np.zeros((2, 3)), [0, 1], gamma=-1.0), ValueError,
     "gamma"),
    (lambda: B.logistic_grad_hess(np.zeros((2, 3, 4)), np.zeros((2, 3, 4))), ValueError,
     "1-D"),
    (lambda: B.logistic_grad_hess(np.zeros((4, 2)), np.zeros(3)), ValueError, "size"),
    (lambda: B.logistic_grad_hess(np.zeros((4, 2)), np.zeros((4, 2)),
                                  sample_weight=np.ones((4, 2))), ValueError,
     "sample_weight"),
    (lambda: B.sigmoid_focal_grad_hess(np.zeros(3), np.zeros(3), gamma=-0.5), ValueError,
     "gamma"),
    (lambda: B.xgboost_objective("hinge"), ValueError, "loss must be one of"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ----------------------------------------------------------------- adapters --

class _Data:
    """The two methods an objective reads of an xgboost.DMatrix / lightgbm.Dataset."""

    def __init__(self, label, weight):
        self._label, self._weight = label, weight

    def get_label(self):
        return self._label

    def get_weight(self):
        return self._weight


def test_adapters_pass_labels_and_weights_through():
    raw, y = _case(30, 4, np.float32)
    s = RNG.uniform(0.5, 2.0, 30).astype(np.float32)
    w = np.array([1.0, 2.0, 1.0, 3.0])
    expected = B.softmax_grad_hess(raw, y, weight=w, sample_weight=s)
    labels = y.astype(np.float32)
    obj = B.xgboost_objective("softmax", weight=w)
    for got in (obj(raw, _Data(labels, s)),
                obj(raw.reshape(-1), _Data(labels, s)),      # flat margins
                B.sklearn_objective("softmax", weight=w)(labels, raw, s),
                B.sklearn_objective("softmax", weight=w)(labels, raw, sample_weight=s)):
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    unweighted = B.softmax_grad_hess(raw, y)
    no_weights = np.array([], np.float32)      # what XGBoost returns without weights
    for got in (B.xgboost_objective("softmax")(raw, _Data(labels, no_weights)),
                B.lightgbm_objective("softmax", hessian="xgboost")(raw,
                                                                   _Data(labels, None))):
        np.testing.assert_array_equal(got[0], unweighted[0])
    lgb = B.lightgbm_objective("softmax")(raw, _Data(labels, None))
    np.testing.assert_array_equal(lgb[1],
                                  B.softmax_grad_hess(raw, y, hessian="lightgbm")[1])
    assert obj.__name__ == "fastce_softmax"


def test_logistic_adapters():
    raw = RNG.normal(size=(20, 3)).astype(np.float32)
    y = (RNG.uniform(size=(20, 3)) < 0.4).astype(np.float32)
    s = RNG.uniform(0.5, 2.0, 20)
    expected = B.logistic_grad_hess(raw, y, sample_weight=s)
    got = B.xgboost_objective("logistic")(raw, _Data(y.reshape(-1), s))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    got = B.sklearn_objective("sigmoid_focal", gamma=1.0)(y, raw)
    np.testing.assert_array_equal(got[0], B.sigmoid_focal_grad_hess(raw, y, gamma=1.0)[0])


def test_flat_margins_must_split_into_rows():
    with pytest.raises(ValueError, match="do not split"):
        B.xgboost_objective()(np.zeros(7, np.float32), _Data(np.zeros(2), np.array([])))


# ------------------------------------------------------- the real libraries --

@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    return X, y


def _max_prob_diff(p_builtin, margins):
    return float(np.abs(p_builtin - fastce.softmax(np.asarray(margins, np.float64),
                                                   axis=1)).max())


def test_xgboost_softmax_reproduces_multi_softprob(digits):
    xgb = pytest.importorskip("xgboost")
    X, y = digits
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    d = xgb.DMatrix(X, label=y, weight=sw)
    params = dict(tree_method="hist", max_depth=4, eta=0.3, num_class=10, base_score=0.5,
                  nthread=2, seed=0)
    builtin = xgb.train(dict(params, objective="multi:softprob"), d, num_boost_round=20)
    custom = xgb.train(dict(params, disable_default_eval_metric=1), d,
                       num_boost_round=20, obj=B.xgboost_objective("softmax"))
    assert _max_prob_diff(builtin.predict(d), custom.predict(d, output_margin=True)) < 1e-5
    # the scikit-learn wrapper, with sample weights
    kw = dict(n_estimators=10, max_depth=4, learning_rate=0.3, base_score=0.5,
              tree_method="hist", n_jobs=2)
    a = xgb.XGBClassifier(objective="multi:softprob", **kw).fit(X, y, sample_weight=sw)
    b = xgb.XGBClassifier(objective=B.sklearn_objective("softmax"), **kw).fit(
        X, y, sample_weight=sw)
    assert np.abs(a.predict_proba(X) - b.predict_proba(X)).max() < 1e-5


def test_xgboost_logistic_reproduces_binary_logistic():
    xgb = pytest.importorskip("xgboost")
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_breast_cancer(return_X_y=True)
    d = xgb.DMatrix(X, label=y)
    params = dict(tree_method="hist", max_depth=3, eta=0.3, nthread=2, seed=0)
    builtin = xgb.train(dict(params, objective="binary:logistic", base_score=0.5), d,
                        num_boost_round=20)
    custom = xgb.train(dict(params, base_score=0.0, disable_default_eval_metric=1), d,
                       num_boost_round=20, obj=B.xgboost_objective("logistic"))
    p = 1 / (1 + np.exp(-custom.predict(d, output_margin=True).astype(np.float64)))
    assert np.abs(builtin.predict(d) - p).max() < 1e-5


def test_lightgbm_softmax_reproduces_multiclass(digits):
    lgb = pytest.importorskip("lightgbm")
    X, y = digits
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    params = dict(num_class=10, num_leaves=15, learning_rate=0.3, verbose=-1,
                  num_threads=2, seed=0, boost_from_average=False, deterministic=True)
    builtin = lgb.train(dict(params, objective="multiclass"),
                        lgb.Dataset(X, label=y, weight=sw), num_boost_round=20)
    custom = lgb.train(dict(params, objective=B.lightgbm_objective("softmax")),
                       lgb.Dataset(X, label=y, weight=sw), num_boost_round=20)
    assert _max_prob_diff(builtin.predict(X), custom.predict(X, raw_score=True)) < 1e-5
    kw = dict(n_estimators=10, num_leaves=15, learning_rate=0.3, verbose=-1, n_jobs=2,
              boost_from_average=False, deterministic=True)
    a = lgb.LGBMClassifier(objective="multiclass", **kw).fit(X, y, sample_weight=sw)
    b = lgb.LGBMClassifier(objective=B.sklearn_objective("softmax", hessian="lightgbm"),
                           **kw).fit(X, y, sample_weight=sw)
    assert _max_prob_diff(a.predict_proba(X), b.predict(X, raw_score=True)) < 1e-5


def test_lightgbm_logistic_reproduces_binary():
    lgb = pytest.importorskip("lightgbm")
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_breast_cancer(return_X_y=True)
    params = dict(num_leaves=7, learning_rate=0.3, verbose=-1, num_threads=2, seed=0,
                  boost_from_average=False, deterministic=True)
    builtin = lgb.train(dict(params, objective="binary"), lgb.Dataset(X, label=y),
                        num_boost_round=20)
    custom = lgb.train(dict(params, objective=B.lightgbm_objective("logistic")),
                       lgb.Dataset(X, label=y), num_boost_round=20)
    p = 1 / (1 + np.exp(-custom.predict(X, raw_score=True)))
    assert np.abs(builtin.predict(X) - p).max() < 1e-5


IMBALANCED_ROUNDS = 100


def imbalanced_scores(rounds: int = IMBALANCED_ROUNDS, n_threads: int = 2) -> dict:
    """Test-set balanced accuracy, macro F1 and log loss of XGBoost trained
    with fastce's plain, class-weighted, smoothed and focal objectives on a
    3-class set with 90/7/3 % classes (also printed by the README's table)."""
    xgb = pytest.importorskip("xgboost")
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.metrics import balanced_accuracy_score, f1_score, log_loss
    from sklearn.model_selection import train_test_split

    X, y = datasets.make_classification(
        n_samples=8000, n_features=20, n_informative=6, n_redundant=2, n_classes=3,
        weights=[0.9, 0.07, 0.03], class_sep=0.8, flip_y=0.01, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)
    dtr, dte = xgb.DMatrix(Xtr, label=ytr), xgb.DMatrix(Xte)
    balanced = fastce.class_weights(ytr, 3)
    objectives = {
        "plain": B.xgboost_objective("softmax"),
        "class-weighted": B.xgboost_objective("softmax", weight=balanced),
        "smoothed (0.1)": B.xgboost_objective("softmax", label_smoothing=0.1),
        "focal (gamma 2)": B.xgboost_objective("focal", gamma=2.0),
        "focal (gamma 2, alpha balanced)": B.xgboost_objective(
            "focal", gamma=2.0, alpha=balanced / balanced.max()),
    }
    params = dict(tree_method="hist", max_depth=6, eta=0.3, num_class=3, base_score=0.0,
                  nthread=n_threads, seed=0, disable_default_eval_metric=1)
    scores = {}
    for name, obj in objectives.items():
        booster = xgb.train(params, dtr, num_boost_round=rounds, obj=obj)
        p = fastce.softmax(booster.predict(dte, output_margin=True).astype(np.float64),
                           axis=1)
        pred = p.argmax(axis=1)
        scores[name] = dict(balanced_accuracy=balanced_accuracy_score(yte, pred),
                            macro_f1=f1_score(yte, pred, average="macro"),
                            log_loss=log_loss(yte, p))
    return scores


def test_weighted_smoothed_and_focal_beat_plain_on_an_imbalanced_set():
    scores = imbalanced_scores()
    for name, s in scores.items():
        print(f"{name:32s} balanced accuracy {s['balanced_accuracy']:.4f}  "
              f"macro F1 {s['macro_f1']:.4f}  log loss {s['log_loss']:.4f}")
    plain = scores["plain"]
    for name in ("class-weighted", "smoothed (0.1)", "focal (gamma 2, alpha balanced)"):
        assert scores[name]["balanced_accuracy"] > plain["balanced_accuracy"], name
        assert scores[name]["macro_f1"] > plain["macro_f1"], name
    # down-weighting the easy majority calibrates better than plain CE, which
    # overfits at this depth; smoothing regularises the same way
    for name in ("smoothed (0.1)", "focal (gamma 2)"):
        assert scores[name]["log_loss"] < plain["log_loss"], name
