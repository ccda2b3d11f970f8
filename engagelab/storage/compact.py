"""Compaction: rewrite a table's live files into few large, sorted files.

The new files are written first; one state-DB transaction then swaps the old batches for
the new one, so a concurrent reader sees either the old set or the new set. Profiles are
merged to one row per user (latest non-null value of each column), which also restores
the fast path for profile queries.
"""

from __future__ import annotations

import time

import duckdb
import pyarrow as pa

from engagelab.engines.base import Catalog
from engagelab.engines.duckdb_engine import view_sql
from engagelab.storage.store import BatchInfo, Store

__all__ = ["compact"]

ROWS_PER_FILE = 4_000_000


def compact(store: Store, table: str) -> BatchInfo | None:
    """Rewrite ``table``'s live files into few sorted files; return the new batch.

    Returns None (and writes nothing) when the table is empty or already is the single
    result of an earlier compaction.
    """
    live = store.live_batches(table)
    files = [f for _, fs, _ in live for f in fs]
    if not files or (len(live) == 1 and store.is_compacted(live[0][0])):
        return None
    full = store.catalog()
    catalog = Catalog(
        full.version,
        {table: [store.root / f for f in files]},
        {table: full.columns.get(table, {})},
        {table: len(live)},
    )
    select = view_sql(table, catalog)
    # events clustered by (event, ts): Parquet row-group statistics then skip all but the
    # events a segment or metric asks for (see benchmarks/RESULTS.md, segment count)
    order = "event, ts, user_id" if table == "events" else "user_id"
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    new_files: list[str] = []
    rows = 0
    try:
        reader = con.sql(f"SELECT * FROM ({select}) ORDER BY {order}").to_arrow_reader(
            batch_size=ROWS_PER_FILE
        )
        buffer: list[pa.RecordBatch] = []
        size = 0
        for rb in reader:
            buffer.append(rb)
            size += rb.num_rows
            if size >= ROWS_PER_FILE:
                new_files.append(
                    store.write_file(table, _finish(table, pa.Table.from_batches(buffer)))
                )
                rows += size
                buffer, size = [], 0
        if buffer:
            new_files.append(store.write_file(table, _finish(table, pa.Table.from_batches(buffer))))
            rows += size
    except BaseException:
        store.discard(new_files)
        raise
    finally:
        con.close()
    return store.replace(table, [bid for bid, _, _ in live], new_files, rows)


def _finish(table: str, data: pa.Table) -> pa.Table:
    if table == "profiles":
        data = data.append_column(
            "_ingested_at", pa.array([time.time_ns()] * data.num_rows, pa.int64())
        )
    return data
