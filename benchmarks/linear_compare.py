"""fastce's linear + cross-entropy against torch 2.13 and the three-GEMM
floor, side by side in one run, with peak memory.

    python benchmarks/linear_compare.py                     # L1-L3, 1 and 2 threads
    python benchmarks/linear_compare.py --workloads L1 --threads 1 --rounds 3
    python benchmarks/linear_compare.py --markdown          # for the README
    python benchmarks/linear_compare.py --fastce-chunks 64,256,1024 --no-memory

Times are medians over interleaved rounds (each round calls every
implementation once; see `fastce._bench.timing`).  Every implementation
computes the mean loss and the gradients of the input and the weight, and
allocates its outputs, as a training step does (fastce without ``out=``,
torch with ``.grad`` reset to None), except two: the floor writes into
preallocated outputs, and so does "fastce out=", which also keeps its chunk
buffers from call to call.  Memory mapped afresh is costly on the VMs these
numbers come from (a 128 MiB buffer: 15-20 ms to fault in right after a
free, 260-315 ms after two idle seconds), and each interleaved call runs
after seconds of other work, so an allocating call pays for it.

Peak extra memory is measured per implementation in a fresh child process:
the growth of the resident set (VmHWM after resetting it, minus the RSS
before the call, inputs already in memory) and, for the NumPy-based ones,
tracemalloc's peak.  Both include the returned gradients; the "workspace"
columns subtract them (N x D + V x D floats), leaving what each
implementation needs beyond its inputs and outputs.  "fastce out=" has its
gradient buffers resident before the call, as a training loop does after
its first step: its growth is its workspace, measured, not subtracted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import linear_workloads as lw  # noqa: E402

from fastce._bench.timing import interleaved_medians  # noqa: E402
from fastce.linear import default_chunk_size  # noqa: E402

MIB = 1 << 20


def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def _memory_child(name: str, impl: str, torch_chunk: int | None) -> dict:
    """Run in a child: peak extra memory of one call of one implementation."""
    w = lw.get_workloads([name])[0]
    torch = lw.import_torch() if impl.startswith("torch") else None
    # warm the libraries (thread pools, BLAS buffers) on a tiny problem first
    small = lw.LinearWorkload("tiny", 64, w.D, 64).arrays()
    _make(impl, torch, *small, 1, torch_chunk)()
    x, W, t = w.arrays()
    run = _make(impl, torch, x, W, t, 1, torch_chunk)
    result = {"rss_mb": None, "traced_mb": None}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")              # resets VmHWM to the current RSS
        before = _rss_bytes("VmRSS")
        out = run()
        result["rss_mb"] = (_rss_bytes("VmHWM") - before) / MIB
        del out
    except OSError:
        pass
    if not impl.startswith("torch"):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        out = run()
        result["traced_mb"] = (tracemalloc.get_traced_memory()[1] - base) / MIB
        del out
        tracemalloc.stop()
    return result


def _make(impl, torch, x, W, t, n_threads, torch_chunk=None, fastce_chunk=None):
    if impl == "fastce":
        return lw.fastce_call(x, W, t, n_threads, chunk_size=fastce_chunk)
    if impl == "fastce_out":
        return lw.fastce_out_call(x, W, t, n_threads)
    if impl == "floor":
        return lw.floor_call(x, W, t, n_threads)
    if impl == "torch_ref":
        return lw.torch_call(torch, x, W, t)
    if impl == "torch_chunked":
        return lw.torch_call(torch, x, W, t, chunk=torch_chunk)
    raise ValueError(impl)


def _memory(name: str, impl: str, torch_chunk) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", name, impl,
           str(torch_chunk or 0)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"rss_mb": None, "traced_mb": None, "error": proc.stderr[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(v, spec="{:.0f}"):
    return "-" if v is None else spec.format(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="L1,L2,L3")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--fastce-chunks", default=None,
                    help="also time fastce at these chunk sizes (comma-separated)")
    ap.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        name, impl, chunk = args.memory_child
        print(json.dumps(_memory_child(name, impl, int(chunk) or None)))
        return 0

    torch = None if args.no_torch else lw.import_torch()
    threads = [int(n) for n in args.threads.split(",")]
    extra_chunks = ([int(c) for c in args.fastce_chunks.split(",")]
                    if args.fastce_chunks else [])
    rows = []
    for w in lw.get_workloads(args.workloads.split(",")):
        x, W, t = w.arrays()
        chunk = default_chunk_size(w.V, np.float32, n_tokens=w.N, in_features=w.D)
        torch_chunk, scan = None, {}
        for n in threads:
            if torch is not None:
                torch.set_num_threads(n)
                if torch_chunk is None:
                    torch_chunk, scan = lw.best_torch_chunk(torch, x, W, t)
            impls = {"fastce": lw.fastce_call(x, W, t, n),
                     "fastce_out": lw.fastce_out_call(x, W, t, n),
                     "floor": lw.floor_call(x, W, t, n)}
            for c in extra_chunks:
                impls[f"fastce@{c}"] = lw.fastce_call(x, W, t, n, chunk_size=c)
            if torch is not None:
                impls["torch_ref"] = lw.torch_call(torch, x, W, t)
                impls["torch_chunked"] = lw.torch_call(torch, x, W, t, chunk=torch_chunk)
            med, done = interleaved_medians(impls, args.rounds, None)
            rows.append(dict(workload=w.label, threads=n, rounds=done, chunk=chunk,
                             torch_chunk=torch_chunk, torch_scan=scan,
                             ms={k: v * 1e3 for k, v in med.items()}))
        if not args.no_memory:
            mem = {impl: _memory(w.name, impl, torch_chunk)
                   for impl in (["fastce", "fastce_out", "floor"]
                                + (["torch_ref", "torch_chunked"] if torch else []))}
            rows[-1]["memory"] = mem
            rows[-1]["grad_mb"] = (w.N * w.D + w.V * w.D) * 4 / MIB
        del x, W, t
    _print(rows, args.markdown, extra_chunks)
    return 0


def _print(rows, markdown, extra_chunks):
    head = ["workload", "thr", "fastce ms", "fastce out= ms", "torch ref ms",
            "torch chunked ms", "floor ms", "x torch best", "out=: x torch best",
            "x floor", "out=: x floor", "floor: x torch best"]
    head += [f"fastce@{c} ms" for c in extra_chunks]
    lines = []
    for r in rows:
        ms = r["ms"]
        best = min((ms[k] for k in ("torch_ref", "torch_chunked") if k in ms),
                   default=None)
        vals = [r["workload"] + f" [chunk {r['chunk']}]", str(r["threads"]),
                _fmt(ms["fastce"]), _fmt(ms["fastce_out"]), _fmt(ms.get("torch_ref")),
                _fmt(ms.get("torch_chunked")) + (f" [{r['torch_chunk']}]"
                                                 if r["torch_chunk"] else ""),
                _fmt(ms["floor"]),
                _fmt(None if best is None else best / ms["fastce"], "{:.2f}"),
                _fmt(None if best is None else best / ms["fastce_out"], "{:.2f}"),
                _fmt(ms["fastce"] / ms["floor"], "{:.2f}"),
                _fmt(ms["fastce_out"] / ms["floor"], "{:.2f}"),
                # what the GEMMs alone give against torch: no implementation that
                # does them on this BLAS can be faster than torch by more
                _fmt(None if best is None else best / ms["floor"], "{:.2f}")]
        vals += [_fmt(ms[f"fastce@{c}"]) for c in extra_chunks]
        lines.append(vals)
    _emit(head, lines, markdown)
    mem_rows = [r for r in rows if "memory" in r]
    if mem_rows:
        print()
        mhead = ["workload", "fastce MiB (rss / traced)", "fastce out= MiB", "torch ref MiB",
                 "torch chunked MiB", "floor MiB", "fastce / ref", "fastce / chunked",
                 "out= / ref",
                 "workspace MiB: fastce / ref / chunked", "workspace: fastce / ref",
                 "fastce / chunked"]
        mlines = []
        for r in mem_rows:
            m = r["memory"]
            grads = r["grad_mb"]

            def rss(k):
                return m.get(k, {}).get("rss_mb")

            def work(k):
                return None if rss(k) is None else max(0.0, rss(k) - grads)

            def over(a, b):
                return None if a is None or not b else a / b
            mlines.append([
                r["workload"],
                f"{_fmt(rss('fastce'))} / {_fmt(m['fastce'].get('traced_mb'))}",
                _fmt(rss("fastce_out")),
                _fmt(rss("torch_ref")), _fmt(rss("torch_chunked")), _fmt(rss("floor")),
                _fmt(over(rss("fastce"), rss("torch_ref")), "{:.3f}"),
                _fmt(over(rss("fastce"), rss("torch_chunked")), "{:.2f}"),
                _fmt(over(rss("fastce_out"), rss("torch_ref")), "{:.3f}"),
                f"{_fmt(work('fastce'))} / {_fmt(work('torch_ref'))} / "
                f"{_fmt(work('torch_chunked'))}",
                _fmt(over(work("fastce"), work("torch_ref")), "{:.3f}"),
                _fmt(over(work("fastce"), work("torch_chunked")), "{:.2f}")])
        _emit(mhead, mlines, markdown)
    scans = {r["workload"]: r["torch_scan"] for r in rows if r["torch_scan"]}
    for label, scan in scans.items():
        print(f"torch batch_chunk_size scan, {label} (s, one call each, first thread "
              f"count): " + ", ".join(f"{c}: {s:.2f}" for c, s in scan.items()))


def _emit(head, lines, markdown):
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for vals in lines:
            print("| " + " | ".join(vals) + " |")
        return
    widths = [max(len(h), *(len(v[i]) for v in lines)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(wd) for h, wd in zip(head, widths)))
    for vals in lines:
        print("  ".join(v.ljust(wd) for v, wd in zip(vals, widths)))


if __name__ == "__main__":
    sys.exit(main())
