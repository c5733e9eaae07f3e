"""A/B benchmark of two fastce builds, interleaved in one run.

    python benchmarks/ab_compare.py --baseline-python OTHER_VENV/bin/python
    python benchmarks/ab_compare.py --baseline-python OTHER_VENV/bin/python \\
        --workloads A,E --threads 1 --rounds 5 --markdown

The baseline is the fastce installed for ``--baseline-python`` (say, a second
virtual environment with an older main installed); the current build is
this checkout's, run by ``--current-python`` (default: this interpreter).

Two long-lived worker processes (``_ab_worker.py``), one per interpreter,
make the same seeded data through fastce's public API only, so an older
release is timed by the same code.  Round by round the driver asks each
worker for one sample (the median of a few calls after warm-up) at every
thread count, the baseline first in even rounds and the current build first
in odd ones, so that slow drifts of a shared machine (frequency, other
processes) hit both builds alike.  Two builds timed in two separate runs
minutes apart can differ by more than the changes being measured.  The
table's times are medians over rounds of each build's samples.

Two things a shared machine does would still favour one worker, so the
driver takes them out.  Both workers run an n-thread sample pinned to the
same first n CPUs: cores can differ in speed (the two vCPUs of the 2-core
VM differed by 30% at one thread) and a process tends to stay on its core,
so unpinned, a 1-thread A/B measured which core each worker landed on.  And
before each sample the driver waits for the worker that ran last to go
idle: GNU OpenMP's threads spin for about 10 ms after a parallel call (on
that VM), which would slow the other worker's threaded calls many times
over.  Within a worker, OpenMP keeps its default waiting, as in a training
loop.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

# The workload table is the worker's; importing it does not import fastce.
# Nor does anything else here: the driver's interpreter need not have it.
from _ab_worker import WORKLOADS

WORKER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ab_worker.py")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Even: each build runs first in half of the rounds.
DEFAULT_ROUNDS = 16
DEFAULT_THREADS = (1, 2)
#: Untimed calls before each sample: they settle the OpenMP team size and
#: absorb the first call after the worker sat idle while the other one ran.
WARMUP_CALLS = 2
#: Timed calls per sample; the sample is their median.
CALLS_PER_SAMPLE = 5
#: A ratio current / baseline within 1 +- this is reported as no change.
TOLERANCE = 0.05
#: Relative difference of the two builds' losses that is worth a warning.
LOSS_RTOL = 1e-5
#: Waiting for a worker to go idle: poll its CPU time this often, call it
#: idle when it used less than `IDLE_CPU_SHARE` of a poll interval, give up
#: after `IDLE_WAIT_MAX_S`.  Where per-thread CPU times cannot be read
#: (not Linux), wait `IDLE_WAIT_MAX_S` instead.
IDLE_POLL_S = 0.002
IDLE_CPU_SHARE = 0.1
IDLE_WAIT_MAX_S = 0.1


class WorkerError(RuntimeError):
    """A worker answered with an error, or exited."""


class Worker:
    """One ``_ab_worker.py`` process: send a command, read its JSON answer.

    It runs ``python -I`` in ``cwd`` (a scratch directory): no ``PYTHONPATH``,
    no user site-packages, and neither the working directory nor the
    script's directory on ``sys.path``, so it imports the fastce installed
    for ``python``, or the one in ``import_root`` when given.

    Parameters
    ----------
    role : str
        ``"baseline"`` or ``"current"``, for messages.
    python : str
        The interpreter to run.
    cwd : str
    import_root : str, optional
        A source tree with an in-place build to import fastce from.
    """

    def __init__(self, role, python, cwd, import_root=None):
        self.role = role
        # absolute: a relative path would be looked up from ``cwd``; not
        # resolved: a venv's python is a symlink that must stay one
        self.python = os.path.abspath(shutil.which(python) or python)
        command = [self.python, "-I", WORKER_PATH]
        if import_root:
            command += ["--import-root", import_root]
        # stderr is inherited: a worker's traceback reaches the terminal
        self.process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def request(self, cmd, **fields) -> dict:
        """Send one command; return the answer, or raise `WorkerError`."""
        try:
            self.process.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise WorkerError(f"the {self.role} worker ({self.python}) exited with "
                              f"status {self.process.wait()}")
        answer = json.loads(line)
        if "error" in answer:
            raise WorkerError(f"the {self.role} worker ({self.python}), "
                              f"command {cmd!r}: {answer['error']}")
        return answer

    def wait_until_idle(self) -> None:
        """Return once the worker's threads stopped using the CPU (its
        OpenMP threads stop spinning a few ms after its last call)."""
        deadline = time.perf_counter() + IDLE_WAIT_MAX_S
        previous = self._cpu_ns()
        if previous is None:
            time.sleep(IDLE_WAIT_MAX_S)
            return
        while time.perf_counter() < deadline:
            time.sleep(IDLE_POLL_S)
            now = self._cpu_ns()
            if now is None or now - previous < IDLE_CPU_SHARE * IDLE_POLL_S * 1e9:
                return
            previous = now

    def _cpu_ns(self):
        """CPU nanoseconds used by all of the worker's threads so far, or
        None where ``/proc/PID/task/*/schedstat`` cannot be read."""
        total, found = 0, False
        for path in glob.glob(f"/proc/{self.process.pid}/task/*/schedstat"):
            try:
                with open(path) as f:
                    total += int(f.read().split()[0])
                found = True
            except (OSError, ValueError, IndexError):
                continue  # a thread that ended meanwhile
        return total if found else None

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not within seconds."""
        try:
            self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.process.stdin.close()
        except OSError:
            pass  # already gone
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class ABRow:
    """One workload at one thread count: per-round samples of both builds."""

    workload: str
    n_threads: int
    samples: dict  # (role, "forward_s" | "grad_s") -> list of seconds, one per round

    def median_ms(self, role, op) -> float:
        """Median over rounds of one build's samples, in ms."""
        return statistics.median(self.samples[role, op]) * 1e3

    def ratio(self, op) -> float:
        """current / baseline of the two medians.

        Not the median of each round's ratio: the sample that runs second
        in a round measured a few per cent slower (it starts after the other
        worker has had the core), and the order flips every round, so the
        per-round ratios fall in two groups and their median lands in one.
        Over an even number of rounds each build ran first equally often,
        and the two medians carry that bias alike.
        """
        return self.median_ms("current", op) / self.median_ms("baseline", op)


