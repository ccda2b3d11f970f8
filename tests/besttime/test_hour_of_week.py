"""The hour-of-week model: planted weekday-dependent preferences, fallback toward the
prior with little history, the weekday-given-hour prior strength, CLI and evaluation."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.besttime import BestTimeOptions, _bayes, evaluate, fit
from engagelab.besttime._data import local_hours_sql, user_table
from engagelab.besttime.evaluate import week_minutes
from engagelab.cli import main
from engagelab.errors import ValidationError

AL = "App Launched"
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney")
START = dt.date(2026, 1, 5)  # a Monday
WEEKS = 10
CUT = "2026-03-16"  # START + 10 weeks
MONDAY, SATURDAY = dt.date(2026, 3, 16), dt.date(2026, 3, 21)
WINDOW = ("00:00", "23:59")


def _events(plan: dict[str, tuple[str, list[tuple[dt.date, int, int]]]]) -> pd.DataFrame:
    """Events from {user: (zone, [(local date, hour, minute), ...])}, localised per zone."""
    parts = []
    for user, (zone, rows) in plan.items():
        if not rows:
            continue
        wall = pd.DatetimeIndex(
            [pd.Timestamp(d) + pd.Timedelta(hours=h, minutes=m) for d, h, m in rows]
        )
        ts = wall.tz_localize(zone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
        parts.append(pd.DataFrame({"user_id": user, "event": AL, "ts": ts}))
    df = pd.concat(parts, ignore_index=True)
    df["ts"] = df["ts"].dt.as_unit("us")
    df["event_id"] = [f"e{i}" for i in range(len(df))]
    return df


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Users whose preferred hour on weekdays differs from the one at weekends.

    ``rich`` users launch on most days at their hour of that kind of day (plus a little
    noise); ``sparse`` users have one or two launches; ``none`` users have none. The
    population leans to mornings on weekdays and evenings at weekends.
    """
    rng = np.random.default_rng(7)
    plan, truth = {}, {}
    for i in range(240):
        zone = ZONES[i % len(ZONES)]
        wk, we = int(rng.integers(7, 11)), int(rng.integers(18, 22))
        kind = "rich" if i < 160 else "sparse" if i < 210 else "none"
        rows = []
        for day in range(7 * WEEKS):
            date = START + dt.timedelta(days=day)
            hour = we if date.weekday() >= 5 else wk
            if kind == "rich" and rng.random() < 0.8:
                noisy = rng.random() < 0.15
                rows.append(
                    (date, int(rng.integers(0, 24)) if noisy else hour, int(rng.integers(0, 60)))
                )
        if kind == "sparse":
            for _ in range(int(rng.integers(1, 3))):
                date = START + dt.timedelta(days=int(rng.integers(0, 7 * WEEKS)))
                rows.append((date, int(rng.integers(0, 24)), int(rng.integers(0, 60))))
        uid = f"u{i:03d}"
        plan[uid] = (zone, rows)
        truth[uid] = (kind, wk, we)
    ws = Workspace.create(tmp_path_factory.mktemp("how") / "ws")
    ws.append(
        "profiles", pd.DataFrame({"user_id": list(plan), "timezone": [z for z, _ in plan.values()]})
    )
    ws.append("events", _events(plan))
    yield ws, pd.DataFrame.from_dict(truth, orient="index", columns=["kind", "weekday", "weekend"])
    ws.close()


def _hours(model, day) -> pd.Series:
    return model.slots(day).set_index("user_id")["slot_minute"] // 60


