"""The retention query: one DuckDB-dialect SQL statement aggregating to cohort × period.

Every user value enters the SQL as a literal rendered by sqlglot (quoted and escaped),
never by string formatting, so the same text runs on DuckDB and, transpiled, on Spark
(whose engine takes no bound parameters).

The query returns rows ``(cohort, grp, k, n, last_t0)``:

* ``k = -1``: the cohort's size ``n`` and its latest start time ``last_t0``;
* ``k >= 0``: ``n`` users of the cohort retained in column ``k`` (mode ``'on'``), or whose
  last return falls in column ``k`` (mode ``'on-or-after'``; the caller sums these from
  the right).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlglot import exp

from engagelab.retention.spec import CHUNK_US, RetentionSpec

__all__ = ["ident", "lit", "retention_sql", "start_rows_sql"]


def lit(value: Any) -> str:
    """A SQL literal for ``value`` (strings escaped by sqlglot)."""
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"CAST({exp.convert(text).sql('duckdb')} AS TIMESTAMP)"
    return exp.convert(value).sql("duckdb")


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return exp.to_identifier(name, quoted=True).sql("duckdb")


def _filters(where: tuple[tuple[str, tuple[Any, ...]], ...], alias: str = "") -> list[str]:
    pre = f"{alias}." if alias else ""
    out = []
    for col, vals in where:
        if len(vals) == 1:
            out.append(f"{pre}{ident(col)} = {lit(vals[0])}")
        else:
            out.append(f"{pre}{ident(col)} IN ({', '.join(lit(v) for v in vals)})")
    return out


def start_rows_sql(spec: RetentionSpec) -> str:
    """``SELECT user_id, ts`` of the start events (event, filters and label)."""
    conds = [f"event = {lit(spec.start_event)}", *_filters(spec.start_where)]
    if spec.start_label is not None:
        conds.append(f"list_contains(labels, {lit(spec.start_label)})")
    return f"SELECT user_id, ts FROM events WHERE {' AND '.join(conds)}"


_DAY_US = 86_400_000_000


def _period_index(spec: RetentionSpec, t0: str, ts: str, portable: bool) -> str:
    """Period number of ``ts`` after ``t0``.

    DuckDB gets integer arithmetic on ``epoch_us`` (UTC days; weeks start on Monday, and
    1970-01-01 was a Thursday), which avoids time-zone-aware casts per row; ``portable``
    SQL (for Spark via sqlglot) uses ``date_diff`` on dates, which sqlglot transpiles.
    """
    if not portable and spec.window == "rolling":
        return f"((epoch_us({ts}) - epoch_us({t0})) // {CHUNK_US[spec.period]})"
    if not portable and spec.period == "day":
        return f"(epoch_us({ts}) // {_DAY_US} - epoch_us({t0}) // {_DAY_US})"
    if not portable and spec.period == "week":
        return f"((epoch_us({ts}) // {_DAY_US} + 3) // 7 - (epoch_us({t0}) // {_DAY_US} + 3) // 7)"
    if spec.window == "rolling":
        return f"CAST(floor(date_diff('microsecond', {t0}, {ts}) / {CHUNK_US[spec.period]}.0) AS BIGINT)"
    if spec.period == "day":
        return f"date_diff('day', CAST({t0} AS DATE), CAST({ts} AS DATE))"
    if spec.period == "week":
        return (
            f"CAST(date_diff('day', CAST(date_trunc('week', {t0}) AS DATE), "
            f"CAST(date_trunc('week', {ts}) AS DATE)) / 7 AS BIGINT)"
        )
    return f"((year({ts}) - year({t0})) * 12 + month({ts}) - month({t0}))"


def _column(spec: RetentionSpec, k: str) -> str:
    """The column number of period number ``k`` (NULL when no column covers it)."""
    if not spec.brackets:
        return f"CASE WHEN {k} < {spec.periods} THEN {k} END"
    whens = " ".join(
        f"WHEN {k} >= {lo} AND {k} <= {hi} THEN {i}" for i, (lo, hi) in enumerate(spec.bounds())
    )
    return f"CASE {whens} END"


def _last_column(spec: RetentionSpec, k: str) -> str:
    """For on-or-after: the last column whose first period is <= ``k`` (NULL if none)."""
    whens = " ".join(
        f"WHEN {k} >= {lo} THEN {i}" for i, (lo, _hi) in reversed(list(enumerate(spec.bounds())))
    )
    return f"CASE {whens} END"


def retention_sql(
    spec: RetentionSpec,
    until: dt.datetime,
    *,
    starts: str | None = None,
    breakdown_sql: str | None = None,
    portable: bool = False,
) -> str:
    """The whole retention query (see the module docstring for its output).

    Args:
        spec: the query.
        until: end of observation (exclusive): later starts and returns are ignored.
        starts: SQL returning ``user_id, ts`` of the start events (default from ``spec``).
        breakdown_sql: SQL expression over profile alias ``p`` for the breakdown group.
        portable: avoid DuckDB-only functions (for transpiling to Spark SQL).
    """
    starts = starts or start_rows_sql(spec)
    grp = breakdown_sql or "CAST(NULL AS VARCHAR)"
    unit = spec.period
    t_until = lit(until)

    def since(col: str) -> str:
        return f" AND {col} >= {lit(spec.since)}" if spec.since is not None else ""

    if spec.cohort == "first":
        first = f"SELECT user_id, min(ts) AS t0 FROM ({starts}) AS st GROUP BY user_id"
        inst = f"SELECT user_id, t0 FROM ({first}) AS f WHERE t0 < {t_until}{since('t0')}"
    else:
        inst = (
            f"SELECT user_id, min(ts) AS t0 FROM ({starts}) AS st WHERE ts < {t_until}{since('ts')} "
            f"GROUP BY user_id, date_trunc('{unit}', ts)"
        )
    if breakdown_sql:
        inst_g = (
            f"SELECT i.user_id, i.t0, date_trunc('{unit}', i.t0) AS cohort, {grp} AS grp "
            f"FROM ({inst}) AS i LEFT JOIN profiles AS p ON p.user_id = i.user_id"
        )
    else:
        inst_g = f"SELECT user_id, t0, date_trunc('{unit}', t0) AS cohort, {grp} AS grp FROM ({inst}) AS i"
    ret_conds = [
        f"event = {lit(spec.return_event)}",
        f"ts < {t_until}",
        *_filters(spec.return_where),
    ]
    returns = f"SELECT user_id, ts FROM events WHERE {' AND '.join(ret_conds)}"
    k = _period_index(spec, "s.t0", "r.ts", portable)
    joined = (
        f"SELECT s.user_id, s.cohort, s.grp, {k} AS k FROM s "
        f"JOIN ({returns}) AS r ON r.user_id = s.user_id AND r.ts >= s.t0"
    )
    if spec.mode == "on":
        cells = (
            f"SELECT cohort, grp, c AS k, count(DISTINCT user_id) AS n FROM "
            f"(SELECT user_id, cohort, grp, {_column(spec, 'k')} AS c FROM j) AS jc "
            f"WHERE c IS NOT NULL GROUP BY cohort, grp, c"
        )
    else:
        cells = (
            f"SELECT cohort, grp, {_last_column(spec, 'kmax')} AS k, count(*) AS n FROM "
            f"(SELECT user_id, cohort, grp, max(k) AS kmax FROM j GROUP BY user_id, cohort, grp) AS m "
            f"WHERE kmax >= {spec.bounds()[0][0]} GROUP BY cohort, grp, {_last_column(spec, 'kmax')}"
        )
    return (
        f"WITH s AS ({inst_g}), j AS ({joined}) "
        f"SELECT cohort, grp, CAST(-1 AS BIGINT) AS k, count(*) AS n, max(t0) AS last_t0 "
        f"FROM s GROUP BY cohort, grp "
        f"UNION ALL SELECT cohort, grp, CAST(k AS BIGINT) AS k, n, CAST(NULL AS TIMESTAMP) AS last_t0 "
        f"FROM ({cells}) AS cc"
    )
