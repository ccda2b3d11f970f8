"""Reach rules of the channels, as the seed platform describes them: in-app, app inbox and
native display reach users of the app (an app install, not a push token) whatever their
push opt-out; web pop-ups and exit intent reach web users."""

from __future__ import annotations

import pandas as pd
import pytest

from engagelab.campaigns import Campaign, Variant, plan, send
from engagelab.schema import REACH_RULES
from engagelab.segments import Segment, did
from tests.campaigns.conftest import add_users, profiles

LD = "2026-01-15T09:00:00Z"
MSG = {"title": "New", "body": "Hello"}
APP_CHANNELS = ("in_app", "app_inbox", "native_display")
WEB_CHANNELS = ("web_popup", "web_exit_intent")


def camp(channel: str, **kw) -> Campaign:
    return Campaign(id=f"reach-{channel}", channel=channel, variants=(Variant("A", MSG),), **kw)


def reasons(ws, c: Campaign) -> dict[str, str | None]:
    return plan(ws, c, LD).to_pandas().set_index("user_id")["reason"].to_dict()


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from engagelab import Workspace
    from engagelab.simulate.worlds import simulate_into

    ws = Workspace.create(tmp_path_factory.mktemp("reach") / "ws")
    simulate_into(ws, n_users=1_500, days=14, seed=7, start="2026-01-01")
    yield ws
    ws.close()


def test_a_7_day_active_audience_is_reached_in_app_whatever_its_push_opt_out(sim):
    active = Segment(did("App Launched", within_days=7), name="active_7d")
    push = plan(sim, camp("push", audience=active), LD).to_pandas().set_index("user_id")
    # the audience has users push cannot reach: opted out, or no push token
    assert push["reason"].value_counts().get("opted_out", 0) > 20
    assert push["reason"].value_counts().get("unreachable", 0) > 50
    lost = set(push.index[push["reason"].isin(["opted_out", "unreachable"])])
    for channel in APP_CHANNELS:
        p = plan(sim, camp(channel, audience=active), LD)
        df = p.to_pandas().set_index("user_id")
        assert set(df.index) == set(push.index), channel
        assert p.reasons() == {}, channel  # nobody opted out or unreachable
        assert (df.loc[sorted(lost), "decision"] == "send").all(), channel
        assert df["to"].str.startswith("app-").all(), channel  # the install is the address
    prof = sim.sql("SELECT user_id, push_token, optout_push FROM profiles")
    opted = prof[prof["optout_push"].fillna(False).astype(bool)]["user_id"]
    assert len(lost & set(opted)) > 20


def test_push_opted_out_users_get_the_in_app_message_in_their_inbox(ws):
    add_users(
        ws,
        pd.DataFrame(
            {
                "user_id": ["out", "in"],
                "push_token": ["tok-out", "tok-in"],
                "app_install_id": ["app-out", "app-in"],
                "optout_push": [True, False],
            }
        ),
    )
    p = plan(ws, camp("in_app"), LD)
    assert p.to_pandas()["decision"].tolist() == ["send", "send"]
    send(ws, p, "reach-in_app-1")
    live = ws.inbox("out", "2026-01-15T09:00:05Z")
    assert [m.payload["title"] for m in live] == ["New"]


@pytest.mark.parametrize("channel", APP_CHANNELS)
def test_app_identity_without_a_push_token_reaches_the_app_channels(ws, channel):
    add_users(
        ws,
        pd.DataFrame(
            {
                "user_id": ["app_only", "push_only", "neither", "web_only"],
                "push_token": [None, "tok", None, None],
                "app_install_id": ["app-1", None, " ", None],
                "web_visitor_id": [None, None, None, "web-1"],
                "optout_push": [True, True, None, None],
            }
        ),
    )
    df = plan(ws, camp(channel), LD).to_pandas().set_index("user_id")
    assert df["reason"].to_dict() == {
        "app_only": None,
        "push_only": None,  # a push token proves an install
        "neither": "unreachable",
        "web_only": "unreachable",
    }
    assert df.loc["app_only", "to"] == "app-1" and df.loc["push_only", "to"] == "tok"
    if channel == "app_inbox":
        send(ws, plan(ws, camp(channel), LD), "inbox-1")
        assert len(ws.inbox("app_only", "2026-01-15T09:00:05Z")) == 1
        assert len(ws.inbox("neither", "2026-01-15T09:00:05Z")) == 0


@pytest.mark.parametrize("channel", WEB_CHANNELS)
def test_web_pop_ups_reach_web_users_only(ws, channel):
    add_users(
        ws,
        pd.DataFrame(
            {
                "user_id": ["visitor", "subscriber", "app_user", "mail_only"],
                "email": [None, None, None, "m@shop.example"],
                "push_token": [None, None, "tok", None],
                "app_install_id": [None, None, "app-1", None],
                "webpush_subscription": [None, "https://push/sub/1", None, None],
                "web_visitor_id": ["web-1", None, None, None],
                "optout_web_push": [True, True, None, None],
            }
        ),
    )
    assert reasons(ws, camp(channel)) == {
        "visitor": None,
        "subscriber": None,  # a web push subscription proves a visiting browser
        "app_user": "unreachable",
        "mail_only": "unreachable",
    }


def test_workspaces_without_app_identities_fall_back_to_the_push_token(ws):
    # data with no app_install_id column at all (e.g. an older workspace or real data
    # that only records push tokens): a push token proves an install
    add_users(ws, profiles(3).assign(push_token=["t0", None, "t2"], optout_push=True))
    assert "app_install_id" not in ws.engine.refresh().columns.get("profiles", {})
    assert reasons(ws, camp("in_app")) == {"u00000": None, "u00001": "unreachable", "u00002": None}
    assert reasons(ws, camp("push")) == {
        "u00000": "opted_out",
        "u00001": "opted_out",
        "u00002": "opted_out",
    }


def test_every_channel_has_one_documented_rule():
    from engagelab.schema import CHANNELS

    assert set(REACH_RULES) == set(CHANNELS)
    for c in APP_CHANNELS:
        assert REACH_RULES[c].optout is None and REACH_RULES[c].field == "app_install_id"
    for c in WEB_CHANNELS:
        assert REACH_RULES[c].field == "web_visitor_id"
    assert REACH_RULES["push"].optout == "optout_push"
    assert all(r.rule for r in REACH_RULES.values())


def test_the_readme_table_documents_every_rule():
    import re
    from pathlib import Path

    from engagelab.schema import CHANNEL_DELIVERY

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = text.split("### Channels and who they reach", 1)[1].split("\n\n")[2]
    seen = set()
    for line in table.splitlines()[2:]:
        names, delivery, fields, optout, _ = (c.strip() for c in line.strip("|").split("|"))
        for name in re.findall(r"`(\w+)`", names):
            rule = REACH_RULES[name]
            assert delivery == CHANNEL_DELIVERY[name], name
            assert tuple(re.findall(r"`(\w+)`", fields))[: len(rule.fields)] == rule.fields, name
            assert optout == (f"`{rule.optout}`" if rule.optout else "—"), name
            seen.add(name)
    assert seen == set(REACH_RULES)
