"""The scheduled campaign job: what ``notebooks/campaign_job.ipynb`` does for one logical date.

Open the workspace → load the campaign (a saved id, or a YAML/JSON spec file) → plan it
for the logical date → unless ``dry_run``, send under the run key (effectively once: a
rerun of the same run key sends nothing new) → let ``answer`` react (a simulated workspace's
world) → a short report (counts by decision, suppression reasons, variant split,
the delivery outcome from the ledger and the campaign's row of the campaign report).

The logical date is a calendar date in the campaign's schedule time zone. The planning
instant is its local midnight for ``recurring`` and ``on_date`` campaigns (the cron or
the ``time`` field picks the hour) and its local ``schedule.time`` (default 09:00) for
``one_time`` (without ``at``), ``triggered`` and ``inaction`` campaigns: the moment the
daily run looks back from. A one-time campaign sends each phase once: a later run key
finds the phase already sent and skips, with a note; runs that race (two logical dates
at once, or a job and ``engagelab campaign send``) share the occurrence's message keys,
so the ledger delivers each message once whichever run claims it. A recurring campaign
run for a day its cron does not fire on sends nothing, with a note.

Example (a dry run estimates reach; the real run sends; a rerun sends nothing new):
    >>> import tempfile, pandas as pd
    >>> from engagelab import Workspace
    >>> from engagelab.campaigns import Campaign, Variant, save_campaign
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = ws.ingest(pd.DataFrame({"user_id": ["a", "b", "c"], "email": ["a@x.io", None, "c@x.io"]}),
    ...               table="profiles", quiet=True)
    >>> save_campaign(ws, Campaign(id="hi", channel="email",
    ...     variants=(Variant("A", {"from": "s@x.io", "subject": "Hi", "text": "Hello"}),)))
    >>> run_campaign_job(ws, "2026-03-02", campaign_id="hi", dry_run=True).decisions
    {'send': 2, 'suppressed': 1}
    >>> first = run_campaign_job(ws, "2026-03-02", campaign_id="hi", run_key="daily/2026-03-02")
    >>> again = run_campaign_job(ws, "2026-03-02", campaign_id="hi", run_key="daily/2026-03-02")
    >>> first.sent_now, again.sent_now, again.delivered
    (2, 0, {'sent': 2})
    >>> run_campaign_job(ws, "2026-03-02", campaign_id="nope")
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: campaign_id == 'nope', is not a saved campaign (saved: hi)
"""

from __future__ import annotations

import datetime as dt
import html
import os
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from engagelab.campaigns.spec import Campaign
from engagelab.clock import SimulatedClock
from engagelab.delivery import ledger as L
from engagelab.errors import ValidationError, WorkspaceError
from engagelab.storage.core import Core

__all__ = ["CampaignJobResult", "load_job_campaign", "plan_instant", "run_campaign_job"]

#: The send clocks of :func:`run_campaign_job`.
SEND_CLOCKS = ("system", "plan")


