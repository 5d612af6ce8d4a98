"""The pass scheduler: when a triage pass starts, sans IO.

One pass at a time. Push events are debounced; the safety-net interval
guarantees a pass at least that often; a reconnect owes a catch-up pass; a
pass over its deadline is cancelled. State events that arrive during a pass
are judged when it ends (it may already cover them); our own writes' states
are never news.
"""

from __future__ import annotations

from collections.abc import Mapping

from mailroom.core.vocabulary import Trigger
from mailroom.push.audit import PushAudit
from mailroom.push.debounce import Debouncer
from mailroom.push.jmap_states import StateTracker
from mailroom.push.messages import Action, CancelPass, Collapsed, PassFinished, StartPass
from mailroom.push.policy import PushPolicy

DEFERRED_KEPT = 1000  # state events held during one pass; older ones add nothing
DEFERRED_BYTES = 64 * 1024  # and their size: past either, they are merged into the newest


class PassScheduler:
    def __init__(self, policy: PushPolicy) -> None:
        self.policy = policy
        self.debouncer = Debouncer(policy.debounce, policy.debounce_max_wait)
        self.tracker = StateTracker()
        self.audit = PushAudit(policy.debounce + policy.missed_push_grace)
        self.running: Trigger | None = None
        self.started_at: float | None = None
        self.cancel_sent = False
        self.last_end: float | None = None  # None: the start-up pass is still owed
        self.catchup_pending = False
        self._deferred: list[dict[str, str]] = []
        self._deferred_bytes = 0
        self._known_before: dict[str, str] = {}

    def deadline(self, interval: float) -> float | None:
        if self.running is not None:
            return None if self.cancel_sent else self._pass_deadline()
        times = [self.debouncer.due_at()]
        if self.last_end is not None:
            times.append(self.last_end + interval)
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def _pass_deadline(self) -> float:
        return (self.started_at or 0.0) + self.policy.pass_timeout

    def start(self, trigger: Trigger, now: float, out: list[Action]) -> None:
        if trigger is not Trigger.PUSH:
            self.debouncer.pass_began()  # it covers whatever was pending
        self.running = trigger
        self.started_at = now
        self.cancel_sent = False
        self._known_before = dict(self.tracker.known)
        out.append(StartPass(trigger))

    def request_catchup(self, now: float, out: list[Action]) -> None:
        if self.running is None:
            self.start(Trigger.CATCHUP, now, out)
        else:
            self.catchup_pending = True

    def on_states(self, states: Mapping[str, str], now: float, out: list[Action]) -> None:
        if self.running is not None:
            size = sum(len(k) + len(v) for k, v in states.items())
            full = self._deferred_bytes + size > DEFERRED_BYTES
            if self._deferred and (len(self._deferred) >= DEFERRED_KEPT or full):
                self._deferred[-1].update(states)  # keep the newest: states only move forward
            else:
                self._deferred.append(dict(states))
                self._deferred_bytes += size
            return
        self.audit.pushed(states)
        if self.tracker.push(states):
            if self.debouncer.pending:
                out.append(Collapsed())
            self.debouncer.event(now)

    def finished(
        self, msg: PassFinished, now: float, connected: bool, out: list[Action]
    ) -> float | None:
        """Book a finished pass; returns when it started (None: none was running)."""
        if self.running is None:
            return None
        trigger, self.running = self.running, None
        started = self.started_at if self.started_at is not None else now
        self.started_at = None
        self.last_end = now
        self.debouncer.pass_finished()
        if msg.ok:
            own = {name: set(values) for name, values in msg.own_states.items()}
            self.tracker.pass_saw(msg.seen_states, own)
            if trigger is Trigger.FALLBACK and connected:
                self.audit.pass_saw(msg.seen_states, self._known_before, own, now)
        deferred, self._deferred = self._deferred, []
        self._deferred_bytes = 0
        for states in deferred:
            self.on_states(states, now, out)
        if self.catchup_pending:
            self.catchup_pending = False
            self.start(Trigger.CATCHUP, now, out)
        return started

    def on_timers(self, now: float, interval: float, out: list[Action]) -> None:
        if self.running is not None:
            if not self.cancel_sent and now >= self._pass_deadline():
                self.cancel_sent = True
                out.append(CancelPass())
            return
        if self.debouncer.take(now):
            self.start(Trigger.PUSH, now, out)
        elif self.last_end is not None and now >= self.last_end + interval:
            self.start(Trigger.FALLBACK, now, out)
