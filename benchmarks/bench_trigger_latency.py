"""Benchmark: event-to-provider latency of a triggered campaign in near real time.

A workspace with ``--users`` profiles and one active triggered e-mail campaign ('Added to
Cart', TTL 1 h); ``engagelab dispatch -w WS`` runs as a real process on the system clock
(poll 0.2 s) with the default outbox provider. This script appends 'Added to Cart' events
through the public API (``Workspace.append``, one batch every ``--tick`` seconds, each
event stamped with the wall time just before its append) at ``--rate`` events/s for
``--seconds``, then waits until every message is sent. Every event qualifies (one message
per event).

Latency per message: the ledger's time of the provider's acceptance (``updated_at`` of the
``sent`` row, written when the outbox provider returned) minus the event's time (the
message's origin). Reported: p50 / p95 / p99 / max per run, the median of the runs, the
messages sent against events appended, and the load average; the ``trigger-latency``
section of ``benchmarks/RESULTS.md`` is replaced. Target: p95 <= 5 s at 1,000 events/s.

Run: ``python benchmarks/bench_trigger_latency.py [--rate 1000] [--seconds 60]
[--runs 3] [--users 100000] [--no-write]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, now, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def one_run(args: argparse.Namespace, folder: Path) -> dict:
    import pandas as pd
    import pyarrow as pa
    import sqlalchemy as sa

    from engagelab import Workspace
    from engagelab.campaigns import Campaign, Delivery, Schedule, Variant
    from engagelab.campaigns.saved import save_campaign
    from engagelab.delivery import ledger as L

    ws = Workspace.create(folder / "ws")
    ids = np.array([f"u{i:06d}" for i in range(args.users)], dtype=object)
    ws.ingest(pd.DataFrame({"user_id": ids, "email": [f"{u}@x.example" for u in ids],
                            "timezone": "UTC"}), table="profiles", quiet=True)  # fmt: skip
    c = Campaign(
        id="cart", channel="email", schedule=Schedule("triggered", event="Added to Cart"),
        variants=(Variant("A", {"from": "shop@x.example", "subject": "Your cart",
                                "text": "Come back"}),),
        delivery=Delivery(ttl_hours=1),
    )  # fmt: skip
    save_campaign(ws, c, "active")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engagelab.cli", "dispatch", "-w", str(ws.path), "--format",
         "json", "--poll-seconds", "0.2", "--batch", str(args.batch)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert "started" in proc.stderr.readline()
    rng = np.random.default_rng(args.seed)
    per_tick = max(1, round(args.rate * args.tick))
    appended, behind = 0, 0.0
    t0 = time.monotonic()
    load_during = []
    tick = 0
    while time.monotonic() - t0 < args.seconds:
        users = ids[rng.integers(0, args.users, per_tick)]
        at = pd.Timestamp(dt.datetime.now(dt.UTC))
        ws.append("events", pa.table({
            "user_id": pa.array(users, pa.string()),
            "event": pa.array(["Added to Cart"] * per_tick, pa.string()),
            "ts": pa.array([at] * per_tick, pa.timestamp("us", tz="UTC")),
        }))  # fmt: skip
        appended += per_tick
        tick += 1
        if tick % round(5 / args.tick) == 0:
            load_during.append(os.getloadavg()[0])
        wait = t0 + tick * args.tick - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        else:
            behind = max(behind, -wait)
    produce_s = time.monotonic() - t0
    # the same (user, instant) twice in one batch is one occurrence: one message
    ev = ws.sql("SELECT count(*) AS n FROM (SELECT DISTINCT user_id, ts FROM events "
                "WHERE event = 'Added to Cart')")  # fmt: skip
    expected = int(ev["n"].iloc[0])

    def sent() -> int:
        with ws.state.read() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).where(L.ledger.c.status == "sent")
            ).scalar_one())  # fmt: skip

    deadline = time.monotonic() + args.drain
    while sent() < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    drain_s = time.monotonic() - t0 - produce_s
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    res = json.loads(out) if proc.returncode == 0 else {"error": err[-2000:]}
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.ledger.c.origin_us, L.ledger.c.updated_at, L.ledger.c.status)
        ).all()
    ws.close()
    st = {}
    for r in rows:
        st[r.status] = st.get(r.status, 0) + 1
    lat = np.array([
        (r.updated_at.replace(tzinfo=dt.UTC) if r.updated_at.tzinfo is None else r.updated_at)
        .timestamp() - r.origin_us / 1e6
        for r in rows if r.status == "sent"
    ])  # fmt: skip
    q = np.percentile(lat, [50, 95, 99, 100]) if len(lat) else [float("nan")] * 4
    return {
        "appended": appended, "expected": expected, "statuses": st, "produce_s": produce_s,
        "drain_s": drain_s, "behind_s": behind, "p50": q[0], "p95": q[1], "p99": q[2],
        "max": q[3], "rounds": res.get("rounds"), "load_during": load_during,
        "dispatcher": res,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long events are appended")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--tick", type=float, default=0.1, help="seconds between appends")
    ap.add_argument("--batch", type=int, default=20_000, help="dispatcher --batch")
    ap.add_argument("--drain", type=float, default=300.0, help="max wait for the last sends")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    desc = machine(("duckdb", "pyarrow", "pandas", "sqlalchemy"))
    load0 = os.getloadavg()[0]
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            r = one_run(args, Path(tmp))
        runs.append(r)
        print(f"run {i + 1}: p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s, p99 {r['p99']:.2f} s, "
              f"max {r['max']:.2f} s; sent {r['statuses'].get('sent', 0):,} of "
              f"{r['expected']:,}; {r['statuses']}; rounds {r['rounds']}; load "
              f"{r['load_during']}", flush=True)  # fmt: skip
    load1 = os.getloadavg()[0]
    p95 = median([r["p95"] for r in runs])
    ok = all(r["statuses"].get("sent", 0) == r["expected"] for r in runs)
    verdict = "met" if p95 <= 5.0 and ok else "**missed**"
    rows = "\n".join(
        f"| {i + 1} | {r['appended']:,} | {r['statuses'].get('sent', 0):,} of {r['expected']:,} "
        f"| {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | {r['rounds']} "
        f"| {r['behind_s']:.2f} | {', '.join(f'{x:.1f}' for x in r['load_during'])} |"
        for i, r in enumerate(runs)
    )
    body = f"""## Triggered campaign, event to provider in near real time (`benchmarks/bench_trigger_latency.py`)

Measured {now()} on {desc}; load average at the end {load1:.1f} (the machine is shared with other jobs).

Workload: {args.users:,} profiles, one active triggered e-mail campaign ('Added to Cart', TTL 1 h); `engagelab dispatch -w WS --poll-seconds 0.2 --batch {args.batch}` as a real process on the system clock, default outbox provider; 'Added to Cart' events appended through `Workspace.append` at {args.rate:,.0f} events/s for {args.seconds:g} s (one batch every {args.tick:g} s, random users, every event qualifies). Latency: the ledger's time the provider accepted the message minus the event's time. {args.runs} run(s); median of the runs' p95: **{p95:.2f} s** (p50 {median([r["p50"] for r in runs]):.2f} s, p99 {median([r["p99"] for r in runs]):.2f} s).

| run | events appended | sent | p50 (s) | p95 (s) | p99 (s) | max (s) | dispatcher rounds | producer behind (s) | load average during |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
{rows}

Target p95 <= 5 s at 1,000 events/s with every qualifier sent: {verdict} in this run (load average at the start {load0:.1f}).
"""
    print(body)
    if not args.no_write:
        write_section("trigger-latency", body)


if __name__ == "__main__":
    main()
