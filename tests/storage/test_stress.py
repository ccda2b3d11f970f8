"""Stress: 4 processes × 50 batches, each batch bringing new property columns (some shared
between the processes, with the same type), 10 times over, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engagelab import Workspace
from tests.storage.workers import STRESS_TYPES

ROOT = Path(__file__).resolve().parents[2]
PROCS, BATCHES, ROUNDS, ROWS = 4, 50, 10, 3


@pytest.mark.slow
def test_four_processes_registering_new_columns_at_once(tmp_path, state_url):
    ws = Workspace.create(tmp_path / "ws", state_url=state_url)
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.storage.workers",
                "stress",
                str(ws.path),
                str(me),
                str(PROCS),
                str(ROUNDS),
                str(BATCHES),
                str(ROWS),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for me in range(PROCS)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    elapsed = time.monotonic() - started
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["batches"] == ROUNDS * BATCHES
    total = PROCS * BATCHES * ROUNDS
    # no lost batch: every batch is in the manifest and its rows are all there
    assert len(ws.store.live_batches("events")) == total
    assert sum(rows for _, _, rows in ws.store.live_batches("events")) == total * ROWS
    got = ws.sql("SELECT batch_tag, count(*) AS n FROM events GROUP BY batch_tag")
    assert len(got) == total and set(got["n"]) == {ROWS}
    # one consistent type per column, the one every process used
    recorded = ws.store.columns("events")
    for r in range(ROUNDS):
        for b in range(BATCHES):
            assert recorded[f"r{r}_shared_{b}"] == STRESS_TYPES[b % 3]
            for me in range(PROCS):
                assert recorded[f"r{r}_own_{me}_{b}"] == "float64"
    ints = ws.sql("SELECT sum(r0_shared_1) AS s, typeof(sum(r0_shared_1)) AS t FROM events")
    assert int(ints["s"][0]) == PROCS * ROWS * 1
    print(f"{total} batches from {PROCS} processes in {elapsed:.1f} s")
    ws.close()
