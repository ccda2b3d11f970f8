"""The retention query: one DuckDB-dialect SQL statement aggregating to cohort × period.

Every user value enters the SQL as a literal rendered by sqlglot (quoted and escaped),
never by string formatting, so the same text runs on DuckDB and, transpiled, on Spark
(whose engine takes no bound parameters).

The query returns rows ``(cohort, grp, k, n, last_t0)``:

* ``k = -1``: the cohort's size ``n`` and its latest start time ``last_t0``;
* ``k >= 0``: ``n`` users of the cohort retained in column ``k`` (mode ``'on'``), or whose
  last return falls in column ``k`` (mode ``'on-or-after'``; the caller sums these from
  the right).

Two plans give the same rows:

* the **join** plan (any spec): first starts per user, joined to every return event, and
  ``count(DISTINCT user_id)`` per cohort × column;
* the **per-user** plan (DuckDB; first-time cohorts on calendar periods whose start and
  return rows are the same events, and a data range of at most 64 periods — the common
  "retention of event E" query): one ``GROUP BY user_id`` computes the first start and a
  64-bit mask of the periods with an event, so no join and no distinct count are needed.
  Its ``k >= 0`` rows are already cumulative in mode ``'on-or-after'`` (``cumulative``
  tells the caller). See ``benchmarks/RESULTS.md`` (retention) for what it saves.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlglot import exp

from engagelab.retention.spec import CHUNK_US, RetentionSpec

__all__ = [
    "ident", "lit", "local", "per_user_origin", "per_user_sql", "period_number", "retention_sql",
    "start_rows_sql",
]  # fmt: skip


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
# DuckDB's integer ``//`` truncates towards zero; shifting by a whole number of weeks
# (about 290 years) before dividing makes it a floor division for any ts after 1680.
_SHIFT_DAYS = 7 * 15_000
_SHIFT_US = _SHIFT_DAYS * _DAY_US
#: widest data range, in periods, of the per-user plan (one bit per period in a UBIGINT)
MASK_BITS = 64


def _epoch_day(ts: str) -> str:
    return f"((epoch_us({ts}) + {_SHIFT_US}) // {_DAY_US} - {_SHIFT_DAYS})"


def local(spec: RetentionSpec, ts: str) -> str:
    """``ts`` as wall-clock time in the spec's time zone (unchanged for UTC).

    ``AT TIME ZONE`` on a TIMESTAMPTZ gives the local TIMESTAMP in DuckDB; sqlglot writes
    it as ``from_utc_timestamp`` for Spark (whose session time zone is UTC).
    """
    return ts if spec.utc else f"({ts} AT TIME ZONE {lit(spec.timezone)})"


def _calendar_number(period: str, ts: str) -> str:
    """Absolute calendar period number of ``ts`` (DuckDB integer arithmetic on the wall
    clock of ``ts``: pass :func:`local` of a column for another time zone than UTC).

    Days since 1970-01-01; Monday-based weeks (1970-01-01 was a Thursday, hence ``+ 3``);
    months since year 0.
    """
    if period == "day":
        return _epoch_day(ts)
    if period == "week":
        return f"(({_epoch_day(ts)} + 3 + {_SHIFT_DAYS}) // 7 - {_SHIFT_DAYS // 7})"
    return f"(year({ts}) * 12 + month({ts}) - 1)"


def period_number(period: str, ts: dt.datetime, zone: dt.tzinfo = dt.UTC) -> int:
    """Python twin of the SQL calendar period number (for the per-user plan's origin)."""
    t = ts.astimezone(zone)
    if period == "month":
        return t.year * 12 + t.month - 1
    day = (t.date() - dt.date(1970, 1, 1)).days
    return day if period == "day" else (day + 3) // 7


def _period_start(period: str, number: str, utc: bool = True) -> str:
    """The start of calendar period ``number``: a UTC TIMESTAMPTZ, or (``utc=False``) the
    local wall-clock TIMESTAMP, which the caller places in its time zone."""
    if period == "month":
        ts = f"make_timestamp(CAST({number} // 12 AS BIGINT), CAST({number} % 12 + 1 AS BIGINT), 1, 0, 0, 0)"
    else:
        days = number if period == "day" else f"({number} * 7 - 3)"
        ts = f"make_timestamp(CAST({days} AS BIGINT) * {_DAY_US})"
    return f"CAST({ts} AS TIMESTAMPTZ)" if utc else ts


def _period_index(spec: RetentionSpec, t0: str, ts: str, portable: bool) -> str:
    """Period number of ``ts`` after ``t0``.

    DuckDB gets integer arithmetic on ``epoch_us`` of the wall clock in the spec's time
    zone (weeks start on Monday, and 1970-01-01 was a Thursday), which needs no
    time-zone-aware casts per row for UTC; ``portable``
    SQL (for Spark via sqlglot) uses ``date_diff`` on dates, which sqlglot transpiles.
    """
    if not portable and spec.window == "rolling":  # ts >= t0: truncation is floor here
        return f"((epoch_us({ts}) - epoch_us({t0})) // {CHUNK_US[spec.period]})"
    if spec.window == "rolling":
        return f"CAST(floor(date_diff('microsecond', {t0}, {ts}) / {CHUNK_US[spec.period]}.0) AS BIGINT)"
    t0, ts = local(spec, t0), local(spec, ts)
    if not portable and spec.period in ("day", "week"):
        return f"({_calendar_number(spec.period, ts)} - {_calendar_number(spec.period, t0)})"
    if spec.period == "day":
        return f"date_diff('day', CAST({t0} AS DATE), CAST({ts} AS DATE))"
    if spec.period == "week":
        return (
            f"CAST(date_diff('day', CAST(date_trunc('week', {t0}) AS DATE), "
            f"CAST(date_trunc('week', {ts}) AS DATE)) / 7 AS BIGINT)"
        )
    return f"((year({ts}) - year({t0})) * 12 + month({ts}) - month({t0}))"


def _cohort(spec: RetentionSpec, t0: str) -> str:
    """The cohort (period start) of ``t0``: a UTC TIMESTAMPTZ, or for another zone the
    local wall-clock start as text, which reads the same from DuckDB and Spark (whose
    timestamps carry no zone) and which the caller places in the zone."""
    start = f"date_trunc('{spec.period}', {local(spec, t0)})"
    return start if spec.utc else f"CAST({start} AS VARCHAR)"


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
            f"GROUP BY user_id, date_trunc('{unit}', {local(spec, 'ts')})"
        )
    if breakdown_sql:
        inst_g = (
            f"SELECT i.user_id, i.t0, {_cohort(spec, 'i.t0')} AS cohort, {grp} AS grp "
            f"FROM ({inst}) AS i LEFT JOIN profiles AS p ON p.user_id = i.user_id"
        )
    else:
        inst_g = (
            f"SELECT user_id, t0, {_cohort(spec, 't0')} AS cohort, {grp} AS grp FROM ({inst}) AS i"
        )
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


