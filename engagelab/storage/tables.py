"""Every table of the state database, in one schema, and its version.

The state database holds what must be transactional: the manifest of the Parquet store,
saved segments, campaign specs and runs, the message ledger, jobs and their runs, the
client inbox. Each package reads and writes its own tables through SQLAlchemy Core, but
they are all declared here, so one schema version describes the whole database and
:mod:`engagelab.storage.migrations` can bring any older database forward.

Times are timezone-aware ``DateTime`` columns, except where a column says "µs": those are
UTC epoch microseconds (``BigInteger``), compared in bulk by the delivery code.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "SCHEMA_VERSION",
    "audience_syncs",
    "batches",
    "campaign_locks",
    "campaign_runs",
    "campaign_settings",
    "campaign_specs",
    "columns",
    "inbox_messages",
    "ingests",
    "job_leases",
    "job_runs",
    "jobs",
    "ledger",
    "meta",
    "metadata",
    "saved_segments",
    "throttle_buckets",
]

#: The version of the schema below; :mod:`engagelab.storage.migrations` has one step per
#: version from 1 (the first released layout) to this one.
SCHEMA_VERSION = 4

#: The metadata every table below is declared on.
metadata = sa.MetaData()

#: Key/value facts about the workspace (schema version, ...).
meta = sa.Table(
    "el_meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: The manifest of the Parquet event store: which files are live for each table.
batches = sa.Table(
    "el_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(50), nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),  # schema 1: String(200)
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # live | replaced
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("replaced_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("table_name", "fingerprint", name="uq_el_batches_fingerprint"),
)

#: The recorded type of every column of the store's tables (fixed when first seen).
columns = sa.Table(
    "el_columns",
    metadata,
    sa.Column("table_name", sa.String(50), primary_key=True),
    sa.Column("column_name", sa.String(200), primary_key=True),
    sa.Column("type", sa.String(50), nullable=False),
)

#: One row per ingestion call: what came in, what was appended, what was quarantined.
ingests = sa.Table(
    "el_ingests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(50), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),  # schema 1: String(200)
    sa.Column("batch_id", sa.Integer),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_appended", sa.BigInteger, nullable=False),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("quarantine_file", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

#: Saved segments, by name.
saved_segments = sa.Table(
    "el_segments",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# ------------------------------------------------------------------ campaigns and delivery
#: Saved campaign specs, by id.
campaign_specs = sa.Table(
    "el_campaign_specs",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: One row per campaign run key: the plan snapshot taken on its first attempt.
campaign_runs = sa.Table(
    "el_campaign_runs",
    metadata,
    sa.Column("run_key", sa.String(200), primary_key=True),
    sa.Column("campaign_id", sa.String(100), nullable=False, index=True),
    sa.Column("phase", sa.String(20), nullable=False),
    sa.Column("logical_date", sa.DateTime(timezone=True), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("snapshot", sa.LargeBinary, nullable=False),  # the plan as Parquet
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running | done
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

#: One row per message key: (queued →) claimed → handed (given to a provider without
#: idempotency) → sent / failed, or suppressed. ``owner`` is the sending process that holds
#: a claim and ``lease_us`` (µs) when its claim expires (schema 3); ``queued`` rows wait
#: for ``due_us`` and lapse at ``expires_us`` (schema 4).
ledger = sa.Table(
    "el_campaign_ledger",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("run_key", sa.String(200), nullable=False, index=True),
    sa.Column("campaign_id", sa.String(100), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("variant", sa.String(100)),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("send_at", sa.BigInteger, nullable=False),  # µs since epoch, UTC
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(40)),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("event_batch", sa.String(260)),
    sa.Column("provider_id", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("owner", sa.String(120)),
    sa.Column("lease_us", sa.BigInteger),
    # schema 4: the send queue (µs since epoch, UTC): when the message may be released,
    # the instant its TTL counts from (trigger event, else due time), and when it expires
    sa.Column("due_us", sa.BigInteger),
    sa.Column("origin_us", sa.BigInteger),
    sa.Column("expires_us", sa.BigInteger),
    sa.Index("ix_el_campaign_ledger_user", "user_id", "send_at"),
    sa.Index("ix_el_campaign_ledger_due", "status", "due_us"),
)

#: Lock rows (``caps``) taken by claim transactions that check frequency caps.
campaign_locks = sa.Table(
    "el_campaign_locks",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

#: Workspace-wide campaign settings (the global control group).
campaign_settings = sa.Table(
    "el_campaign_settings",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: One row per committed sync of a remarketing audience on one platform: the hashed rows of
#: the full membership (``rows``: zlib-compressed CSV lines, sorted, the base of the next
#: delta), the counts and the files written. Added without a schema-version bump: the
#: table is created if missing (by :func:`engagelab.delivery.audience_sync.sync_audience`
#: on first use, and by every upgrade); no existing table changes.
audience_syncs = sa.Table(
    "el_audience_syncs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("audience", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("run_key", sa.String(200), nullable=False),
    sa.Column("base_id", sa.Integer),  # the sync the deltas are against (None: the first)
    sa.Column("identifiers", sa.String(200), nullable=False),  # comma-separated
    sa.Column("members", sa.BigInteger, nullable=False),  # rows of the full file
    sa.Column("added", sa.BigInteger, nullable=False),
    sa.Column("removed", sa.BigInteger, nullable=False),
    sa.Column("excluded", sa.JSON, nullable=False),  # reason code -> users
    sa.Column("files", sa.JSON, nullable=False),  # full/add/remove -> workspace-relative path
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the rows
    sa.Column("rows", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("audience", "channel", "run_key", name="uq_el_audience_syncs_run"),
)

#: The token buckets of the dispatcher's throttles (:mod:`engagelab.delivery.throttle`),
#: one row per bucket (``campaign:<id>``, ``channel:<name>``, ``endpoint:<host:port>``),
#: shared by every dispatcher of the workspace. ``tokens`` is in units of
#: 1/300,000,000 of a message (whole numbers, so refills are exact), as of ``updated_us``
#: (µs, the dispatcher's clock); ``rate`` / ``per_seconds`` / ``burst`` record the rate
#: last applied. Added without a schema-version bump, created if missing (on first use,
#: and by every upgrade); no existing table changes.
throttle_buckets = sa.Table(
    "el_throttle_buckets",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Column("rate", sa.Integer, nullable=False),
    sa.Column("per_seconds", sa.Integer, nullable=False),
    sa.Column("burst", sa.Integer, nullable=False),
)

# ------------------------------------------------------------------ the client inbox
#: Messages waiting for the app/site to fetch them (times are UTC epoch microseconds).
inbox_messages = sa.Table(
    "el_inbox_messages",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False, index=True),
    sa.Column("channel", sa.String(50), nullable=False),
    sa.Column("campaign_id", sa.String(200), nullable=False),
    sa.Column("variant", sa.String(200)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("trigger_event", sa.String(200)),
    sa.Column("pages", sa.Text),
    sa.Column("max_impressions", sa.Integer),
    sa.Column("impressions", sa.Integer, nullable=False),
    sa.Column("available_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_seen_at", sa.BigInteger),
    sa.Column("dismissed_at", sa.BigInteger),
)

# ------------------------------------------------------------------ jobs
#: Scheduled jobs, by name.
jobs = sa.Table(
    "el_jobs_specs",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: One row per attempt of a job for a logical date.
job_runs = sa.Table(
    "el_jobs_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(100), nullable=False, index=True),
    sa.Column("logical_date", sa.String(10), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running | succeeded | <failure class>
    sa.Column("trigger", sa.String(20), nullable=False),  # cli | scheduler | api | widget
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("param_hash", sa.String(64), nullable=False),
    sa.Column("notebook_hash", sa.String(64), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("output_path", sa.Text),
    sa.Column("html_path", sa.Text),
    sa.Column("error_class", sa.String(20)),
    sa.Column("error_name", sa.Text),
    sa.Column("error_value", sa.Text),
    sa.Column("cell_index", sa.Integer),
    sa.UniqueConstraint("job", "logical_date", "attempt", name="uq_el_jobs_runs_attempt"),
)

#: Who runs a (job, logical date) right now.
job_leases = sa.Table(
    "el_jobs_leases",
    metadata,
    sa.Column("job", sa.String(100), primary_key=True),
    sa.Column("logical_date", sa.String(10), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("run_id", sa.Integer),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
)
