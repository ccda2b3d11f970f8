"""World.respond: determinism per message, consistency, and recovery of planted effects."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from engagelab.errors import ValidationError
from engagelab.simulate import CHANNEL_RATES, EVENT_SCHEMA, World, simulate
from tests.simulate.conftest import local_parts

SEND = pd.Timestamp("2026-01-10 18:00", tz="UTC")
NOTIFICATION_EVENTS = ["Notification Delivered", "Notification Viewed", "Notification Clicked"]


def messages_for(
    users: list[str],
    *,
    campaign: str = "c1",
    channel: str | list[str] = "email",
    send_ts: pd.Timestamp | list[pd.Timestamp] = SEND,
    labels: list[str] | None = None,
    variants: tuple[str, ...] = ("A", "B"),
    repeat: int = 1,
) -> pd.DataFrame:
    n = len(users) * repeat
    return pd.DataFrame(
        {
            "user_id": np.repeat(users, repeat),
            "campaign_id": campaign,
            "variant": [variants[i % len(variants)] for i in range(n)],
            "channel": channel,
            "send_ts": send_ts,
            "labels": [list(labels or []) for _ in range(n)],
            "message_key": [f"{campaign}:{u}:{j}" for u in users for j in range(repeat)],
        }
    )


def web_users(world: World) -> np.ndarray:
    """True for the world's web users (a ``web_visitor_id``): whom a web pop-up reaches,
    aligned with ``world.truth``. Web pop-ups always deliver to them, so the tests of the
    answer model send them."""
    return world.profiles.column("web_visitor_id").is_valid().to_numpy(zero_copy_only=False)


def sorted_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().sort_values("event_id").reset_index(drop=True)


def test_deterministic_and_independent_of_batch(world: World) -> None:
    users = world.truth["user_id"].tolist()[:600]
    channels = list(CHANNEL_RATES)
    msgs = messages_for(
        users, channel=[channels[i % len(channels)] for i in range(600)], labels=["Onboarding"]
    )
    full = world.respond(msgs)
    assert full.schema == EVENT_SCHEMA
    assert full.equals(world.respond(msgs))
    assert full.equals(world.respond(pa.Table.from_pandas(msgs, preserve_index=False)))
    subset = msgs.sample(frac=0.3, random_state=1)
    part = world.respond(subset)
    expected = full.to_pandas()
    expected = expected[
        expected["message_key"].isin(set(subset["message_key"]))
        | expected["event"].isin(["App Launched", "Charged"])
    ]
    got = sorted_frame(part)
    # every row of the subset's answer is in the full answer, identically
    merged = got.merge(
        full.to_pandas(), on=list(EVENT_SCHEMA.names[:4]), how="left", indicator=True
    )
    assert (merged["_merge"] == "both").all()
    keys = set(subset["message_key"])
    assert set(got["message_key"].dropna()) <= keys
    assert (expected["message_key"].dropna().isin(keys)).all()
    # another world seed answers differently
    other = simulate(n_users=3_000, days=60, seed=6).respond(msgs).to_pandas()
    assert not set(other["event_id"]) & set(got["event_id"])


def test_event_sequence_is_consistent(world: World) -> None:
    users = world.truth["user_id"].tolist()
    msgs = messages_for(users, channel="sms", labels=["Onboarding", "Sale"], repeat=2)
    ev = world.respond(msgs).to_pandas()
    notif = ev[ev["event"].isin(NOTIFICATION_EVENTS)]
    assert notif[["campaign_id", "variant", "channel", "message_key"]].notna().all().all()
    assert all(list(lab) == ["Onboarding", "Sale"] for lab in notif["labels"])
    wide = notif.pivot(index="message_key", columns="event", values="ts")
    assert wide["Notification Delivered"].notna().all()
    viewed = wide["Notification Viewed"].notna()
    assert (
        wide.loc[viewed, "Notification Viewed"] > wide.loc[viewed, "Notification Delivered"]
    ).all()
    clicked = wide["Notification Clicked"].notna()
    assert (viewed | ~clicked).all()
    assert (
        wide.loc[clicked, "Notification Clicked"] > wide.loc[clicked, "Notification Viewed"]
    ).all()
    assert clicked.sum() > 50
    assert ((wide["Notification Delivered"] - SEND) < pd.Timedelta(minutes=10)).all()
    charged = ev[ev["event"] == "Charged"]
    assert len(charged) > 0 and charged["revenue"].gt(0).all() and charged["product"].notna().all()
    first_click = notif[notif["event"] == "Notification Clicked"].groupby("user_id")["ts"].min()
    assert (charged["ts"].to_numpy() > first_click.loc[charged["user_id"]].to_numpy()).all()
    # conversion rate near config.conversion_rate
    assert (
        stats.binomtest(len(charged), int(clicked.sum()), world.config.conversion_rate).pvalue
        > 1e-3
    )


def test_unreachable_and_opted_out_users_get_nothing(world: World) -> None:
    prof = world.profiles.to_pandas()
    for channel, address, optout in [
        ("email", "email", "optout_email"),
        ("push", "push_token", "optout_push"),
        ("sms", "phone", "optout_sms"),
        ("web_push", "webpush_subscription", "optout_web_push"),
    ]:
        ev = world.respond(messages_for(prof["user_id"].tolist(), channel=channel)).to_pandas()
        got = set(ev.loc[ev["event"] == "Notification Delivered", "user_id"])
        ok = set(prof.loc[prof[address].notna() & ~prof[optout], "user_id"])
        assert got <= ok and len(got) > 0.8 * CHANNEL_RATES[channel][0] * len(ok), channel


def test_app_and_web_channels_reach_app_and_web_users(world: World) -> None:
    prof = world.profiles.to_pandas()
    app = prof["app_install_id"].notna() | prof["push_token"].notna()
    web = prof["web_visitor_id"].notna() | prof["webpush_subscription"].notna()
    assert app.all() and 0.45 < web.mean() < 0.7  # every simulated user has the app
    no_push = prof["push_token"].isna() | prof["optout_push"]
    assert no_push.sum() > 0.3 * len(prof)
    for channel, reach in (("in_app", app), ("app_inbox", app), ("web_popup", web)):
        ev = world.respond(messages_for(prof["user_id"].tolist(), channel=channel)).to_pandas()
        got = set(ev.loc[ev["event"] == "Notification Delivered", "user_id"])
        assert got <= set(prof.loc[reach, "user_id"]), channel
        # push opt-out or no push token does not keep app users from app channels
        lost_push = set(prof.loc[no_push & reach, "user_id"])
        assert len(got & lost_push) > 0.8 * CHANNEL_RATES[channel][0] * len(lost_push), channel


def test_planted_variant_multiplier_is_recovered() -> None:
    world = simulate(n_users=2_000, days=5, seed=21, churn=0)
    world.plant_variant_effects("promo", {"B": 1.5})
    web = world.truth["user_id"][web_users(world)].tolist()
    msgs = messages_for(web, campaign="promo", channel="web_popup", repeat=15)
    ev = world.respond(msgs).to_pandas()
    counts = (
        ev[ev["event"].isin(NOTIFICATION_EVENTS)].groupby(["variant", "event"]).size().unstack()
    )
    base = CHANNEL_RATES["web_popup"][2]
    for variant, mult in (("A", 1.0), ("B", 1.5)):
        clicks, views = (
            counts.loc[variant, "Notification Clicked"],
            counts.loc[variant, "Notification Viewed"],
        )
        assert stats.binomtest(clicks, views, base * mult).pvalue > 1e-3, variant
    # and the two arms are distinguishable
    table = counts[["Notification Clicked", "Notification Viewed"]].to_numpy().copy()
    table[:, 1] -= table[:, 0]
    assert stats.chi2_contingency(table).pvalue < 1e-6
    untouched = simulate(n_users=2_000, days=5, seed=21, churn=0).respond(msgs).to_pandas()
    c2 = untouched[untouched["event"] == "Notification Clicked"].groupby("variant").size()
    v2 = untouched[untouched["event"] == "Notification Viewed"].groupby("variant").size()
    assert stats.binomtest(c2["B"], v2["B"], base).pvalue > 1e-3


def reference_hour_factor(local_hour: float, preferred_hour: int) -> float:
    d = abs(local_hour - (preferred_hour + 0.5)) % 24
    d = min(d, 24 - d)
    return 0.35 + 0.65 * math.exp(-d * d / 8.0)


def test_view_probability_follows_send_hour() -> None:
    world = simulate(n_users=5_000, days=5, seed=8, churn=0)
    truth = world.truth[web_users(world)]
    rng = np.random.default_rng(0)
    sends = [
        pd.Timestamp("2026-01-03", tz="UTC") + pd.Timedelta(minutes=int(m))
        for m in rng.integers(0, 24 * 60, len(truth))
    ]
    msgs = messages_for(truth["user_id"].tolist(), channel="web_popup", send_ts=sends)
    ev = world.respond(msgs).to_pandas()
    viewed = set(ev.loc[ev["event"] == "Notification Viewed", "message_key"])
    p = []
    for tz, pref, ts in zip(truth["timezone"], truth["preferred_hour"], sends, strict=True):
        local = ts.to_pydatetime().astimezone(zoneinfo.ZoneInfo(tz))
        p.append(
            CHANNEL_RATES["web_popup"][1]
            * reference_hour_factor(local.hour + local.minute / 60, pref)
        )
    p = np.array(p)
    seen = msgs["message_key"].isin(viewed).to_numpy()
    assert abs(seen.sum() - p.sum()) < 4 * math.sqrt((p * (1 - p)).sum())
    near, far = p > 0.55, p < 0.25
    assert seen[near].mean() > 2 * seen[far].mean()
    assert stats.binomtest(int(seen[far].sum()), int(far.sum()), p[far].mean()).pvalue > 1e-3


def test_label_effect_lifts_day_30_retention() -> None:
    world = simulate(n_users=10_000, days=40, seed=13, label_effects={"Onboarding": 0.10})
    truth = world.truth[web_users(world)]
    users = truth["user_id"].to_numpy()
    group = np.arange(users.size) % 3  # 0: Onboarding, 1: Promo (no planted effect), 2: no message
    send = pd.Timestamp("2026-01-03 12:00", tz="UTC")
    msgs = pd.concat(
        [
            messages_for(
                list(users[group == 0]),
                campaign="onb",
                channel="web_popup",
                send_ts=send,
                labels=["Onboarding"],
            ),
            messages_for(
                list(users[group == 1]),
                campaign="promo",
                channel="web_popup",
                send_ts=send,
                labels=["Promo"],
            ),
        ]
    )
    answer = world.respond(msgs).to_pandas()
    extra = answer[answer["event"] == "App Launched"]
    assert len(extra) > 0.1 * 45 * (group == 0).sum() * 0.8
    assert set(extra["user_id"]) <= set(users[group == 0])
    # send local day per user, by zoneinfo
    start = dt.date(2026, 1, 1)
    send_day = {
        u: (send.to_pydatetime().astimezone(zoneinfo.ZoneInfo(tz)).date() - start).days
        for u, tz in zip(truth["user_id"], truth["timezone"], strict=True)
    }
    local_extra = local_parts(extra, truth, world.config.start)
    offset = local_extra["local_day"] - local_extra["user_id"].map(send_day)
    assert offset.between(1, 45).all() and offset.nunique() == 45
    baseline = world.baseline_events(0, 40).to_pandas()
    launches = pd.concat([baseline[baseline["event"] == "App Launched"], extra])
    launches = launches[launches["user_id"].isin(users)]
    local = local_parts(launches, truth, world.config.start)
    on_day = local[local["local_day"] == local["user_id"].map(send_day) + 30]
    active = np.isin(users, on_day["user_id"].unique())
    rate = [active[group == g].mean() for g in range(3)]
    n = [(group == g).sum() for g in range(3)]
    # planted: active_sent = 1 - (1 - p0)(1 - 0.10 * P(delivered)); web_popup always delivers
    expected_lift = 0.10 * (1 - rate[2])
    se = math.sqrt(rate[0] * (1 - rate[0]) / n[0] + rate[2] * (1 - rate[2]) / n[2])
    assert abs((rate[0] - rate[2]) - expected_lift) < 3.5 * se, rate
    assert rate[0] - rate[2] > 0.06
    se_promo = math.sqrt(rate[1] * (1 - rate[1]) / n[1] + rate[2] * (1 - rate[2]) / n[2])
    assert abs(rate[1] - rate[2]) < 3.5 * se_promo


def test_unknown_users_are_dropped_and_bad_input_raises(world: World) -> None:
    known = world.truth["user_id"][web_users(world)].iloc[0]
    msgs = messages_for([known, "u9999999", "nobody", "u0003001"], channel="web_popup", repeat=3)
    ev = world.respond(msgs).to_pandas()
    assert set(ev["user_id"]) <= {known} and len(ev) >= 3
    assert world.respond(msgs.iloc[1:0]).schema == EVENT_SCHEMA
    with pytest.raises(ValidationError, match="channel == 'carrier_pigeon'"):
        world.respond(msgs.assign(channel="carrier_pigeon"))
    with pytest.raises(ValidationError, match="messages columns"):
        world.respond(msgs.drop(columns=["send_ts"]))
    with pytest.raises(ValidationError, match="send_ts == None"):
        world.respond(msgs.assign(send_ts=pd.NaT))
    # naive timestamps are read as UTC, strings are parsed
    naive = world.respond(msgs.assign(send_ts=SEND.tz_localize(None)))
    assert naive.equals(world.respond(msgs.assign(send_ts=str(SEND))))
    assert naive.equals(world.respond(msgs))
    with pytest.raises(ValidationError, match="message_key"):
        world.respond(msgs.assign(message_key=None))
    with pytest.raises(ValidationError, match=r"effects\['B'\] == -1"):
        world.plant_variant_effects("c", {"B": -1})


@pytest.mark.parametrize(
    ("labels", "p"),
    [
        (["Onboarding", "Winback"], 1 - (1 - 0.10) * (1 - 0.20)),
        (["Onboarding", "Onboarding"], 0.10),  # a label counts once per message
        (["Winback", "Promo"], 0.20),
        (["Promo"], 0.0),
    ],
)
def test_label_effects_combine_as_independent_chances(labels: list[str], p: float) -> None:
    world = simulate(
        n_users=1_500, days=3, seed=2, label_effects={"Onboarding": 0.1, "Winback": 0.2}
    )
    web = world.truth["user_id"][web_users(world)].tolist()
    msgs = messages_for(web, channel="web_popup", labels=labels)
    ev = world.respond(msgs).to_pandas()
    extra = int((ev["event"] == "App Launched").sum())
    trials = len(msgs) * world.config.retention_days  # web_popup always delivers
    if p == 0:
        assert extra == 0
    else:
        assert stats.binomtest(extra, trials, p).pvalue > 1e-3, (extra / trials, p)


def test_churned_users_view_less() -> None:
    """Expected views from the documented closed form, including the churned-user factor."""
    world = simulate(n_users=4_000, days=5, seed=31, churn=3.0)
    truth = world.truth
    send = pd.Timestamp("2026-03-15 17:00", tz="UTC")  # day 73: many users have churned
    msgs = messages_for(truth["user_id"].tolist(), channel="sms", send_ts=send)
    ev = world.respond(msgs).to_pandas()
    delivered = msgs["user_id"].isin(
        set(ev.loc[ev["event"] == "Notification Delivered", "user_id"])
    )
    viewed = msgs["user_id"].isin(set(ev.loc[ev["event"] == "Notification Viewed", "user_id"]))
    p, churned = [], []
    for tz, pref, churn_day in zip(
        truth["timezone"], truth["preferred_hour"], truth["churn_day"], strict=True
    ):
        local = send.to_pydatetime().astimezone(zoneinfo.ZoneInfo(tz))
        gone = (local.date() - dt.date(2026, 1, 1)).days >= churn_day
        churned.append(gone)
        factor = reference_hour_factor(local.hour + local.minute / 60, pref) * (
            0.3 if gone else 1.0
        )
        p.append(CHANNEL_RATES["sms"][1] * factor)
    p, churned = np.array(p)[delivered.to_numpy()], np.array(churned)[delivered.to_numpy()]
    seen = viewed.to_numpy()[delivered.to_numpy()]
    assert 0.3 < churned.mean() < 0.9
    for group in (churned, ~churned):
        sd = math.sqrt((p[group] * (1 - p[group])).sum())
        assert abs(seen[group].sum() - p[group].sum()) < 4 * sd
    assert seen[churned].mean() < 0.5 * seen[~churned].mean()
