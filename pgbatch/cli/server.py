"""``pgbatch server status|start|stop``: the embedded PostgreSQL server."""

from __future__ import annotations

import argparse

from pgbatch.cli.common import Commands, add_command


def cmd_server(args: argparse.Namespace) -> int:
    """Status, start or stop of the embedded server."""
    from pgbatch.embedded import PgServer, default_data_dir, default_server  # noqa: PLC0415

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


def register(commands: Commands) -> None:
    """Add ``server`` and its subcommands."""
    # no --dsn/--pooler here: these commands act on the embedded server only
    group = add_command(commands, "server", "the embedded PostgreSQL server: status, start, stop",
                        "The embedded PostgreSQL server that commands use when no --dsn or\n"
                        "$PGBATCH_DSN is given. Its data lives in your user data directory "
                        "and\nsurvives restarts; it keeps running after a command exits "
                        "until\n`pgbatch server stop`.",
                        "examples:\n  pgbatch server status\n  pgbatch server stop",
                        common=False)
    _add_output_options(group)
    ssub = group.add_subparsers(dest="server_command", metavar="SUBCOMMAND",
                                title="subcommands", required=True)
    for name, help_text, description in (
        ("status", "where its data lives, its DSN, running or not",
         "Print the data directory, state, DSN, version and log file. Exit status 0 when\n"
         "running, 3 when not."),
        ("start", "start it (creating it on first use) and print its DSN",
         "Start the embedded server, creating the cluster on first use; print its DSN."),
        ("stop", "stop it (the data is kept)", "Stop the embedded server; the data is kept."),
    ):
        _add_output_options(add_command(ssub, name, help_text, description, handler=cmd_server,
                                        common=False))


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """``-v`` and ``-q`` as on every command (defaults from the main parser)."""
    sup = argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="count", default=sup,
                        help="more output: DEBUG logs, tracebacks of errors")
    parser.add_argument("-q", "--quiet", action="store_true", default=sup,
                        help="less output: warnings and errors only")
