"""Delivery over HTTP (httpx): webhooks, and push / SMS / e-mail gateways with a JSON API.

Every request carries the message key as its ``Idempotency-Key`` header, so a provider
that deduplicates by it (as payment and messaging APIs do) processes a message once even
when we send it again: after a timeout, a dropped connection, or a rerun that found the
message in doubt. Every attempt of a message carries the same key.

* ``webhook``: the rendered content says where: ``url``, ``method``, ``headers`` and the
  JSON ``body``.
* any other channel: a JSON envelope (key, user, campaign, variant, channel, ``to``,
  ``payload``, send time, labels, TTL) is POSTed to the configured ``url``.

Scheduling: at most ``concurrency`` requests are in flight at once. A message whose
attempt failed is not slept on: its next attempt is put on a heap of due times and the
other messages go on meanwhile.

Retries: connection errors, timeouts, 408, 425, 429 and 5xx answers are retried up to
``retries`` times with exponential backoff and full jitter (a uniform draw from ``[0,
min(backoff_max, backoff * 2**n)]`` seconds). A ``Retry-After`` answer (seconds or an
HTTP date) is respected up to ``max_retry_after``; a longer one ends the send as a
transient failure at once (the message stays unsent for a later run). Other 4xx answers
are permanent failures, not retried, and their error starts with the status (``HTTP
400: ...``), which is what the ledger records.

Circuit breaker per endpoint (host and port): after ``breaker_failures`` consecutive
retryable failures spanning at least ``breaker_window`` seconds (2 s by default, so a
burst of fast refusals while other messages still get through does not open it), no
request goes to the endpoint for ``breaker_cooldown`` seconds; then one probe goes, and
its success lets the waiting messages through again. Messages
for an open endpoint wait (their attempts are not used up) until ``batch_deadline``
seconds after the :meth:`HttpProvider.deliver` call began; whatever has not been
delivered by then (held by an open circuit, or a retry not yet due) ends as a transient
failure whose error says why, and stays unsent for a later run.

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

import heapq
import json
import random
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from engagelab.delivery.breaker import CircuitBreaker
from engagelab.delivery.protocol import DeliveryResult, OutgoingMessage
from engagelab.errors import EngagelabWarning, ValidationError
from engagelab.validate import check_int, check_number

__all__ = [
    "PROTECTED_HEADERS",
    "RETRY_STATUS",
    "HttpProvider",
    "backoff_delay",
    "retry_after_seconds",
]

#: Answers that are retried (with connection errors and timeouts): 408, 425, 429 and 5xx.
RETRY_STATUS = frozenset({408, 425, 429, *range(500, 600)})
#: Headers engagelab sets itself (lower case); content headers never override them.
PROTECTED_HEADERS = frozenset({
    "authorization", "proxy-authorization", "idempotency-key", "content-type", "content-length",
    "transfer-encoding", "host", "user-agent", "cookie", "connection",
})  # fmt: skip


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): exponential backoff with full
    jitter, a uniform draw from ``[0, min(cap, base * 2**(attempt - 1))]``.

    >>> d = backoff_delay(3, 0.5, 30.0)
    >>> 0.0 <= d <= 2.0
    True
    """
    d = min(cap, base * 2 ** (attempt - 1))
    return (rng or random).uniform(0, d)


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


