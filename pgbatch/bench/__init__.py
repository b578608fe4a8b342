"""pgbatch's benchmark (``pgbatch bench``): scenarios B0-B9, their figures and bars.

Each scenario measures what a user of a job queue asks about first: the
machine's own ceilings (B0), enqueue rates (B1), processing throughput (B2),
wake-up latency (B3), claim cost as the store grows (B4), a soak under
continuous load (B5), the batch engine's chunk step (B6), wake-up fan-out
(B8) and the web server's jobs list over a large archive (B9). Each figure
is the median of several runs in fresh databases, with its bar (a target
relative to peers' published figures or to this machine's B0 ceilings) and
a verdict; every scenario module says at its top what it
measures and how.

Modules: ``cli`` (arguments, orchestration), ``_harness`` (server, fresh databases,
WAL/transaction counters, machine info), ``_cpu`` (CPU and memory of processes),
``_procs`` and ``worker_proc`` (worker subprocesses and their line protocol), one
module per scenario (``b0_ceilings``,
``b1_enqueue``, ``b2_throughput``, ``b3_latency``, ``b4_growth``, ``b5_soak``,
``b8_fanout``, ``b9_web``), ``_model`` (figures, bars, anchors) and ``report`` (markdown and JSON).

Raw SQL is allowed here and nowhere else outside the client, the installer and
the migration runner: the benchmark measures the server itself (ceilings of raw
SQL, server statistics, WAL positions, table sizes) and loads data in bulk, so
each module that sends SQL of its own says so and why.
"""
