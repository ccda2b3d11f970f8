"""Specs are frozen values that round-trip through dict, JSON and YAML unchanged."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
import yaml

from engagelab.errors import SpecError
from engagelab.segments import (
    Condition,
    Segment,
    Window,
    did,
    first_time,
    in_segment,
    last_time,
    near,
    prop,
    same_property,
    was_sent,
)

from .conftest import AT

BERLIN = dt.timezone(dt.timedelta(hours=1))
EVERYTHING = Segment(
    (did("Charged", at_least=2, at_most=5, within_days=30, where=[prop("amount") > 9.5, prop("product").isin(["X", "O'Neil"])])
     & prop("city").matches("^Ber") & ~did("Uninstalled"))
    | did("Charged", sum_of=("amount", "between", (10, 99.5)), between=(dt.date(2026, 1, 1), dt.date(2026, 1, 31)))
    | did("Charged", avg_of=("amount", ">=", 3), window=Window(start=dt.datetime(2026, 1, 1, 8, tzinfo=BERLIN), end=AT))
    | (first_time("App Launched", within_days=7) & last_time("Charged", within_days=3, where={"qty": 2}))
    | same_property("Added to Cart", "Charged", "product", within_days=14)
    | near(52.52, 13.405, 2.5) | near(48.1, 11.6, 10, source="events", event="Charged", within_days=30)
    | (was_sent("Onboarding", within_days=14) & ~in_segment("churned"))
    | (prop("signup") >= dt.datetime(2025, 6, 1, tzinfo=BERLIN)) | prop("vip").eq(True) | prop("email").not_exists()
    | prop("city").between("A", "C") | prop("tags").contains("100%_\\'") | prop("age").isin([18, 19.5])
    | did("Viewed", exactly=0, within_days=3),
    name="everything ✓",
    description="uses every condition kind",
)  # fmt: skip


def test_dict_json_yaml_round_trip():
    seg = EVERYTHING
    assert Segment.from_dict(seg.to_dict()) == seg
    assert Segment.from_json(seg.to_json()) == seg
    assert Segment.from_yaml(seg.to_yaml()) == seg
    # the serialised forms are plain data
    json.loads(seg.to_json())
    assert yaml.safe_load(seg.to_yaml()) == json.loads(seg.to_json())


def test_round_trip_compiles_to_identical_sql():
    resolve = {"churned": Segment(did("Uninstalled"))}.__getitem__
    assert Segment.from_yaml(EVERYTHING.to_yaml()).to_sql(
        at=AT, resolve=resolve
    ) == EVERYTHING.to_sql(at=AT, resolve=resolve)


def test_datetimes_are_normalised_to_utc_and_survive():
    f = prop("signup") >= dt.datetime(2025, 6, 1, tzinfo=BERLIN)
    assert f.value == dt.datetime(2025, 5, 31, 23, tzinfo=dt.UTC)
    back = Condition.from_dict(json.loads(json.dumps(f.to_dict())))
    assert back == f and back.value.tzinfo is not None


def test_specs_are_frozen_and_hashable_with_replace():
    seg = EVERYTHING
    with pytest.raises(dataclasses.FrozenInstanceError):
        seg.name = "x"  # type: ignore[misc]
    c = did("Charged", at_least=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.at_least = 3  # type: ignore[misc]
    assert c.replace(at_least=3).at_least == 3 and c.at_least == 2
    assert seg.replace(name="y").name == "y"
    assert isinstance(prop("age").isin([1, 2]).value, tuple)
    assert len({seg, Segment.from_json(seg.to_json())}) == 1


def test_from_dict_rejects_unknown_kinds_and_fields():
    with pytest.raises(SpecError, match="kind == 'bogus', must be one of"):
        Condition.from_dict({"kind": "bogus"})
    with pytest.raises(SpecError, match="did.colour == 'red', is not a field of 'did'"):
        Condition.from_dict({"kind": "did", "event": "x", "colour": "red"})
    with pytest.raises(SpecError, match="segment.extra"):
        Segment.from_dict({"condition": did("x").to_dict(), "extra": 1})
    with pytest.raises(SpecError, match="version == 2"):
        Segment.from_dict({"version": 2, "condition": did("x").to_dict()})


def test_repr_and_html_are_readable():
    seg = Segment(
        did("Charged", at_least=2, within_days=30)
        & prop("city").matches("^Ber")
        & ~did("Uninstalled")
    )
    assert repr(seg) == (
        "Segment(did 'Charged' ≥ 2 times in the last 30 days AND city matches '^Ber' AND did not do 'Uninstalled')"
    )
    assert str((did("A") | did("B")) & ~(prop("x") == 1)) == "(did 'A' OR did 'B') AND NOT x = 1"
    html = Segment(prop("city") == "<b>&", name="a<b")._repr_html_()
    assert "&lt;b&gt;&amp;" in html and "a&lt;b" in html and "'<b>&'" not in html
    assert "did 'A' ≤ 3 times" in str(did("A", at_most=3))
    assert "exactly 2 times" in str(did("A", exactly=2)) and "2 to 4 times" in str(
        did("A", at_least=2, at_most=4)
    )
    assert "including never" in str(did("A", at_least=0, at_most=4))
    assert str(~was_sent("X")) == "was not sent a message labelled 'X'"
    assert str(~in_segment("s")) == "not in segment 's'"
