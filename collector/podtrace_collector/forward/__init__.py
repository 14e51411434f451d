"""Forwarding beside the pipeline: trace-id routing, retrying queues and upstream exporters.

``forwarder`` (groups of lanes, routing), ``route`` (rendezvous hashing, request splitting),
``lane`` (one bounded retrying queue per endpoint), ``upstream`` (OTLP/gRPC and HTTP exporters).
"""
