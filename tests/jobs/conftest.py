"""Helpers of the jobs tests: tiny notebooks written into tmp dirs, and a 'provider' ledger.

The sending notebooks record each message in a SQLite file (``sent.db``): one row per
provider call, keyed by ``message_key``. A send is skipped when its key is already there
(the idempotent-provider half of effectively-once delivery), so a rerun after a kill must
leave every key exactly once.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from engagelab import Workspace
from engagelab.jobs import JobSpec, add_job

ROOT = Path(__file__).resolve().parents[2]


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook whose first cell (tagged ``parameters``) is ``parameters``."""
    nb = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


SEND_CELL = """\
import os, sqlite3, time
con = sqlite3.connect(ledger, timeout=30, isolation_level=None)
con.execute("CREATE TABLE IF NOT EXISTS sent (message_key TEXT, attempt INTEGER)")
for i in range(n):
    key = f"{run_key}/user-{i}"
    con.execute("BEGIN IMMEDIATE")
    if con.execute("SELECT 1 FROM sent WHERE message_key = ?", (key,)).fetchone() is None:
        con.execute("INSERT INTO sent VALUES (?, ?)", (key, attempt))
    con.execute("COMMIT")
    if attempt == 1 and die_after is not None and i + 1 == die_after:
        os._exit(1)  # the kernel dies mid-send
    time.sleep(pause)
print("sent", n)
"""


def sending_job(ws: Workspace, tmp: Path, name: str = "send", **spec: object) -> JobSpec:
    """A job that sends ``n`` keyed messages into ``tmp/sent.db``."""
    nb = write_notebook(
        tmp / f"{name}.ipynb",
        "n = 5\npause = 0.0\ndie_after = None\nledger = ''\nlogical_date = ''\nrun_key = ''\nattempt = 1",
        SEND_CELL,
    )
    params = {"n": "int", "pause": "float", "die_after": "int"}
    fixed = {"ledger": str(tmp / "sent.db")}
    return add_job(ws, JobSpec(name=name, notebook=str(nb), params=params, fixed=fixed, **spec))


def sent_rows(tmp: Path) -> list[tuple[str, int]]:
    """(message_key, attempt) rows the 'provider' received."""
    db = tmp / "sent.db"
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT message_key, attempt FROM sent ORDER BY rowid").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def cli(*args: str, ws: Workspace | Path, wait: bool = True, env: dict[str, str] | None = None):
    """Run ``engagelab ARGS --workspace WS`` in a new process (returns the Popen or the result)."""
    cmd = [
        sys.executable,
        "-m",
        "engagelab.cli",
        *args,
        "--workspace",
        str(getattr(ws, "path", ws)),
    ]
    full_env = {**os.environ, **(env or {})}
    if wait:
        return subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=600
        )
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=full_env
    )


@pytest.fixture
def jws(tmp_path):
    w = Workspace.create(tmp_path / "ws")
    yield w
    w.close()
