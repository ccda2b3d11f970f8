"""Bring Arrow tables to the workspace schema: core column types and recorded property types."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc

from engagelab.engines.base import arrow_type_name
from engagelab.errors import ValidationError
from engagelab.schema import EVENT_SCHEMA, PROFILE_SCHEMA, PROPERTY_TYPES

__all__ = ["CORE_SCHEMAS", "REQUIRED", "cast_column", "conform", "property_types"]

CORE_SCHEMAS = {"profiles": PROFILE_SCHEMA, "events": EVENT_SCHEMA}
REQUIRED = {"profiles": ("user_id",), "events": ("user_id", "event", "ts")}


def property_types(table: str, data: pa.Table) -> dict[str, str]:
    """Type names of ``data``'s columns that are not core columns (internal ones skipped)."""
    core = set(CORE_SCHEMAS[table].names)
    return {
        name: arrow_type_name(name, data.schema.field(name).type)
        for name in data.column_names
        if name not in core and not name.startswith("_")
    }


def cast_column(name: str, arr: pa.ChunkedArray | pa.Array, target: pa.DataType) -> pa.ChunkedArray:
    """Cast one column to ``target``; naive timestamps are taken as UTC."""
    if isinstance(arr, pa.Array):
        arr = pa.chunked_array([arr])
    src = arr.type
    if pa.types.is_dictionary(src):
        arr = arr.cast(src.value_type)
        src = arr.type
    if src.equals(target):
        return arr
    naive = (pa.types.is_timestamp(src) and src.tz is None) or pa.types.is_date(src)
    if pa.types.is_timestamp(target) and naive:
        arr = pc.assume_timezone(arr.cast(pa.timestamp("us")), "UTC")
    try:
        return arr.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(name, str(src), f"cannot be converted to {target}: {exc}") from None


def conform(table: str, data: pa.Table, recorded: dict[str, str]) -> pa.Table:
    """Return ``data`` with core columns in their schema types and properties in recorded types.

    Missing required columns are an error; missing optional core columns become nulls.
    Profiles get the internal ``_ingested_at`` column (nanoseconds) used to merge batches.
    """
    schema = CORE_SCHEMAS[table]
    missing = [c for c in REQUIRED[table] if c not in data.column_names]
    if missing:
        raise ValidationError(
            f"{table} data", data.column_names, f"lacks required column(s) {', '.join(missing)}"
        )
    arrays: list[pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    n = data.num_rows
    for f in schema:
        if f.name in data.column_names:
            arr = cast_column(f.name, data.column(f.name), f.type)
            if not f.nullable and arr.null_count:
                raise ValidationError(f.name, f"{arr.null_count} nulls", "must not be null")
        else:
            arr = pa.chunked_array([pa.nulls(n, f.type)])
        arrays.append(arr)
        fields.append(pa.field(f.name, f.type, nullable=f.nullable))
    for name in data.column_names:
        if name in schema.names or name.startswith("_"):
            continue
        typ = recorded.get(name) or arrow_type_name(name, data.schema.field(name).type)
        target = PROPERTY_TYPES.get(typ, pa.null()) if typ != "null" else pa.null()
        if pa.types.is_null(target):
            arr = data.column(name)
        else:
            arr = cast_column(name, data.column(name), target)
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    if table == "profiles":
        arrays.append(pa.chunked_array([pa.array([time.time_ns()] * n, pa.int64())]))
        fields.append(pa.field("_ingested_at", pa.int64()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
