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


def test_send_of_a_future_date_queues_and_a_rerun_enqueues_nothing_new(ws, tmp_path, capsys):
    """``campaign send`` for a date ahead of the clock: every message queued (shown in the
    output), nothing delivered; sending the same campaign and date again, under another
    run key, adds no ledger row; ``dispatch --once`` releases nothing before it is due."""
    import sqlalchemy as sa

    from engagelab.delivery import ledger as L

    add_users(ws, profiles(12))
    spec = tmp_path / "c.yaml"
    spec.write_text(campaign("later").to_yaml())
    w = ["--workspace", str(ws.path), "--format", "json"]
    assert main(["campaign", "save", str(spec), *w]) == 0
    capsys.readouterr()
    day = "2099-03-01T09:00Z"
    outs = []
    for key in ("a1", "a2"):
        rc = main(["campaign", "send", "later", "--logical-date", day, "--run-key", key, *w])
        assert rc == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert (outs[0]["sent"], outs[0]["queued"]) == (0, 12)
    assert (outs[1]["sent"], outs[1]["queued"]) == (0, 12)  # the same 12, still waiting
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.ledger.c.status, sa.func.count()).group_by(L.ledger.c.status)
        ).all()
    assert dict(rows) == {"queued": 12}
    assert main(["dispatch", "--workspace", str(ws.path), "--once", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["released"] == 0
