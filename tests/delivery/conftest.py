"""Fixtures of the channel tests: a TLS certificate and message factories."""

from __future__ import annotations

import datetime as dt

import pytest

from engagelab.delivery.protocol import OutgoingMessage

from .servers import make_cert

SEND_AT = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """A self-signed certificate and key for 127.0.0.1 (made with the openssl CLI)."""
    return make_cert(tmp_path_factory.mktemp("tls"))


def message(key, to, payload, *, channel="email", user_id=None, campaign_id="c1", ttl=None):
    """An OutgoingMessage with sensible defaults."""
    return OutgoingMessage(
        key=key,
        user_id=user_id or key,
        campaign_id=campaign_id,
        variant="A",
        channel=channel,
        to=to,
        payload=payload,
        send_at=SEND_AT,
        labels=("Onboarding",),
        ttl_seconds=ttl,
    )
