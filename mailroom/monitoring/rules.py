"""Prometheus alert rules for Mailroom (``mailroom monitoring rules``).

Rules are data; rendering gives a rule file Prometheus loads as is. Every
expression uses only series ``/metrics`` exposes, and each alert says what
to do. ``for_seconds`` lets a test load the same rules with short waits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    alert: str
    expr: str
    for_seconds: int
    severity: str  # critical: triage has stopped; warning: degraded, still triaging
    summary: str
    description: str


def rules(job: str = "mailroom") -> list[Rule]:
    sel = f'job="{job}"'
    return [
        Rule(
            "MailroomDown",
            f"up{{{sel}}} == 0",
            300,
            "critical",
            "Mailroom is down or cannot be scraped",
            "Prometheus has not reached Mailroom's /metrics for 5 minutes, so nothing is "
            "triaging labels. Check `systemctl status mailroom` and `journalctl -u mailroom`; "
            "if it runs, check that MAILROOM_HTTP_HOST/PORT match the scrape target.",
        ),
        Rule(
            "MailroomHealthFailing",
            f'mailroom_health_status{{{sel},status="fail"}} == 1',
            300,
            "critical",
            "Mailroom's /health is failing: triage is not happening",
            "/health has said fail for 5 minutes. Run `mailroom status` (or open the status "
            "page at / on the health port) to read why: rejected credentials, an unreachable "
            "server, or a mailbox or contact group deleted from the account.",
        ),
        Rule(
            "MailroomPushNotConnected",
            f'mailroom_eventsource_state{{{sel},mailroom_eventsource_state="connected"}} == 0',
            900,
            "warning",
            "Mailroom's push stream has not been connected for 15 minutes",
            "Triage still runs by polling, but labels now take up to the poll interval "
            "instead of seconds. The status page and /health name the last error; a proxy "
            "buffering the event stream, or a server with push switched off, are the usual "
            "causes. `mailroom check` tests the stream.",
        ),
        Rule(
            "MailroomNoSuccessfulPass",
            f"time() - mailroom_last_successful_poll_timestamp_seconds{{{sel}}}"
            f" > 3 * mailroom_poll_interval_seconds{{{sel}}}"
            f" and mailroom_last_successful_poll_timestamp_seconds{{{sel}}} > 0",
            60,
            "critical",
            "No successful triage pass for 3 poll intervals",
            "Every pass has failed for three poll intervals, so labelled emails are waiting. "
            "Read the failures with `journalctl -u mailroom` or on the status page; labels "
            "are kept and triaged once the cause is fixed.",
        ),
        Rule(
            "MailroomTriageFailures",
            f"increase(mailroom_triage_failures_total{{{sel}}}[15m]) > 0",
            900,
            "warning",
            "Senders keep failing to be triaged",
            "Some senders have failed again and again for 15 minutes (their labels are kept "
            "and retried). The log line 'triage failed' names each sender and the error: "
            "often a contact card the server refuses, or a mailbox the user deleted.",
        ),
        Rule(
            "MailroomCredentialsRejected",
            f"mailroom_credentials_rejected{{{sel}}} == 1",
            60,
            "critical",
            "A server rejects Mailroom's credentials ({{ $labels.service }})",
            "The {{ $labels.service }} server answered 401 or 403. Make a new Fastmail API "
            "token (Mail and Contacts scopes) or app password, put it in the credential "
            "file, and restart: `systemctl restart mailroom`. Mailroom retries slowly "
            "meanwhile, to stay clear of lock-outs.",
        ),
        Rule(
            "MailroomMissedPushes",
            f"increase(mailroom_eventsource_missed_pushes_total{{{sel}}}[6h]) >= 3",
            0,
            "warning",
            "Push keeps missing changes the safety-net poll then finds",
            "Three or more changes in 6 hours reached Mailroom only through the poll. "
            "Triage still happens, later. A proxy dropping events or a flaky stream is "
            "likely; compare the stream's reconnects on the dashboard.",
        ),
    ]


def _duration(seconds: int) -> str:
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def render_rules(job: str = "mailroom", *, for_seconds: int | None = None) -> str:
    """The rule file. ``for_seconds`` replaces every wait (tests only)."""
    lines = [
        "# Mailroom alert rules: put this file where Prometheus's rule_files points,",
        "# e.g. /etc/prometheus/rules/mailroom.yml, check it with",
        "# `promtool check rules mailroom.yml`, and reload Prometheus.",
        "groups:",
        "  - name: mailroom",
        "    rules:",
    ]
    for rule in rules(job):
        wait = rule.for_seconds if for_seconds is None or rule.for_seconds == 0 else for_seconds
        lines += [
            f"      - alert: {rule.alert}",
            f"        expr: {json.dumps(rule.expr)}",
            f"        for: {_duration(wait)}",
            "        labels:",
            f"          severity: {rule.severity}",
            "        annotations:",
            f"          summary: {json.dumps(rule.summary)}",
            f"          description: {json.dumps(rule.description)}",
        ]
    return "\n".join(lines) + "\n"
