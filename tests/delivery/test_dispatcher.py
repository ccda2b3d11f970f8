"""The send queue and the dispatcher, against a real SMTP server (aiosmtpd on loopback).

In process with a :class:`~engagelab.clock.SimulatedClock`: messages due later are
queued and nothing reaches the server; as the clock moves, each is released once, its
'Notification Sent' event stamped with the hand-over time; a message past its TTL is
suppressed with reason ``expired``; sending the same occurrence again enqueues nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
import sqlalchemy as sa

from engagelab.campaigns import DND, Delivery, Dispatcher, plan, send
from engagelab.cli.app import main
from engagelab.clock import SimulatedClock
from engagelab.delivery import ledger as L
from engagelab.delivery.dispatcher import DispatchResult, queue_counts
from engagelab.delivery.smtp import SmtpProvider
from engagelab.errors import ValidationError
from tests.campaigns.conftest import add_users, campaign, profiles

from .servers import SmtpServer

LD = "2026-02-02T09:00:00Z"
T0 = dt.datetime(2026, 2, 2, 9, tzinfo=dt.UTC)


def _ledger(ws):
    with ws.state.read() as conn:
        return {
            r.key: r
            for r in conn.execute(
                sa.select(
                    L.ledger.c.key, L.ledger.c.status, L.ledger.c.reason, L.ledger.c.due_us,
                    L.ledger.c.origin_us, L.ledger.c.expires_us, L.ledger.c.owner,
                )
            )
        }  # fmt: skip


def test_future_messages_wait_in_the_queue_and_go_once_when_due(ws):
    add_users(ws, profiles(20))
    c = campaign("thr", delivery=Delivery(throttle_per_minute=5))  # 5 due per minute
    clock = SimulatedClock(LD)
    with SmtpServer() as srv:
        prov = SmtpProvider("127.0.0.1", srv.port)
        p = plan(ws, c, LD)
        keys = set(p.frame["message_key"])
        r = send(ws, p, provider=prov, clock=clock)
        # the 5 due at 09:00 went at once, 15 wait; nothing else reached the server
        assert (r.sent, r.queued) == (5, 15) and "queued 15" in repr(r)
        assert len(srv.messages) == 5
        led = _ledger(ws)
        assert Counter(x.status for x in led.values()) == {"sent": 5, "queued": 15}
        q = [x for x in led.values() if x.status == "queued"]
        assert all(x.due_us > int(T0.timestamp() * 1e6) and x.owner is None for x in q)
        assert all(x.origin_us == x.due_us and x.expires_us is None for x in q)

        d = Dispatcher(ws, clock, provider=prov)
        assert d.run_until_idle().released == 0 and len(srv.messages) == 5
        clock.advance(60)
        one = d.run_until_idle()
        assert (one.released, one.sent) == (5, 5) and len(srv.messages) == 10
        clock.set(T0 + dt.timedelta(minutes=30))
        # all 10 are due, but the campaign's rate holds: its bucket (5, full again after
        # the quiet half hour) lets 5 go, the other 5 wait for the next minute's tokens
        rest = d.run_until_idle()
        assert (rest.released, rest.sent, rest.failed, rest.requeued) == (5, 5, 0, 0)
        assert rest.throttled == 5 and "throttled 5" in repr(rest)
        assert "sent 5" in repr(rest) and "<table>" in rest._repr_html_()
        clock.advance(30)  # half a minute: 2.5 tokens
        half = d.run_until_idle()
        assert (half.released, half.throttled) == (2, 3)
        clock.advance(30)
        last = d.run_until_idle()
        assert (last.released, last.sent, last.throttled) == (3, 3, 0)

        # the same occurrence sent again (new run key, by the CLI path's API): nothing new
        again = send(ws, plan(ws, c, LD, run_key="other-key"), provider=prov, clock=clock)
        assert again.sent == 0 and again.queued == 0 and len(_ledger(ws)) == 20
        assert d.run_until_idle().released == 0
    got = Counter(m["key"] for m in srv.messages)
    assert set(got) == keys and set(got.values()) == {1}
    ev = ws.sql("SELECT message_key, ts FROM events WHERE event = 'Notification Sent' ORDER BY ts")
    assert len(ev) == 20 and set(ev["message_key"]) == keys
    ts = ev["ts"].dt.tz_convert("UTC")
    # stamped when handed over: 09:00 (send), 09:01 (first release), 09:30 (the rest, at
    # the campaign's rate: 5, then 2 half a minute later, then 3)
    m = dt.timedelta(minutes=1)
    assert Counter(t.to_pydatetime() for t in ts) == {
        T0: 5, T0 + m: 5, T0 + 30 * m: 5, T0 + 30.5 * m: 2, T0 + 31 * m: 3
    }  # fmt: skip


def test_a_message_past_its_ttl_is_suppressed_as_expired(ws):
    add_users(ws, profiles(10))
    c = campaign("ttl", delivery=Delivery(throttle_per_minute=2, ttl_hours=1))
    clock = SimulatedClock(LD)
    with SmtpServer() as srv:
        prov = SmtpProvider("127.0.0.1", srv.port)
        r = send(ws, plan(ws, c, LD), provider=prov, clock=clock)
        assert (r.sent, r.queued) == (2, 8)
        q = [x for x in _ledger(ws).values() if x.status == "queued"]
        assert all(x.expires_us == x.origin_us + 3600 * 10**6 for x in q)
        clock.advance(2 * 3600)  # past every TTL
        out = Dispatcher(ws, clock, provider=prov).run_until_idle()
        assert out.suppressed == {"expired": 8} and out.sent == 0 and len(srv.messages) == 2
        assert "expired 8" in repr(out)
    led = _ledger(ws)
    assert Counter((x.status, x.reason) for x in led.values()) == {
        ("sent", None): 2, ("suppressed", "expired"): 8
    }  # fmt: skip
    sup = ws.sql(
        "SELECT reason, count(*) AS n, min(ts) AS t FROM events "
        "WHERE event = 'Notification Suppressed' GROUP BY reason"
    )
    assert sup["reason"].tolist() == ["expired"] and int(sup["n"][0]) == 8
    assert sup["t"][0].to_pydatetime() == T0 + dt.timedelta(hours=2)
    assert queue_counts(ws) == {"sent": 2, "suppressed": 8}


def test_dispatcher_arguments_are_checked(ws, capsys):
    with pytest.raises(ValidationError, match="lease_seconds == 0"):
        Dispatcher(ws, lease_seconds=0)
    with pytest.raises(ValidationError, match="batch == 0"):
        Dispatcher(ws, batch=0)
    with pytest.raises(ValidationError, match="clock"):
        Dispatcher(ws, clock="now")  # type: ignore[arg-type]
    assert main(["dispatch", "-w", str(ws.path), "--lease-seconds", "0"]) != 0
    assert "--lease-seconds == 0.0, must be > 0" in capsys.readouterr().err
    assert main(["dispatch", "-w", str(ws.path), "--poll-seconds", "-2", "--once"]) != 0
    assert "--poll-seconds == -2.0, must be > 0" in capsys.readouterr().err
    assert main(["dispatch", "-w", str(ws.path), "--once", "--format", "json"]) == 0
    assert '"released": 0' in capsys.readouterr().out
    assert DispatchResult().idle


def test_dnd_is_checked_again_at_release_held_until_the_window_ends(ws):
    """Throttling pushed messages past 22:00 into the DND window: at release they go
    back to the queue, due at the window's end (08:00), and nothing arrives inside it."""
    add_users(ws, profiles(5))
    c = campaign("dnd", delivery=Delivery(throttle_per_minute=1, dnd=(DND("22:00", "08:00"),)))
    start = dt.datetime(2026, 2, 2, 21, 58, tzinfo=dt.UTC)
    clock = SimulatedClock(start)
    with SmtpServer() as srv:
        prov = SmtpProvider("127.0.0.1", srv.port)
        r = send(ws, plan(ws, c, start), provider=prov, clock=clock)
        assert (r.sent, r.queued) == (1, 4)
        d = Dispatcher(ws, clock, provider=prov)
        clock.advance(60)
        assert d.run_until_idle().sent == 1  # 21:59, outside the window
        clock.set(start + dt.timedelta(minutes=10))  # 22:08: three due, inside the window
        held = d.run_until_idle()
        assert (held.released, held.sent, held.requeued) == (3, 0, 3) and len(srv.messages) == 2
        morning = dt.datetime(2026, 2, 3, 8, tzinfo=dt.UTC)
        q = [x for x in _ledger(ws).values() if x.status == "queued"]
        assert [x.due_us for x in q] == [int(morning.timestamp() * 1e6)] * 3
        clock.set(morning - dt.timedelta(minutes=1))
        assert d.run_until_idle().released == 0 and len(srv.messages) == 2
        clock.set(morning)
        # the three are due at once: the campaign's rate (1 a minute) releases one a minute;
        # the tokens of the messages DND held went back to the bucket
        assert [(r.sent, r.throttled) for r in (d.run_until_idle(),)] == [(1, 2)]
        clock.advance(60)
        assert (d.run_until_idle().sent, len(srv.messages)) == (1, 4)
        clock.advance(59)
        assert d.run_until_idle().sent == 0
        clock.advance(1)
        assert d.run_until_idle().sent == 1
    assert len({m["key"] for m in srv.messages}) == len(srv.messages) == 5


