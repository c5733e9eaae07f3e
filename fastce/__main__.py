"""``python -m fastce``: self-check and benchmark table (SPEC section 2.5).

    python -m fastce             self-check + a short benchmark (A, B, D, E)
    python -m fastce --quick     a tiny run of a few seconds
    python -m fastce bench       the full SPEC section 5 comparison (A-F, B64;
                                 1 and 2 threads; enough rounds to quote)
    python -m fastce info        build information (fastce.show_config())

The work itself lives in `fastce._bench`; this module only parses the
command line.
"""
from __future__ import annotations

import argparse
import sys

from fastce import _bench


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m fastce`` argument parser (with its subcommands)."""
    description = (
        "fastce: cross-entropy losses and their gradients for NumPy.  Without a "
        "command: a self-check (SPEC worked example; every loss and gradient "
        "against PyTorch when it is installed) and a short benchmark of fastce "
        "against a NumPy reference and PyTorch.")
    parser = argparse.ArgumentParser(
        prog="python -m fastce", description=description,
        epilog=_bench.workloads_help() + "\n\nexit status: 1 when the self-check "
        "fails, 2 on a usage error.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _bench.add_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="{bench,info}")
    bench = commands.add_parser(
        "bench", help="the full SPEC section 5 table: workloads A-F and B64, 1 and 2 "
                      "threads, enough rounds to quote",
        description="The full side-by-side comparison (SPEC section 5): every "
                    "reference workload, 1 and 2 threads, "
                    f"{_bench.FULL_ROUNDS} interleaved rounds by default.",
        epilog=_bench.workloads_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    # SUPPRESS: options given before the subcommand survive its parser
    _bench.add_options(bench, suppress_defaults=True)
    commands.add_parser("info", help="print the build information "
                                     "(fastce.show_config())")
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "info":
        import fastce

        fastce.show_config()
        return 0
    return _bench.run_from_args(args, full=args.command == "bench")


if __name__ == "__main__":
    sys.exit(main())
