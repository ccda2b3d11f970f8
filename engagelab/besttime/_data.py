"""Engagement history per user and local hour: DuckDB scans, numpy bins.

DuckDB joins the engagement events of a period to the users (string id -> integer
index, time zone -> integer code) and hands back three integer columns; the local
time of every event comes from a table of UTC offsets per (time zone, quarter hour of
the period) built with the IANA database, so it is DST-correct (every transition of
every zone falls on a UTC quarter hour) and costs one array lookup per event.
:func:`local_hours_sql` computes the same thing with DuckDB's ICU ``timezone(tz, ts)``;
the tests check the two agree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from engagelab._validate import valid_timezone
from engagelab.errors import ValidationError

if TYPE_CHECKING:
    from engagelab.workspace import Workspace

__all__ = ["History", "connect", "history", "local_hours_sql", "user_table", "utc_offsets"]

_Q_US = 15 * 60 * 1_000_000  # a quarter hour in microseconds
_MIN_US = 60 * 1_000_000


def connect(ws: Workspace) -> duckdb.DuckDBPyConnection:
    """A private DuckDB connection with ``events`` / ``profiles`` views over ``ws``."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    for table in ("events", "profiles"):
        con.execute(f"CREATE VIEW {table} AS {ws.engine.view_sql(table)}")
    return con


@lru_cache(maxsize=1)
def _duckdb_zones() -> frozenset[str]:
    con = duckdb.connect(":memory:")
    try:
        return frozenset(r[0] for r in con.sql("SELECT name FROM pg_timezone_names()").fetchall())
    finally:
        con.close()


def zone_ok(tz: Any) -> bool:
    """True if both Python's zoneinfo and DuckDB's ICU know the zone."""
    return isinstance(tz, str) and valid_timezone(tz) and tz in _duckdb_zones()


def user_table(ws: Workspace, users: pd.DataFrame | None, prior_by: str | None) -> pd.DataFrame:
    """users with ``user_id, timezone, tz_ok, group`` (``group`` = the prior_by value or '')."""
    if users is None:
        cols = "user_id, timezone" + (f', CAST("{prior_by}" AS VARCHAR) AS grp' if prior_by else "")
        if prior_by and prior_by not in ws.sql("SELECT * FROM profiles LIMIT 0").columns:
            raise ValidationError("prior_by", prior_by, "must be a column of profiles")
        users = ws.engine.arrow(f"SELECT {cols} FROM profiles ORDER BY user_id").to_pandas()
    else:
        if not isinstance(users, pd.DataFrame) or not {"user_id", "timezone"} <= set(users.columns):
            raise ValidationError(
                "users", type(users).__name__, "must be a DataFrame with user_id and timezone"
            )
        users = users.drop_duplicates("user_id").reset_index(drop=True)
        if prior_by:
            if prior_by in users.columns:
                users = users.assign(grp=users[prior_by].astype("string"))
            else:
                prof = ws.sql(f'SELECT user_id, CAST("{prior_by}" AS VARCHAR) AS grp FROM profiles')
                users = users.merge(prof, on="user_id", how="left")
    out = pd.DataFrame(
        {
            "user_id": users["user_id"].astype(str).to_numpy(dtype=object),
            "timezone": users["timezone"].to_numpy(dtype=object),
        }
    )
    codes, zones = pd.factorize(out["timezone"], use_na_sentinel=True)
    ok_zone = np.array([zone_ok(z) for z in zones], dtype=bool)
    out["tz_ok"] = (codes >= 0) & ok_zone[np.maximum(codes, 0)] if len(zones) else False
    out["group"] = users["grp"].fillna("").to_numpy(dtype=object) if "grp" in users else ""
    return out


