"""``engagelab sql`` is read-only over the workspace's tables unless ``--unsafe`` is given."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.cli.app import main

BIN = Path(sys.executable).with_name("engagelab")


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``.

    SQLite's shared-memory index (``-shm``) and an empty write-ahead log (``-wal``) exist
    while a pooled connection to ``state.db`` is still open, whether or not anything was
    written; they are left out. A non-empty log holds writes and is compared like any file.
    """
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not p.name.endswith("-shm")
        and not (p.name.endswith("-wal") and p.stat().st_size == 0)
    }


@pytest.fixture
def sql_ws(tmp_path):
    w = Workspace.create(tmp_path / "ws")
    events = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "a"],
            "event": ["App Launched", "App Launched", "Purchase", "Purchase"],
            "ts": pd.to_datetime(
                ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"], utc=True
            ),
        }
    )
    w.ingest(events, quiet=True)
    w.ingest(pd.DataFrame({"user_id": ["a", "b", "c"], "plan": ["pro", "free", "pro"]}),
             table="profiles", quiet=True)  # fmt: skip
    w.close()
    return tmp_path / "ws"


def sql(capsys, ws: Path, query: str, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["sql", "-w", str(ws), "--format", "json", query, *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_read_only_queries_still_work(sql_ws, capsys):
    code, out, err = sql(
        capsys, sql_ws, "SELECT event, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
    )
    assert code == 0, err
    assert json.loads(out) == [{"event": "App Launched", "n": 2}, {"event": "Purchase", "n": 2}]
    code, out, _ = sql(
        capsys,
        sql_ws,
        "WITH p AS (SELECT * FROM profiles) SELECT count(*) AS n FROM p WHERE plan = 'pro'",
    )
    assert code == 0 and json.loads(out) == [{"n": 2}]
    code, out, _ = sql(capsys, sql_ws, "SHOW TABLES")
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["events", "profiles"]
    code, out, _ = sql(capsys, sql_ws, "DESCRIBE events")
    assert code == 0 and "user_id" in [r["column_name"] for r in json.loads(out)]
    code, out, _ = sql(capsys, sql_ws, "EXPLAIN SELECT * FROM events")
    assert code == 0 and "READ_PARQUET" in out.upper()


def test_every_attack_is_refused_and_the_workspace_is_intact(sql_ws, capsys, tmp_path):
    code, _, err = sql(capsys, sql_ws, "SELECT count(*) FROM events")  # settle the state DB
    assert code == 0, err
    before = snapshot(sql_ws)
    live = sorted((sql_ws / "data" / "events").rglob("*.parquet"))
    assert live
    events_file, state = live[0], sql_ws / "state.db"
    outside = tmp_path / "x.csv"
    payloads = [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        f"SELECT * FROM read_text('{sql_ws / 'engagelab.yaml'}')",
        f"COPY events TO '{outside}'",
        f"COPY (SELECT 1 AS user_id) TO '{events_file}' (FORMAT parquet)",
        f"SELECT 1; COPY (SELECT 1 AS user_id) TO '{events_file}' (FORMAT parquet, USE_TMP_FILE false)",
        f"EXPLAIN ANALYZE COPY events TO '{outside}'",
        f"ATTACH '{state}' AS s (TYPE sqlite)",
        f"ATTACH '{outside}.db' AS o",
        f"SELECT * FROM sqlite_scan('{state}', 'el_jobs')",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_parquet('https://example.org/x.parquet')",
        "CREATE TABLE t AS SELECT * FROM events",
        "DROP VIEW events",
        "CREATE OR REPLACE VIEW events AS SELECT 1",
        "SET enable_external_access = true",
        "PRAGMA enable_profiling",
        "CALL pragma_version()",
        "SELECT * INTO t FROM events",
    ]
    for q in payloads:
        code, out, err = sql(capsys, sql_ws, q)
        assert code == 1, (q, out)
        # under --format json the error is one JSON line on stderr
        assert err.count("\n") == 1, (q, err)
        message = json.loads(err)["error"]["message"]
        # refused by the statement check or DuckDB's lock (named), or the file is not a table
        assert "--unsafe" in message or "does not exist" in message, (q, err)
    assert not outside.exists() and not Path(f"{outside}.db").exists()
    assert snapshot(sql_ws) == before  # byte-identical: data files, state.db, config
    code, out, _ = sql(capsys, sql_ws, "SELECT count(*) AS n FROM events")
    assert code == 0 and json.loads(out) == [{"n": 4}]


def test_refusal_is_one_line_naming_the_statement_and_unsafe_is_the_escape(sql_ws, tmp_path):
    target = tmp_path / "copy.csv"
    q = f"COPY events TO '{target}' (HEADER)"
    proc = subprocess.run([str(BIN), "sql", "-w", str(sql_ws), q], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "not COPY" in proc.stderr and "--unsafe" in proc.stderr and "SELECT" in proc.stderr
    assert not target.exists()
    proc = subprocess.run([str(BIN), "sql", "-w", str(sql_ws), q, "--unsafe"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert target.read_text().splitlines()[0].startswith("user_id")


def test_readme_documents_the_escape():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "engagelab sql" in text and "--unsafe" in text
