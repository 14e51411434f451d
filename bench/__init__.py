"""podtrace benchmarks: `make bench` (python -m bench) prints figures measured side by side."""
