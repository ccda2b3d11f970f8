"""Message-label cohorts and the label's effect on retention, with a causal holdout comparison.

* :func:`label_retention` — for each label ``L``, the cohort of users sent a message
  carrying ``L`` (cohort date = their first such 'Notification Sent'); labels side by side.
* :func:`label_effect` — N-day retention of three groups and their differences:

  - **sent** (sent or would-be-sent): users sent ``L`` *or* assigned to a sent arm of a
    campaign carrying ``L`` and suppressed after assignment (caps, DND, TTL, throttle,
    expiry: a 'Notification Suppressed' event whose reason is not one of
    :data:`~engagelab.schema.PRE_ASSIGNMENT_REASONS`), dated at their first send or
    would-be send;
  - **holdout**: users held out by the campaign or global control group of a campaign
    carrying ``L`` (their 'Control Group' events, whether or not a later check would
    have suppressed them), dated at the moment they would have been sent, and not in the
    first group through another campaign carrying ``L``;
  - **everyone else** (observational): every other user seen before ``L`` was first
    sent, dated at that first send.

  ``sent or would-be-sent − holdout`` is the label's causal effect, intention-to-treat
  (:data:`RULE`): holdouts are drawn at random among the same eligible audiences, and
  the later checks apply to both arms alike, so comparing only the users actually sent
  (those no check caught) with the holdout would be biased. ``sent or would-be-sent −
  everyone else`` is labelled *observational*: who gets sent is selected (reachable, active, targeted
  users), so it mixes the effect with selection bias. Differences carry Newcombe hybrid
  score intervals.

Example:
    >>> import tempfile, pandas as pd
    >>> from engagelab import Workspace
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = ws.append("events", pd.DataFrame({"user_id": ["a"], "event": ["App Launched"],
    ...                                       "ts": pd.to_datetime(["2026-01-01"], utc=True)}))
    >>> label_retention(ws, ["Onboarding"])["Onboarding"].message
    "label 'Onboarding' was never sent (no message in this workspace carries a label)"
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from engagelab.errors import ValidationError
from engagelab.retention._sql import lit
from engagelab.retention._stats import newcombe, wilson
from engagelab.retention.engine import _unknown_event, run_query
from engagelab.retention.result import DIFF_COLUMNS, LONG_COLUMNS, RetentionResult, differences
from engagelab.retention.spec import RetentionSpec
from engagelab.schema import (
    CONTROL_GROUP,
    NOTIFICATION_SENT,
    NOTIFICATION_SUPPRESSED,
    PRE_ASSIGNMENT_REASONS,
)
from engagelab.validate import check_int, check_str

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = [
    "RULE",
    "LabelEffect",
    "LabelRetention",
    "label_effect",
    "label_retention",
    "labels_in_use",
]

#: How the causal comparison of :func:`label_effect` is defined (shown with the result).
RULE = "intention-to-treat: sent or would-be-sent − holdout"
#: The name of the causal comparison in :attr:`LabelEffect.comparisons`.
CAUSAL = "sent or would-be-sent − holdout"

#: Bar colour of each group in :meth:`LabelEffect.plot`.
GROUP_COLOURS = {"sent": "#1f77b4", "holdout": "#7f7f7f", "everyone else": "#c7c7c7"}

#: Who each group of :func:`label_effect` holds (its ``members`` column).
MEMBERS = {
    "sent": "sent or would-be-sent (suppressed after assignment)",
    "holdout": "holdout (campaign or global control group)",
    "everyone else": "everyone else (observational)",
}

SELECTION_WARNING = (
    "observational: users sent a label are selected (reachable, active, targeted), so "
    "'sent or would-be-sent − everyone else' mixes the label's effect with selection bias; "
    "use the holdout comparison for the effect"
)


def labels_in_use(ws: Core) -> list[str]:
    """Labels carried by at least one 'Notification Sent' event."""
    if "labels" not in ws.store.columns("events"):
        return []
    d = ws.sql(
        "SELECT DISTINCT unnest(labels) AS label FROM events WHERE event = $e",
        {"e": NOTIFICATION_SENT},
    )
    return sorted(x for x in d["label"].tolist() if x is not None)


def _never_sent(ws: Core, label: str) -> str | None:
    used = labels_in_use(ws)
    if label in used:
        return None
    if not used:
        return f"label {label!r} was never sent (no message in this workspace carries a label)"
    return f"label {label!r} was never sent (labels in use: {', '.join(map(repr, used))})"


def sent_sql(label: str) -> str:
    """Start rows of the users sent ``label``."""
    return (
        f"SELECT user_id, ts FROM events WHERE event = {lit(NOTIFICATION_SENT)} "
        f"AND list_contains(labels, {lit(label)})"
    )


def _carries(label: str, has_campaign: bool) -> str:
    """SQL condition: an event of a campaign carrying ``label`` (by its labels or, when the
    events have campaign ids, by a campaign that sent the label)."""
    cond = f"list_contains(labels, {lit(label)})"
    if has_campaign:
        cond = (
            f"({cond} OR campaign_id IN (SELECT DISTINCT campaign_id FROM events WHERE event = "
            f"{lit(NOTIFICATION_SENT)} AND list_contains(labels, {lit(label)})))"
        )
    return cond


def assigned_sql(label: str, has_campaign: bool = True, has_reason: bool = True) -> str:
    """Start rows of the users sent ``label`` or would-be-sent it: assigned to a sent arm
    of a campaign carrying it and suppressed after assignment (intention-to-treat)."""
    if not has_reason:
        return sent_sql(label)
    pre = ", ".join(lit(r) for r in PRE_ASSIGNMENT_REASONS)
    return (
        f"{sent_sql(label)} UNION ALL SELECT user_id, ts FROM events WHERE event = "
        f"{lit(NOTIFICATION_SUPPRESSED)} AND {_carries(label, has_campaign)} "
        f"AND reason IS NOT NULL AND reason NOT IN ({pre})"
    )


def holdout_sql(label: str, has_campaign: bool = True, has_reason: bool = True) -> str:
    """Start rows of the users held out of campaigns carrying ``label`` (neither sent it nor
    would-be-sent it by another such campaign)."""
    treated = assigned_sql(label, has_campaign, has_reason)
    return (
        f"SELECT user_id, ts FROM events WHERE event = {lit(CONTROL_GROUP)} "
        f"AND {_carries(label, has_campaign)} "
        f"AND user_id NOT IN (SELECT user_id FROM ({treated}) AS sent_users)"
    )


def others_sql(label: str, has_campaign: bool = True, has_reason: bool = True) -> str:
    """Start rows of everyone else seen before ``label`` was first sent, dated at that send."""
    first = f"(SELECT min(ts) FROM ({sent_sql(label)}) AS fs)"
    treated = assigned_sql(label, has_campaign, has_reason)
    held = holdout_sql(label, has_campaign, has_reason)
    return (
        f"SELECT DISTINCT user_id, {first} AS ts FROM events WHERE ts < {first} "
        f"AND user_id NOT IN (SELECT user_id FROM ({treated}) AS s1) "
        f"AND user_id NOT IN (SELECT user_id FROM ({held}) AS h1)"
    )


# ----------------------------------------------------------------------- label cohorts
@dataclass(frozen=True)
class LabelRetention:
    """Retention of several label cohorts side by side (one :class:`RetentionResult` each)."""

    results: dict[str, RetentionResult]

    def __getitem__(self, label: str) -> RetentionResult:
        return self.results[label]

    def to_pandas(self) -> pd.DataFrame:
        """The "All cohorts" row of every label: a row per label, a column per period."""
        rows = {}
        for label, res in self.results.items():
            if res.empty:
                rows[label] = pd.Series(dtype=float)
            else:
                rows[label] = res.overall().set_index("period")["rate"]
        cols = next(iter(self.results.values())).spec.columns() if self.results else []
        return pd.DataFrame(rows).T.reindex(columns=cols).rename_axis("label")

    def long(self) -> pd.DataFrame:
        """Every label's long table with a ``label`` column."""
        parts = [r.long().assign(label=k) for k, r in self.results.items() if not r.empty]
        return (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame(columns=["label", *LONG_COLUMNS])
        )

    def compare(self, baseline: str | None = None) -> pd.DataFrame:
        """Label cohorts against a baseline label: the difference of their "All cohorts"
        rates in every column, with a Newcombe hybrid score interval.

        Labels go to different audiences, so this is observational (who was sent what is
        selected); use :func:`label_effect` for a label's causal effect.

        Args:
            baseline: the label compared against (default: the first label that was sent).
        """
        overall = {k: r.overall() for k, r in self.results.items() if not r.empty}
        if not overall:
            return pd.DataFrame(columns=["label", *DIFF_COLUMNS])
        base = next(iter(overall)) if baseline is None else baseline
        if baseline is not None and baseline in self.results and baseline not in overall:
            raise ValidationError("baseline", baseline, self.results[baseline].message)
        conf = next(iter(self.results.values())).spec.confidence
        return differences(overall, base, conf, "label")

    def __repr__(self) -> str:
        return "LabelRetention(" + "; ".join(f"{k}: {r!r}" for k, r in self.results.items()) + ")"

    def _repr_html_(self) -> str:
        return "".join(r._repr_html_() for r in self.results.values())

    def plot(self, ax: Any = None) -> Any:
        """The labels' "All cohorts" curves with interval bands on one axis."""
        from engagelab.figures import new_figure

        ax = ax if ax is not None else new_figure(figsize=(7, 4)).add_subplot()
        for label, res in self.results.items():
            if not res.empty:
                object.__setattr__(res, "name", label)
                res.plot(ax=ax)
                curves = [ln for ln in ax.get_lines() if not str(ln.get_label()).startswith("_")]
                curves[-1].set_label(label)
        ax.set_title("retention by label")
        ax.legend(fontsize="small")
        return ax.figure


