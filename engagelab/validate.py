"""Uniform validation helpers: every message names the field, the value and what is allowed."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, overload

from engagelab.errors import ValidationError

if TYPE_CHECKING:
    from yaml import SafeLoader

__all__ = [
    "MAX_SPEC_BYTES",
    "MAX_SPEC_DEPTH",
    "MAX_SPEC_NODES",
    "check_choice",
    "check_datetime",
    "check_int",
    "check_number",
    "check_str",
    "check_timezone",
    "load_json",
    "load_spec_file",
    "load_yaml",
    "valid_timezone",
]

#: Largest spec / config text read (bytes), deepest nesting and most values after
#: expanding YAML aliases: bounds on the work one document can cause.
MAX_SPEC_BYTES = 4 << 20
MAX_SPEC_DEPTH = 64
MAX_SPEC_NODES = 200_000


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

    if isinstance(value, bool | int | float):  # pandas would read a number as 1970 + ns
        raise ValidationError(
            name, value, "must be a datetime, a date or ISO 8601 text, not a number"
        )
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


# ----------------------------------------------------------------------------- safe loading
def _as_text(name: str, data: str | bytes) -> str:
    if len(data) > MAX_SPEC_BYTES:
        raise ValidationError(
            name, f"{len(data):,} bytes", f"must be at most {MAX_SPEC_BYTES:,} bytes"
        )
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                name,
                None,
                message=f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                f"{exc.start}); save it as UTF-8",
            ) from None
    return data


def _check_shape(name: str, doc: Any) -> None:
    """Refuse documents nested deeper than MAX_SPEC_DEPTH or with more than MAX_SPEC_NODES
    values once aliases are expanded (counted without expanding them)."""
    sizes: dict[int, int] = {}
    # iterative post-order walk; shared (aliased) containers are measured once
    stack: list[tuple[Any, int, bool]] = [(doc, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if not isinstance(node, dict | list):
            continue
        key = id(node)
        children = list(node.values()) if isinstance(node, dict) else node
        if done:
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            sizes[key] = total
            if total > MAX_SPEC_NODES:
                raise ValidationError(
                    name,
                    None,
                    message=f"{name} expands to more than {MAX_SPEC_NODES:,} values "
                    "(YAML aliases that multiply?); refused",
                )
            continue
        if depth > MAX_SPEC_DEPTH:
            raise ValidationError(
                name, None, message=f"{name} is nested deeper than {MAX_SPEC_DEPTH} levels; refused"
            )
        if key in sizes:
            continue
        sizes[key] = 1  # visiting; a cycle counts once
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children)


def load_json(data: str | bytes, name: str = "JSON") -> Any:
    """Parse JSON text with bounded work; every problem is a one-line ValidationError.

    >>> load_json('{"a": [1, 2]}')
    {'a': [1, 2]}
    >>> load_json("[" * 100_000, "spec")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: spec is nested deeper than 64 levels; refused
    """
    import json

    text = _as_text(name, data)
    depth = _max_bracket_depth(text)
    if depth > MAX_SPEC_DEPTH:
        raise ValidationError(
            name, None, message=f"{name} is nested deeper than {MAX_SPEC_DEPTH} levels; refused"
        )
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            name,
            None,
            message=f"{name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        ) from None
    except RecursionError:
        raise ValidationError(
            name, None, message=f"{name} is nested deeper than {MAX_SPEC_DEPTH} levels; refused"
        ) from None
    _check_shape(name, doc)
    return doc


def _max_bracket_depth(text: str) -> int:
    """Nesting depth of ``[``/``{`` outside JSON strings (a cheap pre-check before parsing)."""
    depth = best = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best = depth
                if best > MAX_SPEC_DEPTH:
                    return best
        elif ch in "]}":
            depth -= 1
    return best


def load_yaml(data: str | bytes, name: str = "YAML") -> Any:
    """Parse YAML with the safe loader and bounded work.

    Only plain data is allowed (no ``!!python/...`` tags); text over MAX_SPEC_BYTES, nesting
    deeper than MAX_SPEC_DEPTH and alias expansion beyond MAX_SPEC_NODES values are refused
    before anything walks the document.

    >>> load_yaml("a: [1, 2]")
    {'a': [1, 2]}
    >>> load_yaml("x: !!python/object/apply:os.system ['true']", "spec.yaml")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: spec.yaml uses the YAML tag '!!python/object/apply:os.system', which is not allowed (plain mappings, lists, text and numbers only)
    """
    import yaml

    text = _as_text(name, data)
    # count aliases and nesting on the event stream first: nothing is expanded there
    try:
        depth = aliases = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_SPEC_DEPTH:
                    raise ValidationError(
                        name,
                        None,
                        message=f"{name} is nested deeper than {MAX_SPEC_DEPTH} levels; refused",
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
        doc = yaml.load(text, Loader=_plain_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.constructor.ConstructorError as exc:
        tag = _tag_of(exc)
        if tag:
            raise ValidationError(
                name,
                None,
                message=f"{name} uses the YAML tag {tag!r}, which is not allowed "
                "(plain mappings, lists, text and numbers only)",
            ) from None
        raise ValidationError(
            name, None, message=f"{name} is not valid YAML: {_yaml_problem(exc)}"
        ) from None
    except yaml.YAMLError as exc:
        raise ValidationError(
            name, None, message=f"{name} is not valid YAML: {_yaml_problem(exc)}"
        ) from None
    except RecursionError:
        raise ValidationError(
            name, None, message=f"{name} is nested deeper than {MAX_SPEC_DEPTH} levels; refused"
        ) from None
    if aliases:
        _check_shape(name, doc)
    return doc


@lru_cache(maxsize=1)
def _plain_loader() -> type[SafeLoader]:
    """The loader class, built on first use (importing yaml is left until a spec is read)."""
    import yaml

    class PlainLoader(yaml.SafeLoader):
        """The safe loader with dates left as text: specs check them and name the field."""

    PlainLoader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return PlainLoader


def _tag_of(exc: Exception) -> str | None:
    import re

    m = re.search(r"tag '(tag:yaml\.org,2002:[^']*|![^']*)'", str(exc))
    if not m:
        return None
    return m.group(1).replace("tag:yaml.org,2002:", "!!")


def _yaml_problem(exc: Exception) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def load_spec_file(path: Any, name: str | None = None) -> Any:
    """The document in a YAML or JSON file (``.json`` is JSON, anything else YAML)."""
    from pathlib import Path

    p = Path(path)
    label = name or str(p)
    try:
        size = p.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise ValidationError(
                label, f"{size:,} bytes", f"must be at most {MAX_SPEC_BYTES:,} bytes"
            )
        data = p.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ValidationError(label, str(p), "does not exist (or is not a file)") from None
    except PermissionError:
        raise ValidationError(label, str(p), "cannot be read (permission denied)") from None
    if p.suffix.lower() == ".json":
        return load_json(data, label)
    return load_yaml(data, label)
