"""The losses over Dask arrays: the NumPy path per block, reduced with global
sums, lazily.

`fastce.functional` hands a call here when an operand is a Dask collection
(`is_dask`, which never imports dask: an array of a module that was never
imported cannot be one).  Each block runs the same preparation and kernels
as a NumPy call (`_validation.prepare_*`, `functional._class_sums` and
``_binary``), with ``reduction="sum"`` so that it leaves float64 partial
sums; one task adds the partials of all blocks in block order, so the
mean divides the global sum by the global denominator, whatever the
chunking, and a given chunking gives the same bits on every run.

One task per block computes the block's loss sum *and* its gradient: the
loss and the gradient of one ``_and_grad`` call come from a single read of
each block (``dask.compute(loss, grad)``).  The gradient of a mean needs the
global denominator before any block's gradient is written; for class-index
targets it is the weights of the targets, which a separate pass over the
(small) target blocks adds up first.

The class axis must lie in one chunk (a log-sum-exp needs the whole row): a
split class axis is rechunked, with a `PerformanceWarning`.  Blocks run with
one fastce thread each by default (``n_threads=``): Dask already runs blocks
in parallel.

`linear_cross_entropy` runs each block of tokens through `fastce.linear`'s
chunked driver, with the linear weight, bias and class weights as single
chunks every block reads; grad_weight and grad_bias are Dask's tree sum of
the blocks' parts.

A block that distributed received from another process sits wherever it
was in the message frame, often at an address misaligned for its dtype;
`_realigned` copies such a block into a per-thread buffer that is reused
from call to call.
"""
from __future__ import annotations

import math
import sys
import warnings
from itertools import product

import numpy as np

from fastce import _validation as v
from fastce._buffers import ThreadBuffers

__all__ = ["is_dask", "class_loss", "binary_loss", "linear_loss", "class_weights",
           "PerformanceWarning"]


def is_dask(*values) -> bool:
    """Whether any value is a Dask collection (dask is never imported here)."""
    dask = sys.modules.get("dask")
    if dask is None:
        return False
    return any(v_ is not None and dask.is_dask_collection(v_) for v_ in values)


def _imports():
    try:
        import dask
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph
    except ImportError as exc:   # pragma: no cover - is_dask saw dask imported
        raise ImportError("Dask arrays need dask: pip install 'fastce[dask]'") from exc
    return dask, da, HighLevelGraph


def _performance_warning():
    try:
        from dask.array.core import PerformanceWarning as dask_warning
    except ImportError:   # pragma: no cover
        return PerformanceWarning
    return dask_warning


class PerformanceWarning(Warning):
    """Fallback of dask's own ``PerformanceWarning`` (used when it exists)."""


# ----------------------------------------------------------- graph pieces --

def _as_dask(da, value, chunks):
    """``value`` (Dask or NumPy) as a Dask array with exactly ``chunks``."""
    if is_dask(value):
        arr = value
    else:
        arr = da.from_array(np.asarray(value), chunks=chunks)
    return arr if arr.chunks == chunks else arr.rechunk(chunks)


def _offsets(chunks):
    """Per axis, the start of each chunk."""
    return [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in chunks]


def _keys(arr, index):
    return (arr.name,) + tuple(index)


def _scalar_key(arr):
    keys = arr.__dask_keys__()
    return keys if isinstance(keys, tuple) else keys[0]


def _tuple_get(result, i):
    return result[i]


def _add_parts(parts):
    """The blocks' float64 (loss sum, denominator) partials, added in block
    order: one task, so the order (and the bits) never depend on the run."""
    total = np.zeros(2)
    for part in parts:
        total += np.asarray(part, np.float64)
    return total


def _finish(parts, denominator, reduction, dtype):
    """The reduced loss from the block partials (``denominator``: the mean's,
    when it comes from elsewhere)."""
    total = _add_parts(parts)
    d = total[1] if denominator is None else float(denominator)
    if reduction == "sum":
        return dtype.type(total[0])
    return dtype.type(total[0] / d if d != 0 else math.nan)


def _reduce_task(da, HighLevelGraph, name, layer_keys, deps, reduction, dtype,
                 denominator=None, *, tuples=True):
    """The loss as a 0-d Dask array: one task over all block partials (a
    tree of sums cost more scheduler round trips).  ``tuples``: the blocks
    return (partials, losses, gradient) rather than the partials alone."""
    if tuples:
        # the partials first, one small task per block: the final task then
        # fetches floats, not the tuples that also hold each block's gradient
        pname = name + "-parts"
        pdsk = {(pname, k): (_tuple_get, key, 0) for k, key in enumerate(layer_keys)}
        parts = HighLevelGraph.from_collections(pname, pdsk, dependencies=deps)
        deps = [da.Array(parts, pname, chunks=((1,) * len(layer_keys),), dtype=object)]
        layer_keys = [(pname, k) for k in range(len(layer_keys))]
    else:
        deps = list(deps)
    den = denominator
    if is_dask(denominator):
        deps.append(denominator)
        den = _scalar_key(denominator)
    elif denominator is not None:
        den = float(denominator)
    dsk = {(name,): (_finish, list(layer_keys), den, reduction, dtype)}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
    return da.Array(graph, name, chunks=(), dtype=dtype, meta=np.empty((), dtype))


