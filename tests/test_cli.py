"""``python -m fastce``: help, ``info``, a quick self-check + benchmark run
with its progress lines, and usage errors -- run as a user runs them, in a
subprocess, from a scratch directory (so the installed fastce is imported,
not the checkout's source tree)."""
from __future__ import annotations

import subprocess
import sys

import pytest


def run_fastce(*args, cwd, timeout=120):
    return subprocess.run([sys.executable, "-m", "fastce", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_options(tmp_path):
    completed = run_fastce("--help", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    for option in ("--quick", "--threads", "--dtype", "--repeat", "--workloads",
                   "info", "bench"):
        assert option in completed.stdout, option


def test_info_prints_show_config(tmp_path):
    import fastce

    completed = run_fastce("info", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert f"fastce {fastce.__version__}" in completed.stdout
    for field in ("OpenMP", "threads", "compiler", "SIMD"):
        assert field in completed.stdout, field


def test_quick_run_checks_then_benchmarks_with_progress(tmp_path):
    completed = run_fastce("--quick", "--repeat", "1", "--workloads", "A",
                           "--threads", "1", "--no-torch", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    output = completed.stdout + completed.stderr
    assert "PASS" in output and "FAIL" not in output
    assert "[1/1] A" in output  # one progress line per workload as it runs
    table = completed.stdout[completed.stdout.index("workload"):]
    assert any(line.startswith("A ") for line in table.splitlines())


@pytest.mark.parametrize("args", [["--dtype", "float16"], ["--threads", "x"],
                                  ["--no-such-option"]])
def test_usage_error_exits_with_status_2(tmp_path, args):
    completed = run_fastce(*args, cwd=tmp_path)
    assert completed.returncode == 2
    assert "usage:" in completed.stderr
