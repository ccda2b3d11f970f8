"""The clock abstraction: the system clock is aware UTC; the simulated one moves only
when told, and its sleep advances it without waiting."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from engagelab.clock import SimulatedClock, SystemClock, as_clock, now_us
from engagelab.errors import ValidationError


def test_system_clock_is_aware_utc_and_sleeps():
    c = SystemClock()
    a = c.now()
    assert a.tzinfo is not None and a.utcoffset() == dt.timedelta(0)
    t0 = time.monotonic()
    c.sleep(0.05)
    assert time.monotonic() - t0 >= 0.05
    assert abs(now_us(c) - int(dt.datetime.now(dt.UTC).timestamp() * 1e6)) < 1_000_000


def test_simulated_clock_moves_only_when_told():
    c = SimulatedClock("2026-01-20T09:00:00Z")
    assert c.now() == dt.datetime(2026, 1, 20, 9, tzinfo=dt.UTC)
    t0 = time.monotonic()
    c.sleep(3600)
    assert time.monotonic() - t0 < 0.5
    assert c.now() == dt.datetime(2026, 1, 20, 10, tzinfo=dt.UTC)
    c.advance(1.5)
    assert now_us(c) == int(
        dt.datetime(2026, 1, 20, 10, 0, 1, 500000, tzinfo=dt.UTC).timestamp() * 1e6
    )
    with pytest.raises(ValidationError, match="before the clock"):
        c.set("2026-01-01")
    with pytest.raises(ValidationError, match="seconds"):
        c.advance(-1)


def test_as_clock_checks_the_object():
    assert isinstance(as_clock(None), SystemClock)
    with pytest.raises(ValidationError, match="clock"):
        as_clock(object())  # type: ignore[arg-type]
