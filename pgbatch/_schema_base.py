"""What every table module of :mod:`pgbatch.schema` shares: the schema name and the metadata."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.dialects.postgresql import TIMESTAMP

#: The PostgreSQL schema every pgbatch object lives in.
SCHEMA = "pgbatch"

#: The metadata of every pgbatch table (schema ``pgbatch``).
metadata = MetaData(schema=SCHEMA)

#: ``timestamptz``.
TSTZ = TIMESTAMP(timezone=True)
