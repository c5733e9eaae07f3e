"""Fuzzing every public function (SPEC §2-§4).

Hypothesis throws arbitrary shapes (zero-size axes included), dtypes (every
integer and float dtype, both byte orders, bool, complex, object, strings,
datetimes), memory layouts (Fortran order, negative strides, zero-stride
broadcast views, permuted axes, steps, unaligned buffers, read-only arrays,
nested lists, NumPy scalars), out-of-range and ignored targets, NaN / +-inf
values, odd ``weight`` / ``pos_weight`` / ``grad_output`` / ``out`` arguments
and thread counts at every public function and loss object.

Every call must either

* return what the float64 NumPy reference below computes (the SPEC
  semantics, with fastce's documented deviations from PyTorch: limits at
  +-inf logits in BCE-with-logits, exactly-0 gradients at ignored positions
  and masked (-inf) classes, probability-target terms with y == 0 at -inf
  logits dropped), at the SPEC §3.8 tolerances, with the SPEC result types;
  or
* raise one of the SPEC §4 exceptions (TypeError, ValueError, IndexError),
  and one that the reference says applies to this input --

never crash, never raise anything else, and leave every input (and, on an
error, ``out``) unchanged.

The default run is derandomized (the same 250 examples per test every time)
and takes a few seconds per test.  ``FASTCE_FUZZ_EXAMPLES=N`` sets the number
of examples per test for a longer run, ``FASTCE_FUZZ_RANDOM=1`` draws fresh
random examples instead of the fixed ones:

    FASTCE_FUZZ_EXAMPLES=5000 FASTCE_FUZZ_RANDOM=1 pytest tests/test_fuzz.py

(``tools/asan.sh`` runs these tests under AddressSanitizer + UBSan too.)
"""
from __future__ import annotations

import copy
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fastce
from _helpers import simd_variant, tolerance
from fastce._kernels import _runtime

SPEC_ERRORS = (TypeError, ValueError, IndexError)

DEFAULT_EXAMPLES = 250
N_EXAMPLES = int(os.environ.get("FASTCE_FUZZ_EXAMPLES") or DEFAULT_EXAMPLES)
# FASTCE_FUZZ_RANDOM=1: fresh random examples on every run (exploration by
# hand; CI stays derandomized)
RANDOM = os.environ.get("FASTCE_FUZZ_RANDOM") == "1"

FUZZ = settings(
    max_examples=N_EXAMPLES,
    derandomize=not RANDOM,  # by default the same examples on every run
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)

# ---------------------------------------------------------------------------
# Known bugs (see the strict-xfail regression tests at the end of this
# file).  Each switch relaxes the value comparison for exactly the inputs that
# trigger the bug -- no crash, the result types and unchanged inputs are still
# checked there.  When a kernel fix lands, its regression test XPASSes (a
# failure, strict=True): flip the switch to False and remove the xfail.
KNOWN_BUG_LOGSUMEXP_NAN_WITH_INF = False     # logsumexp([nan, inf]) gives inf
KNOWN_BUG_BCE_LOGITS_NAN_ZERO_COEFS = False  # nan logit, y=1, pos_weight=0 gives 0
KNOWN_BUG_BCE_LOG1MP_PRECISION = False       # log(1 - p) instead of log1p(-p)
KNOWN_BUG_OUT_ALIASES_WEIGHT = False         # out= sharing memory with weight
KNOWN_BUG_PROB_TARGETS_NO_CLASSES = False    # C == 0 probability targets give NaN
KNOWN_BUG_PROB_ZERO_TARGETS_NAN_ROW = False   # y == 0 row of NaN log-probs gives 0


# ------------------------------------------------------- SIMD variants --

def _runnable_archs():
    """The SIMD variants built into fastce that this CPU can run."""
    current = _runtime.arch_name()
    found = []
    try:
        for arch in _runtime.built_archs().split():
            try:
                _runtime.select_arch(arch)
                found.append(arch)
            except ValueError:
                pass
    finally:
        _runtime.select_arch(current)
    return found or [current]


ARCHS = _runnable_archs()


def draw_arch(data):
    arch = data.draw(st.sampled_from(ARCHS), label="SIMD variant")
    event(f"SIMD {arch}")
    return arch


# ------------------------------------------------------------------ dtypes --

VALID_FLOATS = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)]
SWAPPED_FLOATS = [np.dtype(np.float32).newbyteorder(), np.dtype(np.float64).newbyteorder(),
                  np.dtype(np.float16).newbyteorder()]
INT_DTYPES = [np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64,
                                    np.uint8, np.uint16, np.uint32, np.uint64)]
SWAPPED_INTS = [np.dtype(t).newbyteorder() for t in (np.int16, np.int32, np.int64,
                                                     np.uint32, np.uint64)]
OTHER_DTYPES = [np.dtype(np.longdouble), np.dtype(np.bool_), np.dtype(np.complex64),
                np.dtype(np.complex128), np.dtype(object), np.dtype("U12"),
                np.dtype("S12"), np.dtype("datetime64[s]"), np.dtype("timedelta64[s]")]


def _native(dt: np.dtype) -> np.dtype:
    return dt.newbyteorder("=")


def _is_float_input(dt: np.dtype) -> bool:
    """Input dtypes fastce accepts: float16/32/64 in either byte order."""
    return dt.kind == "f" and dt.itemsize in (2, 4, 8)


def _kernel_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dt.itemsize == 8 else np.dtype(np.float32)


def _cast(values: np.ndarray, dt: np.dtype) -> np.ndarray:
    """float64 values as an array of ``dt`` (any dtype), warnings silenced."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind in "fiu":
            if dt.kind in "iu":
                values = np.nan_to_num(values, nan=0, posinf=1, neginf=-1)
                info = np.iinfo(dt)
                values = np.clip(np.round(values), info.min, info.max)
            return values.astype(dt)
        if dt.kind == "b":
            return values > 0
        if dt.kind == "c":
            return (values + 0.5j).astype(dt)
        if dt.kind == "O":
            return values.astype(object)
        if dt.kind in "US":
            return values.astype(dt)
        if dt.kind in "mM":
            return np.nan_to_num(values).astype(np.int64).astype(dt)
        return values.astype(dt)


def _as_f64(a) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(a).astype(np.float64)


# ----------------------------------------------------------------- drawing --

def _draw_dtype(data, label, valid, ok, weights=(30, 30, 10, 4, 8, 8, 10)):
    """A dtype: ``valid`` is the list of the usual ones; rarer byte-swapped
    floats, integers, byte-swapped integers and everything else (those only
    when not ``ok``)."""
    if ok:
        weights = weights[:4]
    groups = [valid[:1], valid[1:2], valid[2:] or valid[:1], SWAPPED_FLOATS, INT_DTYPES,
              SWAPPED_INTS, OTHER_DTYPES]
    pool = [(w, g) for w, g in zip(weights, groups) if g]
    total = sum(w for w, _ in pool)
    k = data.draw(st.integers(0, total - 1), label=f"{label} dtype group")
    for w, g in pool:
        if k < w:
            return data.draw(st.sampled_from(g), label=f"{label} dtype")
        k -= w
    raise AssertionError


LAYOUTS = ["C"] * 6 + ["F", "neg", "step", "perm", "broadcast", "unaligned", "list",
                       "scalar"]


def present(data, rng, values: np.ndarray, label: str, allow_list=True):
    """``values`` (an array of its final dtype) in a memory layout drawn by
    hypothesis; possibly read-only, a nested list or a NumPy scalar."""
    kind = data.draw(st.sampled_from(LAYOUTS), label=f"{label} layout")
    a = values
    nd = a.ndim
    if kind == "C" or nd == 0 and kind not in ("scalar", "list"):
        out = np.array(a, order="C", copy=True)
    elif kind == "F":
        out = np.array(a, order="F", copy=True)
    elif kind == "neg":
        rev = (slice(None, None, -1),) * nd
        out = np.ascontiguousarray(a[rev])[rev]
    elif kind == "step":
        ax = int(rng.integers(nd))
        shape = list(a.shape)
        shape[ax] = 2 * shape[ax] + 1
        buf = np.zeros(shape, dtype=a.dtype) if a.dtype.kind != "O" else np.full(
            shape, 0.0, dtype=object)
        idx = [slice(None)] * nd
        idx[ax] = slice(1, None, 2)
        buf[tuple(idx)] = a
        out = buf[tuple(idx)]
    elif kind == "perm":
        perm = rng.permutation(nd)
        out = np.ascontiguousarray(a.transpose(perm)).transpose(np.argsort(perm))
    elif kind == "broadcast":
        # zero strides: repeat the first entry along some axes
        idx = tuple(slice(0, 1) if (n > 0 and rng.random() < 0.6) else slice(None)
                    for n in a.shape)
        out = np.broadcast_to(np.array(a[idx]), a.shape)
    elif kind == "unaligned":
        if a.dtype.kind == "O" or a.size == 0 or a.dtype.alignment < 2:
            out = np.array(a, copy=True)
        else:
            buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
            out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size,
                                offset=1).reshape(a.shape)
            out[...] = a
            assert not out.flags.aligned
    elif kind == "list":
        if allow_list and a.dtype in (np.float64, np.int64, np.bool_) and a.size < 4096:
            return a.tolist()
        out = np.array(a, copy=True)
    else:  # scalar: a NumPy scalar for 0-d, a plain array otherwise
        if nd == 0:
            return a[()]
        out = np.array(a, copy=True)
    if isinstance(out, np.ndarray) and out.flags.writeable and data.draw(
            st.integers(0, 4), label=f"{label} read-only") == 0:
        out.flags.writeable = False
    return out


SPECIALS = {
    "none": [],
    "masked": [-np.inf],
    "nan": [np.nan],
    "posinf": [np.inf],
    "mixed": [np.nan, np.inf, -np.inf, 0.0, -0.0],
    "big": [1e4, -1e4, 6e4, -6e4, 3e38],
}


def float_values(data, rng, shape, label, scales=(1.0, 3.0, 30.0, 1e4)):
    """float64 values: normal * scale, with special values sprinkled in."""
    scale = data.draw(st.sampled_from(scales), label=f"{label} scale")
    v = np.asarray(rng.normal(size=shape) * scale)
    mode = data.draw(st.sampled_from(["none"] * 5 + list(SPECIALS)), label=f"{label} specials")
    if mode != "none" and v.size:
        frac = data.draw(st.sampled_from([0.02, 0.1, 0.5, 1.0]), label=f"{label} fraction")
        mask = rng.random(size=shape) < frac
        specials = np.array(SPECIALS[mode])
        v = np.where(mask, specials[rng.integers(len(specials), size=shape)], v)
    return v


def draw_shape(data, min_ndim=0, max_ndim=4):
    """Mostly small shapes (zero-size axes included); sometimes big enough to
    run in parallel, or a few rows long enough for the kernels' split path."""
    size = data.draw(st.sampled_from(["small"] * 12 + ["medium"] * 3 + ["large", "rows"]),
                     label="size class")
    event(f"size class {size}")
    if size == "small":
        return tuple(data.draw(st.lists(st.integers(0, 5), min_size=min_ndim,
                                        max_size=max_ndim), label="shape"))
    if size == "medium":
        nd = data.draw(st.integers(max(min_ndim, 1), min(max_ndim, 3)), label="ndim")
        dims = [data.draw(st.integers(1, 300 if i == 0 else 40), label="dim")
                for i in range(nd)]
        return tuple(dims)
    if size == "large":  # above the serial threshold: threads really split it
        nd = data.draw(st.integers(max(min_ndim, 2), max(min(max_ndim, 3), 2)), label="ndim")
        if nd == 2:
            return (data.draw(st.integers(700, 1300)), data.draw(st.integers(33, 60)))
        return (2, data.draw(st.integers(3, 9)), data.draw(st.integers(2000, 3000)))
    # a few long rows (class axis last with the default axis for 2-D)
    return (data.draw(st.integers(1, 3), label="rows"),
            data.draw(st.integers(65536, 70000), label="cols"))


