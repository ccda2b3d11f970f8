"""Delivery options of a campaign: time zones, do-not-disturb, frequency caps, throttle, TTL.

Example:
    >>> opts = Delivery(user_timezone=True, if_passed="next_day",
    ...                 dnd=(DND(start="22:00", end="08:00"),),
    ...                 caps=(FrequencyCap(max=2, window=1, unit="days", kind="calendar"),))
    >>> Delivery.from_dict(opts.to_dict()) == opts
    True
    >>> FrequencyCap(max=1, window=0)
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: delivery.caps.window == 0, must be an integer >= 1
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engagelab.besttime.policies import (
    SEND_TIME_COLUMNS,
    SEND_TIME_POLICIES,
    check_send_times,
    register_send_time_policy,
    send_time_policy,
)
from engagelab.errors import SpecError, ValidationError
from engagelab.frozen import frozen, replace_spec
from engagelab.schema import CHANNEL_OPTOUT
from engagelab.validate import check_datetime

__all__ = [
    "DND",
    "Delivery",
    "FrequencyCap",
    "SEND_TIME_COLUMNS",
    "SEND_TIME_POLICIES",
    "campaign_caps",
    "check_send_times",
    "register_send_time_policy",
    "send_time_policy",
    "workspace_caps",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNITS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400}
CALENDAR_UNITS = ("days", "weeks", "months")


def _spec(check: Callable[..., Any], name: str, *args: Any, **kw: Any) -> Any:
    """Run a ``_validate`` check, re-raising as :class:`SpecError` with ``name``."""
    try:
        return check(name, *args, **kw)
    except ValidationError as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(exc.field, exc.value, exc.allowed, message=str(exc)) from None


def _int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        rule = "must be an integer" + (
            f" in [{low}, {high}]"
            if low is not None and high is not None
            else f" >= {low}"
            if low is not None
            else ""
        )
        raise SpecError(name, value, rule)
    return value


def parse_hhmm(name: str, value: Any) -> int:
    """Minutes after midnight of an ``'HH:MM'`` text (``'24:00'`` is the end of the day)."""
    if isinstance(value, str) and len(value) == 5 and value[2] == ":":
        hh, mm = value[:2], value[3:]
        if hh.isdigit() and mm.isdigit():
            h, m = int(hh), int(mm)
            if (h < 24 and m < 60) or (h == 24 and m == 0):
                return h * 60 + m
    raise SpecError(name, value, "must be a time of day 'HH:MM' (00:00 to 24:00)")


@frozen
@dataclass(frozen=True)
class DND:
    """A do-not-disturb window in the user's local time.

    Args:
        start, end: ``'HH:MM'``; an ``end`` at or before ``start`` means the window runs
            past midnight into the next day.
        days: weekdays on which the window starts (``'mon'`` .. ``'sun'``; default all).
        action: ``'hold'`` (send when the window ends) or ``'drop'`` (suppress).
    """

    start: str = "22:00"
    end: str = "08:00"
    days: tuple[str, ...] = WEEKDAYS
    action: str = "hold"

    def __post_init__(self) -> None:
        parse_hhmm("delivery.dnd.start", self.start)
        parse_hhmm("delivery.dnd.end", self.end)
        days = tuple(self.days) if not isinstance(self.days, str) else (self.days,)
        if not days or any(d not in WEEKDAYS for d in days):
            raise SpecError(
                "delivery.dnd.days", list(days), "must be weekdays from " + ", ".join(WEEKDAYS)
            )
        object.__setattr__(self, "days", days)
        if self.action not in ("hold", "drop"):
            raise SpecError("delivery.dnd.action", self.action, "must be one of 'hold', 'drop'")
        if self.start == self.end:
            raise SpecError("delivery.dnd.end", self.end, "must differ from start")

    def replace(self, **changes: Any) -> DND:
        """A copy with some fields changed (windows are frozen), validated again."""
        return replace_spec(self, changes)

    @property
    def minutes(self) -> tuple[int, int]:
        return parse_hhmm("start", self.start), parse_hhmm("end", self.end)

    @property
    def weekday_numbers(self) -> tuple[int, ...]:
        return tuple(WEEKDAYS.index(d) for d in self.days)


@frozen
@dataclass(frozen=True)
class FrequencyCap:
    """At most ``max`` messages per ``window`` x ``unit`` on ``channel`` (``'*'``: all channels).

    ``kind='rolling'``: no window of that length holds more than ``max`` messages;
    ``kind='calendar'``: per calendar day / week (Monday start) / month of the user's
    time zone.
    """

    max: int = 1
    window: int = 1
    unit: str = "days"
    kind: str = "rolling"
    channel: str = "*"

    def __post_init__(self) -> None:
        _int("delivery.caps.max", self.max, low=1)
        _int("delivery.caps.window", self.window, low=1)
        if self.kind not in ("rolling", "calendar"):
            raise SpecError("delivery.caps.kind", self.kind, "must be one of 'rolling', 'calendar'")
        units = CALENDAR_UNITS if self.kind == "calendar" else tuple(UNITS)
        if self.unit not in units:
            raise SpecError(
                "delivery.caps.unit",
                self.unit,
                "must be one of " + ", ".join(repr(u) for u in units),
            )
        if self.kind == "calendar" and self.window != 1:
            raise SpecError("delivery.caps.window", self.window, "must be 1 for a calendar cap")
        channels = ("*", *CHANNEL_OPTOUT, "facebook_audience", "google_ads")
        if self.channel not in channels:
            raise SpecError(
                "delivery.caps.channel",
                self.channel,
                "must be '*' (all channels) or one of " + ", ".join(map(repr, channels[1:])),
            )

    def replace(self, **changes: Any) -> FrequencyCap:
        """A copy with some fields changed (caps are frozen), validated again."""
        return replace_spec(self, changes)

    @property
    def seconds(self) -> int:
        """Length of a rolling window in seconds."""
        return self.window * UNITS[self.unit]


@frozen
@dataclass(frozen=True)
class Delivery:
    """How and when messages go out.

    Args:
        user_timezone: send at the campaign's local wall-clock time in each user's
            time zone (users without a zone use ``default_timezone``).
        if_passed: when that local time has already passed at planning time:
            ``'drop'`` (suppressed, reason ``tz_passed``) or ``'next_day'``.
        dnd: do-not-disturb windows.
        caps: frequency caps (per channel or across all channels).
        min_gap_hours: minimum time between two messages of this campaign to one user.
        ignore_caps: this campaign is exempt from frequency caps (its own and the
            workspace's).
        ignore_workspace_caps: this campaign is exempt from the workspace-wide caps
            (``frequency_caps:`` in ``engagelab.yaml``, see :func:`workspace_caps`); its
            own ``caps`` still apply.
        throttle_per_minute: at most this many messages per minute (later ones wait): the
            plan spreads the send times, and the dispatcher releases queued messages at
            this rate (a token bucket of this many, refilled continuously).
        throttle_per_5_minutes: the same per 5 minutes (instead of per minute).
        ttl_hours: a message not sent within this time of its planned time expires.
        cut_off: no message is sent after this instant (UTC).
        send_time_policy: name of a send-time policy, registered with
            :func:`~engagelab.besttime.policies.register_send_time_policy` in the process
            that plans the campaign (checked then, not when the spec is built).
        best_time: best-send-time delivery: a
            :class:`~engagelab.besttime.BestTimeOptions` (or its dict): each user is
            sent at their chosen slot on the logical date (its calendar day in the
            schedule's time zone), in their own time zone; a slot already passed moves
            to the next day or drops the user (``passed``); a share of users may be
            explored at random slots (``explore_share``, propensities in the plan).
            The plan shows ``best_time_slot``, ``best_time_reason`` and
            ``best_time_propensity``. Not combinable with ``send_time_policy``.
    """

    user_timezone: bool = False
    if_passed: str = "drop"
    default_timezone: str = "UTC"
    dnd: tuple[DND, ...] = ()
    caps: tuple[FrequencyCap, ...] = ()
    min_gap_hours: float | None = None
    ignore_caps: bool = False
    ignore_workspace_caps: bool = False
    throttle_per_minute: int | None = None
    throttle_per_5_minutes: int | None = None
    ttl_hours: float | None = None
    cut_off: dt.datetime | None = None
    send_time_policy: str | None = None
    best_time: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.user_timezone, bool):
            raise SpecError("delivery.user_timezone", self.user_timezone, "must be true or false")
        if self.if_passed not in ("drop", "next_day"):
            raise SpecError(
                "delivery.if_passed", self.if_passed, "must be one of 'drop', 'next_day'"
            )
        from engagelab.validate import check_timezone

        _spec(check_timezone, "delivery.default_timezone", self.default_timezone)
        dnd = tuple(d if isinstance(d, DND) else DND(**d) for d in self.dnd)
        caps = tuple(c if isinstance(c, FrequencyCap) else FrequencyCap(**c) for c in self.caps)
        object.__setattr__(self, "dnd", dnd)
        object.__setattr__(self, "caps", caps)
        for name in ("min_gap_hours", "ttl_hours"):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float) or not v > 0
            ):
                raise SpecError(f"delivery.{name}", v, "must be a number > 0 or None")
        _check_throttle(self.throttle_per_minute, self.throttle_per_5_minutes)
        for name in ("ignore_caps", "ignore_workspace_caps"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"delivery.{name}", getattr(self, name), "must be true or false")
        if self.cut_off is not None:
            object.__setattr__(
                self, "cut_off", _spec(check_datetime, "delivery.cut_off", self.cut_off)
            )
        stp = self.send_time_policy
        if stp is not None and (not isinstance(stp, str) or not stp.strip() or len(stp) > 100):
            # the name is looked up when a plan is made: a spec never depends on what this
            # process has registered
            raise SpecError(
                "delivery.send_time_policy", stp, "must be a policy name (a non-empty string)"
            )

        if self.best_time is not None:
            object.__setattr__(self, "best_time", _best_time_options(self.best_time))
            if self.send_time_policy is not None:
                raise SpecError(
                    "delivery.best_time",
                    "set",
                    "cannot be combined with delivery.send_time_policy (choose one)",
                )

    @property
    def throttle(self) -> tuple[int, int] | None:
        """The throttle as (messages, per seconds), or None."""
        if self.throttle_per_minute is not None:
            return self.throttle_per_minute, 60
        if self.throttle_per_5_minutes is not None:
            return self.throttle_per_5_minutes, 300
        return None

    def replace(self, **changes: Any) -> Delivery:
        """A copy with some fields changed (delivery options are frozen), validated again."""
        return replace_spec(self, changes)

    def to_dict(self) -> dict[str, Any]:
        bt = self.best_time
        d = dataclasses.asdict(dataclasses.replace(self, best_time=None))
        d["best_time"] = bt.to_dict() if bt is not None else None
        d["dnd"] = [dataclasses.asdict(x) | {"days": list(x.days)} for x in self.dnd]
        d["caps"] = [dataclasses.asdict(x) for x in self.caps]
        d["cut_off"] = self.cut_off.isoformat() if self.cut_off else None
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        if not isinstance(data, Mapping):
            raise SpecError("delivery", data, "must be a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise SpecError(
                "delivery", extra[0], "is not a delivery option: " + ", ".join(sorted(known))
            )
        d = dict(data)
        d["dnd"] = tuple(DND(**x) if isinstance(x, Mapping) else x for x in d.get("dnd", ()))
        d["caps"] = tuple(
            FrequencyCap(**x) if isinstance(x, Mapping) else x for x in d.get("caps", ())
        )
        return cls(**d)


def _check_throttle(per_minute: Any, per_5_minutes: Any) -> None:
    if per_minute is not None:
        _int("delivery.throttle_per_minute", per_minute, low=1)
    if per_5_minutes is not None:
        _int("delivery.throttle_per_5_minutes", per_5_minutes, low=1)
        if per_minute is not None:
            raise SpecError(
                "delivery.throttle_per_5_minutes", per_5_minutes,
                "cannot be combined with delivery.throttle_per_minute (choose one)",
            )  # fmt: skip


def _best_time_options(value: Any) -> Any:
    """``value`` as :class:`~engagelab.besttime.BestTimeOptions` (errors name
    ``delivery.best_time.<field>``)."""
    from engagelab.besttime.options import BestTimeOptions

    if isinstance(value, BestTimeOptions):
        return value
    if not isinstance(value, Mapping):
        raise SpecError(
            "delivery.best_time", value, "must be BestTimeOptions, a mapping of them, or None"
        )
    try:
        return BestTimeOptions.from_dict(value)
    except ValidationError as exc:
        # BestTimeOptions names sub-fields in words ("window earliest", "event name")
        head = exc.field.split(" ")[0]
        head = {"BestTimeOptions": "", "event": "events"}.get(head, head)
        field = "delivery.best_time" + (f".{head}" if head else "")
        raise SpecError(
            field, exc.value, exc.allowed, message=f"delivery.best_time: {exc}"
        ) from None


#: The keys of one entry of the workspace's ``frequency_caps:`` section.
_CAP_KEYS = ("max", "window", "unit", "kind", "channel")


def workspace_caps(ws: Any) -> tuple[FrequencyCap, ...]:
    """The workspace-wide frequency caps: the ``frequency_caps:`` section of the workspace's
    ``engagelab.yaml`` (``ws.config``), a list of caps with the fields of
    :class:`FrequencyCap`. Every campaign respects them unless its delivery options say
    ``ignore_caps`` or ``ignore_workspace_caps``.

    Example (``engagelab.yaml``)::

        frequency_caps:
          - {max: 3, window: 7, unit: days}                 # any channel, rolling 7 days
          - {max: 1, unit: days, kind: calendar, channel: push}  # a local calendar day

    >>> workspace_caps({"frequency_caps": [{"max": 3, "window": 7, "unit": "days"}]})
    (FrequencyCap(max=3, window=7, unit='days', kind='rolling', channel='*'),)
    >>> workspace_caps({"frequency_caps": [{"max": 0}]})
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: frequency_caps[0].max == 0, must be an integer >= 1
    """
    config = ws if isinstance(ws, Mapping) else (getattr(ws, "config", None) or {})
    section = config.get("frequency_caps")
    if section is None:
        return ()
    if isinstance(section, Mapping | str | bytes):
        raise ValidationError(
            "frequency_caps", type(section).__name__,
            "must be a list of caps (max, window, unit, kind, channel) in engagelab.yaml",
        )  # fmt: skip
    try:
        entries = list(section)
    except TypeError:
        raise ValidationError(
            "frequency_caps", section, "must be a list of caps in engagelab.yaml"
        ) from None
    out = []
    for i, entry in enumerate(entries):
        name = f"frequency_caps[{i}]"
        if not isinstance(entry, Mapping):
            raise ValidationError(name, entry, "must be a mapping of " + ", ".join(_CAP_KEYS))
        extra = sorted(str(k) for k in set(entry) - set(_CAP_KEYS))
        if extra:
            raise ValidationError(
                f"{name}.{extra[0]}", entry[extra[0]], "is not a cap field: " + ", ".join(_CAP_KEYS)
            )
        try:
            out.append(FrequencyCap(**dict(entry)))
        except ValidationError as exc:
            field = f"{name}.{exc.field.rsplit('.', 1)[-1]}"
            raise ValidationError(field, exc.value, exc.allowed) from None
    return tuple(out)


def campaign_caps(c: Any, ws: Any = None) -> tuple[FrequencyCap, ...]:
    """The caps campaign ``c`` respects: none with ``ignore_caps``, else its own caps and
    (with a workspace ``ws``, unless ``ignore_workspace_caps``) the workspace's."""
    opt = c.delivery
    if opt.ignore_caps:
        return ()
    caps = tuple(opt.caps)
    if ws is not None and not opt.ignore_workspace_caps:
        caps += workspace_caps(ws)
    return caps


def gap_cap(hours: float) -> FrequencyCap:
    """A minimum gap of ``hours`` between two messages as a rolling cap of one per gap
    (in whole minutes, at least one)."""
    minutes = max(1, int(round(hours * 60)))
    return FrequencyCap(max=1, window=minutes, unit="minutes", kind="rolling", channel="*")
