"""Side-by-side benchmark and self-check of fastce, behind ``python -m fastce``.

It ships inside the package so that ``python -m fastce`` works from an
installed copy, without the repository's ``benchmarks/`` directory; PyTorch
is optional (without it the torch columns and checks are left out).  One
module per concept: `references` (what fastce is compared against),
`workloads` (the problems), `timing` (interleaved medians, floors, memory),
`report` (rows and the table), `selfcheck`, and `run`, which ties them
together.  The command line itself is in `fastce.__main__`.
"""
from __future__ import annotations

from .references import (IGNORE_INDEX, numpy_binary_cross_entropy_with_logits,
                         numpy_cross_entropy)
from .report import BenchRow, environment_summary, format_table
from .run import (DEFAULT_PASS_BUDGET_S, DEFAULT_ROUNDS, DEFAULT_WORKLOADS, FULL_ROUNDS,
                  FULL_WORKLOADS, QUICK_ROUNDS, QUICK_WORKLOADS, check_and_benchmark,
                  run_benchmarks)
from .selfcheck import self_check
from .workloads import DTYPES, WORKLOADS, Workload, get_workloads

__all__ = [
    "Workload", "WORKLOADS", "DTYPES", "get_workloads", "IGNORE_INDEX",
    "numpy_cross_entropy", "numpy_binary_cross_entropy_with_logits",
    "BenchRow", "format_table", "environment_summary",
    "run_benchmarks", "check_and_benchmark", "self_check",
    "QUICK_WORKLOADS", "DEFAULT_WORKLOADS", "FULL_WORKLOADS",
    "QUICK_ROUNDS", "DEFAULT_ROUNDS", "FULL_ROUNDS", "DEFAULT_PASS_BUDGET_S",
]
