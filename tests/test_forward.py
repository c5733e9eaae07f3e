"""Forward values of every loss and of the softmax family against PyTorch
(the oracle), plus the layout, edge-case and API rules of SPEC sections 2-3
that concern forward results.

Randomized matrices use data seeded from the test parameters
(`_helpers.rng_for`), so every case is reproducible on its own.
"""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import fastce
from _helpers import (
    assert_close,
    assert_result_type,
    rng_for,
    torch_bce,
    torch_bce_with_logits,
    torch_ce,
    torch_log_softmax,
    torch_logsumexp,
    torch_nll,
    torch_reference,
    torch_softmax,
)

torch = pytest.importorskip("torch")

F32, F64, F16 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)
REDUCTIONS = ["mean", "sum", "none"]

# ------------------------------------------------------------------ data --

C = 5
# batch layout of each shape kind: (N, extra spatial dims); None = unbatched (C,)
SHAPE_KINDS = {
    "1d": None,
    "2d": (7, ()),
    "3d": (4, (3,)),
    "4d": (3, (2, 4)),
}
# where the class axis sits and how it is named
AXIS_MODES = ["default", "axis_last", "dim_first"]


def layout(shape_kind, axis_mode, n_cls=C):
    """(input shape, fastce axis kwargs, class axis as int, batch shape)."""
    spec = SHAPE_KINDS[shape_kind]
    kwargs = {"default": {}, "axis_last": {"axis": -1}, "dim_first": {"dim": 0}}[axis_mode]
    if spec is None:
        return (n_cls,), kwargs, 0, ()
    n, extra = spec
    if axis_mode == "default":
        shape, ax = (n, n_cls, *extra), 1
    elif axis_mode == "axis_last":
        shape, ax = (n, *extra, n_cls), len(extra) + 1
    else:
        shape, ax = (n_cls, n, *extra), 0
    return shape, kwargs, ax, (n, *extra)


def oracle_axis(kwargs):
    return kwargs.get("axis", kwargs.get("dim"))


def logits(rng, shape, dtype, scale=2.0):
    return (rng.normal(size=shape) * scale).astype(dtype)


def index_targets(rng, batch_shape, n_cls, ignore_mode):
    """(targets, ignore_index) for ignore_mode in none / hits / class0."""
    t = rng.integers(0, n_cls, size=batch_shape).astype(np.int64)
    if ignore_mode == "none":
        return t, -100
    if ignore_mode == "hits":
        if t.ndim == 0:
            return np.array(-100, dtype=np.int64), -100
        flat = t.reshape(-1)
        mask = rng.random(flat.size) < 0.35
        mask[0], mask[-1] = True, False  # at least one hit, one kept
        flat[mask] = -100
        return t, -100
    # ignore_index=0 is a valid class: targets 0 are ignored, others kept
    if t.ndim == 0:
        return np.array(2, dtype=np.int64), 0
    flat = t.reshape(-1)
    flat[0] = 0
    flat[-1] = max(1, flat[-1])
    return t, 0


def probability_targets(rng, shape, ax, dtype):
    y = rng.random(size=shape)
    y[rng.random(size=shape) < 0.2] = 0.0
    y = np.moveaxis(y, ax, -1)
    empty = y.sum(axis=-1) == 0
    y[empty, 0] = 1.0
    y = y / y.sum(axis=-1, keepdims=True)
    return np.moveaxis(y, -1, ax).astype(dtype)


def expected_shape(reduction, batch_shape):
    return batch_shape if reduction == "none" else ()


# ------------------------------------------------- cross_entropy matrices --

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("ignore_mode", ["none", "hits", "class0"])
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
@pytest.mark.parametrize("axis_mode", AXIS_MODES)
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape_kind", list(SHAPE_KINDS))
def test_cross_entropy_index_targets_match_torch(shape_kind, dtype, axis_mode, weighted,
                                                 ignore_mode, label_smoothing, reduction):
    rng = rng_for("ce-index", shape_kind, dtype.name, axis_mode, weighted, ignore_mode,
                  label_smoothing, reduction)
    shape, kw, ax, batch = layout(shape_kind, axis_mode)
    x = logits(rng, shape, dtype)
    t, ignore_index = index_targets(rng, batch, C, ignore_mode)
    w = rng.uniform(0.2, 2.0, size=C).astype(dtype) if weighted else None

    got = fastce.cross_entropy(x, t, weight=w, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing, **kw)
    want = torch_ce(x, t, weight=w, ignore_index=ignore_index, reduction=reduction,
                    label_smoothing=label_smoothing, axis=oracle_axis(kw))
    assert_result_type(got, dtype, expected_shape(reduction, batch))
    assert_close(got, want, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
@pytest.mark.parametrize("axis_mode", AXIS_MODES)
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape_kind", list(SHAPE_KINDS))
def test_cross_entropy_probability_targets_match_torch(shape_kind, dtype, axis_mode,
                                                       weighted, label_smoothing, reduction):
    rng = rng_for("ce-prob", shape_kind, dtype.name, axis_mode, weighted,
                  label_smoothing, reduction)
    shape, kw, ax, batch = layout(shape_kind, axis_mode)
    x = logits(rng, shape, dtype)
    y = probability_targets(rng, shape, ax, dtype)
    w = rng.uniform(0.2, 2.0, size=C).astype(dtype) if weighted else None

    got = fastce.cross_entropy(x, y, weight=w, reduction=reduction,
                               label_smoothing=label_smoothing, **kw)
    want = torch_ce(x, y, weight=w, reduction=reduction, label_smoothing=label_smoothing,
                    axis=oracle_axis(kw))
    assert_result_type(got, dtype, expected_shape(reduction, batch))
    assert_close(got, want, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ignore_mode", ["none", "hits", "class0"])
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
@pytest.mark.parametrize("axis_mode", AXIS_MODES)
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape_kind", list(SHAPE_KINDS))
def test_nll_loss_matches_torch(shape_kind, dtype, axis_mode, weighted, ignore_mode,
                                reduction):
    rng = rng_for("nll", shape_kind, dtype.name, axis_mode, weighted, ignore_mode, reduction)
    shape, kw, ax, batch = layout(shape_kind, axis_mode)
    x = logits(rng, shape, dtype)  # nll_loss takes any values, not only log-probs
    t, ignore_index = index_targets(rng, batch, C, ignore_mode)
    w = rng.uniform(0.2, 2.0, size=C).astype(dtype) if weighted else None

    got = fastce.nll_loss(x, t, weight=w, ignore_index=ignore_index, reduction=reduction,
                          **kw)
    want = torch_nll(x, t, weight=w, ignore_index=ignore_index, reduction=reduction,
                     axis=oracle_axis(kw))
    assert_result_type(got, dtype, expected_shape(reduction, batch))
    assert_close(got, want, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("target_kind", ["index", "prob"])
@pytest.mark.parametrize("shape_kind", list(SHAPE_KINDS))
def test_cross_entropy_float16_is_computed_in_float32_and_returned_float16(
        shape_kind, target_kind, label_smoothing, reduction):
    rng = rng_for("ce-f16", shape_kind, target_kind, label_smoothing, reduction)
    shape, kw, ax, batch = layout(shape_kind, "default")
    x = logits(rng, shape, F16)
    if target_kind == "index":
        t, _ = index_targets(rng, batch, C, "hits")
    else:
        t = probability_targets(rng, shape, ax, F16)
    w = rng.uniform(0.5, 2.0, size=C)
    got = fastce.cross_entropy(x, t, weight=w, reduction=reduction,
                               label_smoothing=label_smoothing)
    want = torch_ce(x, t, weight=w, reduction=reduction, label_smoothing=label_smoothing)
    assert_result_type(got, F16, expected_shape(reduction, batch))
    assert_close(got, want, F16)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["nll_loss", "binary_cross_entropy_with_logits",
                                  "binary_cross_entropy"])
def test_other_losses_float16_are_computed_in_float32_and_returned_float16(name,
                                                                           reduction):
    rng = rng_for("f16", name, reduction)
    x = logits(rng, (6, C), F16)
    if name == "nll_loss":
        t = rng.integers(0, C, size=6)
    else:
        t = rng.random((6, C)).astype(F16)
    if name == "binary_cross_entropy":
        x = rng.uniform(0.01, 0.99, size=(6, C)).astype(F16)
    got = getattr(fastce, name)(x, t, reduction=reduction)
    want = torch_reference(name, x, t, reduction=reduction)
    assert_result_type(got, F16, (6,) if reduction == "none" and name == "nll_loss"
                       else (6, C) if reduction == "none" else ())
    assert_close(got, want, F16)


# ----------------------------------------------------- binary losses --

BCE_SHAPES = {"1d": (C,), "2d": (6, C), "3d": (3, 4, C)}
WEIGHT_MODES = ["none", "scalar", "classes", "column", "full"]


def bce_weight(rng, mode, shape, dtype):
    if mode == "none":
        return None
    if mode == "scalar":
        return np.asarray(rng.uniform(0.2, 2.0), dtype=dtype)
    if mode == "classes":
        size = shape[-1:]
    elif mode == "column":  # (N, 1) for (N, C): broadcast along the last axis
        size = shape[:-1] + (1,)
    else:
        size = shape
    return rng.uniform(0.2, 2.0, size=size).astype(dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos_weighted", [False, True], ids=["nopos", "pos_weight"])
@pytest.mark.parametrize("weight_mode", WEIGHT_MODES)
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape_kind", list(BCE_SHAPES))
def test_bce_with_logits_matches_torch(shape_kind, dtype, weight_mode, pos_weighted,
                                       reduction):
    rng = rng_for("bcel", shape_kind, dtype.name, weight_mode, pos_weighted, reduction)
    shape = BCE_SHAPES[shape_kind]
    x = logits(rng, shape, dtype, scale=3.0)
    y = rng.random(size=shape).astype(dtype)
    y.reshape(-1)[::3] = np.round(y.reshape(-1)[::3])  # some hard 0/1 labels
    w = bce_weight(rng, weight_mode, shape, dtype)
    pw = rng.uniform(0.3, 3.0, size=shape[-1:]).astype(dtype) if pos_weighted else None

    got = fastce.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction,
                                                  pos_weight=pw)
    want = torch_bce_with_logits(x, y, weight=w, pos_weight=pw, reduction=reduction)
    assert_result_type(got, dtype, shape if reduction == "none" else ())
    assert_close(got, want, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_mode", WEIGHT_MODES)
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape_kind", list(BCE_SHAPES))
def test_binary_cross_entropy_matches_torch(shape_kind, dtype, weight_mode, reduction):
    rng = rng_for("bce", shape_kind, dtype.name, weight_mode, reduction)
    shape = BCE_SHAPES[shape_kind]
    p = rng.uniform(0.001, 0.999, size=shape).astype(dtype)
    y = rng.random(size=shape).astype(dtype)
    y.reshape(-1)[::3] = np.round(y.reshape(-1)[::3])
    w = bce_weight(rng, weight_mode, shape, dtype)

    got = fastce.binary_cross_entropy(p, y, weight=w, reduction=reduction)
    want = torch_bce(p, y, weight=w, reduction=reduction)
    assert_result_type(got, dtype, shape if reduction == "none" else ())
    assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_binary_cross_entropy_clamps_each_log_at_minus_100(dtype):
    p = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1e-50, 1 - 1e-12], dtype=dtype)
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.5, 1.0, 0.0], dtype=dtype)
    got = fastce.binary_cross_entropy(p, y, reduction="none")
    want = torch_bce(p, y, reduction="none")
    assert np.all(np.isfinite(got))
    assert_close(got[:4], [0.0, 100.0, 100.0, 0.0], dtype)
    assert_close(got, want, dtype)


