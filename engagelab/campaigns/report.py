"""Campaign reports: the consolidated table across campaigns, drill-downs and uplift.

Per campaign (and per variant, and per day of send) from the system events:

* ``sent``: 'Notification Sent' messages; ``delivered`` / ``viewed`` / ``clicked``:
  messages with such an answer (by message key); ``unique_click_rate``: users who
  clicked / users sent;
* conversions within the goal window (``goal.window_hours`` after the click or view):
  click-through (``conversions_ct``: clicked, then the goal event) and view-through
  (``conversions_vt``: viewed without a click-through conversion, then the goal
  event); ``conversion_rate`` = (ct + vt) / sent; ``revenue`` = the goal events'
  revenue property summed over those conversions;
* uplift, **intention-to-treat** (:data:`COMPARISON`): the share of users doing the goal
  event within the window after the (would-be) send time, every user *assigned* to a sent
  arm (sent, or suppressed after assignment: caps, DND, TTL, throttle, expiry, ...) versus
  every user of the campaign's control group ('Control Group' events, including those
  whose plan row says they ``would_be`` suppressed), with a confidence interval from
  :func:`engagelab.experiments.analyze_aggregates` (unpooled z; Fisher for tiny arms).
  Users suppressed *before* assignment (``opted_out``, ``no_ad_consent``,
  ``unreachable``: the control group is drawn among the eligible) are in neither arm.
  Sent users alone are a selected subset of the assigned (those no later check caught),
  so ``goal_rate_sent`` is descriptive, not a causal comparison with the control group.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from engagelab.campaigns.report_html import campaigns_table, report_html
from engagelab.campaigns.spec import Campaign
from engagelab.delivery import ledger as L
from engagelab.errors import ValidationError
from engagelab.schema import PRE_ASSIGNMENT_REASONS
from engagelab.validate import check_datetime

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = [
    "COMPARISON",
    "PRE_ASSIGNMENT_REASONS",
    "CampaignReport",
    "campaign_report",
    "choose_campaign_winner",
    "user_outcomes",
]

#: The rule every uplift of the report follows (its ``comparison`` column says so).
COMPARISON = "assigned (sent or suppressed after assignment) − control, intention-to-treat"


_OUTCOME_SQL = """
WITH sent AS (
  SELECT user_id, variant, message_key, min(ts) AS ref_ts, 'sent' AS grp FROM events
  WHERE event = 'Notification Sent' AND campaign_id = $c GROUP BY ALL
), ctrl AS (
  SELECT user_id, NULL AS variant, NULL AS message_key, min(ts) AS ref_ts, 'control' AS grp FROM events
  WHERE event = 'Control Group' AND campaign_id = $c AND control_group = 'campaign' GROUP BY ALL
), supp AS (
  SELECT user_id, variant, message_key, min(ts) AS ref_ts, 'suppressed' AS grp FROM events
  WHERE event = 'Notification Suppressed' AND campaign_id = $c AND {assigned}
    AND message_key IS NOT NULL
    AND message_key NOT IN (SELECT message_key FROM sent WHERE message_key IS NOT NULL)
  GROUP BY ALL
), base AS (SELECT * FROM sent UNION ALL SELECT * FROM supp UNION ALL SELECT * FROM ctrl),
ans AS (
  SELECT message_key,
    bool_or(event = 'Notification Delivered') AS delivered,
    min(CASE WHEN event = 'Notification Viewed' THEN ts END) AS view_ts,
    min(CASE WHEN event = 'Notification Clicked' THEN ts END) AS click_ts
  FROM events WHERE campaign_id = $c AND event IN ('Notification Delivered', 'Notification Viewed',
    'Notification Clicked') GROUP BY message_key
), goal AS (
  SELECT g.user_id, g.ts, {revenue} AS revenue FROM events AS g
  WHERE g.event = $goal AND g.user_id IN (SELECT user_id FROM base)
)
SELECT b.user_id, b.grp, b.variant, b.message_key, b.ref_ts,
  coalesce(a.delivered, false) AS delivered, a.view_ts IS NOT NULL AS viewed,
  a.click_ts IS NOT NULL AS clicked,
  EXISTS (SELECT 1 FROM goal WHERE goal.user_id = b.user_id AND goal.ts > b.ref_ts
          AND goal.ts <= b.ref_ts + to_microseconds($w)) AS converted,
  EXISTS (SELECT 1 FROM goal WHERE goal.user_id = b.user_id AND a.click_ts IS NOT NULL
          AND goal.ts > a.click_ts AND goal.ts <= a.click_ts + to_microseconds($w)) AS ct,
  EXISTS (SELECT 1 FROM goal WHERE goal.user_id = b.user_id AND a.view_ts IS NOT NULL
          AND goal.ts > a.view_ts AND goal.ts <= a.view_ts + to_microseconds($w)) AS vt_any,
  coalesce((SELECT sum(goal.revenue) FROM goal WHERE goal.user_id = b.user_id
          AND goal.ts > coalesce(a.click_ts, a.view_ts) AND goal.ts <= coalesce(a.click_ts, a.view_ts)
          + to_microseconds($w)), 0) AS revenue,
  coalesce((SELECT sum(goal.revenue) FROM goal WHERE goal.user_id = b.user_id
          AND goal.ts > b.ref_ts AND goal.ts <= b.ref_ts + to_microseconds($w)), 0) AS goal_revenue
