"""Run every benchmark script in turn (``make bench``), each in its own process.

Each script writes its own section of ``benchmarks/RESULTS.md`` with the machine
description and the load average at its start; this runner only sequences them (so
they never compete for the two cores), prints the wall time of each and exits non-zero
if any script failed. Benchmarks are slow (minutes each at full size); pass names to run
a subset::

    python benchmarks/run_all.py                       # all of them
    python benchmarks/run_all.py experiments retention # bench_experiments.py, bench_retention.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts() -> dict[str, Path]:
    """The benchmark scripts by short name (``bench_<name>.py``)."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str] | None = None) -> int:
    known = scripts()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"a subset of: {', '.join(known)}")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in known]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    failed = []
    for name in args.names or list(known):
        load = os.getloadavg()[0]
        print(f"==> {name} (load average {load:.1f})", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(known[name])], cwd=HERE.parent)
        print(f"<== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