def utc_offsets(zones: list[str], start_us: int, end_us: int) -> np.ndarray:
    """UTC offset in microseconds of each zone at each quarter hour from ``start_us``."""
    n = max(1, -(-(end_us - start_us) // _Q_US))
    grid = pd.DatetimeIndex(
        pd.to_datetime(start_us + np.arange(n + 1, dtype=np.int64) * _Q_US, unit="us", utc=True)
    ).as_unit("us")
    out = np.zeros((len(zones), n + 1), dtype=np.int64)
    naive = grid.tz_localize(None).asi8
    for i, z in enumerate(zones):
        out[i] = grid.tz_convert(z).tz_localize(None).asi8 - naive
    return out


@dataclasses.dataclass
class History:
    """Engagement events of a period, binned per user and local hour.

    Attributes:
        users: the user table (index = row of the arrays).
        counts: ``(users, 24)`` raw event counts.
        weights: ``(users, 24)`` recency-weighted counts (scaled to sum to the event count).
        start, end: the period ``[start, end)``.
    """

    users: pd.DataFrame
    counts: np.ndarray
    weights: np.ndarray
    start: dt.datetime
    end: dt.datetime


def _scan(
    con: duckdb.DuckDBPyConnection, users: pd.DataFrame, events: tuple[str, ...], start, end
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    ok = users["tz_ok"].to_numpy()
    codes, zones = pd.factorize(users["timezone"].where(ok, None))
    reg = pa.table(
        {
            "user_id": pa.array(users["user_id"][ok].to_numpy(dtype=object), pa.string()),
            "idx": pa.array(np.flatnonzero(ok).astype(np.int32)),
            "tzi": pa.array(codes[ok].astype(np.int16)),
        }
    )
    con.register("__bt_users", reg)
    try:
        res = con.execute(
            """
            SELECT u.idx, u.tzi, epoch_us(e.ts) AS t
            FROM events e JOIN __bt_users u ON e.user_id = u.user_id
            WHERE e.event IN (SELECT unnest($events)) AND e.ts >= $start AND e.ts < $end
            """,
            {"events": list(events), "start": start, "end": end},
        ).fetchnumpy()
    finally:
        con.unregister("__bt_users")
    return (
        np.asarray(res["idx"], dtype=np.int64),
        np.asarray(res["tzi"], dtype=np.int64),
        np.asarray(res["t"], dtype=np.int64),
        list(zones),
    )


def local_minutes(tzi: np.ndarray, t_us: np.ndarray, zones: list[str], start_us: int, end_us: int):
    """(local minute of day, local weekday Monday=0) of UTC microsecond times."""
    if t_us.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    table = utc_offsets(zones, start_us, end_us)
    q = (t_us - start_us) // _Q_US
    q += tzi * table.shape[1]
    local_min = (t_us + table.ravel()[q]) // _MIN_US
    day = local_min // 1440
    return local_min - day * 1440, (day + 3) % 7  # 1970-01-01 was a Thursday


def history(
    ws: Workspace,
    users: pd.DataFrame,
    events: tuple[str, ...],
    start: dt.datetime,
    end: dt.datetime,
    half_life_days: float | None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> History:
    """Bin the ``events`` in ``[start, end)`` of ``users`` by local hour (see module doc)."""
    own = con is None
    con = con or connect(ws)
    try:
        idx, tzi, t, zones = _scan(con, users, events, start, end)
    finally:
        if own:
            con.close()
    start_us = int(pd.Timestamp(start).value // 1000)
    end_us = int(pd.Timestamp(end).value // 1000)
    minute, _ = local_minutes(tzi, t, zones, start_us, end_us)
    key = idx * 24 + minute // 60
    n = len(users)
    counts = np.bincount(key, minlength=n * 24).reshape(n, 24)
    if half_life_days is None:
        weights = counts.astype(np.float64)
    else:
        age_days = (end_us - t) / 86_400e6
        w = np.exp2(-age_days / half_life_days)
        # Rescaled so the weights sum to the number of events: recency changes the
        # relative weight of old and new events, not the evidence scale the prior
        # strength is fitted on.
        w *= t.size / max(float(w.sum()), 1e-300)
        weights = np.bincount(key, weights=w, minlength=n * 24).reshape(n, 24)
    return History(users, counts, weights, start, end)


def local_hours_sql(ws: Workspace, users: pd.DataFrame, events: tuple[str, ...], start, end):
    """Reference: counts per (user_id, local hour) with DuckDB's ``timezone(tz, ts)``."""
    con = connect(ws)
    try:
        ok = users[users["tz_ok"]]
        con.register(
            "__bt_ref", pa.table({"user_id": ok["user_id"].astype(str), "tz": ok["timezone"]})
        )
        return con.execute(
            """
            SELECT e.user_id, CAST(hour(timezone(u.tz, e.ts)) AS INTEGER) AS hour, count(*) AS n
            FROM events e JOIN __bt_ref u USING (user_id)
            WHERE e.event IN (SELECT unnest($events)) AND e.ts >= $start AND e.ts < $end
            GROUP BY ALL ORDER BY ALL
            """,
            {"events": list(events), "start": start, "end": end},
        ).df()
    finally:
        con.close()
