"""The stand-in itself: Fastmail's rules, both stream flavours, fault switches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mailroom.sandbox.mailmodel import ACCOUNT_ID
from tests.faults import FaultySandbox

pytestmark = pytest.mark.anyio

USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
STREAM = "/jmap/event/?types=Email,Mailbox&closeafter=no&ping=1"
RFC_STREAM = "/jmap/eventsource/?types=Email,Mailbox&closeafter=no&ping=1"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # A read timeout bounds every stream read: a broken stream fails, never hangs.
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        yield client


def auth(sb: FaultySandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {sb.token}"}


async def api(sb: FaultySandbox, http: httpx.AsyncClient, *calls: list[Any]) -> list[Any]:
    resp = await http.post(
        sb.url + "/jmap/api/", json={"using": USING, "methodCalls": list(calls)}, headers=auth(sb)
    )
    resp.raise_for_status()
    return list(resp.json()["methodResponses"])


async def events(lines: AsyncIterator[str], count: int) -> list[dict[str, str]]:
    """The next ``count`` events as field dicts (a minimal reader for tests)."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if current:
                out.append(current)
                current = {}
                if len(out) == count:
                    return out
            continue
        field, _, value = line.partition(":")
        current[field] = value.removeprefix(" ")
    return out


async def test_email_must_keep_a_mailbox(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        eid = sb.mail.deliver("a@b.c", mailboxes=["Inbox"])
        inbox = sb.mail.mailbox_id("Inbox")
        (resp,) = await api(
            sb,
            http,
            [
                "Email/set",
                {"accountId": ACCOUNT_ID, "update": {eid: {f"mailboxIds/{inbox}": None}}},
                "0",
            ],
        )
        assert resp[1]["notUpdated"] == {
            eid: {"type": "invalidProperties", "description": "unknown error"}
        }
        assert sb.mail.mailbox_names(eid) == {"Inbox"}


async def test_total_only_when_asked(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        sb.mail.deliver("a@b.c", mailboxes=["Inbox"])
        plain, counted = await api(
            sb,
            http,
            ["Email/query", {"accountId": ACCOUNT_ID}, "a"],
            ["Email/query", {"accountId": ACCOUNT_ID, "calculateTotal": True}, "b"],
        )
        assert "total" not in plain[1]
        assert counted[1]["total"] == 1


async def test_email_changes(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        state = sb.mail.states()["Email"]
        new = sb.mail.deliver("a@b.c")
        (resp,) = await api(
            sb, http, ["Email/changes", {"accountId": ACCOUNT_ID, "sinceState": state}, "0"]
        )
        assert resp[1]["created"] == [new]
        (resp,) = await api(
            sb, http, ["Email/changes", {"accountId": ACCOUNT_ID, "sinceState": "bogus"}, "0"]
        )
        assert resp == ["error", {"type": "cannotCalculateChanges"}, "0"]


async def test_deliver_endpoint(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        resp = await http.post(
            sb.url + "/_sandbox/deliver",
            json={"from": "n@x.org", "subject": "hi"},
            headers=auth(sb),
        )
        assert resp.status_code == 201
        assert sb.mail.mailbox_names(resp.json()["id"]) == {"Screener"}
        bad = await http.post(sb.url + "/_sandbox/deliver", json={"to": "x"}, headers=auth(sb))
        assert bad.status_code == 400


async def test_fastmail_stream_connect_then_change(http: httpx.AsyncClient) -> None:
    with FaultySandbox(flavour="fastmail") as sb:
        async with http.stream("GET", sb.url + STREAM, headers=auth(sb)) as resp:
            lines = resp.aiter_lines()
            (first,) = await events(lines, 1)
            sb.mail.deliver("a@b.c")
            (second,) = await events(lines, 1)
    connect = json.loads(first["data"])
    change = json.loads(second["data"])
    assert connect == {"changed": {ACCOUNT_ID: {"Email": "0", "Mailbox": "0"}}, "type": "connect"}
    assert change["type"] == "change"
    assert change["changed"][ACCOUNT_ID]["Email"] == sb.mail.states()["Email"]
    assert "id" not in first and "id" not in second  # no ids, like Fastmail


async def test_rfc_stream_ids_pings_and_replay(http: httpx.AsyncClient) -> None:
    with FaultySandbox(flavour="rfc") as sb:
        async with http.stream("GET", sb.url + RFC_STREAM, headers=auth(sb)) as resp:
            lines = resp.aiter_lines()
            sb.mail.deliver("a@b.c")
            (state,) = await events(lines, 1)
            (ping,) = await events(lines, 1)  # nothing happens for 1 s: a ping
        assert state["event"] == "state"
        assert json.loads(state["data"])["@type"] == "StateChange"
        assert state["id"]
        assert ping == {"event": "ping", "data": '{"interval":1}'}
        # Reconnecting with Last-Event-ID replays what changed meanwhile.
        sb.mail.deliver("c@d.e")
        headers = {**auth(sb), "Last-Event-ID": state["id"]}
        async with http.stream("GET", sb.url + RFC_STREAM, headers=headers) as resp:
            (replay,) = await events(resp.aiter_lines(), 1)
        assert (
            json.loads(replay["data"])["changed"][ACCOUNT_ID]["Email"] == sb.mail.states()["Email"]
        )


async def test_no_types_is_204_and_missing_event_source(http: httpx.AsyncClient) -> None:
    with FaultySandbox(event_source=False) as sb:
        resp = await http.get(sb.url + "/jmap/event/", headers=auth(sb))
        assert resp.status_code == 204
        session = (await http.get(sb.session_url, headers=auth(sb))).json()
        assert "eventSourceUrl" not in session


@pytest.mark.parametrize("status", [401, 403, 429, 503, 204, 400])
async def test_forced_stream_status(http: httpx.AsyncClient, status: int) -> None:
    with FaultySandbox() as sb:
        sb.faults.force("eventsource", status, {"Retry-After": "9"}, times=1)
        resp = await http.get(sb.url + STREAM, headers=auth(sb))
        assert resp.status_code == status
        assert resp.headers["Retry-After"] == "9"
        # times=1: the next request is served normally.
        async with http.stream("GET", sb.url + STREAM, headers=auth(sb)) as ok:
            assert ok.status_code == 200


async def test_stream_close_and_silent(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        sb.faults.stream = "close"
        resp = await http.get(sb.url + STREAM, headers=auth(sb))
        assert (resp.status_code, resp.content) == (200, b"")
        sb.faults.stream = "silent"
        async with http.stream(
            "GET", sb.url + STREAM, headers=auth(sb), timeout=httpx.Timeout(5.0, read=1.5)
        ) as resp:
            sb.mail.deliver("a@b.c")
            with pytest.raises(httpx.ReadTimeout):
                await events(resp.aiter_lines(), 1)


async def test_malformed_oversized_and_retry(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        sb.faults.retry_ms = 2500
        sb.faults.malformed_events = 1
        async with http.stream("GET", sb.url + STREAM, headers=auth(sb)) as resp:
            lines = resp.aiter_lines()
            retry, broken = await events(lines, 2)
            sb.faults.oversized_line = 100_000
            sb.mail.deliver("a@b.c")
            big, good = await events(lines, 2)
    assert retry == {"retry": "2500"}
    assert broken["data"].startswith('{"changed": {broken')
    assert len(big["data"]) == 100_000
    assert json.loads(good["data"])["type"] == "change"


async def test_reset_mid_stream(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        async with http.stream("GET", sb.url + STREAM, headers=auth(sb)) as resp:
            lines = resp.aiter_lines()
            await events(lines, 1)
            sb.reset_connections()
            try:
                rest = await events(lines, 1)
            except httpx.HTTPError:
                rest = []
            assert rest == []  # the stream ended (EOF or error), no more events


async def test_drop_and_refuse(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        sb.faults.drop = True
        with pytest.raises(httpx.HTTPError):
            await http.get(sb.session_url, headers=auth(sb))
        sb.faults.drop = False
        sb.set_refusing(True)
        with pytest.raises(httpx.ConnectError):
            await http.get(sb.session_url, headers=auth(sb))
        sb.set_refusing(False)
        assert (await http.get(sb.session_url, headers=auth(sb))).status_code == 200


async def test_slow_responses(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        sb.faults.delay = 2.0
        with pytest.raises(httpx.ReadTimeout):
            await http.get(sb.session_url, headers=auth(sb), timeout=httpx.Timeout(5.0, read=0.3))


async def test_carddav_delete_honours_if_match(http: httpx.AsyncClient) -> None:
    with FaultySandbox() as sb:
        etag = sb.contacts.write(
            "x.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:X\r\nEND:VCARD\r\n"
        )
        url = sb.url + sb.contacts.book_path + "x.vcf"
        auth_ = httpx.BasicAuth(sb.username, sb.password)
        stale = await http.delete(url, auth=auth_, headers={"If-Match": '"stale"'})
        assert stale.status_code == 412 and "x.vcf" in sb.contacts.cards
        gone = await http.delete(url, auth=auth_, headers={"If-Match": etag})
        assert gone.status_code == 204 and "x.vcf" not in sb.contacts.cards
        assert (await http.delete(url, auth=auth_)).status_code == 404


def test_the_stand_in_shares_no_code_with_the_clients_it_stands_in_for() -> None:
    """A bug in the product's vCard, XML or category code must not hide behind
    the same code on the server side: the stand-in imports only itself."""
    import ast
    from pathlib import Path

    import mailroom.sandbox

    root = Path(mailroom.sandbox.__file__).parent
    for module in root.glob("*.py"):
        if module.name == "demo.py":  # the demo runs the product, as a user would
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            name = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            if name.startswith("mailroom"):
                assert name.startswith("mailroom.sandbox"), f"{module.name}: {name}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("mailroom") or alias.name.startswith(
                        "mailroom.sandbox"
                    ), f"{module.name}: {alias.name}"


def test_the_stand_ins_default_names_are_the_default_categories() -> None:
    from mailroom.account.categories import DEFAULT_CATEGORIES_JSON, parse_categories
    from mailroom.sandbox.server import DEFAULT_GROUPS, DEFAULT_LABELS, DEFAULT_MAILBOXES

    categories = parse_categories(DEFAULT_CATEGORIES_JSON)
    assert categories.labels == DEFAULT_LABELS
    assert categories.destinations == DEFAULT_MAILBOXES
    assert categories.contact_groups == DEFAULT_GROUPS


async def test_header_properties_and_filters(http: httpx.AsyncClient) -> None:
    """RFC 8621 §4.1.3 and §4.4.1: ``header:{name}[:asText]`` the last field of
    that name (None without one); the ``header`` filter by name, or name and text."""
    with FaultySandbox() as sb:
        listed = sb.mail.deliver("a@b.c", headers=[("List-Id", " Users\r\n <users.list.example>")])
        plain = sb.mail.deliver("d@e.f")
        got, found, named, bad = await api(
            sb,
            http,
            [
                "Email/get",
                {
                    "accountId": ACCOUNT_ID,
                    "ids": [listed, plain],
                    "properties": ["header:List-Id:asText", "header:list-id"],
                },
                "g",
            ],
            [
                "Email/query",
                {"accountId": ACCOUNT_ID, "filter": {"header": ["list-id", "USERS.LIST"]}},
                "q",
            ],
            ["Email/query", {"accountId": ACCOUNT_ID, "filter": {"header": ["List-Id"]}}, "n"],
            [
                "Email/get",
                {
                    "accountId": ACCOUNT_ID,
                    "ids": [plain],
                    "properties": ["header:List-Id:asRaw:all"],
                },
                "b",
            ],
        )
        by_id = {e["id"]: e for e in got[1]["list"]}
        assert by_id[listed]["header:List-Id:asText"] == "Users <users.list.example>"
        assert by_id[listed]["header:list-id"] == " Users\r\n <users.list.example>"
        assert by_id[plain]["header:List-Id:asText"] is None
        assert found[1]["ids"] == named[1]["ids"] == [listed]
        assert bad[0] == "error" and bad[1]["type"] == "invalidArguments"
