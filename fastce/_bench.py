"""Side-by-side benchmark and self-check of fastce (SPEC sections 2.5 and 5).

This module ships inside the package so that ``python -m fastce`` works from
an installed copy, without the repository's ``benchmarks/`` directory.
PyTorch is optional: without it the torch columns are left out.

What it measures, per workload and thread count, in one process:

- fastce forward (the loss only) and fastce loss + gradient, the gradient
  written into a preallocated ``out=`` buffer so the number is the kernel's,
  not the allocator's;
- a NumPy reference forward (`numpy_cross_entropy`,
  `numpy_binary_cross_entropy_with_logits`): what a careful NumPy user writes;
- PyTorch's forward (under ``torch.no_grad()``) and forward + backward;
- the machine floor (SPEC section 5): ``floor_fwd = max(one read of the
  input, one exp per element)`` and ``floor_grad = floor_fwd + one write of
  an input-sized buffer``.  The read is ``np.max(x)``, the write
  ``buf.fill(0)``; the exp is the faster of ``np.exp`` and ``torch.exp``
  (at the pass's thread count) on a cache-resident block, less each call's
  fixed cost, scaled to the input's size.  NumPy
  calls run on one thread, so at n threads their time is divided by n: the
  floor of an ideal n-thread kernel.

All of them are timed **interleaved**: each round calls every implementation
once, so slow drifts of a shared machine (frequency, other processes) hit
all of them alike; the reported number is the median over rounds.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import sys
import time
import tracemalloc
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

import fastce

__all__ = [
    "Workload", "WORKLOADS", "BenchRow",
    "numpy_cross_entropy", "numpy_binary_cross_entropy_with_logits",
    "get_workloads", "run_benchmarks", "format_table", "self_check",
    "add_options", "run_from_args",
]

#: Calls of every implementation before timing starts (first-call set-up,
#: page faults of the output buffers, torch's lazy initialisation).
WARMUP_CALLS = 2
#: Size of the cache-resident block the exp floor is timed on (input and
#: output together stay well inside a 1 MB L2).
EXP_BLOCK_BYTES = 256 * 1024
#: A per-workload time budget never cuts a pass below this many rounds.
MIN_ROUNDS = 3
#: Rounds of the three standard runs (``--repeat`` overrides).
QUICK_ROUNDS = 3
DEFAULT_ROUNDS = 10
FULL_ROUNDS = 40
#: Seconds one thread-count pass of the default run may take before it stops
#: adding rounds; keeps ``python -m fastce`` well under a minute on a slow
#: or busy machine.  The full benchmark has no budget.
DEFAULT_PASS_BUDGET_S = 2.5

DEFAULT_WORKLOADS = ("A", "B", "D", "E")
QUICK_WORKLOADS = ("A", "B")
FULL_WORKLOADS = ("A", "B", "B64", "C", "D", "E", "F")

IGNORE_INDEX = -100

_SHORT_DTYPE = {"float32": "f32", "float64": "f64"}


# ------------------------------------------------------------- references --

def numpy_cross_entropy(input, target, weight=None, ignore_index=IGNORE_INDEX,
                        reduction="mean", label_smoothing=0.0, axis=1):
    """Softmax cross-entropy with class-index targets, written in plain NumPy.

    The reference the benchmark compares against: what a careful NumPy user
    writes (max-subtracted log-softmax, ``take_along_axis`` gather), with
    PyTorch's semantics for ``weight``, ``ignore_index``, ``label_smoothing``
    and the reductions (SPEC section 3.1).

    Parameters
    ----------
    input : ndarray of shape (N, C) or (N, C, d1, ..., dK)
        Logits; the class axis is ``axis``.
    target : ndarray of int
        Class indices, the input's shape without the class axis.
    weight : ndarray of shape (C,), optional
        Per-class weights.
    ignore_index : int, default -100
        Targets equal to it contribute nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
    label_smoothing : float, default 0
    axis : int, default 1

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray for ``"none"``

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1., 2., 3.], [1., 2., 3.]])
    >>> round(float(numpy_cross_entropy(x, np.array([1, 2]))), 4)
    0.9076
    """
    x = np.asarray(input)
    target = np.asarray(target)
    n_cls = x.shape[axis]
    # log-softmax = shifted - log(sum(exp(shifted))): subtracting the max keeps
    # exp from overflowing.
    shifted = x - x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    ignored = target == ignore_index
    safe_target = np.where(ignored, 0, target)  # a valid index to gather with
    picked = np.take_along_axis(shifted, np.expand_dims(safe_target, axis), axis=axis)
    nll = np.squeeze(lse - picked, axis=axis)  # -logp[target]
    if weight is None:
        target_weight = np.ones(target.shape, dtype=x.dtype)
    else:
        weight = np.asarray(weight, dtype=x.dtype)
        target_weight = weight[safe_target]
    target_weight = np.where(ignored, 0, target_weight).astype(x.dtype, copy=False)
    loss = target_weight * nll
    if label_smoothing:
        # -sum_c w_c logp_c = (sum_c w_c) * lse - sum_c w_c * shifted_c
        if weight is None:
            weighted_shifted = shifted.sum(axis=axis)
            weight_total = n_cls
        else:
            bshape = [1] * x.ndim
            bshape[axis] = n_cls
            weighted_shifted = (shifted * weight.reshape(bshape)).sum(axis=axis)
            weight_total = weight.sum()
        smooth = np.squeeze(lse, axis=axis) * weight_total - weighted_shifted
        smooth = np.where(ignored, 0, smooth)
        loss = (1 - label_smoothing) * loss + (label_smoothing / n_cls) * smooth
    if reduction == "none":
        return loss.astype(x.dtype, copy=False)
    if reduction == "sum":
        return x.dtype.type(loss.sum())
    return x.dtype.type(loss.sum() / target_weight.sum())


def numpy_binary_cross_entropy_with_logits(input, target, weight=None,
                                           reduction="mean", pos_weight=None):
    """Binary cross-entropy on logits, written in plain NumPy.

    Uses the overflow-free form ``max(x, 0) - x*y + log1p(exp(-|x|))``
    (and its ``pos_weight`` variant), as a careful NumPy user would.

    Parameters
    ----------
    input, target : ndarray of the same shape
        Logits and probabilities in [0, 1].
    weight : array_like, optional
        Broadcasts to the input.
    reduction : {"mean", "sum", "none"}, default "mean"
    pos_weight : array_like, optional
        Weight of the positive term, broadcast along the last axis.

    Returns
    -------
    loss : numpy scalar of the input's dtype, or ndarray for ``"none"``

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[2.0, -1.0]]); y = np.array([[1.0, 0.0]])
    >>> round(float(numpy_binary_cross_entropy_with_logits(x, y)), 4)
    0.2201
    """
    x = np.asarray(input)
    y = np.asarray(target, dtype=x.dtype)
    # log(1 + exp(-|x|)) never overflows; -log(sigmoid(x)) = softplus(-x)
    softplus_neg = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)
    if pos_weight is None:
        loss = (1 - y) * x + softplus_neg
    else:
        pw = np.asarray(pos_weight, dtype=x.dtype)
        loss = (1 - y) * x + (1 + (pw - 1) * y) * softplus_neg
    if weight is not None:
        loss = loss * np.asarray(weight, dtype=x.dtype)
    if reduction == "none":
        return loss.astype(x.dtype, copy=False)
    if reduction == "sum":
        return x.dtype.type(loss.sum())
    return x.dtype.type(loss.mean())


# -------------------------------------------------------------- workloads --

@dataclass
class Workload:
    """One benchmark problem; its seeded data is made on first use.

    Parameters
    ----------
    name : str
        Short identifier (``"A"`` ... ``"F"``, ``"B64"``).
    shape : tuple of int
        Input shape; the class axis is 1 (cross-entropy).
    dtype : str
        ``"float32"`` or ``"float64"``.
    loss : {"cross_entropy", "bce_with_logits"}
    description : str
        What it stands for, for the legend.
    weighted : bool
        Cross-entropy with a random per-class weight.
    ignore_fraction : float
        Share of targets set to ``ignore_index``.
    label_smoothing : float
    seed : int
    """

    name: str
    shape: tuple
    dtype: str = "float32"
    loss: str = "cross_entropy"
    description: str = ""
    weighted: bool = False
    ignore_fraction: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    _arrays: dict | None = field(default=None, repr=False, compare=False)

    @property
    def input_bytes(self) -> int:
        """Size of the input array in bytes."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def label(self) -> str:
        """``"B (8192, 1000) float32 ..."``: the legend line."""
        shape = "(" + ", ".join(str(s) for s in self.shape) + ")"
        return f"{self.name} {shape} {self.dtype} {self.description}".rstrip()

    def with_dtype(self, dtype: str) -> "Workload":
        """The same problem in another dtype (fresh, not yet made data)."""
        return Workload(self.name, self.shape, dtype, self.loss, self.description,
                        self.weighted, self.ignore_fraction, self.label_smoothing,
                        self.seed)

    def arrays(self) -> dict:
        """The workload's data, made on first call: ``x`` (input), ``target``,
        ``weight`` (or None).  Seeded: identical from run to run."""
        if self._arrays is None:
            rng = np.random.default_rng(self.seed)
            dtype = np.dtype(self.dtype)
            x = rng.standard_normal(self.shape, dtype=dtype)
            weight = None
            if self.loss == "bce_with_logits":
                target = (rng.random(self.shape) < 0.5).astype(dtype)
            else:
                n_cls = self.shape[1]
                batch_shape = self.shape[:1] + self.shape[2:]
                target = rng.integers(0, n_cls, size=batch_shape, dtype=np.int64)
                if self.ignore_fraction:
                    target[rng.random(batch_shape) < self.ignore_fraction] = IGNORE_INDEX
                if self.weighted:
                    weight = rng.uniform(0.5, 2.0, size=n_cls).astype(dtype)
            self._arrays = {"x": x, "target": target, "weight": weight}
        return self._arrays

    def release(self) -> None:
        """Drop the data (the full benchmark would otherwise hold ~0.5 GB)."""
        self._arrays = None

    # Each loss, as fastce / NumPy / torch spell it, on this workload's data.
    def fastce_kwargs(self) -> dict:
        """Keyword arguments of the fastce (and NumPy reference) call."""
        if self.loss == "bce_with_logits":
            return {}
        kwargs = {}
        if self.weighted:
            kwargs["weight"] = self.arrays()["weight"]
        if self.ignore_fraction:
            kwargs["ignore_index"] = IGNORE_INDEX
        if self.label_smoothing:
            kwargs["label_smoothing"] = self.label_smoothing
        return kwargs

    def fastce_forward(self):
        """The fastce loss function of this workload."""
        return (fastce.binary_cross_entropy_with_logits if self.loss == "bce_with_logits"
                else fastce.cross_entropy)

    def fastce_loss_and_grad(self):
        """The fastce loss-and-gradient function of this workload."""
        return (fastce.binary_cross_entropy_with_logits_and_grad
                if self.loss == "bce_with_logits" else fastce.cross_entropy_and_grad)

    def numpy_forward(self):
        """The NumPy reference loss function of this workload."""
        return (numpy_binary_cross_entropy_with_logits if self.loss == "bce_with_logits"
                else numpy_cross_entropy)

    def torch_loss(self, torch):
        """A function ``input_tensor -> loss tensor`` calling
        ``torch.nn.functional`` on this workload's target (and weight)."""
        import torch.nn.functional as F

        data = self.arrays()
        target = torch.from_numpy(data["target"])
        if self.loss == "bce_with_logits":
            return lambda inp: F.binary_cross_entropy_with_logits(inp, target)
        weight = None if data["weight"] is None else torch.from_numpy(data["weight"])
        smoothing = self.label_smoothing
        return lambda inp: F.cross_entropy(inp, target, weight=weight,
                                           ignore_index=IGNORE_INDEX,
                                           label_smoothing=smoothing)


