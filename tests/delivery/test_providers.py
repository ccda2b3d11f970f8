"""Provider selection and configuration: defaults, environment, engagelab.yaml, no secrets in specs."""

from __future__ import annotations

import pytest
import yaml

from engagelab import Workspace
from engagelab.channels import check_no_credentials
from engagelab.delivery.http import HttpProvider
from engagelab.delivery.inbox import InboxProvider
from engagelab.delivery.protocol import Provider
from engagelab.delivery.registry import provider_config, provider_for
from engagelab.delivery.remarketing import RemarketingProvider
from engagelab.delivery.smtp import SmtpProvider
from engagelab.errors import ValidationError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.startswith("ENGAGELAB_") and k not in ("ENGAGELAB_TEST_PG_URL",):
            monkeypatch.delenv(k)


def test_defaults_by_delivery_mode(ws):
    from engagelab.delivery.outbox import OutboxProvider

    email = provider_for("email", ws, {"run_key": "r1"})
    assert isinstance(email, OutboxProvider) and email.path.name.startswith("r1")
    for ch in ("in_app", "app_inbox", "native_display", "web_popup", "web_exit_intent"):
        assert isinstance(provider_for(ch, ws), InboxProvider)
    for ch in ("facebook_audience", "google_ads"):
        assert isinstance(provider_for(ch, ws), RemarketingProvider)
    for p in (email, provider_for("in_app", ws), provider_for("google_ads", ws)):
        assert isinstance(p, Provider)


def test_workspace_config_file_and_password_env(tmp_path, monkeypatch):
    ws = Workspace.create(tmp_path / "w")
    cfg_path = ws.path / "engagelab.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["providers"] = {
        "email": {"type": "smtp", "host": "mail.example.org", "port": 2525, "security": "starttls",
                  "username": "mailer", "password_env": "MAILER_PW"},
        "sms": {"type": "http", "url": "https://sms.example/send", "token": "from-the-file"},
    }  # fmt: skip
    cfg_path.write_text(yaml.safe_dump(cfg))
    ws.close()
    ws = Workspace.open(tmp_path / "w")
    with pytest.raises(
        ValidationError,
        match=r"^providers.email.password_env == 'MAILER_PW', names an environment variable that is not set",
    ):
        provider_for("email", ws)
    monkeypatch.setenv("MAILER_PW", "pw")
    smtp = provider_for("email", ws)
    assert isinstance(smtp, SmtpProvider)
    assert (smtp.host, smtp.port, smtp.security, smtp.username) == (
        "mail.example.org",
        2525,
        "starttls",
        "mailer",
    )
    assert smtp._password == "pw" and "pw" not in repr(smtp)
    sms = provider_for("sms", ws)
    assert isinstance(sms, HttpProvider) and sms._headers["Authorization"] == "Bearer from-the-file"
    # the environment overrides the file; ENGAGELAB_<CHANNEL>_* overrides ENGAGELAB_<TYPE>_*
    monkeypatch.setenv("ENGAGELAB_SMTP_HOST", "smtp-from-env")
    monkeypatch.setenv("ENGAGELAB_SMTP_PORT", "465")
    monkeypatch.setenv("ENGAGELAB_EMAIL_PORT", "1025")
    smtp = provider_for("email", ws)
    assert (smtp.host, smtp.port) == ("smtp-from-env", 1025)
    ws.close()


def test_environment_alone_configures_a_channel(ws, monkeypatch):
    monkeypatch.setenv("ENGAGELAB_EMAIL_PROVIDER", "smtp")
    monkeypatch.setenv("ENGAGELAB_SMTP_HOST", "relay")
    monkeypatch.setenv("ENGAGELAB_SMTP_USERNAME", "u")
    monkeypatch.setenv("ENGAGELAB_SMTP_PASSWORD", "p")
    p = provider_for("email", ws)
    assert isinstance(p, SmtpProvider) and (p.host, p.port, p.username) == ("relay", 25, "u")
    monkeypatch.setenv("ENGAGELAB_WEBHOOK_PROVIDER", "http")
    monkeypatch.setenv("ENGAGELAB_HTTP_TIMEOUT", "2.5")
    w = provider_for("webhook", ws)
    assert isinstance(w, HttpProvider) and w.timeout == 2.5


def test_secrets_are_refused_from_specs_and_parameters(ws):
    for cfg in ({"password": "x"}, {"smtp": {"Password": "x"}}, {"api_key": "k"}, {"token": "t"}):
        with pytest.raises(
            ValidationError, match=r"credentials are not allowed in specs or parameters"
        ):
            provider_for("email", ws, cfg)
    spec = {"id": "c1", "channel": "email", "provider": {"type": "smtp", "password": "hunter2"}}
    with pytest.raises(ValidationError, match=r"^campaign.provider.password == '\*\*\*'") as info:
        check_no_credentials(spec, "campaign")
    assert "hunter2" not in str(info.value)
    check_no_credentials(
        {"content": {"subject": "Your password reset"}}, "campaign"
    )  # values are fine


def test_bad_provider_settings(ws, monkeypatch):
    with pytest.raises(ValidationError, match=r"^providers.email.type == 'pigeon'"):
        provider_for("email", ws, {"type": "pigeon"})
    with pytest.raises(ValidationError, match=r"^channel == 'fax'"):
        provider_config("fax", ws)
    with pytest.raises(ValidationError, match=r"^smtp.security == 'tls'"):
        provider_for("email", ws, {"type": "smtp", "security": "tls"})
    with pytest.raises(
        ValidationError, match=r"^smtp.password == None, is required with a username"
    ):
        provider_for("email", ws, {"type": "smtp", "username": "u"})
    with pytest.raises(
        ValidationError, match=r"providers.push.type == 'export', is only for remarketing"
    ):
        provider_for("push", ws, {"type": "export"})


def test_credential_detection_is_by_key_part_not_substring():
    for key in ("password", "smtp_password", "client-secret", "api_key", "apiKey", "x-api-key",
                "Authorization", "token", "access_token", "credentials", "private_key"):  # fmt: skip
        with pytest.raises(ValidationError, match="credentials are not allowed"):
            check_no_credentials({key: "v"})
    for key in (
        "push_token",
        "device_token",
        "webpush_subscription",
        "passwordless_login",
        "tokens",
    ):
        check_no_credentials({key: "v", "nested": [{key: 1}]})
