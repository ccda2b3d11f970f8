"""Sandboxed, strict Jinja2 templates for message content.

Variables are always qualified: ``{{ profile.first_name }}`` reads a profile property and
``{{ event.product }}`` a property of the event that triggered the message. Bare names
(``{{ first_name }}``) are not variables and are rejected when the content is built, so
a typo can never silently render as an empty string.

A missing value (an absent or null property) is an error at render time unless the
template gives a default: ``{{ profile.first_name | default('there') }}``.

The environment is :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`jinja2.StrictUndefined`, further narrowed:

* no globals but a bounded ``range``; a small allow-list of filters;
* names and attributes starting with ``_`` are rejected at parse time, and so are
  ``self``, ``{% set %}``, macros, imports, includes and template inheritance;
* methods may be called only from a short allow-list of string methods (so no
  ``str.format`` / ``format_map`` format-string tricks);
* ``*`` and ``**`` are bounded, ``%`` string formatting is refused;
* every loop shares an iteration budget, the output has a size limit and one rendering
  has a time limit (``MAX_RENDER_SECONDS``).

Any violation raises :class:`TemplateError` (a :class:`~engagelab.errors.ValidationError`)
naming the field.

Example:
    >>> t = compile_template("push.title", "Hi {{ profile.name | default('there') }}!")
    >>> t.render({"profile": {"name": "Ada"}})
    'Hi Ada!'
    >>> t.render({"profile": {}})
    'Hi there!'
    >>> sorted(t.variables)
    ['profile.name']
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import StrictUndefined, meta, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engagelab.errors import ValidationError

__all__ = [
    "MAX_ITERATIONS",
    "MAX_OUTPUT_CHARS",
    "MAX_RENDER_SECONDS",
    "MAX_TEMPLATE_CHARS",
    "Template",
    "TemplateError",
    "compile_template",
    "make_context",
    "split_context",
]

#: Longest template source accepted.
MAX_TEMPLATE_CHARS = 100_000
#: Longest rendered output of one template.
MAX_OUTPUT_CHARS = 1_000_000
#: Loop iterations allowed in one rendering (all loops together).
MAX_ITERATIONS = 10_000
#: Wall-clock time one rendering may take (checked at every loop step and output chunk).
MAX_RENDER_SECONDS = 1.0
ROOTS = ("profile", "event")

_FILTERS = [
    "abs",
    "capitalize",
    "count",
    "d",
    "default",
    "e",
    "escape",
    "first",
    "float",
    "int",
    "items",
    "last",
    "length",
    "list",
    "lower",
    "max",
    "min",
    "reverse",
    "round",
    "safe",
    "sort",
    "string",
    "striptags",
    "sum",
    "title",
    "tojson",
    "trim",
    "truncate",
    "unique",
    "upper",
    "urlencode",
    "wordcount",
]
_STR_METHODS = frozenset(
    [
        "upper",
        "lower",
        "title",
        "capitalize",
        "strip",
        "lstrip",
        "rstrip",
        "startswith",
        "endswith",
        "split",
        "isdigit",
        "isalpha",
    ]
)
_FORBIDDEN_NODES = (
    nodes.Assign,
    nodes.AssignBlock,
    nodes.Macro,
    nodes.CallBlock,
    nodes.Import,
    nodes.FromImport,
    nodes.Include,
    nodes.Extends,
    nodes.Block,
    nodes.With,
    nodes.Scope,
)


class TemplateError(ValidationError):
    """A template that does not compile, is not allowed, or cannot be rendered for a user."""


class _Props(dict):  # type: ignore[type-arg]
    """A user's (or event's) properties; attribute access reads keys only."""

    __slots__ = ("root",)

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root

    def missing(self, env: Any, name: Any) -> Any:
        return env.undefined(
            hint=f"{self.root}.{name} is missing for this user", obj=self, name=name
        )


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_ITERATIONS
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _TooSlow(f"rendering took longer than {MAX_RENDER_SECONDS:g} s; aborted")

    def guard(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.left -= 1
            if self.left < 0:
                raise SecurityError(f"more than {MAX_ITERATIONS} loop iterations")
            self.check_time()
            yield item


class _TooSlow(SecurityError):
    """One rendering ran past MAX_RENDER_SECONDS."""


def _safe_range(*args: Any) -> range:
    r = range(*args)
    if len(r) > MAX_ITERATIONS:
        raise SecurityError(f"range of {len(r)} items is too long (at most {MAX_ITERATIONS})")
    return r


def _safe_replace(s: Any, old: Any, new: Any, count: int | None = None) -> str:
    s, old, new = str(s), str(old), str(new)
    n = s.count(old) if old else len(s) + 1
    if count is not None:
        n = min(n, count)
    if len(s) + n * max(0, len(new) - len(old)) > MAX_OUTPUT_CHARS:
        raise SecurityError("replace would produce too long a string")
    return s.replace(old, new) if count is None else s.replace(old, new, count)


def _safe_join(value: Iterable[Any], d: str = "") -> str:
    items = [str(v) for v in value]
    if sum(map(len, items)) + len(d) * max(0, len(items) - 1) > MAX_OUTPUT_CHARS:
        raise SecurityError("join would produce too long a string")
    return d.join(items)


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "%"])

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponent larger than 64")
            return _check_number(left**right)
        if operator_ == "%":
            if isinstance(left, str):
                raise SecurityError("'%' string formatting is not allowed")
            return left % right
        if operator_ == "*":
            for a, b in ((left, right), (right, left)):
                if (
                    isinstance(a, str | list | tuple)
                    and isinstance(b, int)
                    and len(a) * max(b, 0) > MAX_OUTPUT_CHARS
                ):
                    raise SecurityError("repetition would produce too long a value")
            return _check_number(operator.mul(left, right))
        return super().call_binop(context, operator_, left, right)

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format / format_map are refused by is_safe_attribute instead

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_") or not super().is_safe_attribute(obj, attr, value):
            return False
        if callable(value):
            return isinstance(obj, str) and attr in _STR_METHODS
        return True

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, _Props):
            if attribute in obj:
                return obj[attribute]
            return obj.missing(self, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, _Props):
            if argument in obj:
                return obj[argument]
            return obj.missing(self, argument)
        if isinstance(argument, str) and argument.startswith("_"):
            return self.unsafe_undefined(obj, argument)
        return super().getitem(obj, argument)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for node in tree.find_all(nodes.For):
            node.iter = nodes.Call(
                nodes.Name("__el_guard", "load"), [node.iter], [], None, None, lineno=node.lineno
            )
        return tree


def _check_number(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > 256:
        raise SecurityError("integer result too large")
    if isinstance(value, float) and math.isinf(value):
        raise SecurityError("numeric overflow")
    return value


def _make_env(autoescape: bool) -> _Env:
    env = _Env(undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=True)
    env.globals.clear()
    env.globals["range"] = _safe_range
    filters = {k: env.filters[k] for k in _FILTERS}
    filters["replace"] = _safe_replace
    filters["join"] = _safe_join
    env.filters.clear()
    env.filters.update(filters)
    return env


_ENVS = {False: _make_env(False), True: _make_env(True)}


@dataclass(frozen=True)
class Template:
    """A compiled message template: its ``field``, ``source`` and referenced ``variables``."""

    field: str
    source: str
    autoescape: bool
    variables: frozenset[str]
    _compiled: Any
    #: variables read outside any ``default`` filter, ``is`` test or ``if``: rendering fails
    #: for a user who lacks one of them
    required: frozenset[str] = frozenset()

    def render(self, context: Mapping[str, Any]) -> str:
        """Render for one user; ``context`` is ``{"profile": {...}, "event": {...}}``.

        Raises:
            TemplateError: a variable is missing without a default, a sandbox rule was
                broken, or the output is too long.
        """
        if isinstance(context.get("profile"), _Props):
            ctx = context
        else:
            ctx = make_context(*split_context(context))
        budget = _Budget()
        parts: list[str] = []
        size = 0
        try:
            for chunk in self._compiled.generate({**ctx, "__el_guard": budget.guard}):
                budget.check_time()
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise SecurityError(f"output longer than {MAX_OUTPUT_CHARS} characters")
                parts.append(chunk)
        except UndefinedError as exc:
            raise TemplateError(
                self.field,
                self.source,
                message=f"{self.field}: {exc} (add a default, e.g. "
                "{{ profile.name | default('there') }})",
            ) from None
        except _TooSlow as exc:
            raise TemplateError(
                self.field, self.source, message=f"template {self.field}: {exc}"
            ) from None
        except SecurityError as exc:
            raise TemplateError(
                self.field, self.source, message=f"{self.field}: not allowed in a template: {exc}"
            ) from None
        except RecursionError:
            raise TemplateError(
                self.field, self.source, message=f"{self.field}: template recursion too deep"
            ) from None
        except (TypeError, ValueError, ArithmeticError, LookupError, jinja2.TemplateError) as exc:
            raise TemplateError(
                self.field,
                self.source,
                message=f"{self.field}: template failed: {type(exc).__name__}: {exc}",
            ) from None
        return "".join(parts)


def split_context(context: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], Any]:
    """``(profile, event)`` from ``{"profile": ..., "event": ...}`` or a flat profile record."""
    context = context or {}
    if isinstance(context.get("profile"), Mapping):
        return context["profile"], context.get("event")
    return context, None


def make_context(
    profile: Mapping[str, Any] | None = None, event: Mapping[str, Any] | None = None, **_: Any
) -> dict[str, Any]:
    """The render context of one user: null / NaN values are dropped so defaults apply."""
    return {"profile": _props("profile", profile), "event": _props("event", event)}


def _props(root: str, values: Mapping[str, Any] | None) -> _Props:
    out = _Props(root)
    for k, v in (values or {}).items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if type(v).__name__ in ("NaTType", "NAType"):
            continue
        out[str(k)] = v
    return out


def compile_template(field: str, source: Any, *, autoescape: bool = False) -> Template:
    """Parse, check and compile ``source``; errors name ``field``.

    >>> compile_template("email.subject", "{{ profile.__class__ }}")
    Traceback (most recent call last):
    ...
    engagelab.channels._templates.TemplateError: email.subject: not allowed in a template: attribute '__class__' (names starting with '_' are private)
    """
    if not isinstance(source, str):
        raise TemplateError(field, source, "must be a string (a Jinja2 template)")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            field, f"<{len(source)} characters>", f"must be at most {MAX_TEMPLATE_CHARS} characters"
        )
    return _compile(field, source, autoescape)


@lru_cache(maxsize=2048)
def _compile(field: str, source: str, autoescape: bool) -> Template:
    env = _ENVS[autoescape]
    try:
        tree = Parser(env, source).parse()
    except TemplateSyntaxError as exc:
        raise TemplateError(
            field,
            source,
            message=f"{field}: template syntax error on line {exc.lineno}: {exc.message}",
        ) from None
    variables = _check_tree(field, tree)
    try:
        compiled = env.from_string(source)
    except TemplateSyntaxError as exc:  # pragma: no cover - parse succeeded above
        raise TemplateError(field, source, message=f"{field}: {exc.message}") from None
    return Template(
        field, source, autoescape, frozenset(variables), compiled, frozenset(_required(tree))
    )


def _not_allowed(field: str, source: str, what: str) -> TemplateError:
    return TemplateError(field, source, message=f"{field}: not allowed in a template: {what}")


def _check_tree(field: str, tree: nodes.Template) -> set[str]:  # noqa: C901
    for bad in tree.find_all(_FORBIDDEN_NODES):
        tag = type(bad).__name__.lower().replace("assign", "set").replace("block", " block")
        raise _not_allowed(field, "", f"{{% {tag} %}} (templates use expressions, if and for)")
    for ga in tree.find_all(nodes.Getattr):
        if ga.attr.startswith("_"):
            raise _not_allowed(
                field, "", f"attribute {ga.attr!r} (names starting with '_' are private)"
            )
    for gi in tree.find_all(nodes.Getitem):
        arg = gi.arg
        if (
            isinstance(arg, nodes.Const)
            and isinstance(arg.value, str)
            and arg.value.startswith("_")
        ):
            raise _not_allowed(
                field, "", f"key {arg.value!r} (names starting with '_' are private)"
            )
    for nm in tree.find_all(nodes.Name):
        if nm.name.startswith("_") or nm.name == "self":
            raise _not_allowed(field, "", f"name {nm.name!r}")
    for flt in tree.find_all(nodes.Filter):
        if flt.name not in _ENVS[False].filters:
            allowed = ", ".join(sorted(_ENVS[False].filters))
            raise _not_allowed(field, "", f"filter {flt.name!r} (allowed: {allowed})")
    unknown = meta.find_undeclared_variables(tree) - set(ROOTS)
    if unknown:
        name = sorted(unknown)[0]
        raise TemplateError(
            field,
            name,
            message=f"{field}: unknown variable {name!r}; use profile.<property> or "
            "event.<property>",
        )
    variables: set[str] = set()
    for acc in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = acc.node  # type: ignore[attr-defined]
        if isinstance(base, nodes.Name) and base.name in ROOTS:
            if isinstance(acc, nodes.Getattr):
                variables.add(f"{base.name}.{acc.attr}")
            elif isinstance(acc.arg, nodes.Const) and isinstance(acc.arg.value, str):  # type: ignore[attr-defined]
                variables.add(f"{base.name}.{acc.arg.value}")  # type: ignore[attr-defined]
            else:
                raise _not_allowed(field, "", f"computed property names on {base.name}")
    for root in tree.find_all(nodes.Name):
        if root.name in ROOTS and not _is_accessed(tree, root):
            raise TemplateError(
                field,
                root.name,
                message=f"{field}: use {root.name}.<property>, not {root.name} itself",
            )
    return variables


def _required(node: nodes.Node, guarded: bool = False) -> set[str]:
    """Variables read where nothing guards a missing value: not under a ``default`` filter,
    an ``is`` test, or an ``if`` (statement or expression)."""
    out: set[str] = set()
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        base = node.node
        if isinstance(base, nodes.Name) and base.name in ROOTS and not guarded:
            key = node.attr if isinstance(node, nodes.Getattr) else node.arg.value  # type: ignore[attr-defined]
            out.add(f"{base.name}.{key}")
    if isinstance(node, nodes.Filter) and node.name in ("default", "d"):
        if node.node is not None:
            out |= _required(node.node, True)
        for arg in (*node.args, *(kw.value for kw in node.kwargs)):
            out |= _required(arg, guarded)
        return out
    inner = guarded or isinstance(node, nodes.Test | nodes.If | nodes.CondExpr)
    for child in node.iter_child_nodes():
        out |= _required(child, inner)
    return out


def _is_accessed(tree: nodes.Template, name: nodes.Name) -> bool:
    return any(
        acc.node is name  # type: ignore[attr-defined]
        for acc in tree.find_all((nodes.Getattr, nodes.Getitem))
    )
