"""The JMAP client against the stand-in: discovery, batching, limits, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mailroom.core.retry_after import parse_retry_after
from mailroom.core.secret import Secret
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import (
    JmapAuthError,
    JmapHttpError,
    JmapMethodError,
    JmapProtocolError,
    JmapRequestError,
    JmapTransportError,
)
from mailroom.jmap.session import fill_event_source_url, parse_session
from mailroom.jmap.wire import Call, ref
from mailroom.sandbox.mailstore import MailStore
from mailroom.sandbox.server import Flavour
from tests.conftest import Sleeps
from tests.faults import FaultySandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


async def connect(
    sb: FaultySandbox, http: httpx.AsyncClient, sleeps: Sleeps | None = None
) -> JmapClient:
    client = JmapClient(http, sb.session_url, Secret(sb.token), sleep=sleeps or Sleeps())
    await client.discover()
    return client


@pytest.mark.parametrize("flavour", ["fastmail", "rfc"])
async def test_session_urls_resolve_and_stream_url_works(
    flavour: Flavour, http: httpx.AsyncClient
) -> None:
    with FaultySandbox(flavour=flavour) as sb:
        client = await connect(sb, http)
        assert client.session.api_url == sb.url + "/jmap/api/"
        url = client.session.stream_url(types="Email,Mailbox", closeafter="state", ping=30)
        assert url is not None and "{" not in url
        sb.mail.deliver("a@b.c", mailboxes=["Inbox"])  # a change to report if asked
        async with http.stream("GET", url, headers=client.auth_headers) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            if flavour == "rfc":
                # closeafter=state ends the response after one state event.
                sb.mail.deliver("c@d.e", mailboxes=["Inbox"])
            body = (await resp.aread()).decode() if flavour == "rfc" else ""
        if flavour == "rfc":
            assert "event: state" in body and "StateChange" in body


def test_fill_event_source_url_template_and_plain() -> None:
    values = {"types": "Email,Mailbox", "closeafter": "no", "ping": "30"}
    assert (
        fill_event_source_url(
            "https://h/es/?types={types}&closeafter={closeafter}&ping={ping}", values
        )
        == "https://h/es/?types=Email,Mailbox&closeafter=no&ping=30"
    )
    assert (
        fill_event_source_url("https://api.fastmail.com/jmap/event/", values)
        == "https://api.fastmail.com/jmap/event/?types=Email,Mailbox&closeafter=no&ping=30"
    )
    assert (
        fill_event_source_url("https://h/ev?x=1&ping=5", values)
        == "https://h/ev?x=1&types=Email,Mailbox&closeafter=no&ping=30"
    )


def test_session_validation_messages() -> None:
    good: dict[str, Any] = {
        "capabilities": {"urn:ietf:params:jmap:core": {}, "urn:ietf:params:jmap:mail": {}},
        "apiUrl": "/api/",
        "primaryAccounts": {"urn:ietf:params:jmap:mail": "A1"},
    }
    s = parse_session(good, "https://host/jmap/session")
    assert (s.api_url, s.event_source_url, s.max_calls_in_request) == (
        "https://host/api/",
        None,
        16,
    )
    for broken, message in [
        ([], "expected a JSON object"),
        ({**good, "apiUrl": None}, "missing apiUrl"),
        ({**good, "capabilities": {"urn:ietf:params:jmap:core": {}}}, "does not offer"),
        ({**good, "primaryAccounts": {}}, "no primary account"),
        (
            {
                **good,
                "capabilities": {
                    **good["capabilities"],
                    "urn:ietf:params:jmap:core": {"maxObjectsInSet": 0},
                },
            },
            "maxObjectsInSet must be a positive integer",
        ),
        ({**good, "eventSourceUrl": 5}, "eventSourceUrl is not a string"),
    ]:
        with pytest.raises(JmapProtocolError, match=message):
            parse_session(broken, "https://host/")


async def test_query_and_get_are_one_request(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        ids = [sb.mail.deliver("x@y.z", mailboxes=["Inbox"]) for _ in range(3)]
        client = await connect(sb, http)
        before = sb.total_requests()
        resp = await client.request(
            [
                Call("Email/query", {"filter": {"inMailbox": sb.mail.mailbox_id("Inbox")}}, "q"),
                Call(
                    "Email/get",
                    {"#ids": ref("q", "Email/query", "/ids"), "properties": ["id"]},
                    "g",
                ),
            ]
        )
        assert [e["id"] for e in resp.get("g", "Email/get")["list"]] == ids
        assert sb.total_requests() - before == 1


async def test_paging_until_short_page(http: httpx.AsyncClient) -> None:
    with FaultySandbox(mail=MailStore(max_get=7)) as sb:
        ids = [sb.mail.deliver("p@q.r", mailboxes=["Inbox"]) for _ in range(21)]
        client = await connect(sb, http)
        before = sb.total_requests()
        got = await client.query_emails({"from": "p@q.r"}, ["id"])
        assert [e["id"] for e in got] == ids
        assert sb.total_requests() - before == 4  # 7 + 7 + 7 + empty page


async def test_set_is_chunked_within_limits(http: httpx.AsyncClient) -> None:
    with FaultySandbox(mail=MailStore(max_calls=3, max_set=4)) as sb:
        ids = [sb.mail.deliver("c@d.e", mailboxes=["Inbox"]) for _ in range(10)]
        archive = sb.mail.mailbox_id("Archive")
        client = await connect(sb, http)
        before = sb.total_requests()
        outcome = await client.update_emails({i: {f"mailboxIds/{archive}": True} for i in ids})
        # 3 chunks of <=4; 2 Email/set calls + Mailbox/get fit in one request.
        assert sb.total_requests() - before == 2 == outcome.requests
        assert outcome.updated == set(ids)
        assert outcome.new_state == sb.mail.states()["Email"]
        assert outcome.mailbox_state == sb.mail.states()["Mailbox"]
        assert all("Archive" in sb.mail.mailbox_names(i) for i in ids)
        with pytest.raises(ValueError, match="maxCallsInRequest=3"):
            await client.request([Call("Core/echo", {}, str(i)) for i in range(4)])


async def test_not_updated_reports_type_and_description(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        eid = sb.mail.deliver("c@d.e", mailboxes=["Inbox"])
        client = await connect(sb, http)
        outcome = await client.update_emails(
            {eid: {"mailboxIds": {}}, "nope": {"keywords/$seen": True}}
        )
        assert outcome.failures == {
            eid: {"type": "invalidProperties", "description": "unknown error"},
            "nope": {"type": "notFound"},
        }
        assert sb.mail.mailbox_names(eid) == {"Inbox"}  # never zero mailboxes


async def test_method_error_is_typed(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        client = await connect(sb, http)
        resp = await client.request([Call("Email/frobnicate", {}, "x")])
        with pytest.raises(JmapMethodError) as info:
            resp.get("x", "Email/frobnicate")
        assert (info.value.type, info.value.description) == ("unknownMethod", "Email/frobnicate")


async def test_request_level_error(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        client = await connect(sb, http)
        sb.mail.max_calls = 1  # the server's limit shrank after discovery
        with pytest.raises(JmapRequestError, match="urn:ietf:params:jmap:error:limit"):
            await client.request([Call("Core/echo", {}, "a"), Call("Core/echo", {}, "b")])


async def test_401_is_an_auth_error_without_the_token(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        client = JmapClient(http, sb.session_url, Secret("wrong-token-xyz"), sleep=Sleeps())
        with pytest.raises(JmapAuthError) as info:
            await client.discover()
        assert info.value.status == 401
        assert "rejected the token" in str(info.value)
        assert "wrong-token-xyz" not in str(info.value)


async def test_403_is_an_auth_error(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        sb.faults.force("session", 403)
        with pytest.raises(JmapAuthError, match=r"refused access \(HTTP 403\)"):
            await connect(sb, http)


async def test_429_honours_retry_after(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        sleeps = Sleeps()
        client = await connect(sb, http, sleeps)
        sb.faults.force("api", 429, {"Retry-After": "7"}, times=2)
        mailboxes, _ = await client.get_mailboxes()
        assert {m["name"] for m in mailboxes} >= {"Inbox"}
        assert sleeps.waits == [7.0, 7.0]


async def test_503_retries_are_bounded(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        sleeps = Sleeps()
        client = await connect(sb, http, sleeps)
        sb.faults.force("api", 503)
        with pytest.raises(JmapHttpError) as info:
            await client.get_mailboxes()
        assert info.value.status == 503
        assert sleeps.waits == [1.0, 2.0, 4.0]


async def test_retry_after_too_long_is_not_waited(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        sleeps = Sleeps()
        client = await connect(sb, http, sleeps)
        sb.faults.force("api", 503, {"Retry-After": "3600"})
        with pytest.raises(JmapHttpError, match="503"):
            await client.get_mailboxes()
        assert sleeps.waits == []


async def test_not_json_and_no_method_responses(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        client = await connect(sb, http)
        sb.faults.force("api", 200, times=1)  # a 200 whose body is not a JMAP response
        with pytest.raises(JmapProtocolError, match="no methodResponses"):
            await client.get_mailboxes()


async def test_refused_connection_is_a_transport_error(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        client = await connect(sb, http)
        sb.set_refusing(True)
        with pytest.raises(JmapTransportError, match=r"nothing answers at http://127\.0\.0\.1"):
            await client.get_mailboxes()


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("-5") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
