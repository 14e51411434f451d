"""OTLP receivers: gRPC and HTTP transports, decoding, and their one table of answers."""
