"""``python -m pgbatch.bench``: the same as ``pgbatch bench``."""

from pgbatch.bench.cli import main

raise SystemExit(main())
