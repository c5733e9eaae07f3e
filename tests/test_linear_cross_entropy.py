"""fastce.linear: the chunked linear + cross-entropy output layer.

Against torch 2.13's ``torch.nn.functional.linear_cross_entropy`` (values)
and autograd through ``F.linear`` + ``F.cross_entropy`` (+ the z-loss term
composed by hand) for the gradients; without torch, against finite
differences, against fastce.cross_entropy_and_grad on the materialised
logits, across chunk sizes, and through every error path.
"""
from __future__ import annotations

import doctest
import math
import pickle
import zlib

import numpy as np
import pytest

import fastce
from fastce import (
    LinearCrossEntropyLoss,
    cross_entropy,
    cross_entropy_and_grad,
    linear_cross_entropy,
    linear_cross_entropy_and_grad,
)
from fastce import linear as linear_module
from fastce.linear import default_chunk_size

from _helpers import peak_allocation

# float32: the oracle is float64 torch on the same (float32) data, so the
# difference is fastce's own float32 rounding (GEMMs over D=7 and, for the
# weight gradient, a sum over N=11 tokens): inside rtol 1e-5 / atol 1e-6.
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-10)}

N, D, V = 11, 7, 13


def _tol(dtype):
    return TOL[np.dtype(dtype).type]


def make_case(seed, dtype=np.float64, *, batch=(N,), d=D, v=V, prob=False,
              ignore=None, n_ignored=0, bias=True, weighted=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(batch + (d,)).astype(dtype)
    W = (rng.standard_normal((v, d)) / math.sqrt(d)).astype(dtype)
    b = rng.standard_normal(v).astype(dtype) if bias else None
    w = rng.uniform(0.5, 2.0, v) if weighted else None
    if prob:
        t = rng.uniform(size=batch + (v,))
        t = (t / t.sum(-1, keepdims=True)).astype(dtype)
    else:
        t = rng.integers(0, v, batch)
        if n_ignored:
            flat = t.reshape(-1)
            flat[rng.choice(flat.size, n_ignored, replace=False)] = (
                -100 if ignore is None else ignore)
    return x, W, b, t, w


# ------------------------------------------------------------ torch oracle --

def torch_reference(x, W, b, t, *, weight=None, reduction="mean", ignore_index=None,
                    label_smoothing=0.0, z_loss=0.0, softcap=None, grad_output=None):
    """(loss, grad_input, grad_weight, grad_bias) from float64 torch autograd
    through F.linear, the soft cap s * tanh(z / s), F.cross_entropy and
    z * w[t] * lse^2 (masked, normalised like the CE term; unweighted for
    probability targets)."""
    torch = pytest.importorskip("torch")
    Fn = torch.nn.functional
    batch = x.shape[:-1]
    X = torch.tensor(x.reshape(-1, x.shape[-1]), dtype=torch.float64, requires_grad=True)
    Wt = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    Bt = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
    prob = np.asarray(t).dtype.kind == "f"
    T = (torch.tensor(np.asarray(t).reshape(-1, W.shape[0]), dtype=torch.float64) if prob
         else torch.tensor(np.asarray(t).reshape(-1), dtype=torch.int64))
    wt = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    ii = -100 if ignore_index is None else ignore_index
    logits = Fn.linear(X, Wt, Bt)
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    loss = Fn.cross_entropy(logits, T, weight=wt, ignore_index=ii, reduction=reduction,
                            label_smoothing=label_smoothing)
    if z_loss:
        lse2 = torch.logsumexp(logits, 1) ** 2
        if prob:
            zt = z_loss * lse2
            den = lse2.new_tensor(float(T.shape[0]))
        else:
            valid = T != ii
            tc = torch.where(valid, T, torch.zeros_like(T))
            wv = (wt[tc] if wt is not None else torch.ones_like(lse2)) * valid
            zt = z_loss * wv * lse2
            den = wv.sum()
        loss = loss + {"none": zt, "sum": zt.sum(), "mean": zt.sum() / den}[reduction]
    if grad_output is None:
        go = torch.ones_like(loss)
    else:
        g = np.asarray(grad_output, dtype=np.float64)
        go = torch.tensor(np.broadcast_to(g.reshape(-1) if g.ndim else g,
                                          loss.shape).copy())
    loss.backward(go)
    out_loss = loss.detach().numpy()
    if reduction == "none":
        out_loss = out_loss.reshape(batch)
    return (out_loss, X.grad.numpy().reshape(x.shape), Wt.grad.numpy(),
            None if Bt is None else Bt.grad.numpy())


def torch_lce_value(x, W, b, t, **kw):
    """torch.nn.functional.linear_cross_entropy itself (float64, 1-D/2-D input)."""
    torch = pytest.importorskip("torch")
    prob = np.asarray(t).dtype.kind == "f"
    X = torch.tensor(x.reshape(-1, x.shape[-1]), dtype=torch.float64)
    T = (torch.tensor(np.asarray(t).reshape(-1, W.shape[0]), dtype=torch.float64) if prob
         else torch.tensor(np.asarray(t).reshape(-1), dtype=torch.int64))
    if "weight" in kw and kw["weight"] is not None:
        kw["weight"] = torch.tensor(kw["weight"], dtype=torch.float64)
    out = torch.nn.functional.linear_cross_entropy(
        X, torch.tensor(W, dtype=torch.float64), T,
        linear_bias=None if b is None else torch.tensor(b, dtype=torch.float64), **kw)
    out = out.numpy()
    return out.reshape(x.shape[:-1]) if kw.get("reduction") == "none" else out


def assert_grads(ours, ref, dtype, what=""):
    loss, gi, gw, gb = ours
    rloss, rgi, rgw, rgb = ref
    tol = _tol(dtype)
    np.testing.assert_allclose(np.asarray(loss, dtype=np.float64), rloss, **tol,
                               err_msg=f"loss {what}")
    np.testing.assert_allclose(gi, rgi, **tol, err_msg=f"grad_input {what}")
    np.testing.assert_allclose(gw, rgw, **tol, err_msg=f"grad_weight {what}")
    if rgb is None:
        assert gb is None
    else:
        np.testing.assert_allclose(gb, rgb, **tol, err_msg=f"grad_bias {what}")


CONFIGS = {
    "plain": dict(),
    "weight": dict(weighted=True),
    "ignore_default": dict(n_ignored=3),
    "ignore_custom": dict(n_ignored=4, ignore=5),
    "smoothing": dict(label_smoothing=0.2),
    "z_loss": dict(z_loss=1e-2),
    "softcap": dict(softcap=1.5),
    "all": dict(weighted=True, n_ignored=2, ignore=1, label_smoothing=0.1, z_loss=1e-3,
                softcap=2.0),
}
PROB_CONFIGS = {
    "plain": dict(),
    "weight": dict(weighted=True),
    "smoothing": dict(label_smoothing=0.2),
    "z_loss": dict(z_loss=1e-2),
    "softcap": dict(softcap=1.5),
    "all": dict(weighted=True, label_smoothing=0.1, z_loss=1e-3, softcap=2.0),
}


def _split(cfg):
    case_kw = {k: cfg[k] for k in ("weighted", "n_ignored", "ignore") if k in cfg}
    loss_kw = {k: cfg[k] for k in ("label_smoothing", "z_loss", "softcap") if k in cfg}
    return case_kw, loss_kw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("prob,config", [(False, c) for c in CONFIGS]
                         + [(True, c) for c in PROB_CONFIGS])
def test_against_torch(dtype, reduction, bias, prob, config):
    cfg = (PROB_CONFIGS if prob else CONFIGS)[config]
    case_kw, loss_kw = _split(cfg)
    seed = zlib.crc32(f"{config}-{prob}".encode()) % 1000
    x, W, b, t, w = make_case(seed, dtype, prob=prob, bias=bias, **case_kw)
    ii = case_kw.get("ignore")
    kw = dict(weight=w, reduction=reduction, ignore_index=ii, **loss_kw)
    go = None
    if reduction == "none":
        go = np.random.default_rng(1).standard_normal(N)
    elif reduction == "sum":
        go = 0.7
    ref = torch_reference(x, W, b, t, grad_output=go, **kw)
    ours = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=4,
                                         grad_output=go, **kw)
    assert ours[0].dtype == dtype and ours[1].dtype == dtype and ours[2].dtype == dtype
    assert ours[1].shape == x.shape and ours[2].shape == W.shape
    assert_grads(ours, ref, dtype, f"{config} {reduction}")
    fwd = linear_cross_entropy(x, W, t, linear_bias=b, chunk_size=4, **kw)
    np.testing.assert_allclose(np.asarray(fwd, np.float64), ref[0], **_tol(dtype))
    if not loss_kw.get("z_loss") and not loss_kw.get("softcap"):
        # torch's own fused function (no z-loss or soft cap there)
        tv = torch_lce_value(x, W, b, t, weight=w, reduction=reduction, ignore_index=ii,
                             label_smoothing=loss_kw.get("label_smoothing", 0.0))
        np.testing.assert_allclose(np.asarray(fwd, np.float64), tv, **_tol(dtype))


