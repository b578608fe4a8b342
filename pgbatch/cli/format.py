"""Plain-text and JSON rendering for the ``pgbatch`` command line.

Tables are aligned plain text (no colours, no box drawing) so they read well
in a terminal, in a log and through ``grep``/``awk``; every listing command
also has ``--json`` for scripts. Times are shown in the local time zone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID


def table(headers: Sequence[str], rows: Iterable[Sequence[str]],
          right: Iterable[int] = ()) -> str:
    """Align ``rows`` under ``headers``; columns in ``right`` are right-aligned (numbers)."""
    body = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    align_right = set(right)

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if i in align_right else c.ljust(widths[i])
                 for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in body)])


def age(value: timedelta | None) -> str:
    """A compact duration: ``0.4s``, ``12s``, ``3m05s``, ``2h03m``, ``4d02h``; ``-`` for None."""
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, sec = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def when(value: datetime | None) -> str:
    """A timestamp in the local time zone, to the second; ``-`` for None."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with ``…`` when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def to_jsonable(value: Any) -> Any:
    """``value`` with UUIDs, datetimes and durations made JSON-friendly (recursively)."""
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


def dumps(value: Any) -> str:
    """Pretty JSON for ``--json`` output."""
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False)
