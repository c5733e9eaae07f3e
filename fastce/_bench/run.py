"""Running the benchmark: one interleaved pass per workload and thread count.

`run_benchmarks` builds, for each pass, every timed callable (fastce forward
and loss + gradient, the NumPy reference, torch, the pieces of the exp
floor, and the real floor kernels when ``benchmarks/compare.py`` hands them
in), times them with `fastce._bench.timing.interleaved_medians` and turns
the medians into `BenchRow` objects; `check_and_benchmark` is what
``python -m fastce`` runs once its options are resolved: the self-check, the
benchmark, the table.  The presets of the standard runs live here too.
"""
from __future__ import annotations

import gc
import json
import sys
import time
from typing import Callable

import numpy as np

from .references import import_torch
from .report import BenchRow, environment_summary, format_table, ratio
from .selfcheck import self_check
from .timing import exp_floor, interleaved_medians, peak_extra_bytes
from .workloads import Workload

__all__ = ["run_benchmarks", "check_and_benchmark",
           "QUICK_WORKLOADS", "DEFAULT_WORKLOADS", "FULL_WORKLOADS",
           "QUICK_ROUNDS", "DEFAULT_ROUNDS", "FULL_ROUNDS", "DEFAULT_PASS_BUDGET_S"]

# The three standard runs: ``--quick``, the default, and ``bench``.
QUICK_WORKLOADS = ("A", "B")
DEFAULT_WORKLOADS = ("A", "B", "D", "E")
FULL_WORKLOADS = ("A", "B", "B64", "C", "D", "E", "F")
#: Interleaved rounds of each standard run (``--repeat`` overrides).
QUICK_ROUNDS = 3
DEFAULT_ROUNDS = 10
FULL_ROUNDS = 40
#: Seconds one thread-count pass of the default run may take before it stops
#: adding rounds; keeps ``python -m fastce`` well under a minute on a slow
#: or busy machine.  The full benchmark has no budget.
DEFAULT_PASS_BUDGET_S = 2.5

#: Size of the cache-resident block the exp floor is timed on (input and
#: output together stay well inside a 1 MB L2).
EXP_BLOCK_BYTES = 256 * 1024


def _implementations(workload: Workload, n_threads: int, torch, include_numpy: bool,
                     machine_floor=None):
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
    if machine_floor is not None:
        for name, fn in machine_floor.callables(workload, n_threads).items():
            impls["machine_" + name] = fn
    return impls, block.nbytes


