"""One clock for every component that needs the time: the send queue, the dispatcher and
the tests or demos that drive time.

:class:`SystemClock` is the wall clock; :class:`SimulatedClock` starts where it is told,
moves only when set or advanced, and its ``sleep`` advances it instead of waiting, so a
day of releases runs in milliseconds.

Example:
    >>> import datetime as dt
    >>> c = SimulatedClock("2026-01-20T09:00:00Z")
    >>> c.now().isoformat()
    '2026-01-20T09:00:00+00:00'
    >>> c.sleep(90); c.now().isoformat()
    '2026-01-20T09:01:30+00:00'
    >>> c.set(dt.datetime(2026, 1, 21, tzinfo=dt.UTC)); c.now().isoformat()
    '2026-01-21T00:00:00+00:00'
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any, Protocol, runtime_checkable

from engagelab.errors import ValidationError

__all__ = ["Clock", "SimulatedClock", "SystemClock", "as_clock", "now_us"]

_US = 1_000_000


def _instant(name: str, value: Any) -> dt.datetime:
    """An aware UTC datetime from a datetime (naive taken as UTC) or ISO 8601 text."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(name, value, "must be a datetime or ISO 8601 text") from None
    if not isinstance(value, dt.datetime):
        raise ValidationError(name, value, "must be a datetime or ISO 8601 text")
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


@runtime_checkable
class Clock(Protocol):
    """What a component needs of a clock."""

    def now(self) -> dt.datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a simulated clock advances instead)."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class SimulatedClock:
    """A clock that moves only when told: :meth:`set`, :meth:`advance` or :meth:`sleep`
    (which advances by the time asked for and returns at once). Thread-safe."""

    def __init__(self, start: Any = None):
        self._t = dt.datetime.now(dt.UTC) if start is None else _instant("start", start)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._t

    def set(self, when: Any) -> None:
        """Move the clock to ``when`` (never backwards)."""
        t = _instant("when", when)
        with self._lock:
            if t < self._t:
                raise ValidationError(
                    "when", t.isoformat(), f"is before the clock's time {self._t.isoformat()}"
                )
            self._t = t

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
            raise ValidationError("seconds", seconds, "must be a number >= 0")
        with self._lock:
            self._t += dt.timedelta(seconds=float(seconds))

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def __repr__(self) -> str:
        return f"SimulatedClock({self.now().isoformat()!r})"


def as_clock(clock: Clock | None) -> Clock:
    """``clock``, or the system clock for None (checked to have ``now`` and ``sleep``)."""
    if clock is None:
        return SystemClock()
    if not isinstance(clock, Clock):
        raise ValidationError(
            "clock", type(clock).__name__, "must have now() and sleep(seconds) (a Clock)"
        )
    return clock


def now_us(clock: Clock) -> int:
    """The clock's time as microseconds since the epoch (UTC)."""
    t = clock.now()
    if t.tzinfo is None:
        raise ValidationError("clock.now()", t.isoformat(), "must be timezone-aware")
    return int(t.timestamp() * _US)
