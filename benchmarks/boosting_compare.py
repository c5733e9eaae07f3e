"""fastce's boosting objectives against the NumPy formula, and XGBoost
training with fastce's objective against its built-in one, in one run.

    python benchmarks/boosting_compare.py                  # both parts, 1 and 2 threads
    python benchmarks/boosting_compare.py --part objective --rounds 20
    python benchmarks/boosting_compare.py --part xgboost --boost-rounds 200
    python benchmarks/boosting_compare.py --markdown       # for the README

Part 1 times one objective call (gradient and Hessian, allocated outputs)
per implementation, interleaved (see `fastce._bench.timing`): fastce's
`softmax_grad_hess` / `logistic_grad_hess`, the NumPy formula a custom
objective is usually written with, and torch's ops when torch is installed.
The NumPy formula is single-threaded; the thread count applies to fastce
and torch.

Part 2 trains XGBoost (``tree_method="hist"``) for the same rounds and
parameters with ``objective="multi:softprob"``, with fastce's
`xgboost_objective`, and with the NumPy formula as the custom objective,
interleaved, ``nthread`` = the thread count for XGBoost and fastce alike,
and reports the median wall time of a whole ``xgboost.train``.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from fastce._bench.timing import interleaved_medians
from fastce.boosting import logistic_grad_hess, softmax_grad_hess, xgboost_objective

OBJECTIVE_WORKLOADS = [("softmax", 100_000, 10), ("softmax", 20_000, 100),
                       ("logistic", 1_000_000, 1)]


# ----------------------------------------------------------- the formulas --

def numpy_softmax_grad_hess(raw, y):
    """The usual hand-written XGBoost multi:softprob objective."""
    z = raw - raw.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    grad = p.copy()
    grad[np.arange(len(y)), y] -= 1.0
    hess = np.maximum(2.0 * p * (1.0 - p), 1e-16)
    return grad, hess


def numpy_logistic_grad_hess(raw, y):
    p = 1.0 / (1.0 + np.exp(-raw))
    return p - y, np.maximum(p * (1.0 - p), 1e-16)


def _torch_softmax(torch):
    def fn(raw, y):
        x = torch.from_numpy(raw)
        p = torch.softmax(x, dim=1)
        grad = p.clone()
        grad[torch.arange(len(y)), torch.from_numpy(y)] -= 1.0
        hess = torch.clamp(2.0 * p * (1.0 - p), min=1e-16)
        return grad.numpy(), hess.numpy()
    return fn


def _torch_logistic(torch):
    def fn(raw, y):
        p = torch.sigmoid(torch.from_numpy(raw))
        hess = torch.clamp(p * (1 - p), min=1e-16)
        return (p - torch.from_numpy(y)).numpy(), hess.numpy()
    return fn


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---------------------------------------------------------------- part 1 --

def objective_rows(rounds: int, threads: list[int]):
    rng = np.random.default_rng(0)
    torch = _import_torch()
    rows = []
    for kind, n, c in OBJECTIVE_WORKLOADS:
        if kind == "softmax":
            raw = rng.normal(size=(n, c)).astype(np.float32)
            y = rng.integers(0, c, n)
            impls = {"fastce": lambda t: (lambda: softmax_grad_hess(raw, y, n_threads=t)),
                     "numpy": lambda t: (lambda: numpy_softmax_grad_hess(raw, y))}
            if torch is not None:
                tf = _torch_softmax(torch)
                impls["torch"] = lambda t: (lambda: tf(raw, y))
            fg, fh = softmax_grad_hess(raw, y)
            ng, nh = numpy_softmax_grad_hess(raw, y)
        else:
            raw = rng.normal(size=n).astype(np.float32)
            y = rng.integers(0, 2, n).astype(np.float32)
            impls = {"fastce": lambda t: (lambda: logistic_grad_hess(raw, y, n_threads=t)),
                     "numpy": lambda t: (lambda: numpy_logistic_grad_hess(raw, y))}
            if torch is not None:
                tf = _torch_logistic(torch)
                impls["torch"] = lambda t: (lambda: tf(raw, y))
            fg, fh = logistic_grad_hess(raw, y)
            ng, nh = numpy_logistic_grad_hess(raw, y)
        # the same numbers, or the comparison means nothing
        assert np.allclose(fg, ng, atol=1e-6) and np.allclose(fh, nh, atol=1e-6)
        shape = f"({n}, {c})" if kind == "softmax" else f"({n},)"
        for t in threads:
            if torch is not None:
                torch.set_num_threads(t)
            med, _ = interleaved_medians({k: f(t) for k, f in impls.items()}, rounds, None)
            rows.append(dict(kind=kind, shape=shape, threads=t, **{k: v * 1e3 for k, v in
                                                                 med.items()}))
    return rows


# ---------------------------------------------------------------- part 2 --

def xgboost_rows(boost_rounds: int, repeats: int, threads: list[int], n: int, c: int):
    import xgboost as xgb
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=30, n_informative=12,
                               n_classes=c, n_clusters_per_class=2, random_state=0)
    d = xgb.DMatrix(X.astype(np.float32), label=y)
    y_int = y.astype(np.int64)

    def numpy_obj(predt, dtrain):
        return numpy_softmax_grad_hess(predt, y_int)

    rows = []
    for t in threads:
        params = dict(tree_method="hist", max_depth=6, eta=0.1, num_class=c,
                      base_score=0.5, nthread=t, seed=0)
        custom = dict(params, disable_default_eval_metric=1)
        obj = xgboost_objective("softmax", n_threads=t)
        impls = {
            "built-in": lambda: xgb.train(dict(params, objective="multi:softprob"), d,
                                          num_boost_round=boost_rounds),
            "fastce": lambda: xgb.train(custom, d, num_boost_round=boost_rounds, obj=obj),
            "numpy": lambda: xgb.train(custom, d, num_boost_round=boost_rounds,
                                       obj=numpy_obj),
        }
        med, _ = interleaved_medians(impls, repeats, None)
        b1, b2 = impls["built-in"](), impls["fastce"]()
        p1 = b1.predict(d)
        m2 = b2.predict(d, output_margin=True).astype(np.float64)
        p2 = np.exp(m2 - m2.max(1, keepdims=True))
        p2 /= p2.sum(1, keepdims=True)
        rows.append(dict(threads=t, **{k: v for k, v in med.items()},
                         max_prob_diff=float(np.abs(p1 - p2).max())))
    return rows


# ---------------------------------------------------------------- report --

def _table(header, rows, markdown):
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["objective", "xgboost", "both"], default="both")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=30, help="interleaved rounds (part 1)")
    ap.add_argument("--boost-rounds", type=int, default=200, help="XGBoost rounds")
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved trainings per implementation (part 2)")
    ap.add_argument("--samples", type=int, default=20_000, help="XGBoost training rows")
    ap.add_argument("--classes", type=int, default=7, help="XGBoost classes")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    if args.part in ("objective", "both"):
        rows = objective_rows(args.rounds, threads)
        has_torch = "torch" in rows[0]
        header = ["objective", "shape", "threads", "fastce ms", "NumPy ms"]
        header += ["torch ms"] if has_torch else []
        header += ["NumPy / fastce"] + (["torch / fastce"] if has_torch else [])
        body = []
        for r in rows:
            cells = [r["kind"], r["shape"], str(r["threads"]), f"{r['fastce']:.2f}",
                     f"{r['numpy']:.2f}"]
            cells += [f"{r['torch']:.2f}"] if has_torch else []
            cells += [f"{r['numpy'] / r['fastce']:.1f}"]
            cells += [f"{r['torch'] / r['fastce']:.1f}"] if has_torch else []
            body.append(cells)
        print("\nObjective call (gradient + Hessian), float32, medians of "
              f"{args.rounds} interleaved rounds\n")
        print(_table(header, body, args.markdown))
    if args.part in ("xgboost", "both"):
        rows = xgboost_rows(args.boost_rounds, args.repeats, threads, args.samples,
                            args.classes)
        header = ["threads", "built-in s", "fastce s", "NumPy objective s",
                  "fastce / built-in", "NumPy / built-in", "max abs(dp) vs built-in"]
        body = [[str(r["threads"]), f"{r['built-in']:.2f}", f"{r['fastce']:.2f}",
                 f"{r['numpy']:.2f}", f"{r['fastce'] / r['built-in']:.2f}",
                 f"{r['numpy'] / r['built-in']:.2f}", f"{r['max_prob_diff']:.1e}"]
                for r in rows]
        print(f"\nxgboost.train, hist, {args.boost_rounds} rounds, ({args.samples}, 30) "
              f"x {args.classes} classes, medians of {args.repeats} interleaved runs\n")
        print(_table(header, body, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
