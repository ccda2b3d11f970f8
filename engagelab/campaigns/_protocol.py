"""The delivery protocol between campaigns and providers: messages, results, providers.

``engagelab.channels.providers`` exports the same names once the channels module lands;
campaigns import them from there when available (see :mod:`engagelab.campaigns.outbox`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = ["DeliveryResult", "OutgoingMessage", "Provider"]


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


@runtime_checkable
class Provider(Protocol):
    """Something that delivers messages, idempotently by ``OutgoingMessage.key``."""

    name: str

    def open(self) -> None: ...

    def deliver(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]: ...

    def close(self) -> None: ...
