"""Models on hand-built histories with known local times, DST, bad input and leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engagelab.besttime import BestTimeOptions, fit
from engagelab.besttime._data import local_hours_sql, user_table
from engagelab.errors import ValidationError
from engagelab.simulate.worlds import simulate_into
from tests.besttime.conftest import local_events, make_ws

AL = "App Launched"
CUT = "2026-07-01"
PROFILES = {
    "a": "Europe/Berlin",
    "b": "America/New_York",
    "c": "Asia/Kolkata",
    "d": "Europe/London",
    "e": "Mars/Olympus",
    "f": "Europe/Paris",
    "g": "Asia/Tokyo",
    "h": "America/St_Johns",
}
ROWS = [
    # a: 09:10 local across the CET -> CEST change: always bucket 08-10; one 15:00 launch
    ("a", AL, "2026-02-10 09:10", "Europe/Berlin"),
    ("a", AL, "2026-04-10 09:10", "Europe/Berlin"),
    ("a", AL, "2026-06-01 09:50", "Europe/Berlin"),
    ("a", AL, "2026-05-01 15:00", "Europe/Berlin"),
    ("a", AL, "2026-06-11 09:20", "Europe/Berlin"),
    ("a", AL, "2026-06-12 09:25", "Europe/Berlin"),
    ("a", AL, "2026-06-13 09:15", "Europe/Berlin"),
    # b: a tie between buckets 10-12 and 18-20 -> the earliest
    ("b", AL, "2026-05-02 19:30", "America/New_York"),
    ("b", AL, "2026-05-03 11:05", "America/New_York"),
    # c: +05:30 zone, 20:45 local -> bucket 20-22
    ("c", AL, "2026-06-20 20:45", "Asia/Kolkata"),
    ("c", AL, "2026-06-21 21:15", "Asia/Kolkata"),
    # f: only history older than 180 days
    ("f", AL, "2025-12-01 10:00", "Europe/Paris"),
    # g: only at 03:00 local -> bucket 02-04, outside the window
    ("g", AL, "2026-06-10 03:00", "Asia/Tokyo"),
    # h: -02:30/-03:30 zone, 13:40 local
    ("h", AL, "2026-03-01 13:40", "America/St_Johns"),
    ("h", AL, "2026-06-01 13:40", "America/St_Johns"),
    ("h", "Page Viewed", "2026-06-02 07:00", "America/St_Johns"),
]


@pytest.fixture
def hand_ws(tmp_path):
    ws = make_ws(tmp_path / "ws", PROFILES, ROWS)
    yield ws
    ws.close()


def _by_user(model):
    return model.slots().set_index("user_id")


def test_clevertap_mode_by_hand(hand_ws):
    s = _by_user(fit(hand_ws, BestTimeOptions(mode="clevertap", window=("08:00", "22:00")), at=CUT))
    assert s.loc["a", ["slot_local", "reason"]].tolist() == ["08:00", "chosen"]
    assert s.loc["b", ["slot_local", "reason"]].tolist() == ["10:00", "chosen"]  # tie -> earliest
    assert s.loc["c", ["slot_local", "reason"]].tolist() == ["20:00", "chosen"]
    assert s.loc["h", ["slot_local", "reason"]].tolist() == ["12:00", "chosen"]
    # no event in 180 days -> default slot right after the 12th bucket (00:00), moved into the window
    for u in ("d", "f"):
        assert s.loc[u, ["slot_local", "reason"]].tolist() == ["08:00", "fallback_no_history"]
    assert s.loc["g", ["slot_local", "reason"]].tolist() == ["08:00", "outside_window"]
    assert s.loc["e", "reason"] == "invalid_timezone" and s.loc["e", "slot_minute"] == -1
    assert s.loc["a", "n_events"] == 7 and s.loc["f", "n_events"] == 0


def test_clevertap_fallback_slot_is_configurable(hand_ws):
    o = BestTimeOptions(mode="clevertap", window=("06:00", "23:00"), fallback_slot="18:30")
    s = _by_user(fit(hand_ws, o, at=CUT))
    assert s.loc["d", "slot_local"] == "18:30"


def test_bayes_mode_by_hand(hand_ws):
    o = BestTimeOptions(
        mode="bayes", window=("06:00", "23:00"), min_events=2, events=(AL, "Page Viewed")
    )
    m = fit(hand_ws, o, at=CUT)
    s = _by_user(m)
    assert m.alpha is not None and m.alpha > 0
    assert s.loc["a", "slot_local"] == "09:30" and s.loc["a", "reason"] == "chosen"
    assert s.loc["g", "reason"] == "fallback_little_history"
    assert s.loc["d", "reason"] == "fallback_no_history"
    assert s.loc["h", "n_events"] == 3
    # confidence is the weight of the user's own history n / (n + alpha)
    assert s.loc["d", "confidence"] == 0
    assert s.loc["a", "confidence"] > s.loc["g", "confidence"] > 0
    # DND moves the slot out of the blocked hour
    s2 = _by_user(fit(hand_ws, o.replace(dnd=(("09:00", "10:00"),)), at=CUT))
    assert not ("09:00" <= s2.loc["a", "slot_local"] < "10:00")


def test_local_hours_agree_with_duckdb_icu(hand_ws, sim_ws):
    for ws, at in ((hand_ws, CUT), (sim_ws, "2026-02-12")):
        o = BestTimeOptions(mode="clevertap")
        m = fit(ws, o, at=at)
        users = user_table(ws, None, None)
        ref = local_hours_sql(ws, users, (AL,), m.history.start, m.history.end)
        idx = pd.Index(users["user_id"]).get_indexer(ref["user_id"])
        assert (m.history.counts[idx, ref["hour"].to_numpy()] == ref["n"].to_numpy()).all()
        assert m.history.counts.sum() == ref["n"].sum()


def test_bad_input_is_a_clear_error(hand_ws, tmp_path):
    with pytest.raises(ValidationError, match="events == 'Nope', is not an event name found"):
        fit(hand_ws, BestTimeOptions(events=("Nope",)), at=CUT)
    with pytest.raises(ValidationError, match="have no occurrences for these users between"):
        fit(hand_ws, BestTimeOptions(), at="2025-01-01")
    empty = make_ws(tmp_path / "empty", {"x": "UTC"}, [])
    with pytest.raises(ValidationError, match="is not an event name found"):
        fit(empty, BestTimeOptions())
    with pytest.raises(ValidationError, match="users == 'list', must be a DataFrame"):
        fit(hand_ws, BestTimeOptions(), at=CUT, users=["a"])  # type: ignore[arg-type]


def test_future_events_do_not_leak_into_the_fit(tmp_path):
    ws = make_ws(tmp_path / "leak", {}, [])
    simulate_into(ws, n_users=400, days=28, seed=3)
    cut = "2026-01-20"
    before = {mode: fit(ws, BestTimeOptions(mode=mode), at=cut) for mode in ("bayes", "clevertap")}
    users = ws.sql("SELECT user_id, timezone FROM profiles ORDER BY user_id LIMIT 200")
    rng = np.random.default_rng(0)
    later = [
        (u, AL, f"2026-01-{rng.integers(21, 28)} {rng.integers(0, 24):02d}:15", tz)
        for u, tz in zip(users["user_id"], users["timezone"], strict=True)
        for _ in range(5)
    ]
    late = local_events(later).assign(event_id=lambda d: "late" + d["event_id"])
    assert (late["ts"] >= pd.Timestamp(cut, tz="UTC")).all()
    ws.append("events", late)
    for mode, m in before.items():
        again = fit(ws, BestTimeOptions(mode=mode), at=cut)
        pd.testing.assert_frame_equal(m.slots(), again.slots())
        # equal up to float summation order (DuckDB scans in parallel)
        assert again.alpha == (None if m.alpha is None else pytest.approx(m.alpha, rel=1e-9))
    moved = fit(ws, BestTimeOptions(mode="bayes"), at="2026-01-29")
    assert not moved.slots()["slot_minute"].equals(before["bayes"].slots()["slot_minute"])


def test_segment_prior_by_profile_column(sim_ws):
    o = BestTimeOptions(mode="bayes", prior_by="country", window=("00:00", "23:59"))
    m = fit(sim_ws, o, at="2026-02-01")
    assert len(m.group_names) > 3 and m.priors.shape == (len(m.group_names), 24)
    # a group's prior is its users' pooled (local-hour) history, lightly smoothed
    g = int(np.argmax(np.bincount(m.group_codes)))
    rows = m.group_codes == g
    pooled = m.history.weights[rows].sum(axis=0)
    assert np.corrcoef(pooled, m.priors[g])[0, 1] > 0.99
    s = m.slots()
    none = s[s["reason"] == "fallback_no_history"]
    fallback = none.groupby(m.group_codes[none.index])["slot_minute"].nunique()
    assert (fallback == 1).all()  # one fallback slot per group: its prior's best hour
    with pytest.raises(
        ValidationError, match="prior_by == 'shoe_size', must be a column of profiles"
    ):
        fit(sim_ws, o.replace(prior_by="shoe_size"), at="2026-02-01")
