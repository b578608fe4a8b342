"""What every API module shares: JSON responses of pgbatch values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from starlette.responses import Response


def to_jsonable(value: Any) -> Any:
    """``value`` with UUIDs, times and durations (seconds) made JSON-friendly, recursively."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def as_json(value: Any) -> Any:
    """``value`` with dataclasses, UUIDs, times and durations made JSON-friendly."""
    if is_dataclass(value) and not isinstance(value, type):
        # one level: pgbatch's records hold JSON values, not nested records
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return to_jsonable(value)


def ok(value: Any, status: int = 200) -> Response:
    """A JSON response of ``value`` (see :func:`as_json`)."""
    body = json.dumps(as_json(value), ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")
