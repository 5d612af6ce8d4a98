"""The routes (Starlette): the monitors' endpoints, always open and showing no
address; the status page; and, once a login is set up, the pages.

Around every route: the ``Host`` allowlist (DNS rebinding gets 421 and no
body) and a bound on request bodies (:data:`MAX_BODY`, with a length given
up front); the time a request may take to arrive is the server's
(:mod:`mailroom.web.server`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mailroom.core.redact import scrub
from mailroom.observe.hosts import host_allowed
from mailroom.web import login, pages
from mailroom.web.access import HOW_TO_LOG_IN, is_loopback
from mailroom.web.context import WebContext
from mailroom.web.render import headers, page

HEALTH_JSON = "application/health+json"
MAX_BODY = 64 * 1024  # a form of a hundred senders is a few KiB
STATIC = {
    "style.css": "text/css; charset=utf-8",
    "refresh.js": "text/javascript; charset=utf-8",
}

Handler = Callable[[Request, WebContext], Awaitable[Response]]


def build(ctx: WebContext) -> ASGIApp:
    static = {
        name: resources.files("mailroom.web").joinpath("static", name).read_bytes()
        for name in STATIC
    }

    def bind(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(request, ctx)

        return endpoint

    async def health(request: Request) -> Response:
        status, body = ctx.telemetry.health()
        return Response(scrub(json.dumps(body)), status, media_type=HEALTH_JSON, headers=_plain())

    async def livez(request: Request) -> Response:
        status, body = ctx.telemetry.liveness()
        return Response(json.dumps(body), status, media_type=HEALTH_JSON, headers=_plain())

    async def metrics(request: Request) -> Response:
        return Response(
            ctx.telemetry.metrics_text(), media_type=CONTENT_TYPE_LATEST, headers=_plain()
        )

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            return await _not_found(request)
        return Response(
            static[name],
            media_type=STATIC[name],
            headers={**headers(), "Cache-Control": "max-age=3600"},
        )

    async def home(request: Request) -> Response:
        if ctx.access.enabled:
            return RedirectResponse("/screener", status_code=303)
        # No login: today's status page on this machine; beyond it (pages
        # off) the same without a sender address.
        return pages.status_page(
            ctx, with_senders=ctx.access.pages and is_loopback(ctx.listen_host)
        )

    def pages_only(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not ctx.access.enabled:
                return page(
                    ctx, "off.html", None, status=404, pages=ctx.access.pages, how=HOW_TO_LOG_IN
                )
            return await handler(request, ctx)

        return endpoint

    routes = [
        Route("/health", health, methods=["GET", "HEAD"]),
        Route("/livez", livez, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
        Route("/static/{name}", asset, methods=["GET", "HEAD"]),
        Route("/", home, methods=["GET", "HEAD"]),
        Route("/login", pages_only(login.login_form), methods=["GET", "HEAD"]),
        Route("/login", pages_only(login.login), methods=["POST"]),
        Route("/logout", pages_only(login.logout), methods=["POST"]),
        Route("/screener", pages_only(pages.screener), methods=["GET", "HEAD"]),
        Route("/screener/decide", pages_only(pages.decide), methods=["POST"]),
        Route("/undo", pages_only(pages.undo), methods=["POST"]),
        Route("/history", pages_only(pages.history), methods=["GET", "HEAD"]),
        Route("/status", pages_only(pages.status), methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed})
    return _Guarded(app, ctx)


def _plain() -> dict[str, str]:
    return {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


async def _not_found(request: Request, exc: Exception | None = None) -> Response:
    return JSONResponse({"error": "not found"}, 404, headers=_plain())


async def _not_allowed(request: Request, exc: Exception | None = None) -> Response:
    return JSONResponse({"error": "method not allowed"}, 405, headers=_plain())


class _Guarded:
    """The Host allowlist and the body bound, before any route sees a request."""

    def __init__(self, app: ASGIApp, ctx: WebContext) -> None:
        self._app = app
        self._ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan, no websockets
        hosts = [v.decode("latin-1") for k, v in scope["headers"] if k == b"host"]
        ctx = self._ctx
        if not host_allowed(hosts[0] if hosts else None, ctx.listen_host, ctx.allowed_hosts):
            await Response(b"", 421)(scope, receive, send)
            return
        if scope["method"] == "POST":
            lengths = [v for k, v in scope["headers"] if k == b"content-length"]
            if not lengths or not lengths[0].isdigit():
                await Response("a form needs its length (Content-Length)", 411)(
                    scope, receive, send
                )
                return
            if int(lengths[0]) > MAX_BODY:
                await Response("that form is too large", 413)(scope, receive, send)
                return
        await self._app(scope, receive, send)
