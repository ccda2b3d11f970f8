"""The client inbox: pulled channels queue messages for the app or site to fetch.

In-app messages, app inbox, native display, web pop-ups and exit-intent pop-ups are not
pushed to the user; delivery stores them in the state-database table
``el_inbox_messages`` and the app asks :func:`inbox` for the user's live messages.

A message is live when it is available (its send time has come), not expired
(``ttl_seconds`` after the send time), not dismissed and not shown ``max_impressions``
times yet. Display rules narrow it further: a ``trigger_event`` message shows only when
the app reports that event, a message with ``pages`` only on a matching page URL
(``fnmatch`` patterns), an exit-intent pop-up (``web_exit_intent``) only when the site
reports an exit-intent signal (``exit_intent=True``: the visitor is about to leave).
``display.delay_seconds`` holds a message back: one without a trigger event shows from
``delay_seconds`` after its send time, one with a trigger event from ``delay_seconds``
after the reported event (``event_at``, default the fetch time: the app asks again once
the delay has passed). Fetching records an impression (atomically: two devices fetching
at once never show a message more than ``max_impressions`` times).

Example:
    >>> import tempfile, datetime as dt
    >>> from engagelab import Workspace
    >>> from engagelab.channels import InAppContent, preview
    >>> from engagelab.delivery.protocol import OutgoingMessage
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> c = InAppContent(title="Hi {{ profile.name }}", body="New in store")
    >>> t0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
    >>> m = OutgoingMessage("k1", "u1", "c1", "A", "in_app", "u1",
    ...                     preview(c, {"user_id": "u1", "name": "Ada"}), t0, (), None)
    >>> InboxProvider(ws, "in_app").deliver([m])[0].ok
    True
    >>> [x.payload["title"] for x in inbox(ws, "u1", now=t0)]   # max_impressions is 1
    ['Hi Ada']
    >>> len(inbox(ws, "u1", now=t0))
    0
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engagelab.delivery.protocol import DeliveryResult, OutgoingMessage
from engagelab.errors import ValidationError
from engagelab.storage.tables import inbox_messages
from engagelab.validate import check_datetime

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["InboxMessage", "InboxProvider", "InboxResult", "dismiss", "inbox", "inbox_messages"]


def _us(t: datetime) -> int:
    return int(t.astimezone(UTC).timestamp() * 1_000_000)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


class InboxProvider:
    """Stores pulled-channel messages in the client inbox (idempotent by message key)."""

    def __init__(self, ws: Core, channel: str = "in_app"):
        self.ws = ws
        self.channel = channel
        self.name = f"inbox:{channel}"

    def open(self) -> None:
        """Nothing to prepare: the inbox table is part of the state schema."""

    def close(self) -> None:
        """Nothing to release."""

    def deliver(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Queue the batch; a key already queued is left as it is (and reported ok)."""
        self.open()
        now = _us(datetime.now(UTC))
        rows = {m.key: self._row(m, now) for m in batch}
        for attempt in range(2):
            try:
                with self.ws.state.write() as conn:
                    have = set(
                        conn.execute(
                            sa.select(inbox_messages.c.key).where(
                                inbox_messages.c.key.in_(list(rows))
                            )
                        ).scalars()
                    )
                    new = [r for k, r in rows.items() if k not in have]
                    if new:
                        conn.execute(inbox_messages.insert(), new)
                break
            except sa.exc.IntegrityError:  # a concurrent delivery of the same key
                if attempt:
                    raise
        return [DeliveryResult(m.key, True, provider_id=m.key) for m in batch]

    @staticmethod
    def _row(m: OutgoingMessage, now: int) -> dict[str, Any]:
        p = dict(m.payload)
        display = p.get("display") or {}
        ttl = m.ttl_seconds if m.ttl_seconds is not None else p.get("ttl_seconds")
        start = _us(m.send_at)
        return {
            "key": m.key,
            "user_id": str(m.user_id),
            "channel": m.channel,
            "campaign_id": m.campaign_id,
            "variant": m.variant,
            "payload": json.dumps(p, default=str),
            "labels": json.dumps(list(m.labels)),
            "trigger_event": display.get("trigger_event"),
            "pages": json.dumps(list(display.get("pages") or [])),
            "max_impressions": display.get("max_impressions"),
            "impressions": 0,
            "available_at": start,
            "expires_at": None if ttl is None else start + int(ttl) * 1_000_000,
            "created_at": now,
        }


