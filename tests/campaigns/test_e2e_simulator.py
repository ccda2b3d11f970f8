"""End to end on the simulator: a 3-variant e-mail with planted click effects and a 10%
control group → the report's per-variant uplift recovers the planted effects.

The reference is computed independently from the world's documented response model
(``engagelab.simulate._respond``): P(conversion caused by the message) =
deliver x view x hour_factor(local send hour, preferred hour) x (churned factor) x
min(1, click x planted multiplier) x conversion_rate, averaged over each variant's
sent users, times (1 - the control group's organic goal rate) for overlap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engagelab.campaigns import Campaign, Goal, Schedule, Variant, campaign_report, plan, send
from engagelab.simulate import CHANNEL_RATES, respond
from engagelab.simulate._respond import CHURNED_VIEW_FACTOR, hour_factor
from engagelab.simulate.worlds import load_world, simulate_into

EFFECTS = {"A": 1.0, "B": 2.0, "C": 3.0}
CONV = 0.9


@pytest.mark.slow
def test_report_uplift_recovers_planted_variant_effects(ws):
    simulate_into(ws, n_users=24_000, days=21, seed=7, conversion_rate=CONV)
    world = load_world(ws)
    world.plant_variant_effects("e2e", EFFECTS)
    world.save(ws.path / "world.json")
    c = Campaign(
        id="e2e",
        channel="email",
        variants=tuple(
            Variant(v, {"from": "shop@example.com", "subject": f"Offer {v}", "text": "Hi"})
            for v in EFFECTS
        ),
        schedule=Schedule("one_time", at="2026-01-12T18:00:00Z"),
        control_percent=10,
        respect_global_control=False,
        labels=("Offer",),
        goal=Goal("Charged", 24, "revenue"),
    )
    p = plan(ws, c, "2026-01-12T12:00:00Z", run_key="e2e-1")
    r = send(ws, p, batch_size=20_000)
    respond(ws, r.run_key)
    assert r.sent == p.reach > 10_000
    rep = campaign_report(ws, alpha=0.01)
    row = rep.table.set_index("campaign_id").loc["e2e"]
    f = p.to_pandas()
    assert row["sent"] == p.reach and row["control_users"] == (f["decision"] == "control").sum()

    truth = world.truth.set_index("user_id")
    sent = f[f["decision"] == "send"].join(truth[["preferred_hour", "churn_day"]], on="user_id")
    local = sent["send_at_local"]
    hour = local.dt.hour + local.dt.minute / 60
    day = (local.dt.normalize() - pd.Timestamp(world.config.start)).dt.days
    churned = day.to_numpy() >= sent["churn_day"].fillna(np.inf).to_numpy()
    deliver, view, click = CHANNEL_RATES["email"]
    base = (
        deliver
        * view
        * hour_factor(hour.to_numpy(), sent["preferred_hour"].to_numpy())
        * np.where(churned, CHURNED_VIEW_FACTOR, 1.0)
    )
    organic = row["goal_rate_control"]
    var = rep.variants.set_index("variant")
    lifts = {}
    for v, mult in EFFECTS.items():
        m = (sent["variant"] == v).to_numpy()
        expected = float(np.mean(base[m] * min(1.0, click * mult) * CONV)) * (1 - organic)
        lo, hi = var.loc[v, "uplift_ci_low"], var.loc[v, "uplift_ci_high"]
        assert lo <= expected <= hi, (v, expected, lo, hi)
        lifts[v] = var.loc[v, "uplift"]
    assert lifts["A"] < lifts["B"] < lifts["C"]
    # the click rates follow the planted multipliers (ratio to A within 25%)
    cr = var["clicked"] / var["sent"]
    assert cr["B"] / cr["A"] == pytest.approx(EFFECTS["B"], rel=0.25)
    assert cr["C"] / cr["A"] == pytest.approx(EFFECTS["C"], rel=0.25)
    # conversions are click-through here; revenue is the converted Charged events' revenue
    assert row["conversions_ct"] > 0 and row["revenue"] > 0
    assert set(rep.daily["campaign_id"]) == {"e2e"} and rep.daily["sent"].sum() == p.reach
