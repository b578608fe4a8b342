"""Job parameter identity in SQL (BATCH.md §1, docs/batch.md "Identity"):
canonical_params and job_key against a Python reference implementation, and
the refusal of bad parameters."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.batch_helpers import assert_invariants, batch_state, launch, register
from tests.helpers import raises_sqlstate

Conn = psycopg.Connection[Any]


# ---- the Python reference implementation -------------------------------------------


def ref_number(d: Decimal) -> str:
    """Shortest decimal, no exponent, no trailing zeros, 0 for zero."""
    if d == 0:
        return "0"
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def ref_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no whitespace, canonical numbers."""
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                json.dumps(k, ensure_ascii=False) + ":" + ref_json(value[k]) for k in sorted(value)
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(ref_json(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return ref_number(Decimal(value))
    if isinstance(value, float):
        return ref_number(Decimal(repr(value)))
    assert isinstance(value, str)
    return json.dumps(value, ensure_ascii=False)


def ref_value(type_: str, value: Any) -> str:
    """The canonical JSON text of a typed Python value."""
    if type_ in ("str", "bool"):
        return json.dumps(value, ensure_ascii=False)
    if type_ == "int":
        return str(value)
    if type_ == "float":
        return json.dumps(ref_number(Decimal(repr(value))))
    if type_ == "decimal":
        return json.dumps(ref_number(value))
    if type_ == "date":
        return json.dumps(value.isoformat())
    if type_ == "datetime":
        u = value.astimezone(UTC)
        return json.dumps(
            f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:"
            f"{u.second:02d}.{u.microsecond:06d}Z"
        )
    if type_ == "uuid":
        return json.dumps(str(value))
    assert type_ == "json"
    return ref_json(value)


def to_spec(type_: str, value: Any, identifying: bool) -> Any:
    """The launch_job spelling of a typed value."""
    if type_ in ("date", "datetime"):
        v: Any = value.isoformat()
    elif type_ in ("uuid", "decimal"):
        v = str(value).upper() if type_ == "uuid" else str(value)
    else:
        v = value
    return {"type": type_, "value": v, "identifying": identifying}


def ref_canonical(params: dict[str, tuple[str, Any, bool]]) -> str:
    """Canonical text of the identifying parameters."""
    return (
        "{"
        + ",".join(
            json.dumps(name, ensure_ascii=False)
            + ':{"t":'
            + json.dumps(t)
            + ',"v":'
            + ref_value(t, v)
            + "}"
            for name, (t, v, ident) in sorted(params.items())
            if ident
        )
        + "}"
    )


def ref_key(params: dict[str, tuple[str, Any, bool]]) -> str:
    return hashlib.sha256(ref_canonical(params).encode()).hexdigest()


# ---- strategies ---------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
TYPED = st.one_of(
    st.tuples(st.just("str"), TEXT),
    st.tuples(st.just("int"), st.integers(-(10**30), 10**30)),
    st.tuples(st.just("float"), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(
        st.just("decimal"),
        st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
            lambda d: abs(d.adjusted()) < 100
        ),
    ),
    st.tuples(st.just("bool"), st.booleans()),
    st.tuples(st.just("date"), st.dates(date(1000, 1, 1), date(9999, 12, 31))),
    st.tuples(
        st.just("datetime"),
        st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=OFFSETS),
    ),
    st.tuples(st.just("uuid"), st.uuids()),
    st.tuples(st.just("json"), JSON_VALUES),
)
PARAMS = st.dictionaries(
    st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=8
    ),
    st.tuples(TYPED, st.booleans()).map(lambda p: (p[0][0], p[0][1], p[1])),
    max_size=5,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=PARAMS)
def test_canonical_params_and_job_key_match_the_python_reference(
    conn: Conn, params: dict[str, tuple[str, Any, bool]]
) -> None:
    spec = {name: to_spec(t, v, ident) for name, (t, v, ident) in params.items()}
    row = conn.execute(
        "select pgbatch.canonical_params(%s), pgbatch.job_key(%s)", [Jsonb(spec), Jsonb(spec)]
    ).fetchone()
    assert row is not None
    assert row[0] == ref_canonical(params)
    assert row[1] == ref_key(params)


def canonical(conn: Conn, params: Any) -> str:
    row = conn.execute("select pgbatch.canonical_params(%s)", [Jsonb(params)]).fetchone()
    assert row is not None
    return str(row[0])


def key(conn: Conn, params: Any) -> str:
    row = conn.execute("select pgbatch.job_key(%s)", [Jsonb(params)]).fetchone()
    assert row is not None
    return str(row[0])


