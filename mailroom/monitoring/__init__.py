"""What ships for watching Mailroom: Prometheus alert rules and a Grafana dashboard."""
