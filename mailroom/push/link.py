"""The stream link: every decision about the EventSource connection, sans IO.

It owns the connection machine and the facts its transitions depend on (the
outage clock, refusals for credentials, backoff and the server's retry
floors) and answers each stream message with actions; what the open
stream's items mean is :mod:`mailroom.push.reading`, whether it is alive
:mod:`mailroom.push.liveness`. Nothing here sleeps or touches a socket: the
caller passes the time.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from mailroom.core.vocabulary import ItemKind
from mailroom.push.backoff import Backoff
from mailroom.push.connection import ConnectionMachine, State
from mailroom.push.liveness import Liveness
from mailroom.push.messages import (
    Action,
    CancelStream,
    CountItem,
    OpenStream,
    StreamAuth,
    StreamEnded,
    StreamFailed,
    StreamItem,
    StreamMessage,
    StreamOpened,
    StreamRefused,
)
from mailroom.push.policy import PushPolicy
from mailroom.push.reading import StreamReading

MIN_RENEWAL_GAP = 1.0  # seconds between stream attempts when renewing after a clean close


class StreamLink:
    def __init__(
        self,
        policy: PushPolicy,
        account_id: str,
        rng: random.Random,
        listeners: Iterable[Any] = (),
    ) -> None:
        self.policy = policy
        self.account_id = account_id  # whose state changes matter
        self.machine = ConnectionMachine(degrade_after=policy.degrade_after, listeners=[*listeners])
        self.backoff = Backoff(
            base=policy.backoff_base,
            cap=policy.backoff_cap,
            healthy_after=policy.healthy_after,
            rng=rng,
        )
        self.conn = 0  # id of the newest attempt
        self.attempting = False  # that attempt (or its open stream) is still live
        self.opened_at: float | None = None
        self.liveness = Liveness(policy)
        self.opened_attempt_at = 0.0  # when the newest attempt began
        self.reading = StreamReading(policy, account_id, self.liveness)
        self.not_before = 0.0  # no attempt before this (Retry-After, retry:)
        self.failed_at: float | None = None  # when the stream last failed
        self.outage_since: float | None = None
        self.reconnect_at: float | None = None
        self.needs_catchup = False
        self.auth_refused = False
        # Read and cleared by the core after each message.
        self.catchup_wanted = False
        self.lost = False

    # -- what the rest of the core asks --------------------------------------------

    @property
    def state(self) -> State:
        return self.machine.state

    def poll_interval(self) -> float:
        """The safety-net interval in force: shorter while push is unavailable."""
        if self.state is State.DEGRADED and not self.auth_refused:
            return min(self.policy.poll_interval, self.policy.degraded_poll_interval)
        return self.policy.poll_interval

    def liveness_deadline(self) -> float | None:
        # From the moment the stream opens, not only once a first ping came.
        if self.state is not State.CONNECTED:
            return None
        return self.liveness.deadline()

    def deadline(self) -> float | None:
        times = [t for t in (self.reconnect_at, self.liveness_deadline()) if t is not None]
        return min(times) if times else None

    # -- inputs ----------------------------------------------------------------------

    def start(self, out: list[Action], now: float = 0.0) -> None:
        self._open(refresh=False, out=out, now=now)

    def on_stream(self, msg: StreamMessage, now: float, out: list[Action]) -> dict[str, str] | None:
        """Handle one stream message; returns pushed states for the scheduler."""
        if msg.conn != self.conn or not self.attempting:
            return None  # from a connection already given up on
        connected = self.state is State.CONNECTED
        match msg:
            case StreamOpened():
                if not connected:
                    self._opened(now, out)
            case StreamItem(item=item, folded=folded):
                if connected:
                    self.liveness.heard(now)
                    if folded:
                        out.append(CountItem(ItemKind.FOLDED, folded))
                    return self.reading.item(item, out)
            case StreamRefused(status=status, reason=reason):
                self.attempting = False
                if connected:
                    self._closed(now)
                    self._lose(reason, now, out)
                else:
                    self._refused(status, reason, msg.auth, now, out)
            case StreamFailed(reason=reason, retry_after=retry_after):
                self.attempting = False
                if msg.bad_retry_after:
                    self.reading.malformed("Retry-After: neither seconds nor an HTTP date", out)
                floor = self.policy.clamp_floor(retry_after)
                if connected:
                    self._closed(now)
                    self._lose(reason, now, out, floor)
                else:
                    self._failed(reason, now, out, floor)
            case StreamEnded(error=error):
                self.attempting = False
                if connected:
                    self._ended(error, now, out)
                else:
                    self._failed(error or "the stream ended before it opened", now, out, None)
        return None

    def on_timers(self, now: float, out: list[Action]) -> None:
        if self.reconnect_at is not None and now >= self.reconnect_at:
            self.reconnect_at = None
            if self.state in (State.BACKOFF, State.DEGRADED):
                refresh = self.state is State.DEGRADED
                self.machine.send("retry")
                self._open(refresh=refresh, out=out, now=now)
            elif self.state is State.CONNECTING and not self.attempting:
                self._open(refresh=False, out=out, now=now)  # a renewal held back
        live = self.liveness_deadline()
        if live is not None and now >= live:
            self._silent(now, out)

    def server_answered(self, started: float, now: float) -> None:
        """A pass that started at ``started`` just succeeded: retry push now.

        Only a pass begun after the stream last failed proves the server is
        back (one begun before, like the catch-up at connect, would turn an
        accept-then-close server into a loop). Never below the server's floor,
        and not after a refusal for credentials (a working API token says
        nothing about the stream's rights).
        """
        if self.state not in (State.BACKOFF, State.DEGRADED) or self.auth_refused:
            return
        if self.failed_at is None or started < self.failed_at:
            return
        at = max(now, self.not_before)
        if self.reconnect_at is None or at < self.reconnect_at:
            self.reconnect_at = at

    def drop(self, reason: str, now: float, out: list[Action]) -> None:
        """Give up on the open stream (silent, or missed a push) and reconnect."""
        if self.state is not State.CONNECTED:
            return
        out.append(CancelStream(self.conn))
        self.attempting = False
        self._closed(now)
        self._lose(reason, now, out)

    # -- internals -----------------------------------------------------------------------

    def _open(self, *, refresh: bool, out: list[Action], now: float) -> None:
        self.conn += 1
        self.attempting = True
        self.opened_attempt_at = now
        out.append(OpenStream(self.conn, refresh, self.reading.last_event_id))

    def _opened(self, now: float, out: list[Action]) -> None:
        # The outage clock keeps running until this connection proves healthy.
        self.opened_at = now
        self.liveness.opened(now)
        self.reading.delivered_change = False
        if self.auth_refused:
            self.auth_refused = False
            out.append(StreamAuth(None))
        self.machine.send("opened")
        if self.needs_catchup:
            self.needs_catchup = False
            self.catchup_wanted = True

    def _refused(self, status: int, reason: str, auth: bool, now: float, out: list[Action]) -> None:
        self.outage_since = self.outage_since if self.outage_since is not None else now
        self.needs_catchup = True
        if auth:
            self.auth_refused = True
            out.append(StreamAuth(f"EventSource (HTTP {status})"))
        self.machine.send("refused", reason=reason)
        self._schedule_reconnect(now, self._floor())  # DEGRADED: at the cap

    def _failed(self, reason: str, now: float, out: list[Action], floor: float | None) -> None:
        self.outage_since = self.outage_since if self.outage_since is not None else now
        self.needs_catchup = True
        self.machine.send("failed", outage=now - self.outage_since, reason=reason)
        self._schedule_reconnect(now, self._floor(floor))

    def _ended(self, error: str | None, now: float, out: list[Action]) -> None:
        changed = self.reading.delivered_change
        lasted = self._closed(now)
        if error is None and (lasted >= self.policy.healthy_after or changed):
            # Routine: Cyrus ends every stream after a few minutes, and some
            # servers (Fastmail, reportedly) after every change they push. A
            # connection that delivered a change did its job: not a failure.
            # Reconnect at once, but never more than once a second; the id (or
            # a connect snapshot) covers the gap, else a catch-up pass does.
            # A server closing before any change still backs off.
            self.needs_catchup = not self.reading.last_event_id
            self.machine.send("ended")
            at = self.opened_attempt_at + MIN_RENEWAL_GAP
            if at <= now:
                self._open(refresh=False, out=out, now=now)
            else:
                self.reconnect_at = at
            return
        self._lose(error or f"stream closed after {lasted:.1f} s", now, out)

    def _closed(self, now: float) -> float:
        """Book an open connection's end; returns how long it lasted."""
        lasted = now - (self.opened_at if self.opened_at is not None else now)
        self.opened_at = None
        self.backoff.connection_ended(lasted)
        if lasted >= self.policy.healthy_after:
            self.outage_since = None  # it was healthy: any outage starts afresh
        return lasted

    def _lose(self, reason: str, now: float, out: list[Action], floor: float | None = None) -> None:
        if self.outage_since is None:
            self.outage_since = now
        self.needs_catchup = True
        self.lost = True
        self.machine.send("lost", outage=now - self.outage_since, reason=reason)
        self._schedule_reconnect(now, self._floor(floor))

    def _floor(self, retry_after: float | None = None) -> float | None:
        floors = [f for f in (retry_after, self.reading.retry_floor) if f is not None]
        return max(floors) if floors else None

    def _schedule_reconnect(self, now: float, floor: float | None) -> None:
        # While push is unavailable, retry at the cap; otherwise back off.
        if self.state is State.DEGRADED:
            delay = self.backoff.at_cap(floor)
        else:
            delay = self.backoff.next_delay(floor)
        self.reconnect_at = now + delay
        self.not_before = now + (floor or 0.0)
        self.failed_at = now

    def _silent(self, now: float, out: list[Action]) -> None:
        learned = self.liveness.silent(now)
        if learned is not None:
            out.append(learned)  # a server that never pings: keep the stream
            return
        self.drop(self.liveness.why_dead(now), now, out)