def _standard_workloads() -> dict:
    ce = "cross_entropy"
    return {w.name: w for w in (
        Workload("A", (65536, 10), description="cross_entropy, small C", seed=1),
        Workload("B", (8192, 1000), description="cross_entropy", seed=2),
        Workload("B64", (8192, 1000), "float64", description="cross_entropy (B in float64)",
                 seed=2),
        Workload("C", (1024, 32768), description="cross_entropy, large C", seed=3),
        Workload("D", (8, 21, 256, 256), description="cross_entropy, segmentation "
                 "(class axis 1)", seed=4),
        Workload("E", (65536, 100), loss="bce_with_logits",
                 description="binary_cross_entropy_with_logits, 0/1 targets", seed=5),
        Workload("F", (8192, 1000), loss=ce, description="cross_entropy with weight, "
                 "10% ignore_index, label_smoothing=0.1", weighted=True,
                 ignore_fraction=0.1, label_smoothing=0.1, seed=6),
    )}


#: The SPEC section 5 reference workloads, by name.
WORKLOADS = _standard_workloads()


def get_workloads(names=None, dtype=None, shapes=()):
    """Fresh `Workload` objects by name.

    Parameters
    ----------
    names : iterable of str, optional
        Workload names (case-insensitive); default: all of `WORKLOADS`.
    dtype : {"float32", "float64"}, optional
        Overrides the dtype of every workload except ``B64`` (float64 by
        definition).  Without an explicit ``names``, B64 is then left out:
        it would repeat B.
    shapes : iterable of tuple of int
        Extra cross-entropy workloads of these shapes (class axis 1), named
        ``S1``, ``S2``, ...

    Returns
    -------
    list of Workload

    Raises
    ------
    ValueError
        For an unknown name or dtype.
    """
    if dtype is not None and dtype not in _SHORT_DTYPE:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    explicit = names is not None
    if names is None:
        names = list(WORKLOADS)
        if dtype is not None:
            names.remove("B64")
    standard = _standard_workloads()
    by_upper = {k.upper(): k for k in standard}
    chosen = []
    for name in names:
        key = by_upper.get(str(name).strip().upper())
        if key is None:
            raise ValueError(f"unknown workload {name!r}; choose from "
                             f"{', '.join(standard)}")
        w = standard[key]
        if dtype is not None and key != "B64":
            w = w.with_dtype(dtype)
        chosen.append(w)
    for i, shape in enumerate(shapes, 1):
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2 or min(shape) < 1:
            raise ValueError(f"a custom shape needs at least (N, C), all positive; "
                             f"got {shape}")
        chosen.append(Workload(f"S{i}", shape, dtype or "float32",
                               description="cross_entropy, custom shape",
                               seed=100 + i))
    if not chosen and not explicit:
        raise ValueError("no workload selected")
    return chosen


