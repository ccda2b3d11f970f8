"""Values, identifiers, regular expressions and time windows used by segment specs.

Everything user-supplied passes through here before it reaches SQL: column names are
checked to be identifiers (and later always quoted), values are checked for kind and
frozen, regular expressions are checked against the RE2 subset DuckDB and Spark run.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from engagelab.errors import SpecError
from engagelab.validate import check_int

__all__ = ["Window", "check_column", "check_regex", "value_kind"]

_UTC = dt.UTC
_IDENT = re.compile(r"[^\W\d_][\w \-]*")  # a letter, then letters/digits/_/space/-
_MAX_IDENT = 128


def check_column(name: str, value: Any) -> str:
    """Check that ``value`` is a usable property column name.

    Names start with a letter and hold letters, digits, ``_``, ``-`` and spaces; they are
    always emitted as quoted identifiers. Internal columns (leading ``_``) are refused.

    >>> check_column("column", "city")
    'city'
    >>> check_column("column", "x; DROP TABLE t")
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: column == 'x; DROP TABLE t', must be an identifier: a letter, then letters, digits, '_', '-' or spaces
    """
    if not isinstance(value, str) or len(value) > _MAX_IDENT or not _IDENT.fullmatch(value):
        raise SpecError(
            name, value, "must be an identifier: a letter, then letters, digits, '_', '-' or spaces"
        )
    return value


def value_kind(value: Any) -> str | None:
    """Return the kind of a scalar filter value: 'number', 'string', 'bool' or 'datetime'.

    >>> value_kind(3), value_kind("x"), value_kind(True), value_kind([1])
    ('number', 'string', 'bool', None)
    """
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "number"
    if isinstance(value, float):
        return "number" if math.isfinite(value) else None
    if isinstance(value, str):
        return "string"
    if isinstance(value, dt.datetime):
        return "datetime" if value.tzinfo is not None else None
    return None


def check_scalar(name: str, value: Any) -> Any:
    """Check a scalar filter value and normalise datetimes to UTC."""
    if value_kind(value) is None:
        raise SpecError(
            name,
            value,
            "must be a number, string, bool or time-zone-aware datetime (finite, not None)",
        )
    if isinstance(value, dt.datetime):
        return value.astimezone(_UTC)
    return value


def literal(value: Any) -> exp.Expr:
    """Turn a checked scalar into a sqlglot literal (never via SQL text)."""
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, dt.datetime):
        return ts_literal(value)
    return exp.Literal.string(value)


def ts_literal(value: dt.datetime) -> exp.Expr:
    """A UTC timestamp literal: ``CAST('2026-01-01 00:00:00+00:00' AS TIMESTAMPTZ)``."""
    text = value.astimezone(_UTC).isoformat(sep=" ", timespec="microseconds")
    return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMPTZ"))


def encode(value: Any) -> Any:
    """Encode a frozen value as plain JSON data (datetimes are tagged)."""
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, tuple):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`; lists become tuples."""
    if isinstance(value, dict) and set(value) == {"$datetime"}:
        return dt.datetime.fromisoformat(value["$datetime"])
    if isinstance(value, list):
        return tuple(decode(v) for v in value)
    return value


_MAXREPEAT = __import__("re._constants", fromlist=["MAXREPEAT"]).MAXREPEAT
_RE2_REFUSED = {
    "GROUPREF": "backreferences",
    "GROUPREF_EXISTS": "conditional groups",
    "ASSERT": "lookarounds",
    "ASSERT_NOT": "lookarounds",
    "ATOMIC_GROUP": "atomic groups",
    "POSSESSIVE_REPEAT": "possessive quantifiers",
}


def check_regex(name: str, pattern: Any) -> str:
    """Check that ``pattern`` compiles in Python and stays inside RE2's syntax.

    DuckDB matches with RE2, which runs in linear time and therefore has no
    backreferences, lookarounds, atomic groups or possessive quantifiers; it also lacks
    Python's ``\\Z``, ``\\u``/``\\U``/``\\N`` escapes, the ``a``/``L``/``u``/``x`` flags,
    ``(?#...)`` comments and repeat counts above 1000. Such patterns are refused here
    rather than failing at query time. (Spark's ``RLIKE`` uses Java regular
    expressions, which read this subset the same way except in corner cases such as
    ``$`` before a final newline, which Java and Python match and RE2 does not.)

    >>> check_regex("value", "^Ber(lin)?$")
    '^Ber(lin)?$'
    >>> check_regex("value", r"(a)\\1")
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: value == '(a)\\\\1', must be an RE2 regular expression (no backreferences)
    """
    if not isinstance(pattern, str):
        raise SpecError(name, pattern, "must be a regular expression string")
    try:
        re.compile(pattern)
        from re import _parser  # type: ignore[attr-defined]  # noqa: PLC2701 (stdlib, no public parser)

        tree = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as err:
        raise SpecError(name, pattern, f"must be a valid regular expression ({err})") from None
    problem = _re2_text_problem(pattern) or _re2_problem(tree)
    if not problem and tree.state.flags & (re.X | re.A | re.L):
        problem = "inline flags other than i, m, s"
    if problem:
        raise SpecError(name, pattern, f"must be an RE2 regular expression (no {problem})")
    return pattern


def _re2_text_problem(pattern: str) -> str | None:
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if pattern[i + 1 : i + 2] in ("u", "U", "N"):
                return rf"\{pattern[i + 1]} escapes; write the character itself"
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            i += 2 if pattern[i + 1 : i + 2] == "]" else 1  # a leading ']' is literal
            continue
        elif pattern.startswith("(?#", i):
            return "(?#...) comments"
        elif pattern.startswith("(?", i):
            flags = re.match(r"[aiLmsux-]*", pattern[i + 2 :]).group()  # type: ignore[union-attr]
            if set(flags) & set("aLux"):
                return "inline flags other than i, m, s"
        i += 1
    return None


