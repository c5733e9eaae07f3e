"""Side-by-side comparison of fastce, a NumPy reference and PyTorch on the
SPEC section 5 workloads: the same run as ``python -m fastce bench``.

    python benchmarks/compare.py                    # full table, 1 and 2 threads
    python benchmarks/compare.py --markdown         # for pasting into a README
    python benchmarks/compare.py --quick --workloads A
    python benchmarks/compare.py --help

The work is done by `fastce._bench`; this script only parses its options.
"""
from __future__ import annotations

import argparse
import sys

from fastce import _bench


def main(argv=None) -> int:
    """Parse the options, run the comparison, return the exit status."""
    parser = argparse.ArgumentParser(
        description="fastce vs a NumPy reference vs PyTorch on the SPEC section 5 "
                    "workloads (self-check first; exit status 1 if it fails).",
        epilog=_bench.workloads_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _bench.add_options(parser)
    return _bench.run_from_args(parser.parse_args(argv), full=True)


if __name__ == "__main__":
    sys.exit(main())
