"""Property test of the whole SQL API against hostile input.

Every public function of schema ``pgbatch`` (found in ``pg_proc``: names not
starting with ``_``) is called with values drawn for each of its argument
types: NULLs, empty, whitespace-only, huge, unicode and NUL-bearing text,
``infinity`` and far timestamps and intervals, negative and huge numbers,
JSON of every shape (and malformed JSON text), arrays of the wrong shape,
and the ids and tokens of real jobs, in a database seeded with pending,
scheduled, claimed, expired, dead, done and cancelled jobs, kv entries, a
paused queue, a node and a job whose id is both live and archived (what an
older version could leave).

Each call runs in two steps, inside one transaction that is rolled back after
the example, so every example sees the same seeded database:

1. The arguments are cast to the parameter types on their own
   (``select $1::uuid, ...``). A value that is not a value of its type never
   reaches pgbatch: PostgreSQL's input functions refuse it with one of
   :data:`CAST_ERRORS`, and text PostgreSQL cannot store (NUL, U+0000) is
   refused by psycopg before sending, or by the jsonb parser (``\\u0000``):
   :func:`pgbatch._errors.translate` maps those to ``InvalidText``, the
   client's own category for them (docs/limits.md).
2. The function is called with the same arguments. It may succeed, or fail
   with a ``PB`` SQLSTATE (or one of :data:`ALLOWED_STANDARD`, which is empty:
   no standard error is expected from a pgbatch function). A refused call
   changes no row: a digest of every pgbatch table before and after is equal.
   For ``ack_ids`` and ``ack_many``, whose entries succeed or fail each on
   its own, the rows of every entry reported as not acked are unchanged.

``PGBATCH_FUZZ_EXAMPLES`` sets the number of examples per function (default
12, derandomized, so a run is repeatable and takes a few seconds); set
``PGBATCH_FUZZ_RANDOM=1`` to explore with fresh random examples.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from pgbatch._errors import InvalidText, translate
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import claim, cloned_database, enqueue, expire_lease, scalar

Conn = psycopg.Connection[Any]

#: Errors of PostgreSQL's input functions (step 1): the value is not a value of its type.
CAST_ERRORS: dict[str, str] = {
    "22P02": "invalid_text_representation: malformed uuid, integer, boolean, array (ragged"
             " or with bad bounds included) or JSON text",
    "22007": "invalid_datetime_format: malformed timestamp or interval text",
    "22008": "datetime_field_overflow: a timestamp or interval beyond PostgreSQL's range",
    "22003": "numeric_value_out_of_range: an integer beyond 32 bits",
}
#: Standard SQLSTATEs a pgbatch function may raise (step 2), with the reason. Empty:
#: every refusal has its own PB code.
ALLOWED_STANDARD: dict[str, str] = {}

EXAMPLES = int(os.environ.get("PGBATCH_FUZZ_EXAMPLES", "12"))
RANDOM = os.environ.get("PGBATCH_FUZZ_RANDOM", "") not in ("", "0")


@dataclass
class Seeded:
    """Ids and tokens of the seeded jobs, for drawing arguments that hit something."""

    ids: list[UUID] = field(default_factory=list)
    tokens: list[UUID] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Function:
    """One public SQL function: name, argument names and types, and how many have defaults."""

    name: str
    arg_names: list[str]
    arg_types: list[str]
    n_defaults: int


@pytest.fixture(scope="module")
def fuzz_db(pg_server: PgTestServer, template_db: str) -> Iterator[TestDatabase]:
    with cloned_database(pg_server, template_db, "fuzz") as database:
        yield database


def _seed(conn: Conn) -> Seeded:
    seeded = Seeded(queues=["q", "r", "p", "q" * 128])
    for i in range(6):
        enqueue(conn, "q", {"i": i}, priority=i % 3, dedup_key=f"k{i}" if i % 2 else None)
    enqueue(conn, "r", {"later": True}, run_at="2030-01-01T00:00:00Z")
    enqueue(conn, "r", max_attempts=1)
    enqueue(conn, "p")
    conn.execute("select pgbatch.pause_queue('p')")
    claimed = claim(conn, "q", 4) + claim(conn, "r", 1)
    seeded.tokens = [j["claim_token"] for j in claimed]
    done, dead, cancelled_claim, poisoned = claimed[0], claimed[1], claimed[2], claimed[3]
    conn.execute("select pgbatch.ack(%s, %s, '{\"kv_put\": {\"a\": 1, \"b\": [2]}}')",
                 [done["id"], done["claim_token"]])
    conn.execute("select pgbatch.dead_letter(%s, %s, 'bad')", [dead["id"], dead["claim_token"]])
    conn.execute("select pgbatch.cancel_job(%s)", [cancelled_claim["id"]])
    cancelled = enqueue(conn, "q")
    conn.execute("select pgbatch.cancel_job(%s)", [cancelled])
    # an id both live and archived, as an older version could leave it
    conn.execute(
        "insert into pgbatch.job_archive (id, queue, payload, priority, run_at, state, attempt,"
        " max_attempts, created_at, finished_at, result)"
        " select id, queue, payload, priority, run_at, 'done', 1, max_attempts, created_at, now(),"
        " '{\"op\": \"ack\", \"ids\": []}' from pgbatch.job where id = %s", [poisoned["id"]])
    expire_lease(conn, claimed[4]["id"])
    conn.execute("select pgbatch.register_node('n1', gen_random_uuid())")
    seeded.ids = [r[0] for r in conn.execute(
        "select id from pgbatch.job union all select id from pgbatch.job_archive").fetchall()]
    return seeded


def _functions(conn: Conn) -> list[Function]:
    """The public functions. Not the procedures: ``run_server_chunks`` runs the caller's
    own statements with the caller's rights (a statement is not input it could validate;
    tests/test_batch_server_loop.py refuses its bad arguments)."""
    rows = conn.execute(
        "select p.proname, coalesce(p.proargnames[1:p.pronargs], '{}'),"
        " array(select format_type(t, null) from unnest(p.proargtypes) t), p.pronargdefaults"
        " from pg_proc p where p.pronamespace = 'pgbatch'::regnamespace and p.proname !~ '^_'"
        " and p.prokind = 'f'"
        " order by p.proname").fetchall()
    return [Function(r[0], list(r[1]), list(r[2]), r[3]) for r in rows]


def _digest_query(conn: Conn) -> str:
    tables = [r[0] for r in conn.execute(
        "select relname from pg_class where relnamespace = 'pgbatch'::regnamespace"
        " and relkind = 'r' order by relname").fetchall()]
    parts = [sql.SQL("select {} || t::text as r from pgbatch.{} t").format(
        sql.Literal(f"{name}:"), sql.Identifier(name)) for name in tables]
    return sql.SQL("select md5(coalesce(string_agg(r, '|' order by r), '')) from ({}) x").format(
        sql.SQL(" union all ").join(parts)).as_string(conn)


# --------------------------------------------------------------------------- values

WHITESPACE = st.sampled_from([" ", "   ", "\t\n", "\u3000", "\u00a0 \u2003", "\r\n\x0b"])
HUGE_TEXT = st.sampled_from([129, 201, 257, 9_000, 70_000, 1_100_000]).map(
    lambda n: ("".join(str(uuid4()) for _ in range(n // 36 + 1)))[:n])
TEXT = st.one_of(
    st.none(), st.just(""), WHITESPACE, st.text(max_size=30), HUGE_TEXT,
    st.text(max_size=10).map(lambda s: s + "\x00" + s),
    st.sampled_from(["q", "r", "p", "n1", "a", "k1", "q" * 128, "é🙂\u202e", "pgbatch_q"]),
)
INTEGER = st.one_of(
    st.none(),
    st.sampled_from([0, 1, -1, 20, 1000, 2**31 - 1, -(2**31), 2**31, -(2**63)]),
    st.integers(-(2**31), 2**31 - 1),
).map(lambda v: None if v is None else str(v))
INTERVAL = st.one_of(
    st.none(),
    st.sampled_from(["infinity", "-infinity", "100000 years", "-100000 years",
                     "178000000 years", "0", "1 microsecond", "999 milliseconds", "1 second",
                     "30 seconds", "1 day", "1 day 1 second", "-1 day", "1 mon", "10 years",
                     "11 years", "100 years", "101 years", "1 mon -30 days", "forever"]),
    st.integers(-(10**12), 10**12).map(lambda n: f"{n} seconds"),
)
TIMESTAMP = st.one_of(
    st.none(),
    st.sampled_from(["infinity", "-infinity", "294276-12-31 23:59:59+00",
                     "4713-01-01 00:00:00+00 BC", "100000-01-01", "2000-01-01 00:00Z", "epoch",
                     "now", "2035-01-01 00:00Z", "2037-01-01 00:00Z", "1999-12-31 BC",
                     "yesterday"]),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
)
BOOLEAN = st.sampled_from([None, "true", "false", "maybe"])
BIGINT = st.one_of(
    st.none(),
    st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
).map(lambda v: None if v is None else str(v))
#: Role names (``vacuum_stats``): existing ones, unknown ones, hostile ones.
NAME = st.one_of(
    st.none(), st.sampled_from(["postgres", "pgbatch_worker", "no_such_role", "", " ", "x" * 70]),
    st.text(max_size=20).filter(lambda t: "\x00" not in t),
)


def _uuid(seeded: Seeded) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(),
        st.sampled_from(seeded.ids + seeded.tokens).map(str),
        st.uuids().map(str),
        st.sampled_from(["not-a-uuid", "", "00000000-0000-0000-0000-000000000000"]),
    )


def _array_literal(items: list[str | None]) -> str:
    def one(v: str | None) -> str:
        if v is None:
            return "NULL"
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "{" + ",".join(one(v) for v in items) + "}"


def _array(element: st.SearchStrategy[str | None]) -> st.SearchStrategy[str | None]:
    flat = st.lists(element, max_size=6)
    return st.one_of(
        st.none(),
        flat.map(_array_literal),
        st.lists(st.lists(element, min_size=2, max_size=2), min_size=1, max_size=3).map(
            lambda rows: "{" + ",".join(_array_literal(r) for r in rows) + "}"),
        st.lists(element, min_size=1, max_size=3).map(
            lambda xs: f"[2:{len(xs) + 1}]=" + _array_literal(xs)),
        st.sampled_from(["{}", "{{}}", "not an array", "{NULL}"]),
    )


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
                        st.sampled_from(["infinity", "2000-01-01", str(uuid4()), " ", ""]))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=12)


def _jsonb(seeded: Seeded, arg_name: str) -> st.SearchStrategy[str | None]:
    anything = _json_values()
    keys = st.sampled_from(["queue", "payload", "run_at", "priority", "dedup_key",
                            "max_attempts", "id", "colour"])
    request_value = st.one_of(anything, TEXT.filter(lambda t: t is None or "\x00" not in t),
                              _uuid(seeded), TIMESTAMP, INTEGER.map(
                                  lambda v: None if v is None else int(v)))
    request = st.dictionaries(keys, request_value, max_size=5)
    requests = st.lists(st.one_of(request, anything), max_size=4)
    effects = st.dictionaries(
        st.sampled_from(["enqueue", "kv_put", "kv_delete", "kv_get"]),
        st.one_of(requests, st.dictionaries(
            st.one_of(st.text(max_size=10), st.just("k" * 300)), anything, max_size=3),
            st.lists(st.one_of(st.text(max_size=5), anything), max_size=3), anything),
        max_size=3)
    entry = st.fixed_dictionaries(
        {"job_id": _uuid(seeded), "claim_token": _uuid(seeded)},
        optional={"effects": effects})
    shaped = {"requests": requests, "effects": effects, "acks": st.lists(
        st.one_of(entry, anything), max_size=4)}.get(arg_name, anything)
    big = st.sampled_from([70_000, 1_100_000]).map(lambda n: {"data": "x" * n})
    deep = st.integers(1, 300).map(lambda n: "[" * n + "]" * n)
    malformed = st.sampled_from(["{", "[1,", "{'a': 1}", "", "nul", '"\\u0000"',
                                 '{"a": "x\\u0000"}'])
    return st.one_of(
        st.none(), shaped.map(json.dumps), anything.map(json.dumps), big.map(json.dumps),
        deep, malformed)


def _strategy(seeded: Seeded, type_name: str, arg_name: str) -> st.SearchStrategy[str | None]:
    by_type: dict[str, Callable[[], st.SearchStrategy[str | None]]] = {
        "text": lambda: TEXT,
        "integer": lambda: INTEGER,
        "bigint": lambda: BIGINT,
        "name": lambda: NAME,
        "interval": lambda: INTERVAL,
        "timestamp with time zone": lambda: TIMESTAMP,
        "boolean": lambda: BOOLEAN,
        "uuid": lambda: _uuid(seeded),
        "uuid[]": lambda: _array(_uuid(seeded)),
        "text[]": lambda: _array(TEXT.filter(lambda t: t is None or "\x00" not in t)),
        "integer[]": lambda: _array(INTEGER),
        "timestamp with time zone[]": lambda: _array(TIMESTAMP),
        "jsonb": lambda: _jsonb(seeded, arg_name),
    }
    if type_name not in by_type:
        pytest.fail(f"no value strategy for SQL type {type_name!r} (argument {arg_name}): add one")
    return by_type[type_name]()


# --------------------------------------------------------------------------- the property


def _rows_by_id(conn: Conn) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for job_id, text in conn.execute(
            "select id::text, t::text from pgbatch.job t"
            " union all select id::text, t::text from pgbatch.job_archive t").fetchall():
        found.setdefault(job_id, []).append(text)
    return found


def _error_of(conn: Conn, query: sql.Composed, values: list[str | None],
              rows: list[Any] | None = None) -> psycopg.Error | None:
    """Run ``query`` in a savepoint; the error it raised (rolled back), or None."""
    try:
        with conn.transaction():
            cur = conn.execute(query, values)
            if rows is not None:
                rows.extend(cur.fetchall())
    except psycopg.Error as exc:
        return exc
    return None


def _check_call(conn: Conn, digest: str, fn: Function, values: list[str | None],
                calls: Counter[tuple[str, str]]) -> None:
    casts = sql.SQL(", ").join(
        sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(t)) for t in fn.arg_types[:len(values)])
    # results as text (a timestamp may be infinite), but outcome rows of the ack_* functions
    shape = sql.SQL("*" if fn.name in ("ack_ids", "ack_many") else "x::text")
    call = sql.SQL("select {} from pgbatch.{}({}) x").format(
        shape, sql.Identifier(fn.name), casts)
    with conn.transaction(force_rollback=True):
        conn.execute("set local statement_timeout = '20s'")
        cast_error = _error_of(conn, sql.SQL("select {}").format(casts), values) if values else None
        if cast_error is not None:
            assert (isinstance(translate(cast_error), InvalidText)
                    or cast_error.sqlstate in CAST_ERRORS), (
                f"casting {values!r} to {fn.arg_types}: {cast_error.sqlstate} {cast_error}")
            calls[fn.name, "not a value of its type"] += 1
            return
        before = scalar(conn, digest)
        by_id = _rows_by_id(conn) if fn.name in ("ack_ids", "ack_many") else {}
        rows: list[Any] = []
        error = _error_of(conn, call, values, rows)
        if error is not None:
            state = error.sqlstate or ""
            assert state.startswith("PB") or state in ALLOWED_STANDARD, (
                f"pgbatch.{fn.name}{tuple(values)} raised {state}: {error}")
            assert scalar(conn, digest) == before, f"refused pgbatch.{fn.name} changed rows"
            calls[fn.name, "refused"] += 1
            return
        calls[fn.name, "accepted"] += 1
        if by_id:
            _check_each_entry_on_its_own(conn, fn, rows, by_id)


def _check_each_entry_on_its_own(conn: Conn, fn: Function, rows: list[Any],
                                 before: dict[str, list[str]]) -> None:
    # ack_outcome: (job_id, status, error_code, message, follow_ups)
    acked = {str(r[0]) for r in rows if r[1] == "acked"}
    after = _rows_by_id(conn)
    for job_id, status, code, _message, _ids in rows:
        assert status in ("acked", "claim_lost", "not_found", "error"), status
        assert status == "acked" or (code or "").startswith("PB"), (fn.name, status, code)
        key = str(job_id)
        if status != "acked" and key not in acked:
            assert after.get(key) == before.get(key), f"{fn.name}: entry {key} ({status}) changed"


def _fuzz(conn: Conn, digest: str, seeded: Seeded, fn: Function,
          calls: Counter[tuple[str, str]]) -> None:
    """Run the property for one function (its own Hypothesis run)."""
    args = st.tuples(*(_strategy(seeded, t, n) for t, n in zip(
        fn.arg_types, fn.arg_names or [""] * len(fn.arg_types), strict=True)))
    n_required = len(fn.arg_types) - fn.n_defaults

    @settings(max_examples=EXAMPLES, derandomize=not RANDOM, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(values=args, given_args=st.integers(n_required, len(fn.arg_types)))
    def run(values: tuple[str | None, ...], given_args: int) -> None:
        _check_call(conn, digest, fn, list(values[:given_args]), calls)

    run()


def test_every_public_function_refuses_hostile_input_with_pb_codes_and_changes_nothing(
    fuzz_db: TestDatabase,
) -> None:
    setup = fuzz_db.connect()
    seeded = _seed(setup)
    functions = _functions(setup)
    assert {"enqueue", "claim", "ack", "ack_ids", "ack_many", "nack", "reap_expired",
            "cancel_job"} <= {f.name for f in functions}
    conn = fuzz_db.connect(autocommit=False)
    digest = _digest_query(conn)
    conn.commit()

    calls: Counter[tuple[str, str]] = Counter()
    for fn in functions:
        _fuzz(conn, digest, seeded, fn, calls)
    # every function was really called, and the hostile values got refusals
    called = {name for (name, outcome) in calls if outcome != "not a value of its type"}
    assert called == {f.name for f in functions}
    assert sum(n for (_, outcome), n in calls.items() if outcome == "refused") > len(functions)
    # nothing a refused or an accepted call did outlived its example
    assert scalar(conn, "select count(*) from pgbatch.job_archive where id = any(%s)",
                  [seeded.ids]) > 0
