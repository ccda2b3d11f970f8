"""Honest offline evaluation of send-time policies: time split, hit rate, replay, simulator truth.

Every policy is fitted on events before a cutoff (weeks ``1..k`` of the data) and judged
on what users did afterwards (the next ``eval_weeks``): nothing after the cutoff reaches a
fit. Policies compared: the empirical-Bayes model (``bayes``), CleverTap-faithful mode
(``clevertap``), the user's most frequent past hour, the global best hour and a fixed
campaign time.

* **hit rate**: share of users, among those who engaged in the evaluation period, with an
  engagement event within +-60 minutes (local, circular) of their chosen slot;
* **replay**: on exploration logs (sends at uniformly random slots, with propensities)
  the inverse-propensity estimate of each policy's reward rate:
  ``mean(1[logged hour == policy hour] * reward / propensity)`` with a normal interval;
* **simulator truth** (when the world is given): how often the true preferred hour is
  recovered, and on-policy simulated sends answered by ``world.respond``.

With ``granularity='hour_of_week'`` the bayes policy has one slot per weekday: an event
(or a logged send) is compared with the slot of its own local weekday.

Comparisons ``bayes - clevertap`` are paired per user (or per logged send) with 95%
intervals, split by the users' history size in the fit period.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import stats

from engagelab.besttime._data import _scan, connect, local_minutes
from engagelab.besttime.delivery import exploration_draw, local_to_utc
from engagelab.besttime.model import BestTimeModel, _nearest_allowed, choose, fit
from engagelab.besttime.options import BestTimeOptions, parse_time
from engagelab.errors import ValidationError
from engagelab.validate import check_datetime, check_int

if TYPE_CHECKING:
    from engagelab.storage.core import Core


class SimulatedUsers(Protocol):
    """Simulated users (a :class:`engagelab.simulate.World`): they answer messages and
    know their true preferred hours, so an evaluation can score the policies against
    the truth and on simulated on-policy sends."""

    @property
    def truth(self) -> pd.DataFrame:
        """Per-user planted truth (``user_id``, ``preferred_hour``, ...)."""
        ...

    def respond(self, messages: pd.DataFrame) -> pa.Table:
        """The users' events answering ``messages`` (one row per message)."""
        ...


__all__ = [
    "POLICIES",
    "WEEKDAYS",
    "BestTimeEvaluation",
    "SimulatedUsers",
    "evaluate",
    "exploration_logs",
    "policy_slots",
    "week_minutes",
]

POLICIES = ("bayes", "clevertap", "most_frequent_hour", "global_best_hour", "fixed")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_Z = float(stats.norm.ppf(0.975))


def week_minutes(slots: pd.DataFrame, policy: str) -> np.ndarray:
    """``(users, 7)`` local slot minute of ``policy`` per weekday (Monday first): the
    ``policy`` column for every day, or its ``policy_Mon`` .. ``policy_Sun`` columns when
    its slots depend on the weekday (``granularity='hour_of_week'``)."""
    if policy in slots.columns:
        col = slots[policy].to_numpy(dtype=np.int64)
        return np.repeat(col[:, None], 7, axis=1)
    return np.stack([slots[f"{policy}_{d}"].to_numpy(dtype=np.int64) for d in WEEKDAYS], axis=1)


def history_group(n: np.ndarray, min_events: int) -> np.ndarray:
    """History-size label of each user: '0', '1-(m-1)', 'm-9', '10+'."""
    little = f"1-{min_events - 1}" if min_events > 2 else "1"
    some = f"{min_events}-9" if min_events < 10 else None
    out = np.where(
        n == 0, "0", np.where(n < min_events, little, np.where(n < 10, some or "10+", "10+"))
    )
    return out.astype(object)


