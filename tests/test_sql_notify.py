"""NOTIFY wakeups: one notification per queue per transaction carrying the ready
count (or a due-time hint), channel names that are safe for any queue name."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.conftest import TestDatabase
from tests.helpers import (
    claim_one,
    collect_notifies,
    db_now,
    enqueue,
    expire_lease,
    listen,
    scalar,
    set_clock,
)

Conn = psycopg.Connection[Any]


class Wire:
    """A listener on queue ``a``'s channel and an autocommit sender connection."""

    def __init__(self, db: TestDatabase, queue: str = "a") -> None:
        self.sender = db.connect()
        self.listener = db.connect()
        self.channel = str(scalar(self.sender, "select pgbatch.channel_name(%s)", [queue]))
        listen(self.listener, self.channel)

    def received(self) -> list[str]:
        """Everything delivered on the channel since the last call."""
        return collect_notifies(self.listener, self.sender, self.channel)


@pytest.fixture
def wire(db: TestDatabase) -> Wire:
    return Wire(db)


def test_single_enqueue_notifies_one(wire: Wire) -> None:
    enqueue(wire.sender, "a")
    assert wire.received() == ["1"]


def test_enqueue_many_of_100_sends_one_notification(wire: Wire) -> None:
    requests = [{"queue": "a", "payload": {"i": i}} for i in range(100)]
    requests += [{"queue": "b"} for _ in range(7)]
    wire.sender.execute("select pgbatch.enqueue_many(%s)", [json.dumps(requests)])
    assert wire.received() == ["100"]


def test_enqueue_many_counts_only_ready_jobs_and_hints_the_earliest_due(wire: Wire) -> None:
    now = db_now(wire.sender)
    soon = now + timedelta(minutes=5)
    requests = [{"queue": "a"}, {"queue": "a"},
                {"queue": "a", "run_at": (now + timedelta(hours=1)).isoformat()},
                {"queue": "a", "run_at": soon.isoformat()},
                {"queue": "a", "dedup_key": "k"}, {"queue": "a", "dedup_key": "k"}]
    wire.sender.execute("select pgbatch.enqueue_many(%s)", [json.dumps(requests)])
    assert wire.received() == ["3", f"@{int(soon.timestamp() * 1000)}"]


def test_dedup_hit_sends_nothing(wire: Wire) -> None:
    enqueue(wire.sender, "a", dedup_key="k")
    assert wire.received() == ["1"]
    enqueue(wire.sender, "a", dedup_key="k")
    assert wire.received() == []


def test_ack_effect_follow_ups_notify_their_count(wire: Wire) -> None:
    job_id = enqueue(wire.sender, "work")
    job = claim_one(wire.sender, "work")
    effects = {"enqueue": [{"queue": "a"}, {"queue": "a"}, {"queue": "a"}, {"queue": "b"}]}
    wire.sender.execute("select pgbatch.ack(%s, %s, %s)",
                        [job_id, job["claim_token"], json.dumps(effects)])
    assert wire.received() == ["3"]


def test_other_queues_do_not_notify_this_channel(wire: Wire) -> None:
    enqueue(wire.sender, "b")
    enqueue(wire.sender, "A")
    wire.sender.execute("select pgbatch.enqueue_many('[{\"queue\": \"b\"}, {\"queue\": \"a \"}]')")
    assert wire.received() == []


def test_rolled_back_enqueue_sends_nothing(db: TestDatabase, wire: Wire) -> None:
    tx = db.connect(autocommit=False)
    enqueue(tx, "a")
    tx.execute("select pgbatch.enqueue_many('[{\"queue\": \"a\"}]')")
    tx.rollback()
    assert wire.received() == []
    assert scalar(wire.sender, "select count(*) from pgbatch.job") == 0


def test_committed_transaction_with_two_enqueues_notifies_both(db: TestDatabase,
                                                             wire: Wire) -> None:
    tx = db.connect(autocommit=False)
    enqueue(tx, "a")
    enqueue(tx, "a")
    assert wire.received() == [], "notified before commit"
    tx.commit()
    got = wire.received()
    assert sum(int(p.split("/")[0]) for p in got) == 2, got


def test_future_run_at_sends_a_due_time_hint(wire: Wire) -> None:
    due = db_now(wire.sender).replace(microsecond=123000) + timedelta(minutes=10)
    enqueue(wire.sender, "a", run_at=due)
    assert wire.received() == [f"@{int(due.timestamp() * 1000)}"]


