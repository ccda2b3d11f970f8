"""The campaign report as a designed, self-contained HTML page, and its building blocks.

:meth:`CampaignReport.to_html <engagelab.campaigns.report.CampaignReport.to_html>` calls
:func:`report_html`; the pieces are public so other front ends (the campaign widgets)
show the same numbers the same way:

* formatting: :func:`fmt_percent` (``0.041564`` -> ``'4.2 %'``), :func:`fmt_points`
  (uplift in percentage points), :func:`fmt_count` (thousands separators),
  :func:`fmt_money`; :data:`COLUMN_TITLES` names every report column in words;
* uplift: :func:`uplift_class` (``'gain'`` / ``'loss'`` when the interval excludes zero,
  else ``'neutral'``) and :func:`uplift_svg`, the interval drawn as a small inline SVG bar
  coloured by that class;
* tables and charts: :func:`campaigns_table`, :func:`variants_table`,
  :func:`timeline_chart` (sends and outcomes per day), :func:`suppression_chart`
  (suppression reasons as bars), :func:`variants_forest` (each variant's uplift with its
  interval). Charts are PNG images embedded as data URIs: no file, script or CDN.

Example:
    >>> fmt_percent(0.041564), fmt_points(-0.0123), fmt_count(12345), fmt_money(1234.5)
    ('4.2 %', '−1.2 pp', '12,345', '1,234.50')
    >>> uplift_class(-0.05, -0.08, -0.02), uplift_class(0.01, -0.01, 0.03)
    ('loss', 'neutral')
    >>> "el-loss" in uplift_svg(-0.05, -0.08, -0.02, scale=0.1)
    True
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

__all__ = [
    "COLOURS",
    "COLUMN_TITLES",
    "REPORT_CSS",
    "campaigns_table",
    "fmt_count",
    "fmt_money",
    "fmt_percent",
    "fmt_points",
    "report_html",
    "suppression_chart",
    "timeline_chart",
    "uplift_class",
    "uplift_scale",
    "uplift_svg",
    "variants_forest",
    "variants_table",
]

#: Report columns in words.
COLUMN_TITLES: dict[str, str] = {
    "campaign_id": "Campaign",
    "name": "Name",
    "channel": "Channel",
    "type": "Schedule",
    "status": "Status",
    "labels": "Labels",
    "variant": "Variant",
    "day": "Day",
    "sent": "Sent",
    "delivered": "Delivered",
    "viewed": "Viewed",
    "clicked": "Clicked",
    "unique_click_rate": "Unique click rate",
    "conversions_ct": "Click-through conversions",
    "conversions_vt": "View-through conversions",
    "conversion_rate": "Conversion rate",
    "revenue": "Revenue",
    "goal_rate_sent": "Goal rate, sent",
    "control_users": "Control users",
    "goal_rate_control": "Goal rate, control",
    "uplift": "Uplift vs control",
    "reason": "Reason",
    "users": "Users",
}

#: Colour of each uplift class (and of the charts' series).
COLOURS: dict[str, str] = {
    "gain": "#1a7f37",
    "loss": "#cf222e",
    "neutral": "#6e7781",
    "sent": "#0969da",
    "clicked": "#8250df",
    "conversions": "#1a7f37",
}

_COUNTS = {"sent", "delivered", "viewed", "clicked", "conversions_ct", "conversions_vt",
           "control_users", "users"}  # fmt: skip
_RATES = {"unique_click_rate", "conversion_rate", "goal_rate_sent", "goal_rate_control"}
_MINUS = "−"


def _missing(x: Any) -> bool:
    try:
        return x is None or pd.isna(x) or (isinstance(x, float) and not math.isfinite(x))
    except (TypeError, ValueError):
        return False


def fmt_percent(x: Any, digits: int = 1) -> str:
    """A share as a percentage: ``0.041564`` -> ``'4.2 %'``; tiny non-zero shares keep two
    significant digits (``0.00042`` -> ``'0.042 %'``); missing -> ``'—'``."""
    if _missing(x):
        return "—"
    v = float(x) * 100
    if v != 0 and abs(v) < 10 ** (-digits):
        return f"{v:.2g} %".replace("-", _MINUS)
    return f"{v:.{digits}f} %".replace("-", _MINUS)


def fmt_points(x: Any, digits: int = 1) -> str:
    """A difference of shares in percentage points, signed: ``0.0123`` -> ``'+1.2 pp'``."""
    if _missing(x):
        return "—"
    v = float(x) * 100
    text = f"{v:+.{digits}f} pp"
    return text.replace("-", _MINUS)


def fmt_count(x: Any) -> str:
    """A count with thousands separators: ``12345`` -> ``'12,345'``."""
    return "—" if _missing(x) else f"{int(x):,}"


def fmt_money(x: Any) -> str:
    """An amount with thousands separators and two decimals."""
    return "—" if _missing(x) else f"{float(x):,.2f}".replace("-", _MINUS)


def _cell(column: str, value: Any) -> str:
    if column in _COUNTS:
        return fmt_count(value)
    if column in _RATES:
        return fmt_percent(value)
    if column == "revenue":
        return fmt_money(value)
    if column == "day" and not _missing(value):
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    return "" if _missing(value) else str(value)


# ------------------------------------------------------------------------------ uplift
def uplift_class(estimate: Any, low: Any, high: Any) -> str:
    """``'gain'`` when the interval lies above zero, ``'loss'`` below it, ``'neutral'``
    when it contains zero, ``''`` without an estimate."""
    if _missing(estimate):
        return ""
    if not _missing(low) and float(low) > 0:
        return "gain"
    if not _missing(high) and float(high) < 0:
        return "loss"
    return "neutral"


def uplift_scale(frames: Iterable[pd.DataFrame]) -> float:
    """A shared half-width for :func:`uplift_svg`: the largest |bound| in the frames."""
    m = 0.0
    for df in frames:
        for col in ("uplift", "uplift_ci_low", "uplift_ci_high"):
            if col in df:
                v = pd.to_numeric(df[col], errors="coerce").abs().max()
                if not _missing(v):
                    m = max(m, float(v))
    return m or 0.01


def uplift_svg(estimate: Any, low: Any, high: Any, *, scale: float, width: int = 140,
               height: int = 16) -> str:  # fmt: skip
    """The uplift and its interval as an inline SVG bar around a zero line, coloured by
    :func:`uplift_class`; ``scale`` is the |uplift| at either edge."""
    cls = uplift_class(estimate, low, high)
    if not cls:
        return ""
    colour = COLOURS[cls]

    def x(v: Any) -> float:
        if _missing(v):
            return 0.0 if float(estimate) < 0 else float(width)
        return max(0.0, min(float(width), width / 2 + float(v) / scale * (width / 2 - 2)))

    lo, hi, est = x(low), x(high), x(estimate)
    mid = height / 2
    tip = html.escape(f"{fmt_points(estimate)} [{fmt_points(low)}, {fmt_points(high)}]")
    return (
        f"<svg class='el-uplift el-{cls}' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{tip}'><title>{tip}</title>"
        f"<line x1='{width / 2:.1f}' y1='0' x2='{width / 2:.1f}' y2='{height}' stroke='#999' "
        "stroke-dasharray='2,2'/>"
        f"<rect x='{min(lo, hi):.1f}' y='{mid - 3:.1f}' width='{max(abs(hi - lo), 1):.1f}' "
        f"height='6' rx='2' fill='{colour}' fill-opacity='0.35'/>"
        f"<circle cx='{est:.1f}' cy='{mid:.1f}' r='3.5' fill='{colour}'/></svg>"
    )


def _uplift_cell(row: Mapping[Any, Any], scale: float) -> str:
    est, lo, hi = row.get("uplift"), row.get("uplift_ci_low"), row.get("uplift_ci_high")
    cls = uplift_class(est, lo, hi)
    if not cls:
        return "<td class='el-uplift-cell el-none'>—</td>"
    text = f"{fmt_points(est)} <span class='el-ci'>[{fmt_points(lo)}, {fmt_points(hi)}]</span>"
    return (
        f"<td class='el-uplift-cell el-{cls}'>{uplift_svg(est, lo, hi, scale=scale)}"
        f"<span class='el-uplift-text'>{text}</span></td>"
    )


# ------------------------------------------------------------------------------ tables
def _table(df: pd.DataFrame, columns: list[str], cls: str, scale: float | None = None) -> str:
    cols = [c for c in columns if c in df.columns or c == "uplift"]
    head = "".join(
        f"<th class='{'el-num' if c in _COUNTS | _RATES | {'revenue'} else ''}'>"
        f"{html.escape(COLUMN_TITLES.get(c, c))}</th>"
        for c in cols
    )
    rows = []
    for rec in df.to_dict("records"):
        tds = []
        for c in cols:
            if c == "uplift":
                tds.append(_uplift_cell(rec, scale or uplift_scale([df])))
            else:
                num = " class='el-num'" if c in _COUNTS | _RATES | {"revenue"} else ""
                tds.append(f"<td{num}>{html.escape(_cell(c, rec.get(c)))}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    if not rows:
        rows.append(f"<tr><td colspan='{len(cols)}' class='el-empty'>nothing yet</td></tr>")
    return (
        f"<table class='el-report-table {cls}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def campaigns_table(table: pd.DataFrame, scale: float | None = None) -> str:
    """The campaigns table (``CampaignReport.table``) as formatted HTML."""
    cols = ["campaign_id", "name", "channel", "status", "labels", "sent", "delivered", "viewed",
            "clicked", "unique_click_rate", "conversion_rate", "revenue", "goal_rate_sent",
            "control_users", "goal_rate_control", "uplift"]  # fmt: skip
    return _table(table, cols, "el-campaigns", scale)


def variants_table(variants: pd.DataFrame, scale: float | None = None) -> str:
    """The variants drill-down (``CampaignReport.variants``) as formatted HTML."""
    cols = ["campaign_id", "variant", "sent", "delivered", "viewed", "clicked",
            "unique_click_rate", "conversion_rate", "revenue", "uplift"]  # fmt: skip
    return _table(variants, cols, "el-variants", scale)


# ------------------------------------------------------------------------------ charts
def _figure(fig: Any, kind: str, caption: str) -> str:
    from engagelab.figures import png_data_uri

    return (
        f"<figure class='el-chart el-chart-{kind}'><img alt='{html.escape(caption)}' "
        f"src='{png_data_uri(fig)}'/><figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _note(kind: str, text: str) -> str:
    return f"<p class='el-chart el-chart-{kind} el-no-data'>{html.escape(text)}</p>"


def timeline_chart(daily: pd.DataFrame) -> str:
    """Sends (bars) and clicks and conversions (lines) per day, over all campaigns."""
    if daily.empty or "sent" not in daily or int(daily["sent"].sum()) == 0:
        return _note("timeline", "No messages sent yet.")
    from engagelab.figures import new_figure

    d = daily.assign(conversions=daily["conversions_ct"] + daily["conversions_vt"])
    d = d.groupby("day", sort=True)[["sent", "clicked", "conversions"]].sum()
    x = pd.to_datetime(pd.Series(d.index)).dt.strftime("%m-%d").tolist()
    fig = new_figure(figsize=(7.5, 3))
    ax = fig.add_subplot()
    ax.bar(x, d["sent"], color=COLOURS["sent"], alpha=0.35, label="sent")
    ax.plot(x, d["clicked"], marker="o", color=COLOURS["clicked"], label="clicked")
    ax.plot(x, d["conversions"], marker="o", color=COLOURS["conversions"], label="conversions")
    ax.set_ylabel("messages")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize="small", frameon=False)
    if len(x) > 10:
        ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    return _figure(fig, "timeline", "Sends, clicks and conversions per day (all campaigns)")


def suppression_chart(suppression: pd.DataFrame) -> str:
    """Suppression reasons as horizontal bars (users, summed over campaigns)."""
    if suppression.empty:
        return _note("suppression", "No user was suppressed.")
    from engagelab.figures import new_figure

    s = suppression.groupby("reason")["users"].sum().sort_values()
    fig = new_figure(figsize=(7.5, 0.4 * len(s) + 1))
    ax = fig.add_subplot()
    bars = ax.barh(
        [str(r).replace("_", " ") for r in s.index], s.to_numpy(), color=COLOURS["neutral"]
    )
    ax.bar_label(bars, labels=[f"{int(v):,}" for v in s.to_numpy()], padding=3, fontsize="small")
    ax.set_xlabel("users")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _figure(fig, "suppression", "Why users were not sent a message")


def variants_forest(variants: pd.DataFrame) -> str:
    """Each variant's uplift over its campaign's control group with its interval."""
    need = {"uplift", "uplift_ci_low", "uplift_ci_high"}
    v = variants.dropna(subset=["uplift"]) if need <= set(variants.columns) else variants.iloc[0:0]
    if v.empty:
        return _note("forest", "No variant has a control group to compare with yet.")
    from engagelab.figures import new_figure

    fig = new_figure(figsize=(7.5, 0.45 * len(v) + 1.2))
    ax = fig.add_subplot()
    y = list(range(len(v)))[::-1]
    for yi, r in zip(y, v.to_dict("records"), strict=True):
        colour = COLOURS[uplift_class(r["uplift"], r["uplift_ci_low"], r["uplift_ci_high"])]
        lo = r["uplift_ci_low"] if not _missing(r["uplift_ci_low"]) else r["uplift"]
        hi = r["uplift_ci_high"] if not _missing(r["uplift_ci_high"]) else r["uplift"]
        ax.errorbar(r["uplift"] * 100, yi, xerr=[[(r["uplift"] - lo) * 100], [(hi - r["uplift"]) * 100]],
                    fmt="o", color=colour, capsize=3)  # fmt: skip
    ax.axvline(0, color="#999", lw=1, ls="--")
    ax.set_yticks(y, [f"{r['campaign_id']} · {r['variant']}" for r in v.to_dict("records")])
    ax.set_xlabel("uplift vs control (percentage points)")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _figure(fig, "forest", "Uplift of each variant over its campaign's control group")


# ------------------------------------------------------------------------------ the page
REPORT_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1f2328}
h1{margin-bottom:4px} h2{margin-top:28px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.el-cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.el-card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:120px}
.el-card b{display:block;font-size:1.4em}
.el-report-table{border-collapse:collapse;font-size:13px;margin:8px 0}
.el-report-table th{background:#f6f8fa;text-align:left;padding:4px 8px;border-bottom:1px solid #d0d7de}
.el-report-table td{padding:4px 8px;border-bottom:1px solid #eaeef2;white-space:nowrap}
.el-num{text-align:right} .el-ci{color:#57606a;font-size:11px}
.el-uplift{vertical-align:middle;margin-right:6px}
td.el-gain .el-uplift-text{color:#1a7f37} td.el-loss .el-uplift-text{color:#cf222e}
td.el-neutral .el-uplift-text{color:#57606a}
.el-chart img{max-width:100%} figcaption{color:#57606a;font-size:12px}
.el-no-data{color:#57606a;font-style:italic}
"""


