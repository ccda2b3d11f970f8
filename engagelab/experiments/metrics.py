"""Metric specs and the DuckDB aggregation of their sufficient statistics.

A metric is a proportion (0/1 outcome per user), a mean (e.g. revenue per user) or a
ratio of two per-user sums (e.g. revenue per converter = revenue / converted,
analysed with the delta method). Means and proportions may carry a pre-period
``covariate`` for CUPED. Missing outcome values count as 0.

Per experiment and arm the engine computes ``n`` and, per column used, ``Σx`` and
``Σx²``, plus ``Σxy`` for each (outcome, covariate) and (numerator, denominator)
pair: everything the statistics need, in one scan.

Example:
    >>> Metric.parse("revenue:mean")
    Metric(name='revenue', kind='mean', column='revenue', denominator=None, covariate=None, lower_is_better=False)
    >>> Metric.parse("revenue:ratio:converted").name
    'revenue/converted'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import duckdb
import pandas as pd

from engagelab._validate import check_choice, check_str
from engagelab.errors import ValidationError

__all__ = ["KINDS", "Metric", "aggregate", "aggregate_sql", "as_relation"]

KINDS = ("proportion", "mean", "ratio")
_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "BOOLEAN",
)


@dataclass(frozen=True)
class Metric:
    """One metric to analyse.

    Attributes:
        name: label in the results.
        kind: ``"proportion"``, ``"mean"`` or ``"ratio"``.
        column: outcome column (the numerator for ratios); defaults to ``name``.
        denominator: denominator column (ratios only).
        covariate: pre-period column for CUPED (proportions and means).
        lower_is_better: the metric improves when it goes down (e.g. unsubscribes).
    """

    name: str
    kind: str = "mean"
    column: str | None = None
    denominator: str | None = None
    covariate: str | None = None
    lower_is_better: bool = False

    def __post_init__(self) -> None:
        check_str("metric.name", self.name)
        check_choice(f"metrics[{self.name!r}].kind", self.kind, KINDS)
        if self.column is None:
            object.__setattr__(self, "column", self.name)
        if self.kind == "ratio" and not self.denominator:
            raise ValidationError(
                f"metrics[{self.name!r}].denominator",
                self.denominator,
                "must name a column for a ratio metric",
            )
        if self.kind != "ratio" and self.denominator:
            raise ValidationError(
                f"metrics[{self.name!r}].denominator",
                self.denominator,
                "is only allowed for ratio metrics",
            )
        if self.kind == "ratio" and self.covariate:
            raise ValidationError(
                f"metrics[{self.name!r}].covariate",
                self.covariate,
                "CUPED is supported for proportion and mean metrics only",
            )

    def replace(self, **changes: Any) -> Metric:
        """A copy with some fields changed (metrics are immutable)."""
        return replace(self, **changes)

    @classmethod
    def parse(cls, text: str, covariate: str | None = None) -> Metric:
        """Parse ``COLUMN:KIND[:DENOMINATOR]`` (the CLI form); a ratio is named ``COLUMN/DENOMINATOR``."""
        parts = check_str("metric", text).split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValidationError(
                "metric",
                text,
                "must look like NAME:proportion, NAME:mean or NAME:ratio:DENOMINATOR",
            )
        name, kind = parts[0], parts[1]
        check_choice(f"metrics[{name!r}].kind", kind, KINDS)
        if kind == "ratio" and len(parts) == 3:
            return cls(f"{name}/{parts[2]}", kind, name, parts[2])
        return cls(
            name,
            kind,
            name,
            parts[2] if len(parts) == 3 else None,
            covariate if kind != "ratio" else None,
        )

    @property
    def columns(self) -> tuple[str, ...]:
        """Data columns this metric reads."""
        return tuple(c for c in (self.column, self.denominator, self.covariate) if c)

    @property
    def pair(self) -> tuple[str, str] | None:
        """The (y, x) pair whose cross-product is needed, if any."""
        other = self.denominator or self.covariate
        return (self.column or self.name, other) if other else None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_LOCAL = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection per thread, reused across calls (connecting costs ~50 ms)."""
    con = getattr(_LOCAL, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        _LOCAL.con = con
    return con


def as_relation(data: Any, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """A DuckDB relation over a DataFrame, a CSV/Parquet path, a relation or a SQL query."""
    if isinstance(data, duckdb.DuckDBPyRelation):
        return data
    if isinstance(data, os.PathLike) or (
        isinstance(data, str) and data.lower().endswith((".csv", ".parquet", ".pq", ".csv.gz"))
    ):
        path = os.fspath(data)
        if not os.path.exists(path):
            raise ValidationError("data", path, "file not found")
        if path.lower().endswith((".parquet", ".pq")):
            return con.read_parquet(path)
        return con.read_csv(path)
    if isinstance(data, str):
        try:
            return con.sql(data)
        except duckdb.Error as exc:
            raise ValidationError(
                "data",
                data[:80],
                f"is neither a CSV/Parquet path nor valid DuckDB SQL ({str(exc).splitlines()[0]})",
            ) from None
    if (
        isinstance(data, pd.DataFrame)
        or hasattr(data, "to_arrow")
        or hasattr(data, "__arrow_c_stream__")
    ):
        return con.from_arrow(data) if not isinstance(data, pd.DataFrame) else con.from_df(data)
    raise ValidationError(
        "data",
        type(data).__name__,
        "must be a DataFrame, a CSV/Parquet path, a DuckDB relation or a SQL string",
    )


def aggregate_sql(
    metrics: Sequence[Metric], arm_col: str, experiment_col: str | None = None, source: str = "src"
) -> str:
    """The DuckDB SQL that aggregates the sufficient statistics (users can read it)."""
    cols: list[str] = []
    for m in metrics:
        for c in m.columns:
            if c not in cols:
                cols.append(c)
    pairs: list[tuple[str, str]] = []
    for m in metrics:
        if m.pair and m.pair not in pairs:
            pairs.append(m.pair)
    # 1. project each column once (missing -> 0, as DOUBLE); 2. aggregate on the raw keys;
    # 3. cast the few result keys to text
    proj = [f"{_q(arm_col)} AS arm"]
    if experiment_col:
        proj.insert(0, f"{_q(experiment_col)} AS experiment")
    proj += [f"CAST(COALESCE({_q(c)}, 0) AS DOUBLE) AS v{i}" for i, c in enumerate(cols)]
    idx = {c: f"v{i}" for i, c in enumerate(cols)}
    sel = ["COUNT(*) AS n"]
    for i, c in enumerate(cols):
        sel += [f"SUM({idx[c]}) AS s{i}", f"SUM({idx[c]} * {idx[c]}) AS ss{i}"]
    for j, (a, b) in enumerate(pairs):
        sel.append(f"SUM({idx[a]} * {idx[b]}) AS cp{j}")
    group = "experiment, arm" if experiment_col else "arm"
    outer = "CAST(arm AS VARCHAR) AS arm"
    if experiment_col:
        outer = "CAST(experiment AS VARCHAR) AS experiment, " + outer
    inner = f"SELECT {group}, {', '.join(sel)} FROM (SELECT {', '.join(proj)} FROM {source}) GROUP BY {group}"
    return f"SELECT {outer}, * EXCLUDE ({group}) FROM ({inner}) ORDER BY {group}"


def aggregate(
    data: Any, metrics: Sequence[Metric], arm_col: str, experiment_col: str | None = None
) -> pd.DataFrame:
    """Per-arm sufficient statistics as a small DataFrame.

    Columns: ``experiment``, ``arm``, ``n`` and, for every column ``c`` and pair
    ``(y, x)``, ``sum:c``, ``sumsq:c`` and ``cross:y*x``.
    """
    con = _connection()
    rel = as_relation(data, con)
    types = {c: str(t).upper() for c, t in zip(rel.columns, rel.types, strict=True)}
    for field, col in (("arm_col", arm_col), ("experiment_col", experiment_col)):
        if col is not None and col not in types:
            raise ValidationError(
                field, col, "must be a column of data: " + ", ".join(repr(c) for c in types)
            )
    for m in metrics:
        for role, col in (
            ("column", m.column),
            ("denominator", m.denominator),
            ("covariate", m.covariate),
        ):
            if col is None:
                continue
            if col not in types:
                raise ValidationError(
                    f"metrics[{m.name!r}].{role}",
                    col,
                    "must be a column of data: " + ", ".join(repr(c) for c in types),
                )
            t = types[col]
            if not (t in _NUMERIC or t.startswith("DECIMAL")):
                raise ValidationError(
                    f"metrics[{m.name!r}].{role}",
                    col,
                    f"must be a numeric or boolean column, got {t}",
                )
    query = rel.query("src", aggregate_sql(metrics, arm_col, experiment_col))
    if query is None:  # pragma: no cover - DuckDB returns a relation for a SELECT
        raise ValidationError("data", "<query>", "did not produce a result")
    out = query.df()
    cols = []
    for m in metrics:
        cols += [c for c in m.columns if c not in cols]
    pairs = []
    for m in metrics:
        if m.pair and m.pair not in pairs:
            pairs.append(m.pair)
    ren = {f"s{i}": f"sum:{c}" for i, c in enumerate(cols)}
    ren |= {f"ss{i}": f"sumsq:{c}" for i, c in enumerate(cols)}
    ren |= {f"cp{j}": f"cross:{a}*{b}" for j, (a, b) in enumerate(pairs)}
    out = out.rename(columns=ren)
    if experiment_col is None:
        out.insert(0, "experiment", "all")
    out["arm"] = out["arm"].fillna("<missing>")
    out["n"] = out["n"].astype("int64")
    return out
