"""fastce.focal_loss / focal_loss_and_grad / FocalLoss: the softmax focal
loss -alpha_y w_y (1 - p_y)^gamma log p_y, run inside the cross-entropy
kernels.

Against torch autograd through the formula composed from log_softmax (there
is no softmax focal loss in torch or torchvision), against cross_entropy at
gamma = 0, against finite differences, at p_y -> 1 for gamma < 1, and through
the error paths.
"""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import fastce

RNG = np.random.default_rng(1717)

# rows of every kernel path: short rows, kept exponentials, long rows, a
# split huge row; (N, C, d) tiles; the class axis last; unbatched
SHAPES = [((9, 4), 1), ((40, 30), 1), ((3, 3000), 1), ((1, 70000), 1), ((5, 6, 7), 1),
          ((4, 3, 5), -1), ((6,), 0)]


def _case(shape, axis, dtype, *, ignore=True):
    ax = axis % len(shape)
    n_cls = shape[ax]
    x = (RNG.normal(size=shape) * 3).astype(dtype)
    batch = shape[:ax] + shape[ax + 1:]
    t = RNG.integers(0, n_cls, size=batch)
    if ignore and t.size > 2:
        t.reshape(-1)[::4] = -100
    return x, t, ax, n_cls


def _torch_focal(x, t, ax, *, gamma, alpha, weight, reduction, go, s=None):
    torch = pytest.importorskip("torch")
    X = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    lp = torch.log_softmax(X, dim=ax)
    T = torch.tensor(t)
    valid = T != -100
    tc = torch.where(valid, T, 0)
    lpt = torch.gather(torch.movedim(lp, ax, -1), -1, tc[..., None])[..., 0]
    n_cls = x.shape[ax]
    A = torch.ones(n_cls, dtype=torch.float64) if alpha is None else torch.tensor(alpha)
    W = torch.ones(n_cls, dtype=torch.float64) if weight is None else torch.tensor(weight)
    S = torch.ones(T.shape, dtype=torch.float64) if s is None else torch.tensor(s)
    per = -(A[tc] * W[tc] * (1 - lpt.exp()) ** gamma * lpt) * valid * S
    den = (W[tc] * valid * S).sum()
    loss = {"none": per, "sum": per.sum(), "mean": per.sum() / den}[reduction]
    g = (torch.tensor(np.broadcast_to(go, loss.shape).copy()) if go is not None
         else torch.ones_like(loss))
    loss.backward(g)
    return loss.detach().numpy(), X.grad.numpy()


@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_against_torch(shape, axis, dtype, gamma, reduction):
    x, t, ax, n_cls = _case(shape, axis, dtype)
    alpha = RNG.uniform(0.1, 1.0, n_cls)
    weight = RNG.uniform(0.5, 2.0, n_cls)
    batch = t.shape
    go = RNG.normal(size=batch) if reduction == "none" else 0.9
    ref_loss, ref_grad = _torch_focal(x, t, ax, gamma=gamma, alpha=alpha, weight=weight,
                                      reduction=reduction, go=go)
    kw = dict(gamma=gamma, alpha=alpha, weight=weight, reduction=reduction, axis=axis)
    loss, grad = fastce.focal_loss_and_grad(x, t, grad_output=go, **kw)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-10,
                                                                       atol=1e-12)
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref_loss, **tol)
    np.testing.assert_allclose(grad, ref_grad, **tol)
    assert grad.dtype == dtype and np.asarray(loss).dtype == dtype
    assert np.array_equal(fastce.focal_loss(x, t, **kw), loss)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sample_weight_against_torch(reduction):
    x, t, ax, n_cls = _case((30, 5), 1, np.float64)
    s = RNG.uniform(0, 2, 30)
    go = RNG.normal(size=30) if reduction == "none" else 1.0
    ref = _torch_focal(x, t, ax, gamma=1.5, alpha=None, weight=None, reduction=reduction,
                       go=go, s=s)
    got = fastce.focal_loss_and_grad(x, t, gamma=1.5, reduction=reduction,
                                     sample_weight=s, grad_output=go)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gamma_zero_is_cross_entropy(shape, axis, dtype):
    x, t, _, n_cls = _case(shape, axis, dtype)
    w = RNG.uniform(0.5, 2.0, n_cls).astype(dtype)
    for reduction in ("mean", "sum", "none"):
        a, ga = fastce.focal_loss_and_grad(x, t, gamma=0.0, weight=w, reduction=reduction,
                                           axis=axis)
        b, gb = fastce.cross_entropy_and_grad(x, t, w, reduction=reduction, axis=axis)
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=1e-6 if dtype == np.float32 else 1e-13)
        np.testing.assert_array_equal(ga, gb)     # the same coefficients, bit for bit


