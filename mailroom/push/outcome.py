"""What a finished pass tells the push shell, and how it is reported.

The service builds a :class:`PassSummary` from its triage pass; the
supervisor hands the core only the states in it, and reports the rest here:
the log line users grep for (``poll finished … trigger=push``) and the
telemetry behind ``/health`` and ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from mailroom.core.vocabulary import FailureKind, Trigger
from mailroom.observe.telemetry import Telemetry
from mailroom.push.messages import Failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassSummary:
    """What a successful pass tells the supervisor (built by the service)."""

    seen_states: Mapping[str, str] = field(default_factory=dict)
    own_states: Mapping[str, frozenset[str]] = field(default_factory=dict)
    triaged: Mapping[str, int] = field(default_factory=dict)
    refiled: int = 0
    conflicts: int = 0
    failures: int = 0
    unflagged: int = 0  # emails that refused the error label
    missing: tuple[str, ...] = ()  # what the account lost: "mailbox 'Feed'", …
    off: tuple[str, ...] = ()  # optional labels missing: their features are off
    senders: tuple[tuple[str, str], ...] = ()  # (address, category) triaged, for the page
    # Set when the pass ran but must count as failed (every sender failed).
    failure: Failure | None = None


def report_pass(
    telemetry: Telemetry,
    trigger: Trigger,
    duration: float,
    summary: PassSummary | None,
    failure: Failure | None,
    unexpected: BaseException | None = None,
) -> None:
    fields: dict[str, object] = {"trigger": trigger.value, "duration": round(duration, 3)}
    if summary is not None:
        fields.update(
            senders=sum(summary.triaged.values()),
            emails_refiled=summary.refiled,
            conflicts=summary.conflicts,
            failures=summary.failures,
            unflagged=summary.unflagged,
            missing=summary.missing,
        )
    if failure is not None:
        fields["error"] = failure.message
        # A bug or an input nobody foresaw deserves its traceback.
        log.error("poll failed", exc_info=unexpected, extra={"fields": fields})
    else:
        busy = summary is not None and (
            sum(summary.triaged.values()) + summary.conflicts + summary.failures > 0
        )
        level = logging.INFO if busy or trigger is not Trigger.FALLBACK else logging.DEBUG
        log.log(level, "poll finished", extra={"fields": fields})
    if failure is not None:
        telemetry.pass_finished(
            trigger,
            duration,
            error=failure.message,
            auth_rejected=failure.rejected_by,
            ledger_failed=failure.kind is FailureKind.LEDGER,
            failures=summary.failures if summary is not None else 0,
            missing=summary.missing if summary is not None else None,
        )
    elif summary is not None:
        telemetry.pass_finished(
            trigger,
            duration,
            triaged=dict(summary.triaged),
            refiled=summary.refiled,
            conflicts=summary.conflicts,
            failures=summary.failures,
            unflagged=summary.unflagged,
            missing=summary.missing,
            off=summary.off,
            senders=summary.senders,
        )
