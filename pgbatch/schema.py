"""SQLAlchemy Core tables mirroring schema ``pgbatch`` (``sql/*/schema/*.sql``).

For read-only admin queries (job listings, dashboards, ad-hoc reports) written
with SQLAlchemy::

    from sqlalchemy import create_engine, select
    from pgbatch.schema import job

    with create_engine("postgresql+psycopg://…").connect() as conn:
        rows = conn.execute(
            select(job.c.id, job.c.queue, job.c.state)
            .where(job.c.queue == "emails")
            .order_by(job.c.priority.desc(), job.c.run_at, job.c.seq)
            .limit(50)
        ).all()

The tables are private to pgbatch: **change jobs only through the SQL
functions** (``pgbatch.enqueue``, ``pgbatch.ack``, … or the Python client),
which keep the counters, the archive, leases and NOTIFY wakeups consistent.
Writing to these tables directly can break those invariants.

These objects describe the schema; they never create it (``pgbatch migrate``
does). A test migrates a database and checks, with alembic's autogenerate
comparison and a catalog diff of ``metadata.create_all``, that this module
matches it: columns, types, nullability, server defaults, identity columns,
primary keys, check constraints and indexes (partial ones included).
``pgbatch.alembic_version`` (alembic's version table) and the composite types
returned by functions (``claimed_job``, ``ack_outcome``, ``queue_stat``,
``schedule_info``, ``schedule_fire_info``) are
not tables of pgbatch's model and are not listed here.
"""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INTERVAL, JSONB, UUID

from pgbatch._schema_base import SCHEMA, TSTZ, metadata
from pgbatch._schema_batch import (
    approval,
    execution_event,
    job_definition,
    job_execution,
    job_execution_context,
    job_instance,
    step_execution,
    step_execution_context,
)

__all__ = [
    "SCHEMA",
    "approval",
    "execution_event",
    "function_access",
    "job",
    "job_archive",
    "job_definition",
    "job_execution",
    "job_execution_context",
    "job_instance",
    "job_request",
    "kv",
    "leader",
    "meta",
    "metadata",
    "node",
    "queue",
    "queue_count",
    "schedule",
    "schedule_fire",
    "step_execution",
    "step_execution_context",
    "task_registry",
]

_TSTZ = TSTZ

#: Schema metadata (``schema_compat``: the breaking-change level of the schema).
meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

#: One row per queue that was ever used, paused or configured.
queue = Table(
    "queue",
    metadata,
    Column("name", Text, primary_key=True),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("notify", Boolean, nullable=False, server_default=text("true")),
    Column("announced_until", _TSTZ, nullable=False, server_default=func.now()),
    Column("created_at", _TSTZ, nullable=False, server_default=func.now()),
)

#: Live jobs (pending and claimed). Settled jobs move to :data:`job_archive`.
job = Table(
    "job",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    # Enqueue order, the last claim-order tie-breaker.
    Column("seq", BigInteger, Identity(always=True), nullable=False),
    Column("queue", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("run_at", _TSTZ, nullable=False),
    Column(
        "state",
        Text,
        CheckConstraint("state in ('pending', 'claimed')", name="job_state_check"),
        nullable=False,
        server_default=text("'pending'::text"),
    ),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=False),
    Column("dedup_key", Text),
    Column("created_at", _TSTZ, nullable=False),
    Column("claim_token", UUID(as_uuid=True)),
    Column("claimed_by", Text),
    Column("claimed_at", _TSTZ),
    Column("lease_expires_at", _TSTZ),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("last_error", JSONB),
    Column("settled_token", UUID(as_uuid=True)),
    Column("settled_result", JSONB),
    CheckConstraint("(state = 'claimed') = (claim_token is not null)", name="job_check"),
    postgresql_with={"fillfactor": "80", "vacuum_truncate": "false"},
)
Index(
    "job_claim_idx",
    job.c.queue,
    job.c.priority.desc(),
    job.c.run_at,
    job.c.seq,
    postgresql_where=text("state = 'pending'"),
)
Index("job_lease_idx", job.c.lease_expires_at, postgresql_where=text("state = 'claimed'"))
Index(
    "job_dedup_idx",
    job.c.queue,
    job.c.dedup_key,
    unique=True,
    postgresql_where=text("dedup_key is not null"),
)

