"""RetentionSpec: the frozen, validated description of a retention query.

Example:
    >>> spec = RetentionSpec("App Launched", period="week", periods=6, mode="on-or-after")
    >>> spec.return_event, spec.columns()
    ('App Launched', ['Week 0', 'Week 1', 'Week 2', 'Week 3', 'Week 4', 'Week 5'])
    >>> RetentionSpec("App Launched", brackets=(1, 4, 8)).columns()
    ['Day 1–3', 'Day 4–7']
    >>> RetentionSpec.from_dict(spec.to_dict()) == spec
    True
    >>> RetentionSpec("App Launched", mode="after")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: mode == 'after', must be one of 'on', 'on-or-after'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Mapping
from typing import Any

from engagelab.errors import ValidationError
from engagelab.validate import check_choice, check_datetime, check_int, check_number, check_str

__all__ = ["CHUNK_US", "PERIODS", "RetentionSpec"]

PERIODS = ("day", "week", "month")
#: Length of a rolling window in microseconds (a rolling "month" is 30 days).
CHUNK_US = {"day": 86_400_000_000, "week": 7 * 86_400_000_000, "month": 30 * 86_400_000_000}
_SCALARS = (str, int, float, bool)


def _where(name: str, where: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """Property filters as sorted ``((column, (allowed values...)), ...)``."""
    if where is None:
        return ()
    if isinstance(where, tuple) and all(isinstance(w, tuple) and len(w) == 2 for w in where):
        where = dict(where)
    if not isinstance(where, Mapping):
        raise ValidationError(name, where, "must be a mapping column -> value or list of values")
    out = []
    for col, vals in where.items():
        check_str(f"{name} column", col)
        vals = tuple(vals) if isinstance(vals, list | tuple | set | frozenset) else (vals,)
        if not vals or not all(isinstance(v, _SCALARS) for v in vals):
            raise ValidationError(
                f"{name}[{col!r}]", list(vals), "must be a string/number/bool or a list of them"
            )
        out.append((col, tuple(sorted(vals, key=repr))))
    return tuple(sorted(out))


@dataclasses.dataclass(frozen=True)
class RetentionSpec:
    """What to count: who starts a cohort, what counts as a return, and in which periods.

    Args:
        start_event: the event that puts a user in a cohort.
        return_event: the event that counts as coming back (default: ``start_event``).
        period: ``'day'``, ``'week'`` (Monday-based) or ``'month'``.
        periods: number of periods shown, period 0 included.
        mode: ``'on'`` (returned in period N) or ``'on-or-after'`` (returned in period N
            or any later one, unbounded up to the end of the data).
        cohort: ``'first'`` (cohort of the first start event ever) or ``'recurring'``
            (a cohort for every period in which the user did the start event).
        window: ``'calendar'`` (calendar periods in ``timezone``) or ``'rolling'`` (24-hour,
            7-day or 30-day windows counted from the user's start event).
        brackets: custom period brackets as increasing boundaries; ``(1, 4, 8)`` gives
            "Day 1–3" and "Day 4–7" (``periods`` is then ignored).
        start_where / return_where: property filters on the start / return events,
            ``{column: value or [values]}`` (values are bound as SQL literals).
        start_label: only start events whose ``labels`` contain this label.
        breakdown: a profile property; one matrix per value.
        since: first cohort date (default: the start of the data).
        until: end of observation, exclusive (default: the end of the day, in ``timezone``,
            of the last event); later cells are censored.
        confidence: level of the Wilson intervals.
        timezone: IANA time zone of calendar periods and cohort dates (default ``'UTC'``):
            with ``'America/New_York'`` a day cohort is a New York calendar day, and
            "Day 1" the next New York day (23 or 25 hours long across a DST change).
    """

    start_event: str
    return_event: str | None = None
    period: str = "day"
    periods: int = 8
    mode: str = "on"
    cohort: str = "first"
    window: str = "calendar"
    brackets: tuple[int, ...] | None = None
    start_where: Any = ()
    return_where: Any = ()
    start_label: str | None = None
    breakdown: str | None = None
    since: Any = None
    until: Any = None
    confidence: float = 0.95
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        check_str("start_event", self.start_event)
        if self.return_event is None:
            object.__setattr__(self, "return_event", self.start_event)
        check_str("return_event", self.return_event)
        check_choice("period", self.period, PERIODS)
        check_int("periods", self.periods, low=1, high=1000)
        check_choice("mode", self.mode, ["on", "on-or-after"])
        check_choice("cohort", self.cohort, ["first", "recurring"])
        check_choice("window", self.window, ["calendar", "rolling"])
        if self.brackets is not None:
            b = self.brackets
            if (
                not isinstance(b, list | tuple)
                or len(b) < 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in b)
                or any(x < 0 for x in b)
                or any(y <= x for x, y in zip(b, b[1:], strict=False))
            ):
                raise ValidationError(
                    "brackets", b, "must be at least two increasing period numbers >= 0"
                )
            object.__setattr__(self, "brackets", tuple(b))
        object.__setattr__(self, "start_where", _where("start_where", self.start_where))
        object.__setattr__(self, "return_where", _where("return_where", self.return_where))
        if self.start_label is not None:
            check_str("start_label", self.start_label)
        if self.breakdown is not None:
            check_str("breakdown", self.breakdown)
        for name in ("since", "until"):
            value = getattr(self, name)
            object.__setattr__(self, name, check_datetime(name, value, allow_none=True))
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValidationError("since", str(self.since), f"must be before until ({self.until})")
        check_number("confidence", self.confidence, low=0, high=1, low_open=True, high_open=True)
        check_str("timezone", self.timezone)
        try:
            zone = zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError(
                "timezone", self.timezone, "must be an IANA time zone name such as 'Europe/Berlin'"
            ) from None
        object.__setattr__(self, "_zone", zone)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The :class:`zoneinfo.ZoneInfo` of ``timezone``."""
        return self._zone  # type: ignore[attr-defined,no-any-return]

    @property
    def utc(self) -> bool:
        """True when calendar periods are UTC (the SQL then needs no zone conversion)."""
        return self.timezone in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu")

    # ---------------------------------------------------------------- periods
    @property
    def n_cells(self) -> int:
        """Number of period columns (periods, or brackets)."""
        return len(self.brackets) - 1 if self.brackets else self.periods

    @property
    def horizon(self) -> int:
        """One past the last period number that any column covers."""
        return self.brackets[-1] if self.brackets else self.periods

    def bounds(self) -> list[tuple[int, int]]:
        """``[(first period, last period)]`` of each column."""
        if self.brackets:
            return [(lo, hi - 1) for lo, hi in zip(self.brackets, self.brackets[1:], strict=False)]
        return [(k, k) for k in range(self.periods)]

    def columns(self) -> list[str]:
        """Column names: ``'Day 0'``, ... or bracket names ``'Day 1–3'``."""
        unit = self.period.capitalize()
        return [f"{unit} {lo}" if lo == hi else f"{unit} {lo}–{hi}" for lo, hi in self.bounds()]

    # ------------------------------------------------------------ (de)serialise
    def replace(self, **changes: Any) -> RetentionSpec:
        """A copy with some fields changed (specs are immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("start_where", "return_where"):
                v = {c: list(vals) for c, vals in v}
            elif isinstance(v, dt.datetime):
                v = v.isoformat()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetentionSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValidationError(
                "retention key", unknown[0], "must be one of " + ", ".join(sorted(names))
            )
        return cls(**dict(data))
