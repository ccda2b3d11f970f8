"""Benchmark: plan + send a campaign to 1M users through the outbox provider.

The campaign has a 10% control group and a calendar-day frequency cap (checked in the
plan and again against the ledger inside every claim transaction); messages are
claimed, written to the run's JSON Lines outbox (fsync'd per batch), marked sent, and
their 'Notification Sent' events appended, all in one ``send`` call. Each run is a fresh
child process (peak RSS is its own). Setup (profiles) is not timed.

Target: >= 20,000 messages/s end to end (plan + send).

Usage::

    python benchmarks/bench_campaign_send.py                    # 1M users, updates RESULTS.md
    python benchmarks/bench_campaign_send.py --users 100000 --no-record
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, now, run_child, write_section  # noqa: E402

TARGET = 20_000

CHILD = r"""
import json, sys, tempfile, time, shutil
import numpy as np, pyarrow as pa
from engagelab import Workspace
from engagelab.campaigns import Campaign, Delivery, FrequencyCap, Variant, plan, send, read_outbox
from engagelab.delivery.outbox import outbox_path
n, batch = int(sys.argv[1]), int(sys.argv[2])
root = tempfile.mkdtemp(prefix="bench-campaign-")
ws = Workspace.create(root + "/ws")
ids = np.char.add("u", np.char.zfill(np.arange(n).astype(str), 7))
zones = np.array(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"])[np.arange(n) % 4]
ws.append("profiles", pa.table({
    "user_id": ids, "email": np.char.add(ids, "@example.com"),
    "optout_email": (np.arange(n) % 50) == 0, "timezone": zones}))
c = Campaign(id="bench", channel="email",
             variants=(Variant("A", {"from": "shop@example.com", "subject": "Spring", "text": "A"}),
                       Variant("B", {"from": "shop@example.com", "subject": "Sale", "text": "B"})),
             control_percent=10, labels=("Bench",),
             delivery=Delivery(caps=(FrequencyCap(1, 1, "days", "calendar"),)))
c0 = time.process_time()
t0 = time.perf_counter()
p = plan(ws, c, "2026-03-02T09:00:00Z", run_key="bench-1")
t1 = time.perf_counter()
r = send(ws, p, batch_size=batch)
t2 = time.perf_counter()
cpu = time.process_time() - c0
lines = sum(1 for _ in open(outbox_path(ws, "bench-1"), "rb"))
assert lines == r.sent == p.reach, (lines, r.sent, p.reach)
events = int(ws.sql("SELECT count(*) n FROM events WHERE event = 'Notification Sent'")["n"][0])
assert events == r.sent
print(json.dumps({"users": n, "sent": r.sent, "plan_s": t1 - t0, "send_s": t2 - t1, "total_s": t2 - t0,
                  "msgs_per_s": r.sent / (t2 - t0), "cpu_s": cpu, "msgs_per_cpu_s": r.sent / cpu}))
ws.close()
shutil.rmtree(root, ignore_errors=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    results = []
    for _ in range(a.runs):
        out, rss = run_child(CHILD, str(a.users), str(a.batch))
        res = json.loads(out.strip().splitlines()[-1])
        res["peak_mb"] = rss
        res["load_end"] = os.getloadavg()[0]
        results.append(res)
        print(json.dumps(res))
    rate = median([r["msgs_per_s"] for r in results])
    body = (
        f"## Campaign plan + send to the outbox ({now()})\n\n"
        f"{machine(('duckdb', 'pyarrow', 'pandas', 'SQLAlchemy'))}\n\n"
        f"{a.users:,} users (10% control group, 2% opted out, calendar-day frequency cap), "
        f"batches of {a.batch:,}, SQLite state DB, {a.runs} run(s), median. Wall-clock "
        "throughput depends on the machine's load (see the load average above: other jobs "
        "shared the 2 cores; load average at the end of the last run "
        f"{results[-1]['load_end']:.1f}); CPU seconds of the sending process are shown too: "
        "the work is one Python thread, so messages per CPU second is the wall-clock rate it "
        "would reach with a core to itself, before I/O waits (fsync per batch, WAL writes), "
        "which were not measured on an idle machine here.\n\n"
        "| messages sent | plan s | send s | total s | messages/s | CPU s (msgs per CPU s) "
        "| peak RSS MB | target |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {results[0]['sent']:,} | {median([r['plan_s'] for r in results]):.1f} "
        f"| {median([r['send_s'] for r in results]):.1f} | {median([r['total_s'] for r in results]):.1f} "
        f"| {rate:,.0f} | {median([r['cpu_s'] for r in results]):.1f} "
        f"({median([r['msgs_per_cpu_s'] for r in results]):,.0f}) "
        f"| {max(r['peak_mb'] for r in results):,} "
        f"| >= {TARGET:,}/s: {'met' if rate >= TARGET else 'NOT met'} |\n"
    )
    print(body)
    if not a.no_record:
        write_section("campaign_send", body)


if __name__ == "__main__":
    main()
