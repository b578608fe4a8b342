"""Reading request parameters the way the SQL API expects them, for pages and API alike.

Malformed input is refused here with the library's own errors (so the API
answers 400 with the PB code, and nothing reaches the database): a job id
that is not a UUID is ``InvalidArgument`` (PB007), a bad queue name
``InvalidQueueName`` (PB005). Everything else is checked by the SQL function
it is passed to.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Final
from uuid import UUID

from starlette.requests import Request

from pgbatch import _checks
from pgbatch._errors import InvalidArgument
from pgbatch._types import JOB_STATES, JobCursor
from pgbatch.web.csrf import REQUEST_STATE

#: Page size when none is asked for, and the largest the web allows.
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
#: Longest Idempotency-Key accepted.
MAX_IDEMPOTENCY_KEY: Final = 200
#: The namespace of request ids derived from Idempotency-Key headers.
IDEMPOTENCY_NAMESPACE: Final = UUID("6b1c7c5e-8d0e-4f57-9a51-8c0f6f0b7a21")


def job_id(text: str) -> UUID:
    """A job id from a path or form; ``InvalidArgument`` when it is not a UUID."""
    try:
        return UUID(text)
    except ValueError:
        raise InvalidArgument(f"invalid job id: {text[:80]!r} is not a UUID") from None


def queue(text: str | None) -> str | None:
    """A queue filter: None or empty for every queue, else a name the SQL API accepts."""
    if text is None or text == "":
        return None
    return _checks.check_queue_name(text)


def state(text: str | None) -> str | None:
    """A state filter: None or empty for all, else one of ``JOB_STATES``."""
    if text is None or text == "":
        return None
    if text not in JOB_STATES:
        raise InvalidArgument(f"invalid state: {text[:40]!r}, must be one of "
                              f"{', '.join(JOB_STATES)}")
    return text


def time(name: str, text: str | None) -> datetime | None:
    """An ISO 8601 time (no offset: UTC), or None when empty."""
    if text is None or text == "":
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"invalid {name}: {text[:60]!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        from datetime import UTC  # noqa: PLC0415

        value = value.replace(tzinfo=UTC)
    return value


def limit(text: str | None) -> int:
    """A page size, 1 to ``MAX_LIMIT`` (default ``DEFAULT_LIMIT``)."""
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid limit: {text[:20]!r} is not an integer") from None
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidArgument(f"invalid limit: {value}, must be 1 to {MAX_LIMIT}")
    return value


def encode_cursor(cursor: JobCursor) -> str:
    """An opaque page cursor (the last row's created_at, seq and id)."""
    raw = f"{cursor.created_at.isoformat()}|{cursor.seq}|{cursor.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> JobCursor | None:
    """The cursor of :func:`encode_cursor`; ``InvalidArgument`` when malformed."""
    if text is None or text == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        at, seq, ident = raw.split("|")
        return JobCursor(datetime.fromisoformat(at), int(seq), UUID(ident))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("invalid cursor: pass back the next_cursor of a listing") from None


def request_id(request: Request, scope: str) -> UUID | None:
    """The request id an ``Idempotency-Key`` header stands for, None without one.

    The same key for the same ``scope`` (the action and its target, e.g.
    ``"requeue:<job id>"``) always gives the same UUID, so a retried request
    repeats the same operator call; a key that is already a UUID is used
    as is (for scope-free request ids, pass ``scope=""``). Without the header,
    a dashboard form's request key (a random value per rendered form, see
    :mod:`pgbatch.web.csrf`) is the key: the same form sent twice (a double
    click, a browser's resubmit) repeats the first call.
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        key = request.scope.get("state", {}).get(REQUEST_STATE)
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"invalid Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} "
                              "characters, not blank")
    if not scope:
        try:
            return UUID(key)
        except ValueError:
            pass
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{scope}\x00{key}")
