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
A ``Retry-After`` answer (seconds or an HTTP date) is respected up to
``max_retry_after``; a longer one ends the send as a transient failure at once (the
message stays unsent for a later run) instead of holding a worker. Other 4xx answers are
permanent failures and are not retried.

Bounded work: ``timeout`` bounds each network operation and ``deadline`` (default 30 s)
bounds a whole attempt, connect to last byte, so an endpoint that trickles its answer a
byte at a time cannot hold a send longer than that.

Credentials: ``token`` (sent as ``Authorization: Bearer``) and ``headers`` come from the
environment (``ENGAGELAB_HTTP_TOKEN``) or ``engagelab.yaml``, never from the content, and
are bound to configured endpoints: a request goes only to a host in ``allowed_hosts``
(by default the host of the configured ``url``). A webhook whose URL names another host
is refused before any request is made. engagelab's own headers (``Authorization``,
``Idempotency-Key``, ``Content-Type``, ...) cannot be set by content headers: such a
header is ignored with a warning.
"""

from __future__ import annotations

import json
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from engagelab.delivery.protocol import DeliveryResult, OutgoingMessage
from engagelab.errors import EngagelabWarning, ValidationError
from engagelab.validate import check_int, check_number

__all__ = ["PROTECTED_HEADERS", "HttpProvider", "backoff_delay", "retry_after_seconds"]

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Headers engagelab sets itself (lower case); content headers never override them.
PROTECTED_HEADERS = frozenset({
    "authorization", "proxy-authorization", "idempotency-key", "content-type", "content-length",
    "transfer-encoding", "host", "user-agent", "cookie", "connection",
})  # fmt: skip


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


class _Deadline(threading.local):
    """The monotonic instant the current thread's attempt must be over by (None: none)."""

    at: float | None = None

    def left(self, timeout: float | None) -> float | None:
        if self.at is None:
            return timeout
        rest = self.at - time.monotonic()
        if rest <= 0:
            raise httpcore.ReadTimeout("the attempt's deadline has passed")
        return rest if timeout is None else min(timeout, rest)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read and write ends by the attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline):
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:  # fmt: skip
        tls = self._inner.start_tls(ssl_context, server_hostname, self._deadline.left(timeout))
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend with each connect, read and write clamped to the deadline."""

    def __init__(self, inner: httpcore.NetworkBackend, deadline: _Deadline):
        self._inner, self._deadline = inner, deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:  # fmt: skip
        stream = self._inner.connect_tcp(host, port, self._deadline.left(timeout), local_address,
                                         socket_options)  # fmt: skip
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:  # fmt: skip
        stream = self._inner.connect_unix_socket(path, self._deadline.left(timeout), socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def _allowed(host_port: str, allowed: frozenset[str]) -> bool:
    return host_port in allowed or host_port.rsplit(":", 1)[0] in allowed


def _hosts(name: str, value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        raise ValidationError(name, value, "must be a list of host names (or host:port)")
    out = set()
    for item in items:
        text = str(item).strip().lower()
        if not text or "/" in text or " " in text:
            raise ValidationError(name, item, "must be a host name or host:port, not a URL")
        out.add(text)
    return frozenset(out)


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
        deadline: float | str = 30.0,
        allowed_hosts: Iterable[str] | str | None = None,
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
        self.deadline = _num("http.deadline", deadline, low=0.001)
        self.concurrency = _num("http.concurrency", concurrency, integer=True, low=1)
        self._headers = dict(headers or {})
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        field = f"providers.{channel}.allowed_hosts"
        self.allowed_hosts = _hosts(field, allowed_hosts)
        if url and not allowed_hosts:
            self.allowed_hosts = frozenset({_host_of(url)})
        if url and not _allowed(_host_of(url), self.allowed_hosts):
            raise ValidationError(
                field, sorted(self.allowed_hosts), f"must include the host of url {url!r}"
            )
        self._warned: set[str] = set()
        self._deadline = _Deadline()
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
            transport = self._transport
            if transport is None:
                transport = httpx.HTTPTransport(verify=self._verify)
                pool = transport._pool  # the deadline wraps httpcore's sockets
                pool._network_backend = _DeadlineBackend(pool._network_backend, self._deadline)
            self._client = httpx.Client(
                timeout=self.timeout,
                verify=self._verify,
                transport=transport,
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
            for k, v in (p.get("headers") or {}).items():
                if str(k).lower() in PROTECTED_HEADERS:
                    self._warn_protected(str(k))
                    continue
                headers[k] = v
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

    def _warn_protected(self, name: str) -> None:
        if name.lower() not in self._warned:
            self._warned.add(name.lower())
            warnings.warn(
                f"webhook header {name!r} is set by engagelab and cannot be overridden by "
                "content; ignored", EngagelabWarning, stacklevel=4,
            )  # fmt: skip

    def check_url(self, url: str) -> str | None:
        """Why ``url`` may not be requested (its host is not allowed), or None."""
        host = _host_of(url)
        if urlsplit(url).scheme not in ("http", "https") or not host:
            return f"url {url!r} must be an http(s) URL"
        if self.allowed_hosts and _allowed(host, self.allowed_hosts):
            return None
        if not self.allowed_hosts and not self._headers:
            return None  # no credential to leak and no allow-list: any host
        field = f"providers.{self.channel}.allowed_hosts"
        allowed = ", ".join(sorted(self.allowed_hosts)) or "none configured"
        return (f"url host {host!r} is not in {field} ({allowed}); the provider's credentials "
                "are only sent to those hosts")  # fmt: skip

    def deliver(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Send the batch (``concurrency`` requests at a time); one result per message."""
        self.open()
        if self.concurrency == 1 or len(batch) <= 1:
            return [self._send(m) for m in batch]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._send, batch))

    def _send(self, m: OutgoingMessage) -> DeliveryResult:  # noqa: C901
        assert self._client is not None
        try:
            method, url, headers, body = self.request_of(m)
            content = None if body is None else json.dumps(body).encode()
        except (KeyError, TypeError, ValueError) as exc:
            return DeliveryResult(m.key, False, True, error=f"bad payload: {exc}")
        refused = self.check_url(str(url))
        if refused:
            return DeliveryResult(m.key, False, True, error=refused)
        if content is not None:
            headers = {"Content-Type": "application/json", **headers}
        error = ""
        for attempt in range(self.retries + 1):
            self.attempts[m.key] = attempt + 1
            wait = None
            started = time.monotonic()
            self._deadline.at = started + self.deadline
            try:
                r = self._client.request(method, url, headers=headers, content=content)
            except httpx.TimeoutException as exc:
                spent = time.monotonic() - started
                limit = (f"the {self.deadline:g} s deadline" if spent >= self.deadline - 0.05
                         else f"{self.timeout:g} s")  # fmt: skip
                error = f"timeout after {limit} ({type(exc).__name__})"
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= r.status_code < 300:
                    return DeliveryResult(m.key, True, provider_id=_provider_id(r, m.key))
                error = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code not in RETRY_STATUS:
                    return DeliveryResult(m.key, False, True, error=error)
                wait = retry_after_seconds(r.headers.get("Retry-After"))
            finally:
                self._deadline.at = None
            if attempt == self.retries:
                break
            delay = backoff_delay(attempt + 1, self.backoff, self.backoff_max)
            if wait is not None:
                if wait > self.max_retry_after:
                    return DeliveryResult(m.key, False, False, error=(
                        f"{error}; Retry-After {wait:g} s is over max_retry_after "
                        f"({self.max_retry_after:g} s): left for a later run"))  # fmt: skip
                delay = max(delay, wait)
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