def _global_position(local_flat, block_shape, offset, shape):
    local = np.unravel_index(local_flat, block_shape) if block_shape else ()
    glob = tuple(int(i) + int(o) for i, o in zip(local, offset))
    return int(np.ravel_multi_index(glob, shape)) if shape else 0


# ------------------------------------------------------ block alignment --

_scratch = ThreadBuffers()
_SCRATCH_MAX_BYTES = 1 << 30


def _realigned(block, role):
    """``block`` itself, or, when it is a misaligned float array, its copy in
    this thread's reused buffer for ``role`` ("input", "target").

    distributed places a received array at whatever offset it had in the
    message frame (often odd), and the kernels need element alignment: the
    copy `_validation.c_aligned` would make is a fresh allocation per block
    per call, whose page faults cost more than the copy (measured: a (131072,
    100) float32 block takes 2x the aligned time; 1.35x with this buffer).
    The buffer is only read during the block's call, which returns no view of
    it; a thread keeps one per role, up to 1 GiB."""
    if (type(block) is not np.ndarray or block.flags.aligned
            or block.dtype.kind != "f" or block.nbytes > _SCRATCH_MAX_BYTES):
        return block
    copy = _scratch.array(role, block.shape, block.dtype)
    np.copyto(copy, block)
    return copy


# --------------------------------------------------------- class losses --

def _block_grad_output(spec, gout, denominator):
    """A block's grad_output for its reduction="sum" (or "none") call: the
    per-position one, or the scalar over the global denominator for a mean."""
    if not spec["want_grad"]:
        return None
    reduction, go = spec["reduction"], spec["grad_output"]
    if reduction == "none":
        return 1.0 if gout is None else gout
    if reduction == "mean":
        return go / denominator if denominator != 0 else math.nan
    return go


def _upstream(da, grad_output, want_grad, reduction, shape, chunks):
    """(scalar upstream gradient, per-position Dask array or None)."""
    if not (want_grad and grad_output is not None):
        return 1.0, None
    if is_dask(grad_output) or np.ndim(grad_output) > 0:
        if reduction != "none" or tuple(np.shape(grad_output)) != shape:
            raise ValueError(f"grad_output must be a scalar or have the loss's shape "
                             f"{shape}, got shape {np.shape(grad_output)}")
        return 1.0, _as_dask(da, grad_output, chunks).astype(np.float64)
    return float(grad_output), None


def _outputs(da, HighLevelGraph, token, blocks, holder, loss_index, loss_chunks,
             grad_chunks, dtype, reduction, want_grad, denominator):
    """The call's results from its per-block tasks ``(holder, k)``, each
    (partials, losses, gradient): the loss ("none": per position; else one
    task over the partials) and, with want_grad, the gradient."""
    name = holder.name
    if not want_grad and reduction != "none":
        # the blocks return their partials alone (`_block_result`): one
        # scheduler round trip less than fetching them out of tuples
        return _reduce_task(da, HighLevelGraph, f"fastce-loss-{token}",
                            [(name, k) for k in range(len(blocks))], [holder], reduction,
                            dtype, denominator, tuples=False)
    if reduction == "none":
        lname = f"fastce-losses-{token}"
        ldsk = {(lname,) + loss_index(idx): (_tuple_get, (name, k), 1)
                for k, idx in enumerate(blocks)}
        loss = da.Array(HighLevelGraph.from_collections(lname, ldsk, dependencies=[holder]),
                        lname, chunks=loss_chunks, dtype=dtype)
    else:
        loss = _reduce_task(da, HighLevelGraph, f"fastce-loss-{token}",
                            [(name, k) for k in range(len(blocks))], [holder], reduction,
                            dtype, denominator)
    if not want_grad:
        return loss
    gname = f"fastce-grad-{token}"
    gdsk = {(gname,) + idx: (_tuple_get, (name, k), 2) for k, idx in enumerate(blocks)}
    return loss, da.Array(HighLevelGraph.from_collections(gname, gdsk, dependencies=[holder]),
                          gname, chunks=grad_chunks, dtype=dtype)


