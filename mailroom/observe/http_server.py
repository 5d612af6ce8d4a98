"""The small HTTP server for /health, /livez and /metrics, on the event loop.

Answers come from memory only (never from the mail server). It costs nothing
while idle: no thread, no polling. If the loop itself were ever wedged, /livez
would stop answering, which is exactly what a liveness probe should see.

Requests are parsed by h11 (the sans-IO HTTP/1.1 parser httpx itself stands
on), one per connection, bounded in size and in time: the whole request must
arrive within ``REQUEST_TIMEOUT`` and the answer drain within
``WRITE_TIMEOUT``. At most ``MAX_CONNECTIONS`` are served at once; past that
the oldest is dropped, so a slow or flooding client cannot keep an uptime
monitor's /health waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import h11
from prometheus_client import CONTENT_TYPE_LATEST

from mailroom.core.redact import scrub
from mailroom.observe.hosts import host_allowed
from mailroom.observe.status_page import render
from mailroom.observe.telemetry import Telemetry

HEALTH_JSON = "application/health+json"
MAX_REQUEST = 8192  # bytes of request line and headers
MAX_CONNECTIONS = 32
REQUEST_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0

Answer = tuple[int, bytes, str]


class ObservabilityServer:
    def __init__(
        self, telemetry: Telemetry, host: str, port: int, allowed_hosts: tuple[str, ...] = ()
    ) -> None:
        self._telemetry = telemetry
        self._host = host
        self._port = port
        self._allowed_hosts = allowed_hosts
        self._server: asyncio.Server | None = None
        self._active: dict[asyncio.Task[None], float] = {}  # handler -> when it began

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._active):
                task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    def route(self, method: str, target: str) -> Answer:
        if method not in ("GET", "HEAD"):
            return 405, b'{"error": "method not allowed"}', "application/json"
        path = target.split("?", 1)[0]
        if path == "/":
            page = render(self._telemetry.page())
            return 200, scrub(page).encode(), "text/html; charset=utf-8"
        if path == "/health":
            status, body = self._telemetry.health()
            return status, scrub(json.dumps(body)).encode(), HEALTH_JSON
        if path == "/livez":
            status, body = self._telemetry.liveness()
            return status, json.dumps(body).encode(), HEALTH_JSON
        if path == "/metrics":
            return 200, self._telemetry.metrics_text(), CONTENT_TYPE_LATEST
        return 404, b'{"error": "not found"}', "application/json"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._active) >= MAX_CONNECTIONS:
            oldest = min(self._active, key=self._active.__getitem__)
            oldest.cancel()
        self._active[task] = time.monotonic()
        try:
            await self._serve(reader, writer)
        except (asyncio.CancelledError, TimeoutError, OSError, h11.ProtocolError):
            pass  # a dropped, slow or broken client: close and forget it
        finally:
            self._active.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                request = await _read_request(conn, reader)
        except h11.RemoteProtocolError:
            await _send(writer, conn, (400, b'{"error": "bad request"}', "application/json"), True)
            return
        if request is None:
            return  # closed before a whole request
        hosts = [v.decode("ascii", "replace") for k, v in request.headers if k == b"host"]
        if not host_allowed(hosts[0] if hosts else None, self._host, self._allowed_hosts):
            await _send(writer, conn, (421, b"", "text/plain"), False)
            return
        method = request.method.decode("ascii", "replace")
        answer = self.route(method, request.target.decode("ascii", "replace"))
        await _send(writer, conn, answer, method != "HEAD")


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
    request: h11.Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(4096))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None
        # h11.Data: a request body nobody asked for, read and ignored


async def _send(
    writer: asyncio.StreamWriter, conn: h11.Connection, answer: Answer, with_body: bool
) -> None:
    status, body, ctype = answer
    headers = [
        ("Content-Type", ctype),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
    ]
    if conn.their_state is h11.ERROR:
        # h11 will not speak after a protocol error: answer by hand.
        head = f"HTTP/1.1 {status} Bad Request\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        data = head.encode() + b"\r\n" + body
    else:
        data = conn.send(h11.Response(status_code=status, headers=headers)) or b""
        if with_body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    writer.write(data)
    async with asyncio.timeout(WRITE_TIMEOUT):
        await writer.drain()