FROM base AS b LEFT JOIN ans AS a ON a.message_key = b.message_key
"""


def user_outcomes(ws: Core, c: Campaign) -> pd.DataFrame:
    """One row per message sent, message suppressed after assignment, or user held out by
    ``c``, with delivery answers and goal outcomes.

    ``grp`` is ``'sent'``, ``'suppressed'`` (assigned to a sent arm, then suppressed by a
    later check: its 'Notification Suppressed' event, a reason not in
    :data:`PRE_ASSIGNMENT_REASONS`, for a message never sent) or ``'control'`` (the
    campaign's control group); ``assigned`` is true for the first two (the treated arm of
    the intention-to-treat comparison). ``converted`` is the goal event within the window
    after the (would-be) send, ``ct`` / ``vt`` click- / view-through conversions,
    ``revenue`` the revenue of those conversions and ``goal_revenue`` the goal's revenue
    within the window after the send (revenue per recipient)."""
    ev_cols = ws.engine.refresh().columns.get("events", {})
    rp = c.goal.revenue_property
    revenue = f'CAST(g."{rp}" AS DOUBLE)' if rp and rp in ev_cols else "CAST(0 AS DOUBLE)"
    if "campaign_id" not in ev_cols or "control_group" not in ev_cols:  # no campaign sent yet
        return pd.DataFrame(
            columns=[
                "user_id",
                "grp",
                "variant",
                "message_key",
                "ref_ts",
                "delivered",
                "viewed",
                "clicked",
                "converted",
                "ct",
                "vt",
                "revenue",
                "goal_revenue",
                "assigned",
            ]
        )
    w = int(c.goal.window_hours * 3600 * 1_000_000)
    assigned = (
        "reason IS NOT NULL AND reason NOT IN ("
        + ", ".join(f"'{r}'" for r in PRE_ASSIGNMENT_REASONS)
        + ")"
        if "reason" in ev_cols
        else "false"
    )
    sql = _OUTCOME_SQL.format(revenue=revenue, assigned=assigned)
    df = ws.sql(sql, {"c": c.id, "goal": c.goal.event, "w": w})
    df["vt"] = df["vt_any"] & ~df["ct"]
    df.loc[~(df["ct"] | df["vt"]), "revenue"] = 0.0
    df["assigned"] = df["grp"].isin(["sent", "suppressed"])
    return df.drop(columns="vt_any")


def _uplift(out: pd.DataFrame, key: str | None, alpha: float) -> pd.DataFrame:
    """Conversion of the users assigned to a sent arm (sent or suppressed after assignment;
    overall or per ``key``) vs the control group, with intervals: intention-to-treat."""
    from engagelab.experiments import analyze_aggregates

    ctrl = out[out["grp"] == "control"]
    treated = out[out["grp"].isin(["sent", "suppressed"])]
    arms = {"control": ctrl}
    if key is None:
        arms["assigned"] = treated
    else:
        arms |= {str(k): g for k, g in treated.groupby(key, sort=True)}
    rows = []
    for arm, g in arms.items():
        s = float(g["converted"].sum())
        rows.append(
            {"experiment": "x", "arm": arm, "n": len(g), "sum:converted": s, "sumsq:converted": s}
        )
    agg = pd.DataFrame(rows)
    keep = [
        "arm",
        "control_estimate",
        "arm_estimate",
        "abs_lift",
        "abs_ci_low",
        "abs_ci_high",
        "p_value",
    ]
    if len(ctrl) < 2 or len(agg) < 2 or (agg["n"] < 2).any():  # e.g. every send still queued
        return pd.DataFrame(columns=keep)
    res = analyze_aggregates(
        agg, control="control", metrics=["converted:proportion"], alpha=alpha, bayes_draws=1000
    )
    return res.table[keep]


def _summ(g: pd.DataFrame) -> dict[str, Any]:
    s = g[g["grp"] == "sent"]
    n = len(s)
    conv = int(s["ct"].sum() + s["vt"].sum())
    return {
        "sent": n,
        "delivered": int(s["delivered"].sum()),
        "viewed": int(s["viewed"].sum()),
        "clicked": int(s["clicked"].sum()),
        "unique_click_rate": s.loc[s["clicked"], "user_id"].nunique() / s["user_id"].nunique()
        if n
        else np.nan,
        "conversions_ct": int(s["ct"].sum()),
        "conversions_vt": int(s["vt"].sum()),
        "conversion_rate": conv / n if n else np.nan,
        "revenue": float(s["revenue"].sum()),
        "goal_rate_sent": float(s["converted"].mean()) if n else np.nan,
    }


def _itt(g: pd.DataFrame) -> dict[str, Any]:
    """The treated arm of the intention-to-treat comparison: users assigned to a sent arm
    (sent or suppressed after assignment), how many of them a later check suppressed,
    their goal rate, and the rule's name."""
    a = g[g["grp"].isin(["sent", "suppressed"])]
    return {
        "assigned_users": len(a),
        "suppressed_after_assignment": int((a["grp"] == "suppressed").sum()),
        "goal_rate_assigned": float(a["converted"].mean()) if len(a) else np.nan,
        "comparison": COMPARISON,
    }


