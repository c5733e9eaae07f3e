"""Plain helper functions shared by the test modules.

Tests import them as ``from _helpers import ...`` (pytest puts ``tests/`` on
``sys.path``; there is deliberately no ``tests/__init__.py``).  Nothing here
needs PyTorch at import time: the ``torch_*`` oracles import it lazily, so the
golden tests run without it.

Tolerances follow SPEC section 3.8:

* losses (and any forward values): rtol 1e-5 (float32) / 1e-12 (float64),
  plus a small atol (1e-6 / 1e-12) because values near 0 suffer cancellation
  in both implementations;
* gradients: atol 1e-6 (float32) / 1e-12 (float64), plus rtol 1e-5 / 1e-10;
* float16 is computed in float32 and rounded to float16, so it is compared
  with the float32 oracle at float16 resolution.
"""
from __future__ import annotations

import contextlib
import gc
import tracemalloc
import warnings
import zlib

import numpy as np

__all__ = [
    "peak_allocation",
    "TOLERANCES", "tolerance", "assert_close", "assert_result_type",
    "rng_for", "oracle_dtype",
    "torch_ce", "torch_ce_and_grad", "torch_nll", "torch_nll_and_grad",
    "torch_bce_with_logits", "torch_bce_with_logits_and_grad",
    "torch_bce", "torch_bce_and_grad",
    "torch_log_softmax", "torch_softmax", "torch_logsumexp",
    "torch_reference", "class_axis",
]

# (rtol, atol) per result dtype and kind of quantity
TOLERANCES = {
    ("loss", np.dtype(np.float32)): (1e-5, 1e-6),
    ("loss", np.dtype(np.float64)): (1e-12, 1e-12),
    ("loss", np.dtype(np.float16)): (2e-3, 2e-3),
    ("grad", np.dtype(np.float32)): (1e-5, 1e-6),
    ("grad", np.dtype(np.float64)): (1e-10, 1e-12),
    ("grad", np.dtype(np.float16)): (2e-3, 2e-3),
}


def tolerance(dtype, kind: str = "loss") -> tuple[float, float]:
    """(rtol, atol) for results of ``dtype`` (the input's dtype)."""
    if kind not in ("loss", "grad"):
        raise ValueError(f"kind must be 'loss' or 'grad', got {kind!r}")
    return TOLERANCES[(kind, np.dtype(dtype))]


def assert_close(actual, expected, dtype, kind: str = "loss", err_msg: str = "") -> None:
    """Assert ``actual`` (fastce) matches ``expected`` (the oracle) at the SPEC
    tolerance for ``dtype``.  Shapes must agree exactly; NaN must sit where
    the oracle has NaN and infinities must match in sign."""
    rtol, atol = tolerance(dtype, kind)
    a = np.asarray(actual)
    e = np.asarray(expected)
    assert a.shape == e.shape, f"shape {a.shape} != expected {e.shape}. {err_msg}"
    np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol,
                               atol=atol, equal_nan=True, err_msg=err_msg)


def assert_result_type(result, dtype, shape=()) -> None:
    """A reduced result is a NumPy scalar (or 0-d array) of ``dtype``; a
    ``reduction="none"`` result an ndarray of ``shape`` and ``dtype``."""
    dtype = np.dtype(dtype)
    if shape == ():
        assert isinstance(result, (np.generic, np.ndarray)), type(result)
        assert np.ndim(result) == 0, np.shape(result)
    else:
        assert isinstance(result, np.ndarray), type(result)
        assert result.shape == tuple(shape), (result.shape, shape)
    assert result.dtype == dtype, (result.dtype, dtype)


def rng_for(*key) -> np.random.Generator:
    """A numpy Generator seeded deterministically from ``key`` (e.g. a test's
    parameters), so every parametrized case has its own fixed data."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def oracle_dtype(dtype) -> np.dtype:
    """The dtype the oracle computes in: float16 is computed in float32."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def class_axis(ndim: int, axis=None) -> int:
    """fastce's class axis as a non-negative int (default 1, 0 for 1-D)."""
    if axis is None:
        return 0 if ndim == 1 else 1
    return axis % ndim


# ----------------------------------------------------------------- oracle --

def _torch():
    import torch  # noqa: PLC0415 (lazy: golden tests do not need torch)
    return torch


