"""The global control report: the lift of all messaging, holdout against everyone else.

Braze's global control report, from the system events. The users compared are those
who entered a campaign that respects the global control (a 'Notification Sent',
'Control Group' or 'Notification Suppressed' event of it), split by the global control
hash itself (the assignment, a pure function of salt and user): the global control
group against the other entrants. Suppressed users count in the arm the hash puts them
in, so the comparison is intention-to-treat (every entrant not held out is in the
messaged arm, sent or not) whether the planner drew the holdout before or after its
eligibility filters. Entries whose events contradict the hash (the fraction or salt
changed since) are left out and counted.

- **per campaign**: that campaign's entrants, its goal event within its goal window
  after the (would-be) send; the campaign's own control group is left out of both
  arms (a random subset of the messaged arm, so nothing is biased by it);
- **all campaigns**: every entrant once, from their first entry; ``event`` within
  ``window_hours`` after it.

Intervals and p-values come from :func:`engagelab.experiments.analyze_aggregates`
(unpooled z, Fisher for tiny arms), with the sample-ratio check against the current
global control fraction.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engagelab.campaigns.global_control import get_global_control
from engagelab.errors import ValidationError
from engagelab.experiments.formatting import format_p
from engagelab.validate import check_datetime, check_number, check_str

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["GlobalControlReport", "global_control_report"]

#: How the uplift is defined, shown with every figure.
RULE = "intention-to-treat: entrants not held out (sent or suppressed) vs the global control group"

_ENTRY_SQL = """
WITH g AS (
  SELECT unnest($ids) AS campaign_id, unnest($goals) AS goal, unnest($wins) AS w_us
), entry AS (
  SELECT e.campaign_id, e.user_id, min(e.ts) AS ref_ts,
    bool_or(e.event = 'Control Group' AND e.control_group = 'global') AS held_global,
    bool_or(e.event = 'Control Group' AND e.control_group = 'campaign') AS held_campaign,
    bool_or(e.event = 'Notification Sent') AS sent
  FROM events AS e
  WHERE e.event IN ('Notification Sent', 'Control Group', 'Notification Suppressed')
    AND list_contains($ids, e.campaign_id)
    AND ($since IS NULL OR e.ts >= $since) AND ($until IS NULL OR e.ts < $until)
  GROUP BY ALL
)
SELECT en.campaign_id, en.user_id, en.ref_ts, en.held_global, en.held_campaign, en.sent,
  EXISTS (SELECT 1 FROM events AS x WHERE x.user_id = en.user_id AND x.event = g.goal
          AND x.ts > en.ref_ts AND x.ts <= en.ref_ts + to_microseconds(g.w_us)) AS converted,
  EXISTS (SELECT 1 FROM events AS x WHERE x.user_id = en.user_id AND x.event = $event
          AND x.ts > en.ref_ts AND x.ts <= en.ref_ts + to_microseconds($w)) AS converted_all