#: Settled jobs (done, dead, cancelled) kept until ``sweep_retention()``.
job_archive = Table(
    "job_archive",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("queue", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("run_at", _TSTZ, nullable=False),
    Column(
        "state",
        Text,
        CheckConstraint("state in ('done', 'dead', 'cancelled')", name="job_archive_state_check"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("dedup_key", Text),
    Column("created_at", _TSTZ, nullable=False),
    Column("finished_at", _TSTZ, nullable=False),
    Column("claim_token", UUID(as_uuid=True)),
    Column("claimed_by", Text),
    Column("last_error", JSONB),
    Column("result", JSONB),
    # The job's enqueue order (job.seq), copied when archived; 0 for older records.
    Column("seq", BigInteger, nullable=False, server_default=text("0")),
)
Index("job_archive_rare_listing_idx", job_archive.c.state, job_archive.c.created_at,
      job_archive.c.seq, job_archive.c.id, postgresql_where=job_archive.c.state != "done")
Index("job_archive_rare_queue_listing_idx", job_archive.c.queue, job_archive.c.state,
      job_archive.c.created_at, job_archive.c.seq, job_archive.c.id,
      postgresql_where=job_archive.c.state != "done")
Index("job_archive_listing_idx", job_archive.c.created_at, job_archive.c.seq, job_archive.c.id)

#: Append-only per-queue counter deltas of archived jobs (summed by ``queue_stats()``).
queue_count = Table(
    "queue_count",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("queue", Text, nullable=False),
    Column("done", BigInteger, nullable=False, server_default=text("0")),
    Column("dead", BigInteger, nullable=False, server_default=text("0")),
    Column("cancelled", BigInteger, nullable=False, server_default=text("0")),
)
Index("queue_count_queue_idx", queue_count.c.queue)

#: Key/value store written by ack effects, read with ``pgbatch.kv_get()``.
kv = Table(
    "kv",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", JSONB, nullable=False),
    Column("updated_at", _TSTZ, nullable=False, server_default=func.now()),
)

#: Operator requests on jobs made with a ``request_id`` (``requeue_dead_job``), for retries.
job_request = Table(
    "job_request",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("request_id", UUID(as_uuid=True), primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("requested_at", _TSTZ, nullable=False),
)
Index("job_request_requested_at_idx", job_request.c.requested_at)

#: Worker node registry (``register_node()`` / ``heartbeat_node()``).
node = Table(
    "node",
    metadata,
    Column("node_id", Text, primary_key=True),
    Column("boot_id", UUID(as_uuid=True), nullable=False),
    Column("started_at", _TSTZ, nullable=False),
    Column("heartbeat_at", _TSTZ, nullable=False),
    Column("info", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)

#: Which group role may execute each public SQL function (``pgbatch._apply_privileges()``).
function_access = Table(
    "function_access",
    metadata,
    Column("function_name", Text, primary_key=True),
    Column("granted_to", Text, nullable=False),
    Column("security_definer", Boolean, nullable=False, server_default=text("true")),
    Column("viewer", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint("granted_to in ('producer', 'worker', 'admin')",
                    name="function_access_granted_to_check"),
    CheckConstraint("not viewer or granted_to in ('producer', 'admin')",
                    name="function_access_viewer_only_reads"),
)

#: Leadership leases by database time (``try_lead()`` / ``resign_lead()``), one row per scope.
leader = Table(
    "leader",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("node_id", Text, nullable=False),
    Column("boot_id", UUID(as_uuid=True), nullable=False),
    Column("term", BigInteger, nullable=False),
    Column("acquired_at", _TSTZ, nullable=False),
    Column("renewed_at", _TSTZ, nullable=False),
    Column("lease_expires_at", _TSTZ, nullable=False),
)

#: The options of the tasks workers have (``register_tasks()``; read by ``enqueue_task()``).
task_registry = Table(
    "task_registry",
    metadata,
    Column("name", Text, primary_key=True),
    Column("queue", Text, nullable=False),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=False),
    Column("options", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("registered_by", Text, nullable=False),
    Column("registered_at", _TSTZ, nullable=False, server_default=func.now()),
)

#: Persisted schedules (docs/schedules.md); change them only through the
#: scheduler's SQL functions (``create_schedule``, ``pause_schedule``, ...).
schedule = Table(
    "schedule",
    metadata,
    Column("id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("cron_expr", Text),
    Column("tz", Text, nullable=False, server_default=text("'UTC'::text")),
    Column("every", INTERVAL),
    Column("anchor", _TSTZ),
    Column("once_at", _TSTZ),
    Column("target", Text, nullable=False),
    Column("queue", Text),
    Column("payload", JSONB),
    Column("job_name", Text),
    Column("params", JSONB),
    Column("misfire_threshold", INTERVAL, nullable=False,
           server_default=text("'00:01:00'::interval")),
    Column("catchup_window", INTERVAL),
    Column("overlap_policy", Text, nullable=False, server_default=text("'allow'::text")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("paused_at", _TSTZ),
    Column("effective_from", _TSTZ, nullable=False),
    Column("last_fire_at", _TSTZ),
    Column("next_due_at", _TSTZ),
    Column("coalesced_total", BigInteger, nullable=False, server_default=text("0")),
    Column("last_outcome", Text),
    Column("last_decided_at", _TSTZ),
    Column("definition_hash", CHAR(64), nullable=False),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", _TSTZ, nullable=False),
    Column("updated_at", _TSTZ, nullable=False),
    CheckConstraint("kind in ('cron', 'interval', 'once', 'manual')", name="schedule_kind_check"),
    CheckConstraint("target in ('queue', 'batch')", name="schedule_target_check"),
    CheckConstraint("overlap_policy in ('allow', 'skip', 'queue')",
                    name="schedule_overlap_policy_check"),
    CheckConstraint("(kind = 'cron') = (cron_expr is not null)", name="schedule_cron_check"),
    CheckConstraint("(kind = 'interval') = (every is not null and anchor is not null)",
                    name="schedule_interval_check"),
    CheckConstraint("(kind = 'once') = (once_at is not null)", name="schedule_once_check"),
    CheckConstraint("(target = 'queue') = (queue is not null and payload is not null)",
                    name="schedule_queue_check"),
    CheckConstraint("(target = 'batch') = (job_name is not null and params is not null)",
                    name="schedule_batch_check"),
)
Index("schedule_due", schedule.c.next_due_at, postgresql_where=text("enabled"))

#: The fire ledger: one row per decided fire of a schedule.
schedule_fire = Table(
    "schedule_fire",
    metadata,
    Column("schedule_id", Text,
           ForeignKey("pgbatch.schedule.id", name="schedule_fire_schedule_id_fkey",
                      ondelete="CASCADE"),
           primary_key=True),
    Column("source", Text, primary_key=True),
    Column("fire_at", _TSTZ, primary_key=True),
    Column("outcome", Text, nullable=False),
    Column("coalesced_count", Integer, nullable=False, server_default=text("0")),
    Column("coalesced_capped", Boolean, nullable=False, server_default=text("false")),
    Column("job_id", UUID(as_uuid=True)),
    Column("job_execution_id", BigInteger),
    Column("error", Text),
    Column("request_id", Text),
    Column("node_id", Text),
    Column("decided_at", _TSTZ, nullable=False),
    CheckConstraint("source in ('schedule', 'manual', 'backfill')",
                    name="schedule_fire_source_check"),
    CheckConstraint("outcome in ('fired', 'skipped_late', 'skipped_overlap', 'failed')",
                    name="schedule_fire_outcome_check"),
)
Index("schedule_fire_request", schedule_fire.c.schedule_id, schedule_fire.c.request_id,
      unique=True, postgresql_where=text("request_id is not null"))
Index("schedule_fire_history", schedule_fire.c.schedule_id, schedule_fire.c.decided_at.desc())
