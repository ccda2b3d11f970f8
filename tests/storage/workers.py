"""Worker processes for the multi-process tests (run as ``python -m tests.storage.workers``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

from engagelab import Workspace
from engagelab.segments import Segment, did


def writer(path: str, batches: int, rows: int, tag: str) -> None:
    ws = Workspace.open(path)
    for b in range(batches):
        df = pd.DataFrame(
            {
                "user_id": [f"{tag}-{b}-{i}" for i in range(rows)],
                "event": ["Tick"] * rows,
                "ts": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(range(rows), unit="s"),
                "batch_tag": [f"{tag}-{b}"] * rows,
            }
        )
        ws.append("events", df, source=f"{tag}-{b}")
        ws.save_segment(f"seg-{tag}", Segment(did("Tick")), description=f"written at batch {b}")
    ws.close()


def reader(path: str, seconds: float, rows: int) -> None:
    ws = Workspace.open(path)
    deadline = time.time() + seconds
    last_total = 0
    checks = 0
    while time.time() < deadline:
        counts = ws.sql("SELECT batch_tag, count(*) AS n FROM events GROUP BY batch_tag")
        torn = counts[counts["n"] != rows]
        if len(torn):
            raise SystemExit(f"torn batch seen: {torn.to_dict('records')}")
        total = int(counts["n"].sum())
        if total < last_total:
            raise SystemExit(f"rows went missing: {last_total} -> {total}")
        last_total = total
        ws.segments()
        checks += 1
    print(json.dumps({"checks": checks, "last_total": last_total}))
    ws.close()


def compactor(path: str, seconds: float) -> None:
    ws = Workspace.open(path)
    deadline = time.time() + seconds
    done = 0
    while time.time() < deadline:
        try:
            if ws.compact("events")["events"] is not None:
                done += 1
        except Exception as exc:  # a lost race with another compaction is allowed
            if "lost a race" not in str(exc):
                raise
        time.sleep(0.2)
    print(json.dumps({"compactions": done}))
    ws.close()


def ingest_file(path: str, source: str, chunk_rows: int, go: str = "0") -> None:
    """Ingest ``source`` once ``go`` says so (an epoch time, or a file that must exist:
    several workers start at once, after their imports); print the report as JSON."""
    ws = Workspace.open(path)
    try:
        time.sleep(max(0.0, float(go) - time.time()))
    except ValueError:
        while not Path(go).exists():
            time.sleep(0.01)
    report = ws.ingest(source, chunk_rows=chunk_rows, quiet=True)
    print(json.dumps(report.to_dict(), default=str))
    ws.close()


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "writer":
        writer(args[0], int(args[1]), int(args[2]), args[3])
    elif cmd == "reader":
        reader(args[0], float(args[1]), int(args[2]))
    elif cmd == "compactor":
        compactor(args[0], float(args[1]))
    elif cmd == "ingest":
        ingest_file(args[0], args[1], int(args[2]), *args[3:])
    else:
        raise SystemExit(f"unknown command {cmd}")
