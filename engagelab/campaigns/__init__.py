"""Campaigns: spec → plan (the dry run) → effectively-once send → system events → report.

Example:
    >>> from engagelab.campaigns import Campaign, Variant, Schedule, Delivery, FrequencyCap
    >>> c = Campaign(id="spring", channel="push",
    ...              variants=[Variant(n, {"title": "Sale", "body": n}) for n in "ABCDEFGH"],
    ...              schedule=Schedule("recurring", cron="0 9 * * 1", timezone="Europe/Berlin"),
    ...              delivery=Delivery(caps=(FrequencyCap(max=3, window=7, unit="days"),)))
    >>> len(c.variant_names), c.schedule.type
    (8, 'recurring')
"""

from typing import Any

from engagelab.errors import ValidationError


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValidationError(name, value, f"must be an integer >= {low}")
    return value


from engagelab.campaigns._options import (  # noqa: E402
    DND,
    Delivery,
    FrequencyCap,
    check_send_times,
    register_send_time_policy,
)
from engagelab.campaigns.api import (  # noqa: E402
    campaign_report,
    delete_campaign,
    inbox,
    list_campaigns,
    load_campaign,
    plan,
    preview,
    recommended_delay,
    respond,
    save_campaign,
    send,
    trigger_event,
)
from engagelab.campaigns.ledger import get_global_control, set_global_control  # noqa: E402
from engagelab.campaigns.outbox import OutboxProvider, read_outbox  # noqa: E402
from engagelab.campaigns.plan import REASONS  # noqa: E402
from engagelab.campaigns.report import CampaignReport  # noqa: E402
from engagelab.campaigns.result import Plan, SendResult  # noqa: E402
from engagelab.campaigns.spec import Campaign, Goal, Schedule, Variant, WinnerTest  # noqa: E402
from engagelab.channels.providers import DeliveryResult, OutgoingMessage, Provider  # noqa: E402

__all__ = [
    "DND",
    "REASONS",
    "Campaign",
    "CampaignReport",
    "Delivery",
    "DeliveryResult",
    "FrequencyCap",
    "Goal",
    "OutboxProvider",
    "OutgoingMessage",
    "Plan",
    "Provider",
    "Schedule",
    "SendResult",
    "Variant",
    "WinnerTest",
    "campaign_report",
    "check_send_times",
    "delete_campaign",
    "get_global_control",
    "inbox",
    "list_campaigns",
    "load_campaign",
    "plan",
    "preview",
    "read_outbox",
    "recommended_delay",
    "register_send_time_policy",
    "respond",
    "save_campaign",
    "send",
    "set_global_control",
    "trigger_event",
]
