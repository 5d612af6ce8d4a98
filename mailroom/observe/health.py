"""The /health verdict, computed from a plain record (pure, no IO).

``fail`` (HTTP 503) means triage is not happening: no successful poll for
over two poll intervals (the start counts as one, a grace), polls failing
again and again, or credentials rejected. ``warn`` (HTTP 200) means push is
not CONNECTED but polling works. The body carries no secrets or addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FAILURES_BEFORE_FAIL = 3


@dataclass
class HealthRecord:
    """What /health reports. Times ending ``_at`` are wall-clock seconds, for display;
    ``_clock`` ones are monotonic, for deciding (an NTP step must not flip the verdict)."""

    started_at: float  # wall-clock seconds
    eventsource_state: str = "connecting"
    state_since: float | None = None  # when the current state was entered
    connected_since: float | None = None
    last_event_at: float | None = None
    reconnect_count: int = 0
    last_error: str | None = None
    last_poll_success_at: float | None = None
    last_trigger: str | None = None
    consecutive_failures: int = 0
    auth_rejected: str | None = None  # what rejected a poll, e.g. "JMAP (HTTP 401)"
    last_poll_error: str | None = None
    missing: tuple[str, ...] = ()  # what the account lost while running
    off: tuple[str, ...] = ()  # optional labels missing: a note, triage goes on
    dry_run: bool = False
    starting: str | None = None  # why start-up has not finished yet
    stream_auth_rejected: str | None = None  # e.g. "EventSource (HTTP 403)"
    ledger_error: str | None = None  # why the ledger cannot be written, and the fix
    waiting_for: str | None = None  # another writer of the account a pass waits for
    started_clock: float = 0.0
    success_clock: float | None = None  # when a pass last succeeded


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def evaluate(
    record: HealthRecord, clock: float, poll_interval: float, version: str
) -> tuple[str, dict[str, Any]]:
    """The verdict and body; ``clock`` is now on the monotonic clock."""
    reasons = _failing(record, clock, poll_interval)
    if reasons:
        status = "fail"
    elif record.waiting_for:
        status = "warn"
        reasons.append(f"a pass waits for {record.waiting_for} to finish writing the account")
    elif record.eventsource_state != "connected":
        status = "warn"
        reasons.append(f"push is {record.eventsource_state}; polling carries triage")
    else:
        status = "pass"
    body = {
        "status": status,
        "version": version,
        "dry_run": record.dry_run,
        "output": "; ".join(reasons) or None,
        # Not a failure: an account set up by an older Mailroom triages without
        # these labels; only their features wait for `mailroom setup --apply`.
        "notes": [
            f"missing in the account: {label}, off until `mailroom setup --apply` makes it"
            for label in record.off
        ],
        "eventsource": {
            "status": record.eventsource_state,
            "connected_since": iso(record.connected_since),
            "last_event_at": iso(record.last_event_at),
            "reconnect_count": record.reconnect_count,
            "last_error": record.last_error,
        },
        "polling": {
            "last_success_at": iso(record.last_poll_success_at),
            "last_trigger": record.last_trigger,
            "consecutive_failures": record.consecutive_failures,
            "last_error": record.last_poll_error,
            "interval_seconds": poll_interval,
        },
    }
    return status, body


def http_status(status: str) -> int:
    return 503 if status == "fail" else 200


def _failing(record: HealthRecord, clock: float, poll_interval: float) -> list[str]:
    """Why triage has stopped, if it has: each reason fails the check."""
    reasons = []
    reference = record.success_clock if record.success_clock is not None else record.started_clock
    if clock - reference > 2 * poll_interval:
        reasons.append("no successful poll for over two poll intervals")
    if record.consecutive_failures >= FAILURES_BEFORE_FAIL:
        reasons.append(f"{record.consecutive_failures} polls failed in a row")
    for rejected in (record.auth_rejected, record.stream_auth_rejected):
        if rejected:
            reasons.append(f"credentials rejected by {rejected}")
    if record.ledger_error:
        reasons.append(
            f"nothing is triaged while the ledger cannot be written: {record.ledger_error}"
        )
    if record.missing:
        reasons.append(
            f"missing in the account: {', '.join(record.missing)} "
            "(its categories cannot be triaged; run `mailroom setup --apply`)"
        )
    if record.starting:
        reasons.append(f"starting: {record.starting}")
    return reasons
