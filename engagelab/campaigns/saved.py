"""Saved campaigns in the state database: save, load, list and delete.

Kept apart from planning and sending so that ``engagelab campaign list`` and the campaign
widgets' lists never import the statistics stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from engagelab.campaigns.spec import Campaign
from engagelab.delivery import ledger as L
from engagelab.errors import ValidationError
from engagelab.storage.upsert import upsert
from engagelab.validate import check_str

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["STATUSES", "delete_campaign", "list_campaigns", "load_campaign", "save_campaign"]

STATUSES = ("draft", "active", "paused", "archived")


def save_campaign(ws: Core, campaign: Campaign, status: str = "draft") -> None:
    """Save (or replace) ``campaign`` in the state DB under its id."""
    if not isinstance(campaign, Campaign):
        raise ValidationError("campaign", type(campaign).__name__, "must be a Campaign")
    if status not in STATUSES:
        raise ValidationError("status", status, "must be one of " + ", ".join(map(repr, STATUSES)))
    now = L.now()
    vals = {
        "spec": campaign.to_json(),
        "channel": campaign.channel,
        "type": campaign.schedule.type,
        "status": status,
        "updated_at": now,
    }
    with ws.state.write() as conn:
        upsert(conn, L.campaigns_table, {"id": campaign.id}, vals, insert_only={"created_at": now})


def load_campaign(ws: Core, id: str) -> Campaign:
    """The saved campaign ``id``."""
    check_str("id", id)
    with ws.state.read() as conn:
        row = conn.execute(
            sa.select(L.campaigns_table.c.spec).where(L.campaigns_table.c.id == id)
        ).first()
    if row is None:
        raise ValidationError("id", id, "is not a saved campaign (see list_campaigns)")
    return Campaign.from_json(row.spec)


def delete_campaign(ws: Core, id: str) -> None:
    """Delete the saved campaign ``id`` (its runs, ledger and events stay)."""
    with ws.state.write() as conn:
        conn.execute(L.campaigns_table.delete().where(L.campaigns_table.c.id == id))


def list_campaigns(ws: Core) -> pd.DataFrame:
    """Saved campaigns: id, name, channel, type, status, labels, runs, updated_at."""
    with ws.state.read() as conn:
        specs = conn.execute(
            sa.select(L.campaigns_table).order_by(L.campaigns_table.c.id)
        ).fetchall()
        nruns: dict[str, int] = dict(
            conn.execute(
                sa.select(L.runs.c.campaign_id, sa.func.count()).group_by(L.runs.c.campaign_id)
            ).fetchall()
        )
    rows = []
    for r in specs:
        c = Campaign.from_json(r.spec)
        rows.append(
            {
                "id": r.id,
                "name": c.name,
                "channel": r.channel,
                "type": r.type,
                "status": r.status,
                "labels": list(c.labels),
                "runs": int(nruns.get(r.id, 0)),
                "updated_at": r.updated_at,
            }
        )
    return pd.DataFrame(
        rows, columns=["id", "name", "channel", "type", "status", "labels", "runs", "updated_at"]
    )
