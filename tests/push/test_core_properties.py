"""Properties of the push core over random message sequences (Hypothesis).

Whatever the server, the passes and the clock do, in any order:
- no exception: every message in every state transitions or is a no-op;
- never two passes at once, and a pass over its deadline is cancelled;
- never a gap between passes longer than the interval in force;
- never a reconnect before the server's floor (retry:, Retry-After, capped);
- at most 3 stream attempts a minute while credentials are refused;
- no deadline that a tick at that time leaves in the past (no busy loop).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailroom.core.vocabulary import FailureKind, Trigger
from mailroom.push.connection import State
from mailroom.push.messages import (
    CancelPass,
    Failure,
    Message,
    OpenStream,
    PassFinished,
    StartPass,
    StreamAuth,
    StreamEnded,
    StreamFailed,
    StreamItem,
    StreamOpened,
    StreamRefused,
    Tick,
)
from mailroom.push.policy import PushPolicy
from mailroom.push.sse import Comment, Event, Invalid, Oversized, Retry
from tests.push.core_driver import POLICY, Driver, ping, state_event
from tests.push.harness import FAST

EPS = 1e-6


@dataclass(frozen=True)
class Step:
    dt: float
    kind: str
    value: int
    stale: bool


KINDS = (
    "opened",
    "state",
    "ping",
    "comment",
    "retry",
    "invalid",
    "oversized",
    "garbage",
    "refused",
    "failed",
    "ended",
    "broken",
    "pass_ok",
    "pass_fail",
    "tick",
)
RETRY_AFTERS: tuple[float | None, ...] = (None, 0.0, 0.5, 5.0, 30.0, 600.0, 1e12, math.nan)
STATUSES = (0, 204, 400, 401, 403, 404)

# Weighted toward what moves the connection: opens, failures, refusals, passes.
WEIGHTED = (*KINDS, "opened", "failed", "refused", "pass_ok", "pass_ok", "ended", "tick")

steps = st.builds(
    Step,
    dt=st.one_of(st.just(0.0), st.floats(0.0, 3.0), st.floats(0.0, 40.0), st.floats(0.0, 200.0)),
    kind=st.sampled_from(WEIGHTED),
    value=st.integers(0, 10**6),
    stale=st.sampled_from([False, False, False, False, True]),
)
sequences = st.lists(steps, min_size=20, max_size=150)


class Checked(Driver):
    """A driver that checks every invariant after every message."""

    def __post_init__(self) -> None:
        self.pass_started: float | None = None
        self.cancelled = False
        self.last_end: float | None = None
        self.retry_floor = 0.0
        self.not_before = 0.0
        self.auth_refused = False
        self.auth_opens: list[float] = []
        self.seq = 0
        super().__post_init__()

    def _record(self, actions: list) -> None:  # type: ignore[type-arg]
        previous = self.states[-1] if self.states else "connecting"
        for action in actions:
            match action:
                case StartPass():
                    assert self.pass_started is None, "two passes at once"
                    self.pass_started, self.cancelled = self.now, False
                case CancelPass():
                    self.cancelled = True
                case OpenStream():
                    assert self.now >= self.not_before - EPS, "reconnect before its floor"
                    if self.auth_refused:
                        self.auth_opens.append(self.now)
                        # 3 a minute at the real 60 s cap; scaled with tiny timings.
                        window = self.policy.backoff_cap
                        recent = [t for t in self.auth_opens if t > self.now - window]
                        assert len(recent) <= 3, f"stream attempts after 401/403: {recent}"
                case StreamAuth(rejected_by=who):
                    self.auth_refused = who is not None
                case _:
                    pass
        super()._record(actions)
        current = self.core.state.value
        if current != previous and current in ("backoff", "degraded"):
            self._failure_floor(self._last_retry_after)
        self._last_retry_after = None
        self._check()

    _last_retry_after: float | None = None

    def _failure_floor(self, retry_after: float | None) -> None:
        floor = self.retry_floor
        if retry_after is not None and not math.isnan(retry_after):
            floor = max(floor, min(max(retry_after, 0.0), self.policy.backoff_cap))
        self.not_before = self.now + floor

    def _check(self) -> None:
        if self.pass_started is not None:
            overdue = self.now >= self.pass_started + self.policy.pass_timeout
            assert self.cancelled or not overdue, "a pass ran past its deadline"
        elif self.last_end is not None:
            interval = self.core.poll_interval()
            assert self.now < self.last_end + interval + EPS, "gap longer than the interval"

    def apply(self, step: Step) -> None:
        target = self.now + step.dt
        self.until(target)
        conn = self.conn - 1 if step.stale else self.conn
        v = step.value
        message: Message
        match step.kind:
            case "opened":
                message = StreamOpened(conn)
            case "state":
                message = StreamItem(conn, state_event(f"s{v % 7}", str(v % 3 or "")))
            case "ping":
                message = StreamItem(conn, ping())
            case "comment":
                message = StreamItem(conn, Comment(""))
            case "retry":
                message = StreamItem(conn, Retry(v * 1000 if v % 2 else v))
                if not step.stale and self.state is State.CONNECTED:
                    ms = v * 1000 if v % 2 else v
                    self.retry_floor = min(ms / 1000, self.policy.backoff_cap)
            case "invalid":
                message = StreamItem(conn, Invalid("retry", "x"))
            case "oversized":
                message = StreamItem(conn, Oversized("line"))
            case "garbage":
                message = StreamItem(conn, Event("state", "{not json", ""))
            case "refused":
                message = StreamRefused(conn, STATUSES[v % len(STATUSES)], "no")
            case "failed":
                retry_after = RETRY_AFTERS[v % len(RETRY_AFTERS)]
                message = StreamFailed(conn, "reset", retry_after)
                if not step.stale:
                    self._last_retry_after = retry_after
            case "ended":
                message = StreamEnded(conn)
            case "broken":
                message = StreamEnded(conn, "stream broke: ValueError")
            case "pass_ok" | "pass_fail":
                message = self._pass_message(step)
            case _:
                message = Tick()
        self._handle(message)

    def pass_done(self, at: float | None = None, **kwargs: object) -> list:  # type: ignore[type-arg]
        out = self.until(self.now if at is None else at)
        if self.pass_started is not None:
            self.pass_started = None
            self.last_end = self.now
        return out + super().pass_done(**kwargs)  # type: ignore[arg-type]

    def _pass_message(self, step: Step) -> Message:
        ok = step.kind == "pass_ok"
        trigger = self.running or Trigger.FALLBACK
        if self.pass_started is not None:  # a pass has no id: never stale
            self.pass_started = None
            self.running = None
            self.last_end = self.now
        failure = None if ok else Failure(FailureKind(list(FailureKind)[step.value % 4]), "x")
        seen = {"Email": f"s{step.value % 7}"}
        own = {"Email": frozenset({f"s{(step.value + 1) % 7}"})}
        return PassFinished(trigger, failure, seen, own)


def run(steps_: list[Step], seed: int, policy: PushPolicy = POLICY) -> Checked:
    d = Checked(policy=policy, rng=random.Random(seed))
    for step in steps_:
        d.apply(step)
    d.until(d.now + 3 * policy.poll_interval)
    return d


@pytest.mark.slow  # 400 random sequences: make test and CI run it
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences, st.integers(0, 2**32))
def test_no_sequence_breaks_an_invariant(steps_: list[Step], seed: int) -> None:
    run(steps_, seed)


@settings(max_examples=200, deadline=None)
@given(sequences, st.integers(0, 2**32))
def test_invariants_hold_with_tiny_timings(steps_: list[Step], seed: int) -> None:
    # The fault scenarios' timings, with a short interval and deadline so
    # passes, cancellations and the cap all come often.
    tiny = replace(FAST, poll_interval=5.0, backoff_cap=2.0, degraded_poll_interval=1.0)
    tiny = replace(tiny, pass_timeout=3.0)
    run(steps_, seed, tiny)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([401, 403]), min_size=1, max_size=30), st.integers(0, 2**32))
def test_refused_credentials_never_hammer_the_stream(statuses: list[int], seed: int) -> None:
    d = Checked(rng=random.Random(seed))
    for status in statuses:
        d.refused(status)
        d.pass_done(at=d.now + 1.0)  # the API works: it must not speed the stream up
        d.until(d.core.link.reconnect_at or d.now)
    assert d.state in (State.CONNECTING, State.DEGRADED)
