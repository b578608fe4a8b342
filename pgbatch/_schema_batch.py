"""SQLAlchemy Core tables of the batch engine (``sql/batch/schema/``, docs/batch.md),
part of :mod:`pgbatch.schema` (import them from there).
"""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from pgbatch._schema_base import TSTZ as _TSTZ
from pgbatch._schema_base import metadata

# -- the batch engine (sql/batch/schema/, docs/batch.md) -------------------------------

_ACTIVE = ("status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING', 'PAUSED', "
           "'AWAITING_APPROVAL', 'UNKNOWN')")

#: Job definitions registered by workers (``register_job()``).
job_definition = Table(
    "job_definition",
    metadata,
    Column("job_name", Text, primary_key=True),
    Column("fingerprint", CHAR(64), primary_key=True),
    Column("definition", JSONB, nullable=False),
    Column("registered_at", _TSTZ, nullable=False),
    Column("last_registered_at", _TSTZ, nullable=False),
)
Index("job_definition_latest", job_definition.c.job_name,
      job_definition.c.last_registered_at.desc())

#: Job instances: ``(job_name, job_key)``.
job_instance = Table(
    "job_instance",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("job_name", Text, nullable=False),
    Column("job_key", CHAR(64), nullable=False),
    Column("identifying_params", JSONB, nullable=False),
    Column("created_at", _TSTZ, nullable=False),
    UniqueConstraint("job_name", "job_key", name="job_instance_job_name_job_key_key"),
)

#: Job executions: one attempt at an instance.
job_execution = Table(
    "job_execution",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("instance_id", BigInteger,
           ForeignKey("pgbatch.job_instance.id", name="job_execution_instance_id_fkey"),
           nullable=False),
    Column("status", Text, nullable=False),
    Column("exit_code", Text, nullable=False, server_default=text("'UNKNOWN'::text")),
    Column("exit_message", Text),
    Column("params", JSONB, nullable=False),
    Column("definition_fp", CHAR(64), nullable=False),
    Column("recovery_policy", Text, nullable=False),
    Column("queue", Text, nullable=False),
    Column("queue_job_id", UUID(as_uuid=True)),
    Column("current_step", Text),
    Column("pause_reason", Text),
    Column("resume_at", _TSTZ),
    Column("stop_requested_at", _TSTZ),
    Column("pause_requested_at", _TSTZ),
    Column("lease_owner", Text),
    Column("lease_boot_id", UUID(as_uuid=True)),
    Column("lease_epoch", BigInteger, nullable=False, server_default=text("0")),
    Column("lease_expires_at", _TSTZ),
    Column("resume_count", Integer, nullable=False, server_default=text("0")),
    Column("recovery_count", Integer, nullable=False, server_default=text("0")),
    Column("handoff_count", Integer, nullable=False, server_default=text("0")),
    Column("schedule_id", Text),
    Column("fire_at", _TSTZ),
    Column("create_time", _TSTZ, nullable=False),
    Column("start_time", _TSTZ),
    Column("end_time", _TSTZ),
    Column("last_updated", _TSTZ, nullable=False),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    Column("fresh_from_step", Integer),
    CheckConstraint(
        "status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING', 'PAUSED', 'AWAITING_APPROVAL', "
        "'COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED', 'UNKNOWN')",
        name="job_execution_status_check"),
    CheckConstraint(
        "(status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED')) = (end_time is not null)",
        name="job_execution_check"),
)
Index("job_execution_one_active", job_execution.c.instance_id, unique=True,
      postgresql_where=text(_ACTIVE))
Index("job_execution_instance", job_execution.c.instance_id, job_execution.c.id.desc())
Index("job_execution_leases", job_execution.c.lease_expires_at,
      postgresql_where=text("status in ('STARTED', 'STOPPING', 'PAUSING')"))
Index("job_execution_resume_at", job_execution.c.resume_at,
      postgresql_where=text("status = 'PAUSED' and resume_at is not null"))

