"""systemd notify over a real datagram socket; the /health server over loopback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from mailroom.observe.systemd import SystemdNotifier, notify_message, socket_address
from mailroom.service import make_telemetry
from mailroom.settings import load_settings
from tests.web.servers import monitor_server

SETTINGS = {
    "MAILROOM_JMAP_TOKEN": "t",
    "MAILROOM_CARDDAV_USERNAME": "u",
    "MAILROOM_CARDDAV_PASSWORD": "p",
}


def test_notify_message_and_abstract_address() -> None:
    assert notify_message({"READY": "1", "STATUS": "a\nb"}) == b"READY=1\nSTATUS=a b"
    assert socket_address("@sd") == "\0sd"
    assert socket_address("/run/x") == "/run/x"


def test_notifier_sends_datagrams(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"})
        assert notifier.watchdog_interval == 10.0
        notifier.ready("started")
        notifier.watchdog()
        notifier.stopping()
        server.settimeout(5)
        got = [server.recv(1024) for _ in range(3)]
    assert got == [b"READY=1\nSTATUS=started", b"WATCHDOG=1", b"STOPPING=1\nSTATUS=stopping"]


def test_notifier_without_socket_does_nothing() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    notifier.ready("x")  # no error, no effect


@pytest.mark.anyio
async def test_http_server_routes() -> None:
    telemetry = make_telemetry(load_settings(SETTINGS))
    server = monitor_server(telemetry)[0]
    await server.start()
    host, port = server.address
    base = f"http://{host}:{port}"
    try:
        async with httpx.AsyncClient() as http:
            health = await http.get(base + "/health")
            assert health.status_code == 200  # start-up grace: warn, not fail
            assert health.json()["status"] == "warn"
            assert health.json()["eventsource"]["status"] == "connecting"
            live = await http.get(base + "/livez")
            assert (live.status_code, live.json()) == (200, {"status": "pass"})
            metrics = await http.get(base + "/metrics")
            assert 'mailroom_polls_total{outcome="success",trigger="push"} 0.0' in metrics.text
            assert (
                'mailroom_eventsource_state{mailroom_eventsource_state="connecting"} 1.0'
                in metrics.text
            )
            assert (await http.get(base + "/nope")).status_code == 404
            assert (await http.post(base + "/health")).status_code == 405
            head = await http.head(base + "/health")
            assert head.status_code == 200 and head.content == b""
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"garbage\r\n\r\n")
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400")
    finally:
        await server.stop()


def test_liveness_fails_when_the_loop_stops_ticking() -> None:
    now = [0.0]
    telemetry = make_telemetry(load_settings(SETTINGS))
    telemetry._monotonic = lambda: now[0]
    telemetry.heartbeat()
    stale = telemetry.liveness_stale
    assert stale == 300.0  # 5 x the default 60 s poll interval
    now[0] = stale - 1
    assert telemetry.liveness()[0] == 200
    now[0] = stale + 1
    assert telemetry.liveness() == (
        503,
        {"status": "fail", "output": f"the service loop has not turned for {stale + 1:.0f} s"},
    )


def test_the_state_path_is_a_bounded_ring() -> None:
    from mailroom.observe.telemetry import PATH_KEPT
    from mailroom.push.connection import ConnectionMachine

    telemetry = make_telemetry(load_settings(SETTINGS))
    machine = ConnectionMachine(degrade_after=60, listeners=[telemetry])
    for _ in range(PATH_KEPT * 2):  # a year of reconnects
        machine.send("opened")
        machine.send("ended")
    assert len(telemetry.path) == PATH_KEPT
    assert telemetry.path[-1] == "connecting"


def test_which_hosts_are_answered() -> None:
    from mailroom.observe.hosts import host_allowed

    assert host_allowed("127.0.0.1:8080", "127.0.0.1")
    assert host_allowed("localhost:8080", "127.0.0.1")
    assert host_allowed("LOCALHOST.", "127.0.0.1")
    assert host_allowed("[::1]:8080", "::1")
    assert host_allowed(None, "127.0.0.1")  # no Host: not a browser
    # DNS rebinding: the attacker's name, pointed at this machine.
    assert not host_allowed("evil.example:8080", "127.0.0.1")
    assert not host_allowed("127.0.0.1.evil.example", "127.0.0.1")
    assert not host_allowed("192.168.1.5:8080", "127.0.0.1")
    # Listening everywhere: any address literal, still no foreign name.
    everywhere = "0.0.0.0"  # noqa: S104
    assert host_allowed("192.168.1.5:8080", everywhere)
    assert host_allowed("[fe80::1]:8080", "::")
    assert not host_allowed("evil.example", everywhere)
    # A name the user allowed (MAILROOM_HTTP_ALLOWED_HOSTS).
    assert host_allowed("mailroom.home.arpa:8080", everywhere, ["mailroom.home.arpa"])


@pytest.mark.anyio
async def test_a_rebinding_page_gets_421_and_no_body() -> None:
    telemetry = make_telemetry(load_settings(SETTINGS))
    server = monitor_server(telemetry, allowed_hosts=("box.lan",))[0]
    await server.start()
    host, port = server.address
    try:
        async with httpx.AsyncClient() as http:
            for path in ("/", "/health", "/metrics", "/livez"):
                evil = await http.get(
                    f"http://{host}:{port}{path}", headers={"Host": f"evil.example:{port}"}
                )
                assert (evil.status_code, evil.content) == (421, b"")
            ok = await http.get(f"http://{host}:{port}/health", headers={"Host": "box.lan"})
            assert ok.status_code == 200
            assert (await http.get(f"http://localhost:{port}/livez")).status_code == 200
    finally:
        await server.stop()


def test_allowed_hosts_setting_is_checked() -> None:
    from mailroom.settings import SettingsError

    assert load_settings(
        {**SETTINGS, "MAILROOM_HTTP_ALLOWED_HOSTS": "a.lan, 10.0.0.2"}
    ).http_allowed_hosts == ("a.lan", "10.0.0.2")
    with pytest.raises(SettingsError) as info:
        load_settings({**SETTINGS, "MAILROOM_HTTP_ALLOWED_HOSTS": "ok.lan,bad host"})
    assert "MAILROOM_HTTP_ALLOWED_HOSTS" in str(info.value) and "'bad host'" in str(info.value)
