"""The analytical store: append-only Parquet files per table, with a manifest in the state DB.

How a batch becomes visible, atomically:

1. every file of the batch is written under a temporary name, flushed to disk and renamed
   to its final name (``<table>/part-<uuid>.parquet``);
2. one state-DB transaction inserts the batch row that lists those files.

Readers list the live files in one transaction, so they see a batch whole or not at all.
A process killed before step 2 leaves orphan files that no reader lists; :meth:`Store.gc`
removes them once they are old enough that no writer can still be working on them.
Compaction rewrites the live files of a table into fewer files and, in one transaction,
marks the old batches ``replaced`` and inserts the new one: a reader sees either the old
set or the new set, never both and never neither. Replaced files are deleted by ``gc``
after a grace period, so a query that listed them a moment earlier still finds them.

The batch fingerprint (unique per table) makes appends idempotent.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from engagelab.engines.base import TABLES, Catalog
from engagelab.errors import ValidationError, WorkspaceError
from engagelab.storage.files import fsync_dir
from engagelab.storage.statedb import StateDB, utcnow
from engagelab.storage.tables import batches, columns
from engagelab.storage.upsert import insert_ignore, insert_new

__all__ = ["TABLES", "BatchInfo", "Catalog", "Store", "insert_batch"]

#: Files younger than this are never treated as orphans (a writer may still be busy).
ORPHAN_AGE = timedelta(hours=1)
#: Replaced files are kept this long for readers that listed them just before compaction.
REPLACED_GRACE = timedelta(hours=1)

PARQUET_OPTIONS = {"compression": "zstd", "row_group_size": 256 * 1024}


@dataclass(frozen=True)
class BatchInfo:
    """A committed batch: its id, table, row count, files and whether it already existed."""

    id: int
    table: str
    rows: int
    files: tuple[str, ...]
    fingerprint: str
    already_present: bool = False


class Store:
    """Parquet tables under ``root`` whose live files are recorded in ``state``."""

    def __init__(self, root: Path, state: StateDB):
        self.root = Path(root)
        self.state = state

    # ------------------------------------------------------------------ reading
    def live_files(self, table: str) -> list[Path]:
        """Absolute paths of the live files of ``table``, oldest batch first."""
        return self.snapshot([table])[table]

    def snapshot(self, tables: Iterable[str] = TABLES) -> dict[str, list[Path]]:
        """Live files of several tables, read in one consistent transaction."""
        tables = list(tables)
        for t in tables:
            _check_table(t)
        out: dict[str, list[Path]] = {t: [] for t in tables}
        with self.state.read() as conn:
            rows = conn.execute(
                sa.select(batches.c.table_name, batches.c.files)
                .where(batches.c.status == "live", batches.c.table_name.in_(tables))
                .order_by(batches.c.id)
            )
            for table_name, files in rows:
                out[table_name].extend(self.root / f for f in files)
        return out

    def catalog(self) -> Catalog:
        """Version, live files and column types of every table, read in one transaction."""
        files: dict[str, list[Path]] = {t: [] for t in TABLES}
        cols: dict[str, dict[str, str]] = {t: {} for t in TABLES}
        counts: dict[str, int] = {t: 0 for t in TABLES}
        with self.state.read() as conn:
            version = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(batches.c.id), 0))
            ).scalar_one()
            for table_name, fs in conn.execute(
                sa.select(batches.c.table_name, batches.c.files)
                .where(batches.c.status == "live")
                .order_by(batches.c.id)
            ):
                files[table_name].extend(self.root / f for f in fs)
                counts[table_name] += 1
            for table_name, col, typ in conn.execute(
                sa.select(columns.c.table_name, columns.c.column_name, columns.c.type)
            ):
                cols.setdefault(table_name, {})[col] = typ
        return Catalog(int(version), files, cols, counts)

    def columns(self, table: str) -> dict[str, str]:
        """Recorded column types of ``table`` (name → property type name)."""
        _check_table(table)
        with self.state.read() as conn:
            rows = conn.execute(
                sa.select(columns.c.column_name, columns.c.type).where(
                    columns.c.table_name == table
                )
            )
            return {c: t for c, t in rows}

    def register_columns(self, table: str, types: dict[str, str]) -> dict[str, str]:
        """Record the types of new columns; return the full mapping.

        A column already recorded with another type is an error naming the column.
        Concurrent registrations of the same column with the same type are fine.
        """
        _check_table(table)
        wanted = {col: typ for col, typ in types.items() if typ != "null"}
        with self.state.write() as conn:
            # insert-on-conflict-do-nothing, then read back: two processes registering the
            # same new column at once both succeed, and both see the type that won
            insert_ignore(
                conn,
                columns,
                [{"table_name": table, "column_name": c, "type": t} for c, t in wanted.items()],
            )
            have = {
                c: t
                for c, t in conn.execute(
                    sa.select(columns.c.column_name, columns.c.type).where(
                        columns.c.table_name == table
                    )
                )
            }
        for col, typ in wanted.items():
            if have[col] != typ:
                raise ValidationError(
                    f"{table}.{col}", typ, f"conflicts with the recorded type {have[col]!r}"
                )
        return have

    def version(self) -> int:
        """A number that changes whenever any table's live files change."""
        with self.state.read() as conn:
            return int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.max(batches.c.id), 0))).scalar_one()
            )

    def find(self, table: str, fingerprint: str) -> BatchInfo | None:
        """The batch of ``table`` with this fingerprint, live or compacted, if any."""
        with self.state.read() as conn:
            row = conn.execute(
                sa.select(batches).where(
                    batches.c.table_name == table, batches.c.fingerprint == fingerprint
                )
            ).first()
        if row is None:
            return None
        return BatchInfo(
            row.id, table, int(row.rows), tuple(row.files), fingerprint, already_present=True
        )

    # ------------------------------------------------------------------ writing
    def write_file(self, table: str, data: pa.Table) -> str:
        """Write one Parquet file durably under a fresh name; return its path relative to root."""
        _check_table(table)
        rel = f"{table}/part-{uuid.uuid4().hex}.parquet"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            pq.write_table(data, fh, **PARQUET_OPTIONS)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return rel

    def commit(
        self,
        table: str,
        files: list[str],
        rows: int,
        *,
        fingerprint: str,
        source: str,
        conn: sa.Connection | None = None,
    ) -> BatchInfo:
        """Make already-written ``files`` live as one batch, in one transaction.

        If a batch with the same fingerprint exists (another process won the race), the
        new files are deleted and the existing batch is returned with ``already_present``.
        """
        _check_table(table)
        fsync_dir(self.root / table)
        values = dict(
            table_name=table,
            fingerprint=fingerprint,
            source=source,
            rows=int(rows),
            files=list(files),
            status="live",
            created_at=utcnow(),
        )
        if conn is None:
            with self.state.write() as c:
                batch_id = insert_batch(c, values)
        else:
            batch_id = insert_batch(conn, values)
        if batch_id is None:  # another process committed this fingerprint first
            self.discard(files)
            existing = self.find(table, fingerprint)
            if existing is None:  # pragma: no cover - committed and then deleted meanwhile
                raise WorkspaceError(f"batch {fingerprint!r} of {table!r} vanished during commit")
            return existing
        return BatchInfo(batch_id, table, int(rows), tuple(files), fingerprint)

    def append(
        self,
        table: str,
        data: pa.Table | Iterable[pa.Table],
        *,
        fingerprint: str | None = None,
        source: str = "api",
    ) -> BatchInfo:
        """Append one or several Arrow tables to ``table`` as one atomic batch.

        The tables are written as they are (callers validate); empty tables are skipped.
        With a ``fingerprint`` already present, nothing is written and the existing batch
        is returned (``already_present=True``).
        """
        _check_table(table)
        if fingerprint is not None:
            existing = self.find(table, fingerprint)
            if existing is not None:
                return existing
        else:
            fingerprint = f"uuid:{uuid.uuid4().hex}"
        parts = [data] if isinstance(data, pa.Table) else data
        files: list[str] = []
        rows = 0
        try:
            for part in parts:
                if part.num_rows == 0:
                    continue
                files.append(self.write_file(table, part))
                rows += part.num_rows
        except BaseException:
            self.discard(files)
            raise
        return self.commit(table, files, rows, fingerprint=fingerprint, source=source)

    def discard(self, files: Iterable[str]) -> None:
        """Delete files that were written but never committed."""
        for rel in files:
            with contextlib.suppress(FileNotFoundError):
                (self.root / rel).unlink()

    def replace(
        self, table: str, old_batch_ids: list[int], new_files: list[str], rows: int
    ) -> BatchInfo:
        """Atomically swap the given live batches for one new batch (used by compaction)."""
        now = utcnow()
        fingerprint = f"compact:{uuid.uuid4().hex}"
        with self.state.write() as conn:
            live = conn.execute(
                sa.select(sa.func.count()).where(
                    batches.c.id.in_(old_batch_ids), batches.c.status == "live"
                )
            ).scalar_one()
            if live != len(old_batch_ids):
                self.discard(new_files)
                raise WorkspaceError(
                    f"compaction of {table!r} lost a race with another compaction; retry"
                )
            conn.execute(
                batches.update()
                .where(batches.c.id.in_(old_batch_ids))
                .values(status="replaced", replaced_at=now)
            )
            new_id = insert_batch(
                conn,
                dict(
                    table_name=table,
                    fingerprint=fingerprint,
                    source=f"compaction of {len(old_batch_ids)} batches",
                    rows=rows,
                    files=new_files,
                    status="live",
                    created_at=now,
                ),
            )
        assert new_id is not None  # a fresh uuid fingerprint never conflicts
        return BatchInfo(new_id, table, rows, tuple(new_files), fingerprint)

    def live_batches(self, table: str) -> list[tuple[int, list[str], int]]:
        """``(batch id, files, rows)`` of the live batches of ``table``."""
        with self.state.read() as conn:
            rows = conn.execute(
                sa.select(batches.c.id, batches.c.files, batches.c.rows)
                .where(batches.c.table_name == table, batches.c.status == "live")
                .order_by(batches.c.id)
            )
            return [(int(i), list(f), int(n)) for i, f, n in rows]

    def is_compacted(self, batch_id: int) -> bool:
        """True if the batch was written by compaction."""
        with self.state.read() as conn:
            fp = conn.execute(
                sa.select(batches.c.fingerprint).where(batches.c.id == batch_id)
            ).scalar_one()
        return fp.startswith("compact:")

    def gc(
        self, *, orphan_age: timedelta = ORPHAN_AGE, grace: timedelta = REPLACED_GRACE
    ) -> list[str]:
        """Delete orphan files (never committed) and replaced files past their grace period."""
        now = utcnow()
        removed: list[str] = []
        with self.state.read() as conn:
            rows = conn.execute(
                sa.select(batches.c.files, batches.c.status, batches.c.replaced_at)
            ).all()
        referenced: set[str] = set()
        expired: set[str] = set()
        for files, status, replaced_at in rows:
            for f in files:
                if (
                    status == "replaced"
                    and replaced_at is not None
                    and _aware(replaced_at) <= now - grace
                ):
                    expired.add(f)
                else:
                    referenced.add(f)
        expired -= referenced
        cutoff = time.time() - orphan_age.total_seconds()
        for table in TABLES:
            folder = self.root / table
            if not folder.exists():
                continue
            for path in folder.iterdir():
                rel = f"{table}/{path.name}"
                if rel in expired or (rel not in referenced and path.stat().st_mtime <= cutoff):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    removed.append(rel)
        return removed


def insert_batch(conn: sa.Connection, values: dict[str, Any]) -> int | None:
    """Insert one manifest row (``el_batches``) and return its id, or None if a batch with
    the same (table, fingerprint) exists already (nothing is inserted then)."""
    got = insert_new(conn, batches, values, "id")
    return None if got is None else int(got)


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ValidationError("table", table, "must be one of 'profiles', 'events'")


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
