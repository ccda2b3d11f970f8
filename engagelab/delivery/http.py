"""Delivery over HTTP (httpx): webhooks, and push / SMS / e-mail gateways with a JSON API.

Every request carries the message key as its ``Idempotency-Key`` header, so a provider
that deduplicates by it (as payment and messaging APIs do) processes a message once even
when we send it again: after a timeout, a dropped connection, or a rerun that found the
message in doubt.

* ``webhook``: the rendered content says where: ``url``, ``method``, ``headers`` and the
  JSON ``body``.
* any other channel: a JSON envelope (key, user, campaign, variant, channel, ``to``,
  ``payload``, send time, labels, TTL) is POSTed to the configured ``url``.

Retries: connection errors, timeouts, 408, 429 and 5xx answers are retried up to
``retries`` times with exponential backoff (``backoff * 2**n`` seconds, capped at
``backoff_max``, with equal jitter: a random half of it is added to the other half).
A ``Retry-After`` answer (seconds or an HTTP date) is respected, up to
``max_retry_after``. Other 4xx answers are permanent failures and are not retried.

Credentials: ``token`` (sent as ``Authorization: Bearer``) and ``headers`` come from the
environment (``ENGAGELAB_HTTP_TOKEN``) or ``engagelab.yaml``, never from the content.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from engagelab.delivery.protocol import DeliveryResult, OutgoingMessage
from engagelab.errors import ValidationError
from engagelab.validate import check_int, check_number

__all__ = ["HttpProvider", "backoff_delay", "retry_after_seconds"]

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): equal-jitter exponential backoff.

    >>> d = backoff_delay(3, 0.5, 30.0)
    >>> 1.0 <= d <= 2.0
    True
    """
    d = min(cap, base * 2 ** (attempt - 1))
    return d / 2 + (rng or random).uniform(0, d / 2)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None.

    >>> retry_after_seconds("3"), retry_after_seconds("soon")
    (3.0, None)
    >>> retry_after_seconds("Sun, 01 Mar 2026 09:00:10 GMT", datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    10.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _num(name: str, value: Any, *, integer: bool = False, low: float = 0) -> Any:
    try:
        v = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ValidationError(name, value, "must be a number") from None
    return check_int(name, v, low=int(low)) if integer else check_number(name, v, low=low)


class HttpProvider:
    """Delivers messages by HTTP with idempotency keys, timeouts and retries."""

    name = "http"

    def __init__(
        self,
        channel: str = "webhook",
        url: str | None = None,
        method: str = "POST",
        timeout: float | str = 10.0,
        retries: int | str = 4,
        backoff: float | str = 0.5,
        backoff_max: float | str = 30.0,
        max_retry_after: float | str = 60.0,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        concurrency: int | str = 4,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        self.channel = channel
        if channel != "webhook" and not url:
            raise ValidationError(
                f"providers.{channel}.url",
                url,
                "is required for an http provider (set it in engagelab.yaml or "
                f"ENGAGELAB_{channel.upper()}_URL)",
            )
        self.url = url
        self.method = method
        self.timeout = _num("http.timeout", timeout, low=0.001)
        self.retries = _num("http.retries", retries, integer=True)
        self.backoff = _num("http.backoff", backoff)
        self.backoff_max = _num("http.backoff_max", backoff_max)
        self.max_retry_after = _num("http.max_retry_after", max_retry_after)
        self.concurrency = _num("http.concurrency", concurrency, integer=True, low=1)
        self._headers = dict(headers or {})
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._verify = (
            verify if isinstance(verify, bool) else str(verify).lower() not in ("0", "false", "no")
        )
        self._sleep = sleep
        self._transport = transport
        self._client: httpx.Client | None = None
        #: attempts made per key (first try included), for inspection
        self.attempts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"HttpProvider(channel={self.channel!r}, url={self.url!r}, retries={self.retries})"

    def open(self) -> None:
        """Create the connection pool."""
        if self._client is None:
            self._client = httpx.Client(
                timeout=self.timeout,
                verify=self._verify,
                transport=self._transport,
                headers={"User-Agent": "engagelab", **self._headers},
            )

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def request_of(self, m: OutgoingMessage) -> tuple[str, str, dict[str, str], Any]:
        """(method, url, headers, JSON body) of one message."""
        headers = {"Idempotency-Key": m.key}
        if self.channel == "webhook":
            p = m.payload
            headers.update(p.get("headers") or {})
            return p.get("method", "POST"), p["url"], headers, p.get("body")
        body = {
            "key": m.key,
            "user_id": m.user_id,
            "campaign_id": m.campaign_id,
            "variant": m.variant,
            "channel": m.channel,
            "to": m.to,
            "payload": m.payload,
            "send_at": m.send_at.isoformat(),
            "labels": list(m.labels),
            "ttl_seconds": m.ttl_seconds,
        }
        return self.method, str(self.url), headers, body

    def deliver(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Send the batch (``concurrency`` requests at a time); one result per message."""
        self.open()
        if self.concurrency == 1 or len(batch) <= 1:
            return [self._send(m) for m in batch]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._send, batch))

    def _send(self, m: OutgoingMessage) -> DeliveryResult:
        assert self._client is not None
        try:
            method, url, headers, body = self.request_of(m)
            content = None if body is None else json.dumps(body).encode()
        except (KeyError, TypeError, ValueError) as exc:
            return DeliveryResult(m.key, False, True, error=f"bad payload: {exc}")
        if content is not None:
            headers = {"Content-Type": "application/json", **headers}
        error = ""
        for attempt in range(self.retries + 1):
            self.attempts[m.key] = attempt + 1
            wait = None
            try:
                r = self._client.request(method, url, headers=headers, content=content)
            except httpx.TimeoutException as exc:
                error = f"timeout after {self.timeout:g} s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= r.status_code < 300:
                    return DeliveryResult(m.key, True, provider_id=_provider_id(r, m.key))
                error = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code not in RETRY_STATUS:
                    return DeliveryResult(m.key, False, True, error=error)
                wait = retry_after_seconds(r.headers.get("Retry-After"))
            if attempt == self.retries:
                break
            delay = backoff_delay(attempt + 1, self.backoff, self.backoff_max)
            if wait is not None:
                delay = max(delay, min(wait, self.max_retry_after))
            self._sleep(delay)
        return DeliveryResult(
            m.key, False, False, error=f"{error} (gave up after {self.retries + 1} attempts)"
        )


def _provider_id(r: httpx.Response, key: str) -> str:
    try:
        data = r.json()
    except ValueError:
        return key
    if isinstance(data, Mapping):
        for k in ("id", "message_id", "messageId", "sid"):
            if data.get(k):
                return str(data[k])
    return key
