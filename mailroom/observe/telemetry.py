"""One place where the service's state is recorded: health, metrics, logs, systemd.

Writers run on the service's event loop; the HTTP server reads from its own
thread. One lock covers the health record and the metrics together, so a
transition changes both at once and a reader never sees half an update.
It is also the connection machine's listener.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from mailroom import __version__
from mailroom.core.vocabulary import ItemKind, Trigger
from mailroom.observe.health import HealthRecord, evaluate, http_status
from mailroom.observe.history import History, PassEntry
from mailroom.observe.metrics import CREDENTIAL_SERVICES, HEALTH_STATUSES, Metrics
from mailroom.observe.status_page import PageView
from mailroom.observe.systemd import SystemdNotifier
from mailroom.observe.transitions import Narrator

log = logging.getLogger(__name__)

LIVENESS_MIN_STALE = 120.0
PATH_KEPT = 1000  # transitions kept in Telemetry.path
PASSES_MISSED_BEFORE_DEAD = 3  # safety-net intervals without a pass starting


class Telemetry:
    def __init__(
        self,
        metrics: Metrics,
        poll_interval: float,
        *,
        pass_timeout: float = 120.0,
        degraded_interval: float | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        systemd: SystemdNotifier | None = None,
    ) -> None:
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.degraded_interval = degraded_interval or poll_interval
        self._wall = wall
        self._monotonic = monotonic
        self._systemd = systemd or SystemdNotifier({})
        self._lock = threading.Lock()
        self.record = HealthRecord(started_at=wall(), started_clock=monotonic())
        self.record.state_since = self.record.started_at
        # The machine's shape, for the status page's diagram (set by the service).
        self.diagram: tuple[tuple[str, ...], tuple[tuple[str, str], ...]] = ((), ())
        self._heartbeat = monotonic()
        # The supervisor turns at least once per poll interval (the safety-net
        # poll); a poll may take a few minutes against a struggling server.
        self.liveness_stale = max(LIVENESS_MIN_STALE, 5 * poll_interval)
        # Triage is wedged when no pass has started for 3 intervals; a pass may
        # legitimately run up to its deadline, so never less than that + 1.
        self.pass_stale = max(
            PASSES_MISSED_BEFORE_DEAD * poll_interval, pass_timeout + poll_interval
        )
        self._last_pass_start: float | None = None  # None: start-up not done
        # The states entered, newest last, for tests and logs: a ring, since a
        # service up for a year makes many transitions.
        self.path: deque[str] = deque(["connecting"], maxlen=PATH_KEPT)
        self.history = History()
        # Told when the account may have changed (a state change pushed, a pass
        # done): the web pages' Screener view is read again after it.
        self.account_changed: Callable[[], None] = lambda: None
        metrics.poll_interval.set(poll_interval)
        self._narrator = Narrator(poll_interval, self.degraded_interval)

    def waiting_for(self, holder: str | None) -> None:
        """A pass waits for another writer of the account (None: no longer)."""
        with self._lock:
            self.record.waiting_for = holder

    # -- the connection machine's listener ------------------------------------

    def after_transition(
        self, event: str, source: Any, target: Any, reason: str | None = None
    ) -> None:
        now = self._wall()
        old, new = str(source.id), str(target.id)
        with self._lock:
            rec = self.record
            previous_error = rec.last_error
            rec.eventsource_state = new
            rec.state_since = now
            if new == "connected":
                rec.connected_since = now
                rec.last_error = None
            elif old == "connected":
                rec.connected_since = None
            if reason and event != "opened":
                rec.last_error = reason
            if event in ("retry", "ended"):
                rec.reconnect_count += 1
                self.metrics.reconnects.inc()
            self.metrics.state.state(new)
            self.metrics.transitions.labels(old, new).inc()
            self.path.append(new)
        again = len(self.path) >= 3 and self.path[-3] == "degraded" and reason == previous_error
        self._narrator.transition(event, old, new, reason, again=again)
        self._systemd.status(self._narrator.status_line(new, reason, self._wall()))

    # -- stream and polls -----------------------------------------------------------

    def stream_item(self, kind: ItemKind, n: int = 1) -> None:
        now = self._wall()
        with self._lock:
            self.record.last_event_at = now
            self.metrics.events.labels(kind.value).inc(n)
            self.metrics.last_event.set(now)
        if kind is ItemKind.STATE:
            self.account_changed()

    def missed_push(self) -> None:
        with self._lock:
            self.metrics.missed_pushes.inc()

    def collapsed(self, count: int = 1) -> None:
        with self._lock:
            self.metrics.collapsed.inc(count)

    def starting(self, reason: str | None) -> None:
        """Why start-up has not finished (None: it has): /health fails meanwhile."""
        with self._lock:
            self.record.starting = reason

    def set_dry_run(self, dry_run: bool) -> None:
        with self._lock:
            self.record.dry_run = dry_run
            self.metrics.dry_run.set(1 if dry_run else 0)

    def pass_started(self) -> None:
        with self._lock:
            self._last_pass_start = self._monotonic()

    def internal_error(self) -> None:
        with self._lock:
            self.metrics.internal_errors.inc()

    def pass_finished(
        self,
        trigger: Trigger | str,
        duration: float,
        *,
        triaged: dict[str, int] | None = None,
        refiled: int = 0,
        conflicts: int = 0,
        failures: int = 0,
        unflagged: int = 0,
        missing: tuple[str, ...] | None = None,
        off: tuple[str, ...] | None = None,
        error: str | None = None,
        auth_rejected: str | None = None,
        ledger_failed: bool = False,
        senders: tuple[tuple[str, str], ...] = (),
    ) -> None:
        now = self._wall()
        trigger = Trigger(trigger)
        with self._lock:
            count = sum((triaged or {}).values())
            self.history.add_pass(PassEntry(now, trigger.value, count, duration, error))
            self.history.add_senders(now, senders)
            rec = self.record
            rec.last_trigger = trigger.value
            if missing is not None:  # a pass that got as far as looking
                rec.missing = missing
            if off is not None:
                rec.off = off
            self.metrics.poll_duration.observe(duration)
            self.metrics.sender_failures.inc(failures)
            if error is None:
                rec.last_poll_success_at = now
                rec.success_clock = self._monotonic()
                rec.consecutive_failures = 0
                rec.auth_rejected = None
                rec.ledger_error = None
                self.metrics.polls.labels(trigger.value, "success").inc()
                self.metrics.last_success.set(now)
                for category, count in (triaged or {}).items():
                    self.metrics.triaged.labels(category).inc(count)
                self.metrics.refiled.inc(refiled)
                self.metrics.conflicts.inc(conflicts)
                self.metrics.unflagged.inc(unflagged)
            else:
                rec.consecutive_failures += 1
                rec.auth_rejected = auth_rejected
                if ledger_failed:
                    rec.ledger_error = error
                rec.last_poll_error = error
                self.metrics.polls.labels(trigger.value, "failure").inc()

    def push_auth_rejected(self, what: str | None) -> None:
        with self._lock:
            self.record.stream_auth_rejected = what

    # -- readers (any thread) ------------------------------------------------------

    def heartbeat(self) -> None:
        with self._lock:
            self._heartbeat = self._monotonic()

    def health(self) -> tuple[int, dict[str, Any]]:
        with self._lock:
            status, body = evaluate(self.record, self._monotonic(), self.poll_interval, __version__)
        return http_status(status), body

    def liveness(self) -> tuple[int, dict[str, Any]]:
        """Is the service's own loop alive and triaging? Never asks the mail server.

        Before start-up is done (no pass yet) only the loop counts: retrying
        an unreachable server at boot is not a wedge.
        """
        with self._lock:
            now = self._monotonic()
            loop_age = now - self._heartbeat
            pass_age = None if self._last_pass_start is None else now - self._last_pass_start
        problems = []
        if loop_age > self.liveness_stale:
            problems.append(f"the service loop has not turned for {loop_age:.0f} s")
        if pass_age is not None and pass_age > self.pass_stale:
            problems.append(f"no triage pass has started for {pass_age:.0f} s")
        if problems:
            return 503, {"status": "fail", "output": "; ".join(problems)}
        return 200, {"status": "pass"}

    def page(self) -> PageView:
        """What the status page shows, read under the lock."""
        now = self._wall()
        with self._lock:
            rec = self.record
            status, body = evaluate(rec, self._monotonic(), self.poll_interval, __version__)
            passes, senders = self.history.snapshot()
            states, transitions = self.diagram
            return PageView(
                status=status,
                output=body["output"],
                version=__version__,
                dry_run=rec.dry_run,
                state=rec.eventsource_state,
                state_since=rec.state_since,
                states=states,
                transitions=transitions,
                passes=passes,
                senders=senders,
                last_error=rec.last_poll_error or rec.last_error,
                now=now,
            )

    def metrics_text(self) -> bytes:
        with self._lock:
            # What depends on the clock is brought up to date at each scrape.
            status, _ = evaluate(self.record, self._monotonic(), self.poll_interval, __version__)
            for name in HEALTH_STATUSES:
                self.metrics.health.labels(name).set(1 if name == status else 0)
            rejected = {
                _service(self.record.auth_rejected),
                "stream" if self.record.stream_auth_rejected else None,
            }
            for service in CREDENTIAL_SERVICES:
                self.metrics.credentials_rejected.labels(service).set(service in rejected)
            return self.metrics.render()


def _service(rejected_by: str | None) -> str | None:
    """The metric's service label for what rejected a pass ("JMAP (HTTP 401)", …)."""
    if rejected_by is None:
        return None
    return "carddav" if rejected_by.startswith("CardDAV") else "jmap"
