"""Threads: results bitwise independent of the thread count and of the run
(SPEC §3.8 "Deterministic"), the thread-count API (SPEC §2.4), threadpoolctl,
concurrent calls from Python threads, and ``show_config``."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastce
from fastce._config import SERIAL_THRESHOLD

# 16 oversubscribes a small machine on purpose: the tiles, not the threads,
# fix the summation order
THREAD_COUNTS = [1, 2, 3, 7, 16]


@pytest.fixture(autouse=True)
def _restore_global_threads():
    fastce.set_num_threads(None)
    yield
    fastce.set_num_threads(None)


def _rng(seed):
    return np.random.default_rng(seed)


def _workloads():
    """(name, callable(n_threads) -> tuple of results); every input has more
    than SERIAL_THRESHOLD elements so that it can actually run in parallel."""
    rng = _rng(0)
    a = rng.normal(size=(4096, 100)).astype(np.float32) * 3
    ta = rng.integers(0, 100, size=4096)
    ta[::11] = -100
    wa = rng.uniform(0.2, 3.0, size=100).astype(np.float32)
    k = rng.normal(size=(2, 21, 64, 64)) * 2                       # float64, K-dim
    tk = rng.integers(0, 21, size=(2, 64, 64))
    tk[:, ::5, ::3] = 255
    kl = np.ascontiguousarray(np.moveaxis(k, 1, -1)).astype(np.float32)  # channels last
    row = rng.normal(size=(1, 250_000)).astype(np.float32) * 4
    trow = np.array([123_456])
    prob = rng.random(size=(2048, 40))
    prob /= prob.sum(axis=1, keepdims=True)
    b = rng.normal(size=(4096, 64)).astype(np.float32) * 4
    yb = rng.random(size=(4096, 64)).astype(np.float32)
    wb = rng.uniform(0.2, 2.0, size=(4096, 1)).astype(np.float32)
    pwb = rng.uniform(0.5, 3.0, size=64).astype(np.float32)
    pb = rng.uniform(0.01, 0.99, size=(4096, 64))
    gob = rng.normal(size=(4096, 64))
    logp = fastce.log_softmax(a)

    def ce(x, t, grad_output=None, **kw):
        return lambda n: (fastce.cross_entropy(x, t, n_threads=n, **kw),
                          *fastce.cross_entropy_and_grad(x, t, n_threads=n,
                                                         grad_output=grad_output, **kw))

    return [
        ("ce_4096x100_mean", ce(a, ta)),
        ("ce_4096x100_weighted_smoothed_sum", ce(a, ta, weight=wa, label_smoothing=0.1,
                                                 reduction="sum")),
        ("ce_4096x100_none", ce(a, ta, reduction="none",
                                grad_output=np.linspace(-1, 1, 4096))),
        ("ce_segmentation_2x21x64x64", ce(k, tk, ignore_index=255, label_smoothing=0.05)),
        ("ce_segmentation_channels_last", ce(kl, tk, ignore_index=255, axis=-1)),
        ("ce_single_row_250000", ce(row, trow)),
        ("ce_single_row_250000_smoothed", ce(row, trow, label_smoothing=0.2)),
        ("ce_prob_targets", ce(prob * 5, prob, label_smoothing=0.1)),
        ("nll_4096x100", lambda n: (
            fastce.nll_loss(logp, ta, weight=wa, n_threads=n),
            *fastce.nll_loss_and_grad(logp, ta, weight=wa, n_threads=n))),
        ("bce_logits_4096x64", lambda n: (
            fastce.binary_cross_entropy_with_logits(b, yb, weight=wb, pos_weight=pwb,
                                                    n_threads=n),
            *fastce.binary_cross_entropy_with_logits_and_grad(
                b, yb, weight=wb, pos_weight=pwb, n_threads=n),
            *fastce.binary_cross_entropy_with_logits_and_grad(
                b, yb, reduction="none", grad_output=gob, n_threads=n))),
        ("bce_4096x64", lambda n: (
            fastce.binary_cross_entropy(pb, yb, n_threads=n),
            *fastce.binary_cross_entropy_and_grad(pb, yb, reduction="sum", n_threads=n))),
        ("softmax_family_4096x100", lambda n: (
            fastce.log_softmax(a, n_threads=n), fastce.softmax(a, n_threads=n),
            fastce.logsumexp(a, n_threads=n), fastce.logsumexp(row, n_threads=n))),
    ]


WORKLOADS = _workloads()


def _assert_bitwise_equal(got, expected, what):
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        g, e = np.asarray(g), np.asarray(e)
        assert g.dtype == e.dtype and g.shape == e.shape, (what, i)
        # byte comparison: also distinguishes -0.0 / 0.0 and NaN payloads
        assert g.tobytes() == e.tobytes(), (
            f"{what}: result {i} differs, max abs diff "
            f"{np.max(np.abs(g.astype(np.float64) - e.astype(np.float64)))}")


@pytest.mark.parametrize("name,run", WORKLOADS, ids=[w[0] for w in WORKLOADS])
def test_results_are_bitwise_identical_for_any_thread_count(name, run):
    expected = run(1)
    for n in THREAD_COUNTS[1:]:
        _assert_bitwise_equal(run(n), expected, f"{name} n_threads={n}")


@pytest.mark.parametrize("name,run", WORKLOADS, ids=[w[0] for w in WORKLOADS])
def test_results_are_bitwise_identical_from_run_to_run(name, run):
    expected = run(2)
    for _ in range(3):
        _assert_bitwise_equal(run(2), expected, name)
    _assert_bitwise_equal(run(None), expected, name + " default threads")


def test_workloads_are_above_the_serial_threshold():
    """The determinism tests above only mean something if the inputs are big
    enough to be split between threads."""
    for shape in [(4096, 100), (2, 21, 64, 64), (1, 250_000), (4096, 64)]:
        assert np.prod(shape) > SERIAL_THRESHOLD


def test_global_setting_also_gives_bitwise_identical_results():
    name, run = WORKLOADS[3]
    expected = run(None)
    for n in THREAD_COUNTS:
        fastce.set_num_threads(n)
        _assert_bitwise_equal(run(None), expected, f"{name} set_num_threads({n})")


# ------------------------------------------------------- thread-count API --

def test_set_num_threads_round_trips():
    for n in (1, 2, 3, 7, 64):
        fastce.set_num_threads(n)
        assert fastce.get_num_threads() == n
    fastce.set_num_threads(np.int64(5))
    assert fastce.get_num_threads() == 5
    assert type(fastce.get_num_threads()) is int


def test_set_num_threads_none_restores_the_default():
    default = fastce.get_num_threads()
    assert default >= 1
    fastce.set_num_threads(default + 3)
    assert fastce.get_num_threads() == default + 3
    fastce.set_num_threads(None)
    assert fastce.get_num_threads() == default


def test_per_call_n_threads_does_not_change_the_global_setting():
    x = _rng(1).normal(size=(512, 100))
    t = _rng(2).integers(0, 100, size=512)
    default = fastce.get_num_threads()
    fastce.cross_entropy_and_grad(x, t, n_threads=3)
    fastce.cross_entropy(x, t, n_threads=1)
    fastce.softmax(x, n_threads=7)
    assert fastce.get_num_threads() == default
    fastce.set_num_threads(2)
    fastce.cross_entropy_and_grad(x, t, n_threads=5)
    fastce.binary_cross_entropy_with_logits(x, np.zeros_like(x), n_threads=1)
    assert fastce.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, -8, 1.5, 2.0, "2", True, False, [2], np.float64(2)])
def test_invalid_thread_counts_raise_valueerror(bad):
    with pytest.raises(ValueError):
        fastce.set_num_threads(bad)
    assert fastce.get_num_threads() >= 1


ALL_FUNCTIONS = {
    "cross_entropy": lambda n: fastce.cross_entropy([[1.0, 2.0]], [1], n_threads=n),
    "cross_entropy_and_grad": lambda n: fastce.cross_entropy_and_grad([[1.0, 2.0]], [1],
                                                                      n_threads=n),
    "nll_loss": lambda n: fastce.nll_loss([[-1.0, -2.0]], [1], n_threads=n),
    "nll_loss_and_grad": lambda n: fastce.nll_loss_and_grad([[-1.0, -2.0]], [1],
                                                            n_threads=n),
    "bce_with_logits": lambda n: fastce.binary_cross_entropy_with_logits(
        [0.5], [1.0], n_threads=n),
    "bce_with_logits_and_grad": lambda n: fastce.binary_cross_entropy_with_logits_and_grad(
        [0.5], [1.0], n_threads=n),
    "bce": lambda n: fastce.binary_cross_entropy([0.5], [1.0], n_threads=n),
    "bce_and_grad": lambda n: fastce.binary_cross_entropy_and_grad([0.5], [1.0],
                                                                   n_threads=n),
    "log_softmax": lambda n: fastce.log_softmax([1.0, 2.0], n_threads=n),
    "softmax": lambda n: fastce.softmax([1.0, 2.0], n_threads=n),
    "logsumexp": lambda n: fastce.logsumexp([1.0, 2.0], n_threads=n),
    "CrossEntropyLoss": lambda n: fastce.CrossEntropyLoss()([[1.0, 2.0]], [1],
                                                            n_threads=n),
    "CrossEntropyLoss.loss_and_grad": lambda n: fastce.CrossEntropyLoss().loss_and_grad(
        [[1.0, 2.0]], [1], n_threads=n),
}


@pytest.mark.parametrize("fn", list(ALL_FUNCTIONS))
@pytest.mark.parametrize("bad", [0, -2, 1.5, "4", True])
def test_invalid_per_call_n_threads_raise_valueerror(fn, bad):
    with pytest.raises(ValueError):
        ALL_FUNCTIONS[fn](bad)


@pytest.mark.parametrize("fn", list(ALL_FUNCTIONS))
@pytest.mark.parametrize("good", [1, 2, 16, np.int32(3)])
def test_valid_per_call_n_threads_are_accepted(fn, good):
    ALL_FUNCTIONS[fn](good)


_BIG_X = np.random.default_rng(7).normal(size=(4096, 16))      # above the serial threshold
_BIG_T = np.arange(4096) % 16
_BIG_P = 1 / (1 + np.exp(-_BIG_X))
BIG_CALLS = {
    "cross_entropy": lambda **k: fastce.cross_entropy(_BIG_X, _BIG_T, **k),
    "cross_entropy_and_grad": lambda **k: fastce.cross_entropy_and_grad(_BIG_X, _BIG_T, **k),
    "cross_entropy_prob": lambda **k: fastce.cross_entropy(_BIG_X, _BIG_P, **k),
    "nll_loss_and_grad": lambda **k: fastce.nll_loss_and_grad(_BIG_X, _BIG_T, **k),
    "bce_with_logits_and_grad": lambda **k: fastce.binary_cross_entropy_with_logits_and_grad(
        _BIG_X, _BIG_P, **k),
    "bce": lambda **k: fastce.binary_cross_entropy(_BIG_P, _BIG_P, **k),
    "softmax": lambda **k: fastce.softmax(_BIG_X, **k),
}


@pytest.mark.parametrize("fn", list(BIG_CALLS))
def test_thread_counts_beyond_a_c_int_are_clamped_not_overflowed(fn):
    want = BIG_CALLS[fn](n_threads=1)
    got = BIG_CALLS[fn](n_threads=2 ** 40)
    fastce.set_num_threads(2 ** 31)
    try:
        got_default = BIG_CALLS[fn]()
    finally:
        fastce.set_num_threads(None)
    as_tuple = lambda r: r if isinstance(r, tuple) else (r,)   # noqa: E731
    for other in (got, got_default):
        for a, b in zip(as_tuple(want), as_tuple(other)):
            np.testing.assert_array_equal(a, b)


def test_threadpoolctl_limit_applies_to_fastce():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    default = fastce.get_num_threads()
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastce.get_num_threads() == 1
        # the kernels still give the same bits
        name, run = WORKLOADS[0]
        got = run(None)
    assert fastce.get_num_threads() == default
    _assert_bitwise_equal(got, run(2), name)
    with threadpoolctl.threadpool_limits(2, user_api="openmp"):
        assert fastce.get_num_threads() == 2


def test_set_num_threads_wins_over_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    fastce.set_num_threads(3)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastce.get_num_threads() == 3


def test_threadpoolctl_sees_an_openmp_library():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    info = threadpoolctl.threadpool_info()
    assert any(lib.get("user_api") == "openmp" for lib in info), info


# --------------------------------------------------- Python-level threads --

def test_concurrent_python_threads_get_the_serial_results():
    rng = _rng(7)
    inputs = [(rng.normal(size=(2048, 64)).astype(np.float32 if i % 2 else np.float64) * 3,
               rng.integers(0, 64, size=2048)) for i in range(8)]
    serial = [fastce.cross_entropy_and_grad(x, t, label_smoothing=0.1) for x, t in inputs]
    barrier = threading.Barrier(8)

    def work(i):
        x, t = inputs[i]
        barrier.wait()
        return [fastce.cross_entropy_and_grad(x, t, label_smoothing=0.1) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    for i, runs in enumerate(results):
        for r in runs:
            _assert_bitwise_equal(r, serial[i], f"thread {i}")


def test_concurrent_python_threads_with_out_and_different_losses():
    rng = _rng(8)
    x = rng.normal(size=(1024, 64))
    y = rng.random(size=(1024, 64))
    t = rng.integers(0, 64, size=1024)
    jobs = [
        lambda out: fastce.cross_entropy_and_grad(x, t, out=out),
        lambda out: fastce.nll_loss_and_grad(x, t, out=out),
        lambda out: fastce.binary_cross_entropy_with_logits_and_grad(x, y, out=out),
        lambda out: fastce.binary_cross_entropy_and_grad(y, y, out=out),
    ] * 2
    serial = [tuple(np.copy(r) for r in job(np.empty_like(x))) for job in jobs]
    barrier = threading.Barrier(len(jobs))

    def work(i):
        out = np.empty_like(x)
        barrier.wait()
        return tuple(np.copy(r) for r in jobs[i](out))

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(work, range(len(jobs))))
    for i, r in enumerate(results):
        _assert_bitwise_equal(r, serial[i], f"job {i}")


# ------------------------------------------------------------ show_config --

def test_show_config_prints_openmp_version_and_threads(capsys):
    fastce.show_config()
    text = capsys.readouterr().out
    assert "OpenMP" in text
    assert fastce.__version__ in text
    assert str(fastce.get_num_threads()) in text


def test_show_config_reports_the_current_thread_count(capsys):
    fastce.set_num_threads(5)
    fastce.show_config()
    text = capsys.readouterr().out
    line = [ln for ln in text.splitlines() if "thread" in ln.lower()]
    assert line and "5" in line[0], text


def test_thread_counts_cover_the_required_set():
    """SPEC §3.8 / the hardening issue: 1, 2, 3, 7 and 16 threads."""
    assert set(THREAD_COUNTS) >= {1, 2, 3, 7, 16}


# ------------------------------------ concurrent calls against a reference --

def _ref_log_softmax(x, axis):
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def _ref_cross_entropy_and_grad(x, t, weight=None, eps=0.0, axis=1):
    """float64 NumPy cross-entropy (mean) and its gradient, class axis ``axis``."""
    logp = np.moveaxis(_ref_log_softmax(x, axis), axis, -1)
    C = logp.shape[-1]
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    tt = t[..., None]
    wt = w[t]
    main = -wt * np.take_along_axis(logp, tt, -1)[..., 0]
    smooth = -(w * logp).sum(-1)
    den = wt.sum()
    loss = ((1 - eps) * main + eps / C * smooth).sum() / den
    p = np.exp(logp)
    g = ((1 - eps) * wt + eps / C * w.sum())[..., None] * p - eps / C * w
    gt = np.take_along_axis(g, tt, -1) - ((1 - eps) * wt)[..., None]
    np.put_along_axis(g, tt, gt, -1)
    return loss, np.moveaxis(g / den, -1, axis)


def _ref_bce_with_logits_and_grad(x, y, pos_weight):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    pw = np.asarray(pos_weight, dtype=np.float64)
    loss = (1 - y) * np.logaddexp(0, x) + pw * y * np.logaddexp(0, -x)
    sig = 0.5 * (1 + np.tanh(x / 2))
    return loss.sum(), (1 - y) * sig - pw * y * (1 - sig)


def _concurrent_jobs():
    """Eight different calls -- different shapes, dtypes, losses and layouts,
    each large enough to run on several OpenMP threads -- with their float64
    NumPy reference."""
    rng = _rng(21)
    jobs = []
    for i in range(8):
        dtype = np.float32 if i % 2 else np.float64
        if i % 4 == 0:
            n, c = 1500 + 97 * i, 40 + i
            x = (rng.normal(size=(n, c)) * 3).astype(dtype)
            t = rng.integers(0, c, size=n)
            w = rng.uniform(0.5, 2.0, size=c)
            eps = 0.05 * i
            jobs.append((
                lambda x=x, t=t, w=w, eps=eps: fastce.cross_entropy_and_grad(
                    x, t, weight=w, label_smoothing=eps, n_threads=2),
                _ref_cross_entropy_and_grad(x, t, w, eps), dtype, "mean"))
        elif i % 4 == 1:
            x = (rng.normal(size=(2, 11 + i, 40, 48)) * 2).astype(dtype)
            t = rng.integers(0, 11 + i, size=(2, 40, 48))
            jobs.append((
                lambda x=x, t=t: fastce.cross_entropy_and_grad(x, t, n_threads=2),
                _ref_cross_entropy_and_grad(x, t), dtype, "mean"))
        elif i % 4 == 2:
            x = (rng.normal(size=(900 + 50 * i, 50)) * 4).astype(dtype)
            y = rng.random(size=x.shape).astype(dtype)
            pw = rng.uniform(0.5, 3.0, size=50)
            jobs.append((
                lambda x=x, y=y, pw=pw: fastce.binary_cross_entropy_with_logits_and_grad(
                    x, y, reduction="sum", pos_weight=pw, n_threads=3),
                _ref_bce_with_logits_and_grad(x, y, pw), dtype, "sum"))
        else:
            x = (rng.normal(size=(800 + 30 * i, 64)) * 5).astype(dtype)
            t = rng.integers(0, 64, size=x.shape[0])
            jobs.append((
                lambda x=x, t=t: fastce.cross_entropy_and_grad(x, t, axis=-1, n_threads=7),
                _ref_cross_entropy_and_grad(x, t, axis=-1), dtype, "mean"))
    return jobs


def test_eight_python_threads_with_different_inputs_all_get_correct_results():
    jobs = _concurrent_jobs()
    serial = [job() for job, _, _, _ in jobs]
    barrier = threading.Barrier(len(jobs))

    def work(i):
        barrier.wait()
        return [jobs[i][0]() for _ in range(4)]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(work, range(len(jobs))))
    for i, (runs, (_, (ref_loss, ref_grad), dtype, _)) in enumerate(zip(results, jobs)):
        rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-12)
        for loss, grad in runs:
            assert loss.dtype == dtype and grad.dtype == dtype, i
            np.testing.assert_allclose(float(loss), ref_loss, rtol=rtol, atol=atol,
                                       err_msg=f"thread {i}: loss")
            np.testing.assert_allclose(grad, ref_grad, rtol=10 * rtol, atol=atol,
                                       err_msg=f"thread {i}: grad")
            # and exactly what the same call gives when nothing else runs
            _assert_bitwise_equal((loss, grad), serial[i], f"thread {i}")


def test_concurrent_threads_with_different_global_and_per_call_thread_counts():
    """Python threads that each ask for a different n_threads (1, 2, 3, 7,
    16) at the same time still get the bits of a serial call."""
    name, run = WORKLOADS[0]
    expected = run(1)
    counts = [1, 2, 3, 7, 16, 2, 3, 7]
    barrier = threading.Barrier(len(counts))

    def work(n):
        barrier.wait()
        return run(n)

    with ThreadPoolExecutor(max_workers=len(counts)) as pool:
        results = list(pool.map(work, counts))
    for n, got in zip(counts, results):
        _assert_bitwise_equal(got, expected, f"{name} n_threads={n} (concurrent)")
