"""Campaign report on hand-made events, checked against hand-worked numbers and an
independent unpooled-z interval (scipy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from engagelab.campaigns import Campaign, Goal, campaign_report, save_campaign
from tests.campaigns.conftest import campaign, email

T = pd.Timestamp("2026-03-02 10:00", tz="UTC")


def sysev(rows):
    df = pd.DataFrame(
        rows,
        columns=[
            "user_id",
            "event",
            "ts",
            "campaign_id",
            "variant",
            "message_key",
            "control_group",
            "reason",
            "revenue",
        ],
    )
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    df["labels"] = [["L1"] if e == "Notification Sent" else None for e in df["event"]]
    df["channel"] = "email"
    return df


def m(minutes):
    return T + pd.Timedelta(minutes=minutes)


def test_hand_worked_report(ws, tmp_path):
    save_campaign(
        ws,
        campaign(
            "rep",
            variants=(email("A"), email("B")),
            labels=("L1",),
            name="Report me",
            goal=Goal("Charged", 24, "revenue"),
        ),
    )
    save_campaign(
        ws,
        Campaign(
            id="other",
            channel="push",
            variants=({"name": "A", "content": {"title": "t", "body": "b"}},),
        ),
    )
    n = None
    ws.append(
        "events",
        sysev(
            [
                ("u1", "Notification Sent", T, "rep", "A", "k1", n, n, n),
                ("u2", "Notification Sent", T, "rep", "A", "k2", n, n, n),
                ("u3", "Notification Sent", T, "rep", "B", "k3", n, n, n),
                ("u4", "Control Group", T, "rep", n, n, "campaign", n, n),
                ("u5", "Control Group", T, "rep", n, n, "campaign", n, n),
                ("u7", "Control Group", T, "rep", n, n, "global", n, n),
                ("u6", "Notification Suppressed", T, "rep", n, n, n, "opted_out", n),
                ("u1", "Notification Delivered", m(1), "rep", "A", "k1", n, n, n),
                ("u2", "Notification Delivered", m(1), "rep", "A", "k2", n, n, n),
                ("u3", "Notification Delivered", m(1), "rep", "B", "k3", n, n, n),
                ("u1", "Notification Viewed", m(2), "rep", "A", "k1", n, n, n),
                ("u1", "Notification Clicked", m(3), "rep", "A", "k1", n, n, n),
                ("u1", "Charged", m(60), n, n, n, n, n, 10.0),
                ("u2", "Notification Viewed", m(2), "rep", "A", "k2", n, n, n),
                ("u2", "Charged", m(120), n, n, n, n, n, 5.0),
                ("u3", "Charged", m(30 * 60), n, n, n, n, n, 99.0),  # after the 24 h window
                ("u4", "Charged", m(180), n, n, n, n, n, 7.0),
                ("u1", "Charged", T - pd.Timedelta(hours=1), n, n, n, n, n, 1.0),  # before the send
            ]
        ),
    )
    rep = campaign_report(ws)
    t = rep.table.set_index("campaign_id")
    assert (
        list(t.index) == ["other", "rep"]
        and t.loc["other", "status"] == "draft"
        and t.loc["other", "sent"] == 0
    )
    r = t.loc["rep"]
    assert (r["channel"], r["type"], r["labels"], r["name"]) == (
        "email",
        "one_time",
        "L1",
        "Report me",
    )
    assert (r["sent"], r["delivered"], r["viewed"], r["clicked"]) == (3, 3, 2, 1)
    assert r["unique_click_rate"] == pytest.approx(1 / 3)
    assert (r["conversions_ct"], r["conversions_vt"]) == (1, 1)
    assert r["conversion_rate"] == pytest.approx(2 / 3) and r["revenue"] == pytest.approx(15.0)
    assert r["control_users"] == 2 and r["goal_rate_control"] == pytest.approx(0.5)
    assert r["uplift"] == pytest.approx(2 / 3 - 1 / 2)
    v = rep.variants.set_index("variant")
    assert v.loc["A", "sent"] == 2 and v.loc["B", "sent"] == 1 and v.loc["A", "revenue"] == 15.0
    assert rep.suppression.to_dict("records") == [
        {"campaign_id": "rep", "reason": "opted_out", "users": 1}
    ]
    assert rep.daily.loc[0, "day"] == T.date()
    # filters
    assert list(campaign_report(ws, channel="push").table["campaign_id"]) == ["other"]
    assert list(campaign_report(ws, label="L1").table["campaign_id"]) == ["rep"]
    assert list(campaign_report(ws, text="REPORT").table["campaign_id"]) == ["rep"]
    assert (
        campaign_report(ws, since="2026-03-03").table.set_index("campaign_id").loc["rep", "sent"]
        == 0
    )
    # exports
    csv = rep.to_csv(tmp_path / "r.csv")
    back = pd.read_csv(csv)
    assert list(back["campaign_id"]) == ["other", "rep"] and int(back.loc[1, "sent"]) == 3
    html = rep.to_html(tmp_path / "r.html")
    assert "Suppression reasons" in html and (tmp_path / "r.html").read_text() == html
    assert "el-campaign-report" in rep._repr_html_() and "2 campaigns" in repr(rep)


def test_uplift_interval_matches_unpooled_z(ws):
    save_campaign(ws, campaign("z"))
    rng = np.random.default_rng(5)
    rows = []
    n_t, n_c = 400, 300
    conv_t = rng.random(n_t) < 0.30
    conv_c = rng.random(n_c) < 0.20
    for i in range(n_t):
        rows.append((f"t{i}", "Notification Sent", T, "z", "A", f"k{i}", None, None, None))
        if conv_t[i]:
            rows.append((f"t{i}", "Charged", m(90), None, None, None, None, None, 1.0))
    for i in range(n_c):
        rows.append((f"c{i}", "Control Group", T, "z", None, None, "campaign", None, None))
        if conv_c[i]:
            rows.append((f"c{i}", "Charged", m(90), None, None, None, None, None, 1.0))
    ws.append("events", sysev(rows))
    r = campaign_report(ws, alpha=0.05).table.set_index("campaign_id").loc["z"]
    p1, p0 = conv_t.mean(), conv_c.mean()
    se = np.sqrt(p1 * (1 - p1) / n_t + p0 * (1 - p0) / n_c)
    z = stats.norm.ppf(0.975)
    assert r["uplift"] == pytest.approx(p1 - p0)
    assert r["uplift_ci_low"] == pytest.approx(p1 - p0 - z * se, rel=1e-6)
    assert r["uplift_ci_high"] == pytest.approx(p1 - p0 + z * se, rel=1e-6)
