"""Every operator, on profile and event properties, against the pandas reference,
with values that try to break quoting (quotes, ``'; DROP TABLE``, backslashes,
unicode, ``%``/``_``)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from engagelab.segments import PropertyFilter, did, prop

from .conftest import AT, NASTY, PRODUCTS

STRING_OPS = ["=", "!=", "<", "<=", ">", ">=", "contains", "starts_with"]


@pytest.mark.parametrize("op", STRING_OPS)
@pytest.mark.parametrize("value", NASTY)
def test_string_operators_with_nasty_values(world, op, value):
    world.check(PropertyFilter("city", op, value))


@pytest.mark.parametrize("value", NASTY)
def test_regex_operators_with_nasty_values(world, value):
    pattern = re.escape(value)
    hits = world.check(prop("city").matches(pattern))
    misses = world.check(prop("city").not_matches(pattern))
    assert not hits & misses
    world.check(prop("city").matches("^" + pattern + "$"))


def test_string_in_between_and_existence(world):
    world.check(prop("city").isin(NASTY[:6]))
    world.check(prop("city").isin(["'; DROP TABLE events; --"]))
    world.check(prop("city").between("B", "Z"))
    world.check(prop("city").exists())
    world.check(prop("city").not_exists())


def test_operators_find_the_planted_rows(world):
    """The reference itself is not vacuous: the nasty values are really present."""
    cities = set(world.profiles["city"].dropna())
    assert {"O'Brien", "'; DROP TABLE events; --", "back\\slash", "100%"} <= cities
    assert world.check(prop("city").eq("O'Brien"))
    assert world.check(prop("city").contains("%"))
    # '%' and '_' are literal text: 'Ber%lin' does not start with 'Ber_'
    got = world.check(prop("city").starts_with("Ber_"))
    names = dict(zip(world.profiles["user_id"], world.profiles["city"], strict=True))
    assert all(names[u] == "Ber_lin" for u in got)


@pytest.mark.parametrize(
    "f",
    [
        prop("age") == 30,
        prop("age") != 30,
        prop("age") < 30,
        prop("age") <= 30,
        prop("age") > 30,
        prop("age") >= 30,
        prop("age").between(20, 40),
        prop("age").isin([11, 22, 33, 44, 55]),
        prop("age").exists(),
        prop("age").not_exists(),
        prop("score") > 0.5,
        prop("score").between(-5.5, 5.5),
        prop("score") <= -3,
        prop("vip") == True,  # noqa: E712
        prop("vip") != True,  # noqa: E712
        prop("vip").not_exists(),
        prop("signup") >= AT - dt.timedelta(days=100),
        prop("signup").between(AT - dt.timedelta(days=300), AT - dt.timedelta(days=30)),
        prop("signup") < dt.datetime(2025, 12, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ],  # fmt: skip
    ids=str,
)
def test_typed_profile_operators(world, f):
    world.check(f)
    world.check(~f)


@pytest.mark.parametrize(
    "where",
    [
        prop("amount") > 30,
        prop("amount").between(5, 15),
        prop("qty").isin([1, 3]),
        prop("product") == "O'Neil",
        prop("product").contains("%_"),
        prop("product").starts_with("\\"),
        prop("product").matches("^[XY]$"),
        prop("product").not_matches("X"),
        prop("product").not_exists(),
        prop("labels").contains("it's"),
        prop("labels").contains("50%"),
        prop("labels").exists(),
    ],  # fmt: skip
    ids=str,
)
def test_event_property_filters(world, where):
    world.check(did("Charged", where=where) | did("Notification Sent", where=where))
    world.check(did("Added to Cart", where=where, at_least=2, within_days=60))


@pytest.mark.parametrize("value", NASTY + PRODUCTS)
def test_event_name_and_event_filters_with_nasty_values(world, value):
    if value.strip():
        world.check(did(value))
    world.check(did("Charged", where={"product": value}))
    world.check(did("Charged", where=prop("product").contains(value)))
