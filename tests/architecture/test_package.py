"""Package hygiene: import cost and the public surface (doctests: tests/test_doctests.py)."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_errors_read_as_one_line():
    from engagelab import ValidationError

    err = ValidationError("alpha", 1.2, "must be in (0, 1)")
    assert str(err) == "alpha == 1.2, must be in (0, 1)"
    assert isinstance(err, ValueError)
    assert json.dumps(str(err))