def draw_threads(data, ok):
    return data.draw(st.sampled_from([None] * 6 + [1, 2, 3, 16]
                                     + ([] if ok else [0, -1, 1.5, True])), label="n_threads")


def threads_error(n):
    if n is None:
        return set()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return {ValueError}
    return set()


def draw_reduction(data, ok):
    r = data.draw(st.sampled_from(["mean"] * 4 + ["sum"] * 3 + ["none"] * 4 + ["legacy"]
                                  + ([] if ok else ["elementwise_mean", "bogus", None])),
                  label="reduction")
    if r == "legacy":
        sa = data.draw(st.sampled_from([None, True, False]), label="size_average")
        rd = data.draw(st.sampled_from([None, True, False]), label="reduce")
        if sa is None and rd is None:
            rd = False
        red = "mean" if (sa is not False and rd is not False) else (
            "sum" if rd is not False else "none")
        return dict(size_average=sa, reduce=rd), red, set()
    if r in ("mean", "sum", "none"):
        return dict(reduction=r), r, set()
    return dict(reduction=r), "mean", {ValueError}


# -------------------------------------------------------------- reference --

def _log_softmax_parts(xm):
    """(logp, lse) along the last axis, float64, as SPEC §3: shift by the
    (NaN-ignoring) max, a -inf max shifts by 0."""
    with np.errstate(all="ignore"):
        if xm.shape[-1] == 0:
            m = np.zeros(xm.shape[:-1] + (1,))
        else:
            m = np.max(np.where(np.isnan(xm), -np.inf, xm), axis=-1, keepdims=True)
            m = np.where(m == -np.inf, 0.0, m)
        s = np.sum(np.exp(xm - m), axis=-1, keepdims=True)
        logsum = np.log(s)
        logp = (xm - m) - logsum
        lse = (m + logsum)[..., 0]
    return logp, lse


class Expect:
    """What a call must do: raise one of ``errors`` (when non-empty), or
    return ``loss`` (and ``grad``) within tolerance."""

    def __init__(self, errors=()):
        self.errors = set(errors)
        self.loss = self.grad = None
        self.loss_scale = self.grad_scale = 1.0   # atol multipliers (arrays ok)
        self.loss_extra_atol = 0.0
        self.loss_loose = self.grad_loose = None  # masks: any value accepted
        self.grad_exact_zero = None               # mask: must be exactly 0
        self.loss_exact_zero = None
        self.all_loose = False
        self.result_dtype = None
        self.loss_shape = ()
        self.grad_shape = None


def _axis_errors(axis, dim, ndim):
    errs = set()
    if dim is not None:
        if axis is not None and axis != dim:
            errs.add(ValueError)
        axis = dim
    if ndim == 0:
        errs.add(ValueError)
        return errs, None
    if axis is None:
        return errs, (0 if ndim == 1 else 1)
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        errs.add(ValueError)
        return errs, None
    if not -ndim <= axis < ndim:
        errs.add(ValueError)
        return errs, None
    return errs, int(axis) % ndim


def _grad_output_errors(go, loss_shape, reduction):
    if go is None:
        return set(), 1.0
    g = np.asarray(go)
    if g.dtype.kind not in "biuf":
        return {TypeError}, None
    if g.ndim == 0:
        return set(), float(g)
    if reduction != "none" or g.shape != tuple(loss_shape):
        return {ValueError}, None
    return set(), _as_f64(g)


def _out_errors(out, x_shape, result_dtype, original_input):
    if out is None:
        return set()
    if not isinstance(out, np.ndarray):
        return {ValueError}
    errs = set()
    if out.shape != tuple(x_shape) or result_dtype is None or out.dtype != result_dtype:
        errs.add(ValueError)
    if not out.flags.c_contiguous or not out.flags.writeable:
        errs.add(ValueError)
    if isinstance(original_input, np.ndarray) and out is not original_input and \
            np.shares_memory(out, original_input):
        same = (out.__array_interface__["data"][0]
                == original_input.__array_interface__["data"][0]
                and out.strides == original_input.strides)
        if not same:
            errs.add(ValueError)
    return errs


def _finite_or_zero(a):
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), np.abs(a), 0.0)


