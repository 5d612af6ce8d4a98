"""The EventSource reader: one HTTP GET, bytes into the SSE decoder, messages out.

It only reports what happened; the supervisor decides what it means. The
HTTP client has no read timeout (a quiet stream is normal; liveness is the
supervisor's job) and TCP keepalive so a vanished peer is noticed even when
the server sends no pings.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from mailroom.core.retry_after import parse_retry_after
from mailroom.net import describe_transport_error
from mailroom.push.sse import Item, SseDecoder

# Refusals: the server says push is not available here, retrying fast is useless.
REFUSED_STATUSES = frozenset({204, 400, 401, 403, 404, 405, 501})
AUTH_STATUSES = frozenset({401, 403})
OPEN_TIMEOUT = 30.0  # connect + request + response headers


@dataclass(frozen=True)
class Opened:
    pass


@dataclass(frozen=True)
class Received:
    item: Item
    last_event_id: str


@dataclass(frozen=True)
class Refused:
    status: int
    reason: str

    @property
    def auth(self) -> bool:
        return self.status in AUTH_STATUSES


@dataclass(frozen=True)
class Failed:
    reason: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Ended:
    """The response body ended: cleanly (``error`` None) or broken."""

    error: str | None


StreamMessage = Opened | Received | Refused | Failed | Ended


def keepalive_options() -> list[tuple[int, int, int]]:
    opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    # Probe after 60 s idle, every 15 s, give up after 4: a dead peer in ~2 min.
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, name):
            opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return opts


def stream_client() -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(socket_options=keepalive_options())
    return httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(10.0, read=None), follow_redirects=True
    )


async def read_stream(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    last_event_id: str,
    emit: Callable[[StreamMessage], None],
    *,
    decoder: SseDecoder | None = None,
    open_timeout: float = OPEN_TIMEOUT,
) -> None:
    """Read one connection to its end, reporting every step through ``emit``.

    Reads have no timeout (a quiet stream is normal), but getting the response
    headers does: a black-holed server must not leave us waiting forever.
    """
    decoder = decoder or SseDecoder()
    request_headers = {**headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        request_headers["Last-Event-ID"] = last_event_id
    request = http.build_request("GET", url, headers=request_headers)
    try:
        async with asyncio.timeout(open_timeout):
            response = await http.send(request, stream=True)
    except TimeoutError:
        emit(Failed(f"no answer from the EventSource within {open_timeout:g} s"))
        return
    except httpx.TransportError as exc:
        emit(Failed(describe_transport_error(exc)))
        return
    try:
        status = response.status_code
        if status in REFUSED_STATUSES:
            emit(Refused(status, f"EventSource answered HTTP {status}"))
            return
        if status != 200:
            emit(
                Failed(
                    f"EventSource answered HTTP {status}",
                    parse_retry_after(response.headers.get("Retry-After")),
                )
            )
            return
        ctype = response.headers.get("Content-Type", "")
        if not ctype.startswith("text/event-stream"):
            emit(Refused(status, f"EventSource answered {ctype or 'no content type'}"))
            return
        emit(Opened())
        try:
            async for chunk in response.aiter_bytes():
                for item in decoder.feed(chunk):
                    emit(Received(item, decoder.last_event_id))
        except httpx.TransportError as exc:
            decoder.close()
            emit(Ended(describe_transport_error(exc)))
            return
        decoder.close()
        emit(Ended(None))
    finally:
        await response.aclose()
