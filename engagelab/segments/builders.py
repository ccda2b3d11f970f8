"""Short builders for notebook use; each returns a frozen :class:`Condition`.

>>> from engagelab.segments import did, prop
>>> c = did("Charged", at_least=2, within_days=30) & prop("city").matches("^Ber") & ~did("Uninstalled")
>>> print(c)
did 'Charged' ≥ 2 times in the last 30 days AND city matches '^Ber' AND did not do 'Uninstalled'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from engagelab.errors import SpecError
from engagelab.segments._values import Window
from engagelab.segments.base import Condition
from engagelab.segments.events import Aggregate, ConstantProperty, DidEvent, FirstOrLast
from engagelab.segments.filters import PropertyFilter, prop
from engagelab.segments.geo import Geofence
from engagelab.segments.segment import InSegment, SentLabel

__all__ = [
    "did", "did_not", "first_time", "in_segment", "last_time", "near", "not_in_segment",
    "prop", "same_property", "was_sent", "window",
]  # fmt: skip

Where = PropertyFilter | Sequence[PropertyFilter] | Mapping[str, Any] | None


def window(
    within_days: int | None = None,
    between: tuple[dt.date, dt.date] | None = None,
    window: Window | None = None,
) -> Window | None:
    """One window from whichever of ``within_days``, ``between`` or ``window`` is given.

    >>> window(within_days=7)
    Window(last_days=7, start=None, end=None)
    """
    given = [w for w in (within_days, between, window) if w is not None]
    if len(given) > 1:
        raise SpecError("window", given, "must be given once: within_days, between or window")
    if within_days is not None:
        return Window(last_days=within_days)
    if between is not None:
        if not isinstance(between, tuple | list) or len(between) != 2:
            raise SpecError("between", between, "must be a (start, end) pair of dates or datetimes")
        return Window(start=between[0], end=between[1])
    if window is not None and not isinstance(window, Window):
        raise SpecError("window", window, "must be a Window")
    return window


def _where(where: Where) -> tuple[PropertyFilter, ...]:
    if where is None:
        return ()
    if isinstance(where, PropertyFilter):
        return (where,)
    if isinstance(where, Mapping):
        return tuple(PropertyFilter(k, "=", v) for k, v in where.items())
    if isinstance(where, Sequence) and not isinstance(where, str):
        return tuple(where)
    raise SpecError(
        "where", where, "must be a filter, a list of filters or a {column: value} mapping"
    )


def _agg(func: str, spec: Any) -> Aggregate:
    if not isinstance(spec, tuple | list) or len(spec) != 3:
        raise SpecError(
            f"{func}_of", spec, "must be a (column, op, value) triple, e.g. ('amount', '>=', 100)"
        )
    return Aggregate(func, *spec)


def did(
    event: str,
    *,
    where: Where = None,
    at_least: int | None = None,
    at_most: int | None = None,
    exactly: int | None = None,
    sum_of: tuple[str, str, Any] | None = None,
    avg_of: tuple[str, str, Any] | None = None,
    within_days: int | None = None,
    between: tuple[dt.date, dt.date] | None = None,
    window: Window | None = None,
) -> DidEvent:
    """Did ``event`` (optionally matching ``where``), with count / sum / average limits.

    >>> print(did("Charged", where={"product": "X"}, sum_of=("amount", ">=", 100), within_days=7))
    did 'Charged' where product = 'X' with sum of amount ≥ 100 in the last 7 days
    >>> did("Charged", exactly=2, at_least=1)
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: exactly == 2, must not be combined with at_least/at_most
    """
    if exactly is not None:
        if at_least is not None or at_most is not None:
            raise SpecError("exactly", exactly, "must not be combined with at_least/at_most")
        at_least = at_most = exactly
    if sum_of is not None and avg_of is not None:
        raise SpecError(
            "avg_of", avg_of, "must not be combined with sum_of (combine two did() with &)"
        )
    aggregate = (
        _agg("sum", sum_of)
        if sum_of is not None
        else _agg("avg", avg_of)
        if avg_of is not None
        else None
    )
    return DidEvent(
        event,
        where=_where(where),
        at_least=1 if at_least is None else at_least,
        at_most=at_most,
        aggregate=aggregate,
        window=_window_of(within_days, between, window),
    )


def _window_of(within_days: Any, between: Any, win: Any) -> Window | None:
    return window(within_days=within_days, between=between, window=win)


def did_not(
    event: str, *, where: Where = None, within_days: int | None = None,
    between: tuple[dt.date, dt.date] | None = None, window: Window | None = None,
) -> Condition:  # fmt: skip
    """Did not do ``event`` (users with no events at all qualify): ``~did(event, ...)``."""
    return ~did(event, where=where, within_days=within_days, between=between, window=window)


def first_time(
    event: str, *, where: Where = None, within_days: int | None = None,
    between: tuple[dt.date, dt.date] | None = None, window: Window | None = None,
) -> FirstOrLast:  # fmt: skip
    """The user's first ever ``event`` happened inside the window."""
    return FirstOrLast(
        event, "first", _required(_window_of(within_days, between, window)), _where(where)
    )


def last_time(
    event: str, *, where: Where = None, within_days: int | None = None,
    between: tuple[dt.date, dt.date] | None = None, window: Window | None = None,
) -> FirstOrLast:  # fmt: skip
    """The user's most recent ``event`` happened inside the window."""
    return FirstOrLast(
        event, "last", _required(_window_of(within_days, between, window)), _where(where)
    )


def _required(win: Window | None) -> Window:
    if win is None:
        raise SpecError("window", None, "must be given: within_days, between or window")
    return win


def same_property(
    did_event: str, not_event: str, column: str, *, within_days: int | None = None,
    between: tuple[dt.date, dt.date] | None = None, window: Window | None = None,
) -> ConstantProperty:  # fmt: skip
    """Did ``did_event`` with some value of ``column`` and not ``not_event`` with that value.

    >>> print(same_property("Added to Cart", "Charged", "product", within_days=3))
    did 'Added to Cart' and not 'Charged' with the same product in the last 3 days
    """
    return ConstantProperty(did_event, not_event, column, _window_of(within_days, between, window))


def near(
    latitude: float, longitude: float, radius_km: float, *, source: str = "profile",
    event: str | None = None, within_days: int | None = None,
    between: tuple[dt.date, dt.date] | None = None, window: Window | None = None,
) -> Geofence:  # fmt: skip
    """Within ``radius_km`` of a point, by profile location or by event coordinates."""
    return Geofence(
        latitude, longitude, radius_km, source, event, _window_of(within_days, between, window)
    )


def was_sent(
    label: str, *, within_days: int | None = None,
    between: tuple[dt.date, dt.date] | None = None, window: Window | None = None,
) -> SentLabel:  # fmt: skip
    """Was sent a message carrying ``label`` (optionally inside the window)."""
    return SentLabel(label, _window_of(within_days, between, window))


def in_segment(name: str) -> InSegment:
    """Member of the saved segment ``name`` (resolved when compiling)."""
    return InSegment(name)


def not_in_segment(name: str) -> Condition:
    """Not a member of the saved segment ``name``."""
    return ~InSegment(name)
