"""The push core, path by path: messages and times in, actions and states out."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import pairwise

from mailroom.core.vocabulary import FailureKind, ItemKind, Trigger
from mailroom.push.connection import State
from mailroom.push.messages import (
    CancelPass,
    CancelStream,
    CountItem,
    MissedPush,
    OpenStream,
    PassFinished,
    Report,
    StartPass,
    StreamAuth,
    StreamFailed,
    StreamItem,
    StreamOpened,
)
from mailroom.push.sse import Comment, Event, IdCleared, Invalid, Retry
from tests.push.core_driver import ACCOUNT, POLICY, Driver, control, ping, state_event


def connected_driver() -> Driver:
    d = Driver()
    d.opened(at=0.1)
    d.pass_done(at=0.5)
    return d


def test_start_opens_the_stream_and_runs_the_startup_pass() -> None:
    d = Driver()
    assert [a for _, a in d.log] == [OpenStream(1, False, ""), StartPass(Trigger.STARTUP)]
    assert control(d.opened(at=0.2)) == []
    assert d.state is State.CONNECTED
    assert control(d.pass_done(at=1.0)) == []
    # The safety net: one interval after the last pass ended.
    assert control(d.until(60.9)) == []
    assert control(d.until(61.0)) == [StartPass(Trigger.FALLBACK)]


def test_a_burst_of_state_events_is_one_push_pass_after_the_debounce() -> None:
    d = connected_driver()
    for i, t in enumerate((10.0, 10.5, 11.0)):
        d.item(state_event(f"s{i}"), at=t)
    assert control(d.until(13.9)) == []
    assert control(d.until(14.0)) == [StartPass(Trigger.PUSH)]
    assert sum(1 for _, a in d.log if a == CountItem(ItemKind.STATE)) == 3


def test_our_own_writes_are_no_news() -> None:
    d = connected_driver()
    d.send(StreamItem(d.conn, state_event("s1")), at=5.0)
    d.until(8.0)
    d.pass_done(at=8.5, seen={"Email": "s1"}, own={"Email": frozenset({"s2"})})
    d.item(state_event("s2"), at=9.0)  # the echo of our own Email/set
    assert control(d.until(20.0)) == []


def test_events_during_a_pass_give_one_follow_up() -> None:
    d = connected_driver()
    d.item(state_event("s1"), at=5.0)
    d.until(8.0)  # push pass running
    d.item(state_event("s2"), at=8.2)
    d.item(state_event("s3"), at=8.4)
    assert control(d.pass_done(at=9.0, seen={"Email": "s1"})) == []
    assert control(d.until(12.0)) == [StartPass(Trigger.PUSH)]


def test_stream_dead_before_its_first_ping_is_dropped_at_the_window() -> None:
    d = Driver()
    d.opened(at=0.0)
    d.pass_done(at=0.5)
    window = POLICY.liveness_window  # 2 x 30 + 10 = 70 s, within the 75 s target
    assert CancelStream(1) not in d.until(window - 0.01)
    actions = d.until(window)
    assert CancelStream(1) in actions
    assert d.state is State.BACKOFF


def test_a_pinging_stream_that_goes_quiet_is_dropped_70_s_after_the_last_ping() -> None:
    d = connected_driver()
    d.item(ping(), at=30.0)
    d.item(ping(), at=60.0)
    assert CancelStream(1) not in d.until(129.9)
    assert CancelStream(1) in d.until(130.0)
    # A server that has pinged before: a later connection silent from the
    # start is dropped too (no learning from it).
    d.opened(at=131.0)
    assert CancelStream(2) in d.until(131.0 + 70)


def test_a_server_that_never_pings_costs_one_extra_reconnect() -> None:
    d = Driver()
    d.opened(at=0.0)
    d.item(state_event("s0"), at=0.1)  # Fastmail's connect snapshot: an event, no ping
    d.pass_done(at=0.5)
    assert CancelStream(1) in d.until(70.1)  # first silent connection: dropped
    d.until(71.1)  # backoff 1 s
    assert d.opens()[-1][1].conn == 2
    d.opened(at=71.2)
    actions = d.until(300.0)
    assert not any(isinstance(a, CancelStream) for a in actions)
    assert any(isinstance(a, Report) and "no pings" in a.message for a in actions)
    assert d.state is State.CONNECTED
    assert len(d.opens()) == 2  # exactly one extra reconnect
    # Should it ping after all, it is believed again.
    d.item(ping(), at=301.0)
    assert d.core.link.liveness.server_pings is True


def test_retry_field_is_clamped_to_the_cap_and_is_a_floor() -> None:
    d = connected_driver()
    d.item(Retry(10**12), at=1.0)  # an absurd retry: field
    d.failed(at=2.0)
    assert d.core.link.reconnect_at == 2.0 + POLICY.backoff_cap
    d.until(61.9)
    assert len(d.opens()) == 1
    d.until(62.0)
    assert len(d.opens()) == 2


def test_retry_after_is_clamped_to_the_cap() -> None:
    d = Driver()
    d.failed(at=1.0, retry_after=1e12)
    assert d.core.link.reconnect_at == 61.0


def test_an_unparseable_retry_after_is_counted_malformed_and_ignored() -> None:
    d = Driver()
    actions = d.send(StreamFailed(1, "HTTP 503", None, bad_retry_after=True), at=1.0)
    assert CountItem(ItemKind.MALFORMED) in actions
    assert d.core.link.reconnect_at == 2.0  # the plain backoff: 1 s


def test_an_invalid_retry_is_counted_malformed_and_ignored() -> None:
    d = connected_driver()
    actions = d.item(Invalid("retry", "not digits"), at=1.0)
    assert CountItem(ItemKind.MALFORMED) in actions
    assert d.core.link.reading.retry_floor is None


def test_any_error_on_an_open_stream_reconnects() -> None:
    d = connected_driver()
    d.ended("stream broke: ValueError: boom", at=5.0)
    assert d.state is State.BACKOFF
    d.until(6.0)
    assert d.opens()[-1][1].conn == 2
    # A failure report for an open stream (not only a transport error) too.
    d.opened(at=6.1)
    d.failed(at=7.0)
    assert d.state is State.BACKOFF


def test_server_back_retries_push_at_once_and_catches_up() -> None:
    d = Driver(policy=replace(POLICY, degrade_after=3.0))
    d.pass_done(at=0.5)
    d.failed(at=1.0)
    d.until(2.0)
    d.failed(at=2.0)
    d.until(4.0)
    d.failed(at=4.0)
    assert d.state is State.DEGRADED
    retry_at = d.core.link.reconnect_at
    assert retry_at is not None and retry_at >= 4.0 + 48.0  # at the cap, jittered
    assert control(d.until(30.5)) == [StartPass(Trigger.FALLBACK)]  # degraded: 30 s
    actions = control(d.pass_done(at=31.0))
    assert actions == [OpenStream(4, True, "")]  # at once, session refreshed
    actions = control(d.opened(at=31.1))
    assert actions == [StartPass(Trigger.CATCHUP)]
    assert d.states[-2:] == ["connecting", "connected"]


def test_server_back_never_retries_below_the_floor() -> None:
    d = Driver()
    d.pass_done(at=0.5)
    d.failed(at=1.0, retry_after=20.0)
    d.until(1.0)
    d.send(StreamOpened(99), at=2.0)  # stale: ignored
    # A pass started after the failure succeeds at 5 s: the floor (21 s) holds.
    d.core.passes.start(Trigger.FALLBACK, 3.0, [])
    d.running = Trigger.FALLBACK
    d.pass_done(at=5.0)
    assert d.core.link.reconnect_at == 21.0


def test_accept_then_close_does_not_loop_through_the_catch_up_pass() -> None:
    d = Driver()
    d.pass_done(at=0.5)
    d.opened(at=1.0)
    d.ended(at=1.01)  # closed at once: lost, the catch-up is owed
    d.until(2.01)
    d.opened(at=2.02)  # catch-up starts at connect
    assert d.running is Trigger.CATCHUP
    d.ended(at=2.03)
    d.pass_done(at=2.5)  # it began before the failure: proves nothing
    assert d.core.link.reconnect_at == 2.03 + 2.0  # the backoff keeps growing


def test_no_early_retry_after_credentials_were_refused() -> None:
    d = Driver()
    actions = d.refused(401, at=1.0)
    assert StreamAuth("EventSource (HTTP 401)") in actions
    assert d.state is State.DEGRADED
    assert d.core.poll_interval() == POLICY.poll_interval  # never faster after 401/403
    d.pass_done(at=1.5)
    d.until(30.0)
    d.core.passes.start(Trigger.FALLBACK, 30.0, [])
    d.running = Trigger.FALLBACK
    assert control(d.pass_done(at=31.0)) == []


def test_last_event_id_survives_reconnects() -> None:
    d = connected_driver()
    d.item(state_event("s1", event_id="41"), at=1.0)
    d.failed(at=2.0)
    d.until(3.0)
    assert d.opens()[-1][1].last_event_id == "41"
    d.opened(at=3.1)
    d.item(ping(), at=4.0)  # no id on the new connection: nothing cleared
    d.item(Comment("hi"), at=4.1)
    d.item(Retry(500), at=4.2)
    d.failed(at=5.0)
    d.until(8.0)
    assert d.opens()[-1][1].last_event_id == "41"
    d.opened(at=8.1)
    d.item(state_event("s2", event_id="42"), at=9.0)
    assert d.core.link.reading.last_event_id == "42"


def test_the_server_may_clear_the_id_and_an_absurd_one_is_not_kept() -> None:
    d = connected_driver()
    d.item(state_event("s1", event_id="41"), at=1.0)
    d.item(IdCleared(), at=1.5)  # an empty id: field
    assert d.core.link.reading.last_event_id == ""
    d.item(state_event("s2", event_id="42"), at=2.0)
    counted = d.item(state_event("s3", event_id="café"), at=2.5)
    assert CountItem(ItemKind.MALFORMED) in counted
    assert d.core.link.reading.last_event_id == ""  # never sent back as Last-Event-ID
    # The same id on every later event of the connection is counted once.
    assert CountItem(ItemKind.MALFORMED) not in d.item(state_event("s4", "café"), at=3.0)
    d.item(state_event("s5", event_id="x" * 257), at=3.5)
    assert d.core.link.reading.last_event_id == ""
    d.item(state_event("s6", event_id="43"), at=4.0)
    d.failed(at=5.0)
    d.until(6.0)
    assert d.opens()[-1][1].last_event_id == "43"


def test_a_clean_close_after_a_healthy_connection_reconnects_at_once() -> None:
    d = connected_driver()
    d.item(state_event("s1", event_id="7"), at=1.0)
    d.until(4.0)
    d.pass_done(at=4.5, seen={"Email": "s1"})
    d.pinging(to=299.0)
    d.pass_done(at=299.5)  # the fallback pass of 244.5
    actions = d.ended(at=300.0)
    assert actions[:1] == [OpenStream(2, False, "7")]
    assert d.states[-2:] == ["connected", "connecting"]
    d.opened(at=300.1)
    assert d.running is None or d.running is not Trigger.CATCHUP  # ids cover the gap


def test_a_pass_over_its_deadline_is_cancelled_then_the_next_runs_on_time() -> None:
    d = connected_driver()
    d.pinging(to=60.5)
    assert d.running is Trigger.FALLBACK
    assert control(d.pinging(to=60.5 + POLICY.pass_timeout)) == [CancelPass()]
    assert control(d.pinging(to=200.0)) == []  # cancel asked once
    d.pass_done(at=200.5, ok=False, kind=FailureKind.TIMEOUT)
    assert control(d.pinging(to=260.5)) == [StartPass(Trigger.FALLBACK)]


def test_a_failed_pass_is_followed_by_the_next_on_schedule() -> None:
    d = Driver()
    d.opened(at=0.1)
    d.pass_done(at=1.0, ok=False, kind=FailureKind.UNEXPECTED)
    assert control(d.until(61.0)) == [StartPass(Trigger.FALLBACK)]


def test_missed_push_drops_the_stream() -> None:
    d = connected_driver()
    d.item(state_event("s1"), at=1.0)
    d.until(4.0)
    d.pass_done(at=4.5, seen={"Email": "s1"})
    d.pinging(to=64.5)  # fallback pass
    d.pass_done(at=65.0, seen={"Email": "s9"})  # moved, and no push came
    window = POLICY.debounce + POLICY.missed_push_grace
    actions = d.until(65.0 + window)
    assert MissedPush() in actions and CancelStream(1) in actions
    assert d.state is State.BACKOFF


def test_degraded_polls_faster() -> None:
    d = Driver()
    d.refused(204, at=1.0)
    assert d.state is State.DEGRADED
    d.pass_done(at=2.0)
    assert control(d.until(32.0)) == [StartPass(Trigger.FALLBACK)]


def test_stray_and_stale_messages_are_no_ops() -> None:
    d = connected_driver()
    before = list(d.states)
    assert control(d.send(PassFinished(Trigger.PUSH), at=2.0)) == []  # no pass running
    assert control(d.send(StreamOpened(d.conn), at=2.1)) == []  # already connected
    assert d.send(StreamItem(d.conn - 1, ping()), at=2.2) == []  # old connection
    assert d.states == before


def connect_snapshot(email: str) -> Event:
    data = json.dumps({"changed": {ACCOUNT: {"Email": email}}, "type": "connect"})
    return Event("state", data, "")


def test_a_server_closing_after_each_change_is_renewed_not_backed_off() -> None:
    d = connected_driver()
    opened_at = [at for at, a in d.log if isinstance(a, OpenStream)]
    for n in range(5):  # five changes, each followed by a clean close
        start = 2.0 + 8 * n
        d.item(state_event(f"s{n}"), at=start)
        d.ended(at=start + 0.05)
        assert d.state.value == "connecting"  # never BACKOFF
        d.until(start + 1.2)
        d.opened(at=start + 1.3)
        assert d.state.value == "connected"
    opens = [at for at, a in d.log if isinstance(a, OpenStream)][len(opened_at) :]
    assert len(opens) == 5
    # Never more than one attempt a second, and never later than a second.
    assert all(b - a >= 1.0 for a, b in pairwise([0.0, *opens]))
    assert all(o - (2.05 + 8 * n) <= 1.0 for n, o in enumerate(opens))


def test_a_server_closing_after_its_snapshot_alone_still_backs_off() -> None:
    d = Driver()
    for _ in range(6):
        d.opened(at=d.now + 0.1)
        d.item(connect_snapshot("s0"), at=d.now + 0.01)  # the connect event: no change
        d.ended(at=d.now + 0.01)
        assert d.state in (State.BACKOFF, State.DEGRADED)
        d.until(d.core.deadline() or d.now)
    gaps = [b - a for a, b in pairwise(at for at, a in d.log if isinstance(a, OpenStream))]
    assert gaps[-1] > gaps[0]  # growing waits, as for any accept-then-close server
