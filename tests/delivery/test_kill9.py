"""SIGKILL a real sending process mid-run, rerun: every planned user got exactly one message,
checked at a real SMTP server (aiosmtpd) and a real HTTP server, with ledger and events
consistent.

SMTP has no idempotency key, so each message is recorded as it is handed over and as the
server accepts it: after the kill at most the one message in flight is in doubt, and the
rerun re-delivers it with the *same* Message-ID (derived from the message key), which is
how mail systems recognise the duplicate. So at the SMTP server every planned user has
exactly one distinct Message-ID, and raw re-deliveries are at most one. The HTTP server
deduplicates by Idempotency-Key, so each key is processed once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from engagelab import Workspace
from engagelab.campaigns import Variant, plan, send
from engagelab.delivery import ledger as L
from tests.campaigns.conftest import add_users, campaign, profiles

from .kill_worker import make_provider
from .servers import HttpServer, SmtpServer

ROOT = Path(__file__).resolve().parents[2]
LD = "2026-02-02T09:00:00Z"
N, BATCH = 400, 25


def _spawn(ws, c, kind, port):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.delivery.kill_worker", str(ws.path), c.to_json(), LD,
         "kill-1", kind, str(port), str(BATCH), "0.3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def _ledger(ws):
    with ws.state.read() as conn:
        return dict(
            conn.execute(
                sa.select(L.ledger.c.status, sa.func.count())
                .where(L.ledger.c.run_key == "kill-1")
                .group_by(L.ledger.c.status)
            ).fetchall()
        )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["smtp", "http"])
def test_sigkill_mid_send_then_rerun(ws, kind):
    add_users(ws, profiles(N))
    if kind == "smtp":
        server = SmtpServer()
        c = campaign("kill", control_percent=10)
    else:
        server = HttpServer()
        hook = {
            "url": f"http://127.0.0.1:{server.port}/hook",
            "body": {"user": "{{ profile.user_id }}"},
        }
        c = campaign("kill", channel="webhook", variants=(Variant("A", hook),), control_percent=10)
    ws.close()

    def received() -> list[str]:
        if kind == "smtp":
            return [m["key"] for m in server.messages]
        return list(server.processed)

    with server:
        proc = _spawn(ws, c, kind, server.port)
        deadline = time.time() + 120
        while time.time() < deadline and len(received()) < 4 * BATCH:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        ws2 = Workspace.open(ws.path)
        try:
            assert 4 * BATCH <= len(received()) < N * 0.9 - BATCH, "the kill should land mid-run"
            before = _ledger(ws2)
            if kind == "smtp":  # recorded per message: one unit claimed, one message in doubt
                assert before.get("claimed", 0) + before.get("handed", 0) <= BATCH
                assert before.get("handed", 0) <= 1
                assert len(received()) - before.get("sent", 0) <= 1
            else:  # delivered or not, the batch in flight is in doubt
                assert before.get("claimed", 0) > 0
            p = plan(ws2, c, LD, run_key="kill-1")
            r = send(ws2, p, "kill-1", make_provider(kind, server.port), batch_size=BATCH)
            assert r.pending == 0
            planned = p.to_pandas()
            want = planned.loc[planned["decision"] == "send"]
            keys = set(want["message_key"])
            assert _ledger(ws2) == {"sent": len(keys)}
            if kind == "smtp":
                ids_by_user = {}
                for m in server.messages:
                    ids_by_user.setdefault(m["rcpt_tos"][0], set()).add(m["message_id"])
                assert set(ids_by_user) == set(want["user_id"] + "@example.com")
                assert all(len(v) == 1 for v in ids_by_user.values())  # one distinct message
                assert {m["key"] for m in server.messages} == keys
                dup = sum(n - 1 for n in Counter(m["key"] for m in server.messages).values())
                assert dup <= 1  # only the message in flight at the kill may be sent twice
            else:
                assert set(server.processed) == keys
                assert all(n == 1 for n in server.processed.values())  # each key processed once
                assert {b["json"]["user"] for b in server.bodies.values()} == set(want["user_id"])
            ev = ws2.sql("SELECT event, message_key FROM events WHERE campaign_id = 'kill'")
            sent = ev[ev["event"] == "Notification Sent"]
            assert sent["message_key"].is_unique and set(sent["message_key"]) == keys
            assert (ev["event"] == "Control Group").sum() == (
                planned["decision"] == "control"
            ).sum()
        finally:
            ws2.close()