def test_dnd_drop_at_release_suppresses_with_its_reason(ws):
    add_users(ws, profiles(3))
    dnd = DND("22:00", "08:00", action="drop")
    c = campaign("dnd-drop", delivery=Delivery(throttle_per_minute=1, dnd=(dnd,)))
    start = dt.datetime(2026, 2, 2, 21, 59, tzinfo=dt.UTC)
    clock = SimulatedClock(start)
    with SmtpServer() as srv:
        prov = SmtpProvider("127.0.0.1", srv.port)
        assert send(ws, plan(ws, c, start), provider=prov, clock=clock).queued == 2
        clock.advance(600)
        out = Dispatcher(ws, clock, provider=prov).run_until_idle()
        assert out.suppressed == {"dnd_drop": 2} and out.sent == 0 and len(srv.messages) == 1
    sup = ws.sql("SELECT reason FROM events WHERE event = 'Notification Suppressed'")
    assert sup["reason"].tolist() == ["dnd_drop", "dnd_drop"]


def test_ttl_of_a_triggered_message_counts_from_its_trigger_event(ws):
    """Three carts at 08:00, throttled to one a minute (due 08:00, 08:01, 08:02), TTL 1 h:
    the queued ones expire at 09:00 (the event + 1 h), not at their due time + 1 h."""
    import pandas as pd

    from engagelab.campaigns import Schedule

    add_users(ws, profiles(3))
    ev = pd.DataFrame({"user_id": ["u00000", "u00001", "u00002"], "event": ["Added to Cart"] * 3,
                       "ts": pd.to_datetime(["2026-02-02 08:00"] * 3, utc=True)})  # fmt: skip
    ws.append("events", ev)
    c = campaign(
        "cart", schedule=Schedule("triggered", event="Added to Cart"),
        delivery=Delivery(throttle_per_minute=1, ttl_hours=1),
    )  # fmt: skip
    event_us = int(dt.datetime(2026, 2, 2, 8, tzinfo=dt.UTC).timestamp() * 1e6)
    clock = SimulatedClock("2026-02-02T08:00:30Z")
    with SmtpServer() as srv:
        prov = SmtpProvider("127.0.0.1", srv.port)
        r = send(ws, plan(ws, c, "2026-02-02T08:00:30Z"), provider=prov, clock=clock)
        assert (r.sent, r.queued) == (1, 2)
        q = sorted(
            (x for x in _ledger(ws).values() if x.status == "queued"), key=lambda x: x.due_us
        )
        assert [x.due_us - event_us for x in q] == [60 * 10**6, 120 * 10**6]
        assert all(x.origin_us == event_us and x.expires_us == event_us + 3600 * 10**6 for x in q)
        clock.set("2026-02-02T09:00:30Z")  # within 1 h of the due times, past the event's TTL
        out = Dispatcher(ws, clock, provider=prov).run_until_idle()
        assert out.suppressed == {"expired": 2} and out.sent == 0 and len(srv.messages) == 1


def test_run_forever_on_a_simulated_clock_releases_as_time_passes(ws):
    """``run_forever`` sleeps on its clock when idle (a simulated one advances), so it
    walks through the due times and stops when told."""
    import threading

    add_users(ws, profiles(6))
    c = campaign("fe", delivery=Delivery(throttle_per_minute=2))  # due 09:00, 09:01, 09:02
    clock = SimulatedClock(LD)
    with SmtpServer() as srv:
        prov = SmtpProvider("127.0.0.1", srv.port)
        assert send(ws, plan(ws, c, LD), provider=prov, clock=clock).queued == 4
        d = Dispatcher(ws, clock, provider=prov, poll_seconds=30)
        stop = threading.Event()
        t = threading.Thread(target=lambda: setattr(d, "total", d.run_forever(stop)))
        t.start()
        deadline = dt.datetime.now() + dt.timedelta(seconds=60)
        while len(srv.messages) < 6 and dt.datetime.now() < deadline:
            stop.wait(0.05)
        stop.set()
        t.join(timeout=30)
        assert not t.is_alive()
    assert d.total.sent == 4 and len({m["key"] for m in srv.messages}) == 6
    assert clock.now() >= T0 + dt.timedelta(minutes=2)
