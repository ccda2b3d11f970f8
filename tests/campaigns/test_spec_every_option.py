"""Campaigns using every option survive JSON and YAML into a fresh interpreter.

Every field of every spec (campaign, schedule, variants, goal, winner test, delivery, its
do-not-disturb windows, caps and best-time options, the content of every channel and its
display rules) is set away from its default by at least one campaign below (checked), the
campaigns are written as JSON and YAML files, and a new ``python -c`` process, which has
registered nothing, loads each file and prints both ``to_dict()`` and a field-by-field dump
of the loaded spec. Both must equal the originals: a field that serialisation drops comes
back as its default and fails the comparison.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
from engagelab.channels import (
    AppInboxContent,
    Content,
    DisplayRules,
    EmailContent,
    FacebookAudienceContent,
    GoogleAdsContent,
    InAppContent,
    NativeDisplayContent,
    PushContent,
    SmsContent,
    WebExitIntentContent,
    WebhookContent,
    WebPopupContent,
    WebPushContent,
)
from engagelab.segments import Segment, did, prop

ROOT = Path(__file__).resolve().parents[2]

#: A field-by-field dump of a spec, run here and in the fresh interpreter alike. It does not
#: use to_dict, so a field to_dict forgets shows up as a difference.
DUMP = """
import dataclasses, datetime
from collections.abc import Mapping

