"""Run a retention query on a workspace: validate, build the SQL, aggregate, add intervals.

Example:
    >>> import tempfile, pandas as pd
    >>> from engagelab import Workspace
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> ev = pd.DataFrame({
    ...     "user_id": ["a", "a", "b", "b", "c"],
    ...     "event": "App Launched",
    ...     "ts": pd.to_datetime(["2026-01-01 09:00", "2026-01-02 10:00", "2026-01-01 12:00",
    ...                           "2026-01-03 08:00", "2026-01-02 07:00"], utc=True)})
    >>> _ = ws.append("events", ev)
    >>> res = retention(ws, "App Launched", periods=3)
    >>> res.to_pandas().round(3)  # doctest: +NORMALIZE_WHITESPACE
                 size  Day 0  Day 1  Day 2
    cohort
    2026-01-01      2    1.0  0.500    0.5
    2026-01-02      1    1.0  0.000    NaN
    All cohorts     3    1.0  0.333    0.5
    >>> retention(ws, "App Opened")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: start_event == 'App Opened', must be an event in the workspace (known: 'App Launched')
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engagelab.errors import ValidationError
from engagelab.retention._data import data_range, events_exist
from engagelab.retention._sql import ident, lit, per_user_origin, per_user_sql, retention_sql
from engagelab.retention._stats import wilson
from engagelab.retention.result import LONG_COLUMNS, RetentionResult
from engagelab.retention.spec import CHUNK_US, RetentionSpec
from engagelab.schema import CORE_EVENT_COLUMNS, CORE_PROFILE_COLUMNS
from engagelab.validate import check_choice

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["retention", "run_query"]


def _spec(
    spec: RetentionSpec | None, start_event: str | None, options: dict[str, Any]
) -> RetentionSpec:
    if spec is not None:
        if start_event is not None or options:
            return spec.replace(**({"start_event": start_event} if start_event else {}), **options)
        return spec
    if start_event is None:
        raise ValidationError("start_event", None, "must be an event name (or pass spec=)")
    return RetentionSpec(start_event, **options)


def _known_events(ws: Core) -> list[str]:
    return sorted(ws.sql("SELECT DISTINCT event FROM events")["event"].tolist())


def _unknown_event(ws: Core, field: str, name: str) -> ValidationError:
    known = _known_events(ws)
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5) or known[:8]
    listed = ", ".join(repr(k) for k in close) if close else "none: the workspace has no events"
    return ValidationError(field, name, f"must be an event in the workspace (known: {listed})")


def _check_columns(ws: Core, spec: RetentionSpec) -> None:
    ev_cols = set(CORE_EVENT_COLUMNS) | set(ws.store.columns("events"))
    for field_name, where in (
        ("start_where", spec.start_where),
        ("return_where", spec.return_where),
    ):
        for col, _ in where:
            if col not in ev_cols:
                raise ValidationError(
                    f"{field_name} column",
                    col,
                    "must be an event property: " + ", ".join(sorted(ev_cols)),
                )
    if spec.breakdown is not None:
        prof = set(CORE_PROFILE_COLUMNS) | set(ws.store.columns("profiles"))
        if spec.breakdown not in prof:
            raise ValidationError(
                "breakdown",
                spec.breakdown,
                "must be a profile property: " + ", ".join(sorted(prof)),
            )


def _default_until(last_ts: Any, zone: Any = "UTC") -> dt.datetime:
    """The end of the day (in ``zone``) of the last event: data is taken as complete
    through it."""
    day = pd.Timestamp(last_ts).tz_convert(zone).normalize() + pd.DateOffset(days=1)
    return day.tz_convert("UTC").to_pydatetime()


def _in_zone(values: pd.Series, zone: str) -> pd.Series:
    """Cohort starts in ``zone``: UTC instants are converted, wall-clock times localised."""
    ts = pd.to_datetime(values)
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert(zone)
    return ts.dt.tz_localize(zone, ambiguous=True, nonexistent="shift_forward")


def _observed(
    spec: RetentionSpec, cohort: pd.Series, last_t0: pd.Series, until: dt.datetime
) -> np.ndarray:
    """``[cohort, column]``: has the column's last period ended, by ``until``, for every
    member of the cohort (rolling windows: for its latest starter)."""
    ends = np.array([hi + 1 for _, hi in spec.bounds()])
    end = pd.Timestamp(until)
    if spec.window == "calendar" and (spec.period == "month" or not spec.utc):
        # calendar arithmetic on the wall clock: a day across a DST change is 23 or 25 hours
        def offset(k: int) -> pd.DateOffset:
            if spec.period == "month":
                return pd.DateOffset(months=k)
            return pd.DateOffset(days=k * (7 if spec.period == "week" else 1))

        return np.column_stack([(cohort + offset(int(k)) <= end).to_numpy() for k in ends])
    start = last_t0 if spec.window == "rolling" else cohort
    base = start.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    step = np.timedelta64(CHUNK_US[spec.period], "us")  # a day, a week, or a rolling 30 days
    limit = np.datetime64(end.tz_convert("UTC").tz_localize(None), "us")
    return base[:, None] + ends[None, :] * step <= limit


def run_query(
    ws: Core,
    spec: RetentionSpec,
    *,
    starts: str | None = None,
    engine: str = "duckdb",
    name: str = "",
    notes: tuple[str, ...] = (),
    until: Any = None,
    plan: str = "auto",
) -> RetentionResult:
    """Run ``spec`` (optionally with a custom start-rows SQL) and build the result.

    ``plan='join'`` forces the general join plan even where the per-user plan applies
    (see :mod:`engagelab.retention._sql`); both give identical results.
    """
    check_choice("engine", engine, ["duckdb", "spark"])
    check_choice("plan", plan, ["auto", "join"])
    _check_columns(ws, spec)
    return_event = spec.return_event or spec.start_event
    has_s, has_r = events_exist(ws, [spec.start_event, return_event])
    if starts is None and not has_s:
        raise _unknown_event(ws, "start_event", spec.start_event)
    first, last = data_range(ws)
    if not has_r or first is None or last is None:
        raise _unknown_event(ws, "return_event", return_event)
    end = spec.until or until or _default_until(last, spec.timezone)
    if spec.since is not None and spec.since >= end:
        raise ValidationError(
            "since",
            spec.since.isoformat(),
            f"must be before the end of the data ({end.isoformat()})",
        )
    if end <= first:
        raise ValidationError(
            "until", end.isoformat(), f"must be after the first event ({first.isoformat()})"
        )
    breakdown_sql = f"CAST(p.{ident(spec.breakdown)} AS VARCHAR)" if spec.breakdown else None
    portable = engine == "spark"
    origin = (
        per_user_origin(spec, end, first, starts=starts, portable=portable)
        if plan != "join"
        else None
    )
    if origin is not None:
        sql = per_user_sql(spec, end, origin, breakdown_sql=breakdown_sql)
    else:
        sql = retention_sql(
            spec, end, starts=starts, breakdown_sql=breakdown_sql, portable=portable
        )
    raw = ws.spark().query(sql) if engine == "spark" else ws.sql(sql)
    result = assemble(spec, raw, end, sql=sql, name=name, notes=notes, data_end=last)
    if result.empty and not result.message:
        object.__setattr__(result, "message", "no user did the start event in the range")
    elif not result.empty and result.cells["censored"].all():
        raise ValidationError(
            "periods",
            spec.columns()[0],
            f"does not fit the data range ({first:%Y-%m-%d} to {end:%Y-%m-%d}): every cell is "
            "censored; use a shorter period, earlier cohorts or a later until",
        )
    return result


def assemble(
    spec: RetentionSpec, raw: pd.DataFrame, until: dt.datetime, *, sql: str = "", name: str = "",
    notes: tuple[str, ...] = (), data_end: Any = None,
) -> RetentionResult:  # fmt: skip
    """Turn the query's ``(cohort, grp, k, n, last_t0)`` rows into the long table.

    ``data_end`` (the last event's time) marks cells *partial*: counted (they end by
    ``until``) but their period runs past the last event, so the data may not hold all of
    it yet (typically the last day, when the data ends in the middle of it).
    """
    raw = raw.copy()
    raw["cohort"] = _in_zone(raw["cohort"], spec.timezone)
    raw["grp"] = (
        raw["grp"].astype(object).where(raw["grp"].notna(), "(missing)" if spec.breakdown else "")
    )
    sizes = raw[raw["k"] == -1][["grp", "cohort", "n", "last_t0"]].rename(columns={"n": "size"})
    if sizes.empty:
        return RetentionResult(
            spec, pd.DataFrame(columns=LONG_COLUMNS), until, sql, "", name, notes
        )
    sizes["last_t0"] = pd.to_datetime(sizes["last_t0"], utc=True)
    counts = raw[raw["k"] >= 0].pivot_table(
        index=["grp", "cohort"], columns="k", values="n", aggfunc="sum", dropna=False
    ) if not raw[raw["k"] >= 0].empty else pd.DataFrame()  # fmt: skip
    ncol = spec.n_cells
    key = pd.MultiIndex.from_frame(sizes[["grp", "cohort"]])
    mat = np.zeros((len(sizes), ncol))
    if not counts.empty:
        counts = counts.reindex(index=key, columns=range(ncol)).fillna(0)
        mat = counts.to_numpy(dtype=np.float64)
    if spec.mode == "on-or-after":
        mat = np.cumsum(mat[:, ::-1], axis=1)[:, ::-1]
    observed = _observed(spec, sizes["cohort"], sizes["last_t0"], until)
    partial = np.zeros_like(observed)
    if data_end is not None:
        # complete through the last event's minute: an event at 23:59:30 closes the day
        complete_to = (pd.Timestamp(data_end).ceil("min") + pd.Timedelta(minutes=1)).to_pydatetime()
        if complete_to < pd.Timestamp(until):
            partial = observed & ~_observed(spec, sizes["cohort"], sizes["last_t0"], complete_to)
    size = sizes["size"].to_numpy(dtype=np.float64)
    cols = spec.columns()
    n = len(sizes)
    rows = np.tile(np.arange(n), ncol)  # column-major: every cohort of column 0, then 1, ...
    cells = pd.DataFrame(
        {
            "group": sizes["grp"].to_numpy()[rows],
            "cohort": sizes["cohort"].array.take(rows),
            "period": np.repeat(np.array(cols, dtype=object), n),
            "period_index": np.repeat(np.arange(ncol), n),
            "size": size[rows],
            "retained": np.where(observed, mat, np.nan).T.ravel(),
            "censored": ~observed.T.ravel(),
            "partial": partial.T.ravel(),
        }
    )
    obs = cells[~cells["censored"]]
    pooled = obs.groupby(["group", "period_index"], dropna=False).agg(
        size=("size", "sum"), retained=("retained", "sum"), partial=("partial", "any")
    ).reset_index()  # fmt: skip
    groups = cells[["group"]].drop_duplicates()
    grid = groups.merge(pd.DataFrame({"period_index": range(ncol)}), how="cross")
    pooled = grid.merge(pooled, on=["group", "period_index"], how="left")
    pooled["censored"] = pooled["size"].isna()
    pooled["partial"] = pooled["partial"].fillna(False).astype(bool)
    pooled["period"] = [cols[j] for j in pooled["period_index"]]
    pooled["cohort"] = pd.NaT
    cells = pd.concat([cells, pooled], ignore_index=True)
    cells["rate"] = cells["retained"] / cells["size"]
    lo, hi = wilson(cells["retained"], cells["size"], spec.confidence)
    cells["ci_low"], cells["ci_high"] = lo, hi
    cells.loc[cells["censored"], ["retained", "rate", "ci_low", "ci_high"]] = np.nan
    cells["retained"] = cells["retained"].astype("Int64")
    cells["size"] = cells["size"].astype("Int64")
    cells["cohort"] = _in_zone(cells["cohort"], spec.timezone)
    cells = cells.sort_values(
        ["group", "cohort", "period_index"], na_position="last", kind="stable"
    )
    return RetentionResult(
        spec, cells[LONG_COLUMNS].reset_index(drop=True), until, sql, "", name, notes
    )


def retention(
    ws: Core,
    start_event: str | None = None,
    return_event: str | None = None,
    *,
    spec: RetentionSpec | None = None,
    engine: str = "duckdb",
    **options: Any,
) -> RetentionResult:
    """Cohort retention of ``start_event`` → ``return_event`` on a workspace.

    Args:
        ws: the workspace.
        start_event: the cohort-defining event (or give ``spec``).
        return_event: the return event (default: ``start_event``).
        spec: a :class:`RetentionSpec` (keyword ``options`` override its fields).
        engine: ``'duckdb'`` or ``'spark'`` (the same SQL, transpiled).
        **options: any :class:`RetentionSpec` field: ``period``, ``periods``, ``mode``,
            ``cohort``, ``window``, ``brackets``, ``start_where``, ``return_where``,
            ``start_label``, ``breakdown``, ``since``, ``until``, ``confidence``.
    """
    if return_event is not None:
        options["return_event"] = return_event
    return run_query(ws, _spec(spec, start_event, options), engine=engine)


_ = lit  # re-exported helper used by the label module