# ---------------------------------------------------- softmax family --

@pytest.mark.parametrize("axis_mode", AXIS_MODES)
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape_kind", list(SHAPE_KINDS))
@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_softmax_family_matches_torch_along_class_axis(name, shape_kind, dtype, axis_mode):
    rng = rng_for("softmax", name, shape_kind, dtype.name, axis_mode)
    shape, kw, ax, batch = layout(shape_kind, axis_mode)
    x = logits(rng, shape, dtype, scale=4.0)
    got = getattr(fastce, name)(x, **kw)
    want = torch_reference(name, x, axis=ax)
    out_shape = batch if name == "logsumexp" else shape
    assert np.shape(got) == out_shape
    assert got.dtype == dtype
    assert_close(got, want, dtype)


@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_softmax_family_float16_is_returned_float16(name):
    rng = rng_for("softmax-f16", name)
    x = logits(rng, (4, C), F16)
    got = getattr(fastce, name)(x)
    assert got.dtype == F16
    assert_close(got, torch_reference(name, x, axis=1), F16)


@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_softmax_family_explicit_middle_axis_of_4d_input(name):
    rng = rng_for("softmax-mid", name)
    x = logits(rng, (2, 3, C, 4), F64)
    got = getattr(fastce, name)(x, axis=2)
    assert_close(got, torch_reference(name, x, axis=2), F64)
    assert_close(getattr(fastce, name)(x, dim=-2), got, F64)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_softmax_family_is_overflow_free_at_large_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0], [-1e4, -1e4 + 2.0, -1e4, -1e4]], dtype=dtype)
    for name, fn in (("log_softmax", fastce.log_softmax), ("softmax", fastce.softmax),
                     ("logsumexp", fastce.logsumexp)):
        got = fn(x)
        assert np.all(np.isfinite(got)), name
        assert_close(got, torch_reference(name, x, axis=1), dtype, err_msg=name)


def test_softmax_rows_sum_to_one_and_exp_of_log_softmax_is_softmax():
    rng = rng_for("softmax-consistency")
    x = logits(rng, (8, 13), F64, scale=5.0)
    s = fastce.softmax(x)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(np.exp(fastce.log_softmax(x)), s, rtol=1e-13)
    np.testing.assert_allclose(fastce.log_softmax(x), x - fastce.logsumexp(x)[:, None],
                               rtol=1e-13, atol=1e-13)


def test_one_dimensional_input_is_unbatched_for_softmax_family():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(fastce.softmax(x), np.exp(x) / np.exp(x).sum(), rtol=1e-14)
    assert_close(fastce.logsumexp(x), np.log(np.exp(x).sum()), F64)
    assert np.ndim(fastce.logsumexp(x)) == 0


# ------------------------------------------------ layout / memory order --

def _layout_variant(base_contig, variant):
    """A non-default-layout array with the same values as ``base_contig``."""
    a = np.ascontiguousarray(base_contig)
    if variant == "fortran":
        v = np.asfortranarray(a)
        assert not v.flags.c_contiguous or a.ndim < 2
    elif variant == "sliced":
        big = np.zeros(tuple(2 * s + 2 for s in a.shape), dtype=a.dtype)
        sl = tuple(slice(1, 1 + 2 * s, 2) for s in a.shape)
        big[sl] = a
        v = big[sl]
    elif variant == "negative_stride":
        rev = tuple(slice(None, None, -1) for _ in a.shape)
        v = np.ascontiguousarray(a[rev])[rev]
        assert all(s < 0 for s in v.strides if s)
    elif variant == "transposed":
        v = np.ascontiguousarray(a.T).T
    elif variant == "readonly":
        v = a.copy()
        v.setflags(write=False)
    elif variant == "list":
        return a.tolist()
    else:
        raise AssertionError(variant)
    np.testing.assert_array_equal(v, a)
    return v


