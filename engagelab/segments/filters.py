"""Property filters: ``column <op> value`` on a profile (user property) or on an event.

Operators (canonical name, then accepted aliases):

============  ======================  ==============================================
operator      aliases                 meaning
============  ======================  ==============================================
``=``         ``==``, ``eq``          equal
``!=``        ``≠``, ``<>``, ``ne``   not equal (the property must exist)
``<``         ``lt``                  less than (numbers, strings, datetimes)
``<=``        ``≤``, ``le``           at most
``>``         ``gt``                  greater than
``>=``        ``≥``, ``ge``           at least
between       —                       ``low <= x <= high``
in            —                       one of a non-empty list of values
contains      —                       substring (string column) or element (list column)
starts_with   —                       string prefix (taken literally: ``%``/``_`` are text)
matches       —                       RE2 regular expression found in the value
not_matches   —                       RE2 regular expression not found (value must exist)
exists        —                       value is not NULL
not_exists    —                       value is NULL
============  ======================  ==============================================

Every operator except ``not_exists`` is false on a missing value. ``contains`` means
element membership for list columns: the events column ``labels`` is known to be a
list; pass ``columns={'events': {'tags': 'list<string>'}}`` when compiling for others
(without it ``contains`` is a substring test). Regular
expressions use RE2 syntax (DuckDB, and Spark through the same SQL): linear-time
matching, so backreferences and lookarounds are refused; ``\\w``, ``\\d`` and ``\\s``
are ASCII classes; matching is a search (anchor with ``^``/``$``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlglot import exp

from engagelab.errors import SpecError
from engagelab.segments._values import (
    check_column,
    check_regex,
    check_scalar,
    decode,
    encode,
    literal,
    value_kind,
)
from engagelab.segments.base import Condition, Context, P

__all__ = ["OPERATORS", "Prop", "PropertyFilter", "prop"]

OPERATORS = (
    "=", "!=", "<", "<=", ">", ">=", "between", "in", "contains",
    "starts_with", "matches", "not_matches", "exists", "not_exists",
)  # fmt: skip
_ALIASES = {
    "==": "=", "eq": "=", "≠": "!=", "<>": "!=", "ne": "!=", "lt": "<", "≤": "<=",
    "le": "<=", "gt": ">", "≥": ">=", "ge": ">=", "startswith": "starts_with",
}  # fmt: skip
_CMP = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
_SHOW = {
    "!=": "≠",
    "<=": "≤",
    ">=": "≥",
    "starts_with": "starts with",
    "not_matches": "does not match",
}
_STRING_OPS = ("contains", "starts_with", "matches", "not_matches")


def canonical_op(name: str, op: Any) -> str:
    """The canonical spelling of an operator, or a one-line error listing them."""
    op = _ALIASES.get(op, op) if isinstance(op, str) else op
    if op not in OPERATORS:
        raise SpecError(name, op, "must be one of " + ", ".join(repr(o) for o in OPERATORS))
    return op


def check_value(name: str, op: str, value: Any) -> Any:  # noqa: C901
    """Check (and freeze) the value for ``op``."""
    if op in ("exists", "not_exists"):
        if value is not None:
            raise SpecError(name, value, f"must be None for {op!r}")
        return None
    if op == "in":
        if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
            raise SpecError(name, value, "must be a non-empty list of values for 'in'")
        values = tuple(check_scalar(name, v) for v in value)
        if not values:
            raise SpecError(name, [], "must be a non-empty list of values for 'in'")
        if len({value_kind(v) for v in values}) > 1:
            raise SpecError(name, value, "must hold values of one kind for 'in'")
        return values
    if op == "between":
        if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
            raise SpecError(name, value, "must be a (low, high) pair for 'between'")
        low, high = (check_scalar(name, v) for v in value)
        if value_kind(low) != value_kind(high) or value_kind(low) == "bool":
            raise SpecError(name, value, "must be two numbers, strings or datetimes for 'between'")
        if low > high:
            raise SpecError(name, value, "must have low <= high for 'between'")
        return (low, high)
    if op in ("matches", "not_matches"):
        return check_regex(name, value)
    if op in _STRING_OPS:
        if not isinstance(value, str):
            raise SpecError(name, value, f"must be a string for {op!r}")
        return value
    value = check_scalar(name, value)
    if op not in ("=", "!=") and value_kind(value) == "bool":
        raise SpecError(name, value, f"must be a number, string or datetime for {op!r}")
    return value


def filter_sql(ctx: Context, table: str, alias: str, column: str, op: str, value: Any) -> exp.Expr:
    """Build the SQL predicate of one filter, checking the column's type when known."""
    col = ctx.column(table, column, alias)
    kind = ctx.kind_of(table, column)
    if kind is not None:
        _check_kind(column, kind, op, value)
    if op == "exists":
        return exp.not_(exp.Is(this=col, expression=exp.null()))
    if op == "not_exists":
        return exp.Is(this=col, expression=exp.null())
    if op in _CMP:
        return _CMP[op](this=col, expression=literal(value))
    if op == "between":
        return exp.Between(this=col, low=literal(value[0]), high=literal(value[1]))
    if op == "in":
        return exp.In(this=col, expressions=[literal(v) for v in value])
    if op == "contains":
        if kind == "list":
            return exp.ArrayContains(this=col, expression=literal(value))
        return exp.GT(
            this=exp.StrPosition(this=col, substr=literal(value)), expression=exp.Literal.number(0)
        )
    if op == "starts_with":
        return exp.StartsWith(this=col, expression=literal(value))
    match = exp.RegexpLike(this=col, expression=literal(value))
    return match if op == "matches" else exp.not_(match)


