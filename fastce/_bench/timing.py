"""Measuring: interleaved medians, the exp floor, peak extra memory.

Every implementation of one pass is timed **interleaved**: each round calls
each of them once, so slow drifts of a shared machine (frequency, other
processes) hit all of them alike, and the number kept is the median over
rounds.  Nothing here knows about losses or workloads: it times zero-argument
callables, which `fastce._bench.run` builds.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
import tracemalloc

__all__ = ["WARMUP_CALLS", "MIN_ROUNDS", "interleaved_medians", "exp_floor",
           "peak_extra_bytes"]

#: Calls of every implementation before timing starts (first-call set-up,
#: page faults of the output buffers, torch's lazy initialisation).
WARMUP_CALLS = 2
#: A per-pass time budget never cuts a pass below this many rounds.
MIN_ROUNDS = 3


def interleaved_medians(impls: dict, rounds: int, budget_s: float | None, *,
                        settle=None):
    """Median seconds per implementation over round-robin rounds.

    Each round calls every implementation once, starting one further along
    the list each round, so none always runs right after the same neighbour
    (whose cache and frequency footprint it would inherit).

    Parameters
    ----------
    impls : dict of str to callable
        Zero-argument callables, by name.
    rounds : int
        Rounds to run.
    budget_s : float or None
        Stop adding rounds once this many seconds have passed (after at
        least `MIN_ROUNDS` rounds); None: run them all.
    settle : callable, optional
        Called, untimed, before every timed call: to let what the previous
        call left running (a cluster releasing its results) finish first.

    Returns
    -------
    medians : dict of str to float
        Median seconds per call, by name.
    rounds_done : int
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
                if settle is not None:
                    settle()
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


def exp_floor(medians: dict, n_threads: int, scale: float):
    """Seconds one exp per element of the whole input takes at the fastest
    candidate's rate.

    Reads the block timings ``exp_numpy`` / ``exp_torch`` and the matching
    per-call costs ``exp_numpy_call`` / ``exp_torch_call`` from ``medians``
    (those ``run`` times), subtracts the per-call cost and scales the block
    to the input.  np.exp runs on one thread, so at n threads its time is
    divided by n (the floor of an ideal n-thread kernel); torch.exp already
    runs on n.

    Parameters
    ----------
    medians : dict of str to float
    n_threads : int
    scale : float
        Input size / block size.

    Returns
    -------
    seconds : float
        0.0 when no candidate gave an estimate.
    source : {"numpy", "torch", "none"}
        The candidate it came from.
    """
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


def peak_extra_bytes(fn) -> int:
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
