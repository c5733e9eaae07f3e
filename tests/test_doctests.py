"""The examples in the docstrings and in the README run and print what they
show.

The docstrings are read from the *imported* fastce modules (``doctest.testmod``),
so this works against an installed package from a clean checkout, where
``fastce/`` in the repository has no compiled extensions.
"""
from __future__ import annotations

import doctest
import importlib
import os
import re
import warnings

import pytest

import fastce

DOCUMENTED_MODULES = [
    "fastce.functional",
    "fastce.losses",
    "fastce._config",
    "fastce.class_weights",
    "fastce.linear",
    "fastce.focal",
    "fastce.boosting",
]

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "README.md")


@pytest.fixture(autouse=True)
def _restore_threads():
    # the set_num_threads example changes global state; leave it as found
    yield
    fastce.set_num_threads(None)


@pytest.mark.parametrize("module_name", DOCUMENTED_MODULES)
def test_module_docstring_examples(module_name):
    # importlib, not attribute access: fastce.class_weights is the function
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.attempted > 0, f"{module_name} has no examples"
    assert result.failed == 0, f"{result.failed} failing example(s) in {module_name}"


@pytest.mark.parametrize("module_name", DOCUMENTED_MODULES)
def test_every_public_function_has_an_example(module_name):
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if not callable(obj) or getattr(obj, "__module__", None) != module_name:
            continue  # type aliases, re-exports
        assert obj.__doc__ and ">>>" in obj.__doc__, f"{module_name}.{name}"


def _readme_python_blocks():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.skipif(not os.path.exists(README), reason="README.md not beside tests/")
def test_readme_python_blocks_run():
    blocks = _readme_python_blocks()
    assert blocks, "README.md has no python code block"
    for i, block in enumerate(blocks):
        namespace = {"__name__": f"readme_block_{i}"}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exec(compile(block, f"README.md block {i}", "exec"), namespace)  # noqa: S102