def _re2_problem(tree: Any) -> str | None:
    for op, arg in tree:
        opname = str(op)
        if opname in _RE2_REFUSED:
            return _RE2_REFUSED[opname]
        if opname == "AT" and str(arg) == "AT_END_STRING":
            return r"\Z; use $"
        if (
            opname in ("MAX_REPEAT", "MIN_REPEAT")
            and max(arg[0], arg[1] if arg[1] != _MAXREPEAT else 0) > 1000
        ):
            return "repeat counts above 1000"
        if opname == "SUBPATTERN" and (arg[1] | arg[2]) & (re.X | re.A | re.L | re.U):
            return "inline flags other than i, m, s"
        for sub in _children(arg):
            found = _re2_problem(sub)
            if found:
                return found
    return None


def _children(arg: Any) -> list[Any]:
    if hasattr(arg, "data"):  # a parsed sub-pattern
        return [arg]
    if isinstance(arg, tuple | list):
        return [child for item in arg for child in _children(item)]
    return []


#: The longest ``last_days`` window: 100 years.
MAX_LAST_DAYS = 36_500


@dataclass(frozen=True)
class Window:
    """A time window for event conditions: the last N days before ``at``, or a date range.

    ``Window(last_days=30)`` covers ``[at - 30 days, at)``. ``Window(start=d1, end=d2)``
    with dates covers whole UTC days ``[d1 00:00, d2 + 1 day 00:00)`` (both dates
    included); with time-zone-aware datetimes it covers ``[start, end)``.

    >>> Window(last_days=30).describe()
    'in the last 30 days'
    >>> Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 31)).describe()
    'between 2026-01-01 and 2026-01-31'
    >>> Window(last_days=0)
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: window.last_days == 0, must be an integer in [1, 36500]
    """

    last_days: int | None = None  # at most MAX_LAST_DAYS (100 years)
    start: dt.date | None = None
    end: dt.date | None = None

    def __post_init__(self) -> None:
        if self.last_days is not None:
            if self.start is not None or self.end is not None:
                raise SpecError(
                    "window", self.to_dict(), "must set last_days or start/end, not both"
                )
            try:
                check_int("window.last_days", self.last_days, low=1, high=MAX_LAST_DAYS)
            except Exception as err:
                raise SpecError(
                    "window.last_days", self.last_days, err.args[0].split(", ", 1)[1]
                ) from None
            return
        if self.start is None or self.end is None:
            raise SpecError("window", self.to_dict(), "must set last_days, or both start and end")
        for field in ("start", "end"):
            value = getattr(self, field)
            if isinstance(value, dt.datetime):
                if value.tzinfo is None:
                    raise SpecError(
                        f"window.{field}", value, "must be a date or a time-zone-aware datetime"
                    )
                object.__setattr__(self, field, value.astimezone(_UTC))
            elif not isinstance(value, dt.date):
                raise SpecError(
                    f"window.{field}", value, "must be a date or a time-zone-aware datetime"
                )
        if isinstance(self.start, dt.datetime) != isinstance(self.end, dt.datetime):
            raise SpecError(
                "window.end", self.end, "must be the same kind (date or datetime) as start"
            )
        lo, hi = self.bounds(dt.datetime.now(_UTC))
        if lo >= hi:
            raise SpecError("window.end", self.end, f"must be after window.start ({self.start})")

    def bounds(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The half-open UTC interval ``[low, high)`` this window covers at reference time ``at``."""
        if self.last_days is not None:
            return at - dt.timedelta(days=self.last_days), at
        assert self.start is not None and self.end is not None
        if isinstance(self.start, dt.datetime) and isinstance(self.end, dt.datetime):
            return self.start, self.end
        lo = dt.datetime.combine(self.start, dt.time(), _UTC)
        hi = dt.datetime.combine(self.end, dt.time(), _UTC) + dt.timedelta(days=1)
        return lo, hi

    def predicate(self, ts: exp.Expr, at: dt.datetime) -> exp.Expr:
        """``ts >= low AND ts < high`` as a sqlglot expression."""
        lo, hi = self.bounds(at)
        return exp.and_(
            exp.GTE(this=ts.copy(), expression=ts_literal(lo)),
            exp.LT(this=ts.copy(), expression=ts_literal(hi)),
        )

    def describe(self) -> str:
        """Human-readable text, e.g. ``'in the last 30 days'``."""
        if self.last_days is not None:
            return (
                "in the last day" if self.last_days == 1 else f"in the last {self.last_days} days"
            )
        return f"between {self.start.isoformat()} and {self.end.isoformat()}"  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: ``{'last_days': 30}`` or ``{'start': '2026-01-01', 'end': ...}``."""
        if self.last_days is not None:
            return {"last_days": self.last_days}
        return {"start": _iso(self.start), "end": _iso(self.end)}

    @classmethod
    def from_dict(cls, data: Any) -> Window:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or not set(data) <= {"last_days", "start", "end"}:
            raise SpecError("window", data, "must be a mapping with last_days or start/end")
        if "last_days" in data:
            return cls(last_days=data["last_days"])
        return cls(
            start=_parse_when("window.start", data.get("start")),
            end=_parse_when("window.end", data.get("end")),
        )


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _parse_when(name: str, text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
    except ValueError:
        raise SpecError(name, text, "must be an ISO date or datetime") from None
