"""pytest-benchmark suite configuration (run on demand, never by a plain
``pytest``: pyproject's ``testpaths`` only lists ``tests/``).

    pytest benchmarks/ --benchmark-only
    pytest benchmarks/ --benchmark-only --fastce-threads 2
    pytest benchmarks/ --benchmark-only --fastce-workloads A,E

Options added here:

``--fastce-threads N``
    Thread count of every implementation: fastce's ``n_threads=N`` and
    ``torch.set_num_threads(N)`` (default 1).
``--fastce-linear L1,L2,L3``
    Which linear + cross-entropy workloads ``test_linear_benchmarks.py``
    runs (default: all three).
``--fastce-workloads A,B,...``
    Which of the standard workloads to run (default: all; ``python -m
    fastce --help`` lists them with their shapes).  Note that
    ``-k A`` cannot pick workload A: ``-k`` matches case-insensitively
    against every name in a test's chain (``benchmarks``, ...), so a lone
    letter selects almost everything; ``-k "[A]"`` or this option can.
"""
from __future__ import annotations

import pytest

from fastce import _bench


def pytest_addoption(parser):
    group = parser.getgroup("fastce", "fastce benchmarks")
    group.addoption("--fastce-threads", type=int, default=1, metavar="N",
                    help="threads for fastce (n_threads=N) and torch "
                         "(torch.set_num_threads(N)); default 1")
    group.addoption("--fastce-workloads", default=None, metavar="A,B,...",
                    help="comma-separated workloads to benchmark (default: all of "
                         + ", ".join(_bench.WORKLOADS) + ")")
    group.addoption("--fastce-linear", default=None, metavar="L1,L2,...",
                    help="linear + cross-entropy workloads of test_linear_benchmarks.py "
                         "(default: L1, L2, L3)")


def _selected_workloads(config):
    option = config.getoption("--fastce-workloads")
    if option is None:
        return list(_bench.WORKLOADS)
    names = [n.strip() for n in option.split(",") if n.strip()]
    try:
        # validates the names and normalises their case
        return [w.name for w in _bench.get_workloads(names)]
    except ValueError as exc:
        raise pytest.UsageError(f"--fastce-workloads: {exc}") from None


def pytest_configure(config):
    # validate the options once, up front: a clean usage error, not a
    # collection error per test
    config._fastce_workloads = _selected_workloads(config)
    threads = config.getoption("--fastce-threads")
    if threads < 1:
        raise pytest.UsageError(f"--fastce-threads must be >= 1, got {threads}")


def pytest_generate_tests(metafunc):
    # module scope: each workload's data is made once and released before the
    # next workload's (pytest orders the tests by it)
    if "workload" in metafunc.fixturenames:
        names = metafunc.config._fastce_workloads
        metafunc.parametrize("workload", names, indirect=True, ids=names, scope="module")


@pytest.fixture(scope="module")
def workload(request):
    """The `fastce._bench.Workload` of this test, its data made on first use."""
    w = _bench.get_workloads([request.param])[0]
    yield w
    w.release()


@pytest.fixture(scope="session")
def fastce_threads(request):
    """The ``--fastce-threads`` value."""
    return request.config.getoption("--fastce-threads")


@pytest.fixture(scope="session")
def torch(fastce_threads):
    """PyTorch set to ``--fastce-threads`` threads; skips where it is not
    installed."""
    try:
        import torch
    except ImportError as exc:  # absent, or an install that fails to load
        pytest.skip(f"PyTorch not importable: {exc}")
    before = torch.get_num_threads()
    torch.set_num_threads(fastce_threads)
    yield torch
    torch.set_num_threads(before)
