"""Prometheus metrics, on a registry of their own (one per service instance).

Every known label set is created at start, so a scrape sees zeros rather
than missing series; labels never carry addresses.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from mailroom.core.vocabulary import SERVICE_TRIGGERS, ItemKind

OUTCOMES = ("success", "failure")
HEALTH_STATUSES = ("pass", "warn", "fail")
CREDENTIAL_SERVICES = ("jmap", "carddav", "stream")


class Metrics:
    def __init__(
        self,
        states: Iterable[str],
        transitions: Iterable[tuple[str, str]],
        categories: Iterable[str],
        version: str,
    ) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.info = Info("mailroom", "Mailroom build information", registry=r)
        self.info.info({"version": version})
        self.state = Enum(
            "mailroom_eventsource_state",
            "EventSource connection state",
            states=list(states),
            registry=r,
        )
        self.reconnects = Counter(
            "mailroom_eventsource_reconnects", "EventSource reconnection attempts", registry=r
        )
        self.events = Counter(
            "mailroom_eventsource_events",
            "EventSource items received, by kind",
            ["kind"],
            registry=r,
        )
        self.last_event = Gauge(
            "mailroom_eventsource_last_event_timestamp_seconds",
            "When the stream last delivered anything (event, ping or comment)",
            registry=r,
        )
        self.missed_pushes = Counter(
            "mailroom_eventsource_missed_pushes",
            "Changes a safety-net poll found that push never announced",
            registry=r,
        )
        self.polls = Counter(
            "mailroom_polls",
            "Triage polls, by trigger and outcome",
            ["trigger", "outcome"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "mailroom_poll_duration_seconds",
            "Duration of triage polls",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.last_success = Gauge(
            "mailroom_last_successful_poll_timestamp_seconds",
            "When the last poll succeeded",
            registry=r,
        )
        self.triaged = Counter(
            "mailroom_triaged_senders", "Senders triaged, by category", ["category"], registry=r
        )
        self.refiled = Counter("mailroom_emails_refiled", "Emails re-filed", registry=r)
        self.conflicts = Counter(
            "mailroom_triage_conflicts",
            "Senders given the error label for conflicting labels",
            registry=r,
        )
        self.unflagged = Counter(
            "mailroom_error_label_failures",
            "Emails the server refused to give the error label (logged; triage went on)",
            registry=r,
        )
        self.sender_failures = Counter(
            "mailroom_triage_failures", "Sender triages that failed and will be retried", registry=r
        )
        self.collapsed = Counter(
            "mailroom_debounce_collapsed_events",
            "Push events absorbed by the debounce into an already scheduled poll",
            registry=r,
        )
        self.dry_run = Gauge(
            "mailroom_dry_run", "1 when running with --dry-run (nothing is written)", registry=r
        )
        self.internal_errors = Counter(
            "mailroom_internal_errors",
            "Exceptions caught in Mailroom's own loops (each logged with its traceback)",
            registry=r,
        )
        self.health = Gauge(
            "mailroom_health_status",
            "The /health verdict: 1 for the current status (pass, warn or fail), 0 for the others",
            ["status"],
            registry=r,
        )
        self.credentials_rejected = Gauge(
            "mailroom_credentials_rejected",
            "1 while a server rejects Mailroom's credentials, by service (jmap, carddav, stream)",
            ["service"],
            registry=r,
        )
        self.poll_interval = Gauge(
            "mailroom_poll_interval_seconds",
            "The safety-net poll interval (MAILROOM_POLL_INTERVAL), for alert rules",
            registry=r,
        )
        self.transitions = Counter(
            "mailroom_state_transitions",
            "EventSource state machine transitions",
            ["from", "to"],
            registry=r,
        )
        for status in HEALTH_STATUSES:
            self.health.labels(status)
        for service in CREDENTIAL_SERVICES:
            self.credentials_rejected.labels(service)
        for kind in ItemKind:
            self.events.labels(kind.value)
        for trigger in SERVICE_TRIGGERS:
            for outcome in OUTCOMES:
                self.polls.labels(trigger.value, outcome)
        for category in categories:
            self.triaged.labels(category)
        for source, target in transitions:
            self.transitions.labels(source, target)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
