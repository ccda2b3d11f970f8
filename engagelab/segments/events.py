"""Behavioural conditions: did an event (counts, sums, averages), first/last time, and
"constant event property" (did A with value v and not B with the same v).

Each compiles to ``p.user_id IN (SELECT e.user_id FROM events AS e WHERE e.event = ...
AND e.ts >= ... AND e.ts < ... GROUP BY e.user_id HAVING ...)``: one grouped scan
filtered on event name and time range, so Parquet row groups are pruned and the
engine runs it as a hash semi join rather than a per-user correlated subquery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sqlglot import exp

from engagelab.errors import SpecError, ValidationError
from engagelab.segments._values import Window, check_column, decode, encode, literal
from engagelab.segments.base import Condition, Context, E, P
from engagelab.segments.filters import (
    PropertyFilter,
    _only,
    canonical_op,
    check_value,
    describe_filter,
)
from engagelab.validate import check_int

__all__ = ["Aggregate", "ConstantProperty", "DidEvent", "FirstOrLast"]

_AGG_OPS = ("=", "!=", "<", "<=", ">", ">=", "between")
_AGG_FUNCS = {"sum": exp.Sum, "avg": exp.Avg}


def _event_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(name, value, "must be a non-empty event name")
    return value


def _where(name: str, value: Any) -> tuple[PropertyFilter, ...]:
    if isinstance(value, PropertyFilter):
        return (value,)
    items = tuple(value or ())
    for item in items:
        if not isinstance(item, PropertyFilter):
            raise SpecError(name, item, "must be property filters such as prop('amount') > 10")
    return items


def _window(name: str, value: Any) -> Window | None:
    if value is not None and not isinstance(value, Window):
        raise SpecError(name, value, "must be a Window or None")
    return value


def _int(name: str, value: Any, low: int = 0) -> int:
    try:
        return check_int(name, value, low=low)
    except ValidationError as err:
        raise SpecError(name, value, err.allowed) from None


def event_scan(
    ctx: Context, event: str | None, where: tuple[PropertyFilter, ...], window: Window | None
) -> exp.Select:
    """``SELECT e.user_id FROM events AS e WHERE <event> AND <window> AND <where>``."""
    conds: list[exp.Expr] = []
    if event is not None:
        conds.append(exp.EQ(this=ctx.column("events", "event", E), expression=literal(event)))
    if window is not None:
        conds.append(window.predicate(ctx.column("events", "ts", E), ctx.at))
    conds.extend(f.event_predicate(ctx, E) for f in where)
    query = exp.select(ctx.column("events", "user_id", E)).from_(exp.to_table("events").as_(E))
    return query.where(exp.and_(*conds)) if conds else query


def in_users(ctx: Context, query: exp.Select) -> exp.Expr:
    """``p.user_id IN (query)``."""
    return ctx.column("profiles", "user_id", P).isin(query=query)


def _tail(where: tuple[PropertyFilter, ...], window: Window | None) -> str:
    text = ""
    if where:
        text += " where " + " and ".join(f.describe() for f in where)
    if window is not None:
        text += " " + window.describe()
    return text


@dataclass(frozen=True)
class Aggregate:
    """``sum``/``avg`` of an event property compared to a value, e.g. sum of amount ≥ 100.

    Events whose property is missing are ignored; if all are missing the comparison is
    false.

    >>> Aggregate("sum", "amount", ">=", 100).describe()
    'sum of amount ≥ 100'
    """

    func: str
    column: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.func not in _AGG_FUNCS:
            raise SpecError("aggregate.func", self.func, "must be one of 'sum', 'avg'")
        check_column("aggregate.column", self.column)
        op = canonical_op("aggregate.op", self.op)
        if op not in _AGG_OPS:
            raise SpecError(
                "aggregate.op", op, "must be one of " + ", ".join(repr(o) for o in _AGG_OPS)
            )
        value = check_value("aggregate.value", op, self.value)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise SpecError(
                    "aggregate.value", self.value, "must be a number (or a pair for 'between')"
                )
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "value", value)

    def having(self, ctx: Context) -> exp.Expr:
        kind = ctx.kind_of("events", self.column)
        if kind is not None and kind != "number":
            raise SpecError(
                "aggregate.column", self.column, f"must be a numeric column, not {kind}"
            )
        agg = _AGG_FUNCS[self.func](this=ctx.column("events", self.column, E))
        if self.op == "between":
            return exp.Between(this=agg, low=literal(self.value[0]), high=literal(self.value[1]))
        cmp = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
        return cmp[self.op](this=agg, expression=literal(self.value))

    def describe(self) -> str:
        return describe_filter(f"{self.func} of {self.column}", self.op, self.value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "func": self.func,
            "column": self.column,
            "op": self.op,
            "value": encode(self.value),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Aggregate:
        if not isinstance(data, dict):
            raise SpecError("aggregate", data, "must be a mapping with func, column, op, value")
        _only(data, {"func", "column", "op", "value"}, "aggregate")
        fields: Any = data
        return cls(
            fields.get("func"), fields.get("column"), fields.get("op"), decode(fields.get("value"))
        )


@dataclass(frozen=True, repr=False)
class DidEvent(Condition):
    """Did ``event`` (matching ``where``) between ``at_least`` and ``at_most`` times in ``window``.

    ``at_least=0`` with an ``at_most`` includes users who never did the event (and
    users with no events at all); otherwise at least one matching event is required.
    An ``aggregate`` (sum/avg of a property) is checked over the same matching events.

    >>> DidEvent("Charged", at_least=2, window=Window(last_days=30)).describe()
    "did 'Charged' ≥ 2 times in the last 30 days"
    >>> DidEvent("Charged", at_least=3, at_most=2)
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: at_most == 2, must be >= at_least (3)
    """

    kind: ClassVar[str] = "did"
    event: str
    where: tuple[PropertyFilter, ...] = ()
    at_least: int = 1
    at_most: int | None = None
    aggregate: Aggregate | None = None
    window: Window | None = None

    def __post_init__(self) -> None:
        _event_name("event", self.event)
        object.__setattr__(self, "where", _where("where", self.where))
        _int("at_least", self.at_least)
        if self.at_most is not None:
            _int("at_most", self.at_most)
            if self.at_most < self.at_least:
                raise SpecError("at_most", self.at_most, f"must be >= at_least ({self.at_least})")
        if self.at_least == 0 and self.at_most is None:
            raise SpecError(
                "at_least", 0, "must be >= 1 unless at_most is set (0 alone matches everyone)"
            )
        if self.aggregate is not None:
            if not isinstance(self.aggregate, Aggregate):
                raise SpecError("aggregate", self.aggregate, "must be an Aggregate or None")
            if self.at_least == 0:
                raise SpecError("at_least", 0, "must be >= 1 with an aggregate")
        _window("window", self.window)

    def predicate(self, ctx: Context) -> exp.Expr:
        query = event_scan(ctx, self.event, self.where, self.window)
        count = exp.Count(this=exp.Star())
        if self.at_least == 0:  # never, or at most N times: complement of "more than N"
            assert self.at_most is not None
            more = exp.GT(this=count, expression=literal(self.at_most))
            query = query.group_by(ctx.column("events", "user_id", E)).having(more)
            return exp.not_(exp.func("COALESCE", in_users(ctx, query), exp.false()))
        having: list[exp.Expr] = []
        if self.at_least > 1:
            having.append(exp.GTE(this=count.copy(), expression=literal(self.at_least)))
        if self.at_most is not None:
            having.append(exp.LTE(this=count.copy(), expression=literal(self.at_most)))
        if self.aggregate is not None:
            having.append(self.aggregate.having(ctx))
        if having:
            query = query.group_by(ctx.column("events", "user_id", E)).having(exp.and_(*having))
        return in_users(ctx, query)

    def _counts(self) -> str:
        lo, hi = self.at_least, self.at_most
        if hi is None:
            return "" if lo == 1 else f" ≥ {lo} times"
        if lo == hi:
            return f" exactly {lo} time{'s' if lo != 1 else ''}"
        if lo == 0:
            return f" ≤ {hi} times (including never)"
        return f" ≤ {hi} times" if lo == 1 else f" {lo} to {hi} times"

    def describe(self) -> str:
        text = f"did {self.event!r}{self._counts()}"
        if self.where:
            text += " where " + " and ".join(f.describe() for f in self.where)
        if self.aggregate is not None:
            text += " with " + self.aggregate.describe()
        return text + ("" if self.window is None else " " + self.window.describe())

    def describe_negated(self) -> str:
        if self.at_least == 1 and self.at_most is None and self.aggregate is None:
            return f"did not do {self.event!r}{_tail(self.where, self.window)}"
        return f"NOT {self.describe()}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "event": self.event}
        if self.where:
            out["where"] = [f.to_dict() for f in self.where]
        out["at_least"] = self.at_least
        if self.at_most is not None:
            out["at_most"] = self.at_most
        if self.aggregate is not None:
            out["aggregate"] = self.aggregate.to_dict()
        if self.window is not None:
            out["window"] = self.window.to_dict()
        return out

    @classmethod
    def _from_fields(cls, data: Any) -> Condition:
        _only(data, {"event", "where", "at_least", "at_most", "aggregate", "window"}, "did")
        return cls(
            event=data.get("event"),
            where=tuple(Condition.from_dict(f) for f in data.get("where") or ()),  # type: ignore[misc]
            at_least=data.get("at_least", 1),
            at_most=data.get("at_most"),
            aggregate=None
            if data.get("aggregate") is None
            else Aggregate.from_dict(data["aggregate"]),
            window=None if data.get("window") is None else Window.from_dict(data["window"]),
        )


@dataclass(frozen=True, repr=False)
class FirstOrLast(Condition):
    """The user's first (or last) ever matching ``event`` falls inside ``window``.

    >>> FirstOrLast("App Launched", "first", Window(last_days=7)).describe()
    "did 'App Launched' for the first time in the last 7 days"
    """

    kind: ClassVar[str] = "first_last"
    event: str
    which: str
    window: Window
    where: tuple[PropertyFilter, ...] = ()

    def __post_init__(self) -> None:
        _event_name("event", self.event)
        if self.which not in ("first", "last"):
            raise SpecError("which", self.which, "must be one of 'first', 'last'")
        if not isinstance(self.window, Window):
            raise SpecError("window", self.window, "must be a Window (first/last time needs one)")
        object.__setattr__(self, "where", _where("where", self.where))

    def predicate(self, ctx: Context) -> exp.Expr:
        query = event_scan(ctx, self.event, self.where, None)
        agg = (exp.Min if self.which == "first" else exp.Max)(this=ctx.column("events", "ts", E))
        query = query.group_by(ctx.column("events", "user_id", E)).having(
            self.window.predicate(agg, ctx.at)
        )
        return in_users(ctx, query)

    def describe(self) -> str:
        where = "" if not self.where else " where " + " and ".join(f.describe() for f in self.where)
        return f"did {self.event!r}{where} for the {self.which} time {self.window.describe()}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "event": self.event,
            "which": self.which,
            "window": self.window.to_dict(),
        }
        if self.where:
            out["where"] = [f.to_dict() for f in self.where]
        return out

    @classmethod
    def _from_fields(cls, data: Any) -> Condition:
        _only(data, {"event", "which", "window", "where"}, "first_last")
        return cls(
            data.get("event"),
            data.get("which"),
            Window.from_dict(data.get("window")),
            tuple(Condition.from_dict(f) for f in data.get("where") or ()),  # type: ignore[misc]
        )


@dataclass(frozen=True, repr=False)
class ConstantProperty(Condition):
    """Did ``did_event`` with ``column == v`` and never ``not_event`` with the same ``v``.

    Example: added product X to cart and did not buy product X. Both scans use the same
    ``window``; events whose ``column`` is missing are ignored.

    >>> ConstantProperty("Added to Cart", "Charged", "product").describe()
    "did 'Added to Cart' and not 'Charged' with the same product"
    """

    kind: ClassVar[str] = "constant_property"
    did_event: str
    not_event: str
    column: str
    window: Window | None = None

    def __post_init__(self) -> None:
        _event_name("did_event", self.did_event)
        _event_name("not_event", self.not_event)
        check_column("column", self.column)
        _window("window", self.window)

    def _scan(self, ctx: Context, event: str) -> exp.Select:
        col = ctx.column("events", self.column, E)
        kind = ctx.kind_of("events", self.column)
        if kind == "list":
            raise SpecError("column", self.column, "must be a scalar column, not a list")
        query = event_scan(ctx, event, (), self.window).select(col)
        return query.where(exp.not_(exp.Is(this=col.copy(), expression=exp.null())))

    def predicate(self, ctx: Context) -> exp.Expr:
        pairs = exp.Except(
            this=self._scan(ctx, self.did_event),
            expression=self._scan(ctx, self.not_event),
            distinct=True,
        )
        query = exp.select(exp.column("user_id", quoted=True)).from_(
            exp.Subquery(this=pairs, alias=exp.TableAlias(this=exp.to_identifier("pairs")))
        )
        return in_users(ctx, query)

    def describe(self) -> str:
        text = f"did {self.did_event!r} and not {self.not_event!r} with the same {self.column}"
        return text + ("" if self.window is None else " " + self.window.describe())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "did_event": self.did_event,
            "not_event": self.not_event,
            "column": self.column,
        }
        if self.window is not None:
            out["window"] = self.window.to_dict()
        return out

    @classmethod
    def _from_fields(cls, data: Any) -> Condition:
        _only(data, {"did_event", "not_event", "column", "window"}, "constant_property")
        window = None if data.get("window") is None else Window.from_dict(data["window"])
        return cls(data.get("did_event"), data.get("not_event"), data.get("column"), window)
