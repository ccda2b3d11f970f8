"""notebooks/best_time.ipynb with the hour-of-week model: the campaign file holds the
slots of the logical date's weekday, as the core computes them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import papermill as pm
import pytest

from engagelab import Workspace
from engagelab.besttime import BestTimeOptions, send_times

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "best_time.ipynb"


@pytest.mark.slow
def test_notebook_writes_weekday_slots(tmp_path):
    ws_path = tmp_path / "ws"
    options = {"mode": "bayes", "window": ["07:00", "22:00"], "granularity": "hour_of_week"}
    pm.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "out.ipynb"),
        parameters={
            "workspace": str(ws_path),
            "users": 400,
            "days": 35,
            "seed": 5,
            "fit_weeks": 3,
            "eval_weeks": 2,
            "sim_days": 0,
            "logical_date": "2026-02-07",  # a Saturday
            "campaign_id": "how",
            "options": options,
        },
        kernel_name="python3",
        progress_bar=False,
    )
    plan = pd.read_csv(ws_path / "outputs" / "best_time_how_2026-02-07.csv")
    ws = Workspace.open(ws_path)
    try:
        users = ws.sql("SELECT user_id, timezone FROM profiles ORDER BY user_id")
        now = pd.Timestamp("2026-02-07", tz="UTC") - pd.Timedelta(hours=14)
        ref = send_times(ws, users, "2026-02-07", BestTimeOptions.from_dict(options), now=now)
    finally:
        ws.close()
    assert len(plan) == 400
    assert plan["slot_local"].fillna("").tolist() == ref["slot_local"].fillna("").tolist()
    assert plan["reason"].tolist() == ref["reason"].tolist()
