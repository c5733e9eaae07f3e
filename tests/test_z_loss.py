"""z_loss: PaLM's auxiliary loss ``z_loss * lse**2`` per position, added to
cross_entropy (and its gradient) through the kernels' gradient coefficient.

With class-index targets the term is weighted by the target's class weight
and dropped at ignored positions (so "mean" divides it by the same sum of
target weights as the cross-entropy term); with probability targets it is
unweighted and "mean" divides by the number of positions.  Checked against a
float64 NumPy reference (always), torch autograd through F.cross_entropy +
the composed term (when torch is installed), and finite differences.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastce

RNG = np.random.default_rng(20261202)

# (input shape, class axis): rows of every kernel path (short rows, kept
# exponentials, long rows, one huge split row), (N, C, d) tiles, unbatched
SHAPES = [((7, 5), 1), ((33, 40), 1), ((4, 3000), 1), ((2, 6, 9), 1), ((3, 4, 5), -1),
          ((6,), 0), ((1, 70000), 1)]


def _np_reference(x, target, weight, ignore_index, label_smoothing, z_loss, reduction,
                  index):
    """The z-loss formula in float64 NumPy, any class axis (moved last)."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), AX[0], -1)
    n_cls = x.shape[-1]
    m = x.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]
    logp = x - lse[..., None]
    w = np.ones(n_cls) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    if index:
        t = np.asarray(target)
        valid = t != ignore_index
        tc = np.where(valid, t, 0)
        wt = np.where(valid, w[tc], 0.0)
        nll = -np.take_along_axis(logp, tc[..., None], -1)[..., 0]
        smooth = -(logp * w).sum(axis=-1)
        per = (1 - eps) * wt * nll + np.where(valid, eps / n_cls * smooth, 0.0)
        per = per + z_loss * wt * lse ** 2
        denominator = wt.sum()
    else:
        y = np.moveaxis(np.asarray(target, dtype=np.float64), AX[0], -1)
        y = (1 - eps) * y + eps / n_cls
        per = -(w * y * logp).sum(axis=-1) + z_loss * lse ** 2
        denominator = per.size
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.sum() / denominator


AX = [1]   # the class axis of the case in flight (set by _case)


def _case(shape, axis, dtype, index, weighted, ignore, smoothing):
    AX[0] = axis % len(shape)
    n_cls = shape[AX[0]]
    x = (RNG.normal(size=shape) * 3).astype(dtype)
    batch = shape[:AX[0]] + shape[AX[0] + 1:]
    if index:
        target = RNG.integers(0, n_cls, size=batch)
        if ignore and target.size > 1:
            target.reshape(-1)[::3] = -100
    else:
        target = RNG.dirichlet(np.ones(n_cls), size=batch).astype(dtype)
        target = np.moveaxis(target, -1, AX[0])
    weight = RNG.uniform(0.2, 2.0, n_cls).astype(dtype) if weighted else None
    return x, target, weight, dict(weight=weight, label_smoothing=smoothing, axis=axis)


CASES = [(shape, axis, dtype, index, weighted, ignore, smoothing)
         for shape, axis in SHAPES
         for dtype in (np.float64, np.float32)
         for index in (True, False)
         for weighted, ignore, smoothing in ((False, False, 0.0), (True, True, 0.1))
         if index or not ignore]


def _id(case):
    shape, axis, dtype, index, weighted, ignore, smoothing = case
    return (f"{'x'.join(map(str, shape))}-ax{axis}-{np.dtype(dtype).name}-"
            f"{'index' if index else 'prob'}{'-w' if weighted else ''}"
            f"{'-ign' if ignore else ''}-ls{smoothing}")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_z_loss_matches_the_numpy_reference(case, reduction):
    shape, axis, dtype, index, weighted, ignore, smoothing = case
    x, target, weight, kw = _case(*case)
    z = 3e-3
    got = fastce.cross_entropy(x, target, reduction=reduction, z_loss=z, **kw)
    want = _np_reference(x, target, weight, -100, smoothing, z, reduction, index)
    rtol = 2e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=rtol,
                               atol=rtol)
    # the term is really there: without it the loss is smaller
    plain = fastce.cross_entropy(x, target, reduction="sum", **kw)
    assert float(fastce.cross_entropy(x, target, reduction="sum", z_loss=z, **kw)) > plain


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_z_loss_and_its_gradient_match_torch_autograd(case, reduction):
    torch = pytest.importorskip("torch")
    shape, axis, dtype, index, weighted, ignore, smoothing = case
    x, target, weight, kw = _case(*case)
    z = 3e-3
    batch = np.moveaxis(x, AX[0], -1).shape[:-1]
    grad_output = RNG.uniform(0.5, 2.0, batch) if reduction == "none" else 1.7
    loss, grad = fastce.cross_entropy_and_grad(x, target, reduction=reduction, z_loss=z,
                                               grad_output=grad_output, **kw)

    xt = torch.tensor(x, requires_grad=True)
    wt = None if weight is None else torch.tensor(weight)
    tt = torch.tensor(target)
    x_cls = xt if x.ndim == 1 else torch.movedim(xt, AX[0], 1)
    t_cls = tt if (index or x.ndim == 1) else torch.movedim(tt, AX[0], 1)
    ce = torch.nn.functional.cross_entropy(x_cls, t_cls, weight=wt, reduction="none",
                                           label_smoothing=smoothing)
    lse = torch.logsumexp(xt, dim=AX[0])
    if index:
        valid = tt != -100
        w_t = (torch.ones(shape[AX[0]], dtype=xt.dtype) if wt is None else wt)[
            torch.where(valid, tt, 0)] * valid
        per = ce + z * w_t * lse ** 2
        total = per.sum() / w_t.sum() if reduction == "mean" else per.sum()
    else:
        per = ce + z * lse ** 2
        total = per.mean() if reduction == "mean" else per.sum()
    if reduction == "none":
        want_loss = per
        per.backward(torch.tensor(grad_output, dtype=xt.dtype))
    else:
        want_loss = total
        total.backward(torch.tensor(grad_output, dtype=xt.dtype))
    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-12)
    np.testing.assert_allclose(np.asarray(loss, dtype=np.float64),
                               want_loss.detach().numpy().astype(np.float64),
                               rtol=rtol, atol=atol)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("index", [True, False])
