"""Triggered campaigns in near real time with a real process: ``engagelab dispatch -w WS``
runs as a subprocess on the system clock against a real SMTP server (aiosmtpd on
loopback). An event ingested through the public API reaches the server within seconds;
a dispatcher killed with SIGKILL while it hands a trigger message over (before the server
took it) is restarted and the message arrives exactly once, and nothing sent before the
kill goes again."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import threading
import time
from collections import Counter

import pandas as pd
import pytest
import sqlalchemy as sa

from engagelab.campaigns import Delivery, Schedule
from engagelab.campaigns.saved import save_campaign
from engagelab.delivery import ledger as L
from tests.campaigns.conftest import add_users, campaign, profiles

from .servers import SmtpServer
from .test_dispatch_processes import _arrivals, _dispatch, _stop, _wait


def _statuses(ws) -> Counter:
    with ws.state.read() as conn:
        return Counter(dict(conn.execute(
            sa.select(L.ledger.c.status, sa.func.count()).group_by(L.ledger.c.status)
        ).all()))  # fmt: skip


def _event(ws, user: str) -> float:
    """Ingest one 'Added to Cart' of ``user`` now; return the wall time before the call."""
    t = time.time()
    ws.ingest(
        pd.DataFrame({"user_id": [user], "event": ["Added to Cart"],
                      "ts": [dt.datetime.now(dt.UTC)]}),
        quiet=True,
    )  # fmt: skip
    return t


def _hold_rcpt(srv: SmtpServer, gate: threading.Event) -> None:
    """While ``gate`` is clear, the server stalls at RCPT (before the message is given)."""
    inner = srv.recorder.handle_RCPT

    async def handle_rcpt(server, session, envelope, address, rcpt_options):
        while not gate.is_set():
            await asyncio.sleep(0.02)
        return await inner(server, session, envelope, address, rcpt_options)

    srv.recorder.handle_RCPT = handle_rcpt  # type: ignore[method-assign]


@pytest.mark.slow
def test_an_ingested_event_reaches_the_server_in_seconds_and_once_across_a_kill(ws):
    add_users(ws, profiles(3))
    c = campaign("cart", schedule=Schedule("triggered", event="Added to Cart"),
                 delivery=Delivery(ttl_hours=1))  # fmt: skip
    save_campaign(ws, c, "active")
    gate = threading.Event()
    gate.set()
    with SmtpServer() as srv:
        seen = _arrivals(srv)
        _hold_rcpt(srv, gate)
        proc = _dispatch(ws, srv.port, "--poll-seconds", "0.2")
        try:
            assert "started" in proc.stderr.readline()  # up and polling
            t0 = _event(ws, "u00000")
            _wait(lambda: len(seen) == 1, timeout=30)
            latency = next(iter(seen.values())) - t0
            assert latency < 5.0, latency  # event to provider, measured at the server

            # the next trigger: the server stalls before taking it; kill the dispatcher then
            gate.clear()
            _event(ws, "u00001")
            _wait(lambda: _statuses(ws).get("claimed", 0) == 1, timeout=30)
            time.sleep(0.3)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert len(srv.messages) == 1 and _statuses(ws) == {"sent": 1, "claimed": 1}
        gate.set()
        # the restarted dispatcher takes the dead one's claim over at once (same host)
        again = _dispatch(ws, srv.port, "--poll-seconds", "0.2")
        try:
            assert "started" in again.stderr.readline()
            _wait(lambda: len(srv.messages) == 2, timeout=60)
            time.sleep(1.0)  # a few more rounds: nothing is enqueued or sent again
        finally:
            res = _stop(again)
        got = Counter(m["key"] for m in srv.messages)
    assert len(got) == 2 and set(got.values()) == {1}  # each trigger exactly once
    assert _statuses(ws) == {"sent": 2}
    assert res["fed"] == 0 and res["sent"] == 1  # the restart re-planned nothing
    sent = ws.sql("SELECT user_id FROM events WHERE event = 'Notification Sent' ORDER BY 1")
    assert sent["user_id"].tolist() == ["u00000", "u00001"]
