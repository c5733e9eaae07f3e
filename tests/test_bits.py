"""Bitwise regression test: every result of fastce's public API must keep the
exact bits that the main before the structure refactor of issue 11 (commit
dd94468) produced, on every SIMD variant this CPU can run.

``tests/data/bits_baseline.npz`` (written by ``tools/make_bits.py`` from that
commit's build) holds a few hundred small cases covering every kernel path:
their inputs, options and, per SIMD variant, the loss and gradient bytes.
Each case is re-run here with ``n_threads=1`` and ``n_threads=2`` and every
result must match in dtype, shape, result type (NumPy scalar or ndarray) and
bytes, NaN payloads and signed zeros included.  A case whose bits are stored
for a variant this CPU cannot run is skipped, not failed.

This module also holds `call_case`, the one definition of how a stored case
calls fastce; ``tools/make_bits.py`` imports it, so the generator and the
test cannot drift apart.  Needs neither PyTorch nor a compiler.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

import fastce
from fastce._kernels import _runtime

from _helpers import simd_variant

# tools/asan.sh builds with the sanitizers' own optimisation flags, whose
# vectorisation (and so the order of the SIMD sums) is not the release
# build's: there every case still runs, for the sanitizers to watch, but only
# types, dtypes and shapes are compared
INSTRUMENTED_BUILD = os.environ.get("FASTCE_INSTRUMENTED_BUILD") == "1"

BITS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                         "bits_baseline.npz")

#: Functions whose results are a loss (and, for the ``*_and_grad`` variant,
#: the gradient): a case of one of them records the forward loss, then the
#: loss and gradient of ``<fn>_and_grad``.
LOSS_FUNCTIONS = ("cross_entropy", "nll_loss", "binary_cross_entropy_with_logits",
                  "binary_cross_entropy")
#: Functions with one output and no gradient.
SOFTMAX_FUNCTIONS = ("log_softmax", "softmax", "logsumexp")
#: Loss objects: a case records ``obj(input, target)`` and ``obj.loss_and_grad``.
LOSS_CLASSES = ("CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss")

#: The thread counts each case runs with: tiles are fixed by the shape, so
#: the bits must not depend on the count.
THREAD_COUNTS = (1, 2)

#: Unsigned integer dtype of each item size, to compare results bit by bit.
_BITS_DTYPE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


# ------------------------------------------------------------- running --

def _logical_input(stored: np.ndarray, view: str | None) -> np.ndarray:
    """The input a case passes: the stored array itself, or a non-contiguous
    view of it (the validation layer must copy or read it in place)."""
    if view is None:
        return stored
    if view == "transpose":
        return stored.T
    if view == "every_other_column":
        return stored[..., ::2]
    raise ValueError(f"unknown input view {view!r}")


def call_case(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
              n_threads: int) -> dict[str, Any]:
    """Run one stored case with the fastce that is imported now.

    Parameters
    ----------
    spec : mapping
        The case's JSON record: ``fn`` (a public function or loss class
        name), ``kwargs`` (options shared by the forward and gradient calls,
        or the constructor's for a loss class), ``grad_output`` (a number,
        ``"array"`` for the stored array, or None), ``out`` (None, ``"input"``
        for ``out=input``, ``"empty"`` for a fresh array) and ``view``.
    arrays : mapping of str to ndarray
        The case's inputs by role: ``input`` and, as used, ``target``,
        ``weight``, ``pos_weight``, ``grad_output``.  Not modified: every
        call gets its own copies (``out="input"`` overwrites its input).
    n_threads : int
        Passed to every call.

    Returns
    -------
    dict
        ``{"output": ...}`` for the softmax family, else ``{"forward": ...,
        "loss": ..., "grad": ...}``: the forward function's loss and the
        ``*_and_grad`` variant's loss and gradient, as fastce returned them.
    """
    # float16 results of huge gradients (BCE at probabilities 0 and 1)
    # overflow to inf on purpose; NumPy's cast would warn about it
    with np.errstate(over="ignore"):
        return _call_case(spec, arrays, n_threads)


def _call_case(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
               n_threads: int) -> dict[str, Any]:
    def fresh(role: str) -> np.ndarray | None:
        return arrays[role].copy() if role in arrays else None

    fn, kwargs = spec["fn"], dict(spec["kwargs"])
    if fn in SOFTMAX_FUNCTIONS:
        x = _logical_input(fresh("input"), spec.get("view"))
        return {"output": getattr(fastce, fn)(x, n_threads=n_threads, **kwargs)}

    for role in ("weight", "pos_weight"):
        if role in arrays:
            kwargs[role] = fresh(role)
    grad_kwargs: dict[str, Any] = {}
    if spec.get("grad_output") == "array":
        grad_kwargs["grad_output"] = fresh("grad_output")
    elif spec.get("grad_output") is not None:
        grad_kwargs["grad_output"] = spec["grad_output"]

    forward_x = _logical_input(fresh("input"), spec.get("view"))
    grad_x = _logical_input(fresh("input"), spec.get("view"))
    if spec.get("out") == "input":
        grad_kwargs["out"] = grad_x
    elif spec.get("out") == "empty":
        grad_kwargs["out"] = np.empty_like(grad_x, order="C")

    if fn in LOSS_FUNCTIONS:
        forward = getattr(fastce, fn)(forward_x, fresh("target"), n_threads=n_threads,
                                      **kwargs)
        loss, grad = getattr(fastce, fn + "_and_grad")(
            grad_x, fresh("target"), n_threads=n_threads, **kwargs, **grad_kwargs)
    elif fn in LOSS_CLASSES:
        loss_fn = getattr(fastce, fn)(**kwargs)
        forward = loss_fn(forward_x, fresh("target"), n_threads=n_threads)
        loss, grad = loss_fn.loss_and_grad(grad_x, fresh("target"), n_threads=n_threads,
                                           **grad_kwargs)
    else:
        raise ValueError(f"unknown function {fn!r}")
    return {"forward": forward, "loss": loss, "grad": grad}


def as_bits(value: Any) -> np.ndarray:
    """``value``'s bits as an unsigned integer array of its shape (NaN
    payloads and signed zeros survive, unlike a float comparison)."""
    arr = np.asarray(value)
    return arr.view(_BITS_DTYPE[arr.dtype.itemsize])


def xor_bits(reference: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Undo the generator's compaction: a result stored as the XOR of its bits
    with a reference result's (mostly zero bytes, so it compresses well)."""
    return (as_bits(reference) ^ delta).view(reference.dtype)