@pytest.mark.parametrize("chunk_size", [1, 3, 11, 64, None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunk_sizes_against_torch(chunk_size, dtype):
    x, W, b, t, w = make_case(3, dtype, n_ignored=2, weighted=True)
    kw = dict(weight=w, label_smoothing=0.05, z_loss=1e-3)
    ref = torch_reference(x, W, b, t, **kw)
    ours = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=chunk_size,
                                         **kw)
    assert_grads(ours, ref, dtype, f"chunk_size={chunk_size}")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("prob", [False, True])
def test_two_batch_dims_against_torch(reduction, prob):
    x, W, b, t, w = make_case(4, np.float64, batch=(3, 5), prob=prob,
                              n_ignored=0 if prob else 4)
    go = np.random.default_rng(2).standard_normal((3, 5)) if reduction == "none" else None
    ref = torch_reference(x, W, b, t, reduction=reduction, grad_output=go)
    ours = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, reduction=reduction,
                                         chunk_size=4, grad_output=go)
    if reduction == "none":
        assert ours[0].shape == (3, 5)
    assert ours[1].shape == (3, 5, D)
    assert_grads(ours, ref, np.float64)
    tv = torch_lce_value(x, W, b, t, reduction=reduction)
    np.testing.assert_allclose(linear_cross_entropy(x, W, t, linear_bias=b,
                                                    reduction=reduction), tv, rtol=1e-10)