def reference_class_loss(nll, input, target, weight, ignore_index, red_kwargs,
                         label_smoothing, axis, dim, grad_output, out, n_threads,
                         want_grad):
    """SPEC §3.1-3.3, §3.8, §3.9, §4 for cross_entropy / nll_loss (and their
    _and_grad variants), float64."""
    red_errs = set()
    if "reduction" in red_kwargs:
        r = red_kwargs["reduction"]
        reduction = r if r in ("mean", "sum", "none") else "mean"
        if r not in ("mean", "sum", "none"):
            red_errs.add(ValueError)
    else:
        sa, rd = red_kwargs["size_average"], red_kwargs["reduce"]
        sa = True if sa is None else sa
        rd = True if rd is None else rd
        reduction = "mean" if sa and rd else ("sum" if rd else "none")
    ex = Expect(red_errs | threads_error(n_threads))
    x_arr = np.asarray(input)
    if not _is_float_input(x_arr.dtype):
        ex.errors.add(TypeError)
        rdt = None
    else:
        rdt = _native(x_arr.dtype)
    ex.result_dtype = rdt
    axis_errs, ax = _axis_errors(axis, dim, x_arr.ndim)
    ex.errors |= axis_errs
    t = np.asarray(target)
    kind = None
    if t.dtype.kind in "iu":
        kind = "index"
        if not nll and t.shape == x_arr.shape:
            ex.errors.add(TypeError)
    elif t.dtype.kind == "f" and not nll:
        kind = "prob"
    else:
        ex.errors.add(TypeError)
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(
            ignore_index, (int, np.integer)):
        ex.errors.add(TypeError)
        ignore = None
    else:
        ignore = int(ignore_index)
        if not -2**63 <= ignore < 2**63:
            ex.errors.add(ValueError)
    eps = 0.0
    if not nll:
        try:
            eps = float(label_smoothing)
        except (TypeError, ValueError):
            ex.errors.add(ValueError)
            eps = 0.0
        if not 0.0 <= eps <= 1.0:
            ex.errors.add(ValueError)
            eps = 0.0
    if kind == "prob" and ignore is not None and ignore >= 0:
        ex.errors.add(ValueError)
    if ax is None:
        return ex
    C = x_arr.shape[ax]
    batch = x_arr.shape[:ax] + x_arr.shape[ax + 1:]
    ex.loss_shape = batch if reduction == "none" else ()
    ex.grad_shape = x_arr.shape
    kdt = _kernel_dtype(x_arr.dtype) if rdt is not None else np.dtype(np.float64)
    w = None
    if weight is not None:
        w_arr = np.asarray(weight)
        if w_arr.dtype.kind not in "biuf":
            ex.errors.add(TypeError)
        elif w_arr.shape != (C,):
            ex.errors.add(ValueError)
        else:
            w = _as_f64(_cast(_as_f64(w_arr), kdt))
    if want_grad:
        ex.errors |= _out_errors(out, x_arr.shape, rdt, input)
    if kind == "index" and t.shape != batch:
        ex.errors.add(ValueError)
    if kind == "prob" and t.shape != x_arr.shape:
        ex.errors.add(ValueError)
    go_errs, go = _grad_output_errors(grad_output, batch, reduction) if want_grad else (
        set(), 1.0)
    ex.errors |= go_errs
    if ex.errors or kind is None:
        # an out-of-range target may or may not be reached before the others
        if kind == "index" and t.shape == batch and ignore is not None:
            ex.errors |= {IndexError} if _bad_targets(t, C, ignore).any() else set()
        return ex
    if kind == "index" and _bad_targets(t, C, ignore).any():
        ex.errors.add(IndexError)
        return ex

    # ---- values
    x = _as_f64(x_arr)
    xm = np.moveaxis(x, ax, -1)
    W = np.ones(C) if w is None else w
    Wsum = float(np.sum(W))
    loose_all = not np.all(np.isfinite(W))
    with np.errstate(all="ignore"):
        if nll:
            logp = xm
        else:
            logp, _ = _log_softmax_parts(xm)
        if kind == "index":
            t64 = t.astype(np.int64) if t.dtype != np.uint64 else t.astype(np.int64)
            valid = t64 != ignore
            tt = np.where(valid, t64, 0)
            wt = np.where(valid, W[tt] if C else 0.0, 0.0)
            lt = np.take_along_axis(logp, tt[..., None], -1)[..., 0] if C else np.zeros(batch)
            main = -wt * lt
            mag = np.abs(wt) * (1 + _finite_or_zero(lt))
            if eps > 0 and C:
                smooth = -(W * logp).sum(-1)
                l = (1 - eps) * main + (eps / C) * smooth
                mag = mag + (eps / C) * (np.abs(W) * (1 + _finite_or_zero(logp))).sum(-1)
            else:
                l = main
            l = np.where(valid, l, 0.0)
            mag = np.where(valid, mag, 0.0)
            den = float(np.sum(wt))
        else:
            y = np.moveaxis(_as_f64(_cast(_as_f64(t), kdt)), ax, -1)
            loose_all = loose_all or not np.all(np.isfinite(y))
            wy = W * y
            term = np.where((wy == 0) & ~np.isnan(logp), 0.0, wy * logp)
            l = -(1 - eps) * term.sum(-1)
            mag = (1 - eps) * (np.abs(wy) * (1 + _finite_or_zero(logp))).sum(-1)
            if eps > 0 and C:
                l = l - (eps / C) * (W * logp).sum(-1)
                mag = mag + (eps / C) * (np.abs(W) * (1 + _finite_or_zero(logp))).sum(-1)
            den = float(math.prod(batch))
            valid = np.ones(batch, dtype=bool)
            if C == 0:
                # SPEC: l_i is an empty sum, 0; torch's mean over an empty
                # input is NaN, so a mean may be either
                if reduction == "mean" or KNOWN_BUG_PROB_TARGETS_NO_CLASSES:
                    ex.loss_loose = np.ones(batch if reduction == "none" else (),
                                            dtype=bool)
            elif KNOWN_BUG_PROB_ZERO_TARGETS_NAN_ROW and eps == 0:
                # all-zero target mass on a row whose log-probs are NaN (a NaN
                # or +inf logit, or all -inf): NaN expected, the kernel gives 0
                bad = np.all(wy == 0, axis=-1) & np.any(np.isnan(logp), axis=-1)
                if np.any(bad):
                    ex.loss_loose = bad if reduction == "none" else np.ones((), dtype=bool)

        if reduction == "none":
            ex.loss = l
            ex.loss_scale = np.maximum(1.0, mag)
            if kind == "index":
                ex.loss_exact_zero = ~valid
        elif reduction == "sum":
            ex.loss = np.sum(l)
            ex.loss_scale = max(1.0, float(np.sum(mag)))
        else:
            ex.loss = np.sum(l) / den if den != 0 else np.nan
            if den == 0 and not np.all(np.isnan(l) | (l == 0)):
                ex.loss_loose = np.ones((), dtype=bool)   # x/0 with x != 0: SPEC silent
            ex.loss_scale = max(1.0, float(np.sum(mag)) / abs(den)) if den else 1.0

        if want_grad:
            if isinstance(go, np.ndarray):
                s = go
                loose_all = loose_all or not np.all(np.isfinite(go))
            else:
                loose_all = loose_all or not math.isfinite(go)
                s = (go / den if den != 0 else np.nan) if reduction == "mean" else go
            s = np.broadcast_to(np.asarray(s, dtype=np.float64), batch)
            if nll:
                g = np.zeros(xm.shape)
                if C:
                    np.put_along_axis(g, tt[..., None], (-s * wt)[..., None], -1)
                gscale = np.abs(s) * np.abs(wt)
                exact = np.ones(xm.shape, dtype=bool)
                if C:
                    np.put_along_axis(exact, tt[..., None], ~valid[..., None], -1)
            else:
                p = np.exp(logp)
                if kind == "index":
                    A = (1 - eps) * wt + (eps / C if C else 0.0) * Wsum
                    g = A[..., None] * p - (eps / C if C else 0.0) * W
                    if C:
                        gt = np.take_along_axis(g, tt[..., None], -1)
                        np.put_along_axis(g, tt[..., None], gt - ((1 - eps) * wt)[..., None],
                                          -1)
                    g = s[..., None] * g
                    gscale = np.abs(s) * (np.abs(A) + np.abs(wt) + (
                        eps / C * np.max(np.abs(W)) if C else 0.0))
                    yterm = np.zeros(xm.shape)
                else:
                    A = (1 - eps) * wy.sum(-1) + (eps / C if C else 0.0) * Wsum
                    g = s[..., None] * (A[..., None] * p
                                        - W * ((1 - eps) * y + (eps / C if C else 0.0)))
                    gscale = np.abs(s) * (np.abs(A) + np.max(
                        np.abs(W) * (np.abs(y) + (eps / C if C else 0.0)), axis=-1,
                        initial=0.0))
                    yterm = wy
                # a masked class (-inf logit) gets an exactly-0 gradient when
                # nothing else (smoothing, a target there) pulls on it
                row_ok = np.all(~np.isnan(xm) & (xm != np.inf), axis=-1) & np.any(
                    xm != -np.inf, axis=-1) & np.isfinite(s)
                exact = (xm == -np.inf) & (eps == 0) & row_ok[..., None] & (yterm == 0)
                if kind == "index" and C:
                    at_target = np.zeros(xm.shape, dtype=bool)
                    np.put_along_axis(at_target, tt[..., None], True, -1)
                    exact &= ~at_target
            g = np.where(valid[..., None], g, 0.0)
            exact = exact | ~valid[..., None]
            ex.grad = np.moveaxis(g, -1, ax)
            ex.grad_scale = np.moveaxis(np.broadcast_to(
                np.maximum(1.0, _finite_or_zero(gscale))[..., None], xm.shape), -1, ax)
            ex.grad_exact_zero = np.moveaxis(exact, -1, ax)
    ex.all_loose = loose_all
    return ex


def _bad_targets(t, C, ignore):
    """Mask of targets that are neither a class index nor ignore_index."""
    if t.dtype == np.uint64:
        big = t > np.uint64(2**63 - 1)
        t64 = np.where(big, 0, t).astype(np.int64)
        return big | ((t64 != ignore) & ((t64 < 0) | (t64 >= C)))
    t64 = t.astype(np.int64)
    return (t64 != ignore) & ((t64 < 0) | (t64 >= C))


