"""Time zones, DND and caps on hand-made edge cases (DST days, users east and west of UTC,
calendar vs rolling windows), checked against hand-worked answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from engagelab.campaigns import DND, Delivery, FrequencyCap, Schedule, plan, send
from engagelab.campaigns.timing import apply_dnd, cap_conflicts, throttle, to_utc
from tests.campaigns.conftest import add_users, campaign, profiles

UTC = "UTC"


def ts(*xs: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(xs), utc=True))


def test_local_wall_clock_on_dst_days():
    # Berlin springs forward 2026-03-29 02:00 -> 03:00: 02:30 does not exist -> 03:00 CEST
    # and falls back 2026-10-25 03:00 -> 02:00: 02:30 is ambiguous -> first (CEST, UTC+2)
    local = pd.Series(pd.to_datetime(["2026-03-29 02:30", "2026-10-25 02:30", "2026-03-29 09:00"]))
    got = to_utc(local, pd.Series(["Europe/Berlin"] * 3)).astype(str).tolist()
    assert got == [
        "2026-03-29 01:00:00+00:00",
        "2026-10-25 00:30:00+00:00",
        "2026-03-29 07:00:00+00:00",
    ]
    # New York springs forward two weeks earlier (2026-03-08)
    ny = to_utc(
        pd.Series(pd.to_datetime(["2026-03-07 09:00", "2026-03-08 09:00"])),
        pd.Series(["America/New_York"] * 2),
    )
    assert ny.astype(str).tolist() == ["2026-03-07 14:00:00+00:00", "2026-03-08 13:00:00+00:00"]


def test_user_time_zone_delivery_east_and_west(ws):
    tzs = ["Asia/Tokyo", "Europe/Berlin", "America/Los_Angeles", "Pacific/Kiritimati", None]
    add_users(ws, profiles(5, tz=tzs))
    sched = Schedule(
        "one_time", at="2026-03-29T09:00:00Z"
    )  # 09:00 local wall clock (campaign tz UTC)
    drop = campaign(schedule=sched, delivery=Delivery(user_timezone=True))
    f = plan(ws, drop, "2026-03-29T06:00:00Z").to_pandas().set_index("timezone")
    # Tokyo 09:00 = 00:00Z (passed at 06:00Z), Kiritimati (+14) 09:00 = previous day 19:00Z: passed
    assert (
        f.loc["Asia/Tokyo", "reason"] == "tz_passed"
        and f.loc["Pacific/Kiritimati", "reason"] == "tz_passed"
    )
    # Berlin on its DST day: 09:00 CEST = 07:00Z; Los Angeles (PDT) 09:00 = 16:00Z; unknown zone -> UTC
    assert str(f.loc["Europe/Berlin", "send_at"]) == "2026-03-29 07:00:00+00:00"
    assert str(f.loc["America/Los_Angeles", "send_at"]) == "2026-03-29 16:00:00+00:00"
    assert f.loc["UTC", "decision"] == "send"  # no zone: default_timezone
    nxt = drop.replace(delivery=Delivery(user_timezone=True, if_passed="next_day"))
    g = plan(ws, nxt, "2026-03-29T06:00:00Z").to_pandas().set_index("timezone")
    assert str(g.loc["Asia/Tokyo", "send_at"]) == "2026-03-30 00:00:00+00:00"
    assert str(g.loc["Asia/Tokyo", "send_at_local"]) == "2026-03-30 09:00:00"
    assert (g["decision"] == "send").all() and g.loc["Asia/Tokyo", "note"] == "next_day"


def test_dnd_hold_drop_weekdays_and_overnight():
    tz = pd.Series(["Europe/Berlin", "America/New_York", "Europe/Berlin", "Europe/Berlin"])
    # Fri 23:30 Berlin (22:30Z), Sat 02:00 NY (07:00Z), Sat 12:00 Berlin, Mon 07:00 Berlin
    t = ts("2026-01-09 22:30", "2026-01-10 07:00", "2026-01-10 11:00", "2026-01-12 06:00")
    out, held, dropped = apply_dnd(
        t, tz, [DND("22:00", "08:00", ("fri",), "hold"), DND("00:00", "24:00", ("sat",), "drop")]
    )
    # Fri 23:30 is in Friday's window -> held until Sat 08:00 Berlin, which is inside the
    # Saturday all-day drop window -> dropped. NY Sat 02:00: Friday's overnight window -> held to
    # 08:00, then Saturday drop. Sat 12:00 -> dropped. Monday 07:00: Sunday has no window -> kept.
    assert dropped.tolist() == [True, True, True, False]
    assert out.iloc[3] == t.iloc[3] and not held[3]
    out2, held2, _ = apply_dnd(t.iloc[[0, 1]], tz.iloc[[0, 1]], [DND("22:00", "08:00")])
    assert out2.astype(str).tolist() == ["2026-01-10 07:00:00+00:00", "2026-01-10 13:00:00+00:00"]
    assert held2.all()


def test_dnd_hold_across_spring_forward():
    # Berlin window 01:00-02:30 on the DST day: 02:30 does not exist -> release at 03:00 CEST (01:00Z)
    t = ts("2026-03-29 00:15")  # 01:15 CET
    out, held, _ = apply_dnd(t, pd.Series(["Europe/Berlin"]), [DND("01:00", "02:30")])
    assert held[0] and str(out.iloc[0]) == "2026-03-29 01:00:00+00:00"


def test_calendar_vs_rolling_caps_in_user_time_zone():
    # one earlier message at 2026-01-05 22:30Z; the new one at 2026-01-06 00:30Z (two hours later)
    hist_t = pd.to_datetime(["2026-01-05 22:30"], utc=True).as_unit("us").asi8
    new_t = pd.to_datetime(["2026-01-06 00:30"] * 2, utc=True).as_unit("us").asi8
    users = np.array(["berlin", "newyork"])
    tz = pd.Series(["Europe/Berlin", "America/New_York"])
    daily = [FrequencyCap(1, 1, "days", "calendar")]
    # Berlin: 23:30 and 01:30 local are different days -> allowed; New York: 17:30 and 19:30 same day -> capped
    bad = cap_conflicts(
        users,
        new_t,
        tz,
        "email",
        np.array(["berlin", "newyork"]),
        np.repeat(hist_t, 2),
        np.array(["email"] * 2),
        daily,
    )
    assert bad.tolist() == [False, True]
    rolling = [FrequencyCap(1, 24, "hours")]
    bad = cap_conflicts(
        users,
        new_t,
        tz,
        "email",
        np.array(["berlin", "newyork"]),
        np.repeat(hist_t, 2),
        np.array(["email"] * 2),
        rolling,
    )
    assert bad.tolist() == [True, True]
    # a per-channel cap ignores other channels; two allowed per day passes with one earlier
    assert not cap_conflicts(
        users,
        new_t,
        tz,
        "email",
        users,
        np.repeat(hist_t, 2),
        np.array(["sms"] * 2),
        [FrequencyCap(1, 1, "days", "rolling", "email")],
    ).any()
    assert not cap_conflicts(
        users,
        new_t,
        tz,
        "email",
        users,
        np.repeat(hist_t, 2),
        np.array(["email"] * 2),
        [FrequencyCap(2, 1, "days")],
    ).any()


def test_calendar_week_and_month_boundaries():
    new = pd.to_datetime(["2026-02-02 08:00"], utc=True).as_unit("us").asi8  # a Monday
    sun = (
        pd.to_datetime(["2026-02-01 23:30"], utc=True).as_unit("us").asi8
    )  # Sunday; Mon 00:30 in Berlin
    jan = (
        pd.to_datetime(["2026-01-31 23:30"], utc=True).as_unit("us").asi8
    )  # January; Feb 1 in Berlin
    for unit, tzname, t, capped in (
        ("weeks", "UTC", sun, False),
        ("weeks", "Europe/Berlin", sun, True),
        ("months", "UTC", jan, False),
        ("months", "Europe/Berlin", jan, True),
    ):
        got = cap_conflicts(
            np.array(["u"]),
            new,
            pd.Series([tzname]),
            "push",
            np.array(["u"]),
            t,
            np.array(["push"]),
            [FrequencyCap(1, 1, unit, "calendar")],
        )
        assert bool(got[0]) is capped, (unit, tzname)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 600), min_size=1, max_size=300), st.integers(1, 20))
def test_throttle_never_exceeds_rate_in_any_minute(offsets, rate):
    base = pd.Timestamp("2026-01-01", tz="UTC")
    t = pd.Series([base + pd.Timedelta(seconds=s) for s in offsets])
    out = throttle(t, rate)
    assert (out >= t).all()
    v = np.sort(out.dt.as_unit("us").astype("int64").to_numpy())
    # any half-open minute window starting at a message holds at most `rate` messages
    ends = np.searchsorted(v, v + 60_000_000, side="left")
    assert (ends - np.arange(v.size)).max() <= rate


def test_caps_ttl_cutoff_and_throttle_reasons_in_plan(ws):
    add_users(ws, profiles(30))
    ld = "2026-01-05T09:00:00Z"
    first = campaign("first")
    send(ws, plan(ws, first, ld), "first-run")
    capped = campaign("second", delivery=Delivery(caps=(FrequencyCap(1, 1, "days", "calendar"),)))
    assert plan(ws, capped, "2026-01-05T15:00:00Z").reasons() == {"frequency_cap": 30}
    assert plan(ws, capped, "2026-01-06T00:30:00Z").reasons() == {}
    exempt = capped.replace(delivery=Delivery(caps=capped.delivery.caps, ignore_caps=True))
    assert plan(ws, exempt, "2026-01-05T15:00:00Z").reach == 30
    # a one-time campaign has one occurrence (planning it again is the same messages):
    # the gap is checked for another occurrence of the campaign, here a daily one
    gap = campaign(
        "first", delivery=Delivery(min_gap_hours=48),
        schedule=Schedule("recurring", cron="0 9 * * *", timezone="UTC"),
    )  # fmt: skip
    assert plan(ws, gap, "2026-01-06T09:00:00Z", run_key="first-again").reasons() == {"min_gap": 30}
    dnd = campaign("third", delivery=Delivery(dnd=(DND("08:00", "12:00"),), ttl_hours=2))
    assert plan(ws, dnd, ld).reasons() == {"ttl_expired": 30}
    cut = campaign(
        "fourth", delivery=Delivery(throttle_per_minute=10, cut_off="2026-01-05T09:01:30Z")
    )
    f = plan(ws, cut, ld).to_pandas()
    assert (f["decision"] == "send").sum() == 20 and (
        f["reason"] == "throttled_to_later"
    ).sum() == 10
    late = campaign("fifth", delivery=Delivery(cut_off="2026-01-05T08:00:00Z"))
    assert plan(ws, late, ld).reasons() == {"cut_off": 30}