LAYOUT_VARIANTS = ["fortran", "sliced", "negative_stride", "transposed", "readonly"]


def _layout_cases():
    """name -> fn(x, t, w) and a data builder (x, t, w) all C-contiguous."""
    def ce_index(rng):
        x = logits(rng, (4, C, 3), F64)
        t = rng.integers(0, C, size=(4, 3))
        t[0, 0] = -100
        return x, t, rng.uniform(0.5, 2, C)

    def ce_prob(rng):
        x = logits(rng, (4, C, 3), F32)
        return x, probability_targets(rng, x.shape, 1, F32), rng.uniform(0.5, 2, C)

    def ce_last(rng):
        x = logits(rng, (3, 4, C), F32)
        return x, rng.integers(0, C, size=(3, 4)), None

    def bin_logits(rng):
        x = logits(rng, (6, C), F64)
        return x, rng.random((6, C)), rng.uniform(0.5, 2, (6, C))

    def bin_probs(rng):
        return (rng.uniform(0.01, 0.99, (6, C)).astype(F32), rng.random((6, C)).astype(F32),
                rng.uniform(0.5, 2, (6, C)).astype(F32))

    def soft(rng):
        return logits(rng, (4, C, 3), F64), None, None

    return {
        "cross_entropy_index": (ce_index, lambda x, t, w: fastce.cross_entropy(
            x, t, w, reduction="none", label_smoothing=0.1)),
        "cross_entropy_prob": (ce_prob, lambda x, t, w: fastce.cross_entropy(
            x, t, w, reduction="none")),
        "cross_entropy_axis_last": (ce_last, lambda x, t, w: fastce.cross_entropy(
            x, t, axis=-1, reduction="none")),
        "cross_entropy_and_grad": (ce_index, lambda x, t, w: fastce.cross_entropy_and_grad(
            x, t, w, reduction="sum")),
        "nll_loss": (ce_index, lambda x, t, w: fastce.nll_loss(x, t, w, reduction="none")),
        "nll_loss_and_grad": (ce_index, lambda x, t, w: fastce.nll_loss_and_grad(x, t, w)),
        "bce_with_logits": (bin_logits, lambda x, t, w: fastce.binary_cross_entropy_with_logits(
            x, t, w, reduction="none")),
        "bce_with_logits_and_grad": (
            bin_logits,
            lambda x, t, w: fastce.binary_cross_entropy_with_logits_and_grad(x, t, w)),
        "bce": (bin_probs, lambda x, t, w: fastce.binary_cross_entropy(x, t, w,
                                                                        reduction="none")),
        "log_softmax": (soft, lambda x, t, w: fastce.log_softmax(x)),
        "softmax": (soft, lambda x, t, w: fastce.softmax(x, axis=2)),
        "logsumexp": (soft, lambda x, t, w: fastce.logsumexp(x, axis=0)),
    }


LAYOUT_CASES = _layout_cases()


def _assert_same_results(got, want):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same_results(g, w)
        return
    assert np.shape(got) == np.shape(want)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_array_equal(got, want)


def _layout_params():
    """(case, variant, operand) for every operand a case has; Python lists
    only where they convert back to the same dtype (float64 input)."""
    params = []
    for case, (build, _) in LAYOUT_CASES.items():
        x, t, w = build(rng_for("layout", case))
        for operand, arr in (("input", x), ("target", t), ("weight", w)):
            if arr is None:
                continue
            for variant in LAYOUT_VARIANTS + ["list"]:
                if variant == "list" and arr.dtype.kind == "f" and arr.dtype != F64:
                    continue
                params.append((case, variant, operand))
    return params


@pytest.mark.parametrize("case,variant,operand", _layout_params())
def test_non_contiguous_operands_give_same_result_as_contiguous_copy(case, variant, operand):
    build, fn = LAYOUT_CASES[case]
    x, t, w = build(rng_for("layout", case))
    operands = {"input": x, "target": t, "weight": w}
    want = fn(x, t, w)
    operands[operand] = _layout_variant(operands[operand], variant)
    got = fn(operands["input"], operands["target"], operands["weight"])
    _assert_same_results(got, want)


@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp", "cross_entropy"])
def test_zero_stride_broadcast_input_gives_same_result_as_contiguous_copy(name):
    row = logits(rng_for("bcast", name), (1, C), F64)
    x = np.broadcast_to(row, (6, C))
    assert x.strides[0] == 0 and not x.flags.writeable
    if name == "cross_entropy":
        t = np.arange(6) % C
        np.testing.assert_array_equal(fastce.cross_entropy(x, t, reduction="none"),
                                      fastce.cross_entropy(x.copy(), t, reduction="none"))
    else:
        fn = getattr(fastce, name)
        np.testing.assert_array_equal(fn(x), fn(x.copy()))


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "bce_with_logits", "bce",
                                  "log_softmax", "softmax", "logsumexp"])
def test_forward_calls_never_modify_their_inputs(name):
    rng = rng_for("nomodify", name)
    x = logits(rng, (5, C), F32)
    t = rng.integers(0, C, 5)
    w = rng.uniform(0.5, 2, C).astype(F32)
    y = rng.random((5, C)).astype(F32)
    copies = [a.copy() for a in (x, t, w, y)]
    if name == "cross_entropy":
        fastce.cross_entropy(x, t, w, label_smoothing=0.2)
        fastce.cross_entropy(x, y, w, label_smoothing=0.2)
    elif name == "nll_loss":
        fastce.nll_loss(x, t, w)
    elif name == "bce_with_logits":
        fastce.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=w)
    elif name == "bce":
        x[:] = rng.uniform(0.01, 0.99, x.shape)
        copies[0] = x.copy()
        fastce.binary_cross_entropy(x, y, weight=w)
    else:
        getattr(fastce, name)(x)
    for before, after in zip(copies, (x, t, w, y)):
        np.testing.assert_array_equal(after, before)


# ------------------------------------------------------- target dtypes --

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
              np.uint64]