def reference_binary(logits, input, target, weight, pos_weight, red_kwargs, grad_output,
                     out, n_threads, want_grad):
    """SPEC §3.4 / §3.5 / §4 for the binary losses, float64."""
    if "reduction" in red_kwargs:
        r = red_kwargs["reduction"]
        reduction = r if r in ("mean", "sum", "none") else "mean"
        ex = Expect({ValueError} if r not in ("mean", "sum", "none") else set())
    else:
        sa, rd = red_kwargs["size_average"], red_kwargs["reduce"]
        sa = True if sa is None else sa
        rd = True if rd is None else rd
        reduction = "mean" if sa and rd else ("sum" if rd else "none")
        ex = Expect()
    ex.errors |= threads_error(n_threads)
    x_arr = np.asarray(input)
    rdt = _native(x_arr.dtype) if _is_float_input(x_arr.dtype) else None
    if rdt is None:
        ex.errors.add(TypeError)
    ex.result_dtype = rdt
    kdt = _kernel_dtype(x_arr.dtype) if rdt is not None else np.dtype(np.float64)
    shape = x_arr.shape
    ex.loss_shape = shape if reduction == "none" else ()
    ex.grad_shape = shape
    t = np.asarray(target)
    if t.dtype.kind != "f":
        ex.errors.add(TypeError)
    elif t.shape != shape:
        ex.errors.add(ValueError)
    if want_grad:
        ex.errors |= _out_errors(out, shape, rdt, input)
    ops = {}
    for name, val in (("weight", weight), ("pos_weight", pos_weight)):
        if val is None:
            continue
        a = np.asarray(val)
        if a.dtype.kind not in "biuf":
            ex.errors.add(TypeError)
            continue
        try:
            ops[name] = np.broadcast_to(_as_f64(_cast(_as_f64(a), kdt)), shape)
        except ValueError:
            ex.errors.add(ValueError)
    go_errs, go = _grad_output_errors(grad_output, shape, reduction) if want_grad else (
        set(), 1.0)
    ex.errors |= go_errs
    if rdt is not None and not logits:
        with np.errstate(all="ignore"):
            if not np.all((_as_f64(x_arr) >= 0) & (_as_f64(x_arr) <= 1)):
                ex.errors.add(ValueError)
            if t.dtype.kind == "f" and not np.all((_as_f64(t) >= 0) & (_as_f64(t) <= 1)):
                ex.errors.add(ValueError)
    if ex.errors:
        return ex

    x = _as_f64(x_arr)
    y = _as_f64(_cast(_as_f64(t), kdt))
    w = ops.get("weight", np.ones(shape))
    loose = ~np.isfinite(y) | ~np.isfinite(w)
    with np.errstate(all="ignore"):
        if logits:
            pw_k = _cast(ops["pos_weight"], kdt) if "pos_weight" in ops else None
            y_k = _cast(y, kdt)
            c_neg = _as_f64(kdt.type(1) - y_k)           # as the kernel forms them
            c_pos = _as_f64(pw_k * y_k) if pw_k is not None else y
            if pw_k is not None:
                loose |= ~np.isfinite(_as_f64(pw_k))
            sp_pos = np.logaddexp(0.0, x)
            sp_neg = np.logaddexp(0.0, -x)
            finite_or_inf = ~np.isnan(x)
            t1 = np.where((c_neg == 0) & finite_or_inf, 0.0, c_neg * sp_pos)
            t2 = np.where((c_pos == 0) & finite_or_inf, 0.0, c_pos * sp_neg)
            l = w * (t1 + t2)
            mag = np.abs(w) * (1 + _finite_or_zero(c_neg * sp_pos)
                               + _finite_or_zero(c_pos * sp_neg))
            if KNOWN_BUG_BCE_LOGITS_NAN_ZERO_COEFS:
                loose |= np.isnan(x) & (c_neg == 0) & (c_pos == 0)
            sig = np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))
            sig_neg = np.where(x >= 0, np.exp(-x) / (1 + np.exp(-x)), 1 / (1 + np.exp(x)))
            sig = np.where(x == -np.inf, 0.0, sig)
            sig_neg = np.where(x == np.inf, 0.0, sig_neg)
            d = c_neg * sig - c_pos * sig_neg
            dmag = np.abs(c_neg) * sig + np.abs(c_pos) * sig_neg
        else:
            lp = np.maximum(np.log(x), -100.0)
            lq = np.maximum(np.log1p(-x), -100.0)
            l = -w * (y * lp + (1 - y) * lq)
            mag = np.abs(w) * (1 + np.abs(y * lp) + np.abs((1 - y) * lq))
            if KNOWN_BUG_BCE_LOG1MP_PRECISION:
                # the kernel rounds 1 - p to the kernel dtype before its log
                ex.loss_extra_atol = 2 * np.finfo(kdt).eps * np.abs(w * (1 - y)) * (x < 0.5)
            den_b = np.maximum((1 - x) * x, float(np.float32(1e-12)))
            d = (x - y) / den_b
            dmag = (np.abs(x) + np.abs(y)) / den_b
        n = x.size
        if kdt != np.float64:
            # the kernel forms each element's loss in float32 (it may overflow
            # there) before adding them in float64
            big = np.abs(l) > 0.99 * float(np.finfo(kdt).max)
            if np.any(big & np.isfinite(l) & (np.abs(l) < 1.01 * float(np.finfo(kdt).max))):
                ex.all_loose = True
            l = _as_f64(l.astype(kdt))
        if reduction == "none":
            ex.loss = l
            ex.loss_scale = np.maximum(1.0, mag)
            ex.loss_loose = loose
        else:
            if np.any(loose):
                ex.all_loose = True
            if not np.ndim(ex.loss_extra_atol) == 0:
                ex.loss_extra_atol = float(np.sum(ex.loss_extra_atol))
            if reduction == "sum":
                ex.loss = np.sum(l)
                ex.loss_scale = max(1.0, float(np.sum(mag)))
            else:
                ex.loss = np.sum(l) / n if n else np.nan
                ex.loss_scale = max(1.0, float(np.sum(mag)) / n) if n else 1.0
                ex.loss_extra_atol = ex.loss_extra_atol / n if n else 0.0
        if want_grad:
            if isinstance(go, np.ndarray):
                s = go
            else:
                s = (go / n if n else np.nan) if reduction == "mean" else go
            s = np.broadcast_to(np.asarray(s, dtype=np.float64), shape)
            loose = loose | ~np.isfinite(s)
            ex.grad = s * w * d
            ex.grad_scale = np.maximum(1.0, _finite_or_zero(s * w * dmag))
            ex.grad_loose = loose
    return ex


def reference_softmax_family(what, input, axis, dim, n_threads):
    ex = Expect(threads_error(n_threads))
    x_arr = np.asarray(input)
    rdt = _native(x_arr.dtype) if _is_float_input(x_arr.dtype) else None
    if rdt is None:
        ex.errors.add(TypeError)
    ex.result_dtype = rdt
    errs, ax = _axis_errors(axis, dim, x_arr.ndim)
    ex.errors |= errs
    if ex.errors:
        return ex
    x = _as_f64(x_arr)
    xm = np.moveaxis(x, ax, -1)
    logp, lse = _log_softmax_parts(xm)
    with np.errstate(all="ignore"):
        if what == "logsumexp":
            has_nan = np.any(np.isnan(xm), axis=-1)
            has_inf = np.any(xm == np.inf, axis=-1)
            ex.loss = np.where(has_nan, np.nan, np.where(has_inf, np.inf, lse))
            ex.loss_shape = xm.shape[:-1]
            ex.loss_scale = np.maximum(1.0, _finite_or_zero(np.max(
                np.abs(np.where(np.isfinite(xm), xm, 0)), axis=-1, initial=0.0)))
            if KNOWN_BUG_LOGSUMEXP_NAN_WITH_INF:
                ex.loss_loose = has_nan & has_inf
        elif what == "log_softmax":
            ex.loss = np.moveaxis(logp, -1, ax)
            ex.loss_shape = x.shape
            ex.loss_scale = np.moveaxis(np.maximum(1.0, _finite_or_zero(logp)), -1, ax)
        else:
            ex.loss = np.moveaxis(np.exp(logp), -1, ax)
            ex.loss_shape = x.shape
    return ex


# --------------------------------------------------------------- checking --

def _snapshot(obj):
    if isinstance(obj, np.ndarray):
        return ("array", obj.copy(), obj.flags.writeable, obj.strides,
                obj.__array_interface__["data"][0])
    if isinstance(obj, np.generic):
        return ("scalar", obj.copy())
    return ("other", copy.deepcopy(obj))


def _unchanged(obj, snap) -> bool:
    kind = snap[0]
    if kind == "array":
        _, saved, writeable, strides, ptr = snap
        if obj.shape != saved.shape or obj.dtype != saved.dtype:
            return False
        if obj.flags.writeable != writeable or obj.strides != strides:
            return False
        if obj.dtype.kind == "O":
            return obj.tolist() == saved.tolist()
        return np.ascontiguousarray(obj).tobytes() == saved.tobytes()
    if kind == "scalar":
        return np.asarray(obj).tobytes() == np.asarray(snap[1]).tobytes()
    return obj == snap[1] or repr(obj) == repr(snap[1])


def _check_values(actual, expected, dtype, kind, scale=1.0, extra_atol=0.0, loose=None,
                  exact_zero=None, what=""):
    rtol, atol = tolerance(dtype, kind)
    a = np.asarray(actual).astype(np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), e.shape)
    extra = np.broadcast_to(np.asarray(extra_atol, dtype=np.float64), e.shape)
    ok_loose = (np.zeros(e.shape, dtype=bool) if loose is None
                else np.broadcast_to(loose, e.shape))
    with np.errstate(all="ignore"):
        if np.dtype(dtype) != np.float64:
            # results are rounded to the result dtype (overflowing to inf);
            # right at its limit rounding may go either way
            big = 0.99 * float(np.finfo(dtype).max)
            near_max = (np.abs(e) > big) & np.isfinite(e)
            ok_loose = ok_loose | (near_max & (np.abs(a) >= big) & (np.sign(a) == np.sign(e)))
            e = e.astype(dtype).astype(np.float64)
        same_nan = np.isnan(a) == np.isnan(e)
        same_inf = np.where(np.isinf(e) | np.isinf(a), a == e, True)
        close = np.abs(a - e) <= atol * scale + extra + rtol * np.abs(e)
        good = np.where(np.isfinite(e) & np.isfinite(a), close, same_nan & same_inf)
        good = good | ok_loose
    if not np.all(good):
        idx = np.argwhere(~good)[:5]
        details = [(tuple(int(i) for i in ix), a[tuple(ix)], e[tuple(ix)]) for ix in idx]
        raise AssertionError(f"{what}: {int(np.sum(~good))} of {e.size} values differ "
                             f"from the reference (index, fastce, reference): {details}")
    if exact_zero is not None:
        ez = np.broadcast_to(exact_zero, e.shape)
        bad = ez & (a != 0)
        if np.any(bad):
            idx = np.argwhere(bad)[:5]
            raise AssertionError(f"{what}: values that must be exactly 0 are not: "
                                 f"{[(tuple(map(int, i)), a[tuple(i)]) for i in idx]}")


def _check_result_type(res, ex: Expect, what):
    rdt = ex.result_dtype
    shape = tuple(ex.loss_shape)
    if shape == ():
        assert isinstance(res, (np.generic, np.ndarray)), (what, type(res))
        assert np.ndim(res) == 0, (what, np.shape(res))
    else:
        assert isinstance(res, np.ndarray), (what, type(res))
        assert res.shape == shape, (what, res.shape, shape)
    assert res.dtype == rdt, (what, res.dtype, rdt)


def run_and_check(call, ex: Expect, args_to_watch, out=None, out_is_input=False,
                  describe="", arch=None):
    """Call, then check the outcome against ``ex`` and that no watched
    argument changed (``out`` only when the call raised)."""
    snaps = [(name, obj, _snapshot(obj)) for name, obj in args_to_watch]
    out_snap = _snapshot(out) if isinstance(out, np.ndarray) else None
    try:
        with warnings.catch_warnings(), simd_variant(arch or _runtime.arch_name()):
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = call()
    except SPEC_ERRORS as exc:
        event(f"raised {type(exc).__name__}")
        if not ex.errors:
            raise AssertionError(f"{describe}\nraised {type(exc).__name__}: {exc}\n"
                                 "but the reference accepts this input") from exc
        assert isinstance(exc, tuple(ex.errors)), (
            f"{describe}\nraised {type(exc).__name__}: {exc}; expected one of "
            f"{sorted(e.__name__ for e in ex.errors)}")
        for name, obj, snap in snaps:
            assert _unchanged(obj, snap), f"{describe}\n{name} was modified by a failing call"
        if out_snap is not None:
            assert _unchanged(out, out_snap), f"{describe}\nout was written by a failing call"
        return None
    except Exception as exc:  # noqa: BLE001 -- any other type is the failure
        raise AssertionError(f"{describe}\nraised {type(exc).__name__}: {exc}, which is "
                             "not a SPEC section 4 exception") from exc
    event("returned a result" + (" (values not compared)" if ex.all_loose else ""))
    assert not ex.errors, (f"{describe}\nreturned a result, expected one of "
                           f"{sorted(e.__name__ for e in ex.errors)}")
    for name, obj, snap in snaps:
        if out_is_input and name == "input":
            continue
        assert _unchanged(obj, snap), f"{describe}\n{name} was modified"
    return result


