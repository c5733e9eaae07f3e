"""Record the exact bits of fastce's results for ``tests/test_bits.py``.

``tests/data/bits_baseline.npz`` was generated from commit dd94468, the main
before the structure refactor of issue 11, so that the refactor (and any
later change meant to be bit-neutral) is checked against that commit's
results bit for bit.

The script builds a fixed set of a few hundred small cases from
``numpy.random.default_rng(SEED)`` covering every kernel path (short rows,
row-wise rows with and without the kept-exponentials tile, long rows, split
huge rows, position-major (N, C, d...) tiles, channels-last, unbatched
input; index and probability targets, weights, label smoothing, ignore_index,
reductions, upstream gradients, non-finite logits; both BCE losses; the
softmax family; float32, float64, float16).  Each case runs with
``n_threads=1`` and ``n_threads=2`` (asserted to give the same bits) on every
SIMD variant the build has and this CPU runs; the inputs are stored too, so
the file does not depend on NumPy's random streams.

Regenerate (only ever from dd94468's build; the point is to keep its bits)::

    git worktree add ../fastce-dd94468 dd94468
    cd ../fastce-dd94468
    python -m venv venv && venv/bin/pip install .    # dd94468's build
    # the script and the test postdate that commit: bring them along
    cp <this tree>/tools/make_bits.py tools/
    cp <this tree>/tests/test_bits.py tests/
    venv/bin/python tools/make_bits.py --out <this tree>/tests/data/bits_baseline.npz

(with ``build_ext --inplace`` instead of ``pip install``, run it as
``PYTHONPATH=. venv/bin/python tools/make_bits.py ...``) on an x86-64 CPU
with AVX-512, so that all three variants get bits.  The script prints where
``fastce`` came from: it must be dd94468's build, not this tree's.  The
output is the same bytes on every run.

File layout: ``meta`` (JSON: commit, variants, versions, seed), ``cases``
(JSON list; per case ``name``, ``fn``, ``kwargs``, ``grad_output``, ``out``,
``view``, ``inputs`` {role: key} and ``results`` {variant: {slot: {key,
type[, xor_with]}}}), ``index`` (JSON: key -> [byte offset, dtype, shape[,
stored dtype]]) and ``blob`` (uint8: every array's bytes, a float array in
the narrowest float type that holds it exactly).  Identical arrays are stored
once; a variant's result may be stored as the XOR of its bits with the
result of the variant ``xor_with`` names (mostly zero bytes).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import fastce  # noqa: E402
from fastce._kernels import _runtime  # noqa: E402
# one definition of how a case calls fastce, shared with the test
from _helpers import simd_variant as running_on  # noqa: E402
from test_bits import THREAD_COUNTS, as_bits, call_case  # noqa: E402

COMMIT = "dd94468"
SEED = 20240611
DEFAULT_OUT = os.path.join(ROOT, "tests", "data", "bits_baseline.npz")
SIZE_LIMIT = 3_000_000

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
DTYPE_TAG = {F16: "f16", F32: "f32", F64: "f64"}
FN_TAG = {"cross_entropy": "ce", "nll_loss": "nll",
          "binary_cross_entropy_with_logits": "bcel", "binary_cross_entropy": "bce",
          "log_softmax": "logsm", "softmax": "sm", "logsumexp": "lse",
          "CrossEntropyLoss": "CEobj", "NLLLoss": "NLLobj",
          "BCEWithLogitsLoss": "BCELobj", "BCELoss": "BCEobj"}

# class counts on each side of the kernels' thresholds (simd.h, _tiles.pxd):
# rows shorter than 32 classes go through the transposed short-row path; up
# to 2048 classes (FCE_ROW_BLOCK) a loss + gradient tile keeps its
# exponentials; above, rows are plain row-wise; 257 / 513 cross the
# 256-class chunks summed in the input's type before going to float64
SHORT_ROW_CLASSES = (2, 3, 5, 10, 17, 31)
ROW_WISE_CLASSES = (32, 100, 257, 513, 1000, 2048)
LONG_ROW_CLASSES = (2049, 3000, 9999)
# inputs of cases above COARSE_ABOVE elements are drawn coarse (few distinct
# values, see `_coarse`), above LARGE_ABOVE coarser still: the larger cases
# are most of the file, full-precision noise barely compresses, and the
# results of few distinct inputs compress too
COARSE_ABOVE = 512
LARGE_ABOVE = 16384


def _coarse(values: np.ndarray, steps_per_unit: int, dtype: np.dtype) -> np.ndarray:
    """``values`` rounded to multiples of 1 / steps_per_unit: a handful of
    mantissa bits, so a large array (and, through ties, its results)
    compresses several times better than full-precision noise."""
    return (np.round(values * steps_per_unit) / steps_per_unit).astype(dtype)


class CaseSet:
    """Cases and their inputs, drawn from one seeded generator.

    Parameters
    ----------
    seed : int
        Seed of ``numpy.random.default_rng``.
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.cases: list[dict[str, Any]] = []

    # -------------------------------------------------------- inputs --

    def logits(self, shape: tuple[int, ...], dtype: np.dtype,
               scale: float = 3.0) -> np.ndarray:
        """Normal logits; above COARSE_ABOVE elements uniform in [-8, 8]
        rounded to multiples of 1/8, above LARGE_ABOVE to 1/2 (ties in a
        row come with it)."""
        size = math.prod(shape)
        if size > COARSE_ABOVE:
            steps = 2 if size > LARGE_ABOVE else 8
            return _coarse(self.rng.uniform(-8.0, 8.0, size=shape), steps, dtype)
        return (self.rng.standard_normal(shape) * scale).astype(dtype)

    def log_probs(self, shape: tuple[int, ...], dtype: np.dtype, axis: int) -> np.ndarray:
        """Log-probabilities along ``axis``, as nll_loss expects."""
        x = self.rng.standard_normal(shape) * 2.0
        x = x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))
        if x.size > COARSE_ABOVE:
            return _coarse(x, 2 if x.size > LARGE_ABOVE else 8, dtype)
        return x.astype(dtype)

    def classes(self, shape: tuple[int, ...], n_cls: int, dtype: Any = np.int64,
                ignore: int | None = None, ignore_fraction: float = 0.25) -> np.ndarray:
        """Class-index targets; with ``ignore``, about ``ignore_fraction`` of
        them set to it."""
        high = min(n_cls, np.iinfo(dtype).max + 1)
        t = self.rng.integers(0, high, size=shape)
        if ignore is not None:
            t = np.where(self.rng.random(shape) < ignore_fraction, ignore, t)
        return np.asarray(t).astype(dtype)

    def probabilities(self, shape: tuple[int, ...], dtype: np.dtype,
                      axis: int) -> np.ndarray:
        """Class probabilities along ``axis``: summing to 1 up to
        COARSE_ABOVE elements; above, multiples of a power of two that sum
        to about 1 (soft targets need not sum to 1, and these compress)."""
        if math.prod(shape) > COARSE_ABOVE:
            n_cls = shape[axis]
            step = 2.0 ** -math.ceil(math.log2(3.5 * n_cls))
            return (self.rng.integers(0, 8, size=shape) * step).astype(dtype)
        y = self.rng.random(shape)
        return (y / np.sum(y, axis=axis, keepdims=True)).astype(dtype)

    def weights(self, shape: Any, dtype: np.dtype = F64,
                coarse: bool | None = None) -> np.ndarray:
        """Positive weights in [0.2, 2.5]; ``coarse`` ones (default: above
        COARSE_ABOVE weights) multiples of 1/8."""
        w = self.rng.uniform(0.2, 2.5, size=shape)
        if coarse is None:
            coarse = w.size > COARSE_ABOVE
        return _coarse(w, 8, dtype) if coarse else w.astype(dtype)

    def unit(self, shape: tuple[int, ...], dtype: np.dtype, low: float = 0.02,
             high: float = 0.98) -> np.ndarray:
        """Values in [low, high]: BCE probabilities and targets."""
        u = self.rng.uniform(low, high, size=shape)
        return _coarse(u, 64, dtype) if u.size > COARSE_ABOVE else u.astype(dtype)

    def upstream(self, shape: tuple[int, ...], dtype: np.dtype = F64) -> np.ndarray:
        """An upstream gradient array for reduction="none"."""
        g = self.rng.standard_normal(shape)
        return _coarse(g, 8, dtype) if g.size > COARSE_ABOVE else g.astype(dtype)

    # --------------------------------------------------------- cases --

    def add(self, name: str, fn: str, inputs: dict[str, np.ndarray | None], *,
            grad_output: float | str | None = None, out: str | None = None,
            view: str | None = None, **kwargs: Any) -> None:
        """Add a case; ``inputs`` maps roles to arrays (None: not passed)."""
        self.cases.append(dict(
            name=name, fn=fn, kwargs=kwargs, grad_output=grad_output, out=out, view=view,
            arrays={role: np.asarray(a) for role, a in inputs.items() if a is not None}))