def verdict(ratio: float) -> str:
    """``"within ±5%"``, ``"slower"`` or ``"faster"`` for current / baseline."""
    if ratio > 1 + TOLERANCE:
        return "slower"
    if ratio < 1 - TOLERANCE:
        return "faster"
    return f"within ±{TOLERANCE:.0%}"


def tree_has_inplace_build(root: str) -> bool:
    """Whether ``root/fastce/_kernels`` holds compiled extensions, i.e.
    fastce imports from the tree itself (``setup.py build_ext --inplace``)."""
    kernels = os.path.join(root, "fastce", "_kernels")
    try:
        return any(name.endswith((".so", ".pyd")) for name in os.listdir(kernels))
    except OSError:
        return False


def cpus_for(n_threads: int):
    """The CPUs an n-thread sample is pinned to: the first n this process
    may run on (all of them when n exceeds their number), or None where
    affinity cannot be set."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[:max(1, min(n_threads, len(allowed)))]


def run_ab(workers, names, threads, rounds, progress=sys.stderr):
    """Time every workload on both workers, interleaved.

    Parameters
    ----------
    workers : dict of str to Worker
        ``"baseline"`` and ``"current"``.
    names : list of str
        Workload names, keys of `WORKLOADS`.
    threads : list of int
    rounds : int
    progress : file-like or None
        One line per workload as it runs.

    Returns
    -------
    rows : list of ABRow
    warnings : list of str
        Workloads whose losses differ between the builds.
    """
    rows, warnings = [], []
    for index, name in enumerate(names, 1):
        spec = WORKLOADS[name]
        if progress is not None:
            print(f"[{index}/{len(names)}] {spec.label} {spec.description} ...",
                  end="", file=progress, flush=True)
        started = time.perf_counter()
        # one workload at a time in memory: C alone is 134 MB, twice with its
        # gradient buffer, in each worker
        losses = {role: w.request("load", workload=name)["loss"]
                  for role, w in workers.items()}
        base_loss, current_loss = losses["baseline"], losses["current"]
        if not math.isclose(base_loss, current_loss, rel_tol=LOSS_RTOL, abs_tol=1e-7):
            warnings.append(f"{spec.label}: the builds' losses differ (baseline "
                            f"{base_loss!r}, current {current_loss!r})")
        here = [ABRow(name, n, {(role, op): [] for role in workers
                                for op in ("forward_s", "grad_s")}) for n in threads]
        for r in range(rounds):
            order = ["baseline", "current"] if r % 2 == 0 else ["current", "baseline"]
            for row in here:
                for role in order:
                    answer = workers[role].request(
                        "time", threads=row.n_threads, warmup=WARMUP_CALLS,
                        calls=CALLS_PER_SAMPLE, cpus=cpus_for(row.n_threads))
                    workers[role].wait_until_idle()  # see the module docstring
                    for op in ("forward_s", "grad_s"):
                        row.samples[role, op].append(answer[op])
        rows.extend(here)
        if progress is not None:
            summary = "; ".join(f"{row.n_threads}T fwd x{row.ratio('forward_s'):.3f}, "
                                f"l+g x{row.ratio('grad_s'):.3f}" for row in here)
            print(f" {time.perf_counter() - started:.1f} s: {summary}", file=progress,
                  flush=True)
    return rows, warnings


def _fmt_ms(value):
    if value < 1:
        return f"{value:.3f}"
    return f"{value:.2f}" if value < 100 else f"{value:.1f}"


def format_table(rows, rounds, markdown=False) -> str:
    """The A/B table, with the workloads' descriptions and the column notes."""
    header = ["workload", "thr"]
    for op in ("fwd", "l+g"):
        header += [f"{op} baseline ms", f"{op} current ms", f"{op} current/baseline",
                   f"{op} verdict"]
    cells = []
    for row in rows:
        line = [WORKLOADS[row.workload].label, str(row.n_threads)]
        for op in ("forward_s", "grad_s"):
            ratio = row.ratio(op)
            line += [_fmt_ms(row.median_ms("baseline", op)),
                     _fmt_ms(row.median_ms("current", op)), f"{ratio:.3f}",
                     verdict(ratio)]
        cells.append(line)
    left_aligned = {0, 5, 9}  # the workload and the verdicts
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i in left_aligned else "---:"
                                for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
    else:
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]

        def text_line(values):
            return "  ".join(v.ljust(w) if i in left_aligned else v.rjust(w)
                             for i, (v, w) in enumerate(zip(values, widths))).rstrip()

        lines = [text_line(header), "  ".join("-" * w for w in widths)]
        previous = None
        for row, c in zip(rows, cells):
            if previous is not None and row.workload != previous:
                lines.append("")
            previous = row.workload
            lines.append(text_line(c))
    bullet = "- " if markdown else "  "
    lines.append("")
    seen = []
    for row in rows:
        if row.workload not in seen:
            seen.append(row.workload)
            spec = WORKLOADS[row.workload]
            lines.append(f"{bullet}{spec.label}: {spec.description}")
    lines += ["", bullet + f"fwd: the loss only; l+g: loss + gradient into a "
              f"preallocated out=.  ms: median over {rounds} rounds of each build's "
              f"samples, a sample being the median of {CALLS_PER_SAMPLE} calls after "
              f"{WARMUP_CALLS} warm-up calls.",
              bullet + "current/baseline: the ratio of the two medians; the "
              "builds alternate, each first in every other round.",
              bullet + f"verdict: within ±{TOLERANCE:.0%} when the ratio is in "
              f"[{1 - TOLERANCE:g}, {1 + TOLERANCE:g}], else slower or faster."]
    return "\n".join(lines)