@pytest.mark.parametrize("fn_name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("int_dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_integer_targets_of_every_integer_dtype_give_int64_result(int_dtype, fn_name):
    rng = rng_for("intdtype", np.dtype(int_dtype).name, fn_name)
    x = logits(rng, (9, C, 2), F64)
    t64 = rng.integers(0, C, size=(9, 2))
    signed = np.dtype(int_dtype).kind == "i"
    if signed:
        t64[1, 0] = -100  # ignored, representable in every signed dtype
    fn = getattr(fastce, fn_name)
    kw = {"label_smoothing": 0.1} if fn_name == "cross_entropy" else {}
    want = fn(x, t64, reduction="none", **kw)
    got = fn(x, t64.astype(int_dtype), reduction="none", **kw)
    np.testing.assert_array_equal(got, want)
    assert_close(got, torch_reference(fn_name, x, t64, reduction="none", **kw), F64)
    assert_close(fn(x, t64.astype(int_dtype), **kw), fn(x, t64, **kw), F64)


@pytest.mark.parametrize("int_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("contiguous", [True, False])
def test_int32_and_int64_targets_give_torch_results_contiguous_or_not(int_dtype, contiguous):
    rng = rng_for("int3264", np.dtype(int_dtype).name, contiguous)
    x = logits(rng, (8, C), F32)
    t = rng.integers(0, C, size=16).astype(int_dtype)
    t = t[::2] if not contiguous else t[:8]
    before = t.copy()
    got = fastce.cross_entropy(x, t, reduction="none")
    assert_close(got, torch_ce(x, t, reduction="none"), F32)
    assert_close(fastce.nll_loss(x, t), torch_nll(x, t), F32)
    np.testing.assert_array_equal(t, before)  # targets read in place, never written


def test_python_list_inputs_are_accepted_as_array_likes():
    x = [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    assert_close(fastce.cross_entropy(x, [1, 2]), torch_ce(np.array(x), np.array([1, 2])),
                 F64)
    assert_close(fastce.binary_cross_entropy_with_logits([0.5, -1.0], [1.0, 0.0]),
                 torch_bce_with_logits(np.array([0.5, -1.0]), np.array([1.0, 0.0])), F64)


# -------------------------------------------------------- worked example --

def test_spec_worked_example_unweighted_is_0_9076():
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    got = fastce.cross_entropy(x, [1, 2], [1.0, 1.0, 1.0])
    assert round(float(got), 4) == 0.9076
    assert_close(got, (1.4076059644443806 + 0.4076059644443806) / 2, F64)


def test_spec_worked_example_weighted_is_1_3167():
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    got = fastce.cross_entropy(x, [1, 2], [1.0, 10.0, 1.0])
    assert round(float(got), 4) == 1.3167
    assert_close(got, (10 * 1.4076059644443806 + 0.4076059644443806) / 11, F64)


def test_weighted_mean_divides_by_target_weight_sum():
    rng = rng_for("weighted-mean")
    x = logits(rng, (10, C), F64)
    t = rng.integers(0, C, 10)
    t[[2, 7]] = -100
    w = rng.uniform(0.1, 3.0, C)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    keep = t != -100
    num = -(w[t[keep]] * logp[keep, t[keep]]).sum()
    assert_close(fastce.cross_entropy(x, t, w), num / w[t[keep]].sum(), F64)
    assert_close(fastce.cross_entropy(x, t, w, reduction="sum"), num, F64)


def test_label_smoothing_follows_spec_formula():
    rng = rng_for("ls-formula")
    x = logits(rng, (6, C), F64)
    t = rng.integers(0, C, 6)
    t[3] = -100
    w = rng.uniform(0.1, 3.0, C)
    eps = 0.3
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    keep = t != -100
    tk = np.where(keep, t, 0)
    per = (1 - eps) * (-w[tk] * logp[np.arange(6), tk]) + eps / C * -(w * logp).sum(axis=1)
    per[~keep] = 0.0
    assert_close(fastce.cross_entropy(x, t, w, reduction="none", label_smoothing=eps), per,
                 F64)
    assert_close(fastce.cross_entropy(x, t, w, label_smoothing=eps),
                 per.sum() / w[t[keep]].sum(), F64)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_scaling_weight_by_a_constant_does_not_change_the_mean(dtype, label_smoothing):
    rng = rng_for("scale-weight", dtype.name, label_smoothing)
    x = logits(rng, (12, C, 2), dtype)
    t = rng.integers(0, C, (12, 2))
    t[0, 1] = t[5, 0] = -100
    w = rng.uniform(0.2, 2.0, C)
    base = fastce.cross_entropy(x, t, w, label_smoothing=label_smoothing)
    for k in (1e-3, 7.5, 1e3):
        assert_close(fastce.cross_entropy(x, t, k * w, label_smoothing=label_smoothing),
                     base, dtype, err_msg=f"scale {k}")
    assert_close(fastce.nll_loss(x, t, 7.5 * w), fastce.nll_loss(x, t, w), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unnormalized_and_multi_hot_probability_targets_match_torch(reduction):
    rng = rng_for("unnormalized", reduction)
    x = logits(rng, (6, C, 2), F64)
    y = (rng.random((6, C, 2)) < 0.4).astype(F64) * rng.uniform(0.5, 3.0, (6, C, 2))
    w = rng.uniform(0.2, 2.0, C)
    got = fastce.cross_entropy(x, y, w, reduction=reduction, label_smoothing=0.15)
    assert_close(got, torch_ce(x, y, weight=w, reduction=reduction, label_smoothing=0.15),
                 F64)


def test_zero_weight_on_every_target_class_gives_nan_mean_like_torch():
    x = logits(rng_for("zero-weight"), (4, C), F64)
    t = np.array([0, 1, 0, 1])
    w = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    got = fastce.cross_entropy(x, t, w)
    assert np.isnan(got)
    assert np.isnan(torch_ce(x, t, weight=w))
    assert fastce.cross_entropy(x, t, w, reduction="sum") == 0.0


def test_negative_and_zero_class_weights_match_torch():
    rng = rng_for("neg-weight")
    x = logits(rng, (8, C), F64)
    t = rng.integers(0, C, 8)
    w = np.array([-1.0, 0.0, 2.0, 0.5, -0.25])
    for ls in (0.0, 0.2):
        for reduction in REDUCTIONS:
            assert_close(fastce.cross_entropy(x, t, w, reduction=reduction, label_smoothing=ls),
                         torch_ce(x, t, weight=w, reduction=reduction, label_smoothing=ls),
                         F64, err_msg=f"{reduction} ls={ls}")


def test_probability_mean_divides_by_number_of_batch_elements():
    rng = rng_for("prob-mean")
    x = logits(rng, (4, C, 3), F64)
    y = probability_targets(rng, x.shape, 1, F64)
    w = rng.uniform(0.1, 3.0, C)
    total = fastce.cross_entropy(x, y, w, reduction="sum")
    assert_close(fastce.cross_entropy(x, y, w), total / 12, F64)


def test_one_hot_probability_targets_equal_index_targets():
    rng = rng_for("onehot")
    x = logits(rng, (7, C), F64)
    t = rng.integers(0, C, 7)
    onehot = np.eye(C)[t]
    assert_close(fastce.cross_entropy(x, onehot, reduction="none"),
                 fastce.cross_entropy(x, t, reduction="none"), F64)


def test_cross_entropy_equals_nll_of_log_softmax():
    rng = rng_for("ce-nll")
    x = logits(rng, (5, C, 4), F64)
    t = rng.integers(0, C, (5, 4))
    w = rng.uniform(0.5, 2, C)
    assert_close(fastce.cross_entropy(x, t, w), fastce.nll_loss(fastce.log_softmax(x), t, w),
                 F64)


# ------------------------------------------------------------ edge cases --

@pytest.mark.parametrize("name", ["cross_entropy", "cross_entropy_prob", "nll_loss",
                                  "binary_cross_entropy_with_logits",
                                  "binary_cross_entropy"])
def test_empty_batch_mean_is_nan_sum_is_zero_none_is_empty(name):
    x = np.zeros((0, C))
    if name in ("cross_entropy", "nll_loss"):
        t = np.zeros((0,), dtype=np.int64)
        fn = getattr(fastce, name)
        none_shape = (0,)
    else:
        t = np.zeros((0, C))
        fn = fastce.cross_entropy if name == "cross_entropy_prob" else getattr(fastce, name)
        none_shape = (0,) if name == "cross_entropy_prob" else (0, C)
    mean = fn(x, t)
    total = fn(x, t, reduction="sum")
    none = fn(x, t, reduction="none")
    assert np.isnan(mean)
    assert total == 0.0
    assert_result_type(none, F64, none_shape)
    oracle = "cross_entropy" if name == "cross_entropy_prob" else name
    assert_close(mean, torch_reference(oracle, x, t), F64)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_empty_spatial_dimension_gives_nan_mean_and_empty_none(name):
    x = np.zeros((2, C, 0), dtype=np.float32)
    t = np.zeros((2, 0), dtype=np.int64)
    fn = getattr(fastce, name)
    assert np.isnan(fn(x, t))
    assert fn(x, t, reduction="sum") == 0
    assert_result_type(fn(x, t, reduction="none"), F32, (2, 0))


@pytest.mark.parametrize("name,label_smoothing", [("cross_entropy", 0.0),
                                                   ("cross_entropy", 0.2), ("nll_loss", 0.0)])
def test_all_targets_ignored_gives_nan_mean_and_zero_sum(name, label_smoothing):
    kw = {"label_smoothing": label_smoothing} if label_smoothing else {}
    x = logits(rng_for("allignored"), (4, C), F64)
    t = np.full(4, 3)
    fn = getattr(fastce, name)
    assert np.isnan(fn(x, t, ignore_index=3, **kw))
    assert fn(x, t, ignore_index=3, reduction="sum", **kw) == 0.0
    np.testing.assert_array_equal(fn(x, t, ignore_index=3, reduction="none", **kw),
                                  np.zeros(4))
    assert np.isnan(torch_reference(name, x, t, ignore_index=3, **kw))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.5, 1.0])
def test_single_class_cross_entropy_is_zero(label_smoothing):
    x = logits(rng_for("c1"), (6, 1), F32)
    t = np.zeros(6, dtype=np.int64)
    got = fastce.cross_entropy(x, t, reduction="none", label_smoothing=label_smoothing)
    np.testing.assert_array_equal(got, np.zeros(6, dtype=np.float32))
    assert_close(fastce.cross_entropy(x, np.ones((6, 1), F32),
                                      label_smoothing=label_smoothing),
                 torch_ce(x, np.ones((6, 1), F32), label_smoothing=label_smoothing), F32)
    assert_close(fastce.nll_loss(x, t, reduction="none"), -x[:, 0], F32)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_huge_logits_give_finite_losses_matching_torch(dtype, label_smoothing):
    rng = rng_for("huge", dtype.name, label_smoothing)
    x = rng.choice([-1e4, 1e4, 0.0, 3.0], size=(16, C)).astype(dtype)
    t = rng.integers(0, C, 16)
    got = fastce.cross_entropy(x, t, reduction="none", label_smoothing=label_smoothing)
    assert np.all(np.isfinite(got))
    assert_close(got, torch_ce(x, t, reduction="none", label_smoothing=label_smoothing),
                 dtype)
    y = probability_targets(rng, x.shape, 1, dtype)
    got = fastce.cross_entropy(x, y, reduction="none", label_smoothing=label_smoothing)
    assert np.all(np.isfinite(got))
    assert_close(got, torch_ce(x, y, reduction="none", label_smoothing=label_smoothing),
                 dtype)


@pytest.mark.parametrize("offset", [1e3, 1e4, -1e4])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_cross_entropy_of_logits_with_a_large_common_offset_matches_torch(dtype, offset):
    # the loss is O(1) although the logits are O(offset): it must keep the
    # precision of the O(1) result (PyTorch's x - max - log(sum) does)
    rng = rng_for("offset", dtype.name, offset)
    x = (rng.normal(size=(64, 10)) + offset).astype(dtype)
    t = rng.integers(0, 10, 64)
    for ls in (0.0, 0.1):
        assert_close(fastce.cross_entropy(x, t, reduction="none", label_smoothing=ls),
                     torch_ce(x, t, reduction="none", label_smoothing=ls), dtype,
                     err_msg=f"index targets, label_smoothing={ls}")
    y = probability_targets(rng, x.shape, 1, dtype)
    assert_close(fastce.cross_entropy(x, y, reduction="none"),
                 torch_ce(x, y, reduction="none"), dtype, err_msg="probability targets")
    assert_close(fastce.nll_loss(fastce.log_softmax(x), t, reduction="none"),
                 torch_ce(x, t, reduction="none"), dtype, err_msg="nll of log_softmax")


@pytest.mark.parametrize("offset", [1e2, 1e3, 1e4, -1e4])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_log_softmax_of_logits_with_a_large_common_offset_matches_torch(dtype, offset):
    rng = rng_for("offset-ls", dtype.name, offset)
    x = (rng.normal(size=(16, 10)) + offset).astype(dtype)
    assert_close(fastce.log_softmax(x), torch_log_softmax(x), dtype)
    assert_close(fastce.softmax(x), torch_softmax(x), dtype)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_plus_inf_logit_behaves_as_in_torch(dtype):
    # SPEC 3.8: non-finite input behaves as in PyTorch (+inf is not among the
    # listed deliberate deviations): a +inf logit makes its row NaN
    x = np.array([[np.inf, 1.0, 2.0], [np.inf, np.inf, 0.0], [0.5, 1.0, 2.0]], dtype=dtype)
    t = np.array([0, 2, 1])
    for name in ("log_softmax", "softmax", "logsumexp"):
        assert_close(getattr(fastce, name)(x), torch_reference(name, x, axis=1), dtype,
                     err_msg=name)
    for ls in (0.0, 0.1):
        assert_close(fastce.cross_entropy(x, t, reduction="none", label_smoothing=ls),
                     torch_ce(x, t, reduction="none", label_smoothing=ls), dtype,
                     err_msg=f"label_smoothing={ls}")


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_masked_minus_inf_class_gives_finite_loss_when_target_elsewhere(dtype):
    x = logits(rng_for("maskinf", dtype.name), (4, C), dtype)
    x[:, 2] = -np.inf
    x[1, 4] = -np.inf
    t = np.array([0, 1, 3, 2])
    w = np.array([1.0, 2.0, 3.0, 0.5, 1.5])
    got = fastce.cross_entropy(x, t, w, reduction="none")
    assert np.all(np.isfinite(got[:3]))
    assert_close(got[:3], torch_ce(x, t, weight=w, reduction="none")[:3], dtype)
    assert got[3] == np.inf  # row 3 has its target at -inf
    assert np.isfinite(fastce.cross_entropy(x[:3], t[:3], w))


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_minus_inf_at_the_target_gives_plus_inf(dtype):
    x = np.array([[0.0, -np.inf, 1.0], [0.5, 0.2, 0.1]], dtype=dtype)
    t = np.array([1, 0])
    got = fastce.cross_entropy(x, t, reduction="none")
    assert got[0] == np.inf and np.isfinite(got[1])
    assert fastce.cross_entropy(x, t) == np.inf
    assert fastce.cross_entropy(x, t, reduction="sum") == np.inf
    assert fastce.nll_loss(x, t, reduction="none")[0] == np.inf
    assert_close(got, torch_ce(x, t, reduction="none"), dtype)


def test_masked_class_with_label_smoothing_makes_loss_infinite():
    x = np.array([[0.0, -np.inf, 1.0]])
    got = fastce.cross_entropy(x, [0], label_smoothing=0.1)
    assert got == np.inf
    assert torch_ce(x, np.array([0]), label_smoothing=0.1) == np.inf


def test_masked_class_contributes_nothing_to_the_loss():
    x = logits(rng_for("mask-nothing"), (5, 4), F64)
    t = np.array([0, 1, 3, 0, 1])
    masked = np.insert(x, 2, -np.inf, axis=1)  # class 2 masked
    t_masked = np.where(t >= 2, t + 1, t)
    assert_close(fastce.cross_entropy(masked, t_masked, reduction="none"),
                 fastce.cross_entropy(x, t, reduction="none"), F64)


def test_probability_target_zero_at_minus_inf_logit_gives_finite_loss():
    # SPEC 3.8 (deliberate deviation: PyTorch gives NaN): the y == 0 term of a
    # masked class is dropped, so the loss equals that without the class.
    x = logits(rng_for("prob-maskinf"), (4, 4), F64)
    y = probability_targets(rng_for("prob-maskinf-y"), (4, 4), 1, F64)
    xm = np.insert(x, 1, -np.inf, axis=1)
    ym = np.insert(y, 1, 0.0, axis=1)
    got = fastce.cross_entropy(xm, ym, reduction="none")
    assert np.all(np.isfinite(got))
    assert_close(got, fastce.cross_entropy(x, y, reduction="none"), F64)
    assert_close(got, torch_ce(x, y, reduction="none"), F64)


def test_probability_target_positive_at_minus_inf_logit_gives_plus_inf():
    x = np.array([[0.0, -np.inf, 1.0]])
    y = np.array([[0.5, 0.25, 0.25]])
    assert fastce.cross_entropy(x, y) == np.inf


def test_nan_logit_propagates_to_its_row_only():
    x = logits(rng_for("nan"), (4, C), F64)
    x[2, 3] = np.nan
    t = np.array([0, 1, 2, 3])
    got = fastce.cross_entropy(x, t, reduction="none")
    assert np.isnan(got[2])
    assert np.all(np.isfinite(got[[0, 1, 3]]))
    assert_close(got, torch_ce(x, t, reduction="none"), F64)
    assert np.isnan(fastce.cross_entropy(x, t))
    assert np.isnan(fastce.cross_entropy(x, np.eye(C)[t]))
    assert np.isnan(fastce.log_softmax(x)[2]).all()
    assert np.isnan(fastce.softmax(x)[2]).all()
    assert np.isnan(fastce.logsumexp(x)[2])
    assert np.all(np.isfinite(fastce.logsumexp(x)[[0, 1, 3]]))


def test_nan_in_nll_input_propagates_only_through_the_gathered_entry():
    x = np.log(np.full((3, C), 1.0 / C))
    x[0, 0] = np.nan  # gathered
    x[1, 0] = np.nan  # not gathered
    got = fastce.nll_loss(x, [0, 2, 1], reduction="none")
    assert np.isnan(got[0]) and np.isfinite(got[1:]).all()
    assert_close(got, torch_nll(x, np.array([0, 2, 1]), reduction="none"), F64)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_ignored_position_with_nan_logits_contributes_exactly_zero(label_smoothing):
    x = logits(rng_for("nan-ignored"), (3, C), F64)
    x[1] = np.nan
    t = np.array([0, -100, 4])
    got = fastce.cross_entropy(x, t, reduction="none", label_smoothing=label_smoothing)
    assert got[1] == 0.0
    assert np.isfinite(fastce.cross_entropy(x, t, label_smoothing=label_smoothing))
    keep = [0, 2]
    assert_close(fastce.cross_entropy(x, t, label_smoothing=label_smoothing),
                 fastce.cross_entropy(x[keep], t[keep], label_smoothing=label_smoothing), F64)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_bce_with_logits_is_finite_and_correct_at_abs_1e4(dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4, 1e4, -1e4], dtype=dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 0.7], dtype=dtype)
    pw = np.array(2.0, dtype=dtype)
    got = fastce.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert np.all(np.isfinite(got))
    assert_close(got, [0.0, 0.0, 1e4, 1e4, 7e3, 7e3], dtype)
    assert_close(got, torch_bce_with_logits(x, y, reduction="none"), dtype)
    got = fastce.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pw)
    assert np.all(np.isfinite(got))
    assert_close(got, torch_bce_with_logits(x, y, reduction="none", pos_weight=pw), dtype)