def test_finite_differences():
    x, t, _, n_cls = _case((5, 4), 1, np.float64)
    kw = dict(gamma=1.7, alpha=RNG.uniform(0.2, 1, n_cls), weight=RNG.uniform(0.5, 2, n_cls))
    _, grad = fastce.focal_loss_and_grad(x, t, **kw)
    h = 1e-6
    num = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = (fastce.focal_loss(xp, t, **kw) - fastce.focal_loss(xm, t, **kw)) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("gamma", [0.25, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_confident_rows_are_finite(gamma, dtype):
    """p_y -> 1: 1 - p_y underflows relative to 1, (1 - p_y)^(gamma - 1)
    blows up for gamma < 1; neither may give NaN or inf."""
    margins = np.array([5.0, 20.0, 40.0, 80.0, 200.0, 800.0])
    x = np.zeros((margins.size, 3), dtype)
    x[:, 1] = margins
    t = np.ones(margins.size, dtype=np.int64)
    loss, grad = fastce.focal_loss_and_grad(x, t, gamma=gamma, reduction="none")
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    assert (np.diff(np.asarray(loss, np.float64)) <= 0).all()
    # the exact value: -log p = log(1 + 2 e^-m).  The kernels' -log p is
    # log-sum-exp minus the target logit, as cross_entropy's, so its absolute
    # resolution is the dtype's epsilon (0 once 2 e^-m is below it)
    u = np.log1p(2 * np.exp(-margins))
    q = -np.expm1(-u)
    ref = q ** gamma * u
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref, rtol=1e-5,
                               atol=2 * np.finfo(dtype).eps)


def test_in_place_threads_and_all_ignored():
    x, t, _, _ = _case((600, 50), 1, np.float32)
    one = fastce.focal_loss_and_grad(x, t, n_threads=1)
    two = fastce.focal_loss_and_grad(x, t, n_threads=2)
    assert one[0] == two[0] and np.array_equal(one[1], two[1])
    xc = x.copy()
    loss, grad = fastce.focal_loss_and_grad(xc, t, out=xc)
    assert grad is xc and loss == one[0] and np.array_equal(grad, one[1])
    loss, grad = fastce.focal_loss_and_grad(x, np.full(600, -100))
    ce_loss, ce_grad = fastce.cross_entropy_and_grad(x, np.full(600, -100))
    assert math.isnan(loss) and math.isnan(ce_loss)    # a mean over nothing, as CE
    assert not grad.any() and not ce_grad.any()        # ignored: no gradient
    assert fastce.focal_loss(x, np.full(600, -100), reduction="sum") == 0


def test_loss_object():
    fn = fastce.FocalLoss(gamma=1.0, alpha=[1.0, 2.0, 0.5], ignore_index=2)
    assert pickle.loads(pickle.dumps(fn)) == fn and fn != fastce.FocalLoss(gamma=1.0)
    assert "gamma=1.0" in repr(fn)
    x = RNG.normal(size=(8, 3))
    t = RNG.integers(0, 3, 8)
    s = RNG.uniform(0, 1, 8)
    ref = fastce.focal_loss_and_grad(x, t, 1.0, [1.0, 2.0, 0.5], ignore_index=2,
                                     sample_weight=s)
    assert fn(x, t, sample_weight=s) == ref[0]
    loss, grad = fn.loss_and_grad(x, t, sample_weight=s)
    assert loss == ref[0] and np.array_equal(grad, ref[1])


def test_errors_write_nothing():
    x = RNG.normal(size=(4, 3))
    t = np.array([0, 1, 2, 1])
    out = np.zeros_like(x)
    for bad in (-1.0, math.inf, math.nan, "two"):
        with pytest.raises(ValueError, match="gamma"):
            fastce.focal_loss_and_grad(x, t, gamma=bad, out=out)
        with pytest.raises(ValueError, match="gamma"):
            fastce.FocalLoss(gamma=bad)
    with pytest.raises(ValueError, match=r"alpha should be a 1D array of shape \(3,\)"):
        fastce.focal_loss_and_grad(x, t, alpha=[1.0, 2.0], out=out)
    with pytest.raises(ValueError, match="alpha must be finite"):
        fastce.focal_loss(x, t, alpha=[1.0, np.inf, 1.0])
    with pytest.raises(TypeError, match="alpha must be a real numeric array"):
        fastce.focal_loss(x, t, alpha=["a", "b", "c"])
    with pytest.raises(TypeError, match="class-index targets"):
        fastce.focal_loss(x, np.full((4, 3), 1 / 3))
    with pytest.raises(IndexError):
        fastce.focal_loss_and_grad(x, np.array([0, 1, 3, 1]), out=out)
    assert not out.any()


# ------------------------------------------------------ sigmoid focal --

def _torchvision_sigmoid_focal():
    """torchvision.ops.sigmoid_focal_loss, or None where torchvision is not
    installed or does not load beside this torch (a wheel built for another
    torch fails at import with a RuntimeError)."""
    try:
        from torchvision.ops import sigmoid_focal_loss
    except Exception:  # noqa: BLE001 - any failure to load means: no oracle
        return None
    return sigmoid_focal_loss


def _torch_sigmoid_focal(torch, X, Y, alpha, gamma):
    """torchvision 2.x's formula, written out in torch (its documented
    semantics; torchvision's own function is checked too when it loads)."""
    p = torch.sigmoid(X)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(X, Y, reduction="none")
    p_t = p * Y + (1 - p) * (1 - Y)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * Y + (1 - alpha) * (1 - Y)) * loss
    return loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.5), (0.8, 0.0), (0.5, 3.0)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape", [(40, 3), (7,), (2, 3, 5), (1, 20000)])
