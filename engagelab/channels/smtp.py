"""E-mail delivery over SMTP (stdlib :mod:`smtplib`).

One connection is opened and reused for every message of every batch until
:meth:`SmtpProvider.close`; when the server drops it, the provider reconnects and
retries that message once. Options: ``security='none' | 'starttls' | 'ssl'``, login
with ``username``/``password`` (from the environment or ``engagelab.yaml``, see
:mod:`engagelab.channels.providers`), ``ca_file`` / ``verify`` for the TLS check.

SMTP has no idempotency key, so the ``Message-ID`` header is derived from the message
key (:func:`message_id`): a message re-delivered after a crash left it in doubt carries
the same ``Message-ID`` as the first attempt, which mail systems and the recipient's
client use to recognise duplicates. The key is also sent as ``X-Engagelab-Key``.

Results per message: ``ok`` on 2xx; a 5xx answer (unknown recipient, rejected sender or
content) is ``permanent``; 4xx answers and lost connections are transient (retry later).

Example:
    >>> message_id("run1:u42:0", "mail.example.org")
    '<run1.u42.0@mail.example.org>'
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr
from typing import Any

from engagelab._validate import check_choice, check_int, check_number
from engagelab.channels.providers import DeliveryResult, OutgoingMessage
from engagelab.errors import EngagelabError, ValidationError

__all__ = ["SmtpProvider", "message_id"]

_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_ADDR = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def message_id(key: str, domain: str = "engagelab.local") -> str:
    """The ``Message-ID`` of the message with ``key`` (stable across re-deliveries)."""
    token = key.replace(":", ".").replace("/", ".")
    if not _TOKEN.match(token):
        token = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{token}@{domain}>"


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


class SmtpError(EngagelabError, ConnectionError):
    """The SMTP server cannot be used (connection, TLS or login failed)."""


class SmtpProvider:
    """Delivers e-mail payloads (``from``, ``subject``, ``html``/``text``, ``reply_to``)."""

    name = "smtp"

    def __init__(
        self,
        host: str = "localhost",
        port: int | str | None = None,
        security: str = "none",
        username: str | None = None,
        password: str | None = None,
        timeout: float | str = 30.0,
        ca_file: str | None = None,
        verify: bool | str = True,
        local_hostname: str | None = None,
        message_id_domain: str = "engagelab.local",
        envelope_from: str | None = None,
    ):
        self.security = check_choice("smtp.security", security, ["none", "starttls", "ssl"])
        default_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
        try:
            self.port = int(port) if port is not None else default_port
        except ValueError:
            raise ValidationError("smtp.port", port, "must be an integer") from None
        check_int("smtp.port", self.port, low=1, high=65535)
        self.host = host
        self.username = username
        self._password = password
        self.timeout = float(check_number("smtp.timeout", float(timeout), low=0, low_open=True))
        self.ca_file = ca_file
        self.verify = _bool(verify)
        self.local_hostname = local_hostname
        self.domain = message_id_domain
        self.envelope_from = envelope_from
        if username and password is None:
            raise ValidationError(
                "smtp.password",
                None,
                "is required with a username: set ENGAGELAB_SMTP_PASSWORD or providers: email: "
                "password_env in engagelab.yaml",
            )
        self._smtp: smtplib.SMTP | None = None
        #: connections opened so far (reuse means this stays at 1 for a healthy server)
        self.connections = 0

    def __repr__(self) -> str:
        user = f", username={self.username!r}" if self.username else ""
        return f"SmtpProvider({self.host!r}, {self.port}, security={self.security!r}{user})"

    # ------------------------------------------------------------------ connection
    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self) -> smtplib.SMTP:
        try:
            if self.security == "ssl":
                s: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    timeout=self.timeout,
                    context=self._context(),
                    local_hostname=self.local_hostname,
                )
            else:
                s = smtplib.SMTP(
                    self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname
                )
            s.ehlo()
            if self.security == "starttls":
                s.starttls(context=self._context())
                s.ehlo()
            if self.username:
                s.login(self.username, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise SmtpError(
                f"SMTP login to {self.host}:{self.port} as {self.username!r} failed: "
                f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SmtpError(
                f"cannot use SMTP server {self.host}:{self.port} ({self.security}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self.connections += 1
        self._smtp = s
        return s

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def open(self) -> None:
        """Connect (and log in); raises :class:`SmtpError` if the server cannot be used."""
        if self._smtp is None:
            self._connect()

    def close(self) -> None:
        """Say QUIT and close the connection."""
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._drop()

    # ------------------------------------------------------------------ messages
    def build(self, m: OutgoingMessage) -> EmailMessage:
        """The e-mail of one outgoing message."""
        p = m.payload
        em = EmailMessage(policy=SMTP_POLICY)
        em["From"] = p["from"]
        em["To"] = m.to
        em["Subject"] = p["subject"]
        if p.get("reply_to"):
            em["Reply-To"] = p["reply_to"]
        em["Date"] = formatdate(m.send_at.timestamp(), usegmt=True)
        em["Message-ID"] = message_id(m.key, self.domain)
        em["X-Engagelab-Key"] = m.key
        em["X-Engagelab-Campaign"] = m.campaign_id
        html, text = p.get("html"), p.get("text")
        if html is not None and p.get("preheader"):
            hidden = '<div style="display:none;max-height:0;overflow:hidden">{}</div>'
            from html import escape

            html = hidden.format(escape(p["preheader"])) + html
        if text is not None:
            em.set_content(text)
            if html is not None:
                em.add_alternative(html, subtype="html")
        else:
            em.set_content(html or "", subtype="html")
        return em

    def deliver(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Send each message over the shared connection; one result per message."""
        return [self._send_one(m) for m in batch]

    def _send_one(self, m: OutgoingMessage) -> DeliveryResult:
        mid = message_id(m.key, self.domain)
        if not m.to or not _ADDR.match(parseaddr(m.to)[1] or ""):
            return DeliveryResult(m.key, False, True, error=f"invalid recipient {m.to!r}")
        try:
            em = self.build(m)
        except (KeyError, ValueError, TypeError) as exc:
            return DeliveryResult(m.key, False, True, error=f"bad e-mail payload: {exc}")
        sender = self.envelope_from or parseaddr(m.payload["from"])[1]
        last = "not sent"
        for _attempt in range(2):
            try:
                smtp = self._smtp or self._connect()
                smtp.send_message(em, from_addr=sender, to_addrs=[m.to])
                return DeliveryResult(m.key, True, provider_id=mid)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                return self._refused(m.key, code, text)
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code == 421:  # service closing: reconnect, retry once
                    self._drop()
                    last = f"421 {exc.smtp_error!r}"
                    continue
                return self._refused(m.key, exc.smtp_code, exc.smtp_error)
            except SmtpError as exc:
                self._drop()
                return DeliveryResult(m.key, False, False, error=str(exc))
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                last = f"{type(exc).__name__}: {exc}"
        return DeliveryResult(m.key, False, False, error=f"connection lost: {last}")

    @staticmethod
    def _refused(key: str, code: int, text: bytes | str) -> DeliveryResult:
        msg = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        return DeliveryResult(key, False, permanent=code >= 500, error=f"{code} {msg}")
