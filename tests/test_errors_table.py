"""The error table in pgbatch/_errors.py matches the SQLSTATEs raised in sql/, and
translate() maps each real error to its own class."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest

import pgbatch
from pgbatch._errors import ERRORS, PgBatchError, translate
from tests.batch_error_triggers import BATCH_TRIGGERS
from tests.helpers import claim_one, enqueue, scalar
from tests.schedule_error_triggers import SCHEDULE_TRIGGERS

Conn = psycopg.Connection[Any]

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
CODE = re.compile(r"'(PB\d{3})'")
# raised directly, or returned as a problem {sqlstate, message} that _check raises
RAISE = re.compile(r"(?:_raise\(\s*|array\[)'(PB\d{3})'")


def sql_texts(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(SQL_DIR)): p.read_text(encoding="utf-8")
            for p in sorted(folder.rglob("*.sql"))}


def test_every_code_in_sql_functions_is_in_the_error_table() -> None:
    texts = {name: text for name, text in sql_texts(SQL_DIR).items()
             if Path(name).parent.name == "functions"}
    assert texts, f"no SQL files under {SQL_DIR}/*/functions"
    unknown = {(name, code) for name, text in texts.items() for code in CODE.findall(text)
               if code not in ERRORS}
    assert unknown == set(), f"codes used in SQL but missing from ERRORS: {sorted(unknown)}"


def test_every_code_in_the_error_table_is_raised_in_sql() -> None:
    raised = {code for text in sql_texts(SQL_DIR).values() for code in RAISE.findall(text)}
    assert set(ERRORS) <= raised, f"never raised in sql/: {sorted(set(ERRORS) - raised)}"


def test_error_classes_carry_their_own_sqlstate() -> None:
    assert len(set(ERRORS.values())) == len(ERRORS)
    for code, cls in ERRORS.items():
        assert re.fullmatch(r"PB\d{3}", code)
        assert cls.sqlstate == code
        assert issubclass(cls, PgBatchError)
        assert getattr(pgbatch, cls.__name__) is cls, f"{cls.__name__} is not exported"


def _claim_lost(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    claim_one(conn, "q")
    conn.execute("select pgbatch.ack(%s, %s)", [job_id, uuid4()])


def _duplicate_id(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    enqueue(conn, "q", id_override=job_id)


def _invalid_state(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    conn.execute("select pgbatch.requeue_dead_job(%s)", [job_id])


def _job_cancelled(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    conn.execute("select pgbatch.cancel_job(%s)", [job_id])
    conn.execute("select pgbatch.renew_lease(%s, %s)", [job_id, job["claim_token"]])


def _dedup_conflict(conn: Conn) -> None:
    job_id = enqueue(conn, "q", dedup_key="k")
    job = claim_one(conn, "q")
    conn.execute("select pgbatch.dead_letter(%s, %s)", [job_id, job["claim_token"]])
    enqueue(conn, "q", dedup_key="k")
    conn.execute("select pgbatch.requeue_dead_job(%s)", [job_id])


#: A real way to make the SQL API raise each code.
TRIGGERS: dict[str, Callable[[Conn], object]] = {
    "PB001": _claim_lost,
    "PB002": _duplicate_id,
    "PB003": lambda c: c.execute("select pgbatch.cancel_job(%s)", [uuid4()]),
    "PB004": _invalid_state,
    "PB005": lambda c: c.execute("select pgbatch.enqueue('')"),
    "PB006": lambda c: c.execute("select pgbatch.enqueue('q', null::jsonb)"),
    "PB007": lambda c: c.execute("select * from pgbatch.claim('q', 0)"),
    "PB008": lambda c: c.execute("select pgbatch.ack(%s, %s, '[]')", _claimed(c)),
    "PB009": _job_cancelled,
    "PB010": _dedup_conflict,
    "PB011": lambda c: c.execute("select pgbatch.check_compat(0)"),
    "PB012": lambda c: c.execute("select pgbatch.enqueue('q', dedup_key => repeat('k', 257))"),
    "PB013": lambda c: c.execute("select pgbatch.enqueue('q', run_at => 'infinity')"),
    "PB020": lambda c: c.execute("select pgbatch.cron_next('61 * * * *', 'UTC', now())"),
    "PB021": lambda c: c.execute("select pgbatch.cron_next('* * * * *', 'Mars/Olympus', now())"),
}
TRIGGERS.update(BATCH_TRIGGERS)
TRIGGERS.update(SCHEDULE_TRIGGERS)


def _claimed(conn: Conn) -> list[Any]:
    job_id = enqueue(conn, "q")
    return [job_id, claim_one(conn, "q")["claim_token"]]


def test_every_code_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(ERRORS)


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_translate_maps_a_real_error_to_its_class(conn: Conn, code: str) -> None:
    with pytest.raises(psycopg.Error) as info:
        TRIGGERS[code](conn)
    err = info.value
    assert err.sqlstate == code
    mapped = translate(err)
    assert mapped is not None
    assert type(mapped) is ERRORS[code]
    assert mapped.sqlstate == code
    assert mapped.message == err.diag.message_primary
    assert mapped.detail == err.diag.message_detail


def test_translate_leaves_other_errors_alone(conn: Conn) -> None:
    with pytest.raises(psycopg.Error) as info:
        conn.execute("select 1 / 0")
    assert translate(info.value) is None
    assert scalar(conn, "select 1") == 1


def test_claim_lost_carries_a_detail(conn: Conn) -> None:
    with pytest.raises(psycopg.Error) as info:
        _claim_lost(conn)
    mapped = translate(info.value)
    assert mapped is not None
    assert mapped.detail
    assert "claim lost" in str(mapped)