def test_unbatched_against_torch():
    torch = pytest.importorskip("torch")
    x, W, b, t, _ = make_case(5, np.float64, batch=())
    ref = torch.nn.functional.linear_cross_entropy(
        torch.tensor(x), torch.tensor(W), torch.tensor(t), linear_bias=torch.tensor(b))
    loss, gi, gw, gb = linear_cross_entropy_and_grad(x, W, t, linear_bias=b)
    np.testing.assert_allclose(loss, ref.numpy(), rtol=1e-12)
    assert gi.shape == (D,) and gw.shape == W.shape
    lr = linear_cross_entropy(x, W, t, linear_bias=b, reduction="none")
    assert lr.shape == ()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_tokens_ignored(reduction, dtype):
    x, W, b, t, w = make_case(6, dtype, n_ignored=N, weighted=True)
    ref = torch_reference(x, W, b, t, weight=w, reduction=reduction)
    loss, gi, gw, gb = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, weight=w,
                                                     reduction=reduction, chunk_size=4)
    if reduction == "mean":
        assert np.isnan(loss) and np.isnan(ref[0])
    else:
        np.testing.assert_array_equal(loss, ref[0])
        np.testing.assert_array_equal(loss, 0)
    for g, r in zip((gi, gw, gb), ref[1:]):
        np.testing.assert_array_equal(g, 0)
        np.testing.assert_array_equal(r, 0)
    assert np.isnan(linear_cross_entropy(x, W, t, linear_bias=b))


def test_all_tokens_ignored_with_z_loss_no_torch():
    x, W, b, t, _ = make_case(6, np.float64, n_ignored=N)
    loss, gi, gw, gb = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, z_loss=0.1)
    assert np.isnan(loss)
    assert not gi.any() and not gw.any() and not gb.any()


def test_float16_computes_in_float32():
    x, W, b, t, _ = make_case(7, np.float32, n_ignored=2)
    x16, W16, b16 = x.astype(np.float16), W.astype(np.float16), b.astype(np.float16)
    loss, gi, gw, gb = linear_cross_entropy_and_grad(x16, W16, t, linear_bias=b16,
                                                     chunk_size=4)
    assert loss.dtype == gi.dtype == gw.dtype == gb.dtype == np.float16
    ref = linear_cross_entropy_and_grad(x16.astype(np.float32), W16.astype(np.float32), t,
                                        linear_bias=b16.astype(np.float32), chunk_size=4)
    for a, r in zip((loss, gi, gw, gb), ref):
        np.testing.assert_array_equal(a, np.asarray(r).astype(np.float16))
    assert linear_cross_entropy(x16, W16, t, linear_bias=b16).dtype == np.float16
    outs = (np.empty_like(x16), np.empty_like(W16), np.empty_like(b16))
    res = linear_cross_entropy_and_grad(x16, W16, t, linear_bias=b16, chunk_size=4,
                                        out=outs)
    assert all(r is o for r, o in zip(res[1:], outs))
    np.testing.assert_array_equal(outs[1], gw)


# ------------------------------------------------------- without torch --

def _materialised(x, W, b, t, **kw):
    logits = x @ W.T + (0 if b is None else b)
    kw = dict(kw)
    ii = kw.pop("ignore_index", None)
    ce_axis = logits.ndim - 1
    prob = np.asarray(t).dtype.kind == "f"
    if ce_axis != 1:   # fastce's class axis is 1: move it there
        logits = np.moveaxis(logits, -1, 1)
        if prob:
            t = np.moveaxis(t, -1, 1)
    go = kw.pop("grad_output", None)
    loss, G = cross_entropy_and_grad(logits, t, kw.pop("weight", None),
                                     ignore_index=-100 if ii is None else ii,
                                     grad_output=go, **kw)
    if ce_axis != 1:
        G = np.moveaxis(G, 1, -1)
    n_tok = math.prod(x.shape[:-1])       # explicit: -1 is ambiguous for empty shapes
    G2 = G.reshape(n_tok, W.shape[0])
    h = x.reshape(n_tok, x.shape[-1])
    return (loss, (G2 @ W).reshape(x.shape), G2.T @ h,
            None if b is None else G2.sum(0))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("prob,config", [(False, c) for c in CONFIGS]
                         + [(True, c) for c in PROB_CONFIGS])
