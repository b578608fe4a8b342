"""The ``pgbatch`` command line (argparse, standard library only).

Where it connects, for every command that needs a database: ``--dsn``
(accepted before or after the command name), else ``$PGBATCH_DSN``, else
the embedded PostgreSQL server in the user's data directory, started on
first use and left running (``pgbatch server status|start|stop``).

Every change goes through the SQL API (the ``Client``); the listings of
``jobs list``/``jobs show`` are read-only SQLAlchemy Core queries on
:mod:`pgbatch.schema`.

Exit codes: 0 success; 1 an expected error, printed as one ``error: …``
line on stderr (pgbatch errors, connection failures, unknown job ids, a
missing schema); 2 bad usage (argparse); 3 ``server status`` of a server
that is not running; 130 interrupted. ``-v`` adds the traceback to errors.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn, cast
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from pgbatch._app import App
from pgbatch._cli_format import age, dumps, shorten, table, to_jsonable, when
from pgbatch._client import Client
from pgbatch._errors import InvalidQueueName, JobNotFound, PgBatchError
from pgbatch._types import Json, QueueStats

log = logging.getLogger("pgbatch.cli")

PROG: Final = "pgbatch"
#: Longest queue name the SQL API accepts (``pgbatch._check_queue``).
MAX_QUEUE_NAME: Final = 128
#: SQLSTATEs meaning "the pgbatch schema is not installed here".
_NO_SCHEMA_STATES: Final = frozenset({"3F000", "42P01", "42883"})


class CliError(Exception):
    """An expected failure: printed as ``error: <message>``, exit ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------
# argument types
# ---------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _json(text: str) -> Json:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({exc.msg} at character {exc.pos}): {shorten(text, 60)!r}"
        ) from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {shorten(text, 60)!r}") from None


def _json_object(text: str) -> dict[str, Json]:
    value = _json(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            "must be a JSON object like '{\"to\": \"a@example.com\"}', "
            f"got {shorten(text, 60)!r}")
    return value


def _datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time like 2030-01-01T09:00:00+00:00: {text!r}") from None
    return value if value.tzinfo is not None else value.astimezone()  # naive = local time


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a job id (a UUID): {text!r}") from None


def check_queue_name(name: str) -> str:
    """Raise the library's ``InvalidQueueName`` for a name the SQL API would refuse.

    Enqueue, pause and the other writes are checked by the SQL functions
    themselves; this check is for the read-only queries (``status --queue``,
    ``jobs list --queue``), which accept any text.
    """
    if not name:
        raise InvalidQueueName("invalid queue name: must be non-empty text")
    if len(name) > MAX_QUEUE_NAME:
        raise InvalidQueueName(
            f"invalid queue name: {len(name)} characters, at most {MAX_QUEUE_NAME} allowed")
    return name


# ---------------------------------------------------------------------------
# connections
# ---------------------------------------------------------------------------


def resolve_dsn(args: argparse.Namespace) -> str:
    """``--dsn``, else ``$PGBATCH_DSN``, else the embedded server (started if needed)."""
    if args.dsn:
        return str(args.dsn)
    env = os.environ.get("PGBATCH_DSN")
    if env:
        return env
    from pgbatch._server import PgServer, default_data_dir, default_server  # noqa: PLC0415

    if not PgServer.embedded(default_data_dir()).is_running():
        print(f"{PROG}: no --dsn or PGBATCH_DSN: starting the embedded PostgreSQL server "
              f"(data in {default_data_dir()})", file=sys.stderr)
    return default_server().dsn()


@contextmanager
def session(dsn: str) -> Iterator[tuple[Client, psycopg.Connection[Any]]]:
    """One autocommit connection, and a ``Client`` whose calls all run on it.

    A plain connection fails at once with libpq's message when the server is
    unreachable (a pool would retry until its timeout). The client's own pool
    is never opened: every call passes ``conn=``.
    """
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        pool: ConnectionPool[Any] = ConnectionPool(dsn, open=False)
        yield Client(pool), conn


