"""Checks at release: what changed between planning and a queued message's due time.

Through ``ws.plan`` → ``ws.send`` (enqueue) → the dispatcher on a
:class:`~engagelab.clock.SimulatedClock`: an opt-out (profile flag or unsubscribe event)
that arrives after planning suppresses the message with ``opted_out`` and the provider
never sees it; a cut-off passed at release gives ``cut_off``; a cap of one a day with two
campaigns queued for the same users lets only the first released go (caps count what
went, not what was planned). One test runs ``engagelab dispatch`` as a process on the
real outbox path.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from engagelab.campaigns import Delivery, Dispatcher, FrequencyCap
from engagelab.clock import SimulatedClock
from engagelab.delivery import ledger as L
from engagelab.delivery.outbox import outbox_path, read_outbox
from engagelab.delivery.protocol import DeliveryResult
from engagelab.schema import UNSUBSCRIBED
from tests.campaigns.conftest import add_users, campaign, profiles

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 2, 2, 9, tzinfo=dt.UTC)
LD = T0.isoformat()


class Recording:
    """A provider that accepts everything and remembers (campaign, user, key)."""

    name = "recording"

    def __init__(self):
        self.got: list[tuple[str, str, str]] = []

    def open(self):
        pass

    def close(self):
        pass

    def deliver(self, batch):
        self.got += [(m.campaign_id, m.user_id, m.key) for m in batch]
        return [DeliveryResult(m.key, True) for m in batch]


def _ledger(ws):
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.ledger.c.campaign_id, L.ledger.c.user_id, L.ledger.c.key,
                      L.ledger.c.status, L.ledger.c.reason)
        ).all()  # fmt: skip
    return {(r.campaign_id, r.user_id): r for r in rows}


def _suppressed_events(ws):
    return ws.sql(
        "SELECT campaign_id, user_id, message_key, reason, ts FROM events "
        "WHERE event = 'Notification Suppressed' ORDER BY user_id"
    )


def test_an_opt_out_after_planning_is_suppressed_at_release_and_never_reaches_the_provider(ws):
    add_users(ws, profiles(5))
    c = campaign("late-optout", delivery=Delivery(throttle_per_minute=1))  # 09:00 .. 09:04
    clock = SimulatedClock(LD)
    prov = Recording()
    p = ws.plan(c, LD)
    assert (p.frame["decision"] == "send").all()
    r = ws.send(p, provider=prov, clock=clock)
    assert (r.sent, r.queued) == (1, 4) and [u for _c, u, _k in prov.got] == ["u00000"]
    # after planning: u00001 opts out of e-mail in their profile, u00002 unsubscribes
    # (an event for e-mail), u00003 unsubscribes from SMS only, u00004 from everything
    flip = profiles(5).iloc[[1]].assign(optout_email=True)
    add_users(ws, flip)
    t = pd.Timestamp(T0 + dt.timedelta(seconds=30))
    ws.ingest(
        pd.DataFrame({
            "user_id": ["u00002", "u00003", "u00004"], "event": [UNSUBSCRIBED] * 3,
            "ts": [t] * 3, "channel": ["email", "sms", None],
        }),
        quiet=True,
    )  # fmt: skip
    clock.set(T0 + dt.timedelta(minutes=10))
    # the plan's throttle only spreads the due times here: the dispatcher's own token
    # buckets (which would let one a minute go) are not under test
    out = Dispatcher(ws, clock, provider=prov, throttle=False).run_until_idle()
    assert (out.released, out.sent, out.suppressed) == (4, 1, {"opted_out": 3})
    assert "opted_out 3" in repr(out)
    # the provider saw u00000 (sent at once) and u00003 (SMS unsubscribe only), nobody else
    assert sorted(u for _c, u, _k in prov.got) == ["u00000", "u00003"]
    led = _ledger(ws)
    assert {u: (x.status, x.reason) for (_c, u), x in led.items()} == {
        "u00000": ("sent", None), "u00001": ("suppressed", "opted_out"),
        "u00002": ("suppressed", "opted_out"), "u00003": ("sent", None),
        "u00004": ("suppressed", "opted_out"),
    }  # fmt: skip
    ev = _suppressed_events(ws)
    assert ev["user_id"].tolist() == ["u00001", "u00002", "u00004"]
    assert set(ev["reason"]) == {"opted_out"}
    assert ev["message_key"].tolist() == [led[("late-optout", u)].key for u in ev["user_id"]]
    assert {x.to_pydatetime() for x in ev["ts"].dt.tz_convert("UTC")} == {
        T0 + dt.timedelta(minutes=10)
    }
    # a plan made now sees them too: the flag and the unsubscribe events are opted_out
    again = ws.plan(c.replace(id="next"), T0 + dt.timedelta(hours=1)).frame.set_index("user_id")
    assert again["reason"].to_dict() == {
        "u00000": None, "u00001": "opted_out", "u00002": "opted_out", "u00003": None,
        "u00004": "opted_out",
    }  # fmt: skip


def test_a_cut_off_passed_at_release_suppresses_with_cut_off(ws):
    add_users(ws, profiles(4))
    cut = T0 + dt.timedelta(minutes=2)
    c = campaign("cut", delivery=Delivery(throttle_per_minute=1, cut_off=cut))
    clock = SimulatedClock(LD)
    prov = Recording()
    p = ws.plan(c, LD)
    # planned 09:00, 09:01, 09:02; 09:03 is past the cut-off already at planning
    assert Counter(p.frame["reason"].fillna("send")) == {"send": 3, "throttled_to_later": 1}
    assert ws.send(p, provider=prov, clock=clock).queued == 2
    d = Dispatcher(ws, clock, provider=prov)
    clock.set(T0 + dt.timedelta(minutes=1))
    assert d.run_until_idle().sent == 1  # 09:01: before the cut-off
    clock.set(cut + dt.timedelta(seconds=1))  # the dispatcher was late for 09:02
    out = d.run_until_idle()
    assert (out.sent, out.suppressed) == (0, {"cut_off": 1})
    assert len(prov.got) == 2
    ev = _suppressed_events(ws)
    assert ev[["user_id", "reason"]].values.tolist() == [
        ["u00002", "cut_off"],
        ["u00003", "throttled_to_later"],
    ]
    # the two at planning and at release are told apart on the ledger
    got = Counter((x.status, x.reason) for x in _ledger(ws).values())
    assert got == {("sent", None): 2, ("suppressed", "cut_off"): 1}


def test_a_cap_counts_what_went_two_campaigns_queued_for_the_same_users(ws):
    """Cap of one a day on both campaigns; both are queued for 12:00 before either goes,
    so planning sees nothing sent and plans both. At release the first run goes and the
    second is suppressed for every user: only one message per user reaches the provider."""
    add_users(ws, profiles(3))
    cap = (FrequencyCap(max=1, window=1, unit="days"),)
    noon = T0.replace(hour=12)
    clock = SimulatedClock(LD)  # 09:00: both are due later
    prov = Recording()
    for cid in ("first", "second"):
        p = ws.plan(campaign(cid, delivery=Delivery(caps=cap)), noon)
        assert (p.frame["decision"] == "send").all()  # queued messages do not count
        assert ws.send(p, provider=prov, clock=clock).queued == 3
    assert prov.got == []
    clock.set(noon)
    out = Dispatcher(ws, clock, provider=prov).run_until_idle()
    assert (out.released, out.sent, out.suppressed) == (6, 3, {"frequency_cap": 3})
    per_user = Counter(u for _c, u, _k in prov.got)
    assert per_user == {"u00000": 1, "u00001": 1, "u00002": 1}
    went = {c for c, _u, _k in prov.got}
    assert len(went) == 1  # one campaign's run went whole, the other was turned down
    other = ({"first", "second"} - went).pop()
    led = _ledger(ws)
    assert {(c, x.status, x.reason) for (c, _u), x in led.items()} == {
        (went.pop(), "sent", None), (other, "suppressed", "frequency_cap")
    }  # fmt: skip
    ev = _suppressed_events(ws)
    assert set(ev["campaign_id"]) == {other} and set(ev["reason"]) == {"frequency_cap"}


def test_a_failed_message_does_not_use_up_the_cap(ws):
    """Only handed / sent messages count at release: a permanent failure of the first
    campaign leaves the slot to the second."""
    add_users(ws, profiles(2))
    cap = (FrequencyCap(max=1, window=1, unit="days"),)
    noon = T0.replace(hour=12)
    clock = SimulatedClock(LD)

    class FailU0(Recording):
        def deliver(self, batch):
            msgs = list(batch)
            out = super().deliver(msgs)
            return [
                DeliveryResult(m.key, False, permanent=True, error="rejected")
                if m.user_id == "u00000" and m.campaign_id == "a" else r
                for m, r in zip(msgs, out, strict=True)
            ]  # fmt: skip

    prov = FailU0()
    for cid in ("a", "b"):
        ws.send(ws.plan(campaign(cid, delivery=Delivery(caps=cap)), noon), provider=prov,
                clock=clock)  # fmt: skip
    clock.set(noon)
    d = Dispatcher(ws, clock, provider=prov)
    out = d.run_until_idle()
    led = _ledger(ws)
    states = {k: (x.status, x.reason) for k, x in led.items()}
    if states[("a", "u00001")][0] == "sent":  # run a went first
        assert states[("a", "u00000")][0] == "failed"
        assert states[("b", "u00000")] == ("sent", None)
        assert states[("b", "u00001")] == ("suppressed", "frequency_cap")
    else:  # run b went first: a is capped for both users
        assert states[("b", "u00000")] == states[("b", "u00001")] == ("sent", None)
        assert {states[("a", "u00000")], states[("a", "u00001")]} == {
            ("suppressed", "frequency_cap")
        }
    assert out.sent == 2 and sum(out.suppressed.values()) + out.failed == 2


def test_dispatch_process_on_the_outbox_path_suppresses_a_late_opt_out(ws):
    """``engagelab dispatch --until-idle`` as a process on the system clock, delivering to
    the run's outbox file: the opted-out user's message never gets there."""
    add_users(ws, profiles(3))
    c = campaign("proc")
    p = ws.plan(c, LD, run_key="proc-1")
    # sent an hour before the due time: all three wait in the queue (due in the past now)
    assert ws.send(p, clock=SimulatedClock(T0 - dt.timedelta(hours=1))).queued == 3
    add_users(ws, profiles(3).iloc[[2]].assign(optout_email=True))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "engagelab.cli", "dispatch", "-w", str(ws.path), "--until-idle",
         "--format", "json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"opted_out": 1' in proc.stdout and '"sent": 2' in proc.stdout
    users = sorted(x["user_id"] for x in read_outbox(outbox_path(ws, "proc-1")))
    assert users == ["u00000", "u00001"]
    ev = _suppressed_events(ws)
    assert ev["user_id"].tolist() == ["u00002"] and ev["reason"].tolist() == ["opted_out"]
