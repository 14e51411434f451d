"""Ingest-time analysis: workloads of spans, the request tree of a trace, per-minute aggregates.

Pure functions and plain data, no I/O: ``workload`` (span → workload@revision), ``requests``
(one trace → its request tree, origins, self time), ``critical`` (the critical path of every
request, its time per workload@revision), ``analyzer`` (traces → ``Aggregates``).
"""
