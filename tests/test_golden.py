"""fastce against PyTorch results stored in ``tests/data/golden.npz`` (made
by ``tools/make_golden.py``): runs without PyTorch installed.

Losses are compared at the SPEC 3.8 loss tolerances and gradients at the
gradient tolerances of the input's dtype (float16 loosely: it is computed in
float32 and rounded).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fastce
from _helpers import assert_close, assert_result_type

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "golden.npz")


def _load():
    with np.load(GOLDEN, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


DATA = _load()
CASE_KEYS = [str(k) for k in DATA["case_keys"]]
OPTIONS = {k: json.loads(str(DATA[f"{k}_options"])) for k in CASE_KEYS}


def _array(key, name):
    full = f"{key}_{name}"
    return DATA[full].copy() if full in DATA else None


def _run(key):
    opts = OPTIONS[key]
    x = _array(key, "input")
    kwargs = dict(opts["kwargs"])
    if opts["fn"] in ("log_softmax", "softmax", "logsumexp"):
        return getattr(fastce, opts["fn"])(x, **kwargs), None
    args = (x, _array(key, "target"))
    for name in ("weight", "pos_weight"):
        if _array(key, name) is not None:
            kwargs[name] = _array(key, name)
    if opts["grad"]:
        if _array(key, "grad_output") is not None:
            kwargs["grad_output"] = _array(key, "grad_output")
        return getattr(fastce, opts["fn"] + "_and_grad")(*args, **kwargs)
    return getattr(fastce, opts["fn"])(*args, **kwargs), None


def test_golden_file_is_present_and_covers_every_function():
    fns = {o["fn"] for o in OPTIONS.values()}
    assert fns == {"cross_entropy", "nll_loss", "binary_cross_entropy_with_logits",
                   "binary_cross_entropy", "log_softmax", "softmax", "logsumexp"}
    assert len(CASE_KEYS) >= 40
    assert os.path.getsize(GOLDEN) < 300_000


@pytest.mark.parametrize("key", CASE_KEYS, ids=[OPTIONS[k]["name"] for k in CASE_KEYS])
def test_loss_and_grad_match_stored_torch_results(key):
    opts = OPTIONS[key]
    x = _array(key, "input")
    dtype = x.dtype
    loss, grad = _run(key)
    want_loss = _array(key, "loss")
    if opts["fn"] not in ("log_softmax", "softmax", "logsumexp"):
        assert_result_type(loss, dtype, want_loss.shape)
    assert np.asarray(loss).dtype == dtype
    assert_close(loss, want_loss, dtype, "loss", err_msg=opts["name"])
    if opts["grad"]:
        assert grad.shape == x.shape and grad.dtype == dtype
        assert_close(grad, _array(key, "grad"), dtype, "grad", err_msg=opts["name"])


@pytest.mark.parametrize("key", [k for k in CASE_KEYS if OPTIONS[k]["grad"]],
                         ids=[OPTIONS[k]["name"] for k in CASE_KEYS if OPTIONS[k]["grad"]])
def test_forward_function_equals_loss_of_and_grad_variant(key):
    # the SPEC does not promise bitwise equality here, only the 3.8 tolerance
    opts = OPTIONS[key]
    loss, _ = _run(key)
    kwargs = dict(opts["kwargs"])
    for name in ("weight", "pos_weight"):
        if _array(key, name) is not None:
            kwargs[name] = _array(key, name)
    forward = getattr(fastce, opts["fn"])(_array(key, "input"), _array(key, "target"),
                                          **kwargs)
    assert np.asarray(forward).dtype == np.asarray(loss).dtype
    assert_close(forward, loss, _array(key, "input").dtype, "loss", err_msg=opts["name"])
