"""The losses over Dask arrays: lazy results equal to the NumPy call, with
global means, for every chunking; one read of each block for loss and
gradient; errors at graph-build or compute time; and the same on a real
``distributed.LocalCluster`` of two single-threaded worker processes.
"""
from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import fastce

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

RNG = np.random.default_rng(141414)
CHUNKINGS = ["equal", "unequal", "single-row"]


def _row_chunks(n, kind):
    if kind == "equal":
        return n // 4 or 1
    if kind == "single-row":
        return 1
    sizes, left = [], n
    for s in (7, 1, 13, 2):
        sizes.append(min(s, left))
        left -= sizes[-1]
        if not left:
            break
    if left:
        sizes.append(left)
    return tuple(s for s in sizes if s)


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [{}, {"weight": True}, {"ignore": True},
                                     {"label_smoothing": 0.2, "weight": True,
                                      "ignore": True},
                                     {"sample_weight": True, "weight": True},
                                     {"z_loss": 1e-3}])
def test_cross_entropy_equals_numpy(chunking, reduction, options):
    n, c = 40, 6
    x = RNG.normal(size=(n, c)) * 2
    t = RNG.integers(0, c, n)
    kw = {}
    if options.get("ignore"):
        t[::5] = -100
    if options.get("weight"):
        kw["weight"] = RNG.uniform(0.5, 2.0, c)
    if options.get("sample_weight"):
        kw["sample_weight"] = RNG.uniform(0.0, 2.0, n)
    for k in ("label_smoothing", "z_loss"):
        if k in options:
            kw[k] = options[k]
    X = da.from_array(x, chunks=(_row_chunks(n, chunking), c))
    T = da.from_array(t, chunks=X.chunks[0])
    lazy = fastce.cross_entropy(X, T, reduction=reduction, **kw)
    assert dask.is_dask_collection(lazy)
    _close(lazy.compute(), fastce.cross_entropy(x, t, reduction=reduction, **kw))
    loss, grad = fastce.cross_entropy_and_grad(X, T, reduction=reduction, **kw)
    loss, grad = dask.compute(loss, grad)
    ref_loss, ref_grad = fastce.cross_entropy_and_grad(x, t, reduction=reduction, **kw)
    _close(loss, ref_loss)
    _close(grad, ref_grad)
    # a NumPy target beside a Dask input works the same
    _close(fastce.cross_entropy(X, t, reduction=reduction, **kw).compute(),
           fastce.cross_entropy(x, t, reduction=reduction, **kw))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_targets_kdim_nll_and_focal(reduction):
    x = RNG.normal(size=(5, 4, 6, 3))
    p = RNG.dirichlet(np.ones(4), size=(5, 6, 3)).transpose(0, 3, 1, 2)
    t = RNG.integers(0, 4, (5, 6, 3))
    t[1, 2] = -100
    X = da.from_array(x, chunks=(2, 4, 4, 2))        # spatial axes chunked too
    cases = [
        (fastce.cross_entropy, (x, p), (X, da.from_array(p, chunks=X.chunks)), {}),
        (fastce.cross_entropy, (x, t), (X, t), {"label_smoothing": 0.1}),
        (fastce.nll_loss, (x, t), (X, t), {}),
        (fastce.focal_loss, (x, t), (X, t), {"gamma": 2.0}),
    ]
    for fn, numpy_args, dask_args, kw in cases:
        _close(fn(*dask_args, reduction=reduction, **kw).compute(),
               fn(*numpy_args, reduction=reduction, **kw))
    loss, grad = dask.compute(*fastce.focal_loss_and_grad(X, t, gamma=1.5,
                                                          reduction=reduction))
    ref = fastce.focal_loss_and_grad(x, t, gamma=1.5, reduction=reduction)
    _close(loss, ref[0])
    _close(grad, ref[1])


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_losses_equal_numpy(chunking, reduction):
    n, c = 30, 5
    x = RNG.normal(size=(n, c)) * 3
    y = RNG.uniform(size=(n, c))
    X = da.from_array(x, chunks=(_row_chunks(n, chunking), 2))
    Y = da.from_array(y, chunks=X.chunks)
    kw = dict(weight=RNG.uniform(0.5, 2.0, c), pos_weight=RNG.uniform(1.0, 3.0, c),
              sample_weight=RNG.uniform(0.0, 2.0, (n, 1)))
    for k in ({}, {"pos_weight": kw["pos_weight"]}, kw):
        _close(fastce.binary_cross_entropy_with_logits(X, Y, reduction=reduction,
                                                       **k).compute(),
               fastce.binary_cross_entropy_with_logits(x, y, reduction=reduction, **k))
        loss, grad = dask.compute(*fastce.binary_cross_entropy_with_logits_and_grad(
            X, Y, reduction=reduction, **k))
        ref = fastce.binary_cross_entropy_with_logits_and_grad(x, y, reduction=reduction,
                                                               **k)
        _close(loss, ref[0])
        _close(grad, ref[1])
    prob = 1 / (1 + np.exp(-x))
    P = da.from_array(prob, chunks=X.chunks)
    _close(fastce.binary_cross_entropy(P, Y, reduction=reduction).compute(),
           fastce.binary_cross_entropy(prob, y, reduction=reduction))
    _close(fastce.sigmoid_focal_loss(X, Y, reduction=reduction).compute(),
           fastce.sigmoid_focal_loss(x, y, reduction=reduction))
    # Dask weights broadcast per block as NumPy ones do
    W = da.from_array(kw["weight"], chunks=2)
    _close(fastce.binary_cross_entropy_with_logits(X, Y, weight=W,
                                                   reduction=reduction).compute(),
           fastce.binary_cross_entropy_with_logits(x, y, weight=kw["weight"],
                                                   reduction=reduction))


