"""Helpers for the campaign tests: hand-made workspaces."""

from __future__ import annotations

import pandas as pd
import pytest

from engagelab.campaigns import Campaign, Variant

PUSH = {"title": "Sale", "body": "Hello"}


def email(name: str = "A", subject: str = "Hi") -> Variant:
    return Variant(name, {"from": "shop@example.com", "subject": subject, "text": "Hello"})


def profiles(n: int, *, tz: str | list[str] = "UTC", prefix: str = "u") -> pd.DataFrame:
    """``n`` users reachable by e-mail and push in ``tz``."""
    ids = [f"{prefix}{i:05d}" for i in range(n)]
    return pd.DataFrame(
        {
            "user_id": ids,
            "email": [f"{u}@example.com" for u in ids],
            "push_token": [f"tok-{u}" for u in ids],
            "optout_email": [False] * n,
            "timezone": tz if isinstance(tz, list) else [tz] * n,
        }
    )


def add_users(ws, df: pd.DataFrame) -> None:
    ws.ingest(df, table="profiles", quiet=True)


def campaign(id: str = "c1", **kw) -> Campaign:
    kw.setdefault("variants", (email(),))
    kw.setdefault("channel", "email")
    return Campaign(id=id, **kw)


@pytest.fixture
def small_ws(ws):
    add_users(ws, profiles(200))
    return ws
