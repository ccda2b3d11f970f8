"""``CampaignReports``: the consolidated campaign report with quick filters, sorting,
per-variant / per-day drill-down and CSV export.

The widget is thin: every table it shows comes from
:func:`engagelab.campaigns.campaign_report` called with the filters set in the widget
(channel, label, status, date range, text); sorting is a stable sort of that table by
the chosen column; "Export CSV" writes the table shown (filtered and sorted) under
``ws.path / "outputs"`` and shows the path. Errors (a bad date, a failing query) show on
the widget's error line.

The table is formatted for reading, within the widget's width: headers in words, rates
as percentages, counts with thousands separators, conversions as "click-through /
view-through", and the uplift over the control group in percentage points with its
interval, green when the interval is above zero, red when below, grey otherwise
(:func:`campaign_table_html`). The exported CSV keeps the raw columns.

Example (headless)::

    >>> import tempfile
    >>> from engagelab import Workspace
    >>> from engagelab.simulate.worlds import simulate_into
    >>> from engagelab.campaigns import Campaign, Variant, plan, send
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = simulate_into(ws, n_users=200, days=7, seed=1)
    >>> c = Campaign(id="hello", channel="push", variants=(Variant("A", {"title": "Hi", "body": "B"}),))
    >>> _ = send(ws, plan(ws, c, "2026-01-08T09:00:00Z"))
    >>> cr = CampaignReports(ws)
    >>> cr.table_df["campaign_id"].tolist(), int(cr.table_df["sent"].iloc[0]) > 0
    (['hello'], True)
    >>> cr.channel.value = "email"
    >>> len(cr.table_df)
    0
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any, cast

import ipywidgets as w
import pandas as pd
import traitlets

from engagelab.campaigns import campaign_report, list_campaigns
from engagelab.channels import CHANNELS
from engagelab.errors import SpecError

from ._format import COLOURS, percent, verdict, words
from ._guard import ErrorLine, guarded

__all__ = ["CampaignReports"]

#: columns of the main table, in display order
COLUMNS = (
    "campaign_id", "name", "channel", "type", "status", "labels", "sent", "delivered",
    "viewed", "clicked", "unique_click_rate", "conversions_ct", "conversions_vt",
    "conversion_rate", "revenue", "control_users", "uplift", "uplift_ci_low", "uplift_ci_high",
)  # fmt: skip
STATUSES = ("draft", "active", "paused", "archived", "running", "sent")


def _error_line(self: CampaignReports) -> ErrorLine:
    return self.error_line


def _css(widget: w.Widget, name: str) -> w.Widget:
    widget.add_class(f"el-cr-{name}")
    return widget


class CampaignReports(w.VBox):
    """Campaign report table with quick filters, sort, drill-down and CSV export.

    Args:
        ws: the :class:`~engagelab.Workspace`.

    Attributes:
        report: the :class:`~engagelab.campaigns.CampaignReport` for the current filters.
        table_df: the campaign table shown (filtered by the core, sorted here).
        variants_df, daily_df, suppression_df: drill-down of the selected campaign.
        export_path: the last CSV written (observable; "" before any export).
    """

    export_path = traitlets.Unicode("")

    def __init__(self, ws: Any):
        super().__init__()
        _css(self, "reports")
        self.ws = ws
        self.error_line = ErrorLine("el-cr-error")
        self.report: Any = None
        self.table_df = pd.DataFrame(columns=list(COLUMNS))
        self.variants_df = pd.DataFrame()
        self.daily_df = pd.DataFrame()
        self.suppression_df = pd.DataFrame()
        self._busy = False
        self._cache: dict[str, Any] = {}  # filters -> report, until the next refresh()

        self.channel = _css(w.Dropdown(options=[("any channel", "")] + [(c, c) for c in CHANNELS],
                                       value="", description="channel"), "channel")  # fmt: skip
        self.label = _css(
            w.Dropdown(options=[("any label", "")], value="", description="label"), "label"
        )
        self.status = _css(w.Dropdown(options=[("any status", "")] + [(s, s) for s in STATUSES],
                                      value="", description="status"), "status")  # fmt: skip
        self.since = _css(w.Text(value="", placeholder="YYYY-MM-DD", description="from"), "since")
        self.until = _css(
            w.Text(value="", placeholder="YYYY-MM-DD (excl.)", description="until"), "until"
        )
        self.text = _css(
            w.Text(value="", placeholder="id or name contains", description="search"), "text"
        )
        self.sort = _css(
            w.Dropdown(options=list(COLUMNS), value="campaign_id", description="sort by"), "sort"
        )
        self.descending = _css(w.ToggleButtons(options=[("asc", False), ("desc", True)], value=False),
                               "order")  # fmt: skip
        self.refresh_button = _css(w.Button(description="Refresh"), "refresh")
        self.summary = _css(w.HTML(""), "summary")
        self.table = _css(w.HTML(""), "table")
        self.campaign = _css(w.Dropdown(options=[], description="drill down"), "campaign")
        self.variants = _css(w.HTML(""), "variants")
        self.daily = _css(w.HTML(""), "daily")
        self.suppression = _css(w.HTML(""), "suppression")
        self.export_button = _css(w.Button(description="Export CSV", tooltip="write the table shown"),
                                  "export")  # fmt: skip
        self.export_status = _css(w.HTML(""), "export-path")

        for box in (self.channel, self.label, self.status, self.since, self.until, self.text):
            box.observe(self._filters_changed, names="value")
        for box in (self.sort, self.descending):
            box.observe(self._sort_changed, names="value")
        self.campaign.observe(self._campaign_changed, names="value")
        self.refresh_button.on_click(self._refresh_clicked)
        self.export_button.on_click(self._export_clicked)
        self.children = [
            w.HBox([self.channel, self.label, self.status]),
            w.HBox([self.since, self.until, self.text]),
            w.HBox([self.sort, self.descending, self.refresh_button, self.export_button]),
            self.error_line,
            self.export_status,
            self.summary,
            self.table,
            self.campaign,
            w.HTML("<b>Per variant</b>"),
            self.variants,
            w.HTML("<b>Per day</b>"),
            self.daily,
            w.HTML("<b>Suppression reasons</b>"),
            self.suppression,
        ]
        self.refresh()

    # ------------------------------------------------------------------ public
    @property
    def filters(self) -> dict[str, Any]:
        """The keyword arguments passed to ``campaign_report`` (raises on a bad date)."""
        out: dict[str, Any] = {}
        for key in ("channel", "label", "status"):
            if getattr(self, key).value:
                out[key] = getattr(self, key).value
        for key in ("since", "until"):
            raw = getattr(self, key).value.strip()
            if raw:
                out[key] = _date(key, raw)
        if self.text.value.strip():
            out["text"] = self.text.value.strip()
        return out

    @property
    def error(self) -> str:
        """The error shown in the widget ("" when none)."""
        return self.error_line.text

    def refresh(self) -> None:
        """Reload labels and recompute the report for the current filters.

        Reports are kept per filter setting until the next refresh (the "Refresh" button),
        so flipping a filter back and forth does not recompute them.
        """
        self._cache.clear()
        labels = sorted({x for ls in list_campaigns(self.ws)["labels"] for x in ls})
        keep = self.label.value
        self._busy = True
        try:
            self.label.options = [("any label", "")] + [(x, x) for x in labels]
            self.label.value = keep if keep in labels else ""
        finally:
            self._busy = False
        self._compute()

    def export(self, path: str | Path | None = None) -> Path:
        """Write the table shown as CSV (default ``ws.path/outputs/campaign_report_<time>.csv``)."""
        if path is None:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = Path(self.ws.path) / "outputs" / f"campaign_report_{stamp}.csv"
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.table_df.to_csv(p, index=False)
        self.export_path = str(p)
        self.export_status.value = (
            f"wrote {len(self.table_df)} rows to <code>{html.escape(str(p))}</code>"
        )
        return p

    # --------------------------------------------------------------- internals
    def _compute(self) -> None:
        try:
            filters = self.filters
            key = repr(sorted(filters.items()))
            if key not in self._cache:
                self._cache[key] = campaign_report(self.ws, **filters)
            self.report = self._cache[key]
        except Exception as exc:
            self.report = None
            self.table_df = pd.DataFrame(columns=list(COLUMNS))
            self.table.value = ""
            self.summary.value = ""
            self._set_campaigns([])
            self.error_line.show(exc)
            return
        self.error_line.clear()
        self._show_table()

    def _show_table(self) -> None:
        t = self.report.table
        cols = [c for c in COLUMNS if c in t.columns]
        self.table_df = t[cols].sort_values(self.sort.value, ascending=not self.descending.value,
                                            kind="stable", na_position="last",
                                            ignore_index=True)  # fmt: skip
        sent = int(self.table_df["sent"].sum()) if len(self.table_df) else 0
        self.summary.value = f"<b>{len(self.table_df)}</b> campaigns, <b>{sent:,}</b> messages sent"
        self.table.value = campaign_table_html(self.table_df)
        self._set_campaigns(self.table_df["campaign_id"].tolist())

    def _set_campaigns(self, ids: list[str]) -> None:
        keep = self.campaign.value
        self._busy = True
        try:
            self.campaign.options = ids
            self.campaign.value = keep if keep in ids else (ids[0] if ids else None)
        finally:
            self._busy = False
        self._drill()

    def _drill(self) -> None:
        cid = self.campaign.value
        empty = pd.DataFrame()
        if self.report is None or cid is None:
            self.variants_df = self.daily_df = self.suppression_df = empty
        else:
            self.variants_df = _rows(self.report.variants, cid)
            self.daily_df = _rows(self.report.daily, cid)
            self.suppression_df = _rows(self.report.suppression, cid)
        for box, df in ((self.variants, self.variants_df), (self.daily, self.daily_df),
                        (self.suppression, self.suppression_df)):  # fmt: skip
            box.value = frame_html(df) if len(df) else "<i>none</i>"

    @guarded(_error_line)
    def _filters_changed(self, _change: Any) -> None:
        if not self._busy:
            self._compute()

    @guarded(_error_line)
    def _sort_changed(self, _change: Any) -> None:
        if self.report is not None:
            self._show_table()

    @guarded(_error_line)
    def _campaign_changed(self, _change: Any) -> None:
        if not self._busy:
            self._drill()

    @guarded(_error_line)
    def _refresh_clicked(self, _button: Any) -> None:
        self.refresh()

    @guarded(_error_line)
    def _export_clicked(self, _button: Any) -> None:
        self.export_status.value = ""
        self.export()

    def __repr__(self) -> str:
        return f"CampaignReports({len(self.table_df)} campaigns; filters={self.filters if not self.error else '?'})"


def _rows(df: pd.DataFrame, cid: str) -> pd.DataFrame:
    if df is None or df.empty or "campaign_id" not in df.columns:
        return pd.DataFrame()
    return df[df["campaign_id"] == cid].drop(columns="campaign_id").reset_index(drop=True)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


_CELL = "padding:2px 6px;white-space:nowrap"
_NUM = _CELL + ";text-align:right"


def _missing(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _count(v: Any) -> str:
    return "" if _missing(v) else f"{int(v):,}"


def _points(v: Any) -> str:
    return "—" if _missing(v) else percent(v, signed=True).replace("%", " pp")


def uplift_verdict(low: Any, high: Any) -> str:
    """``'win'`` when the uplift interval is above zero, ``'loss'`` below, else ``'neutral'``."""
    if _missing(low) or _missing(high):
        return "neutral"
    significant = float(low) > 0 or float(high) < 0
    return verdict(lift=float(low) + float(high), significant=significant)


def _uplift_cell(r: Any) -> str:
    if _missing(r.uplift):
        return f"<td style='{_NUM};color:{COLOURS['neutral']}'>no control group</td>"
    mark = uplift_verdict(r.uplift_ci_low, r.uplift_ci_high)
    return (
        f"<td class='el-cr-uplift el-cr-{mark}' style='{_NUM};color:{COLOURS[mark]}'>"
        f"<b>{_points(r.uplift)}</b> [{_points(r.uplift_ci_low)}, {_points(r.uplift_ci_high)}]</td>"
    )


def campaign_table_html(df: pd.DataFrame) -> str:
    """The campaign table as people read it, fitting the widget (about 1,200 px): one row
    per campaign, name and id together, rates as percentages, the uplift with its interval
    and colour."""
    heads = ("Campaign", "Channel", "Type", "Status", "Labels", "Sent", "Delivered", "Viewed",
             "Clicked", "Click rate", "Conversions (click / view)", "Conversion rate",
             "Revenue", "Control users", "Uplift vs control [interval]")  # fmt: skip
    rows = []
    for r in df.itertuples(index=False):
        name = "" if _missing(r.name) else str(r.name)
        labels = "" if _missing(r.labels) else r.labels
        labels = ", ".join(map(str, labels)) if isinstance(labels, list | tuple) else str(labels)
        cells = [
            f"<td style='{_CELL}'><b>{html.escape(name or str(r.campaign_id))}</b>"
            f"<br><code style='font-size:85%'>{html.escape(str(r.campaign_id))}</code></td>",
            *(f"<td style='{_CELL}'>{html.escape(words(str(v)).lower() if k != 'channel' else str(v))}</td>"
              for k, v in (("channel", r.channel), ("type", r.type), ("status", r.status))),
            f"<td style='padding:2px 6px'>{html.escape(labels)}</td>",
            *(f"<td style='{_NUM}'>{_count(v)}</td>" for v in (r.sent, r.delivered, r.viewed, r.clicked)),
            f"<td style='{_NUM}'>{percent(None if _missing(r.unique_click_rate) else r.unique_click_rate)}</td>",
            f"<td style='{_NUM}'>{_count(r.conversions_ct)} / {_count(r.conversions_vt)}</td>",
            f"<td style='{_NUM}'>{percent(None if _missing(r.conversion_rate) else r.conversion_rate)}</td>",
            f"<td style='{_NUM}'>{'' if _missing(r.revenue) else f'{float(cast(float, r.revenue)):,.2f}'}</td>",
            f"<td style='{_NUM}'>{_count(r.control_users)}</td>",
            _uplift_cell(r),
        ]  # fmt: skip
        rows.append("<tr class='el-cr-row'>" + "".join(cells) + "</tr>")
    ths = "".join(f"<th style='padding:2px 6px;text-align:left'>{h}</th>" for h in heads)
    return (
        "<div class='el-cr-table-box' style='max-width:100%;overflow-x:auto'>"
        "<table class='el-cr-rows' style='border-collapse:collapse;font-size:12px'>"
        f"<thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def frame_html(df: pd.DataFrame) -> str:
    """A drill-down table: headers in words, rates as percentages, counts with separators."""
    ths = "".join(f"<th style='padding:2px 6px;text-align:left'>{html.escape(words(c))}</th>"
                  for c in df.columns)  # fmt: skip
    rows = []
    for r in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, r, strict=True):
            if _missing(v):
                text = ""
            elif c.endswith("rate") or c.endswith("_share"):
                text = percent(float(v))
            elif isinstance(v, bool):
                text = "yes" if v else "no"
            elif isinstance(v, int) or (hasattr(v, "dtype") and "int" in str(v.dtype)):
                text = f"{int(v):,}"
            elif isinstance(v, float):
                text = f"{v:,.4g}"
            else:
                text = str(v)
            cells.append(f"<td style='{_CELL}'>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table class='el-cr-drill' style='border-collapse:collapse;font-size:12px'>"
        f"<thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _date(name: str, raw: str) -> dt.datetime:
    """An ISO date (midnight UTC) or date-time (UTC unless it says otherwise)."""
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise SpecError(name, raw, "must be an ISO date like 2026-01-31 or a date-time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
