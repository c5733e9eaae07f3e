"""``out=`` of the ``*_and_grad`` functions, in-place gradients over the
logits (``out=input``), inputs never modified otherwise, and the memory the
kernels allocate (SPEC §2.2, §3.9, §5 "Extra memory")."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import fastce
from _helpers import peak_allocation


# --------------------------------------------------------------- cases --

def _case(name, dtype):
    """(function, input, target, kwargs) for one named configuration."""
    rng = np.random.default_rng(zlib.crc32(f"{name}-{np.dtype(dtype).name}".encode()))
    if name == "ce_NC":
        x = rng.normal(size=(7, 5))
        t = rng.integers(0, 5, size=7)
        t[2] = -100
        kw = dict(weight=rng.uniform(0.5, 2, 5), label_smoothing=0.1)
        f = fastce.cross_entropy_and_grad
    elif name == "ce_NCdd":
        x = rng.normal(size=(2, 4, 3, 5))
        t = rng.integers(0, 4, size=(2, 3, 5))
        t[0, 0, :2] = 1
        kw = dict(ignore_index=1, reduction="sum")
        f = fastce.cross_entropy_and_grad
    elif name == "ce_axis_last":
        x = rng.normal(size=(3, 4, 6))
        t = rng.integers(0, 6, size=(3, 4))
        kw = dict(axis=-1, weight=rng.uniform(0.5, 2, 6), reduction="none",
                  grad_output=rng.normal(size=(3, 4)))
        f = fastce.cross_entropy_and_grad
    elif name == "ce_prob":
        x = rng.normal(size=(5, 4, 3))
        p = rng.random(size=(5, 4, 3))
        t = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
        kw = dict(label_smoothing=0.2)
        f = fastce.cross_entropy_and_grad
    elif name == "ce_unbatched":
        x = rng.normal(size=(6,))
        t = np.int64(4)
        kw = dict(grad_output=-0.5)
        f = fastce.cross_entropy_and_grad
    elif name == "nll_NCd":
        x = rng.normal(size=(4, 5, 3))
        t = rng.integers(0, 5, size=(4, 3))
        kw = dict(weight=rng.uniform(0.5, 2, 5))
        f = fastce.nll_loss_and_grad
    elif name == "nll_axis_last":
        x = rng.normal(size=(4, 3, 5))
        t = rng.integers(0, 5, size=(4, 3))
        kw = dict(dim=-1, reduction="none", grad_output=rng.normal(size=(4, 3)))
        f = fastce.nll_loss_and_grad
    elif name == "bcel_NC":
        x = rng.normal(size=(6, 5)) * 3
        t = rng.random(size=(6, 5)).astype(dtype)
        kw = dict(weight=rng.uniform(0.5, 2, (6, 1)), pos_weight=rng.uniform(0.5, 3, 5))
        f = fastce.binary_cross_entropy_with_logits_and_grad
    elif name == "bcel_NCdd":
        x = rng.normal(size=(2, 3, 4, 5)) * 3
        t = rng.random(size=(2, 3, 4, 5)).astype(dtype)
        kw = dict(reduction="none", grad_output=rng.normal(size=(2, 3, 4, 5)))
        f = fastce.binary_cross_entropy_with_logits_and_grad
    elif name == "bce_NC":
        x = rng.uniform(0.05, 0.95, size=(6, 5))
        t = rng.random(size=(6, 5)).astype(dtype)
        kw = dict(weight=rng.uniform(0.5, 2, 5), reduction="sum")
        f = fastce.binary_cross_entropy_and_grad
    elif name == "bce_NCd":
        x = rng.uniform(0.05, 0.95, size=(3, 4, 5))
        t = rng.random(size=(3, 4, 5)).astype(dtype)
        kw = dict(reduction="none", grad_output=rng.normal(size=(3, 4, 5)))
        f = fastce.binary_cross_entropy_and_grad
    else:
        raise AssertionError(name)
    return f, np.asarray(x, dtype=dtype), t, kw


CASES = ["ce_NC", "ce_NCdd", "ce_axis_last", "ce_prob", "ce_unbatched", "nll_NCd",
         "nll_axis_last", "bcel_NC", "bcel_NCdd", "bce_NC", "bce_NCd"]
DTYPES = [np.float32, np.float64, np.float16]


def _copies(*arrays):
    return [None if a is None else np.array(a, copy=True) for a in arrays]


# ------------------------------------------------------------------ out= --

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASES)
def test_out_receives_the_gradient_and_is_returned(name, dtype):
    f, x, t, kw = _case(name, dtype)
    ref_loss, ref_grad = f(x, t, **kw)
    out = np.full(x.shape, np.nan, dtype=x.dtype)
    loss, grad = f(x, t, out=out, **kw)
    assert grad is out
    np.testing.assert_array_equal(out, ref_grad)
    np.testing.assert_array_equal(loss, ref_loss)
    # a second call into the same buffer overwrites it completely
    out[...] = 123.0
    _, grad = f(x, t, out=out, **kw)
    assert grad is out
    np.testing.assert_array_equal(out, ref_grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASES)
def test_out_is_input_overwrites_the_logits_with_their_gradient(name, dtype):
    f, x, t, kw = _case(name, dtype)
    assert x.flags.c_contiguous
    ref_loss, ref_grad = f(x.copy(), t, **kw)
    loss, grad = f(x, t, out=x, **kw)
    assert grad is x
    np.testing.assert_array_equal(x, ref_grad)
    np.testing.assert_array_equal(loss, ref_loss)


def test_out_is_input_on_a_large_input_matches_the_allocating_call():
    """Big enough to run on several threads: in place must not read logits
    that another tile already overwrote."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2048, 300)).astype(np.float32)
    t = rng.integers(0, 300, size=2048)
    ref_loss, ref_grad = fastce.cross_entropy_and_grad(x.copy(), t, label_smoothing=0.1,
                                                       n_threads=2)
    loss, grad = fastce.cross_entropy_and_grad(x, t, label_smoothing=0.1, out=x,
                                               n_threads=2)
    assert grad is x
    assert loss == ref_loss
    np.testing.assert_array_equal(x, ref_grad)
    xk = rng.normal(size=(4, 21, 32, 32)).astype(np.float32)
    tk = rng.integers(0, 21, size=(4, 32, 32))
    ref_loss, ref_grad = fastce.cross_entropy_and_grad(xk.copy(), tk, n_threads=2)
    loss, grad = fastce.cross_entropy_and_grad(xk, tk, out=xk, n_threads=2)
    assert grad is xk
    assert loss == ref_loss
    np.testing.assert_array_equal(xk, ref_grad)