def _tensor(arr, dtype=None, requires_grad=False):
    torch = _torch()
    a = np.array(arr, copy=True)
    if dtype is not None:
        a = a.astype(dtype)
    t = torch.from_numpy(np.require(a, requirements="C"))  # keeps 0-d as 0-d
    if requires_grad:
        t.requires_grad_(True)
    return t


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def torch_reference(name: str, input, target=None, *, weight=None, pos_weight=None,
                    ignore_index: int = -100, reduction: str = "mean",
                    label_smoothing: float = 0.0, axis=None, grad_output=None,
                    want_grad: bool = False, size_average=None, reduce=None):
    """PyTorch's result for ``name`` in {"cross_entropy", "nll_loss",
    "binary_cross_entropy_with_logits", "binary_cross_entropy",
    "log_softmax", "softmax", "logsumexp"} on NumPy data.

    float16 input is computed in float32.  ``axis`` is fastce's class axis:
    it is moved to position 1 with ``torch.movedim`` (probability targets
    too) and the gradient is moved back.  Returns the loss (ndarray) or
    (loss, grad) with ``want_grad``; the gradient is what autograd puts in
    ``input.grad`` after ``loss.backward(grad_output)``.
    """
    torch = _torch()
    F = torch.nn.functional
    x_np = np.asarray(input)
    dt = oracle_dtype(x_np.dtype)
    x = _tensor(x_np, dt, requires_grad=want_grad)
    ax = class_axis(x_np.ndim, axis) if x_np.ndim else None

    def cast(a, dtype=dt):
        return None if a is None else _tensor(a, dtype)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = {}
        if size_average is not None or reduce is not None:
            legacy = dict(size_average=size_average, reduce=reduce)
        else:
            legacy = dict(reduction=reduction)
        if name in ("cross_entropy", "nll_loss"):
            t_np = np.asarray(target)
            moved = x_np.ndim >= 2 and ax != 1
            xm = torch.movedim(x, ax, 1) if moved else x
            if t_np.dtype.kind == "f":
                t = _tensor(t_np, dt)
                if moved:
                    t = torch.movedim(t, ax, 1)
            else:
                t = _tensor(t_np.astype(np.int64))
            unbatched = x_np.ndim == 1
            if unbatched:  # torch's unbatched path breaks with label smoothing
                xm, t = xm.unsqueeze(0), t.unsqueeze(0)
            if name == "cross_entropy":
                loss = F.cross_entropy(xm, t, weight=cast(weight), ignore_index=ignore_index,
                                       label_smoothing=label_smoothing, **legacy)
            else:
                loss = F.nll_loss(xm, t, weight=cast(weight), ignore_index=ignore_index,
                                  **legacy)
            if unbatched and loss.ndim == 1:
                loss = loss.squeeze(0)
        elif name == "binary_cross_entropy_with_logits":
            loss = F.binary_cross_entropy_with_logits(
                x, cast(target), weight=cast(weight), pos_weight=cast(pos_weight), **legacy)
        elif name == "binary_cross_entropy":
            loss = F.binary_cross_entropy(x, cast(target), weight=cast(weight), **legacy)
        elif name in ("log_softmax", "softmax"):
            loss = getattr(torch, name)(x, dim=ax)
        elif name == "logsumexp":
            loss = torch.logsumexp(x, dim=ax)
        else:
            raise ValueError(f"unknown function {name!r}")

        if not want_grad:
            return _np(loss)
        if grad_output is None:
            g = torch.ones_like(loss)
        else:
            g = torch.broadcast_to(_tensor(np.asarray(grad_output), dt), loss.shape).clone()
        loss.backward(g)
    return _np(loss), _np(x.grad)


def torch_ce(input, target, **kw):
    return torch_reference("cross_entropy", input, target, **kw)


def torch_ce_and_grad(input, target, **kw):
    return torch_reference("cross_entropy", input, target, want_grad=True, **kw)


def torch_nll(input, target, **kw):
    return torch_reference("nll_loss", input, target, **kw)


def torch_nll_and_grad(input, target, **kw):
    return torch_reference("nll_loss", input, target, want_grad=True, **kw)


def torch_bce_with_logits(input, target, **kw):
    return torch_reference("binary_cross_entropy_with_logits", input, target, **kw)


def torch_bce_with_logits_and_grad(input, target, **kw):
    return torch_reference("binary_cross_entropy_with_logits", input, target,
                           want_grad=True, **kw)


def torch_bce(input, target, **kw):
    return torch_reference("binary_cross_entropy", input, target, **kw)


def torch_bce_and_grad(input, target, **kw):
    return torch_reference("binary_cross_entropy", input, target, want_grad=True, **kw)


def torch_log_softmax(input, axis=None):
    return torch_reference("log_softmax", input, axis=axis)


def torch_softmax(input, axis=None):
    return torch_reference("softmax", input, axis=axis)


def torch_logsumexp(input, axis=None):
    return torch_reference("logsumexp", input, axis=axis)


@contextlib.contextmanager
def simd_variant(arch: str):
    """Run the kernels on SIMD variant ``arch`` inside the block, then switch
    back to the variant in use before, whatever happens inside."""
    from fastce._kernels import _runtime

    previous = _runtime.arch_name()
    _runtime.select_arch(arch)
    try:
        yield
    finally:
        _runtime.select_arch(previous)


def peak_allocation(fn) -> int:
    """Peak bytes traced by tracemalloc during ``fn()`` (NumPy reports its
    data buffers to tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base
