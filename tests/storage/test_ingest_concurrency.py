"""Concurrent ingests in separate processes never store an event id twice; SIGKILL at any
point leaves no partial or duplicated data (SQLite and PostgreSQL state databases)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from engagelab import Workspace

ROOT = Path(__file__).resolve().parents[2]


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage.workers", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _events_csv(path: Path, ids: range, tag: str) -> Path:
    """A file of events with ids ``e<i>``: CSV, or Parquet in row groups of 5,000 (read
    and written chunk by chunk, so an ingest of it takes a while)."""
    n = len(ids)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i % 997}" for i in ids],
            "event": ["App Launched"] * n,
            "ts": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(list(ids), unit="s"),
            "event_id": [f"e{i}" for i in ids],
            "src": [tag] * n,
        }
    )
    if path.suffix == ".parquet":
        frame["ts"] = frame["ts"].astype(str)
        frame.to_parquet(path, index=False, row_group_size=5_000)
    else:
        frame.to_csv(path, index=False)
    return path


def _counts(ws: Workspace) -> tuple[int, int]:
    got = ws.sql("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events")
    return int(got["n"][0]), int(got["d"][0])


def _manifest_rows(ws: Workspace) -> int:
    return sum(rows for _, _, rows in ws.store.live_batches("events"))


@pytest.fixture
def any_ws_path(tmp_path, state_url):
    w = Workspace.create(tmp_path / "ws", state_url=state_url)
    yield w
    w.close()


def test_two_processes_ingesting_files_that_share_20000_ids_at_once(any_ws_path, tmp_path):
    ws = any_ws_path
    a = _events_csv(tmp_path / "a.csv", range(0, 30_000), "a")
    b = _events_csv(tmp_path / "b.csv", range(10_000, 40_000), "b")  # e10000..e29999 shared
    go = time.time() + 8  # both start ingesting at this moment, after their imports
    procs = [_spawn("ingest", str(ws.path), str(src), "5000", str(go)) for src in (a, b)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sum(r["rows_appended"] for r in reports) == 40_000
    # exactly one of them found the other's 20,000 ids already stored
    assert sorted(r["reasons"].get("duplicate_event_id", 0) for r in reports) == [0, 20_000]
    assert _counts(ws) == (40_000, 40_000)
    assert _manifest_rows(ws) == 40_000


def _waits_for_lock(ws: Workspace, pid: int) -> bool:
    """True while process ``pid`` waits for an ingest lock (PostgreSQL: an advisory lock
    not granted; SQLite: a blocked ``flock`` in /proc/locks)."""
    if ws.state.engine.dialect.name == "postgresql":
        with ws.state.read() as conn:
            return bool(conn.execute(sa.text(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND NOT l.granted "
                "AND a.datname = current_database()")).scalar_one())  # fmt: skip
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in ln and "FLOCK" in ln and ln.split()[5] == str(pid) for ln in lines)


def test_sigkill_of_an_ingest_holding_the_lock_lets_the_waiting_one_finish(any_ws_path, tmp_path):
    ws = any_ws_path
    big = _events_csv(tmp_path / "big.parquet", range(0, 400_000), "big")
    small = _events_csv(tmp_path / "small.csv", range(0, 20_000), "small")  # 20,000 shared
    go = tmp_path / "go"
    events_dir = ws.path / "data" / "events"
    waiting = _spawn("ingest", str(ws.path), str(small), "5000", str(go))
    killed = _spawn("ingest", str(ws.path), str(big), "5000")
    deadline = time.time() + 120
    while time.time() < deadline and not list(events_dir.glob("part-*.parquet")):
        assert killed.poll() is None, killed.communicate()[1][-2000:]
        time.sleep(0.005)
    go.touch()  # the big ingest holds the lock: let the small one start
    while time.time() < deadline and not _waits_for_lock(ws, waiting.pid):
        assert waiting.poll() is None, waiting.communicate()[1][-2000:]
        time.sleep(0.01)
    assert killed.poll() is None, "the kill should land while the big ingest runs"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert ws.store.live_batches("events") == [], "the big ingest committed before the kill"
    out, err = waiting.communicate(timeout=240)
    assert waiting.returncode == 0, err[-2000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["rows_appended"] == 20_000  # nothing of the killed batch was visible
    assert _counts(ws) == (20_000, 20_000) and _manifest_rows(ws) == 20_000
    # the rerun of the killed ingest appends only the ids not stored yet, once
    again = ws.ingest(big, chunk_rows=100_000, quiet=True)
    assert again.rows_appended == 380_000
    assert again.reasons == {"duplicate_event_id": 20_000}
    assert _counts(ws) == (400_000, 400_000) and _manifest_rows(ws) == 400_000


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_partial_or_duplicated_data(ws, tmp_path):
    sources = [
        _events_csv(tmp_path / f"s{k}.csv", range(k * 10_000, k * 10_000 + 60_000), f"s{k}")
        for k in range(3)
    ]  # consecutive files share 50,000 ids
    stored: set[str] = set()
    for k, delay in enumerate([2.5, 4.0, 5.5, 7.0]):
        src = sources[k % len(sources)]
        procs = [_spawn("ingest", str(ws.path), str(s), "10000") for s in (src, sources[-1])]
        time.sleep(delay)
        os.kill(procs[0].pid, signal.SIGKILL)
        for p in procs:
            p.communicate(timeout=240)
        assert procs[1].returncode == 0
        n, d = _counts(ws)
        assert n == d == _manifest_rows(ws)  # whole batches only, no id twice
        ids = set(ws.sql("SELECT event_id FROM events")["event_id"])
        assert stored <= ids
        stored = ids
    for src in sources:
        ws.ingest(src, quiet=True)
    assert _counts(ws) == (80_000, 80_000) and _manifest_rows(ws) == 80_000
