"""Gradients big enough to be written with streaming stores (simd_stream.h:
rows that keep their exponentials) have the bits of the cached path: each is
compared with the same rows (or outer slices) computed in small calls, which
keep every store in cache.  ``reduction="sum"`` makes a slice's gradient the
full call's rows exactly.  The shapes whose big gradients keep plain stores
(long rows, K-dim positions) are checked alike, so that a later streaming
path for them has a test waiting."""
import numpy as np
import pytest

import fastce
from fastce._kernels import _runtime

STREAM_MIN = _runtime.build_info()["stream_min_bytes"]


def _bits(a):
    return a.view({4: np.uint32, 8: np.uint64}[a.itemsize])


def _sliced(fn, x, target, n_slices, **kw):
    """The gradient row block by row block (axis 0), each call small."""
    parts = []
    for xs, ts in zip(np.array_split(x, n_slices), np.array_split(target, n_slices)):
        parts.append(fn(np.ascontiguousarray(xs), np.ascontiguousarray(ts), **kw)[1])
    return np.concatenate(parts)


OPTIONS = [
    {},
    {"ignore_index": 3},
    {"label_smoothing": 0.1, "weight": True},
    {"label_smoothing": 0.2},
    {"weight": True, "z_loss": 1e-3},
]


def _case(shape, dtype, options, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype) * 3
    n_cls = shape[1]
    batch = shape[:1] + shape[2:]
    target = rng.integers(0, n_cls, size=batch)
    kw = {k: v for k, v in options.items() if k != "weight"}
    if "ignore_index" in options:
        target[rng.random(batch) < 0.2] = options["ignore_index"]
    if options.get("weight"):
        kw["weight"] = rng.uniform(0.5, 2.0, n_cls).astype(dtype)
    return x, target, kw


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("shape, dtype, n_slices", [
    ((2304, 1000), np.float32, 64),   # rows that keep their exponentials: streamed
    ((96, 40000), np.float32, 32),    # long rows: plain stores
    ((1200, 1000), np.float64, 32),   # streamed
    ((6, 21, 128, 144), np.float32, 6),  # K-dim positions: plain stores, same bits
])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_streamed_gradient_has_the_cached_bits(shape, dtype, n_slices, options, n_threads):
    x, target, kw = _case(shape, dtype, options, seed=len(shape) + shape[1])
    assert x.nbytes >= STREAM_MIN and x.nbytes // n_slices < STREAM_MIN
    fn = fastce.cross_entropy_and_grad
    loss, grad = fn(x, target, reduction="sum", n_threads=n_threads, **kw)
    ref = _sliced(fn, x, target, n_slices, reduction="sum", n_threads=1, **kw)
    np.testing.assert_array_equal(_bits(grad), _bits(ref))
    # and the forward's loss, to the bit
    assert loss == fastce.cross_entropy(x, target, reduction="sum", n_threads=n_threads, **kw)


def test_streamed_in_place_gradient():
    x, target, kw = _case((2304, 1000), np.float32, {"ignore_index": 3}, seed=9)
    ref = fastce.cross_entropy_and_grad(x, target, reduction="sum", **kw)[1]
    work = x.copy()
    _, grad = fastce.cross_entropy_and_grad(work, target, reduction="sum", out=work, **kw)
    assert grad is work
    np.testing.assert_array_equal(_bits(work), _bits(ref))


def test_streamed_gradient_into_an_unaligned_buffer():
    # out= a view 4 bytes off a 64-byte boundary: the head is copied element
    # by element, the rest streamed from the first aligned element on
    x, target, kw = _case((2304, 1000), np.float32, {}, seed=10)
    ref = fastce.cross_entropy_and_grad(x, target, reduction="sum")[1]
    raw = np.empty(x.size + 32, dtype=np.float32)
    shift = (-raw.ctypes.data % 64) // 4 + 1
    out = raw[shift:shift + x.size].reshape(x.shape)
    fastce.cross_entropy_and_grad(x, target, reduction="sum", out=out)
    np.testing.assert_array_equal(_bits(out), _bits(ref))


def test_streamed_per_position_gradient_with_upstream_gradient():
    x, target, kw = _case((2304, 1000), np.float32, {"ignore_index": 3}, seed=11)
    gout = np.random.default_rng(1).random(2304)
    _, grad = fastce.cross_entropy_and_grad(x, target, reduction="none", grad_output=gout,
                                            **kw)
    parts = [fastce.cross_entropy_and_grad(np.ascontiguousarray(xs), ts, reduction="none",
                                           grad_output=gs, **kw)[1]
             for xs, ts, gs in zip(np.array_split(x, 64), np.array_split(target, 64),
                                   np.array_split(gout, 64))]
    np.testing.assert_array_equal(_bits(grad), _bits(np.concatenate(parts)))