@dataclass(frozen=True, repr=False)
class CampaignReport:
    """The consolidated report: ``table`` (one row per campaign), ``variants``, ``daily``
    and ``suppression`` drill-downs.

    ``uplift`` (and its interval) is intention-to-treat, named by :attr:`comparison`
    (also a column of ``table`` and ``variants``): ``goal_rate_assigned`` (users assigned
    to a sent arm, ``assigned_users``, of whom ``suppressed_after_assignment`` were not
    sent) minus ``goal_rate_control``. ``goal_rate_sent`` describes the sent users only:
    observational, not a causal comparison with the control group."""

    table: pd.DataFrame
    variants: pd.DataFrame
    daily: pd.DataFrame
    suppression: pd.DataFrame

    #: the rule of every uplift in the report
    comparison: str = COMPARISON

    def to_pandas(self) -> pd.DataFrame:
        return self.table.copy()

    def to_csv(self, path: str | Path, part: str = "table") -> Path:
        """Write one part as CSV (``'table'``, ``'variants'``, ``'daily'`` or
        ``'suppression'``); returns the path."""
        parts = ("table", "variants", "daily", "suppression")
        if part not in parts:
            raise ValidationError("part", part, "must be one of " + ", ".join(map(repr, parts)))
        p = Path(path)
        getattr(self, part).to_csv(p, index=False)
        return p

    def to_html(self, path: str | Path | None = None) -> str:
        """The designed HTML report, self-contained (written to ``path`` when given): summary
        figures, the campaigns with their uplift drawn, sends and outcomes over time, the
        variants' forest plot and the suppression reasons (see
        :mod:`engagelab.campaigns.report_html` for the building blocks)."""
        text = report_html(self)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def _repr_html_(self) -> str:
        return (
            f"<div class='el-campaign-report'><b>{html.escape(repr(self))}</b>"
            f"<p class='el-comparison'>uplift: {html.escape(self.comparison)}</p>"
            f"{campaigns_table(self.table)}</div>"
        )

    def __repr__(self) -> str:
        n = len(self.table)
        sent = int(self.table["sent"].sum()) if n else 0
        return f"CampaignReport({n} campaigns, {sent:,} messages sent; uplift: {self.comparison})"


