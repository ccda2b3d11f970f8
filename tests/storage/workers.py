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
        if not ws.store.live_files("events"):  # no batch yet: no batch_tag column to query
            time.sleep(0.05)
            continue
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


#: Types of the shared stress-test columns, by batch number modulo 3.
STRESS_TYPES = ("string", "int64", "float64")


def stress_value(kind: str, b: int) -> object:
    return {"string": f"v{b}", "int64": b, "float64": b + 0.5}[kind]


def stress(path: str, me: int, procs: int, rounds: int, batches: int, rows: int) -> None:
    """``rounds`` times: wait for the other workers (a barrier of files), then append
    ``batches`` batches, each bringing new columns: one shared with every worker (same
    name, same type) and one of this worker's own."""
    ws = Workspace.open(path)
    barrier = Path(path) / "barrier"
    barrier.mkdir(exist_ok=True)
    ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(range(rows), unit="s")
    for r in range(rounds):
        (barrier / f"{r}-{me}").touch()
        while len(list(barrier.glob(f"{r}-*"))) < procs:
            time.sleep(0.01)
        for b in range(batches):
            kind = STRESS_TYPES[b % 3]
            df = pd.DataFrame(
                {
                    "user_id": [f"p{me}-{i}" for i in range(rows)],
                    "event": ["Tick"] * rows,
                    "ts": ts,
                    "batch_tag": [f"{r}-{me}-{b}"] * rows,
                    f"r{r}_shared_{b}": [stress_value(kind, b)] * rows,
                    f"r{r}_own_{me}_{b}": [float(b)] * rows,
                }
            )
            ws.append("events", df, source=f"stress {r}-{me}-{b}")
    print(json.dumps({"worker": me, "batches": rounds * batches}))
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
    elif cmd == "stress":
        stress(args[0], *(int(a) for a in args[1:]))
    else:
        raise SystemExit(f"unknown command {cmd}")
