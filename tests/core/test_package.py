"""Package hygiene: import cost, public surface, doctests of the core modules."""

from __future__ import annotations

import doctest
import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

import engagelab


def test_import_engagelab_does_not_load_jupyter_or_spark():
    code = (
        "import sys, engagelab, engagelab.segments, engagelab.simulate, engagelab.experiments, "
        "engagelab.cli.app, engagelab.simulate.worlds; "
        "print(sorted(m for m in ('ipywidgets', 'IPython', 'pyspark', 'ipykernel') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_all_is_sorted_and_resolves():
    assert list(engagelab.__all__) == sorted(engagelab.__all__)
    for name in engagelab.__all__:
        assert hasattr(engagelab, name), name


def _core_modules():
    for info in pkgutil.walk_packages(engagelab.__path__, "engagelab."):
        if info.name.startswith("engagelab.widgets") or info.name.endswith("__main__"):
            continue
        yield info.name


@pytest.mark.parametrize("name", sorted(_core_modules()))
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_errors_read_as_one_line():
    from engagelab import ValidationError

    err = ValidationError("alpha", 1.2, "must be in (0, 1)")
    assert str(err) == "alpha == 1.2, must be in (0, 1)"
    assert isinstance(err, ValueError)
    assert json.dumps(str(err))
