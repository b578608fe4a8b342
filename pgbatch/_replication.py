"""Whether commits wait for a standby: the check behind zero loss at a failover.

An acknowledged enqueue or ack survives the loss of the primary only if its
commit reached a standby before the client was told: synchronous replication
(``synchronous_standby_names`` set, ``synchronous_commit`` ``on``,
``remote_write`` or ``remote_apply``). A server that streams WAL to standbys
(``pg_stat_replication`` has rows) and commits without waiting for them can
lose the last acknowledged transactions when a standby is promoted
(docs/ha.md). ``ReplicationState.warning`` says so in one line: a worker logs
it as a WARNING at start (``pgbatch.worker.connections``) and ``pgbatch
status`` prints it.

``pg_stat_replication`` shows every role one row per WAL sender (the details
only to ``pg_read_all_stats``), so the check works for any login role.
``synchronous_commit`` is the session's: what the checking connection (and
every connection on the same DSN and role) commits with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import psycopg

#: ``synchronous_commit`` values whose commits wait for a synchronous standby.
WAITING_COMMITS: Final = frozenset({"on", "remote_write", "remote_apply"})

_QUERY: Final = ("select (select count(*) from pg_stat_replication),"
                 " current_setting('synchronous_standby_names'),"
                 " current_setting('synchronous_commit')")


@dataclass(frozen=True)
class ReplicationState:
    """Standbys streaming from the server, and whether commits wait for one."""

    standbys: int
    synchronous_standby_names: str
    synchronous_commit: str

    @property
    def commits_wait(self) -> bool:
        """Whether a commit returns only once a synchronous standby has it."""
        return (bool(self.synchronous_standby_names.strip())
                and self.synchronous_commit in WAITING_COMMITS)

    @property
    def warning(self) -> str | None:
        """One line when the server streams to standbys but commits do not wait; else None."""
        if self.standbys == 0 or self.commits_wait:
            return None
        why = ("synchronous_standby_names is empty" if not self.synchronous_standby_names.strip()
               else f"synchronous_commit = {self.synchronous_commit}")
        return (f"the server streams to {self.standbys} standby(s) but commits do not wait for "
                f"them ({why}): enqueues and acks acknowledged just before a failover can be "
                f"lost; set synchronous_standby_names (see docs/ha.md)")


def replication_state(conn: psycopg.Connection[Any]) -> ReplicationState:
    """The state seen from ``conn``."""
    row = conn.execute(_QUERY).fetchone()
    assert row is not None
    return ReplicationState(int(row[0]), str(row[1]), str(row[2]))


async def replication_state_async(conn: psycopg.AsyncConnection[Any]) -> ReplicationState:
    """``replication_state`` on an async connection."""
    cur = await conn.execute(_QUERY)
    row = await cur.fetchone()
    assert row is not None
    return ReplicationState(int(row[0]), str(row[1]), str(row[2]))
