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

from __future__ import annotations

from typing import TYPE_CHECKING

from engagelab.exports import lazy_exports

if TYPE_CHECKING:
    from engagelab.campaigns.api import (
        campaign_report,
        plan,
        preview,
        recommended_delay,
        send,
        trigger_event,
    )
    from engagelab.campaigns.dispatch import Dispatcher
    from engagelab.campaigns.global_control import (
        GlobalControlWarning,
        get_global_control,
        set_global_control,
    )
    from engagelab.campaigns.global_report import GlobalControlReport, global_control_report
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
    from engagelab.campaigns.saved import (
        delete_campaign,
        list_campaigns,
        load_campaign,
        save_campaign,
    )
    from engagelab.campaigns.spec import Campaign, Goal, Schedule, Variant, WinnerTest
    from engagelab.delivery.dispatcher import DispatchResult
    from engagelab.delivery.outbox import OutboxProvider, read_outbox
    from engagelab.delivery.protocol import DeliveryResult, OutgoingMessage, Provider

#: Exported names, imported from their modules on first use.
_EXPORTS = {
    "Campaign": "engagelab.campaigns.spec",
    "CampaignReport": "engagelab.campaigns.report",
    "DND": "engagelab.campaigns.options",
    "DispatchResult": "engagelab.delivery.dispatcher",
    "Dispatcher": "engagelab.campaigns.dispatch",
    "Delivery": "engagelab.campaigns.options",
    "DeliveryResult": "engagelab.delivery.protocol",
    "FrequencyCap": "engagelab.campaigns.options",
    "Goal": "engagelab.campaigns.spec",
    "OutboxProvider": "engagelab.delivery.outbox",
    "OutgoingMessage": "engagelab.delivery.protocol",
    "Plan": "engagelab.campaigns.result",
    "Provider": "engagelab.delivery.protocol",
    "REASONS": "engagelab.campaigns.plan",
    "Schedule": "engagelab.campaigns.spec",
    "SendResult": "engagelab.campaigns.result",
    "Variant": "engagelab.campaigns.spec",
    "WinnerTest": "engagelab.campaigns.spec",
    "campaign_report": "engagelab.campaigns.api",
    "check_send_times": "engagelab.campaigns.options",
    "delete_campaign": "engagelab.campaigns.saved",
    "get_global_control": "engagelab.campaigns.global_control",
    "global_control_report": "engagelab.campaigns.global_report",
    "GlobalControlReport": "engagelab.campaigns.global_report",
    "GlobalControlWarning": "engagelab.campaigns.global_control",
    "list_campaigns": "engagelab.campaigns.saved",
    "load_campaign": "engagelab.campaigns.saved",
    "plan": "engagelab.campaigns.api",
    "preview": "engagelab.campaigns.api",
    "read_outbox": "engagelab.delivery.outbox",
    "recommended_delay": "engagelab.campaigns.api",
    "register_send_time_policy": "engagelab.campaigns.options",
    "save_campaign": "engagelab.campaigns.saved",
    "send": "engagelab.campaigns.api",
    "set_global_control": "engagelab.campaigns.global_control",
    "trigger_event": "engagelab.campaigns.api",
}

__all__ = [
    "DND",
    "DispatchResult",
    "Dispatcher",
    "REASONS",
    "Campaign",
    "CampaignReport",
    "Delivery",
    "DeliveryResult",
    "FrequencyCap",
    "GlobalControlReport",
    "GlobalControlWarning",
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
    "global_control_report",
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
