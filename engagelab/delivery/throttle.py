"""Throttles as rates: token buckets in the state database, taken by the dispatcher's
claim step, so every dispatcher of a workspace shares them.

A :class:`Rate` is ``n`` messages per minute or per 5 minutes. Its bucket holds at most
``burst`` tokens (the **capacity**; default ``n``, one period's worth), starts full and
refills continuously at ``n`` per period on the dispatcher's clock. A message takes one
token of each bucket it belongs to, so over any stretch of time ``T`` a bucket lets
through at most ``burst + n * T / period`` messages (e.g. ``120/minute`` with
``burst: 2``: at most 4 within any second, 122 within any minute).

Buckets:

* ``campaign:<id>``: the campaign's ``Delivery.throttle_per_minute`` (or
  ``throttle_per_5_minutes``), shared by all runs of the campaign;
* ``channel:<name>`` and ``endpoint:<host:port>``: workspace-wide, from the
  ``throttle:`` section of ``engagelab.yaml``::

      throttle:
        channels:
          email: 600/minute
          push: {rate: 1000, per: 5 minutes, burst: 100}
        endpoints:                      # host:port of an SMTP server or HTTP API
          smtp.example.org:587: 300/minute

  A channel's endpoint is its configured provider's (``providers:`` / environment, as
  for sending): SMTP ``host:port``, HTTP the ``host:port`` of its ``url``.

The claim step (:meth:`Throttle.claim`) runs inside the dispatcher's claim transaction:
it locks the bucket rows (``FOR UPDATE`` in sorted key order on PostgreSQL; SQLite's write
transaction is exclusive), refills them to the clock's time, walks the due messages in
due order and claims one only if every bucket it belongs to has a whole token; the
others stay ``queued`` for a later round. Bucket rows are created (full) in their own
transaction before the claim transaction, so it only ever locks rows that exist.

A claim taken over from a dispatcher that stopped was charged when first claimed and is
not charged again; the tokens of a claimed message put back in the queue (DND hold) or
suppressed at release are given back. What ``send`` delivers at once (due when it is
enqueued) takes no tokens: the plan has spread the campaign's own rate already, and the
workspace-wide rates apply to what dispatchers release.

Example:
    >>> Rate.parse("120/minute", "throttle.channels.email")
    Rate(120/minute, burst 120)
    >>> Rate.parse({"rate": 10, "per": "5 minutes", "burst": 2}, "x")
    Rate(10/5 minutes, burst 2)
    >>> Rate.parse("0/minute", "throttle.channels.sms")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: throttle.channels.sms.rate == 0, must be an integer in [1, 1000000]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engagelab.delivery import ledger as L
from engagelab.errors import ValidationError
from engagelab.storage.tables import throttle_buckets as buckets
from engagelab.storage.upsert import insert_ignore
from engagelab.validate import check_int

if TYPE_CHECKING:
    from engagelab.storage.core import Core
    from engagelab.storage.statedb import StateDB

__all__ = ["UNITS", "Rate", "Throttle", "ThrottleConfig", "bucket_state", "endpoint_for"]

#: Periods a rate may be given per, in seconds.
UNITS = {"minute": 60, "5 minutes": 300}
#: Token units per message: refills are whole units per microsecond for every period.
SCALE = 300_000_000
_US = 1_000_000
_MAX = 1_000_000
_TEXT = re.compile(r"^\s*(\S+)\s*/\s*(.+?)\s*$")


@dataclass(frozen=True)
class Rate:
    """``n`` messages per ``per`` (``'minute'`` or ``'5 minutes'``), bursts of at most
    ``burst`` (default ``n``)."""

    n: int
    per: str = "minute"
    burst: int | None = None

    def __post_init__(self) -> None:
        self._check("rate")

    def _check(self, name: str) -> None:
        check_int(f"{name}.rate" if name != "rate" else name, self.n, low=1, high=_MAX)
        if self.per not in UNITS:
            raise ValidationError(
                f"{name}.per" if name != "rate" else "per", self.per,
                "must be one of " + ", ".join(repr(u) for u in UNITS),
            )  # fmt: skip
        if self.burst is not None:
            check_int(f"{name}.burst" if name != "rate" else "burst", self.burst, low=1,
                      high=self.n)  # fmt: skip

    @property
    def seconds(self) -> int:
        """The period in seconds."""
        return UNITS[self.per]

    @property
    def capacity(self) -> int:
        """Most tokens the bucket holds (``burst``, default ``n``)."""
        return self.burst if self.burst is not None else self.n

    @property
    def refill(self) -> int:
        """Token units added per microsecond (exact: ``n * SCALE / period``)."""
        return self.n * SCALE // (self.seconds * _US)

    def __repr__(self) -> str:
        return f"Rate({self.n}/{self.per}, burst {self.capacity})"

    @classmethod
    def parse(cls, value: Any, name: str) -> Rate:
        """A rate from ``'<n>/minute'``, ``'<n>/5 minutes'``, ``<n>`` (per minute), a
        mapping ``{rate, per, burst}`` or a Rate; errors name ``name.rate``, ``name.per`` or ``name.burst``."""
        if isinstance(value, Rate):
            return value
        if isinstance(value, str):
            m = _TEXT.match(value)
            if not m:
                raise ValidationError(
                    name, value, "must be '<n>/minute', '<n>/5 minutes' or {rate, per, burst}"
                )
            n_text, per = m.groups()
            try:
                n: Any = int(n_text)
            except ValueError:
                n = n_text
            value = {"rate": n, "per": per}
        elif isinstance(value, int | float):  # a bare number: per minute
            value = {"rate": value}
        if not isinstance(value, Mapping):
            raise ValidationError(
                name, value, "must be '<n>/minute', '<n>/5 minutes' or {rate, per, burst}"
            )
        extra = sorted(set(value) - {"rate", "per", "burst"})
        if extra:
            raise ValidationError(f"{name}.{extra[0]}", value[extra[0]],
                                  "is not a rate option: rate, per, burst")  # fmt: skip
        if "rate" not in value:
            raise ValidationError(f"{name}.rate", None, "is required (messages per period)")
        r = object.__new__(cls)
        for k, v in (("n", value["rate"]), ("per", value.get("per", "minute")),
                     ("burst", value.get("burst"))):  # fmt: skip
            object.__setattr__(r, k, v)
        r._check(name)
        return r


@dataclass(frozen=True)
class ThrottleConfig:
    """The workspace-wide rates: per channel and per provider endpoint (``host:port``)."""

    channels: Mapping[str, Rate] = field(default_factory=dict)
    endpoints: Mapping[str, Rate] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ThrottleConfig:
        """The ``throttle:`` section of a workspace configuration, validated."""
        from engagelab.channels import CHANNELS

        section = (config or {}).get("throttle") or {}
        if not isinstance(section, Mapping):
            raise ValidationError("throttle", section, "must be a mapping (channels, endpoints)")
        extra = sorted(set(section) - {"channels", "endpoints"})
        if extra:
            raise ValidationError(f"throttle.{extra[0]}", section[extra[0]],
                                  "is not a throttle section: channels, endpoints")  # fmt: skip
        out: dict[str, dict[str, Rate]] = {}
        for part in ("channels", "endpoints"):
            items = section.get(part) or {}
            if not isinstance(items, Mapping):
                raise ValidationError(f"throttle.{part}", items, "must be a mapping")
            got: dict[str, Rate] = {}
            for k, v in items.items():
                if part == "channels" and k not in CHANNELS:
                    raise ValidationError(
                        "throttle.channels", k, "must name a channel: " + ", ".join(CHANNELS)
                    )
                if part == "endpoints":
                    k = _check_endpoint(k)
                got[k] = Rate.parse(v, f"throttle.{part}.{k}")
            out[part] = got
        return cls(out["channels"], out["endpoints"])

    def __bool__(self) -> bool:
        return bool(self.channels or self.endpoints)


def _check_endpoint(value: Any) -> str:
    host, _, port = str(value).rpartition(":")
    if not isinstance(value, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(
            "throttle.endpoints", value, "must be 'host:port' (of an SMTP server or HTTP API)"
        )
    return f"{host.lower()}:{int(port)}"


def endpoint_for(ws: Core, channel: str, provider: Any = None) -> str | None:
    """``host:port`` that ``channel``'s messages go to (of ``provider`` when given, else of
    the configured provider); None for local providers (outbox, inbox, export)."""
    if provider is not None:
        if getattr(provider, "url", None):
            from engagelab.delivery.http import _endpoint

            return _endpoint(str(provider.url))
        if getattr(provider, "host", None) and getattr(provider, "port", None):
            return f"{str(provider.host).lower()}:{int(provider.port)}"
        return None
    from engagelab.delivery.registry import provider_config

    try:
        cfg = provider_config(channel, ws)
    except ValidationError:  # misconfigured: the hand-over reports it
        return None
    if cfg["type"] == "smtp":
        default = {"ssl": 465, "starttls": 587}.get(str(cfg.get("security")), 25)
        return f"{str(cfg.get('host') or 'localhost').lower()}:{int(cfg.get('port') or default)}"
    if cfg["type"] == "http" and cfg.get("url"):
        from engagelab.delivery.http import _endpoint

        return _endpoint(str(cfg["url"]))
    return None


# --------------------------------------------------------------------------- state DB
_READY: set[str] = set()


def _ensure_table(db: StateDB) -> None:
    """Create ``el_throttle_buckets`` if this database lacks it (no version change)."""
    if db.url in _READY:
        return
    with db.read() as conn:
        have = sa.inspect(conn).has_table(buckets.name)
    if not have:
        try:
            with db.write() as conn:
                buckets.create(conn, checkfirst=True)
        except sa.exc.DBAPIError:  # created concurrently by another process
            with db.read() as conn:
                if not sa.inspect(conn).has_table(buckets.name):
                    raise
    _READY.add(db.url)


def bucket_state(ws: Core) -> list[dict[str, Any]]:
    """The stored buckets (key, tokens as messages, as of ``updated_us``, rate)."""
    _ensure_table(ws.state)
    with ws.state.read() as conn:
        rows = conn.execute(sa.select(buckets).order_by(buckets.c.key)).all()
    return [
        {"key": r.key, "tokens": r.tokens / SCALE, "updated_us": r.updated_us,
         "rate": f"{r.rate}/{'minute' if r.per_seconds == 60 else '5 minutes'}",
         "burst": r.burst}
        for r in rows
    ]  # fmt: skip


@dataclass
class _Bucket:
    key: str
    rate: Rate
    level: int  # token units
    updated_us: int


class Throttle:
    """The dispatcher's throttles (see the module docs).

    Args:
        ws: the workspace (its ``throttle:`` section is read unless ``config`` is given).
        rate_of: the campaign rate of a run key (``(bucket key, Rate)`` or None).
        provider: the one provider of every message, when the dispatcher has one (its
            endpoint is every channel's).
        config: the workspace-wide rates (default: from ``ws.config``).
    """

    def __init__(
        self,
        ws: Core,
        rate_of: Callable[[str], tuple[str, Rate] | None] | None = None,
        provider: Any = None,
        config: ThrottleConfig | None = None,
    ):
        self.ws = ws
        self.config = (
            config
            if config is not None
            else ThrottleConfig.from_config(getattr(ws, "config", None))
        )
        self._rate_of = rate_of
        self._provider = provider
        self._runs: dict[str, tuple[str, Rate] | None] = {}
        self._endpoints: dict[str, str | None] = {}
        self._known: set[str] = set()
        self._channels: set[str] = set()
        #: run key -> (messages charged in the last claim, their bucket keys)
        self.charged: dict[str, tuple[int, list[str]]] = {}
        self.next_token_us: int | None = None

    def __repr__(self) -> str:
        return f"Throttle(channels {dict(self.config.channels)}, endpoints {dict(self.config.endpoints)})"

    def _run_rate(self, run_key: str) -> tuple[str, Rate] | None:
        if run_key not in self._runs:
            if len(self._runs) > 1000:
                self._runs.clear()
            self._runs[run_key] = self._rate_of(run_key) if self._rate_of else None
        return self._runs[run_key]

    def _endpoint(self, channel: str) -> str | None:
        if channel not in self._endpoints:
            self._endpoints[channel] = endpoint_for(self.ws, channel, self._provider)
        return self._endpoints[channel]

    def buckets_of(self, run_key: str, channel: str) -> list[tuple[str, Rate]]:
        """The (bucket key, rate) pairs a message of ``run_key`` on ``channel`` takes from."""
        out: list[tuple[str, Rate]] = []
        camp = self._run_rate(run_key)
        if camp is not None:
            out.append(camp)
        rate = self.config.channels.get(channel)
        if rate is not None:
            out.append((f"channel:{channel}", rate))
        if self.config.endpoints:
            ep = self._endpoint(channel)
            if ep is not None and ep in self.config.endpoints:
                out.append((f"endpoint:{ep}", self.config.endpoints[ep]))
        return out

    # ------------------------------------------------------------------ before the claim
    def prepare(self, now_us: int) -> bool:
        """Make sure the buckets of the due messages exist (full, in their own
        transaction); False when none of them is throttled (the claim needs no buckets)."""
        _ensure_table(self.ws.state)
        with self.ws.state.read() as conn:
            runs = L.fetch(
                conn,
                "SELECT DISTINCT run_key, channel FROM el_campaign_ledger WHERE status = "
                "'queued' AND due_us <= ? AND (expires_us IS NULL OR expires_us > ?)",
                [now_us, now_us],
            )
        want: dict[str, Rate] = {}
        for run_key, channel in runs:
            self._channels.add(channel)
            want.update(self.buckets_of(run_key, channel))
        if not want:
            return False
        new = sorted(set(want) - self._known)
        if new:
            with self.ws.state.write() as conn:
                insert_ignore(conn, buckets, [_row(k, want[k], want[k].capacity * SCALE, now_us)
                                              for k in new])  # fmt: skip
            self._known.update(new)
        return True

    # ------------------------------------------------------------------ the claim
    def claim(
        self, conn: sa.Connection, now_us: int, left: int, lock: str
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Inside the claim transaction: the due ``queued`` rows (``key``, ``run_key``,
        ``status``, ``owner``, ``lease_us``, at most ``left``) whose every bucket had a token
        at ``now_us`` (the tokens are taken), and how many due messages a throttle held."""
        state = self._lock(conn, now_us)
        self.charged = {}
        ex = _Excluded()
        for ch in self._channels:
            ex.channel(ch, self._endpoint(ch) if self.config.endpoints else None)
        for k, b in state.items():
            if b.level < SCALE:  # empty before the walk: its messages are not even read
                ex.exhaust(k)
        got: list[tuple[Any, ...]] = []
        after: tuple[int, str] | None = None
        for _page in range(8):
            rows = self._page(conn, now_us, left, lock, after, ex)
            for row in rows:
                after = (int(row[7]), row[0])
                if self._take(row, state, ex):
                    got.append(row)
                    if len(got) >= left:
                        break
            if len(got) >= left or len(rows) < left:
                break
        waits = []
        for k, b in state.items():
            if b.level < SCALE:
                ex.exhaust(k)
                waits.append(-(-(SCALE - b.level) // b.rate.refill))
        #: when the next token of an empty bucket is there (µs, the clock's), or None
        self.next_token_us = now_us + min(waits) if waits else None
        held = self._held(conn, now_us, ex) - sum(1 for r in got if ex.holds(r[1], r[5], r[6]))
        self._save(conn, state)
        return [r[:5] for r in got], max(held, 0)

    def _take(self, row: tuple[Any, ...], state: dict[str, _Bucket], ex: _Excluded) -> bool:
        """Take a token of each bucket of ``row`` if they all have one."""
        _key, run_key, _st, _o, _l, _campaign_id, channel, _due = row
        if channel not in self._channels:
            self._channels.add(channel)
            ex.channel(channel, self._endpoint(channel) if self.config.endpoints else None)
        need = [k for k, _r in self.buckets_of(run_key, channel)]
        if any(k not in state for k in need):  # a bucket made after prepare(): next round
            ex.runs.add(run_key)
            return False
        ok = all(state[k].level >= SCALE for k in need)
        if ok:
            for k in need:
                state[k].level -= SCALE
            if need:
                n, _keys = self.charged.get(run_key, (0, []))
                self.charged[run_key] = (n + 1, need)
        for k in need:
            if state[k].level < SCALE:
                ex.exhaust(k)
        return ok

    def refund(self, run_key: str, n: int) -> None:
        """Give back the tokens of ``n`` messages of ``run_key`` claimed in the last round
        but put back in the queue (they take tokens again when released)."""
        charged, keys = self.charged.get(run_key, (0, []))
        n = min(n, charged)
        if n <= 0:
            return
        self.charged[run_key] = (charged - n, keys)
        with self.ws.state.write() as conn:
            for key in sorted(keys):  # row locks in key order, as the claim takes them
                full = buckets.c.burst * SCALE
                more = buckets.c.tokens + n * SCALE
                conn.execute(
                    buckets.update()
                    .where(buckets.c.key == key)
                    .values(tokens=sa.case((more > full, full), else_=more))
                )

    def _lock(self, conn: sa.Connection, now_us: int) -> dict[str, _Bucket]:
        """The bucket rows this dispatcher knows of, locked in key order, refilled to
        ``now_us`` (rates of the current configuration and runs)."""
        keys = sorted(self._known)
        if not keys:
            return {}
        sql = (
            'SELECT "key", tokens, updated_us FROM el_throttle_buckets WHERE "key" IN ('
            + ", ".join("?" * len(keys)) + ') ORDER BY "key"'
        )  # fmt: skip
        if conn.dialect.name == "postgresql":
            sql += " FOR UPDATE"
        rates = self._rates()
        out: dict[str, _Bucket] = {}
        for key, tokens, updated in L.fetch(conn, sql, keys):
            rate = rates.get(key)
            if rate is None:  # no longer configured / no run due: leave it as it is
                continue
            elapsed = max(0, now_us - int(updated))
            level = min(rate.capacity * SCALE, int(tokens) + elapsed * rate.refill)
            out[key] = _Bucket(key, rate, level, max(int(updated), now_us))
        return out

    def _rates(self) -> dict[str, Rate]:
        rates: dict[str, Rate] = {}
        for v in self._runs.values():
            if v is not None:
                rates[v[0]] = v[1]
        rates.update({f"channel:{c}": r for c, r in self.config.channels.items()})
        rates.update({f"endpoint:{e}": r for e, r in self.config.endpoints.items()})
        return rates

    def _page(
        self, conn: sa.Connection, now_us: int, left: int, lock: str,
        after: tuple[int, str] | None, ex: _Excluded,
    ) -> list[tuple[Any, ...]]:  # fmt: skip
        sql = (
            'SELECT "key", run_key, status, owner, lease_us, campaign_id, channel, due_us '
            "FROM el_campaign_ledger WHERE status = 'queued' AND due_us <= ? "
            "AND (expires_us IS NULL OR expires_us > ?)"
        )
        params: list[Any] = [now_us, now_us]
        if after is not None:
            sql += ' AND (due_us > ? OR (due_us = ? AND "key" > ?))'
            params += [after[0], after[0], after[1]]
        where, more = ex.where(negate=True)
        sql += where + ' ORDER BY due_us, "key" LIMIT ?' + lock
        return L.fetch(conn, sql, [*params, *more, left])

    @staticmethod
    def _held(conn: sa.Connection, now_us: int, ex: _Excluded) -> int:
        where, more = ex.where(negate=False)
        if not more:
            return 0
        sql = (
            "SELECT count(*) FROM el_campaign_ledger WHERE status = 'queued' AND due_us <= ? "
            "AND (expires_us IS NULL OR expires_us > ?)" + where
        )
        return int(L.fetch(conn, sql, [now_us, now_us, *more])[0][0])

    @staticmethod
    def _save(conn: sa.Connection, state: Mapping[str, _Bucket]) -> None:
        for key in sorted(state):
            b = state[key]
            conn.execute(
                buckets.update()
                .where(buckets.c.key == key)
                .values(tokens=b.level, updated_us=b.updated_us, rate=b.rate.n,
                        per_seconds=b.rate.seconds, burst=b.rate.capacity)
            )  # fmt: skip


@dataclass
class _Excluded:
    """What the rest of a claim skips: runs whose bucket is not there yet, and campaigns
    and channels (directly, or through their endpoint) whose bucket ran empty."""

    runs: set[str] = field(default_factory=set)
    campaigns: set[str] = field(default_factory=set)
    channels: set[str] = field(default_factory=set)
    by_endpoint: dict[str, set[str]] = field(default_factory=dict)

    def channel(self, channel: str, endpoint: str | None) -> None:
        if endpoint is not None:
            self.by_endpoint.setdefault(endpoint, set()).add(channel)

    def exhaust(self, key: str) -> None:
        kind, _, name = key.partition(":")
        if kind == "campaign":
            self.campaigns.add(name)
        elif kind == "channel":
            self.channels.add(name)
        else:
            self.channels.update(self.by_endpoint.get(name, ()))

    def holds(self, run_key: str, campaign_id: str, channel: str) -> bool:
        return run_key in self.runs or campaign_id in self.campaigns or channel in self.channels

    def where(self, negate: bool) -> tuple[str, list[Any]]:
        """SQL (``AND NOT (...)`` / ``AND (...)``) and its parameters."""
        parts, params = [], []
        for col, vals in (("run_key", self.runs), ("campaign_id", self.campaigns),
                          ("channel", self.channels)):  # fmt: skip
            if vals:
                parts.append(f"{col} IN (" + ", ".join("?" * len(vals)) + ")")
                params += sorted(vals)
        if not parts:
            return "", []
        joined = " OR ".join(parts)
        return (f" AND NOT ({joined})" if negate else f" AND ({joined})"), params


def _row(key: str, rate: Rate, tokens: int, now_us: int) -> dict[str, Any]:
    return {"key": key, "tokens": tokens, "updated_us": now_us, "rate": rate.n,
            "per_seconds": rate.seconds, "burst": rate.capacity}  # fmt: skip