def setup_logging(args: argparse.Namespace, default: int = logging.INFO) -> None:
    """Log to stderr: ``-v`` DEBUG, ``-q`` WARNING, else ``default``."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else default
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level, stream=sys.stderr,
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            datefmt="%Y-%m-%d %H:%M:%S")
    logging.getLogger("pgbatch").setLevel(level)
    # alembic announces its context at INFO on every schema check
    logging.getLogger("alembic").setLevel(logging.DEBUG if args.verbose else logging.WARNING)


# ---------------------------------------------------------------------------
# migrate
# ---------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the schema to head, or print the upgrade SQL."""
    from pgbatch import _migrate  # noqa: PLC0415 - alembic is slow to import

    if args.sql:
        sys.stdout.write(_migrate.upgrade_sql(from_revision=args.from_revision))
        return 0
    if args.from_revision:
        raise CliError("--from-revision only applies with --sql", code=2)
    dsn = resolve_dsn(args)
    applied = _migrate.upgrade(dsn)
    if applied:
        for rev in applied:
            print(f"applied {rev}")
    else:
        print(f"already at {_migrate.head()}")
    return 0


# ---------------------------------------------------------------------------
# worker
# ---------------------------------------------------------------------------


def load_app(spec: str) -> App:
    """Import ``module[:attribute]`` (default attribute ``app``) from the current directory."""
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
    from pgbatch._migrate import check_schema  # noqa: PLC0415
    from pgbatch._server import PgServer, default_data_dir  # noqa: PLC0415
    from pgbatch.worker import Worker  # noqa: PLC0415

    setup_logging(args)
    spec = args.app or os.environ.get("PGBATCH_APP")
    if not spec:
        raise CliError("worker needs --app module:app (or $PGBATCH_APP), "
                       "e.g. --app myproject.tasks:app", code=2)
    explicit = args.dsn or os.environ.get("PGBATCH_DSN")
    if explicit:
        os.environ["PGBATCH_DSN"] = explicit  # an App() without a dsn connects there
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
    log.info("worker %s: %d task(s), queues %s, concurrency %d%s", worker.node_id,
             len(app.tasks), ", ".join(queues), args.concurrency,
             "" if worker.listen else ", polling only (no LISTEN)")
    try:
        asyncio.run(worker.run())
    finally:
        app.close()
    log.info("worker %s stopped (%d succeeded, %d failed, %d released)", worker.node_id,
             worker.stats.succeeded, worker.stats.failed, worker.stats.released)
    return 0


