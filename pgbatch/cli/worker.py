"""``pgbatch worker``: import an application's ``App`` and run its tasks."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

from pgbatch._pooler import LISTEN_DSN_ENV, POOLER_ENV
from pgbatch.cli import roles
from pgbatch.cli.common import (
    CliError,
    Commands,
    add_command,
    check_queue_name,
    positive_int,
    positive_seconds,
    seconds,
    setup_logging,
)

if TYPE_CHECKING:
    from pgbatch import App

log = logging.getLogger("pgbatch.cli")


def load_app(spec: str) -> App:
    """Import ``module[:attribute]`` (default attribute ``app``) from the current directory."""
    from pgbatch import App  # noqa: PLC0415

    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name or not all(p.isidentifier() for p in module_name.split(".")):
        raise CliError(f"--app {spec!r}: expected module:attribute, e.g. myproject.tasks:app",
                       code=2)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise CliError(f"--app {spec}: no module named {missing!r} "
                           f"(looked in {cwd} and on sys.path)") from None
        traceback.print_exc()
        raise CliError(f"--app {spec}: importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed: show its traceback
        traceback.print_exc()
        raise CliError(f"--app {spec}: importing {module_name!r} failed: "
                       f"{type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CliError(f"--app {spec}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, App):
        raise CliError(f"--app {spec}: {attr} is a {type(obj).__name__}, not a pgbatch.App")
    return obj


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a worker for an application's tasks until SIGTERM/SIGINT."""
    from pgbatch import Worker  # noqa: PLC0415
    from pgbatch._migrate import check_schema  # noqa: PLC0415
    from pgbatch.embedded import PgServer, default_data_dir  # noqa: PLC0415

    setup_logging(args)
    spec = args.app or os.environ.get("PGBATCH_APP")
    if not spec:
        raise CliError("worker needs --app module:app (or $PGBATCH_APP), "
                       "e.g. --app myproject.tasks:app", code=2)
    args.dsn = args.dsn or roles.embedded_login_dsn(args)  # never the owner
    explicit = args.dsn or os.environ.get("PGBATCH_DSN")
    if explicit:
        os.environ["PGBATCH_DSN"] = explicit  # an App() without a dsn connects there
    # an App() without pooler=/listen_dsn= reads these
    if args.pooler is not None:
        os.environ[POOLER_ENV] = args.pooler
    if args.listen_dsn:
        os.environ[LISTEN_DSN_ENV] = args.listen_dsn
    app = load_app(spec)
    queues = list(args.queue or app.queues() or [app.default_queue])
    for q in queues:
        check_queue_name(q)
    if explicit:
        dsn = app.dsn
        if dsn != explicit:
            log.warning("the App in %s was created with its own dsn: --dsn/PGBATCH_DSN "
                        "is not used", spec)
    else:
        embedded = PgServer.embedded(default_data_dir())
        was_running = embedded.is_running()
        dsn = app.dsn
        if not was_running and embedded.is_running():
            log.info("started the embedded PostgreSQL server (data in %s)", embedded.data_dir)
    check_schema(dsn)
    unknown = [q for q in queues if q not in app.queues()]
    if unknown:
        log.warning("no task of %s uses queue(s) %s: their jobs will fail as UnknownTask",
                    spec, ", ".join(unknown))
    worker = Worker(
        app, queues, concurrency=args.concurrency, node_id=args.node_id,
        poll_interval=args.poll_interval, shutdown_grace=args.shutdown_grace,
        listen=not args.no_listen, install_signal_handlers=True,
    )
    log.info("worker %s: %d task(s), queues %s, concurrency %d%s%s", worker.node_id,
             len(app.tasks), ", ".join(queues), args.concurrency,
             "" if worker.listen else ", polling only (no LISTEN)",
             f", pooler mode {app.pooler}" if app.pooler != "none" else "")
    code = 0
    try:
        asyncio.run(worker.run())
    except SystemExit as exc:  # a second signal: 143 (SIGTERM) or 130 (SIGINT)
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        app.close()
    log.info("worker %s stopped (%d succeeded, %d failed, %d released)", worker.node_id,
             worker.stats.succeeded, worker.stats.failed, worker.stats.released)
    return code


def register(commands: Commands) -> None:
    """Add ``worker``."""
    p = add_command(
        commands, "worker", "run a worker for an application's tasks",
        "Import an App (module:attribute, importable from the current directory) and\n"
        "run its tasks until SIGTERM/SIGINT. The first signal stops claiming, lets\n"
        "running jobs finish within --shutdown-grace and releases the rest; a second\n"
        "signal exits at once with status 143 (SIGTERM) or 130 (SIGINT), leaving its\n"
        "claims to expire. The schema must be migrated (pgbatch migrate).\n"
        "Logs go to stderr.",
        "examples:\n"
        "  pgbatch worker --app myproject.tasks:app\n"
        "  pgbatch worker --app myproject.tasks:app --queue emails --concurrency 16 \\\n"
        "      --node-id worker-1\n"
        "  pgbatch worker --app myproject.tasks:app --pooler transaction \\\n"
        "      --dsn postgresql://app@pgbouncer:6432/db --listen-dsn postgresql://app@db:5432/db",
        handler=cmd_worker)
    p.add_argument("--app", metavar="MODULE:APP",
                   help="the pgbatch.App to run, e.g. myproject.tasks:app (default $PGBATCH_APP)")
    p.add_argument("--queue", action="append", metavar="Q",
                   help="a queue to serve; repeat for several (default: every queue of "
                        "the app's tasks)")
    p.add_argument("--concurrency", type=positive_int, default=1, metavar="N",
                   help="jobs run at once")
    p.add_argument("--node-id", metavar="ID",
                   help="a stable name for this worker (pod or unit name): a restart then "
                        "releases the previous run's claims at once. Never share one between "
                        "live workers (default: hostname:pid)")
    p.add_argument("--poll-interval", type=positive_seconds, default=2.0, metavar="S",
                   help="seconds an idle worker waits before claiming anyway (the safety net "
                        "for missed notifications)")
    p.add_argument("--shutdown-grace", type=seconds, default=30.0, metavar="S",
                   help="seconds running jobs get to finish after SIGTERM")
    p.add_argument("--no-listen", action="store_true",
                   help="do not LISTEN for wakeups, poll only")
    p.add_argument("--listen-dsn", metavar="DSN",
                   help="a direct connection string (not through a pooler) for the LISTEN "
                        "connection, so wakeups stay prompt with --pooler transaction "
                        f"(default ${LISTEN_DSN_ENV})")
