"""Benchmark: simulate 1M users x 90 days and write them to Parquet.

Each run is a fresh child process (so its peak memory is its own, read with
``os.wait4`` -> ``ru_maxrss``). The script runs it ``--runs`` times (3 by default),
prints the medians and records them in ``benchmarks/RESULTS.md`` between the markers
``<!-- simulate:start -->`` and ``<!-- simulate:end -->``, leaving other sections alone.

Targets: generated and written in <= 60 s, peak memory <= 4 GB, >= 10M events.

Usage::

    python benchmarks/bench_simulate.py            # full size, 3 runs, updates RESULTS.md
    python benchmarks/bench_simulate.py --users 100000 --runs 1 --no-record
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- simulate:start -->", "<!-- simulate:end -->"
TARGET_SECONDS, TARGET_GB, TARGET_EVENTS = 60.0, 4.0, 10_000_000

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from engagelab.simulate import simulate
users, days, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t1 = time.perf_counter()
world = simulate(n_users=users, days=days, seed=seed)
profiles = world.profiles
t2 = time.perf_counter()
paths = world.write_parquet(out)
t3 = time.perf_counter()
import pyarrow.parquet as pq
n_events = sum(pq.ParquetFile(p).metadata.num_rows for p in paths[1:])
print(json.dumps({"import_s": t1 - t0, "population_s": t2 - t1, "events_write_s": t3 - t2,
                  "total_s": t3 - t1, "events": n_events, "files": len(paths),
                  "bytes": sum(p.stat().st_size for p in paths)}))
"""


def run_once(users: int, days: int, seed: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-sim-"))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(users), str(days), str(seed), str(out)],
            stdout=subprocess.PIPE,
            cwd=HERE.parent,
            text=True,
        )
        stdout = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark child failed with exit code {proc.returncode}")
        result = json.loads(stdout.strip().splitlines()[-1])
        result["peak_gb"] = usage.ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux
        result["cpu_s"] = usage.ru_utime + usage.ru_stime
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{mem_kb / 1024**2:.0f} GB RAM"
    except (OSError, AttributeError):
        ram = "unknown RAM"
    import numpy
    import pandas
    import pyarrow

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}, nproc {os.cpu_count()}, {ram}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, numpy {numpy.__version__}, pyarrow {pyarrow.__version__}, "
        f"pandas {pandas.__version__}; load average at the end {load} (machine shared with other jobs)"
    )


def record(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START}\n{section.rstrip()}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = RESULTS.with_name(RESULTS.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, RESULTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)

    runs = []
    for i in range(args.runs):
        r = run_once(args.users, args.days, args.seed + i)
        runs.append(r)
        print(
            f"run {i + 1}: {r['total_s']:.1f} s ({r['population_s']:.1f} s users+profiles, "
            f"{r['events_write_s']:.1f} s events generated+written, {r['cpu_s']:.1f} s CPU), "
            f"{r['events']:,} events, "
            f"peak {r['peak_gb']:.2f} GB, {r['bytes'] / 1e6:.0f} MB on disk",
            flush=True,
        )

    med = {
        k: statistics.median(r[k] for r in runs)
        for k in (
            "total_s",
            "population_s",
            "events_write_s",
            "cpu_s",
            "events",
            "peak_gb",
            "bytes",
        )
    }
    ok = (
        med["total_s"] <= TARGET_SECONDS
        and med["peak_gb"] <= TARGET_GB
        and med["events"] >= TARGET_EVENTS
    )
    verdict = "PASS" if ok else "FAIL"
    print(
        f"median: {med['total_s']:.1f} s, peak {med['peak_gb']:.2f} GB, {med['events']:,.0f} events -> {verdict}"
    )

    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(
        f"| {i + 1} | {r['total_s']:.1f} | {r['population_s']:.1f} | {r['events_write_s']:.1f} | "
        f"{r['cpu_s']:.1f} | {r['events']:,} | {r['peak_gb']:.2f} | {r['bytes'] / 1e6:.0f} |"
        for i, r in enumerate(runs)
    )
    section = f"""## Simulated world (engagelab.simulate)

`python benchmarks/bench_simulate.py` — {args.users:,} users x {args.days} days, generated and
written to Parquet (`World.write_parquet`: profiles + one events file per 7 days), each run
in a fresh child process; peak memory is the child's `ru_maxrss` (from `os.wait4`).
Measured {when}.

| run | total (s) | users + profiles (s) | events generated + written (s) | CPU user+sys (s) | events | peak RSS (GB) | on disk (MB) |
|---|---|---|---|---|---|---|---|
{rows}

Median: **{med["total_s"]:.1f} s**, peak **{med["peak_gb"]:.2f} GB**, {med["events"]:,.0f} events
({med["cpu_s"]:.1f} s of CPU: generation and Parquet writing overlap on the 2 cores, and the
wall time grows when other jobs share the machine).
Targets ≤ {TARGET_SECONDS:.0f} s, ≤ {TARGET_GB:.0f} GB, ≥ {TARGET_EVENTS:,} events: **{verdict}**.

How: every draw is a counter-based hash of (seed, user, day, session, field), so each day
is generated for all users at once with numpy (Poisson session counts by inverse CDF, then
`repeat`/offset arrays for sessions and events; no Python loop over users or events), and
the next 7-day batch is generated while a writer thread writes the previous one.

Machine: {machine()}.
"""
    if not args.no_record:
        record(section)
        print(f"recorded in {RESULTS}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
