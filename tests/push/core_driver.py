"""Drives the pure push core with explicit times, the way the supervisor does.

Time only moves forward, and whenever it passes the core's deadline the core
is told (a Tick at exactly that time), so what a test sees is what the
asyncio shell would do, without a socket or a sleep.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from mailroom.core.vocabulary import FailureKind, Trigger
from mailroom.push.connection import State
from mailroom.push.core import PushCore
from mailroom.push.messages import (
    Action,
    CancelPass,
    CancelStream,
    Failure,
    Message,
    OpenStream,
    PassFinished,
    StartPass,
    StreamEnded,
    StreamFailed,
    StreamItem,
    StreamOpened,
    StreamRefused,
    Tick,
)
from mailroom.push.policy import PushPolicy
from mailroom.push.sse import Event, Item

ACCOUNT = "acct"
POLICY = PushPolicy()  # the real timings: 60 s interval, 3 s debounce, ping 30


class NoJitter(random.Random):
    def random(self) -> float:
        return 0.0


def state_event(email: str, event_id: str = "") -> Event:
    data = json.dumps({"@type": "StateChange", "changed": {ACCOUNT: {"Email": email}}})
    return Event("state", data, event_id)


def ping(event_id: str = "") -> Event:
    return Event("ping", '{"interval":30}', event_id)


def control(actions: list[Action]) -> list[Action]:
    """The actions that do something (not notices for telemetry)."""
    return [a for a in actions if isinstance(a, OpenStream | CancelStream | StartPass | CancelPass)]


@dataclass
class Driver:
    policy: PushPolicy = POLICY
    rng: random.Random = field(default_factory=NoJitter)
    now: float = 0.0
    log: list[tuple[float, Action]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = PushCore(self.policy, ACCOUNT, rng=self.rng)
        self.conn = 0
        self.running: Trigger | None = None
        self.states.append(self.core.state.value)
        self._record(self.core.start(self.now))

    # -- time and messages -------------------------------------------------------

    def until(self, t: float) -> list[Action]:
        """Let time run to ``t``, ticking at every deadline on the way."""
        out: list[Action] = []
        spins = 0
        while True:
            deadline = self.core.deadline()
            if deadline is None or deadline > t:
                break
            spins = spins + 1 if deadline <= self.now else 0
            # A deadline that a tick at that time does not move is a busy loop.
            assert spins < 5, f"deadline {deadline} stuck at {self.now}"
            self.now = max(self.now, deadline)
            out += self._handle(Tick())
        self.now = max(self.now, t)
        return out

    def send(self, message: Message, at: float | None = None) -> list[Action]:
        out = self.until(self.now if at is None else at)
        return out + self._handle(message)

    def _handle(self, message: Message) -> list[Action]:
        actions = self.core.handle(message, self.now)
        self._record(actions)
        return actions

    def _record(self, actions: list[Action]) -> None:
        for action in actions:
            self.log.append((self.now, action))
            if isinstance(action, OpenStream):
                self.conn = action.conn
            if isinstance(action, StartPass):
                self.running = action.trigger
        if self.core.state.value != self.states[-1]:
            self.states.append(self.core.state.value)

    # -- shorthands -----------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.core.state

    # Each one lets time run first, then speaks of the connection current then.

    def opened(self, at: float | None = None) -> list[Action]:
        out = self.until(self.now if at is None else at)
        return out + self._handle(StreamOpened(self.conn))

    def item(self, item: Item, at: float | None = None) -> list[Action]:
        out = self.until(self.now if at is None else at)
        return out + self._handle(StreamItem(self.conn, item))

    def failed(self, at: float | None = None, retry_after: float | None = None) -> list[Action]:
        out = self.until(self.now if at is None else at)
        return out + self._handle(StreamFailed(self.conn, "reset", retry_after))

    def refused(self, status: int = 204, at: float | None = None) -> list[Action]:
        out = self.until(self.now if at is None else at)
        return out + self._handle(StreamRefused(self.conn, status, f"HTTP {status}"))

    def ended(self, error: str | None = None, at: float | None = None) -> list[Action]:
        out = self.until(self.now if at is None else at)
        return out + self._handle(StreamEnded(self.conn, error))

    def pass_done(
        self,
        at: float | None = None,
        *,
        ok: bool = True,
        seen: dict[str, str] | None = None,
        own: dict[str, frozenset[str]] | None = None,
        kind: FailureKind = FailureKind.REMOTE,
    ) -> list[Action]:
        out = self.until(self.now if at is None else at)
        trigger = self.running or Trigger.FALLBACK
        self.running = None
        failure = None if ok else Failure(kind, "boom")
        return out + self._handle(PassFinished(trigger, failure, seen or {}, own or {}))

    def pinging(self, to: float, every: float = 30.0) -> list[Action]:
        """A healthy server: a ping every ``every`` seconds until ``to``."""
        out: list[Action] = []
        while self.now + every <= to:
            out += self.item(ping(), at=self.now + every)
        return out + self.until(to)

    def opens(self) -> list[tuple[float, OpenStream]]:
        return [(t, a) for t, a in self.log if isinstance(a, OpenStream)]

    def passes(self) -> list[tuple[float, Trigger]]:
        return [(t, a.trigger) for t, a in self.log if isinstance(a, StartPass)]
