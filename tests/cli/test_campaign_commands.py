"""The ``engagelab campaign`` CLI plug-in."""

from __future__ import annotations

import json

from engagelab.cli import main
from tests.campaigns.conftest import add_users, campaign, profiles


def test_save_plan_send_report(ws, tmp_path, capsys):
    add_users(ws, profiles(20))
    spec = tmp_path / "c.yaml"
    spec.write_text(campaign("cli", control_percent=20).to_yaml())
    w = ["--workspace", str(ws.path)]
    assert main(["campaign", "save", str(spec), *w]) == 0
    assert main(["campaign", "list", *w, "--format", "json"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "campaign",
                "send",
                "cli",
                "--logical-date",
                "2026-01-05T09:00Z",
                "--run-key",
                "k1",
                *w,
                "--format",
                "json",
            ]
        )
        == 0
    )
    first = json.loads(capsys.readouterr().out)
    assert (
        main(
            [
                "campaign",
                "send",
                "cli",
                "--logical-date",
                "2026-01-05T09:00Z",
                "--run-key",
                "k1",
                *w,
                "--format",
                "json",
            ]
        )
        == 0
    )
    again = json.loads(capsys.readouterr().out)
    assert first["sent"] > 0 and again["sent"] == 0 and again["already_sent"] == first["sent"]
    assert (
        main(["campaign", "report", *w, "--csv", str(tmp_path / "r.csv"), "--format", "json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["sent"] == first["sent"] and (tmp_path / "r.csv").exists()
    assert main(["campaign", "plan", "nope", "--logical-date", "2026-01-05", *w]) == 1
    assert "id == 'nope'" in capsys.readouterr().err
