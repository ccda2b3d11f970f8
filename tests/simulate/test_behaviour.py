"""Baseline behaviour: determinism, schema, and recovery of the planted truth."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from engagelab.schema import EVENT_SCHEMA, PROFILE_SCHEMA, TS_TYPE
from engagelab.simulate import CITIES, EVENT_NAMES, World, simulate
from engagelab.simulate import EVENT_SCHEMA as SIM_EVENT_SCHEMA
from engagelab.simulate import PROFILE_SCHEMA as SIM_PROFILE_SCHEMA
from engagelab.simulate._catalog import utc_offsets
from tests.simulate.conftest import local_parts


def test_same_seed_same_world_different_seed_different() -> None:
    a, b, c = (simulate(n_users=400, days=20, seed=s) for s in (1, 1, 2))
    assert a.profiles.equals(b.profiles)
    assert a.events().equals(b.events())
    assert not a.profiles.equals(c.profiles)
    ea, ec = a.events().to_pandas(), c.events().to_pandas()
    assert len(ea) != len(ec) or not ea["ts"].equals(ec["ts"])
    assert not set(ea["event_id"]) & set(ec["event_id"])


def test_users_do_not_depend_on_world_size() -> None:
    small, large = simulate(n_users=50, days=10, seed=3), simulate(n_users=500, days=10, seed=3)
    assert small.profiles.equals(large.profiles.slice(0, 50))
    ev_small = small.events().to_pandas()
    ev_large = large.events().to_pandas()
    ev_large = ev_large[ev_large["user_id"].isin(set(ev_small["user_id"]))]
    pd.testing.assert_frame_equal(
        ev_small.sort_values("event_id").reset_index(drop=True),
        ev_large.sort_values("event_id").reset_index(drop=True),
    )


def test_day_by_day_equals_one_call_and_batches() -> None:
    world = simulate(n_users=300, days=30, seed=4)
    whole = world.baseline_events(0, 30)
    by_day = pa.concat_tables([world.baseline_events(d, d + 1) for d in range(30)])
    assert whole.equals(by_day)
    batched = pa.concat_tables(list(world.iter_events(batch_days=4)))
    assert batched.equals(whole)
    assert world.events().equals(whole)
    # beyond the initial period, addressed by date
    later = world.baseline_events("2026-02-05", "2026-02-08")
    assert later.equals(world.baseline_events(35, 38))
    assert later.num_rows > 0


def test_profile_schema_and_values(world: World) -> None:
    prof = world.profiles
    assert prof.schema == SIM_PROFILE_SCHEMA
    assert prof.schema.names[: len(PROFILE_SCHEMA)] == PROFILE_SCHEMA.names
    for field in PROFILE_SCHEMA:
        assert prof.schema.field(field.name).type == field.type
    assert prof.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert prof.schema.field("age").type == pa.int64()
    df = prof.to_pandas()
    assert df["user_id"].iloc[0] == "u0000001" and df["user_id"].iloc[-1] == "u0003000"
    assert df["user_id"].is_unique
    assert set(df["plan"]) == {"free", "pro"}
    assert df["age"].between(18, 75).all()
    for column, low, high in [
        ("email", 0.80, 0.90),
        ("phone", 0.55, 0.65),
        ("webpush_subscription", 0.2, 0.3),
        ("app_install_id", 0.999, 1.001),
        ("web_visitor_id", 0.5, 0.62),
    ]:
        assert low < df[column].notna().mean() < high, column
    # a web push subscription is only issued to a visiting browser
    assert df.loc[df["webpush_subscription"].notna(), "web_visitor_id"].notna().all()
    assert df["app_install_id"].is_unique and df["web_visitor_id"].dropna().is_unique
    assert 0.05 < df["optout_email"].mean() < 0.11
    assert df["phone"].dropna().str.fullmatch(r"\+\d{10,13}").all()
    assert df["email"].dropna().str.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.com").all()
    # users sit within a few km of a real city, in that city's zone
    city = {c.name: c for c in CITIES}
    km = [
        math.dist(
            (lat, lon * math.cos(math.radians(lat))),
            (city[n].latitude, city[n].longitude * math.cos(math.radians(lat))),
        )
        * 111.32
        for n, lat, lon in zip(df["city"], df["latitude"], df["longitude"], strict=True)
    ]
    assert np.median(km) < 8 and max(km) < 30
    assert (df["timezone"] == df["city"].map(lambda n: city[n].timezone)).all()
    assert df["timezone"].nunique() >= 20


def test_event_schema_and_columns(world: World, events: pd.DataFrame) -> None:
    tables = list(world.iter_events(batch_days=20))
    assert all(t.schema == SIM_EVENT_SCHEMA for t in tables)
    assert SIM_EVENT_SCHEMA.names[:4] == EVENT_SCHEMA.names
    assert SIM_EVENT_SCHEMA.field("ts").type == TS_TYPE
    assert SIM_EVENT_SCHEMA.field("labels").type == pa.list_(pa.string())
    assert SIM_EVENT_SCHEMA.field("revenue").type == pa.float64()
    assert set(events["event"]) == set(EVENT_NAMES[:5])
    assert events["event_id"].is_unique and events["user_id"].notna().all()
    charged = events["event"] == "Charged"
    assert (
        events.loc[charged, "revenue"].gt(0).all() and events.loc[~charged, "revenue"].isna().all()
    )
    page = events["event"] == "Page Viewed"
    assert (
        events.loc[page, "url"].str.startswith("/").all() and events.loc[~page, "url"].isna().all()
    )
    funnel = events["event"].isin(["Product Viewed", "Added to Cart", "Charged"])
    assert events.loc[funnel, ["product", "category"]].notna().all().all()
    assert events.loc[~funnel, "product"].isna().all()
    assert events[["campaign_id", "variant", "channel", "labels", "message_key"]].isna().all().all()
    # funnel conversion rates near the documented 35% / 30% / 35%
    counts = events["event"].value_counts()
    assert 0.30 < counts["Product Viewed"] / counts["App Launched"] < 0.40
    assert 0.25 < counts["Added to Cart"] / counts["Product Viewed"] < 0.35
    assert 0.28 < counts["Charged"] / counts["Added to Cart"] < 0.42


def test_heavy_users_modal_local_hour_is_preferred_hour(world: World, events: pd.DataFrame) -> None:
    truth = world.truth
    heavy = truth[truth["engagement"] == "heavy"]
    launches = events[
        (events["event"] == "App Launched") & events["user_id"].isin(set(heavy["user_id"]))
    ]
    local = local_parts(launches, truth, world.config.start)
    mode = local.groupby("user_id")["local_hour"].agg(lambda h: h.value_counts().idxmax())
    pref = heavy.set_index("user_id")["preferred_hour"].loc[mode.index]
    assert len(mode) > 100
    assert (mode == pref).mean() > 0.85


def test_dst_transitions_keep_local_hours() -> None:
    """Across the 2026 US (8 Mar) and EU (29 Mar) spring-forward, a user's sessions stay
    at the same local hour; a fixed-offset conversion would move them by one hour."""
    world = simulate(n_users=4_000, days=50, seed=11, start="2026-02-20", heavy_share=0.3, churn=0)
    truth = world.truth
    zones = [
        "America/New_York",
        "America/Chicago",
        "Europe/Berlin",
        "Europe/London",
        "Europe/Paris",
    ]
    users = truth[(truth["engagement"] == "heavy") & truth["timezone"].isin(zones)]
    ev = world.events().to_pandas()
    ev = ev[(ev["event"] == "App Launched") & ev["user_id"].isin(set(users["user_id"]))]
    local = local_parts(ev, truth, world.config.start).merge(
        users[["user_id", "preferred_hour", "focus"]], on="user_id"
    )
    # the focused component sits at preferred_hour + 0.5 h (sd 0.6 h): half of it in that hour
    for after in (False, True):
        part = local[(local["local_day"] >= 40) == after]
        share = (part["local_hour"] == part["preferred_hour"]).mean()
        shifted = (part["local_hour"] == (part["preferred_hour"] + 1) % 24).mean()
        assert share > 0.25 and share > 2 * shifted, (after, share, shifted)


@pytest.mark.parametrize(
    "zone",
    ["America/New_York", "Europe/Berlin", "Australia/Sydney", "Africa/Cairo", "Asia/Kolkata"],
)
def test_offset_table_matches_zoneinfo(zone: str) -> None:
    start = dt.date(2026, 1, 1)
    table = utc_offsets([zone], start, 0, 365)
    tz = zoneinfo.ZoneInfo(zone)
    for day in range(365):
        date = start + dt.timedelta(days=day)
        for hour in range(24):
            expected = dt.datetime(date.year, date.month, date.day, hour, tzinfo=tz).utcoffset()
            assert table[0, day, hour] == expected.total_seconds(), (date, hour)
    assert len(np.unique(table)) == (1 if zone == "Asia/Kolkata" else 2)


def test_churned_users_stop_and_new_users_start(world: World, events: pd.DataFrame) -> None:
    truth = world.truth
    local = local_parts(events, truth, world.config.start).merge(truth, on="user_id")
    assert (local["local_day"] < local["churn_day"].fillna(np.inf)).all()
    assert (local["local_day"] >= local["signup_day"].clip(lower=0)).all()
    assert (local["local_day"] < world.config.days).all() and (local["local_day"] >= 0).all()
    churned = truth["churn_day"] < 60
    assert 0.2 < churned.mean() < 0.8 and truth["churn_day"].isna().mean() > 0.2
    # every user who signs up during the period launches the app on the signup day
    new = truth[(truth["signup_day"] >= 0)]
    first = local[local["event"] == "App Launched"].groupby("user_id")["local_day"].min()
    assert (first.reindex(new["user_id"]).to_numpy() == new["signup_day"].to_numpy()).all()


def test_engagement_levels_and_sparse_users(world: World, events: pd.DataFrame) -> None:
    truth = world.truth
    per_user = events.groupby("user_id").size().reindex(truth["user_id"], fill_value=0)
    by_level = per_user.groupby(truth.set_index("user_id")["engagement"], observed=True).median()
    assert by_level["heavy"] > 10 * by_level["sparse"]
    assert (per_user <= 5).mean() > 0.4
    assert (per_user >= 100).sum() > 20


def test_session_counts_match_planted_rates(world: World, events: pd.DataFrame) -> None:
    """Total 'App Launched' per level equals the closed-form Poisson expectation
    sum over alive user-days of rate * weekend factor (+1 on the signup day)."""
    truth = world.truth
    start = world.config.start_date
    days = np.arange(world.config.days)
    weekend = np.array([(start + dt.timedelta(days=int(d))).weekday() >= 5 for d in days])
    lo = truth["signup_day"].clip(lower=0).to_numpy()[:, None]
    hi = truth["churn_day"].fillna(np.inf).to_numpy()[:, None]
    alive = (days[None, :] >= lo) & (days[None, :] < hi)
    lam = truth["sessions_per_day"].to_numpy()[:, None] * np.where(
        weekend[None, :], truth["weekend_factor"].to_numpy()[:, None], 1.0
    )
    expected = (alive * lam).sum(axis=1) + (truth["signup_day"] >= 0)
    observed = (
        events[events["event"] == "App Launched"]
        .groupby("user_id")
        .size()
        .reindex(truth["user_id"], fill_value=0)
    )
    for level in ("heavy", "regular", "sparse"):
        m = (truth["engagement"] == level).to_numpy()
        e, o = expected[m].sum(), observed.to_numpy()[m].sum()
        assert abs(o - e) < 4 * math.sqrt(e), (level, o, e)
    # weekend effect: users with a strong weekend factor launch more at weekends
    local = local_parts(events[events["event"] == "App Launched"], truth, world.config.start)
    local = local[local["local_day"] >= 0]
    is_weekend = weekend[local["local_day"].to_numpy()]
    wf = truth.set_index("user_id")["weekend_factor"].loc[local["user_id"]].to_numpy()
    ratio_high = is_weekend[wf > 1.3].mean() / is_weekend[wf < 0.77].mean()
    assert ratio_high > 1.4


def test_created_at_matches_signup(world: World) -> None:
    prof = world.profiles.to_pandas()
    truth = world.truth
    start = pd.Timestamp(world.config.start)
    local_created = [
        ts.tz_convert(tz).tz_localize(None)
        for ts, tz in zip(prof["created_at"], truth["timezone"], strict=True)
    ]
    day = np.array([(t.normalize() - start).days for t in local_created])
    new = truth["signup_day"].to_numpy() >= 0
    assert (day[new] == truth["signup_day"].to_numpy()[new]).all()
    assert all(t.hour == 0 and t.minute == 0 for t, n in zip(local_created, new, strict=True) if n)
    assert (day[~new] < 0).all()
    assert 0.25 < new.mean() < 0.35


def test_a_day_alone_equals_that_day_inside_a_long_batch() -> None:
    """Timestamps must not depend on what else was generated in the same call (no
    batch-wide floating-point accumulation)."""
    world = simulate(n_users=20_000, days=60, seed=9, heavy_share=0.2)
    long = world.baseline_events(0, 60).to_pandas()
    alone = world.baseline_events(55, 56).to_pandas()
    inside = long[long["event_id"].isin(set(alone["event_id"]))]
    assert len(alone) > 3_000 and len(inside) == len(alone)
    pd.testing.assert_frame_equal(
        inside.sort_values("event_id").reset_index(drop=True),
        alone.sort_values("event_id").reset_index(drop=True),
    )


def test_churn_days_follow_the_planted_hazard() -> None:
    """Lifetimes (churn day - first active day - 1) are geometric with the user's hazard:
    mean (1 - h) / h, checked per engagement level against the closed form."""
    truth = simulate(n_users=30_000, days=90, seed=12).truth
    for level, hazard in truth[truth["churn_hazard"] > 0].groupby("engagement", observed=True)[
        "churn_hazard"
    ]:
        h = hazard.iloc[0]
        assert (hazard == h).all()
        rows = truth.loc[hazard.index]
        life = rows["churn_day"] - rows["signup_day"].clip(lower=0) - 1
        mean, sd = (1 - h) / h, math.sqrt(1 - h) / h
        assert abs(life.mean() - mean) < 4 * sd / math.sqrt(len(life)), level
        assert stats.binomtest(int((life == 0).sum()), len(life), h).pvalue > 1e-3, level
    never = truth["churn_day"].isna().mean()
    assert abs(never - 0.25) < 0.02
