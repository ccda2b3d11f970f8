"""Workspace-wide frequency caps: the ``frequency_caps:`` section of ``engagelab.yaml``.

Every campaign respects them at plan time (reason ``frequency_cap``) and the dispatcher
checks them again at release against the messages that went, unless the campaign sets
``Delivery(ignore_workspace_caps=True)`` (or ``ignore_caps``). Rolling windows count any
channel or one channel; calendar windows are the user's local day / week. Bad entries are
refused with the field and the allowed values.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
import yaml

from engagelab import Workspace
from engagelab.campaigns import Campaign, Delivery, Dispatcher, FrequencyCap, Variant
from engagelab.campaigns.options import workspace_caps
from engagelab.clock import SimulatedClock
from engagelab.delivery.protocol import DeliveryResult
from engagelab.errors import SpecError, ValidationError
from tests.campaigns.conftest import PUSH, add_users, campaign, profiles

T0 = dt.datetime(2026, 2, 2, 9, tzinfo=dt.UTC)  # a Monday


class Recording:
    """A provider that accepts everything and remembers (campaign, user)."""

    name = "recording"

    def __init__(self):
        self.got: list[tuple[str, str]] = []

    def open(self):
        pass

    def close(self):
        pass

    def deliver(self, batch):
        msgs = list(batch)
        self.got += [(m.campaign_id, m.user_id) for m in msgs]
        return [DeliveryResult(m.key, True) for m in msgs]


@pytest.fixture
def capped(ws):
    """``capped(caps)``: the workspace reopened with ``frequency_caps: caps`` in its
    ``engagelab.yaml`` (the way an operator configures it)."""
    opened = []

    def make(caps):
        path = ws.path / "engagelab.yaml"
        cfg = yaml.safe_load(path.read_text())
        cfg["frequency_caps"] = caps
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        w = Workspace.open(ws.path)
        opened.append(w)
        return w

    yield make
    for w in opened:
        w.close()


def _push(id: str, **kw) -> Campaign:
    return campaign(id, channel="push", variants=(Variant("A", PUSH),), **kw)


def _decisions(p) -> dict[str, str]:
    f = p.frame
    return dict(zip(f["user_id"], f["reason"].fillna("send"), strict=True))


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        ([{"max": -1}], "frequency_caps[0].max == -1, must be an integer >= 1"),
        ([{"max": 2, "window": 0}], "frequency_caps[0].window == 0, must be an integer >= 1"),
        (
            [{"max": 1}, {"max": 1, "channel": "fax"}],
            "frequency_caps[1].channel == 'fax', must be '*' (all channels) or one of 'push'",
        ),
        (
            [{"max": 1, "unit": "fortnights"}],
            "frequency_caps[0].unit == 'fortnights', must be one of 'minutes', 'hours', "
            "'days', 'weeks'",
        ),
        (
            [{"max": 1, "unit": "hours", "kind": "calendar"}],
            "frequency_caps[0].unit == 'hours', must be one of 'days', 'weeks', 'months'",
        ),
        (
            [{"max": 1, "kind": "sliding"}],
            "frequency_caps[0].kind == 'sliding', must be one of 'rolling', 'calendar'",
        ),
        (
            [{"max": 1, "per": 3}],
            "frequency_caps[0].per == 3, is not a cap field: max, window, unit, kind, channel",
        ),
        ([3], "frequency_caps[0] == 3, must be a mapping of max, window, unit, kind, channel"),
        ({"max": 1}, "frequency_caps == 'dict', must be a list of caps"),
    ],
)
def test_bad_workspace_caps_are_refused_naming_the_field_and_what_is_allowed(caps, message):
    with pytest.raises(ValidationError) as exc:
        workspace_caps({"frequency_caps": caps})
    assert str(exc.value).startswith(message)
    assert exc.value.field == message.split(" ==")[0]


def test_bad_caps_in_engagelab_yaml_fail_the_plan_before_anything_is_sent(capped):
    ws = capped([{"max": 3, "window": 0, "unit": "days"}])
    add_users(ws, profiles(3))
    with pytest.raises(ValidationError, match=r"frequency_caps\[0\]\.window == 0"):
        ws.plan(campaign("c"), T0)
    assert workspace_caps({}) == () and workspace_caps({"frequency_caps": None}) == ()


def test_ignore_workspace_caps_is_a_validated_delivery_option():
    d = Delivery(ignore_workspace_caps=True)
    assert Delivery.from_dict(d.to_dict()) == d and d.to_dict()["ignore_workspace_caps"]
    with pytest.raises(SpecError, match="delivery.ignore_workspace_caps == 'yes', must be true"):
        Delivery(ignore_workspace_caps="yes")


def test_a_rolling_cap_across_channels_holds_at_plan_time(capped):
    """3 per 7 days on any channel: messages on Mon (e-mail), Tue (push), Wed (e-mail)
    fill it; Thursday's is capped, unless the campaign opts out of workspace caps; the
    next Monday the first message left the window and one goes again."""
    ws = capped([{"max": 3, "window": 7, "unit": "days"}])
    add_users(ws, profiles(2))
    prov = Recording()
    days = [T0 + dt.timedelta(days=i) for i in range(8)]
    for i, c in enumerate((campaign("mon"), _push("tue"), campaign("wed"))):
        p = ws.plan(c, days[i])
        assert set(_decisions(p).values()) == {"send"}
        assert ws.send(p, provider=prov, clock=SimulatedClock(days[i])).sent == 2
    thu = ws.plan(_push("thu"), days[3])
    assert set(_decisions(thu).values()) == {"frequency_cap"}
    exempt = ws.plan(_push("thu-exempt", delivery=Delivery(ignore_workspace_caps=True)), days[3])
    assert set(_decisions(exempt).values()) == {"send"}
    # Monday 09:00 a week on: Monday's message is exactly 7 days old, out of the window
    nxt = ws.plan(campaign("next-mon"), days[7])
    assert set(_decisions(nxt).values()) == {"send"}


def test_a_per_channel_calendar_cap_counts_only_its_channel(capped):
    ws = capped([{"max": 1, "unit": "days", "kind": "calendar", "channel": "push"}])
    add_users(ws, profiles(2))
    prov = Recording()
    t = [T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2), T0 + dt.timedelta(days=1)]
    for c, at, want in (
        (_push("p1"), t[0], "send"),
        (campaign("e1"), t[1], "send"),  # e-mail: not counted by a push cap
        (_push("p2"), t[2], "frequency_cap"),  # the day's push went already
        (_push("p3"), t[3], "send"),  # a new local day
    ):
        p = ws.plan(c, at)
        assert set(_decisions(p).values()) == {want}, c.id
        ws.send(p, provider=prov, clock=SimulatedClock(at))
    assert Counter(c for c, _u in prov.got) == {"p1": 2, "e1": 2, "p3": 2}


def test_a_calendar_cap_is_counted_in_the_user_time_zone_around_local_midnight(capped):
    """One a day, any channel. Campaign A is due 14:30 UTC (23:30 in Tokyo), B 15:30 UTC
    (00:30 the next day in Tokyo); both are queued before A goes, so planning sees
    nothing. At B's release the UTC user already had today's message; the Tokyo user is
    on a new local day and gets B."""
    ws = capped([{"max": 1, "unit": "days", "kind": "calendar"}])
    add_users(ws, profiles(2, tz=["Asia/Tokyo", "UTC"]))  # u00000 Tokyo, u00001 UTC
    a_at = T0.replace(hour=14, minute=30)
    b_at = T0.replace(hour=15, minute=30)
    clock = SimulatedClock(T0.replace(hour=14))
    prov = Recording()
    for c, at in ((campaign("a"), a_at), (campaign("b"), b_at)):
        p = ws.plan(c, at)
        assert set(_decisions(p).values()) == {"send"}
        assert ws.send(p, provider=prov, clock=clock).queued == 2
    d = Dispatcher(ws, clock, provider=prov)
    clock.set(a_at)
    assert d.run_until_idle().sent == 2
    # planning after A went uses local days too: at 23:50 in Tokyo both had today's
    # message; at 00:30 in Tokyo (15:30 UTC) only the UTC user has
    before = ws.plan(campaign("c"), a_at + dt.timedelta(minutes=20))
    assert _decisions(before) == {"u00000": "frequency_cap", "u00001": "frequency_cap"}
    after = ws.plan(campaign("c"), b_at)
    assert _decisions(after) == {"u00000": "send", "u00001": "frequency_cap"}
    clock.set(b_at)
    out = d.run_until_idle()
    assert (out.sent, out.suppressed) == (1, {"frequency_cap": 1})
    assert sorted(prov.got) == [("a", "u00000"), ("a", "u00001"), ("b", "u00000")]
    sup = ws.sql("SELECT user_id, reason FROM events WHERE event = 'Notification Suppressed'")
    assert sup.values.tolist() == [["u00001", "frequency_cap"]]


def test_a_campaign_opting_out_of_workspace_caps_goes_at_release(capped):
    """Cap of one a day in the workspace; four campaigns queued at 09:00 for 11:00, 12:00,
    13:00 and 14:00. A goes; B ignores the workspace caps and goes; C ignores them too
    but its own cap of one a day counts A and B; D respects the workspace cap."""
    ws = capped([{"max": 1, "window": 1, "unit": "days"}])
    add_users(ws, profiles(2))
    own = (FrequencyCap(max=1, window=1, unit="days"),)
    specs = [
        ("a", Delivery(), 11),
        ("b", Delivery(ignore_workspace_caps=True), 12),
        ("c", Delivery(ignore_workspace_caps=True, caps=own), 13),
        ("d", Delivery(), 14),
        ("e", Delivery(ignore_caps=True), 15),  # exempt from every cap
    ]
    clock = SimulatedClock(T0)
    prov = Recording()
    for cid, opts, hour in specs:
        p = ws.plan(campaign(cid, delivery=opts), T0.replace(hour=hour))
        assert set(_decisions(p).values()) == {"send"}  # nothing went yet
        assert ws.send(p, provider=prov, clock=clock).queued == 2
    d = Dispatcher(ws, clock, provider=prov)
    got = {}
    for cid, _opts, hour in specs:
        clock.set(T0.replace(hour=hour))
        r = d.run_until_idle()
        got[cid] = (r.sent, r.suppressed)
    assert got == {
        "a": (2, {}), "b": (2, {}), "c": (0, {"frequency_cap": 2}),
        "d": (0, {"frequency_cap": 2}), "e": (2, {}),
    }  # fmt: skip
    assert Counter(c for c, _u in prov.got) == {"a": 2, "b": 2, "e": 2}
