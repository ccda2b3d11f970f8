"""The data range from Parquet footers against a SQL scan, and its fallback."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engagelab import Workspace
from engagelab.retention import _data
from engagelab.retention._data import data_range, events_exist


def test_footer_range_equals_sql_scan_and_falls_back_without_statistics(tmp_path, monkeypatch):
    ws = Workspace.create(tmp_path / "ws")
    t = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    for days in (["2026-02-03 04:05:06.789", "2026-01-09"], ["2025-12-31 23:59:59.999999"]):
        ev = pd.DataFrame({"user_id": "u", "event": "Open", "ts": [t(d) for d in days]})
        ws.append("events", ev.astype({"ts": "datetime64[us, UTC]"}))
    sql = ws.sql("SELECT min(ts) AS a, max(ts) AS b FROM events").iloc[0]
    expected = (sql["a"].to_pydatetime(), sql["b"].to_pydatetime())
    assert (
        data_range(ws)
        == expected
        == (t("2025-12-31 23:59:59.999999"), t("2026-02-03 04:05:06.789"))
    )
    # a file without statistics: no footer range, and data_range scans instead
    bare = tmp_path / "bare.parquet"
    pq.write_table(pa.table({"ts": pa.array([1, 2], pa.timestamp("us", "UTC"))}), bare,
                   write_statistics=False)  # fmt: skip
    assert _data._file_ts_range(bare) is None
    monkeypatch.setattr(_data, "_file_ts_range", lambda path: None)
    assert data_range(ws) == expected
    assert events_exist(ws, ["Open", "Opened", "open"]) == [True, False, False]
    empty = Workspace.create(tmp_path / "empty")
    assert data_range(empty) == (None, None)
    assert events_exist(empty, ["Open"]) == [False]
    ws.close()
    empty.close()