# --------------------------------------------------------------------- per-user plan
def per_user_origin(
    spec: RetentionSpec, until: dt.datetime, first: dt.datetime, *, starts: str | None,
    portable: bool,
) -> int | None:  # fmt: skip
    """The first period number of the per-user plan, or None when that plan does not apply.

    It applies to first-time cohorts on calendar periods whose return rows are the start
    rows (same event and filters, no label: every user is retained in period 0 by their
    own first event), on DuckDB, when the observed range spans at most 64 periods.
    """
    if portable or starts is not None or spec.cohort != "first" or spec.window != "calendar":
        return None
    if (spec.return_event, spec.return_where, spec.start_label) != (
        spec.start_event, spec.start_where, None,
    ):  # fmt: skip
        return None
    low = max(first, spec.since) if spec.since is not None else first
    origin = period_number(spec.period, low, spec.zone)
    last = period_number(spec.period, until - dt.timedelta(microseconds=1), spec.zone)
    if last - origin >= MASK_BITS or spec.bounds()[0][0] >= MASK_BITS:
        return None
    return origin


def _masks(spec: RetentionSpec) -> str:
    """``VALUES (column, low, high)``: a user with relative period mask ``rb`` counts in the
    column when ``rb & low <> 0`` (mode 'on': ``low`` has the column's bits), or, for
    on-or-after, when ``low <= rb < high`` (its last return is in that column)."""
    full = (1 << MASK_BITS) - 1
    rows = []
    bounds = [(c, lo, hi) for c, (lo, hi) in enumerate(spec.bounds()) if lo < MASK_BITS]
    for i, (c, lo, hi) in enumerate(bounds):
        if spec.mode == "on":
            bits = ((1 << min(hi + 1, MASK_BITS)) - 1) & full & ~((1 << lo) - 1)
            rows.append(f"({c}, CAST({bits} AS UBIGINT), CAST(NULL AS UBIGINT))")
        else:
            nxt = bounds[i + 1][1] if i + 1 < len(bounds) else None
            high = "CAST(NULL AS UBIGINT)" if nxt is None else f"CAST({1 << nxt} AS UBIGINT)"
            rows.append(f"({c}, CAST({1 << lo} AS UBIGINT), {high})")
    return f"(VALUES {', '.join(rows)}) AS m(c, low, high)"


