"""E-mail delivery over SMTP (stdlib :mod:`smtplib`).

One connection is opened and reused for every message of every batch until
:meth:`SmtpProvider.close`; when the server drops it, the provider reconnects and
retries that message once. When the server offers PIPELINING (RFC 2920), ``MAIL``,
``RCPT`` and ``DATA`` go in one write and their replies are read together: two round
trips a message instead of four. Options: ``security='none' | 'starttls' | 'ssl'``, login
with ``username``/``password`` (from the environment or ``engagelab.yaml``, see
:mod:`engagelab.delivery.protocol`), ``ca_file`` / ``verify`` for the TLS check.

SMTP has no idempotency key, so the ``Message-ID`` header is derived from the message
key (:func:`message_id`): a message re-delivered after a crash left it in doubt carries
the same ``Message-ID`` as the first attempt, which mail systems and the recipient's
client use to recognise duplicates. The key is also sent as ``X-Engagelab-Key``.

Progress: when ``progress`` is set (``send`` sets it for each claim unit), it is called
as ``progress(key, "handed")`` just before the final ``DATA`` dot commits the message to
the server and ``progress(key, "sent")`` right after the server accepted it, so a sender
killed mid-unit leaves at most one message in doubt per connection.

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
import socket
import ssl
import threading
from base64 import encodebytes
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from html import escape
from typing import Any

from engagelab.delivery.protocol import DeliveryResult, OutgoingMessage
from engagelab.errors import EngagelabError, ValidationError
from engagelab.validate import check_choice, check_int, check_number

__all__ = ["SmtpError", "SmtpProvider", "message_id"]

_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_DOT = re.compile(rb"(?m)^\.")
_ADDR = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def message_id(key: str, domain: str = "engagelab.local") -> str:
    """The ``Message-ID`` of the message with ``key`` (stable across re-deliveries)."""
    token = key.replace(":", ".").replace("/", ".")
    if not _TOKEN.match(token):
        token = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{token}@{domain}>"


def _header(value: str) -> str:
    """A header value: as is if short printable ASCII, else RFC 2047 encoded and folded."""
    if value.isascii() and value.isprintable() and len(value) <= 900:
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


def _body(subtype: str, body: str, eight_bit: bool) -> list[str]:
    """Headers, a blank line and the encoded body of one text part."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    short = all(len(line.encode("utf-8")) <= 998 for line in text.split("\n"))
    if short and (text.isascii() or eight_bit):
        cte = "7bit" if text.isascii() else "8bit"
        encoded = text.rstrip("\n").replace("\n", "\r\n")
    else:
        cte = "base64"
        encoded = encodebytes(body.encode("utf-8")).decode("ascii").replace("\n", "\r\n").rstrip()
    ctype = f'Content-Type: text/{subtype}; charset="utf-8"'
    return [ctype, f"Content-Transfer-Encoding: {cte}", "", encoded]


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


def _body_then_dot(smtp: smtplib.SMTP, data: bytes, handed: Callable[[], None] | None) -> None:
    """After ``354``: the dot-stuffed body, ``handed()``, then the final dot, which commits
    the message (body and dot in one write without ``handed``); raises
    :class:`smtplib.SMTPDataError` unless the server answers 250."""
    body = _DOT.sub(b"..", data)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    if handed is None:
        smtp.send(body + b".\r\n")  # one write
    else:
        smtp.send(body)
        handed()
        smtp.send(b".\r\n")
    code, resp = smtp.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, resp)


def _stepwise(
    smtp: smtplib.SMTP, sender: str, rcpt: str, data: bytes, options: list[str],
    handed: Callable[[], None] | None,
) -> None:  # fmt: skip
    """One message command by command (``MAIL``, ``RCPT``, ``DATA``, body, dot), raising
    the exceptions :meth:`smtplib.SMTP.sendmail` raises for the same answers."""
    code, resp = smtp.mail(sender, options)
    if code != 250:
        if code == 421:
            smtp.close()
        else:
            smtp.rset()
        raise smtplib.SMTPSenderRefused(code, resp, sender)
    code, resp = smtp.rcpt(rcpt)
    if code not in (250, 251):
        if code == 421:
            smtp.close()
        else:
            smtp.rset()
        raise smtplib.SMTPRecipientsRefused({rcpt: (code, resp)})
    smtp.putcmd("data")
    code, resp = smtp.getreply()
    if code != 354:
        smtp.rset()
        raise smtplib.SMTPDataError(code, resp)
    _body_then_dot(smtp, data, handed)


