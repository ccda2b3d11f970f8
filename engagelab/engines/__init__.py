"""Query engines: DuckDB in-process (default) and Spark (extra ``spark``).

Both run SQL written in the DuckDB dialect over the workspace's Parquet files, exposed as
the relations ``events`` and ``profiles``.
"""

from engagelab.engines.base import Engine, arrow_type_name, duckdb_type
from engagelab.engines.duckdb_engine import DuckDBEngine

__all__ = ["DuckDBEngine", "Engine", "arrow_type_name", "duckdb_type"]
