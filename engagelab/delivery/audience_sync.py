"""Remarketing audiences as a sync: the full membership and the add/remove deltas of each run.

An ad platform's customer list is a set of hashed identifier rows. Each run of an audience
writes three files for one platform under
``outputs/remarketing/<channel>/<audience>/<run>/``:

* ``full.csv``: every row of the audience now (replace the list with it);
* ``add.csv`` / ``remove.csv``: the rows to add and to remove against the **last committed
  sync** of the same audience and platform (apply them instead of a full replace).

Rows are sorted and unique; headers are Meta's Marketing API schema names (``EMAIL``,
``PHONE``, ``FN``, ``LN``) for ``facebook_audience`` and Google Customer Match's template
headers (``Email``, ``Phone``, ``First Name``, ``Last Name``) for ``google_ads``. Values
are SHA-256 (hex) of the identifiers normalised per platform (see
:mod:`engagelab.channels.identifiers`: e-mail trimmed and lower-cased; phone E.164, with the
``+`` for Google and digits only for Meta).

Who is left out (one reason code each, counted in :attr:`AudienceSync.excluded`):

* ``opted_out`` / ``unsubscribed``: ``optout_email`` or ``unsubscribed`` is true;
* ``no_ad_consent``: the profile property ``ad_consent`` is not ``true``. A missing column
  or a null value counts as **no consent** (ads need a legal basis; we never assume one);
* ``no_identifier``: neither a usable e-mail nor phone.

The sync history lives in the state database (``el_audience_syncs``, created if missing,
no schema-version change). The files are written first, each atomically (temp file,
fsync, rename); the sync row is committed after they are in place. A crash between the
two leaves the previous sync as the base of the next delta, and a rerun of the same run
key writes the same files again (a committed run key is rewritten from its record).

Example:
    >>> import tempfile
    >>> from engagelab import Workspace
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> day1 = [{"user_id": "a", "email": "A@x.org", "ad_consent": True},
    ...         {"user_id": "b", "email": "b@x.org", "ad_consent": True},
    ...         {"user_id": "c", "email": "c@x.org"}]  # no ad_consent: left out
    >>> s1 = sync_audience(ws, "google_ads", "lapsed", day1, run_key="2026-03-01")
    >>> s1.members, s1.added, s1.removed, s1.excluded
    (2, 2, 0, {'no_ad_consent': 1})
    >>> day2 = [{"user_id": "b", "email": "b@x.org", "ad_consent": True},
    ...         {"user_id": "d", "email": "d@x.org", "ad_consent": True, "optout_email": True}]
    >>> s2 = sync_audience(ws, "google_ads", "lapsed", day2, run_key="2026-03-02")
    >>> s2.members, s2.added, s2.removed, s2.excluded, s2.base_id == s1.sync_id
    (1, 0, 1, {'opted_out': 1}, True)
    >>> s2.remove.read_text().splitlines()[0], s2.remove.parent.name.startswith("2026-03-02")
    ('Email,Phone', True)
    >>> len(sync_history(ws, "lapsed"))
    2
    >>> ws.close()
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
import secrets
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from engagelab.channels.identifiers import IDENTIFIERS, SYNC_HEADERS, normalise, sha256_hex
from engagelab.errors import ValidationError, WorkspaceError
from engagelab.schema import AD_CONSENT, AUDIENCE_OPTOUTS, REMARKETING_CHANNELS
from engagelab.storage.files import fsync_dir
from engagelab.storage.statedb import utcnow
from engagelab.storage.tables import audience_syncs
from engagelab.validate import check_choice

if TYPE_CHECKING:
    import pandas as pd

    from engagelab.storage.statedb import StateDB

__all__ = ["AudienceSync", "sync_audience", "sync_history"]

#: Commit attempts when other syncs of the same audience keep committing first.
_ATTEMPTS = 5
_CONTACT = ("email", "phone")


@dataclass(frozen=True)
class AudienceSync:
    """One committed sync of an audience on one platform (see the module docs)."""

    audience: str
    channel: str
    run_key: str
    sync_id: int  #: the row of ``el_audience_syncs``
    base_id: int | None  #: the sync the deltas are against (None: the first sync)
    members: int  #: rows of the full file
    added: int
    removed: int
    excluded: dict[str, int]  #: reason code -> users left out
    full: Path
    add: Path
    remove: Path
    reused: bool  #: the run key was committed before: its files were written again
    #: user id -> ``'member'`` or the reason code it was left out (this call's input)
    decisions: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def to_pandas(self) -> pd.DataFrame:
        """One row: the counts and the file paths."""
        import pandas as pd

        row = {k: v for k, v in self.__dict__.items() if k not in ("decisions", "excluded")}
        row.update({f"excluded_{k}": v for k, v in sorted(self.excluded.items())})
        return pd.DataFrame([{k: str(v) if isinstance(v, Path) else v for k, v in row.items()}])

    def _repr_html_(self) -> str:
        return str(self.to_pandas().to_html(index=False))

    def __repr__(self) -> str:
        return (
            f"AudienceSync({self.audience!r} on {self.channel}, run {self.run_key!r}: "
            f"{self.members} members, +{self.added} -{self.removed}, excluded {self.excluded})"
        )


# --------------------------------------------------------------------------- membership
def _true(v: Any) -> bool:
    """Only a real boolean true counts (None, NaN, pd.NA, 'yes', 1 do not)."""
    return v is True or (isinstance(v, np.bool_) and bool(v))


def _decide(
    channel: str,
    records: Iterable[Mapping[str, Any]],
    identifiers: Sequence[str],
    optouts: Sequence[str],
) -> tuple[list[str], dict[str, str]]:
    """(sorted unique CSV lines of the members, user id -> 'member' or a reason code)."""
    lines: set[str] = set()
    decisions: dict[str, str] = {}
    for r in records:
        uid = r.get("user_id")
        if uid is None or uid in decisions:
            continue
        uid = str(uid)
        flag = next((f for f in optouts if _true(r.get(f))), None)
        if flag is not None:
            decisions[uid] = "unsubscribed" if flag == "unsubscribed" else "opted_out"
            continue
        if not _true(r.get(AD_CONSENT)):
            decisions[uid] = "no_ad_consent"
            continue
        values = []
        for ident in identifiers:
            v = normalise(channel, ident, r.get(ident))
            values.append(sha256_hex(v) if v else "")
        contact = [v for i, v in zip(identifiers, values, strict=True) if i in _CONTACT]
        if not any(contact):
            decisions[uid] = "no_identifier"
            continue
        lines.add(",".join(values))
        decisions[uid] = "member"
    return sorted(lines), decisions


def _records(ws: Any, members: Any, identifiers: Sequence[str], optouts: Sequence[str]) -> Any:
    """Profile rows of ``members``: a DataFrame, dicts, or user ids looked up in profiles."""
    if hasattr(members, "to_dict"):
        return members.to_dict("records")
    members = list(members)
    if not members or not all(isinstance(m, str) for m in members):
        return members
    from engagelab.schema import CORE_PROFILE_COLUMNS

    have = set(ws.columns("profiles")) | set(CORE_PROFILE_COLUMNS)
    want = ["user_id", *identifiers, AD_CONSENT, *optouts]
    cols = ", ".join(f'"{c}"' for c in dict.fromkeys(want) if c in have)
    df = ws.sql(f"SELECT {cols} FROM profiles WHERE list_contains(?, user_id)", [members])
    return df.to_dict("records")


# --------------------------------------------------------------------------- files
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "audience"


def _run_dir(ws: Any, channel: str, audience: str, run_key: str) -> Path:
    tag = hashlib.sha256(run_key.encode()).hexdigest()[:8]
    root = Path(ws.path) / "outputs" / "remarketing" / channel / _safe(audience)
    return root / f"{_safe(run_key)[:80]}-{tag}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_temps(folder: Path) -> None:
    """Remove temp files a killed writer on this host left behind."""
    for p in folder.glob(".*.tmp"):
        parts = p.name.split(".")
        if len(parts) >= 4 and parts[-3].isdigit() and not _alive(int(parts[-3])):
            with contextlib.suppress(OSError):
                p.unlink()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _csv(header: list[str], lines: Iterable[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(header)
    for line in lines:
        buf.write(line + "\n")
    return buf.getvalue()


def _write_files(
    folder: Path, header: list[str], lines: list[str], base: list[str]
) -> tuple[dict[str, Path], int, int]:
    now, old = set(lines), set(base)
    add = [x for x in lines if x not in old]
    remove = [x for x in base if x not in now]
    folder.mkdir(parents=True, exist_ok=True)
    _clean_temps(folder)
    paths = {k: folder / f"{k}.csv" for k in ("full", "add", "remove")}
    for k, rows in (("add", add), ("remove", remove), ("full", lines)):
        _write_atomic(paths[k], _csv(header, rows))
    fsync_dir(folder)
    return paths, len(add), len(remove)


def _pack(lines: list[str]) -> bytes:
    return zlib.compress("\n".join(lines).encode("utf-8"), 6)


def _unpack(blob: bytes) -> list[str]:
    text = zlib.decompress(blob).decode("utf-8")
    return text.split("\n") if text else []


# --------------------------------------------------------------------------- state DB
_READY: set[str] = set()


def _ensure_table(db: StateDB) -> None:
    """Create ``el_audience_syncs`` if this database lacks it (no version change)."""
    if db.url in _READY:
        return
    with db.read() as conn:
        have = sa.inspect(conn).has_table(audience_syncs.name)
    if not have:
        try:
            with db.write() as conn:
                audience_syncs.create(conn, checkfirst=True)
        except sa.exc.DBAPIError:  # created concurrently by another process
            with db.read() as conn:
                if not sa.inspect(conn).has_table(audience_syncs.name):
                    raise
    _READY.add(db.url)


def _rel(ws: Any, p: Path) -> str:
    return p.relative_to(Path(ws.path)).as_posix()


def _result(ws: Any, row: Any, paths: Mapping[str, Path], reused: bool, dec: Any) -> AudienceSync:
    return AudienceSync(
        row.audience,
        row.channel,
        row.run_key,
        row.id,
        row.base_id,
        row.members,
        row.added,
        row.removed,
        dict(row.excluded),
        paths["full"],
        paths["add"],
        paths["remove"],
        reused,
        dec,
    )


def _row(conn: sa.Connection, audience: str, channel: str, run_key: str) -> Any:
    t = audience_syncs.c
    return conn.execute(
        sa.select(audience_syncs).where(
            t.audience == audience, t.channel == channel, t.run_key == run_key
        )
    ).first()


def _latest(conn: sa.Connection, audience: str, channel: str) -> Any:
    t = audience_syncs.c
    return conn.execute(
        sa.select(audience_syncs)
        .where(t.audience == audience, t.channel == channel)
        .order_by(t.id.desc())
        .limit(1)
    ).first()


def _rewrite(ws: Any, row: Any, decisions: Any) -> AudienceSync:
    """The files of a committed sync, written again from its record (same bytes)."""
    header = [SYNC_HEADERS[row.channel][i] for i in row.identifiers.split(",")]
    base: list[str] = []
    if row.base_id is not None:
        with ws.state.read() as conn:
            blob = conn.execute(
                sa.select(audience_syncs.c.rows).where(audience_syncs.c.id == row.base_id)
            ).scalar_one()
        base = _unpack(blob)
    folder = _run_dir(ws, row.channel, row.audience, row.run_key)
    paths, _, _ = _write_files(folder, header, _unpack(row.rows), base)
    return _result(ws, row, paths, True, decisions)


def sync_audience(
    ws: Any,
    channel: str,
    audience: str,
    members: Any,
    run_key: str,
    *,
    identifiers: Sequence[str] = ("email", "phone"),
    optouts: Sequence[str] = AUDIENCE_OPTOUTS,
) -> AudienceSync:
    """Sync ``audience`` on ``channel`` to ``members``: write the full and delta files, then
    record the sync (see the module docs).

    Args:
        ws: the workspace.
        channel: ``'facebook_audience'`` or ``'google_ads'``.
        audience: the audience's name (its history and folder).
        members: the audience now: a DataFrame or dicts of profile rows (``user_id``, the
            identifiers, ``ad_consent``, the opt-out flags), or user ids looked up in the
            workspace's profiles.
        run_key: this run's key (e.g. the logical date). Rerunning a committed key writes
            its recorded files again and records nothing new.
        identifiers: columns to export, from ``email``, ``phone``, ``first_name``,
            ``last_name`` (at least one of e-mail and phone; a row needs one of them). Fixed
            per audience: the deltas compare rows of the same columns.
        optouts: profile flags that keep a user out (default ``optout_email``,
            ``unsubscribed``).
    """
    check_choice("channel", channel, list(REMARKETING_CHANNELS))
    if not isinstance(audience, str) or not audience.strip() or len(audience) > 200:
        raise ValidationError("audience", audience, "must be a name of 1 to 200 characters")
    if not isinstance(run_key, str) or not run_key.strip() or len(run_key) > 200:
        raise ValidationError("run_key", run_key, "must be a text of 1 to 200 characters")
    identifiers = tuple(identifiers)
    for i, ident in enumerate(identifiers):
        check_choice(f"identifiers[{i}]", ident, list(IDENTIFIERS))
    if len(set(identifiers)) != len(identifiers) or not set(identifiers) & set(_CONTACT):
        raise ValidationError(
            "identifiers", list(identifiers), "must list distinct names with 'email' or 'phone'"
        )
    header = [SYNC_HEADERS[channel][i] for i in identifiers]
    lines, decisions = _decide(
        channel, _records(ws, members, identifiers, optouts), identifiers, optouts
    )
    excluded: dict[str, int] = {}
    for d in decisions.values():
        if d != "member":
            excluded[d] = excluded.get(d, 0) + 1
    excluded = dict(sorted(excluded.items()))
    _ensure_table(ws.state)
    folder = _run_dir(ws, channel, audience, run_key)
    for _ in range(_ATTEMPTS):
        with ws.state.read() as conn:
            done = _row(conn, audience, channel, run_key)
            base = None if done is not None else _latest(conn, audience, channel)
        if done is not None:
            return _rewrite(ws, done, decisions)
        if base is not None and base.identifiers != ",".join(identifiers):
            raise ValidationError(
                "identifiers",
                list(identifiers),
                f"differ from the last sync of {audience!r} on {channel} "
                f"({base.identifiers.split(',')}): keep them, or sync under a new audience name",
            )
        base_lines = _unpack(base.rows) if base is not None else []
        paths, added, removed = _write_files(folder, header, lines, base_lines)
        values = {
            "audience": audience,
            "channel": channel,
            "run_key": run_key,
            "base_id": base.id if base is not None else None,
            "identifiers": ",".join(identifiers),
            "members": len(lines),
            "added": added,
            "removed": removed,
            "excluded": excluded,
            "files": {k: _rel(ws, p) for k, p in paths.items()},
            "digest": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            "rows": _pack(lines),
            "created_at": utcnow(),
        }
        try:
            with ws.state.write() as conn:
                latest = _latest(conn, audience, channel)
                if (latest.id if latest else None) != values["base_id"]:
                    continue  # another run committed first: compute against it
                conn.execute(audience_syncs.insert().values(**values))
                row = _row(conn, audience, channel, run_key)
        except sa.exc.IntegrityError:
            continue  # the same run key committed concurrently: take its record
        return _result(ws, row, paths, False, decisions)
    raise WorkspaceError(
        f"the sync of {audience!r} on {channel} (run {run_key!r}) could not be committed: "
        f"other syncs of it committed first {_ATTEMPTS} times; run it again"
    )


def sync_history(ws: Any, audience: str, channel: str | None = None) -> pd.DataFrame:
    """The committed syncs of ``audience`` (oldest first), without the stored rows."""
    import pandas as pd

    _ensure_table(ws.state)
    t = audience_syncs.c
    cols = [c for c in audience_syncs.c if c.name != "rows"]
    q = sa.select(*cols).where(t.audience == audience).order_by(t.id)
    if channel is not None:
        q = q.where(t.channel == check_choice("channel", channel, list(REMARKETING_CHANNELS)))
    with ws.state.read() as conn:
        rows = conn.execute(q).fetchall()
    return pd.DataFrame(rows, columns=[c.name for c in cols])
