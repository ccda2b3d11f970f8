"""Benchmark: best send slot for 1M users from 10M engagement events with per-user time zones.

* engagelab: ``besttime.fit`` + ``slots()`` in clevertap mode (12 local two-hour buckets,
  ties to the earliest) and in bayes mode (24 local hours, recency weights, fitted
  Dirichlet-multinomial prior strength), reading the workspace's Parquet files each run.
* pandas: a straightforward clevertap-mode implementation on DataFrames already loaded in
  memory (loading is *not* timed, which favours pandas): merge the time zone, convert per
  zone, count per (user, bucket), take the first maximum.
* DuckDB SQL: the same clevertap computation written by hand, with DuckDB's ICU
  ``timezone(tz, ts)`` for the local hour (engagelab instead looks the local hour up in a
  table per zone and UTC quarter hour, see ``engagelab/besttime/_data.py``).

The clevertap slots of all three must agree for every user. Wall-clock medians, the CPU
seconds of each run (all threads of this process; the machine may be shared, so read wall
times with the load average) are written between the ``besttime`` markers in
``benchmarks/RESULTS.md``.

Run: ``python benchmarks/bench_besttime.py [--users 1000000] [--events 10000000]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, now, write_section  # noqa: E402

from engagelab import Workspace  # noqa: E402
from engagelab.besttime import BestTimeOptions, fit  # noqa: E402
from engagelab.schema import TS_TYPE  # noqa: E402
from engagelab.simulate import CITIES  # noqa: E402

AT = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
DAYS = 90


def _ids(values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise("u", pc.cast(pa.array(values), pa.string()), "")


def build(ws: Workspace, n_users: int, n_events: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    zones = sorted({c.timezone for c in CITIES})
    tz = rng.integers(0, len(zones), n_users)
    ws.append(
        "profiles",
        pa.table(
            {
                "user_id": _ids(np.arange(n_users)),
                "timezone": pa.array(np.array(zones, dtype=object)[tz]),
            }
        ),
    )
    pref = rng.integers(0, 24, n_users)
    user = rng.integers(0, n_users, n_events)
    focused = rng.random(n_events) < 0.6
    hour = np.where(
        focused, pref[user] + rng.normal(0, 0.6, n_events), rng.uniform(0, 24, n_events)
    )
    day = rng.integers(0, DAYS, n_events)
    # local wall time -> UTC with a fixed offset guess; exact local times do not matter here
    start = np.datetime64(AT.replace(tzinfo=None) - dt.timedelta(days=DAYS), "us")
    ts = start + (day * 86_400e6 + np.mod(hour, 24) * 3.6e9).astype("timedelta64[us]")
    step = 2_000_000
    parts = (
        pa.table(
            {
                "user_id": _ids(user[i : i + step]),
                "event": pa.array(["App Launched"] * len(user[i : i + step])),
                "ts": pa.array(ts[i : i + step]).cast(TS_TYPE),
            }
        )
        for i in range(0, n_events, step)
    )
    ws.append("events", parts)


def pandas_clevertap(events: pd.DataFrame, profiles: pd.DataFrame) -> pd.Series:
    df = events.merge(profiles, on="user_id")
    bucket = np.empty(len(df), dtype=np.int64)
    for zone, rows in df.groupby("timezone", sort=False).indices.items():
        bucket[rows] = df["ts"].iloc[rows].dt.tz_convert(zone).dt.hour.to_numpy() // 2
    counts = (
        df.assign(bucket=bucket).groupby(["user_id", "bucket"]).size().rename("n").reset_index()
    )
    counts = counts.sort_values(["user_id", "n", "bucket"], ascending=[True, False, True])
    best = counts.drop_duplicates("user_id").set_index("user_id")["bucket"]
    return best * 120


ICU_SQL = """
WITH c AS (
    SELECT e.user_id, CAST(hour(timezone(p.timezone, e.ts)) AS INTEGER) // 2 AS b, count(*) AS n
    FROM events e JOIN profiles p USING (user_id)
    WHERE e.event = 'App Launched' AND e.ts >= $start AND e.ts < $end
    GROUP BY ALL
)
SELECT user_id, arg_max(b, n * 100 - b) * 120 AS slot FROM c GROUP BY user_id
"""


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn, runs: int) -> tuple[list[float], list[float], list[float], object]:
    """Wall seconds, CPU seconds and 1-minute load average of each run; the last result."""
    wall, cpu, load, out = [], [], [], None
    for _ in range(runs):
        c0, t0 = _cpu(), time.perf_counter()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(_cpu() - c0)
        load.append(os.getloadavg()[0])
    return wall, cpu, load, out


def _row(name: str, wall: list[float], cpu: list[float], load: list[float]) -> str:
    runs = ", ".join(f"{w:.2f}" for w in wall)
    return (
        f"| {name} | {median(wall):.2f} | {runs} | {median(cpu):.2f} | "
        f"{', '.join(f'{x:.1f}' for x in load)} |\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    desc = machine()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.create(Path(tmp) / "ws")
        t0 = time.perf_counter()
        build(ws, a.users, a.events)
        print(f"built in {time.perf_counter() - t0:.1f} s")
        window = ("00:00", "23:59")
        slots = {}
        for mode in ("clevertap", "bayes"):
            o = BestTimeOptions(mode=mode, window=window)
            wall, cpu, load, slots[mode] = _timed(lambda o=o: fit(ws, o, at=AT).slots(), a.runs)
            rows.append(_row(f"engagelab `fit(...).slots()`, {mode} mode", wall, cpu, load))
            print(mode, [round(t, 2) for t in wall], "cpu", [round(c, 2) for c in cpu], load)
        start = AT - dt.timedelta(days=180)
        wall, cpu, load, icu = _timed(
            lambda: ws.engine.arrow(ICU_SQL, {"start": start, "end": AT}).to_pandas(), a.runs
        )
        rows.append(_row("hand-written DuckDB SQL, ICU `timezone()`, clevertap", wall, cpu, load))
        print("duckdb icu", [round(t, 2) for t in wall], "cpu", [round(c, 2) for c in cpu], load)
        events = ws.sql("SELECT user_id, ts FROM events")
        profiles = ws.sql("SELECT user_id, timezone FROM profiles")
        wall, cpu, load, best = _timed(lambda: pandas_clevertap(events, profiles), a.runs)
        rows.append(_row("pandas, clevertap mode, data in memory", wall, cpu, load))
        print("pandas", [round(t, 2) for t in wall], "cpu", [round(c, 2) for c in cpu], load)
        ct = slots["clevertap"].set_index("user_id")
        has = ct["reason"] == "chosen"
        agree = bool((ct.loc[has, "slot_minute"] == best.reindex(ct.index[has])).all())
        assert agree and has.sum() == len(best), "clevertap slots differ from the pandas reference"
        ref = icu.set_index("user_id")["slot"]
        assert len(ref) == has.sum(), "clevertap users differ from the DuckDB ICU reference"
        assert (ct.loc[has, "slot_minute"] == ref.reindex(ct.index[has])).all(), "ICU differs"
        ws.close()
    body = (
        f"## Best send time: slot per user ({a.users:,} users, {a.events:,} events, per-user time zones)\n\n"
        f"Run {now()} on {desc}.\n\n"
        "| implementation | median wall (s) | runs (s) | median CPU s (all threads) | load average after each run |\n"
        "|---|---|---|---|---|\n"
        + "".join(rows)
        + f"\nclevertap slots agree with pandas and with the ICU SQL for all {int(has.sum()):,} users with history.\n"
        "Target: <= 4 s wall on a quiet machine (2 cores). With other jobs on the machine (see the\n"
        "load averages) wall times stretch; CPU seconds are the load-independent figure.\n"
    )
    print(body)
    if not a.no_write:
        write_section("besttime", body)


if __name__ == "__main__":
    main()
