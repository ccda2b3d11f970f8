"""Every notebook in notebooks/ is a tested, parameterised artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TESTS = [p for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_parameters_cell_and_no_stored_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook without code"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one code cell must be tagged 'parameters'"
    assert code.index(tagged[0]) == 0, "the parameters cell comes first"
    assert all(not c.get("outputs") for c in code), "notebooks are committed without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_executed_by_a_test(path):
    users = [t for t in TESTS if path.name in t.read_text()]
    assert users, f"no test executes notebooks/{path.name}"
