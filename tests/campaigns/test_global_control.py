"""The global control: validation and warnings, the CLI, and the holdout uplift report
through the real planner and sender with a planted effect on the messaged users."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engagelab.campaigns import (
    GlobalControlWarning,
    Goal,
    get_global_control,
    global_control_report,
    plan,
    save_campaign,
    send,
    set_global_control,
)
from engagelab.errors import ValidationError
from engagelab.experiments import global_control
from tests.campaigns.conftest import add_users, campaign, profiles

LD = "2026-02-02T09:00:00Z"
BIN = Path(sys.executable).with_name("engagelab")


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.05, 0.15])
def test_usual_fractions_are_silent(ws, fraction):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_global_control(ws, fraction)
    assert get_global_control(ws) == (fraction, "global")


@pytest.mark.parametrize(
    ("fraction", "why"), [(0.005, "too few"), (0.2, "no messages"), (0.99, "no messages")]
)
def test_unusual_fractions_warn_and_name_the_range(ws, fraction, why):
    with pytest.warns(GlobalControlWarning, match=r"outside the usual 1%-15%") as rec:
        set_global_control(ws, fraction)
    assert why in str(rec[0].message) and f"{fraction:g}" in str(rec[0].message)
    assert get_global_control(ws)[0] == fraction


@pytest.mark.parametrize(
    ("fraction", "allowed"),
    [(1.0, "must be in [0, 1)"), (-0.1, "must be in [0, 1)"), (1e-5, "steps of 1/10,000"),
     ("5%", "must be a number"), (math.nan, "must be a number")],
)  # fmt: skip
def test_bad_fractions_name_the_field(ws, fraction, allowed):
    with pytest.raises(ValidationError, match="fraction") as e:
        set_global_control(ws, fraction)
    assert e.value.field == "fraction" and allowed in str(e.value)
    with pytest.raises(ValidationError, match="salt"):
        set_global_control(ws, 0.05, salt="")


def _world(ws, n=20_000, seed=1, optout=0.3, fraction=0.10):
    """Users, 30 % opted out of e-mail; one campaign planned and sent by the real code."""
    rng = np.random.default_rng(seed)
    df = profiles(n)
    df["optout_email"] = rng.random(n) < optout
    add_users(ws, df)
    set_global_control(ws, fraction, salt="s1")
    c = campaign("promo", goal=Goal("Purchase", 48.0))
    save_campaign(ws, c, status="active")
    p = plan(ws, c, LD, run_key="promo-1")
    assert send(ws, p, batch_size=5000).done
    return rng


def _plant(ws, rng, p_sent, p_other, hours=3):
    """Planted truth: a Purchase within the goal window, p_sent for users who were sent
    the message, p_other for everyone else (held out or suppressed)."""
    ev = ws.sql(
        "SELECT user_id, bool_or(event = 'Notification Sent') AS sent, min(ts) AS ts "
        "FROM events WHERE campaign_id = 'promo' GROUP BY ALL ORDER BY user_id"
    )
    conv = rng.random(len(ev)) < np.where(ev["sent"], p_sent, p_other)
    buy = pd.DataFrame(
        {
            "user_id": ev.loc[conv, "user_id"].to_numpy(),
            "event": "Purchase",
            "ts": ev.loc[conv, "ts"].to_numpy() + pd.Timedelta(hours=hours),
        }
    )
    ws.ingest(buy, table="events", quiet=True)
    return ev


def test_report_recovers_planted_intention_to_treat_uplift(ws):
    rng = _world(ws)
    ev = _plant(ws, rng, p_sent=0.15, p_other=0.10)
    rep = global_control_report(ws)
    t = rep.to_pandas().set_index("scope")
    assert list(t.index) == ["promo", "all campaigns"]
    row = t.loc["all campaigns"]
    # the arms are the hash itself: exactly the users the salt puts in the 10 %
    held = global_control(ev["user_id"], "s1", 0.10)
    assert row.holdout_users == held.sum() and row.messaged_users == (~held).sum()
    # truth: the share actually sent among the users not held out, times the planted 0.05
    sent_share = ev.loc[~held, "sent"].mean()
    truth = sent_share * 0.05
    assert 0.6 < sent_share < 0.8  # suppressions (opt-outs) dilute the intention-to-treat
    assert row.uplift_ci_low <= truth <= row.uplift_ci_high
    # reference: the unpooled z interval from the two arms' counts, computed here
    buyers = set(ws.sql("SELECT user_id FROM events WHERE event = 'Purchase'")["user_id"])
    conv = ev["user_id"].isin(buyers).to_numpy()
    p0, p1 = conv[held].mean(), conv[~held].mean()
    se = math.sqrt(p0 * (1 - p0) / held.sum() + p1 * (1 - p1) / (~held).sum())
    assert row.uplift == pytest.approx(p1 - p0, rel=1e-12)
    assert row.uplift_ci_high - row.uplift_ci_low == pytest.approx(2 * 1.959964 * se, rel=1e-5)
    # the per-campaign row is the same comparison here (one campaign, no campaign control)
    assert t.loc["promo"].uplift == pytest.approx(row.uplift, rel=1e-12)
    # the naive sent-vs-holdout comparison would claim the full 0.05: outside the interval
    assert conv[ev["sent"].to_numpy()].mean() - p0 > row.uplift_ci_high
    assert row.srm_p > 0.001 and row.excluded_users == 0
    text = repr(rep)
    assert "intention-to-treat" in text and "all campaigns (Purchase within 48 h)" in text
    assert "el-global-control-report" in rep._repr_html_()


def test_changed_salt_is_left_out_and_counted(ws):
    rng = _world(ws, n=3000)
    _plant(ws, rng, 0.2, 0.1)
    with pytest.warns(GlobalControlWarning):
        set_global_control(ws, 0.2, salt="other")
    row = global_control_report(ws).overall()
    assert row.excluded_users > 0 and "contradict the current global control" in row.note
    assert row.holdout_users + row.messaged_users + row.excluded_users == 3000


def test_report_without_campaigns_and_bad_options(ws):
    rep = global_control_report(ws, "Purchase")
    assert list(rep.table["scope"]) == ["all campaigns"]
    assert "no comparison yet" in rep.overall().note
    for kw, field in (({"window_hours": 0}, "window_hours"), ({"alpha": 2}, "alpha"),
                      ({"since": "yesterday-ish"}, "since")):  # fmt: skip
        with pytest.raises(ValidationError) as e:
            global_control_report(ws, "Purchase", **kw)
        assert e.value.field == field


def test_cli_set_and_show(ws, capsys):
    from engagelab.cli import main

    path = str(ws.path)
    ws.close()
    # the real executable once (the warning on stderr); the other forms in-process
    loud = subprocess.run(
        [str(BIN), "campaign", "global-control", "set", "0.3", "--salt", "s2", "-w", path],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loud.returncode == 0, loud.stderr
    assert "engagelab: warning: global control fraction 0.3" in loud.stderr
    assert "0.3" in loud.stdout and "s2" in loud.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the usual range: no warning at all
        assert (
            main(["campaign", "global-control", "set", "5%", "-w", path, "--format", "json"]) == 0
        )
    out = capsys.readouterr()
    assert json.loads(out.out)["fraction"] == 0.05 and out.err == ""
    for bad, allowed in (("lots", "FRACTION == 'lots'"), ("1.5", "fraction == 1.5")):
        assert main(["campaign", "global-control", "set", bad, "-w", path]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and allowed in lines[0]
    assert main(["campaign", "global-control", "show", "-w", path, "--event", "Purchase"]) == 0
    text = capsys.readouterr().out
    assert "5.00%" in text and "intention-to-treat" in text and "all campaigns" in text
    assert main(["campaign", "global-control", "show", "-w", path, "--format", "json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["salt"] == "s2" and js["report"][-1]["scope"] == "all campaigns"
    for bad, allowed in ((["--window-hours", "-2"], "--window-hours == -2.0, must be"),
                         (["--since", "soon"], "--since == 'soon'")):  # fmt: skip
        assert main(["campaign", "global-control", "show", "-w", path, *bad]) == 1
        assert allowed in capsys.readouterr().err


def test_differing_goals_need_an_event(ws, capsys):
    from engagelab.cli import main

    save_campaign(ws, campaign("a", goal=Goal("Purchase")), status="active")
    save_campaign(ws, campaign("b", goal=Goal("Signup")), status="active")
    with pytest.raises(ValidationError, match=r"event == None, must be given: the campaigns' "
                       r"goals differ \(Purchase, Signup\)"):  # fmt: skip
        global_control_report(ws)
    assert list(global_control_report(ws, "Signup").table["goal"]) == [
        "Purchase", "Signup", "Signup"
    ]  # fmt: skip
    path = str(ws.path)
    ws.close()
    assert main(["campaign", "global-control", "show", "-w", path]) == 1
    err = capsys.readouterr().err
    assert "--event == None, must be given" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_interval_coverage_over_planted_worlds(ws):
    """300 outcome worlds on one real plan and send (5,000 users, 30 % opted out): the
    all-campaigns interval covers the intention-to-treat truth (share sent among those
    not held out, times the planted 0.04) about 95 % of the time."""
    rng = _world(ws, n=5000, seed=7)
    ev = ws.sql(
        "SELECT user_id, bool_or(event = 'Notification Sent') AS sent, min(ts) AS ts "
        "FROM events WHERE campaign_id = 'promo' GROUP BY ALL ORDER BY user_id"
    )
    held = global_control(ev["user_id"], "s1", 0.10)
    sent = ev["sent"].to_numpy()
    truth = sent[~held].mean() * 0.04
    worlds, frames = 300, []
    for k in range(worlds):
        conv = rng.random(len(ev)) < np.where(sent, 0.14, 0.10)
        frames.append(
            pd.DataFrame(
                {
                    "user_id": ev.loc[conv, "user_id"].to_numpy(),
                    "event": f"Buy{k:03d}",
                    "ts": ev.loc[conv, "ts"].to_numpy() + pd.Timedelta(hours=2),
                }
            )
        )
    ws.ingest(pd.concat(frames, ignore_index=True), table="events", quiet=True)
    rows = [
        global_control_report(ws, f"Buy{k:03d}", window_hours=48).overall() for k in range(worlds)
    ]
    lo = np.array([r.uplift_ci_low for r in rows])
    hi = np.array([r.uplift_ci_high for r in rows])
    est = np.array([r.uplift for r in rows])
    cover = ((lo <= truth) & (truth <= hi)).mean()
    assert 0.92 <= cover <= 0.98, cover
    assert abs(est.mean() - truth) < 4 * est.std(ddof=1) / math.sqrt(worlds)
