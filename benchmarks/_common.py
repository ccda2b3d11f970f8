"""Shared helpers of the benchmark scripts: machine description and RESULTS.md sections."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine(packages: Sequence[str] = ("duckdb", "pyarrow", "pandas")) -> str:
    """One line describing the CPU, cores, memory, OS, Python and key package versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, AttributeError):
        pass
    versions = []
    for p in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{p} {metadata.version(p)}")
    load = os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, {', '.join(versions)}; load average at start {load:.1f}"
    )


def median(values: Sequence[float]) -> float:
    """The median."""
    return statistics.median(values)


def write_section(name: str, body: str) -> None:
    """Replace the section ``name`` of RESULTS.md (between its markers), or append it."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def now() -> str:
    """The current UTC time, to the minute."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_child(code: str, *args: str) -> tuple[str, int]:
    """Run Python ``code`` in a child process; return (stdout, peak RSS in MB)."""
    wrapper = (
        "import resource, sys\n"
        + code
        + "\nprint('__MAXRSS__', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, check=True
    )
    lines = out.stdout.strip().splitlines()
    rss = int(lines[-1].split()[1])
    return "\n".join(lines[:-1]), rss


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` calls of ``fn``."""
    import time

    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out
