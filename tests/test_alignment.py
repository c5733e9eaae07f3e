"""Unaligned buffers (np.frombuffer at an odd offset): the kernels read and
write elements directly, which C only allows on aligned addresses (UBSan
flags it; some CPUs fault).  Inputs are copied to aligned memory and an
unaligned out= is written through an aligned scratch."""
import numpy as np
import pytest

import fastce


def _unaligned(a):
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_losses_with_unaligned_target_weight_and_grad_output_match_aligned(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4)).astype(dtype)
    y = rng.random((5, 4)).astype(dtype)
    w = rng.random((5, 4)).astype(dtype) + 0.5
    pw = rng.random(4).astype(dtype) + 0.5
    go = rng.normal(size=(5, 4)).astype(dtype)
    expected = fastce.binary_cross_entropy_with_logits_and_grad(
        x, y, w, reduction="none", pos_weight=pw, grad_output=go)
    got = fastce.binary_cross_entropy_with_logits_and_grad(
        _unaligned(x), _unaligned(y), _unaligned(w), reduction="none",
        pos_weight=_unaligned(pw), grad_output=_unaligned(go))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    p = rng.random((5, 4)).astype(dtype)
    np.testing.assert_array_equal(
        fastce.binary_cross_entropy(_unaligned(p), _unaligned(y), _unaligned(w)),
        fastce.binary_cross_entropy(p, y, w))


def test_cross_entropy_with_unaligned_probability_targets_and_grad_output_match_aligned():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5))
    p = rng.random((6, 5))
    p /= p.sum(axis=1, keepdims=True)
    go = rng.normal(size=6)
    expected = fastce.cross_entropy_and_grad(x, p, reduction="none", grad_output=go)
    got = fastce.cross_entropy_and_grad(_unaligned(x), _unaligned(p), reduction="none",
                                        grad_output=_unaligned(go))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_unaligned_out_receives_the_gradient_through_an_aligned_scratch():
    x = np.random.default_rng(2).normal(size=(3, 4))
    out = _unaligned(np.full((3, 4), 7.0))
    loss, grad = fastce.cross_entropy_and_grad(x, [0, 1, 2], out=out)
    assert grad is out
    np.testing.assert_array_equal(out, fastce.cross_entropy_and_grad(x, [0, 1, 2])[1])