def label_retention(
    ws: Core, labels: str | Iterable[str], return_event: str = "App Launched", *, engine: str = "duckdb",
    **options: Any,
) -> LabelRetention:  # fmt: skip
    """Retention of the cohorts of users sent each label (first send dates the cohort).

    ``options`` are :class:`RetentionSpec` fields (period, periods, mode, window, ...).
    A label never sent gives an empty result whose ``message`` says so.
    """
    labels = [labels] if isinstance(labels, str) else list(labels)
    if not labels:
        raise ValidationError("labels", [], "must name at least one label")
    out = {}
    for label in labels:
        check_str("label", label)
        spec = RetentionSpec(NOTIFICATION_SENT, return_event, start_label=label, **options)
        why = _never_sent(ws, label)
        if why:
            out[label] = RetentionResult(
                spec, pd.DataFrame(columns=LONG_COLUMNS), None, "", why, label
            )
        else:
            out[label] = run_query(ws, spec, starts=sent_sql(label), engine=engine, name=label)
    return LabelRetention(out)


# ------------------------------------------------------------------------ the effect
@dataclass(frozen=True)
class LabelEffect:
    """N-day retention of sent (or would-be-sent) / holdout / everyone else, and the
    differences.

    Attributes:
        label, day, return_event: what was measured.
        groups: a row per group that has users who reached day N: size (those users),
            retained, rate, ci_low, ci_high, and ``members`` (who the group holds; the
            ``sent`` group is sent or would-be-sent; a group nobody reached yet has no
            row; the notes say so).
        comparisons: ``sent or would-be-sent − holdout`` (kind 'causal', intention-to-treat)
            and ``sent − everyone else`` (kind 'observational'): difference, ci_low,
            ci_high (Newcombe) and ``rule`` (how the difference is defined).
        notes: warnings to read with the numbers.
        rule: the causal comparison's rule (:data:`RULE`).
        would_be_sent: users in the ``sent`` group who were suppressed after assignment
            (all of them, reached day N or not).
    """

    label: str
    day: int
    return_event: str
    groups: pd.DataFrame
    comparisons: pd.DataFrame
    notes: tuple[str, ...] = field(default=())
    results: dict[str, RetentionResult] = field(default_factory=dict, repr=False)
    rule: str = RULE
    would_be_sent: int = 0

    @property
    def effect(self) -> float:
        """The causal estimate (sent or would-be-sent − holdout, intention-to-treat); NaN
        without a holdout."""
        c = self.comparisons[self.comparisons["kind"] == "causal"]
        return float(c["difference"].iloc[0]) if len(c) else float("nan")

    def to_pandas(self) -> pd.DataFrame:
        """The comparisons table."""
        return self.comparisons.copy()

    def __repr__(self) -> str:
        parts = [
            f"{r.comparison} ({r.kind}) = {r.difference:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
            for r in self.comparisons.itertuples()
        ]
        return (
            f"LabelEffect({self.label!r}, day {self.day} {self.return_event!r}: "
            f"{'; '.join(parts)}; rule: {self.rule})"
        )

    def _repr_html_(self) -> str:
        def pct(v: Any, signed: bool = False) -> str:
            if v is None or pd.isna(v):
                return "—"
            return f"{v * 100:+.1f} pp" if signed else f"{v:.1%}"

        def table(head: list[str], rows: list[list[str]], cls: str) -> str:
            th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
            )
            return f"<table class='{cls}'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

        groups = table(
            ["group", f"users at day {self.day}", "retained", "rate", "interval"],
            [[str(getattr(r, "members", r.group)), f"{int(cast(int, r.size)):,}", f"{int(cast(int, r.retained)):,}", pct(r.rate),
              f"{pct(r.ci_low)} – {pct(r.ci_high)}"] for r in self.groups.itertuples()],
            "el-label-groups",
        )  # fmt: skip
        comps = table(
            ["comparison", "kind", "difference", "interval"],
            [[str(r.comparison), str(r.kind), pct(r.difference, True),
              f"{pct(r.ci_low, True)} to {pct(r.ci_high, True)}"] for r in self.comparisons.itertuples()],
            "el-label-comparisons",
        ) if len(self.comparisons) else ""  # fmt: skip
        notes = "".join(
            f"<div class='el-warning' style='background:#fff3cd;padding:6px;margin:4px 0'>⚠ {html.escape(n)}</div>"
            for n in self.notes
        )
        return (
            f"<div class='el-label-effect'><b>Label {html.escape(self.label)!s}: day-{self.day} "
            f"retention ({html.escape(self.return_event)})</b>"
            f"<p class='el-label-rule'>causal comparison: {html.escape(self.rule)}</p>{notes}"
            f"{groups if len(self.groups) else ''}{comps}</div>"
        )

    def plot(self, ax: Any = None) -> Any:
        """Bar chart of the groups' rates with their Wilson intervals."""
        from engagelab.figures import new_figure

        ax = ax if ax is not None else new_figure(figsize=(5, 3.5)).add_subplot()
        g = self.groups
        err = np.vstack([g["rate"] - g["ci_low"], g["ci_high"] - g["rate"]])
        ax.bar(
            g["group"],
            g["rate"],
            yerr=err,
            capsize=6,
            color=[GROUP_COLOURS.get(str(x), "#c7c7c7") for x in g["group"]],
        )
        ax.set_ylabel(f"day-{self.day} retention")
        ax.set_title(f"{self.label}: sent or would-be-sent vs holdout vs everyone else")
        return ax.figure


