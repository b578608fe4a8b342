"""A tiny pgbatch application for the CLI tests (``pgbatch worker --app tests.cli_app:app``)."""

from __future__ import annotations

import pgbatch

#: No dsn: the worker's --dsn / $PGBATCH_DSN.
app = pgbatch.App()

QUEUE = "cli.echo"


def echo(text: str) -> pgbatch.AckEffects:
    """Store ``text`` under kv key ``cli.echo`` (in the ack's transaction)."""
    return pgbatch.AckEffects(kv_put={"cli.echo": text})


echo_task = app.task(echo, name="cli.echo", queue=QUEUE)
