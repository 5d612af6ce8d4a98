"""The HTTP server's bounds over real loopback sockets: a request that takes
too long to arrive, a body that never ends and an idle connection are all
dropped (short timeouts here; the service's are 5 s and 60 s)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mailroom.service import make_telemetry
from mailroom.settings import load_settings
from mailroom.web.app import build
from mailroom.web.server import WebServer
from tests.test_settings import BASE
from tests.web.servers import monitor_server


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (bounded: the test's own limit)."""
    return await asyncio.wait_for(reader.read(), 20)


@pytest.mark.anyio
async def test_slow_requests_and_idle_connections_are_dropped() -> None:
    _, ctx = monitor_server(make_telemetry(load_settings(BASE)))
    server = WebServer(build(ctx), "127.0.0.1", 0, request_timeout=0.3, answer_timeout=5)
    await server.start()
    host, port = server.address
    try:
        # Headers that never end.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert await _closed_by_server(reader) == b""
        writer.close()
        # A form whose body never comes.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\npassword="
        )
        answer = await _closed_by_server(reader)
        assert b"200 OK" not in answer
        writer.close()
        # An answered request, then nothing: the connection does not linger.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = await _closed_by_server(reader)
        assert answer.startswith(b"HTTP/1.1 200") and b'"pass"' in answer
        writer.close()
        # And the server still answers.
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{host}:{port}/livez")).status_code == 200
    finally:
        await server.stop()
