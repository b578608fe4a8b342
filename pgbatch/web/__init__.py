"""pgbatch web: the dashboard and the REST API (``pip install 'pgbatch[web]'``).

A thin layer over the SQL API: every read and every action is one SQL
function call through the ``AsyncClient`` (or an ``Op`` in
:mod:`pgbatch.web.db`); the server never re-implements what a function
does. Start it with ``pgbatch web`` (see docs/web.md) or serve
``create_app(WebConfig(dsn=...))`` with any ASGI server.

Layout
------

- :mod:`~pgbatch.web.app`: ``create_app(config)``, ``ROUTE_MODULES``;
- :mod:`~pgbatch.web.config`: ``WebConfig``, ``Credential`` (``NAME:KIND:SECRET``);
- :mod:`~pgbatch.web.auth`: ``SecurityMiddleware`` (authentication; every
  non-GET request needs an admin credential and passes the CSRF check);
- :mod:`~pgbatch.web.csrf`: signed double-submit tokens;
- :mod:`~pgbatch.web.errors`: a ``PgBatchError`` or ``WebError`` as JSON
  ``{"code", "error", "message"}`` (API) or the error page;
- :mod:`~pgbatch.web.db`: the pool (opened in the lifespan), ``client(request)``;
- :mod:`~pgbatch.web.params`: query/form/path parsing with PB errors, cursors,
  ``request_id(request, scope)`` from the ``Idempotency-Key`` header;
- :mod:`~pgbatch.web.openapi`: ``ApiRoute``, ``Param``, the OpenAPI document;
- :mod:`~pgbatch.web.templating`: ``render(request, template, values)``;
- ``pages/*.py`` (HTML) and ``api/*.py`` (JSON), each exporting ``routes()``;
- :mod:`~pgbatch.web.metrics`: ``/metrics``;
- ``templates/`` (Jinja2, autoescape on, all extend ``base.html``),
  ``static/`` (``style.css``, ``live.js``).

How to add a page
-----------------

1. A module ``pgbatch/web/pages/runs.py`` with handlers and ``routes()``::

       from starlette.requests import Request
       from starlette.responses import RedirectResponse, Response
       from starlette.routing import Route

       from pgbatch.web import db, params
       from pgbatch.web.templating import path_for, render

       async def runs_page(request: Request) -> Response:
           rows = await db.client(request).run(my_op())   # one SQL function
           return render(request, "runs.html", {"runs": rows})

       async def stop(request: Request) -> Response:      # a form action
           ...                                             # one SQL function
           return RedirectResponse(path_for(request, "runs"), status_code=303)

       def routes() -> list[Route]:
           return [Route("/runs", runs_page, name="runs"),
                   Route("/runs/{run_id}/stop", stop, methods=["POST"], name="run_stop")]

2. ``templates/runs.html`` starting ``{% extends "base.html" %}`` with a
   ``{% block content %}``; links are ``{{ path('runs') }}``; every form is
   ``<form method="post" action="{{ path('run_stop', run_id=r.id) }}">
   {{ csrf_field() }}<button>Stop</button></form>``, shown only
   ``{% if not read_only %}``. A region that should refresh itself gets an
   ``id`` and ``data-live="5"`` (seconds). A nav link goes in ``base.html``'s
   ``<nav>``.
3. Add the module to ``ROUTE_MODULES`` in :mod:`pgbatch.web.app`.

Nothing else is needed for security: ``SecurityMiddleware`` refuses a POST
from a read-only credential or server (403 ``ReadOnly``) and one without the
CSRF token (403 ``CsrfRejected``); a ``PgBatchError`` raised by a handler
becomes the error page (or JSON under ``/api/``) with its PB code.

How to add an API route
-----------------------

In ``pgbatch/web/api/runs.py``, return :class:`~pgbatch.web.openapi.ApiRoute`
objects (the path is relative to ``/api/v1``; ``action=True`` makes it a
POST; parameters and result schema are what the OpenAPI document shows)::

    from pgbatch.web.api.common import ok
    from pgbatch.web.openapi import IDEMPOTENCY_KEY, ApiRoute, Param

    RUN_ID = Param("run_id", "path", "the execution's id", schema_type="integer")

    async def stop(request: Request) -> Response:
        run_id = ...                                        # parse, raise InvalidArgument
        req = params.request_id(request, f"stop:{run_id}")  # Idempotency-Key -> request_id
        return ok(await ...)                                # dataclasses/UUIDs/times -> JSON

    def routes() -> list[Route]:
        return [ApiRoute("/runs/{run_id}/stop", stop, name="api_run_stop", action=True,
                         params=[RUN_ID, IDEMPOTENCY_KEY], summary="stop a run")]

and add the module to ``ROUTE_MODULES``. Errors need no code: raise (or let
the client raise) the pgbatch error; ``errors.status_of`` picks 404 for
unknown ids, 400 for bad input, 409 for a state that refuses; a failure of
the web layer is ``WebError(status, name, message)``. Tests: the
``web_server`` and ``browser`` fixtures of ``tests/web_helpers.py``.
"""

from pgbatch.web.app import ROUTE_MODULES, create_app
from pgbatch.web.config import Credential, WebConfig

__all__ = ["ROUTE_MODULES", "Credential", "WebConfig", "create_app"]
