"""The command line, run as a real subprocess the way users and schedulers run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

BIN = Path(sys.executable).with_name("engagelab")


def run(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, input=stdin, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_init_simulate_segment_sql(tmp_path):
    w = str(tmp_path / "w")
    out = json.loads(run("init", w, "--format", "json").stdout)
    assert out["workspace"].endswith("/w")
    sim = json.loads(
        run("simulate", "-w", w, "--users", "500", "--days", "10", "--format", "json").stdout
    )
    assert sim["users"] == 500 and sim["events"] > 500
    spec = tmp_path / "seg.yaml"
    from engagelab.segments import Segment, did

    seg = Segment(did("App Launched", at_least=3))
    spec.write_text(seg.to_yaml())
    counted = json.loads(
        run(
            "segment",
            "count",
            "-w",
            w,
            "--spec",
            str(spec),
            "--at",
            "2026-01-11",
            "--format",
            "json",
        ).stdout
    )
    direct = json.loads(
        run(
            "sql",
            "-w",
            w,
            "--format",
            "json",
            "SELECT count(*) AS n FROM (SELECT user_id FROM events WHERE event = 'App Launched' "
            "AND user_id IN (SELECT user_id FROM profiles) "
            "GROUP BY user_id HAVING count(*) >= 3)",
        ).stdout
    )
    assert counted["users"] == direct[0]["n"] > 0
    sql = run("segment", "show-sql", "-w", w, "--spec", str(spec), "--dialect", "spark").stdout
    assert "SELECT" in sql and "profiles" in sql
    run("segment", "save", "-w", w, "--spec", str(spec), "launchers")
    listed = json.loads(run("segment", "list", "-w", w, "--format", "json").stdout)
    assert [r["name"] for r in listed] == ["launchers"]
    by_name = json.loads(
        run(
            "segment",
            "count",
            "-w",
            w,
            "--name",
            "launchers",
            "--at",
            "2026-01-11",
            "--format",
            "json",
        ).stdout
    )
    assert by_name["users"] == counted["users"]


def test_ingest_command_reports_quarantine(tmp_path):
    w = str(tmp_path / "w")
    run("init", w)
    src = tmp_path / "in.csv"
    pd.DataFrame(
        {"uid": ["a", "", "c"], "event": ["E"] * 3, "ts": ["2026-01-01", "2026-01-01", "nope"]}
    ).to_csv(src, index=False)
    out = json.loads(
        run("ingest", str(src), "-w", w, "--map", "uid=user_id", "--format", "json").stdout
    )
    assert out["rows_appended"] == 1
    assert out["reasons"] == {"missing_user_id": 1, "bad_timestamp": 1}
    again = json.loads(
        run("ingest", str(src), "-w", w, "--map", "uid=user_id", "--format", "json").stdout
    )
    assert again["already_ingested"] is True


def test_errors_are_one_line_and_non_zero(tmp_path):
    proc = run("sql", "-w", str(tmp_path / "missing"), "SELECT 1", check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "is not an engagelab workspace" in proc.stderr
    assert "Traceback" not in proc.stderr
    w = str(tmp_path / "w")
    run("init", w)
    proc = run(
        "segment",
        "count",
        "-w",
        w,
        "--json",
        '{"version": 1, "condition": {"kind": "nope"}}',
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    proc = run("sql", "-w", w, "SELEC nonsense", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    proc = run("sql", "-w", w, "SELEC nonsense", "--debug", check=False)
    assert "Traceback" in proc.stderr
    proc = run("sql", "SELECT 1", check=False)
    assert proc.returncode == 2 and "no workspace" in proc.stderr


def test_demo_command_is_rerunnable(tmp_path):
    # Two programme days and no HTML keep it short; tests/test_demo.py covers the programme.
    args = ("demo", "-w", str(tmp_path / "demo"), "--users", "800", "--days", "7")
    args += ("--programme-days", "2", "--no-html", "--format", "json")
    first = json.loads(run(*args).stdout)
    second = json.loads(run(*args).stdout)
    assert first["users"] == second["users"] == 800
    assert first["events"] == second["events"] > 0
    assert first["failed"] == second["failed"] == []
    assert first["ran_now"] > 0 and second["ran_now"] == 0
    assert second["sent_now"] == 0 and second["messages_sent"] == first["messages_sent"]
