"""What every engine offers, and the type names shared by the store and the engines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa

from engagelab.errors import ValidationError
from engagelab.schema import PROPERTY_TYPES

__all__ = [
    "DUCKDB_TYPES",
    "TABLES",
    "Catalog",
    "CatalogSource",
    "Engine",
    "arrow_type_name",
    "duckdb_type",
]

#: The relations every engine exposes.
TABLES = ("profiles", "events")

#: DuckDB type of each property type name.
DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "list<string>": "VARCHAR[]",
}


@dataclass(frozen=True)
class Catalog:
    """A consistent view of the store: version, live files and column types per table."""

    version: int
    files: dict[str, list[Path]]
    columns: dict[str, dict[str, str]]
    batches: dict[str, int]


class CatalogSource(Protocol):
    """Where an engine learns which files make up each table (the workspace's store)."""

    root: Path

    def version(self) -> int:
        """A number that changes whenever the live files or column types change."""
        ...

    def catalog(self) -> Catalog:
        """The live files and column types of every table, read consistently."""
        ...


class Engine(Protocol):
    """A SQL engine over the workspace's ``events`` and ``profiles`` relations."""

    name: str
    dialect: str

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run SQL (in the engine's dialect) and return a DataFrame."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...


def arrow_type_name(column: str, dtype: pa.DataType) -> str:
    """The property type name (``'string'``, ``'int64'``, …) of an Arrow type.

    >>> arrow_type_name("revenue", pa.float32())
    'float64'
    >>> arrow_type_name("tags", pa.list_(pa.large_string()))
    'list<string>'
    """
    if (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_string_view(dtype)
    ):
        return "string"
    if pa.types.is_dictionary(dtype):
        return arrow_type_name(column, dtype.value_type)
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype):
        return "int64"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float64"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "timestamp"
    if (pa.types.is_list(dtype) or pa.types.is_large_list(dtype)) and arrow_type_name(
        column, dtype.value_type
    ) == "string":
        return "list<string>"
    if pa.types.is_null(dtype):
        return "null"
    raise ValidationError(
        column, str(dtype), "has an unsupported type; allowed: " + ", ".join(PROPERTY_TYPES)
    )


def duckdb_type(type_name: str) -> str:
    """The DuckDB SQL type for a property type name."""
    return DUCKDB_TYPES[type_name]
