"""The machinery shared by every channel's content model: validation helpers, template
fields (flat and nested), ``to_dict`` / ``from_dict``, variable checks and rendering."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from engagelab.channels._templates import (
    Template,
    TemplateError,
    compile_template,
    make_context,
    split_context,
)
from engagelab.errors import ValidationError
from engagelab.frozen import freeze, frozen, replace_spec, thaw
from engagelab.validate import check_int

__all__ = [
    "CREDENTIAL_WORDS",
    "Content",
    "DisplayRules",
    "check_no_credentials",
]

#: Words that make a key look like a secret: a spec or a notebook parameter carrying one is
#: refused. Matched as whole parts of the key (``smtp_password``, ``client-secret``); tokens
#: only as credential tokens (``token``, ``access_token``), not ``push_token``.
CREDENTIAL_WORDS = (
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "credential",
    "credentials",
    "private_key",
    "access_key",
    "token",
)
_CREDENTIAL_RE = re.compile(
    r"(^|[_\-. ])(password|passwd|passphrase|secret|api[_\-]?key|apikey|authorization|"
    r"credentials?|private[_\-]?key|access[_\-]?key)($|[_\-. ])"
    r"|^((access|auth|api|bearer|refresh|id|client|session)[_\-]?)?token$",
    re.I,
)
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_TAG_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


def check_no_credentials(value: Any, field: str = "spec") -> None:
    """Refuse a mapping (at any depth) carrying a credential-like key such as ``password``.

    Provider credentials come from environment variables or the ``providers:`` section of
    the workspace's ``engagelab.yaml``, never from campaign specs or notebook parameters
    (those are stored and printed in clear).

    >>> check_no_credentials({"content": {"smtp_password": "hunter2"}}, "campaign")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: campaign.content.smtp_password == '***', credentials are not allowed in specs or parameters; set them in environment variables or in the providers: section of engagelab.yaml
    """
    if isinstance(value, Mapping):
        for k, v in value.items():
            path = f"{field}.{k}"
            if isinstance(k, str) and _CREDENTIAL_RE.search(k):
                raise ValidationError(
                    path,
                    "***",
                    "credentials are not allowed in specs or parameters; set them in "
                    "environment variables or in the providers: section of engagelab.yaml",
                )
            check_no_credentials(v, path)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_no_credentials(v, f"{field}[{i}]")


# ----------------------------------------------------------------------- field checks
def text(field: str, value: Any, *, max_len: int, required: bool = True) -> str | None:
    """A string field: non-empty if required, at most ``max_len`` characters of source."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(field, value, "must be a non-empty string")
    if len(value) > max_len:
        raise ValidationError(
            field, value[:40] + "...", f"must be at most {max_len} characters (has {len(value)})"
        )
    return value


