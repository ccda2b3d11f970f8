"""Benchmark: analyse 10M users x 3 arms x 4 metrics + SRM from a Parquet file.

Metrics: conversion (proportion), revenue per user (mean), CUPED revenue (mean with
a pre-period covariate), revenue per converter (ratio, delta method), plus the
sample-ratio-mismatch check.

* engagelab: ``analyze(path, ...)`` -- DuckDB reads the Parquet file and aggregates
  sufficient statistics on every run; Bayesian columns included (20k Monte Carlo draws for P(best)).
* tea-tasting: the same metrics (``Mean``, ``Mean(covariate=...)``, ``RatioOfMeans``,
  ``SampleRatio``) with ``all_variants=True`` on a pandas DataFrame already in memory
  (loading is *not* timed, which favours tea-tasting), and also on the DuckDB
  relation when its Ibis backend works. Skipped with a note when tea-tasting is not
  installed (``pip install tea-tasting``: a benchmark-only dependency).

Each engine runs in its own child process (5 timed runs after a warm-up; peak RSS
from ``ru_maxrss``). Medians go between the ``experiments`` markers of
``benchmarks/RESULTS.md``.

With tea-tasting installed, an untimed check also compares CUPED for a ratio metric
(revenue per order with pre-period revenue / pre-period orders) with tea-tasting's
``RatioOfMeans(numer_covariate=..., denom_covariate=...)`` on 300k simulated users:
directly (the two differ only in how θ is estimated) and with tea-tasting's θ fed
into engagelab's per-arm statistics (which must agree to rounding).

Run: ``python benchmarks/bench_experiments.py [--users 10000000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, now, run_child, write_section  # noqa: E402

TARGET_S, TARGET_MB = 0.5, 1024


def make_data(path: Path, users: int, seed: int = 7) -> None:
    """Write ``users`` rows: user_id, variant (0/1/2), converted, revenue, revenue_pre."""
    rng = np.random.default_rng(seed)
    chunk = 2_000_000
    writer = None
    for start in range(0, users, chunk):
        k = min(chunk, users - start)
        variant = rng.integers(0, 3, k, dtype=np.int8)
        pre = rng.gamma(0.5, 20.0, k)
        p = 0.05 + 0.005 * (variant == 1) + 0.01 * (variant == 2)
        converted = (rng.random(k) < p).astype(np.int8)
        revenue = converted * rng.gamma(2.0, 25.0, k) + 0.3 * pre
        table = pa.table(
            {
                "user_id": np.arange(start, start + k, dtype=np.int64),
                "variant": variant,
                "converted": converted,
                "revenue": revenue,
                "revenue_pre": pre,
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)  # pyarrow default compression (snappy)
        writer.write_table(table, row_group_size=256 * 1024)
    writer.close()


ENGAGELAB = """
import json, time
from engagelab.experiments import Metric, analyze
path, runs = sys.argv[1], int(sys.argv[2])
metrics = [Metric("conversion", "proportion", "converted"), Metric("revenue", "mean", "revenue"),
           Metric("revenue_cuped", "mean", "revenue", covariate="revenue_pre"),
           Metric("revenue_per_converter", "ratio", "revenue", "converted")]
def once():
    return analyze(path, arm_col="variant", control=0, metrics=metrics)
res = once()
import resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
times, cpus = [], []
for _ in range(runs):
    c0, t0 = cpu(), time.perf_counter(); res = once(); times.append(time.perf_counter() - t0); cpus.append(cpu() - c0)
t = res.to_pandas()
print(json.dumps({"times": times, "cpu": cpus, "srm_p": res.srm["all"].p_value,
                  "lifts": dict(zip(t.metric + ":" + t.arm, t.rel_lift)),
                  "p": dict(zip(t.metric + ":" + t.arm, t.p_value))}))
"""

TEA = """
import json, time
import pandas as pd
import tea_tasting as tt
path, runs, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
exp = tt.Experiment(conversion=tt.Mean("converted"), revenue=tt.Mean("revenue"),
                    revenue_cuped=tt.Mean("revenue", covariate="revenue_pre"),
                    revenue_per_converter=tt.RatioOfMeans("revenue", "converted"),
                    srm=tt.SampleRatio())
t0 = time.perf_counter()
if mode == "pandas":
    data = pd.read_parquet(path, columns=["variant", "converted", "revenue", "revenue_pre"])
else:
    import ibis
    con = ibis.duckdb.connect()
    data = con.read_parquet(path)
