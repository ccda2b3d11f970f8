"""The workspace: one folder holding a project's data, state and outputs, and the verbs a
user calls on it.

Layout::

    <workspace>/
        engagelab.yaml      configuration (state database URL, providers, defaults)
        data/profiles/      Parquet files of the profiles table
        data/events/        Parquet files of the events table
        quarantine/         rejected input rows with a reason code per row
        outputs/            executed notebooks, reports, exports
        state.db            the SQLite state database (unless state_url points elsewhere)

:class:`Workspace` is the facade: each verb hands over to the package that owns the work
(segments, campaigns, delivery, experiments, best time, retention, jobs) and holds no SQL
of its own. Domain code is typed against its base, :class:`engagelab.storage.core.Core`.

Example:
    >>> import tempfile, pandas as pd
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> report = ws.ingest(pd.DataFrame({"user_id": ["a", "b"], "timezone": ["UTC", "Asia/Tokyo"]}),
    ...                    table="profiles", quiet=True)
    >>> report.rows_appended
    2
    >>> int(ws.sql("SELECT count(*) AS n FROM profiles")["n"][0])
    2
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engagelab.storage.catalog import WorkspaceSummary, summary
from engagelab.storage.core import ENV_VAR, Core, use_workspace
from engagelab.storage.statedb import CONFIG_NAME, FORMAT_VERSION

if TYPE_CHECKING:
    import pandas as pd

    from engagelab.besttime.evaluate import BestTimeEvaluation
    from engagelab.besttime.model import BestTimeModel
    from engagelab.campaigns.report import CampaignReport
    from engagelab.campaigns.result import Plan, SendResult
    from engagelab.campaigns.spec import Campaign
    from engagelab.delivery.inbox import InboxResult
    from engagelab.experiments.result import ExperimentResult
    from engagelab.jobs.runner import RunResult
    from engagelab.jobs.spec import JobSpec
    from engagelab.retention.labels import LabelRetention
    from engagelab.retention.result import RetentionResult
    from engagelab.segments.segment import Segment

__all__ = [
    "CONFIG_NAME",
    "ENV_VAR",
    "FORMAT_VERSION",
    "Workspace",
    "WorkspaceSummary",
    "current_workspace",
    "use_workspace",
]


class Workspace(Core):
    """A folder with a Parquet event store, a SQL state database and outputs.

    Use :meth:`create` or :meth:`open` rather than the constructor. The verbs below are
    grouped by what they touch; each one documents the function it hands over to.
    """

    # ------------------------------------------------------------- the data
    def summary(self) -> WorkspaceSummary:
        """Counts of users, events and event names; the time span of the events."""
        return summary(self)

    # ------------------------------------------------------------- segments
    def as_segment(self, segment: Any) -> Segment:
        """A Segment from a Segment, a condition, its dict or JSON, or a saved name."""
        from engagelab.segments.saved import as_segment

        return as_segment(self, segment)

    def count(self, segment: Any, at: Any = None, *, engine: str = "duckdb") -> int:
        """Number of users in ``segment`` (a Segment, its dict/JSON, or a saved segment's name).

        ``at`` is the reference time of relative windows ("last 30 days"; default now);
        ``engine='spark'`` runs the same segment on the Spark engine.
        """
        from engagelab.segments.audience import count

        return count(self, segment, at, engine=engine)

    def user_ids(self, segment: Any, at: Any = None, *, engine: str = "duckdb") -> list[str]:
        """Sorted user ids of ``segment`` (on DuckDB or Spark)."""
        from engagelab.segments.audience import user_ids

        return user_ids(self, segment, at, engine=engine)

    def audience(
        self, segment: Any, at: Any = None, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """Profiles of the users in ``segment`` (``columns`` of profiles; default all)."""
        from engagelab.segments.audience import audience

        return audience(self, segment, at, columns)

    def save_segment(self, name: str, segment: Any, description: str = "") -> None:
        """Save (or replace) a segment under ``name`` in the state database."""
        from engagelab.segments.saved import save_segment

        save_segment(self, name, segment, description)

    def load_segment(self, name: str) -> Segment:
        """The saved segment called ``name``."""
        from engagelab.segments.saved import load_segment

        return load_segment(self, name)

    def segments(self) -> pd.DataFrame:
        """Saved segments: name, description, created and updated times."""
        from engagelab.segments.saved import list_segments

        return list_segments(self)

    def delete_segment(self, name: str) -> bool:
        """Delete the saved segment ``name``; True if it existed."""
        from engagelab.segments.saved import delete_segment

        return delete_segment(self, name)

    # ------------------------------------------------------------ campaigns
    def plan(
        self, campaign: Campaign | str | dict[str, Any], logical_date: Any, **options: Any
    ) -> Plan:
        """The plan of ``campaign`` for ``logical_date``: one row per qualifying user with
        decision, reason, variant and send times; also the "estimate only" dry run.
        See :func:`engagelab.campaigns.plan`."""
        from engagelab.campaigns.plan import plan

        return plan(self, self._campaign(campaign), logical_date, **options)

    def send(
        self, plan: Plan, run_key: str | None = None, provider: Any = None, **options: Any
    ) -> SendResult:
        """Enqueue a plan and deliver what is due now, effectively once (rerunnable with the
        same ``run_key``; ``clock=`` sets what "now" is). See
        :func:`engagelab.campaigns.send`."""
        from engagelab.campaigns.send import send

        return send(self, plan, run_key, provider, **options)

    def save_campaign(self, campaign: Campaign, status: str = "draft") -> None:
        """Save (or replace) a campaign spec in the state database."""
        from engagelab.campaigns.api import save_campaign

        save_campaign(self, campaign, status)

    def load_campaign(self, id: str) -> Campaign:
        """The saved campaign ``id``."""
        from engagelab.campaigns.api import load_campaign

        return load_campaign(self, id)

    def campaigns(self) -> pd.DataFrame:
        """Saved campaigns with their channel, type, status and labels."""
        from engagelab.campaigns.api import list_campaigns

        return list_campaigns(self)

    def campaign_report(self, **filters: Any) -> CampaignReport:
        """The consolidated report across campaigns (filters: channel, label, status,
        since, until, text). See :func:`engagelab.campaigns.campaign_report`."""
        from engagelab.campaigns.report import campaign_report

        return campaign_report(self, **filters)

    def preview(
        self,
        campaign: Campaign | str | dict[str, Any],
        user_id: str,
        variant: str | None = None,
        *,
        event: dict[str, Any] | None = None,
        at: Any = None,
    ) -> dict[str, Any]:
        """The real rendered message of ``campaign`` for one user.

        For triggered and inaction campaigns, templates reading ``event.*`` render the
        user's latest qualifying trigger event (before ``at``), or ``event`` when given.
        """
        from engagelab.campaigns.api import preview

        return preview(self, self._campaign(campaign), user_id, variant, event=event, at=at)

    def recommended_delay(self, did: str, then: str, **options: Any) -> dict[str, Any]:
        """Median and mean time from ``did`` to the first following ``then`` (for an
        inaction campaign's wait)."""
        from engagelab.campaigns.api import recommended_delay

        return recommended_delay(self, did, then, **options)

    def inbox(self, user_id: str, at: Any = None, **options: Any) -> InboxResult:
        """Live messages of pulled channels (in-app, app inbox, native display, web pop-up,
        exit intent) for ``user_id``, honouring TTL and display rules; fetching records an
        impression. See :func:`engagelab.delivery.inbox.inbox`."""
        from engagelab.delivery.inbox import inbox

        return inbox(self, user_id, at, **options)

    def _campaign(self, campaign: Any) -> Campaign:
        from engagelab.campaigns.spec import Campaign

        if isinstance(campaign, str):
            return self.load_campaign(campaign)
        if isinstance(campaign, dict):
            return Campaign.from_dict(campaign)
        return campaign  # type: ignore[no-any-return]

    # ---------------------------------------------------------- experiments
    def analyze(self, data: Any, experiment: Any = None, **options: Any) -> ExperimentResult:
        """Analyse an experiment: ``data`` is a DataFrame (one row per unit) or SQL text
        run on this workspace; ``experiment`` an :class:`~engagelab.experiments.Experiment`
        (or give its fields as keywords). See :func:`engagelab.experiments.analyze`."""
        from engagelab.experiments.analysis import analyze

        frame = self.sql(data) if isinstance(data, str) else data
        if experiment is not None:
            options["experiment"] = experiment
        return analyze(frame, **options)

    # ------------------------------------------------------------ retention
    def retention(self, start_event: str | None = None, return_event: str | None = None,
                  **options: Any) -> RetentionResult:  # fmt: skip
        """Cohort retention of ``start_event`` → ``return_event`` (or ``spec=RetentionSpec``).
        See :func:`engagelab.retention.retention`."""
        from engagelab.retention.engine import retention

        return retention(self, start_event, return_event, **options)

    def label_retention(self, labels: Any, return_event: str = "App Launched",
                        **options: Any) -> LabelRetention:  # fmt: skip
        """Retention of users sent messages with ``labels`` against their holdouts.
        See :func:`engagelab.retention.labels.label_retention`."""
        from engagelab.retention.labels import label_retention

        return label_retention(self, labels, return_event, **options)

    # ------------------------------------------------------------ best time
    def best_time(self, options: Any = None, **kw: Any) -> BestTimeModel:
        """Fit per-user best send times on this workspace's history.
        See :func:`engagelab.besttime.fit`."""
        from engagelab.besttime.model import fit

        return fit(self, options, **kw)

    def evaluate_best_time(self, options: Any = None, **kw: Any) -> BestTimeEvaluation:
        """Offline evaluation of best-time policies on held-out weeks.
        See :func:`engagelab.besttime.evaluate`."""
        from engagelab.besttime.evaluate import evaluate

        return evaluate(self, options, **kw)

    # ----------------------------------------------------------------- jobs
    def add_job(self, spec: JobSpec, *, replace: bool = False) -> JobSpec:
        """Register a scheduled notebook job. See :func:`engagelab.jobs.add_job`."""
        from engagelab.jobs.store import add_job

        return add_job(self, spec, replace=replace)

    def jobs(self) -> pd.DataFrame:
        """Registered jobs with their schedule and last run."""
        from engagelab.jobs.store import list_jobs

        return list_jobs(self)

    def run_job(self, name: str, logical_date: Any, params: dict[str, Any] | None = None,
                **options: Any) -> RunResult:  # fmt: skip
        """Run job ``name`` for ``logical_date`` once (see :func:`engagelab.jobs.run_job`)."""
        from engagelab.jobs.runner import run_job

        return run_job(self, name, logical_date, params, **options)

    def job_history(self, job: str | None = None, logical_date: str | None = None) -> pd.DataFrame:
        """Recorded runs of the workspace's jobs."""
        from engagelab.jobs.store import history

        return history(self, job, logical_date)


def current_workspace() -> Workspace:
    """The workspace set by :func:`use_workspace` or ``$ENGAGELAB_WORKSPACE``."""
    return Workspace.open()