def can_run(arch: str) -> bool:
    """Whether this build has SIMD variant ``arch`` and this CPU runs it."""
    if arch not in _runtime.built_archs().split():
        return False
    try:
        with simd_variant(arch):
            return True
    except ValueError:
        return False


# ---------------------------------------------------------- stored data --

def _load() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, np.ndarray]]:
    """(meta, cases, arrays by key) of the stored bits, or empty ones when
    the file is missing (`test_bits_file_is_complete` then fails)."""
    if not os.path.exists(BITS_PATH):
        return {}, [], {}
    with np.load(BITS_PATH, allow_pickle=False) as data:
        meta, cases, index = (json.loads(str(data[name])) for name in ("meta", "cases",
                                                                        "index"))
        blob = data["blob"]
    # an array is a read-only view of the blob (call_case copies inputs),
    # or, stored in a narrower float type that holds it exactly (the coarse
    # inputs in float16), widened back: exact, so the same bits
    arrays = {}
    for key, (offset, dtype, shape, *stored_as) in index.items():
        stored = np.dtype(stored_as[0] if stored_as else dtype)
        arr = np.frombuffer(blob, dtype=stored, count=math.prod(shape), offset=offset)
        arrays[key] = arr.astype(dtype, copy=False).reshape(shape)
    return meta, cases, arrays