def test_equals_materialised_fastce(reduction, prob, config):
    cfg = (PROB_CONFIGS if prob else CONFIGS)[config]
    case_kw, loss_kw = _split(cfg)
    x, W, b, t, w = make_case(11, np.float64, prob=prob, **case_kw)
    kw = dict(weight=w, reduction=reduction, ignore_index=case_kw.get("ignore"),
              **loss_kw)
    go = np.linspace(-1, 2, N) if reduction == "none" else 1.3
    ref = _materialised(x, W, b, t, grad_output=go, **kw)
    ours = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=3,
                                         grad_output=go, **kw)
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(linear_cross_entropy(x, W, t, linear_bias=b, chunk_size=3,
                                                    **kw),
                               cross_entropy(x @ W.T + b, t, w, ignore_index=-100
                                             if kw["ignore_index"] is None
                                             else kw["ignore_index"],
                                             reduction=reduction, **loss_kw),
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("prob", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_finite_differences(prob, reduction):
    x, W, b, t, w = make_case(12, np.float64, batch=(5,), d=3, v=4, prob=prob,
                              n_ignored=0 if prob else 1, weighted=True)
    kw = dict(weight=w, reduction=reduction, label_smoothing=0.1, z_loss=0.05,
              softcap=1.2, chunk_size=2)
    go = np.array([0.5, -1.0, 2.0, 0.3, 1.1]) if reduction == "none" else 0.8

    def f(x_, W_, b_):
        loss = linear_cross_entropy(x_, W_, t, linear_bias=b_, **kw)
        return float(np.sum(np.asarray(loss) * go))

    _, gi, gw, gb = linear_cross_entropy_and_grad(x, W, t, linear_bias=b,
                                                  grad_output=go, **kw)
    h = 1e-6
    for arr, g, which in ((x, gi, 0), (W, gw, 1), (b, gb, 2)):
        num = np.empty_like(arr)
        for i in np.ndindex(arr.shape):
            args_p = [x.copy(), W.copy(), b.copy()]
            args_m = [x.copy(), W.copy(), b.copy()]
            args_p[which][i] += h
            args_m[which][i] -= h
            num[i] = (f(*args_p) - f(*args_m)) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8, err_msg=str(which))


@pytest.mark.parametrize("prob", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_chunk_size_independence(prob, reduction):
    x, W, b, t, w = make_case(13, np.float64, batch=(37,), prob=prob,
                              n_ignored=0 if prob else 9, weighted=True)
    kw = dict(weight=w, reduction=reduction, label_smoothing=0.1, z_loss=1e-3,
              softcap=3.0)
    results = [linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=c, **kw)
               for c in (1, 2, 5, 8, 37, 1000, None)]
    for res in results[1:]:
        for a, r in zip(res, results[0]):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)
    fwd = [linear_cross_entropy(x, W, t, linear_bias=b, chunk_size=c, **kw)
           for c in (1, 7, None)]
    for a in fwd:
        np.testing.assert_allclose(a, results[0][0], rtol=1e-12, atol=1e-12)


def test_deterministic():
    x, W, b, t, w = make_case(14, np.float32, batch=(50,), n_ignored=5)
    a = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=7, n_threads=2)
    c = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=7, n_threads=2)
    for u, v_ in zip(a, c):
        np.testing.assert_array_equal(u, v_)


def test_target_dtypes():
    x, W, b, t, _ = make_case(15, np.float64, n_ignored=2)
    ref = linear_cross_entropy_and_grad(x, W, t, linear_bias=b)
    for dt in (np.int8, np.int16, np.int32, np.int64):
        res = linear_cross_entropy_and_grad(x, W, t.astype(dt), linear_bias=b)
        for a, r in zip(res, ref):
            np.testing.assert_array_equal(a, r)
    tu = np.random.default_rng(0).integers(0, V, N)
    for dt in (np.uint8, np.uint32, np.uint64):
        np.testing.assert_array_equal(linear_cross_entropy(x, W, tu.astype(dt)),
                                      linear_cross_entropy(x, W, tu))


def test_array_likes_and_noncontiguous():
    x, W, b, t, _ = make_case(16, np.float64, bias=True)
    ref = linear_cross_entropy_and_grad(x, W, t, linear_bias=b)
    xf = np.asfortranarray(x)
    Wf = np.ascontiguousarray(W.T).T   # a transposed view
    res = linear_cross_entropy_and_grad(xf, Wf, t.tolist(), linear_bias=list(b))
    for a, r in zip(res, ref):
        np.testing.assert_allclose(a, r, rtol=1e-13, atol=1e-14)


# ------------------------------------------------------------------ out= --

def _outs(x, W, b):
    return (np.full_like(x, 7.0), np.full_like(W, 7.0),
            None if b is None else np.full_like(b, 7.0))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_buffers_used_and_returned(bias, dtype):
    x, W, b, t, _ = make_case(17, dtype, bias=bias, n_ignored=3)
    ref = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=4)
    outs = _outs(x, W, b)
    res = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=4, out=outs)
    assert res[1] is outs[0] and res[2] is outs[1] and res[3] is outs[2]
    for a, r in zip(res, ref):
        np.testing.assert_array_equal(a, r)
    # a second step reuses the buffers: results do not accumulate across calls
    res2 = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=4,
                                         out=list(outs))
    for a, r in zip(res2, ref):
        np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize("case", ["plain", "bias+ignored", "softcap", "float16"])
def test_out_keeps_the_workspace_for_the_next_call(case):
    """With out= a second step allocates nothing of the logits' size: the
    chunk buffers are kept per thread; release_workspace gives them back."""
    rng = np.random.default_rng(3)
    n, d, v, chunk = 512, 32, 4096, 128
    dtype = np.float16 if case == "float16" else np.float32
    x = rng.standard_normal((n, d)).astype(dtype)
    W = (rng.standard_normal((v, d)) / math.sqrt(d)).astype(dtype)
    b = rng.standard_normal(v).astype(dtype) if case == "bias+ignored" else None
    t = rng.integers(0, v, n)
    if case == "bias+ignored":
        t[::5] = -100
    kw = dict(linear_bias=b, chunk_size=chunk,
              softcap=30.0 if case == "softcap" else None)
    ref = linear_cross_entropy_and_grad(x, W, t, **kw)
    outs = (np.empty_like(x), np.empty_like(W), None if b is None else np.empty_like(b))
    chunk_bytes = chunk * v * 4
    linear_module.release_workspace()
    try:
        first = peak_allocation(
            lambda: linear_cross_entropy_and_grad(x, W, t, out=outs, **kw))
        assert first >= chunk_bytes
        res = [None]

        def step():
            res[0] = linear_cross_entropy_and_grad(x, W, t, out=outs, **kw)
        second = peak_allocation(step)
        # float16 operands are converted to float32 copies on every call
        converted = (x.size + W.size) * 4 if dtype == np.float16 else 0
        assert second < chunk_bytes // 8 + converted, \
            f"the second step allocated {second} bytes"
        for a, r in zip(res[0], ref):
            np.testing.assert_array_equal(a, r)
        # a call without out= neither uses nor keeps them
        assert peak_allocation(
            lambda: linear_cross_entropy_and_grad(x, W, t, **kw)) >= chunk_bytes
        linear_module.release_workspace()
        assert peak_allocation(step) >= chunk_bytes
        for a, r in zip(res[0], ref):
            np.testing.assert_array_equal(a, r)
    finally:
        linear_module.release_workspace()


