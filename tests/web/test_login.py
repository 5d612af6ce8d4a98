"""Who is let in, in process over ASGI: the proxy's header only from a trusted
proxy, cookies as a security reviewer expects, the pages off without a login."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from mailroom.core.secret import Secret
from mailroom.service import make_telemetry
from mailroom.settings import load_settings
from mailroom.web.access import WebAccess
from mailroom.web.app import build
from mailroom.web.auth import hash_password
from mailroom.web.context import WebContext
from mailroom.web.guard import origins
from tests.process import run_mailroom
from tests.test_settings import BASE

HASH = hash_password("correct horse battery")


def _app(access: WebAccess, public: str = "http://127.0.0.1:8080") -> WebContext:
    telemetry = make_telemetry(load_settings(BASE))
    ctx = WebContext(telemetry=telemetry, access=access, categories=[], listen_host="127.0.0.1")
    ctx.public_url = public
    ctx.origins = origins(public, "127.0.0.1", 8080)
    return ctx


def _client(ctx: WebContext, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build(ctx), client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


def _access(**changes: object) -> WebAccess:
    base: dict[str, object] = {
        "pages": True,
        "password_hash": None,
        "auth_header": None,
        "trusted_proxies": (),
        "public_url": None,
    }
    return WebAccess(**{**base, **changes})  # type: ignore[arg-type]


PROXY = _access(auth_header="remote-user", trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))


@pytest.mark.anyio
async def test_the_proxy_header_counts_only_from_a_trusted_proxy() -> None:
    ctx = _app(PROXY)
    async with _client(ctx, peer="127.0.0.1") as stranger:
        resp = await stranger.get("/screener", headers={"Remote-User": "ann"})
        assert resp.status_code == 303 and resp.headers["location"] == "/login"
    async with _client(ctx, peer="10.1.2.3") as proxy:
        resp = await proxy.get("/screener", headers={"Remote-User": "ann"})
        assert resp.status_code == 503  # let in: the account is not connected yet
        assert "Connecting to the mail server" in resp.text
        assert "mailroom_session" in resp.headers["set-cookie"]
        # The same session next time, for as long as the proxy says it is ann.
        again = await proxy.get("/screener", headers={"Remote-User": "ann"})
        assert "set-cookie" not in again.headers
        other = await proxy.get("/screener", headers={"Remote-User": "bob"})
        assert "mailroom_session" in other.headers["set-cookie"]  # bob is not ann
        resp = await proxy.get("/screener")
        assert resp.status_code == 303  # no header: nobody


@pytest.mark.anyio
async def test_cookies_are_httponly_strict_and_secure_over_https() -> None:
    for public, secure in (("http://127.0.0.1:8080", False), ("https://mail.example.org", True)):
        ctx = _app(_access(password_hash=Secret(HASH)), public)
        async with _client(ctx) as web:
            origin = ctx.public_url
            resp = await web.post(
                "/login", data={"password": "correct horse battery"}, headers={"Origin": origin}
            )
            assert resp.status_code == 303
            cookie = resp.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
            assert ("secure" in cookie.split("; ")) is secure
            assert "correct horse" not in str(resp.headers)


@pytest.mark.anyio
async def test_without_a_login_the_pages_say_how_and_show_no_sender() -> None:
    ctx = _app(_access())
    async with _client(ctx) as web:
        for path in ("/screener", "/history", "/login"):
            resp = await web.get(path)
            assert resp.status_code == 404
            assert (
                "MAILROOM_WEB_PASSWORD_FILE" in resp.text and "mailroom web-password" in resp.text
            )
        home = await web.get("/")  # this machine only: today's status page
        assert home.status_code == 200 and "Last decisions" in home.text
        csp = home.headers["content-security-policy"]
        assert "style-src 'self' 'nonce-" in csp and "unsafe-inline" not in csp
        nonce = csp.split("'nonce-")[1].split("'")[0]
        assert f'<style nonce="{nonce}">' in home.text
    off = _app(_access(pages=False))
    async with _client(off) as web:
        assert "MAILROOM_WEB=off" in (await web.get("/screener")).text
        home = await web.get("/")
        assert home.status_code == 200 and "no decision yet" in home.text
        assert (await web.get("/health")).status_code == 200


@pytest.mark.anyio
async def test_a_get_never_changes_anything_and_unknown_methods_are_refused() -> None:
    ctx = _app(_access(password_hash=Secret(HASH)))
    async with _client(ctx) as web:
        assert (await web.get("/screener/decide")).status_code == 405
        assert (await web.get("/undo")).status_code == 405
        assert (await web.get("/logout")).status_code == 405
        assert (await web.post("/health")).status_code == 405


def test_listening_beyond_this_machine_without_a_login_does_not_start() -> None:
    import os

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAILROOM_")},
        **BASE,
        "MAILROOM_HTTP_HOST": "0.0.0.0",  # noqa: S104
    }
    done = run_mailroom("run", env=env)
    assert done.returncode == 2
    assert "listens beyond this machine" in done.stderr
    assert "MAILROOM_WEB_PASSWORD_FILE" in done.stderr and "MAILROOM_WEB=off" in done.stderr
