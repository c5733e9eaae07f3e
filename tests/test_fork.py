"""fork() after a parallel call: a child made with multiprocessing's "fork"
start method (the default on Linux before Python 3.14) must be able to call
fastce -- in parallel too -- without hanging, and get the parent's results.

OpenMP runtimes keep a pool of worker threads that a forked child does not
inherit; a runtime that does not handle this deadlocks the child's first
parallel region.  Each child runs under a timeout, so a hang fails the test
instead of hanging CI."""
from __future__ import annotations

import multiprocessing as mp
import os
import warnings

import numpy as np
import pytest

import fastce
from fastce._config import SERIAL_THRESHOLD

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or "fork" not in mp.get_all_start_methods(),
    reason="needs the fork start method")

CHILD_TIMEOUT = 60  # seconds; the child's work takes well under one


def _inputs():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(4096, 100)).astype(np.float32) * 3   # > SERIAL_THRESHOLD
    t = rng.integers(0, 100, size=4096)
    b = rng.normal(size=(2048, 64))
    y = rng.random(size=(2048, 64))
    row = rng.normal(size=(1, 200_000)).astype(np.float32)    # the split path
    k = rng.normal(size=(2, 21, 40, 40))                      # class axis not last
    tk = rng.integers(0, 21, size=(2, 40, 40))
    assert x.size > SERIAL_THRESHOLD and b.size > SERIAL_THRESHOLD
    return x, t, b, y, row, k, tk


def _work(n_threads):
    """Every kernel family, in parallel (n_threads > 1) where the input allows."""
    x, t, b, y, row, k, tk = _inputs()
    return [
        *fastce.cross_entropy_and_grad(x, t, label_smoothing=0.1, n_threads=n_threads),
        fastce.nll_loss(x, t, n_threads=n_threads),
        *fastce.binary_cross_entropy_with_logits_and_grad(b, y, n_threads=n_threads),
        fastce.binary_cross_entropy(y, y, n_threads=n_threads),
        fastce.logsumexp(row, n_threads=n_threads),
        fastce.softmax(x, n_threads=n_threads),
        *fastce.cross_entropy_and_grad(k, tk, n_threads=n_threads),
    ]


def _child(conn, n_threads, use_global):
    try:
        if use_global:
            fastce.set_num_threads(n_threads)
            results = _work(None)
        else:
            results = _work(n_threads)
        conn.send(("ok", [np.asarray(r) for r in results]))
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


def _run_in_forked_child(n_threads, use_global=False):
    ctx = mp.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    with warnings.catch_warnings():
        # Python >= 3.12 warns that forking a multi-threaded process (the
        # OpenMP workers) may deadlock: that is exactly what is tested here
        warnings.simplefilter("ignore", DeprecationWarning)
        proc = ctx.Process(target=_child, args=(child_conn, n_threads, use_global))
        proc.start()
    child_conn.close()
    try:
        if not parent_conn.poll(CHILD_TIMEOUT):
            pytest.fail(f"the forked child did not answer within {CHILD_TIMEOUT} s: "
                        "fastce hangs after fork (OpenMP runtime not fork-safe)")
        status, payload = parent_conn.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert status == "ok", f"the forked child failed: {payload}"
    assert proc.exitcode == 0, proc.exitcode
    return payload


def _assert_same(got, expected):
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        e = np.asarray(e)
        assert g.dtype == e.dtype and g.shape == e.shape, i
        assert g.tobytes() == e.tobytes(), f"result {i} differs in the child"


@pytest.mark.parametrize("child_threads", [2, 1, 3])
def test_forked_child_can_call_fastce_after_a_parallel_call(child_threads):
    expected = _work(2)          # the parent's OpenMP pool now exists
    fastce.cross_entropy_and_grad(*_inputs()[:2], n_threads=2)
    got = _run_in_forked_child(child_threads)
    # results do not depend on the thread count, so the child's must be the
    # parent's, bit for bit
    _assert_same(got, expected)


def test_forked_child_uses_the_global_thread_setting_without_hanging():
    _work(2)
    got = _run_in_forked_child(2, use_global=True)
    _assert_same(got, _work(1))


def test_parent_still_works_after_forking_children():
    before = _work(2)
    _run_in_forked_child(2)
    _run_in_forked_child(2)
    _assert_same([np.asarray(r) for r in _work(2)], before)


def test_forked_grandchild_can_call_fastce():
    """fork from a child that itself ran parallel regions after a fork."""
    _work(2)

    def middle(conn):
        try:
            _work(2)
            conn.send(("ok", _run_in_forked_child(2)))
        except BaseException as exc:  # noqa: BLE001
            conn.send(("error", repr(exc)))
        finally:
            conn.close()

    ctx = mp.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        proc = ctx.Process(target=middle, args=(child_conn,))
        proc.start()
    child_conn.close()
    try:
        if not parent_conn.poll(2 * CHILD_TIMEOUT + 10):
            pytest.fail("the forked child / grandchild hung")
        status, payload = parent_conn.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert status == "ok", payload
    _assert_same(payload, _work(2))
