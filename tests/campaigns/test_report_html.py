"""The designed HTML campaign report: numbers formatted from the report's data, the uplift
drawn and coloured, and the charts (timeline, suppression reasons, variants forest)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from engagelab.campaigns import Goal, campaign_report, save_campaign
from engagelab.campaigns.report_html import (
    fmt_count,
    fmt_money,
    fmt_percent,
    fmt_points,
    uplift_class,
    uplift_svg,
)
from tests.campaigns.conftest import campaign, email
from tests.campaigns.test_report import m, sysev

T = pd.Timestamp("2026-03-02 10:00", tz="UTC")


def test_formatting():
    assert fmt_percent(0.041564) == "4.2 %"
    assert fmt_percent(0.00042) == "0.042 %" and fmt_percent(0) == "0.0 %"
    assert fmt_percent(float("nan")) == "—" and fmt_count(None) == "—"
    assert fmt_points(-0.2) == "−20.0 pp" and fmt_points(0.0123) == "+1.2 pp"
    assert fmt_count(1200) == "1,200" and fmt_money(12345.5) == "12,345.50"
    assert uplift_class(0.02, 0.01, 0.03) == "gain" and uplift_class(0.02, -0.01, 0.05) == "neutral"
    assert (
        uplift_class(float("nan"), None, None) == "" and uplift_svg(None, None, None, scale=1) == ""
    )


@pytest.fixture
def planted(ws):
    """'loss': 1,200 sent convert at 10 % against a control group at 30 % (a significant
    loss); 'flat': 300 sent at 20 % against 300 controls at 20 %; suppressed users."""
    save_campaign(
        ws, campaign("loss", variants=(email("A"), email("B")), goal=Goal("Charged", 24, "revenue"))
    )
    save_campaign(ws, campaign("flat", goal=Goal("Charged", 24, "revenue")))
    n, rows = None, []
    for i in range(1200):
        day = T + pd.Timedelta(days=i % 3)
        rows.append((f"l{i}", "Notification Sent", day, "loss", "AB"[i % 2], f"lk{i}", n, n, n))
        if i % 24 == 0:
            rows.append((f"l{i}", "Notification Clicked", day + pd.Timedelta(minutes=5), "loss",
                         "AB"[i % 2], f"lk{i}", n, n, n))  # fmt: skip
        if i % 10 == 0:
            rows.append((f"l{i}", "Charged", day + pd.Timedelta(minutes=90), n, n, n, n, n, 2.5))
    for i in range(400):
        rows.append((f"lc{i}", "Control Group", T, "loss", n, n, "campaign", n, n))
        if i % 10 < 3:
            rows.append((f"lc{i}", "Charged", m(90), n, n, n, n, n, 2.5))
    for i in range(300):
        rows.append((f"f{i}", "Notification Sent", T, "flat", "A", f"fk{i}", n, n, n))
        rows.append((f"fc{i}", "Control Group", T, "flat", n, n, "campaign", n, n))
        if i % 5 == 0:
            rows.append((f"f{i}", "Charged", m(60), n, n, n, n, n, 1.0))
            rows.append((f"fc{i}", "Charged", m(60), n, n, n, n, n, 1.0))
    for i, reason in enumerate(["opted_out"] * 7 + ["frequency_cap"] * 3):
        rows.append((f"s{i}", "Notification Suppressed", T, "loss", n, n, n, reason, n))
    ws.append("events", sysev(rows))
    return campaign_report(ws)


def _cells(html: str, campaign_id: str) -> list[str]:
    """The text of the cells of the campaigns-table row of ``campaign_id``."""
    table = html[html.index("el-campaigns") :]
    table = table[: table.index("</table>")]
    row = next(r for r in table.split("<tr>") if f"<td>{campaign_id}</td>" in r)
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]


def test_numbers_in_the_html_are_the_reports_data(planted, tmp_path):
    rep = planted
    html = rep.to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == html
    t = rep.table.set_index("campaign_id")
    cells = _cells(html, "loss")
    r = t.loc["loss"]
    assert r["sent"] == 1200 and r["goal_rate_sent"] == pytest.approx(0.1)
    for value in (fmt_count(r["sent"]), fmt_percent(r["unique_click_rate"]), fmt_percent(r["goal_rate_sent"]),
                  fmt_percent(r["goal_rate_control"]), fmt_money(r["revenue"]), fmt_count(r["control_users"])):  # fmt: skip
        assert value in cells, (value, cells)
    assert "1,200" in cells and "10.0 %" in cells and "30.0 %" in cells and "4.2 %" in cells
    uplift = next(c for c in cells if c.startswith("−20.0 pp"))
    assert fmt_points(r["uplift_ci_low"]) in uplift and fmt_points(r["uplift_ci_high"]) in uplift
    # headers in words, no raw floats such as 0.041667
    assert "<th class='el-num'>Unique click rate</th>" in html and "Goal rate, control" in html
    assert not re.search(r">0\.\d{4,}<", html) and "unique_click_rate" not in html


def test_a_significant_loss_is_red_and_a_flat_result_grey(planted):
    html = planted.to_html()
    loss_row = html[html.index("<td>loss</td>") :].split("</tr>")[0]
    flat_row = html[html.index("<td>flat</td>") :].split("</tr>")[0]
    assert "<td class='el-uplift-cell el-loss'>" in loss_row
    assert "<svg class='el-uplift el-loss'" in loss_row and "#cf222e" in loss_row
    assert "el-uplift-cell el-neutral" in flat_row and "#cf222e" not in flat_row
    t = planted.table.set_index("campaign_id")
    assert t.loc["loss", "uplift_ci_high"] < 0 < t.loc["flat", "uplift_ci_high"]


def test_every_chart_is_embedded_and_the_page_is_self_contained(planted):
    html = planted.to_html()
    for kind in ("timeline", "suppression", "forest"):
        fig = re.search(
            rf"<figure class='el-chart el-chart-{kind}'><img alt='[^']+' src='data:image/png;base64,",
            html,
        )
        assert fig, kind
    assert "<script" not in html and not re.search(r"(src|href)=['\"]https?:", html)
    sup = html[html.index("el-suppression") :]
    assert "opted out" in sup and ">7<" in sup and "frequency cap" in sup
    assert (
        html.count("<svg class='el-uplift") == 2 + 3
    )  # two campaigns; variants loss A, loss B, flat A


def test_an_empty_workspace_still_reports(ws):
    html = campaign_report(ws).to_html()
    assert "No messages sent yet." in html and "No user was suppressed." in html
    assert "nothing yet" in html
