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
push_token             string                      mobile push token (push, in-app, inbox,
                                                   native display)
webpush_subscription   string                      browser push endpoint (web_push)
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

Internal columns start with an underscore (``_batch``) and are hidden from users'
queries.

The property columns of a workspace are typed once, the first time they are seen;
later batches whose values do not fit the recorded type are quarantined with the
reason ``wrong_type``.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "CHANNELS",
    "CHANNEL_DELIVERY",
    "CHANNEL_OPTOUT",
    "CHANNEL_REACH",
    "PULLED_CHANNELS",
    "REMARKETING_CHANNELS",
    "SENT_CHANNELS",
    "CONTROL_GROUP",
    "NOTIFICATION_CLICKED",
    "NOTIFICATION_DELIVERED",
    "NOTIFICATION_SENT",
    "NOTIFICATION_SUPPRESSED",
    "NOTIFICATION_VIEWED",
    "SYSTEM_EVENTS",
    "SYSTEM_EVENT_COLUMNS",
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

#: Which profile field makes a user reachable on a channel, and which opt-out applies.
CHANNEL_OPTOUT: dict[str, tuple[str, str | None]] = {
    "push": ("push_token", "optout_push"),
    "in_app": ("push_token", "optout_push"),
    "app_inbox": ("push_token", None),
    "native_display": ("push_token", None),
    "web_push": ("webpush_subscription", "optout_web_push"),
    "web_popup": ("user_id", None),
    "web_exit_intent": ("user_id", None),
    "email": ("email", "optout_email"),
    "sms": ("phone", "optout_sms"),
    "webhook": ("user_id", None),
}


#: Channels engagelab hands to a provider (push, e-mail, SMS, webhooks).
SENT_CHANNELS = ("push", "web_push", "email", "sms", "webhook")
#: Channels the app or site fetches from the client inbox.
PULLED_CHANNELS = ("in_app", "app_inbox", "native_display", "web_popup", "web_exit_intent")
#: Remarketing audiences: hashed identifier files for ad platforms.
REMARKETING_CHANNELS = ("facebook_audience", "google_ads")
#: Every channel, in the order the docs and menus list them.
CHANNELS = (*CHANNEL_OPTOUT, *REMARKETING_CHANNELS)
#: How each channel is delivered: ``sent``, ``pulled`` or ``export``.
CHANNEL_DELIVERY: dict[str, str] = {
    **{c: "sent" for c in SENT_CHANNELS},
    **{c: "pulled" for c in PULLED_CHANNELS},
    **{c: "export" for c in REMARKETING_CHANNELS},
}
#: The profile field that makes a user reachable, and the opt-out that applies, per
#: channel (remarketing audiences match on the hashed e-mail; phone is added when known).
CHANNEL_REACH: dict[str, tuple[str, str | None]] = {
    **CHANNEL_OPTOUT,
    **{c: ("email", None) for c in REMARKETING_CHANNELS},
}


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
