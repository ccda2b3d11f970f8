"""The best_time policy plugged into engagelab.campaigns' send-time hook."""

from __future__ import annotations

import pandas as pd

from engagelab.besttime import BestTimeOptions, register_policy, send_times
from engagelab.campaigns import Campaign, Delivery, Variant, plan


def test_campaign_plan_uses_best_time_slots(sim_ws):
    opts = BestTimeOptions(mode="bayes", window=("09:00", "21:00"))
    register_policy("best_time", opts, sim_ws)
    c = Campaign(
        id="bt-int",
        channel="push",
        variants=[Variant("A", {"title": "Hi", "body": "there"})],
        delivery=Delivery(send_time_policy="best_time"),
    )
    p = plan(sim_ws, c, "2026-02-12T00:00Z").to_pandas()
    sent = p[p["decision"] == "send"].set_index("user_id")
    assert len(sent) > 0 and (sent["note"] == "best_time").all()
    users = sim_ws.sql("SELECT user_id, timezone FROM profiles")
    ref = send_times(sim_ws, users, "2026-02-12", opts, now="2026-02-12T00:00Z").set_index(
        "user_id"
    )
    got = pd.to_datetime(sent["send_at"], utc=True)
    want = ref.loc[sent.index, "send_at_utc"]
    assert (got.to_numpy() == pd.to_datetime(want, utc=True).to_numpy()).all()
    local = sent["send_at_local"].astype(str).str.slice(11, 16)
    assert local.between("09:00", "21:00").all()
