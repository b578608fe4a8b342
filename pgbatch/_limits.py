"""Every default and limit of the SQL API, as Python constants.

The source is the SQL function ``pgbatch.limits()``
(``sql/queue/functions/004_limits.sql``), which every SQL function reads;
this module mirrors it so Python code can check arguments, size error
records or pick defaults without a round trip, and
``tests/test_limits.py`` asserts that the two agree. docs/limits.md lists
them with the error each one raises. Lengths are in characters, sizes in
bytes (of the stored jsonb form for JSON values, of UTF-8 for text).

``DEFAULT_LEASE`` is also the lease of a task when none is given.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

#: ``max_attempts`` of a job enqueued without one.
DEFAULT_MAX_ATTEMPTS: Final = 20
#: Longest queue name, in characters (names are non-empty and not only whitespace).
MAX_QUEUE_NAME_LENGTH: Final = 128
#: Largest payload, in bytes of its stored jsonb form (``pgbatch.max_payload_bytes()``).
MAX_PAYLOAD_BYTES: Final = 1_048_576
#: Shortest lease of ``claim`` and ``renew_lease``.
MIN_LEASE: Final = timedelta(seconds=1)
#: Longest lease of ``claim`` and ``renew_lease``.
MAX_LEASE: Final = timedelta(days=1)
#: Lease of ``claim``, ``renew_lease`` and ``fence_claim`` (SQL and the
#: clients) and of a task, when none is given.
DEFAULT_LEASE: Final = timedelta(seconds=30)
#: How far from now ``run_at``, ``retry_at``, a requeue's ``run_at`` and the
#: backoff base and cap may reach (10 years of 365.25 days).
MAX_RUN_AT_OFFSET: Final = timedelta(seconds=315_576_000)
#: Longest retention age of ``sweep_retention`` (100 years of 365.25 days).
MAX_RETENTION: Final = timedelta(seconds=3_155_760_000)
#: Longest dedup key, in characters (well under PostgreSQL's btree entry limit).
MAX_DEDUP_KEY_LENGTH: Final = 256
#: Longest key of an ack effect's ``kv_put``, in characters.
MAX_KV_KEY_LENGTH: Final = 256
#: Largest value of an ack effect's ``kv_put``, in bytes of stored jsonb.
MAX_KV_VALUE_BYTES: Final = 1_048_576
#: Largest ``nack`` error (stored jsonb) and ``dead_letter`` reason (UTF-8).
MAX_ERROR_BYTES: Final = 65_536
#: Largest task return value (ack effects' ``return_value``), in bytes of stored jsonb:
#: a larger one is refused (``ack``: ValueTooLarge; the worker: the job is dead at once).
MAX_RESULT_BYTES: Final = 65_536
#: How many earlier attempts' errors a job keeps in ``last_error["history"]`` (newest first).
ERROR_HISTORY_LENGTH: Final = 10
#: Longest node id (``register_node``) and ``claim`` worker_id, in characters.
MAX_NODE_ID_LENGTH: Final = 200
#: Largest ``register_node`` info, in bytes of stored jsonb.
MAX_NODE_INFO_BYTES: Final = 65_536


def _seconds(value: timedelta) -> int:
    return int(value.total_seconds())


def as_sql_json() -> dict[str, int]:
    """These constants in the shape ``pgbatch.limits()`` returns them."""
    return {
        "default_max_attempts": DEFAULT_MAX_ATTEMPTS,
        "default_lease_seconds": _seconds(DEFAULT_LEASE),
        "max_queue_name_length": MAX_QUEUE_NAME_LENGTH,
        "max_payload_bytes": MAX_PAYLOAD_BYTES,
        "min_lease_seconds": _seconds(MIN_LEASE),
        "max_lease_seconds": _seconds(MAX_LEASE),
        "max_run_at_offset_seconds": _seconds(MAX_RUN_AT_OFFSET),
        "max_retention_seconds": _seconds(MAX_RETENTION),
        "max_dedup_key_length": MAX_DEDUP_KEY_LENGTH,
        "max_kv_key_length": MAX_KV_KEY_LENGTH,
        "max_kv_value_bytes": MAX_KV_VALUE_BYTES,
        "max_error_bytes": MAX_ERROR_BYTES,
        "max_result_bytes": MAX_RESULT_BYTES,
        "error_history_length": ERROR_HISTORY_LENGTH,
        "max_node_id_length": MAX_NODE_ID_LENGTH,
        "max_node_info_bytes": MAX_NODE_INFO_BYTES,
    }
