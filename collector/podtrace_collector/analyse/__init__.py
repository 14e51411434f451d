"""Ingest-time analysis: workloads of spans, the request tree of a trace, per-minute aggregates.

Pure functions and plain data, no I/O: ``workload`` (span → workload@revision), ``requests``
(one trace → its request tree, origins, self time), ``critical`` (the critical path of every
request, its time per workload@revision), ``analyzer`` (traces → ``Aggregates``, with
``failures`` for failure attribution, ``timing`` for the time aggregates and ``entries`` for
entry points and call edges), ``pairing`` and ``waiting`` (requests waiting for the rest of a
fragmented trace), ``fragments`` (failing fragments held whole), ``cardinality`` (the cap on new
workload-revisions).
"""
