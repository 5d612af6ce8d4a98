"""The pure cores the supervisor drives: backoff, debounce, tracker, audit, machine."""

from __future__ import annotations

import random
from typing import Any

import pytest
from statemachine.exceptions import TransitionNotAllowed

from mailroom.push.audit import PushAudit
from mailroom.push.backoff import Backoff
from mailroom.push.connection import ConnectionMachine
from mailroom.push.debounce import Debouncer
from mailroom.push.jmap_states import StateTracker


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_doubles_to_the_cap() -> None:
    b = Backoff(rng=FixedRandom(0.0))
    assert [b.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_backoff_jitter_spreads_and_never_exceeds_cap() -> None:
    delays = {
        round(Backoff(rng=random.Random(seed), attempt=10).next_delay(), 3) for seed in range(50)
    }
    assert len(delays) > 40
    assert all(48.0 <= d <= 60.0 for d in delays)


def test_backoff_floors() -> None:
    b = Backoff(rng=FixedRandom(0.0))
    assert b.next_delay(floor=30.0) == 30.0  # Retry-After above the backoff
    assert b.next_delay(floor=0.5) == 2.0  # below it: no effect


def test_backoff_resets_only_after_healthy_connection() -> None:
    b = Backoff(rng=FixedRandom(0.0), healthy_after=30)
    for _ in range(3):
        b.next_delay()
    b.connection_ended(lasted=0.2)  # accept-then-close: keeps growing
    assert b.next_delay() == 8
    b.connection_ended(lasted=45)
    assert b.next_delay() == 1


def test_debounce_burst_is_one_poll() -> None:
    d = Debouncer(delay=3, max_wait=15)
    for t in (0.0, 0.5, 1.0, 2.9):
        d.event(t)
    assert d.due_at() == 5.9
    assert not d.take(5.8)
    assert d.take(5.9)
    assert (d.events, d.polls) == (4, 1)
    assert d.due_at() is None


def test_debounce_trickle_cannot_starve() -> None:
    d = Debouncer(delay=3, max_wait=15)
    t = 0.0
    while t < 30:
        d.event(t)
        if d.take(t):
            break
        t += 2.0
    assert t == 16.0  # first event at 0: polled by 15 s (at the next tick), not never


def test_debounce_events_during_poll_give_one_follow_up() -> None:
    d = Debouncer(delay=3, max_wait=15)
    d.event(0)
    assert d.take(3)
    d.event(3.5)
    d.event(4.0)
    assert d.due_at() is None  # never two polls at once
    d.pass_finished()
    assert d.due_at() == 7.0
    assert d.take(7.0)
    d.pass_finished()
    assert d.due_at() is None


def test_tracker_ignores_own_writes_and_known_states() -> None:
    t = StateTracker()
    t.pass_saw({"Email": "1", "Mailbox": "1"}, {"Email": {"2"}, "Mailbox": {"2"}})
    assert not t.push({"Email": "2", "Mailbox": "2"})  # our own echo
    assert not t.push({"Email": "2"})  # already known
    assert t.push({"Email": "3"})  # the user did something
    assert not t.push({"Email": "3", "Mailbox": "2"})


def test_tracker_connect_snapshot_is_compared() -> None:
    t = StateTracker()
    t.pass_saw({"Email": "7", "Mailbox": "4"}, {})
    assert not t.push({"Email": "7", "Mailbox": "4"})  # snapshot equal: nothing to do
    assert t.push({"Email": "8", "Mailbox": "4"})  # changed while disconnected


def test_audit_detects_a_missed_push() -> None:
    a = PushAudit(window=8)
    a.pass_saw({"Email": "5"}, {"Email": "4"}, {}, now=100)
    assert a.deadline() == 108
    assert not a.missed(107.9)
    assert a.missed(108)


def test_audit_satisfied_by_a_late_push_and_own_writes() -> None:
    a = PushAudit(window=8)
    a.pass_saw({"Email": "5"}, {"Email": "4"}, {}, now=100)
    a.pushed({"Email": "5"})
    assert a.deadline() is None
    a.pass_saw({"Email": "6"}, {"Email": "5"}, {"Email": {"6"}}, now=200)
    assert a.deadline() is None
    a.pass_saw({"Email": "6"}, {}, {}, now=300)  # no baseline yet
    assert a.deadline() is None


def test_machine_paths() -> None:
    m = ConnectionMachine(degrade_after=60)
    path = [m.state_name]
    steps: list[tuple[str, dict[str, Any]]] = [
        ("failed", {"outage": 1.0}),
        ("retry", {}),
        ("failed", {"outage": 61.0}),
        ("retry", {}),
        ("opened", {}),
        ("ended", {}),
        ("opened", {}),
        ("lost", {}),
        ("retry", {}),
        ("refused", {}),
    ]
    for event, kwargs in steps:
        m.send(event, **kwargs)
        path.append(m.state_name)
    assert path == [
        "connecting",
        "backoff",
        "connecting",
        "degraded",
        "connecting",
        "connected",
        "connecting",
        "connected",
        "backoff",
        "connecting",
        "degraded",
    ]


def test_machine_rejects_impossible_events() -> None:
    m = ConnectionMachine()
    with pytest.raises(TransitionNotAllowed):
        m.send("lost")
    m.send("opened")
    with pytest.raises(TransitionNotAllowed):
        m.send("opened")


def test_a_flood_of_comments_or_pings_folds_into_one_item_a_chunk() -> None:
    from mailroom.push.messages import StreamItem
    from mailroom.push.sse import Comment, Event, SseDecoder
    from mailroom.push.stream import fold

    ping = b'event: ping\ndata: {"interval":1}\n\n'
    chunk = b":\n" * 500 + ping * 3 + b'id: 9\nevent: state\ndata: {"x":1}\n\n' + b":\n" * 2
    folded = fold(7, SseDecoder().feed(chunk))
    assert folded == [
        StreamItem(7, Comment("", 500), 499),  # 500 comments: one item, 499 folded
        StreamItem(7, Event("ping", '{"interval":1}', ""), 2),
        StreamItem(7, Event("state", '{"x":1}', "9")),
        StreamItem(7, Comment("", 2), 1),
    ]


def test_states_held_during_a_pass_are_bounded_in_bytes() -> None:
    from mailroom.core.vocabulary import Trigger
    from mailroom.push.messages import PassFinished
    from mailroom.push.policy import PushPolicy
    from mailroom.push.scheduler import DEFERRED_BYTES, PassScheduler

    scheduler = PassScheduler(PushPolicy())
    out: list[Any] = []
    scheduler.start(Trigger.STARTUP, 0.0, out)
    big = "x" * 100_000  # a server's absurd state strings, a thousand of them
    for n in range(1000):
        scheduler.on_states({"Email": f"{n}{big}"}, 1.0, out)
    held = sum(len(k) + len(v) for s in scheduler._deferred for k, v in s.items())
    assert held <= DEFERRED_BYTES + 2 * (len(big) + 10)  # at most one entry past the bound
    assert scheduler._deferred[-1]["Email"].startswith("999")  # the newest is kept
    scheduler.finished(PassFinished(Trigger.STARTUP), 2.0, True, out)
    assert scheduler._deferred == []