@pytest.mark.parametrize("shape", [(2304, 1000), (96, 40000)])
def test_streamed_focal_gradient(shape):
    x, target, kw = _case(shape, np.float32, {"ignore_index": 3}, seed=12)
    fn = fastce.focal_loss_and_grad
    _, grad = fn(x, target, gamma=2.0, reduction="sum", **kw)
    ref = _sliced(fn, x, target, 32, gamma=2.0, reduction="sum", **kw)
    np.testing.assert_array_equal(_bits(grad), _bits(ref))


@pytest.mark.parametrize("objective, kw", [
    ("softmax_grad_hess", {}),
    ("softmax_grad_hess", {"label_smoothing": 0.1, "weight": True, "hessian": "lightgbm"}),
    ("focal_grad_hess", {"gamma": 2.0, "hessian": "exact_diagonal"}),
])
@pytest.mark.parametrize("shape", [(12000, 100), (2400, 1000)])
def test_streamed_gradient_and_hessian(objective, kw, shape):
    # the boosting objectives write two outputs: together at least 8 MB
    from fastce import boosting

    rng = np.random.default_rng(13)
    raw = rng.standard_normal(shape).astype(np.float32) * 2
    y = rng.integers(0, shape[1], shape[0])
    kw = dict(kw)
    if kw.pop("weight", False):
        kw["weight"] = rng.uniform(0.5, 2.0, shape[1]).astype(np.float32)
    assert 2 * raw.nbytes >= STREAM_MIN and raw.nbytes // 16 < STREAM_MIN
    fn = getattr(boosting, objective)
    grad, hess = fn(raw, y, **kw)
    parts = [fn(np.ascontiguousarray(r), t, **kw)
             for r, t in zip(np.array_split(raw, 32), np.array_split(y, 32))]
    np.testing.assert_array_equal(_bits(grad), _bits(np.concatenate([p[0] for p in parts])))
    np.testing.assert_array_equal(_bits(hess), _bits(np.concatenate([p[1] for p in parts])))


# ---- every path streamed, on small inputs, on every SIMD variant --------

@pytest.fixture
def stream_everything():
    """Streaming stores for every output, however small (test hook)."""
    from fastce._kernels import _cross_entropy

    previous = _cross_entropy._set_stream_min_bytes(0)
    try:
        yield
    finally:
        _cross_entropy._set_stream_min_bytes(previous)


def _runnable_variants():
    return [a for a in ("baseline", "avx2", "avx512")
            if a in _runtime.built_archs().split() and _runtime_supports(a)]


def _runtime_supports(arch):
    previous = _runtime.arch_name()
    try:
        _runtime.select_arch(arch)
        return True
    except ValueError:
        return False
    finally:
        _runtime.select_arch(previous)


@pytest.mark.parametrize("arch", _runnable_variants())
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("shape, dtype", [((37, 1000), np.float32), ((300, 33), np.float32),
                                          ((45, 777), np.float64), ((9, 2048), np.float32)])
def test_forced_streaming_keeps_the_bits(stream_everything, arch, options, shape, dtype):
    from _helpers import simd_variant
    from fastce._kernels import _cross_entropy

    x, target, kw = _case(shape, dtype, options, seed=shape[1])
    with simd_variant(arch):
        streamed = fastce.cross_entropy_and_grad(x, target, **kw)
        out = np.empty_like(x)
        fastce.cross_entropy_and_grad(x, target, out=out, **kw)
        previous = _cross_entropy._set_stream_min_bytes(1 << 62)
        try:
            cached = fastce.cross_entropy_and_grad(x, target, **kw)
        finally:
            _cross_entropy._set_stream_min_bytes(previous)
    assert streamed[0] == cached[0]
    np.testing.assert_array_equal(_bits(streamed[1]), _bits(cached[1]))
    np.testing.assert_array_equal(_bits(out), _bits(cached[1]))


@pytest.mark.parametrize("arch", _runnable_variants())
def test_forced_streaming_of_gradient_and_hessian(stream_everything, arch):
    from _helpers import simd_variant
    from fastce import boosting
    from fastce._kernels import _cross_entropy

    rng = np.random.default_rng(14)
    for shape in ((70, 100), (9, 1300)):
        raw = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, shape[1], shape[0])
        with simd_variant(arch):
            streamed = boosting.focal_grad_hess(raw, y, gamma=1.5)
            previous = _cross_entropy._set_stream_min_bytes(1 << 62)
            try:
                cached = boosting.focal_grad_hess(raw, y, gamma=1.5)
            finally:
                _cross_entropy._set_stream_min_bytes(previous)
        for a, b in zip(streamed, cached):
            np.testing.assert_array_equal(_bits(a), _bits(b))
