"""The condition algebra: the :class:`Condition` base, ``And`` / ``Or`` / ``Not``, and the
compile context that turns conditions into sqlglot predicates over ``profiles AS p``.

Semantics (documented once, used everywhere):

* The audience universe is ``profiles``: a user is in a segment only if it has a
  profile row. Event user ids without a profile are never in any segment.
* Every condition is a predicate on a profile row that is either true or false,
  never unknown: a property filter on a missing (NULL) value is false, except
  ``not_exists``. ``NOT c`` is the complement of ``c`` within ``profiles``, so users
  with no events qualify for "did not do E" and users whose ``city`` is missing
  qualify for ``~prop('city').eq('Berlin')``.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
from sqlglot import exp

from engagelab.errors import SpecError
from engagelab.schema import EVENT_SCHEMA, PROFILE_SCHEMA

__all__ = ["And", "Condition", "Context", "Not", "Or"]

_REGISTRY: dict[str, type[Condition]] = {}

P = "p"  # alias of the profiles relation in compiled SQL
E = "e"  # alias of the events relation inside every event scan


class Condition(abc.ABC):
    """Base of every segment condition; combine them with ``&``, ``|`` and ``~``.

    >>> from engagelab.segments import did, prop
    >>> c = did("Charged", at_least=2, within_days=30) & prop("city").matches("^Ber")
    >>> print(c.describe())
    did 'Charged' ≥ 2 times in the last 30 days AND city matches '^Ber'
    """

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            _REGISTRY[cls.kind] = cls

    def __and__(self, other: Condition) -> Condition:
        return And.of(self, _cond("&", other))

    def __or__(self, other: Condition) -> Condition:
        return Or.of(self, _cond("|", other))

    def __invert__(self) -> Condition:
        return Not(self)

    @abc.abstractmethod
    def describe(self) -> str:
        """Human-readable description of the condition."""

    @abc.abstractmethod
    def predicate(self, ctx: Context) -> exp.Expr:
        """A sqlglot boolean expression over ``profiles AS p``."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data; ``Condition.from_dict`` inverts it."""

    @classmethod
    @abc.abstractmethod
    def _from_fields(cls, data: Any) -> Condition:
        """Rebuild this kind of condition from the fields of :meth:`to_dict` (without kind)."""

    @staticmethod
    def from_dict(data: Any) -> Condition:
        """Rebuild any condition from :meth:`to_dict` output."""
        if not isinstance(data, Mapping) or data.get("kind") not in _REGISTRY:
            kind = data.get("kind") if isinstance(data, Mapping) else data
            raise SpecError(
                "kind", kind, "must be one of " + ", ".join(repr(k) for k in sorted(_REGISTRY))
            )
        body = {k: v for k, v in data.items() if k != "kind"}
        return _REGISTRY[data["kind"]]._from_fields(body)

    def replace(self, **changes: Any) -> Condition:
        """A copy with some fields changed (conditions are frozen)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def __repr__(self) -> str:
        return f"{type(self).__name__}<{self.describe()}>"

    def __str__(self) -> str:
        return self.describe()

    def _repr_html_(self) -> str:
        return f"<code>{html.escape(self.describe())}</code>"

    def _paren(self) -> str:
        return self.describe()


def _cond(op: str, value: Any) -> Condition:
    if not isinstance(value, Condition):
        raise SpecError("operand", value, f"must be a Condition to combine with {op}")
    return value


def _children(name: str, items: Any) -> tuple[Condition, ...]:
    items = tuple(items)
    if len(items) < 2:
        raise SpecError(name, len(items), "must combine at least 2 conditions")
    for item in items:
        _cond(name, item)
    return items


@dataclass(frozen=True, repr=False)
class _Junction(Condition):
    """Shared body of :class:`And` and :class:`Or`: a flat tuple of at least 2 conditions."""

    word: ClassVar[str] = ""
    combine: ClassVar[Callable[..., exp.Expr]]
    conditions: tuple[Condition, ...]

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "conditions", _children(f"{self.kind}.conditions", self.conditions)
        )

    @classmethod
    def of(cls, *items: Condition) -> Condition:
        """Combine, flattening nested nodes of the same kind."""
        flat: list[Condition] = []
        for item in items:
            flat.extend(item.conditions if isinstance(item, cls) else [item])
        return cls(tuple(flat))

    def predicate(self, ctx: Context) -> exp.Expr:
        return type(self).combine(
            *(exp.paren(c.predicate(ctx), copy=False) for c in self.conditions)
        )

    def describe(self) -> str:
        return f" {self.word} ".join(c._paren() for c in self.conditions)

    def _paren(self) -> str:
        return f"({self.describe()})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "conditions": [c.to_dict() for c in self.conditions]}

    @classmethod
    def _from_fields(cls, data: Any) -> Condition:
        return cls(tuple(Condition.from_dict(c) for c in _list(data, "conditions")))


@dataclass(frozen=True, repr=False)
class And(_Junction):
    """All of ``conditions`` hold."""

    kind: ClassVar[str] = "and"
    word: ClassVar[str] = "AND"
    combine = staticmethod(exp.and_)


@dataclass(frozen=True, repr=False)
class Or(_Junction):
    """At least one of ``conditions`` holds."""

    kind: ClassVar[str] = "or"
    word: ClassVar[str] = "OR"
    combine = staticmethod(exp.or_)


@dataclass(frozen=True, repr=False)
class Not(Condition):
    """``condition`` does not hold (complement within ``profiles``; NULL counts as false)."""

    kind: ClassVar[str] = "not"
    condition: Condition

    def __post_init__(self) -> None:
        _cond("~", self.condition)

    def __invert__(self) -> Condition:
        return self.condition

    def predicate(self, ctx: Context) -> exp.Expr:
        inner = self.condition.predicate(ctx)
        return exp.not_(exp.func("COALESCE", inner, exp.false()))

    def describe(self) -> str:
        negated = getattr(self.condition, "describe_negated", None)
        return negated() if negated else f"NOT {self.condition._paren()}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "condition": self.condition.to_dict()}

    @classmethod
    def _from_fields(cls, data: Any) -> Condition:
        return cls(Condition.from_dict(data.get("condition")))


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list | tuple):
        raise SpecError(key, value, "must be a list of conditions")
    return list(value)


# --------------------------------------------------------------------------- context

_KINDS = ("string", "number", "bool", "datetime", "list")
_TYPE_NAMES = {
    "string": "string", "varchar": "string", "str": "string", "text": "string",
    "int64": "number", "float64": "number", "bigint": "number", "integer": "number",
    "int": "number", "double": "number", "float": "number", "number": "number",
    "bool": "bool", "boolean": "bool",
    "timestamp": "datetime", "datetime": "datetime", "timestamptz": "datetime",
    "timestamp with time zone": "datetime",
    "list<string>": "list", "varchar[]": "list", "list": "list",
}  # fmt: skip


def column_kind(table: str, column: str, typ: Any) -> str:
    """Map a column type (short name, DuckDB name or pyarrow type) to a value kind."""
    if isinstance(typ, pa.DataType):
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            return "string"
        if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
            return "number"
        if pa.types.is_boolean(typ):
            return "bool"
        if pa.types.is_timestamp(typ):
            return "datetime"
        if pa.types.is_list(typ) or pa.types.is_large_list(typ):
            return "list"
    elif isinstance(typ, str) and typ.strip().lower() in _TYPE_NAMES:
        return _TYPE_NAMES[typ.strip().lower()]
    raise SpecError(
        f"columns[{table!r}][{column!r}]",
        typ,
        "must be a type such as 'string', 'int64', 'float64', 'bool', 'timestamp', 'list<string>'",
    )


# Columns whose kind is known without a ``columns`` mapping: the core schema, plus the
# list<string> ``labels`` column that delivery writes on 'Notification Sent' events.
_CORE = {
    "events": {
        **{f.name: column_kind("events", f.name, f.type) for f in EVENT_SCHEMA},
        "labels": "list",
    },
    "profiles": {f.name: column_kind("profiles", f.name, f.type) for f in PROFILE_SCHEMA},
}


@dataclass
class Context:
    """What a compile needs: reference time, saved-segment resolver, known columns.

    ``columns`` maps ``'events'`` / ``'profiles'`` to ``{column: type}``; core columns
    from :mod:`engagelab.schema` are always known. Without ``columns`` names are not
    checked here and an unknown one fails when the query runs, naming the column.
    """

    at: dt.datetime
    resolve: Callable[[str], Any] | None = None
    columns: Mapping[str, Mapping[str, Any]] | None = None
    stack: tuple[str, ...] = ()
    _kinds: dict[str, dict[str, str]] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise SpecError("at", self.at, "must be a time-zone-aware datetime (UTC)")
        self.at = self.at.astimezone(dt.UTC)
        if self.columns is not None:
            if not isinstance(self.columns, Mapping) or not set(self.columns) <= {
                "events",
                "profiles",
            }:
                raise SpecError(
                    "columns", self.columns, "must map 'events' and/or 'profiles' to {column: type}"
                )
            self._kinds = {}
            for table in ("events", "profiles"):
                kinds = dict(_CORE[table])
                for name, typ in dict(self.columns.get(table) or {}).items():
                    kinds[name] = column_kind(table, name, typ)
                self._kinds[table] = kinds

    def kind_of(self, table: str, column: str) -> str | None:
        """The value kind of ``table.column``; raises if ``columns`` is given and lacks it."""
        if self._kinds is None:
            return _CORE[table].get(column)
        kinds = self._kinds[table]
        if column not in kinds:
            known = ", ".join(sorted(kinds))
            raise SpecError("column", column, f"is not a column of {table} (known: {known})")
        return kinds[column]

    def column(self, table: str, column: str, alias: str) -> exp.Column:
        """A quoted, alias-qualified column reference, after the existence check."""
        self.kind_of(table, column)
        return exp.column(column, table=alias, quoted=True)
