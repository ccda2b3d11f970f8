"""SMTP provider against a real aiosmtpd server on loopback."""

from __future__ import annotations

import email.policy

import pytest

from engagelab.channels import EmailContent, preview
from engagelab.delivery.registry import provider_for
from engagelab.delivery.smtp import SmtpError, SmtpProvider, message_id

from .conftest import message
from .servers import SmtpServer

CONTENT = EmailContent(
    sender="Shop <news@shop.example>",
    subject="Hello {{ profile.name | default('there') }}",
    html="<p>Hi {{ profile.name | default('there') }}</p>",
    text="Hi {{ profile.name | default('there') }}",
    reply_to="help@shop.example",
)


def mails(n, domain="x.example", start=0):
    out = []
    for i in range(start, start + n):
        profile = {"user_id": f"u{i}", "email": f"u{i}@{domain}", "name": f"<User {i}>"}
        payload = preview(CONTENT, profile)
        out.append(message(f"run1.u{i}.0", profile["email"], payload, user_id=f"u{i}"))
    return out


def test_plain_batch_reuses_one_connection_and_sets_message_id():
    with SmtpServer() as srv:
        p = SmtpProvider("127.0.0.1", srv.port)
        p.open()
        r1 = p.deliver(mails(5))
        r2 = p.deliver(mails(5, start=5))
        p.close()
    assert all(r.ok for r in r1 + r2)
    assert p.connections == 1
    assert len({m["session"] for m in srv.messages}) == 1
    got = {m["key"]: m for m in srv.messages}
    assert sorted(got) == sorted(f"run1.u{i}.0" for i in range(10))
    m0 = got["run1.u0.0"]
    assert m0["message_id"] == message_id("run1.u0.0") == "<run1.u0.0@engagelab.local>"
    assert r1[0].provider_id == m0["message_id"]
    assert m0["rcpt_tos"] == ["u0@x.example"] and m0["mail_from"] == "news@shop.example"
    assert m0["subject"] == "Hello <User 0>"
    msg = m0["message"]
    assert msg["Reply-To"] == "help@shop.example"
    html = msg.get_body(("html",)).get_content()
    assert "&lt;User 0&gt;" in html and "<User 0>" not in html  # autoescaped
    assert msg.get_body(("plain",)).get_content().strip() == "Hi <User 0>"


def test_starttls_with_auth(tls_cert):
    with SmtpServer(security="starttls", cert=tls_cert, users={"mailer": "s3cret"}) as srv:
        p = SmtpProvider(
            "127.0.0.1", srv.port, security="starttls", username="mailer", password="s3cret",
            ca_file=str(tls_cert[0]),
        )  # fmt: skip
        p.open()
        res = p.deliver(mails(3))
        p.close()
    assert [r.ok for r in res] == [True] * 3
    assert all(m["tls"] for m in srv.messages)
    assert all(m["authenticated"] for m in srv.messages)
    assert srv.logins == [("mailer", True)]  # one login: the connection is reused


def test_implicit_ssl(tls_cert):
    with SmtpServer(security="ssl", cert=tls_cert) as srv:
        p = SmtpProvider("127.0.0.1", srv.port, security="ssl", ca_file=str(tls_cert[0]))
        res = p.deliver(mails(2))
        p.close()
    assert all(r.ok for r in res) and all(m["tls"] for m in srv.messages)


def test_untrusted_certificate_is_refused(tls_cert):
    with SmtpServer(security="starttls", cert=tls_cert) as srv:
        p = SmtpProvider("127.0.0.1", srv.port, security="starttls")  # system CAs only
        with pytest.raises(SmtpError, match="CERTIFICATE_VERIFY_FAILED"):
            p.open()
    assert srv.messages == []


def test_wrong_password_is_a_clear_error(tls_cert):
    with SmtpServer(security="starttls", cert=tls_cert, users={"mailer": "s3cret"}) as srv:
        p = SmtpProvider(
            "127.0.0.1", srv.port, security="starttls", username="mailer", password="nope",
            ca_file=str(tls_cert[0]),
        )  # fmt: skip
        with pytest.raises(SmtpError, match="login .* as 'mailer' failed: 535"):
            p.open()