def _cards(table: pd.DataFrame) -> str:
    sent = int(table["sent"].sum()) if len(table) else 0
    conv = int((table["conversions_ct"] + table["conversions_vt"]).sum()) if len(table) else 0
    rev = float(table["revenue"].sum()) if len(table) else 0.0
    items = [("Campaigns", fmt_count(len(table))), ("Messages sent", fmt_count(sent)),
             ("Conversions", fmt_count(conv)), ("Conversion rate", fmt_percent(conv / sent if sent else None)),
             ("Revenue", fmt_money(rev))]  # fmt: skip
    return "<div class='el-cards'>" + "".join(
        f"<div class='el-card'>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in items
    ) + "</div>"  # fmt: skip


def report_html(report: Any, title: str = "Campaign report") -> str:
    """The whole report as one self-contained HTML page (inline CSS, SVG and PNG)."""
    scale = uplift_scale([report.table, report.variants])
    sup = report.suppression
    sup_table = _table(sup.assign(reason=sup["reason"].astype(str).str.replace("_", " ")),
                       ["campaign_id", "reason", "users"], "el-suppression")  # fmt: skip
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{REPORT_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _cards(report.table),
        "<h2>Campaigns</h2>",
        "<p class='el-legend'>Uplift, intention-to-treat: the goal rate of every user "
        "assigned to a sent arm (sent, or suppressed after assignment by caps, DND, "
        "throttle or expiry) minus the control group's (all of it), in percentage points, "
        "with its confidence interval; green = significant gain, red = significant loss, "
        "grey = not significant. The goal rate of sent users alone is descriptive "
        "(observational), not a causal comparison.</p>",
        campaigns_table(report.table, scale),
        "<h2>Sends and outcomes over time</h2>",
        timeline_chart(report.daily),
        "<h2>Variants</h2>",
        variants_forest(report.variants),
        variants_table(report.variants, scale),
        "<h2>Suppression reasons</h2>",
        suppression_chart(sup),
        sup_table,
        "</body></html>",
    ]
    return "\n".join(parts)
