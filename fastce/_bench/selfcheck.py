"""The self-check: are fastce's numbers right on this machine?

``python -m fastce`` runs it before timing anything, since a fast wrong
answer is worth nothing: a worked example computed by hand, every loss and
gradient against PyTorch on small random inputs (when PyTorch is
installed), and the NumPy references against fastce on small copies of the
workloads, so the benchmark never times fastce against a wrong reference.
Each check prints one PASS / FAIL line; none raises.
"""
from __future__ import annotations

import sys
import zlib

import numpy as np

import fastce

from .references import IGNORE_INDEX, import_torch
from .workloads import WORKLOADS, Workload

__all__ = ["self_check"]


def _close(actual, expected, dtype):
    """Whether ``actual`` matches ``expected`` within the tolerances fastce
    promises against PyTorch (rtol 1e-5 / atol 1e-6 for float32, 1e-12 for
    float64; README.md, "From PyTorch to fastce"), and a detail for the
    report line: ``(ok, detail)``."""
    tol = 1e-12 if np.dtype(dtype) == np.float64 else None
    rtol, atol = (tol, tol) if tol else (1e-5, 1e-6)
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return False, f"shape {a.shape} != {e.shape}"
    ok = bool(np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True))
    err = float(np.max(np.abs(a - e))) if a.size else 0.0
    return ok, f"max abs diff {err:.1e}"


def _torch_cases(torch):
    """(name, function of (dtype, rng) -> list of (what, fastce, torch))."""
    import torch.nn.functional as F

    def t(a, grad=False):
        return torch.tensor(a, requires_grad=grad)

    def torch_loss_grad(fn, x, grad_output=None):
        xt = t(x, grad=True)
        loss = fn(xt)
        loss.backward(None if grad_output is None else torch.tensor(grad_output))
        return loss.detach().numpy(), xt.grad.numpy()

    def both(name, fastce_fwd, fastce_lg, torch_fn, x, grad_output=None, **kw):
        ref_loss, ref_grad = torch_loss_grad(torch_fn, x, grad_output)
        loss, grad = fastce_lg(x, **kw, **({} if grad_output is None
                                           else {"grad_output": grad_output}))
        return [(f"{name} loss", fastce_fwd(x, **kw), ref_loss),
                (f"{name}_and_grad loss", loss, ref_loss),
                (f"{name}_and_grad grad", grad, ref_grad)]

    def ce_plain(dtype, rng):
        x = rng.standard_normal((37, 11)).astype(dtype)
        y = rng.integers(0, 11, 37)
        return both("cross_entropy", fastce.cross_entropy, fastce.cross_entropy_and_grad,
                    lambda xt: F.cross_entropy(xt, torch.tensor(y)), x, target=y)

    def ce_options(dtype, rng):
        x = rng.standard_normal((37, 11)).astype(dtype)
        y = rng.integers(0, 11, 37)
        y[rng.random(37) < 0.2] = IGNORE_INDEX
        w = rng.uniform(0.5, 2.0, 11).astype(dtype)
        return both("cross_entropy", fastce.cross_entropy, fastce.cross_entropy_and_grad,
                    lambda xt: F.cross_entropy(xt, torch.tensor(y), weight=torch.tensor(w),
                                               label_smoothing=0.1),
                    x, target=y, weight=w, label_smoothing=0.1)

    def ce_spatial(dtype, rng):
        x = rng.standard_normal((3, 5, 4, 6)).astype(dtype)
        y = rng.integers(0, 5, (3, 4, 6))
        go = rng.standard_normal((3, 4, 6)).astype(dtype)
        return both("cross_entropy", fastce.cross_entropy, fastce.cross_entropy_and_grad,
                    lambda xt: F.cross_entropy(xt, torch.tensor(y), reduction="none"),
                    x, grad_output=go, target=y, reduction="none")

    def ce_probs(dtype, rng):
        x = rng.standard_normal((29, 7)).astype(dtype)
        p = rng.random((29, 7)).astype(dtype)
        p /= p.sum(axis=1, keepdims=True)
        return both("cross_entropy", fastce.cross_entropy, fastce.cross_entropy_and_grad,
                    lambda xt: F.cross_entropy(xt, torch.tensor(p), label_smoothing=0.05,
                                               reduction="sum"),
                    x, target=p, label_smoothing=0.05, reduction="sum")

    def nll(dtype, rng):
        x = rng.standard_normal((37, 11)).astype(dtype)
        y = rng.integers(0, 11, 37)
        w = rng.uniform(0.5, 2.0, 11).astype(dtype)
        return both("nll_loss", fastce.nll_loss, fastce.nll_loss_and_grad,
                    lambda xt: F.nll_loss(xt, torch.tensor(y), weight=torch.tensor(w)),
                    x, target=y, weight=w)

    def bce_logits(dtype, rng):
        x = (3 * rng.standard_normal((37, 11))).astype(dtype)
        y = rng.random((37, 11)).astype(dtype)
        w = rng.uniform(0.5, 2.0, 11).astype(dtype)
        pw = rng.uniform(0.5, 3.0, 11).astype(dtype)
        return both("binary_cross_entropy_with_logits",
                    fastce.binary_cross_entropy_with_logits,
                    fastce.binary_cross_entropy_with_logits_and_grad,
                    lambda xt: F.binary_cross_entropy_with_logits(
                        xt, torch.tensor(y), weight=torch.tensor(w),
                        pos_weight=torch.tensor(pw)),
                    x, target=y, weight=w, pos_weight=pw)

    def bce(dtype, rng):
        p = rng.uniform(0.01, 0.99, (37, 11)).astype(dtype)
        y = rng.random((37, 11)).astype(dtype)
        return both("binary_cross_entropy", fastce.binary_cross_entropy,
                    fastce.binary_cross_entropy_and_grad,
                    lambda xt: F.binary_cross_entropy(xt, torch.tensor(y)),
                    p, target=y)

    def softmax_family(dtype, rng):
        x = rng.standard_normal((13, 9, 5)).astype(dtype)
        xt = torch.tensor(x)
        return [("log_softmax", fastce.log_softmax(x), F.log_softmax(xt, 1).numpy()),
                ("softmax", fastce.softmax(x), F.softmax(xt, 1).numpy()),
                ("logsumexp", fastce.logsumexp(x), torch.logsumexp(xt, 1).numpy())]

    return [
        ("cross_entropy (N, C) vs torch", ce_plain),
        ("cross_entropy weight + ignore_index + label_smoothing vs torch", ce_options),
        ("cross_entropy (N, C, d1, d2) reduction='none' + grad_output vs torch",
         ce_spatial),
        ("cross_entropy probability targets + label_smoothing vs torch", ce_probs),
        ("nll_loss weight vs torch", nll),
        ("binary_cross_entropy_with_logits weight + pos_weight vs torch", bce_logits),
        ("binary_cross_entropy vs torch", bce),
        ("log_softmax / softmax / logsumexp (N, C, d) vs torch", softmax_family),
    ]


