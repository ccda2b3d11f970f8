"""Campaign specs are deeply frozen values: read-only mappings, tuples, hashable, and a
change in place fails with an error that names ``.replace()``."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest
import yaml

from engagelab.besttime import BestTimeOptions
from engagelab.campaigns import (
    DND,
    Campaign,
    Delivery,
    FrequencyCap,
    Goal,
    Schedule,
    Variant,
    WinnerTest,
)
from engagelab.channels import Content, DisplayRules, content_from_dict
from engagelab.errors import EngagelabError, FrozenSpecError
from engagelab.frozen import FrozenDict, freeze
from engagelab.segments import Segment, did, prop

AUDIENCE = {
    "condition": {
        "kind": "and",
        "conditions": [
            {"kind": "did", "event": "Charged", "at_least": 1},
            {"kind": "property", "column": "city", "op": "in", "value": ["Berlin", "Paris"]},
        ],
    }
}


def build(**over):
    kw = dict(
        id="hook",
        channel="webhook",
        variants=(
            Variant(
                "A",
                {
                    "url": "https://example.org/{{ profile.user_id }}",
                    "headers": {"X-Campaign": "hook"},
                    "body": {"items": [1, {"name": "{{ profile.user_id }}"}], "tags": ["a"]},
                },
            ),
        ),
        schedule=Schedule("triggered", event="Charged", filters={"plan": "gold", "n": [1, 2]}),
        audience=AUDIENCE,
        labels=["Ops"],
        delivery=Delivery(dnd=[DND(days=["mon", "tue"])], caps=[FrequencyCap(max=2)]),
    )
    kw.update(over)
    return Campaign(**kw)


def test_mappings_inside_a_campaign_are_read_only():
    c = build()
    for mapping in (
        c.audience,
        c.audience["condition"],
        c.schedule.filters,
        c.variants[0].content.headers,
        c.variants[0].content.body,
        c.variants[0].content.body["items"][1],
    ):
        assert isinstance(mapping, FrozenDict)
        with pytest.raises(FrozenSpecError, match=r"read-only: .*\.replace\("):
            mapping["x"] = 1
        with pytest.raises(TypeError):  # what a read-only mapping raises, as mappingproxy does
            mapping.update(x=1)
        with pytest.raises(FrozenSpecError):
            del mapping[next(iter(mapping))]
        with pytest.raises(FrozenSpecError):
            mapping.pop(next(iter(mapping)))
        with pytest.raises(FrozenSpecError):
            mapping.setdefault("y", 2)
        with pytest.raises(FrozenSpecError):
            mapping.clear()
    # what the caller passed in is not captured: changing it later leaves the spec alone
    filters = {"plan": "gold"}
    s = Schedule("triggered", event="Charged", filters=filters)
    filters["plan"] = "silver"
    assert s.filters == {"plan": "gold"}


def test_sequences_inside_a_campaign_are_tuples():
    c = build()
    assert isinstance(c.labels, tuple) and isinstance(c.variants, tuple)
    assert c.audience["condition"]["conditions"][1]["value"] == ("Berlin", "Paris")
    assert c.schedule.filters["n"] == (1, 2)
    assert c.variants[0].content.body["items"][0] == 1
    assert isinstance(c.variants[0].content.body["tags"], tuple)
    assert c.delivery.dnd[0].days == ("mon", "tue") and isinstance(c.delivery.caps, tuple)


def test_frozen_mappings_compare_equal_to_dicts_and_serialise_as_plain_data():
    c = build()
    assert c.schedule.filters == {"plan": "gold", "n": (1, 2)}
    assert json.loads(json.dumps(c.schedule.filters)) == {"plan": "gold", "n": [1, 2]}
    assert yaml.safe_load(yaml.safe_dump(c.audience)) == AUDIENCE
    d = c.to_dict()
    # to_dict is plain data all the way down (what JSON/YAML files have always held)
    assert type(d["audience"]) is dict and type(d["schedule"]["filters"]) is dict
    assert d["audience"] == AUDIENCE and d["schedule"]["filters"] == {"plan": "gold", "n": [1, 2]}
    assert type(d["variants"][0]["content"]["body"]["items"]) is list


def test_campaigns_hash_and_equal_campaigns_hash_equal():
    a, b = build(), build()
    assert a is not b and a == b and hash(a) == hash(b)
    assert hash(Campaign.from_json(a.to_json())) == hash(a)
    assert hash(Campaign.from_yaml(a.to_yaml())) == hash(a)
    assert len({a, b, build(name="other")}) == 2
    seg = Segment(did("Charged") & (prop("city") == "Berlin"))
    assert hash(build(audience=seg)) == hash(build(audience=seg))
    with_bt = build(
        channel="push",
        variants=(Variant("A", {"title": "Hi", "body": "x", "data": {"k": "v"}}),),
        schedule=Schedule("one_time"),
        delivery=Delivery(best_time=BestTimeOptions(window=("09:00", "20:00"))),
        winner_test=None,
    )
    assert hash(with_bt) == hash(with_bt.replace(name=""))


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (build(), "id", "Campaign is frozen: use campaign.replace(id=...) for a changed copy"),
        (Schedule(), "type", "Schedule is frozen: use schedule.replace(type=...)"),
        (
            Variant("A", {"title": "t"}),
            "weight",
            "Variant is frozen: use variant.replace(weight=...)",
        ),
        (Goal(), "event", "Goal is frozen: use goal.replace(event=...)"),
        (WinnerTest(), "rule", "WinnerTest is frozen: use winner_test.replace(rule=...)"),
        (Delivery(), "caps", "Delivery is frozen: use delivery.replace(caps=...)"),
        (DND(), "end", "DND is frozen: use dnd.replace(end=...)"),
        (FrequencyCap(), "max", "FrequencyCap is frozen: use frequency_cap.replace(max=...)"),
        (DisplayRules(), "pages", "DisplayRules is frozen: use display_rules.replace(pages=...)"),
        (
            BestTimeOptions(),
            "mode",
            "BestTimeOptions is frozen: use best_time_options.replace(mode=...)",
        ),
        (
            content_from_dict("sms", {"text": "hi"}),
            "text",
            "SmsContent is frozen: use sms_content.replace(text=...)",
        ),
    ],
)
def test_assigning_a_field_names_replace(spec, field, message):
    with pytest.raises(FrozenSpecError) as info:
        setattr(spec, field, getattr(spec, field))
    assert str(info.value).startswith(message)
    # still what callers caught before
    assert isinstance(info.value, dataclasses.FrozenInstanceError)
    assert isinstance(info.value, EngagelabError)
    with pytest.raises(FrozenSpecError, match=r"\.replace\("):
        delattr(spec, field)
    with pytest.raises(FrozenSpecError, match=r"'colour' is not one of its fields"):
        spec.colour = "red"


def _content_classes(cls=Content):
    for sub in cls.__subclasses__():
        yield sub
        yield from _content_classes(sub)


def test_every_content_model_refuses_assignment_with_the_replace_hint():
    for cls in _content_classes():
        if cls.__name__.startswith("_"):
            continue
        # any instance will do: bypass validation, assignment is what is checked
        obj = object.__new__(cls)
        with pytest.raises(FrozenSpecError, match=r"is frozen.*\.replace\("):
            obj.channel_name = "x"


@pytest.mark.parametrize(
    ("spec", "bad", "error"),
    [
        (Schedule(), {"type": "weekly"}, "schedule.type == 'weekly'"),
        (Variant("A", {}), {"colour": 1}, "colour == 1, is not a field of Variant"),
        (Goal(), {"window_hours": 0}, "goal.window_hours == 0"),
        (WinnerTest(), {"test_share": 1.5}, "winner_test.test_share == 1.5"),
        (Delivery(), {"if_passed": "later"}, "delivery.if_passed == 'later'"),
        (DND(), {"action": "beep"}, "delivery.dnd.action == 'beep'"),
        (FrequencyCap(), {"window": 0}, "delivery.caps.window == 0"),
        (DisplayRules(), {"delay_seconds": -1}, "display.delay_seconds == -1"),
        (BestTimeOptions(), {"explore_share": 2}, "explore_share == 2"),
        (content_from_dict("sms", {"text": "hi"}), {"max_segments": 0}, "sms.max_segments == 0"),
        (build(), {"control_percent": 100}, "control_percent == 100"),
        (build(), {"colour": "red"}, "colour == 'red', is not a field of Campaign: audience, "),
    ],
)
def test_replace_exists_on_every_spec_and_validates_again(spec, bad, error):
    field = next(iter(bad))
    if field != "colour":
        changed = spec.replace(**{field: getattr(spec, field)})
        assert changed == spec and changed is not spec
    with pytest.raises(ValueError) as info:
        spec.replace(**bad)
    assert error in str(info.value)


def test_replace_freezes_what_it_is_given():
    s = Schedule("triggered", event="Charged").replace(filters={"plan": ["gold"]})
    assert s.filters == {"plan": ("gold",)} and hash(s)
    with pytest.raises(FrozenSpecError):
        s.filters["plan"] = "x"


def test_copies_and_pickles_are_equal_values():
    c = build()
    assert copy.copy(c) is c and copy.deepcopy(c) is c
    back = pickle.loads(pickle.dumps(c))
    assert back == c and hash(back) == hash(c)
    assert back.variants[0].content.render({"user_id": "u1"})["url"] == "https://example.org/u1"


def test_freeze_is_deep_and_idempotent():
    f = freeze({"a": [{"b": {1, 2}}]})
    assert f == {"a": ({"b": frozenset({1, 2})},)}
    assert freeze(f) is f
    assert hash(f) == hash(freeze({"a": ({"b": {2, 1}},)}))
    assert f.copy() == f and type(f.copy()) is dict