@pytest.mark.parametrize("name", ["ce_NC", "ce_axis_last", "bcel_NC", "bce_NCd"])
def test_float16_out_receives_the_float16_gradient(name):
    f, x, t, kw = _case(name, np.float16)
    ref_loss, ref_grad = f(x, t, **kw)
    assert ref_grad.dtype == np.float16
    out = np.zeros(x.shape, dtype=np.float16)
    loss, grad = f(x, t, out=out, **kw)
    assert grad is out
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, ref_grad)
    np.testing.assert_array_equal(loss, ref_loss)
    assert np.asarray(loss).dtype == np.float16


# ------------------------------------------------- inputs are not modified --

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASES)
def test_inputs_are_never_modified_without_out_is_input(name, dtype):
    f, x, t, kw = _case(name, dtype)
    kw_copies = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v)
                 for k, v in kw.items()}
    x0, t0 = _copies(x, t)
    f(x, t, **kw)                                        # allocating
    f(x, t, out=np.empty_like(x), **kw)                  # separate out=
    forward = {
        fastce.cross_entropy_and_grad: fastce.cross_entropy,
        fastce.nll_loss_and_grad: fastce.nll_loss,
        fastce.binary_cross_entropy_with_logits_and_grad:
            fastce.binary_cross_entropy_with_logits,
        fastce.binary_cross_entropy_and_grad: fastce.binary_cross_entropy,
    }[f]
    fwd_kw = {k: v for k, v in kw.items() if k != "grad_output"}
    forward(x, t, **fwd_kw)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(t, t0)
    for k, v in kw.items():
        np.testing.assert_array_equal(v, kw_copies[k], err_msg=k)


