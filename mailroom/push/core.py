"""The push core: every decision of the push supervisor, sans IO.

Like h11's state module, it keeps all transition logic in one place. It is
told what happened (a typed message) and when, and answers with actions
(open or cancel a stream, start or cancel a pass, notices for telemetry) and
its next deadline. The asyncio supervisor executes the actions and sleeps
until the deadline; tests drive it with explicit times.

It joins two halves: the stream link (the connection and its machine) and
the pass scheduler (debounce, safety net, catch-up, deadline). What one
half learns that the other needs (pushed states, a reconnect owing a
catch-up, a server that answers again, a missed push) passes through here.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from mailroom.core.vocabulary import Trigger
from mailroom.push.connection import State
from mailroom.push.link import StreamLink
from mailroom.push.messages import (
    Action,
    Message,
    MissedPush,
    PassFinished,
    StreamEnded,
    StreamFailed,
    StreamItem,
    StreamOpened,
    StreamRefused,
    Tick,
)
from mailroom.push.policy import PushPolicy
from mailroom.push.scheduler import PassScheduler


class PushCore:
    def __init__(
        self,
        policy: PushPolicy,
        account_id: str,
        *,
        rng: random.Random | None = None,
        listeners: Iterable[Any] = (),
    ) -> None:
        self.policy = policy
        self.link = StreamLink(policy, account_id, rng or random.Random(), listeners)
        self.passes = PassScheduler(policy)
        self.started = False

    @property
    def state(self) -> State:
        return self.link.state

    def poll_interval(self) -> float:
        return self.link.poll_interval()

    def start(self, now: float) -> list[Action]:
        """Open the stream and run the start-up pass."""
        out: list[Action] = []
        if self.started:
            return out
        self.started = True
        self.link.start(out, now)
        self.passes.start(Trigger.STARTUP, now, out)
        return out

    def handle(self, message: Message, now: float) -> list[Action]:
        out: list[Action] = []
        if not self.started:
            return out
        match message:
            case StreamOpened() | StreamItem() | StreamRefused() | StreamFailed() | StreamEnded():
                states = self.link.on_stream(message, now, out)
                if states is not None:
                    self.passes.on_states(states, now, out)
            case PassFinished():
                connected = self.state is State.CONNECTED
                started = self.passes.finished(message, now, connected, out)
                if started is not None and message.ok:
                    self.link.server_answered(started, now)
            case Tick():
                pass
        self._timers(now, out)
        return out

    def deadline(self) -> float | None:
        times = [
            self.link.deadline(),
            self.passes.deadline(self.poll_interval()),
            self.passes.audit.deadline() if self.state is State.CONNECTED else None,
        ]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def _timers(self, now: float, out: list[Action]) -> None:
        self._relay(now, out)
        self.link.on_timers(now, out)
        if self.state is State.CONNECTED and self.passes.audit.missed(now):
            self.passes.audit.clear()
            out.append(MissedPush())
            self.link.drop("a safety-net pass found a change that push never announced", now, out)
        self._relay(now, out)
        self.passes.on_timers(now, self.poll_interval(), out)

    def _relay(self, now: float, out: list[Action]) -> None:
        if self.link.lost:
            self.link.lost = False
            self.passes.audit.clear()
        if self.link.catchup_wanted:
            self.link.catchup_wanted = False
            self.passes.request_catchup(now, out)
