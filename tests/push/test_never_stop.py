"""Nothing the world sends stops the service, and /health tells the truth.

The whole service against the stand-in over loopback; each test fails on a
service that lets the fault through.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from mailroom.core.vocabulary import Trigger
from mailroom.observe.systemd import SystemdNotifier
from mailroom.push.sse import SseDecoder
from mailroom.service import make_telemetry
from mailroom.settings import load_settings
from mailroom.triage.workflow import Triage
from tests.faults import FaultySandbox
from tests.push.harness import FAST, running

pytestmark = pytest.mark.anyio
QUICK = replace(FAST, poll_interval=1.0)


async def test_a_pass_raising_anything_is_a_failed_pass_and_the_next_runs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = Triage.run_pass
    calls = {"n": 0}

    async def flaky(self: Triage, trigger: Trigger):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("maxCallsInRequest below 3, or any bug")
        return await real(self, trigger)

    monkeypatch.setattr(Triage, "run_pass", flaky)
    caplog.set_level(logging.ERROR, "mailroom.push")
    with FaultySandbox() as sb:
        async with running(sb, QUICK) as run:
            assert run.polls("startup", "failure") == 1
            failed = sum(
                run.polls(t, "failure") for t in ("startup", "push", "catchup", "fallback")
            )
            assert failed == 2
            ids = run.label("after@x.example")
            await run.until(lambda: run.triaged(ids))
            # The labels come off before the pass reports: wait for its report.
            await run.until(lambda: run.app.telemetry.health()[1]["status"] == "pass")
            assert (await run.health())[1]["status"] == "pass"
    logged = [r for r in caplog.records if r.getMessage() == "poll failed"]
    assert logged and logged[0].exc_info is not None  # logged with its traceback


async def test_carddav_rejected_inside_a_pass_fails_health_naming_carddav() -> None:
    with FaultySandbox() as sb:
        async with running(sb) as run:
            sb.faults.force("carddav", 401)
            ids = run.label("someone@x.example")
            await run.until(lambda: run.polls("push", "failure") >= 1)
            status, body = await run.health()
            assert (status, body["status"]) == (503, "fail")
            assert "credentials rejected by CardDAV (HTTP 401)" in body["output"]
            assert not run.triaged(ids)  # kept, not lost
            sb.faults.clear("carddav")
            sb.mail.deliver("nudge@x.example")  # any change: a push pass
            await run.until(lambda: run.triaged(ids))
            # The labels come off before the pass reports: wait for its report.
            await run.until(lambda: run.app.telemetry.health()[1]["status"] == "pass")
            assert (await run.health())[1]["status"] == "pass"


async def test_every_sender_failing_is_a_failed_pass() -> None:
    with FaultySandbox() as sb:
        async with running(sb) as run:
            ids = run.label("doomed@x.example")
            sb.mail.refuse_updates.add(ids[0])
            await run.until(lambda: run.polls("push", "failure") >= 1)
            assert run.polls("push", "success") == 0
            body = (await run.health())[1]
            assert body["polling"]["consecutive_failures"] >= 1
            assert "every sender failed" in body["polling"]["last_error"]


async def test_an_error_inside_an_open_stream_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    real = SseDecoder.feed
    broken = {"left": 1}

    def feed(self: SseDecoder, chunk: bytes):  # type: ignore[no-untyped-def]
        if broken["left"]:
            broken["left"] -= 1
            raise ValueError("a decoder bug")
        return real(self, chunk)

    with FaultySandbox() as sb:
        async with running(sb, wait_connected=False) as run:
            monkeypatch.setattr(SseDecoder, "feed", feed)
            await run.until(lambda: run.path.count("connected") >= 1 and broken["left"] == 0)
            await run.until(lambda: run.path[-1] == "connected" and "backoff" in run.path)
            ids = run.label("still@x.example")
            await run.until(lambda: run.triaged(ids))
            assert await run.metric("mailroom_eventsource_reconnects_total") >= 1
    # running() asserted that the service exited 0


async def test_an_absurd_retry_field_is_clamped_to_the_cap() -> None:
    with FaultySandbox() as sb:
        sb.faults.stream_prefix = "retry: " + "9" * 5000 + "\n\nretry: soon\n\n"
        async with running(sb) as run:
            await run.until(
                lambda: run.app.telemetry.metrics.events.labels("retry")._value.get() >= 1
            )
            assert await run.metric("mailroom_eventsource_events_total", kind="malformed") >= 1
            floor = run.app.supervisor.core.link.reading.retry_floor if run.app.supervisor else None
            assert floor == FAST.backoff_cap
            sb.reset_connections()
            await run.until(lambda: run.path[-1] == "connected" and "backoff" in run.path)


async def test_a_pass_over_its_deadline_is_cancelled_and_counted() -> None:
    policy = replace(QUICK, pass_timeout=0.5)
    with FaultySandbox() as sb:
        sb.mail.ensure_mailbox("Screener")
        async with running(sb, policy, wait_connected=False) as run:
            sb.faults.trickle = 0.4  # a server trickling its answers
            sb.faults.delay_route = "api"
            await run.until(lambda: run.polls("fallback", "failure") >= 1)
            assert "deadline" in str(run.app.telemetry.record.last_poll_error)
            sb.faults.trickle = 0.0
            ids = run.label("patient@x.example")
            await run.until(lambda: run.triaged(ids))


SETTINGS = {
    "MAILROOM_JMAP_TOKEN": "t",
    "MAILROOM_CARDDAV_USERNAME": "u",
    "MAILROOM_CARDDAV_PASSWORD": "p",
}


def test_livez_fails_when_no_pass_started_for_three_intervals() -> None:
    now = [0.0]
    telemetry = make_telemetry(load_settings(SETTINGS))
    telemetry._monotonic = lambda: now[0]
    now[0] = 10_000.0  # start-up retries before the first pass are not a wedge
    telemetry.heartbeat()
    assert telemetry.liveness()[0] == 200
    telemetry.pass_started()
    stale = telemetry.pass_stale
    assert stale == 180.0  # 3 x 60 s; the 120 s pass deadline + 60 s fits within
    now[0] += stale - 1
    telemetry.heartbeat()  # the loop still turns…
    assert telemetry.liveness()[0] == 200
    now[0] += 2
    telemetry.heartbeat()
    status, body = telemetry.liveness()  # …but triage has stopped
    assert status == 503 and "no triage pass has started" in body["output"]


async def test_the_watchdog_is_not_fed_while_triage_is_wedged(tmp_path: Path) -> None:
    from mailroom.failures import classify
    from mailroom.push.policy import PushPolicy
    from mailroom.push.supervisor import Supervisor

    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.setblocking(False)
        now = [0.0]
        telemetry = make_telemetry(load_settings(SETTINGS))
        telemetry._monotonic = lambda: now[0]
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})

        async def never(*_: object):  # type: ignore[no-untyped-def]
            raise AssertionError

        async with httpx.AsyncClient() as http:
            sup = Supervisor(
                policy=PushPolicy(),
                run_pass=never,
                classify=classify,
                stream_url=never,
                account_id="a",
                auth_headers=dict,
                http=http,
                telemetry=telemetry,
                clock=lambda: now[0],
                systemd=notifier,
            )
            telemetry.pass_started()
            sup._beat()
            assert server.recv(64) == b"WATCHDOG=1"
            now[0] += telemetry.pass_stale + 1  # no pass since
            sup._beat()
            with pytest.raises(BlockingIOError):
                server.recv(64)
        await asyncio.sleep(0)


async def test_a_mailbox_deleted_while_running_fails_its_category_and_health_names_it() -> None:
    with FaultySandbox() as sb:
        async with running(sb) as run:
            with sb.mail.lock:
                del sb.mail.mailboxes[sb.mail.mailbox_id("Feed")]
                sb.mail._bump(mailboxes=True)
            feed = run.label("news@x.example", "@ToFeed")
            jail = run.label("spam@x.example", "@ToJail")
            await run.until(lambda: run.triaged(jail, "Jail"))  # the others go on
            await run.until(lambda: "missing" in str((run.app.telemetry.health()[1])["output"]))
            status, body = await run.health()
            assert (status, body["status"]) == (503, "fail")
            assert "missing in the account: mailbox 'Feed'" in body["output"]
            assert "mailroom setup --apply" in body["output"]
            assert sb.mail.mailbox_names(feed[0]) == {"Screener", "@ToFeed"}  # label kept
            assert "Feed" not in {b.name for b in sb.mail.mailboxes.values()}  # not recreated
            sb.prepare()  # the user runs `mailroom setup --apply`
            sb.mail.deliver("nudge@x.example")
            await run.until(lambda: run.triaged(feed))
            # The labels come off before the pass reports: wait for its report.
            await run.until(lambda: run.app.telemetry.health()[1]["status"] == "pass")
            assert (await run.health())[1]["status"] == "pass"


async def test_an_id_the_request_cannot_carry_is_dropped_not_fatal() -> None:
    from mailroom.push.messages import StreamMessage, StreamOpened
    from mailroom.push.stream import read_stream, stream_client

    with FaultySandbox(flavour="rfc") as sb:
        seen: list[StreamMessage] = []

        async def collect(message: StreamMessage) -> None:
            seen.append(message)

        async with stream_client() as http:
            url = sb.url + "/jmap/eventsource/?types=*&closeafter=state&ping=0"
            headers = {"Authorization": f"Bearer {sb.token}"}
            reader = asyncio.create_task(read_stream(http, 1, url, headers, "café", collect))
            for _ in range(200):
                if seen:
                    break
                await asyncio.sleep(0.01)
            reader.cancel()
        assert isinstance(seen[0], StreamOpened), seen