def _reference_cases():
    """The NumPy references against fastce, on small copies of the workloads:
    a benchmark against a wrong reference would be meaningless."""
    cases = []
    # one workload per code path of the references: few classes, a class
    # axis that is not last, BCE, and weight + ignore_index + label smoothing
    for name in ("A", "D", "E", "F"):
        w = WORKLOADS[name]
        shape = (23,) + w.shape[1:2] + ((3, 4) if len(w.shape) > 2 else ())
        if w.shape[1] > 50:
            shape = (23, 50) + shape[2:]

        def case(dtype, rng, w=w, shape=shape):
            small = Workload(w.name, shape, np.dtype(dtype).name, w.loss, w.description,
                             w.weighted, 0.3 if w.ignore_fraction else 0.0,
                             w.label_smoothing, seed=7)
            d = small.arrays()
            kw = small.fastce_kwargs()
            return [("loss", small.numpy_forward()(d["x"], d["target"], **kw),
                     small.fastce_forward()(d["x"], d["target"], **kw))]

        cases.append((f"NumPy reference of workload {name} vs fastce", case))
    return cases


def self_check(file=None, use_torch=True) -> bool:
    """Check fastce's numbers: a worked example computed by hand (the
    weighted mean of README.md, "Semantics worth knowing"), the NumPy
    references, and, when PyTorch is installed, every loss and gradient
    against PyTorch on small random inputs (float32 and float64).

    Parameters
    ----------
    file : file-like, optional
        Where the PASS / FAIL lines go (default sys.stdout).
    use_torch : bool, default True
        Compare against PyTorch when it is importable.

    Returns
    -------
    bool
        True when every check passed.
    """
    out = file if file is not None else sys.stdout
    all_ok = True

    def report(ok, text):
        nonlocal all_ok
        all_ok &= ok
        print(f"{'PASS' if ok else 'FAIL'}  {text}", file=out)

    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    y = np.array([1, 2])
    for weight, expected in (([1.0, 1.0, 1.0], 0.9076), ([1.0, 10.0, 1.0], 1.3167)):
        try:
            got = float(fastce.cross_entropy(x, y, weight))
            ok = round(got, 4) == expected
            detail = f"{got:.4f}"
        except Exception as exc:  # a self-check reports, it does not crash
            ok, detail = False, f"raised {type(exc).__name__}: {exc}"
        report(ok, f"worked example: cross_entropy(x, y, weight={weight}) = {detail}"
                   f" (expected {expected})")

    torch = import_torch(use_torch)
    cases = _reference_cases()
    if torch is not None:
        cases = _torch_cases(torch) + cases
    for name, case in cases:
        failures = []
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(zlib.crc32(name.encode()))  # same data every run
            try:
                for what, actual, expected in case(dtype, rng):
                    ok, detail = _close(actual, expected, dtype)
                    if not ok:
                        failures.append(f"{what} {np.dtype(dtype).name}: {detail}")
            except Exception as exc:
                failures.append(f"{np.dtype(dtype).name} raised "
                                f"{type(exc).__name__}: {exc}")
        report(not failures, name + ("" if not failures else ": " + "; ".join(failures)))
    if torch is None and use_torch:
        print("      (PyTorch not installed: comparisons against it skipped)", file=out)
    return all_ok