def test_sigmoid_against_torch(dtype, alpha, gamma, reduction, shape):
    torch = pytest.importorskip("torch")
    x = (RNG.normal(size=shape) * 4).astype(dtype)
    y = RNG.uniform(0, 1, shape)
    y.reshape(-1)[::2] = np.round(y.reshape(-1)[::2])       # hard and soft targets
    y = y.astype(dtype)
    X = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    Y = torch.tensor(np.asarray(y, np.float64))
    per = _torch_sigmoid_focal(torch, X, Y, alpha, gamma)
    ref = {"none": per, "mean": per.mean(), "sum": per.sum()}[reduction]
    go = RNG.normal(size=shape) if reduction == "none" else 0.7
    ref.backward(torch.tensor(np.broadcast_to(go, ref.shape).copy()))
    loss, grad = fastce.sigmoid_focal_loss_and_grad(x, y, alpha, gamma, reduction,
                                                    grad_output=go)
    tol = dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11,
                                                                       atol=1e-13)
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref.detach().numpy(), **tol)
    np.testing.assert_allclose(grad, X.grad.numpy(), **tol)
    assert np.array_equal(fastce.sigmoid_focal_loss(x, y, alpha, gamma, reduction), loss)
    tv = _torchvision_sigmoid_focal()
    if tv is not None:
        np.testing.assert_allclose(
            np.asarray(loss, np.float64),
            tv(X.detach(), Y, alpha=alpha, gamma=gamma, reduction=reduction).numpy(), **tol)


def test_sigmoid_gamma_zero_is_bce_and_weights():
    x = RNG.normal(size=(20, 4)) * 3
    y = RNG.uniform(0, 1, (20, 4))
    w = RNG.uniform(0.5, 2, 4)
    s = RNG.uniform(0, 2, (20, 1))
    a = fastce.sigmoid_focal_loss_and_grad(x, y, -1.0, 0.0, "mean", weight=w,
                                           sample_weight=s)
    b = fastce.binary_cross_entropy_with_logits_and_grad(x, y, w, sample_weight=s)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-15)


def test_sigmoid_finite_differences_and_limits():
    x = RNG.normal(size=(4, 3)) * 2
    y = RNG.uniform(0, 1, (4, 3))
    kw = dict(alpha=0.3, gamma=0.7, reduction="sum")
    _, grad = fastce.sigmoid_focal_loss_and_grad(x, y, **kw)
    h = 1e-6
    num = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = (fastce.sigmoid_focal_loss(xp, y, **kw)
                  - fastce.sigmoid_focal_loss(xm, y, **kw)) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)
    # confident and infinite logits: the limits, never NaN
    xe = np.array([40.0, -40.0, np.inf, -np.inf, 800.0])
    ye = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    for gamma in (0.3, 2.0):
        loss, g = fastce.sigmoid_focal_loss_and_grad(xe, ye, 0.25, gamma)
        assert np.isfinite(loss).all() and np.isfinite(g).all()
        assert (np.asarray(loss) < 1e-17).all() and (np.abs(g) < 1e-17).all()


def test_sigmoid_loss_object_threads_and_errors():
    fn = fastce.SigmoidFocalLoss(alpha=0.4, gamma=1.0, reduction="sum")
    assert pickle.loads(pickle.dumps(fn)) == fn and "alpha=0.4" in repr(fn)
    x = RNG.normal(size=(3000, 40)).astype(np.float32)
    y = (RNG.uniform(size=(3000, 40)) < 0.1).astype(np.float32)
    ref = fastce.sigmoid_focal_loss_and_grad(x, y, 0.4, 1.0, "sum", n_threads=1)
    two = fn.loss_and_grad(x, y, n_threads=2)
    assert ref[0] == two[0] and np.array_equal(ref[1], two[1])
    assert fn(x, y, n_threads=2) == ref[0]
    out = np.zeros_like(x)
    for bad in (dict(gamma=-1.0), dict(gamma=math.nan), dict(alpha=math.inf),
                dict(alpha="a")):
        with pytest.raises(ValueError, match="alpha|gamma"):
            fastce.sigmoid_focal_loss_and_grad(x, y, out=out, **bad)
        with pytest.raises(ValueError, match="alpha|gamma"):
            fastce.SigmoidFocalLoss(**bad)
    with pytest.raises(ValueError, match="Target size"):
        fastce.sigmoid_focal_loss_and_grad(x, y[:10], out=out)
    assert not out.any()
