"""Checks of arguments that Python makes before any SQL runs, mirroring the SQL API's.

Only where Python must refuse first (a task declared with a bad queue, a CLI
option whose SQL call accepts any text); everything else is checked by the
SQL functions themselves. The messages are those of ``pgbatch._queue_problem``.
"""

from __future__ import annotations

from pgbatch import _limits
from pgbatch._errors import InvalidQueueName


def check_queue_name(name: object) -> str:
    """``name`` if the SQL API accepts it as a queue name, else ``InvalidQueueName``.

    Non-empty text of at most ``MAX_QUEUE_NAME_LENGTH`` characters that is not
    only whitespace (``str.isspace``).
    """
    if not isinstance(name, str) or not name:
        raise InvalidQueueName("invalid queue name: must be non-empty text")
    if len(name) > _limits.MAX_QUEUE_NAME_LENGTH:
        raise InvalidQueueName(f"invalid queue name: {len(name)} characters, at most "
                               f"{_limits.MAX_QUEUE_NAME_LENGTH} allowed")
    if name.isspace():
        raise InvalidQueueName("invalid queue name: must not be only whitespace")
    return name
