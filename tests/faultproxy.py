"""A fault-injecting TCP proxy on loopback, switchable at any moment.

It sits between Mailroom and a server (Cyrus or the stand-in) and runs its
own event loop in a thread, so sync and async tests can flip it alike:

- ``pass``: forward both ways.
- ``drop``: accept new connections and close them at once.
- ``reset()``: reset every open connection now (a crash, a restart).
- ``blackhole``: keep sockets open and forward nothing, a half-open peer;
  with ``streams_only`` only EventSource connections are swallowed.
- ``latency``: seconds each chunk is held, each way: a delay line, so a
  long answer arrives ``latency`` late as a whole, not once per chunk.
- ``cut_next_stream_chunk()``: the next server-to-client chunk on a stream is
  cut in the middle of a line and the connection closed.
- ``flap_on_next_request()``: when the next request that is not a stream
  reaches the proxy, every open connection is reset before it is answered:
  the network dropping in the middle of a poll, deterministically.
- ``close_after_event``: every stream is closed cleanly right after the first
  state event it carries, as Fastmail is reported to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["pass", "drop", "blackhole"]
_REQUEST = re.compile(rb"[A-Z]+ /")  # the first bytes of an HTTP/1.1 request


@dataclass(eq=False)  # identity, so connections can live in a set
class _Conn:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    is_stream: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.streams_only = False
        self.close_after_event = False
        self.latency = 0.0
        self.connections_accepted = 0
        self._cut_next = False
        self._flap_next = False
        self._conns: set[_Conn] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start()).result(10)
        return self

    async def _start(self) -> None:
        self._flow = asyncio.Condition()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._call(self._stop()).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_all()
        # Let every pump finish (cancelled) while the loop still runs: a
        # coroutine left pending would be finalised later on a closed loop.
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: object) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- switches -------------------------------------------------------------

    def set(self, mode: Mode, *, streams_only: bool = False) -> None:
        self.mode = mode
        self.streams_only = streams_only
        self._call(self._switched()).result(10)

    async def _switched(self) -> None:
        async with self._flow:
            self._flow.notify_all()

    def reset(self) -> None:
        """Reset every open connection (RST), as a crashed server would."""
        self._loop.call_soon_threadsafe(self._reset_all)

    def cut_next_stream_chunk(self) -> None:
        self._cut_next = True

    def flap_on_next_request(self) -> None:
        self._flap_next = True

    def _swallowing(self, conn: _Conn) -> bool:
        return self.mode == "blackhole" and (conn.is_stream or not self.streams_only)

    # -- plumbing -------------------------------------------------------------

    def _reset_all(self) -> None:
        for conn in list(self._conns):
            self._reset(conn)

    def _reset(self, conn: _Conn) -> None:
        for writer in (conn.client, conn.server):
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for task in conn.tasks:
            task.cancel()
        self._conns.discard(conn)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        if self.mode == "drop":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        conn = _Conn(writer, up_writer)
        self._conns.add(conn)
        conn.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, conn, upstream=True)),
            asyncio.create_task(self._pump(up_reader, writer, conn, upstream=False)),
        ]

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: _Conn,
        *,
        upstream: bool,
    ) -> None:
        """Forward one direction through a delay line: each chunk goes out
        ``latency`` (as set when it arrived) after it came in, in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(forward())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if upstream and b"/event" in data.split(b"\r\n", 1)[0]:
                    conn.is_stream = True
                if upstream and self._flap_next and not conn.is_stream and _REQUEST.match(data):
                    self._flap_next = False
                    self._reset_all()
                    return
                async with self._flow:  # hold the bytes: nothing gets through
                    await self._flow.wait_for(lambda: not self._swallowing(conn))
                due = loop.time() + self.latency
                if not upstream and conn.is_stream and self.close_after_event:
                    at = data.find(b"event: state")
                    end = data.find(b"\n\n", at) if at >= 0 else -1
                    if end >= 0:  # the whole event, then a clean close
                        queue.put_nowait((due, data[: end + 2]))
                        break
                if not upstream and conn.is_stream and self._cut_next and b"\n" in data:
                    self._cut_next = False
                    queue.put_nowait((due, data[: data.index(b"\n") // 2 + 1]))
                    break
                queue.put_nowait((due, data))
            queue.put_nowait((0.0, b""))
            await sender
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(RuntimeError):
                sender.cancel()
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
            self._conns.discard(conn)
