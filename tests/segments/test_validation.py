"""Build-time validation: one-line messages that name the field."""

from __future__ import annotations

import datetime as dt

import pytest

from engagelab.errors import SpecError
from engagelab.segments import (
    Aggregate,
    ConstantProperty,
    DidEvent,
    FirstOrLast,
    Geofence,
    PropertyFilter,
    Segment,
    Window,
    did,
    first_time,
    near,
    prop,
    was_sent,
)

from .conftest import AT

CASES = [
    (lambda: PropertyFilter("city", "like", "x"), r"^op == 'like', must be one of '=', '!='"),
    (lambda: prop("city").matches("(a)\\1"), r"^value == '\(a\)\\\\1', must be an RE2 regular expression \(no backreferences\)$"),
    (lambda: prop("city").matches("a(?=b)"), r"no lookarounds"),
    (lambda: prop("city").not_matches("(?<!a)b"), r"no lookarounds"),
    (lambda: prop("city").matches("(unclosed"), r"^value == '\(unclosed', must be a valid regular expression \(missing \)"),
    (lambda: prop("city").matches(3), r"^value == 3, must be a regular expression string$"),
    (lambda: did("Charged", at_least=3, at_most=2), r"^at_most == 2, must be >= at_least \(3\)$"),
    (lambda: did("Charged", at_least=-1), r"^at_least == -1, must be an integer >= 0$"),
    (lambda: did("Charged", at_most=-2), r"^at_most == -2, must be an integer >= 0$"),
    (lambda: did("Charged", at_least=1.5), r"^at_least == 1.5, must be an integer >= 0$"),
    (lambda: did("Charged", at_least=0), r"^at_least == 0, must be >= 1 unless at_most is set"),
    (lambda: did("Charged", within_days=-3), r"^window.last_days == -3, must be an integer in \[1, 36500\]$"),
    (lambda: did(""), r"^event == '', must be a non-empty event name$"),
    (lambda: near(52, 13, 0), r"^radius_km == 0, must be > 0$"),
    (lambda: near(52, 13, -1.5), r"^radius_km == -1.5, must be > 0$"),
    (lambda: near(95, 13, 1), r"^latitude == 95, must be in \[-90, 90\]$"),
    (lambda: near(52, -181, 1), r"^longitude == -181, must be in \[-180, 180\]$"),
    (lambda: near(52, 13, float("nan")), r"^radius_km == nan, must be a number$"),
    (lambda: near(52, 13, 1, within_days=3), r"^source == 'profile', must be 'events' when event or window is given$"),
    (lambda: near(52, 13, 1, source="gps"), r"^source == 'gps', must be one of 'profile', 'events'$"),
    (lambda: prop("plan").isin([]), r"^value == \[\], must be a non-empty list of values for 'in'$"),
    (lambda: prop("plan").isin("abc"), r"must be a non-empty list of values for 'in'"),
    (lambda: prop("plan").isin([1, "a"]), r"must hold values of one kind for 'in'"),
    (lambda: prop("age").between(30, 20), r"^value == \(30, 20\), must have low <= high for 'between'$"),
    (lambda: prop("age").between(1, "z"), r"must be two numbers, strings or datetimes for 'between'"),
    (lambda: prop("age") > None, r"^value == None, must be a number, string, bool or time-zone-aware datetime"),
    (lambda: prop("age") > [1], r"^value == \[1\], must be a number, string, bool"),
    (lambda: prop("age") > float("inf"), r"^value == inf, must be a number, string, bool"),
    (lambda: prop("vip") > True, r"^value == True, must be a number, string or datetime for '>'$"),
    (lambda: prop("signup") > dt.datetime(2026, 1, 1), r"time-zone-aware datetime"),
    (lambda: prop("city").contains(5), r"^value == 5, must be a string for 'contains'$"),
    (lambda: PropertyFilter("city", "exists", "x"), r"^value == 'x', must be None for 'exists'$"),
    (lambda: prop("x; DROP TABLE events"), r"^column == 'x; DROP TABLE events', must be an identifier"),
    (lambda: prop('a"b'), r"must be an identifier"),
    (lambda: prop("_batch"), r"must be an identifier"),
    (lambda: did("Charged", where="amount > 3"), r"^where == 'amount > 3', must be a filter"),
    (lambda: DidEvent("Charged", where=("amount",)), r"^where == 'amount', must be property filters"),
    (lambda: did("Charged", sum_of=("amount", ">=")), r"^sum_of == \('amount', '>='\), must be a \(column, op, value\) triple"),
    (lambda: Aggregate("median", "amount", ">", 1), r"^aggregate.func == 'median', must be one of 'sum', 'avg'$"),
    (lambda: Aggregate("sum", "amount", "matches", "x"), r"^aggregate.op == 'matches', must be one of"),
    (lambda: Aggregate("sum", "amount", ">", "x"), r"^aggregate.value == 'x', must be a number"),
    (lambda: did("Charged", exactly=1, at_most=2), r"^exactly == 1, must not be combined with at_least/at_most$"),
    (lambda: did("Charged", within_days=3, between=(dt.date(2026, 1, 1), dt.date(2026, 1, 2))), r"^window == .*must be given once"),
    (lambda: Window(start=dt.date(2026, 2, 1), end=dt.date(2026, 1, 1)), r"^window.end == datetime.date\(2026, 1, 1\), must be after window.start"),
    (lambda: Window(start=dt.datetime(2026, 2, 1), end=dt.datetime(2026, 3, 1)), r"^window.start == .*time-zone-aware"),
    (lambda: Window(start=dt.date(2026, 2, 1)), r"^window == .*must set last_days, or both start and end$"),
    (lambda: Window(last_days=3, start=dt.date(2026, 2, 1)), r"must set last_days or start/end, not both"),
    (lambda: FirstOrLast("A", "middle", Window(last_days=1)), r"^which == 'middle', must be one of 'first', 'last'$"),
    (lambda: first_time("A"), r"^window == None, must be given"),
    (lambda: ConstantProperty("A", "B", "1st"), r"^column == '1st', must be an identifier"),
    (lambda: Geofence(1, 2, 3, event=""), r"must be 'events' when event or window is given"),
    (lambda: was_sent(""), r"^label == '', must be a non-empty event name$"),
    (lambda: did("A") & "x", r"^operand == 'x', must be a Condition to combine with &$"),
    (lambda: Segment("did A"), r"^condition == 'did A', must be a Condition"),
    (lambda: Segment(did("A")).to_sql("nosuchsql"), r"^dialect == 'nosuchsql', must be a sqlglot dialect"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "message"), CASES, ids=[m[:40] for _, m in CASES])
