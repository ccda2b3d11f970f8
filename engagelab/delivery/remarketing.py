"""Remarketing audience exports: hashed identifiers in the layouts the ad platforms document.

Audiences that change from run to run are synced, not appended: see
:mod:`engagelab.delivery.audience_sync` (:func:`sync_audience`, the campaigns' path) for the
full and add/remove files and their history. :func:`export_audience` writes one plain file.

Identifiers are normalised and SHA-256 hashed (hex) before they leave the workspace:

* e-mail: trimmed and lower-cased (both platforms);
* phone: E.164. Meta's Custom Audiences want digits only with the country code and no
  ``+`` (``"14155552671"``); Google Ads Customer Match wants E.164 with the ``+``
  (``"+14155552671"``). Spaces, dashes, brackets and a leading ``00`` are removed.

File layouts (CSV, UTF-8, header row):

* ``facebook_audience``: columns ``email``, ``phone`` (Meta's customer-list file
  identifiers; ``FACEBOOK_API_SCHEMA`` gives the Marketing API names ``EMAIL``, ``PHONE``);
* ``google_ads``: columns ``Email``, ``Phone`` (Customer Match upload template headers).

The identifier rules live in :mod:`engagelab.channels.identifiers` (content previews use
them too). Example:
    >>> normalise_email("  Ada@Example.ORG ")
    'ada@example.org'
    >>> normalise_phone("+1 (415) 555-2671", plus=False), normalise_phone("0044 20 7946 0018")
    ('14155552671', '+442079460018')
    >>> sha256_hex("ada@example.org")[:16]
    'cfe00dde46ef9426'
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engagelab.channels.identifiers import (
    FACEBOOK_API_SCHEMA,
    LAYOUTS,
    hash_identifiers,
    normalise_email,
    normalise_phone,
    sha256_hex,
)
from engagelab.delivery.audience_sync import AudienceSync, sync_audience, sync_history
from engagelab.errors import ValidationError
from engagelab.validate import check_choice

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = [
    "FACEBOOK_API_SCHEMA",
    "LAYOUTS",
    "AudienceSync",
    "RemarketingProvider",
    "export_audience",
    "hash_identifiers",
    "normalise_email",
    "normalise_phone",
    "sha256_hex",
    "sync_audience",
    "sync_history",
]


def _header(channel: str, identifiers: Sequence[str]) -> list[str]:
    return [LAYOUTS[channel][i] for i in identifiers]


def export_audience(
    ws: Core,
    channel: str,
    profiles: Any,
    name: str,
    identifiers: Sequence[str] = ("email", "phone"),
) -> Path:
    """Write a whole audience file ``outputs/remarketing/<channel>/<name>.csv``.

    Args:
        ws: the workspace.
        channel: ``'facebook_audience'`` or ``'google_ads'``.
        profiles: a DataFrame (or iterable of dicts) with ``email`` and/or ``phone``.
        name: the file's stem (the audience's name).
        identifiers: which identifiers to export.

    Rows without any usable identifier are left out. Returns the file's path.
    """
    check_choice("channel", channel, list(LAYOUTS))
    for i in identifiers:
        check_choice("identifiers", i, ["email", "phone"])
    rows: Iterable[Mapping[str, Any]]
    rows = profiles.to_dict("records") if hasattr(profiles, "to_dict") else profiles
    path = Path(ws.path) / "outputs" / "remarketing" / channel / f"{_safe(name)}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(_header(channel, identifiers))
        for r in rows:
            h = hash_identifiers(channel, r, identifiers)
            if any(h.values()):
                w.writerow([h[f"{i}_sha256"] or "" for i in identifiers])
    os.replace(tmp, path)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "audience"


class RemarketingProvider:
    """Remarketing audiences of campaigns: a sync per run, or (without a run key) an append.

    With a ``run_key`` (what a campaign send passes, through
    :func:`~engagelab.delivery.registry.provider_for`), the first batch of a campaign syncs
    the audience ``<campaign_id>`` to every user the run's plan snapshot sends to, with
    :func:`~engagelab.delivery.audience_sync.sync_audience`: the full file and the add/remove
    deltas against the last committed sync, users without ad consent or opted out left out.
    A message of a member is delivered (``provider_id`` is the full file). The plan already
    suppresses users without consent or opted out (``no_ad_consent``, ``opted_out``); one
    whose profile changed since planning fails permanently with the reason
    (``not in the audience: no_ad_consent``).

    Without a run key it appends, as before: file
    ``outputs/remarketing/<channel>/<campaign_id>.csv``. A journal next to it
    (``.journal``: message key and hashes, appended and fsync'd first) makes delivery
    idempotent by key and crash-safe: rows journalled but missing from the CSV (a crash
    between the two writes) are appended on the next call, and a key already journalled
    is never written again. The payload is the content's rendering (``email_sha256``,
    ``phone_sha256``).
    """

    def __init__(
        self,
        channel: str,
        ws: Core,
        identifiers: Sequence[str] = ("email", "phone"),
        run_key: str | None = None,
    ):
        self.channel = check_choice("channel", channel, list(LAYOUTS))
        self.name = f"remarketing:{channel}"
        self.ws = ws
        self.identifiers = tuple(identifiers)
        self.run_key = run_key
        self._keys: dict[Path, set[str]] = {}
        self._syncs: dict[str, AudienceSync] = {}

    def open(self) -> None:
        """Nothing to connect to (files are opened per batch)."""

    def close(self) -> None:
        """Forget the cached key sets and syncs."""
        self._keys.clear()
        self._syncs.clear()

    def path(self, campaign_id: str) -> Path:
        """The audience file of a campaign."""
        root = Path(self.ws.path) / "outputs" / "remarketing" / self.channel
        return root / f"{_safe(campaign_id)}.csv"

    def sync(self, campaign_id: str, identifiers: Sequence[str] | None = None) -> AudienceSync:
        """The sync of ``campaign_id``'s audience for this run (done once per provider), on
        ``identifiers`` (default: the provider's)."""
        if campaign_id not in self._syncs:
            if self.run_key is None:
                raise ValidationError("run_key", None, "is needed to sync an audience")
            users = _run_users(self.ws, self.run_key, campaign_id)
            self._syncs[campaign_id] = sync_audience(
                self.ws,
                self.channel,
                campaign_id,
                users,
                self.run_key,
                identifiers=tuple(identifiers or self.identifiers),
            )
        return self._syncs[campaign_id]

    def deliver(self, batch: Sequence[Any]) -> list[Any]:
        """Sync the run's audience (with a run key), else append the batch's hashed
        identifiers (idempotent by message key)."""
        from engagelab.delivery.protocol import DeliveryResult

        if self.run_key is not None:
            out = []
            for m in batch:
                # the content's identifiers: its rendering has one hash key per identifier
                ids = [i for i in ("email", "phone") if f"{i}_sha256" in m.payload]
                s = self.sync(m.campaign_id, ids)
                why = s.decisions.get(m.user_id, "not_in_plan")
                if why == "member":
                    out.append(DeliveryResult(m.key, True, provider_id=str(s.full)))
                else:
                    out.append(
                        DeliveryResult(m.key, False, True, error=f"not in the audience: {why}")
                    )
            return out
        results: dict[str, Any] = {}
        by_file: dict[Path, list[Any]] = {}
        for m in batch:
            by_file.setdefault(self.path(m.campaign_id), []).append(m)
        for path, msgs in by_file.items():
            seen = self._sync(path)
            lines = []
            for m in msgs:
                values = [m.payload.get(f"{i}_sha256") or "" for i in self.identifiers]
                if m.key in seen:
                    results[m.key] = DeliveryResult(m.key, True, provider_id=str(path))
                elif not any(values):
                    results[m.key] = DeliveryResult(
                        m.key, False, True, error="no email or phone to export"
                    )
                else:
                    lines.append([m.key, *values])
                    seen.add(m.key)
                    results[m.key] = DeliveryResult(m.key, True, provider_id=str(path))
            if lines:
                _append_csv(path.with_suffix(".journal"), lines)
                _append_csv(path, [line[1:] for line in lines])
        return [results[m.key] for m in batch]

    def _sync(self, path: Path) -> set[str]:
        """Read the journal once; bring the CSV up to date with it (after a crash)."""
        if path in self._keys:
            return self._keys[path]
        path.parent.mkdir(parents=True, exist_ok=True)
        journal_path = path.with_suffix(".journal")
        journal = _read_csv(journal_path)
        if not path.exists():
            _append_csv(path, [_header(self.channel, self.identifiers)])
        raw = path.read_bytes()
        if not raw.endswith(b"\n"):  # a torn last line: cut it off
            with path.open("r+b") as f:
                f.truncate(raw.rfind(b"\n") + 1)
            raw = path.read_bytes()
        have = raw.count(b"\n") - 1
        if have < len(journal):
            _append_csv(path, [line[1:] for line in journal[have:]])
        self._keys[path] = {line[0] for line in journal}
        return self._keys[path]


def _run_users(ws: Core, run_key: str, campaign_id: str) -> list[str]:
    """User ids the run's plan snapshot sends to."""
    import io

    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import sqlalchemy as sa

    from engagelab.storage.tables import campaign_runs

    with ws.state.read() as conn:
        row = conn.execute(
            sa.select(campaign_runs.c.campaign_id, campaign_runs.c.snapshot).where(
                campaign_runs.c.run_key == run_key
            )
        ).first()
    if row is None or row.campaign_id != campaign_id:
        raise ValidationError(
            "run_key", run_key, f"has no run of campaign {campaign_id!r} to sync its audience"
        )
    t = pq.read_table(io.BytesIO(row.snapshot), columns=["user_id", "decision"])
    sent = t.filter(pc.equal(t["decision"], "send"))
    return [str(u) for u in sent["user_id"].to_pylist()]


def _read_csv(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        path.write_text(text, encoding="utf-8")
    return list(csv.reader(text.splitlines()))


def _append_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("a", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
        f.flush()
        os.fsync(f.fileno())
