"""Read-only SQL over the workspace's tables, for text typed by a user (``engagelab sql``).

Two independent locks, so that one mistake in either does not open the workspace:

1. the statement is parsed (sqlglot, DuckDB dialect) and only ``SELECT`` / ``WITH`` /
   ``EXPLAIN`` / ``DESCRIBE`` / ``SHOW`` statements are accepted; anything that writes,
   copies, attaches, installs, loads or changes a setting is refused;
2. the query runs on a fresh in-memory DuckDB connection that sees only the ``events`` and
   ``profiles`` views, may read only the live Parquet files behind them
   (``allowed_paths``), has ``enable_external_access = false`` (no other file, no COPY, no
   ATTACH, no extension download) and a locked configuration; extensions are neither
   auto-installed nor auto-loaded.

The escape for trusted use is ``engagelab sql --unsafe`` (or ``Workspace.sql`` from
Python), which runs the text on the workspace's own engine without these locks.

Example:
    >>> check_read_only("SELECT 1; WITH a AS (SELECT 2) SELECT * FROM a")
    ['SELECT', 'SELECT']
    >>> check_read_only("COPY events TO '/tmp/x.csv'")
    Traceback (most recent call last):
    ...
    engagelab.errors.QueryError: sql == "COPY events TO '/tmp/x.csv'", must be a read-only statement (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW), not COPY; run it with --unsafe if you trust it
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb
import pandas as pd

from engagelab.engines.base import TABLES, Catalog
from engagelab.engines.duckdb_engine import view_sql
from engagelab.errors import QueryError

__all__ = ["ALLOWED_STATEMENTS", "UNSAFE_FLAG", "check_read_only", "read_only_query"]

#: Statement kinds ``engagelab sql`` runs without ``--unsafe``.
ALLOWED_STATEMENTS = ("SELECT", "WITH", "EXPLAIN", "DESCRIBE", "SHOW")
#: The command-line escape named in every refusal.
UNSAFE_FLAG = "--unsafe"


def _refuse(sql: str, why: str) -> QueryError:
    shown = " ".join(sql.split())
    if len(shown) > 120:
        shown = shown[:117] + "..."
    allowed = ", ".join(ALLOWED_STATEMENTS)
    return QueryError(
        f"sql == {shown!r}, must be a read-only statement ({allowed}), {why}; "
        f"run it with {UNSAFE_FLAG} if you trust it"
    )


def _kind(node: Any) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Command):
        return str(node.this).upper()
    name = type(node).__name__.upper()
    return {"ALTERTABLE": "ALTER"}.get(name, name)


def _check(sql: str, statement: Any) -> str:
    from sqlglot import exp

    if isinstance(statement, exp.Command):
        word = str(statement.this).upper()
        arg = statement.expression
        rest = (arg.name if isinstance(arg, exp.Literal) else str(arg or "")).strip()
        if word == "EXPLAIN":
            inner = rest.split(None, 1)
            if inner and inner[0].upper() == "ANALYZE":  # EXPLAIN ANALYZE runs the statement
                rest = inner[1] if len(inner) > 1 else ""
            if not rest:
                raise _refuse(sql, "not an empty EXPLAIN")
            for sub in _parse(sql, rest):
                _check(sql, sub)
            return "EXPLAIN"
        if word == "SHOW" and rest.replace("_", "").replace('"', "").isalnum():
            return "SHOW"
        raise _refuse(sql, f"not {word}")
    if isinstance(statement, exp.Describe):
        target = statement.this
        if isinstance(target, exp.Query):
            _check_tree(sql, target)
        return "DESCRIBE"
    if isinstance(statement, exp.Show):
        return "SHOW"
    if isinstance(statement, exp.Query):  # SELECT, set operations, parenthesised queries
        _check_tree(sql, statement)
        return "SELECT"
    words = statement.sql(dialect="duckdb").split()
    raise _refuse(sql, f"not {words[0].upper() if words else _kind(statement)}")


_WRITES = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Copy", "Attach",
    "Detach", "Install", "Command", "Set", "Pragma", "Into", "Use", "TruncateTable",
)  # fmt: skip


def _check_tree(sql: str, query: Any) -> None:
    from sqlglot import exp

    kinds = tuple(getattr(exp, n) for n in _WRITES if hasattr(exp, n))
    for node in query.walk():
        if isinstance(node, kinds):
            raise _refuse(sql, f"not {_kind(node)}")


def _parse(sql: str, text: str) -> list[Any]:
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    log = logging.getLogger("sqlglot")
    level = log.level
    log.setLevel(logging.ERROR)  # its "falling back to a Command" warnings are ours to judge
    try:
        return [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except (ParseError, TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QueryError(
            f"sql == {' '.join(sql.split())[:120]!r} does not parse: {first}"
        ) from None
    finally:
        log.setLevel(level)


def check_read_only(sql: str) -> list[str]:
    """The kind of each statement in ``sql``; raises :class:`QueryError` unless all are read-only."""
    statements = _parse(sql, sql)
    if not statements:
        raise QueryError("sql == '', must hold a statement")
    return [_check(sql, s) for s in statements]


def read_only_query(
    catalog: Catalog,
    sql: str,
    params: dict[str, Any] | list[Any] | None = None,
    *,
    threads: int | None = None,
) -> pd.DataFrame:
    """Run user SQL read-only over the ``events`` and ``profiles`` of ``catalog``.

    Raises:
        QueryError: a statement that is not read-only (named, with the ``--unsafe``
            escape), a parse error, or what DuckDB refused (a file outside the workspace's
            tables, a download).
    """
    statements = _parse(sql, sql)
    if not statements:
        raise QueryError("sql == '', must hold a statement")
    for s in statements:
        _check(sql, s)
    conn = _locked_connection(catalog, threads)
    try:
        rel = conn.sql(sql, params=params)  # several statements: the last one's rows
        return pd.DataFrame() if rel is None else rel.to_df()
    except duckdb.Error as exc:
        text = " ".join(str(exc).split())
        hint = ""
        if isinstance(exc, duckdb.PermissionException):
            hint = f" ({UNSAFE_FLAG} lifts this)"
        elif "autoload_known_extensions" in text:  # don't suggest turning the lock off
            text = text.split(", but it exists")[0].split(" To install")[0]
            hint = f" (extensions are not loaded in read-only SQL; {UNSAFE_FLAG} lifts this)"
        raise QueryError(f"DuckDB: {text}{hint}") from exc
    finally:
        conn.close()


def _locked_connection(catalog: Catalog, threads: int | None) -> duckdb.DuckDBPyConnection:
    config: dict[str, Any] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    conn = duckdb.connect(":memory:", config=config)
    try:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET enable_progress_bar = false")
        if threads:
            conn.execute(f"SET threads = {int(threads)}")
        files = sorted({str(f) for t in TABLES for f in catalog.files.get(t, [])})
        conn.execute("SET allowed_paths = $p", {"p": files})
        for table in TABLES:
            conn.execute(f"CREATE VIEW {table} AS {view_sql(table, catalog)}")
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
    except BaseException:
        conn.close()
        raise
    return conn
