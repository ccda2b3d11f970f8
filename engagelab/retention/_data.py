"""What a retention query needs to know about the data before it runs: the time range of
the events and whether the named events exist.

Both used to be one full scan of ``events`` (``min(ts)``, ``max(ts)``, ``bool_or``). The
time range now comes from the Parquet footers of the live files (row-group statistics
hold the exact min and max of ``ts``; files are immutable, so their footers are cached
by path), and existence from ``EXISTS`` probes that stop at the first match and skip
row groups by their ``event`` statistics. Any file without usable statistics falls back
to the SQL scan.

Example:
    >>> import tempfile, pandas as pd
    >>> from engagelab import Workspace
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = ws.append("events", pd.DataFrame({"user_id": ["a", "b"], "event": ["Open", "Buy"],
    ...     "ts": pd.to_datetime(["2026-01-01 09:00", "2026-01-03 10:00"], utc=True)}))
    >>> first, last = data_range(ws)
    >>> f"{first:%Y-%m-%d %H:%M} {last:%Y-%m-%d %H:%M}"
    '2026-01-01 09:00 2026-01-03 10:00'
    >>> events_exist(ws, ["Open", "Close"])
    [True, False]
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["data_range", "events_exist"]


def _aware(value: Any) -> dt.datetime:
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


@lru_cache(maxsize=4096)
def _file_ts_range(path: Path) -> tuple[dt.datetime, dt.datetime] | None:
    """Exact (min, max) of ``ts`` in one Parquet file from its footer, or None."""
    try:
        md = pq.ParquetFile(path).metadata
    except OSError:  # replaced and collected by a concurrent compaction
        return None
    names = [md.schema.column(i).path for i in range(md.num_columns)]
    if "ts" not in names:
        return None
    idx = names.index("ts")
    lows, highs = [], []
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        if group.num_rows == 0:
            continue
        st = group.column(idx).statistics
        if st is None or not st.has_min_max:
            return None
        lows.append(_aware(st.min))
        highs.append(_aware(st.max))
    return (min(lows), max(highs)) if lows else None


def data_range(ws: Core) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``(first, last)`` event time in the workspace (None, None when it has no events)."""
    files = ws.store.catalog().files.get("events", [])
    ranges = [r for r in (_file_ts_range(Path(f)) for f in files) if r is not None]
    if files and len(ranges) == len(files):
        return min(r[0] for r in ranges), max(r[1] for r in ranges)
    row = ws.sql("SELECT min(ts) AS first_ts, max(ts) AS last_ts FROM events").iloc[0]
    if pd.isna(row["first_ts"]):
        return None, None
    return _aware(row["first_ts"]), _aware(row["last_ts"])


def events_exist(ws: Core, names: list[str]) -> list[bool]:
    """Whether each event name occurs in ``events`` (stops at the first row found)."""
    probes = ", ".join(
        f"EXISTS (SELECT 1 FROM events WHERE event = $e{i}) AS e{i}" for i in range(len(names))
    )
    row = ws.sql(f"SELECT {probes}", {f"e{i}": n for i, n in enumerate(names)}).iloc[0]
    return [bool(row[f"e{i}"]) for i in range(len(names))]
