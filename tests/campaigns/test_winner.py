"""Test-then-winner with the campaign's conversion goal as the winner metric (conversion
rate within the goal window, revenue per recipient) and the statistical rule, checked on
hand-made answers (against pandas rates and scipy tests) and on the simulator (the planted
best variant wins)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from engagelab.campaigns import Campaign, Goal, Schedule, Variant, WinnerTest, plan, send
from engagelab.campaigns.report import choose_campaign_winner
from engagelab.errors import SpecError
from engagelab.simulate import respond
from engagelab.simulate.worlds import load_world, simulate_into
from tests.campaigns.conftest import add_users, campaign, email, profiles

LD = "2026-02-02T09:00:00Z"
LATER = "2026-02-03T12:00:00Z"  # after the 24 h wait


def _answers(ws, sent: pd.DataFrame, rates: dict[str, tuple[float, float, float]], seed: int):
    """Clicks and goal events per variant: (click rate, conversion rate, revenue each)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in sent.itertuples():
        click, conv, revenue = rates[r.variant]
        if rng.random() < click:
            rows.append((r.user_id, "Notification Clicked", r.ts + pd.Timedelta(minutes=5),
                         "w", r.variant, r.message_key, None))  # fmt: skip
        if rng.random() < conv:
            rows.append((r.user_id, "Charged", r.ts + pd.Timedelta(hours=2),
                         None, None, None, revenue))  # fmt: skip
        # a purchase after the goal window counts for nothing
        rows.append((r.user_id, "Charged", r.ts + pd.Timedelta(hours=30), None, None, None, 500.0))
    ev = pd.DataFrame(
        rows,
        columns=["user_id", "event", "ts", "campaign_id", "variant", "message_key", "revenue"],
    )
    ws.append("events", ev)


@pytest.fixture
def tested(ws):
    """A sent test phase of 'w' (variants A, B, C) with planted answers:
    B gets the most clicks, C the most conversions, A the most revenue per recipient."""
    add_users(ws, profiles(3000))
    c = campaign(
        "w",
        variants=(email("A"), email("B"), email("C")),
        winner_test=WinnerTest(0.5, 24, "clicked"),
        goal=Goal("Charged", 24, "revenue"),
    )
    p = plan(ws, c, LD)
    send(ws, p, "w-test")
    sent = ws.sql(
        "SELECT user_id, variant, message_key, ts FROM events WHERE event = 'Notification Sent'"
    )
    _answers(
        ws, sent, {"A": (0.10, 0.05, 100.0), "B": (0.30, 0.05, 10.0), "C": (0.12, 0.20, 10.0)}, 1
    )
    return ws, c


def _truth(ws) -> pd.DataFrame:
    """Per-variant click rate, conversion rate and revenue per recipient, by pandas."""
    ev = ws.sql("SELECT user_id, event, ts, variant, revenue FROM events")
    sent = ev[ev["event"] == "Notification Sent"].set_index("user_id")
    clicks = set(ev.loc[ev["event"] == "Notification Clicked", "user_id"])
    ch = ev[ev["event"] == "Charged"].join(sent["ts"].rename("sent_ts"), on="user_id")
    ch = ch[(ch["ts"] > ch["sent_ts"]) & (ch["ts"] <= ch["sent_ts"] + pd.Timedelta(hours=24))]
    per_user = pd.DataFrame(
        {
            "variant": sent["variant"],
            "clicked": sent.index.isin(list(clicks)),
            "converted": sent.index.isin(ch["user_id"]),
            "revenue": ch.groupby("user_id")["revenue"].sum().reindex(sent.index).fillna(0),
        }
    )
    return per_user


@pytest.mark.parametrize("metric", ["clicked", "converted", "revenue"])
def test_winner_metric_follows_the_goal(tested, metric):
    ws, c = tested
    truth = _truth(ws).groupby("variant")[metric].mean()
    want = {"clicked": "B", "converted": "C", "revenue": "A"}[metric]
    assert truth.idxmax() == want  # the planted answers do separate the metrics
    c2 = c.replace(winner_test=WinnerTest(0.5, 24, metric))
    w = choose_campaign_winner(ws, c2)
    assert w.variant == want and w.rule == "clevertap"
    assert f"{truth.max():.4g}" in w.reason
    p2 = plan(ws, c2, LATER)
    assert p2.phase == "winner" and p2.winner == want
    f = p2.to_pandas()
    assert set(f.loc[f["decision"] == "send", "variant"]) == {want}


def test_statistical_rule_on_conversions(tested):
    ws, c = tested
    per_user = _truth(ws)
    w = choose_campaign_winner(
        ws, c.replace(winner_test=WinnerTest(0.5, 24, "converted", "statistical"))
    )
    # independent check: C vs A is significant after Holm over the two comparisons, B vs A not
    n = per_user.groupby("variant")["converted"].agg(["sum", "count"])

    def p_value(v):
        table = [[n.loc[v, "sum"], n.loc[v, "count"] - n.loc[v, "sum"]],
                 [n.loc["A", "sum"], n.loc["A", "count"] - n.loc["A", "sum"]]]  # fmt: skip
        return stats.chi2_contingency(table, correction=False).pvalue

    assert p_value("C") < 0.05 / 2 and p_value("B") > 0.05
    assert w.variant == "C" and w.rule == "statistical" and "significantly better" in w.reason
    # revenue per recipient: A (the baseline) earns most, so nothing beats it: A stays
    r = choose_campaign_winner(
        ws, c.replace(winner_test=WinnerTest(0.5, 24, "revenue", "statistical"))
    )
    assert r.variant == "A" and "keeping control" in r.reason


def test_revenue_metric_needs_a_revenue_property():
    with pytest.raises(SpecError) as info:
        campaign(
            variants=(email("A"), email("B")),
            winner_test=WinnerTest(metric="revenue"),
            goal=Goal("Charged", 24, None),
        )
    assert info.value.field == "winner_test.metric"
    with pytest.raises(SpecError, match="'converted', 'revenue'") as info:
        WinnerTest(metric="opens")
    assert info.value.field == "winner_test.metric"


@pytest.mark.slow
@pytest.mark.parametrize("metric, rule", [("converted", "statistical"), ("revenue", "clevertap")])
def test_planted_best_variant_wins_on_the_simulator(ws, metric, rule):
    simulate_into(ws, n_users=10_000, days=14, seed=21, conversion_rate=0.9)
    world = load_world(ws)
    world.plant_variant_effects("sim-w", {"A": 1.0, "B": 1.0, "C": 3.0})
    world.save(ws.path / "world.json")
    c = Campaign(
        id="sim-w",
        channel="push",
        variants=tuple(Variant(v, {"title": f"Offer {v}", "body": "Hi"}) for v in "ABC"),
        schedule=Schedule("one_time", at="2026-01-12T18:00:00Z"),
        respect_global_control=False,
        goal=Goal("Charged", 24, "revenue"),
        winner_test=WinnerTest(0.6, 24, metric, rule),
    )
    p = plan(ws, c, "2026-01-12T12:00:00Z")
    r = send(ws, p, "sim-w-test")
    respond(ws, r.run_key)
    assert p.phase == "test" and r.sent > 2000
    w = choose_campaign_winner(ws, c)
    assert w.variant == "C", w.reason
    p2 = plan(ws, c, "2026-01-14T12:00:00Z")
    assert p2.winner == "C"