def test_plain_values_are_identifying_and_typed_by_their_json_type(conn: Conn) -> None:
    assert canonical(conn, {"s": "x", "i": 7, "f": 1.5, "b": True, "a": [2, 1]}) == (
        '{"a":{"t":"json","v":[2,1]},"b":{"t":"bool","v":true},"f":{"t":"float","v":"1.5"},'
        '"i":{"t":"int","v":7},"s":{"t":"str","v":"x"}}'
    )
    assert canonical(conn, {}) == "{}"
    assert key(conn, {}) == hashlib.sha256(b"{}").hexdigest()


def test_normalisation(conn: Conn) -> None:
    # datetimes in any offset are one instant in UTC
    assert key(conn, {"at": {"type": "datetime", "value": "2026-03-01T10:00:00+02:00"}}) == key(
        conn, {"at": {"type": "datetime", "value": "2026-03-01T08:00Z"}}
    )
    # decimals lose trailing zeros; uuids are lowercased; int from a digit string
    assert key(conn, {"d": {"type": "decimal", "value": "1.50"}}) == key(
        conn, {"d": {"type": "decimal", "value": 1.5}}
    )
    u = uuid.uuid4()
    assert key(conn, {"u": {"type": "uuid", "value": str(u).upper()}}) == key(
        conn, {"u": {"type": "uuid", "value": str(u)}}
    )
    assert key(conn, {"n": {"type": "int", "value": "+42"}}) == key(conn, {"n": 42})
    # a changed type is another key (A1)
    assert key(conn, {"n": "1"}) != key(conn, {"n": 1})
    # non-identifying parameters do not count
    assert key(conn, {"n": 1, "x": {"value": "anything", "identifying": False}}) == key(
        conn, {"n": 1}
    )
    # json: key order does not matter
    assert key(conn, {"j": {"type": "json", "value": {"b": 1, "a": [1, 2]}}}) == key(
        conn, {"j": {"type": "json", "value": {"a": [1, 2], "b": 1}}}
    )


BAD_PARAMS: list[tuple[Any, str]] = [
    ([1, 2], "must be a JSON object"),
    ("x", "must be a JSON object"),
    ({"": 1}, "name must not be empty"),
    ({"n": None}, "null has no type"),
    ({"n": {"a": 1}}, "unknown key"),
    ({"n": {"type": "int"}}, '"value" is missing'),
    ({"n": {"type": "money", "value": 1}}, "unknown type"),
    ({"n": {"type": 3, "value": 1}}, '"type" must be a string'),
    ({"n": {"value": 1, "identifying": "yes"}}, '"identifying" must be true or false'),
    ({"n": {"type": "int", "value": 1.5}}, "not a valid int"),
    ({"n": {"type": "int", "value": "12a"}}, "not a valid int"),
    ({"n": {"type": "float", "value": "abc"}}, "not a valid float"),
    ({"n": {"type": "float", "value": "1e400"}}, "not a valid float"),
    ({"n": {"type": "decimal", "value": True}}, "not a valid decimal"),
    ({"n": {"type": "bool", "value": "true"}}, "not a valid bool"),
    ({"n": {"type": "date", "value": "2026-02-30"}}, "not a valid date"),
    ({"n": {"type": "date", "value": "01/02/2026"}}, "not a valid date"),
    ({"n": {"type": "datetime", "value": "2026-01-01T10:00:00"}}, "not a valid datetime"),
    ({"n": {"type": "datetime", "value": "2026-01-01T25:00:00Z"}}, "not a valid datetime"),
    ({"n": {"type": "uuid", "value": "not-a-uuid"}}, "not a valid uuid"),
    ({"n": {"type": "str", "value": 5}}, "not a valid str"),
]


@pytest.mark.parametrize(("params", "message"), BAD_PARAMS)
def test_bad_parameters_are_refused_and_change_nothing(
    conn: Conn, params: Any, message: str
) -> None:
    register(conn)
    before = batch_state(conn)
    with raises_sqlstate("PB040", message):
        conn.execute("select pgbatch.job_key(%s)", [Jsonb(params)])
    with raises_sqlstate("PB040", message):
        launch(conn, "j", params)
    assert batch_state(conn) == before
    assert_invariants(conn)


def test_a_launch_from_psql_and_from_python_reach_the_same_instance(conn: Conn) -> None:
    register(conn)
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    first = launch(
        conn,
        "j",
        {
            "day": {"type": "date", "value": "2026-05-01"},
            "at": {"type": "datetime", "value": at.isoformat()},
        },
    )
    row = conn.execute(
        """select x.instance_id, i.job_key from pgbatch.job_execution x
                          join pgbatch.job_instance i on i.id = x.instance_id where x.id = %s""",
        [first],
    ).fetchone()
    assert row is not None
    expected = ref_key(
        {
            "day": ("date", date(2026, 5, 1), True),
            "at": ("datetime", at.astimezone(timezone(timedelta(hours=-5))), True),
        }
    )
    assert row[1] == expected
