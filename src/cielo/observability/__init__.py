"""Metrics (Prometheus), the access log, and the health endpoints' checks (docs/monitoring.md)."""
