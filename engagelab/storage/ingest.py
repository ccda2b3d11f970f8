"""Validated ingestion: good rows are appended atomically, bad rows are quarantined with reasons.

Sources: CSV, Parquet and JSON Lines files (by suffix, or ``format=``), pandas and polars
DataFrames, and Arrow tables. ``mapping`` renames foreign columns to the workspace's
names (``{"uid": "user_id", "time": "ts"}``).

Reason codes (one per quarantined row, the first rule the row breaks):

=====================  ========================================================
missing_user_id        no user id (null or blank)
missing_event          events: no event name
missing_timestamp      events: no ``ts``
bad_timestamp          a timestamp that does not parse, or lies outside 1970-2200
unknown_timezone       profiles: ``timezone`` is not an IANA time zone name
bad_coordinates        latitude outside [-90, 90] or longitude outside [-180, 180]
wrong_type             a value that does not fit its column's type (detail names it)
duplicate_event_id     events: ``event_id`` seen earlier in the batch or in the store
duplicate_user_id      profiles: the user appears earlier in the same batch
bad_line               JSON Lines: a line that is not a JSON object (or is too long)
value_too_large        a value longer than ``MAX_VALUE_BYTES``
=====================  ========================================================

Nested JSON objects are stored as JSON text. With ``dedupe_key="content"`` an event
without an ``event_id`` gets one from a hash of its typed values, so re-exports that
overlap are appended once.

A batch is identified by its fingerprint (a hash of the content, the table and the
options); ingesting the same content again appends nothing unless ``force=True``.

Example:
    >>> import tempfile, pandas as pd
    >>> from engagelab import Workspace
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> df = pd.DataFrame({"user_id": ["a", None, "c"], "event": ["Launch"] * 3,
    ...                    "ts": ["2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "yesterday"]})
    >>> report = ws.ingest(df, quiet=True)
    >>> report.rows_appended, report.reasons
    (1, {'missing_user_id': 1, 'bad_timestamp': 1})
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engagelab.engines.base import arrow_type_name
from engagelab.errors import ValidationError
from engagelab.schema import PROPERTY_TYPES
from engagelab.storage.coerce import (
    coerce,
    infer_date_format,
    infer_string_type,
    parse_timestamps,
)
from engagelab.storage.conform import conform
from engagelab.storage.locks import exclusive
from engagelab.storage.statedb import StateDB, utcnow
from engagelab.storage.store import TABLES, Store, insert_batch
from engagelab.storage.tables import ingests
from engagelab.validate import check_choice, check_int, valid_timezone

__all__ = ["MAX_LINE_BYTES", "MAX_VALUE_BYTES", "REASONS", "IngestReport", "IngestTarget", "ingest"]

#: The longest value (bytes of text) and the longest JSON Lines line ingested; longer
#: ones are quarantined, read without holding more than one line in memory.
MAX_VALUE_BYTES = 1 << 20
MAX_LINE_BYTES = 16 << 20
_JSONL_CHUNK_ROWS = 100_000
_RAW_TEXT_KEEP = 200  # characters of an oversized value kept in the quarantine


class IngestTarget(Protocol):
    """Where ingestion writes: a workspace folder (for the quarantine), its store and its
    state database (a :class:`~engagelab.storage.core.Core` or a Workspace)."""

    path: Path
    store: Store
    state: StateDB


REASONS = (
    "missing_user_id",
    "missing_event",
    "missing_timestamp",
    "bad_timestamp",
    "unknown_timezone",
    "bad_coordinates",
    "wrong_type",
    "duplicate_event_id",
    "duplicate_user_id",
    "bad_line",
    "value_too_large",
)
_CODE = {r: i + 1 for i, r in enumerate(REASONS)}
FORMATS = ("csv", "parquet", "jsonl")
_SUFFIX = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_CORE_TYPES = {
    "profiles": {
        "email": "string",
        "phone": "string",
        "push_token": "string",
        "webpush_subscription": "string",
        "app_install_id": "string",
        "web_visitor_id": "string",
        "optout_email": "bool",
        "optout_sms": "bool",
        "optout_push": "bool",
        "optout_web_push": "bool",
        "timezone": "string",
        "latitude": "float64",
        "longitude": "float64",
        "created_at": "timestamp",
    },
    "events": {"event": "string", "ts": "timestamp", "event_id": "string"},
}


@dataclass
class IngestReport:
    """What one ingestion did: rows read, appended and quarantined, with counts per reason."""

    table: str
    source: str
    fingerprint: str
    rows_read: int = 0
    rows_appended: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    batch_id: int | None = None
    quarantine_file: str | None = None
    already_ingested: bool = False
    new_columns: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing was quarantined."""
        return self.rows_quarantined == 0

    def quarantined(self) -> pd.DataFrame:
        """The quarantined rows (raw values as text) with ``_reason``, ``_detail``, ``_row``."""
        if not self.quarantine_file:
            return pd.DataFrame(columns=["_row", "_reason", "_detail"])
        return pd.read_parquet(self.quarantine_file)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of the report."""
        return {
            "table": self.table,
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_appended": self.rows_appended,
            "rows_quarantined": self.rows_quarantined,
            "reasons": dict(self.reasons),
            "batch_id": self.batch_id,
            "quarantine_file": self.quarantine_file,
            "already_ingested": self.already_ingested,
            "new_columns": dict(self.new_columns),
        }

    def to_pandas(self) -> pd.DataFrame:
        """Counts per reason code (empty when every row was appended)."""
        rows = sorted(self.reasons.items(), key=lambda kv: -kv[1])
        return pd.DataFrame(rows, columns=["reason", "rows"])

    def __repr__(self) -> str:
        if self.already_ingested:
            return (
                f"ingest {self.table} from {self.source}: already ingested as batch {self.batch_id}; "
                "nothing appended (pass force=True to ingest it again)"
            )
        head = (
            f"ingest {self.table} from {self.source}: {self.rows_read:,} rows read, "
            f"{self.rows_appended:,} appended, {self.rows_quarantined:,} quarantined"
        )
        if self.reasons:
            head += (
                " ("
                + ", ".join(
                    f"{k}: {v:,}" for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1])
                )
                + ")"
            )
        if self.quarantine_file:
            head += f"\n  quarantine: {self.quarantine_file}"
        return head

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#9a6700"
        rows = "".join(
            f"<tr><td><code>{html.escape(k)}</code></td><td style='text-align:right'>{v:,}</td></tr>"
            for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1])
        )
        table = f"<table><tr><th>reason</th><th>rows</th></tr>{rows}</table>" if rows else ""
        return f"<div><p style='color:{color}'>{html.escape(repr(self).splitlines()[0])}</p>{table}</div>"


# --------------------------------------------------------------------------- readers
def _describe(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    return f"<{type(source).__module__.split('.')[0]}.{type(source).__name__}>"


def _read_chunks(  # noqa: C901
    source: Any,
    fmt: str | None,
    chunk_rows: int,
    csv_delimiter: str | None,
    encoding: str = "utf-8",
) -> Iterator[pa.Table]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise ValidationError("source", str(path), "does not exist")
        if fmt is None:
            fmt = _SUFFIX.get(path.suffix.lower())
            if fmt is None:
                raise ValidationError(
                    "source",
                    str(path),
                    "has an unknown suffix; pass format= one of " + ", ".join(FORMATS),
                )
        check_choice("format", fmt, FORMATS)
        if fmt == "parquet":
            yield from _read_parquet(path, chunk_rows)
        elif fmt == "csv":
            yield from _read_csv(path, chunk_rows, csv_delimiter, encoding)
        else:  # jsonl
            yield from _read_jsonl(path, min(chunk_rows, _JSONL_CHUNK_ROWS), encoding)
        return
    if isinstance(source, pd.DataFrame):
        for start in range(0, max(len(source), 1), chunk_rows):
            yield _from_pandas(source.iloc[start : start + chunk_rows])
        return
    if isinstance(source, pa.Table):
        for start in range(0, max(source.num_rows, 1), chunk_rows):
            yield source.slice(start, chunk_rows)
        return
    if type(source).__module__.split(".")[0] == "polars":
        table = source.to_arrow()
        for start in range(0, max(table.num_rows, 1), chunk_rows):
            yield table.slice(start, chunk_rows)
        return
    _check_source(source)


def _read_parquet(path: Path, chunk_rows: int) -> Iterator[pa.Table]:
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(size - 4, 0))
        tail = fh.read(4)
    if size < 12 or head != b"PAR1" or tail != b"PAR1":
        raise ValidationError(
            "source",
            str(path),
            "is not a Parquet file (no PAR1 marks at its start and end); "
            "if it is text pass format='csv' or format='jsonl'",
        )
    try:
        pf = pq.ParquetFile(path)
        for rb in pf.iter_batches(batch_size=chunk_rows):
            yield pa.Table.from_batches([rb])
    except (pa.ArrowException, OSError) as exc:
        raise ValidationError(
            "source", str(path), f"is not a readable Parquet file ({_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _encoding_hint(path: Path, encoding: str) -> str:
    return (
        f"is not {encoding} text; if it was saved in another encoding pass it, "
        "e.g. encoding='latin-1'"
    )


def _check_csv_head(path: Path, encoding: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if not head.strip():
        raise ValidationError(
            "source", str(path), "is empty; a CSV file needs a header line such as user_id,event,ts"
        )
    compressed = path.suffix.lower() in (".gz", ".bz2", ".zst", ".lz4")
    if not compressed and b"\x00" in head and not encoding.lower().startswith("utf-16"):
        raise ValidationError(
            "source",
            str(path),
            "is not a text file (it holds NUL bytes); is it Parquet (format='parquet'), "
            "compressed, or UTF-16 text (encoding='utf-16')?",
        )


def _read_csv(
    path: Path, chunk_rows: int, csv_delimiter: str | None, encoding: str
) -> Iterator[pa.Table]:
    import pyarrow.csv as pcsv

    _check_csv_head(path, encoding)
    delimiter = csv_delimiter or _sniff_delimiter(path)
    read_options = pcsv.ReadOptions(block_size=64 << 20, encoding=encoding)
    try:
        names = pcsv.open_csv(
            path,
            read_options=read_options,
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
        ).schema.names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValidationError(
                "source",
                str(path),
                f"has the column(s) {dupes} more than once in its header line; "
                "column names must be unique",
            )
        reader = pcsv.open_csv(
            path,
            read_options=read_options,
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False
            ),
        )
        buf: list[pa.RecordBatch] = []
        size = 0
        for rb in reader:
            buf.append(rb)
            size += rb.num_rows
            if size >= chunk_rows:
                yield pa.Table.from_batches(buf)
                buf, size = [], 0
        if buf:
            yield pa.Table.from_batches(buf)
    except (pa.ArrowInvalid, UnicodeError, LookupError) as exc:
        text = _first_line(exc)
        if isinstance(exc, LookupError) and not isinstance(exc, UnicodeError):
            raise ValidationError("encoding", encoding, "is not a known text encoding") from None
        if "UTF8" in text or "UTF-8" in text or isinstance(exc, UnicodeError):
            raise ValidationError("source", str(path), _encoding_hint(path, encoding)) from None
        if "straddling" in text:
            raise ValidationError(
                "source", str(path), "has a line longer than 64 MiB; values that long are refused"
            ) from None
        raise ValidationError("source", str(path), f"is not a readable CSV file ({text})") from None


def _read_jsonl(path: Path, chunk_rows: int, encoding: str) -> Iterator[pa.Table]:  # noqa: C901
    """JSON Lines, one line in memory at a time; a bad line becomes a row to quarantine.

    Rows for bad lines carry ``_line_error`` (why) and ``_line`` (the start of the line);
    nested objects (and lists that are not all text) become JSON text.
    """
    rows: list[dict[str, Any]] = []
    errors: list[str | None] = []
    texts: list[str | None] = []
    lineno = 0

    def reject(why: str, raw: bytes) -> None:
        rows.append({})
        errors.append(f"line {lineno}: {why}")
        texts.append(raw[:_RAW_TEXT_KEEP].decode(encoding, "replace"))

    with open(path, "rb") as fh:
        while True:
            line = fh.readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            lineno += 1
            if len(line) > MAX_LINE_BYTES:
                # skip the rest of the line without holding it
                while True:
                    more = fh.readline(1 << 20)
                    if not more or more.endswith(b"\n"):
                        break
                reject(f"longer than {MAX_LINE_BYTES:,} bytes", line)
            elif line.strip():
                try:
                    doc = json.loads(line.decode(encoding))
                except UnicodeDecodeError:
                    reject(f"not {encoding} text", line)
                except (ValueError, RecursionError) as exc:
                    why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deep"
                    reject(f"not valid JSON ({why})", line)
                else:
                    if not isinstance(doc, dict):
                        reject(f"must be a JSON object, not {type(doc).__name__}", line)
                    else:
                        try:
                            rows.append({str(k): _jsonl_value(v) for k, v in doc.items()})
                        except (RecursionError, ValueError):
                            reject("nested too deep", line)
                        else:
                            errors.append(None)
                            texts.append(None)
            if len(rows) >= chunk_rows:
                yield _jsonl_table(rows, errors, texts)
                rows, errors, texts = [], [], []
    if rows or lineno == 0:
        yield _jsonl_table(rows, errors, texts)


def _jsonl_value(v: Any) -> Any:
    if isinstance(v, dict) or (isinstance(v, list) and not all(isinstance(x, str) for x in v)):
        return json.dumps(v, ensure_ascii=False)
    return v


def _jsonl_table(
    rows: list[dict[str, Any]], errors: list[str | None], texts: list[str | None]
) -> pa.Table:
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    table = _from_pandas(frame)
    if any(e is not None for e in errors):
        bad = {"_line_error": pa.array(errors, pa.string()), "_line": pa.array(texts, pa.string())}
        if table.num_columns == 0:  # every line was bad
            return pa.table(bad)
        for name, arr in bad.items():
            table = table.append_column(name, arr)
    return table


def _check_source(source: Any) -> None:
    if isinstance(source, str | os.PathLike):
        if not Path(source).is_file():
            raise ValidationError("source", str(source), "does not exist (or is not a file)")
        return
    if (
        isinstance(source, pd.DataFrame | pa.Table)
        or type(source).__module__.split(".")[0] == "polars"
    ):
        return
    raise ValidationError(
        "source",
        _describe(source),
        "must be a path to a CSV / Parquet / JSON Lines file, or a pandas / polars DataFrame or Arrow table",
    )


def _sniff_delimiter(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.readline().decode("utf-8", "replace")
    return "\t" if head.count("\t") > head.count(",") else ","


def _from_pandas(frame: pd.DataFrame) -> pa.Table:
    arrays, names = [], []
    for name in frame.columns:
        col = frame[name]
        try:
            arr = pa.array(col, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # mixed Python types in one column: keep the text, let validation decide
            arr = pa.array(
                [
                    None
                    if _isna(v)
                    else (
                        v
                        if isinstance(v, str)
                        else json.dumps(v, default=str)
                        if isinstance(v, list | dict)
                        else str(v)
                    )
                    for v in col
                ],
                pa.string(),
            )
        arrays.append(arr)
        names.append(str(name))
    return pa.Table.from_arrays(arrays, names=names)


def _isna(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- fingerprint
def _fingerprint(source: Any, table: str, options: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"table": table, **options}, sort_keys=True, default=str).encode())
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    elif isinstance(source, pd.DataFrame):
        h.update(json.dumps([str(c) for c in source.columns]).encode())
        try:
            h.update(pd.util.hash_pandas_object(source, index=False).to_numpy().tobytes())
        except TypeError:  # unhashable cells (lists): hash their text
            h.update(source.astype(str).to_csv(index=False).encode())
    else:
        table_ = source if isinstance(source, pa.Table) else source.to_arrow()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table_.schema) as writer:
            writer.write_table(table_)
        h.update(sink.getvalue().to_pybytes())
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- validation
class _Validator:
    def __init__(
        self,
        table: str,
        recorded: dict[str, str],
        ts_unit: str,
        declared: dict[str, str],
        *,
        date_format: str | None = None,
        dedupe_key: str = "event_id",
    ):
        self.table = table
        self.date_format = date_format
        self.dedupe_key = dedupe_key
        self.new_columns: dict[str, str] = {}
        self.types = dict(_CORE_TYPES[table])
        self.types.update(recorded)
        for name, typ in declared.items():
            if name in self.types and self.types[name] != typ:
                raise ValidationError(
                    f"types[{name!r}]",
                    typ,
                    f"conflicts with the recorded type {self.types[name]!r}",
                )
            if name not in self.types:
                self.types[name] = typ
                self.new_columns[name] = typ
        self.ts_unit = ts_unit

    def column_type(self, name: str, arr: pa.ChunkedArray) -> str:
        if name not in self.types:
            typ = arr.type
            if pa.types.is_string(typ) or pa.types.is_large_string(typ):
                inferred = infer_string_type(arr)
            else:
                inferred = arrow_type_name(name, typ)
            if inferred == "null":
                return "null"
            self.types[name] = inferred
            self.new_columns[name] = inferred
        return self.types[name]

    def validate(self, chunk: pa.Table) -> tuple[pa.Table, np.ndarray, list[str | None]]:  # noqa: C901
        """Return (typed table of all rows, reason code per row (0 = good), detail per row)."""
        n = chunk.num_rows
        code = np.zeros(n, dtype=np.int8)
        detail: list[str | None] = [None] * n

        def flag(mask: np.ndarray, reason: str, text: str | None = None) -> None:
            new = mask & (code == 0)
            code[new] = _CODE[reason]
            if text is not None:
                for i in np.flatnonzero(new):
                    detail[i] = text

        if "_line_error" in chunk.column_names:
            why = chunk.column("_line_error").to_pylist()
            for i, w in enumerate(why):
                if w is not None and code[i] == 0:
                    code[i] = _CODE["bad_line"]
                    detail[i] = w
            chunk = chunk.drop_columns(["_line_error", "_line"])
        for name in chunk.column_names:
            arr = chunk.column(name)
            if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
                size = pc.binary_length(arr)
                if (pc.max(size).as_py() or 0) > MAX_VALUE_BYTES:
                    big = np.asarray(
                        pc.fill_null(pc.greater(size, MAX_VALUE_BYTES), False).to_numpy(
                            zero_copy_only=False
                        ),
                        dtype=bool,
                    )
                    flag(big, "value_too_large", f"{name}: longer than {MAX_VALUE_BYTES:,} bytes")
        out: dict[str, pa.ChunkedArray] = {}
        uid = chunk.column("user_id")
        if not pa.types.is_string(uid.type):
            uid = (
                uid.cast(pa.string())
                if not pa.types.is_null(uid.type)
                else pa.chunked_array([pa.nulls(n, pa.string())])
            )
        uid = pc.utf8_trim_whitespace(uid)
        missing = pc.or_kleene(pc.is_null(uid), pc.equal(uid, "")).to_numpy(zero_copy_only=False)
        missing = np.asarray(missing, dtype=bool) | np.asarray(
            pc.is_null(uid).to_numpy(zero_copy_only=False), dtype=bool
        )
        flag(missing, "missing_user_id")
        out["user_id"] = uid
        if self.table == "events":
            ev = (
                chunk.column("event")
                if "event" in chunk.column_names
                else pa.chunked_array([pa.nulls(n, pa.string())])
            )
            ev, bad = coerce(ev, "string")
            ev = pc.utf8_trim_whitespace(ev)
            flag(_null_or_blank(ev), "missing_event")
            out["event"] = ev
            raw_ts = (
                chunk.column("ts")
                if "ts" in chunk.column_names
                else pa.chunked_array([pa.nulls(n, pa.string())])
            )
            if self.date_format is None:
                self.date_format = infer_date_format(raw_ts, "ts")
            ts, bad = parse_timestamps(raw_ts, self.ts_unit, self.date_format)
            flag(
                np.asarray(pc.is_null(ts).to_numpy(zero_copy_only=False), dtype=bool) & ~bad,
                "missing_timestamp",
            )
            flag(bad, "bad_timestamp", "ts")
            out["ts"] = ts
        for name in chunk.column_names:
            if name in out:
                continue
            if name.startswith("_"):
                raise ValidationError(
                    name, "column", "names starting with '_' are reserved for engagelab"
                )
            arr = chunk.column(name)
            typ = self.column_type(name, arr)
            if typ == "null":
                continue
            typed, bad = coerce(arr, typ, self.ts_unit)
            if name == "created_at":
                flag(bad, "bad_timestamp", name)
            else:
                flag(bad, "wrong_type", f"{name}: expected {typ}")
            out[name] = typed
        for col, lim in (("latitude", 90.0), ("longitude", 180.0)):
            if col in out and self.types.get(col) in ("float64", "int64"):
                vals = out[col].to_numpy(zero_copy_only=False).astype("float64")
                flag(
                    np.nan_to_num(np.abs(vals), nan=0.0) > lim,
                    "bad_coordinates",
                    f"{col}: must be in [-{lim:g}, {lim:g}]",
                )
        if self.table == "events" and self.dedupe_key == "content":
            out["event_id"] = _content_keys(out, code)
        if self.table == "profiles" and "timezone" in out:
            tz = out["timezone"]
            uniq = pc.unique(tz.drop_null()).to_pylist()
            bad_tz = [z for z in uniq if not valid_timezone(z)]
            if bad_tz:
                mask = np.asarray(
                    pc.is_in(tz, value_set=pa.array(bad_tz, pa.string())).to_numpy(
                        zero_copy_only=False
                    ),
                    dtype=bool,
                )
                flag(mask, "unknown_timezone", "timezone")
        typed = pa.table(out)
        return typed, code, detail


def _content_keys(out: dict[str, pa.ChunkedArray], code: np.ndarray) -> pa.ChunkedArray:
    """``event_id`` where given, else ``content:`` + a hash of the row's typed values.

    The hash covers every column but ``event_id`` (names sorted, nulls distinct from
    text), so the same event exported twice gets the same key whatever the text form of
    its timestamp was.
    """
    n = len(code)
    names = sorted(k for k in out if k != "event_id")
    cols = []
    for k in names:
        arr = out[k]
        if pa.types.is_timestamp(arr.type):
            arr = arr.cast(pa.int64())
        if pa.types.is_list(arr.type) or pa.types.is_struct(arr.type):
            text = pa.array(
                [None if v is None else json.dumps(v) for v in arr.to_pylist()], pa.string()
            )
        else:
            text = arr.cast(pa.string())
        cols.append(text.to_pylist() if isinstance(text, pa.Array) else text.to_pylist())
    keys: list[str | None] = []
    for i in range(n):
        h = hashlib.blake2b(digest_size=16)
        for name, col in zip(names, cols, strict=True):
            v = col[i]
            h.update(name.encode())
            h.update(b"\x00" if v is None else b"\x01" + v.encode())
            h.update(b"\x1f")
        keys.append("content:" + h.hexdigest())
    given = out.get("event_id")
    content = pa.chunked_array([pa.array(keys, pa.string())])
    if given is None:
        return content
    return pc.coalesce(given.cast(pa.string()), content)


def _null_or_blank(arr: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(
        pc.fill_null(pc.equal(arr, ""), True).to_numpy(zero_copy_only=False), dtype=bool
    )


# --------------------------------------------------------------------------- main entry
def ingest(
    ws: IngestTarget,
    source: Any,
    table: str = "events",
    *,
    mapping: dict[str, str] | None = None,
    types: dict[str, str] | None = None,
    format: str | None = None,
    force: bool = False,
    ts_unit: str = "s",
    chunk_rows: int = 1_000_000,
    csv_delimiter: str | None = None,
    quiet: bool = False,
    encoding: str = "utf-8",
    date_format: str | None = None,
    dedupe_key: str = "event_id",
) -> IngestReport:
    """Validate ``source`` and append its good rows to ``table`` as one atomic batch.

    Args:
        ws: the workspace.
        source: a path (CSV / Parquet / JSON Lines), a pandas or polars DataFrame, or an
            Arrow table.
        table: ``'events'`` or ``'profiles'``.
        mapping: rename source columns, ``{source_name: workspace_name}``.
        types: declare the types of new property columns (``{"revenue": "float64"}``)
            instead of inferring them; allowed: string, int64, float64, bool,
            timestamp, list<string>.
        format: ``'csv'``, ``'parquet'`` or ``'jsonl'`` when the suffix doesn't tell.
        force: ingest even if this exact content was ingested before.
        ts_unit: unit of numeric (epoch) timestamps: ``'s'``, ``'ms'`` or ``'us'``.
        chunk_rows: rows validated at a time (bounds memory).
        csv_delimiter: override the sniffed delimiter (``,`` or tab).
        quiet: do not print the summary.
        encoding: text encoding of a CSV or JSON Lines file (``'latin-1'``, ...).
        date_format: a ``strftime`` pattern for dates that are not ISO 8601 (such as
            ``'%d/%m/%Y'``); by default one day/month order is inferred per batch and a
            batch that mixes both is refused.
        dedupe_key: ``'event_id'`` (events with the same ``event_id`` are kept once) or
            ``'content'`` (events without an ``event_id`` get a hash of their values as
            one, so overlapping re-exports are appended once).

    Returns:
        An :class:`IngestReport`; it is also printed unless ``quiet``.
    """
    check_choice("table", table, TABLES)
    check_choice("ts_unit", ts_unit, ["s", "ms", "us"])
    check_int("chunk_rows", chunk_rows, low=1)
    if format is not None:
        check_choice("format", format, FORMATS)
    mapping = dict(mapping or {})
    for k, v in mapping.items():
        if not isinstance(k, str) or not isinstance(v, str) or not v:
            raise ValidationError(
                f"mapping[{k!r}]", v, "must map a source column name to a column name"
            )
    types = dict(types or {})
    for k, v in types.items():
        check_choice(f"types[{k!r}]", v, PROPERTY_TYPES)
    check_choice("dedupe_key", dedupe_key, ["event_id", "content"])
    _check_encoding(encoding)
    if date_format is not None:
        _check_date_format(date_format)
    options: dict[str, Any] = {"mapping": mapping, "ts_unit": ts_unit, "types": types}
    # only options that differ from their defaults change the fingerprint (so content
    # ingested before these options existed is still recognised)
    for key, value, default in (
        ("encoding", encoding, "utf-8"),
        ("date_format", date_format, None),
        ("dedupe_key", dedupe_key, "event_id"),
    ):
        if value != default:
            options[key] = value
    _check_source(source)
    fingerprint = _fingerprint(source, table, options)
    desc = _describe(source)
    if force:
        fingerprint = f"{fingerprint}:forced:{uuid.uuid4().hex}"
    report = IngestReport(table=table, source=desc, fingerprint=fingerprint)
    with contextlib.ExitStack() as lock:
        if table == "events":
            # Event ids are unique across the store: from the duplicate check against the
            # live files to the commit of the batch, one ingest of events runs at a time
            # (a cross-process lock, dropped by the OS or server if this process dies).
            lock.enter_context(exclusive(ws.state, "ingest:events", ws.path))
        return _ingest_locked(
            ws,
            source,
            table,
            report,
            validator_args=(ts_unit, types),
            mapping=mapping,
            format=format,
            chunk_rows=chunk_rows,
            csv_delimiter=csv_delimiter,
            quiet=quiet,
            encoding=encoding,
            date_format=date_format,
            dedupe_key=dedupe_key,
        )


def _ingest_locked(  # noqa: C901
    ws: IngestTarget,
    source: Any,
    table: str,
    report: IngestReport,
    *,
    validator_args: tuple[str, dict[str, str]],
    mapping: dict[str, str],
    format: str | None,
    chunk_rows: int,
    csv_delimiter: str | None,
    quiet: bool,
    encoding: str,
    date_format: str | None,
    dedupe_key: str,
) -> IngestReport:
    fingerprint, desc = report.fingerprint, report.source
    ts_unit, types = validator_args
    existing = ws.store.find(table, fingerprint)
    if existing is not None:
        report.already_ingested = True
        report.batch_id = existing.id
        if not quiet:
            print(report, file=sys.stdout)
        return report

    validator = _Validator(
        table,
        ws.store.columns(table),
        ts_unit,
        types,
        date_format=date_format,
        dedupe_key=dedupe_key,
    )
    files: list[str] = []
    bad_frames: list[pd.DataFrame] = []
    reasons: Counter[str] = Counter()
    seen = _DuplicateFinder(ws, table)
    row_offset = 0
    quarantine_path: Path | None = None
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engagelab-ingest")
    pending: Future[str] | None = None
    try:
        for raw in _read_chunks(source, format, chunk_rows, csv_delimiter, encoding):
            raw = _apply_mapping(raw, mapping, row_offset == 0)
            if row_offset == 0:
                _check_required(raw, table)
            typed, code, detail = validator.validate(raw)
            dup = seen.check(typed, code == 0)
            if dup is not None:
                new = dup & (code == 0)
                code[new] = _CODE[seen.reason]
            good = code == 0
            n_bad = int((~good).sum())
            if n_bad:
                bad_idx = np.flatnonzero(~good)
                frame = _raw_text(raw.take(pa.array(bad_idx)))
                frame.insert(0, "_detail", [detail[i] for i in bad_idx])
                frame.insert(0, "_reason", [REASONS[code[i] - 1] for i in bad_idx])
                frame.insert(0, "_row", bad_idx + row_offset)
                bad_frames.append(frame)
                reasons.update(REASONS[c - 1] for c in code[~good])
            report.rows_read += raw.num_rows
            row_offset += raw.num_rows
            if good.any():
                good_rows = typed.filter(pa.array(good))
                seen.remember(good_rows)
                if validator.new_columns:
                    ws.store.register_columns(table, validator.new_columns)
                recorded = {k: v for k, v in validator.types.items() if k not in _CORE_TYPES[table]}
                # write this chunk in the background while the next one is validated
                # (Parquet encoding releases the GIL); at most one write is pending
                if pending is not None:
                    files.append(pending.result())
                pending = writer.submit(
                    ws.store.write_file, table, conform(table, good_rows, recorded)
                )
                report.rows_appended += good_rows.num_rows
        if pending is not None:
            files.append(pending.result())
            pending = None
        if bad_frames:
            quarantine_path = ws.path / "quarantine" / table / f"{uuid.uuid4().hex}.parquet"
            quarantine_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = quarantine_path.with_name(quarantine_path.name + ".tmp")
            pd.concat(bad_frames, ignore_index=True).to_parquet(tmp, index=False)
            os.replace(tmp, quarantine_path)
        report.rows_quarantined = sum(reasons.values())
        report.reasons = {r: reasons[r] for r in REASONS if reasons[r]}
        report.new_columns = dict(validator.new_columns)
        report.quarantine_file = str(quarantine_path) if quarantine_path else None
        # one transaction makes the batch live and records the ingestion
        with ws.state.write() as conn:
            batch_id = insert_batch(
                conn,
                dict(
                    table_name=table,
                    fingerprint=fingerprint,
                    source=desc,
                    rows=report.rows_appended,
                    files=files,
                    status="live",
                    created_at=utcnow(),
                ),
            )
            if batch_id is not None:
                conn.execute(
                    ingests.insert().values(
                        table_name=table,
                        source=desc,
                        fingerprint=fingerprint,
                        batch_id=batch_id,
                        rows_read=report.rows_read,
                        rows_appended=report.rows_appended,
                        rows_quarantined=report.rows_quarantined,
                        reasons=report.reasons,
                        quarantine_file=report.quarantine_file,
                        created_at=utcnow(),
                    )
                )
        if batch_id is not None:
            report.batch_id = batch_id
        else:  # another process ingested the same content a moment ago
            _cleanup(ws, files, quarantine_path)
            existing = ws.store.find(table, fingerprint)
            report = IngestReport(
                table=table, source=desc, fingerprint=fingerprint, already_ingested=True
            )
            report.batch_id = existing.id if existing else None
    except BaseException:
        if pending is not None:
            with contextlib.suppress(Exception):
                files.append(pending.result())
        _cleanup(ws, files, quarantine_path)
        raise
    finally:
        writer.shutdown(wait=True)
        seen.close()
    if not quiet:
        print(report, file=sys.stdout)
    return report


def _cleanup(ws: IngestTarget, files: list[str], quarantine_path: Path | None) -> None:
    ws.store.discard(files)
    if quarantine_path is not None and quarantine_path.exists():
        quarantine_path.unlink()


def _apply_mapping(raw: pa.Table, mapping: dict[str, str], first: bool) -> pa.Table:
    if not mapping:
        return raw
    if first:
        unknown = [k for k in mapping if k not in raw.column_names]
        if unknown:
            raise ValidationError(
                "mapping",
                unknown,
                f"names columns the source does not have; it has {raw.column_names}",
            )
    names = [mapping.get(c, c) for c in raw.column_names]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError("mapping", mapping, f"makes duplicate column names {dupes}")
    return raw.rename_columns(names)


def _check_required(raw: pa.Table, table: str) -> None:
    required = ["user_id"] if table == "profiles" else ["user_id", "event", "ts"]
    missing = [c for c in required if c not in raw.column_names]
    if missing:
        raise ValidationError(
            "source",
            raw.column_names,
            f"lacks the column(s) {missing} needed for {table}; map foreign names with "
            "mapping={'their_name': '" + missing[0] + "'}",
        )


def _raw_text(raw: pa.Table) -> pd.DataFrame:
    out = {}
    for name in raw.column_names:
        col = raw.column(name)
        try:
            values = col.cast(pa.string()).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()]
        # an oversized value is kept as its start, not copied whole into the quarantine
        out[name] = [
            v[:_RAW_TEXT_KEEP] + "..." if v is not None and len(v) > MAX_VALUE_BYTES else v
            for v in values
        ]
    return pd.DataFrame(out, dtype=object)


def _check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValidationError(
            "encoding", encoding, "must be a text encoding such as 'utf-8' or 'latin-1'"
        ) from None


def _check_date_format(date_format: Any) -> None:
    ok = isinstance(date_format, str) and "%" in date_format
    if ok:
        try:
            pd.Timestamp("2026-01-31").strftime(date_format)
        except ValueError:
            ok = False
    if not ok:
        raise ValidationError(
            "date_format", date_format, "must be a strftime pattern such as '%d/%m/%Y'"
        )


class _DuplicateFinder:
    """Finds event ids (or profile user ids) already seen in this batch or in the store.

    Within a chunk: pandas' exact ``duplicated``. Across the chunks of this batch: Arrow's
    hash-based ``is_in`` against the ids kept so far. Against the store: one DuckDB
    semi-join with the ``event_id`` column of the live files (skipped when no live file
    has that column). All exact, all vectorised.
    """

    def __init__(self, ws: IngestTarget, table: str):
        import duckdb

        self.key = "event_id" if table == "events" else "user_id"
        self.reason = "duplicate_event_id" if table == "events" else "duplicate_user_id"
        files = [str(p) for p in ws.store.live_files(table)] if table == "events" else []
        self.store_files = files if files and "event_id" in _columns_of(files) else []
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET enable_progress_bar = false")
        self.earlier: list[pa.Array] = []

    def check(self, typed: pa.Table, candidate: np.ndarray) -> np.ndarray | None:
        if self.key not in typed.column_names:
            return None
        keys = typed.column(self.key).combine_chunks()
        present = candidate & np.asarray(keys.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        dup = np.zeros(len(keys), dtype=bool)
        idx = np.flatnonzero(present)
        if len(idx) == 0:
            return dup
        dup[idx] = (
            pd.Series(keys.take(pa.array(idx)).to_pandas()).duplicated(keep="first").to_numpy()
        )
        if self.earlier:
            seen = pa.concat_arrays(self.earlier) if len(self.earlier) > 1 else self.earlier[0]
            self.earlier = [seen]
            dup |= present & np.asarray(
                pc.fill_null(pc.is_in(keys, value_set=seen), False).to_numpy(zero_copy_only=False),
                dtype=bool,
            )
        if self.store_files:
            self.con.register("chunk", pa.table({"k": keys}))
            hits = self.con.sql(
                "SELECT DISTINCT event_id FROM read_parquet($files, union_by_name = true) "
                "WHERE event_id IN (SELECT k FROM chunk)",
                params={"files": self.store_files},
            ).to_arrow_table()
            self.con.unregister("chunk")
            if hits.num_rows:
                found = pc.is_in(keys, value_set=hits.column(0).combine_chunks())
                dup |= present & np.asarray(
                    pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool
                )
        return dup

    def remember(self, good: pa.Table) -> None:
        if self.key in good.column_names:
            self.earlier.append(good.column(self.key).combine_chunks().drop_null())

    def close(self) -> None:
        self.con.close()


def _columns_of(files: list[str]) -> set[str]:
    cols: set[str] = set()
    for f in files:
        cols |= set(pq.read_schema(f).names)
    return cols
