"""Content models of the channels: what a message says and how it is shown.

Each model is a frozen dataclass validated when built; string fields listed in
``TEMPLATE_FIELDS`` (and string leaves of ``JSON_FIELDS``) are sandboxed Jinja2
templates over ``profile.<property>`` and ``event.<property>``.

Example:
    >>> c = PushContent(title="Hi {{ profile.name | default('there') }}", body="Your cart misses you")
    >>> c.render({"profile": {"name": "Ada"}})["title"]
    'Hi Ada'
    >>> PushContent(title="", body="x")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: push.title == '', must be a non-empty string
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, ClassVar

from engagelab.channels._base import (
    Content,
    DisplayRules,
    check_no_credentials,
    email_address,
    text,
    ttl,
    url,
)
from engagelab.channels._templates import TemplateError
from engagelab.channels.sms import sms_info
from engagelab.errors import ValidationError
from engagelab.frozen import frozen
from engagelab.validate import check_choice, check_int

__all__ = [
    "AppInboxContent",
    "EmailContent",
    "FacebookAudienceContent",
    "GoogleAdsContent",
    "InAppContent",
    "NativeDisplayContent",
    "PushContent",
    "SmsContent",
    "WebExitIntentContent",
    "WebPopupContent",
    "WebPushContent",
    "WebhookContent",
]

DAY = 86400
#: APNs refuses notification payloads above 4 KB (FCM's limit is the same).
PUSH_PAYLOAD_BYTES = 4096
_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}


def _flat_strings(field: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValidationError(field, value, "must be a mapping of string keys to string values")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValidationError(f"{field}.{k}", v, "must be a string")
    return value


# --------------------------------------------------------------------------- mobile push
@frozen
@dataclasses.dataclass(frozen=True)
class PushContent(Content):
    """A mobile push notification (APNs / FCM)."""

    channel: ClassVar[str] = "push"
    TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ("title", "body", "deep_link")
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("data",)

    title: str
    body: str
    deep_link: str | None = None
    image_url: str | None = None
    data: dict[str, str] = dataclasses.field(default_factory=dict)
    sound: str | None = None
    priority: str = "normal"
    ttl_seconds: int | None = None

    def validate(self) -> None:
        text(self.field("title"), self.title, max_len=100)
        text(self.field("body"), self.body, max_len=1000)
        url(self.field("deep_link"), self.deep_link, web=False, required=False)
        url(self.field("image_url"), self.image_url, required=False)
        _flat_strings(self.field("data"), self.data)
        text(self.field("sound"), self.sound, max_len=100, required=False)
        check_choice(self.field("priority"), self.priority, ["normal", "high"])
        ttl(self.field("ttl_seconds"), self.ttl_seconds)

    def finish(self, rendered: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(rendered, ensure_ascii=False).encode())
        if size > PUSH_PAYLOAD_BYTES:
            raise TemplateError(
                self.field("body"), size, f"renders to a {size}-byte payload, over 4096 bytes"
            )
        return rendered


@frozen
@dataclasses.dataclass(frozen=True)
class WebPushContent(Content):
    """A browser push notification (Web Push / VAPID)."""

    channel: ClassVar[str] = "web_push"
    TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ("title", "body", "url")

    title: str
    body: str
    url: str
    icon_url: str | None = None
    image_url: str | None = None
    require_interaction: bool = False
    ttl_seconds: int | None = None

    def validate(self) -> None:
        text(self.field("title"), self.title, max_len=100)
        text(self.field("body"), self.body, max_len=500)
        url(self.field("url"), self.url)
        url(self.field("icon_url"), self.icon_url, required=False)
        url(self.field("image_url"), self.image_url, required=False)
        if not isinstance(self.require_interaction, bool):
            raise ValidationError(
                self.field("require_interaction"), self.require_interaction, "must be true or false"
            )
        ttl(self.field("ttl_seconds"), self.ttl_seconds)


# --------------------------------------------------------------------------- e-mail, SMS
@frozen
@dataclasses.dataclass(frozen=True)
class EmailContent(Content):
    """An e-mail: ``from`` (dict key; attribute ``sender``), subject, HTML and/or text body.

    The HTML body is rendered with autoescaping: a profile value like ``<script>`` comes
    out as ``&lt;script&gt;``.
    """

    channel: ClassVar[str] = "email"
    TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ("subject", "preheader", "html", "text")
    HTML_FIELDS: ClassVar[tuple[str, ...]] = ("html",)
    ALIASES: ClassVar[dict[str, str]] = {"from": "sender"}

    sender: str
    subject: str
    html: str | None = None
    text: str | None = None
    reply_to: str | None = None
    preheader: str | None = None

    def validate(self) -> None:
        email_address(self.field("from"), self.sender)
        text(self.field("subject"), self.subject, max_len=998)
        if "\n" in self.subject or "\r" in self.subject:
            raise ValidationError(self.field("subject"), self.subject, "must be one line")
        text(self.field("html"), self.html, max_len=500_000, required=False)
        text(self.field("text"), self.text, max_len=500_000, required=False)
        if self.html is None and self.text is None:
            raise ValidationError(
                self.field("html"), None, "or email.text is required (at least one body)"
            )
        email_address(self.field("reply_to"), self.reply_to, required=False)
        text(self.field("preheader"), self.preheader, max_len=200, required=False)

    def finish(self, rendered: dict[str, Any]) -> dict[str, Any]:
        subject = rendered["subject"]
        if "\n" in subject or "\r" in subject:
            raise TemplateError(self.field("subject"), subject, "must render to one line")
        return rendered


@frozen
@dataclasses.dataclass(frozen=True)
class SmsContent(Content):
    """An SMS: the rendered text is counted in GSM-7 or UCS-2 segments (see :mod:`.sms`)."""

    channel: ClassVar[str] = "sms"
    TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ("text",)

    text: str
    sender_id: str | None = None
    max_segments: int = 10

    def validate(self) -> None:
        text(self.field("text"), self.text, max_len=10_000)
        check_int(self.field("max_segments"), self.max_segments, low=1, high=255)
        if self.sender_id is not None and not re.fullmatch(
            r"\+?[0-9]{3,15}|[A-Za-z0-9 ]{1,11}", str(self.sender_id)
        ):
            raise ValidationError(
                self.field("sender_id"),
                self.sender_id,
                "must be a phone number or at most 11 letters/digits",
            )
        if "{" not in self.text:
            self._check_segments(self.text)

    def _check_segments(self, body: str) -> dict[str, Any]:
        info = sms_info(body)
        if info.segments > self.max_segments:
            raise ValidationError(
                self.field("text"),
                body[:40] + "...",
                f"is {info.segments} {info.encoding} segments, more than max_segments "
                f"{self.max_segments}",
            )
        return {"encoding": info.encoding, "units": info.units, "segments": info.segments}

    def finish(self, rendered: dict[str, Any]) -> dict[str, Any]:
        try:
            rendered.update(self._check_segments(rendered["text"]))
        except ValidationError as exc:
            raise TemplateError(exc.field, exc.value, exc.allowed) from None
        return rendered


# --------------------------------------------------------------------------- webhook
@frozen
@dataclasses.dataclass(frozen=True)
class WebhookContent(Content):
    """A call to an HTTP endpoint with a JSON body template.

    Credentials never live here: headers like ``Authorization`` are refused; configure
    them for the provider in ``engagelab.yaml`` (``providers: webhook: headers_env``).
    """

    channel: ClassVar[str] = "webhook"
    TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ("url",)
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("headers", "body")

    url: str
    method: str = "POST"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: Any = None

    def validate(self) -> None:
        url(self.field("url"), self.url)
        check_choice(self.field("method"), self.method, ["POST", "PUT", "PATCH", "GET", "DELETE"])
        _flat_strings(self.field("headers"), self.headers)
        for name in self.headers:
            if not _HEADER_RE.match(name):
                raise ValidationError(
                    f"{self.field('headers')}.{name}", name, "is not a valid header name"
                )
            if name.lower() in _CREDENTIAL_HEADERS:
                raise ValidationError(
                    f"{self.field('headers')}.{name}",
                    "***",
                    "credentials are not allowed in specs; configure them for the provider "
                    "in environment variables or engagelab.yaml providers:",
                )
        check_no_credentials(self.body, self.field("body"))
        if self.method in ("GET", "DELETE") and self.body is not None:
            raise ValidationError(self.field("body"), self.body, f"must be empty for {self.method}")

    def finish(self, rendered: dict[str, Any]) -> dict[str, Any]:
        u = rendered["url"]
        if not u.lower().startswith(("http://", "https://")) or any(c in u for c in " \n\r\t"):
            raise TemplateError(
                self.field("url"),
                u,
                "must render to an http(s) URL without spaces (use | urlencode)",
            )
        return rendered


# --------------------------------------------------------------------------- pulled
@frozen
@dataclasses.dataclass(frozen=True)
class _Pulled(Content):
    """Messages the app or site fetches (see :func:`engagelab.delivery.inbox.inbox`)."""

    TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ("title", "body", "button_text", "button_url")

    title: str
    body: str
    button_text: str | None = None
    button_url: str | None = None
    image_url: str | None = None
    display: DisplayRules = dataclasses.field(default_factory=DisplayRules)
    ttl_seconds: int | None = 7 * DAY

    def validate(self) -> None:
        text(self.field("title"), self.title, max_len=200)
        text(self.field("body"), self.body, max_len=2000)
        text(self.field("button_text"), self.button_text, max_len=50, required=False)
        url(self.field("button_url"), self.button_url, web=False, required=False)
        url(self.field("image_url"), self.image_url, required=False)
        if isinstance(self.display, dict):
            object.__setattr__(
                self, "display", DisplayRules.from_dict(self.display, self.field("display"))
            )
        if not isinstance(self.display, DisplayRules):
            raise ValidationError(self.field("display"), self.display, "must be DisplayRules")
        ttl(self.field("ttl_seconds"), self.ttl_seconds)


@frozen
@dataclasses.dataclass(frozen=True)
class InAppContent(_Pulled):
    """An in-app message shown inside the mobile app."""

    channel: ClassVar[str] = "in_app"
    layout: str = "interstitial"

    def validate(self) -> None:
        super().validate()
        check_choice(
            self.field("layout"),
            self.layout,
            ["interstitial", "half_interstitial", "cover", "header", "footer", "alert"],
        )


@frozen
@dataclasses.dataclass(frozen=True)
class AppInboxContent(_Pulled):
    """A message kept in the app's inbox until it expires (30 days by default)."""

    channel: ClassVar[str] = "app_inbox"
    display: DisplayRules = dataclasses.field(default_factory=lambda: DisplayRules(None))
    ttl_seconds: int | None = 30 * DAY
    tags: tuple[str, ...] = ()

    def validate(self) -> None:
        super().validate()
        if isinstance(self.tags, list):
            object.__setattr__(self, "tags", tuple(self.tags))
        if not isinstance(self.tags, tuple):
            raise ValidationError(self.field("tags"), self.tags, "must be a list of strings")
        for i, t in enumerate(self.tags):
            text(f"{self.field('tags')}[{i}]", t, max_len=50)


