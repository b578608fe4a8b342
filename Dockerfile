# pgbatch with the example application (examples/app.py), for docker-compose.yml.
# Untested here (no Docker engine on the machines this was written on).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# pgbatch/_sql and pgbatch/_migrations are symlinks to sql/ and migrations/
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY migrations ./migrations
COPY pgbatch ./pgbatch
RUN pip install .

# the application; `pgbatch worker` imports it from the working directory
COPY examples ./examples

RUN useradd --system --no-create-home app
USER app

CMD ["pgbatch", "--help"]
