"""Benchmark: enqueue + dispatch of a 1M-user campaign through the send queue, against
the old path (plan + send at once) in the same run.

The workspace and campaign are those of ``bench_campaign_send.py`` (10% control group, 2%
opted out, calendar-day frequency cap). Queue path: the plan's messages are all due
later than a :class:`~engagelab.clock.SimulatedClock`, so ``send`` only enqueues them
(ledger rows ``queued``); the clock is then moved past their due time and
``Dispatcher(ws, clock, batch=..., throttle=False, triggers=False).run_until_idle()``
releases everything to the run's outbox file. Old path: plan + ``send`` with everything
due now, as ``bench_campaign_send.py`` does. Each run of each path is a fresh child
process (peak RSS is its own); the paths alternate. Setup (profiles) is not timed.
Every run checks that each planned message is in the outbox file exactly once (by message
key), the run's ledger rows are all ``sent`` and there is one 'Notification Sent' event
per message.

Target: >= 20,000 messages/s end to end (plan + enqueue + dispatch), peak RSS <= 1.5 GB.

Usage::

    python benchmarks/bench_dispatch.py                       # 1M users, 3 runs, RESULTS.md
    python benchmarks/bench_dispatch.py --users 100000 --runs 1 --no-record
    python benchmarks/bench_dispatch.py --users 200000 --profile   # cProfile of dispatch
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
MEM_TARGET_MB = 1536

CHILD = r"""
import collections, json, resource, sys, tempfile, time, shutil
import numpy as np, pyarrow as pa
from engagelab import Workspace
from engagelab.campaigns import Campaign, Delivery, Dispatcher, FrequencyCap, Variant, plan, send
from engagelab.clock import SimulatedClock
from engagelab.delivery.dispatcher import queue_counts
from engagelab.delivery.outbox import outbox_path
mode, n, batch, dbatch, prof = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
root = tempfile.mkdtemp(prefix="bench-dispatch-")
ws = Workspace.create(root + "/ws")
ids = np.char.add("u", np.char.zfill(np.arange(n).astype(str), 7))
zones = np.array(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"])[np.arange(n) % 4]
ws.append("profiles", pa.table({
    "user_id": ids, "email": np.char.add(ids, "@example.com"),
    "optout_email": (np.arange(n) % 50) == 0, "timezone": zones}))
del ids, zones
c = Campaign(id="bench", channel="email",
             variants=(Variant("A", {"from": "shop@example.com", "subject": "Spring", "text": "A"}),
                       Variant("B", {"from": "shop@example.com", "subject": "Sale", "text": "B"})),
             control_percent=10, labels=("Bench",),
             delivery=Delivery(caps=(FrequencyCap(1, 1, "days", "calendar"),)))
run_key = "bench-1"
out = {"mode": mode, "users": n}
c0 = time.process_time()
t0 = time.perf_counter()
p = plan(ws, c, "2026-03-02T09:00:00Z", run_key=run_key)
t1 = time.perf_counter()
if mode == "direct":
    r = send(ws, p, batch_size=batch)
    t2 = t3 = time.perf_counter()
    assert r.sent == p.reach, (r.sent, p.reach)
    d_rounds = 0
else:
    clock = SimulatedClock("2026-03-01T00:00:00Z")  # a day before anything is due
    r = send(ws, p, batch_size=batch, clock=clock)
    t2 = time.perf_counter()
    out["peak_enqueue_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    assert r.queued == p.reach and r.sent == 0, (r.queued, r.sent, p.reach)
    clock.set("2026-03-03T00:00:00Z")  # everything is due
    d = Dispatcher(ws, clock, batch=dbatch, throttle=False, triggers=False)
    if prof != "-":
        import cProfile, pstats
        pr = cProfile.Profile()
        pr.enable()
    res = d.run_until_idle()
    if prof != "-":
        pr.disable()
        pstats.Stats(pr, stream=sys.stderr).sort_stats("cumulative").print_stats(int(prof))
    t3 = time.perf_counter()
    assert res.sent == p.reach and res.failed == 0 and not res.suppressed, res
    d_rounds = res.rounds
cpu = time.process_time() - c0
peak_timed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # before the checks
# correctness: every planned message exactly once in the outbox file, all ledger rows sent
want = set(p.frame.loc[p.frame["decision"] == "send", "message_key"].astype(str))
seen = collections.Counter(json.loads(line)["key"] for line in open(outbox_path(ws, run_key), "rb"))
dupes = sum(1 for v in seen.values() if v > 1)
assert dupes == 0, f"{dupes} keys written more than once"
assert set(seen) == want, (len(seen), len(want), len(set(seen) ^ want))
counts = queue_counts(ws)
assert counts.get("sent", 0) == p.reach and sum(counts.values()) - counts.get("suppressed", 0) == p.reach, counts
events = int(ws.sql("SELECT count(*) n FROM events WHERE event = 'Notification Sent'")["n"][0])
assert events == p.reach, (events, p.reach)
out.update({"sent": p.reach, "outbox_keys": len(seen), "ledger": counts, "plan_s": t1 - t0,
            "send_s": t2 - t1, "dispatch_s": t3 - t2, "total_s": t3 - t0,
            "msgs_per_s": p.reach / (t3 - t0), "cpu_s": cpu, "msgs_per_cpu_s": p.reach / cpu,
            "rounds": d_rounds, "peak_timed_mb": peak_timed})
print(json.dumps(out))
ws.close()
shutil.rmtree(root, ignore_errors=True)
"""


def _run(mode: str, a: argparse.Namespace, prof: str = "-") -> dict:
    out, rss = run_child(CHILD, mode, str(a.users), str(a.batch), str(a.dispatch_batch), prof)
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_mb"] = rss
    res["load_end"] = os.getloadavg()[0]
    print(json.dumps(res), flush=True)
    return res


def _profile(a: argparse.Namespace) -> None:
    import subprocess

    wrapper = (
        "import resource, sys\n"
        + CHILD
        + "\nprint('peak RSS MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    args = ["queue", str(a.users), str(a.batch), str(a.dispatch_batch), "15"]
    got = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, check=True
    )
    print(got.stdout)
    print(got.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=200_000, help="send's batch_size")
    ap.add_argument("--dispatch-batch", type=int, default=300_000, help="messages per round")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--paths", default="queue,direct", help="which paths to run")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile one dispatch, print top 15")
    a = ap.parse_args()
    if a.profile:
        _profile(a)
        return
    desc = machine(("duckdb", "pyarrow", "pandas", "SQLAlchemy"))
    rows: dict[str, list[dict]] = {"direct": [], "queue": []}
    for _ in range(a.runs):
        for mode in a.paths.split(","):
            rows[mode].append(_run(mode, a))
    if not rows["queue"] or not rows["direct"]:
        return
    q, d = rows["queue"], rows["direct"]

    def m(rs: list[dict], k: str) -> float:
        return median([r[k] for r in rs])

    rate, peak = m(q, "msgs_per_s"), max(r["peak_timed_mb"] for r in q)
    met = rate >= TARGET and peak <= MEM_TARGET_MB
    table = (
        "| path | messages | plan s | enqueue / send s | dispatch s | total s | messages/s "
        "| CPU s (msgs per CPU s) | peak RSS MB (timed part; with the checks) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    for name, rs in (("queue: plan + enqueue + dispatch", q), ("old: plan + send", d)):
        disp = f"{m(rs, 'dispatch_s'):.1f} ({rs[0]['rounds']} rounds)" if rs is q else "-"
        table += (
            f"| {name} | {rs[0]['sent']:,} | {m(rs, 'plan_s'):.1f} | {m(rs, 'send_s'):.1f} "
            f"| {disp} | {m(rs, 'total_s'):.1f} | {m(rs, 'msgs_per_s'):,.0f} "
            f"| {m(rs, 'cpu_s'):.1f} ({m(rs, 'msgs_per_cpu_s'):,.0f}) "
            f"| {max(r['peak_timed_mb'] for r in rs):,}; {max(r['peak_mb'] for r in rs):,} |\n"
        )
    body = (
        f"## Send queue + dispatcher, 1M messages to the outbox ({now()})\n\n"
        f"{desc}; load average at the end {os.getloadavg()[0]:.1f}\n\n"
        f"{a.users:,} users as in the plan + send benchmark (10% control group, 2% opted "
        "out, calendar-day frequency cap). Queue path: every message is due a day after the "
        f"simulated clock, so `send` (batch_size {a.batch:,}) only enqueues; the clock is "
        "then moved past the due time and `Dispatcher(..., throttle=False, triggers=False)"
        f".run_until_idle()` (batch {a.dispatch_batch:,} per round) releases all of them to "
        "the outbox. Old path: plan + send with everything due now, in the same run, "
        f"alternating with the queue path; {a.runs} run(s) each, fresh child process per "
        "run, median (peak RSS: the maximum). Each run checked every planned message once "
        "in the outbox file (by message key), the ledger all `sent`, one 'Notification "
        "Sent' event per message. The machine was shared (2 cores, see the load averages): "
        "wall-clock rates are lower than on a quiet machine; messages per CPU second is "
        "the rate with a core to itself, before I/O waits.\n\n"
        f"{table}\n"
        "Peak RSS of the queue path after the enqueue, before dispatching: "
        f"{max(r['peak_enqueue_mb'] for r in q):,} MB.\n\n"
        f"Target (>= {TARGET:,} messages/s end to end, peak RSS <= 1.5 GB): "
        f"**{'met' if met else 'NOT met'}** ({rate:,.0f} messages/s, {peak:,} MB; "
        f"old path {m(d, 'msgs_per_s'):,.0f} messages/s in the same run).\n"
    )
    print(body)
    if not a.no_record:
        write_section("dispatch", body)


if __name__ == "__main__":
    main()