@pytest.mark.parametrize("shape,axis", [((3, 5), 1), ((2, 4, 3), 1), ((2, 40), 1)])
def test_z_loss_gradient_matches_finite_differences(shape, axis, index):
    x, target, weight, kw = _case(shape, axis, np.float64, index, True, index, 0.1)
    z = 0.05
    _, grad = fastce.cross_entropy_and_grad(x, target, z_loss=z, **kw)
    h = 1e-6
    numeric = np.empty_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (float(fastce.cross_entropy(up, target, z_loss=z, **kw))
                      - float(fastce.cross_entropy(down, target, z_loss=z, **kw))) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("index", [True, False])
def test_zero_z_loss_keeps_every_bit(index):
    x, target, weight, kw = _case((257, 10), 1, np.float32, index, True, index, 0.1)
    for fn in (fastce.cross_entropy, fastce.cross_entropy_and_grad):
        a = fn(x, target, reduction="none", **kw)
        b = fn(x, target, reduction="none", z_loss=0.0, **kw)
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            assert u.tobytes() == v.tobytes()


@pytest.mark.parametrize("index", [True, False])
def test_z_loss_results_are_bitwise_identical_for_any_thread_count(index):
    x, target, weight, kw = _case((4096, 33), 1, np.float32, index, True, index, 0.1)
    one = fastce.cross_entropy_and_grad(x, target, z_loss=1e-3, n_threads=1, **kw)
    two = fastce.cross_entropy_and_grad(x, target, z_loss=1e-3, n_threads=2, **kw)
    assert one[0].tobytes() == two[0].tobytes()
    assert one[1].tobytes() == two[1].tobytes()


def test_z_loss_at_ignored_positions_contributes_nothing():
    x = RNG.normal(size=(4, 3)) * 50        # large lse: a stray term would show
    t = np.array([0, -100, 2, -100])
    with_z = fastce.cross_entropy_and_grad(x, t, reduction="none", z_loss=0.5)
    assert with_z[0][1] == 0 and with_z[0][3] == 0
    assert not with_z[1][1].any() and not with_z[1][3].any()


@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf"), "a lot", None])
def test_bad_z_loss_raises_value_error_before_anything_is_written(bad):
    x = RNG.normal(size=(3, 4))
    before = x.copy()
    with pytest.raises(ValueError, match="z_loss"):
        fastce.cross_entropy_and_grad(x, [0, 1, 2], z_loss=bad, out=x)
    assert x.tobytes() == before.tobytes()
    with pytest.raises(ValueError, match="z_loss"):
        fastce.CrossEntropyLoss(z_loss=bad)


def test_loss_object_applies_z_loss_and_pickles_it():
    x, target, weight, kw = _case((9, 6), 1, np.float64, True, True, True, 0.0)
    loss_fn = fastce.CrossEntropyLoss(weight=weight, z_loss=0.01)
    assert loss_fn(x, target) == fastce.cross_entropy(x, target, weight=weight, z_loss=0.01)
    l1, g1 = loss_fn.loss_and_grad(x, target)
    l2, g2 = fastce.cross_entropy_and_grad(x, target, weight=weight, z_loss=0.01)
    assert l1 == l2 and g1.tobytes() == g2.tobytes()
    clone = pickle.loads(pickle.dumps(loss_fn))
    assert clone == loss_fn and clone.z_loss == 0.01
    assert "z_loss=0.01" in repr(loss_fn)
