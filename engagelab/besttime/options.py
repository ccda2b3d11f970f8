"""BestTimeOptions: the frozen, validated, JSON-serialisable settings of a best-time policy."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from engagelab.errors import ValidationError
from engagelab.frozen import frozen, replace_spec
from engagelab.validate import check_choice, check_int, check_number, check_str

__all__ = ["GRANULARITIES", "MODES", "BestTimeOptions", "format_minute", "parse_time"]

MODES = ("clevertap", "bayes")
GRANULARITIES = ("hour", "hour_of_week")
PASSED = ("next_day", "drop")
#: CleverTap's default slot for users without history: right after the 12th two-hour bucket.
CLEVERTAP_DEFAULT_SLOT = "00:00"


def parse_time(name: str, value: Any) -> int:
    """Minutes after local midnight of an ``'HH:MM'`` text (``'24:00'`` is allowed).

    >>> parse_time("earliest", "08:30")
    510
    >>> parse_time("earliest", "8h")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: earliest == '8h', must be a local time 'HH:MM'
    """
    rule = "must be a local time 'HH:MM'"
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise ValidationError(name, value, rule)
    hh, mm = value[:2], value[3:]
    if not (hh.isdigit() and mm.isdigit()):
        raise ValidationError(name, value, rule)
    h, m = int(hh), int(mm)
    if m > 59 or h > 24 or (h == 24 and m):
        raise ValidationError(name, value, rule)
    return h * 60 + m


def format_minute(minute: int) -> str:
    """``'HH:MM'`` of a minute of the day.

    >>> format_minute(510)
    '08:30'
    """
    return f"{int(minute) // 60:02d}:{int(minute) % 60:02d}"


@frozen
@dataclasses.dataclass(frozen=True)
class BestTimeOptions:
    """How to choose each user's send time.

    Args:
        mode: ``'clevertap'`` (one event, twelve two-hour buckets, most active bucket over
            the last ``lookback_days``, ties to the earliest, no history -> fallback slot)
            or ``'bayes'`` (hour histogram over ``events`` with recency weights, shrunk
            toward a segment/global prior with a fitted prior strength).
        window: ``(earliest, latest)`` local delivery window, ``'HH:MM'`` each,
            ``earliest < latest``; slots outside are moved inside (reason
            ``outside_window``).
        fallback_slot: local ``'HH:MM'`` for users without usable history; ``None`` means
            CleverTap's default (``'00:00'``, right after the 12th bucket) in clevertap mode
            and the prior's best hour in bayes mode.
        passed: what to do with a slot already passed on the logical date when the plan
            is made: ``'next_day'`` (same local time on the next day) or ``'drop'``.
        explore_share: share of users sent at a uniformly random minute of the window
            (reason ``exploration``, with its propensity), for unbiased evaluation.
        seed: salt of the exploration draw (deterministic per user and logical date).
        events: engagement events to learn from (clevertap mode takes exactly one).
        lookback_days: history length.
        half_life_days: recency weight half life in bayes mode (``None``: no weighting).
        min_events: users with fewer events get reason ``fallback_little_history``.
        prior_by: optional profile column whose groups get their own prior (bayes mode).
        dnd: do-not-disturb local windows ``[(start, end), ...]``; ``start > end`` wraps
            midnight.
        granularity: bayes mode's histogram: ``'hour'`` (24 local hours, one slot for
            every day) or ``'hour_of_week'`` (168 local hours of the week: the slot depends
            on the weekday of the logical date; each user's weekday-given-hour shares are
            shrunk toward the group's with a second fitted prior strength).

    Example:
        >>> o = BestTimeOptions(mode="bayes", window=("08:00", "21:00"), explore_share=0.1)
        >>> BestTimeOptions.from_json(o.to_json()) == o
        True
        >>> BestTimeOptions(window=("21:00", "08:00"))
        Traceback (most recent call last):
        ...
        engagelab.errors.ValidationError: window == ('21:00', '08:00'), must be (earliest, latest) with earliest < latest
    """

    mode: str = "bayes"
    window: tuple[str, str] = ("08:00", "22:00")
    fallback_slot: str | None = None
    passed: str = "next_day"
    explore_share: float = 0.0
    seed: int = 0
    events: tuple[str, ...] = ("App Launched",)
    lookback_days: int = 180
    half_life_days: float | None = 60.0
    min_events: int = 3
    prior_by: str | None = None
    dnd: tuple[tuple[str, str], ...] = ()
    granularity: str = "hour"

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        window = _pair("window", self.window)
        lo, hi = parse_time("window earliest", window[0]), parse_time("window latest", window[1])
        if lo >= hi:
            raise ValidationError(
                "window", window, "must be (earliest, latest) with earliest < latest"
            )
        object.__setattr__(self, "window", window)
        if self.fallback_slot is not None:
            parse_time("fallback_slot", self.fallback_slot)
        check_choice("passed", self.passed, PASSED)
        check_number("explore_share", self.explore_share, low=0, high=1)
        check_int("seed", self.seed, low=0)
        events = self.events
        if isinstance(events, str) or not isinstance(events, list | tuple) or not events:
            raise ValidationError("events", events, "must be a non-empty list of event names")
        for e in events:
            check_str("event name", e)
        object.__setattr__(self, "events", tuple(dict.fromkeys(events)))
        if self.mode == "clevertap" and len(self.events) != 1:
            raise ValidationError(
                "events", self.events, "must be exactly one event in clevertap mode"
            )
        check_choice("granularity", self.granularity, GRANULARITIES)
        if self.mode == "clevertap" and self.granularity != "hour":
            raise ValidationError(
                "granularity", self.granularity, "must be 'hour' in clevertap mode"
            )
        check_int("lookback_days", self.lookback_days, low=1, high=3660)
        check_number("half_life_days", self.half_life_days, low=0, low_open=True, allow_none=True)
        check_int("min_events", self.min_events, low=1)
        if self.prior_by is not None:
            check_str("prior_by", self.prior_by)
        if not isinstance(self.dnd, list | tuple):
            raise ValidationError("dnd", self.dnd, "must be a list of (start, end) local times")
        dnd = tuple(_pair("dnd window", w) for w in self.dnd)
        for s, e in dnd:
            if parse_time("dnd start", s) == parse_time("dnd end", e):
                raise ValidationError("dnd window", (s, e), "must have start != end")
        object.__setattr__(self, "dnd", dnd)
        if not self.allowed_minutes().any():
            raise ValidationError(
                "window", self.window, "leaves no allowed minute once dnd windows are removed"
            )

    def allowed_minutes(self) -> np.ndarray:
        """Boolean mask of the 1440 local minutes a message may be sent at."""
        lo, hi = parse_time("earliest", self.window[0]), parse_time("latest", self.window[1])
        mask = np.zeros(1440, dtype=bool)
        mask[lo : min(hi, 1439) + 1] = True
        for s, e in self.dnd:
            a, b = parse_time("dnd start", s), parse_time("dnd end", e)
            if a < b:
                mask[a:b] = False
            else:
                mask[a:] = False
                mask[:b] = False
        return mask

    def replace(self, **changes: Any) -> BestTimeOptions:
        """A copy with some fields changed (options are frozen), validated again."""
        return replace_spec(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["window"] = list(self.window)
        out["events"] = list(self.events)
        out["dnd"] = [list(w) for w in self.dnd]
        return out

    def to_json(self) -> str:
        """JSON text that :meth:`from_json` turns back into equal options."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BestTimeOptions:
        """Build from :meth:`to_dict` output; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise ValidationError("best_time options", data, "must be a mapping")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValidationError(
                "BestTimeOptions key", unknown[0], "must be one of " + ", ".join(names)
            )
        kw = dict(data)
        for key in ("window",):
            if isinstance(kw.get(key), list):
                kw[key] = tuple(kw[key])
        if isinstance(kw.get("events"), list):
            kw["events"] = tuple(kw["events"])
        if isinstance(kw.get("dnd"), list):
            kw["dnd"] = tuple(tuple(w) if isinstance(w, list) else w for w in kw["dnd"])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> BestTimeOptions:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def _pair(name: str, value: Any) -> tuple[str, str]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValidationError(name, value, "must be a pair (start, end) of local times 'HH:MM'")
    return (value[0], value[1])
