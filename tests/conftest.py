"""Shared pytest fixtures.  The helpers themselves live in ``_helpers.py`` as
plain functions (tests import them with ``from _helpers import ...``); the
fixtures below expose the same things for tests that prefer fixtures."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, _HERE)

import _helpers  # noqa: E402


@pytest.fixture
def helpers():
    """The ``_helpers`` module (assert_close, torch_ce, ...)."""
    return _helpers


@pytest.fixture
def assert_close():
    """``assert_close(actual, expected, dtype, kind="loss"|"grad")`` at the
    SPEC section 3.8 tolerances."""
    return _helpers.assert_close


@pytest.fixture
def rng(request):
    """A Generator seeded from the test's node id: fixed data per test."""
    return _helpers.rng_for(request.node.nodeid)


@pytest.fixture
def torch():
    """PyTorch (the oracle); the test is skipped where it is not installed."""
    return pytest.importorskip("torch")


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def float_dtype(request):
    return np.dtype(request.param)
