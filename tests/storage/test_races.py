""" "Insert if absent" in the state DB, raced for real on PostgreSQL.

Each test opens a second connection that inserts the same key and keeps its transaction
open; the code under test runs in a thread and blocks on that row; the test waits until
PostgreSQL reports the thread's statement waiting on a lock, then commits the blocker.
Read-then-insert code fails here with a unique violation (the row was absent when it
looked); insert-on-conflict code waits, skips, reads back and succeeds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from engagelab import Workspace
from engagelab.campaigns import Campaign, Variant, load_campaign, save_campaign
from engagelab.errors import SpecError, ValidationError
from engagelab.jobs import JobSpec, add_job, get_job
from engagelab.storage.statedb import utcnow
from engagelab.storage.tables import campaign_specs, columns, jobs

pytestmark = pytest.mark.postgres


def _race(
    ws: Workspace, table: sa.Table, row: Mapping[str, Any], call: Callable[[], Any]
) -> tuple[Any, BaseException | None]:
    """Run ``call`` while another transaction holds an uncommitted insert of ``row``."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = call()
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    blocker = ws.state.engine.connect()
    watcher = ws.state.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    tx = blocker.begin()
    try:
        blocker.execute(table.insert().values(**row))
        thread = threading.Thread(target=target)
        thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            if waiting or not thread.is_alive():
                break
            time.sleep(0.02)
        assert thread.is_alive(), f"the call did not wait for the other insert: {out}"
        tx.commit()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        blocker.close()
        watcher.close()
    return out.get("value"), out.get("error")


@pytest.fixture
def pg_ws(tmp_path, postgres_db_url):
    w = Workspace.create(tmp_path / "pgws", state_url=postgres_db_url)
    yield w
    w.close()


def test_two_registrations_of_the_same_new_column_both_succeed(pg_ws):
    row = {"table_name": "events", "column_name": "batch_tag", "type": "string"}
    got, err = _race(pg_ws, columns, row, lambda: pg_ws.store.register_columns(
        "events", {"batch_tag": "string", "plan": "string"}))  # fmt: skip
    assert err is None, repr(err)
    assert got["batch_tag"] == "string" and got["plan"] == "string"
    assert pg_ws.store.columns("events")["batch_tag"] == "string"


def test_a_column_registered_meanwhile_with_another_type_is_a_clear_error(pg_ws):
    row = {"table_name": "events", "column_name": "amount", "type": "int64"}
    _, err = _race(pg_ws, columns, row, lambda: pg_ws.store.register_columns(
        "events", {"amount": "float64"}))  # fmt: skip
    assert isinstance(err, ValidationError), repr(err)
    assert "events.amount" in str(err) and "'int64'" in str(err) and "float64" in str(err)
    assert pg_ws.store.columns("events") == {"amount": "int64"}


def test_appending_a_frame_whose_new_column_another_process_registers(pg_ws):
    frame = pd.DataFrame(
        {"user_id": ["a"], "event": ["E"], "ts": [pd.Timestamp("2026-01-01", tz="UTC")],
         "tier": ["gold"]}
    )  # fmt: skip
    row = {"table_name": "events", "column_name": "tier", "type": "string"}
    got, err = _race(pg_ws, columns, row, lambda: pg_ws.append("events", frame))
    assert err is None, repr(err)
    assert got.rows == 1
    assert pg_ws.sql("SELECT tier FROM events")["tier"].tolist() == ["gold"]


def _campaign() -> Campaign:
    return Campaign(id="c1", channel="push", variants=(Variant("A", {"title": "T", "body": "B"}),))


def test_saving_a_campaign_another_process_creates_meanwhile(pg_ws):
    now = utcnow()
    row = {"id": "c1", "spec": _campaign().to_json(), "channel": "push", "type": "one_time",
           "status": "draft", "created_at": now, "updated_at": now}  # fmt: skip
    _, err = _race(pg_ws, campaign_specs, row, lambda: save_campaign(pg_ws, _campaign(), "active"))
    assert err is None, repr(err)
    assert load_campaign(pg_ws, "c1") == _campaign()
    with pg_ws.state.read() as conn:
        status = conn.execute(sa.select(campaign_specs.c.status)).scalar_one()
    assert status == "active"  # the later save wins


def _job_row(spec: JobSpec) -> dict[str, Any]:
    now = utcnow()
    return {"name": spec.name, "spec": spec.to_yaml(), "paused": False,
            "created_at": now, "updated_at": now}  # fmt: skip


def test_adding_a_job_another_process_adds_meanwhile_is_a_clear_error(pg_ws):
    spec = JobSpec(name="nightly", notebook="nb.ipynb")
    _, err = _race(pg_ws, jobs, _job_row(spec), lambda: add_job(pg_ws, spec))
    assert isinstance(err, SpecError), repr(err)
    assert "is already a job" in str(err)


def test_replacing_a_job_another_process_adds_meanwhile(pg_ws):
    spec = JobSpec(name="nightly", notebook="nb.ipynb")
    newer = JobSpec(name="nightly", notebook="other.ipynb")
    _, err = _race(pg_ws, jobs, _job_row(spec), lambda: add_job(pg_ws, newer, replace=True))
    assert err is None, repr(err)
    assert get_job(pg_ws, "nightly").notebook == "other.ipynb"
