"""Who is asking: the session cookie or a trusted proxy's header; the login
form, its throttle, and logout."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailroom.web.auth import Session, password_matches, same_token
from mailroom.web.context import COOKIE, WebContext
from mailroom.web.guard import change_refused
from mailroom.web.render import page, refused

log = logging.getLogger(__name__)

MAX_USER = 200  # characters of a proxy's user name


@dataclass
class Visitor:
    session: Session
    new_token: str | None = None  # a session begun by this request: set its cookie

    @property
    def csrf(self) -> str:
        return self.session.csrf


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def visitor(request: Request, ctx: WebContext) -> Visitor | None:
    """The logged-in visitor, or None (the login page, then)."""
    now = ctx.clock()
    token = request.cookies.get(COOKIE)
    access = ctx.access
    if access.auth_header is not None and access.proxy_trusted(client_of(request)):
        user = request.headers.get(access.auth_header, "").strip()
        if user and len(user) <= MAX_USER and user.isprintable():
            session = ctx.sessions.get(token, now)
            if session is not None and session.user == f"proxy:{user}":
                return Visitor(session)
            new = ctx.sessions.create(f"proxy:{user}", now)
            session = ctx.sessions.get(new, now)
            assert session is not None
            return Visitor(session, new)
    if access.password_hash is None:
        return None
    session = ctx.sessions.get(token, now)
    return Visitor(session) if session is not None and session.user == "password" else None


def with_cookie(response: Response, ctx: WebContext, token: str) -> Response:
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", secure=ctx.secure, path="/"
    )
    return response


async def login_form(request: Request, ctx: WebContext) -> Response:
    if visitor(request, ctx) is not None:
        return RedirectResponse("/screener", status_code=303)
    return page(
        ctx,
        "login.html",
        None,
        status=200,
        error=None,
        password=ctx.access.password_hash is not None,
    )


async def login(request: Request, ctx: WebContext) -> Response:
    why = change_refused(request.headers, ctx.origins)
    if why is not None:
        return refused(ctx, why)
    if ctx.access.password_hash is None:
        return page(
            ctx, "login.html", None, status=403, error="log in through your proxy", password=False
        )
    client = client_of(request)
    wait = ctx.throttle.wait(client, ctx.clock())
    if wait > 0:
        log.warning("login refused: too many failures", extra={"fields": {"client": client}})
        response = page(
            ctx,
            "login.html",
            None,
            status=429,
            error=f"Too many failed logins: try again in {wait:.0f} s.",
            password=True,
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
    password = form.get("password")
    hashed = ctx.access.password_hash.reveal()
    ok = isinstance(password, str) and await asyncio.to_thread(password_matches, hashed, password)
    if not ok:
        ctx.throttle.failed(client, ctx.clock())
        log.warning("login failed", extra={"fields": {"client": client}})
        return page(
            ctx, "login.html", None, status=401, error="That is not the password.", password=True
        )
    ctx.throttle.succeeded(client)
    log.info("logged in", extra={"fields": {"client": client}})
    token = ctx.sessions.create("password", ctx.clock())
    return with_cookie(RedirectResponse("/screener", status_code=303), ctx, token)


async def logout(request: Request, ctx: WebContext) -> Response:
    who = visitor(request, ctx)
    why = change_refused(request.headers, ctx.origins)
    if why is not None:
        return refused(ctx, why)
    form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
    token = form.get("csrf")
    if who is None or not same_token(who.csrf, token if isinstance(token, str) else None):
        return RedirectResponse("/login", status_code=303)
    ctx.sessions.end(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=ctx.secure)
    return response