def test_hour_of_week_recovers_weekday_dependent_hours(planted):
    ws, truth = planted
    o = BestTimeOptions(window=WINDOW, min_events=1)
    week = fit(ws, o.replace(granularity="hour_of_week"), at=CUT)
    hour = fit(ws, o, at=CUT)
    rich = truth.index[truth["kind"] == "rich"]
    wk, we = truth.loc[rich, "weekday"], truth.loc[rich, "weekend"]
    w_mon, w_sat = _hours(week, MONDAY)[rich], _hours(week, SATURDAY)[rich]
    h_mon, h_sat = _hours(hour, MONDAY)[rich], _hours(hour, SATURDAY)[rich]
    assert (w_mon == wk).mean() > 0.95 and (w_sat == we).mean() > 0.95
    # one slot for every day: right on weekdays, wrong at weekends
    assert (h_mon == h_sat).all()
    assert (h_mon == wk).mean() > 0.95 and (h_sat == we).mean() < 0.05
    assert week.beta is not None and week.beta > 0 and hour.beta is None
    # every weekday of the working week gets the weekday hour
    for day in range(5):
        got = _hours(week, MONDAY + dt.timedelta(days=day))[rich]
        assert (got == wk).mean() > 0.95


def test_little_history_falls_back_toward_the_prior(planted):
    ws, truth = planted
    m = fit(ws, BestTimeOptions(window=WINDOW, granularity="hour_of_week"), at=CUT)
    s_mon, s_sat = m.slots(MONDAY).set_index("user_id"), m.slots(SATURDAY).set_index("user_id")
    none = truth.index[truth["kind"] == "none"]
    assert (s_mon.loc[none, "reason"] == "fallback_no_history").all()
    # the population's weekday mornings and weekend evenings, as the group prior says
    assert s_mon.loc[none, "slot_minute"].nunique() == 1
    assert 7 <= s_mon.loc[none, "slot_minute"].iloc[0] // 60 <= 10
    assert 18 <= s_sat.loc[none, "slot_minute"].iloc[0] // 60 <= 21
    # the fitted posterior moves away from the prior with the amount of own history
    rows = {u: i for i, u in enumerate(m.history.users["user_id"])}
    prior = m.priors[0] / m.priors[0].sum()
    score = m.score / m.score.sum(axis=1, keepdims=True)
    smooth_prior = prior + 0.5 * (np.roll(prior, 1) + np.roll(prior, -1))
    smooth_prior /= smooth_prior.sum()

    def dist(users):
        return np.abs(score[[rows[u] for u in users]] - smooth_prior).sum(axis=1).mean()

    sparse = truth.index[truth["kind"] == "sparse"]
    rich = truth.index[truth["kind"] == "rich"]
    assert dist(none) < 0.05 < dist(sparse) < dist(rich)


def test_hour_of_week_bins_agree_with_duckdb_icu(planted):
    ws, _ = planted
    m = fit(ws, BestTimeOptions(window=WINDOW, granularity="hour_of_week"), at=CUT)
    users = user_table(ws, None, None)
    ref = local_hours_sql(ws, users, (AL,), m.history.start, m.history.end, weekday=True)
    idx = pd.Index(users["user_id"]).get_indexer(ref["user_id"])
    cell = ref["weekday"].to_numpy() * 24 + ref["hour"].to_numpy()
    assert (m.history.week_counts[idx, cell] == ref["n"].to_numpy()).all()
    assert m.history.week_counts.sum() == ref["n"].sum()
    assert (m.history.week_counts.reshape(-1, 7, 24).sum(axis=1) == m.history.counts).all()


def test_weekday_prior_strength_recovers_a_planted_value():
    """Per (user, hour): weekday shares ~ Dirichlet(beta * base); counts multinomial."""
    rng = np.random.default_rng(3)
    beta = 4.0
    n_users = 3000
    base = rng.dirichlet(np.full(7, 5.0), size=24).T  # (7, 24) weekday shares per hour
    y = np.zeros((n_users, 7, 24))
    for u in range(n_users):
        for h in rng.choice(24, size=3, replace=False):
            p = rng.dirichlet(beta * base[:, h])
            y[u, :, h] = rng.multinomial(int(rng.integers(2, 15)), p)
    rows, shares = _bayes.conditional_rows(y, np.broadcast_to(base, y.shape))
    assert rows.shape == (3 * n_users, 7)
    assert _bayes.fit_alpha(rows, shares) == pytest.approx(beta, rel=0.15)


