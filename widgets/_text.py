"""Turn the text a user types into filter values (and back), by column kind.

The builder's value box is free text; what it means depends on the operator and on
the kind of the column (from the workspace's catalog):

* ``between``: two values separated by a comma (``18, 30``) or `` and ``;
* ``in``: a comma-separated list (``Berlin, Paris``);
* ``matches`` / ``does not match`` / ``contains`` / ``starts with``: the text as typed;
* ``exists`` / ``not exists``: no value;
* otherwise one value: a number for numeric columns, ``true``/``false`` for booleans,
  an ISO date-time (UTC unless it says otherwise) for timestamps, text for the rest.

>>> parse_value("age", "number", "between", "18, 30")
(18, 30)
>>> parse_value("city", "string", "in", "Berlin, Paris")
('Berlin', 'Paris')
>>> parse_value("age", "number", ">=", "eighteen")
Traceback (most recent call last):
...
engagelab.errors.SpecError: value == 'eighteen', must be a number for column 'age'
>>> format_value(parse_value("age", "number", "between", "18 and 30.5"))
'18, 30.5'
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from engagelab.errors import SpecError

__all__ = ["format_value", "parse_scalar", "parse_value"]

_TRUE = {"true", "yes", "1", "t", "y"}
_FALSE = {"false", "no", "0", "f", "n"}
_INT = re.compile(r"[+-]?\d+")
_RAW_OPS = ("contains", "starts_with", "matches", "not_matches")


def parse_scalar(column: str, kind: str | None, text: str) -> Any:
    """One value of a column of ``kind`` ('string', 'number', 'bool', 'datetime', 'list')."""
    stripped = text.strip()
    if kind == "number":
        try:
            return int(stripped) if _INT.fullmatch(stripped) else float(stripped)
        except ValueError:
            raise SpecError("value", text, f"must be a number for column {column!r}") from None
    if kind == "bool":
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise SpecError("value", text, f"must be true or false for column {column!r}")
    if kind == "datetime":
        try:
            when = dt.datetime.fromisoformat(stripped)
        except ValueError:
            raise SpecError(
                "value", text, f"must be an ISO date or date-time for column {column!r}"
            ) from None
        return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    return text


def parse_value(column: str, kind: str | None, op: str, text: str) -> Any:
    """The filter value for ``column <op> text`` (see the module docstring)."""
    if op in ("exists", "not_exists"):
        return None
    if op in _RAW_OPS:
        return text
    if op == "between":
        parts = _split_pair(text)
        if parts is None:
            raise SpecError("value", text, "must be two values 'low, high' for 'between'")
        return tuple(parse_scalar(column, kind, p) for p in parts)
    if op == "in":
        items = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in items):
            raise SpecError("value", text, "must be a comma-separated list of values for 'in'")
        return tuple(parse_scalar(column, kind, p) for p in items)
    return parse_scalar(column, kind, text)


def _split_pair(text: str) -> list[str] | None:
    for sep in (",", " and "):
        parts = [p.strip() for p in text.split(sep)]
        if len(parts) == 2 and all(parts):
            return parts
    return None


def format_value(value: Any) -> str:
    """The text that :func:`parse_value` reads back as ``value``."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