def test_mean_is_global_not_a_mean_of_block_means():
    # two blocks of very different sizes and weights
    x = RNG.normal(size=(11, 3))
    t = RNG.integers(0, 3, 11)
    w = np.array([1.0, 10.0, 0.1])
    X = da.from_array(x, chunks=((1, 10), 3))
    blocks = [fastce.cross_entropy(x[:1], t[:1], weight=w),
              fastce.cross_entropy(x[1:], t[1:], weight=w)]
    lazy = fastce.cross_entropy(X, t, weight=w).compute()
    _close(lazy, fastce.cross_entropy(x, t, weight=w))
    assert abs(float(lazy) - np.mean(blocks)) > 1e-3


def test_all_ignored_chunks_and_batches():
    x = RNG.normal(size=(12, 4))
    t = RNG.integers(0, 4, 12)
    t[:6] = -100                       # the first two chunks ignore everything
    X = da.from_array(x, chunks=(3, 4))
    _close(fastce.cross_entropy(X, t).compute(), fastce.cross_entropy(x, t))
    loss, grad = dask.compute(*fastce.cross_entropy_and_grad(X, t))
    _close(grad, fastce.cross_entropy_and_grad(x, t)[1])
    all_ignored = np.full(12, -100)
    assert np.isnan(fastce.cross_entropy(X, all_ignored).compute())
    assert np.isnan(fastce.cross_entropy(x, all_ignored))


def test_float32_dtypes_and_run_to_run_bits():
    x = RNG.normal(size=(500, 30)).astype(np.float32)
    t = RNG.integers(0, 30, 500)
    X = da.from_array(x, chunks=(37, 30))
    first = dask.compute(*fastce.cross_entropy_and_grad(X, t))
    again = dask.compute(*fastce.cross_entropy_and_grad(X, t))
    assert first[0].dtype == np.float32 and first[1].dtype == np.float32
    assert first[0].tobytes() == again[0].tobytes()
    assert first[1].tobytes() == again[1].tobytes()
    np.testing.assert_allclose(first[0], fastce.cross_entropy(x, t), rtol=1e-6)


def test_nothing_is_computed_until_asked_and_blocks_are_read_once():
    x = RNG.normal(size=(40, 5))
    t = RNG.integers(0, 5, 40)
    reads = []
    lock = threading.Lock()

    def load(block):
        with lock:
            reads.append(1)
        return block

    X = da.from_array(x, chunks=(10, 5)).map_blocks(load, dtype=x.dtype,
                                                    meta=np.empty((0, 0), x.dtype))
    loss, grad = fastce.cross_entropy_and_grad(X, t)
    forward = fastce.cross_entropy(X, t, reduction="none")
    assert reads == []                        # the graph only
    dask.compute(loss, grad, scheduler="threads")
    assert len(reads) == X.numblocks[0]       # loss and gradient: one read per block
    reads.clear()
    forward.compute()
    assert len(reads) == X.numblocks[0]