def _pipelined(
    smtp: smtplib.SMTP, sender: str, rcpt: str, data: bytes, options: list[str],
    handed: Callable[[], None] | None = None,
) -> None:  # fmt: skip
    """One message over a server that offers PIPELINING (RFC 2920): ``MAIL FROM``, ``RCPT
    TO`` and ``DATA`` in one write, their three replies read in order, then the body.
    Raises the exceptions :meth:`smtplib.SMTP.sendmail` raises for the same answers."""
    opts = "".join(" " + o for o in options)
    smtp.send(
        f"MAIL FROM:{smtplib.quoteaddr(sender)}{opts}\r\nRCPT TO:{smtplib.quoteaddr(rcpt)}"
        "\r\nDATA\r\n"
    )
    mail, to, go = smtp.getreply(), smtp.getreply(), smtp.getreply()
    if go[0] == 354 and (mail[0] != 250 or to[0] not in (250, 251)):
        smtp.send(b".\r\n")  # a server that opened DATA anyway: send nothing, then reset
        go = smtp.getreply()
    if mail[0] != 250:
        if mail[0] == 421:
            smtp.close()
        else:
            smtp.rset()
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    if to[0] not in (250, 251):
        smtp.rset()
        raise smtplib.SMTPRecipientsRefused({rcpt: to})
    if go[0] != 354:
        smtp.rset()
        raise smtplib.SMTPDataError(go[0], go[1])
    _body_then_dot(smtp, data, handed)


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
        connections: int | str = 1,
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
        try:
            self.pool_size = check_int("smtp.connections", int(connections), low=1, high=32)
        except ValueError:
            raise ValidationError(
                "smtp.connections", connections, "must be an integer in [1, 32]"
            ) from None
        #: the open sessions, one per slot (a batch is spread over ``pool_size`` of them)
        self._slots: list[smtplib.SMTP | None] = [None] * self.pool_size
        self._lock = threading.Lock()
        #: connections opened so far (reuse keeps this at ``pool_size`` for a healthy server)
        self.connections = 0
        #: called as ``progress(key, "handed" | "sent")`` per message (see the module doc)
        self.progress: Callable[[str, str], None] | None = None

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

    def _connect(self, slot: int = 0) -> smtplib.SMTP:
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
            if s.sock is not None:
                s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.ehlo()
            if self.security == "starttls":
                s.starttls(context=self._context())
                s.ehlo()
            if self.username:
                s.login(self.username, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise SmtpError(
                f"SMTP login to {self.host}:{self.port} as {self.username!r} failed: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SmtpError(
                f"cannot use SMTP server {self.host}:{self.port} ({self.security}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        with self._lock:
            self.connections += 1
        self._slots[slot] = s
        return s

    def _drop(self, slot: int = 0) -> None:
        s, self._slots[slot] = self._slots[slot], None
        if s is not None:
            with contextlib.suppress(OSError):
                s.close()

    def open(self) -> None:
        """Connect (and log in); raises :class:`SmtpError` if the server cannot be used."""
        if self._slots[0] is None:
            self._connect(0)

    def close(self) -> None:
        """Say QUIT and close the connections."""
        for slot, s in enumerate(self._slots):
            if s is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    s.quit()
                self._drop(slot)

    # ------------------------------------------------------------------ messages
    def build(self, m: OutgoingMessage, eight_bit: bool = False) -> bytes:
        """The raw RFC 5322 message (CRLF line ends) of one outgoing message.

        Built directly rather than with :class:`email.message.EmailMessage`, whose header
        registry costs several milliseconds a message. Bodies are UTF-8, sent as they are
        (``7bit``, or ``8bit`` when the server offers 8BITMIME and ``eight_bit``) when no
        line exceeds 998 bytes, else in base64; headers with non-ASCII text are RFC 2047
        encoded.
        """
        p = m.payload
        name, addr = parseaddr(p["from"])
        head = [
            ("From", formataddr((name, addr), charset="utf-8")),
            ("To", m.to),
            ("Subject", _header(p["subject"])),
        ]
        if p.get("reply_to"):
            rname, raddr = parseaddr(p["reply_to"])
            head.append(("Reply-To", formataddr((rname, raddr), charset="utf-8")))
        head += [
            ("Date", formatdate(m.send_at.timestamp(), usegmt=True)),
            ("Message-ID", message_id(m.key, self.domain)),
            ("X-Engagelab-Key", _header(m.key)),
            ("X-Engagelab-Campaign", _header(m.campaign_id)),
            ("MIME-Version", "1.0"),
        ]
        html, text = p.get("html"), p.get("text")
        if html is not None and p.get("preheader"):
            hidden = '<div style="display:none;max-height:0;overflow:hidden">{}</div>'
            html = hidden.format(escape(p["preheader"])) + html
        parts = [("plain", text)] if text is not None else []
        if html is not None:
            parts.append(("html", html))
        lines = [f"{k}: {v}" for k, v in head]
        if len(parts) == 1:
            lines += _body(parts[0][0], parts[0][1], eight_bit)
        else:
            boundary = "=_el." + hashlib.sha256(m.key.encode()).hexdigest()[:24]
            lines += [f'Content-Type: multipart/alternative; boundary="{boundary}"', ""]
            for subtype, body in parts:
                lines += [f"--{boundary}", *_body(subtype, body, eight_bit)]
            lines.append(f"--{boundary}--")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def deliver(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Send each message over the kept-open connection(s); one result per message.

        With ``connections > 1`` the batch is split into that many contiguous parts, each
        sent over its own long-lived connection in a thread.
        """
        n = min(self.pool_size, len(batch))
        if n <= 1:
            return [self._send_one(m, 0) for m in batch]
        size = -(-len(batch) // n)
        parts = [batch[i * size : (i + 1) * size] for i in range(n)]
        with ThreadPoolExecutor(n) as pool:
            done = pool.map(lambda i: [self._send_one(m, i) for m in parts[i]], range(n))
            return [r for part in done for r in part]

    def _send_one(self, m: OutgoingMessage, slot: int = 0) -> DeliveryResult:  # noqa: C901
        mid = message_id(m.key, self.domain)
        if not m.to or not _ADDR.match(parseaddr(m.to)[1] or ""):
            return DeliveryResult(m.key, False, True, error=f"invalid recipient {m.to!r}")
        built: dict[bool, bytes] = {}
        try:
            built[False] = self.build(m)
            sender = self.envelope_from or parseaddr(m.payload["from"])[1]
        except (KeyError, ValueError, TypeError, UnicodeError) as exc:
            return DeliveryResult(m.key, False, True, error=f"bad e-mail payload: {exc}")
        last = "not sent"
        hook = self.progress
        handed = (lambda: hook(m.key, "handed")) if hook is not None else None
        for _attempt in range(2):
            try:
                smtp = self._slots[slot] or self._connect(slot)
                eight = bool(smtp.has_extn("8bitmime"))
                if eight not in built:
                    built[eight] = self.build(m, eight_bit=eight)
                opts = [] if built[eight].isascii() else ["BODY=8BITMIME"]
                if smtp.has_extn("size"):
                    opts.append(f"SIZE={len(built[eight])}")
                if smtp.has_extn("pipelining"):
                    _pipelined(smtp, sender, m.to, built[eight], opts, handed)
                else:
                    _stepwise(smtp, sender, m.to, built[eight], opts, handed)
                if hook is not None:
                    hook(m.key, "sent")
                return DeliveryResult(m.key, True, provider_id=mid)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                return self._refused(m.key, code, text)
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code == 421:  # service closing: reconnect, retry once
                    self._drop(slot)
                    last = f"421 {exc.smtp_error!r}"
                    continue
                return self._refused(m.key, exc.smtp_code, exc.smtp_error)
            except SmtpError as exc:
                self._drop(slot)
                return DeliveryResult(m.key, False, False, error=str(exc))
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop(slot)
                last = f"{type(exc).__name__}: {exc}"
        return DeliveryResult(m.key, False, False, error=f"connection lost: {last}")

    @staticmethod
    def _refused(key: str, code: int, text: bytes | str) -> DeliveryResult:
        return DeliveryResult(key, False, permanent=code >= 500, error=f"{code} {_text(text)}")
