"""Side-by-side comparison of fastce, a NumPy reference and PyTorch on the
standard workloads: the same run as ``python -m fastce bench``.

    python benchmarks/compare.py                    # full table, 1 and 2 threads
    python benchmarks/compare.py --markdown         # for pasting into a README
    python benchmarks/compare.py --quick --workloads A
    python benchmarks/compare.py --help

The options and the run are ``python -m fastce bench``'s, from
`fastce.__main__`; this script only gives them a file to run from.
"""
from __future__ import annotations

import sys

from fastce.__main__ import build_bench_parser, run_from_args


def main(argv=None) -> int:
    """Parse the options, run the comparison, return the exit status."""
    args = build_bench_parser().parse_args(argv)
    return run_from_args(args, full=True)


if __name__ == "__main__":
    sys.exit(main())