def _misaligned_copy(a):
    """``a``'s values in an array at an odd address (as distributed leaves a
    received block in its message frame)."""
    raw = np.empty(a.nbytes + 1, np.uint8)
    out = np.ndarray(a.shape, a.dtype, buffer=raw, offset=1)
    out[...] = a
    assert not out.flags.aligned
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_misaligned_blocks_are_copied_into_a_reused_buffer(dtype):
    from fastce import _dask
    x = RNG.normal(size=(90, 7)).astype(dtype)
    t = RNG.integers(0, 7, 90)
    p = RNG.dirichlet(np.ones(7), 90).astype(dtype)
    y = (RNG.uniform(size=x.shape) < 0.4).astype(dtype)
    X, P, Y = (da.from_array(a, chunks=(20, 7)).map_blocks(_misaligned_copy)
               for a in (x, p, y))                           # 5 misaligned blocks each
    for reduction in ("mean", "none"):
        loss, grad = dask.compute(*fastce.cross_entropy_and_grad(
            X, t, reduction=reduction, label_smoothing=0.1), scheduler="threads")
        ref = fastce.cross_entropy_and_grad(x, t, reduction=reduction, label_smoothing=0.1)
        _close(loss, ref[0])
        _close(grad, ref[1])    # every block's own values, not the buffer's last ones
        _close(fastce.cross_entropy(X, P, reduction=reduction).compute(scheduler="sync"),
               fastce.cross_entropy(x, p, reduction=reduction))
        loss, grad = dask.compute(*fastce.binary_cross_entropy_with_logits_and_grad(
            X, Y, reduction=reduction), scheduler="sync")
        ref = fastce.binary_cross_entropy_with_logits_and_grad(x, y, reduction=reduction)
        _close(loss, ref[0])
        _close(grad, ref[1])
    buffers = _dask._scratch.buffers       # this thread's, from the "sync" calls
    kept = buffers["input"]
    fastce.cross_entropy(X, t).compute(scheduler="sync")
    assert _dask._scratch.buffers["input"] is kept
    assert kept.nbytes == 20 * 7 * np.dtype(dtype).itemsize
    aligned = x[:20].copy()
    assert _dask._realigned(aligned, "input") is aligned      # no copy when aligned


def _linear_case(rng, n, d, v, *, index=True, ignore=True, dtype=np.float64):
    h = rng.normal(size=(n, d)).astype(dtype)
    W = (rng.normal(size=(v, d)) / np.sqrt(d)).astype(dtype)
    b = rng.normal(size=v).astype(dtype)
    if index:
        t = rng.integers(0, v, n)
        if ignore:
            t[::5] = -100
    else:
        t = rng.dirichlet(np.ones(v), n).astype(dtype)
    return h, W, b, t


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [{}, {"bias": True, "weight": True},
                                     {"label_smoothing": 0.1, "z_loss": 1e-3,
                                      "softcap": 4.0, "bias": True},
                                     {"probabilities": True, "weight": True},
                                     {"chunk_size": 3, "weight": True}])
def test_linear_cross_entropy_equals_numpy(chunking, reduction, options):
    n, d, v = 33, 6, 9
    h, W, b, t = _linear_case(RNG, n, d, v, index=not options.get("probabilities"))
    kw = dict(reduction=reduction)
    for key in ("label_smoothing", "z_loss", "softcap", "chunk_size"):
        if key in options:
            kw[key] = options[key]
    if options.get("bias"):
        kw["linear_bias"] = b
    if options.get("weight"):
        kw["weight"] = RNG.uniform(0.5, 2.0, v)
    H = da.from_array(h, chunks=(_row_chunks(n, chunking), d))
    T = da.from_array(t, chunks=H.chunks[:1] + ((() if t.ndim == 1 else (v,))))
    lazy = fastce.linear_cross_entropy(H, W, T, **kw)
    assert dask.is_dask_collection(lazy)
    _close(lazy.compute(), fastce.linear_cross_entropy(h, W, t, **kw))
    go = RNG.uniform(0.5, 2.0, n) if reduction == "none" else 0.7
    results = fastce.linear_cross_entropy_and_grad(H, W, t, grad_output=go, **kw)
    assert all(dask.is_dask_collection(r) for r in results if r is not None)
    got = dask.compute(*results)
    ref = fastce.linear_cross_entropy_and_grad(h, W, t, grad_output=go, **kw)
    for a, r in zip(got, ref):
        if r is None:
            assert a is None
        else:
            assert np.shape(a) == np.shape(r)
            _close(a, r)


