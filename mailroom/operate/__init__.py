"""The operator's commands: check, setup, status, the systemd unit."""
