"""Regenerate ``tests/data/golden.npz``: PyTorch's losses and gradients on a
fixed, seeded set of small cases, so the test suite can check fastce without
PyTorch installed (``tests/test_golden.py``).

Usage (needs torch; run from anywhere)::

    python tools/make_golden.py

Each case ``cNN`` is stored as

* ``cNN_options``: JSON string ``{"name", "fn", "grad", "kwargs"}``: the fastce
  function (``fn``; ``<fn>_and_grad`` when ``grad``) and its keyword options;
* ``cNN_input``, ``cNN_target`` (absent for the softmax family) and, when
  used, ``cNN_weight``, ``cNN_pos_weight``, ``cNN_grad_output``;
* ``cNN_loss`` and, with ``grad``, ``cNN_grad``: PyTorch's results (for
  float16 input, computed in float32, as fastce does).

Infinite logits for BCE-with-logits are left out on purpose: fastce returns
the mathematical limits there where PyTorch returns NaN (SPEC 3.4).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from _helpers import torch_reference  # noqa: E402

OUT = os.path.join(ROOT, "tests", "data", "golden.npz")
F16, F32, F64 = np.float16, np.float32, np.float64


def build_cases():
    rng = np.random.default_rng(12345)

    def x(*shape, dtype=F64, scale=2.0):
        return (rng.normal(size=shape) * scale).astype(dtype)

    def idx(*shape, n_cls, ignore_frac=0.0, ignore=-100, dtype=np.int64):
        t = rng.integers(0, n_cls, size=shape)
        if ignore_frac:
            t[rng.random(shape) < ignore_frac] = ignore
        return t.astype(dtype)

    def prob(shape, axis, dtype=F64):
        y = rng.random(shape)
        return (y / y.sum(axis=axis, keepdims=True)).astype(dtype)

    def w(n, dtype=F64):
        return rng.uniform(0.2, 2.5, size=n).astype(dtype)

    def p01(*shape, dtype=F64):
        return rng.uniform(0.02, 0.98, size=shape).astype(dtype)

    cases = []

    def add(name, fn, input, target=None, grad=True, **kwargs):
        arrays = {"input": input}
        if target is not None:
            arrays["target"] = target
        for key in ("weight", "pos_weight", "grad_output"):
            if kwargs.get(key) is not None:
                arrays[key] = np.asarray(kwargs.pop(key))
            else:
                kwargs.pop(key, None)
        cases.append(dict(name=name, fn=fn, grad=grad, kwargs=kwargs, arrays=arrays))

    ce, nll = "cross_entropy", "nll_loss"
    bcel, bce = "binary_cross_entropy_with_logits", "binary_cross_entropy"

    # cross_entropy, class-index targets
    add("ce_2d_f32_mean", ce, x(8, 6, dtype=F32), idx(8, n_cls=6))
    add("ce_2d_f64_sum_weight", ce, x(8, 6), idx(8, n_cls=6), weight=w(6), reduction="sum")
    g = rng.normal(size=10)
    add("ce_2d_f64_none_ignore_grad_output", ce, x(10, 4), idx(10, n_cls=4, ignore_frac=0.3),
        reduction="none", grad_output=g)
    add("ce_3d_f32_mean_weight_ignore_ls", ce, x(4, 5, 3, dtype=F32),
        idx(4, 3, n_cls=5, ignore_frac=0.25), weight=w(5, F32), label_smoothing=0.1)
    add("ce_4d_f64_mean_ls", ce, x(2, 5, 3, 2), idx(2, 3, 2, n_cls=5), label_smoothing=0.2)
    add("ce_channels_last_f32_none", ce, x(3, 4, 6, dtype=F32), idx(3, 4, n_cls=6), axis=-1,
        reduction="none")
    add("ce_dim0_f64_sum", ce, x(5, 7), idx(7, n_cls=5), dim=0, reduction="sum",
        weight=w(5))
    add("ce_unbatched_f64_none", ce, x(6), np.int64(4), reduction="none")
    add("ce_unbatched_f32_mean_ls", ce, x(6, dtype=F32), np.int64(1), label_smoothing=0.3)
    add("ce_ignore_index_0_weighted_f64", ce, x(9, 4), idx(9, n_cls=4), weight=w(4),
        ignore_index=0)
    add("ce_ls_1_f64", ce, x(6, 5), idx(6, n_cls=5), weight=w(5), label_smoothing=1.0)
    add("ce_uint8_targets_f64", ce, x(6, 5), idx(6, n_cls=5, dtype=np.uint8))
    add("ce_int16_targets_ignore_f32", ce, x(6, 5, dtype=F32),
        idx(6, n_cls=5, ignore_frac=0.3, dtype=np.int16), reduction="sum")
    add("ce_f16_mean_weight", ce, x(6, 5, dtype=F16), idx(6, n_cls=5), weight=w(5))
    huge = rng.choice([-1e4, 1e4, 0.0, 2.0], size=(8, 4))
    add("ce_huge_logits_f64", ce, huge, idx(8, n_cls=4), label_smoothing=0.05)
    masked = x(5, 4)
    masked[:, 1] = -np.inf
    add("ce_masked_class_f64", ce, masked, np.array([0, 2, 3, 0, 2]), reduction="sum")
    add("ce_scalar_grad_output_f64", ce, x(5, 3), idx(5, n_cls=3), grad_output=2.5)
    add("ce_single_class_f32", ce, x(4, 1, dtype=F32), np.zeros(4, dtype=np.int64),
        label_smoothing=0.5)
    add("ce_all_ignored_sum_f64", ce, x(3, 4), np.full(3, -100), reduction="sum")
    add("ce_empty_batch_sum_f64", ce, x(0, 4), np.zeros(0, dtype=np.int64), reduction="sum")
    # cross_entropy, probability targets
    add("ce_prob_2d_f32_mean", ce, x(7, 5, dtype=F32), prob((7, 5), 1, F32))
    add("ce_prob_3d_f64_sum_weight_ls", ce, x(3, 4, 5), prob((3, 4, 5), 1), weight=w(4),
        reduction="sum", label_smoothing=0.1)
    add("ce_prob_channels_last_f64_none_grad_output", ce, x(2, 3, 5), prob((2, 3, 5), 2),
        axis=-1, reduction="none", grad_output=rng.normal(size=(2, 3)))
    add("ce_prob_unbatched_f32", ce, x(5, dtype=F32), prob((5,), 0, F32), weight=w(5, F32))
    # nll_loss
    add("nll_2d_f64_mean_weight", nll, x(8, 5), idx(8, n_cls=5), weight=w(5))
    add("nll_3d_f32_none_ignore_grad_output", nll, x(3, 4, 2, dtype=F32),
        idx(3, 2, n_cls=4, ignore_frac=0.3), reduction="none",
        grad_output=rng.normal(size=(3, 2)))
    add("nll_channels_last_f64_sum", nll, x(2, 3, 6), idx(2, 3, n_cls=6), axis=-1,
        reduction="sum", ignore_index=2)
    add("nll_unbatched_f32", nll, x(4, dtype=F32), np.int64(3))
    # binary_cross_entropy_with_logits
    add("bcel_2d_f32_mean", bcel, x(6, 4, dtype=F32), p01(6, 4, dtype=F32))
    add("bcel_2d_f64_none_weight_pos_weight_grad_output", bcel, x(5, 3), p01(5, 3),
        weight=w((5, 3)), pos_weight=w(3), reduction="none", grad_output=rng.normal(size=(5, 3)))
    add("bcel_3d_f64_sum_class_weight", bcel, x(2, 3, 4), rng.integers(0, 2, (2, 3, 4)) * 1.0,
        weight=w(4), reduction="sum")
    add("bcel_column_weight_f32_mean", bcel, x(6, 3, dtype=F32), p01(6, 3, dtype=F32),
        weight=w((6, 1), F32), pos_weight=w(3, F32))
    add("bcel_1d_scalar_weight_f64", bcel, x(7), p01(7), weight=np.float64(1.7))
    add("bcel_0d_f64_none", bcel, np.array(0.7), np.array(0.2), reduction="none")
    add("bcel_f16_mean", bcel, x(4, 5, dtype=F16), p01(4, 5, dtype=F16))
    add("bcel_huge_logits_f64", bcel, np.array([1e4, -1e4, 1e4, -1e4, 3.0]),
        np.array([1.0, 0.0, 0.0, 0.6, 0.5]), reduction="sum", pos_weight=np.float64(2.0))
    # binary_cross_entropy
    add("bce_2d_f64_mean", bce, p01(6, 4), p01(6, 4))
    add("bce_f32_none_weight_grad_output", bce, p01(5, 3, dtype=F32), p01(5, 3, dtype=F32),
        weight=w((5, 3), F32), reduction="none", grad_output=rng.normal(size=(5, 3)))
    add("bce_clamped_logs_f64_sum", bce, np.array([0.0, 1.0, 0.0, 1.0, 0.5]),
        np.array([1.0, 0.0, 0.0, 1.0, 0.3]), reduction="sum")
    add("bce_3d_f64_class_weight_mean", bce, p01(2, 3, 4), p01(2, 3, 4), weight=w(4))
    # softmax family (forward only)
    add("log_softmax_3d_f64_axis2", "log_softmax", x(2, 3, 4), grad=False, axis=2)
    add("softmax_2d_f32", "softmax", x(5, 6, dtype=F32), grad=False)
    add("logsumexp_4d_f64_last", "logsumexp", x(2, 3, 2, 5), grad=False, axis=-1)
    add("log_softmax_unbatched_f32", "log_softmax", x(7, dtype=F32), grad=False)
    return cases


def oracle(case):
    a = case["arrays"]
    kw = dict(case["kwargs"])
    if "dim" in kw:
        kw["axis"] = kw.pop("dim")
    if case["fn"] in ("log_softmax", "softmax", "logsumexp"):
        return torch_reference(case["fn"], a["input"], axis=kw.get("axis")), None
    return torch_reference(case["fn"], a["input"], a["target"], weight=a.get("weight"),
                           pos_weight=a.get("pos_weight"), grad_output=a.get("grad_output"),
                           want_grad=True, **kw)


def main():
    payload = {}
    names = []
    for i, case in enumerate(build_cases()):
        key = f"c{i:02d}"
        loss, grad = oracle(case)
        names.append(case["name"])
        payload[f"{key}_options"] = np.array(json.dumps(
            {"name": case["name"], "fn": case["fn"], "grad": case["grad"],
             "kwargs": case["kwargs"]}, sort_keys=True))
        for k, arr in case["arrays"].items():
            payload[f"{key}_{k}"] = np.asarray(arr)
        payload[f"{key}_loss"] = np.asarray(loss)
        if case["grad"]:
            payload[f"{key}_grad"] = np.asarray(grad)
    payload["case_keys"] = np.array([f"c{i:02d}" for i in range(len(names))])
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **payload)
    print(f"wrote {len(names)} cases to {os.path.relpath(OUT, ROOT)} "
          f"({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
