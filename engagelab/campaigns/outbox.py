"""The default provider: one JSON Lines file per run, idempotent by message key.

Each ``deliver`` call appends the batch's new messages and fsyncs the file; keys already
in the file (read on ``open``) are acknowledged without writing them again, so messages
re-delivered after a crash appear once. A torn last line (a crash mid-write) is
ignored when reading and completed by the next write.

Example:
    >>> import tempfile, datetime as dt, pathlib
    >>> p = OutboxProvider(pathlib.Path(tempfile.mkdtemp()) / "run.jsonl")
    >>> m = OutgoingMessage("k1", "u1", "c1", "A", "email", "a@example.com", {"subject": "Hi"},
    ...                     dt.datetime(2026, 1, 1, tzinfo=dt.UTC), ("Onboarding",), None)
    >>> p.open(); [r.ok for r in p.deliver([m, m])]; p.deliver([m])[0].ok; p.close()
    [True, True]
    True
    >>> len(p.path.read_text().splitlines())
    1
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engagelab.channels.providers import DeliveryResult, OutgoingMessage

__all__ = ["OutboxProvider", "outbox_path", "read_outbox"]


def outbox_path(ws: Any, run_key: str) -> Path:
    """``<workspace>/outputs/outbox/<run key>.jsonl`` (unsafe characters replaced)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in run_key)
    return Path(ws.path) / "outputs" / "outbox" / f"{safe}.jsonl"


def read_outbox(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete records of an outbox file (a torn last line is skipped)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    with p.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            out.append(json.loads(line))
    return out


class OutboxProvider:
    """Writes messages to a JSON Lines file (see the module docstring)."""

    name = "outbox"

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._keys: set[str] = set()
        self._fh: Any = None

    @classmethod
    def for_run(cls, ws: Any, run_key: str) -> OutboxProvider:
        return cls(outbox_path(ws, run_key))

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._keys = set()
        good = 0
        if self.path.exists():
            with self.path.open("rb") as fh:
                for line in fh:
                    if not line.endswith(b"\n"):
                        break
                    self._keys.add(json.loads(line)["key"])
                    good += len(line)
            if good != self.path.stat().st_size:  # drop a torn last line
                with self.path.open("r+b") as fh:
                    fh.truncate(good)
        self._fh = self.path.open("ab")

    def deliver(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        if self._fh is None:
            self.open()
        lines = []
        fresh = set()
        for m in batch:
            if m.key in self._keys or m.key in fresh:
                continue
            fresh.add(m.key)
            rec = {
                "key": m.key,
                "user_id": m.user_id,
                "campaign_id": m.campaign_id,
                "variant": m.variant,
                "channel": m.channel,
                "to": m.to,
                "send_at": m.send_at.isoformat(),
                "labels": list(m.labels),
                "ttl_seconds": m.ttl_seconds,
                "payload": m.payload,
            }
            lines.append(json.dumps(rec, separators=(",", ":"), default=str))
        if lines:
            self._fh.write(("\n".join(lines) + "\n").encode())
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._keys |= fresh
        return [DeliveryResult(m.key, True, provider_id=m.key) for m in batch]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __repr__(self) -> str:
        return f"OutboxProvider({str(self.path)!r})"