def _block_result(spec, partials, losses, *grads):
    """What a block task returns: its partials alone when they are all the
    call needs (a reduced loss without gradient), else (partials, losses,
    gradient(s))."""
    if spec["partials_only"]:
        return partials
    return (partials, losses) + grads


def _check_index_block(t, n_cls, ignore_index, offset, batch_shape):
    """IndexError (value, global position) for the first bad target of a block."""
    flat = t.reshape(-1)
    bad = (flat != ignore_index) & ((flat < 0) | (flat >= n_cls))
    if bad.any():
        i = int(np.argmax(bad))
        v.raise_out_of_bounds(int(flat[i]), _global_position(i, t.shape, offset,
                                                             batch_shape),
                              batch_shape, n_cls, ignore_index)


def _sum_denominators(parts):
    return np.float64(_add_parts(parts)[0])


def _class_denominator_block(t, sw, weight, spec, offset):
    """The block's part of the mean's denominator (sum of s * w[target] over
    the non-ignored class-index targets), after checking its targets."""
    t = np.asarray(t)
    _check_index_block(t, spec["n_cls"], spec["ignore_index"], offset,
                       spec["batch_shape"])
    flat = t.reshape(-1)
    keep = flat != spec["ignore_index"]
    w = weight
    s = None if sw is None else np.broadcast_to(np.asarray(sw, np.float64),
                                                t.shape).reshape(-1)
    if w is None:
        total = float(keep.sum()) if s is None else float(s[keep].sum())
    else:
        wt = np.asarray(w, np.float64)[flat[keep]]
        total = float(wt.sum()) if s is None else float(np.dot(s[keep], wt))
    return np.array([total, 0.0]), None, None


def _index_denominator(da, HighLevelGraph, prefix, t, sw, weight_arg, weight_dask, spec,
                       batch_chunks):
    """The global denominator of a mean over class-index targets, as a 0-d
    Dask array: one task per target block (`_class_denominator_block`, which
    also checks the block's targets), then one adding them in block order."""
    name = f"{prefix}-denominator"
    offsets = _offsets(batch_chunks)
    bidx = list(product(*(range(len(c)) for c in batch_chunks)))
    dsk = {(name, k): (_class_denominator_block, _keys(t, b),
                       None if sw is None else _keys(sw, b), weight_arg, spec,
                       tuple(o[i] for o, i in zip(offsets, b)))
           for k, b in enumerate(bidx)}
    deps = [a for a in (t, sw, weight_dask) if a is not None]
    parts = da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=deps), name,
                     chunks=((1,) * len(bidx),), dtype=object)
    dname = f"{prefix}-dtotal"
    ddsk = {(dname,): (_sum_denominators,
                       [(_tuple_get, (name, k), 0) for k in range(len(bidx))])}
    return da.Array(HighLevelGraph.from_collections(dname, ddsk, dependencies=[parts]),
                    dname, chunks=(), dtype=np.float64, meta=np.empty((), np.float64))


def _class_block(x, t, sw, gout, weight, denominator, spec, offset):
    """One block: (float64 [loss sum, denominator], per-position losses or
    None, gradient or None)."""
    from fastce import functional as F
    reduction = spec["reduction"]
    grad_output = _block_grad_output(spec, gout, denominator)
    x = _realigned(x, "input")
    if not spec["index"]:
        t = _realigned(t, "target")
    try:
        pb = v.prepare_class_loss(
            x, t, weight, None, spec["ignore_index"], None,
            "none" if reduction == "none" else "sum", spec["label_smoothing"],
            spec["axis"], None, nll=spec["nll"], want_grad=spec["want_grad"],
            z_loss=spec["z_loss"], softcap=spec["softcap"], grad_output=grad_output,
            sample_weight=sw, focal=spec["focal"])
        loss_sum, block_denominator = F._class_sums(pb, spec["n_threads"])
    except IndexError:
        # the kernels found a bad target and name its place in the block:
        # name it in the whole array instead (no pass over a good block)
        if spec["index"]:
            _check_index_block(np.asarray(t), spec["n_cls"], spec["ignore_index"],
                               offset, spec["batch_shape"])
        raise
    losses = None
    if reduction == "none":
        losses = F._reduce("none", loss_sum, block_denominator, pb.loss_out,
                           pb.layout.batch_shape, pb.result_dtype)
    grad = None
    if spec["want_grad"]:
        grad = F._finish_grad(pb.grad, None, pb.result_dtype, pb.input_shape)
    return _block_result(spec, np.array([loss_sum, block_denominator]), losses, grad)


