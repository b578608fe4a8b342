"""``pgbatch web``: the dashboard and the REST API (needs ``pip install 'pgbatch[web]'``).

Binds 127.0.0.1:8080 by default and connects like every command (``--dsn``,
``$PGBATCH_DSN``, else the embedded server). Listening on any other address
needs at least one ``--token``; ``--read-only`` refuses every action. Before
listening it checks the database role's rights (``pgbatch.web.db.rights``):
a read-only server needs the viewer group role's reports, any other one the
admin group role's actions too; without them it refuses to start.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from pgbatch.cli.common import CliError, Commands, add_command, dsn_of, setup_logging

#: Environment variable holding extra credentials, ``NAME:KIND:SECRET`` separated by commas.
TOKENS_ENV = "PGBATCH_WEB_TOKENS"
#: Environment variable holding the key that signs CSRF tokens (random per process if unset).
SECRET_ENV = "PGBATCH_WEB_SECRET"  # noqa: S105 (a variable name, not a secret)


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the dashboard until interrupted."""
    try:
        import uvicorn  # noqa: PLC0415

        from pgbatch.web import Credential, WebConfig, create_app  # noqa: PLC0415
    except ImportError as exc:
        raise CliError(f"the web extra is not installed ({exc.name} is missing): "
                       "pip install 'pgbatch[web]'") from None
    from pgbatch._migrate import check_schema  # noqa: PLC0415

    setup_logging(args)
    texts = list(args.token or [])
    texts += [t for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip()]
    config = WebConfig(
        dsn="", credentials=tuple(Credential.parse(t.strip()) for t in texts),
        read_only=args.read_only, host=args.host, port=args.port)
    secret = os.environ.get(SECRET_ENV, "")
    if secret:
        config = dataclasses.replace(config, secret=secret.encode())
    config.check()  # before connecting: a refused bind starts no embedded server
    dsn = dsn_of(args)
    check_schema(dsn)
    _check_rights(dsn, args.read_only)
    app = create_app(dataclasses.replace(config, dsn=dsn))
    print(f"pgbatch web on http://{args.host}:{args.port}{args.root_path}/ "
          f"({'read-only, ' if args.read_only else ''}"
          f"{len(config.credentials)} credential(s); Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, root_path=args.root_path,
                proxy_headers=True, forwarded_allow_ips=args.forwarded_allow_ips,
                log_level="warning" if args.quiet else "info")
    return 0


def _check_rights(dsn: str, read_only: bool) -> None:
    """``CliError`` when the role may not execute what the server would call."""
    import psycopg  # noqa: PLC0415

    from pgbatch._roles import libpq_dsn  # noqa: PLC0415
    from pgbatch.web import db  # noqa: PLC0415

    op = db.rights()
    with psycopg.connect(libpq_dsn(dsn), autocommit=True, connect_timeout=10) as conn:
        role, denied = op.decode(conn.execute(op.query, op.params).fetchall())
    problem = db.rights_problem(role, denied, read_only)
    if problem is not None:
        raise CliError(problem)


def register(commands: Commands) -> None:
    """Add ``web``."""
    p = add_command(
        commands, "web", "serve the dashboard and the REST API",
        "Serve the dashboard (overview, jobs) and the REST API under /api/v1, with\n"
        "/metrics for Prometheus. Every read and action is one SQL API function; the\n"
        "login role is granted pgbatch_admin, or only pgbatch_viewer for --read-only\n"
        "(a server that may act refuses to start without the admin rights).\n"
        "Binds 127.0.0.1 by default; any other address needs at least one --token\n"
        "(or $PGBATCH_WEB_TOKENS).\n"
        "Credentials are NAME:KIND:SECRET, KIND read or admin: send the secret as\n"
        "'Authorization: Bearer SECRET', or log in with basic auth as NAME / SECRET.\n"
        "Read-only credentials see everything and act on nothing; --read-only makes\n"
        "the whole server so. $PGBATCH_WEB_SECRET fixes the key that signs CSRF tokens\n"
        "(set one value on every replica behind a load balancer).",
        "examples:\n  pgbatch web\n  pgbatch web --read-only --port 9000\n"
        "  pgbatch web --host 0.0.0.0 --token ops:admin:$OPS_TOKEN --token grafana:read:$RO\n"
        "  pgbatch web --root-path /pgbatch --forwarded-allow-ips 10.0.0.5   # behind a proxy",
        handler=cmd_web)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    p.add_argument("--read-only", action="store_true", help="refuse every action")
    p.add_argument("--token", action="append", metavar="NAME:KIND:SECRET",
                   help="a credential (repeatable); KIND is read or admin")
    p.add_argument("--root-path", default="", metavar="PREFIX",
                   help="the path prefix a reverse proxy serves the app under, e.g. /pgbatch")
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1", metavar="IPS",
                   help="proxies whose X-Forwarded-For/-Proto headers are trusted "
                        "(comma-separated, '*' for any)")
