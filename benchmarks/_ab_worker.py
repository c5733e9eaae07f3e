"""The worker process of ``benchmarks/ab_compare.py``: times one fastce build.

``ab_compare.py`` starts one of these per interpreter and sends it one JSON
command per line on stdin; each answer is one JSON line on stdout.  The
worker touches fastce only through its public functions (``cross_entropy``,
``cross_entropy_and_grad``, ``binary_cross_entropy_with_logits`` and its
``_and_grad``, with ``n_threads=``), so that an older release can be timed
by the same code.  It imports fastce only once its ``sys.path`` is set: the
driver runs it with ``python -I`` from a scratch directory, so the fastce
it finds is the interpreter's installed one unless ``--import-root`` names
a source tree with an in-place build.  Nothing else comes from the
repository (the driver, in turn, imports this file only for `WORKLOADS`).

Commands (``{"cmd": ...}``) and answers:

``info``
    ``{"fastce_file", "version", "commit", "numpy", "python", "simd"}``.
``load`` with ``workload``
    Makes that workload's seeded data (dropping the previous one's) and
    answers ``{"loss"}``, the forward loss at one thread, so the driver can
    see that both builds compute the same thing.
``time`` with ``threads``, ``warmup``, ``calls`` and optionally ``cpus``
    ``{"forward_s", "grad_s"}``: for the forward and for loss + gradient
    (into a preallocated ``out=``), ``warmup`` untimed calls, then the
    median seconds of ``calls`` timed ones, at ``n_threads=threads``, with
    every thread of the worker pinned to ``cpus`` (a list of CPU numbers)
    where the platform allows.
``quit``
    Exits (so does the end of stdin).

An exception answers ``{"error": "..."}`` and the worker carries on.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = -100


@dataclass(frozen=True)
class WorkloadSpec:
    """One A/B workload: the input's shape and dtype, the loss and its options.

    The names and shapes are those of ``python -m fastce``'s workloads; the
    data is made here, from ``seed``, so that both builds time the same
    arrays whatever their own benchmark code looks like.
    """

    name: str
    shape: tuple
    dtype: str = "float32"
    loss: str = "cross_entropy"  # or "bce_with_logits"
    description: str = "cross_entropy"
    weighted: bool = False
    ignore_fraction: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0

    @property
    def label(self) -> str:
        """``"B (8192, 1000) f32"``: the table's workload column."""
        shape = "(" + ", ".join(str(s) for s in self.shape) + ")"
        return f"{self.name} {shape} {self.dtype.replace('float', 'f')}"


WORKLOADS = {w.name: w for w in (
    WorkloadSpec("A", (65536, 10), description="cross_entropy, index targets, "
                 "small C", seed=1),
    WorkloadSpec("B", (8192, 1000), seed=2),
    WorkloadSpec("B64", (8192, 1000), "float64", seed=2),
    WorkloadSpec("C", (1024, 32768), description="cross_entropy, large C", seed=3),
    WorkloadSpec("D", (8, 21, 256, 256), description="cross_entropy, segmentation "
                 "(class axis 1)", seed=4),
    WorkloadSpec("E", (65536, 100), loss="bce_with_logits",
                 description="binary_cross_entropy_with_logits, 0/1 targets", seed=5),
    WorkloadSpec("F", (8192, 1000), description="cross_entropy with weight, 10% "
                 "ignore_index, label_smoothing=0.1", weighted=True,
                 ignore_fraction=0.1, label_smoothing=0.1, seed=6),
)}


def make_calls(spec: WorkloadSpec, fastce):
    """``(forward(n_threads), loss_and_grad(n_threads))`` on the seeded data
    of ``spec``; the gradient goes into one preallocated buffer, so a call
    times the kernel, not the allocator."""
    rng = np.random.default_rng(spec.seed)
    dtype = np.dtype(spec.dtype)
    x = rng.standard_normal(spec.shape, dtype=dtype)
    grad = np.empty_like(x)
    if spec.loss == "bce_with_logits":
        target = (rng.random(spec.shape) < 0.5).astype(dtype)
        forward_fn = fastce.binary_cross_entropy_with_logits
        grad_fn = fastce.binary_cross_entropy_with_logits_and_grad
        kwargs = {}
    else:
        n_classes = spec.shape[1]
        batch_shape = spec.shape[:1] + spec.shape[2:]
        target = rng.integers(0, n_classes, size=batch_shape, dtype=np.int64)
        kwargs = {}
        if spec.ignore_fraction:
            target[rng.random(batch_shape) < spec.ignore_fraction] = IGNORE_INDEX
            kwargs["ignore_index"] = IGNORE_INDEX
        if spec.weighted:
            kwargs["weight"] = rng.uniform(0.5, 2.0, size=n_classes).astype(dtype)
        if spec.label_smoothing:
            kwargs["label_smoothing"] = spec.label_smoothing
        forward_fn = fastce.cross_entropy
        grad_fn = fastce.cross_entropy_and_grad

    def forward(n_threads):
        return forward_fn(x, target, n_threads=n_threads, **kwargs)

    def loss_and_grad(n_threads):
        return grad_fn(x, target, out=grad, n_threads=n_threads, **kwargs)

    return forward, loss_and_grad