def describe_worker(role, python, info) -> str:
    """``"baseline: PYTHON -> fastce 0.1.0 at DIR (commit ...), ..."``."""
    return (f"{role}: {python} -> fastce {info['version']} at {info['fastce_file']} "
            f"(commit {info['commit']}), SIMD {info['simd']}, numpy {info['numpy']}, "
            f"Python {info['python']}")


def _int_list(text):
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got "
                                         f"{text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _workload_names(text):
    by_upper = {name.upper(): name for name in WORKLOADS}
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n.upper() not in by_upper]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {', '.join(unknown) or text!r}; choose from "
            f"{', '.join(WORKLOADS)}")
    return [by_upper[n.upper()] for n in names]


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    workloads = "\n".join(f"  {w.label}  {w.description}" for w in WORKLOADS.values())
    parser = argparse.ArgumentParser(
        description="Time two fastce builds interleaved in one run: the baseline "
                    "installed for --baseline-python against this checkout's.",
        epilog="workloads:\n" + workloads,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-python", required=True, metavar="PATH",
                        help="interpreter whose installed fastce is the baseline")
    parser.add_argument("--current-python", default=sys.executable, metavar="PATH",
                        help="interpreter of the current build (default: this one); "
                             "fastce comes from this checkout when it has an in-place "
                             "build, else from that interpreter's installed copy")
    parser.add_argument("--current-installed", action="store_true",
                        help="time the fastce installed for --current-python even "
                             "where this checkout has an in-place build (e.g. the "
                             "same interpreter on both sides, to see the noise)")
    parser.add_argument("--rounds", type=_positive_int, default=DEFAULT_ROUNDS,
                        metavar="N", help=f"interleaved rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--threads", type=_int_list, default=list(DEFAULT_THREADS),
                        metavar="N[,N...]", help="thread counts (default 1,2)")
    parser.add_argument("--workloads", type=_workload_names, default=list(WORKLOADS),
                        metavar="A,B,...", help="which workloads (default: all; "
                                                "see the list below)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as Markdown")
    return parser


