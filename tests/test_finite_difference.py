"""Gradients checked against central finite differences in float64, with no
reference library: for reduced losses d(loss)/dx, for reduction="none" with a
random grad_output g, d(sum(g * loss))/dx."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import fastce

STEP = 1e-6
RTOL = 1e-5
ATOL = 1e-7


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def numerical_gradient(scalar_fn, x):
    """Central differences of ``scalar_fn`` at ``x`` (float64)."""
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.empty_like(x)
    flat_x = x.reshape(-1)
    flat_g = grad.reshape(-1)
    for i in range(flat_x.size):
        orig = flat_x[i]
        flat_x[i] = orig + STEP
        up = scalar_fn(x)
        flat_x[i] = orig - STEP
        down = scalar_fn(x)
        flat_x[i] = orig
        flat_g[i] = (up - down) / (2 * STEP)
    return grad


def check_against_fd(loss_fn, grad_fn, x, reduction, loss_shape, rng):
    """``loss_fn(x, **kw)`` is the forward; ``grad_fn(x, grad_output=...)`` the
    ``*_and_grad`` call."""
    if reduction == "none":
        go = rng.normal(size=loss_shape)
        if go.ndim:
            go.reshape(-1)[::4] = 0.0
        scalar = lambda z: float(np.sum(go * loss_fn(z)))  # noqa: E731
    else:
        go = float(rng.uniform(-2, 2))
        scalar = lambda z: go * float(loss_fn(z))          # noqa: E731
    loss, grad = grad_fn(x, grad_output=go)
    np.testing.assert_allclose(np.asarray(loss), np.asarray(loss_fn(x)), rtol=1e-14,
                               atol=1e-14)
    expected = numerical_gradient(scalar, x)
    np.testing.assert_allclose(grad, expected, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------ cross-entropy --

CE_CONFIGS = [
    # (shape, axis, kwargs, prob)
    ((4, 5), None, {}, False),
    ((4, 5), None, {"weight": "w"}, False),
    ((4, 5), None, {"label_smoothing": 0.1}, False),
    ((4, 5), None, {"weight": "w", "label_smoothing": 0.25, "ignore_index": 2}, False),
    ((5, 4), None, {"ignore_index": -1}, False),
    ((3, 4, 2), None, {"weight": "w", "label_smoothing": 0.1}, False),
    ((2, 3, 2, 2), None, {"ignore_index": 0}, False),
    ((3, 2, 4), -1, {"weight": "w", "label_smoothing": 0.1, "ignore_index": 1}, False),
    ((6,), None, {"label_smoothing": 0.3, "weight": "w"}, False),
    ((4, 5), None, {}, True),
    ((4, 5), None, {"weight": "w", "label_smoothing": 0.1}, True),
    ((3, 4, 2), None, {"weight": "w"}, True),
    ((3, 2, 4), -1, {"label_smoothing": 0.2}, True),
    ((5,), None, {"weight": "w"}, True),
]


def _class_case(shape, axis, kwargs, prob, key):
    rng = _rng("ce", shape, axis, repr(kwargs), prob, *key)
    x = rng.normal(size=shape) * 1.5
    cax = (0 if len(shape) == 1 else 1) if axis is None else axis % len(shape)
    C = shape[cax]
    batch = shape[:cax] + shape[cax + 1:]
    kw = dict(kwargs)
    if kw.get("weight") == "w":
        kw["weight"] = rng.uniform(0.3, 2.5, size=C)
    if axis is not None:
        kw["axis"] = axis
    if prob:
        p = rng.random(size=shape)
        t = p / p.sum(axis=cax, keepdims=True)
        loss_shape = batch
    else:
        t = rng.integers(0, C, size=batch)
        if "ignore_index" in kw and t.ndim:
            t.reshape(-1)[::3] = kw["ignore_index"]
            t.reshape(-1)[1] = (kw["ignore_index"] + 1) % C
        loss_shape = batch
    return x, t, kw, loss_shape, rng


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape,axis,kwargs,prob", CE_CONFIGS,
                         ids=[f"{c[0]}-axis{c[1]}-{sorted(c[2])}-{'prob' if c[3] else 'index'}"
                              for c in CE_CONFIGS])
def test_cross_entropy_grad_matches_finite_differences(shape, axis, kwargs, prob, reduction):
    x, t, kw, loss_shape, rng = _class_case(shape, axis, kwargs, prob, (reduction,))
    check_against_fd(
        lambda z: fastce.cross_entropy(z, t, reduction=reduction, **kw),
        lambda z, grad_output: fastce.cross_entropy_and_grad(
            z, t, reduction=reduction, grad_output=grad_output, **kw),
        x, reduction, loss_shape, rng)


NLL_CONFIGS = [c for c in CE_CONFIGS if not c[3]]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape,axis,kwargs,prob", NLL_CONFIGS,
                         ids=[f"{c[0]}-axis{c[1]}-{sorted(c[2])}" for c in NLL_CONFIGS])
def test_nll_loss_grad_matches_finite_differences(shape, axis, kwargs, prob, reduction):
    kwargs = {k: v for k, v in kwargs.items() if k != "label_smoothing"}
    x, t, kw, loss_shape, rng = _class_case(shape, axis, kwargs, prob, ("nll", reduction))
    check_against_fd(
        lambda z: fastce.nll_loss(z, t, reduction=reduction, **kw),
        lambda z, grad_output: fastce.nll_loss_and_grad(
            z, t, reduction=reduction, grad_output=grad_output, **kw),
        x, reduction, loss_shape, rng)


def test_cross_entropy_grad_with_masked_class_matches_finite_differences():
    """A -inf logit is left alone (its gradient is exactly 0); the finite
    logits' gradient is the derivative."""
    rng = _rng("masked")
    x = rng.normal(size=(4, 5))
    x[:, 2] = -np.inf
    x[1, 4] = -np.inf
    t = np.array([0, 3, 1, 4])
    w = rng.uniform(0.5, 2.0, size=5)
    _, grad = fastce.cross_entropy_and_grad(x, t, weight=w)
    finite = np.isfinite(x)
    assert np.all(grad[~finite] == 0.0)

    def loss_of_finite(v):
        z = x.copy()
        z[finite] = v
        return float(fastce.cross_entropy(z, t, weight=w))

    expected = numerical_gradient(loss_of_finite, x[finite])
    np.testing.assert_allclose(grad[finite], expected, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------ binary --

BCE_LOGITS_CONFIGS = [
    ((6,), {}),
    ((4, 5), {}),
    ((4, 5), {"weight": "scalar"}),
    ((4, 5), {"weight": "last"}),
    ((4, 5), {"weight": "col", "pos_weight": "last"}),
    ((3, 2, 4), {"weight": "full", "pos_weight": "last"}),
    ((3, 2, 4), {"pos_weight": "last"}),
    ((), {}),
]


def _bin_operand(mode, shape, rng):
    if mode == "scalar":
        return float(rng.uniform(0.3, 2.5))
    s = {"last": shape[-1:], "col": shape[:-1] + (1,), "full": shape}[mode]
    return rng.uniform(0.3, 2.5, size=s)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape,kwargs", BCE_LOGITS_CONFIGS,
                         ids=[f"{c[0]}-{sorted(c[1].items())}" for c in BCE_LOGITS_CONFIGS])