# ---------------------------------------------------------------------------
# enqueue, status, queues
# ---------------------------------------------------------------------------


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Enqueue one job and print its id."""
    payload: Json
    if args.task is not None:
        if args.payload is not None:
            raise CliError("give either PAYLOAD_JSON or --task/--kwargs, not both", code=2)
        payload = {"task": args.task, "kwargs": args.kwargs or {}}
    elif args.kwargs is not None:
        raise CliError("--kwargs needs --task NAME", code=2)
    else:
        payload = {} if args.payload is None else args.payload
    run_at: datetime | None = args.run_at
    if args.delay is not None:
        run_at = datetime.now(UTC) + timedelta(seconds=args.delay)
    options: dict[str, Any] = {"run_at": run_at, "priority": args.priority,
                               "dedup_key": args.dedup_key, "id": args.id}
    if args.max_attempts is not None:
        options["max_attempts"] = args.max_attempts
    with session(resolve_dsn(args)) as (client, conn):
        job_id = client.enqueue(args.queue, payload, conn=conn, **options)
    print(job_id)
    return 0


def _stats_row(s: QueueStats) -> list[str]:
    return [s.queue, str(s.pending), str(s.scheduled), str(s.claimed), str(s.done),
            str(s.dead), str(s.cancelled), age(s.oldest_pending_age),
            "yes" if s.paused else "no"]


STATUS_HEADERS: Final = ("QUEUE", "PENDING", "SCHEDULED", "CLAIMED", "DONE", "DEAD",
                         "CANCELLED", "OLDEST", "PAUSED")


def cmd_status(args: argparse.Namespace) -> int:
    """Print queue_stats() per queue."""
    queue = None if args.queue is None else check_queue_name(args.queue)
    with session(resolve_dsn(args)) as (client, conn):
        stats = client.queue_stats(queue, conn=conn)
    if queue is not None and not stats:
        stats = [QueueStats(queue, 0, 0, 0, 0, 0, 0, None, False)]
    if args.json:
        print(dumps([s.__dict__ for s in stats]))
    elif not stats:
        print("no queues yet (enqueue a job: pgbatch enqueue QUEUE '{}')")
    else:
        print(table(STATUS_HEADERS, [_stats_row(s) for s in stats], right=range(1, 8)))
    return 0


def cmd_queues(args: argparse.Namespace) -> int:
    """Pause, resume, or switch NOTIFY of a queue."""
    with session(resolve_dsn(args)) as (client, conn):
        if args.queues_command == "pause":
            client.pause_queue(args.queue, conn=conn)
            print(f"queue {args.queue} paused")
        elif args.queues_command == "resume":
            client.resume_queue(args.queue, conn=conn)
            print(f"queue {args.queue} resumed")
        else:
            client.set_queue_notify(args.queue, args.state == "on", conn=conn)
            print(f"queue {args.queue}: notify {args.state}")
    return 0


# ---------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------

JOB_HEADERS: Final = ("ID", "QUEUE", "STATE", "ATTEMPT", "PRIO", "RUN AT", "FINISHED",
                      "TASK / PAYLOAD")


def _job_row(row: dict[str, Any], preview_chars: int) -> list[str]:
    task = row.get("task")
    what = task if task else shorten(row.get("preview") or "", preview_chars)
    return [str(row["id"]), row["queue"], row["state"], f"{row['attempt']}/{row['max_attempts']}",
            str(row["priority"]), when(row["run_at"]), when(row["finished_at"]), what]


def cmd_jobs_list(args: argparse.Namespace) -> int:
    """List jobs, newest first."""
    from pgbatch import _cli_jobs  # noqa: PLC0415 - SQLAlchemy is slow to import
    from pgbatch._migrate import connect  # noqa: PLC0415

    queue = None if args.queue is None else check_queue_name(args.queue)
    with connect(resolve_dsn(args)) as conn:
        rows = _cli_jobs.list_jobs(conn, queue=queue, state=args.state, limit=args.limit)
    if args.json:
        for r in rows:
            r.pop("preview", None)
        print(dumps(rows))
    elif not rows:
        print("no jobs")
    else:
        print(table(JOB_HEADERS, [_job_row(r, _cli_jobs.PREVIEW_CHARS) for r in rows],
                    right=(4,)))
    return 0


_SHOW_LAST: Final = ("payload", "settled_result", "result", "last_error")


def _show_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone().isoformat(timespec="milliseconds")
    if isinstance(value, dict | list):
        return json.dumps(to_jsonable(value), ensure_ascii=False)
    return str(value)


def format_job(row: dict[str, Any]) -> str:
    """``jobs show``: one ``field  value`` line per column, the JSON ones last."""
    keys = [k for k in row if k not in _SHOW_LAST] + [k for k in _SHOW_LAST if k in row]
    width = max(len(k) for k in keys)
    lines: list[str] = []
    for key in keys:
        value = row[key]
        if key == "payload" and value is not None:
            text = json.dumps(to_jsonable(value), ensure_ascii=False)
            if len(text) > 80:
                text = json.dumps(to_jsonable(value), ensure_ascii=False, indent=2)
                text = text.replace("\n", "\n" + " " * (width + 2))
            lines.append(f"{key:<{width}}  {text}")
        elif key == "last_error" and isinstance(value, dict):
            tb = value.get("traceback")
            brief = {k: v for k, v in value.items() if k != "traceback"}
            head = (f"{brief.pop('type', 'error')}: {brief.pop('message', '')}"
                    if "type" in brief or "message" in brief else "")
            rest = f" {json.dumps(brief, ensure_ascii=False)}" if brief else ""
            lines.append(f"{key:<{width}}  {head}{rest}".rstrip())
            if isinstance(tb, str) and tb:
                lines.append("traceback:")
                lines.extend("    " + ln for ln in tb.rstrip().splitlines())
        else:
            lines.append(f"{key:<{width}}  {_show_value(value)}")
    return "\n".join(lines)


def cmd_jobs_show(args: argparse.Namespace) -> int:
    """Show every field of one job."""
    from pgbatch import _cli_jobs  # noqa: PLC0415
    from pgbatch._migrate import connect  # noqa: PLC0415

    with connect(resolve_dsn(args)) as conn:
        row = _cli_jobs.get_job(conn, args.id)
    if row is None:
        raise CliError(f"job {args.id} not found")
    print(dumps(row) if args.json else format_job(row))
    return 0


def cmd_jobs_retry(args: argparse.Namespace) -> int:
    """Requeue a dead job."""
    with session(resolve_dsn(args)) as (client, conn):
        job_id = client.requeue_dead_job(args.id, args.run_at, conn=conn)
    print(f"job {job_id}: pending")
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    """Cancel a pending job, or flag a claimed one."""
    with session(resolve_dsn(args)) as (client, conn):
        state = client.cancel_job(args.id, conn=conn)
    note = (" (its worker stops it at the next lease renewal)"
            if state == "cancel_requested" else "")
    print(f"job {args.id}: {state}{note}")
    return 0


# ---------------------------------------------------------------------------
# server
# ---------------------------------------------------------------------------


def cmd_server(args: argparse.Namespace) -> int:
    """Status, start or stop of the embedded server."""
    from pgbatch._server import PgServer, default_data_dir, default_server  # noqa: PLC0415

    data_dir = default_data_dir()
    if args.server_command == "start":
        server = default_server()
        print(f"running    pid {server.pid()}, data in {server.data_dir}")
        print(f"dsn        {server.dsn()}")
        return 0
    server = PgServer.embedded(data_dir)
    if args.server_command == "stop":
        if not server.is_running():
            print(f"not running (data in {data_dir})")
            return 0
        server.stop()
        print(f"stopped (data kept in {data_dir})")
        return 0
    running = server.is_running()
    if not server.is_initialized():
        state = "not created yet (`pgbatch server start` or any command without a DSN creates it)"
    elif running:
        state = f"running (pid {server.pid()})"
    else:
        state = "stopped"
    lines = [("data dir", str(data_dir)), ("state", state)]
    if server.is_initialized():
        lines.append(("dsn", server.dsn() + ("" if running else "  (when running)")))
    if running:
        num = server.server_version_num()
        lines.append(("version", f"PostgreSQL {num // 10000}.{num % 10000}"))
    lines.append(("log", str(server.log_file)))
    for key, value in lines:
        print(f"{key:<9}  {value}")
    return 0 if running else 3


# ---------------------------------------------------------------------------
# demo and bench
# ---------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo workload with an in-process worker."""
    from pgbatch import _demo  # noqa: PLC0415
    from pgbatch._migrate import SchemaNotMigrated, check_schema, upgrade  # noqa: PLC0415

    setup_logging(args, default=logging.WARNING)
    dsn = resolve_dsn(args)
    try:
        check_schema(dsn)
    except SchemaNotMigrated:
        applied = upgrade(dsn)
        print(f"migrated the database ({', '.join(applied) or 'already at head'})")
    result = asyncio.run(_demo.run_demo(dsn, jobs=args.jobs, concurrency=args.concurrency,
                                        out=sys.stdout))
    print(_demo.summary(result))
    if result.interrupted:
        return 130
    return 1 if result.dead else 0