def _check_class_shapes(x, t, axis, nll):
    batch = x.shape[:axis] + x.shape[axis + 1:]
    if t.dtype.kind in "iu" or nll:
        if t.dtype.kind not in "iu":
            raise TypeError(f"nll_loss expects integer class-index targets, got dtype "
                            f"{t.dtype}")
        if t.shape != batch:
            raise ValueError(f"target shape {t.shape} does not match input shape "
                             f"{x.shape}: class-index targets have the input's shape "
                             f"without the class axis, {batch}")
        return True, batch
    if t.dtype.kind == "f":
        if t.shape != x.shape:
            if t.shape == batch:
                raise TypeError(f"class-index targets must be integers (got {t.dtype}); "
                                f"for probability targets pass an array of the input's "
                                f"shape {x.shape}")
            raise ValueError(f"probability target shape {t.shape} does not match input "
                             f"shape {x.shape}")
        return False, batch
    raise TypeError(f"target must hold integer class indices or floating class "
                    f"probabilities, got dtype {t.dtype}")


def _dtype_of(x):
    """The result dtype, as `_validation.float_input` gives it."""
    dt = np.dtype(x.dtype)
    if dt.kind == "f" and not dt.isnative:
        dt = dt.newbyteorder("=")
    if dt not in (np.float16, np.float32, np.float64):
        raise TypeError(f"input must be a float32, float64 or float16 array, got dtype "
                        f"{dt}")
    return dt


def class_loss(input, target, weight, ignore_index, reduction, label_smoothing, axis,
               *, nll, want_grad, z_loss, softcap, grad_output, out, sample_weight, focal,
               n_threads):
    """cross_entropy / nll_loss / focal_loss (and ``_and_grad``) over Dask
    arrays; returns Dask results (a 0-d array for "mean" / "sum")."""
    dask, da, HighLevelGraph = _imports()
    if out is not None:
        raise TypeError("out= does not apply to Dask arrays (the result is lazy); "
                        "leave it None")
    x = input if is_dask(input) else da.asarray(np.asarray(input))
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (the class axis)")
    ax = v.normalize_axis(axis, None, x.ndim)
    if x.numblocks[ax] > 1:
        warnings.warn(f"fastce: the class axis (axis {ax}, {x.shape[ax]} classes) is "
                      f"split over {x.numblocks[ax]} chunks; rechunking it to one chunk "
                      f"copies every block (chunk the batch axes only)",
                      _performance_warning(), stacklevel=4)
        x = x.rechunk({ax: -1})
    t = target if is_dask(target) else np.asarray(target)
    index, batch_shape = _check_class_shapes(x, t, ax, nll)
    n_cls = x.shape[ax]
    dtype = _dtype_of(x)
    # graph-time checks of everything small (the blocks check it again)
    kdt = np.float32 if dtype == np.float16 else dtype
    weight_arg = weight
    if is_dask(weight):
        # (C,), small: one chunk, handed whole to every block
        if tuple(weight.shape) != (n_cls,):
            raise ValueError(f"weight has shape {tuple(weight.shape)}, expected "
                             f"({n_cls},) (one per class)")
        weight = weight.rechunk(-1)
        weight_arg = _keys(weight, (0,))
    elif weight is not None:
        v.class_weight(weight, n_cls, kdt)
        weight = weight_arg = np.asarray(weight)
    ignore = v.ignore_index_value(ignore_index)
    eps = 0.0 if nll else v.label_smoothing_value(label_smoothing)
    if not index and ignore >= 0:
        raise ValueError(f"ignore_index={ignore} does not apply to probability targets "
                         "(there is no class index to ignore); leave it at -100")
    reduction = v.check_reduction(reduction)
    batch_chunks = x.chunks[:ax] + x.chunks[ax + 1:]
    t = _as_dask(da, t, batch_chunks if index else x.chunks)
    sw = None
    if sample_weight is not None:
        if not is_dask(sample_weight):
            sw_np = np.asarray(sample_weight)
            try:
                np.broadcast_shapes(sw_np.shape, batch_shape)
            except ValueError:
                raise ValueError(f"sample_weight of shape {sw_np.shape} cannot be "
                                 f"broadcast to the target's shape {batch_shape}") from None
            sw = _as_dask(da, np.broadcast_to(sw_np, batch_shape), batch_chunks)
        else:
            sw = _as_dask(da, da.broadcast_to(sample_weight, batch_shape), batch_chunks)
    go_scalar, gout = _upstream(da, grad_output, want_grad, reduction, batch_shape,
                                batch_chunks)
    spec = dict(index=index, n_cls=n_cls, ignore_index=ignore, batch_shape=batch_shape,
                label_smoothing=eps, axis=ax, nll=nll, want_grad=want_grad,
                z_loss=z_loss, softcap=softcap, focal=focal, reduction=reduction,
                grad_output=go_scalar, n_threads=1 if n_threads is None else n_threads,
                partials_only=not want_grad and reduction != "none")
    token = dask.base.tokenize(x, t, sw, gout, spec, weight)
    offsets = _offsets(batch_chunks)
    blocks = list(product(*(range(n) for n in x.numblocks)))
    deps = [a for a in (x, t, sw, gout) if a is not None]
    if is_dask(weight):
        deps.append(weight)

    def batch_index(idx):
        return idx[:ax] + idx[ax + 1:]

    denominator_key = None
    if want_grad and reduction == "mean":
        if index:
            denominator = _index_denominator(da, HighLevelGraph, f"fastce-{token}", t, sw,
                                             weight_arg, weight if is_dask(weight) else None,
                                             spec, batch_chunks)
        elif sw is not None:
            denominator = sw.sum(dtype=np.float64)
        else:
            denominator = da.from_array(np.float64(math.prod(batch_shape)))
        deps.append(denominator)
        denominator_key = _scalar_key(denominator)

    name = f"fastce-class-{token}"
    dsk = {}
    for k, idx in enumerate(blocks):
        b = batch_index(idx)
        off = tuple(o[i] for o, i in zip(offsets, b))
        dsk[(name, k)] = (_class_block, _keys(x, idx),
                          _keys(t, b if index else idx),
                          None if sw is None else _keys(sw, b),
                          None if gout is None else _keys(gout, b),
                          weight_arg, denominator_key, spec, off)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
    holder = da.Array(graph, name, chunks=((1,) * len(blocks),), dtype=object)
    return _outputs(da, HighLevelGraph, token, blocks, holder, batch_index, batch_chunks,
                    x.chunks, dtype, reduction, want_grad,
                    denominator if want_grad and reduction == "mean" else None)