def test_linear_cross_entropy_batch_shapes_dtypes_and_dask_operands():
    h, W, b, t = _linear_case(RNG, 24, 5, 7, dtype=np.float32)
    h3, t3 = h.reshape(4, 6, 5), t.reshape(4, 6)
    H3 = da.from_array(h3, chunks=(3, 4, 5))               # both batch axes chunked
    got = dask.compute(*fastce.linear_cross_entropy_and_grad(
        H3, da.from_array(W, chunks=(3, 5)), t3, linear_bias=da.from_array(b, chunks=4),
        weight=da.from_array(np.linspace(0.5, 2, 7), chunks=3)))
    ref = fastce.linear_cross_entropy_and_grad(h3, W, t3, linear_bias=b,
                                               weight=np.linspace(0.5, 2, 7))
    for a, r in zip(got, ref):
        assert a.dtype == np.float32 and a.shape == r.shape
        np.testing.assert_allclose(a, r, rtol=2e-5, atol=1e-6)
    first = dask.compute(*fastce.linear_cross_entropy_and_grad(H3, W, t3))
    again = dask.compute(*fastce.linear_cross_entropy_and_grad(H3, W, t3))
    assert all(x.tobytes() == y.tobytes() for x, y in zip(first, again) if x is not None)
    loss_fn = fastce.LinearCrossEntropyLoss(label_smoothing=0.05)
    _close(loss_fn(da.from_array(h, chunks=10), W, t).compute(), loss_fn(h, W, t))


def test_linear_cross_entropy_ignored_blocks_and_batches():
    h, W, b, t = _linear_case(RNG, 20, 4, 6)
    t[5:15] = -100                            # blocks 1 and 2 (of 4) fully ignored
    H = da.from_array(h, chunks=5)
    got = dask.compute(*fastce.linear_cross_entropy_and_grad(H, W, t, linear_bias=b))
    ref = fastce.linear_cross_entropy_and_grad(h, W, t, linear_bias=b)
    for a, r in zip(got, ref):
        _close(a, r)
    assert not got[1][5:15].any()
    none = np.full(20, -100)
    loss, gi, gw, _ = dask.compute(*fastce.linear_cross_entropy_and_grad(H, W, none))
    assert np.isnan(loss) and np.isnan(fastce.linear_cross_entropy(h, W, none))
    assert not gi.any()


def test_linear_cross_entropy_errors():
    h, W, b, t = _linear_case(RNG, 20, 4, 6)
    H = da.from_array(h, chunks=6)
    with pytest.raises(ValueError, match=r"input shape \(20, 4\) and linear_weight shape "
                                         r"\(6, 3\)"):
        fastce.linear_cross_entropy(H, W[:, :3], t)           # at graph-build time
    with pytest.raises(ValueError, match=r"linear_bias shape \(5,\)"):
        fastce.linear_cross_entropy(H, W, t, linear_bias=b[:5])
    with pytest.raises(ValueError, match=r"target shape \(19,\) does not match"):
        fastce.linear_cross_entropy(H, W, t[:19])
    with pytest.raises(ValueError, match="share one dtype"):
        fastce.linear_cross_entropy(H, W.astype(np.float32), t)
    with pytest.raises(ValueError, match="ignore_index"):
        fastce.linear_cross_entropy(H, W, RNG.dirichlet(np.ones(6), 20), ignore_index=1)
    with pytest.raises(TypeError, match="out="):
        fastce.linear_cross_entropy_and_grad(H, W, t, out=(np.empty_like(h),
                                                           np.empty_like(W), None))
    bad = t.copy()
    bad[14] = 6
    lazy = fastce.linear_cross_entropy(H, W, bad)
    with pytest.raises(IndexError) as lazy_error:
        lazy.compute()
    with pytest.raises(IndexError) as numpy_error:
        fastce.linear_cross_entropy(h, W, bad)
    assert str(lazy_error.value) == str(numpy_error.value)
    with pytest.raises(IndexError, match=r"\(14,\)"):
        dask.compute(*fastce.linear_cross_entropy_and_grad(H, W, bad))
    with pytest.warns(Warning, match="feature axis"):
        split = fastce.linear_cross_entropy(da.from_array(h, chunks=(6, 2)), W, t)
    _close(split.compute(), fastce.linear_cross_entropy(h, W, t))


