"""Fault scenarios: the whole service against the stand-in's fault switches.

Each asserts the state path, /health, /metrics, and that no triage is lost.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from itertools import pairwise

import pytest

from tests.faults import FaultySandbox
from tests.push.harness import FAST, running

pytestmark = pytest.mark.anyio


def stream_requests(sb: FaultySandbox) -> list[float]:
    return [t for route, t in sb.request_log if route == "eventsource"]


async def test_push_triages_within_debounce_and_echo_causes_no_poll() -> None:
    with FaultySandbox() as sb:
        async with running(sb) as run:
            ids = run.label("news@acme.example", emails=3)
            await run.until(lambda: run.triaged(ids))
            # Our own writes come back as state events: they must not poll again.
            await run.until(lambda: run.app.telemetry.record.last_event_at is not None)
            await asyncio.sleep(1.0)  # several debounce periods of quiet
            assert run.polls("push") == 1
            assert await run.metric("mailroom_triaged_senders_total", category="Feed") == 1
            assert await run.metric("mailroom_emails_refiled_total") == 3
            status, body = await run.health()
            assert (status, body["status"]) == (200, "pass")
            assert body["polling"]["last_trigger"] == "push"
            assert body["eventsource"]["status"] == "connected"
            assert body["eventsource"]["reconnect_count"] == 0
            text = str(body) + str(await run.metrics())
            assert "news@acme.example" not in text and sb.token not in text  # no addresses
            assert (
                await run.metric(
                    "mailroom_eventsource_state", mailroom_eventsource_state="connected"
                )
                == 1
            )
        assert run.path[:2] == ["connecting", "connected"]


async def test_server_down_at_start() -> None:
    with FaultySandbox() as sb:
        sb.set_refusing(True)

        async def come_back() -> None:
            await asyncio.sleep(0.3)
            sb.set_refusing(False)

        back = asyncio.create_task(come_back())
        async with running(sb) as run:
            await back
            ids = run.label("a@x.example")
            await run.until(lambda: run.triaged(ids))
            assert run.polls("startup") == 1
            # The labels come off before the pass reports: wait for its report.
            await run.until(lambda: run.app.telemetry.health()[1]["status"] == "pass")
            assert (await run.health())[1]["status"] == "pass"


async def test_reset_mid_stream_reconnects_and_loses_nothing() -> None:
    with FaultySandbox() as sb:
        async with running(sb) as run:
            sb.reset_connections()
            await run.until(
                lambda: run.path[-2:] == ["connecting", "connected"] and len(run.path) > 3
            )
            assert "backoff" in run.path
            ids = run.label("b@x.example")
            await run.until(lambda: run.triaged(ids))
            body = (await run.health())[1]
            assert body["eventsource"]["reconnect_count"] >= 1
            assert await run.metric("mailroom_eventsource_reconnects_total") >= 1
            assert (
                await run.metric(
                    "mailroom_state_transitions_total", **{"from": "connected", "to": "backoff"}
                )
                >= 1
            )


async def test_accept_then_close_never_loops_fast_and_degrades() -> None:
    with FaultySandbox() as sb:
        async with running(sb) as run:
            sb.faults.stream = "close"
            sb.reset_connections()
            await run.until(lambda: "degraded" in run.path)  # (it may be brief)
            attempts = stream_requests(sb)
            # Growing delays: a handful of attempts in over a second, not hundreds.
            assert len(attempts) < 15
            gaps = [b - a for a, b in pairwise(attempts[1:])]
            assert gaps and gaps[-1] >= FAST.backoff_base
            ids = run.label("c@x.example")
            await run.until(lambda: run.triaged(ids))  # fast polling carries triage
            status, body = await run.health()
            assert (status, body["status"]) == (200, "warn")
            assert "closed" in body["eventsource"]["last_error"]
            sb.faults.stream = "normal"
            await run.until(lambda: run.state == "connected")


async def test_silent_stream_with_pings_is_detected() -> None:
    with FaultySandbox(flavour="rfc") as sb:
        async with running(sb) as run:
            await run.until(
                lambda: (
                    run.app.supervisor is not None
                    and run.app.supervisor.core.link.liveness.server_pings is True
                )
            )
            sb.faults.stream = "silent"
            await run.until(lambda: "backoff" in run.path)
            body = (await run.health())[1]
            assert "silent" in body["eventsource"]["last_error"]
            sb.faults.stream = "normal"
            await run.until(lambda: run.state == "connected")
            ids = run.label("d@x.example")
            await run.until(lambda: run.triaged(ids))


async def test_silent_stream_without_pings_missed_push_reconnects() -> None:
    policy = replace(FAST, poll_interval=1.0)
    with FaultySandbox(flavour="fastmail") as sb:
        async with running(sb, policy) as run:
            sb.faults.stream = "silent"
            sb.reset_connections()
            await run.until(lambda: run.path.count("connected") >= 2)
            # The stream is up but says nothing; no pings, so no flapping...
            ids = run.label("e@x.example")
            # ...until the safety-net poll triages a change push never announced.
            await run.until(lambda: run.triaged(ids))
            await run.until(lambda: run.app.telemetry.metrics.missed_pushes._value.get() >= 1)
            sb.faults.stream = "normal"
            await run.until(lambda: run.state == "connected")
            assert await run.metric("mailroom_eventsource_missed_pushes_total") >= 1
            assert run.polls("fallback") >= 1


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_rejected_on_stream_is_degraded_and_fails_health(status: int) -> None:
    with FaultySandbox() as sb:
        sb.faults.force("eventsource", status)
        async with running(sb, replace(FAST, poll_interval=1.0), wait_connected=False) as run:
            await run.until(lambda: run.state == "degraded")
            http_status, body = await run.health()
            assert (http_status, body["status"]) == (503, "fail")
            assert f"EventSource (HTTP {status})" in body["output"]
            # Never faster than the normal interval, and triage still happens.
            assert run.app.supervisor is not None
            assert run.app.supervisor.core.poll_interval() == 1.0
            ids = run.label("f@x.example")
            await run.until(lambda: run.triaged(ids))
            attempts = stream_requests(sb)
            gaps = [b - a for a, b in pairwise(attempts)]
            assert all(g >= 0.8 * FAST.backoff_cap for g in gaps)  # at the cap, not hammered
            sb.faults.clear()


@pytest.mark.parametrize("status", [429, 503])
async def test_busy_stream_honours_retry_after(status: int) -> None:
    with FaultySandbox() as sb:
        sb.faults.force("eventsource", status, {"Retry-After": "1"}, times=1)
        # The floor is clamped to the backoff cap: give this one room above 1 s.
        async with running(sb, replace(FAST, backoff_cap=2.0), wait_connected=False) as run:
            await run.until(lambda: run.state == "connected")
            first, second = stream_requests(sb)[:2]
            assert second - first >= 1.0  # the server's floor, above our 50 ms backoff
            assert run.path[:4] == ["connecting", "backoff", "connecting", "connected"]
            body = (await run.health())[1]
            assert body["eventsource"]["last_error"] is None  # cleared once connected


async def test_204_means_push_unavailable_fast_polling() -> None:
    with FaultySandbox() as sb:
        sb.faults.force("eventsource", 204)
        async with running(sb, replace(FAST, poll_interval=60.0), wait_connected=False) as run:
            await run.until(lambda: run.state == "degraded")
            ids = run.label("g@x.example")
            await run.until(lambda: run.triaged(ids))  # within the 0.5 s degraded poll
            await run.until(lambda: run.polls("fallback") >= 1)
            body = (await run.health())[1]
            assert body["status"] == "warn"
            assert body["eventsource"]["last_error"] == "EventSource answered HTTP 204"
            assert (
                await run.metric(
                    "mailroom_state_transitions_total", **{"from": "connecting", "to": "degraded"}
                )
                >= 1
            )
            sb.faults.clear()
            await run.until(lambda: run.state == "connected")
            await run.until(lambda: run.polls("catchup") >= 1)


async def test_no_event_source_url() -> None:
    with FaultySandbox(event_source=False) as sb:
        async with running(sb, wait_connected=False) as run:
            await run.until(lambda: run.state == "degraded")
            ids = run.label("h@x.example")
            await run.until(lambda: run.triaged(ids))
            body = (await run.health())[1]
            assert body["eventsource"]["last_error"] == "the session has no eventSourceUrl"


async def test_malformed_event_counted_stream_stays_up() -> None:
    with FaultySandbox() as sb:
        async with running(sb) as run:
            sb.faults.malformed_events = 1
            sb.mail.deliver("noise@x.example", mailboxes=["Inbox"])
            await run.until(
                lambda: run.app.telemetry.metrics.events.labels("malformed")._value.get() == 1
            )
            ids = run.label("i@x.example")
            await run.until(lambda: run.triaged(ids))
            await run.until(lambda: run.polls("push") >= 1)
            assert run.path == ["connecting", "connected"]
            assert await run.metric("mailroom_eventsource_events_total", kind="malformed") == 1


async def test_oversized_line_dropped_stream_stays_up() -> None:
    with FaultySandbox() as sb:
        async with running(sb) as run:
            sb.faults.oversized_line = 2 * 1024 * 1024
            ids = run.label("j@x.example")
            await run.until(lambda: run.triaged(ids))
            assert await run.metric("mailroom_eventsource_events_total", kind="oversized") == 1
            assert run.path == ["connecting", "connected"]


async def test_retry_field_is_a_floor() -> None:
    with FaultySandbox() as sb:
        sb.faults.retry_ms = 1200
        async with running(sb, replace(FAST, backoff_cap=2.0)) as run:
            await run.until(
                lambda: run.app.telemetry.metrics.events.labels("retry")._value.get() == 1
            )
            sb.reset_connections()
            await run.until(lambda: len(stream_requests(sb)) >= 2 and run.state == "connected")
            first, second = stream_requests(sb)[:2]
            assert second - first >= 1.2


async def test_labels_applied_during_outage_are_caught_up() -> None:
    policy = replace(FAST, degrade_after=30.0)  # stay in BACKOFF: no fast polls
    with FaultySandbox() as sb:
        async with running(sb, policy) as run:
            sb.set_refusing(True)
            await run.until(lambda: "backoff" in run.path)
            ids = run.label("k@x.example", emails=2)  # the phone's change reaches the server
            sb.set_refusing(False)
            await run.until(lambda: run.triaged(ids))
            # The label is gone a moment before the pass reports: wait for it.
            await run.until(lambda: run.polls("catchup") == 1)
            assert run.polls("fallback") == 0
            assert run.state == "connected"
            assert (await run.health())[1]["polling"]["last_trigger"] in ("catchup", "push")


async def test_event_storm_is_debounced() -> None:
    with FaultySandbox() as sb:
        async with running(sb, replace(FAST, debounce=0.3, max_wait=5.0)) as run:
            for _ in range(2000):
                sb.mail.deliver("storm@x.example", mailboxes=["Inbox"])
            ids = run.label("l@x.example")
            await run.until(lambda: run.triaged(ids))
            events = run.app.telemetry.metrics.events.labels("state")._value.get()
            assert events >= 1
            assert run.polls("push") <= 3
            # How many events the stand-in sends for 2,000 changes depends on how
            # fast its stream drains (a loaded machine coalesces them): whatever
            # their number, more events than passes means some were collapsed.
            collapsed = await run.metric("mailroom_debounce_collapsed_events_total")
            assert collapsed >= 1 or events <= run.polls("push") + 1
            assert run.path == ["connecting", "connected"]


async def test_clean_close_after_healthy_connection_reconnects_quietly() -> None:
    with FaultySandbox(flavour="rfc") as sb:
        async with running(sb) as run:
            await run.until(
                lambda: (
                    run.app.supervisor is not None
                    and run.app.supervisor.core.link.liveness.server_pings is True
                )
            )
            await asyncio.sleep(FAST.healthy_after)  # let the connection prove itself
            sb.mail.deliver("x@y.example", mailboxes=["Inbox"])  # an id to resume from
            await run.until(
                lambda: (
                    run.app.supervisor is not None
                    and run.app.supervisor.core.link.reading.last_event_id != ""
                )
            )
            sb.close_streams()  # Cyrus ending the stream after its timeout
            await run.until(lambda: run.path.count("connected") == 2)
            assert run.path == ["connecting", "connected", "connecting", "connected"]
            assert run.polls("catchup") == 0  # Last-Event-ID covers the gap
            ids = run.label("m@x.example")
            await run.until(lambda: run.triaged(ids))
            assert (await run.health())[1]["eventsource"]["last_error"] is None


async def test_an_absurd_event_id_never_stops_reconnects() -> None:
    with FaultySandbox(flavour="rfc") as sb:
        sb.faults.event_id = "café"  # what a broken server sent as id:
        async with running(sb) as run:
            ids = run.label("first@x.example")
            await run.until(lambda: run.triaged(ids))
            sb.close_streams()  # the next connection must open all the same
            await run.until(lambda: run.path.count("connected") == 2)
            assert "degraded" not in run.path
            # Without an id to resume from, the reconnect owes a catch-up pass;
            # once it ran, the next label is push's alone.
            await run.until(lambda: run.polls("catchup") >= 1)
            events = run.app.telemetry.metrics.events.labels("state")
            before = events._value.get()
            ids = run.label("second@x.example")
            await run.until(lambda: run.triaged(ids))
            # The new stream announced it (a pass of another trigger, a catch-up
            # owed by a reconnect, say, may be the one that got to it first).
            await run.until(lambda: events._value.get() > before)
            assert await run.metric("mailroom_eventsource_events_total", kind="malformed") >= 1
            assert run.app.supervisor is not None
            assert run.app.supervisor.core.link.reading.last_event_id == ""


async def test_a_flood_of_comments_is_read_no_faster_than_handled() -> None:
    from mailroom.push.supervisor import STREAM_BACKLOG

    with FaultySandbox(flavour="rfc") as sb:
        async with running(sb) as run:
            sb.faults.stream = "flood"
            sb.close_streams()  # the next connection floods from its first byte
            backlog: list[int] = []

            async def sample() -> None:
                while True:
                    assert run.app.supervisor is not None
                    backlog.append(run.app.supervisor._queue.qsize())
                    await asyncio.sleep(0.01)

            sampler = asyncio.create_task(sample())
            try:
                await run.until(
                    lambda: run.app.telemetry.metrics.events.labels("folded")._value.get() > 10_000
                )
                ids = run.label("flooded@x.example")
                await run.until(lambda: run.triaged(ids))  # a real event still gets through
            finally:
                sampler.cancel()
            assert run.polls("fallback") == 0  # not the 60 s safety net: the stream carried it
            assert max(backlog) <= STREAM_BACKLOG + 8  # bounded, whatever the server sends


@pytest.mark.parametrize("flavour", ["fastmail", "rfc"])
async def test_a_server_closing_the_stream_after_each_change_costs_no_push(flavour: str) -> None:
    with FaultySandbox(flavour=flavour) as sb:
        sb.faults.stream = "close-after-event"
        async with running(sb) as run:
            for n in range(4):
                ids = run.label(f"closer{n}@x.example")
                await run.until(lambda ids=ids: run.triaged(ids))  # type: ignore[misc]
                await run.until(lambda: run.state == "connected")
            # The stream carried every label (a push, or the catch-up of a
            # renewal), never the 60 s safety net.
            assert run.polls("fallback") == 0
            assert "backoff" not in run.path and "degraded" not in run.path
            reconnects = stream_requests(sb)
            # At most one a second: the client waits a second between renewals;
            # the stand-in stamps each request when its thread gets to it, so
            # under load two stamps may come closer by scheduling jitter (a
            # renewal without the wait comes within milliseconds).
            gaps = [round(b - a, 3) for a, b in pairwise(reconnects[1:])]
            assert all(g >= 0.8 for g in gaps), gaps
