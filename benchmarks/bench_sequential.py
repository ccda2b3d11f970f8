"""Benchmark: group-sequential boundaries (``engagelab.experiments.group_sequential_bounds``).

Target: 30 equally spaced looks in at most 1 s (O'Brien-Fleming and Pocock spending).
Each call is timed uncached (the function caches per design; the cache is cleared
before every timed run). The baseline is the previous implementation, which found
each boundary with scipy's multivariate-normal CDF (the code of commit 70f6610, read
from git and imported from a temporary file in the same run); it is timed at the
look counts it can reach in reasonable time.

Run: ``python benchmarks/bench_sequential.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, now, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "70f6610"
TARGET_S = 1.0


def timed(fn, looks: int, kind: str, runs: int, clear=None) -> list[float]:
    t = [i / looks for i in range(1, looks + 1)]
    out = []
    for _ in range(runs):
        if clear:
            clear()
        start = time.perf_counter()
        fn(t, 0.05, kind)
        out.append(time.perf_counter() - start)
    return out


def baseline_module():
    src = subprocess.run(
        ["git", "show", f"{BASELINE_COMMIT}:engagelab/experiments/sequential.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "sequential_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("sequential_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from engagelab.experiments import sequential

    rows = []
    for kind in ("obf", "pocock"):
        for looks in (4, 8, 12, 30):
            runs = timed(
                sequential.group_sequential_bounds,
                looks,
                kind,
                args.runs,
                clear=sequential._bounds.cache_clear,
            )
            rows.append(("engagelab (recursion)", kind, looks, runs))
    old = baseline_module()
    for kind in ("obf", "pocock"):
        rows.append(("baseline (MVN CDF)", kind, 4, timed(old.group_sequential_bounds, 4, kind, 3)))
        rows.append(("baseline (MVN CDF)", kind, 6, timed(old.group_sequential_bounds, 6, kind, 1)))
    lines = [
        "## Group-sequential boundaries (engagelab.experiments.sequential)",
        "",
        f"`python benchmarks/bench_sequential.py` — measured {now()}. Uncached calls; "
        f"baseline = the multivariate-normal-CDF implementation of {BASELINE_COMMIT}, same run.",
        "",
        "| implementation | spending | looks | median (s) | runs (s) |",
        "|---|---|---|---|---|",
    ]
    for name, kind, looks, runs in rows:
        lines.append(
            f"| {name} | {kind} | {looks} | {median(runs):.3f} | "
            + ", ".join(f"{r:.3f}" for r in runs)
            + " |"
        )
    worst = max(median(r) for n, _, k, r in rows if k == 30 and n.startswith("engagelab"))
    verdict = "PASS" if worst <= TARGET_S else "FAIL"
    base4 = median([median(r) for n, _, k, r in rows if k == 4 and n.startswith("baseline")])
    new4 = median([median(r) for n, _, k, r in rows if k == 4 and n.startswith("engagelab")])
    lines += [
        "",
        f"Target ≤ {TARGET_S:.0f} s for 30 looks: **{verdict}** (slowest median {worst:.3f} s). "
        f"At 4 looks the recursion is {base4 / new4:.0f}x faster than the baseline; the baseline "
        "grows with the look count (it integrates a k-dimensional normal per boundary) and was "
        "not run beyond 6 looks.",
        "",
        f"Machine: {machine(('numpy', 'scipy'))}.",
    ]
    write_section("sequential", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
