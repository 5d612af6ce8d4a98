"""What a running Mailroom says about itself: the health verdict (pure), metrics,
the telemetry the push supervisor writes, the HTTP server for /, /health, /livez
and /metrics, the status page, systemd notify, logging."""