def test_nack_with_retry_now_notifies_and_backoff_sends_hint(wire: Wire) -> None:
    job_id = enqueue(wire.sender, "a", max_attempts=5)
    assert wire.received() == ["1"]
    job = claim_one(wire.sender, "a")
    wire.sender.execute("select pgbatch.nack(%s, %s, retry_at => pgbatch.now())",
                        [job_id, job["claim_token"]])
    assert wire.received() == ["1"]
    job = claim_one(wire.sender, "a")
    wire.sender.execute("select pgbatch.nack(%s, %s)", [job_id, job["claim_token"]])
    [hint] = wire.received()
    assert re.fullmatch(r"@\d+", hint)


def test_reap_and_resume_announce_ready_jobs(wire: Wire) -> None:
    enqueue(wire.sender, "a")
    enqueue(wire.sender, "a")
    assert wire.received() == ["1", "1"]
    claim_one(wire.sender, "a")
    claim_one(wire.sender, "a")
    expire_lease(wire.sender)
    assert scalar(wire.sender, "select pgbatch.reap_expired()") == 2
    assert wire.received() == ["2"]
    wire.sender.execute("select pgbatch.pause_queue('a')")
    wire.sender.execute("select pgbatch.resume_queue('a')")
    assert wire.received() == ["2"]


def test_announce_due_announces_jobs_that_became_due(wire: Wire) -> None:
    now = db_now(wire.sender)
    for minutes in (1, 2, 30):
        enqueue(wire.sender, "a", run_at=now + timedelta(minutes=minutes))
    assert len(wire.received()) == 3
    set_clock(wire.sender, now + timedelta(minutes=5))
    assert scalar(wire.sender, "select pgbatch.announce_due()") == 2
    assert wire.received() == ["2"]
    assert scalar(wire.sender, "select pgbatch.announce_due()") == 0
    assert wire.received() == []


def test_announce_due_does_not_repeat_jobs_announced_at_enqueue(wire: Wire) -> None:
    now = db_now(wire.sender)
    enqueue(wire.sender, "a")  # creates the queue (and its announcement watermark)
    set_clock(wire.sender, now + timedelta(minutes=1))
    enqueue(wire.sender, "a")  # claimable at once: announced now
    assert wire.received() == ["1", "1"]
    set_clock(wire.sender, now + timedelta(minutes=5))
    assert scalar(wire.sender, "select pgbatch.announce_due()") == 0
    assert wire.received() == []


def test_set_queue_notify_off_silences_the_queue(wire: Wire) -> None:
    wire.sender.execute("select pgbatch.set_queue_notify('a', false)")
    enqueue(wire.sender, "a")
    wire.sender.execute("select pgbatch.enqueue_many('[{\"queue\": \"a\"}, {\"queue\": \"a\"}]')")
    enqueue(wire.sender, "a", run_at=db_now(wire.sender) + timedelta(hours=1))
    assert wire.received() == []
    wire.sender.execute("select pgbatch.set_queue_notify('a', true)")
    enqueue(wire.sender, "a")
    assert wire.received() == ["1"]


QUEUE_NAMES = [
    "emails", "EMAILS", "Emails", "e-mails", "e.mails", "e_mails", "e mails", "emails ",
    "it's", 'say "hi"', "semi;colon -- drop", "back\\slash", "ünïcødé", "名前キュー",
    "🚀" * 128, "x" * 128, "x" * 127 + "y", "a" * 22 + "b", "a" * 22 + "c", "_", "0",
    "pgbatch_emails", "tab\there", "new\nline",
]


def test_channel_names_are_safe_short_and_distinct(conn: Conn) -> None:
    rows = conn.execute("select q, pgbatch.channel_name(q) from unnest(%s::text[]) q",
                        [QUEUE_NAMES]).fetchall()
    channels = dict(rows)
    assert len(channels) == len(QUEUE_NAMES)
    for queue, channel in channels.items():
        assert len(channel.encode()) <= 63, (queue, channel)
        assert re.fullmatch(r"pgbatch_[a-z0-9_]*_[0-9a-f]{32}", channel), (queue, channel)
    assert len(set(channels.values())) == len(QUEUE_NAMES), "two queues share a channel"
    again = scalar(conn, "select pgbatch.channel_name(%s)", ["emails"])
    assert again == channels["emails"]
    assert channels["emails"].startswith("pgbatch_emails_")


@pytest.mark.parametrize("queue", ["it's", 'say "hi"', "名前キュー", "🚀" * 128, "x" * 128,
                                   "e mails"])
def test_listen_on_the_channel_of_any_queue_name_works(db: TestDatabase, queue: str) -> None:
    w = Wire(db, queue)
    enqueue(w.sender, queue)
    assert w.received() == ["1"]
    # a psql user can LISTEN on it without quoting, too
    plain = db.connect()
    plain.execute(f"LISTEN {w.channel}")
    enqueue(w.sender, queue)
    got = collect_notifies(plain, w.sender, w.channel)
    assert got == ["1"]