def test_week_posterior_closed_form():
    hour_post = np.full((1, 24), 1 / 24)
    y = np.zeros((1, 7, 24))
    y[0, 2, 9] = 3.0  # three Wednesday 09:xx launches
    base = np.full((1, 7, 24), 1 / 7)
    post = _bayes.week_posterior(hour_post, y, base, beta=2.0)
    assert post.shape == (1, 168) and post.sum() == pytest.approx(1.0)
    # p(Wed | 9) = (3 + 2/7) / (3 + 2); p(Mon | 9) = (2/7) / 5; other hours: 1/7
    assert post[0, 2 * 24 + 9] == pytest.approx((3 + 2 / 7) / 5 / 24)
    assert post[0, 0 * 24 + 9] == pytest.approx((2 / 7) / 5 / 24)
    assert post[0, 4 * 24 + 15] == pytest.approx(1 / 7 / 24)


def test_loo_conditionals_leave_the_user_out():
    y = np.zeros((3, 7, 24))
    y[0, 0, 9], y[1, 5, 9], y[2, 5, 9] = 4, 1, 1
    w = _bayes.loo_conditionals(y, np.array([0, 0, 0]))
    assert w[0, 5, 9] == pytest.approx(1.0)  # the others launched on Saturdays only
    assert w[1, :, 9] == pytest.approx(np.array([4, 0, 0, 0, 0, 1, 0]) / 5, abs=1e-5)
    assert w.sum(axis=1) == pytest.approx(np.ones((3, 24)))


def test_day_is_required_and_validated(planted):
    ws, _ = planted
    m = fit(ws, BestTimeOptions(window=WINDOW, granularity="hour_of_week"), at=CUT)
    with pytest.raises(ValidationError, match="day == None, must be the logical date"):
        m.slots()
    with pytest.raises(ValidationError, match="day == 'monday', must be a date"):
        m.slots("monday")
    assert m.slots("2026-03-16").equals(m.slots(MONDAY))
    assert "granularity='hour_of_week'" in repr(m) and "beta=" in repr(m)
    with pytest.raises(ValidationError, match="granularity == 'day', must be one of"):
        BestTimeOptions(granularity="day")
    with pytest.raises(ValidationError, match="must be 'hour' in clevertap mode"):
        BestTimeOptions(mode="clevertap", granularity="hour_of_week")
    o = BestTimeOptions(granularity="hour_of_week")
    assert BestTimeOptions.from_json(o.to_json()) == o


def test_evaluation_scores_weekday_slots(planted):
    ws, truth = planted
    o = BestTimeOptions(window=WINDOW, min_events=1)
    ev_week = evaluate(ws, o.replace(granularity="hour_of_week"), fit_weeks=8, eval_weeks=2)
    ev_hour = evaluate(ws, o, fit_weeks=8, eval_weeks=2)
    assert {f"bayes_{d}" for d in ("Mon", "Sat")} <= set(ev_week.slots.columns)
    assert "bayes" not in ev_week.slots.columns and ev_week.info["beta"] > 0
    minutes = week_minutes(ev_week.slots, "bayes")
    assert minutes.shape == (len(ev_week.slots), 7)
    rich = ev_week.slots["user_id"].isin(truth.index[truth["kind"] == "rich"]).to_numpy()
    assert (minutes[rich, 0] != minutes[rich, 5]).mean() > 0.9

    def hit(ev):
        t = ev.hit_rate
        return t[(t["policy"] == "bayes") & (t["history"] == "all")]["estimate"].iloc[0]

    assert hit(ev_week) >= hit(ev_hour) - 0.01
    # held-out weekend launches of the rich users (local time by zoneinfo): within an
    # hour of the weekend slot of the hour-of-week model, not of the one-slot model
    cut, end = pd.Timestamp(ev_week.info["cutoff"]), pd.Timestamp(ev_week.info["eval_end"])
    ev = ws.sql(
        "SELECT e.user_id, e.ts, p.timezone FROM events e JOIN profiles p USING (user_id) "
        "WHERE e.ts >= $a AND e.ts < $b",
        {"a": cut.to_pydatetime(), "b": end.to_pydatetime()},
    )
    ev = ev[ev["user_id"].isin(truth.index[truth["kind"] == "rich"])]
    local = [t.tz_convert(z) for t, z in zip(ev["ts"], ev["timezone"], strict=True)]
    weekend = [(t.weekday(), t.hour * 60 + t.minute) for t in local]
    week_slots = ev_week.slots.set_index("user_id")
    hour_slots = ev_hour.slots.set_index("user_id")["bayes"]
    near_week, near_hour = [], []
    for user, (wd, minute) in zip(ev["user_id"], weekend, strict=True):
        if wd < 5:
            continue
        day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[wd]
        near_week.append(abs(minute - week_slots.loc[user, f"bayes_{day}"]) <= 60)
        near_hour.append(abs(minute - hour_slots.loc[user]) <= 60)
    assert len(near_week) > 100
    assert np.mean(near_week) > 0.7 and np.mean(near_hour) < 0.2


