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

from engagelab.campaigns.api import (
    campaign_report,
    delete_campaign,
    list_campaigns,
    load_campaign,
    plan,
    preview,
    recommended_delay,
    save_campaign,
    send,
    trigger_event,
)
from engagelab.campaigns.global_control import get_global_control, set_global_control
from engagelab.campaigns.options import (
    DND,
    Delivery,
    FrequencyCap,
    check_send_times,
    register_send_time_policy,
)
from engagelab.campaigns.plan import REASONS
from engagelab.campaigns.report import CampaignReport
from engagelab.campaigns.result import Plan, SendResult
from engagelab.campaigns.spec import Campaign, Goal, Schedule, Variant, WinnerTest
from engagelab.delivery.outbox import OutboxProvider, read_outbox
from engagelab.delivery.protocol import DeliveryResult, OutgoingMessage, Provider

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
    "list_campaigns",
    "load_campaign",
    "plan",
    "preview",
    "read_outbox",
    "recommended_delay",
    "register_send_time_policy",
    "save_campaign",
    "send",
    "set_global_control",
    "trigger_event",
]
