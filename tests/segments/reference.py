"""An independent, deliberately plain pandas/Python evaluation of segment specs.

It never builds SQL: it walks the spec's fields and checks rows one by one with
Python's own operators, ``str`` methods and ``re``. The SQL compiler is tested by
comparing its DuckDB result with :func:`evaluate`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from engagelab.segments import (
    And,
    Condition,
    ConstantProperty,
    DidEvent,
    FirstOrLast,
    Geofence,
    InSegment,
    Not,
    Or,
    PropertyFilter,
    Segment,
    SentLabel,
    Window,
)

EARTH_KM = 6371.0088


def missing(x: Any) -> bool:
    if x is None or x is pd.NA or x is pd.NaT:
        return True
    return isinstance(x, float) and math.isnan(x)


def satisfies(x: Any, op: str, v: Any) -> bool:  # noqa: C901
    """Does one stored value ``x`` satisfy ``op v``? Missing values only satisfy not_exists."""
    if op == "not_exists":
        return missing(x)
    if missing(x):
        return False
    if op == "exists":
        return True
    if op == "=":
        return x == v
    if op == "!=":
        return x != v
    if op == "<":
        return x < v
    if op == "<=":
        return x <= v
    if op == ">":
        return x > v
    if op == ">=":
        return x >= v
    if op == "between":
        return v[0] <= x <= v[1]
    if op == "in":
        return any(x == item for item in v)
    if op == "contains":
        if isinstance(x, str):
            return v in x
        return v in list(x)
    if op == "starts_with":
        return x.startswith(v)
    if op == "matches":
        return re.search(v, x, re.ASCII) is not None
    if op == "not_matches":
        return re.search(v, x, re.ASCII) is None
    raise AssertionError(op)


def bounds(window: Window, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    if window.last_days is not None:
        return at - dt.timedelta(days=window.last_days), at
    if isinstance(window.start, dt.datetime):
        return window.start, window.end  # type: ignore[return-value]
    start = dt.datetime(window.start.year, window.start.month, window.start.day, tzinfo=dt.UTC)
    end = dt.datetime(window.end.year, window.end.month, window.end.day, tzinfo=dt.UTC)
    return start, end + dt.timedelta(days=1)


def _rows(
    events: pd.DataFrame,
    event: str | None,
    where: tuple = (),
    window: Window | None = None,
    at: dt.datetime | None = None,
) -> pd.DataFrame:
    keep = []
    lo = hi = None
    if window is not None:
        lo, hi = bounds(window, at)
    records = events.to_dict("records")
    for row in records:
        ok = (event is None or row["event"] == event) and not missing(row["user_id"])
        if ok and window is not None:
            ok = lo <= row["ts"] < hi
        for f in where:
            ok = ok and satisfies(row.get(f.column), f.op, f.value)
        keep.append(ok)
    return events[np.array(keep, dtype=bool)] if len(events) else events


def haversine_km(lat: float, lon: float, lat0: float, lon0: float) -> float:
    p1, p2 = math.radians(lat0), math.radians(lat)
    dphi = p2 - p1
    dlmb = math.radians(lon) - math.radians(lon0)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_KM * math.asin(math.sqrt(min(1.0, a)))


def _agg_ok(values: list[float], func: str, op: str, v: Any) -> bool:
    present = [x for x in values if not missing(x)]
    if not present:
        return False
    stat = sum(present) if func == "sum" else sum(present) / len(present)
    return satisfies(stat, op, v)


def evaluate(  # noqa: C901
    cond: Condition | Segment,
    events: pd.DataFrame,
    profiles: pd.DataFrame,
    at: dt.datetime,
    resolve: Callable[[str], Any] | None = None,
) -> set[str]:
    """User ids (with a profile) satisfying ``cond``."""
    if isinstance(cond, Segment):
        cond = cond.condition
    universe = {u for u in profiles["user_id"].tolist() if not missing(u)}

    def ev(c: Condition) -> set[str]:  # noqa: C901
        if isinstance(c, And):
            out = set(universe)
            for sub in c.conditions:
                out &= ev(sub)
            return out
        if isinstance(c, Or):
            out = set()
            for sub in c.conditions:
                out |= ev(sub)
            return out
        if isinstance(c, Not):
            return universe - ev(c.condition)
        if isinstance(c, PropertyFilter):
            return {
                u for u, x in zip(profiles["user_id"].tolist(), profiles[c.column].tolist(), strict=True)
                if not missing(u) and satisfies(x, c.op, c.value)
            }  # fmt: skip
        if isinstance(c, DidEvent):
            rows = _rows(events, c.event, c.where, c.window, at)
            per_user: dict[str, list[dict]] = {}
            for row in rows.to_dict("records"):
                per_user.setdefault(row["user_id"], []).append(row)
            if c.at_least == 0:
                return universe - {u for u, rs in per_user.items() if len(rs) > c.at_most}
            out = set()
            for u, rs in per_user.items():
                ok = len(rs) >= c.at_least and (c.at_most is None or len(rs) <= c.at_most)
                if ok and c.aggregate is not None:
                    a = c.aggregate
                    ok = _agg_ok([r[a.column] for r in rs], a.func, a.op, a.value)
                if ok:
                    out.add(u)
            return out & universe
        if isinstance(c, FirstOrLast):
            rows = _rows(events, c.event, c.where)
            lo, hi = bounds(c.window, at)
            stamps: dict[str, list] = {}
            for row in rows.to_dict("records"):
                stamps.setdefault(row["user_id"], []).append(row["ts"])
            pick = min if c.which == "first" else max
            return {u for u, ts in stamps.items() if lo <= pick(ts) < hi} & universe
        if isinstance(c, ConstantProperty):

            def pairs(event: str) -> set:
                rows = _rows(events, event, (), c.window, at)
                return {
                    (r["user_id"], r[c.column])
                    for r in rows.to_dict("records")
                    if not missing(r[c.column])
                }

            return {u for u, _ in pairs(c.did_event) - pairs(c.not_event)} & universe
        if isinstance(c, Geofence):
            if c.source == "profile":
                table = profiles.to_dict("records")
            else:
                table = _rows(events, c.event, (), c.window, at).to_dict("records")
            out = set()
            for r in table:
                if missing(r["latitude"]) or missing(r["longitude"]) or missing(r["user_id"]):
                    continue
                if (
                    haversine_km(r["latitude"], r["longitude"], c.latitude, c.longitude)
                    <= c.radius_km
                ):
                    out.add(r["user_id"])
            return out & universe
        if isinstance(c, SentLabel):
            rows = _rows(events, "Notification Sent", (), c.window, at)
            return {
                r["user_id"]
                for r in rows.to_dict("records")
                if not missing(r["labels"]) and c.label in list(r["labels"])
            } & universe
        if isinstance(c, InSegment):
            return ev(_as_condition(resolve(c.name)))
        raise AssertionError(type(c))

    return ev(cond) & universe


def _as_condition(found: Any) -> Condition:
    return found.condition if isinstance(found, Segment) else found
