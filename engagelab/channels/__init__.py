"""Channels: content models, personalisation, previews and delivery providers.

Every channel has a content model (validated, frozen), a reachability rule (the profile
field that must be set and the opt-out that must not be) and a delivery mode:

* ``sent``: we deliver it (push, web push, e-mail, SMS, webhook) through a provider;
* ``pulled``: queued in the client inbox for the app or site to fetch (in-app, app inbox,
  native display, web pop-up, exit intent); see :func:`engagelab.delivery.inbox.inbox`;
* ``export``: remarketing audiences written as hashed-identifier files.

Templates read ``profile.<property>`` and ``event.<property>`` (see
:mod:`engagelab.channels._templates` for the sandbox rules).

Example:
    >>> c = content_from_dict("sms", {"text": "Hi {{ profile.name | default('there') }}, 10% off today"})
    >>> preview(c, {"user_id": "u1", "phone": "+4915112345678", "name": "Jörg"})["segments"]
    1
    >>> content_from_dict("sms", {"txt": "hi"})
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: sms.txt == 'hi', is not a sms field; use ['max_segments', 'sender_id', 'text']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engagelab.channels._base import CREDENTIAL_WORDS, Content, DisplayRules, check_no_credentials
from engagelab.channels._templates import TemplateError
from engagelab.channels.content import (
    AppInboxContent,
    EmailContent,
    FacebookAudienceContent,
    GoogleAdsContent,
    InAppContent,
    NativeDisplayContent,
    PushContent,
    SmsContent,
    WebExitIntentContent,
    WebhookContent,
    WebPopupContent,
    WebPushContent,
)
from engagelab.channels.sms import SmsInfo, sms_info
from engagelab.errors import ValidationError
from engagelab.schema import CHANNEL_DELIVERY, CHANNEL_REACH
from engagelab.validate import check_choice

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = [
    "CHANNELS",
    "CREDENTIAL_WORDS",
    "AppInboxContent",
    "ChannelInfo",
    "Content",
    "DisplayRules",
    "EmailContent",
    "FacebookAudienceContent",
    "GoogleAdsContent",
    "InAppContent",
    "NativeDisplayContent",
    "PushContent",
    "SmsContent",
    "SmsInfo",
    "TemplateError",
    "WebExitIntentContent",
    "WebPopupContent",
    "WebPushContent",
    "WebhookContent",
    "check_no_credentials",
    "content_from_dict",
    "known_variables",
    "preview",
    "sms_info",
]


@dataclass(frozen=True)
class ChannelInfo:
    """A channel: the profile field that makes a user reachable, the opt-out that applies,
    how it is delivered (``'sent'``, ``'pulled'`` or ``'export'``) and its content model."""

    name: str
    reach_field: str
    optout_field: str | None
    delivery: str
    content_cls: type[Content]


_CONTENT: dict[str, type[Content]] = {
    "push": PushContent,
    "in_app": InAppContent,
    "app_inbox": AppInboxContent,
    "native_display": NativeDisplayContent,
    "web_push": WebPushContent,
    "web_popup": WebPopupContent,
    "web_exit_intent": WebExitIntentContent,
    "email": EmailContent,
    "sms": SmsContent,
    "webhook": WebhookContent,
    "facebook_audience": FacebookAudienceContent,
    "google_ads": GoogleAdsContent,
}

#: Every channel by name.
CHANNELS: dict[str, ChannelInfo] = {
    name: ChannelInfo(
        name,
        CHANNEL_REACH[name][0],
        CHANNEL_REACH[name][1],
        CHANNEL_DELIVERY[name],
        cls,
    )
    for name, cls in _CONTENT.items()
}


def content_from_dict(channel: str, data: Any) -> Content:
    """The validated content of ``channel`` from a dict (or an existing Content)."""
    check_choice("channel", channel, list(CHANNELS))
    cls = CHANNELS[channel].content_cls
    if isinstance(data, Content):
        if not isinstance(data, cls) or data.channel != channel:
            raise ValidationError(
                "content", type(data).__name__, f"must be {cls.__name__} for {channel}"
            )
        return data
    return cls.from_dict(data)


def known_variables(ws: Core, *, event: bool = True) -> set[str]:
    """Qualified variables templates may use in ``ws``: ``profile.<column>`` and (when
    ``event``) ``event.<column>``, from the workspace's recorded columns."""
    from engagelab.schema import CORE_EVENT_COLUMNS, CORE_PROFILE_COLUMNS

    cols = ws.engine.refresh().columns
    out = {f"profile.{c}" for c in (*CORE_PROFILE_COLUMNS, *cols.get("profiles", {}))}
    if event:
        out |= {f"event.{c}" for c in (*CORE_EVENT_COLUMNS, *cols.get("events", {}))}
    return {v for v in out if not v.split(".", 1)[1].startswith("_")}


def preview(
    content: Content, profile: dict[str, Any], event: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The real message one user would get: rendered fields plus ``channel`` and ``to``.

    Raises:
        TemplateError: the user lacks a variable without a default (names the field).
    """
    info = CHANNELS[content.channel]
    out = content.render({"profile": dict(profile), "event": dict(event or {})})
    to = profile.get(info.reach_field)
    return {"channel": content.channel, "to": None if to is None else str(to), **out}
