"""sample_weight= on every loss: multiplied into each position's (element's)
loss; the mean divides by sum(s * w[y]) over the non-ignored positions
(cross-entropy / NLL with class indices), by sum(s) otherwise.

Checked against torch (reduction="none" times s, reduced by hand, and
autograd through it), against scikit-learn's log_loss(sample_weight=), against
a NumPy float64 reference (always), against repeating samples (integer
weights), and through every error path.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastce

RNG = np.random.default_rng(20261213)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}


def _tol(dtype):
    return TOL[np.dtype(dtype).type]


# ------------------------------------------------------- class-index / prob --

CLASS_SHAPES = [((13, 5), 1), ((6, 4, 7), 1), ((5, 3, 4), -1), ((9,), 0)]


def _class_case(shape, axis, dtype, index, *, weighted, ignore):
    ax = axis % len(shape)
    n_cls = shape[ax]
    x = (RNG.normal(size=shape) * 2).astype(dtype)
    batch = shape[:ax] + shape[ax + 1:]
    if index:
        t = RNG.integers(0, n_cls, size=batch)
        if ignore and t.size > 2:
            t.reshape(-1)[1::3] = -100
    else:
        t = np.moveaxis(RNG.dirichlet(np.ones(n_cls), size=batch), -1, ax).astype(dtype)
    w = RNG.uniform(0.3, 2.0, n_cls) if weighted else None
    s = RNG.uniform(0.0, 3.0, size=batch)
    if s.size > 1:
        s.reshape(-1)[0] = 0.0            # a zero weight counts for nothing
    return x, t, w, s, ax


def _np_per_position(x, t, w, ax, eps, index):
    """float64 per-position cross-entropy and the per-position denominator
    weight (w[y], 0 when ignored; 1 for probability targets)."""
    xm = np.moveaxis(np.asarray(x, np.float64), ax, -1)
    n_cls = xm.shape[-1]
    lse = np.log(np.exp(xm - xm.max(-1, keepdims=True)).sum(-1)) + xm.max(-1)
    logp = xm - lse[..., None]
    wc = np.ones(n_cls) if w is None else np.asarray(w, np.float64)
    if index:
        valid = t != -100
        tc = np.where(valid, t, 0)
        wt = np.where(valid, wc[tc], 0.0)
        nll = -np.take_along_axis(logp, tc[..., None], -1)[..., 0]
        per = (1 - eps) * wt * nll + np.where(valid, eps / n_cls * -(logp * wc).sum(-1), 0)
        return per, wt
    y = np.moveaxis(np.asarray(t, np.float64), ax, -1) * (1 - eps) + eps / n_cls
    return -(wc * y * logp).sum(-1), np.ones(lse.shape)


@pytest.mark.parametrize("shape,axis", CLASS_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", ["plain", "all"])
def test_cross_entropy_against_numpy(shape, axis, dtype, index, reduction, options):
    full = options == "all"
    x, t, w, s, ax = _class_case(shape, axis, dtype, index, weighted=full, ignore=full)
    eps = 0.1 if full else 0.0
    per, wt = _np_per_position(x, t, w, ax, eps, index)
    ref = {"none": s * per, "sum": (s * per).sum(),
           "mean": (s * per).sum() / (s * wt).sum()}[reduction]
    got = fastce.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps,
                               axis=axis, sample_weight=s)
    assert np.asarray(got).dtype == dtype
    np.testing.assert_allclose(np.asarray(got, np.float64), ref, **_tol(dtype))
    loss, grad = fastce.cross_entropy_and_grad(x, t, w, reduction=reduction,
                                               label_smoothing=eps, axis=axis,
                                               sample_weight=s)
    assert np.array_equal(loss, got)
    assert grad.shape == x.shape and grad.dtype == dtype


def _torch_class(x, t, w, s, ax, *, eps, z, reduction, go, nll=False):
    torch = pytest.importorskip("torch")
    X = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    index = np.asarray(t).dtype.kind in "iu"
    T = torch.tensor(t) if index else torch.tensor(np.asarray(t, np.float64))
    Wt = None if w is None else torch.tensor(np.asarray(w, np.float64))
    Xc = torch.movedim(X, ax, 1) if X.ndim > 1 else X
    Tc = T if index or T.ndim == 1 else torch.movedim(T, ax, 1)
    if nll:
        per = torch.nn.functional.nll_loss(Xc, Tc, weight=Wt, reduction="none")
    else:
        per = torch.nn.functional.cross_entropy(Xc, Tc, weight=Wt, reduction="none",
                                                label_smoothing=eps)
    if index:
        valid = T != -100
        wt = (Wt[torch.where(valid, T, 0)] if Wt is not None
              else torch.ones(T.shape, dtype=torch.float64)) * valid
    else:
        wt = torch.ones(per.shape, dtype=torch.float64)
    if z:
        per = per + z * wt * torch.logsumexp(X, dim=ax) ** 2
    S = torch.tensor(s)
    loss = {"none": S * per, "sum": (S * per).sum(),
            "mean": (S * per).sum() / (S * wt).sum()}[reduction]
    g = (torch.tensor(np.broadcast_to(go, loss.shape).copy()) if go is not None
         else torch.ones_like(loss))
    loss.backward(g)
    return loss.detach().numpy(), X.grad.numpy()


@pytest.mark.parametrize("shape,axis", CLASS_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_against_torch(shape, axis, dtype, index, reduction):
    x, t, w, s, ax = _class_case(shape, axis, dtype, index, weighted=True, ignore=True)
    batch = s.shape
    go = RNG.normal(size=batch) if reduction == "none" else 0.6
    kw = dict(reduction=reduction, label_smoothing=0.05, axis=axis, z_loss=1e-3)
    ref_loss, ref_grad = _torch_class(x, t, w, s, ax, eps=0.05, z=1e-3,
                                      reduction=reduction, go=go)
    loss, grad = fastce.cross_entropy_and_grad(x, t, w, grad_output=go, sample_weight=s,
                                               **kw)
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref_loss, **_tol(dtype))
    np.testing.assert_allclose(grad, ref_grad, **_tol(dtype))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nll_against_torch(reduction, dtype):
    x, t, w, s, ax = _class_case((11, 6), 1, dtype, True, weighted=True, ignore=True)
    logp = fastce.log_softmax(x, axis=1)
    go = RNG.normal(size=s.shape) if reduction == "none" else 1.3
    ref_loss, ref_grad = _torch_class(logp, t, w, s, 1, eps=0.0, z=0.0,
                                      reduction=reduction, go=go, nll=True)
    loss, grad = fastce.nll_loss_and_grad(logp, t, w, reduction=reduction, grad_output=go,
                                          sample_weight=s)
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref_loss, **_tol(dtype))
    np.testing.assert_allclose(grad, ref_grad, **_tol(dtype))
    fwd = fastce.nll_loss(logp, t, w, reduction=reduction, sample_weight=s)
    assert np.array_equal(fwd, loss)


def test_log_loss_of_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    x = RNG.normal(size=(200, 7))
    y = RNG.integers(0, 7, 200)
    s = RNG.uniform(0, 4, 200)
    p = fastce.softmax(x, axis=1)
    ref = sklearn_metrics.log_loss(y, p, sample_weight=s, labels=range(7))
    np.testing.assert_allclose(fastce.cross_entropy(x, y, sample_weight=s), ref,
                               rtol=1e-12)
    np.testing.assert_allclose(fastce.nll_loss(np.log(p), y, sample_weight=s), ref,
                               rtol=1e-12)
    # binary: log_loss of P(y=1) = sigmoid(x) against BCE-with-logits
    xb = RNG.normal(size=150)
    yb = RNG.integers(0, 2, 150)
    sb = RNG.uniform(0, 2, 150)
    ref_b = sklearn_metrics.log_loss(yb, 1 / (1 + np.exp(-xb)), sample_weight=sb)
    np.testing.assert_allclose(
        fastce.binary_cross_entropy_with_logits(xb, yb.astype(np.float64),
                                                sample_weight=sb), ref_b, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_integer_weights_repeat_samples(reduction):
    """s = k counts a sample k times."""
    x = RNG.normal(size=(9, 4))
    t = RNG.integers(0, 4, 9)
    t[2] = -100
    w = RNG.uniform(0.5, 2, 4)
    k = RNG.integers(0, 4, 9)
    rep = np.repeat(np.arange(9), k)
    kw = dict(weight=w, reduction=reduction, label_smoothing=0.1)
    a, ga = fastce.cross_entropy_and_grad(x, t, sample_weight=k, **kw)
    b, gb = fastce.cross_entropy_and_grad(x[rep], t[rep], **kw)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    summed = np.zeros_like(x)
    np.add.at(summed, rep, gb)
    np.testing.assert_allclose(ga, summed, rtol=1e-10, atol=1e-14)


def test_ones_equal_no_weights_and_threads_agree():
    x = RNG.normal(size=(700, 60)).astype(np.float32)
    t = RNG.integers(0, 60, 700)
    for fn in (fastce.cross_entropy_and_grad, fastce.nll_loss_and_grad):
        a = fn(x, t, sample_weight=np.ones(700))
        b = fn(x, t)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
        np.testing.assert_array_equal(a[1], b[1])
    s = RNG.uniform(0, 1, 700)
    one = fastce.cross_entropy_and_grad(x, t, sample_weight=s, n_threads=1)
    two = fastce.cross_entropy_and_grad(x, t, sample_weight=s, n_threads=2)
    assert one[0] == two[0] and np.array_equal(one[1], two[1])


def test_zero_total_weight_gives_nan_mean():
    x = RNG.normal(size=(4, 3))
    t = np.array([0, 1, -100, 2])
    loss, grad = fastce.cross_entropy_and_grad(x, t, sample_weight=[0, 0, 5, 0])
    assert math.isnan(loss) and np.isnan(grad[[0, 1, 3]]).all()
    assert fastce.cross_entropy(x, t, reduction="sum", sample_weight=np.zeros(4)) == 0


def test_broadcast_sample_weight():
    x = RNG.normal(size=(4, 3, 5))
    t = RNG.integers(0, 3, (4, 5))
    s_row = RNG.uniform(0, 2, (4, 1))
    a = fastce.cross_entropy(x, t, sample_weight=s_row)
    b = fastce.cross_entropy(x, t, sample_weight=np.broadcast_to(s_row, (4, 5)))
    assert a == b


# --------------------------------------------------------------- binary --

BCE_SW_SHAPES = [(), (8, 1), (1, 5), (8, 5), (5,)]


@pytest.mark.parametrize("s_shape", BCE_SW_SHAPES)
@pytest.mark.parametrize("logits", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_against_torch(s_shape, logits, reduction, dtype):
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=(8, 5)).astype(dtype)
    if not logits:
        x = (1 / (1 + np.exp(-x))).astype(dtype)
    y = RNG.uniform(0, 1, (8, 5)).astype(dtype)
    w = RNG.uniform(0.5, 2, 5)
    pw = RNG.uniform(0.5, 3, 5)
    s = RNG.uniform(0, 2, s_shape)
    X = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    Y = torch.tensor(np.asarray(y, np.float64))
    if logits:
        per = torch.nn.functional.binary_cross_entropy_with_logits(
            X, Y, weight=torch.tensor(w), pos_weight=torch.tensor(pw), reduction="none")
    else:
        per = torch.nn.functional.binary_cross_entropy(X, Y, weight=torch.tensor(w),
                                                       reduction="none")
    S = torch.tensor(np.broadcast_to(s, (8, 5)).copy())
    ref = {"none": S * per, "sum": (S * per).sum(), "mean": (S * per).sum() / S.sum()}[
        reduction]
    go = RNG.normal(size=(8, 5)) if reduction == "none" else 0.8
    ref.backward(torch.tensor(np.broadcast_to(go, ref.shape).copy()))
    if logits:
        loss, grad = fastce.binary_cross_entropy_with_logits_and_grad(
            x, y, w, reduction=reduction, pos_weight=pw, grad_output=go, sample_weight=s)
        fwd = fastce.binary_cross_entropy_with_logits(x, y, w, reduction=reduction,
                                                      pos_weight=pw, sample_weight=s)
    else:
        loss, grad = fastce.binary_cross_entropy_and_grad(
            x, y, w, reduction=reduction, grad_output=go, sample_weight=s)
        fwd = fastce.binary_cross_entropy(x, y, w, reduction=reduction, sample_weight=s)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else _tol(dtype)
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref.detach().numpy(), **tol)
    np.testing.assert_allclose(grad, X.grad.numpy(), **tol)
    np.testing.assert_allclose(np.asarray(fwd, np.float64), ref.detach().numpy(), **tol)


def test_binary_numpy_reference():
    x = RNG.normal(size=(6, 3))
    y = RNG.uniform(0, 1, (6, 3))
    s = RNG.uniform(0, 2, (6, 1))
    per = np.logaddexp(0, x) - y * x
    ref = (s * per).sum() / np.broadcast_to(s, x.shape).sum()
    np.testing.assert_allclose(fastce.binary_cross_entropy_with_logits(x, y, sample_weight=s),
                               ref, rtol=1e-12)


# ---------------------------------------------------------- loss objects --

def test_loss_objects_take_sample_weight():
    x = RNG.normal(size=(10, 4))
    t = RNG.integers(0, 4, 10)
    s = RNG.uniform(0, 2, 10)
    for obj, fn in ((fastce.CrossEntropyLoss(label_smoothing=0.1),
                     lambda: fastce.cross_entropy_and_grad(x, t, label_smoothing=0.1,
                                                           sample_weight=s)),
                    (fastce.NLLLoss(),
                     lambda: fastce.nll_loss_and_grad(x, t, sample_weight=s))):
        ref = fn()
        assert obj(x, t, sample_weight=s) == ref[0]
        loss, grad = obj.loss_and_grad(x, t, sample_weight=s)
        assert loss == ref[0] and np.array_equal(grad, ref[1])
    y = RNG.uniform(0, 1, (10, 4))
    p = 1 / (1 + np.exp(-x))
    sb = s[:, None]
    ref = fastce.binary_cross_entropy_with_logits_and_grad(x, y, sample_weight=sb)
    obj = fastce.BCEWithLogitsLoss()
    assert obj(x, y, sample_weight=sb) == ref[0]
    assert np.array_equal(obj.loss_and_grad(x, y, sample_weight=sb)[1], ref[1])
    ref = fastce.binary_cross_entropy_and_grad(p, y, sample_weight=sb)
    obj = fastce.BCELoss()
    assert obj(p, y, sample_weight=sb) == ref[0]
    assert np.array_equal(obj.loss_and_grad(p, y, sample_weight=sb)[1], ref[1])


# ---------------------------------------------------------------- errors --

@pytest.mark.parametrize("bad,match", [
    ([1.0, -0.5, 1.0, 1.0], r"finite and >= 0; found -0.5 at position \(1,\)"),
    ([1.0, 1.0, np.nan, 1.0], r"finite and >= 0; found nan at position \(2,\)"),
    ([np.inf, 1.0, 1.0, 1.0], r"finite and >= 0; found inf at position \(0,\)"),
    (np.ones(3), r"shape \(3,\) cannot be broadcast to the target's shape \(4,\)"),
    (np.ones((4, 3)), r"shape \(4, 3\) cannot be broadcast"),
])
def test_class_errors_write_nothing(bad, match):
    x = RNG.normal(size=(4, 3))
    t = np.array([0, 1, 2, 1])
    out = np.zeros_like(x)
    with pytest.raises(ValueError, match=match):
        fastce.cross_entropy_and_grad(x, t, sample_weight=bad, out=out)
    assert not out.any()
    with pytest.raises(ValueError, match=match):
        fastce.cross_entropy(x, t, sample_weight=bad)
    with pytest.raises(ValueError, match=match):
        fastce.nll_loss(x, t, sample_weight=bad)


def test_type_and_binary_errors():
    x = RNG.normal(size=(4, 3))
    with pytest.raises(TypeError, match="sample_weight must be real numbers"):
        fastce.cross_entropy(x, [0, 1, 2, 1], sample_weight=np.array(["a"] * 4))
    y = RNG.uniform(0, 1, (4, 3))
    out = np.zeros_like(x)
    with pytest.raises(ValueError, match=r"cannot be broadcast to the input's shape \(4, 3\)"):
        fastce.binary_cross_entropy_with_logits_and_grad(x, y, sample_weight=np.ones(4),
                                                         out=out)
    with pytest.raises(ValueError, match="finite and >= 0"):
        fastce.binary_cross_entropy_with_logits_and_grad(x, y, sample_weight=-np.ones(3),
                                                         out=out)
    assert not out.any()
    with pytest.raises(ValueError, match="out shares memory with sample_weight|share"):
        s = np.ones((4, 3))
        fastce.binary_cross_entropy_with_logits_and_grad(x, y, sample_weight=s, out=s)
