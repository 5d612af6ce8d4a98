"""The push supervisor: the asyncio shell around the push core.

It executes the core's actions (stream tasks, pass tasks, telemetry) and
sleeps until the core's next deadline or the next message, whichever comes
first. It decides nothing. Every message and every action is handled inside
a guard: an exception anywhere is logged with its traceback, counted, and
the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from mailroom.core.vocabulary import FailureKind, Trigger
from mailroom.observe.systemd import SystemdNotifier
from mailroom.observe.telemetry import Telemetry
from mailroom.push.core import PushCore
from mailroom.push.messages import (
    Action,
    CancelPass,
    CancelStream,
    Collapsed,
    CountItem,
    Failure,
    Message,
    MissedPush,
    OpenStream,
    PassFinished,
    Report,
    StartPass,
    StreamAuth,
    StreamFailed,
    StreamItem,
    StreamMessage,
    StreamRefused,
    Tick,
)
from mailroom.push.outcome import PassSummary, report_pass
from mailroom.push.policy import PushPolicy
from mailroom.push.stream import read_stream

log = logging.getLogger(__name__)
# Stream items read but not yet handled: a server flooding the stream is read
# no faster than the core keeps up, so memory stays flat.
STREAM_BACKLOG = 256


PassFn = Callable[[Trigger], Coroutine[Any, Any, PassSummary]]
Classifier = Callable[[BaseException], Failure]
StreamUrlFn = Callable[[bool], Awaitable[str | None]]


@dataclass(frozen=True)
class _Stop:
    pass


class Supervisor:
    def __init__(
        self,
        *,
        policy: PushPolicy,
        run_pass: PassFn,
        classify: Classifier,
        stream_url: StreamUrlFn,
        account_id: str,
        auth_headers: Callable[[], dict[str, str]],
        http: httpx.AsyncClient,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        systemd: SystemdNotifier | None = None,
    ) -> None:
        self.policy = policy
        self._run_pass = run_pass
        self._classify = classify
        self._stream_url = stream_url
        self._auth_headers = auth_headers
        self._http = http
        self.telemetry = telemetry
        self._clock = clock
        self._systemd = systemd or SystemdNotifier({})
        self.core = PushCore(policy, account_id, rng=rng, listeners=[telemetry])
        self._queue: asyncio.Queue[Message | _Stop] = asyncio.Queue()
        # Stream items waiting in the queue: past STREAM_BACKLOG the reader
        # waits (and stops reading the socket) until the loop catches up.
        self._backlog = asyncio.Semaphore(STREAM_BACKLOG)
        self._streams: dict[int, asyncio.Task[None]] = {}
        self._pass_task: asyncio.Task[None] | None = None
        self._pass_inner: asyncio.Task[PassSummary] | None = None
        # Waking costs CPU even when there is nothing to do, so the loop only
        # ticks on its own when systemd's watchdog wants a ping (at half its
        # WatchdogSec); the safety-net pass guarantees a wake per interval.
        self._heartbeat_every = self._systemd.watchdog_interval
        self._next_heartbeat = 0.0

    @property
    def state(self) -> str:
        return self.core.state.value

    # -- the loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(self._forward_stop(stop))
        self._next_heartbeat = self._clock()
        self._execute(self.core.start(self._clock()))
        try:
            while True:
                now = self._clock()
                timeout = self._timeout(now)
                try:
                    message = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    message = Tick()
                if isinstance(message, _Stop):
                    break
                if isinstance(message, StreamItem):
                    self._backlog.release()
                self._step(message)
        finally:
            stopper.cancel()
            await self._shutdown()

    def _timeout(self, now: float) -> float | None:
        deadlines = [self.core.deadline()]
        if self._heartbeat_every is not None:
            deadlines.append(self._next_heartbeat)
        known = [d for d in deadlines if d is not None]
        return max(0.0, min(known) - now) if known else None

    def _step(self, message: Message) -> None:
        try:
            actions = self.core.handle(message, self._clock())
        except Exception:  # the core is proven total; this is the belt to its braces
            log.exception("push core error; carrying on", extra={"fields": {"message": message}})
            self.telemetry.internal_error()
            actions = []
        self._execute(actions)
        self._beat()

    def _beat(self) -> None:
        self.telemetry.heartbeat()  # /livez: the loop is still turning
        now = self._clock()
        if self._heartbeat_every is not None and now >= self._next_heartbeat:
            self._next_heartbeat = now + self._heartbeat_every
            # A loop that turns while triage is wedged must not feed the watchdog.
            if self.telemetry.liveness()[0] == 200:
                self._systemd.watchdog()

    async def _forward_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._queue.put_nowait(_Stop())

    async def _shutdown(self) -> None:
        self._systemd.stopping()
        for task in self._streams.values():
            task.cancel()
        for task in list(self._streams.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._streams.clear()
        running = self._pass_task
        if running is not None and not running.done():
            # Finish the pass in flight (its writes end with the label removal),
            # but no longer than its deadline.
            log.info("stopping after the poll in flight")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(running), self.policy.pass_timeout)
            if not running.done() and self._pass_inner is not None:
                self._pass_inner.cancel()

    # -- actions ----------------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            try:
                self._do(action)
            except Exception:
                log.exception(
                    "could not carry out a push action", extra={"fields": {"action": action}}
                )
                self.telemetry.internal_error()

    def _do(self, action: Action) -> None:
        match action:
            case OpenStream():
                self._streams[action.conn] = asyncio.create_task(self._stream(action))
            case CancelStream(conn=conn):
                task = self._streams.pop(conn, None)
                if task is not None:
                    task.cancel()
            case StartPass(trigger=trigger):
                self.telemetry.pass_started()
                self._pass_task = asyncio.create_task(self._pass(trigger))
            case CancelPass():
                if self._pass_inner is not None:
                    self._pass_inner.cancel()
            case CountItem(kind=kind, n=n):
                self.telemetry.stream_item(kind, n)
            case MissedPush():
                self.telemetry.missed_push()
            case Collapsed():
                self.telemetry.collapsed()
            case StreamAuth(rejected_by=rejected_by):
                self.telemetry.push_auth_rejected(rejected_by)
            case Report(level=level, message=text, fields=fields):
                log.log(level, text, extra={"fields": dict(fields)})

    # -- the stream task ------------------------------------------------------------

    async def _stream(self, action: OpenStream) -> None:
        conn = action.conn

        async def emit(message: StreamMessage) -> None:
            if isinstance(message, StreamItem):
                await self._backlog.acquire()
            self._queue.put_nowait(message)

        try:
            url = await self._stream_url(action.refresh)
            if url is None:
                await emit(StreamRefused(conn, 0, "the session has no eventSourceUrl"))
                return
            await read_stream(
                self._http,
                conn,
                url,
                self._auth_headers(),
                action.last_event_id,
                emit,
                open_timeout=self.policy.open_timeout,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # discovery failed, or anything else: never fatal
            failure = self._classify(exc)
            await emit(StreamFailed(conn, failure.message))
        finally:
            if self._streams.get(conn) is asyncio.current_task():
                del self._streams[conn]

    # -- the pass task ------------------------------------------------------------------

    async def _pass(self, trigger: Trigger) -> None:
        started = self._clock()
        summary: PassSummary | None = None
        failure: Failure | None = None
        unexpected: BaseException | None = None
        inner = self._pass_inner = asyncio.create_task(self._run_pass(trigger))
        try:
            summary = await inner
            failure = summary.failure
        except asyncio.CancelledError:
            if not inner.cancelled():
                raise  # we are being cancelled ourselves
            failure = Failure(
                FailureKind.TIMEOUT,
                f"pass cancelled after its {self.policy.pass_timeout:g} s deadline",
            )
        except Exception as exc:
            failure = self._classify(exc)
            if failure.kind is FailureKind.UNEXPECTED:
                unexpected = exc
        finally:
            self._pass_inner = None
        duration = self._clock() - started
        report_pass(self.telemetry, trigger, duration, summary, failure, unexpected)
        if summary is None or failure is not None:
            finished = PassFinished(trigger, failure or Failure(FailureKind.UNEXPECTED, "?"))
        else:
            finished = PassFinished(trigger, None, summary.seen_states, summary.own_states)
        self._pass_task = None
        self._queue.put_nowait(finished)