def test_split_class_axis_is_rechunked_with_a_warning():
    x = RNG.normal(size=(20, 8))
    t = RNG.integers(0, 8, 20)
    X = da.from_array(x, chunks=(5, 3))
    with pytest.warns(Warning, match="class axis .* split over 3 chunks"):
        lazy = fastce.cross_entropy(X, t)
    _close(lazy.compute(), fastce.cross_entropy(x, t))


def test_errors():
    x = RNG.normal(size=(20, 4, 3))
    t = RNG.integers(0, 4, (20, 3))
    X = da.from_array(x, chunks=(6, 4, 2))
    with pytest.raises(ValueError, match=r"target shape \(20,\) does not match"):
        fastce.cross_entropy(X, t[:, 0])          # at graph-build time
    with pytest.raises(ValueError, match="weight"):
        fastce.cross_entropy(X, t, weight=np.ones(3))
    with pytest.raises(TypeError, match="out="):
        fastce.cross_entropy_and_grad(X, t, out=np.empty(x.shape))
    with pytest.raises(ValueError, match="Target size"):
        fastce.binary_cross_entropy_with_logits(X, X[:, 0])
    bad = t.copy()
    bad[13, 1] = 7
    lazy = fastce.cross_entropy(X, bad)            # built without complaint
    with pytest.raises(IndexError) as lazy_error:
        lazy.compute()
    with pytest.raises(IndexError) as numpy_error:
        fastce.cross_entropy(x, bad)
    assert str(lazy_error.value) == str(numpy_error.value)
    assert "(13, 1)" in str(lazy_error.value)
    with pytest.raises(IndexError, match=r"\(13, 1\)"):
        dask.compute(*fastce.cross_entropy_and_grad(X, bad))
    p = 1 / (1 + np.exp(-x))
    p[17, 2, 1] = 2.0
    with pytest.raises(ValueError, match=r"2\.0.*\(17, 2, 1\)"):
        fastce.binary_cross_entropy(da.from_array(p, chunks=5), p * 0).compute()
    y = np.full_like(x, 0.5)
    y[11, 0, 2] = -0.25
    with pytest.raises(ValueError, match=r"target.*-0\.25.*\(11, 0, 2\)"):
        dask.compute(*fastce.binary_cross_entropy_and_grad(
            da.from_array(1 / (1 + np.exp(-x)), chunks=5), y))


def test_class_weights():
    t = RNG.integers(0, 5, (60, 4))
    t[3, 2] = -100
    T = da.from_array(t, chunks=(13, 3))
    for method in ("inverse_frequency", "balanced", "effective_number",
                   "median_frequency"):
        lazy = fastce.class_weights(T, 5, method=method)
        assert dask.is_dask_collection(lazy)
        _close(lazy.compute(), fastce.class_weights(t, 5, method=method))
    with pytest.raises(ValueError, match="num_classes"):
        fastce.class_weights(T)
    bad = t.copy()
    bad[50, 3] = 5
    with pytest.raises(IndexError, match=r"\(50, 3\)"):
        fastce.class_weights(da.from_array(bad, chunks=(13, 3)), 5).compute()


def test_loss_objects_take_dask_arrays():
    x = RNG.normal(size=(24, 3))
    t = RNG.integers(0, 3, 24)
    X = da.from_array(x, chunks=(5, 3))
    loss = fastce.CrossEntropyLoss(weight=np.array([1.0, 2.0, 0.5]), label_smoothing=0.1)
    _close(loss(X, t).compute(), loss(x, t))
    value, grad = loss.loss_and_grad(X, t)
    _close(grad.compute(), loss.loss_and_grad(x, t)[1])


