"""An example pgbatch application: two tasks, used by docker-compose.yml and the README.

Run a worker for it from the repository root::

    pgbatch worker --app examples.app:app

and give it work::

    python -c "from examples.app import build_report; print(build_report.defer(day='2030-01-01'))"
    pgbatch enqueue emails --task send_email --kwargs '{"to": "a@example.com", "subject": "hi"}'
"""

from __future__ import annotations

import logging

import pgbatch

log = logging.getLogger("examples.app")

# No dsn: $PGBATCH_DSN, else the embedded PostgreSQL server.
app = pgbatch.App()


@app.task(name="send_email", queue="emails", max_attempts=5)
def send_email(to: str, subject: str) -> None:
    """Pretend to send an email (a sync task: it runs on a worker thread)."""
    log.info("sending %r to %s", subject, to)


@app.task(name="build_report", queue="reports", lease=120)
async def build_report(day: str) -> pgbatch.AckEffects:
    """Build a report (an async task), then mail it.

    The ack, the follow-up email job and the kv write commit in one transaction.
    """
    rows = 42  # ... the real work ...
    return pgbatch.AckEffects(
        enqueue=[send_email.request({"to": "ops@example.com", "subject": f"report {day}"})],
        kv_put={f"report:{day}": {"rows": rows}},
    )
