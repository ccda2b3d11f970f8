"""The workspace's data model: the ``profiles`` and ``events`` tables.

Both tables live as Parquet files in the workspace and are queried with SQL in the
DuckDB dialect under the relation names ``profiles`` and ``events``.

``profiles`` — one row per user (latest non-null value of each column wins when a
user appears in several ingested batches):

=====================  ==========================  ====================================
column                 type                        meaning
=====================  ==========================  ====================================
user_id                string, required            stable user identifier
email                  string                      e-mail address (email channel)
phone                  string                      E.164 phone number (sms channel)
push_token             string                      mobile push token (push)
webpush_subscription   string                      browser push endpoint (web_push)
app_install_id         string                      the app's install identity, set by the app
                                                   SDK when the user has the mobile app
                                                   (in-app, app inbox, native display)
web_visitor_id         string                      the website's visitor identity (the web
                                                   SDK's cookie id): a web user (web pop-up,
                                                   exit intent)
optout_email           bool                        opted out of e-mail
optout_sms             bool                        opted out of SMS
optout_push            bool                        opted out of mobile push
optout_web_push        bool                        opted out of web push
timezone               string                      IANA time zone, e.g. 'Europe/Berlin'
latitude, longitude    float64                     last known location (degrees)
created_at             timestamp (UTC)             when the profile was created
(any other column)     string/int64/float64/bool/  arbitrary user properties (name, city,
                       timestamp                   plan, ...)
=====================  ==========================  ====================================

Documented optional properties (ordinary property columns that engagelab reads when present):

=====================  ==========================  ====================================
ad_consent             bool                        consented to ads matched on their
                                                   identifiers; only ``true`` puts a user
                                                   in a remarketing audience (missing or
                                                   null counts as no consent)
unsubscribed           bool                        unsubscribed from all marketing; kept
                                                   out of remarketing audiences
first_name, last_name  string                      hashed as FN/LN (Meta) and First/Last
                                                   Name (Google) when an audience asks
=====================  ==========================  ====================================

``events`` — one row per event, append-only:

=====================  ==========================  ====================================
user_id                string, required            who did it
event                  string, required            event name, e.g. 'App Launched',
                                                   'Charged', 'Notification Sent'
ts                     timestamp (UTC), required   when it happened (microseconds)
event_id               string                      optional unique id (deduplicated)
(any other column)     string/int64/float64/bool/  event properties, e.g. ``revenue``,
                       timestamp/list<string>      ``product``, ``url``, ``labels``
=====================  ==========================  ====================================

How each channel reaches a user is :data:`REACH_RULES` (one table; see
:class:`ReachRule`). A workspace whose data has no ``app_install_id`` (or
``web_visitor_id``) still reaches in-app (web pop-up) users through the fallback field of
the rule: a push token (web push subscription) is only issued to an installed app (a
visiting browser), so it proves one.

Internal columns start with an underscore (``_batch``) and are hidden from users'
queries.

The property columns of a workspace are typed once, the first time they are seen;
later batches whose values do not fit the recorded type are quarantined with the
reason ``wrong_type``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "AD_CONSENT",
    "AUDIENCE_OPTOUTS",
    "CHANNELS",
    "CHANNEL_DELIVERY",
    "CHANNEL_OPTOUT",
    "CHANNEL_REACH",
    "PULLED_CHANNELS",
    "REACH_RULES",
    "ReachRule",
    "REMARKETING_CHANNELS",
    "SENT_CHANNELS",
    "CONTROL_GROUP",
    "NOTIFICATION_CLICKED",
    "NOTIFICATION_DELIVERED",
    "NOTIFICATION_SENT",
    "NOTIFICATION_SUPPRESSED",
    "NOTIFICATION_VIEWED",
    "PRE_ASSIGNMENT_REASONS",
    "SYSTEM_EVENTS",
    "SYSTEM_EVENT_COLUMNS",
    "UNSUBSCRIBED",
    "CORE_EVENT_COLUMNS",
    "CORE_PROFILE_COLUMNS",
    "EVENT_SCHEMA",
    "PROFILE_SCHEMA",
    "PROPERTY_TYPES",
    "TS_TYPE",
]

TS_TYPE = pa.timestamp("us", tz="UTC")

PROFILE_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("email", pa.string()),
        pa.field("phone", pa.string()),
        pa.field("push_token", pa.string()),
        pa.field("webpush_subscription", pa.string()),
        pa.field("app_install_id", pa.string()),
        pa.field("web_visitor_id", pa.string()),
        pa.field("optout_email", pa.bool_()),
        pa.field("optout_sms", pa.bool_()),
        pa.field("optout_push", pa.bool_()),
        pa.field("optout_web_push", pa.bool_()),
        pa.field("timezone", pa.string()),
        pa.field("latitude", pa.float64()),
        pa.field("longitude", pa.float64()),
        pa.field("created_at", TS_TYPE),
    ]
)

EVENT_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("event_id", pa.string()),
    ]
)

CORE_PROFILE_COLUMNS = tuple(PROFILE_SCHEMA.names)
CORE_EVENT_COLUMNS = tuple(EVENT_SCHEMA.names)

#: Types a user-defined property column may have, by their short name.
PROPERTY_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": TS_TYPE,
    "list<string>": pa.list_(pa.string()),
}


@dataclass(frozen=True)
class ReachRule:
    """How a channel reaches a user.

    Attributes:
        fields: profile fields, in order; a user with any of them set (not blank) is
            reachable, and the first one set is the message's address (``to``).
            ``user_id`` means every user of the audience is reachable.
        optout: the opt-out flag that blocks the channel (None: no opt-out applies).
        rule: the rule in words (the README's channel table).
    """

    fields: tuple[str, ...]
    optout: str | None
    rule: str

    @property
    def field(self) -> str:
        """The primary reach field (the first of :attr:`fields`)."""
        return self.fields[0]


_APP = "users of the mobile app (an install; a push token proves one too), push opt-out or not"
_WEB = "web users (a visitor of the site; a web push subscription proves one too)"
#: The one table of channel reach: per channel, what makes a user reachable and which
#: opt-out blocks it (remarketing audiences match on the hashed e-mail, or the content's
#: ``identifiers``). The README's channel table documents it.
REACH_RULES: dict[str, ReachRule] = {
    "push": ReachRule(("push_token",), "optout_push", "devices with a push token"),
    "in_app": ReachRule(("app_install_id", "push_token"), None, _APP + ", while in the app"),
    "app_inbox": ReachRule(("app_install_id", "push_token"), None, _APP + ", in the app's inbox"),
    "native_display": ReachRule(
        ("app_install_id", "push_token"), None, _APP + ", in the app's own views"
    ),
    "web_push": ReachRule(
        ("webpush_subscription",), "optout_web_push", "browsers subscribed to web push"
    ),
    "web_popup": ReachRule(("web_visitor_id", "webpush_subscription"), None, _WEB),
    "web_exit_intent": ReachRule(
        ("web_visitor_id", "webpush_subscription"),
        None,
        _WEB + ", only when the site reports an exit-intent signal",
    ),
    "email": ReachRule(("email",), "optout_email", "users with an e-mail address"),
    "sms": ReachRule(("phone",), "optout_sms", "users with a phone number"),
    "webhook": ReachRule(("user_id",), None, "every user (the receiving system decides)"),
    "facebook_audience": ReachRule(
        ("email",), None, "hashed e-mail (or the content's identifiers: e-mail and/or phone)"
    ),
    "google_ads": ReachRule(
        ("email",), None, "hashed e-mail (or the content's identifiers: e-mail and/or phone)"
    ),
}

#: Channels engagelab hands to a provider (push, e-mail, SMS, webhooks).
SENT_CHANNELS = ("push", "web_push", "email", "sms", "webhook")
#: Channels the app or site fetches from the client inbox.
PULLED_CHANNELS = ("in_app", "app_inbox", "native_display", "web_popup", "web_exit_intent")
#: Remarketing audiences: hashed identifier files for ad platforms.
REMARKETING_CHANNELS = ("facebook_audience", "google_ads")
#: (primary reach field, opt-out) of the message channels, from :data:`REACH_RULES`.
CHANNEL_OPTOUT: dict[str, tuple[str, str | None]] = {
    c: (r.field, r.optout) for c, r in REACH_RULES.items() if c not in REMARKETING_CHANNELS
}
#: Every channel, in the order the docs and menus list them.
CHANNELS = tuple(REACH_RULES)
#: How each channel is delivered: ``sent``, ``pulled`` or ``export``.
CHANNEL_DELIVERY: dict[str, str] = {
    **{c: "sent" for c in SENT_CHANNELS},
    **{c: "pulled" for c in PULLED_CHANNELS},
    **{c: "export" for c in REMARKETING_CHANNELS},
}
#: (primary reach field, opt-out) of every channel, from :data:`REACH_RULES`.
CHANNEL_REACH: dict[str, tuple[str, str | None]] = {
    c: (r.field, r.optout) for c, r in REACH_RULES.items()
}


#: The profile property that must be ``true`` for a user to enter a remarketing audience.
AD_CONSENT = "ad_consent"
#: Profile flags any of which keeps a user out of a remarketing audience.
AUDIENCE_OPTOUTS = ("optout_email", "unsubscribed")


# --------------------------------------------------------------------------- system events
#: Appended by delivery for every message sent (carries the campaign's labels).
NOTIFICATION_SENT = "Notification Sent"
#: Answers to sent messages (the simulator or real callbacks append them).
NOTIFICATION_DELIVERED = "Notification Delivered"
NOTIFICATION_VIEWED = "Notification Viewed"
NOTIFICATION_CLICKED = "Notification Clicked"
#: A user held out by a campaign's control group or the global control group; ``ts`` is
#: when the message would have been sent.
CONTROL_GROUP = "Control Group"
#: A user of the audience who was not sent; ``reason`` says why (a reason code).
NOTIFICATION_SUPPRESSED = "Notification Suppressed"
#: Suppression reasons decided before the control groups are drawn (eligibility): a user
#: suppressed for one of these is in no arm; every other reason is a user assigned to a
#: sent arm and suppressed after assignment (intention-to-treat counts them as treated).
PRE_ASSIGNMENT_REASONS = ("opted_out", "no_ad_consent", "unreachable")

#: A user's unsubscribe (an unsubscribe link, a STOP reply), ingested like any event: its
#: ``channel`` property names the channel it applies to (null or absent: every channel).
#: Planning counts it as ``opted_out`` and the dispatcher checks it again at release.
UNSUBSCRIBED = "Unsubscribed"

SYSTEM_EVENTS = (
    NOTIFICATION_SENT,
    NOTIFICATION_DELIVERED,
    NOTIFICATION_VIEWED,
    NOTIFICATION_CLICKED,
    CONTROL_GROUP,
    NOTIFICATION_SUPPRESSED,
)

#: Event property columns carried by system events (all nullable on other events).
SYSTEM_EVENT_COLUMNS: dict[str, pa.DataType] = {
    "campaign_id": pa.string(),
    "variant": pa.string(),
    "channel": pa.string(),
    "labels": pa.list_(pa.string()),
    "message_key": pa.string(),
    "control_group": pa.string(),  # 'campaign' | 'global' on Control Group events
    "reason": pa.string(),  # suppression reason code on Notification Suppressed events
}
