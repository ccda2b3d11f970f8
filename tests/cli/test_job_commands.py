"""`engagelab jobs ...` commands in-process (``engagelab.cli.app.main``): add, list, show,
pause/resume, history, remove, export, and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from engagelab.cli import main
from engagelab.jobs import get_job

SPEC = """\
name: nightly
notebook: nb.ipynb
params: {days: {type: int, default: 7}}
schedule: {cron: "30 2 * * *", timezone: Europe/Berlin}
catch_up: {policy: all, max_staleness: 2d}
"""


def _json(capsys, argv):
    capsys.readouterr()
    assert main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_jobs_commands(jws, tmp_path, capsys):
    w = ["--workspace", str(jws.path)]
    (tmp_path / "job.yaml").write_text(SPEC)
    assert _json(capsys, ["jobs", "add", str(tmp_path / "job.yaml"), *w]) == {
        "added": "nightly",
        "notebook": "nb.ipynb",
    }
    assert main(["jobs", "add", str(tmp_path / "job.yaml"), *w]) == 1
    assert "name == 'nightly', is already a job" in capsys.readouterr().err
    assert main(["jobs", "add", str(tmp_path / "job.yaml"), "--replace", *w]) == 0
    [row] = _json(capsys, ["jobs", "list", *w])
    assert (row["name"], row["cron"], row["timezone"], row["paused"]) == (
        "nightly",
        "30 2 * * *",
        "Europe/Berlin",
        False,
    )
    assert row["next_run"] is not None and row["last_status"] is None
    shown = _json(capsys, ["jobs", "show", "nightly", *w])
    assert shown["catch_up"] == {"policy": "all", "max_staleness": 172800.0}
    assert get_job(jws, "nightly").params["days"].default == 7
    assert _json(capsys, ["jobs", "pause", "nightly", *w]) == {"job": "nightly", "paused": True}
    [row] = _json(capsys, ["jobs", "list", *w])
    assert row["paused"] is True and row["next_run"] is None
    assert _json(capsys, ["jobs", "resume", "nightly", *w]) == {"job": "nightly", "paused": False}
    assert _json(capsys, ["jobs", "history", *w]) == []
    out = _json(capsys, ["jobs", "export", "nightly", "--k8s", str(tmp_path / "k8s"), *w])
    doc = yaml.safe_load(Path(out["k8s"]).read_text())
    assert (
        doc["spec"]["concurrencyPolicy"] == "Forbid"
        and doc["spec"]["startingDeadlineSeconds"] == 172800
    )
    assert main(["jobs", "show", "nope", *w]) == 1
    assert "job == 'nope', is not a job (known: nightly)" in capsys.readouterr().err
    assert main(["run", "nope", "--logical-date", "2026-01-01", *w]) == 1
    assert _json(capsys, ["jobs", "remove", "nightly", *w]) == {"removed": "nightly"}
    (tmp_path / "bad.yaml").write_text(
        "name: x\nnotebook: nb.ipynb\nschedule: {cron: '61 * * * *'}\n"
    )
    assert main(["jobs", "add", str(tmp_path / "bad.yaml"), *w]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err == "engagelab: error: schedule.cron == '61 * * * *', must be a 5-field cron expression"
    )