def test_rejected_recipients_permanent_and_transient():
    reject = {
        "u1@x.example": "550 5.1.1 No such user",
        "u3@x.example": "452 4.2.2 Mailbox full, try later",
    }
    with SmtpServer(reject=reject) as srv:
        p = SmtpProvider("127.0.0.1", srv.port)
        res = p.deliver(mails(5))
        p.close()
    by = {r.key: r for r in res}
    assert [r.key for r in res] == [f"run1.u{i}.0" for i in range(5)]
    assert by["run1.u1.0"].ok is False and by["run1.u1.0"].permanent is True
    assert by["run1.u1.0"].error.startswith("550")
    assert by["run1.u3.0"].ok is False and by["run1.u3.0"].permanent is False
    assert by["run1.u3.0"].error.startswith("452")
    assert sorted(m["key"] for m in srv.messages) == ["run1.u0.0", "run1.u2.0", "run1.u4.0"]
    assert p.connections == 1  # a refused recipient does not cost the connection


def test_reconnects_when_the_server_drops_the_connection():
    with SmtpServer(drop_once={"u2@x.example"}) as srv:
        p = SmtpProvider("127.0.0.1", srv.port)
        res = p.deliver(mails(4))
        p.close()
    assert all(r.ok for r in res)
    assert p.connections == 2
    assert sorted(m["key"] for m in srv.messages) == [f"run1.u{i}.0" for i in range(4)]
    assert len({m["session"] for m in srv.messages}) == 2


def test_server_down_gives_transient_results_then_recovers():
    with SmtpServer() as srv:
        port = srv.port
    p = SmtpProvider("127.0.0.1", port, timeout=2)
    res = p.deliver(mails(2))
    assert [(r.ok, r.permanent) for r in res] == [(False, False)] * 2
    assert "cannot use SMTP server" in res[0].error


def test_redelivery_carries_the_same_message_id():
    with SmtpServer() as srv:
        p = SmtpProvider("127.0.0.1", srv.port)
        batch = mails(1)
        p.deliver(batch)
        p.close()
        p2 = SmtpProvider("127.0.0.1", srv.port)  # e.g. a rerun after a crash left it in doubt
        p2.deliver(batch)
        p2.close()
    ids = [m["message_id"] for m in srv.messages]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_bad_recipient_is_permanent_without_a_connection():
    p = SmtpProvider("127.0.0.1", 1)
    res = p.deliver([message("k", "not-an-address", preview(CONTENT, {"email": "x"}))])
    assert res[0].permanent and "invalid recipient" in res[0].error
    assert p.connections == 0


def test_long_keys_are_hashed_into_a_valid_message_id():
    mid = message_id("run/with spaces:" + "x" * 200)
    assert mid.startswith("<") and mid.endswith("@engagelab.local>") and " " not in mid
    assert mid == message_id("run/with spaces:" + "x" * 200)
    assert len(email.policy.default.header_factory("Message-ID", mid)) < 100


def test_provider_for_email_reads_env_and_workspace_config(ws, monkeypatch, tls_cert):
    ws.config["providers"] = {
        "email": {"type": "smtp", "host": "127.0.0.1", "security": "starttls",
                  "username": "mailer", "password_env": "MY_SMTP_PW"}
    }  # fmt: skip
    with SmtpServer(security="starttls", cert=tls_cert, users={"mailer": "pw-from-env"}) as srv:
        monkeypatch.setenv("MY_SMTP_PW", "pw-from-env")
        monkeypatch.setenv("ENGAGELAB_SMTP_CA_FILE", str(tls_cert[0]))
        p = provider_for("email", ws, {"port": srv.port})
        assert isinstance(p, SmtpProvider) and p.username == "mailer"
        p.open()
        assert all(r.ok for r in p.deliver(mails(2)))
        p.close()
    assert len(srv.messages) == 2
    assert "pw-from-env" not in repr(p)