def test_cli_granularity(planted, capsys):
    ws, _ = planted
    args = ["besttime", "fit", "-w", str(ws.path), "--granularity", "hour_of_week"]
    assert main([*args, "--at", CUT, "--day", "2026-03-21", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["granularity"] == "hour_of_week" and out["day"] == "2026-03-21"
    slots = pd.read_csv(out["slots_file"]).set_index("user_id")
    ref = fit(ws, BestTimeOptions(granularity="hour_of_week"), at=CUT).slots(SATURDAY)
    got = slots.loc[ref["user_id"], "slot_local"].to_numpy()
    assert (got == ref["slot_local"].to_numpy()).all()
    bad = ["besttime", "fit", "-w", str(ws.path), "--mode", "clevertap"]
    assert main([*bad, "--granularity", "hour_of_week"]) == 1
    assert "must be 'hour' in clevertap mode" in capsys.readouterr().err
    ev = ["besttime", "evaluate", "-w", str(ws.path), "--granularity", "hour_of_week"]
    assert main([*ev, "--fit-weeks", "8", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["info"]["granularity"] == "hour_of_week" and doc["info"]["beta"] > 0


def test_exact_minute_path_gives_the_same_bins(planted, monkeypatch):
    """Zones whose offset is off the quarter-hour grid (none today) take the exact-minute
    path; forced here, it bins every event as the quarter-hour table does."""
    from engagelab.besttime import _data

    ws, _ = planted
    o = BestTimeOptions(window=WINDOW, granularity="hour_of_week")
    grid = fit(ws, o, at=CUT)
    monkeypatch.setattr(_data, "hour_of_week_table", lambda *a: None)
    exact = fit(ws, o, at=CUT)
    assert (exact.history.week_counts == grid.history.week_counts).all()
    assert exact.history.week_weights == pytest.approx(grid.history.week_weights, rel=1e-9)
    pd.testing.assert_frame_equal(exact.slots(MONDAY), grid.slots(MONDAY))


@pytest.mark.parametrize("groups", [1, 3])
def test_loo_conditionals_match_a_direct_computation(groups):
    rng = np.random.default_rng(groups)
    y = rng.poisson(0.4, size=(60, 7, 24)).astype(float)
    codes = np.arange(60) % groups
    got = _bayes.loo_conditionals(y, codes)
    for u in (0, 7, 59):
        mine = codes == codes[u]
        group = y[mine].sum(axis=0) - y[u]  # the user's group without the user
        others = y.sum(axis=0) - y[u] + 1e-6  # everyone else, for the light smoothing
        ref = group + others / others.sum(axis=0, keepdims=True)
        ref /= ref.sum(axis=0, keepdims=True)
        assert got[u] == pytest.approx(ref, rel=1e-9, abs=1e-15)