# -------------------------------------------------------- binary losses --

def _operand_block(value, shape, block_slices):
    """The part of a NumPy operand broadcastable to ``shape`` that a block
    needs, still broadcastable (its broadcast axes stay length 1)."""
    arr = np.asarray(value)
    lead = len(shape) - arr.ndim
    index = tuple(slice(None) if arr.shape[k] == 1 else block_slices[lead + k]
                  for k in range(arr.ndim))
    return arr[index]


def _check_unit_block(a, offset, shape, what):
    ok = (a >= 0) & (a <= 1)
    if not ok.all():
        i = int(np.argmin(ok.reshape(-1)))
        pos = np.unravel_index(_global_position(i, a.shape, offset, shape), shape) \
            if shape else ()
        raise ValueError(f"all elements of {what} should be between 0 and 1; found "
                         f"{a.reshape(-1)[i]!r} at position {tuple(int(p) for p in pos)}")


def _binary_block(x, y, weight, pos_weight, sw, gout, spec, offset):
    from fastce import functional as F
    reduction = spec["reduction"]
    grad_output = _block_grad_output(spec, gout, spec["denominator"])
    x, y = _realigned(x, "input"), _realigned(y, "target")
    try:
        pb = v.prepare_binary_loss(x, y, weight, None, None,
                                   "none" if reduction == "none" else "sum", pos_weight,
                                   want_grad=spec["want_grad"], grad_output=grad_output,
                                   sample_weight=sw)
        loss_sum = F._binary_sums(pb, spec["logits"], spec["focal"], spec["n_threads"])
    except ValueError:
        # a probability outside [0, 1], named in the block: name its place in
        # the whole array instead (no extra pass over a good block)
        if not spec["logits"]:
            _check_unit_block(np.asarray(x), offset, spec["shape"], "input")
            _check_unit_block(np.asarray(y), offset, spec["shape"], "target")
        raise
    losses = None
    if reduction == "none":
        losses = F._reduce("none", loss_sum, pb.denominator, pb.loss_out, pb.shape,
                           pb.result_dtype)
    grad = None
    if spec["want_grad"]:
        grad = F._finish_grad(pb.grad, None, pb.result_dtype, pb.shape)
    return _block_result(spec, np.array([loss_sum, 0.0]), losses, grad)