@frozen
@dataclasses.dataclass(frozen=True)
class NativeDisplayContent(_Pulled):
    """Content the app renders in its own views (banner, carousel or custom key-values)."""

    channel: ClassVar[str] = "native_display"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("kv",)
    kind: str = "banner"
    kv: dict[str, str] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        check_choice(self.field("kind"), self.kind, ["banner", "carousel", "custom_kv"])
        _flat_strings(self.field("kv"), self.kv)


@frozen
@dataclasses.dataclass(frozen=True)
class WebPopupContent(_Pulled):
    """A pop-up on the website (``display.pages`` limits where it shows)."""

    channel: ClassVar[str] = "web_popup"
    position: str = "center"

    def validate(self) -> None:
        super().validate()
        check_choice(self.field("position"), self.position, ["center", "top", "bottom", "corner"])


@frozen
@dataclasses.dataclass(frozen=True)
class WebExitIntentContent(WebPopupContent):
    """A pop-up shown when the visitor is about to leave the page."""

    channel: ClassVar[str] = "web_exit_intent"


# --------------------------------------------------------------------------- remarketing
@frozen
@dataclasses.dataclass(frozen=True)
class _Audience(Content):
    """A remarketing audience: rendered as SHA-256 hashes of normalised identifiers."""

    audience_name: str
    identifiers: tuple[str, ...] = ("email", "phone")

    def validate(self) -> None:
        text(self.field("audience_name"), self.audience_name, max_len=200)
        if isinstance(self.identifiers, list):
            object.__setattr__(self, "identifiers", tuple(self.identifiers))
        if not isinstance(self.identifiers, tuple) or not self.identifiers:
            raise ValidationError(
                self.field("identifiers"), self.identifiers, "must list 'email' and/or 'phone'"
            )
        for i, ident in enumerate(self.identifiers):
            check_choice(f"{self.field('identifiers')}[{i}]", ident, ["email", "phone"])

    def template_variables(self) -> set[str]:
        return {f"profile.{i}" for i in self.identifiers}

    def validate_variables(self, known: Any) -> None:
        return None  # email and phone are core profile columns

    def render(self, context: Any) -> dict[str, Any]:
        from engagelab.channels._templates import split_context
        from engagelab.channels.identifiers import hash_identifiers

        profile, _ = split_context(context)
        hashed = hash_identifiers(self.channel, profile, self.identifiers)
        return {"audience_name": self.audience_name, **hashed}


@frozen
@dataclasses.dataclass(frozen=True)
class FacebookAudienceContent(_Audience):
    """A Facebook (Meta) Custom Audience upload."""

    channel: ClassVar[str] = "facebook_audience"


@frozen
@dataclasses.dataclass(frozen=True)
class GoogleAdsContent(_Audience):
    """A Google Ads Customer Match list upload."""

    channel: ClassVar[str] = "google_ads"
