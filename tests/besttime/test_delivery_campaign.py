"""The best-time delivery hook in campaign plans: ``Delivery(best_time=...)`` and registered
policies answer with the documented DataFrame (user_id, send_at UTC or NaT to drop, reason,
propensity, slot); the plan shows best_time_slot / best_time_reason / best_time_propensity.

Hand-made users east and west of UTC, planned on Berlin's spring-forward day (2026-03-29,
when New York and Los Angeles are already on summer time), checked against hand-worked UTC
instants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.besttime import BestTimeOptions
from engagelab.campaigns import (
    DND,
    Campaign,
    Delivery,
    Schedule,
    Variant,
    check_send_times,
    plan,
    read_outbox,
    register_send_time_policy,
    send,
)
from engagelab.delivery.outbox import outbox_path
from engagelab.errors import SpecError, ValidationError
from tests.besttime.conftest import local_events

AL = "App Launched"
#: user -> (time zone, local time of their daily launches)
USERS = {
    "tokyo": ("Asia/Tokyo", "19:10"),  # bucket 18:00-20:00
    "berlin": ("Europe/Berlin", "13:10"),  # bucket 12:00-14:00
    "ny": ("America/New_York", "09:20"),  # bucket 08:00-10:00
    "la": ("America/Los_Angeles", "21:05"),  # bucket 20:00-22:00
    "fresh": ("Europe/Berlin", None),  # no history: the fallback slot
    "mars": ("Mars/Olympus", None),  # invalid time zone
}
#: midnight of 2026-03-29 in Berlin (the campaign's time zone): the logical date
LD = "2026-03-28T23:00:00Z"
CT = dict(mode="clevertap", window=("08:00", "22:00"), fallback_slot="10:00")


@pytest.fixture(scope="module")
def bt_ws(tmp_path_factory):
    ws = Workspace.create(tmp_path_factory.mktemp("btc") / "ws")
    ws.append(
        "profiles",
        pd.DataFrame(
            {
                "user_id": list(USERS),
                "timezone": [tz for tz, _ in USERS.values()],
                "push_token": [f"tok-{u}" for u in USERS],
            }
        ),
    )
    rows = [
        (u, AL, f"2026-03-{d:02d} {hhmm}", tz)
        for u, (tz, hhmm) in USERS.items()
        if hhmm
        for d in range(1, 21)
    ]
    ws.append("events", local_events(rows))
    yield ws
    ws.close()


def campaign(id: str = "bt", **delivery) -> Campaign:
    return Campaign(
        id=id,
        channel="push",
        variants=(Variant("A", {"title": "Hi", "body": "there"}),),
        schedule=Schedule("one_time", timezone="Europe/Berlin"),
        delivery=Delivery(**delivery),
    )


def _plan(ws, c, **kw) -> pd.DataFrame:
    return plan(ws, c, LD, **kw).to_pandas().set_index("user_id")


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_slots_east_and_west_of_utc_on_a_dst_day(bt_ws):
    f = _plan(bt_ws, campaign(best_time=BestTimeOptions(**CT)))
    want = {
        "tokyo": ("18:00", "2026-03-29 09:00"),  # JST, UTC+9 (no DST)
        "berlin": ("12:00", "2026-03-29 10:00"),  # CEST from 03:00 today, UTC+2
        "ny": ("08:00", "2026-03-29 12:00"),  # EDT since 03-08, UTC-4
        "la": ("20:00", "2026-03-30 03:00"),  # PDT, UTC-7: the next UTC day
        "fresh": ("10:00", "2026-03-29 08:00"),  # fallback slot, CEST
    }
    for user, (slot, at) in want.items():
        row = f.loc[user]
        assert row["decision"] == "send" and row["note"] == "best_time", user
        assert row["best_time_slot"] == slot and row["send_at"] == utc(at), user
        assert str(row["send_at_local"])[11:16] == slot, user
    assert f.loc["fresh", "best_time_reason"] == "fallback_no_history"
    assert (f.loc[["tokyo", "berlin", "ny", "la"], "best_time_reason"] == "chosen").all()
    # the invalid zone is dropped with the hook's reason, not sent in a default zone
    assert f.loc["mars", "decision"] == "suppressed"
    assert f.loc["mars", "reason"] == "best_time_drop"
    assert f.loc["mars", "best_time_reason"] == "invalid_timezone"
    assert f["best_time_propensity"].isna().all()


def test_nonexistent_local_slot_on_spring_forward(bt_ws):
    o = BestTimeOptions(mode="clevertap", window=("00:00", "23:00"), fallback_slot="02:30")
    f = _plan(bt_ws, campaign(best_time=o))
    # 02:30 does not exist in Berlin on 2026-03-29: 03:00 CEST = 01:00 UTC
    assert f.loc["fresh", "send_at"] == utc("2026-03-29 01:00")
    assert str(f.loc["fresh", "send_at_local"]) == "2026-03-29 03:00:00"
    assert f.loc["fresh", "best_time_slot"] == "02:30"


def test_passed_slots_next_day_or_drop(bt_ws):
    now = "2026-03-29T09:30:00Z"  # Tokyo's 18:00 (09:00Z) has passed, Berlin's 12:00 has not
    nd = _plan(bt_ws, campaign(best_time=BestTimeOptions(**CT)), now=now)
    assert nd.loc["tokyo", "best_time_reason"] == "passed_next_day"
    assert nd.loc["tokyo", "send_at"] == utc("2026-03-30 09:00")
    assert nd.loc["berlin", "best_time_reason"] == "chosen"
    # 10:00 Berlin (08:00Z) passed too
    assert nd.loc["fresh", "send_at"] == utc("2026-03-30 08:00")
    drop = _plan(bt_ws, campaign(best_time=BestTimeOptions(**CT, passed="drop")), now=now)
    assert drop.loc["tokyo", "decision"] == "suppressed"
    assert drop.loc["tokyo", "reason"] == "best_time_drop"
    assert drop.loc["tokyo", "best_time_reason"] == "passed_drop"
    assert drop.loc["berlin", "decision"] == "send"
    assert drop.loc["berlin", "send_at"] == utc("2026-03-29 10:00")


def test_campaign_dnd_still_applies_after_best_time(bt_ws):
    c = campaign(best_time=BestTimeOptions(**CT), dnd=(DND("11:00", "13:00", action="hold"),))
    f = _plan(bt_ws, c)
    # Berlin's 12:00 slot is inside the window: held to 13:00 CEST = 11:00 UTC
    assert f.loc["berlin", "send_at"] == utc("2026-03-29 11:00")
    assert f.loc["berlin", "note"] == "dnd_hold" and f.loc["berlin", "best_time_slot"] == "12:00"
    assert f.loc["tokyo", "send_at"] == utc("2026-03-29 09:00")


def test_exploration_propensities_flow_into_the_plan(bt_ws):
    o = BestTimeOptions(**CT, explore_share=1.0, seed=3)
    f = _plan(bt_ws, campaign(best_time=o))
    ex = f[f["best_time_reason"] == "exploration"]
    assert sorted(ex.index) == ["berlin", "fresh", "la", "ny", "tokyo"]
    local = pd.to_datetime(ex["send_at_local"])
    minute = local.dt.hour * 60 + local.dt.minute
    assert minute.between(8 * 60, 22 * 60).all()
    assert (ex["best_time_slot"] == local.dt.strftime("%H:%M")).all()
    # uniform over the 841 allowed minutes 08:00..22:00: 60/841 per full hour, 1/841 for 22
    want = np.where(local.dt.hour == 22, 1 / 841, 60 / 841)
    assert np.allclose(ex["best_time_propensity"].to_numpy(), want)
    assert f.loc["mars", "reason"] == "best_time_drop" and np.isnan(
        f.loc["mars", "best_time_propensity"]
    )
    # deterministic per (seed, user, logical date)
    again = _plan(bt_ws, campaign(best_time=o))
    pd.testing.assert_series_equal(f["send_at"], again["send_at"])


def test_best_time_plan_sends_at_the_slots(bt_ws):
    p = plan(bt_ws, campaign("bt-send", best_time=BestTimeOptions(**CT)), LD)
    r = send(bt_ws, p, "bt-send-1")
    assert r.sent == 5 and r.reasons == {"best_time_drop": 1}
    out = {m["user_id"]: m for m in read_outbox(outbox_path(bt_ws, "bt-send-1"))}
    want = p.to_pandas().set_index("user_id")["send_at"]
    for u, m in out.items():
        assert pd.Timestamp(m["send_at"]) == want[u], u
    sup = bt_ws.sql(
        "SELECT user_id, reason FROM events WHERE event = 'Notification Suppressed' "
        "AND campaign_id = 'bt-send'"
    )
    assert sup.to_dict("records") == [{"user_id": "mars", "reason": "best_time_drop"}]


def test_registered_policy_answers_with_the_dataframe_contract(bt_ws):
    def east_only(users, logical_date):
        east = users["timezone"].isin(["Asia/Tokyo", "Europe/Berlin"])
        answer = pd.DataFrame(
            {
                "user_id": users["user_id"],
                "send_at": users["send_at"].where(east) + pd.Timedelta(hours=1),
                "reason": np.where(east, "east", "no_slot"),
                "slot": None,
            }
        )
        return answer.iloc[::-1]  # any order

    register_send_time_policy("east-only", east_only)
    f = _plan(bt_ws, campaign("pol", send_time_policy="east-only"))
    assert set(f.index[f["decision"] == "send"]) == {"tokyo", "berlin", "fresh"}
    assert (f.loc[f["decision"] == "send", "send_at"] == utc("2026-03-29 00:00")).all()
    west = f.loc[["ny", "la", "mars"]]
    assert (west["reason"] == "best_time_drop").all() and (
        west["best_time_reason"] == "no_slot"
    ).all()


def _users():
    return pd.DataFrame(
        {
            "user_id": ["a", "b"],
            "timezone": ["UTC", "UTC"],
            "send_at": pd.to_datetime(["2026-01-01 09:00"] * 2, utc=True),
        }
    )


@pytest.mark.parametrize(
    "answer, field",
    [
        (pd.DataFrame({"user_id": ["a", "b"], "reason": ["x", "y"]}), "p.send_at"),
        (
            pd.DataFrame(
                {"user_id": ["a"], "send_at": pd.to_datetime([None], utc=True), "reason": ["x"]}
            ),
            "p.user_id",
        ),
        (
            pd.DataFrame(
                {
                    "user_id": ["a", "a"],
                    "send_at": pd.to_datetime(["2026-01-01"] * 2, utc=True),
                    "reason": ["x", "y"],
                }
            ),
            "p.user_id",
        ),
        (
            pd.DataFrame(
                {
                    "user_id": ["a", "b", "z"],
                    "send_at": pd.to_datetime(["2026-01-01"] * 3, utc=True),
                    "reason": ["x"] * 3,
                }
            ),
            "p.user_id",
        ),
        (
            pd.DataFrame(
                {
                    "user_id": ["a", "b"],
                    "send_at": pd.to_datetime(["2026-01-01"] * 2),  # naive
                    "reason": ["x", "y"],
                }
            ),
            "p.send_at",
        ),
        (
            pd.DataFrame(
                {
                    "user_id": ["a", "b"],
                    "send_at": pd.to_datetime(["2026-01-01"] * 2, utc=True),
                    "reason": ["x", None],
                }
            ),
            "p.reason",
        ),
        (
            pd.DataFrame(
                {
                    "user_id": ["a", "b"],
                    "send_at": pd.to_datetime(["2026-01-01"] * 2, utc=True),
                    "reason": ["x", "y"],
                    "propensity": [0.5, 1.5],
                }
            ),
            "p.propensity",
        ),
        ([pd.Timestamp("2026-01-01", tz="UTC")], "p"),
    ],
)
def test_contract_violations_name_the_column(answer, field):
    with pytest.raises(ValidationError) as info:
        check_send_times(answer, _users(), "p")
    assert info.value.field == field, str(info.value)


def test_legacy_sequence_answer_keeps_planned_times_for_nat():
    got = check_send_times([pd.Timestamp("2026-01-01 12:00", tz="UTC"), pd.NaT], _users(), "p")
    assert got["send_at"].tolist() == [utc("2026-01-01 12:00"), utc("2026-01-01 09:00")]
    assert got["reason"].tolist() == ["best_time", None]


def test_best_time_option_in_the_spec():
    c = campaign(best_time={"mode": "clevertap", "window": ["09:00", "20:00"]})
    assert isinstance(c.delivery.best_time, BestTimeOptions)
    assert Campaign.from_json(c.to_json()) == c and Campaign.from_yaml(c.to_yaml()) == c
    with pytest.raises(SpecError) as info:
        campaign(best_time={"window": ["21:00", "08:00"]})
    assert info.value.field == "delivery.best_time.window"
    with pytest.raises(SpecError, match="BestTimeOptions key == 'hour'") as info:
        campaign(best_time={"hour": 9})
    assert info.value.field == "delivery.best_time"
    with pytest.raises(SpecError) as info:
        campaign(best_time={"events": ["A", ""]})
    assert info.value.field == "delivery.best_time.events"
    register_send_time_policy("noop", lambda users, ld: users["send_at"])
    with pytest.raises(SpecError, match="send_time_policy") as info:
        campaign(best_time=BestTimeOptions(), send_time_policy="noop")
    assert info.value.field == "delivery.best_time"
    with pytest.raises(SpecError) as info:
        campaign(best_time="09:00")
    assert info.value.field == "delivery.best_time"


def test_hour_of_week_slots_follow_the_logical_dates_weekday(tmp_path):
    # both users launch the app at 09:10 on weekdays and at 20:10 at weekends (Berlin)
    days = pd.date_range("2026-02-02", "2026-03-15")
    rows = [
        (u, AL, f"{d:%Y-%m-%d} {'20:10' if d.day_of_week >= 5 else '09:10'}", "Europe/Berlin")
        for u in ("w1", "w2")
        for d in days
    ]
    ws = Workspace.create(tmp_path / "ws")
    ws.append(
        "profiles",
        pd.DataFrame(
            {"user_id": ["w1", "w2"], "timezone": ["Europe/Berlin"] * 2, "push_token": ["t1", "t2"]}
        ),
    )
    ws.append("events", local_events(rows))
    o = BestTimeOptions(mode="bayes", granularity="hour_of_week", window=("08:00", "22:00"))
    c = campaign(best_time=o)

    def hours(ld, **kw):
        f = plan(ws, c, ld, **kw).to_pandas()
        return f["best_time_slot"].str.slice(0, 2).astype(int).tolist(), f

    fri, _ = hours("2026-03-19T23:00:00Z")  # Friday 2026-03-20 in Berlin
    sat, _ = hours("2026-03-20T23:00:00Z")  # Saturday
    assert fri == [9, 9] and sat == [20, 20]
    # Friday's 09:xx has passed at noon: the next day is a Saturday, with its own slot
    nxt, f = hours("2026-03-19T23:00:00Z", now="2026-03-20T11:00:00Z")
    assert nxt == [20, 20] and (f["best_time_reason"] == "passed_next_day").all()
    local = pd.to_datetime(f["send_at_local"])
    assert (local.dt.date == pd.Timestamp("2026-03-21").date()).all()
    assert (local.dt.hour == 20).all()
    ws.close()