@dataclass(frozen=True, repr=False)
class CampaignJobResult:
    """What one campaign-job run did.

    ``table`` has one row per (stage, decision, reason, variant) with the number of
    users: stage ``plan`` is the plan of this logical date, stage ``delivery`` the
    ledger of the run key (what has been sent under it, by this or earlier attempts).
    """

    campaign_id: str
    logical_date: str
    run_key: str
    phase: str
    dry_run: bool
    planned_at: dt.datetime
    table: pd.DataFrame
    sent_now: int = 0
    already_sent: int = 0
    responses: int | None = None
    report: pd.DataFrame = field(default_factory=pd.DataFrame)
    note: str = ""

    def _counts(self, stage: str, by: str) -> dict[str, int]:
        t = self.table[self.table["stage"] == stage]
        s = t.groupby(by, sort=True)["users"].sum()
        return {str(k): int(v) for k, v in s.items()}

    @property
    def decisions(self) -> dict[str, int]:
        """Users per plan decision (send, control, suppressed, deferred, excluded)."""
        return self._counts("plan", "decision")

    @property
    def reasons(self) -> dict[str, int]:
        """Users per reason code (plan-time and send-time suppressions, holdouts)."""
        t = self.table[self.table["reason"] != ""]
        plan = t[t["stage"] == "plan"].groupby("reason")["users"].sum()
        late = t[t["stage"] == "delivery"].groupby("reason")["users"].sum()
        both = plan.add(late, fill_value=0).sort_index()
        return {str(k): int(v) for k, v in both.items()}

    @property
    def delivered(self) -> dict[str, int]:
        """Ledger rows of the run key by status (sent, suppressed, failed, claimed)."""
        return self._counts("delivery", "decision")

    @property
    def variant_split(self) -> pd.DataFrame:
        """Users per variant (rows) and plan decision (columns)."""
        t = self.table[self.table["stage"] == "plan"]
        return t.pivot_table(
            index="variant", columns="decision", values="users", aggfunc="sum", fill_value=0
        ).rename_axis(columns=None)

    def to_pandas(self) -> pd.DataFrame:
        """The small report table (a copy)."""
        return self.table.copy()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "campaign_id": self.campaign_id, "logical_date": self.logical_date,
            "run_key": self.run_key, "phase": self.phase, "dry_run": self.dry_run,
            "planned_at": self.planned_at.isoformat(), "decisions": self.decisions,
            "reasons": self.reasons, "delivered": self.delivered, "sent_now": self.sent_now,
            "already_sent": self.already_sent, "responses": self.responses, "note": self.note,
        }  # fmt: skip

    def __repr__(self) -> str:
        what = (
            "dry run"
            if self.dry_run
            else f"sent {self.sent_now:,} now, {self.already_sent:,} earlier"
        )
        dec = ", ".join(f"{k} {v:,}" for k, v in self.decisions.items()) or "nobody"
        tail = f"; {self.note}" if self.note else ""
        return (f"CampaignJobResult({self.campaign_id!r} {self.logical_date}, run {self.run_key!r}, "
                f"phase {self.phase}: {dec}; {what}{tail})")  # fmt: skip

    def _repr_html_(self) -> str:
        parts = [f"<div class='el-campaign-job'><p><b>{html.escape(repr(self))}</b></p>"]
        if not self.table.empty:
            parts.append(self.table.to_html(index=False))
        if not self.report.empty:
            parts.append(self.report.to_html(index=False, na_rep=""))
        return "".join(parts) + "</div>"


def plan_instant(campaign: Campaign, logical_date: Any) -> dt.datetime:
    """The planning instant (UTC) of ``campaign`` for a logical date (see the module doc).

    >>> from engagelab.campaigns import Campaign, Schedule, Variant
    >>> v = (Variant("A", {"title": "t", "body": "b"}),)
    >>> daily = Campaign(id="d", channel="push", variants=v,
    ...                  schedule=Schedule("recurring", cron="0 10 * * *", timezone="Europe/Berlin"))
    >>> plan_instant(daily, "2026-02-20").isoformat()
    '2026-02-19T23:00:00+00:00'
    >>> plan_instant(daily.replace(schedule=Schedule("one_time")), "2026-02-20").isoformat()
    '2026-02-20T09:00:00+00:00'
    """
    from engagelab.jobs.runner import parse_logical_date

    day = dt.date.fromisoformat(parse_logical_date(logical_date))
    s = campaign.schedule
    hh, mm = (0, 0) if s.type in ("recurring", "on_date") else map(int, s.time.split(":"))
    local = dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=zoneinfo.ZoneInfo(s.timezone))
    return local.astimezone(dt.UTC)