load = time.perf_counter() - t0
res = exp.analyze(data, control=0, all_variants=True)
import resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
times, cpus = [], []
for _ in range(runs):
    c0, t0 = cpu(), time.perf_counter(); res = exp.analyze(data, control=0, all_variants=True)
    times.append(time.perf_counter() - t0); cpus.append(cpu() - c0)
df = res.to_pandas()
lifts = {f"{r.metric}:{str(r.variants).strip('()').split(',')[-1].strip()}": float(r.rel_effect_size)
         for r in df.itertuples() if r.metric != "srm"}
print(json.dumps({"times": times, "cpu": cpus, "load": load, "lifts": lifts}))
"""


RATIO_CHECK = """
import json
import numpy as np, pandas as pd, tea_tasting as tt
from engagelab.experiments import Metric, analyze
from engagelab.experiments.analysis import _arm_stats
from engagelab.experiments.metrics import aggregate
from engagelab.experiments._ratio import moments
rng = np.random.default_rng(11)
n = 300_000
arm = rng.integers(0, 3, n)
act, value = rng.gamma(2.0, 1.0, n), rng.gamma(2.0, 10.0, n)
orders_pre = rng.poisson(1.5 * act)
revenue_pre = orders_pre * value * rng.gamma(8.0, 1 / 8.0, n)
orders = rng.poisson(1.5 * act)
revenue = orders * value * rng.gamma(8.0, 1 / 8.0, n) * (1 + 0.03 * (arm == 2))
df = pd.DataFrame(dict(arm=arm, revenue=revenue, orders=orders, revenue_pre=revenue_pre,
                       orders_pre=orders_pre))
met = Metric("rpo", "ratio", "revenue", "orders", covariate="revenue_pre",
             denominator_covariate="orders_pre")
ours = analyze(df, arm_col="arm", control=0, metrics=[met]).to_pandas().set_index("arm")
plain = analyze(df, arm_col="arm", control=0, metrics=["revenue:ratio:orders"]).to_pandas()
exp = tt.Experiment(variant="arm", rpo=tt.RatioOfMeans("revenue", "orders",
    numer_covariate="revenue_pre", denom_covariate="orders_pre", use_t=False))
direct, plugged = {}, {}
agg = aggregate(df, [met], "arm").set_index("arm")
for a in ("1", "2"):
    sub = df[df.arm.isin([0, int(a)])]
    t = exp.analyze(sub, control=0).to_pandas().iloc[0]
    o = ours.loc[a]
    width = t.effect_size_ci_upper - t.effect_size_ci_lower
    direct[a] = dict(lift=abs(o.abs_lift - t.effect_size) / (width / 3.919927969080108),
                     width=abs((o.abs_ci_high - o.abs_ci_low) / width - 1))
    recs = [agg.loc["0"].to_dict(), agg.loc[a].to_dict()]
    tot = {k: recs[0][k] + recs[1][k] for k in recs[0]}
    k = moments(tot, "revenue", "orders", "revenue_pre", "orders_pre")
    theta, c_all = k.cov_lk / k.var_k, tot["sum:revenue_pre"] / tot["sum:orders_pre"]
    c, tr = (_arm_stats(r, met, theta, c_all) for r in recs)
    se = (c["se2"] + tr["se2"]) ** 0.5
    plugged[a] = dict(lift=abs((tr["estimate"] - c["estimate"]) / t.effect_size - 1),
                      width=abs(2 * 1.959963984540054 * se / width - 1))
shrink = float(np.median((ours.abs_ci_high - ours.abs_ci_low).to_numpy()
               / (plain.abs_ci_high - plain.abs_ci_low).to_numpy()))
