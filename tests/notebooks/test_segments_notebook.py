"""notebooks/segments.ipynb runs top to bottom under papermill, in a real kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill as pm
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "segments.ipynb"


def test_segments_notebook_runs_on_a_fresh_workspace(tmp_path):
    out = tmp_path / "out.ipynb"
    ws_path = tmp_path / "ws"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={"workspace": str(ws_path), "users": 800, "days": 14, "seed": 2},
        kernel_name="python3",
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
    from engagelab import Workspace

    ws = Workspace.open(ws_path)
    assert int(ws.sql("SELECT count(*) AS n FROM profiles")["n"][0]) == 800
    assert len(ws.segments()) >= 1  # the notebook saved its segment
    ws.close()


def test_segments_notebook_fails_fast_on_a_bad_parameter(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="users"):
        pm.execute_notebook(
            str(NOTEBOOK),
            str(tmp_path / "bad.ipynb"),
            parameters={"users": "abc"},
            kernel_name="python3",
            progress_bar=False,
        )
