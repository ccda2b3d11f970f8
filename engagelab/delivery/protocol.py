"""The delivery protocol: what a provider is handed and what it answers.

A provider delivers :class:`OutgoingMessage` batches idempotently by message key and
answers one :class:`DeliveryResult` per message (``permanent`` failures are not retried).
Bulk providers take a columnar :class:`MessageBatch` and answer a :class:`BatchResult`.
Which provider serves a channel is decided by :mod:`engagelab.delivery.registry`.

A provider without idempotency by key (SMTP) may have a ``progress`` attribute (None by
default): the sender sets it to a callable and the provider calls ``progress(key,
"handed")`` just before a message is committed and ``progress(key, "sent")`` once it was
accepted, so each message is recorded as it goes (see :mod:`engagelab.campaigns.send`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np

from engagelab.errors import ValidationError

__all__ = [
    "BatchResult",
    "DeliveryResult",
    "MessageBatch",
    "OutgoingMessage",
    "Provider",
    "deliver_batch",
]


@dataclass(frozen=True)
class OutgoingMessage:
    """One message handed to a provider; ``key`` is its effectively-once identity."""

    key: str
    user_id: str
    campaign_id: str
    variant: str | None
    channel: str
    to: str | None
    payload: dict[str, Any]
    send_at: datetime
    labels: tuple[str, ...]
    ttl_seconds: int | None


@dataclass(frozen=True)
class DeliveryResult:
    """The provider's answer for one message key."""

    key: str
    ok: bool
    permanent: bool = False
    provider_id: str | None = None
    error: str | None = None


_US = 1_000_000


