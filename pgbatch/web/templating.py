"""Server-rendered pages: one Jinja2 environment with autoescape always on.

Templates live in ``pgbatch/web/templates/`` and extend ``base.html``. Every
value is escaped when rendered (payloads, errors, queue names come from
users); nothing is marked safe except what this module builds itself.
Globals every template has: ``path(name, **params)`` (a route's path under
the app's root path), ``static(file)``, ``csrf_field()`` (the hidden form
field, see :mod:`pgbatch.web.csrf`), ``principal`` and ``read_only``
(whether action buttons are shown), ``pretty(value)`` (indented JSON) and
``ago(td)`` (a short duration).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from pgbatch.web import csrf
from pgbatch.web.api.common import to_jsonable

TEMPLATES: Final = Path(__file__).parent / "templates"

ENV: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its file name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def pretty(value: Any) -> str:
    """Indented JSON of a payload, result or error (escaped when rendered)."""
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False, sort_keys=True)


def ago(value: timedelta | None) -> str:
    """``1h 02m``, ``3m 05s``, ``12.3s``; ``-`` for None."""
    if value is None:
        return "-"
    s = value.total_seconds()
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m"
    return f"{h // 24}d {h % 24}h"


def when(value: datetime | None) -> str:
    """An ISO time to the second in UTC, ``-`` for None."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


ENV.filters["pretty"] = pretty
ENV.filters["ago"] = ago
ENV.filters["when"] = when


def path_for(request: Request, name: str, **params: Any) -> str:
    """The path of route ``name`` under the root path (``/prefix/jobs/<id>``).

    Parameter values are percent-encoded (a queue name may hold ``/``, ``?`` or ``#``).
    """
    root = request.scope.get("root_path", "")
    url = request.app.url_path_for(name, **{k: quote(str(v), safe="")
                                            for k, v in params.items()})
    return f"{root}{url}"


def context(request: Request) -> dict[str, Any]:
    """The globals of every page."""
    config = request.app.state.config
    principal = request.scope.get("state", {}).get("principal")
    root = request.scope.get("root_path", "")

    def csrf_field() -> Markup:
        token = csrf.token_for(request, config)
        return Markup('<input type="hidden" name="{}" value="{}">'
                      '<input type="hidden" name="{}" value="{}">').format(
            csrf.FIELD, token, csrf.REQUEST_FIELD, uuid.uuid4())

    return {
        "request": request,
        "path": lambda name, **params: path_for(request, name, **params),
        "static": lambda file: f"{root}/static/{escape(file)}",
        "csrf_field": csrf_field,
        "principal": principal,
        "read_only": config.read_only or principal is None or not principal.is_admin,
    }


def render(request: Request, template: str, values: dict[str, Any], *,
           status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render ``template`` with the page globals and ``values``."""
    html = ENV.get_template(template).render({**context(request), **values})
    return HTMLResponse(html, status_code=status_code, headers=headers)
