"""pgbatch's benchmark (``pgbatch bench``): the scenarios and bars of PERFORMANCE.md.

Modules: ``cli`` (arguments, orchestration), ``_harness`` (server, fresh databases,
CPU/WAL/transaction counters, machine info), ``_procs`` and ``worker_proc`` (worker
subprocesses and their line protocol), one module per scenario (``b0_ceilings``,
``b1_enqueue``, ``b2_throughput``, ``b3_latency``, ``b4_growth``, ``b5_soak``,
``b8_fanout``), ``_model`` (figures, bars, anchors) and ``report`` (markdown and JSON).
"""
