"""sd_notify over a real AF_UNIX datagram socket, with the mail server down at boot."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from mailroom.observe.systemd import SystemdNotifier
from mailroom.service import App
from mailroom.settings import load_settings
from tests.faults import FaultySandbox
from tests.push.harness import FAST

pytestmark = pytest.mark.anyio


class Listener:
    """systemd's side: a datagram socket collecting (time, fields) messages."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.got: list[tuple[float, dict[str, str]]] = []

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.got.append((time.monotonic(), fields))

    def has(self, key: str, value: str | None = None) -> bool:
        self.drain()
        return any(key in f and (value is None or value in f[key]) for _, f in self.got)

    def times(self, key: str) -> list[float]:
        self.drain()
        return [t for t, f in self.got if key in f]


async def until(predicate, within: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("form", ["path", "abstract"])
async def test_ready_at_once_watchdog_fed_while_the_server_is_down(
    form: str, tmp_path: Path
) -> None:
    if form == "path":
        bind = address = str(tmp_path / "notify")
    else:
        name = f"mailroom-test-{os.getpid()}-{time.monotonic_ns()}"
        bind, address = "\0" + name, "@" + name
    listener = Listener(bind)
    with FaultySandbox() as sb:
        sb.mail.ensure_mailbox("Screener")
        sb.prepare()
        env = {**sb.env(), "MAILROOM_HTTP_PORT": "0", "MAILROOM_POLL_INTERVAL": "60"}
        settings = load_settings(env)
        sb.set_refusing(True)  # the mail server is down at boot
        notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
        app = App(settings, policy=replace(FAST, backoff_base=0.3), systemd=notifier)
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        try:
            # Ready as soon as /health is up, although nothing answers yet.
            await until(lambda: listener.has("READY", "1"))
            await until(lambda: listener.has("STATUS", "starting: JMAP unreachable, retrying"))
            fed = len(listener.times("WATCHDOG"))
            await until(lambda: len(listener.times("WATCHDOG")) >= fed + 3)  # still fed
            assert app.telemetry.liveness()[0] == 200
            status, body = app.telemetry.health()
            assert status == 503 and "starting: JMAP unreachable" in body["output"]

            sb.set_refusing(False)
            await until(lambda: listener.has("STATUS", "push connected since"))

            # A stalled loop stops feeding the watchdog for as long as it stalls.
            loop = asyncio.get_running_loop()
            loop.call_soon(time.sleep, 1.5)
            before = time.monotonic()
            await asyncio.sleep(0.05)
            await until(lambda: any(t > before + 1.4 for t in listener.times("WATCHDOG")))
            gaps = [b - a for a, b in pairwise(listener.times("WATCHDOG"))]
            assert max(gaps) >= 1.4
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 10) == 0
    assert listener.has("STOPPING", "1")
    listener.sock.close()
