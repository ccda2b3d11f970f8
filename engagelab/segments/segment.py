"""The :class:`Segment` root spec, saved-segment references and message-label conditions.

A segment compiles to ``SELECT DISTINCT p.user_id FROM profiles AS p WHERE ...`` in
the DuckDB dialect (or any sqlglot dialect, e.g. ``'spark'``); every user value
becomes a sqlglot literal and every column a quoted identifier.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from engagelab.errors import SpecError
from engagelab.frozen import frozen, replace_spec
from engagelab.segments._values import Window, literal
from engagelab.segments.base import Condition, Context, E, P
from engagelab.segments.events import _event_name, _window, event_scan, in_users
from engagelab.segments.filters import _only

__all__ = ["InSegment", "SENT_EVENT", "Segment", "SentLabel"]

#: The system event delivery appends for every message sent; carries ``labels``.
SENT_EVENT = "Notification Sent"
_FORMAT_VERSION = 1


@dataclass(frozen=True, repr=False)
class SentLabel(Condition):
    """Was sent a message labelled ``label`` (a 'Notification Sent' event whose
    list<string> column ``labels`` contains it), optionally inside ``window``.

    >>> SentLabel("Onboarding", Window(last_days=14)).describe()
    "was sent a message labelled 'Onboarding' in the last 14 days"
    """

    kind: ClassVar[str] = "sent_label"
    label: str
    window: Window | None = None

    def __post_init__(self) -> None:
        _event_name("label", self.label)
        _window("window", self.window)

    def predicate(self, ctx: Context) -> exp.Expr:
        kind = ctx.kind_of("events", "labels")
        if kind not in (None, "list"):
            raise SpecError(
                "column", "labels", f"must be a list<string> column of events, not {kind}"
            )
        labels = ctx.column("events", "labels", E)
        query = event_scan(ctx, SENT_EVENT, (), self.window)
        return in_users(
            ctx, query.where(exp.ArrayContains(this=labels, expression=literal(self.label)))
        )

    def describe(self) -> str:
        tail = "" if self.window is None else " " + self.window.describe()
        return f"was sent a message labelled {self.label!r}{tail}"

    def describe_negated(self) -> str:
        tail = "" if self.window is None else " " + self.window.describe()
        return f"was not sent a message labelled {self.label!r}{tail}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "label": self.label}
        if self.window is not None:
            out["window"] = self.window.to_dict()
        return out

    @classmethod
    def _from_fields(cls, data: Any) -> Condition:
        _only(data, {"label", "window"}, "sent_label")
        window = None if data.get("window") is None else Window.from_dict(data["window"])
        return cls(data.get("label"), window)


@dataclass(frozen=True, repr=False)
class InSegment(Condition):
    """Member of the saved segment ``name`` (exclude it with ``~``).

    Resolved at compile time through ``resolve(name) -> Segment``; cycles are an error.
    """

    kind: ClassVar[str] = "in_segment"
    name: str

    def __post_init__(self) -> None:
        _event_name("name", self.name)

    def predicate(self, ctx: Context) -> exp.Expr:
        if ctx.resolve is None:
            raise SpecError(
                "resolve", None, f"must be given to compile saved segment {self.name!r}"
            )
        if self.name in ctx.stack:
            path = " -> ".join((*ctx.stack[ctx.stack.index(self.name) :], self.name))
            raise SpecError("segment", self.name, f"refers to itself through a cycle: {path}")
        try:
            found = ctx.resolve(self.name)
        except LookupError:
            raise SpecError("segment", self.name, "is not a saved segment") from None
        if isinstance(found, Segment):
            found = found.condition
        if not isinstance(found, Condition):
            raise SpecError(
                "resolve",
                self.name,
                f"must return a Segment or Condition, got {type(found).__name__}",
            )
        return found.predicate(dataclasses.replace(ctx, stack=(*ctx.stack, self.name)))

    def describe(self) -> str:
        return f"in segment {self.name!r}"

    def describe_negated(self) -> str:
        return f"not in segment {self.name!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}

    @classmethod
    def _from_fields(cls, data: Any) -> Condition:
        _only(data, {"name"}, "in_segment")
        return cls(data.get("name"))


Resolver = Callable[[str], "Segment | Condition"]


@frozen
@dataclass(frozen=True, repr=False)
class Segment:
    """A named, serialisable audience definition: a :class:`Condition` over users.

    >>> from engagelab.segments import did, prop
    >>> seg = Segment(did("Charged", at_least=2, within_days=30) & ~did("Uninstalled"), name="buyers")
    >>> seg
    Segment('buyers': did 'Charged' ≥ 2 times in the last 30 days AND did not do 'Uninstalled')
    >>> Segment.from_json(seg.to_json()) == seg
    True
    >>> at = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    >>> print(Segment(prop("plan").eq("pro")).to_sql(at=at))
    SELECT DISTINCT "p"."user_id" FROM "profiles" AS "p" WHERE NOT "p"."user_id" IS NULL AND ("p"."plan" = 'pro')
    """

    condition: Condition
    name: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.condition, Condition):
            raise SpecError(
                "condition",
                self.condition,
                "must be a Condition (e.g. did('Charged') & prop('city').eq('Berlin'))",
            )
        for field in ("name", "description"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, str):
                raise SpecError(field, value, "must be a string or None")

    def replace(self, **changes: Any) -> Segment:
        """A copy with some fields changed, validated again (segments are frozen)."""
        return replace_spec(self, changes)

    # ------------------------------------------------------------------ compile
    def to_expression(
        self,
        *,
        at: dt.datetime | None = None,
        resolve: Resolver | None = None,
        columns: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> exp.Select:
        """The segment as a sqlglot ``SELECT DISTINCT user_id FROM profiles ...`` expression.

        Args:
            at: reference time (UTC-aware) for "last N days" windows; default now.
            resolve: ``name -> Segment`` for saved-segment references.
            columns: ``{'events': {col: type}, 'profiles': {col: type}}`` to check column
                names and types now rather than when the query runs.
        """
        if at is None:
            at = dt.datetime.now(dt.UTC)
        if not isinstance(at, dt.datetime):
            raise SpecError("at", at, "must be a time-zone-aware datetime")
        ctx = Context(
            at=at, resolve=resolve, columns=columns, stack=(self.name,) if self.name else ()
        )
        user = ctx.column("profiles", "user_id", P)
        where = exp.and_(
            exp.not_(exp.Is(this=user.copy(), expression=exp.null())),
            exp.paren(self.condition.predicate(ctx)),
        )
        return exp.select(user).distinct().from_(exp.to_table("profiles").as_(P)).where(where)

    def to_sql(
        self,
        dialect: str = "duckdb",
        *,
        at: dt.datetime | None = None,
        resolve: Resolver | None = None,
        columns: Mapping[str, Mapping[str, Any]] | None = None,
        pretty: bool = False,
    ) -> str:
        """SQL text selecting the segment's distinct ``user_id`` values, in ``dialect``."""
        try:
            Dialect.get_or_raise(dialect)
        except ValueError:
            raise SpecError(
                "dialect", dialect, "must be a sqlglot dialect such as 'duckdb' or 'spark'"
            ) from None
        expression = self.to_expression(at=at, resolve=resolve, columns=columns)
        return expression.sql(dialect=dialect, pretty=pretty, identify=True)

    def user_ids(self, con: Any, **kwargs: Any) -> Any:
        """Run on a DuckDB connection holding ``events`` and ``profiles``; a DataFrame of user ids."""
        return con.execute(self.to_sql("duckdb", **kwargs)).df()

    def count(self, con: Any, **kwargs: Any) -> int:
        """Number of users in the segment, counted by DuckDB on ``con``."""
        inner = self.to_expression(**kwargs).subquery("segment")
        query = exp.select(exp.Count(this=exp.Star())).from_(inner)
        return int(con.execute(query.sql(dialect="duckdb", identify=True)).fetchone()[0])

    # ------------------------------------------------------------------ text
    def describe(self) -> str:
        """Human-readable description of the condition."""
        return self.condition.describe()

    def __repr__(self) -> str:
        label = f"{self.name!r}: " if self.name else ""
        return f"Segment({label}{self.describe()})"

    def _repr_html_(self) -> str:
        title = f"<b>{html.escape(self.name)}</b>: " if self.name else "<b>Segment</b>: "
        desc = f"<br><i>{html.escape(self.description)}</i>" if self.description else ""
        return f"<div class='el-segment'>{title}<code>{html.escape(self.describe())}</code>{desc}</div>"

    # ------------------------------------------------------------------ serialise
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data (``from_dict`` inverts it)."""
        out: dict[str, Any] = {"version": _FORMAT_VERSION}
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        out["condition"] = self.condition.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Segment:
        """Rebuild a segment from :meth:`to_dict` output."""
        if not isinstance(data, Mapping):
            raise SpecError("segment", data, "must be a mapping with a 'condition'")
        _only(dict(data), {"version", "name", "description", "condition"}, "segment")
        if data.get("version", _FORMAT_VERSION) != _FORMAT_VERSION:
            raise SpecError("version", data.get("version"), f"must be {_FORMAT_VERSION}")
        return cls(
            Condition.from_dict(data.get("condition")), data.get("name"), data.get("description")
        )

    def to_json(self, **kwargs: Any) -> str:
        """JSON text; ``kwargs`` go to :func:`json.dumps`."""
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Segment:
        """Rebuild a segment from :meth:`to_json` text."""
        from engagelab.validate import load_json

        return cls.from_dict(load_json(text, "segment JSON"))

    def to_yaml(self) -> str:
        """YAML text (safe dump)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str) -> Segment:
        """Rebuild a segment from :meth:`to_yaml` text (safe load)."""
        from engagelab.validate import load_yaml

        return cls.from_dict(load_yaml(text, "segment YAML"))
