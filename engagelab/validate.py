"""Uniform validation helpers: every message names the field, the value and what is allowed."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Literal, overload

from engagelab.errors import ValidationError

__all__ = [
    "check_choice",
    "check_datetime",
    "check_int",
    "check_number",
    "check_str",
    "check_timezone",
    "valid_timezone",
]


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> Any:
    """Check that ``value`` is a finite real number inside the given bounds.

    >>> check_number("alpha", 0.05, low=0, high=1, low_open=True, high_open=True)
    0.05
    >>> check_number("alpha", 1.2, low=0, high=1, low_open=True, high_open=True)
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: alpha == 1.2, must be in (0, 1)
    """
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValidationError(name, value, "must be a number")
    if math.isinf(value):
        raise ValidationError(name, value, "must be finite")
    lo_bad = low is not None and (value <= low if low_open else value < low)
    hi_bad = high is not None and (value >= high if high_open else value > high)
    if lo_bad or hi_bad:
        raise ValidationError(name, value, "must be " + _interval(low, high, low_open, high_open))
    return value


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool) inside ``[low, high]``.

    >>> check_int("days", 0, low=1)
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: days == 0, must be an integer >= 1
    """
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            rule = f"must be an integer in [{low}, {high}]"
        elif low is not None:
            rule = f"must be an integer >= {low}"
        elif high is not None:
            rule = f"must be an integer <= {high}"
        else:
            rule = "must be an integer"
        raise ValidationError(name, value, rule)
    return value


def check_str(name: str, value: Any, *, allow_empty: bool = False) -> str:
    """Check that ``value`` is a string (non-empty unless allowed)."""
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise ValidationError(name, value, "must be a non-empty string")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``allowed``.

    >>> check_choice("period", "year", ["day", "week", "month"])
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: period == 'year', must be one of 'day', 'week', 'month'
    """
    allowed = list(allowed)
    if value not in allowed:
        raise ValidationError(name, value, "must be one of " + ", ".join(repr(a) for a in allowed))
    return value


@lru_cache(maxsize=4096)
def valid_timezone(tz: str) -> bool:
    """True if ``tz`` is a known IANA time zone name."""
    if not isinstance(tz, str) or not tz or tz != tz.strip():
        return False
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def check_timezone(name: str, value: Any) -> str:
    """Check that ``value`` is an IANA time zone name such as ``'Europe/Berlin'``."""
    if not valid_timezone(value):
        raise ValidationError(name, value, "must be an IANA time zone name such as 'Europe/Berlin'")
    return value


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


@overload
def check_datetime(name: str, value: Any, *, allow_none: Literal[False] = ...) -> dt.datetime: ...
@overload
def check_datetime(name: str, value: Any, *, allow_none: bool) -> dt.datetime | None: ...
def check_datetime(name: str, value: Any, *, allow_none: bool = False) -> dt.datetime | None:
    """A timezone-aware UTC datetime from a datetime, date, pandas Timestamp or ISO text.

    Naive values are taken as UTC; a date means its midnight UTC.

    >>> check_datetime("at", "2026-01-31")
    datetime.datetime(2026, 1, 31, 0, 0, tzinfo=datetime.timezone.utc)
    >>> check_datetime("at", "soon")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: at == 'soon', must be a datetime, a date or ISO 8601 text
    """
    if value is None:
        if allow_none:
            return None
        raise ValidationError(name, value, "must be a datetime, a date or ISO 8601 text")
    import pandas as pd

    try:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValidationError(name, value, "must be a datetime, a date or ISO 8601 text") from None
    if ts is pd.NaT or pd.isna(ts):
        raise ValidationError(name, value, "must be a datetime, a date or ISO 8601 text")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime().astimezone(dt.UTC)