def test_bce_with_logits_grad_matches_finite_differences(shape, kwargs, reduction):
    rng = _rng("bcel", shape, repr(kwargs), reduction)
    x = np.asarray(rng.normal(size=shape) * 3)
    y = np.asarray(rng.random(size=shape))
    if y.ndim:
        y.reshape(-1)[:2] = [0.0, 1.0]
    kw = {k: _bin_operand(v, shape, rng) for k, v in kwargs.items()}
    check_against_fd(
        lambda z: fastce.binary_cross_entropy_with_logits(z, y, reduction=reduction, **kw),
        lambda z, grad_output: fastce.binary_cross_entropy_with_logits_and_grad(
            z, y, reduction=reduction, grad_output=grad_output, **kw),
        x, reduction, shape, rng)


BCE_CONFIGS = [
    ((6,), {}),
    ((4, 5), {}),
    ((4, 5), {"weight": "last"}),
    ((4, 5), {"weight": "col"}),
    ((3, 2, 4), {"weight": "full"}),
    ((), {}),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape,kwargs", BCE_CONFIGS,
                         ids=[f"{c[0]}-{sorted(c[1].items())}" for c in BCE_CONFIGS])
def test_bce_grad_matches_finite_differences(shape, kwargs, reduction):
    rng = _rng("bce", shape, repr(kwargs), reduction)
    x = np.asarray(rng.uniform(0.05, 0.95, size=shape))
    y = np.asarray(rng.random(size=shape))
    if y.ndim:
        y.reshape(-1)[:2] = [0.0, 1.0]
    kw = {k: _bin_operand(v, shape, rng) for k, v in kwargs.items()}
    check_against_fd(
        lambda z: fastce.binary_cross_entropy(z, y, reduction=reduction, **kw),
        lambda z, grad_output: fastce.binary_cross_entropy_and_grad(
            z, y, reduction=reduction, grad_output=grad_output, **kw),
        x, reduction, shape, rng)


# ------------------------------------------------------------ the checker --

def test_numerical_gradient_helper_is_accurate():
    """The checker itself: the derivative of sum(sin(x)) is cos(x)."""
    x = np.linspace(-2, 2, 7)
    np.testing.assert_allclose(numerical_gradient(lambda z: float(np.sum(np.sin(z))), x),
                               np.cos(x), rtol=RTOL, atol=ATOL)
