"""The push supervisor: decides when ``poll()`` runs.

One coroutine owns every decision. It waits for the next message (from the
stream reader or a finished poll) or the next deadline (reconnect, debounce,
safety-net poll, liveness, missed-push audit, systemd watchdog), never both
sleeping and spinning. The cores it drives (connection machine, backoff,
debouncer, state tracker, audit) are pure; this module only wires them to
time and tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from mailroom.carddav.client import CardDavAuthError
from mailroom.jmap.errors import JmapAuthError
from mailroom.observe.systemd import SystemdNotifier
from mailroom.observe.telemetry import Telemetry
from mailroom.push.audit import PushAudit
from mailroom.push.backoff import Backoff
from mailroom.push.connection import ConnectionMachine
from mailroom.push.debounce import Debouncer
from mailroom.push.events import Ignored, Malformed, Ping, StateEvent, interpret
from mailroom.push.sse import Comment, Event, Oversized, Retry
from mailroom.push.states import StateTracker
from mailroom.push.stream import (
    Ended,
    Failed,
    Opened,
    Received,
    Refused,
    StreamMessage,
    read_stream,
)
from mailroom.triage.workflow import PollResult

log = logging.getLogger("mailroom.push")

STREAM_TYPES = "Email,Mailbox"


@dataclass(frozen=True)
class PushPolicy:
    poll_interval: float = 60.0
    debounce: float = 3.0
    max_wait: float | None = None  # default: max(10 s, 5 x debounce)
    ping: int = 30  # asked of the server
    liveness_margin: float = 10.0  # dead after 2 x ping + this (70 s at ping=30)
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    healthy_after: float = 30.0
    degrade_after: float = 60.0
    degraded_poll_interval: float = 30.0
    missed_push_grace: float = 5.0
    open_timeout: float = 30.0  # until the stream's response headers

    @property
    def debounce_max_wait(self) -> float:
        return self.max_wait if self.max_wait is not None else max(10.0, 5 * self.debounce)


@dataclass(frozen=True)
class _PollDone:
    trigger: str
    result: PollResult | None
    error: BaseException | None
    duration: float


_STOP = object()

PollFn = Callable[[], Awaitable[PollResult]]
StreamUrlFn = Callable[[bool], Awaitable[str | None]]


def auth_failure(exc: BaseException) -> str | None:
    if isinstance(exc, JmapAuthError):
        return f"JMAP (HTTP {exc.status})"
    if isinstance(exc, CardDavAuthError):
        return f"CardDAV (HTTP {exc.status})"
    return None


class Supervisor:
    def __init__(
        self,
        *,
        policy: PushPolicy,
        poll: PollFn,
        stream_url: StreamUrlFn,
        account_id: str,
        auth_headers: Callable[[], dict[str, str]],
        http: httpx.AsyncClient,
        telemetry: Telemetry,
        poll_errors: tuple[type[BaseException], ...],
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        systemd: SystemdNotifier | None = None,
    ) -> None:
        self.policy = policy
        self._poll = poll
        self._stream_url = stream_url
        self._account_id = account_id
        self._auth_headers = auth_headers
        self._http = http
        self.telemetry = telemetry
        self._poll_errors = poll_errors
        self._clock = clock
        self._systemd = systemd or SystemdNotifier({})
        self.machine = ConnectionMachine(degrade_after=policy.degrade_after, listeners=[telemetry])
        self._backoff = Backoff(
            base=policy.backoff_base,
            cap=policy.backoff_cap,
            healthy_after=policy.healthy_after,
            rng=rng or random.Random(),
        )
        self._debouncer = Debouncer(policy.debounce, policy.debounce_max_wait)
        self._tracker = StateTracker()
        self._audit = PushAudit(policy.debounce + policy.missed_push_grace)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        # connection
        self._conn_id = 0
        self._stream_task: asyncio.Task[None] | None = None
        self._connected_at: float | None = None
        self._last_activity = 0.0
        self._last_event_id = ""
        self._retry_floor: float | None = None
        self._pings_seen = False
        self._ping_interval = float(policy.ping)
        self._outage_since: float | None = None
        self._reconnect_at: float | None = None
        self._needs_catchup = False
        self._auth_refused = False
        # polls
        self._poll_task: asyncio.Task[None] | None = None
        self._last_poll_end: float | None = None
        self._known_before: dict[str, str] = {}
        self._deferred: list[dict[str, str]] = []
        self._catchup_pending = False
        self._next_heartbeat = 0.0
        # Waking costs CPU even when there is nothing to do, so the loop only
        # ticks on its own when systemd's watchdog wants a ping (at half its
        # WatchdogSec). Otherwise it wakes for real work only: the safety-net
        # poll guarantees one wake per poll interval.
        self._heartbeat_every = self._systemd.watchdog_interval
        self._malformed_logged = 0

    # -- main loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(self._forward_stop(stop))
        now = self._clock()
        self._next_heartbeat = now
        self._connect(refresh=False)
        self._start_poll("startup")
        try:
            while True:
                now = self._clock()
                deadline = self._next_deadline(now)
                try:
                    message = await asyncio.wait_for(
                        self._queue.get(), None if deadline is None else max(0.0, deadline - now)
                    )
                except TimeoutError:
                    message = None
                if message is _STOP:
                    break
                if message is not None:
                    self._handle(message)
                self._run_timers(self._clock())
        finally:
            stopper.cancel()
            await self._shutdown()

    async def _forward_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._queue.put_nowait(_STOP)

    async def _shutdown(self) -> None:
        self._systemd.stopping()
        self._conn_id += 1
        if self._stream_task is not None:
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stream_task
        if self._poll_task is not None:
            # Finish the poll in flight: its writes end with the label removal.
            log.info("stopping after the poll in flight")
            await asyncio.shield(self._poll_task)
            self._drain_poll_done()

    def _drain_poll_done(self) -> None:
        while not self._queue.empty():
            message = self._queue.get_nowait()
            if isinstance(message, _PollDone):
                self._poll_done(message, self._clock())

    @property
    def state(self) -> str:
        return self.machine.state_name

    def _interval(self) -> float:
        if self.state == "degraded" and not self._auth_refused:
            return min(self.policy.poll_interval, self.policy.degraded_poll_interval)
        return self.policy.poll_interval

    def _next_deadline(self, now: float) -> float | None:
        candidates = []
        if self._heartbeat_every is not None:
            candidates.append(self._next_heartbeat)
        if self._reconnect_at is not None:
            candidates.append(self._reconnect_at)
        if self._poll_task is None:
            due = self._debouncer.due_at()
            if due is not None:
                candidates.append(due)
            if self._last_poll_end is not None:
                candidates.append(self._last_poll_end + self._interval())
        live = self._liveness_deadline()
        if live is not None:
            candidates.append(live)
        audit = self._audit.deadline()
        if audit is not None and self.state == "connected":
            candidates.append(audit)
        return min(candidates) if candidates else None

    def _liveness_deadline(self) -> float | None:
        if self.state != "connected" or not self._pings_seen:
            return None
        return self._last_activity + 2 * self._ping_interval + self.policy.liveness_margin

    def _run_timers(self, now: float) -> None:
        self.telemetry.heartbeat()  # /livez: the supervisor is still turning
        if self._heartbeat_every is not None and now >= self._next_heartbeat:
            self._systemd.watchdog()
            self._next_heartbeat = now + self._heartbeat_every
        if self._reconnect_at is not None and now >= self._reconnect_at:
            self._reconnect_at = None
            refresh = self.state == "degraded"
            self.machine.send("retry")
            self._connect(refresh=refresh)
        live = self._liveness_deadline()
        if live is not None and now >= live:
            silent = now - self._last_activity
            self._drop(
                f"stream silent for {silent:.0f} s (pings expected every {self._ping_interval:g} s)"
            )
        if self.state == "connected" and self._audit.missed(now):
            self._audit.clear()
            self.telemetry.missed_push()
            self._drop("a safety-net poll found a change that push never announced")
        if self._poll_task is None:
            if self._debouncer.take(now):
                self._start_poll("push", from_debouncer=True)
            elif self._last_poll_end is not None and now >= self._last_poll_end + self._interval():
                self._start_poll("fallback")

    # -- the stream ---------------------------------------------------------------

    def _connect(self, *, refresh: bool) -> None:
        self._conn_id += 1
        self._stream_task = asyncio.create_task(self._stream(self._conn_id, refresh))

    async def _stream(self, conn_id: int, refresh: bool) -> None:
        def emit(message: StreamMessage) -> None:
            self._queue.put_nowait((conn_id, message))

        try:
            url = await self._stream_url(refresh)
            if url is None:
                emit(Refused(0, "the session has no eventSourceUrl"))
                return
            await read_stream(
                self._http,
                url,
                self._auth_headers(),
                self._last_event_id,
                emit,
                open_timeout=self.policy.open_timeout,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure is reported, never fatal
            emit(Failed(f"{type(exc).__name__}: {exc}"))

    def _handle(self, message: Any) -> None:
        now = self._clock()
        if isinstance(message, _PollDone):
            self._poll_done(message, now)
            return
        conn_id, msg = message
        if conn_id != self._conn_id:
            return  # from a connection we already gave up on
        if isinstance(msg, Opened):
            self._opened(now)
        elif isinstance(msg, Received):
            self._received(msg, now)
        elif isinstance(msg, Refused):
            self._refused(msg, now)
        elif isinstance(msg, Failed):
            self._failed(msg, now)
        elif isinstance(msg, Ended):
            self._ended(msg, now)

    def _floor(self, retry_after: float | None = None) -> float | None:
        floors = [f for f in (retry_after, self._retry_floor) if f is not None]
        return max(floors) if floors else None

    def _opened(self, now: float) -> None:
        # The outage clock keeps running until this connection proves healthy.
        self._connected_at = self._last_activity = now
        if self._auth_refused:
            self._auth_refused = False
            self.telemetry.push_auth_rejected(None)
        self.machine.send("opened")
        if self._needs_catchup:
            self._needs_catchup = False
            self._request_poll("catchup")

    def _refused(self, msg: Refused, now: float) -> None:
        self._outage_since = self._outage_since or now
        self._needs_catchup = True
        if msg.auth:
            self._auth_refused = True
            self.telemetry.push_auth_rejected(f"EventSource (HTTP {msg.status})")
        self.machine.send("refused", reason=msg.reason)
        self._schedule_reconnect(now, self._floor())  # DEGRADED: at the cap

    def _failed(self, msg: Failed, now: float) -> None:
        self._outage_since = self._outage_since or now
        self._needs_catchup = True
        self.machine.send("failed", outage=now - self._outage_since, reason=msg.reason)
        self._schedule_reconnect(now, self._floor(msg.retry_after))

    def _schedule_reconnect(self, now: float, floor: float | None) -> None:
        # While push is unavailable, retry at the cap; otherwise back off.
        if self.state == "degraded":
            delay = self._backoff.at_cap(floor)
        else:
            delay = self._backoff.next_delay(floor)
        self._reconnect_at = now + delay

    def _closed(self, now: float) -> float:
        """Book an open connection's end; returns how long it lasted."""
        lasted = now - (self._connected_at or now)
        self._connected_at = None
        self._backoff.connection_ended(lasted)
        if lasted >= self.policy.healthy_after:
            self._outage_since = None  # it was healthy: any outage starts afresh
        return lasted

    def _ended(self, msg: Ended, now: float) -> None:
        lasted = self._closed(now)
        if msg.error is None and lasted >= self.policy.healthy_after:
            # Routine: Cyrus ends every stream after a few minutes. Reconnect at
            # once; Last-Event-ID (or a connect snapshot) covers the gap, else
            # a catch-up poll does.
            self._needs_catchup = not self._last_event_id
            self.machine.send("ended")
            self._connect(refresh=False)
            return
        self._lose(msg.error or f"stream closed after {lasted:.1f} s", now)

    def _drop(self, reason: str) -> None:
        """Give up on the open stream (silent, or missed a push) and reconnect."""
        now = self._clock()
        self._conn_id += 1
        if self._stream_task is not None:
            self._stream_task.cancel()
        self._closed(now)
        self._lose(reason, now)

    def _lose(self, reason: str, now: float) -> None:
        if self._outage_since is None:
            self._outage_since = now
        self._needs_catchup = True
        self._audit.clear()
        self.machine.send("lost", outage=now - self._outage_since, reason=reason)
        self._schedule_reconnect(now, self._floor())

    def _received(self, msg: Received, now: float) -> None:
        self._last_activity = now
        self._last_event_id = msg.last_event_id
        item = msg.item
        if isinstance(item, Event):
            meaning = interpret(item, self._account_id, asked_ping=self.policy.ping)
            if isinstance(meaning, StateEvent):
                self.telemetry.stream_item("state")
                self._on_states(meaning.states, now)
            elif isinstance(meaning, Ping):
                self.telemetry.stream_item("ping")
                self._pings_seen = True
                self._ping_interval = meaning.interval or float(self.policy.ping)
            elif isinstance(meaning, Malformed):
                self.telemetry.stream_item("malformed")
                self._log_malformed(meaning.reason)
            elif isinstance(meaning, Ignored):
                self.telemetry.stream_item("ignored")
                log.debug("ignored event", extra={"fields": {"reason": meaning.reason}})
        elif isinstance(item, Comment):
            self.telemetry.stream_item("comment")
        elif isinstance(item, Retry):
            self.telemetry.stream_item("retry")
            self._retry_floor = item.milliseconds / 1000
        elif isinstance(item, Oversized):
            self.telemetry.stream_item("oversized")
            log.warning(
                "dropped an oversized stream " + item.what,
                extra={"fields": {"limit_bytes": 1 << 20}},
            )

    def _log_malformed(self, reason: str) -> None:
        # A broken server can send thousands; the metric counts them all.
        self._malformed_logged += 1
        level = logging.WARNING if self._malformed_logged <= 10 else logging.DEBUG
        log.log(level, "malformed event ignored", extra={"fields": {"reason": reason}})

    def _on_states(self, states: dict[str, str], now: float) -> None:
        if self._poll_task is not None:
            # Judged when the poll is done: it may already cover them.
            self._deferred.append(states)
            return
        self._audit.pushed(states)
        if self._tracker.push(states):
            if self._debouncer.pending:
                self.telemetry.collapsed()
            self._debouncer.event(now)

    # -- polls --------------------------------------------------------------------

    def _request_poll(self, trigger: str) -> None:
        if self._poll_task is None:
            self._start_poll(trigger)
        else:
            self._catchup_pending = True

    def _start_poll(self, trigger: str, *, from_debouncer: bool = False) -> None:
        if not from_debouncer:
            self._debouncer.poll_started()
        self._known_before = dict(self._tracker.known)
        self._poll_task = asyncio.create_task(self._run_poll(trigger))

    async def _run_poll(self, trigger: str) -> None:
        started = self._clock()
        result: PollResult | None = None
        error: BaseException | None = None
        try:
            result = await self._poll()
        except self._poll_errors as exc:
            error = exc
        self._queue.put_nowait(_PollDone(trigger, result, error, self._clock() - started))

    def _poll_done(self, done: _PollDone, now: float) -> None:
        self._poll_task = None
        self._last_poll_end = now
        self._debouncer.poll_finished()
        result = done.result
        if result is None:
            error = done.error or RuntimeError("poll failed")
            auth = auth_failure(error)
            log.error(
                "poll failed",
                extra={
                    "fields": {
                        "trigger": done.trigger,
                        "error": str(error),
                        "duration": round(done.duration, 3),
                    }
                },
            )
            self.telemetry.poll_finished(
                done.trigger, done.duration, error=str(error), auth_rejected=auth
            )
        else:
            self._report_poll(done, result)
            self._tracker.polled(result.seen_states, result.own_states)
            if done.trigger == "fallback" and self.state == "connected":
                self._audit.polled(result.seen_states, self._known_before, result.own_states, now)
        deferred, self._deferred = self._deferred, []
        for states in deferred:
            self._on_states(states, now)
        if self._catchup_pending:
            self._catchup_pending = False
            self._start_poll("catchup")

    def _report_poll(self, done: _PollDone, result: PollResult) -> None:
        fields = {
            "trigger": done.trigger,
            "senders": result.senders_triaged,
            "emails_refiled": result.emails_refiled,
            "conflicts": result.conflicts,
            "failures": result.failures,
            "duration": round(done.duration, 3),
        }
        busy = result.senders_triaged or result.conflicts or result.failures
        level = logging.INFO if busy or done.trigger != "fallback" else logging.DEBUG
        log.log(level, "poll finished", extra={"fields": fields})
        if done.trigger == "push":
            log.debug(
                "debounce",
                extra={
                    "fields": {
                        "events_received": self._debouncer.events,
                        "polls_triggered": self._debouncer.polls,
                    }
                },
            )
        self.telemetry.poll_finished(
            done.trigger,
            done.duration,
            triaged=dict(result.triaged),
            refiled=result.emails_refiled,
            conflicts=result.conflicts,
            failures=result.failures,
        )
