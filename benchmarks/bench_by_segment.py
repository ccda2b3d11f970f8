"""Benchmark: ``analyze(..., by="country")`` with 20 segments vs the plain analysis, 10M users.

The data are 10M users x 3 arms in one Parquet file with a 20-value ``country``
column; metrics as in ``bench_experiments.py``: conversion (proportion), revenue per
user (mean), CUPED revenue (mean with a pre-period covariate) and revenue per
converter (ratio, delta method). Both calls read the Parquet file with DuckDB on every
run and run in the same child process, alternately (plain, by-segment) after one
warm-up of each, so both see the same machine load; medians of ``--runs`` runs
(default 3). Target: the per-segment analysis within 2x the plain one.

Run: ``python benchmarks/bench_by_segment.py [--users 10000000] [--runs 3]``; writes
the ``by-segment`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, now, run_child, write_section  # noqa: E402

TARGET_RATIO = 2.0
COUNTRIES = [
    "AR", "AU", "BR", "CA", "DE", "ES", "FR", "GB", "ID", "IN",
    "IT", "JP", "KR", "MX", "NL", "PL", "SE", "TR", "US", "ZA",
]  # fmt: skip


def make_data(path: Path, users: int, seed: int = 7) -> None:
    """``users`` rows: variant (0/1/2), country (20 values), converted, revenue, revenue_pre."""
    rng = np.random.default_rng(seed)
    chunk = 2_000_000
    writer = None
    dictionary = pa.array(COUNTRIES)
    for start in range(0, users, chunk):
        k = min(chunk, users - start)
        variant = rng.integers(0, 3, k, dtype=np.int8)
        country = rng.integers(0, len(COUNTRIES), k, dtype=np.int8)
        pre = rng.gamma(0.5, 20.0, k)
        # country 18 (US) gets a larger effect of variant 2: a planted heterogeneity
        p = 0.05 + 0.005 * (variant == 1) + (0.01 + 0.01 * (country == 18)) * (variant == 2)
        converted = (rng.random(k) < p).astype(np.int8)
        revenue = converted * rng.gamma(2.0, 25.0, k) + 0.3 * pre
        table = pa.table(
            {
                "variant": variant,
                "country": pa.DictionaryArray.from_arrays(pa.array(country), dictionary),
                "converted": converted,
                "revenue": revenue,
                "revenue_pre": pre,
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=256 * 1024)
    assert writer is not None
    writer.close()


CHILD = """
import json, time
from engagelab.experiments import Metric, analyze
path, runs = sys.argv[1], int(sys.argv[2])
metrics = [Metric("conversion", "proportion", "converted"), Metric("revenue", "mean", "revenue"),
           Metric("revenue_cuped", "mean", "revenue", covariate="revenue_pre"),
           Metric("revenue_per_converter", "ratio", "revenue", "converted")]
def plain():
    return analyze(path, arm_col="variant", control=0, metrics=metrics)
def by_segment():
    return analyze(path, arm_col="variant", control=0, metrics=metrics, by="country")
plain(); seg = by_segment()
times = {"plain": [], "by": []}
for _ in range(runs):
    for key, fn in (("plain", plain), ("by", by_segment)):
        t0 = time.perf_counter(); fn(); times[key].append(time.perf_counter() - t0)
t = seg.to_pandas()
flags = t[t.differs]
print(json.dumps({"times": times, "rows": len(t), "segments": int(t.segment.nunique()),
                  "flagged": sorted(set(flags.segment + ":" + flags.metric + ":" + flags.arm))}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; do not update RESULTS.md")
    a = ap.parse_args()
    desc = machine(("duckdb", "pyarrow", "pandas", "scipy"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "by_segment.parquet"
        t0 = time.perf_counter()
        make_data(path, a.users)
        gen = time.perf_counter() - t0
        out, rss = run_child(CHILD, str(path), str(a.runs))
    res = json.loads(out.strip().splitlines()[-1])
    plain, by = median(res["times"]["plain"]), median(res["times"]["by"])
    ratio = by / plain
    load_end = os.getloadavg()
    body = f"""## Per-segment analysis: `analyze(..., by="country")` (engagelab.experiments.segmented)

Recorded {now()} by `python benchmarks/bench_by_segment.py --users {a.users} --runs {a.runs}`.
Machine: {desc}; load average at the end {load_end[0]:.1f} / {load_end[1]:.1f} / {load_end[2]:.1f}
(1 / 5 / 15 min). The machine is shared with other jobs and was loaded during the run, so
absolute times are noisy; both analyses ran alternately in one process, which keeps the
ratio fair.

{a.users:,} users x 3 arms x 4 metrics (proportion, mean, CUPED mean, ratio), one Parquet
file read by DuckDB on every call (data written in {gen:.1f} s); {res["segments"]} segments
give {res["rows"]} per-segment rows. Medians of {a.runs} runs after a warm-up; peak RSS
{rss} MB.

| analysis | median s | runs (s) |
|---|---|---|
| plain `analyze` | {plain:.3f} | {", ".join(f"{x:.3f}" for x in res["times"]["plain"])} |
| `analyze(..., by="country")` | {by:.3f} | {", ".join(f"{x:.3f}" for x in res["times"]["by"])} |

Ratio {ratio:.2f}x (target <= {TARGET_RATIO:g}x: {"met" if ratio <= TARGET_RATIO else "NOT met"}).
Flagged as differing from the rest (BH FDR 0.05): {", ".join(res["flagged"]) or "none"}
(planted: country US has a larger conversion effect of arm 2).
"""
    print(body)
    if not a.no_write:
        write_section("by-segment", body)


if __name__ == "__main__":
    main()
