"""pgbatch's benchmark (``pgbatch bench``): the scenarios and bars of PERFORMANCE.md.

Modules: ``cli`` (arguments, orchestration), ``_harness`` (server, fresh databases,
WAL/transaction counters, machine info), ``_cpu`` (CPU and memory of processes),
``_procs`` and ``worker_proc`` (worker subprocesses and their line protocol), one
module per scenario (``b0_ceilings``,
``b1_enqueue``, ``b2_throughput``, ``b3_latency``, ``b4_growth``, ``b5_soak``,
``b8_fanout``), ``_model`` (figures, bars, anchors) and ``report`` (markdown and JSON).

Raw SQL is allowed here and nowhere else outside the client, the installer and
the migration runner: the benchmark measures the server itself (ceilings of raw
SQL, server statistics, WAL positions, table sizes) and loads data in bulk, so
each module that sends SQL of its own says so and why.
"""
