"""The HTTP server: uvicorn's HTTP/1.1 protocol (h11) on the service's own
event loop, for the pages and the monitors alike.

Only the protocol is uvicorn's: the listening socket is ours (a port in use
is an error the service reports, never ``sys.exit``), uvicorn installs no
signal handlers, runs no ticking loop, and trusts no forwarded headers.
What uvicorn leaves out, this adds (:class:`_Bounded`), so the guarantees
the service always had still hold:

- the whole of each request must arrive within :data:`REQUEST_TIMEOUT` of
  the connection (or of the previous answer), and each answer, writer lock
  waits included, is done within :data:`ANSWER_TIMEOUT`; past either the
  connection is dropped;
- at most :data:`MAX_CONNECTIONS` are served at once: past that the oldest
  is dropped, so a flood of slow clients never keeps /health waiting;
- request line and headers are bounded (:data:`MAX_REQUEST`), bodies by the
  app (:data:`mailroom.web.app.MAX_BODY`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

MAX_REQUEST = 8192  # bytes of request line and headers
MAX_CONNECTIONS = 32
REQUEST_TIMEOUT = 5.0
ANSWER_TIMEOUT = 60.0  # a decision may wait for a pass to finish first (30 s)


class _Admission:
    """The connections being served, oldest first."""

    def __init__(self) -> None:
        self.open: OrderedDict[_Bounded, None] = OrderedDict()

    def admit(self, protocol: _Bounded) -> None:
        while len(self.open) >= MAX_CONNECTIONS:
            oldest, _ = self.open.popitem(last=False)
            oldest.drop()
        self.open[protocol] = None

    def forget(self, protocol: _Bounded) -> None:
        self.open.pop(protocol, None)


class _Bounded(H11Protocol):
    # Set on the subclass each server makes.
    admission: _Admission
    request_timeout: float
    answer_timeout: float

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self.admission.admit(self)
        self._arm(self.request_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.admission.forget(self)
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            # h11 bounds only a head still incomplete: one sent whole in a
            # single read would pass, whatever its size.
            head = self.conn.trailing_data[0] + data
            end = head.find(b"\r\n\r\n")
            if end > MAX_REQUEST or (end == -1 and len(head) > MAX_REQUEST):
                self.send_400_response("Request line and headers too large.")
                return
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        cycle = self.cycle
        if cycle is not None and not cycle.more_body and not cycle.response_complete:
            self._arm(self.answer_timeout)  # the whole request is in: the app's turn

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm(self.request_timeout)  # the next request, or the answer still draining

    def _arm(self, seconds: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(seconds, self.drop)

    def drop(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


class WebServer:
    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        request_timeout: float = REQUEST_TIMEOUT,
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self._host = host
        self._port = port
        self._config = uvicorn.Config(
            app,
            lifespan="off",
            # The client is the peer; MAILROOM_WEB_TRUSTED_PROXIES decides the rest.
            proxy_headers=False,
            server_header=False,
            date_header=False,
            h11_max_incomplete_event_size=MAX_REQUEST,
            timeout_keep_alive=int(REQUEST_TIMEOUT),
            log_config=None,
            access_log=False,
        )
        self._config.load()
        self._state = ServerState()
        self._protocol = type(
            "BoundedH11",
            (_Bounded,),
            {
                "admission": _Admission(),
                "request_timeout": request_timeout,
                "answer_timeout": answer_timeout,
            },
        )
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Listen (raises OSError: the port is taken, the address is not ours)."""
        loop = asyncio.get_running_loop()

        def protocol() -> Any:
            return self._protocol(
                config=self._config, server_state=self._state, app_state={}, _loop=loop
            )

        self._server = await loop.create_server(protocol, self._host, self._port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._state.connections):
            connection.shutdown()  # idle ones close now; busy ones after their answer
        for task in list(self._state.tasks):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 1.0)
        for connection in list(self._state.connections):
            if isinstance(connection, _Bounded):
                connection.drop()
        self._server = None