def _us(t: datetime) -> int:
    """Microseconds since the epoch (a naive datetime is taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    d = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (d.days * 86400 + d.seconds) * _US + d.microseconds


@dataclass(frozen=True, eq=False)
class MessageBatch:
    """A batch of messages as columns, for providers that deliver in bulk.

    Row ``i`` is one message; its payload is ``payloads[payload_index[i]]`` (the static
    content of a variant is one shared payload, so a bulk provider encodes it once).
    Campaign, channel, labels and TTL are the same for every message of a batch.

    Example:
        >>> b = MessageBatch.from_messages([
        ...     OutgoingMessage("k1", "u1", "c1", "A", "push", None, {"title": "Hi"},
        ...                     datetime(2026, 1, 1, tzinfo=UTC), ("Promo",), None)])
        >>> len(b), b.payloads[b.payload_index[0]], b.messages()[0].send_at.isoformat()
        (1, {'title': 'Hi'}, '2026-01-01T00:00:00+00:00')
    """

    key: np.ndarray  #: message keys (str)
    user_id: np.ndarray
    variant: np.ndarray
    to: np.ndarray  #: addresses (None where the channel has none)
    send_us: np.ndarray  #: int64 microseconds since the epoch, UTC
    payload_index: np.ndarray  #: intp, into ``payloads``
    payloads: Sequence[dict[str, Any]]
    campaign_id: str
    channel: str
    labels: tuple[str, ...]
    ttl_seconds: int | None

    def __len__(self) -> int:
        return len(self.key)

    def take(self, idx: np.ndarray | slice) -> MessageBatch:
        """The messages at positions (or boolean mask) ``idx``."""
        cols = ("key", "user_id", "variant", "to", "send_us", "payload_index")
        parts = {c: getattr(self, c)[idx] for c in cols}
        return MessageBatch(
            **parts,
            payloads=self.payloads,
            campaign_id=self.campaign_id,
            channel=self.channel,
            labels=self.labels,
            ttl_seconds=self.ttl_seconds,
        )

    def messages(self) -> list[OutgoingMessage]:
        """One :class:`OutgoingMessage` per row (for providers that send one at a time)."""
        import pandas as pd

        when = pd.to_datetime(self.send_us, unit="us", utc=True).to_pydatetime()
        pay = self.payloads
        return [
            OutgoingMessage(k, u, self.campaign_id, v, self.channel, to, pay[i], t,
                            self.labels, self.ttl_seconds)
            for k, u, v, to, i, t in zip(
                self.key, self.user_id, self.variant, self.to, self.payload_index.tolist(),
                when, strict=True,
            )
        ]  # fmt: skip

    @classmethod
    def from_messages(cls, msgs: Sequence[OutgoingMessage]) -> MessageBatch:
        """A batch of messages that share campaign, channel, labels and TTL."""
        if not msgs:
            e = np.array([], dtype=object)
            return cls(e, e, e, e, np.array([], np.int64), np.array([], np.intp), [], "", "",
                       (), None)  # fmt: skip
        m0 = msgs[0]
        for m in msgs:
            for f in ("campaign_id", "channel", "labels", "ttl_seconds"):
                if getattr(m, f) != getattr(m0, f):
                    raise ValidationError(
                        f"batch.{f}", getattr(m, f), f"must be the same for every message "
                        f"of a batch ({getattr(m0, f)!r})",
                    )  # fmt: skip

        def col(name: str) -> np.ndarray:
            out = np.empty(len(msgs), dtype=object)
            out[:] = [getattr(m, name) for m in msgs]
            return out

        return cls(
            col("key"), col("user_id"), col("variant"), col("to"),
            np.array([_us(m.send_at) for m in msgs], dtype=np.int64),
            np.arange(len(msgs), dtype=np.intp), [m.payload for m in msgs],
            m0.campaign_id, m0.channel, tuple(m0.labels), m0.ttl_seconds,
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class BatchResult:
    """The provider's answers for a :class:`MessageBatch`, as columns in batch order.

    ``provider_id`` / ``error`` are ``None`` when no message has one (a provider id of
    ``None`` means the message key itself).
    """

    ok: np.ndarray  #: bool
    permanent: np.ndarray  #: bool (only meaningful where not ok)
    provider_id: np.ndarray | None = None
    error: np.ndarray | None = None

    @classmethod
    def all_ok(cls, n: int) -> BatchResult:
        return cls(np.ones(n, dtype=bool), np.zeros(n, dtype=bool))

    @classmethod
    def from_results(cls, keys: np.ndarray, results: Sequence[DeliveryResult]) -> BatchResult:
        """Columns of per-message results, matched to ``keys`` by message key."""
        byk = {r.key: r for r in results}
        missing = [k for k in keys if k not in byk]
        if missing:
            raise ValidationError(
                "provider results", f"{len(missing)} keys", f"lack an answer (e.g. {missing[0]!r})"
            )
        rs = [byk[k] for k in keys]
        n = len(rs)
        pid = np.empty(n, dtype=object)
        err = np.empty(n, dtype=object)
        pid[:] = [r.provider_id for r in rs]
        err[:] = [r.error for r in rs]
        return cls(
            np.fromiter((r.ok for r in rs), bool, n),
            np.fromiter((r.permanent for r in rs), bool, n),
            pid,
            err,
        )

    def merge(self, idx: np.ndarray, other: BatchResult) -> BatchResult:
        """These results with positions ``idx`` replaced by ``other`` (a retry's answers)."""
        n = len(self.ok)
        ok, perm = self.ok.copy(), self.permanent.copy()
        ok[idx], perm[idx] = other.ok, other.permanent
        cols: list[np.ndarray | None] = []
        for mine, theirs in ((self.provider_id, other.provider_id), (self.error, other.error)):
            if mine is None and theirs is None:
                cols.append(None)
                continue
            col = np.empty(n, dtype=object) if mine is None else mine.copy()
            col[idx] = None if theirs is None else theirs
            cols.append(col)
        return BatchResult(ok, perm, cols[0], cols[1])


def _defined_in(cls: type, name: str) -> type | None:
    return next((k for k in cls.__mro__ if name in vars(k)), None)


def deliver_batch(provider: Any, batch: MessageBatch) -> BatchResult:
    """Deliver ``batch`` through ``provider``: its ``deliver_batch`` (bulk, columnar) when it
    has one that is not shadowed by a subclass's ``deliver``, else ``deliver`` per message."""
    bulk = _defined_in(type(provider), "deliver_batch")
    single = _defined_in(type(provider), "deliver")
    if bulk is not None and (single is None or issubclass(bulk, single)):
        res: BatchResult = provider.deliver_batch(batch)
        if len(res.ok) != len(batch):
            raise ValidationError(
                "provider results", len(res.ok), f"must answer every message ({len(batch)})"
            )
        return res
    return BatchResult.from_results(batch.key, provider.deliver(batch.messages()))


@runtime_checkable
class Provider(Protocol):
    """Something that delivers messages, idempotently by ``OutgoingMessage.key``."""

    name: str

    def open(self) -> None: ...

    def deliver(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]: ...

    def close(self) -> None: ...
