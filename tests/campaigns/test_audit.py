"""Gaps found auditing issue 4: 29 February anniversaries, report CSV parts, cap channels."""

from __future__ import annotations

import pandas as pd
import pytest

from engagelab.campaigns import Schedule, campaign_report, plan, save_campaign, send
from engagelab.errors import ValidationError
from tests.campaigns.conftest import add_users, campaign, email, profiles


def test_leap_day_anniversary_comes_round_on_28_february(ws):
    add_users(
        ws,
        profiles(3).assign(
            created_at=pd.to_datetime(["2024-02-29", "2024-02-28", "2024-03-01"], utc=True)
        ),
    )
    c = campaign(
        "anniv", schedule=Schedule("on_date", date_property="created_at", anniversary=True)
    )

    def users(day):
        return sorted(plan(ws, c, f"{day}T05:00:00Z").to_pandas()["user_id"])

    assert users("2027-02-28") == ["u00000", "u00001"]  # no 29th in 2027
    assert users("2027-03-01") == ["u00002"]
    assert users("2028-02-28") == ["u00001"]  # 2028 has its own 29th
    assert users("2028-02-29") == ["u00000"]
    assert users("2100-02-28") == ["u00000", "u00001"]  # 2100 is not a leap year


def test_report_csv_parts(ws, tmp_path):
    save_campaign(ws, campaign("c"))
    add_users(ws, profiles(4))
    send(ws, plan(ws, campaign("c"), "2026-01-05T09:00:00Z"), "c-1")
    rep = campaign_report(ws)
    assert pd.read_csv(rep.to_csv(tmp_path / "t.csv"))["sent"].tolist() == [4]
    daily = pd.read_csv(rep.to_csv(tmp_path / "d.csv", part="daily"))
    assert daily[["day", "sent"]].values.tolist() == [["2026-01-05", 4]]
    variants = pd.read_csv(rep.to_csv(tmp_path / "v.csv", part="variants"))
    assert variants[["variant", "sent"]].values.tolist() == [["A", 4]]
    with pytest.raises(ValidationError, match="part == 'all'"):
        rep.to_csv(tmp_path / "x.csv", part="all")


def test_users_missing_a_variable_without_default_are_suppressed(ws):
    n = 40
    add_users(
        ws,
        profiles(n).assign(
            name=[None if i % 2 else f"N{i}" for i in range(n)],
            city=[None if i % 3 == 0 else "X" for i in range(n)],
        ),
    )
    c = campaign(
        "names",
        variants=(
            email("A", subject="Hi {{ profile.name }}"),  # fails without a name
            email("B", subject="Hi {{ profile.name | default('you') }} in {{ profile.city }}"),
        ),
    )
    f = plan(ws, c, "2026-01-05T09:00:00Z").to_pandas().set_index("user_id")
    need = {"A": ["name"], "B": ["city"]}
    prof = ws.sql("SELECT user_id, name, city FROM profiles").set_index("user_id")
    for u, row in f.iterrows():
        lacks = prof.loc[u, need[row["variant"]]].isna().any()
        assert (row["reason"] == "missing_variable") == lacks, u
        assert (row["decision"] == "send") != lacks, u
    assert set(f["variant"]) == {"A", "B"}
    assert 0 < (f["reason"] == "missing_variable").sum() < n
    # users who are sent render without error
    from engagelab.campaigns import preview

    for u in f.index[f["decision"] == "send"]:
        assert preview(ws, c, u)["subject"].startswith("Hi ")
    # a guarded variable never suppresses: {% if %} and `is defined` keep users
    guarded = campaign(
        "guarded",
        variants=(
            email(
                "A",
                subject="Hi{% if profile.name %} {{ profile.name }}{% endif %}"
                "{{ ' from ' ~ profile.city if profile.city is defined else '' }}",
            ),
        ),
    )
    assert plan(ws, guarded, "2026-01-05T09:00:00Z").reasons() == {}


