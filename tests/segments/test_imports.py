"""(Doctests: tests/test_doctests.py.) The docstring examples of engagelab.segments run, and the package stays import-light."""

from __future__ import annotations

import subprocess
import sys

import engagelab.segments


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