def label_effect(  # noqa: C901
    ws: Core, label: str, *, day: int = 30, return_event: str = "App Launched", window: str = "rolling",
    confidence: float = 0.95, observational: bool = True, engine: str = "duckdb",
) -> LabelEffect:  # fmt: skip
    """The label's effect on day-``day`` retention: sent or would-be-sent vs holdout
    (causal, intention-to-treat: :data:`RULE`), and sent vs everyone else (observational).

    Retention on day N means a ``return_event`` in period N after the group's start time
    (a 24-hour window with ``window='rolling'``, the UTC calendar day with 'calendar');
    users whose day N has not ended are left out (censored), not counted as lost.
    """
    check_str("label", label)
    check_int("day", day, low=0, high=3650)
    why = _never_sent(ws, label)
    if why:
        raise ValidationError(
            "label", label, why.replace(f"label {label!r} ", "must have been sent; it ")
        )
    if not int(
        ws.sql("SELECT count(*) AS n FROM events WHERE event = $e", {"e": return_event})["n"][0]
    ):
        raise _unknown_event(ws, "return_event", return_event)
    cols = ws.store.columns("events")
    has_campaign = "campaign_id" in cols
    spec = RetentionSpec(
        NOTIFICATION_SENT,
        return_event,
        brackets=(day, day + 1),
        window=window,
        confidence=confidence,
    )
    has_reason = "reason" in cols
    queries = {"sent": assigned_sql(label, has_campaign, has_reason)}
    holdout_present = "control_group" in cols or has_campaign
    if holdout_present:
        queries["holdout"] = holdout_sql(label, has_campaign, has_reason)
    if observational:
        queries["everyone else"] = others_sql(label, has_campaign, has_reason)
    would_be = 0
    if has_reason:
        would_be = int(
            ws.sql(
                f"SELECT count(DISTINCT user_id) AS n FROM ({assigned_sql(label, has_campaign)}) "
                f"AS a WHERE user_id NOT IN (SELECT user_id FROM ({sent_sql(label)}) AS s)"
            )["n"][0]
        )
    rows, results, started = [], {}, {}
    for group, sql in queries.items():
        started[group] = int(
            ws.sql(f"SELECT count(DISTINCT user_id) AS n FROM ({sql}) AS s")["n"][0]
        )
        try:
            res = run_query(ws, spec, starts=sql, engine=engine, name=f"{label}: {group}")
        except ValidationError as exc:  # every cell of this group is censored
            if exc.field != "periods":
                raise
            res = None
        if res is None or res.empty:
            rows.append({"group": group, "size": 0, "retained": 0})
            continue
        results[group] = res
        ov = res.overall().iloc[0]
        size = 0 if pd.isna(ov["size"]) else int(ov["size"])
        rows.append(
            {"group": group, "size": size, "retained": 0 if size == 0 else int(ov["retained"])}
        )
    groups = pd.DataFrame(rows)
    groups["members"] = groups["group"].map(MEMBERS)
    groups["rate"] = groups["retained"] / groups["size"].where(groups["size"] > 0)
    lo, hi = wilson(groups["retained"], groups["size"], confidence)
    groups["ci_low"], groups["ci_high"] = lo, hi
    g = groups.set_index("group")
    notes: list[str] = []
    comps = []
    if int(cast(int, g.loc["sent", "size"])) == 0:
        notes.append(f"no user sent {label!r} has reached day {day} yet: nothing to compare")
    if started.get("holdout", 0) == 0:
        notes.append(f"campaigns carrying {label!r} had no control group: no causal comparison")
    for other, kind in (("holdout", "causal"), ("everyone else", "observational")):
        if other not in g.index or started.get(other, 0) == 0:
            continue
        if int(cast(int, g.loc[other, "size"])) == 0:
            notes.append(
                f"none of the {started[other]:,} {other} users has reached day {day} yet"
                + (": no causal comparison yet" if other == "holdout" else "")
            )
            continue
        d, dl, dh = newcombe(g.loc["sent", "retained"], g.loc["sent", "size"],
                             g.loc[other, "retained"], g.loc[other, "size"], confidence)  # fmt: skip
        comps.append({"comparison": CAUSAL if kind == "causal" else f"sent or would-be-sent − {other}",
                      "kind": kind, "difference": float(d), "ci_low": float(dl),
                      "ci_high": float(dh),
                      "rule": RULE if kind == "causal" else "observational: not causal"})  # fmt: skip
    if observational and "everyone else" in g.index:
        notes.append(SELECTION_WARNING)
    comparisons = pd.DataFrame(
        comps, columns=["comparison", "kind", "difference", "ci_low", "ci_high", "rule"]
    )
    groups = groups[groups["size"] > 0].reset_index(
        drop=True
    )  # no user, no row (the notes say why)
    return LabelEffect(
        label, day, return_event, groups, comparisons, tuple(notes), results, RULE, would_be
    )
