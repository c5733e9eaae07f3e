"""Side-by-side comparison of fastce, a NumPy reference and PyTorch on the
standard workloads: the same run as ``python -m fastce bench``.

    python benchmarks/compare.py                    # full table, 1 and 2 threads
    python benchmarks/compare.py --markdown         # for pasting into a README
    python benchmarks/compare.py --quick --workloads A
    python benchmarks/compare.py --help

The options and the run are ``python -m fastce bench``'s, from
`fastce.__main__`; this script adds the real floor: the kernels of
``benchmarks/machine_floor`` (compiled here on first use, with fastce's
compiler and flags), timed in the same pass ("floor ms", "× floor"), and
the memory bandwidth and exp accuracy above the table.  ``--no-machine-floor``
leaves them out (the np.exp / torch.exp floor stays as "× exp floor").
"""
from __future__ import annotations

import sys

from fastce.__main__ import build_bench_parser, run_from_args
from machine_floor import try_machine_floor


def main(argv=None) -> int:
    """Parse the options, run the comparison, return the exit status."""
    parser = build_bench_parser()
    parser.add_argument("--no-machine-floor", action="store_true",
                        help="do not build and time the floor kernels of "
                             "benchmarks/machine_floor")
    args = parser.parse_args(argv)
    floor = None if args.no_machine_floor else try_machine_floor()
    return run_from_args(args, full=True, machine_floor=floor)


if __name__ == "__main__":
    sys.exit(main())
