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
