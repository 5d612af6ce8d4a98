"""Network faults a server cannot make itself, through the fault proxy.

The service runs in-process against the stand-in behind the proxy; each
scenario asserts the state path, /health, /metrics, and that every label
applied during the fault is triaged afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from mailroom.sandbox.server import Flavour
from tests.faultproxy import FaultProxy
from tests.faults import FaultySandbox
from tests.push.harness import FAST, running

pytestmark = pytest.mark.anyio


@contextmanager
def behind_proxy(flavour: Flavour) -> Iterator[tuple[FaultySandbox, FaultProxy, dict[str, str]]]:
    with FaultySandbox(flavour=flavour) as sb, FaultProxy("127.0.0.1", sb.port) as proxy:
        sb.public_url = proxy.url
        env = {
            "MAILROOM_JMAP_SESSION_URL": proxy.url + "/jmap/session",
            "MAILROOM_CARDDAV_URL": proxy.url,
        }
        yield sb, proxy, env


async def test_blackholed_stream_with_pings() -> None:
    with behind_proxy("rfc") as (sb, proxy, env):
        async with running(sb, env=env) as run:
            await run.until(
                lambda: (
                    run.app.supervisor is not None
                    and run.app.supervisor.core.link.liveness.server_pings is True
                )
            )
            proxy.set("blackhole", streams_only=True)  # a half-open stream; the API still works
            await run.until(lambda: "backoff" in run.path)
            body = (await run.health())[1]
            assert "silent" in body["eventsource"]["last_error"]
            # New streams hang too (open timeout) until push counts as unavailable.
            # (DEGRADED may last only until its first fast poll succeeds and push
            # is tried again: look at the path, not at the state of the moment.)
            await run.until(lambda: "degraded" in run.path)
            ids = run.label("bh@x.example")
            await run.until(lambda: run.triaged(ids))  # fast polling carries triage
            proxy.set("pass")
            await run.until(lambda: run.state == "connected")
            await run.until(lambda: run.polls("catchup") >= 1)
            assert (
                await run.metric(
                    "mailroom_state_transitions_total", **{"from": "connected", "to": "backoff"}
                )
                >= 1
            )
            assert (await run.health())[1]["status"] == "pass"


async def test_blackholed_stream_without_pings() -> None:
    with behind_proxy("fastmail") as (sb, proxy, env):
        async with running(sb, replace(FAST, poll_interval=1.0), env=env) as run:
            proxy.set("blackhole", streams_only=True)
            ids = run.label("nb@x.example")
            # No pings: only the safety-net poll can notice. It triages the label,
            # finds a change push never announced, and replaces the stream.
            await run.until(lambda: run.triaged(ids))
            await run.until(lambda: run.app.telemetry.metrics.missed_pushes._value.get() >= 1)
            await run.until(lambda: "backoff" in run.path or "degraded" in run.path)
            proxy.set("pass")
            await run.until(lambda: run.state == "connected")
            assert await run.metric("mailroom_eventsource_missed_pushes_total") >= 1
            more = run.label("nb2@x.example")
            await run.until(lambda: run.triaged(more))


async def test_server_restart_mid_stream() -> None:
    policy = replace(FAST, degrade_after=30.0)
    with behind_proxy("rfc") as (sb, proxy, env):
        async with running(sb, policy, env=env) as run:
            proxy.set("drop")  # the server is down...
            proxy.reset()  # ...and every open connection died with it
            await run.until(lambda: "backoff" in run.path)
            ids = run.label("rs@x.example", emails=2)  # the user acts meanwhile
            proxy.set("pass")  # the server is back
            await run.until(lambda: run.triaged(ids))
            await run.until(lambda: run.polls("catchup") >= 1)
            assert run.state == "connected"
            body = (await run.health())[1]
            assert body["status"] == "pass" and body["eventsource"]["reconnect_count"] >= 1


async def test_network_flap_during_a_poll() -> None:
    with behind_proxy("rfc") as (sb, proxy, env):
        async with running(sb, env=env) as run:
            # The network drops in the middle of the poll this label triggers:
            # its first request, and the stream with it, reset before any answer.
            proxy.flap_on_next_request()
            ids = run.label("flap@x.example", emails=3)
            await run.until(lambda: run.triaged(ids))  # the label survived: retried
            await run.until(lambda: run.state == "connected")
            failures = run.polls("push", "failure") + run.polls("catchup", "failure")
            assert failures >= 1
            assert (await run.health())[1]["polling"]["consecutive_failures"] == 0


async def test_slow_server() -> None:
    with behind_proxy("rfc") as (sb, proxy, env):
        async with running(sb, env=env) as run:
            proxy.latency = 0.3
            ids = run.label("slow@x.example", emails=2)
            await run.until(lambda: run.triaged(ids), within=30)
            await run.until(lambda: run.polls("push") >= 1)
            assert run.path == ["connecting", "connected"]
            assert (await run.health())[1]["status"] == "pass"
            assert run.app.telemetry.metrics.poll_duration._sum.get() > 0.3


async def test_response_cut_mid_line() -> None:
    with behind_proxy("rfc") as (sb, proxy, env):
        async with running(sb, env=env) as run:
            proxy.cut_next_stream_chunk()
            ids = run.label("cut@x.example")  # its state event is cut mid-line
            await run.until(lambda: run.triaged(ids))
            await run.until(lambda: run.path.count("connected") >= 2)
            assert "backoff" in run.path
            assert await run.metric("mailroom_eventsource_events_total", kind="malformed") == 0