META, CASES, ARRAYS = _load()
STORED_ARCHS: list[str] = META.get("archs", [])


def stored_result(case: Mapping[str, Any], arch: str, slot: str) -> np.ndarray:
    """The stored result ``slot`` of ``case`` on SIMD variant ``arch``: its
    array, or its XOR delta applied to variant ``xor_with``'s result."""
    record = case["results"][arch][slot]
    if "xor_with" in record:
        return xor_bits(stored_result(case, record["xor_with"], slot),
                        ARRAYS[record["key"]])
    return ARRAYS[record["key"]]


def _describe_difference(got: np.ndarray, want: np.ndarray) -> str:
    differs = np.flatnonzero(as_bits(got).reshape(-1) != as_bits(want).reshape(-1))
    first = int(differs[0])
    g, w = got.reshape(-1)[first], want.reshape(-1)[first]
    return (f"{differs.size} of {want.size} elements differ; first at flat index "
            f"{first}: got {g!r} (bits {as_bits(g).item():#x}), want {w!r} "
            f"(bits {as_bits(w).item():#x})")


def assert_same_bits(got: Any, case: Mapping[str, Any], arch: str, slot: str,
                     what: str) -> None:
    """Assert that ``got`` is the stored result (see `stored_result`) bit for
    bit, with the same dtype, shape and result type (NumPy scalar or
    ndarray)."""
    record = case["results"][arch][slot]
    want = stored_result(case, arch, slot)
    kind = "scalar" if isinstance(got, np.generic) else type(got).__name__
    assert kind == record["type"], f"{what}: result type {kind}, want {record['type']}"
    got = np.asarray(got)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, want {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    if INSTRUMENTED_BUILD:
        return   # another optimisation level: the sums may round differently
    if got.tobytes() != want.tobytes():
        pytest.fail(f"{what}: bits differ: {_describe_difference(got, want)}")


# ---------------------------------------------------------------- tests --

def test_bits_file_is_complete():
    assert os.path.exists(BITS_PATH), (
        f"{BITS_PATH} is missing; see tools/make_bits.py for how to regenerate it")
    assert META["commit"] == "dd94468"
    assert len(CASES) >= 300
    assert "baseline" in STORED_ARCHS
    names = [case["name"] for case in CASES]
    assert len(set(names)) == len(names), "case names must be unique (they are test ids)"
    assert {case["fn"] for case in CASES} >= set(LOSS_FUNCTIONS + SOFTMAX_FUNCTIONS)
    assert os.path.getsize(BITS_PATH) < 3_000_000


def test_at_least_one_stored_variant_runs_here():
    # the baseline variant runs on every x86-64 CPU, so a skip-everything
    # run means the runtime lost its variants, not that the CPU is old
    assert any(can_run(arch) for arch in STORED_ARCHS)


_RUNNABLE = {arch: can_run(arch) for arch in STORED_ARCHS}


@pytest.mark.parametrize(
    "arch, case",
    [(arch, case) for arch in STORED_ARCHS for case in CASES],
    ids=[f"{arch}-{case['name']}" for arch in STORED_ARCHS for case in CASES])
def test_results_keep_their_bits(arch, case):
    if not _RUNNABLE[arch]:
        pytest.skip(f"SIMD variant {arch} is not available on this CPU / build")
    inputs = {role: ARRAYS[key] for role, key in case["inputs"].items()}
    expected = case["results"][arch]
    with simd_variant(arch):
        for n_threads in THREAD_COUNTS:
            results = call_case(case, inputs, n_threads)
            assert results.keys() == expected.keys()
            for slot, value in results.items():
                assert_same_bits(value, case, arch, slot,
                                 f"{case['name']} [{arch}, n_threads={n_threads}] {slot}")
