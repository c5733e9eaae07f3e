"""Bad input (SPEC section 4 and the error rules of section 3.9): the right
exception with a clear message, raised before any output is written, and no
input ever modified.

Most cases live in one table (`ERROR_CASES`); each is run by
`test_bad_input_raises_and_leaves_every_array_untouched`, which also checks
that every array passed to the call (inputs, targets, weights, ``out=``)
is bitwise unchanged afterwards.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastce

C = 5
R = np.random.default_rng(20240601)


def _x(*shape, dtype=np.float64):
    return R.normal(size=shape).astype(dtype)


def _t(*shape, n_cls=C):
    return R.integers(0, n_cls, size=shape)


def _p(*shape, dtype=np.float64):
    return R.uniform(0.05, 0.95, size=shape).astype(dtype)


@dataclass
class Case:
    fn: str                     # name of a fastce attribute
    args: tuple
    kwargs: dict = field(default_factory=dict)
    exc: type = ValueError
    match: str | None = None    # regex the message must contain

    def call(self):
        return getattr(fastce, self.fn)(*self.args, **self.kwargs)

    def arrays(self):
        found = [a for a in self.args if isinstance(a, np.ndarray)]
        found += [a for a in self.kwargs.values() if isinstance(a, np.ndarray)]
        return found


CE_FUNCS = ["cross_entropy", "cross_entropy_and_grad", "nll_loss", "nll_loss_and_grad"]
BIN_FUNCS = ["binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_and_grad",
             "binary_cross_entropy", "binary_cross_entropy_and_grad"]
SOFTMAX_FUNCS = ["log_softmax", "softmax", "logsumexp"]
GRAD_FUNCS = ["cross_entropy_and_grad", "nll_loss_and_grad",
              "binary_cross_entropy_with_logits_and_grad", "binary_cross_entropy_and_grad"]


def _class_args(fn):
    """Valid (input, target) for ``fn``."""
    if fn in CE_FUNCS:
        return _x(4, C), _t(4)
    if fn.startswith("binary_cross_entropy_with_logits"):
        return _x(4, C), _p(4, C)
    return _p(4, C), _p(4, C)


def _shape_re(shape):
    return re.escape(str(tuple(shape)))


def _cases():
    cases = {}

    # -- shape mismatch: ValueError naming both shapes ------------------------
    for fn in CE_FUNCS:
        x, t = _x(4, C), _t(3)
        cases[f"{fn}-target-batch-mismatch"] = Case(
            fn, (x, t), exc=ValueError, match=f"(?s)(?=.*{_shape_re(t.shape)})"
                                              f"(?=.*{_shape_re(x.shape)})")
        x, t = _x(2, C, 3), _t(2, 4)
        cases[f"{fn}-target-spatial-mismatch"] = Case(
            fn, (x, t), exc=ValueError, match=f"(?s)(?=.*{_shape_re(t.shape)})"
                                              f"(?=.*{_shape_re(x.shape)})")
    for fn in ["cross_entropy", "cross_entropy_and_grad"]:
        x, y = _x(4, C), _p(4, C + 1)
        cases[f"{fn}-probability-target-shape-mismatch"] = Case(
            fn, (x, y), exc=ValueError, match=f"(?s)(?=.*{_shape_re(y.shape)})"
                                              f"(?=.*{_shape_re(x.shape)})")
    for fn in BIN_FUNCS:
        x, y = _class_args(fn)
        y = y[:, :-1].copy()
        cases[f"{fn}-target-shape-mismatch"] = Case(
            fn, (x, y), exc=ValueError, match=f"(?s)(?=.*{_shape_re(y.shape)})"
                                              f"(?=.*{_shape_re(x.shape)})")
    # an integer target of the input's shape: a shape mismatch for nll_loss
    for fn in ["nll_loss", "nll_loss_and_grad"]:
        cases[f"{fn}-integer-target-of-input-shape"] = Case(
            fn, (_x(4, C), _t(4, C)), exc=ValueError)

    # -- weight / pos_weight --------------------------------------------------
    for fn in CE_FUNCS:
        x, t = _class_args(fn)
        for name, w in [("too-long", np.ones(C + 1)), ("too-short", np.ones(C - 1)),
                        ("column", np.ones((C, 1))), ("row", np.ones((1, C))),
                        ("scalar", np.array(2.0))]:
            cases[f"{fn}-weight-{name}"] = Case(fn, (x, t), {"weight": w}, ValueError)
    for fn in BIN_FUNCS:
        x, y = _class_args(fn)
        cases[f"{fn}-weight-not-broadcastable"] = Case(fn, (x, y), {"weight": np.ones(C + 1)},
                                                       ValueError)
        cases[f"{fn}-weight-too-many-dims"] = Case(fn, (x, y),
                                                   {"weight": np.ones((2, 4, C))}, ValueError)
    for fn in BIN_FUNCS[:2]:
        x, y = _class_args(fn)
        cases[f"{fn}-pos-weight-wrong-length"] = Case(
            fn, (x, y), {"pos_weight": np.ones(C + 2)}, ValueError)
        cases[f"{fn}-pos-weight-wrong-rows"] = Case(
            fn, (x, y), {"pos_weight": np.ones((3, C))}, ValueError)

    # -- dtypes: TypeError ----------------------------------------------------
    for fn in ["nll_loss", "nll_loss_and_grad"]:
        cases[f"{fn}-float-index-target"] = Case(fn, (_x(4, C), _t(4).astype(np.float64)),
                                                 exc=TypeError)
    for fn in ["cross_entropy", "cross_entropy_and_grad"]:
        cases[f"{fn}-integer-probability-target"] = Case(fn, (_x(4, C), _t(4, C)),
                                                         exc=TypeError)
        cases[f"{fn}-complex-target"] = Case(fn, (_x(4, C), _p(4, C).astype(complex)),
                                             exc=TypeError)
    # float labels of the batch shape (e.g. a data frame's float64 column) are
    # class indices of the wrong dtype, not probability targets of a wrong shape
    float_labels = "class-index targets must be integers \\(got float(64|32)\\)"
    for fn in ["cross_entropy", "cross_entropy_and_grad"]:
        for shape, batch in [((4, C), (4,)), ((2, C, 3), (2, 3)), ((C,), ())]:
            for tdt in (np.float64, np.float32):
                cases[f"{fn}-float-labels-{len(shape)}d-{np.dtype(tdt).name}"] = Case(
                    fn, (_x(*shape), _t(*batch).astype(tdt)), exc=TypeError,
                    match=float_labels + ".*input's shape")
        cases[f"{fn}-float-labels-channels-last"] = Case(
            fn, (_x(2, 3, C), _t(2, 3).astype(np.float64)), {"axis": -1}, exc=TypeError,
            match=float_labels)
    for fn in CE_FUNCS:
        cases[f"{fn}-bool-target"] = Case(fn, (_x(4, C), _t(4) > 2), exc=TypeError)
    for fn in BIN_FUNCS:
        x, y = _class_args(fn)
        cases[f"{fn}-integer-target"] = Case(fn, (x, (y > 0.5).astype(np.int64)),
                                             exc=TypeError)
    bad_inputs = {
        "complex": lambda x: x.astype(np.complex128),
        "object": lambda x: x.astype(object),
        "bool": lambda x: x > 0.5,
        "int64": lambda x: (x * 10).astype(np.int64),
        "int32": lambda x: (x * 10).astype(np.int32),
    }
    if np.dtype(np.longdouble).itemsize > 8:
        bad_inputs["longdouble"] = lambda x: x.astype(np.longdouble)
    for fn in CE_FUNCS + BIN_FUNCS + SOFTMAX_FUNCS:
        for kind, make in bad_inputs.items():
            if fn in SOFTMAX_FUNCS:
                args = (make(_x(4, C)),)
            else:
                x, t = _class_args(fn)
                args = (make(x), t)
            cases[f"{fn}-{kind}-input"] = Case(fn, args, exc=TypeError)

    # -- option values: ValueError --------------------------------------------
    for fn in CE_FUNCS + BIN_FUNCS:
        x, t = _class_args(fn)
        for red in ["elementwise_mean", "avg", "MEAN", "", "Sum"]:
            cases[f"{fn}-reduction-{red or 'empty'}"] = Case(fn, (x, t), {"reduction": red},
                                                             ValueError,
                                                             match=re.escape(repr(red)))
        cases[f"{fn}-reduction-None"] = Case(fn, (x, t), {"reduction": None}, ValueError)
    for fn in ["cross_entropy", "cross_entropy_and_grad"]:
        for ls in [-0.1, 1.0000001, 2.0, float("nan"), float("inf")]:
            cases[f"{fn}-label-smoothing-{ls}"] = Case(fn, (_x(4, C), _t(4)),
                                                       {"label_smoothing": ls}, ValueError)
        for ii in [0, 3, 100]:
            cases[f"{fn}-ignore-index-{ii}-with-probability-target"] = Case(
                fn, (_x(4, C), _p(4, C)), {"ignore_index": ii}, ValueError)

    # -- 0-d input: ValueError for the class losses and the softmax family ----
    for fn in CE_FUNCS:
        cases[f"{fn}-0d-input"] = Case(fn, (np.float64(1.5), np.int64(0)), exc=ValueError)
        cases[f"{fn}-0d-array-input"] = Case(fn, (np.array(1.5), np.array(0)), exc=ValueError)
    for fn in SOFTMAX_FUNCS:
        cases[f"{fn}-0d-input"] = Case(fn, (np.array(1.5),), exc=ValueError)

    # -- axis ------------------------------------------------------------------
    for fn in CE_FUNCS:
        cases[f"{fn}-1d-input-axis-1"] = Case(fn, (_x(C), np.int64(2)), {"axis": 1})
        cases[f"{fn}-1d-input-dim-1"] = Case(fn, (_x(C), np.int64(2)), {"dim": 1})
        cases[f"{fn}-1d-input-axis-minus-2"] = Case(fn, (_x(C), np.int64(2)), {"axis": -2})
        cases[f"{fn}-2d-input-axis-2"] = Case(fn, (_x(4, C), _t(4)), {"axis": 2})
        cases[f"{fn}-3d-input-axis-minus-4"] = Case(fn, (_x(2, C, 3), _t(2, 3)), {"axis": -4})
    for fn in SOFTMAX_FUNCS:
        cases[f"{fn}-1d-input-axis-1"] = Case(fn, (_x(C),), {"axis": 1})
        cases[f"{fn}-1d-input-dim-1"] = Case(fn, (_x(C),), {"dim": 1})
        cases[f"{fn}-2d-input-axis-2"] = Case(fn, (_x(4, C),), {"axis": 2})
        cases[f"{fn}-2d-input-axis-minus-3"] = Case(fn, (_x(4, C),), {"axis": -3})

    # -- n_threads: not a positive integer -------------------------------------
    for fn in CE_FUNCS + BIN_FUNCS + SOFTMAX_FUNCS:
        for nt in [0, -1, 1.5]:
            args = (_x(4, C),) if fn in SOFTMAX_FUNCS else _class_args(fn)
            cases[f"{fn}-n-threads-{nt}"] = Case(fn, args, {"n_threads": nt}, ValueError)

    # -- binary_cross_entropy: values outside [0, 1] ---------------------------
    for fn in ["binary_cross_entropy", "binary_cross_entropy_and_grad"]:
        for v in [-0.1, 1.1, np.nan, np.inf, -np.inf]:
            p, y = _p(4, C), _p(4, C)
            p[2, 3] = v
            cases[f"{fn}-input-{v}"] = Case(fn, (p, y), exc=ValueError)
            p, y = _p(4, C), _p(4, C)
            y[3, 4] = v
            cases[f"{fn}-target-{v}"] = Case(fn, (p, y), exc=ValueError)

    # -- grad_output of the wrong shape ----------------------------------------
    for fn in GRAD_FUNCS:
        x, t = _class_args(fn)
        loss_shape = (4,) if fn in CE_FUNCS else (4, C)
        cases[f"{fn}-grad-output-array-for-mean"] = Case(
            fn, (x, t), {"grad_output": np.ones(loss_shape)}, ValueError)
        cases[f"{fn}-grad-output-wrong-shape-for-none"] = Case(
            fn, (x, t), {"reduction": "none", "grad_output": np.ones((loss_shape[0] + 1,))},
            ValueError)
        cases[f"{fn}-grad-output-transposed-for-none"] = Case(
            fn, (x, t), {"reduction": "none",
                         "grad_output": np.ones(loss_shape[::-1] + (1,))}, ValueError)

    # -- out= ------------------------------------------------------------------
    for fn in GRAD_FUNCS:
        for what in ["wrong-shape", "wrong-dtype", "read-only", "fortran", "strided",
                     "overlapping", "input-not-contiguous", "transposed-shape", "list"]:
            x, t = _class_args(fn)
            if what == "wrong-shape":
                out = np.zeros((4, C + 1))
            elif what == "transposed-shape":
                out = np.zeros((C, 4))
            elif what == "wrong-dtype":
                out = np.zeros((4, C), dtype=np.float32)
            elif what == "read-only":
                out = np.zeros((4, C))
                out.setflags(write=False)
            elif what == "fortran":
                out = np.zeros((4, C), order="F")
            elif what == "strided":
                out = np.zeros((4, 2 * C))[:, ::2]
            elif what == "overlapping":
                buf = np.concatenate([x.reshape(-1), x[0]])
                x = buf[:4 * C].reshape(4, C)
                out = buf[C:].reshape(4, C)  # shares memory, shifted by one row
            elif what == "input-not-contiguous":
                x = np.asfortranarray(x)
                out = x  # out=input needs a C-contiguous input
            else:
                out = np.zeros((4, C)).tolist()
            cases[f"{fn}-out-{what}"] = Case(fn, (x, t), {"out": out}, ValueError)
    for fn in ["cross_entropy_and_grad", "binary_cross_entropy_with_logits_and_grad"]:
        x, t = _class_args(fn)
        cases[f"{fn}-float16-input-float32-out"] = Case(
            fn, (x.astype(np.float16), t), {"out": np.zeros((4, C), np.float32)}, ValueError)

    # -- out=input with an error found late: nothing written ------------------
    for fn in ["cross_entropy_and_grad", "nll_loss_and_grad"]:
        for smoothing in [0.0, 0.2]:
            if smoothing and fn.startswith("nll"):
                continue
            x = _x(64, C)
            t = _t(64)
            t[-1] = C  # the last target is out of range
            kw = {"out": x, "weight": R.uniform(0.5, 2, C)}
            if smoothing:
                kw["label_smoothing"] = smoothing
            cases[f"{fn}-out-input-bad-last-target-ls{smoothing}"] = Case(
                fn, (x, t), kw, IndexError, match=str(C))
        x = _x(64, C)
        t = _t(64)
        cases[f"{fn}-out-input-bad-grad-output"] = Case(
            fn, (x, t), {"out": x, "reduction": "none", "grad_output": np.ones(63)},
            ValueError)
        x = _x(8, C)
        cases[f"{fn}-out-input-bad-weight"] = Case(
            fn, (x, _t(8)), {"out": x, "weight": np.ones(C + 1)}, ValueError)
        x = _x(8, C)
        t = _t(8)
        t[-1] = C
        cases[f"{fn}-separate-out-bad-last-target"] = Case(
            fn, (x, t), {"out": np.full((8, C), 7.0)}, IndexError)
    p = _p(64, C)
    p[-1, -1] = 1.5
    cases["binary_cross_entropy_and_grad-out-input-bad-last-input"] = Case(
        "binary_cross_entropy_and_grad", (p, _p(64, C)), {"out": p}, ValueError)
    p = _p(64, C)
    y = _p(64, C)
    y[-1, -1] = np.nan
    cases["binary_cross_entropy_and_grad-out-input-bad-last-target"] = Case(
        "binary_cross_entropy_and_grad", (p, y), {"out": p}, ValueError)
    p = _p(8, C)
    p[-1, -1] = -0.5
    cases["binary_cross_entropy_and_grad-separate-out-bad-input"] = Case(
        "binary_cross_entropy_and_grad", (p, _p(8, C)), {"out": np.full((8, C), 7.0)},
        ValueError)
    x = _x(8, C)
    cases["binary_cross_entropy_with_logits_and_grad-out-input-bad-pos-weight"] = Case(
        "binary_cross_entropy_with_logits_and_grad", (x, _p(8, C)),
        {"out": x, "pos_weight": np.ones(C + 1)}, ValueError)
    x = _x(8, C)
    cases["binary_cross_entropy_with_logits_and_grad-out-input-target-mismatch"] = Case(
        "binary_cross_entropy_with_logits_and_grad", (x, _p(8, C - 1)), {"out": x}, ValueError)
    return cases


ERROR_CASES = _cases()


@pytest.mark.parametrize("case_id", list(ERROR_CASES))
def test_bad_input_raises_and_leaves_every_array_untouched(case_id):
    case = ERROR_CASES[case_id]
    before = [a.copy() for a in case.arrays()]
    with pytest.raises(case.exc, match=case.match):
        case.call()
    for orig, after in zip(before, case.arrays()):
        assert after.dtype == orig.dtype and after.shape == orig.shape
        np.testing.assert_array_equal(after, orig, err_msg="an error modified an input")


# ------------------------------------------------ out-of-range targets --

def _position_re(pos):
    """The position as a tuple or list, e.g. '(1, 2)' / '[1, 2]' / '(4,)'."""
    inner = r"\s*,\s*".join(str(i) for i in pos)
    return rf"[\(\[]\s*{inner}\s*,?\s*[\)\]]"


@pytest.mark.parametrize("call", ["call", "loss_and_grad"])
def test_loss_object_reads_float_labels_as_index_targets_of_the_wrong_dtype(call):
    loss = fastce.CrossEntropyLoss(weight=np.ones(C))
    x, labels = _x(4, C), _t(4).astype(np.float64)
    fn = loss if call == "call" else loss.loss_and_grad
    with pytest.raises(TypeError, match=r"class-index targets must be integers \(got "
                                        r"float64\); for probability targets pass an "
                                        r"array of the input's shape"):
        fn(x, labels)


@pytest.mark.parametrize("fn", CE_FUNCS + ["CrossEntropyLoss", "NLLLoss"])
@pytest.mark.parametrize("bad", [C, C + 7, -1, -3, 2 ** 40])
@pytest.mark.parametrize("batch,pos", [((6,), (4,)), ((2, 3), (1, 2)), ((3, 2, 4), (2, 0, 3))])
def test_out_of_range_target_raises_index_error_naming_value_and_position(fn, bad, batch,
                                                                         pos):
    rng = np.random.default_rng(abs(bad) % 1000 + len(batch))
    x = rng.normal(size=(batch[0], C) + batch[1:])
    t = rng.integers(0, C, size=batch)
    t[pos] = bad
    t_before, x_before = t.copy(), x.copy()
    call = getattr(fastce, fn)
    if fn[0].isupper():
        call = call()
    with pytest.raises(IndexError) as info:
        call(x, t)
    msg = str(info.value)
    assert re.search(rf"(?<![\d.]){re.escape(str(bad))}(?![\d.])", msg), msg
    assert re.search(_position_re(pos), msg), msg
    np.testing.assert_array_equal(t, t_before)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("fn", ["cross_entropy", "cross_entropy_and_grad", "nll_loss"])
@pytest.mark.parametrize("tdtype", [np.int32, np.int64])
@pytest.mark.parametrize("shape", [(3000, 10), (3000, 40), (4, 10, 700)])
def test_first_of_several_out_of_range_targets_is_named_across_tiles(fn, tdtype, shape):
    # several tiles (and threads) see bad targets; the message names the
    # first in flat order, whichever tile finishes first
    rng = np.random.default_rng(shape[-1])
    x = rng.normal(size=shape).astype(np.float32)
    t = rng.integers(0, shape[1], size=(shape[0],) + shape[2:]).astype(tdtype)
    flat = t.reshape(-1)
    first, later = 1337, [1338, 2051, 2799]
    flat[later] = shape[1] + 3
    flat[first] = -2
    flat[:first:97] = -100  # ignored, not bad
    with pytest.raises(IndexError) as info:
        getattr(fastce, fn)(x, t)
    pos = np.unravel_index(first, t.shape)
    assert re.search(_position_re(pos), str(info.value)), str(info.value)
    assert re.search(r"(?<![\d.])-2(?![\d.])", str(info.value)), str(info.value)


@pytest.mark.parametrize("fn", CE_FUNCS)
def test_out_of_range_unbatched_target_raises_index_error_naming_value(fn):
    with pytest.raises(IndexError, match=r"(?<!\d)7(?!\d)"):
        getattr(fastce, fn)(np.zeros(C), np.int64(7))


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("int_dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8,
                                       np.int16, np.int32])
def test_out_of_range_target_of_any_integer_dtype_raises_index_error(fn, int_dtype):
    t = np.array([0, 1, 2, 3], dtype=int_dtype)
    t[2] = np.iinfo(int_dtype).max
    with pytest.raises(IndexError, match=str(np.iinfo(int_dtype).max)):
        getattr(fastce, fn)(np.zeros((4, C)), t)


def test_uint64_target_beyond_int64_range_raises_index_error():
    t = np.array([0, 2 ** 63 + 5, 1], dtype=np.uint64)
    with pytest.raises(IndexError, match=str(2 ** 63 + 5)):
        fastce.cross_entropy(np.zeros((3, C)), t)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_ignore_index_value_is_not_out_of_range_but_other_negatives_are(fn):
    x = np.zeros((3, C))
    getattr(fastce, fn)(x, np.array([0, -7, 1]), ignore_index=-7)  # accepted
    with pytest.raises(IndexError, match="-100"):
        getattr(fastce, fn)(x, np.array([0, -100, 1]), ignore_index=-7)


def test_target_equal_to_class_count_is_out_of_range_even_with_ignore_index_zero():
    with pytest.raises(IndexError, match=str(C)):
        fastce.cross_entropy(np.zeros((3, C)), np.array([0, C, 1]), ignore_index=0)


def test_negative_ignore_index_is_accepted_with_probability_targets():
    x = _x(4, C)
    y = np.full((4, C), 1.0 / C)
    a = fastce.cross_entropy(x, y, ignore_index=-1)
    b = fastce.cross_entropy(x, y)
    assert a == b


# ------------------------------------------------------------- messages --

@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_shape_mismatch_message_names_both_shapes_for_channels_last(fn):
    x = _x(2, 3, C)
    t = _t(2, 4)
    with pytest.raises(ValueError) as info:
        getattr(fastce, fn)(x, t, axis=-1)
    assert "(2, 4)" in str(info.value) and "(2, 3, 5)" in str(info.value), str(info.value)


@pytest.mark.parametrize("fn", ["binary_cross_entropy", "binary_cross_entropy_and_grad"])
def test_binary_cross_entropy_out_of_range_message_names_the_value(fn):
    p = _p(3, 4)
    p[1, 2] = 1.25
    with pytest.raises(ValueError, match=r"1\.25"):
        getattr(fastce, fn)(p, _p(3, 4))


# ------------------------------------------------------------ loss objects --

@pytest.mark.parametrize("cls,kwargs", [
    ("CrossEntropyLoss", {"reduction": "elementwise_mean"}),
    ("CrossEntropyLoss", {"reduction": "bogus"}),
    ("CrossEntropyLoss", {"label_smoothing": 1.5}),
    ("CrossEntropyLoss", {"label_smoothing": -0.5}),
    ("NLLLoss", {"reduction": "elementwise_mean"}),
    ("BCEWithLogitsLoss", {"reduction": "avg"}),
    ("BCELoss", {"reduction": "MEAN"}),
])
def test_loss_object_rejects_bad_configuration_with_value_error(cls, kwargs):
    with pytest.raises(ValueError):
        getattr(fastce, cls)(**kwargs)


@pytest.mark.parametrize("cls,args", [
    ("CrossEntropyLoss", (_x(4, C), _t(3))),
    ("NLLLoss", (_x(4, C), _t(4).astype(np.float32))),
    ("BCEWithLogitsLoss", (_x(4, C), _p(4, C + 1))),
    ("BCELoss", (_p(4, C) + 1.0, _p(4, C))),
])
def test_loss_object_call_raises_like_the_function(cls, args):
    fn = {"CrossEntropyLoss": fastce.cross_entropy, "NLLLoss": fastce.nll_loss,
          "BCEWithLogitsLoss": fastce.binary_cross_entropy_with_logits,
          "BCELoss": fastce.binary_cross_entropy}[cls]
    with pytest.raises(Exception) as from_fn:
        fn(*args)
    with pytest.raises(type(from_fn.value)):
        getattr(fastce, cls)()(*args)
    with pytest.raises(type(from_fn.value)):
        getattr(fastce, cls)().loss_and_grad(*args)


@pytest.mark.parametrize("n_threads", [0, -2, 2.5])
def test_loss_object_call_rejects_bad_n_threads(n_threads):
    with pytest.raises(ValueError):
        fastce.CrossEntropyLoss()(_x(4, C), _t(4), n_threads=n_threads)


def test_set_num_threads_rejects_non_positive_values():
    before = fastce.get_num_threads()
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError):
            fastce.set_num_threads(bad)
    assert fastce.get_num_threads() == before


# ------------------------------------------------------ valid edge inputs --

@pytest.mark.parametrize("fn", GRAD_FUNCS)
def test_out_equal_to_input_is_accepted(fn):
    x, t = _class_args(fn)
    x = x.copy()
    want_loss, want_grad = getattr(fastce, fn)(x.copy(), t)
    loss, grad = getattr(fastce, fn)(x, t, out=x)
    assert grad is x
    np.testing.assert_array_equal(loss, want_loss)
    np.testing.assert_array_equal(x, want_grad)


@pytest.mark.parametrize("fn", GRAD_FUNCS)
def test_scalar_and_zero_dimensional_grad_output_are_accepted(fn):
    x, t = _class_args(fn)
    _, g1 = getattr(fastce, fn)(x, t, grad_output=2.0)
    _, g2 = getattr(fastce, fn)(x, t, grad_output=np.array(2.0))
    _, g0 = getattr(fastce, fn)(x, t)
    np.testing.assert_allclose(g1, 2 * g0, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(g1, g2)


@pytest.mark.parametrize("fn", ["binary_cross_entropy_with_logits", "binary_cross_entropy"])
def test_binary_losses_do_not_reject_zero_dimensional_input(fn):
    out = getattr(fastce, fn)(np.array(0.25), np.array(1.0))
    assert np.ndim(out) == 0 and np.isfinite(out)
