"""``python -m pgbatch``: the ``pgbatch`` command line."""

import sys

from pgbatch.cli import main

sys.exit(main())