def url(field: str, value: Any, *, web: bool = True, required: bool = True) -> str | None:
    """A URL (templates allowed after the scheme): http(s) if ``web``, else any scheme."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, value, "must be a URL")
    if web and not value.lower().startswith(("http://", "https://")):
        raise ValidationError(field, value, "must be an http:// or https:// URL")
    if not web and not _SCHEME_RE.match(value):
        raise ValidationError(field, value, "must be a URL with a scheme, e.g. myapp://home")
    bare = _TAG_RE.sub("", value)
    if len(value) > 2048 or any(c in bare for c in " \n\r\t"):
        raise ValidationError(field, value, "must be a URL without spaces, at most 2048 chars")
    return value


def email_address(field: str, value: Any, *, required: bool = True) -> str | None:
    """An address, ``a@b.org`` or ``Name <a@b.org>``."""
    from email.utils import parseaddr

    if value is None and not required:
        return None
    if not isinstance(value, str) or "\n" in value or "\r" in value:
        raise ValidationError(field, value, "must be an e-mail address like 'News <news@x.org>'")
    _, addr = parseaddr(value)
    if not _EMAIL_RE.match(addr or ""):
        raise ValidationError(field, value, "must be an e-mail address like 'News <news@x.org>'")
    return value


def ttl(field: str, value: Any) -> int | None:
    """A time to live in seconds: 1 s to 366 days, or None."""
    if value is None:
        return None
    return check_int(field, value, low=1, high=366 * 86400)


# ----------------------------------------------------------------------- display rules
@frozen
@dataclasses.dataclass(frozen=True)
class DisplayRules:
    """When a pulled message (in-app, inbox, native display, web pop-up) is shown.

    Attributes:
        max_impressions: show at most this many times (None: until it expires).
        trigger_event: show only when the app/site reports this event (None: any time).
        pages: for web channels, URL patterns (``fnmatch`` globs) where it may show.
        delay_seconds: wait this long after the trigger before showing.
    """

    max_impressions: int | None = 1
    trigger_event: str | None = None
    pages: tuple[str, ...] = ()
    delay_seconds: int = 0

    def __post_init__(self) -> None:
        if self.max_impressions is not None:
            check_int("display.max_impressions", self.max_impressions, low=1, high=1000)
        if self.trigger_event is not None:
            text("display.trigger_event", self.trigger_event, max_len=200)
        if isinstance(self.pages, str) or not isinstance(self.pages, list | tuple):
            raise ValidationError("display.pages", self.pages, "must be a list of URL patterns")
        for i, p in enumerate(self.pages):
            text(f"display.pages[{i}]", p, max_len=2048)
        object.__setattr__(self, "pages", tuple(self.pages))
        check_int("display.delay_seconds", self.delay_seconds, low=0, high=86400)

    def replace(self, **changes: Any) -> DisplayRules:
        """A copy with some fields changed (display rules are frozen), validated again."""
        return replace_spec(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {
            "max_impressions": self.max_impressions,
            "trigger_event": self.trigger_event,
            "pages": list(self.pages),
            "delay_seconds": self.delay_seconds,
        }

    @classmethod
    def from_dict(cls, data: Any, field: str = "display") -> DisplayRules:
        """Build from a dict; unknown keys are an error naming the key."""
        if isinstance(data, DisplayRules):
            return data
        if not isinstance(data, Mapping):
            raise ValidationError(field, data, "must be a mapping of display rules")
        names = [f.name for f in dataclasses.fields(cls)]
        for k in data:
            if k not in names:
                raise ValidationError(
                    f"{field}.{k}", data[k], f"is not a display rule; use {names}"
                )
        return cls(**data)


# ----------------------------------------------------------------------- content base
@frozen
@dataclasses.dataclass(frozen=True)
class Content:
    """Base of the per-channel content models (frozen, validated at construction)."""

    channel: ClassVar[str] = ""
    #: string fields that are templates
    TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: fields rendered with HTML autoescaping
    HTML_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: JSON-valued fields whose string leaves are templates
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: dict key -> attribute name, for keys that are Python keywords (``from``)
    ALIASES: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        self.validate()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping | list | tuple | set) and not isinstance(
                value, DisplayRules
            ):
                object.__setattr__(self, f.name, freeze(value))
        tpls: list[tuple[tuple[Any, ...], Template]] = []
        for name in self.TEMPLATE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                tpls.append(
                    (
                        (name,),
                        compile_template(
                            self.field(name), value, autoescape=name in self.HTML_FIELDS
                        ),
                    )
                )
        for name in self.JSON_FIELDS:
            _json_templates(self.field(name), getattr(self, name), (name,), tpls)
        object.__setattr__(self, "_tpls", tuple(tpls))
        object.__setattr__(self, "_static", None)
        object.__setattr__(self, "_base", self.to_dict())
        object.__setattr__(self, "_nested", {p[0] for p, _ in tpls if len(p) > 1})

    # -- overridden per channel
    def validate(self) -> None:
        """Check the fields; raise ValidationError naming the first bad one."""

    def finish(self, rendered: dict[str, Any]) -> dict[str, Any]:
        """Checks and additions after rendering (e.g. SMS segments)."""
        return rendered

    # -- helpers
    def field(self, name: str) -> str:
        """The qualified field name used in error messages, e.g. ``'email.subject'``."""
        return f"{self.channel}.{name}"

    def replace(self, **changes: Any) -> Content:
        """A copy with some fields changed (content is frozen), validated again."""
        return replace_spec(self, changes)

    def __reduce__(self) -> tuple[Any, ...]:
        # compiled templates do not pickle: a content travels as its dict
        return (type(self).from_dict, (self.to_dict(),))

    # -- serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (round-trips through :meth:`from_dict`)."""
        back = {v: k for k, v in self.ALIASES.items()}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            v = v.to_dict() if isinstance(v, DisplayRules) else thaw(v)
            out[back.get(f.name, f.name)] = v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Content:
        """Build from a dict; unknown or credential-like keys are errors naming the key."""
        if not isinstance(data, Mapping):
            raise ValidationError(cls.channel, data, "must be a mapping of content fields")
        check_no_credentials(data, cls.channel)
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            attr = cls.ALIASES.get(key, key)
            if attr not in names:
                allowed = sorted({{v: k for k, v in cls.ALIASES.items()}.get(n, n) for n in names})
                raise ValidationError(
                    f"{cls.channel}.{key}", value, f"is not a {cls.channel} field; use {allowed}"
                )
            if names[attr].type in ("DisplayRules", DisplayRules):
                value = DisplayRules.from_dict(value, f"{cls.channel}.{key}")
            elif isinstance(value, list) and attr not in cls.JSON_FIELDS:
                value = tuple(value)
            kwargs[attr] = value
        missing = [
            n
            for n, f in names.items()
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and n not in kwargs
        ]
        if missing:
            key = {v: k for k, v in cls.ALIASES.items()}.get(missing[0], missing[0])
            raise ValidationError(f"{cls.channel}.{key}", None, "is required")
        return cls(**kwargs)

    # -- templates
    def template_variables(self) -> set[str]:
        """Variables the templates read, e.g. ``{'profile.first_name', 'event.product'}``."""
        out: set[str] = set()
        for _, t in self._tpls:  # type: ignore[attr-defined]
            out |= t.variables
        return out

    def required_variables(self) -> set[str]:
        """Variables read without a default (nor under an ``if`` / ``is`` test): a user who
        lacks one cannot be rendered for."""
        out: set[str] = set()
        for _, t in self._tpls:  # type: ignore[attr-defined]
            out |= t.required
        return out

    def template_fields(self) -> dict[str, frozenset[str]]:
        """Variables read per template field, e.g. ``{'push.title': {'event.product'}}``."""
        out: dict[str, frozenset[str]] = {}
        for _, t in self._tpls:  # type: ignore[attr-defined]
            out[t.field] = out.get(t.field, frozenset()) | t.variables
        return out

    def validate_variables(self, known: Iterable[str]) -> None:
        """Reject variables that are not in ``known``.

        ``known`` holds qualified names (``'profile.city'``, ``'event.amount'``); a bare name
        means a profile property. See :func:`engagelab.channels.known_variables`.
        """
        k = {v if "." in v else f"profile.{v}" for v in known}
        for path, t in self._tpls:  # type: ignore[attr-defined]
            for var in sorted(t.variables - k):
                root = var.split(".", 1)[0]
                what = "profile column" if root == "profile" else "property of the trigger event"
                raise TemplateError(
                    t.field,
                    var,
                    message=f"{t.field}: unknown variable {var!r}: not a {what} of this workspace",
                )
            del path

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The message for one user: every template rendered (sandboxed, strict).

        ``context`` is ``{"profile": {...}, "event": {...}}`` (event optional), or a flat
        profile record (a dict of profile columns).

        Content without variables renders the same for everyone: it is rendered once and
        the same dict is returned to every caller (do not mutate it).
        """
        static = self._static  # type: ignore[attr-defined]
        if static is not None:
            return static  # type: ignore[no-any-return]
        ctx = make_context(*split_context(context))
        out = dict(self._base)  # type: ignore[attr-defined]
        back = {v: k for k, v in self.ALIASES.items()}
        for name in self._nested:  # type: ignore[attr-defined]
            key = back.get(name, name)
            out[key] = _copy_json(out[key])
        for path, t in self._tpls:  # type: ignore[attr-defined]
            _set_path(out, path, t.render(ctx), self.ALIASES)
        out = self.finish(out)
        if not self.template_variables():
            object.__setattr__(self, "_static", out)
        return out


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def _json_templates(
    field: str, value: Any, path: tuple[Any, ...], acc: list[tuple[tuple[Any, ...], Template]]
) -> None:
    if isinstance(value, str):
        acc.append((path, compile_template(field, value)))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(field, k, "keys must be strings")
            _json_templates(f"{field}.{k}", v, (*path, k), acc)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _json_templates(f"{field}[{i}]", v, (*path, i), acc)
    elif value is not None and not isinstance(value, bool | int | float):
        raise ValidationError(field, value, "must be JSON (objects, lists, strings, numbers)")


def _set_path(
    out: dict[str, Any], path: tuple[Any, ...], value: str, aliases: dict[str, str]
) -> None:
    back = {v: k for k, v in aliases.items()}
    target: Any = out
    keys = (back.get(path[0], path[0]), *path[1:])
    for k in keys[:-1]:
        target = target[k]
    target[keys[-1]] = value
