"""``create_app``: the Starlette application of the dashboard and the REST API.

The routes are collected from ``ROUTE_MODULES``: each module exports
``routes() -> list[Route]`` (pages return plain ``Route`` objects, API
modules :class:`~pgbatch.web.openapi.ApiRoute` ones, so the OpenAPI
document lists them). One ``SecurityMiddleware`` authenticates every request
and checks every action (admin kind, CSRF); one exception handler turns
errors into JSON for the API and the error page for the pages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from pgbatch._errors import PgBatchError
from pgbatch.web import auth, db, metrics, openapi
from pgbatch.web.api import approvals as api_approvals
from pgbatch.web.api import jobs as api_jobs
from pgbatch.web.api import meta as api_meta
from pgbatch.web.api import queues as api_queues
from pgbatch.web.api import runs as api_runs
from pgbatch.web.api import schedules as api_schedules
from pgbatch.web.config import WebConfig
from pgbatch.web.errors import WebError, handle_error
from pgbatch.web.pages import approvals as page_approvals
from pgbatch.web.pages import jobs as page_jobs
from pgbatch.web.pages import queues as page_queues
from pgbatch.web.pages import runs as page_runs
from pgbatch.web.pages import schedules as page_schedules

STATIC: Final = Path(__file__).parent / "static"

#: Every module whose ``routes()`` the app serves, pages first.
ROUTE_MODULES: Final[tuple[ModuleType, ...]] = (
    page_queues, page_jobs, page_runs, page_approvals, page_schedules,
    api_meta, api_queues, api_jobs, api_runs, api_approvals, api_schedules, metrics, openapi,
)


def collect_routes(modules: Sequence[ModuleType]) -> list[BaseRoute]:
    """The routes of ``modules``, in order, then the static files."""
    routes: list[BaseRoute] = []
    for module in modules:
        make: Callable[[], list[BaseRoute]] = module.routes
        routes.extend(make())
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    return routes


def create_app(config: WebConfig, *, extra: Sequence[ModuleType] = ()) -> Starlette:
    """The app for ``config`` (checked first: see ``WebConfig.check``).

    ``extra``: more route modules (each with ``routes()``), served after the
    built-in ones. The pool opens when the app starts (ASGI lifespan).
    """
    config.check()
    app = Starlette(
        routes=collect_routes((*ROUTE_MODULES, *extra)),
        middleware=[Middleware(auth.SecurityMiddleware, config=config)],
        exception_handlers={PgBatchError: handle_error, WebError: handle_error,
                            HTTPException: handle_error, Exception: handle_error},
        lifespan=db.lifespan,
    )
    app.state.config = config
    return app