def binary_loss(logits, input, target, weight, reduction, pos_weight, *, want_grad,
                grad_output, out, sample_weight, focal, n_threads):
    """The binary losses (and ``_and_grad``) over Dask arrays."""
    dask, da, HighLevelGraph = _imports()
    if out is not None:
        raise TypeError("out= does not apply to Dask arrays (the result is lazy); "
                        "leave it None")
    x = input if is_dask(input) else da.asarray(np.asarray(input))
    shape = tuple(x.shape)
    dtype = _dtype_of(x)
    t = target if is_dask(target) else np.asarray(target)
    if np.dtype(t.dtype).kind != "f":
        raise TypeError(f"target must hold floating probabilities in [0, 1], got dtype "
                        f"{t.dtype}")
    if tuple(t.shape) != shape:
        raise ValueError(f"Target size {tuple(t.shape)} must be the same as input size "
                         f"{shape}")
    reduction = v.check_reduction(reduction)
    t = _as_dask(da, t, x.chunks)
    operands = {}
    for name_, value in (("weight", weight), ("pos_weight", pos_weight),
                         ("sample_weight", sample_weight)):
        if value is None:
            operands[name_] = None
        elif is_dask(value):
            try:
                operands[name_] = da.broadcast_to(value, shape).rechunk(x.chunks)
            except ValueError:
                raise ValueError(f"{name_} of shape {value.shape} cannot be broadcast to "
                                 f"the input's shape {shape}") from None
        else:
            arr = np.asarray(value)
            try:
                np.broadcast_shapes(arr.shape, shape)
            except ValueError:
                raise ValueError(f"{name_} of shape {arr.shape} cannot be broadcast to "
                                 f"the input's shape {shape}") from None
            operands[name_] = arr
    denominator = float(math.prod(shape))
    sw = operands["sample_weight"]
    if want_grad and reduction == "mean" and sw is not None:
        if is_dask(sw):
            denominator = sw.sum(dtype=np.float64)
        else:
            s = v.sample_weight_values(sw, shape, "the input's shape")
            denominator = float(s.sum()) * (math.prod(shape) / s.size) if s.size else 0.0
    go_scalar, gout = _upstream(da, grad_output, want_grad, reduction, shape, x.chunks)
    spec = dict(logits=logits, shape=shape, reduction=reduction, want_grad=want_grad,
                grad_output=go_scalar, focal=focal, denominator=None,
                n_threads=1 if n_threads is None else n_threads,
                partials_only=not want_grad and reduction != "none")
    denominator_dask = is_dask(denominator)
    if not denominator_dask:
        spec["denominator"] = denominator
    token = dask.base.tokenize(x, t, gout, spec, *[operands[k] for k in sorted(operands)])
    offsets = _offsets(x.chunks)
    blocks = list(product(*(range(n) for n in x.numblocks)))
    deps = [a for a in (x, t, gout) if a is not None]
    deps += [a for a in operands.values() if is_dask(a)]
    name = f"fastce-binary-{token}"
    dsk = {}
    for k, idx in enumerate(blocks):
        off = tuple(int(o[i]) for o, i in zip(offsets, idx))
        slices = tuple(slice(int(o), int(o) + c[i]) for o, c, i in
                       zip((of[i] for of, i in zip(offsets, idx)), x.chunks, idx))
        args = []
        for key_ in ("weight", "pos_weight", "sample_weight"):
            op = operands[key_]
            if op is None:
                args.append(None)
            elif is_dask(op):
                args.append(_keys(op, idx))
            else:
                args.append(_operand_block(op, shape, slices))
        block_spec = spec
        if denominator_dask:
            block_spec = (_with_denominator, spec, _scalar_key(denominator))
        dsk[(name, k)] = (_binary_block, _keys(x, idx), _keys(t, idx), *args,
                          None if gout is None else _keys(gout, idx), block_spec, off)
    if denominator_dask:
        deps.append(denominator)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
    holder = da.Array(graph, name, chunks=((1,) * len(blocks),), dtype=object)
    count = None
    if reduction == "mean":
        count = (denominator if (want_grad and sw is not None) else
                 _mean_denominator(da, sw, shape))
    return _outputs(da, HighLevelGraph, token, blocks, holder, lambda idx: idx, x.chunks,
                    x.chunks, dtype, reduction, want_grad, count)


def _with_denominator(spec, denominator):
    return dict(spec, denominator=float(denominator))


def _mean_denominator(da, sw, shape):
    """The forward mean's denominator: elements, or the sum of broadcast s."""
    if sw is None:
        return np.float64(math.prod(shape))
    if is_dask(sw):
        return sw.sum(dtype=np.float64)
    s = v.sample_weight_values(sw, shape, "the input's shape")
    return np.float64(float(s.sum()) * (math.prod(shape) / s.size) if s.size else 0.0)


# ------------------------------------------------ the linear output layer --

