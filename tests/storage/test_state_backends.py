"""The workspace works the same with SQLite and with a real PostgreSQL state database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from engagelab import ValidationError, Workspace
from engagelab.segments import Segment, did, prop
from engagelab.storage.tables import batches

ROOT = Path(__file__).resolve().parents[2]


def _events(n: int, tag: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [f"u{i % 7}" for i in range(n)],
            "event": ["Charged" if i % 3 == 0 else "App Launched" for i in range(n)],
            "ts": pd.Timestamp("2026-02-01", tz="UTC") + pd.to_timedelta(range(n), unit="h"),
            "batch_tag": [tag] * n,
        }
    )


def test_ingest_segments_and_compaction(any_ws):
    ws = any_ws
    ws.ingest(
        pd.DataFrame(
            {"user_id": [f"u{i}" for i in range(7)], "city": ["Berlin", "Paris"] * 3 + ["Rome"]}
        ),
        table="profiles",
        quiet=True,
    )
    r1 = ws.ingest(_events(30, "a"), quiet=True)
    r2 = ws.ingest(_events(30, "a"), quiet=True)
    assert r1.rows_appended == 30 and r2.already_ingested
    ws.ingest(_events(12, "b"), quiet=True)
    seg = Segment(did("Charged", at_least=2) & prop("city").eq("Berlin"))
    ws.save_segment("berlin buyers", seg, description="test")
    assert ws.load_segment("berlin buyers") == seg
    n = ws.count("berlin buyers")
    expected = ws.sql(
        "SELECT count(*) AS n FROM (SELECT e.user_id FROM events e JOIN profiles p USING (user_id) "
        "WHERE e.event = 'Charged' AND p.city = 'Berlin' GROUP BY e.user_id HAVING count(*) >= 2)"
    )["n"][0]
    assert n == expected > 0
    before = ws.sql("SELECT * FROM events ORDER BY ts, user_id, batch_tag")
    ws.compact("events")
    after = ws.sql("SELECT * FROM events ORDER BY ts, user_id, batch_tag")
    pd.testing.assert_frame_equal(before, after)
    with ws.state.read() as conn:
        live = conn.execute(
            sa.select(sa.func.count()).where(
                batches.c.status == "live", batches.c.table_name == "events"
            )
        ).scalar_one()
    assert live == 1
    # a fingerprint survives compaction: the first file is still "already ingested"
    assert ws.ingest(_events(30, "a"), quiet=True).already_ingested


def test_unknown_saved_segment_is_a_clear_error(any_ws):
    with pytest.raises(ValidationError, match="is not a saved segment"):
        any_ws.count("nope")


@pytest.mark.postgres
def test_two_processes_share_a_postgres_state_db(tmp_path, postgres_db_url):
    ws = Workspace.create(tmp_path / "pgws", state_url=postgres_db_url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.storage.workers", "writer", str(ws.path), "8", "200", t],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for t in ("A", "B")
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
    counts = ws.sql("SELECT batch_tag, count(*) AS n FROM events GROUP BY batch_tag")
    assert len(counts) == 16 and set(counts["n"]) == {200}
    ws.close()
