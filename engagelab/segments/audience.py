"""Segments over a workspace: their SQL with saved segments resolved, counts, user ids and
the profiles of their users.

Example:
    >>> import tempfile, pandas as pd
    >>> from engagelab.storage.core import Core
    >>> from engagelab.segments import prop
    >>> core = Core.create(tempfile.mkdtemp() + "/ws")
    >>> _ = core.ingest(pd.DataFrame({"user_id": ["a", "b"], "plan": ["pro", "free"]}),
    ...                 table="profiles", quiet=True)
    >>> count(core, prop("plan").eq("pro")), user_ids(core, prop("plan").eq("free"))
    (1, ['b'])
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from engagelab.engines.base import Catalog, arrow_type_name
from engagelab.errors import UnknownEventWarning, ValidationError
from engagelab.schema import CORE_PROFILE_COLUMNS, EVENT_SCHEMA, PROFILE_SCHEMA
from engagelab.segments.saved import as_segment, load_segment
from engagelab.storage.core import Core
from engagelab.validate import check_choice, check_datetime

__all__ = ["audience", "count", "segment_sql", "sql_columns", "user_ids", "warn_unknown_events"]


def sql_columns(catalog: Catalog) -> dict[str, dict[str, str]]:
    """Column name -> property type of ``events`` and ``profiles`` (core columns and the
    recorded properties), as segment SQL needs them."""
    out: dict[str, dict[str, str]] = {}
    for table, schema in (("events", EVENT_SCHEMA), ("profiles", PROFILE_SCHEMA)):
        cols = {f.name: arrow_type_name(f.name, f.type) for f in schema}
        cols.update(
            {c: t for c, t in catalog.columns.get(table, {}).items() if not c.startswith("_")}
        )
        out[table] = cols
    return out


def _named_events(data: Any) -> set[str]:
    """Event names the conditions of a segment's ``to_dict()`` read."""
    out: set[str] = set()
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("kind") in ("did", "first_last") and isinstance(node.get("event"), str):
                out.add(node["event"])
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return out


def warn_unknown_events(core: Core, segment: Any) -> None:
    """Warn (:class:`~engagelab.errors.UnknownEventWarning`) for each event the segment
    names that the store does not hold, with the closest known name."""
    named = _named_events(segment.to_dict())
    if not named:
        return
    import difflib

    from engagelab.storage.catalog import event_names

    known = event_names(core)
    if not known:
        return  # an empty store: nothing to compare with
    for name in sorted(named - set(known)):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        warnings.warn(
            f"no event {name!r} in the store{hint}; the condition matches no user",
            UnknownEventWarning,
            stacklevel=3,
        )


def segment_sql(core: Core, segment: Any, at: Any = None, dialect: str = "duckdb") -> str:
    """The SQL of ``segment``'s user ids at ``at`` (saved segments resolved).

    Warns (:class:`~engagelab.errors.UnknownEventWarning`) when it names an event the
    store does not hold.
    """
    seg = as_segment(core, segment)
    at = check_datetime("at", at, allow_none=True)
    catalog = core.engine.refresh()
    warn_unknown_events(core, seg)
    return seg.to_sql(
        dialect=dialect,
        at=at,
        resolve=lambda name: load_segment(core, name),
        columns=sql_columns(catalog),
    )


def count(core: Core, segment: Any, at: Any = None, *, engine: str = "duckdb") -> int:
    """Number of users in ``segment`` at ``at`` (on DuckDB or Spark)."""
    check_choice("engine", engine, ["duckdb", "spark"])
    if engine == "spark":
        sql = segment_sql(core, segment, at, dialect="spark")
        got = core.spark().query(f"SELECT count(*) AS n FROM ({sql}) AS seg", dialect="spark")
        return int(got["n"][0])
    sql = segment_sql(core, segment, at)
    return int(core.engine.scalar(f"SELECT count(*) FROM ({sql}) AS seg"))


def user_ids(core: Core, segment: Any, at: Any = None, *, engine: str = "duckdb") -> list[str]:
    """Sorted user ids of ``segment`` (on DuckDB or Spark)."""
    check_choice("engine", engine, ["duckdb", "spark"])
    if engine == "spark":
        sql = segment_sql(core, segment, at, dialect="spark")
        return sorted(core.spark().query(sql, dialect="spark")["user_id"].tolist())
    sql = segment_sql(core, segment, at)
    return sorted(core.engine.query(sql)["user_id"].tolist())


def audience(
    core: Core, segment: Any, at: Any = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """Profiles of the users in ``segment`` (``columns`` of profiles; default all)."""
    sql = segment_sql(core, segment, at)
    if columns:
        known = core.columns("profiles")
        for c in columns:
            if c not in known and c not in CORE_PROFILE_COLUMNS:
                raise ValidationError("columns", c, "is not a profiles column")
        cols = ", ".join('p."' + c.replace('"', '""') + '"' for c in columns)
    else:
        cols = "p.*"
    return core.engine.query(
        f"SELECT {cols} FROM profiles AS p SEMI JOIN ({sql}) AS seg ON p.user_id = seg.user_id "
        "ORDER BY p.user_id"
    )
