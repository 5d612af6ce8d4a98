"""Settings and secrets that would hurt are refused; secrets never leave; logs are safe."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailroom.core import redact
from mailroom.failures import classify
from mailroom.observe.logging import ConsoleFormatter, JsonFormatter
from mailroom.observe.systemd import SystemdNotifier
from mailroom.service import App, make_telemetry
from mailroom.settings import SettingsError, load_settings
from mailroom.web.app import build
from mailroom.web.server import MAX_CONNECTIONS
from tests.faults import FaultySandbox
from tests.web.servers import monitor_server

TOKEN = "fmu1-SECRET-token-0123456789"
PASSWORD = "app-password-SECRET-42"
BASE = {
    "MAILROOM_JMAP_TOKEN": TOKEN,
    "MAILROOM_CARDDAV_USERNAME": "me@example.com",
    "MAILROOM_CARDDAV_PASSWORD": PASSWORD,
}


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


def problems(**extra: str) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings({**BASE, **extra})
    return info.value.problems


def test_a_token_file_with_a_second_line_is_refused_without_printing_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\nsomething else\n")
    env = {k: v for k, v in BASE.items() if k != "MAILROOM_JMAP_TOKEN"}
    with pytest.raises(SettingsError) as info:
        load_settings({**env, "MAILROOM_JMAP_TOKEN_FILE": str(path)})
    (problem,) = info.value.problems
    assert problem.startswith("MAILROOM_JMAP_TOKEN_FILE: must be one line of visible ASCII")
    assert "line break" in problem
    assert TOKEN not in problem and "something" not in problem
    for bad in ("tok en", "tok\x07en", "tokén"):
        (p,) = problems(MAILROOM_JMAP_TOKEN=bad)
        assert "visible ASCII" in p and bad not in p


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"MAILROOM_TRIAGE_CATEGORIES": '[{"name": "X", "label": "Inbox"}]'}, "label"),
        ({"MAILROOM_TRIAGE_CATEGORIES": '[{"name": "X", "label": "inbox"}]'}, "label"),
        ({"MAILROOM_ERROR_LABEL": "Screener"}, "MAILROOM_ERROR_LABEL"),
        ({"MAILROOM_ERROR_LABEL": "@toFEED"}, "MAILROOM_ERROR_LABEL"),
        ({"MAILROOM_SCREENER_MAILBOX": "feed"}, "destination"),
        (
            {"MAILROOM_TRIAGE_CATEGORIES": '[{"name": "A"}, {"name": "B", "label": "a"}]'},
            "label",
        ),
    ],
)
def test_overlapping_mailboxes_are_refused(extra: dict[str, str], named: str) -> None:
    found = problems(**extra)
    assert any(named in p and "must all be different" in p for p in found), found


def test_plain_http_only_to_loopback_and_a_bad_listen_host_is_named() -> None:
    (p,) = problems(MAILROOM_JMAP_SESSION_URL="http://mail.example.com/jmap/session")
    assert p.startswith("MAILROOM_JMAP_SESSION_URL: credentials would travel in clear")
    (p,) = problems(MAILROOM_CARDDAV_URL="http://10.0.0.5/dav")
    assert p.startswith("MAILROOM_CARDDAV_URL:")
    for ok in ("http://127.0.0.1:8080/", "http://localhost/", "http://[::1]:80/"):
        load_settings({**BASE, "MAILROOM_CARDDAV_URL": ok})
    (p,) = problems(MAILROOM_HTTP_HOST="not a host!!")
    assert p.startswith("MAILROOM_HTTP_HOST: expected an IP address or a host name")
    for ok in ("127.0.0.1", "::1", "localhost"):
        assert load_settings({**BASE, "MAILROOM_HTTP_HOST": ok}).http_host == ok
    # Beyond this machine: only with a login for the pages, or with them off.
    for beyond in ("0.0.0.0", "mailroom.lan", "192.168.1.5"):  # noqa: S104
        (p,) = problems(MAILROOM_HTTP_HOST=beyond)
        assert "listens beyond this machine, but the pages" in p and "MAILROOM_WEB=off" in p
        env = {**BASE, "MAILROOM_HTTP_HOST": beyond, "MAILROOM_WEB": "off"}
        assert load_settings(env).http_host == beyond


def test_no_secret_leaks_through_logs_health_status_or_failures(tmp_path: Path) -> None:
    settings = load_settings(BASE)
    leak = f"server said: Authorization: Bearer {TOKEN} / {PASSWORD}"
    # 1. a log line: message, field and traceback, both formats
    logger = logging.getLogger("leak-test")
    for formatter in (ConsoleFormatter(), JsonFormatter()):
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        try:
            raise RuntimeError(leak)
        except RuntimeError:
            logger.exception(leak, extra={"fields": {"error": leak}})
        logger.removeHandler(handler)
        text = out.getvalue()
        assert "RuntimeError" in text and redact.MASK in text
        assert TOKEN not in text and PASSWORD not in text
    # 2. a failure message (what /health and logs show of a pass)
    failure = classify(RuntimeError(leak))
    assert TOKEN not in failure.message and PASSWORD not in failure.message
    # 3. /health
    telemetry = make_telemetry(settings)
    telemetry.pass_finished("push", 0.1, error=leak)
    _, ctx = monitor_server(telemetry)

    async def read(path: str) -> bytes:
        transport = httpx.ASGITransport(app=build(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return (await http.get(path)).content

    body, page = asyncio.run(read("/health")), asyncio.run(read("/"))
    assert redact.MASK.encode() in body and TOKEN.encode() not in body
    assert redact.MASK.encode() in page and TOKEN.encode() not in page
    # 4. systemd STATUS over a real socket
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        SystemdNotifier({"NOTIFY_SOCKET": path}).status(leak)
        sent = sock.recv(4096)
    assert TOKEN.encode() not in sent and PASSWORD.encode() not in sent
    # 5. Basic auth's encoded form too
    import base64

    encoded = base64.b64encode(f"me@example.com:{PASSWORD}".encode()).decode()
    assert encoded not in redact.scrub(f"Authorization: Basic {encoded}")


def test_console_logs_escape_what_strangers_send() -> None:
    record = logging.LogRecord("x", logging.INFO, "f", 1, "triaged sender", None, None)
    sender = "evil@x.com\n2026-01-01 ERROR forged\x1b[31m"
    record.fields = {"sender": sender}
    line = ConsoleFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line
    assert json.loads(line.split("sender=", 1)[1]) == sender


@pytest.mark.anyio
async def test_run_refuses_a_label_that_is_a_role_mailbox() -> None:
    with FaultySandbox() as sb:
        sb.mail.ensure_mailbox("Screener")
        env = {
            **sb.env(),
            "MAILROOM_HTTP_PORT": "0",
            "MAILROOM_TRIAGE_CATEGORIES": '[{"name": "Feed"}, {"name": "Old", "label": "Archive"}]',
        }
        app = App(load_settings(env))
        code = await asyncio.wait_for(app.run(asyncio.Event()), 10)
        assert code == 2
        assert "Archive" not in sb.mail.emails_in("Archive")  # nothing touched


@pytest.mark.anyio
async def test_health_server_survives_slow_and_flooding_clients() -> None:
    telemetry = make_telemetry(load_settings(BASE))
    server = monitor_server(telemetry)[0]
    await server.start()
    host, port = server.address
    slow = []
    try:
        # More half-sent requests than the server serves at once.
        for _ in range(MAX_CONNECTIONS * 3):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(writer)
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with httpx.AsyncClient() as http:
            resp = await http.get(f"http://{host}:{port}/health")
        assert resp.status_code == 200 and resp.json()["status"] == "warn"
        # Answered while the slow ones still hold their (5 s) request window.
        assert loop.time() - began < 5.0
        # Garbage and oversized requests get 400 or a close, never a crash.
        for junk in (b"garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"a" * 20000):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(junk + b"\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{host}:{port}/livez")).status_code == 200
    finally:
        for writer in slow:
            writer.close()
        await server.stop()


@pytest.mark.anyio
async def test_run_exits_2_when_the_contacts_backend_asked_for_is_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FaultySandbox(flavour="rfc") as sb:  # no RFC 9610, like Cyrus
        sb.prepare()
        env = {**sb.env("jmap"), "MAILROOM_HTTP_PORT": "0", "MAILROOM_CONTACTS": "jmap"}
        app = App(load_settings(env))
        code = await asyncio.wait_for(app.run(asyncio.Event()), 10)
        assert code == 2
        errors = [str(getattr(r, "fields", {}).get("error")) for r in caplog.records]
        assert any("the JMAP session offers no urn:ietf:params:jmap:contacts" in e for e in errors)
