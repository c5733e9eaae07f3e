"""softcap: Gemma 2's logit soft-capping ``s * tanh(z / s)`` before
cross_entropy (z-loss included), with the gradient chained through the cap.

Checked against torch autograd through ``s * torch.tanh(z / s)`` +
F.cross_entropy (+ the composed z-loss term), against fastce on the capped
logits (bit for bit for the loss: the same NumPy operations cap them), against
finite differences, and through every error path.
"""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import fastce

RNG = np.random.default_rng(7)

# (input shape, class axis): short rows, long rows, (N, C, d), last axis, unbatched
SHAPES = [((9, 5), 1), ((5, 3000), 1), ((3, 7, 4), 1), ((4, 3, 6), -1), ((8,), 0)]


def _case(shape, axis, dtype, index, *, weighted=False, ignore=False):
    ax = axis % len(shape)
    n_cls = shape[ax]
    x = (RNG.normal(size=shape) * 8).astype(dtype)      # well past the cap
    batch = shape[:ax] + shape[ax + 1:]
    if index:
        t = RNG.integers(0, n_cls, size=batch)
        if ignore and t.size > 1:
            t.reshape(-1)[::3] = -100
    else:
        t = np.moveaxis(RNG.dirichlet(np.ones(n_cls), size=batch), -1, ax).astype(dtype)
    w = RNG.uniform(0.2, 2.0, n_cls).astype(dtype) if weighted else None
    return x, t, w, ax


def _torch_reference(x, t, w, ax, *, cap, reduction, eps, z, go):
    """(loss, grad) from float64 torch autograd."""
    torch = pytest.importorskip("torch")
    X = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    Z = cap * torch.tanh(X / cap)
    index = np.asarray(t).dtype.kind in "iu"
    T = torch.tensor(t) if index else torch.tensor(np.asarray(t, np.float64))
    Wt = None if w is None else torch.tensor(np.asarray(w, np.float64))
    Zc = torch.movedim(Z, ax, 1) if Z.ndim > 1 else Z
    Tc = T if index or T.ndim == 1 else torch.movedim(T, ax, 1)
    loss = torch.nn.functional.cross_entropy(Zc, Tc, weight=Wt, reduction=reduction,
                                             label_smoothing=eps)
    if z:
        lse2 = torch.logsumexp(Z, dim=ax) ** 2
        if index:
            valid = T != -100
            wv = (Wt[torch.where(valid, T, 0)] if Wt is not None
                  else torch.ones_like(lse2)) * valid
            zt, den = z * wv * lse2, wv.sum()
        else:
            zt, den = z * lse2, lse2.new_tensor(float(lse2.numel()))
        loss = loss + {"none": zt, "sum": zt.sum(), "mean": zt.sum() / den}[reduction]
    g = torch.tensor(np.broadcast_to(go, loss.shape).copy()) if go is not None \
        else torch.ones_like(loss)
    loss.backward(g)
    return loss.detach().numpy(), X.grad.numpy()


@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", ["plain", "all"])
def test_against_torch(shape, axis, dtype, index, reduction, options):
    full = options == "all"
    x, t, w, ax = _case(shape, axis, dtype, index, weighted=full, ignore=full)
    cap, eps, z = 3.0, (0.1 if full else 0.0), (1e-3 if full else 0.0)
    batch = shape[:ax] + shape[ax + 1:]
    go = RNG.normal(size=batch) if reduction == "none" else 0.7
    ref_loss, ref_grad = _torch_reference(x, t, w, ax, cap=cap, reduction=reduction,
                                          eps=eps, z=z, go=go)
    kw = dict(weight=w, reduction=reduction, label_smoothing=eps, axis=axis, z_loss=z,
              softcap=cap)
    loss, grad = fastce.cross_entropy_and_grad(x, t, grad_output=go, **kw)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11,
                                                                       atol=1e-12)
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref_loss, **tol)
    np.testing.assert_allclose(grad, ref_grad, **tol)
    assert grad.dtype == dtype and grad.shape == x.shape
    fwd = fastce.cross_entropy(x, t, **kw)
    assert np.array_equal(fwd, loss)


