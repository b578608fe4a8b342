"""Fit what the worker records to the SQL API's limits, so recording it cannot fail.

``nack`` rejects an error larger than ``MAX_ERROR_BYTES`` (stored jsonb) and
``dead_letter`` a reason longer than that (UTF-8). A task's traceback has no
such bound, so the settler passes every error and reason through
``bounded_error`` / ``bounded_reason`` first: a text that is too long keeps
its head and its tail (where a traceback names the exception) around a
marker saying how much was cut.
"""

from __future__ import annotations

import json
from typing import Final

from pgbatch import _limits
from pgbatch._types import Json

#: Bytes of JSON text an error may take: half the limit, as jsonb's own
#: overhead (entry headers, alignment) can exceed that of the text form.
ERROR_TEXT_BUDGET: Final = _limits.MAX_ERROR_BYTES // 2
#: The smallest part of a string value that a cut keeps.
MIN_KEPT: Final = 256
_MARK: Final = "\n[... {} bytes cut ...]\n"


def cut_text(text: str, max_bytes: int) -> str:
    """``text`` if its UTF-8 fits ``max_bytes``, else its head and tail around a cut marker."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    keep = max(max_bytes - len(_MARK.format(len(data)).encode()), 0)
    head = data[:keep - keep // 2].decode(errors="ignore")
    tail = data[len(data) - keep // 2:].decode(errors="ignore") if keep // 2 else ""
    cut = len(data) - len(head.encode()) - len(tail.encode())
    return head + _MARK.format(cut) + tail


def _json_size(value: Json) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def bounded_error(error: Json) -> Json:
    """``error`` cut to fit ``nack``'s limit (unchanged when it already fits).

    An object's longest string values are cut first; anything else that is
    too large (deep structures, a huge scalar) becomes
    ``{"type", "message"}`` with the cut JSON text as the message.
    """
    if _json_size(error) <= ERROR_TEXT_BUDGET:
        return error
    if isinstance(error, dict):
        out = dict(error)
        for key in sorted((k for k, v in out.items() if isinstance(v, str)),
                          key=lambda k: -len(str(out[k]))):
            excess = _json_size(out) - ERROR_TEXT_BUDGET
            if excess <= 0:
                return out
            text = str(out[key])
            out[key] = cut_text(text, max(len(text.encode()) - excess - 64, MIN_KEPT))
        if _json_size(out) <= ERROR_TEXT_BUDGET:
            return out
        kind = error.get("type")
        return {"type": kind if isinstance(kind, str) else "Error",
                "message": cut_text(json.dumps(error), ERROR_TEXT_BUDGET // 2)}
    return {"type": "Error", "message": cut_text(json.dumps(error), ERROR_TEXT_BUDGET // 2)}


def bounded_reason(reason: str | None) -> str | None:
    """A dead-letter reason cut to fit ``dead_letter``'s limit."""
    return None if reason is None else cut_text(reason, _limits.MAX_ERROR_BYTES)