def _linear_block(x, t, W, b, weight, gout, denominator, spec, offset):
    """One block of tokens through `fastce.linear`'s chunked driver: (float64
    [loss sum, the block's part of the mean's denominator], per-token losses
    or None, and with want_grad grad_input, grad_weight and grad_bias)."""
    from fastce import linear as L
    reduction = spec["reduction"]
    grad_output = _block_grad_output(spec, gout, denominator)
    x = _realigned(x, "input")
    if not spec["index"]:
        t = _realigned(t, "target")
    try:
        p = L._prepare(x, W, t, b, weight, "none" if reduction == "none" else "sum",
                       spec["ignore_index"] if spec["index"] else None,
                       spec["label_smoothing"], spec["z_loss"],
                       spec["softcap"], spec["chunk_size"], want_grad=spec["want_grad"],
                       grad_output=grad_output, n_threads=spec["n_threads"])
    except IndexError:
        if spec["index"]:
            _check_index_block(np.asarray(t), spec["n_cls"], spec["ignore_index"],
                               offset, spec["batch_shape"])
        raise
    grads = (None, None, None)
    if spec["want_grad"]:
        total, per_token, grads = L._backward(p, spec["n_threads"])
    else:
        total, per_token = L._forward(p, spec["n_threads"])
    losses = None if reduction != "none" else L._loss_result(p, total, per_token)
    return _block_result(spec, np.array([total, p.denominator]), losses, *grads)


def _block_sum_input(result, i, kdt):
    """A block's grad_weight / grad_bias, with a leading axis to sum over."""
    return result[i].astype(kdt, copy=False)[None]


def _one_chunk(da, value):
    """An operand every block reads whole (linear weight, bias, class
    weights) as one chunk of a Dask array: (its key, the array), or (None,
    None).  A NumPy one becomes a single task of the graph (under a random
    name: hashing a large weight per call would cost more than the call's
    scheduling), sent to each worker once rather than inside every task."""
    if value is None:
        return None, None
    if is_dask(value):
        whole = value.rechunk(tuple(-1 for _ in value.shape))
    else:
        arr = np.asarray(value)
        whole = da.from_array(arr, chunks=arr.shape or (), name=False)
    return _keys(whole, (0,) * whole.ndim), whole


def linear_loss(input, linear_weight, target, linear_bias, weight, reduction,
                ignore_index, label_smoothing, z_loss, softcap, chunk_size, *,
                want_grad, grad_output, out, n_threads):
    """`fastce.linear_cross_entropy` (and ``_and_grad``) over Dask arrays:
    the input's blocks of tokens each go through the chunked driver; the
    loss and, for a mean, the gradient use the global denominator, and
    grad_weight / grad_bias are the sums of the blocks' (a Dask tree sum,
    fixed for a given chunking)."""
    dask, da, HighLevelGraph = _imports()
    if out is not None:
        raise TypeError("out= does not apply to Dask arrays (the result is lazy); "
                        "leave it None")
    x = input if is_dask(input) else da.asarray(np.asarray(input))
    dtype = _dtype_of(x)
    W_shape = tuple(np.shape(linear_weight))
    b_shape = None if linear_bias is None else tuple(np.shape(linear_bias))
    for name_, value in (("linear_weight", linear_weight), ("linear_bias", linear_bias)):
        if value is not None and _dtype_of(value) != dtype:
            raise ValueError(f"{name_} has dtype {_dtype_of(value)} but input has dtype "
                             f"{dtype}; input, linear_weight and linear_bias must share "
                             f"one dtype")
    t = target if is_dask(target) else np.asarray(target)
    index = v.linear_shapes(x.shape, W_shape, b_shape, t.shape, t.dtype)
    ax = x.ndim - 1
    if x.numblocks[ax] > 1:
        warnings.warn(f"fastce: the feature axis ({x.shape[ax]} features) is split over "
                      f"{x.numblocks[ax]} chunks; rechunking it to one chunk copies every "
                      f"block (chunk the batch axes only)", _performance_warning(),
                      stacklevel=4)
        x = x.rechunk({ax: -1})
    V = W_shape[0]
    batch_shape = tuple(x.shape[:-1])
    kdt = np.float32 if dtype == np.float16 else dtype
    if not is_dask(weight) and weight is not None:
        v.class_weight(weight, V, kdt)
    elif is_dask(weight) and tuple(weight.shape) != (V,):
        raise ValueError(f"weight has shape {tuple(weight.shape)}, expected ({V},) (one "
                         f"per class)")
    if ignore_index is None:
        ignore = -100
    elif not index:
        raise ValueError("ignore_index cannot be specified when target contains "
                         "probabilities; leave it at None")
    else:
        ignore = v.ignore_index_value(ignore_index)
    reduction = v.check_reduction(reduction)
    spec = dict(index=index, n_cls=V, ignore_index=ignore, batch_shape=batch_shape,
                label_smoothing=v.label_smoothing_value(label_smoothing),
                z_loss=v.z_loss_value(z_loss), softcap=v.softcap_value(softcap),
                chunk_size=v.chunk_size_value(chunk_size), reduction=reduction,
                want_grad=want_grad, n_threads=1 if n_threads is None else n_threads,
                partials_only=not want_grad and reduction != "none")
    batch_chunks = x.chunks[:-1]
    logit_chunks = batch_chunks + ((V,),)
    t = _as_dask(da, t, batch_chunks if index else logit_chunks)
    go_scalar, gout = _upstream(da, grad_output, want_grad, reduction, batch_shape,
                                batch_chunks)
    spec["grad_output"] = go_scalar
    W_arg, W_dask = _one_chunk(da, linear_weight)
    b_arg, b_dask = _one_chunk(da, linear_bias)
    w_arg, w_dask = _one_chunk(da, weight)
    token = dask.base.tokenize(x, t, gout, spec, W_dask, b_dask, w_dask)
    offsets = _offsets(batch_chunks)
    blocks = list(product(*(range(n) for n in x.numblocks)))
    deps = [a for a in (x, t, gout, W_dask, b_dask, w_dask) if a is not None]

    denominator, denominator_key = None, None
    if want_grad and reduction == "mean":
        if index:
            denominator = _index_denominator(da, HighLevelGraph, f"fastce-linear-{token}",
                                             t, None, w_arg, w_dask, spec, batch_chunks)
        else:
            denominator = da.from_array(np.float64(math.prod(batch_shape)))
        deps.append(denominator)
        denominator_key = _scalar_key(denominator)

    name = f"fastce-linear-{token}"
    dsk = {(name, k): (_linear_block, _keys(x, idx),
                       _keys(t, idx[:-1] if index else idx[:-1] + (0,)),
                       W_arg, b_arg, w_arg,
                       None if gout is None else _keys(gout, idx[:-1]),
                       denominator_key, spec, tuple(o[i] for o, i in zip(offsets, idx[:-1])))
           for k, idx in enumerate(blocks)}
    holder = da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=deps), name,
                      chunks=((1,) * len(blocks),), dtype=object)
    loss_grad = _outputs(da, HighLevelGraph, token, blocks, holder, lambda idx: idx[:-1],
                         batch_chunks, x.chunks, dtype, reduction, want_grad, denominator)
    if not want_grad:
        return loss_grad
    loss, grad_input = loss_grad
    grads = []
    for i, shape, present in ((3, W_shape, True), (4, b_shape, b_shape is not None)):
        if not present:
            grads.append(None)
            continue
        pname = f"fastce-linear-part{i}-{token}"
        pdsk = {(pname, k) + (0,) * len(shape): (_block_sum_input, (name, k), i, kdt)
                for k in range(len(blocks))}
        parts = da.Array(HighLevelGraph.from_collections(pname, pdsk, dependencies=[holder]),
                         pname, chunks=((1,) * len(blocks),) + tuple((n,) for n in shape),
                         dtype=kdt)
        grads.append(parts.sum(axis=0, dtype=kdt).astype(dtype))
    return (loss, grad_input) + tuple(grads)