def median_seconds(fn, warmup: int, calls: int) -> float:
    """Median wall time of ``calls`` calls of ``fn`` after ``warmup`` untimed
    ones.  The warm-up also settles the OpenMP team size, and absorbs the
    first call after the process sat idle while the other worker ran."""
    for _ in range(warmup):
        fn()
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed call would land on one sample
    try:
        for _ in range(calls):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples)


def pin_threads(cpus) -> None:
    """Restrict every thread of this process (OpenMP's pool included) to
    ``cpus``; threads started later inherit it.  A no-op off Linux."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    try:
        thread_ids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        thread_ids = [0]  # 0: the calling thread
    for tid in thread_ids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            continue  # a thread that ended meanwhile


def describe_build(fastce) -> dict:
    """Where the imported fastce lives and which source it was built from."""
    package_dir = os.path.dirname(os.path.abspath(fastce.__file__))
    config = io.StringIO()
    with contextlib.redirect_stdout(config):
        fastce.show_config()
    # "SIMD in use:   avx512 (FASTCE_ARCH overrides)": the variant's name
    simd = next((line.split(":", 1)[1].split()[0] for line in config.getvalue().splitlines()
                 if line.strip().startswith("SIMD in use:")), "?")
    return {"fastce_file": package_dir, "version": getattr(fastce, "__version__", "?"),
            "commit": _source_commit(package_dir), "numpy": np.__version__,
            "python": platform.python_version(), "simd": simd}


def _source_commit(package_dir: str) -> str:
    """The git commit of a source tree whose top level holds ``fastce/``
    (``+ uncommitted changes`` when the tree differs from it); for an
    installed copy, what pip recorded about its origin."""
    tree = os.path.dirname(package_dir)

    def git(*args):
        return subprocess.run(["git", "-C", tree, *args], capture_output=True,
                              text=True, timeout=10).stdout.strip()

    try:
        # only the tree fastce/ sits at the top of: a venv inside a checkout
        # would otherwise report the checkout's commit for an installed copy
        toplevel = git("rev-parse", "--show-toplevel")
        if toplevel and os.path.realpath(toplevel) == os.path.realpath(tree):
            commit = git("rev-parse", "--short", "HEAD")
            dirty = git("status", "--porcelain", "--untracked-files=no")
            return commit + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass  # no git: fall through to the install record
    try:
        from importlib import metadata

        origin = json.loads(metadata.distribution("fastce").read_text("direct_url.json")
                            or "{}")
    except Exception:  # no metadata, or unreadable: nothing more to say
        origin = {}
    commit = origin.get("vcs_info", {}).get("commit_id")
    if commit:
        return commit[:12]
    if origin.get("url"):
        return f"unknown, installed from {origin['url']}"
    return "unknown"


def serve(fastce, requests, reply) -> None:
    """Answer each JSON line of ``requests`` with one through ``reply``."""
    calls = None
    for line in requests:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            name = command["cmd"]
            if name == "quit":
                return
            if name == "info":
                answer = describe_build(fastce)
            elif name == "load":
                calls = None  # free the previous workload's arrays first
                gc.collect()
                calls = make_calls(WORKLOADS[command["workload"]], fastce)
                answer = {"loss": float(calls[0](1))}
            elif name == "time":
                if calls is None:
                    raise RuntimeError("no workload loaded")
                forward, loss_and_grad = calls
                n, warmup, count = command["threads"], command["warmup"], command["calls"]
                pin_threads(command.get("cpus"))
                answer = {"forward_s": median_seconds(lambda: forward(n), warmup, count),
                          "grad_s": median_seconds(lambda: loss_and_grad(n), warmup,
                                                   count)}
            else:
                raise ValueError(f"unknown command {name!r}")
        except Exception as exc:  # report it; the driver decides what to do
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        reply(answer)


def main(argv=None) -> int:
    """Import fastce as told, then serve commands until ``quit`` or EOF."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--import-root", metavar="DIR",
                        help="import fastce from this source tree (an in-place "
                             "build) instead of the interpreter's installed copy")
    args = parser.parse_args(argv)
    if args.import_root:
        sys.path.insert(0, args.import_root)
    protocol = sys.stdout
    # Anything printed by accident goes to stderr: stdout carries only answers.
    sys.stdout = sys.stderr
    import fastce

    def reply(answer):
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()

    serve(fastce, sys.stdin, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
