"""The ids ``enqueue_many`` mints in the client (``_enqueue_ops.new_job_ids``): valid
version-7 UUIDs, unique and ordered as the requests, and the ids the jobs get; a
request's own id is kept; with dedup keys the ids come from the server's answer."""

from __future__ import annotations

import pickle
from uuid import UUID, uuid4

import psycopg

from pgbatch import EnqueueRequest
from pgbatch._enqueue_ops import ids_for, new_job_ids
from tests.conftest import TestDatabase
from tests.helpers import open_client, scalar


def test_minted_ids_are_ordered_unique_version_7_uuids() -> None:
    first = new_job_ids(1000)
    second = new_job_ids(1000)
    assert len(set(first) | set(second)) == 2000
    assert first == sorted(first)
    for u in first[:3] + second[-3:]:
        assert u.version == 7
        assert u.variant == "specified in RFC 4122"
        assert UUID(str(u)) == u
        assert hash(UUID(str(u))) == hash(u)
        assert pickle.loads(pickle.dumps(u)) == u  # noqa: S301 - our own bytes
    assert new_job_ids(0) == []


def test_ids_for_keeps_the_requests_own_ids() -> None:
    own = uuid4()
    ids = ids_for([EnqueueRequest("q"), EnqueueRequest("q", id=own), EnqueueRequest("q")])
    assert ids[1] == own
    assert ids[0] != ids[2]
    assert ids[0].version == ids[2].version == 7


def test_enqueue_many_returns_the_ids_the_jobs_got(db: TestDatabase) -> None:
    own = uuid4()
    requests = [EnqueueRequest("ids", {"i": i}) for i in range(50)]
    requests[7] = EnqueueRequest("ids", {"i": 7}, id=own)
    with open_client(db.dsn) as client:
        ids = client.enqueue_many(requests)
    assert ids[7] == own
    assert len(set(ids)) == 50
    with psycopg.connect(db.dsn) as conn:
        rows = scalar(conn, "select array_agg(id order by (payload->>'i')::int) from pgbatch.job")
    assert list(rows) == ids


def test_with_dedup_keys_the_ids_are_the_servers(db: TestDatabase) -> None:
    with open_client(db.dsn) as client:
        first = client.enqueue_many([EnqueueRequest("ids", dedup_key="k")])[0]
        again = client.enqueue_many([EnqueueRequest("ids", dedup_key="k"),
                                     EnqueueRequest("ids", dedup_key="k"),
                                     EnqueueRequest("ids")])
    assert again[:2] == [first, first]
    assert again[2] != first
    with psycopg.connect(db.dsn) as conn:
        assert scalar(conn, "select count(*) from pgbatch.job") == 2