@pytest.mark.parametrize("pos_weighted", [False, True])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_bce_with_logits_at_infinite_logits_gives_mathematical_limits(dtype, pos_weighted):
    # SPEC 3.4: deliberate deviation from PyTorch (which returns NaN here)
    inf = np.inf
    x = np.array([-inf, inf, -inf, -inf, inf, inf, 0.5], dtype=dtype)
    y = np.array([0.0, 1.0, 0.9, 1.0, 0.0, 0.1, 0.3], dtype=dtype)
    pw = np.full(7, 2.5, dtype=dtype) if pos_weighted else None
    got = fastce.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pw)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got[:6], [0.0, 0.0, inf, inf, inf, inf])
    assert_close(got[6:], torch_bce_with_logits(x[6:], y[6:], reduction="none",
                                                pos_weight=None if pw is None else pw[6:]),
                 dtype)
    assert fastce.binary_cross_entropy_with_logits(
        x[:2], y[:2], pos_weight=None if pw is None else pw[:2]) == 0
    assert fastce.binary_cross_entropy_with_logits(x[:3], y[:3], reduction="sum") == inf


def test_bce_with_logits_limits_at_infinity_are_zero_with_weights():
    x = np.array([[-np.inf, np.inf]])
    y = np.array([[0.0, 1.0]])
    got = fastce.binary_cross_entropy_with_logits(x, y, weight=[[3.0, 4.0]],
                                                  pos_weight=[2.0, 5.0], reduction="sum")
    assert got == 0.0


