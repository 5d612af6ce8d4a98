"""The EventSource reader: one HTTP GET, bytes into the SSE decoder, messages out.

It only reports what happened; the push core decides what it means. Whatever
goes wrong, the connection ends with exactly one final message (refused,
failed or ended), never an exception. The HTTP client has no read timeout (a
quiet stream is normal; liveness is the core's job) and TCP keepalive so a
vanished peer is noticed even when the server sends no pings.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping

import httpx

from mailroom.core.retry_after import parse_retry_after
from mailroom.core.transport import describe_transport_error
from mailroom.push.messages import (
    REFUSED_STATUSES,
    StreamEnded,
    StreamFailed,
    StreamItem,
    StreamMessage,
    StreamOpened,
    StreamRefused,
)
from mailroom.push.sse import Comment, Event, Item, SseDecoder

OPEN_TIMEOUT = 30.0  # connect + request + response headers


def keepalive_options() -> list[tuple[int, int, int]]:
    opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    # Probe after 60 s idle, every 15 s, give up after 4: a dead peer in ~2 min.
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, name):
            opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return opts


def stream_client() -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(socket_options=keepalive_options())
    # httpx drops credentials on a redirect to another origin (or to plain http).
    return httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(10.0, read=None), follow_redirects=True
    )


async def read_stream(
    http: httpx.AsyncClient,
    conn: int,
    url: str,
    headers: dict[str, str],
    last_event_id: str,
    emit: Callable[[StreamMessage], Awaitable[None]],
    *,
    decoder: SseDecoder | None = None,
    open_timeout: float = OPEN_TIMEOUT,
) -> None:
    """Read one connection to its end, reporting every step through ``emit``.

    Reads have no timeout (a quiet stream is normal), but getting the response
    headers does: a black-holed server must not leave us waiting forever.
    ``emit`` may wait: while it does, nothing more is read (the socket's
    buffers fill and the server is slowed down), so items never pile up
    faster than the core takes them.
    """
    decoder = decoder or SseDecoder()
    try:
        request = _request(http, url, headers, last_event_id)
        async with asyncio.timeout(open_timeout):
            response = await http.send(request, stream=True)
    except TimeoutError:
        await emit(StreamFailed(conn, f"no answer from the EventSource within {open_timeout:g} s"))
        return
    except httpx.TransportError as exc:
        await emit(StreamFailed(conn, describe_transport_error(exc)))
        return
    except Exception as exc:  # a bad URL, a bad header: anything ends this attempt
        await emit(StreamFailed(conn, f"cannot open the EventSource: {type(exc).__name__}"))
        return
    opened = False
    try:
        refused = refusal(conn, response.status_code, response.headers)
        if refused is not None:
            await emit(refused)
            return
        await emit(StreamOpened(conn))
        opened = True
        async for chunk in response.aiter_bytes():
            for message in fold(conn, decoder.feed(chunk)):
                await emit(message)
        decoder.close()
        await emit(StreamEnded(conn))
    except httpx.TransportError as exc:
        await emit(StreamEnded(conn, describe_transport_error(exc)))
    except Exception as exc:  # any error on an open stream ends it; the core reconnects
        reason = f"stream broke: {type(exc).__name__}: {str(exc)[:200]}"
        await emit(StreamEnded(conn, reason) if opened else StreamFailed(conn, reason))
    finally:
        await response.aclose()


def _request(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], last_event_id: str
) -> httpx.Request:
    wanted = {**headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        wanted["Last-Event-ID"] = last_event_id
    try:
        return http.build_request("GET", url, headers=wanted)
    except Exception:
        if not last_event_id:
            raise
        # An id the request cannot carry must not stop every reconnect:
        # resume without it (a catch-up pass covers the gap).
        wanted.pop("Last-Event-ID")
        return http.build_request("GET", url, headers=wanted)


def refusal(conn: int, status: int, headers: Mapping[str, str]) -> StreamMessage | None:
    """What an answer that is not an event stream means (None: it is one)."""
    if status in REFUSED_STATUSES:
        return StreamRefused(conn, status, f"EventSource answered HTTP {status}")
    if status != 200:
        header = headers.get("Retry-After")
        wait = parse_retry_after(header)
        bad = header is not None and wait is None
        return StreamFailed(conn, f"EventSource answered HTTP {status}", wait, bad)
    ctype = headers.get("Content-Type", "")
    if not ctype.startswith("text/event-stream"):
        return StreamRefused(conn, status, f"EventSource answered {ctype[:60] or 'no type'}")
    return None


def fold(conn: int, items: list[Item]) -> list[StreamItem]:
    """One chunk's items, each run of comments (or of pings) folded into its last.

    A server flooding ``:`` lines or pings proves it is alive once per chunk;
    everything else (state events, ids, retry fields) keeps its place.
    """
    out: list[StreamItem] = []
    for item in items:
        kind = _liveness_kind(item)
        weight = item.repeat if isinstance(item, Comment) else 1
        last = out[-1] if out else None
        if kind and last is not None and _liveness_kind(last.item) == kind:
            out[-1] = StreamItem(conn, item, last.folded + weight)
        else:
            out.append(StreamItem(conn, item, weight - 1))
    return out


def _liveness_kind(item: Item) -> str | None:
    if isinstance(item, Comment):
        return "comment"
    if isinstance(item, Event) and item.type == "ping":
        return "ping"
    return None
