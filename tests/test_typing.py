"""fastce ships types (``py.typed``, stubs for the compiled kernels, overloads
on ``reduction``): ``mypy --strict`` accepts real usage (tests/typing_usage.py)
and rejects a misspelt reduction.

mypy runs from a scratch directory so that it resolves ``fastce`` the way a
user's project does -- the installed package (or ``PYTHONPATH``) -- and not
the checkout's source tree that sits in the repository root.
"""
from __future__ import annotations

import os
import runpy
import shutil
import sys

import pytest

USAGE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "typing_usage.py")

MISSPELT_REDUCTION = '''\
import numpy as np
import fastce

fastce.cross_entropy(np.zeros((2, 3)), [0, 1], reduction="avg")
'''

ARRAY_USED_AS_SCALAR = '''\
import numpy as np
import fastce

per_sample = fastce.cross_entropy(np.zeros((2, 3)), [0, 1], reduction="none")
scalar = fastce.cross_entropy(np.zeros((2, 3)), [0, 1])
shape: tuple[int, ...] = per_sample.shape
as_int: int = scalar
'''


@pytest.fixture(scope="module")
def run_mypy(tmp_path_factory):
    """``run_mypy(source) -> (exit status, report)``: ``mypy --strict`` on one
    file, from a scratch directory, sharing one cache across the module."""
    mypy_api = pytest.importorskip("mypy.api")
    workdir = tmp_path_factory.mktemp("mypy")
    cache = workdir / "cache"

    def run(source: str, name: str):
        path = workdir / name
        path.write_text(source)
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            stdout, stderr, status = mypy_api.run(
                ["--strict", "--cache-dir", str(cache), "--no-error-summary", name])
        finally:
            os.chdir(cwd)
        return status, stdout + stderr

    return run


def test_usage_file_passes_mypy_strict(run_mypy):
    with open(USAGE_FILE) as f:
        status, report = run_mypy(f.read(), "typing_usage.py")
    assert status == 0, report


def test_mypy_rejects_unknown_reduction(run_mypy):
    status, report = run_mypy(MISSPELT_REDUCTION, "misspelt.py")
    assert status == 1
    assert 'No overload variant of "cross_entropy"' in report, report


def test_reduction_selects_scalar_or_array_type(run_mypy):
    # the scalar is not an int and the array has a shape: only the last line errs
    status, report = run_mypy(ARRAY_USED_AS_SCALAR, "scalar_vs_array.py")
    assert status == 1
    errors = [line for line in report.splitlines() if ": error:" in line]
    assert len(errors) == 1 and ":7:" in errors[0], report
    assert "floating" in errors[0], report


def test_usage_file_runs(tmp_path):
    # the usage file is real code too: the calls it type-checks work
    if sys.version_info < (3, 11):
        pytest.importorskip("typing_extensions")  # its assert_type
    shutil.copy(USAGE_FILE, tmp_path / "typing_usage.py")
    runpy.run_path(str(tmp_path / "typing_usage.py"), run_name="__main__")


def test_package_ships_type_information():
    import fastce
    import fastce._kernels

    package_dir = os.path.dirname(fastce.__file__)
    kernels_dir = os.path.dirname(fastce._kernels.__file__)
    assert os.path.exists(os.path.join(package_dir, "py.typed"))
    for module in ("_runtime", "_cross_entropy", "_softmax", "_binary"):
        assert os.path.exists(os.path.join(kernels_dir, module + ".pyi")), module