def dump(v):
    if type(v).__name__ == "Segment":  # an audience Segment is saved as its dict
        return v.to_dict()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        out = {"__class__": type(v).__name__}
        for f in dataclasses.fields(v):
            out[f.name] = dump(getattr(v, f.name))
        return out
    if isinstance(v, Mapping):
        return {str(k): dump(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [dump(x) for x in v]
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    return v
"""

LOAD = (
    DUMP
    + """
import json, sys
from pathlib import Path
from engagelab.campaigns import Campaign

fmt, folder = sys.argv[1], Path(sys.argv[2])
out = []
for path in sorted(folder.glob("*." + fmt)):
    text = path.read_text()
    c = Campaign.from_json(text) if fmt == "json" else Campaign.from_yaml(text)
    hash(c)
    out.append({"file": path.name, "to_dict": c.to_dict(), "dump": dump(c)})
print(json.dumps(out))
"""
)

namespace: dict = {}
exec(DUMP, namespace)  # noqa: S102 - the same dump function the child runs
dump = namespace["dump"]

DISPLAY = DisplayRules(
    max_impressions=3, trigger_event="Viewed Cart", pages=("https://shop.example/*",),
    delay_seconds=5,
)  # fmt: skip
PULLED = dict(
    title="Hello {{ profile.first_name | default('you') }}",
    body="Something new",
    button_text="Open",
    button_url="myapp://deals",
    image_url="https://cdn.example/i.png",
    display=DISPLAY,
    ttl_seconds=3600,
)

#: content of every channel with every field set (to two values, for the two variants)
CONTENT = {
    "push": lambda v: PushContent(
        title=f"Sale {v}",
        body="Up to 30% off",
        deep_link="myapp://sale",
        image_url="https://cdn.example/sale.png",
        data={"campaign": "spring", "v": v},
        sound="chime",
        priority="high",
        ttl_seconds=7200,
    ),  # fmt: skip
    "web_push": lambda v: WebPushContent(
        title=f"Sale {v}",
        body="Now on",
        url="https://shop.example/sale",
        icon_url="https://cdn.example/icon.png",
        image_url="https://cdn.example/big.png",
        require_interaction=True,
        ttl_seconds=600,
    ),  # fmt: skip
    "email": lambda v: EmailContent(
        sender="Shop <news@shop.example>",
        subject=f"Spring sale {v}",
        html="<p>Hi {{ profile.first_name | default('there') }}</p>",
        text="Hi there",
        reply_to="help@shop.example",
        preheader="30% off everything",
    ),  # fmt: skip
    "sms": lambda v: SmsContent(text=f"Sale {v}: 30% off", sender_id="SHOP", max_segments=3),
    "webhook": lambda v: WebhookContent(
        url="https://hooks.example/{{ profile.user_id }}",
        method="PUT",
        headers={"X-Campaign": "spring"},
        body={"variant": v, "items": [1, 2.5, {"nested": ["a", None, True]}]},
    ),  # fmt: skip
    "in_app": lambda v: InAppContent(**PULLED, layout="cover"),
    "app_inbox": lambda v: AppInboxContent(**PULLED, tags=("deals", v)),
    "native_display": lambda v: NativeDisplayContent(
        **PULLED, kind="carousel", kv={"slot": "home", "v": v}
    ),
    "web_popup": lambda v: WebPopupContent(**PULLED, position="top"),
    "web_exit_intent": lambda v: WebExitIntentContent(**PULLED, position="bottom"),
    "facebook_audience": lambda v: FacebookAudienceContent(
        audience_name=f"Spring {v}", identifiers=("phone",)
    ),
    "google_ads": lambda v: GoogleAdsContent(audience_name=f"Spring {v}", identifiers=("phone",)),
}

SCHEDULE = Schedule(
    "on_date",
    at="2026-03-02T09:00:00+01:00",
    cron="0 9 * * 1",
    timezone="Europe/Berlin",
    event="Charged",
    filters={"plan": "gold", "sizes": [38, 40]},
    not_event="Cart Viewed",
    within_hours=36,
    date_property="signup_date",
    offset_days=7,
    anniversary=True,
    time="10:30",
)

AUDIENCES = [
    {
        "condition": {
            "kind": "and",
            "conditions": [
                {"kind": "did", "event": "Charged", "at_least": 2},
                {"kind": "property", "column": "city", "op": "in", "value": ["Berlin", "Köln"]},
            ],
        }
    },
    Segment(did("App Launched") & (prop("city") == "Berlin"), name="berliners"),
    "vip",
]

BEST_TIMES = [
    BestTimeOptions(
        mode="clevertap",
        window=("07:00", "21:00"),
        fallback_slot="12:00",
        passed="drop",
        explore_share=0.1,
        seed=3,
        events=("Notification Clicked",),
        lookback_days=90,
        half_life_days=None,
        min_events=5,
        prior_by="country",
        dnd=(("12:00", "13:00"),),
    ),  # fmt: skip
    BestTimeOptions(granularity="hour_of_week", events=("App Launched", "Charged")),
    None,
]


def delivery(i: int) -> Delivery:
    bt = BEST_TIMES[i % 3]
    return Delivery(
        user_timezone=True,
        if_passed="next_day",
        default_timezone="America/New_York",
        dnd=(DND(start="21:00", end="07:30", days=("sat", "sun"), action="drop"), DND()),
        caps=(
            FrequencyCap(max=3, window=1, unit="weeks", kind="calendar", channel="push"),
            FrequencyCap(max=5, window=6, unit="hours"),
        ),
        min_gap_hours=12,
        ignore_caps=True,
        ignore_workspace_caps=True,
        throttle_per_minute=500 if i % 4 != 3 else None,
        throttle_per_5_minutes=2000 if i % 4 == 3 else None,
        ttl_hours=6,
        cut_off=dt.datetime(2026, 3, 9, 18, 0, tzinfo=dt.UTC),
        send_time_policy=None if bt is not None else "quiet_hours",  # not registered anywhere
        best_time=bt,
    )


def campaigns() -> list[Campaign]:
    out = []
    for i, (channel, make) in enumerate(CONTENT.items()):
        remarketing = channel in ("facebook_audience", "google_ads")
        out.append(
            Campaign(
                id=f"spring-{channel}",
                channel=channel,
                variants=(Variant("A", make("A"), 0.25), Variant("B", make("B"), 0.75)),
                name=f"Spring sale ({channel})",
                schedule=SCHEDULE,
                audience=AUDIENCES[i % 3],
                control_percent=12.5,
                respect_global_control=False,
                labels=("Spring", "Sale"),
                goal=Goal(event="Purchase", window_hours=48, revenue_property="amount"),
                delivery=delivery(i),
                winner_test=None
                if remarketing
                else WinnerTest(test_share=0.3, wait_hours=6, metric="revenue", rule="statistical"),
            )
        )
    return out


def _concrete_content_classes(cls: type = Content) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        if not sub.__name__.startswith("_") and sub.__module__.startswith("engagelab."):
            out.add(sub)
        out |= _concrete_content_classes(sub)
    return out


SPECS = {
    Campaign, Schedule, Variant, Goal, WinnerTest, Delivery, DND, FrequencyCap,
    BestTimeOptions, DisplayRules, *_concrete_content_classes(),
}  # fmt: skip


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _set_fields(value, acc: set[tuple[str, str]]) -> None:
    if type(value) in SPECS:
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            d = _default(f)
            if d is dataclasses.MISSING or v != d:
                acc.add((type(value).__name__, f.name))
            _set_fields(v, acc)
    elif isinstance(value, tuple | list):
        for v in value:
            _set_fields(v, acc)


def test_every_field_of_every_spec_is_set_away_from_its_default():
    got: set[tuple[str, str]] = set()
    for c in campaigns():
        _set_fields(c, got)
    want = {(cls.__name__, f.name) for cls in SPECS for f in dataclasses.fields(cls) if f.init}
    assert sorted(want - got) == []
    assert len(SPECS) == 10 + 12  # every channel's content model is covered


def _load_in_fresh_interpreter(fmt: str, folder: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD, fmt, str(folder)],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("campaigns")
    cs = campaigns()
    for c in cs:
        (folder / f"{c.id}.json").write_text(c.to_json())
        (folder / f"{c.id}.yaml").write_text(c.to_yaml())
    return folder, {f"{c.id}": c for c in cs}


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_option_round_trips_in_a_fresh_interpreter(written, fmt):
    folder, originals = written
    loaded = _load_in_fresh_interpreter(fmt, folder)
    assert sorted(x["file"] for x in loaded) == sorted(f"{k}.{fmt}" for k in originals)
    for x in loaded:
        c = originals[x["file"].rsplit(".", 1)[0]]
        # JSON-normalise the originals the same way (tuples -> lists, keys -> text)
        assert x["to_dict"] == json.loads(json.dumps(c.to_dict())), x["file"]
        assert x["dump"] == json.loads(json.dumps(dump(c))), x["file"]


def test_a_dropped_field_is_caught(written):
    # the check above is sharp: a spec that lost one option differs from its original
    _, originals = written
    c = originals["spring-push"]
    lost = c.replace(delivery=c.delivery.replace(throttle_per_minute=None))
    assert json.loads(json.dumps(dump(lost))) != json.loads(json.dumps(dump(c)))
    inner = c.replace(variants=(c.variants[0].replace(content=c.variants[0].content.replace(
        sound=None)), c.variants[1]))  # fmt: skip
    assert json.loads(json.dumps(dump(inner))) != json.loads(json.dumps(dump(c)))
