"""engagelab besttime fit|evaluate through the real CLI entry point."""

from __future__ import annotations

import json

import pandas as pd

from engagelab.cli import main


def test_fit_and_evaluate_json(sim_ws, capsys):
    assert (
        main(
            [
                "besttime",
                "fit",
                "--workspace",
                str(sim_ws.path),
                "--mode",
                "clevertap",
                "--format",
                "json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "clevertap" and out["users"] == 3000
    slots = pd.read_csv(out["slots_file"])
    assert len(slots) == 3000 and sum(out["reasons"].values()) == 3000
    assert set(slots["reason"]) <= {"chosen", "fallback_no_history", "outside_window"}

    args = ["besttime", "evaluate", "-w", str(sim_ws.path), "--fit-weeks", "4", "--format", "json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    metrics = {r["metric"] for r in doc["results"]}
    assert metrics == {"hit_rate", "recovery"}  # the workspace has a simulated world
    assert doc["info"]["cutoff"].startswith("2026-01-28")


def test_bad_input_exits_with_one_line(sim_ws, capsys):
    rc = main(["besttime", "fit", "-w", str(sim_ws.path), "--events", "Nope"])
    assert rc == 1
    assert capsys.readouterr().err.strip() == (
        "engagelab: error: events == 'Nope', is not an event name found in this workspace"
    )
    rc = main(["besttime", "fit", "-w", str(sim_ws.path), "--window", "22:00-08:00"])
    assert rc == 1 and "earliest < latest" in capsys.readouterr().err