def _specs(ws: Core) -> dict[str, tuple[Campaign, str]]:
    with ws.state.read() as conn:
        specs = {
            r.id: (Campaign.from_json(r.spec), r.status)
            for r in conn.execute(sa.select(L.campaigns_table))
        }
        for r in conn.execute(
            sa.select(L.runs.c.campaign_id, L.runs.c.spec, L.runs.c.logical_date).order_by(
                L.runs.c.logical_date
            )
        ):
            if r.campaign_id not in specs:
                specs[r.campaign_id] = (Campaign.from_json(r.spec), "")
        run_status: dict[str, str] = {}
        for row in conn.execute(sa.select(L.runs.c.campaign_id, L.runs.c.status)):
            prev = run_status.get(row.campaign_id)
            run_status[row.campaign_id] = "running" if "running" in (prev, row.status) else "sent"
    return {k: (c, run_status.get(k) or st or "draft") for k, (c, st) in specs.items()}


def campaign_report(  # noqa: C901
    ws: Core,
    *,
    channel: str | None = None,
    label: str | None = None,
    status: str | None = None,
    since: Any = None,
    until: Any = None,
    text: str | None = None,
    alpha: float = 0.05,
) -> CampaignReport:
    """The report across all campaigns of ``ws`` matching the filters.

    Args:
        channel, label, status: keep campaigns with this channel / label / status
            (``draft``, ``running``, ``sent``).
        since, until: keep sends (and controls) in ``[since, until)``.
        text: case-insensitive substring of the campaign id or name.
    """
    lo = check_datetime("since", since, allow_none=True)
    hi = check_datetime("until", until, allow_none=True)
    if text is not None and not isinstance(text, str):
        raise ValidationError("text", text, "must be a string")
    rows, var_rows, day_rows, sup_rows = [], [], [], []
    ev_cols = ws.engine.refresh().columns.get("events", {})
    for cid, (c, st) in sorted(_specs(ws).items()):
        if (
            channel
            and c.channel != channel
            or label
            and label not in c.labels
            or status
            and st != status
        ):
            continue
        if text and text.lower() not in (c.id + " " + c.name).lower():
            continue
        out = user_outcomes(ws, c)
        if lo is not None:
            out = out[out["ref_ts"] >= pd.Timestamp(lo)]
        if hi is not None:
            out = out[out["ref_ts"] < pd.Timestamp(hi)]
        head = {
            "campaign_id": cid,
            "name": c.name,
            "channel": c.channel,
            "type": c.schedule.type,
            "status": st,
            "labels": ", ".join(c.labels),
        }
        s = _summ(out)
        up = _uplift(out, None, alpha)
        ctrl = out[out["grp"] == "control"]
        s |= {
            "control_users": len(ctrl),
            "goal_rate_control": float(ctrl["converted"].mean()) if len(ctrl) else np.nan,
        }
        u = up.iloc[0] if len(up) else None
        s |= {
            "uplift": u["abs_lift"] if u is not None else np.nan,
            "uplift_ci_low": u["abs_ci_low"] if u is not None else np.nan,
            "uplift_ci_high": u["abs_ci_high"] if u is not None else np.nan,
        }
        rows.append(head | s | _itt(out))
        upv = _uplift(out, "variant", alpha).set_index("arm") if len(out) else pd.DataFrame()
        for v, g in out[out["grp"].isin(["sent", "suppressed"])].groupby("variant", sort=True):
            r = upv.loc[str(v)] if str(v) in upv.index else None
            var_rows.append(
                {"campaign_id": cid, "variant": v}
                | _summ(g)
                | {
                    "uplift": r["abs_lift"] if r is not None else np.nan,
                    "uplift_ci_low": r["abs_ci_low"] if r is not None else np.nan,
                    "uplift_ci_high": r["abs_ci_high"] if r is not None else np.nan,
                }
                | _itt(g)
            )
        days = out.assign(day=pd.to_datetime(out["ref_ts"], utc=True).dt.date)
        for d, g in days.groupby("day", sort=True):
            day_rows.append({"campaign_id": cid, "day": d} | _summ(g))
        if "reason" in ev_cols:
            sup = ws.sql(
                "SELECT reason, ts FROM events WHERE event = 'Notification Suppressed' AND campaign_id = $c",
                {"c": cid},
            )
            if lo is not None:
                sup = sup[sup["ts"] >= pd.Timestamp(lo)]
            if hi is not None:
                sup = sup[sup["ts"] < pd.Timestamp(hi)]
            for reason, n in sup["reason"].value_counts().sort_index().items():
                sup_rows.append({"campaign_id": cid, "reason": reason, "users": int(n)})
    cols = [
        "campaign_id",
        "name",
        "channel",
        "type",
        "status",
        "labels",
        "sent",
        "delivered",
        "viewed",
        "clicked",
        "unique_click_rate",
        "conversions_ct",
        "conversions_vt",
        "conversion_rate",
        "revenue",
        "goal_rate_sent",
        "control_users",
        "goal_rate_control",
        "uplift",
        "uplift_ci_low",
        "uplift_ci_high",
        "assigned_users",
        "suppressed_after_assignment",
        "goal_rate_assigned",
        "comparison",
    ]
    return CampaignReport(
        pd.DataFrame(rows, columns=cols),
        pd.DataFrame(var_rows),
        pd.DataFrame(day_rows),
        pd.DataFrame(sup_rows, columns=["campaign_id", "reason", "users"]),
    )


