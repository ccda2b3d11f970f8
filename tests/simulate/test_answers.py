"""engagelab.simulate.respond: a run is answered once, in full, once its messages are final."""

from __future__ import annotations

from engagelab import Workspace
from engagelab.campaigns import Campaign, Delivery, Dispatcher, Variant
from engagelab.clock import SimulatedClock
from engagelab.simulate import respond
from engagelab.simulate.worlds import simulate_into


def _delivered(ws) -> int:
    n = ws.sql("SELECT count(*) AS n FROM events WHERE event = 'Notification Delivered'")
    return int(n["n"].iloc[0])


def test_a_run_with_queued_messages_is_answered_once_they_are_released(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    simulate_into(ws, n_users=300, days=7, seed=3)
    c = Campaign(
        id="slow", channel="push", variants=(Variant("A", {"title": "Hi", "body": "x"}),),
        delivery=Delivery(throttle_per_minute=20),
    )  # fmt: skip
    clock = SimulatedClock("2026-01-07T09:00:00Z")
    r = ws.send(ws.plan(c, "2026-01-07T09:00:00Z"), "slow-1", clock=clock)
    assert r.sent > 0 and r.queued > 0
    before = _delivered(ws)
    assert respond(ws, "slow-1") == 0  # messages still queued: no answer yet
    assert _delivered(ws) == before
    clock.advance(3600)
    # the plan's throttle spreads the due times; the dispatcher's buckets are not under test
    released = Dispatcher(ws, clock, throttle=False).run_until_idle()
    assert released.sent == r.queued
    n = respond(ws, "slow-1")
    assert n > 0 and _delivered(ws) > before
    after = _delivered(ws)
    assert respond(ws, "slow-1") == 0 and _delivered(ws) == after  # once
    keys = ws.sql(
        "SELECT message_key, count(*) AS n FROM events WHERE event = 'Notification Delivered' "
        "AND campaign_id = 'slow' GROUP BY ALL"
    )
    assert len(keys) > r.sent and keys["n"].max() == 1  # queued ones answered too, each once
    ws.close()