def test_kept_workspace_across_shapes_and_threads():
    """A kept buffer too small is replaced, a larger one reused: results
    equal fresh calls, shapes in any order, each thread with its own."""
    import threading
    cases = [make_case(40 + i, np.float64, batch=(nb,), v=vv, n_ignored=2)
             for i, (nb, vv) in enumerate([(9, 5), (30, 40), (12, 17), (30, 40)])]
    refs = [linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=4)
            for x, W, b, t, _ in cases]

    def run(order, errors):
        try:
            for i in order:
                x, W, b, t, _ = cases[i]
                outs = _outs(x, W, b)
                got = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=4,
                                                    out=outs)
                for a, r in zip(got, refs[i]):
                    np.testing.assert_array_equal(a, r)
        except Exception as e:   # pragma: no cover - reported below
            errors.append(e)
        finally:
            linear_module.release_workspace()

    errors: list = []
    run([0, 1, 2, 0, 3, 1], errors)
    threads = [threading.Thread(target=run, args=(order, errors))
               for order in ([1, 0, 2, 3] * 5, [2, 3, 0, 1] * 5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors


def test_bad_out():
    x, W, b, t, _ = make_case(18, np.float64)
    good = _outs(x, W, b)

    def call(out, bias=b):
        return linear_cross_entropy_and_grad(x, W, t, linear_bias=bias, out=out)

    with pytest.raises(ValueError, match="tuple"):
        call(good[0])
    with pytest.raises(ValueError, match="tuple"):
        call(good[:2])
    with pytest.raises(ValueError, match=r"grad_input has shape \(10, 7\), expected "
                                         r"\(11, 7\)"):
        call((np.empty((10, D)), good[1], good[2]))
    with pytest.raises(ValueError, match="grad_weight has dtype float32"):
        call((good[0], good[1].astype(np.float32), good[2]))
    with pytest.raises(ValueError, match="grad_bias has shape"):
        call((good[0], good[1], np.empty(V + 1)))
    with pytest.raises(ValueError, match="grad_bias must be None"):
        call(good, bias=None)
    with pytest.raises(ValueError, match="grad_bias must be a numpy.ndarray"):
        call((good[0], good[1], None))
    with pytest.raises(ValueError, match="C-contiguous"):
        call((np.asfortranarray(good[0]), good[1], good[2]))
    ro = good[1].copy()
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        call((good[0], ro, good[2]))
    with pytest.raises(ValueError, match="shares memory with input"):
        call((x, good[1], good[2]))
    with pytest.raises(ValueError, match="shares memory with linear_weight"):
        call((good[0], W, good[2]))
    with pytest.raises(ValueError, match="grad_weight and grad_bias share memory"):
        call((good[0], good[1], good[1].reshape(-1)[:V]))
    # the buffers of failed calls are untouched
    for g in good:
        assert np.all(g == 7.0)


# ---------------------------------------------------------------- errors --

def test_shape_errors_name_both_shapes():
    x, W, b, t, _ = make_case(19, np.float64)
    with pytest.raises(ValueError, match=r"input shape \(11, 7\) and linear_weight shape "
                                         r"\(13, 6\)"):
        linear_cross_entropy(x, W[:, :6], t)
    with pytest.raises(ValueError, match=r"linear_bias shape \(12,\) does not match "
                                         r"linear_weight shape \(13, 7\)"):
        linear_cross_entropy(x, W, t, linear_bias=b[:12])
    with pytest.raises(ValueError, match=r"target shape \(10,\) does not match input "
                                         r"shape \(11, 7\)"):
        linear_cross_entropy(x, W, t[:10])
    with pytest.raises(ValueError, match=r"probability target shape \(11, 12\) does not "
                                         r"match input shape \(11, 7\) and linear_weight "
                                         r"shape \(13, 7\)"):
        linear_cross_entropy(x, W, np.zeros((N, 12)))
    with pytest.raises(ValueError, match="2-D"):
        linear_cross_entropy(x, W.reshape(13, 1, 7), t)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        linear_cross_entropy(np.float64(1.0), W[:, :1], 0)
    with pytest.raises(ValueError, match="weight should be a 1D array of shape"):
        linear_cross_entropy(x, W, t, weight=np.ones(V - 1))


def test_dtype_errors():
    x, W, b, t, _ = make_case(20, np.float64)
    with pytest.raises(ValueError, match="linear_weight has dtype float32 but input has "
                                         "dtype float64"):
        linear_cross_entropy(x, W.astype(np.float32), t)
    with pytest.raises(ValueError, match="linear_bias has dtype float32 but input"):
        linear_cross_entropy(x, W, t, linear_bias=b.astype(np.float32))
    with pytest.raises(TypeError, match="input must be a float32, float64 or float16"):
        linear_cross_entropy(x.astype(np.int64), W, t)
    with pytest.raises(TypeError, match="linear_weight must be a float32"):
        linear_cross_entropy(x, W.astype(np.int32), t)
    with pytest.raises(TypeError, match="class-index targets must be integers"):
        linear_cross_entropy(x, W, t.astype(np.float64))
    with pytest.raises(ValueError, match="must be floating"):
        linear_cross_entropy(x, W, np.zeros((N, V), dtype=np.int64))
    with pytest.raises(TypeError, match="target must hold"):
        linear_cross_entropy(x, W, t.astype(bool))


def test_option_errors():
    x, W, b, t, _ = make_case(21, np.float64)
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(x, W, t, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        linear_cross_entropy(x, W, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="z_loss"):
        linear_cross_entropy(x, W, t, z_loss=-1)
    for bad in (0, -1.0, math.inf, math.nan, "x"):
        with pytest.raises(ValueError, match="softcap"):
            linear_cross_entropy(x, W, t, softcap=bad)
        with pytest.raises(ValueError, match="softcap"):
            LinearCrossEntropyLoss(softcap=bad)
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        linear_cross_entropy(x, W, t, ignore_index=1.5)
    with pytest.raises(ValueError, match="ignore_index cannot be specified"):
        linear_cross_entropy(x, W, np.full((N, V), 1.0 / V), ignore_index=-100)
    for bad in (0, -3, 2.5, True, "8"):
        with pytest.raises(ValueError, match="chunk_size"):
            linear_cross_entropy(x, W, t, chunk_size=bad)
        with pytest.raises(ValueError, match="chunk_size"):
            LinearCrossEntropyLoss(chunk_size=bad)
    with pytest.raises(ValueError, match="n_threads"):
        linear_cross_entropy(x, W, t, n_threads=0)
    with pytest.raises(ValueError, match="grad_output"):
        linear_cross_entropy_and_grad(x, W, t, grad_output=np.ones(N))
    with pytest.raises(ValueError, match="grad_output"):
        linear_cross_entropy_and_grad(x, W, t, reduction="none", grad_output=np.ones(3))


@pytest.mark.parametrize("bad", [V, -1, -101, 10**6])
def test_out_of_range_target_writes_nothing(bad):
    x, W, b, t, _ = make_case(22, np.float64, n_ignored=2)
    t = t.copy()
    pos = 6
    t[pos] = bad
    outs = _outs(x, W, b)
    with pytest.raises(IndexError, match=rf"Target {bad} is out of bounds. The target at "
                                         rf"position \({pos},\) must be a class index in "
                                         rf"\[0, {V}\), or ignore_index=-100"):
        linear_cross_entropy_and_grad(x, W, t, linear_bias=b, out=outs, chunk_size=2)
    for g in outs:
        assert np.all(g == 7.0)
    with pytest.raises(IndexError, match="out of bounds"):
        linear_cross_entropy(x, W, t, linear_bias=b)
    # with the reported message for a 2-D batch
    t2 = t.reshape(1, N)
    with pytest.raises(IndexError, match=rf"position \(0, {pos}\)"):
        linear_cross_entropy(x.reshape(1, N, D), W, t2)
    # the same as fastce.cross_entropy's message on the materialised logits
    with pytest.raises(IndexError) as ours:
        linear_cross_entropy(x, W, t)
    with pytest.raises(IndexError) as theirs:
        cross_entropy(x @ W.T, t)
    assert str(ours.value) == str(theirs.value)


def test_uint64_target_beyond_int64():
    x, W, _, _, _ = make_case(23, np.float64)
    t = np.zeros(N, dtype=np.uint64)
    t[3] = np.uint64(2**63 + 5)
    with pytest.raises(IndexError, match=r"out of bounds.*position \(3,\)"):
        linear_cross_entropy(x, W, t)


# ----------------------------------------------------------- loss object --

def test_loss_object():
    x, W, b, t, w = make_case(24, np.float64, n_ignored=2, ignore=3, weighted=True)
    fn = LinearCrossEntropyLoss(weight=w, reduction="sum", ignore_index=3,
                                label_smoothing=0.1, z_loss=1e-3, chunk_size=4)
    kw = dict(weight=w, reduction="sum", ignore_index=3, label_smoothing=0.1,
              z_loss=1e-3, chunk_size=4)
    assert fn(x, W, t, b) == linear_cross_entropy(x, W, t, linear_bias=b, **kw)
    res = fn.loss_and_grad(x, W, t, b, grad_output=2.0)
    ref = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, grad_output=2.0, **kw)
    for a, r in zip(res, ref):
        np.testing.assert_array_equal(a, r)
    outs = _outs(x, W, b)
    res = fn.loss_and_grad(x, W, t, b, out=outs)
    assert res[1] is outs[0]
    fn2 = pickle.loads(pickle.dumps(fn))
    assert fn2 == fn and fn2 is not fn
    assert fn2(x, W, t, b) == fn(x, W, t, b)
    r = repr(fn)
    assert r.startswith("LinearCrossEntropyLoss(") and "chunk_size=4" in r
    assert "ignore_index=3" in r and "z_loss=0.001" in r
    assert repr(LinearCrossEntropyLoss()) == ("LinearCrossEntropyLoss(reduction='mean', "
                                              "label_smoothing=0.0, z_loss=0.0)")
    assert vars(LinearCrossEntropyLoss()).keys() == {
        "reduction", "weight", "ignore_index", "label_smoothing", "z_loss", "softcap",
        "chunk_size"}
    with pytest.raises(ValueError):
        LinearCrossEntropyLoss(reduction="bad")
    with pytest.raises(ValueError):
        LinearCrossEntropyLoss(label_smoothing=2)


def test_loss_object_against_torch_module():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mod = torch.nn.LinearCrossEntropyLoss(D, V, bias=True, dtype=torch.float64,
                                          label_smoothing=0.1)
    x, _, _, t, _ = make_case(25, np.float64, n_ignored=2)
    X = torch.tensor(x, requires_grad=True)
    loss = mod(X, torch.tensor(t))
    loss.backward()
    W = mod.linear.weight.detach().numpy()
    b = mod.linear.bias.detach().numpy()
    ours = LinearCrossEntropyLoss(label_smoothing=0.1).loss_and_grad(x, W, t, b)
    np.testing.assert_allclose(ours[0], loss.item(), rtol=1e-12)
    np.testing.assert_allclose(ours[1], X.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours[2], mod.linear.weight.grad.numpy(), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(ours[3], mod.linear.bias.grad.numpy(), rtol=1e-10,
                               atol=1e-12)


# ----------------------------------------------------------- the package --

def test_exported():
    for name in ("linear_cross_entropy", "linear_cross_entropy_and_grad",
                 "LinearCrossEntropyLoss"):
        assert name in fastce.__all__
        assert getattr(fastce, name) is getattr(linear_module, name)
    assert "release_workspace" in linear_module.__all__


def test_default_chunk_size_rule():
    assert default_chunk_size(1000) == (8 << 20) // 4000
    assert default_chunk_size(1000, np.float64) == (8 << 20) // 8000
    assert default_chunk_size(1000, np.float16) == default_chunk_size(1000)
    assert default_chunk_size(10**8) == 1
    assert default_chunk_size(0) >= 1
    # at least the weight's bytes: D rows
    assert default_chunk_size(131072, in_features=256) == 256
    assert default_chunk_size(32768, np.float64, in_features=512) == 512
    assert default_chunk_size(1000, in_features=128) == (8 << 20) // 4000
    assert default_chunk_size(1000, in_features=128, n_tokens=7) == 7
    assert default_chunk_size(10**8, in_features=1, n_tokens=0) == 1


def test_default_chunk_is_used(monkeypatch):
    """The driver asks default_chunk_size with the weight's D and never uses
    more rows than the tokens that count."""
    seen = []
    real = linear_module.default_chunk_size

    def spy(*args, **kwargs):
        seen.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(linear_module, "default_chunk_size", spy)
    x, W, b, t, _ = make_case(40, np.float32, batch=(30,), d=6, v=5, n_ignored=4)
    p = linear_module._prepare(x, W, t, b, None, "mean", None, 0.0, 0.0, None, None,
                               want_grad=False)
    assert seen == [((5, np.dtype(np.float32)), {"in_features": 6})]
    assert p.chunk == 26


def test_module_doctests():
    # tests/test_doctests.py lists its modules explicitly; run fastce.linear's here
    result = doctest.testmod(linear_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
    for name in linear_module.__all__:
        obj = getattr(linear_module, name)
        assert obj.__doc__ and ">>>" in obj.__doc__, name


# -------------------------------------------------------------- property --

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(n=st.integers(0, 12), d=st.integers(1, 6), v=st.integers(1, 7),
       chunk=st.one_of(st.none(), st.integers(1, 13)), seed=st.integers(0, 2**16),
       reduction=st.sampled_from(["mean", "sum", "none"]), prob=st.booleans(),
       bias=st.booleans(), weighted=st.booleans(),
       eps=st.sampled_from([0.0, 0.3]), z=st.sampled_from([0.0, 1e-2]),
       cap=st.sampled_from([None, 0.7, 50.0]))
def test_property_matches_materialised(n, d, v, chunk, seed, reduction, prob, bias,
                                       weighted, eps, z, cap):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    W = rng.standard_normal((v, d))
    b = rng.standard_normal(v) if bias else None
    w = rng.uniform(0.1, 3.0, v) if weighted else None
    if prob:
        t = rng.dirichlet(np.ones(v), n) if n else np.zeros((0, v))
    else:
        t = rng.integers(-1, v, n)
        t[t < 0] = -100
    kw = dict(weight=w, reduction=reduction, label_smoothing=eps, z_loss=z, softcap=cap)
    go = rng.standard_normal(n) if reduction == "none" else 0.9
    ref = _materialised(x, W, b, t, grad_output=go, **kw)
    ours = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=chunk,
                                         grad_output=go, **kw)
    for a, r in zip(ours, ref):
        if r is None:
            assert a is None
        else:
            np.testing.assert_allclose(a, r, rtol=1e-11, atol=1e-12)
    fwd = linear_cross_entropy(x, W, t, linear_bias=b, chunk_size=chunk, **kw)
    np.testing.assert_allclose(fwd, ref[0], rtol=1e-11, atol=1e-12)


# ------------------------------------------------------------ BLAS side --

def test_weight_gradient_without_scipy_gemm(monkeypatch):
    """Without SciPy the weight gradient accumulates through a scratch; the
    result is the in-place GEMM's to rounding."""
    from fastce import _blas
    x, W, b, t, w = make_case(31, np.float32, batch=(40,), n_ignored=5, weighted=True)
    kw = dict(linear_bias=b, weight=w, chunk_size=7, z_loss=1e-3)
    with_scipy = linear_cross_entropy_and_grad(x, W, t, **kw)
    assert _blas.has_inplace_gemm(np.float32) == (_blas._scipy_gemms() != {})
    monkeypatch.setattr(_blas, "_gemm_by_dtype", {})
    assert not _blas.has_inplace_gemm(np.float32)
    without = linear_cross_entropy_and_grad(x, W, t, **kw)
    for a, r in zip(without, with_scipy):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scipy_gemm", [True, False])
def test_accumulate_gram(dtype, scipy_gemm, monkeypatch):
    from fastce import _blas
    if not scipy_gemm:
        monkeypatch.setattr(_blas, "_gemm_by_dtype", {})
    elif not _blas.has_inplace_gemm(dtype):
        pytest.skip("SciPy is not installed")
    rng = np.random.default_rng(5)
    acc = np.full((9, 4), np.nan, dtype)          # first=True must not read it
    G1, h1 = rng.standard_normal((6, 9)).astype(dtype), rng.standard_normal((6, 4)).astype(dtype)
    G2, h2 = rng.standard_normal((3, 9)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    _blas.accumulate_gram(acc, G1, h1, first=True)
    _blas.accumulate_gram(acc, G2, h2, first=False)
    np.testing.assert_allclose(acc, G1.T @ h1 + G2.T @ h2, **_tol(dtype))


@pytest.mark.parametrize("gemm", ["logits_gemm", "input_grad_gemm", "accumulate_gram"])
def test_n_threads_limits_blas(monkeypatch, gemm):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []
    real = getattr(linear_module, gemm)

    def spy(*args, **kwargs):
        info = threadpoolctl.threadpool_info()
        seen.append(max((i["num_threads"] for i in info if i["user_api"] == "blas"),
                        default=None))
        return real(*args, **kwargs)

    x, W, b, t, _ = make_case(32, np.float64, batch=(20,))
    monkeypatch.setattr(linear_module, gemm, spy)
    linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=8, n_threads=1)
    assert len(seen) == 3 and all(n in (1, None) for n in seen)


def test_gemms_stay_in_one_blas(monkeypatch):
    """With SciPy, the chunk loop calls no NumPy matmul (NumPy and SciPy load
    separate OpenBLAS copies whose idle workers would compete)."""
    from fastce import _blas
    if not _blas.has_inplace_gemm(np.float64):
        pytest.skip("SciPy is not installed")
    calls = []
    real = np.matmul
    monkeypatch.setattr(linear_module.np, "matmul",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    x, W, b, t, _ = make_case(34, np.float64, batch=(20,), n_ignored=3)
    linear_cross_entropy_and_grad(x, W, t, linear_bias=b, chunk_size=8)
    assert calls == []


def test_n_threads_without_threadpoolctl_warns(monkeypatch):
    import sys
    from fastce import _blas
    monkeypatch.setattr(_blas, "_controller", None)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)     # import fails
    x, W, b, t, _ = make_case(33, np.float64)
    ref = linear_cross_entropy(x, W, t, linear_bias=b)
    with pytest.warns(RuntimeWarning, match="threadpoolctl"):
        got = linear_cross_entropy(x, W, t, linear_bias=b, n_threads=1)
    assert got == ref


@pytest.mark.parametrize("scipy_gemm", [True, False])
@pytest.mark.parametrize("n,d,v", [(n, d, v) for n in (0, 1, 3) for d in (0, 1, 2)
                                   for v in (0, 1, 3)])
def test_empty_dimensions(n, d, v, scipy_gemm, monkeypatch):
    """Zero tokens, features or classes: the GEMM helpers fall back to
    NumPy (SciPy's wrappers reject empty sizes), results as materialised."""
    from fastce import _blas
    if not scipy_gemm:
        monkeypatch.setattr(_blas, "_gemm_by_dtype", {})
    rng = np.random.default_rng(n * 100 + d * 10 + v)
    x = rng.standard_normal((n, d))
    W = rng.standard_normal((v, d))
    b = rng.standard_normal(v)
    t = (rng.dirichlet(np.ones(v), n) if v else np.zeros((n, 0)))
    for reduction in ("mean", "sum", "none"):
        ref = _materialised(x, W, b, t, reduction=reduction)
        got = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, reduction=reduction,
                                            chunk_size=2)
        for a, r in zip(got, ref):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)
            assert np.shape(a) == np.shape(r)


def test_fortran_ordered_weight():
    x, W, b, t, w = make_case(41, np.float64, batch=(20,), n_ignored=3, weighted=True)
    Wf = np.asfortranarray(W)
    ref = linear_cross_entropy_and_grad(x, W, t, linear_bias=b, weight=w, chunk_size=6)
    got = linear_cross_entropy_and_grad(x, Wf, t, linear_bias=b, weight=w, chunk_size=6)
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=1e-13, atol=1e-14)
    p = linear_module._prepare(x, Wf, t, b, w, "mean", None, 0.0, 0.0, None, 6,
                               want_grad=True)
    assert p.W.flags.c_contiguous       # copied once per call, not per chunk