BENCH_MODULES: Final = ("pgbatch.bench.cli", "pgbatch.bench.__main__")


def _bench_main() -> Callable[[list[str]], int] | None:
    for name in BENCH_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        entry = getattr(module, "main", None)
        if callable(entry):
            return cast(Callable[[list[str]], int], entry)
    return None


def cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    """Delegate to ``pgbatch.bench.cli.main(argv)``."""
    entry = _bench_main()
    if entry is None:
        if "-h" in extra or "--help" in extra:
            print(args.parser.format_help())
            return 0
        raise CliError("benchmark not available: this installation has no pgbatch.bench module")
    if args.dsn and not any(a == "--dsn" or a.startswith("--dsn=") for a in extra):
        extra = ["--dsn", args.dsn, *extra]  # `pgbatch --dsn X bench` means `bench --dsn X`
    return int(entry(extra) or 0)


# ---------------------------------------------------------------------------
# the parser
# ---------------------------------------------------------------------------

DESCRIPTION = """\
pgbatch: a PostgreSQL-native job queue.

Connects to --dsn, else $PGBATCH_DSN, else the embedded PostgreSQL server kept
in your user data directory (started on first use; see `pgbatch server`).
Run `pgbatch COMMAND --help` for a command's options."""

EPILOG = """\
examples:
  pgbatch demo                                 # a worker and 500 jobs on the embedded server
  export PGBATCH_DSN=postgresql://app@db/app
  pgbatch migrate                              # install or upgrade the schema
  pgbatch worker --app myproject.tasks:app --concurrency 8
  pgbatch enqueue emails '{"to": "a@example.com"}'
  pgbatch status
  pgbatch jobs list --state dead"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; shows defaults where they are set."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("%(default)" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and action.option_strings and action.nargs != 0):
            text += " (default: %(default)s)"
        return text


def _add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--dsn, -v, -q: on the main parser and again on every command."""
    sup = argparse.SUPPRESS
    parser.add_argument(
        "--dsn", default=None if top else sup, metavar="DSN",
        help="PostgreSQL connection string (libpq keywords or postgresql:// URI); default "
             "$PGBATCH_DSN, else the embedded server")
    parser.add_argument("-v", "--verbose", action="count", default=0 if top else sup,
                        help="more output: DEBUG logs, tracebacks of errors")
    parser.add_argument("-q", "--quiet", action="store_true", default=False if top else sup,
                        help="less output: warnings and errors only")


