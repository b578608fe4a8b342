"""The ETL job of the batch guide (docs/batch-guide.md): read a table, transform
each row, write another table, checkpointing every chunk.

    export PGBATCH_DSN=postgresql://app@db/app
    python examples/batch_etl.py setup          # tables, 20,000 orders, job registered
    pgbatch worker --app examples.batch_etl:app # runs it (kill -9 it mid-run: it resumes)
    pgbatch runs launch etl-orders '{"batch": "2026-12-01"}'
    pgbatch runs list

``shop.orders`` is read with the SQL reader (keyset pages on its own
connection, its cursor kept in the step's ExecutionContext), each row is
cleaned by the step's processor, and each chunk of 500 cleaned rows is
written to ``shop.orders_clean`` with the table writer, in the chunk's own
transaction together with the checkpoint: after a crash the step resumes
after the last committed key, and ``orders_clean``'s primary key proves that
no row was written twice.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg

from pgbatch import App
from pgbatch.batch import (
    BATCH_KIND,
    BatchExecutor,
    ChunkStep,
    Job,
    SqlReader,
    TableWriter,
    TaskletStep,
    register_jobs,
)

#: Orders ``setup`` creates.
ORDERS = 20_000
#: Seconds of "work" per row, so that a run lasts long enough to kill its worker.
DELAY = float(os.environ.get("ETL_DELAY", "0.001"))

app = App()  # its DSN: pgbatch worker's --dsn, else $PGBATCH_DSN


def check_source() -> None:
    """Step 1 (a tasklet): refuse to run on an empty source."""
    with psycopg.connect(app.dsn) as conn:
        row = conn.execute("select count(*) from shop.orders").fetchone()
    if not row or row[0] == 0:
        raise RuntimeError("shop.orders is empty: run `python examples/batch_etl.py setup`")


def read_orders() -> SqlReader:
    """Step 2's reader, made when the step opens (the worker's DSN is known by then)."""
    return SqlReader(app.dsn, "select id, customer, amount_cents from shop.orders", "id",
                     rows="tuple", page_size=500)


def clean(order: tuple[Any, ...]) -> tuple[Any, ...]:
    """Step 2's processor: the customer's name trimmed and title-cased, cents to an amount."""
    order_id, customer, cents = order
    time.sleep(DELAY)  # stands for real work: a lookup, a computation
    return order_id, " ".join(customer.split()).title(), Decimal(cents) / 100


write_clean = TableWriter("shop.orders_clean", ["id", "customer", "amount"])

etl = Job("etl-orders", [
    TaskletStep("check", check_source),
    ChunkStep("load", read_orders, write_clean, chunk_size=500, processor=clean),
])

# a short lease, so that a killed worker's run is taken over within seconds
app.register_executor(BATCH_KIND, BatchExecutor([etl], lease=timedelta(seconds=5)))


def setup(dsn: str) -> None:
    """Create shop.orders (ORDERS rows) and an empty shop.orders_clean; register the job."""
    with psycopg.connect(dsn) as conn:
        conn.execute("create schema if not exists shop")
        conn.execute("drop table if exists shop.orders, shop.orders_clean")
        conn.execute("create table shop.orders (id bigint primary key, customer text not null,"
                     " amount_cents bigint not null)")
        conn.execute("insert into shop.orders select i, '  customer  ' || (i %% 97),"
                     " 100 + i * 7 %% 10000 from generate_series(1, %s) i", [ORDERS])
        conn.execute("create table shop.orders_clean (id bigint primary key,"
                     " customer text not null, amount numeric(12, 2) not null)")
        register_jobs(conn, [etl])
    print(f"shop.orders: {ORDERS} rows; shop.orders_clean: empty; job {etl.name!r} registered")


if __name__ == "__main__":
    if sys.argv[1:] != ["setup"]:
        sys.exit("usage: python examples/batch_etl.py setup   (with $PGBATCH_DSN set)")
    setup(os.environ.get("PGBATCH_DSN") or sys.exit("set PGBATCH_DSN first"))