# --------------------------------------------------------- a real cluster --

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_on_a_local_cluster(client):
    x = RNG.normal(size=(400, 12)).astype(np.float32)
    t = RNG.integers(0, 12, 400)
    t[::7] = -100
    w = RNG.uniform(0.5, 2.0, 12).astype(np.float32)
    X = da.from_array(x, chunks=((50, 150, 10, 190), 12))
    loss, grad = fastce.cross_entropy_and_grad(X, t, weight=w, label_smoothing=0.05)
    loss, grad = client.compute([loss, grad], sync=True)
    ref = fastce.cross_entropy_and_grad(x, t, weight=w, label_smoothing=0.05)
    np.testing.assert_allclose(loss, ref[0], rtol=1e-6)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-5, atol=1e-7)
    y = (RNG.uniform(size=(400, 12)) < 0.3).astype(np.float32)
    lazy = fastce.binary_cross_entropy_with_logits(X, da.from_array(y, chunks=X.chunks),
                                                   pos_weight=np.full(12, 2.0, np.float32))
    np.testing.assert_allclose(client.compute(lazy, sync=True),
                               fastce.binary_cross_entropy_with_logits(
                                   x, y, pos_weight=np.full(12, 2.0, np.float32)),
                               rtol=1e-6)
    bad = t.copy()
    bad[321] = 12
    with pytest.raises(IndexError, match=r"\(321,\)"):
        client.compute(fastce.cross_entropy(X, bad), sync=True)


def test_linear_cross_entropy_on_a_local_cluster(client):
    h, W, b, t = _linear_case(RNG, 300, 16, 40, dtype=np.float32)
    H = da.from_array(h, chunks=70)
    got = client.compute(list(fastce.linear_cross_entropy_and_grad(
        H, W, t, linear_bias=b, label_smoothing=0.1)), sync=True)
    ref = fastce.linear_cross_entropy_and_grad(h, W, t, linear_bias=b, label_smoothing=0.1)
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=2e-5, atol=1e-6)
    loss_fn = fastce.LinearCrossEntropyLoss(z_loss=1e-4)
    remote = client.submit(loss_fn, h, W, t).result()       # the object pickles
    np.testing.assert_allclose(remote, loss_fn(h, W, t), rtol=1e-6)


def test_blocks_shipped_to_a_cluster(client):
    # blocks sent from the client arrive wherever they sat in the message
    # frame, often misaligned; the result is the NumPy call's all the same
    x = RNG.normal(size=(3000, 20)).astype(np.float32)
    t = RNG.integers(0, 20, 3000)
    X = client.persist(da.from_array(x, chunks=(700, 20)))
    loss, grad = client.compute(list(fastce.cross_entropy_and_grad(X, t)), sync=True)
    ref = fastce.cross_entropy_and_grad(x, t)
    np.testing.assert_allclose(loss, ref[0], rtol=1e-6)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-5, atol=1e-8)


def test_loss_objects_pickle_to_workers(client):
    x = RNG.normal(size=(30, 4))
    t = RNG.integers(0, 4, 30)
    for loss in (fastce.CrossEntropyLoss(weight=np.array([1.0, 2.0, 3.0, 4.0])),
                 fastce.FocalLoss(gamma=2.0), fastce.BCEWithLogitsLoss()):
        assert pickle.loads(pickle.dumps(loss)) is not None
        if isinstance(loss, fastce.BCEWithLogitsLoss):
            args = (x, (x > 0).astype(float))
        else:
            args = (x, t)
        remote = client.submit(loss, *args).result()
        np.testing.assert_allclose(remote, loss(*args), rtol=1e-12)


def test_dask_compare_script_runs(capsys):
    pytest.importorskip("distributed")
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    try:
        import dask_compare
    finally:
        sys.path.pop(0)
    med = dask_compare.main(["--rows", "4096", "--chunk-rows", "1024", "--classes", "8",
                             "--rounds", "1", "--settle", "0", "--markdown"])
    assert {"numpy forward", "made forward", "shipped l+g", "no-op graph"} <= set(med)
    out = capsys.readouterr().out
    assert "| forward |" in out and "| l+g |" in out