# -------------------------------------------------------- class weights --

def _count_block(t, ignore_index, num_classes, offset, shape):
    t = np.asarray(t)
    flat = t.reshape(-1)
    kept = flat[flat != ignore_index]
    if kept.size and (kept.min() < 0 or kept.max() >= num_classes):
        bad = (flat != ignore_index) & ((flat < 0) | (flat >= num_classes))
        i = int(np.argmax(bad))
        v.raise_out_of_bounds(int(flat[i]), _global_position(i, t.shape, offset, shape),
                              shape, num_classes, ignore_index)
    return np.bincount(kept.astype(np.intp), minlength=num_classes)[None, :]


def class_weights(target, num_classes, method, ignore_index, beta, finish):
    """`fastce.class_weights` of a Dask target: per-block class counts added
    lazily, then ``finish(counts)`` (the NumPy formulas) on the total."""
    dask, da, HighLevelGraph = _imports()
    if num_classes is None:
        raise ValueError("class_weights of a Dask target needs num_classes (its largest "
                         "class is not known before the graph runs)")
    if np.dtype(target.dtype).kind not in "biu":
        raise TypeError(f"target must hold integer class indices, got dtype "
                        f"{target.dtype}")
    shape = tuple(target.shape)
    offsets = _offsets(target.chunks)
    blocks = list(product(*(range(n) for n in target.numblocks)))
    token = dask.base.tokenize(target, num_classes, ignore_index)
    name = f"fastce-counts-{token}"
    dsk = {(name, k, 0): (_count_block, _keys(target, idx), ignore_index, num_classes,
                          tuple(int(o[i]) for o, i in zip(offsets, idx)), shape)
           for k, idx in enumerate(blocks)}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[target])
    counts = da.Array(graph, name, chunks=((1,) * len(blocks), (num_classes,)),
                      dtype=np.intp).sum(axis=0)
    return da.map_blocks(finish, counts, dtype=np.float64,
                         meta=np.empty((0,), np.float64))

