"""``python -m fastce``: self-check and benchmark table.

    python -m fastce             self-check + a short benchmark (four workloads)
    python -m fastce --quick     a tiny run of a few seconds
    python -m fastce bench       the full comparison (every workload, 1 and 2
                                 threads, enough rounds to quote)
    python -m fastce info        build information (fastce.show_config())

The command line lives here: the options, what each run defaults to, and
the usage errors.  The work is done by `fastce._bench`;
``benchmarks/compare.py`` reuses `build_bench_parser` and `run_from_args`.
"""
from __future__ import annotations

import argparse
import sys

import fastce
from fastce import _bench

EXIT_STATUS_HELP = "exit status: 1 when the self-check fails, 2 on a usage error."
BENCH_DESCRIPTION = (
    "The full side-by-side comparison behind README.md's Performance table, "
    "after the self-check: every workload listed below, 1 and 2 threads, "
    f"{_bench.FULL_ROUNDS} interleaved rounds by default.")


def _int_list(text):
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got "
                                         f"{text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _shape(text):
    try:
        shape = tuple(int(v) for v in text.lower().replace("x", ",").split(",") if v)
    except ValueError:
        shape = ()
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected N,C[,d1,...] (positive), got {text!r}")
    return shape


def _names(text):
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated workload names")
    return names


def _with_shapes(names):
    """``"A (65536, 10) and B (8192, 1000)"``: workload names as help text."""
    described = [f"{n} {_bench.WORKLOADS[n].shape_text}" for n in names]
    return ", ".join(described[:-1]) + " and " + described[-1]


def add_options(parser, suppress_defaults=False):
    """Add the benchmark options (``--quick``, ``--threads``, ``--dtype``,
    ``--repeat``, ``--workloads``, ``--shape``, ...) to an argparse parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    suppress_defaults : bool, default False
        Leave unset options out of the namespace (``argparse.SUPPRESS``), so
        that a subcommand's parser does not overwrite what the main parser
        already read.
    """
    def default(value):
        return argparse.SUPPRESS if suppress_defaults else value

    names = ", ".join(_bench.WORKLOADS)
    parser.add_argument("--quick", action="store_true", default=default(False),
                        help=f"a tiny run of a few seconds (workloads "
                             f"{_with_shapes(_bench.QUICK_WORKLOADS)}, "
                             f"{_bench.QUICK_ROUNDS} rounds)")
    parser.add_argument("--threads", type=_int_list, default=default(None),
                        metavar="N[,N...]",
                        help="thread counts to run, e.g. 1,2 (default: 1 and "
                             "fastce.get_num_threads() when it is > 1)")
    parser.add_argument("--dtype", choices=_bench.DTYPES, default=default(None),
                        help="dtype of every workload but B64 (default: each "
                             "workload's own, float32)")
    parser.add_argument("--repeat", type=int, default=default(None), metavar="N",
                        help="interleaved timing rounds per workload and thread count")
    parser.add_argument("--workloads", type=_names, default=default(None),
                        metavar="A,B,...",
                        help=f"which workloads ({names}); see the list below")
    parser.add_argument("--shape", type=_shape, action="append", default=default(None),
                        metavar="N,C[,d...]",
                        help="benchmark a cross-entropy workload of this shape "
                             "(class axis 1): instead of the default workloads, or "
                             "besides those of --workloads; repeatable")
    parser.add_argument("--no-torch", action="store_true", default=default(False),
                        help="do not time or check against PyTorch even if installed")
    parser.add_argument("--no-check", action="store_true", default=default(False),
                        help="skip the self-check")
    parser.add_argument("--markdown", action="store_true", default=default(False),
                        help="print the table as Markdown (for a README)")
    parser.add_argument("--json", default=default(None), metavar="FILE",
                        help="also write the result rows to FILE as JSON")