@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "binary_cross_entropy"])
def test_binary_losses_accept_zero_dimensional_input(name):
    x = np.float64(0.3)
    y = np.float64(1.0)
    fn = getattr(fastce, name)
    for reduction in REDUCTIONS:
        got = fn(x, y, reduction=reduction)
        assert np.ndim(got) == 0
        assert np.asarray(got).dtype == F64
        assert_close(got, torch_reference(name, np.asarray(x), np.asarray(y),
                                          reduction=reduction), F64)


def test_bce_with_logits_nan_logit_propagates():
    got = fastce.binary_cross_entropy_with_logits(np.array([0.1, np.nan]),
                                                  np.array([1.0, 0.0]), reduction="none")
    assert np.isfinite(got[0]) and np.isnan(got[1])


@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
@pytest.mark.parametrize("shape", [(3, 0), (0,), (2, 0, 4)])
def test_empty_class_axis_softmax_returns_empty_array(name, shape):
    x = np.zeros(shape, dtype=np.float32)
    got = getattr(fastce, name)(x)
    assert got.shape == shape and got.dtype == F32
    assert_close(got, torch_reference(name, x, axis=None), F32)


@pytest.mark.parametrize("shape,batch", [((3, 0), (3,)), ((0,), ()), ((2, 0, 4), (2, 4))])
def test_empty_class_axis_logsumexp_is_minus_inf(shape, batch):
    x = np.zeros(shape, dtype=np.float64)
    got = fastce.logsumexp(x)
    assert np.shape(got) == batch
    assert np.all(np.asarray(got) == -np.inf)
    assert_close(got, torch_logsumexp(x), F64)


@pytest.mark.parametrize("name,target_kind", [("cross_entropy", "index"),
                                               ("cross_entropy", "prob"),
                                               ("nll_loss", "index")])
def test_unbatched_reduction_none_gives_zero_dimensional_result(name, target_kind):
    x = np.array([0.5, 1.5, -0.3], dtype=np.float32)
    t = np.int64(1) if target_kind == "index" else np.array([0.2, 0.7, 0.1], np.float32)
    got = getattr(fastce, name)(x, t, reduction="none")
    assert np.ndim(got) == 0
    assert np.asarray(got).dtype == F32
    assert_close(got, torch_reference(name, x, t, reduction="none"), F32)
    assert_close(got, getattr(fastce, name)(x, t), F32)


@pytest.mark.parametrize("axis_kw", [{}, {"axis": 0}, {"axis": -1}, {"dim": 0}])
def test_unbatched_class_axis_is_zero_whatever_the_default(axis_kw):
    x = np.array([1.0, 2.0, 3.0])
    assert_close(fastce.cross_entropy(x, 2, **axis_kw), torch_ce(x, np.int64(2)), F64)
    assert_close(fastce.log_softmax(x, **axis_kw), torch_log_softmax(x, axis=0), F64)


