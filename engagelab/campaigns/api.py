"""The workspace-level campaign API (``Workspace.plan/send/...`` delegate here).

Example:
    >>> import tempfile, pandas as pd
    >>> from engagelab import Workspace
    >>> from engagelab.campaigns import Campaign, Variant
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = ws.ingest(pd.DataFrame({"user_id": ["a", "b", "c"], "email": ["a@x.io", None, "c@x.io"],
    ...                             "optout_email": [False, False, True]}), table="profiles", quiet=True)
    >>> c = Campaign(id="hello", channel="email", variants=(Variant("A", {"from": "shop@x.io", "subject": "Hi", "text": "Hello"}),))
    >>> p = plan(ws, c, "2026-03-02T09:00:00Z")
    >>> p.reasons()
    {'unreachable': 1, 'opted_out': 1}
    >>> r = send(ws, p, "hello-1")
    >>> r.sent, send(ws, p, "hello-1").already_sent
    (1, 1)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engagelab.campaigns.plan import _trigger_sql, check_templates, event_variables, plan
from engagelab.campaigns.report import campaign_report
from engagelab.campaigns.saved import (
    delete_campaign,
    list_campaigns,
    load_campaign,
    save_campaign,
)
from engagelab.campaigns.send import send
from engagelab.campaigns.spec import TRIGGER_TYPES, Campaign
from engagelab.errors import ValidationError
from engagelab.validate import check_datetime, check_str

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = [
    "campaign_report",
    "delete_campaign",
    "list_campaigns",
    "load_campaign",
    "plan",
    "preview",
    "recommended_delay",
    "save_campaign",
    "send",
    "trigger_event",
]


def preview(
    ws: Core,
    campaign: Campaign,
    user_id: str,
    variant: str | None = None,
    *,
    event: Mapping[str, Any] | None = None,
    at: Any = None,
) -> dict[str, Any]:
    """The real message ``user_id`` would get from ``campaign`` (rendered with their profile
    and, for triggered and inaction campaigns, the trigger event's properties).

    Args:
        ws: the workspace.
        campaign: the campaign.
        user_id: the user.
        variant: the variant to render (default: the user's assigned variant; the first
            one for control users).
        event: the trigger event's properties to render ``event.*`` with (default: those
            of the user's latest qualifying occurrence of the trigger event up to ``at``;
            none found means the templates' defaults apply).
        at: only occurrences at or before this instant count (default: all).

    Raises:
        ValidationError: an unknown user or variant, an unknown template variable, or a
            variable missing for this user without a default (names the field).
    """
    from engagelab.channels import preview as render_preview
    from engagelab.experiments import campaign_split

    check_str("user_id", user_id)
    if not isinstance(campaign, Campaign):
        raise ValidationError("campaign", type(campaign).__name__, "must be a Campaign")
    if event is not None and not isinstance(event, Mapping):
        raise ValidationError("event", event, "must be a mapping of event properties or None")
    hi = check_datetime("at", at, allow_none=True)
    check_templates(ws, campaign)
    prof = ws.sql("SELECT * FROM profiles WHERE user_id = $u", {"u": user_id})
    if prof.empty:
        raise ValidationError("user_id", user_id, "is not a user of this workspace")
    if variant is None:
        arm = campaign_split(
            [user_id],
            campaign.id,
            list(campaign.variant_names),
            campaign.weights,
            campaign.control_percent / 100.0,
        )[0]
        variant = arm if arm != "control" else campaign.variant_names[0]
    row: dict[str, Any] = {
        str(k): (None if isinstance(v, float) and v != v else v)
        for k, v in prof.iloc[0].to_dict().items()
    }
    if event is None and campaign.schedule.type in TRIGGER_TYPES and event_variables(campaign):
        event = trigger_event(ws, campaign, user_id, hi)
    content: Any = campaign.variant(variant).content  # validated channel Content
    out = render_preview(content, row, dict(event or {}))
    return {"variant": variant, **out}


def trigger_event(ws: Core, campaign: Campaign, user_id: str, at: Any = None) -> dict[str, Any]:
    """The properties (those ``campaign``'s templates read) of ``user_id``'s latest
    qualifying occurrence of the trigger event up to ``at``; ``{}`` when there is none."""
    import json

    if campaign.schedule.type not in TRIGGER_TYPES:
        raise ValidationError(
            "schedule.type", campaign.schedule.type, "must be 'triggered' or 'inaction'"
        )
    hi = check_datetime("at", at, allow_none=True)
    ev_cols = set(ws.engine.refresh().columns.get("events", {}))
    sql, params = _trigger_sql(campaign, ev_cols, None, hi, user_id=user_id)
    got = ws.sql(sql, params)
    if got.empty or got["event_properties"].iloc[0] is None:
        return {}
    return dict(json.loads(got["event_properties"].iloc[0]))


def recommended_delay(ws: Core, did: str, then: str, *, since: Any = None) -> dict[str, Any]:
    """Median and mean time from event ``did`` to the first following ``then`` (per
    occurrence of ``did`` that is followed by ``then``), for an inaction campaign's wait.

    Returns ``{"median": timedelta, "mean": timedelta, "pairs": int}``.
    """
    check_str("did", did)
    check_str("then", then)
    lo = check_datetime("since", since, allow_none=True)
    sql = (
        "SELECT epoch_us(min(b.ts) - a.ts) AS gap FROM events AS a JOIN events AS b "
        "ON b.user_id = a.user_id AND b.event = $b AND b.ts > a.ts "
        "WHERE a.event = $a"
        + (" AND a.ts >= $lo" if lo else "")
        + " GROUP BY a.user_id, a.ts, a.event_id"
    )
    params: dict[str, Any] = {"a": did, "b": then} | ({"lo": lo} if lo else {})
    gaps = ws.sql(sql, params)["gap"].to_numpy(dtype=np.float64)
    if gaps.size == 0:
        raise ValidationError("then", then, f"never follows {did!r} in the events")
    return {
        "median": dt.timedelta(microseconds=float(np.median(gaps))),
        "mean": dt.timedelta(microseconds=float(np.mean(gaps))),
        "pairs": int(gaps.size),
    }
