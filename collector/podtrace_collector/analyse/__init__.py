"""Ingest-time analysis: workloads of spans, the request tree of a trace, per-minute aggregates.

Pure functions and plain data, no I/O: ``workload`` (span → workload@revision), ``requests``
(one trace → its request tree, origins, self time), ``critical`` (the critical path of every
request, its time per workload@revision), ``analyzer`` (traces → ``Aggregates``, with
``failures`` for failure attribution and ``timing`` for the time aggregates), ``pairing``
(requests waiting for the rest of a fragmented trace), ``cardinality`` (the cap on new
workload-revisions).
"""