@pytest.mark.parametrize("dtype", [F32, F64, F16], ids=["f32", "f64", "f16"])
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss",
                                  "binary_cross_entropy_with_logits",
                                  "binary_cross_entropy"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reduced_losses_are_numpy_scalars_of_the_input_dtype(name, dtype, reduction):
    x = np.full((3, 4), 0.25, dtype=dtype)
    t = np.array([0, 1, 3]) if name in ("cross_entropy", "nll_loss") else np.full((3, 4),
                                                                                 0.5, dtype)
    got = getattr(fastce, name)(x, t, reduction=reduction)
    assert isinstance(got, np.generic), type(got)
    assert got.dtype == dtype


def test_weight_and_probability_targets_are_cast_to_the_input_dtype():
    rng = rng_for("cast")
    x = logits(rng, (4, C), F32)
    y = probability_targets(rng, x.shape, 1, F64)
    w = rng.uniform(0.5, 2, C)  # float64
    got = fastce.cross_entropy(x, y, w, reduction="none")
    assert got.dtype == F32
    assert_close(got, torch_ce(x, y.astype(F32), weight=w.astype(F32), reduction="none"),
                 F32)


# --------------------------------------------------- legacy arguments --

LEGACY = [(True, None), (False, None), (None, True), (None, False), (True, True),
          (True, False), (False, True), (False, False)]


def _legacy_data(name, rng):
    if name in ("cross_entropy", "nll_loss"):
        x = logits(rng, (5, C), F64)
        return x, rng.integers(0, C, 5)
    if name == "binary_cross_entropy":
        return rng.uniform(0.05, 0.95, (5, C)), rng.random((5, C))
    return logits(rng, (5, C), F64), rng.random((5, C))


@pytest.mark.parametrize("size_average,reduce", LEGACY)
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss",
                                  "binary_cross_entropy_with_logits",
                                  "binary_cross_entropy"])
def test_legacy_size_average_reduce_map_like_torch_with_deprecation_warning(
        name, size_average, reduce):
    x, t = _legacy_data(name, rng_for("legacy", name))
    with pytest.warns(DeprecationWarning):
        # the legacy pair decides; the explicit reduction is overridden
        got = getattr(fastce, name)(x, t, size_average=size_average, reduce=reduce,
                                    reduction="none")
    want = torch_reference(name, x, t, size_average=size_average, reduce=reduce)
    expected_reduction = ("none" if reduce is False else
                          "sum" if size_average is False else "mean")
    assert_close(got, want, F64)
    assert_close(got, getattr(fastce, name)(x, t, reduction=expected_reduction), F64)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_legacy_size_average_positional_like_torch(name):
    x, t = _legacy_data(name, rng_for("legacy-pos", name))
    with pytest.warns(DeprecationWarning):
        # positional order: input, target, weight, size_average, ignore_index, reduce
        got = getattr(fastce, name)(x, t, None, False, -100, None)
    assert_close(got, getattr(fastce, name)(x, t, reduction="sum"), F64)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss",
                                  "binary_cross_entropy_with_logits",
                                  "binary_cross_entropy", "cross_entropy_and_grad"])
def test_legacy_deprecation_warning_points_at_the_callers_line(name):
    # with Python's default filters a DeprecationWarning is shown only when it
    # is attributed to __main__ / the calling module, not to fastce's own files
    x, t = _legacy_data(name.replace("_and_grad", ""), rng_for("legacy-where", name))
    with pytest.warns(DeprecationWarning) as record:
        getattr(fastce, name)(x, t, size_average=False)
    assert record[0].filename == __file__