def policy_slots(
    ws: Core, options: BestTimeOptions, cutoff: Any, fixed_time: str = "12:00"
) -> tuple[pd.DataFrame, dict[str, BestTimeModel]]:
    """Every policy's local slot minute per user, fitted on events before ``cutoff``.

    With ``granularity='hour_of_week'`` the bayes policy's slots depend on the weekday:
    columns ``bayes_Mon`` .. ``bayes_Sun`` replace ``bayes`` (see :func:`week_minutes`).
    """
    cut = check_datetime("cutoff", cutoff)
    bayes = fit(ws, options.replace(mode="bayes"), at=cut)
    ct_opts = options.replace(mode="clevertap", events=options.events[:1], granularity="hour")
    clevertap = fit(ws, ct_opts, at=cut)
    allowed = options.allowed_minutes()
    counts = bayes.history.counts.astype(np.float64)
    glob = counts.sum(axis=0)
    g_min, _ = choose(glob[None, :], 60, 30, allowed, restrict=True)
    mf, _ = choose(counts, 60, 30, allowed, restrict=True)
    n = counts.sum(axis=1)
    mf[n == 0] = g_min[0]
    fixed = _nearest_allowed(allowed)[parse_time("fixed_time", fixed_time) % 1440]
    c = clevertap.slots()
    if bayes.weekly:
        # 2024-01-01 was a Monday: the slots of each weekday
        days = [dt.date(2024, 1, 1 + i) for i in range(7)]
        per_day = {
            f"bayes_{d}": bayes.slots(day)["slot_minute"]
            for d, day in zip(WEEKDAYS, days, strict=True)
        }
        b = bayes.slots(days[0])
    else:
        b = bayes.slots()
        per_day = {"bayes": b["slot_minute"]}
    out = pd.DataFrame(
        {
            "user_id": b["user_id"],
            "timezone": b["timezone"],
            "n_events": bayes.n_events,
            "history": history_group(bayes.n_events, options.min_events),
            **per_day,
            "clevertap": c["slot_minute"],
            "most_frequent_hour": mf,
            "global_best_hour": g_min[0],
            "fixed": fixed,
        }
    )
    out = out[b["slot_minute"].to_numpy() >= 0].reset_index(drop=True)
    return out, {"bayes": bayes, "clevertap": clevertap}


def _rate_rows(policy: str, group: str, values: np.ndarray) -> dict[str, Any]:
    n = values.size
    mean = float(values.mean()) if n else np.nan
    se = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
    return {
        "policy": policy,
        "history": group,
        "n": n,
        "estimate": mean,
        "ci_low": mean - _Z * se,
        "ci_high": mean + _Z * se,
    }


def _table(values: dict[str, np.ndarray], groups: np.ndarray) -> pd.DataFrame:
    """Per policy and history group (plus 'all' and 'little' = no or too little history):
    mean and 95% interval; plus paired ``bayes - clevertap`` differences."""
    rows = []
    present = set(groups.tolist())
    labels = ["all", "little"] + sorted(present, key=lambda g: int(g.split("-")[0].rstrip("+")))
    little = np.isin(groups, [g for g in present if g == "0" or g.startswith("1-") or g == "1"])
    for g in labels:
        m = np.ones(groups.size, bool) if g == "all" else little if g == "little" else groups == g
        for p, v in values.items():
            rows.append(_rate_rows(p, g, v[m]))
        if "bayes" in values and "clevertap" in values:
            rows.append(
                _rate_rows("bayes - clevertap", g, values["bayes"][m] - values["clevertap"][m])
            )
    return pd.DataFrame(rows)


def _distance(minute: np.ndarray, weekday: np.ndarray, week: np.ndarray) -> np.ndarray:
    """Minutes from a local time (minute of day on a weekday) to the nearest send of a
    policy whose slot on weekday ``d`` is ``week[:, d]``: that day's, the day before's or
    the day after's (the circular distance when every day has the same slot)."""
    rows = np.arange(len(minute))
    same = np.abs(minute - week[rows, weekday])
    before = minute + 1440 - week[rows, (weekday - 1) % 7]
    after = week[rows, (weekday + 1) % 7] + 1440 - minute
    return np.minimum(same, np.minimum(before, after))


