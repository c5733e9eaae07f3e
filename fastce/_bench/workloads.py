"""The benchmark problems: `Workload` and the standard set, `WORKLOADS`.

A workload is a shape, a dtype and a loss with its options; its data is
made from a fixed seed on first use, so every run (and every
implementation within a run) sees the same arrays, and `Workload.release`
drops them before the next workload's are made.  The workload also knows
how fastce, the NumPy reference and PyTorch spell its loss, which keeps the
timing code free of per-loss branches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import fastce

from .references import (IGNORE_INDEX, numpy_binary_cross_entropy_with_logits,
                         numpy_cross_entropy)

__all__ = ["DTYPES", "Workload", "WORKLOADS", "get_workloads"]

#: The dtypes a workload can be made in.
DTYPES = ("float32", "float64")


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
    def shape_text(self) -> str:
        """``"(8192, 1000)"``."""
        return "(" + ", ".join(str(s) for s in self.shape) + ")"

    @property
    def label(self) -> str:
        """``"B (8192, 1000) float32 ..."``: the legend line."""
        return f"{self.name} {self.shape_text} {self.dtype} {self.description}".rstrip()

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
    # Fresh objects on every call: a caller that makes one workload's data
    # must not fill the shared `WORKLOADS` entry with it.
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


#: The standard workloads, by name: from many rows of few classes to few rows
#: of many, a segmentation-shaped input, multi-label BCE, and the options.
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
        it would repeat B, the same (8192, 1000) problem.
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
    if dtype is not None and dtype not in DTYPES:
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
