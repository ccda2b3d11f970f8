"""The widgets' building blocks: value parsing, the debouncer, guarded callbacks (doctests: tests/test_doctests.py)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from engagelab.widgets._guard import Debouncer, ErrorLine, guarded
from engagelab.widgets._text import format_value, parse_value
from hypothesis import given
from hypothesis import strategies as st

from engagelab.errors import SpecError


@pytest.mark.parametrize(
    ("kind", "op", "text", "value"),
    [
        ("number", "=", " 42 ", 42),
        ("number", "<", "2.5", 2.5),
        ("number", "in", "1, 2,3", (1, 2, 3)),
        ("number", "between", "1 and 2", (1, 2)),
        ("bool", "=", "Yes", True),
        ("bool", "!=", "false", False),
        ("datetime", ">", "2026-01-02", dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
        (
            "datetime",
            "<",
            "2026-01-02T03:00:00+01:00",
            dt.datetime(2026, 1, 2, 2, tzinfo=dt.UTC),
        ),  # fmt: skip
        ("string", "=", " padded ", " padded "),
        ("string", "matches", "^a, b$", "^a, b$"),
        ("string", "exists", "ignored", None),
        (None, "in", "x,y", ("x", "y")),
    ],
)
def test_parse_value(kind, op, text, value):
    assert parse_value("c", kind, op, text) == value


@pytest.mark.parametrize(
    ("kind", "op", "text", "message"),
    [
        ("number", "=", "", "value == '', must be a number for column 'c'"),
        ("bool", "=", "maybe", "must be true or false"),
        ("datetime", "=", "yesterday", "must be an ISO date or date-time"),
        ("number", "between", "1", "must be two values 'low, high'"),
        ("string", "in", "a,,b", "must be a comma-separated list"),
    ],
)
def test_parse_value_errors_name_the_field(kind, op, text, message):
    with pytest.raises(SpecError, match="^value == ") as info:
        parse_value("c", kind, op, text)
    assert message in str(info.value)


@given(st.lists(st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False),
                min_size=1, max_size=5))  # fmt: skip
def test_numbers_round_trip_through_text(values):
    assert parse_value("c", "number", "in", format_value(tuple(values))) == tuple(values)


def test_debouncer_drops_stale_results():
    got = []
    d = Debouncer(0.05, lambda result, error: got.append((result, error)))
    started = threading.Event()

    def slow():
        started.set()
        time.sleep(0.3)
        return "stale"

    d.request(slow)
    assert started.wait(5)  # the first run is in progress ...
    d.request(lambda: "fresh")  # ... when a newer request comes in
    assert d.wait(5)
    time.sleep(0.4)
    assert got == [("fresh", None)]


def test_debouncer_coalesces_quick_requests_and_reports_errors():
    got = []
    d = Debouncer(0.1, lambda result, error: got.append((result, type(error).__name__)))
    for i in range(5):
        d.request(lambda i=i: i)
    assert d.wait(5) and got == [(4, "NoneType")]
    d.request(lambda: 1 / 0)
    assert d.wait(5) and got[-1] == (None, "ZeroDivisionError")
    assert d.generation == 6
    with pytest.raises(ValueError, match="debounce == -1"):
        Debouncer(-1, lambda r, e: None)


def test_guarded_callbacks_show_errors_instead_of_swallowing_them():
    class Thing:
        def __init__(self):
            self.line = ErrorLine("el-test-error")

        @guarded(lambda self: self.line)
        def click(self, _button):
            raise KeyError("no such column")

    thing = Thing()
    assert thing.line.layout.display == "none" and thing.line.text == ""
    thing.click(None)
    assert thing.line.text == "KeyError: 'no such column'"
    assert "no such column" in thing.line.value and thing.line.layout.display is None
    assert isinstance(thing.line.exception, KeyError)
    assert "el-test-error" in thing.line._dom_classes
    thing.line.clear()
    assert thing.line.text == "" and thing.line.value == ""
