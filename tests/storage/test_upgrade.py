"""A workspace made by schema 1 (``tests/fixtures``, see ``make_v1_workspace.py``) opens
with today's code: upgraded in place, data intact and usable, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from engagelab import Workspace
from engagelab.campaigns import campaign_report, get_global_control
from engagelab.jobs import get_job
from engagelab.segments import Segment, did
from engagelab.storage.migrations import current_version, upgrade
from engagelab.storage.tables import SCHEMA_VERSION
from tests.servers import drop_database, fresh_database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

#: What the fixture workspaces hold, as recorded when they were made (the same world on
#: both backends).
EXPECTED_ROWS = {
    "el_batches": 12,
    "el_campaign_ledger": 198,
    "el_campaign_runs": 3,
    "el_campaign_specs": 3,
    "el_campaign_settings": 2,
    "el_columns": 18,
    "el_inbox_messages": 116,
    "el_jobs_specs": 1,
    "el_segments": 1,
}
#: The PostgreSQL fixture was filled by ingesting the SQLite one's profiles and events.
EXPECTED_INGESTS = {"sqlite": 1, "postgresql": 3}
#: ... and its sends added their system events to the copied ones.
EXPECTED_EVENTS = {"sqlite": 1313, "postgresql": 1802}
EXPECTED_SENT = {"inapp1": 116, "mail1": 39, "push1": 43}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def v1_copy(request, tmp_path) -> tuple[Path, str]:
    """A copy of the schema-1 workspace and the URL of its state database."""
    folder = tmp_path / "v1"
    if request.param == "sqlite":
        shutil.copytree(FIXTURES / "workspace_v1", folder)
        return folder, f"sqlite:///{folder / 'state.db'}"
    url = fresh_database(request.getfixturevalue("postgres_url"))
    request.addfinalizer(lambda: drop_database(url))
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn,
         "-f", str(FIXTURES / "workspace_v1_postgres.sql")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    shutil.copytree(FIXTURES / "workspace_v1_pg", folder)
    config = yaml.safe_load((folder / "engagelab.yaml").read_text())
    config["state_url"] = url
    (folder / "engagelab.yaml").write_text(yaml.safe_dump(config))
    return folder, url


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read without engagelab (sorted, as plain tuples)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            names = sorted(sa.inspect(conn).get_table_names())
            return {
                t: sorted((tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t}"))), key=repr)
                for t in names
            }
    finally:
        engine.dispose()


def _version(url: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT value FROM el_meta WHERE key = 'schema_version'")
            ).scalar_one()
    finally:
        engine.dispose()


def test_a_schema_1_workspace_is_upgraded_in_place_and_stays_usable(v1_copy):
    folder, url = v1_copy
    backend = sa.make_url(url).get_backend_name()
    assert _version(url) == "1"
    before = _dump(url)
    assert {t: len(before[t]) for t in EXPECTED_ROWS} == EXPECTED_ROWS
    assert len(before["el_ingests"]) == EXPECTED_INGESTS[backend]

    ws = Workspace.open(folder)
    try:
        assert current_version(ws.state) == SCHEMA_VERSION
        assert _version(url) == str(SCHEMA_VERSION)
        after = _dump(url)
        # no row of any table changed, only the schema version; columns added by later
        # schema versions come after the old ones and are empty; tables added since
        # (el_audience_syncs, el_throttle_buckets: created if missing) are created empty
        added = {"el_audience_syncs", "el_throttle_buckets"}
        assert set(after) - set(before) == added
        assert set(before) <= set(after) and all(after[t] == [] for t in added)
        for table in before:
            if table != "el_meta":
                old = [row[: len(b)] for row, b in zip(after[table], before[table], strict=True)]
                assert old == before[table], table
                assert all(
                    v is None
                    for row, b in zip(after[table], before[table], strict=True)
                    for v in row[len(b) :]
                ), table
        # the data is all there and reads as it did
        got = ws.sql("SELECT count(*) AS n, count(DISTINCT user_id) AS u FROM events")
        assert (int(got["n"][0]), int(got["u"][0])) == (EXPECTED_EVENTS[backend], 301)
        assert int(ws.sql("SELECT count(*) AS n FROM profiles")["n"][0]) == 300
        assert ws.store.columns("events")["plan_tier"] == "string"
        assert ws.count("active", at="2026-01-14T09:00:00Z") == 120
        report = campaign_report(ws).table.set_index("campaign_id")
        assert report["sent"].to_dict() == EXPECTED_SENT
        assert int(report.loc["push1", "control_users"]) == 15
        assert get_global_control(ws) == (0.05, "global")
        assert get_job(ws, "nightly").notebook == "nb.ipynb"
        # and usable: a long fingerprint (schema 1 on PostgreSQL had VARCHAR(200)), a new
        # column, a new segment
        frame = pd.DataFrame(
            {"user_id": ["u_new"], "event": ["Signed Up"], "ts": ["2026-01-15T10:00:00Z"],
             "coupon": ["X1"]}
        )  # fmt: skip
        assert ws.append("events", frame, fingerprint="f" * 300).rows == 1
        ws.save_segment("launched", Segment(did("App Launched")))
        assert ws.count("launched", at="2026-01-16T00:00:00Z") == 195
        assert int(ws.sql("SELECT count(*) AS n FROM events WHERE coupon = 'X1'")["n"][0]) == 1
    finally:
        ws.close()

    # opening again is a no-op: nothing to migrate, nothing rewritten
    before_second = _dump(url)
    ws = Workspace.open(folder)
    try:
        assert upgrade(ws.state) == SCHEMA_VERSION
        assert _dump(url) == before_second
    finally:
        ws.close()


@pytest.mark.postgres
def test_schema_1_fingerprints_become_text_on_postgresql(postgres_db_url):
    url = postgres_db_url
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn,
         "-f", str(FIXTURES / "workspace_v1_postgres.sql")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    query = sa.text(
        "SELECT table_name, data_type FROM information_schema.columns "
        "WHERE column_name = 'fingerprint' ORDER BY table_name"
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.execute(query).all() == [
            ("el_batches", "character varying"), ("el_ingests", "character varying")]  # fmt: skip
    from engagelab.storage.statedb import StateDB

    db = StateDB(url)
    db.dispose()
    with engine.connect() as conn:
        assert conn.execute(query).all() == [("el_batches", "text"), ("el_ingests", "text")]
    engine.dispose()


def _at_version(url: str, version: int) -> None:
    """Bring a schema-1 database to ``version`` with the steps of that time (what an
    engagelab of that schema left behind)."""
    from engagelab.storage.migrations import MIGRATIONS

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for v in range(1, version):
                MIGRATIONS[v](conn, conn.dialect.name)
            conn.execute(
                sa.text("UPDATE el_meta SET value = :v WHERE key = 'schema_version'"),
                {"v": str(version)},
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("version", [2, 3])
def test_schema_2_and_3_databases_are_upgraded_keeping_their_rows(v1_copy, version):
    folder, url = v1_copy
    _at_version(url, version)
    assert _version(url) == str(version)
    before = _dump(url)
    assert {t: len(before[t]) for t in EXPECTED_ROWS} == EXPECTED_ROWS
    ws = Workspace.open(folder)
    try:
        assert _version(url) == str(SCHEMA_VERSION) == "4"
        after = _dump(url)
        # tables created if missing since (el_audience_syncs, el_throttle_buckets) are
        # added empty
        added = {"el_audience_syncs", "el_throttle_buckets"}
        assert set(after) - set(before) == added and all(after[t] == [] for t in added)
        for table in before:
            if table != "el_meta":
                old = [row[: len(b)] for row, b in zip(after[table], before[table], strict=True)]
                assert old == before[table], table
        # the queue columns of schema 4 exist and are empty on the old rows
        with ws.state.read() as conn:
            got = conn.execute(
                sa.text(
                    "SELECT count(*), count(due_us), count(origin_us), count(expires_us) "
                    "FROM el_campaign_ledger"
                )
            ).one()
            idx = {i["name"] for i in sa.inspect(conn).get_indexes("el_campaign_ledger")}
        assert tuple(got) == (EXPECTED_ROWS["el_campaign_ledger"], 0, 0, 0)
        assert "ix_el_campaign_ledger_due" in idx
        assert campaign_report(ws).table.set_index("campaign_id")["sent"].to_dict() == (
            EXPECTED_SENT
        )
    finally:
        ws.close()
