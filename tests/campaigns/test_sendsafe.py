"""No message sent twice: concurrent senders, occurrence-based message keys, plan-time
suppression of invalid headers, recurring campaigns on days they do not fire.

Every test counts what a real SMTP server on loopback (aiosmtpd) received; the concurrent
ones run real ``engagelab`` processes against SQLite and PostgreSQL state databases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from engagelab import Workspace
from engagelab.campaigns import Campaign, Schedule, Variant, plan, save_campaign, send
from engagelab.campaigns.job import run_campaign_job
from engagelab.delivery import ledger as L
from engagelab.delivery.smtp import SmtpProvider
from tests.campaigns.conftest import add_users, campaign, profiles
from tests.delivery.servers import SmtpServer

ROOT = Path(__file__).resolve().parents[2]


def _env(port: int) -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": str(ROOT),
        "ENGAGELAB_EMAIL_PROVIDER": "smtp",
        "ENGAGELAB_SMTP_HOST": "127.0.0.1",
        "ENGAGELAB_SMTP_PORT": str(port),
    }


def _cli(ws_path: Path, port: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engagelab.cli", *args, "--workspace", str(ws_path),
         "--format", "json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(port),
    )  # fmt: skip


def _finish(procs: list[subprocess.Popen], timeout: float = 600) -> list[dict]:
    out = []
    for p in procs:
        o, e = p.communicate(timeout=timeout)
        err = e.decode()
        assert p.returncode == 0, err[-3000:]
        assert "IntegrityError" not in err and "Traceback" not in err, err[-3000:]
        out.append(json.loads(o.decode()))
    return out


def _per_user(server: SmtpServer) -> Counter:
    return Counter(m["rcpt_tos"][0] for m in server.messages)


@pytest.mark.slow
def test_two_concurrent_cli_sends_deliver_each_message_once(tmp_path, state_url):
    n = 3000
    ws = Workspace.create(tmp_path / "ws", state_url=state_url)
    add_users(ws, profiles(n))
    save_campaign(ws, campaign("c1"))
    ws.close()
    with SmtpServer() as server:
        args = ("campaign", "send", "c1", "--logical-date", "2026-02-02")
        a, b = _finish([_cli(tmp_path / "ws", server.port, *args) for _ in range(2)])
        per_user = _per_user(server)
        assert len(server.messages) == n and len(per_user) == n
        assert set(per_user.values()) == {1}
        assert len({m["key"] for m in server.messages}) == n
    # each process delivered what it won and reported the rest
    assert a["sent"] + b["sent"] == n, (a, b)
    assert min(a["sent"], b["sent"]) > 0, "the two senders should have raced"
    for r in (a, b):
        assert r["sent"] + r["already_sent"] + r["skipped"] == n and r["pending"] == 0, r
    ws = Workspace.open(tmp_path / "ws")
    try:
        with ws.state.read() as conn:
            st = dict(
                conn.execute(
                    sa.select(L.ledger.c.status, sa.func.count()).group_by(L.ledger.c.status)
                ).fetchall()
            )
        assert st == {"sent": n}
        ev = ws.sql("SELECT message_key FROM events WHERE event = 'Notification Sent'")
        assert len(ev) == n and ev["message_key"].is_unique
    finally:
        ws.close()


def test_two_concurrent_cli_sends_to_the_outbox_write_each_message_once(tmp_path, state_url):
    """The default outbox provider: two processes, small claim units, one line a key."""
    from engagelab.campaigns import read_outbox
    from engagelab.delivery.outbox import outbox_path

    n = 3000
    ws = Workspace.create(tmp_path / "ws", state_url=state_url)
    add_users(ws, profiles(n))
    save_campaign(ws, campaign("c1"))
    ws.close()
    args = ("campaign", "send", "c1", "--logical-date", "2026-02-02", "--batch-size", "100")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engagelab.cli",
                *args,
                "--workspace",
                str(tmp_path / "ws"),
                "--format",
                "json",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        for _ in range(2)
    ]
    a, b = _finish(procs)
    assert a["sent"] + b["sent"] == n and a["run_key"] == b["run_key"], (a, b)
    ws = Workspace.open(tmp_path / "ws")
    try:
        lines = read_outbox(outbox_path(ws, a["run_key"]))
        assert len(lines) == n and len({x["key"] for x in lines}) == n
        assert len({x["user_id"] for x in lines}) == n
    finally:
        ws.close()


_JOB = """
import json, sys
from engagelab.campaigns.job import run_campaign_job
r = run_campaign_job(sys.argv[1], sys.argv[2], campaign_id=sys.argv[3])
print(json.dumps(r.to_dict()))
"""


@pytest.mark.slow
def test_one_occurrence_is_delivered_once_by_jobs_cli_and_ws_send(ws):
    """A one-time campaign with a fixed ``at``: two jobs for two logical dates at once, the
    CLI for another date and ``ws.send`` under a new run key together deliver one copy."""
    n = 231
    add_users(ws, profiles(n))
    c = campaign("once", schedule=Schedule("one_time", at="2026-02-01T18:00:00Z"))
    save_campaign(ws, c)
    ws.close()
    with SmtpServer() as server:
        jobs = [
            subprocess.Popen(
                [sys.executable, "-c", _JOB, str(ws.path), day, "once"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_env(server.port),
            )  # fmt: skip
            for day in ("2026-02-01", "2026-02-02")
        ]
        ja, jb = _finish(jobs)
        assert ja["sent_now"] + jb["sent_now"] == n, (ja, jb)
        (cli,) = _finish(
            [_cli(ws.path, server.port, "campaign", "send", "once", "--logical-date", "2026-02-01")]
        )
        assert cli["sent"] == 0 and cli["already_sent"] == n
        ws2 = Workspace.open(ws.path)
        try:
            p = ws2.plan(c, "2026-02-03T08:00:00Z")
            r = ws2.send(p, "manual-42", SmtpProvider("127.0.0.1", server.port))
            assert r.sent == 0 and r.already_sent == n and r.done
        finally:
            ws2.close()
        per_user = _per_user(server)
        assert len(server.messages) == n and set(per_user.values()) == {1} and len(per_user) == n


def test_recurring_campaign_on_a_day_it_does_not_fire_sends_nothing(ws):
    """``0 18 * * 1,3,5`` planned for Tuesday sends nothing (a note says why); Wednesday
    sends once, however often it is planned and sent."""
    add_users(ws, profiles(40))
    c = campaign("mwf", schedule=Schedule("recurring", cron="0 18 * * 1,3,5", timezone="UTC"))
    save_campaign(ws, c)
    with SmtpServer() as server:

        def smtp() -> SmtpProvider:
            return SmtpProvider("127.0.0.1", server.port)

        tue = plan(ws, c, "2026-02-03T00:00:00Z")
        assert len(tue.frame) == 0 and tue.reach == 0
        assert "does not fire on 2026-02-03 (Tuesday" in tue.note and tue.note in repr(tue)
        r = send(ws, tue, "tue", smtp())
        assert r.planned == 0 and r.sent == 0 and "does not fire" in r.note
        job = run_campaign_job(ws, "2026-02-03", campaign_id="mwf", run_key="job/tue")
        assert job.sent_now == 0 and "does not fire" in job.note
        wed = plan(ws, c, "2026-02-04T00:00:00Z")
        assert wed.reach == 40 and not wed.note
        assert (wed.frame["send_at"] == pd.Timestamp("2026-02-04T18:00:00Z")).all()
        assert send(ws, wed, "wed-1", smtp()).sent == 40
        again = run_campaign_job(ws, "2026-02-04", campaign_id="mwf", run_key="job/wed")
        assert again.sent_now == 0 and again.already_sent == 40
        assert len(server.messages) == 40 and set(_per_user(server).values()) == {1}
        fri = plan(ws, c, "2026-02-06T00:00:00Z")
        assert set(fri.frame["message_key"]).isdisjoint(set(wed.frame["message_key"]))


def test_invalid_header_values_are_suppressed_at_plan_time(ws):
    df = profiles(60)
    df["first_name"] = [f"N{i}" for i in range(60)]
    df.loc[3, "first_name"] = "Eve\nBcc: all@example.com"
    df.loc[7, "first_name"] = "Tab\there"
    df.loc[11, "email"] = "not-an-address"
    df.loc[12, "email"] = "x@example.com\r\nBcc: y@example.com"
    add_users(ws, df)
    v = Variant("A", {"from": "shop@example.com", "subject": "Hi {{ profile.first_name }}",
                      "text": "Hello {{ profile.first_name }}"})  # fmt: skip
    c = Campaign(id="hdr", channel="email", variants=(v,))
    p = plan(ws, c, "2026-02-02T09:00:00Z")
    f = p.to_pandas()
    bad = set(f.loc[f["reason"] == "invalid_header", "user_id"])
    assert bad == {"u00003", "u00007", "u00011", "u00012"}
    assert p.reasons()["invalid_header"] == 4 and p.reach == 56
    with SmtpServer() as server:
        r = send(ws, p, "hdr-1", SmtpProvider("127.0.0.1", server.port))
        assert r.sent == 56 and r.failed == 0 and r.reasons["invalid_header"] == 4
        assert len(server.messages) == 56
        assert all("\n" not in m["subject"] for m in server.messages)
        assert not {f"{u}@example.com" for u in bad} & set(_per_user(server))
    ev = ws.sql(
        "SELECT count(*) n FROM events WHERE event = 'Notification Suppressed' "
        "AND reason = 'invalid_header'"
    )
    assert int(ev["n"][0]) == 4


def test_a_message_that_cannot_be_rendered_fails_alone(ws):
    """A profile value that turns bad between plan and send (a rerun renders from the
    current profiles) fails that one message; the rest of the campaign goes."""
    df = profiles(30)
    df["first_name"] = [f"N{i}" for i in range(30)]
    add_users(ws, df)
    v = Variant("A", {"from": "shop@example.com", "subject": "Hi {{ profile.first_name }}",
                      "text": "Hello"})  # fmt: skip
    c = Campaign(id="late", channel="email", variants=(v,))
    p = plan(ws, c, "2026-02-02T09:00:00Z")
    assert p.reach == 30
    changed = df.iloc[[5]].assign(first_name="Eve\r\nBcc: all@example.com")
    add_users(ws, changed)
    with SmtpServer() as server:
        r = send(ws, p, "late-1", SmtpProvider("127.0.0.1", server.port))
        assert r.sent == 29 and r.failed == 1 and r.pending == 0
        assert len(server.messages) == 29 and "u00005@example.com" not in _per_user(server)
        again = send(ws, p, "late-1", SmtpProvider("127.0.0.1", server.port))
        assert again.sent == 0 and again.failed == 1 and len(server.messages) == 29
    with ws.state.read() as conn:
        err = conn.execute(
            sa.select(L.ledger.c.error).where(L.ledger.c.user_id == "u00005")
        ).scalar_one()
    assert "cannot render" in err and "subject" in err


def test_an_occurrence_already_sent_does_not_count_against_its_own_cap(ws):
    """Planning the same occurrence again under another run key (a job after the CLI)
    neither caps its users on their own message nor sends them a second one."""
    from engagelab.campaigns import Delivery, FrequencyCap

    add_users(ws, profiles(20))
    cap = Delivery(caps=(FrequencyCap(1, 1, "days", "calendar"),))
    c = campaign("capped", delivery=cap)
    first = send(ws, plan(ws, c, "2026-02-02T09:00:00Z", run_key="a"), "a")
    assert first.sent == 20
    p = plan(ws, c, "2026-02-02T10:00:00Z", run_key="b")
    assert p.reach == 20 and "frequency_cap" not in p.reasons()
    r = send(ws, p, "b")
    assert r.sent == 0 and r.already_sent == 20 and r.suppressed == 0
    ev = ws.sql("SELECT event, count(*) n FROM events GROUP BY event")
    assert dict(zip(ev["event"], ev["n"], strict=True)) == {"Notification Sent": 20}
    other = campaign("other", delivery=cap)  # a different campaign the same day is capped
    assert plan(ws, other, "2026-02-02T11:00:00Z").reasons() == {"frequency_cap": 20}