FROM entry AS en JOIN g USING (campaign_id)
"""

COLUMNS = [
    "scope",
    "goal",
    "window_hours",
    "holdout_users",
    "messaged_users",
    "holdout_rate",
    "messaged_rate",
    "uplift",
    "uplift_ci_low",
    "uplift_ci_high",
    "rel_uplift",
    "rel_uplift_ci_low",
    "rel_uplift_ci_high",
    "p_value",
    "log10_p",
    "srm_p",
    "excluded_users",
    "note",
]


@dataclass(frozen=True, repr=False)
class GlobalControlReport:
    """One row per campaign respecting the global control, and the ``all campaigns`` row.

    Attributes:
        table: see :data:`COLUMNS`; ``scope`` is a campaign id or ``"all campaigns"``.
        fraction, salt: the workspace's global control setting.
        alpha: the intervals are at ``1 - alpha``.
    """

    table: pd.DataFrame
    fraction: float
    salt: str
    alpha: float

    def to_pandas(self) -> pd.DataFrame:
        return self.table.copy()

    def _rows(self) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(**{str(k): v for k, v in rec.items()})
            for rec in self.table.to_dict("records")
        ]

    def overall(self) -> pd.Series:
        """The ``all campaigns`` row."""
        return self.table[self.table["scope"] == "all campaigns"].iloc[0]

    def __repr__(self) -> str:
        lines = [
            f"GlobalControlReport(fraction={self.fraction:g}, salt={self.salt!r}, "
            f"{len(self.table) - 1} campaigns; {RULE})"
        ]
        for r in self._rows():
            head = f"  {r.scope} ({r.goal} within {r.window_hours:g} h): "
            if not np.isfinite(r.uplift):
                lines.append(
                    head + f"{r.holdout_users:,} held out, {r.messaged_users:,} messaged; {r.note}"
                )
                continue
            lines.append(
                head + f"holdout {r.holdout_rate:.4g} (n={r.holdout_users:,}) vs messaged "
                f"{r.messaged_rate:.4g} (n={r.messaged_users:,}): uplift {r.uplift:+.4g} "
                f"[{r.uplift_ci_low:+.4g}, {r.uplift_ci_high:+.4g}], "
                f"p={format_p(r.p_value, r.log10_p)}, SRM p={format_p(r.srm_p)}"
                + (f"; {r.note}" if r.note else "")
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "scope",
                "goal",
                "held out",
                "messaged",
                "holdout rate",
                "messaged rate",
                "uplift [CI]",
                "p",
                "SRM p",
                "note",
            )  # fmt: skip
        )
        body = []
        for r in self._rows():
            ci = (
                f"{r.uplift:+.4g} [{r.uplift_ci_low:+.4g}, {r.uplift_ci_high:+.4g}]"
                if np.isfinite(r.uplift)
                else "—"
            )
            cells = [
                r.scope, f"{r.goal} ({r.window_hours:g} h)", f"{r.holdout_users:,}",
                f"{r.messaged_users:,}", _num(r.holdout_rate), _num(r.messaged_rate), ci,
                format_p(r.p_value, r.log10_p) if np.isfinite(r.uplift) else "—",
                format_p(r.srm_p) if np.isfinite(r.srm_p) else "—", r.note,
            ]  # fmt: skip
            body.append(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"
            )
        caption = (
            f"global control: {self.fraction:.1%} of users (salt {html.escape(self.salt)}); "
            f"{1 - self.alpha:.0%} intervals; {html.escape(RULE)}"
        )
        return (
            f"<table class='el-global-control-report'><caption>{caption}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )


def _num(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.4g}"


def _compare(hold: pd.Series, msg: pd.Series, fraction: float, alpha: float) -> dict[str, Any]:
    """Holdout vs messaged conversion (booleans per user), through analyze_aggregates."""
    from engagelab.experiments import analyze_aggregates

    out: dict[str, Any] = {
        "holdout_users": len(hold),
        "messaged_users": len(msg),
        "holdout_rate": float(hold.mean()) if len(hold) else math.nan,
        "messaged_rate": float(msg.mean()) if len(msg) else math.nan,
    }
    nan = dict.fromkeys(
        ("uplift", "uplift_ci_low", "uplift_ci_high", "rel_uplift", "rel_uplift_ci_low",
         "rel_uplift_ci_high", "p_value", "log10_p", "srm_p"),
        math.nan,
    )  # fmt: skip
    if len(hold) < 2 or len(msg) < 2:
        who = "held-out" if len(hold) < 2 else "messaged"
        return out | nan | {"note": f"fewer than 2 {who} users: no comparison yet"}
    rows = [
        {
            "experiment": "g",
            "arm": arm,
            "n": len(g),
            "sum:c": float(g.sum()),
            "sumsq:c": float(g.sum()),
        }
        for arm, g in (("holdout", hold), ("messaged", msg))
    ]
    weights = [fraction, 1 - fraction] if 0 < fraction < 1 else None
    res = analyze_aggregates(
        pd.DataFrame(rows), control="holdout", metrics=["c:proportion"], alpha=alpha,
        weights=weights, bayes_draws=1000,
    )  # fmt: skip
    r = res.table.iloc[0]
    return out | {
        "uplift": float(r["abs_lift"]),
        "uplift_ci_low": float(r["abs_ci_low"]),
        "uplift_ci_high": float(r["abs_ci_high"]),
        "rel_uplift": float(r["rel_lift"]),
        "rel_uplift_ci_low": float(r["rel_ci_low"]),
        "rel_uplift_ci_high": float(r["rel_ci_high"]),
        "p_value": float(r["p_value"]),
        "log10_p": float(r["log10_p"]),
        "srm_p": float(r["srm_p"]),
        "note": str(r["note"]),
    }


def _arms(frame: pd.DataFrame, fraction: float, salt: str) -> pd.DataFrame:
    """Each entry's arm by the global control hash (the assignment itself), and whether
    the events contradict it (held out but the hash says messaged, or sent though the
    hash says held out: the fraction or salt changed since)."""
    from engagelab.experiments import global_control

    f = frame.copy()
    for col in ("held_global", "held_campaign", "sent", "converted", "converted_all"):
        f[col] = f[col].astype(bool)
    if fraction > 0 and len(f):
        f["hash_held"] = global_control(f["user_id"], salt, fraction)
    else:
        f["hash_held"] = f["held_global"]
    f["contradicts"] = (f["held_global"] & ~f["hash_held"]) | (f["sent"] & f["hash_held"])
    return f


def _excluded(row: dict[str, Any], n: int) -> dict[str, Any]:
    if n:
        extra = (
            f"{n:,} users left out: their events contradict the current global control "
            "(fraction or salt changed)"
        )
        row["note"] = "; ".join(x for x in (row["note"], extra) if x)
    return row | {"excluded_users": n}


def global_control_report(  # noqa: C901
    ws: Core,
    event: str | None = None,
    *,
    window_hours: float | None = None,
    since: Any = None,
    until: Any = None,
    alpha: float = 0.05,
) -> GlobalControlReport:
    """The global control report of ``ws`` (see the module docstring).

    Args:
        event: the outcome of the ``all campaigns`` row; default: the goal event the
            campaigns share (an error names the goals when they differ).
        window_hours: hours after a user's first entry in which ``event`` counts;
            default: the longest goal window of the campaigns.
        since, until: keep entries in ``[since, until)``.
        alpha: intervals at ``1 - alpha``.
    """
    from engagelab.campaigns.report import _specs

    lo = check_datetime("since", since, allow_none=True)
    hi = check_datetime("until", until, allow_none=True)
    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    if event is not None:
        check_str("event", event)
    if window_hours is not None:
        check_number("window_hours", window_hours, low=0, low_open=True)
    fraction, salt = get_global_control(ws)
    specs = {cid: c for cid, (c, _st) in sorted(_specs(ws).items()) if c.respect_global_control}
    goals = sorted({c.goal.event for c in specs.values()})
    if event is None:
        if len(goals) > 1:
            raise ValidationError(
                "event",
                None,
                "must be given: the campaigns' goals differ (" + ", ".join(goals) + ")",
            )
        event = goals[0] if goals else "Charged"
    if window_hours is None:
        window_hours = max((c.goal.window_hours for c in specs.values()), default=24.0)
    ev_cols = ws.engine.refresh().columns.get("events", {})
    if not specs or "campaign_id" not in ev_cols or "control_group" not in ev_cols:
        frame = pd.DataFrame(
            columns=["campaign_id", "user_id", "ref_ts", "held_global", "held_campaign",
                     "sent", "converted", "converted_all"]
        )  # fmt: skip
    else:
        ids = list(specs)
        frame = ws.sql(
            _ENTRY_SQL,
            {
                "ids": ids,
                "goals": [specs[i].goal.event for i in ids],
                "wins": [int(specs[i].goal.window_hours * 3600e6) for i in ids],
                "event": event,
                "w": int(window_hours * 3600e6),
                "since": lo,
                "until": hi,
            },
        )
    frame = _arms(frame, fraction, salt)
    rows = []
    for cid, c in specs.items():
        f = frame[frame["campaign_id"] == cid]
        ok = ~f["contradicts"]
        hold, msg = ok & f["hash_held"], ok & ~f["hash_held"] & ~f["held_campaign"]
        row = {"scope": cid, "goal": c.goal.event, "window_hours": float(c.goal.window_hours)}
        row |= _compare(f.loc[hold, "converted"], f.loc[msg, "converted"], fraction, alpha)
        rows.append(_excluded(row, int((~ok).sum())))
    users = frame.groupby("user_id", sort=False).agg(
        held=("hash_held", "first"), contradicts=("contradicts", "any")
    )
    first = frame.sort_values("ref_ts").drop_duplicates("user_id").set_index("user_id")
    conv = first["converted_all"].reindex(users.index)
    ok = ~users["contradicts"]
    row = {"scope": "all campaigns", "goal": event, "window_hours": float(window_hours)}
    row |= _compare(conv[ok & users["held"]], conv[ok & ~users["held"]], fraction, alpha)
    rows.append(_excluded(row, int((~ok).sum())))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["note"] = table["note"].fillna("")
    return GlobalControlReport(table, fraction, salt, alpha)
