"""The scale-out engine: the same DuckDB-dialect SQL, transpiled by sqlglot, on Spark.

Needs the ``spark`` extra (``pip install 'engagelab[spark]'``) and a Java runtime. The
``events`` and ``profiles`` relations are temporary views over the same Parquet files
the DuckDB engine reads; profiles from several batches are merged the same way
(latest non-null value per column).
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
import sqlglot

from engagelab.engines.base import TABLES, Catalog, CatalogSource
from engagelab.errors import MissingExtraError, QueryError
from engagelab.schema import CORE_EVENT_COLUMNS, CORE_PROFILE_COLUMNS

__all__ = ["SparkEngine", "local_spark_session", "to_spark_sql"]

_CORE = {"events": CORE_EVENT_COLUMNS, "profiles": CORE_PROFILE_COLUMNS}
_SPARK_TYPES = {
    "string": "STRING",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "list<string>": "ARRAY<STRING>",
}


def _require_pyspark() -> Any:
    try:
        import pyspark
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError("pyspark", "spark", "The Spark engine") from None
    return pyspark


def local_spark_session(app_name: str = "engagelab", cores: int = 2) -> Any:
    """A local SparkSession configured for engagelab (UTC session time zone, small shuffles)."""
    _require_pyspark()
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(max(2, cores * 2)))
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.parquet.mergeSchema", "true")
        .config("spark.sql.ansi.enabled", "false")
        .getOrCreate()
    )


def to_spark_sql(sql: str) -> str:
    """Transpile DuckDB-dialect SQL to Spark SQL with sqlglot.

    >>> to_spark_sql("SELECT regexp_matches(city, '^Ber') FROM profiles")
    "SELECT city RLIKE '^Ber' FROM profiles"
    """
    try:
        return ";\n".join(
            sqlglot.transpile(
                sql, read="duckdb", write="spark", unsupported_level=sqlglot.ErrorLevel.RAISE
            )
        )
    except sqlglot.errors.SqlglotError as exc:
        raise QueryError(f"cannot transpile to Spark SQL: {exc}") from exc


class SparkEngine:
    """Run DuckDB-dialect SQL on Spark over the workspace's Parquet files.

    Args:
        store: the workspace's store.
        spark: a SparkSession; default: :func:`local_spark_session`.
    """

    name = "spark"
    dialect = "spark"

    def __init__(self, store: CatalogSource, spark: Any = None):
        _require_pyspark()
        self.store = store
        self.spark = spark or local_spark_session()
        self._lock = threading.RLock()
        self._version = -1

    def refresh(self, *, force: bool = False) -> None:
        """Re-create the temporary views if the store changed."""
        with self._lock:
            catalog = self.store.catalog()
            if not force and catalog.version == self._version:
                return
            for table in TABLES:
                self._bind(table, catalog)
            self._version = catalog.version

    def _bind(self, table: str, catalog: Catalog) -> None:
        files = [str(f) for f in catalog.files.get(table, [])]
        cols = catalog.columns.get(table, {})
        ordered = list(_CORE[table]) + sorted(
            c for c in cols if c not in _CORE[table] and not c.startswith("_")
        )
        raw = f"__el_raw_{table}"
        if files:
            df = self.spark.read.option("mergeSchema", "true").parquet(*files)
            df.createOrReplaceTempView(raw)
            present = set(df.columns)
        else:
            present = set()

        def col(c: str) -> str:
            if c in present:
                return f"`{c}`"
            return f"CAST(NULL AS {_SPARK_TYPES[cols.get(c, 'string')]}) AS `{c}`"

        if not files:
            body = f"SELECT {', '.join(col(c) for c in ordered)} WHERE false"
        elif (
            table == "profiles" and catalog.batches.get(table, 0) > 1 and "_ingested_at" in present
        ):
            aggs = ", ".join(
                f"max_by(`{c}`, _ingested_at) FILTER (WHERE `{c}` IS NOT NULL) AS `{c}`"
                if c in present
                else col(c)
                for c in ordered
                if c != "user_id"
            )
            body = f"SELECT user_id, {aggs} FROM {raw} GROUP BY user_id"
        else:
            body = f"SELECT {', '.join(col(c) for c in ordered)} FROM {raw}"
        self.spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {table} AS {body}")

    def query(
        self, sql: str, params: dict[str, Any] | None = None, *, dialect: str = "duckdb"
    ) -> pd.DataFrame:
        """Run ``sql`` (DuckDB dialect by default, transpiled; or ``dialect='spark'``)."""
        if params:
            raise QueryError(
                "the Spark engine takes SQL with literals (segments compile them safely); no params"
            )
        self.refresh()
        text = to_spark_sql(sql) if dialect == "duckdb" else sql
        try:
            return self.spark.sql(text).toPandas()
        except Exception as exc:  # pyspark's AnalysisException and friends
            raise QueryError(f"Spark: {' '.join(str(exc).split())[:500]}") from exc

    def close(self) -> None:
        """Drop the temporary views (the SparkSession stays: it may be shared)."""
        for table in TABLES:
            self.spark.catalog.dropTempView(table)

    def __repr__(self) -> str:
        return f"SparkEngine(store={str(self.store.root)!r})"