def test_validation_messages(build, message):
    with pytest.raises(SpecError, match=message) as info:
        build()
    text = str(info.value)
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


COLUMNS = {
    "events": {
        "amount": "float64",
        "product": "string",
        "tags": "list<string>",
        "labels": "list<string>",
    },
    "profiles": {"city": "string", "age": "int64", "vip": "bool", "signup": "timestamp"},
}


@pytest.mark.parametrize(
    ("cond", "message"),
    [
        (
            prop("town") == "x",
            r"^column == 'town', is not a column of profiles \(known: age, app_install_id, city",
        ),
        (did("A", where=prop("colour") == "x"), r"^column == 'colour', is not a column of events"),
        (prop("age") == "x", r"^value == 'x', must be a number for column 'age'$"),
        (prop("city") > 3, r"^value == 3, must be a string for column 'city'$"),
        (
            prop("age").matches("1"),
            r"^op == 'matches', needs a string column; 'age' holds number values$",
        ),
        (prop("signup") > 3, r"must be a datetime for column 'signup'"),
        (
            did("A", where=prop("tags") == "x"),
            r"^op == '=', must be 'contains', 'exists' or 'not_exists' for list column 'tags'$",
        ),
        (
            did("A", sum_of=("product", ">", 1)),
            r"^aggregate.column == 'product', must be a numeric column, not string$",
        ),
        (did("A", sum_of=("price", ">", 1)), r"^column == 'price', is not a column of events"),
    ],
    ids=str,
)
def test_column_checks_at_compile_time(cond, message):
    with pytest.raises(SpecError, match=message):
        Segment(cond).to_sql(at=AT, columns=COLUMNS)


def test_columns_mapping_accepts_pyarrow_and_duckdb_types_and_rejects_garbage():
    import pyarrow as pa

    cols = {
        "events": {"tags": pa.list_(pa.string()), "amount": "DOUBLE"},
        "profiles": {"city": "VARCHAR"},
    }
    sql = Segment(
        did("A", where=prop("tags").contains("x"), sum_of=("amount", ">", 1))
        & prop("city").matches("B")
    ).to_sql(at=AT, columns=cols)
    assert 'ARRAY_CONTAINS("e"."tags", \'x\')' in sql
    with pytest.raises(
        SpecError, match=r"^columns\['profiles'\]\['city'\] == 'blob', must be a type"
    ):
        Segment(prop("city") == "x").to_sql(at=AT, columns={"profiles": {"city": "blob"}})
    with pytest.raises(SpecError, match="must map 'events' and/or 'profiles'"):
        Segment(prop("city") == "x").to_sql(at=AT, columns={"users": {}})


def test_unknown_column_fails_at_query_time_naming_it(world):
    import duckdb

    with pytest.raises(duckdb.BinderException, match="colour"):
        world.duck(prop("colour") == "red")
    with pytest.raises(duckdb.BinderException, match="flavour"):
        world.duck(did("Charged", where=prop("flavour") == "red"))


PY_VALID_PATTERNS = [
    r"(?x)a b", r"(?a)\w", r"(?u)\w", r"(?iu:a)", r"\u00e9", r"\U0001F600", r"\N{DIGIT ONE}",
    r"a{1001}", r"a{2,1001}", r"(?#note)a", r"(a)\1", r"(?P<n>a)(?P=n)", r"a(?=b)", r"a(?!b)",
    r"(?<=a)b", r"(?<!a)b", r"(?>a)", r"a*+", r"a\Z", r"(a)?(?(1)b|c)",
    r"a{1000}", r"(?i)abc", r"(?i:a)b", r"(?s).", r"(?m)^a$", r"[(?#]", r"[(?u]", r"\x41", r"\101",
    r"\bword\B", r"\Aabc", r"[^]]", r"[]a]", r"\'\%\_\-\ \#\&\~", r"(?P<u>a)", r"a{3,}?", r"\\u", r"\\N",
    r"[[:alpha:]]", r"\d+\s*\w", r"^$", r"a|", r"()",
]  # fmt: skip


@pytest.mark.parametrize("pattern", PY_VALID_PATTERNS)
def test_regex_check_agrees_with_duckdb(pattern):
    """A pattern check_regex accepts runs in DuckDB; one it refuses would have failed there."""
    import warnings

    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SELECT regexp_matches(?, ?)", ["abc", pattern]).fetchall()
        duck_ok = True
    except duckdb.Error:
        duck_ok = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            prop("city").matches(pattern)
        ours = True
    except SpecError as err:
        assert "must be an RE2 regular expression" in str(err)
        ours = False
    assert ours == duck_ok
