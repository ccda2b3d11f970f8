"""Provider selection: which provider serves a channel, with which options.

Which provider serves a channel, and its options, come from (highest first):

1. ``config`` passed to :func:`provider_for` — non-secret options only (host, port,
   timeouts, ...); a credential-like key is refused;
2. environment variables ``ENGAGELAB_<CHANNEL>_<OPTION>`` then ``ENGAGELAB_<TYPE>_<OPTION>``,
   e.g. ``ENGAGELAB_EMAIL_PROVIDER=smtp``, ``ENGAGELAB_SMTP_HOST``,
   ``ENGAGELAB_SMTP_PASSWORD``, ``ENGAGELAB_HTTP_TOKEN``;
3. the ``providers:`` section of the workspace's ``engagelab.yaml``::

       providers:
         email: {type: smtp, host: smtp.example.org, port: 587, security: starttls,
                 username: mailer, password_env: SMTP_PASSWORD}
         push:  {type: http, url: https://push.example.org/send, token_env: PUSH_TOKEN}
         webhook: {type: http, token_env: HOOK_TOKEN, allowed_hosts: [hooks.example.org]}

   where ``<option>_env: NAME`` reads the option from environment variable ``NAME``. An
   http provider's token goes only to ``allowed_hosts`` (default: the host of ``url``;
   ``ENGAGELAB_WEBHOOK_ALLOWED_HOSTS=a.example,b.example`` from the environment).

The default type is ``outbox`` for channels we send, ``inbox`` for pulled channels and
``export`` for the remarketing audiences. Credentials are never read from campaign specs
or notebook parameters (see :func:`engagelab.channels.check_no_credentials`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engagelab.channels import CHANNELS, check_no_credentials
from engagelab.delivery.protocol import Provider
from engagelab.errors import ValidationError
from engagelab.schema import REMARKETING_CHANNELS
from engagelab.validate import check_choice

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["PROVIDER_TYPES", "provider_config", "provider_for"]

PROVIDER_TYPES = ("outbox", "smtp", "http", "inbox", "export")
_OPTIONS = {
    "smtp": [
        "host",
        "port",
        "security",
        "username",
        "password",
        "timeout",
        "ca_file",
        "verify",
        "local_hostname",
        "message_id_domain",
        "envelope_from",
    ],
    "http": [
        "url",
        "method",
        "timeout",
        "retries",
        "backoff",
        "backoff_max",
        "max_retry_after",
        "deadline",
        "allowed_hosts",
        "token",
        "verify",
        "concurrency",
        "breaker_failures",
        "breaker_cooldown",
        "breaker_window",
        "batch_deadline",
    ],
    "outbox": ["run_key"],
    "inbox": [],
    "export": ["identifiers", "run_key"],
}


def _default_type(channel: str) -> str:
    delivery = CHANNELS[channel].delivery
    return {"sent": "outbox", "pulled": "inbox", "export": "export"}[delivery]


def provider_config(
    channel: str, ws: Core | None = None, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The resolved options of ``channel``'s provider, ``type`` included (secrets resolved)."""
    check_choice("channel", channel, list(CHANNELS))
    config = dict(config or {})
    check_no_credentials(config, "config")
    section = ((getattr(ws, "config", None) or {}).get("providers") or {}).get(channel) or {}
    if not isinstance(section, Mapping):
        raise ValidationError(
            f"providers.{channel}", section, "must be a mapping in engagelab.yaml"
        )
    env = os.environ
    up = channel.upper()
    ptype = (
        config.get("type")
        or env.get(f"ENGAGELAB_{up}_PROVIDER")
        or section.get("type")
        or _default_type(channel)
    )
    check_choice(f"providers.{channel}.type", ptype, PROVIDER_TYPES)
    out: dict[str, Any] = {"type": ptype}
    names = set(_OPTIONS[ptype]) | {k for k in section if k != "type" and not k.endswith("_env")}
    names |= {k[: -len("_env")] for k in section if k.endswith("_env")}
    if ptype == "http":
        names.add("headers")
    for name in sorted(names):
        e1, e2 = f"ENGAGELAB_{up}_{name.upper()}", f"ENGAGELAB_{ptype.upper()}_{name.upper()}"
        if name in config:
            out[name] = config[name]
        elif e1 in env:
            out[name] = env[e1]
        elif e2 in env:
            out[name] = env[e2]
        elif f"{name}_env" in section:
            var = section[f"{name}_env"]
            if var not in env:
                raise ValidationError(
                    f"providers.{channel}.{name}_env",
                    var,
                    "names an environment variable that is not set",
                )
            out[name] = env[var]
        elif name in section:
            out[name] = section[name]
    return out


def provider_for(channel: str, ws: Core, config: Mapping[str, Any] | None = None) -> Provider:
    """The provider configured for ``channel`` in this workspace (see the module docs).

    Args:
        channel: one of :data:`engagelab.channels.CHANNELS`.
        ws: the workspace (its ``engagelab.yaml`` ``providers:`` section is read).
        config: non-secret overrides, e.g. ``{"type": "smtp", "host": "127.0.0.1", "port": 2525}``
            or ``{"run_key": ...}`` for the outbox file.
    """
    cfg = provider_config(channel, ws, config)
    ptype = cfg.pop("type")
    if ptype == "outbox":
        from engagelab.delivery.outbox import OutboxProvider

        return OutboxProvider.for_run(ws, str(cfg.get("run_key") or "default"))
    if ptype == "smtp":
        from engagelab.delivery.smtp import SmtpProvider

        return SmtpProvider(**cfg)
    if ptype == "http":
        from engagelab.delivery.http import HttpProvider

        return HttpProvider(channel=channel, **cfg)
    if ptype == "inbox":
        from engagelab.delivery.inbox import InboxProvider

        return InboxProvider(ws, channel)
    from engagelab.delivery.remarketing import RemarketingProvider

    if channel not in REMARKETING_CHANNELS:
        raise ValidationError(
            f"providers.{channel}.type", ptype, "is only for remarketing channels"
        )
    ids = cfg.get("identifiers") or ("email", "phone")
    run_key = cfg.get("run_key")
    return RemarketingProvider(channel, ws, tuple(ids), run_key=str(run_key) if run_key else None)