def test_no_deprecation_warning_without_legacy_arguments():
    x, t = _legacy_data("cross_entropy", rng_for("nolegacy"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastce.cross_entropy(x, t, reduction="sum")
        fastce.CrossEntropyLoss(reduction="sum")(x, t)


# ------------------------------------------------------- loss objects --

def _object_cases():
    rng = rng_for("objects")
    x = logits(rng, (4, 3, C), F64)  # channels-last for the class losses
    t = rng.integers(0, C, (4, 3))
    t[0, 0] = 1
    w = rng.uniform(0.5, 2, C)
    xb = logits(rng, (4, C), F64)
    yb = rng.random((4, C))
    pb = rng.uniform(0.05, 0.95, (4, C))
    return {
        "CrossEntropyLoss": (
            dict(weight=w, ignore_index=1, reduction="sum", label_smoothing=0.2, axis=-1),
            x, t,
            lambda: fastce.cross_entropy(x, t, w, ignore_index=1, reduction="sum",
                                         label_smoothing=0.2, axis=-1),
            lambda: fastce.cross_entropy_and_grad(x, t, w, ignore_index=1, reduction="sum",
                                                  label_smoothing=0.2, axis=-1)),
        "NLLLoss": (
            dict(weight=w, ignore_index=1, reduction="none", dim=-1), x, t,
            lambda: fastce.nll_loss(x, t, w, ignore_index=1, reduction="none", axis=-1),
            lambda: fastce.nll_loss_and_grad(x, t, w, ignore_index=1, reduction="none",
                                             axis=-1)),
        "BCEWithLogitsLoss": (
            dict(weight=w, pos_weight=w[::-1].copy(), reduction="mean"), xb, yb,
            lambda: fastce.binary_cross_entropy_with_logits(xb, yb, w,
                                                            pos_weight=w[::-1].copy()),
            lambda: fastce.binary_cross_entropy_with_logits_and_grad(
                xb, yb, w, pos_weight=w[::-1].copy())),
        "BCELoss": (
            dict(weight=w, reduction="sum"), pb, yb,
            lambda: fastce.binary_cross_entropy(pb, yb, w, reduction="sum"),
            lambda: fastce.binary_cross_entropy_and_grad(pb, yb, w, reduction="sum")),
    }


OBJECT_CASES = _object_cases()


@pytest.mark.parametrize("cls_name", list(OBJECT_CASES))
def test_loss_object_call_equals_the_function(cls_name):
    kwargs, x, t, fn, fn_grad = OBJECT_CASES[cls_name]
    obj = getattr(fastce, cls_name)(**kwargs)
    np.testing.assert_array_equal(obj(x, t), fn())
    loss, grad = obj.loss_and_grad(x, t)
    want_loss, want_grad = fn_grad()
    np.testing.assert_array_equal(loss, want_loss)
    np.testing.assert_array_equal(grad, want_grad)


@pytest.mark.parametrize("cls_name", list(OBJECT_CASES))
def test_loss_object_pickle_round_trip_gives_equal_results(cls_name):
    kwargs, x, t, fn, _ = OBJECT_CASES[cls_name]
    obj = getattr(fastce, cls_name)(**kwargs)
    clone = pickle.loads(pickle.dumps(obj))
    assert type(clone) is type(obj)
    np.testing.assert_array_equal(clone(x, t), obj(x, t))
    np.testing.assert_array_equal(clone.loss_and_grad(x, t)[1], obj.loss_and_grad(x, t)[1])


@pytest.mark.parametrize("cls_name", list(OBJECT_CASES))
def test_loss_object_holds_no_state_between_calls(cls_name):
    kwargs, x, t, fn, _ = OBJECT_CASES[cls_name]
    obj = getattr(fastce, cls_name)(**kwargs)
    first = obj(x, t)
    obj.loss_and_grad(x[:2], t[:2])
    np.testing.assert_array_equal(obj(x, t), first)


@pytest.mark.parametrize("cls_name", list(OBJECT_CASES))
def test_loss_object_keeps_weights_independent_of_callers_array(cls_name):
    kwargs, x, t, fn, _ = OBJECT_CASES[cls_name]
    kwargs = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    obj = getattr(fastce, cls_name)(**kwargs)
    before = obj(x, t)
    kwargs["weight"] *= 3.0  # mutate the caller's array after construction
    np.testing.assert_array_equal(obj(x, t), before)


@pytest.mark.parametrize("size_average,reduce", LEGACY)
@pytest.mark.parametrize("cls_name", ["CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss",
                                      "BCELoss"])
def test_loss_objects_accept_legacy_arguments_with_deprecation_warning(cls_name,
                                                                       size_average, reduce):
    fn_name = {"CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss",
               "BCEWithLogitsLoss": "binary_cross_entropy_with_logits",
               "BCELoss": "binary_cross_entropy"}[cls_name]
    x, t = _legacy_data(fn_name, rng_for("legacy-obj", cls_name))
    with pytest.warns(DeprecationWarning):
        obj = getattr(fastce, cls_name)(size_average=size_average, reduce=reduce)
    expected_reduction = ("none" if reduce is False else
                          "sum" if size_average is False else "mean")
    assert_close(obj(x, t), getattr(fastce, fn_name)(x, t, reduction=expected_reduction),
                 F64)
    cls = getattr(torch.nn, cls_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tobj = cls(size_average=size_average, reduce=reduce)
    assert tobj.reduction == expected_reduction


def test_loss_object_with_dim_alias_equals_axis():
    x = logits(rng_for("obj-dim"), (3, 2, C), F32)
    t = np.array([[0, 1], [2, 3], [4, 0]])
    a = fastce.CrossEntropyLoss(axis=-1, reduction="none")(x, t)
    b = fastce.CrossEntropyLoss(dim=2, reduction="none")(x, t)
    np.testing.assert_array_equal(a, b)
    assert_close(a, torch_ce(x, t, reduction="none", axis=-1), F32)


# ------------------------------------ vector tails, tiles and threads --

@pytest.mark.parametrize("inner", [1, 3], ids=["classes-last", "inner3"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("n_cls", [1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
                                   100, 257])
def test_cross_entropy_matches_torch_for_class_counts_around_simd_widths(n_cls, dtype,
                                                                         inner):
    rng = rng_for("simd", n_cls, dtype.name, inner)
    shape = (6, n_cls) if inner == 1 else (6, n_cls, inner)
    x = logits(rng, shape, dtype, scale=3.0)
    t = rng.integers(0, n_cls, size=(6,) if inner == 1 else (6, inner))
    t.reshape(-1)[1] = -100
    w = rng.uniform(0.2, 2.0, n_cls).astype(dtype)
    got = fastce.cross_entropy(x, t, w, reduction="none", label_smoothing=0.1)
    assert_close(got, torch_ce(x, t, weight=w, reduction="none", label_smoothing=0.1), dtype)
    y = probability_targets(rng, shape, 1, dtype)
    assert_close(fastce.cross_entropy(x, y, reduction="none"),
                 torch_ce(x, y, reduction="none"), dtype)
    assert_close(fastce.log_softmax(x), torch_log_softmax(x), dtype)
    assert_close(fastce.softmax(x), torch_softmax(x), dtype)
    assert_close(fastce.logsumexp(x), torch_logsumexp(x), dtype)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 15, 16, 17, 33, 100])
def test_binary_losses_match_torch_for_lengths_around_simd_widths(n, dtype):
    rng = rng_for("simd-bin", n, dtype.name)
    x = logits(rng, (3, n), dtype, scale=4.0)
    y = rng.random((3, n)).astype(dtype)
    w = rng.uniform(0.2, 2.0, (3, 1)).astype(dtype)
    pw = rng.uniform(0.2, 3.0, n).astype(dtype)
    assert_close(fastce.binary_cross_entropy_with_logits(x, y, w, reduction="none",
                                                         pos_weight=pw),
                 torch_bce_with_logits(x, y, weight=w, pos_weight=pw, reduction="none"),
                 dtype)
    p = rng.uniform(0.001, 0.999, (3, n)).astype(dtype)
    assert_close(fastce.binary_cross_entropy(p, y, w, reduction="none"),
                 torch_bce(p, y, weight=w, reduction="none"), dtype)


def _big_case(name):
    rng = rng_for("big", name)
    if name == "rows_2048x100_ls_weight_ignore":
        x = logits(rng, (2048, 100), F32)
        t = rng.integers(0, 100, 2048)
        t[rng.random(2048) < 0.1] = -100
        return "cross_entropy", x, t, dict(weight=rng.uniform(0.5, 2, 100).astype(F32),
                                           label_smoothing=0.1)
    if name == "wide_16x5000":
        x = logits(rng, (16, 5000), F64)
        return "cross_entropy", x, rng.integers(0, 5000, 16), {}
    if name == "huge_row_1x250000":
        x = logits(rng, (1, 250000), F32)
        return "cross_entropy", x, np.array([12345]), {}
    if name == "segmentation_4x21x32x32":
        x = logits(rng, (4, 21, 32, 32), F32)
        t = rng.integers(0, 21, (4, 32, 32))
        t[:, :3, :] = -100
        return "cross_entropy", x, t, dict(weight=rng.uniform(0.5, 2, 21).astype(F32))
    if name == "channels_last_64x40x30":
        x = logits(rng, (64, 40, 30), F64)
        return "cross_entropy", x, rng.integers(0, 30, (64, 40)), dict(axis=-1)
    if name == "prob_targets_1024x64":
        x = logits(rng, (1024, 64), F32)
        return "cross_entropy", x, probability_targets(rng, x.shape, 1, F32), dict(
            label_smoothing=0.05)
    if name == "nll_3000x20":
        x = logits(rng, (3000, 20), F64)
        return "nll_loss", x, rng.integers(0, 20, 3000), {}
    if name == "bce_logits_4096x40":
        x = logits(rng, (4096, 40), F32)
        y = rng.random((4096, 40)).astype(F32)
        return "binary_cross_entropy_with_logits", x, y, dict(
            weight=rng.uniform(0.5, 2, 40).astype(F32),
            pos_weight=rng.uniform(0.5, 2, 40).astype(F32))
    if name == "bce_probs_2048x30":
        p = rng.uniform(0.001, 0.999, (2048, 30))
        return "binary_cross_entropy", p, rng.random((2048, 30)), {}
    raise AssertionError(name)


BIG_CASES = ["rows_2048x100_ls_weight_ignore", "wide_16x5000", "huge_row_1x250000",
             "segmentation_4x21x32x32", "channels_last_64x40x30", "prob_targets_1024x64",
             "nll_3000x20", "bce_logits_4096x40", "bce_probs_2048x30"]


@pytest.mark.parametrize("name", BIG_CASES)
def test_multithreaded_losses_match_torch_and_are_thread_count_independent(name):
    fn_name, x, t, kw = _big_case(name)
    fn = getattr(fastce, fn_name)
    for reduction in ("mean", "none"):
        one = fn(x, t, reduction=reduction, n_threads=1, **kw)
        two = fn(x, t, reduction=reduction, n_threads=2, **kw)
        np.testing.assert_array_equal(one, two, err_msg=f"{reduction}: thread count changed "
                                                        "the result")
        assert_close(two, torch_reference(fn_name, x, t, reduction=reduction, **kw), x.dtype,
                     err_msg=reduction)


@pytest.mark.parametrize("name,axis", [("log_softmax", 1), ("softmax", 1), ("logsumexp", 1),
                                       ("log_softmax", -1), ("logsumexp", 0)])
def test_multithreaded_softmax_family_matches_torch(name, axis):
    x = logits(rng_for("big-softmax", name, axis), (64, 300, 20), F32)
    fn = getattr(fastce, name)
    one = fn(x, axis=axis, n_threads=1)
    two = fn(x, axis=axis, n_threads=2)
    np.testing.assert_array_equal(one, two)
    assert_close(two, torch_reference(name, x, axis=axis), F32)
