"""The service's HTTP server around a telemetry, for tests of its endpoints."""

from __future__ import annotations

from mailroom.observe.telemetry import Telemetry
from mailroom.web.access import WebAccess
from mailroom.web.app import build
from mailroom.web.context import WebContext
from mailroom.web.server import WebServer

NO_LOGIN = WebAccess(
    pages=True, password_hash=None, auth_header=None, trusted_proxies=(), public_url=None
)


def monitor_server(
    telemetry: Telemetry,
    host: str = "127.0.0.1",
    port: int = 0,
    allowed_hosts: tuple[str, ...] = (),
    access: WebAccess = NO_LOGIN,
) -> tuple[WebServer, WebContext]:
    ctx = WebContext(
        telemetry=telemetry,
        access=access,
        categories=[],
        listen_host=host,
        allowed_hosts=allowed_hosts,
    )
    return WebServer(build(ctx), host, port), ctx