def per_user_sql(
    spec: RetentionSpec, until: dt.datetime, origin: int, *, breakdown_sql: str | None = None
) -> str:
    """The per-user plan (see the module docstring); same output rows as :func:`retention_sql`.

    ``bits`` has bit ``p - origin`` set when the user has an event in calendar period
    ``p``; shifted right by the user's first period it becomes ``rb``, the periods after
    the cohort's start. Users with the same cohort, group and ``rb`` are counted once.
    """
    p_ts = _calendar_number(spec.period, local(spec, "ts"))
    p_t0 = _calendar_number(spec.period, local(spec, "t0"))
    one = "CAST(1 AS UBIGINT)"
    if spec.since is not None:
        bits = (
            f"bit_or({one} << CAST(greatest({p_ts} - {origin}, 0) AS UBIGINT)) "
            f"FILTER (WHERE ts >= {lit(spec.since)})"
        )
        since = f" WHERE t0 >= {lit(spec.since)}"
    else:
        bits, since = f"bit_or({one} << CAST({p_ts} - {origin} AS UBIGINT))", ""
    per_user = (
        f"SELECT user_id, min(ts) AS t0, {bits} AS bits FROM ({start_rows_sql(spec)}) AS st "
        f"WHERE ts < {lit(until)} GROUP BY user_id"
    )
    grp = breakdown_sql or "CAST(NULL AS VARCHAR)"
    join = " LEFT JOIN profiles AS p ON p.user_id = i.user_id" if breakdown_sql else ""
    if spec.mode == "on":  # only the shown periods matter: fewer distinct masks to count
        keep = (1 << min(spec.horizon, MASK_BITS)) - 1
        rb = f"((i.bits >> CAST(i.p0 - {origin} AS UBIGINT)) & CAST({keep} AS UBIGINT))"
        hit = "(s.rb & m.low) <> 0"
    else:
        rb = f"(i.bits >> CAST(i.p0 - {origin} AS UBIGINT))"
        hit = "s.rb >= m.low AND (m.high IS NULL OR s.rb < m.high)"
    cohort = _period_start(spec.period, "p0", spec.utc)
    return (
        f"WITH i AS (SELECT user_id, t0, {p_t0} AS p0, bits FROM ({per_user}) AS pu{since}), "
        f"s AS (SELECT i.p0, {grp} AS grp, {rb} AS rb, count(*) AS n, max(i.t0) AS last_t0 "
        f"FROM i{join} GROUP BY ALL) "
        f"SELECT {cohort} AS cohort, grp, CAST(-1 AS BIGINT) AS k, CAST(sum(n) AS BIGINT) AS n, "
        f"max(last_t0) AS last_t0 FROM s GROUP BY p0, grp "
        f"UNION ALL SELECT {cohort} AS cohort, grp, CAST(m.c AS BIGINT) AS k, "
        f"CAST(sum(n) AS BIGINT) AS n, CAST(NULL AS TIMESTAMPTZ) AS last_t0 "
        f"FROM s JOIN {_masks(spec)} ON {hit} GROUP BY p0, grp, m.c"
    )
