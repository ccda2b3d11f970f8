"""notebooks/best_time.ipynb runs top to bottom under papermill, in a real kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "best_time.ipynb"


@pytest.mark.slow
def test_best_time_notebook_writes_the_campaign_slots(tmp_path):
    out = tmp_path / "out.ipynb"
    ws_path = tmp_path / "ws"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={
            "workspace": str(ws_path),
            "users": 600,
            "days": 35,
            "seed": 3,
            "fit_weeks": 3,
            "eval_weeks": 2,
            "sim_days": 1,
            "logical_date": "2026-02-10",
            "campaign_id": "nbtest",
            "options": {"mode": "clevertap", "window": ["09:00", "21:00"]},
        },
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
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2
    plan = pd.read_csv(ws_path / "outputs" / "best_time_nbtest_2026-02-10.csv")
    assert len(plan) == 600
    sent = plan.dropna(subset=["send_at_utc"])
    assert sent["slot_local"].between("09:00", "21:00").all()
    assert set(plan["reason"]) <= {
        "chosen",
        "fallback_no_history",
        "outside_window",
        "passed_next_day",
    }


def test_best_time_notebook_fails_fast_on_a_bad_option(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="BestTimeOptions key"):
        pm.execute_notebook(
            str(NOTEBOOK),
            str(tmp_path / "bad.ipynb"),
            parameters={"options": {"windw": 1}},
            kernel_name="python3",
            progress_bar=False,
        )