@dataclass(frozen=True)
class InboxMessage:
    """A live message as the app receives it."""

    key: str
    channel: str
    campaign_id: str
    variant: str | None
    payload: dict[str, Any]
    labels: tuple[str, ...]
    impressions: int
    max_impressions: int | None
    available_at: datetime
    expires_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (what an app endpoint would return)."""
        return {
            "key": self.key,
            "channel": self.channel,
            "campaign_id": self.campaign_id,
            "variant": self.variant,
            "payload": self.payload,
            "labels": list(self.labels),
            "impressions": self.impressions,
            "max_impressions": self.max_impressions,
            "available_at": self.available_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
        }


@dataclass(frozen=True)
class InboxResult:
    """The live messages of one user, newest first."""

    user_id: str
    messages: tuple[InboxMessage, ...]

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[InboxMessage]:
        return iter(self.messages)

    def __getitem__(self, i: int) -> InboxMessage:
        return self.messages[i]

    def to_pandas(self) -> Any:
        """One row per message; payload fields flattened as ``payload.<field>``."""
        import pandas as pd

        rows = []
        for m in self.messages:
            d = m.to_dict()
            payload = d.pop("payload")
            d.update({f"payload.{k}": v for k, v in payload.items()})
            rows.append(d)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        lines = [f"Inbox of {self.user_id!r}: {len(self.messages)} live message(s)"]
        for m in self.messages:
            title = m.payload.get("title", "")
            lines.append(f"  {m.channel:<16} {m.campaign_id:<20} {title!r}  seen {m.impressions}x")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        df = self.to_pandas()
        head = f"<p><b>Inbox</b> of <code>{self.user_id}</code>: {len(self)} live message(s)</p>"
        return head + (df.to_html(index=False) if len(df) else "")


#: The pulled channel shown only on the client's exit-intent signal.
_EXIT_INTENT = "web_exit_intent"


def _delay_us(payload: dict[str, Any]) -> int:
    """``display.delay_seconds`` of a queued payload, in microseconds (0 when absent)."""
    display = payload.get("display") or {}
    return int(display.get("delay_seconds") or 0) * 1_000_000


def inbox(
    ws: Core,
    user_id: str,
    now: Any = None,
    *,
    channel: str | Sequence[str] | None = None,
    event: str | None = None,
    event_at: Any = None,
    page: str | None = None,
    exit_intent: bool = False,
    record: bool = True,
) -> InboxResult:
    """The user's live messages, honouring TTL and display rules; records impressions.

    Args:
        ws: the workspace.
        user_id: whose messages.
        now: the fetch time (default now; naive is UTC).
        channel: only these pulled channels (default all).
        event: the event the app reports now (shows ``trigger_event`` messages for it).
        event_at: when ``event`` happened (default ``now``); a trigger message with
            ``display.delay_seconds`` shows from that long after it.
        page: the page URL the site shows now (matched against ``display.pages``).
        exit_intent: the site reports an exit-intent signal (the visitor is about to
            leave the page); exit-intent pop-ups show only then.
        record: count this fetch as an impression of every returned message.
    """
    t = _us(check_datetime("now", now if now is not None else datetime.now(UTC)))  # type: ignore[arg-type]
    if not isinstance(exit_intent, bool):
        raise ValidationError("exit_intent", exit_intent, "must be True or False")
    if event_at is not None and event is None:
        raise ValidationError("event_at", event_at, "needs the event it is the time of")
    ev_t = t if event_at is None else _us(check_datetime("event_at", event_at))
    if ev_t > t:
        raise ValidationError("event_at", event_at, "must not be after now")
    m = inbox_messages.c
    q = sa.select(inbox_messages).where(
        m.user_id == str(user_id),
        m.dismissed_at.is_(None),
        m.available_at <= t,
        sa.or_(m.expires_at.is_(None), m.expires_at > t),
        sa.or_(m.max_impressions.is_(None), m.impressions < m.max_impressions),
    )
    if channel is not None:
        q = q.where(m.channel.in_([channel] if isinstance(channel, str) else list(channel)))
    q = q.order_by(m.available_at.desc(), m.key)
    shown: list[InboxMessage] = []
    with ws.state.write() if record else ws.state.read() as conn:
        for r in conn.execute(q).mappings():
            if r["trigger_event"] and r["trigger_event"] != event:
                continue
            if r["channel"] == _EXIT_INTENT and not exit_intent:
                continue
            pages = json.loads(r["pages"] or "[]")
            if pages and (page is None or not any(fnmatch(page, p) for p in pages)):
                continue
            payload = json.loads(r["payload"])
            since = ev_t if r["trigger_event"] else r["available_at"]
            if since + _delay_us(payload) > t:
                continue
            n = r["impressions"]
            if record:
                done = conn.execute(
                    inbox_messages.update()
                    .where(
                        m.key == r["key"],
                        sa.or_(m.max_impressions.is_(None), m.impressions < m.max_impressions),
                    )
                    .values(impressions=m.impressions + 1, last_seen_at=t)
                ).rowcount
                if done != 1:
                    continue
                n += 1
            shown.append(
                InboxMessage(
                    r["key"],
                    r["channel"],
                    r["campaign_id"],
                    r["variant"],
                    payload,
                    tuple(json.loads(r["labels"])),
                    n,
                    r["max_impressions"],
                    _dt(r["available_at"]),  # type: ignore[arg-type]
                    _dt(r["expires_at"]),
                )
            )
    return InboxResult(str(user_id), tuple(shown))


def dismiss(ws: Core, user_id: str, key: str, now: Any = None) -> bool:
    """Mark a message dismissed by the user (it is not shown again); True if it existed."""
    t = _us(check_datetime("now", now if now is not None else datetime.now(UTC)))  # type: ignore[arg-type]
    with ws.state.write() as conn:
        n = conn.execute(
            inbox_messages.update()
            .where(inbox_messages.c.key == key, inbox_messages.c.user_id == str(user_id))
            .values(dismissed_at=t)
        ).rowcount
    return n == 1