def choose_campaign_winner(ws: Core, c: Campaign) -> Any:
    """The winner of a test-then-winner campaign's test phase.

    The metric is ``c.winner_test.metric`` per test recipient (click or view rate,
    conversion rate within the goal window, or revenue per recipient; default views for
    e-mail, clicks otherwise), compared across variants with
    :func:`engagelab.experiments.analyze` (the first variant as the baseline) and chosen by
    :func:`engagelab.experiments.choose_winner` with the campaign's rule.
    """
    from engagelab.experiments import analyze, choose_winner

    out = user_outcomes(ws, c)
    sent = out[out["grp"] == "sent"]
    if sent.empty:
        raise ValidationError("campaign", c.id, "has no sent test messages to choose a winner from")
    wt = c.winner_test
    if wt is None:
        raise ValidationError("campaign", c.id, "has no winner test")
    metric = wt.metric or ("viewed" if c.channel == "email" else "clicked")
    column = {"revenue": "goal_revenue"}.get(metric, metric)
    kind = "mean" if metric == "revenue" else "proportion"
    df = pd.DataFrame(
        {
            "variant": sent["variant"].astype(str).to_numpy(),
            metric: sent[column].astype(float).to_numpy(),
        }
    )
    first = next((v for v in c.variant_names if v in set(df["variant"])), df["variant"].iloc[0])
    res = analyze(df, arm_col="variant", control=first, metrics=[f"{metric}:{kind}"])
    return choose_winner(res, rule=wt.rule, metric=metric, channel=c.channel)
