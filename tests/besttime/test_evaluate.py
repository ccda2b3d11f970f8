"""Evaluation on the simulator: planted preferred hours, replay against on-policy truth,
an independent hit-rate reference, and the bayes-vs-clevertap claim for little history."""

from __future__ import annotations

import zoneinfo

import numpy as np
import pandas as pd
import pytest

from engagelab.besttime import POLICIES, BestTimeOptions, evaluate, exploration_logs
from engagelab.simulate.worlds import load_world

pytestmark = pytest.mark.slow

OPTS = BestTimeOptions(window=("06:00", "23:59"))


@pytest.fixture(scope="module")
def result(sim_ws):
    world = load_world(sim_ws)
    users = sim_ws.sql("SELECT user_id, timezone FROM profiles")
    days = [world.date_of(d) for d in range(28, 40)]
    logs = exploration_logs(world, users, OPTS, days)
    return evaluate(
        sim_ws, OPTS, fit_weeks=4, eval_weeks=2, logs=logs, world=world, sim_days=6
    ), logs


def _row(table, policy, history="all"):
    return table[(table["policy"] == policy) & (table["history"] == history)].iloc[0]


def test_every_baseline_is_reported(result):
    ev, _ = result
    for name, table in ev.tables().items():
        assert set(POLICIES) | {"bayes - clevertap"} <= set(table["policy"]), name
    assert set(ev.tables()) == {"hit_rate", "replay", "recovery", "simulated"}
    assert {"0", "1-2", "3-9", "10+", "little", "all"} <= set(ev.hit_rate["history"])
    assert ev.info["cutoff"].startswith("2026-01-28")  # first event 2025-12-31 UTC + 4 weeks
    html = ev._repr_html_()
    assert "hit_rate" in html and "bayes - clevertap" in html
    assert "BestTimeEvaluation" in repr(ev) and len(ev.to_pandas()) > 20


def test_bayes_beats_clevertap_on_held_out_engagement_for_little_history(result):
    ev = result[0]
    diff = _row(ev.simulated, "bayes - clevertap", "little")
    assert diff["ci_low"] > 0, diff
    hit = _row(ev.hit_rate, "bayes - clevertap", "little")
    assert hit["ci_low"] > 0, hit


def test_true_hour_recovery_grows_with_history(result):
    rec = result[0].recovery
    by = rec[rec["policy"] == "bayes"].set_index("history")["estimate"]
    assert by["0"] < by["1-2"] < by["3-9"] < by["10+"]
    assert by["10+"] > 0.3
    # the fixed campaign time is right for about the share of users who prefer that hour
    assert _row(rec, "fixed")["estimate"] < 0.1


def test_replay_matches_on_policy_simulation(result):
    """Inverse propensity on random-slot logs estimates what sending at the policy's slot
    gets: compare with the simulated on-policy view rate of each policy."""
    ev = result[0]
    for p in ("fixed", "global_best_hour", "bayes"):
        r, s = _row(ev.replay, p), _row(ev.simulated, p)
        se = np.hypot((r["ci_high"] - r["ci_low"]) / 3.92, (s["ci_high"] - s["ci_low"]) / 3.92)
        assert abs(r["estimate"] - s["estimate"]) < 4 * se, (p, r["estimate"], s["estimate"])


def test_hit_rate_against_a_zoneinfo_reference(result, sim_ws):
    ev = result[0]
    cut = pd.Timestamp(ev.info["cutoff"])
    end = pd.Timestamp(ev.info["eval_end"])
    events = sim_ws.sql(
        "SELECT user_id, ts FROM events WHERE event = 'App Launched' AND ts >= $a AND ts < $b",
        {"a": cut.to_pydatetime(), "b": end.to_pydatetime()},
    )
    slots = ev.slots.set_index("user_id")
    tz = slots["timezone"].to_dict()
    hits: dict[str, bool] = {}
    for user, ts in zip(events["user_id"], events["ts"], strict=True):
        local = ts.to_pydatetime().astimezone(zoneinfo.ZoneInfo(tz[user]))
        m = local.hour * 60 + local.minute
        d = abs(m - slots.loc[user, "bayes"]) % 1440
        hits[user] = hits.get(user, False) or min(d, 1440 - d) <= 60
    assert _row(ev.hit_rate, "bayes")["n"] == len(hits)
    assert _row(ev.hit_rate, "bayes")["estimate"] == pytest.approx(np.mean(list(hits.values())))


def test_replay_only_uses_logs_inside_the_evaluation_period(result, sim_ws):
    ev, logs = result
    assert _row(ev.replay, "fixed")["n"] == len(logs)
    early = logs.assign(
        send_at_utc=pd.to_datetime(logs["send_at_utc"], utc=True) - pd.Timedelta(weeks=3)
    )
    again = evaluate(sim_ws, OPTS, fit_weeks=4, eval_weeks=2, logs=pd.concat([logs, early]))
    pd.testing.assert_frame_equal(again.replay, ev.replay)
