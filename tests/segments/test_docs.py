"""The docstring examples of engagelab.segments run, and the package stays import-light."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import engagelab.segments

MODULES = [
    "engagelab.segments",
    "engagelab.segments._values",
    "engagelab.segments.base",
    "engagelab.segments.builders",
    "engagelab.segments.events",
    "engagelab.segments.filters",
    "engagelab.segments.geo",
    "engagelab.segments.segment",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


def test_public_names_are_unique_and_exported():
    names = engagelab.segments.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(engagelab.segments, name) is not None


def test_import_does_not_load_jupyter_or_spark():
    code = "import sys, engagelab.segments; print(sorted(m for m in ('ipywidgets', 'IPython', 'pyspark') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
