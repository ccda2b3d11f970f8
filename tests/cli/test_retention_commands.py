"""``engagelab retention`` as a subprocess, against the library and the pandas reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from engagelab.retention import retention
from engagelab.retention.engine import _default_until
from tests.retention.reference import reference

BIN = Path(sys.executable).with_name("engagelab")


def run(*args):
    proc = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300)
    return proc


def test_cli_json_rows_match_reference_and_censoring_is_null(rand_ws):
    ws, ev, _ = rand_ws
    proc = run(
        "retention",
        "--workspace",
        str(ws.path),
        "--start-event",
        "App Launched",
        "--return-event",
        "Charged",
        "--period",
        "week",
        "--periods",
        "5",
        "--mode",
        "on-or-after",
        "--cohort",
        "recurring",
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    rows = pd.DataFrame(json.loads(proc.stdout))
    assert list(rows.columns) == [
        "cohort",
        "period",
        "period_index",
        "size",
        "retained",
        "rate",
        "ci_low",
        "ci_high",
        "censored",
        "partial",
    ]
    ref = reference(
        ev,
        start="App Launched",
        ret="Charged",
        period="week",
        periods=5,
        mode="on-or-after",
        cohort="recurring",
        until=_default_until(ev["ts"].max()),
    )
    ref["cohort"] = [None if pd.isna(c) else c.strftime("%Y-%m-%d") for c in ref["cohort"]]
    m = rows.merge(
        ref, left_on=["cohort", "period_index"], right_on=["cohort", "j"], suffixes=("", "_ref")
    )
    assert len(m) == len(rows) == len(ref)
    assert np.array_equal(
        m["retained"].to_numpy(float), m["retained_ref"].to_numpy(float), equal_nan=True
    )
    censored = rows[rows["censored"]]
    assert len(censored) > 0 and censored["rate"].isna().all() and censored["retained"].isna().all()
    assert (rows.loc[~rows["censored"], "retained"] >= 0).all()


def test_cli_label_and_errors(rand_ws, tmp_path):
    ws, _, _ = rand_ws
    proc = run("retention", "-w", str(ws.path), "--label", "Onboarding", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "never sent" in json.loads(proc.stdout)["message"]
    proc = run("retention", "-w", str(ws.path), "--start-event", "App Lunched", "--format", "json")
    assert proc.returncode == 1
    assert "start_event == 'App Lunched', must be an event in the workspace" in proc.stderr
    assert "'App Launched'" in proc.stderr
    proc = run(
        "retention", "-w", str(ws.path), "--start-event", "App Launched", "--brackets", "1,x"
    )
    assert proc.returncode == 1
    assert "--brackets == '1,x', must be comma-separated whole numbers" in proc.stderr
    proc = run("retention", "-w", str(ws.path), "--start-event", "App Launched", "--periods", "3")
    assert proc.returncode == 0 and "All cohorts" in proc.stdout
    lib = retention(ws, "App Launched", periods=3).to_pandas()
    assert f"{lib.loc['All cohorts', 'Day 1']:.4f}".rstrip("0") in proc.stdout


def test_cli_time_zone(rand_ws):
    ws, ev, _ = rand_ws
    args = ["retention", "-w", str(ws.path), "--start-event", "App Launched", "--periods", "4"]
    proc = run(*args, "--timezone", "America/Los_Angeles", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = pd.DataFrame(json.loads(proc.stdout))
    lib = retention(ws, "App Launched", periods=4, timezone="America/Los_Angeles").long()
    assert np.array_equal(
        rows["retained"].to_numpy(float),
        lib["retained"].astype("Float64").to_numpy(float, na_value=np.nan),
        equal_nan=True,
    )
    assert rows["cohort"].dropna().tolist() == [
        c.strftime("%Y-%m-%d") for c in lib["cohort"].dropna()
    ]
    proc = run(*args, "--timezone", "PST8PDTX")
    assert proc.returncode == 1 and "timezone == 'PST8PDTX'" in proc.stderr
