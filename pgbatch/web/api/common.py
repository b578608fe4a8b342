"""What every API module shares: JSON responses of pgbatch values."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from typing import Any

from starlette.responses import Response

from pgbatch.cli.format import to_jsonable


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