def _endpoint(url: str) -> str:
    """``host:port`` of a URL (the scheme's default port when none is given)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


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


@dataclass(eq=False)
class _Job:
    """One message on its way: its request, attempts made and last error."""

    index: int
    key: str
    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None
    endpoint: str
    attempts: int = 0
    error: str = ""


@dataclass(frozen=True)
class _Outcome:
    """What one attempt gave: ``ok``, ``permanent`` or ``retry`` (with the error)."""

    kind: str
    error: str = ""
    provider_id: str | None = None
    retry_after: float | None = None


class HttpProvider:
    """Delivers messages by HTTP with idempotency keys, timeouts, retries scheduled on a
    heap of due times, ``concurrency`` requests in flight and a circuit breaker per
    endpoint (see the module docs)."""

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
        concurrency: int | str = 8,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        breaker_failures: int | str = 10,
        breaker_cooldown: float | str = 5.0,
        batch_deadline: float | str = 120.0,
        breaker_window: float | str = 2.0,
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
        #: most requests in flight at once
        self.concurrency = _num("http.concurrency", concurrency, integer=True, low=1)
        self.breaker_failures = _num("http.breaker_failures", breaker_failures, integer=True,
                                     low=1)  # fmt: skip
        self.breaker_cooldown = _num("http.breaker_cooldown", breaker_cooldown)
        self.breaker_window = _num("http.breaker_window", breaker_window)
        self.batch_deadline = _num("http.batch_deadline", batch_deadline, low=0.001)
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
        #: circuit breakers by endpoint (``host:port``); they outlive a deliver() call
        self.breakers: dict[str, CircuitBreaker] = {}
        self._rng = random.Random()
        self._floor = 0.0  # the clock never reads earlier than this (see _now)

    def __repr__(self) -> str:
        return f"HttpProvider(channel={self.channel!r}, url={self.url!r}, retries={self.retries})"

    def open(self) -> None:
        """Create the connection pool."""
        if self._client is None:
            transport = self._transport
            if transport is None:
                limits = httpx.Limits(
                    max_connections=max(100, self.concurrency),
                    max_keepalive_connections=max(20, self.concurrency),
                )
                transport = httpx.HTTPTransport(verify=self._verify, limits=limits)
                # the deadline wraps httpcore's sockets; httpx offers no public hook for the
                # network backend, so the pool's is replaced (httpcore pinned to 1.x)
                pool = getattr(transport, "_pool", None)
                if pool is None or not hasattr(pool, "_network_backend"):
                    raise RuntimeError(
                        "this httpx/httpcore version does not expose the connection pool's "
                        "network backend; engagelab needs httpcore 1.x (pip install 'httpcore<2')"
                    )
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
        """Send the batch (at most ``concurrency`` requests in flight); one result per message.

        Retries wait on a heap of due times while other messages go; messages for an
        endpoint whose circuit is open wait for its probe, until ``batch_deadline``.
        """
        self.open()
        out: list[DeliveryResult | None] = [None] * len(batch)
        jobs: list[_Job] = []
        for i, m in enumerate(batch):
            job = self._job(i, m)
            if isinstance(job, DeliveryResult):
                out[i] = job
            else:
                jobs.append(job)
        if jobs:
            with ThreadPoolExecutor(min(self.concurrency, len(jobs)),
                                    thread_name_prefix="engagelab-http") as pool:  # fmt: skip
                _Run(self, pool, jobs, out).run()
        return [r if r is not None else DeliveryResult(m.key, False, error="not attempted")
                for r, m in zip(out, batch, strict=True)]  # fmt: skip

    def _job(self, i: int, m: OutgoingMessage) -> _Job | DeliveryResult:
        """The request of one message, or the permanent failure that stops it unsent."""
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
        return _Job(i, m.key, method, str(url), headers, content, _endpoint(str(url)))

    def breaker(self, endpoint: str) -> CircuitBreaker:
        """The circuit breaker of ``endpoint`` (``host:port``), made on first use."""
        b = self.breakers.get(endpoint)
        if b is None:
            b = CircuitBreaker(endpoint, self.breaker_failures, self.breaker_cooldown,
                               self.breaker_window)  # fmt: skip
            self.breakers[endpoint] = b
        return b

    def _now(self) -> float:
        return max(time.monotonic(), self._floor)

    def _idle(self, seconds: float) -> None:
        """Wait with nothing in flight (through ``sleep``, which tests may replace)."""
        until = self._now() + seconds
        self._sleep(seconds)
        self._floor = max(self._floor, until)

    def _attempt(self, job: _Job) -> _Outcome:
        """One request of ``job`` (in a worker thread), bounded by the attempt deadline."""
        assert self._client is not None
        started = time.monotonic()
        self._deadline.at = started + self.deadline
        try:
            r = self._client.request(job.method, job.url, headers=job.headers,
                                     content=job.content)  # fmt: skip
        except httpx.TimeoutException as exc:
            spent = time.monotonic() - started
            limit = (f"the {self.deadline:g} s deadline" if spent >= self.deadline - 0.05
                     else f"{self.timeout:g} s")  # fmt: skip
            return _Outcome("retry", f"timeout after {limit} ({type(exc).__name__})")
        except httpx.RequestError as exc:  # connection, protocol, decoding, redirects
            return _Outcome("retry", f"{type(exc).__name__}: {exc}")
        finally:
            self._deadline.at = None
        if 200 <= r.status_code < 300:
            return _Outcome("ok", provider_id=_provider_id(r, job.key))
        error = f"HTTP {r.status_code}: {r.text[:200]}"
        if r.status_code not in RETRY_STATUS:
            return _Outcome("permanent", error)
        return _Outcome(
            "retry", error, retry_after=retry_after_seconds(r.headers.get("Retry-After"))
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


class _Run:
    """One deliver() call: ready messages, a heap of retries by due time, messages held
    by open circuits, and the attempts in flight (the coordinating thread owns all)."""

    def __init__(self, p: HttpProvider, pool: ThreadPoolExecutor, jobs: list[_Job],
                 out: list[DeliveryResult | None]):  # fmt: skip
        self.p, self.pool, self.out = p, pool, out
        self.ready: deque[_Job] = deque(jobs)
        self.due: list[tuple[float, int, _Job]] = []  # (due time, tie-break, job)
        self.held: dict[str, deque[_Job]] = {}  # by endpoint: waiting for its circuit
        self.flying: dict[Future[_Outcome], tuple[_Job, bool]] = {}
        self.end = p._now() + p.batch_deadline
        self._seq = 0

    def run(self) -> None:
        p = self.p
        for b in p.breakers.values():
            b.release()  # no probe of an earlier call is still in flight
        while self.ready or self.due or self.held or self.flying:
            now = p._now()
            pause: float | None
            if now >= self.end:
                self._expire()
                pause = None  # only the attempts in flight are left: wait for them
            else:
                while self.due and self.due[0][0] <= now:
                    self.ready.append(heapq.heappop(self.due)[2])
                self._launch(now)
                pause = self._pause(now)
            if self.flying:
                done, _ = wait(list(self.flying), timeout=pause, return_when=FIRST_COMPLETED)
                for f in done:
                    job, probe = self.flying.pop(f)
                    self._settle(job, probe, f.result())
            elif pause is not None and pause > 0:
                p._idle(pause)

    def _launch(self, now: float) -> None:
        """Start attempts while slots are free: held messages of a closed (or probing)
        endpoint first, then ready ones; a message for an open endpoint is held."""
        p = self.p
        for ep in list(self.held):
            q, b = self.held[ep], p.breaker(ep)
            if b.state == "closed":
                self.ready.extendleft(reversed(q))
                del self.held[ep]
            elif len(self.flying) < p.concurrency and b.allow(now):
                self._submit(q.popleft(), probe=True)
                if not q:
                    del self.held[ep]
        while self.ready and len(self.flying) < p.concurrency:
            job = self.ready.popleft()
            b = p.breaker(job.endpoint)
            if b.state != "closed" and (job.endpoint in self.held or not b.allow(now)):
                self.held.setdefault(job.endpoint, deque()).append(job)
                continue
            self._submit(job, probe=b.state != "closed")

    def _submit(self, job: _Job, probe: bool) -> None:
        job.attempts += 1
        self.p.attempts[job.key] = job.attempts
        self.flying[self.pool.submit(self.p._attempt, job)] = (job, probe)

    def _pause(self, now: float) -> float | None:
        """Seconds until something may change without an attempt ending (None: never)."""
        times = [self.end]
        if self.due:
            times.append(self.due[0][0])
        if len(self.flying) < self.p.concurrency:  # else an attempt ending wakes us
            for ep in self.held:
                at = self.p.breaker(ep).wakes_at()
                if at is not None:
                    times.append(at)
        return max(0.0, min(times) - now)

    def _settle(self, job: _Job, probe: bool, o: _Outcome) -> None:
        p, b = self.p, self.p.breaker(job.endpoint)
        if o.kind == "ok":
            b.success()
            self.out[job.index] = DeliveryResult(job.key, True, provider_id=o.provider_id)
            return
        if o.kind == "permanent":
            b.success()  # the endpoint answered: it is up
            self.out[job.index] = DeliveryResult(job.key, False, True, error=o.error)
            return
        now = p._now()
        b.failure(now, o.error, probe)
        job.error = o.error
        if job.attempts > p.retries:
            self._fail(job, f"{o.error} (gave up after {job.attempts} attempts)")
            return
        delay = backoff_delay(job.attempts, p.backoff, p.backoff_max, p._rng)
        if o.retry_after is not None:
            if o.retry_after > p.max_retry_after:
                self._fail(job, f"{o.error}; Retry-After {o.retry_after:g} s is over "
                                f"max_retry_after ({p.max_retry_after:g} s): left for a later run")  # fmt: skip
                return
            delay = max(delay, o.retry_after)
        if now + delay > self.end:
            self._fail(job, f"{o.error}; the next attempt would be due after the "
                            f"{p.batch_deadline:g} s batch deadline: left for a later run")  # fmt: skip
            return
        self._seq += 1
        heapq.heappush(self.due, (now + delay, self._seq, job))

    def _fail(self, job: _Job, error: str) -> None:
        """A transient failure: the message stays unsent for a later run."""
        self.out[job.index] = DeliveryResult(job.key, False, False, error=error)

    def _expire(self) -> None:
        """The batch deadline has passed: what has not gone fails, saying why."""
        limit = f"not delivered within the {self.p.batch_deadline:g} s batch deadline"
        for ep, q in self.held.items():
            why = self.p.breaker(ep).reason()
            for job in q:
                self._fail(job, f"{why}; {limit}: left for a later run")
        for _, _, job in self.due:
            self._fail(job, f"{job.error}; {limit} (retry not yet due): left for a later run")
        for job in self.ready:
            self._fail(job, f"{limit}: left for a later run")
        self.held, self.due, self.ready = {}, [], deque()