def check_loss_and_grad(result, ex: Expect, want_grad, out, describe, kind="loss"):
    if want_grad:
        assert isinstance(result, tuple) and len(result) == 2, describe
        loss, grad = result
    else:
        loss, grad = result, None
    _check_result_type(loss, ex, describe)
    if not ex.all_loose:
        _check_values(loss, ex.loss, ex.result_dtype, kind, ex.loss_scale,
                      ex.loss_extra_atol, ex.loss_loose, ex.loss_exact_zero,
                      what=f"{describe}\nloss")
    if want_grad:
        assert isinstance(grad, np.ndarray), describe
        assert grad.shape == tuple(ex.grad_shape), (describe, grad.shape)
        assert grad.dtype == ex.result_dtype, (describe, grad.dtype)
        if out is not None:
            assert grad is out, f"{describe}\nthe gradient is not the out= array"
        if not ex.all_loose:
            _check_values(grad, ex.grad, ex.result_dtype, "grad", ex.grad_scale, 0.0,
                          ex.grad_loose, ex.grad_exact_zero, what=f"{describe}\ngrad")


def _describe(name, **kw):
    parts = []
    for k, v in kw.items():
        if isinstance(v, np.ndarray):
            parts.append(f"{k}=array(shape={v.shape}, dtype={v.dtype}, strides={v.strides}, "
                         f"writeable={v.flags.writeable}, aligned={v.flags.aligned})")
        elif isinstance(v, list):
            parts.append(f"{k}=list(shape={np.shape(v)})")
        else:
            parts.append(f"{k}={v!r}")
    return f"{name}(" + ", ".join(parts) + ")"


# ------------------------------------------------------------ out= drawing --

def draw_out(data, rng, input, x_arr, rdt, others, ok):
    """out=: none, a fresh array, the input itself, or something wrong
    (shape, dtype, order, read-only, a list, a view overlapping the input,
    another argument of the call)."""
    kind = data.draw(st.sampled_from(
        ["none"] * 6 + ["fresh"] * 3 + ["input"] * 2
        + ([] if ok else ["wrong_shape", "wrong_dtype", "fortran", "readonly", "list",
                          "overlap", "other_arg"])), label="out")
    shape = x_arr.shape
    dt = rdt if rdt is not None else np.dtype(np.float64)
    if kind == "none":
        return None
    if kind == "fresh":
        return np.full(shape, 7.0, dtype=dt)
    if kind == "input":
        return input
    if kind == "wrong_shape":
        return np.zeros(shape + (1,), dtype=dt)
    if kind == "wrong_dtype":
        return np.zeros(shape, dtype=np.float32 if dt != np.float32 else np.float64)
    if kind == "fortran":
        return np.asfortranarray(np.zeros(shape + (2,), dtype=dt))[..., 0] if shape else \
            np.zeros(shape, dtype=dt)
    if kind == "readonly":
        a = np.zeros(shape, dtype=dt)
        a.flags.writeable = False
        return a
    if kind == "list":
        return np.zeros(shape).tolist()
    if kind == "overlap":
        if isinstance(input, np.ndarray) and input.ndim and input.size > 1 and \
                input.flags.writeable:
            rev = (slice(None, None, -1),) * input.ndim
            return input[rev]
        return np.zeros(shape, dtype=dt)
    # other_arg: an argument of the same shape and dtype (target, weight, ...)
    for cand in others:
        if isinstance(cand, np.ndarray) and cand.shape == shape and cand.dtype == dt:
            return cand
    return np.zeros(shape, dtype=dt)


def draw_grad_output(data, rng, loss_shape, ok):
    kind = data.draw(st.sampled_from(["none"] * 5 + ["scalar", "np_scalar", "zero_d",
                                                     "array", "array", "special"]
                                     + ([] if ok else ["wrong_shape", "complex"])),
                     label="grad_output")
    if kind == "none":
        return None
    if kind == "scalar":
        return float(rng.normal() * 3)
    if kind == "np_scalar":
        return np.float32(rng.normal())
    if kind == "zero_d":
        return np.array(rng.normal() * 10)
    if kind == "array":
        g = rng.normal(size=loss_shape)
        if rng.random() < 0.3:
            g = g.astype(np.float32)
        return present(data, rng, np.asarray(g), "grad_output", allow_list=True)
    if kind == "wrong_shape":
        return np.ones(tuple(loss_shape) + (2,))
    if kind == "complex":
        return np.ones(loss_shape, dtype=complex)
    return data.draw(st.sampled_from([np.nan, np.inf, 0.0, -2.5]), label="go special")


# ------------------------------------------------------------------- tests --

def _class_inputs(data, nll):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    # most examples are valid calls (every argument drawn from valid values);
    # the rest draw every argument from valid and invalid values alike
    ok = data.draw(st.integers(0, 9), label="valid call") < 7
    shape = draw_shape(data, min_ndim=1 if ok else 0, max_ndim=4)
    x_dtype = _draw_dtype(data, "input", VALID_FLOATS, ok)
    nd = len(shape)
    valid_axes = [0, -1] if nd == 1 else list(range(-nd, nd))
    axis = data.draw(st.sampled_from([None] * 8 + valid_axes + ["dim"]
                                     + ([] if ok else [5, -6, 1.0, True])), label="axis")
    dim = None
    if axis == "dim":
        axis, dim = None, data.draw(st.sampled_from(valid_axes or [0]), label="dim")
    ax_guess = (0 if nd == 1 else 1) if axis is None and dim is None else (
        dim if dim is not None else axis)
    if isinstance(ax_guess, (int, np.integer)) and not isinstance(ax_guess, bool) and \
            nd and -nd <= ax_guess < nd:
        ax = ax_guess % nd
        C = shape[ax]
        batch = shape[:ax] + shape[ax + 1:]
    else:
        ax, C, batch = None, (shape[1] if nd > 1 else (shape[0] if nd else 3)), shape[1:]

    xv = float_values(data, rng, shape, "input")
    x_values = _cast(xv, x_dtype)
    x = present(data, rng, x_values, "input")

    # targets
    ignore_index = data.draw(st.sampled_from(
        [-100] * 6 + [-1, 0, 2, 255, 2**40, -2**40, np.int64(-100), np.int32(1)]
        + ([] if ok else [2**63, -2**63 - 1, 1.0, True])), label="ignore_index")
    t_kind = data.draw(st.sampled_from(["index"] * 6 + ["prob"] * (0 if nll else 3)
                                       + ([] if ok else ["wrong_shape", "input_shape_int",
                                                         "bad_dtype"])),
                       label="target kind")
    if t_kind == "prob" and ok and not isinstance(ignore_index, bool) and ignore_index >= 0:
        ignore_index = -100
    if t_kind == "prob":
        p_mode = data.draw(st.sampled_from(["softmax", "onehot", "uniform", "zeros",
                                            "special"]), label="prob mode")
        if p_mode == "softmax":
            tv = rng.random(size=shape)
            tv = tv / np.maximum(tv.sum(axis=ax if ax is not None else -1, keepdims=True),
                                 1e-300) if nd else tv
        elif p_mode == "onehot":
            tv = (rng.random(size=shape) < 0.2).astype(float)
        elif p_mode == "uniform":
            tv = rng.uniform(-0.5, 1.5, size=shape)
        elif p_mode == "zeros":
            tv = np.zeros(shape)
        else:
            tv = np.where(rng.random(size=shape) < 0.2, np.nan, rng.random(size=shape))
        t_dtype = data.draw(st.sampled_from(VALID_FLOATS + SWAPPED_FLOATS[:1]),
                            label="prob dtype")
        t = present(data, rng, _cast(tv, t_dtype), "target")
    else:
        tshape = batch if t_kind != "wrong_shape" else tuple(batch) + (2,)
        if t_kind == "input_shape_int":
            tshape = shape
        mode = data.draw(st.sampled_from(["valid"] * 4 + ["ignore"] * 2
                                         + ([] if ok else ["oob", "huge"])),
                         label="target values")
        tv = rng.integers(0, max(C, 1), size=tshape).astype(np.float64)
        if mode == "ignore" and not isinstance(ignore_index, (bool, float)):
            tv = np.where(rng.random(size=tshape) < 0.4, float(int(ignore_index)), tv)
        elif mode == "oob":
            tv = np.where(rng.random(size=tshape) < 0.1,
                          rng.choice([-1.0, float(C), float(C + 7), -2.0], size=tshape), tv)
        elif mode == "huge":
            tv = np.where(rng.random(size=tshape) < 0.1, 2.0**32 + 1, tv)
        if t_kind == "bad_dtype":
            t_dtype = data.draw(st.sampled_from(
                [np.dtype(np.bool_), np.dtype(object), np.dtype("U5"), np.dtype(complex),
                 np.dtype(np.float32), np.dtype("datetime64[s]")]), label="bad target dtype")
        else:
            t_dtype = data.draw(st.sampled_from(
                [np.dtype(np.int64)] * 4 + [np.dtype(np.int32)] * 2 + INT_DTYPES
                + SWAPPED_INTS), label="target dtype")
        if t_dtype.kind in "iu" and mode == "huge":
            # exact big values (float64 rounding would hide them)
            big = tv >= 2.0**32
            fill = 2**32 + 1 if t_dtype.itemsize == 8 else int(np.iinfo(t_dtype).max)
            t_values = np.where(big, np.array(fill, dtype=t_dtype),
                                _cast(np.where(big, 0, tv), t_dtype)).astype(t_dtype)
        else:
            t_values = _cast(tv, t_dtype)
        t = present(data, rng, t_values, "target")

    # weight
    w_kind = data.draw(st.sampled_from(["none"] * 5 + ["valid"] * 3 + ["special", "int"]
                                       + ([] if ok else ["wrong_shape", "bad_dtype"])),
                       label="weight")
    weight = None
    if w_kind in ("valid", "special", "int"):
        wv = rng.uniform(0, 3, size=C)
        wv[rng.random(size=C) < 0.2] = 0.0
        if w_kind == "special" and C:
            wv[int(rng.integers(C))] = rng.choice([np.nan, np.inf, -1.0, 1e3])
        w_dtype = np.dtype(np.int16) if w_kind == "int" else data.draw(
            st.sampled_from(VALID_FLOATS + [np.dtype(np.bool_)]), label="weight dtype")
        weight = present(data, rng, _cast(wv, w_dtype), "weight")
    elif w_kind == "wrong_shape":
        weight = np.ones((C + 1,) if data.draw(st.booleans(), label="w1") else (1, C))
    elif w_kind == "bad_dtype":
        weight = np.ones(C, dtype=data.draw(st.sampled_from([complex, object, "U3"]),
                                            label="bad weight dtype"))

    eps = 0.0 if nll else data.draw(st.sampled_from(
        [0.0] * 6 + [0.1, 0.5, 1.0, 1e-7, np.float32(0.25)]
        + ([] if ok else [-0.1, 1.5, float("nan"), "0.2", None])),
        label="label_smoothing")
    red_kwargs, reduction, _ = draw_reduction(data, ok)
    n_threads = draw_threads(data, ok)
    return dict(ok=ok, rng=rng, x=x, t=t, weight=weight, ignore_index=ignore_index, eps=eps,
                red_kwargs=red_kwargs, reduction=reduction, axis=axis, dim=dim,
                n_threads=n_threads, batch=batch)


