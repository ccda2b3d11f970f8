"""Schema 3 of the ledger (``owner``, ``lease_us``): a schema-2 workspace is upgraded in
place when opened, and a message its old sender left claimed is delivered once."""

from __future__ import annotations

import sqlalchemy as sa

from engagelab import Workspace
from engagelab.campaigns import plan, read_outbox, send
from engagelab.delivery import ledger as L
from engagelab.delivery.outbox import outbox_path
from engagelab.storage.tables import SCHEMA_VERSION
from tests.campaigns.conftest import add_users, campaign, profiles

LD = "2026-02-02T09:00:00Z"


def test_schema_2_ledger_is_upgraded_and_its_claims_are_taken_over(ws):
    add_users(ws, profiles(5))
    p = plan(ws, campaign("old"), LD, run_key="old-1")
    key = p.frame["message_key"].iloc[0]
    with ws.state.write() as conn:  # what a schema-2 sender left: a claim without owner
        conn.execute(
            L.ledger.insert().values(
                key=key, run_key="old-1", campaign_id="old", user_id="u00000",
                channel="email", variant="A", timezone="UTC", send_at=0, status="claimed",
                batch=0, updated_at=L.now(),
            )
        )  # fmt: skip
    ws.close()
    db = ws.path / "state.db"
    raw = sa.create_engine(f"sqlite:///{db}")
    with raw.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE el_campaign_ledger DROP COLUMN owner")
        conn.exec_driver_sql("ALTER TABLE el_campaign_ledger DROP COLUMN lease_us")
        conn.exec_driver_sql("UPDATE el_meta SET value = '2' WHERE key = 'schema_version'")
    raw.dispose()
    ws2 = Workspace.open(ws.path)
    try:
        with ws2.state.read() as conn:
            cols = {c["name"] for c in sa.inspect(conn).get_columns("el_campaign_ledger")}
            version = conn.exec_driver_sql(
                "SELECT value FROM el_meta WHERE key = 'schema_version'"
            ).scalar()
        assert {"owner", "lease_us"} <= cols and int(version) == SCHEMA_VERSION == 4
        r = send(ws2, plan(ws2, campaign("old"), LD, run_key="old-1"), "old-1")
        assert r.sent == 4 and r.redelivered == 1 and r.pending == 0
        got = [m["user_id"] for m in read_outbox(outbox_path(ws2, "old-1"))]
        assert sorted(got) == [f"u{i:05d}" for i in range(5)]
    finally:
        ws2.close()
