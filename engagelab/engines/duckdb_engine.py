"""The default engine: DuckDB in-process over the workspace's Parquet files."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engagelab.engines.base import TABLES, Catalog, CatalogSource, duckdb_type
from engagelab.errors import QueryError
from engagelab.schema import CORE_EVENT_COLUMNS, CORE_PROFILE_COLUMNS

__all__ = ["DuckDBEngine", "view_sql"]

_CORE = {"events": CORE_EVENT_COLUMNS, "profiles": CORE_PROFILE_COLUMNS}


class DuckDBEngine:
    """Run DuckDB SQL over the ``events`` and ``profiles`` of a store.

    The two relations are views over the live Parquet files; they are re-bound whenever
    the store changes (another process appended or compacted), so every query sees a
    consistent, current snapshot.

    Args:
        store: the workspace's store (``ws.store``).
        threads: DuckDB worker threads (default: all cores).
        memory_limit: e.g. ``"4GB"``.
    """

    name = "duckdb"
    dialect = "duckdb"

    def __init__(
        self, store: CatalogSource, *, threads: int | None = None, memory_limit: str | None = None
    ):
        self.store = store
        self._lock = threading.RLock()
        self._conn = duckdb.connect(":memory:")
        self._conn.execute("SET TimeZone = 'UTC'")
        self._conn.execute("SET enable_progress_bar = false")
        if threads:
            self._conn.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self._conn.execute("SET memory_limit = $m", {"m": str(memory_limit)})
        self._version = -1
        self._catalog: Catalog | None = None

    # --------------------------------------------------------------- binding
    def refresh(self, *, force: bool = False) -> Catalog:
        """Re-bind the views if the store changed; return the catalog in use."""
        with self._lock:
            version = self.store.version()
            if force or version != self._version or self._catalog is None:
                catalog = self.store.catalog()
                for table in TABLES:
                    self._conn.execute(
                        f"CREATE OR REPLACE VIEW {table} AS {view_sql(table, catalog)}"
                    )
                self._catalog = catalog
                self._version = catalog.version
            return self._catalog

    # --------------------------------------------------------------- queries
    def query(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> pd.DataFrame:
        """Run ``sql`` (DuckDB dialect) and return a pandas DataFrame."""
        return self.arrow(sql, params).to_pandas()

    def arrow(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> pa.Table:
        """Run ``sql`` and return an Arrow table."""
        with self._lock:
            self.refresh()
            cur = self._conn.cursor()
        try:
            rel = cur.sql(sql, params=params)
            return pa.table({}) if rel is None else rel.to_arrow_table()
        except duckdb.Error as exc:
            raise _query_error(exc) from exc
        finally:
            cur.close()

    def scalar(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        """Run ``sql`` and return the first column of the first row."""
        with self._lock:
            self.refresh()
            cur = self._conn.cursor()
        try:
            rows = cur.execute(sql, params).fetchmany(1)
        except duckdb.Error as exc:
            raise _query_error(exc) from exc
        finally:
            cur.close()
        return rows[0][0] if rows else None

    def register(self, name: str, data: pd.DataFrame | pa.Table) -> None:
        """Expose a DataFrame or Arrow table to SQL under ``name``."""
        with self._lock:
            self._conn.register(name, data)

    def view_sql(self, table: str) -> str:
        """The SQL that defines the ``table`` view right now."""
        return view_sql(table, self.refresh())

    def close(self) -> None:
        """Close the DuckDB connection."""
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"DuckDBEngine(store={str(self.store.root)!r})"


def _query_error(exc: Exception) -> QueryError:
    text = " ".join(str(exc).split())
    return QueryError(f"DuckDB: {text}")


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join(_quote(str(f)) for f in files) + "]"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_sql(table: str, catalog: Catalog) -> str:
    """The SELECT behind the ``events`` / ``profiles`` view for a catalog.

    Files come from the manifest (never from user input); columns recorded in the
    catalog but absent from every file appear as typed NULLs, so queries that name a
    known property work on any workspace.
    """
    files = catalog.files.get(table, [])
    cols = catalog.columns.get(table, {})
    ordered = list(_CORE[table]) + sorted(
        c for c in cols if c not in _CORE[table] and not c.startswith("_")
    )
    present: set[str] = set()
    for f in files:
        present |= _file_columns(f)

    def col(c: str) -> str:
        if c in present:
            return _ident(c)
        return f"CAST(NULL AS {duckdb_type(cols.get(c, 'string'))}) AS {_ident(c)}"

    if not files:
        return f"SELECT {', '.join(col(c) for c in ordered)} WHERE false"
    source = f"read_parquet({_file_list(files)}, union_by_name = true)"
    if table == "profiles" and catalog.batches.get(table, 0) > 1 and "_ingested_at" in present:
        # several profile batches: each column takes its latest non-null value per user
        aggs = ", ".join(
            f"max_by({_ident(c)}, _ingested_at) FILTER (WHERE {_ident(c)} IS NOT NULL) AS {_ident(c)}"
            if c in present
            else col(c)
            for c in ordered
            if c != "user_id"
        )
        return f"SELECT user_id, {aggs} FROM {source} GROUP BY user_id"
    return f"SELECT {', '.join(col(c) for c in ordered)} FROM {source}"


@lru_cache(maxsize=65536)
def _file_columns(path: Path) -> frozenset[str]:
    # files are immutable once committed, so their schema can be cached by path
    return frozenset(pq.read_schema(path).names)