#: A job execution's ExecutionContext.
job_execution_context = Table(
    "job_execution_context",
    metadata,
    Column("job_execution_id", BigInteger,
           ForeignKey("pgbatch.job_execution.id",
                      name="job_execution_context_job_execution_id_fkey", ondelete="CASCADE"),
           primary_key=True),
    Column("context", JSONB, nullable=False),
)

#: Step executions: one attempt at a step inside a job execution.
step_execution = Table(
    "step_execution",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("job_execution_id", BigInteger,
           ForeignKey("pgbatch.job_execution.id", name="step_execution_job_execution_id_fkey",
                      ondelete="CASCADE"),
           nullable=False),
    Column("step_name", Text, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("exit_code", Text, nullable=False, server_default=text("'EXECUTING'::text")),
    Column("exit_message", Text),
    *[Column(name, BigInteger, nullable=False, server_default=text("0"))
      for name in ("commit_count", "read_count", "filter_count", "write_count", "read_skip_count",
                   "process_skip_count", "write_skip_count", "rollback_count")],
    Column("start_time", _TSTZ),
    Column("end_time", _TSTZ),
    Column("last_updated", _TSTZ, nullable=False),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    CheckConstraint(
        "status in ('STARTING', 'STARTED', 'PAUSED', 'COMPLETED', 'FAILED', 'STOPPED', "
        "'ABANDONED', 'UNKNOWN')",
        name="step_execution_status_check"),
    UniqueConstraint("job_execution_id", "step_name",
                     name="step_execution_job_execution_id_step_name_key"),
)

#: A step's checkpoint: ExecutionContext and committed chunk count.
step_execution_context = Table(
    "step_execution_context",
    metadata,
    Column("step_execution_id", BigInteger,
           ForeignKey("pgbatch.step_execution.id",
                      name="step_execution_context_step_execution_id_fkey", ondelete="CASCADE"),
           primary_key=True),
    Column("context", JSONB, nullable=False),
    Column("chunk_seq", BigInteger, nullable=False, server_default=text("0")),
)

#: Approval gates of job executions.
approval = Table(
    "approval",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("job_execution_id", BigInteger,
           ForeignKey("pgbatch.job_execution.id", name="approval_job_execution_id_fkey",
                      ondelete="CASCADE"),
           nullable=False),
    Column("gate_name", Text, nullable=False),
    Column("status", Text,
           CheckConstraint("status in ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED')",
                           name="approval_status_check"),
           nullable=False),
    Column("requested_at", _TSTZ, nullable=False),
    Column("expires_at", _TSTZ),
    Column("decided_by", Text),
    Column("decided_at", _TSTZ),
    Column("comment", Text),
    Column("on_timeout", Text,
           CheckConstraint("on_timeout in ('reject', 'approve')",
                           name="approval_on_timeout_check"),
           nullable=False, server_default=text("'reject'")),
    UniqueConstraint("job_execution_id", "gate_name",
                     name="approval_job_execution_id_gate_name_key"),
)
Index("approval_pending_expiry", approval.c.expires_at,
      postgresql_where=text("status = 'PENDING' and expires_at is not null"))

#: The append-only audit of every execution state change.
execution_event = Table(
    "execution_event",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("job_execution_id", BigInteger,
           ForeignKey("pgbatch.job_execution.id", name="execution_event_job_execution_id_fkey",
                      ondelete="CASCADE"),
           nullable=False),
    Column("step_execution_id", BigInteger),
    Column("at", _TSTZ, nullable=False),
    Column("kind", Text, nullable=False),
    Column("from_status", Text),
    Column("to_status", Text),
    Column("actor", Text),
    Column("request_id", Text),
    Column("detail", JSONB),
    UniqueConstraint("job_execution_id", "kind", "request_id",
                     name="execution_event_job_execution_id_kind_request_id_key"),
)
Index("execution_event_request", execution_event.c.request_id, execution_event.c.kind,
      postgresql_where=text("request_id is not null"))