print(json.dumps({"direct": direct, "plugged": plugged, "shrink": shrink}))
"""


def _child(code: str, *args: str) -> tuple[dict, int]:
    out, rss = run_child(code, *args)
    return json.loads(out.strip().splitlines()[-1]), rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only; do not update RESULTS.md")
    a = ap.parse_args()
    desc = machine(("duckdb", "pyarrow", "pandas", "scipy", "tea-tasting"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "experiment.parquet"
        t0 = time.perf_counter()
        make_data(path, a.users)
        gen = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2**20
        ours, ours_rss = _child(ENGAGELAB, str(path), str(a.runs))
        rows = [
            (
                "engagelab `analyze` (DuckDB over Parquet, read each run)",
                ours["times"],
                ours["cpu"],
                ours_rss,
            )
        ]
        notes = []
        try:
            import tea_tasting  # noqa: F401

            tea, tea_rss = _child(TEA, str(path), str(a.runs), "pandas")
            rows.append(
                (
                    f"tea-tasting {tea_tasting.__version__}, pandas DataFrame in memory (load {tea['load']:.2f} s not timed)",
                    tea["times"],
                    tea["cpu"],
                    tea_rss,
                )
            )
            try:
                tib, tib_rss = _child(TEA, str(path), str(a.runs), "ibis")
                rows.append(
                    (
                        "tea-tasting, Ibis DuckDB table over the Parquet file",
                        tib["times"],
                        tib["cpu"],
                        tib_rss,
                    )
                )
            except (
                subprocess.CalledProcessError
            ) as exc:  # Ibis's DuckDB backend is version-sensitive
                last = (exc.stderr or "").strip().splitlines()[-1:] or ["unknown error"]
                notes.append(f"tea-tasting on an Ibis DuckDB table did not run: `{last[0][:200]}`.")
            common = set(ours["lifts"]) & set(tea["lifts"])
            exact = [k for k in common if not k.startswith("revenue_cuped")]
            cuped = [k for k in common if k.startswith("revenue_cuped")]
            if exact:
                gap = max(abs(ours["lifts"][k] - tea["lifts"][k]) for k in exact)
                notes.append(
                    f"Both agree: largest difference in relative lift over {len(exact)} "
                    f"non-CUPED arm x metric pairs = {gap:.1e}."
                )
            if cuped:
                gap = max(abs(ours["lifts"][k] - tea["lifts"][k]) for k in cuped)
                notes.append(
                    f"CUPED relative lifts differ by up to {gap:.1e}: engagelab estimates theta once "
                    "from the pooled within-arm covariance of all arms, tea-tasting per pair of arms."
                )
            chk, _ = _child(RATIO_CHECK)
            worst = {k: max(v[k] for v in chk["direct"].values()) for k in ("lift", "width")}
            same = {k: max(v[k] for v in chk["plugged"].values()) for k in ("lift", "width")}
            notes.append(
                "CUPED ratio check (revenue per order, covariate pre-period revenue / pre-period "
                "orders, 300k users, untimed) against tea-tasting's RatioOfMeans with "
                f"numer/denom covariates: lifts differ by up to {worst['lift']:.1e} standard errors and "
                f"interval widths by {worst['width']:.1e}, from the θ estimate (engagelab: pooled "
                "within all arms; tea-tasting: per pair, both arms as one sample); with "
                f"tea-tasting's θ the lifts agree to {same['lift']:.0e} and widths to "
                f"{same['width']:.0e}. CUPED narrows the ratio's intervals to "
                f"{chk['shrink']:.0%} of the unadjusted width."
            )
        except ImportError:
            msg = "tea-tasting is not installed: comparison skipped (pip install tea-tasting to include it)."
            print(msg)
            notes.append(msg)
    med = median(ours["times"])
    verdict = "PASS" if med <= TARGET_S and ours_rss <= TARGET_MB else "FAIL"
    lines = [
        "## Experiments analysis (engagelab.experiments)",
        "",
        f"`python benchmarks/bench_experiments.py` — {a.users:,} users x 3 arms, metrics conversion, revenue, "
        f"CUPED revenue, revenue per converter + SRM; Parquet (snappy, 256k-row groups) {size_mb:.0f} MB (generated in {gen:.1f} s); "
        f"measured {now()}.",
        "",
        f"| engine | median of {a.runs} (s) | runs (s) | CPU s per run (user+sys, median) | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, times, cpus, rss in rows:
        lines.append(
            f"| {name} | {median(times):.3f} | {', '.join(f'{t:.3f}' for t in times)} "
            f"| {median(cpus):.3f} | {rss} |"
        )
    lines += [
        "",
        f"Target ≤ {TARGET_S} s and ≤ {TARGET_MB} MB peak for engagelab: **{verdict}** "
        f"(median {med:.3f} s, peak {ours_rss} MB). SRM p = {ours['srm_p']:.3g}.",
    ]
    if len(rows) > 1:
        lines.append(
            f"Speed-up over tea-tasting on an in-memory DataFrame: {median(rows[1][1]) / med:.1f}x."
        )
    lines.append(
        f"engagelab's CPU time per run is {median(ours['cpu']):.3f} s on 2 cores: wall time near "
        f"{median(ours['cpu']) / 2:.2f}-{median(ours['cpu']):.2f} s on an idle machine; the wall times above "
        "include waiting for the CPU while other jobs ran (see the load average)."
    )
    lines += [*notes, "", f"Machine: {desc} (shared with other jobs while measured)."]
    body = "\n".join(lines)
    print(body)
    if not a.no_write:
        write_section("experiments", body)


if __name__ == "__main__":
    main()
