"""Real loopback servers for the channel tests: an aiosmtpd SMTP server and an HTTP API.

Both start on a free 127.0.0.1 port in a background thread of the test process and
record what they received, so tests assert at the server.

``SmtpServer`` (aiosmtpd): optional STARTTLS or implicit TLS with a certificate made by
:func:`make_cert` (``openssl`` CLI), optional AUTH, per-recipient rejections
(``reject={"a@x": "550 5.1.1 no such user"}``) and one-off connection drops
(``drop_once={"b@x"}``).

``HttpServer`` (``http.server``): deduplicates by ``Idempotency-Key`` like a real
provider (a repeated key is answered from the stored response and not processed
again) and injects failures from a per-key script of attempts (or a per-path one,
``paths``): any status code (``"500"``, ``"503"``, ``"400"``, ...), optionally with a
``Retry-After`` (``"503:<seconds>"``, or ``"503:date:<seconds>"`` as an HTTP date;
``"429"`` alone sends ``Retry-After: 1``), ``"slow:<seconds>"`` (process, then answer
late), ``"drop"`` (close the connection without processing), ``"process_drop"``
(process, then close without answering); anything unscripted is processed and answered
200. ``outage`` answers that many next requests 503 whatever their key; ``log`` holds
(arrival time, key, status) of every request and ``max_active`` the most requests
handled at once.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import socket
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (openssl CLI): (cert, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


# --------------------------------------------------------------------------- SMTP
class _Recorder:
    def __init__(self, reject: dict[str, str], drop_once: set[str], pipelining: bool = False):
        self.messages: list[dict[str, Any]] = []
        self.reject = reject
        self.drop_once = set(drop_once)
        self.pipelining = pipelining
        self.lock = threading.Lock()
        #: SMTP commands received, by verb (MAIL, RCPT, DATA, RSET, ...)
        self.commands: Counter[str] = Counter()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads commands line by line, so it can honour it
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RSET(self, server, session, envelope):  # noqa: N802
        self.commands["RSET"] += 1
        return "250 OK"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        self.commands["MAIL"] += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.drop_once:
            self.drop_once.discard(address)
            server.transport.close()
            return "421 closing"
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "message_id": msg["Message-ID"],
                    "key": msg["X-Engagelab-Key"],
                    "subject": msg["Subject"],
                    "session": id(session),
                    "tls": server.transport.get_extra_info("ssl_object") is not None,
                    "authenticated": bool(session.authenticated),
                    "message": msg,
                }
            )
        return "250 Message accepted for delivery"


class SmtpServer:
    """An aiosmtpd server on loopback (use as a context manager)."""

    def __init__(
        self,
        *,
        security: str = "none",
        cert: tuple[Path, Path] | None = None,
        users: dict[str, str] | None = None,
        reject: dict[str, str] | None = None,
        drop_once: set[str] | None = None,
        pipelining: bool = False,
    ):
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.port = free_port()
        self.logins: list[tuple[str, bool]] = []
        self.recorder = _Recorder(reject or {}, drop_once or set(), pipelining)
        kwargs: dict[str, Any] = {}
        if security != "none":
            assert cert is not None
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
            if security == "starttls":
                kwargs.update(tls_context=ctx, require_starttls=True)
            else:
                kwargs.update(ssl_context=ctx, server_hostname="localhost")
        if users is not None:

            def authenticate(server, session, envelope, mechanism, auth_data):
                login = auth_data.login.decode()
                ok = users.get(login) == auth_data.password.decode()
                self.logins.append((login, ok))
                return AuthResult(success=ok, handled=False)

            kwargs.update(
                authenticator=authenticate,
                auth_required=True,
                auth_require_tls=security != "none",
            )
        self.controller = Controller(
            self.recorder, hostname="127.0.0.1", port=self.port, ready_timeout=10, **kwargs
        )

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.recorder.messages

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


# --------------------------------------------------------------------------- HTTP
def _retry_after(action: str, code: int) -> dict[str, str]:
    """The ``Retry-After`` header a scripted failure asks for (none: {})."""
    after = action.split(":", 1)[1] if ":" in action else ("1" if code == 429 else None)
    if after is None:
        return {}
    if after.startswith("date:"):
        after = email.utils.formatdate(time.time() + float(after.split(":", 1)[1]), usegmt=True)
    return {"Retry-After": after}


class HttpServer:
    """A JSON API on loopback that deduplicates by Idempotency-Key and injects failures."""

    def __init__(
        self,
        script: dict[str, list[str]] | None = None,
        *,
        paths: dict[str, list[str]] | None = None,
        outage: int = 0,
    ):
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.paths = {k: list(v) for k, v in (paths or {}).items()}
        self.outage = outage
        self.log: list[tuple[float, str, int]] = []
        self.active = self.max_active = 0
        self.attempts: Counter[str] = Counter()
        self.processed: Counter[str] = Counter()
        self.bodies: dict[str, Any] = {}
        self.times: dict[str, list[float]] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                key = self.headers.get("Idempotency-Key") or ""
                with server.lock:
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    self._answer(key, raw)
                finally:
                    with server.lock:
                        server.active -= 1

            def _answer(self, key: str, raw: bytes) -> None:
                action, code = server._next(key, self.path, dict(self.headers))
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if code != 200:
                    return self._reply(code, {"error": action}, _retry_after(action, code))
                with server.lock:
                    replay = key in server.bodies
                    if not replay:
                        server.processed[key] += 1
                        server.bodies[key] = {
                            "method": self.command,
                            "path": self.path,
                            "json": json.loads(raw) if raw else None,
                        }
                if action.startswith("slow"):
                    time.sleep(float(action.split(":", 1)[1]))
                if action == "process_drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                extra = {"Idempotent-Replayed": "true"} if replay else {}
                self._reply(200, {"id": f"msg-{key}"}, extra)

            def _reply(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = _handle  # noqa: N815

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.port}"

    def _next(self, key: str, path: str, headers: dict[str, str]) -> tuple[str, int]:
        """Record an arriving request; its scripted action and the status it gets."""
        with self.lock:
            self.attempts[key] += 1
            self.times.setdefault(key, []).append(time.monotonic())
            plan = self.script.get(key) or self.paths.get(path) or []
            action = plan.pop(0) if plan else "ok"
            if self.outage > 0:
                self.outage -= 1
                action = "503"
            self.headers[key] = headers
            code = int(action[:3]) if action[:3].isdigit() else 200
            self.log.append((time.monotonic(), key, code))
            return action, code

    def __enter__(self) -> HttpServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
