"""Client inbox for pulled channels: TTL, display rules, impressions (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from engagelab.channels import AppInboxContent, InAppContent, WebPopupContent, preview
from engagelab.delivery.inbox import InboxProvider, dismiss, inbox
from engagelab.delivery.protocol import OutgoingMessage
from engagelab.delivery.registry import provider_for
from engagelab.errors import ValidationError

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def msg(key, user, content, *, at=T0, ttl=None):
    payload = preview(content, {"user_id": user, "name": "Ada"})
    return OutgoingMessage(
        key, user, "camp", "A", content.channel, user, payload, at, ("Promo",), ttl
    )


def test_ttl_max_impressions_and_idempotent_delivery(any_ws):
    ws = any_ws
    once = InAppContent(title="Hi {{ profile.name }}", body="b", ttl_seconds=2 * 3600)
    thrice = InAppContent(title="Thrice", body="b", display={"max_impressions": 3})
    later = AppInboxContent(title="Later", body="b")  # unlimited impressions, 30 days
    p = provider_for("in_app", ws)
    assert isinstance(p, InboxProvider)
    batch = [msg("k1", "u1", once), msg("k2", "u1", thrice), msg("k3", "u1", later, at=T0 + HOUR)]
    assert all(r.ok for r in p.deliver(batch))
    assert all(r.ok for r in p.deliver(batch))  # redelivery of in-doubt keys: no duplicates
    assert sorted(m.key for m in inbox(ws, "u1", now=T0, record=False)) == ["k1", "k2"]
    first = inbox(ws, "u1", now=T0 + HOUR)
    assert [m.key for m in first] == ["k3", "k1", "k2"]  # newest first, k3 now available
    assert first[1].payload["title"] == "Hi Ada"
    assert [m.impressions for m in first] == [1, 1, 1]
    second = inbox(ws, "u1", now=T0 + HOUR)
    assert [m.key for m in second] == ["k3", "k2"]  # k1 had max_impressions 1
    third = inbox(ws, "u1", now=T0 + 3 * HOUR)
    assert [(m.key, m.impressions) for m in third] == [("k3", 3), ("k2", 3)]
    assert [m.key for m in inbox(ws, "u1", now=T0 + 3 * HOUR)] == ["k3"]  # k2 used up
    # k3 expires after 30 days
    assert [m.key for m in inbox(ws, "u1", now=T0 + dt.timedelta(days=30, minutes=59))] == ["k3"]
    assert len(inbox(ws, "u1", now=T0 + dt.timedelta(days=30, hours=1, seconds=1))) == 0
    assert len(inbox(ws, "nobody", now=T0)) == 0


def test_message_ttl_overrides_content_ttl_and_dismiss(ws):
    c = AppInboxContent(title="t", body="b")
    InboxProvider(ws, "app_inbox").deliver([msg("k", "u", c, ttl=60)])
    assert len(inbox(ws, "u", now=T0 + dt.timedelta(seconds=59), record=False)) == 1
    assert len(inbox(ws, "u", now=T0 + dt.timedelta(seconds=60), record=False)) == 0
    InboxProvider(ws, "app_inbox").deliver([msg("k2", "u", c)])
    assert dismiss(ws, "u", "k2", now=T0) and not dismiss(ws, "other", "k2")
    assert len(inbox(ws, "u", now=T0 + dt.timedelta(minutes=2))) == 0  # k expired, k2 dismissed


def test_trigger_event_and_pages(ws):
    on_event = InAppContent(title="t", body="b", display={"trigger_event": "Cart Viewed"})
    pages = WebPopupContent(title="p", body="b", display={"pages": ["https://shop.example/cart*"]})
    InboxProvider(ws, "in_app").deliver([msg("ev", "u", on_event), msg("pg", "u", pages)])
    assert len(inbox(ws, "u", now=T0, record=False)) == 0
    assert [m.key for m in inbox(ws, "u", now=T0, event="App Launched", record=False)] == []
    assert [m.key for m in inbox(ws, "u", now=T0, event="Cart Viewed", record=False)] == ["ev"]
    got = inbox(ws, "u", now=T0, page="https://shop.example/cart?x=1", record=False)
    assert [m.key for m in got] == ["pg"]
    assert len(inbox(ws, "u", now=T0, page="https://shop.example/home", record=False)) == 0
    assert [m.key for m in inbox(ws, "u", now=T0, event="Cart Viewed", channel="web_popup",
                                 record=False)] == []  # fmt: skip
    df = got.to_pandas()
    assert df["payload.title"].tolist() == ["p"] and "Inbox of 'u'" in repr(got)


def test_concurrent_fetches_never_exceed_max_impressions(tmp_path):
    from engagelab import Workspace

    ws = Workspace.create(tmp_path / "w")
    c = InAppContent(title="t", body="b", display={"max_impressions": 2})
    InboxProvider(ws, "in_app").deliver([msg("k", "u", c)])
    seen = []

    def fetch():
        w = Workspace.open(ws.path)
        seen.extend(m.key for m in inbox(w, "u", now=T0))
        w.close()

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == ["k", "k"]
    ws.close()


def test_display_delay_is_honoured(ws):
    delayed = InAppContent(title="Later", body="b", display={"delay_seconds": 3600})
    now = InAppContent(title="Now", body="b")
    on_event = InAppContent(
        title="After cart", body="b", display={"trigger_event": "Cart Viewed", "delay_seconds": 30}
    )
    InboxProvider(ws, "in_app").deliver(
        [msg("late", "u", delayed), msg("now", "u", now), msg("ev", "u", on_event)]
    )
    sec = dt.timedelta(seconds=1)
    assert [m.key for m in inbox(ws, "u", now=T0 + 5 * sec, record=False)] == ["now"]
    assert [m.key for m in inbox(ws, "u", now=T0 + HOUR - sec, record=False)] == ["now"]
    assert sorted(m.key for m in inbox(ws, "u", now=T0 + HOUR, record=False)) == ["late", "now"]
    # a trigger message waits its delay after the reported event, not after the send
    later = T0 + 2 * HOUR
    assert "ev" not in {m.key for m in inbox(ws, "u", now=later, event="Cart Viewed")}
    seen = inbox(ws, "u", now=later + 29 * sec, event="Cart Viewed", event_at=later)
    assert "ev" not in {m.key for m in seen}
    seen = inbox(ws, "u", now=later + 30 * sec, event="Cart Viewed", event_at=later)
    assert "ev" in {m.key for m in seen}
    with pytest.raises(ValidationError, match=r"^event_at == .*must not be after now"):
        inbox(ws, "u", now=later, event="Cart Viewed", event_at=later + sec)
    with pytest.raises(ValidationError, match=r"^event_at == .*needs the event"):
        inbox(ws, "u", now=later, event_at=later)


def test_exit_intent_pop_ups_show_only_on_the_exit_intent_signal(ws):
    from engagelab.channels import WebExitIntentContent

    leave = WebExitIntentContent(title="Wait!", body="10% off", display={"max_impressions": 5})
    popup = WebPopupContent(title="Hello", body="b", display={"max_impressions": 5})
    InboxProvider(ws, "web_exit_intent").deliver([msg("exit", "u", leave)])
    InboxProvider(ws, "web_popup").deliver([msg("pop", "u", popup)])
    assert [m.key for m in inbox(ws, "u", now=T0)] == ["pop"]
    assert [m.key for m in inbox(ws, "u", now=T0, page="https://shop.example/")] == ["pop"]
    got = inbox(ws, "u", now=T0, exit_intent=True)
    assert sorted(m.key for m in got) == ["exit", "pop"]
    assert {m.key: m.impressions for m in got}["exit"] == 1  # counted only when shown
    only = inbox(ws, "u", now=T0, exit_intent=True, channel="web_exit_intent")
    assert [(m.key, m.impressions) for m in only] == [("exit", 2)]
    for bad in ("yes", 1, None):
        with pytest.raises(ValidationError, match=r"^exit_intent == .*must be True or False"):
            inbox(ws, "u", now=T0, exit_intent=bad)