def _ax_kwargs(axis, dim):
    kw = {}
    if axis is not None:
        kw["axis"] = axis
    if dim is not None:
        kw["dim"] = dim
    return kw


@pytest.mark.parametrize("nll", [False, True], ids=["cross_entropy", "nll_loss"])
@FUZZ
@given(data=st.data())
def test_class_losses_match_the_reference_or_raise_a_spec_error(nll, data):
    c = _class_inputs(data, nll)
    rng = c["rng"]
    api = data.draw(st.sampled_from(["function", "function_and_grad", "object",
                                     "object_and_grad"]), label="api")
    want_grad = api.endswith("_and_grad")
    x = c["x"]
    x_arr = np.asarray(x)
    rdt = _native(x_arr.dtype) if _is_float_input(x_arr.dtype) else None
    go = out = None
    if want_grad:
        go = draw_grad_output(data, rng, c["batch"], c["ok"])
        out = draw_out(data, rng, x, x_arr, rdt, [c["weight"], c["t"]], c["ok"])
    out_aliases_weight = (out is not None and isinstance(c["weight"], np.ndarray)
                          and out is c["weight"])
    if out is not None and out is c["t"]:
        pass  # a probability target used as out: correct result or ValueError
    t_dt = np.asarray(c["t"]).dtype
    event(f"{'probability' if t_dt.kind == 'f' else 'index'} targets, "
          f"{'with' if c['eps'] not in (0, 0.0) else 'no'} label smoothing")
    ex = reference_class_loss(nll, x, c["t"], c["weight"], c["ignore_index"],
                              c["red_kwargs"], c["eps"], c["axis"], c["dim"], go, out,
                              c["n_threads"], want_grad)
    if out_aliases_weight and not ex.errors and KNOWN_BUG_OUT_ALIASES_WEIGHT:
        ex.all_loose = True
    if out is not None and not ex.errors and (out is c["t"] or out is c["weight"]) and \
            out is not x:
        # out= shares memory with another argument: a correct result or a ValueError
        ex.errors_ok_alias = True
    name = ("nll_loss" if nll else "cross_entropy") + ("_and_grad" if want_grad else "")
    kw = dict(weight=c["weight"], ignore_index=c["ignore_index"], **c["red_kwargs"],
              **_ax_kwargs(c["axis"], c["dim"]))
    if not nll:
        kw["label_smoothing"] = c["eps"]
    arch = draw_arch(data)
    describe = f"[SIMD {arch}] " + _describe(name, input=x, target=c["t"], grad_output=go,
                                             out=out, n_threads=c["n_threads"], **kw)

    if api.startswith("object"):
        cls = fastce.NLLLoss if nll else fastce.CrossEntropyLoss
        describe = f"[{cls.__name__}] " + describe

        def call():
            obj = cls(**kw)
            if want_grad:
                return obj.loss_and_grad(x, c["t"], go, out, n_threads=c["n_threads"])
            return obj(x, c["t"], n_threads=c["n_threads"])
    else:
        fn = getattr(fastce, name)

        def call():
            extra = dict(grad_output=go, out=out) if want_grad else {}
            return fn(x, c["t"], n_threads=c["n_threads"], **kw, **extra)

    watch = [("input", x), ("target", c["t"]), ("weight", c["weight"]),
             ("grad_output", go)]
    if out is not None and out is not x:
        watch = [(n, o) for n, o in watch if o is not out]
    if getattr(ex, "errors_ok_alias", False):
        ex.errors = set()
        try:
            result = run_and_check(call, ex, watch, out=out, out_is_input=out is x,
                                   describe=describe, arch=arch)
        except AssertionError as err:
            if isinstance(err.__cause__, ValueError):
                return  # refusing the aliasing out= is fine
            raise
    else:
        result = run_and_check(call, ex, watch, out=out, out_is_input=out is x,
                               describe=describe, arch=arch)
    if result is not None:
        check_loss_and_grad(result, ex, want_grad, out, describe)


def _broadcastable_operand(data, rng, shape, label, ok):
    kind = data.draw(st.sampled_from(["none"] * 5 + ["full", "last", "row", "scalar",
                                                     "special"]
                                     + ([] if ok else ["wrong", "bad_dtype", "bigger"])),
                     label=label)
    if kind == "none":
        return None
    nd = len(shape)
    if kind == "full":
        s = shape
    elif kind == "last":
        s = shape[-1:] if nd else ()
    elif kind == "row":
        s = (shape[0],) + (1,) * (nd - 1) if nd else ()
    elif kind == "scalar":
        s = ()
    elif kind == "bigger":
        s = (2,) + tuple(shape)
    elif kind == "wrong":
        s = (shape[-1] + 1,) if nd else (2,)
    elif kind == "bad_dtype":
        return np.ones(shape[-1:] if nd else (), dtype=data.draw(
            st.sampled_from([complex, object, "U3"]), label=f"{label} bad dtype"))
    else:
        s = shape[-1:] if nd else ()
    v = rng.uniform(0, 3, size=s)
    if kind == "special" and v.size:
        v.flat[int(rng.integers(v.size))] = rng.choice([0.0, np.nan, np.inf, -1.0])
    dt = data.draw(st.sampled_from(VALID_FLOATS + [np.dtype(np.int8), np.dtype(np.bool_)]),
                   label=f"{label} dtype")
    return present(data, rng, _cast(v, dt), label)