@pytest.mark.parametrize("fn", ["log_softmax", "softmax", "logsumexp"])
def test_softmax_family_does_not_modify_its_input(fn):
    x = np.random.default_rng(3).normal(size=(300, 200)).astype(np.float32)
    x0 = x.copy()
    getattr(fastce, fn)(x)
    getattr(fastce, fn)(x, axis=0)
    np.testing.assert_array_equal(x, x0)


def test_noncontiguous_input_is_not_modified_and_out_gets_the_gradient():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(10, 12))
    x = base[:, ::2]                                   # a strided view
    base0 = base.copy()
    t = rng.integers(0, 6, size=10)
    ref_loss, ref_grad = fastce.cross_entropy_and_grad(np.ascontiguousarray(x), t)
    out = np.empty((10, 6))
    loss, grad = fastce.cross_entropy_and_grad(x, t, out=out)
    assert grad is out
    np.testing.assert_array_equal(out, ref_grad)
    assert loss == ref_loss
    np.testing.assert_array_equal(base, base0)


# -------------------------------------------------------------- memory --

def test_tracemalloc_sees_numpy_allocations():
    """The memory tests below are meaningful only if this holds."""
    assert peak_allocation(lambda: np.ones(1_000_000)) >= 8_000_000


def test_cross_entropy_and_grad_in_place_allocates_under_1mb():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8192, 1000), dtype=np.float32)
    t = rng.integers(0, 1000, size=8192)
    fastce.cross_entropy_and_grad(x, t, out=x)         # warm-up (imports, caches)
    x[...] = rng.standard_normal((8192, 1000), dtype=np.float32)
    peak = peak_allocation(lambda: fastce.cross_entropy_and_grad(x, t, out=x))
    assert peak < 1_000_000, f"allocated {peak} bytes beyond the inputs"
    # and with weights, ignore_index hits and label smoothing (workload F)
    w = rng.uniform(0.5, 2.0, size=1000).astype(np.float32)
    t[::7] = -100
    x[...] = rng.standard_normal((8192, 1000), dtype=np.float32)
    peak = peak_allocation(lambda: fastce.cross_entropy_and_grad(
        x, t, weight=w, label_smoothing=0.1, out=x))
    assert peak < 1_000_000, f"allocated {peak} bytes beyond the inputs"


def test_cross_entropy_and_grad_allocates_only_the_gradient():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8192, 1000), dtype=np.float32)
    t = rng.integers(0, 1000, size=8192)
    fastce.cross_entropy_and_grad(x, t)
    peak = peak_allocation(lambda: fastce.cross_entropy_and_grad(x, t))
    assert peak < x.nbytes + 1_000_000, f"allocated {peak} bytes for a {x.nbytes} gradient"


def test_forward_cross_entropy_allocates_under_1_percent_of_the_input():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1024, 32768), dtype=np.float32)
    t = rng.integers(0, 32768, size=1024)
    fastce.cross_entropy(x, t)
    peak = peak_allocation(lambda: fastce.cross_entropy(x, t))
    assert peak < 0.01 * x.nbytes, f"allocated {peak} bytes for a {x.nbytes}-byte input"
    peak = peak_allocation(lambda: fastce.cross_entropy(x, t, reduction="none"))
    assert peak < 0.01 * x.nbytes, f"allocated {peak} bytes for a {x.nbytes}-byte input"
