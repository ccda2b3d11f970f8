"""Triggered and inaction campaigns in near real time (the dispatcher's trigger feed),
on a :class:`~engagelab.clock.SimulatedClock` against a real SMTP server on loopback:
an event that lands is planned, enqueued and released in the next round; a trigger older
than its TTL is never sent; a restart and a second dispatcher enqueue nothing twice."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pandas as pd
import pytest
import sqlalchemy as sa

from engagelab.campaigns import Delivery, Dispatcher, Schedule
from engagelab.campaigns import live as LV
from engagelab.campaigns.plan import message_keys
from engagelab.campaigns.saved import save_campaign
from engagelab.clock import SimulatedClock
from engagelab.delivery import ledger as L
from engagelab.delivery.smtp import SmtpProvider
from tests.delivery.servers import SmtpServer

from .conftest import add_users, campaign, profiles

T0 = dt.datetime(2026, 2, 2, 8, tzinfo=dt.UTC)
US = 1_000_000


def _us(t: dt.datetime) -> int:
    return int(t.timestamp() * US)


def _cart(ws, users, at, event="Added to Cart"):
    ws.append("events", pd.DataFrame({
        "user_id": list(users), "event": [event] * len(users),
        "ts": pd.to_datetime([at] * len(users), utc=True),
    }))  # fmt: skip


def _ledger(ws) -> dict:
    with ws.state.read() as conn:
        return {
            r.key: r
            for r in conn.execute(
                sa.select(L.ledger.c.key, L.ledger.c.user_id, L.ledger.c.status,
                          L.ledger.c.reason, L.ledger.c.origin_us, L.ledger.c.expires_us,
                          L.ledger.c.due_us)
            )
        }  # fmt: skip


@pytest.fixture
def cart_ws(ws):
    add_users(ws, profiles(6))
    c = campaign("cart", schedule=Schedule("triggered", event="Added to Cart"),
                 delivery=Delivery(ttl_hours=1))  # fmt: skip
    _cart(ws, ["u00005"], T0 - dt.timedelta(minutes=5))  # before activation: not planned
    save_campaign(ws, c, "active")
    return ws, c


def test_an_event_that_lands_is_enqueued_in_the_next_round_and_released(cart_ws):
    ws, c = cart_ws
    clock = SimulatedClock(T0)
    with SmtpServer() as srv:
        d = Dispatcher(ws, clock, provider=SmtpProvider("127.0.0.1", srv.port))
        first = d.run_once()
        assert (first.fed, first.released) == (0, 0) and srv.messages == []
        _cart(ws, ["u00000", "u00001"], T0 - dt.timedelta(seconds=2))
        clock.advance(1)
        r = d.run_once()
        assert (r.fed, r.released, r.sent) == (2, 2, 2)
        assert len(srv.messages) == 2
    led = _ledger(ws)
    event_us = _us(T0 - dt.timedelta(seconds=2))
    assert {x.user_id for x in led.values()} == {"u00000", "u00001"}
    assert all(x.status == "sent" and x.origin_us == event_us for x in led.values())
    assert all(x.expires_us == event_us + 3600 * US for x in led.values())
    # the occurrence is the event's time: the key is the one a daily run would give
    want = message_keys("cart", str(event_us), pd.Series(["u00000", "u00001"]), "main")
    assert set(led) == set(want)
    # 'Notification Sent' carries the hand-over time (the clock's), not the event time
    ev = ws.sql("SELECT ts FROM events WHERE event = 'Notification Sent'")
    assert len(ev) == 2 and set(ev["ts"]) == {pd.Timestamp(T0 + dt.timedelta(seconds=1))}
    assert LV.watermark(ws, "cart") is not None


def test_a_trigger_older_than_its_ttl_is_never_sent(cart_ws):
    ws, _c = cart_ws
    clock = SimulatedClock(T0)
    with SmtpServer() as srv:
        d = Dispatcher(ws, clock, provider=SmtpProvider("127.0.0.1", srv.port))
        _cart(ws, ["u00002"], T0 - dt.timedelta(hours=1, seconds=1))  # landed late: past TTL
        _cart(ws, ["u00003"], T0 - dt.timedelta(minutes=59))  # within it
        r = d.run_until_idle()
        assert r.fed == 2 and r.sent == 1 and r.suppressed == {"expired": 1}
        assert len(srv.messages) == 1
    led = {x.user_id: x for x in _ledger(ws).values()}
    assert (led["u00002"].status, led["u00002"].reason) == ("suppressed", "expired")
    assert led["u00003"].status == "sent"
    sup = ws.sql("SELECT user_id, reason FROM events WHERE event = 'Notification Suppressed'")
    assert sup.to_dict("records") == [{"user_id": "u00002", "reason": "expired"}]


def test_a_restart_enqueues_nothing_again(cart_ws):
    ws, _c = cart_ws
    clock = SimulatedClock(T0)
    with SmtpServer() as srv:
        prov = SmtpProvider("127.0.0.1", srv.port)
        _cart(ws, ["u00000", "u00001", "u00002"], T0)
        assert Dispatcher(ws, clock, provider=prov).run_until_idle().sent == 3
        mark = LV.watermark(ws, "cart")
        again = Dispatcher(ws, clock, provider=prov).run_until_idle()  # a new process
        assert (again.fed, again.released) == (0, 0) and len(srv.messages) == 3
        assert LV.watermark(ws, "cart") == mark
        # a watermark lost (or a feed killed before its commit) re-plans the same keys:
        # the ledger enqueues nothing twice
        with ws.state.write() as conn:
            conn.execute(L.settings.delete().where(L.settings.c.key == "live_watermark:cart"))
            conn.execute(sa.update(L.campaigns_table).values(updated_at=T0 - dt.timedelta(days=9)))
        replay = Dispatcher(ws, clock, provider=prov).run_until_idle()
        # only the cart from before the (moved) activation is new
        assert (replay.fed, replay.sent) == (1, 1) and len(srv.messages) == 4
        got = Counter(m["key"] for m in srv.messages)
    assert len(got) == 4 and set(got.values()) == {1}
    assert len(_ledger(ws)) == 4


def test_two_feeders_sharing_the_database_enqueue_once(cart_ws, monkeypatch):
    """Feeder A plans while feeder B plans and commits the same batches: A's commit finds
    the watermark moved and enqueues nothing."""
    ws, _c = cart_ws
    a, b = LV.LiveTriggers(), LV.LiveTriggers()
    _cart(ws, ["u00000", "u00001"], T0)
    inner = LV.LiveTriggers._plans
    got: list[int] = []

    def racing(self, *args, **kw):
        if self is a and not got:
            got.append(b.feed(ws, _us(T0)))  # B wins the race
        return inner(self, *args, **kw)

    monkeypatch.setattr(LV.LiveTriggers, "_plans", racing)
    assert a.feed(ws, _us(T0)) == 0 and got == [2]
    assert len(_ledger(ws)) == 2
    with ws.state.read() as conn:
        runs = conn.execute(sa.select(L.runs.c.run_key)).scalars().all()
    assert len(runs) == 1  # A's plan left no run behind


def test_two_dispatchers_at_once_send_each_trigger_once(cart_ws):
    ws, _c = cart_ws
    clock = SimulatedClock(T0)
    with SmtpServer() as srv:
        ds = [Dispatcher(ws, clock, provider=SmtpProvider("127.0.0.1", srv.port), batch=3)
              for _ in range(2)]  # fmt: skip
        stop = threading.Event()
        threads = [threading.Thread(target=lambda d=d: [d.run_once() for _ in range(40)
                                                        if not stop.is_set()]) for d in ds]  # fmt: skip
        for t in threads:
            t.start()
        users = [f"u{i:05d}" for i in range(5)]
        for i in range(4):
            _cart(ws, users, T0 - dt.timedelta(seconds=10 - i))
        for t in threads:
            t.join(timeout=120)
        for d in ds:
            d.run_until_idle()
        got = Counter(m["key"] for m in srv.messages)
    assert len(got) == 20 and set(got.values()) == {1}
    assert Counter(x.status for x in _ledger(ws).values()) == {"sent": 20}


def test_several_events_of_a_user_in_one_round_are_one_message_each(cart_ws):
    ws, _c = cart_ws
    clock = SimulatedClock(T0)
    _cart(ws, ["u00000"], T0 - dt.timedelta(seconds=30))
    _cart(ws, ["u00000"], T0 - dt.timedelta(seconds=20))
    _cart(ws, ["u00000"], T0 - dt.timedelta(seconds=20))  # the same instant: one occurrence
    with SmtpServer() as srv:
        r = Dispatcher(ws, clock, provider=SmtpProvider("127.0.0.1", srv.port)).run_until_idle()
        assert r.sent == 2 and len({m["key"] for m in srv.messages}) == 2


def test_paused_campaigns_and_no_triggers_are_not_fed(cart_ws):
    ws, c = cart_ws
    clock = SimulatedClock(T0)
    _cart(ws, ["u00000"], T0)
    assert Dispatcher(ws, clock, triggers=False).run_until_idle().fed == 0
    save_campaign(ws, c, "paused")
    assert Dispatcher(ws, clock).run_until_idle().fed == 0
    assert _ledger(ws) == {}
    # active again: what landed during the pause is not sent late, what lands now is
    _cart(ws, ["u00001"], T0)
    save_campaign(ws, c, "active")
    d = Dispatcher(ws, clock)
    assert d.run_until_idle().fed == 0
    _cart(ws, ["u00002"], T0)
    assert d.run_until_idle().fed == 1
    assert {x.user_id for x in _ledger(ws).values()} == {"u00002"}


def test_inaction_goes_at_the_end_of_the_window_if_the_inaction_still_holds(ws):
    add_users(ws, profiles(4))
    c = campaign(
        "abandon", delivery=Delivery(ttl_hours=2),
        schedule=Schedule("inaction", event="Added to Cart", not_event="Charged", within_hours=1),
    )  # fmt: skip
    save_campaign(ws, c, "active")
    clock = SimulatedClock(T0)
    with SmtpServer() as srv:
        d = Dispatcher(ws, clock, provider=SmtpProvider("127.0.0.1", srv.port))
        _cart(ws, ["u00000", "u00001", "u00002"], T0)
        r = d.run_until_idle()
        assert (r.fed, r.released) == (3, 0)  # due at the end of the window
        led = _ledger(ws)
        assert {x.due_us for x in led.values()} == {_us(T0 + dt.timedelta(hours=1))}
        clock.advance(1800)
        _cart(ws, ["u00001"], T0 + dt.timedelta(minutes=30), event="Charged")  # broke it
        _cart(ws, ["u00002"], T0 + dt.timedelta(minutes=40))  # a later cart: its own reminder
        assert d.run_until_idle().released == 0
        clock.set(T0 + dt.timedelta(hours=1))
        r = d.run_until_idle()
        assert r.sent == 1 and len(srv.messages) == 1
        clock.set(T0 + dt.timedelta(hours=1, minutes=40))
        assert d.run_until_idle().sent == 1
    by = Counter((x.user_id, x.status, x.reason) for x in _ledger(ws).values())
    assert by == {
        ("u00000", "sent", None): 1,
        ("u00001", "suppressed", "inaction_broken"): 1,
        ("u00002", "suppressed", "superseded"): 1,
        ("u00002", "sent", None): 1,
    }
    sup = ws.sql("SELECT user_id, reason FROM events WHERE event = 'Notification Suppressed' "
                 "ORDER BY user_id")  # fmt: skip
    assert sup.to_dict("records") == [
        {"user_id": "u00001", "reason": "inaction_broken"},
        {"user_id": "u00002", "reason": "superseded"},
    ]


def test_a_campaign_that_cannot_be_planned_does_not_stop_the_others(cart_ws):
    ws, _c = cart_ws
    bad = campaign("bad", schedule=Schedule("triggered", event="Added to Cart",
                                            filters={"no_such_column": 1}))  # fmt: skip
    save_campaign(ws, bad, "active")
    clock = SimulatedClock(T0)
    with SmtpServer() as srv:
        d = Dispatcher(ws, clock, provider=SmtpProvider("127.0.0.1", srv.port))
        _cart(ws, ["u00000"], T0)
        assert d.run_until_idle().sent == 1
    (feeder,) = d.feeders
    assert "no_such_column" in feeder.errors["bad"] and LV.watermark(ws, "bad") is None


def test_with_a_minimum_gap_a_users_events_of_one_round_are_checked_against_each_other(ws):
    add_users(ws, profiles(2))
    c = campaign("gap", schedule=Schedule("triggered", event="Added to Cart"),
                 delivery=Delivery(min_gap_hours=1))  # fmt: skip
    save_campaign(ws, c, "active")
    _cart(ws, ["u00000"], T0 - dt.timedelta(seconds=30))
    _cart(ws, ["u00000", "u00001"], T0 - dt.timedelta(seconds=20))
    with SmtpServer() as srv:
        prov = SmtpProvider("127.0.0.1", srv.port)
        r = Dispatcher(ws, SimulatedClock(T0), provider=prov).run_until_idle()
        assert r.sent == 2 and len(srv.messages) == 2
    by = Counter((x.user_id, x.status, x.reason) for x in _ledger(ws).values())
    assert by == {("u00000", "sent", None): 1, ("u00000", "suppressed", "min_gap"): 1,
                  ("u00001", "sent", None): 1}  # fmt: skip
    sup = ws.sql("SELECT user_id, reason FROM events WHERE event = 'Notification Suppressed'")
    assert sup.to_dict("records") == [{"user_id": "u00000", "reason": "min_gap"}]