#: channel -> (profile fields that make a user reachable, any one of them, the first set
#: being the address; opt-out flag or None), as the seed platform describes them: push on
#: the device token; in-app, app inbox and native display on an app install (a push token
#: proves one too), whatever the push opt-out; web push on its subscription; web pop-ups
#: on a web visitor (a web push subscription proves one too); webhooks on the user id;
#: e-mail and SMS on the address.
REACH = {
    "push": (("push_token",), "optout_push"),
    "in_app": (("app_install_id", "push_token"), None),
    "app_inbox": (("app_install_id", "push_token"), None),
    "native_display": (("app_install_id", "push_token"), None),
    "web_push": (("webpush_subscription",), "optout_web_push"),
    "web_popup": (("web_visitor_id", "webpush_subscription"), None),
    "web_exit_intent": (("web_visitor_id", "webpush_subscription"), None),
    "email": (("email",), "optout_email"),
    "sms": (("phone",), "optout_sms"),
    "webhook": (("user_id",), None),
}
CONTENT = {
    "email": {"from": "a@shop.example", "subject": "s", "text": "t"},
    "sms": {"text": "hi"},
    "webhook": {"url": "https://hooks.example/x"},
    "web_push": {"title": "t", "body": "b", "url": "https://shop.example/"},
}
OPTOUTS = ("optout_email", "optout_sms", "optout_push", "optout_web_push")


def test_the_reach_table_is_the_schemas():
    from engagelab.schema import REACH_RULES

    assert {c: (r.fields, r.optout) for c, r in REACH_RULES.items() if c in REACH} == REACH


@pytest.mark.parametrize("channel", sorted(REACH))
def test_reachability_and_opt_out_per_channel(ws, channel):
    from engagelab.campaigns import Campaign, Variant

    fields, optout = REACH[channel]
    cols = ["email", "phone", "push_token", "webpush_subscription"]
    cols += ["app_install_id", "web_visitor_id"]
    full = {c: f"x-{c}" for c in cols}
    full["email"] = "x-email@shop.example"  # a malformed address is invalid_header
    gone = {f: None for f in fields if f != "user_id"}
    rows = [
        {"user_id": "ok", **full},
        {"user_id": "no_address", **full, **gone},
        {"user_id": "blank", **full, **{f: " " for f in gone}},
        # every other channel's opt-out set: none of them blocks this channel
        {"user_id": "other_optouts", **full, **{o: o != optout for o in OPTOUTS}},
        {"user_id": "opted_out", **full, **({optout: True} if optout else {})},
    ]
    if len(fields) > 1:  # the fallback field alone reaches the user too
        rows.append({"user_id": "fallback", **full, fields[0]: None})
    add_users(ws, pd.DataFrame(rows))
    content = CONTENT.get(channel, {"title": "t", "body": "b"})
    c = Campaign(id=f"r-{channel}", channel=channel, variants=(Variant("A", content),))
    f = plan(ws, c, "2026-01-05T09:00:00Z").to_pandas().set_index("user_id")
    want = {
        "ok": None,
        "no_address": "unreachable" if gone else None,
        "blank": "unreachable" if gone else None,
        "other_optouts": None,
        "opted_out": "opted_out" if optout else None,
    }
    if len(fields) > 1:
        want["fallback"] = None
    assert f["reason"].to_dict() == want
    assert f.loc["ok", "to"] == ("ok" if fields == ("user_id",) else full[fields[0]])
    if len(fields) > 1:
        assert f.loc["fallback", "to"] == full[fields[1]]


def test_remarketing_audiences_match_on_any_identifier(ws):
    from engagelab.campaigns import Campaign, Variant

    add_users(
        ws,
        pd.DataFrame(
            {
                "user_id": ["both", "mail", "phone", "none"],
                "email": ["b@x.io", "m@x.io", None, " "],
                "phone": ["+4915100000001", None, "+4915100000002", None],
                "ad_consent": [True] * 4,  # without it nobody enters an ad audience
            }
        ),
    )
    for ids, reach in (
        (["email", "phone"], {"both", "mail", "phone"}),
        (["phone"], {"both", "phone"}),
        (["email"], {"both", "mail"}),
    ):
        c = Campaign(
            id="ads",
            channel="google_ads",
            variants=(Variant("A", {"audience_name": "a", "identifiers": ids}),),
        )
        f = plan(ws, c, "2026-01-05T09:00:00Z").to_pandas()
        assert set(f.loc[f["decision"] == "send", "user_id"]) == reach, ids
        assert (
            set(f.loc[f["reason"] == "unreachable", "user_id"])
            == {"both", "mail", "phone", "none"} - reach
        )
