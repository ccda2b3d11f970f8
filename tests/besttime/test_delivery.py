"""send_times: DST, passed slots, exploration propensities, the campaign policy hook."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from engagelab.besttime import BestTimeOptions, fit, policy, send_times
from engagelab.errors import ValidationError
from tests.besttime.conftest import make_ws

AL = "App Launched"


@pytest.fixture
def dst_ws(tmp_path):
    ws = make_ws(
        tmp_path / "dst",
        {"busy": "Europe/Berlin", "new": "Europe/Berlin", "ny": "America/New_York"},
        [("busy", AL, f"2026-03-{d:02d} 19:10", "Europe/Berlin") for d in range(1, 20)],
    )
    yield ws
    ws.close()


def _users(ws):
    return ws.sql("SELECT user_id, timezone FROM profiles ORDER BY user_id")


def test_nonexistent_and_ambiguous_local_times(dst_ws):
    o = BestTimeOptions(mode="clevertap", window=("00:00", "23:00"), fallback_slot="02:30")
    spring = send_times(dst_ws, _users(dst_ws), "2026-03-29", o, now="2026-03-20").set_index(
        "user_id"
    )
    # 02:30 does not exist in Berlin on 2026-03-29: shifted forward to 03:00 CEST = 01:00 UTC
    assert spring.loc["new", "send_at_utc"] == pd.Timestamp("2026-03-29 01:00", tz="UTC")
    assert spring.loc["new", "reason"] == "fallback_no_history"
    assert spring.loc["busy", "send_at_utc"] == pd.Timestamp(
        "2026-03-29 16:00", tz="UTC"
    )  # 18:00 CEST
    autumn = send_times(dst_ws, _users(dst_ws), "2026-10-25", o, now="2026-03-20").set_index(
        "user_id"
    )
    # 02:30 happens twice on 2026-10-25: the first occurrence (CEST) = 00:30 UTC
    assert autumn.loc["new", "send_at_utc"] == pd.Timestamp("2026-10-25 00:30", tz="UTC")
    assert autumn.loc["ny", "send_at_utc"] == pd.Timestamp("2026-10-25 06:30", tz="UTC")  # EDT


def test_passed_slots_next_day_or_drop(dst_ws):
    o = BestTimeOptions(mode="clevertap", window=("08:00", "22:00"), fallback_slot="09:00")
    now = "2026-03-25 12:00"  # Berlin 13:00: 09:00 has passed, 18:00 has not
    nd = send_times(dst_ws, _users(dst_ws), "2026-03-25", o, now=now).set_index("user_id")
    assert nd.loc["new", "reason"] == "passed_next_day"
    assert nd.loc["new", "send_at_utc"] == pd.Timestamp("2026-03-26 08:00", tz="UTC")
    assert nd.loc["busy", "reason"] == "chosen"
    assert nd.loc["busy", "send_at_utc"] == pd.Timestamp("2026-03-25 17:00", tz="UTC")
    dr = send_times(dst_ws, _users(dst_ws), "2026-03-25", o.replace(passed="drop"), now=now)
    dr = dr.set_index("user_id")
    assert dr.loc["new", "reason"] == "passed_drop" and pd.isna(dr.loc["new", "send_at_utc"])
    assert dr.loc["busy", "reason"] == "chosen"


def test_history_after_the_plan_time_is_not_used(dst_ws):
    o = BestTimeOptions(mode="clevertap", window=("08:00", "22:00"))
    # all history starts 2026-03-01 19:10 Berlin: a plan made before it has nothing to learn
    # from, which is an error, not a silent default for everyone
    with pytest.raises(ValidationError, match="have no occurrences for these users"):
        send_times(dst_ws, _users(dst_ws), "2026-03-02", o, now="2026-03-01 12:00")
    later = send_times(dst_ws, _users(dst_ws), "2026-03-05", o, now="2026-03-04").set_index(
        "user_id"
    )
    assert later.loc["busy", "reason"] == "chosen" and later.loc["busy", "slot_local"] == "18:00"


def test_invalid_time_zone_is_a_per_user_reason(dst_ws):
    users = pd.DataFrame({"user_id": ["busy", "new"], "timezone": ["Europe/Berlin", "Not/AZone"]})
    out = send_times(dst_ws, users, "2026-03-25", BestTimeOptions(), now="2026-03-20").set_index(
        "user_id"
    )
    assert out.loc["new", "reason"] == "invalid_timezone" and pd.isna(out.loc["new", "send_at_utc"])
    assert out.loc["busy", "send_at_utc"].tz is not None
    with pytest.raises(ValidationError, match="must be a DataFrame with user_id and timezone"):
        send_times(dst_ws, users[["user_id"]], "2026-03-25")
    with pytest.raises(ValidationError, match="logical_date == 'soon'"):
        send_times(dst_ws, users, "soon")


def test_exploration_share_uniformity_and_propensities(sim_ws):
    users = sim_ws.sql("SELECT user_id, timezone FROM profiles ORDER BY user_id")
    o = BestTimeOptions(window=("08:00", "21:30"), explore_share=0.3, seed=5)
    model = fit(sim_ws, o, at="2026-02-01", users=users)
    a = send_times(sim_ws, users, "2026-02-02", o, now="2026-02-01", model=model)
    b = send_times(sim_ws, users, "2026-02-02", o, now="2026-02-01", model=model)
    pd.testing.assert_frame_equal(a, b)  # deterministic
    ex = a[a["reason"] == "exploration"]
    n = len(a)
    assert abs(len(ex) - 0.3 * n) < 4 * np.sqrt(n * 0.3 * 0.7)
    minute = ex["slot_local"].str.slice(0, 2).astype(int) * 60 + ex["slot_local"].str.slice(
        3
    ).astype(int)
    assert minute.between(8 * 60, 21 * 60 + 30).all()
    hour = minute // 60
    allowed = np.bincount(np.flatnonzero(o.allowed_minutes()) // 60, minlength=24)
    expected = allowed / allowed.sum()
    assert np.allclose(ex["propensity"].to_numpy(), expected[hour.to_numpy()])
    observed = np.bincount(hour, minlength=24)[allowed > 0]
    assert stats.chisquare(observed, expected[allowed > 0] * len(ex)).pvalue > 1e-3
    assert a.loc[a["reason"] != "exploration", "propensity"].isna().all()
    other = send_times(sim_ws, users, "2026-02-03", o, now="2026-02-01", model=model)
    assert not (other["reason"] == "exploration").equals(a["reason"] == "exploration")


def test_policy_callable_for_campaigns(dst_ws):
    fn = policy(
        BestTimeOptions(mode="clevertap", window=("08:00", "22:00")), dst_ws, now="2026-03-20"
    )
    users = pd.DataFrame(
        {
            "user_id": ["busy", "ny"],
            "timezone": ["Europe/Berlin", "America/New_York"],
            "send_at": pd.Timestamp("2026-03-25 09:00", tz="UTC"),
        },
        index=[10, 11],
    )
    got = fn(users, "2026-03-25").set_index("user_id")
    assert list(got.columns[:4]) == ["send_at", "reason", "propensity", "slot"]
    assert got.loc["busy", "send_at"] == pd.Timestamp("2026-03-25 17:00", tz="UTC")
    assert got.loc["busy", "reason"] == "chosen" and got.loc["busy", "slot"] == "18:00"
    # New York has no history: the default slot (00:00) moved into the 08:00-22:00 window,
    # 08:00 EDT = 12:00 UTC
    assert got.loc["ny", "reason"] == "fallback_no_history"
    assert got.loc["ny", "send_at"] == pd.Timestamp("2026-03-25 12:00", tz="UTC")
    assert np.isnan(got["propensity"]).all()
