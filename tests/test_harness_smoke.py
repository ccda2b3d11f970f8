"""The real-server harness works: a throwaway PostgreSQL answers SQLAlchemy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import servers
from tests.servers import drop_database, find_postgres_bindir, fresh_database, start_postgres

# Fixtures become visible to this module's tests by being module attributes.
postgres_url = servers.postgres_url
postgres_db_url = servers.postgres_db_url

pytestmark = pytest.mark.postgres
REPO_ROOT = Path(__file__).resolve().parents[1]


def test_postgres_roundtrip(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE harness_smoke (id integer PRIMARY KEY, name text NOT NULL)"
            )
            conn.execute(
                sa.text("INSERT INTO harness_smoke VALUES (:id, :name)"),
                [{"id": 1, "name": "a"}, {"id": 2, "name": "ü"}],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, name FROM harness_smoke ORDER BY id")).all()
            server = conn.execute(sa.text("SELECT current_database(), version()")).one()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "ü")]
    assert server[0] == sa.make_url(postgres_url).database
    assert server[0].startswith("engagelab_test")
    assert server[1].startswith("PostgreSQL ")
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


def test_fresh_databases_are_isolated(postgres_url: str) -> None:
    first, second = fresh_database(postgres_url), fresh_database(postgres_url)
    try:
        assert sa.make_url(first).database != sa.make_url(second).database
        e1, e2 = sa.create_engine(first), sa.create_engine(second)
        with e1.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE only_in_first (x int)")
        assert sa.inspect(e1).get_table_names() == ["only_in_first"]
        assert sa.inspect(e2).get_table_names() == []
        e1.dispose()
        e2.dispose()
    finally:
        drop_database(first)
        drop_database(second)
    admin = sa.create_engine(postgres_url)
    with admin.connect() as conn:
        names = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    admin.dispose()
    assert sa.make_url(first).database not in names


def test_per_test_database_starts_empty(postgres_db_url: str) -> None:
    engine = sa.create_engine(postgres_db_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x int)")
            conn.exec_driver_sql("INSERT INTO t VALUES (41), (1)")
            assert conn.exec_driver_sql("SELECT sum(x) FROM t").scalar_one() == 42
    finally:
        engine.dispose()


def test_stop_removes_cluster_and_frees_port(postgres_url: str) -> None:
    # A second, private cluster: stopping it must end its postmaster and delete its files
    # while the session server keeps serving.
    server = start_postgres()
    pid, base = server.postmaster_pid(), server.base_dir
    assert pid is not None and Path(f"/proc/{pid}").exists()
    server.stop()
    assert not base.exists()
    assert (
        not Path(f"/proc/{pid}").exists()
        or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    )
    with pytest.raises(sa.exc.OperationalError):
        sa.create_engine(server.url(), connect_args={"connect_timeout": 2}).connect()
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    engine.dispose()


def test_missing_binaries_fail_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGAGELAB_PG_BINDIR", str(tmp_path))  # an empty "bin" dir
    assert find_postgres_bindir() is None
    with pytest.raises(RuntimeError, match="make system-deps"):
        start_postgres()


def test_fixture_fails_not_skips_without_postgres(tmp_path: Path) -> None:
    (tmp_path / "test_needs_pg.py").write_text(
        "from tests.servers import postgres_url  # noqa: F401\n"
        "def test_it(postgres_url):\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ENGAGELAB_TEST_PG_URL"}
    env.update(ENGAGELAB_PG_BINDIR=str(tmp_path / "nowhere"), PYTHONPATH=str(REPO_ROOT))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "1 error" in out and "skipped" not in out, out
    assert "make system-deps" in out, out