def _check_kind(column: str, kind: str, op: str, value: Any) -> None:
    if kind == "list":
        if op not in ("contains", "exists", "not_exists"):
            raise SpecError(
                "op", op, f"must be 'contains', 'exists' or 'not_exists' for list column {column!r}"
            )
        return
    if op in _STRING_OPS and kind != "string":
        raise SpecError("op", op, f"needs a string column; {column!r} holds {kind} values")
    if op in _CMP or op in ("between", "in"):
        sample = value[0] if isinstance(value, tuple) else value
        if value_kind(sample) != kind:
            raise SpecError("value", value, f"must be a {kind} for column {column!r}")


def show_value(value: Any) -> str:
    """Readable text of a filter value."""
    if isinstance(value, tuple):
        return "(" + ", ".join(show_value(v) for v in value) + ")"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)


def describe_filter(column: str, op: str, value: Any) -> str:
    """``"city matches '^Ber'"``, ``"age between 18 and 30"``, ``"email exists"``."""
    if op == "exists":
        return f"{column} exists"
    if op == "not_exists":
        return f"{column} does not exist"
    if op == "between":
        return f"{column} between {show_value(value[0])} and {show_value(value[1])}"
    return f"{column} {_SHOW.get(op, op)} {show_value(value)}"


@dataclass(frozen=True, repr=False)
class PropertyFilter(Condition):
    """``column <op> value``: a user-property condition, or an event filter in ``where=``.

    >>> PropertyFilter("age", ">=", 18).describe()
    'age ≥ 18'
    >>> PropertyFilter("age", "~", 18)
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: op == '~', must be one of '=', '!=', '<', '<=', '>', '>=', 'between', 'in', 'contains', 'starts_with', 'matches', 'not_matches', 'exists', 'not_exists'
    """

    kind: ClassVar[str] = "property"
    column: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        check_column("column", self.column)
        op = canonical_op("op", self.op)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "value", check_value("value", op, self.value))

    def predicate(self, ctx: Context) -> exp.Expr:
        return filter_sql(ctx, "profiles", P, self.column, self.op, self.value)

    def event_predicate(self, ctx: Context, alias: str) -> exp.Expr:
        """The same filter applied to an event column (``alias.column``)."""
        return filter_sql(ctx, "events", alias, self.column, self.op, self.value)

    def describe(self) -> str:
        return describe_filter(self.column, self.op, self.value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "column": self.column,
            "op": self.op,
            "value": encode(self.value),
        }

    @classmethod
    def _from_fields(cls, data: Any) -> Condition:
        _only(data, {"column", "op", "value"}, "property")
        return cls(data.get("column"), data.get("op"), decode(data.get("value")))


def _only(data: dict[str, Any], allowed: set[str], kind: str) -> None:
    extra = set(data) - allowed
    if extra:
        raise SpecError(
            f"{kind}.{sorted(extra)[0]}",
            data[sorted(extra)[0]],
            f"is not a field of {kind!r} (fields: {', '.join(sorted(allowed))})",
        )


class Prop:
    """Builder of :class:`PropertyFilter` for one column: ``prop("age") >= 18``.

    >>> print(prop("city").matches("^Ber") | prop("age").between(18, 30))
    city matches '^Ber' OR age between 18 and 30
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, column: str):
        self.column = check_column("column", column)

    def _f(self, op: str, value: Any = None) -> PropertyFilter:
        return PropertyFilter(self.column, op, value)

    def eq(self, value: Any) -> PropertyFilter:
        """``column = value``."""
        return self._f("=", value)

    def ne(self, value: Any) -> PropertyFilter:
        """``column ≠ value`` (false when the property is missing)."""
        return self._f("!=", value)

    def between(self, low: Any, high: Any) -> PropertyFilter:
        """``low <= column <= high``."""
        return self._f("between", (low, high))

    def isin(self, values: Sequence[Any]) -> PropertyFilter:
        """``column`` is one of ``values``."""
        return self._f("in", values)

    def contains(self, value: str) -> PropertyFilter:
        """Substring (string column) or element (list column) containment."""
        return self._f("contains", value)

    def starts_with(self, value: str) -> PropertyFilter:
        """String prefix, taken literally."""
        return self._f("starts_with", value)

    def matches(self, pattern: str) -> PropertyFilter:
        """RE2 regular expression found in the value."""
        return self._f("matches", pattern)

    def not_matches(self, pattern: str) -> PropertyFilter:
        """RE2 regular expression not found in the (present) value."""
        return self._f("not_matches", pattern)

    def exists(self) -> PropertyFilter:
        """The property is present (not NULL)."""
        return self._f("exists")

    def not_exists(self) -> PropertyFilter:
        """The property is missing (NULL)."""
        return self._f("not_exists")

    def __eq__(self, value: Any) -> PropertyFilter:  # type: ignore[override]
        return self.eq(value)

    def __ne__(self, value: Any) -> PropertyFilter:  # type: ignore[override]
        return self.ne(value)

    def __lt__(self, value: Any) -> PropertyFilter:
        return self._f("<", value)

    def __le__(self, value: Any) -> PropertyFilter:
        return self._f("<=", value)

    def __gt__(self, value: Any) -> PropertyFilter:
        return self._f(">", value)

    def __ge__(self, value: Any) -> PropertyFilter:
        return self._f(">=", value)

    def __repr__(self) -> str:
        return f"prop({self.column!r})"


def prop(column: str) -> Prop:
    """Start a property filter on ``column``: ``prop("city").matches("^Ber")``."""
    return Prop(column)
