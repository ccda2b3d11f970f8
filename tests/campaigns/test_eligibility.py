"""Eligibility first, then assignment: control groups are drawn among the users the
channel reaches, and later suppressions apply to both arms alike (control users record
what would have suppressed them)."""

from __future__ import annotations

import pandas as pd

from engagelab.campaigns import Campaign, Delivery, FrequencyCap, Variant, plan, send
from engagelab.campaigns.global_control import set_global_control
from engagelab.experiments import campaign_split, global_control
from tests.campaigns.conftest import add_users, profiles

LD = "2026-02-02T09:00:00Z"
PUSH = {"title": "Sale", "body": "Hello"}


def push(id: str = "p", **kw) -> Campaign:
    kw.setdefault("control_percent", 20)
    return Campaign(id=id, channel="push", variants=(Variant("A", PUSH), Variant("B", PUSH)), **kw)


def half_unreachable(n: int = 2000) -> pd.DataFrame:
    df = profiles(n)
    df["optout_push"] = False
    df.loc[df.index % 4 == 1, "push_token"] = None  # a quarter without a token
    df.loc[df.index % 4 == 2, "optout_push"] = True  # a quarter opted out of push
    return df


def test_control_groups_hold_out_reachable_users_only(ws):
    df = half_unreachable()
    add_users(ws, df)
    set_global_control(ws, 0.05, salt="g")
    f = plan(ws, push(), LD).to_pandas().set_index("user_id")
    ok = df.set_index("user_id")
    reachable = ok["push_token"].notna() & ~ok["optout_push"]
    held = f.index[f["decision"] == "control"]
    assert len(held) > 150 and reachable.loc[held].all()  # on main: about half unreachable
    # everyone the channel cannot reach is suppressed with the reach reason, control or not
    assert set(f.loc[~reachable, "reason"]) == {"unreachable", "opted_out"}
    # assignment among the eligible is the same deterministic hash as before
    elig = f.index[reachable.loc[f.index].to_numpy()]
    glob = global_control(pd.Series(elig), "g", 0.05)
    assert set(f.loc[elig[glob], "reason"]) == {"global_control"}
    arm = campaign_split(pd.Series(elig), "p", ["A", "B"], None, 0.2)
    rest = ~glob
    want = pd.Series(arm[rest], index=elig[rest])
    got = f.loc[elig[rest]]
    assert ((want == "control") == (got["reason"] == "control")).all()
    assert (got.loc[want != "control", "variant"] == want[want != "control"]).all()
    share = (got["reason"] == "control").mean()
    assert abs(share - 0.2) < 0.04


def test_later_suppressions_apply_to_the_control_group_as_would_be(ws):
    add_users(ws, profiles(400))
    cut = push("cut", delivery=Delivery(cut_off="2026-02-02T08:00:00Z"))
    f = plan(ws, cut, LD).to_pandas()
    assert set(f.loc[f["decision"] != "control", "reason"]) == {"cut_off"}
    ctrl = f[f["decision"] == "control"]
    assert len(ctrl) > 40 and (ctrl["would_be"] == "cut_off").all()
    assert (ctrl["reason"] == "control").all()  # still held out, still reported as control
    assert f.loc[f["decision"] != "control", "would_be"].isna().all()


def test_caps_count_for_control_users_too(ws):
    add_users(ws, profiles(400))
    first = Campaign(id="first", channel="push", variants=(Variant("A", PUSH),))
    send(ws, plan(ws, first, LD), "first-1")  # everyone got a push today
    capped = push("capped", delivery=Delivery(caps=(FrequencyCap(1, 1, "days", "calendar"),)))
    f = plan(ws, capped, "2026-02-02T10:00:00Z").to_pandas()
    ctrl = f[f["decision"] == "control"]
    assert set(f.loc[f["decision"] != "control", "reason"]) == {"frequency_cap"}
    assert len(ctrl) > 40 and (ctrl["would_be"] == "frequency_cap").all()
    # without a cap nobody would have been suppressed
    free = plan(ws, push("free"), "2026-02-02T10:00:00Z").to_pandas()
    assert free["would_be"].isna().all() and (free["decision"] != "suppressed").all()
