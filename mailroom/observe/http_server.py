"""The small HTTP server for /health, /livez and /metrics, on the event loop.

Answers come from memory only (never from the mail server). It costs nothing
while idle: no thread, no polling. If the loop itself were ever wedged, /livez
would stop answering, which is exactly what a liveness probe should see.
Requests are GET/HEAD, one per connection, headers bounded in size and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from prometheus_client import CONTENT_TYPE_LATEST

from mailroom.observe.telemetry import Telemetry

HEALTH_JSON = "application/health+json"
MAX_HEADER = 8192
READ_TIMEOUT = 5.0
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class ObservabilityServer:
    def __init__(self, telemetry: Telemetry, host: str, port: int) -> None:
        self._telemetry = telemetry
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, limit=MAX_HEADER
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    def route(self, method: str, path: str) -> tuple[int, bytes, str]:
        if method not in ("GET", "HEAD"):
            return 405, b'{"error": "method not allowed"}', "application/json"
        path = path.split("?", 1)[0]
        if path == "/health":
            status, body = self._telemetry.health()
            return status, json.dumps(body).encode(), HEALTH_JSON
        if path == "/livez":
            status, body = self._telemetry.liveness()
            return status, json.dumps(body).encode(), HEALTH_JSON
        if path == "/metrics":
            return 200, self._telemetry.metrics_text(), CONTENT_TYPE_LATEST
        return 404, b'{"error": "not found"}', "application/json"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                status, body, ctype, method = (
                    400,
                    b'{"error": "bad request"}',
                    "application/json",
                    "GET",
                )
            else:
                method = parts[0]
                status, body, ctype = self.route(method, parts[1])
            writer.write(
                (
                    f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
                ).encode()
                + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
