"""CampaignReports driven headless: filters, sort, drill-down and export must agree with
``campaign_report`` itself (called directly with the same filters) and with the ledger of
what was actually sent."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from engagelab.widgets.campaign_reports import COLUMNS, CampaignReports

from engagelab.campaigns import campaign_report


def _table(ws, **filters) -> pd.DataFrame:
    t = campaign_report(ws, **filters).table
    return t[list(COLUMNS)].sort_values("campaign_id", ignore_index=True)


def _same(shown: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected.reset_index(drop=True),
                                  check_dtype=False)  # fmt: skip


@pytest.fixture(scope="module")
def cr(sent_ws) -> CampaignReports:
    return CampaignReports(sent_ws)


def test_default_table_is_the_whole_report(cr, sent_ws):
    _same(cr.table_df, _table(sent_ws))
    assert cr.table_df["campaign_id"].tolist() == ["mail-onboarding", "push-late", "push-promo",
                                                   "sms-draft"]  # fmt: skip
    # the sent counts are what the simulator-answered sends put into the event store
    sent = sent_ws.sql("SELECT campaign_id, count(*) AS n FROM events "
                       "WHERE event = 'Notification Sent' GROUP BY ALL").set_index("campaign_id")["n"]  # fmt: skip
    shown = cr.table_df.set_index("campaign_id")["sent"]
    assert shown.drop("sms-draft").to_dict() == sent.to_dict()
    assert shown["sms-draft"] == 0
    assert "4</b> campaigns" in cr.summary.value
    assert "mail-onboarding" in cr.table.value and "el-cr-rows" in cr.table.value
    assert list(cr.label.options) == [("any label", ""), ("Onboarding", "Onboarding"),
                                      ("Promo", "Promo")]  # fmt: skip


@pytest.mark.parametrize(
    "setting, filters",
    [
        ({"channel": "email"}, {"channel": "email"}),
        ({"label": "Promo"}, {"label": "Promo"}),
        ({"status": "draft"}, {"status": "draft"}),
        ({"text": "PROMO"}, {"text": "PROMO"}),
        ({"since": "2026-01-11", "until": "2026-01-12"},
         {"since": dt.datetime(2026, 1, 11, tzinfo=dt.UTC), "until": dt.datetime(2026, 1, 12, tzinfo=dt.UTC)}),
    ],
)  # fmt: skip
def test_filters_agree_with_campaign_report(cr, sent_ws, setting, filters):
    for key, value in setting.items():
        getattr(cr, key).value = value
    try:
        assert cr.error == ""
        assert cr.filters == filters
        _same(cr.table_df, _table(sent_ws, **filters))
        assert len(cr.table_df) < 4 or "since" in filters
    finally:
        for key in setting:
            getattr(cr, key).value = ""
    assert len(cr.table_df) == 4  # back to the unfiltered report (kept, not recomputed)


def test_filter_results_by_hand(cr):
    cr.channel.value = "push"
    assert cr.table_df["campaign_id"].tolist() == ["push-late", "push-promo"]
    cr.channel.value = ""
    cr.label.value = "Promo"
    assert cr.table_df["campaign_id"].tolist() == ["mail-onboarding", "push-promo"]
    cr.label.value = ""
    cr.since.value, cr.until.value = "2026-01-13", ""
    t = cr.table_df.set_index("campaign_id")["sent"]
    assert t["push-late"] > 0 and t["push-promo"] == 0 and t["mail-onboarding"] == 0
    cr.since.value = ""


def test_sort_by_a_column_both_ways(cr, sent_ws):
    cr.sort.value = "sent"
    assert cr.table_df["sent"].is_monotonic_increasing
    cr.descending.value = True
    assert cr.table_df["sent"].is_monotonic_decreasing
    expected = _table(sent_ws).sort_values(
        "sent", ascending=False, kind="stable", ignore_index=True
    )
    _same(cr.table_df, expected)
    cr.sort.value = "uplift"  # NaNs (no control group) go last
    assert cr.table_df["campaign_id"].iloc[0] == "mail-onboarding"
    assert cr.table_df["uplift"].iloc[1:].isna().all()
    assert cr.campaign.options == tuple(cr.table_df["campaign_id"])
    cr.sort.value, cr.descending.value = "campaign_id", False


def test_drill_down_per_variant_and_day(cr, sent_ws):
    rep = campaign_report(sent_ws)
    cr.campaign.value = "mail-onboarding"
    v = rep.variants[rep.variants["campaign_id"] == "mail-onboarding"].drop(columns="campaign_id")
    _same(cr.variants_df, v)
    assert cr.variants_df["variant"].tolist() == ["A", "B"]
    assert (
        cr.variants_df["sent"].sum()
        == cr.table_df.set_index("campaign_id").loc["mail-onboarding", "sent"]
    )
    d = rep.daily[rep.daily["campaign_id"] == "mail-onboarding"].drop(columns="campaign_id")
    _same(cr.daily_df, d)
    assert [str(x) for x in cr.daily_df["day"]] == ["2026-01-11"]
    s = rep.suppression[rep.suppression["campaign_id"] == "mail-onboarding"].drop(
        columns="campaign_id"
    )
    _same(cr.suppression_df, s)
    assert set(cr.suppression_df["reason"]) <= {"opted_out", "unreachable"}
    cr.campaign.value = "sms-draft"
    assert cr.variants_df.empty and "<i>none</i>" in cr.variants.value


def test_export_writes_the_table_shown(cr, sent_ws):
    cr.channel.value = "push"
    cr.sort.value, cr.descending.value = "sent", True
    cr.export_button.click()
    assert cr.error == ""
    path = Path(cr.export_path)
    assert path.parent == Path(sent_ws.path) / "outputs" and path.suffix == ".csv"
    assert str(path) in html.unescape(cr.export_status.value)
    back = pd.read_csv(path)
    assert back["campaign_id"].tolist() == cr.table_df["campaign_id"].tolist()
    assert back["sent"].tolist() == cr.table_df["sent"].tolist()
    assert back["unique_click_rate"].tolist() == pytest.approx(
        cr.table_df["unique_click_rate"].tolist()
    )


def test_bad_date_shows_an_error_and_recovers(cr, sent_ws):
    cr.channel.value = ""
    cr.since.value = "last tuesday"
    assert (
        cr.error
        == "SpecError: since == 'last tuesday', must be an ISO date like 2026-01-31 or a date-time"
    )
    assert cr.table_df.empty and cr.table.value == ""
    cr.since.value = ""
    assert cr.error == "" and len(cr.table_df) == 4
    cr.refresh_button.click()  # recomputes from the store
    _same(cr.table_df.sort_values("campaign_id", ignore_index=True), _table(sent_ws))


def test_the_table_is_formatted_for_reading(cr):
    text = cr.table.value
    t = cr.table_df.set_index("campaign_id")
    for raw in (
        "campaign_id",
        "unique_click_rate",
        "conversions_ct",
        "uplift_ci_low",
        "control_users",
    ):
        assert raw not in text.split("<tbody>")[0], raw  # headers in words
    assert "Click rate" in text and "Uplift vs control [interval]" in text
    assert text.count("<th style") == 15  # 19 raw columns folded into 15 readable ones
    rate = t.loc["mail-onboarding", "unique_click_rate"]
    assert f">{100 * rate:.1f}%<" in text or f">{100 * rate:.2f}%<" in text
    up = t.loc["mail-onboarding"]
    assert np.isfinite(up["uplift"])  # a campaign with a control group
    cell = text.split("class='el-cr-uplift")[1].split("</td>")[0]
    assert f"<b>{100 * up['uplift']:+.2f} pp</b> [" in cell
    assert "no control group" in text  # the campaigns sent without one
    assert "max-width:100%" in text
    # drill-down tables: headers in words too
    cr.campaign.value = "mail-onboarding"
    assert "_" not in cr.variants.value.split("<tbody>")[0]


def test_uplift_colour_follows_its_interval():
    from engagelab.widgets.campaign_reports import campaign_table_html, uplift_verdict

    assert uplift_verdict(0.01, 0.05) == "win"
    assert uplift_verdict(-0.05, -0.01) == "loss"
    assert uplift_verdict(-0.01, 0.03) == "neutral"
    assert uplift_verdict(float("nan"), 0.03) == "neutral"
    row = {c: None for c in ("name", "channel", "type", "status", "labels", "sent", "delivered",
                             "viewed", "clicked", "unique_click_rate", "conversions_ct",
                             "conversions_vt", "conversion_rate", "revenue", "control_users")}  # fmt: skip
    row |= {"campaign_id": "c", "channel": "push", "type": "one_time", "status": "active",
            "sent": 1200, "uplift": -0.031, "uplift_ci_low": -0.05, "uplift_ci_high": -0.012}  # fmt: skip
    text = campaign_table_html(pd.DataFrame([row]))
    assert "el-cr-loss" in text and "color:#b00020" in text
    assert "<b>-3.10 pp</b> [-5.00 pp, -1.20 pp]" in text and ">1,200<" in text
    assert "one time" in text and ">None<" not in text and "nan" not in text.lower()
    row |= {"uplift": 0.031, "uplift_ci_low": 0.012, "uplift_ci_high": 0.05}
    assert "el-cr-win" in campaign_table_html(pd.DataFrame([row]))