@pytest.mark.parametrize("logits", [True, False], ids=["with_logits", "probabilities"])
@FUZZ
@given(data=st.data())
def test_binary_losses_match_the_reference_or_raise_a_spec_error(logits, data):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    ok = data.draw(st.integers(0, 9), label="valid call") < 7
    shape = draw_shape(data, min_ndim=0, max_ndim=4)
    x_dtype = _draw_dtype(data, "input", VALID_FLOATS, ok)
    if logits:
        xv = float_values(data, rng, shape, "input")
    else:
        xv = rng.random(size=shape)
        mode = data.draw(st.sampled_from(["plain"] * 4 + ["ends", "tiny"]
                                         + ([] if ok else ["invalid"])),
                         label="prob values")
        if mode == "ends":
            xv = np.where(rng.random(size=shape) < 0.3, rng.choice([0.0, 1.0], size=shape), xv)
        elif mode == "tiny":
            xv = np.where(rng.random(size=shape) < 0.5, 10.0 ** rng.uniform(-30, -3, shape),
                          1 - 10.0 ** rng.uniform(-8, -1, shape))
        elif mode == "invalid" and xv.size:
            xv.flat[int(rng.integers(xv.size))] = rng.choice([-0.1, 1.1, np.nan, np.inf])
    x = present(data, rng, _cast(xv, x_dtype), "input")
    x_arr = np.asarray(x)
    rdt = _native(x_arr.dtype) if _is_float_input(x_arr.dtype) else None

    t_mode = data.draw(st.sampled_from(["prob"] * 5 + ["binary"]
                                       + (["outside", "special"] if logits else [])
                                       + ([] if ok else ["outside", "special", "int",
                                                         "wrong_shape", "bad_dtype"])),
                       label="target")
    tshape = shape if t_mode != "wrong_shape" else tuple(shape) + (1,)
    tv = rng.random(size=tshape)
    if t_mode == "binary":
        tv = np.round(tv)
    elif t_mode == "outside":
        tv = rng.uniform(-1, 2, size=tshape)
    elif t_mode == "special" and tv.size:
        tv.flat[int(rng.integers(tv.size))] = rng.choice([np.nan, np.inf, -np.inf])
    if t_mode == "int":
        t_dtype = data.draw(st.sampled_from(INT_DTYPES), label="int target dtype")
    elif t_mode == "bad_dtype":
        t_dtype = data.draw(st.sampled_from(OTHER_DTYPES), label="bad target dtype")
    else:
        t_dtype = data.draw(st.sampled_from(VALID_FLOATS + SWAPPED_FLOATS), label="t dtype")
    t = present(data, rng, _cast(tv, t_dtype), "target")

    weight = _broadcastable_operand(data, rng, shape, "weight", ok)
    pos_weight = _broadcastable_operand(data, rng, shape, "pos_weight", ok) \
        if logits else None
    red_kwargs, reduction, _ = draw_reduction(data, ok)
    n_threads = draw_threads(data, ok)
    api = data.draw(st.sampled_from(["function", "function_and_grad", "object",
                                     "object_and_grad"]), label="api")
    want_grad = api.endswith("_and_grad")
    go = out = None
    if want_grad:
        go = draw_grad_output(data, rng, shape, ok)
        out = draw_out(data, rng, x, x_arr, rdt, [t, weight, pos_weight, go], ok)
    ex = reference_binary(logits, x, t, weight, pos_weight, red_kwargs, go, out,
                          n_threads, want_grad)
    name = ("binary_cross_entropy_with_logits" if logits else "binary_cross_entropy") + (
        "_and_grad" if want_grad else "")
    kw = dict(weight=weight, **red_kwargs)
    if logits:
        kw["pos_weight"] = pos_weight
    arch = draw_arch(data)
    describe = f"[SIMD {arch}] " + _describe(name, input=x, target=t, grad_output=go,
                                             out=out, n_threads=n_threads, **kw)
    if api.startswith("object"):
        cls = fastce.BCEWithLogitsLoss if logits else fastce.BCELoss
        describe = f"[{cls.__name__}] " + describe

        def call():
            obj = cls(**kw)
            if want_grad:
                return obj.loss_and_grad(x, t, go, out, n_threads=n_threads)
            return obj(x, t, n_threads=n_threads)
    else:
        fn = getattr(fastce, name)

        def call():
            extra = dict(grad_output=go, out=out) if want_grad else {}
            return fn(x, t, n_threads=n_threads, **kw, **extra)

    watch = [("input", x), ("target", t), ("weight", weight), ("pos_weight", pos_weight),
             ("grad_output", go)]
    alias = out is not None and out is not x and any(out is o for _, o in watch)
    watch = [(n, o) for n, o in watch if not (out is not None and o is out and n != "input")]
    if alias:
        # out= is another argument: a correct result (inputs read before the
        # gradient is written) or a ValueError
        try:
            result = run_and_check(call, Expect(), watch, out=out, describe=describe,
                                   arch=arch)
        except AssertionError as err:
            if isinstance(err.__cause__, ValueError) and not ex.errors:
                return
            if ex.errors and isinstance(err.__cause__, tuple(ex.errors)):
                return
            raise
        assert not ex.errors, describe
    else:
        result = run_and_check(call, ex, watch, out=out, out_is_input=out is x,
                               describe=describe, arch=arch)
    if result is not None:
        check_loss_and_grad(result, ex, want_grad, out, describe)


@pytest.mark.parametrize("what", ["log_softmax", "softmax", "logsumexp"])
@FUZZ
@given(data=st.data())
def test_softmax_family_matches_the_reference_or_raises_a_spec_error(what, data):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    ok = data.draw(st.integers(0, 9), label="valid call") < 7
    shape = draw_shape(data, min_ndim=1 if ok else 0, max_ndim=4)
    x_dtype = _draw_dtype(data, "input", VALID_FLOATS, ok)
    x = present(data, rng, _cast(float_values(data, rng, shape, "input"), x_dtype), "input")
    nd = len(shape)
    valid_axes = [0, -1] if nd == 1 else list(range(-nd, nd))
    axis = data.draw(st.sampled_from([None] * 6 + valid_axes + ["dim"]
                                     + ([] if ok else [nd, -nd - 1, 1.5, False])),
                     label="axis")
    dim = None
    if axis == "dim":
        axis, dim = None, data.draw(st.sampled_from(valid_axes or [0]), label="dim")
    n_threads = draw_threads(data, ok)
    ex = reference_softmax_family(what, x, axis, dim, n_threads)
    fn = getattr(fastce, what)
    kw = _ax_kwargs(axis, dim)
    positional = data.draw(st.booleans(), label="positional axis") and "axis" in kw
    arch = draw_arch(data)
    describe = f"[SIMD {arch}] " + _describe(what, input=x, n_threads=n_threads, **kw)

    def call():
        if positional:
            return fn(x, kw["axis"], n_threads=n_threads)
        return fn(x, n_threads=n_threads, **kw)

    result = run_and_check(call, ex, [("input", x)], describe=describe, arch=arch)
    if result is not None:
        check_loss_and_grad(result, ex, False, None, describe,
                            kind="grad" if what == "softmax" else "loss")


# --------------------------------------------- the reference is the SPEC's --

def test_reference_reproduces_the_spec_worked_example():
    """SPEC §3.6, so the fuzz reference itself is anchored."""
    x = np.array([[1., 2., 3.], [1., 2., 3.]])
    ex = reference_class_loss(False, x, np.array([1, 2]), np.array([1., 1., 1.]), -100,
                              dict(reduction="mean"), 0.0, None, None, None, None, None,
                              False)
    assert abs(ex.loss - 0.9076) < 1e-4
    ex = reference_class_loss(False, x, np.array([1, 2]), np.array([1., 10., 1.]), -100,
                              dict(reduction="mean"), 0.0, None, None, None, None, None,
                              False)
    assert abs(ex.loss - 1.3167) < 1e-4