# ------------------------------------------------------------------ timing --

def _import_torch(use_torch: bool):
    if not use_torch:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def _implementations(workload: Workload, n_threads: int, torch, include_numpy: bool):
    """Every timed thing of one pass, floors included, on ``n_threads``
    threads (torch already set to it): (name -> zero-argument callable, bytes
    of the block the exp floor runs on)."""
    data = workload.arrays()
    x, target = data["x"], data["target"]
    kwargs = workload.fastce_kwargs()
    forward = workload.fastce_forward()
    loss_and_grad = workload.fastce_loss_and_grad()
    grad_buffer = np.empty_like(x)  # out=: the kernel, not the allocator
    scratch = np.empty_like(x)      # the write floor's buffer

    impls: dict[str, Callable[[], object]] = {
        "fastce_fwd": lambda: forward(x, target, n_threads=n_threads, **kwargs),
        "fastce_grad": lambda: loss_and_grad(x, target, out=grad_buffer,
                                             n_threads=n_threads, **kwargs),
    }
    if include_numpy:
        reference = workload.numpy_forward()
        impls["numpy_fwd"] = lambda: reference(x, target, **kwargs)
    # The exp floor: the fastest exp at hand, timed on a cache-resident block
    # and scaled to the input's size.  A full-size exp(x, out=buf) would also
    # stream the whole output to memory, which is not part of "one exp per
    # element" (it measured slower than the fastce forward itself).  Each
    # candidate's fixed per-call cost is timed on a 16-element call and
    # subtracted.  Candidates: np.exp and torch.exp -- never fastce itself,
    # so the floor does not move with the kernels it judges.
    flat = x.reshape(-1)
    block = np.ascontiguousarray(flat[:min(flat.size, EXP_BLOCK_BYTES // x.itemsize)])
    block_out = np.empty_like(block)
    tiny = np.ascontiguousarray(flat[:16])
    tiny_out = np.empty_like(tiny)
    impls["exp_numpy"] = lambda: np.exp(block, out=block_out)
    impls["exp_numpy_call"] = lambda: np.exp(tiny, out=tiny_out)
    if torch is not None:
        loss_fn = workload.torch_loss(torch)
        x_tensor = torch.from_numpy(x)
        x_leaf = torch.from_numpy(x).requires_grad_(True)

        def torch_forward():
            with torch.no_grad():
                return loss_fn(x_tensor)

        def torch_forward_backward():
            # what optimizer.zero_grad() does by default (set_to_none=True)
            x_leaf.grad = None
            loss_fn(x_leaf).backward()

        impls["torch_fwd"] = torch_forward
        impls["torch_fwdbwd"] = torch_forward_backward
        block_tensor, block_out_tensor = torch.from_numpy(block), torch.from_numpy(block_out)
        tiny_tensor, tiny_out_tensor = torch.from_numpy(tiny), torch.from_numpy(tiny_out)
        impls["exp_torch"] = lambda: torch.exp(block_tensor, out=block_out_tensor)
        impls["exp_torch_call"] = lambda: torch.exp(tiny_tensor, out=tiny_out_tensor)
    impls["floor_read"] = lambda: np.max(x)
    impls["floor_write"] = lambda: scratch.fill(0)
    return impls, block.nbytes


def _interleaved_medians(impls: dict, rounds: int, budget_s: float | None):
    """Median seconds per implementation over round-robin rounds.

    Each round calls every implementation once, starting one further along
    the list each round, so none always runs right after the same neighbour
    (whose cache and frequency footprint it would inherit).  Returns
    (medians, rounds actually run).
    """
    names = list(impls)
    samples = {name: [] for name in names}
    for _ in range(WARMUP_CALLS):
        for name in names:
            impls[name]()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed call would land on one sample
    try:
        start = time.perf_counter()
        done = 0
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                fn = impls[name]
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
            done += 1
            if (budget_s is not None and done >= MIN_ROUNDS
                    and time.perf_counter() - start > budget_s):
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: statistics.median(v) for name, v in samples.items()}, done


def _exp_floor(medians, n_threads, scale):
    """(seconds to exp the whole input at the fastest candidate's rate, its
    name) from the block timings of `_implementations`, their per-call
    cost subtracted.  np.exp runs on one thread: at n threads its time is
    divided by n; torch.exp already runs on n."""
    best, source = math.inf, "none"
    for name, threads_used in (("numpy", 1), ("torch", n_threads)):
        key = f"exp_{name}"
        if key not in medians:
            continue
        per_block = medians[key] - medians[key + "_call"]
        if per_block <= 0:  # timing noise larger than the work: no estimate
            continue
        per_block *= threads_used / n_threads
        if per_block < best:
            best, source = per_block, name
    return (best * scale if best < math.inf else 0.0), source


def _peak_extra_bytes(fn) -> int:
    """Peak bytes allocated (through Python/NumPy allocators) during one
    call of ``fn``, over what was allocated before it."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del result
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(0, peak - before)


@dataclass
class BenchRow:
    """The results of one workload at one thread count (times in ms, medians).

    ``None`` marks what was not measured (torch columns without torch).  The
    NumPy reference is single-threaded: it is timed in a workload's first
    pass and that time is repeated in its later rows.
    """

    workload: str
    label: str
    dtype: str
    n_threads: int
    rounds: int
    fastce_fwd_ms: float
    fastce_grad_ms: float
    numpy_fwd_ms: float | None
    torch_fwd_ms: float | None
    torch_fwdbwd_ms: float | None
    floor_read_ms: float
    floor_exp_ms: float
    floor_write_ms: float
    floor_exp_source: str
    floor_fwd_ms: float
    floor_grad_ms: float
    fwd_peak_mb: float
    grad_peak_mb: float
    input_mb: float
    fwd_speedup_vs_1thread: float | None = None
    grad_speedup_vs_1thread: float | None = None

    @property
    def torch_fwd_ratio(self):
        """torch forward / fastce forward: how many times faster fastce is."""
        return _ratio(self.torch_fwd_ms, self.fastce_fwd_ms)

    @property
    def torch_grad_ratio(self):
        """torch forward+backward / fastce loss+grad."""
        return _ratio(self.torch_fwdbwd_ms, self.fastce_grad_ms)

    @property
    def numpy_fwd_ratio(self):
        """NumPy reference forward / fastce forward."""
        return _ratio(self.numpy_fwd_ms, self.fastce_fwd_ms)

    @property
    def fwd_over_floor(self):
        """fastce forward / floor_fwd (1.0 would be the machine's limit)."""
        return _ratio(self.fastce_fwd_ms, self.floor_fwd_ms)

    @property
    def grad_over_floor(self):
        """fastce loss+grad / floor_grad."""
        return _ratio(self.fastce_grad_ms, self.floor_grad_ms)

    @property
    def fwd_peak_pct(self):
        """Forward peak extra memory as a percentage of the input's size."""
        return 100.0 * self.fwd_peak_mb / self.input_mb if self.input_mb else None

    def as_dict(self) -> dict:
        """All fields and derived ratios, JSON-ready."""
        d = asdict(self)
        for name in ("torch_fwd_ratio", "torch_grad_ratio", "numpy_fwd_ratio",
                     "fwd_over_floor", "grad_over_floor", "fwd_peak_pct"):
            d[name] = getattr(self, name)
        return d


def _ratio(num, den):
    if num is None or den is None or den <= 0:
        return None
    return num / den


def run_benchmarks(workloads, threads=(1,), rounds=DEFAULT_ROUNDS, *, use_torch=True,
                   budget_s=None, progress="stderr"):
    """Time fastce, the NumPy reference and PyTorch on each workload.

    For each workload, one interleaved pass per thread count (see the module
    docstring); the NumPy reference is single-threaded and timed in the
    first pass only.

    Parameters
    ----------
    workloads : list of Workload
    threads : sequence of int, default (1,)
        Thread counts: fastce gets ``n_threads=n``, torch
        ``torch.set_num_threads(n)`` (restored afterwards).
    rounds : int, default 10
        Interleaved rounds per pass (the medians' sample size).
    use_torch : bool, default True
        Time PyTorch when it is importable.
    budget_s : float, optional
        Stop a pass adding rounds once it has run this long (after at least
        `MIN_ROUNDS` rounds).
    progress : file-like, "stderr" or None, default "stderr"
        Where the one-line-per-workload progress display goes (None: no
        display; "stderr": ``sys.stderr`` as it is at call time).

    Returns
    -------
    list of BenchRow
        One per (workload, thread count), in order.
    """
    threads = [int(n) for n in threads]
    if not threads or min(threads) < 1:
        raise ValueError(f"thread counts must be positive integers, got {threads}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if progress == "stderr":
        progress = sys.stderr
    torch = _import_torch(use_torch)
    torch_threads_before = torch.get_num_threads() if torch is not None else None
    rows = []
    try:
        for index, workload in enumerate(workloads, 1):
            if progress is not None:
                print(f"[{index}/{len(workloads)}] {workload.label} ...", end="",
                      file=progress, flush=True)
            started = time.perf_counter()
            rows_here = _bench_workload(workload, threads, rounds, torch, budget_s)
            rows.extend(rows_here)
            if progress is not None:
                print(" " + _progress_summary(rows_here,
                                              time.perf_counter() - started),
                      file=progress, flush=True)
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads_before)
    return rows


def _bench_workload(workload, threads, rounds, torch, budget_s):
    ms = 1e3
    input_mb = workload.input_bytes / 1e6
    rows = []
    numpy_ms = None
    try:
        workload.arrays()
        for pass_index, n in enumerate(threads):
            if torch is not None:
                torch.set_num_threads(n)
            impls, exp_block_bytes = _implementations(workload, n, torch,
                                                      include_numpy=pass_index == 0)
            med, done = _interleaved_medians(impls, rounds, budget_s)
            if "numpy_fwd" in med:
                numpy_ms = med["numpy_fwd"] * ms
            # np.max and fill run on one thread: an ideal n-thread kernel
            # splits that work n ways.
            read = med["floor_read"] / n
            exp, exp_source = _exp_floor(med, n, workload.input_bytes / exp_block_bytes)
            write = med["floor_write"] / n
            floor_fwd = max(read, exp)
            fwd_peak = _peak_extra_bytes(impls["fastce_fwd"])
            grad_peak = _peak_extra_bytes(impls["fastce_grad"])
            rows.append(BenchRow(
                workload=workload.name, label=workload.label, dtype=workload.dtype,
                n_threads=n, rounds=done,
                fastce_fwd_ms=med["fastce_fwd"] * ms,
                fastce_grad_ms=med["fastce_grad"] * ms,
                numpy_fwd_ms=numpy_ms,
                torch_fwd_ms=med["torch_fwd"] * ms if "torch_fwd" in med else None,
                torch_fwdbwd_ms=(med["torch_fwdbwd"] * ms if "torch_fwdbwd" in med
                                 else None),
                floor_read_ms=read * ms, floor_exp_ms=exp * ms, floor_write_ms=write * ms,
                floor_exp_source=exp_source,
                floor_fwd_ms=floor_fwd * ms, floor_grad_ms=(floor_fwd + write) * ms,
                fwd_peak_mb=fwd_peak / 1e6, grad_peak_mb=grad_peak / 1e6,
                input_mb=input_mb,
            ))
            del impls
            gc.collect()
    finally:
        workload.release()
        gc.collect()
    one_thread = next((r for r in rows if r.n_threads == 1), None)
    if one_thread is not None:
        for r in rows:
            if r.n_threads > 1:
                r.fwd_speedup_vs_1thread = _ratio(one_thread.fastce_fwd_ms,
                                                  r.fastce_fwd_ms)
                r.grad_speedup_vs_1thread = _ratio(one_thread.fastce_grad_ms,
                                                   r.fastce_grad_ms)
    return rows


def _progress_summary(rows, seconds):
    parts = []
    for r in rows:
        s = f"{r.n_threads}T fastce {r.fastce_fwd_ms:.3g}/{r.fastce_grad_ms:.3g} ms"
        if r.torch_fwd_ms is not None:
            s += f", torch {r.torch_fwd_ms:.3g}/{r.torch_fwdbwd_ms:.3g} ms"
        parts.append(s)
    return f"{seconds:.1f} s, {rows[0].rounds} rounds: " + "; ".join(parts)


# ------------------------------------------------------------------- table --

def _fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def _fmt_x(v):
    return "-" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def _fmt_mem(r):
    pct = r.fwd_peak_pct
    return f"{r.fwd_peak_mb:.2f} ({pct:.1f}%)" if pct is not None else f"{r.fwd_peak_mb:.2f}"


# (group, name, value of a row as text); the group heads the two-line header
_COLUMNS = (
    ("", "workload", lambda r: r.workload),
    ("", "dtype", lambda r: _SHORT_DTYPE.get(r.dtype, r.dtype)),
    ("", "thr", lambda r: str(r.n_threads)),
    ("fastce ms", "fwd", lambda r: _fmt_ms(r.fastce_fwd_ms)),
    ("fastce ms", "l+g", lambda r: _fmt_ms(r.fastce_grad_ms)),
    ("numpy ms", "fwd", lambda r: _fmt_ms(r.numpy_fwd_ms)),
    ("torch ms", "fwd", lambda r: _fmt_ms(r.torch_fwd_ms)),
    ("torch ms", "f+b", lambda r: _fmt_ms(r.torch_fwdbwd_ms)),
    ("× faster than torch", "fwd", lambda r: _fmt_x(r.torch_fwd_ratio)),
    ("× faster than torch", "l+g", lambda r: _fmt_x(r.torch_grad_ratio)),
    ("× floor", "fwd", lambda r: _fmt_x(r.fwd_over_floor)),
    ("× floor", "l+g", lambda r: _fmt_x(r.grad_over_floor)),
    ("fwd peak extra", "MB (% input)", _fmt_mem),
    ("speedup vs 1T", "fwd", lambda r: _fmt_x(r.fwd_speedup_vs_1thread)),
    ("speedup vs 1T", "l+g", lambda r: _fmt_x(r.grad_speedup_vs_1thread)),
)


def format_table(rows, markdown=False, legend=True):
    """Render benchmark rows as an aligned text table (or Markdown).

    Parameters
    ----------
    rows : list of BenchRow
    markdown : bool, default False
        A GitHub-flavoured Markdown table, for pasting into a README.
    legend : bool, default True
        Append the workload descriptions and what the columns mean.

    Returns
    -------
    str
    """
    columns = _COLUMNS
    if rows and all(r.torch_fwd_ms is None for r in rows):  # torch not installed
        columns = tuple(c for c in columns if "torch" not in c[0])
    cells = [[fmt(r) for _, _, fmt in columns] for r in rows]
    lines = []
    if markdown:
        header = [f"{g} {n}".strip() for g, n, _ in columns]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" if i < 3 else "---:"
                                    for i in range(len(header))) + "|")
        lines.extend("| " + " | ".join(c) + " |" for c in cells)
    else:
        widths = [max([len(n)] + [len(c[i]) for c in cells])
                  for i, (_, n, _) in enumerate(columns)]
        # widen a group's columns so its title fits over them
        groups: dict[str, list[int]] = {}
        for i, (g, _, _) in enumerate(columns):
            groups.setdefault(g, []).append(i)
        for g, idx in groups.items():
            span = sum(widths[i] for i in idx) + 2 * (len(idx) - 1)
            if len(g) > span:
                widths[idx[-1]] += len(g) - span
        top = []
        for g, idx in groups.items():
            span = sum(widths[i] for i in idx) + 2 * (len(idx) - 1)
            top.append(g.center(span))
        lines.append("  ".join(top).rstrip())

        def line(values):
            out = []
            for i, v in enumerate(values):
                out.append(v.ljust(widths[i]) if i < 3 else v.rjust(widths[i]))
            return "  ".join(out).rstrip()

        lines.append(line([n for _, n, _ in columns]))
        lines.append("  ".join("-" * w for w in widths))
        previous = None
        for r, c in zip(rows, cells):
            if previous is not None and r.workload != previous:
                lines.append("")
            previous = r.workload
            lines.append(line(c))
    if legend and rows:
        lines.append("")
        seen = []
        for r in rows:
            if r.label not in seen:
                seen.append(r.label)
        lines.extend(("- " if markdown else "  ") + s for s in seen)
        notes = [
            "fwd: the loss only; l+g: loss + gradient (fastce with a preallocated "
            "out=, torch forward + backward); medians of interleaved rounds "
            f"({_span(r.rounds for r in rows)} rounds).",
            "× faster than torch: torch time / fastce time at the same thread count.",
            "× floor: fastce time / the machine floor: max(one read of the input, "
            "one exp per element at the faster in-cache rate of np.exp / torch.exp), "
            "+ one write of an input-sized buffer for l+g.",
            "fwd peak extra: memory the fastce forward allocates (tracemalloc), "
            "against the input's size.",
            "speedup vs 1T: fastce time at 1 thread / at this thread count.",
        ]
        if any(r.numpy_fwd_ms is not None for r in rows) and len(
                {r.n_threads for r in rows}) > 1:
            notes.append("numpy (single-threaded) is timed in the first thread pass "
                         "and repeated on the others.")
        lines.append("")
        lines.extend(("- " if markdown else "  ") + s for s in notes)
    return "\n".join(lines)


def _span(values):
    values = list(values)
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def environment_summary() -> str:
    """One line: fastce, SIMD variant, OpenMP, numpy, torch, CPU."""
    from fastce._kernels import _runtime

    info = _runtime.build_info()
    torch = _import_torch(True)
    parts = [
        f"fastce {fastce.__version__} ({_runtime.arch_name()}, "
        f"OpenMP {'on' if info['openmp'] else 'off'}, "
        f"{fastce.get_num_threads()} threads, {_runtime.num_procs()} cores)",
        f"numpy {np.__version__}",
        f"torch {torch.__version__}" if torch is not None else "torch not installed",
        f"Python {platform.python_version()}",
        platform.machine(),
    ]
    return ", ".join(parts)


# -------------------------------------------------------------- self-check --

def _close(actual, expected, dtype):
    """SPEC section 3.8 tolerances: rtol 1e-5 / atol 1e-6 for float32,
    1e-12 for float64."""
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
    """Check fastce's numbers: the SPEC section 3.6 worked example, the NumPy
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

    torch = _import_torch(use_torch)
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


# ------------------------------------------------------------ command line --

def _int_list(text):
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got "
                                         f"{text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _shape(text):
    try:
        shape = tuple(int(v) for v in text.lower().replace("x", ",").split(",") if v)
    except ValueError:
        shape = ()
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected N,C[,d1,...] (positive), got {text!r}")
    return shape


def _names(text):
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated workload names")
    return names


def add_options(parser, suppress_defaults=False):
    """Add the benchmark options (``--quick``, ``--threads``, ``--dtype``,
    ``--repeat``, ``--workloads``, ``--shape``, ...) to an argparse parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    suppress_defaults : bool, default False
        Leave unset options out of the namespace (``argparse.SUPPRESS``), so
        that a subcommand's parser does not overwrite what the main parser
        already read.
    """
    def default(value):
        return argparse.SUPPRESS if suppress_defaults else value

    names = ", ".join(WORKLOADS)
    parser.add_argument("--quick", action="store_true", default=default(False),
                        help=f"a tiny run of a few seconds (workloads "
                             f"{','.join(QUICK_WORKLOADS)}, {QUICK_ROUNDS} rounds)")
    parser.add_argument("--threads", type=_int_list, default=default(None),
                        metavar="N[,N...]",
                        help="thread counts to run, e.g. 1,2 (default: 1 and "
                             "fastce.get_num_threads() when it is > 1)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=default(None),
                        help="dtype of every workload but B64 (default: each "
                             "workload's own, float32)")
    parser.add_argument("--repeat", type=int, default=default(None), metavar="N",
                        help="interleaved timing rounds per workload and thread count")
    parser.add_argument("--workloads", type=_names, default=default(None),
                        metavar="A,B,...",
                        help=f"which workloads ({names}); see the list below")
    parser.add_argument("--shape", type=_shape, action="append", default=default(None),
                        metavar="N,C[,d...]",
                        help="benchmark a cross-entropy workload of this shape "
                             "(class axis 1): instead of the default workloads, or "
                             "besides those of --workloads; repeatable")
    parser.add_argument("--no-torch", action="store_true", default=default(False),
                        help="do not time or check against PyTorch even if installed")
    parser.add_argument("--no-check", action="store_true", default=default(False),
                        help="skip the self-check")
    parser.add_argument("--markdown", action="store_true", default=default(False),
                        help="print the table as Markdown (for a README)")
    parser.add_argument("--json", default=default(None), metavar="FILE",
                        help="also write the result rows to FILE as JSON")


def workloads_help() -> str:
    """The workload list, for ``--help`` epilogs."""
    return "workloads:\n" + "\n".join(f"  {w.label}" for w in WORKLOADS.values())


def run_from_args(args, full=False, out=None, err=None) -> int:
    """Run the self-check and the benchmark as parsed by `add_options`.

    Parameters
    ----------
    args : argparse.Namespace
    full : bool, default False
        The full SPEC section 5 comparison (all workloads, threads 1 and 2,
        `FULL_ROUNDS`) rather than the short default run.
    out, err : file-like, optional
        Table and progress streams (default sys.stdout / sys.stderr).

    Returns
    -------
    int
        Exit status: 0, or 1 when the self-check failed.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    opt = vars(args)
    quick = opt.get("quick", False)
    use_torch = not opt.get("no_torch", False)
    markdown = opt.get("markdown", False)

    if opt.get("workloads") is not None:
        names = opt["workloads"]
    elif opt.get("shape"):
        names = []
    elif quick:
        names = list(QUICK_WORKLOADS)
    elif full:
        names = None if opt.get("dtype") is None else [
            n for n in FULL_WORKLOADS if n != "B64"]
    else:
        names = list(DEFAULT_WORKLOADS)
    try:
        workloads = get_workloads(names, opt.get("dtype"), opt.get("shape") or ())
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return 2

    threads = opt.get("threads")
    if threads is None:
        default_threads = fastce.get_num_threads()
        if full:
            threads = [1, 2]
        else:
            threads = [1] + ([default_threads] if default_threads > 1 else [])
    rounds = opt.get("repeat")
    if rounds is None:
        rounds = QUICK_ROUNDS if quick else FULL_ROUNDS if full else DEFAULT_ROUNDS
    if rounds < 1:
        print("error: --repeat must be >= 1", file=err)
        return 2
    budget = None if full or opt.get("repeat") is not None else DEFAULT_PASS_BUDGET_S

    ok = True
    if not opt.get("no_check", False):
        # Markdown goes to a README: keep the check's lines out of it.
        check_stream = err if markdown else out
        print("self-check:", file=check_stream)
        ok = self_check(file=check_stream, use_torch=use_torch)
        print(file=check_stream, flush=True)

    print(f"benchmark: {len(workloads)} workload(s), threads "
          f"{','.join(map(str, threads))}, {rounds} interleaved rounds"
          + ("" if budget is None else f" (at most ~{budget:g} s per pass)"),
          file=err, flush=True)
    rows = run_benchmarks(workloads, threads, rounds, use_torch=use_torch,
                          budget_s=budget, progress=err)
    print(file=err, flush=True)
    print(environment_summary() if not markdown else f"_{environment_summary()}_",
          file=out)
    print(file=out)
    print(format_table(rows, markdown=markdown), file=out, flush=True)
    if opt.get("json"):
        with open(opt["json"], "w") as fh:
            json.dump({"environment": environment_summary(),
                       "rows": [r.as_dict() for r in rows]}, fh, indent=1)
    if not ok:
        print("\nself-check FAILED (see the FAIL lines above)", file=err)
        return 1
    return 0