def workloads_help() -> str:
    """The workload list, for ``--help`` epilogs."""
    return "workloads:\n" + "\n".join(f"  {w.label}" for w in _bench.WORKLOADS.values())


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m fastce`` argument parser (with its subcommands)."""
    description = (
        "fastce: cross-entropy losses and their gradients for NumPy.  Without a "
        "command: a self-check (a worked example computed by hand; every loss and "
        "gradient against PyTorch when it is installed) and a short benchmark of "
        "fastce against a NumPy reference and PyTorch.")
    parser = argparse.ArgumentParser(
        prog="python -m fastce", description=description,
        epilog=workloads_help() + "\n\n" + EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="{bench,info}")
    bench = commands.add_parser(
        "bench", help="the full comparison: every workload listed below, 1 and 2 "
                      "threads, enough rounds to quote",
        description=BENCH_DESCRIPTION, epilog=workloads_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    # SUPPRESS: options given before the subcommand survive its parser
    add_options(bench, suppress_defaults=True)
    commands.add_parser("info", help="print the build information "
                                     "(fastce.show_config())")
    return parser


def build_bench_parser(prog=None) -> argparse.ArgumentParser:
    """A stand-alone parser of ``python -m fastce bench``'s options, for
    scripts that run the full comparison (``benchmarks/compare.py``).

    Parameters
    ----------
    prog : str, optional
        The program name in the usage line (default: argparse's, the
        script's file name).
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=BENCH_DESCRIPTION,
        epilog=workloads_help() + "\n\n" + EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(parser)
    return parser


def run_from_args(args, full=False, out=None, err=None, machine_floor=None) -> int:
    """Run the self-check and the benchmark as parsed by `add_options`.

    Parameters
    ----------
    args : argparse.Namespace
    full : bool, default False
        The full comparison (every workload, threads 1 and 2,
        ``FULL_ROUNDS`` rounds) rather than the short default run.
    out, err : file-like, optional
        Table and progress streams (default sys.stdout / sys.stderr).
    machine_floor : object, optional
        The real floor kernels of ``benchmarks/machine_floor`` (see
        `fastce._bench.run_benchmarks`), which ``benchmarks/compare.py``
        builds; the package alone has only the np.exp / torch.exp floor.

    Returns
    -------
    int
        Exit status: 0, 1 when the self-check failed, 2 on a bad option
        value that argparse could not catch.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    opt = vars(args)
    quick = opt.get("quick", False)

    if opt.get("workloads") is not None:
        names = opt["workloads"]
    elif opt.get("shape"):
        names = []
    elif quick:
        names = list(_bench.QUICK_WORKLOADS)
    elif full:
        names = None if opt.get("dtype") is None else [
            n for n in _bench.FULL_WORKLOADS if n != "B64"]
    else:
        names = list(_bench.DEFAULT_WORKLOADS)
    try:
        workloads = _bench.get_workloads(names, opt.get("dtype"), opt.get("shape") or ())
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return 2

    threads = opt.get("threads")
    if threads is None:
        default_threads = fastce.get_num_threads()
        if full:
            threads = [1, 2]
        else:
            threads = [1] + ([default_threads] if default_threads > 1 else [])
    rounds = opt.get("repeat")
    if rounds is None:
        rounds = (_bench.QUICK_ROUNDS if quick else _bench.FULL_ROUNDS if full
                  else _bench.DEFAULT_ROUNDS)
    if rounds < 1:
        print("error: --repeat must be >= 1", file=err)
        return 2
    # an explicit --repeat is a request for that many rounds: no budget
    budget = (None if full or opt.get("repeat") is not None
              else _bench.DEFAULT_PASS_BUDGET_S)

    return _bench.check_and_benchmark(
        workloads, threads, rounds, budget_s=budget,
        use_torch=not opt.get("no_torch", False), check=not opt.get("no_check", False),
        markdown=opt.get("markdown", False), json_path=opt.get("json"), out=out, err=err,
        machine_floor=machine_floor)


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "info":
        fastce.show_config()
        return 0
    return run_from_args(args, full=args.command == "bench")


if __name__ == "__main__":
    sys.exit(main())