def test_reference_agrees_with_torch_on_finite_inputs():
    """The float64 reference against PyTorch on finite data (where fastce is
    documented to agree with it)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 5, 3)) * 4
    t = rng.integers(0, 5, size=(6, 3))
    t[0, 0] = -100
    w = rng.uniform(0, 2, size=5)
    go = rng.normal(size=(6, 3))
    for eps in (0.0, 0.3):
        ex = reference_class_loss(False, x, t, w, -100, dict(reduction="none"), eps, None,
                                  None, go, None, None, True)
        xt = torch.tensor(x, requires_grad=True)
        loss = F.cross_entropy(xt, torch.tensor(t), weight=torch.tensor(w),
                               reduction="none", label_smoothing=eps)
        loss.backward(torch.tensor(go))
        np.testing.assert_allclose(ex.loss, loss.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ex.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    y = rng.random(size=(6, 5, 3))
    ex = reference_class_loss(False, x, y, w, -100, dict(reduction="mean"), 0.2, -2,
                              None, 2.0, None, None, True)
    xt = torch.tensor(x, requires_grad=True)
    loss = F.cross_entropy(torch.movedim(xt, 1, 1), torch.tensor(y), weight=torch.tensor(w),
                           label_smoothing=0.2)
    (loss * 2.0).backward()
    np.testing.assert_allclose(ex.loss, loss.item(), rtol=1e-12)
    np.testing.assert_allclose(ex.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    ex = reference_class_loss(True, x, t, w, -100, dict(reduction="sum"), 0.0, None, None,
                              None, None, None, True)
    xt = torch.tensor(x, requires_grad=True)
    loss = F.nll_loss(xt, torch.tensor(t), weight=torch.tensor(w), reduction="sum")
    loss.backward()
    np.testing.assert_allclose(ex.loss, loss.item(), rtol=1e-12)
    np.testing.assert_allclose(ex.grad, xt.grad.numpy(), rtol=1e-12, atol=0)
    yb = rng.random(size=(6, 5))
    xb = rng.normal(size=(6, 5)) * 5
    pw = rng.uniform(0.5, 2, size=5)
    wb = rng.uniform(0, 2, size=(6, 1))
    ex = reference_binary(True, xb, yb, wb, pw, dict(reduction="mean"), 1.5, None, None, True)
    xt = torch.tensor(xb, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(xt, torch.tensor(yb), weight=torch.tensor(wb),
                                              pos_weight=torch.tensor(pw))
    (loss * 1.5).backward()
    np.testing.assert_allclose(ex.loss, loss.item(), rtol=1e-12)
    np.testing.assert_allclose(ex.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    pb = np.clip(rng.random(size=(6, 5)), 1e-3, 1 - 1e-3)
    pb[0, 0], pb[0, 1] = 0.0, 1.0
    ex = reference_binary(False, pb, yb, wb, None, dict(reduction="none"), None, None, None,
                          True)
    pt = torch.tensor(pb, requires_grad=True)
    loss = F.binary_cross_entropy(pt, torch.tensor(yb), weight=torch.tensor(wb),
                                  reduction="none")
    loss.backward(torch.ones_like(loss))
    np.testing.assert_allclose(ex.loss, loss.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ex.grad, pt.grad.numpy(), rtol=1e-10)
    for what in ("log_softmax", "softmax", "logsumexp"):
        ex = reference_softmax_family(what, x, -1, None, None)
        ref = getattr(torch, what)(torch.tensor(x), -1).numpy()
        np.testing.assert_allclose(ex.loss, ref, rtol=1e-12, atol=1e-15)


# ---------------------------------------- regression tests for known bugs --
# Each is a minimal reproducer of a kernel bug found by the fuzzer and
# reported to the kernel owner.  strict=True: when the fix lands the test
# XPASSes, which fails the run -- then remove the marker and flip the matching
# KNOWN_BUG_* switch above so the fuzzer checks those inputs strictly again.

@pytest.mark.xfail(KNOWN_BUG_LOGSUMEXP_NAN_WITH_INF, strict=True,
                   reason="kernel bug: logsumexp of a row holding NaN and +inf gives +inf")
def test_logsumexp_of_a_row_with_nan_and_inf_is_nan():
    assert np.isnan(fastce.logsumexp(np.array([np.nan, np.inf])))
    assert np.isnan(fastce.logsumexp(np.array([np.inf, 1.0, np.nan], dtype=np.float32)))


@pytest.mark.xfail(KNOWN_BUG_BCE_LOGITS_NAN_ZERO_COEFS, strict=True,
                   reason="kernel bug: NaN logit with y=1, pos_weight=0 gives loss 0")
def test_bce_with_logits_propagates_nan_logits_with_zero_pos_weight():
    loss = fastce.binary_cross_entropy_with_logits(np.array([np.nan]), np.array([1.0]),
                                                   pos_weight=np.array([0.0]),
                                                   reduction="none")
    assert np.isnan(loss[0])


@pytest.mark.xfail(KNOWN_BUG_BCE_LOG1MP_PRECISION, strict=True,
                   reason="kernel bug: binary_cross_entropy uses log(1 - p), not log1p(-p)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_of_small_probabilities_is_accurate(dtype):
    p = np.array([1e-6, 3e-7, 1e-4, 1e-10], dtype=dtype)
    y = np.zeros_like(p)
    got = fastce.binary_cross_entropy(p, y, reduction="none")
    expected = -np.log1p(-p.astype(np.float64))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got.astype(np.float64), expected, rtol=rtol, atol=0)


@pytest.mark.xfail(KNOWN_BUG_PROB_ZERO_TARGETS_NAN_ROW, strict=True,
                   reason="kernel bug: probability targets that are all 0 on a row of "
                          "NaN log-probabilities give loss 0 (torch: NaN)")
@pytest.mark.parametrize("bad_logit", [np.nan, np.inf, "all -inf"])
def test_zero_probability_targets_on_a_nan_row_give_nan(bad_logit):
    x = np.zeros((2, 4), dtype=np.float32)
    if bad_logit == "all -inf":
        x[0] = -np.inf
    else:
        x[0, 1] = bad_logit
    y = np.zeros((2, 4), dtype=np.float32)
    loss = fastce.cross_entropy(x, y, reduction="none")
    assert np.isnan(loss[0]) and loss[1] == 0


@pytest.mark.xfail(KNOWN_BUG_PROB_TARGETS_NO_CLASSES, strict=True,
                   reason="kernel bug: probability targets over an empty class axis "
                          "give NaN (0 * -inf), torch and the SPEC formula give 0")
def test_probability_targets_over_an_empty_class_axis_give_zero_losses():
    loss = fastce.cross_entropy(np.zeros((2, 0)), np.zeros((2, 0)), reduction="none")
    np.testing.assert_array_equal(loss, [0.0, 0.0])
    assert fastce.cross_entropy(np.zeros((2, 0)), np.zeros((2, 0)), reduction="sum") == 0


@pytest.mark.xfail(KNOWN_BUG_OUT_ALIASES_WEIGHT, strict=True,
                   reason="out= sharing memory with weight= / pos_weight= corrupts the "
                          "gradient (the kernels read them after writing the gradient)")
@pytest.mark.parametrize("fn", ["cross_entropy_and_grad", "nll_loss_and_grad"])
def test_out_sharing_memory_with_weight_is_refused_or_correct(fn):
    x = np.array([1.0, 2.0, 3.0])
    w = np.array([1.0, 2.0, 3.0])
    _, expected = getattr(fastce, fn)(x, np.array(2), weight=w.copy())
    try:
        _, got = getattr(fastce, fn)(x, np.array(2), weight=w, out=w)
    except ValueError:
        return
    np.testing.assert_array_equal(got, expected)


@pytest.mark.xfail(KNOWN_BUG_OUT_ALIASES_WEIGHT, strict=True,
                   reason="out= sharing memory with pos_weight= corrupts the gradient")
def test_out_sharing_memory_with_pos_weight_is_refused_or_correct():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3))
    y = rng.random(size=(4, 3))
    out = np.ones((4, 3))
    pos_weight = out[0]          # a view of out's first row
    _, expected = fastce.binary_cross_entropy_with_logits_and_grad(
        x, y, pos_weight=pos_weight.copy())
    try:
        _, got = fastce.binary_cross_entropy_with_logits_and_grad(
            x, y, pos_weight=pos_weight, out=out)
    except ValueError:
        return
    np.testing.assert_array_equal(got, expected)


# ------------------------- regression tests for input normalisation bugs --
# found by the fuzzer and fixed in fastce/_validation.py

def _unaligned(a):
    """A copy of ``a`` in a buffer at an odd address (flags.aligned False)."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def test_byte_swapped_int64_targets_are_range_checked_not_truncated():
    """'>i8' targets used to go through int32: 2**32 + 1 became class 1."""
    x = np.zeros((2, 3))
    swapped = np.array([1, 2**32 + 1], dtype=np.dtype(np.int64).newbyteorder())
    for fn in (fastce.cross_entropy, fastce.nll_loss):
        with pytest.raises(IndexError, match="4294967297"):
            fn(x, swapped)
    good = np.array([1, 2], dtype=np.dtype(np.int64).newbyteorder())
    assert fastce.cross_entropy(x, good) == fastce.cross_entropy(x, np.array([1, 2]))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_floats_in_the_other_byte_order_are_accepted_and_give_native_results(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4)).astype(dtype)
    t = np.array([0, 3, 1, 2, 0])
    swapped = x.astype(np.dtype(dtype).newbyteorder())
    loss, grad = fastce.cross_entropy_and_grad(swapped, t)
    ref_loss, ref_grad = fastce.cross_entropy_and_grad(x, t)
    assert loss.dtype == np.dtype(dtype) and grad.dtype == np.dtype(dtype)
    assert loss == ref_loss and np.array_equal(grad, ref_grad)
    y = rng.random(size=(5, 4)).astype(np.dtype(dtype).newbyteorder())
    assert fastce.binary_cross_entropy_with_logits(swapped, y) == \
        fastce.binary_cross_entropy_with_logits(x, y.astype(dtype))
    assert np.array_equal(fastce.softmax(swapped), fastce.softmax(x))


@pytest.mark.parametrize("ignore_index", [2**63, -2**63 - 1, 2**80])
def test_ignore_index_outside_int64_raises_valueerror(ignore_index):
    """It used to raise OverflowError from the kernel call."""
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="ignore_index"):
        fastce.cross_entropy(x, [0, 1], ignore_index=ignore_index)
    with pytest.raises(ValueError, match="ignore_index"):
        fastce.nll_loss_and_grad(x, [0, 1], ignore_index=ignore_index)
    with pytest.raises(ValueError, match="ignore_index"):
        fastce.CrossEntropyLoss(ignore_index=ignore_index)


def test_int64_extreme_ignore_index_is_accepted():
    x = np.zeros((2, 3))
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    t = np.array([lo, 1])
    assert fastce.cross_entropy(x, t, ignore_index=int(lo)) == fastce.cross_entropy(
        x[1:], [1])
    assert fastce.nll_loss(x, np.array([hi, hi]), ignore_index=int(hi),
                           reduction="sum") == 0


def test_unaligned_class_loss_inputs_give_the_aligned_results():
    """Unaligned buffers are copied before a kernel reads them (reading them
    in place is a misaligned load: undefined behaviour, flagged by UBSan)."""
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=(300, 40)).astype(dtype)
        t = rng.integers(0, 40, size=300)
        w = rng.uniform(0.5, 2.0, size=40).astype(dtype)
        go = rng.normal(size=300)
        y = rng.random(size=(300, 40)).astype(dtype)
        for t_dtype in (np.int32, np.int64):
            expected = fastce.cross_entropy_and_grad(x, t.astype(t_dtype), weight=w,
                                                     reduction="none", grad_output=go)
            got = fastce.cross_entropy_and_grad(
                _unaligned(x), _unaligned(t.astype(t_dtype)), weight=_unaligned(w),
                reduction="none", grad_output=_unaligned(go))
            for g, e in zip(got, expected):
                assert np.array_equal(g, e)
            assert fastce.nll_loss(_unaligned(x), _unaligned(t.astype(t_dtype))) == \
                fastce.nll_loss(x, t.astype(t_dtype))
        assert fastce.cross_entropy(_unaligned(x), _unaligned(y)) == fastce.cross_entropy(x, y)
        assert np.array_equal(fastce.log_softmax(_unaligned(x)), fastce.log_softmax(x))
        ux = _unaligned(x)
        loss, grad = fastce.cross_entropy_and_grad(ux, t, out=ux)   # out=input, unaligned
        assert grad is ux
        assert np.array_equal(grad, fastce.cross_entropy_and_grad(x, t)[1])


def test_unaligned_binary_loss_inputs_give_the_aligned_results():
    """Same for the binary losses: input, target, weight, pos_weight and
    grad_output in unaligned buffers.  (Run under tools/asan.sh, UBSan
    reports any misaligned load a kernel still makes.)"""
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        x = (rng.normal(size=(200, 30)) * 3).astype(dtype)
        y = rng.random(size=(200, 30)).astype(dtype)
        w = rng.uniform(0.5, 2.0, size=(200, 30)).astype(dtype)
        pw = rng.uniform(0.5, 2.0, size=30).astype(dtype)
        go = rng.normal(size=(200, 30)).astype(dtype)
        expected = fastce.binary_cross_entropy_with_logits_and_grad(
            x, y, weight=w, pos_weight=pw, reduction="none", grad_output=go)
        got = fastce.binary_cross_entropy_with_logits_and_grad(
            _unaligned(x), _unaligned(y), weight=_unaligned(w), pos_weight=_unaligned(pw),
            reduction="none", grad_output=_unaligned(go))
        for g, e in zip(got, expected):
            assert np.array_equal(g, e)
        p = rng.uniform(0.01, 0.99, size=(200, 30)).astype(dtype)
        expected = fastce.binary_cross_entropy_and_grad(p, y, weight=w)
        got = fastce.binary_cross_entropy_and_grad(_unaligned(p), _unaligned(y),
                                                   weight=_unaligned(w))
        for g, e in zip(got, expected):
            assert np.array_equal(g, e)