@pytest.mark.parametrize("pipelining", [False, True])
def test_bodies_arrive_intact_in_every_transfer_encoding(pipelining):
    content = EmailContent(
        sender="Grüße Shop <news@shop.example>",
        subject="Grüße, {{ profile.name }} — ein sehr langer Betreff " + "x" * 100,
        text="Hallo {{ profile.name }}\n.a line starting with a dot\n\nÄÖÜ ß €",
        html="<p>" + "long " * 400 + "</p>",  # one 2000-byte line: base64
    )
    profile = {"email": "u@x.example", "name": "Jörg"}
    m = message("k-enc", "u@x.example", preview(content, profile))
    with SmtpServer(pipelining=pipelining) as srv:
        p = SmtpProvider("127.0.0.1", srv.port)
        assert p.deliver([m])[0].ok
        p.close()
    msg = srv.messages[0]["message"]
    assert msg["Subject"] == "Grüße, Jörg — ein sehr langer Betreff " + "x" * 100
    assert msg["From"].addresses[0].display_name == "Grüße Shop"
    plain = msg.get_body(("plain",))
    assert plain["Content-Transfer-Encoding"] == "8bit"
    got = plain.get_content().replace("\r\n", "\n")  # the test server keeps CRLF line ends
    assert got == "Hallo Jörg\n.a line starting with a dot\n\nÄÖÜ ß €"
    html = msg.get_body(("html",))
    assert html["Content-Transfer-Encoding"] == "base64"
    assert html.get_content() == "<p>" + "long " * 400 + "</p>"
    ascii_only = SmtpProvider("127.0.0.1", 1).build(mails(1)[0])
    assert b"Content-Transfer-Encoding: 7bit" in ascii_only and ascii_only.isascii()


def test_parallel_kept_open_connections():
    with SmtpServer(reject={"u3@x.example": "550 no"}) as srv:
        p = SmtpProvider("127.0.0.1", srv.port, connections=3)
        r1 = p.deliver(mails(9))
        r2 = p.deliver(mails(9, start=9))
        p.close()
    assert [r.key for r in r1] == [f"run1.u{i}.0" for i in range(9)]  # results in batch order
    assert [r.ok for r in r1 + r2].count(False) == 1 and not r1[3].ok and r1[3].permanent
    assert p.connections == 3 and len({m["session"] for m in srv.messages}) == 3
    assert sorted(m["key"] for m in srv.messages) == sorted(
        f"run1.u{i}.0" for i in range(18) if i != 3
    )


def _count_writes(monkeypatch):
    import smtplib

    writes = []
    real = smtplib.SMTP.send

    def send(self, s):
        writes.append(s if isinstance(s, bytes) else s.encode())
        return real(self, s)

    monkeypatch.setattr(smtplib.SMTP, "send", send)
    return writes


def test_pipelining_two_writes_a_message_and_the_same_outcomes(monkeypatch):
    """With PIPELINING offered, MAIL/RCPT/DATA go in one write (then the body): two
    writes a message instead of four; refusals are classified as without it."""
    reject = {"u1@x.example": "550 5.1.1 No such user", "u3@x.example": "452 4.2.2 Full"}
    outcomes = {}
    for pipelining in (False, True):
        writes = _count_writes(monkeypatch)
        with SmtpServer(reject=reject, pipelining=pipelining) as srv:
            p = SmtpProvider("127.0.0.1", srv.port)
            p.open()
            n0 = len(writes)
            res = p.deliver(mails(6))
            n_writes = len(writes) - n0
            p.close()
        outcomes[pipelining] = [(r.ok, r.permanent, (r.error or "")[:3]) for r in res]
        assert sorted(m["key"] for m in srv.messages) == [f"run1.u{i}.0" for i in (0, 2, 4, 5)]
        assert srv.recorder.commands["MAIL"] == 6 and srv.recorder.commands["RSET"] == 2
        # 4 accepted + 2 refused at RCPT: pipelined = 2 + 2 writes (+ RSET each), else 4 + 2
        assert n_writes == (4 * 2 + 2 * 2 if pipelining else 4 * 4 + 2 * 3), n_writes
        assert p.connections == 1
    assert outcomes[True] == outcomes[False]
    assert outcomes[True][1] == (False, True, "550") and outcomes[True][3] == (False, False, "452")


def test_pipelining_reconnects_when_the_server_drops_the_connection():
    with SmtpServer(drop_once={"u2@x.example"}, pipelining=True) as srv:
        p = SmtpProvider("127.0.0.1", srv.port)
        res = p.deliver(mails(4))
        p.close()
    assert all(r.ok for r in res) and p.connections == 2
    assert sorted(m["key"] for m in srv.messages) == [f"run1.u{i}.0" for i in range(4)]
