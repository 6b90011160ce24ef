"""Admin HTTP API and Prometheus metrics."""
