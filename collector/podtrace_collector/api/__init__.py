"""The API port: query routes, error mapping, health and metrics, and the web page."""
