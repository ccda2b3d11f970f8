"""Job specs: validation messages name the field, YAML round trip, typed parameters."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engagelab.errors import ValidationError
from engagelab.jobs import CatchUp, JobSpec, Param, Retries, Schedule

FULL = """
name: daily-push
notebook: notebooks/push.ipynb
params:
  days: {type: int, default: 7, description: look-back window}
  since: {type: date, required: true}
  budget: {type: decimal, default: "12.50"}
  dry_run: {type: bool, default: false}
  at: datetime
  variants: list
fixed: {channel: push}
schedule: {cron: "30 2 * * *", timezone: Europe/Berlin}
start: 2026-03-01
catch_up: {policy: all, max_staleness: 3d}
retries: {count: 2, backoff: 1m, retry_on: [dead_kernel, timeout]}
cell_timeout: 10m
timeout: 1h
html_report: true
notify: {on: [failure, success], webhook: "http://127.0.0.1:9/hook"}
secret_env: [API_TOKEN]
"""


def test_yaml_round_trip_and_parsed_values():
    spec = JobSpec.from_yaml(FULL)
    assert JobSpec.from_yaml(spec.to_yaml()) == spec
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.catch_up == CatchUp("all", 3 * 86400)
    assert spec.retries == Retries(count=2, backoff=60, retry_on=("dead_kernel", "timeout"))
    assert (spec.cell_timeout, spec.timeout, spec.start) == (600, 3600, "2026-03-01")
    assert spec.params["budget"] == Param("decimal", default="12.50")
    assert spec.retries.delay(1) == 60 and spec.retries.delay(3) == 240
    assert spec.fingerprint() != spec.replace(timeout=7200).fingerprint()


def test_resolve_params_types_and_serialisation():
    spec = JobSpec.from_yaml(FULL)
    got = spec.resolve_params(
        {"since": dt.date(2026, 3, 1), "at": dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC),
         "budget": decimal.Decimal("0.10"), "variants": '["a", "b"]', "dry_run": "yes"}
    )  # fmt: skip
    assert got == {
        "days": 7, "budget": "0.10", "dry_run": True, "channel": "push", "since": "2026-03-01",
        "at": "2026-03-01T09:00:00+00:00", "variants": ["a", "b"],
    }  # fmt: skip
    json.dumps(got)  # papermill can inject every value
    assert spec.resolve_params({"since": "2026-03-02", "days": "3"})["days"] == 3


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"since": "2026-03-01", "days": "seven"}, "params.days == 'seven', must be an integer"),
        ({"since": "2026-03-01", "days": True}, "params.days == True, must be an integer"),
        ({"since": "03/01/2026"}, "params.since == '03/01/2026', must be a date (YYYY-MM-DD)"),
        ({"since": "2026-03-01", "budget": "lots"}, "params.budget == 'lots', must be a decimal"),
        (
            {"since": "2026-03-01", "dry_run": "maybe"},
            "params.dry_run == 'maybe', must be a boolean",
        ),
        ({}, "params.since == None, is required"),
        (
            {"since": "2026-03-01", "colour": "red"},
            "params.colour == 'red', is not a declared parameter",
        ),
        (
            {"since": "2026-03-01", "channel": "sms"},
            "params.channel == 'sms', is fixed by the job spec",
        ),
        (
            {"since": "2026-03-01", "api_token": "x"},
            "params.api_token == 'api_token', looks like a secret",
        ),
        ({"since": "2026-03-01", "logical_date": "x"}, "is set by the runner"),
    ],
)
def test_bad_parameters_are_named(given, message):
    with pytest.raises(ValidationError) as info:
        JobSpec.from_yaml(FULL).resolve_params(given)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "bad name!"}, "name == 'bad name!', must be 1-100 letters"),
        (
            {"schedule": {"cron": "every day", "timezone": "UTC"}},
            "schedule.cron == 'every day', must be a 5-field cron",
        ),
        (
            {"schedule": {"cron": "0 1 * * *", "timezone": "Mars/Base"}},
            "schedule.timezone == 'Mars/Base'",
        ),
        (
            {"catch_up": {"policy": "some"}},
            "catch_up.policy == 'some', must be one of 'none', 'latest', 'all'",
        ),
        (
            {"catch_up": {"policy": "all", "max_staleness": "soon"}},
            "catch_up.max_staleness == 'soon'",
        ),
        ({"retries": {"count": -1}}, "retries.count == -1, must be an integer >= 0"),
        ({"retries": {"retry_on": ["bad_parameters"]}}, "retries.retry_on == 'bad_parameters'"),
        ({"params": {"password": "str"}}, "params.password == 'password', looks like a secret"),
        ({"params": {"n": "complex"}}, "params.n.type == 'complex', must be one of"),
        ({"params": {"n": {"type": "int", "default": "x"}}}, "params.n == 'x', must be an integer"),
        ({"fixed": {"secret": "s3cr3t"}}, "fixed.secret == 'secret', looks like a secret"),
        ({"secret_env": ["NOT-A-NAME"]}, "secret_env == 'NOT-A-NAME'"),
        ({"notify": {"webhook": "ftp://x"}}, "notify.webhook == 'ftp://x', must be an http(s) URL"),
        ({"timeout": 0}, "timeout == 0"),
        ({"start": "soon"}, "start == 'soon', must be a date"),
        ({"colour": "red"}, "colour == 'red', is not a job spec field"),
    ],
)
def test_spec_errors_name_the_field(change, message):
    data = {"name": "j", "notebook": "nb.ipynb", **change}
    with pytest.raises(ValidationError) as info:
        JobSpec.from_dict(data)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_specs_are_frozen():
    spec = JobSpec(
        name="j", notebook="nb.ipynb", schedule=Schedule("0 6 * * 1-5", "America/New_York")
    )
    with pytest.raises(AttributeError):
        spec.name = "k"  # type: ignore[misc]
    assert spec.replace(name="k").name == "k"


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_int_text_round_trips(n):
    assert Param("int").convert("n", str(n)) == n


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4))
def test_decimals_serialise_exactly(d):
    assert decimal.Decimal(Param("decimal").convert("d", d)) == d
