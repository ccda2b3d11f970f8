"""A straightforward pandas retention, written independently of the SQL engine.

Loops over cohort instances; no shared code with engagelab.retention beyond the spec
fields it reads.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
ROLL = {"day": DAY, "week": 7 * DAY, "month": 30 * DAY}


def trunc(ts: pd.Timestamp, period: str, tz: str = "UTC") -> pd.Timestamp:
    """Start of the calendar period of ``ts`` on the wall clock of ``tz``."""
    day = ts.tz_convert(tz).normalize()
    if period == "day":
        return day
    if period == "week":
        return day - pd.Timedelta(days=day.weekday())
    return day.replace(day=1)


def period_number(t0: pd.Timestamp, ts: pd.Timestamp, period: str, window: str, tz="UTC") -> int:
    if window == "rolling":
        return math.floor((ts - t0) / ROLL[period])
    t0, ts = t0.tz_convert(tz), ts.tz_convert(tz)
    if period == "day":  # calendar dates, whatever the length of the days in between
        return (ts.date() - t0.date()).days
    if period == "week":
        return (trunc(ts, "week", tz).date() - trunc(t0, "week", tz).date()).days // 7
    return (ts.year - t0.year) * 12 + ts.month - t0.month


def period_end(cohort, last_t0, hi, period, window):
    if window == "rolling":
        return last_t0 + (hi + 1) * ROLL[period]
    unit = {"day": "days", "week": "weeks", "month": "months"}[period]
    return cohort + pd.DateOffset(**{unit: hi + 1})  # on the wall clock of the cohort's zone


def _match(df, where):
    m = np.ones(len(df), dtype=bool)
    for col, vals in (where or {}).items():
        vals = vals if isinstance(vals, list) else [vals]
        m &= df[col].isin(vals).to_numpy()
    return m


def reference(
    events,
    *,
    start,
    ret,
    period="day",
    periods=8,
    mode="on",
    cohort="first",
    window="calendar",
    brackets=None,
    start_where=None,
    return_where=None,
    until,
    profiles=None,
    breakdown=None,
    tz="UTC",
):
    """Long table: group, cohort (NaT = all), column, size, retained (NaN if censored)."""
    until = pd.Timestamp(until)
    s = events[(events["event"] == start) & _match(events, start_where) & (events["ts"] < until)]
    if cohort == "first":
        first = (
            events[(events["event"] == start) & _match(events, start_where)]
            .groupby("user_id")["ts"]
            .min()
        )
        inst = [(u, t) for u, t in first.items() if t < until]
    else:
        inst = []
        for u, part in s.groupby("user_id"):
            for _, g in part.groupby(part["ts"].map(lambda t: trunc(t, period, tz))):
                inst.append((u, g["ts"].min()))
    r = events[(events["event"] == ret) & _match(events, return_where) & (events["ts"] < until)]
    ret_by_user = {u: sorted(g["ts"]) for u, g in r.groupby("user_id")}
    bounds = (
        list(zip(brackets[:-1], [b - 1 for b in brackets[1:]], strict=True))
        if brackets
        else [(k, k) for k in range(periods)]
    )
    grp_of = {}
    if breakdown:
        grp_of = {
            u: ("(missing)" if pd.isna(v) else str(v))
            for u, v in profiles.set_index("user_id")[breakdown].items()
        }
    rows = []
    for u, t0 in inst:
        ks = [period_number(t0, t, period, window, tz) for t in ret_by_user.get(u, []) if t >= t0]
        hit = []
        for lo, hi in bounds:
            if mode == "on":
                hit.append(any(lo <= k <= hi for k in ks))
            else:
                hit.append(any(k >= lo for k in ks))
        rows.append(
            {
                "group": grp_of.get(u, "(missing)") if breakdown else "",
                "cohort": trunc(t0, period, tz),
                "t0": t0,
                "hits": hit,
            }
        )
    out = []
    inst_df = pd.DataFrame(rows)
    if inst_df.empty:
        return pd.DataFrame(columns=["group", "cohort", "j", "size", "retained"])
    for (g, c), part in inst_df.groupby(["group", "cohort"]):
        last = part["t0"].max()
        for j, (_lo, hi) in enumerate(bounds):
            seen = period_end(c, last, hi, period, window) <= until
            out.append(
                {
                    "group": g,
                    "cohort": c,
                    "j": j,
                    "size": len(part),
                    "retained": float(sum(h[j] for h in part["hits"])) if seen else np.nan,
                }
            )
    out = pd.DataFrame(out)
    pooled = (
        out.dropna(subset=["retained"])
        .groupby(["group", "j"])
        .agg(size=("size", "sum"), retained=("retained", "sum"))
        .reset_index()
    )
    grid = pd.DataFrame(
        [(g, j) for g in out["group"].unique() for j in range(len(bounds))], columns=["group", "j"]
    )
    pooled = grid.merge(pooled, on=["group", "j"], how="left")
    pooled["cohort"] = pd.NaT
    return pd.concat([out, pooled], ignore_index=True)