def load_job_campaign(ws: Core, campaign_id: str = "", spec_file: str = "") -> Campaign:
    """The campaign named by exactly one of ``campaign_id`` (saved) or ``spec_file``."""
    from engagelab.campaigns.api import list_campaigns, load_campaign

    for name, value in (("campaign_id", campaign_id), ("spec_file", spec_file)):
        if not isinstance(value, str):
            raise ValidationError(name, value, "must be a string")
    if bool(campaign_id) == bool(spec_file):
        raise ValidationError(
            "campaign_id", campaign_id or None, "give a saved campaign id or a spec_file, not both"
            if campaign_id else "give a saved campaign id or a spec_file",
        )  # fmt: skip
    if campaign_id:
        saved = list_campaigns(ws)["id"].tolist()
        if campaign_id not in saved:
            known = ", ".join(saved) or "none"
            raise ValidationError(
                "campaign_id", campaign_id, f"is not a saved campaign (saved: {known})"
            )
        return load_campaign(ws, campaign_id)
    path = Path(spec_file).expanduser()
    if not path.is_file():
        raise ValidationError("spec_file", spec_file, "does not exist")
    try:
        from engagelab.validate import load_spec_file

        return Campaign.from_dict(load_spec_file(path, "the file"))
    except ValidationError as exc:
        raise ValidationError(
            "spec_file", spec_file, message=f"spec_file {spec_file}: {exc}"
        ) from None
    except Exception as exc:  # a YAML syntax error, a non-mapping document
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValidationError("spec_file", spec_file, f"is not a campaign spec ({first})") from None


def _open(workspace: Any) -> tuple[Core, bool]:
    if isinstance(workspace, Core):
        return workspace, False
    if not isinstance(workspace, str | os.PathLike):
        raise ValidationError("workspace", workspace, "must be a workspace folder")
    path = str(workspace) or os.environ.get("ENGAGELAB_WORKSPACE", "")
    if not path:
        raise ValidationError(
            "workspace", workspace, "is empty and $ENGAGELAB_WORKSPACE is not set"
        )
    try:
        return Core.open(path), True
    except WorkspaceError:
        raise ValidationError("workspace", path, "is not an engagelab workspace") from None


def _phase(ws: Core, c: Campaign, run_key: str) -> tuple[str | None, str]:
    """(phase to plan, note): a rerun keeps its run's phase; a one-time campaign's phase
    already sent under another run key is skipped (phase None)."""
    with ws.state.read() as conn:
        rows = conn.execute(sa.select(L.runs.c.run_key, L.runs.c.phase)
                            .where(L.runs.c.campaign_id == c.id)).all()  # fmt: skip
    mine = [r.phase for r in rows if r.run_key == run_key]
    if mine:
        return mine[0], ""
    phases = {r.phase: r.run_key for r in rows}
    phase = "main" if c.winner_test is None else "winner" if "test" in phases else "test"
    if c.schedule.type == "one_time" and phase in phases:
        return None, f"one-time phase {phase!r} already sent under run key {phases[phase]!r}"
    return phase, ""


def _table(frame: pd.DataFrame, ledger: pd.DataFrame) -> pd.DataFrame:
    cols = ["stage", "decision", "reason", "variant", "users"]
    f = frame.assign(reason=frame["reason"].fillna(""), variant=frame["variant"].fillna(""))
    plan = (
        f.groupby(["decision", "reason", "variant"], sort=True).size().rename("users").reset_index()
    )
    out = [plan.assign(stage="plan")]
    if not ledger.empty:
        out.append(ledger.assign(stage="delivery"))
    t = (
        pd.concat(out, ignore_index=True)[cols]
        if len(plan) or len(ledger)
        else pd.DataFrame(columns=cols)
    )
    t["users"] = t["users"].astype("int64")
    return t


def _ledger(ws: Core, run_key: str) -> pd.DataFrame:
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.ledger.c.status, L.ledger.c.reason, L.ledger.c.variant, sa.func.count())
            .where(L.ledger.c.run_key == run_key)
            .group_by(L.ledger.c.status, L.ledger.c.reason, L.ledger.c.variant)
        ).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=["decision", "reason", "variant", "users"])
    return df.fillna({"reason": "", "variant": ""}).sort_values(["decision", "reason", "variant"])


def _report_row(ws: Core, c: Campaign) -> pd.DataFrame:
    from engagelab.campaigns.report import campaign_report

    t = campaign_report(ws, text=c.id).table
    return t[t["campaign_id"] == c.id].reset_index(drop=True)