@pytest.mark.parametrize("index", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_cross_entropy_of_the_capped_logits(index, dtype):
    x, t, w, ax = _case((17, 40), 1, dtype, index, weighted=True, ignore=True)
    cap = dtype(2.5)
    capped = np.tanh(x / cap) * cap
    kw = dict(weight=w, label_smoothing=0.05, z_loss=1e-3)
    for reduction in ("mean", "sum", "none"):
        a = fastce.cross_entropy(x, t, reduction=reduction, softcap=2.5, **kw)
        b = fastce.cross_entropy(capped, t, reduction=reduction, **kw)
        assert np.array_equal(a, b), reduction
        la, ga = fastce.cross_entropy_and_grad(x, t, reduction=reduction, softcap=2.5, **kw)
        lb, gb = fastce.cross_entropy_and_grad(capped, t, reduction=reduction, **kw)
        assert np.array_equal(la, lb)
        np.testing.assert_array_equal(ga, gb * (1 - (capped / cap) ** 2))


@pytest.mark.parametrize("index", [True, False])
def test_finite_differences(index):
    x, t, w, ax = _case((4, 6), 1, np.float64, index, weighted=True, ignore=index)
    kw = dict(weight=w, label_smoothing=0.1, z_loss=0.02, softcap=1.3)
    _, grad = fastce.cross_entropy_and_grad(x, t, **kw)
    h = 1e-6
    num = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = (fastce.cross_entropy(xp, t, **kw) - fastce.cross_entropy(xm, t, **kw)) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


def test_in_place_and_input_untouched():
    x, t, w, _ = _case((6, 9), 1, np.float64, True, weighted=True)
    keep = x.copy()
    loss, grad = fastce.cross_entropy_and_grad(x, t, weight=w, softcap=4.0)
    assert np.array_equal(x, keep)           # the cap went to a temporary
    loss2, grad2 = fastce.cross_entropy_and_grad(x, t, weight=w, softcap=4.0, out=x)
    assert grad2 is x and loss2 == loss
    np.testing.assert_array_equal(grad2, grad)


def test_float16_and_threads():
    x, t, _, _ = _case((300, 70), 1, np.float32, True)
    x16 = x.astype(np.float16)
    loss, grad = fastce.cross_entropy_and_grad(x16, t, softcap=5.0)
    assert loss.dtype == np.float16 and grad.dtype == np.float16
    ref_loss, ref_grad = fastce.cross_entropy_and_grad(x16.astype(np.float32), t,
                                                       softcap=5.0)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-3)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-2, atol=1e-5)
    one = fastce.cross_entropy_and_grad(x, t, softcap=5.0, n_threads=1)
    two = fastce.cross_entropy_and_grad(x, t, softcap=5.0, n_threads=2)
    assert one[0] == two[0] and np.array_equal(one[1], two[1])


def test_large_cap_is_almost_no_cap():
    x, t, _, _ = _case((5, 7), 1, np.float64, True)
    np.testing.assert_allclose(fastce.cross_entropy(x, t, softcap=1e8),
                               fastce.cross_entropy(x, t), rtol=1e-12)


def test_loss_object():
    fn = fastce.CrossEntropyLoss(softcap=2.0, z_loss=1e-3)
    assert fn.softcap == 2.0 and "softcap=2.0" in repr(fn)
    assert pickle.loads(pickle.dumps(fn)) == fn
    assert fn != fastce.CrossEntropyLoss(z_loss=1e-3)
    x, t, _, _ = _case((5, 7), 1, np.float64, True)
    assert fn(x, t) == fastce.cross_entropy(x, t, softcap=2.0, z_loss=1e-3)
    loss, grad = fn.loss_and_grad(x, t)
    ref = fastce.cross_entropy_and_grad(x, t, softcap=2.0, z_loss=1e-3)
    assert loss == ref[0] and np.array_equal(grad, ref[1])
    assert fastce.CrossEntropyLoss().softcap is None


@pytest.mark.parametrize("bad", [0, 0.0, -2.0, math.inf, -math.inf, math.nan, "cap",
                                 [1.0, 2.0]])
def test_bad_softcap(bad):
    x, t, _, _ = _case((5, 7), 1, np.float64, True)
    with pytest.raises(ValueError, match="softcap"):
        fastce.cross_entropy(x, t, softcap=bad)
    out = np.zeros_like(x)
    with pytest.raises(ValueError, match="softcap"):
        fastce.cross_entropy_and_grad(x, t, softcap=bad, out=out)
    assert not out.any()                     # nothing written before the error
    with pytest.raises(ValueError, match="softcap"):
        fastce.CrossEntropyLoss(softcap=bad)


def test_nll_has_no_softcap():
    with pytest.raises(TypeError):
        fastce.nll_loss(np.zeros((2, 3)), [0, 1], softcap=1.0)  # type: ignore[call-arg]