def _machine_load() -> str:
    """``"; load average 0.4 on 2 CPUs"``: other processes competing for
    the cores make threaded samples noisy.  Empty where unknown."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return ""
    return f"; load average {load:.1f} on {os.cpu_count()} CPUs"


def main(argv=None) -> int:
    """Start both workers, run the rounds, print the table; the exit status."""
    args = build_parser().parse_args(argv)
    use_tree = not args.current_installed and tree_has_inplace_build(REPO_ROOT)
    import_root = REPO_ROOT if use_tree else None
    out, bullet = sys.stdout, "- " if args.markdown else ""
    with tempfile.TemporaryDirectory(prefix="fastce-ab-") as scratch:
        workers = {}
        try:
            workers["baseline"] = Worker("baseline", args.baseline_python, scratch)
            workers["current"] = Worker("current", args.current_python, scratch,
                                        import_root)
            infos = {role: w.request("info") for role, w in workers.items()}
            print(f"{bullet}fastce A/B: baseline vs current, interleaved in one run"
                  + _machine_load(), file=out)
            for role, w in workers.items():
                print(bullet + describe_worker(role, w.python, infos[role]), file=out)
            if infos["baseline"]["fastce_file"] == infos["current"]["fastce_file"]:
                print(f"{bullet}note: both workers imported the same fastce; the "
                      f"ratios show this machine's noise only", file=out)
            print(file=out, flush=True)
            rows, warnings = run_ab(workers, args.workloads, args.threads, args.rounds)
        except (WorkerError, OSError) as exc:  # OSError: an interpreter not found
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
        finally:
            for w in workers.values():
                w.close()
    print(file=sys.stderr, flush=True)
    print(format_table(rows, args.rounds, markdown=args.markdown), file=out)
    for warning in warnings:
        print(f"\nwarning: {warning}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
