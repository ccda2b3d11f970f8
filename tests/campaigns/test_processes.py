"""Real processes: SIGKILL mid-send then rerun (exactly one message per planned user), and
frequency caps holding across two campaigns sending concurrently from two processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from engagelab import Workspace
from engagelab.campaigns import Delivery, FrequencyCap, plan, read_outbox, send
from engagelab.delivery import ledger as L
from engagelab.delivery.outbox import outbox_path
from tests.campaigns.conftest import add_users, campaign, profiles

ROOT = Path(__file__).resolve().parents[2]
LD = "2026-02-02T09:00:00Z"


def _spawn(ws, c, run_key: str, batch: int, pause: float, barrier: str = "") -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.campaigns.workers",
            str(ws.path),
            c.to_json(),
            LD,
            run_key,
            str(batch),
            str(pause),
            barrier,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )


def _outbox_received(ws, run_key: str) -> list[dict]:
    """What the outbox "server" received (the provider's durable record)."""
    return read_outbox(outbox_path(ws, run_key))


# the same test runs against any provider that records what it received; the SMTP and HTTP
# providers of engagelab.channels plug in here with their loopback servers.
RECEIVERS = {"outbox": _outbox_received}


@pytest.mark.parametrize("provider", sorted(RECEIVERS))
def test_sigkill_mid_send_then_rerun_delivers_exactly_once(ws, provider):
    add_users(ws, profiles(600))
    c = campaign("kill", control_percent=10, labels=("K",))
    ws.close()
    proc = _spawn(ws, c, "kill-1", batch=40, pause=0.15)
    received = RECEIVERS[provider]
    deadline = time.time() + 120
    while time.time() < deadline and len(received(ws, "kill-1")) < 120:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ws2 = Workspace.open(ws.path)
    try:
        got = received(ws2, "kill-1")
        assert 120 <= len(got) < 540, "the kill should land mid-run"
        with ws2.state.read() as conn:
            before = dict(
                conn.execute(
                    sa.select(L.ledger.c.status, sa.func.count())
                    .where(L.ledger.c.run_key == "kill-1")
                    .group_by(L.ledger.c.status)
                ).fetchall()
            )
        assert before.get("sent", 0) < 540
        # rerun in this process with the plain outbox provider
        p = plan(ws2, c, LD, run_key="kill-1")
        r = send(ws2, p, "kill-1")
        assert r.pending == 0 and r.attempt == 2
        planned = p.to_pandas()
        want = set(planned.loc[planned["decision"] == "send", "user_id"])
        msgs = received(ws2, "kill-1")
        users = [m["user_id"] for m in msgs]
        assert len(users) == len(set(users)) == len(want) and set(users) == want
        with ws2.state.read() as conn:
            st = dict(
                conn.execute(
                    sa.select(L.ledger.c.status, sa.func.count())
                    .where(L.ledger.c.run_key == "kill-1")
                    .group_by(L.ledger.c.status)
                ).fetchall()
            )
        assert st == {"sent": len(want)}
        ev = ws2.sql("SELECT event, message_key, user_id FROM events WHERE campaign_id = 'kill'")
        sent = ev[ev["event"] == "Notification Sent"]
        assert sent["message_key"].is_unique and set(sent["message_key"]) == {
            m["key"] for m in msgs
        }
        assert (ev["event"] == "Control Group").sum() == (planned["decision"] == "control").sum()
    finally:
        ws2.close()


@pytest.mark.slow
def test_caps_hold_across_two_concurrent_processes(ws, tmp_path):
    add_users(ws, profiles(800))
    cap = Delivery(caps=(FrequencyCap(1, 1, "days", "calendar"),))
    a = campaign("capA", delivery=cap)
    b = campaign("capB", delivery=cap)
    ws.close()
    gate = tmp_path / "barrier"
    gate.mkdir()
    pa_, pb = (
        _spawn(ws, a, "capA-1", 50, 0.0, str(gate)),
        _spawn(ws, b, "capB-1", 50, 0.0, str(gate)),
    )
    outs = [p.communicate(timeout=300) for p in (pa_, pb)]
    for p, (_o, e) in zip((pa_, pb), outs, strict=True):
        assert p.returncode == 0, e.decode()[-3000:]
    ra, rb = (json.loads(o.decode().strip().splitlines()[-1]) for o, _ in outs)
    ws2 = Workspace.open(ws.path)
    try:
        with ws2.state.read() as conn:
            rows = conn.execute(
                sa.select(L.ledger.c.user_id, L.ledger.c.status, L.ledger.c.reason)
            ).fetchall()
        sent = [u for u, s, _ in rows if s == "sent"]
        assert len(sent) == len(set(sent)) == 800, "every user got exactly one of the two campaigns"
        capped = [u for u, s, r in rows if s == "suppressed"]
        assert len(capped) == 800 and {r for _, s, r in rows if s == "suppressed"} == {
            "frequency_cap"
        }
        assert ra["sent"] + rb["sent"] == 800 and min(ra["sent"], rb["sent"]) > 0, (ra, rb)
        boxes = read_outbox(outbox_path(ws2, "capA-1")) + read_outbox(outbox_path(ws2, "capB-1"))
        assert sorted(m["user_id"] for m in boxes) == sorted(sent)
        sup = ws2.sql(
            "SELECT count(*) n FROM events WHERE event = 'Notification Suppressed' AND reason = 'frequency_cap'"
        )
        assert int(sup["n"][0]) == 800
    finally:
        ws2.close()