def _sub(subparsers: Any, name: str, help_text: str, description: str,
         epilog: str | None = None, **kwargs: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=description, epilog=epilog,
        formatter_class=_Formatter, **kwargs)
    parser.set_defaults(parser=parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``pgbatch`` argument parser with every command."""
    from pgbatch import __version__  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"pgbatch {__version__}")
    _add_common(parser, top=True)
    parser.set_defaults(parser=parser, handler=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    # migrate ------------------------------------------------------------------
    p = _sub(sub, "migrate", "install or upgrade the pgbatch schema",
             "Upgrade the database's pgbatch schema to the newest version this pgbatch ships.\n"
             "Idempotent, and safe from many processes at once (an advisory lock serialises\n"
             "them). With --sql, print the SQL instead, for a DBA to apply with psql.",
             "examples:\n"
             "  pgbatch migrate\n"
             "  pgbatch migrate --sql > pgbatch-upgrade.sql\n"
             "  psql -v ON_ERROR_STOP=1 -d appdb -f pgbatch-upgrade.sql\n"
             "  pgbatch migrate --sql --from-revision 0001_initial   # only later versions")
    _add_common(p, top=False)
    p.add_argument("--sql", action="store_true",
                   help="print the upgrade script instead of applying it (no connection made)")
    p.add_argument("--from-revision", metavar="REV",
                   help="with --sql: the database's current revision "
                        "(select version_num from pgbatch.alembic_version); "
                        "print only the versions after it")
    p.set_defaults(handler=cmd_migrate)

    # worker -------------------------------------------------------------------
    p = _sub(sub, "worker", "run a worker for an application's tasks",
             "Import an App (module:attribute, importable from the current directory) and\n"
             "run its tasks until SIGTERM/SIGINT. The first signal stops claiming, lets\n"
             "running jobs finish within --shutdown-grace and releases the rest; a second\n"
             "signal exits at once. The schema must be migrated (pgbatch migrate).\n"
             "Logs go to stderr.",
             "examples:\n"
             "  pgbatch worker --app myproject.tasks:app\n"
             "  pgbatch worker --app myproject.tasks:app --queue emails --concurrency 16 \\\n"
             "      --node-id worker-1")
    _add_common(p, top=False)
    p.add_argument("--app", metavar="MODULE:APP",
                   help="the pgbatch.App to run, e.g. myproject.tasks:app (default $PGBATCH_APP)")
    p.add_argument("--queue", action="append", metavar="Q",
                   help="a queue to serve; repeat for several (default: every queue of "
                        "the app's tasks)")
    p.add_argument("--concurrency", type=_positive_int, default=1, metavar="N",
                   help="jobs run at once")
    p.add_argument("--node-id", metavar="ID",
                   help="a stable name for this worker (pod or unit name): a restart then "
                        "releases the previous run's claims at once. Never share one between "
                        "live workers (default: hostname:pid)")
    p.add_argument("--poll-interval", type=_positive_seconds, default=2.0, metavar="S",
                   help="seconds an idle worker waits before claiming anyway (the safety net "
                        "for missed notifications)")
    p.add_argument("--shutdown-grace", type=_seconds, default=30.0, metavar="S",
                   help="seconds running jobs get to finish after SIGTERM")
    p.add_argument("--no-listen", action="store_true",
                   help="do not LISTEN for wakeups, poll only (PgBouncer in transaction mode)")
    p.set_defaults(handler=cmd_worker)

    # enqueue ------------------------------------------------------------------
    p = _sub(sub, "enqueue", "enqueue a job and print its id",
             "Enqueue one job and print its id. The payload is any JSON value (default {});\n"
             "--task NAME --kwargs JSON builds the payload App tasks use:\n"
             '{"task": NAME, "kwargs": {...}}.',
             "examples:\n"
             "  pgbatch enqueue emails '{\"to\": \"a@example.com\"}'\n"
             "  pgbatch enqueue emails --task send_email \\\n"
             "      --kwargs '{\"to\": \"a@example.com\", \"subject\": \"hi\"}'\n"
             "  pgbatch enqueue reports '{}' --delay 3600 --dedup-key daily-report")
    _add_common(p, top=False)
    p.add_argument("queue", metavar="QUEUE", help="queue name (1 to 128 characters)")
    p.add_argument("payload", metavar="PAYLOAD_JSON", nargs="?", type=_json,
                   help="the job's payload, a JSON value (default: {})")
    when_group = p.add_mutually_exclusive_group()
    when_group.add_argument("--run-at", type=_datetime, metavar="ISO",
                            help="not before this time, ISO 8601 (no offset: local time)")
    when_group.add_argument("--delay", type=_seconds, metavar="SECONDS",
                            help="not before this many seconds from now")
    p.add_argument("--priority", type=_int, default=0, metavar="N",
                   help="higher runs first (default: 0)")
    p.add_argument("--dedup-key", metavar="K",
                   help="while a pending or claimed job of this queue has this key, print "
                        "that job's id and enqueue nothing")
    p.add_argument("--max-attempts", type=_positive_int, metavar="N",
                   help="attempts before the job is dead-lettered (default: 20)")
    p.add_argument("--id", type=_uuid, metavar="UUID",
                   help="the job's id (default: a new time-ordered UUID)")
    p.add_argument("--task", metavar="NAME", help="task name: payload becomes "
                   '{"task": NAME, "kwargs": KWARGS}')
    p.add_argument("--kwargs", type=_json_object, metavar="JSON",
                   help="with --task: the task's keyword arguments, a JSON object")
    p.set_defaults(handler=cmd_enqueue)

    # status -------------------------------------------------------------------
    p = _sub(sub, "status", "per-queue counts",
             "Per queue: pending (claimable now), scheduled (run_at in the future), claimed,\n"
             "done, dead and cancelled (archived, until the retention sweep), the age of the\n"
             "oldest pending job, and whether the queue is paused.",
             "examples:\n  pgbatch status\n  pgbatch status --queue emails --json")
    _add_common(p, top=False)
    p.add_argument("--queue", metavar="Q", help="only this queue")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(handler=cmd_status)

    # jobs ---------------------------------------------------------------------
    jobs = _sub(sub, "jobs", "list, show, retry or cancel jobs",
                "Inspect and act on jobs. Listings read the tables (read-only); retry and\n"
                "cancel call requeue_dead_job() and cancel_job().",
                "examples:\n"
                "  pgbatch jobs list --queue emails --state dead\n"
                "  pgbatch jobs show 0197a1b2-...\n"
                "  pgbatch jobs retry 0197a1b2-...\n"
                "  pgbatch jobs cancel 0197a1b2-...")
    _add_common(jobs, top=False)
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND", title="subcommands",
                               required=True)
    p = _sub(jsub, "list", "list jobs, newest first",
             "List jobs, newest first: live ones (pending, scheduled, claimed) and settled\n"
             "ones (done, dead, cancelled, kept until the retention sweep).",
             "examples:\n  pgbatch jobs list\n  pgbatch jobs list --queue emails --state dead "
             "--limit 10\n  pgbatch jobs list --state claimed --json")
    _add_common(p, top=False)
    p.add_argument("--queue", metavar="Q", help="only this queue")
    from pgbatch._cli_jobs import STATES  # noqa: PLC0415

    p.add_argument("--state", choices=STATES, help="only jobs in this state")
    p.add_argument("--limit", type=_positive_int, default=50, metavar="N",
                   help="at most this many jobs")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(handler=cmd_jobs_list)

    p = _sub(jsub, "show", "every field of one job",
             "Show every field of one job, live or archived, including last_error with\n"
             "its traceback.", "example:\n  pgbatch jobs show 0197a1b2-... --json")
    _add_common(p, top=False)
    p.add_argument("id", type=_uuid, metavar="ID", help="the job's id")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p.set_defaults(handler=cmd_jobs_show)

    p = _sub(jsub, "retry", "requeue a dead job",
             "Requeue a dead job with a fresh attempt count (requeue_dead_job()).",
             "example:\n  pgbatch jobs retry 0197a1b2-...")
    _add_common(p, top=False)
    p.add_argument("id", type=_uuid, metavar="ID", help="the dead job's id")
    p.add_argument("--run-at", type=_datetime, metavar="ISO",
                   help="not before this time (default: now)")
    p.set_defaults(handler=cmd_jobs_retry)

    p = _sub(jsub, "cancel", "cancel a job",
             "Cancel a job (cancel_job()) and print the resulting state: a pending job is\n"
             "cancelled at once; a claimed one becomes cancel_requested and its worker stops\n"
             "it at the next lease renewal.", "example:\n  pgbatch jobs cancel 0197a1b2-...")
    _add_common(p, top=False)
    p.add_argument("id", type=_uuid, metavar="ID", help="the job's id")
    p.set_defaults(handler=cmd_jobs_cancel)

    # queues -------------------------------------------------------------------
    queues = _sub(sub, "queues", "pause, resume, or switch NOTIFY of a queue",
                  "Queue switches.",
                  "examples:\n  pgbatch queues pause emails\n  pgbatch queues resume emails\n"
                  "  pgbatch queues notify bulk off")
    _add_common(queues, top=False)
    qsub = queues.add_subparsers(dest="queues_command", metavar="SUBCOMMAND",
                                 title="subcommands", required=True)
    p = _sub(qsub, "pause", "stop claims on a queue",
             "Stop claims on a queue (pause_queue()); enqueues still work, running jobs "
             "finish.")
    _add_common(p, top=False)
    p.add_argument("queue", metavar="Q", help="queue name")
    p.set_defaults(handler=cmd_queues)
    p = _sub(qsub, "resume", "restart claims on a queue",
             "Restart claims on a paused queue (resume_queue()); workers are woken.")
    _add_common(p, top=False)
    p.add_argument("queue", metavar="Q", help="queue name")
    p.set_defaults(handler=cmd_queues)
    p = _sub(qsub, "notify", "switch NOTIFY on enqueue on or off",
             "Switch the queue's NOTIFY on enqueue on or off (set_queue_notify()). Off saves\n"
             "the NOTIFY cost on every enqueue; workers then find its jobs by polling.")
    _add_common(p, top=False)
    p.add_argument("queue", metavar="Q", help="queue name")
    p.add_argument("state", choices=("on", "off"), metavar="on|off", help="on or off")
    p.set_defaults(handler=cmd_queues)

    # server -------------------------------------------------------------------
    server = _sub(sub, "server", "the embedded PostgreSQL server: status, start, stop",
                  "The embedded PostgreSQL server that commands use when no --dsn or\n"
                  "$PGBATCH_DSN is given. Its data lives in your user data directory and\n"
                  "survives restarts; it keeps running after a command exits. These commands\n"
                  "ignore --dsn.",
                  "examples:\n  pgbatch server status\n  pgbatch server stop")
    _add_common(server, top=False)
    ssub = server.add_subparsers(dest="server_command", metavar="SUBCOMMAND",
                                 title="subcommands", required=True)
    for name, help_text, description in (
        ("status", "where its data lives, its DSN, running or not",
         "Print the data directory, state, DSN, version and log file. Exit status 0 when\n"
         "running, 3 when not."),
        ("start", "start it (creating it on first use) and print its DSN",
         "Start the embedded server, creating the cluster on first use; print its DSN."),
        ("stop", "stop it (the data is kept)", "Stop the embedded server; the data is kept."),
    ):
        p = _sub(ssub, name, help_text, description)
        _add_common(p, top=False)
        p.set_defaults(handler=cmd_server)

    # demo ---------------------------------------------------------------------
    p = _sub(sub, "demo", "run a demo workload with a worker, in this process",
             "Migrate the database if needed, enqueue demo jobs on the demo.* queues and run\n"
             "a worker in this process until they are all done, with a live progress line:\n"
             "  demo.fetch    async task; its ack enqueues a demo.process follow-up and a\n"
             "                kv_put, in one transaction (AckEffects)\n"
             "  demo.process  sync task; reads the kv value, deletes it (kv_delete)\n"
             "  demo.flaky    fails on its first attempt, succeeds on the retry\n"
             "Without --dsn or $PGBATCH_DSN it runs on the embedded server.",
             "examples:\n  pgbatch demo\n  pgbatch demo --jobs 2000 --concurrency 20")
    _add_common(p, top=False)
    p.add_argument("--jobs", type=_positive_int, default=500, metavar="N",
                   help="jobs to enqueue (plus one follow-up per fetch)")
    p.add_argument("--concurrency", type=_positive_int, default=10, metavar="N",
                   help="worker slots")
    p.set_defaults(handler=cmd_demo)

    # bench --------------------------------------------------------------------
    p = _sub(sub, "bench", "run the benchmark (arguments are passed to pgbatch.bench)",
             "Run the benchmark: every argument after `bench` is passed to the benchmark's\n"
             "own command line (try `pgbatch bench --help`). A --dsn given before `bench`\n"
             "is passed on as the benchmark's --dsn; $PGBATCH_DSN is not used by it.",
             "examples:\n  pgbatch bench --help\n  pgbatch bench --quick", add_help=False)
    p.set_defaults(handler=None, bench=True)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(message: str, args: argparse.Namespace | None) -> None:
    print(f"error: {_one_line(message)}", file=sys.stderr)
    if args is not None and args.verbose:
        traceback.print_exc()


def _db_message(exc: psycopg.Error) -> str:
    primary = exc.diag.message_primary if exc.sqlstate else None
    message = _one_line(primary or str(exc)) or type(exc).__name__
    if exc.sqlstate in _NO_SCHEMA_STATES and "pgbatch" in message:
        return f"{message}: is the pgbatch schema installed? run `pgbatch migrate`"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (never raises SystemExit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if getattr(args, "bench", False):
            return _run(lambda: cmd_bench(args, extra), args)
        if extra:
            args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.handler is None:
            parser.print_help()
            return 2
    except SystemExit as exc:
        return _exit_code(exc)
    return _run(lambda: args.handler(args), args)


def _run(call: Callable[[], int], args: argparse.Namespace) -> int:
    """Run a command, turning expected errors into one ``error:`` line and an exit status."""
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415

    from pgbatch._server import ServerError  # noqa: PLC0415
    from pgbatch.worker import WorkerError  # noqa: PLC0415

    levels = {name: logging.getLogger(name).level for name in ("pgbatch", "alembic")}
    env_dsn = os.environ.get("PGBATCH_DSN")  # `worker` sets it for the App it imports
    try:
        return call()
    except CliError as exc:
        if exc.code == 2 and args.parser is not None:
            args.parser.print_usage(sys.stderr)
        _error(str(exc), args)
        return exc.code
    except JobNotFound as exc:
        _error(exc.message, args)
        return 1
    except PgBatchError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        _error(f"{exc}{detail}", args)
        return 1
    except WorkerError as exc:
        _error(str(exc), args)
        return 1
    except psycopg.Error as exc:
        _error(_db_message(exc), args)
        return 1
    except DBAPIError as exc:
        orig = exc.orig
        _error(_db_message(orig) if isinstance(orig, psycopg.Error) else str(orig), args)
        return 1
    except ServerError as exc:
        first, _, rest = str(exc).partition("\n")
        _error(first + (" (run with -v for the server's output)" if rest else ""), args)
        if rest and args.verbose:
            print(rest, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`pgbatch jobs list | head`): stop quietly
        _silence_stdout()
        return 141
    except Exception as exc:
        from alembic.util import CommandError  # noqa: PLC0415

        if isinstance(exc, CommandError):
            _error(str(exc), args)
            return 1
        raise
    finally:
        # main() may run in a longer-lived process (tests, an embedding program)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if env_dsn is None:
            os.environ.pop("PGBATCH_DSN", None)
        else:
            os.environ["PGBATCH_DSN"] = env_dsn


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