def run_campaign_job(
    workspace: Any,
    logical_date: Any,
    *,
    campaign_id: str = "",
    spec_file: str = "",
    run_key: str = "",
    dry_run: bool = False,
    answer: Callable[[Any, str], int] | None = None,
    send_clock: str = "system",
) -> CampaignJobResult:
    """Plan, send (unless ``dry_run``), let ``answer`` react to what was sent, and report.

    Args:
        workspace: a :class:`~engagelab.Workspace` or its folder ("" reads
            ``$ENGAGELAB_WORKSPACE``, which ``engagelab run`` sets).
        logical_date: the run's date, ``YYYY-MM-DD`` (in the campaign's time zone).
        campaign_id: a saved campaign's id; or
        spec_file: a campaign spec file (``.json``, else YAML).
        run_key: the run key messages are keyed by (``engagelab run`` injects
            ``job/date``); "" means ``<campaign id>/<logical date>``.
        dry_run: plan only (reach and reasons); nothing is sent or recorded.
        answer: called as ``answer(workspace, run_key)`` after the send; its return value
            (a count of events) is the result's ``responses``. A simulated workspace passes
            :func:`engagelab.simulate.respond` so its world reacts to the messages.
        send_clock: what "now" is for the send: ``"system"`` (the wall clock: what is due
            goes at once) or ``"plan"`` (the planning instant of the logical date: messages
            due later wait in the queue for the dispatcher, ``engagelab dispatch``; what a
            simulated programme such as ``make demo`` replays on its own clock).

    Returns:
        a :class:`CampaignJobResult`.

    Raises:
        ValidationError: one line naming the bad parameter (unknown campaign, missing
            workspace, malformed logical date, ...).
    """
    from engagelab.campaigns.plan import plan
    from engagelab.campaigns.send import send
    from engagelab.jobs.runner import parse_logical_date

    date = parse_logical_date(logical_date)
    if not isinstance(dry_run, bool):
        raise ValidationError("dry_run", dry_run, "must be True or False")
    if answer is not None and not callable(answer):
        raise ValidationError("answer", answer, "must be a function (workspace, run_key) or None")
    if not isinstance(run_key, str):
        raise ValidationError("run_key", run_key, "must be a string")
    if send_clock not in SEND_CLOCKS:
        raise ValidationError("send_clock", send_clock, f"must be one of: {', '.join(SEND_CLOCKS)}")
    ws, opened = _open(workspace)
    try:
        c = load_job_campaign(ws, campaign_id, spec_file)
        key = L.check_run_key(run_key or f"{c.id}/{date}")
        at = plan_instant(c, date)
        phase, note = _phase(ws, c, key)
        if phase is None:
            empty = _table(
                pd.DataFrame(columns=["decision", "reason", "variant"]), _ledger(ws, key)
            )
            return CampaignJobResult(c.id, date, key, "skipped", dry_run, at, empty,
                                     report=_report_row(ws, c), note=note)  # fmt: skip
        p = plan(ws, c, at, run_key=key, phase=None if phase == "main" else phase)
        note = note or p.note
        sent_now = already = 0
        responses = None
        if not dry_run:
            r = send(ws, p, key, clock=SimulatedClock(at) if send_clock == "plan" else None)
            sent_now, already = r.sent, r.already_sent
            if r.pending:
                note = f"{r.pending:,} messages still in doubt (claimed): rerun this run key"
            elif r.skipped:
                note = f"{r.skipped:,} messages held by another sender of this occurrence"
            if r.queued:
                later = f"{r.queued:,} messages queued for the dispatcher (due later)"
                note = f"{note}; {later}" if note else later
            if answer is not None:
                responses = int(answer(ws, key))
        ledger = pd.DataFrame() if dry_run else _ledger(ws, key)
        return CampaignJobResult(c.id, date, key, p.phase, dry_run, at, _table(p.frame, ledger),
                                 sent_now, already, responses, _report_row(ws, c), note)  # fmt: skip
    finally:
        if opened:
            ws.close()