def run_benchmarks(workloads, threads=(1,), rounds=DEFAULT_ROUNDS, *, use_torch=True,
                   budget_s=None, progress="stderr", machine_floor=None):
    """Time fastce, the NumPy reference and PyTorch on each workload.

    For each workload, one interleaved pass per thread count (see
    `fastce._bench.timing`); the NumPy reference is single-threaded and
    timed in the first pass only.

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
        `fastce._bench.timing.MIN_ROUNDS` rounds).
    progress : file-like, "stderr" or None, default "stderr"
        Where the one-line-per-workload progress display goes (None: no
        display; "stderr": ``sys.stderr`` as it is at call time).
    machine_floor : object, optional
        The real floor kernels (``benchmarks/machine_floor``, not part of
        the package): ``callables(workload, n_threads)`` gives zero-argument
        callables named ``floor_fwd``, ``floor_grad`` and ``core_probe``
        (fixed compute per thread: its time at n threads against 1 thread
        tells a busy core from poor scaling), timed in the same pass.

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
    torch = import_torch(use_torch)
    torch_threads_before = torch.get_num_threads() if torch is not None else None
    rows = []
    try:
        for index, workload in enumerate(workloads, 1):
            if progress is not None:
                print(f"[{index}/{len(workloads)}] {workload.label} ...", end="",
                      file=progress, flush=True)
            started = time.perf_counter()
            rows_here = _bench_workload(workload, threads, rounds, torch, budget_s,
                                        machine_floor)
            rows.extend(rows_here)
            if progress is not None:
                print(" " + _progress_summary(rows_here,
                                              time.perf_counter() - started),
                      file=progress, flush=True)
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads_before)
    return rows


def _bench_workload(workload, threads, rounds, torch, budget_s, machine_floor=None):
    """The rows of one workload, one per thread count; its data is released
    afterwards, whatever happens."""
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
                                                      include_numpy=pass_index == 0,
                                                      machine_floor=machine_floor)
            med, done = interleaved_medians(impls, rounds, budget_s)
            if "numpy_fwd" in med:
                numpy_ms = med["numpy_fwd"] * ms
            # The machine floor: floor_fwd = max(one read of the input, one
            # exp per element), floor_grad = floor_fwd + one write of an
            # input-sized buffer.  np.max and fill run on one thread: an
            # ideal n-thread kernel splits that work n ways.
            read = med["floor_read"] / n
            exp, exp_source = exp_floor(med, n, workload.input_bytes / exp_block_bytes)
            write = med["floor_write"] / n
            floor_fwd = max(read, exp)
            fwd_peak = peak_extra_bytes(impls["fastce_fwd"])
            grad_peak = peak_extra_bytes(impls["fastce_grad"])
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
                machine_floor_fwd_ms=_ms(med.get("machine_floor_fwd")),
                machine_floor_grad_ms=_ms(med.get("machine_floor_grad")),
                core_probe_ms=_ms(med.get("machine_core_probe")),
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
                # the probe does the same work per thread at every count
                r.core_efficiency = ratio(one_thread.core_probe_ms, r.core_probe_ms)
                r.fwd_speedup_vs_1thread = ratio(one_thread.fastce_fwd_ms,
                                                 r.fastce_fwd_ms)
                r.grad_speedup_vs_1thread = ratio(one_thread.fastce_grad_ms,
                                                  r.fastce_grad_ms)
    return rows


def _ms(seconds):
    return None if seconds is None else seconds * 1e3


def _progress_summary(rows, seconds):
    parts = []
    for r in rows:
        s = f"{r.n_threads}T fastce {r.fastce_fwd_ms:.3g}/{r.fastce_grad_ms:.3g} ms"
        if r.torch_fwd_ms is not None:
            s += f", torch {r.torch_fwd_ms:.3g}/{r.torch_fwdbwd_ms:.3g} ms"
        parts.append(s)
    return f"{seconds:.1f} s, {rows[0].rounds} rounds: " + "; ".join(parts)


def check_and_benchmark(workloads, threads, rounds, *, budget_s=None, use_torch=True,
                        check=True, markdown=False, json_path=None, out=None,
                        err=None, machine_floor=None) -> int:
    """The self-check, then the benchmark table: ``python -m fastce``'s run.

    Parameters
    ----------
    workloads : list of Workload
    threads : list of int
    rounds : int
    budget_s : float, optional
        Per-pass time budget (see `run_benchmarks`).
    use_torch : bool, default True
        Check and time against PyTorch when it is importable.
    check : bool, default True
        Run the self-check first.
    markdown : bool, default False
        Print the table as Markdown; the self-check's lines then go to
        ``err``, so that ``out`` can be pasted into a README as it is.
    json_path : str, optional
        Also write the environment and the rows there as JSON.
    out, err : file-like, optional
        Table and progress streams (default sys.stdout / sys.stderr).
    machine_floor : object, optional
        The real floor kernels (see `run_benchmarks`); its ``describe(threads)``
        lines (exp error, memory bandwidth) head the table.

    Returns
    -------
    int
        Exit status: 0, or 1 when the self-check failed.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    ok = True
    if check:
        check_stream = err if markdown else out
        print("self-check:", file=check_stream)
        ok = self_check(file=check_stream, use_torch=use_torch)
        print(file=check_stream, flush=True)

    print(f"benchmark: {len(workloads)} workload(s), threads "
          f"{','.join(map(str, threads))}, {rounds} interleaved rounds"
          + ("" if budget_s is None else f" (at most ~{budget_s:g} s per pass)"),
          file=err, flush=True)
    rows = run_benchmarks(workloads, threads, rounds, use_torch=use_torch,
                          budget_s=budget_s, progress=err, machine_floor=machine_floor)
    floor_lines = machine_floor.describe(threads) if machine_floor is not None else []
    print(file=err, flush=True)
    print(environment_summary() if not markdown else f"_{environment_summary()}_",
          file=out)
    for line in floor_lines:
        print(line if not markdown else f"- {line}", file=out)
    print(file=out)
    print(format_table(rows, markdown=markdown), file=out, flush=True)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump({"environment": environment_summary(), "machine_floor": floor_lines,
                       "rows": [r.as_dict() for r in rows]}, fh, indent=1)
    if not ok:
        print("\nself-check FAILED (see the FAIL lines above)", file=err)
        return 1
    return 0
