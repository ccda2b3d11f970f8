"""Benchmark: start-up time of the ``engagelab`` command line, against a baseline commit.

Three command lines, each started ``--runs`` times as a fresh process (what a shell or a
cron line does), interleaved with the same command lines of the baseline commit (a
temporary ``git worktree`` of ``--baseline``, imported first on ``PYTHONPATH`` with the
same interpreter and packages):

* ``engagelab --help``
* ``engagelab campaign list`` on a small workspace (two saved campaigns)
* ``engagelab experiment design --baseline 0.05 --mde 0.01 --arms 3``

Reported: medians of wall-clock and CPU seconds (user + system of the child), against the
targets (0.3 s, 1.0 s, 1.5 s wall). Written between the ``cli-startup`` markers of
``benchmarks/RESULTS.md``.

Run: ``python benchmarks/cli_startup.py [--runs 5] [--baseline 70f6610]``
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, now, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "70f6610"

COMMANDS: list[tuple[str, list[str], float]] = [
    ("engagelab --help", ["--help"], 0.3),
    ("engagelab campaign list", ["campaign", "list"], 1.0),
    ("engagelab experiment design", ["experiment", "design", "--baseline", "0.05", "--mde", "0.01",
                                     "--arms", "3"], 1.5),
]  # fmt: skip


def _workspace(path: Path) -> None:
    from engagelab import Workspace
    from engagelab.campaigns import Campaign, Variant, save_campaign

    with Workspace.create(path) as ws:
        for cid in ("welcome", "winback"):
            save_campaign(ws, Campaign(id=cid, channel="push",
                                       variants=(Variant("A", {"title": "Hi", "body": cid}),)))  # fmt: skip


def _once(src: Path, argv: list[str], ws: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one ``python -m engagelab.cli ARGV`` with ``src`` first on the
    path (run from the workspace's folder: ``-m`` puts the current folder first)."""
    env = {**os.environ, "PYTHONPATH": str(src), "ENGAGELAB_WORKSPACE": str(ws)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engagelab.cli", *argv], env=env, check=True, cwd=ws.parent,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _check_source(src: Path, cwd: Path) -> None:
    code = "import engagelab, sys; print(engagelab.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(src)},
                         capture_output=True, text=True, check=True, cwd=cwd).stdout.strip()  # fmt: skip
    if not out.startswith(str(src)):
        raise SystemExit(f"PYTHONPATH={src} imports engagelab from {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline", default=BASELINE, help="the commit compared against")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    desc = machine(("pandas", "scipy", "statsmodels", "sqlalchemy"))
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base),
                        args.baseline], check=True)  # fmt: skip
        try:
            ws = Path(tmp) / "ws"
            _workspace(ws)
            for src in (ROOT, base):
                _check_source(src, ws.parent)
                for _label, argv, _t in COMMANDS:  # warm the bytecode caches
                    _once(src, argv, ws)
            runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for _ in range(args.runs):
                for label, argv, _t in COMMANDS:
                    for name, src in (("now", ROOT), ("baseline", base)):
                        runs.setdefault((label, name), []).append(_once(src, argv, ws))
                        print(
                            label, name, *(f"{x:.2f}" for x in runs[(label, name)][-1]), flush=True
                        )
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=False)  # fmt: skip
    load1 = os.getloadavg()[0]
    rows = []
    for label, _argv, target in COMMANDS:
        now_wall = median([w for w, _ in runs[(label, "now")]])
        now_cpu = median([c for _, c in runs[(label, "now")]])
        base_wall = median([w for w, _ in runs[(label, "baseline")]])
        base_cpu = median([c for _, c in runs[(label, "baseline")]])
        verdict = "PASS" if now_wall <= target else "over"
        rows.append(
            f"| `{label}` | {now_wall:.2f} | {now_cpu:.2f} | {base_wall:.2f} | {base_cpu:.2f} "
            f"| {base_cpu / now_cpu:.1f}x | ≤ {target:g} s: {verdict} |"
        )
    body = f"""## CLI start-up (engagelab.cli)

`python benchmarks/cli_startup.py` — each command line started {args.runs} times as a fresh
process (`python -m engagelab.cli ...`), interleaved with the baseline commit `{args.baseline}`
(a temporary git worktree of it, same interpreter and packages); `campaign list` on a small
workspace with two saved campaigns. Measured {now()}.

**Provisional**: the machine was busy during the run (load average {load0:.1f} at the start,
{load1:.1f} at the end on {os.cpu_count()} cores), which inflates wall time; CPU seconds
(user + system of the child) are the steadier figure. Re-run on a quiet machine for the
numbers to quote.

| command | wall now (s) | CPU now (s) | wall baseline (s) | CPU baseline (s) | CPU saved | target (wall) |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

What changed: the packages' `__init__` modules export their names lazily (PEP 562, via
`engagelab.exports.lazy_exports`), so `import engagelab.campaigns` no longer loads
best-time models, experiments and scipy; saved campaigns (`save/load/list/delete`) live in
`engagelab.campaigns.saved`, which needs only the state database; `experiment design`
no longer imports the analysis module (statsmodels, pandas). `campaign list` still opens
the workspace, which loads pandas, pyarrow, DuckDB and SQLAlchemy.

Machine: {desc}.
"""
    print(body)
    if not args.no_write:
        write_section("cli-startup", body)


if __name__ == "__main__":
    main()
