"""The command line's commands: each reads its arguments, calls the packages
that do the work, and prints (check, setup, screener, triage, undo, reset,
history, status, the systemd unit)."""
