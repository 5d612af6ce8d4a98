"""The stream link: every decision about the EventSource connection, sans IO.

It owns the connection machine and the facts its transitions depend on (the
outage clock, refusals for credentials, the server's retry floors, whether
the server pings, the Last-Event-ID) and answers each stream message with
actions. Nothing here sleeps or touches a socket: the caller passes the time.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from typing import Any

from mailroom.core.vocabulary import ItemKind
from mailroom.push.backoff import Backoff
from mailroom.push.connection import ConnectionMachine, State
from mailroom.push.events import Ignored, Malformed, Ping, StateEvent, interpret
from mailroom.push.messages import (
    Action,
    CancelStream,
    CountItem,
    OpenStream,
    Report,
    StreamAuth,
    StreamEnded,
    StreamFailed,
    StreamItem,
    StreamMessage,
    StreamOpened,
    StreamRefused,
)
from mailroom.push.policy import PushPolicy
from mailroom.push.sse import Comment, Event, IdCleared, Invalid, Item, Oversized, Retry

MALFORMED_LOGGED = 10  # then DEBUG: a broken server can send thousands


MAX_EVENT_ID = 256  # characters of Last-Event-ID sent back
MIN_RENEWAL_GAP = 1.0  # seconds between stream attempts when renewing after a clean close


def usable_event_id(value: str) -> bool:
    """Whether an id can go back as ``Last-Event-ID``: short, printable ASCII (or empty)."""
    return len(value) <= MAX_EVENT_ID and all(" " <= ch <= "~" for ch in value)


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
        self.last_activity = 0.0
        self.pinged = False  # this connection sent a ping
        self.server_pings: bool | None = None  # learned: None until known
        self.silent_strikes = 0  # consecutive connections silent without a ping
        self.ping_interval = float(policy.ping)
        self.delivered_change = False  # this connection pushed a change
        self.opened_attempt_at = 0.0  # when the newest attempt began
        self.last_event_id = ""
        self.refused_event_id = ""  # the last id not kept (counted once)
        self.retry_floor: float | None = None  # from the server's retry: field
        self.not_before = 0.0  # no attempt before this (Retry-After, retry:)
        self.failed_at: float | None = None  # when the stream last failed
        self.outage_since: float | None = None
        self.reconnect_at: float | None = None
        self.needs_catchup = False
        self.auth_refused = False
        self.malformed_logged = 0
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
        # A server asked for ping=N must ping (RFC 8620 §7.3); from the moment
        # the stream opens, not only once a first ping came.
        if self.state is not State.CONNECTED or self.server_pings is False:
            return None
        return self.last_activity + 2 * self.ping_interval + self.policy.liveness_margin

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
                    self.last_activity = now
                    if folded:
                        out.append(CountItem(ItemKind.FOLDED, folded))
                    return self._item(item, out)
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
                    self._malformed("Retry-After: neither seconds nor an HTTP date", out)
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
        out.append(OpenStream(self.conn, refresh, self.last_event_id))

    def _opened(self, now: float, out: list[Action]) -> None:
        # The outage clock keeps running until this connection proves healthy.
        self.opened_at = self.last_activity = now
        self.pinged = False
        self.delivered_change = False
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
        changed = self.delivered_change
        lasted = self._closed(now)
        if error is None and (lasted >= self.policy.healthy_after or changed):
            # Routine: Cyrus ends every stream after a few minutes, and some
            # servers (Fastmail, reportedly) after every change they push. A
            # connection that delivered a change did its job: not a failure.
            # Reconnect at once, but never more than once a second; the id (or
            # a connect snapshot) covers the gap, else a catch-up pass does.
            # A server closing before any change still backs off.
            self.needs_catchup = not self.last_event_id
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
        floors = [f for f in (retry_after, self.retry_floor) if f is not None]
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
        silent = now - self.last_activity
        if not self.pinged and self.server_pings is None:
            # Perhaps this server never pings (Fastmail is reported not to).
            # After enough connections that stayed silent without a single
            # ping, believe it: rely on TCP keepalive and the missed-push audit.
            self.silent_strikes += 1
            if self.silent_strikes >= self.policy.silent_strikes:
                self.server_pings = False
                out.append(
                    Report(
                        logging.INFO,
                        "the server sends no pings; relying on TCP keepalive and the "
                        "missed-push audit",
                        {"connections": self.silent_strikes},
                    )
                )
                return
        self.drop(
            f"stream silent for {silent:.0f} s (pings expected every {self.ping_interval:g} s)",
            now,
            out,
        )

    def _item(self, item: Item, out: list[Action]) -> dict[str, str] | None:
        match item:
            case Event():
                # Only a later event's id replaces the one we resume from; one
                # the server should never have sent is not kept.
                if item.last_event_id and item.last_event_id not in (
                    self.last_event_id,
                    self.refused_event_id,
                ):
                    if usable_event_id(item.last_event_id):
                        self.last_event_id = item.last_event_id
                    else:
                        self.last_event_id = ""
                        self.refused_event_id = item.last_event_id
                        self._malformed("id: not a short printable ASCII token", out)
                return self._event(item, out)
            case IdCleared():
                self.last_event_id = ""  # the server resets where to resume from
            case Comment():
                out.append(CountItem(ItemKind.COMMENT))
            case Retry(milliseconds=ms):
                out.append(CountItem(ItemKind.RETRY))
                self.retry_floor = self.policy.clamp_floor(ms / 1000)
            case Invalid(field=name, reason=reason):
                self._malformed(f"{name}: {reason}", out)
            case Oversized(what=what):
                out.append(CountItem(ItemKind.OVERSIZED))
                out.append(Report(logging.WARNING, f"dropped an oversized stream {what}"))
        return None

    def _event(self, event: Event, out: list[Action]) -> dict[str, str] | None:
        meaning = interpret(event, self.account_id, asked_ping=self.policy.ping)
        match meaning:
            case StateEvent(states=states, snapshot=snapshot):
                out.append(CountItem(ItemKind.STATE))
                self.delivered_change = self.delivered_change or not snapshot
                return states
            case Ping(interval=interval):
                out.append(CountItem(ItemKind.PING))
                self.pinged = True
                self.server_pings = True
                self.silent_strikes = 0
                # Bounded: an absurd interval must not switch liveness off.
                asked = float(self.policy.ping)
                self.ping_interval = min(max(interval or asked, 1.0), 4 * asked)
            case Malformed(reason=reason):
                self._malformed(reason, out)
            case Ignored(reason=reason):
                out.append(CountItem(ItemKind.IGNORED))
                out.append(Report(logging.DEBUG, "ignored event", {"reason": reason}))
        return None

    def _malformed(self, reason: str, out: list[Action]) -> None:
        out.append(CountItem(ItemKind.MALFORMED))
        self.malformed_logged += 1
        level = logging.WARNING if self.malformed_logged <= MALFORMED_LOGGED else logging.DEBUG
        out.append(Report(level, "malformed stream item ignored", {"reason": reason}))