def _shape_tag(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "0d"


def _options_tag(reduction: str = "mean", weight: bool = False, eps: float = 0.0,
                 ignore: str | None = None, target_dtype: Any = None,
                 grad_output: Any = None) -> str:
    """The option part of a case name, e.g. ``none-w-ls0.1-ign2-i32-go``."""
    parts = [reduction]
    if weight:
        parts.append("w")
    if eps:
        parts.append(f"ls{eps:g}")
    if ignore:
        parts.append(f"ign{ignore}")
    if target_dtype is not None and np.dtype(target_dtype) != np.int64:
        parts.append({np.int32: "i32", np.uint8: "u8", np.int16: "i16"}[
            np.dtype(target_dtype).type])
    if isinstance(grad_output, str):
        parts.append("go")
    elif grad_output is not None:
        parts.append(f"go{grad_output:g}")
    return "-".join(parts)


# The option combinations the class-index grids cycle through: every case of
# a grid takes a few of them, so each option meets every dtype and path
# without a full cross product.  ``ignore``: None, "default" (-100 hits) or
# "custom" (a valid class index, min(2, C - 1), as ignore_index).
_I64, _I32, _U8, _I16 = np.int64, np.int32, np.uint8, np.int16
INDEX_VARIANTS = (
    dict(reduction="mean", weight=False, eps=0.0, ignore=None, tdt=_I64, go=None),
    dict(reduction="sum", weight=True, eps=0.1, ignore=None, tdt=_I32, go=0.5),
    dict(reduction="none", weight=True, eps=0.0, ignore="default", tdt=_I64, go="array"),
    dict(reduction="mean", weight=True, eps=1.0, ignore=None, tdt=_U8, go=None),
    dict(reduction="none", weight=False, eps=0.1, ignore="custom", tdt=_I16, go="array"),
    dict(reduction="mean", weight=True, eps=0.1, ignore="custom", tdt=_I64, go=3.0),
    dict(reduction="sum", weight=False, eps=1.0, ignore="default", tdt=_I64, go=3.0),
    dict(reduction="mean", weight=True, eps=0.0, ignore="default", tdt=_I32, go=None),
)


def _variants(start: int, count: int) -> list[dict[str, Any]]:
    return [INDEX_VARIANTS[(start + k) % len(INDEX_VARIANTS)] for k in range(count)]


def add_index_case(cs: CaseSet, tag: str, x: np.ndarray, axis: int | None,
                   variant: dict[str, Any], fn: str = "cross_entropy",
                   axis_keyword: str = "axis", masked_fraction: float = 0.0) -> None:
    """A class-index target case of ``fn`` on ``x`` with one of INDEX_VARIANTS.

    ``axis`` (None: the default) is passed as ``axis_keyword`` (its alias
    ``dim`` is tested too).  ``masked_fraction`` of the logits at non-target
    classes become -inf: exact zeros in the gradient (compact), while the
    loss stays finite, so it still shows the order of the sums.
    """
    ax = (1 if x.ndim >= 2 else 0) if axis is None else axis % x.ndim
    n_cls = x.shape[ax]
    batch = x.shape[:ax] + x.shape[ax + 1:]
    ignore_value = {None: None, "default": -100, "custom": min(2, n_cls - 1)}[
        variant["ignore"]]
    tdt = variant["tdt"]
    if ignore_value is not None and ignore_value < 0 and np.dtype(tdt).kind == "u":
        tdt = np.int64   # an unsigned target cannot hold -100
    target = cs.classes(batch, n_cls, tdt, ignore=ignore_value)
    if masked_fraction:
        mask = cs.rng.random(x.shape) < masked_fraction
        at_target = np.expand_dims(np.clip(target.astype(np.int64), 0, n_cls - 1), ax)
        np.put_along_axis(mask, at_target, False, axis=ax)
        x = np.where(mask, -np.inf, x).astype(x.dtype)
    kwargs: dict[str, Any] = {"reduction": variant["reduction"]}
    if axis is not None:
        kwargs[axis_keyword] = axis
    if fn == "cross_entropy" and variant["eps"]:
        kwargs["label_smoothing"] = variant["eps"]
    if variant["ignore"] == "custom":
        kwargs["ignore_index"] = ignore_value
    go = variant["go"]
    if go == "array" and variant["reduction"] != "none":
        go = None
    inputs = {"input": x, "target": target,
              "weight": cs.weights(n_cls, x.dtype if n_cls % 2 else F64,
                                   coarse=x.size > COARSE_ABOVE)
              if variant["weight"] else None,
              "grad_output": cs.upstream(batch) if go == "array" else None}
    name = "-".join([DTYPE_TAG[x.dtype], FN_TAG[fn], tag, f"C{n_cls}", _options_tag(
        variant["reduction"], variant["weight"], kwargs.get("label_smoothing", 0.0),
        None if variant["ignore"] is None else str(ignore_value), tdt, go)])
    cs.add(name, fn, inputs, grad_output=go, **kwargs)


def add_prob_case(cs: CaseSet, tag: str, x: np.ndarray, axis: int | None, *,
                  reduction: str, weight: bool, eps: float, go: Any) -> None:
    """A probability-target cross_entropy case."""
    ax = (1 if x.ndim >= 2 else 0) if axis is None else axis % x.ndim
    n_cls = x.shape[ax]
    batch = x.shape[:ax] + x.shape[ax + 1:]
    kwargs: dict[str, Any] = {"reduction": reduction}
    if axis is not None:
        kwargs["axis"] = axis
    if eps:
        kwargs["label_smoothing"] = eps
    if go == "array" and (reduction != "none" or not batch):
        go = None if reduction != "none" else 2.0
    inputs = {"input": x, "target": cs.probabilities(x.shape, x.dtype, ax),
              "weight": cs.weights(n_cls, coarse=x.size > COARSE_ABOVE) if weight else None,
              "grad_output": cs.upstream(batch) if go == "array" else None}
    name = "-".join([DTYPE_TAG[x.dtype], "ce-prob", tag, f"C{n_cls}",
                     _options_tag(reduction, weight, eps, None, None, go)])
    cs.add(name, "cross_entropy", inputs, grad_output=go, **kwargs)


# ------------------------------------------------------------ the cases --

def class_index_cases(cs: CaseSet) -> None:
    """cross_entropy with class-index targets over every layout and path."""
    # rows per class count: a few rows share one tile (the kept-exponentials
    # tile holds rows * C <= 8192), fewer as C grows to keep the file small
    rows_for = {32: 6, 100: 4, 257: 3, 513: 2, 1000: 1, 2048: 1, 2049: 2, 3000: 1,
                9999: 1}
    k = 0
    for dtype in (F32, F64):
        # class axis last, one tile each; three option sets per class count
        # (two for the long rows)
        for n_cls in SHORT_ROW_CLASSES + ROW_WISE_CLASSES + LONG_ROW_CLASSES:
            rows = rows_for.get(n_cls, 7)
            # fewer for the long rows, which cost most; float64 twice as much
            count = (3 if n_cls < 257 else 2) if n_cls <= 2048 else 2 if dtype == F32 else 1
            if dtype == F32 and n_cls in (257, 513):
                count = 3
            for variant in _variants(k, count):
                add_index_case(cs, "rows", cs.logits((rows, n_cls), dtype), None, variant)
            k += 3
        # several tiles of rows (tile = min(8192 // C, 256) rows): the
        # per-tile sums are added in tile order
        tiles = (((300, 3), 2), ((300, 17), 2), ((28, 300), 1), ((5, 2048), 1),
                 ((3, 3000), 1)) if dtype == F32 else (((300, 17), 1),)
        for shape, count in tiles:
            for variant in _variants(k, count):
                add_index_case(cs, "tiles", cs.logits(shape, dtype), None, variant)
            k += 2
        # position-major tiles: class axis 1 of (N, C, d1[, d2]) (a tile is
        # a run of positions, at least 16) and dim=0 of a 2-D input
        spatial = (((2, 5, 7), 2), ((3, 4, 6, 5), 2), ((2, 5, 300), 2), ((2, 40, 17), 2))
        if dtype == F32:
            spatial += (((1, 300, 20), 1), ((1, 2100, 3), 1))
        for shape, count in spatial:
            for variant in _variants(k, count):
                add_index_case(cs, "spatial", cs.logits(shape, dtype), None, variant)
            k += 2
        add_index_case(cs, "dim0", cs.logits((5, 7), dtype), 0, _variants(k, 1)[0],
                       axis_keyword="dim")
        k += 1
        # channels last: axis=-1 of a (N, d1, [d2,] C) input is rows again
        for shape, count in (((2, 3, 5), 2), ((2, 4, 6, 40), 2), ((1, 2, 2500), 1)):
            for variant in _variants(k, count):
                add_index_case(cs, "chlast", cs.logits(shape, dtype), -1, variant)
            k += 2
        # unbatched (C,): a 0-d target, so a scalar grad_output
        for n_cls, count in ((1, 2), (6, 2), (50, 2), (3000, 1)):
            for variant in _variants(k, count):
                if variant["go"] == "array":
                    variant = dict(variant, go=2.0)
                add_index_case(cs, "1d", cs.logits((n_cls,), dtype), None, variant)
            k += 2
        # a single class, an empty batch, every target ignored
        add_index_case(cs, "rows", cs.logits((4, 1), dtype), None, INDEX_VARIANTS[1])
        for variant in (INDEX_VARIANTS[0], INDEX_VARIANTS[1], INDEX_VARIANTS[2]):
            add_index_case(cs, "empty", cs.logits((0, 4), dtype), None, variant)
        x = cs.logits((3, 4), dtype)
        for reduction in ("mean", "sum"):
            cs.add(f"{DTYPE_TAG[dtype]}-ce-rows-C4-{reduction}-allignored", "cross_entropy",
                   {"input": x, "target": np.full(3, -100)}, reduction=reduction)

    # float16 is computed in float32 and rounded: one pass over the layouts
    for n_cls in (3, 17, 40, 513, 3000):
        add_index_case(cs, "rows", cs.logits((2, n_cls), F16), None, _variants(k, 1)[0])
        k += 1
    add_index_case(cs, "spatial", cs.logits((2, 5, 7), F16), None, _variants(k, 1)[0])
    add_index_case(cs, "chlast", cs.logits((2, 3, 40), F16), -1, _variants(k + 1, 1)[0])
    add_index_case(cs, "1d", cs.logits((6,), F16), None, INDEX_VARIANTS[0])


def large_cases(cs: CaseSet) -> None:
    """Inputs of at least 32768 elements, the least that fastce spreads over
    threads (``fastce._config.SERIAL_THRESHOLD``), and the split path of a
    few huge rows (rows <= 16, C >= 65536: class chunks of 16384).  Kept
    few: they dominate the file's size."""
    ce = "cross_entropy"
    # row-wise tiles (16 rows of 500), short rows and position-major tiles
    # over threads
    add_index_case(cs, "threads", cs.logits((66, 500), F32), None, INDEX_VARIANTS[5],
                   masked_fraction=0.75)
    add_index_case(cs, "threads", cs.logits((3300, 10), F32), None, INDEX_VARIANTS[7],
                   masked_fraction=0.75)
    add_index_case(cs, "threads", cs.logits((1, 8, 64, 64), F32), None, INDEX_VARIANTS[0],
                   masked_fraction=0.75)
    # nll_loss (its gradient is zero off the targets) and probability
    # targets (nonzero only where the logit is finite) over threads
    add_index_case(cs, "threads", cs.log_probs((3300, 10), F32, 1), None, INDEX_VARIANTS[1],
                   fn="nll_loss")
    x = cs.logits((66, 500), F32)
    x[cs.rng.random(x.shape) < 0.75] = -np.inf
    x[:, 0] = 0.5                      # never a row of only -inf
    soft = np.where(np.isfinite(x), cs.probabilities(x.shape, F32, 1), 0.0).astype(F32)
    cs.add("f32-ce-prob-threads-C500-sum-w-masked", ce,
           {"input": x, "target": soft, "weight": cs.weights(500, coarse=True)},
           reduction="sum")

    # split path: one fully finite row; rows mostly masked with -inf (exact
    # zeros in the gradient without label smoothing, so they cost little)
    add_index_case(cs, "split", cs.logits((1, 70000), F32), None,
                   dict(INDEX_VARIANTS[1], weight=False, eps=0.0))

    def masked_rows(shape: tuple[int, int], dtype: np.dtype, finite: float):
        x = cs.logits(shape, dtype)
        x[cs.rng.random(shape) >= finite] = -np.inf
        target = cs.classes(shape[:1], shape[1])
        x[np.arange(shape[0]), target] = 1.5      # the target classes stay finite
        return x, target

    masked, target = masked_rows((3, 65536 + 123), F32, 0.05)
    cs.add(f"f32-ce-split-C{masked.shape[1]}-mean-masked", ce,
           {"input": masked, "target": target})
    # four weight levels: a compact weight for 65659 classes
    cs.add(f"f32-ce-split-C{masked.shape[1]}-sum-w-go0.5-masked", ce,
           {"input": masked, "target": target,
            "weight": cs.rng.integers(1, 5, size=masked.shape[1]).astype(F32)},
           reduction="sum", grad_output=0.5)
    masked64, target64 = masked_rows((2, 65536 + 1), F64, 0.05)
    cs.add(f"f64-ce-split-C{masked64.shape[1]}-none-ls0.1-go-masked", ce,
           {"input": masked64, "target": target64, "grad_output": cs.upstream((2,))},
           reduction="none", label_smoothing=0.1, grad_output="array")
    # probability targets on the split path, nonzero only at finite logits
    soft = np.where(np.isfinite(masked[:1]), cs.probabilities(masked[:1].shape, F32, 1),
                    0.0).astype(F32)
    cs.add(f"f32-ce-prob-split-C{masked.shape[1]}-mean-masked", ce,
           {"input": masked[:1].copy(), "target": soft})
    # softmax family on the split path
    for fn in ("log_softmax", "softmax", "logsumexp"):
        cs.add(f"f32-{FN_TAG[fn]}-split-C{masked.shape[1]}-masked", fn,
               {"input": masked[:1].copy()})
    cs.add(f"f64-lse-split-C{masked64.shape[1]}-masked", "logsumexp", {"input": masked64})


def probability_cases(cs: CaseSet) -> None:
    """cross_entropy with probability (soft) targets."""
    options = (dict(reduction="mean", weight=False, eps=0.0, go=None),
               dict(reduction="sum", weight=True, eps=0.1, go=0.5),
               dict(reduction="none", weight=True, eps=0.0, go="array"),
               dict(reduction="none", weight=False, eps=1.0, go="array"),
               dict(reduction="mean", weight=True, eps=0.1, go=3.0))
    layouts = (((7, 3), None, "rows"), ((6, 17), None, "rows"), ((5, 40), None, "rows"),
               ((2, 600), None, "rows"),
               ((300, 5), None, "tiles"), ((3, 5, 4), None, "spatial"),
               ((2, 4, 3, 5), None, "spatial"), ((2, 3, 8), -1, "chlast"),
               ((9,), None, "1d"))
    k = 0
    for dtype in (F32, F64):
        for shape, axis, tag in layouts:
            for j in range(2):
                add_prob_case(cs, tag, cs.logits(shape, dtype), axis,
                              **options[(k + j) % len(options)])
            k += 2
    add_prob_case(cs, "rows", cs.logits((1, 3000), F32), None, **options[1])
    add_prob_case(cs, "rows", cs.logits((4, 10), F16), None, **options[1])
    add_prob_case(cs, "spatial", cs.logits((2, 4, 3), F16), None, **options[2])


def nll_cases(cs: CaseSet) -> None:
    """nll_loss on log-probabilities, with and without weights."""
    k = 0
    for dtype in (F32, F64):
        for shape, axis, tag in (((8, 5), None, "rows"), ((6, 40), None, "rows"),
                                 ((1, 2500), None, "rows"), ((300, 7), None, "tiles"),
                                 ((3, 4, 2), None, "spatial"),
                                 ((2, 6, 3, 3), None, "spatial"),
                                 ((2, 3, 6), -1, "chlast"), ((4,), None, "1d")):
            ax = (1 if len(shape) >= 2 else 0) if axis is None else axis % len(shape)
            for variant in _variants(k, 2):
                if tag == "1d" and variant["go"] == "array":
                    variant = dict(variant, go=0.5)
                add_index_case(cs, tag, cs.log_probs(shape, dtype, ax), axis, variant,
                               fn="nll_loss")
            k += 2
    add_index_case(cs, "rows", cs.log_probs((5, 4), F16, 1), None, INDEX_VARIANTS[2],
                   fn="nll_loss")


def non_finite_cases(cs: CaseSet) -> None:
    """-inf logits at non-target classes, NaN at ignored positions, +inf."""
    for dtype in (F32, F64):
        d = DTYPE_TAG[dtype]
        # long rows (row-wise, not kept exponentials) get the first three
        for n_cls, rows, count in ((10, 6, 6), (100, 6, 6), (2500, 2, 3)):
            x = cs.logits((rows, n_cls), dtype)
            t = cs.classes((rows,), n_cls)
            masked = x.copy()
            mask = cs.rng.random(x.shape) < 0.3
            mask[np.arange(rows), t] = False
            masked[mask] = -np.inf
            coarse = x.size > COARSE_ABOVE
            # NaN logits only in ignored rows: they must not reach the loss
            ignored = t.copy()
            ignored[[0, rows - 1]] = -100
            nan_rows = x.copy()
            nan_rows[[0, rows - 1], :] = np.nan
            # +inf (a NaN loss and gradient row) and a NaN in a counted row
            pos = x.copy()
            pos[0, (t[0] + 1) % n_cls] = np.inf
            pos[rows - 1, 0] = np.nan
            cases = (
                (f"{d}-ce-rows-C{n_cls}-mean-ls0.1-neginf", "cross_entropy",
                 {"input": masked, "target": t}, dict(label_smoothing=0.1)),
                (f"{d}-ce-rows-C{n_cls}-none-w-go-neginf", "cross_entropy",
                 {"input": masked, "target": t, "weight": cs.weights(n_cls, coarse=coarse),
                  "grad_output": cs.upstream((rows,))},
                 dict(reduction="none", grad_output="array")),
                (f"{d}-ce-rows-C{n_cls}-none-posinf-nan", "cross_entropy",
                 {"input": pos, "target": t}, dict(reduction="none")),
                (f"{d}-ce-rows-C{n_cls}-mean-w-nan-ignored", "cross_entropy",
                 {"input": nan_rows, "target": ignored,
                  "weight": cs.weights(n_cls, coarse=coarse)}, {}),
                (f"{d}-nll-rows-C{n_cls}-sum-nan-ignored", "nll_loss",
                 {"input": nan_rows, "target": ignored}, dict(reduction="sum")),
                (f"{d}-ce-prob-rows-C{n_cls}-none-neginf", "cross_entropy",
                 {"input": masked, "target": cs.probabilities(x.shape, dtype, 1)},
                 dict(reduction="none")))
            for name, fn, inputs, kwargs in cases[:count]:
                cs.add(name, fn, inputs, **kwargs)
        # position-major layout with -inf and ignored NaN positions
        x = cs.logits((2, 6, 20), dtype)
        t = cs.classes((2, 20), 6)
        x[0, 1, :] = -np.inf
        t[0] = np.where(t[0] == 1, 0, t[0])
        t[1, :5] = -100
        x[1, :, :5] = np.nan
        cs.add(f"{d}-ce-spatial-C6-mean-ls0.1-neginf-nan-ignored", "cross_entropy",
               {"input": x, "target": t}, label_smoothing=0.1)
        # softmax family: -inf entries, an all -inf row, +inf, NaN
        x = cs.logits((5, 40), dtype)
        x[0, ::3] = -np.inf
        x[1, :] = -np.inf
        x[2, 7] = np.inf
        x[3, 9] = np.nan
        x[4, 3] = np.inf
        x[4, 5] = np.inf
        short = cs.logits((4, 5), dtype)
        short[0] = -np.inf
        short[1, 2] = np.inf
        short[2, 1] = np.nan
        spatial = cs.logits((2, 4, 9), dtype)
        spatial[0, :, 0] = -np.inf
        spatial[1, 2, 3] = np.inf
        for fn in ("log_softmax", "softmax", "logsumexp"):
            cs.add(f"{d}-{FN_TAG[fn]}-rows-C40-nonfinite", fn, {"input": x})
            cs.add(f"{d}-{FN_TAG[fn]}-rows-C5-nonfinite", fn, {"input": short})
            cs.add(f"{d}-{FN_TAG[fn]}-spatial-C4-nonfinite", fn, {"input": spatial})


def bce_with_logits_cases(cs: CaseSet) -> None:
    """binary_cross_entropy_with_logits: weight broadcasts, pos_weight, large
    and infinite logits, every layout of rows and columns."""
    fn = "binary_cross_entropy_with_logits"
    weight_shapes = {"": None, "wC": lambda n, c: (c,), "wN1": lambda n, c: (n, 1),
                     "wfull": lambda n, c: (n, c), "w0d": lambda n, c: ()}
    k = 0
    for dtype in (F32, F64, F16):
        d = DTYPE_TAG[dtype]
        shapes = ((6, 4), (5, 33), (3, 100)) if dtype != F16 else ((6, 4),)
        for n, c in shapes:
            # each weight broadcast once per shape; pos_weight, the reduction
            # and the upstream gradient cycle independently
            for wtag, wshape in weight_shapes.items():
                pos_weight = k % 2 == 1
                reduction = ("mean", "sum", "none")[k % 3]
                go = (None, 0.5, "array", 3.0)[k % 4]
                if go == "array" and reduction != "none":
                    go = None
                k += 1
                tag = "-".join(p for p in (reduction, wtag, "pw" if pos_weight else "",
                                           ("go" if go == "array" else f"go{go:g}")
                                           if go is not None else "") if p)
                cs.add(f"{d}-bcel-rows-C{c}x{n}-{tag}", fn,
                       {"input": cs.logits((n, c), dtype),
                        "target": cs.unit((n, c), dtype, 0.0, 1.0),
                        "weight": None if wshape is None else
                        cs.weights(wshape(n, c), dtype, coarse=n * c > COARSE_ABOVE),
                        "pos_weight": cs.weights(c, dtype, coarse=n * c > COARSE_ABOVE)
                        if pos_weight else None,
                        "grad_output": cs.upstream((n, c)) if go == "array" else None},
                       reduction=reduction, grad_output=go)
        # large and infinite logits, hard targets: the overflow-free forms
        x = np.array([[1e4, -1e4, 1e4, -1e4, 3.0, np.inf, -np.inf, np.inf, -np.inf, 0.0],
                      [-30.0, 30.0, 90.0, -90.0, 700.0, -700.0, 1e4, -1e4, 0.5, -0.5]],
                     dtype=dtype)
        y = np.array([[1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.3],
                      [0.0, 1.0, 0.2, 0.8, 1.0, 0.0, 0.5, 0.5, 1.0, 0.0]], dtype=dtype)
        for reduction in ("none", "sum"):
            cs.add(f"{d}-bcel-rows-C10x2-{reduction}-large-inf", fn,
                   {"input": x, "target": y}, reduction=reduction)
            cs.add(f"{d}-bcel-rows-C10x2-{reduction}-wC-pw-large-inf", fn,
                   {"input": x, "target": y, "weight": cs.weights(10, dtype),
                    "pos_weight": cs.weights(10, dtype)}, reduction=reduction)
        # other ranks: 3-D with broadcast weights, 1-D, 0-d
        x3 = cs.logits((2, 3, 4), dtype)
        y3 = cs.unit((2, 3, 4), dtype, 0.0, 1.0)
        cs.add(f"{d}-bcel-3d-2x3x4-sum-wC", fn,
               {"input": x3, "target": y3, "weight": cs.weights(4)}, reduction="sum")
        cs.add(f"{d}-bcel-3d-2x3x4-mean-w31-pw", fn,
               {"input": x3, "target": y3, "weight": cs.weights((3, 1)),
                "pos_weight": cs.weights(4)})
        cs.add(f"{d}-bcel-1d-7-none-w0d-go", fn,
               {"input": cs.logits((7,), dtype), "target": cs.unit((7,), dtype),
                "weight": np.float64(1.7), "grad_output": cs.upstream((7,))},
               reduction="none", grad_output="array")
        cs.add(f"{d}-bcel-0d-none", fn,
               {"input": cs.logits((), dtype), "target": cs.unit((), dtype)},
               reduction="none")
    # one long row (column chunks of 16384 elements) and tiles of rows over
    # threads
    cs.add("f32-bcel-longrow-C20000x1-mean-pw-go0.5", fn,
           {"input": cs.logits((1, 20000), F32),
            "target": (cs.rng.random((1, 20000)) < 0.3).astype(F32),
            # three levels of pos_weight: results of few distinct values
            "pos_weight": cs.rng.integers(1, 4, size=20000).astype(F32)}, grad_output=0.5)
    cs.add("f32-bcel-threads-C120x280-sum", fn,
           {"input": cs.logits((280, 120), F32),
            "target": (cs.rng.random((280, 120)) < 0.5).astype(F32)}, reduction="sum")


def bce_cases(cs: CaseSet) -> None:
    """binary_cross_entropy on probabilities, exact 0 and 1 included (the
    clamped logs and the gradient's denominator floor)."""
    fn = "binary_cross_entropy"
    k = 0
    for dtype in (F32, F64, F16):
        d = DTYPE_TAG[dtype]
        shapes = ((6, 4), (4, 50), (2, 300)) if dtype != F16 else ((6, 4),)
        for n, c in shapes:
            for weight in (None, "wC", "wN1", "wfull"):
                reduction = ("mean", "sum", "none")[k % 3]
                go = (None, 2.0, "array")[k % 3]
                k += 1
                wshape = {None: None, "wC": (c,), "wN1": (n, 1), "wfull": (n, c)}[weight]
                tag = "-".join(p for p in (reduction, weight or "",
                                           ("go" if go == "array" else f"go{go:g}")
                                           if go is not None else "") if p)
                cs.add(f"{d}-bce-rows-C{c}x{n}-{tag}", fn,
                       {"input": cs.unit((n, c), dtype),
                        "target": cs.unit((n, c), dtype, 0.0, 1.0),
                        "weight": cs.weights(wshape, dtype, coarse=n * c > COARSE_ABOVE)
                        if wshape else None,
                        "grad_output": cs.upstream((n, c)) if go == "array" else None},
                       reduction=reduction, grad_output=go)
        edges = np.array([[0.0, 1.0, 0.0, 1.0, 0.5, 1e-7, 1 - 1e-7, 0.25]] * 2, dtype=dtype)
        targets = np.array([[1.0, 0.0, 0.0, 1.0, 0.3, 1.0, 0.0, 0.5],
                            [0.0, 1.0, 0.5, 0.5, 1.0, 0.0, 1.0, 0.0]], dtype=dtype)
        for reduction in ("none", "sum"):
            cs.add(f"{d}-bce-rows-C8x2-{reduction}-zeros-ones", fn,
                   {"input": edges, "target": targets}, reduction=reduction)
        cs.add(f"{d}-bce-rows-C8x2-mean-wC-zeros-ones", fn,
               {"input": edges, "target": targets, "weight": cs.weights(8)})
        cs.add(f"{d}-bce-3d-2x3x4-mean", fn,
               {"input": cs.unit((2, 3, 4), dtype), "target": cs.unit((2, 3, 4), dtype)})


def softmax_family_cases(cs: CaseSet) -> None:
    """log_softmax, softmax and logsumexp over the class-axis layouts; the
    larger layouts in one dtype each (alternating) to keep the file small."""
    layouts = [((7, n), None, "rows") for n in (2, 5, 17, 31)]
    layouts += [((4, 32), None, "rows"), ((3, 257), None, "rows"),
                ((1, 2048), None, "rows"), ((1, 2049), None, "rows"),
                ((1, 9999), None, "rows"), ((300, 4), None, "tiles"),
                ((28, 300), None, "tiles"), ((2, 5, 7), None, "spatial"),
                ((3, 4, 6, 5), None, "spatial"), ((2, 5, 300), None, "spatial"),
                ((1, 300, 20), None, "spatial"), ((2, 4, 6, 40), -1, "chlast"),
                ((5, 7), 0, "axis0"), ((50,), None, "1d"), ((3000,), None, "1d")]
    single = 0
    for shape, axis, tag in layouts:
        if math.prod(shape) > 256:
            # one dtype each, alternating; the largest in float32, which
            # costs half as much
            dtypes = ((F32, F64)[single % 2] if math.prod(shape) < 5000 else F32,)
            single += 1
        else:
            dtypes = (F32, F64)
        ax = (1 if len(shape) >= 2 else 0) if axis is None else axis % len(shape)
        for dtype in dtypes:
            x = cs.logits(shape, dtype)
            for fn in ("log_softmax", "softmax", "logsumexp"):
                cs.add(f"{DTYPE_TAG[dtype]}-{FN_TAG[fn]}-{tag}-C{shape[ax]}-"
                       f"{_shape_tag(shape)}", fn, {"input": x},
                       **({} if axis is None else {"axis": axis}))
    for shape, axis, tag in (((5, 17), None, "rows"), ((2, 3, 9), -1, "chlast")):
        x = cs.logits(shape, F16)
        ax = 1 if axis is None else axis % len(shape)
        for fn in ("log_softmax", "softmax", "logsumexp"):
            cs.add(f"f16-{FN_TAG[fn]}-{tag}-C{shape[ax]}-{_shape_tag(shape)}", fn,
                   {"input": x}, **({} if axis is None else {"dim": axis}))
    # over threads (32768+ elements), most logits -inf so that the outputs
    # compress (positions of only -inf included)
    x = cs.logits((64, 600), F32)
    x[cs.rng.random(x.shape) < 0.8] = -np.inf
    for fn in ("log_softmax", "softmax", "logsumexp"):
        cs.add(f"f32-{FN_TAG[fn]}-threads-C600-64x600-masked", fn, {"input": x})
    x = cs.logits((1, 8, 64, 64), F64)
    x[cs.rng.random(x.shape) < 0.8] = -np.inf
    cs.add("f64-lse-threads-C8-1x8x64x64-masked", "logsumexp", {"input": x})


def api_surface_cases(cs: CaseSet) -> None:
    """The loss objects, ``out=`` (in place and a fresh buffer, float16's
    copy-back included) and non-contiguous inputs."""
    cs.add("f64-CEobj-rows-C5-mean-w-ls0.1-go2", "CrossEntropyLoss",
           {"input": cs.logits((6, 5), F64), "target": cs.classes((6,), 5, ignore=-100),
            "weight": cs.weights(5)}, grad_output=2.0, label_smoothing=0.1)
    cs.add("f32-NLLobj-rows-C40-none-ign2-go", "NLLLoss",
           {"input": cs.log_probs((4, 40), F32, 1), "target": cs.classes((4,), 40),
            "grad_output": cs.upstream((4,))},
           grad_output="array", reduction="none", ignore_index=2)
    cs.add("f32-BCELobj-rows-C6x4-sum-wC-pw", "BCEWithLogitsLoss",
           {"input": cs.logits((4, 6), F32), "target": cs.unit((4, 6), F32, 0.0, 1.0),
            "weight": cs.weights(6), "pos_weight": cs.weights(6)}, reduction="sum")
    cs.add("f64-BCEobj-rows-C6x4-mean-wN1", "BCELoss",
           {"input": cs.unit((4, 6), F64), "target": cs.unit((4, 6), F64, 0.0, 1.0),
            "weight": cs.weights((4, 1))})
    for dtype in (F32, F64, F16):
        d = DTYPE_TAG[dtype]
        for out in ("input", "empty"):
            cs.add(f"{d}-ce-rows-C40-mean-w-out{out}", "cross_entropy",
                   {"input": cs.logits((5, 40), dtype), "target": cs.classes((5,), 40),
                    "weight": cs.weights(40)}, out=out)
            cs.add(f"{d}-ce-rows-C5-sum-ls0.1-out{out}", "cross_entropy",
                   {"input": cs.logits((9, 5), dtype), "target": cs.classes((9,), 5)},
                   out=out, reduction="sum", label_smoothing=0.1)
            cs.add(f"{d}-bcel-rows-C4x6-none-go-out{out}",
                   "binary_cross_entropy_with_logits",
                   {"input": cs.logits((6, 4), dtype), "target": cs.unit((6, 4), dtype),
                    "grad_output": cs.upstream((6, 4))},
                   out=out, reduction="none", grad_output="array")
    # non-contiguous inputs: a transposed (6, 40), every other column
    cs.add("f32-ce-rows-C40-mean-transposed", "cross_entropy",
           {"input": cs.logits((40, 6), F32), "target": cs.classes((6,), 40)},
           view="transpose")
    cs.add("f64-ce-rows-C20-none-strided", "cross_entropy",
           {"input": cs.logits((5, 40), F64), "target": cs.classes((5,), 20)},
           view="every_other_column", reduction="none")
    cs.add("f64-bcel-rows-C4x6-mean-transposed", "binary_cross_entropy_with_logits",
           {"input": cs.logits((4, 6), F64), "target": cs.unit((6, 4), F64)},
           view="transpose")
    cs.add("f32-sm-rows-C30-strided", "softmax", {"input": cs.logits((4, 60), F32)},
           view="every_other_column")


def build_cases(seed: int = SEED) -> list[dict[str, Any]]:
    """Every case, in a fixed order."""
    cs = CaseSet(seed)
    for group in (class_index_cases, large_cases, probability_cases, nll_cases,
                  non_finite_cases, bce_with_logits_cases, bce_cases,
                  softmax_family_cases, api_surface_cases):
        group(cs)
    names = [case["name"] for case in cs.cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"case names must be unique (test ids): {duplicates}"
    return cs.cases


# ------------------------------------------------------------ recording --

class ArrayStore:
    """Arrays keyed ``a0``, ``a1``, ...; an array stored twice (the same
    dtype, shape and bytes) gets one key.  `pack` lays them end to end in
    one byte blob: a thousand small npz members would cost more in zip
    headers than their data."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._by_content: dict[str, str] = {}

    def put(self, arr: np.ndarray) -> str:
        arr = np.array(arr, order="C")   # not ascontiguousarray: it makes 0-d 1-d
        digest = hashlib.sha256(
            f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes()).hexdigest()
        if digest not in self._by_content:
            key = f"a{len(self.arrays)}"
            self.arrays[key] = arr
            self._by_content[digest] = key
        return self._by_content[digest]

    def pack(self) -> tuple[np.ndarray, dict[str, list[Any]]]:
        """(blob, index): the uint8 blob and, per key, [byte offset, dtype
        string, shape] plus, for a float array kept in a narrower float
        type (see `_narrowest_exact`), that type's string.  Every array
        starts at a multiple of 8 bytes, so views of the blob are aligned."""
        chunks, index, offset = [], {}, 0
        for key, arr in self.arrays.items():
            narrow = _narrowest_exact(arr)
            data = arr.astype(narrow).tobytes()
            padding = -len(data) % 8
            chunks.append(data + bytes(padding))
            index[key] = [offset, arr.dtype.str, list(arr.shape)]
            if narrow != arr.dtype:
                index[key].append(narrow.str)
            offset += len(data) + padding
        return np.frombuffer(b"".join(chunks), dtype=np.uint8), index


def _narrowest_exact(arr: np.ndarray) -> np.dtype:
    """The narrowest float type that holds ``arr`` bit for bit (NaN payloads
    included) -- the coarse inputs fit float16; ``arr``'s own otherwise."""
    if arr.dtype.kind != "f":
        return arr.dtype
    for narrow in (F16, F32):
        if narrow.itemsize >= arr.dtype.itemsize:
            break
        with np.errstate(over="ignore"):
            back = arr.astype(narrow).astype(arr.dtype)
        if back.tobytes() == arr.tobytes():
            return narrow
    return arr.dtype


def supported_archs() -> list[str]:
    """The SIMD variants built and runnable here, baseline first."""
    archs = []
    for arch in _runtime.built_archs().split():
        try:
            with running_on(arch):
                archs.append(arch)
        except ValueError:
            pass
    return archs


def record_results(case: dict[str, Any], arch: str) -> dict[str, Any]:
    """Run ``case`` on the current variant with every thread count, check
    that they agree bit for bit and return the results."""
    runs = [call_case(case, case["arrays"], n) for n in THREAD_COUNTS]
    for n_threads, other in zip(THREAD_COUNTS[1:], runs[1:]):
        for slot, value in runs[0].items():
            a, b = np.asarray(value), np.asarray(other[slot])
            assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes()), (
                f"{case['name']} [{arch}] {slot}: n_threads={n_threads} changes the bits")
    return runs[0]


def _deflated_size(arr: np.ndarray) -> int:
    return len(zlib.compress(arr.tobytes(), 6))


def encode_result(store: ArrayStore, value: Any, earlier: dict[str, dict[str, Any]],
                  earlier_values: dict[str, np.ndarray]) -> dict[str, Any]:
    """A result's record: its type and where its bits are.

    A result equal to an earlier variant's reuses that record; otherwise it
    is stored whole or as the XOR of its bits with an earlier variant's
    result (``xor_with`` names the variant), whichever deflates smaller --
    the variants mostly differ in a few low mantissa bits.

    Parameters
    ----------
    store : ArrayStore
    value : the result
    earlier : dict
        The records of this slot for the variants encoded before, by name.
    earlier_values : dict
        Their results, by name.
    """
    arr = np.asarray(value)
    kind = "scalar" if isinstance(value, np.generic) else type(value).__name__
    candidates = [(_deflated_size(arr), None, arr)]
    for arch, other in earlier_values.items():
        same_layout = (other.dtype, other.shape) == (arr.dtype, arr.shape)
        if not same_layout or earlier[arch]["type"] != kind:
            continue
        if other.tobytes() == arr.tobytes():
            return dict(earlier[arch])
        delta = as_bits(other) ^ as_bits(arr)
        candidates.append((_deflated_size(delta), arch, delta))
    _, base, stored = min(candidates, key=lambda c: c[0])
    record: dict[str, Any] = {"type": kind, "key": store.put(stored)}
    if base is not None:
        record["xor_with"] = base
    return record


def make_bits(out_path: str, seed: int = SEED) -> dict[str, Any]:
    """Build the cases, record every variant's results and write them to
    ``out_path``; returns a summary."""
    archs = supported_archs()
    default_arch = _runtime.arch_name()
    cases = build_cases(seed)
    store = ArrayStore()
    records = []
    threaded = 0
    for case in cases:
        results: dict[str, dict[str, Any]] = {}
        values_by_arch: dict[str, dict[str, Any]] = {}
        for arch in archs:
            with running_on(arch):
                assert _runtime.arch_name() == arch
                values = record_results(case, arch)
            results[arch] = {
                slot: encode_result(
                    store, value, {a: results[a][slot] for a in values_by_arch},
                    {a: np.asarray(v[slot]) for a, v in values_by_arch.items()})
                for slot, value in values.items()}
            values_by_arch[arch] = values
        threaded += case["arrays"]["input"].size >= 32768
        records.append(dict(
            name=case["name"], fn=case["fn"], kwargs=case["kwargs"],
            grad_output=case["grad_output"], out=case["out"], view=case["view"],
            inputs={role: store.put(a) for role, a in case["arrays"].items()},
            results=results))
    assert _runtime.arch_name() == default_arch
    meta = dict(commit=COMMIT, description="the main before the structure refactor of "
                "issue 11", generator="tools/make_bits.py", seed=seed, archs=archs,
                default_arch=default_arch, thread_counts=list(THREAD_COUNTS),
                fastce=fastce.__version__, numpy=np.__version__,
                compiler=_runtime.build_info()["compiler"],
                cflags=_runtime.build_info()["cflags"])
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    blob, index = store.pack()
    np.savez_compressed(out_path, meta=np.array(json.dumps(meta, sort_keys=True)),
                        cases=np.array(json.dumps(records, sort_keys=True)),
                        index=np.array(json.dumps(index, sort_keys=True)), blob=blob)
    size = os.path.getsize(out_path)
    assert size < SIZE_LIMIT, f"{out_path} is {size} bytes, over {SIZE_LIMIT}"
    return dict(cases=len(records), archs=archs, arrays=len(store.arrays), bytes=size,
                threaded=threaded)


def _parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="where to write the bits "
                        "(default: tests/data/bits_baseline.npz)")
    return parser.parse_args(None if argv is None else list(argv))


def main(argv: Iterable[str] | None = None) -> None:
    args = _parse_args(argv)
    print(f"fastce {fastce.__version__} from {os.path.dirname(fastce.__file__)}")
    summary = make_bits(args.out)
    print(f"wrote {summary['cases']} cases ({summary['threaded']} of 32768+ elements) "
          f"on {', '.join(summary['archs'])}: {summary['arrays']} arrays, "
          f"{summary['bytes']} bytes, to {args.out}")


if __name__ == "__main__":
    main()
