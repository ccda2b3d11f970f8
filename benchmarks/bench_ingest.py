"""Benchmark: ingest a 10M-row Parquet file of events into a workspace.

Validation (user ids, event names, timestamps, property types, duplicate event ids)
plus the atomic append, compared in the same run with a plain pandas copy of the same
file (read_parquet + to_parquet, no validation) as the baseline for the raw I/O cost.

    python benchmarks/bench_ingest.py [--rows 10000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, now, run_child, write_section  # noqa: E402

EVENTS = np.array(
    ["App Launched", "Page Viewed", "Product Viewed", "Added to Cart", "Charged", "Uninstalled"]
)


def make_file(path: Path, rows: int, users: int, with_ids: bool) -> None:
    rng = np.random.default_rng(42)
    writer = None
    chunk = 2_000_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        uid = rng.integers(0, users, n)
        ev = rng.choice(len(EVENTS), n, p=[0.4, 0.3, 0.15, 0.08, 0.05, 0.02])
        ts = np.datetime64("2026-01-01T00:00:00", "us") + rng.integers(
            0, 90 * 86400 * 10**6, n
        ).astype("timedelta64[us]")
        revenue = np.where(ev == 4, np.round(rng.gamma(2.0, 20.0, n), 2), np.nan)
        cols = {
            "user_id": pa.array(np.char.add("u", np.char.zfill(uid.astype(str), 7))),
            "event": pa.array(EVENTS[ev]),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "revenue": pa.array(revenue, pa.float64(), from_pandas=True),
        }
        if with_ids:
            cols["event_id"] = pa.array(np.char.add("e", np.arange(start, start + n).astype(str)))
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
    writer.close()


INGEST = """
import time, tempfile, json
from engagelab import Workspace
ws = Workspace.create(tempfile.mkdtemp(dir=sys.argv[2]) + "/ws")
t0 = time.perf_counter()
r = ws.ingest(sys.argv[1], quiet=True)
dt = time.perf_counter() - t0
assert r.rows_appended == r.rows_read, r
print(json.dumps({"seconds": dt, "rows": r.rows_appended}))
"""

PANDAS = """
import time, json, pandas as pd
t0 = time.perf_counter()
df = pd.read_parquet(sys.argv[1])
df.to_parquet(sys.argv[2] + "/copy.parquet", compression="zstd")
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": len(df)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="el-bench-ingest-"))
    try:
        results = {}
        for with_ids in (False, True):
            src = work / f"events-{with_ids}.parquet"
            make_file(src, args.rows, args.users, with_ids)
            runs, rss = [], []
            for _ in range(args.runs):
                out, peak = run_child(INGEST, str(src), str(work))
                runs.append(json.loads(out)["seconds"])
                rss.append(peak)
            results[with_ids] = (runs, max(rss))
            print(
                f"event_id={with_ids}: {[round(r, 2) for r in runs]} s, peak {max(rss)} MB",
                flush=True,
            )
        base, base_rss = [], []
        for _ in range(args.runs):
            out, peak = run_child(PANDAS, str(work / "events-False.parquet"), str(work))
            base.append(json.loads(out)["seconds"])
            base_rss.append(peak)
        print(f"pandas copy: {[round(r, 2) for r in base]} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m0, m1, mb = median(results[False][0]), median(results[True][0]), median(base)
    body = f"""## Ingest a {args.rows:,}-row Parquet file (engagelab.storage.ingest)

`python benchmarks/bench_ingest.py` — {args.rows:,} events of {args.users:,} users (seeded numpy,
one Parquet file), each run in a fresh child process and a fresh workspace; measured {now()}.

| what | median of {args.runs} (s) | rows/s | peak RSS (MB) | runs (s) |
|---|---|---|---|---|
| `ws.ingest(file)`: validate + append | {m0:.2f} | {args.rows / m0:,.0f} | {results[False][1]} | {", ".join(f"{r:.2f}" for r in results[False][0])} |
| same, with an `event_id` column (duplicate check against the batch and the store) | {m1:.2f} | {args.rows / m1:,.0f} | {results[True][1]} | {", ".join(f"{r:.2f}" for r in results[True][0])} |
| baseline: pandas `read_parquet` + `to_parquet`, no validation | {mb:.2f} | {args.rows / mb:,.0f} | {max(base_rss)} | {", ".join(f"{r:.2f}" for r in base)} |

Validated ingestion costs {m0 / mb:.1f}x a bare pandas copy of the same file (in 1M-row chunks, so memory
stays bounded); the duplicate-id check adds {m1 - m0:.1f} s.

Machine: {machine(("duckdb", "pyarrow", "pandas"))}.
"""
    write_section("ingest", body)
    print(body)


if __name__ == "__main__":
    main()