def hit_rates(ws: Core, slots: pd.DataFrame, options: BestTimeOptions, start, end) -> pd.DataFrame:
    """Hit rate per policy among users with an engagement event in ``[start, end)``."""
    users = slots[["user_id", "timezone"]].assign(tz_ok=True)
    con = connect(ws)
    try:
        idx, tzi, t, zones = _scan(con, users, options.events, start, end)
    finally:
        con.close()
    s_us, e_us = int(pd.Timestamp(start).value // 1000), int(pd.Timestamp(end).value // 1000)
    minute, weekday = local_minutes(tzi, t, zones, s_us, e_us)
    active = np.bincount(idx, minlength=len(slots)) > 0
    values = {}
    for p in POLICIES:
        hit = _distance(minute, weekday, week_minutes(slots, p)[idx]) <= 60
        values[p] = (np.bincount(idx, weights=hit, minlength=len(slots)) > 0)[active].astype(float)
    return _table(values, slots["history"].to_numpy()[active])


def replay(logs: pd.DataFrame, slots: pd.DataFrame, reward: str = "reward") -> pd.DataFrame:
    """Inverse-propensity estimates of each policy's reward rate on exploration logs.

    Args:
        logs: one row per explored send: ``user_id``, ``send_at_utc``, ``propensity``
            (probability of the logged local hour) and the 0/1 ``reward`` column.
        slots: :func:`policy_slots` output.
    """
    need = {"user_id", "send_at_utc", "propensity", reward}
    if not need <= set(logs.columns):
        raise ValidationError(
            "logs columns", sorted(logs.columns), "must include " + ", ".join(sorted(need))
        )
    df = logs.merge(slots, on="user_id", how="inner")
    if df.empty:
        raise ValidationError("logs", len(logs), "share no user with the evaluated users")
    when = pd.DatetimeIndex(pd.to_datetime(df["send_at_utc"], utc=True))
    hour = np.empty(len(df), dtype=np.int64)
    weekday = np.empty(len(df), dtype=np.int64)
    for zone, rows in df.groupby("timezone", sort=False).indices.items():
        local = when[rows].tz_convert(str(zone))
        hour[rows], weekday[rows] = local.hour, local.day_of_week
    r = df[reward].to_numpy(dtype=float) / df["propensity"].to_numpy(dtype=float)
    rows = np.arange(len(df))
    values = {p: (week_minutes(df, p)[rows, weekday] // 60 == hour) * r for p in POLICIES}
    return _table(values, df["history"].to_numpy())


def exploration_logs(
    world: SimulatedUsers,
    users: pd.DataFrame,
    options: BestTimeOptions,
    days: list[Any],
    channel: str = "push",
) -> pd.DataFrame:
    """Send every user a message at a uniformly random slot of the window on each of
    ``days`` and let the simulated world answer: the logs :func:`replay` needs
    (``reward_viewed``, ``reward_clicked``)."""
    ids = users["user_id"].astype(str).to_numpy(dtype=object)
    parts = []
    for d in days:
        day = pd.Timestamp(d).date()
        _, minute, prop = exploration_draw(ids, day, options.replace(explore_share=1.0))
        send = local_to_utc(day, minute, users["timezone"].to_numpy(dtype=object))
        parts.append(
            pd.DataFrame(
                {
                    "user_id": ids,
                    "send_at_utc": send.to_numpy(),
                    "propensity": prop,
                    "message_key": [f"bt-explore:{day}:{u}" for u in ids],
                }
            )
        )
    logs = pd.concat(parts, ignore_index=True)
    return _answered(world, logs, channel)


def _answered(world: SimulatedUsers, sends: pd.DataFrame, channel: str) -> pd.DataFrame:
    msgs = pd.DataFrame(
        {
            "user_id": sends["user_id"],
            "campaign_id": "besttime-eval",
            "variant": None,
            "channel": channel,
            "send_ts": sends["send_at_utc"],
            "labels": None,
            "message_key": sends["message_key"],
        }
    )
    ans = world.respond(msgs).select(["event", "message_key"]).to_pandas()
    out = sends.copy()
    for name, event in (
        ("reward_viewed", "Notification Viewed"),
        ("reward_clicked", "Notification Clicked"),
    ):
        keys = set(ans.loc[ans["event"] == event, "message_key"])
        out[name] = out["message_key"].isin(keys).astype(int)
    return out


def simulated_sends(
    world: SimulatedUsers, slots: pd.DataFrame, days: list[Any], channel: str = "push"
) -> pd.DataFrame:
    """On-policy simulated engagement: each policy's send on each day, answered by the world;
    the per-user view rate per policy and the paired ``bayes - clevertap`` difference."""
    values = {}
    ids = slots["user_id"].to_numpy(dtype=object)
    tz = slots["timezone"].to_numpy(dtype=object)
    for p in POLICIES:
        total = np.zeros(len(slots))
        for d in days:
            day = pd.Timestamp(d).date()
            send = local_to_utc(day, week_minutes(slots, p)[:, day.weekday()], tz)
            sends = pd.DataFrame(
                {
                    "user_id": ids,
                    "send_at_utc": send.to_numpy(),
                    "message_key": [f"bt-eval:{p}:{day}:{u}" for u in ids],
                }
            )
            total += _answered(world, sends, channel)["reward_viewed"].to_numpy()
        values[p] = total / len(days)
    return _table(values, slots["history"].to_numpy())


def truth_recovery(slots: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Share of users whose chosen slot falls in their true preferred hour (``estimate``;
    a policy with weekday-dependent slots scores each user's share of right weekdays)."""
    df = slots.merge(truth[["user_id", "preferred_hour"]], on="user_id")
    true = df["preferred_hour"].to_numpy()[:, None]
    values = {p: (week_minutes(df, p) // 60 == true).mean(axis=1) for p in POLICIES}
    return _table(values, df["history"].to_numpy())


@dataclasses.dataclass
class BestTimeEvaluation:
    """Result of :func:`evaluate`: one long table per metric (policy x history group)."""

    hit_rate: pd.DataFrame
    replay: pd.DataFrame | None
    recovery: pd.DataFrame | None
    simulated: pd.DataFrame | None
    slots: pd.DataFrame
    models: dict[str, BestTimeModel]
    info: dict[str, Any]

    def tables(self) -> dict[str, pd.DataFrame]:
        """The metric tables that were computed, by name."""
        out = {"hit_rate": self.hit_rate}
        for name in ("replay", "recovery", "simulated"):
            t = getattr(self, name)
            if t is not None:
                out[name] = t
        return out

    def to_pandas(self) -> pd.DataFrame:
        """All metric tables stacked with a ``metric`` column."""
        return pd.concat([t.assign(metric=k) for k, t in self.tables().items()], ignore_index=True)

    def compare(self, metric: str = "hit_rate") -> pd.DataFrame:
        """Wide view: policies as columns, history groups as rows (estimates)."""
        t = self.tables()[metric]
        return t.pivot(index="history", columns="policy", values="estimate")

    def __repr__(self) -> str:
        lines = [
            f"BestTimeEvaluation(cutoff={self.info['cutoff']}, eval_end={self.info['eval_end']})"
        ]
        for k, t in self.tables().items():
            a = t[t["history"] == "all"].set_index("policy")["estimate"].round(4).to_dict()
            lines.append(f"  {k}: {a}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [f"<h4>Best-time evaluation</h4><p>{html.escape(str(self.info))}</p>"]
        for k, t in self.tables().items():
            parts.append(
                f"<h5>{html.escape(k)}</h5>"
                + t.round(4).to_html(index=False, classes="el-besttime-eval")
            )
        return "".join(parts)


def evaluate(
    ws: Core,
    options: BestTimeOptions | None = None,
    *,
    fit_weeks: int | None = None,
    eval_weeks: int = 2,
    cutoff: Any = None,
    fixed_time: str = "12:00",
    logs: pd.DataFrame | None = None,
    reward: str = "reward_viewed",
    world: SimulatedUsers | None = None,
    sim_days: int = 0,
) -> BestTimeEvaluation:
    """Fit every policy on weeks ``1..fit_weeks`` and evaluate on the next ``eval_weeks``.

    Args:
        ws: the workspace.
        options: :class:`BestTimeOptions` (window, dnd, events, history settings).
        fit_weeks: weeks from the first engagement event to the cutoff (default: all
            but the last ``eval_weeks`` weeks); or give ``cutoff`` directly.
        eval_weeks: length of the evaluation period.
        fixed_time: local time of the fixed-time baseline.
        logs: exploration logs for :func:`replay` (only sends at or after the cutoff
            count), with the 0/1 ``reward`` column.
        world: the simulated world: adds true-hour recovery and, with ``sim_days > 0``,
            on-policy simulated sends on the first ``sim_days`` days after the cutoff.
    """
    o = options if options is not None else BestTimeOptions()
    if not isinstance(o, BestTimeOptions):
        raise ValidationError("options", type(o).__name__, "must be BestTimeOptions")
    check_int("eval_weeks", eval_weeks, low=1)
    check_int("sim_days", sim_days, low=0)
    parse_time("fixed_time", fixed_time)
    if logs is not None and not isinstance(logs, pd.DataFrame):
        raise ValidationError("logs", type(logs).__name__, "must be a DataFrame")
    first, last = (
        ws.engine.arrow(
            "SELECT min(ts) AS a, max(ts) AS b FROM events WHERE event IN (SELECT unnest($e))",
            {"e": list(o.events)},
        )
        .to_pylist()[0]
        .values()
    )
    if first is None:
        raise ValidationError("events", list(o.events), "have no occurrences in this workspace")
    start = pd.Timestamp(first).tz_convert("UTC").normalize()
    if cutoff is not None:
        cut = pd.Timestamp(check_datetime("cutoff", cutoff))
    elif fit_weeks is not None:
        cut = start + pd.Timedelta(weeks=check_int("fit_weeks", fit_weeks, low=1))
    else:
        cut = (
            pd.Timestamp(last).tz_convert("UTC").normalize() + pd.Timedelta(days=1)
        ) - pd.Timedelta(weeks=eval_weeks)
        if cut <= start:
            raise ValidationError("eval_weeks", eval_weeks, "leaves no data to fit on")
    end = cut + pd.Timedelta(weeks=eval_weeks)
    slots, models = policy_slots(ws, o, cut.to_pydatetime(), fixed_time)
    hits = hit_rates(ws, slots, o, cut.to_pydatetime(), end.to_pydatetime())
    rep = None
    if logs is not None:
        when = pd.to_datetime(logs["send_at_utc"], utc=True)
        rep = replay(logs[(when >= cut) & (when < end)], slots, reward)
    rec = sim = None
    if world is not None:
        rec = truth_recovery(slots, world.truth)
        if sim_days:
            days = [(cut + pd.Timedelta(days=i)).date() for i in range(sim_days)]
            sim = simulated_sends(world, slots, days)
    info = {
        "cutoff": str(cut),
        "eval_end": str(end),
        "fit_from": str(models["bayes"].history.start),
        "alpha": models["bayes"].alpha,
        "users": len(slots),
        "window": o.window,
        "events": o.events,
        "granularity": o.granularity,
    }
    if models["bayes"].beta is not None:
        info["beta"] = models["bayes"].beta
    return BestTimeEvaluation(hits, rep, rec, sim, slots, models, info)
